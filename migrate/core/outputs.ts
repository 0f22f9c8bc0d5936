/**
 * Reads the stack outputs the CLI works from: `--outputs FILE` (JSON of the contract's shape; the
 * rehearsal writes one) or `--stack NAME` (`pulumi stack output --json --show-secrets`). Either way
 * the document is validated against the contract, and each problem names the field.
 */
import { readFileSync } from 'node:fs';
import { type StackOutputs, stackOutputsSchema } from '../../infra/contract.ts';
import { registerSecret } from './secret.ts';

export class OutputsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OutputsError';
  }
}

export function parseOutputs(document: unknown, source: string): StackOutputs {
  const parsed = stackOutputsSchema.safeParse(document);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  - ${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new OutputsError(`Stack outputs from ${source} do not match the contract (infra/contract.ts):\n${problems.join('\n')}`);
  }
  registerSecret(parsed.data.cluster.kubeconfig);
  return parsed.data;
}

export function readOutputsFile(path: string): StackOutputs {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new OutputsError(`Cannot read outputs file ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new OutputsError(`Outputs file ${path} is not JSON: ${(error as Error).message}`);
  }
  return parseOutputs(document, path);
}

export async function readStackOutputs(stack: string, cwd = process.cwd()): Promise<StackOutputs> {
  const { $ } = await import('zx');
  let stdout: string;
  try {
    const result = await $({ cwd, quiet: true, verbose: false })`pulumi stack output --json --show-secrets --stack ${stack}`;
    stdout = result.stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string; code?: string };
    if (e.code === 'ENOENT' || /not found|ENOENT/.test(e.message)) {
      throw new OutputsError(`'pulumi' is not on PATH: install the Pulumi CLI, or pass --outputs FILE with the stack's outputs as JSON.`);
    }
    // Pulumi's stderr never carries output values, but pass it through the redactor's callers anyway.
    throw new OutputsError(`pulumi stack output --stack ${stack} failed: ${(e.stderr ?? e.message).trim()}`);
  }
  let document: unknown;
  try {
    document = JSON.parse(stdout);
  } catch {
    throw new OutputsError(`pulumi stack output --stack ${stack} did not print JSON`);
  }
  return parseOutputs(document, `pulumi stack '${stack}'`);
}

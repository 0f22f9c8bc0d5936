/**
 * Loads a runbook (`runbooks/*.yaml`) and validates all of it before any step runs: the file's
 * shape, step ids, step kinds, every `${{ }}` reference and every step's parameters. All problems
 * are reported together, each naming the file, the step and the field.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { type StackOutputs, secretRefSchema } from '../../infra/contract.ts';
import { collectReferences, ExpressionError, lookup, type Reference, substitute, truthy } from './expressions.ts';
import { REDACTED, type Secret } from './secret.ts';
import type { Json, StepKind } from './step.ts';

const stepSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'must be lower-case letters, digits and dashes'),
    uses: z.string().min(1),
    description: z.string().optional(),
    confirm: z.boolean().optional(),
    if: z.string().optional(),
    with: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();

const runbookSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'must be lower-case letters, digits and dashes'),
    description: z.string().optional(),
    config: z.record(z.string(), z.unknown()).default({}),
    secrets: z.record(z.string(), z.string()).default({}),
    steps: z.array(stepSchema).min(1, 'a runbook needs at least one step'),
  })
  .strict();

export interface RunbookStep {
  id: string;
  uses: string;
  kind: StepKind;
  description?: string;
  confirm: boolean;
  if?: string;
  with: Record<string, unknown>;
}

export interface Runbook {
  path: string;
  name: string;
  description?: string;
  /** Of the file's bytes: a resumed run refuses a runbook edited since it started. */
  sha256: string;
  config: Record<string, unknown>;
  /** Secret references by name, with outputs/config references already resolved. */
  secrets: Record<string, string>;
  steps: RunbookStep[];
}

export class RunbookError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'RunbookError';
  }
}

export type KindLookup = (name: string) => StepKind | undefined;

export interface LoadOptions {
  outputs: StackOutputs;
  /** `--set key=value` overrides; keys must exist in the runbook's config block. */
  configOverrides?: Record<string, unknown>;
  kinds: KindLookup;
  knownKinds: () => string[];
}

/** Relative to the working directory when inside it (runbooks/d-day.yaml), else absolute. */
function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
}

const where = (path: (string | number)[]) =>
  path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : String(p)), '');

/** Outputs that are secrets themselves: shown as *** wherever a runbook references them. */
const SECRET_OUTPUTS = [['cluster', 'kubeconfig']];
export const isSecretOutput = (path: readonly string[]) => SECRET_OUTPUTS.some((s) => s.join('.') === path.join('.'));

export function loadRunbook(path: string, options: LoadOptions): Runbook {
  const file = displayPath(path);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new RunbookError(file, [`cannot read the file (${(error as NodeJS.ErrnoException).code ?? error})`]);
  }
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0)
    throw new RunbookError(
      file,
      doc.errors.map((e) => `YAML: ${e.message}`),
    );
  return validateRunbook(doc.toJS(), path, createHash('sha256').update(text).digest('hex'), options);
}

/** A runbook built in code (stand-alone commands like `migrate preflight`), validated like a file. */
export function runbookFromObject(document: unknown, label: string, options: LoadOptions): Runbook {
  return validateRunbook(document, label, createHash('sha256').update(JSON.stringify(document)).digest('hex'), options);
}

function validateRunbook(document: unknown, path: string, sha256: string, options: LoadOptions): Runbook {
  const file = displayPath(path);
  const parsed = runbookSchema.safeParse(document);
  if (!parsed.success) {
    throw new RunbookError(
      file,
      parsed.error.issues.map((i) => `${where(i.path as (string | number)[]) || '(top level)'}: ${i.message}`),
    );
  }
  const raw = parsed.data;
  const problems: string[] = [];

  // Config defaults may be built from outputs (e.g. a URL from a record name); overrides are literal.
  const config: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw.config)) {
    try {
      config[key] = substitute(value, (ref) => {
        if (ref.scope !== 'outputs') throw new ExpressionError(`${ref.text}: config values can only reference outputs`);
        return resolveStatic(ref, options.outputs, {}, `config.${key}`);
      });
    } catch (error) {
      problems.push(`config.${key}: ${(error as Error).message}`);
    }
  }
  for (const [key, value] of Object.entries(options.configOverrides ?? {})) {
    if (!(key in config))
      problems.push(`--set ${key}: the runbook has no config key '${key}' (it has: ${Object.keys(config).join(', ') || 'none'})`);
    else config[key] = value;
  }

  const secrets: Record<string, string> = {};
  for (const [name, template] of Object.entries(raw.secrets)) {
    try {
      const value = substitute(template, (ref) => resolveStatic(ref, options.outputs, config, `secrets.${name}`));
      const check = secretRefSchema.safeParse(value);
      if (!check.success) problems.push(`secrets.${name}: ${check.error.issues[0]?.message}`);
      else secrets[name] = check.data;
    } catch (error) {
      problems.push(`secrets.${name}: ${(error as Error).message}`);
    }
  }

  const seen = new Set<string>();
  const steps: RunbookStep[] = [];
  for (const [index, step] of raw.steps.entries()) {
    const label = `step '${step.id}' (#${index + 1})`;
    if (seen.has(step.id)) problems.push(`${label}: duplicate step id`);
    const kind = options.kinds(step.uses);
    if (!kind) {
      problems.push(`${label}: unknown step kind '${step.uses}' (known: ${options.knownKinds().join(', ')})`);
      seen.add(step.id);
      continue;
    }
    const stepProblems = validateStep(step, kind, options.outputs, config, raw.secrets, seen);
    problems.push(...stepProblems.map((p) => `${label}: ${p}`));
    seen.add(step.id);
    steps.push({
      id: step.id,
      uses: step.uses,
      kind,
      description: step.description,
      confirm: step.confirm ?? kind.destructive,
      if: step.if,
      with: step.with,
    });
  }
  if (problems.length > 0) throw new RunbookError(file, problems);
  return {
    path,
    name: raw.name,
    description: raw.description,
    sha256,
    config,
    secrets,
    steps,
  };
}

function resolveStatic(ref: Reference, outputs: StackOutputs, config: Record<string, unknown>, field: string): unknown {
  if (ref.scope === 'outputs') {
    const { found, value } = lookup(outputs, ref.path);
    if (!found) throw new ExpressionError(`${ref.text}: the stack outputs have no '${ref.path.join('.')}'`);
    return value;
  }
  if (ref.scope === 'config') {
    const { found, value } = lookup(config, ref.path);
    if (!found) throw new ExpressionError(`${ref.text}: the runbook's config block has no '${ref.path.join('.')}'`);
    return value;
  }
  throw new ExpressionError(`${ref.text}: only outputs and config can be used in ${field}`);
}

function validateStep(
  step: z.infer<typeof stepSchema>,
  kind: StepKind,
  outputs: StackOutputs,
  config: Record<string, unknown>,
  secrets: Record<string, string>,
  earlier: Set<string>,
): string[] {
  const problems: string[] = [];
  // Values known only when the step runs stand in as placeholders; schema issues at exactly those
  // places are not the runbook's fault.
  const deferred: string[] = [];
  const checkRef = (ref: Reference, field: string) => {
    if (ref.optional) return;
    if (ref.scope === 'secrets' && !(ref.path[0]! in secrets)) {
      problems.push(`${field}: ${ref.text}: no secret '${ref.path[0]}' in the runbook's secrets block`);
    }
    if (ref.scope === 'steps' && !earlier.has(ref.path[0]!)) {
      problems.push(`${field}: ${ref.text}: '${ref.path[0]}' is not an earlier step of this runbook`);
    }
    if (ref.scope === 'run' && !['id', 'stack'].includes(ref.path[0]!)) problems.push(`${field}: ${ref.text}: run has only id and stack`);
    if (ref.scope === 'runs' && ref.path.length < 3) problems.push(`${field}: ${ref.text}: write runs.<runbook>.<step>.<field>`);
  };
  try {
    for (const { ref, at } of collectReferences(step.with, ['with'])) {
      checkRef(ref, where(at));
      if (ref.scope === 'secrets' || ref.scope === 'steps' || ref.scope === 'runs') deferred.push(where(at));
    }
    if (step.if) for (const { ref } of collectReferences(step.if)) checkRef(ref, 'if');
  } catch (error) {
    return [(error as Error).message];
  }
  let params: unknown;
  try {
    params = substitute(step.with, (ref) => {
      if (ref.scope === 'outputs' || ref.scope === 'config') return resolveStatic(ref, outputs, config, 'with');
      if (ref.scope === 'run') return `<run.${ref.path[0]}>`;
      return `<${ref.path.join('.')}>`;
    });
    // In `if:` a missing output is simply false ("when the recorder is configured"); config must exist.
    if (step.if) {
      let decidable = true;
      const condition = substitute(step.if, (ref) => {
        if (ref.scope === 'config') return resolveStatic(ref, outputs, config, 'if');
        if (ref.scope === 'outputs') return lookup(outputs, ref.path).value ?? '';
        decidable = false;
        return '';
      });
      // A step that will certainly be skipped keeps its references checked, not its parameter values
      // (e.g. an empty stopSourceCommand is what turns stop-source off).
      if (decidable && !truthy(condition)) return problems;
    }
  } catch (error) {
    problems.push((error as Error).message);
    return problems;
  }
  const result = kind.params.safeParse(params);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const at = where(['with', ...(issue.path as (string | number)[])]);
      if (deferred.some((d) => at === d || at.startsWith(`${d}.`) || at.startsWith(`${d}[`))) continue;
      problems.push(`${at}: ${issue.message}`);
    }
  }
  return problems;
}

export interface ResolveContext {
  outputs: StackOutputs;
  runId: string;
  stack: string;
  /** Results of the run's finished steps, by step id. */
  results: ReadonlyMap<string, Json>;
  /** Result of `step` in the newest run of `runbook` of this stack that finished it. */
  otherRun?: (runbook: string, step: string) => { found: boolean; result: Json | undefined; runId?: string };
  secret: (ref: string) => Promise<Secret>;
}

/** The step's parameters with every reference resolved, validated by the kind's schema. */
export async function resolveParams(runbook: Runbook, step: RunbookStep, context: ResolveContext): Promise<unknown> {
  const secretValues = new Map<string, string>();
  for (const { ref } of collectReferences(step.with)) {
    if (ref.scope === 'secrets' && !secretValues.has(ref.path[0]!)) {
      secretValues.set(ref.path[0]!, (await context.secret(runbook.secrets[ref.path[0]!]!)).reveal());
    }
  }
  const value = substitute(step.with, (ref) => resolveRuntime(ref, runbook, context, secretValues));
  const parsed = step.kind.params.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `with.${where(i.path as (string | number)[])}: ${i.message}`);
    throw new RunbookError(
      runbook.path,
      problems.map((p) => `step '${step.id}': ${p}`),
    );
  }
  return parsed.data;
}

export function evaluateCondition(runbook: Runbook, step: RunbookStep, context: Omit<ResolveContext, 'secret'>): boolean {
  if (!step.if) return true;
  const noSecrets = async (): Promise<Secret> => {
    throw new ExpressionError('secrets cannot be used in if');
  };
  const value = substitute(step.if, (ref) => {
    if (ref.scope === 'outputs' && !lookup(context.outputs, ref.path).found) return '';
    return resolveRuntime(ref, runbook, { ...context, secret: noSecrets }, new Map());
  });
  return truthy(value);
}

function resolveRuntime(ref: Reference, runbook: Runbook, context: ResolveContext, secretValues: Map<string, string>): unknown {
  switch (ref.scope) {
    case 'outputs':
    case 'config':
      return resolveStatic(ref, context.outputs, runbook.config, 'with');
    case 'run':
      return ref.path[0] === 'id' ? context.runId : context.stack;
    case 'secrets':
      return secretValues.get(ref.path[0]!);
    case 'runs': {
      const [name, id, ...rest] = ref.path;
      const other = context.otherRun?.(name!, id!) ?? { found: false, result: undefined };
      if (!other.found) throw new ExpressionError(`${ref.text}: no run of runbook '${name}' of this stack has finished step '${id}'`);
      const { found, value } = lookup(other.result, rest);
      if (!found) throw new ExpressionError(`${ref.text}: step '${id}' of run ${other.runId} produced no '${rest.join('.')}'`);
      return value;
    }
    case 'steps': {
      const [id, ...rest] = ref.path;
      if (!context.results.has(id!)) throw new ExpressionError(`${ref.text}: step '${id}' has not finished in this run`);
      const { found, value } = lookup(context.results.get(id!), rest);
      if (!found) throw new ExpressionError(`${ref.text}: step '${id}' produced no '${rest.join('.')}'`);
      return value;
    }
  }
}

/** The step's parameters for `plan` and `--dry-run`: secrets as ***, later results as their reference. */
export function displayParams(runbook: Runbook, step: RunbookStep, outputs: StackOutputs): unknown {
  return substitute(step.with, (ref) => {
    if (ref.scope === 'secrets') return REDACTED;
    if (ref.scope === 'steps' || ref.scope === 'runs' || ref.scope === 'run') return ref.text;
    if (ref.scope === 'outputs' && isSecretOutput(ref.path)) return REDACTED;
    return resolveStatic(ref, outputs, runbook.config, 'with');
  });
}

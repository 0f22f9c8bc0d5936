/**
 * Runs a runbook's shell command through zx and keeps what the journal may hold: the exit status
 * and the tail of stdout/stderr, every secret the run resolved scrubbed out.
 */

import { z } from 'zod';
import { $, type ProcessOutput } from 'zx';
import { redact } from '../../core/secret.ts';

/** A command line for the shell (`systemctl stop app && …`) or an argv run without one. */
export const commandSchema = z.union([z.string().min(1), z.array(z.string()).min(1)]);
export type Command = z.infer<typeof commandSchema>;

const TAIL_LINES = 20;
const TAIL_CHARS = 4000;

export interface CommandOutcome {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
  stdoutTail: string;
  stderrTail: string;
}

/** The command as the plan and the journal show it: argv joined, secrets scrubbed. */
export function describeCommand(command: Command): string {
  return redact(
    typeof command === 'string'
      ? command
      : command.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' '),
  );
}

function tail(text: string): string {
  const lines = text.replace(/\s+$/, '').split('\n');
  return redact(lines.slice(-TAIL_LINES).join('\n').slice(-TAIL_CHARS));
}

export async function runCommand(
  command: Command,
  options: { env: Record<string, string>; timeoutSeconds: number; signal: AbortSignal },
): Promise<CommandOutcome> {
  const shell = $({
    env: { ...process.env, ...options.env },
    nothrow: true,
    quiet: true,
    // zx prepends `set -euo pipefail;` by default; the runbook's command runs as written.
    prefix: '',
    postfix: '',
    timeout: Math.round(options.timeoutSeconds * 1000),
    signal: options.signal,
  });
  const started = Date.now();
  // A string is handed to the shell verbatim (a template with no interpolations); an argv is quoted by zx.
  const output: ProcessOutput =
    typeof command === 'string'
      ? await shell(Object.assign([command], { raw: [command] }) as unknown as TemplateStringsArray)
      : await shell`${command}`;
  const durationMs = Date.now() - started;
  // zx kills at the timeout with SIGTERM; a signal before then came from elsewhere.
  const timedOut = output.signal !== null && durationMs >= options.timeoutSeconds * 1000 - 100;
  return {
    exitCode: output.exitCode,
    signal: output.signal,
    timedOut,
    durationMs,
    stdoutTail: tail(output.stdout),
    stderrTail: tail(output.stderr),
  };
}

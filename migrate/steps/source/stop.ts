/**
 * source.stop: the hook that stops the legacy services writing to the source database — a shell
 * command from the runbook, with an optional `check` (exit 0 = already stopped, so a resumed run
 * does not stop twice) and an `undo` command that rollback runs. Output tails go to the journal
 * with secrets scrubbed.
 */
import { z } from 'zod';
import { defineStep, type Json, type StepContext, StepError } from '../../core/step.ts';
import { type Command, type CommandOutcome, commandSchema, describeCommand, runCommand } from './shell.ts';

const params = z
  .object({
    command: commandSchema,
    /** Exit 0 means the services are already stopped. */
    check: commandSchema.optional(),
    /** Starts the services again (rollback). */
    undo: commandSchema.optional(),
    timeoutSeconds: z.number().positive().default(300),
    /**
     * Wait this long before stopping: with the keep-serving D-day, the old app record's TTL plus a
     * margin after the DNS switch, so that no client still holds an answer pointing at these services.
     */
    waitSeconds: z.number().min(0).default(0),
    /** Added to waitSeconds (resolvers and clients that keep an answer a little past its TTL). */
    waitMarginSeconds: z.number().min(0).default(0),
    /** Extra environment; values may be `${{ secrets.… }}` (scrubbed from every output). */
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name'), z.string()).default({}),
  })
  .strict();
type Params = z.infer<typeof params>;
type Result = { exitCode: number; durationMs: number; stdoutTail: string };

type Role = 'command' | 'check' | 'undo';

async function run(ctx: StepContext, p: Params, role: Role, command: Command): Promise<CommandOutcome> {
  const shown = describeCommand(command);
  if (role !== 'check') await ctx.record({ action: 'run', role, command: shown });
  const outcome = await runCommand(command, { env: p.env, timeoutSeconds: p.timeoutSeconds, signal: ctx.signal });
  if (role !== 'check') await ctx.record({ action: 'ran', role, ...outcome } as unknown as Json);
  for (const line of outcome.stdoutTail ? outcome.stdoutTail.split('\n') : []) ctx.log.info(`${role}: ${line}`);
  return outcome;
}

function failed(role: Role, command: Command, p: Params, outcome: CommandOutcome): StepError {
  const shown = describeCommand(command);
  const how = outcome.timedOut
    ? `did not finish within ${p.timeoutSeconds} s and was killed`
    : outcome.signal
      ? `was killed by ${outcome.signal}`
      : outcome.exitCode === null
        ? 'could not be started'
        : `exited with ${outcome.exitCode}`;
  const output = [outcome.stderrTail, outcome.stdoutTail].filter(Boolean).join('\n');
  return new StepError(
    `Unable to run the ${role === 'command' ? 'stop' : role} command of source.stop: '${shown}' ${how}${output ? `:\n${output}` : ''}`,
    [
      {
        severity: 'error',
        object: `with.${role}`,
        message: `'${shown}' ${how}`,
        fix: outcome.timedOut
          ? 'raise timeoutSeconds or make the command return once the stop is requested'
          : 'run the command by hand to see why, fix it, then re-run (the step runs the command again)',
      },
    ],
  );
}

async function alreadyStopped(ctx: StepContext, p: Params): Promise<boolean | undefined> {
  if (!p.check) return undefined;
  return (await run(ctx, p, 'check', p.check)).exitCode === 0;
}

const waitOf = (p: Params) => p.waitSeconds + p.waitMarginSeconds;

/** Waits out the clients' cached DNS answers, with the time left shown; a resumed run waits again, to be safe. */
async function drain(ctx: StepContext, seconds: number): Promise<void> {
  const until = ctx.now() + seconds * 1000;
  while (ctx.now() < until) {
    if (ctx.signal.aborted) throw new Error('interrupted while waiting for cached DNS answers to expire; nothing was stopped');
    ctx.log.progress({ label: 'waiting for cached DNS answers to expire', deadline: until, detail: 'then the stop command runs' });
    await ctx.sleep(Math.min(1000, until - ctx.now()));
  }
}

export const sourceStop = defineStep<Params, Result>({
  kind: 'source.stop',
  summary: 'Stop the legacy services with a shell command from the runbook (with optional check and undo commands)',
  params,
  requires: ['shell'],
  destructive: true,
  async probe(ctx, p) {
    const stopped = await alreadyStopped(ctx, p);
    if (stopped)
      return {
        state: 'done',
        result: { exitCode: 0, durationMs: 0, stdoutTail: '' },
        plan: [`already stopped (check '${describeCommand(p.check!)}' exited 0)`],
      };
    return {
      state: 'ready',
      plan: [
        ...(waitOf(p) > 0 ? [`wait ${waitOf(p)} s first (clients may still hold the old DNS answer)`] : []),
        `run: ${describeCommand(p.command)} (timeout ${p.timeoutSeconds} s)`,
      ],
      findings: p.check
        ? []
        : [
            {
              severity: 'info',
              object: 'with.check',
              message: 'no check command: whether the services are already stopped is unknown, so a resumed run runs the command again',
              fix: 'add a check command that exits 0 once they are stopped',
            },
          ],
    };
  },
  async apply(ctx, p) {
    if (waitOf(p) > 0) await drain(ctx, waitOf(p));
    const outcome = await run(ctx, p, 'command', p.command);
    if (outcome.exitCode !== 0) throw failed('command', p.command, p, outcome);
    return { exitCode: 0, durationMs: outcome.durationMs, stdoutTail: outcome.stdoutTail };
  },
  async check(ctx, p) {
    if ((await alreadyStopped(ctx, p)) === false) {
      return [
        {
          severity: 'error',
          object: 'with.check',
          message: `'${describeCommand(p.check!)}' still says the services are running after the stop command`,
          fix: 'check the legacy hosts by hand; the stop may be asynchronous (make the command wait)',
        },
      ];
    }
  },
  async undo(ctx, p) {
    if (!p.undo) {
      ctx.log.warn('source.stop has no undo command: start the legacy services by hand');
      return;
    }
    const outcome = await run(ctx, p, 'undo', p.undo);
    if (outcome.exitCode !== 0) throw failed('undo', p.undo, p, outcome);
  },
});

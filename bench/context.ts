/**
 * Runs real step kinds outside the engine, the way `migrate run` drives them (probe → apply unless
 * already done → check, one shared resource pool), quietly, against the bench's servers. Timings
 * therefore include the probe and postcondition queries an operator's run pays for; only the
 * journal's fsyncs are missing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StackOutputs } from '../infra/contract.ts';
import { createStepContext, ResourcePool, type RunServices } from '../migrate/core/context.ts';
import { createSecretResolver } from '../migrate/core/secret-refs.ts';
import type { Finding, Json, StepKind } from '../migrate/core/step.ts';
import { localOutputs } from '../migrate/local/outputs.ts';
import type { LocalPgbouncer } from '../migrate/local/pgbouncer.ts';
import type { Bench } from './servers.ts';

export interface StepRun<R> {
  result: R;
  seconds: number;
  /** The probe found the effect in place, so apply did not run. */
  alreadyDone: boolean;
}

export interface BenchSteps {
  outputs: StackOutputs;
  run<P, R extends Json>(kind: StepKind<P, R>, params: unknown): Promise<StepRun<R>>;
  /** Runs the kind's undo with the changes its run recorded, as a rollback does; returns seconds. */
  undo<P, R extends Json>(kind: StepKind<P, R>, params: unknown, result?: R): Promise<number>;
  close(): Promise<void>;
}

const describe = (findings: Finding[] | undefined) =>
  (findings ?? [])
    .filter((f) => f.severity === 'error')
    .map((f) => `${f.object}: ${f.message}`)
    .join('; ');

/**
 * Steps against `sourceDatabase` on the source and `targetDatabase` (default: the same name) on the
 * target, and against `pgbouncer`'s console when given.
 */
export function benchSteps(
  bench: Bench,
  options: { sourceDatabase: string; targetDatabase?: string; pgbouncer?: LocalPgbouncer },
): BenchSteps {
  const dir = mkdtempSync(join(tmpdir(), 'bench-outputs-'));
  const local = localOutputs({
    dir,
    source: bench.source,
    target: bench.target,
    database: options.sourceDatabase,
    ...(options.pgbouncer ? { pgbouncer: { port: options.pgbouncer.port, adminUrl: options.pgbouncer.adminUrl } } : {}),
  });
  // localOutputs names one database for both sides; the copy baselines need other target databases.
  const outputs: StackOutputs = { ...local, database: { ...local.database, name: options.targetDatabase ?? options.sourceDatabase } };
  const resources = new ResourcePool();
  // What each kind recorded, so that undo gets the changes a journal would have given it.
  const recorded = new Map<string, Json[]>();
  const services: RunServices = {
    runId: 'bench',
    stack: 'bench',
    outputs,
    dryRun: false,
    log: { info: () => {}, warn: () => {}, progress: () => {} },
    signal: new AbortController().signal,
    secret: createSecretResolver({ region: outputs.region }),
    resources,
    record: async () => {},
  };
  const contextFor = (kind: string) => {
    const ctx = createStepContext(services, kind);
    const changes = recorded.get(kind) ?? [];
    recorded.set(kind, changes);
    return { ...ctx, record: async (change: Json) => void changes.push(change), previousChanges: [...changes] };
  };
  return {
    outputs,
    async run<P, R extends Json>(kind: StepKind<P, R>, raw: unknown): Promise<StepRun<R>> {
      const params = kind.params.parse(raw);
      const ctx = contextFor(kind.kind);
      const started = performance.now();
      const probe = await kind.probe(ctx, params);
      if (probe.state === 'blocked') throw new Error(`${kind.kind} cannot run: ${describe(probe.findings)}`);
      const alreadyDone = probe.state === 'done';
      const result = alreadyDone ? (probe.result as R) : await kind.apply(ctx, params);
      const failed = describe((await kind.check(ctx, params, result)) ?? undefined);
      if (failed) throw new Error(`${kind.kind}: postcondition failed: ${failed}`);
      return { result, seconds: (performance.now() - started) / 1000, alreadyDone };
    },
    async undo<P, R extends Json>(kind: StepKind<P, R>, raw: unknown, result?: R): Promise<number> {
      const params = kind.params.parse(raw);
      const ctx = contextFor(kind.kind);
      const started = performance.now();
      await kind.undo?.(ctx, params, recorded.get(kind.kind) ?? [], result);
      return (performance.now() - started) / 1000;
    },
    async close() {
      await resources.closeAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function withSteps<T>(
  bench: Bench,
  options: Parameters<typeof benchSteps>[1],
  fn: (steps: BenchSteps) => Promise<T>,
): Promise<T> {
  const steps = benchSteps(bench, options);
  try {
    return await fn(steps);
  } finally {
    await steps.close();
  }
}

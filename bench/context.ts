/** A StepContext for running a step kind outside the engine, quietly, against two local servers. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStepContext, ResourcePool } from '../migrate/core/context.ts';
import { createSecretResolver } from '../migrate/core/secret-refs.ts';
import type { StepContext } from '../migrate/core/step.ts';
import { localOutputs } from '../migrate/local/outputs.ts';
import type { Bench } from './servers.ts';

export async function withStepContext<T>(bench: Bench, database: string, fn: (ctx: StepContext) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-outputs-'));
  const resources = new ResourcePool();
  const outputs = localOutputs({ dir, source: bench.source, target: bench.target, database });
  const ctx = createStepContext(
    {
      runId: 'bench',
      stack: 'bench',
      outputs,
      dryRun: false,
      log: { info: () => {}, warn: () => {}, progress: () => {} },
      signal: new AbortController().signal,
      secret: createSecretResolver({ region: outputs.region }),
      resources,
      record: async () => {},
    },
    'bench',
  );
  try {
    return await fn(ctx);
  } finally {
    await resources.closeAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A StepContext for testing one step kind without the engine: records changes and log lines in
 * memory, resolves secret references the same way the CLI does.
 */
import type { StackOutputs } from '../../infra/contract.ts';
import { createStepContext, ResourcePool } from '../../migrate/core/context.ts';
import { redact } from '../../migrate/core/secret.ts';
import { createSecretResolver, type SecretResolver } from '../../migrate/core/secret-refs.ts';
import type { Json, Progress, StepContext } from '../../migrate/core/step.ts';

export interface TestContext {
  ctx: StepContext;
  /** Changes recorded by the step, in order. */
  changes: Json[];
  /** Every line the step logged, already redacted as the CLI would print it. */
  lines: string[];
  progress: Progress[];
  /** A context for another attempt of the same step, seeing this one's changes as previous. */
  retry(): TestContext;
  close(): Promise<void>;
}

export function testContext(options: {
  outputs: StackOutputs;
  dryRun?: boolean;
  stepId?: string;
  secret?: SecretResolver;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  previousChanges?: Json[];
  resources?: ResourcePool;
}): TestContext {
  const resources = options.resources ?? new ResourcePool();
  const changes: Json[] = [];
  const lines: string[] = [];
  const progress: Progress[] = [];
  const controller = new AbortController();
  const ctx = createStepContext(
    {
      runId: 'test-run',
      stack: 'test',
      outputs: options.outputs,
      dryRun: options.dryRun ?? false,
      signal: controller.signal,
      secret: options.secret ?? createSecretResolver({ region: options.outputs.region }),
      resources,
      record: async (_step, change) => {
        changes.push(JSON.parse(redact(JSON.stringify(change))) as Json);
      },
      log: {
        info: (m) => lines.push(redact(m)),
        warn: (m) => lines.push(redact(`warning: ${m}`)),
        progress: (p) => progress.push(JSON.parse(redact(JSON.stringify(p))) as Progress),
      },
      now: options.now,
      sleep: options.sleep,
    },
    options.stepId ?? 'step',
    options.previousChanges ?? [],
  );
  return {
    ctx,
    changes,
    lines,
    progress,
    retry: () => testContext({ ...options, resources, previousChanges: [...(options.previousChanges ?? []), ...changes] }),
    close: async () => {
      controller.abort();
      await resources.closeAll();
    },
  };
}

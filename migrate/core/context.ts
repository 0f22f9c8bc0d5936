/**
 * Builds the StepContext each step runs with. The engine and the step tests use the same factory,
 * so a step tested here behaves the same under `migrate run`.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { StackOutputs } from '../../infra/contract.ts';
import type { SecretResolver } from './secret-refs.ts';
import type { Json, Logger, StepContext } from './step.ts';

export class ResourcePool {
  // biome-ignore lint/suspicious/noExplicitAny: each entry's dispose takes its own value's type; the map cannot name them all
  readonly #entries = new Map<string, { value: Promise<unknown>; dispose?: (value: any) => Promise<void> | void }>();

  get<T>(key: string, create: () => Promise<T> | T, dispose?: (value: T) => Promise<void> | void): Promise<T> {
    let entry = this.#entries.get(key);
    if (!entry) {
      const value = Promise.resolve().then(create);
      entry = { value, dispose };
      this.#entries.set(key, entry);
      value.catch(() => this.#entries.delete(key));
    }
    return entry.value as Promise<T>;
  }

  /** Disposes in reverse creation order; failures are swallowed (the run's outcome is already decided). */
  async closeAll(): Promise<void> {
    const entries = [...this.#entries.values()].reverse();
    this.#entries.clear();
    for (const { value, dispose } of entries) {
      if (!dispose) continue;
      try {
        await dispose(await value);
      } catch {
        /* closing is best effort */
      }
    }
  }
}

export interface RunServices {
  runId: string;
  stack: string;
  outputs: StackOutputs;
  dryRun: boolean;
  log: Logger;
  signal: AbortSignal;
  secret: SecretResolver;
  resources: ResourcePool;
  /** Appends a change for `stepId` to the journal durably. */
  record(stepId: string, change: Json): Promise<void>;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export function createStepContext(services: RunServices, stepId: string, previousChanges: readonly Json[] = []): StepContext {
  const signal = services.signal;
  return {
    runId: services.runId,
    stepId,
    stack: services.stack,
    outputs: services.outputs,
    dryRun: services.dryRun,
    log: services.log,
    signal,
    now: services.now ?? Date.now,
    sleep: services.sleep ?? ((ms) => delay(ms, undefined, { signal })),
    secret: services.secret,
    record: (change) => services.record(stepId, change),
    previousChanges,
    resource: (key, create, dispose) => services.resources.get(key, create, dispose),
  };
}

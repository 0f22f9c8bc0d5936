/**
 * rds.create-replicas: the read replicas the stack outputs name, created from the new writer once
 * the data is across. Each identifier is journalled before its Create, so a crash mid-way still lets
 * rollback delete it; a replica that already existed is kept and never deleted by undo.
 */
import { z } from 'zod';
import type { ReplicaSpec } from '../../../infra/contract.ts';
import {
  createReplica,
  deleteReplica,
  describeInstances,
  describeRequest,
  type InstanceState,
  isInstanceAlreadyExists,
  isInstanceNotFound,
  isInvalidInstanceState,
  replicaRequest,
  TERMINAL_FAILURES,
} from '../../aws/rds.ts';
import { blockedBy, blocks, defineStep, type Finding, type Json, type StepContext, StepError, unable } from '../../core/step.ts';
import { deadlineIn, waitFor } from '../../core/wait.ts';

const params = z.object({
  /** Identifiers from outputs.database.replicas to create; all of them when absent. */
  replicas: z.array(z.string().min(1)).min(1).optional(),
  deadlineMinutes: z.number().positive().default(60),
  pollSeconds: z.number().positive().default(30),
});
type Params = z.infer<typeof params>;

interface Endpoint {
  identifier: string;
  address: string;
  port: number;
  [key: string]: Json;
}
/**
 * `hosts` is `address:port,…` of the replicas, ready for a multi-host libpq URL in a later step's
 * template. `readerHosts` is the same, or the writer's when the stack has no cutover replicas: the
 * reader URL must then point at the new writer, because an empty host list would make libpq try a
 * local socket, and leaving the parameter alone would keep the app reading the frozen legacy server.
 */
type Result = { endpoints: Endpoint[]; hosts: string; readerHosts: string };

function resultOf(ctx: StepContext, endpoints: Endpoint[]): Result {
  const hosts = endpoints.map((e) => `${e.address}:${e.port}`).join(',');
  const { endpoint, port } = ctx.outputs.database;
  return { endpoints, hosts, readerHosts: hosts || `${endpoint}:${port}` };
}

interface ReplicaChange {
  action: 'create-replica';
  identifier: string;
  /** false when Create found the identifier taken: someone else's instance, never ours to delete. */
  createdByRun: boolean;
}

/** The replicas `with.replicas` names (all by default); an identifier the stack does not have is an error. */
function selectedReplicas(ctx: StepContext, p: Params): { specs: ReplicaSpec[]; findings: Finding[] } {
  const all = ctx.outputs.database.replicas;
  if (!p.replicas) return { specs: all, findings: [] };
  const unknown = p.replicas.filter((id) => !all.some((spec) => spec.identifier === id));
  const findings: Finding[] = unknown.map((id) => ({
    severity: 'error',
    object: 'with.replicas',
    message: `${id} is not a replica of this stack (known: ${all.map((s) => s.identifier).join(', ') || 'none'})`,
    fix: 'use identifiers from outputs.database.replicas, or add the replica to the stack config and run pulumi up',
  }));
  return { specs: all.filter((spec) => p.replicas!.includes(spec.identifier)), findings };
}

const stateOf = (states: Map<string, InstanceState>, identifier: string) => states.get(identifier.toLowerCase());

/** Reasons the replicas cannot be created from this source (errors) or will differ from the plan (warnings). */
function preconditions(ctx: StepContext, specs: ReplicaSpec[], states: Map<string, InstanceState>): Finding[] {
  const { identifier: sourceId } = ctx.outputs.database;
  const source = stateOf(states, sourceId);
  const findings: Finding[] = [];
  const missing = specs.filter((spec) => !stateOf(states, spec.identifier));
  if (!source) {
    findings.push({
      severity: 'error',
      object: `db ${sourceId}`,
      message: 'the writer instance (outputs.database.identifier) does not exist',
      fix: 'check the stack and region (pulumi up)',
    });
    return findings;
  }
  if (missing.length > 0 && source.backupRetentionPeriod < 1) {
    findings.push({
      severity: 'error',
      object: `db ${sourceId}`,
      message: 'automated backups are off (BackupRetentionPeriod 0); RDS creates read replicas only from a source with backups',
      fix: 'set a backup retention period of at least 1 day on the writer (stack config) and pulumi up',
    });
  }
  if (missing.length > 0 && source.kmsKeyId !== ctx.outputs.kms.keyArn) {
    findings.push({
      severity: 'warning',
      object: `db ${sourceId}`,
      message: source.storageEncrypted
        ? `replicas inherit the writer's KMS key ${source.kmsKeyId}, not the stack's key ${ctx.outputs.kms.keyArn}`
        : 'the writer is not encrypted, so its replicas will not be either',
    });
  }
  for (const spec of specs) {
    const existing = stateOf(states, spec.identifier);
    if (existing && existing.replicaOf?.split(':').pop() !== sourceId) {
      findings.push({
        severity: 'error',
        object: `db ${spec.identifier}`,
        message: `exists but is not a read replica of ${sourceId} (replica of: ${existing.replicaOf ?? 'nothing'})`,
        fix: 'rename the replica in the stack config, or delete that instance if it is a leftover',
      });
    }
  }
  return findings;
}

function endpoints(specs: ReplicaSpec[], states: Map<string, InstanceState>): Endpoint[] | null {
  const out: Endpoint[] = [];
  for (const spec of specs) {
    const state = stateOf(states, spec.identifier);
    if (state?.status !== 'available' || !state.address || !state.port) return null;
    out.push({ identifier: spec.identifier, address: state.address, port: state.port });
  }
  return out;
}

function recordedChanges(changes: readonly Json[]): Map<string, boolean> {
  const createdByRun = new Map<string, boolean>();
  for (const change of changes as readonly Partial<ReplicaChange>[]) {
    if (change?.action === 'create-replica' && change.identifier) createdByRun.set(change.identifier, change.createdByRun === true);
  }
  return createdByRun;
}

async function waitAvailable(ctx: StepContext, p: Params, specs: ReplicaSpec[], createdByRun: () => string[]): Promise<Endpoint[]> {
  const ids = specs.map((s) => s.identifier);
  let pending = ids;
  return waitFor(ctx, {
    label: 'waiting for replicas to be available',
    deadline: deadlineIn(ctx, p.deadlineMinutes),
    intervalMs: p.pollSeconds * 1000,
    poll: async () => {
      const states = await describeInstances(ctx, ids);
      const ready = endpoints(specs, states);
      if (ready) return { ready: true, value: ready };
      const statuses = ids.map((id) => `${id} ${stateOf(states, id)?.status ?? 'absent'}`);
      const failed = ids.filter((id) => TERMINAL_FAILURES.has(stateOf(states, id)?.status ?? ''));
      if (failed.length > 0) {
        throw new StepError(`replica ${failed.join(', ')} failed (${statuses.join(', ')})`, [
          {
            severity: 'error',
            object: `db ${failed.join(', ')}`,
            message: 'RDS put the replica in a failed state',
            fix: 'read the instance events in the RDS console, then roll back (deletes replicas this run created) and retry',
          },
        ]);
      }
      pending = ids.filter((id) => stateOf(states, id)?.status !== 'available');
      return { ready: false, detail: statuses.join(', '), done: ids.length - pending.length, total: ids.length };
    },
    timedOut: ({ detail }) => {
      const ours = createdByRun();
      return new StepError(`replicas not available after ${p.deadlineMinutes} minutes (${detail})`, [
        {
          severity: 'error',
          object: `db ${pending.join(', ')}`,
          message: `still not available; recorded in the journal as created by this run: ${ours.join(', ') || 'none'}`,
          fix: 'resume the run to keep waiting (nothing is created twice), or roll back to delete the replicas this run created',
        },
      ]);
    },
  });
}

interface Assessment {
  findings: Finding[];
  specs: ReplicaSpec[];
  /** The writer and the selected replicas that exist. */
  states: Map<string, InstanceState>;
  /** Every selected replica's endpoint when all are available, else null. */
  ready: Endpoint[] | null;
}

async function assess(ctx: StepContext, p: Params): Promise<Assessment> {
  const { specs, findings } = selectedReplicas(ctx, p);
  const states = await describeInstances(ctx, [ctx.outputs.database.identifier, ...specs.map((s) => s.identifier)]);
  findings.push(...preconditions(ctx, specs, states));
  return { findings, specs, states, ready: endpoints(specs, states) };
}

export const rdsCreateReplicas = defineStep<Params, Result>({
  kind: 'rds.create-replicas',
  summary: 'Create the RDS read replicas named by the stack outputs and wait until they are available',
  params,
  requires: ['aws'],
  destructive: false,

  async probe(ctx, p) {
    const { findings, specs, states, ready } = await assess(ctx, p);
    if (blocks(findings)) return { state: 'blocked', findings };
    if (ready) {
      if (specs.length === 0)
        findings.push({
          severity: 'info',
          object: `db ${ctx.outputs.database.identifier}`,
          message: 'the stack lists no cutover replicas: readerHosts is the writer, so the reader URL points at it',
        });
      return { state: 'done', findings, result: resultOf(ctx, ready) };
    }
    const plan = specs.map((spec) => {
      const existing = stateOf(states, spec.identifier);
      if (!existing) return `rds:CreateDBInstanceReadReplica ${describeRequest(replicaRequest(ctx.outputs, spec, ctx.runId))}`;
      return `${spec.identifier} exists (${existing.status}): not created again`;
    });
    plan.push(`wait up to ${p.deadlineMinutes} minutes for ${specs.map((s) => s.identifier).join(', ')} to be available`);
    return { state: 'ready', findings, plan };
  },

  async apply(ctx, p) {
    const source = ctx.outputs.database.identifier;
    const recorded = recordedChanges(ctx.previousChanges);
    try {
      const { findings, specs, states } = await assess(ctx, p);
      if (blocks(findings)) throw blockedBy(findings);
      for (const spec of specs) {
        if (stateOf(states, spec.identifier)) {
          ctx.log.info(`replica ${spec.identifier} already exists (${stateOf(states, spec.identifier)!.status}); not creating it`);
          continue;
        }
        const request = replicaRequest(ctx.outputs, spec, ctx.runId);
        await ctx.record({ action: 'create-replica', identifier: spec.identifier, createdByRun: true });
        recorded.set(spec.identifier, true);
        try {
          await createReplica(ctx, request);
          ctx.log.info(
            `creating replica ${spec.identifier} (${spec.instanceClass}${spec.availabilityZone ? `, ${spec.availabilityZone}` : ''})`,
          );
        } catch (error) {
          if (!isInstanceAlreadyExists(error)) throw error;
          // Someone created it between our Describe and Create: it is theirs, so undo must leave it.
          await ctx.record({ action: 'create-replica', identifier: spec.identifier, createdByRun: false });
          recorded.set(spec.identifier, false);
          ctx.log.warn(`replica ${spec.identifier} appeared before this run could create it; keeping it, undo will not delete it`);
        }
      }
      const ours = () => [...recorded].filter(([, created]) => created).map(([id]) => id);
      return resultOf(ctx, await waitAvailable(ctx, p, specs, ours));
    } catch (error) {
      throw unable(`create read replicas of ${source}`, error);
    }
  },

  async check(ctx, p) {
    const { specs } = selectedReplicas(ctx, p);
    const states = await describeInstances(
      ctx,
      specs.map((s) => s.identifier),
    );
    return specs
      .filter((spec) => stateOf(states, spec.identifier)?.status !== 'available')
      .map((spec) => ({
        severity: 'error' as const,
        object: `db ${spec.identifier}`,
        message: `is ${stateOf(states, spec.identifier)?.status ?? 'absent'}, expected available`,
      }));
  },

  async undo(ctx, p, changes) {
    const ours = [...recordedChanges(changes)].filter(([, created]) => created).map(([id]) => id);
    if (ours.length === 0) return;
    try {
      await waitFor(ctx, {
        label: 'deleting replicas created by this run',
        deadline: deadlineIn(ctx, p.deadlineMinutes),
        intervalMs: p.pollSeconds * 1000,
        poll: async () => {
          const states = await describeInstances(ctx, ours);
          const left: string[] = [];
          for (const id of ours) {
            const state = stateOf(states, id);
            if (!state) continue;
            left.push(`${id} ${state.status}`);
            if (state.status === 'deleting') continue;
            try {
              await deleteReplica(ctx, id);
              ctx.log.info(`deleting replica ${id} (no final snapshot)`);
            } catch (error) {
              // A replica still being created cannot be deleted yet; the next poll tries again.
              if (!isInstanceNotFound(error) && !isInvalidInstanceState(error)) throw error;
            }
          }
          return left.length === 0
            ? { ready: true, value: undefined }
            : { ready: false, detail: left.join(', '), done: ours.length - left.length, total: ours.length };
        },
        timedOut: ({ detail }) =>
          new StepError(`replicas not deleted after ${p.deadlineMinutes} minutes (${detail})`, [
            {
              severity: 'error',
              object: `db ${ours.join(', ')}`,
              message: 'still present',
              fix: 'run rollback again to keep waiting, or delete them in the RDS console',
            },
          ]),
      });
    } catch (error) {
      throw unable(`delete the read replicas this run created (${ours.join(', ')})`, error);
    }
  },
});

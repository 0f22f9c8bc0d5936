/** RDS requests the replica step makes, each with the IAM action it needs. */
import {
  CreateDBInstanceReadReplicaCommand,
  type CreateDBInstanceReadReplicaCommandInput,
  type DBInstance,
  DeleteDBInstanceCommand,
  paginateDescribeDBInstances,
} from '@aws-sdk/client-rds';
import type { ReplicaSpec, StackOutputs } from '../../infra/contract.ts';
import type { StepContext } from '../core/step.ts';
import { dbInstanceArn } from './arns.ts';
import { callAws, isAwsError } from './call.ts';
import { awsClient } from './clients.ts';

export interface InstanceState {
  identifier: string;
  status: string;
  address: string | null;
  port: number | null;
  /** For a read replica, the identifier (or ARN) of its source. */
  replicaOf: string | null;
  kmsKeyId: string | null;
  storageEncrypted: boolean;
  backupRetentionPeriod: number;
}

/** Statuses a new replica never leaves on its own: waiting longer will not help. */
export const TERMINAL_FAILURES = new Set([
  'failed',
  'incompatible-parameters',
  'incompatible-restore',
  'incompatible-network',
  'inaccessible-encryption-credentials',
  'storage-full',
]);

function toState(instance: DBInstance): InstanceState {
  return {
    identifier: instance.DBInstanceIdentifier ?? '',
    status: instance.DBInstanceStatus ?? 'unknown',
    address: instance.Endpoint?.Address ?? null,
    port: instance.Endpoint?.Port ?? null,
    replicaOf: instance.ReadReplicaSourceDBInstanceIdentifier ?? null,
    kmsKeyId: instance.KmsKeyId ?? null,
    storageEncrypted: instance.StorageEncrypted ?? false,
    backupRetentionPeriod: instance.BackupRetentionPeriod ?? 0,
  };
}

/**
 * The named instances that exist, keyed by lowercase identifier (RDS stores identifiers lowercase).
 * One filtered, paginated Describe instead of one per instance: an absent instance is simply not
 * listed, where a per-identifier Describe would throw DBInstanceNotFound.
 */
export async function describeInstances(ctx: StepContext, identifiers: readonly string[]): Promise<Map<string, InstanceState>> {
  const rds = await awsClient(ctx, 'rds');
  const found = new Map<string, InstanceState>();
  await callAws('rds:DescribeDBInstances', dbInstanceArn(ctx.outputs, '*'), async () => {
    for await (const page of paginateDescribeDBInstances(
      { client: rds },
      { Filters: [{ Name: 'db-instance-id', Values: [...identifiers] }] },
    )) {
      for (const instance of page.DBInstances ?? []) {
        const state = toState(instance);
        found.set(state.identifier.toLowerCase(), state);
      }
    }
  });
  return found;
}

/**
 * The request that creates one replica. No KmsKeyId: a same-region replica is always encrypted with
 * its source's key, and RDS rejects the parameter (InvalidParameterCombination); the probe checks
 * instead that the source uses the stack's key. Performance Insights does take the stack's key.
 */
export function replicaRequest(outputs: StackOutputs, spec: ReplicaSpec, runId: string): CreateDBInstanceReadReplicaCommandInput {
  const tags = { ...outputs.tags, 'migrate:run-id': runId };
  return {
    DBInstanceIdentifier: spec.identifier,
    SourceDBInstanceIdentifier: outputs.database.identifier,
    DBInstanceClass: spec.instanceClass,
    ...(spec.availabilityZone ? { AvailabilityZone: spec.availabilityZone } : {}),
    DBParameterGroupName: outputs.database.parameterGroupName,
    PubliclyAccessible: false,
    EnablePerformanceInsights: spec.performanceInsights,
    ...(spec.performanceInsights ? { PerformanceInsightsKMSKeyId: outputs.kms.keyArn } : {}),
    // Undo must be able to delete what this run created.
    DeletionProtection: false,
    CopyTagsToSnapshot: true,
    Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
  };
}

/** `Key=value` text of a request for plan lines (nothing in it is secret). */
export function describeRequest(request: CreateDBInstanceReadReplicaCommandInput): string {
  return Object.entries(request)
    .map(([key, value]) => {
      if (key === 'Tags') return `Tags=${(value as { Key: string; Value: string }[]).map((t) => `${t.Key}:${t.Value}`).join(',')}`;
      return `${key}=${String(value)}`;
    })
    .join(' ');
}

export async function createReplica(ctx: StepContext, request: CreateDBInstanceReadReplicaCommandInput): Promise<void> {
  const rds = await awsClient(ctx, 'rds');
  await callAws('rds:CreateDBInstanceReadReplica', dbInstanceArn(ctx.outputs, request.DBInstanceIdentifier ?? ''), () =>
    rds.send(new CreateDBInstanceReadReplicaCommand(request)),
  );
}

export async function deleteReplica(ctx: StepContext, identifier: string): Promise<void> {
  const rds = await awsClient(ctx, 'rds');
  await callAws('rds:DeleteDBInstance', dbInstanceArn(ctx.outputs, identifier), () =>
    rds.send(new DeleteDBInstanceCommand({ DBInstanceIdentifier: identifier, SkipFinalSnapshot: true, DeleteAutomatedBackups: true })),
  );
}

export function isInstanceNotFound(error: unknown): boolean {
  return isAwsError(error, 'DBInstanceNotFound', 'DBInstanceNotFoundFault');
}

export function isInstanceAlreadyExists(error: unknown): boolean {
  return isAwsError(error, 'DBInstanceAlreadyExists', 'DBInstanceAlreadyExistsFault');
}

export function isInvalidInstanceState(error: unknown): boolean {
  return isAwsError(error, 'InvalidDBInstanceState', 'InvalidDBInstanceStateFault');
}

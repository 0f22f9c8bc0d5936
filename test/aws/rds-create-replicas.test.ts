import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { CreateDBInstanceReadReplicaCommand, DeleteDBInstanceCommand } from '@aws-sdk/client-rds';
import { StepError } from '../../migrate/core/step.ts';
import { rdsCreateReplicas } from '../../migrate/steps/aws/rds-create-replicas.ts';
import { testContext } from '../support/context.ts';
import { awsOutputs, fakeClock, KMS_KEY } from './fixtures.ts';
import { fakeRds } from './rds-fake.ts';

const SOURCE = 'billing-production';
const R1 = 'billing-production-replica-1';
const R2 = 'billing-production-replica-2';
const params = (extra: object = {}) => rdsCreateReplicas.params.parse(extra);

function setup(options: Parameters<typeof fakeRds>[0] = {}) {
  const rds = fakeRds(options);
  rds.add(SOURCE);
  const clock = fakeClock();
  const t = testContext({ outputs: awsOutputs(), now: clock.now, sleep: clock.sleep });
  return { rds, clock, t };
}

describe('rds.create-replicas', () => {
  let cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of cleanup) await close();
    cleanup = [];
  });
  const open = (s: ReturnType<typeof setup>) => {
    cleanup.push(
      () => s.t.close(),
      async () => s.rds.mock.restore(),
    );
    return s;
  };

  it('creates each replica with the exact request, journalled before the call, and waits until available', async () => {
    const { rds, t, clock } = open(setup({ describesUntilAvailable: 3 }));
    rds.mock.on(CreateDBInstanceReadReplicaCommand).callsFake(async (input) => {
      // Write-ahead: the journal names the replica before RDS is asked to create it.
      assert.ok(t.changes.some((c) => (c as { identifier: string }).identifier === input.DBInstanceIdentifier));
      rds.add(input.DBInstanceIdentifier, {
        DBInstanceStatus: 'creating',
        Endpoint: undefined,
        ReadReplicaSourceDBInstanceIdentifier: SOURCE,
      });
      rds.instances.get(input.DBInstanceIdentifier)!.describesLeft = 3;
      return {};
    });

    const result = await rdsCreateReplicas.apply(t.ctx, params());

    const requests = rds.mock.commandCalls(CreateDBInstanceReadReplicaCommand).map((c) => c.args[0].input);
    const tags = [
      { Key: 'project', Value: 'billing' },
      { Key: 'environment', Value: 'production' },
      { Key: 'managed-by', Value: 'pulumi' },
      { Key: 'migrate:run-id', Value: 'test-run' },
    ];
    assert.deepEqual(requests, [
      {
        DBInstanceIdentifier: R1,
        SourceDBInstanceIdentifier: SOURCE,
        DBInstanceClass: 'db.r6g.large',
        AvailabilityZone: 'eu-west-1b',
        DBParameterGroupName: 'billing-production-pg17',
        PubliclyAccessible: false,
        EnablePerformanceInsights: true,
        PerformanceInsightsKMSKeyId: KMS_KEY,
        DeletionProtection: false,
        CopyTagsToSnapshot: true,
        Tags: tags,
      },
      {
        DBInstanceIdentifier: R2,
        SourceDBInstanceIdentifier: SOURCE,
        DBInstanceClass: 'db.r6g.large',
        AvailabilityZone: 'eu-west-1c',
        DBParameterGroupName: 'billing-production-pg17',
        PubliclyAccessible: false,
        EnablePerformanceInsights: false,
        DeletionProtection: false,
        CopyTagsToSnapshot: true,
        Tags: tags,
      },
    ]);
    assert.deepEqual(t.changes, [
      { action: 'create-replica', identifier: R1, createdByRun: true },
      { action: 'create-replica', identifier: R2, createdByRun: true },
    ]);
    assert.deepEqual(result.endpoints, [
      { identifier: R1, address: `${R1}.c1a2b3c4d5e6.eu-west-1.rds.amazonaws.com`, port: 5432 },
      { identifier: R2, address: `${R2}.c1a2b3c4d5e6.eu-west-1.rds.amazonaws.com`, port: 5432 },
    ]);
    assert.equal(result.hosts, `${R1}.c1a2b3c4d5e6.eu-west-1.rds.amazonaws.com:5432,${R2}.c1a2b3c4d5e6.eu-west-1.rds.amazonaws.com:5432`);
    // creating → available took several polls, each reported with the deadline, on the fake clock.
    const waits = t.progress.filter((p) => p.label === 'waiting for replicas to be available');
    assert.ok(waits.length >= 3, `expected several polls, saw ${waits.length}`);
    assert.match(waits[0]!.detail!, new RegExp(`${R1} creating`));
    assert.equal(waits[0]!.deadline, clock.now() - clock.elapsedMs() + 60 * 60_000);
    assert.ok(clock.sleeps.every((ms) => ms === 30_000));
  });

  it('skips a replica that already exists and never records it as created; a re-run makes no writes', async () => {
    const { rds, t } = open(setup());
    rds.add(R1, { ReadReplicaSourceDBInstanceIdentifier: SOURCE });

    await rdsCreateReplicas.apply(t.ctx, params());
    assert.deepEqual(
      rds.mock.commandCalls(CreateDBInstanceReadReplicaCommand).map((c) => c.args[0].input.DBInstanceIdentifier),
      [R2],
    );
    assert.deepEqual(t.changes, [{ action: 'create-replica', identifier: R2, createdByRun: true }]);

    const again = t.retry();
    cleanup.push(() => again.close());
    const probe = await rdsCreateReplicas.probe(again.ctx, params());
    assert.equal(probe.state, 'done');
    assert.deepEqual(
      probe.result?.endpoints.map((e) => e.identifier),
      [R1, R2],
    );
    await rdsCreateReplicas.apply(again.ctx, params());
    assert.equal(rds.mock.commandCalls(CreateDBInstanceReadReplicaCommand).length, 1, 'second apply created nothing');
    assert.deepEqual(again.changes, []);
  });

  it('follows DescribeDBInstances Marker pages (one instance per page)', async () => {
    const { rds, t } = open(setup());
    rds.add(R1, { ReadReplicaSourceDBInstanceIdentifier: SOURCE });
    rds.add(R2, { ReadReplicaSourceDBInstanceIdentifier: SOURCE });
    const probe = await rdsCreateReplicas.probe(t.ctx, params());
    assert.equal(probe.state, 'done', 'replicas on later pages were seen');
    const filter = { Filters: [{ Name: 'db-instance-id', Values: [SOURCE, R1, R2] }] };
    assert.deepEqual(rds.describes, [filter, { ...filter, Marker: '1' }, { ...filter, Marker: '2' }]);
  });

  it('fails at the deadline naming the replica still creating and what the journal holds', async () => {
    const { t, clock } = open(setup({ describesUntilAvailable: Number.MAX_SAFE_INTEGER }));
    await assert.rejects(
      rdsCreateReplicas.apply(t.ctx, params({ replicas: [R2], deadlineMinutes: 20, pollSeconds: 60 })),
      (error: unknown) => {
        assert.ok(error instanceof StepError);
        assert.match(error.message, /^Unable to create read replicas of billing-production: replicas not available after 20 minutes/);
        assert.match(error.message, new RegExp(`${R2} creating`));
        assert.equal(error.findings[0]?.object, `db ${R2}`);
        assert.match(error.findings[0]!.message, new RegExp(`recorded in the journal as created by this run: ${R2}`));
        return true;
      },
    );
    assert.equal(clock.elapsedMs(), 20 * 60_000, 'gave up exactly at the deadline, on the fake clock');
  });

  it('undo deletes only the replicas this run created, without final snapshot, and waits until gone', async () => {
    const { rds, t } = open(setup());
    rds.add(R1, { ReadReplicaSourceDBInstanceIdentifier: SOURCE });
    await rdsCreateReplicas.apply(t.ctx, params());

    await rdsCreateReplicas.undo!(t.ctx, params(), t.changes, undefined);
    assert.deepEqual(
      rds.mock.commandCalls(DeleteDBInstanceCommand).map((c) => c.args[0].input),
      [{ DBInstanceIdentifier: R2, SkipFinalSnapshot: true, DeleteAutomatedBackups: true }],
    );
    assert.ok(!rds.instances.has(R2), 'undo waited until the replica was gone');
    assert.ok(rds.instances.has(R1), 'the pre-existing replica is kept');

    // Idempotent: nothing left to delete.
    await rdsCreateReplicas.undo!(t.ctx, params(), t.changes, undefined);
    assert.equal(rds.mock.commandCalls(DeleteDBInstanceCommand).length, 1);
  });

  it('undo tolerates a journalled replica whose Create never reached RDS', async () => {
    const { rds, t } = open(setup());
    await rdsCreateReplicas.undo!(t.ctx, params(), [{ action: 'create-replica', identifier: R1, createdByRun: true }], undefined);
    assert.equal(rds.mock.commandCalls(DeleteDBInstanceCommand).length, 0);
  });

  it('dry run reads only and plans each CreateDBInstanceReadReplica with its parameters', async () => {
    const { rds, t } = open(setup());
    const probe = await rdsCreateReplicas.probe(t.ctx, params());
    assert.equal(probe.state, 'ready');
    assert.match(
      probe.plan![0]!,
      /^rds:CreateDBInstanceReadReplica DBInstanceIdentifier=billing-production-replica-1 SourceDBInstanceIdentifier=billing-production DBInstanceClass=db.r6g.large AvailabilityZone=eu-west-1b .*PubliclyAccessible=false EnablePerformanceInsights=true PerformanceInsightsKMSKeyId=arn:aws:kms:.* Tags=.*migrate:run-id:test-run/,
    );
    assert.match(probe.plan![1]!, /DBInstanceIdentifier=billing-production-replica-2 .*EnablePerformanceInsights=false/);
    assert.ok(rds.mock.calls().every((c) => c.args[0].constructor.name === 'DescribeDBInstancesCommand'));
  });

  it('is blocked when the writer has no automated backups, or an identifier is taken by another instance', async () => {
    const { rds, t } = open(setup());
    rds.instances.get(SOURCE)!.instance.BackupRetentionPeriod = 0;
    rds.add(R2, { ReadReplicaSourceDBInstanceIdentifier: 'someone-else' });
    const probe = await rdsCreateReplicas.probe(t.ctx, params());
    assert.equal(probe.state, 'blocked');
    assert.deepEqual(
      probe.findings?.filter((f) => f.severity === 'error').map((f) => f.object),
      [`db ${SOURCE}`, `db ${R2}`],
    );
    await assert.rejects(rdsCreateReplicas.apply(t.ctx, params()), (error: unknown) => {
      assert.ok(error instanceof StepError);
      assert.match(
        error.message,
        /^Unable to create read replicas of billing-production: db billing-production: automated backups are off .*; db billing-production-replica-2: exists but is not a read replica of billing-production \(replica of: someone-else\)$/,
      );
      return true;
    });
    assert.equal(rds.mock.commandCalls(CreateDBInstanceReadReplicaCommand).length, 0);
    assert.deepEqual(t.changes, []);
  });

  it("is blocked, naming the stack's replicas, when with.replicas names one the stack does not have", async () => {
    const { t } = open(setup());
    const probe = await rdsCreateReplicas.probe(t.ctx, params({ replicas: [R1, 'billing-production-replica-9'] }));
    assert.equal(probe.state, 'blocked');
    assert.deepEqual(
      probe.findings?.map((f) => [f.object, f.message]),
      [['with.replicas', `billing-production-replica-9 is not a replica of this stack (known: ${R1}, ${R2})`]],
    );
  });

  it('turns AccessDenied into an error naming the IAM action, the resource and the fix', async () => {
    const { rds, t } = open(setup());
    rds.mock.on(CreateDBInstanceReadReplicaCommand).rejects(
      Object.assign(new Error('User: arn:aws:iam::123456789012:user/ops is not authorized to perform: rds:CreateDBInstanceReadReplica'), {
        name: 'AccessDenied',
      }),
    );
    await assert.rejects(rdsCreateReplicas.apply(t.ctx, params({ replicas: [R1] })), (error: unknown) => {
      assert.ok(error instanceof StepError);
      assert.match(
        error.message,
        /permission denied: rds:CreateDBInstanceReadReplica on arn:aws:rds:eu-west-1:123456789012:db:billing-production-replica-1/,
      );
      assert.equal(error.findings[0]?.object, 'IAM action rds:CreateDBInstanceReadReplica');
      assert.match(
        error.findings[0]!.fix!,
        /grant rds:CreateDBInstanceReadReplica on arn:aws:rds:eu-west-1:123456789012:db:billing-production-replica-1/,
      );
      return true;
    });
  });
});

/**
 * rds.register-reverse-target against a stateful ELBv2 fake: the exact requests, each journalled
 * before it is sent; the target group's end state after apply, a rerun, a resume after a crash and
 * undo (twice); a skip with its reason when the reverse path needs no load balancer; a deadline
 * that names the security groups; and the IAM policy that allows exactly this.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { DeregisterTargetsCommand, DescribeTargetHealthCommand, RegisterTargetsCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { StackOutputs } from '../../infra/contract.ts';
import { REVERSE_TARGET_DNS_RESOURCE, type Resolve4 } from '../../migrate/aws/elbv2.ts';
import { cliIamPolicy } from '../../migrate/aws/iam-policy.ts';
import { ResourcePool } from '../../migrate/core/context.ts';
import type { StepError } from '../../migrate/core/step.ts';
import { rdsRegisterReverseTarget as step } from '../../migrate/steps/aws/rds-register-reverse-target.ts';
import { type TestContext, testContext } from '../support/context.ts';
import { fakeElbv2, REVERSE_LOAD_BALANCER, TARGET_GROUP_ARN as TG } from './elbv2-fake.ts';
import { awsOutputs, fakeClock } from './fixtures.ts';

const ENDPOINT = awsOutputs().database.endpoint;
const CURRENT = '10.40.21.7';
const OLD = '10.40.11.4';
const params = (extra: object = {}) => step.params.parse(extra);
const register = (ip: string) => ({ TargetGroupArn: TG, Targets: [{ Id: ip, Port: 5432 }] });

describe('rds.register-reverse-target', () => {
  let cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const close of cleanup) await close();
    cleanup = [];
  });

  /** The fake target group, and where RDS's endpoint points (changeable, as a failover does). */
  function setup(options: { outputs?: Partial<StackOutputs>; fake?: Parameters<typeof fakeElbv2>[1]; resolve?: Resolve4 } = {}) {
    const elb = fakeElbv2(TG, options.fake);
    const dns = { address: CURRENT };
    const clock = fakeClock();
    const resources = new ResourcePool();
    const resolve: Resolve4 =
      options.resolve ??
      (async (name) => {
        assert.equal(name, ENDPOINT);
        return [dns.address];
      });
    void resources.get(REVERSE_TARGET_DNS_RESOURCE, () => resolve);
    const contexts: TestContext[] = [];
    const outputs = awsOutputs({ reversePath: REVERSE_LOAD_BALANCER, ...options.outputs });
    const context = (previousChanges?: TestContext['changes']) => {
      const t = testContext({ outputs, now: clock.now, sleep: clock.sleep, resources, previousChanges });
      contexts.push(t);
      return t;
    };
    cleanup.push(
      () => elb.mock.restore(),
      async () => {
        for (const t of contexts) await t.close();
      },
    );
    return { elb, dns, clock, context };
  }
  const writes = (elb: ReturnType<typeof fakeElbv2>) => ({
    register: elb.mock.commandCalls(RegisterTargetsCommand).map((c) => c.args[0].input),
    deregister: elb.mock.commandCalls(DeregisterTargetsCommand).map((c) => c.args[0].input),
  });

  it("registers RDS's current address, journalled before the request, and waits until healthy", async () => {
    const { elb, clock, context } = setup({ fake: { describesUntilHealthy: 3 } });
    const t = context();
    elb.mock.on(RegisterTargetsCommand).callsFake(async () => {
      assert.deepEqual(t.changes, [{ action: 'register-target', targetGroupArn: TG, ip: CURRENT, port: 5432 }], 'write-ahead');
      elb.add(CURRENT, 5432, 'initial', 3);
      return {};
    });

    const probe = await step.probe(t.ctx, params());
    assert.equal(probe.state, 'ready');
    assert.deepEqual(probe.plan, [
      `elasticloadbalancing:RegisterTargets ${CURRENT}:5432 (RDS's current address) on ${TG}`,
      `wait up to 10 minutes for ${CURRENT}:5432 to be healthy`,
    ]);

    const result = await step.apply(t.ctx, params());
    assert.deepEqual(result, { targetGroupArn: TG, addresses: [CURRENT], port: 5432 });
    assert.deepEqual(writes(elb), { register: [register(CURRENT)], deregister: [] });
    assert.deepEqual(elb.state(), [`${CURRENT}:5432 healthy`]);
    const waits = t.progress.filter((p) => p.label === 'waiting for the load balancer to find RDS healthy');
    assert.ok(waits.length >= 2, `expected several polls, saw ${waits.length}`);
    assert.match(waits[0]!.detail!, new RegExp(`${CURRENT}:5432 initial \\(Elb\\.RegistrationInProgress`));
    assert.equal(waits[0]!.deadline, clock.now() - clock.elapsedMs() + 10 * 60_000);
    assert.ok(clock.sleeps.every((ms) => ms === 10_000));
    assert.deepEqual(elb.mock.commandCalls(DescribeTargetHealthCommand)[0]!.args[0].input, { TargetGroupArn: TG });
  });

  it('after a failover: registers the new address, deregisters the old one; a rerun writes nothing', async () => {
    const { elb, dns, context } = setup();
    elb.add(OLD, 5432, 'healthy');
    const t = context();
    const probe = await step.probe(t.ctx, params());
    assert.match(probe.plan!.join('\n'), new RegExp(`DeregisterTargets ${OLD}:5432 \\(not RDS's address any more\\)`));

    await step.apply(t.ctx, params());
    assert.deepEqual(writes(elb), { register: [register(CURRENT)], deregister: [register(OLD)] });
    assert.deepEqual(t.changes, [
      { action: 'register-target', targetGroupArn: TG, ip: CURRENT, port: 5432 },
      { action: 'deregister-target', targetGroupArn: TG, ip: OLD, port: 5432 },
    ]);
    // The old one drains away on the next reads.
    await step.probe(t.ctx, params());
    assert.deepEqual(elb.state(), [`${CURRENT}:5432 healthy`]);

    const again = context(t.changes);
    const rerun = await step.probe(again.ctx, params());
    assert.equal(rerun.state, 'done');
    assert.equal(rerun.skip, undefined);
    assert.deepEqual(rerun.result, { targetGroupArn: TG, addresses: [CURRENT], port: 5432 });
    assert.deepEqual(await step.check(again.ctx, params(), rerun.result!), []);
    assert.equal(writes(elb).register.length, 1);

    // RDS moves again: the same step follows it.
    dns.address = '10.40.31.9';
    const moved = context();
    await step.apply(moved.ctx, params());
    await step.probe(moved.ctx, params());
    assert.deepEqual(elb.state(), ['10.40.31.9:5432 healthy']);
  });

  it('undo deregisters what this run registered, only that, and a second undo writes nothing', async () => {
    const { elb, context } = setup();
    const t = context();
    await step.apply(t.ctx, params());
    // A registration someone else made (another port): not this run's to remove.
    elb.add(CURRENT, 6543, 'healthy');

    await step.undo!(t.ctx, params(), t.changes, undefined);
    assert.deepEqual(writes(elb).deregister, [register(CURRENT)]);
    await step.probe(t.ctx, params());
    assert.deepEqual(elb.state(), [`${CURRENT}:6543 healthy`]);

    await step.undo!(t.ctx, params(), t.changes, undefined);
    assert.equal(writes(elb).deregister.length, 1, 'idempotent');
  });

  it('resumes after dying between the journal and the request: registers then, and undo still knows it', async () => {
    const { elb, context } = setup();
    const crashed = [{ action: 'register-target', targetGroupArn: TG, ip: CURRENT, port: 5432 }];
    const t = context(crashed);
    assert.deepEqual(elb.state(), [], 'the request never went out');
    await step.apply(t.ctx, params());
    assert.deepEqual(elb.state(), [`${CURRENT}:5432 healthy`]);
    await step.undo!(t.ctx, params(), [...crashed, ...t.changes], undefined);
    await step.probe(t.ctx, params());
    assert.deepEqual(elb.state(), []);
  });

  it('a target that never turns healthy: fails at the deadline naming the security groups, and stays undoable', async () => {
    const { elb, clock, context } = setup({ fake: { becomes: 'unhealthy' } });
    const t = context();
    await assert.rejects(step.apply(t.ctx, params({ deadlineMinutes: 2, pollSeconds: 30 })), (error: StepError) => {
      assert.match(error.message, /not healthy in the reverse path's target group after 2 minutes/);
      assert.match(error.findings[0]!.message, /unhealthy \(Target\.FailedHealthChecks/);
      assert.match(error.findings[0]!.fix!, /RDS's security group admits the load balancer's group/);
      return true;
    });
    assert.equal(clock.elapsedMs(), 2 * 60_000);
    assert.deepEqual(t.changes, [{ action: 'register-target', targetGroupArn: TG, ip: CURRENT, port: 5432 }]);
    await step.undo!(t.ctx, params(), t.changes, undefined);
    assert.deepEqual(writes(elb).deregister, [register(CURRENT)]);
  });

  for (const [label, reversePath, reason] of [
    ['no reverse path', undefined, /no reverse path \(outputs\.reversePath\)/],
    ['a private link', { via: 'private-link', host: ENDPOINT, port: 5432, sslMode: 'verify-full' }, /the reverse path is private-link/],
  ] as const) {
    it(`${label}: skipped with the reason, no AWS call`, async () => {
      const { elb, context } = setup({ outputs: { reversePath } as Partial<StackOutputs> });
      const t = context();
      const probe = await step.probe(t.ctx, params());
      assert.equal(probe.state, 'done');
      assert.match(probe.skip!, reason);
      assert.equal(elb.mock.calls().length, 0);
    });
  }

  it('an endpoint that does not resolve, or a target group that does not exist: blocked, nothing written', async () => {
    const unresolved = setup({
      resolve: async () => {
        throw Object.assign(new Error('queryA ENOTFOUND'), { code: 'ENOTFOUND' });
      },
    });
    const probe = await step.probe(unresolved.context().ctx, params());
    assert.equal(probe.state, 'blocked');
    assert.match(probe.findings![0]!.message, /does not resolve to an IPv4 address from this machine \(ENOTFOUND\)/);
    assert.equal(probe.findings![0]!.object, `endpoint ${ENDPOINT}`);
    unresolved.elb.mock.restore();

    const missing = setup({ outputs: { reversePath: { ...REVERSE_LOAD_BALANCER, targetGroupArn: `${TG}0` } } });
    const t = missing.context();
    const gone = await step.probe(t.ctx, params());
    assert.equal(gone.state, 'blocked');
    assert.match(gone.findings![0]!.message, /does not exist \(outputs\.reversePath\.targetGroupArn\)/);
    await assert.rejects(step.apply(t.ctx, params()), /does not exist/);
    assert.deepEqual(writes(missing.elb), { register: [], deregister: [] });
    assert.deepEqual(t.changes, []);
  });

  it('the IAM policy: registration on exactly this target group, health read-only, nothing without a load balancer', () => {
    const policy = cliIamPolicy(awsOutputs({ reversePath: REVERSE_LOAD_BALANCER }));
    const sid = (name: string) => policy.Statement.find((s) => s.Sid === name);
    assert.deepEqual(sid('ReverseTargetRegistration')?.Action, [
      'elasticloadbalancing:RegisterTargets',
      'elasticloadbalancing:DeregisterTargets',
    ]);
    assert.deepEqual(sid('ReverseTargetRegistration')?.Resource, [TG]);
    assert.deepEqual(sid('ReverseTargetHealth')?.Action, ['elasticloadbalancing:DescribeTargetHealth']);
    for (const reversePath of [undefined, { via: 'private-link' as const, host: ENDPOINT, port: 5432, sslMode: 'verify-full' as const }]) {
      const without = cliIamPolicy(awsOutputs({ reversePath }));
      assert.deepEqual(
        without.Statement.flatMap((s) => s.Action).filter((a) => a.startsWith('elasticloadbalancing:')),
        [],
      );
    }
  });
});

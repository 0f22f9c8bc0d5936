/**
 * postgres.reverse-reach proves, from the legacy source, that its reverse subscription's connection
 * to the target opens (through outputs.reversePath, hostaddr when there is one), leaves nothing
 * behind on either server, and when it cannot, names the cause (port, password, pg_hba, TLS, DNS,
 * a dropped path) with the fix, never the password. Over a load balancer it also requires RDS's
 * current address in the target group, healthy (ELBv2 through a stateful fake).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { DescribeTargetHealthCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { StackOutputs } from '../../infra/contract.ts';
import { REVERSE_TARGET_DNS_RESOURCE, type Resolve4 } from '../../migrate/aws/elbv2.ts';
import { ResourcePool } from '../../migrate/core/context.ts';
import type { Probe } from '../../migrate/core/step.ts';
import { freePort } from '../../migrate/local/postgres-server.ts';
import { reverseReach } from '../../migrate/steps/postgres/reverse-reach.ts';
import { fakeElbv2 } from '../aws/elbv2-fake.ts';
import { type Pair, startPair } from './fixtures.ts';

const WRONG = 'Wrong-Planted-pw-91q';
const REJECTED_ROLE = 'reverse_rejected';
const REJECTED_PASSWORD = 'Rejected-Planted-pw-52k';
const REACH = 'source → target connection (the reverse subscription)';
const TG = 'arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/postgres/0123456789abcdef';
const RDS_IP = '10.40.3.7';

type ReversePath = NonNullable<StackOutputs['reversePath']>;

describe('postgres.reverse-reach: the legacy source reaches the target as its reverse subscription will', () => {
  let pair: Pair;
  let elb: ReturnType<typeof fakeElbv2> | undefined;
  const secrets = () => [pair.target.password, WRONG, REJECTED_PASSWORD];

  const secretFile = (name: string, value: string) => {
    const path = join(pair.dir, name);
    writeFileSync(path, value, { mode: 0o600 });
    return `file:${path}`;
  };

  /** Probes with `reversePath` (or none) and database overrides; returns the probe and this check's findings. */
  const probeWith = async (
    reversePath: Partial<ReversePath> | null,
    options: { database?: Partial<StackOutputs['database']>; params?: object; resolve?: Resolve4 } = {},
  ) => {
    const base = pair.outputs.reversePath!;
    const outputs: StackOutputs = {
      ...pair.outputs,
      database: { ...pair.outputs.database, ...options.database },
      reversePath: reversePath === null ? undefined : ({ ...base, ...reversePath } as ReversePath),
    };
    const resources = new ResourcePool();
    if (options.resolve) void resources.get(REVERSE_TARGET_DNS_RESOURCE, () => options.resolve!);
    const t = pair.context({ outputs, resources });
    const probe: Probe = await reverseReach.probe(t.ctx, reverseReach.params.parse(options.params ?? {}));
    const printed = JSON.stringify(probe) + t.lines.join('\n');
    for (const secret of secrets()) assert.ok(!printed.includes(secret), 'a password reached the findings or the log');
    return { probe, reach: probe.findings!.filter((f) => f.object === REACH), t };
  };

  const nothingLeftBehind = async () => {
    assert.equal((await pair.sql('source', 'select count(*)::int as n from pg_subscription')).rows[0].n, 0, 'a subscription on the source');
    assert.equal((await pair.sql('target', 'select count(*)::int as n from pg_replication_slots')).rows[0].n, 0, 'a slot on the target');
    assert.equal(
      (await pair.sql('source', 'select count(*)::int as n from pg_replication_origin')).rows[0].n,
      0,
      'an origin on the source',
    );
  };

  before(async () => {
    pair = await startPair();
    // The app's schema exists on both sides, as after the switch.
    await pair.sql('source', 'create table public.orders (id int primary key, total numeric)');
    await pair.sql('target', 'create table public.orders (id int primary key, total numeric)');
    await pair.sql('target', `create role ${REJECTED_ROLE} login superuser password '${REJECTED_PASSWORD}'`);
    // pg_hba is read top-down: this role is rejected before the generic scram line admits it.
    const hba = join(pair.target.dataDir, 'pg_hba.conf');
    writeFileSync(hba, `host all ${REJECTED_ROLE} 127.0.0.1/32 reject\n${readFileSync(hba, 'utf8')}`);
    await pair.sql('target', 'select pg_reload_conf()');
  });
  afterEach(() => {
    elb?.mock.restore();
    elb = undefined;
  });
  after(async () => {
    await pair?.stop();
  });

  it('connects from the source to the target: done, and nothing is left on either server', async () => {
    const { probe, reach } = await probeWith({});
    assert.equal(probe.state, 'done');
    assert.deepEqual(
      reach.map((f) => [f.severity, f.message]),
      [['info', `the source connected to the target (127.0.0.1:${pair.target.port}, via local) as its reverse subscription will`]],
    );
    assert.deepEqual(probe.result, { via: 'local', dialled: `127.0.0.1:${pair.target.port}`, targetsChecked: false });
    await nothingLeftBehind();
  });

  it('dials hostaddr, not host: a name that does not resolve is only the certificate name', async () => {
    const { probe } = await probeWith({ host: 'postgres.c1a2b3.eu-west-1.rds.example.invalid', hostaddr: '127.0.0.1' });
    assert.equal(probe.state, 'done');
    await nothingLeftBehind();
  });

  it("a CA bundle path is harmless where TLS is off (the rehearsal's runbooks pass the real stack's)", async () => {
    const { probe } = await probeWith({}, { params: { sslRootCert: '/nonexistent/rds-global-bundle.pem' } });
    assert.equal(probe.state, 'done');
  });

  it("the password stays out of the legacy server's log, even with log_statement = all", async () => {
    await pair.sql('source', "alter system set log_statement = 'all'");
    await pair.sql('source', 'alter system set log_min_duration_statement = 0');
    await pair.sql('source', 'select pg_reload_conf()');
    try {
      const wrong = secretFile('logged.password', WRONG);
      await probeWith({}, { database: { masterPasswordRef: wrong } });
      await probeWith({});
      const log = readFileSync(join(dirname(pair.source.dataDir), 'server.log'), 'utf8');
      assert.match(log, /statement: savepoint quiet/, 'the source logs statements');
      for (const secret of [WRONG, pair.target.password]) assert.ok(!log.includes(secret), 'a password in the source server log');
    } finally {
      await pair.sql('source', 'alter system reset log_statement');
      await pair.sql('source', 'alter system reset log_min_duration_statement');
      await pair.sql('source', 'select pg_reload_conf()');
    }
  });

  it('no reverse path in the outputs: blocked, saying how to enable it', async () => {
    const { probe } = await probeWith(null);
    assert.equal(probe.state, 'blocked');
    const [finding] = probe.findings!;
    assert.equal(finding!.object, 'outputs.reversePath');
    assert.match(finding!.fix!, /cutover:reversePath: \{ enabled: true \}.*pulumi up/);
  });

  it('a wrong port: blocked, the port named, the allow-list and outputs.reversePath in the fix', async () => {
    const port = await freePort();
    const { probe, reach } = await probeWith({ port });
    assert.equal(probe.state, 'blocked');
    assert.equal(reach[0]!.severity, 'error');
    assert.match(reach[0]!.message, new RegExp(`to 127\\.0\\.0\\.1:${port}, via local.*Connection refused.*likely cause: the port`, 's'));
    assert.match(reach[0]!.fix!, /outputs\.reversePath\.port/);
    await nothingLeftBehind();
  });

  it('a wrong master password: blocked, the password named, never printed', async () => {
    const { probe, reach } = await probeWith({}, { database: { masterPasswordRef: secretFile('wrong.password', WRONG) } });
    assert.equal(probe.state, 'blocked');
    assert.match(reach[0]!.message, /password authentication failed.*likely cause: the master password/s);
    assert.match(reach[0]!.fix!, /outputs\.database\.masterPasswordRef/);
  });

  it("the target's pg_hba.conf rejects the source: blocked, pg_hba named with the line to add", async () => {
    const { probe, reach } = await probeWith(
      {},
      { database: { masterUsername: REJECTED_ROLE, masterPasswordRef: secretFile('rejected.password', REJECTED_PASSWORD) } },
    );
    assert.equal(probe.state, 'blocked');
    assert.match(reach[0]!.message, /pg_hba\.conf rejects connection.*likely cause: the target's pg_hba\.conf/s);
    assert.match(reach[0]!.fix!, new RegExp(`pg_hba\\.conf line on the target .*user ${REJECTED_ROLE}`));
    await nothingLeftBehind();
  });

  it('TLS the target does not offer: blocked, TLS named with the CA bundle and the certificate name', async () => {
    const { probe, reach } = await probeWith({ sslMode: 'verify-full' }, { params: { sslRootCert: '/etc/ssl/rds/global-bundle.pem' } });
    assert.equal(probe.state, 'blocked');
    assert.match(reach[0]!.message, /likely cause: TLS/);
    assert.match(reach[0]!.fix!, /with\.sslRootCert.*host=127\.0\.0\.1 \(outputs\.reversePath\.host\)/);
  });

  it('a host name the legacy server cannot resolve: blocked, DNS named', async () => {
    const { probe, reach } = await probeWith({ via: 'private-link', host: 'postgres.c1a2b3.eu-west-1.rds.example.invalid' });
    assert.equal(probe.state, 'blocked');
    assert.match(reach[0]!.message, /likely cause: DNS: the legacy server cannot resolve postgres\.c1a2b3/);
  });

  it('packets dropped on the way: blocked within the timeout, the security group and the allow-list named', async () => {
    const { probe, reach } = await probeWith({ via: 'private-link', host: '10.255.255.1' }, { params: { timeoutSeconds: 2 } });
    assert.equal(probe.state, 'blocked');
    assert.match(reach[0]!.message, /likely cause: the network path \(timeout\)/);
    assert.match(reach[0]!.fix!, /security group must admit.*cutover:reversePath\.allowedCidrs/);
    await nothingLeftBehind();
  });

  describe('over a load balancer: the target group must hold RDS current address, healthy', () => {
    const lb = () => ({ via: 'load-balancer' as const, host: 'rds.example.invalid', hostaddr: '127.0.0.1', targetGroupArn: TG });
    const resolve: Resolve4 = async (name) => {
      assert.equal(name, pair.outputs.database.endpoint);
      return [RDS_IP];
    };

    it('registered and healthy: done, the target group read once with its ARN', async () => {
      elb = fakeElbv2(TG);
      elb.add(RDS_IP, pair.target.port);
      const { probe, reach } = await probeWith(lb(), { resolve });
      assert.equal(probe.state, 'done', JSON.stringify(probe.findings));
      assert.equal(reach[0]!.severity, 'info');
      assert.deepEqual(
        elb.mock.commandCalls(DescribeTargetHealthCommand).map((c) => c.args[0].input),
        [{ TargetGroupArn: TG }],
      );
      assert.deepEqual(probe.result, {
        via: 'load-balancer',
        dialled: `127.0.0.1 (rds.example.invalid):${pair.target.port}`,
        targetsChecked: true,
      });
    });

    it('only an old address registered: blocked, telling to run the register step; the stale one a warning', async () => {
      elb = fakeElbv2(TG);
      elb.add('10.40.1.99', pair.target.port);
      const { probe } = await probeWith(lb(), { resolve });
      assert.equal(probe.state, 'blocked');
      const group = probe.findings!.filter((f) => f.object === 'target group targetgroup/postgres/0123456789abcdef');
      assert.deepEqual(
        group.map((f) => f.severity),
        ['error', 'warning'],
      );
      assert.match(group[0]!.message, new RegExp(`current address ${RDS_IP.replace(/\./g, '\\.')}:${pair.target.port} is not registered`));
      assert.match(group[0]!.fix!, /rds\.register-reverse-target/);
      assert.equal(elb.state().length, 1, 'the check changed nothing');
    });

    it('registered but failing health checks: blocked, the security group named', async () => {
      elb = fakeElbv2(TG);
      elb.add(RDS_IP, pair.target.port, 'unhealthy');
      const { probe } = await probeWith(lb(), { resolve });
      assert.equal(probe.state, 'blocked');
      const error = probe.findings!.find((f) => f.severity === 'error')!;
      assert.match(error.message, /registered but not healthy: .* unhealthy \(Target\.FailedHealthChecks/);
      assert.match(error.fix!, /security group admits the load balancer/);
    });

    it('a target group that does not exist: blocked, pulumi up named', async () => {
      elb = fakeElbv2('arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/other/1');
      const { probe } = await probeWith(lb(), { resolve });
      assert.equal(probe.state, 'blocked');
      assert.match(probe.findings!.find((f) => f.severity === 'error')!.fix!, /pulumi up with cutover:reversePath\.enabled: true/);
    });
  });
});

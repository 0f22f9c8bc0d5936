/**
 * Preflight proves, from the target, that the subscription's connection to the source opens (RDS
 * connects out to the legacy source; this machine reaching it proves nothing), leaves nothing behind,
 * and when it cannot, says which of port, password, TLS, or network path and allow-list (naming the
 * NAT IPs from the outputs) is the likely cause, without the password.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { StackOutputs } from '../../infra/contract.ts';
import { freePort } from '../../migrate/local/postgres-server.ts';
import { preflight } from '../../migrate/steps/postgres/preflight.ts';
import { DATABASE, type Pair, startPair } from './fixtures.ts';

const WRONG = 'Wrong-Planted-pw-77x';
const NAT = ['203.0.113.7', '203.0.113.8'];
const REACH = 'target → source connection (the subscription)';

describe('preflight: the target reaches the source as its subscription will', () => {
  let pair: Pair;
  const findingsWith = async (subscriptionUrl: string | null, extra: Record<string, unknown> = {}) => {
    process.env.MIGRATE_TEST_SUBSCRIPTION_URL = subscriptionUrl ?? '';
    const outputs: StackOutputs = {
      ...pair.outputs,
      network: { ...pair.outputs.network, natPublicIps: NAT },
      source: subscriptionUrl ? { ...pair.outputs.source, subscriptionUrlRef: 'env:MIGRATE_TEST_SUBSCRIPTION_URL' } : pair.outputs.source,
    };
    const t = pair.context({ outputs });
    const probe = await preflight.probe(t.ctx, preflight.params.parse({ ...extra }));
    return probe.findings!.filter((f) => f.object === REACH);
  };
  const sourceUrl = (change: (u: URL) => void) => {
    const u = new URL(pair.source.url(DATABASE));
    change(u);
    return u.toString();
  };

  before(async () => {
    pair = await startPair();
    await pair.sql('source', 'create table public.t (id int primary key)');
    await pair.sql('target', 'create table public.t (id int primary key)');
  });
  after(async () => {
    delete process.env.MIGRATE_TEST_SUBSCRIPTION_URL;
    await pair?.stop();
  });

  it('connects from the target and leaves no subscription or slot behind', async () => {
    const findings = await findingsWith(null);
    assert.deepEqual(
      findings.map((f) => [f.severity, f.message]),
      [['info', 'the target connected to the source as its subscription will']],
    );
    assert.equal((await pair.sql('target', 'select count(*)::int as n from pg_subscription')).rows[0].n, 0);
    assert.equal((await pair.sql('source', 'select count(*)::int as n from pg_replication_slots')).rows[0].n, 0);
  });

  it('a closed port: blocking, the port named as the likely cause, the NAT IPs in the fix', async () => {
    const port = await freePort();
    const [finding] = await findingsWith(sourceUrl((u) => (u.port = String(port))));
    assert.equal(finding!.severity, 'error');
    assert.match(finding!.message, /Connection refused.*likely cause: the source port/s);
    assert.match(finding!.fix!, /203\.0\.113\.7, 203\.0\.113\.8 \(outputs\.network\.natPublicIps\)/);
  });

  it('a wrong password: the password named, and never printed', async () => {
    const findings = await findingsWith(sourceUrl((u) => (u.password = WRONG)));
    assert.equal(findings[0]!.severity, 'error');
    assert.match(findings[0]!.message, /likely cause: the password/);
    assert.ok(!JSON.stringify(findings).includes(WRONG));
  });

  it('TLS the source does not offer: TLS named', async () => {
    const [finding] = await findingsWith(sourceUrl((u) => u.searchParams.set('sslmode', 'require')));
    assert.equal(finding!.severity, 'error');
    assert.match(finding!.message, /likely cause: TLS/);
  });

  it('packets dropped on the way: egress, route and allow-list named, within the timeout', async () => {
    const [finding] = await findingsWith(
      sourceUrl((u) => (u.hostname = '10.255.255.1')),
      { reachTimeoutSeconds: 2 },
    );
    assert.equal(finding!.severity, 'error');
    assert.match(finding!.message, /likely cause: the network path/);
    assert.match(finding!.fix!, /egress.*route.*203\.0\.113\.7/s);
  });
});

/**
 * The rehearsal's user-facing measurement, on its own: a client that resolves the app's name through
 * the DNS stand-in and honours the record's TTL, two app stand-ins on their own loopback addresses
 * writing to a real PostgreSQL, and the record moved from one to the other. Everything asserted
 * comes from the client's own log and the database, not from what the parts say about themselves.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type AppStandin, startAppStandin } from '../../migrate/local/app-standin.ts';
import { type DnsServer, startDnsServer } from '../../migrate/local/dns-standin.ts';
import type { PostgresServer } from '../../migrate/local/postgres-server.ts';
import { APP_DATABASE, seedSource } from '../../migrate/rehearse/seed.ts';
import { longestUserGap, UserClient } from '../../migrate/rehearse/user-client.ts';
import { startServers } from '../support/servers.ts';

const NAME = 'app.rehearsal.test';
let server: PostgresServer;
let dns: DnsServer;
let legacy: AppStandin;
let next: AppStandin;
const dir = mkdtempSync(join(tmpdir(), 'user-client-'));
const marker = join(dir, 'legacy-stopped');

before(async () => {
  [server] = await startServers([{ name: 'app' }], { database: APP_DATABASE });
  const admin = await server.client(APP_DATABASE);
  await seedSource(admin, 50, 'app-password-1');
  await admin.end();
  const connectionString = server.url(APP_DATABASE);
  legacy = await startAppStandin({
    name: 'legacy',
    address: '127.0.0.1',
    port: 0,
    connectionString,
    customers: 50,
    serving: true,
    stoppedMarker: marker,
  });
  next = await startAppStandin({ name: 'new', address: '127.0.0.2', port: legacy.port, connectionString, customers: 50, serving: true });
  dns = await startDnsServer();
});
after(async () => {
  await legacy?.stop();
  await next?.stop();
  await dns?.close();
  await server?.stop();
});

const waitFor = async (what: string, condition: () => boolean) => {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(condition(), `timed out waiting for ${what}`);
};

test('the client follows the record only once its TTL has run out, loses no write, and its log gives the gap', async () => {
  dns.set(NAME, 'A', ['127.0.0.1'], 2);
  const client = new UserClient({ name: NAME, dnsServer: dns.address, port: legacy.port, thinkMs: 10, timeoutMs: 5000 }).start();
  const started = Date.now();
  await waitFor('writes through the legacy app', () => client.log.filter((w) => w.ok && w.app === 'legacy').length >= 5);

  dns.set(NAME, 'A', ['127.0.0.2'], 2);
  const moved = Date.now();
  await waitFor('the first write through the new app', () => client.log.some((w) => w.ok && w.app === 'new'));
  // Only after the cached answer expired may the legacy app be stopped: nobody reaches it any more.
  writeFileSync(marker, '');
  await waitFor('more writes through the new app', () => client.log.filter((w) => w.ok && w.app === 'new').length >= 5);
  const log = await client.stop();
  const ended = Date.now();

  const firstNew = log.find((w) => w.ok && w.app === 'new')!.at;
  const legacyAfterMove = log.filter((w) => w.ok && w.app === 'legacy' && w.at > moved);
  assert.ok(legacyAfterMove.length > 0, 'a client honouring the TTL keeps the cached answer for a while after the move');
  assert.ok(
    firstNew - moved <= 2000 + 3000,
    `the cached answer lives at most its TTL (2 s): first new write ${firstNew - moved} ms after the move`,
  );
  assert.ok(
    log.every((w) => !(w.app === 'legacy' && w.at > firstNew + 10)),
    'once switched, the client never went back',
  );
  assert.deepEqual(
    log.filter((w) => !w.ok),
    [],
    'no write failed',
  );

  // The gap the client saw, from its own log, and every write it was told committed is in the database.
  const gap = longestUserGap(log, started, ended);
  const okTimes = log.filter((w) => w.ok).map((w) => w.at);
  const own = Math.max(...okTimes.slice(1).map((t, i) => t - okTimes[i]!));
  assert.ok(gap.ms >= own, 'the reported gap is at least the longest gap between logged successes');
  assert.equal(gap.failures, 0);
  const db = await server.client(APP_DATABASE);
  const ids = client.committedIds();
  const { rows } = await db.query<{ n: string }>('select count(*) as n from public.orders where id = any($1::bigint[])', [ids]);
  await db.end();
  assert.equal(Number(rows[0]!.n), ids.length);
  assert.equal(ids.length, legacy.served + next.served);
});

test('a stopped app answers 503 and the client logs each failure with the app that refused it', async () => {
  dns.set(NAME, 'A', ['127.0.0.1'], 1);
  writeFileSync(marker, '');
  const client = new UserClient({ name: NAME, dnsServer: dns.address, port: legacy.port, thinkMs: 10, timeoutMs: 5000 }).start();
  await waitFor('failures', () => client.log.filter((w) => !w.ok).length >= 3);
  const log = await client.stop();
  assert.ok(log.every((w) => !w.ok && w.app === 'legacy' && /503/.test(w.error ?? '')));
  const gap = longestUserGap(log, log[0]!.at - 1, log.at(-1)!.at + 1);
  assert.ok(gap.failures >= 3);
});

/**
 * Run by left-running.test.ts as its own process (`node --import tsx`), as the test runner runs a
 * test file: starts a server or a PgBouncer and, depending on the scenario, stops, forgets or
 * releases it. Prints what it started as one JSON line so the parent can look for it afterwards.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPgbouncer } from '../../migrate/local/pgbouncer.ts';
import { startPostgres } from '../../migrate/local/postgres-server.ts';
import { startAll } from '../../migrate/local/running.ts';

const scenario = process.argv[2];
const pidOf = (file: string) => Number(readFileSync(file, 'utf8').split('\n')[0]);
// No backend is needed: PgBouncer connects to it only when a client does.
const bouncer = () => startPgbouncer({ database: 'app', backend: { host: '127.0.0.1', port: 1 }, user: 'app', password: 'pw' });

switch (scenario) {
  case 'forget-postgres': {
    const server = await startPostgres({ name: 'forgotten' });
    console.log(JSON.stringify({ pid: pidOf(join(server.dataDir, 'postmaster.pid')), port: server.port, dataDir: server.dataDir }));
    break;
  }
  case 'forget-pgbouncer':
  case 'release-pgbouncer': {
    const pgb = await bouncer();
    console.log(JSON.stringify({ pid: pidOf(join(pgb.dir, 'pgbouncer.pid')), port: pgb.port, dir: pgb.dir }));
    if (scenario === 'release-pgbouncer') pgb.release();
    break;
  }
  case 'stop-both': {
    const [server, pgb] = await startAll([startPostgres({ name: 'stopped' }), bouncer()]);
    console.log(JSON.stringify({ pids: [pidOf(join(server.dataDir, 'postmaster.pid')), pidOf(join(pgb.dir, 'pgbouncer.pid'))] }));
    await pgb.stop();
    await server.stop();
    break;
  }
  case 'sibling-fails': {
    // The failing start rejects at once, while the other server is still starting.
    const error = await startAll([startPostgres({ name: 'sibling' }), startPostgres({ name: 'broken', bindir: '/nonexistent' })]).then(
      () => undefined,
      (e: Error) => e.message,
    );
    console.log(JSON.stringify({ error }));
    break;
  }
  default:
    throw new Error(`unknown scenario ${scenario}`);
}

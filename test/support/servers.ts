/**
 * Starting real servers for a test so that a failure part-way leaves nothing running: what started
 * is stopped before the error reaches the test's `before`, whose `after` could not know about it.
 */
import { type PostgresServer, type PostgresServerOptions, startPostgres } from '../../migrate/local/postgres-server.ts';
import { type Stoppable, startAll } from '../../migrate/local/running.ts';

export { startAll };

/** Runs `prepare`; when it fails, stops `started` (all of them, whatever else fails) and rethrows. */
export async function orStop<T>(started: readonly Stoppable[], prepare: () => Promise<T>): Promise<T> {
  try {
    return await prepare();
  } catch (error) {
    await Promise.allSettled(started.map((s) => s.stop()));
    throw error;
  }
}

/**
 * PostgreSQL servers started side by side, each with `database` created and then `sql` (if any) run
 * in it as the superuser.
 */
export async function startServers<const T extends readonly PostgresServerOptions[]>(
  options: T,
  app?: { database: string; sql?: string },
): Promise<{ -readonly [K in keyof T]: PostgresServer }> {
  const servers = await startAll<PostgresServer[]>(options.map((o) => startPostgres(o)));
  if (app) {
    await orStop(servers, async () => {
      for (const server of servers) {
        const admin = await server.client();
        await admin.query(`create database ${app.database}`);
        await admin.end();
        if (!app.sql) continue;
        const client = await server.client(app.database);
        try {
          await client.query(app.sql);
        } finally {
          await client.end();
        }
      }
    });
  }
  return servers as { -readonly [K in keyof T]: PostgresServer };
}

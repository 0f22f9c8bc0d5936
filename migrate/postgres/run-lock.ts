/**
 * The cross-machine half of the run lock: a session-level advisory lock on the target database,
 * held for the whole run by a dedicated connection. Two operators with different state dirs still
 * exclude each other, and a killed CLI releases it with its session.
 */
import pg from 'pg';
import type { RunServices } from '../core/context.ts';
import { LockHeldError } from '../core/lock.ts';
import type { Runbook } from '../core/runbook.ts';
import { connectClient, connectionConfig, endpointOf, targetUrl } from './connections.ts';

const LOCK_PREFIX = 'migrate-lock:';

export async function targetAdvisoryLock(runbook: Runbook, services: RunServices): Promise<() => Promise<void>> {
  if (!runbook.steps.some((s) => s.kind.requires.includes('postgres'))) return async () => {};
  const url = await targetUrl({ outputs: services.outputs, secret: services.secret });
  // The lock's queries are instant: a server that stops answering must fail the run, not hang it.
  const client = new pg.Client({
    ...connectionConfig(url, `${LOCK_PREFIX}${services.runId}`),
    statement_timeout: 30_000,
    lock_timeout: 10_000,
    query_timeout: 60_000,
  });
  await connectClient(client, endpointOf(services.outputs, 'target'), services.signal);
  const key = `migrate:${services.stack}`;
  const { rows } = await client.query<{ locked: boolean }>('select pg_try_advisory_lock(hashtext($1)) as locked', [key]);
  if (!rows[0]?.locked) {
    const holder = await client.query<{ application_name: string; client_addr: string | null }>(
      `select a.application_name, a.client_addr::text from pg_locks l join pg_stat_activity a using (pid)
        where l.locktype = 'advisory' and l.granted and l.objid = (hashtext($1)::bigint & 4294967295)::oid`,
      [key],
    );
    await client.end();
    const who = holder.rows[0];
    throw new LockHeldError(
      `Another migrate run holds the lock for stack '${services.stack}' on the target database` +
        (who ? ` (${who.application_name.replace(LOCK_PREFIX, 'run ')} from ${who.client_addr ?? 'a local socket'})` : '') +
        '. Wait for it to finish.',
    );
  }
  return async () => {
    await client.end();
  };
}

/**
 * Connections to the two databases of a cutover, built from the stack outputs: the legacy source
 * (its URL is a secret reference) and the RDS target (endpoint from the outputs, master password
 * from a secret reference). Pools are per run and shared by every step.
 *
 * Every connection the CLI opens waits at most `connectTimeoutSeconds()` for a server to answer,
 * never crashes the process with an 'error' event, and when it cannot connect says which server
 * (side, host:port) and which outputs field to fix.
 */
import { connect as tcpConnect } from 'node:net';
import pg from 'pg';
import type { StackOutputs } from '../../infra/contract.ts';
import type { Secret } from '../core/secret.ts';
import { redact, Secret as SecretValue } from '../core/secret.ts';
import type { StepContext } from '../core/step.ts';

export type Side = 'source' | 'target';

export async function sourceUrl(ctx: Pick<StepContext, 'outputs' | 'secret'>): Promise<Secret> {
  return ctx.secret(ctx.outputs.source.urlRef);
}

/** The source as the target server reaches it, for CREATE SUBSCRIPTION. */
export async function subscriptionSourceUrl(ctx: Pick<StepContext, 'outputs' | 'secret'>): Promise<Secret> {
  return ctx.secret(ctx.outputs.source.subscriptionUrlRef ?? ctx.outputs.source.urlRef);
}

export async function targetUrl(ctx: Pick<StepContext, 'outputs' | 'secret'>): Promise<Secret> {
  const db = ctx.outputs.database;
  const password = await ctx.secret(db.masterPasswordRef);
  const auth = `${encodeURIComponent(db.masterUsername)}:${encodeURIComponent(password.reveal())}`;
  const url = `postgres://${auth}@${db.endpoint}:${db.port}/${encodeURIComponent(db.name)}?sslmode=${db.sslMode}`;
  return new SecretValue(url);
}

/**
 * Seconds to wait for a server to answer a connection. libpq's own variable, so psql, pg_dump and the
 * CLI give up together; 15 by default (a firewall that drops packets must fail as "cannot connect",
 * and a server that accepts TCP but never answers must not hang the CLI).
 */
export function connectTimeoutSeconds(): number {
  const value = Number(process.env.PGCONNECT_TIMEOUT);
  return Number.isFinite(value) && value > 0 ? value : 15;
}

export function connectionConfig(url: Secret, applicationName: string): pg.PoolConfig {
  const parsed = new URL(url.reveal());
  const sslmode = parsed.searchParams.get('sslmode');
  parsed.searchParams.delete('sslmode');
  // node-postgres treats sslmode=require as verify-full; keep libpq's meaning instead.
  const ssl = sslmode === 'verify-full' ? { rejectUnauthorized: true } : sslmode === 'require' ? { rejectUnauthorized: false } : undefined;
  return {
    connectionString: parsed.toString(),
    ssl,
    application_name: applicationName,
    connectionTimeoutMillis: connectTimeoutSeconds() * 1000,
    // A server that vanishes mid-run (network cut) is noticed by the OS instead of never.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  };
}

/** Which server a connection goes to, for error messages: never the password. */
export interface Endpoint {
  side: 'source' | 'target' | 'PgBouncer';
  /** e.g. `target (rehearsal-target)` */
  label: string;
  host: string;
  port: number;
  /** The outputs field an operator fixes, per kind of failure. */
  fields: { address: string; auth: string; database: string; ssl: string };
}

export function endpointOf(outputs: StackOutputs, side: Side, url?: Secret): Endpoint {
  if (side === 'target') {
    const db = outputs.database;
    return {
      side,
      label: describeSide(outputs, side),
      host: db.endpoint,
      port: db.port,
      fields: {
        address: 'outputs database.endpoint / database.port',
        auth: 'outputs database.masterUsername / database.masterPasswordRef',
        database: 'outputs database.name',
        ssl: 'outputs database.sslMode',
      },
    };
  }
  const parsed = url ? new URL(url.reveal()) : undefined;
  const field = `the URL behind outputs source.urlRef (${outputs.source.urlRef})`;
  return {
    side,
    label: describeSide(outputs, side),
    host: parsed ? parsed.hostname.replace(/^\[|\]$/g, '') : '?',
    port: parsed ? Number(parsed.port || 5432) : 5432,
    fields: {
      address: `${field}: host and port`,
      auth: `${field}: user and password`,
      database: `${field}: database name`,
      ssl: `${field}: sslmode`,
    },
  };
}

export class ConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConnectionError';
  }
}

const ADDRESS_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET']);

/** "cannot connect to the target (…) at host:port: <reason>. Fix <field>." with secrets scrubbed. */
export function connectionError(error: unknown, where: Endpoint): ConnectionError {
  const e = error as { code?: string; message?: string };
  const reason = redact(e?.message ?? String(error));
  let field = where.fields.address;
  let hint = '';
  if (e?.code === '28P01' || e?.code === '28000') field = where.fields.auth;
  else if (e?.code === '3D000') field = where.fields.database;
  else if (/ssl|certificate|self.signed/i.test(reason)) field = where.fields.ssl;
  else if (/timeout/i.test(reason))
    hint = ` (no answer within ${connectTimeoutSeconds()} s: a firewall dropping packets, or a server that accepts but does not answer; PGCONNECT_TIMEOUT sets the wait)`;
  else if (e?.code === 'ECONNREFUSED') hint = ' (nothing listens there)';
  else if (e?.code && !ADDRESS_CODES.has(e.code)) field = `${where.fields.auth}, ${where.fields.database}`;
  return new ConnectionError(
    `cannot connect to the ${where.label} at ${where.host}:${where.port}: ${reason}${hint}. Check ${field}, and that this machine can reach it.`,
  );
}

/** Connects `client`, giving up when `signal` aborts (Ctrl-C) as well as on the connect timeout. */
export async function connectClient(client: pg.Client, where: Endpoint, signal?: AbortSignal): Promise<void> {
  client.on('error', () => {});
  signal?.throwIfAborted();
  // end() on a connecting client only half-closes; a server that never answers would keep the socket open.
  const onAbort = () => (client as pg.Client & { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await client.connect();
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    throw connectionError(error, where);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Asks the server to cancel what `client` is running (the protocol's CancelRequest on a new socket,
 * as libpq's PQcancel does): a statement waiting for a lock stops now rather than when it is granted.
 */
function cancelRunningQuery(client: pg.Client): Promise<void> {
  const { processID, secretKey, host, port } = client as pg.Client & { processID: number | null; secretKey: number | null };
  if (processID === null || secretKey === null) return Promise.resolve();
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port }, () => {
      const request = Buffer.alloc(16);
      request.writeInt32BE(16, 0);
      request.writeInt32BE(80877102, 4);
      request.writeInt32BE(processID, 8);
      request.writeInt32BE(secretKey, 12);
      socket.end(request);
    });
    socket.setTimeout(2000, () => socket.destroy());
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
  });
}

/** A pool on one side, shared by all steps of the run; closed when the run ends. */
export async function pool(ctx: StepContext, side: Side): Promise<pg.Pool> {
  return ctx.resource(
    `pg:${side}`,
    async () => {
      const url = side === 'source' ? await sourceUrl(ctx) : await targetUrl(ctx);
      const p = new pg.Pool({ ...connectionConfig(url, 'migrate'), max: 8 });
      // A client dropped by the server (terminated by the freeze, a restart) must not crash the CLI,
      // idle in the pool or checked out by a step: the step sees the failure on its next query.
      p.on('error', () => {});
      p.on('connect', (client) => client.on('error', () => {}));
      // Ctrl-C must not wait for a statement blocked on the server (a lock, a long scan): cancel what
      // every checked-out client runs (a cancel reaching an idle session is ignored by the server).
      const checkedOut = new Set<pg.Client>();
      p.on('acquire', (client) => checkedOut.add(client));
      p.on('release', (_error, client) => checkedOut.delete(client));
      p.on('remove', (client) => checkedOut.delete(client));
      const onAbort = () => {
        for (const client of checkedOut) void cancelRunningQuery(client);
      };
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      // Connect once first, so that a server that cannot be reached is named with the field to fix, and
      // Ctrl-C does not wait for the connect timeout.
      const probe = new pg.Client(connectionConfig(url, 'migrate'));
      try {
        await connectClient(probe, endpointOf(ctx.outputs, side, url), ctx.signal);
      } catch (error) {
        await p.end().catch(() => {});
        throw error;
      }
      await probe.end().catch(() => {});
      return p;
    },
    (p) => p.end(),
  );
}

export function describeSide(outputs: StackOutputs, side: Side): string {
  return side === 'source' ? 'source (legacy)' : `target (${outputs.database.identifier})`;
}

/**
 * Connections to the two databases of a cutover, built from the stack outputs: the legacy source
 * (its URL is a secret reference) and the RDS target (endpoint from the outputs, master password
 * from a secret reference). Pools are per run and shared by every step.
 */
import pg from 'pg';
import type { StackOutputs } from '../../infra/contract.ts';
import type { StepContext } from '../core/step.ts';
import type { Secret } from '../core/secret.ts';
import { Secret as SecretValue } from '../core/secret.ts';

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

export function connectionConfig(url: Secret, applicationName: string): pg.PoolConfig {
  const parsed = new URL(url.reveal());
  const sslmode = parsed.searchParams.get('sslmode');
  parsed.searchParams.delete('sslmode');
  // node-postgres treats sslmode=require as verify-full; keep libpq's meaning instead.
  const ssl = sslmode === 'verify-full' ? { rejectUnauthorized: true } : sslmode === 'require' ? { rejectUnauthorized: false } : undefined;
  return { connectionString: parsed.toString(), ssl, application_name: applicationName };
}

/** A pool on one side, shared by all steps of the run; closed when the run ends. */
export async function pool(ctx: StepContext, side: Side): Promise<pg.Pool> {
  return ctx.resource(`pg:${side}`, async () => {
    const url = side === 'source' ? await sourceUrl(ctx) : await targetUrl(ctx);
    // A firewall that drops packets must fail fast as "cannot connect", not hang until the OS TCP timeout.
    const p = new pg.Pool({ ...connectionConfig(url, 'migrate'), max: 8, connectionTimeoutMillis: 15_000 });
    // An idle client dropped by the server (e.g. terminated by the freeze) must not crash the CLI.
    p.on('error', () => {});
    return p;
  }, (p) => p.end());
}

export function describeSide(outputs: StackOutputs, side: Side): string {
  return side === 'source' ? 'source (legacy)' : `target (${outputs.database.identifier})`;
}

/**
 * `migrate outputs`: an outputs file for two PostgreSQL servers of your own, so that plan, --dry-run,
 * preflight, status and verify can be tried without a Pulumi stack. Passwords stay out of the file:
 * the source URL and the target password are references (env:NAME, file:/path, ssm:/name) resolved
 * when a command runs.
 */
import type { Command } from 'commander';
import { secretRefSchema } from '../../infra/contract.ts';
import { UsageError } from '../core/engine.ts';
import { parseOutputs } from '../core/outputs.ts';
import { jsonLine } from '../core/report.ts';
import { serverOutputs } from '../local/outputs.ts';
import { action } from './action.ts';
import type { GlobalOptions } from './environment.ts';
import { EXIT } from './exit-codes.ts';

const SSL_MODES = ['disable', 'require', 'verify-full'] as const;

function reference(flag: string, value: string, example: string): string {
  if (secretRefSchema.safeParse(value).success) return value;
  throw new UsageError(
    `${flag}: expected a reference (env:NAME, file:/path or ssm:/name), not a value, so that no password lands in the outputs file; e.g. ${example}`,
  );
}

function targetParts(value: string): { host: string; port: number; user: string; database: string; sslMode: (typeof SSL_MODES)[number] } {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError('--target: expected a URL like postgres://postgres@db.example.com:5432/app?sslmode=require');
  }
  if (!/^postgres(ql)?:$/.test(url.protocol)) throw new UsageError(`--target: expected a postgres:// URL, got ${url.protocol}//…`);
  if (url.password)
    throw new UsageError(
      '--target: the URL holds a password; leave it out and pass --target-password env:NAME (or file:/path) instead, so it never lands in the outputs file',
    );
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!url.username || !database)
    throw new UsageError('--target: the URL needs a user and a database, e.g. postgres://postgres@db.example.com:5432/app');
  const sslMode = url.searchParams.get('sslmode') ?? 'disable';
  if (!(SSL_MODES as readonly string[]).includes(sslMode))
    throw new UsageError(`--target: sslmode=${sslMode} is not one of ${SSL_MODES.join(', ')}`);
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: Number(url.port || 5432),
    user: decodeURIComponent(url.username),
    database,
    sslMode: sslMode as (typeof SSL_MODES)[number],
  };
}

export function registerOutputs(program: Command, globals: () => GlobalOptions): void {
  program
    .command('outputs')
    .description(
      'Print an outputs file (JSON, to stdout) for two PostgreSQL servers of yours, to use with --outputs; passwords stay references',
    )
    .requiredOption('--source <ref>', "reference to the source's URL: env:NAME, file:/path or ssm:/name")
    .requiredOption('--target <url>', 'the target, without its password: postgres://user@host:port/database[?sslmode=require]')
    .requiredOption('--target-password <ref>', "reference to the target user's password: env:NAME, file:/path or ssm:/name")
    .option('--name <environment>', 'stack name the journals are filed under', 'local')
    .option('--pgbouncer-admin <ref>', "reference to PgBouncer's admin console URL, for the pause/reload/resume steps")
    .action(
      action(async (opts: { source: string; target: string; targetPassword: string; name: string; pgbouncerAdmin?: string }) => {
        if (!/^[a-z0-9][a-z0-9-]*$/.test(opts.name)) throw new UsageError(`--name ${opts.name}: lower-case letters, digits and dashes`);
        const target = targetParts(opts.target);
        const outputs = serverOutputs({
          environment: opts.name,
          target: {
            ...target,
            version: 'unknown',
            passwordRef: reference('--target-password', opts.targetPassword, '--target-password env:TARGET_PASSWORD'),
          },
          sourceUrlRef: reference('--source', opts.source, "SOURCE_URL='postgres://…' migrate outputs --source env:SOURCE_URL …"),
          ...(opts.pgbouncerAdmin
            ? {
                pgbouncer: {
                  port: 6432,
                  adminUrlRef: reference('--pgbouncer-admin', opts.pgbouncerAdmin, '--pgbouncer-admin env:PGBOUNCER_ADMIN_URL'),
                },
              }
            : {}),
        });
        const file = parseOutputs(outputs, 'migrate outputs');
        process.stdout.write(globals().json ? jsonLine({ type: 'outputs', outputs: file }) : `${JSON.stringify(file, null, 2)}\n`);
        return EXIT.ok;
      }),
    );
}

/**
 * What the app's users see during the rehearsal's D-day, measured rather than inferred: the legacy
 * app (behind the legacy PgBouncer, the one D-day pauses and re-points) on 127.0.0.1, the new app
 * (behind a second PgBouncer standing in for the EKS one, re-pointed when its deployment restarts)
 * on 127.0.0.2, the app's DNS name answered by a local DNS stand-in with the record's cutover TTL,
 * and a user that resolves the name honouring that TTL. The record moves when D-day reaches
 * `switch-dns` (Route53 is not called in a rehearsal: the stand-in is moved instead).
 */
import { join } from 'node:path';
import type { StackOutputs } from '../../infra/contract.ts';
import type { EngineEvent } from '../core/report.ts';
import { type AppStandin, startAppStandin } from '../local/app-standin.ts';
import { type DnsServer, startDnsServer } from '../local/dns-standin.ts';
import type { KubeStandin } from '../local/kube-standin.ts';
import { type LocalPgbouncer, startPgbouncer } from '../local/pgbouncer.ts';
import type { PostgresServer } from '../local/postgres-server.ts';
import { APP_DATABASE, APP_ROLE } from './seed.ts';
import { longestUserGap, UserClient, type UserWrite } from './user-client.ts';

/** The records' TTLs in the rehearsal: short, so the rehearsal waits seconds where D-day waits a minute or two. */
export const REHEARSAL_RECORD_TTL = { ttl: 5, cutoverTtl: 2 };

export interface UsersReport {
  client: string;
  /** Successful writes the user made, by the app that served them. */
  servedBy: Record<string, number>;
  writes: number;
  failed: number;
  /** Writes the apps confirmed that are not on the database that ended up primary. */
  lost: number;
  longestGapMs: number;
  gapFrom: string | null;
  gapTo: string | null;
  /** Requests that failed inside the longest gap (0: the user waited, nothing failed). */
  failedInGap: number;
  recordTtlSeconds: number;
}

export interface UserFacing {
  /** The cluster's PgBouncer, for --keep's instructions. */
  eksPgbouncer: LocalPgbouncer;
  /** Watches the engine: moves the record at switch-dns. */
  onEvent(event: EngineEvent): void;
  /** The EKS PgBouncer's pods restarted: they read the swapped writer URL (the target). */
  onEksPgbouncerRestart(): Promise<void>;
  startClient(): void;
  /** The rollback moves the record back to the legacy app. */
  moveBack(): void;
  stopClient(): Promise<UserWrite[]>;
  report(
    log: UserWrite[],
    window: { start: number; end: number },
    committedOnPrimary: (ids: number[]) => Promise<number>,
  ): Promise<UsersReport>;
  stop(): Promise<void>;
}

export async function startUserFacing(options: {
  dir: string;
  outputs: StackOutputs;
  source: PostgresServer;
  target: PostgresServer;
  legacyPgbouncer: LocalPgbouncer;
  appPassword: string;
  customers: number;
  kube: KubeStandin;
  /** The file the runbook's stop command creates: the legacy app answers 503 while it exists. */
  legacyStoppedMarker: string;
}): Promise<UserFacing> {
  const record = options.outputs.dns.records.app;
  const [legacyAddress, newAddress] = ['127.0.0.1', '127.0.0.2'];
  const stopped: { stop(): Promise<void> }[] = [];
  try {
    const eksPgbouncer = await startPgbouncer({
      database: APP_DATABASE,
      // Before the swap, the writer URL the EKS PgBouncer reads points at the legacy database.
      backend: { host: options.source.host, port: options.source.port },
      user: APP_ROLE,
      password: options.appPassword,
      poolMode: 'transaction',
      dir: join(options.dir, 'pgbouncer-eks'),
    });
    stopped.push(eksPgbouncer);
    const legacy: AppStandin = await startAppStandin({
      name: 'legacy',
      address: legacyAddress,
      port: 0,
      connectionString: options.legacyPgbouncer.url(),
      customers: options.customers,
      serving: true,
      stoppedMarker: options.legacyStoppedMarker,
    });
    stopped.push(legacy);
    const webReady = () => Number(options.kube.get('app', 'Deployment', 'web')?.status?.readyReplicas ?? 0) > 0;
    const next: AppStandin = await startAppStandin({
      name: 'new',
      address: newAddress,
      port: legacy.port,
      connectionString: eksPgbouncer.url(),
      customers: options.customers,
      serving: webReady,
    });
    stopped.push(next);
    const dns: DnsServer = await startDnsServer();
    stopped.push({ stop: () => dns.close() });
    dns.set(record.name, 'A', [legacyAddress], record.cutoverTtl);
    let client: UserClient | undefined;
    return {
      eksPgbouncer,
      onEvent(event) {
        if (event.type === 'step-start' && event.step === 'switch-dns') dns.set(record.name, 'A', [newAddress], record.cutoverTtl);
      },
      async onEksPgbouncerRestart() {
        await eksPgbouncer.switchBackend({ host: options.target.host, port: options.target.port });
      },
      startClient() {
        client = new UserClient({ name: record.name, dnsServer: dns.address, port: legacy.port, thinkMs: 10, timeoutMs: 30_000 }).start();
      },
      moveBack() {
        dns.set(record.name, 'A', [legacyAddress], record.cutoverTtl);
      },
      async stopClient() {
        return (await client?.stop()) ?? [];
      },
      async report(log, window, committedOnPrimary) {
        const ids = log.filter((w) => w.ok && w.id !== undefined).map((w) => w.id!);
        const gap = longestUserGap(log, window.start, window.end);
        const servedBy: Record<string, number> = {};
        for (const w of log.filter((x) => x.ok)) servedBy[w.app] = (servedBy[w.app] ?? 0) + 1;
        const iso = (ms: number) => new Date(ms).toISOString().slice(11, 23);
        return {
          client: `resolves ${record.name} through the DNS stand-in honouring its TTL, a new connection per request`,
          servedBy,
          writes: ids.length,
          failed: log.filter((w) => !w.ok).length,
          lost: ids.length - (await committedOnPrimary(ids)),
          longestGapMs: gap.ms,
          gapFrom: gap.ms > 0 ? iso(gap.start) : null,
          gapTo: gap.ms > 0 ? iso(gap.end) : null,
          failedInGap: gap.failures,
          recordTtlSeconds: record.cutoverTtl,
        };
      },
      async stop() {
        await client?.stop();
        await Promise.allSettled(stopped.reverse().map((s) => s.stop()));
      },
    };
  } catch (error) {
    await Promise.allSettled(stopped.reverse().map((s) => s.stop()));
    throw error;
  }
}

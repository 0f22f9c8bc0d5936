/**
 * `migrate rehearse`: the whole cutover on this machine. Two real PostgreSQL servers (source and
 * target), a real PgBouncer in front of the app's writers, a Kubernetes API stand-in and a webhook
 * recorder stand-in; then the shipped runbooks (week-prior, day-before, d-day) run through the same
 * engine as on D-day, while the app keeps writing and webhooks keep arriving. Steps that need AWS
 * are skipped with a visible notice. The report is built from the journals and from what the app
 * saw: every committed transaction must be on the target, and no difference may remain.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import type { StackOutputs } from '../../infra/contract.ts';
import { type EngineEnvironment, type RunOutcome, run, UsageError } from '../core/engine.ts';
import { kindLookup } from '../core/environment.ts';
import { type RunState, runState } from '../core/journal.ts';
import type { EngineEvent, Reporter } from '../core/report.ts';
import { loadRunbook } from '../core/runbook.ts';
import { redact, redactValue } from '../core/secret.ts';
import { createSecretResolver } from '../core/secret-refs.ts';
import { compareWithRun } from '../forecast/compare.ts';
import { type KubeStandin, startKubeStandin } from '../local/kube-standin.ts';
import { localOutputs } from '../local/outputs.ts';
import { type LocalPgbouncer, startPgbouncer } from '../local/pgbouncer.ts';
import { type PostgresServer, startPostgres } from '../local/postgres-server.ts';
import { startAll } from '../local/running.ts';
import { startWebhookStandin, type WebhookStandin } from '../local/webhook-standin.ts';
import { targetAdvisoryLock } from '../postgres/run-lock.ts';
import { forecastOfRun, timelineInput } from '../report/timeline-input.ts';
import { renderTimeline } from '../report/timeline-svg.ts';
import { goNoGoOf, type RehearsalReport, timelineOf, toMarkdown } from './report.ts';
import { APP_DATABASE, APP_ROLE, prepareTargetRoles, rowCount, seedSource } from './seed.ts';
import type { UserWrite } from './user-client.ts';
import { REHEARSAL_RECORD_TTL, startUserFacing, type UserFacing } from './user-facing.ts';
import { WebhookStream } from './webhook-stream.ts';
import { longestWriteGap, Workload, type WorkloadResult } from './workload.ts';

export interface RehearseOptions {
  /** Customers in the seeded database; the other tables scale with it. */
  customers: number;
  writers: number;
  /** Keep the servers running and the temp dir after the report. */
  keep: boolean;
  /** Where the Markdown report goes (a .json twin is written beside it). */
  reportFile: string;
  sourceBindir?: string;
  targetBindir?: string;
  /** Renders the engine's events (progress of every step). */
  reporter: Reporter;
  /** Called with each phase, for the human reading along. */
  announce: (message: string) => void;
  /** `--set key=value` for the runbooks: each goes to the runbooks whose config has the key. */
  configOverrides?: Record<string, unknown>;
  /** Aborted on Ctrl-C: the running runbook stops as `migrate run` would, and everything is cleaned up. */
  signal?: AbortSignal;
  /**
   * After D-day, with the app writing on the target, run runbooks/rollback.yaml and prove that every
   * write made on either side is on the source afterwards.
   */
  rollbackAfterSwitch?: boolean;
}

const RUNBOOKS = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'runbooks');

const NO_AWS = 'needs AWS: not in a local rehearsal';

interface Parts {
  dir: string;
  source?: PostgresServer;
  target?: PostgresServer;
  pgbouncer?: LocalPgbouncer;
  kube?: KubeStandin;
  webhooks?: WebhookStandin;
  stream?: WebhookStream;
  workload?: Workload;
  users?: UserFacing;
}

/** Where the kept servers are and how to stop them, for --keep. */
function keptInstructions(parts: Parts): string[] {
  const lines: string[] = [];
  for (const server of [parts.source, parts.target]) {
    if (!server) continue;
    const asUser = process.getuid?.() === 0 ? 'runuser -u postgres -- ' : '';
    lines.push(
      `${server.name} PostgreSQL ${server.major} on 127.0.0.1:${server.port}, data ${server.dataDir}; stop: ${asUser}${join(server.bindir, 'pg_ctl')} -D ${server.dataDir} stop`,
    );
  }
  if (parts.pgbouncer)
    lines.push(
      `PgBouncer on 127.0.0.1:${parts.pgbouncer.port}, config ${parts.pgbouncer.configFile}; stop: kill $(cat ${join(parts.pgbouncer.dir, 'pgbouncer.pid')})`,
    );
  lines.push(
    `outputs file ${join(parts.dir, 'outputs.json')} and journals in ${join(parts.dir, 'state')}: e.g. migrate --outputs ${join(parts.dir, 'outputs.json')} --state-dir ${join(parts.dir, 'state')} status`,
    `then remove everything: rm -rf ${parts.dir}`,
  );
  return lines;
}

/** Gives each runbook the overrides its config has; a key no runbook has is a usage error before anything starts. */
export function overridesPerRunbook(names: string[], overrides: Record<string, unknown>): Map<string, Record<string, unknown>> {
  const keys = new Map(
    names.map((name) => [
      name,
      Object.keys((parseYaml(readFileSync(join(RUNBOOKS, `${name}.yaml`), 'utf8')) as { config?: object }).config ?? {}),
    ]),
  );
  for (const key of Object.keys(overrides)) {
    if (![...keys.values()].some((k) => k.includes(key))) {
      throw new UsageError(
        `--set ${key}: none of the rehearsal's runbooks (${names.join(', ')}) has a config key '${key}' (they have: ${[...new Set([...keys.values()].flat())].join(', ')})`,
      );
    }
  }
  return new Map(
    names.map((name) => [name, Object.fromEntries(Object.entries(overrides).filter(([key]) => keys.get(name)!.includes(key)))]),
  );
}

/** In-process stand-ins always stop (they would keep the CLI alive); --keep keeps the servers and the dir. */
async function stopAll(parts: Parts, keep: boolean): Promise<void> {
  await parts.workload?.stop().catch(() => {});
  await parts.users?.stop().catch(() => {});
  await parts.stream?.close().catch(() => {});
  await parts.webhooks?.stop().catch(() => {});
  await parts.kube?.close().catch(() => {});
  if (keep) {
    for (const kept of [parts.pgbouncer, parts.source, parts.target]) kept?.release();
    return;
  }
  await parts.pgbouncer?.stop().catch(() => {});
  await Promise.all([parts.source?.stop().catch(() => {}), parts.target?.stop().catch(() => {})]);
  rmSync(parts.dir, { recursive: true, force: true });
}

/** Watches the engine's events so the rehearsal can act at the right step (stop the webhook stream). */
function watching(reporter: Reporter, onEvent: (event: EngineEvent) => void): Reporter {
  return {
    flush: () => reporter.flush(),
    emit: (event) => {
      onEvent(event);
      reporter.emit(event);
    },
  };
}

export async function rehearse(options: RehearseOptions): Promise<RehearsalReport> {
  const started = Date.now();
  const overrides = overridesPerRunbook(['week-prior', 'day-before', 'd-day'], options.configOverrides ?? {});
  const stopIfInterrupted = () => options.signal?.throwIfAborted();
  const dir = mkdtempSync(join(tmpdir(), 'migrate-rehearsal-'));
  // Servers run as the unprivileged postgres OS user when we are root: it must be able to reach its dirs.
  chmodSync(dir, 0o711);
  const parts: Parts = { dir };
  const appPassword = randomBytes(12).toString('base64url');
  const stateDir = join(dir, 'state');
  const runs: RunState[] = [];
  let failure: string | undefined;
  let report: RehearsalReport | undefined;
  try {
    options.announce(`Starting two PostgreSQL servers and PgBouncer in ${dir}`);
    mkdirSync(join(dir, 'source'));
    mkdirSync(join(dir, 'target'));
    [parts.source, parts.target] = await startAll([
      startPostgres({ name: 'source', bindir: options.sourceBindir, baseDir: join(dir, 'source') }),
      startPostgres({ name: 'target', bindir: options.targetBindir, baseDir: join(dir, 'target') }),
    ]);
    const { source, target } = parts;
    for (const server of [source, target]) {
      const admin = await server.client();
      await admin.query(`create database ${APP_DATABASE}`);
      await admin.end();
    }
    options.announce(
      `Seeding ${options.customers} customers on the source (PostgreSQL ${source.major}); target is PostgreSQL ${target.major}`,
    );
    const sourceAdmin = await source.client(APP_DATABASE);
    await seedSource(sourceAdmin, options.customers, appPassword);
    const rowsAtStart = await rowCount(sourceAdmin);
    await sourceAdmin.end();
    const targetAdmin = await target.client(APP_DATABASE);
    await prepareTargetRoles(targetAdmin, appPassword);
    await targetAdmin.end();
    stopIfInterrupted();

    parts.pgbouncer = await startPgbouncer({
      database: APP_DATABASE,
      backend: { host: source.host, port: source.port },
      user: APP_ROLE,
      password: appPassword,
      poolMode: 'transaction',
      dir: join(dir, 'pgbouncer'),
    });
    const pgbouncer = parts.pgbouncer;
    parts.kube = await startKubeStandin({
      workloads: [
        { namespace: 'app', kind: 'Deployment', name: 'web', replicas: 3 },
        { namespace: 'app', kind: 'Deployment', name: 'worker', replicas: 2 },
        { namespace: 'app', kind: 'StatefulSet', name: 'scheduler', replicas: 1 },
        { namespace: 'pgbouncer', kind: 'Deployment', name: 'pgbouncer', replicas: 2 },
      ],
      // New PgBouncer pods would read the swapped writer URL; the EKS PgBouncer stand-in is re-pointed instead.
      onRestart: async (event) => {
        if (event.namespace === 'pgbouncer') await parts.users?.onEksPgbouncerRestart();
      },
    });
    parts.webhooks = await startWebhookStandin({ dir: join(dir, 'webhooks') });
    parts.stream = new WebhookStream(parts.webhooks.url);
    await parts.stream.startReceiver();

    const outputs: StackOutputs = {
      ...localOutputs({
        dir,
        source,
        target,
        database: APP_DATABASE,
        pgbouncer: { port: pgbouncer.port, adminUrl: pgbouncer.adminUrl },
        webhooks: parts.webhooks.outputs,
      }),
    };
    outputs.cluster = { ...outputs.cluster, kubeconfig: parts.kube.kubeconfig };
    outputs.dns.records.app = { ...outputs.dns.records.app, ...REHEARSAL_RECORD_TTL };
    outputs.dns.records.webhooks = { ...outputs.dns.records.webhooks, ...REHEARSAL_RECORD_TTL };
    const outputsFile = join(dir, 'outputs.json');
    writeFileSync(outputsFile, JSON.stringify(outputs, null, 2), { mode: 0o600 });

    parts.workload = new Workload({
      connectionString: pgbouncer.url(),
      writers: options.writers,
      thinkMs: 5,
      customers: options.customers,
    }).start();
    const workload = parts.workload;
    const stream = parts.stream;
    const marker = join(dir, 'legacy-app-stopped');
    parts.users = await startUserFacing({
      dir,
      outputs,
      source,
      target,
      legacyPgbouncer: pgbouncer,
      appPassword,
      customers: options.customers,
      kube: parts.kube,
      legacyStoppedMarker: marker,
    });
    const users = parts.users;

    const { kinds, knownKinds } = kindLookup(stateDir);
    const env: EngineEnvironment = {
      stack: 'rehearsal',
      outputs,
      stateDir,
      reporter: watching(options.reporter, (event) => {
        // Webhooks keep arriving at the recorder until the replay starts draining it.
        if (event.type === 'step-start' && event.step === 'replay-webhooks') void stream.stop();
        users.onEvent(event);
      }),
      secret: createSecretResolver({ region: outputs.region }),
      capabilities: new Set(['postgres', 'pgbouncer', 'kube', 'shell', 'http']),
      unavailable: { aws: NO_AWS },
      yes: true,
      signal: options.signal,
      extraLocks: targetAdvisoryLock,
    };
    const load = (name: string, configOverrides: Record<string, unknown> = {}) =>
      loadRunbook(join(RUNBOOKS, `${name}.yaml`), { outputs, configOverrides, kinds, knownKinds });
    const plan: [string, Record<string, unknown>][] = [
      ['week-prior', {}],
      ['day-before', {}],
      [
        'd-day',
        {
          stopSourceCommand: `touch ${marker}`,
          startSourceCommand: `rm -f ${marker}`,
          appUser: APP_ROLE,
          webhookReplayUrl: stream.receiverUrl,
          pgbouncerConfigFile: pgbouncer.configFile,
          legacyStopMarginSeconds: 1,
        },
      ],
    ];
    // Every runbook is validated before the first one changes anything.
    const runbooks = plan.map(([name, own]) => [name, load(name, { ...own, ...overrides.get(name) })] as const);
    stopIfInterrupted();
    let dDay: { start: number; end: number } | undefined;
    for (const [name, runbook] of runbooks) {
      options.announce(`Running runbooks/${name}.yaml`);
      if (name === 'd-day') {
        stream.start();
        users.startClient();
      }
      const t0 = Date.now();
      const outcome: RunOutcome = await run(runbook, env);
      if (outcome.journal) runs.push(runState(outcome.journal));
      if (name === 'd-day') dDay = { start: t0, end: Date.now() };
      if (outcome.outcome !== 'finished') {
        failure = `${name} ${outcome.outcome} at step ${outcome.failedStep}: ${outcome.error ?? ''}`;
        break;
      }
    }

    // The app keeps writing on the target for a moment: the switch must hold under load, too.
    const afterSwitch = workload.committedCount;
    const deadline = Date.now() + 5000;
    while (!failure && workload.committedCount < afterSwitch + options.writers * 5 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    let rollback: RehearsalReport['rollback'] = null;
    if (options.rollbackAfterSwitch && !failure && dDay) {
      options.announce('Rolling back after the switch (runbooks/rollback.yaml), the app still writing');
      users.moveBack();
      const t0 = Date.now();
      const outcome = await run(load('rollback'), env);
      const t1 = Date.now();
      if (outcome.journal) runs.push(runState(outcome.journal));
      if (outcome.outcome !== 'finished') failure = `rollback ${outcome.outcome} at step ${outcome.failedStep}: ${outcome.error ?? ''}`;
      // Writes land on the source again; a few more prove it takes them.
      const afterRollback = workload.committedCount;
      const until = Date.now() + 5000;
      while (!failure && workload.committedCount < afterRollback + options.writers * 5 && Date.now() < until)
        await new Promise((r) => setTimeout(r, 50));
      rollback = { startedAt: t0, endedAt: t1, windowMs: 0, onSource: 0, lost: 0, userWritesLost: 0 };
    }
    const primary = rollback ? source : target;
    const writes = await workload.stop();
    await stream.stop();
    const userLog = await users.stopClient();

    const check = await primary.client(APP_DATABASE);
    const committedOnPrimary = async (ids: number[]) =>
      Number((await check.query<{ n: string }>('select count(*) as n from public.orders where id = any($1::bigint[])', [ids])).rows[0]!.n);
    const foundOnTarget = await committedOnPrimary(writes.committed);
    const userWindow = dDay ? { start: dDay.start, end: rollback?.endedAt ?? dDay.end } : { start: started, end: Date.now() };
    const usersReport = await users.report(userLog, userWindow, committedOnPrimary);
    // After a rollback the source is primary again: no sequence of it may be behind the target's.
    const sequencesBehind = rollback ? await countSequencesBehind(target, check) : await countSequencesBehind(source, check);
    if (rollback) {
      rollback.windowMs = longestWriteGap(writes.commitTimes, rollback.startedAt, rollback.endedAt).ms;
      rollback.onSource = foundOnTarget;
      rollback.lost = writes.committed.length - foundOnTarget;
      rollback.userWritesLost = usersReport.lost;
    }
    await check.end();

    const dDayRun = runs.find((r) => r.runbook.name === 'd-day');
    // The proof pinned to the switch point (after writes resumed), or verify inside the window (proof: before-switch).
    const proofStep = dDayRun?.steps.find((s) => (s.id === 'prove' || s.id === 'verify') && s.result);
    const verify = proofStep?.result as
      | {
          summary?: { tables: number; tablesDiffering: number; rows: number; durationMs: number };
          tables?: { differences?: { count: number } }[];
          privileges?: unknown[];
          sequences?: unknown[];
          switchPoint?: { holdMs: number; xminAge: { source: number | null; target: number | null }; released: boolean };
        }
      | undefined;
    const differences = verify?.tables?.reduce((sum, t) => sum + (t.differences?.count ?? 0), 0) ?? 0;
    const gap = dDay ? longestWriteGap(writes.commitTimes, dDay.start, dDay.end) : { ms: 0, start: 0, end: 0 };
    const delivered = stream.delivered();
    const replayed =
      dDayRun?.steps
        .filter((s) => s.kind === 'webhooks.replay')
        .map((s) => s.result as { replayed?: number; failed?: number } | undefined) ?? [];
    const webhookSummary = {
      received: stream.recorded(),
      replayed: delivered,
      failed: replayed.reduce((sum, r) => sum + (r?.failed ?? 0), 0),
      standIn: 'local recorder stand-in (file-backed FIFO queue), not API Gateway + SQS',
    };

    const lost = writes.committed.length - foundOnTarget;
    const problems = [
      failure,
      lost > 0 ? `${lost} committed transactions are missing on the ${rollback ? 'source after the rollback' : 'target'}` : undefined,
      usersReport.lost > 0 ? `${usersReport.lost} writes a user was told committed are missing` : undefined,
      // Keep-serving promises users no failed request, only a held one; a rollback makes no such promise.
      !rollback && usersReport.failed > 0 ? `a user saw ${usersReport.failed} failed requests` : undefined,
      verify?.summary && verify.summary.tablesDiffering > 0 ? `${verify.summary.tablesDiffering} tables differ` : undefined,
      sequencesBehind > 0 ? `${sequencesBehind} sequences are behind the ${rollback ? 'target on the source' : 'source'}` : undefined,
      verify?.privileges?.length ? `${verify.privileges.length} owners or privileges differ` : undefined,
      webhookSummary.received !== webhookSummary.replayed
        ? `webhooks: ${webhookSummary.received} recorded but ${webhookSummary.replayed} delivered`
        : undefined,
    ].filter((p): p is string => Boolean(p));

    const timeline = timelineOf(runs);
    const dDayForecast = dDayRun ? forecastOfRun(dDayRun) : undefined;
    const timelineFile = dDayRun ? writeTimeline(options, dDayRun, writes, userLog) : null;
    report = {
      date: new Date(started).toISOString(),
      outcome: problems.length === 0 ? 'passed' : 'failed',
      failure: problems.join('; ') || undefined,
      source: `PostgreSQL ${source.major} (local, port ${source.port})`,
      target: `PostgreSQL ${target.major} (local, port ${target.port}) standing in for RDS`,
      data: { customers: options.customers, rowsAtStart, writers: options.writers },
      timeline,
      totalMs: Date.now() - started,
      writes: {
        committed: writes.committed.length,
        foundOnTarget,
        lost,
        errorsSeenByApp: writes.errors.length,
        unavailableMs: gap.ms,
        unavailableFrom: gap.ms > 0 ? new Date(gap.start).toISOString().slice(11, 23) : null,
        unavailableTo: gap.ms > 0 ? new Date(gap.end).toISOString().slice(11, 23) : null,
        longestTransactionMs: writes.longestTransactionMs,
      },
      verification: verify?.summary
        ? {
            tables: verify.summary.tables,
            rows: verify.summary.rows,
            differences,
            step: proofStep!.id,
            durationMs: verify.summary.durationMs,
            afterSwitch: Boolean(verify.switchPoint),
            snapshotHoldMs: verify.switchPoint?.holdMs ?? null,
            xminAge: verify.switchPoint?.xminAge ?? null,
          }
        : null,
      users: usersReport,
      rollback,
      forecast: dDayRun && dDayForecast ? compareWithRun(dDayForecast, dDayRun) : null,
      timelineFile,
      goNoGo: goNoGoOf(dDayRun),
      privilegeDifferences: verify?.privileges ? verify.privileges.length : null,
      sequencesBehind,
      webhooks: webhookSummary,
      standIns: [
        'target: a local PostgreSQL server in place of RDS (same SQL, no rds_* roles or parameter groups)',
        'Kubernetes API: a local HTTP stand-in (scale subresource, rollout restart and status); restarting the pgbouncer deployment re-points the local PgBouncer at the target, as new pods reading the swapped writer URL would',
        'PgBouncer: the real pgbouncer binary, in front of the app writers',
        `webhook recorder: ${webhookSummary.standIn}`,
      ],
      skipped: [
        ...new Set(timeline.filter((t) => t.outcome === 'skipped').map((t) => `${t.runbook}/${t.step} (${t.kind}): ${t.note}`)),
        'AWS steps (RDS replicas, Parameter Store, Route53) are verified by unit tests against aws-sdk-client-mock here, and for real only against a staging account',
      ],
      artifacts: {
        dir,
        outputs: outputsFile,
        stateDir,
        report: options.reportFile,
        kept: options.keep,
        ...(options.keep ? { stop: keptInstructions(parts) } : {}),
      },
    };
    return report;
  } catch (error) {
    // A rehearsal that breaks still reports what ran and why it stopped, and still cleans up.
    failure = redact(
      options.signal?.aborted
        ? `interrupted (${(options.signal.reason as Error)?.message ?? 'signal'})`
        : ((error as Error).message ?? String(error)),
    );
    const writes = await parts.workload?.stop().catch(() => undefined);
    const server = (s?: PostgresServer) => (s ? `PostgreSQL ${s.major} (local, port ${s.port})` : 'not started');
    report = {
      date: new Date(started).toISOString(),
      outcome: 'failed',
      failure,
      source: server(parts.source),
      target: server(parts.target),
      data: { customers: options.customers, rowsAtStart: 0, writers: options.writers },
      timeline: timelineOf(runs),
      totalMs: Date.now() - started,
      writes: {
        committed: writes?.committed.length ?? 0,
        foundOnTarget: 0,
        lost: 0,
        errorsSeenByApp: writes?.errors.length ?? 0,
        unavailableMs: 0,
        unavailableFrom: null,
        unavailableTo: null,
        longestTransactionMs: writes?.longestTransactionMs ?? 0,
      },
      verification: null,
      users: null,
      rollback: null,
      forecast: null,
      timelineFile: null,
      goNoGo: goNoGoOf(runs.find((r) => r.runbook.name === 'd-day')),
      privilegeDifferences: null,
      sequencesBehind: 0,
      webhooks: null,
      standIns: [],
      skipped: [],
      artifacts: {
        dir,
        outputs: join(dir, 'outputs.json'),
        stateDir,
        report: options.reportFile,
        kept: options.keep,
        ...(options.keep ? { stop: keptInstructions(parts) } : {}),
      },
    };
    return report;
  } finally {
    if (report) writeReports(report, options.reportFile);
    await stopAll(parts, options.keep);
  }
}

/** Sequences of `ahead`'s database whose value on `behind` is lower (a nextval there could collide). */
async function countSequencesBehind(ahead: PostgresServer, behind: import('pg').Client): Promise<number> {
  const query = `select schemaname || '.' || sequencename as name, coalesce(last_value, start_value - increment_by) as v from pg_sequences`;
  const aheadClient = await ahead.client(APP_DATABASE);
  const [a, b] = await Promise.all([
    aheadClient.query<{ name: string; v: string }>(query),
    behind.query<{ name: string; v: string }>(query),
  ]);
  await aheadClient.end();
  const onBehind = new Map(b.rows.map((r) => [r.name, BigInt(r.v)]));
  return a.rows.filter((r) => (onBehind.get(r.name) ?? -(2n ** 63n)) < BigInt(r.v)).length;
}

/** The SVG timeline beside the report: every D-day step, the window, the writers' and the user's writes, the forecast. */
function writeTimeline(options: RehearseOptions, dDayRun: RunState, writes: WorkloadResult, userLog: UserWrite[]): string {
  const file = `${options.reportFile.replace(/\.md$/, '')}.svg`;
  const input = timelineInput([dDayRun], {
    title: `Rehearsal d-day ${dDayRun.runId}`,
    clients: [
      {
        name: `app writers through PgBouncer (${options.writers})`,
        role: 'database',
        events: [...writes.commitTimes.map((t) => ({ t, ok: true })), ...writes.errors.map((e) => ({ t: e.at, ok: false }))],
      },
      { name: 'DNS-following user', role: 'user', events: userLog.map((w) => ({ t: w.at, ok: w.ok })) },
    ],
  });
  writeFileSync(file, renderTimeline(input));
  return file;
}

function writeReports(report: RehearsalReport, file: string): void {
  writeFileSync(file, toMarkdown(redactValue(report)));
  writeFileSync(`${file.replace(/\.md$/, '')}.json`, `${JSON.stringify(redactValue(report), null, 2)}\n`);
}

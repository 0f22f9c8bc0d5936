/**
 * Moving one DNS name in a Route53 zone: read what is there, journal it, change it in one batch,
 * wait for INSYNC, and confirm with the zone's authoritative servers. dns.switch and the webhooks
 * redirect both go through pointRecord / restoreRecord.
 */
import {
  ChangeResourceRecordSetsCommand,
  GetChangeCommand,
  GetHostedZoneCommand,
  ListResourceRecordSetsCommand,
  type Change as Route53Change,
  type RRType,
} from '@aws-sdk/client-route-53';
import type { RecordValue } from '../../infra/contract.ts';
import { type Json, type StepContext, StepError } from '../core/step.ts';
import { waitFor } from '../core/wait.ts';
import { hostedZoneArn, route53ChangeArn } from './arns.ts';
import { ask, describeAnswer, dnsLookups, isNewAnswer } from './authoritative.ts';
import { callAws } from './call.ts';
import { awsClient } from './clients.ts';
import {
  buildSet,
  type Change,
  changesFor,
  describeChange,
  fqdn,
  MOVABLE_TYPES,
  plainSet,
  type RecordSet,
  typesReplacedBy,
} from './record-sets.ts';

export interface RecordTarget {
  type: 'A' | 'AAAA' | 'CNAME';
  ttl: number;
  value: RecordValue;
}
export interface DnsZone {
  hostedZoneId: string;
  privateZone: boolean;
}

/** What pointRecord replaced: the types it touched and the sets they held (empty: nothing). */
interface Previous {
  touched: string[];
  sets: RecordSet[];
}

const DEFAULT_DEADLINE_MS = 15 * 60_000;
/** Route53 propagates in about a minute; polling faster only spends API quota. */
const POLL_MS = 5_000;

const zoneId = (zone: DnsZone) => zone.hostedZoneId.replace(/^\/?hostedzone\//, '');

/**
 * Every set at exactly `name` (all types), following ListResourceRecordSets pages. A loop of our own:
 * the SDK has no paginator for this call (its cursor is three fields), and we stop at the first other name.
 */
export async function readRecordSets(ctx: StepContext, zone: DnsZone, name: string): Promise<RecordSet[]> {
  const route53 = await awsClient(ctx, 'route53');
  const wanted = fqdn(name);
  const sets: RecordSet[] = [];
  let start: { StartRecordName: string; StartRecordType?: RRType; StartRecordIdentifier?: string } = { StartRecordName: wanted };
  for (;;) {
    const page = await callAws('route53:ListResourceRecordSets', hostedZoneArn(ctx.outputs, zone.hostedZoneId), () =>
      route53.send(new ListResourceRecordSetsCommand({ HostedZoneId: zoneId(zone), ...start })),
    );
    for (const set of page.ResourceRecordSets ?? []) {
      // Sets come sorted by name, so the first other name ends ours.
      if (fqdn(set.Name ?? '') !== wanted) return sets;
      sets.push(set as RecordSet);
    }
    if (!page.IsTruncated || !page.NextRecordName) return sets;
    start = {
      StartRecordName: page.NextRecordName,
      ...(page.NextRecordType ? { StartRecordType: page.NextRecordType } : {}),
      ...(page.NextRecordIdentifier ? { StartRecordIdentifier: page.NextRecordIdentifier } : {}),
    };
  }
}

/** The movable (A/AAAA/CNAME) sets at `name`, in the plain form a change can send back. */
export async function readMovableSets(ctx: StepContext, zone: DnsZone, name: string): Promise<RecordSet[]> {
  return (await readRecordSets(ctx, zone, name)).filter((s) => MOVABLE_TYPES.includes(s.Type)).map(plainSet);
}

/** Sends one change batch and waits until Route53 reports it INSYNC; returns the change id. */
export async function submitChange(ctx: StepContext, zone: DnsZone, changes: Change[], deadline: number): Promise<string> {
  const route53 = await awsClient(ctx, 'route53');
  const out = await callAws('route53:ChangeResourceRecordSets', hostedZoneArn(ctx.outputs, zone.hostedZoneId), () =>
    route53.send(
      new ChangeResourceRecordSetsCommand({
        HostedZoneId: zoneId(zone),
        ChangeBatch: { Comment: `migrate run ${ctx.runId} step ${ctx.stepId}`, Changes: changes as Route53Change[] },
      }),
    ),
  );
  const changeId = out.ChangeInfo?.Id ?? '';
  const names = [...new Set(changes.map((c) => c.ResourceRecordSet.Name.replace(/\.$/, '')))].join(', ');
  await waitFor(ctx, {
    label: `Route53 change ${changeId.replace(/^\/change\//, '')} (${names})`,
    deadline,
    intervalMs: POLL_MS,
    poll: async () => {
      const status = await getChangeStatus(ctx, changeId);
      return status === 'INSYNC' ? { ready: true, value: undefined } : { ready: false, detail: `status ${status}` };
    },
    timedOut: ({ detail }) =>
      new StepError(`Route53 change ${changeId} for ${names} not INSYNC by the deadline (${detail})`, [
        {
          severity: 'error',
          object: `change ${changeId}`,
          message: 'Route53 accepted the change but has not propagated it to all its name servers',
          fix: `check \`aws route53 get-change --id ${changeId}\`; resume the run to keep waiting`,
        },
      ]),
  });
  return changeId;
}

async function getChangeStatus(ctx: StepContext, changeId: string): Promise<string> {
  const route53 = await awsClient(ctx, 'route53');
  const out = await callAws('route53:GetChange', route53ChangeArn(ctx.outputs, changeId), () =>
    route53.send(new GetChangeCommand({ Id: changeId })),
  );
  return out.ChangeInfo?.Status ?? 'PENDING';
}

/** The zone's delegation set (empty for a private zone, which has none). */
export async function zoneNameServers(ctx: StepContext, zone: DnsZone): Promise<string[]> {
  const route53 = await awsClient(ctx, 'route53');
  const out = await callAws('route53:GetHostedZone', hostedZoneArn(ctx.outputs, zone.hostedZoneId), () =>
    route53.send(new GetHostedZoneCommand({ Id: zoneId(zone) })),
  );
  return out.DelegationSet?.NameServers ?? [];
}

/** Asks every authoritative server until each gives the new answer, or fails at the deadline. */
export async function verifyAuthoritatively(
  ctx: StepContext,
  zone: DnsZone,
  wanted: RecordSet,
  previous: readonly RecordSet[],
  deadline: number,
): Promise<void> {
  const nameServers = await zoneNameServers(ctx, zone);
  const name = wanted.Name.replace(/\.$/, '');
  if (nameServers.length === 0) {
    ctx.log.warn(`${name}: zone ${zoneId(zone)} has no delegation set (private zone?); skipped the authoritative check`);
    return;
  }
  const lookups = await dnsLookups(ctx);
  const servers = await lookups.nameServerAddresses(nameServers);
  const type = wanted.Type as 'A' | 'AAAA' | 'CNAME';
  await waitFor(ctx, {
    label: `authoritative answer for ${name}`,
    deadline,
    intervalMs: POLL_MS,
    poll: async () => {
      const answers = await Promise.all(servers.map(async (server) => ({ server, answer: await ask(server, name, type) })));
      const verdicts = await Promise.all(answers.map(async ({ answer }) => isNewAnswer(lookups, answer, wanted, previous)));
      const stale = answers.filter((_, i) => !verdicts[i]);
      if (stale.length === 0) return { ready: true, value: undefined };
      return {
        ready: false,
        detail: stale.map(({ server, answer }) => `${server}: ${describeAnswer(answer)}`).join('; '),
        done: answers.length - stale.length,
        total: answers.length,
      };
    },
    timedOut: ({ detail }) =>
      new StepError(`the authoritative name servers of ${name} do not give the new ${type} answer (${detail})`, [
        {
          severity: 'error',
          object: `record ${name} ${type}`,
          message: `wanted ${describeChange({ Action: 'UPSERT', ResourceRecordSet: wanted }).replace(/^UPSERT /, '')}; the change is INSYNC, so another record or a wrong zone answers`,
          fix: `compare \`dig @${nameServers[0]} ${name} ${type}\` with the Route53 console; rerun with verifyAuthoritative: false only if the servers are unreachable from here`,
        },
      ]),
  });
  ctx.log.info(`${name}: all ${servers.length} authoritative servers give the new answer`);
}

/** The batch pointRecord would send for `name`, and what it would replace; no changes when already there. */
export interface PointPlan {
  name: string;
  changes: Change[];
  previous: Previous;
  wanted: RecordSet;
}

/** Reads the sets at `name` and plans the batch that points it at `target`. */
export async function planPointRecord(ctx: StepContext, zone: DnsZone, name: string, target: RecordTarget): Promise<PointPlan> {
  const current = await readMovableSets(ctx, zone, name);
  const wanted = buildSet(name, target.type, target.ttl, target.value);
  const touched = typesReplacedBy(
    target.type,
    current.map((s) => s.Type),
  );
  const changes = changesFor(current, [wanted], touched);
  return { name, changes, previous: { touched, sets: current.filter((s) => touched.includes(s.Type)) }, wanted };
}

/** Carries out a planPointRecord: ctx.record()s the sets it replaces, changes them (UPSERT, or DELETE+CREATE on type change), waits INSYNC, verifies authoritatively unless private/disabled. Idempotent: no change when the plan has none. */
export async function pointRecord(
  ctx: StepContext,
  zone: DnsZone,
  plan: PointPlan,
  options?: { deadlineMs?: number; verifyAuthoritative?: boolean },
): Promise<{ changeId: string | null; previous: Json | null }> {
  const deadline = ctx.now() + (options?.deadlineMs ?? DEFAULT_DEADLINE_MS);
  const { name, changes, previous, wanted } = plan;
  let changeId: string | null = null;
  if (changes.length === 0) {
    ctx.log.info(`${name}: already ${describeChange({ Action: 'UPSERT', ResourceRecordSet: wanted }).replace(/^UPSERT \S+ /, '')}`);
  } else if (ctx.dryRun) {
    for (const change of changes) ctx.log.info(`would send route53:ChangeResourceRecordSets ${describeChange(change)}`);
    return { changeId: null, previous: null };
  } else {
    await ctx.record({ action: 'dns-change', hostedZoneId: zoneId(zone), name: fqdn(name), previous: previous as unknown as Json });
    changeId = await submitChange(ctx, zone, changes, deadline);
    for (const change of changes) ctx.log.info(`route53: ${describeChange(change)}`);
  }
  if (options?.verifyAuthoritative ?? !zone.privateZone) await verifyAuthoritatively(ctx, zone, wanted, previous.sets, deadline);
  return { changeId, previous: changeId ? (previous as unknown as Json) : null };
}

function asPrevious(previous: Json | null): Previous | null {
  if (!previous || typeof previous !== 'object' || Array.isArray(previous)) return null;
  const { touched, sets } = previous as unknown as Previous;
  if (!Array.isArray(touched) || !Array.isArray(sets))
    throw new Error(`not a record set captured by pointRecord: ${JSON.stringify(previous)}`);
  return { touched, sets };
}

/** Puts back a record set captured by pointRecord (`previous`), same batch rules. */
export async function restoreRecord(
  ctx: StepContext,
  zone: DnsZone,
  name: string,
  previous: Json | null,
  options?: { deadlineMs?: number },
): Promise<void> {
  const captured = asPrevious(previous);
  if (!captured) return;
  const current = await readMovableSets(ctx, zone, name);
  const changes = changesFor(current, captured.sets, captured.touched);
  if (changes.length === 0) {
    ctx.log.info(`${name}: already as before the change`);
    return;
  }
  await submitChange(ctx, zone, changes, ctx.now() + (options?.deadlineMs ?? DEFAULT_DEADLINE_MS));
  for (const change of changes) ctx.log.info(`route53 (restore): ${describeChange(change)}`);
}

/**
 * Route53 record sets as plain JSON (so they can be journalled verbatim for undo), and the change
 * batch that turns the sets at one name into the wanted ones. Pure: no requests here.
 */
import type { RecordValue } from '../../infra/contract.ts';
import { StepError } from '../core/step.ts';

export type MovableType = 'A' | 'AAAA' | 'CNAME';
export const MOVABLE_TYPES: readonly string[] = ['A', 'AAAA', 'CNAME'];

/** The JSON shape of a Route53 ResourceRecordSet, restricted to what simple routing uses. */
export interface RecordSet {
  Name: string;
  Type: string;
  TTL?: number;
  ResourceRecords?: { Value: string }[];
  AliasTarget?: { HostedZoneId: string; DNSName: string; EvaluateTargetHealth: boolean };
  [key: string]: unknown;
}

export interface Change {
  Action: 'CREATE' | 'DELETE' | 'UPSERT';
  ResourceRecordSet: RecordSet;
}

/** Lowercase with a trailing dot, Route53's spelling, with its octal escapes (`\052` for `*`) decoded. */
export function fqdn(name: string): string {
  const decoded = name.replace(/\\(\d{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  const lower = decoded.toLowerCase();
  return lower.endsWith('.') ? lower : `${lower}.`;
}

const bare = (name: string) => fqdn(name).slice(0, -1);

export function buildSet(name: string, type: MovableType, ttl: number, value: RecordValue): RecordSet {
  if ('alias' in value) {
    return {
      Name: fqdn(name),
      Type: type,
      AliasTarget: {
        HostedZoneId: value.alias.hostedZoneId,
        DNSName: fqdn(value.alias.dnsName),
        EvaluateTargetHealth: value.alias.evaluateTargetHealth,
      },
    };
  }
  return { Name: fqdn(name), Type: type, TTL: ttl, ResourceRecords: value.values.map((Value) => ({ Value })) };
}

/** Keeps only what a change needs, so a set read from ListResourceRecordSets can be journalled and sent back. */
export function plainSet(set: RecordSet): RecordSet {
  if (set.SetIdentifier !== undefined) {
    throw new StepError(`record ${bare(set.Name)} ${set.Type} uses a routing policy (SetIdentifier ${String(set.SetIdentifier)})`, [
      {
        severity: 'error',
        object: `record ${bare(set.Name)} ${set.Type}`,
        message: 'weighted, latency, failover and geo records are not supported',
        fix: 'switch this record by hand, or make it a simple record first',
      },
    ]);
  }
  return {
    Name: fqdn(set.Name),
    Type: set.Type,
    ...(set.TTL !== undefined ? { TTL: set.TTL } : {}),
    ...(set.ResourceRecords ? { ResourceRecords: set.ResourceRecords.map((r) => ({ Value: r.Value })) } : {}),
    ...(set.AliasTarget
      ? {
          AliasTarget: {
            HostedZoneId: set.AliasTarget.HostedZoneId,
            DNSName: set.AliasTarget.DNSName,
            EvaluateTargetHealth: set.AliasTarget.EvaluateTargetHealth ?? false,
          },
        }
      : {}),
  };
}

const normalValue = (type: string, value: string) => (type === 'CNAME' ? bare(value) : value.toLowerCase());

export function sameSet(a: RecordSet | undefined, b: RecordSet | undefined): boolean {
  if (!a || !b) return a === b;
  if (fqdn(a.Name) !== fqdn(b.Name) || a.Type !== b.Type || a.TTL !== b.TTL) return false;
  if (a.AliasTarget || b.AliasTarget) {
    return (
      !!a.AliasTarget &&
      !!b.AliasTarget &&
      bare(a.AliasTarget.DNSName) === bare(b.AliasTarget.DNSName) &&
      a.AliasTarget.HostedZoneId === b.AliasTarget.HostedZoneId &&
      a.AliasTarget.EvaluateTargetHealth === b.AliasTarget.EvaluateTargetHealth
    );
  }
  const values = (s: RecordSet) =>
    (s.ResourceRecords ?? [])
      .map((r) => normalValue(s.Type, r.Value))
      .sort()
      .join('\n');
  return values(a) === values(b);
}

/** Types at a name that must go for a set of `type` to exist: a CNAME shares its name with nothing. */
export function typesReplacedBy(type: string, present: readonly string[]): string[] {
  const replaced = present.filter((t) => t === type || t === 'CNAME' || type === 'CNAME');
  return [...new Set([type, ...replaced])];
}

/**
 * The changes that make the sets of `types` at one name equal `wanted`: UPSERT where the type stays,
 * DELETE the old set and CREATE the new one where it changes. DELETEs come first so a CNAME → A
 * switch is one atomic batch.
 */
export function changesFor(current: readonly RecordSet[], wanted: readonly RecordSet[], types: readonly string[]): Change[] {
  const deletes: Change[] = [];
  const writes: Change[] = [];
  for (const type of types) {
    const have = current.find((s) => s.Type === type);
    const want = wanted.find((s) => s.Type === type);
    if (sameSet(have, want)) continue;
    if (have && want) writes.push({ Action: 'UPSERT', ResourceRecordSet: want });
    else if (want) writes.push({ Action: 'CREATE', ResourceRecordSet: want });
    else if (have) deletes.push({ Action: 'DELETE', ResourceRecordSet: have });
  }
  return [...deletes, ...writes];
}

/** One line per change for plans and logs (record values are not secret). */
export function describeChange(change: Change): string {
  const set = change.ResourceRecordSet;
  const target = set.AliasTarget
    ? `alias ${bare(set.AliasTarget.DNSName)} (zone ${set.AliasTarget.HostedZoneId}, evaluate health ${set.AliasTarget.EvaluateTargetHealth})`
    : `TTL ${set.TTL} ${(set.ResourceRecords ?? []).map((r) => r.Value).join(', ')}`;
  return `${change.Action} ${bare(set.Name)} ${set.Type} ${target}`;
}

/**
 * An in-memory Route53 hosted zone behind aws-sdk-client-mock, strict the way Route53 is: a DELETE
 * must match the existing set exactly, a CREATE must not find one, a CNAME must be alone at its
 * name once the whole batch is applied. Changes stay PENDING for a number of GetChange calls and,
 * when INSYNC, are published to the authoritative DNS server the test runs.
 */
import {
  ChangeResourceRecordSetsCommand,
  GetChangeCommand,
  GetHostedZoneCommand,
  InvalidChangeBatch,
  ListResourceRecordSetsCommand,
  Route53Client,
} from '@aws-sdk/client-route-53';
import { mockClient } from 'aws-sdk-client-mock';
import type { RecordSet } from '../../migrate/aws/record-sets.ts';
import type { DnsServer } from '../../migrate/local/dns-standin.ts';

const sortKey = (name: string) => name.replace(/\.$/, '').split('.').reverse().join('.');
const compare = (a: RecordSet, b: { Name: string; Type?: string }) => {
  const byName = sortKey(a.Name).localeCompare(sortKey(b.Name));
  return byName !== 0 ? byName : a.Type.localeCompare(b.Type ?? '');
};

export function fakeRoute53(options: {
  sets: RecordSet[];
  pageSize?: number;
  getChangesUntilInsync?: number;
  nameServers?: string[];
  dns?: DnsServer;
  /** What Route53 answers for an alias: the target's addresses. */
  aliasAddresses?: Record<string, string[]>;
}) {
  const mock = mockClient(Route53Client);
  let sets = options.sets.map((s) => structuredClone(s));
  const pending = new Map<string, { left: number; sets: RecordSet[] }>();
  let changeCount = 0;

  const publish = (published: RecordSet[]) => {
    if (!options.dns) return;
    for (const name of new Set(published.map((s) => s.Name))) options.dns.clear(name);
    for (const set of published) {
      if (set.Type !== 'A' && set.Type !== 'CNAME') continue;
      const values = set.AliasTarget
        ? (options.aliasAddresses?.[set.AliasTarget.DNSName.replace(/\.$/, '')] ?? [])
        : (set.ResourceRecords ?? []).map((r) => r.Value);
      options.dns.set(set.Name, set.Type, values);
    }
  };
  publish(sets);

  mock.on(ListResourceRecordSetsCommand).callsFake(async (input) => {
    const sorted = [...sets].sort((a, b) => compare(a, b));
    const from = sorted.filter((s) => compare(s, { Name: input.StartRecordName ?? '', Type: input.StartRecordType }) >= 0);
    const page = from.slice(0, options.pageSize ?? 100);
    const next = from[page.length];
    return {
      ResourceRecordSets: structuredClone(page),
      IsTruncated: Boolean(next),
      ...(next ? { NextRecordName: next.Name, NextRecordType: next.Type } : {}),
      MaxItems: options.pageSize ?? 100,
    };
  });

  mock.on(ChangeResourceRecordSetsCommand).callsFake(async (input) => {
    let next = sets.map((s) => structuredClone(s));
    const same = (a: RecordSet, b: RecordSet) => a.Name === b.Name && a.Type === b.Type;
    for (const { Action, ResourceRecordSet } of input.ChangeBatch.Changes as { Action: string; ResourceRecordSet: RecordSet }[]) {
      const existing = next.find((s) => same(s, ResourceRecordSet));
      if (Action === 'DELETE') {
        if (!existing || JSON.stringify(existing) !== JSON.stringify(ResourceRecordSet)) {
          throw new InvalidChangeBatch({
            message: `Tried to delete resource record set [name='${ResourceRecordSet.Name}', type='${ResourceRecordSet.Type}'] but the values provided do not match the current values`,
            $metadata: {},
          });
        }
        next = next.filter((s) => !same(s, ResourceRecordSet));
      } else if (Action === 'CREATE') {
        if (existing)
          throw new InvalidChangeBatch({
            message: `Tried to create resource record set [name='${ResourceRecordSet.Name}', type='${ResourceRecordSet.Type}'] but it already exists`,
            $metadata: {},
          });
        next.push(structuredClone(ResourceRecordSet));
      } else {
        next = [...next.filter((s) => !same(s, ResourceRecordSet)), structuredClone(ResourceRecordSet)];
      }
    }
    for (const set of next) {
      if (set.Type === 'CNAME' && next.some((o) => o.Name === set.Name && o.Type !== 'CNAME')) {
        throw new InvalidChangeBatch({
          message: `RRSet of type CNAME with DNS name ${set.Name} is not permitted as it conflicts with other records with the same DNS name`,
          $metadata: {},
        });
      }
    }
    sets = next;
    changeCount += 1;
    const id = `/change/C0${changeCount}ABCDEFGHIJ`;
    pending.set(id, { left: options.getChangesUntilInsync ?? 2, sets: structuredClone(next) });
    return { ChangeInfo: { Id: id, Status: 'PENDING', SubmittedAt: new Date() } };
  });

  mock.on(GetChangeCommand).callsFake(async (input) => {
    const change = pending.get(input.Id)!;
    if (change.left > 0) {
      change.left -= 1;
      return { ChangeInfo: { Id: input.Id, Status: 'PENDING', SubmittedAt: new Date() } };
    }
    publish(change.sets);
    return { ChangeInfo: { Id: input.Id, Status: 'INSYNC', SubmittedAt: new Date() } };
  });

  mock.on(GetHostedZoneCommand).callsFake(async (input) => ({
    HostedZone: { Id: `/hostedzone/${input.Id}`, Name: 'billing.example.com.', CallerReference: 'x' },
    ...(options.nameServers ? { DelegationSet: { NameServers: options.nameServers } } : {}),
  }));

  return { mock, sets: () => sets };
}

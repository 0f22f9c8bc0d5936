/**
 * Confirms a DNS change by asking the zone's own name servers, not a caching resolver: INSYNC says
 * Route53 has propagated the change, this says what the world is actually told.
 *
 * What counts as the new answer:
 * - plain values (A/AAAA): the answer equals the wanted values as a set;
 * - CNAME: the answer is the wanted canonical name;
 * - alias: Route53 answers with the alias target's current addresses, which a load balancer rotates.
 *   The answer passes if it shares an address with the target as the recursive resolver sees it now;
 *   failing that, if it is non-empty and shares nothing with the previous values (or the previous
 *   record was a CNAME, which the server would have returned instead of addresses). A large ELB can
 *   hand out disjoint subsets, and "changed away from legacy" is what the cutover needs to know.
 *
 * Name-server addresses and the recursive lookups are injectable through `ctx.resource` under
 * AUTHORITATIVE_DNS_RESOURCE, so tests point them at a DNS server on 127.0.0.1.
 */
import { promises as dns } from 'node:dns';
import type { StepContext } from '../core/step.ts';
import type { RecordSet } from './record-sets.ts';

export const AUTHORITATIVE_DNS_RESOURCE = 'dns:authoritative';

export interface DnsLookups {
  /** `ip` or `ip:port` to query for each name server host name. */
  nameServerAddresses(nameServers: readonly string[]): Promise<string[]>;
  /** Addresses of `name` through the ordinary recursive resolver (for alias targets). */
  resolveRecursive(name: string, type: 'A' | 'AAAA'): Promise<string[]>;
}

export const systemDnsLookups: DnsLookups = {
  async nameServerAddresses(nameServers) {
    const addresses = await Promise.all(nameServers.map(async (host) => (await dns.lookup(host, { family: 4 })).address));
    return addresses;
  },
  async resolveRecursive(name, type) {
    try {
      return type === 'A' ? await dns.resolve4(name) : await dns.resolve6(name);
    } catch {
      return [];
    }
  },
};

export function dnsLookups(ctx: Pick<StepContext, 'resource'>): Promise<DnsLookups> {
  return ctx.resource(AUTHORITATIVE_DNS_RESOURCE, () => systemDnsLookups);
}

/** What one server answered: values, or the error code when it gave none. */
export type Answer = { values: string[] } | { error: string };

const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND']);

export async function ask(server: string, name: string, type: 'A' | 'AAAA' | 'CNAME'): Promise<Answer> {
  const resolver = new dns.Resolver({ timeout: 2000, tries: 2 });
  resolver.setServers([server]);
  try {
    const values =
      type === 'A' ? await resolver.resolve4(name) : type === 'AAAA' ? await resolver.resolve6(name) : await resolver.resolveCname(name);
    return { values };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    return NO_RECORDS.has(code) ? { values: [] } : { error: code };
  } finally {
    resolver.cancel();
  }
}

const bare = (name: string) => name.toLowerCase().replace(/\.$/, '');

/** Whether `answer` shows the name pointing at `wanted` (see the module comment for aliases). */
export async function isNewAnswer(
  lookups: DnsLookups,
  answer: Answer,
  wanted: RecordSet,
  previous: readonly RecordSet[],
): Promise<boolean> {
  if ('error' in answer || answer.values.length === 0) return false;
  const got = new Set(answer.values.map(bare));
  if (!wanted.AliasTarget) {
    const expected = new Set((wanted.ResourceRecords ?? []).map((r) => bare(r.Value)));
    return got.size === expected.size && [...got].every((v) => expected.has(v));
  }
  const targetAddresses = await lookups.resolveRecursive(wanted.AliasTarget.DNSName, wanted.Type === 'AAAA' ? 'AAAA' : 'A');
  if (targetAddresses.some((a) => got.has(bare(a)))) return true;
  const before = previous.find((s) => s.Type === wanted.Type || s.Type === 'CNAME');
  if (!before || before.AliasTarget) return false;
  if (before.Type === 'CNAME') return true;
  return (before.ResourceRecords ?? []).every((r) => !got.has(bare(r.Value)));
}

export function describeAnswer(answer: Answer): string {
  return 'error' in answer ? `no answer (${answer.error})` : answer.values.length === 0 ? 'no records' : answer.values.join(', ');
}

/**
 * A minimal authoritative DNS server on 127.0.0.1 (UDP) for the tests and the rehearsal: answers A
 * and CNAME questions from a table the caller sets, each record set with its own TTL, NXDOMAIN for
 * unknown names, NODATA for known names without that type, and a CNAME in place of the asked type
 * as a real authoritative server does. The rehearsal's DNS-following client resolves the app's name
 * here, so the TTL it honours is the record's.
 */
import { createSocket } from 'node:dgram';

const TYPES: Record<string, number> = { A: 1, CNAME: 5, AAAA: 28 };

function readName(message: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let at = offset;
  while (message[at]! !== 0) {
    const length = message[at]!;
    labels.push(message.subarray(at + 1, at + 1 + length).toString('ascii'));
    at += 1 + length;
  }
  return { name: labels.join('.').toLowerCase(), end: at + 1 };
}

function encodeName(name: string): Buffer {
  const parts = name
    .replace(/\.$/, '')
    .split('.')
    .map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label, 'ascii')]));
  return Buffer.concat([...parts, Buffer.from([0])]);
}

function answer(type: string, value: string, ttl: number): Buffer {
  const rdata = type === 'A' ? Buffer.from(value.split('.').map(Number)) : encodeName(value);
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0xc00c, 0); // pointer to the question's name
  head.writeUInt16BE(TYPES[type]!, 2);
  head.writeUInt16BE(1, 4); // IN
  head.writeUInt32BE(ttl, 6);
  head.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([head, rdata]);
}

export interface DnsServer {
  /** `127.0.0.1:<port>`, the form Resolver.setServers takes. */
  address: string;
  /** Replaces what `name` answers for `type` (empty: no records of that type), with `ttl` seconds (default 60). */
  set(name: string, type: 'A' | 'CNAME', values: string[], ttl?: number): void;
  clear(name: string): void;
  queries: { name: string; type: number }[];
  close(): Promise<void>;
}

export async function startDnsServer(): Promise<DnsServer> {
  const records = new Map<string, Map<string, { values: string[]; ttl: number }>>();
  const queries: DnsServer['queries'] = [];
  const socket = createSocket('udp4');
  socket.on('message', (message, peer) => {
    const { name, end } = readName(message, 12);
    const qtype = message.readUInt16BE(end);
    queries.push({ name, type: qtype });
    const atName = records.get(name);
    const wantedType = Object.keys(TYPES).find((t) => TYPES[t] === qtype) ?? '';
    const cname = atName?.get('CNAME');
    const values = cname?.values.length
      ? cname.values.map((v) => answer('CNAME', v, cname.ttl))
      : (atName?.get(wantedType)?.values ?? []).map((v) => answer(wantedType, v, atName!.get(wantedType)!.ttl));
    const header = Buffer.alloc(12);
    header.writeUInt16BE(message.readUInt16BE(0), 0);
    header.writeUInt16BE(0x8400 | (atName ? 0 : 3), 2); // response, authoritative; NXDOMAIN for unknown names
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(values.length, 6);
    socket.send(Buffer.concat([header, message.subarray(12, end + 4), ...values]), peer.port, peer.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${socket.address().port}`,
    set(name, type, values, ttl = 60) {
      const atName = records.get(name.toLowerCase().replace(/\.$/, '')) ?? new Map<string, { values: string[]; ttl: number }>();
      atName.set(type, { values, ttl });
      records.set(name.toLowerCase().replace(/\.$/, ''), atName);
    },
    clear(name) {
      records.delete(name.toLowerCase().replace(/\.$/, ''));
    },
    queries,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}

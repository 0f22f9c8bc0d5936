/**
 * Sends one recorded request to the new app, as close to what the provider sent as HTTP allows:
 * same method, raw path and query, header names (with their case), order and repeats, and the exact
 * body bytes. Only what belongs to the hop between the provider and the recorder is dropped, and Host
 * and Content-Length are recomputed for the new hop. Uses node:http rather than fetch because fetch
 * adds headers of its own (accept, accept-encoding, user-agent…) and normalises names.
 */
import http from 'node:http';
import https from 'node:https';
import type { RecordedRequest } from './recorded-request.ts';

/** RFC 9110 §7.6.1 connection-specific fields, plus Expect (the recorder already answered any 100-continue). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
]);
const RECOMPUTED = new Set(['host', 'content-length']);

export interface ForwardTarget {
  /** Base URL of the new app; a path in it prefixes the recorded path. */
  url: URL;
  idempotencyHeader: string;
  /** Send the Host the provider used instead of the target's (for apps routed by virtual host). */
  preserveHost: boolean;
  timeoutMs: number;
  agent: http.Agent;
}

export type DeliveryOutcome =
  | { kind: 'delivered'; status: number }
  /** 408, 429, 5xx, timeouts and connection errors: worth another attempt. */
  | { kind: 'retryable'; reason: string; retryAfterMs?: number }
  /** Anything else: retrying would get the same answer. */
  | { kind: 'rejected'; reason: string };

/** Flat [name, value, name, value…] header list (node's rawHeaders form, which keeps case and order). */
export function outgoingHeaders(
  request: RecordedRequest,
  target: Pick<ForwardTarget, 'url' | 'idempotencyHeader' | 'preserveHost'>,
): string[] {
  const named = (name: string) => (pair: [string, string]) => pair[0].toLowerCase() === name;
  // A Connection header lists further fields that were meant for that hop only.
  const connectionScoped = new Set(
    request.headers
      .filter(named('connection'))
      .flatMap(([, value]) => value.split(','))
      .map((token) => token.trim().toLowerCase())
      .filter(Boolean),
  );
  const idempotency = target.idempotencyHeader.toLowerCase();
  const originalHost = request.headers.find(named('host'))?.[1];
  const host = target.preserveHost && originalHost ? originalHost : target.url.host;
  const flat = ['Host', host];
  for (const [name, value] of request.headers) {
    const lower = name.toLowerCase();
    if (
      HOP_BY_HOP.has(lower) ||
      RECOMPUTED.has(lower) ||
      lower.startsWith('proxy-') ||
      connectionScoped.has(lower) ||
      lower === idempotency
    )
      continue;
    flat.push(name, value);
  }
  const hadBodyFraming = request.headers.some(([name]) => ['content-length', 'transfer-encoding'].includes(name.toLowerCase()));
  if (request.body.length > 0 || hadBodyFraming) flat.push('Content-Length', String(request.body.length));
  flat.push(target.idempotencyHeader, request.id);
  return flat;
}

export function targetPath(request: RecordedRequest, base: URL): string {
  const prefix = base.pathname.replace(/\/+$/, '');
  return `${prefix}${request.path}${request.query ? `?${request.query}` : ''}`;
}

export function forward(request: RecordedRequest, target: ForwardTarget): Promise<DeliveryOutcome> {
  return new Promise((resolve) => {
    const transport = target.url.protocol === 'https:' ? https : http;
    let client: http.ClientRequest;
    try {
      client = transport.request({
        protocol: target.url.protocol,
        hostname: target.url.hostname,
        port: target.url.port || undefined,
        method: request.method,
        path: targetPath(request, target.url),
        headers: outgoingHeaders(request, target),
        agent: target.agent,
      });
    } catch (error) {
      // Node validates names and values before sending; a value it refuses never will be sendable.
      resolve({
        kind: 'rejected',
        reason: `the recorded method or headers cannot be sent (${(error as NodeJS.ErrnoException).code ?? 'invalid'})`,
      });
      return;
    }
    const timer = setTimeout(() => client.destroy(new TimeoutError()), target.timeoutMs);
    const settle = (outcome: DeliveryOutcome) => {
      clearTimeout(timer);
      resolve(outcome);
    };
    client.on('response', (response) => {
      const status = response.statusCode ?? 0;
      // The body is not needed (and may echo what was sent), but must be drained to free the socket.
      response.resume();
      response.on('end', () => settle(classify(status, response.headers['retry-after'])));
      response.on('error', (error) => settle(connectionFailure(error, target.timeoutMs)));
    });
    client.on('error', (error) => settle(connectionFailure(error, target.timeoutMs)));
    client.end(request.body);
  });
}

class TimeoutError extends Error {
  override name = 'TimeoutError';
}

function classify(status: number, retryAfter: string | undefined): DeliveryOutcome {
  if (status >= 200 && status < 300) return { kind: 'delivered', status };
  if (status === 408 || status === 429 || status >= 500) {
    // Only the delta-seconds form: the HTTP-date form would mix the server's clock with ours.
    const seconds = retryAfter !== undefined && /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter) : undefined;
    return { kind: 'retryable', reason: `HTTP ${status}`, ...(seconds !== undefined ? { retryAfterMs: seconds * 1000 } : {}) };
  }
  return { kind: 'rejected', reason: `HTTP ${status}` };
}

function connectionFailure(error: Error, timeoutMs: number): DeliveryOutcome {
  if (error instanceof TimeoutError) return { kind: 'retryable', reason: `no response within ${timeoutMs} ms` };
  const code = (error as NodeJS.ErrnoException).code;
  return { kind: 'retryable', reason: code ? `connection failed (${code})` : `connection failed (${error.name})` };
}

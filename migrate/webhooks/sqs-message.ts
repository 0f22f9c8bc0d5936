/**
 * Reads an SQS message written by the recorder's API Gateway → SQS SendMessage integration back into
 * the request it recorded: the body base64-encoded in MessageBody (base64 keeps binary bodies intact
 * through SQS, which only carries XML-safe text), and method, path, query, headers and receive time as
 * message attributes.
 */
import type { Message } from '@aws-sdk/client-sqs';
import type { RecordedRequest } from './recorded-request.ts';

/** Message attribute names the recorder writes. */
export const RECORDED_ATTRIBUTES = {
  method: 'method',
  path: 'path',
  query: 'query',
  /** JSON object: header name → value, or → array of values for a repeated header. */
  headers: 'headers',
  /** API Gateway's `$context.requestTimeEpoch` (epoch ms). */
  receivedAt: 'requestTimeEpoch',
} as const;

export class MessageFormatError extends Error {}

export function decodeSqsMessage(message: Message): RecordedRequest {
  const id = message.MessageId;
  if (!id) throw new MessageFormatError('the message has no MessageId');
  const attribute = (name: string): string | undefined => message.MessageAttributes?.[name]?.StringValue;
  const required = (name: string): string => {
    const value = attribute(name);
    if (value === undefined || value === '') throw new MessageFormatError(`message attribute '${name}' is missing`);
    return value;
  };
  const method = required(RECORDED_ATTRIBUTES.method).toUpperCase();
  const rawPath = required(RECORDED_ATTRIBUTES.path);
  const receivedAtText = attribute(RECORDED_ATTRIBUTES.receivedAt);
  const receivedAt = receivedAtText === undefined ? null : Number(receivedAtText);
  if (receivedAt !== null && !Number.isFinite(receivedAt)) {
    throw new MessageFormatError(`message attribute '${RECORDED_ATTRIBUTES.receivedAt}' is not a number`);
  }
  return {
    id,
    method,
    path: rawPath.startsWith('/') ? rawPath : `/${rawPath}`,
    query: (attribute(RECORDED_ATTRIBUTES.query) ?? '').replace(/^\?/, ''),
    headers: decodeHeaders(attribute(RECORDED_ATTRIBUTES.headers)),
    body: decodeBody(message.Body ?? ''),
    receivedAt,
  };
}

function decodeHeaders(json: string | undefined): Array<[string, string]> {
  if (json === undefined || json === '') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new MessageFormatError(`message attribute '${RECORDED_ATTRIBUTES.headers}' is not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new MessageFormatError(`message attribute '${RECORDED_ATTRIBUTES.headers}' is not a JSON object`);
  }
  const pairs: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(parsed)) {
    for (const one of Array.isArray(value) ? value : [value]) {
      if (typeof one !== 'string') throw new MessageFormatError(`header '${name}' in message attribute '${RECORDED_ATTRIBUTES.headers}' is not a string`);
      pairs.push([name, one]);
    }
  }
  return pairs;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function decodeBody(text: string): Buffer {
  const compact = text.replace(/\s+/g, '');
  // Buffer.from(…, 'base64') silently skips invalid characters, which would hand the app a body that
  // no longer matches its signature; refuse instead.
  if (compact.length % 4 !== 0 || !BASE64.test(compact)) throw new MessageFormatError('the message body is not base64');
  return Buffer.from(compact, 'base64');
}

/**
 * Reads a message written by the recorder (format: infra/webhook-message-format.ts) back into the
 * request it recorded. Strict: a body that does not decode exactly would reach the app with a
 * signature that no longer matches, so an unreadable message is dead-lettered rather than guessed at.
 */
import type { Message } from '@aws-sdk/client-sqs';
import { WEBHOOK_MESSAGE_ATTRIBUTES as ATTRIBUTES, EMPTY_BODY_PLACEHOLDER } from '../../infra/webhook-message-format.ts';
import type { RecordedRequest } from './recorded-request.ts';

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
  const path = required(ATTRIBUTES.path);
  const receivedAt = Number(required(ATTRIBUTES.receivedAt));
  if (!Number.isFinite(receivedAt)) throw new MessageFormatError(`message attribute '${ATTRIBUTES.receivedAt}' is not a number`);
  return {
    // API Gateway's request id, fixed when the request was recorded: a message redriven from the
    // dead-letter queue arrives with a new MessageId but keeps it. Messages recorded before the
    // recorder stored it have only their MessageId, which is then the key.
    id: attribute(ATTRIBUTES.requestId) || id,
    method: required(ATTRIBUTES.method).toUpperCase(),
    path: path.startsWith('/') ? path : `/${path}`,
    query: attribute(ATTRIBUTES.query) ?? '',
    headers: decodeHeaders(attribute(ATTRIBUTES.headers)),
    body: decodeBody(message.Body ?? '', required(ATTRIBUTES.bodyEncoding)),
    receivedAt,
  };
}

function decodeHeaders(json: string | undefined): Array<[string, string]> {
  if (json === undefined || json === '') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new MessageFormatError(`message attribute '${ATTRIBUTES.headers}' is not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new MessageFormatError(`message attribute '${ATTRIBUTES.headers}' is not a JSON object`);
  }
  return Object.entries(parsed).map(([name, value]) => {
    if (typeof value !== 'string')
      throw new MessageFormatError(`header '${name}' in message attribute '${ATTRIBUTES.headers}' is not a string`);
    return [name, value];
  });
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function decodeBody(text: string, encoding: string): Buffer {
  if (encoding === 'empty') {
    if (text !== EMPTY_BODY_PLACEHOLDER)
      throw new MessageFormatError(`bodyEncoding is 'empty' but the message body is not '${EMPTY_BODY_PLACEHOLDER}'`);
    return Buffer.alloc(0);
  }
  if (encoding !== 'base64')
    throw new MessageFormatError(`message attribute '${ATTRIBUTES.bodyEncoding}' is '${encoding}', not base64 or empty`);
  const compact = text.replace(/\s+/g, '');
  // Buffer.from(…, 'base64') silently skips invalid characters; refuse instead.
  if (compact.length % 4 !== 0 || !BASE64.test(compact)) throw new MessageFormatError('the message body is not base64');
  return Buffer.from(compact, 'base64');
}

/**
 * The webhook recorder's message format (version 1): what each SQS message on the recorder queue
 * holds, as written by the API Gateway mapping template in webhook-recorder-template.ts and read by
 * the migrate CLI's replay. No @pulumi imports: the CLI imports this file.
 *
 * One inbound HTTP request = one message on a FIFO queue:
 * - MessageGroupId is always WEBHOOK_MESSAGE_GROUP_ID, so the queue hands messages out in exactly
 *   the order API Gateway stored them (arrival order), one group, strictly ordered.
 * - MessageDeduplicationId is API Gateway's request id: two identical deliveries from a provider are
 *   two messages (a provider's retry is its own event; the app's idempotency decides), while an
 *   internal API Gateway retry of the same request is stored once.
 * - MessageBody is the request body, base64 (RFC 4648 standard alphabet, padded) of the exact bytes
 *   received, whatever the content type: API Gateway treats every media type as binary and hands the
 *   template the base64 text, so signed bodies survive byte for byte. SQS refuses an empty body, so
 *   a request without a body is stored as MessageBody "-" with attribute bodyEncoding = "empty".
 * - MessageAttributes (DataType String unless noted) carry the rest of the request.
 */

export const WEBHOOK_MESSAGE_FORMAT_VERSION = 1;
export const WEBHOOK_MESSAGE_GROUP_ID = 'webhooks';
/** MessageBody of a request that had no body (SQS rejects empty message bodies). */
export const EMPTY_BODY_PLACEHOLDER = '-';

export const WEBHOOK_MESSAGE_ATTRIBUTES = {
  /** HTTP method as received, upper case (`$context.httpMethod`). */
  method: 'method',
  /**
   * Request path (`$context.path`), starting with `/`. Through the recorder's custom domain (base
   * path mapping at the root) it is the path the provider called; through the execute-api URL it
   * starts with `/<stage>`.
   */
  path: 'path',
  /**
   * Query string without `?`, rebuilt from API Gateway's parsed parameters as
   * `urlencode(name)=urlencode(value)` joined by `&`: a repeated parameter keeps only its last
   * value and the original order and encoding are not preserved. Absent when there was no query.
   */
  query: 'query',
  /**
   * JSON object of request headers, header name (as received) → value (string). API Gateway gives
   * one value per name (a repeated header arrives as its last value).
   */
  headers: 'headers',
  /** DataType Number: when API Gateway received the request, epoch milliseconds (`$context.requestTimeEpoch`). */
  receivedAt: 'requestTimeEpoch',
  /**
   * API Gateway's request id (`$context.requestId`), also the deduplication id and the replay's
   * idempotency key: unlike the SQS message id it survives a redrive from the dead-letter queue.
   * A message without it (recorded by an older template) is keyed by its SQS message id.
   */
  requestId: 'requestId',
  /** Client address as API Gateway saw it (`$context.identity.sourceIp`). */
  sourceIp: 'sourceIp',
  /** `base64` (MessageBody is the base64 body) or `empty` (MessageBody is the placeholder `-`). */
  bodyEncoding: 'bodyEncoding',
} as const;

export type WebhookMessageAttribute = (typeof WEBHOOK_MESSAGE_ATTRIBUTES)[keyof typeof WEBHOOK_MESSAGE_ATTRIBUTES];

/** The message as the CLI receives it from SQS (ReceiveMessage with MessageAttributeNames ['All']). */
export interface RecordedWebhookMessage {
  MessageId: string;
  /** base64 body, or EMPTY_BODY_PLACEHOLDER when bodyEncoding is `empty`. */
  Body: string;
  MessageAttributes: {
    method: { DataType: 'String'; StringValue: string };
    path: { DataType: 'String'; StringValue: string };
    query?: { DataType: 'String'; StringValue: string };
    headers: { DataType: 'String'; StringValue: string };
    requestTimeEpoch: { DataType: 'Number'; StringValue: string };
    requestId: { DataType: 'String'; StringValue: string };
    sourceIp: { DataType: 'String'; StringValue: string };
    bodyEncoding: { DataType: 'String'; StringValue: 'base64' | 'empty' };
  };
}

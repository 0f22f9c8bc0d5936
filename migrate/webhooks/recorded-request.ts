/**
 * One inbound webhook as the recorder stored it. Bodies and header values may carry credentials
 * (signatures, bearer tokens, customer data), so nothing here is ever logged or journaled except
 * through `describeRequest`, which keeps to method, path and size.
 */
export interface RecordedRequest {
  /**
   * The replay's idempotency key, fixed when the request was recorded: API Gateway's request id for
   * SQS (the same after a redrive from the dead-letter queue, unlike the SQS message id, which is the
   * fallback for messages recorded without it); the stand-in's own id for the local queue.
   */
  id: string;
  method: string;
  /** Raw request path as received (still percent-encoded), starting with `/`. */
  path: string;
  /** Raw query string without the `?`, byte-for-byte as received; '' when there was none. */
  query: string;
  /** Header name/value pairs in arrival order; a repeated header appears once per value. */
  headers: Array<[string, string]>;
  /** Exact body bytes: providers sign these, so they are never re-encoded. */
  body: Buffer;
  /** When the recorder received it (epoch ms), if the recorder said. */
  receivedAt: number | null;
}

/** A message taken off a recorded queue: either a request, or why it could not be read as one. */
export interface ReceivedMessage {
  id: string;
  /** Handle for delete / visibility changes; valid until the message is received again. */
  receipt: string;
  request: RecordedRequest | null;
  /** Set when `request` is null: which field of the message was unreadable. */
  problem?: string;
}

/** The only form in which a recorded request may appear in logs and plans. */
export function describeRequest(request: RecordedRequest): string {
  return `${request.method} ${request.path} (${formatBytes(request.body.length)})`;
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

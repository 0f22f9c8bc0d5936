/**
 * What the replay needs from wherever the recorder put the requests. Two implementations: the
 * stack's SQS FIFO queue (`sqs-queue.ts`) and the rehearsal's file-backed stand-in (`local-queue.ts`).
 */
import type { ReceivedMessage } from './recorded-request.ts';

export interface QueueCounts {
  /** Messages ready to receive. */
  visible: number;
  /** Messages received by someone (possibly an interrupted earlier attempt) and not yet deleted. */
  inFlight: number;
}

export interface RecordedQueue {
  /** `SQS queue <url>` or `local stand-in queue <dir>`: what logs and results call it. */
  readonly label: string;
  readonly kind: 'sqs' | 'local stand-in';
  /** Oldest first. Received messages stay invisible to other receives for `visibilitySeconds`. */
  receive(max: number, visibilitySeconds: number, waitSeconds: number): Promise<ReceivedMessage[]>;
  /** Makes a received message visible again at once (dry-run sampling). */
  release(message: ReceivedMessage): Promise<void>;
  delete(message: ReceivedMessage): Promise<void>;
  /** Copies the message, unchanged, to the dead-letter queue with `reason` attached; does not delete it here. */
  sendToDeadLetter(message: ReceivedMessage, reason: string): Promise<void>;
  counts(): Promise<QueueCounts>;
  /** Requests the recorder accepted in total, when it can tell independently of the replay (the stand-in can). */
  receivedTotal(): Promise<number | null>;
}

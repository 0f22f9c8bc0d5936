/** The recorder's SQS FIFO queue, through the run's shared SQS client. */
import { randomUUID } from 'node:crypto';
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  type Message,
  type MessageAttributeValue,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { WEBHOOK_MESSAGE_GROUP_ID } from '../../infra/webhook-message-format.ts';
import { callAws } from '../aws/call.ts';
import type { QueueCounts, RecordedQueue } from './recorded-queue.ts';
import type { ReceivedMessage } from './recorded-request.ts';
import { decodeSqsMessage, MessageFormatError } from './sqs-message.ts';

/** Attributes the replay adds to a dead-lettered copy: the recorder uses 8 of the 10 SQS allows per message. */
export const DEAD_LETTER_ATTRIBUTES = { reason: 'replay-failure-reason', originalMessageId: 'replay-original-message-id' } as const;

export interface SqsQueueRef {
  url: string;
  arn: string;
}

export class SqsRecordedQueue implements RecordedQueue {
  readonly kind = 'sqs';
  readonly label: string;
  readonly #raw = new WeakMap<ReceivedMessage, Message>();

  constructor(
    private readonly sqs: SQSClient,
    private readonly queue: SqsQueueRef,
    private readonly deadLetter: SqsQueueRef,
  ) {
    this.label = `SQS queue ${queue.url}`;
  }

  async receive(max: number, visibilitySeconds: number, waitSeconds: number): Promise<ReceivedMessage[]> {
    const out = await callAws('sqs:ReceiveMessage', this.queue.arn, () =>
      this.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: this.queue.url,
          MaxNumberOfMessages: max,
          VisibilityTimeout: visibilitySeconds,
          WaitTimeSeconds: waitSeconds,
          MessageAttributeNames: ['All'],
          MessageSystemAttributeNames: ['MessageGroupId', 'SequenceNumber'],
          // On a FIFO queue a receive whose response is lost hides its messages until they time out;
          // an explicit attempt id makes the SDK's retry of the same call return the same batch.
          ReceiveRequestAttemptId: randomUUID(),
        }),
      ),
    );
    return (out.Messages ?? []).map((raw) => {
      const message = this.#toReceived(raw);
      this.#raw.set(message, raw);
      return message;
    });
  }

  async release(message: ReceivedMessage): Promise<void> {
    await callAws('sqs:ChangeMessageVisibility', this.queue.arn, () =>
      this.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: this.queue.url, ReceiptHandle: message.receipt, VisibilityTimeout: 0 })),
    );
  }

  async delete(message: ReceivedMessage): Promise<void> {
    await callAws('sqs:DeleteMessage', this.queue.arn, () =>
      this.sqs.send(new DeleteMessageCommand({ QueueUrl: this.queue.url, ReceiptHandle: message.receipt })),
    );
  }

  async sendToDeadLetter(message: ReceivedMessage, reason: string): Promise<void> {
    const raw = this.#raw.get(message);
    if (!raw) throw new Error(`message ${message.id} was not received from ${this.label}`);
    const fifo = this.deadLetter.url.endsWith('.fifo');
    const attributes: Record<string, MessageAttributeValue> = {
      ...raw.MessageAttributes,
      [DEAD_LETTER_ATTRIBUTES.reason]: { DataType: 'String', StringValue: reason },
      [DEAD_LETTER_ATTRIBUTES.originalMessageId]: { DataType: 'String', StringValue: message.id },
    };
    await callAws('sqs:SendMessage', this.deadLetter.arn, () =>
      this.sqs.send(
        new SendMessageCommand({
          QueueUrl: this.deadLetter.url,
          MessageBody: raw.Body ?? '',
          MessageAttributes: attributes,
          // Deduplicating on the original id makes a resend after a crash (within SQS's 5-minute
          // window) land once.
          ...(fifo
            ? { MessageGroupId: raw.Attributes?.MessageGroupId ?? WEBHOOK_MESSAGE_GROUP_ID, MessageDeduplicationId: message.id }
            : {}),
        }),
      ),
    );
  }

  async counts(): Promise<QueueCounts> {
    const out = await callAws('sqs:GetQueueAttributes', this.queue.arn, () =>
      this.sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: this.queue.url,
          AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
        }),
      ),
    );
    return {
      visible: Number(out.Attributes?.ApproximateNumberOfMessages ?? 0),
      inFlight: Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
    };
  }

  async receivedTotal(): Promise<number | null> {
    return null;
  }

  #toReceived(raw: Message): ReceivedMessage {
    const id = raw.MessageId ?? '(no id)';
    const receipt = raw.ReceiptHandle ?? '';
    try {
      return { id, receipt, request: decodeSqsMessage(raw) };
    } catch (error) {
      if (!(error instanceof MessageFormatError)) throw error;
      return { id, receipt, request: null, problem: error.message };
    }
  }
}

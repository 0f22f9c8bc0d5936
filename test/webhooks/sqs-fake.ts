/**
 * An SQS FIFO queue with one message group, behind aws-sdk-client-mock: receives hand out the oldest
 * messages and lock the group while any is in flight; visibility runs on the test's fake clock. Every
 * request stays inspectable through `mock.commandCalls(...)`.
 */
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SendMessageCommandInput,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { WEBHOOK_MESSAGE_ATTRIBUTES as A, EMPTY_BODY_PLACEHOLDER, WEBHOOK_MESSAGE_GROUP_ID } from '../../infra/webhook-message-format.ts';

export interface RecordedFixture {
  id: string;
  method: string;
  path: string;
  query?: string;
  headers: Record<string, string>;
  body: Buffer;
  receivedAt?: number;
  /** API Gateway's request id; the fixture's id when absent. */
  requestId?: string;
}

/** The message the recorder's mapping template would have stored for a request (format version 1). */
export function recorderMessage(fixture: RecordedFixture, sequence: number): Message {
  const text = (value: string) => ({ DataType: 'String', StringValue: value });
  const empty = fixture.body.length === 0;
  return {
    MessageId: fixture.id,
    Body: empty ? EMPTY_BODY_PLACEHOLDER : fixture.body.toString('base64'),
    MessageAttributes: {
      [A.bodyEncoding]: text(empty ? 'empty' : 'base64'),
      [A.method]: text(fixture.method),
      [A.path]: text(fixture.path),
      [A.headers]: text(JSON.stringify(fixture.headers)),
      [A.receivedAt]: { DataType: 'Number', StringValue: String(fixture.receivedAt ?? 1_750_000_000_000 + sequence) },
      [A.requestId]: text(fixture.requestId ?? fixture.id),
      [A.sourceIp]: text('192.0.2.44'),
      ...(fixture.query ? { [A.query]: text(fixture.query) } : {}),
    },
    Attributes: { MessageGroupId: WEBHOOK_MESSAGE_GROUP_ID, SequenceNumber: String(10_000 + sequence) },
  };
}

interface Stored {
  message: Message;
  receipt: string | null;
  invisibleUntil: number;
}

export function fakeFifoQueue(options: { queueUrl: string; deadLetterQueueUrl: string; now: () => number }) {
  const mock = mockClient(SQSClient);
  const stored: Stored[] = [];
  const deadLetters: SendMessageCommandInput[] = [];
  const failDeleteOf = new Set<string>();
  let receipts = 0;
  const inFlight = () => stored.filter((s) => s.invisibleUntil > options.now());
  const byReceipt = (receipt: string | undefined) => {
    const found = stored.find((s) => s.receipt === receipt);
    if (!found) throw Object.assign(new Error('The receipt handle is not valid for this request.'), { name: 'ReceiptHandleIsInvalid' });
    return found;
  };

  mock.on(ReceiveMessageCommand, { QueueUrl: options.queueUrl }).callsFake((input) => {
    if (inFlight().length > 0) return { Messages: [] };
    const batch = stored.slice(0, input.MaxNumberOfMessages ?? 1);
    for (const s of batch) {
      s.receipt = `receipt-${++receipts}-${s.message.MessageId}`;
      s.invisibleUntil = options.now() + (input.VisibilityTimeout ?? 30) * 1000;
    }
    return { Messages: batch.map((s) => ({ ...s.message, ReceiptHandle: s.receipt! })) };
  });
  mock.on(DeleteMessageCommand, { QueueUrl: options.queueUrl }).callsFake((input) => {
    const found = byReceipt(input.ReceiptHandle);
    if (failDeleteOf.delete(found.message.MessageId!))
      throw Object.assign(new Error('simulated crash before the delete'), { name: 'SimulatedCrash' });
    stored.splice(stored.indexOf(found), 1);
    return {};
  });
  mock.on(ChangeMessageVisibilityCommand, { QueueUrl: options.queueUrl }).callsFake((input) => {
    byReceipt(input.ReceiptHandle).invisibleUntil = options.now() + (input.VisibilityTimeout ?? 0) * 1000;
    return {};
  });
  mock.on(GetQueueAttributesCommand, { QueueUrl: options.queueUrl }).callsFake(() => ({
    Attributes: {
      ApproximateNumberOfMessages: String(stored.length - inFlight().length),
      ApproximateNumberOfMessagesNotVisible: String(inFlight().length),
    },
  }));
  mock.on(SendMessageCommand, { QueueUrl: options.deadLetterQueueUrl }).callsFake((input) => {
    deadLetters.push(input);
    return { MessageId: `dlq-${deadLetters.length}` };
  });

  return {
    mock,
    deadLetters,
    add(...fixtures: RecordedFixture[]) {
      for (const fixture of fixtures) stored.push({ message: recorderMessage(fixture, stored.length), receipt: null, invisibleUntil: 0 });
    },
    addRaw(message: Message) {
      stored.push({ message, receipt: null, invisibleUntil: 0 });
    },
    /** The next delete of this message fails as if the process died right before it. */
    failDeleteOnce(id: string) {
      failDeleteOf.add(id);
    },
    ids: () => stored.map((s) => s.message.MessageId),
  };
}

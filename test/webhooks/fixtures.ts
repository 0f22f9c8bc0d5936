/** Outputs, recorded requests and planted secrets shared by the webhook tests. */
import type { StackOutputs } from '../../infra/contract.ts';
import type { Json, Progress } from '../../migrate/core/step.ts';
import { ACCOUNT, awsOutputs, REGION } from '../aws/fixtures.ts';
import { SIGNATURE_HEADER, sign } from './receiver.ts';
import type { RecordedFixture } from './sqs-fake.ts';

export const QUEUE_URL = `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/billing-production-webhooks.fifo`;
export const DLQ_URL = `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/billing-production-webhooks-dlq.fifo`;

export function sqsOutputs(): StackOutputs {
  const base = awsOutputs();
  return {
    ...base,
    webhooks: {
      ...base.webhooks!,
      queueUrl: QUEUE_URL,
      queueArn: `arn:aws:sqs:${REGION}:${ACCOUNT}:billing-production-webhooks.fifo`,
      deadLetterQueueUrl: DLQ_URL,
      deadLetterQueueArn: `arn:aws:sqs:${REGION}:${ACCOUNT}:billing-production-webhooks-dlq.fifo`,
    },
  };
}

/** Values that must never leave the replay: a bearer token, a body marker and a query token. */
export const PLANTED = {
  authorization: 'Bearer sk_live_PLANTED_7f3a9c2e51d04b8e',
  body: 'PLANTED-card-fingerprint-91b2c7',
  query: 'PLANTED-query-token-3e8d',
};

/** Every byte value, then invalid UTF-8 and a NUL run: anything that text handling would mangle. */
export const BINARY_BODY = Buffer.concat([
  Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
  Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0, 0, 0]),
]);

let counter = 0;
/** A fresh SQS-style message id (the idempotency key). */
export function messageId(): string {
  counter++;
  return `0f1e2d3c-${String(counter).padStart(4, '0')}-4b5a-9687-a1b2c3d4e5f6`;
}

export function signedPost(path: string, body: Buffer, extra: Record<string, string> = {}): RecordedFixture {
  return {
    id: messageId(),
    method: 'POST',
    path,
    headers: { 'Content-Type': 'application/json', [SIGNATURE_HEADER]: sign(body), 'Content-Length': String(body.length), ...extra },
    body,
  };
}

export function jsonEvent(n: number): Buffer {
  return Buffer.from(JSON.stringify({ id: `evt_${n}`, type: 'invoice.paid', note: `naïve café ✓ ${PLANTED.body}` }));
}

/** Fails when any planted secret occurs in what the step emitted. */
export function assertNoPlantedSecret(emitted: { lines: string[]; changes: Json[]; progress: Progress[]; other?: unknown[] }): void {
  const text = JSON.stringify([emitted.lines, emitted.changes, emitted.progress, emitted.other ?? []]);
  for (const [what, value] of Object.entries(PLANTED)) {
    if (text.includes(value)) throw new Error(`planted ${what} leaked into the step's output`);
  }
  if (text.includes('response body the replay must not log')) throw new Error("the receiver's response body leaked into the step's output");
}

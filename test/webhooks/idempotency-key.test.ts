/**
 * Issue 10 #9: the replay's idempotency key is API Gateway's request id, stored with the message
 * when the request was recorded, so a webhook redriven from the dead-letter queue (a new SQS message
 * id) reaches the app with the key it had. A message recorded without it keeps its message id.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { WEBHOOK_MESSAGE_ATTRIBUTES as A } from '../../infra/webhook-message-format.ts';
import { replayWebhooks } from '../../migrate/steps/webhooks/replay.ts';
import { decodeSqsMessage } from '../../migrate/webhooks/sqs-message.ts';
import { fakeClock } from '../aws/fixtures.ts';
import { testContext } from '../support/context.ts';
import { DLQ_URL, jsonEvent, QUEUE_URL, signedPost, sqsOutputs } from './fixtures.ts';
import { startReceiver } from './receiver.ts';
import { fakeFifoQueue, recorderMessage } from './sqs-fake.ts';

describe('the replay idempotency key', () => {
  let cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const step of cleanup.reverse()) await step();
    cleanup = [];
  });

  it('is the recorded request id, the same for a message redriven from the dead-letter queue', async () => {
    const clock = fakeClock();
    const queue = fakeFifoQueue({ queueUrl: QUEUE_URL, deadLetterQueueUrl: DLQ_URL, now: clock.now });
    const receiver = await startReceiver();
    const t = testContext({ outputs: sqsOutputs(), now: clock.now, sleep: clock.sleep });
    cleanup.push(
      () => queue.mock.restore(),
      () => receiver.close(),
      () => t.close(),
    );

    const recorded = recorderMessage(
      { ...signedPost('/hooks/pay', jsonEvent(1)), id: 'sqs-message-first', requestId: 'c0ffee00-apigw-request' },
      0,
    );
    // The same request moved back from the dead-letter queue: SQS gives it a new message id.
    const redriven = { ...recorded, MessageId: 'sqs-message-after-redrive' };
    // Recorded by a template that did not store the request id.
    const legacy = recorderMessage({ ...signedPost('/hooks/pay', jsonEvent(2)), id: 'sqs-message-legacy' }, 1);
    delete legacy.MessageAttributes![A.requestId];
    queue.addRaw(recorded);
    queue.addRaw(redriven);
    queue.addRaw(legacy);

    await replayWebhooks.apply(t.ctx, replayWebhooks.params.parse({ targetUrl: receiver.url }));

    assert.deepEqual(
      receiver.arrivals.map((a) => a.idempotencyKey),
      ['c0ffee00-apigw-request', 'c0ffee00-apigw-request', 'sqs-message-legacy'],
    );
    assert.equal(decodeSqsMessage(redriven).id, decodeSqsMessage(recorded).id);
  });
});

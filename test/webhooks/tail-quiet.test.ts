/**
 * Issue 10 #5: by default a replay waits for the webhook record's cutover TTL plus a margin of quiet
 * before finishing, so a webhook sent by a resolver still holding the recorder's address is
 * replayed; what is left in the queue at the end fails the step.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { QUIET_MARGIN_SECONDS, replayWebhooks } from '../../migrate/steps/webhooks/replay.ts';
import { fakeClock } from '../aws/fixtures.ts';
import { testContext } from '../support/context.ts';
import { DLQ_URL, jsonEvent, QUEUE_URL, signedPost, sqsOutputs } from './fixtures.ts';
import { startReceiver } from './receiver.ts';
import { fakeFifoQueue } from './sqs-fake.ts';

describe('webhooks.replay at the tail', () => {
  let cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const step of cleanup.reverse()) await step();
    cleanup = [];
  });

  function setup() {
    const clock = fakeClock();
    const queue = fakeFifoQueue({ queueUrl: QUEUE_URL, deadLetterQueueUrl: DLQ_URL, now: clock.now });
    const outputs = sqsOutputs();
    return { clock, queue, outputs };
  }

  it('replays a webhook recorded during the quiet wait, and waits the cutover TTL plus the margin after it', async () => {
    const { clock, queue, outputs } = setup();
    const receiver = await startReceiver();
    const first = signedPost('/hooks/pay', jsonEvent(1));
    const late = signedPost('/hooks/pay', jsonEvent(2));
    queue.add(first);
    let lateAt: number | undefined;
    const t = testContext({
      outputs,
      now: clock.now,
      sleep: async (ms) => {
        await clock.sleep(ms);
        // A resolver still holding the recorder's address: a webhook 8 s into the wait.
        if (lateAt === undefined && clock.elapsedMs() >= 8_000) {
          lateAt = clock.now();
          queue.add(late);
        }
      },
    });
    cleanup.push(
      () => queue.mock.restore(),
      () => receiver.close(),
      () => t.close(),
    );

    const params = replayWebhooks.params.parse({ targetUrl: receiver.url });
    const result = await replayWebhooks.apply(t.ctx, params);

    assert.deepEqual(
      receiver.arrivals.map((a) => a.idempotencyKey),
      [first.id, late.id],
    );
    assert.equal(result.remaining, 0);
    assert.deepEqual(
      ((await replayWebhooks.check(t.ctx, params, result)) ?? []).filter((f) => f.severity === 'error'),
      [],
    );
    const quietMs = (outputs.dns.records.webhooks.cutoverTtl + QUIET_MARGIN_SECONDS) * 1000;
    assert.ok(clock.now() - lateAt! >= quietMs, `waited ${clock.now() - lateAt!} ms after the last webhook, at least ${quietMs}`);
  });

  it('fails the step for a webhook left in the queue', async () => {
    const { clock, queue, outputs } = setup();
    const receiver = await startReceiver();
    const stuck = signedPost('/hooks/pay', jsonEvent(3));
    queue.add(stuck);
    const t = testContext({ outputs, now: clock.now, sleep: clock.sleep });
    cleanup.push(
      () => queue.mock.restore(),
      () => receiver.close(),
      () => t.close(),
    );
    // Another consumer holds it (received with a long visibility timeout) past the whole wait.
    const { SQSClient } = await import('@aws-sdk/client-sqs');
    await new SQSClient({ region: outputs.region }).send(
      new ReceiveMessageCommand({ QueueUrl: QUEUE_URL, MaxNumberOfMessages: 1, VisibilityTimeout: 43_200 }),
    );

    const params = replayWebhooks.params.parse({ targetUrl: receiver.url });
    const result = await replayWebhooks.apply(t.ctx, params);

    assert.equal(result.remaining, 1);
    const errors = ((await replayWebhooks.check(t.ctx, params, result)) ?? []).filter((f) => f.severity === 'error');
    assert.match(errors[0]!.message, /1 recorded request\(s\) were not replayed/);
    assert.deepEqual(receiver.arrivals, []);
  });
});

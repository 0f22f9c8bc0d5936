import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import type { Json, StepContext } from '../../migrate/core/step.ts';
import { replayWebhooks } from '../../migrate/steps/webhooks/replay.ts';
import { outgoingHeaders, targetPath } from '../../migrate/webhooks/forward.ts';
import { fakeClock } from '../aws/fixtures.ts';
import { type TestContext, testContext } from '../support/context.ts';
import {
  assertNoPlantedSecret,
  BINARY_BODY,
  DLQ_URL,
  jsonEvent,
  messageId,
  PLANTED,
  QUEUE_URL,
  signedPost,
  sqsOutputs,
} from './fixtures.ts';
import { type Receiver, type Reply, SIGNATURE_HEADER, sign, startReceiver } from './receiver.ts';
import { fakeFifoQueue, type RecordedFixture, recorderMessage } from './sqs-fake.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('webhooks.replay (SQS)', () => {
  let cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const step of cleanup.reverse()) await step();
    cleanup = [];
  });

  async function setup(
    reply?: (arrival: Parameters<Parameters<typeof startReceiver>[0] & {}>[0], attempt: number) => Reply | Promise<Reply>,
  ) {
    const clock = fakeClock();
    const queue = fakeFifoQueue({ queueUrl: QUEUE_URL, deadLetterQueueUrl: DLQ_URL, now: clock.now });
    const receiver = await startReceiver(reply);
    const t = testContext({ outputs: sqsOutputs(), now: clock.now, sleep: clock.sleep });
    cleanup.push(
      () => queue.mock.restore(),
      () => receiver.close(),
      () => t.close(),
    );
    return { clock, queue, receiver, t };
  }

  // These cases are about replaying what is there; the quiet wait at the end has its own test (tail-quiet).
  const params = (receiver: Receiver, extra: object = {}) =>
    replayWebhooks.params.parse({ targetUrl: receiver.url, idleSeconds: 0, ...extra });

  it('replays in arrival order with byte-identical bodies, original headers and the message id as idempotency key', async () => {
    const { queue, receiver, t } = await setup();
    const binary: RecordedFixture = {
      id: messageId(),
      method: 'POST',
      path: '/hooks/provider%2Fone',
      query: `a=1&b=%2F&b=2&empty=&token=${PLANTED.query}`,
      headers: {
        'Content-Type': 'application/octet-stream',
        [SIGNATURE_HEADER]: sign(BINARY_BODY),
        Authorization: PLANTED.authorization,
        'X-Escaped': 'it\'s "quoted" \\ ok',
        Connection: 'keep-alive, X-Hop-Scoped',
        'Keep-Alive': 'timeout=5',
        'X-Hop-Scoped': 'dropped',
        'Transfer-Encoding': 'chunked',
        Upgrade: 'h2c',
        TE: 'trailers',
        Trailer: 'Expires',
        'Proxy-Authorization': 'Basic cHJveHk6cHJveHk=',
        Host: 'webhooks.billing.example.com',
        'Content-Length': '999',
        'User-Agent': 'Provider-Webhooks/2.1',
      },
      body: BINARY_BODY,
    };
    const ping: RecordedFixture = {
      id: messageId(),
      method: 'GET',
      path: '/hooks/ping',
      headers: { Accept: '*/*' },
      body: Buffer.alloc(0),
    };
    const json = signedPost('/hooks/stripe', jsonEvent(1));
    queue.add(binary, ping, json);

    const result = await replayWebhooks.apply(t.ctx, params(receiver));

    assert.deepEqual(result, {
      queue: 'sqs',
      received: 3,
      receivedCountedBy: 'replay',
      replayed: 3,
      failed: 0,
      remaining: 0,
      settledBefore: 0,
      resentAfterInterruption: 0,
    });
    assert.deepEqual(
      receiver.arrivals.map((a) => a.idempotencyKey),
      [binary.id, ping.id, json.id],
    );
    const [first, second, third] = receiver.arrivals;
    assert.equal(first!.method, 'POST');
    assert.equal(first!.url, `/hooks/provider%2Fone?a=1&b=%2F&b=2&empty=&token=${PLANTED.query}`);
    assert.ok(first!.body.equals(BINARY_BODY), 'binary body arrives byte-identical');
    assert.equal(first!.signatureValid, true);
    const host = new URL(receiver.url).host;
    assert.deepEqual(first!.rawHeaders, [
      ['Host', host],
      ['Content-Type', 'application/octet-stream'],
      [SIGNATURE_HEADER, sign(BINARY_BODY)],
      ['Authorization', PLANTED.authorization],
      ['X-Escaped', 'it\'s "quoted" \\ ok'],
      ['User-Agent', 'Provider-Webhooks/2.1'],
      ['Content-Length', String(BINARY_BODY.length)],
      ['Idempotency-Key', binary.id],
      // Node's own, for the new hop; the recorded Connection header (and what it named) is gone.
      ['Connection', 'keep-alive'],
    ]);
    assert.equal(second!.method, 'GET');
    assert.equal(second!.body.length, 0);
    assert.deepEqual(second!.rawHeaders, [
      ['Host', host],
      ['Accept', '*/*'],
      ['Idempotency-Key', ping.id],
      ['Connection', 'keep-alive'],
    ]);
    assert.ok(third!.body.equals(jsonEvent(1)));
    assert.equal(third!.signatureValid, true);

    const receives = queue.mock.commandCalls(ReceiveMessageCommand).map((call) => call.args[0].input);
    const { ReceiveRequestAttemptId, ...receive } = receives[0]!;
    assert.match(ReceiveRequestAttemptId!, UUID);
    assert.deepEqual(receive, {
      QueueUrl: QUEUE_URL,
      MaxNumberOfMessages: 1,
      VisibilityTimeout: 200,
      WaitTimeSeconds: 1,
      MessageAttributeNames: ['All'],
      MessageSystemAttributeNames: ['MessageGroupId', 'SequenceNumber'],
    });
    assert.deepEqual(
      queue.mock.commandCalls(DeleteMessageCommand).map((call) => call.args[0].input),
      [binary, ping, json].map((f, i) => ({ QueueUrl: QUEUE_URL, ReceiptHandle: `receipt-${i + 1}-${f.id}` })),
    );
    assert.deepEqual(queue.mock.commandCalls(GetQueueAttributesCommand)[0]!.args[0].input, {
      QueueUrl: QUEUE_URL,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    });
    assert.equal(queue.mock.commandCalls(SendMessageCommand).length, 0);
    assert.deepEqual(queue.ids(), []);
    assert.deepEqual(
      t.changes,
      [binary, ping, json].flatMap((f) => [
        { webhook: f.id, state: 'sending' },
        { webhook: f.id, state: 'delivered', status: 200, attempts: 1 },
      ]),
    );
    assert.deepEqual(await replayWebhooks.check(t.ctx, params(receiver), result), []);
    assertNoPlantedSecret({ ...t, other: [result] });
  });

  it('retries 5xx, 429, timeouts and resets with backoff, then dead-letters with the reason', async () => {
    const a = signedPost('/hooks/a', jsonEvent(1), { Authorization: PLANTED.authorization });
    const hangs = signedPost('/hooks/b', jsonEvent(2));
    const rejected = signedPost('/hooks/c', jsonEvent(3));
    const limited = signedPost('/hooks/d', jsonEvent(4));
    const reset = signedPost('/hooks/e', jsonEvent(5));
    const script: Record<string, Reply[]> = {
      [a.id]: [{ status: 503 }, { status: 502 }, { status: 200 }],
      [hangs.id]: ['hang', 'hang', 'hang'],
      [rejected.id]: [{ status: 400 }],
      [limited.id]: [{ status: 429, headers: { 'Retry-After': '7' } }, { status: 204 }],
      [reset.id]: ['reset', { status: 200 }],
    };
    const { clock, queue, receiver, t } = await setup((arrival, attempt) => script[arrival.idempotencyKey!]![attempt - 1]!);
    queue.add(a, hangs, rejected, limited, reset);

    const p = params(receiver, { maxAttempts: 3, timeoutMs: 150 });
    const result = await replayWebhooks.apply(t.ctx, p);

    assert.deepEqual(result, {
      queue: 'sqs',
      received: 5,
      receivedCountedBy: 'replay',
      replayed: 3,
      failed: 2,
      remaining: 0,
      settledBefore: 0,
      resentAfterInterruption: 0,
    });
    assert.deepEqual(
      receiver.arrivals.map((x) => x.idempotencyKey),
      [a.id, a.id, a.id, hangs.id, hangs.id, hangs.id, rejected.id, limited.id, limited.id, reset.id, reset.id],
    );
    assert.ok(receiver.arrivals.every((x) => x.signatureValid === true));
    // Exponential from 1 s; Retry-After wins when longer.
    assert.deepEqual(clock.sleeps, [1000, 2000, 1000, 2000, 7000, 1000]);

    const attributesOf = (f: RecordedFixture, i: number) => recorderMessage(f, i).MessageAttributes;
    const deadLetter = (f: RecordedFixture, i: number, reason: string) => ({
      QueueUrl: DLQ_URL,
      MessageBody: f.body.toString('base64'),
      MessageAttributes: {
        ...attributesOf(f, i),
        'replay-failure-reason': { DataType: 'String', StringValue: reason },
        'replay-original-message-id': { DataType: 'String', StringValue: f.id },
      },
      MessageGroupId: 'webhooks',
      MessageDeduplicationId: f.id,
    });
    assert.deepEqual(queue.deadLetters, [
      deadLetter(hangs, 1, 'no response within 150 ms after 3 attempts'),
      deadLetter(rejected, 2, 'HTTP 400'),
    ]);
    assert.deepEqual(queue.ids(), [], 'every message left the recorder queue');
    assert.deepEqual(
      t.changes.filter((c) => (c as { state: string }).state !== 'sending'),
      [
        { webhook: a.id, state: 'delivered', status: 200, attempts: 3 },
        { webhook: hangs.id, state: 'failed', reason: 'no response within 150 ms after 3 attempts', attempts: 3 },
        { webhook: rejected.id, state: 'failed', reason: 'HTTP 400', attempts: 1 },
        { webhook: limited.id, state: 'delivered', status: 204, attempts: 2 },
        { webhook: reset.id, state: 'delivered', status: 200, attempts: 2 },
      ],
    );
    const findings = (await replayWebhooks.check(t.ctx, p, result)) ?? [];
    assert.deepEqual(
      findings.map((f) => f.severity),
      ['warning'],
    );
    assertNoPlantedSecret({ ...t, other: [result, findings] });
  });

  it('dead-letters a message it cannot read without sending it', async () => {
    const { queue, receiver, t } = await setup();
    const broken = recorderMessage(signedPost('/hooks/x', jsonEvent(1)), 0);
    queue.addRaw({ ...broken, Body: 'not base64 at all!' });
    const result = await replayWebhooks.apply(t.ctx, params(receiver));
    assert.equal(receiver.arrivals.length, 0);
    assert.equal(result.failed, 1);
    assert.equal(
      queue.deadLetters[0]!.MessageAttributes!['replay-failure-reason']!.StringValue,
      'unreadable: the message body is not base64',
    );
  });

  it('resumes an interrupted replay with nothing lost or sent twice', async () => {
    const { queue, receiver, t } = await setup();
    const events = [1, 2, 3, 4, 5].map((n) => signedPost(`/hooks/${n}`, jsonEvent(n)));
    queue.add(...events);
    // The process dies after event 2's 2xx is journaled, before its delete.
    queue.failDeleteOnce(events[1]!.id);

    await assert.rejects(replayWebhooks.apply(t.ctx, params(receiver)), /Unable to replay the recorded webhooks .*simulated crash/);
    assert.deepEqual(
      receiver.arrivals.map((x) => x.idempotencyKey),
      [events[0]!.id, events[1]!.id],
    );

    const resumed = t.retry();
    const result = await replayWebhooks.apply(resumed.ctx, params(receiver));

    assert.deepEqual(
      receiver.arrivals.map((x) => x.idempotencyKey),
      events.map((e) => e.id),
      'each event exactly once, in order',
    );
    assert.deepEqual(result, {
      queue: 'sqs',
      received: 5,
      receivedCountedBy: 'replay',
      replayed: 5,
      failed: 0,
      remaining: 0,
      settledBefore: 0,
      resentAfterInterruption: 0,
    });
    assert.deepEqual(queue.ids(), []);
    // Event 2 was still held by the dead attempt: the resume waited out its visibility, visibly.
    assert.ok(resumed.progress.some((p) => p.label === 'waiting for in-flight recorded requests' && p.deadline !== undefined));
    const deletes = queue.mock.commandCalls(DeleteMessageCommand).map((call) => call.args[0].input.ReceiptHandle);
    assert.equal(deletes.filter((r) => r!.endsWith(events[1]!.id)).length, 2, 'the resume deleted event 2 without resending it');
  });

  for (const onInterrupted of ['resend', 'dead-letter'] as const) {
    it(`a crash between a 2xx and its journal entry: onInterrupted ${onInterrupted}`, async () => {
      const { queue, receiver, t } = await setup();
      const events = [1, 2, 3].map((n) => signedPost(`/hooks/${n}`, jsonEvent(n)));
      queue.add(...events);
      const crashing: StepContext = {
        ...t.ctx,
        record: async (change: Json) => {
          const c = change as { webhook?: string; state?: string };
          if (c.webhook === events[1]!.id && c.state === 'delivered') throw new Error('simulated crash before journaling');
          await t.ctx.record(change);
        },
      };
      await assert.rejects(replayWebhooks.apply(crashing, params(receiver, { onInterrupted })), /simulated crash/);

      const resumed = t.retry();
      const result = await replayWebhooks.apply(resumed.ctx, params(receiver, { onInterrupted }));

      if (onInterrupted === 'resend') {
        // Sent again under the same idempotency key: the receiver can tell it is the same event.
        assert.deepEqual(
          receiver.arrivals.map((x) => x.idempotencyKey),
          [events[0]!.id, events[1]!.id, events[1]!.id, events[2]!.id],
        );
        assert.deepEqual(result, {
          queue: 'sqs',
          received: 3,
          receivedCountedBy: 'replay',
          replayed: 3,
          failed: 0,
          remaining: 0,
          settledBefore: 0,
          resentAfterInterruption: 1,
        });
        assert.equal(queue.deadLetters.length, 0);
      } else {
        assert.deepEqual(
          receiver.arrivals.map((x) => x.idempotencyKey),
          events.map((e) => e.id),
        );
        assert.deepEqual(result, {
          queue: 'sqs',
          received: 3,
          receivedCountedBy: 'replay',
          replayed: 2,
          failed: 1,
          remaining: 0,
          settledBefore: 0,
          resentAfterInterruption: 0,
        });
        assert.match(queue.deadLetters[0]!.MessageAttributes!['replay-failure-reason']!.StringValue!, /interrupted while sending/);
      }
      assert.deepEqual(queue.ids(), []);
    });
  }

  it('dry run counts and samples (method, path, size) without sending, deleting or keeping anything hidden', async () => {
    const clock = fakeClock();
    const queue = fakeFifoQueue({ queueUrl: QUEUE_URL, deadLetterQueueUrl: DLQ_URL, now: clock.now });
    const receiver = await startReceiver();
    const t = testContext({ outputs: sqsOutputs(), now: clock.now, sleep: clock.sleep, dryRun: true });
    cleanup.push(
      () => queue.mock.restore(),
      () => receiver.close(),
      () => t.close(),
    );
    const events = [1, 2, 3].map((n) => signedPost(`/hooks/${n}`, jsonEvent(n), { Authorization: PLANTED.authorization }));
    queue.add(...events);

    const probe = await replayWebhooks.probe(t.ctx, params(receiver, { sample: 2 }));

    assert.equal(probe.state, 'ready');
    assert.match(
      probe.plan![0]!,
      /^Replay 3 recorded request\(s\) \(0 in flight\) from SQS queue .*\.fifo to http:\/\/127\.0\.0\.1:\d+, in arrival order, concurrency 1/,
    );
    const size = jsonEvent(1).length;
    assert.deepEqual(probe.plan!.slice(1), [
      `  sample 1: POST /hooks/1 (${size} B), received ${new Date(1_750_000_000_000).toISOString()}`,
      `  sample 2: POST /hooks/2 (${size} B), received ${new Date(1_750_000_000_001).toISOString()}`,
    ]);
    const { ReceiveRequestAttemptId: _, ...receive } = queue.mock.commandCalls(ReceiveMessageCommand)[0]!.args[0].input;
    assert.equal(receive.MaxNumberOfMessages, 2);
    assert.equal(receive.VisibilityTimeout, 30);
    assert.equal(receive.WaitTimeSeconds, 0);
    assert.deepEqual(
      queue.mock.commandCalls(ChangeMessageVisibilityCommand).map((call) => call.args[0].input),
      [0, 1].map((i) => ({ QueueUrl: QUEUE_URL, ReceiptHandle: `receipt-${i + 1}-${events[i]!.id}`, VisibilityTimeout: 0 })),
    );
    assert.equal(queue.mock.commandCalls(DeleteMessageCommand).length, 0);
    assert.equal(queue.mock.commandCalls(SendMessageCommand).length, 0);
    assert.equal(receiver.arrivals.length, 0);
    assert.equal(t.changes.length, 0);
    assert.deepEqual(
      queue.ids(),
      events.map((e) => e.id),
    );
    const counts = queue.mock.commandCalls(GetQueueAttributesCommand).length;
    assert.ok(counts >= 1);
    assertNoPlantedSecret({ ...t, other: [probe] });
  });

  it('keeps at most `concurrency` requests in flight and starts them in arrival order', async () => {
    const waiting: Array<() => void> = [];
    const { queue, receiver, t } = await setup(
      () =>
        new Promise<Reply>((resolve) => {
          // Hold each answer until three are in flight (or a moment passes, for the batch's tail).
          waiting.push(() => resolve({ status: 200 }));
          const releaseAll = () => {
            for (const release of waiting.splice(0)) release();
          };
          if (waiting.length === 3) releaseAll();
          else setTimeout(releaseAll, 100);
        }),
    );
    const events = [1, 2, 3, 4, 5, 6, 7].map((n) => signedPost(`/hooks/${n}`, jsonEvent(n)));
    queue.add(...events);

    const result = await replayWebhooks.apply(t.ctx, params(receiver, { concurrency: 3 }));

    assert.equal(result.replayed, 7);
    assert.equal(receiver.maxConcurrent, 3);
    assert.equal(queue.mock.commandCalls(ReceiveMessageCommand)[0]!.args[0].input.MaxNumberOfMessages, 3);
    const sendingOrder = t.changes
      .filter((c) => (c as { state: string }).state === 'sending')
      .map((c) => (c as { webhook: string }).webhook);
    assert.deepEqual(
      sendingOrder,
      events.map((e) => e.id),
    );
    assert.deepEqual([...receiver.arrivals.map((x) => x.idempotencyKey)].sort(), events.map((e) => e.id).sort());
  });

  it('spaces attempts to respect ratePerSecond', async () => {
    const { clock, queue, receiver, t } = await setup();
    queue.add(...[1, 2, 3, 4].map((n) => signedPost(`/hooks/${n}`, jsonEvent(n))));
    await replayWebhooks.apply(t.ctx, params(receiver, { ratePerSecond: 4 }));
    assert.deepEqual(clock.sleeps, [250, 250, 250]);
    assert.equal(receiver.arrivals.length, 4);
  });

  it('is blocked when the stack has no webhook recorder', async () => {
    const t: TestContext = testContext({ outputs: { ...sqsOutputs(), webhooks: undefined } });
    cleanup.push(() => t.close());
    const probe = await replayWebhooks.probe(t.ctx, replayWebhooks.params.parse({ targetUrl: 'https://app.example.com' }));
    assert.equal(probe.state, 'blocked');
    assert.equal(probe.findings![0]!.object, 'stack outputs: webhooks');
  });

  it('refuses a target URL with credentials', () => {
    assert.throws(() => replayWebhooks.params.parse({ targetUrl: 'https://user:pw@app.example.com' }));
  });
});

describe('outgoing request shape', () => {
  const request = {
    id: 'msg-1',
    method: 'POST',
    path: '/hooks/a%20b',
    query: 'x=1',
    headers: [
      ['Host', 'webhooks.billing.example.com'],
      ['idempotency-key', 'provider-own-key'],
      ['X-Kept', 'yes'],
    ] as Array<[string, string]>,
    body: Buffer.from('{}'),
    receivedAt: null,
  };

  it('keeps the provider Host when asked, and replaces any recorded idempotency header with the message id', () => {
    const url = new URL('https://app.internal.example.com:8443/base/');
    assert.deepEqual(outgoingHeaders(request, { url, idempotencyHeader: 'Idempotency-Key', preserveHost: true }), [
      'Host',
      'webhooks.billing.example.com',
      'X-Kept',
      'yes',
      'Content-Length',
      '2',
      'Idempotency-Key',
      'msg-1',
    ]);
    assert.equal(
      outgoingHeaders(request, { url, idempotencyHeader: 'Idempotency-Key', preserveHost: false })[1],
      'app.internal.example.com:8443',
    );
    assert.equal(targetPath(request, url), '/base/hooks/a%20b?x=1');
  });
});

import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import type { Json, StepContext } from '../../migrate/core/step.ts';
import { startWebhookStandin, type WebhookStandin } from '../../migrate/local/webhook-standin.ts';
import { replayWebhooks } from '../../migrate/steps/webhooks/replay.ts';
import { awsOutputs, fakeClock } from '../aws/fixtures.ts';
import { testContext } from '../support/context.ts';
import { assertNoPlantedSecret, BINARY_BODY, jsonEvent, PLANTED } from './fixtures.ts';
import { SIGNATURE_HEADER, sign, startReceiver } from './receiver.ts';

/** A provider calling the recorder: resolves with the stand-in's status once it answered. */
function deliver(
  standin: WebhookStandin,
  method: string,
  path: string,
  body: Buffer,
  headers: Record<string, string | string[]> = {},
): Promise<number> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, standin.url);
    const req = request(
      url,
      { method, headers: { ...headers, ...(body.length ? { 'Content-Length': String(body.length) } : {}) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('webhooks.replay through the local stand-in (rehearsal path)', () => {
  let cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const step of cleanup.reverse()) await step();
    cleanup = [];
  });

  async function setup(reply?: Parameters<typeof startReceiver>[0]) {
    const dir = await mkdtemp(join(tmpdir(), 'webhook-standin-'));
    const standin = await startWebhookStandin({ dir });
    const receiver = await startReceiver(reply);
    const clock = fakeClock();
    const t = testContext({ outputs: { ...awsOutputs(), webhooks: standin.outputs }, now: clock.now, sleep: clock.sleep });
    cleanup.push(
      () => rm(dir, { recursive: true, force: true }),
      () => standin.stop(),
      () => receiver.close(),
      () => t.close(),
    );
    return { dir, standin, receiver, t };
  }

  it('HTTP in → file-backed queue → replay out: byte-identical, in order, received = replayed + failed', async () => {
    const { standin, receiver, t } = await setup((arrival) => ({ status: arrival.url.startsWith('/hooks/rejects') ? 422 : 200 }));
    const signed = (body: Buffer) => ({
      'Content-Type': 'application/octet-stream',
      [SIGNATURE_HEADER]: sign(body),
      Authorization: PLANTED.authorization,
    });
    const sent = [
      { method: 'POST', path: `/hooks/stripe?a=1&b=%2F&token=${PLANTED.query}`, body: BINARY_BODY },
      { method: 'GET', path: '/hooks/ping', body: Buffer.alloc(0) },
      { method: 'POST', path: '/hooks/rejects', body: jsonEvent(3) },
      { method: 'PUT', path: '/hooks/4', body: jsonEvent(4) },
      { method: 'POST', path: '/hooks/5', body: jsonEvent(5) },
    ];
    for (const [i, r] of sent.entries()) {
      const extra: Record<string, string[]> = i === 0 ? { 'X-Repeated': ['one', 'two'] } : {};
      assert.equal(await deliver(standin, r.method, r.path, r.body, { ...signed(r.body), ...extra }), 200);
    }

    const p = replayWebhooks.params.parse({ targetUrl: receiver.url });
    const result = await replayWebhooks.apply(t.ctx, p);

    assert.deepEqual(result, {
      queue: 'local stand-in',
      received: 5,
      receivedCountedBy: 'recorder',
      replayed: 4,
      failed: 1,
      remaining: 0,
      settledBefore: 0,
      resentAfterInterruption: 0,
    });
    assert.deepEqual(
      receiver.arrivals.map((a) => `${a.method} ${a.url}`),
      sent.map((r) => `${r.method} ${r.path}`),
    );
    receiver.arrivals.forEach((arrival, i) => {
      assert.ok(arrival.body.equals(sent[i]!.body), `body ${i} byte-identical`);
      assert.equal(arrival.signatureValid, true);
      assert.match(arrival.idempotencyKey!, /^standin-0000000\d-[0-9a-f]{8}$/);
    });
    assert.equal(new Set(receiver.arrivals.map((a) => a.idempotencyKey)).size, 5);
    const first = receiver.arrivals[0]!.rawHeaders;
    // The stand-in keeps repeats and case; Host is the receiver's, and only Node's own Connection remains.
    assert.deepEqual(
      first.filter(([name]) => name === 'X-Repeated'),
      [
        ['X-Repeated', 'one'],
        ['X-Repeated', 'two'],
      ],
    );
    assert.deepEqual(
      first.find(([name]) => name === 'Host'),
      ['Host', new URL(receiver.url).host],
    );
    assert.deepEqual(
      first.filter(([name]) => name.toLowerCase() === 'connection'),
      [['Connection', 'keep-alive']],
    );
    assert.deepEqual(await standin.queue.list(), []);
    const dead = await standin.deadLetter.list();
    assert.deepEqual(
      dead.map((d) => [d.stored.path, d.stored.deadLetterReason]),
      [['/hooks/rejects', 'HTTP 422']],
    );
    assert.ok(
      t.lines.some((l) => l.includes('local stand-in queue')),
      'the stand-in is labelled as such',
    );
    const findings = (await replayWebhooks.check(t.ctx, p, result)) ?? [];
    assert.deepEqual(
      findings.map((f) => f.severity),
      ['warning'],
    );
    assertNoPlantedSecret({ ...t, other: [result, findings] });
  });

  it('a second pass (the tail after the record moves back) counts what the first pass settled', async () => {
    const { standin, receiver, t } = await setup();
    for (let n = 1; n <= 3; n++) await deliver(standin, 'POST', `/hooks/${n}`, jsonEvent(n), { [SIGNATURE_HEADER]: sign(jsonEvent(n)) });
    const p = replayWebhooks.params.parse({ targetUrl: receiver.url });
    const first = await replayWebhooks.apply(t.ctx, p);
    assert.equal(first.replayed, 3);
    await deliver(standin, 'POST', '/hooks/4', jsonEvent(4), { [SIGNATURE_HEADER]: sign(jsonEvent(4)) });
    const tail = testContext({ outputs: t.ctx.outputs, stepId: 'tail', now: t.ctx.now, sleep: t.ctx.sleep });
    const second = await replayWebhooks.apply(tail.ctx, p);
    assert.deepEqual(
      { received: second.received, settledBefore: second.settledBefore, replayed: second.replayed, remaining: second.remaining },
      { received: 4, settledBefore: 3, replayed: 1, remaining: 0 },
    );
    assert.deepEqual((await replayWebhooks.check(tail.ctx, p, second)) ?? [], []);
    assert.deepEqual(
      receiver.arrivals.map((a) => a.url),
      ['/hooks/1', '/hooks/2', '/hooks/3', '/hooks/4'],
    );
    await tail.close();
  });

  it('survives two interruptions (after a 2xx, before a send) with every request delivered and none skipped', async () => {
    const { dir, standin, receiver, t } = await setup();
    for (let n = 1; n <= 5; n++) await deliver(standin, 'POST', `/hooks/${n}`, jsonEvent(n), { [SIGNATURE_HEADER]: sign(jsonEvent(n)) });
    const ids = (await standin.queue.list()).map((e) => e.stored.id);
    const p = replayWebhooks.params.parse({ targetUrl: receiver.url });
    const crashingOn = (ctx: StepContext, id: string, state: string): StepContext => ({
      ...ctx,
      record: async (change: Json) => {
        const c = change as { webhook?: string; state?: string };
        if (c.webhook === id && c.state === state) throw new Error(`simulated crash at ${state}`);
        await ctx.record(change);
      },
    });

    // 1: dies after request 2's 2xx, before journaling it.
    await assert.rejects(replayWebhooks.apply(crashingOn(t.ctx, ids[1]!, 'delivered'), p), /simulated crash at delivered/);
    // 2: dies before sending request 4.
    const second = t.retry();
    await assert.rejects(replayWebhooks.apply(crashingOn(second.ctx, ids[3]!, 'sending'), p), /simulated crash at sending/);
    // 3: completes.
    const third = second.retry();
    const result = await replayWebhooks.apply(third.ctx, p);

    assert.deepEqual(
      receiver.arrivals.map((a) => a.idempotencyKey),
      [ids[0], ids[1], ids[1], ids[2], ids[3], ids[4]],
    );
    assert.ok(receiver.arrivals.every((a) => a.signatureValid));
    assert.deepEqual(result, {
      queue: 'local stand-in',
      received: 5,
      receivedCountedBy: 'recorder',
      replayed: 5,
      failed: 0,
      remaining: 0,
      settledBefore: 0,
      resentAfterInterruption: 1,
    });
    assert.deepEqual(await standin.queue.list(), []);
    assert.deepEqual(
      (await readdir(join(dir, 'queue'))).filter((f) => f.endsWith('.json')),
      [],
    );
    assert.equal((await readFile(join(dir, 'queue', 'received.log'), 'utf8')).trim().split('\n').length, 5);
  });

  it('answers 413 to a body larger than the recorder could store, and stores nothing', async () => {
    const { standin } = await setup();
    assert.equal(await deliver(standin, 'POST', '/hooks/huge', Buffer.alloc(200 * 1024, 1)), 413);
    assert.deepEqual(await standin.queue.list(), []);
    assert.equal(await standin.queue.receivedTotal(), 0);
  });
});

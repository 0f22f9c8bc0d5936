/**
 * Drains a recorded queue into the new app in arrival order.
 *
 * Order and concurrency: the recorder's queue is FIFO with a single message group, so SQS hands out
 * the next messages only once every message received before them is deleted (or times out). The
 * replay therefore works in batches of `concurrency` messages: within a batch, requests are *started*
 * in arrival order, at most `concurrency` at once; the next batch is received only when the whole
 * batch is settled (delivered or dead-lettered). With concurrency 1 (the default) the app sees each
 * request only after the previous one got its 2xx or was given up on — strict order. With more, only
 * the dispatch order is guaranteed: a request being retried can complete after its successors.
 *
 * Each message: journal `sending` → HTTP (retries with backoff) → journal `delivered` → delete; or
 * journal `failed` → copy to the dead-letter queue with the reason → delete. See ledger.ts for resume.
 */

import { forEachConcurrently } from '../core/pool.ts';
import type { StepContext } from '../core/step.ts';
import { type DeliveryOutcome, type ForwardTarget, forward } from './forward.ts';
import { ReplayLedger } from './ledger.ts';
import { RateGate } from './rate-gate.ts';
import type { RecordedQueue } from './recorded-queue.ts';
import { describeRequest, type ReceivedMessage, type RecordedRequest } from './recorded-request.ts';

export interface ReplayOptions {
  target: ForwardTarget;
  /** 1–10: SQS returns at most 10 messages per receive. */
  concurrency: number;
  /** Upper bound on HTTP attempts per second, retries included. */
  ratePerSecond?: number;
  maxAttempts: number;
  backoffMs: number;
  maxBackoffMs: number;
  /** A message journaled `sending` but never `delivered`: the app may or may not have it. */
  onInterrupted: 'resend' | 'dead-letter';
  /** Keep polling until the queue has stayed empty this long (stragglers still reaching the recorder). */
  idleSeconds: number;
}

export interface ReplaySummary {
  [key: string]: string | number;
  queue: 'sqs' | 'local stand-in';
  /** Requests the recorder accepted; see `receivedCountedBy`. */
  received: number;
  /** `recorder`: counted independently at the recorder's door; `replay`: replayed + failed + remaining. */
  receivedCountedBy: 'recorder' | 'replay';
  replayed: number;
  /** Given up on and copied to the dead-letter queue with the reason. */
  failed: number;
  /** Still in the queue when the replay stopped (approximate for SQS). */
  remaining: number;
  /** Recorder-counted requests an earlier replay step already settled (a second pass drains a tail). */
  settledBefore: number;
  /** Requests sent again because an earlier attempt was interrupted before their 2xx was journaled. */
  resentAfterInterruption: number;
}

/** Seconds a batch stays invisible: enough for every attempt of every message in it, plus a margin. */
export function batchVisibilitySeconds(options: ReplayOptions): number {
  const perMessageMs = options.maxAttempts * options.target.timeoutMs + (options.maxAttempts - 1) * options.maxBackoffMs;
  const rateMs = options.ratePerSecond ? (options.concurrency * options.maxAttempts * 1000) / options.ratePerSecond : 0;
  return Math.min(43_200, Math.ceil((perMessageMs + rateMs) / 1000) + 30);
}

const POLL_MS = 1000;

export async function replay(ctx: StepContext, queue: RecordedQueue, options: ReplayOptions): Promise<ReplaySummary> {
  const ledger = ReplayLedger.from(ctx.previousChanges);
  const gate = new RateGate(ctx, options.ratePerSecond);
  const visibility = batchVisibilitySeconds(options);

  const receivedAtStart = await queue.receivedTotal();
  const start = await queue.counts();
  const settled = () => ledger.count('delivered') + ledger.count('failed');
  let expected = settled() + start.visible + start.inFlight;
  const settledBefore = receivedAtStart === null ? 0 : Math.max(0, receivedAtStart - expected);
  ctx.log.info(`Replaying ${start.visible + start.inFlight} recorded request(s) from ${queue.label} to ${options.target.url.origin}`);

  // Our own retry loop, not a generic one: it runs between the write-ahead `sending` and the
  // `delivered` journal entries (so a resumed replay knows what may have reached the app), and each
  // attempt passes the rate gate and honours Retry-After.
  const deliver = async (request: RecordedRequest): Promise<{ outcome: DeliveryOutcome; attempts: number }> => {
    for (let attempt = 1; ; attempt++) {
      await gate.wait();
      const outcome = await forward(request, options.target);
      if (outcome.kind !== 'retryable') return { outcome, attempts: attempt };
      if (attempt >= options.maxAttempts)
        return { outcome: { kind: 'rejected', reason: `${outcome.reason} after ${attempt} attempts` }, attempts: attempt };
      const backoff = Math.max(options.backoffMs * 2 ** (attempt - 1), outcome.retryAfterMs ?? 0);
      await ctx.sleep(Math.min(options.maxBackoffMs, backoff));
    }
  };

  const giveUp = async (message: ReceivedMessage, reason: string, attempts?: number): Promise<void> => {
    await ledger.mark(ctx, { webhook: message.id, state: 'failed', reason, ...(attempts ? { attempts } : {}) });
    await queue.sendToDeadLetter(message, reason);
    await queue.delete(message);
    const what = message.request ? describeRequest(message.request) : 'unreadable message';
    ctx.log.warn(`Webhook ${message.id} (${what}) moved to the dead-letter queue: ${reason}`);
  };

  const handle = async (message: ReceivedMessage): Promise<void> => {
    const previous = ledger.get(message.id);
    if (previous?.state === 'delivered') {
      // Delivered by an earlier attempt that stopped before the delete: delete, never resend.
      await queue.delete(message);
      return;
    }
    if (previous?.state === 'failed') {
      await giveUp(message, previous.reason ?? 'failed in an earlier attempt', previous.attempts);
      return;
    }
    if (!message.request) {
      await giveUp(message, `unreadable: ${message.problem ?? 'unknown format'}`);
      return;
    }
    if (previous?.state === 'sending') {
      if (options.onInterrupted === 'dead-letter') {
        await giveUp(message, 'an earlier attempt was interrupted while sending it; the app may already have it');
        return;
      }
      // The receiver dedupes on the idempotency header (the same message id), so sending again is safe
      // for an app that honours it; `onInterrupted: dead-letter` is for apps that do not.
      ctx.log.info(`Webhook ${message.id}: resending, an earlier attempt was interrupted before its response was journaled`);
      await ledger.mark(ctx, { webhook: message.id, state: 'sending', resend: true });
    } else {
      await ledger.mark(ctx, { webhook: message.id, state: 'sending' });
    }
    const { outcome, attempts } = await deliver(message.request);
    if (outcome.kind === 'delivered') {
      await ledger.mark(ctx, { webhook: message.id, state: 'delivered', status: outcome.status, attempts });
      await queue.delete(message);
    } else {
      await giveUp(message, outcome.reason, attempts);
    }
  };

  const processBatch = async (batch: ReceivedMessage[]): Promise<void> => {
    let started = 0;
    try {
      await forEachConcurrently(
        batch,
        options.concurrency,
        (message, index) => {
          started = index + 1;
          return handle(message);
        },
        { signal: ctx.signal },
      );
    } catch (error) {
      // Hand back what was never started, so a rerun need not wait out their visibility timeout.
      await Promise.allSettled(batch.slice(started).map((message) => queue.release(message)));
      throw ctx.signal.aborted ? new Error('interrupted') : error;
    }
  };

  let idleSince = ctx.now();
  let heldUntil: number | undefined;
  for (;;) {
    if (ctx.signal.aborted) throw new Error('interrupted');
    const batch = await queue.receive(options.concurrency, visibility, Math.min(20, Math.max(1, options.idleSeconds)));
    if (batch.length > 0) {
      await processBatch(batch);
      idleSince = ctx.now();
      heldUntil = undefined;
      expected = Math.max(expected, settled());
      ctx.log.progress({ label: 'replaying webhooks', done: settled(), total: expected, unit: 'requests' });
      continue;
    }
    const counts = await queue.counts();
    if (counts.visible + counts.inFlight === 0) {
      const idleMs = ctx.now() - idleSince;
      if (idleMs >= options.idleSeconds * 1000) break;
      await ctx.sleep(Math.min(POLL_MS, options.idleSeconds * 1000 - idleMs));
      continue;
    }
    // Messages exist but none could be received: an interrupted earlier attempt still holds them
    // (they return when its visibility timeout ends), or SQS's counts are catching up.
    heldUntil ??= ctx.now() + visibility * 1000;
    if (ctx.now() >= heldUntil) break;
    ctx.log.progress({
      label: 'waiting for in-flight recorded requests',
      done: counts.inFlight,
      unit: 'requests',
      deadline: heldUntil,
      detail: 'held by an interrupted attempt until their visibility timeout ends',
    });
    await ctx.sleep(POLL_MS);
  }

  const end = await queue.counts();
  const remaining = end.visible + end.inFlight;
  const replayed = ledger.count('delivered');
  const failed = ledger.count('failed');
  const counted = await queue.receivedTotal();
  const summary: ReplaySummary = {
    queue: queue.kind,
    received: counted ?? replayed + failed + remaining,
    receivedCountedBy: counted === null ? 'replay' : 'recorder',
    replayed,
    failed,
    remaining,
    settledBefore,
    resentAfterInterruption: ledger.resends,
  };
  ctx.log.info(
    `Webhook replay from ${queue.label}: received ${summary.received}, replayed ${replayed}, failed ${failed}, remaining ${remaining}` +
      (summary.resentAfterInterruption ? `, resent after interruption ${summary.resentAfterInterruption}` : ''),
  );
  return summary;
}

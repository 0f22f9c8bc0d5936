/** webhooks.replay: drain the recorded webhooks into the new app, in arrival order. */
import http from 'node:http';
import https from 'node:https';
import { z } from 'zod';
import { blockedBy, defineStep, type Finding, type Probe, type StepContext, StepError, unable } from '../../core/step.ts';
import { ReplayLedger } from '../../webhooks/ledger.ts';
import { openRecordedQueue, webhookOutputs } from '../../webhooks/open-queue.ts';
import type { RecordedQueue } from '../../webhooks/recorded-queue.ts';
import { describeRequest } from '../../webhooks/recorded-request.ts';
import { type ReplayOptions, type ReplaySummary, replay } from '../../webhooks/replay.ts';

const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const params = z
  .object({
    /** Base URL of the new app (a path prefixes every recorded path). */
    targetUrl: z.string().refine((value) => {
      try {
        const url = new URL(value);
        return (url.protocol === 'http:' || url.protocol === 'https:') && !url.username && !url.password && !url.search;
      } catch {
        return false;
      }
    }, 'must be an http(s) URL without credentials or query'),
    idempotencyHeader: z.string().regex(HTTP_TOKEN, 'must be an HTTP header name').default('Idempotency-Key'),
    concurrency: z.number().int().min(1).max(10).default(1),
    ratePerSecond: z.number().positive().optional(),
    maxAttempts: z.number().int().min(1).max(20).default(5),
    backoffMs: z.number().int().min(0).default(1000),
    maxBackoffMs: z.number().int().min(0).default(30_000),
    timeoutMs: z.number().int().positive().default(10_000),
    onInterrupted: z.enum(['resend', 'dead-letter']).default('resend'),
    /**
     * Quiet (no new request) to wait for before finishing. By default the webhook record's TTL
     * during the cutover (cutoverTtl) plus QUIET_MARGIN_SECONDS: after the record moves back,
     * resolvers still holding the recorder's address keep sending there until their copy expires.
     * 0 while the record still points at the recorder (requests keep coming; a later run takes them).
     */
    idleSeconds: z.number().int().min(0).optional(),
    preserveHost: z.boolean().default(false),
    /** Dry run: how many of the oldest requests to show (method, path, size only). */
    sample: z.number().int().min(0).max(10).default(5),
  })
  .strict();

type Params = z.infer<typeof params>;

/** Seconds sampled messages are hidden before being handed back (only if the hand-back fails). */
const SAMPLE_VISIBILITY_SECONDS = 30;

/** The recorder's queue, or the findings that say why this stack has none to open. */
async function assess(ctx: StepContext): Promise<{ findings: Finding[]; queue?: RecordedQueue }> {
  try {
    return { findings: [], queue: await openRecordedQueue(ctx, webhookOutputs(ctx)) };
  } catch (error) {
    if (error instanceof StepError) return { findings: error.findings };
    throw unable('open the webhook recorder queue', error);
  }
}

export const replayWebhooks = defineStep<Params, ReplaySummary>({
  kind: 'webhooks.replay',
  summary: 'Replay the recorded webhooks to the new app in arrival order, then delete them from the recorder queue',
  params,
  // AWS only for an SQS queue (the SDK reports missing credentials itself); a local stand-in needs none.
  requires: ['http'],
  destructive: false,

  async probe(ctx, p): Promise<Probe<ReplaySummary>> {
    const { findings, queue } = await assess(ctx);
    if (!queue) return { state: 'blocked', findings };
    const counts = await queue.counts().catch((error) => {
      throw unable(`count the requests in ${queue.label}`, error);
    });
    const ledger = ReplayLedger.from(ctx.previousChanges);
    const target = new URL(p.targetUrl);
    const plan = [
      `Replay ${counts.visible + counts.inFlight} recorded request(s) (${counts.inFlight} in flight) from ${queue.label} to ${target.origin}, ` +
        `in arrival order, concurrency ${p.concurrency}${p.ratePerSecond ? `, at most ${p.ratePerSecond}/s` : ''}, ` +
        `header ${p.idempotencyHeader}: <message id>, up to ${p.maxAttempts} attempts, then the dead-letter queue`,
    ];
    const replayed = ledger.count('delivered');
    if (quietSeconds(ctx, p) > 0)
      plan.push(
        `then wait for ${quietSeconds(ctx, p)} s without a new recorded request before finishing; anything left in the queue fails the step`,
      );
    if (replayed || ledger.count('failed')) plan.push(`Resuming: ${replayed} already replayed, ${ledger.count('failed')} already failed`);
    if (ctx.dryRun && p.sample > 0) plan.push(...(await sample(queue, p.sample)));
    return { state: 'ready', plan };
  },

  async apply(ctx, p) {
    const { findings, queue } = await assess(ctx);
    if (!queue) throw blockedBy(findings);
    try {
      return await replay(ctx, queue, await replayOptions(ctx, p));
    } catch (error) {
      throw unable(`replay the recorded webhooks from ${webhookOutputs(ctx).queueUrl}`, error);
    }
  },

  async check(ctx, _p, result) {
    const findings: Finding[] = [];
    const queueUrl = webhookOutputs(ctx).queueUrl;
    if (result.remaining > 0) {
      findings.push({
        severity: 'error',
        object: `queue ${queueUrl}`,
        message: `${result.remaining} recorded request(s) were not replayed`,
        fix: 'Rerun the step (it resumes where it stopped); raise idleSeconds if requests were still arriving at the recorder.',
      });
    }
    const accounted = result.settledBefore + result.replayed + result.failed + result.remaining;
    if (result.receivedCountedBy === 'recorder' && result.received !== accounted) {
      findings.push({
        severity: 'error',
        object: `queue ${queueUrl}`,
        message: `the recorder accepted ${result.received} request(s) but ${accounted} are accounted for (settled by earlier replays + replayed + failed + remaining)`,
        fix: 'Compare the recorder log with the run journal before declaring the cutover done.',
      });
    }
    if (result.failed > 0) {
      findings.push({
        severity: 'warning',
        object: `queue ${webhookOutputs(ctx).deadLetterQueueUrl}`,
        message: `${result.failed} request(s) were given up on and are in the dead-letter queue with the reason`,
        fix: 'Read the replay-failure-reason attribute of each, fix the app, then move them back to the recorder queue and rerun the replay.',
      });
    }
    return findings;
  },
});

/** Margin over the record's TTL: resolvers and clients round and re-use answers a little past it. */
export const QUIET_MARGIN_SECONDS = 10;

function quietSeconds(ctx: StepContext, p: Params): number {
  return p.idleSeconds ?? ctx.outputs.dns.records.webhooks.cutoverTtl + QUIET_MARGIN_SECONDS;
}

async function replayOptions(ctx: StepContext, p: Params): Promise<ReplayOptions> {
  const url = new URL(p.targetUrl);
  // One keep-alive agent per run and protocol: replays are many small requests to one host.
  const agent = await ctx.resource<http.Agent>(
    `webhooks:agent:${url.protocol}`,
    () => (url.protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true })),
    (created) => created.destroy(),
  );
  return {
    target: { url, idempotencyHeader: p.idempotencyHeader, preserveHost: p.preserveHost, timeoutMs: p.timeoutMs, agent },
    concurrency: p.concurrency,
    ratePerSecond: p.ratePerSecond,
    maxAttempts: p.maxAttempts,
    backoffMs: p.backoffMs,
    maxBackoffMs: p.maxBackoffMs,
    onInterrupted: p.onInterrupted,
    idleSeconds: quietSeconds(ctx, p),
  };
}

/**
 * Peeks at the oldest requests without consuming them. Receiving hides a message (and, on a FIFO
 * queue, everything behind it in its group), so each sampled message is handed back at once.
 * Receiving also counts towards a redrive policy's maxReceiveCount.
 */
async function sample(queue: RecordedQueue, size: number): Promise<string[]> {
  const messages = await queue.receive(size, SAMPLE_VISIBILITY_SECONDS, 0);
  const released = await Promise.allSettled(messages.map((message) => queue.release(message)));
  const lines = messages.map((message, index) => {
    const what = message.request ? describeRequest(message.request) : `unreadable (${message.problem})`;
    const when = message.request?.receivedAt ? `, received ${new Date(message.request.receivedAt).toISOString()}` : '';
    return `  sample ${index + 1}: ${what}${when}`;
  });
  if (messages.length === 0) lines.push('  (no request available to sample)');
  if (released.some((outcome) => outcome.status === 'rejected')) {
    lines.push(`  note: some sampled requests could not be handed back; they reappear within ${SAMPLE_VISIBILITY_SECONDS} s`);
  }
  return lines;
}

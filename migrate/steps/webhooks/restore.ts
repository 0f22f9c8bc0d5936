/**
 * webhooks.restore: point the webhook record at the new app. Not back to legacy: after the switch the
 * new app is where webhooks belong; undo (rollback) puts back whatever the record held before.
 */
import { webhookOutputs } from '../../webhooks/open-queue.ts';
import { targetOf } from '../aws/dns-switch.ts';
import { webhookRecordMove } from './point-record.ts';

export const restoreWebhooks = webhookRecordMove({
  kind: 'webhooks.restore',
  summary: 'Point the webhook DNS record at the new app (its cutover target), ending the recording',
  to: 'new app',
  target(ctx) {
    // Blocked without a recorder: there was no redirect to end, and dns.switch moves the record otherwise.
    webhookOutputs(ctx);
    return targetOf(ctx.outputs.dns.records.webhooks, 'cutover');
  },
  notes(ctx) {
    return [
      `requests keep reaching the recorder for up to ${ctx.outputs.dns.records.webhooks.cutoverTtl} s (the lowered TTL): give webhooks.replay an idleSeconds at least that long`,
    ];
  },
});

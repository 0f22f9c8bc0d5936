/** webhooks.redirect: send the providers' webhooks to the recorder while the app is switched over. */
import { webhookOutputs } from '../../webhooks/open-queue.ts';
import { webhookRecordMove } from './point-record.ts';

export const redirectWebhooks = webhookRecordMove({
  kind: 'webhooks.redirect',
  summary: 'Point the webhook DNS record at the webhook recorder, so no event is lost while the app is down',
  to: 'recorder',
  target(ctx) {
    const webhooks = webhookOutputs(ctx);
    return { type: webhooks.recorderTargetType, ttl: ctx.outputs.dns.records.webhooks.cutoverTtl, value: webhooks.recorderTarget };
  },
  notes(ctx) {
    const record = ctx.outputs.dns.records.webhooks;
    return [
      `providers holding the old answer keep calling the legacy app for up to the record's TTL (${record.ttl} s unless already lowered to ${record.cutoverTtl} s): stop the source only after that`,
    ];
  },
});

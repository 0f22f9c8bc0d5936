/** Picks the queue the recorder wrote to: the stack's SQS queue, or the rehearsal's local stand-in. */
import type { StackOutputs } from '../../infra/contract.ts';
import { awsClient } from '../aws/clients.ts';
import { type StepContext, StepError } from '../core/step.ts';
import { LOCAL_QUEUE_SCHEME, LocalQueueStore, LocalRecordedQueue } from './local-queue.ts';
import type { RecordedQueue } from './recorded-queue.ts';
import { SqsRecordedQueue } from './sqs-queue.ts';

export type WebhookOutputs = NonNullable<StackOutputs['webhooks']>;

/** The `webhooks` stack outputs, or a StepError saying how to get them. */
export function webhookOutputs(ctx: Pick<StepContext, 'outputs' | 'stack'>): WebhookOutputs {
  const webhooks = ctx.outputs.webhooks;
  if (!webhooks) {
    throw new StepError(`Stack ${ctx.stack} has no webhook recorder`, [
      {
        severity: 'error',
        object: 'stack outputs: webhooks',
        message: 'the webhook recorder is not enabled in this stack',
        fix: 'Enable the recorder in the stack config (see the README, "Webhook recorder"), run `pulumi up`, then rerun.',
      },
    ]);
  }
  return webhooks;
}

export async function openRecordedQueue(ctx: StepContext, webhooks: WebhookOutputs): Promise<RecordedQueue> {
  const local = webhooks.queueUrl.startsWith(LOCAL_QUEUE_SCHEME);
  if (local !== webhooks.deadLetterQueueUrl.startsWith(LOCAL_QUEUE_SCHEME)) {
    throw new StepError('The webhook queue and its dead-letter queue must both be SQS or both be local stand-ins', [
      {
        severity: 'error',
        object: 'stack outputs: webhooks.deadLetterQueueUrl',
        message: `queue ${webhooks.queueUrl}, dead-letter queue ${webhooks.deadLetterQueueUrl}`,
      },
    ]);
  }
  if (local) {
    return new LocalRecordedQueue(LocalQueueStore.fromUrl(webhooks.queueUrl), LocalQueueStore.fromUrl(webhooks.deadLetterQueueUrl), () =>
      ctx.now(),
    );
  }
  return new SqsRecordedQueue(
    await awsClient(ctx, 'sqs'),
    { url: webhooks.queueUrl, arn: webhooks.queueArn },
    { url: webhooks.deadLetterQueueUrl, arn: webhooks.deadLetterQueueArn },
  );
}

/**
 * AWS SDK v3 clients for a run: one per service, region from the stack outputs, credentials from the
 * SDK's default chain. The SDK itself honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> (for SQS
 * once told not to prefer the queue URL's host), so the CLI runs against any AWS-compatible
 * endpoint; we choose the retry policy.
 */
import { RDSClient } from '@aws-sdk/client-rds';
import { Route53Client } from '@aws-sdk/client-route-53';
import { SQSClient } from '@aws-sdk/client-sqs';
import { SSMClient } from '@aws-sdk/client-ssm';
import { STSClient } from '@aws-sdk/client-sts';
import type { StepContext } from '../core/step.ts';

const constructors = {
  rds: RDSClient,
  route53: Route53Client,
  sqs: SQSClient,
  ssm: SSMClient,
  sts: STSClient,
} as const;

type Service = keyof typeof constructors;
type ClientOf<S extends Service> = InstanceType<(typeof constructors)[S]>;

/**
 * Adaptive retry: throttling (Throttling, RequestLimitExceeded, TooManyRequestsException) and
 * transient 5xx/network errors are retried with backoff and client-side rate limiting.
 */
export const RETRY = { maxAttempts: 8, retryMode: 'adaptive' } as const;

export function awsClient<S extends Service>(ctx: Pick<StepContext, 'outputs' | 'resource'>, service: S): Promise<ClientOf<S>> {
  return ctx.resource(
    `aws:${service}`,
    () => {
      const Client = constructors[service] as unknown as new (config: object) => ClientOf<S>;
      // The SQS client otherwise sends each request to its QueueUrl's host, which for a queue URL a
      // real stack exports is AWS itself, whatever AWS_ENDPOINT_URL(_SQS) says. QueueUrl is in the
      // body either way, so the resolved endpoint (the stack's region, or the override) serves it.
      const perService = service === 'sqs' ? { useQueueUrlAsEndpoint: false } : {};
      return new Client({ region: ctx.outputs.region, ...RETRY, ...perService });
    },
    (client) => client.destroy(),
  );
}

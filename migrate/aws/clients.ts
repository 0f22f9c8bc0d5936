/**
 * The one place AWS SDK v3 clients come from: one per service, region from the stack outputs,
 * credentials from the SDK's default chain. The SDK itself honours AWS_ENDPOINT_URL /
 * AWS_ENDPOINT_URL_<SERVICE> (for SQS once told not to prefer the queue URL's host), so the CLI runs
 * against any AWS-compatible endpoint; we choose the retry policy. Whoever creates a client destroys
 * it: a run through ctx.resource (awsClient), anything else with withAwsClient.
 */
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { RDSClient } from '@aws-sdk/client-rds';
import { Route53Client } from '@aws-sdk/client-route-53';
import { SQSClient } from '@aws-sdk/client-sqs';
import { SSMClient } from '@aws-sdk/client-ssm';
import { STSClient } from '@aws-sdk/client-sts';
import type { StepContext } from '../core/step.ts';

const constructors = {
  elbv2: ElasticLoadBalancingV2Client,
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

/** A new client for `service` in `region`; the caller destroys it. */
export function createAwsClient<S extends Service>(service: S, region: string): ClientOf<S> {
  const Client = constructors[service] as unknown as new (config: object) => ClientOf<S>;
  // The SQS client otherwise sends each request to its QueueUrl's host, which for a queue URL a
  // real stack exports is AWS itself, whatever AWS_ENDPOINT_URL(_SQS) says. QueueUrl is in the
  // body either way, so the resolved endpoint (the stack's region, or the override) serves it.
  const perService = service === 'sqs' ? { useQueueUrlAsEndpoint: false } : {};
  return new Client({ region, ...RETRY, ...perService });
}

/** The run's client for `service`, created on first use and destroyed when the run ends. */
export function awsClient<S extends Service>(ctx: Pick<StepContext, 'outputs' | 'resource'>, service: S): Promise<ClientOf<S>> {
  return ctx.resource(
    `aws:${service}`,
    () => createAwsClient(service, ctx.outputs.region),
    (client) => client.destroy(),
  );
}

/** Runs `use` with a client of its own, destroyed afterwards, for work outside a run's resources. */
export async function withAwsClient<S extends Service, T>(
  service: S,
  region: string,
  use: (client: ClientOf<S>) => Promise<T>,
): Promise<T> {
  const client = createAwsClient(service, region);
  try {
    return await use(client);
  } finally {
    client.destroy();
  }
}

/**
 * Webhook recorder: while the cutover runs, the webhook record points here and every inbound
 * request is stored, in arrival order, on an SQS FIFO queue, with no code of ours in the path
 * (API Gateway REST API → SQS SendMessage). The CLI replays the queue into the new app afterwards.
 *
 * Why a REST API and not an HTTP API: HTTP API parameter mapping can copy only headers and query
 * parameters it names in advance and passes the body as text; a REST API mapping template can
 * serialise every header, and with binaryMediaTypes `*\/*` it receives any body as base64, so
 * signed and binary bodies are stored byte for byte (webhook-message-format.ts).
 *
 * Why FIFO: replay must follow arrival order (a "subscription.updated" after its "created"), and a
 * FIFO queue with one message group delivers exactly in the order stored. Its throughput limit
 * (300 sends/s per group) is far above webhook rates.
 */

import { createHash } from 'node:crypto';
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { type Children, children } from './children.ts';
import { assumedByService, policyDocument } from './iam.ts';
import { tagsFor } from './tags.ts';
import { RECORDER_REQUEST_TEMPLATE } from './webhook-recorder-template.ts';

export interface WebhookRecorderArgs {
  prefix: string;
  region: string;
  kmsKeyArn: pulumi.Input<string>;
  /** The webhook record's name: served by the recorder's custom domain when set. */
  customDomain?: string;
  zoneId: pulumi.Input<string>;
  contentTypes: string[];
  maxReceiveCount: number;
  visibilityTimeoutSeconds: number;
  tags: Record<string, string>;
}

/** SQS's maximum: long enough for a D-day that slips by up to two weeks. */
export const RECORDER_RETENTION_SECONDS = 14 * 24 * 3600;
const STAGE = 'recorder';

export class WebhookRecorder extends pulumi.ComponentResource {
  readonly recorderUrl: pulumi.Output<string>;
  readonly recorderTarget: pulumi.Output<
    { alias: { dnsName: string; hostedZoneId: string; evaluateTargetHealth: boolean } } | { values: string[] }
  >;
  readonly recorderTargetType: 'A' | 'CNAME';
  readonly queueUrl: pulumi.Output<string>;
  readonly queueArn: pulumi.Output<string>;
  readonly deadLetterQueueUrl: pulumi.Output<string>;
  readonly deadLetterQueueArn: pulumi.Output<string>;
  readonly retentionSeconds = RECORDER_RETENTION_SECONDS;

  constructor(name: string, args: WebhookRecorderArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cutover:infra:WebhookRecorder', name, {}, opts);
    const child = children(this, name);
    const tags = (resource: string) => tagsFor(args.tags, resource);
    const queueName = `${args.prefix}-webhooks`;
    const encryption = { kmsMasterKeyId: args.kmsKeyArn, kmsDataKeyReusePeriodSeconds: 300 };

    const deadLetters = new aws.sqs.Queue(
      child.name('webhooks-dlq'),
      {
        name: `${queueName}-dlq.fifo`,
        fifoQueue: true,
        messageRetentionSeconds: RECORDER_RETENTION_SECONDS,
        ...encryption,
        tags: tags(`${queueName}-dlq`),
      },
      child.opts('webhooks-dlq'),
    );
    const queue = new aws.sqs.Queue(
      child.name('webhooks'),
      {
        name: `${queueName}.fifo`,
        fifoQueue: true,
        // Deduplicate by API Gateway request id only: identical deliveries are distinct events.
        contentBasedDeduplication: false,
        messageRetentionSeconds: RECORDER_RETENTION_SECONDS,
        visibilityTimeoutSeconds: args.visibilityTimeoutSeconds,
        redrivePolicy: deadLetters.arn.apply((arn) => JSON.stringify({ deadLetterTargetArn: arn, maxReceiveCount: args.maxReceiveCount })),
        ...encryption,
        tags: tags(queueName),
      },
      child.opts('webhooks'),
    );

    const role = new aws.iam.Role(
      child.name('webhooks-apigateway'),
      {
        assumeRolePolicy: assumedByService('apigateway.amazonaws.com'),
        tags: tags(`${queueName}-apigateway`),
      },
      child.opts('webhooks-apigateway'),
    );
    new aws.iam.RolePolicy(
      child.name('webhooks-apigateway'),
      {
        role: role.id,
        policy: pulumi.all([queue.arn, args.kmsKeyArn]).apply(([queueArn, keyArn]) =>
          policyDocument([
            { Effect: 'Allow', Action: 'sqs:SendMessage', Resource: queueArn },
            // Sending to an SSE-KMS queue needs a data key from the queue's key.
            { Effect: 'Allow', Action: ['kms:GenerateDataKey', 'kms:Decrypt'], Resource: keyArn },
          ]),
        ),
      },
      child.opts('webhooks-apigateway'),
    );

    const api = new aws.apigateway.RestApi(
      child.name('webhooks'),
      {
        name: queueName,
        description: 'Records inbound webhooks to SQS during the cutover',
        binaryMediaTypes: ['*/*'],
        endpointConfiguration: { types: 'REGIONAL' },
        tags: tags(queueName),
      },
      child.opts('webhooks'),
    );
    const proxy = new aws.apigateway.Resource(
      child.name('webhooks-proxy'),
      { restApi: api.id, parentId: api.rootResourceId, pathPart: '{proxy+}' },
      child.opts('webhooks-proxy'),
    );

    const account = aws.getCallerIdentityOutput({}, { parent: this }).accountId;
    const sqsUri = pulumi.interpolate`arn:aws:apigateway:${args.region}:sqs:path/${account}/${queue.name}`;
    const template = Object.fromEntries(args.contentTypes.map((type) => [type, RECORDER_REQUEST_TEMPLATE]));
    const routes = [
      { key: 'root', resourceId: api.rootResourceId },
      { key: 'proxy', resourceId: proxy.id },
    ].map(({ key, resourceId }) => {
      const method = new aws.apigateway.Method(
        child.name(`webhooks-${key}`),
        { restApi: api.id, resourceId, httpMethod: 'ANY', authorization: 'NONE' },
        child.opts(`webhooks-${key}`),
      );
      const integration = new aws.apigateway.Integration(
        child.name(`webhooks-${key}`),
        {
          restApi: api.id,
          resourceId,
          httpMethod: method.httpMethod,
          type: 'AWS',
          integrationHttpMethod: 'POST',
          uri: sqsUri,
          credentials: role.arn,
          requestParameters: { 'integration.request.header.Content-Type': "'application/x-www-form-urlencoded'" },
          requestTemplates: template,
          // Base64 of the raw bytes into the template; a content type without a template gets 415
          // (the sender sees a failure and retries) rather than being stored mangled.
          contentHandling: 'CONVERT_TO_TEXT',
          passthroughBehavior: 'NEVER',
        },
        child.opts(`webhooks-${key}`),
      );
      // Anything short of "stored" must be a 5xx so that providers retry the delivery.
      const responses = [
        { status: '200', selectionPattern: undefined, body: '{"recorded":true}' },
        { status: '503', selectionPattern: '[45]\\d{2}', body: '{"recorded":false}' },
      ].map(({ status, selectionPattern, body }) => {
        const methodResponse = new aws.apigateway.MethodResponse(
          child.name(`webhooks-${key}-${status}`),
          { restApi: api.id, resourceId, httpMethod: method.httpMethod, statusCode: status },
          child.opts(`webhooks-${key}-${status}`),
        );
        return new aws.apigateway.IntegrationResponse(
          child.name(`webhooks-${key}-${status}`),
          {
            restApi: api.id,
            resourceId,
            httpMethod: method.httpMethod,
            statusCode: methodResponse.statusCode,
            ...(selectionPattern ? { selectionPattern } : {}),
            responseTemplates: { 'application/json': body },
          },
          child.opts(`webhooks-${key}-${status}`, { dependsOn: [integration] }),
        );
      });
      return [method, integration, ...responses];
    });

    const deployment = new aws.apigateway.Deployment(
      child.name('webhooks'),
      {
        restApi: api.id,
        // A deployment is a snapshot: redeploy whenever the template or the routes change.
        triggers: {
          template: createHash('sha256')
            .update(RECORDER_REQUEST_TEMPLATE + args.contentTypes.join(','))
            .digest('hex'),
        },
      },
      child.opts('webhooks', { dependsOn: routes.flat() }),
    );
    const stage = new aws.apigateway.Stage(
      child.name('webhooks'),
      { restApi: api.id, deployment: deployment.id, stageName: STAGE, tags: tags(queueName) },
      child.opts('webhooks'),
    );

    this.recorderUrl = stage.invokeUrl;
    if (args.customDomain) {
      const domain = this.customDomain(child, args.customDomain, args, api, stage, tags);
      this.recorderTarget = pulumi.all([domain.regionalDomainName, domain.regionalZoneId]).apply(([dnsName, hostedZoneId]) => ({
        alias: { dnsName, hostedZoneId, evaluateTargetHealth: false },
      }));
      this.recorderTargetType = 'A';
    } else {
      // Without a custom domain senders calling the webhook name would get the execute-api
      // certificate and a stage-less path: only for pointing a provider at recorderUrl directly.
      this.recorderTarget = api.id.apply((id) => ({ values: [`${id}.execute-api.${args.region}.amazonaws.com`] }));
      this.recorderTargetType = 'CNAME';
    }
    this.queueUrl = queue.url;
    this.queueArn = queue.arn;
    this.deadLetterQueueUrl = deadLetters.url;
    this.deadLetterQueueArn = deadLetters.arn;
    this.registerOutputs({ recorderUrl: this.recorderUrl, queueUrl: this.queueUrl, deadLetterQueueUrl: this.deadLetterQueueUrl });
  }

  private customDomain(
    child: Children,
    domainName: string,
    args: WebhookRecorderArgs,
    api: aws.apigateway.RestApi,
    stage: aws.apigateway.Stage,
    tags: (r: string) => Record<string, string>,
  ): aws.apigateway.DomainName {
    const certificate = new aws.acm.Certificate(
      child.name('webhooks'),
      { domainName, validationMethod: 'DNS', tags: tags(domainName) },
      child.opts('webhooks'),
    );
    const validationRecord = new aws.route53.Record(
      child.name('webhooks-certificate-validation'),
      {
        zoneId: args.zoneId,
        name: certificate.domainValidationOptions[0]!.resourceRecordName,
        type: certificate.domainValidationOptions[0]!.resourceRecordType,
        records: [certificate.domainValidationOptions[0]!.resourceRecordValue],
        ttl: 300,
        allowOverwrite: true,
      },
      child.opts('webhooks-certificate-validation'),
    );
    const validation = new aws.acm.CertificateValidation(
      child.name('webhooks'),
      { certificateArn: certificate.arn, validationRecordFqdns: [validationRecord.fqdn] },
      child.opts('webhooks'),
    );
    const domain = new aws.apigateway.DomainName(
      child.name('webhooks'),
      {
        domainName,
        regionalCertificateArn: validation.certificateArn,
        endpointConfiguration: { types: 'REGIONAL' },
        securityPolicy: 'TLS_1_2',
        tags: tags(domainName),
      },
      child.opts('webhooks'),
    );
    // At the root: the path a provider calls is the path recorded.
    new aws.apigateway.BasePathMapping(
      child.name('webhooks'),
      { restApi: api.id, stageName: stage.stageName, domainName: domain.domainName },
      child.opts('webhooks'),
    );
    return domain;
  }
}

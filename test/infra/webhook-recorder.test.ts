/** The webhook recorder under mocks: encryption, DLQ wiring, retention, ordering, template, outputs. */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { stackOutputsSchema } from '../../infra/contract.ts';
import { EMPTY_BODY_PLACEHOLDER, WEBHOOK_MESSAGE_ATTRIBUTES, WEBHOOK_MESSAGE_GROUP_ID } from '../../infra/webhook-message-format.ts';
import { RECORDER_REQUEST_TEMPLATE } from '../../infra/webhook-recorder-template.ts';
import { ACCOUNT, runStack, type StackRun } from './harness.ts';

const QUEUE = 'aws:sqs/queue:Queue';
const FOURTEEN_DAYS = 1_209_600;
let recorder: StackRun;

before(async () => {
  recorder = await runStack({ stack: 'prod' });
});

describe('webhook recorder queues', () => {
  it('stores on a FIFO queue (arrival order) encrypted with the stack key, retained 14 days', () => {
    const queue = recorder.one(QUEUE, 'webhooks-webhooks').inputs;
    assert.equal(queue.fifoQueue, true);
    assert.match(queue.name, /\.fifo$/);
    assert.equal(queue.contentBasedDeduplication, false, 'identical deliveries are distinct events');
    assert.equal(queue.kmsMasterKeyId, recorder.outputs.kms.keyArn);
    assert.equal(queue.messageRetentionSeconds, FOURTEEN_DAYS);
    assert.equal(recorder.outputs.webhooks.retentionSeconds, FOURTEEN_DAYS);
  });

  it('redrives to an encrypted FIFO dead-letter queue that keeps messages as long', () => {
    const queue = recorder.one(QUEUE, 'webhooks-webhooks').inputs;
    const dlq = recorder.one(QUEUE, 'webhooks-webhooks-dlq').inputs;
    const redrive = JSON.parse(queue.redrivePolicy);
    assert.equal(redrive.deadLetterTargetArn, recorder.outputs.webhooks.deadLetterQueueArn);
    assert.equal(redrive.maxReceiveCount, 100);
    assert.equal(dlq.fifoQueue, true, 'a FIFO queue needs a FIFO dead-letter queue');
    assert.equal(dlq.kmsMasterKeyId, recorder.outputs.kms.keyArn);
    assert.equal(dlq.messageRetentionSeconds, FOURTEEN_DAYS);
    assert.equal(dlq.redrivePolicy, undefined);
  });
});

describe('webhook recorder API', () => {
  it('accepts any method on any path, as binary, straight into SQS SendMessage with a least-privilege role', () => {
    const api = recorder.one('aws:apigateway/restApi:RestApi').inputs;
    assert.deepEqual(api.binaryMediaTypes, ['*/*']);
    const methods = recorder.ofType('aws:apigateway/method:Method');
    assert.deepEqual(
      methods.map((m) => m.inputs.httpMethod),
      ['ANY', 'ANY'],
    );
    assert.ok(recorder.ofType('aws:apigateway/resource:Resource').some((r) => r.inputs.pathPart === '{proxy+}'));
    for (const integration of recorder.ofType('aws:apigateway/integration:Integration')) {
      assert.equal(integration.inputs.type, 'AWS');
      assert.equal(integration.inputs.uri, `arn:aws:apigateway:eu-west-1:sqs:path/${ACCOUNT}/cutover-prod-webhooks.fifo`);
      assert.equal(integration.inputs.contentHandling, 'CONVERT_TO_TEXT');
      assert.equal(integration.inputs.passthroughBehavior, 'NEVER');
      assert.ok(Object.keys(integration.inputs.requestTemplates).includes('application/json'));
      for (const template of Object.values(integration.inputs.requestTemplates)) assert.equal(template, RECORDER_REQUEST_TEMPLATE);
    }
    const policy = JSON.parse(recorder.one('aws:iam/rolePolicy:RolePolicy', 'webhooks-webhooks-apigateway').inputs.policy);
    assert.deepEqual(policy.Statement[0], { Effect: 'Allow', Action: 'sqs:SendMessage', Resource: recorder.outputs.webhooks.queueArn });
    assert.equal(policy.Statement[1].Resource, recorder.outputs.kms.keyArn);
    const failures = recorder.ofType('aws:apigateway/integrationResponse:IntegrationResponse').filter((r) => r.inputs.selectionPattern);
    assert.ok(
      failures.length === 2 && failures.every((r) => r.inputs.statusCode.startsWith('5')),
      'a failed store is a 5xx so senders retry',
    );
  });

  it('writes the documented message format: one group, request id dedup, base64 body, every attribute', () => {
    const t = RECORDER_REQUEST_TEMPLATE;
    assert.ok(
      t.split('\n').every((line) => line.endsWith('##')),
      'one form-encoded line',
    );
    assert.match(
      t,
      new RegExp(`MessageGroupId=${WEBHOOK_MESSAGE_GROUP_ID}&MessageDeduplicationId=\\$util.urlEncode\\(\\$context.requestId\\)`),
    );
    assert.match(t, /MessageBody=\$util\.urlEncode\(\$input\.body\)/);
    assert.ok(t.includes(`MessageBody=${EMPTY_BODY_PLACEHOLDER}&`));
    const names = [...t.matchAll(/MessageAttribute\.(\d+)\.Name=(\w+)/g)].map((m) => [Number(m[1]), m[2]] as const);
    assert.deepEqual(new Set(names.map(([, name]) => name)), new Set(Object.values(WEBHOOK_MESSAGE_ATTRIBUTES)));
    assert.ok(
      names.every(([n]) => n >= 1 && n <= 10),
      'SQS allows 10 attributes',
    );
  });

  it("serves the webhook record's name on a custom domain and targets it with an alias", () => {
    const domain = recorder.one('aws:apigateway/domainName:DomainName').inputs;
    assert.equal(domain.domainName, 'hooks.example.com');
    assert.equal(domain.securityPolicy, 'TLS_1_2');
    assert.equal(recorder.one('aws:acm/certificate:Certificate').inputs.validationMethod, 'DNS');
    assert.equal(recorder.one('aws:apigateway/basePathMapping:BasePathMapping').inputs.basePath, undefined, 'mapped at the root');
    assert.deepEqual(recorder.outputs.webhooks.recorderTarget, {
      alias: { dnsName: 'd-mock123.execute-api.eu-west-1.amazonaws.com', hostedZoneId: 'ZLY8HYME6SFDD', evaluateTargetHealth: false },
    });
    assert.equal(recorder.outputs.webhooks.recorderTargetType, 'A');
    assert.match(recorder.outputs.webhooks.recorderUrl, /^https:\/\/.+\.execute-api\.eu-west-1\.amazonaws\.com\/recorder$/);
    assert.ok(stackOutputsSchema.shape.webhooks.safeParse(recorder.outputs.webhooks).success);
  });
});

describe('webhook recorder config', () => {
  it('without a custom domain, targets the execute-api host with a CNAME', async () => {
    const run = await runStack({ stack: 'staging', config: { webhookRecorder: { enabled: true, customDomain: false } } });
    assert.equal(run.ofType('aws:apigateway/domainName:DomainName').length, 0);
    assert.equal(run.outputs.webhooks.recorderTargetType, 'CNAME');
    assert.deepEqual(run.outputs.webhooks.recorderTarget, { values: ['webhooks-id.execute-api.eu-west-1.amazonaws.com'] });
  });

  it('when disabled, creates nothing and leaves webhooks out of the outputs', async () => {
    const run = await runStack({ stack: 'staging', config: { webhookRecorder: undefined } });
    assert.equal(run.ofType(QUEUE).length, 0);
    assert.equal(run.ofType('aws:apigateway/restApi:RestApi').length, 0);
    assert.equal(run.outputs.webhooks, undefined);
    assert.ok(stackOutputsSchema.safeParse(run.outputs).success);
  });
});

/**
 * The real SDK client from awsClient(), pointed at a local HTTP server through AWS_ENDPOINT_URL_SSM
 * (the SDK's standard endpoint setting): proves the endpoint override is honoured, a throttled call
 * is retried by the client's adaptive retry, and a real AccessDeniedException response becomes an
 * error naming the IAM action. The secret resolver's client comes from the same factory.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createSecretResolver } from '../../migrate/core/secret-refs.ts';
import { StepError } from '../../migrate/core/step.ts';
import { ssmSwap } from '../../migrate/steps/aws/ssm-swap.ts';
import { testContext } from '../support/context.ts';
import { awsOutputs } from './fixtures.ts';

const WRITER = '/billing/production/database/writer-url';
type Reply = { status: number; body: object };

describe('AWS clients against a local endpoint', () => {
  let server: Server;
  const replies: Reply[] = [];
  const targets: string[] = [];
  before(async () => {
    server = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        targets.push(String(request.headers['x-amz-target']));
        const reply = replies.shift() ?? { status: 500, body: { __type: 'InternalServerError', message: 'no reply queued' } };
        response.writeHead(reply.status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': 'local' });
        response.end(JSON.stringify(reply.body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    process.env.AWS_ENDPOINT_URL_SSM = `http://127.0.0.1:${port}`;
    process.env.AWS_ACCESS_KEY_ID = 'AKIDLOCALTEST';
    process.env.AWS_SECRET_ACCESS_KEY = 'local-test-secret';
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const history = {
    status: 200,
    body: { Parameters: [{ Name: WRITER, Version: 4, Labels: [], Type: 'SecureString', Value: 'ciphertext' }] },
  };
  const params = ssmSwap.params.parse({ parameters: [{ name: WRITER, value: 'new-writer-value-x1' }] });

  it('retries a Throttling response and then succeeds', async () => {
    replies.push({ status: 400, body: { __type: 'ThrottlingException', message: 'Rate exceeded' } }, history);
    targets.length = 0;
    const t = testContext({ outputs: awsOutputs() });
    try {
      const probe = await ssmSwap.probe(t.ctx, params);
      assert.equal(probe.state, 'ready');
      assert.deepEqual(targets, ['AmazonSSM.GetParameterHistory', 'AmazonSSM.GetParameterHistory']);
    } finally {
      await t.close();
    }
  });

  it('turns a real AccessDeniedException into an error naming ssm:GetParameterHistory on the parameter ARN', async () => {
    replies.push({
      status: 400,
      body: {
        __type: 'AccessDeniedException',
        message: 'User: arn:aws:iam::123456789012:user/ops is not authorized to perform: ssm:GetParameterHistory',
      },
    });
    const t = testContext({ outputs: awsOutputs() });
    try {
      await assert.rejects(ssmSwap.probe(t.ctx, params), (error: unknown) => {
        assert.ok(error instanceof StepError);
        assert.match(
          error.message,
          /^permission denied: ssm:GetParameterHistory on arn:aws:ssm:eu-west-1:123456789012:parameter\/billing\/production\/database\/writer-url \(AccessDeniedException/,
        );
        return true;
      });
    } finally {
      await t.close();
    }
  });

  it('the secret resolver reads Parameter Store through the same endpoint and retry policy (more attempts than the SDK default of 3)', async () => {
    const throttled = { status: 400, body: { __type: 'ThrottlingException', message: 'Rate exceeded' } };
    replies.push(throttled, throttled, throttled, {
      status: 200,
      body: { Parameter: { Name: WRITER, Type: 'SecureString', Value: 'resolved-writer-value-7d3e', Version: 4 } },
    });
    targets.length = 0;
    const secret = await createSecretResolver({ region: 'eu-west-1' })(`ssm:${WRITER}`);
    assert.equal(secret.reveal(), 'resolved-writer-value-7d3e');
    assert.deepEqual(targets, Array(4).fill('AmazonSSM.GetParameter'));
  });
});

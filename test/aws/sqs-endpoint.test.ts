/**
 * Issue 10 #8: with a queue URL as a real stack exports it (https://sqs.<region>.amazonaws.com/…)
 * and the endpoint overridden (AWS_ENDPOINT_URL_SQS, or AWS_ENDPOINT_URL for every service), the
 * real SDK client sends its requests to the override — here a local HTTP server — not to AWS.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, afterEach, before, describe, it } from 'node:test';
import { openRecordedQueue, webhookOutputs } from '../../migrate/webhooks/open-queue.ts';
import { testContext } from '../support/context.ts';
import { awsOutputs } from './fixtures.ts';

describe('SQS behind an endpoint override', () => {
  let server: Server;
  let endpoint = '';
  const seen: { target: string; queueUrl: string }[] = [];
  const saved = { ...process.env };
  before(async () => {
    server = createServer((request, response) => {
      let body = '';
      request.setEncoding('utf8').on('data', (d: string) => (body += d));
      request.on('end', () => {
        seen.push({ target: String(request.headers['x-amz-target']), queueUrl: JSON.parse(body || '{}').QueueUrl });
        response.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
        response.end(JSON.stringify({ Attributes: { ApproximateNumberOfMessages: '3', ApproximateNumberOfMessagesNotVisible: '0' } }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    process.env.AWS_ACCESS_KEY_ID = 'AKIDLOCALTEST';
    process.env.AWS_SECRET_ACCESS_KEY = 'local-test-secret';
  });
  afterEach(() => {
    for (const key of ['AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_SQS']) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  for (const variable of ['AWS_ENDPOINT_URL_SQS', 'AWS_ENDPOINT_URL']) {
    it(`sends every request to ${variable}, with the real queue URL in the body`, async () => {
      process.env[variable] = endpoint;
      seen.length = 0;
      const outputs = awsOutputs();
      const t = testContext({ outputs });
      try {
        const queue = await openRecordedQueue(t.ctx, webhookOutputs(t.ctx));
        const counts = await queue.counts();
        assert.ok(Object.values(counts).includes(3), JSON.stringify(counts));
      } finally {
        await t.close();
      }
      assert.ok(seen.length > 0, 'the local endpoint received the requests');
      assert.ok(
        seen.every((r) => r.target.startsWith('AmazonSQS.')),
        JSON.stringify(seen),
      );
      assert.ok(
        seen.some((r) => r.queueUrl === outputs.webhooks!.queueUrl),
        JSON.stringify(seen),
      );
    });
  }
});

/**
 * Issue 10 #3, end to end: the shipped d-day.yaml against an AWS-compatible endpoint (a local HTTP
 * server, through AWS_ENDPOINT_URL) whose Parameter Store has no app-password. The dry run exits 4
 * naming the secret and the parameter; the real run refuses before its first step: no journal, and
 * no request to AWS but the secret's read.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EXIT } from '../../migrate/commands/exit-codes.ts';
import { fixtureOutputs } from '../support/fake-kinds.ts';
import { describeResult, startCli } from './support.ts';

const PARAMETER = '/c/test/database/app-password';

describe('d-day with app-password missing from Parameter Store', () => {
  let server: Server;
  let endpoint = '';
  const requests: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'd-day-secrets-'));
  const outputsFile = join(dir, 'outputs.json');

  before(async () => {
    server = createServer((request, response) => {
      let body = '';
      request.setEncoding('utf8').on('data', (d: string) => (body += d));
      request.on('end', () => {
        const target = request.headers['x-amz-target'];
        if (target === 'AmazonSSM.GetParameter') {
          requests.push(`${target} ${JSON.parse(body).Name}`);
          response.writeHead(400, { 'content-type': 'application/x-amz-json-1.1' });
          response.end(JSON.stringify({ __type: 'ParameterNotFound', message: '' }));
          return;
        }
        requests.push(`${request.method} ${request.url} ${target ?? /Action=(\w+)/.exec(body)?.[1] ?? ''}`);
        response.writeHead(403, { 'content-type': 'text/xml' });
        response.end(
          '<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>denied by the test endpoint</Message></Error></ErrorResponse>',
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    writeFileSync(outputsFile, JSON.stringify(fixtureOutputs()));
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const migrate = (stateDir: string, ...args: string[]) =>
    startCli(['--outputs', outputsFile, '--state-dir', stateDir, '--without', 'postgres,kube,pgbouncer,shell,http', ...args], {
      AWS_ENDPOINT_URL: endpoint,
      AWS_ACCESS_KEY_ID: 'AKIDLOCALTEST',
      AWS_SECRET_ACCESS_KEY: 'local-test-secret',
    }).done;

  it('the dry run exits 4 and names the secret and its parameter', async () => {
    const result = await migrate(join(dir, 'state-dry'), 'run', 'runbooks/d-day.yaml', '--dry-run');
    assert.equal(result.code, EXIT.blocked, describeResult(result));
    assert.match(
      result.stdout,
      new RegExp(`secret appPassword: ssm:${PARAMETER} \\(used by step 'swap-secrets'\\) does not resolve: .*ParameterNotFound`),
      describeResult(result),
    );
    assert.doesNotMatch(result.stdout, /depend on earlier steps: probed/);
  });

  it('the real run refuses before the first step: no journal, nothing sent but the secret read', async () => {
    requests.length = 0;
    const stateDir = join(dir, 'state-run');
    const result = await migrate(stateDir, 'run', 'runbooks/d-day.yaml', '--yes');
    assert.equal(result.code, EXIT.blocked, describeResult(result));
    assert.match(result.stderr, /cannot start: 1 problem found before the first step; nothing was changed/);
    assert.match(result.stderr, new RegExp(`secret appPassword: ssm:${PARAMETER}`));
    assert.equal(existsSync(join(stateDir, 'test', 'runs')), false, 'no run was journaled');
    assert.deepEqual([...new Set(requests)], [`AmazonSSM.GetParameter ${PARAMETER}`]);
  });
});

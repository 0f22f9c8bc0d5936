/**
 * Issue 10 #3, last sentence: with 0 cutover replicas the reader URL is never written with an empty
 * host list. The shipped d-day.yaml's swap gets the writer as the readers' host (the replicas step's
 * `readerHosts`), and ssm.swap itself refuses any connection URL with an empty host, before writing.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { PutParameterCommand } from '@aws-sdk/client-ssm';
import { kindLookup } from '../../migrate/core/environment.ts';
import { loadRunbook, resolveParams } from '../../migrate/core/runbook.ts';
import { Secret } from '../../migrate/core/secret.ts';
import { type Json, StepError } from '../../migrate/core/step.ts';
import { rdsCreateReplicas } from '../../migrate/steps/aws/rds-create-replicas.ts';
import { ssmSwap } from '../../migrate/steps/aws/ssm-swap.ts';
import { testContext } from '../support/context.ts';
import { awsOutputs } from './fixtures.ts';
import { fakeRds } from './rds-fake.ts';
import { fakeSsm } from './ssm-fake.ts';

const PASSWORD = 'planted-NoReplica-Pw-81';

describe('d-day with no cutover replicas', () => {
  let cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const close of cleanup) await close();
    cleanup = [];
  });

  it('points the reader URL at the writer', async () => {
    const base = awsOutputs();
    const outputs = { ...base, database: { ...base.database, replicas: [] } };
    const rds = fakeRds();
    rds.add(outputs.database.identifier);
    const ssm = fakeSsm();
    ssm.put(outputs.parameters.writerUrl, 'legacy-writer');
    ssm.put(outputs.parameters.readerUrls, 'legacy-readers');
    const t = testContext({ outputs, secret: async () => new Secret(PASSWORD) });
    cleanup.push(
      () => t.close(),
      () => rds.mock.restore(),
      () => ssm.mock.restore(),
    );

    const probe = await rdsCreateReplicas.probe(t.ctx, rdsCreateReplicas.params.parse({}));
    assert.equal(probe.state, 'done');
    const writer = `${outputs.database.endpoint}:${outputs.database.port}`;
    assert.deepEqual(probe.result, { endpoints: [], hosts: '', readerHosts: writer });

    const runbook = loadRunbook(join(import.meta.dirname, '..', '..', 'runbooks', 'd-day.yaml'), {
      outputs,
      ...kindLookup('/nonexistent-state'),
    });
    const step = runbook.steps.find((s) => s.id === 'swap-secrets')!;
    const params = await resolveParams(runbook, step, {
      outputs,
      runId: 'test-run',
      stack: 'test',
      results: new Map<string, Json>([['replicas', probe.result as Json]]),
      secret: t.ctx.secret,
    });
    await ssmSwap.apply(t.ctx, params as Parameters<typeof ssmSwap.apply>[1]);

    const written = new Map(ssm.mock.commandCalls(PutParameterCommand).map((c) => [c.args[0].input.Name, new URL(c.args[0].input.Value!)]));
    assert.equal(written.get(outputs.parameters.readerUrls)?.host, writer);
    assert.equal(written.get(outputs.parameters.writerUrl)?.host, writer);
  });

  it('ssm.swap refuses a connection URL with an empty host list, naming the parameter, before writing anything', async () => {
    const outputs = awsOutputs();
    const ssm = fakeSsm();
    ssm.put(outputs.parameters.writerUrl, 'legacy-writer');
    ssm.put(outputs.parameters.readerUrls, 'legacy-readers');
    const t = testContext({ outputs });
    cleanup.push(
      () => t.close(),
      () => ssm.mock.restore(),
    );
    const params = ssmSwap.params.parse({
      parameters: [
        { name: outputs.parameters.writerUrl, value: `postgresql://app:${PASSWORD}@db.example.com:5432/app` },
        { name: outputs.parameters.readerUrls, value: `postgresql://app:${PASSWORD}@/app?target_session_attrs=any` },
      ],
    });

    const probe = await ssmSwap.probe(t.ctx, params);
    assert.equal(probe.state, 'blocked');
    assert.deepEqual(
      probe.findings!.map((f) => [f.severity, f.object]),
      [['error', `parameter ${outputs.parameters.readerUrls}`]],
    );
    await assert.rejects(
      ssmSwap.apply(t.ctx, params),
      (error: unknown) => error instanceof StepError && /empty host/.test(error.message) && !error.message.includes(PASSWORD),
    );
    assert.equal(ssm.mock.commandCalls(PutParameterCommand).length, 0);
  });
});

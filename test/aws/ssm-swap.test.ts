import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { LabelParameterVersionCommand, PutParameterCommand } from '@aws-sdk/client-ssm';
import { type Json, type StepContext, StepError } from '../../migrate/core/step.ts';
import { ssmSwap } from '../../migrate/steps/aws/ssm-swap.ts';
import { type TestContext, testContext } from '../support/context.ts';
import { awsOutputs, KMS_KEY } from './fixtures.ts';
import { fakeSsm } from './ssm-fake.ts';

const WRITER = '/billing/production/database/writer-url';
const READERS = '/billing/production/database/reader-urls';
const PLANTED = 'planted-S3CRET-writer-value-4f9a';
const LEGACY = 'legacy-writer-value-0c2e';

const params = (extra: object = {}) =>
  ssmSwap.params.parse({
    parameters: [
      { name: WRITER, value: PLANTED },
      { name: READERS, value: 'reader-one,reader-two' },
    ],
    ...extra,
  });

/** The context with its log and journal captured before any redaction, to prove the step never emits the value. */
function rawCapture(t: TestContext): { ctx: StepContext; raw: string[] } {
  const raw: string[] = [];
  const ctx: StepContext = {
    ...t.ctx,
    log: { info: (m) => raw.push(m), warn: (m) => raw.push(m), progress: (p) => raw.push(JSON.stringify(p)) },
    record: async (change: Json) => {
      raw.push(JSON.stringify(change));
      await t.ctx.record(change);
    },
  };
  return { ctx, raw };
}

describe('ssm.swap', () => {
  let cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const close of cleanup) await close();
    cleanup = [];
  });
  function setup() {
    const ssm = fakeSsm();
    ssm.put(WRITER, 'older-writer-value-aa11');
    ssm.put(WRITER, LEGACY);
    ssm.put(READERS, 'legacy-readers');
    const t = testContext({ outputs: awsOutputs() });
    cleanup.push(
      () => t.close(),
      () => ssm.mock.restore(),
    );
    return { ssm, t };
  }

  it('labels the current version pre-cutover, writes a SecureString with the stack key, labels it with the run', async () => {
    const { ssm, t } = setup();
    const { ctx, raw } = rawCapture(t);
    ssm.mock.on(LabelParameterVersionCommand).callsFake(async (input) => {
      // Write-ahead: the version being replaced is journalled before the first write touches it.
      assert.ok(t.changes.some((c) => (c as { name: string }).name === input.Name));
      const versions = ssm.store.get(input.Name)!;
      for (const label of input.Labels) for (const v of versions) v.labels = v.labels.filter((l) => l !== label);
      versions.find((v) => v.version === input.ParameterVersion)!.labels.push(...input.Labels);
      return { InvalidLabels: [] };
    });

    const result = await ssmSwap.apply(ctx, params());

    assert.deepEqual(
      ssm.mock.commandCalls(LabelParameterVersionCommand).map((c) => c.args[0].input),
      [
        { Name: WRITER, ParameterVersion: 2, Labels: ['pre-cutover'] },
        { Name: WRITER, ParameterVersion: 3, Labels: ['cutover-test-run'] },
        { Name: READERS, ParameterVersion: 1, Labels: ['pre-cutover'] },
        { Name: READERS, ParameterVersion: 2, Labels: ['cutover-test-run'] },
      ],
    );
    assert.deepEqual(
      ssm.mock.commandCalls(PutParameterCommand).map((c) => c.args[0].input),
      [
        { Name: WRITER, Value: PLANTED, Type: 'SecureString', KeyId: KMS_KEY, Overwrite: true },
        { Name: READERS, Value: 'reader-one,reader-two', Type: 'SecureString', KeyId: KMS_KEY, Overwrite: true },
      ],
    );
    assert.deepEqual(t.changes, [
      { action: 'ssm-put', name: WRITER, previousVersion: 2 },
      { action: 'ssm-put', name: READERS, previousVersion: 1 },
    ]);
    assert.deepEqual(result, {
      label: 'cutover-test-run',
      parameters: [
        { name: WRITER, previousVersion: 2, version: 3 },
        { name: READERS, previousVersion: 1, version: 2 },
      ],
    });
    assert.ok(!raw.join('\n').includes(PLANTED), 'value never logged or journalled');
    assert.ok(!JSON.stringify(result).includes(PLANTED));
  });

  it('a re-run finds the run label and makes no writes', async () => {
    const { ssm, t } = setup();
    await ssmSwap.apply(t.ctx, params());
    const writes = ssm.mock.calls().length;
    const again = t.retry();
    cleanup.push(() => again.close());
    const probe = await ssmSwap.probe(again.ctx, params());
    assert.equal(probe.state, 'done');
    assert.deepEqual(
      probe.result?.parameters.map((p) => [p.name, p.previousVersion, p.version]),
      [
        [WRITER, 2, 3],
        [READERS, 1, 2],
      ],
    );
    await ssmSwap.apply(again.ctx, params());
    const after = ssm.mock
      .calls()
      .slice(writes)
      .map((c) => c.args[0].constructor.name);
    assert.deepEqual([...new Set(after)], ['GetParameterHistoryCommand'], 'only reads on the second run');
    assert.deepEqual(again.changes, []);
  });

  it('resumes after a crash between the write and its label without moving pre-cutover onto the new value', async () => {
    const { ssm, t } = setup();
    ssm.mock
      .on(LabelParameterVersionCommand, { Name: WRITER, Labels: ['cutover-test-run'] })
      .rejectsOnce(Object.assign(new Error('connection reset'), { name: 'TimeoutError' }));
    await assert.rejects(
      ssmSwap.apply(t.ctx, params()),
      /Unable to update parameter \/billing\/production\/database\/writer-url: connection reset/,
    );
    ssm.mock.on(LabelParameterVersionCommand, { Name: WRITER, Labels: ['cutover-test-run'] }).callsFake(async (input) => {
      const versions = ssm.store.get(input.Name)!;
      versions.find((v) => v.version === input.ParameterVersion)!.labels.push(...input.Labels);
      return { InvalidLabels: [] };
    });

    const again = t.retry();
    cleanup.push(() => again.close());
    await ssmSwap.apply(again.ctx, params());
    const writer = ssm.store.get(WRITER)!;
    assert.deepEqual(writer.find((v) => v.labels.includes('pre-cutover'))?.value, LEGACY);
    assert.deepEqual(writer.at(-1)?.labels, ['cutover-test-run']);
    assert.equal(writer.at(-1)?.value, PLANTED);
    assert.deepEqual(again.changes, [{ action: 'ssm-put', name: READERS, previousVersion: 1 }], 'writer was not journalled twice');
  });

  it('undo restores the pre-cutover value, keeping its type, and is idempotent', async () => {
    const { ssm, t } = setup();
    ssm.store.get(READERS)![0]!.type = 'String';
    await ssmSwap.apply(t.ctx, params());
    const puts = ssm.mock.commandCalls(PutParameterCommand).length;

    await ssmSwap.undo!(t.ctx, params(), t.changes, undefined);
    const restores = ssm.mock
      .commandCalls(PutParameterCommand)
      .slice(puts)
      .map((c) => c.args[0].input);
    assert.deepEqual(restores, [
      { Name: WRITER, Value: LEGACY, Type: 'SecureString', KeyId: KMS_KEY, Overwrite: true },
      { Name: READERS, Value: 'legacy-readers', Type: 'String', Overwrite: true },
    ]);
    assert.ok(!t.lines.join('\n').includes(LEGACY), 'restored values are not printed either');

    await ssmSwap.undo!(t.ctx, params(), t.changes, undefined);
    assert.equal(ssm.mock.commandCalls(PutParameterCommand).length, puts + 2);
  });

  it('dry run plans every write with names, versions, labels and KMS key, and the value as ***', async () => {
    const { ssm, t } = setup();
    const probe = await ssmSwap.probe(t.ctx, params({ label: 'cutover-2025-06-01' }));
    assert.equal(probe.state, 'ready');
    assert.deepEqual(probe.plan?.slice(0, 3), [
      `ssm:LabelParameterVersion Name=${WRITER} ParameterVersion=2 Labels=pre-cutover`,
      `ssm:PutParameter Name=${WRITER} Type=SecureString KeyId=${KMS_KEY} Overwrite=true Value=***`,
      `ssm:LabelParameterVersion Name=${WRITER} ParameterVersion=<new, 3 if no one else writes> Labels=cutover-2025-06-01`,
    ]);
    assert.ok(!JSON.stringify(probe).includes(PLANTED));
    assert.deepEqual([...new Set(ssm.mock.calls().map((c) => c.args[0].constructor.name))], ['GetParameterHistoryCommand']);
    // The fake pages one version at a time: every page of each history is followed.
    const history = (Name: string) => ({ Name, WithDecryption: false, MaxResults: 50 });
    assert.deepEqual(ssm.histories, [history(WRITER), { ...history(WRITER), NextToken: '1' }, history(READERS)]);
  });

  it('never lets the value into an error, even when AWS echoes it', async () => {
    const { ssm, t } = setup();
    ssm.mock.on(PutParameterCommand).rejects(
      Object.assign(new Error(`1 validation error detected: Value '${PLANTED}' at 'value' failed to satisfy constraint`), {
        name: 'ValidationException',
      }),
    );
    await assert.rejects(ssmSwap.apply(t.ctx, params()), (error: unknown) => {
      assert.ok(error instanceof StepError);
      assert.match(error.message, /^Unable to update parameter .*writer-url: 1 validation error detected: Value '\*\*\*'/);
      assert.ok(!JSON.stringify({ message: error.message, stack: error.stack, findings: error.findings }).includes(PLANTED));
      return true;
    });
  });

  it('is blocked for a missing parameter, one outside the stack prefix, or one another run wrote and did not roll back', async () => {
    const { ssm, t } = setup();
    ssm.put('/other/app/url', 'x');
    ssm.store.get(READERS)![0]!.labels.push('cutover-earlier-run');
    const probe = await ssmSwap.probe(
      t.ctx,
      ssmSwap.params.parse({
        parameters: [
          { name: '/billing/production/database/absent', value: 'v' },
          { name: '/other/app/url', value: 'v' },
          { name: READERS, value: 'v' },
        ],
      }),
    );
    assert.equal(probe.state, 'blocked');
    assert.deepEqual(
      probe.findings?.map((f) => [f.object, f.message.split(/[,;(]/)[0]!.trim()]),
      [
        ['parameter /billing/production/database/absent', 'does not exist'],
        ['parameter /other/app/url', "is outside the stack's prefix /billing/production/"],
        [`parameter ${READERS}`, 'current version 1 was written by another cutover run'],
      ],
    );
  });

  it('apply reads every parameter before writing any: one blocked parameter stops the whole swap', async () => {
    const { ssm, t } = setup();
    ssm.store.get(READERS)![0]!.labels.push('cutover-earlier-run');
    await assert.rejects(ssmSwap.apply(t.ctx, params()), (error: unknown) => {
      assert.ok(error instanceof StepError);
      assert.match(
        error.message,
        /^parameter \/billing\/production\/database\/reader-urls: current version 1 was written by another cutover run \(cutover-earlier-run\)/,
      );
      assert.deepEqual(
        error.findings.map((f) => f.object),
        [`parameter ${READERS}`],
      );
      return true;
    });
    assert.equal(ssm.mock.commandCalls(PutParameterCommand).length, 0);
    assert.deepEqual(t.changes, []);
  });
});

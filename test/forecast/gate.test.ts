/**
 * forecast.window through the engine, on real servers: a forecast over the budget blocks before
 * anything else runs; and a forecast made from one local D-day run's journal is within its own
 * stated tolerance of the D-day run that follows it (a fresh pair of servers each time, as two
 * rehearsals would have, an application writing until the freeze stops it).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type EngineEnvironment, run } from '../../migrate/core/engine.ts';
import { listRuns } from '../../migrate/core/journal.ts';
import { jsonReporter } from '../../migrate/core/report.ts';
import { runbookFromObject } from '../../migrate/core/runbook.ts';
import { createSecretResolver } from '../../migrate/core/secret-refs.ts';
import { compareWithRun } from '../../migrate/forecast/compare.ts';
import { windowOfRun } from '../../migrate/forecast/history.ts';
import type { Forecast } from '../../migrate/forecast/types.ts';
import { forecastWindowKind } from '../../migrate/steps/forecast/window.ts';
import { postgresSteps } from '../../migrate/steps/postgres/index.ts';
import { replicationStart } from '../../migrate/steps/postgres/replication-start.ts';
import { schemaCopy } from '../../migrate/steps/postgres/schema-copy.ts';
import { verifySteps } from '../../migrate/steps/postgres/verify.ts';
import { type Pair, ROLES, SCHEMA, SEED, startPair, startWriter, TARGET_ROLES, type Writer } from '../postgres/fixtures.ts';
import { fakeKinds, lookupFor, newWorld } from '../support/fake-kinds.ts';

const GO = { id: 'go', uses: 'forecast.window', with: { walIntervalMs: 500, sampleRows: 2000, kube: false, proof: 'before-switch' } };

/** A pair replicating, with the application writing to the source. */
async function replicatingPair(): Promise<{ pair: Pair; writer: Writer }> {
  const pair = await startPair();
  await pair.sql('source', `${SCHEMA + SEED + ROLES}; alter table crm.audit_log replica identity full; analyze;`);
  await pair.sql('target', TARGET_ROLES);
  await schemaCopy.apply(pair.context({ stepId: 'schema' }).ctx, schemaCopy.params.parse({}));
  await replicationStart.apply(pair.context({ stepId: 'replicate' }).ctx, replicationStart.params.parse({ pollMs: 50 }));
  const writer = startWriter(pair.source, 1_000_000);
  while (writer.committed < 20) await new Promise((r) => setTimeout(r, 10));
  return { pair, writer };
}

function environment(
  pair: Pair,
  stateDir: string,
  kinds = lookupFor([]),
): { env: EngineEnvironment; load: Parameters<typeof runbookFromObject>[2] } {
  const env: EngineEnvironment = {
    stack: pair.outputs.environment,
    outputs: pair.outputs,
    stateDir,
    reporter: jsonReporter(() => {}),
    secret: createSecretResolver({ region: pair.outputs.region }),
    capabilities: new Set(['postgres']),
    yes: true,
  };
  return { env, load: { outputs: pair.outputs, ...kinds } };
}

describe('forecast.window in a run', () => {
  const pairs: Pair[] = [];
  const writers: Writer[] = [];
  after(async () => {
    for (const w of writers) w.stop();
    await Promise.all(writers.map((w) => w.finished.catch(() => {})));
    for (const p of pairs) await p.stop();
  });

  it('blocks over a tiny budget before the destructive step after it runs, naming the parts', async () => {
    const { pair, writer } = await replicatingPair();
    pairs.push(pair);
    writers.push(writer);
    const stateDir = join(mkdtempSync(join(tmpdir(), 'forecast-gate-')), 'state');
    const world = newWorld();
    const kinds = lookupFor([...fakeKinds(world), forecastWindowKind({ stateDir })]);
    const { env, load } = environment(pair, stateDir, kinds);
    const runbook = runbookFromObject(
      {
        name: 'd-day',
        steps: [
          { ...GO, with: { ...GO.with, budgetSeconds: 0.001 } },
          { id: 'switch', uses: 'test.set', confirm: true, with: { key: 'switched', value: 'yes' } },
        ],
      },
      'gate',
      load,
    );
    const outcome = await run(runbook, env);
    assert.equal(outcome.outcome, 'failed');
    assert.equal(outcome.failedStep, 'go');
    assert.equal(outcome.blocked, true);
    // The probe's findings, and the same again on the step's error.
    const errors = [...new Set(outcome.findings.filter((f) => f.severity === 'error').map((f) => JSON.stringify(f)))].map((f) =>
      JSON.parse(f),
    );
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.equal(errors[0]!.object, 'window users see (keep-serving)');
    assert.match(errors[0]!.message, /exceeds the budget of 0\.00 s: it crosses the budget at database write window/);
    assert.match(errors[0]!.message, /inside the database window at PgBouncer PAUSE|inside the database window at freeze writes/);
    assert.deepEqual(world.applyCalls, [], 'the step after the gate never ran');
    assert.equal(world.values.has('switched'), false);
    const [journaled] = listRuns(stateDir, env.stack);
    assert.deepEqual(
      journaled!.steps.map((s) => [s.id, s.status]),
      [
        ['go', 'failed'],
        ['switch', 'pending'],
      ],
    );
  });

  it("forecasts the next run's window from the last run's journal, within its stated tolerance", async (t) => {
    const stateDir = join(mkdtempSync(join(tmpdir(), 'forecast-next-')), 'state');
    const kinds = lookupFor([...postgresSteps, ...verifySteps, forecastWindowKind({ stateDir })]);
    const runs: string[] = [];
    for (const attempt of [1, 2]) {
      const { pair, writer } = await replicatingPair();
      pairs.push(pair);
      writers.push(writer);
      const { env, load } = environment(pair, stateDir, kinds);
      const runbook = runbookFromObject(
        {
          name: 'd-day',
          steps: [
            GO,
            { id: 'freeze', uses: 'postgres.freeze-writes' },
            { id: 'catch-up', uses: 'postgres.catch-up' },
            { id: 'write-fence', uses: 'postgres.write-fence' },
            { id: 'verify', uses: 'postgres.verify', with: { onDifference: 'report' } },
            { id: 'sequences', uses: 'postgres.sequence-sync' },
            { id: 'stop-replication', uses: 'postgres.replication-stop' },
          ],
        },
        `d-day-${attempt}`,
        load,
      );
      const outcome = await run(runbook, env);
      assert.equal(outcome.outcome, 'finished', outcome.error);
      assert.equal((await writer.finished).stoppedBy, 'frozen');
      runs.push(outcome.runId);
      await pair.stop();
    }
    const [first, second] = listRuns(stateDir, 'rehearsal');
    assert.deepEqual([first!.runId, second!.runId], runs);
    const predicted = second!.steps.find((s) => s.id === 'go')!.result as Forecast;
    assert.equal(predicted.basedOnRun, first!.runId, 'the second forecast follows the first run');
    const window = windowOfRun(second!)!;
    assert.deepEqual([window.from, window.to], ['freeze', 'stop-replication']);
    const outcome = compareWithRun(predicted, second!);
    t.diagnostic(JSON.stringify(outcome));
    assert.deepEqual(
      outcome.parts.map((r) => [r.part, r.actual !== null]),
      ['freeze', 'catch-up', 'write-fence', 'verify', 'sequences', 'stop-replication'].map((id) => [id, true]),
    );
    for (const r of outcome.parts) assert.ok(r.within, `${r.part}: ${r.actual} s, forecast ${r.predicted} ± ${r.tolerance} s`);
    assert.equal(outcome.window.actual, window.seconds);
    assert.ok(outcome.window.within, `window ${window.seconds} s, forecast ${outcome.window.predicted} ± ${outcome.window.tolerance} s`);
    // The forecast is the step's result in the journal, as it was made (no secret in it).
    assert.ok(!readFileSync(second!.path, 'utf8').includes(pairs.at(-1)!.target.password));
  });
});

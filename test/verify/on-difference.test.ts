/**
 * `migrate verify` (the engine, as in d-day) prints each difference once, and a runbook decides in
 * advance what a difference does: stop (exit 1) or report (a warning, exit 0, the keys in the result).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cli, describeResult } from '../cli/support.ts';
import { type Pair, startPair } from './fixture.ts';

describe('verify: one line per difference, and onDifference', () => {
  let pair: Pair;
  let global: string[];

  before(async () => {
    pair = await startPair();
    const { outputs, target } = await pair.database('ondiff');
    await target.query("UPDATE app.accounts SET email = 'changed' WHERE id = 3");
    const dir = mkdtempSync(join(tmpdir(), 'verify-ondiff-'));
    const file = join(dir, 'outputs.json');
    writeFileSync(file, JSON.stringify(outputs), { mode: 0o600 });
    global = ['--outputs', file, '--state-dir', join(dir, 'state')];
  });
  after(async () => {
    await pair?.stop();
  });

  const occurrences = (text: string, needle: string) => text.split(needle).length - 1;

  it('stop (the default): exit 1, the differing table and key printed once', async () => {
    const r = await cli([...global, 'verify']);
    assert.equal(r.code, 1, describeResult(r));
    assert.equal(occurrences(r.stdout + r.stderr, 'id=3 (changed)'), 1, describeResult(r));
  });

  it('report: exit 0, the difference printed once as a warning', async () => {
    const r = await cli([...global, 'verify', '-p', 'onDifference=report']);
    assert.equal(r.code, 0, describeResult(r));
    assert.equal(occurrences(r.stdout + r.stderr, 'id=3 (changed)'), 1, describeResult(r));
    assert.match(r.stdout + r.stderr, /onDifference: report, continuing/);
  });
});

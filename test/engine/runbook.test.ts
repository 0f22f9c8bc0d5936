import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { displayParams, loadRunbook, RunbookError } from '../../migrate/core/runbook.ts';
import { fakeKinds, fixtureOutputs, lookupFor, newWorld } from '../support/fake-kinds.ts';

const dir = mkdtempSync(join(tmpdir(), 'runbook-test-'));
const write = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const load = (path: string, configOverrides?: Record<string, unknown>) =>
  loadRunbook(path, { outputs: fixtureOutputs(), configOverrides, ...lookupFor(fakeKinds(newWorld())) });

test('a valid runbook resolves outputs and config references with their types', () => {
  const path = write(
    'ok.yaml',
    `
name: ok
config: { suffix: "-x", n: 3 }
secrets: { token: "env:TOKEN" }
steps:
  - id: one
    uses: test.set
    with: { key: "\${{ outputs.database.endpoint }}\${{ config.suffix }}", value: "v", count: "\${{ config.n }}" }
  - id: two
    uses: test.set
    with: { key: "k2", value: "\${{ secrets.token }}" }
`,
  );
  const runbook = load(path);
  assert.equal(runbook.steps.length, 2);
  assert.deepEqual(displayParams(runbook, runbook.steps[0]!, fixtureOutputs()), { key: 'db.example.com-x', value: 'v', count: 3 });
  assert.deepEqual(displayParams(runbook, runbook.steps[1]!, fixtureOutputs()), { key: 'k2', value: '***' });
});

test('every problem in a runbook is reported at once, naming the file, step and field', () => {
  const path = write(
    'bad.yaml',
    `
name: bad
steps:
  - id: one
    uses: test.nope
  - id: two
    uses: test.set
    with: { key: "\${{ outputs.database.nothere }}", value: "v" }
  - id: three
    uses: test.set
    with: { key: "k", value: "\${{ secrets.undeclared }}" }
  - id: four
    uses: test.set
    with: { key: "\${{ steps.five.key }}", value: 1 }
  - id: five
    uses: test.set
    with: { key: "k", value: "v", extra: true }
  - id: five
    uses: test.set
    with: { key: "k", value: "v" }
`,
  );
  assert.throws(
    () => load(path),
    (error: unknown) => {
      assert.ok(error instanceof RunbookError);
      const text = error.message;
      assert.match(text, /bad\.yaml/);
      assert.match(text, /step 'one' \(#1\): unknown step kind 'test\.nope'/);
      assert.match(text, /step 'two' \(#2\): .*the stack outputs have no 'database\.nothere'/);
      assert.match(text, /step 'three' \(#3\): with\.value: .*no secret 'undeclared'/);
      assert.match(text, /step 'four' \(#4\): with\.key: .*'five' is not an earlier step/);
      assert.match(text, /step 'four' \(#4\): with\.value: .*expected string/);
      assert.match(text, /step 'five' \(#5\): with: .*extra/);
      assert.match(text, /step 'five' \(#6\): duplicate step id/);
      return true;
    },
  );
});

test('--set may only override keys the runbook declares', () => {
  const path = write(
    'cfg.yaml',
    `
name: cfg
config: { a: 1 }
steps: [{ id: s, uses: test.set, with: { key: k, value: v } }]
`,
  );
  assert.throws(() => load(path, { b: 2 }), /--set b: the runbook has no config key 'b'/);
  assert.equal(load(path, { a: 5 }).config.a, 5);
});

test('YAML syntax errors and a wrong top-level shape are errors naming the file', () => {
  assert.throws(() => load(write('syntax.yaml', 'name: [unclosed\n')), /syntax\.yaml: .*YAML/s);
  assert.throws(() => load(write('shape.yaml', 'name: x\nstep: []\n')), /shape\.yaml: .*steps/s);
});

test('`a || b` falls back when a is missing or empty, and only the last alternative must exist', () => {
  const path = write(
    'alt.yaml',
    `
name: alt
config: { empty: "", set: "chosen" }
steps:
  - id: one
    uses: test.set
    with: { key: "\${{ config.empty || outputs.database.endpoint }}", value: "\${{ outputs.nothere || config.set }}" }
`,
  );
  const runbook = load(path);
  assert.deepEqual(displayParams(runbook, runbook.steps[0]!, fixtureOutputs()), { key: 'db.example.com', value: 'chosen' });
  const bad = write(
    'alt-bad.yaml',
    `
name: alt
steps: [{ id: one, uses: test.set, with: { key: "\${{ config.x || outputs.nothere }}", value: v } }]
`,
  );
  assert.throws(() => load(bad), /no 'nothere'/);
});

test('| urlencode percent-encodes a value for use inside a URL; an unknown filter is an error', () => {
  const path = write(
    'enc.yaml',
    `
name: enc
config: { pw: "p@ss/word:1" }
steps: [{ id: one, uses: test.set, with: { key: "postgres://u:\${{ config.pw | urlencode }}@h/db", value: v } }]
`,
  );
  const runbook = load(path);
  assert.equal((displayParams(runbook, runbook.steps[0]!, fixtureOutputs()) as { key: string }).key, 'postgres://u:p%40ss%2Fword%3A1@h/db');
  const bad = write(
    'enc-bad.yaml',
    `
name: enc
steps: [{ id: one, uses: test.set, with: { key: "\${{ outputs.region | shout }}", value: v } }]
`,
  );
  assert.throws(() => load(bad), /unknown filter 'shout'/);
});

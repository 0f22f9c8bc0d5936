/**
 * Every Parameter Store name a shipped runbook touches exists once `pulumi up` has run: the
 * `secrets:` a runbook resolves, the parameters `ssm.swap` rewrites, and the `ssm:` references in
 * the outputs the CLI reads for every PostgreSQL step. Checked against the real program's outputs
 * and the SSM parameters it registers, for both stacks, so a runbook naming a parameter nothing
 * creates fails here instead of at swap-secrets inside the write window.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { type StackOutputs, stackOutputsSchema } from '../../infra/contract.ts';
import { parameterArn } from '../../migrate/aws/arns.ts';
import { cliIamPolicy } from '../../migrate/aws/iam-policy.ts';
import { kindLookup } from '../../migrate/core/environment.ts';
import { displayParams, loadRunbook } from '../../migrate/core/runbook.ts';
import { runStack, type StackRun } from './harness.ts';

const RUNBOOKS = join(import.meta.dirname, '..', '..', 'runbooks');
const files = readdirSync(RUNBOOKS)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

/** Every `…Ref` value anywhere in the outputs. */
function outputRefs(value: unknown, path = ''): [string, string][] {
  if (!value || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, inner]) =>
    key.endsWith('Ref') && typeof inner === 'string' ? [[`${path}${key}`, inner] as [string, string]] : outputRefs(inner, `${path}${key}.`),
  );
}

for (const stack of ['staging', 'prod'] as const) {
  describe(`${stack}: every parameter the runbooks use is created by the stack`, () => {
    let run: StackRun;
    let outputs: StackOutputs;
    let created: Set<string>;
    before(async () => {
      run = await runStack({ stack });
      outputs = stackOutputsSchema.parse(run.outputs);
      created = new Set(run.ofType('aws:ssm/parameter:Parameter').map((p) => p.inputs.name as string));
    });

    it("every name in the contract's parameters block is a created parameter", () => {
      const { prefix, ...names } = outputs.parameters;
      for (const [field, name] of Object.entries(names)) assert.ok(created.has(name), `parameters.${field} = ${name} is not created`);
      assert.ok(prefix);
    });

    it('every ssm: reference in the outputs is a created parameter', () => {
      const refs = outputRefs(outputs).filter(([, ref]) => ref.startsWith('ssm:'));
      assert.ok(refs.length >= 2, 'master password and source URL at least');
      for (const [field, ref] of refs) assert.ok(created.has(ref.slice(4)), `${field} = ${ref} is not created`);
    });

    for (const file of files) {
      it(`${file}: its secrets and the parameters it swaps are created parameters`, () => {
        const runbook = loadRunbook(join(RUNBOOKS, file), { outputs, ...kindLookup('/nonexistent-state') });
        const ssmSecrets = Object.entries(runbook.secrets).filter(([, ref]) => ref.startsWith('ssm:'));
        for (const [name, ref] of ssmSecrets) assert.ok(created.has(ref.slice(4)), `secrets.${name} = ${ref} is not created by the stack`);
        // No ssm: reference hides outside the secrets block (e.g. in a step's with:).
        const mentioned = readFileSync(join(RUNBOOKS, file), 'utf8').match(/["'\s]ssm:/g) ?? [];
        assert.equal(mentioned.length, ssmSecrets.length, `${file}: every ssm: reference is a runbook secret`);
        for (const step of runbook.steps.filter((s) => s.uses === 'ssm.swap')) {
          const { parameters } = displayParams(runbook, step, outputs) as { parameters: { name: string }[] };
          for (const { name } of parameters) assert.ok(created.has(name), `${step.id} swaps ${name}, which the stack does not create`);
        }
      });
    }

    it("the CLI's IAM policy may read every ssm: secret a runbook or the outputs name", () => {
      const policy = cliIamPolicy(outputs);
      const allows = (action: string, arn: string) =>
        policy.Statement.some(
          (st) =>
            st.Action.includes(action) &&
            st.Resource.some((pattern) =>
              new RegExp(
                `^${pattern
                  .split('*')
                  .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
                  .join('.*')}$`,
              ).test(arn),
            ),
        );
      const refs = [
        ...outputRefs(outputs).map(([, ref]) => ref),
        ...files.flatMap((file) =>
          Object.values(loadRunbook(join(RUNBOOKS, file), { outputs, ...kindLookup('/nonexistent-state') }).secrets),
        ),
      ].filter((ref) => ref.startsWith('ssm:'));
      assert.ok(refs.includes(`ssm:${outputs.parameters.appPassword}`));
      for (const ref of refs)
        assert.ok(allows('ssm:GetParameter', parameterArn(outputs, ref.slice(4))), `${ref} is not readable under the CLI policy`);
      assert.ok(allows('kms:Decrypt', outputs.kms.keyArn), 'SecureStrings decrypt with the stack key');
    });

    it('d-day reads the app password from the parameter the contract names', () => {
      const runbook = loadRunbook(join(RUNBOOKS, 'd-day.yaml'), { outputs, ...kindLookup('/nonexistent-state') });
      assert.equal(runbook.secrets.appPassword, `ssm:${outputs.parameters.appPassword}`);
    });
  });
}

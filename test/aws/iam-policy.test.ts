/**
 * The policy covers every AWS call in the CLI source: each `new XxxCommand(` and `paginateXxx(` (service
 * from the file's `@aws-sdk/client-*` import) and each presigned STS `Action: '…'` (the EKS token). A command added
 * without a policy entry fails here, and so does a grant nothing uses.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cliIamPolicy, IAM_PREFIX, IMPLIED_ACTIONS } from '../../migrate/aws/iam-policy.ts';
import { REVERSE_LOAD_BALANCER } from './elbv2-fake.ts';
import { ACCOUNT, awsOutputs, REGION } from './fixtures.ts';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

/** `service:Action` for every AWS request the CLI source can make. */
function actionsInSource(): Map<string, string> {
  const found = new Map<string, string>();
  for (const file of sourceFiles('migrate')) {
    const text = readFileSync(file, 'utf8');
    const imported = new Map<string, string>();
    for (const m of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*'(@aws-sdk\/client-[a-z0-9-]+)'/g)) {
      const prefix = IAM_PREFIX[m[2]!];
      assert.ok(prefix, `${file} imports ${m[2]}, which IAM_PREFIX does not know`);
      for (const name of m[1]!.split(',').map((n) => n.trim().replace(/^type\s+/, ''))) imported.set(name, prefix);
    }
    for (const m of text.matchAll(/new ([A-Z][A-Za-z0-9]*)Command\(/g)) {
      const prefix = imported.get(`${m[1]}Command`);
      assert.ok(prefix, `${file}: new ${m[1]}Command( is not imported from an @aws-sdk client`);
      found.set(`${prefix}:${m[1]}`, file);
    }
    for (const m of text.matchAll(/\bpaginate([A-Z][A-Za-z0-9]*)\(/g)) {
      const prefix = imported.get(`paginate${m[1]}`);
      assert.ok(prefix, `${file}: paginate${m[1]}( is not imported from an @aws-sdk client`);
      found.set(`${prefix}:${m[1]}`, file);
    }
    if (/service:\s*'sts'/.test(text)) for (const m of text.matchAll(/Action:\s*'([A-Za-z]+)'/g)) found.set(`sts:${m[1]}`, file);
  }
  return found;
}

describe('cliIamPolicy', () => {
  // With every optional part a stack can have, so every statement the CLI may need is there.
  const policy = cliIamPolicy(awsOutputs({ reversePath: REVERSE_LOAD_BALANCER }));
  const granted = new Set(policy.Statement.flatMap((s) => s.Action));

  it('grants every AWS action the CLI source sends', () => {
    const used = actionsInSource();
    assert.ok(used.size >= 15, `scanned too few commands (${[...used.keys()].join(', ')})`);
    for (const expected of [
      'rds:CreateDBInstanceReadReplica',
      'rds:DescribeDBInstances',
      'route53:ChangeResourceRecordSets',
      'ssm:LabelParameterVersion',
      'ssm:GetParameterHistory',
      'sqs:ReceiveMessage',
      'sts:GetCallerIdentity',
    ]) {
      assert.ok(used.has(expected), `scanner missed ${expected}`);
    }
    const missing = [...used].filter(([action]) => !granted.has(action)).map(([action, file]) => `${action} (${file})`);
    assert.deepEqual(missing, [], 'add these to migrate/aws/iam-policy.ts');
  });

  it('grants nothing the CLI does not use', () => {
    const used = new Set([...actionsInSource().keys(), ...IMPLIED_ACTIONS]);
    assert.deepEqual(
      [...granted].filter((a) => !used.has(a)),
      [],
    );
  });

  it("scopes writes to the stack's own resources", () => {
    const statement = (sid: string) => policy.Statement.find((s) => s.Sid === sid)!;
    assert.deepEqual(
      statement('DeleteReadReplicas').Resource,
      [
        `arn:aws:rds:${REGION}:${ACCOUNT}:db:billing-production-replica-1`,
        `arn:aws:rds:${REGION}:${ACCOUNT}:db:billing-production-replica-2`,
      ],
      'never the writer',
    );
    assert.deepEqual(statement('StackParameters').Resource, [`arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/billing/production/*`]);
    assert.deepEqual(statement('ChangeMovableRecords').Resource, ['arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ']);
    assert.deepEqual(
      statement('ChangeMovableRecords').Condition!['ForAllValues:StringEquals']!['route53:ChangeResourceRecordSetsNormalizedRecordNames'],
      ['app.billing.example.com', 'webhooks.billing.example.com'],
    );
    assert.deepEqual(statement('WebhookQueues').Resource, [
      `arn:aws:sqs:${REGION}:${ACCOUNT}:billing-production-webhooks`,
      `arn:aws:sqs:${REGION}:${ACCOUNT}:billing-production-webhooks-dlq`,
    ]);
    const wildcards = policy.Statement.filter((s) => s.Resource.includes('*')).map((s) => s.Sid);
    // ELBv2's Describe* calls have no resource-level permissions: target health is read on '*'.
    assert.deepEqual(wildcards, ['EksTokenIdentity', 'ReverseTargetHealth']);
  });

  it('grants GetParameter on secret references outside the parameter prefix', () => {
    const outputs = awsOutputs();
    outputs.source.urlRef = 'ssm:/legacy/database/url';
    const extra = cliIamPolicy(outputs).Statement.find((s) => s.Sid === 'SecretReferences');
    assert.deepEqual(extra?.Resource, [
      `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/billing/production/database/master-password`,
      `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/legacy/database/url`,
    ]);
  });
});

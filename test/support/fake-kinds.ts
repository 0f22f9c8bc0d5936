/**
 * Step kinds for testing the engine on its own: they change an in-memory world, record write-ahead
 * changes, and can be told to fail or hang at a chosen point.
 */
import { z } from 'zod';
import type { StackOutputs } from '../../infra/contract.ts';
import type { KindLookup, LoadOptions } from '../../migrate/core/runbook.ts';
import { defineStep, RollbackRequested, StepError, type StepKind } from '../../migrate/core/step.ts';

export interface World {
  values: Map<string, string>;
  applyCalls: string[];
  undoCalls: string[];
  failOnce: Set<string>;
}

export function newWorld(): World {
  return { values: new Map(), applyCalls: [], undoCalls: [], failOnce: new Set() };
}

export function fakeKinds(world: World): StepKind[] {
  const set = defineStep({
    kind: 'test.set',
    summary: 'set a key in the test world',
    params: z.object({ key: z.string(), value: z.string(), count: z.number().int().optional() }).strict(),
    requires: [],
    destructive: false,
    async probe(_ctx, p) {
      return world.values.get(p.key) === p.value ? { state: 'done', result: { key: p.key } } : { state: 'ready', plan: [`set ${p.key}`] };
    },
    async apply(ctx, p) {
      world.applyCalls.push(ctx.stepId);
      const previous =
        ctx.previousChanges.length > 0
          ? (ctx.previousChanges[0] as { previous: string | null }).previous
          : (world.values.get(p.key) ?? null);
      await ctx.record({ key: p.key, previous });
      if (world.failOnce.delete(ctx.stepId))
        throw new StepError(`${ctx.stepId} failed on purpose`, [
          { severity: 'error', object: `key ${p.key}`, message: 'injected', fix: 'resume' },
        ]);
      world.values.set(p.key, p.value);
      if (world.failOnce.delete(`rollback:${ctx.stepId}`))
        throw new RollbackRequested(`${ctx.stepId} asks for a rollback`, [
          { severity: 'error', object: `key ${p.key}`, message: 'differs' },
        ]);
      return { key: p.key, length: p.value.length };
    },
    async check(_ctx, p) {
      if (world.values.get(p.key) !== p.value) return [{ severity: 'error', object: `key ${p.key}`, message: 'not set' }];
    },
    async undo(_ctx, p, changes) {
      if (world.failOnce.delete(`undo:${p.key}`)) throw new Error(`undo of ${p.key} failed on purpose`);
      world.undoCalls.push(p.key);
      const first = changes[0] as { previous: string | null } | undefined;
      if (first?.previous === null || first === undefined) world.values.delete(p.key);
      else world.values.set(p.key, first.previous);
    },
  });
  const needsAws = defineStep({
    kind: 'test.aws',
    summary: 'pretends to call AWS',
    params: z.object({}).strict(),
    requires: ['aws'],
    destructive: false,
    async probe() {
      return { state: 'ready' };
    },
    async apply() {
      world.applyCalls.push('aws');
      return null;
    },
    async check() {},
  });
  const guarded = defineStep({
    kind: 'test.guarded',
    summary: 'blocked unless the world has key ok',
    params: z.object({}).strict(),
    requires: [],
    destructive: true,
    async probe() {
      return world.values.has('ok')
        ? { state: 'ready' }
        : {
            state: 'blocked',
            findings: [
              { severity: 'error', object: 'key ok', message: 'missing', fix: 'set it' },
              { severity: 'error', object: 'key other', message: 'also missing' },
            ],
          };
    },
    async apply() {
      world.applyCalls.push('guarded');
      return null;
    },
    async check() {},
  });
  const afterSet = defineStep({
    kind: 'test.after-set',
    summary: 'needs key x, which a test.set step before it makes',
    params: z.object({}).strict(),
    requires: [],
    destructive: false,
    async probe() {
      return world.values.has('x')
        ? { state: 'ready' }
        : {
            state: 'blocked',
            findings: [{ severity: 'error', object: 'key x', message: 'missing', fix: 'set it first', awaitsEarlierStep: true }],
          };
    },
    async apply() {
      world.applyCalls.push('after-set');
      return null;
    },
    async check() {},
  });
  return [set, needsAws, guarded, afterSet];
}

export function lookupFor(kinds: StepKind[], extra: KindLookup = () => undefined): Pick<LoadOptions, 'kinds' | 'knownKinds'> {
  const map = new Map(kinds.map((k) => [k.kind, k]));
  return { kinds: (name) => map.get(name) ?? extra(name), knownKinds: () => [...map.keys()] };
}

export function fixtureOutputs(overrides: Partial<StackOutputs> = {}): StackOutputs {
  const record = (name: string) => ({
    name,
    type: 'CNAME' as const,
    ttl: 300,
    cutoverTtl: 60,
    legacy: { values: ['legacy.example.net'] },
    cutover: { values: ['new.example.net'] },
    cutoverType: 'CNAME' as const,
  });
  return {
    project: 'cutover',
    environment: 'test',
    region: 'eu-west-1',
    tags: { environment: 'test', project: 'cutover', 'managed-by': 'pulumi' },
    network: {
      vpcId: 'vpc-1',
      vpcCidr: '10.0.0.0/16',
      vpcIpv6Cidr: '2001:db8::/56',
      availabilityZones: ['eu-west-1a'],
      publicSubnetIds: ['subnet-a'],
      privateSubnetIds: ['subnet-b'],
      databaseSubnetIds: ['subnet-c'],
      natPublicIps: [],
    },
    cluster: {
      name: 'c',
      kubeconfig: 'apiVersion: v1\nkind: Config\n# kubeconfig-secret-token\n',
      nodeSecurityGroupId: 'sg-1',
      oidcProviderArn: 'arn:aws:iam::1:oidc-provider/x',
    },
    kms: { keyArn: 'arn:aws:kms:eu-west-1:1:key/k' },
    database: {
      identifier: 'db',
      arn: 'arn:aws:rds:eu-west-1:1:db:db',
      endpoint: 'db.example.com',
      port: 5432,
      name: 'app',
      masterUsername: 'master',
      masterPasswordRef: 'env:TEST_MASTER_PASSWORD',
      sslMode: 'require',
      engineVersion: '16.4',
      instanceClass: 'db.r6g.large',
      parameterGroupName: 'pg',
      subnetGroupName: 'sn',
      securityGroupId: 'sg-2',
      replicas: [],
    },
    source: { urlRef: 'env:TEST_SOURCE_URL' },
    parameters: {
      prefix: '/c/test',
      writerUrl: '/c/test/writer',
      readerUrls: '/c/test/readers',
      sourceUrl: '/c/test/source',
      masterPassword: '/c/test/master',
      appPassword: '/c/test/database/app-password',
    },
    dns: {
      hostedZoneId: 'Z1',
      zoneName: 'example.com',
      privateZone: false,
      records: { app: record('app.example.com'), webhooks: record('hooks.example.com') },
    },
    pgbouncer: { namespace: 'pgbouncer', deployment: 'pgbouncer', service: 'pgbouncer', port: 6432 },
    app: { namespaces: ['app'] },
    ...overrides,
  };
}

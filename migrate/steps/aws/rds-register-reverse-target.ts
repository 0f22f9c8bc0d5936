/**
 * rds.register-reverse-target: puts RDS's current private address in the reverse path's target
 * group (outputs.reversePath.targetGroupArn, via load-balancer only), so the legacy server's reverse
 * subscription, dialling the load balancer, reaches RDS. The stack cannot pin the address: RDS
 * moves on failover and reboot, so this runs right before the reverse replication needs the path
 * (and again after any failover). It registers the address outputs.database.endpoint resolves to
 * now, deregisters any other (an old address would be a dead or, worse, reused target), and waits
 * until the load balancer's health checks pass.
 *
 * Each registration and deregistration is journalled before it is made; undo deregisters what this
 * run registered (closing the path again) and leaves what was there before the run.
 */
import { z } from 'zod';
import {
  assessRegistration,
  deregisterTarget,
  describeTarget,
  describeTargets,
  type Registration,
  registerTarget,
} from '../../aws/elbv2.ts';
import { blockedBy, blocks, defineStep, type Finding, type Json, type StepContext, StepError, unable } from '../../core/step.ts';
import { deadlineIn, waitFor } from '../../core/wait.ts';

const params = z
  .object({
    /** How long the load balancer's health checks may take to pass. */
    deadlineMinutes: z.number().positive().default(10),
    pollSeconds: z.number().positive().default(10),
  })
  .strict();
type Params = z.infer<typeof params>;
type Result = { targetGroupArn: string; addresses: string[]; port: number };

interface TargetChange {
  action: 'register-target' | 'deregister-target';
  targetGroupArn: string;
  ip: string;
  port: number;
  [key: string]: Json;
}

type Assessment = { skip: string } | { findings: Finding[]; registration?: Registration };

async function assess(ctx: StepContext): Promise<Assessment> {
  const path = ctx.outputs.reversePath;
  if (!path) return { skip: 'the stack has no reverse path (outputs.reversePath): nothing to register' };
  if (path.via !== 'load-balancer')
    return { skip: `the reverse path is ${path.via}: the legacy server reaches RDS without a load balancer, nothing to register` };
  const registration = await assessRegistration(ctx, path);
  return 'current' in registration ? { findings: [], registration } : { findings: registration.findings };
}

const isDone = (r: Registration) => r.missing.length === 0 && r.stale.length === 0 && r.notHealthy.length === 0;
const resultOf = (r: Registration): Result => ({ targetGroupArn: r.targetGroupArn, addresses: r.current, port: r.port });
const groupName = (arn: string) => `target group ${arn.split(':').pop()}`;

function plan(r: Registration, p: Params): string[] {
  return [
    ...r.missing.map((ip) => `elasticloadbalancing:RegisterTargets ${ip}:${r.port} (RDS's current address) on ${r.targetGroupArn}`),
    ...r.stale.map((t) => `elasticloadbalancing:DeregisterTargets ${t.ip}:${t.port} (not RDS's address any more) on ${r.targetGroupArn}`),
    `wait up to ${p.deadlineMinutes} minutes for ${r.current.map((ip) => `${ip}:${r.port}`).join(', ')} to be healthy`,
  ];
}

async function waitHealthy(ctx: StepContext, p: Params, r: Registration): Promise<void> {
  const wanted = r.current;
  await waitFor(ctx, {
    label: 'waiting for the load balancer to find RDS healthy',
    deadline: deadlineIn(ctx, p.deadlineMinutes),
    intervalMs: p.pollSeconds * 1000,
    poll: async () => {
      const targets = await describeTargets(ctx, r.targetGroupArn);
      const ours = wanted.map((ip) => targets.find((t) => t.ip === ip && t.port === r.port));
      const healthy = ours.filter((t) => t?.state === 'healthy').length;
      if (healthy === wanted.length) return { ready: true, value: undefined };
      const detail = wanted.map((ip, i) => (ours[i] ? describeTarget(ours[i]!) : `${ip}:${r.port} not registered`)).join(', ');
      return { ready: false, detail, done: healthy, total: wanted.length };
    },
    timedOut: ({ detail }) =>
      new StepError(`RDS is not healthy in the reverse path's target group after ${p.deadlineMinutes} minutes (${detail})`, [
        {
          severity: 'error',
          object: groupName(r.targetGroupArn),
          message: `the load balancer's health checks to ${wanted.map((ip) => `${ip}:${r.port}`).join(', ')} do not pass: ${detail}`,
          fix: "check RDS's security group admits the load balancer's group on the database port and the load balancer's group may send there (pulumi up with cutover:reversePath.enabled), then resume the run",
        },
      ]),
  });
}

function recorded(changes: readonly Json[]): TargetChange[] {
  return (changes as readonly Partial<TargetChange>[]).filter(
    (c): c is TargetChange => c?.action === 'register-target' && typeof c.ip === 'string' && typeof c.targetGroupArn === 'string',
  );
}

export const rdsRegisterReverseTarget = defineStep<Params, Result>({
  kind: 'rds.register-reverse-target',
  summary: "Register RDS's current address in the reverse path's load balancer target group, deregister any other, wait until healthy",
  params,
  requires: ['aws'],
  destructive: false,

  async probe(ctx, p) {
    const a = await assess(ctx);
    if ('skip' in a) return { state: 'done', skip: a.skip };
    if (blocks(a.findings) || !a.registration) return { state: 'blocked', findings: a.findings };
    const r = a.registration;
    if (isDone(r)) return { state: 'done', result: resultOf(r) };
    return { state: 'ready', plan: plan(r, p) };
  },

  async apply(ctx, p) {
    try {
      const a = await assess(ctx);
      if ('skip' in a) throw new StepError(a.skip);
      if (blocks(a.findings) || !a.registration) throw blockedBy(a.findings);
      const r = a.registration;
      for (const ip of r.missing) {
        await ctx.record({ action: 'register-target', targetGroupArn: r.targetGroupArn, ip, port: r.port } satisfies TargetChange);
        await registerTarget(ctx, r.targetGroupArn, ip, r.port);
        ctx.log.info(`registered RDS's current address ${ip}:${r.port} in ${groupName(r.targetGroupArn)}`);
      }
      for (const t of r.stale) {
        await ctx.record({ action: 'deregister-target', targetGroupArn: r.targetGroupArn, ip: t.ip, port: t.port } satisfies TargetChange);
        await deregisterTarget(ctx, r.targetGroupArn, t.ip, t.port);
        ctx.log.info(`deregistered ${describeTarget(t)}: not RDS's address any more`);
      }
      await waitHealthy(ctx, p, r);
      return resultOf(r);
    } catch (error) {
      throw unable("register RDS's current address in the reverse path's target group", error);
    }
  },

  async check(ctx) {
    const a = await assess(ctx);
    if ('skip' in a) return [];
    if (!a.registration) return a.findings.filter((f) => f.severity === 'error');
    const r = a.registration;
    return [...r.missing.map((ip) => `${ip}:${r.port} not registered`), ...r.notHealthy.map(describeTarget)].map((message) => ({
      severity: 'error' as const,
      object: groupName(r.targetGroupArn),
      message: `RDS's current address is not registered and healthy: ${message}`,
    }));
  },

  async undo(ctx, _p, changes) {
    const registered = recorded(changes);
    if (registered.length === 0) return;
    try {
      // What is still there, so a second undo (or a target someone already removed) changes nothing.
      const byGroup = new Map<string, Awaited<ReturnType<typeof describeTargets>>>();
      for (const change of registered) {
        if (!byGroup.has(change.targetGroupArn)) byGroup.set(change.targetGroupArn, await describeTargets(ctx, change.targetGroupArn));
        const present = byGroup
          .get(change.targetGroupArn)!
          .some((t) => t.ip === change.ip && t.port === change.port && t.state !== 'draining' && t.state !== 'unhealthy.draining');
        if (!present) continue;
        await deregisterTarget(ctx, change.targetGroupArn, change.ip, change.port);
        ctx.log.info(`deregistered ${change.ip}:${change.port} from ${groupName(change.targetGroupArn)} (registered by this run)`);
      }
    } catch (error) {
      throw unable(`deregister the addresses this run registered (${registered.map((c) => c.ip).join(', ')})`, error);
    }
  },
});

/**
 * The reverse path's target group (outputs.reversePath.targetGroupArn, via load-balancer): which
 * addresses it holds and how healthy they are, against where RDS's endpoint points now. RDS's
 * private address changes on failover and reboot, so the stack leaves the group empty and the CLI
 * keeps it on the current address (rds.register-reverse-target); postgres.reverse-reach checks it.
 *
 * The endpoint is resolved through the ordinary resolver (RDS endpoints resolve in public DNS to the
 * private address), injectable under REVERSE_TARGET_DNS_RESOURCE so tests can answer for it.
 */
import { promises as dns } from 'node:dns';
import {
  DeregisterTargetsCommand,
  DescribeTargetHealthCommand,
  RegisterTargetsCommand,
  type TargetHealthDescription,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import type { StackOutputs } from '../../infra/contract.ts';
import type { Finding, StepContext } from '../core/step.ts';
import { callAws, isAwsError } from './call.ts';
import { awsClient } from './clients.ts';

export const REVERSE_TARGET_DNS_RESOURCE = 'dns:reverse-target';

/** IPv4 addresses a name resolves to now; throws with the resolver's code when it cannot. */
export type Resolve4 = (name: string) => Promise<string[]>;

export const systemResolve4: Resolve4 = (name) => dns.resolve4(name);

function resolver(ctx: Pick<StepContext, 'resource'>): Promise<Resolve4> {
  return ctx.resource(REVERSE_TARGET_DNS_RESOURCE, () => systemResolve4);
}

export interface Target {
  ip: string;
  port: number;
  /** initial, healthy, unhealthy, unused, draining, unavailable, unhealthy.draining */
  state: string;
  reason: string | null;
  description: string | null;
}

function toTarget(d: TargetHealthDescription): Target {
  return {
    ip: d.Target?.Id ?? '',
    port: d.Target?.Port ?? 0,
    state: d.TargetHealth?.State ?? 'unknown',
    reason: d.TargetHealth?.Reason ?? null,
    description: d.TargetHealth?.Description ?? null,
  };
}

const isDraining = (t: Target) => t.state === 'draining' || t.state === 'unhealthy.draining';

export async function describeTargets(ctx: StepContext, targetGroupArn: string): Promise<Target[]> {
  const elb = await awsClient(ctx, 'elbv2');
  const out = await callAws('elasticloadbalancing:DescribeTargetHealth', targetGroupArn, () =>
    elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: targetGroupArn })),
  );
  return (out.TargetHealthDescriptions ?? []).map(toTarget);
}

export async function registerTarget(ctx: StepContext, targetGroupArn: string, ip: string, port: number): Promise<void> {
  const elb = await awsClient(ctx, 'elbv2');
  await callAws('elasticloadbalancing:RegisterTargets', targetGroupArn, () =>
    elb.send(new RegisterTargetsCommand({ TargetGroupArn: targetGroupArn, Targets: [{ Id: ip, Port: port }] })),
  );
}

export async function deregisterTarget(ctx: StepContext, targetGroupArn: string, ip: string, port: number): Promise<void> {
  const elb = await awsClient(ctx, 'elbv2');
  await callAws('elasticloadbalancing:DeregisterTargets', targetGroupArn, () =>
    elb.send(new DeregisterTargetsCommand({ TargetGroupArn: targetGroupArn, Targets: [{ Id: ip, Port: port }] })),
  );
}

export function isTargetGroupNotFound(error: unknown): boolean {
  return isAwsError(error, 'TargetGroupNotFound', 'TargetGroupNotFoundException');
}

export interface Registration {
  targetGroupArn: string;
  port: number;
  /** Where outputs.database.endpoint points now. */
  current: string[];
  targets: Target[];
  /** Current addresses not registered (or only draining). */
  missing: string[];
  /** Registered targets that are not a current address on the database port: RDS moved away from them. */
  stale: Target[];
  /** Current addresses registered but not (yet) healthy. */
  notHealthy: Target[];
  findings: Finding[];
}

const targetObject = (arn: string) => `target group ${arn.split(':').pop()}`;

/**
 * The target group against RDS's current address. Errors only for what stops the check itself (no
 * target group, an endpoint that does not resolve); what is registered is for the caller to judge.
 */
export async function assessRegistration(
  ctx: StepContext,
  path: NonNullable<StackOutputs['reversePath']>,
): Promise<Registration | { findings: Finding[] }> {
  const { endpoint, port } = ctx.outputs.database;
  if (!path.targetGroupArn) {
    return {
      findings: [
        {
          severity: 'error',
          object: 'outputs.reversePath.targetGroupArn',
          message: 'the reverse path is a load balancer but the stack outputs no target group',
          fix: 'run pulumi up with the current infra (cutover:reversePath.enabled: true) and read the outputs again',
        },
      ],
    };
  }
  const targetGroupArn = path.targetGroupArn;
  let current: string[];
  try {
    current = [...new Set(await (await resolver(ctx))(endpoint))].sort();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    return {
      findings: [
        {
          severity: 'error',
          object: `endpoint ${endpoint}`,
          message: `does not resolve to an IPv4 address from this machine (${code})`,
          fix: "check outputs.database.endpoint and this machine's DNS resolver (RDS endpoints resolve in public DNS to their private address)",
        },
      ],
    };
  }
  let targets: Target[];
  try {
    targets = await describeTargets(ctx, targetGroupArn);
  } catch (error) {
    if (!isTargetGroupNotFound(error)) throw error;
    return {
      findings: [
        {
          severity: 'error',
          object: targetObject(targetGroupArn),
          message: 'does not exist (outputs.reversePath.targetGroupArn)',
          fix: 'run pulumi up with cutover:reversePath.enabled: true, then read the stack outputs again',
        },
      ],
    };
  }
  const live = targets.filter((t) => !isDraining(t));
  const isCurrent = (t: Target) => current.includes(t.ip) && t.port === port;
  return {
    targetGroupArn,
    port,
    current,
    targets,
    missing: current.filter((ip) => !live.some((t) => t.ip === ip && t.port === port)),
    stale: live.filter((t) => !isCurrent(t)),
    notHealthy: live.filter((t) => isCurrent(t) && t.state !== 'healthy'),
    findings: [],
  };
}

export const describeTarget = (t: Target) =>
  `${t.ip}:${t.port} ${t.state}${t.reason ? ` (${t.reason}${t.description ? `: ${t.description}` : ''})` : ''}`;

/** What postgres.reverse-reach reports: the group must hold exactly RDS's current address, healthy. */
export function registrationFindings(r: Registration): Finding[] {
  const object = targetObject(r.targetGroupArn);
  const findings: Finding[] = [];
  const run = 'run the rds.register-reverse-target step (it registers the current address, deregisters the others and waits until healthy)';
  if (r.missing.length > 0)
    findings.push({
      severity: 'error',
      object,
      message: `RDS's current address ${r.missing.map((ip) => `${ip}:${r.port}`).join(', ')} is not registered (registered: ${r.targets.map(describeTarget).join(', ') || 'nothing'}), so the load balancer cannot forward the reverse subscription to RDS`,
      fix: run,
    });
  for (const t of r.notHealthy)
    findings.push({
      severity: 'error',
      object,
      message: `RDS's current address is registered but not healthy: ${describeTarget(t)}`,
      fix: `${t.state === 'initial' ? 'wait for the health checks, or ' : ''}${run}; an unhealthy target means the load balancer cannot reach RDS on port ${r.port}: check RDS's security group admits the load balancer's group (pulumi up)`,
    });
  for (const t of r.stale)
    findings.push({
      severity: 'warning',
      object,
      message: `${describeTarget(t)} is registered but is not RDS's current address (RDS moved: failover or reboot)`,
      fix: run,
    });
  if (findings.length === 0)
    findings.push({
      severity: 'info',
      object,
      message: `RDS's current address ${r.current.map((ip) => `${ip}:${r.port}`).join(', ')} is registered and healthy`,
    });
  return findings;
}

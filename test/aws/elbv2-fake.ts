/**
 * A small in-memory ELBv2 target group behind aws-sdk-client-mock: RegisterTargets adds a target in
 * `initial` that turns `healthy` (or `unhealthy`, to model a blocked path) after a number of
 * DescribeTargetHealth calls; DeregisterTargets puts it in `draining`, which the next Describe
 * still shows and the one after no longer lists. Registering an existing target again changes nothing, as in AWS. Unknown target groups
 * answer TargetGroupNotFound.
 */
import {
  DeregisterTargetsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  RegisterTargetsCommand,
  TargetGroupNotFoundException,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { mockClient } from 'aws-sdk-client-mock';
import type { StackOutputs } from '../../infra/contract.ts';
import { ACCOUNT, awsOutputs, REGION } from './fixtures.ts';

export const TARGET_GROUP_ARN = `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:targetgroup/billing-reverse/0a1b2c3d4e5f6071`;

/** The reverse path a stack reaching its source through NAT outputs: an NLB in front of RDS. */
export const REVERSE_LOAD_BALANCER: NonNullable<StackOutputs['reversePath']> = {
  via: 'load-balancer',
  host: awsOutputs().database.endpoint,
  hostaddr: '192.0.2.10',
  port: 5432,
  sslMode: 'verify-full',
  targetGroupArn: TARGET_GROUP_ARN,
};

export interface FakeTarget {
  ip: string;
  port: number;
  state: 'initial' | 'healthy' | 'unhealthy' | 'draining';
  /** Describes left before the state moves on (initial → healthy/unhealthy, draining → gone). */
  describesLeft: number;
}

export function fakeElbv2(targetGroupArn: string, options: { describesUntilHealthy?: number; becomes?: 'healthy' | 'unhealthy' } = {}) {
  const mock = mockClient(ElasticLoadBalancingV2Client);
  const targets: FakeTarget[] = [];
  const key = (t: { ip: string; port: number }) => `${t.ip}:${t.port}`;
  const known = (arn: string | undefined) => {
    if (arn !== targetGroupArn) throw new TargetGroupNotFoundException({ message: `Target groups '${arn}' not found`, $metadata: {} });
  };

  const add = (ip: string, port: number, state: FakeTarget['state'] = 'healthy', describesLeft = 0) => {
    targets.push({ ip, port, state, describesLeft });
  };

  const advance = () => {
    for (const t of [...targets]) {
      if (t.describesLeft > 0) {
        t.describesLeft -= 1;
        continue;
      }
      if (t.state === 'initial') t.state = options.becomes ?? 'healthy';
      else if (t.state === 'draining') targets.splice(targets.indexOf(t), 1);
    }
  };

  mock.on(DescribeTargetHealthCommand).callsFake(async (input) => {
    known(input.TargetGroupArn);
    advance();
    return {
      TargetHealthDescriptions: targets.map((t) => ({
        Target: { Id: t.ip, Port: t.port },
        HealthCheckPort: String(t.port),
        TargetHealth: {
          State: t.state,
          ...(t.state === 'initial' ? { Reason: 'Elb.RegistrationInProgress', Description: 'Target registration is in progress' } : {}),
          ...(t.state === 'unhealthy' ? { Reason: 'Target.FailedHealthChecks', Description: 'Health checks failed' } : {}),
          ...(t.state === 'draining'
            ? { Reason: 'Target.DeregistrationInProgress', Description: 'Target deregistration is in progress' }
            : {}),
        },
      })),
    };
  });

  mock.on(RegisterTargetsCommand).callsFake(async (input) => {
    known(input.TargetGroupArn);
    for (const target of input.Targets ?? []) {
      const wanted = { ip: target.Id!, port: target.Port! };
      const existing = targets.find((t) => key(t) === key(wanted));
      if (existing && existing.state !== 'draining') continue;
      if (existing) targets.splice(targets.indexOf(existing), 1);
      add(wanted.ip, wanted.port, 'initial', options.describesUntilHealthy ?? 2);
    }
    return {};
  });

  mock.on(DeregisterTargetsCommand).callsFake(async (input) => {
    known(input.TargetGroupArn);
    for (const target of input.Targets ?? []) {
      const existing = targets.find((t) => key(t) === key({ ip: target.Id!, port: target.Port! }));
      if (existing && existing.state !== 'draining') {
        existing.state = 'draining';
        existing.describesLeft = 0;
      }
    }
    return {};
  });

  /** `ip:port state` of every target, sorted: the end state tests assert. */
  const state = () => targets.map((t) => `${key(t)} ${t.state}`).sort();
  return { mock, targets, add, state };
}

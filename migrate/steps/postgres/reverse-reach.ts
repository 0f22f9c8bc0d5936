/**
 * postgres.reverse-reach: go/no-go for the reverse replication. After the switch the legacy server
 * subscribes to RDS, over outputs.reversePath; this machine reaching RDS proves nothing about that
 * path, so the legacy server itself tries the connection its reverse subscription will open (as
 * the master user, through the load balancer's static address when there is one) and nothing is
 * left behind (subscription-reach.ts). Over a load balancer, the target group must also hold RDS's
 * current address, healthy. Read-only: 'done' when the path works, 'blocked' with the cause and its
 * fix otherwise; nothing to undo.
 *
 * Requires only postgres: the target-group check calls AWS only when the stack's reverse path is a
 * load balancer, which only a real stack (with AWS) has; the rehearsal's path is local.
 */
import { z } from 'zod';
import { assessRegistration, registrationFindings } from '../../aws/elbv2.ts';
import { redact } from '../../core/secret.ts';
import { blockedBy, blocks, defineStep, type Finding, type StepContext, StepError } from '../../core/step.ts';
import { pool } from '../../postgres/connections.ts';
import { REVERSE, reverseReachFindings } from '../../postgres/subscription-reach.ts';

const params = z
  .object({
    /** The RDS CA bundle's path ON THE LEGACY SERVER (libpq sslrootcert), for verify-full. */
    // An empty string is a runbook's "none" (config values cannot be absent).
    sslRootCert: z.preprocess(
      (v) => (v === '' ? undefined : v),
      z.string().startsWith('/', 'must be an absolute path on the legacy server').optional(),
    ),
    /** How long the legacy server may take to connect before the path counts as blocked. */
    timeoutSeconds: z.number().positive().default(20),
  })
  .strict();
type Params = z.infer<typeof params>;
type Result = { via: string; dialled: string; targetsChecked: boolean };

const order = { error: 0, warning: 1, info: 2 } as const;

async function connectionFindings(ctx: StepContext, p: Params): Promise<Finding[]> {
  const path = ctx.outputs.reversePath!;
  let source: Awaited<ReturnType<typeof pool>>;
  try {
    source = await pool(ctx, 'source');
  } catch (error) {
    return [
      {
        severity: 'error',
        object: 'source connection',
        message: `cannot connect to the legacy server to run the check from there: ${redact((error as Error).message)}`,
        fix: 'check outputs.source.urlRef (host, port, credentials) and that this machine can reach the source',
      },
    ];
  }
  const password = await ctx.secret(ctx.outputs.database.masterPasswordRef);
  return reverseReachFindings(source, {
    path,
    database: ctx.outputs.database,
    password: password.reveal(),
    sslRootCert: p.sslRootCert,
    timeoutSeconds: p.timeoutSeconds,
  });
}

async function targetFindings(ctx: StepContext): Promise<Finding[]> {
  try {
    const registration = await assessRegistration(ctx, ctx.outputs.reversePath!);
    return 'current' in registration ? registrationFindings(registration) : registration.findings;
  } catch (error) {
    if (error instanceof StepError && error.findings.length > 0) return error.findings;
    return [
      {
        severity: 'error',
        object: `target group ${ctx.outputs.reversePath!.targetGroupArn ?? '(none)'}`,
        message: `could not be checked: ${redact((error as Error).message)}`,
        fix: 'check the AWS credentials and region this machine uses, then run the step again',
      },
    ];
  }
}

async function assess(ctx: StepContext, p: Params): Promise<{ findings: Finding[]; result?: Result }> {
  const path = ctx.outputs.reversePath;
  if (!path) {
    return {
      findings: [
        {
          severity: 'error',
          object: 'outputs.reversePath',
          message: 'the stack has no reverse path: the legacy server has no way to reach RDS, so reverse replication cannot start',
          fix: 'set cutover:reversePath: { enabled: true } in Pulumi.<stack>.yaml and pulumi up (over NAT it builds an allow-listed load balancer; then run rds.register-reverse-target), and read the outputs again',
        },
      ],
    };
  }
  const checks = [connectionFindings(ctx, p), ...(path.via === 'load-balancer' ? [targetFindings(ctx)] : [])];
  const findings = (await Promise.all(checks)).flat().sort((a, b) => order[a.severity] - order[b.severity]);
  const dialled = `${path.hostaddr ? `${path.hostaddr} (${path.host})` : path.host}:${path.port}`;
  return { findings, result: { via: path.via, dialled, targetsChecked: path.via === 'load-balancer' } };
}

export const reverseReach = defineStep<Params, Result>({
  kind: 'postgres.reverse-reach',
  summary: 'Go/no-go: the legacy server opens the connection its reverse subscription will open to RDS (outputs.reversePath)',
  params,
  requires: ['postgres'],
  destructive: false,

  async probe(ctx, p) {
    const { findings, result } = await assess(ctx, p);
    if (blocks(findings) || !result) return { state: 'blocked', findings };
    return { state: 'done', findings, result };
  },

  // probe decides; apply is reached only when the engine is told to run it anyway, and checks again.
  async apply(ctx, p) {
    const { findings, result } = await assess(ctx, p);
    if (blocks(findings) || !result) throw blockedBy(findings, `the legacy server cannot reach the target (${REVERSE})`);
    return result;
  },

  async check() {
    return [];
  },
});

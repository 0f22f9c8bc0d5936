/** AWS: RDS read replicas, Parameter Store swap, Route53 TTL and switch. */
import type { StepKind } from '../../core/step.ts';
import { dnsSetTtl } from './dns-set-ttl.ts';
import { dnsSwitch } from './dns-switch.ts';
import { rdsCreateReplicas } from './rds-create-replicas.ts';
import { rdsRegisterReverseTarget } from './rds-register-reverse-target.ts';
import { ssmSwap } from './ssm-swap.ts';

export const awsSteps: StepKind[] = [rdsCreateReplicas, ssmSwap, dnsSetTtl, dnsSwitch, rdsRegisterReverseTarget];

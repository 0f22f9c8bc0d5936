/** AWS: RDS read replicas, Parameter Store swap, Route53 */
import type { StepKind } from '../../core/step.ts';

export const awsSteps: StepKind[] = [];

/** Every step kind a runbook can `use`, by name. */
import { awsSteps } from '../steps/aws/index.ts';
import { forecastSteps } from '../steps/forecast/index.ts';
import { kubeSteps } from '../steps/kube/index.ts';
import { pgbouncerSteps } from '../steps/pgbouncer/index.ts';
import { postgresSteps } from '../steps/postgres/index.ts';
import { verifySteps } from '../steps/postgres/verify.ts';
import { sourceSteps } from '../steps/source/index.ts';
import { webhookSteps } from '../steps/webhooks/index.ts';
import type { StepKind } from './step.ts';

const all: StepKind[] = [
  ...postgresSteps,
  ...verifySteps,
  ...sourceSteps,
  ...kubeSteps,
  ...pgbouncerSteps,
  ...awsSteps,
  ...webhookSteps,
  ...forecastSteps,
];

export const stepKinds: ReadonlyMap<string, StepKind> = new Map(all.map((kind) => [kind.kind, kind]));

export function findStepKind(name: string): StepKind | undefined {
  return stepKinds.get(name);
}

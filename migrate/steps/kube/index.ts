/** Kubernetes: scale the app to zero and back, restart a deployment. */
import type { StepKind } from '../../core/step.ts';
import { kubeRestart } from './restart.ts';
import { kubeRestore } from './restore.ts';
import { kubeScale } from './scale.ts';

export const kubeSteps: StepKind[] = [kubeScale, kubeRestore, kubeRestart];

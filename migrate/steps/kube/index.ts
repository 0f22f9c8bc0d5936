/** Kubernetes: scale, restore, restart */
import type { StepKind } from '../../core/step.ts';

export const kubeSteps: StepKind[] = [];

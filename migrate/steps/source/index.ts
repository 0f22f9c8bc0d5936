/** Legacy services: stop/start hooks */
import type { StepKind } from '../../core/step.ts';

export const sourceSteps: StepKind[] = [];

/** Legacy services: the stop hook (with its own undo). */
import type { StepKind } from '../../core/step.ts';
import { sourceStop } from './stop.ts';

export const sourceSteps: StepKind[] = [sourceStop];

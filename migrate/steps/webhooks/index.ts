/** Webhook recorder: redirect, restore, replay */
import type { StepKind } from '../../core/step.ts';

export const webhookSteps: StepKind[] = [];

/** Webhook recorder: redirect, restore, replay */
import type { StepKind } from '../../core/step.ts';
import { replayWebhooks } from './replay.ts';

export const webhookSteps: StepKind[] = [replayWebhooks];

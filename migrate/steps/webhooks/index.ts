/** Webhook recorder: redirect, restore, replay */
import type { StepKind } from '../../core/step.ts';
import { redirectWebhooks } from './redirect.ts';
import { replayWebhooks } from './replay.ts';
import { restoreWebhooks } from './restore.ts';

export const webhookSteps: StepKind[] = [redirectWebhooks, restoreWebhooks, replayWebhooks];

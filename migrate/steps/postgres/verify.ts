/** PostgreSQL: row-count and checksum comparison */
import type { StepKind } from '../../core/step.ts';

export const verifySteps: StepKind[] = [];

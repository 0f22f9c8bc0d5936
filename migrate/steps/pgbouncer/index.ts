/** PgBouncer admin console: pause, resume, reload */
import type { StepKind } from '../../core/step.ts';

export const pgbouncerSteps: StepKind[] = [];

/** PostgreSQL: preflight, schema, replication, freeze, catch-up, sequences */
import type { StepKind } from '../../core/step.ts';

export const postgresSteps: StepKind[] = [];

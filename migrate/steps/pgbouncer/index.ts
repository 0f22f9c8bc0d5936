/** PgBouncer admin console: pause, resume, reload (with a backend switch), check the backend. */
import type { StepKind } from '../../core/step.ts';
import { pgbouncerCheckBackend } from './check-backend.ts';
import { pgbouncerPause } from './pause.ts';
import { pgbouncerReload } from './reload.ts';
import { pgbouncerResume } from './resume.ts';

export const pgbouncerSteps: StepKind[] = [pgbouncerPause, pgbouncerResume, pgbouncerReload, pgbouncerCheckBackend];

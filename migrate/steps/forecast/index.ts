/** Forecasts: read-only go/no-go steps that predict the D-day windows before anything changes. */
import type { StepKind } from '../../core/step.ts';
import { forecastWindowKind } from './window.ts';

/** Without the engine's state dir: follows only a `journal:` given in the runbook (core/environment.ts gives it the state dir). */
export const forecastSteps: StepKind[] = [forecastWindowKind()];

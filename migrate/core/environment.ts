/**
 * What loading a runbook needs outside the CLI too (the rehearsal uses it): the step kinds, including
 * the built-in run.undo, and `--set key=value` overrides.
 */

import { FORECAST_WINDOW, forecastWindowKind } from '../steps/forecast/window.ts';
import { UsageError } from './engine.ts';
import { stepKinds } from './registry.ts';
import type { KindLookup } from './runbook.ts';
import type { StepKind } from './step.ts';
import { undoStepKind } from './undo.ts';

export function kindLookup(stateDir: string): { kinds: KindLookup; knownKinds: () => string[] } {
  let undo: StepKind | undefined;
  let forecast: StepKind | undefined;
  const knownKinds = () => ['run.undo', ...stepKinds.keys()].sort();
  const kinds: KindLookup = (name) => {
    if (name === 'run.undo') {
      undo ??= undoStepKind({ stateDir, kinds, knownKinds }) as StepKind;
      return undo;
    }
    // The forecast follows the step durations of earlier runs in this state dir.
    if (name === FORECAST_WINDOW) {
      forecast ??= forecastWindowKind({ stateDir }) as StepKind;
      return forecast;
    }
    return stepKinds.get(name);
  };
  return { kinds, knownKinds };
}

export function parseSets(sets: string[] = []): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const item of sets) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--set ${item}: expected key=value`);
    const raw = item.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      /* a plain string */
    }
    out[item.slice(0, eq)] = value;
  }
  return out;
}

/** `migrate status`'s schema view: how the target's schema differs from the source's right now. */

import { redact } from '../../core/secret.ts';
import type { Json, StepContext } from '../../core/step.ts';
import { pool } from '../connections.ts';
import { compareServers, describeDifference, fingerprint } from './compare.ts';

const SHOWN = 50;

export async function schemaDrift(ctx: StepContext): Promise<Json> {
  try {
    const { differences, source } = await compareServers(await pool(ctx, 'source'), await pool(ctx, 'target'));
    return {
      identical: differences.length === 0,
      sourceFingerprint: fingerprint(source),
      count: differences.length,
      differences: differences
        .slice(0, SHOWN)
        .map((d) => ({ object: d.object, difference: describeDifference(d), fix: d.fix, additive: d.additive })),
    };
  } catch (error) {
    return { error: redact((error as Error).message) };
  }
}

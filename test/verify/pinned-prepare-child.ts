/**
 * The CLI's D-day in its own process, from prepare to pin: postgres.prepare-switch-point then
 * postgres.pin-switch-point (prepared), journaling each change (fsynced) as the CLI does, then
 * waiting to be killed with SIGKILL, as a CLI that dies after the pin would.
 * argv: outputs JSON file, journal file, switch point JSON file (written once pinned).
 */
import { appendFileSync, closeSync, fsyncSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import type { Json } from '../../migrate/core/step.ts';
import { pinSwitchPoint } from '../../migrate/steps/postgres/pin-switch-point.ts';
import { prepareSwitchPoint } from '../../migrate/steps/postgres/prepare-switch-point.ts';
import { testContext } from '../support/context.ts';

const [outputsFile, journalFile, pointFile] = process.argv.slice(2) as [string, string, string];
const outputs = JSON.parse(readFileSync(outputsFile, 'utf8'));
const journaled = (stepId: string) => {
  const t = testContext({ outputs, stepId });
  return {
    ...t.ctx,
    record: async (change: Json) => {
      appendFileSync(journalFile, `${JSON.stringify({ step: stepId, change })}\n`);
      const fd = openSync(journalFile, 'r');
      fsyncSync(fd);
      closeSync(fd);
    },
  };
};
const { holder } = await prepareSwitchPoint.apply(journaled('prepare-pin'), prepareSwitchPoint.params.parse({}));
const { switchPoint } = await pinSwitchPoint.apply(journaled('pin'), pinSwitchPoint.params.parse({ prepared: holder }));
writeFileSync(pointFile, JSON.stringify({ holder, switchPoint }));
process.stdout.write('PINNED\n');
await new Promise(() => {});

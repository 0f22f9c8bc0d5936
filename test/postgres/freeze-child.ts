/**
 * Runs freeze-writes in its own process, appending each change to a journal file (fsynced) before
 * the step acts on it, as the CLI does: the parent kills it with SIGKILL mid-freeze.
 * argv: outputs JSON file, journal file.
 */
import { appendFileSync, closeSync, fsyncSync, openSync, readFileSync } from 'node:fs';
import { freezeWrites } from '../../migrate/steps/postgres/freeze-writes.ts';
import { testContext } from '../support/context.ts';

const [outputsFile, journalFile] = process.argv.slice(2) as [string, string];
const t = testContext({ outputs: JSON.parse(readFileSync(outputsFile, 'utf8')) });
const ctx = {
  ...t.ctx,
  record: async (change: unknown) => {
    appendFileSync(journalFile, `${JSON.stringify(change)}\n`);
    const fd = openSync(journalFile, 'r');
    fsyncSync(fd);
    closeSync(fd);
  },
};
await freezeWrites.apply(ctx, freezeWrites.params.parse({}));
await t.close();

/**
 * Runs postgres.verify at a pinned switch point in its own process, journaling each change (fsynced)
 * as the CLI does: the parent kills it with SIGKILL mid-verification.
 * argv: outputs JSON file, switch point JSON file, journal file.
 */
import { appendFileSync, closeSync, fsyncSync, openSync, readFileSync } from 'node:fs';
import { verify } from '../../migrate/steps/postgres/verify.ts';
import { testContext } from '../support/context.ts';

const [outputsFile, pointFile, journalFile] = process.argv.slice(2) as [string, string, string];
const t = testContext({ outputs: JSON.parse(readFileSync(outputsFile, 'utf8')), stepId: 'verify' });
const ctx = {
  ...t.ctx,
  record: async (change: unknown) => {
    appendFileSync(journalFile, `${JSON.stringify(change)}\n`);
    const fd = openSync(journalFile, 'r');
    fsyncSync(fd);
    closeSync(fd);
  },
};
await verify.apply(ctx, verify.params.parse({ at: JSON.parse(readFileSync(pointFile, 'utf8')), onDifference: 'report', concurrency: 2 }));
await t.close();

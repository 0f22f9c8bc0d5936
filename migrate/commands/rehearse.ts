/** `migrate rehearse`: the whole cutover on local servers, with a timeline report. */

import { resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { parseSets } from '../core/environment.ts';
import { jsonLine } from '../core/report.ts';
import { embeddedBindir } from '../local/postgres-server.ts';
import { ensureTools } from '../local/tools.ts';
import { rehearse } from '../rehearse/rehearse.ts';
import { toText } from '../rehearse/report.ts';
import { action } from './action.ts';
import { type GlobalOptions, reporterFor } from './environment.ts';
import { EXIT } from './exit-codes.ts';

const WHY = 'the rehearsal and the tests run local PostgreSQL servers and PgBouncer, and the schema copy runs pg_dump and psql';
const say = (line: string) => process.stderr.write(`migrate: ${line}\n`);

const positive = (flag: string) => (value: string) => {
  const n = Number(value);
  // Commander reports this as a one-line usage error naming the option.
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} ${value}: expected a whole number of at least 1`);
  return n;
};

/** `13` → the npm-shipped PostgreSQL 13 (package alias pg13-bin); anything else is a bindir path. */
function bindir(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  return /^\d+$/.test(value) ? embeddedBindir(`pg${value}-bin`) : resolve(value);
}

export function registerRehearse(program: Command, globals: () => GlobalOptions): void {
  program
    .command('rehearse')
    .description('Rehearse the whole cutover on two local PostgreSQL servers (no AWS needed) and print a timeline report')
    .option('--rows <customers>', 'customers to seed (other tables scale with it)', positive('--rows'), 20_000)
    .option('--writers <n>', 'concurrent app writers through PgBouncer', positive('--writers'), 4)
    .option('--report <file>', 'Markdown report (a .json twin is written beside it)', 'rehearsal-report.md')
    .option('--source-pg <version|bindir>', 'source server: 13 or 17 (npm-shipped), or a bindir; default pg_config --bindir')
    .option('--target-pg <version|bindir>', 'target server, as --source-pg')
    .option('--keep', 'keep the servers running and their temp dir for inspection')
    .option('--rollback-after-switch', 'after D-day, roll back with the app still writing, and prove every write is on the source')
    .action(
      action(
        async (opts: {
          rows: number;
          writers: number;
          report: string;
          sourcePg?: string;
          targetPg?: string;
          keep?: boolean;
          rollbackAfterSwitch?: boolean;
        }) => {
          const options = globals();
          const json = Boolean(options.json);
          ensureTools(WHY, say);
          // Ctrl-C stops the running runbook as `migrate run` would; the servers and files are then removed
          // (unless --keep). A second Ctrl-C does not wait.
          const controller = new AbortController();
          const onSignal = (signal: NodeJS.Signals) =>
            controller.signal.aborted ? process.exit(EXIT.interrupted) : controller.abort(new Error(`interrupted by ${signal}`));
          process.on('SIGINT', onSignal);
          process.on('SIGTERM', onSignal);
          const report = await rehearse({
            configOverrides: parseSets(options.set),
            signal: controller.signal,
            customers: opts.rows,
            writers: opts.writers,
            keep: Boolean(opts.keep),
            rollbackAfterSwitch: Boolean(opts.rollbackAfterSwitch),
            reportFile: resolve(opts.report),
            sourceBindir: bindir(opts.sourcePg),
            targetBindir: bindir(opts.targetPg),
            reporter: reporterFor(options),
            announce: (message) => (json ? undefined : process.stdout.write(`\n== ${message}\n`)),
          }).finally(() => {
            process.off('SIGINT', onSignal);
            process.off('SIGTERM', onSignal);
          });
          process.stdout.write(json ? jsonLine({ type: 'rehearsal-report', report }) : toText(report));
          if (controller.signal.aborted) return EXIT.interrupted;
          return report.outcome === 'passed' ? EXIT.ok : EXIT.failed;
        },
      ),
    );

  program
    .command('tools')
    .description(
      'Install (apt-get, with a notice) or name what the rehearsal and the tests need: PostgreSQL server and client tools, PgBouncer',
    )
    .action(
      action(async () => {
        ensureTools(WHY, say);
        return EXIT.ok;
      }),
    );
}

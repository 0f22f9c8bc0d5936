/** The `migrate` command line: one file per command family under migrate/commands/. */

import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import type { GlobalOptions } from './commands/environment.ts';
import { EXIT } from './commands/exit-codes.ts';
import { registerForecast } from './commands/forecast.ts';
import { registerInspect } from './commands/inspect.ts';
import { registerOutputs } from './commands/outputs.ts';
import { registerRehearse } from './commands/rehearse.ts';
import { registerRun } from './commands/run.ts';
import { registerStandalone } from './commands/standalone.ts';
import { registerStatus } from './commands/status.ts';
import { redact } from './core/secret.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];
const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** Commands that only print: a closed stdout (`migrate kinds | head -3`) ends them at once, exit 0. */
const PRINT_ONLY = new Set(['runs', 'kinds', 'status', 'plan', 'preflight', 'iam-policy', 'outputs', 'forecast', 'help']);
let command = '';
let stdoutClosed = false;
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  if (command === '' || PRINT_ONLY.has(command)) process.exit(EXIT.ok);
  // Every later write fails the same way.
  if (stdoutClosed) return;
  stdoutClosed = true;
  // A run, a rollback or a rehearsal never stops halfway because its reader went away: it goes on
  // without stdout (Node drops later writes to the closed stream), the journal records every step,
  // and the exit code is the command's own.
  process.stderr.write(`migrate: stdout was closed; ${command} goes on without it (\`migrate runs\` and the journal show how it ends)\n`);
});

const program = new Command('migrate')
  .description('Scripts a PostgreSQL cutover from self-managed servers onto the RDS/EKS stack, from runbooks, with a journal.')
  .option('--stack <name>', 'Pulumi stack whose outputs to read (`pulumi stack output --json --show-secrets`)')
  .option('--outputs <file>', 'read the stack outputs from this JSON file instead (`migrate outputs` writes one for two servers of yours)')
  .option('--state-dir <dir>', 'where journals and the lock live', process.env.MIGRATE_STATE_DIR || '.migrate')
  .option('--set <key=value>', 'override a runbook config value (repeatable); --set pgBinDir=DIR is PG_BINDIR=DIR', collect, [])
  .option('--without <capabilities>', 'skip steps needing these (comma-separated: aws,kube,pgbouncer,shell,http,postgres)')
  .option('--json', 'machine-readable output (JSON lines of events)')
  .version(version, '--version', 'print the version of migrate')
  // Inherited by every subcommand: its --help lists these options too, and a usage error is one line
  // and exit 2 (commander's own default is the whole help text and exit 1).
  .configureHelp({ showGlobalOptions: true })
  // Commander puts its "(Did you mean …?)" on a second line.
  .configureOutput({
    outputError: (text, write) =>
      write(
        `migrate: ${text
          .replace(/^error: /, '')
          .trim()
          .replace(/\s*\n\s*/g, ' ')} (see --help)\n`,
      ),
  })
  .exitOverride();

program.hook('preAction', (_root, actionCommand) => {
  command = actionCommand.name();
});

// The client tools' directory is not a runbook setting: every runbook's pg_dump/psql come from it.
program.hook('preAction', (root) => {
  const sets = root.opts<GlobalOptions>().set ?? [];
  const bindir = sets.find((s) => s.startsWith('pgBinDir='));
  if (!bindir) return;
  process.env.PG_BINDIR = bindir.slice('pgBinDir='.length);
  root.setOptionValue(
    'set',
    sets.filter((s) => s !== bindir),
  );
});

const globals = () => program.opts<GlobalOptions>();
registerRun(program, globals);
registerStandalone(program, globals);
registerStatus(program, globals);
registerInspect(program, globals);
registerRehearse(program, globals);
registerOutputs(program, globals);
registerForecast(program, globals);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // --help and --version end here with 0; commander has already printed any error.
    process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else {
    process.stderr.write(`migrate: ${redact(error instanceof Error ? error.message : String(error))}\n`);
    process.exitCode = EXIT.failed;
  }
}

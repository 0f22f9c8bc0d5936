/** The `migrate` command line: one file per command family under migrate/commands/. */
import { Command } from 'commander';
import type { GlobalOptions } from './commands/environment.ts';
import { registerInspect } from './commands/inspect.ts';
import { registerRehearse } from './commands/rehearse.ts';
import { registerRun } from './commands/run.ts';
import { registerStandalone } from './commands/standalone.ts';
import { registerStatus } from './commands/status.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

const program = new Command('migrate')
  .description('Scripts a PostgreSQL cutover from self-managed servers onto the RDS/EKS stack, from runbooks, with a journal.')
  .option('--stack <name>', 'Pulumi stack whose outputs to read (`pulumi stack output --json --show-secrets`)')
  .option('--outputs <file>', 'read the stack outputs from this JSON file instead')
  .option('--state-dir <dir>', 'where journals and the lock live', process.env.MIGRATE_STATE_DIR ?? '.migrate')
  .option('--set <key=value>', "override a runbook config value (repeatable)", collect, [])
  .option('--without <capabilities>', 'skip steps needing these (comma-separated: aws,kube,pgbouncer,shell,http,postgres)')
  .option('--json', 'machine-readable output (JSON lines of events)')
  .showHelpAfterError();

const globals = () => program.opts<GlobalOptions>();
registerRun(program, globals);
registerStandalone(program, globals);
registerStatus(program, globals);
registerInspect(program, globals);
registerRehearse(program, globals);

await program.parseAsync(process.argv);

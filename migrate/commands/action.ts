/**
 * Wraps a command body: prints failures once, with secrets scrubbed, and sets the exit code. With
 * --json the failure is also the last JSON line on stdout, so a reader of the lines sees how it ended.
 */
import type { Command } from 'commander';
import { jsonLine } from '../core/report.ts';
import { exitCodeFor } from './environment.ts';

export function action<A extends unknown[]>(body: (...args: A) => Promise<number>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      process.exitCode = await body(...args);
    } catch (error) {
      const { code, message } = exitCodeFor(error);
      process.stderr.write(`migrate: ${message}\n`);
      // Commander passes the command itself last.
      if ((args.at(-1) as Command).optsWithGlobals().json) process.stdout.write(jsonLine({ type: 'error', message, exitCode: code }));
      process.exitCode = code;
    }
  };
}

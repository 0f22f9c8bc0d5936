/** Wraps a command body: prints failures once, with secrets scrubbed, and sets the exit code. */
import { exitCodeFor } from './environment.ts';

export function action<A extends unknown[]>(body: (...args: A) => Promise<number>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      process.exitCode = await body(...args);
    } catch (error) {
      const { code, message } = exitCodeFor(error);
      process.stderr.write(`migrate: ${message}\n`);
      process.exitCode = code;
    }
  };
}

#!/usr/bin/env node
// The CLI is TypeScript run through tsx, so `npx migrate` needs no build step.
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  // Run by a system Node older than the one the project is tested on (e.g. `migrate` linked onto
  // PATH on a machine with Node 20): say what to do instead of failing deep inside a dependency.
  process.stderr.write(
    `migrate needs Node.js 24 or newer (this is ${process.version}, at ${process.execPath}). ` +
      'On Linux x64, `npm ci` installs Node 24 into node_modules and every npm script uses it: run `npm run -s migrate -- <args>`. ' +
      'Elsewhere install Node 24 (the version in .node-version).\n',
  );
  process.exit(2);
}
const { register } = await import('tsx/esm/api');
register();
await import('./cli.ts');

#!/usr/bin/env node
// The CLI is TypeScript run through tsx, so `npx migrate` needs no build step.
import { register } from 'tsx/esm/api';

// The AWS SDK warns on every run that its 2027 releases will need Node 22 (package.json pins
// versions that support 20); the notice would bury what an operator needs to read mid-cutover.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

register();
await import('./cli.ts');

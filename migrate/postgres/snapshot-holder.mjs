/**
 * Holds one exported snapshot on each server of a cutover, so that the proof after the switch can
 * read both databases as they were at the switch point, and still can after the CLI that pinned them
 * is killed: a snapshot lives only as long as the transaction that exported it, so that transaction
 * lives here, in a process of its own (spawned detached by switch-point/holder.ts).
 *
 * Plain JavaScript on purpose: it runs on the CLI's own Node (process.execPath) without the tsx
 * loader, so it starts the same way whatever started the CLI.
 *
 * stdin: one JSON document, `{ tag, maxHoldMs, sides: { source: pg.ClientConfig, target: … } }`.
 * The connection settings (password included) come only this way: never argv, env or a file.
 * stdout: one JSON line, `{ ready: true, pid, pinnedAtMs, sides: { source: { snapshot, backendPid,
 * lsn }, target: … } }` or `{ ready: false, error }`; nothing is written after it (the CLI stops
 * reading there, and may be gone).
 *
 * Prepared (`prepared: { dir, maxWaitMs }` in the request): it connects both sessions and answers
 * `{ ready: true, prepared: true, pid }` at once, idle (no transaction, so nothing held back), and
 * exports only on SIGUSR2: the pin inside the write window then costs two round trips rather than
 * starting Node and connecting. Being signalled (not piped) it can be told by any later CLI on this
 * machine, after a kill -9 or a resume. On SIGUSR2 it reads `<dir>/export.json` (`{ maxHoldMs }`,
 * optional) and writes `<dir>/point.json`, renamed into place whole: the line above, or
 * `{ ready: false, error }`. `dir` is the CLI's own 0700 directory; the holder removes it when it
 * ends. A prepared holder nobody signals ends after maxWaitMs.
 *
 * It ends, committing both read-only transactions, on SIGTERM/SIGINT (release), when maxHoldMs
 * has passed (a held snapshot holds back vacuum on both servers), or as soon as either connection
 * ends (a server stopped, a session terminated: pg_terminate_backend is the other way to release).
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

const SIDES = ['source', 'target'];

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

/** Driver messages do not carry the password, but a connection string could end up in one: never print it. */
function scrub(message, configs) {
  let text = String(message);
  for (const config of Object.values(configs)) {
    for (const secret of [config?.password, config?.connectionString]) {
      if (typeof secret === 'string' && secret.length >= 4) text = text.split(secret).join('***');
    }
    try {
      const password = config?.connectionString ? decodeURIComponent(new URL(config.connectionString).password) : '';
      if (password.length >= 4) text = text.split(password).join('***').split(encodeURIComponent(password)).join('***');
    } catch {}
  }
  return text;
}

function say(document) {
  process.stdout.write(`${JSON.stringify(document)}\n`);
}

const request = await readStdin();
const clients = {};
let ending = false;
let timer;

async function end(code) {
  if (ending) return;
  ending = true;
  await Promise.all(
    Object.values(clients).map(async (client) => {
      await client.query('COMMIT').catch(() => {});
      await client.end().catch(() => {});
    }),
  );
  if (request.prepared?.dir) rmSync(request.prepared.dir, { recursive: true, force: true });
  process.exit(code);
}

function endAfter(ms) {
  clearTimeout(timer);
  timer = setTimeout(() => void end(0), ms);
}

/** One snapshot on each server, in a transaction left open: the switch point. */
async function exportSnapshots() {
  const sides = {};
  await Promise.all(
    SIDES.map(async (side) => {
      const client = clients[side];
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const { rows } = await client.query(
        'SELECT pg_export_snapshot() AS snapshot, pg_backend_pid() AS backend_pid, pg_current_wal_lsn()::text AS lsn',
      );
      sides[side] = { snapshot: rows[0].snapshot, backendPid: rows[0].backend_pid, lsn: rows[0].lsn };
    }),
  );
  return sides;
}

/** Prepared: the CLI waits on this file, which appears whole or not at all. */
function answerFile(document) {
  const file = join(request.prepared.dir, 'point.json');
  writeFileSync(`${file}.tmp`, JSON.stringify(document), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

let exporting = false;
async function onExport() {
  // Exported once: a second signal (a retried pin) finds the answer already in the file.
  if (exporting || ending) return;
  exporting = true;
  let maxHoldMs = request.maxHoldMs;
  try {
    maxHoldMs = JSON.parse(readFileSync(join(request.prepared.dir, 'export.json'), 'utf8')).maxHoldMs ?? maxHoldMs;
  } catch {}
  try {
    const sides = await exportSnapshots();
    const pinnedAtMs = Date.now();
    endAfter(maxHoldMs);
    answerFile({ ready: true, pid: process.pid, pinnedAtMs, sides });
  } catch (error) {
    try {
      answerFile({ ready: false, error: scrub(error?.message ?? error, request.sides ?? {}) });
    } catch {}
    await end(1);
  }
}

try {
  for (const side of SIDES) {
    const client = new pg.Client(request.sides[side]);
    // A lost server is how most holds end: not a crash, a reason to let go of the other side too.
    client.on('error', () => void end(1));
    client.on('end', () => void end(1));
    clients[side] = client;
  }
  await Promise.all(Object.values(clients).map((c) => c.connect()));
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => void end(0));
  // Detached, it has no terminal: a hangup is not a reason to let go.
  process.on('SIGHUP', () => {});
  if (request.prepared) {
    // SIGUSR1 would start Node's inspector; SIGUSR2 is free. Listening before answering: the CLI
    // signals only once it has read the answer.
    process.on('SIGUSR2', () => void onExport());
    endAfter(request.prepared.maxWaitMs);
    say({ ready: true, prepared: true, pid: process.pid });
  } else {
    const sides = await exportSnapshots();
    endAfter(request.maxHoldMs);
    say({ ready: true, pid: process.pid, pinnedAtMs: Date.now(), sides });
  }
} catch (error) {
  say({ ready: false, error: scrub(error?.message ?? error, request.sides ?? {}) });
  await end(1);
}

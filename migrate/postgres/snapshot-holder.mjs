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
 * It ends, committing both read-only transactions, on SIGTERM/SIGINT (release), when maxHoldMs
 * has passed (a held snapshot holds back vacuum on both servers), or as soon as either connection
 * ends (a server stopped, a session terminated: pg_terminate_backend is the other way to release).
 */
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

async function end(code) {
  if (ending) return;
  ending = true;
  await Promise.all(
    Object.values(clients).map(async (client) => {
      await client.query('COMMIT').catch(() => {});
      await client.end().catch(() => {});
    }),
  );
  process.exit(code);
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
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => void end(0));
  // Detached, it has no terminal: a hangup is not a reason to let go.
  process.on('SIGHUP', () => {});
  setTimeout(() => void end(0), request.maxHoldMs);
  say({ ready: true, pid: process.pid, pinnedAtMs: Date.now(), sides });
} catch (error) {
  say({ ready: false, error: scrub(error?.message ?? error, request.sides ?? {}) });
  await end(1);
}

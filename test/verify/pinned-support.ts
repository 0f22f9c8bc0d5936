/**
 * The switch-point scenario shared by the pinned-proof tests: before the pin, the target differs
 * from the source in one row, one privilege and one sequence (as a broken replication or a hand on
 * the target would leave it); after the pin, the app writes to the target on many tables, changes a
 * privilege and moves the sequence on, none of which the proof of the switch point may report.
 */
import assert from 'node:assert/strict';
import type pg from 'pg';
import { alive } from '../../migrate/local/running.ts';
import { HOLDER_APPLICATION } from '../../migrate/postgres/switch-point/holder.ts';
import type { SwitchPoint } from '../../migrate/postgres/switch-point/point.ts';

/** Cluster-wide roles, created once per server of a pair. */
export async function createRoles(clients: pg.Client[]): Promise<void> {
  for (const c of clients) await c.query('CREATE ROLE pin_before NOLOGIN; CREATE ROLE pin_after NOLOGIN');
}

/** What the target gets wrong at the switch point. */
export async function driftBeforePin(source: pg.Client, target: pg.Client): Promise<void> {
  for (const c of [source, target]) await c.query('CREATE SEQUENCE app.ticket_seq');
  await source.query("SELECT setval('app.ticket_seq', 500)");
  await target.query("SELECT setval('app.ticket_seq', 100)");
  await target.query("UPDATE app.accounts SET email = 'drift' WHERE id = 7");
  await target.query('GRANT SELECT ON app.tags TO pin_before');
}

/** The app at work on the target after the switch: one transaction per statement, on every kind of table. */
export async function appWritesAfterPin(target: pg.Client): Promise<void> {
  const statements = [
    "INSERT INTO app.accounts (id, email) SELECT g, 'after-' || g FROM generate_series(100001, 100050) g",
    "UPDATE app.accounts SET email = 'updated-after' WHERE id BETWEEN 10 AND 40",
    'DELETE FROM app.accounts WHERE id BETWEEN 50 AND 60',
    // The drifted row itself, repaired by the app after the switch: at the switch point it still differed.
    "UPDATE app.accounts SET email = 'user7@example.test' WHERE id = 7",
    'UPDATE billing.lines SET qty = qty + 1 WHERE invoice < 30',
    'DELETE FROM billing.lines WHERE invoice = 99',
    "INSERT INTO billing.lines VALUES (5000, 1, 'sku-new', 1)",
    "INSERT INTO app.tags VALUES ('tag-after', 1)",
    "DELETE FROM app.tags WHERE name = 'tag-5'",
    "INSERT INTO app.audit_log VALUES (now(), 'after', '{}')",
    "INSERT INTO app.measurements VALUES (90001, '2024-03-01', 1.5)",
    'UPDATE app.measurements SET value = -1 WHERE id < 20',
    'GRANT SELECT ON app.audit_log TO pin_after',
    'REVOKE SELECT ON app.tags FROM pin_before',
    "SELECT setval('app.ticket_seq', 100000)",
  ];
  for (const sql of statements) await target.query(sql);
}

/** The holder process is gone, and no session of it (nor any other idle transaction) is left on either server. */
export async function assertReleased(point: SwitchPoint, admins: { source: pg.Client; target: pg.Client }): Promise<void> {
  assert.equal(alive(point.holder.pid), false, `holder process ${point.holder.pid} still running`);
  for (const [side, admin] of Object.entries(admins)) {
    // A killed client's backend may take a moment to notice its socket closed.
    for (const until = Date.now() + 20_000; ; ) {
      const { rows } = await admin.query(
        `SELECT application_name, state FROM pg_stat_activity
          WHERE datname IS NOT NULL AND pid <> pg_backend_pid() AND (application_name LIKE $1 OR state LIKE 'idle in transaction%')`,
        [`${HOLDER_APPLICATION}%`],
      );
      if (rows.length === 0) break;
      if (rows.some((r) => String(r.application_name).startsWith(HOLDER_APPLICATION)))
        assert.fail(`${side}: holder session left: ${JSON.stringify(rows)}`);
      if (Date.now() > until) assert.fail(`${side}: transactions left open: ${JSON.stringify(rows)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

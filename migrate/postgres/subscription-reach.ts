/**
 * Can the target open the connection its subscription will open? On RDS the subscriber's workers
 * connect out from the database subnets to the legacy source, a path this machine's own connection
 * to the source proves nothing about. So the target itself tries: CREATE SUBSCRIPTION with
 * connect = true (it connects to the publisher and queries it) but no slot,
 * disabled, inside a transaction that is rolled back, so nothing is left on either side, even when
 * the CLI dies half-way. Runs as a superuser or rds_superuser (what replication-start needs anyway).
 */
import type pg from 'pg';
import { escapeIdentifier, escapeLiteral } from 'pg';
import { redact } from '../core/secret.ts';
import type { Finding } from '../core/step.ts';

const PROBE = 'migrate_reach_probe';

export interface ReachOptions {
  /** The connection string the subscription will use (outputs.source.subscriptionUrlRef or urlRef). */
  conninfo: string;
  /** outputs.network.natPublicIps: the addresses the source must allow-list. */
  natPublicIps: string[];
  timeoutSeconds: number;
}

interface Cause {
  pattern: RegExp;
  likely: string;
  fix: (o: ReachOptions) => string;
}

const allowList = (o: ReachOptions) =>
  o.natPublicIps.length > 0
    ? `the source's firewall and pg_hba.conf must allow ${o.natPublicIps.join(', ')} (outputs.network.natPublicIps)`
    : "the source's firewall and pg_hba.conf must allow the target's outbound address (outputs.network.natPublicIps is empty: over a private link, the target's subnets)";

const CAUSES: Cause[] = [
  {
    pattern: /password authentication failed|authentication failed|no password supplied|password is required/i,
    likely: 'the password (or user) in the subscription connection string',
    fix: () => 'check the user and password of outputs.source.subscriptionUrlRef (or urlRef) against the source',
  },
  { pattern: /no pg_hba\.conf entry/i, likely: "the source's allow-list (pg_hba.conf)", fix: (o) => allowList(o) },
  {
    pattern: /SSL|TLS|certificate|sslmode/i,
    likely: 'TLS',
    fix: () =>
      'match sslmode in the subscription connection string to what the source offers (ssl = on, a certificate the target trusts for verify-full)',
  },
  {
    pattern: /could not translate host name|Name or service not known|nodename nor servname/i,
    likely: "the source's host name, which the target cannot resolve",
    fix: () => 'use a host name resolvable from the database subnets (VPC DNS), or an IP address',
  },
  {
    pattern: /Connection refused/i,
    likely: 'the source port (nothing listens there, or a firewall rejects it)',
    fix: (o) => `check the port in the connection string and listen_addresses on the source; ${allowList(o)}`,
  },
  {
    pattern: /timeout|timed out|canceling statement|No route to host|Network is unreachable/i,
    likely:
      "the network path: the database security group's egress rule, the database subnets' route to the source, or the source's allow-list dropping packets",
    fix: (o) =>
      `check the DB security group allows egress to the source's address and port, the database subnets route there (NAT, VPN or transit gateway, peering), and ${allowList(o)}`,
  },
];

export function diagnose(message: string, o: ReachOptions): Finding {
  const cause = CAUSES.find((c) => c.pattern.test(message));
  return {
    severity: 'error',
    object: 'target → source connection (the subscription)',
    message: `the target cannot open the connection its subscription will open: ${redact(message)}${cause ? `; likely cause: ${cause.likely}` : ''}`,
    fix: cause
      ? cause.fix(o)
      : `check, in this order, the DB security group's egress, the database subnets' route to the source, ${allowList(o)}, TLS (sslmode), and the password`,
  };
}

export async function subscriptionReachFindings(target: pg.Pool, o: ReachOptions): Promise<Finding[]> {
  const client = await target.connect();
  try {
    await client.query('begin');
    // A firewall that drops packets would hold the connection attempt until the OS gives up.
    await client.query(`set local statement_timeout = ${Math.round(o.timeoutSeconds * 1000)}`);
    // A failed statement is logged with its text, which holds the password: keep it out of the log where this role may.
    await client.query('savepoint quiet');
    await client.query('set local log_min_error_statement = panic').catch(() => client.query('rollback to savepoint quiet'));
    await client.query(
      // A publication that does not exist: the publisher is still queried for it (an empty list, a
      // warning on 15+), but no table of a real one must exist on the target for this to succeed.
      `create subscription ${escapeIdentifier(PROBE)} connection ${escapeLiteral(o.conninfo)} publication ${escapeIdentifier(PROBE)}
         with (connect = true, enabled = false, create_slot = false, slot_name = none, copy_data = false)`,
    );
    return [
      {
        severity: 'info',
        object: 'target → source connection (the subscription)',
        message: 'the target connected to the source as its subscription will',
      },
    ];
  } catch (error) {
    const message = (error as Error).message;
    // The privilege check of preflight reports this one, with its fix.
    if (/must be superuser|permission denied|must have privileges/i.test(message)) {
      return [{ severity: 'warning', object: 'target → source connection (the subscription)', message: `not checked: ${redact(message)}` }];
    }
    return [diagnose(message, o)];
  } finally {
    await client.query('rollback').catch(() => {});
    client.release();
  }
}

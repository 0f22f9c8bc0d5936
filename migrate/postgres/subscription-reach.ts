/**
 * Can a server open the connection its subscription will open? A subscriber's workers connect from
 * the subscriber itself, over a path this machine's own connections prove nothing about: RDS out to
 * the legacy source for the replication (forward), and after the switch the legacy server in to RDS
 * for the reverse replication. So the subscriber itself tries: CREATE SUBSCRIPTION with
 * connect = true (it connects to the publisher and queries it) but no slot, disabled, inside a
 * transaction that is rolled back, so nothing is left on either side, even when the CLI dies
 * half-way. Runs as a superuser or rds_superuser (what creating the real subscription needs anyway).
 *
 * The attempt is the same both ways; what a failure most likely means, and where to fix it, is not,
 * so each direction has its own table of causes.
 */
import type pg from 'pg';
import { escapeIdentifier, escapeLiteral } from 'pg';
import type { StackOutputs } from '../../infra/contract.ts';
import { redact } from '../core/secret.ts';
import type { Finding } from '../core/step.ts';

const PROBE = 'migrate_reach_probe';

export type ReachAttempt = { reached: true } | { reached: false; message: string } | { unchecked: string };

/** `subscriber` connects to `conninfo` as a subscription would; only the outcome comes back. */
export async function attemptSubscriptionConnect(subscriber: pg.Pool, conninfo: string, timeoutSeconds: number): Promise<ReachAttempt> {
  const client = await subscriber.connect();
  try {
    await client.query('begin');
    // A firewall that drops packets would hold the connection attempt until the OS gives up.
    await client.query(`set local statement_timeout = ${Math.round(timeoutSeconds * 1000)}`);
    // The statement's text holds the password, and a server logs it when it fails, when it is slow
    // (a dropped path takes the whole timeout) or with log_statement = ddl, common on legacy
    // servers: keep it out of the log where this role may (superuser settings; RDS's master may not).
    await client.query('savepoint quiet');
    await client
      .query('set local log_min_error_statement = panic; set local log_statement = none; set local log_min_duration_statement = -1')
      .catch(() => client.query('rollback to savepoint quiet'));
    await client.query(
      // A publication that does not exist: the publisher is still queried for it (an empty list, a
      // warning on 15+), but no table of a real one must exist on the subscriber for this to succeed.
      `create subscription ${escapeIdentifier(PROBE)} connection ${escapeLiteral(conninfo)} publication ${escapeIdentifier(PROBE)}
         with (connect = true, enabled = false, create_slot = false, slot_name = none, copy_data = false)`,
    );
    return { reached: true };
  } catch (error) {
    const message = redact((error as Error).message);
    if (/must be superuser|permission denied|must have privileges/i.test(message)) return { unchecked: message };
    return { reached: false, message };
  } finally {
    await client.query('rollback').catch(() => {});
    client.release();
  }
}

interface Cause<O> {
  pattern: RegExp;
  likely: string | ((o: O) => string);
  fix: (o: O) => string;
}

function diagnosis<O>(causes: Cause<O>[], message: string, o: O): { likely?: string; fix?: string } {
  const cause = causes.find((c) => c.pattern.test(message));
  if (!cause) return {};
  return { likely: typeof cause.likely === 'string' ? cause.likely : cause.likely(o), fix: cause.fix(o) };
}

const AUTH = /password authentication failed|authentication failed|no password supplied|password is required/i;
const HBA = /no pg_hba\.conf entry|pg_hba\.conf rejects/i;
const TLS = /SSL|TLS|certificate|sslmode|root cert/i;
const DNS = /could not translate host name|Name or service not known|nodename nor servname|Temporary failure in name resolution/i;
const REFUSED = /Connection refused/i;
const DROPPED = /timeout|timed out|canceling statement|No route to host|Network is unreachable/i;

// ---------------------------------------------------------------------------------------------
// Forward: the target (RDS) subscribes to the legacy source.

const FORWARD = 'target → source connection (the subscription)';

export interface ReachOptions {
  /** The connection string the subscription will use (outputs.source.subscriptionUrlRef or urlRef). */
  conninfo: string;
  /** outputs.network.natPublicIps: the addresses the source must allow-list. */
  natPublicIps: string[];
  timeoutSeconds: number;
}

const allowList = (o: ReachOptions) =>
  o.natPublicIps.length > 0
    ? `the source's firewall and pg_hba.conf must allow ${o.natPublicIps.join(', ')} (outputs.network.natPublicIps)`
    : "the source's firewall and pg_hba.conf must allow the target's outbound address (outputs.network.natPublicIps is empty: over a private link, the target's subnets)";

const FORWARD_CAUSES: Cause<ReachOptions>[] = [
  {
    pattern: AUTH,
    likely: 'the password (or user) in the subscription connection string',
    fix: () => 'check the user and password of outputs.source.subscriptionUrlRef (or urlRef) against the source',
  },
  { pattern: HBA, likely: "the source's allow-list (pg_hba.conf)", fix: allowList },
  {
    pattern: TLS,
    likely: 'TLS',
    fix: () =>
      'match sslmode in the subscription connection string to what the source offers (ssl = on, a certificate the target trusts for verify-full)',
  },
  {
    pattern: DNS,
    likely: "the source's host name, which the target cannot resolve",
    fix: () => 'use a host name resolvable from the database subnets (VPC DNS), or an IP address',
  },
  {
    pattern: REFUSED,
    likely: 'the source port (nothing listens there, or a firewall rejects it)',
    fix: (o) => `check the port in the connection string and listen_addresses on the source; ${allowList(o)}`,
  },
  {
    pattern: DROPPED,
    likely:
      "the network path: the database security group's egress rule, the database subnets' route to the source, or the source's allow-list dropping packets",
    fix: (o) =>
      `check the DB security group allows egress to the source's address and port, the database subnets route there (NAT, VPN or transit gateway, peering), and ${allowList(o)}`,
  },
];

export function diagnose(message: string, o: ReachOptions): Finding {
  const { likely, fix } = diagnosis(FORWARD_CAUSES, message, o);
  return {
    severity: 'error',
    object: FORWARD,
    message: `the target cannot open the connection its subscription will open: ${redact(message)}${likely ? `; likely cause: ${likely}` : ''}`,
    fix:
      fix ??
      `check, in this order, the DB security group's egress, the database subnets' route to the source, ${allowList(o)}, TLS (sslmode), and the password`,
  };
}

export async function subscriptionReachFindings(target: pg.Pool, o: ReachOptions): Promise<Finding[]> {
  const attempt = await attemptSubscriptionConnect(target, o.conninfo, o.timeoutSeconds);
  if ('unchecked' in attempt) {
    // The privilege check of preflight reports this one, with its fix.
    return [{ severity: 'warning', object: FORWARD, message: `not checked: ${attempt.unchecked}` }];
  }
  if (!attempt.reached) return [diagnose(attempt.message, o)];
  return [{ severity: 'info', object: FORWARD, message: 'the target connected to the source as its subscription will' }];
}

// ---------------------------------------------------------------------------------------------
// Reverse: after the switch, the legacy source subscribes to RDS through outputs.reversePath.

export const REVERSE = 'source → target connection (the reverse subscription)';

export type ReversePath = NonNullable<StackOutputs['reversePath']>;

export interface ReverseReachOptions {
  path: ReversePath;
  /** outputs.database: the reverse subscription connects as the master user to this database. */
  database: Pick<StackOutputs['database'], 'masterUsername' | 'name' | 'endpoint'>;
  /** The master password, revealed only into the conninfo. */
  password: string;
  /** The CA bundle's path on the legacy server, for verify-ca/verify-full. */
  sslRootCert?: string;
  timeoutSeconds: number;
}

const libpqValue = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/**
 * The libpq conninfo the legacy side's subscription uses: it dials hostaddr (the load balancer's
 * static IP) when there is one, and verifies the certificate against host (the RDS endpoint).
 */
export function reverseConninfo(o: Omit<ReverseReachOptions, 'timeoutSeconds'>): string {
  const parts: [string, string | number | undefined][] = [
    ['host', o.path.host],
    ['hostaddr', o.path.hostaddr || undefined],
    ['port', o.path.port],
    ['sslmode', o.path.sslMode],
    ['sslrootcert', o.sslRootCert],
    ['user', o.database.masterUsername],
    ['password', o.password],
    ['dbname', o.database.name],
  ];
  return parts
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${libpqValue(String(v))}`)
    .join(' ');
}

const dialled = (o: ReverseReachOptions) =>
  `${o.path.hostaddr ? `${o.path.hostaddr} (hostaddr, for ${o.path.host})` : o.path.host}:${o.path.port}`;

/** Where the legacy server's packets are let in, by path: the fix for anything dropped or refused. */
function reverseAllowList(o: ReverseReachOptions): string {
  switch (o.path.via) {
    case 'load-balancer':
      return `the legacy server's public address must be in the load balancer's allow-list (stack config cutover:reversePath.allowedCidrs, sourceNetwork.cidrs when absent; pulumi up), its firewall must let it out to ${dialled(o)} (outputs.reversePath.hostaddr), and the target group (outputs.reversePath.targetGroupArn) must hold RDS's current address, healthy (run the rds.register-reverse-target step)`;
    case 'private-link':
      return `RDS's security group must admit the legacy server's private address on port ${o.path.port} (stack config cutover:reversePath.allowedCidrs, sourceNetwork.cidrs when absent; pulumi up), and the VPN/transit gateway/peering must route the VPC's range back to the legacy server`;
    case 'local':
      return `the target must listen on ${dialled(o)} (outputs.reversePath) and its pg_hba.conf admit the source's address`;
  }
}

const REVERSE_CAUSES: Cause<ReverseReachOptions>[] = [
  {
    pattern: /syntax error at or near "subscription"/i,
    likely: "the legacy server's PostgreSQL, older than 10, which has no logical replication subscriptions",
    fix: () => 'reverse replication needs PostgreSQL 10 or later on the legacy server; plan the rollback as a dump and restore instead',
  },
  {
    pattern: AUTH,
    likely: 'the master password (or user) the reverse subscription connects with',
    fix: () =>
      'check outputs.database.masterUsername and the secret behind outputs.database.masterPasswordRef against RDS (the password may have been rotated since pulumi up wrote it)',
  },
  {
    pattern: HBA,
    likely: (o) =>
      o.path.via === 'local'
        ? "the target's pg_hba.conf, which does not admit the source"
        : "the target's pg_hba rules: RDS refuses a session without TLS (rds.force_ssl=1)",
    fix: (o) =>
      o.path.via === 'local'
        ? `add a pg_hba.conf line on the target for the source's address, user ${o.database.masterUsername} and database ${o.database.name}, then reload it`
        : `use sslmode verify-full (outputs.reversePath.sslMode) with the RDS CA bundle on the legacy server (with.sslRootCert), so the session is encrypted`,
  },
  {
    pattern: TLS,
    likely: 'TLS: the certificate could not be verified, or the server does not offer what sslmode asks for',
    fix: (o) =>
      `put the RDS CA bundle (global-bundle.pem) on the legacy server and pass its path as with.sslRootCert; keep host=${o.path.host} (outputs.reversePath.host), the name the certificate is issued for, even when hostaddr is dialled; sslmode is outputs.reversePath.sslMode`,
  },
  {
    pattern: DNS,
    likely: (o) => `DNS: the legacy server cannot resolve ${o.path.host}`,
    fix: (o) =>
      o.path.hostaddr
        ? `set hostaddr (outputs.reversePath.hostaddr) so the name is only used to verify the certificate`
        : `RDS endpoints resolve in public DNS to their private address: check the legacy server's resolver (/etc/resolv.conf) reaches it, or pin ${o.path.host} in its /etc/hosts`,
  },
  {
    pattern: REFUSED,
    likely: (o) => `the port: nothing accepts connections at ${dialled(o)}`,
    fix: (o) => `check outputs.reversePath.port (the load balancer's listener or RDS's port); ${reverseAllowList(o)}`,
  },
  {
    pattern: DROPPED,
    likely: (o) =>
      `the network path (timeout): packets to ${dialled(o)} are dropped, by the allow-list, the legacy firewall, a route, or a target group without a healthy target`,
    fix: reverseAllowList,
  },
];

export function diagnoseReverse(message: string, o: ReverseReachOptions): Finding {
  const { likely, fix } = diagnosis(REVERSE_CAUSES, message, o);
  return {
    severity: 'error',
    object: REVERSE,
    message: `the source cannot open the connection its reverse subscription will open (to ${dialled(o)}, via ${o.path.via}): ${redact(message)}${likely ? `; likely cause: ${likely}` : ''}`,
    fix: fix ?? `check, in this order: ${reverseAllowList(o)}; TLS (outputs.reversePath.sslMode, with.sslRootCert); the master password`,
  };
}

/** The legacy source tries the connection its reverse subscription will open to the target. */
export async function reverseReachFindings(source: pg.Pool, o: ReverseReachOptions): Promise<Finding[]> {
  const attempt = await attemptSubscriptionConnect(source, reverseConninfo(o), o.timeoutSeconds);
  if ('unchecked' in attempt) {
    return [
      {
        severity: 'error',
        object: REVERSE,
        message: `the source's migration role may not create subscriptions, which the reverse replication needs: ${attempt.unchecked}`,
        fix: 'use a superuser in outputs.source.urlRef (PostgreSQL 16+: a role granted pg_create_subscription and CREATE on the database)',
      },
    ];
  }
  if (!attempt.reached) return [diagnoseReverse(attempt.message, o)];
  return [
    {
      severity: 'info',
      object: REVERSE,
      message: `the source connected to the target (${dialled(o)}, via ${o.path.via}) as its reverse subscription will`,
    },
  ];
}

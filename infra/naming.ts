/**
 * Names that people and the migrate CLI rely on: they are derived here, once, so the program and its
 * outputs cannot disagree. Pure functions, no Pulumi.
 */

/** `<project>-<environment>`: the prefix of every physical name the stack chooses. */
export function stackPrefix(project: string, environment: string): string {
  return `${project}-${environment}`;
}

/** RDS identifier of the writer; also the stem of the replica identifiers. */
export function databaseIdentifier(project: string, environment: string): string {
  return `${stackPrefix(project, environment)}-postgres`;
}

/**
 * `<db identifier>-replica-<n>` (n from 1): the CLI creates replicas under these names on D-day and
 * the program, once its replica count covers n, adopts them under the same names.
 */
export function replicaIdentifier(databaseId: string, n: number): string {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`replica number ${n} must be an integer from 1`);
  return `${databaseId}-replica-${n}`;
}

export interface ParameterNames {
  prefix: string;
  writerUrl: string;
  readerUrls: string;
  sourceUrl: string;
  masterPassword: string;
  /** The app role's password on RDS, set by operators; d-day.yaml builds the app's URLs from it. */
  appPassword: string;
}

export function parameterNames(prefix: string): ParameterNames {
  const trimmed = prefix.replace(/\/+$/, '');
  return {
    prefix: trimmed,
    writerUrl: `${trimmed}/database/writer-url`,
    readerUrls: `${trimmed}/database/reader-urls`,
    sourceUrl: `${trimmed}/database/source-url`,
    masterPassword: `${trimmed}/database/master-password`,
    appPassword: `${trimmed}/database/app-password`,
  };
}

/** PostgreSQL parameter-group family for an engine version: `16.8` → `postgres16` (9.6 → postgres9.6). */
export function parameterGroupFamily(engineVersion: string): string {
  const match = /^(\d+)(?:\.(\d+))?/.exec(engineVersion);
  if (!match) throw new RangeError(`'${engineVersion}' is not a PostgreSQL version`);
  const major = Number(match[1]);
  return major >= 10 ? `postgres${major}` : `postgres${major}.${match[2] ?? '0'}`;
}

/**
 * Quoting for the few statements that take no bind parameters (DDL, CREATE SUBSCRIPTION ...
 * CONNECTION): every identifier and literal spliced into SQL goes through `pg`'s
 * `escapeIdentifier`/`escapeLiteral`, or through `qualified` here.
 */
import { escapeIdentifier } from 'pg';

/** `schema.name`, both parts quoted. */
export function qualified(schema: string, name: string): string {
  return `${escapeIdentifier(schema)}.${escapeIdentifier(name)}`;
}

/** Names of replication objects are identifiers on both servers and slot names on the source. */
export const REPLICATION_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

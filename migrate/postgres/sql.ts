/**
 * Quoting for the few statements that take no bind parameters (DDL, CREATE SUBSCRIPTION ...
 * CONNECTION): every identifier and literal spliced into SQL goes through here.
 */

/** A quoted identifier, safe for any name (`"Weird ""name"""`). */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `schema.name`, both parts quoted. */
export function qualified(schema: string, name: string): string {
  return `${ident(schema)}.${ident(name)}`;
}

/** A standard-conforming string literal (`'it''s'`); backslashes are literal under standard_conforming_strings. */
export function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** Names of replication objects are identifiers on both servers and slot names on the source. */
export const REPLICATION_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

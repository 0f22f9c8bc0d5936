/**
 * Secrets travel as `Secret` values that print as `***`, and every resolved secret value is also
 * registered with the process-wide redactor, which every sink (terminal, journal, report, error)
 * passes its text through. Two layers, because a secret can leak by being interpolated into a
 * connection string or an error message from a driver, where the wrapper type no longer helps.
 */
import { inspect } from 'node:util';

export const REDACTED = '***';

const known = new Set<string>();

/** Secrets shorter than this are not scrubbed by value: "a" would mangle every message. */
const MIN_SCRUB_LENGTH = 4;

export function registerSecret(value: string): void {
  if (value.length >= MIN_SCRUB_LENGTH) known.add(value);
  // A password inside a URL reaches drivers percent-encoded; scrub that spelling too.
  const encoded = encodeURIComponent(value);
  if (encoded !== value && encoded.length >= MIN_SCRUB_LENGTH) known.add(encoded);
}

export class Secret<T = string> {
  readonly #value: T;
  constructor(value: T) {
    this.#value = value;
    if (typeof value === 'string') registerSecret(value);
  }
  reveal(): T {
    return this.#value;
  }
  toString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [inspect.custom](): string {
    return REDACTED;
  }
}

// user:password@ in any URL-ish string, and password=... in libpq keyword strings.
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^:@/\s]*:)([^@/\s]+)(@)/gi;
const KEYWORD_PASSWORD = /(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'"]+)/gi;

/** Removes every registered secret and any URL or keyword password from `text`. */
export function redact(text: string): string {
  let out = text;
  // Longest first, so a secret that contains another is removed whole.
  for (const secret of [...known].sort((a, b) => b.length - a.length)) {
    if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  }
  return out.replace(URL_PASSWORD, `$1${REDACTED}$3`).replace(KEYWORD_PASSWORD, `$1${REDACTED}`);
}

/** Deep-redacts a JSON-able value (journal records, reports). Secret instances become `***`. */
export function redactValue<T>(value: T): T {
  return JSON.parse(redact(JSON.stringify(value ?? null))) as T;
}

/** For tests: forget registered secrets between cases. */
export function forgetSecretsForTests(): void {
  known.clear();
}

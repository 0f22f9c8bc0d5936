/**
 * `${{ scope.path }}` references in runbook values. Scopes: `outputs` (the stack outputs), `config`
 * (the runbook's config block, overridable with --set), `secrets` (named secret references, resolved
 * only when a step runs), `steps` (results of earlier steps of the same run), `runs` (results of a
 * step in the newest run of another runbook of this stack, e.g. `runs.day-before.scale-down.counts`)
 * and `run` (id, stack).
 *
 * A string that is exactly one reference takes the referenced value's type (an array stays an
 * array); references inside a longer string are interpolated as text. `${{ a || b }}` takes `a`
 * unless it is missing or empty, then `b`. `${{ secrets.password | urlencode }}` percent-encodes the
 * value, for passwords inside connection URLs. `${{ config.proof == 'after-switch' }}` (or `!=`)
 * compares with a quoted literal and is true or false, and `a && b` is true when both are, for `if:`
 * conditions that choose a path.
 */

export type Scope = 'outputs' | 'config' | 'secrets' | 'steps' | 'runs' | 'run';
export const SCOPES: readonly Scope[] = ['outputs', 'config', 'secrets', 'steps', 'runs', 'run'];

export interface Reference {
  scope: Scope;
  path: string[];
  /** The reference as written, for error messages. */
  text: string;
  /** An alternative before the last of `a || b`: it may be missing. */
  optional?: boolean;
  filters?: Filter[];
}

const FILTERS = { urlencode: (v: unknown) => encodeURIComponent(String(v)) } as const;
type Filter = keyof typeof FILTERS;

const EXPRESSION = /\$\{\{\s*([^}]*?)\s*\}\}/g;
const WHOLE = /^\$\{\{\s*([^}]*?)\s*\}\}$/;

export class ExpressionError extends Error {}

export function parseReference(expression: string): Reference {
  const [body = '', ...filterNames] = expression.split('|').map((p) => p.trim());
  for (const name of filterNames) {
    if (!(name in FILTERS))
      throw new ExpressionError(`'\${{ ${expression} }}': unknown filter '${name}' (known: ${Object.keys(FILTERS).join(', ')})`);
  }
  const parts = body.split('.').map((p) => p.trim());
  const [scope, ...path] = parts;
  if (!SCOPES.includes(scope as Scope)) {
    throw new ExpressionError(`'\${{ ${body} }}' must start with one of ${SCOPES.join(', ')}`);
  }
  if (path.length === 0 || path.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) {
    throw new ExpressionError(`'\${{ ${body} }}' is not a dotted path (e.g. \${{ outputs.database.endpoint }})`);
  }
  return { scope: scope as Scope, path, text: `\${{ ${expression} }}`, filters: filterNames as Filter[] };
}

/** Applies a reference's filters to its resolved value. */
export function applyFilters(ref: Reference, value: unknown): unknown {
  return (ref.filters ?? []).reduce((v, name) => FILTERS[name](v), value);
}

const COMPARISON = /^(.*?)\s*(==|!=)\s*'([^']*)'$/;

/** `a == 'x'`: the reference part, the operator and the literal; undefined for a plain reference. */
function parseComparison(body: string): { reference: string; operator: '==' | '!='; literal: string } | undefined {
  const match = COMPARISON.exec(body.trim());
  if (!match) return undefined;
  return { reference: match[1] ?? '', operator: match[2] as '==' | '!=', literal: match[3] ?? '' };
}

function parseAlternatives(body: string): Reference[] {
  return body.split('&&').flatMap((conjunct) => {
    const parts = (parseComparison(conjunct)?.reference ?? conjunct).split('||').map((p) => p.trim());
    return parts.map((part, i) => ({ ...parseReference(part), optional: i < parts.length - 1 }));
  });
}

/** Every reference in a value tree, with the location of the string that holds it. */
export function collectReferences(value: unknown, at: (string | number)[] = []): { ref: Reference; at: (string | number)[] }[] {
  if (typeof value === 'string') {
    return [...value.matchAll(EXPRESSION)].flatMap((m) => parseAlternatives(m[1] ?? '').map((ref) => ({ ref, at })));
  }
  if (Array.isArray(value)) return value.flatMap((v, i) => collectReferences(v, [...at, i]));
  if (value && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) => collectReferences(v, [...at, k]));
  }
  return [];
}

export function lookup(root: unknown, path: readonly string[]): { found: boolean; value: unknown } {
  let current: unknown = root;
  for (const key of path) {
    if (current === null || typeof current !== 'object' || !(key in (current as object))) return { found: false, value: undefined };
    current = (current as Record<string, unknown>)[key];
  }
  return { found: current !== undefined, value: current };
}

/**
 * Replaces references in a value tree. `resolve` returns the value for a reference; interpolated
 * values are stringified (objects as JSON).
 */
export function substitute(value: unknown, resolve: (ref: Reference) => unknown): unknown {
  const evaluate = (body: string): unknown => {
    const conjuncts = body.split('&&');
    if (conjuncts.length > 1) return conjuncts.every((conjunct) => truthy(evaluate(conjunct)));
    const comparison = parseComparison(body);
    if (comparison) {
      const value = evaluate(comparison.reference);
      const equal = String(value ?? '') === comparison.literal;
      return comparison.operator === '==' ? equal : !equal;
    }
    for (const ref of parseAlternatives(body)) {
      if (!ref.optional) return applyFilters(ref, resolve(ref));
      try {
        const candidate = applyFilters(ref, resolve(ref));
        if (candidate !== undefined && candidate !== null && candidate !== '') return candidate;
      } catch (error) {
        if (!(error instanceof ExpressionError)) throw error;
      }
    }
    return undefined;
  };
  if (typeof value === 'string') {
    const whole = WHOLE.exec(value);
    if (whole) return evaluate(whole[1] ?? '');
    return value.replace(EXPRESSION, (_, body: string) => {
      const resolved = evaluate(body);
      return typeof resolved === 'string' ? resolved : JSON.stringify(resolved);
    });
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, resolve));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, resolve)]));
  }
  return value;
}

/** Truthiness for `if:`: empty strings, "false", empty arrays, false, 0, null and undefined are false. */
export function truthy(value: unknown): boolean {
  if (Array.isArray(value)) return value.length > 0;
  return Boolean(value) && value !== 'false';
}

/**
 * The go/no-go on a step's references: every secret it uses must resolve (the parameter exists and
 * is readable), and every `steps.`/`runs.` result it uses must be one that something really produces
 * before the step. A dry run reports what fails as blocking; a real run refuses before its first
 * step, so a missing secret is found before the freeze rather than inside the write window.
 *
 * "Depends on an earlier step" is said only of a `steps.<id>` reference to an earlier step that
 * this run will execute first; anything else that does not resolve is an error.
 */
import { collectReferences, ExpressionError, lookup, type Reference, substitute } from './expressions.ts';
import type { RunState } from './journal.ts';
import { evaluateCondition, isSecretOutput, type ResolveContext, type Runbook, type RunbookStep } from './runbook.ts';
import { redact } from './secret.ts';
import type { Finding, Json } from './step.ts';

export interface ReferenceContext extends Omit<ResolveContext, 'results'> {
  /** Results of steps of this run that have finished (before a resume). */
  results: ReadonlyMap<string, Json>;
  /** Earlier steps of this run that will run before the step being checked. */
  pending: ReadonlySet<string>;
}

export interface ReferenceCheck {
  /** Errors: a secret that does not resolve, a result nothing in this run will produce. */
  problems: Finding[];
  /** Earlier steps of this run whose results the parameters wait for. */
  awaiting: string[];
}

function fixFor(ref: string, outputs: ResolveContext['outputs']): string {
  if (ref.startsWith('ssm:')) {
    return `create it before the run: aws ssm put-parameter --type SecureString --key-id ${outputs.kms.keyArn} --name ${ref.slice(4)} --value '…' (and make sure this identity may read it)`;
  }
  if (ref.startsWith('env:')) return `export ${ref.slice(4)} in the environment of the migrate process`;
  return `create ${ref.slice(5)}, readable by the user running migrate`;
}

/** Every secret the step uses, resolved once; a failure is a problem naming the secret and its reference. */
async function checkSecrets(runbook: Runbook, step: RunbookStep, context: ReferenceContext): Promise<Finding[]> {
  const names = new Set(
    collectReferences(step.with)
      .filter(({ ref }) => ref.scope === 'secrets')
      .map(({ ref }) => ref.path[0]!),
  );
  const problems: Finding[] = [];
  for (const name of names) {
    const ref = runbook.secrets[name]!;
    try {
      await context.secret(ref);
    } catch (error) {
      problems.push({
        severity: 'error',
        object: `secret ${name}`,
        message: `${ref} (used by step '${step.id}') does not resolve: ${redact((error as Error).message)}`,
        fix: fixFor(ref, context.outputs),
      });
    }
  }
  return problems;
}

/**
 * Checks one step's references as the engine will resolve them. `failure` is the error the engine
 * got resolving them, reported when nothing else explains it (e.g. a result of the wrong shape).
 */
export async function checkReferences(
  runbook: Runbook,
  step: RunbookStep,
  context: ReferenceContext,
  failure?: unknown,
): Promise<ReferenceCheck> {
  const problems = await checkSecrets(runbook, step, context);
  const awaiting = new Set<string>();
  const unresolved = (ref: Reference, message: string) => {
    // An alternative of `a || b` that fails lets the next one be tried, as at run time.
    if (ref.optional) throw new ExpressionError(message);
    problems.push({
      severity: 'error',
      object: `step ${step.id}`,
      message: `${ref.text}: ${message}`,
      fix: 'run what produces it first, or change the reference',
    });
    return `<${ref.path.join('.')}>`;
  };
  substitute(step.with, (ref) => {
    switch (ref.scope) {
      case 'outputs':
        return isSecretOutput(ref.path) ? '<secret>' : lookup(context.outputs, ref.path).value;
      case 'config':
        return lookup(runbook.config, ref.path).value;
      case 'secrets':
      case 'run':
        return `<${ref.path.join('.')}>`;
      case 'runs': {
        const [name, id, ...rest] = ref.path;
        const other = context.otherRun?.(name!, id!) ?? { found: false, result: undefined };
        if (!other.found) return unresolved(ref, `no run of runbook '${name}' of this stack has finished step '${id}' (run ${name} first)`);
        if (!lookup(other.result, rest).found) return unresolved(ref, `step '${id}' of run ${other.runId} produced no '${rest.join('.')}'`);
        return lookup(other.result, rest).value;
      }
      case 'steps': {
        const [id, ...rest] = ref.path;
        if (context.results.has(id!)) {
          const { found, value } = lookup(context.results.get(id!), rest);
          return found ? value : unresolved(ref, `step '${id}' produced no '${rest.join('.')}'`);
        }
        if (context.pending.has(id!)) {
          awaiting.add(id!);
          return `<${ref.path.join('.')}>`;
        }
        return unresolved(
          ref,
          `step '${id}' does not run before '${step.id}' in this run (not selected, or skipped), so nothing produces it`,
        );
      }
    }
  });
  if (problems.length === 0 && awaiting.size === 0 && failure !== undefined) {
    const message = redact(failure instanceof Error ? failure.message : String(failure));
    problems.push({
      severity: 'error',
      object: `step ${step.id}`,
      message: `parameters do not resolve: ${message}`,
      fix: 'fix the runbook or what it references',
    });
  }
  return { problems, awaiting: [...awaiting] };
}

export class UnresolvedReferencesError extends Error {
  constructor(
    readonly runbook: string,
    readonly findings: Finding[],
  ) {
    super(
      `${runbook} cannot start: ${findings.length} problem${findings.length === 1 ? '' : 's'} found before the first step; nothing was changed:\n` +
        findings.map((f) => `  - ${f.object}: ${f.message}${f.fix ? `\n    fix: ${f.fix}` : ''}`).join('\n'),
    );
    this.name = 'UnresolvedReferencesError';
  }
}

/**
 * The real run's gate: checks every step that will run, in order, as if each earlier one had
 * produced its result, and throws before anything changes when a reference cannot resolve.
 */
export async function refuseUnresolvable(
  runbook: Runbook,
  steps: readonly RunbookStep[],
  context: Omit<ReferenceContext, 'results' | 'pending'> & { previous?: RunState; canRun: (step: RunbookStep) => boolean },
): Promise<void> {
  const results = new Map<string, Json>();
  for (const s of context.previous?.steps ?? []) {
    if (['applied', 'already-done', 'skipped'].includes(s.status)) results.set(s.id, s.result ?? null);
  }
  const pending = new Set<string>();
  const problems: Finding[] = [];
  for (const step of steps) {
    if (results.has(step.id) || !context.canRun(step)) continue;
    try {
      if (!evaluateCondition(runbook, step, { ...context, results })) continue;
    } catch {
      // The condition needs a result of an earlier step of this run: assume the step runs.
    }
    const check = await checkReferences(runbook, step, { ...context, results, pending });
    problems.push(...check.problems);
    pending.add(step.id);
  }
  if (problems.length > 0) throw new UnresolvedReferencesError(runbook.path, problems);
}

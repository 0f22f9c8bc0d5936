/**
 * ssm.swap: points the app's Parameter Store entries at the new database. Before each write the
 * journal records the version being replaced and that version is labelled `pre-cutover`; the new
 * version gets the run's label, which is also how a re-run knows the write is already done.
 * Values are Secret from the moment they arrive and appear nowhere but in the PutParameter request.
 */
import { z } from 'zod';
import { labelVersion, type ParameterVersions, PRE_CUTOVER_LABEL, parameterVersions, putParameter, readParameter } from '../../aws/ssm.ts';
import { Secret } from '../../core/secret.ts';
import { blockedBy, blocks, defineStep, type Finding, type Json, type StepContext, unable } from '../../core/step.ts';

const LABEL = /^(?![0-9])(?!aws)(?!ssm)[A-Za-z0-9_.-]{1,100}$/i;

const params = z.object({
  parameters: z
    .array(
      z.object({
        /** Parameter name, usually `${{ outputs.parameters.writerUrl }}`. */
        name: z.string().regex(/^\//, 'must be a full parameter name starting with /'),
        /** The new value (a template the engine resolves; treated as secret). */
        value: z.union([z.string(), z.custom<Secret>((v) => v instanceof Secret && typeof v.reveal() === 'string', 'must be a string')]),
      }),
    )
    .min(1),
  /** Label for the versions this run writes; `cutover-<run id>` by default. */
  label: z.string().regex(LABEL, 'letters, digits, . - _ (max 100), not starting with a digit, aws or ssm').optional(),
});
type Params = z.infer<typeof params>;

interface Swapped {
  name: string;
  /** Null only when a re-run finds the write done but neither journal nor label says what it replaced. */
  previousVersion: number | null;
  version: number;
  [key: string]: Json;
}
type Result = { label: string; parameters: Swapped[] };

interface SwapChange {
  action: 'ssm-put';
  name: string;
  previousVersion: number;
}

export function runLabel(ctx: StepContext, p: Params): string {
  return p.label ?? `cutover-${ctx.runId.replace(/[^A-Za-z0-9_.-]/g, '-')}`.slice(0, 100);
}

/** The version each parameter had before this run wrote it, oldest record first (the true original). */
function recordedPrevious(changes: readonly Json[]): Map<string, number> {
  const previous = new Map<string, number>();
  for (const change of changes as readonly Partial<SwapChange>[]) {
    if (change?.action === 'ssm-put' && change.name && typeof change.previousVersion === 'number' && !previous.has(change.name)) {
      previous.set(change.name, change.previousVersion);
    }
  }
  return previous;
}

function previousOf(changes: readonly Json[], name: string, versions: ParameterVersions): number | null {
  return recordedPrevious(changes).get(name) ?? versions.labelled.get(PRE_CUTOVER_LABEL) ?? null;
}

function findingsFor(ctx: StepContext, name: string, versions: ParameterVersions | null, label: string): Finding[] {
  const { prefix } = ctx.outputs.parameters;
  const findings: Finding[] = [];
  if (!name.startsWith(`${prefix}/`)) {
    findings.push({
      severity: 'error',
      object: `parameter ${name}`,
      message: `is outside the stack's prefix ${prefix}/ (the CLI's IAM policy covers only that prefix)`,
      fix: 'use a name from outputs.parameters',
    });
  }
  if (!versions) {
    findings.push({
      severity: 'error',
      object: `parameter ${name}`,
      message: 'does not exist, so there is no pre-cutover version to roll back to',
      fix: 'create it with its legacy value (pulumi up creates the stack parameters), then run again',
    });
    return findings;
  }
  const otherRun = versions.current.labels.find((l) => l.startsWith('cutover-') && l !== label);
  if (otherRun && !versions.current.labels.includes(label)) {
    findings.push({
      severity: 'error',
      object: `parameter ${name}`,
      message: `current version ${versions.current.version} was written by another cutover run (${otherRun}) and not rolled back; labelling it ${PRE_CUTOVER_LABEL} would make rollback restore a cutover value`,
      fix: `roll back that run first, or, if version ${versions.current.version} really is the legacy value, remove its label: aws ssm unlabel-parameter-version --name ${name} --parameter-version ${versions.current.version} --labels ${otherRun}`,
    });
  }
  return findings;
}

const asSecret = (value: string | Secret) => (value instanceof Secret ? value : new Secret(value));

/**
 * A connection URL whose host list has an empty entry (a template fed no replicas) would send the
 * app to a local socket. Named by parameter only: the value carries a password.
 */
function hostListFindings(name: string, value: Secret): Finding[] {
  const hosts = /^postgres(?:ql)?:\/\/(?:[^@/?#]*@)?([^/?#]*)/i.exec(value.reveal())?.[1];
  if (hosts === undefined || !hosts.split(',').some((h) => h === '' || h.startsWith(':'))) return [];
  return [
    {
      severity: 'error',
      object: `parameter ${name}`,
      message: 'the new value is a connection URL with an empty host in its host list; it is not written',
      fix: 'fill the host list (with no replicas, use the writer: steps.replicas.readerHosts does)',
    },
  ];
}

interface Assessment {
  label: string;
  findings: Finding[];
  /** The parameters that exist, each with its new value and its versions now. */
  parameters: { name: string; value: Secret; versions: ParameterVersions }[];
}

/** Reads every parameter's versions once; probe plans from it and apply writes from it. */
async function assess(ctx: StepContext, p: Params): Promise<Assessment> {
  const label = runLabel(ctx, p);
  const values = p.parameters.map((parameter) => ({ name: parameter.name, value: asSecret(parameter.value) }));
  const findings = values.flatMap(({ name, value }) => hostListFindings(name, value));
  const parameters: Assessment['parameters'] = [];
  for (const { name, value } of values) {
    const versions = await parameterVersions(ctx, name);
    findings.push(...findingsFor(ctx, name, versions, label));
    if (versions) parameters.push({ name, value, versions });
  }
  return { label, findings, parameters };
}

export const ssmSwap = defineStep<Params, Result>({
  kind: 'ssm.swap',
  summary: 'Write new Parameter Store values (SecureString, stack KMS key), labelling the previous versions pre-cutover',
  params,
  requires: ['aws'],
  destructive: true,

  async probe(ctx, p) {
    const { label, findings, parameters } = await assess(ctx, p);
    if (blocks(findings)) return { state: 'blocked', findings };
    const plan: string[] = [];
    const done: Swapped[] = [];
    for (const { name, versions } of parameters) {
      const { version, labels } = versions.current;
      if (labels.includes(label)) {
        done.push({ name, previousVersion: previousOf(ctx.previousChanges, name, versions), version });
        plan.push(`${name}: version ${version} already carries ${label}; nothing to write`);
        continue;
      }
      plan.push(
        `ssm:LabelParameterVersion Name=${name} ParameterVersion=${version} Labels=${PRE_CUTOVER_LABEL}`,
        `ssm:PutParameter Name=${name} Type=SecureString KeyId=${ctx.outputs.kms.keyArn} Overwrite=true Value=***`,
        `ssm:LabelParameterVersion Name=${name} ParameterVersion=<new, ${version + 1} if no one else writes> Labels=${label}`,
      );
    }
    if (done.length === parameters.length) return { state: 'done', findings, plan, result: { label, parameters: done } };
    return { state: 'ready', findings, plan };
  },

  async apply(ctx, p) {
    const { label, findings, parameters } = await assess(ctx, p);
    if (blocks(findings)) throw blockedBy(findings);
    const recorded = recordedPrevious(ctx.previousChanges);
    const swapped: Swapped[] = [];
    for (const { name, value, versions } of parameters) {
      try {
        if (versions.current.labels.includes(label)) {
          ctx.log.info(`${name}: version ${versions.current.version} already written by this run`);
          swapped.push({ name, previousVersion: previousOf(ctx.previousChanges, name, versions), version: versions.current.version });
          continue;
        }
        // A crash after an earlier attempt's write but before its label leaves our own value as
        // "current": the journal, not the current version, says what came before.
        let previousVersion = recorded.get(name);
        if (previousVersion === undefined) {
          previousVersion = versions.current.version;
          await ctx.record({ action: 'ssm-put', name, previousVersion });
          recorded.set(name, previousVersion);
        }
        await labelVersion(ctx, name, previousVersion, PRE_CUTOVER_LABEL);
        const version = await putParameter(ctx, name, value);
        await labelVersion(ctx, name, version, label);
        ctx.log.info(`${name}: version ${previousVersion} labelled ${PRE_CUTOVER_LABEL}; wrote version ${version} (${label})`);
        swapped.push({ name, previousVersion, version });
      } catch (error) {
        throw unable(`update parameter ${name}`, error);
      }
    }
    return { label, parameters: swapped };
  },

  async check(ctx, p) {
    const label = runLabel(ctx, p);
    const findings: Finding[] = [];
    for (const { name } of p.parameters) {
      const versions = await parameterVersions(ctx, name);
      if (!versions?.current.labels.includes(label)) {
        findings.push({
          severity: 'error',
          object: `parameter ${name}`,
          message: `the current version does not carry ${label}: someone wrote it after this step`,
        });
      }
    }
    return findings;
  },

  async undo(ctx, _p, changes) {
    for (const [name, previousVersion] of recordedPrevious(changes)) {
      try {
        const previous = await readParameter(ctx, name, previousVersion);
        const current = await readParameter(ctx, name);
        if (current.value.reveal() === previous.value.reveal()) {
          ctx.log.info(`${name}: already has the value of version ${previousVersion} (${PRE_CUTOVER_LABEL})`);
          continue;
        }
        const version = await putParameter(ctx, name, previous.value, previous.type);
        ctx.log.info(`${name}: restored the value of version ${previousVersion} (${PRE_CUTOVER_LABEL}) as version ${version}`);
      } catch (error) {
        throw unable(`restore parameter ${name} to version ${previousVersion}`, error);
      }
    }
  },
});

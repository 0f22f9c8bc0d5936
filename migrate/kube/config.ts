/**
 * The kubeconfig the Kubernetes steps use: the stack's own (outputs.cluster.kubeconfig) by default,
 * or the operator's (KUBECONFIG / ~/.kube/config) with an optional context when the runbook asks.
 * A user whose credentials come from `aws eks get-token` (or aws-iam-authenticator) gets the token
 * from the SDK instead, so the machine running the cutover needs no aws CLI.
 */

import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { KubeConfig, type User } from '@kubernetes/client-node';
import { StepError } from '../core/step.ts';
import { eksToken } from './eks-token.ts';

export type KubeconfigSource = 'stack' | 'user';

export interface KubeconfigChoice {
  kubeconfig: KubeconfigSource;
  context?: string;
}

type Authenticator = Parameters<KubeConfig['addAuthenticator']>[0];

/** Marks a user whose exec plugin we replaced; the authenticator below recognises it. */
const SDK_TOKEN_PROVIDER = 'migrate-eks-sdk-token';
/** EKS accepts a token for 15 minutes; renew well before. */
const TOKEN_REUSE_MS = 10 * 60_000;

interface EksExec {
  clusterName: string;
  region?: string;
  profile?: string;
}

function argAfter(args: readonly string[], ...names: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    for (const name of names) {
      if (arg === name) return args[i + 1];
      if (arg.startsWith(`${name}=`)) return arg.slice(name.length + 1);
    }
  }
  return undefined;
}

/** Recognises `aws eks get-token --cluster-name X` and `aws-iam-authenticator token -i X`. */
export function eksExecOf(user: Pick<User, 'name' | 'exec'>): EksExec | undefined {
  const exec = user.exec as { command?: string; args?: string[]; env?: { name: string; value: string }[] | null } | undefined;
  if (!exec?.command) return undefined;
  const command = exec.command.split('/').pop();
  const args = exec.args ?? [];
  const isAwsCli = command === 'aws' && args.includes('eks') && args.includes('get-token');
  const isAuthenticator = command === 'aws-iam-authenticator' && args.includes('token');
  if (!isAwsCli && !isAuthenticator) return undefined;
  if (argAfter(args, '--role-arn', '-r')) {
    throw new StepError(`Unable to use kubeconfig user ${user.name}: its exec plugin assumes a role (--role-arn)`, [
      {
        severity: 'error',
        object: `kubeconfig user ${user.name}`,
        message: 'assuming a role from the kubeconfig is not supported by the built-in EKS token',
        fix: 'configure the role in an AWS profile (role_arn + source_profile) and set AWS_PROFILE, or use a kubeconfig without --role-arn',
      },
    ]);
  }
  const clusterName = isAwsCli ? argAfter(args, '--cluster-name') : argAfter(args, '-i', '--cluster-id');
  if (!clusterName) return undefined;
  const env = Object.fromEntries((exec.env ?? []).map((e) => [e.name, e.value]));
  return { clusterName, region: argAfter(args, '--region'), profile: argAfter(args, '--profile') ?? env.AWS_PROFILE };
}

function sdkTokenAuthenticator(defaultRegion: string): Authenticator {
  const cache = new Map<string, { token: string; at: number }>();
  return {
    isAuthProvider: (user) => user?.authProvider?.name === SDK_TOKEN_PROVIDER,
    async applyAuthentication(user, opts) {
      const { clusterName, region, profile } = user.authProvider.config as EksExec;
      const key = `${clusterName}|${region ?? defaultRegion}|${profile ?? ''}`;
      let cached = cache.get(key);
      if (!cached || Date.now() - cached.at > TOKEN_REUSE_MS) {
        const credentials = defaultProvider(profile ? { profile } : {});
        cached = { token: await eksToken({ clusterName, region: region ?? defaultRegion, credentials }), at: Date.now() };
        cache.set(key, cached);
      }
      opts.headers = { ...opts.headers, Authorization: `Bearer ${cached.token}` };
    },
  };
}

function unableToLoad(where: string, cause: unknown, fix: string): StepError {
  const message = cause instanceof Error ? cause.message : String(cause);
  return new StepError(`Unable to load the kubeconfig from ${where}: ${message}`, [{ severity: 'error', object: where, message, fix }]);
}

/**
 * A KubeConfig ready for `makeApiClient`. `region` is the stack's, used when the exec plugin does
 * not name one.
 */
export function loadKubeConfig(choice: KubeconfigChoice, stack: { kubeconfig: string; region: string }): KubeConfig {
  const raw = new KubeConfig();
  const where = choice.kubeconfig === 'stack' ? 'outputs.cluster.kubeconfig' : process.env.KUBECONFIG || '~/.kube/config';
  try {
    if (choice.kubeconfig === 'stack') raw.loadFromString(stack.kubeconfig);
    else raw.loadFromDefault();
  } catch (error) {
    throw unableToLoad(
      where,
      error,
      choice.kubeconfig === 'stack'
        ? 'check the stack outputs (pulumi stack output cluster --show-secrets)'
        : 'set KUBECONFIG or write ~/.kube/config',
    );
  }
  if (choice.context) {
    if (!raw.getContexts().some((c) => c.name === choice.context)) {
      const known =
        raw
          .getContexts()
          .map((c) => c.name)
          .join(', ') || 'none';
      throw unableToLoad(
        where,
        new Error(`context '${choice.context}' does not exist (known: ${known})`),
        'pass a context from `kubectl config get-contexts`',
      );
    }
    raw.setCurrentContext(choice.context);
  }
  if (!raw.getCurrentCluster()) {
    throw unableToLoad(
      where,
      new Error(`the current context '${raw.getCurrentContext()}' names no cluster`),
      'set current-context or pass `context:`',
    );
  }
  const users = raw.getUsers().map((user): User => {
    const eks = eksExecOf(user);
    return eks ? { name: user.name, authProvider: { name: SDK_TOKEN_PROVIDER, config: eks } } : user;
  });
  const config = new KubeConfig();
  config.addAuthenticator(sdkTokenAuthenticator(stack.region));
  config.loadFromOptions({ clusters: raw.getClusters(), contexts: raw.getContexts(), users, currentContext: raw.getCurrentContext() });
  return config;
}

/**
 * Kubeconfig loading: an `aws eks get-token` exec user is served by the SDK-made token (no aws CLI
 * runs), checked end to end against the local Kubernetes stand-in.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { StepError } from '../../migrate/core/step.ts';
import { appsApi } from '../../migrate/kube/client.ts';
import { eksExecOf, loadKubeConfig } from '../../migrate/kube/config.ts';
import { CLUSTER_ID_HEADER, TOKEN_PREFIX } from '../../migrate/kube/eks-token.ts';
import { type KubeStandin, startKubeStandin } from '../../migrate/local/kube-standin.ts';
import { testContext } from '../support/context.ts';
import { kubeOutputs } from './fixtures.ts';

let standin: KubeStandin;
const presented: URL[] = [];
const savedEnv = { ...process.env };

before(async () => {
  standin = await startKubeStandin({
    workloads: [{ namespace: 'app', kind: 'Deployment', name: 'web', replicas: 1 }],
    acceptToken: (token) => {
      if (!token.startsWith(TOKEN_PREFIX)) return false;
      const url = new URL(Buffer.from(token.slice(TOKEN_PREFIX.length), 'base64url').toString());
      presented.push(url);
      return (
        url.searchParams.get('Action') === 'GetCallerIdentity' &&
        (url.searchParams.get('X-Amz-SignedHeaders') ?? '').split(';').includes(CLUSTER_ID_HEADER)
      );
    },
  });
  // The SDK's default chain reads these first; the aws CLI is not installed here and not needed.
  process.env.AWS_ACCESS_KEY_ID = 'AKIDTESTKUBE';
  process.env.AWS_SECRET_ACCESS_KEY = 'test-secret-key-for-eks-token';
  delete process.env.AWS_SESSION_TOKEN;
  delete process.env.AWS_PROFILE;
});
after(async () => {
  process.env = savedEnv;
  await standin.close();
});

const eksKubeconfig = (server: string) => `apiVersion: v1
kind: Config
clusters:
- name: eks
  cluster:
    server: ${server}
    insecure-skip-tls-verify: true
users:
- name: eks-user
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: ["--region", "eu-central-1", "eks", "get-token", "--cluster-name", "prod-eks", "--output", "json"]
contexts:
- name: eks
  context: {cluster: eks, user: eks-user}
- name: other
  context: {cluster: eks, user: eks-user}
current-context: eks
`;

test('an aws eks get-token exec user is replaced by a token the SDK signs for that cluster and region', async () => {
  const t = testContext({ outputs: kubeOutputs(eksKubeconfig(standin.url)) });
  const api = await appsApi(t.ctx, { kubeconfig: 'stack' });
  const list = await api.listNamespacedDeployment({ namespace: 'app' });
  assert.deepEqual(
    list.items.map((d) => d.metadata?.name),
    ['web'],
  );
  const url = presented.at(-1)!;
  assert.equal(url.host, 'sts.eu-central-1.amazonaws.com', 'region from the exec args');
  assert.match(url.searchParams.get('X-Amz-Credential') ?? '', /^AKIDTESTKUBE\//);
  await t.close();
});

test('recognises the exec plugins that make EKS tokens, and refuses a role it cannot assume', () => {
  const user = (command: string, args: string[], env?: { name: string; value: string }[]) => ({ name: 'u', exec: { command, args, env } });
  assert.deepEqual(eksExecOf(user('aws', ['eks', 'get-token', '--cluster-name', 'c1'], [{ name: 'AWS_PROFILE', value: 'ops' }])), {
    clusterName: 'c1',
    region: undefined,
    profile: 'ops',
  });
  assert.deepEqual(eksExecOf(user('/usr/local/bin/aws-iam-authenticator', ['token', '-i', 'c2'])), {
    clusterName: 'c2',
    region: undefined,
    profile: undefined,
  });
  assert.equal(eksExecOf(user('gke-gcloud-auth-plugin', [])), undefined);
  assert.throws(
    () => eksExecOf(user('aws', ['eks', 'get-token', '--cluster-name', 'c', '--role-arn', 'arn:aws:iam::1:role/x'])),
    StepError,
  );
});

test('an unknown context is refused with the known ones', () => {
  assert.throws(
    () => loadKubeConfig({ kubeconfig: 'stack', context: 'nope' }, { kubeconfig: eksKubeconfig(standin.url), region: 'eu-west-1' }),
    (error: unknown) => error instanceof StepError && /context 'nope' does not exist \(known: eks, other\)/.test(error.message),
  );
});

/**
 * What the cutover needs on the cluster: the app's namespaces and a PgBouncer in front of the
 * database. PgBouncer's backend is read from Parameter Store when a pod starts (init container,
 * IRSA role limited to that one parameter), so the cutover repoints it by rewriting the parameter
 * and restarting the deployment, with no `pulumi up` on D-day.
 */
import * as aws from '@pulumi/aws';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { children } from './children.ts';
import { policyDocument } from './iam.ts';
import { PGBOUNCER_CONFIG_SCRIPT, PGBOUNCER_PORT } from './pgbouncer-config-script.ts';
import { tagsFor } from './tags.ts';

export interface CutoverWorkloadsArgs {
  prefix: string;
  region: string;
  kubeconfig: pulumi.Input<string>;
  oidcProviderArn: pulumi.Input<string>;
  oidcIssuer: pulumi.Input<string>;
  appNamespaces: string[];
  pgbouncer: { namespace: string; image: string; awsCliImage: string; replicas: number };
  writerUrlParameterName: string;
  writerUrlParameterArn: pulumi.Input<string>;
  kmsKeyArn: pulumi.Input<string>;
  tags: Record<string, string>;
}

const NAME = 'pgbouncer';

export class CutoverWorkloads extends pulumi.ComponentResource {
  readonly namespace: string;
  readonly deployment: string;
  readonly service: string;
  readonly port = PGBOUNCER_PORT;

  constructor(name: string, args: CutoverWorkloadsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cutover:infra:CutoverWorkloads', name, {}, opts);
    const child = children(this, name);
    const provider = new k8s.Provider(child.name('eks'), { kubeconfig: args.kubeconfig, enableServerSideApply: true }, child.opts('eks'));
    const onCluster = (resource: string) => child.opts(resource, { provider });
    const labels = { 'app.kubernetes.io/managed-by': 'pulumi', 'app.kubernetes.io/part-of': args.prefix };

    for (const ns of args.appNamespaces) {
      new k8s.core.v1.Namespace(child.name(`ns-${ns}`), { metadata: { name: ns, labels } }, onCluster(`ns-${ns}`));
    }
    const namespace = args.appNamespaces.includes(args.pgbouncer.namespace)
      ? args.pgbouncer.namespace
      : new k8s.core.v1.Namespace(
          child.name(`ns-${args.pgbouncer.namespace}`),
          { metadata: { name: args.pgbouncer.namespace, labels } },
          onCluster(`ns-${args.pgbouncer.namespace}`),
        ).metadata.name;

    const role = new aws.iam.Role(
      child.name(NAME),
      {
        assumeRolePolicy: pulumi.all([args.oidcProviderArn, args.oidcIssuer]).apply(([providerArn, issuer]) =>
          policyDocument([
            {
              Effect: 'Allow',
              Principal: { Federated: providerArn },
              Action: 'sts:AssumeRoleWithWebIdentity',
              Condition: {
                StringEquals: {
                  [`${issuer}:sub`]: `system:serviceaccount:${args.pgbouncer.namespace}:${NAME}`,
                  [`${issuer}:aud`]: 'sts.amazonaws.com',
                },
              },
            },
          ]),
        ),
        tags: tagsFor(args.tags, `${args.prefix}-pgbouncer`),
      },
      child.opts(NAME),
    );
    new aws.iam.RolePolicy(
      child.name(NAME),
      {
        role: role.id,
        policy: pulumi.all([args.writerUrlParameterArn, args.kmsKeyArn]).apply(([parameterArn, keyArn]) =>
          policyDocument([
            { Effect: 'Allow', Action: 'ssm:GetParameter', Resource: parameterArn },
            {
              Effect: 'Allow',
              Action: 'kms:Decrypt',
              Resource: keyArn,
              Condition: { StringEquals: { 'kms:ViaService': `ssm.${args.region}.amazonaws.com` } },
            },
          ]),
        ),
      },
      child.opts(NAME),
    );

    const serviceAccount = new k8s.core.v1.ServiceAccount(
      child.name(NAME),
      {
        metadata: { name: NAME, namespace, labels, annotations: { 'eks.amazonaws.com/role-arn': role.arn } },
      },
      onCluster(NAME),
    );

    const podLabels = { 'app.kubernetes.io/name': NAME };
    const configMount = { name: 'config', mountPath: '/etc/pgbouncer' };
    const deployment = new k8s.apps.v1.Deployment(
      child.name(NAME),
      {
        metadata: { name: NAME, namespace, labels: { ...labels, ...podLabels } },
        spec: {
          replicas: args.pgbouncer.replicas,
          selector: { matchLabels: podLabels },
          strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
          template: {
            metadata: { labels: podLabels },
            spec: {
              serviceAccountName: serviceAccount.metadata.name,
              initContainers: [
                {
                  name: 'render-config',
                  image: args.pgbouncer.awsCliImage,
                  command: ['/bin/bash', '-c', PGBOUNCER_CONFIG_SCRIPT],
                  env: [
                    { name: 'WRITER_URL_PARAMETER', value: args.writerUrlParameterName },
                    { name: 'AWS_REGION', value: args.region },
                    { name: 'CONFIG_DIR', value: configMount.mountPath },
                  ],
                  volumeMounts: [configMount],
                },
              ],
              containers: [
                {
                  name: NAME,
                  image: args.pgbouncer.image,
                  command: ['pgbouncer', `${configMount.mountPath}/pgbouncer.ini`],
                  ports: [{ name: 'postgres', containerPort: PGBOUNCER_PORT }],
                  readinessProbe: { tcpSocket: { port: PGBOUNCER_PORT }, periodSeconds: 5 },
                  securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true },
                  volumeMounts: [{ ...configMount, readOnly: true }],
                },
              ],
              // In memory: the rendered auth file holds the database password.
              volumes: [{ name: 'config', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } }],
            },
          },
        },
      },
      onCluster(NAME),
    );

    const service = new k8s.core.v1.Service(
      child.name(NAME),
      {
        metadata: { name: NAME, namespace, labels },
        spec: { selector: podLabels, ports: [{ name: 'postgres', port: PGBOUNCER_PORT, targetPort: PGBOUNCER_PORT }] },
      },
      onCluster(NAME),
    );

    this.namespace = args.pgbouncer.namespace;
    this.deployment = NAME;
    this.service = NAME;
    this.registerOutputs({ deployment: deployment.metadata.name, service: service.metadata.name });
  }
}

/**
 * What the cutover needs on the cluster: the app's namespaces and a PgBouncer in front of the
 * database. PgBouncer's backend is read from Parameter Store when a pod starts (init container,
 * IRSA role limited to that one parameter), so the cutover repoints it by rewriting the parameter
 * and restarting the deployment, with no `pulumi up` on D-day.
 */
import * as aws from '@pulumi/aws';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
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
    const provider = new k8s.Provider('eks', { kubeconfig: args.kubeconfig, enableServerSideApply: true }, { parent: this });
    const onCluster = { parent: this, provider };
    const labels = { 'app.kubernetes.io/managed-by': 'pulumi', 'app.kubernetes.io/part-of': args.prefix };

    for (const ns of args.appNamespaces) {
      new k8s.core.v1.Namespace(`ns-${ns}`, { metadata: { name: ns, labels } }, onCluster);
    }
    const namespace = args.appNamespaces.includes(args.pgbouncer.namespace)
      ? args.pgbouncer.namespace
      : new k8s.core.v1.Namespace(`ns-${args.pgbouncer.namespace}`, { metadata: { name: args.pgbouncer.namespace, labels } }, onCluster).metadata.name;

    const role = new aws.iam.Role('pgbouncer', {
      assumeRolePolicy: pulumi.all([args.oidcProviderArn, args.oidcIssuer]).apply(([providerArn, issuer]) => JSON.stringify({
        Version: '2012-10-17',
        Statement: [{
          Effect: 'Allow',
          Principal: { Federated: providerArn },
          Action: 'sts:AssumeRoleWithWebIdentity',
          Condition: { StringEquals: { [`${issuer}:sub`]: `system:serviceaccount:${args.pgbouncer.namespace}:${NAME}`, [`${issuer}:aud`]: 'sts.amazonaws.com' } },
        }],
      })),
      tags: tagsFor(args.tags, `${args.prefix}-pgbouncer`),
    }, { parent: this });
    new aws.iam.RolePolicy('pgbouncer', {
      role: role.id,
      policy: pulumi.all([args.writerUrlParameterArn, args.kmsKeyArn]).apply(([parameterArn, keyArn]) => JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          { Effect: 'Allow', Action: 'ssm:GetParameter', Resource: parameterArn },
          { Effect: 'Allow', Action: 'kms:Decrypt', Resource: keyArn, Condition: { StringEquals: { 'kms:ViaService': `ssm.${args.region}.amazonaws.com` } } },
        ],
      })),
    }, { parent: this });

    const serviceAccount = new k8s.core.v1.ServiceAccount(NAME, {
      metadata: { name: NAME, namespace, labels, annotations: { 'eks.amazonaws.com/role-arn': role.arn } },
    }, onCluster);

    const podLabels = { 'app.kubernetes.io/name': NAME };
    const configMount = { name: 'config', mountPath: '/etc/pgbouncer' };
    const deployment = new k8s.apps.v1.Deployment(NAME, {
      metadata: { name: NAME, namespace, labels: { ...labels, ...podLabels } },
      spec: {
        replicas: args.pgbouncer.replicas,
        selector: { matchLabels: podLabels },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
        template: {
          metadata: { labels: podLabels },
          spec: {
            serviceAccountName: serviceAccount.metadata.name,
            initContainers: [{
              name: 'render-config',
              image: args.pgbouncer.awsCliImage,
              command: ['/bin/bash', '-c', PGBOUNCER_CONFIG_SCRIPT],
              env: [
                { name: 'WRITER_URL_PARAMETER', value: args.writerUrlParameterName },
                { name: 'AWS_REGION', value: args.region },
                { name: 'CONFIG_DIR', value: configMount.mountPath },
              ],
              volumeMounts: [configMount],
            }],
            containers: [{
              name: NAME,
              image: args.pgbouncer.image,
              command: ['pgbouncer', `${configMount.mountPath}/pgbouncer.ini`],
              ports: [{ name: 'postgres', containerPort: PGBOUNCER_PORT }],
              readinessProbe: { tcpSocket: { port: PGBOUNCER_PORT }, periodSeconds: 5 },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true },
              volumeMounts: [{ ...configMount, readOnly: true }],
            }],
            // In memory: the rendered auth file holds the database password.
            volumes: [{ name: 'config', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } }],
          },
        },
      },
    }, onCluster);

    const service = new k8s.core.v1.Service(NAME, {
      metadata: { name: NAME, namespace, labels },
      spec: { selector: podLabels, ports: [{ name: 'postgres', port: PGBOUNCER_PORT, targetPort: PGBOUNCER_PORT }] },
    }, onCluster);

    this.namespace = args.pgbouncer.namespace;
    this.deployment = NAME;
    this.service = NAME;
    this.registerOutputs({ deployment: deployment.metadata.name, service: service.metadata.name });
  }
}

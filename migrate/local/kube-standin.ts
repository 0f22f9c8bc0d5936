/**
 * A stand-in for the few Kubernetes API endpoints the kube.* steps use, for the tests and the local
 * rehearsal (there is no API server here): Deployments and StatefulSets held in memory, list/get,
 * the scale subresource (GET/PATCH/PUT), PATCH of a deployment, and a controller that moves pods a
 * step per poll so scale-downs and rollouts take several polls, as they do on a cluster.
 *
 * It is not a conformance fake: it implements exactly what the steps call, answers anything else
 * with 404, and applies every PATCH as a JSON merge patch (for the fields the steps touch,
 * strategic merge gives the same result).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type StandinKind = 'Deployment' | 'StatefulSet';

export interface StandinWorkloadSpec {
  namespace: string;
  kind: StandinKind;
  name: string;
  replicas: number;
}

export interface RestartEvent {
  namespace: string;
  name: string;
  restartedAt: string;
}

export interface KubeStandinOptions {
  workloads: StandinWorkloadSpec[];
  /**
   * Runs when a deployment's pod template changes (a rollout restart), before any new pod becomes
   * ready: the rehearsal points the local PgBouncer at its new backend here, as the new pods would
   * start with the new configuration. A rejection fails the rollout (ProgressDeadlineExceeded).
   */
  onRestart?: (event: RestartEvent) => Promise<void> | void;
  /** Accepts a bearer token other than the generated one (e.g. an EKS token made by the SDK). */
  acceptToken?: (token: string) => boolean;
}

export interface StandinRequest {
  method: string;
  path: string;
  contentType?: string;
  body?: unknown;
}

export interface KubeStandin {
  url: string;
  token: string;
  /** A kubeconfig document pointing at the stand-in (plain http, bearer token). */
  kubeconfig: string;
  /** Every request received, for asserting what the steps sent. */
  requests: StandinRequest[];
  /** The object as the API would return it (without advancing the controller). */
  get(namespace: string, kind: StandinKind, name: string): Record<string, any> | undefined;
  /** Sets spec.replicas behind the steps' back (someone scaling by hand). */
  setReplicas(namespace: string, kind: StandinKind, name: string, replicas: number): void;
  close(): Promise<void>;
}

interface Pod {
  revision: number;
  ready: boolean;
}

interface Workload {
  spec: StandinWorkloadSpec;
  generation: number;
  observedGeneration: number;
  revision: number;
  template: { metadata: { annotations: Record<string, string>; labels: Record<string, string> } };
  pods: Pod[];
  resourceVersion: number;
  /** A restart hook in flight: pods do not progress until it settles. */
  hook?: Promise<void>;
  hookFailed?: string;
}

const RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';
const PLURAL: Record<string, StandinKind> = { deployments: 'Deployment', statefulsets: 'StatefulSet' };

function mergePatch(target: any, patch: any): any {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out = target && typeof target === 'object' && !Array.isArray(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/**
 * One controller step: first notice the new generation; then pods started last step become ready,
 * and one pod starts (up to one above the desired count, like maxSurge 1) or one old/surplus pod
 * goes. While a restart hook is in flight or has failed, nothing moves.
 */
function tick(w: Workload): void {
  if (w.observedGeneration < w.generation) {
    w.observedGeneration = w.generation;
    return;
  }
  if (w.hook || w.hookFailed) return;
  const desired = w.spec.replicas;
  for (const pod of w.pods) pod.ready = true;
  const current = w.pods.filter((p) => p.revision === w.revision);
  const old = w.pods.filter((p) => p.revision !== w.revision);
  if (current.length < desired && w.pods.length < desired + 1) w.pods.push({ revision: w.revision, ready: false });
  else if (old.length > 0) w.pods.splice(w.pods.indexOf(old[0]!), 1);
  else if (current.length > desired) w.pods.pop();
}

function render(w: Workload): Record<string, any> {
  const current = w.pods.filter((p) => p.revision === w.revision);
  const ready = w.pods.filter((p) => p.ready).length;
  const conditions = w.hookFailed
    ? [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: w.hookFailed }]
    : [{ type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' }];
  const status: Record<string, any> = {
    observedGeneration: w.observedGeneration,
    replicas: w.pods.length,
    updatedReplicas: current.length,
    readyReplicas: ready,
    availableReplicas: ready,
  };
  if (w.spec.kind === 'Deployment') status.conditions = conditions;
  else {
    status.currentReplicas = current.length;
    status.updateRevision = `${w.spec.name}-${w.revision}`;
    status.currentRevision = `${w.spec.name}-${w.revision}`;
  }
  return {
    apiVersion: 'apps/v1',
    kind: w.spec.kind,
    metadata: {
      name: w.spec.name,
      namespace: w.spec.namespace,
      generation: w.generation,
      resourceVersion: String(w.resourceVersion),
      uid: `standin-${w.spec.namespace}-${w.spec.name}`,
    },
    spec: {
      replicas: w.spec.replicas,
      selector: { matchLabels: { app: w.spec.name } },
      template: { metadata: w.template.metadata, spec: { containers: [{ name: w.spec.name, image: 'standin' }] } },
    },
    status,
  };
}

function scaleOf(w: Workload): Record<string, any> {
  return {
    apiVersion: 'autoscaling/v1',
    kind: 'Scale',
    metadata: { name: w.spec.name, namespace: w.spec.namespace, resourceVersion: String(w.resourceVersion) },
    spec: { replicas: w.spec.replicas },
    status: { replicas: w.pods.length, selector: `app=${w.spec.name}` },
  };
}

const statusBody = (code: number, reason: string, message: string) => ({ apiVersion: 'v1', kind: 'Status', status: 'Failure', code, reason, message });

export async function startKubeStandin(options: KubeStandinOptions): Promise<KubeStandin> {
  const token = randomBytes(16).toString('hex');
  const workloads = new Map<string, Workload>();
  const keyOf = (namespace: string, kind: StandinKind, name: string) => `${namespace}/${kind}/${name}`;
  for (const spec of options.workloads) {
    workloads.set(keyOf(spec.namespace, spec.kind, spec.name), {
      spec: { ...spec },
      generation: 1,
      observedGeneration: 1,
      revision: 1,
      template: { metadata: { annotations: {}, labels: { app: spec.name } } },
      pods: Array.from({ length: spec.replicas }, () => ({ revision: 1, ready: true })),
      resourceVersion: 1,
    });
  }
  const requests: StandinRequest[] = [];

  const startRestart = (w: Workload, restartedAt: string) => {
    if (!options.onRestart) return;
    const hook = Promise.resolve()
      .then(() => options.onRestart!({ namespace: w.spec.namespace, name: w.spec.name, restartedAt }))
      .then(
        () => undefined,
        (error: unknown) => {
          w.hookFailed = `ReplicaSet "${w.spec.name}-${w.revision}" has timed out progressing: ${error instanceof Error ? error.message : String(error)}`;
        },
      )
      .finally(() => {
        if (w.hook === hook) w.hook = undefined;
      });
    w.hook = hook;
  };

  const handle = async (req: IncomingMessage, body: unknown): Promise<[number, unknown]> => {
    const auth = req.headers.authorization ?? '';
    const presented = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    if (presented !== token && !(presented && options.acceptToken?.(presented))) return [401, statusBody(401, 'Unauthorized', 'Unauthorized')];
    const url = new URL(req.url ?? '/', 'http://standin');
    const m = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/(deployments|statefulsets)(?:\/([^/]+))?(?:\/(scale))?$/.exec(url.pathname);
    if (!m) return [404, statusBody(404, 'NotFound', `the server could not find the requested resource (${req.method} ${url.pathname})`)];
    const [, namespace = '', plural = '', name, sub] = m;
    const kind = PLURAL[plural]!;
    if (!name) {
      if (req.method !== 'GET') return [405, statusBody(405, 'MethodNotAllowed', 'method not allowed')];
      const items = [...workloads.values()].filter((w) => w.spec.namespace === namespace && w.spec.kind === kind);
      const list = { apiVersion: 'apps/v1', kind: `${kind}List`, metadata: { resourceVersion: '1' }, items: items.map(render) };
      items.forEach(tick);
      return [200, list];
    }
    const w = workloads.get(keyOf(namespace, kind, name));
    if (!w) return [404, statusBody(404, 'NotFound', `${plural}.apps "${name}" not found`)];
    if (req.method === 'GET') {
      // Answer with the state as it is, then let the controller move: the next poll sees progress.
      const answer = sub ? scaleOf(w) : render(w);
      tick(w);
      return [200, answer];
    }
    if (req.method !== 'PATCH' && req.method !== 'PUT') return [405, statusBody(405, 'MethodNotAllowed', 'method not allowed')];
    if (sub) {
      const replicas = (req.method === 'PUT' ? (body as any)?.spec?.replicas : mergePatch(scaleOf(w), body).spec?.replicas) as unknown;
      if (!Number.isInteger(replicas) || (replicas as number) < 0) return [422, statusBody(422, 'Invalid', 'spec.replicas must be a non-negative integer')];
      if (w.spec.replicas !== replicas) {
        w.spec.replicas = replicas as number;
        w.generation++;
        w.resourceVersion++;
      }
      return [200, scaleOf(w)];
    }
    if (req.method !== 'PATCH' || kind !== 'Deployment') return [405, statusBody(405, 'MethodNotAllowed', 'only PATCH of deployments is implemented')];
    const patched = mergePatch(render(w), body);
    const annotations = (patched.spec?.template?.metadata?.annotations ?? {}) as Record<string, string>;
    const templateChanged = JSON.stringify(annotations) !== JSON.stringify(w.template.metadata.annotations);
    if (Number.isInteger(patched.spec?.replicas) && patched.spec.replicas !== w.spec.replicas) {
      w.spec.replicas = patched.spec.replicas;
      w.generation++;
    }
    if (templateChanged) {
      w.template.metadata.annotations = { ...annotations };
      w.generation++;
      w.revision++;
      w.hookFailed = undefined;
      startRestart(w, annotations[RESTARTED_AT] ?? '');
    }
    w.resourceVersion++;
    return [200, render(w)];
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify(statusBody(400, 'BadRequest', 'body is not JSON')));
        return;
      }
      requests.push({ method: req.method ?? '', path: req.url ?? '', contentType: req.headers['content-type'], body });
      handle(req, body).then(
        ([code, payload]) => res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(payload)),
        (error: unknown) => res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify(statusBody(500, 'InternalError', String(error)))),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kubeconfig = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    // client-node refuses plain http unless TLS verification is off; there is no TLS to verify.
    `- name: standin\n  cluster:\n    server: ${url}\n    insecure-skip-tls-verify: true`,
    'users:',
    `- name: standin\n  user:\n    token: ${token}`,
    'contexts:',
    '- name: standin\n  context:\n    cluster: standin\n    user: standin',
    'current-context: standin',
    '',
  ].join('\n');

  return {
    url,
    token,
    kubeconfig,
    requests,
    get: (namespace, kind, name) => {
      const w = workloads.get(keyOf(namespace, kind, name));
      return w && render(w);
    },
    setReplicas: (namespace, kind, name, replicas) => {
      const w = workloads.get(keyOf(namespace, kind, name));
      if (!w) throw new Error(`stand-in has no ${kind} ${namespace}/${name}`);
      w.spec.replicas = replicas;
      w.generation++;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

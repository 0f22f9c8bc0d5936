/**
 * A stand-in for the few Kubernetes API endpoints the kube.* steps use, for the tests and the local
 * rehearsal (there is no API server here): Deployments and StatefulSets held in memory, list/get,
 * the scale subresource (GET/PATCH/PUT), PATCH of a deployment, and a controller that moves pods a
 * step per poll so scale-downs and rollouts take several polls, as they do on a cluster; the pods
 * themselves (list by label selector) and their portforward subresource, carried to a local TCP
 * address per pod (a real PgBouncer standing in for each PgBouncer pod).
 *
 * It is not a conformance fake: it implements exactly what the steps call, answers anything else
 * with 404, and applies every PATCH as a JSON merge patch (for the fields the steps touch,
 * strategic merge gives the same result).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import type { Duplex } from 'node:stream';

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
  /**
   * Where a port-forward to a pod's port goes: a local TCP address, or undefined for a pod with
   * nothing listening (the forward then fails as on a cluster). Pods are named `<workload>-<n>`.
   */
  podAddress?: (pod: { namespace: string; name: string; port: number }) => { host: string; port: number } | undefined;
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
  /** The names of a workload's pods, oldest first. */
  pods(namespace: string, kind: StandinKind, name: string): string[];
  /** Sets spec.replicas behind the steps' back (someone scaling by hand). */
  setReplicas(namespace: string, kind: StandinKind, name: string, replicas: number): void;
  close(): Promise<void>;
}

interface Pod {
  name: string;
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
  /** Names pods `<workload>-<n>`. */
  podsStarted: number;
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
  if (current.length < desired && w.pods.length < desired + 1)
    w.pods.push({ name: `${w.spec.name}-${++w.podsStarted}`, revision: w.revision, ready: false });
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

function renderPod(w: Workload, pod: Pod): Record<string, any> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: pod.name, namespace: w.spec.namespace, labels: { ...w.template.metadata.labels } },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: pod.ready ? 'True' : 'False' }] },
  };
}

const matchesSelector = (labels: Record<string, string>, selector: string | null) =>
  !selector ||
  selector.split(',').every((term) => {
    const [key, value] = term.split('=');
    return labels[key!] === value;
  });

const statusBody = (code: number, reason: string, message: string) => ({
  apiVersion: 'v1',
  kind: 'Status',
  status: 'Failure',
  code,
  reason,
  message,
});

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
      pods: Array.from({ length: spec.replicas }, (_, i) => ({ name: `${spec.name}-${i + 1}`, revision: 1, ready: true })),
      podsStarted: spec.replicas,
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
    if (presented !== token && !(presented && options.acceptToken?.(presented)))
      return [401, statusBody(401, 'Unauthorized', 'Unauthorized')];
    const url = new URL(req.url ?? '/', 'http://standin');
    const podList = /^\/api\/v1\/namespaces\/([^/]+)\/pods$/.exec(url.pathname);
    if (podList && req.method === 'GET') {
      const owners = [...workloads.values()].filter((w) => w.spec.namespace === podList[1]);
      const items = owners
        .flatMap((w) => w.pods.map((pod) => renderPod(w, pod)))
        .filter((pod) => matchesSelector(pod.metadata.labels, url.searchParams.get('labelSelector')));
      return [200, { apiVersion: 'v1', kind: 'PodList', metadata: { resourceVersion: '1' }, items }];
    }
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
      if (!Number.isInteger(replicas) || (replicas as number) < 0)
        return [422, statusBody(422, 'Invalid', 'spec.replicas must be a non-negative integer')];
      if (w.spec.replicas !== replicas) {
        w.spec.replicas = replicas as number;
        w.generation++;
        w.resourceVersion++;
      }
      return [200, scaleOf(w)];
    }
    if (req.method !== 'PATCH' || kind !== 'Deployment')
      return [405, statusBody(405, 'MethodNotAllowed', 'only PATCH of deployments is implemented')];
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
        (error: unknown) =>
          res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify(statusBody(500, 'InternalError', String(error)))),
      );
    });
  });
  const upgraded = new Set<Duplex>();
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    upgraded.add(socket);
    socket.on('close', () => upgraded.delete(socket));
    const auth = req.headers.authorization ?? '';
    const presented = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    const url = new URL(req.url ?? '/', 'http://standin');
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/portforward$/.exec(url.pathname);
    requests.push({ method: 'UPGRADE', path: req.url ?? '' });
    const refuse = (status: string) => socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
    if (presented !== token && !(presented && options.acceptToken?.(presented))) return refuse('401 Unauthorized');
    const pod = m && [...workloads.values()].find((w) => w.spec.namespace === m[1] && w.pods.some((p) => p.name === m[2]));
    if (!m || !pod) return refuse('404 Not Found');
    portForward(
      req,
      socket,
      Number(url.searchParams.get('ports')),
      options.podAddress?.({ namespace: m[1]!, name: m[2]!, port: Number(url.searchParams.get('ports')) }),
    );
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
    pods: (namespace, kind, name) => workloads.get(keyOf(namespace, kind, name))?.pods.map((p) => p.name) ?? [],
    setReplicas: (namespace, kind, name, replicas) => {
      const w = workloads.get(keyOf(namespace, kind, name));
      if (!w) throw new Error(`stand-in has no ${kind} ${namespace}/${name}`);
      w.spec.replicas = replicas;
      w.generation++;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        for (const socket of upgraded) socket.destroy();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

/**
 * The portforward subresource as the API server speaks it over WebSocket (channel.k8s.io framing):
 * each binary message starts with a channel byte, 0 for data and 1 for errors, and the first message
 * on each channel carries the port (2 bytes, little-endian). Only what client-node's PortForward
 * uses: one port, unfragmented binary frames, close and ping.
 */
function portForward(req: IncomingMessage, socket: Duplex, port: number, address: { host: string; port: number } | undefined): void {
  const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  const offered = String(req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((p) => p.trim());
  const protocol = offered.includes('v4.channel.k8s.io') ? 'v4.channel.k8s.io' : (offered[0] ?? '');
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
  );
  const frame = (opcode: number, payload: Buffer) => {
    const length = payload.length;
    const header =
      length < 126
        ? Buffer.from([0x80 | opcode, length])
        : length < 65536
          ? Buffer.from([0x80 | opcode, 126, length >> 8, length & 255])
          : Buffer.concat([
              Buffer.from([0x80 | opcode, 127]),
              (() => {
                const b = Buffer.alloc(8);
                b.writeBigUInt64BE(BigInt(length));
                return b;
              })(),
            ]);
    if (!socket.destroyed) socket.write(Buffer.concat([header, payload]));
  };
  const send = (channel: number, data: Buffer) => frame(2, Buffer.concat([Buffer.from([channel]), data]));
  const portBytes = Buffer.from([port & 255, port >> 8]);
  send(0, portBytes);
  send(1, portBytes);
  const close = () => {
    frame(8, Buffer.alloc(0));
    socket.end();
  };
  if (!address) {
    send(1, Buffer.from(`error forwarding port ${port}: nothing listens in the pod`));
    close();
    return;
  }
  const upstream = connect(address.port, address.host);
  upstream.on('data', (data: Buffer) => send(0, data));
  upstream.on('error', (error) => {
    send(1, Buffer.from(`error forwarding port ${port}: ${error.message}`));
    close();
  });
  upstream.on('end', close);
  let buffered = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    for (;;) {
      if (buffered.length < 2) return;
      const opcode = buffered[0]! & 0x0f;
      let length = buffered[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffered.length < 4) return;
        length = buffered.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffered.length < 10) return;
        length = Number(buffered.readBigUInt64BE(2));
        offset = 10;
      }
      const masked = (buffered[1]! & 0x80) !== 0;
      const mask = masked ? buffered.subarray(offset, offset + 4) : undefined;
      if (masked) offset += 4;
      if (buffered.length < offset + length) return;
      const payload = Buffer.from(buffered.subarray(offset, offset + length));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
      buffered = buffered.subarray(offset + length);
      if (opcode === 8) {
        upstream.end();
        close();
        return;
      }
      if (opcode === 9) frame(10, payload);
      else if (opcode === 2 && payload[0] === 0) upstream.write(payload.subarray(1));
    }
  });
  socket.on('close', () => upstream.destroy());
  socket.on('error', () => upstream.destroy());
}

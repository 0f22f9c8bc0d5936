/**
 * `kubectl port-forward pod/<name> <local>:<port>` without kubectl: a TCP listener on 127.0.0.1 whose
 * every connection is carried to the pod's port over the API server's portforward subresource
 * (client-node's PortForward, a WebSocket per connection). This is how an operator outside the
 * cluster reaches one particular pod; a Service would pick a pod for them.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { type KubeConfig, PortForward } from '@kubernetes/client-node';
import type { PodRef } from './pods.ts';

export interface Forward {
  /** The local port on 127.0.0.1. */
  port: number;
  close(): Promise<void>;
}

/** Carries one accepted connection to the pod; the error channel's text ends it with that error. */
function carry(forwarder: PortForward, pod: PodRef, port: number, socket: Socket): void {
  let failure = '';
  const errors = new Writable({
    write(chunk: Buffer, _encoding, done) {
      failure += chunk.toString('utf8');
      if (failure.trim()) socket.destroy(new Error(`port-forward to pod ${pod.namespace}/${pod.name}:${port}: ${failure.trim()}`));
      done();
    },
  });
  forwarder.portForward(pod.namespace, pod.name, [port], socket, errors, socket).then(
    (opened) => {
      const ws = typeof opened === 'function' ? opened() : opened;
      if (!ws) return socket.destroy();
      ws.on('close', () => socket.end());
      socket.on('close', () => ws.close());
    },
    (error: unknown) => socket.destroy(error instanceof Error ? error : new Error(String(error))),
  );
}

export async function forwardPodPort(config: KubeConfig, pod: PodRef, port: number): Promise<Forward> {
  const forwarder = new PortForward(config, true);
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    carry(forwarder, pod, port, socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

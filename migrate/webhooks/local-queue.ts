/**
 * The rehearsal's stand-in for the recorder's SQS queue: a directory with one JSON file per recorded
 * request, named by arrival sequence, plus an append-only `received.log` counting what the recorder
 * accepted. File-backed rather than in memory so that a CLI killed mid-replay resumes against the
 * same queue, which is the case the replay journal exists for.
 *
 * Visibility is kept in memory: a crash releases every in-flight message at once, which is what an
 * expired SQS visibility timeout does, only sooner. One replay runs at a time (the run lock), so no
 * cross-process visibility is needed.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { QueueCounts, RecordedQueue } from './recorded-queue.ts';
import type { ReceivedMessage, RecordedRequest } from './recorded-request.ts';

/** Queue URLs with this scheme name a stand-in directory instead of an SQS queue. */
export const LOCAL_QUEUE_SCHEME = 'local:';

const RECEIVED_LOG = 'received.log';

interface StoredRequest {
  id: string;
  method: string;
  path: string;
  query: string;
  headers: Array<[string, string]>;
  body: string;
  receivedAt: number | null;
  deadLetterReason?: string;
}

export class LocalQueueStore {
  #nextSequence: number | undefined;

  constructor(readonly dir: string) {}

  static fromUrl(url: string): LocalQueueStore {
    if (!url.startsWith(LOCAL_QUEUE_SCHEME)) throw new Error(`'${url}' is not a ${LOCAL_QUEUE_SCHEME}<directory> queue URL`);
    return new LocalQueueStore(url.slice(LOCAL_QUEUE_SCHEME.length));
  }

  get url(): string {
    return `${LOCAL_QUEUE_SCHEME}${this.dir}`;
  }

  /** Durably stores a request (fsynced) before returning its id; callers answer 2xx only after this. */
  async enqueue(request: Omit<RecordedRequest, 'id'>, options: { id?: string; deadLetterReason?: string } = {}): Promise<string> {
    await mkdir(this.dir, { recursive: true });
    this.#nextSequence ??= await this.#countReceived();
    const sequence = this.#nextSequence++;
    const id = options.id ?? `standin-${String(sequence).padStart(8, '0')}-${randomBytes(4).toString('hex')}`;
    const stored: StoredRequest = {
      id,
      method: request.method,
      path: request.path,
      query: request.query,
      headers: request.headers,
      body: request.body.toString('base64'),
      receivedAt: request.receivedAt,
      ...(options.deadLetterReason ? { deadLetterReason: options.deadLetterReason } : {}),
    };
    const name = `${String(sequence).padStart(10, '0')}-${id}.json`;
    await writeDurably(join(this.dir, `.${name}.tmp`), JSON.stringify(stored));
    await rename(join(this.dir, `.${name}.tmp`), join(this.dir, name));
    await writeDurably(join(this.dir, RECEIVED_LOG), `${id}\n`, 'a');
    return id;
  }

  /** Files of the stored requests, oldest first; the id is part of the name, so nothing is read. */
  async files(): Promise<Array<{ file: string; id: string }>> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    return names
      .filter((name) => /^\d{10}-.+\.json$/.test(name))
      .sort()
      .map((file) => ({ file, id: file.slice(11, -'.json'.length) }));
  }

  /** A stored request, or undefined when it was deleted meanwhile. */
  async read(file: string): Promise<StoredRequest | undefined> {
    try {
      return JSON.parse(await readFile(join(this.dir, file), 'utf8')) as StoredRequest;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /** Stored requests oldest first, with the file each lives in. */
  async list(): Promise<Array<{ file: string; stored: StoredRequest }>> {
    const out: Array<{ file: string; stored: StoredRequest }> = [];
    for (const { file } of await this.files()) {
      const stored = await this.read(file);
      if (stored) out.push({ file, stored });
    }
    return out;
  }

  async remove(file: string): Promise<void> {
    await rm(join(this.dir, file), { force: true });
  }

  async receivedTotal(): Promise<number> {
    return this.#countReceived();
  }

  async #countReceived(): Promise<number> {
    try {
      return (await readFile(join(this.dir, RECEIVED_LOG), 'utf8')).split('\n').filter(Boolean).length;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw error;
    }
  }
}

export function toRecordedRequest(stored: StoredRequest): RecordedRequest {
  return {
    id: stored.id,
    method: stored.method,
    path: stored.path,
    query: stored.query,
    headers: stored.headers,
    body: Buffer.from(stored.body, 'base64'),
    receivedAt: stored.receivedAt,
  };
}

/** The replay's view of a stand-in queue and its dead-letter directory. */
export class LocalRecordedQueue implements RecordedQueue {
  readonly kind = 'local stand-in';
  readonly label: string;
  readonly #invisibleUntil = new Map<string, number>();
  readonly #files = new WeakMap<ReceivedMessage, { file: string; request: RecordedRequest }>();

  constructor(
    private readonly store: LocalQueueStore,
    private readonly deadLetter: LocalQueueStore,
    private readonly now: () => number = Date.now,
  ) {
    this.label = `local stand-in queue ${store.dir}`;
  }

  async receive(max: number, visibilitySeconds: number): Promise<ReceivedMessage[]> {
    const now = this.now();
    const out: ReceivedMessage[] = [];
    // Only the files handed out are read: the queue can hold thousands while a batch is a few.
    for (const { file, id } of await this.store.files()) {
      if (out.length >= max) break;
      if ((this.#invisibleUntil.get(id) ?? 0) > now) {
        // FIFO with one message group: nothing behind an in-flight message is handed out.
        break;
      }
      const stored = await this.store.read(file);
      if (!stored) continue;
      this.#invisibleUntil.set(stored.id, now + visibilitySeconds * 1000);
      const request = toRecordedRequest(stored);
      const message: ReceivedMessage = { id: stored.id, receipt: `${stored.id}@${now}`, request };
      this.#files.set(message, { file, request });
      out.push(message);
    }
    return out;
  }

  async release(message: ReceivedMessage): Promise<void> {
    this.#invisibleUntil.delete(message.id);
  }

  async delete(message: ReceivedMessage): Promise<void> {
    await this.store.remove(this.#entry(message).file);
    this.#invisibleUntil.delete(message.id);
  }

  async sendToDeadLetter(message: ReceivedMessage, reason: string): Promise<void> {
    const { request } = this.#entry(message);
    // Keyed by the original id, so a resend after a crash does not add a second copy.
    if ((await this.deadLetter.files()).some(({ id }) => id === message.id)) return;
    await this.deadLetter.enqueue(request, { id: message.id, deadLetterReason: reason });
  }

  async counts(): Promise<QueueCounts> {
    const now = this.now();
    const files = await this.store.files();
    const inFlight = files.filter(({ id }) => (this.#invisibleUntil.get(id) ?? 0) > now).length;
    return { visible: files.length - inFlight, inFlight };
  }

  async receivedTotal(): Promise<number> {
    return this.store.receivedTotal();
  }

  #entry(message: ReceivedMessage): { file: string; request: RecordedRequest } {
    const entry = this.#files.get(message);
    if (!entry) throw new Error(`message ${message.id} was not received from ${this.label}`);
    return entry;
  }
}

/** Writes (flag 'w') or appends (flag 'a') and fsyncs before returning. */
async function writeDurably(path: string, text: string, flag: 'w' | 'a' = 'w'): Promise<void> {
  const handle = await open(path, flag, 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * The application stand-in: writers that keep committing transactions through PgBouncer, as the app
 * role, for the whole rehearsal. Each writer remembers the id of every transaction it saw commit, so
 * the rehearsal can prove none was lost, and the commit times give the write-unavailability window.
 * Writers retry on errors (as an app would) and never give up until stopped.
 */

import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';

export interface WorkloadOptions {
  /** Connection (through PgBouncer) as the app role. */
  connectionString: string;
  writers: number;
  /** Pause between a writer's transactions, to keep the load realistic rather than saturating. */
  thinkMs: number;
  /** How many customers exist (updates pick among them). */
  customers: number;
}

export interface WriteError {
  at: number;
  message: string;
}

export interface WorkloadResult {
  committed: number[];
  commitTimes: number[];
  errors: WriteError[];
  /** Longest time any single transaction took, including time held by a paused PgBouncer. */
  longestTransactionMs: number;
}

/**
 * One transaction touches what a cutover can get wrong: an insert taking a serial and a standalone
 * sequence value, an update that leaves a TOASTed column alone, a write to the table without a
 * primary key, and one to a partitioned table.
 */
export const TRANSACTION = `
with o as (
  insert into public.orders (customer_id, amount_cents, report_number)
  values ($1, $2, nextval('analytics.report_number_seq')) returning id
), c as (
  update billing.customers set mrr_cents = mrr_cents + 1 where id = $1 returning id
), e as (
  insert into analytics.events (kind, payload) select 'order', jsonb_build_object('order', o.id) from o
), i as (
  insert into billing.invoices (issued_on, customer_id, total_cents, lines)
  select current_date, $1, $2, jsonb_build_array(jsonb_build_object('order', o.id)) from o
)
select id from o`;

export class Workload {
  readonly #options: WorkloadOptions;
  #running = true;
  readonly #writers: Promise<void>[] = [];
  readonly #result: WorkloadResult = { committed: [], commitTimes: [], errors: [], longestTransactionMs: 0 };

  constructor(options: WorkloadOptions) {
    this.#options = options;
  }

  start(): this {
    for (let w = 0; w < this.#options.writers; w++) this.#writers.push(this.#writer(w));
    return this;
  }

  get committedCount(): number {
    return this.#result.committed.length;
  }

  async #writer(index: number): Promise<void> {
    let client: pg.Client | undefined;
    let n = index;
    while (this.#running) {
      try {
        if (!client) {
          client = new pg.Client({ connectionString: this.#options.connectionString, application_name: `rehearsal-writer-${index}` });
          client.on('error', () => {});
          await client.connect();
        }
        n += this.#options.writers;
        const customer = 1 + (n % this.#options.customers);
        const started = Date.now();
        const { rows } = await client.query<{ id: string }>(TRANSACTION, [customer, 100 + (n % 9000)]);
        const finished = Date.now();
        this.#result.committed.push(Number(rows[0]!.id));
        this.#result.commitTimes.push(finished);
        this.#result.longestTransactionMs = Math.max(this.#result.longestTransactionMs, finished - started);
      } catch (error) {
        this.#result.errors.push({ at: Date.now(), message: (error as Error).message });
        await client?.end().catch(() => {});
        client = undefined;
        await delay(20);
      }
      await delay(this.#options.thinkMs);
    }
    await client?.end().catch(() => {});
  }

  async stop(): Promise<WorkloadResult> {
    this.#running = false;
    await Promise.all(this.#writers);
    return this.#result;
  }
}

/**
 * The longest stretch with no committed write, within [from, to]: what users of the app felt as
 * "writes are down" during the switch.
 */
export function longestWriteGap(commitTimes: number[], from: number, to: number): { ms: number; start: number; end: number } {
  const times = [from, ...commitTimes.filter((t) => t > from && t < to).sort((a, b) => a - b), to];
  let best = { ms: 0, start: from, end: from };
  for (let i = 1; i < times.length; i++) {
    const gap = times[i]! - times[i - 1]!;
    if (gap > best.ms) best = { ms: gap, start: times[i - 1]!, end: times[i]! };
  }
  return best;
}

/**
 * The replay's write-ahead record in the run journal, one change per state a message passes through:
 *   sending   — recorded before the first HTTP attempt (again, with `resend`, when an interrupted
 *               attempt left it unresolved and it is sent once more);
 *   delivered — recorded after a 2xx, before the message is deleted from the queue;
 *   failed    — recorded before the message is copied to the dead-letter queue and deleted.
 * On resume the last state of each id says what is left to do, so no message is sent twice by the
 * tool once it is known delivered and none is skipped. Only ids, statuses and reasons go in: never
 * bodies, header values or paths.
 */
import type { Json, StepContext } from '../core/step.ts';

export type DeliveryState = 'sending' | 'delivered' | 'failed';

export interface DeliveryChange {
  webhook: string;
  state: DeliveryState;
  status?: number;
  attempts?: number;
  reason?: string;
  /** On a `sending` that repeats one an interrupted attempt left unresolved. */
  resend?: boolean;
}

function isDeliveryChange(change: Json): change is DeliveryChange & { [key: string]: Json } {
  return (
    typeof change === 'object' &&
    change !== null &&
    !Array.isArray(change) &&
    typeof change.webhook === 'string' &&
    typeof change.state === 'string'
  );
}

export class ReplayLedger {
  readonly #last = new Map<string, DeliveryChange>();
  #resends = 0;

  static from(previousChanges: readonly Json[]): ReplayLedger {
    const ledger = new ReplayLedger();
    for (const change of previousChanges) if (isDeliveryChange(change)) ledger.#note(change);
    return ledger;
  }

  get(id: string): DeliveryChange | undefined {
    return this.#last.get(id);
  }

  /** Journals the change (fsynced) before the caller acts on it. */
  async mark(ctx: StepContext, change: DeliveryChange): Promise<void> {
    await ctx.record({ ...change });
    this.#note(change);
  }

  /** Requests sent again after an interruption, across every attempt of the step. */
  get resends(): number {
    return this.#resends;
  }

  #note(change: DeliveryChange): void {
    this.#last.set(change.webhook, change);
    if (change.resend) this.#resends++;
  }

  count(state: DeliveryState): number {
    let n = 0;
    for (const change of this.#last.values()) if (change.state === state) n++;
    return n;
  }
}

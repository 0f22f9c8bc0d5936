/** Spaces HTTP attempts at most `perSecond` apart across all concurrent senders, on the step's clock. */
import type { StepContext } from '../core/step.ts';

export class RateGate {
  #nextAt = 0;

  constructor(
    private readonly ctx: Pick<StepContext, 'now' | 'sleep'>,
    private readonly perSecond: number | undefined,
  ) {}

  async wait(): Promise<void> {
    if (!this.perSecond) return;
    const now = this.ctx.now();
    // Reserve the slot before sleeping, so concurrent callers queue behind each other.
    const at = Math.max(now, this.#nextAt);
    this.#nextAt = at + 1000 / this.perSecond;
    if (at > now) await this.ctx.sleep(at - now);
  }
}

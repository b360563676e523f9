/**
 * Which mirror the next request goes to: the bookkeeping of one mirror set
 * (requests in flight, measured throughput, cooldowns, removals) and the
 * choice made from it. No I/O: the {@link MirrorReader} feeds it and asks it.
 */

/** What the policy knows of one mirror. */
export interface MirrorState {
  /** Position in the list the caller gave (0 is the first URL). */
  readonly index: number;
  /** Requests sent to it whose bodies have not ended. */
  inFlight: number;
  /** Requests sent to it, in total (for reports and tests). */
  requests: number;
  /** Body bytes it delivered. */
  bytes: number;
  /**
   * Throughput of one of its requests, bytes per second: a moving average
   * over finished bodies, undefined until the first one ends.
   */
  bytesPerSecond: number | undefined;
  /** `performance.now()` before which it is not chosen while another mirror is free of a cooldown. */
  coolUntil: number;
  /** Retryable failures in a row (a success resets it): each one doubles the cooldown. */
  failuresInARow: number;
  /** Taken out for the rest of the run (failed the first look, or changed). */
  removed: boolean;
}

/** How the policy weighs and cools down mirrors. */
export interface MirrorPolicyOptions {
  /** The cooldown after a first retryable failure, in ms; doubled per failure in a row. */
  readonly cooldownMs: number;
  /** The longest cooldown, in ms. */
  readonly maxCooldownMs: number;
}

/** Weight of the newest measurement in the moving average of a mirror's throughput. */
const NEWEST_WEIGHT = 0.5;

/**
 * The state of every mirror and the rule that picks one for a request:
 * among the mirrors not removed and not cooling down (or, when every one is
 * cooling down, the one whose cooldown ends first), the one whose next
 * request would finish soonest by its measurements, estimated as
 * `(inFlight + 1) / bytesPerSecond`. A mirror not yet measured is assumed
 * as fast as the fastest measured one, so each gets tried; ties go to the
 * mirror with fewer requests so far, then to the earlier one in the list.
 *
 * @example
 * ```ts
 * const policy = new MirrorPolicy(2, { cooldownMs: 2000, maxCooldownMs: 30_000 });
 * const m = policy.pick(performance.now());
 * if (m !== undefined) policy.started(m);
 * ```
 */
export class MirrorPolicy {
  readonly mirrors: readonly MirrorState[];
  readonly #options: MirrorPolicyOptions;

  constructor(count: number, options: MirrorPolicyOptions) {
    this.#options = options;
    this.mirrors = Array.from({ length: count }, (_, index) => ({
      index,
      inFlight: 0,
      requests: 0,
      bytes: 0,
      bytesPerSecond: undefined,
      coolUntil: 0,
      failuresInARow: 0,
      removed: false,
    }));
  }

  /** The mirrors still in use. */
  active(): MirrorState[] {
    return this.mirrors.filter((m) => !m.removed);
  }

  /**
   * The mirror for the next request at time `now`, or undefined when every
   * mirror was removed. `exclude` leaves out mirrors already tried for this
   * request.
   */
  pick(now: number, exclude: ReadonlySet<number> = new Set()): MirrorState | undefined {
    const candidates = this.active().filter((m) => !exclude.has(m.index));
    if (candidates.length === 0) return undefined;
    const ready = candidates.filter((m) => m.coolUntil <= now);
    if (ready.length === 0) return candidates.reduce((a, b) => (b.coolUntil < a.coolUntil ? b : a));
    const measured = ready.map((m) => m.bytesPerSecond).filter((r): r is number => r !== undefined);
    const assumed = measured.length === 0 ? 1 : Math.max(...measured);
    const cost = (m: MirrorState): number => (m.inFlight + 1) / Math.max(m.bytesPerSecond ?? assumed, 1);
    return ready.reduce((best, m) => {
      const a = cost(m);
      const b = cost(best);
      if (a !== b) return a < b ? m : best;
      return m.requests < best.requests ? m : best;
    });
  }

  /** A request was sent to `m`. */
  started(m: MirrorState): void {
    m.inFlight++;
    m.requests++;
  }

  /**
   * A request to `m` ended after delivering `bytes` in `ms`: its throughput
   * joins the moving average (bodies too short to time say nothing).
   */
  ended(m: MirrorState, bytes: number, ms: number, ok: boolean): void {
    m.inFlight = Math.max(0, m.inFlight - 1);
    m.bytes += bytes;
    if (ok) m.failuresInARow = 0;
    if (bytes >= 64 * 1024 && ms > 0) {
      const rate = (bytes * 1000) / ms;
      m.bytesPerSecond = m.bytesPerSecond === undefined ? rate : NEWEST_WEIGHT * rate + (1 - NEWEST_WEIGHT) * m.bytesPerSecond;
    }
  }

  /** `m` failed retryably at `now`: it cools down (longer for each failure in a row); returns the cooldown in ms. */
  failed(m: MirrorState, now: number): number {
    m.failuresInARow++;
    const ms = Math.min(this.#options.maxCooldownMs, this.#options.cooldownMs * 2 ** (m.failuresInARow - 1));
    m.coolUntil = now + ms;
    return ms;
  }

  /** `m` is out for the rest of the run. */
  remove(m: MirrorState): void {
    m.removed = true;
  }
}

/**
 * The closed-state bookkeeping of a circuit breaker: what it remembers of recent calls and when
 * that memory says "trip". Three kinds:
 *
 * - consecutive: trips after N bad calls in a row (a good call resets the run);
 * - count window: the last N calls in a ring buffer, trips when the bad-call rate reaches the
 *   threshold once at least `minimumCalls` calls were seen;
 * - time window: calls bucketed over a sliding time window (B buckets of window/B each), trips
 *   on the same rule.
 *
 * A "bad" call is a failure or, for the rate rules, a slow call judged against its own rate.
 * Every operation is O(1) (a time window's rotation is amortised O(1)) and allocates nothing.
 * Not thread-safe by itself: the breaker calls it only inside synchronous steps.
 */

/** The outcome of one call as the window sees it. */
export interface Outcome {
  readonly failure: boolean
  readonly slow: boolean
}

/** Serialisable content of a window. */
export type WindowSnapshot =
  | { readonly _tag: "consecutive"; readonly consecutiveFailures: number }
  | { readonly _tag: "count"; readonly outcomes: ReadonlyArray<number> }
  | {
    readonly _tag: "time"
    readonly bucketStart: number
    /** Per bucket, oldest first: [calls, failures, slow]. */
    readonly buckets: ReadonlyArray<readonly [number, number, number]>
  }

/** Figures a window can report. */
export interface WindowFigures {
  readonly calls: number
  readonly failures: number
  readonly slowCalls: number
  readonly consecutiveFailures: number
}

export interface BreakerWindow {
  /** Records an outcome; returns true when the window says the breaker must trip. */
  record(failure: boolean, slow: boolean, now: number): boolean
  reset(): void
  figures(now: number): WindowFigures
  snapshot(): WindowSnapshot
  restore(snapshot: WindowSnapshot): void
}

const FAILURE = 1
const SLOW = 2

/** Trips after `threshold` bad calls in a row; slow calls count as bad. */
export class ConsecutiveWindow implements BreakerWindow {
  private run = 0
  constructor(private readonly threshold: number) {}
  record(failure: boolean, slow: boolean): boolean {
    if (failure || slow) return ++this.run >= this.threshold
    this.run = 0
    return false
  }
  reset(): void {
    this.run = 0
  }
  figures(): WindowFigures {
    return { calls: 0, failures: 0, slowCalls: 0, consecutiveFailures: this.run }
  }
  snapshot(): WindowSnapshot {
    return { _tag: "consecutive", consecutiveFailures: this.run }
  }
  restore(snapshot: WindowSnapshot): void {
    if (snapshot._tag === "consecutive") this.run = Math.min(snapshot.consecutiveFailures, this.threshold - 1)
  }
}

/** Rate rule shared by the count and time windows. */
export interface RateRule {
  readonly failureRate: number
  readonly minimumCalls: number
  /** Slow-call rate that trips, or undefined when slow calls are not tracked. */
  readonly slowRate: number | undefined
}

const trips = (rule: RateRule, calls: number, failures: number, slow: number): boolean =>
  calls >= rule.minimumCalls &&
  (failures >= rule.failureRate * calls || (rule.slowRate !== undefined && slow >= rule.slowRate * calls))

/** The last `size` calls in a ring buffer. */
export class CountWindow implements BreakerWindow {
  private readonly ring: Uint8Array
  private next = 0
  private filled = 0
  private failures = 0
  private slow = 0
  private run = 0
  constructor(size: number, private readonly rule: RateRule) {
    this.ring = new Uint8Array(size)
  }
  record(failure: boolean, slow: boolean): boolean {
    const ring = this.ring
    if (this.filled === ring.length) {
      const old = ring[this.next]!
      if (old & FAILURE) this.failures--
      if (old & SLOW) this.slow--
    } else {
      this.filled++
    }
    ring[this.next] = (failure ? FAILURE : 0) | (slow ? SLOW : 0)
    this.next = this.next + 1 === ring.length ? 0 : this.next + 1
    if (failure) this.failures++
    if (slow) this.slow++
    this.run = failure ? this.run + 1 : 0
    return trips(this.rule, this.filled, this.failures, this.slow)
  }
  reset(): void {
    this.ring.fill(0)
    this.next = 0
    this.filled = 0
    this.failures = 0
    this.slow = 0
    this.run = 0
  }
  figures(): WindowFigures {
    return { calls: this.filled, failures: this.failures, slowCalls: this.slow, consecutiveFailures: this.run }
  }
  snapshot(): WindowSnapshot {
    const outcomes: Array<number> = []
    const start = this.filled === this.ring.length ? this.next : 0
    for (let i = 0; i < this.filled; i++) outcomes.push(this.ring[(start + i) % this.ring.length]!)
    return { _tag: "count", outcomes }
  }
  restore(snapshot: WindowSnapshot): void {
    if (snapshot._tag !== "count") return
    this.reset()
    const outcomes = snapshot.outcomes.slice(-this.ring.length)
    for (const o of outcomes) this.record((o & FAILURE) !== 0, (o & SLOW) !== 0)
  }
}

/** Calls bucketed over a sliding time window. */
export class TimeWindow implements BreakerWindow {
  private readonly calls: Float64Array
  private readonly failures: Float64Array
  private readonly slow: Float64Array
  private readonly bucketMillis: number
  /** Start time of the current (newest) bucket. */
  private bucketStart = Number.NEGATIVE_INFINITY
  private current = 0
  private totalCalls = 0
  private totalFailures = 0
  private totalSlow = 0
  private run = 0
  constructor(windowMillis: number, private readonly bucketCount: number, private readonly rule: RateRule) {
    this.bucketMillis = windowMillis / bucketCount
    this.calls = new Float64Array(bucketCount)
    this.failures = new Float64Array(bucketCount)
    this.slow = new Float64Array(bucketCount)
  }
  /** Moves the current bucket forward to the one holding `now`, clearing the buckets passed. */
  private rotate(now: number): void {
    if (now < this.bucketStart + this.bucketMillis) return
    if (this.bucketStart === Number.NEGATIVE_INFINITY) {
      this.bucketStart = now
      return
    }
    const steps = Math.floor((now - this.bucketStart) / this.bucketMillis)
    const clear = Math.min(steps, this.bucketCount)
    for (let i = 1; i <= clear; i++) {
      const b = (this.current + i) % this.bucketCount
      this.totalCalls -= this.calls[b]!
      this.totalFailures -= this.failures[b]!
      this.totalSlow -= this.slow[b]!
      this.calls[b] = 0
      this.failures[b] = 0
      this.slow[b] = 0
    }
    this.current = (this.current + steps) % this.bucketCount
    this.bucketStart += steps * this.bucketMillis
  }
  record(failure: boolean, slow: boolean, now: number): boolean {
    this.rotate(now)
    const b = this.current
    this.calls[b]!++
    this.totalCalls++
    if (failure) {
      this.failures[b]!++
      this.totalFailures++
    }
    if (slow) {
      this.slow[b]!++
      this.totalSlow++
    }
    this.run = failure ? this.run + 1 : 0
    return trips(this.rule, this.totalCalls, this.totalFailures, this.totalSlow)
  }
  reset(): void {
    this.calls.fill(0)
    this.failures.fill(0)
    this.slow.fill(0)
    this.totalCalls = 0
    this.totalFailures = 0
    this.totalSlow = 0
    this.run = 0
    this.bucketStart = Number.NEGATIVE_INFINITY
    this.current = 0
  }
  figures(now: number): WindowFigures {
    this.rotate(now)
    return {
      calls: this.totalCalls,
      failures: this.totalFailures,
      slowCalls: this.totalSlow,
      consecutiveFailures: this.run
    }
  }
  snapshot(): WindowSnapshot {
    const buckets: Array<readonly [number, number, number]> = []
    for (let i = 1; i <= this.bucketCount; i++) {
      const b = (this.current + i) % this.bucketCount
      buckets.push([this.calls[b]!, this.failures[b]!, this.slow[b]!])
    }
    return {
      _tag: "time",
      bucketStart: Number.isFinite(this.bucketStart) ? this.bucketStart : 0,
      buckets
    }
  }
  restore(snapshot: WindowSnapshot): void {
    if (snapshot._tag !== "time") return
    this.reset()
    const buckets = snapshot.buckets.slice(-this.bucketCount)
    const offset = this.bucketCount - buckets.length
    buckets.forEach(([calls, failures, slow], i) => {
      const b = (offset + i + 1) % this.bucketCount
      this.calls[b] = calls
      this.failures[b] = failures
      this.slow[b] = slow
      this.totalCalls += calls
      this.totalFailures += failures
      this.totalSlow += slow
    })
    this.current = 0
    this.bucketStart = buckets.length > 0 ? snapshot.bucketStart : Number.NEGATIVE_INFINITY
  }
}

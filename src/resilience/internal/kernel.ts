/**
 * Synchronous admission hooks that the policies expose to `Protect`'s fused promise path (not
 * public API). Through them, one `Effect.async` registration checks the rate limit, takes a
 * bulkhead slot, asks the breaker, registers the deadline and starts the promise, and the
 * promise's settlement gives everything back, instead of stacking one effect wrapper (and an
 * interruption mask) per policy. Each hook runs inside a synchronous step and never runs user
 * code.
 */
import type {
  CircuitOpenError,
  RateLimitedError,
  TimeoutError,
  ValidationError
} from "../../errors/FoundationError.js"
import type { DeadlineWheel } from "./deadlineWheel.js"

export const BreakerKernel: unique symbol = Symbol.for("effect-foundation/internal/BreakerKernel")
export const BulkheadKernel: unique symbol = Symbol.for("effect-foundation/internal/BulkheadKernel")
export const LimiterKernel: unique symbol = Symbol.for("effect-foundation/internal/LimiterKernel")
export const TimeoutKernel: unique symbol = Symbol.for("effect-foundation/internal/TimeoutKernel")

/** How a finished call counts for a breaker. */
export const GOOD = 0
export const BAD = 1
export const NEUTRAL = 2
export type Verdict = 0 | 1 | 2

/** An admitted call: the epoch it was admitted in, whether it is a trial call, when it started. */
export interface Ticket {
  readonly epoch: number
  readonly probe: boolean
  /** Start time in ms, or -1 when the breaker does not time its calls. */
  readonly start: number
}

export interface BreakerKernelApi {
  /** Admits a call (a ticket) or rejects it (the error, already counted). */
  admit(): Ticket | CircuitOpenError
  /** Records the outcome of an admitted call. */
  settle(ticket: Ticket, verdict: Verdict): void
  /** How a typed failure counts (the breaker's `isFailure`). */
  verdictOf(error: unknown): Verdict
}

export interface BulkheadKernelApi {
  /** Takes a free slot if there is one, without queueing. */
  tryAcquire(): boolean
  /** Gives a slot back (to the oldest waiter, if any). */
  release(): void
}

export interface LimiterKernelApi {
  /** Consumes `cost` for `key` at `now`, or returns the denial (having consumed nothing). */
  tryConsume(key: string, cost: number, now: number): RateLimitedError | undefined
}

export interface TimeoutKernelApi {
  readonly wheel: DeadlineWheel
  /** The time limit of a call, in ms, from an optional per-call override (validated). */
  millisOf(override: unknown): number | ValidationError
  /** The error of a call that ran out of time (counted in the metrics unless at shutdown). */
  error(millis: number, shutdown?: boolean): TimeoutError
}

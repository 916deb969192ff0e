/**
 * The delay schedules behind `Retry`'s policies, and the limit wrapper (attempts, time budget)
 * shared by `Retry.retry`'s loop and the standalone `policy.schedule`.
 *
 * Every schedule here outputs the delay it chose (a `Duration`) and takes any input. Delays are
 * in milliseconds; jittered ones are whole milliseconds. Randomness comes only from `Random`
 * (so a seeded `Random` makes a run reproducible) and the current time only from the `now`
 * the schedule is stepped with.
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleInterval from "effect/ScheduleInterval"
import * as ScheduleIntervals from "effect/ScheduleIntervals"

/** How an exponential policy randomises its delays. */
export type Jitter = "none" | "full" | "equal" | "decorrelated"

/** A schedule of retry delays: its output is the delay it chose. */
export type DelaySchedule = Schedule.Schedule<Duration.Duration, unknown>

type Step<S> = readonly [S, Duration.Duration, ScheduleDecision.ScheduleDecision]

const continueAfter = <S>(now: number, state: S, delayMillis: number): Step<S> => [
  state,
  Duration.millis(delayMillis),
  ScheduleDecision.continueWith(ScheduleInterval.after(now + delayMillis))
]

/** Delays given by a pure function of the retry index n (0 for the first retry). */
export const byIndex = (delayAt: (n: number) => number): DelaySchedule =>
  Schedule.makeWithState(0, (now, _input: unknown, n: number) => Effect.succeed(continueAfter(now, n + 1, delayAt(n))))

/** Delays given by a function of the retry index and a uniform draw u ∈ [0, 1) from `Random`. */
export const byIndexRandom = (delayAt: (n: number, u: number) => number): DelaySchedule =>
  Schedule.makeWithState(
    0,
    (now, _input: unknown, n: number) => Effect.map(Random.next, (u) => continueAfter(now, n + 1, delayAt(n, u)))
  )

/**
 * Exponential delays min(cap, base·factorⁿ) with a jitter:
 * - none: the delay d itself;
 * - full: uniform in [0, d);
 * - equal: d/2 + uniform in [0, d/2);
 * - decorrelated (AWS): min(cap, uniform in [base, 3·previous)), starting from previous = base;
 *   `factor` plays no part.
 * Jittered delays are whole milliseconds (timers have no finer resolution, and whole numbers
 * keep clock arithmetic exact); the rounding keeps them within the bounds above.
 */
export const exponential = (baseMillis: number, factor: number, capMillis: number, jitter: Jitter): DelaySchedule => {
  const delayAt = (n: number) => Math.min(capMillis, baseMillis * factor ** n)
  switch (jitter) {
    case "none":
      return byIndex(delayAt)
    case "full":
      return byIndexRandom((n, u) => Math.floor(u * delayAt(n)))
    case "equal":
      return byIndexRandom((n, u) => {
        const d = delayAt(n)
        const half = Math.ceil(d / 2)
        return half + Math.floor(u * (d - half))
      })
    case "decorrelated":
      return Schedule.makeWithState(baseMillis, (now, _input: unknown, previous: number) =>
        Effect.map(Random.next, (u) => {
          const d = Math.min(capMillis, Math.max(baseMillis, Math.floor(baseMillis + u * (previous * 3 - baseMillis))))
          return continueAfter(now, d, d)
        }))
  }
}

/** Linear delays min(cap, initial + n·increment). */
export const linear = (initialMillis: number, incrementMillis: number, capMillis: number): DelaySchedule =>
  byIndex((n) => Math.min(capMillis, initialMillis + n * incrementMillis))

/** The same delay every time (zero for `immediate`). */
export const constant = (delayMillis: number): DelaySchedule => byIndex(() => delayMillis)

/**
 * The original ErrorHandler's backoff: min(100·2ⁿ + U{1..100}, 5000) ms, the jitter being a
 * whole number of milliseconds from 1 to 100 added before the cap.
 */
export const errorHandler: DelaySchedule = Schedule.makeWithState(
  0,
  (now, _input: unknown, n: number) =>
    Effect.map(
      Random.nextIntBetween(1, 101),
      (jitter) => continueAfter(now, n + 1, Math.min(100 * 2 ** n + jitter, 5000))
    )
)

/** The state of a limited schedule. */
export interface LimitState {
  readonly inner: unknown
  /** Retries granted so far. */
  readonly retries: number
  /** When the first attempt started (epoch ms); set on the first step when not seeded. */
  readonly start: number | undefined
}

/** The limits every policy has. */
export interface Limits {
  /** Total attempts, the first one included (Infinity: no limit). */
  readonly maxAttempts: number
  /** Time budget in ms from the start of the first attempt (Infinity: none). */
  readonly maxElapsedMillis: number
}

const stop = <S>(state: S): Step<S> => [state, Duration.zero, ScheduleDecision.done]

/**
 * Wraps a schedule with the limits: after the failure of attempt k (k = retries + 1), it stops
 * when k ≥ maxAttempts, when the inner schedule is done, or when the next attempt would start
 * later than `start + maxElapsed`; otherwise it continues with the inner schedule's delay.
 * When stepped by `Effect.retry` (not seeded), `start` is the time of the first failure.
 */
export const limited = (inner: Schedule.Schedule<unknown, unknown>, limits: Limits): DelaySchedule =>
  Schedule.makeWithState<LimitState, unknown, Duration.Duration>(
    { inner: inner.initial, retries: 0, start: undefined },
    (now, input, state) => {
      const start = state.start ?? now
      if (state.retries + 1 >= limits.maxAttempts) return Effect.succeed(stop(state))
      return Effect.map(inner.step(now, input, state.inner), ([innerState, _out, decision]): Step<LimitState> => {
        const next: LimitState = { inner: innerState, retries: state.retries + 1, start }
        if (ScheduleDecision.isDone(decision)) return stop(next)
        const at = Math.max(now, ScheduleIntervals.start(decision.intervals))
        if (at - start > limits.maxElapsedMillis) return stop(next)
        return [next, Duration.millis(at - now), ScheduleDecision.continueWith(ScheduleInterval.after(at))]
      })
    }
  )

/** The initial state of a limited schedule with the start of the first attempt filled in. */
export const seeded = (schedule: DelaySchedule, start: number | undefined): LimitState => {
  const initial = schedule.initial as LimitState
  return start === undefined ? initial : { ...initial, start }
}

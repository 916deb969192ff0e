/**
 * Retry policies as `Schedule`s, a retry loop that understands error categories, and a retry
 * budget shared between callers.
 *
 * - Policies: `exponential` (jitter none / full / equal / decorrelated), `fixed`, `linear`
 *   (really linear), `immediate` (zero delay), `fromSchedule` (any `Schedule`), and the
 *   original's named defaults in `presets`. Every policy has `maxAttempts` (TOTAL attempts, the
 *   first one included; default 4, i.e. 3 retries) and `maxElapsed` (a time budget measured
 *   from the start of the first attempt; no retry starts after it; default none).
 *   Constructors validate their options and return `Either<Policy, ValidationError>` (a policy
 *   is a value: building one has no effect), the error naming the offending field.
 * - `retry(effect, policy, options?)`: retries failures whose category is retryable
 *   (`transient`, `resource`); failures without a category (plain values, foreign errors) are
 *   NOT retried unless a `while` / `until` predicate says so. Defects and interruptions are
 *   never retried. When it gives up it fails with the original last failure (the same error
 *   object, its full `Cause`), never a wrapper. With no failure it costs one extra frame (plus
 *   one clock read when the policy has a `maxElapsed`): the schedule is stepped only after a
 *   failure.
 * - `budget(options)`: a token bucket on `Clock` shared by every `retry` it is passed to; each
 *   retry (never a first attempt) takes a token, and when it is empty no more retries happen.
 *
 * Randomness comes only from `Random` and time only from `Clock`, so `TestClock` and a seeded
 * `Random` make every run reproducible. Metrics (made once per policy / budget, tagged `policy` /
 * `budget` with its name): `foundation_retry_retries_total`, `foundation_retry_exhausted_total`
 * (loops that gave up on a retryable failure: attempts, time budget or retry budget used up),
 * `foundation_retry_budget_denied_total`. Telemetry (when the `Telemetry` service is in the
 * context): `foundation.retry.retry` per retry and `foundation.retry.exhausted`.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { dual } from "effect/Function"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import { categoryOf, isRetryableCategory, type ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"
import * as internal from "./internal/retrySchedules.js"

// ---------------------------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------------------------

/** Marks a retry policy. */
export const TypeId: unique symbol = Symbol.for("effect-foundation/Retry/Policy")
export type TypeId = typeof TypeId

/** How an exponential policy randomises its delays (see `exponential`). */
export type Jitter = internal.Jitter

/** The jitter variants, in a fixed order. */
export const jitters: ReadonlyArray<Jitter> = ["none", "full", "equal", "decorrelated"]

/** The counters of a policy, tagged with its name. */
export interface PolicyMetrics {
  /** Retries made (a first attempt is not a retry). */
  readonly retries: Metric.Metric.Counter<number>
  /** Retry loops that gave up on a retryable failure (attempts, time or retry budget used up). */
  readonly exhausted: Metric.Metric.Counter<number>
}

/**
 * A named retry policy: a schedule of delays plus the limits every policy has. Make one with
 * `exponential`, `fixed`, `linear`, `immediate`, `fromSchedule`, or take a `presets` entry.
 */
export interface Policy {
  readonly [TypeId]: TypeId
  /** The name its metrics are tagged with. */
  readonly name: string
  /** Total attempts allowed, the first one included (Infinity: no limit). */
  readonly maxAttempts: number
  /** Time budget from the start of the first attempt; no retry starts after it. */
  readonly maxElapsed: Duration.Duration
  /** The bare delay schedule, without limits (it never ends by itself for the built-in kinds). */
  readonly delays: Schedule.Schedule<unknown, unknown>
  /**
   * The delays with the limits applied, as a standalone `Schedule` (output: the delay) for
   * `Effect.retry` / `Effect.repeat`. Used that way there is no category filter, no budget and
   * no metrics, and `maxElapsed` counts from the first failure (a schedule cannot see when the
   * first attempt started). `retry` steps this same schedule.
   */
  readonly schedule: Schedule.Schedule<Duration.Duration, unknown>
  readonly metrics: PolicyMetrics
}

/** True for a retry policy. */
export const isPolicy = (u: unknown): u is Policy => Predicate.hasProperty(u, TypeId)

/** Options every policy takes. */
export interface LimitOptions {
  /** Name for the metrics' `name` tag; default: the kind ("exponential", "fixed", ...). */
  readonly name?: string
  /**
   * Total attempts, the first one included: 1 = never retry, 4 = up to 3 retries (the
   * default). An integer ≥ 1, or `Infinity` for no limit (then bound the loop with
   * `maxElapsed` or a budget).
   */
  readonly maxAttempts?: number
  /**
   * Time budget from the start of the first attempt: a retry that would start later is not
   * made (the delay is not shortened to fit). A positive duration; default: none (infinite).
   */
  readonly maxElapsed?: Duration.DurationInput
}

/** Options of `exponential`. */
export interface ExponentialOptions extends LimitOptions {
  /** First delay; default 500 ms. Must be > 0. */
  readonly base?: Duration.DurationInput
  /** Growth per retry (delay n = base·factorⁿ); default 2; ≥ 1. Not allowed with "decorrelated". */
  readonly factor?: number
  /** Largest delay; default 10 s. Finite, ≥ base. */
  readonly cap?: Duration.DurationInput
  /**
   * Default "none". With d = min(cap, base·factorⁿ): "full" waits uniform [0, d), "equal"
   * d/2 + uniform [0, d/2), "decorrelated" (AWS) min(cap, uniform [base, 3·previous delay)).
   */
  readonly jitter?: Jitter
}

/** Options of `linear`. */
export interface LinearOptions extends LimitOptions {
  /** First delay; default 500 ms. Must be > 0. */
  readonly initial?: Duration.DurationInput
  /** Added per retry (delay n = initial + n·increment); default = initial. Must be > 0. */
  readonly increment?: Duration.DurationInput
  /** Largest delay; default 5 s. Finite, ≥ initial. */
  readonly cap?: Duration.DurationInput
}

/** Default total attempts: the original's max_retries 3, plus the first attempt. */
export const defaultMaxAttempts = 4

interface Limits {
  readonly name: string
  readonly maxAttempts: number
  readonly maxElapsed: Duration.Duration
}

class PolicyImpl implements Policy {
  readonly [TypeId]: TypeId = TypeId
  readonly schedule: Schedule.Schedule<Duration.Duration, unknown>
  readonly metrics: PolicyMetrics
  constructor(
    readonly name: string,
    readonly maxAttempts: number,
    readonly maxElapsed: Duration.Duration,
    readonly delays: Schedule.Schedule<unknown, unknown>
  ) {
    const maxElapsedMillis = Duration.toMillis(maxElapsed)
    this.schedule = internal.limited(delays, { maxAttempts, maxElapsedMillis })
    this.metrics = {
      retries: MetricKit.counter("foundation_retry_retries_total", {
        description: "Retries made (first attempts excluded)",
        tags: { policy: name }
      }),
      exhausted: MetricKit.counter("foundation_retry_exhausted_total", {
        description: "Retry loops that gave up on a retryable failure (attempts, time budget or retry budget used up)",
        tags: { policy: name }
      })
    }
  }
}

const makePolicy = (limits: Limits, delays: Schedule.Schedule<unknown, unknown>): Policy =>
  new PolicyImpl(limits.name, limits.maxAttempts, limits.maxElapsed, delays)

const millis = (d: Duration.Duration): number => Duration.toMillis(d)

const validateLimits = (options: LimitOptions, kind: string): Either.Either<Limits, ValidationError> =>
  Either.gen(function*() {
    const name = yield* Validation.optional(options.name, kind, (n) => Validation.nonEmptyString("name", n))
    const maxAttempts = options.maxAttempts === Number.POSITIVE_INFINITY
      ? Number.POSITIVE_INFINITY
      : yield* Validation.optional(
        options.maxAttempts,
        defaultMaxAttempts,
        (n) => Validation.positiveInt("maxAttempts", n)
      )
    const maxElapsed = options.maxElapsed === undefined
      ? Duration.infinity
      : yield* Validation.duration("maxElapsed", options.maxElapsed, { allowInfinite: true })
    return { name, maxAttempts, maxElapsed }
  })

const atLeast = (
  field: string,
  value: Duration.Duration,
  otherField: string,
  other: Duration.Duration
): Either.Either<Duration.Duration, ValidationError> =>
  Duration.lessThan(value, other)
    ? Validation.invalid(field, `must be ≥ ${otherField} (${Duration.format(other)}), got ${Duration.format(value)}`)
    : Either.right(value)

/**
 * Exponential backoff: delay n (0 for the first retry) is min(cap, base·factorⁿ), with an
 * optional jitter. Defaults: base 500 ms, factor 2, cap 10 s, jitter "none", 4 attempts.
 *
 * @example
 * const policy = yield* Retry.exponential({ base: "100 millis", cap: "5 seconds", jitter: "full" })
 */
export const exponential = (options: ExponentialOptions = {}): Either.Either<Policy, ValidationError> =>
  Either.gen(function*() {
    const limits = yield* validateLimits(options, "exponential")
    const base = yield* Validation.duration("base", options.base ?? Duration.millis(500))
    const jitter = yield* Validation.oneOf("jitter", options.jitter ?? "none", jitters)
    if (jitter === "decorrelated" && options.factor !== undefined) {
      return yield* Validation.invalid("factor", "does not apply to decorrelated jitter (it grows by ×3 at most)")
    }
    const factor = yield* Validation.number("factor", options.factor ?? 2, { min: 1 })
    const cap = yield* Validation.duration("cap", options.cap ?? Duration.seconds(10))
    yield* atLeast("cap", cap, "base", base)
    return makePolicy(limits, internal.exponential(millis(base), factor, millis(cap), jitter))
  })

/** The same delay before every retry (> 0; use `immediate` for none). Default 4 attempts. */
export const fixed = (
  delay: Duration.DurationInput,
  options: LimitOptions = {}
): Either.Either<Policy, ValidationError> =>
  Either.gen(function*() {
    const limits = yield* validateLimits(options, "fixed")
    const d = yield* Validation.duration("delay", delay)
    return makePolicy(limits, internal.constant(millis(d)))
  })

/**
 * Linear backoff: delay n is min(cap, initial + n·increment), i.e. initial, initial+increment,
 * initial+2·increment, ... (the original's "linear" was effectively constant). Defaults:
 * initial 500 ms, increment = initial, cap 5 s, 4 attempts.
 */
export const linear = (options: LinearOptions = {}): Either.Either<Policy, ValidationError> =>
  Either.gen(function*() {
    const limits = yield* validateLimits(options, "linear")
    const initial = yield* Validation.duration("initial", options.initial ?? Duration.millis(500))
    const increment = yield* Validation.duration("increment", options.increment ?? initial)
    const cap = yield* Validation.duration("cap", options.cap ?? Duration.seconds(5))
    yield* atLeast("cap", cap, "initial", initial)
    return makePolicy(limits, internal.linear(millis(initial), millis(increment), millis(cap)))
  })

/** Retries at once, with zero delay (no sleep at all). Default 4 attempts. */
export const immediate = (options: LimitOptions = {}): Either.Either<Policy, ValidationError> =>
  Either.map(validateLimits(options, "immediate"), (limits) => makePolicy(limits, internal.constant(0)))

/**
 * A policy from any `Schedule` (its input is the failure): each decision's delay is the wait
 * before the next attempt, and the loop also ends when the schedule ends. The limits apply on
 * top (default 4 attempts; pass `maxAttempts: Infinity` to let the schedule alone decide).
 */
export const fromSchedule = (
  schedule: Schedule.Schedule<unknown, unknown>,
  options: LimitOptions = {}
): Either.Either<Policy, ValidationError> =>
  Either.map(validateLimits(options, "custom"), (limits) => makePolicy(limits, schedule))

/** The same policy under another name (its metrics are tagged with the new name). */
export const named: {
  (name: string): (policy: Policy) => Either.Either<Policy, ValidationError>
  (policy: Policy, name: string): Either.Either<Policy, ValidationError>
} = dual(
  2,
  (policy: Policy, name: string): Either.Either<Policy, ValidationError> =>
    Either.map(
      Validation.nonEmptyString("name", name),
      (n) => makePolicy({ name: n, maxAttempts: policy.maxAttempts, maxElapsed: policy.maxElapsed }, policy.delays)
    )
)

/**
 * The original system's named defaults, each allowing 3 retries (4 attempts):
 * - `exponentialBackoff`: 500, 1000, 2000, ... ms (×2, capped at 10 s), whole loop ≤ 30 s;
 * - `fixedDelay`: 1 s between attempts;
 * - `immediate`: no delay (the original's 1 ms stand-in is gone);
 * - `linearBackoff`: 500, 1000, 1500, ... ms (500 + n·500, capped at 5 s);
 * - `errorHandler`: the ErrorHandler's min(100·2ⁿ + U{1..100}, 5000) ms.
 */
export const presets: {
  readonly exponentialBackoff: Policy
  readonly fixedDelay: Policy
  readonly immediate: Policy
  readonly linearBackoff: Policy
  readonly errorHandler: Policy
} = {
  exponentialBackoff: makePolicy(
    { name: "exponential_backoff", maxAttempts: defaultMaxAttempts, maxElapsed: Duration.seconds(30) },
    internal.exponential(500, 2, 10_000, "none")
  ),
  fixedDelay: makePolicy(
    { name: "fixed_delay", maxAttempts: defaultMaxAttempts, maxElapsed: Duration.infinity },
    internal.constant(1000)
  ),
  immediate: makePolicy(
    { name: "immediate", maxAttempts: defaultMaxAttempts, maxElapsed: Duration.infinity },
    internal.constant(0)
  ),
  linearBackoff: makePolicy(
    { name: "linear_backoff", maxAttempts: defaultMaxAttempts, maxElapsed: Duration.infinity },
    internal.linear(500, 500, 5000)
  ),
  errorHandler: makePolicy(
    { name: "error_handler", maxAttempts: defaultMaxAttempts, maxElapsed: Duration.infinity },
    internal.errorHandler
  )
}

// ---------------------------------------------------------------------------------------------
// Retry budget
// ---------------------------------------------------------------------------------------------

/** Options of `budget`. */
export interface BudgetOptions {
  /** Name for the metrics' `name` tag; default "default". */
  readonly name?: string
  /** Tokens when full (and at start); an integer ≥ 1; default 10 (the original's retry_budget). */
  readonly capacity?: number
  /**
   * Refill: `tokens` (integer ≥ 1) added every `every` (a positive duration), up to the
   * capacity, counted in whole intervals from the last refill. Default 1 token per second.
   */
  readonly refill?: { readonly tokens?: number; readonly every?: Duration.DurationInput }
}

/** A snapshot of a budget. */
export interface BudgetState {
  /** Tokens available now (after refill). */
  readonly tokens: number
  readonly capacity: number
  /** Retries granted a token so far. */
  readonly consumed: number
  /** Retries refused because the budget was empty (the exhausted count). */
  readonly exhausted: number
}

/** Health of a budget: `degraded` while it is empty. */
export type BudgetHealth = "healthy" | "degraded"

/** The counters of a budget, tagged with its name. */
export interface BudgetMetrics {
  /** Retries refused because the budget was empty. */
  readonly denied: Metric.Metric.Counter<number>
}

/**
 * A retry budget: a token bucket on `Clock`, shared by every `retry` it is passed to. Each
 * retry takes one token; first attempts take none.
 */
export interface Budget {
  readonly name: string
  readonly capacity: number
  readonly metrics: BudgetMetrics
  /** Takes a token if there is one (after refilling); true when taken. */
  readonly tryTake: Effect.Effect<boolean>
  readonly state: Effect.Effect<BudgetState>
  /** `degraded` when no token is left, else `healthy`. */
  readonly health: Effect.Effect<BudgetHealth>
}

/**
 * Makes a retry budget (an Effect, unlike the policy constructors: a budget holds state and
 * reads the clock). Fails with a `ValidationError` naming the field for bad options.
 *
 * @example
 * const budget = yield* Retry.budget({ capacity: 20, refill: { tokens: 1, every: "100 millis" } })
 * yield* Retry.retry(call, Retry.presets.exponentialBackoff, { budget })
 */
export const budget = (options: BudgetOptions = {}): Effect.Effect<Budget, ValidationError> =>
  Effect.gen(function*() {
    const name = yield* Validation.optional(options.name, "default", (n) => Validation.nonEmptyString("name", n))
    const capacity = yield* Validation.optional(options.capacity, 10, (n) => Validation.positiveInt("capacity", n))
    const refillTokens = yield* Validation.optional(
      options.refill?.tokens,
      1,
      (n) => Validation.positiveInt("refill.tokens", n)
    )
    const everyMillis = millis(yield* Validation.duration("refill.every", options.refill?.every ?? Duration.seconds(1)))
    const denied = MetricKit.counter("foundation_retry_budget_denied_total", {
      description: "Retries refused because the retry budget was empty",
      tags: { budget: name }
    })
    // The bucket is a plain object, read and written only inside single synchronous steps
    // (`Effect.sync` below): fibers interleave only between effects, so each step is atomic.
    const now = yield* Effect.clockWith((clock) => Effect.succeed(clock.unsafeCurrentTimeMillis()))
    const bucket = { tokens: capacity, last: now, consumed: 0, exhausted: 0 }
    const refill = (now: number): void => {
      if (bucket.tokens >= capacity) {
        bucket.last = now
        return
      }
      const intervals = Math.floor((now - bucket.last) / everyMillis)
      if (intervals <= 0) return
      bucket.tokens = Math.min(capacity, bucket.tokens + intervals * refillTokens)
      bucket.last = bucket.tokens >= capacity ? now : bucket.last + intervals * everyMillis
    }
    const withBucket = <A>(f: (now: number) => A): Effect.Effect<A> =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          const now = clock.unsafeCurrentTimeMillis()
          refill(now)
          return f(now)
        })
      )
    const take = withBucket(() => {
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1
        bucket.consumed += 1
        return true
      }
      bucket.exhausted += 1
      return false
    })
    const self: Budget = {
      name,
      capacity,
      metrics: { denied },
      tryTake: Effect.flatMap(take, (ok) => ok ? Effect.succeed(true) : Effect.as(Metric.increment(denied), false)),
      state: withBucket((): BudgetState => ({
        tokens: bucket.tokens,
        capacity,
        consumed: bucket.consumed,
        exhausted: bucket.exhausted
      })),
      health: withBucket((): BudgetHealth => bucket.tokens >= 1 ? "healthy" : "degraded")
    }
    return self
  })

// ---------------------------------------------------------------------------------------------
// The retry loop
// ---------------------------------------------------------------------------------------------

/** Options of `retry`. */
export interface RetryOptions<E> {
  /**
   * Retry while this holds for the failure. Given `while` and/or `until`, they replace the
   * default rule (retry exactly the failures whose category is `transient` or `resource`).
   */
  readonly while?: (error: E) => boolean
  /** Stop retrying once this holds for the failure (see `while`). */
  readonly until?: (error: E) => boolean
  /** A retry budget shared with other callers: each retry takes a token; none left, no retry. */
  readonly budget?: Budget
}

/** The default rule: retry the failures whose category is retryable; uncategorised ones not. */
export const isRetryable = (error: unknown): boolean => isRetryableCategory(categoryOf(error))

const predicateOf = <E>(options: RetryOptions<E> | undefined): (error: E) => boolean => {
  const w = options?.while
  const u = options?.until
  if (w === undefined && u === undefined) return isRetryable
  if (u === undefined) return w ?? isRetryable
  if (w === undefined) return (e) => !u(e)
  return (e) => w(e) && !u(e)
}

/**
 * The failure worth considering for a retry: the cause must hold typed failures only (no
 * defect, no interruption).
 */
const failureOf = <E>(cause: Cause.Cause<E>): { readonly error: E } | undefined => {
  if (cause._tag === "Fail") return { error: cause.error }
  if (Cause.isDie(cause) || Cause.isInterrupted(cause)) return undefined
  const failure = Cause.failureOption(cause)
  return failure._tag === "Some" ? { error: failure.value } : undefined
}

/**
 * Handles the first failure of a `retry` run. Nothing of the loop exists before it: on the
 * success path `retry` is one `catchAllCause` frame and this one closure (plus a clock read
 * when the policy has a time budget).
 */
const onFirstFailure = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  policy: Policy,
  options: RetryOptions<E> | undefined,
  startedAt: number | undefined,
  cause: Cause.Cause<E>
): Effect.Effect<A, E, R> => {
  const shouldRetry = predicateOf(options)
  const failure = failureOf(cause)
  if (failure === undefined || !shouldRetry(failure.error)) return Effect.failCause(cause)
  const budget = options?.budget
  const schedule = policy.schedule
  const { exhausted: exhaustedCounter, retries: retriesCounter } = policy.metrics
  // The loop's state lives in this closure, one per run, and is used by this run's fiber
  // alone, one step after another.
  let state: unknown = internal.seeded(schedule, startedAt)
  let attempts = 1
  let telemetry: Telemetry.Service | undefined
  const exhausted = (last: Cause.Cause<E>, error: E, reason: "policy" | "budget") => {
    telemetry?.unsafeEmit(Events.names.retry.exhausted, { attempts }, {
      policy: policy.name,
      error_category: categoryOf(error),
      error,
      reason
    })
    return Effect.zipRight(Metric.increment(exhaustedCounter), Effect.failCause(last))
  }
  const again: Effect.Effect<A, E, R> = Effect.catchAllCause(self, (next) => {
    const f = failureOf(next)
    return f === undefined || !shouldRetry(f.error) ? Effect.failCause(next) : decide(next, f.error)
  })
  const decide = (last: Cause.Cause<E>, error: E): Effect.Effect<A, E, R> =>
    Effect.clockWith((clock) => {
      const now = clock.unsafeCurrentTimeMillis()
      return Effect.flatMap(schedule.step(now, error, state), ([nextState, delay, decision]) => {
        state = nextState
        if (ScheduleDecision.isDone(decision)) return exhausted(last, error, "policy")
        const proceed = Effect.suspend(() => {
          telemetry?.unsafeEmit(Events.names.retry.retry, { attempt: attempts, delay_ms: Duration.toMillis(delay) }, {
            policy: policy.name,
            error_category: categoryOf(error),
            error
          })
          attempts++
          return Effect.zipRight(
            Metric.increment(retriesCounter),
            Duration.toMillis(delay) > 0 ? Effect.zipRight(Effect.sleep(delay), again) : again
          )
        })
        if (budget === undefined) return proceed
        return Effect.flatMap(budget.tryTake, (ok) => ok ? proceed : exhausted(last, error, "budget"))
      })
    })
  return Effect.flatMap(Effect.serviceOption(Telemetry.Telemetry), (found) => {
    telemetry = Option.getOrUndefined(found)
    return decide(cause, failure.error)
  })
}

/**
 * The retry loop entered after a first attempt (run elsewhere, started at `startedAt` ms, or
 * undefined when the policy has no time budget) failed with `cause`: `self` is each further
 * attempt. For callers that run the first attempt on a fused path of their own.
 *
 * @internal
 */
export const continueAfter: <A, E, R>(
  self: Effect.Effect<A, E, R>,
  policy: Policy,
  options: RetryOptions<E> | undefined,
  startedAt: number | undefined,
  cause: Cause.Cause<E>
) => Effect.Effect<A, E, R> = onFirstFailure

/**
 * Runs `self`, retrying its failures under `policy`. Retries only failures whose category is
 * `transient` or `resource` (uncategorised failures are not retried) unless `while` / `until`
 * is given; never retries defects or interruption; stops when the policy's attempts or time
 * budget, or the optional retry budget, run out, and then fails with the last failure as it
 * was (the same error object, its full cause).
 *
 * @example
 * const user = yield* fetchUser(id).pipe(Retry.retry(Retry.presets.exponentialBackoff))
 */
export const retry: {
  <E = unknown>(
    policy: Policy,
    options?: RetryOptions<E>
  ): <A, E2 extends E, R>(self: Effect.Effect<A, E2, R>) => Effect.Effect<A, E2, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, policy: Policy, options?: RetryOptions<NoInfer<E>>): Effect.Effect<A, E, R>
} = dual(
  (args) => Effect.isEffect(args[0]),
  <A, E, R>(self: Effect.Effect<A, E, R>, policy: Policy, options?: RetryOptions<E>): Effect.Effect<A, E, R> =>
    Duration.isFinite(policy.maxElapsed)
      // A time budget counts from the start of the first attempt: note it (one clock read).
      ? Effect.clockWith((clock) => {
        const startedAt = clock.unsafeCurrentTimeMillis()
        return Effect.catchAllCause(self, (cause) => onFirstFailure(self, policy, options, startedAt, cause))
      })
      : Effect.catchAllCause(self, (cause) => onFirstFailure(self, policy, options, undefined, cause))
)

/**
 * Recovery by error category: `withRecovery(effect, options)` runs an effect and, when it fails,
 * picks a strategy from the failure's category (override per category or for all):
 *
 * | category   | default strategy | what happens                                               |
 * |------------|------------------|------------------------------------------------------------|
 * | transient  | retry            | retried under `retry` (a `Retry.Policy`), then as below     |
 * | resource   | circuit_break    | the failure is recorded by `breaker` (if any); no retry     |
 * | permanent  | propagate        | no retry                                                   |
 * | validation | propagate        | no retry                                                   |
 * | system     | compensate       | `compensate(error)` runs, then the error is returned       |
 *
 * After the strategy, a failure that is still there goes to `fallback` if one is given (a value,
 * an effect, or a function of the error), except under `compensate`, which always returns the
 * error. Every attempt runs through `breaker` when one is given, so the breaker sees every
 * outcome; its own rejection (`CircuitOpenError`) is never retried.
 *
 * Failures keep their identity: a typed error comes back as the same object (never wrapped, as
 * the original did after exhausting retries); a typed error without a category is treated as
 * `system`; a defect (a thrown exception, a `die`) becomes an `InternalError` (category system)
 * that keeps the full cause; interruption is passed through untouched.
 *
 * Differences from the original's `with_recovery`, on purpose: a raw failure can be retried
 * (when its strategy says so), `maxRetries: 0` and raw errors under `compensate` are ordinary
 * cases, an unexpected fallback shape cannot exist (it is typed), and retries wait on `Clock`
 * instead of blocking.
 *
 * Metric: `foundation_recovery_total`, tagged `strategy` and `outcome` (fallback | failed |
 * compensated), counted on failures only; and, when the `Telemetry` service is in the context,
 * the event `foundation.error_handler.handled`.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Predicate from "effect/Predicate"
import {
  categoryOf,
  CircuitOpenError,
  defaultStrategy,
  type ErrorCategory,
  InternalError,
  type RecoveryStrategy
} from "../errors/FoundationError.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"
import * as CircuitBreaker from "./CircuitBreaker.js"
import * as Retry from "./Retry.js"

/** What to do when all else failed: a value, an effect, or a function of the error. */
export type Fallback<E, A2, E2, R2> =
  | { readonly value: A2 }
  | Effect.Effect<A2, E2, R2>
  | ((error: E) => Effect.Effect<A2, E2, R2>)

/** Options of `withRecovery`; all optional. */
export interface Options<E, A2, E2, R2, EC, RC, B extends CircuitBreaker.CircuitBreaker | string | undefined> {
  /** Use this strategy for every category. */
  readonly strategy?: RecoveryStrategy
  /** Override the default strategy of some categories. */
  readonly strategies?: Partial<Readonly<Record<ErrorCategory, RecoveryStrategy>>>
  /** Retry policy of the `retry` strategy [Retry.presets.errorHandler: 100·2ᵏ + 1..100 ms, cap 5 s, 3 retries]. */
  readonly retry?: Retry.Policy
  /** A retry budget shared with other callers. */
  readonly budget?: Retry.Budget
  /**
   * A breaker every attempt runs through: an instance, or the name of one in the
   * `CircuitBreakers` service (then the effect requires that service).
   */
  readonly breaker?: B
  readonly fallback?: Fallback<Failure<E>, A2, E2, R2>
  /** Runs on a failure under `compensate`; the error is still returned afterwards. */
  readonly compensate?: (error: Failure<E>) => Effect.Effect<unknown, EC, RC>
}

/** The failures a recovered effect can see: its own, defects as `InternalError`, breaker rejections. */
export type Failure<E> = E | InternalError | CircuitOpenError

type BreakerRequirement<B> = B extends string ? CircuitBreaker.CircuitBreakers : never

const outcomes = MetricKit.counterFamily("foundation_recovery_total", {
  description: "Failures handled by withRecovery, by strategy and outcome"
})
const countOutcome = (strategy: RecoveryStrategy, outcome: "fallback" | "failed" | "compensated") =>
  MetricKit.bump(outcomes({ strategy, outcome }))

const outcomeOf = (strategy: RecoveryStrategy, hasFallback: boolean): "compensated" | "fallback" | "failed" =>
  strategy === "compensate" ? "compensated" : hasFallback ? "fallback" : "failed"

/** The strategy for a failure under the given options. */
export const strategyFor = (
  error: unknown,
  options: { readonly strategy?: RecoveryStrategy; readonly strategies?: Partial<Record<ErrorCategory, RecoveryStrategy>> } =
    {}
): RecoveryStrategy => {
  if (options.strategy !== undefined) return options.strategy
  const category = categoryOf(error)
  return options.strategies?.[category] ?? defaultStrategy[category]
}

/** Defects become `InternalError` (keeping the cause); typed failures and interruption pass. */
const defectsAsInternal = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | InternalError, R> =>
  Effect.catchAllCause(self, (cause): Effect.Effect<never, E | InternalError> => {
    if (cause._tag === "Fail") return Effect.fail(cause.error)
    if (Cause.isInterruptedOnly(cause) || !Cause.isDie(cause)) return Effect.failCause(cause)
    return Effect.fail(InternalError.fromCause(cause))
  })

const runFallback = <E, A2, E2, R2>(fallback: Fallback<E, A2, E2, R2>, error: E): Effect.Effect<A2, E2, R2> => {
  if (Effect.isEffect(fallback)) return fallback
  if (Predicate.isFunction(fallback)) return fallback(error)
  return Effect.succeed(fallback.value)
}

/**
 * Runs `self` and recovers from its failures by category (see the module comment).
 *
 * @example
 * const user = yield* fetchUser(id).pipe((eff) =>
 *   Recovery.withRecovery(eff, { retry: policy, fallback: { value: guest } })
 * )
 */
export const withRecovery = <
  A,
  E,
  R,
  A2 = never,
  E2 = never,
  R2 = never,
  EC = never,
  RC = never,
  B extends CircuitBreaker.CircuitBreaker | string | undefined = undefined
>(
  self: Effect.Effect<A, E, R>,
  options: Options<E, A2, E2, R2, EC, RC, B> = {}
): Effect.Effect<A | A2, Failure<E> | E2 | EC, R | R2 | RC | BreakerRequirement<B>> => {
  const policy = options.retry ?? Retry.presets.errorHandler
  const strategyOf = (error: unknown) => strategyFor(error, options)
  const protectedAttempt = (breaker: CircuitBreaker.CircuitBreaker | undefined) => {
    const attempt = defectsAsInternal(breaker === undefined ? self : breaker.protect(self))
    return Retry.retry(attempt, policy, {
      while: (error: Failure<E>) => !(error instanceof CircuitOpenError) && strategyOf(error) === "retry",
      ...(options.budget === undefined ? {} : { budget: options.budget })
    })
  }
  const finish = (error: Failure<E>): Effect.Effect<A2, Failure<E> | E2 | EC, R2 | RC> =>
    Effect.zipRight(
      Telemetry.emit(Events.names.recovery.handled, { count: 1 }, {
        strategy: strategyOf(error),
        error_category: categoryOf(error),
        outcome: outcomeOf(strategyOf(error), options.fallback !== undefined),
        error
      }),
      recover(error)
    )
  const recover = (error: Failure<E>): Effect.Effect<A2, Failure<E> | E2 | EC, R2 | RC> => {
    const strategy = strategyOf(error)
    if (strategy === "compensate") {
      countOutcome(strategy, "compensated")
      const compensate = options.compensate
      if (compensate === undefined) return Effect.fail(error)
      return Effect.uninterruptible(Effect.exit(compensate(error))).pipe(
        Effect.flatMap((exit) =>
          Exit.isSuccess(exit)
            ? Effect.fail(error)
            // Keep the compensation's failure too, after the original one.
            : Effect.failCause(Cause.sequential(Cause.fail<Failure<E> | EC>(error), exit.cause))
        )
      )
    }
    if (options.fallback === undefined) {
      countOutcome(strategy, "failed")
      return Effect.fail(error)
    }
    countOutcome(strategy, "fallback")
    return runFallback(options.fallback, error)
  }
  const breaker = options.breaker
  const run = (b: CircuitBreaker.CircuitBreaker | undefined) => Effect.catchAll(protectedAttempt(b), finish)
  if (typeof breaker === "string") {
    return Effect.flatMap(
      Effect.flatMap(CircuitBreaker.CircuitBreakers, (registry) => registry.get(breaker)),
      run
    ) as Effect.Effect<A | A2, Failure<E> | E2 | EC, R | R2 | RC | BreakerRequirement<B>>
  }
  return run(breaker as CircuitBreaker.CircuitBreaker | undefined)
}

/** True for the categories the default rules retry (transient, resource). */
export const isRetryable = (error: unknown): boolean => Retry.isRetryable(error)

/**
 * Protect: timeout, bulkhead, rate limit, circuit breaker and retry applied by one call, in one
 * fixed order. From the outside in:
 *
 * ```
 * retry ─► rate limit ─► bulkhead ─► circuit breaker ─► timeout ─► your effect
 * ```
 *
 * - **retry** is outermost, so every attempt passes through everything below it: each attempt
 *   consumes rate-limit capacity, takes a bulkhead slot, and is seen by the breaker.
 * - **rate limit** and **bulkhead** sit outside the breaker, so their own rejections
 *   (`RateLimitedError`, `BulkheadFullError`) never reach it: the breaker only ever records
 *   what the dependency did (no spurious failures), and a half-open trial call is only admitted
 *   once it has a slot.
 * - **breaker** outside the **timeout**: a call that times out counts as a failure of the
 *   dependency; time spent waiting in the bulkhead queue does not count against the timeout.
 * - Rejections by the policies themselves (`CircuitOpenError`, `RateLimitedError`,
 *   `BulkheadFullError`) are final: they are never retried, and they do not count as an
 *   exhausted retry loop. `TimeoutError` is transient, so it is retried.
 *
 * Every policy is optional; give options (the policy is made here, in the current scope) or an
 * instance (shared with other code). `promise`/`tryPromise` time promise work without any fork;
 * `run` takes any effect (the timeout, if any, forks it once).
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Predicate from "effect/Predicate"
import type * as Scope from "effect/Scope"
import type {
  BulkheadFullError,
  CircuitOpenError,
  RateLimitedError,
  TimeoutError,
  ValidationError
} from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Bulkhead from "./Bulkhead.js"
import * as CircuitBreaker from "./CircuitBreaker.js"
import type * as RateLimiter from "./RateLimiter.js"
import * as Retry from "./Retry.js"
import * as Timeout from "./Timeout.js"

/** The failures the policies themselves add. */
export type ProtectError = TimeoutError | BulkheadFullError | RateLimitedError | CircuitOpenError

/** Options of a Protect stack; every policy is optional. */
export interface Options<E = unknown> {
  /** Names the policies made here (breaker, bulkhead, timeout) ["protect"]. */
  readonly name?: string
  /** A time limit per attempt: a duration, or a `Timeout` to share. */
  readonly timeout?: Duration.DurationInput | Timeout.Timeout
  /** A concurrency limit per attempt: options, or a `Bulkhead` to share. */
  readonly bulkhead?: Omit<Bulkhead.Options, "name"> | Bulkhead.Bulkhead
  /** A rate limit per attempt: a limiter, the key to charge [the name] and the cost [1]. */
  readonly rateLimit?: {
    readonly limiter: RateLimiter.RateLimiter
    readonly key?: string
    readonly cost?: number
  }
  /** A circuit breaker: options, or a `CircuitBreaker` to share. */
  readonly breaker?: Omit<CircuitBreaker.Options<E>, "name"> | CircuitBreaker.CircuitBreaker<E>
  /** The retry policy; without one there is a single attempt. */
  readonly retry?: Retry.Policy
  /** A retry budget shared with other callers. */
  readonly budget?: Retry.Budget
  /**
   * Which failures to retry, on top of the rule that the policies' own rejections never are
   * [failures of category transient or resource].
   */
  readonly retryWhile?: (error: E | ProtectError) => boolean
}

/** Per-call settings. */
export interface CallOptions {
  /** The rate-limit key to charge for this call (default: the stack's key). */
  readonly key?: string
  /** The time limit of each attempt of this call (default: the stack's). */
  readonly timeout?: Duration.DurationInput
}

/** A Protect stack. `E` is the error type the breaker classifies. */
export interface Protect<in E = unknown> {
  readonly name: string
  /** The policies in use (absent ones are undefined). */
  readonly policies: {
    readonly timeout: Timeout.Timeout | undefined
    readonly bulkhead: Bulkhead.Bulkhead | undefined
    readonly rateLimiter: RateLimiter.RateLimiter | undefined
    readonly breaker: CircuitBreaker.CircuitBreaker<E> | undefined
    readonly retry: Retry.Policy | undefined
  }
  /** Runs an effect through the stack. */
  run<A, E1 extends E, R>(self: Effect.Effect<A, E1, R>, options?: CallOptions): Effect.Effect<A, E1 | ProtectError, R>
  /** Runs promise work through the stack; the timeout needs no fork. A rejection is a defect. */
  promise<A>(evaluate: (signal: AbortSignal) => PromiseLike<A>, options?: CallOptions): Effect.Effect<A, ProtectError>
  /** Runs promise work through the stack; a rejection is mapped by `catch`. */
  tryPromise<A, E1 extends E>(
    work: { readonly try: (signal: AbortSignal) => PromiseLike<A>; readonly catch: (error: unknown) => E1 },
    options?: CallOptions
  ): Effect.Effect<A, E1 | ProtectError, never>
}

const isPolicyRejection = (error: unknown): boolean =>
  Predicate.isTagged(error, "CircuitOpenError") ||
  Predicate.isTagged(error, "RateLimitedError") ||
  Predicate.isTagged(error, "BulkheadFullError")

class ProtectImpl<E> implements Protect<E> {
  private readonly retryOptions: Retry.RetryOptions<unknown>
  private readonly key: string
  private readonly cost: number
  constructor(
    readonly name: string,
    readonly policies: Protect<E>["policies"],
    options: Options<E>
  ) {
    const retryWhile = options.retryWhile as ((error: unknown) => boolean) | undefined
    this.retryOptions = {
      while: retryWhile === undefined
        ? (error) => !isPolicyRejection(error) && Retry.isRetryable(error)
        : (error) => !isPolicyRejection(error) && retryWhile(error),
      ...(options.budget === undefined ? {} : { budget: options.budget })
    }
    this.key = options.rateLimit?.key ?? name
    this.cost = options.rateLimit?.cost ?? 1
  }

  /** Wraps one attempt (already timed) in the breaker, bulkhead and rate limit, then retries. */
  private around<A, E1, R>(timed: Effect.Effect<A, E1, R>, key: string | undefined): Effect.Effect<A, E1 | ProtectError, R> {
    const { breaker, bulkhead, rateLimiter, retry } = this.policies
    let attempt: Effect.Effect<A, E1 | ProtectError, R> = timed
    if (breaker !== undefined) attempt = breaker.protect(attempt as Effect.Effect<A, E & E1, R>)
    if (bulkhead !== undefined) attempt = bulkhead.run(attempt)
    if (rateLimiter !== undefined) {
      const consume = this.cost === 1
        ? rateLimiter.consume(key ?? this.key)
        : Effect.orDie(rateLimiter.consume(key ?? this.key, this.cost)) // cost validated at make
      attempt = Effect.zipRight(consume, attempt)
    }
    return retry === undefined ? attempt : Retry.retry(attempt, retry, this.retryOptions)
  }

  run<A, E1 extends E, R>(self: Effect.Effect<A, E1, R>, options?: CallOptions): Effect.Effect<A, E1 | ProtectError, R> {
    const timeout = this.policies.timeout
    return this.around(timeout === undefined ? self : timeout.apply(self, options?.timeout), options?.key)
  }

  promise<A>(evaluate: (signal: AbortSignal) => PromiseLike<A>, options?: CallOptions): Effect.Effect<A, ProtectError> {
    const timeout = this.policies.timeout
    return this.around(
      timeout === undefined ? Effect.promise(evaluate) : timeout.promise(evaluate, options?.timeout),
      options?.key
    )
  }

  tryPromise<A, E1 extends E>(
    work: { readonly try: (signal: AbortSignal) => PromiseLike<A>; readonly catch: (error: unknown) => E1 },
    options?: CallOptions
  ): Effect.Effect<A, E1 | ProtectError, never> {
    const timeout = this.policies.timeout
    return this.around(
      timeout === undefined ? Effect.tryPromise(work) : timeout.tryPromise(work, options?.timeout),
      options?.key
    )
  }
}

const isTimeout = (u: unknown): u is Timeout.Timeout =>
  Predicate.hasProperty(u, "promise") && Predicate.hasProperty(u, "apply")
const isBulkhead = (u: unknown): u is Bulkhead.Bulkhead => Predicate.hasProperty(u, "run") && Predicate.hasProperty(u, "stats")
const isBreaker = <E>(u: unknown): u is CircuitBreaker.CircuitBreaker<E> =>
  Predicate.hasProperty(u, "protect") && Predicate.hasProperty(u, "snapshot")

/**
 * Makes a Protect stack. Policies given as options are made here (the timeout's timer fiber
 * lives in the current scope); bad options fail with `ValidationError`.
 */
export const make = <E = unknown>(options: Options<E> = {}): Effect.Effect<Protect<E>, ValidationError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = yield* Validation.nonEmptyString("protect.name", options.name ?? "protect")
    const timeout = options.timeout === undefined
      ? undefined
      : isTimeout(options.timeout)
      ? options.timeout
      : yield* Timeout.make({ duration: options.timeout, name })
    const bulkhead = options.bulkhead === undefined
      ? undefined
      : isBulkhead(options.bulkhead)
      ? options.bulkhead
      : yield* Bulkhead.make({ ...options.bulkhead, name })
    const breaker = options.breaker === undefined
      ? undefined
      : isBreaker<E>(options.breaker)
      ? options.breaker
      : yield* CircuitBreaker.make<E>({ ...options.breaker, name })
    if (options.rateLimit !== undefined) {
      const limit = options.rateLimit.limiter.config.limit
      yield* Validation.int("protect.rateLimit.cost", options.rateLimit.cost ?? 1, { min: 1, max: limit })
      if (options.rateLimit.key !== undefined) yield* Validation.nonEmptyString("protect.rateLimit.key", options.rateLimit.key)
    }
    return new ProtectImpl<E>(name, {
      timeout,
      bulkhead,
      rateLimiter: options.rateLimit?.limiter,
      breaker,
      retry: options.retry
    }, options)
  })

/** `run` as a pipeable function: `effect.pipe(Protect.protect(stack))`. */
export const protect: {
  <E>(stack: Protect<E>, options?: CallOptions): <A, E1 extends E, R>(
    self: Effect.Effect<A, E1, R>
  ) => Effect.Effect<A, E1 | ProtectError, R>
  <A, E1 extends E, R, E>(
    self: Effect.Effect<A, E1, R>,
    stack: Protect<E>,
    options?: CallOptions
  ): Effect.Effect<A, E1 | ProtectError, R>
} = dual(
  (args) => Effect.isEffect(args[0]),
  <A, E1 extends E, R, E>(self: Effect.Effect<A, E1, R>, stack: Protect<E>, options?: CallOptions) =>
    stack.run(self, options)
)

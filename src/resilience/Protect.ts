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
 * instance (shared with other code). `run` takes any effect (the timeout, if any, forks it once).
 * `promise`/`tryPromise` set up each attempt in one synchronous step (see `fused`): no fiber, no
 * interruption mask; there a slot is held until the work settles or times out, even when the
 * caller was interrupted, and the rate-limit metrics do not carry the fiber's extra metric tags.
 */
import type * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as Predicate from "effect/Predicate"
import type * as Scope from "effect/Scope"
import {
  type BulkheadFullError,
  CircuitOpenError,
  type RateLimitedError,
  type TimeoutError,
  type ValidationError
} from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Bulkhead from "./Bulkhead.js"
import type { Entry } from "./internal/deadlineWheel.js"
import {
  BAD,
  BreakerKernel,
  type BreakerKernelApi,
  BulkheadKernel,
  type BulkheadKernelApi,
  GOOD,
  LimiterKernel,
  type LimiterKernelApi,
  NEUTRAL,
  type Ticket,
  TimeoutKernel,
  type TimeoutKernelApi,
  type Verdict
} from "./internal/kernel.js"
import * as CircuitBreaker from "./CircuitBreaker.js"
import type * as RateLimiter from "./RateLimiter.js"
import * as Retry from "./Retry.js"
import * as Timeout from "./Timeout.js"
import { rejectionOf } from "./Timeout.js"

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

/** Per-call settings; bad ones fail the call with `ValidationError`. */
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
  run<A, E1 extends E, R>(self: Effect.Effect<A, E1, R>): Effect.Effect<A, E1 | ProtectError, R>
  run<A, E1 extends E, R>(
    self: Effect.Effect<A, E1, R>,
    options: CallOptions
  ): Effect.Effect<A, E1 | ProtectError | ValidationError, R>
  /** Runs promise work through the stack; the timeout needs no fork. A rejection is a defect. */
  promise<A>(evaluate: (signal: AbortSignal) => PromiseLike<A>): Effect.Effect<A, ProtectError>
  promise<A>(
    evaluate: (signal: AbortSignal) => PromiseLike<A>,
    options: CallOptions
  ): Effect.Effect<A, ProtectError | ValidationError>
  /** Runs promise work through the stack; a rejection is mapped by `catch` (if `catch` throws, a defect). */
  tryPromise<A, E1 extends E>(
    work: { readonly try: (signal: AbortSignal) => PromiseLike<A>; readonly catch: (error: unknown) => E1 }
  ): Effect.Effect<A, E1 | ProtectError>
  tryPromise<A, E1 extends E>(
    work: { readonly try: (signal: AbortSignal) => PromiseLike<A>; readonly catch: (error: unknown) => E1 },
    options: CallOptions
  ): Effect.Effect<A, E1 | ProtectError | ValidationError>
}

const isPolicyRejection = (error: unknown): boolean =>
  Predicate.isTagged(error, "CircuitOpenError") ||
  Predicate.isTagged(error, "RateLimitedError") ||
  Predicate.isTagged(error, "BulkheadFullError")

/** The synchronous hooks of the policies in use, when every one of them has them. */
interface Kernels {
  readonly limiter: LimiterKernelApi | undefined
  readonly bulkhead: BulkheadKernelApi | undefined
  readonly breaker: BreakerKernelApi | undefined
  readonly timeout: TimeoutKernelApi | undefined
}

const kernelsOf = <E>(policies: Protect<E>["policies"]): Kernels | undefined => {
  const get = <K extends symbol, A>(policy: unknown, key: K): A | undefined | null =>
    policy === undefined ? undefined : Predicate.hasProperty(policy, key) ? (policy[key] as A) : null
  const limiter = get<typeof LimiterKernel, LimiterKernelApi>(policies.rateLimiter, LimiterKernel)
  const bulkhead = get<typeof BulkheadKernel, BulkheadKernelApi>(policies.bulkhead, BulkheadKernel)
  const breaker = get<typeof BreakerKernel, BreakerKernelApi>(policies.breaker, BreakerKernel)
  const timeout = get<typeof TimeoutKernel, TimeoutKernelApi>(policies.timeout, TimeoutKernel)
  // A policy without hooks (another implementation of the interface): use the composed path.
  if (limiter === null || bulkhead === null || breaker === null || timeout === null) return undefined
  return { limiter, bulkhead, breaker, timeout }
}

class ProtectImpl<E> implements Protect<E> {
  private readonly retryOptions: Retry.RetryOptions<unknown>
  private readonly key: string
  private readonly cost: number
  private readonly kernels: Kernels | undefined
  constructor(
    readonly name: string,
    readonly policies: Protect<E>["policies"],
    options: Options<E>,
    private readonly clock: Clock.Clock
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
    this.kernels = kernelsOf(policies)
  }

  /** Wraps one attempt (already timed) in the breaker and the bulkhead. */
  private guarded<A, E1, R>(timed: Effect.Effect<A, E1, R>): Effect.Effect<A, E1 | ProtectError, R> {
    const { breaker, bulkhead } = this.policies
    let attempt: Effect.Effect<A, E1 | ProtectError, R> = timed
    if (breaker !== undefined) attempt = breaker.protect(attempt as Effect.Effect<A, E & E1, R>)
    if (bulkhead !== undefined) attempt = bulkhead.run(attempt)
    return attempt
  }

  /** The rate limit in front of an attempt. */
  private limited<A, E1, R>(attempt: Effect.Effect<A, E1, R>, key: string): Effect.Effect<A, E1 | ProtectError, R> {
    const limiter = this.policies.rateLimiter
    if (limiter === undefined) return attempt
    const consume = this.cost === 1 ? limiter.consume(key) : Effect.orDie(limiter.consume(key, this.cost)) // cost validated at make
    return Effect.zipRight(consume, attempt)
  }

  private retried<A, E1, R>(attempt: Effect.Effect<A, E1, R>): Effect.Effect<A, E1, R> {
    const retry = this.policies.retry
    return retry === undefined ? attempt : Retry.retry(attempt, retry, this.retryOptions)
  }

  run<A, E1 extends E, R>(self: Effect.Effect<A, E1, R>): Effect.Effect<A, E1 | ProtectError, R>
  run<A, E1 extends E, R>(
    self: Effect.Effect<A, E1, R>,
    options: CallOptions
  ): Effect.Effect<A, E1 | ProtectError | ValidationError, R>
  run<A, E1 extends E, R>(
    self: Effect.Effect<A, E1, R>,
    options?: CallOptions
  ): Effect.Effect<A, E1 | ProtectError | ValidationError, R> {
    return this.withOptions(options, (key, timeoutOverride) => {
      const timeout = this.policies.timeout
      const timed = timeout === undefined
        ? self
        : timeoutOverride === undefined
        ? timeout.apply(self)
        : timeout.apply(self, timeoutOverride)
      return this.retried(this.limited(this.guarded(timed), key))
    })
  }

  promise<A>(evaluate: (signal: AbortSignal) => PromiseLike<A>): Effect.Effect<A, ProtectError>
  promise<A>(
    evaluate: (signal: AbortSignal) => PromiseLike<A>,
    options: CallOptions
  ): Effect.Effect<A, ProtectError | ValidationError>
  promise<A>(
    evaluate: (signal: AbortSignal) => PromiseLike<A>,
    options?: CallOptions
  ): Effect.Effect<A, ProtectError | ValidationError> {
    return this.promiseWork<A, never>(evaluate, undefined, options)
  }

  tryPromise<A, E1 extends E>(
    work: { readonly try: (signal: AbortSignal) => PromiseLike<A>; readonly catch: (error: unknown) => E1 }
  ): Effect.Effect<A, E1 | ProtectError>
  tryPromise<A, E1 extends E>(
    work: { readonly try: (signal: AbortSignal) => PromiseLike<A>; readonly catch: (error: unknown) => E1 },
    options: CallOptions
  ): Effect.Effect<A, E1 | ProtectError | ValidationError>
  tryPromise<A, E1 extends E>(
    work: { readonly try: (signal: AbortSignal) => PromiseLike<A>; readonly catch: (error: unknown) => E1 },
    options?: CallOptions
  ): Effect.Effect<A, E1 | ProtectError | ValidationError> {
    return this.promiseWork(work.try, work.catch, options)
  }

  /** Validates the per-call options (at the boundary), then builds the call. */
  private withOptions<A, E1, R>(
    options: CallOptions | undefined,
    build: (key: string, timeout: Duration.Duration | undefined) => Effect.Effect<A, E1, R>
  ): Effect.Effect<A, E1 | ValidationError, R> {
    if (options === undefined) return build(this.key, undefined)
    const key = options.key === undefined ? Either.right(this.key) : Validation.nonEmptyString("protect.key", options.key)
    if (Either.isLeft(key)) return Effect.fail(key.left)
    if (options.timeout === undefined) return build(key.right, undefined)
    const timeout = Validation.duration("protect.timeout", options.timeout)
    if (Either.isLeft(timeout)) return Effect.fail(timeout.left)
    return build(key.right, timeout.right)
  }

  /** Promise work; a rejection is mapped by `catcher`, or is a defect without one. */
  private promiseWork<A, E1>(
    evaluate: (signal: AbortSignal) => PromiseLike<A>,
    catcher: ((error: unknown) => E1) | undefined,
    options: CallOptions | undefined
  ): Effect.Effect<A, E1 | ProtectError | ValidationError> {
    return this.withOptions(options, (key, timeout) => {
      const kernels = this.kernels
      return kernels === undefined
        ? this.retried(this.limited(this.composedPromise(evaluate, catcher, timeout), key))
        : this.retried(this.fused(kernels, evaluate, catcher, key, timeout))
    })
  }

  /** The promise work, timed, inside the breaker and the bulkhead, one effect per policy. */
  private composedPromise<A, E1>(
    evaluate: (signal: AbortSignal) => PromiseLike<A>,
    catcher: ((error: unknown) => E1) | undefined,
    timeoutOverride: Duration.Duration | undefined
  ): Effect.Effect<A, E1 | ProtectError | ValidationError> {
    const timeout = this.policies.timeout
    const timed: Effect.Effect<A, E1 | TimeoutError | ValidationError> = timeout === undefined
      ? Effect.async<A, E1>((resume) => {
        try {
          evaluate(new AbortController().signal).then((a) => resume(Exit.succeed(a)), (u) => resume(rejectionOf(catcher, u)))
        } catch (u) {
          resume(rejectionOf(catcher, u))
        }
      })
      : timeoutOverride === undefined
      ? (catcher === undefined ? timeout.promise(evaluate) : timeout.tryPromise({ try: evaluate, catch: catcher }))
      : catcher === undefined
      ? timeout.promise(evaluate, timeoutOverride)
      : timeout.tryPromise({ try: evaluate, catch: catcher }, timeoutOverride)
    return this.guarded(timed)
  }

  /**
   * One attempt in one `Effect.async`: rate limit, bulkhead slot, breaker admission, deadline and
   * promise are set up in a single synchronous step, and the promise's settlement (or the
   * deadline) gives the slot back and records the outcome, once. No fiber and no interruption
   * mask on the way. A slot stays taken until the work it admitted settles or times out, even if
   * the caller was interrupted meanwhile: the dependency is still busy with it, and the outcome
   * is still a fact about the dependency, so a closed breaker records it. A half-open trial call
   * is the exception: if its caller is interrupted, its permit is given back at once (neutral),
   * so that the breaker can never stay half-open on abandoned work. When the bulkhead has no
   * free slot, the attempt queues through the composed path.
   */
  private fused<A, E1>(
    kernels: Kernels,
    evaluate: (signal: AbortSignal) => PromiseLike<A>,
    catcher: ((error: unknown) => E1) | undefined,
    key: string,
    timeoutOverride: Duration.Duration | undefined
  ): Effect.Effect<A, E1 | ProtectError | ValidationError> {
    const { breaker, bulkhead, limiter, timeout } = kernels
    const limit = timeout === undefined ? 0 : timeout.millisOf(timeoutOverride)
    const ms = typeof limit === "number" ? limit : 0 // validated by withOptions
    const cost = this.cost
    const clock = this.clock
    const withSignal = evaluate.length > 0
    const register = (
      resume: (effect: Effect.Effect<A, E1 | ProtectError | ValidationError>) => void
    ): Effect.Effect<void> | void => {
      if (limiter !== undefined) {
        const denied = limiter.tryConsume(key, cost, clock.unsafeCurrentTimeMillis())
        if (denied !== undefined) return resume(Exit.fail(denied))
      }
      if (bulkhead !== undefined && !bulkhead.tryAcquire()) {
        return resume(this.composedPromise(evaluate, catcher, timeoutOverride))
      }
      let ticket: Ticket | undefined
      if (breaker !== undefined) {
        const admitted = breaker.admit()
        if (admitted instanceof CircuitOpenError) {
          bulkhead?.release()
          return resume(Exit.fail(admitted))
        }
        ticket = admitted
      }
      let settled = false
      let interrupted = false
      const settleTicket = (verdict: Verdict) => {
        if (ticket === undefined) return
        breaker!.settle(ticket, verdict)
        ticket = undefined
      }
      const finish = (exit: Exit.Exit<A, E1 | TimeoutError>, verdict: Verdict) => {
        if (settled) return // a thenable may call back more than once
        settled = true
        bulkhead?.release()
        settleTicket(interrupted ? NEUTRAL : verdict)
        resume(exit)
      }
      const verdictOfExit = (exit: Exit.Exit<never, E1>): Verdict =>
        breaker === undefined || exit._tag === "Success" ? GOOD : exit.cause._tag === "Fail"
          ? breaker.verdictOf(exit.cause.error)
          : BAD
      const controller = withSignal ? new AbortController() : undefined
      let entry: Entry | undefined
      if (timeout !== undefined) {
        entry = timeout.wheel.add(ms, (shutdown) => {
          const error = timeout.error(ms, shutdown)
          controller?.abort(error)
          finish(Exit.fail(error), shutdown || breaker === undefined ? NEUTRAL : breaker.verdictOf(error))
        })
        if (entry === undefined) return finish(Exit.fail(timeout.error(ms, true)), NEUTRAL) // the Timeout was closed
      }
      const won = () => entry === undefined || timeout!.wheel.remove(entry)
      const rejected = (error: unknown) => {
        if (!won()) return
        const exit = rejectionOf(catcher, error)
        finish(exit, verdictOfExit(exit))
      }
      try {
        evaluate(controller?.signal as AbortSignal).then((a) => {
          if (won()) finish(Exit.succeed(a), GOOD)
        }, rejected)
      } catch (error) {
        rejected(error)
      }
      if (controller === undefined && (ticket === undefined || !ticket.probe)) return
      // Only when the work takes a signal, or holds a trial permit: on interruption, abort the
      // work (its abort is not held against the dependency) and give a trial permit back now.
      return Effect.sync(() => {
        if (settled) return
        interrupted = true
        controller?.abort()
        if (ticket?.probe === true) settleTicket(NEUTRAL)
      })
    }
    return Effect.async<A, E1 | ProtectError | ValidationError>(register)
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
    }, options, yield* Effect.clock)
  })

/** `run` as a pipeable function: `effect.pipe(Protect.protect(stack))`. */
export const protect: {
  <E>(stack: Protect<E>): <A, E1 extends E, R>(self: Effect.Effect<A, E1, R>) => Effect.Effect<A, E1 | ProtectError, R>
  <A, E1 extends E, R, E>(self: Effect.Effect<A, E1, R>, stack: Protect<E>): Effect.Effect<A, E1 | ProtectError, R>
} = dual(2, <A, E1 extends E, R, E>(self: Effect.Effect<A, E1, R>, stack: Protect<E>) => stack.run(self))

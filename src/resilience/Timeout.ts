/**
 * Time limits that fail with `TimeoutError` (category transient), cheaply.
 *
 * `Effect.timeout` forks two fibers per call (the effect and a sleeping timer), about 25–35 µs.
 * A `Timeout` made here instead keeps one timer fiber for all its calls (a deadline wheel on
 * `Clock`, see `internal/deadlineWheel.ts`) and registers each call's deadline in O(1):
 *
 * - `promise` / `tryPromise` run promise-returning work with no fork at all: the deadline and the
 *   promise race inside one `Effect.async`. The function may take an `AbortSignal`, aborted on
 *   timeout and on interruption (the signal is only created when the function declares it).
 * - `apply` limits any effect. Preempting an arbitrary effect needs it to run in its own fiber,
 *   so this forks once (the timer is still shared): about half the cost of `Effect.timeout`.
 *
 * On timeout, promise work has its signal aborted and the caller gets `TimeoutError` at once; an
 * effect is interrupted and the caller gets `TimeoutError` once it has stopped (as with
 * `Effect.timeout`: its finalizers have run). Closing the scope the `Timeout` was made in fails
 * the calls still in flight with `TimeoutError`, and so does any later call: a deadline that can
 * no longer be enforced is not silently dropped.
 *
 * Metric: `foundation_timeout_timeouts_total`, tagged `timeout` with the name. Telemetry (when
 * the `Telemetry` service is in the context at construction): `foundation.timeout.expired`.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { dual } from "effect/Function"
import type * as Scope from "effect/Scope"
import { TimeoutError, ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"
import { DeadlineWheel, type Entry } from "./internal/deadlineWheel.js"
import { TimeoutKernel, type TimeoutKernelApi } from "./internal/kernel.js"

/** Options of a `Timeout`. */
export interface Options {
  /** The default time limit of each call. */
  readonly duration: Duration.DurationInput
  /** Used in errors and metrics ["timeout"]. */
  readonly name?: string
}

/** A time limit shared by many calls. A per-call `duration` that is not a valid positive, finite duration fails the call with `ValidationError`. */
export interface Timeout {
  readonly name: string
  readonly duration: Duration.Duration
  /** Limits an effect (one fork per call). */
  apply<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | TimeoutError, R>
  apply<A, E, R>(
    self: Effect.Effect<A, E, R>,
    duration: Duration.DurationInput
  ): Effect.Effect<A, E | TimeoutError | ValidationError, R>
  /** Limits promise-returning work (no fork); a rejection is a defect, as with `Effect.promise`. */
  promise<A>(evaluate: (signal: AbortSignal) => PromiseLike<A>): Effect.Effect<A, TimeoutError>
  promise<A>(
    evaluate: (signal: AbortSignal) => PromiseLike<A>,
    duration: Duration.DurationInput
  ): Effect.Effect<A, TimeoutError | ValidationError>
  /** Limits promise-returning work (no fork); a rejection is mapped by `catch` (if `catch` throws, a defect). */
  tryPromise<A, E>(
    options: { readonly try: (signal: AbortSignal) => PromiseLike<A>; readonly catch: (error: unknown) => E }
  ): Effect.Effect<A, E | TimeoutError>
  tryPromise<A, E>(
    options: { readonly try: (signal: AbortSignal) => PromiseLike<A>; readonly catch: (error: unknown) => E },
    duration: Duration.DurationInput
  ): Effect.Effect<A, E | TimeoutError | ValidationError>
  /** Calls currently being timed. */
  readonly inFlight: Effect.Effect<number>
}

/** The limit of one call: the default, or a validated per-call override. */
const limitOf = (override: Duration.DurationInput | undefined, fallback: number): number | ValidationError => {
  if (override === undefined) return fallback
  const d = Validation.duration("timeout.duration", override)
  return Either.isLeft(d) ? d.left : Duration.toMillis(d.right)
}

/** A rejection as an exit: mapped by `catcher`, or a defect (also when `catcher` throws). */
export const rejectionOf = <E>(catcher: ((error: unknown) => E) | undefined, error: unknown): Exit.Exit<never, E> => {
  if (catcher === undefined) return Exit.die(error)
  try {
    return Exit.fail(catcher(error))
  } catch (defect) {
    return Exit.die(defect)
  }
}

class TimeoutImpl implements Timeout {
  private readonly timeouts: ReturnType<typeof MetricKit.counter>
  constructor(
    readonly name: string,
    readonly duration: Duration.Duration,
    private readonly millis: number,
    readonly wheel: DeadlineWheel,
    private readonly telemetry: Telemetry.Service | undefined
  ) {
    this.timeouts = MetricKit.counter("foundation_timeout_timeouts_total", {
      description: "Calls that exceeded their time limit",
      tags: { timeout: name }
    })
  }

  get [TimeoutKernel](): TimeoutKernelApi {
    return this
  }

  millisOf(override: unknown): number | ValidationError {
    return limitOf(override as Duration.DurationInput | undefined, this.millis)
  }

  /** The error of a call that ran out of time (counted in the metrics unless at shutdown). */
  error(ms: number, shutdown = false): TimeoutError {
    if (!shutdown) {
      MetricKit.bump(this.timeouts)
      this.telemetry?.unsafeEmit(Events.names.timeout.expired, { timeout_ms: ms }, { timeout: this.name })
    }
    return new TimeoutError({ timeout: Duration.millis(ms), label: this.name })
  }

  apply<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | TimeoutError, R>
  apply<A, E, R>(
    self: Effect.Effect<A, E, R>,
    duration: Duration.DurationInput
  ): Effect.Effect<A, E | TimeoutError | ValidationError, R>
  apply<A, E, R>(
    self: Effect.Effect<A, E, R>,
    duration?: Duration.DurationInput
  ): Effect.Effect<A, E | TimeoutError | ValidationError, R> {
    const ms = limitOf(duration, this.millis)
    if (typeof ms !== "number") return Effect.fail(ms)
    if (this.wheel.closed) return Effect.fail(this.error(ms, true))
    return Effect.flatMap(Effect.fork(self), (fiber) =>
      Effect.async<A, E | TimeoutError>((resume) => {
        const observer = (exit: Exit.Exit<A, E>) => {
          if (entry === undefined || this.wheel.remove(entry)) resume(Effect.zipRight(Fiber.inheritAll(fiber), exit))
        }
        const entry = this.wheel.add(ms, (shutdown) => {
          fiber.removeObserver(observer)
          resume(Effect.zipRight(Fiber.interrupt(fiber), Effect.fail(this.error(ms, shutdown))))
        })
        if (entry === undefined) {
          resume(Effect.zipRight(Fiber.interrupt(fiber), Effect.fail(this.error(ms, true))))
          return
        }
        fiber.addObserver(observer)
        return Effect.suspend(() => {
          this.wheel.remove(entry)
          fiber.removeObserver(observer)
          return Fiber.interrupt(fiber)
        })
      }))
  }

  promise<A>(evaluate: (signal: AbortSignal) => PromiseLike<A>): Effect.Effect<A, TimeoutError>
  promise<A>(
    evaluate: (signal: AbortSignal) => PromiseLike<A>,
    duration: Duration.DurationInput
  ): Effect.Effect<A, TimeoutError | ValidationError>
  promise<A>(
    evaluate: (signal: AbortSignal) => PromiseLike<A>,
    duration?: Duration.DurationInput
  ): Effect.Effect<A, TimeoutError | ValidationError> {
    return this.race<A, never>(evaluate, undefined, duration)
  }

  tryPromise<A, E>(
    options: { readonly try: (signal: AbortSignal) => PromiseLike<A>; readonly catch: (error: unknown) => E }
  ): Effect.Effect<A, E | TimeoutError>
  tryPromise<A, E>(
    options: { readonly try: (signal: AbortSignal) => PromiseLike<A>; readonly catch: (error: unknown) => E },
    duration: Duration.DurationInput
  ): Effect.Effect<A, E | TimeoutError | ValidationError>
  tryPromise<A, E>(
    options: { readonly try: (signal: AbortSignal) => PromiseLike<A>; readonly catch: (error: unknown) => E },
    duration?: Duration.DurationInput
  ): Effect.Effect<A, E | TimeoutError | ValidationError> {
    return this.race(options.try, options.catch, duration)
  }

  private race<A, E>(
    evaluate: (signal: AbortSignal) => PromiseLike<A>,
    catcher: ((error: unknown) => E) | undefined,
    duration: Duration.DurationInput | undefined
  ): Effect.Effect<A, E | TimeoutError | ValidationError> {
    const ms = limitOf(duration, this.millis)
    if (typeof ms !== "number") return Effect.fail(ms)
    const wheel = this.wheel
    if (evaluate.length === 0) {
      // No signal wanted: no controller, no canceler (which would cost an interruption hook).
      return Effect.async<A, E | TimeoutError>((resume) => {
        const entry = wheel.add(ms, (shutdown) => resume(Effect.fail(this.error(ms, shutdown))))
        if (entry === undefined) return resume(Effect.fail(this.error(ms, true)))
        settle(evaluate as () => PromiseLike<A>, entry, wheel, resume, catcher)
      })
    }
    return Effect.async<A, E | TimeoutError>((resume) => {
      const controller = new AbortController()
      const entry = wheel.add(ms, (shutdown) => {
        const error = this.error(ms, shutdown)
        controller.abort(error)
        resume(Effect.fail(error))
      })
      if (entry === undefined) return resume(Effect.fail(this.error(ms, true)))
      settle(() => evaluate(controller.signal), entry, wheel, resume, catcher)
      return Effect.sync(() => {
        wheel.remove(entry)
        controller.abort()
      })
    })
  }

  get inFlight(): Effect.Effect<number> {
    return Effect.sync(() => this.wheel.size)
  }
}

/** Starts the work and resumes with its outcome unless the deadline fired first (once). */
const settle = <A, E>(
  evaluate: () => PromiseLike<A>,
  entry: Entry,
  wheel: DeadlineWheel,
  resume: (effect: Effect.Effect<A, E | TimeoutError>) => void,
  catcher: ((error: unknown) => E) | undefined
): void => {
  let promise: PromiseLike<A>
  try {
    promise = evaluate()
  } catch (error) {
    if (wheel.remove(entry)) resume(rejectionOf(catcher, error))
    return
  }
  promise.then(
    (a) => {
      if (wheel.remove(entry)) resume(Effect.succeed(a))
    },
    (error) => {
      if (wheel.remove(entry)) resume(rejectionOf(catcher, error))
    }
  )
}

/**
 * Makes a `Timeout`. Its timer fiber lives in the current scope; bad options fail with
 * `ValidationError`.
 */
export const make = (options: Options): Effect.Effect<Timeout, ValidationError, Scope.Scope> =>
  Effect.gen(function*() {
    const duration = yield* Validation.duration("timeout.duration", options.duration)
    const name = yield* Validation.nonEmptyString("timeout.name", options.name ?? "timeout")
    const wheel = new DeadlineWheel(yield* Effect.clock)
    yield* Effect.addFinalizer(() => Effect.sync(() => wheel.close()))
    // Explicitly interruptible: made inside an uninterruptible region, the fiber would inherit
    // it, and closing the scope would wait on it forever.
    yield* Effect.forkScoped(Effect.interruptible(wheel.run))
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    return new TimeoutImpl(name, duration, Duration.toMillis(duration), wheel, telemetry)
  })

/**
 * A one-off time limit with Effect's own `timeoutFail` (two forks per call): for occasional use
 * where no `Timeout` is at hand.
 */
export const timeout: {
  (duration: Duration.DurationInput): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TimeoutError, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, duration: Duration.DurationInput): Effect.Effect<A, E | TimeoutError, R>
} = dual(2, <A, E, R>(self: Effect.Effect<A, E, R>, duration: Duration.DurationInput) => timeoutWith(self, duration))

const timeoutWith = <A, E, R>(self: Effect.Effect<A, E, R>, duration: Duration.DurationInput) =>
  Effect.timeoutFail(self, {
    duration,
    onTimeout: () => new TimeoutError({ timeout: Duration.decode(duration) })
  })

/**
 * Bulkhead: at most `maxConcurrent` calls run at once and at most `maxQueued` wait for a slot
 * (first come, first served); a call arriving when both are full fails with
 * `BulkheadFullError` at once, without running.
 *
 * Guarantees: a slot is always given back, whether the call succeeds, fails, dies or is
 * interrupted, and whether it is interrupted while running or while queued (a slot handed to a
 * caller interrupted at that very moment is passed on); a freed slot goes straight to the
 * oldest waiter, so no newcomer overtakes the queue. No fibers, no timers, no `Scope`.
 *
 * Cost: Effect's `Semaphore.withPermits` takes about 4 µs per call and has no queue limit; this
 * takes a counter and an interruption mask on the fast path.
 *
 * Metrics (tagged `bulkhead`): `foundation_bulkhead_queued` (gauge, updated when the queue
 * changes) and `foundation_bulkhead_rejected_total` (counter). The number of running calls is in
 * `stats` rather than a gauge: a gauge update on every call and every release would cost more
 * than the rest of the fast path. Telemetry (when the `Telemetry` service is in the context at
 * construction): `foundation.bulkhead.rejected`.
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import type * as Metric from "effect/Metric"
import { BulkheadFullError, type ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"
import { IntrusiveList, type Node } from "../observability/internal/intrusiveList.js"
import { BulkheadKernel, type BulkheadKernelApi } from "./internal/kernel.js"

/** Options of a bulkhead. */
export interface Options {
  /** Calls allowed to run at once (an integer ≥ 1). */
  readonly maxConcurrent: number
  /** Calls allowed to wait for a slot (an integer ≥ 0) [0: no queue]. */
  readonly maxQueued?: number
  /** Used in errors and metrics ["bulkhead"]. */
  readonly name?: string
}

/** What a bulkhead is doing. */
export interface Stats {
  readonly name: string
  readonly active: number
  readonly queued: number
  readonly rejected: number
  readonly maxConcurrent: number
  readonly maxQueued: number
}

/** A concurrency limit with a bounded queue. */
export interface Bulkhead {
  readonly name: string
  /** Runs the effect in a slot, waiting in the queue if needed, or fails with `BulkheadFullError`. */
  run<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | BulkheadFullError, R>
  readonly stats: Effect.Effect<Stats>
}

interface Release<A, E> {
  readonly onSuccess: (a: A) => Effect.Effect<A>
  readonly onFailure: (cause: Cause.Cause<E>) => Effect.Effect<never, E>
}

interface Waiter extends Node<Waiter> {
  resume: ((effect: Effect.Effect<void>) => void) | undefined
  /** Set when a slot was handed to this waiter. */
  granted: boolean
}

/**
 * The counters and the waiter list are read and written only inside synchronous steps, so each
 * step is atomic (fibers interleave only between effects); no user code runs inside one.
 */
class BulkheadImpl implements Bulkhead {
  private active = 0
  private rejected = 0
  private readonly waiters = new IntrusiveList<Waiter>()
  private readonly queuedGauge: Metric.Metric.Gauge<number>
  private readonly rejectedCounter: Metric.Metric.Counter<number>

  constructor(
    readonly name: string,
    private readonly maxConcurrent: number,
    private readonly maxQueued: number,
    private readonly telemetry: Telemetry.Service | undefined
  ) {
    const tags = { bulkhead: name }
    this.queuedGauge = MetricKit.gauge("foundation_bulkhead_queued", { description: "Calls waiting for a slot", tags })
    this.rejectedCounter = MetricKit.counter("foundation_bulkhead_rejected_total", {
      description: "Calls rejected because the bulkhead was full",
      tags
    })
  }

  run<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | BulkheadFullError, R> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.suspend((): Effect.Effect<A, E | BulkheadFullError, R> => {
        if (this.active < this.maxConcurrent) {
          this.active++
          return Effect.matchCauseEffect(restore(self), this.release_ as Release<A, E>)
        }
        if (this.waiters.size >= this.maxQueued) {
          this.rejected++
          MetricKit.bump(this.rejectedCounter)
          this.telemetry?.unsafeEmit(Events.names.bulkhead.rejected, { count: 1 }, {
            bulkhead: this.name,
            max_concurrent: this.maxConcurrent,
            max_queued: this.maxQueued
          })
          return Effect.fail(
            new BulkheadFullError({ bulkhead: this.name, maxConcurrent: this.maxConcurrent, maxQueued: this.maxQueued })
          )
        }
        const waiter = this.enqueue()
        return Effect.matchCauseEffect(restore(this.await(waiter)), {
          onSuccess: () => Effect.matchCauseEffect(restore(self), this.release_ as Release<A, E>),
          onFailure: (cause) => {
            // Interrupted while queued, or just as the slot arrived: give it back either way.
            if (waiter.granted) this.release()
            else this.unlink(waiter)
            return Effect.failCause(cause)
          }
        })
      })
    )
  }

  /** Frees the slot after the call, whatever its outcome; one pair of handlers for every call. */
  private readonly release_: Release<unknown, unknown> = {
    onSuccess: (a) => {
      this.release()
      return Effect.succeed(a)
    },
    onFailure: (cause) => {
      this.release()
      return Effect.failCause(cause)
    }
  }

  private await(waiter: Waiter): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      if (waiter.granted) resume(Effect.void)
      else waiter.resume = resume
    })
  }

  private enqueue(): Waiter {
    const waiter: Waiter = { resume: undefined, granted: false, next: undefined, prev: undefined, list: undefined }
    this.waiters.push(waiter)
    MetricKit.set(this.queuedGauge, this.waiters.size)
    return waiter
  }

  private unlink(waiter: Waiter): void {
    if (this.waiters.remove(waiter)) MetricKit.set(this.queuedGauge, this.waiters.size)
  }

  // --- the synchronous hooks of Protect's fused path (see internal/kernel.ts) ----------------

  get [BulkheadKernel](): BulkheadKernelApi {
    return this
  }

  /** Takes a free slot if there is one (never queues). */
  tryAcquire(): boolean {
    if (this.active >= this.maxConcurrent) return false
    this.active++
    return true
  }

  /** Frees a slot: hands it to the oldest waiter, or returns it to the pool. */
  release(): void {
    const next = this.waiters.head
    if (next === undefined) {
      this.active--
      return
    }
    this.unlink(next)
    next.granted = true
    next.resume?.(Effect.void)
  }

  get stats(): Effect.Effect<Stats> {
    return Effect.sync(() => ({
      name: this.name,
      active: this.active,
      queued: this.waiters.size,
      rejected: this.rejected,
      maxConcurrent: this.maxConcurrent,
      maxQueued: this.maxQueued
    }))
  }
}

/** Makes a bulkhead; bad options fail with `ValidationError` naming the field. */
export const make = (options: Options): Effect.Effect<Bulkhead, ValidationError> =>
  Effect.gen(function*() {
    const maxConcurrent = yield* Validation.positiveInt("bulkhead.maxConcurrent", options.maxConcurrent)
    const maxQueued = yield* Validation.nonNegativeInt("bulkhead.maxQueued", options.maxQueued ?? 0)
    const name = yield* Validation.nonEmptyString("bulkhead.name", options.name ?? "bulkhead")
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    return new BulkheadImpl(name, maxConcurrent, maxQueued, telemetry)
  })

/** `run` as a pipeable function: `effect.pipe(Bulkhead.run(bulkhead))`. */
export const run: {
  (bulkhead: Bulkhead): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadFullError, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, bulkhead: Bulkhead): Effect.Effect<A, E | BulkheadFullError, R>
} = dual(2, <A, E, R>(self: Effect.Effect<A, E, R>, bulkhead: Bulkhead) => bulkhead.run(self))

/**
 * TaskPools: named, bounded pools that run effects with a concurrency cap, a first-come
 * first-served wait queue and a per-task time limit (the original's `TaskPoolManager`, with
 * `TaskHelper`'s rule that no work ever runs unsupervised).
 *
 * Default pools (max concurrency / default per-task timeout), as in the original:
 * `general` 10 / 30 s, `agent_operations` 20 / 30 s, `coordination` 15 / 15 s, `monitoring`
 * 5 / 10 s, `distributed_computation` one per core (`os.availableParallelism()`, or the `cores`
 * option) / 60 s. `createPool` adds more.
 *
 * Guarantees:
 * - Every task runs in a fiber owned by its pool's scope, which is a child of the scope the pool
 *   (or the `TaskPools` layer) was made in. Nothing outlives its owner: `shutdown(pool)` or
 *   closing the layer's scope interrupts every running and queued task (their finalizers run,
 *   all tasks of a pool concurrently), and interrupting a caller of `execute` interrupts its task
 *   (the caller resumes once the task has stopped). The original leaked exactly these.
 * - At most `maxConcurrency` tasks of a pool run at once (a `Bulkhead`); the others wait in
 *   arrival order (up to `maxQueued`, unbounded by default; beyond it `BulkheadFullError`).
 * - The time limit counts from the moment a task gets its slot (time spent queued is not
 *   counted) and fails the task with `TimeoutError` exactly when it expires (the task is
 *   interrupted first). One timer fiber per pool (a `Timeout`), not one per task.
 * - A shut-down pool rejects new work with `PoolShutdownError`, and callers whose task was
 *   interrupted by the shutdown get that error too (not a bare interruption). An unknown pool
 *   name fails with `NotFoundError`. Bad options fail with `ValidationError` naming the field.
 * - `executeBatch` returns one `Exit` per item: a failing, dying or timed-out item never sinks
 *   the batch. With `ordered: true` (the default) the array is in input order; with
 *   `ordered: false` it is in completion order and each entry carries its input `index`. An array
 *   (not a Stream) because every item runs to an outcome anyway; use `execute` per item inside
 *   your own Stream for incremental consumption.
 * - Stats are exact: `running`, `queued`, `completed` (succeeded), `failed` (failed or died),
 *   `timedOut`, `interrupted` (running or queued), `rejected` (queue full), and the average run
 *   time in milliseconds of the tasks that reached an outcome (completed, failed or timed out).
 *   The original only ever incremented "started" and "active".
 *
 * Metrics, tagged `pool`: `foundation_task_pool_tasks_total` (tag `outcome`: completed | failed |
 * timed_out | interrupted) and the histogram `foundation_task_pool_task_duration_ms`; the pool's
 * bulkhead reports `foundation_bulkhead_*` under the name `task_pool.<name>`. Telemetry (when the
 * `Telemetry` service is in the context when the pool is made): see `events`.
 */
import * as os from "node:os"
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import {
  AlreadyExistsError,
  type BulkheadFullError,
  NotFoundError,
  Tagged,
  type TimeoutError,
  type ValidationError
} from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"
import * as Bulkhead from "../resilience/Bulkhead.js"
import * as Timeout from "../resilience/Timeout.js"

// ---------------------------------------------------------------------------------------------
// Errors, events, options
// ---------------------------------------------------------------------------------------------

/** The pool was shut down: it takes no new work, and the work it was running was interrupted. */
export class PoolShutdownError extends Tagged("PoolShutdownError", {
  captureStack: false,
  category: "permanent",
  severity: "medium",
  message: "Task pool is shut down"
})<{
  readonly pool: string
}> {
  override describe() {
    return `Task pool "${this.pool}" is shut down`
  }
}

/** How a task submitted to a pool can fail, besides its own errors. */
export type TaskError = TimeoutError | PoolShutdownError | BulkheadFullError

/**
 * Telemetry events of this module (the original emitted none; named after its module, as
 * `foundation.error_handler.*` is for the original's ErrorHandler). Durations in milliseconds.
 */
export const events = Events.names.taskPools

/** Options of one pool. */
export interface PoolOptions {
  /** Tasks allowed to run at once (an integer ≥ 1). */
  readonly maxConcurrency: number
  /** The default time limit of each task, counted from when it gets a slot. */
  readonly timeout: Duration.DurationInput
  /** Tasks allowed to wait for a slot (an integer ≥ 0) [unbounded]; beyond it, `BulkheadFullError`. */
  readonly maxQueued?: number
}

/** The original's default pools, with `cores` slots for `distributed_computation`. */
export const defaultPools = (cores: number): Readonly<Record<string, PoolOptions>> => ({
  general: { maxConcurrency: 10, timeout: "30 seconds" },
  distributed_computation: { maxConcurrency: cores, timeout: "60 seconds" },
  agent_operations: { maxConcurrency: 20, timeout: "30 seconds" },
  coordination: { maxConcurrency: 15, timeout: "15 seconds" },
  monitoring: { maxConcurrency: 5, timeout: "10 seconds" }
})

/** Options of `executeBatch`. */
export interface BatchOptions {
  /** Input order (true, the default) or completion order with each entry's index (false). */
  readonly ordered?: boolean
  /** The time limit of each item [the pool's timeout]. */
  readonly timeoutPerItem?: Duration.DurationInput
  /** Items of this batch in the pool at once (an integer ≥ 1) [the pool's maxConcurrency]. */
  readonly concurrency?: number
}

/** One result of an unordered batch: the item's position in the input, and its outcome. */
export interface Completion<A, E> {
  readonly index: number
  readonly exit: Exit.Exit<A, E>
}

/** What a pool is doing and has done. */
export interface PoolStats {
  readonly name: string
  readonly status: "running" | "shutdown"
  readonly maxConcurrency: number
  readonly timeout: Duration.Duration
  readonly running: number
  readonly queued: number
  readonly completed: number
  readonly failed: number
  readonly timedOut: number
  readonly interrupted: number
  /** Rejected at once because the queue was full. */
  readonly rejected: number
  /** Mean run time (ms) of the completed, failed and timed-out tasks; 0 before the first one. */
  readonly averageDurationMillis: number
}

/** A bounded pool of tasks. */
export interface Pool {
  readonly name: string
  readonly maxConcurrency: number
  readonly timeout: Duration.Duration
  /** Runs `self` in the pool once a slot is free, within the pool's time limit. */
  execute<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | TaskError, R>
  /**
   * Runs `f` over `items` in the pool, returning one `Exit` per item. Fails only when the
   * options are invalid or the pool is already shut down.
   */
  executeBatch<I, A, E, R>(
    items: Iterable<I>,
    f: (item: I, index: number) => Effect.Effect<A, E, R>,
    options?: BatchOptions & { readonly ordered?: true }
  ): Effect.Effect<ReadonlyArray<Exit.Exit<A, E | TaskError>>, ValidationError | PoolShutdownError, R>
  executeBatch<I, A, E, R>(
    items: Iterable<I>,
    f: (item: I, index: number) => Effect.Effect<A, E, R>,
    options: BatchOptions & { readonly ordered: false }
  ): Effect.Effect<ReadonlyArray<Completion<A, E | TaskError>>, ValidationError | PoolShutdownError, R>
  executeBatch<I, A, E, R>(
    items: Iterable<I>,
    f: (item: I, index: number) => Effect.Effect<A, E, R>,
    options: BatchOptions
  ): Effect.Effect<
    ReadonlyArray<Exit.Exit<A, E | TaskError>> | ReadonlyArray<Completion<A, E | TaskError>>,
    ValidationError | PoolShutdownError,
    R
  >
  readonly stats: Effect.Effect<PoolStats>
  /** Interrupts every running and queued task (waiting for their finalizers) and rejects new work. Idempotent. */
  readonly shutdown: Effect.Effect<void>
}

// ---------------------------------------------------------------------------------------------
// Pool
// ---------------------------------------------------------------------------------------------

const durationBoundaries = MetricBoundaries.exponential({ start: 1, factor: 2, count: 20 })

interface ValidPoolOptions {
  readonly name: string
  readonly maxConcurrency: number
  readonly timeout: Duration.Duration
  readonly maxQueued: number
}

const validatePool = (name: unknown, options: PoolOptions, prefix = "taskPool") =>
  Effect.gen(function*() {
    const valid: ValidPoolOptions = {
      name: yield* Validation.nonEmptyString(`${prefix}.name`, name),
      maxConcurrency: yield* Validation.positiveInt(`${prefix}.maxConcurrency`, options.maxConcurrency),
      timeout: yield* Validation.duration(`${prefix}.timeout`, options.timeout),
      maxQueued: options.maxQueued === undefined
        ? Number.MAX_SAFE_INTEGER
        : yield* Validation.nonNegativeInt(`${prefix}.maxQueued`, options.maxQueued)
    }
    return valid
  })

/**
 * The counters and the status are plain fields read and written only inside synchronous steps
 * (`Effect.sync`/`suspend` bodies and exit callbacks), so each update is atomic; no user code
 * runs inside one.
 */
class PoolImpl implements Pool {
  readonly name: string
  readonly maxConcurrency: number
  readonly timeout: Duration.Duration
  private status: "running" | "shutdown" = "running"
  /** Set once `pool_created` was emitted, so that a pool discarded at birth emits nothing. */
  announced = false
  private completed = 0
  private failed = 0
  private timedOut = 0
  private interrupted = 0
  private totalMillis = 0
  private readonly outcomes: Record<"completed" | "failed" | "timed_out" | "interrupted", Metric.Metric.Counter<number>>
  private readonly durations: Metric.Metric<MetricKeyType.MetricKeyType.Histogram, number, unknown>
  private readonly shutdownError: PoolShutdownError

  constructor(
    options: ValidPoolOptions,
    private readonly scope: Scope.CloseableScope,
    private readonly bulkhead: Bulkhead.Bulkhead,
    private readonly limiter: Timeout.Timeout,
    private readonly fibers: FiberSet.FiberSet<unknown, unknown>,
    private readonly clock: Clock.Clock,
    private readonly telemetry: Telemetry.Service | undefined
  ) {
    this.name = options.name
    this.maxConcurrency = options.maxConcurrency
    this.timeout = options.timeout
    this.shutdownError = new PoolShutdownError({ pool: this.name })
    const counter = (outcome: string) =>
      MetricKit.counter("foundation_task_pool_tasks_total", {
        description: "Tasks that reached an outcome, by outcome",
        tags: { pool: this.name, outcome }
      })
    this.outcomes = {
      completed: counter("completed"),
      failed: counter("failed"),
      timed_out: counter("timed_out"),
      interrupted: counter("interrupted")
    }
    this.durations = MetricKit.histogram("foundation_task_pool_task_duration_ms", durationBoundaries, {
      description: "Run time of tasks (from getting a slot to their outcome), in milliseconds",
      tags: { pool: this.name }
    })
  }

  get isShutdown(): boolean {
    return this.status === "shutdown"
  }

  /** Marks the pool shut down (the first finalizer of its scope to run). */
  markShutdown(): Effect.Effect<void> {
    return Effect.flatMap(this.bulkhead.stats, (b) =>
      Effect.sync(() => {
        if (this.status === "shutdown") return
        this.status = "shutdown"
        if (!this.announced) return
        this.telemetry?.unsafeEmit(events.poolShutdown, { running: b.active, queued: b.queued }, { pool: this.name })
      }))
  }

  execute<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | TaskError, R> {
    return this.submit(self, undefined)
  }

  /**
   * Forks the task into the pool's fiber set and waits for it. The task fiber never fails (its
   * outcome is its value), so a failed outer exit means it was interrupted from outside: by the
   * pool's shutdown. An interrupted caller interrupts the task and waits for it to stop.
   */
  private submit<A, E, R>(
    self: Effect.Effect<A, E, R>,
    limit: Duration.Duration | undefined
  ): Effect.Effect<A, E | TaskError, R> {
    return Effect.suspend(() => {
      if (this.status === "shutdown") return Effect.fail(this.shutdownError)
      return Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(
          // Explicitly interruptible: forked from inside the mask, it would inherit it.
          FiberSet.run(this.fibers, Effect.interruptible(Effect.exit(this.task(self, limit)))),
          (fiber) =>
            Effect.flatMap(
              Effect.onInterrupt(restore(Fiber.await(fiber)), () => Fiber.interrupt(fiber)),
              (outer): Effect.Effect<A, E | TaskError> =>
                Exit.isSuccess(outer)
                  ? Effect.zipRight(Fiber.inheritAll(fiber), outer.value)
                  : Effect.fail(this.shutdownError)
            )
        )
      )
    })
  }

  /** Waits for a slot, then runs `self` within the time limit; records the outcome. */
  private task<A, E, R>(
    self: Effect.Effect<A, E, R>,
    limit: Duration.Duration | undefined
  ): Effect.Effect<A, E | TimeoutError | BulkheadFullError, R> {
    return Effect.suspend(() => {
      // Per task, written only in its own synchronous steps.
      let startedAt = -1
      let expired = false
      const guarded = Effect.exit(self) // never fails: a failure of `timed` is the limit's own
      const timed: Effect.Effect<Exit.Exit<A, E>, TimeoutError, R> = limit === undefined
        ? this.limiter.apply(guarded)
        : Effect.catchTag(this.limiter.apply(guarded, limit), "ValidationError", (e) => Effect.die(e)) // validated already
      const body = Effect.suspend(() => {
        startedAt = this.clock.unsafeCurrentTimeMillis()
        return Effect.flatten(Effect.tapError(timed, () => Effect.sync(() => expired = true)))
      })
      return Effect.onExit(
        this.bulkhead.run(body),
        (exit) => Effect.sync(() => this.record(exit, startedAt, expired, limit))
      )
    })
  }

  private record(exit: Exit.Exit<unknown, unknown>, startedAt: number, expired: boolean, limit: Duration.Duration | undefined) {
    if (startedAt < 0) {
      // Never ran: interrupted while queued, or rejected by a full queue (the bulkhead counts those).
      if (Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)) this.outcome("interrupted")
      return
    }
    const elapsed = this.clock.unsafeCurrentTimeMillis() - startedAt
    if (Exit.isSuccess(exit)) {
      this.outcome("completed", elapsed)
    } else if (expired) {
      this.outcome("timed_out", elapsed)
      const ms = Duration.toMillis(limit ?? this.timeout)
      this.telemetry?.unsafeEmit(events.taskTimeout, { timeout_ms: ms }, { pool: this.name })
    } else if (Cause.isInterruptedOnly(exit.cause)) {
      this.outcome("interrupted")
    } else {
      this.outcome("failed", elapsed)
    }
  }

  private outcome(outcome: "completed" | "failed" | "timed_out" | "interrupted", elapsed?: number): void {
    MetricKit.bump(this.outcomes[outcome])
    switch (outcome) {
      case "completed":
        this.completed++
        break
      case "failed":
        this.failed++
        break
      case "timed_out":
        this.timedOut++
        break
      case "interrupted":
        this.interrupted++
        return
    }
    if (elapsed !== undefined) {
      this.totalMillis += elapsed
      MetricKit.observe(this.durations, elapsed)
    }
  }

  executeBatch<I, A, E, R>(
    items: Iterable<I>,
    f: (item: I, index: number) => Effect.Effect<A, E, R>,
    options?: BatchOptions & { readonly ordered?: true }
  ): Effect.Effect<ReadonlyArray<Exit.Exit<A, E | TaskError>>, ValidationError | PoolShutdownError, R>
  executeBatch<I, A, E, R>(
    items: Iterable<I>,
    f: (item: I, index: number) => Effect.Effect<A, E, R>,
    options: BatchOptions & { readonly ordered: false }
  ): Effect.Effect<ReadonlyArray<Completion<A, E | TaskError>>, ValidationError | PoolShutdownError, R>
  executeBatch<I, A, E, R>(
    items: Iterable<I>,
    f: (item: I, index: number) => Effect.Effect<A, E, R>,
    options: BatchOptions
  ): Effect.Effect<
    ReadonlyArray<Exit.Exit<A, E | TaskError>> | ReadonlyArray<Completion<A, E | TaskError>>,
    ValidationError | PoolShutdownError,
    R
  >
  executeBatch<I, A, E, R>(
    items: Iterable<I>,
    f: (item: I, index: number) => Effect.Effect<A, E, R>,
    options: BatchOptions = {}
  ): Effect.Effect<
    ReadonlyArray<Exit.Exit<A, E | TaskError>> | ReadonlyArray<Completion<A, E | TaskError>>,
    ValidationError | PoolShutdownError,
    R
  > {
    const pool = this
    return Effect.gen(function*() {
      const ordered = options.ordered ?? true
      if (typeof ordered !== "boolean") {
        return yield* Validation.invalid("taskPool.executeBatch.ordered", "must be a boolean")
      }
      const limit = options.timeoutPerItem === undefined
        ? undefined
        : yield* Validation.duration("taskPool.executeBatch.timeoutPerItem", options.timeoutPerItem)
      const concurrency = yield* Validation.positiveInt(
        "taskPool.executeBatch.concurrency",
        options.concurrency ?? pool.maxConcurrency
      )
      if (pool.status === "shutdown") return yield* Effect.fail(pool.shutdownError)
      // Appended in completion order, inside synchronous steps.
      const completions: Array<Completion<A, E | TaskError>> = []
      const exits = yield* Effect.forEach(
        Array.from(items),
        (item, index) =>
          Effect.tap(
            Effect.exit(pool.submit(Effect.suspend(() => f(item, index)), limit)),
            (exit) => Effect.sync(() => completions.push({ index, exit }))
          ),
        { concurrency }
      )
      return ordered ? exits : completions
    })
  }

  get stats(): Effect.Effect<PoolStats> {
    return Effect.map(this.bulkhead.stats, (b): PoolStats => {
      const finished = this.completed + this.failed + this.timedOut
      return {
        name: this.name,
        status: this.status,
        maxConcurrency: this.maxConcurrency,
        timeout: this.timeout,
        running: b.active,
        queued: b.queued,
        completed: this.completed,
        failed: this.failed,
        timedOut: this.timedOut,
        interrupted: this.interrupted,
        rejected: b.rejected,
        averageDurationMillis: finished === 0 ? 0 : this.totalMillis / finished
      }
    })
  }

  get shutdown(): Effect.Effect<void> {
    return Scope.close(this.scope, Exit.void)
  }
}

/** Builds a pool in a child scope of `parent` (validated options; no event). */
const buildPool = (
  options: ValidPoolOptions,
  parent: Scope.Scope,
  telemetry: Telemetry.Service | undefined
): Effect.Effect<PoolImpl, ValidationError> =>
  Effect.gen(function*() {
    const scope = yield* Scope.fork(parent, ExecutionStrategy.sequential)
    const made = yield* Effect.gen(function*() {
      const clock = yield* Effect.clock
      // Finalizers run in reverse: mark shut down, interrupt the tasks, then stop the timer.
      const limiter = yield* Timeout.make({ duration: options.timeout, name: `task_pool.${options.name}` })
      const fibers = yield* FiberSet.make<unknown, unknown>()
      const bulkhead = yield* Bulkhead.make({
        maxConcurrent: options.maxConcurrency,
        maxQueued: options.maxQueued,
        name: `task_pool.${options.name}`
      })
      const pool = new PoolImpl(options, scope, bulkhead, limiter, fibers, clock, telemetry)
      yield* Effect.addFinalizer(() => pool.markShutdown())
      return pool
    }).pipe(Scope.extend(scope), Effect.onError(() => Scope.close(scope, Exit.void)))
    return made
  })

const emitCreated = (pool: PoolImpl, telemetry: Telemetry.Service | undefined): void => {
  pool.announced = true
  telemetry?.unsafeEmit(
    events.poolCreated,
    { max_concurrency: pool.maxConcurrency, timeout_ms: Duration.toMillis(pool.timeout) },
    { pool: pool.name }
  )
}

/**
 * Makes a standalone pool whose tasks live in the current scope: closing it interrupts them.
 * Bad options fail with `ValidationError` naming the field.
 */
export const makePool = (options: PoolOptions & { readonly name: string }): Effect.Effect<Pool, ValidationError, Scope.Scope> =>
  Effect.gen(function*() {
    const valid = yield* validatePool(options.name, options)
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const pool = yield* buildPool(valid, yield* Effect.scope, telemetry)
    emitCreated(pool, telemetry)
    return pool
  })

// ---------------------------------------------------------------------------------------------
// TaskPools: the named pools service
// ---------------------------------------------------------------------------------------------

/** Options of the `TaskPools` service. */
export interface Options {
  /** Slots of `distributed_computation` (an integer ≥ 1) [`os.availableParallelism()`]. */
  readonly cores?: number
  /** More pools made at start, or replacements for default ones, by name. */
  readonly pools?: Readonly<Record<string, PoolOptions>>
}

/** Named pools. */
export interface Service {
  /** Makes a pool; fails with `AlreadyExistsError` if a pool of that name is running (a shut-down one is replaced). */
  createPool(name: string, options: PoolOptions): Effect.Effect<Pool, ValidationError | AlreadyExistsError>
  /** The pool named `name` (running or shut down). */
  pool(name: string): Effect.Effect<Pool, NotFoundError>
  /** `execute` on the pool named `pool`. */
  execute<A, E, R>(pool: string, self: Effect.Effect<A, E, R>): Effect.Effect<A, E | TaskError | NotFoundError, R>
  /** `executeBatch` on the pool named `pool`. */
  executeBatch<I, A, E, R>(
    pool: string,
    items: Iterable<I>,
    f: (item: I, index: number) => Effect.Effect<A, E, R>,
    options?: BatchOptions & { readonly ordered?: true }
  ): Effect.Effect<ReadonlyArray<Exit.Exit<A, E | TaskError>>, ValidationError | PoolShutdownError | NotFoundError, R>
  executeBatch<I, A, E, R>(
    pool: string,
    items: Iterable<I>,
    f: (item: I, index: number) => Effect.Effect<A, E, R>,
    options: BatchOptions & { readonly ordered: false }
  ): Effect.Effect<ReadonlyArray<Completion<A, E | TaskError>>, ValidationError | PoolShutdownError | NotFoundError, R>
  /** Stats of the pool named `pool`. */
  stats(pool: string): Effect.Effect<PoolStats, NotFoundError>
  /** Stats of every pool, by name. */
  readonly allStats: Effect.Effect<Readonly<Record<string, PoolStats>>>
  /** Shuts the pool named `pool` down (see `Pool.shutdown`). */
  shutdown(pool: string): Effect.Effect<void, NotFoundError>
  readonly names: Effect.Effect<ReadonlyArray<string>>
}

/** The `TaskPools` service. */
export class TaskPools extends Context.Tag("effect-foundation/TaskPools")<TaskPools, Service>() {}

/**
 * The pools are kept in a plain `Map` read and written only inside synchronous steps; a pool is
 * built first and registered in one step, so two concurrent `createPool` calls cannot both win.
 */
class ServiceImpl implements Service {
  private readonly pools = new Map<string, PoolImpl>()

  constructor(private readonly scope: Scope.Scope, private readonly telemetry: Telemetry.Service | undefined) {}

  /** Registers a pool at start (names are unique keys of the options). */
  add(pool: PoolImpl): Effect.Effect<void> {
    return Effect.sync(() => {
      this.pools.set(pool.name, pool)
      emitCreated(pool, this.telemetry)
    })
  }

  register(pool: PoolImpl): Effect.Effect<Pool, AlreadyExistsError> {
    return Effect.suspend(() => {
      const existing = this.pools.get(pool.name)
      if (existing !== undefined && !existing.isShutdown) {
        return Effect.zipRight(pool.shutdown, Effect.fail(new AlreadyExistsError({ resource: "task pool", key: pool.name })))
      }
      this.pools.set(pool.name, pool)
      emitCreated(pool, this.telemetry)
      return Effect.succeed(pool)
    })
  }

  createPool(name: string, options: PoolOptions): Effect.Effect<Pool, ValidationError | AlreadyExistsError> {
    return Effect.gen(this, function*() {
      const valid = yield* validatePool(name, options)
      if (this.pools.get(valid.name)?.isShutdown === false) {
        return yield* Effect.fail(new AlreadyExistsError({ resource: "task pool", key: valid.name }))
      }
      return yield* this.register(yield* buildPool(valid, this.scope, this.telemetry))
    })
  }

  private find(name: string): Effect.Effect<PoolImpl, NotFoundError> {
    return Effect.suspend(() => {
      const pool = this.pools.get(name)
      return pool === undefined ? Effect.fail(new NotFoundError({ resource: "task pool", key: name })) : Effect.succeed(pool)
    })
  }

  pool(name: string): Effect.Effect<Pool, NotFoundError> {
    return this.find(name)
  }

  execute<A, E, R>(pool: string, self: Effect.Effect<A, E, R>): Effect.Effect<A, E | TaskError | NotFoundError, R> {
    return Effect.flatMap(this.find(pool), (p) => p.execute(self))
  }

  executeBatch<I, A, E, R>(
    pool: string,
    items: Iterable<I>,
    f: (item: I, index: number) => Effect.Effect<A, E, R>,
    options?: BatchOptions & { readonly ordered?: true }
  ): Effect.Effect<ReadonlyArray<Exit.Exit<A, E | TaskError>>, ValidationError | PoolShutdownError | NotFoundError, R>
  executeBatch<I, A, E, R>(
    pool: string,
    items: Iterable<I>,
    f: (item: I, index: number) => Effect.Effect<A, E, R>,
    options: BatchOptions & { readonly ordered: false }
  ): Effect.Effect<ReadonlyArray<Completion<A, E | TaskError>>, ValidationError | PoolShutdownError | NotFoundError, R>
  executeBatch<I, A, E, R>(
    pool: string,
    items: Iterable<I>,
    f: (item: I, index: number) => Effect.Effect<A, E, R>,
    options: BatchOptions = {}
  ): Effect.Effect<
    ReadonlyArray<Exit.Exit<A, E | TaskError>> | ReadonlyArray<Completion<A, E | TaskError>>,
    ValidationError | PoolShutdownError | NotFoundError,
    R
  > {
    return Effect.flatMap(this.find(pool), (p) => p.executeBatch(items, f, options))
  }

  stats(pool: string): Effect.Effect<PoolStats, NotFoundError> {
    return Effect.flatMap(this.find(pool), (p) => p.stats)
  }

  get allStats(): Effect.Effect<Readonly<Record<string, PoolStats>>> {
    return Effect.suspend(() =>
      Effect.map(
        Effect.forEach([...this.pools.values()], (p) => p.stats),
        (all) => Object.fromEntries(all.map((s) => [s.name, s]))
      )
    )
  }

  shutdown(pool: string): Effect.Effect<void, NotFoundError> {
    return Effect.flatMap(this.find(pool), (p) => p.shutdown)
  }

  get names(): Effect.Effect<ReadonlyArray<string>> {
    return Effect.sync(() => [...this.pools.keys()])
  }
}

/**
 * Makes the service with the default pools (and `options.pools`); every pool lives in a child of
 * the current scope. Bad options fail with `ValidationError` naming the field.
 */
export const make = (options: Options = {}): Effect.Effect<Service, ValidationError, Scope.Scope> =>
  Effect.gen(function*() {
    const cores = yield* Validation.positiveInt("taskPools.cores", options.cores ?? os.availableParallelism())
    const specs = { ...defaultPools(cores), ...options.pools }
    // Validate everything before building anything.
    const valid: Array<ValidPoolOptions> = []
    for (const [name, spec] of Object.entries(specs)) {
      valid.push(yield* validatePool(name, spec, `taskPools.pools.${name}`))
    }
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const service = new ServiceImpl(yield* Effect.scope, telemetry)
    for (const spec of valid) {
      yield* service.add(yield* buildPool(spec, yield* Effect.scope, telemetry))
    }
    return service
  })

/** A layer of the `TaskPools` service; closing it interrupts every task of every pool. */
export const layer = (options: Options = {}): Layer.Layer<TaskPools, ValidationError> =>
  Layer.scoped(TaskPools, make(options))

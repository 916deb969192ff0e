/**
 * Per-operation timing statistics: how often each named operation ran, how often it failed, and
 * how long it took (min, max, mean, p50/p90/p99), plus the last operations recorded.
 *
 * Guarantees
 * - `timeOperation(name, effect)` returns the effect's result (success, failure or defect)
 *   unchanged. It measures on `Clock` (nanosecond resolution where the clock has it; exact under
 *   `TestClock`) and records a success, or an error for a typed failure or a defect; an
 *   interrupted run is not recorded (it says nothing about the operation).
 * - Recording is one synchronous step over plain mutable state (atomic: fibers interleave only
 *   between effects); no lock, no fork, no span.
 * - Nothing grows without bound:
 *   - count, successes, errors, min, max and mean cover every record since the last reset
 *     (a few numbers per operation);
 *   - percentiles cover the last `samplesPerOperation` durations (default 1000) of each
 *     operation, kept in a ring buffer; a percentile p is the sample at index
 *     round(p · (n − 1)) of the n retained samples sorted;
 *   - at most `maxOperations` distinct names (default 10 000) get their own entry; records for
 *     further names go to the shared `otherOperation` bucket (and are counted in
 *     `overflowRecords`), so that totals stay right and nothing is lost silently. We fold
 *     rather than drop because a dropped record would vanish from the totals and the metrics;
 *   - `recent` keeps the last `recentSize` records (default 100, as the original) in a ring
 *     buffer: O(1) per insert (the original re-built a list on each insert).
 * - No background fibers and no timers (the original's cleanup tick was a no-op), and no
 *   cached summary to go stale after `reset` (the summary is computed when asked).
 *
 * Metrics (Effect `Metric`s, so the figures reach any exporter): per operation, created once
 * when the operation is first recorded (through `MetricKit`, tags `operation` and `monitor`):
 * the histogram `foundation_operation_duration_ms` (boundaries `durationBoundariesMillis`) and
 * the counters `foundation_operation_success_total` and `foundation_operation_error_total`.
 * Metrics are cumulative and are not cleared by `reset`. Effect's metric registry keeps a series
 * per name for the life of the process, so at most `maxOperations` names get their own series
 * over the monitor's whole life (resets included); later names share the `<other>` series.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type * as MetricKeyType from "effect/MetricKeyType"
import type * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"
import type { ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as MetricKit from "./MetricKit.js"

// ---------------------------------------------------------------------------------------------
// Options and results
// ---------------------------------------------------------------------------------------------

/** How an operation ended. */
export type Outcome = "success" | "error"

/** All outcomes. */
export const outcomes: ReadonlyArray<Outcome> = ["success", "error"]

/** Options of a monitor; every field is optional. */
export interface Options {
  /** Used in metric tags and the summary (default `"performance_monitor"`). */
  readonly name?: string | undefined
  /** Durations kept per operation for percentiles (an integer ≥ 1; default 1000). */
  readonly samplesPerOperation?: number | undefined
  /** Most distinct operation names with their own entry (an integer ≥ 1; default 10 000). */
  readonly maxOperations?: number | undefined
  /** Records kept by `recent` (an integer ≥ 1; default 100). */
  readonly recentSize?: number | undefined
}

/** Validated options. */
export interface Config {
  readonly name: string
  readonly samplesPerOperation: number
  readonly maxOperations: number
  readonly recentSize: number
}

/** The defaults. */
export const defaults = {
  name: "performance_monitor",
  samplesPerOperation: 1000,
  maxOperations: 10_000,
  recentSize: 100
} as const satisfies Config

/** The operation name under which records for names beyond `maxOperations` are kept. */
export const otherOperation = "<other>"

/** Bucket boundaries of the duration histogram, in milliseconds. */
export const durationBoundariesMillis: ReadonlyArray<number> = [
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1000,
  2500,
  5000,
  10_000,
  30_000,
  60_000
]

/** One recorded operation. */
export interface OperationRecord {
  /** The name it was recorded under (its own name, even when folded into `otherOperation`). */
  readonly operation: string
  readonly durationMillis: number
  readonly outcome: Outcome
  /** When it was recorded, in epoch milliseconds (`Clock`). */
  readonly at: number
}

/** Statistics of one operation since the last reset. Durations in milliseconds. */
export interface OperationStats {
  readonly operation: string
  readonly count: number
  readonly successes: number
  readonly errors: number
  /** successes / count. */
  readonly successRate: number
  readonly totalMillis: number
  readonly minMillis: number
  readonly maxMillis: number
  readonly meanMillis: number
  /** Percentiles of the last `samples` durations. */
  readonly p50Millis: number
  readonly p90Millis: number
  readonly p99Millis: number
  /** How many durations the percentiles were computed from (≤ `samplesPerOperation`). */
  readonly samples: number
}

/** All operations. */
export interface Summary {
  readonly name: string
  /** Milliseconds since the monitor was made or last reset. */
  readonly uptimeMillis: number
  readonly totalOperations: number
  readonly successes: number
  readonly errors: number
  /** Records folded into `otherOperation` because `maxOperations` names were taken. */
  readonly overflowRecords: number
  /** Every operation (including `otherOperation` when used), sorted by name. */
  readonly operations: ReadonlyArray<OperationStats>
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/** Validates options, applying the defaults; fails with a `ValidationError` naming the field. */
export const validate = (options: Options = {}): Either.Either<Config, ValidationError> =>
  Either.gen(function*() {
    const name = yield* Validation.nonEmptyString("name", options.name ?? defaults.name)
    const samplesPerOperation = yield* Validation.positiveInt(
      "samplesPerOperation",
      options.samplesPerOperation ?? defaults.samplesPerOperation
    )
    const maxOperations = yield* Validation.positiveInt("maxOperations", options.maxOperations ?? defaults.maxOperations)
    const recentSize = yield* Validation.positiveInt("recentSize", options.recentSize ?? defaults.recentSize)
    return { name, samplesPerOperation, maxOperations, recentSize }
  })

// ---------------------------------------------------------------------------------------------
// Per-operation state
// ---------------------------------------------------------------------------------------------

type Histogram = Metric.Metric<MetricKeyType.MetricKeyType.Histogram, number, MetricState.MetricState.Histogram>

const boundaries = MetricBoundaries.fromIterable(durationBoundariesMillis)

/** Percentile p of sorted samples: the sample at index round(p · (n − 1)). */
const percentile = (sorted: Float64Array, p: number): number => sorted[Math.round(p * (sorted.length - 1))] ?? 0

/** The metric series of one operation name. */
interface OperationMetrics {
  readonly duration: Histogram
  readonly success: Metric.Metric.Counter<number>
  readonly error: Metric.Metric.Counter<number>
}

const makeOperationMetrics = (operation: string, monitor: string): OperationMetrics => {
  const tags = { operation, monitor }
  return {
    duration: MetricKit.histogram("foundation_operation_duration_ms", boundaries, {
      description: "Duration of monitored operations, in milliseconds",
      tags
    }),
    success: MetricKit.counter("foundation_operation_success_total", {
      description: "Monitored operations that succeeded",
      tags
    }),
    error: MetricKit.counter("foundation_operation_error_total", {
      description: "Monitored operations that failed (typed failure or defect)",
      tags
    })
  }
}

/** One operation's figures; read and written only inside synchronous steps. */
class Operation {
  count = 0
  successes = 0
  errors = 0
  totalMillis = 0
  minMillis = Infinity
  maxMillis = -Infinity
  /** The last durations: grows to `capacity`, then `next` is the slot to overwrite. */
  readonly samples: Array<number> = []
  next = 0
  readonly duration: Histogram
  readonly success: Metric.Metric.Counter<number>
  readonly error: Metric.Metric.Counter<number>

  constructor(readonly name: string, metrics: OperationMetrics, readonly capacity: number) {
    this.duration = metrics.duration
    this.success = metrics.success
    this.error = metrics.error
  }

  add(durationMillis: number, outcome: Outcome): void {
    this.count++
    if (outcome === "success") {
      this.successes++
      MetricKit.bump(this.success)
    } else {
      this.errors++
      MetricKit.bump(this.error)
    }
    this.totalMillis += durationMillis
    if (durationMillis < this.minMillis) this.minMillis = durationMillis
    if (durationMillis > this.maxMillis) this.maxMillis = durationMillis
    if (this.samples.length < this.capacity) {
      this.samples.push(durationMillis)
    } else {
      this.samples[this.next] = durationMillis
      this.next = this.next + 1 === this.capacity ? 0 : this.next + 1
    }
    MetricKit.observe(this.duration, durationMillis)
  }

  stats(): OperationStats {
    const sorted = Float64Array.from(this.samples).sort()
    return {
      operation: this.name,
      count: this.count,
      successes: this.successes,
      errors: this.errors,
      successRate: this.successes / this.count,
      totalMillis: this.totalMillis,
      minMillis: this.minMillis,
      maxMillis: this.maxMillis,
      meanMillis: this.totalMillis / this.count,
      p50Millis: percentile(sorted, 0.5),
      p90Millis: percentile(sorted, 0.9),
      p99Millis: percentile(sorted, 0.99),
      samples: sorted.length
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

/** A performance monitor. */
export interface PerformanceMonitorService {
  readonly config: Config
  /**
   * Runs `effect`, timing it on `Clock`, and records a success or (typed failure or defect) an
   * error under `name`; an interrupted run is not recorded. The result is unchanged.
   */
  readonly timeOperation: <A, E, R>(name: string, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * Records an operation measured elsewhere. A duration that is not a finite number ≥ 0, or an
   * unknown outcome, fails with `ValidationError` and records nothing.
   */
  readonly recordOperation: (
    name: string,
    durationMillis: number,
    outcome: Outcome
  ) => Effect.Effect<void, ValidationError>
  /** Statistics of one operation, if it was recorded since the last reset. */
  readonly operationStats: (name: string) => Effect.Effect<Option.Option<OperationStats>>
  /** Statistics of every operation. */
  readonly summary: Effect.Effect<Summary>
  /** The last `recentSize` records, newest first. */
  readonly recent: Effect.Effect<ReadonlyArray<OperationRecord>>
  /** Forgets every record (metrics excepted: they are cumulative). */
  readonly reset: Effect.Effect<void>
}

/** The `PerformanceMonitor` service tag. */
export class PerformanceMonitor
  extends Context.Tag("effect-foundation/PerformanceMonitor")<PerformanceMonitor, PerformanceMonitorService>()
{}

/** Makes a monitor. Fails with `ValidationError` for bad options. */
export const make = (options: Options = {}): Effect.Effect<PerformanceMonitorService, ValidationError> =>
  Effect.gen(function*() {
    const config = yield* validate(options)
    const { maxOperations, recentSize, samplesPerOperation } = config
    // Plain mutable state, read and written only inside synchronous steps (atomic: fibers
    // interleave only between effects), for speed: recording is on the caller's path.
    const operations = new Map<string, Operation>()
    let named = 0
    let overflowRecords = 0
    const recentRing: Array<OperationRecord | undefined> = new Array(recentSize).fill(undefined)
    let recentNext = 0
    let recentCount = 0
    let startedAt = yield* Clock.currentTimeMillis
    // Metric series live in Effect's registry for the life of the process, so the names that
    // get their own series are bounded over the monitor's whole life, not between resets.
    const series = new Map<string, OperationMetrics>()
    const seriesFor = (name: string): OperationMetrics => {
      const known = series.get(name)
      if (known !== undefined) return known
      const key = series.size < maxOperations ? name : otherOperation
      const made = series.get(key) ?? makeOperationMetrics(key, config.name)
      series.set(key, made)
      return made
    }

    const operationFor = (name: string): Operation => {
      const existing = operations.get(name)
      if (existing !== undefined) return existing
      if (named >= maxOperations) {
        overflowRecords++
        const other = operations.get(otherOperation)
        if (other !== undefined) return other
        const made = new Operation(otherOperation, seriesFor(otherOperation), samplesPerOperation)
        operations.set(otherOperation, made)
        return made
      }
      named++
      const made = new Operation(name, seriesFor(name), samplesPerOperation)
      operations.set(name, made)
      return made
    }

    const record = (name: string, durationMillis: number, outcome: Outcome, at: number): void => {
      operationFor(name).add(durationMillis, outcome)
      recentRing[recentNext] = { operation: name, durationMillis, outcome, at }
      recentNext = recentNext + 1 === recentSize ? 0 : recentNext + 1
      if (recentCount < recentSize) recentCount++
    }

    const timeOperation = <A, E, R>(name: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.withFiberRuntime((fiber) => {
        const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
        const start = clock.unsafeCurrentTimeNanos()
        return Effect.onExit(effect, (exit) =>
          Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)
            ? Effect.void
            : Effect.sync(() =>
              record(
                name,
                Number(clock.unsafeCurrentTimeNanos() - start) / 1_000_000,
                Exit.isSuccess(exit) ? "success" : "error",
                clock.unsafeCurrentTimeMillis()
              )
            ))
      })

    const recordOperation = (
      name: string,
      durationMillis: number,
      outcome: Outcome
    ): Effect.Effect<void, ValidationError> => {
      if (durationMillis >= 0 && durationMillis < Infinity && (outcome === "success" || outcome === "error")) {
        return Effect.clockWith((clock) =>
          Effect.sync(() => record(name, durationMillis, outcome, clock.unsafeCurrentTimeMillis()))
        )
      }
      const checked = Either.flatMap(
        Validation.number("durationMillis", durationMillis, { min: 0 }),
        () => Validation.oneOf("outcome", outcome, outcomes)
      )
      return Either.isLeft(checked) ? Effect.fail(checked.left) : Effect.void
    }

    const operationStats = (name: string): Effect.Effect<Option.Option<OperationStats>> =>
      Effect.sync(() => {
        const operation = operations.get(name)
        return operation === undefined ? Option.none() : Option.some(operation.stats())
      })

    const summary: Effect.Effect<Summary> = Effect.clockWith((clock) =>
      Effect.sync(() => {
        const all = Array.from(operations.values(), (operation) => operation.stats()).sort((a, b) =>
          a.operation < b.operation ? -1 : a.operation > b.operation ? 1 : 0
        )
        let totalOperations = 0
        let successes = 0
        let errors = 0
        for (const s of all) {
          totalOperations += s.count
          successes += s.successes
          errors += s.errors
        }
        return {
          name: config.name,
          uptimeMillis: clock.unsafeCurrentTimeMillis() - startedAt,
          totalOperations,
          successes,
          errors,
          overflowRecords,
          operations: all
        }
      })
    )

    const recent: Effect.Effect<ReadonlyArray<OperationRecord>> = Effect.sync(() => {
      const out: Array<OperationRecord> = []
      for (let i = 1; i <= recentCount; i++) {
        const r = recentRing[(recentNext - i + recentSize) % recentSize]
        if (r !== undefined) out.push(r)
      }
      return out
    })

    const reset: Effect.Effect<void> = Effect.clockWith((clock) =>
      Effect.sync(() => {
        operations.clear()
        named = 0
        overflowRecords = 0
        recentRing.fill(undefined)
        recentNext = 0
        recentCount = 0
        startedAt = clock.unsafeCurrentTimeMillis()
      })
    )

    const service: PerformanceMonitorService = {
      config,
      timeOperation,
      recordOperation,
      operationStats,
      summary,
      recent,
      reset
    }
    return service
  })

/** A layer of `PerformanceMonitor`; bad options fail the layer with `ValidationError`. */
export const layer = (options: Options = {}): Layer.Layer<PerformanceMonitor, ValidationError> =>
  Layer.scoped(PerformanceMonitor, make(options))

/**
 * Times `self` with the `PerformanceMonitor` in the context under `name`; with no monitor in
 * the context, runs it untimed.
 */
export const timed: {
  (name: string): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, name: string): Effect.Effect<A, E, R>
} = dual(
  2,
  <A, E, R>(self: Effect.Effect<A, E, R>, name: string): Effect.Effect<A, E, R> =>
    Effect.flatMap(
      Effect.serviceOption(PerformanceMonitor),
      (monitor) => Option.isSome(monitor) ? monitor.value.timeOperation(name, self) : self
    )
)

import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Metric, MetricState, Option, TestClock } from "effect"
import { ValidationError } from "../../src/errors/FoundationError.js"
import * as PerformanceMonitor from "../../src/observability/PerformanceMonitor.js"

type Monitor = PerformanceMonitor.PerformanceMonitorService

const statsOf = (monitor: Monitor, name: string) => Effect.map(monitor.operationStats(name), Option.getOrThrow)

/** Records the given durations (all successes) for `name`. */
const recordAll = (monitor: Monitor, name: string, durations: ReadonlyArray<number>) =>
  Effect.forEach(durations, (d) => monitor.recordOperation(name, d, "success"), { discard: true })

/** The state of the metric `name` tagged with this operation and monitor. */
const metricState = (name: string, operation: string, monitor: string) =>
  Effect.map(Metric.snapshot, (pairs) =>
    pairs.find((p) =>
      p.metricKey.name === name &&
      p.metricKey.tags.some((t) => t.key === "operation" && t.value === operation) &&
      p.metricKey.tags.some((t) => t.key === "monitor" && t.value === monitor)
    )?.metricState)

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

describe("PerformanceMonitor", () => {
  describe("timeOperation", () => {
    it.effect("measures the duration exactly on Clock and returns the result unchanged", () =>
      Effect.gen(function*() {
        const monitor = yield* PerformanceMonitor.make()
        const fiber = yield* Effect.fork(monitor.timeOperation("load", Effect.as(Effect.sleep("250 millis"), "value")))
        yield* TestClock.adjust("250 millis")
        expect(yield* Fiber.join(fiber)).toBe("value")
        const fast = yield* Effect.fork(monitor.timeOperation("load", Effect.as(Effect.sleep("1500 micros"), 2)))
        yield* TestClock.adjust("1500 micros")
        expect(yield* Fiber.join(fast)).toBe(2)
        expect(yield* statsOf(monitor, "load")).toMatchObject({
          count: 2,
          successes: 2,
          errors: 0,
          minMillis: 1.5,
          maxMillis: 250,
          meanMillis: 125.75,
          totalMillis: 251.5
        })
        const recent = yield* monitor.recent
        expect(recent.map((r) => [r.operation, r.durationMillis, r.outcome, r.at])).toEqual([
          ["load", 1.5, "success", 251.5],
          ["load", 250, "success", 250]
        ])
      }))

    it.effect("counts a typed failure and a defect as errors and passes them through unchanged", () =>
      Effect.gen(function*() {
        const monitor = yield* PerformanceMonitor.make()
        const failed = yield* Effect.exit(monitor.timeOperation("op", Effect.fail("boom" as const)))
        expect(failed).toEqual(Exit.fail("boom"))
        const defect = new Error("bug")
        const died = yield* Effect.exit(monitor.timeOperation("op", Effect.die(defect)))
        expect(Exit.isFailure(died) && Cause.isDie(died.cause)).toBe(true)
        expect(Exit.isFailure(died) ? Option.getOrUndefined(Cause.dieOption(died.cause)) : undefined).toBe(defect)
        yield* monitor.timeOperation("op", Effect.void)
        expect(yield* statsOf(monitor, "op")).toMatchObject({ count: 3, successes: 1, errors: 2, successRate: 1 / 3 })
        expect((yield* monitor.recent).map((r) => r.outcome)).toEqual(["success", "error", "error"])
      }))

    it.effect("does not record an interrupted run", () =>
      Effect.gen(function*() {
        const monitor = yield* PerformanceMonitor.make()
        const fiber = yield* Effect.fork(monitor.timeOperation("slow", Effect.never))
        yield* TestClock.adjust("3 seconds")
        yield* Fiber.interrupt(fiber)
        const self = yield* Effect.exit(monitor.timeOperation("self", Effect.interrupt))
        expect(Exit.isInterrupted(self)).toBe(true)
        expect(yield* monitor.operationStats("slow")).toEqual(Option.none())
        expect(yield* monitor.operationStats("self")).toEqual(Option.none())
        expect(yield* monitor.recent).toEqual([])
        expect((yield* monitor.summary).totalOperations).toBe(0)
      }))

    it.effect("times concurrent runs independently", () =>
      Effect.gen(function*() {
        const monitor = yield* PerformanceMonitor.make()
        const fibers = yield* Effect.forEach(range(1, 5), (i) =>
          Effect.fork(monitor.timeOperation("parallel", Effect.sleep(`${i * 100} millis`))))
        yield* TestClock.adjust("500 millis")
        yield* Fiber.joinAll(fibers)
        expect(yield* statsOf(monitor, "parallel")).toMatchObject({
          count: 5,
          minMillis: 100,
          maxMillis: 500,
          meanMillis: 300
        })
      }))
  })

  describe("statistics", () => {
    it.effect("computes min, max, mean and the p50/p90/p99 of known samples", () =>
      Effect.gen(function*() {
        const monitor = yield* PerformanceMonitor.make()
        // 1..100 in a scrambled order (37 is coprime with 100)
        yield* recordAll(monitor, "query", range(0, 99).map((i) => ((i * 37) % 100) + 1))
        yield* monitor.recordOperation("query", 7, "error")
        expect(yield* statsOf(monitor, "query")).toEqual({
          operation: "query",
          count: 101,
          successes: 100,
          errors: 1,
          successRate: 100 / 101,
          totalMillis: 5057,
          minMillis: 1,
          maxMillis: 100,
          meanMillis: 5057 / 101,
          // sorted: 1..6, 7, 7, 8..100 (101 samples); index round(p × 100)
          p50Millis: 50,
          p90Millis: 90,
          p99Millis: 99,
          samples: 101
        })
      }))

    it.effect("computes percentiles from the last samplesPerOperation durations, the rest from all", () =>
      Effect.gen(function*() {
        const monitor = yield* PerformanceMonitor.make({ samplesPerOperation: 10 })
        yield* recordAll(monitor, "op", range(1, 20))
        // retained: 11..20; index round(p × 9): p50 → 5 (4.5 rounds up), p90 → 8, p99 → 9
        expect(yield* statsOf(monitor, "op")).toMatchObject({
          count: 20,
          minMillis: 1,
          maxMillis: 20,
          meanMillis: 10.5,
          p50Millis: 16,
          p90Millis: 19,
          p99Millis: 20,
          samples: 10
        })
        // the ring keeps overwriting the oldest
        yield* recordAll(monitor, "op", [100, 100, 100, 100, 100, 100])
        expect(yield* statsOf(monitor, "op")).toMatchObject({ p50Millis: 100, p90Millis: 100, samples: 10, count: 26 })
        yield* recordAll(monitor, "single", [42])
        expect(yield* statsOf(monitor, "single")).toMatchObject({ p50Millis: 42, p90Millis: 42, p99Millis: 42 })
      }))

    it.effect("summarises every operation, sorted by name, with totals and uptime", () =>
      Effect.gen(function*() {
        const monitor = yield* PerformanceMonitor.make({ name: "summary-test" })
        yield* recordAll(monitor, "write", [10, 20])
        yield* monitor.recordOperation("read", 5, "error")
        yield* recordAll(monitor, "read", [1])
        yield* TestClock.adjust("2 seconds")
        const summary = yield* monitor.summary
        expect(summary).toMatchObject({
          name: "summary-test",
          uptimeMillis: 2000,
          totalOperations: 4,
          successes: 3,
          errors: 1,
          overflowRecords: 0
        })
        expect(summary.operations.map((o) => [o.operation, o.count, o.meanMillis])).toEqual([
          ["read", 2, 3],
          ["write", 2, 15]
        ])
      }))

    it.effect("keeps the last 100 operations, newest first, dropping the oldest", () =>
      Effect.gen(function*() {
        const monitor = yield* PerformanceMonitor.make()
        for (const d of range(1, 150)) yield* monitor.recordOperation(`op${d % 3}`, d, "success")
        const recent = yield* monitor.recent
        expect(recent).toHaveLength(100)
        expect(recent.map((r) => r.durationMillis)).toEqual(range(51, 150).reverse())
        expect(recent[0]?.operation).toBe("op0")
        const small = yield* PerformanceMonitor.make({ recentSize: 3 })
        yield* recordAll(small, "x", [1, 2])
        expect((yield* small.recent).map((r) => r.durationMillis)).toEqual([2, 1])
        yield* recordAll(small, "x", [3, 4, 5])
        expect((yield* small.recent).map((r) => r.durationMillis)).toEqual([5, 4, 3])
      }))

    it.effect("reset forgets every operation and the recent list and restarts the uptime", () =>
      Effect.gen(function*() {
        const monitor = yield* PerformanceMonitor.make({ maxOperations: 1 })
        yield* recordAll(monitor, "a", [1, 2, 3])
        yield* recordAll(monitor, "b", [4])
        yield* TestClock.adjust("1 minute")
        yield* monitor.reset
        expect(yield* monitor.operationStats("a")).toEqual(Option.none())
        expect(yield* monitor.recent).toEqual([])
        expect(yield* monitor.summary).toMatchObject({ totalOperations: 0, overflowRecords: 0, operations: [], uptimeMillis: 0 })
        // the name bound counts again from zero
        yield* recordAll(monitor, "b", [9])
        expect(yield* statsOf(monitor, "b")).toMatchObject({ count: 1, minMillis: 9, maxMillis: 9 })
      }))

    it.effect("folds operations beyond maxOperations into the other bucket and counts them", () =>
      Effect.gen(function*() {
        const monitor = yield* PerformanceMonitor.make({ maxOperations: 2 })
        for (const name of ["a", "b", "c", "d", "c", "a"]) yield* monitor.recordOperation(name, 10, "success")
        yield* monitor.recordOperation("e", 30, "error")
        const summary = yield* monitor.summary
        expect(summary.operations.map((o) => [o.operation, o.count])).toEqual([
          [PerformanceMonitor.otherOperation, 4],
          ["a", 2],
          ["b", 1]
        ])
        expect(summary).toMatchObject({ totalOperations: 7, overflowRecords: 4, errors: 1 })
        expect(yield* monitor.operationStats("c")).toEqual(Option.none())
        expect(yield* statsOf(monitor, PerformanceMonitor.otherOperation)).toMatchObject({
          count: 4,
          errors: 1,
          maxMillis: 30
        })
        // the recent list keeps the real names
        expect((yield* monitor.recent)[0]?.operation).toBe("e")
      }))
  })

  describe("metrics", () => {
    it.effect("updates the duration histogram and the success and error counters per operation", () =>
      Effect.gen(function*() {
        const monitor = yield* PerformanceMonitor.make({ name: "metrics-test" })
        yield* recordAll(monitor, "fetch", [2, 30, 700])
        yield* monitor.recordOperation("fetch", 4000, "error")
        yield* monitor.timeOperation("fetch", Effect.fail("x")).pipe(Effect.ignore)
        const histogram = yield* metricState("foundation_operation_duration_ms", "fetch", "metrics-test")
        expect(MetricState.isHistogramState(histogram)).toBe(true)
        if (MetricState.isHistogramState(histogram)) {
          expect(histogram.count).toBe(5)
          expect(histogram.sum).toBe(4732)
          expect(histogram.min).toBe(0)
          expect(histogram.max).toBe(4000)
        }
        const success = yield* metricState("foundation_operation_success_total", "fetch", "metrics-test")
        const error = yield* metricState("foundation_operation_error_total", "fetch", "metrics-test")
        expect(MetricState.isCounterState(success) && success.count).toBe(3)
        expect(MetricState.isCounterState(error) && error.count).toBe(2)
        // reset keeps the cumulative metrics, and the histogram is not duplicated when recreated
        yield* monitor.reset
        yield* recordAll(monitor, "fetch", [1])
        const after = yield* metricState("foundation_operation_duration_ms", "fetch", "metrics-test")
        expect(MetricState.isHistogramState(after) && after.count).toBe(6)
      }))
  })

  describe("service", () => {
    it.effect("the layer provides the monitor; timed uses it", () =>
      Effect.gen(function*() {
        const fiber = yield* Effect.fork(Effect.as(Effect.sleep("40 millis"), "ok").pipe(PerformanceMonitor.timed("step")))
        yield* TestClock.adjust("40 millis")
        expect(yield* Fiber.join(fiber)).toBe("ok")
        const monitor = yield* PerformanceMonitor.PerformanceMonitor
        expect(yield* statsOf(monitor, "step")).toMatchObject({ count: 1, meanMillis: 40 })
      }).pipe(Effect.provide(PerformanceMonitor.layer({ recentSize: 5 }))))

    it.effect("without a monitor, timed just runs the effect", () =>
      Effect.gen(function*() {
        expect(yield* PerformanceMonitor.timed(Effect.succeed(3), "step")).toBe(3)
        expect(yield* Effect.exit(PerformanceMonitor.timed(Effect.fail("no"), "step"))).toEqual(Exit.fail("no"))
      }))

    it.effect("a layer with bad options fails to build with ValidationError", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          Effect.provide(PerformanceMonitor.PerformanceMonitor, PerformanceMonitor.layer({ maxOperations: 0 }))
        )
        expect(error).toBeInstanceOf(ValidationError)
        expect(error.field).toBe("maxOperations")
      }))
  })

  describe("validation", () => {
    it.effect("rejects bad options, naming the field", () =>
      Effect.gen(function*() {
        const field = (options: PerformanceMonitor.Options) =>
          Effect.map(Effect.flip(PerformanceMonitor.make(options)), (e) => e.field)
        expect(yield* field({ name: "" })).toBe("name")
        expect(yield* field({ samplesPerOperation: 0 })).toBe("samplesPerOperation")
        expect(yield* field({ samplesPerOperation: 2.5 })).toBe("samplesPerOperation")
        expect(yield* field({ maxOperations: -1 })).toBe("maxOperations")
        expect(yield* field({ maxOperations: NaN })).toBe("maxOperations")
        expect(yield* field({ recentSize: 0 })).toBe("recentSize")
        expect(yield* field({ recentSize: Infinity })).toBe("recentSize")
      }))

    it.effect("rejects a bad duration or outcome and records nothing", () =>
      Effect.gen(function*() {
        const monitor = yield* PerformanceMonitor.make()
        for (const d of [-1, NaN, Infinity]) {
          const error = yield* Effect.flip(monitor.recordOperation("op", d, "success"))
          expect(error).toBeInstanceOf(ValidationError)
          expect(error.field).toBe("durationMillis")
        }
        const outcome = yield* Effect.flip(monitor.recordOperation("op", 1, "maybe" as PerformanceMonitor.Outcome))
        expect(outcome.field).toBe("outcome")
        expect(yield* monitor.operationStats("op")).toEqual(Option.none())
        expect(yield* monitor.recent).toEqual([])
        // zero is a valid duration
        yield* monitor.recordOperation("op", 0, "success")
        expect(yield* statsOf(monitor, "op")).toMatchObject({ count: 1, minMillis: 0 })
      }))
  })
})

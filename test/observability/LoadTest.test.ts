import { describe, expect, it } from "@effect/vitest"
import { Clock, Context, Duration, Effect, Fiber, Metric, MetricState, Random, Ref, TestClock } from "effect"
import { ServiceUnavailableError } from "../../src/errors/FoundationError.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as LoadTest from "../../src/observability/LoadTest.js"

/** A scenario that takes `millis` of (test) time and succeeds. */
const sleeping = (name: string, weight: number, millis: number): LoadTest.Scenario => ({
  name,
  weight,
  run: () => Effect.sleep(Duration.millis(millis))
})

/** Runs a load test on the TestClock (seeded Random), advancing the clock past its end. */
const runOnTestClock = <R>(
  scenarios: ReadonlyArray<LoadTest.Scenario<R>>,
  options: LoadTest.Options,
  seed = 1
) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(LoadTest.run(scenarios, options).pipe(Effect.withRandom(Random.make(seed))))
    const planned = [options.warmup, options.duration, options.cooldown]
      .reduce<number>((sum, d) => sum + (d === undefined ? 0 : Duration.toMillis(d)), 0)
    yield* TestClock.adjust(Duration.millis(planned))
    return yield* Fiber.join(fiber)
  })

describe("LoadTest: scenario choice and outcomes", () => {
  it.effect("honours the weights (80/20) with a seeded Random; a zero-weight scenario never runs", () =>
    Effect.gen(function*() {
      const neverRan = yield* Ref.make(0)
      const scenarios: ReadonlyArray<LoadTest.Scenario> = [
        sleeping("common", 80, 10),
        sleeping("rare", 20, 10),
        { name: "never", weight: 0, run: () => Ref.update(neverRan, (n) => n + 1) }
      ]
      const report = yield* runOnTestClock(scenarios, { duration: "600 millis", concurrency: 5 }, 7)
      const common = report.scenarios.common!.totalRequests
      const rare = report.scenarios.rare!.totalRequests
      // 5 workers × one 10 ms execution after another (the completion at exactly 600 ms is outside).
      expect(report.totalRequests).toBe(5 * 59)
      expect(common + rare).toBe(report.totalRequests)
      expect(common / rare).toBeGreaterThan(2.5)
      expect(common / rare).toBeLessThan(6)
      expect(report.scenarios.never!.totalRequests).toBe(0)
      expect(yield* Ref.get(neverRan)).toBe(0)
      // The same seed gives the same split, another seed another one.
      const short = { duration: "200 millis", concurrency: 5 } as const
      const splitOf = (r: LoadTest.Report) => [r.scenarios.common!.totalRequests, r.scenarios.rare!.totalRequests]
      const first = splitOf(yield* runOnTestClock(scenarios, short, 11))
      expect(splitOf(yield* runOnTestClock(scenarios, short, 11))).toEqual(first)
      expect(splitOf(yield* runOnTestClock(scenarios, short, 12))).not.toEqual(first)
    }))

  it.effect("throughput is recorded requests per second of the measured period, not per latency", () =>
    Effect.gen(function*() {
      const report = yield* runOnTestClock([sleeping("s", 1, 100)], { duration: "1 second", concurrency: 2 })
      // Completions at 100, 200, ..., 900 ms per worker (1000 ms is the end, exclusive).
      expect(report.totalRequests).toBe(18)
      expect(report.throughput).toBe(18)
      expect(report.scenarios.s!.throughput).toBe(18)
      expect(report).toMatchObject({ start: 0, end: 1000, durationMillis: 1000, successes: 18, errors: 0 })
    }))

  it.effect("a typed failure counts as an error, labelled with its tag; successes + errors = total", () =>
    Effect.gen(function*() {
      const name = "failures_test"
      const report = yield* runOnTestClock(
        [
          sleeping("ok", 2, 10),
          {
            name: "unavailable",
            weight: 1,
            run: () =>
              Effect.zipRight(Effect.sleep("10 millis"), Effect.fail(new ServiceUnavailableError({ service: "db" })))
          },
          { name: "plain", weight: 1, run: () => Effect.zipRight(Effect.sleep("10 millis"), Effect.fail("boom")) }
        ],
        { name, duration: "500 millis", concurrency: 2 }
      )
      const { ok, plain, unavailable } = report.scenarios
      expect(ok).toMatchObject({ errors: 0, outcomes: { success: ok!.totalRequests } })
      expect(unavailable!.errors).toBe(unavailable!.totalRequests)
      expect(unavailable!.outcomes).toEqual({ ServiceUnavailableError: unavailable!.totalRequests })
      expect(plain!.outcomes).toEqual({ failure: plain!.totalRequests })
      expect(unavailable!.totalRequests).toBeGreaterThan(0)
      expect(plain!.totalRequests).toBeGreaterThan(0)
      expect(report.successes + report.errors).toBe(report.totalRequests)
      expect(report.errors).toBe(unavailable!.totalRequests + plain!.totalRequests)
      expect(report.errorRate).toBeCloseTo(report.errors / report.totalRequests, 10)
      const messages = report.firstErrors.map((e) => e.message)
      expect(messages).toContain("boom")
      expect(messages).toContain(`ServiceUnavailableError: Service "db" unavailable`)
      // The requests counter, by scenario and outcome.
      const snapshot = yield* Metric.snapshot
      const counted = (scenario: string, outcome: string) => {
        const pair = snapshot.find((p) =>
          p.metricKey.name === "foundation_load_test_requests_total" &&
          p.metricKey.tags.some((t) => t.key === "load_test" && t.value === name) &&
          p.metricKey.tags.some((t) => t.key === "scenario" && t.value === scenario) &&
          p.metricKey.tags.some((t) => t.key === "outcome" && t.value === outcome)
        )
        return MetricState.isCounterState(pair?.metricState) ? pair.metricState.count : undefined
      }
      expect(counted("unavailable", "error")).toBe(unavailable!.totalRequests)
      expect(counted("ok", "success")).toBe(ok!.totalRequests)
      expect(counted("ok", "error") ?? 0).toBe(0)
    }))

  it.effect("defects (and synchronous throws) count as errors; the workers keep running", () =>
    Effect.gen(function*() {
      const report = yield* runOnTestClock(
        [
          sleeping("ok", 1, 10),
          {
            name: "dies",
            weight: 1,
            run: () => Effect.zipRight(Effect.sleep("10 millis"), Effect.die(new Error("kaboom")))
          },
          {
            name: "throws",
            weight: 1,
            run: () => {
              throw new Error("thrown")
            }
          }
        ],
        { duration: "500 millis", concurrency: 2 }
      )
      const { dies, ok, throws } = report.scenarios
      expect(dies!.outcomes).toEqual({ defect: dies!.totalRequests })
      expect(throws!.outcomes).toEqual({ defect: throws!.totalRequests })
      // Far more deaths than workers: a crashing scenario never stopped a worker.
      expect(dies!.totalRequests).toBeGreaterThan(10)
      expect(ok!.successes).toBeGreaterThan(10)
      expect(report.firstErrors.some((e) => e.scenario === "dies" && e.message === "defect: Error: kaboom")).toBe(true)
      expect(report.firstErrors.some((e) => e.scenario === "throws" && e.message === "defect: Error: thrown")).toBe(true)
    }))

  it.effect("an execution past scenarioTimeout is interrupted and counted as an error \"timeout\"", () =>
    Effect.gen(function*() {
      const finished = yield* Ref.make(0)
      const report = yield* runOnTestClock(
        [{
          name: "slow",
          weight: 1,
          run: () => Effect.zipRight(Effect.sleep("100 millis"), Ref.update(finished, (n) => n + 1))
        }],
        { duration: "500 millis", concurrency: 1, scenarioTimeout: "50 millis" }
      )
      expect(report.totalRequests).toBe(9) // timeouts at 50, 100, ..., 450 ms
      expect(report.errors).toBe(9)
      expect(report.outcomes).toEqual({ timeout: 9 })
      expect(report.firstErrors[0]!.message).toContain("timeout")
      expect(report.latency).toMatchObject({ min: 50, max: 50 })
      expect(yield* Ref.get(finished)).toBe(0)
    }))
})

class Inventory extends Context.Tag("test/Inventory")<Inventory, { readonly lookup: Effect.Effect<number> }>() {}
class Payments extends Context.Tag("test/Payments")<Payments, { readonly charge: Effect.Effect<void> }>() {}

describe("LoadTest: services", () => {
  it.effect("scenarios may need different services; the run needs them all", () =>
    Effect.gen(function*() {
      const run = LoadTest.run([
        { name: "lookup", weight: 1, run: () => Effect.flatMap(Inventory, (i) => i.lookup) },
        { name: "charge", weight: 1, run: () => Effect.flatMap(Payments, (p) => p.charge) }
      ], { duration: "100 millis", concurrency: 1 })
      const needs: Effect.Effect<LoadTest.Report, unknown, Inventory | Payments> = run
      const fiber = yield* Effect.fork(needs.pipe(
        Effect.provideService(Inventory, { lookup: Effect.as(Effect.sleep("10 millis"), 1) }),
        Effect.provideService(Payments, { charge: Effect.sleep("10 millis") })
      ))
      yield* TestClock.adjust("100 millis")
      const report = yield* Fiber.join(fiber)
      expect(report.totalRequests).toBe(9)
      expect(report.successes).toBe(9)
    }))
})

describe("LoadTest: timeline", () => {
  it.effect("ramp-up starts the workers evenly over the given period", () =>
    Effect.gen(function*() {
      const running = yield* Ref.make(0)
      const scenario: LoadTest.Scenario = {
        name: "s",
        weight: 1,
        run: () =>
          Effect.acquireUseRelease(
            Ref.update(running, (n) => n + 1),
            () => Effect.sleep("50 millis"),
            () => Ref.update(running, (n) => n - 1)
          )
      }
      const fiber = yield* Effect.fork(
        LoadTest.run([scenario], { duration: "1 second", concurrency: 4, rampUp: "400 millis" })
      )
      const seen: Array<number> = []
      for (const step of [10, 100, 100, 100, 100]) { // at 10, 110, 210, 310, 410 ms
        yield* TestClock.adjust(Duration.millis(step))
        seen.push(yield* Ref.get(running))
      }
      expect(seen).toEqual([1, 2, 3, 4, 4])
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(running)).toBe(0)
    }))

  it.effect("warmup: load runs but is not recorded; the measured window starts after it", () =>
    Effect.gen(function*() {
      const started = yield* Ref.make(0)
      const scenario: LoadTest.Scenario = {
        name: "s",
        weight: 1,
        run: () => Effect.zipRight(Ref.update(started, (n) => n + 1), Effect.sleep("100 millis"))
      }
      const fiber = yield* Effect.fork(
        LoadTest.run([scenario], { duration: "1 second", warmup: "500 millis", concurrency: 1 })
      )
      yield* TestClock.adjust("250 millis")
      expect(yield* Ref.get(started)).toBe(3) // load during warmup (started at 0, 100, 200 ms)
      yield* TestClock.adjust("1250 millis")
      const report = yield* Fiber.join(fiber)
      // Completions at 100..400 ms are warmup; 500..1400 ms are recorded; 1500 ms is the end.
      expect(report).toMatchObject({ start: 500, end: 1500, durationMillis: 1000, totalRequests: 10 })
      expect(report.notRecorded.warmup).toBe(4)
      expect(report.throughput).toBe(10)
      expect(yield* Ref.get(started)).toBe(15)
    }))

  it.effect("cooldown: no new load, nothing recorded, the run lasts until its end; then stragglers are interrupted", () =>
    Effect.gen(function*() {
      const started = yield* Ref.make(0)
      const scenario: LoadTest.Scenario = {
        name: "s",
        weight: 1,
        run: () => Effect.zipRight(Ref.update(started, (n) => n + 1), Effect.sleep("300 millis"))
      }
      const fiber = yield* Effect.fork(
        LoadTest.run([scenario], { duration: "1 second", cooldown: "500 millis", concurrency: 1 })
      )
      yield* TestClock.adjust("1499 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const report = yield* Fiber.join(fiber)
      // Started at 0, 300, 600, 900 ms; the one ending at 1200 ms (in the cooldown) is not recorded.
      expect(report.totalRequests).toBe(3)
      expect(report.notRecorded).toEqual({ warmup: 0, cooldown: 1, interrupted: 0 })
      expect(yield* Ref.get(started)).toBe(4)

      // A short cooldown: the execution still running at its end is interrupted.
      const short = yield* runOnTestClock([scenario], { duration: "1 second", cooldown: "100 millis", concurrency: 1 })
      expect(short.totalRequests).toBe(3)
      expect(short.notRecorded).toEqual({ warmup: 0, cooldown: 0, interrupted: 1 })
    }))

  it.effect("interrupting the run stops every worker and runs the teardowns", () =>
    Effect.gen(function*() {
      const running = yield* Ref.make(0)
      const started = yield* Ref.make(0)
      const log = yield* Ref.make<Array<string>>([])
      const scenario: LoadTest.Scenario = {
        name: "s",
        weight: 1,
        setup: Effect.acquireRelease(
          Ref.update(log, (l) => [...l, "setup"]),
          () => Ref.update(log, (l) => [...l, "released"])
        ),
        teardown: Ref.update(log, (l) => [...l, "teardown"]),
        run: () =>
          Effect.acquireUseRelease(
            Effect.zipRight(Ref.update(started, (n) => n + 1), Ref.update(running, (n) => n + 1)),
            () => Effect.sleep("100 millis"),
            () => Ref.update(running, (n) => n - 1)
          )
      }
      const fiber = yield* Effect.fork(LoadTest.run([scenario], { duration: "10 seconds", concurrency: 3 }))
      yield* TestClock.adjust("250 millis")
      expect(yield* Ref.get(running)).toBe(3)
      yield* Fiber.interrupt(fiber)
      expect(yield* Ref.get(running)).toBe(0)
      const before = yield* Ref.get(started)
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(started)).toBe(before)
      expect(yield* Ref.get(log)).toEqual(["setup", "teardown", "released"])
    }))

  it.effect("a failing setup fails the run with ScenarioSetupError before any load", () =>
    Effect.gen(function*() {
      const ran = yield* Ref.make(0)
      const error = yield* Effect.flip(LoadTest.run(
        [{ name: "s", weight: 1, setup: Effect.fail("no database"), run: () => Ref.update(ran, (n) => n + 1) }],
        { duration: "1 second" }
      ))
      expect(error._tag).toBe("ScenarioSetupError")
      expect(error).toMatchObject({ scenario: "s", category: "permanent" })
      expect(error.message).toContain("no database")
      expect(yield* Ref.get(ran)).toBe(0)
    }))
})

describe("LoadTest: report", () => {
  /** Latencies 10, 20, ..., 100 ms, in turn. */
  const stepped: LoadTest.Scenario = {
    name: "stepped",
    weight: 1,
    run: (ctx) => Effect.sleep(Duration.millis(((ctx.iteration % 10) + 1) * 10))
  }

  it.effect("percentiles are exact for a known distribution (index round(p·(n−1)) of the sorted samples)", () =>
    Effect.gen(function*() {
      // One worker, 551 ms: exactly the ten executions 10..100 ms complete (the 11th is cut off).
      const report = yield* runOnTestClock([stepped], { duration: "551 millis", concurrency: 1 })
      expect(report.latency).toEqual({
        count: 10,
        samples: 10,
        min: 10,
        mean: 55,
        p50: 60,
        p90: 90,
        p95: 100,
        p99: 100,
        max: 100
      })
      expect(report.scenarios.stepped!.latency).toEqual(report.latency)
    }))

  it.effect("percentiles come from a bounded buffer of the last samples; min, mean and max from all", () =>
    Effect.gen(function*() {
      const report = yield* runOnTestClock([stepped], { duration: "551 millis", concurrency: 1, maxSamples: 5 })
      // The last five samples are 60, 70, 80, 90, 100.
      expect(report.latency).toEqual({
        count: 10,
        samples: 5,
        min: 10,
        mean: 55,
        p50: 80,
        p90: 100,
        p95: 100,
        p99: 100,
        max: 100
      })
    }))

  it.effect("percentiles are ordered min ≤ p50 ≤ p90 ≤ p95 ≤ p99 ≤ max for random latencies", () =>
    Effect.gen(function*() {
      const report = yield* runOnTestClock(
        [{
          name: "random",
          weight: 1,
          run: () => Effect.flatMap(Random.nextIntBetween(1, 200), (ms) => Effect.sleep(Duration.millis(ms)))
        }],
        { duration: "3 seconds", concurrency: 4 },
        3
      )
      const { latency } = report
      expect(latency.count).toBeGreaterThan(80)
      const chain = [latency.min, latency.p50, latency.p90, latency.p95, latency.p99, latency.max]
      expect([...chain].sort((a, b) => a - b)).toEqual(chain)
      expect(latency.min).toBeLessThan(latency.p50)
      expect(latency.p50).toBeLessThan(latency.max)
    }))

  it("percentile picks the element at index round(p·(n−1))", () => {
    const sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    expect(LoadTest.percentile(sorted, 0.5)).toBe(6) // round(4.5) = 5
    expect(LoadTest.percentile(sorted, 0.9)).toBe(9)
    expect(LoadTest.percentile(sorted, 0)).toBe(1)
    expect(LoadTest.percentile(sorted, 1)).toBe(10)
    expect(LoadTest.percentile([], 0.5)).toBe(0)
  })

  it.effect("keeps the first 100 errors, in the order they happened", () =>
    Effect.gen(function*() {
      const report = yield* runOnTestClock(
        [{
          name: "bad",
          weight: 1,
          run: (ctx) => Effect.zipRight(Effect.sleep("10 millis"), Effect.fail(`e${ctx.workerId}-${ctx.iteration}`))
        }],
        { duration: "200 millis", concurrency: 10 }
      )
      expect(report.errors).toBe(10 * 19)
      expect(report.firstErrors).toHaveLength(100)
      expect(report.firstErrors[0]).toMatchObject({ scenario: "bad", outcome: "failure", time: 10 })
      const times = report.firstErrors.map((e) => e.time)
      expect([...times].sort((a, b) => a - b)).toEqual(times)
      expect(times.at(-1)).toBe(100) // 10 per 10 ms
    }))
})

describe("LoadTest: progress", () => {
  it.scoped("publishes started, progress every reportInterval, and completed on the EventBus; calls onProgress", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.make()
      const sub = yield* bus.subscribe("foundation.load_test.**")
      const seen: Array<LoadTest.Progress> = []
      const fiber = yield* Effect.fork(
        LoadTest.run([sleeping("s", 1, 100)], {
          duration: "1 second",
          warmup: "300 millis",
          concurrency: 2,
          reportInterval: "230 millis", // never at the same instant as a completion (every 100 ms)
          onProgress: (p) => Effect.sync(() => seen.push(p))
        }).pipe(Effect.provideService(EventBus.EventBus, bus))
      )
      yield* TestClock.adjust("1300 millis")
      const report = yield* Fiber.join(fiber)
      const events = yield* sub.takeAll
      expect(events.map((e) => e.type)).toEqual([
        LoadTest.topics.started,
        ...Array.from({ length: 5 }, () => LoadTest.topics.progress),
        LoadTest.topics.completed
      ])
      const progress = events.slice(1, -1).map((e) => e.data as LoadTest.Progress)
      expect(progress).toEqual(seen)
      expect(progress.map((p) => p.elapsedMillis)).toEqual([230, 460, 690, 920, 1150])
      expect(progress.map((p) => p.phase)).toEqual(["warmup", "measuring", "measuring", "measuring", "measuring"])
      // Recorded so far (from 300 ms on): 2 workers completing every 100 ms.
      expect(progress.map((p) => p.completed)).toEqual([0, 4, 8, 14, 18])
      expect(progress[1]).toMatchObject({ plannedMillis: 1300, activeWorkers: 2, inFlight: 2, errors: 0 })
      // Current throughput: every completion (warmup ones too) over the last interval.
      expect(progress[0]!.throughput).toBeCloseTo(4000 / 230, 10)
      expect(progress[1]!.throughput).toBeCloseTo(4000 / 230, 10)
      expect(events.at(-1)!.data).toEqual(report)
      expect(events[0]!.data).toMatchObject({ testId: report.testId, concurrency: 2, durationMillis: 1000 })
    }))
})

describe("LoadTest: on the live clock", () => {
  // Real time is the point: workers whose executions never suspend must not starve the timers.
  it.live("instant scenarios do not starve progress reports or the end of the run", () =>
    Effect.gen(function*() {
      const progress: Array<number> = []
      const startedAt = yield* Clock.currentTimeMillis
      const report = yield* LoadTest.run(
        [
          { name: "instant", weight: 1, run: () => Effect.void },
          { name: "rejected", weight: 1, run: () => Effect.fail("no") }
        ],
        {
          duration: "300 millis",
          concurrency: 4,
          reportInterval: "50 millis",
          onProgress: (p) => Effect.sync(() => void progress.push(p.elapsedMillis))
        }
      )
      const tookMillis = (yield* Clock.currentTimeMillis) - startedAt
      expect(report.totalRequests).toBeGreaterThan(1000)
      expect(report.errors).toBeGreaterThan(0)
      expect(tookMillis).toBeLessThan(800)
      expect(progress.length).toBeGreaterThanOrEqual(3)
    }), 5_000)
})

describe("LoadTest: validation", () => {
  const scenario = sleeping("s", 1, 10)
  // Plain records: a caller without types can pass anything.
  const cases: ReadonlyArray<readonly [string, Readonly<Record<string, unknown>>, string]> = [
    ["missing duration", { duration: undefined }, "duration"],
    ["zero duration", { duration: 0 }, "duration"],
    ["negative duration", { duration: -5 }, "duration"],
    ["NaN duration", { duration: Number.NaN }, "duration"],
    ["zero concurrency", { concurrency: 0 }, "concurrency"],
    ["negative concurrency", { concurrency: -2 }, "concurrency"],
    ["fractional concurrency", { concurrency: 1.5 }, "concurrency"],
    ["NaN concurrency", { concurrency: Number.NaN }, "concurrency"],
    ["negative rampUp", { rampUp: -1 }, "rampUp"],
    ["NaN warmup", { warmup: Number.NaN }, "warmup"],
    ["negative cooldown", { cooldown: -1 }, "cooldown"],
    ["zero scenarioTimeout", { scenarioTimeout: 0 }, "scenarioTimeout"],
    ["zero reportInterval", { reportInterval: 0 }, "reportInterval"],
    ["negative thinkTime", { thinkTime: -1 }, "thinkTime"],
    ["zero maxSamples", { maxSamples: 0 }, "maxSamples"],
    ["negative maxErrors", { maxErrors: -1 }, "maxErrors"],
    ["empty name", { name: "" }, "name"]
  ]
  for (const [label, bad, field] of cases) {
    it.effect(`rejects ${label} naming "${field}"`, () =>
      Effect.gen(function*() {
        const options = { duration: "1 second", ...bad } as unknown as LoadTest.Options
        const error = yield* Effect.flip(LoadTest.run([scenario], options))
        expect(error).toMatchObject({ _tag: "ValidationError", field })
      }))
  }

  const scenarioCases: ReadonlyArray<readonly [string, ReadonlyArray<LoadTest.Scenario>, string]> = [
    ["no scenarios", [], "scenarios"],
    ["a negative weight", [{ ...scenario, weight: -1 }], "scenarios[0].weight"],
    ["a fractional weight", [{ ...scenario, weight: 0.5 }], "scenarios[0].weight"],
    ["a NaN weight", [{ ...scenario, weight: Number.NaN }], "scenarios[0].weight"],
    ["all weights zero", [{ ...scenario, weight: 0 }, { ...scenario, name: "t", weight: 0 }], "scenarios"],
    ["a duplicate name", [scenario, scenario], "scenarios[1].name"],
    ["an empty name", [{ ...scenario, name: "" }], "scenarios[0].name"]
  ]
  for (const [label, scenarios, field] of scenarioCases) {
    it.effect(`rejects ${label} naming "${field}"`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(LoadTest.run(scenarios, { duration: "1 second" }))
        expect(error).toMatchObject({ _tag: "ValidationError", field })
      }))
  }
})

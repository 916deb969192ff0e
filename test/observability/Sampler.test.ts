import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Metric, MetricState, Option, Random, TestClock } from "effect"
import { ValidationError } from "../../src/errors/FoundationError.js"
import * as Sampler from "../../src/observability/Sampler.js"

/** `n` decisions for `event`, in order. */
const decide = (sampler: Sampler.SamplerService, event: string, n: number) =>
  Effect.forEach(Array.from({ length: n }), () => sampler.shouldSample(event))

const countTrue = (decisions: ReadonlyArray<boolean>) => decisions.filter((d) => d).length

/** A fresh sampler making `n` decisions for `event` under a Random seeded with `seed`. */
const runSeeded = (seed: number, options: Sampler.Options, event: string, n: number) =>
  Effect.gen(function*() {
    const sampler = yield* Sampler.make(options)
    return yield* decide(sampler, event, n)
  }).pipe(Effect.withRandom(Random.make(seed)))

/** The ValidationError of making a sampler with these options. */
const invalid = (options: Sampler.Options) => Effect.flip(Sampler.make(options))

/** The count of the counter `name` tagged `sampler: sampler`. */
const counterValue = (name: string, sampler: string) =>
  Effect.map(Metric.snapshot, (pairs) => {
    const pair = pairs.find((p) =>
      p.metricKey.name === name && p.metricKey.tags.some((t) => t.key === "sampler" && t.value === sampler)
    )
    return pair !== undefined && MetricState.isCounterState(pair.metricState) ? pair.metricState.count : undefined
  })

const statsOf = (sampler: Sampler.SamplerService, event: string) =>
  Effect.map(sampler.eventStats(event), Option.getOrThrow)

describe("Sampler", () => {
  describe("strategies", () => {
    it.effect("the default strategy is always: every event is emitted", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make()
        expect(countTrue(yield* decide(sampler, "anything", 50))).toBe(50)
        expect(yield* sampler.strategyOf("anything")).toEqual({ strategy: "always" })
      }))

    it.effect("always emits everything, never emits nothing", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({
          events: { on: { strategy: "always" }, off: { strategy: "never" } }
        })
        expect(countTrue(yield* decide(sampler, "on", 100))).toBe(100)
        expect(countTrue(yield* decide(sampler, "off", 100))).toBe(0)
      }))

    it.effect("random 0.5 emits between 400 and 600 of 1000, the same ones for the same seed", () =>
      Effect.gen(function*() {
        const options: Sampler.Options = { defaultStrategy: { strategy: "random", rate: 0.5 } }
        const first = yield* runSeeded(42, options, "e", 1000)
        const again = yield* runSeeded(42, options, "e", 1000)
        const other = yield* runSeeded(7, options, "e", 1000)
        expect(countTrue(first)).toBeGreaterThan(400)
        expect(countTrue(first)).toBeLessThan(600)
        expect(again).toEqual(first)
        expect(other).not.toEqual(first)
      }))

    it.effect("random follows its rate: 0.1 emits about a tenth, 0 nothing, 1 everything", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({
          events: {
            tenth: { strategy: "random", rate: 0.1 },
            zero: { strategy: "random", rate: 0 },
            one: { strategy: "random", rate: 1 }
          }
        })
        const tenth = countTrue(yield* decide(sampler, "tenth", 2000))
        expect(tenth).toBeGreaterThan(140)
        expect(tenth).toBeLessThan(260)
        expect(countTrue(yield* decide(sampler, "zero", 200))).toBe(0)
        expect(countTrue(yield* decide(sampler, "one", 200))).toBe(200)
      }).pipe(Effect.withRandom(Random.make(1))))

    it.effect("rate-limited emits exactly maxPerSecond per 1-second window, and again in the next window", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({ events: { hot: { strategy: "rate-limited", maxPerSecond: 10 } } })
        const first = yield* decide(sampler, "hot", 20)
        expect(first).toEqual([...Array(10).fill(true), ...Array(10).fill(false)])
        yield* TestClock.adjust("999 millis")
        expect(countTrue(yield* decide(sampler, "hot", 5))).toBe(0)
        yield* TestClock.adjust("1 millis")
        expect(countTrue(yield* decide(sampler, "hot", 20))).toBe(10)
        yield* TestClock.adjust("5 seconds")
        expect(countTrue(yield* decide(sampler, "hot", 20))).toBe(10)
        expect(yield* statsOf(sampler, "hot")).toMatchObject({ sampled: 30, total: 65 })
      }))

    it.effect("rate-limited windows are aligned on whole seconds of Clock time", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({ events: { hot: { strategy: "rate-limited", maxPerSecond: 3 } } })
        yield* TestClock.adjust("700 millis")
        expect(countTrue(yield* decide(sampler, "hot", 5))).toBe(3)
        // 300 ms later a new second has begun: a fresh window although less than 1 s has passed
        yield* TestClock.adjust("300 millis")
        expect(countTrue(yield* decide(sampler, "hot", 5))).toBe(3)
      }))

    it.effect("rate-limited decisions made concurrently never exceed the limit", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({ events: { hot: { strategy: "rate-limited", maxPerSecond: 25 } } })
        const decisions = yield* Effect.forEach(Array.from({ length: 500 }), () => sampler.shouldSample("hot"), {
          concurrency: "unbounded"
        })
        expect(countTrue(decisions)).toBe(25)
        expect(yield* statsOf(sampler, "hot")).toMatchObject({ sampled: 25, total: 500 })
      }))

    it.effect("rate-limited with maxPerSecond 0 emits nothing", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({ defaultStrategy: { strategy: "rate-limited", maxPerSecond: 0 } })
        expect(countTrue(yield* decide(sampler, "e", 10))).toBe(0)
      }))
  })

  describe("adaptive", () => {
    const adaptive: Sampler.AdaptiveOptions = {
      strategy: "adaptive",
      targetRate: 10,
      adjustmentInterval: "1 second",
      increaseFactor: 2,
      decreaseFactor: 0.5,
      minRate: 0.05
    }

    /** `perSecond` decisions, then one second of TestClock time; returns the emitted count. */
    const oneSecond = (sampler: Sampler.SamplerService, perSecond: number) =>
      Effect.gen(function*() {
        const emitted = countTrue(yield* decide(sampler, "a", perSecond))
        yield* TestClock.adjust("1 second")
        return emitted
      })

    const currentRate = (sampler: Sampler.SamplerService) =>
      Effect.map(statsOf(sampler, "a"), (s) => s.currentRate)

    it.effect("keeps its rate within an interval and adjusts only when the interval has ended", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({ events: { a: adaptive } })
        // 100/s ≫ target 10/s, but the first interval runs at the initial rate
        expect(yield* oneSecond(sampler, 100)).toBe(100)
        expect(yield* currentRate(sampler)).toBe(1)
        yield* sampler.shouldSample("a")
        expect(yield* currentRate(sampler)).toBe(0.5)
      }).pipe(Effect.withRandom(Random.make(3))))

    it.effect("lowers its rate while over target and raises it again when under, never reaching 0", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({ events: { a: adaptive } })
        const rates: Array<number | undefined> = []
        // 200 events/s for 8 s: far above the target of 10 emitted/s
        for (let s = 0; s < 8; s++) {
          yield* oneSecond(sampler, 200)
          rates.push(yield* currentRate(sampler))
        }
        const lowest = Math.min(...rates.map((r) => r ?? 1))
        expect(lowest).toBeLessThanOrEqual(0.1)
        expect(lowest).toBeGreaterThanOrEqual(0.05)
        // its emitted rate came close to the target: the last 4 s emitted 4 × (5..40)
        const emitted: Array<number> = []
        for (let s = 0; s < 4; s++) emitted.push(yield* oneSecond(sampler, 200))
        const mean = emitted.reduce((a, b) => a + b, 0) / emitted.length
        expect(mean).toBeGreaterThan(4)
        expect(mean).toBeLessThan(40)
        // 2 events/s: under target, so the rate climbs back to 1
        for (let s = 0; s < 8; s++) yield* oneSecond(sampler, 2)
        expect(yield* currentRate(sampler)).toBe(1)
        expect(yield* oneSecond(sampler, 2)).toBe(2)
      }).pipe(Effect.withRandom(Random.make(11))))

    it.effect("a harsh decrease stops at minRate and the rate recovers from there", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({
          events: { a: { ...adaptive, decreaseFactor: 0.000001, increaseFactor: 1.5, minRate: 0.01 } }
        })
        yield* oneSecond(sampler, 1000)
        yield* oneSecond(sampler, 1000)
        expect(yield* currentRate(sampler)).toBe(0.01)
        // no traffic for a while, then light traffic: the rate grows again (0 × f would stay 0)
        yield* TestClock.adjust("10 seconds")
        yield* sampler.shouldSample("a")
        expect(yield* currentRate(sampler)).toBeCloseTo(0.015, 10)
        for (let s = 0; s < 20; s++) yield* oneSecond(sampler, 1)
        expect(yield* currentRate(sampler)).toBe(1)
      }).pipe(Effect.withRandom(Random.make(5))))

    it.effect("is reproducible for a seed", () =>
      Effect.gen(function*() {
        const run = Effect.gen(function*() {
          const sampler = yield* Sampler.make({ events: { a: adaptive } })
          const perSecond: Array<number> = []
          for (let s = 0; s < 5; s++) perSecond.push(yield* oneSecond(sampler, 100))
          return perSecond
        })
        // the TestClock keeps going between runs; the decisions do not depend on the absolute time
        const first = yield* Effect.withRandom(run, Random.make(9))
        const second = yield* Effect.withRandom(run, Random.make(9))
        expect(second).toEqual(first)
      }))
  })

  describe("reservoir", () => {
    it.effect("emits and keeps the first size events, then keeps a uniform sample of all events (Algorithm R)", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({ events: { r: { strategy: "reservoir", size: 100 } } })
        const sampledSequences = new Set<number>()
        for (let n = 1; n <= 100; n++) {
          expect(yield* sampler.shouldSample("r", { n })).toBe(true)
          sampledSequences.add(n)
        }
        const full = yield* sampler.reservoir("r")
        expect(full.map((i) => i.sequence)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1))
        expect(full[41]?.metadata).toEqual({ n: 42 })

        let later = 0
        for (let n = 101; n <= 1100; n++) {
          if (yield* sampler.shouldSample("r", { n })) {
            later++
            sampledSequences.add(n)
          }
        }
        // the n-th event enters with probability 100/n: Σ 100/n for n = 101..1100 ≈ 240
        expect(later).toBeGreaterThan(180)
        expect(later).toBeLessThan(300)

        const items = yield* sampler.reservoir("r")
        expect(items).toHaveLength(100)
        const sequences = items.map((i) => i.sequence)
        expect(new Set(sequences).size).toBe(100)
        // every item held was emitted, with its own metadata
        for (const item of items) {
          expect(sampledSequences.has(item.sequence)).toBe(true)
          expect(item.metadata).toEqual({ n: item.sequence })
        }
        // uniform over 1..1100: about 100 × 100/1100 ≈ 9 of the first 100 remain (a filter that
        // keeps its first items would still hold all 100 of them)
        const early = sequences.filter((s) => s <= 100).length
        expect(early).toBeLessThan(25)
        const mean = sequences.reduce((a, b) => a + b, 0) / sequences.length
        expect(mean).toBeGreaterThan(450)
        expect(mean).toBeLessThan(650)
        expect(yield* statsOf(sampler, "r")).toMatchObject({ total: 1100, sampled: 100 + later })
      }).pipe(Effect.withRandom(Random.make(2024))))

    it.effect("records the Clock time of each kept item and holds nothing for other strategies", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({ events: { r: { strategy: "reservoir", size: 2 } } })
        yield* sampler.shouldSample("r")
        yield* TestClock.adjust("5 seconds")
        yield* sampler.shouldSample("r", { k: 1 })
        expect(yield* sampler.reservoir("r")).toEqual([
          { sequence: 1, at: 0, metadata: undefined },
          { sequence: 2, at: 5000, metadata: { k: 1 } }
        ])
        yield* sampler.shouldSample("x")
        expect(yield* sampler.reservoir("x")).toEqual([])
      }))
  })

  describe("configuration", () => {
    it.effect("a per-event configuration overrides the default strategy", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({
          defaultStrategy: { strategy: "never" },
          events: { important: { strategy: "always" } }
        })
        expect(countTrue(yield* decide(sampler, "important", 10))).toBe(10)
        expect(countTrue(yield* decide(sampler, "noise", 10))).toBe(0)
        yield* sampler.configure("noise", { strategy: "rate-limited", maxPerSecond: 3 })
        expect(countTrue(yield* decide(sampler, "noise", 10))).toBe(3)
        expect(countTrue(yield* decide(sampler, "other", 10))).toBe(0)
        expect(yield* sampler.strategyOf("noise")).toEqual({ strategy: "rate-limited", maxPerSecond: 3 })
      }))

    it.effect("configure starts the event afresh and rejects bad options without changing anything", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({ events: { e: { strategy: "rate-limited", maxPerSecond: 2 } } })
        yield* decide(sampler, "e", 5)
        expect(yield* statsOf(sampler, "e")).toMatchObject({ sampled: 2, total: 5 })
        const error = yield* Effect.flip(sampler.configure("e", { strategy: "random", rate: 2 }))
        expect(error).toBeInstanceOf(ValidationError)
        expect(error.field).toBe("rate")
        expect(yield* statsOf(sampler, "e")).toMatchObject({ sampled: 2, total: 5, strategy: "rate-limited" })
        yield* sampler.configure("e", { strategy: "never" })
        expect(yield* sampler.eventStats("e")).toEqual(Option.none())
        expect(countTrue(yield* decide(sampler, "e", 3))).toBe(0)
        expect(yield* statsOf(sampler, "e")).toMatchObject({ sampled: 0, total: 3, strategy: "never" })
        const empty = yield* Effect.flip(sampler.configure("", { strategy: "always" }))
        expect(empty.field).toBe("event")
      }))

    it.effect("a disabled sampler emits everything and counts nothing", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({ enabled: false, defaultStrategy: { strategy: "never" } })
        expect(countTrue(yield* decide(sampler, "e", 20))).toBe(20)
        const stats = yield* sampler.stats
        expect(stats).toMatchObject({ enabled: false, sampled: 0, total: 0, events: {} })
      }))

    it.effect("unconfigured events beyond maxEvents share the other-event bucket", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({
          maxEvents: 2,
          defaultStrategy: { strategy: "rate-limited", maxPerSecond: 1 },
          events: { configured: { strategy: "always" } }
        })
        for (const event of ["a", "b", "configured", "c", "d", "c"]) yield* sampler.shouldSample(event)
        const stats = yield* sampler.stats
        expect(Object.keys(stats.events).sort()).toEqual([Sampler.otherEvent, "a", "b", "configured"].sort())
        // c, d and c again: one stream with one window, so only the first is emitted
        expect(stats.events[Sampler.otherEvent]).toMatchObject({ total: 3, sampled: 1 })
        expect(stats.events["a"]).toMatchObject({ total: 1, sampled: 1 })
        // a configured event always gets its own state
        yield* sampler.configure("late", { strategy: "never" })
        yield* sampler.shouldSample("late")
        expect(yield* statsOf(sampler, "late")).toMatchObject({ total: 1, sampled: 0, strategy: "never" })
      }))
  })

  describe("stats and reset", () => {
    it.effect("counts sampled and total per event, with the rate and the strategy", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({ name: "stats", defaultStrategy: { strategy: "random", rate: 0.5 } })
        yield* TestClock.adjust("3 seconds")
        const decisions = yield* decide(sampler, "e", 100)
        yield* decide(sampler, "f", 10)
        const stats = yield* sampler.stats
        const e = stats.events["e"]
        expect(e?.total).toBe(100)
        expect(e?.sampled).toBe(countTrue(decisions))
        expect(e?.sampled).toBeGreaterThan(30)
        expect(e?.sampled).toBeLessThan(70)
        expect(e?.rate).toBe(countTrue(decisions) / 100)
        expect(e?.strategy).toBe("random")
        expect(stats).toMatchObject({ name: "stats", enabled: true, total: 110, uptimeMillis: 3000 })
        expect(stats.sampled).toBe(e!.sampled + stats.events["f"]!.sampled)
      }).pipe(Effect.withRandom(Random.make(99))))

    it.effect("reset clears counters, windows and reservoirs, restarts the uptime and keeps the configuration", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({
          events: {
            limited: { strategy: "rate-limited", maxPerSecond: 2 },
            r: { strategy: "reservoir", size: 3 }
          }
        })
        yield* decide(sampler, "limited", 5)
        yield* decide(sampler, "r", 5)
        yield* decide(sampler, "plain", 50)
        yield* TestClock.adjust("400 millis")
        expect(Object.keys((yield* sampler.stats).events)).toHaveLength(3)
        yield* sampler.reset
        const stats = yield* sampler.stats
        expect(stats).toMatchObject({ events: {}, sampled: 0, total: 0, uptimeMillis: 0 })
        expect(yield* sampler.reservoir("r")).toEqual([])
        // same second, but the window was cleared; the configuration is kept
        expect(countTrue(yield* decide(sampler, "limited", 5))).toBe(2)
        expect(yield* sampler.strategyOf("r")).toEqual({ strategy: "reservoir", size: 3 })
      }).pipe(Effect.withRandom(Random.make(4))))

    it.effect("updates the sampled and dropped counters of the sampler", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({
          name: "metrics-test",
          events: { limited: { strategy: "rate-limited", maxPerSecond: 4 } }
        })
        yield* decide(sampler, "limited", 10)
        expect(yield* counterValue("foundation_sampler_sampled_total", "metrics-test")).toBe(4)
        expect(yield* counterValue("foundation_sampler_dropped_total", "metrics-test")).toBe(6)
      }))
  })

  describe("service", () => {
    it.effect("the layer provides the sampler; the accessors use it", () =>
      Effect.gen(function*() {
        expect(yield* Sampler.shouldSample("dropped")).toBe(false)
        const ran = yield* Sampler.whenSampled(Effect.succeed("ran"), "dropped")
        expect(ran).toEqual(Option.none())
        const kept = yield* Effect.succeed("ran").pipe(Sampler.whenSampled("kept"))
        expect(kept).toEqual(Option.some("ran"))
        const sampler = yield* Sampler.Sampler
        expect(yield* statsOf(sampler, "dropped")).toMatchObject({ total: 2, sampled: 0 })
      }).pipe(
        Effect.provide(Sampler.layer({ defaultStrategy: { strategy: "never" }, events: { kept: { strategy: "always" } } }))
      ))

    it.effect("without a sampler the accessors fail open", () =>
      Effect.gen(function*() {
        expect(yield* Sampler.shouldSample("anything")).toBe(true)
        expect(yield* Sampler.whenSampled(Effect.succeed(1), "anything")).toEqual(Option.some(1))
      }))

    it.effect("a layer with bad options fails to build with ValidationError", () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(
          Effect.provide(Sampler.Sampler, Sampler.layer({ defaultStrategy: { strategy: "random", rate: -1 } }))
        )
        expect(Exit.isFailure(exit)).toBe(true)
        const error = yield* Effect.flip(
          Effect.provide(Sampler.Sampler, Sampler.layer({ defaultStrategy: { strategy: "random", rate: -1 } }))
        )
        expect(error).toBeInstanceOf(ValidationError)
        expect(error.field).toBe("defaultStrategy.rate")
      }))
  })

  describe("validation", () => {
    const cases: ReadonlyArray<readonly [string, Sampler.StrategyOptions, string]> = [
      ["rate above 1", { strategy: "random", rate: 1.5 }, "rate"],
      ["negative rate", { strategy: "random", rate: -0.1 }, "rate"],
      ["NaN rate", { strategy: "random", rate: NaN }, "rate"],
      ["negative maxPerSecond", { strategy: "rate-limited", maxPerSecond: -1 }, "maxPerSecond"],
      ["NaN maxPerSecond", { strategy: "rate-limited", maxPerSecond: NaN }, "maxPerSecond"],
      ["infinite maxPerSecond", { strategy: "rate-limited", maxPerSecond: Infinity }, "maxPerSecond"],
      ["reservoir size 0", { strategy: "reservoir", size: 0 }, "size"],
      ["fractional reservoir size", { strategy: "reservoir", size: 2.5 }, "size"],
      ["increaseFactor below 1", { strategy: "adaptive", increaseFactor: 0.9 }, "increaseFactor"],
      ["increaseFactor 0", { strategy: "adaptive", increaseFactor: 0 }, "increaseFactor"],
      ["decreaseFactor above 1", { strategy: "adaptive", decreaseFactor: 1.1 }, "decreaseFactor"],
      ["decreaseFactor 0", { strategy: "adaptive", decreaseFactor: 0 }, "decreaseFactor"],
      ["negative decreaseFactor", { strategy: "adaptive", decreaseFactor: -0.5 }, "decreaseFactor"],
      ["targetRate 0", { strategy: "adaptive", targetRate: 0 }, "targetRate"],
      ["NaN targetRate", { strategy: "adaptive", targetRate: NaN }, "targetRate"],
      ["minRate 0", { strategy: "adaptive", minRate: 0 }, "minRate"],
      ["initialRate below minRate", { strategy: "adaptive", minRate: 0.2, initialRate: 0.1 }, "initialRate"],
      ["zero adjustmentInterval", { strategy: "adaptive", adjustmentInterval: 0 }, "adjustmentInterval"],
      ["negative adjustmentInterval", { strategy: "adaptive", adjustmentInterval: -5 }, "adjustmentInterval"],
      ["NaN adjustmentInterval", { strategy: "adaptive", adjustmentInterval: NaN }, "adjustmentInterval"],
      ["infinite adjustmentInterval", { strategy: "adaptive", adjustmentInterval: Infinity }, "adjustmentInterval"]
    ]
    for (const [label, strategy, field] of cases) {
      it.effect(`rejects ${label}, naming the field`, () =>
        Effect.gen(function*() {
          const asDefault = yield* invalid({ defaultStrategy: strategy })
          expect(asDefault).toBeInstanceOf(ValidationError)
          expect(asDefault.field).toBe(`defaultStrategy.${field}`)
          const asEvent = yield* invalid({ events: { "db.query": strategy } })
          expect(asEvent.field).toBe(`events["db.query"].${field}`)
          const sampler = yield* Sampler.make()
          expect((yield* Effect.flip(sampler.configure("e", strategy))).field).toBe(field)
        }))
    }

    it.effect("rejects unknown strategies, bad maxEvents, names and enabled flags", () =>
      Effect.gen(function*() {
        const unknown = { strategy: "sometimes" } as unknown as Sampler.StrategyOptions
        expect((yield* invalid({ defaultStrategy: unknown })).field).toBe("defaultStrategy.strategy")
        expect((yield* invalid({ maxEvents: 0 })).field).toBe("maxEvents")
        expect((yield* invalid({ maxEvents: 1.5 })).field).toBe("maxEvents")
        expect((yield* invalid({ name: "" })).field).toBe("name")
        expect((yield* invalid({ enabled: "yes" as unknown as boolean })).field).toBe("enabled")
        expect((yield* invalid({ events: { "": { strategy: "always" } } })).field).toBe(`events[""]`)
      }))

    it.effect("accepts the boundaries: rate 0 and 1, maxPerSecond 0, size 1, factors of 1", () =>
      Effect.gen(function*() {
        const sampler = yield* Sampler.make({
          events: {
            a: { strategy: "random", rate: 0 },
            b: { strategy: "random", rate: 1 },
            c: { strategy: "rate-limited", maxPerSecond: 0 },
            d: { strategy: "reservoir", size: 1 },
            e: { strategy: "adaptive", increaseFactor: 1, decreaseFactor: 1, minRate: 1, initialRate: 1 }
          }
        })
        expect(sampler.config.events.size).toBe(5)
        expect(sampler.config.events.get("e")).toMatchObject({ targetRate: 1000, increaseFactor: 1 })
      }))
  })
})

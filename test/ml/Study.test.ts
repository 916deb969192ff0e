import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Either, Exit, Fiber, Layer, Option, Ref, TestClock } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type * as Repository from "../../src/data/Repository.js"
import * as SqlStore from "../../src/data/SqlStore.js"
import * as Example from "../../examples/study.js"
import { NotFoundError, ValidationError } from "../../src/errors/FoundationError.js"
import { branin, braninMinimum, learningCurve, mixedObjective } from "../../src/ml/problems.js"
import * as TaskPools from "../../src/infra/TaskPools.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as Telemetry from "../../src/observability/Telemetry.js"
import { drainTelemetry } from "../support/telemetry.js"
import * as Study from "../../src/ml/Study.js"
import * as Pruners from "../../src/ml/study/Pruners.js"
import * as Samplers from "../../src/ml/study/Samplers.js"
import * as Space from "../../src/ml/study/Space.js"
import type { TrialRecord } from "../../src/ml/study/Trial.js"

const fieldOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.flip(effect), (e) => {
    expect(e).toBeInstanceOf(ValidationError)
    return (e as ValidationError).field
  })

const mixedSpace = {
  lr: Study.float(1e-4, 1e-1, { log: true }),
  batchSize: Study.categorical([16, 32, 64, 128]),
  layers: Study.int(1, 4)
}

const braninSpace = { x: Study.float(-5, 10), y: Study.float(0, 15) }

const braninBest = (sampler: Study.Sampler, seed: number) =>
  Effect.gen(function*() {
    const study = yield* Study.make({ space: braninSpace, sampler, seed })
    const summary = yield* study.optimize((t) => Effect.succeed(branin(t.params.x, t.params.y)), { trials: 100 })
    return summary.best!.value!
  })

const medianOf = (xs: ReadonlyArray<number>) => Pruners.medianOf(xs)

describe("Space", () => {
  it.effect("rejects invalid spaces, naming the parameter", () =>
    Effect.gen(function*() {
      const bad = (space: Study.Space) => fieldOf(Study.make({ space }))
      expect(yield* bad({})).toBe("space")
      expect(yield* bad({ lr: Study.float(1, 1) })).toBe("space.lr")
      expect(yield* bad({ lr: Study.float(0, 1, { log: true }) })).toBe("space.lr.low")
      expect(yield* bad({ n: Study.int(1, 10, { step: 4 }) })).toBe("space.n.step")
      expect(yield* bad({ n: Study.int(1.5, 10) })).toBe("space.n.low")
      expect(yield* bad({ c: Study.categorical([]) })).toBe("space.c.choices")
      expect(yield* bad({ c: Study.categorical(["a", "a"]) })).toBe("space.c.choices")
      expect(yield* bad({ x: Study.float(0, Number.NaN) })).toBe("space.x.high")
    }))

  it("snaps internal values into the domain", () => {
    const stepped = Study.float(0, 1, { step: 0.1 })
    expect(Space.fromInternal(stepped, 0.33)).toBe(0.3)
    expect(Space.fromInternal(stepped, 7)).toBe(1)
    const logInt = Study.int(1, 1000, { log: true })
    expect(Space.fromInternal(logInt, Math.log(99.6))).toBe(100)
    expect(Space.gridValues(Study.int(2, 10, { step: 4 }))).toEqual([2, 6, 10])
    expect(Space.gridValues(Study.float(0, 1))).toBeUndefined()
  })
})

describe("samplers", () => {
  it.effect("random search samples every parameter in its domain, log-uniform on log scales", () =>
    Effect.gen(function*() {
      const study = yield* Study.make({ space: mixedSpace, sampler: Study.random(), seed: 7 })
      yield* study.optimize((t) => Effect.succeed(mixedObjective(t.params.lr, t.params.batchSize, t.params.layers)), {
        trials: 2000,
        concurrency: 8
      })
      const trials = yield* study.trials
      const logs = trials.map((t) => Math.log10(t.params["lr"] as number))
      expect(Math.min(...logs)).toBeGreaterThanOrEqual(-4)
      expect(Math.max(...logs)).toBeLessThanOrEqual(-1)
      // log10(lr) is uniform on [−4, −1]: mean −2.5, and each third of the range holds a third.
      expect(logs.reduce((a, b) => a + b, 0) / logs.length).toBeCloseTo(-2.5, 1)
      expect(logs.filter((l) => l < -3).length / logs.length).toBeCloseTo(1 / 3, 1)
      const layers = new Set(trials.map((t) => t.params["layers"]))
      expect([...layers].sort()).toEqual([1, 2, 3, 4])
      expect(new Set(trials.map((t) => t.params["batchSize"])).size).toBe(4)
    }))

  it.effect("grid search runs the cartesian product in order, then stops", () =>
    Effect.gen(function*() {
      const study = yield* Study.make({
        space: { lr: Study.float(1e-4, 1, { log: true }), bs: Study.categorical([16, 32]) },
        sampler: Study.grid({ values: { lr: [0.001, 0.01, 0.1] } }),
        direction: "maximize"
      })
      const summary = yield* study.optimize(
        (t) => Effect.succeed(-((Math.log10(t.params.lr) + 2) ** 2) - (t.params.bs - 32) ** 2 / 256),
        { trials: 100, concurrency: 3 }
      )
      const trials = yield* study.trials
      expect(trials.map((t) => [t.params["lr"], t.params["bs"]])).toEqual([
        [0.001, 16],
        [0.001, 32],
        [0.01, 16],
        [0.01, 32],
        [0.1, 16],
        [0.1, 32]
      ])
      expect(summary.trials).toBe(6)
      expect(summary.best!.params).toEqual({ lr: 0.01, bs: 32 })
      const exhausted = yield* Effect.flip(study.ask)
      expect(exhausted._tag).toBe("SearchExhaustedError")
    }))

  it.effect("grid over the mixed space: 3 × 4 × 4 = 48 trials, optimum found exactly", () =>
    Effect.gen(function*() {
      const study = yield* Study.make({
        space: mixedSpace,
        sampler: Study.grid({ values: { lr: [1e-3, 1e-2, 1e-1] } }),
        direction: "maximize"
      })
      const summary = yield* study.optimize(
        (t) => Effect.succeed(mixedObjective(t.params.lr, t.params.batchSize, t.params.layers)),
        { trials: 1000 }
      )
      expect(summary.trials).toBe(48)
      expect(summary.best!.params).toEqual({ lr: 0.01, batchSize: 64, layers: 2 })
      expect(summary.best!.value).toBeCloseTo(0, 12)
    }))

  it.effect("a grid needs values for plain floats", () =>
    Effect.gen(function*() {
      expect(yield* fieldOf(Study.make({ space: braninSpace, sampler: Study.grid() }))).toBe("sampler.values.x")
      expect(yield* fieldOf(Study.make({ space: braninSpace, sampler: Study.grid({ values: { x: [0], y: [99] } }) })))
        .toBe("sampler.values.y")
    }))

  it.effect("TPE beats random search on Branin: median best of 20 seeds at 100 trials < random's and < 0.45", () =>
    Effect.gen(function*() {
      const seeds = Array.from({ length: 20 }, (_, i) => i + 1)
      const tpe = yield* Effect.forEach(seeds, (seed) => braninBest(Study.tpe(), seed))
      const random = yield* Effect.forEach(seeds, (seed) => braninBest(Study.random(), seed))
      const tpeMedian = medianOf(tpe)
      const randomMedian = medianOf(random)
      expect(tpeMedian).toBeLessThan(randomMedian)
      expect(tpeMedian).toBeLessThan(0.45)
      expect(Math.min(...tpe)).toBeGreaterThanOrEqual(braninMinimum - 1e-9)
    }), 60_000)

  it("TPE follows Optuna's defaults: 10 random start-up trials, γ = min(⌈0.1·n⌉, 25), weights ramp after 25", () => {
    expect([1, 10, 11, 100, 250, 1000].map(Samplers.defaultGamma)).toEqual([1, 1, 2, 10, 25, 25])
    expect([...Samplers.observationWeights(3)]).toEqual([1, 1, 1])
    const w = Samplers.observationWeights(30)
    expect(w[0]).toBeCloseTo(1 / 30, 12)
    expect(w[4]).toBeCloseTo(1, 12)
    expect([...w.slice(5)]).toEqual(new Array(25).fill(1))
    const space = { x: Study.float(0, 1) }
    const bound = Either.getOrThrow(Samplers.tpe().bind(space))
    const random = Either.getOrThrow(Samplers.random().bind(space))
    // Before 10 complete trials TPE samples exactly as random search does.
    const history: Array<TrialRecord> = []
    for (let n = 0; n < 10; n++) {
      const ctx = { seed: 3, number: n, direction: "minimize" as const, history }
      expect(bound.sample(ctx)).toEqual(random.sample(ctx))
      history.push(record(n, { x: (bound.sample(ctx)!)["x"]! }, "complete", n))
    }
    // With a history that is good near 0.2, TPE's next samples concentrate there.
    const shaped: Array<TrialRecord> = Array.from({ length: 40 }, (_, n) => {
      const x = (n * 0.37) % 1
      return record(n, { x }, "complete", Math.abs(x - 0.2))
    })
    const draws = Array.from({ length: 50 }, (_, k) =>
      bound.sample({ seed: 3, number: 40 + k, direction: "minimize", history: shaped })!["x"] as number)
    expect(medianOf(draws.map((x) => Math.abs(x - 0.2)))).toBeLessThan(0.08)
  })

  it("the Parzen estimator is a normalised density on its interval", () => {
    const mix = Samplers.parzen([0.1, 0.5, 0.55, 0.9], 0, 1)
    expect([...mix.weights].reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12)
    let integral = 0
    const n = 20_000
    for (let i = 0; i < n; i++) integral += Math.exp(Samplers.logDensity(mix, (i + 0.5) / n)) / n
    expect(integral).toBeCloseTo(1, 3)
    expect(Samplers.erf(0.5)).toBeCloseTo(0.5204998778, 6)
  })
})

const record = (
  number: number,
  params: Space.AnyParams,
  state: TrialRecord["state"],
  value: number | undefined,
  intermediate: TrialRecord["intermediate"] = []
): TrialRecord => ({
  number,
  params,
  state,
  value,
  intermediate,
  error: undefined,
  attempts: 1,
  startedAt: 0,
  endedAt: 0
})

describe("pruners", () => {
  it("median: prunes a trial whose best so far is worse than the median at that step, after the start-up trials", () => {
    const prune = Either.getOrThrow(Study.median({ startupTrials: 2 }).bind())
    const done = [
      record(0, {}, "complete", 0.5, [{ step: 1, value: 0.9 }, { step: 2, value: 0.5 }]),
      record(1, {}, "complete", 0.3, [{ step: 1, value: 0.7 }, { step: 2, value: 0.3 }])
    ]
    const running = (values: ReadonlyArray<number>) =>
      record(2, {}, "running", undefined, values.map((value, i) => ({ step: i + 1, value })))
    const decide = (trial: TrialRecord, trials: ReadonlyArray<TrialRecord>) =>
      prune({ trial, trials: [...trials, trial], direction: "minimize" })
    expect(decide(running([0.85]), done)).toBe(true) // median at step 1 is 0.8
    expect(decide(running([0.75]), done)).toBe(false)
    expect(decide(running([0.75, 0.41]), done)).toBe(true) // median at step 2 is 0.4; best so far 0.41
    expect(decide(running([0.85]), done.slice(0, 1))).toBe(false) // one complete trial < 2 start-up trials
    // Maximising flips the comparison.
    expect(prune({ trial: running([0.85]), trials: done, direction: "maximize" })).toBe(false)
    expect(prune({ trial: running([0.75]), trials: done, direction: "maximize" })).toBe(true)
  })

  it.effect("ASHA keeps exactly the top quarter at each rung on synthetic learning curves", () =>
    Effect.gen(function*() {
      const study = yield* Study.make({
        space: { a: Study.float(0.5, 1), tau: Study.float(1, 30) },
        sampler: Study.random(),
        pruner: Study.asha({ reductionFactor: 4, gracePeriod: 1 }),
        direction: "maximize",
        seed: 11
      })
      const trials = yield* Effect.forEach(Array.from({ length: 64 }), () => study.ask)
      let alive = trials
      const survivorsPerRung: Array<number> = []
      for (const rung of [1, 4, 16]) {
        // Every surviving trial reports its curve at the rung; then each asks the pruner.
        for (const t of alive) yield* t.record(learningCurve(t.params.a, t.params.tau, rung), rung)
        const decisions = yield* Effect.forEach(alive, (t) => t.shouldPrune)
        const values = alive.map((t) => learningCurve(t.params.a, t.params.tau, rung))
        const ranked = [...values].sort((x, y) => y - x)
        const keep = Math.floor(alive.length / 4)
        // Exactly the best quarter continue, and they are the best quarter.
        const kept = alive.filter((_, i) => !decisions[i])
        expect(kept.length).toBe(keep)
        for (const t of kept) expect(learningCurve(t.params.a, t.params.tau, rung)).toBeGreaterThanOrEqual(ranked[keep - 1]!)
        for (const [i, t] of alive.entries()) if (decisions[i]) yield* study.tell(t.number, { state: "pruned" })
        alive = kept
        survivorsPerRung.push(kept.length)
      }
      expect(survivorsPerRung).toEqual([16, 4, 1])
      const summary = yield* study.summary
      expect(summary.states.pruned).toBe(63)
    }))

  it("ASHA rung arithmetic and Optuna's rule while a rung fills", () => {
    expect(Pruners.rungSteps(1, 4, 100)).toEqual([1, 4, 16, 64])
    expect(Pruners.rungSteps(2, 3, 20)).toEqual([2, 6, 18])
    // Fewer than η values: only a value as good as the best goes on.
    expect(Pruners.promotable("minimize", 0.5, [0.5], 4)).toBe(true)
    expect(Pruners.promotable("minimize", 0.6, [0.5, 0.6], 4)).toBe(false)
    // Eight values, η = 4: the best two go on.
    const eight = [8, 7, 6, 5, 4, 3, 2, 1]
    expect(eight.filter((v) => Pruners.promotable("maximize", v, eight, 4))).toEqual([8, 7])
  })

  it.effect("optimize with the median pruner records pruned trials with their last value and saves work", () =>
    Effect.gen(function*() {
      const steps = yield* Ref.make(0)
      const study = yield* Study.make({
        space: { a: Study.float(0.1, 1), tau: Study.float(1, 20) },
        sampler: Study.random(),
        pruner: Study.median(),
        direction: "maximize",
        seed: 5
      })
      const summary = yield* study.optimize((trial) =>
        Effect.gen(function*() {
          let acc = 0
          for (let step = 1; step <= 20; step++) {
            acc = learningCurve(trial.params.a, trial.params.tau, step)
            yield* Ref.update(steps, (n) => n + 1)
            yield* trial.report(acc, step)
          }
          return acc
        }), { trials: 40 })
      expect(summary.states.pruned).toBeGreaterThan(10)
      expect(summary.states.complete + summary.states.pruned).toBe(40)
      expect(yield* Ref.get(steps)).toBeLessThan(40 * 20 * 0.8)
      const pruned = (yield* study.trials).filter((t) => t.state === "pruned")
      for (const t of pruned) expect(t.value).toBe(t.intermediate[t.intermediate.length - 1]!.value)
      // The best trial is the best of the complete ones and was never pruned.
      expect(summary.best!.state).toBe("complete")
    }))
})

describe("optimize", () => {
  it.effect("a failing trial is recorded and never sinks the run; retries rerun it with the same parameters", () =>
    Effect.gen(function*() {
      const attempts = new Map<number, number>()
      const study = yield* Study.make({ space: { x: Study.float(0, 1) }, sampler: Study.random(), seed: 1 })
      const summary = yield* study.optimize((t) =>
        Effect.gen(function*() {
          const n = (attempts.get(t.number) ?? 0) + 1
          attempts.set(t.number, n)
          if (t.number % 5 === 0) return yield* Effect.fail(new Error(`bad trial ${t.number}`))
          if (t.number % 5 === 1 && n === 1) return yield* Effect.fail("flaky")
          if (t.number === 3) return yield* Effect.die("defect")
          if (t.number === 4) return Number.NaN
          return t.params.x
        }), { trials: 10, retries: 1, concurrency: 2 })
      expect(summary.trials).toBe(10)
      const trials = yield* study.trials
      expect(trials.map((t) => t.state)).toEqual([
        "failed",
        "complete",
        "complete",
        "failed",
        "failed",
        "failed",
        "complete",
        "complete",
        "complete",
        "complete"
      ])
      expect(trials[0]!.error).toBe("Error: bad trial 0")
      expect(trials[0]!.attempts).toBe(2)
      expect(trials[1]!.attempts).toBe(2) // failed once, then succeeded
      expect(trials[2]!.attempts).toBe(1)
      expect(trials[4]!.error).toBe("objective returned NaN")
      expect(trials[3]!.error).toContain("defect")
      expect(summary.best!.state).toBe("complete")
    }))

  it.effect("a trial running past timeoutPerTrial fails with the timeout, on the test clock", () =>
    Effect.gen(function*() {
      const study = yield* Study.make({ space: { x: Study.float(0, 1) }, sampler: Study.random(), seed: 1 })
      const fiber = yield* Effect.fork(study.optimize(
        (t) => t.number === 1 ? Effect.as(Effect.sleep("1 hour"), 1) : Effect.succeed(t.params.x),
        { trials: 3, timeoutPerTrial: "10 seconds" }
      ))
      yield* TestClock.adjust("10 seconds")
      const summary = yield* Fiber.join(fiber)
      const trials = yield* study.trials
      expect(trials.map((t) => t.state)).toEqual(["complete", "failed", "complete"])
      expect(trials[1]!.error).toBe("trial 1 timed out after 10s")
      expect(summary.states.failed).toBe(1)
    }))

  it.effect("the same seed gives the same trials whatever the scheduling (TPE, concurrency 4)", () =>
    Effect.gen(function*() {
      const run = (yields: (n: number) => number) =>
        Effect.gen(function*() {
          const study = yield* Study.make({ space: braninSpace, seed: 99 })
          yield* study.optimize((t) =>
            Effect.gen(function*() {
              for (let i = 0; i < yields(t.number); i++) yield* Effect.yieldNow()
              return branin(t.params.x, t.params.y)
            }), { trials: 40, concurrency: 4 })
          return (yield* study.trials).map((t) => [t.params["x"], t.params["y"], t.value])
        })
      const a = yield* run((n) => (n * 7) % 5)
      const b = yield* run((n) => ((n + 3) * 11) % 13)
      const c = yield* run(() => 0)
      expect(b).toEqual(a)
      expect(c).toEqual(a)
      // A different seed gives a different run.
      const other = yield* Study.make({ space: braninSpace, seed: 100 })
      yield* other.optimize((t) => Effect.succeed(branin(t.params.x, t.params.y)), { trials: 5, concurrency: 4 })
      expect((yield* other.trials).map((t) => t.params["x"])).not.toEqual(a.slice(0, 5).map((p) => p[0]))
    }))

  it.effect("each trial's objective runs with Random seeded by (study seed, trial number)", () =>
    Effect.gen(function*() {
      const draws = (concurrency: number) =>
        Effect.gen(function*() {
          const study = yield* Study.make({ space: { x: Study.float(0, 1) }, sampler: Study.random(), seed: 4 })
          yield* study.optimize(() => Effect.flatMap(Effect.yieldNow(), () => Effect.randomWith((r) => r.next)), {
            trials: 8,
            concurrency
          })
          return (yield* study.trials).map((t) => t.value)
        })
      const one = yield* draws(1)
      expect(yield* draws(8)).toEqual(one)
      expect(new Set(one).size).toBe(8)
    }))

  it.scoped("runs trials as tasks of a TaskPools pool, within its concurrency cap", () =>
    Effect.gen(function*() {
      const pool = yield* TaskPools.makePool({ name: "trials", maxConcurrency: 2, timeout: "1 minute" })
      let running = 0
      let peak = 0
      const study = yield* Study.make({ space: { x: Study.float(0, 1) }, sampler: Study.random(), seed: 3 })
      const fiber = yield* Effect.fork(study.optimize((t) =>
        Effect.acquireUseRelease(
          Effect.sync(() => (peak = Math.max(peak, ++running))),
          () => Effect.as(Effect.sleep("1 second"), t.params.x),
          () => Effect.sync(() => running--)
        ), { trials: 10, concurrency: 8, pool }))
      for (let i = 0; i < 5; i++) yield* TestClock.adjust("1 second")
      const summary = yield* Fiber.join(fiber)
      expect(summary.states.complete).toBe(10)
      expect(peak).toBe(2)
      expect((yield* pool.stats).completed).toBe(10)
    }))

  it.effect("validates its options", () =>
    Effect.gen(function*() {
      const study = yield* Study.make({ space: { x: Study.float(0, 1) } })
      const run = (o: Partial<Study.OptimizeOptions<{ x: number }>>) =>
        fieldOf(study.optimize((t) => Effect.succeed(t.params.x), { trials: 1, ...o }))
      expect(yield* run({ trials: -1 })).toBe("trials")
      expect(yield* run({ concurrency: 0 })).toBe("concurrency")
      expect(yield* run({ retries: 1.5 })).toBe("retries")
      expect(yield* run({ timeoutPerTrial: -5 })).toBe("timeoutPerTrial")
      expect(yield* fieldOf(Study.make({ space: { x: Study.float(0, 1) }, sampler: Study.tpe({ candidates: 0 }) })))
        .toBe("sampler.candidates")
      expect(yield* fieldOf(Study.make({ space: { x: Study.float(0, 1) }, pruner: Study.asha({ reductionFactor: 1 }) })))
        .toBe("pruner.reductionFactor")
      expect(yield* fieldOf(Study.make({ space: { x: Study.float(0, 1) }, direction: "up" as "minimize" })))
        .toBe("direction")
    }))
})

describe("ask and tell", () => {
  it.effect("asks, reports, tells; rejects a second tell, an unknown trial, a bad value or step", () =>
    Effect.gen(function*() {
      const study = yield* Study.make({ space: { x: Study.float(0, 1) }, direction: "maximize", seed: 2 })
      const a = yield* study.ask
      const b = yield* study.ask
      expect([a.number, b.number]).toEqual([0, 1])
      yield* a.report(0.2, 1)
      expect(yield* fieldOf(a.report(0.3, 1))).toBe("step")
      expect(yield* fieldOf(a.report(Number.NaN, 2))).toBe("value")
      const told = yield* study.tell(a.number, 0.9)
      expect(told.state).toBe("complete")
      expect(told.intermediate).toEqual([{ step: 1, value: 0.2 }])
      expect(yield* fieldOf(study.tell(a.number, 1))).toBe("number")
      expect(yield* fieldOf(study.tell(b.number, Number.POSITIVE_INFINITY))).toBe("value")
      const missing = yield* Effect.flip(study.tell(42, 1))
      expect(missing).toBeInstanceOf(NotFoundError)
      yield* study.tell(b.number, { state: "failed", error: "out of memory" })
      const best = yield* study.best
      expect(Option.getOrThrow(best).number).toBe(0)
      const summary = yield* study.summary
      expect(summary.states).toEqual({ running: 0, complete: 1, pruned: 0, failed: 1 })
    }))
})

describe("storage and resume", () => {
  const objective = (t: Study.Trial<{ x: number; y: number }>) => Effect.succeed(branin(t.params.x, t.params.y))

  it.effect("an interrupted study resumes: no completed trial lost, the interrupted one run again, the same result", () =>
    Effect.gen(function*() {
      const storage = yield* Study.memoryStorage
      const started = yield* Deferred.make<void>()
      const first = yield* Study.make({ name: "resume", space: braninSpace, seed: 21, storage })
      const fiber = yield* Effect.fork(first.optimize(
        (t) => t.number === 12 ? Effect.zipRight(Deferred.succeed(started, undefined), Effect.never) : objective(t),
        { trials: 30 }
      ))
      yield* Deferred.await(started)
      yield* Fiber.interrupt(fiber)
      const stored = Option.getOrThrow(yield* storage.load("resume"))
      expect(stored.trials.length).toBe(13)
      expect(stored.trials.filter((t) => t.state === "complete").length).toBe(12)
      expect(stored.trials[12]!.state).toBe("running")

      const resumed = yield* Study.make({ name: "resume", space: braninSpace, storage })
      expect(resumed.seed).toBe(21)
      const summary = yield* resumed.optimize(objective, { trials: 30 })
      expect(summary.trials).toBe(30)
      expect(summary.states.complete).toBe(30)

      const fresh = yield* Study.make({ space: braninSpace, seed: 21 })
      yield* fresh.optimize(objective, { trials: 30 })
      const strip = (ts: ReadonlyArray<TrialRecord>) => ts.map((t) => [t.number, t.params, t.value])
      expect(strip(yield* resumed.trials)).toEqual(strip(yield* fresh.trials))
    }))

  it.effect("the same study object runs on after an interrupted optimize: no gap, no deadlock, the same trials", () =>
    Effect.gen(function*() {
      const slow = (t: Study.Trial<{ x: number; y: number }>) =>
        Effect.as(Effect.sleep(`${1 + (t.number % 3)} seconds`), branin(t.params.x, t.params.y))
      const study = yield* Study.make({ space: braninSpace, seed: 31 })
      const fiber = yield* Effect.fork(study.optimize(slow, { trials: 30, concurrency: 4 }))
      for (let i = 0; i < 6; i++) yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(fiber)
      const partial = yield* study.summary
      expect(partial.states.complete).toBeGreaterThan(4)
      expect(partial.states.running).toBeGreaterThan(0)
      const again = yield* Effect.fork(study.optimize(slow, { trials: 30, concurrency: 4 }))
      for (let i = 0; i < 40; i++) yield* TestClock.adjust("1 second")
      const summary = yield* Fiber.join(again)
      expect(summary.states).toEqual({ running: 0, complete: 30, pruned: 0, failed: 0 })
      const trials = yield* study.trials
      expect(trials.map((t) => t.number)).toEqual(Array.from({ length: 30 }, (_, i) => i))
      const fresh = yield* Study.make({ space: braninSpace, seed: 31 })
      const run = yield* Effect.fork(fresh.optimize(slow, { trials: 30, concurrency: 4 }))
      for (let i = 0; i < 40; i++) yield* TestClock.adjust("1 second")
      yield* Fiber.join(run)
      expect(trials.map((t) => t.params)).toEqual((yield* fresh.trials).map((t) => t.params))
    }))

  it.effect("a stored study with another space or direction is a ValidationError", () =>
    Effect.gen(function*() {
      const storage = yield* Study.memoryStorage
      yield* Study.make({ name: "s", space: braninSpace, storage })
      expect(yield* fieldOf(Study.make({ name: "s", space: { x: Study.float(-5, 10) }, storage }))).toBe("space")
      expect(yield* fieldOf(Study.make({ name: "s", space: braninSpace, direction: "maximize", storage }))).toBe("direction")
    }))

  const durable = (label: string, layer: () => Layer.Layer<Repository.RepositoryStore, unknown>) =>
    it.effect(`${label}: a study survives closing the store and continues its sequence`, () =>
      Effect.gen(function*() {
        const name = `durable-${process.pid}-${Date.now()}`
        const run = (trials: number) =>
          Effect.scoped(Effect.gen(function*() {
            const storage = yield* Study.repositoryStorage
            const study = yield* Study.make({ name, space: braninSpace, seed: 8, storage })
            yield* study.optimize(objective, { trials })
            return yield* study.trials
          }).pipe(Effect.provide(layer())))
        const before = yield* run(15)
        expect(before.length).toBe(15)
        const after = yield* run(25)
        expect(after.length).toBe(25)
        expect(after.slice(0, 15)).toEqual(before)
        const fresh = yield* Study.make({ space: braninSpace, seed: 8 })
        yield* fresh.optimize(objective, { trials: 25 })
        expect(after.map((t) => t.params)).toEqual((yield* fresh.trials).map((t) => t.params))
      }), 30_000)

  const interrupted = (label: string, layer: () => Layer.Layer<Repository.RepositoryStore, unknown>) =>
    it.effect(`${label}: a study interrupted mid-run resumes from the store, the interrupted trial run again`, () =>
      Effect.gen(function*() {
        const name = `interrupted-${process.pid}-${Date.now()}`
        const started = yield* Deferred.make<void>()
        yield* Effect.scoped(Effect.gen(function*() {
          const storage = yield* Study.repositoryStorage
          const study = yield* Study.make({ name, space: braninSpace, seed: 9, storage })
          const fiber = yield* Effect.fork(study.optimize(
            (t) => t.number === 7 ? Effect.zipRight(Deferred.succeed(started, undefined), Effect.never) : objective(t),
            { trials: 20 }
          ))
          yield* Deferred.await(started)
          yield* Fiber.interrupt(fiber)
        }).pipe(Effect.provide(layer())))
        const resumed = yield* Effect.scoped(Effect.gen(function*() {
          const storage = yield* Study.repositoryStorage
          const stored = Option.getOrThrow(yield* storage.load(name))
          expect(stored.trials.map((t) => t.state)).toEqual([...new Array(7).fill("complete"), "running"])
          const study = yield* Study.make({ name, space: braninSpace, storage })
          yield* study.optimize(objective, { trials: 20 })
          return yield* study.trials
        }).pipe(Effect.provide(layer())))
        const fresh = yield* Study.make({ space: braninSpace, seed: 9 })
        yield* fresh.optimize(objective, { trials: 20 })
        const strip = (ts: ReadonlyArray<TrialRecord>) => ts.map((t) => [t.number, t.state, t.params, t.value])
        expect(strip(resumed)).toEqual(strip(yield* fresh.trials))
      }), 30_000)

  const file = path.join(os.tmpdir(), `foundation-study-${process.pid}.db`)
  for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true })
  durable("SQLite", () => SqlStore.layerSqlite({ filename: file }))
  interrupted("SQLite", () => SqlStore.layerSqlite({ filename: file }))
  const pgUrl = process.env["FOUNDATION_TEST_PG_URL"]
  if (pgUrl !== undefined) {
    durable("PostgreSQL", () => SqlStore.layerPg({ url: pgUrl }))
    interrupted("PostgreSQL", () => SqlStore.layerPg({ url: pgUrl }))
  }
})

describe("convergence", () => {
  it("is the best value so far after each trial", () => {
    const ts = [record(0, {}, "complete", 3), record(1, {}, "failed", undefined), record(2, {}, "complete", 1), record(3, {}, "complete", 2)]
    expect(Study.convergence("minimize", ts)).toEqual([3, 3, 1, 1])
    expect(Study.convergence("maximize", ts)).toEqual([3, 3, 3, 3])
    void Exit.void
  })
})

describe("the example", () => {
  it.effect("runs", () =>
    Effect.gen(function*() {
      // The optimum (lr 0.01, batch 64, 2 layers) scores 1 − e^(−10/3) ≈ 0.96 at epoch 10.
      expect(yield* Example.program).toEqual({
        states: { running: 0, complete: 52, pruned: 8, failed: 0 },
        bestLr: 0.01,
        bestBatchSize: 64,
        bestScore: 0.96
      })
    }))
})

describe("review regressions", () => {
  it.effect("no two trials of a study share a generator: 1000 random trials, no repeated point, for several seeds", () =>
    Effect.gen(function*() {
      for (const seed of [1, 2, 3, 4, 5]) {
        const study = yield* Study.make({ space: { x: Study.float(0, 1), y: Study.float(0, 1) }, sampler: Study.random(), seed })
        yield* study.optimize(() => Effect.succeed(0), { trials: 1000, concurrency: 8 })
        const points = new Set((yield* study.trials).map((t) => `${t.params["x"]},${t.params["y"]}`))
        expect(points.size).toBe(1000)
      }
    }))

  it.scoped("in a pool, timeoutPerTrial counts from the moment the trial has its slot", () =>
    Effect.gen(function*() {
      const pool = yield* TaskPools.makePool({ name: "one", maxConcurrency: 1, timeout: "1 hour" })
      const study = yield* Study.make({ space: { x: Study.float(0, 1) }, sampler: Study.random(), seed: 1 })
      const fiber = yield* Effect.fork(study.optimize(
        (t) => Effect.as(Effect.sleep("8 seconds"), t.params.x),
        { trials: 2, concurrency: 2, timeoutPerTrial: "10 seconds", pool }
      ))
      for (let i = 0; i < 16; i++) yield* TestClock.adjust("1 second")
      const summary = yield* Fiber.join(fiber)
      expect(summary.states.complete).toBe(2) // the second waited 8 s for its slot, then ran 8 s
    }))

  it.effect("with a pruner too, the same seed gives the same trials whatever the scheduling", () =>
    Effect.gen(function*() {
      const run = (yields: (n: number, step: number) => number) =>
        Effect.gen(function*() {
          const study = yield* Study.make({
            space: { a: Study.float(0.1, 1), tau: Study.float(1, 20) },
            pruner: Study.median({ startupTrials: 2 }),
            direction: "maximize",
            seed: 17
          })
          yield* study.optimize((t) =>
            Effect.gen(function*() {
              let acc = 0
              for (let step = 1; step <= 8; step++) {
                for (let i = 0; i < yields(t.number, step); i++) yield* Effect.yieldNow()
                acc = learningCurve(t.params.a, t.params.tau, step)
                yield* t.report(acc, step)
              }
              return acc
            }), { trials: 40, concurrency: 4 })
          return (yield* study.trials).map((t) => [t.state, t.params["a"], t.params["tau"], t.intermediate.length])
        })
      const a = yield* run((n, step) => (n * 7 + step) % 5)
      const b = yield* run((n, step) => ((n + 3) * 11 + step * 3) % 13)
      expect(b).toEqual(a)
      expect(a.filter((t) => t[0] === "pruned").length).toBeGreaterThan(3)
    }))

  it.effect("a storage failure when a trial starts fails optimize; the next optimize runs on, without a gap or a hang", () =>
    Effect.gen(function*() {
      const inner = yield* Study.memoryStorage
      let failures = 1
      const flaky: Study.Storage = {
        ...inner,
        saveTrial: (study, trial) =>
          trial.number === 3 && trial.state === "running" && failures-- > 0
            ? Effect.fail(new ValidationError({ field: "disk", reason: "full" }))
            : inner.saveTrial(study, trial)
      }
      const study = yield* Study.make({ space: braninSpace, seed: 5, storage: flaky })
      const objective = (t: Study.Trial<{ x: number; y: number }>) => Effect.succeed(branin(t.params.x, t.params.y))
      const failed = yield* Effect.flip(study.optimize(objective, { trials: 12, concurrency: 2 }))
      expect(failed).toBeInstanceOf(ValidationError)
      const summary = yield* study.optimize(objective, { trials: 12, concurrency: 2 })
      expect(summary.states.complete).toBe(12)
      expect((yield* study.trials).map((t) => t.number)).toEqual(Array.from({ length: 12 }, (_, i) => i))
    }))

  it.effect("optimize does not wait for a trial asked by hand and still out", () =>
    Effect.gen(function*() {
      const study = yield* Study.make({ space: braninSpace, seed: 6 })
      const pending = yield* study.ask
      const summary = yield* study.optimize((t) => Effect.succeed(branin(t.params.x, t.params.y)), { trials: 8, concurrency: 2 })
      // `trials` counts finished trials: the one still out is not one of them.
      expect(summary.states).toEqual({ running: 1, complete: 8, pruned: 0, failed: 0 })
      yield* study.tell(pending.number, 1)
      expect((yield* study.summary).states.complete).toBe(9)
    }))

  it.scoped("bestImproved starts from the stored best when a study is reopened", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.EventBus
      const sub = yield* bus.subscribe("foundation.ml.study.best_improved", { capacity: 10 })
      const storage = yield* Study.memoryStorage
      const first = yield* Study.make({ name: "b", space: { x: Study.float(0, 10) }, storage, seed: 1 })
      const t0 = yield* first.ask
      yield* first.tell(t0.number, 1)
      const reopened = yield* Study.make({ name: "b", space: { x: Study.float(0, 10) }, storage })
      const t1 = yield* reopened.ask
      yield* reopened.tell(t1.number, 5) // worse: no event
      const t2 = yield* reopened.ask
      yield* reopened.tell(t2.number, 0.5) // better
      const seen = yield* drainTelemetry(sub)
      expect(seen.map(([, m]) => (m as { value: number }).value)).toEqual([1, 0.5])
    }).pipe(Effect.provide(Telemetry.layerWithBus())))

  it.effect("a failing or dying onTrial hook is logged and never stops the run", () =>
    Effect.gen(function*() {
      const study = yield* Study.make({ space: { x: Study.float(0, 1) }, sampler: Study.random(), seed: 1 })
      const summary = yield* study.optimize((t) => Effect.succeed(t.params.x), {
        trials: 5,
        onTrial: (trial) => trial.number === 2 ? Effect.die("progress bar broke") : Effect.void
      })
      expect(summary.states.complete).toBe(5)
    }))

  it("large ints and grids stay exact and in their domain", () => {
    const big = Study.int(0, 1_999_999_999_999)
    expect(Space.fromInternal(big, 1_999_999_999_999)).toBe(1_999_999_999_999)
    expect(Space.fromInternal(big, 1_234_567_890_123)).toBe(1_234_567_890_123)
    expect(Space.gridValues(Study.int(1e12, 1e12 + 3))).toEqual([1e12, 1e12 + 1, 1e12 + 2, 1e12 + 3])
    expect(Space.gridValues(Study.float(0, 1, { step: 0.1 }))).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1])
  })

  it("a stored space is validated: a null entry or an unknown kind is a ValidationError", () => {
    const field = (json: unknown) => Either.getOrThrow(Either.flip(Space.fromJson(json))).field
    expect(field({ x: null })).toBe("space.x")
    expect(field({ x: { _tag: "Normal", low: 0, high: 1 } })).toBe("space.x")
    expect(Either.isRight(Space.fromJson(Space.toJson(mixedSpace)))).toBe(true)
  })

  it.effect("TPE's gamma must be a function", () =>
    Effect.gen(function*() {
      const gamma = 0.25 as unknown as (n: number) => number
      expect(yield* fieldOf(Study.make({ space: braninSpace, sampler: Study.tpe({ gamma }) }))).toBe("sampler.gamma")
    }))
})

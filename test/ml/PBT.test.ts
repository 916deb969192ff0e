import { describe, expect, it } from "@effect/vitest"
import { Cause, Data, Deferred, Effect, Exit, Fiber, Random, Ref } from "effect"
import * as Example from "../../examples/pbt.js"
import { ValidationError } from "../../src/errors/FoundationError.js"
import * as PBT from "../../src/ml/PBT.js"

/** The field a failed effect's ValidationError names. */
const fieldOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.flip(effect), (e) => {
    expect(e).toBeInstanceOf(ValidationError)
    return (e as ValidationError).field
  })

/** A uniform that replays `values` in order (and fails the test if it runs out). */
const scripted = (values: ReadonlyArray<number>): PBT.Uniform => {
  let i = 0
  return () => {
    expect(i).toBeLessThan(values.length)
    return values[i++]!
  }
}

/** A small deterministic generator for property-style loops. */
const lcg = (seed: number): PBT.Uniform => {
  let state = seed
  return () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648
}

/**
 * The toy of Jaderberg et al. (2017), figure 2, written out from first principles: θ ∈ ℝ² from
 * [0.9, 0.9], gradient ascent θ ← θ + η∇Q̂ on Q̂(θ|h) = 1.2 − (h₀θ₀² + h₁θ₁²), evaluated on the
 * true Q(θ) = 1.2 − (θ₀² + θ₁²). (`PBT.toy` is the same problem, exported for benches.)
 */
export const toyProblem = (eta = 0.01) => {
  const Q = (t: ReadonlyArray<number>) => 1.2 - (t[0]! ** 2 + t[1]! ** 2)
  const gradQhat = (t: ReadonlyArray<number>, h: PBT.Hyperparams) => [
    -2 * Number(h["h0"]) * t[0]!,
    -2 * Number(h["h1"]) * t[1]!
  ]
  return {
    Q,
    population: [
      { state: [0.9, 0.9] as ReadonlyArray<number>, hyperparams: { h0: 1, h1: 0 } },
      { state: [0.9, 0.9] as ReadonlyArray<number>, hyperparams: { h0: 0, h1: 1 } }
    ],
    space: { h0: { type: "float", low: 0, high: 1 }, h1: { type: "float", low: 0, high: 1 } } satisfies PBT.Space,
    step: ({ hyperparams, state }: PBT.MemberView<ReadonlyArray<number>>) => {
      const g = gradQhat(state, hyperparams)
      return Effect.succeed([state[0]! + eta * g[0]!, state[1]! + eta * g[1]!] as ReadonlyArray<number>)
    },
    evaluate: ({ state }: PBT.MemberView<ReadonlyArray<number>>) => Effect.succeed(Q(state))
  }
}

class Boom extends Data.TaggedError("Boom")<{ readonly member: number }> {}

describe("quantileSize", () => {
  it("is ⌈N·q⌉, at most ⌊N/2⌋", () => {
    expect(PBT.quantileSize(4, 0.25)).toBe(1)
    expect(PBT.quantileSize(10, 0.25)).toBe(3) // ⌈2.5⌉
    expect(PBT.quantileSize(2, 0.25)).toBe(1)
    expect(PBT.quantileSize(1, 0.25)).toBe(0) // nobody to copy from
    expect(PBT.quantileSize(3, 0.25)).toBe(1)
    expect(PBT.quantileSize(20, 0.25)).toBe(5)
    expect(PBT.quantileSize(5, 0.5)).toBe(2) // ⌈2.5⌉ = 3 capped at ⌊5/2⌋
    expect(PBT.quantileSize(10, 0.3)).toBe(3) // 10·0.3 = 3.0000000000000004 in floating point
    expect(PBT.quantileSize(8, 0)).toBe(0)
  })
})

describe("selectQuantiles", () => {
  it("takes the bottom and top quantiles (max by default, min on request)", () => {
    expect(PBT.selectQuantiles([5, 1, 3, 4], 0.25)).toEqual({ top: [0], bottom: [1] })
    expect(PBT.selectQuantiles([5, 1, 3, 4], 0.25, "min")).toEqual({ top: [1], bottom: [0] })
    const perf = [0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0]
    expect(PBT.selectQuantiles(perf, 0.25)).toEqual({ top: [1, 6, 4], bottom: [9, 0, 5] })
    expect(PBT.selectQuantiles(perf, 0.25, "min")).toEqual({ top: [9, 0, 5], bottom: [1, 6, 4] })
  })

  it("breaks ties to the lower index and never overlaps", () => {
    expect(PBT.selectQuantiles([1, 1], 0.25)).toEqual({ top: [0], bottom: [1] })
    expect(PBT.selectQuantiles([2, 2, 2, 2], 0.5)).toEqual({ top: [0, 1], bottom: [3, 2] })
    expect(PBT.selectQuantiles([7], 0.25)).toEqual({ top: [], bottom: [] })
  })

  it("ranks failed members worst and replaces all of them while a healthy donor exists", () => {
    // member 0 has the best value but failed: it is at the bottom, not the top
    expect(PBT.selectQuantiles([undefined, 1, 3, 2], 0.25)).toEqual({ top: [2], bottom: [0] })
    // three failures with a quantile of one: all three are replaced from the one healthy member
    expect(PBT.selectQuantiles([undefined, 1, undefined, undefined], 0.25)).toEqual({ top: [1], bottom: [3, 2, 0] })
    expect(PBT.selectQuantiles([undefined, undefined], 0.25)).toEqual({ top: [], bottom: [] })
  })
})

describe("explore", () => {
  const space: PBT.Space = {
    lr: { type: "float", low: 0.001, high: 1 },
    layers: { type: "int", low: 1, high: 8 },
    optimizer: { type: "categorical", choices: ["sgd", "adam", "rmsprop"] }
  }
  const hp = { lr: 0.1, layers: 2, optimizer: "adam", name: "kept" }

  it("perturbs by a factor from [0.8, 1.2], shifts categoricals, copies keys outside the space", () => {
    // per dimension: one draw for resample-or-perturb (0.9 ≥ 0.25: perturb), one for the factor/direction
    expect(PBT.explore(hp, space, scripted([0.9, 0.0, 0.9, 0.99, 0.9, 0.2]))).toEqual({
      lr: 0.1 * 0.8,
      layers: 3, // round(2 × 1.2) = 2 is no move, so it steps up by one
      optimizer: "sgd", // shifted down
      name: "kept"
    })
    expect(PBT.explore(hp, space, scripted([0.9, 0.99, 0.9, 0.0, 0.9, 0.7]))).toEqual({
      lr: 0.1 * 1.2,
      layers: 1, // round(2 × 0.8) = 2 → steps down
      optimizer: "rmsprop", // shifted up
      name: "kept"
    })
  })

  it("a rounded-away int perturbation moves the way value × factor does, negative values included (review fix)", () => {
    const ints: PBT.Space = { n: { type: "int", low: -10, high: 10 } }
    const perturb = (n: number, up: boolean) => PBT.explore({ n }, ints, scripted([0.9, up ? 0.99 : 0]))["n"]
    // −2 × 1.2 = −2.4 rounds back to −2: it has to go down to −3 (the old code went up to −1)
    expect(perturb(-2, true)).toBe(-3)
    expect(perturb(-2, false)).toBe(-1) // −2 × 0.8 = −1.6 rounds to −2: it goes up, towards 0
    expect(perturb(-1, true)).toBe(-2)
    expect(perturb(2, true)).toBe(3)
    expect(perturb(2, false)).toBe(1)
    expect(perturb(0, true)).toBe(1) // 0 × anything is 0: the factor's side of 1 decides
    expect(perturb(0, false)).toBe(-1)
    expect(perturb(-5, true)).toBe(-6) // round(−6) ≠ −5: no nudge needed
  })

  it("clamps to the bounds and stays at the ends of the choices", () => {
    const edge = { lr: 0.9, layers: 8, optimizer: "rmsprop" }
    expect(PBT.explore(edge, space, scripted([0.9, 0.99, 0.9, 0.99, 0.9, 0.99]))).toEqual({
      lr: 1,
      layers: 8,
      optimizer: "rmsprop"
    })
    const low = { lr: 0.001, layers: 1, optimizer: "sgd" }
    expect(PBT.explore(low, space, scripted([0.9, 0.0, 0.9, 0.0, 0.9, 0.0]))).toEqual({
      lr: 0.001,
      layers: 1,
      optimizer: "sgd"
    })
  })

  it("resamples from the space with the resample probability (log-uniform for log floats)", () => {
    expect(PBT.explore(hp, space, scripted([0.1, 0.5, 0.1, 0.5, 0.1, 0.5]))).toEqual({
      lr: 0.001 + 0.5 * 0.999,
      layers: 5, // 1 + ⌊0.5 × 8⌋
      optimizer: "adam", // ⌊0.5 × 3⌋
      name: "kept"
    })
    const logSpace: PBT.Space = { lr: { type: "float", low: 1e-4, high: 1e-1, log: true } }
    const out = PBT.explore({ lr: 0.01 }, logSpace, scripted([0.1, 0.5]))
    expect(out["lr"]).toBeCloseTo(10 ** -2.5, 12) // the geometric midpoint, not the arithmetic one
    // probability 1: always resampled; 0: always perturbed
    expect(PBT.explore({ lr: 0.01 }, logSpace, scripted([0.999, 0]), { resampleProbability: 1 })["lr"]).toBeCloseTo(1e-4, 12)
    expect(PBT.explore({ lr: 0.01 }, logSpace, scripted([0, 0]), { resampleProbability: 0 })["lr"]).toBeCloseTo(0.008, 12)
  })

  it("uses the given factors", () => {
    const out = PBT.explore({ lr: 0.1 }, { lr: space["lr"]! }, scripted([0.9, 0.5]), { factors: [0.5, 2, 3] })
    expect(out["lr"]).toBeCloseTo(0.2, 12) // ⌊0.5 × 3⌋ = 1 → factor 2
  })

  it("always stays within the space, over many random draws, resampling about a quarter of the time", () => {
    let perturbed = 0
    let resampled = 0
    for (let seed = 1; seed <= 200; seed++) {
      const u = lcg(seed)
      let current: PBT.Hyperparams = PBT.sample(space, u)
      for (let i = 0; i < 50; i++) {
        const next = PBT.explore(current, space, u)
        const lr = next["lr"] as number
        const layers = next["layers"] as number
        expect(lr).toBeGreaterThanOrEqual(0.001)
        expect(lr).toBeLessThanOrEqual(1)
        expect(Number.isInteger(layers)).toBe(true)
        expect(layers).toBeGreaterThanOrEqual(1)
        expect(layers).toBeLessThanOrEqual(8)
        expect(["sgd", "adam", "rmsprop"]).toContain(next["optimizer"])
        const ratio = lr / (current["lr"] as number)
        if (lr !== 0.001 && lr !== 1) { // a clamped value is ambiguous
          if (Math.abs(ratio - 0.8) < 1e-9 || Math.abs(ratio - 1.2) < 1e-9) perturbed++
          else resampled++
        }
        current = next
      }
    }
    const share = resampled / (resampled + perturbed)
    expect(share).toBeGreaterThan(0.2)
    expect(share).toBeLessThan(0.3)
  })
})

describe("run: the toy of Jaderberg et al. (2017)", () => {
  it.effect("PBT reaches Q ≥ 1.19; neither fixed member ever does (quality bar)", () =>
    Effect.gen(function*() {
      const toy = toyProblem(0.01)
      // Baseline: the same run with exploit/explore disabled (each member keeps its h).
      const fixed = yield* PBT.run({ ...toy, interval: Infinity, maxSteps: 2000, target: 1.19, seed: 42 })
      expect(fixed.reachedTarget).toBe(false)
      expect(fixed.lineage).toEqual([])
      // each fixed member only shrinks one coordinate: Q stays below 1.2 − 0.9² = 0.39
      for (const record of fixed.history) {
        for (const q of record.performances) expect(q!).toBeLessThanOrEqual(0.39 + 1e-12)
      }
      expect(fixed.members.map((m) => m.hyperparams)).toEqual([{ h0: 1, h1: 0 }, { h0: 0, h1: 1 }])

      const pbt = yield* PBT.run({ ...toy, maxSteps: 2000, target: 1.19, seed: 42 })
      expect(pbt.reachedTarget).toBe(true)
      expect(pbt.targetStep).toBeDefined()
      expect(pbt.best.performance).toBeGreaterThanOrEqual(1.19)
      expect(toy.Q(pbt.best.state)).toBe(pbt.best.performance)
      // the best possible fixed h = [1, 1] needs ⌈ln(0.01/1.62) / (2 ln 0.98)⌉ = 126 steps;
      // PBT has to discover it from [1, 0] and [0, 1] and gets within 2× of that oracle
      const oracle = Math.ceil(Math.log(0.01 / 1.62) / (2 * Math.log(0.98)))
      expect(oracle).toBe(126)
      expect(pbt.targetStep!).toBeLessThan(2 * oracle)
      expect(pbt.lineage.length).toBeGreaterThan(0)
      // the best member trains with both weights switched on
      expect(pbt.best.hyperparams["h0"] as number).toBeGreaterThan(0)
      expect(pbt.best.hyperparams["h1"] as number).toBeGreaterThan(0)
    }))

  it.effect("reaches the target under every one of 20 seeds, and PBT.toy is the same problem", () =>
    Effect.gen(function*() {
      for (let seed = 0; seed < 20; seed++) {
        const a = yield* PBT.run({ ...toyProblem(), maxSteps: 1000, target: 1.19, seed })
        expect(a.reachedTarget).toBe(true)
        expect(a.targetStep!).toBeLessThan(300)
        const b = yield* PBT.run({ ...PBT.toy(), maxSteps: 1000, target: 1.19, seed })
        expect(b.targetStep).toBe(a.targetStep)
      }
    }))

  it.effect("every explored value in the lineage stays within the space", () =>
    Effect.gen(function*() {
      const result = yield* PBT.run({ ...toyProblem(), maxSteps: 400, seed: 7 })
      expect(result.lineage.length).toBe(100 - 1) // one copy per interval, none on the last step
      for (const e of result.lineage) {
        for (const k of ["h0", "h1"]) {
          expect(e.hyperparamsAfter[k] as number).toBeGreaterThanOrEqual(0)
          expect(e.hyperparamsAfter[k] as number).toBeLessThanOrEqual(1)
        }
        expect(e.step % 4).toBe(0)
        expect(e.member).not.toBe(e.donor)
      }
    }))
})

describe("run: exploit copies the full state", () => {
  interface Model {
    value: number
    log: Array<number>
  }
  const population = [
    { state: { value: 0, log: [] } as Model, hyperparams: { lr: 1 } },
    { state: { value: 0, log: [] } as Model, hyperparams: { lr: 0.1 } }
  ]
  const space: PBT.Space = { lr: { type: "float", low: 0.01, high: 10 } }
  // The step mutates the state in place: an aliased copy would be trained twice per step.
  const step = ({ hyperparams, id, state }: PBT.MemberView<Model>) =>
    Effect.sync(() => {
      state.value += hyperparams["lr"] as number
      state.log.push(id)
      return state
    })
  const evaluate = ({ state }: PBT.MemberView<Model>) => Effect.succeed(state.value)

  const check = (result: PBT.Result<Model, never>) => {
    expect(result.lineage).toHaveLength(1)
    const event = result.lineage[0]!
    expect(event).toMatchObject({
      step: 2,
      member: 1,
      donor: 0,
      donorPerformance: 2,
      replacedPerformance: 0.2,
      hyperparamsBefore: { lr: 0.1 },
      donorHyperparams: { lr: 1 }
    })
    const [donor, copy] = result.members
    // the donor trained alone: three steps of +1
    expect(donor!.state).toEqual({ value: 3, log: [0, 0, 0] })
    // the copy holds the donor's weights and history from step 2, then trained with its explored lr
    expect(copy!.hyperparams).toEqual(event.hyperparamsAfter)
    expect(copy!.state.log).toEqual([0, 0, 1])
    expect(copy!.state.value).toBeCloseTo(2 + (event.hyperparamsAfter["lr"] as number), 12)
    expect(copy!.lineage).toEqual([event])
    expect(donor!.lineage).toEqual([])
  }

  it.effect("through the user's checkpoint/restore", () =>
    Effect.gen(function*() {
      const saved: Array<Model> = []
      let restores = 0
      const result = yield* PBT.run({
        population: population.map((m) => ({ ...m, state: structuredClone(m.state) })),
        space,
        step,
        evaluate,
        checkpoint: (state) => Effect.sync(() => (saved.push(structuredClone(state)), JSON.stringify(state))),
        restore: (json) => Effect.sync(() => (restores++, JSON.parse(json) as Model)),
        interval: 2,
        maxSteps: 3,
        seed: 1
      })
      expect(saved).toEqual([{ value: 2, log: [0, 0] }]) // the donor's state at the exploit step
      expect(restores).toBe(1)
      check(result)
    }))

  it.effect("through structuredClone by default", () =>
    Effect.gen(function*() {
      const result = yield* PBT.run({
        population: population.map((m) => ({ ...m, state: structuredClone(m.state) })),
        space,
        step,
        evaluate,
        interval: 2,
        maxSteps: 3,
        seed: 1
      })
      check(result)
      expect(result.members[0]!.state).not.toBe(result.members[1]!.state)
    }))

  it.effect("a failed copy is recorded and leaves the member as it was", () =>
    Effect.gen(function*() {
      const result = yield* PBT.run({
        population: population.map((m) => ({ ...m, state: structuredClone(m.state) })),
        space,
        step,
        evaluate,
        checkpoint: (state: Model) => Effect.succeed(state),
        restore: () => Effect.fail(new Boom({ member: 1 })),
        interval: 2,
        maxSteps: 3,
        seed: 1
      })
      expect(result.lineage).toEqual([])
      const m = result.members[1]!
      expect(m.hyperparams).toEqual({ lr: 0.1 })
      expect(m.state.log).toEqual([1, 1, 1])
      expect(m.failures).toBe(1)
      expect(m.lastFailure).toMatchObject({ step: 2, phase: "exploit", error: new Boom({ member: 1 }) })
    }))
})

describe("run: reproducibility", () => {
  // Each step draws noise from the ambient Random and yields a random number of times, so that
  // with concurrency the members interleave differently from a sequential run.
  const noisy = {
    population: 8,
    init: () => [0.9, 0.9] as ReadonlyArray<number>,
    space: {
      h0: { type: "float", low: 0, high: 1 },
      h1: { type: "float", low: 0, high: 1 },
      kind: { type: "categorical", choices: ["a", "b", "c"] }
    } satisfies PBT.Space,
    step: ({ hyperparams, state }: PBT.MemberView<ReadonlyArray<number>>) =>
      Effect.gen(function*() {
        const yields = yield* Random.nextIntBetween(0, 5)
        for (let i = 0; i < yields; i++) yield* Effect.yieldNow()
        const noise = yield* Random.nextRange(-0.01, 0.01)
        return [
          state[0]! * (1 - 0.02 * Number(hyperparams["h0"])) + noise,
          state[1]! * (1 - 0.02 * Number(hyperparams["h1"])) - noise
        ] as ReadonlyArray<number>
      }),
    evaluate: ({ state }: PBT.MemberView<ReadonlyArray<number>>) => Effect.succeed(1.2 - (state[0]! ** 2 + state[1]! ** 2)),
    maxSteps: 60
  }

  it.effect("the same seed gives the same run whatever the concurrency", () =>
    Effect.gen(function*() {
      const sequential = yield* PBT.run({ ...noisy, concurrency: 1, seed: 5 })
      const three = yield* PBT.run({ ...noisy, concurrency: 3, seed: 5 })
      const unbounded = yield* PBT.run({ ...noisy, concurrency: "unbounded", seed: 5 })
      expect(sequential.lineage.length).toBeGreaterThan(0)
      expect(three).toEqual(sequential)
      expect(unbounded).toEqual(sequential)
      const other = yield* PBT.run({ ...noisy, seed: 6 })
      expect(other.history).not.toEqual(sequential.history)
    }))

  it.effect("without a seed the ambient Random is used", () =>
    Effect.gen(function*() {
      const a = yield* Effect.withRandom(PBT.run(noisy), Random.make(9))
      const b = yield* Effect.withRandom(PBT.run({ ...noisy, concurrency: 2 }), Random.make(9))
      expect(b).toEqual(a)
    }))

  it.effect("population as a number samples hyperparameters from the space and calls init", () =>
    Effect.gen(function*() {
      const seen: Array<{ id: number; hyperparams: PBT.Hyperparams }> = []
      const space: PBT.Space = {
        lr: { type: "float", low: 1e-4, high: 1e-1, log: true },
        layers: { type: "int", low: 1, high: 4 },
        batch: { type: "categorical", choices: [16, 32, 64, 128] }
      }
      const result = yield* PBT.run({
        population: 6,
        init: (m) => (seen.push(m), { id: m.id }),
        space,
        step: ({ state }) => Effect.succeed(state),
        evaluate: ({ hyperparams }) => Effect.succeed(-Math.abs(Math.log10(hyperparams["lr"] as number) + 2)),
        maxSteps: 1,
        seed: 3
      })
      expect(seen.map((m) => m.id)).toEqual([0, 1, 2, 3, 4, 5])
      expect(result.members.map((m) => m.hyperparams)).toEqual(seen.map((m) => m.hyperparams))
      for (const { hyperparams } of seen) {
        expect(hyperparams["lr"] as number).toBeGreaterThanOrEqual(1e-4)
        expect(hyperparams["lr"] as number).toBeLessThanOrEqual(1e-1)
        expect([1, 2, 3, 4]).toContain(hyperparams["layers"])
        expect([16, 32, 64, 128]).toContain(hyperparams["batch"])
      }
      expect(new Set(seen.map((m) => m.hyperparams["lr"])).size).toBe(6)
    }))
})

describe("run: failures", () => {
  // state = accumulated score; member i adds rate i + 1 per step, so member 3 leads.
  const population = [1, 2, 3, 4].map((rate) => ({ state: 0, hyperparams: { rate } }))
  const space: PBT.Space = { rate: { type: "float", low: 0.1, high: 10 } }

  it.effect("a failing member is recorded, ranked worst for the interval and replaced from a top member", () =>
    Effect.gen(function*() {
      const result = yield* PBT.run({
        population,
        space,
        step: ({ hyperparams, id, state, step }) =>
          id === 3 && step === 3 ? Effect.fail(new Boom({ member: id })) : Effect.succeed(state + Number(hyperparams["rate"])),
        evaluate: ({ state }) => Effect.succeed(state),
        interval: 4,
        maxSteps: 6,
        seed: 1
      })
      expect(result.steps).toBe(6)
      expect(result.history[2]!.performances).toEqual([3, 6, 9, undefined])
      const m = result.members[3]!
      expect(m.failures).toBe(1)
      expect(m.lastFailure).toMatchObject({ step: 3, phase: "step", error: new Boom({ member: 3 }) })
      // at step 4 member 3 still had the highest score (12), but it failed in the interval: it
      // is the one replaced, from the best healthy member (2, score 12 as well, rate 3)
      expect(result.history[3]!.performances).toEqual([4, 8, 12, 12])
      expect(result.lineage).toHaveLength(1)
      expect(result.lineage[0]).toMatchObject({ step: 4, member: 3, donor: 2, donorPerformance: 12, replacedPerformance: undefined })
      const after = result.lineage[0]!.hyperparamsAfter["rate"] as number
      expect(m.state).toBeCloseTo(12 + 2 * after, 12)
    }))

  it.effect("an evaluate failure or a NaN performance counts as a failure of the member", () =>
    Effect.gen(function*() {
      const result = yield* PBT.run({
        population,
        step: ({ hyperparams, state }) => Effect.succeed(state + Number(hyperparams["rate"])),
        evaluate: ({ id, state, step }) =>
          id === 0 && step === 1
            ? Effect.succeed(NaN)
            : id === 1 && step === 2
            ? Effect.fail(new Boom({ member: 1 }))
            : Effect.succeed(state),
        interval: Infinity,
        maxSteps: 3
      })
      const [m0, m1] = result.members
      expect(m0!.failures).toBe(1)
      expect(m0!.lastFailure).toMatchObject({ step: 1, phase: "evaluate", error: undefined })
      expect(Cause.isDie(m0!.lastFailure!.cause)).toBe(true)
      expect(m1!.lastFailure).toMatchObject({ step: 2, phase: "evaluate", error: new Boom({ member: 1 }) })
      // the step's new state is kept even though its evaluation failed
      expect(m1!.state).toBe(6)
      expect(result.history.map((h) => h.performances)).toEqual([[undefined, 2, 3, 4], [2, undefined, 6, 8], [3, 6, 9, 12]])
    }))

  it.effect("a step in which every member fails ends the run with PopulationFailedError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(PBT.run({
        population,
        step: ({ id, state, step }) => step === 2 ? Effect.fail(new Boom({ member: id })) : Effect.succeed(state + 1),
        evaluate: ({ state }) => Effect.succeed(state),
        maxSteps: 10
      }))
      expect(error).toBeInstanceOf(PBT.PopulationFailedError)
      const failed = error as PBT.PopulationFailedError<Boom>
      expect(failed.step).toBe(2)
      expect(failed.category).toBe("permanent")
      expect(failed.failures.map((f) => f.error)).toEqual([0, 1, 2, 3].map((member) => new Boom({ member })))
      expect(failed.message).toBe("Every member of the population failed at step 2")
    }))
})

describe("run: stopping", () => {
  const counter = {
    population: [{ state: 0, hyperparams: {} }, { state: 0, hyperparams: {} }],
    step: ({ id, state }: PBT.MemberView<number>) => Effect.succeed(state + id + 1),
    evaluate: ({ state }: PBT.MemberView<number>) => Effect.succeed(state)
  }

  it.effect("stops at the first step whose best performance reaches the target", () =>
    Effect.gen(function*() {
      const result = yield* PBT.run({ ...counter, target: 9, maxSteps: 100, interval: Infinity })
      // member 1 counts by two: 2, 4, 6, 8, 10 → reached at step 5
      expect(result).toMatchObject({ reachedTarget: true, targetStep: 5, steps: 5 })
      expect(result.history).toHaveLength(5)
      expect(result.best).toMatchObject({ id: 1, performance: 10 })
    }))

  it.effect("in min mode the target is reached from above", () =>
    Effect.gen(function*() {
      const result = yield* PBT.run({
        ...counter,
        evaluate: ({ state }) => Effect.succeed(20 - state),
        mode: "min",
        target: 13,
        maxSteps: 100,
        interval: Infinity
      })
      expect(result).toMatchObject({ reachedTarget: true, targetStep: 4, steps: 4 }) // 20 − 8 = 12 ≤ 13
      expect(result.best.id).toBe(1)
    }))

  it.effect("runs maxSteps when the target is never reached", () =>
    Effect.gen(function*() {
      const result = yield* PBT.run({ ...counter, target: 1000, maxSteps: 7 })
      expect(result).toMatchObject({ reachedTarget: false, targetStep: undefined, steps: 7 })
      expect(result.history.map((h) => h.step)).toEqual([1, 2, 3, 4, 5, 6, 7])
      // no hyperparameters to explore: the exploit at step 4 still copies the leader's state
      expect(result.lineage).toMatchObject([{ step: 4, member: 0, donor: 1, donorPerformance: 8 }])
      expect(result.members.map((m) => m.state)).toEqual([8 + 3, 14])
    }))

  it.effect("burnIn delays the first exploit", () =>
    Effect.gen(function*() {
      const result = yield* PBT.run({ ...counter, interval: 2, burnIn: 5, maxSteps: 9 })
      expect(result.lineage.map((e) => e.step)).toEqual([6, 8])
    }))

  it.effect("interrupting the run interrupts every member step", () =>
    Effect.gen(function*() {
      const started = yield* Ref.make(0)
      const interrupted = yield* Ref.make(0)
      const allStarted = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(PBT.run({
        population: [0, 1, 2].map(() => ({ state: 0, hyperparams: {} })),
        step: () =>
          Ref.updateAndGet(started, (n) => n + 1).pipe(
            Effect.tap((n) => n === 3 ? Deferred.succeed(allStarted, undefined) : Effect.void),
            Effect.zipRight(Effect.never),
            Effect.onInterrupt(() => Ref.update(interrupted, (n) => n + 1))
          ),
        evaluate: () => Effect.succeed(0),
        maxSteps: 10
      }))
      yield* Deferred.await(allStarted)
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(yield* Ref.get(interrupted)).toBe(3)
    }))
})

describe("run: validation", () => {
  it.effect("rejects bad options naming the field, before any user code runs", () =>
    Effect.gen(function*() {
      let calls = 0
      const base = {
        population: [{ state: 0, hyperparams: { lr: 0.1, opt: "adam" } }, { state: 0, hyperparams: { lr: 0.2, opt: "sgd" } }],
        space: {
          lr: { type: "float", low: 0.001, high: 1 },
          opt: { type: "categorical", choices: ["sgd", "adam"] }
        } as PBT.Space,
        step: ({ state }: PBT.MemberView<number>) => Effect.sync(() => (calls++, state)),
        evaluate: () => Effect.sync(() => (calls++, 0)),
        maxSteps: 10
      }
      const bad = (patch: Record<string, unknown>) => PBT.run({ ...base, ...patch } as typeof base)
      expect(yield* fieldOf(bad({ quantile: 0.6 }))).toBe("quantile")
      expect(yield* fieldOf(bad({ quantile: -0.1 }))).toBe("quantile")
      expect(yield* fieldOf(bad({ interval: 0 }))).toBe("interval")
      expect(yield* fieldOf(bad({ interval: 2.5 }))).toBe("interval")
      expect(yield* fieldOf(bad({ maxSteps: 0 }))).toBe("maxSteps")
      expect(yield* fieldOf(bad({ maxSteps: undefined }))).toBe("maxSteps")
      expect(yield* fieldOf(bad({ factors: [] }))).toBe("factors")
      expect(yield* fieldOf(bad({ factors: [0.8, -1] }))).toBe("factors[1]")
      expect(yield* fieldOf(bad({ resampleProbability: 1.5 }))).toBe("resampleProbability")
      expect(yield* fieldOf(bad({ mode: "maximise" }))).toBe("mode")
      expect(yield* fieldOf(bad({ concurrency: 0 }))).toBe("concurrency")
      expect(yield* fieldOf(bad({ target: NaN }))).toBe("target")
      expect(yield* fieldOf(bad({ burnIn: -1 }))).toBe("burnIn")
      expect(yield* fieldOf(bad({ seed: 1.5 }))).toBe("seed")
      expect(yield* fieldOf(bad({ population: [] }))).toBe("population")
      expect(yield* fieldOf(bad({ population: 0 }))).toBe("population")
      expect(yield* fieldOf(bad({ population: 3 }))).toBe("init")
      expect(yield* fieldOf(bad({ step: undefined }))).toBe("step")
      expect(yield* fieldOf(bad({ checkpoint: (s: number) => Effect.succeed(s) }))).toBe("restore")
      expect(yield* fieldOf(bad({ restore: (s: number) => Effect.succeed(s) }))).toBe("checkpoint")
      expect(yield* fieldOf(bad({ space: { lr: { type: "float", low: 1, high: 0.5 } } }))).toBe("space.lr.high")
      expect(yield* fieldOf(bad({ space: { lr: { type: "float", low: 0, high: 1, log: true } } }))).toBe("space.lr.low")
      expect(yield* fieldOf(bad({ space: { lr: { type: "int", low: 0.5, high: 3 } } }))).toBe("space.lr.low")
      expect(yield* fieldOf(bad({ space: { lr: { type: "normal" } } }))).toBe("space.lr.type")
      expect(yield* fieldOf(bad({ space: { lr: { type: "categorical", choices: [] } } }))).toBe("space.lr.choices")
      expect(yield* fieldOf(bad({ space: { lr: { type: "categorical", choices: [1, 1] } } }))).toBe("space.lr.choices[1]")
      expect(
        yield* fieldOf(bad({ population: [{ state: 0, hyperparams: { lr: 0.1, opt: "adam" } }, { state: 0, hyperparams: { lr: 5, opt: "sgd" } }] }))
      ).toBe("population[1].hyperparams.lr")
      expect(yield* fieldOf(bad({ population: [{ state: 0, hyperparams: { lr: 0.1 } }] }))).toBe("population[0].hyperparams.opt")
      expect(yield* fieldOf(bad({ population: [{ state: 0, hyperparams: { lr: 0.1, opt: "rmsprop" } }] }))).toBe(
        "population[0].hyperparams.opt"
      )
      expect(calls).toBe(0)
      // and the valid base runs
      const ok = yield* PBT.run(base)
      expect(ok.steps).toBe(10)
      expect(calls).toBe(40)
    }))
})

describe("the example", () => {
  it.effect("runs", () =>
    Effect.gen(function*() {
      const result = yield* Example.program
      expect(result).toEqual({ reachedTarget: true, step: 138, copies: 34, bestH: [1, 1] })
    }))
})

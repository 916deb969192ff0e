import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Random, TestClock } from "effect"
import * as Example from "../../examples/multi-objective.js"
import { ValidationError } from "../../src/errors/FoundationError.js"
import * as MultiObjective from "../../src/ml/MultiObjective.js"
import { zdt1, zdt2 } from "../../src/ml/problems.js"

/** The field a failed effect's ValidationError names. */
const fieldOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.flip(effect), (e) => {
    expect(e).toBeInstanceOf(ValidationError)
    return (e as ValidationError).field
  })

const unit = (n: number) => Array.from({ length: n }, () => [0, 1] as const)

describe("dominates", () => {
  it("is strict Pareto dominance for minimisation", () => {
    expect(MultiObjective.dominates([1, 2], [2, 3])).toBe(true)
    expect(MultiObjective.dominates([1, 3], [2, 3])).toBe(true) // equal on one, better on the other
    expect(MultiObjective.dominates([1, 3], [1, 3])).toBe(false) // equal: no
    expect(MultiObjective.dominates([1, 4], [2, 3])).toBe(false) // a trade-off: neither
    expect(MultiObjective.dominates([2, 3], [1, 4])).toBe(false)
    expect(MultiObjective.dominates([2, 3], [1, 2])).toBe(false) // maximisation would say yes
    expect(MultiObjective.dominates([0, 0, 1], [0, 0, 2])).toBe(true)
  })
})

describe("nonDominatedSort", () => {
  it("peels exact fronts, ascending indices within each", () => {
    const points = [
      [4, 4], // 0: front 2 (dominated by 3, which is dominated by 1)
      [1, 3], // 1: front 0
      [3, 1], // 2: front 0
      [2, 3.5], // 3: front 1 (dominated by 1 only)
      [2, 2], // 4: front 0
      [5, 5], // 5: front 3
      [3, 1] // 6: duplicate of 2, also front 0 (neither dominates)
    ]
    expect(MultiObjective.nonDominatedSort(points)).toEqual([[1, 2, 4, 6], [3], [0], [5]])
  })

  it("puts a chain in one front each and a trade-off set in one front", () => {
    expect(MultiObjective.nonDominatedSort([[3, 3], [1, 1], [2, 2]])).toEqual([[1], [2], [0]])
    expect(MultiObjective.nonDominatedSort([[0, 3], [1, 2], [2, 1], [3, 0]])).toEqual([[0, 1, 2, 3]])
    expect(MultiObjective.nonDominatedSort([])).toEqual([])
  })

  it("matches the peel-by-definition on random sets (every index once, no dominance inside a front)", () => {
    let state = 7
    const next = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648
    for (let trial = 0; trial < 20; trial++) {
      const pts = Array.from({ length: 40 }, () => [Math.floor(next() * 6), Math.floor(next() * 6), Math.floor(next() * 6)])
      const fronts = MultiObjective.nonDominatedSort(pts)
      // reference: repeatedly remove the non-dominated set
      let rest = pts.map((_, i) => i)
      const expected: Array<Array<number>> = []
      while (rest.length > 0) {
        const front = rest.filter((i) => !rest.some((j) => MultiObjective.dominates(pts[j]!, pts[i]!)))
        expected.push(front)
        rest = rest.filter((i) => !front.includes(i))
      }
      expect(fronts).toEqual(expected)
    }
  })
})

describe("crowdingDistance", () => {
  it("is exact, with infinite boundaries and per-objective normalisation", () => {
    // Sorted by f1: A(0,4) B(1,3) C(3,1) D(4,0); ranges 4 and 4.
    // B: (3−0)/4 + (4−1)/4 = 1.5 ; C: (4−1)/4 + (3−0)/4 = 1.5
    expect(MultiObjective.crowdingDistance([[0, 4], [1, 3], [3, 1], [4, 0]])).toEqual([Infinity, 1.5, 1.5, Infinity])
    // Input order does not matter; uneven spacing: f1 range 10, f2 range 5.
    // (2,3): (5−0)/10 + (5−1)/5 = 1.3 ; (5,1): (10−2)/10 + (3−0)/5 = 1.4
    expect(MultiObjective.crowdingDistance([[5, 1], [10, 0], [0, 5], [2, 3]])).toEqual([1.4, Infinity, Infinity, 1.3])
  })

  it("gives fronts of one or two points infinite distances; a flat objective adds nothing", () => {
    expect(MultiObjective.crowdingDistance([[1, 1]])).toEqual([Infinity])
    expect(MultiObjective.crowdingDistance([[1, 2], [2, 1]])).toEqual([Infinity, Infinity])
    expect(MultiObjective.crowdingDistance([])).toEqual([])
    // f2 constant: only f1 counts for the interior point: (4 − 0)/4 = 1
    const d = MultiObjective.crowdingDistance([[0, 7], [1, 7], [4, 7]])
    expect(d[0]).toBe(Infinity)
    expect(d[2]).toBe(Infinity)
    expect(d[1]).toBe(1)
  })
})

describe("hypervolume2d", () => {
  it("is exact on small sets", () => {
    expect(MultiObjective.hypervolume2d([[1, 1]], [3, 3])).toBe(4)
    // staircase (1,3) (2,2) (3,1) vs (4,4): 3·1 + 2·1 + 1·1 ... = (4−1)(4−3) + (4−2)(3−2) + (4−3)(2−1) = 6
    expect(MultiObjective.hypervolume2d([[3, 1], [1, 3], [2, 2]], [4, 4])).toBe(6)
    // a dominated point and a duplicate change nothing
    expect(MultiObjective.hypervolume2d([[3, 1], [1, 3], [2, 2], [3, 3], [2, 2]], [4, 4])).toBe(6)
  })

  it("ignores points outside the reference box and handles the empty set", () => {
    expect(MultiObjective.hypervolume2d([], [1, 1])).toBe(0)
    expect(MultiObjective.hypervolume2d([[5, 0], [0, 5], [1, 1]], [2, 2])).toBe(1)
    expect(MultiObjective.hypervolume2d([[2, 0]], [2, 2])).toBe(0) // on the boundary: no area
  })
})

describe("problems", () => {
  it("ZDT1 and ZDT2 are zero-g on their fronts", () => {
    const onFront = [0.25, ...new Array<number>(29).fill(0)]
    expect(zdt1(onFront)).toEqual([0.25, 0.5])
    expect(zdt2(onFront)).toEqual([0.25, 1 - 0.0625])
    const off = new Array<number>(30).fill(1)
    expect(zdt1(off)).toEqual([1, 10 * (1 - Math.sqrt(0.1))]) // g = 10
  })
})

const zdt1Options = (generations: number, seed?: number): MultiObjective.Options => ({
  objectives: zdt1,
  bounds: unit(30),
  population: 100,
  generations,
  crossover: { eta: 15, probability: 0.9 },
  mutation: { eta: 20, probability: 1 / 30 },
  reference: [1.1, 1.1],
  ...(seed === undefined ? {} : { seed })
})

describe("optimize", () => {
  it.effect("ZDT1 (n = 30, population 100, 250 generations) reaches hypervolume ≥ 0.86 vs (1.1, 1.1)", () =>
    Effect.gen(function*() {
      const result = yield* MultiObjective.optimize(zdt1Options(250, 1))
      expect(result.hypervolume).toBeGreaterThanOrEqual(0.86)
      expect(result.hypervolume).toBeLessThanOrEqual(1.21 - 1 / 3) // cannot beat the true front
      expect(result.history).toHaveLength(251)
      expect(result.history[0]!.hypervolume!).toBeLessThan(0.5) // random start is far away
      expect(result.evaluations).toBe(100 * 251)
      // The front is non-dominated, in bounds, and sorted by the first objective.
      const objs = result.front.map((s) => s.objectives)
      for (const a of objs) for (const b of objs) expect(MultiObjective.dominates(a, b)).toBe(false)
      for (const s of result.front) for (const v of s.x) expect(v >= 0 && v <= 1).toBe(true)
      for (let i = 1; i < objs.length; i++) expect(objs[i]![0]!).toBeGreaterThanOrEqual(objs[i - 1]![0]!)
      expect(result.front.length).toBeGreaterThan(50) // spread by crowding, not collapsed
      // Elitism: the front's hypervolume never drops by more than crowding truncation can cost.
      for (let g = 1; g <= 250; g++) {
        expect(result.history[g]!.hypervolume!).toBeGreaterThan(result.history[g - 1]!.hypervolume! - 0.01)
      }
      expect(result.history[250]!.hypervolume).toBe(result.hypervolume)
    }))

  it.effect("is reproducible: the same seed gives the same front, another seed a different one", () =>
    Effect.gen(function*() {
      const a = yield* MultiObjective.optimize(zdt1Options(20, 7))
      const b = yield* MultiObjective.optimize(zdt1Options(20, 7))
      const c = yield* MultiObjective.optimize(zdt1Options(20, 8))
      expect(b.front).toEqual(a.front)
      expect(b.history).toEqual(a.history)
      expect(c.front).not.toEqual(a.front)
      // Without a seed, the ambient Random service decides: a seeded one reproduces too.
      const ambient = (seed: number) =>
        MultiObjective.optimize(zdt1Options(20)).pipe(Effect.withRandom(Random.make(seed)))
      expect((yield* ambient(3)).front).toEqual((yield* ambient(3)).front)
      expect((yield* ambient(3)).front).not.toEqual((yield* ambient(4)).front)
    }))

  it.effect("without a reference, reports front sizes only; accepts an Effect-returning objective", () =>
    Effect.gen(function*() {
      let calls = 0
      const result = yield* MultiObjective.optimize({
        objectives: (x) => Effect.sync(() => {
          calls++
          return [x[0]! ** 2, (x[0]! - 2) ** 2, Math.abs(x[1]!)]
        }),
        bounds: [[-5, 5], [-1, 1]],
        population: 20,
        generations: 30,
        seed: 1
      })
      expect(calls).toBe(20 * 31)
      expect(result.hypervolume).toBeUndefined()
      expect(result.history.every((h) => h.hypervolume === undefined && h.frontSize >= 1)).toBe(true)
      // Schaffer plus |y|: optimal x in [0, 2], y near 0.
      for (const s of result.front) {
        expect(s.x[0]!).toBeGreaterThan(-0.2)
        expect(s.x[0]!).toBeLessThan(2.2)
        expect(s.objectives).toHaveLength(3)
      }
    }))

  it.effect("passes an objective's own failure through", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(MultiObjective.optimize({
        objectives: () => Effect.fail("boom" as const),
        bounds: [[0, 1]],
        population: 4,
        generations: 1
      }))
      expect(error).toBe("boom")
    }))

  it.effect("rejects bad options with a ValidationError naming the field, before evaluating anything", () =>
    Effect.gen(function*() {
      let calls = 0
      const f = (x: ReadonlyArray<number>) => {
        calls++
        return [x[0]!, 1 - x[0]!]
      }
      const base = { objectives: f, bounds: [[0, 1]] as const, population: 4, generations: 1 }
      expect(yield* fieldOf(MultiObjective.optimize({ ...base, bounds: [] }))).toBe("bounds")
      expect(yield* fieldOf(MultiObjective.optimize({ ...base, bounds: [[1, 1]] }))).toBe("bounds[0]")
      expect(yield* fieldOf(MultiObjective.optimize({ ...base, bounds: [[0, 1], [2, 1]] }))).toBe("bounds[1]")
      expect(yield* fieldOf(MultiObjective.optimize({ ...base, bounds: [[0, NaN]] }))).toBe("bounds[0][1]")
      expect(yield* fieldOf(MultiObjective.optimize({ ...base, population: 5 }))).toBe("population")
      expect(yield* fieldOf(MultiObjective.optimize({ ...base, population: 2 }))).toBe("population")
      expect(yield* fieldOf(MultiObjective.optimize({ ...base, generations: -1 }))).toBe("generations")
      expect(yield* fieldOf(MultiObjective.optimize({ ...base, generations: 1.5 }))).toBe("generations")
      expect(yield* fieldOf(MultiObjective.optimize({ ...base, crossover: { eta: -1 } }))).toBe("crossover.eta")
      expect(yield* fieldOf(MultiObjective.optimize({ ...base, crossover: { probability: 1.5 } }))).toBe(
        "crossover.probability"
      )
      expect(yield* fieldOf(MultiObjective.optimize({ ...base, mutation: { eta: NaN } }))).toBe("mutation.eta")
      expect(yield* fieldOf(MultiObjective.optimize({ ...base, mutation: { probability: -0.1 } }))).toBe(
        "mutation.probability"
      )
      expect(yield* fieldOf(MultiObjective.optimize({ ...base, seed: 0.5 }))).toBe("seed")
      expect(calls).toBe(0)
      // Found on the first evaluations: a reference needs two objectives; values must be finite.
      expect(
        yield* fieldOf(MultiObjective.optimize({ ...base, objectives: (x) => [x[0]!], reference: [1, 1] }))
      ).toBe("reference")
      expect(yield* fieldOf(MultiObjective.optimize({ ...base, objectives: () => [NaN, 1] }))).toBe("objectives")
      expect(yield* fieldOf(MultiObjective.optimize({ ...base, objectives: () => [] }))).toBe("objectives")
      let k = 0
      expect(
        yield* fieldOf(MultiObjective.optimize({ ...base, objectives: () => (k++ === 0 ? [1, 2] : [1, 2, 3]) }))
      ).toBe("objectives")
    }))

  it.effect("yields between generations, so a long run can be interrupted", () =>
    Effect.gen(function*() {
      let evaluations = 0
      const fiber = yield* Effect.fork(MultiObjective.optimize({
        objectives: (x) => {
          evaluations++
          return [x[0]!, 1 - x[0]!]
        },
        bounds: [[0, 1]],
        population: 4,
        generations: 1_000_000
      }))
      yield* Effect.yieldNow()
      yield* Effect.yieldNow()
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      // Stopped within the first generations, not after a million of them.
      expect(evaluations).toBeGreaterThan(0)
      expect(evaluations).toBeLessThan(4 * 1_000)
      const after = evaluations
      yield* TestClock.adjust("1 second")
      yield* Effect.yieldNow()
      expect(evaluations).toBe(after) // nothing left running
    }))

  it.effect("the README example", () =>
    Effect.gen(function*() {
      expect(yield* Example.program).toEqual({ frontSize: 40, xRange: [0, 2], hypervolume: 13.16 })
    }))
})

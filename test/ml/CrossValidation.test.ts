import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, FastCheck as fc, Option, Random } from "effect"
import * as Example from "../../examples/cross-validation.js"
import { ValidationError } from "../../src/errors/FoundationError.js"
import * as CrossValidation from "../../src/ml/CrossValidation.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

/** The partition properties every split must have. */
const expectPartition = (folds: ReadonlyArray<CrossValidation.Fold>, n: number, k: number) => {
  expect(folds.length).toBe(k)
  const tested = folds.flatMap((f) => f.test).sort((a, b) => a - b)
  expect(tested).toEqual(range(n)) // every index in exactly one test fold
  for (const f of folds) {
    expect([...f.train, ...f.test].sort((a, b) => a - b)).toEqual(range(n))
    expect(f.train.filter((i) => f.test.includes(i))).toEqual([])
  }
  const sizes = folds.map((f) => f.test.length)
  expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1)
}

describe("CrossValidation.kFold", () => {
  it.effect("n = 10, k = 3: sizes 4, 3, 3, contiguous and deterministic without shuffle", () =>
    Effect.gen(function*() {
      const folds = yield* CrossValidation.kFold(10, { k: 3 })
      expect(folds.map((f) => f.test)).toEqual([[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]])
      expect(folds[1]!.train).toEqual([0, 1, 2, 3, 7, 8, 9])
      expect(yield* CrossValidation.kFold(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"], { k: 3 })).toEqual(folds)
    }))

  it.effect("a seed reproduces the shuffle; another seed gives another split", () =>
    Effect.gen(function*() {
      const a = yield* CrossValidation.kFold(30, { k: 5, shuffle: true, seed: 7 })
      const b = yield* CrossValidation.kFold(30, { k: 5, shuffle: true, seed: 7 })
      const c = yield* CrossValidation.kFold(30, { k: 5, shuffle: true, seed: 8 })
      expect(a).toEqual(b)
      expect(a).not.toEqual(c)
      expect(a).not.toEqual(yield* CrossValidation.kFold(30, { k: 5 })) // it really shuffled
      expectPartition(a, 30, 5)
    }))

  it.effect("without a seed the ambient Random decides (Effect.withRandom reproduces it)", () =>
    Effect.gen(function*() {
      const run = CrossValidation.kFold(20, { k: 4, shuffle: true })
      const a = yield* Effect.withRandom(run, Random.make("s"))
      const b = yield* Effect.withRandom(run, Random.make("s"))
      expect(a).toEqual(b)
      expect(a).toEqual(yield* CrossValidation.kFold(20, { k: 4, shuffle: true, seed: "s" }))
    }))

  it.prop(
    "partition properties for any n, k, seed, shuffle",
    {
      nk: fc.integer({ min: 2, max: 60 }).chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 2, max: n }))),
      shuffle: fc.boolean(),
      seed: fc.integer()
    },
    ({ nk: [n, k], seed, shuffle }) => {
      const folds = Effect.runSync(CrossValidation.kFold(n, { k, shuffle, seed }))
      expectPartition(folds, n, k)
      // The larger folds come first.
      const sizes = folds.map((f) => f.test.length)
      expect([...sizes].sort((a, b) => b - a)).toEqual(sizes)
    },
    { fastCheck: { numRuns: 200 } }
  )

  it.effect("rejects k < 2, k > n, a non-integer k and a negative n, naming the field", () =>
    Effect.gen(function*() {
      for (const [n, k] of [[10, 1], [3, 4], [10, 2.5]] as const) {
        const error = failureOf(yield* Effect.exit(CrossValidation.kFold(n, { k })))
        expect(error).toBeInstanceOf(ValidationError)
        expect(error?.field).toBe("k")
      }
      expect(failureOf(yield* Effect.exit(CrossValidation.kFold(-1, { k: 2 })))?.field).toBe("n")
    }))
})

describe("CrossValidation.stratifiedKFold", () => {
  it.prop(
    "every class is dealt ⌊c/k⌋ or ⌈c/k⌉ per fold, fold sizes within 1, seeded reproducible",
    {
      counts: fc.array(fc.integer({ min: 1, max: 15 }), { minLength: 1, maxLength: 4 }),
      k: fc.integer({ min: 2, max: 6 }),
      shuffle: fc.boolean(),
      seed: fc.integer(),
      order: fc.integer()
    },
    ({ counts, k, order, seed, shuffle }) => {
      const labels = counts.flatMap((c, cls) => Array.from({ length: c }, () => `c${cls}`))
      // Interleave the labels deterministically so classes are not contiguous.
      const mixed = Effect.runSync(Effect.withRandom(Random.shuffle(labels), Random.make(order)))
      const input = [...mixed]
      const exit = Effect.runSyncExit(CrossValidation.stratifiedKFold(input, { k, shuffle, seed }))
      if (k > Math.min(...counts)) {
        expect(failureOf(exit)?.field).toBe("k")
        return
      }
      const folds = Exit.isSuccess(exit) ? exit.value : []
      expectPartition(folds, input.length, k)
      counts.forEach((c, cls) => {
        for (const f of folds) {
          const inFold = f.test.filter((i) => input[i] === `c${cls}`).length
          expect(inFold).toBeGreaterThanOrEqual(Math.floor(c / k))
          expect(inFold).toBeLessThanOrEqual(Math.ceil(c / k))
        }
      })
      expect(Effect.runSync(CrossValidation.stratifiedKFold(input, { k, shuffle, seed }))).toEqual(folds)
    },
    { fastCheck: { numRuns: 200 } }
  )

  it.effect("k above the smallest class fails with a ValidationError on k", () =>
    Effect.gen(function*() {
      const error = failureOf(yield* Effect.exit(CrossValidation.stratifiedKFold(["a", "a", "a", "b", "b"], { k: 3 })))
      expect(error).toBeInstanceOf(ValidationError)
      expect(error?.field).toBe("k")
      expect(error?.reason).toContain("smallest class count (2)")
    }))

  it.effect("shuffle changes which members of a class go where, with a seed", () =>
    Effect.gen(function*() {
      const labels = range(40).map((i) => (i % 4 === 0 ? "rare" : "common"))
      const plain = yield* CrossValidation.stratifiedKFold(labels, { k: 5 })
      const seeded = yield* CrossValidation.stratifiedKFold(labels, { k: 5, shuffle: true, seed: 3 })
      expect(seeded).not.toEqual(plain)
      expect(seeded).toEqual(yield* CrossValidation.stratifiedKFold(labels, { k: 5, shuffle: true, seed: 3 }))
      for (const f of seeded) expect(f.test.filter((i) => labels[i] === "rare").length).toBe(2)
    }))
})

describe("CrossValidation.crossValidate", () => {
  it.effect("fits on train, scores on test, and reports per-fold scores, mean and population std", () =>
    Effect.gen(function*() {
      const seen: Array<{ train: ReadonlyArray<number>; test: ReadonlyArray<number> }> = []
      const result = yield* CrossValidation.crossValidate([10, 20, 30, 40], {
        k: 2,
        fit: (train) => Effect.succeed(train),
        score: (train, test) =>
          Effect.sync(() => {
            seen.push({ train, test })
            return test.reduce((a, b) => a + b, 0)
          })
      })
      expect(seen).toEqual([{ train: [30, 40], test: [10, 20] }, { train: [10, 20], test: [30, 40] }])
      expect(result.scores).toEqual([30, 70])
      expect(result.folds).toEqual([{ index: 0, testSize: 2, score: 30 }, { index: 1, testSize: 2, score: 70 }])
      expect(result.mean).toBe(50)
      expect(result.std).toBe(20)
    }))

  it.effect("stratifyBy balances the classes over the folds", () =>
    Effect.gen(function*() {
      const items = [..."aaaaaabbb"].map((label, id) => ({ id, label }))
      const result = yield* CrossValidation.crossValidate(items, {
        k: 3,
        stratifyBy: (item) => item.label,
        fit: () => Effect.void,
        score: (_, test) => Effect.succeed(test.filter((t) => t.label === "b").length)
      })
      expect(result.scores).toEqual([1, 1, 1]) // plain k-fold would give 0, 0, 3
    }))

  it.effect("a failing fit fails the run with its error; bad k fails before fit runs", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(CrossValidation.crossValidate([1, 2, 3], {
        k: 3,
        fit: (train) => train.includes(1) ? Effect.succeed(0) : Effect.fail("no one"),
        score: () => Effect.succeed(1)
      }))
      expect(failureOf(exit)).toBe("no one")
      let fits = 0
      const bad = yield* Effect.exit(CrossValidation.crossValidate([1, 2, 3], {
        k: 4,
        fit: () => Effect.sync(() => fits++),
        score: () => Effect.succeed(1)
      }))
      expect(failureOf(bad)).toBeInstanceOf(ValidationError)
      expect(fits).toBe(0)
    }))

  it.effect("the example", () =>
    Effect.gen(function*() {
      expect(yield* Example.program).toEqual({
        plainTests: [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]],
        shuffledTests: [[0, 1, 3, 7], [4, 8, 9], [2, 5, 6]],
        stratifiedTests: ["aab", "aab", "aab"],
        scores: [5, 2.5, 0.5, 2.5, 5],
        mean: 3.1,
        std: 1.715
      })
    }))
})

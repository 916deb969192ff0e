/**
 * K-fold and stratified k-fold splits, and cross-validation of a fit/score pair over them.
 *
 * Guarantees:
 * - every index `0..n-1` is in exactly one test fold, and a fold's train set is exactly the other
 *   indices (both sorted ascending);
 * - fold sizes differ by at most 1, the larger folds first (n = 10, k = 3 → 4, 3, 3);
 * - without `shuffle` the folds are contiguous and deterministic; with `shuffle` the permutation
 *   comes from Effect's `Random` service: `seed` pins it (`Random.make(seed)`), otherwise the
 *   ambient `Random` is used (so `Effect.withRandom` or `TestRandom` also reproduce it);
 * - stratified: for every class of size c, each fold holds ⌊c/k⌋ or ⌈c/k⌉ of its members (so its
 *   share of the class is within ±1 of the overall c/k), and fold sizes still differ by at most 1;
 * - bad options (k < 2, k > n, k above the smallest class for stratified) fail with a
 *   `ValidationError` naming the field, before anything runs.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Equal from "effect/Equal"
import * as Random from "effect/Random"
import { ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"

/** One fold: the indices to test on and the indices to train on. */
export interface Fold {
  /** 0-based position of the fold. */
  readonly index: number
  readonly train: ReadonlyArray<number>
  readonly test: ReadonlyArray<number>
}

/** Options shared by `kFold` and `stratifiedKFold`. */
export interface SplitOptions {
  /** Number of folds, an integer with 2 ≤ k ≤ n. */
  readonly k: number
  /** Shuffle the indices before cutting (default false: contiguous folds). */
  readonly shuffle?: boolean
  /** Seed of the shuffle; without it the ambient `Random` service is used. */
  readonly seed?: number | string
}

/** A label of `stratifiedKFold`: classes are compared with `Equal.equals`. */
export type Label = string | number | boolean | bigint

const validateK = (k: number, n: number): Either.Either<number, ValidationError> =>
  Either.flatMap(Validation.int("k", k, { min: 2 }), (k) =>
    k > n ? Validation.invalid("k", `must be ≤ the number of items (${n}), got ${k}`) : Either.right(k))

const withSeed = <A, E, R>(effect: Effect.Effect<A, E, R>, seed: number | string | undefined) =>
  seed === undefined ? effect : Effect.withRandom(effect, Random.make(seed))

const permutation = (
  indices: ReadonlyArray<number>,
  shuffle: boolean
): Effect.Effect<ReadonlyArray<number>> =>
  shuffle ? Effect.map(Random.shuffle(indices), Chunk.toReadonlyArray) : Effect.succeed(indices)

const range = (n: number): ReadonlyArray<number> => Array.from({ length: n }, (_, i) => i)

/** Builds folds from a fold assignment (`foldOf[i]` = the fold testing index i). */
const foldsFrom = (foldOf: ReadonlyArray<number>, k: number): ReadonlyArray<Fold> => {
  const tests: Array<Array<number>> = Array.from({ length: k }, () => [])
  const trains: Array<Array<number>> = Array.from({ length: k }, () => [])
  foldOf.forEach((f, i) => {
    for (let g = 0; g < k; g++) (g === f ? tests : trains)[g]!.push(i)
  })
  return tests.map((test, index) => ({ index, test, train: trains[index]! }))
}

/**
 * K-fold split of `n` items (or of an array's indices). Folds are cut contiguously from the
 * (optionally shuffled) index order; the first `n mod k` folds get one extra index.
 */
export const kFold = (
  items: number | ReadonlyArray<unknown>,
  options: SplitOptions
): Effect.Effect<ReadonlyArray<Fold>, ValidationError> =>
  Effect.gen(function*() {
    const n = typeof items === "number" ? yield* Validation.nonNegativeInt("n", items) : items.length
    const k = yield* validateK(options.k, n)
    const order = yield* withSeed(permutation(range(n), options.shuffle === true), options.seed)
    const base = Math.floor(n / k)
    const extra = n % k
    const foldOf = new Array<number>(n)
    let position = 0
    for (let f = 0; f < k; f++) {
      const size = base + (f < extra ? 1 : 0)
      for (let j = 0; j < size; j++) foldOf[order[position++]!] = f
    }
    return foldsFrom(foldOf, k)
  })

/**
 * Stratified k-fold split: the members of each class (in order of first appearance, shuffled
 * within the class when `shuffle` is set) are dealt round-robin over the folds, continuing from
 * class to class, so that each class and the fold sizes are both balanced.
 */
export const stratifiedKFold = (
  labels: ReadonlyArray<Label>,
  options: SplitOptions
): Effect.Effect<ReadonlyArray<Fold>, ValidationError> =>
  Effect.gen(function*() {
    const n = labels.length
    const k = yield* validateK(options.k, n)
    const classes: Array<{ readonly label: Label; readonly members: Array<number> }> = []
    labels.forEach((label, i) => {
      const cls = classes.find((c) => Equal.equals(c.label, label))
      if (cls === undefined) classes.push({ label, members: [i] })
      else cls.members.push(i)
    })
    const smallest = classes.reduce((min, c) => Math.min(min, c.members.length), Infinity)
    if (k > smallest) {
      return yield* Validation.invalid("k", `must be ≤ the smallest class count (${smallest}), got ${k}`)
    }
    const shuffle = options.shuffle === true
    const ordered = yield* withSeed(Effect.forEach(classes, (c) => permutation(c.members, shuffle)), options.seed)
    const foldOf = new Array<number>(n)
    let position = 0
    for (const members of ordered) for (const i of members) foldOf[i] = position++ % k
    return foldsFrom(foldOf, k)
  })

/** Options of `crossValidate`. */
export interface CrossValidateOptions<T, M, E1, R1, E2, R2> extends SplitOptions {
  /** Trains a model on the training items of one fold. */
  readonly fit: (train: ReadonlyArray<T>) => Effect.Effect<M, E1, R1>
  /** Scores a model on the test items of its fold. */
  readonly score: (model: M, test: ReadonlyArray<T>) => Effect.Effect<number, E2, R2>
  /** When given, folds are stratified by this label. */
  readonly stratifyBy?: (item: T) => Label
  /** How many folds run at once (default 1: one after the other). */
  readonly concurrency?: number | "unbounded"
}

/** The outcome of `crossValidate`. */
export interface CrossValidationResult {
  readonly folds: ReadonlyArray<{ readonly index: number; readonly testSize: number; readonly score: number }>
  /** The per-fold scores, in fold order. */
  readonly scores: ReadonlyArray<number>
  readonly mean: number
  /** Population standard deviation of the scores (divides by k, as numpy/scikit-learn do). */
  readonly std: number
}

/**
 * Splits `items` into k folds, fits on each train set and scores on its test set. The first
 * failure of `fit` or `score` fails the whole run (the other folds are interrupted).
 */
export const crossValidate = <T, M, E1, R1, E2, R2>(
  items: ReadonlyArray<T>,
  options: CrossValidateOptions<T, M, E1, R1, E2, R2>
): Effect.Effect<CrossValidationResult, ValidationError | E1 | E2, R1 | R2> =>
  Effect.gen(function*() {
    const concurrency = options.concurrency === undefined || options.concurrency === "unbounded"
      ? options.concurrency ?? 1
      : yield* Validation.positiveInt("concurrency", options.concurrency)
    const split: SplitOptions = {
      k: options.k,
      ...(options.shuffle === undefined ? {} : { shuffle: options.shuffle }),
      ...(options.seed === undefined ? {} : { seed: options.seed })
    }
    const stratifyBy = options.stratifyBy
    const folds = stratifyBy === undefined ? yield* kFold(items, split) : yield* stratifiedKFold(items.map(stratifyBy), split)
    const pick = (indices: ReadonlyArray<number>) => indices.map((i) => items[i]!)
    const scored = yield* Effect.forEach(folds, (fold) =>
      Effect.gen(function*() {
        const test = pick(fold.test)
        const model = yield* options.fit(pick(fold.train))
        const score = yield* options.score(model, test)
        return { index: fold.index, testSize: test.length, score }
      }), { concurrency })
    const scores = scored.map((f) => f.score)
    const mean = scores.reduce((a, b) => a + b, 0) / scores.length
    const std = Math.sqrt(scores.reduce((a, s) => a + (s - mean) ** 2, 0) / scores.length)
    return { folds: scored, scores, mean, std }
  }).pipe(Effect.withSpan("foundation.ml.crossValidate"))

// examples/cross-validation.ts — k-fold splits, stratified splits and a seeded cross-validation
import { Effect } from "effect"
import { CrossValidation } from "effect-foundation"

const round = (x: number) => Math.round(x * 1000) / 1000

export const program = Effect.gen(function*() {
  // 10 items, 3 folds: sizes 4, 3, 3; without shuffle the folds are contiguous.
  const plain = yield* CrossValidation.kFold(10, { k: 3 })
  // The same split, shuffled with a seed: the same seed always gives the same folds.
  const shuffled = yield* CrossValidation.kFold(10, { k: 3, shuffle: true, seed: 42 })
  // Stratified: 6 "a" and 3 "b" over 3 folds → every fold holds 2 "a" and 1 "b".
  const labels = ["a", "a", "a", "a", "a", "a", "b", "b", "b"]
  const stratified = yield* CrossValidation.stratifiedKFold(labels, { k: 3 })
  // Cross-validate a model that predicts the mean of its training values, scored by mean absolute error.
  const values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
  const cv = yield* CrossValidation.crossValidate(values, {
    k: 5,
    fit: (train) => Effect.succeed(train.reduce((a, b) => a + b, 0) / train.length),
    score: (mean, test) => Effect.succeed(test.reduce((s, x) => s + Math.abs(x - mean), 0) / test.length)
  })
  return {
    plainTests: plain.map((f) => f.test),
    shuffledTests: shuffled.map((f) => f.test),
    stratifiedTests: stratified.map((f) => f.test.map((i) => labels[i]).join("")),
    scores: cv.scores.map(round),
    mean: round(cv.mean),
    std: round(cv.std)
  }
})

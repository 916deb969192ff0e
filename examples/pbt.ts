// examples/pbt.ts — population-based training on the toy of Jaderberg et al. (2017)
import { Effect } from "effect"
import { PBT } from "effect-foundation"

// θ starts at [0.9, 0.9]; the true objective is Q(θ) = 1.2 − (θ0² + θ1²). Each member can only
// climb a surrogate weighted by its hyperparameters: Q̂(θ|h) = 1.2 − (h0·θ0² + h1·θ1²).
const Q = (theta: ReadonlyArray<number>) => 1.2 - (theta[0]! ** 2 + theta[1]! ** 2)
const eta = 0.01 // learning rate

export const program = Effect.gen(function*() {
  const result = yield* PBT.run({
    population: [
      { state: [0.9, 0.9], hyperparams: { h0: 1, h1: 0 } }, // alone, it never gets past Q = 0.39
      { state: [0.9, 0.9], hyperparams: { h0: 0, h1: 1 } } // nor does this one
    ],
    space: { h0: { type: "float", low: 0, high: 1 }, h1: { type: "float", low: 0, high: 1 } },
    // One gradient-ascent step on the surrogate: θi ← θi + η·∂Q̂/∂θi = θi·(1 − 2η·hi).
    step: ({ hyperparams: h, state: theta }) =>
      Effect.succeed([theta[0]! * (1 - 2 * eta * Number(h.h0)), theta[1]! * (1 - 2 * eta * Number(h.h1))]),
    evaluate: ({ state }) => Effect.succeed(Q(state)), // members are ranked on the true objective
    interval: 4, // every 4 steps the worse member copies the better one's θ and explores its h
    maxSteps: 1000,
    target: 1.19,
    seed: 42 // the same seed gives the same run, whatever the concurrency
  })
  return {
    reachedTarget: result.reachedTarget,
    step: result.targetStep,
    copies: result.lineage.length,
    bestH: Object.values(result.best.hyperparams).map((h) => Number(Number(h).toFixed(2)))
  }
})

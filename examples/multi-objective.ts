// examples/multi-objective.ts — NSGA-II: the trade-off curve of two competing objectives
import { Effect } from "effect"
import { MultiObjective } from "effect-foundation"

// Schaffer N.1: minimise x² and (x − 2)² at once; every x in [0, 2] is a best compromise.
export const program = Effect.gen(function*() {
  const result = yield* MultiObjective.optimize({
    objectives: (x) => [x[0]! ** 2, (x[0]! - 2) ** 2],
    bounds: [[-10, 10]],
    population: 40,
    generations: 60,
    reference: [4, 4], // the hypervolume of the true front against (4, 4) is 16 − 8/3 ≈ 13.33
    seed: 42 // the same seed gives the same front
  })
  const xs = result.front.map((s) => s.x[0]!)
  return {
    frontSize: result.front.length,
    xRange: [Math.min(...xs), Math.max(...xs)].map((x) => Number(x.toFixed(2))),
    hypervolume: Number((result.hypervolume ?? 0).toFixed(2))
  }
})

/**
 * Machine-learning quality bars. NSGA-II on ZDT1 (30 variables, population 100, 250 generations,
 * SBX η = 15 p = 0.9, polynomial mutation η = 20 p = 1/30), hypervolume of the final front against
 * (1.1, 1.1) over several seeds (the true front's is 1.21 − 1/3 ≈ 0.8767).
 *
 * Target: hypervolume ≥ 0.86 for every seed.
 */
import * as Effect from "effect/Effect"
import * as MultiObjective from "../src/ml/MultiObjective.js"
import { zdt1 } from "../src/ml/problems.js"

export interface MlReport {
  readonly generations: number
  readonly population: number
  readonly seeds: ReadonlyArray<number>
  /** Hypervolume per seed, in the order of `seeds`. */
  readonly hypervolumes: ReadonlyArray<number>
  readonly minHypervolume: number
  /** Mean wall time of one run, in seconds. */
  readonly secondsPerRun: number
}

export const GENERATIONS = 250
export const POPULATION = 100
export const SEEDS: ReadonlyArray<number> = [1, 2, 3, 4, 5]

export const run: Effect.Effect<MlReport> = Effect.gen(function*() {
  const hypervolumes: Array<number> = []
  const start = performance.now()
  for (const seed of SEEDS) {
    const result = yield* MultiObjective.optimize({
      objectives: zdt1,
      bounds: Array.from({ length: 30 }, () => [0, 1] as const),
      population: POPULATION,
      generations: GENERATIONS,
      crossover: { eta: 15, probability: 0.9 },
      mutation: { eta: 20, probability: 1 / 30 },
      reference: [1.1, 1.1],
      seed
    }).pipe(Effect.orDie)
    hypervolumes.push(result.hypervolume ?? 0)
  }
  const secondsPerRun = (performance.now() - start) / 1000 / SEEDS.length
  return {
    generations: GENERATIONS,
    population: POPULATION,
    seeds: SEEDS,
    hypervolumes,
    minHypervolume: Math.min(...hypervolumes),
    secondsPerRun
  }
})

export const markdown = (r: MlReport): string => `## ML

| | figure | target |
|---|---|---|
| NSGA-II on ZDT1 (n = 30, population ${r.population}, ${r.generations} generations), hypervolume vs (1.1, 1.1), worst of seeds ${r.seeds.join(", ")} | ${r.minHypervolume.toFixed(4)} (all: ${r.hypervolumes.map((h) => h.toFixed(4)).join(", ")}) | ≥ 0.86 |
| time per run | ${(r.secondsPerRun * 1000).toFixed(0)} ms | |
`


/**
 * Machine-learning quality bars and orchestration overhead.
 *
 * - NSGA-II on ZDT1 (30 variables, population 100, 250 generations, SBX η = 15 p = 0.9,
 *   polynomial mutation η = 20 p = 1/30), hypervolume of the final front against (1.1, 1.1) over
 *   several seeds (the true front's is 1.21 − 1/3 ≈ 0.8767). Target ≥ 0.86 for every seed.
 * - Study overhead: `optimize` with a no-op objective at concurrency 8 (random and TPE samplers,
 *   memory storage), per trial, beside a bare `Effect.forEach` of the same no-op at the same
 *   concurrency. Target ≤ 1 ms per trial.
 * - Branin: best value after 100 trials, median over 20 seeds, TPE (joint and per-parameter)
 *   against random search. Target: TPE < random and < 0.45.
 * - PBT on the toy of Jaderberg et al.: steps to Q ≥ 1.19 over 20 seeds, against the fixed members.
 * - FedAvg, one local epoch of full-batch GD, against centralized GD on the pooled data: largest
 *   parameter difference after 50 rounds. Target ≤ 1e-9.
 */
import * as Effect from "effect/Effect"
import * as Federated from "../src/ml/Federated.js"
import * as MultiObjective from "../src/ml/MultiObjective.js"
import * as PBT from "../src/ml/PBT.js"
import { branin, zdt1 } from "../src/ml/problems.js"
import * as Study from "../src/ml/Study.js"

export interface MlReport {
  readonly generations: number
  readonly population: number
  readonly seeds: ReadonlyArray<number>
  /** Hypervolume per seed, in the order of `seeds`. */
  readonly hypervolumes: ReadonlyArray<number>
  readonly minHypervolume: number
  /** Mean wall time of one run, in seconds. */
  readonly secondsPerRun: number
  readonly study: StudyReport
}

export interface StudyReport {
  readonly overheadTrials: number
  /** Microseconds per trial of `optimize` with a no-op objective, concurrency 8. */
  readonly randomOverheadUs: number
  readonly tpeTrials: number
  readonly tpeOverheadUs: number
  /** The same no-op through a bare `Effect.forEach` at concurrency 8. */
  readonly bareUs: number
  readonly braninTpe: number
  readonly braninTpeUnivariate: number
  readonly braninRandom: number
  readonly pbtMedianSteps: number
  readonly pbtMaxSteps: number
  readonly pbtFixedReached: boolean
  readonly fedAvgMaxError: number
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
  const study = yield* studyBench
  return {
    study,
    generations: GENERATIONS,
    population: POPULATION,
    seeds: SEEDS,
    hypervolumes,
    minHypervolume: Math.min(...hypervolumes),
    secondsPerRun
  }
})

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

const space2 = { x: Study.float(0, 1), y: Study.float(0, 1) }

/** Microseconds per trial of `optimize` with a no-op objective. */
const overhead = (sampler: Study.Sampler, trials: number) =>
  Effect.gen(function*() {
    const study = yield* Study.make({ space: space2, sampler, seed: 1 })
    const t0 = performance.now()
    yield* study.optimize(() => Effect.succeed(0), { trials, concurrency: 8 })
    return ((performance.now() - t0) * 1000) / trials
  }).pipe(Effect.orDie)

const braninMedian = (sampler: () => Study.Sampler) =>
  Effect.map(
    Effect.forEach(Array.from({ length: 20 }, (_, i) => i + 1), (seed) =>
      Effect.gen(function*() {
        const study = yield* Study.make({ space: { x: Study.float(-5, 10), y: Study.float(0, 15) }, sampler: sampler(), seed })
        const summary = yield* study.optimize((t) => Effect.succeed(branin(t.params.x, t.params.y)), { trials: 100 })
        return summary.best!.value!
      }).pipe(Effect.orDie)),
    median
  )

/** Centralized GD vs FedAvg (one full-batch step per client per round) on y = 2x + 1. */
const fedAvgError = Effect.gen(function*() {
  const slices = [[-2, -1, 10], [-1, 0, 20], [0, 1, 30], [1, 2, 40]].map(([lo, hi, n]) =>
    Array.from({ length: n! }, (_, i) => lo! + ((hi! - lo!) * i) / n!))
  const lr = 0.1
  const gradient = (w: ArrayLike<number>, xs: ReadonlyArray<number>) => {
    let gw = 0
    let gb = 0
    for (const x of xs) {
      const err = w[0]! * x + w[1]! - (2 * x + 1)
      gw += (err * x) / xs.length
      gb += err / xs.length
    }
    return [gw, gb]
  }
  const clients: Array<Federated.Client> = slices.map((xs, k) => ({
    id: `c${k}`,
    fit: (w) =>
      Effect.sync(() => {
        const g = gradient(w, xs)
        return { params: [w[0]! - lr * g[0]!, w[1]! - lr * g[1]!], numExamples: xs.length }
      })
  }))
  const rounds = 50
  const result = yield* Federated.run({ initial: [0, 0], clients, rounds, seed: 1 }).pipe(Effect.orDie)
  const pooled = slices.flat()
  let w = [0, 0]
  for (let r = 0; r < rounds; r++) {
    const g = gradient(w, pooled)
    w = [w[0]! - lr * g[0]!, w[1]! - lr * g[1]!]
  }
  return Math.max(Math.abs(result.params[0]! - w[0]!), Math.abs(result.params[1]! - w[1]!))
})

const pbtSteps = Effect.gen(function*() {
  const steps: Array<number> = []
  for (let seed = 0; seed < 20; seed++) {
    const result = yield* PBT.run({ ...PBT.toy(), interval: 4, maxSteps: 2000, target: 1.19, seed }).pipe(Effect.orDie)
    steps.push(result.targetStep ?? Infinity)
  }
  const fixed = yield* PBT.run({ ...PBT.toy(), interval: Infinity, maxSteps: 2000, target: 1.19, seed: 0 }).pipe(Effect.orDie)
  return { median: median(steps), max: Math.max(...steps), fixedReached: fixed.reachedTarget }
})

const studyBench: Effect.Effect<StudyReport> = Effect.gen(function*() {
  const overheadTrials = 20_000
  const tpeTrials = 1_000
  yield* overhead(Study.random(), 2_000) // warm-up
  const randomOverheadUs = yield* overhead(Study.random(), overheadTrials)
  const tpeOverheadUs = yield* overhead(Study.tpe(), tpeTrials)
  const t0 = performance.now()
  yield* Effect.forEach(Array.from({ length: overheadTrials }), () => Effect.succeed(0), { concurrency: 8, discard: true })
  const bareUs = ((performance.now() - t0) * 1000) / overheadTrials
  const braninTpe = yield* braninMedian(() => Study.tpe())
  const braninTpeUnivariate = yield* braninMedian(() => Study.tpe({ multivariate: false }))
  const braninRandom = yield* braninMedian(() => Study.random())
  const pbt = yield* pbtSteps
  const fedAvgMaxError = yield* fedAvgError
  return {
    overheadTrials,
    randomOverheadUs,
    tpeTrials,
    tpeOverheadUs,
    bareUs,
    braninTpe,
    braninTpeUnivariate,
    braninRandom,
    pbtMedianSteps: pbt.median,
    pbtMaxSteps: pbt.max,
    pbtFixedReached: pbt.fixedReached,
    fedAvgMaxError
  }
})

export const markdown = (r: MlReport): string => `## ML

| | figure | target |
|---|---|---|
| NSGA-II on ZDT1 (n = 30, population ${r.population}, ${r.generations} generations), hypervolume vs (1.1, 1.1), worst of seeds ${r.seeds.join(", ")} | ${r.minHypervolume.toFixed(4)} (all: ${r.hypervolumes.map((h) => h.toFixed(4)).join(", ")}) | ≥ 0.86 |
| time per run | ${(r.secondsPerRun * 1000).toFixed(0)} ms | |
| Study overhead per trial, no-op objective, concurrency 8, random sampler (${r.study.overheadTrials} trials) | ${r.study.randomOverheadUs.toFixed(1)} µs (${(r.study.randomOverheadUs / r.study.bareUs).toFixed(0)}× a bare \`Effect.forEach\` step, ${r.study.bareUs.toFixed(2)} µs) | ≤ 1 ms |
| the same with TPE (${r.study.tpeTrials} trials; its model grows with the history) | ${r.study.tpeOverheadUs.toFixed(1)} µs | ≤ 1 ms |
| Branin, best after 100 trials, median of 20 seeds: TPE (joint) / TPE (per parameter) / random | ${r.study.braninTpe.toFixed(3)} / ${r.study.braninTpeUnivariate.toFixed(3)} / ${r.study.braninRandom.toFixed(3)} (minimum 0.398) | TPE < random, < 0.45 |
| PBT toy (Jaderberg et al.), steps to Q ≥ 1.19 over 20 seeds: median / worst | ${r.study.pbtMedianSteps} / ${r.study.pbtMaxSteps} (fixed members: ${r.study.pbtFixedReached ? "reach it" : "never"}) | fewer than the fixed members |
| FedAvg (1 local epoch, full batch) vs centralized GD, largest difference after 50 rounds | ${r.study.fedAvgMaxError.toExponential(1)} | ≤ 1e-9 |
`


/**
 * Multi-objective optimisation with NSGA-II (Deb et al. 2002), minimising every objective.
 *
 * Guarantees:
 * - The building blocks are pure, exported and exact: `dominates` (Pareto dominance for
 *   minimisation), `nonDominatedSort` (fast non-dominated sort, O(M·N²), fronts of indices in
 *   ascending index order), `crowdingDistance` (boundary points infinite, each objective
 *   normalised by its range in the front) and `hypervolume2d` (exact area dominated by a 2-D
 *   set up to a reference point).
 * - `optimize` runs the real algorithm: binary tournament on (rank, crowding), SBX crossover
 *   and polynomial mutation (the bounded variants of Deb's reference code), elitist
 *   (μ + λ) survival by front then crowding distance. It returns the final non-dominated front
 *   (not the whole population, unlike the original's stub) and a per-generation history.
 * - Reproducible from a seed: every random choice comes from Effect's `Random` service. For
 *   speed, each generation draws two integers from `Random` to seed a `PCGRandom` that then
 *   drives that generation's choices synchronously; so `Effect.withRandom(Random.make(seed))`
 *   (or the `seed` option) reproduces a run exactly.
 * - Options are validated at the boundary (`ValidationError` naming the field); nothing runs on
 *   bad input. Between generations the fiber yields, so a run is interruptible and fair.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Random from "effect/Random"
import { ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import { generator } from "./internal/random.js"

// ---------------------------------------------------------------------------------------------
// Pure building blocks
// ---------------------------------------------------------------------------------------------

/** True when `a` Pareto-dominates `b` (minimisation): no worse on every objective, better on one. */
export const dominates = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): boolean => {
  let better = false
  const m = Math.min(a.length, b.length)
  for (let k = 0; k < m; k++) {
    const x = a[k]!
    const y = b[k]!
    if (x > y) return false
    if (x < y) better = true
  }
  return better
}

/**
 * Fast non-dominated sort: the fronts (lists of indices into `objectives`), best first. Front 0
 * is the non-dominated set; front k is non-dominated once fronts 0…k−1 are removed. Every index
 * appears in exactly one front; within a front, indices are in ascending order.
 */
export const nonDominatedSort = (
  objectives: ReadonlyArray<ReadonlyArray<number>>
): Array<Array<number>> => {
  const n = objectives.length
  const dominatedBy: Array<Array<number>> = Array.from({ length: n }, () => [])
  const dominationCount = new Array<number>(n).fill(0)
  const fronts: Array<Array<number>> = []
  let current: Array<number> = []
  for (let p = 0; p < n; p++) {
    for (let q = p + 1; q < n; q++) {
      if (dominates(objectives[p]!, objectives[q]!)) {
        dominatedBy[p]!.push(q)
        dominationCount[q]!++
      } else if (dominates(objectives[q]!, objectives[p]!)) {
        dominatedBy[q]!.push(p)
        dominationCount[p]!++
      }
    }
  }
  for (let p = 0; p < n; p++) if (dominationCount[p] === 0) current.push(p)
  while (current.length > 0) {
    fronts.push(current)
    const next: Array<number> = []
    for (const p of current) {
      for (const q of dominatedBy[p]!) {
        if (--dominationCount[q]! === 0) next.push(q)
      }
    }
    next.sort((a, b) => a - b)
    current = next
  }
  return fronts
}

/**
 * Crowding distance of each point of one front (the objective vectors of its members, in any
 * order): for each objective, the two extreme points get `Infinity` and every other point adds
 * the gap between its neighbours divided by the objective's range in the front. An objective
 * with a zero range adds nothing to interior points. Fronts of one or two points are all
 * `Infinity`.
 */
export const crowdingDistance = (front: ReadonlyArray<ReadonlyArray<number>>): Array<number> => {
  const n = front.length
  const distance = new Array<number>(n).fill(0)
  if (n <= 2) return distance.fill(Infinity)
  const m = front[0]!.length
  const order = Array.from({ length: n }, (_, i) => i)
  for (let k = 0; k < m; k++) {
    // Ties broken by index so the result does not depend on the sort's stability.
    order.sort((a, b) => front[a]![k]! - front[b]![k]! || a - b)
    const min = front[order[0]!]![k]!
    const max = front[order[n - 1]!]![k]!
    distance[order[0]!] = Infinity
    distance[order[n - 1]!] = Infinity
    const range = max - min
    if (range <= 0) continue
    for (let i = 1; i < n - 1; i++) {
      distance[order[i]!]! += (front[order[i + 1]!]![k]! - front[order[i - 1]!]![k]!) / range
    }
  }
  return distance
}

/**
 * The hypervolume (area) dominated by a set of 2-D points (minimisation) and bounded by
 * `reference`: the area of the union of the boxes [p₁, r₁] × [p₂, r₂]. Points that do not
 * strictly dominate the reference on both objectives contribute nothing; dominated points and
 * duplicates are harmless. Exact, O(n log n).
 */
export const hypervolume2d = (
  points: ReadonlyArray<ReadonlyArray<number>>,
  reference: readonly [number, number]
): number => {
  const [r1, r2] = reference
  const inside = points.filter((p) => p[0]! < r1 && p[1]! < r2)
  inside.sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!)
  let area = 0
  let ceiling = r2
  for (const p of inside) {
    if (p[1]! < ceiling) {
      area += (r1 - p[0]!) * (ceiling - p[1]!)
      ceiling = p[1]!
    }
  }
  return area
}

// ---------------------------------------------------------------------------------------------
// Variation operators (bounded SBX and polynomial mutation, as in Deb's NSGA-II code)
// ---------------------------------------------------------------------------------------------

/** A uniform draw in [0, 1) from the generation's generator. */
type Uniform = () => number

const clamp = (v: number, lo: number, hi: number): number => v < lo ? lo : v > hi ? hi : v

/** Simulated binary crossover of two parents into two children (in place on copies). */
const sbx = (
  p1: ReadonlyArray<number>,
  p2: ReadonlyArray<number>,
  bounds: ReadonlyArray<readonly [number, number]>,
  eta: number,
  probability: number,
  u: Uniform
): [Array<number>, Array<number>] => {
  const c1 = p1.slice()
  const c2 = p2.slice()
  if (u() >= probability) return [c1, c2]
  const exponent = 1 / (eta + 1)
  for (let i = 0; i < c1.length; i++) {
    if (u() >= 0.5) continue
    const a = p1[i]!
    const b = p2[i]!
    if (Math.abs(a - b) <= 1e-14) continue
    const [lo, hi] = bounds[i]!
    const y1 = Math.min(a, b)
    const y2 = Math.max(a, b)
    const rand = u()
    const spread = (beta: number): number => {
      const alpha = 2 - beta ** -(eta + 1)
      return rand <= 1 / alpha ? (rand * alpha) ** exponent : (1 / (2 - rand * alpha)) ** exponent
    }
    const low = clamp(0.5 * (y1 + y2 - spread(1 + (2 * (y1 - lo)) / (y2 - y1)) * (y2 - y1)), lo, hi)
    const high = clamp(0.5 * (y1 + y2 + spread(1 + (2 * (hi - y2)) / (y2 - y1)) * (y2 - y1)), lo, hi)
    if (u() < 0.5) {
      c1[i] = high
      c2[i] = low
    } else {
      c1[i] = low
      c2[i] = high
    }
  }
  return [c1, c2]
}

/** Polynomial mutation, each variable with `probability` (in place). */
const mutate = (
  x: Array<number>,
  bounds: ReadonlyArray<readonly [number, number]>,
  eta: number,
  probability: number,
  u: Uniform
): void => {
  const power = 1 / (eta + 1)
  for (let i = 0; i < x.length; i++) {
    if (u() >= probability) continue
    const [lo, hi] = bounds[i]!
    const width = hi - lo
    const y = x[i]!
    const rand = u()
    let deltaq: number
    if (rand < 0.5) {
      const xy = 1 - (y - lo) / width
      deltaq = (2 * rand + (1 - 2 * rand) * xy ** (eta + 1)) ** power - 1
    } else {
      const xy = 1 - (hi - y) / width
      deltaq = 1 - (2 * (1 - rand) + 2 * (rand - 0.5) * xy ** (eta + 1)) ** power
    }
    x[i] = clamp(y + deltaq * width, lo, hi)
  }
}

// ---------------------------------------------------------------------------------------------
// The optimiser
// ---------------------------------------------------------------------------------------------

/** A decision vector with its objective values. */
export interface Solution {
  readonly x: ReadonlyArray<number>
  readonly objectives: ReadonlyArray<number>
}

/** One generation's record (generation 0 is the initial population). */
export interface GenerationRecord {
  readonly generation: number
  /** Size of the population's non-dominated front. */
  readonly frontSize: number
  /** Hypervolume of that front (only with two objectives and a `reference`). */
  readonly hypervolume?: number
}

/** Options of `optimize`. */
export interface Options<E = never, R = never> {
  /**
   * The objectives to minimise, as one function returning the vector of objective values (the
   * same length for every call). It may return an `Effect` (evaluated one at a time, in order).
   */
  readonly objectives: (
    x: ReadonlyArray<number>
  ) => ReadonlyArray<number> | Effect.Effect<ReadonlyArray<number>, E, R>
  /** One [lo, hi] per decision variable, lo < hi, both finite. */
  readonly bounds: ReadonlyArray<readonly [number, number]>
  /** Population size: an even integer ≥ 4 (default 100). */
  readonly population?: number
  /** Number of generations after the initial population: an integer ≥ 0 (default 100). */
  readonly generations?: number
  /** SBX crossover: distribution index η ≥ 0 (default 15), probability per pair (default 0.9). */
  readonly crossover?: { readonly eta?: number; readonly probability?: number }
  /** Polynomial mutation: η ≥ 0 (default 20), probability per variable (default 1/n). */
  readonly mutation?: { readonly eta?: number; readonly probability?: number }
  /** Reference point for the 2-D hypervolume (requires exactly two objectives). */
  readonly reference?: readonly [number, number]
  /** Seed for a private `Random`; without it, the ambient `Random` service is used. */
  readonly seed?: number
}

/** The result of `optimize`. */
export interface Result {
  /** The final population's non-dominated solutions, sorted by objectives (lexicographically). */
  readonly front: ReadonlyArray<Solution>
  /** Hypervolume of `front` against `reference` (only with two objectives and a reference). */
  readonly hypervolume?: number
  /** One record per generation, from generation 0 (the initial population) to the last. */
  readonly history: ReadonlyArray<GenerationRecord>
  /** Total objective evaluations: population × (generations + 1). */
  readonly evaluations: number
}

interface Settings {
  readonly bounds: ReadonlyArray<readonly [number, number]>
  readonly population: number
  readonly generations: number
  readonly crossoverEta: number
  readonly crossoverProbability: number
  readonly mutationEta: number
  readonly mutationProbability: number
  readonly reference: readonly [number, number] | undefined
}

const validate = <E, R>(options: Options<E, R>): Either.Either<Settings, ValidationError> =>
  Either.gen(function*() {
    if (typeof options.objectives !== "function") {
      return yield* Validation.invalid("objectives", "must be a function")
    }
    if (!Array.isArray(options.bounds) || options.bounds.length === 0) {
      return yield* Validation.invalid("bounds", "must be a non-empty array of [lo, hi]")
    }
    const bounds: Array<readonly [number, number]> = []
    for (let i = 0; i < options.bounds.length; i++) {
      const pair: unknown = options.bounds[i]
      if (!Array.isArray(pair) || pair.length !== 2) {
        return yield* Validation.invalid(`bounds[${i}]`, "must be a pair [lo, hi]")
      }
      const lo = yield* Validation.number(`bounds[${i}][0]`, pair[0])
      const hi = yield* Validation.number(`bounds[${i}][1]`, pair[1])
      if (!(lo < hi)) return yield* Validation.invalid(`bounds[${i}]`, `lo must be < hi, got [${lo}, ${hi}]`)
      bounds.push([lo, hi])
    }
    const population = yield* Validation.int("population", options.population ?? 100, { min: 4 })
    if (population % 2 !== 0) return yield* Validation.invalid("population", `must be even, got ${population}`)
    const generations = yield* Validation.nonNegativeInt("generations", options.generations ?? 100)
    const crossoverEta = yield* Validation.number("crossover.eta", options.crossover?.eta ?? 15, { min: 0 })
    const crossoverProbability = yield* Validation.ratio(
      "crossover.probability",
      options.crossover?.probability ?? 0.9
    )
    const mutationEta = yield* Validation.number("mutation.eta", options.mutation?.eta ?? 20, { min: 0 })
    const mutationProbability = yield* Validation.ratio(
      "mutation.probability",
      options.mutation?.probability ?? 1 / bounds.length
    )
    let reference: readonly [number, number] | undefined
    if (options.reference !== undefined) {
      const ref: unknown = options.reference
      if (!Array.isArray(ref) || ref.length !== 2) {
        return yield* Validation.invalid("reference", "must be a pair [r1, r2]")
      }
      reference = [yield* Validation.number("reference[0]", ref[0]), yield* Validation.number("reference[1]", ref[1])]
    }
    if (options.seed !== undefined) yield* Validation.int("seed", options.seed)
    return {
      bounds,
      population,
      generations,
      crossoverEta,
      crossoverProbability,
      mutationEta,
      mutationProbability,
      reference
    }
  })

/** Rank (front index) and crowding distance of each member of a population. */
const rankAndCrowd = (
  objectives: ReadonlyArray<ReadonlyArray<number>>
): { readonly fronts: Array<Array<number>>; readonly rank: Array<number>; readonly crowding: Array<number> } => {
  const fronts = nonDominatedSort(objectives)
  const rank = new Array<number>(objectives.length).fill(0)
  const crowding = new Array<number>(objectives.length).fill(0)
  fronts.forEach((front, r) => {
    const d = crowdingDistance(front.map((i) => objectives[i]!))
    front.forEach((i, j) => {
      rank[i] = r
      crowding[i] = d[j]!
    })
  })
  return { fronts, rank, crowding }
}

const lexicographic = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): number => {
  for (let k = 0; k < Math.min(a.length, b.length); k++) {
    const d = a[k]! - b[k]!
    if (d !== 0) return d
  }
  return a.length - b.length
}

/**
 * Runs NSGA-II and returns the final non-dominated front, its hypervolume (two objectives and a
 * `reference`) and the per-generation history. Fails with a `ValidationError` on bad options, or
 * when an objective vector is empty, of a changing length or not finite (field "objectives"),
 * or when a `reference` is given for other than two objectives (field "reference"); an
 * objective's own failure is passed through.
 */
export const optimize = <E = never, R = never>(
  options: Options<E, R>
): Effect.Effect<Result, ValidationError | E, R> => {
  const settings = validate(options)
  if (Either.isLeft(settings)) return Effect.fail(settings.left)
  const s = settings.right
  const n = s.bounds.length
  const size = s.population

  /** Per run: the number of objectives, learnt from the first evaluation (-1 until then). */
  interface Shape {
    count: number
  }

  const evaluate = (
    x: ReadonlyArray<number>,
    shape: Shape
  ): Effect.Effect<ReadonlyArray<number>, ValidationError | E, R> => {
    const check = (values: ReadonlyArray<number>): Effect.Effect<ReadonlyArray<number>, ValidationError> => {
      if (!Array.isArray(values) || values.length === 0) {
        return Effect.fail(new ValidationError({ field: "objectives", reason: "must return a non-empty array" }))
      }
      if (shape.count === -1) shape.count = values.length
      if (values.length !== shape.count) {
        return Effect.fail(
          new ValidationError({
            field: "objectives",
            reason: `returned ${values.length} values, expected ${shape.count}`
          })
        )
      }
      for (const v of values) {
        if (typeof v !== "number" || !Number.isFinite(v)) {
          return Effect.fail(new ValidationError({ field: "objectives", reason: `returned a non-finite value ${v}` }))
        }
      }
      return Effect.succeed(values)
    }
    const out = options.objectives(x)
    return Effect.isEffect(out) ? Effect.flatMap(out, check) : check(out)
  }

  const evaluateAll = (xs: ReadonlyArray<ReadonlyArray<number>>, shape: Shape) =>
    Effect.gen(function*() {
      const out: Array<ReadonlyArray<number>> = []
      for (const x of xs) out.push(yield* evaluate(x, shape))
      return out
    })

  const record = (
    generation: number,
    objectives: ReadonlyArray<ReadonlyArray<number>>,
    front: ReadonlyArray<number>
  ): GenerationRecord =>
    s.reference === undefined
      ? { generation, frontSize: front.length }
      : {
        generation,
        frontSize: front.length,
        hypervolume: hypervolume2d(front.map((i) => objectives[i]!), s.reference)
      }

  const run = Effect.gen(function*() {
    const shape: Shape = { count: -1 }
    // Initial population, uniform in the bounds.
    const init = yield* generator
    let xs: Array<ReadonlyArray<number>> = Array.from(
      { length: size },
      () => s.bounds.map(([lo, hi]) => lo + init.number() * (hi - lo))
    )
    let fs = yield* evaluateAll(xs, shape)
    if (s.reference !== undefined && shape.count !== 2) {
      return yield* new ValidationError({
        field: "reference",
        reason: `a 2-D reference needs exactly 2 objectives, got ${shape.count}`
      })
    }
    let ranked = rankAndCrowd(fs)
    const history: Array<GenerationRecord> = [record(0, fs, ranked.fronts[0]!)]

    for (let generation = 1; generation <= s.generations; generation++) {
      yield* Effect.yieldNow()
      const prng = yield* generator
      const u: Uniform = () => prng.number()
      const { crowding, rank } = ranked
      // Binary tournament: lower rank wins, then larger crowding distance, then a coin.
      const tournament = (): number => {
        const a = prng.integer(size)
        const b = prng.integer(size)
        if (rank[a]! !== rank[b]!) return rank[a]! < rank[b]! ? a : b
        if (crowding[a]! !== crowding[b]!) return crowding[a]! > crowding[b]! ? a : b
        return u() < 0.5 ? a : b
      }
      const children: Array<ReadonlyArray<number>> = []
      while (children.length < size) {
        const [c1, c2] = sbx(
          xs[tournament()]!,
          xs[tournament()]!,
          s.bounds,
          s.crossoverEta,
          s.crossoverProbability,
          u
        )
        mutate(c1, s.bounds, s.mutationEta, s.mutationProbability, u)
        mutate(c2, s.bounds, s.mutationEta, s.mutationProbability, u)
        children.push(c1, c2)
      }
      const childObjectives = yield* evaluateAll(children, shape)

      // Elitist survival from parents + children: whole fronts, then the least crowded.
      const allX = xs.concat(children)
      const allF = fs.concat(childObjectives)
      const merged = rankAndCrowd(allF)
      const survivors: Array<number> = []
      for (const front of merged.fronts) {
        if (survivors.length + front.length <= size) {
          survivors.push(...front)
        } else {
          const byCrowding = front.slice().sort((a, b) => merged.crowding[b]! - merged.crowding[a]! || a - b)
          survivors.push(...byCrowding.slice(0, size - survivors.length))
        }
        if (survivors.length === size) break
      }
      xs = survivors.map((i) => allX[i]!)
      fs = survivors.map((i) => allF[i]!)
      // Ranks are recomputed on the survivors, so crowding is measured within the new fronts.
      ranked = rankAndCrowd(fs)
      history.push(record(generation, fs, ranked.fronts[0]!))
    }

    const front = ranked.fronts[0]!
      .map((i): Solution => ({ x: xs[i]!, objectives: fs[i]! }))
      .sort((a, b) => lexicographic(a.objectives, b.objectives) || lexicographic(a.x, b.x))
    const result: Result = s.reference === undefined
      ? { front, history, evaluations: size * (s.generations + 1) }
      : {
        front,
        history,
        evaluations: size * (s.generations + 1),
        hypervolume: hypervolume2d(front.map((p) => p.objectives), s.reference)
      }
    return result
  })

  const seeded = options.seed === undefined ? run : Effect.withRandom(run, Random.make(options.seed))
  return Effect.withSpan(seeded, "MultiObjective.optimize", {
    attributes: { population: size, generations: s.generations, variables: n }
  })
}

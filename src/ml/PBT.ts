/**
 * Population-based training (Jaderberg et al. 2017): a population of members trains side by side;
 * every `interval` steps the worst members copy the full state of a top member (exploit) and
 * perturb or resample its hyperparameters (explore).
 *
 * Guarantees:
 * - Exploit is a real copy: the donor's state goes through `checkpoint` then `restore` (default
 *   `structuredClone` both ways), so the recipient owns an independent copy (mutating it never
 *   touches the donor) and then trains with the explored hyperparameters. The original copied
 *   hyperparameters only, never the weights, and its "training" ignored them.
 * - Selection is a true quantile: the bottom ⌈N·q⌉ members (at most ⌊N/2⌋; q = 0.25 by default)
 *   copy a donor drawn uniformly from the top ⌈N·q⌉, not from the whole upper 80% as the original
 *   did. Ranking is by the latest performance (`mode` "max" by default), ties to the lower id.
 * - Explore follows Ray Tune's PBT: per hyperparameter, with `resampleProbability` (0.25) a fresh
 *   draw from the declared space, otherwise a perturbation (numbers × a factor drawn from
 *   `factors`, default [0.8, 1.2], clamped to the bounds; categoricals shift to an adjacent
 *   choice). Hyperparameters not in the space are copied unchanged.
 * - Reproducible from a seed, whatever the concurrency: exploit/explore draws come from the run's
 *   `Random` (the `seed` option, else the ambient one) in a fixed order, and each member's
 *   `step`/`evaluate`/`checkpoint`/`restore` runs with its own `Random` (seeded from the run's at
 *   the start), so a member's results never depend on how the members were scheduled.
 * - A failing member never sinks the run: a failure (typed error or defect) of `step`, `evaluate`
 *   (or a NaN performance) or of the copy is recorded on the member (count, last failure), the
 *   member keeps its state, and it ranks worst at the end of the interval, so it is replaced
 *   from a top member. Only a step in which every member fails stops the run
 *   (`PopulationFailedError`).
 * - Options are validated before any user code runs (`ValidationError` naming the field). Members
 *   run in fibers of `Effect.forEach` under the caller's scope: interrupting the run interrupts
 *   every member; nothing outlives it.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import { Tagged, ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import { generator } from "./internal/random.js"

// ---------------------------------------------------------------------------------------------
// Hyperparameter spaces
// ---------------------------------------------------------------------------------------------

/** A hyperparameter value. */
export type Hyperparam = number | string

/** A member's hyperparameters by name. */
export type Hyperparams = Readonly<Record<string, Hyperparam>>

/** One dimension of the search space. */
export type Dimension =
  /** A real in [low, high]; `log` samples log-uniformly (then low > 0). */
  | { readonly type: "float"; readonly low: number; readonly high: number; readonly log?: boolean }
  /** An integer in [low, high] (both included). */
  | { readonly type: "int"; readonly low: number; readonly high: number }
  /** One of `choices`, in an order that makes "adjacent" meaningful. */
  | { readonly type: "categorical"; readonly choices: ReadonlyArray<Hyperparam> }

/** The declared space: the hyperparameters that PBT explores. */
export type Space = Readonly<Record<string, Dimension>>

/** A uniform draw in [0, 1). */
export type Uniform = () => number

/** Explore settings. */
export interface ExploreOptions {
  /** Multiplicative perturbation factors, one chosen uniformly per numeric value (default [0.8, 1.2]). */
  readonly factors?: ReadonlyArray<number>
  /** Probability of resampling a value from the space instead of perturbing it (default 0.25). */
  readonly resampleProbability?: number
}

const clamp = (v: number, lo: number, hi: number): number => v < lo ? lo : v > hi ? hi : v

/** One draw from a dimension: uniform (log-uniform for `log` floats), integers and choices uniform. */
export const sampleDimension = (dimension: Dimension, uniform: Uniform): Hyperparam => {
  switch (dimension.type) {
    case "float": {
      const { high, low } = dimension
      const v = dimension.log === true
        ? Math.exp(Math.log(low) + uniform() * (Math.log(high) - Math.log(low)))
        : low + uniform() * (high - low)
      return clamp(v, low, high)
    }
    case "int":
      return Math.min(dimension.high, dimension.low + Math.floor(uniform() * (dimension.high - dimension.low + 1)))
    case "categorical":
      return dimension.choices[Math.min(dimension.choices.length - 1, Math.floor(uniform() * dimension.choices.length))]!
  }
}

/** One draw of every hyperparameter of the space (in the space's key order). */
export const sample = (space: Space, uniform: Uniform): Hyperparams => {
  const out: Record<string, Hyperparam> = {}
  for (const [name, dimension] of Object.entries(space)) out[name] = sampleDimension(dimension, uniform)
  return out
}

/**
 * Explores a set of hyperparameters (pure; randomness from `uniform`). For each dimension of
 * `space`, in key order, one draw decides: below `resampleProbability` the value is resampled
 * from the dimension (`sampleDimension`), otherwise it is perturbed:
 * - float: × a factor chosen uniformly from `factors`, clamped to [low, high];
 * - int: round(value × factor), and if rounding gives back the same value it moves by one the way
 *   value × factor moves (up for 2 × 1.2, down for −2 × 1.2; from 0, up for a factor above 1), so
 *   1 or 2 still move (Ray's `int(value × factor)` would keep them forever), then clamped;
 * - categorical: shifts to the previous or the next choice with equal probability, staying put at
 *   either end (as Ray does).
 * A value of the wrong kind for its dimension (or missing) is resampled. Keys not in `space` are
 * copied unchanged. Each dimension consumes exactly two draws.
 */
export const explore = (
  hyperparams: Hyperparams,
  space: Space,
  uniform: Uniform,
  options: ExploreOptions = {}
): Hyperparams => {
  const factors = options.factors ?? [0.8, 1.2]
  const resampleProbability = options.resampleProbability ?? 0.25
  const out: Record<string, Hyperparam> = { ...hyperparams }
  for (const [name, dimension] of Object.entries(space)) {
    const resample = uniform() < resampleProbability
    const current = hyperparams[name]
    if (resample) {
      out[name] = sampleDimension(dimension, uniform)
      continue
    }
    const u = uniform()
    switch (dimension.type) {
      case "float": {
        if (typeof current !== "number" || !Number.isFinite(current)) {
          out[name] = sampleDimension(dimension, () => u)
          break
        }
        const factor = factors[Math.min(factors.length - 1, Math.floor(u * factors.length))]!
        out[name] = clamp(current * factor, dimension.low, dimension.high)
        break
      }
      case "int": {
        if (typeof current !== "number" || !Number.isInteger(current)) {
          out[name] = sampleDimension(dimension, () => u)
          break
        }
        const factor = factors[Math.min(factors.length - 1, Math.floor(u * factors.length))]!
        let next = Math.round(current * factor)
        if (next === current && factor !== 1) {
          // Move by one the way the product moves (for a negative value, × 1.2 goes down); at 0
          // the product does not move, so the factor's side of 1 decides.
          const drift = Math.sign(current * factor - current)
          next = current + (drift !== 0 ? drift : factor > 1 ? 1 : -1)
        }
        out[name] = clamp(next, dimension.low, dimension.high)
        break
      }
      case "categorical": {
        const index = current === undefined ? -1 : dimension.choices.indexOf(current)
        if (index === -1) {
          out[name] = sampleDimension(dimension, () => u)
          break
        }
        const shifted = clamp(index + (u < 0.5 ? -1 : 1), 0, dimension.choices.length - 1)
        out[name] = dimension.choices[shifted]!
        break
      }
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Selection
// ---------------------------------------------------------------------------------------------

/** Whether higher or lower performance is better. */
export type Mode = "max" | "min"

/**
 * The size of each quantile: ⌈N·q⌉, at most ⌊N/2⌋ so that the two never overlap
 * (N = 4 → 1, N = 10 → 3, N = 2 → 1, N = 1 → 0 with q = 0.25).
 */
export const quantileSize = (n: number, quantile: number): number =>
  Math.max(0, Math.min(Math.ceil(n * quantile - 1e-9), Math.floor(n / 2)))

/**
 * The members to replace and the members to copy from. `performances[i]` is member i's latest
 * performance, `undefined` when it failed (failed members rank below every other). The ranking
 * is by performance (`mode`), ties to the lower index; `top` holds the best `quantileSize(N, q)`
 * members that did not fail, best first; `bottom` holds the worst `quantileSize(N, q)` members,
 * extended to every failed member, worst first, and never a member of `top`. When no member is
 * healthy (or the size is 0) both are empty: there is nobody to copy from.
 */
export const selectQuantiles = (
  performances: ReadonlyArray<number | undefined>,
  quantile: number,
  mode: Mode = "max"
): { readonly top: ReadonlyArray<number>; readonly bottom: ReadonlyArray<number> } => {
  const n = performances.length
  const k = quantileSize(n, quantile)
  const healthy: Array<number> = []
  const failed: Array<number> = []
  performances.forEach((p, i) => (p === undefined || Number.isNaN(p) ? failed : healthy).push(i))
  if (k === 0 || healthy.length === 0) return { top: [], bottom: [] }
  const sign = mode === "max" ? -1 : 1
  healthy.sort((a, b) => sign * (performances[a]! - performances[b]!) || a - b)
  const ranking = healthy.concat(failed)
  const top = healthy.slice(0, Math.min(k, healthy.length))
  const size = Math.max(k, failed.length)
  const bottom: Array<number> = []
  for (let r = ranking.length - 1; r >= top.length && bottom.length < size; r--) bottom.push(ranking[r]!)
  return { top, bottom }
}

const better = (a: number, b: number, mode: Mode): boolean => mode === "max" ? a > b : a < b

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/** What `step` and `evaluate` see of a member. */
export interface MemberView<S> {
  /** The member's position in the population (0-based); it never changes. */
  readonly id: number
  readonly state: S
  readonly hyperparams: Hyperparams
  /** The step being run, from 1. */
  readonly step: number
}

/** An initial member. */
export interface MemberInit<S> {
  readonly state: S
  /** Must hold a valid value for every dimension of the space; other keys are kept constant. */
  readonly hyperparams: Hyperparams
}

/** Where a member failed. */
export type FailurePhase = "step" | "evaluate" | "exploit"

/** A recorded failure of a member. */
export interface MemberFailure<E> {
  readonly step: number
  readonly phase: FailurePhase
  /** The typed error, when the failure was one (undefined for a defect or a NaN performance). */
  readonly error: E | undefined
  readonly cause: Cause.Cause<E>
}

/** One exploit/explore event: `member` copied `donor`'s state at `step`. */
export interface LineageEvent {
  readonly step: number
  /** The member that was replaced. */
  readonly member: number
  /** The member it copied. */
  readonly donor: number
  readonly donorPerformance: number
  /** The replaced member's performance (undefined when it had failed in the interval). */
  readonly replacedPerformance: number | undefined
  /** The member's hyperparameters before the copy. */
  readonly hyperparamsBefore: Hyperparams
  /** The donor's hyperparameters (what was copied). */
  readonly donorHyperparams: Hyperparams
  /** The explored hyperparameters the member trains with from now on. */
  readonly hyperparamsAfter: Hyperparams
}

/** A member at the end of the run. */
export interface Member<S, E> {
  readonly id: number
  readonly state: S
  readonly hyperparams: Hyperparams
  /** Latest performance of its current state (undefined if its last step failed). */
  readonly performance: number | undefined
  readonly failures: number
  readonly lastFailure: MemberFailure<E> | undefined
  /** This member's lineage events, oldest first. */
  readonly lineage: ReadonlyArray<LineageEvent>
}

/** The population's performances after one step. */
export interface StepRecord {
  readonly step: number
  /** One per member (undefined where the member failed this step). */
  readonly performances: ReadonlyArray<number | undefined>
  readonly best: number
  readonly bestMember: number
}

/** The result of `run`. */
export interface Result<S, E> {
  /** The best member at the end (by its latest performance, ties to the lower id). */
  readonly best: Member<S, E> & { readonly performance: number }
  readonly members: ReadonlyArray<Member<S, E>>
  /** One record per step run. */
  readonly history: ReadonlyArray<StepRecord>
  /** Every exploit/explore event, in order. */
  readonly lineage: ReadonlyArray<LineageEvent>
  /** Steps run. */
  readonly steps: number
  readonly reachedTarget: boolean
  /** The step at which the target was reached. */
  readonly targetStep: number | undefined
}

/** Options of `run`. `C` is the checkpoint type (the state itself by default). */
export interface Options<S, E = never, R = never, C = S> {
  /** The initial members, or their number (then `init` builds each state from sampled hyperparameters). */
  readonly population: ReadonlyArray<MemberInit<S>> | number
  /** Builds member `id`'s initial state (required when `population` is a number). */
  readonly init?: (member: { readonly id: number; readonly hyperparams: Hyperparams }) => S
  /** The hyperparameters to explore (default: none; exploit still copies). */
  readonly space?: Space
  /** One training step: returns the new state (it may mutate and return the old one). */
  readonly step: (member: MemberView<S>) => Effect.Effect<S, E, R>
  /** The performance of a state (higher is better unless `mode` is "min"). */
  readonly evaluate: (member: MemberView<S>) => Effect.Effect<number, E, R>
  /** Saves a state (default `structuredClone`). Give both `checkpoint` and `restore` or neither. */
  readonly checkpoint?: (state: S) => Effect.Effect<C, E, R>
  /** Builds a fresh, independent state from a checkpoint (default `structuredClone`). */
  readonly restore?: (checkpoint: C) => Effect.Effect<S, E, R>
  /** Steps between exploit/explore rounds: a positive integer or `Infinity` (never). Default 4. */
  readonly interval?: number
  /** No exploit before this step (default 0). */
  readonly burnIn?: number
  /** Fraction of the population in each quantile, in [0, 0.5] (default 0.25). */
  readonly quantile?: number
  /** Perturbation factors, positive (default [0.8, 1.2]). */
  readonly factors?: ReadonlyArray<number>
  /** Probability of resampling a hyperparameter instead of perturbing it (default 0.25). */
  readonly resampleProbability?: number
  /** The step limit (a positive integer). */
  readonly maxSteps: number
  /** Stop as soon as the best performance reaches this (≥ for "max", ≤ for "min"). */
  readonly target?: number
  /** "max" (default) or "min". */
  readonly mode?: Mode
  /** Members stepped at once: a positive integer or "unbounded" (default). */
  readonly concurrency?: number | "unbounded"
  /** Seed of the run's `Random`; without it the ambient `Random` service is used. */
  readonly seed?: number | string
}

/** Every member failed in the same step: there is nothing left to train or copy from. */
export class PopulationFailedError<E = unknown> extends Tagged("PopulationFailedError", {
  category: "permanent",
  severity: "high",
  message: "Every member of the population failed"
})<{
  readonly step: number
  /** One per member, by id. */
  readonly failures: ReadonlyArray<MemberFailure<E>>
}> {
  override describe() {
    return `Every member of the population failed at step ${this.step}`
  }
}

/** The errors of `run` besides validation. */
export type PBTError<E = unknown> = PopulationFailedError<E>

interface Settings<S> {
  readonly initial: ReadonlyArray<MemberInit<S>> | undefined
  readonly size: number
  readonly space: Space
  readonly interval: number
  readonly burnIn: number
  readonly quantile: number
  readonly factors: ReadonlyArray<number>
  readonly resampleProbability: number
  readonly maxSteps: number
  readonly target: number | undefined
  readonly mode: Mode
  readonly concurrency: number | "unbounded"
}

const isFunction = (u: unknown): boolean => typeof u === "function"

const validateSpace = (input: unknown): Either.Either<Space, ValidationError> =>
  Either.gen(function*() {
    if (input === undefined) return {}
    if (typeof input !== "object" || input === null || Array.isArray(input)) {
      return yield* Validation.invalid("space", "must be an object of dimensions")
    }
    const space: Record<string, Dimension> = {}
    for (const [name, d] of Object.entries(input as Record<string, unknown>)) {
      const field = `space.${name}`
      if (typeof d !== "object" || d === null) return yield* Validation.invalid(field, "must be a dimension")
      const dim = d as Record<string, unknown>
      const type = yield* Validation.oneOf(`${field}.type`, dim["type"], ["float", "int", "categorical"])
      if (type === "categorical") {
        const choices = dim["choices"]
        if (!Array.isArray(choices) || choices.length === 0) {
          return yield* Validation.invalid(`${field}.choices`, "must be a non-empty array")
        }
        for (const [i, c] of choices.entries()) {
          if (!(typeof c === "string" || (typeof c === "number" && Number.isFinite(c)))) {
            return yield* Validation.invalid(`${field}.choices[${i}]`, "must be a string or a finite number")
          }
          if (choices.indexOf(c) !== i) return yield* Validation.invalid(`${field}.choices[${i}]`, `duplicate choice ${String(c)}`)
        }
        space[name] = { type, choices: choices as ReadonlyArray<Hyperparam> }
        continue
      }
      const check = type === "int" ? Validation.int : Validation.number
      const low = yield* check(`${field}.low`, dim["low"])
      const high = yield* check(`${field}.high`, dim["high"])
      if (!(low < high)) return yield* Validation.invalid(`${field}.high`, `must be > low (${low}), got ${high}`)
      if (type === "int") {
        space[name] = { type, low, high }
      } else {
        const log = dim["log"] === true
        if (log && low <= 0) return yield* Validation.invalid(`${field}.low`, `must be > 0 for a log dimension, got ${low}`)
        space[name] = { type, low, high, log }
      }
    }
    return space
  })

const validateHyperparams = (
  field: string,
  input: unknown,
  space: Space
): Either.Either<Hyperparams, ValidationError> =>
  Either.gen(function*() {
    if (typeof input !== "object" || input === null || Array.isArray(input)) {
      return yield* Validation.invalid(field, "must be an object of numbers and strings")
    }
    const hp = input as Record<string, unknown>
    for (const [name, v] of Object.entries(hp)) {
      if (!(typeof v === "string" || (typeof v === "number" && Number.isFinite(v)))) {
        return yield* Validation.invalid(`${field}.${name}`, "must be a string or a finite number")
      }
    }
    for (const [name, d] of Object.entries(space)) {
      const v = hp[name]
      const f = `${field}.${name}`
      if (v === undefined) return yield* Validation.invalid(f, "is missing (every dimension of the space needs a value)")
      if (d.type === "categorical") {
        if (!d.choices.includes(v as Hyperparam)) return yield* Validation.invalid(f, `must be one of the choices, got ${String(v)}`)
      } else {
        if (d.type === "int") yield* Validation.int(f, v, { min: d.low, max: d.high })
        else yield* Validation.number(f, v, { min: d.low, max: d.high })
      }
    }
    return hp as Hyperparams
  })

const validate = <S, E, R, C>(options: Options<S, E, R, C>): Either.Either<Settings<S>, ValidationError> =>
  Either.gen(function*() {
    if (!isFunction(options.step)) return yield* Validation.invalid("step", "must be a function")
    if (!isFunction(options.evaluate)) return yield* Validation.invalid("evaluate", "must be a function")
    const space = yield* validateSpace(options.space)
    let initial: ReadonlyArray<MemberInit<S>> | undefined
    let size: number
    if (typeof options.population === "number") {
      size = yield* Validation.positiveInt("population", options.population)
      if (!isFunction(options.init)) {
        return yield* Validation.invalid("init", "must be a function when population is a number")
      }
    } else if (Array.isArray(options.population) && options.population.length > 0) {
      const members: ReadonlyArray<MemberInit<S>> = options.population
      for (const [i, m] of members.entries()) {
        if (typeof m !== "object" || m === null) {
          return yield* Validation.invalid(`population[${i}]`, "must be { state, hyperparams }")
        }
        yield* validateHyperparams(`population[${i}].hyperparams`, m.hyperparams, space)
      }
      initial = members
      size = members.length
    } else {
      return yield* Validation.invalid("population", "must be a positive integer or a non-empty array of members")
    }
    const interval = options.interval === Infinity
      ? Infinity
      : yield* Validation.positiveInt("interval", options.interval ?? 4)
    const burnIn = yield* Validation.nonNegativeInt("burnIn", options.burnIn ?? 0)
    const quantile = yield* Validation.number("quantile", options.quantile ?? 0.25, { min: 0, max: 0.5 })
    const factors = options.factors ?? [0.8, 1.2]
    if (!Array.isArray(factors) || factors.length === 0) {
      return yield* Validation.invalid("factors", "must be a non-empty array of positive numbers")
    }
    for (const [i, f] of factors.entries()) {
      yield* Validation.number(`factors[${i}]`, f, { min: 0, minExclusive: true })
    }
    const resampleProbability = yield* Validation.ratio("resampleProbability", options.resampleProbability ?? 0.25)
    const maxSteps = yield* Validation.positiveInt("maxSteps", options.maxSteps)
    const target = options.target === undefined ? undefined : yield* Validation.number("target", options.target)
    const mode = yield* Validation.oneOf("mode", options.mode ?? "max", ["max", "min"])
    const concurrency = options.concurrency === undefined || options.concurrency === "unbounded"
      ? "unbounded" as const
      : yield* Validation.positiveInt("concurrency", options.concurrency)
    const hasCheckpoint = options.checkpoint !== undefined
    const hasRestore = options.restore !== undefined
    if (hasCheckpoint && !isFunction(options.checkpoint)) return yield* Validation.invalid("checkpoint", "must be a function")
    if (hasRestore && !isFunction(options.restore)) return yield* Validation.invalid("restore", "must be a function")
    if (hasCheckpoint !== hasRestore) {
      return yield* Validation.invalid(hasCheckpoint ? "restore" : "checkpoint", "checkpoint and restore go together: give both or neither")
    }
    if (options.seed !== undefined && typeof options.seed !== "string") yield* Validation.int("seed", options.seed)
    return {
      initial,
      size,
      space,
      interval,
      burnIn,
      quantile,
      factors,
      resampleProbability,
      maxSteps,
      target,
      mode,
      concurrency
    }
  })

interface Runtime<S, E> {
  readonly id: number
  state: S
  hyperparams: Hyperparams
  performance: number | undefined
  failedInInterval: boolean
  failures: number
  lastFailure: MemberFailure<E> | undefined
  readonly random: Random.Random
}

interface StepOutcome<S, E> {
  readonly state: S
  readonly performance: number | undefined
  readonly failure: MemberFailure<E> | undefined
}

const failureOf = <E>(step: number, phase: FailurePhase, cause: Cause.Cause<E>): MemberFailure<E> => ({
  step,
  phase,
  error: Option.getOrUndefined(Cause.failureOption(cause)),
  cause
})

const defaultCopy = <A, B>(value: A): Effect.Effect<B> => Effect.sync(() => structuredClone(value) as unknown as B)

/**
 * Runs population-based training for at most `maxSteps` steps. Each step runs `step` then
 * `evaluate` on every member (concurrently, at most `concurrency` at once); after each step the
 * target is checked; at every multiple of `interval` (from `burnIn`, and not on the last step)
 * the bottom quantile copies the top quantile and explores. Returns the best member, all members,
 * the per-step history and the lineage. Fails with a `ValidationError` on bad options (before
 * any user code runs) or a `PopulationFailedError` if every member fails in the same step.
 */
export const run = <S, E = never, R = never, C = S>(
  options: Options<S, E, R, C>
): Effect.Effect<Result<S, E>, PopulationFailedError<E> | ValidationError, R> => {
  const validated = validate(options)
  if (Either.isLeft(validated)) return Effect.fail(validated.left)
  const s = validated.right
  const checkpoint = options.checkpoint ?? defaultCopy<S, C>
  const restore = options.restore ?? defaultCopy<C, S>

  const advance = (m: Runtime<S, E>, step: number): Effect.Effect<StepOutcome<S, E>, never, R> => {
    const view = { id: m.id, state: m.state, hyperparams: m.hyperparams, step }
    return Effect.exit(options.step(view)).pipe(
      Effect.flatMap((stepped) => {
        if (Exit.isFailure(stepped)) {
          return Effect.succeed<StepOutcome<S, E>>({
            state: m.state,
            performance: undefined,
            failure: failureOf(step, "step", stepped.cause)
          })
        }
        const state = stepped.value
        return Effect.map(Effect.exit(options.evaluate({ ...view, state })), (evaluated): StepOutcome<S, E> => {
          if (Exit.isFailure(evaluated)) {
            return { state, performance: undefined, failure: failureOf(step, "evaluate", evaluated.cause) }
          }
          const performance = evaluated.value
          if (typeof performance !== "number" || Number.isNaN(performance)) {
            const cause = Cause.die(new ValidationError({ field: "evaluate", reason: `returned ${String(performance)}` }))
            return { state, performance: undefined, failure: failureOf<E>(step, "evaluate", cause) }
          }
          return { state, performance, failure: undefined }
        })
      }),
      Effect.withRandom(m.random)
    )
  }

  const body = Effect.gen(function*() {
    // Each member gets its own Random, so its results do not depend on scheduling.
    const members: Array<Runtime<S, E>> = []
    const init = s.initial === undefined ? yield* generator : undefined
    for (let id = 0; id < s.size; id++) {
      const seed = yield* Random.nextInt
      const given = s.initial?.[id]
      const hyperparams = given?.hyperparams ?? sample(s.space, () => init!.number())
      const state = given !== undefined ? given.state : options.init!({ id, hyperparams })
      members.push({
        id,
        state,
        hyperparams,
        performance: undefined,
        failedInInterval: false,
        failures: 0,
        lastFailure: undefined,
        random: Random.make(seed)
      })
    }
    const history: Array<StepRecord> = []
    const lineage: Array<LineageEvent> = []
    let reachedTarget = false
    let targetStep: number | undefined
    let steps = 0

    const recordFailure = (m: Runtime<S, E>, failure: MemberFailure<E>) => {
      m.failures++
      m.lastFailure = failure
    }

    const exploit = (step: number) =>
      Effect.gen(function*() {
        const performances = members.map((m) => m.failedInInterval ? undefined : m.performance)
        const { bottom, top } = selectQuantiles(performances, s.quantile, s.mode)
        if (top.length === 0 || bottom.length === 0) return
        const prng = yield* generator
        const uniform = () => prng.number()
        const plans = bottom.map((recipient) => {
          const donor = top[prng.integer(top.length)]!
          const hyperparamsAfter = explore(members[donor]!.hyperparams, s.space, uniform, s)
          return { recipient, donor, hyperparamsAfter }
        })
        // One checkpoint per donor, then one restore per recipient (each an independent copy).
        const donors = [...new Set(plans.map((p) => p.donor))].sort((a, b) => a - b)
        const saved = yield* Effect.forEach(
          donors,
          (d) => Effect.exit(Effect.withRandom(Effect.suspend(() => checkpoint(members[d]!.state)), members[d]!.random)),
          { concurrency: s.concurrency }
        )
        const checkpoints = new Map(donors.map((d, i) => [d, saved[i]!]))
        const restored = yield* Effect.forEach(
          plans,
          (plan): Effect.Effect<Exit.Exit<S, E>, never, R> => {
            const ckpt = checkpoints.get(plan.donor)!
            return Exit.isFailure(ckpt)
              ? Effect.succeed(Exit.failCause(ckpt.cause))
              : Effect.exit(Effect.withRandom(Effect.suspend(() => restore(ckpt.value)), members[plan.recipient]!.random))
          },
          { concurrency: s.concurrency }
        )
        plans.forEach((plan, i) => {
          const outcome = restored[i]!
          const m = members[plan.recipient]!
          const donor = members[plan.donor]!
          if (Exit.isFailure(outcome)) {
            recordFailure(m, failureOf(step, "exploit", outcome.cause))
            return
          }
          const event: LineageEvent = {
            step,
            member: m.id,
            donor: donor.id,
            donorPerformance: donor.performance!,
            replacedPerformance: performances[m.id],
            hyperparamsBefore: m.hyperparams,
            donorHyperparams: donor.hyperparams,
            hyperparamsAfter: plan.hyperparamsAfter
          }
          lineage.push(event)
          m.state = outcome.value
          m.hyperparams = plan.hyperparamsAfter
          m.performance = donor.performance
        })
      })

    for (let step = 1; step <= s.maxSteps; step++) {
      const outcomes = yield* Effect.forEach(members, (m) => advance(m, step), { concurrency: s.concurrency })
      steps = step
      let bestMember = -1
      outcomes.forEach((o, i) => {
        const m = members[i]!
        m.state = o.state
        m.performance = o.performance
        if (o.failure !== undefined) {
          m.failedInInterval = true
          recordFailure(m, o.failure)
        } else if (bestMember === -1 || better(o.performance!, members[bestMember]!.performance!, s.mode)) {
          bestMember = i
        }
      })
      if (bestMember === -1) {
        return yield* new PopulationFailedError<E>({ step, failures: outcomes.map((o) => o.failure!) })
      }
      const best = members[bestMember]!.performance!
      history.push({ step, performances: outcomes.map((o) => o.performance), best, bestMember })
      if (s.target !== undefined && (best === s.target || better(best, s.target, s.mode))) {
        reachedTarget = true
        targetStep = step
        break
      }
      if (step % s.interval === 0) {
        if (step >= s.burnIn && step < s.maxSteps) yield* exploit(step)
        for (const m of members) m.failedInInterval = false
      }
    }

    const final: Array<Member<S, E>> = members.map((m) => ({
      id: m.id,
      state: m.state,
      hyperparams: m.hyperparams,
      performance: m.performance,
      failures: m.failures,
      lastFailure: m.lastFailure,
      lineage: lineage.filter((e) => e.member === m.id)
    }))
    let best = -1
    for (const m of final) {
      if (m.performance === undefined) continue
      if (best === -1 || better(m.performance, final[best]!.performance!, s.mode)) best = m.id
    }
    const result: Result<S, E> = {
      best: final[best]! as Member<S, E> & { readonly performance: number },
      members: final,
      history,
      lineage,
      steps,
      reachedTarget,
      targetStep
    }
    return result
  })

  const seeded = options.seed === undefined ? body : Effect.withRandom(body, Random.make(options.seed))
  return Effect.withSpan(seeded, "PBT.run", {
    attributes: { population: s.size, maxSteps: s.maxSteps, interval: s.interval }
  })
}

// ---------------------------------------------------------------------------------------------
// The toy problem of Jaderberg et al. (2017), figure 2
// ---------------------------------------------------------------------------------------------

/** Q(θ) = 1.2 − (θ₀² + θ₁²): the true objective of the toy (maximum 1.2 at θ = 0). */
export const toyObjective = (theta: ReadonlyArray<number>): number => 1.2 - (theta[0]! ** 2 + theta[1]! ** 2)

/**
 * The PBT toy of Jaderberg et al. (2017): θ ∈ ℝ² starts at [0.9, 0.9]; a step is one gradient
 * ascent step θ ← θ + η∇Q̂ on the surrogate Q̂(θ|h) = 1.2 − (h₀θ₀² + h₁θ₁²), i.e.
 * θᵢ ← θᵢ + η(−2hᵢθᵢ) (η = `learningRate`, default 0.01); evaluation is the true Q. Two
 * members start at h = [1, 0] and [0, 1], each hᵢ in [0, 1]. Neither fixed member can pass
 * Q = 1.2 − 0.81 = 0.39; PBT combines them.
 * Spread it into `run`: `PBT.run({ ...PBT.toy(), maxSteps: 500, target: 1.19 })`.
 */
export const toy = (options: { readonly learningRate?: number } = {}) => {
  const eta = options.learningRate ?? 0.01
  return {
    population: [
      { state: [0.9, 0.9] as ReadonlyArray<number>, hyperparams: { h0: 1, h1: 0 } },
      { state: [0.9, 0.9] as ReadonlyArray<number>, hyperparams: { h0: 0, h1: 1 } }
    ],
    space: {
      h0: { type: "float", low: 0, high: 1 },
      h1: { type: "float", low: 0, high: 1 }
    } satisfies Space as Space,
    step: ({ hyperparams, state }: MemberView<ReadonlyArray<number>>) =>
      Effect.succeed([
        state[0]! + eta * (-2 * Number(hyperparams["h0"]) * state[0]!),
        state[1]! + eta * (-2 * Number(hyperparams["h1"]) * state[1]!)
      ] as ReadonlyArray<number>),
    evaluate: ({ state }: MemberView<ReadonlyArray<number>>) => Effect.succeed(toyObjective(state))
  }
}

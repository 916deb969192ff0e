/**
 * Pruners stop unpromising trials early from the intermediate values they report:
 * `none`, `median` (Optuna's MedianPruner) and `asha` (asynchronous successive halving,
 * Li et al. 2020, with Optuna's promotion rule).
 *
 * Guarantees:
 * - A pruner is a pure decision over the study's trial records: the same records give the
 *   same answer.
 * - `median`: after `startupTrials` (5) complete trials and `warmupSteps` (0) steps, every
 *   `intervalSteps` (1) steps, a trial is pruned when its best value so far is worse than the
 *   median of the complete trials' values at the same step (at least `minTrials` (1) of them).
 * - `asha`: rungs at steps gracePeriod·η^k (η = `reductionFactor`, 4; gracePeriod 1). When a
 *   trial first reports at or past a rung, its value there is compared with every trial's value
 *   at that rung: it continues only when it ranks within the best ⌊n/η⌋ (the best one while
 *   n < η), so once a rung has all its values, exactly the top 1/η go on. Past `maxResource`
 *   nothing is pruned.
 */
import * as Either from "effect/Either"
import type { ValidationError } from "../../errors/FoundationError.js"
import * as Validation from "../../errors/Validation.js"
import { better, type Direction, lossOf, type TrialRecord, valueAt } from "./Trial.js"

/** What a pruner sees when a running trial asks whether to stop. */
export interface PruneContext {
  /** The asking trial, with every intermediate value it reported. */
  readonly trial: TrialRecord
  /** The trials to compare with (the asking one may be among them; pruners skip it). */
  readonly trials: ReadonlyArray<TrialRecord>
  readonly direction: Direction
}

/** A pruner: a name and settings (for reports), and its decision (checked options first). */
export interface Pruner {
  readonly name: string
  readonly settings: Readonly<Record<string, unknown>>
  /** False when decisions never look at other trials (`none`): `optimize` need not wait for them. */
  readonly usesHistory: boolean
  readonly bind: () => Either.Either<(context: PruneContext) => boolean, ValidationError>
}

/** Never prunes. */
export const none = (): Pruner => ({ name: "none", settings: {}, usesHistory: false, bind: () => Either.right(() => false) })

/** Options of the median pruner (defaults as Optuna's). */
export interface MedianOptions {
  /** Complete trials needed before anything is pruned [5]. */
  readonly startupTrials?: number
  /** Steps of a trial before it may be pruned [0]. */
  readonly warmupSteps?: number
  /** Check every this many steps after the warm-up [1]. */
  readonly intervalSteps?: number
  /** Complete trials that must have a value at the step [1]. */
  readonly minTrials?: number
}

/** The median of a non-empty list. */
export const medianOf = (values: ReadonlyArray<number>): number => {
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

const lastStep = (trial: TrialRecord): number | undefined =>
  trial.intermediate.length === 0 ? undefined : trial.intermediate[trial.intermediate.length - 1]!.step

/** Prunes a trial whose best value so far is worse than the median of complete trials at the same step. */
export const median = (options: MedianOptions = {}): Pruner => ({
  name: "median",
  usesHistory: true,
  settings: {
    startupTrials: options.startupTrials ?? 5,
    warmupSteps: options.warmupSteps ?? 0,
    intervalSteps: options.intervalSteps ?? 1,
    minTrials: options.minTrials ?? 1
  },
  bind: () =>
    Either.gen(function*() {
      const startup = yield* Validation.nonNegativeInt("pruner.startupTrials", options.startupTrials ?? 5)
      const warmup = yield* Validation.nonNegativeInt("pruner.warmupSteps", options.warmupSteps ?? 0)
      const interval = yield* Validation.positiveInt("pruner.intervalSteps", options.intervalSteps ?? 1)
      const minTrials = yield* Validation.positiveInt("pruner.minTrials", options.minTrials ?? 1)
      return ({ direction, trial, trials }) => {
        const step = lastStep(trial)
        if (step === undefined || step < warmup || (step - warmup) % interval !== 0) return false
        const complete = trials.filter((t) => t.state === "complete" && t.number !== trial.number)
        if (complete.length < startup) return false
        const values: Array<number> = []
        for (const t of complete) {
          const v = valueAt(t, step)
          if (v !== undefined && !Number.isNaN(v)) values.push(v)
        }
        if (values.length < minTrials || values.length === 0) return false
        let best: number | undefined
        for (const p of trial.intermediate) {
          if (!Number.isNaN(p.value) && (best === undefined || better(direction, p.value, best))) best = p.value
        }
        if (best === undefined) return true
        return better(direction, medianOf(values), best)
      }
    })
})

/** Options of ASHA. */
export interface AshaOptions {
  /** η: each rung keeps the best 1/η [4]. */
  readonly reductionFactor?: number
  /** The first rung's step (the minimum resource) [1]. */
  readonly gracePeriod?: number
  /** Steps at and past which a trial is never pruned [none]. */
  readonly maxResource?: number
}

/** The steps of the rungs below `limit`: gracePeriod·η^k. */
export const rungSteps = (gracePeriod: number, reductionFactor: number, limit: number): ReadonlyArray<number> => {
  const out: Array<number> = []
  for (let s = gracePeriod; s <= limit; s *= reductionFactor) out.push(s)
  return out
}

/** A trial's value at the rung whose step is `rung`: its first value reported at or past it. */
export const rungValue = (trial: TrialRecord, rung: number): number | undefined => {
  for (const p of trial.intermediate) if (p.step >= rung) return p.value
  return undefined
}

/** True when `value` ranks within the best ⌊n/η⌋ (the best while n < η) of the rung's values. */
export const promotable = (
  direction: Direction,
  value: number,
  rungValues: ReadonlyArray<number>,
  reductionFactor: number
): boolean => {
  const sorted = rungValues.map((v) => lossOf(direction, v)).sort((a, b) => a - b)
  const index = Math.max(Math.floor(sorted.length / reductionFactor) - 1, 0)
  return lossOf(direction, value) <= sorted[index]!
}

/** Asynchronous successive halving. */
export const asha = (options: AshaOptions = {}): Pruner => ({
  name: "asha",
  usesHistory: true,
  settings: {
    reductionFactor: options.reductionFactor ?? 4,
    gracePeriod: options.gracePeriod ?? 1,
    ...(options.maxResource !== undefined ? { maxResource: options.maxResource } : {})
  },
  bind: () =>
    Either.gen(function*() {
      const eta = yield* Validation.int("pruner.reductionFactor", options.reductionFactor ?? 4, { min: 2 })
      const grace = yield* Validation.number("pruner.gracePeriod", options.gracePeriod ?? 1, { min: 0, minExclusive: true })
      const maxResource = options.maxResource === undefined
        ? Infinity
        : yield* Validation.number("pruner.maxResource", options.maxResource, { min: grace })
      return ({ direction, trial, trials }) => {
        const n = trial.intermediate.length
        if (n === 0) return false
        const step = trial.intermediate[n - 1]!.step
        if (step >= maxResource) return false
        const previous = n >= 2 ? trial.intermediate[n - 2]!.step : -Infinity
        // The rungs this report crossed (usually none or one).
        for (const rung of rungSteps(grace, eta, step)) {
          if (rung <= previous) continue
          const value = trial.intermediate[n - 1]!.value
          if (Number.isNaN(value)) return true
          const competing: Array<number> = [value]
          for (const t of trials) {
            if (t.number === trial.number) continue
            const v = rungValue(t, rung)
            if (v !== undefined && !Number.isNaN(v)) competing.push(v)
          }
          if (!promotable(direction, value, competing, eta)) return true
        }
        return false
      }
    })
})

/**
 * The records a study keeps: trials with their parameters, state, value and intermediate
 * values. Plain, JSON-safe data, so every storage keeps them as they are.
 */
import type { AnyParams } from "./Space.js"

/** Minimise or maximise the objective. */
export type Direction = "minimize" | "maximize"

/**
 * `running`: asked, not told yet (after an interruption, a stored running trial is run again
 * on resume, with the same number and parameters). `complete`: has a value. `pruned`: stopped
 * early by the pruner (its value is its last intermediate value, if any). `failed`: the
 * objective failed (after its retries) or timed out.
 */
export type TrialState = "running" | "complete" | "pruned" | "failed"

/** One intermediate value, reported at `step` (an epoch, a resource count). */
export interface Intermediate {
  readonly step: number
  readonly value: number
}

/** A trial as recorded. */
export interface TrialRecord {
  /** 0, 1, 2, … in the order the trials were asked. */
  readonly number: number
  readonly params: AnyParams
  readonly state: TrialState
  /** The objective's value (complete), or the last intermediate value (pruned). */
  readonly value: number | undefined
  /** Intermediate values in the order they were reported (one per step). */
  readonly intermediate: ReadonlyArray<Intermediate>
  /** Why the trial failed, as text. */
  readonly error: string | undefined
  /** How many times the objective ran (1 + retries used). */
  readonly attempts: number
  /** Epoch ms from `Clock`. */
  readonly startedAt: number
  readonly endedAt: number | undefined
}

/** True when `a` is a better value than `b` in `direction`. */
export const better = (direction: Direction, a: number, b: number): boolean => direction === "minimize" ? a < b : a > b

/** Sort key that puts the best value first: the value itself for minimisation, its negation otherwise. */
export const lossOf = (direction: Direction, value: number): number => direction === "minimize" ? value : -value

/** The intermediate value reported at exactly `step`, if any. */
export const valueAt = (trial: TrialRecord, step: number): number | undefined => {
  for (let i = trial.intermediate.length - 1; i >= 0; i--) {
    const p = trial.intermediate[i]!
    if (p.step === step) return p.value
  }
  return undefined
}

/** The best complete trial (ties: the earlier number), if any. */
export const bestOf = (direction: Direction, trials: Iterable<TrialRecord>): TrialRecord | undefined => {
  let best: TrialRecord | undefined
  for (const t of trials) {
    if (t.state !== "complete" || t.value === undefined) continue
    if (best === undefined || better(direction, t.value, best.value!) || (t.value === best.value && t.number < best.number)) {
      best = t
    }
  }
  return best
}

/** The best value so far after each trial (in the order given), undefined before the first complete one. */
export const convergence = (direction: Direction, trials: ReadonlyArray<TrialRecord>): ReadonlyArray<number | undefined> => {
  let best: number | undefined
  return trials.map((t) => {
    if (t.state === "complete" && t.value !== undefined && Number.isFinite(t.value)) {
      if (best === undefined || better(direction, t.value, best)) best = t.value
    }
    return best
  })
}

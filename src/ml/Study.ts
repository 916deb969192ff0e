/**
 * Hyperparameter studies: a typed search space, a sampler (random, grid, TPE), a pruner
 * (none, median, ASHA), the ask/tell interface and `optimize`, which runs an objective over
 * many trials with bounded concurrency, per-trial timeouts and retries. Storage is behind an
 * interface (memory, or SQLite/PostgreSQL through the data layer), and a study reopened from
 * the same storage resumes where it stopped.
 *
 * Guarantees:
 * - Reproducible from a seed: trial n's parameters come from a generator seeded with
 *   (study seed, n), and the objective of trial n runs with Effect's `Random` seeded the same
 *   way. In `optimize`, a sampler that learns from history (TPE) samples trial n from exactly
 *   the finished trials numbered below n − concurrency + 1 (waiting for stragglers among them),
 *   and a pruner judges trial n against those same trials, so a run gives the same trials
 *   whatever the scheduling, at a given concurrency. (`ask` shows both every trial so far.)
 * - A failing trial (error, defect, timeout, non-finite value) is recorded as `failed` with its
 *   reason, after its retries; it never fails the run. A pruned trial is recorded as `pruned`
 *   with its last intermediate value. Only storage failures fail `optimize`.
 * - Interrupting `optimize` stops every running trial; their records stay `running` in
 *   storage, and reopening the study runs them again first, with the same numbers and
 *   parameters, so no completed trial is lost and the sequence continues.
 * - Bad input is a `ValidationError` naming the field: an invalid space, sampler or pruner
 *   options, `optimize` options, a told value that is not finite, a report whose step does not
 *   increase, a stored study whose space or direction differs.
 *
 * Telemetry (when `Telemetry` is in the context at `make`; see `events`): `trialEnded`,
 * `bestImproved`. Metric: `foundation_study_trials_total` (tags `study`, `state`).
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import { NotFoundError, Tagged, ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import type * as TaskPools from "../infra/TaskPools.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"
import * as Pruners from "./study/Pruners.js"
import * as Samplers from "./study/Samplers.js"
import * as Space from "./study/Space.js"
import * as Storage from "./study/Storage.js"
import { bestOf, type Direction, type TrialRecord, type TrialState } from "./study/Trial.js"

export { asha, type AshaOptions, median, type MedianOptions, none, type Pruner } from "./study/Pruners.js"
export { grid, type GridOptions, random, type Sampler, tpe, type TpeOptions } from "./study/Samplers.js"
export {
  type AnyParams,
  categorical,
  type CategoricalParam,
  type Choice,
  float,
  type FloatParam,
  int,
  type IntParam,
  type Param,
  type Params,
  type Space
} from "./study/Space.js"
export { type Loaded, memory as memoryStorage, repository as repositoryStorage, type Storage, type StudyRecord } from "./study/Storage.js"
export * as Report from "./study/Report.js"
export { convergence, type Direction, type Intermediate, type TrialRecord, type TrialState } from "./study/Trial.js"

/** Telemetry events of this module. */
export const events = Events.names.study

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** The pruner stopped the trial (`trial.report` fails with it; `optimize` records the trial as pruned). */
export class TrialPrunedError extends Tagged("TrialPrunedError", {
  category: "permanent",
  severity: "low",
  message: "Trial pruned",
  captureStack: false
})<{ readonly trial: number; readonly step: number }> {
  override describe() {
    return `trial ${this.trial} pruned at step ${this.step}`
  }
}

/** A trial ran past `timeoutPerTrial`. */
export class TrialTimeoutError extends Tagged("TrialTimeoutError", {
  category: "transient",
  severity: "medium",
  message: "Trial timed out",
  captureStack: false
})<{ readonly trial: number; readonly timeout: Duration.Duration }> {
  override describe() {
    return `trial ${this.trial} timed out after ${Duration.format(this.timeout)}`
  }
}

/** The sampler has no point left (a grid that has been run through). */
export class SearchExhaustedError extends Tagged("SearchExhaustedError", {
  category: "permanent",
  severity: "low",
  message: "Search space exhausted",
  captureStack: false
})<{ readonly study: string; readonly trials: number }> {
  override describe() {
    return `study ${this.study}: the sampler has no point left after ${this.trials} trials`
  }
}

// ---------------------------------------------------------------------------------------------
// Study and trial
// ---------------------------------------------------------------------------------------------

/** Options of `make`. */
export interface Options<S extends Space.Space> {
  /** The study's name in its storage ["study"]. */
  readonly name?: string
  readonly space: S
  /** ["minimize"] */
  readonly direction?: Direction
  /** [tpe()] */
  readonly sampler?: Samplers.Sampler
  /** [none()] */
  readonly pruner?: Pruners.Pruner
  /** The study seed (an integer) [drawn from `Random`; a stored study keeps its own]. */
  readonly seed?: number
  /** [a fresh memory storage] */
  readonly storage?: Storage.Storage
}

/** A running trial, handed to the objective (or returned by `ask`). */
export interface Trial<P> {
  readonly number: number
  readonly params: P
  /**
   * Records an intermediate value at `step` (steps must increase) and asks the pruner: fails
   * with `TrialPrunedError` when the trial should stop (let it propagate from the objective).
   */
  readonly report: (value: number, step: number) => Effect.Effect<void, TrialPrunedError | ValidationError>
  /** Records an intermediate value without asking the pruner. */
  readonly record: (value: number, step: number) => Effect.Effect<void, ValidationError>
  /** Whether the pruner would stop the trial now. */
  readonly shouldPrune: Effect.Effect<boolean>
}

/** What `tell` records: a value (complete), or that the trial was pruned or failed. */
export type Outcome =
  | number
  | { readonly state: "complete"; readonly value: number }
  | { readonly state: "pruned" }
  | { readonly state: "failed"; readonly error?: string }

/** Options of `optimize`. */
export interface OptimizeOptions<P> {
  /** Run until the study holds this many trials (finished ones count, so a resumed study runs the rest). */
  readonly trials: number
  /** Trials at once [1]. */
  readonly concurrency?: number
  /** A trial running longer fails with `TrialTimeoutError` [none]. */
  readonly timeoutPerTrial?: Duration.DurationInput
  /** Runs of a failing trial after the first, with the same parameters [0]. Pruning is not retried. */
  readonly retries?: number
  /**
   * Run each attempt as a task of this pool (`TaskPools`): trials then share the pool's
   * concurrency cap and time limit with the rest of the application, and shutting the pool down
   * fails the trials still running (recorded as failed) [run in the caller's fiber tree].
   */
  readonly pool?: TaskPools.Pool
  /** Called after each trial ends, with its record and the study's best so far (a progress hook). */
  readonly onTrial?: (trial: TrialRecord, best: TrialRecord | undefined) => Effect.Effect<void>
  /** Phantom: ties the options to the study's parameters. */
  readonly _params?: (params: P) => void
}

/** Counts and best of a study. */
export interface Summary {
  readonly name: string
  readonly direction: Direction
  readonly trials: number
  readonly states: Readonly<Record<TrialState, number>>
  readonly best: TrialRecord | undefined
}

/** A study. */
export interface Study<S extends Space.Space> {
  readonly name: string
  readonly space: S
  readonly direction: Direction
  readonly seed: number
  readonly sampler: Samplers.Sampler
  readonly pruner: Pruners.Pruner
  /** Starts the next trial (a trial left running by an interruption first). */
  readonly ask: Effect.Effect<Trial<Space.Params<S>>, SearchExhaustedError | Storage.StorageError>
  /** Ends a running trial. */
  readonly tell: (
    number: number,
    outcome: Outcome
  ) => Effect.Effect<TrialRecord, ValidationError | NotFoundError | Storage.StorageError>
  /** Runs `objective` over trials until the study holds `options.trials` (or the sampler is exhausted). */
  readonly optimize: <E, R>(
    objective: (trial: Trial<Space.Params<S>>) => Effect.Effect<number, E, R>,
    options: OptimizeOptions<Space.Params<S>>
  ) => Effect.Effect<Summary, ValidationError | Storage.StorageError, R>
  /** Every trial, in number order. */
  readonly trials: Effect.Effect<ReadonlyArray<TrialRecord>>
  /** The best complete trial. */
  readonly best: Effect.Effect<Option.Option<TrialRecord>>
  readonly summary: Effect.Effect<Summary>
}

interface State {
  /** Mutated only inside `Ref.update` / `Ref.modify` steps (synchronous, so atomic). */
  readonly trials: Map<number, TrialRecord>
  /** Ended-signals of trials asked in this session. */
  readonly ended: Map<number, Deferred.Deferred<void>>
  nextNumber: number
  /** The finished trials in number order (what samplers learn from). */
  readonly finished: Array<TrialRecord>
  /**
   * Every trial numbered below this has ended (or was asked by hand): a window's wait starts here,
   * and the ended-signals below it are dropped.
   */
  settledBelow: number
  /** Trials found running in storage, or whose run was interrupted, to run again first. */
  readonly reruns: Array<number>
  /** Numbers allocated by an `optimize` that was interrupted before their trial started. */
  readonly free: Array<number>
  exhausted: boolean
}

const finished = (t: TrialRecord): boolean => t.state !== "running"

const trialCounter = MetricKit.counterFamily("foundation_study_trials_total", {
  description: "Trials ended, by study and state"
})

const describeCause = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const e = failure.value
    if (typeof e === "object" && e !== null && "describe" in e && typeof e.describe === "function") return String(e.describe())
    if (e instanceof Error) return `${e.name}: ${e.message}`
    return typeof e === "string" ? e : JSON.stringify(e) ?? String(e)
  }
  if (Cause.isInterruptedOnly(cause)) return "interrupted"
  return Cause.pretty(cause).split("\n")[0] ?? "defect"
}

const validateOptions = <S extends Space.Space>(options: Options<S>) =>
  Either.gen(function*() {
    const name = yield* Validation.nonEmptyString("name", options.name ?? "study")
    const space = yield* Space.validate(options.space)
    const direction = yield* Validation.oneOf("direction", options.direction ?? "minimize", ["minimize", "maximize"])
    const sampler = options.sampler ?? Samplers.tpe()
    const pruner = options.pruner ?? Pruners.none()
    const bound = yield* sampler.bind(space)
    const prune = yield* pruner.bind()
    const seed = options.seed === undefined ? undefined : yield* Validation.int("seed", options.seed)
    return { name, space, direction, sampler, pruner, bound, prune, seed }
  })

/**
 * Opens a study: validates the space, sampler and pruner, then loads the study `name` from the
 * storage (resuming it: its seed, trials and numbering) or creates it.
 */
export const make = <const S extends Space.Space>(
  options: Options<S>
): Effect.Effect<Study<S>, ValidationError | Storage.StorageError> =>
  Effect.gen(function*() {
    const { bound, direction, name, prune, pruner, sampler, seed: givenSeed, space } = yield* validateOptions(options)
    const storage = options.storage ?? (yield* Storage.memory)
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const loaded = yield* storage.load(name)
    let seed: number
    const state: State = { trials: new Map(), ended: new Map(), finished: [], nextNumber: 0, settledBelow: 0, reruns: [], free: [], exhausted: false }
    if (Option.isSome(loaded)) {
      const stored = loaded.value.study
      const storedSpace = yield* Space.fromJson(stored.space)
      if (!Space.sameSpace(storedSpace, space)) {
        return yield* new ValidationError({ field: "space", reason: `differs from the stored study "${name}"'s space` })
      }
      if (stored.direction !== direction) {
        return yield* new ValidationError({ field: "direction", reason: `the stored study "${name}" is ${stored.direction}d` })
      }
      if (givenSeed !== undefined && givenSeed !== stored.seed) {
        return yield* new ValidationError({ field: "seed", reason: `the stored study "${name}" has seed ${stored.seed}` })
      }
      seed = stored.seed
      for (const t of loaded.value.trials) {
        state.trials.set(t.number, t)
        if (t.state === "running") state.reruns.push(t.number)
        else state.finished.push(t)
        state.nextNumber = Math.max(state.nextNumber, t.number + 1)
      }
    } else {
      seed = givenSeed ?? (yield* Random.nextIntBetween(0, 2 ** 31 - 1))
      yield* storage.saveStudy({
        name,
        direction,
        space: Space.toJson(space),
        seed,
        sampler: sampler.name,
        pruner: pruner.name,
        createdAt: yield* Clock.currentTimeMillis
      })
    }
    const ref = yield* Ref.make(state)

    const snapshot = Effect.map(Ref.get(ref), (s) => [...s.trials.values()].sort((a, b) => a.number - b.number))

    const put = (record: TrialRecord) => Ref.update(ref, (s) => (s.trials.set(record.number, record), s))

    /** Allocates the next trial number (a rerun first), or none when exhausted. */
    const allocate = Ref.modify(ref, (s): [Option.Option<{ number: number; rerun: TrialRecord | undefined }>, State] => {
      const rerun = s.reruns.shift()
      if (rerun !== undefined) return [Option.some({ number: rerun, rerun: s.trials.get(rerun) }), s]
      if (s.exhausted) return [Option.none(), s]
      const number = s.free.length > 0 ? s.free.shift()! : s.nextNumber++
      return [Option.some({ number, rerun: undefined }), s]
    })

    /** A fresh ended-signal for trial `number` (later trials of `optimize` may wait for it). */
    const setSignal = (number: number) =>
      Ref.update(ref, (s) => (s.ended.set(number, Deferred.unsafeMake<void>(FiberId.none)), s))

    /** The finished trials numbered below `below` (all of them when undefined), in number order. */
    const window = (s: State, below: number | undefined): ReadonlyArray<TrialRecord> => {
      if (below === undefined) return s.finished
      let lo = 0
      let hi = s.finished.length
      while (lo < hi) {
        const mid = (lo + hi) >> 1
        if (s.finished[mid]!.number < below) lo = mid + 1
        else hi = mid
      }
      return hi === s.finished.length ? s.finished : s.finished.slice(0, hi)
    }

    /** Samples trial `number` from the finished trials numbered below `below` (all when undefined). */
    const sample = (number: number, below: number | undefined) =>
      Effect.map(Ref.get(ref), (s) =>
        bound.sample({ seed, number, direction, history: bound.usesHistory ? window(s, below) : [] }))

    /**
     * The trial handle. With `below` (in `optimize`), the pruner compares the trial with the
     * finished trials numbered below `below` only, the window its sampler saw, so its decisions do
     * not depend on scheduling; without (`ask`), with every trial of the study, as Optuna does.
     */
    const makeTrial = (number: number, params: Space.AnyParams, below: number | undefined): Trial<Space.Params<S>> => {
      const record = (value: number, step: number) =>
        Effect.gen(function*() {
          const v = yield* Validation.number("value", value)
          const st = yield* Validation.number("step", step, { min: 0 })
          // Checked and appended in one step, so a concurrent tell cannot be overwritten.
          const result = yield* Ref.modify(ref, (s): [Either.Either<void, ValidationError>, State] => {
            const current = s.trials.get(number)
            if (current === undefined || current.state !== "running") {
              return [Either.left(new ValidationError({ field: "trial", reason: `trial ${number} is not running` })), s]
            }
            const last = current.intermediate[current.intermediate.length - 1]
            if (last !== undefined && st <= last.step) {
              return [
                Either.left(new ValidationError({ field: "step", reason: `must be > the last reported step ${last.step}, got ${st}` })),
                s
              ]
            }
            s.trials.set(number, { ...current, intermediate: [...current.intermediate, { step: st, value: v }] })
            return [Either.void, s]
          })
          return yield* result
        })
      const shouldPrune = Effect.map(Ref.get(ref), (s) => {
        const current = s.trials.get(number)
        if (current === undefined || current.state !== "running") return false
        const trials = below === undefined ? [...s.trials.values()] : window(s, below)
        return prune({ trial: current, trials, direction })
      })
      return {
        number,
        params: params as Space.Params<S>,
        record,
        shouldPrune,
        report: (value, step) =>
          Effect.zipRight(
            record(value, step),
            Effect.flatMap(shouldPrune, (p) => p ? Effect.fail(new TrialPrunedError({ trial: number, step })) : Effect.void)
          )
      }
    }

    /** Starts trial `number` (fresh or rerun) with `params`. */
    const start = (number: number, params: Space.AnyParams, below: number | undefined) =>
      Effect.gen(function*() {
        const record: TrialRecord = {
          number,
          params,
          state: "running",
          value: undefined,
          intermediate: [],
          error: undefined,
          attempts: 0,
          startedAt: yield* Clock.currentTimeMillis,
          endedAt: undefined
        }
        yield* put(record)
        yield* storage.saveTrial(name, record)
        return makeTrial(number, params, below)
      })

    /**
     * After an interruption or a failure (storage): a started trial is queued to run again (it
     * keeps its number and parameters); a number allocated to a trial that never started is
     * handed back.
     */
    const giveBack = (number: number) =>
      Ref.update(ref, (s) => {
        const t = s.trials.get(number)
        if (t === undefined && s.exhausted) return s
        const queue = t === undefined ? s.free : t.state === "running" ? s.reruns : undefined
        if (queue !== undefined && !queue.includes(number)) {
          queue.push(number)
          queue.sort((a, b) => a - b)
          // It will run (or be sampled) again: windows that hold it must wait for it again.
          s.settledBelow = Math.min(s.settledBelow, number)
        }
        return s
      })

    /** Trials wait for their window only when the sampler or the pruner learns from other trials. */
    const learns = bound.usesHistory || pruner.usesHistory

    /**
     * The next trial. `concurrency` (from `optimize`): the trial sees the finished trials numbered
     * below n − concurrency + 1, waiting for them, and later trials of `optimize` wait for it.
     */
    const askWith = (concurrency: number | undefined) =>
      Effect.flatMap(allocate, (slot) =>
        Option.isNone(slot)
          ? Effect.flatMap(Ref.get(ref), (s) => new SearchExhaustedError({ study: name, trials: s.nextNumber }))
          : Effect.onExit(
            prepare(slot.value.number, slot.value.rerun, concurrency),
            (exit) => Exit.isFailure(exit) ? giveBack(slot.value.number) : Effect.void
          ))

    const prepare = (number: number, rerun: TrialRecord | undefined, concurrency: number | undefined) =>
      Effect.gen(function*() {
        const below = concurrency === undefined ? undefined : number - concurrency + 1
        if (below !== undefined && learns) {
          yield* setSignal(number)
          yield* awaitEndedBelow(below)
        }
        if (rerun !== undefined) return yield* start(number, rerun.params, below)
        const params = yield* sample(number, below)
        if (params === undefined) {
          yield* Ref.update(ref, (s) => {
            s.exhausted = true
            s.ended.delete(number)
            // Hand the number back when nothing was allocated after it.
            if (s.nextNumber === number + 1) s.nextNumber = number
            return s
          })
          return yield* new SearchExhaustedError({ study: name, trials: number })
        }
        return yield* start(number, params, below)
      })

    /**
     * Waits until every trial numbered below `below` that `optimize` started has ended (trials
     * asked by hand have no signal and are not waited for). From the settled watermark up, so
     * each number is looked at about once over a run, not once per trial.
     */
    const awaitEndedBelow = (below: number): Effect.Effect<void> =>
      Effect.flatMap(Ref.get(ref), (s) => {
        const waits: Array<Effect.Effect<void>> = []
        for (let n = s.settledBelow; n < below; n++) {
          const t = s.trials.get(n)
          const d = s.ended.get(n)
          if (d !== undefined && (t === undefined || !finished(t))) waits.push(Deferred.await(d))
        }
        const settle = Ref.update(ref, (st) => {
          // Never past a number handed back to run again (an interruption may have raced this wait).
          const to = Math.min(below, st.reruns[0] ?? Infinity, st.free[0] ?? Infinity)
          if (to > st.settledBelow) {
            for (let n = st.settledBelow; n < to; n++) st.ended.delete(n)
            st.settledBelow = to
          }
          return st
        })
        return waits.length === 0 ? settle : Effect.zipRight(Effect.all(waits, { discard: true }), settle)
      })

    let bestValue: number | undefined = bestOf(direction, state.finished)?.value

    /** Ends a running trial: in memory, in storage and for waiting trials, all or (on a storage failure) memory only. */
    const end = (number: number, change: (current: TrialRecord, now: number) => TrialRecord) =>
      Effect.uninterruptible(Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const result = yield* Ref.modify(ref, (s): [Either.Either<TrialRecord, ValidationError | NotFoundError>, State] => {
          const current = s.trials.get(number)
          if (current === undefined) {
            return [Either.left(new NotFoundError({ resource: "trial", key: String(number) })), s]
          }
          if (current.state !== "running") {
            return [Either.left(new ValidationError({ field: "number", reason: `trial ${number} is already ${current.state}` })), s]
          }
          const next = change(current, now)
          s.trials.set(number, next)
          let at = s.finished.length
          while (at > 0 && s.finished[at - 1]!.number > number) at--
          s.finished.splice(at, 0, next)
          return [Either.right(next), s]
        })
        const record = yield* result
        yield* storage.saveTrial(name, record)
        const signal = (yield* Ref.get(ref)).ended.get(number)
        if (signal !== undefined) yield* Deferred.succeed(signal, undefined)
        MetricKit.bump(trialCounter({ study: name, state: record.state }))
        telemetry?.unsafeEmit(events.trialEnded, {
          number: record.number,
          ...(record.value !== undefined ? { value: record.value } : {}),
          duration: now - record.startedAt,
          attempts: record.attempts
        }, { study: name, state: record.state, ...(record.error !== undefined ? { error: record.error } : {}) })
        if (record.state === "complete" && record.value !== undefined) {
          const improved = bestValue === undefined ||
            (direction === "minimize" ? record.value < bestValue : record.value > bestValue)
          if (improved) {
            bestValue = record.value
            telemetry?.unsafeEmit(events.bestImproved, { number: record.number, value: record.value }, {
              study: name,
              params: record.params
            })
          }
        }
        return record
      }))

    const lastValue = (t: TrialRecord) => t.intermediate.length > 0 ? t.intermediate[t.intermediate.length - 1]!.value : undefined

    const tell = (number: number, outcome: Outcome) =>
      Effect.gen(function*() {
        const normalized = typeof outcome === "number" ? { state: "complete" as const, value: outcome } : outcome
        switch (normalized.state) {
          case "complete": {
            const value = yield* Validation.number("value", normalized.value)
            return yield* end(number, (t, now) => ({ ...t, state: "complete", value, endedAt: now, attempts: Math.max(t.attempts, 1) }))
          }
          case "pruned":
            return yield* end(number, (t, now) => ({ ...t, state: "pruned", value: lastValue(t), endedAt: now, attempts: Math.max(t.attempts, 1) }))
          case "failed":
            return yield* end(number, (t, now) => ({
              ...t,
              state: "failed",
              value: undefined,
              error: normalized.error ?? "failed",
              endedAt: now,
              attempts: Math.max(t.attempts, 1)
            }))
          default:
            return yield* new ValidationError({ field: "outcome", reason: "must be a number or { state: complete | pruned | failed }" })
        }
      })

    const trialRandom = (number: number) => Random.make(`${seed}/${number}`)

    const optimize = <E, R>(
      objective: (trial: Trial<Space.Params<S>>) => Effect.Effect<number, E, R>,
      opts: OptimizeOptions<Space.Params<S>>
    ): Effect.Effect<Summary, ValidationError | Storage.StorageError, R> =>
      Effect.gen(function*() {
        const total = yield* Validation.nonNegativeInt("trials", opts.trials)
        const concurrency = yield* Validation.positiveInt("concurrency", opts.concurrency ?? 1)
        const retries = yield* Validation.nonNegativeInt("retries", opts.retries ?? 0)
        const timeout = opts.timeoutPerTrial === undefined
          ? undefined
          : yield* Validation.duration("timeoutPerTrial", opts.timeoutPerTrial)
        const s0 = yield* Ref.get(ref)
        let ended = 0
        for (const t of s0.trials.values()) if (finished(t)) ended++
        const remaining = Math.max(0, total - ended)

        const runTrial = (trial: Trial<Space.Params<S>>) =>
          Effect.gen(function*() {
            const attempt = Effect.suspend(() => {
              // A retry starts over: count it, forget the previous attempt's intermediate values.
              return Effect.zipRight(
                Ref.update(ref, (s) => {
                  const t = s.trials.get(trial.number)
                  if (t !== undefined) s.trials.set(trial.number, { ...t, attempts: t.attempts + 1, intermediate: [] })
                  return s
                }),
                objective(trial)
              )
            })
            const timed = timeout === undefined ? attempt : Effect.timeoutFail(attempt, {
              duration: timeout,
              onTimeout: () => new TrialTimeoutError({ trial: trial.number, timeout })
            })
            // In a pool the time limit counts from the moment the trial has its slot.
            const pooled = opts.pool === undefined ? timed : opts.pool.execute(timed)
            const retried = retries === 0 ? pooled : Effect.retry(pooled, {
              times: retries,
              while: (e) => !(e instanceof TrialPrunedError)
            })
            const exit = yield* Effect.exit(Effect.withRandom(retried, trialRandom(trial.number)))
            const record = yield* Exit.match(exit, {
              onSuccess: (value) =>
                Number.isFinite(value)
                  ? end(trial.number, (t, now) => ({ ...t, state: "complete", value, endedAt: now }))
                  : end(trial.number, (t, now) => ({ ...t, state: "failed", error: `objective returned ${value}`, endedAt: now })),
              onFailure: (cause) => {
                const failure = Cause.failureOption(cause)
                if (Option.isSome(failure) && failure.value instanceof TrialPrunedError) {
                  return end(trial.number, (t, now) => ({ ...t, state: "pruned", value: lastValue(t), endedAt: now }))
                }
                return end(trial.number, (t, now) => ({ ...t, state: "failed", error: describeCause(cause), endedAt: now }))
              }
            }).pipe(Effect.catchTag("NotFoundError", (e) => Effect.die(e)))
            if (opts.onTrial !== undefined) {
              const all = yield* snapshot
              // A progress hook that fails or dies is logged; it never stops the run.
              yield* Effect.catchAllCause(
                opts.onTrial(record, bestOf(direction, all)),
                (cause) => Effect.logWarning("study onTrial hook failed", cause)
              )
            }
          })

        const one = Effect.gen(function*() {
          const trial = yield* askWith(concurrency).pipe(
            Effect.map(Option.some),
            Effect.catchTag("SearchExhaustedError", () => Effect.succeed(Option.none()))
          )
          if (Option.isSome(trial)) yield* Effect.onInterrupt(runTrial(trial.value), () => giveBack(trial.value.number))
        })

        yield* Effect.forEach(Array.from({ length: remaining }), () => one, { concurrency, discard: true })
        return yield* summary
      }).pipe(Effect.withSpan("study.optimize", { attributes: { study: name } }))

    const summary = Effect.map(snapshot, (all): Summary => {
      const states: Record<TrialState, number> = { running: 0, complete: 0, pruned: 0, failed: 0 }
      for (const t of all) states[t.state]++
      return { name, direction, trials: all.length, states, best: bestOf(direction, all) }
    })

    const study: Study<S> = {
      name,
      space: options.space,
      direction,
      seed,
      sampler,
      pruner,
      ask: askWith(undefined),
      tell,
      optimize,
      trials: snapshot,
      best: Effect.map(snapshot, (all) => Option.fromNullable(bestOf(direction, all))),
      summary
    }
    return study
  })

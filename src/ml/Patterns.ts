/**
 * Composition patterns for ML workflows: a pipeline of stages with per-stage error policies, an
 * ensemble with per-member timeouts, a quorum and explicit aggregation rules, and a map-reduce
 * with bounded concurrency.
 *
 * Guarantees:
 * - pipeline: stages run in order, one at a time; a failure is handled by the failing stage's
 *   policy (`halt`, `skip`, `compensate`, see `pipeline`); compensations really run, in reverse
 *   order of completion, and uninterruptibly; the result lists one outcome per stage;
 * - ensemble: members run concurrently, each under its own timeout; a member that fails, dies or
 *   times out is recorded, never fatal; fewer answers than the quorum (default ⌊n/2⌋ + 1) fail
 *   with `QuorumNotReachedError` carrying the answers; averages are renormalised over the members
 *   that answered; ties are broken by an explicit, documented rule (default: member order);
 * - mapReduce: at most `concurrency` map effects run at once; reduction is in input order, so the
 *   result does not depend on completion order;
 * - bad options fail with a `ValidationError` naming the field before any user code runs.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Equal from "effect/Equal"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { Tagged, ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"

// ---------------------------------------------------------------------------------------------
// Pipeline
// ---------------------------------------------------------------------------------------------

/** What a pipeline does when a stage fails. */
export type ErrorPolicy = "halt" | "skip" | "compensate"

/**
 * One stage. Stages share one value type `A`: a skipped stage passes its input on unchanged, so
 * its output must have the type of its input.
 */
export interface Stage<A, E = never, R = never> {
  readonly name: string
  readonly run: (input: A) => Effect.Effect<A, E, R>
  /** What to do when `run` fails (default "halt"). */
  readonly onError?: ErrorPolicy
  /**
   * Undoes this stage once it has completed, when a later stage with policy "compensate" fails.
   * Receives the stage's input, the error that triggered the rollback, and the stage's output.
   */
  readonly compensate?: (input: A, error: E, output: A) => Effect.Effect<void, E, R>
}

/** The record of one stage. */
export type StageOutcome<A, E> =
  | { readonly stage: string; readonly status: "ok"; readonly output: A }
  | { readonly stage: string; readonly status: "skipped"; readonly error: E }
  /** Completed, then undone by its compensation during a rollback. */
  | { readonly stage: string; readonly status: "compensated"; readonly output: A }
  /** Completed; its compensation failed during a rollback (the rollback went on). */
  | { readonly stage: string; readonly status: "compensationFailed"; readonly output: A; readonly error: E }
  /** The stage that stopped the pipeline. */
  | { readonly stage: string; readonly status: "failed"; readonly error: E }

/** A pipeline that ran to its end. */
export interface PipelineResult<A, E> {
  readonly output: A
  readonly outcomes: ReadonlyArray<StageOutcome<A, E>>
}

/** A pipeline stopped at `stage`. */
export class PipelineError<A = unknown, E = unknown> extends Tagged("PipelineError", {
  category: "permanent",
  severity: "medium",
  message: "Pipeline failed"
})<{
  /** The stage that failed. */
  readonly stage: string
  /** Its error. */
  readonly error: E
  /** The policy that applied: "halt" (nothing undone) or "compensate" (rolled back). */
  readonly policy: "halt" | "compensate"
  /** One outcome per stage that ran, in order, the failed stage last. */
  readonly outcomes: ReadonlyArray<StageOutcome<A, E>>
  /** The stages whose compensation ran successfully, in the order they ran (reverse order of stages). */
  readonly compensated: ReadonlyArray<string>
}> {
  override describe() {
    return `Pipeline stage "${this.stage}" failed (${this.policy})${
      this.policy === "compensate" ? `; compensated: [${this.compensated.join(", ")}]` : ""
    }`
  }
}

const validateStages = <A, E, R>(stages: ReadonlyArray<Stage<A, E, R>>) =>
  Effect.gen(function*() {
    const seen = new Set<string>()
    for (const [i, stage] of stages.entries()) {
      yield* Validation.nonEmptyString(`stages[${i}].name`, stage.name)
      if (seen.has(stage.name)) return yield* Validation.invalid(`stages[${i}].name`, `duplicate stage "${stage.name}"`)
      seen.add(stage.name)
      yield* Validation.optional(stage.onError, "halt", (p) => Validation.oneOf(`stages[${i}].onError`, p, ["halt", "skip", "compensate"]))
    }
  })

/**
 * Runs `stages` in order on `input`. When a stage fails, its `onError` policy decides:
 *
 * - `"halt"` (default): stop and fail with `PipelineError` (policy "halt"); nothing is undone.
 * - `"skip"`: record `skipped` and pass the stage's input, unchanged, to the next stage.
 * - `"compensate"`: roll back, then stop. The `compensate` hooks of the stages that completed
 *   (status "ok"; skipped stages did nothing to undo) run one at a time in reverse order, each
 *   with (its input, the failing stage's error, its output), uninterruptibly. A compensation
 *   that fails is recorded (`compensationFailed`) and the rollback goes on. The failing stage's
 *   own hook does not run (it did not complete). The pipeline then fails with `PipelineError`
 *   (policy "compensate", `compensated` = the stages undone, in the order they were undone).
 */
export const pipeline = <A, E = never, R = never>(
  stages: ReadonlyArray<Stage<A, E, R>>,
  input: A
): Effect.Effect<PipelineResult<A, E>, PipelineError<A, E> | ValidationError, R> =>
  Effect.gen(function*() {
    yield* validateStages(stages)
    const outcomes: Array<StageOutcome<A, E>> = []
    const completed: Array<{ readonly position: number; readonly stage: Stage<A, E, R>; readonly input: A; readonly output: A }> = []
    let value = input
    for (const stage of stages) {
      const result = yield* Effect.either(stage.run(value))
      if (Either.isRight(result)) {
        completed.push({ position: outcomes.length, stage, input: value, output: result.right })
        outcomes.push({ stage: stage.name, status: "ok", output: result.right })
        value = result.right
        continue
      }
      const error = result.left
      const policy = stage.onError ?? "halt"
      if (policy === "skip") {
        outcomes.push({ stage: stage.name, status: "skipped", error })
        continue
      }
      outcomes.push({ stage: stage.name, status: "failed", error })
      const compensated: Array<string> = []
      if (policy === "compensate") {
        yield* Effect.uninterruptible(Effect.forEach(completed.slice().reverse(), (done) => {
          const hook = done.stage.compensate
          if (hook === undefined) return Effect.void
          return Effect.either(hook(done.input, error, done.output)).pipe(Effect.map((undone) => {
            if (Either.isRight(undone)) {
              compensated.push(done.stage.name)
              outcomes[done.position] = { stage: done.stage.name, status: "compensated", output: done.output }
            } else {
              outcomes[done.position] = {
                stage: done.stage.name,
                status: "compensationFailed",
                output: done.output,
                error: undone.left
              }
            }
          }))
        }, { discard: true }))
      }
      return yield* new PipelineError<A, E>({ stage: stage.name, error, policy, outcomes, compensated })
    }
    return { output: value, outcomes }
  }).pipe(Effect.withSpan("foundation.ml.pipeline"))

// ---------------------------------------------------------------------------------------------
// Ensemble
// ---------------------------------------------------------------------------------------------

/** One member of an ensemble. */
export interface Member<A, E = never, R = never> {
  readonly name: string
  readonly run: Effect.Effect<A, E, R>
  /** Weight for "weightedVote" and "weightedAverage"; a finite number > 0 (default 1). */
  readonly weight?: number
}

/** What happened to one member. */
export type MemberOutcome<A, E> =
  | { readonly name: string; readonly status: "answered"; readonly value: A; readonly weight: number }
  | { readonly name: string; readonly status: "failed"; readonly cause: Cause.Cause<E> }
  | { readonly name: string; readonly status: "timedOut" }

/** A member's answer. */
export interface Answer<A> {
  readonly name: string
  readonly value: A
  readonly weight: number
}

/**
 * How to choose among tied values (majority and weighted vote):
 * - `"first"` (default): the value first given by a member in *member order* (the order of the
 *   `members` array, not completion order, so the result never depends on timing);
 * - `"lowest"`: the smallest value (numbers and bigints numerically, otherwise by `String(value)`
 *   in code-unit order);
 * - a comparator: the tied value that sorts first (negative when `a` should win over `b`).
 */
export type TieBreak<A> = "first" | "lowest" | ((a: A, b: A) => number)

/** How answers are combined. */
export type Combine<A, B> = "majority" | "weightedVote" | ((answers: ReadonlyArray<Answer<A>>) => B)

/** Options of `ensemble`. */
export interface EnsembleOptions<A, B> {
  /** Each member's own time budget. */
  readonly timeout: Duration.DurationInput
  /** Minimum number of answers, 1 ≤ quorum ≤ members (default ⌊n/2⌋ + 1). */
  readonly quorum?: number
  readonly combine: Combine<A, B> | NumericCombine<A>
  readonly tieBreak?: TieBreak<A>
}

/** Numeric combinations (members must answer numbers). */
export type NumericCombine<A> = [A] extends [number] ? "average" | "weightedAverage" : never

/** The outcome of an ensemble. */
export interface EnsembleResult<A, B> {
  readonly value: B
  /** The answers, in member order. */
  readonly answers: ReadonlyArray<Answer<A>>
  /** One outcome per member, in member order. */
  readonly outcomes: ReadonlyArray<MemberOutcome<A, unknown>>
}

/** Fewer members answered than the quorum. */
export class QuorumNotReachedError<A = unknown> extends Tagged("QuorumNotReachedError", {
  category: "transient",
  severity: "medium",
  message: "Ensemble quorum not reached"
})<{
  readonly quorum: number
  /** The answers that did arrive, in member order. */
  readonly answers: ReadonlyArray<Answer<A>>
  readonly outcomes: ReadonlyArray<MemberOutcome<A, unknown>>
}> {
  override describe() {
    return `Ensemble quorum not reached: ${this.answers.length} of ${this.outcomes.length} members answered, ${this.quorum} required`
  }
}

const compareLowest = (a: unknown, b: unknown): number =>
  (typeof a === "number" && typeof b === "number") || (typeof a === "bigint" && typeof b === "bigint")
    ? (a < b ? -1 : a > b ? 1 : 0)
    : String(a) < String(b)
    ? -1
    : String(a) > String(b)
    ? 1
    : 0

/**
 * Groups equal values (`Equal.equals`) with a score; returns the best score's value, ties broken
 * by `tieBreak`. Groups are kept in order of first appearance in member order.
 */
export const vote = <A>(
  answers: ReadonlyArray<Answer<A>>,
  scoreOf: (answer: Answer<A>) => number,
  tieBreak: TieBreak<A> = "first"
): A | undefined => {
  const groups: Array<{ value: A; score: number }> = []
  for (const answer of answers) {
    const group = groups.find((g) => Equal.equals(g.value, answer.value))
    if (group === undefined) groups.push({ value: answer.value, score: scoreOf(answer) })
    else group.score += scoreOf(answer)
  }
  const top = Math.max(...groups.map((g) => g.score))
  const tied = groups.filter((g) => g.score === top).map((g) => g.value)
  if (tieBreak === "first") return tied[0]
  const compare = tieBreak === "lowest" ? compareLowest : tieBreak
  return tied.reduce((best, v) => (compare(v, best) < 0 ? v : best))
}

/** Weighted mean renormalised over the given answers: Σ wᵢ·xᵢ / Σ wᵢ. */
export const weightedMean = (answers: ReadonlyArray<Answer<number>>): number =>
  answers.reduce((s, a) => s + a.weight * a.value, 0) / answers.reduce((s, a) => s + a.weight, 0)

const validateEnsemble = <A, E, R, B>(members: ReadonlyArray<Member<A, E, R>>, options: EnsembleOptions<A, B>) =>
  Effect.gen(function*() {
    if (members.length === 0) return yield* Validation.invalid("members", "must not be empty")
    const seen = new Set<string>()
    for (const [i, m] of members.entries()) {
      yield* Validation.nonEmptyString(`members[${i}].name`, m.name)
      if (seen.has(m.name)) return yield* Validation.invalid(`members[${i}].name`, `duplicate member "${m.name}"`)
      seen.add(m.name)
      if (m.weight !== undefined) {
        yield* Validation.number(`members[${i}].weight`, m.weight, { min: 0, minExclusive: true })
      }
    }
    const timeout = yield* Validation.duration("timeout", options.timeout)
    const quorum = yield* Validation.optional(
      options.quorum,
      Math.floor(members.length / 2) + 1,
      (q) => Validation.int("quorum", q, { min: 1, max: members.length })
    )
    const combine = options.combine
    if (typeof combine !== "function") {
      yield* Validation.oneOf("combine", combine, ["majority", "weightedVote", "average", "weightedAverage"])
    }
    const tieBreak = options.tieBreak
    if (tieBreak !== undefined && typeof tieBreak !== "function") {
      yield* Validation.oneOf("tieBreak", tieBreak, ["first", "lowest"])
    }
    return { timeout, quorum }
  })

/**
 * Runs every member concurrently, each under `timeout`, then combines the answers:
 * `"majority"` (most frequent value), `"weightedVote"` (value with the largest total weight),
 * `"average"` (plain mean of the answers), `"weightedAverage"` (Σ wᵢxᵢ / Σ wᵢ over the members
 * that answered: a missing member's weight is removed, not counted as zero), or a function of the
 * answers. Ties follow `tieBreak` (default "first", i.e. member order).
 */
export const ensemble: {
  <A extends number, E, R>(
    members: ReadonlyArray<Member<A, E, R>>,
    options: EnsembleOptions<A, number> & { readonly combine: "average" | "weightedAverage" }
  ): Effect.Effect<EnsembleResult<A, number>, QuorumNotReachedError<A> | ValidationError, R>
  <A, E, R, B = A>(
    members: ReadonlyArray<Member<A, E, R>>,
    options: EnsembleOptions<A, B> & { readonly combine: Combine<A, B> }
  ): Effect.Effect<EnsembleResult<A, B>, QuorumNotReachedError<A> | ValidationError, R>
} = <A, E, R, B>(
  members: ReadonlyArray<Member<A, E, R>>,
  options: EnsembleOptions<A, B>
): Effect.Effect<EnsembleResult<A, A | B | number>, QuorumNotReachedError<A> | ValidationError, R> =>
  Effect.gen(function*() {
    const { quorum, timeout } = yield* validateEnsemble(members, options)
    const outcomes: ReadonlyArray<MemberOutcome<A, E>> = yield* Effect.forEach(
      members,
      (member) =>
        Effect.map(Effect.exit(Effect.timeoutOption(member.run, timeout)), (exit): MemberOutcome<A, E> =>
          Exit.isFailure(exit)
            ? { name: member.name, status: "failed", cause: exit.cause }
            : Option.isNone(exit.value)
            ? { name: member.name, status: "timedOut" }
            : { name: member.name, status: "answered", value: exit.value.value, weight: member.weight ?? 1 }),
      { concurrency: "unbounded" }
    )
    const answers: ReadonlyArray<Answer<A>> = outcomes.flatMap((o) =>
      o.status === "answered" ? [{ name: o.name, value: o.value, weight: o.weight }] : []
    )
    if (answers.length < quorum) return yield* new QuorumNotReachedError<A>({ quorum, answers, outcomes })
    const combine = options.combine
    const numeric = answers as unknown as ReadonlyArray<Answer<number>>
    const value: A | B | number = typeof combine === "function"
      ? combine(answers)
      : combine === "majority"
      ? vote(answers, () => 1, options.tieBreak)!
      : combine === "weightedVote"
      ? vote(answers, (a) => a.weight, options.tieBreak)!
      : combine === "average"
      ? weightedMean(numeric.map((a) => ({ ...a, weight: 1 })))
      : weightedMean(numeric)
    return { value, answers, outcomes }
  }).pipe(Effect.withSpan("foundation.ml.ensemble"))

// ---------------------------------------------------------------------------------------------
// Map-reduce
// ---------------------------------------------------------------------------------------------

/** Options of `mapReduce`. */
export interface MapReduceOptions<T, B, Acc, E, R> {
  readonly map: (item: T, index: number) => Effect.Effect<B, E, R>
  /** Folds the mapped values, in input order. */
  readonly reduce: (acc: Acc, value: B, index: number) => Acc
  readonly initial: Acc
  /** Maximum number of map effects running at once (a positive integer). */
  readonly concurrency: number
}

/**
 * Maps every item with at most `concurrency` map effects in flight, then reduces the results in
 * input order. The first map failure fails the whole run and interrupts the maps in flight.
 */
export const mapReduce = <T, B, Acc, E, R>(
  items: Iterable<T>,
  options: MapReduceOptions<T, B, Acc, E, R>
): Effect.Effect<Acc, E | ValidationError, R> =>
  Effect.gen(function*() {
    const concurrency = yield* Validation.positiveInt("concurrency", options.concurrency)
    const mapped = yield* Effect.forEach(items, options.map, { concurrency })
    return mapped.reduce(options.reduce, options.initial)
  })

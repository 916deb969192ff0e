/**
 * Where a study keeps its definition and trials: in memory, or in the data layer's
 * repositories (memory, SQLite or PostgreSQL through `RepositoryStore`).
 *
 * Guarantees:
 * - `saveTrial` is an upsert by (study, number): the latest record of a trial wins, so a trial
 *   is written when asked (state `running`) and again when it ends.
 * - `load` returns the study and its trials in number order, exactly as saved, so a study
 *   reopened from the same storage resumes where it stopped.
 * - The repository storage keeps one row per study in `foundation_studies` and one per trial in
 *   `foundation_trials` (indexed by study); store failures are `StoreError`s.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import type { ValidationError } from "../../errors/FoundationError.js"
import * as Criteria from "../../data/Criteria.js"
import * as Repository from "../../data/Repository.js"
import type { Direction, TrialRecord } from "./Trial.js"

/** A study's definition, as stored. */
export interface StudyRecord {
  readonly name: string
  readonly direction: Direction
  /** The space in JSON form (`Space.toJson`). */
  readonly space: Readonly<Record<string, unknown>>
  readonly seed: number
  readonly sampler: string
  readonly pruner: string
  readonly createdAt: number
}

/** A stored study with its trials in number order. */
export interface Loaded {
  readonly study: StudyRecord
  readonly trials: ReadonlyArray<TrialRecord>
}

/** Errors a storage may fail with. */
export type StorageError = Repository.StoreError | ValidationError

/** A study storage. */
export interface Storage {
  /** `memory` or the repository store's kind (`memory`, `sqlite`, `pg`). */
  readonly kind: string
  readonly load: (name: string) => Effect.Effect<Option.Option<Loaded>, StorageError>
  readonly saveStudy: (study: StudyRecord) => Effect.Effect<void, StorageError>
  readonly saveTrial: (study: string, trial: TrialRecord) => Effect.Effect<void, StorageError>
  /** The names of the stored studies. */
  readonly list: Effect.Effect<ReadonlyArray<string>, StorageError>
}

/** A fresh in-memory storage (shared by every study opened on it). */
export const memory: Effect.Effect<Storage> = Effect.map(
  Ref.make(new Map<string, { study: StudyRecord; trials: Map<number, TrialRecord> }>()),
  (ref): Storage => ({
    kind: "memory",
    load: (name) =>
      Effect.map(Ref.get(ref), (studies) =>
        Option.map(Option.fromNullable(studies.get(name)), (entry) => ({
          study: entry.study,
          trials: [...entry.trials.values()].sort((a, b) => a.number - b.number)
        }))),
    saveStudy: (study) =>
      Ref.update(ref, (studies) => {
        const next = new Map(studies)
        next.set(study.name, { study, trials: studies.get(study.name)?.trials ?? new Map() })
        return next
      }),
    saveTrial: (study, trial) =>
      Ref.update(ref, (studies) => {
        const entry = studies.get(study)
        if (entry === undefined) return studies
        entry.trials.set(trial.number, trial)
        return studies
      }),
    list: Effect.map(Ref.get(ref), (studies) => [...studies.keys()].sort())
  })
)

const Choice = Schema.Union(Schema.String, Schema.Number, Schema.Boolean)

const StudyRow = Schema.Struct({
  name: Schema.String,
  direction: Schema.Literal("minimize", "maximize"),
  space: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  seed: Schema.Number,
  sampler: Schema.String,
  pruner: Schema.String,
  createdAt: Schema.Number
})

const TrialRow = Schema.Struct({
  id: Schema.String,
  study: Schema.String,
  number: Schema.Number,
  params: Schema.Record({ key: Schema.String, value: Choice }),
  state: Schema.Literal("running", "complete", "pruned", "failed"),
  value: Schema.optional(Schema.Number),
  intermediate: Schema.Array(Schema.Struct({ step: Schema.Number, value: Schema.Number })),
  error: Schema.optional(Schema.String),
  attempts: Schema.Number,
  startedAt: Schema.Number,
  endedAt: Schema.optional(Schema.Number)
})
type TrialRow = typeof TrialRow.Type

const toRow = (study: string, t: TrialRecord): TrialRow => ({
  id: `${study}#${t.number}`,
  study,
  number: t.number,
  params: t.params,
  state: t.state,
  ...(t.value !== undefined ? { value: t.value } : {}),
  intermediate: t.intermediate,
  ...(t.error !== undefined ? { error: t.error } : {}),
  attempts: t.attempts,
  startedAt: t.startedAt,
  ...(t.endedAt !== undefined ? { endedAt: t.endedAt } : {})
})

const fromRow = (row: TrialRow): TrialRecord => ({
  number: row.number,
  params: row.params,
  state: row.state,
  value: row.value,
  intermediate: row.intermediate,
  error: row.error,
  attempts: row.attempts,
  startedAt: row.startedAt,
  endedAt: row.endedAt
})

/** A storage on the `RepositoryStore` of the context (SQLite or PostgreSQL for durable studies). */
export const repository: Effect.Effect<Storage, StorageError, Repository.RepositoryStore> = Effect.gen(function*() {
  const store = yield* Repository.RepositoryStore
  const studies = yield* Repository.make({ name: "foundation_studies", schema: StudyRow, key: "name" })
  const trials = yield* Repository.make({ name: "foundation_trials", schema: TrialRow, key: "id", indexes: ["study"] })
  return {
    kind: store.kind,
    load: (name) =>
      Effect.gen(function*() {
        const study = yield* studies.find(name)
        if (Option.isNone(study)) return Option.none()
        const rows = yield* trials.query({ where: Criteria.eq("study", name), orderBy: { path: "number" } })
        return Option.some({ study: study.value.value, trials: rows.map((r) => fromRow(r.value)) })
      }),
    saveStudy: (study) => Effect.asVoid(studies.put(study)),
    saveTrial: (study, trial) => Effect.asVoid(trials.put(toRow(study, trial))),
    list: Effect.map(studies.query(), (rows) => rows.map((r) => r.key).sort())
  }
})

/**
 * Repository: typed records in a store, with secondary indexes, criteria queries, change events
 * and all-or-nothing transactions (the original's `Foundation.Repository`, with the index
 * consistency, the index use and the rollback it lacked).
 *
 * `Repository.make({ name, schema, key, indexes })` opens the repository `name` in the `Store`
 * of the context (`MemoryStore.layer`, or `SqlStore.layerSqlite` / `SqlStore.layerPg`): the
 * same code runs on every store, and one shared test suite holds them to the same behaviour.
 *
 * - Records are validated and encoded with `schema` at the boundary (`ValidationError` naming
 *   the field; nothing is written). `key` names the field that identifies a record (a string or
 *   a number). Each stored record is a `Row`: key, value, `createdAt` and `updatedAt` (epoch ms
 *   from `Clock`; `put` over an existing key keeps `createdAt`, which the original reset).
 * - `indexes` are paths into the encoded record; an index holds one entry per value (one per
 *   element for a list) and is updated in the same atomic step as the row, so it never holds a
 *   stale entry (the original's overwrite left them). A query's `eq`/`in` criterion on an
 *   indexed path reads the index instead of scanning.
 * - Criteria (`Criteria`) address the encoded record (the JSON form of `schema`), so a query
 *   means the same in memory and in SQL. `query` orders by `orderBy` (numbers before strings,
 *   absent values last, ties by key) or by key text, then applies `offset` and `limit`; `count`
 *   ignores pagination.
 * - Writes are atomic: a row and its index entries change together or not at all. Inside
 *   `Transaction.run`, every write of the store commits together or not at all, and no reader
 *   outside sees part of it.
 * - `changes`: a stream of `Inserted` / `Updated` / `Deleted`, published after each commit, in
 *   commit order (a rolled-back transaction publishes nothing).
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import { type AlreadyExistsError, type NotFoundError, Tagged, ValidationError } from "../errors/FoundationError.js"
import type * as Batch from "../infra/Batch.js"
import type * as Criteria from "./Criteria.js"

// ---------------------------------------------------------------------------------------------
// Records and queries
// ---------------------------------------------------------------------------------------------

/** What identifies a record. */
export type Key = string | number

/** A stored record. */
export interface Row<A, K extends Key = Key> {
  readonly key: K
  readonly value: A
  /** When the key was first written (epoch ms). */
  readonly createdAt: number
  /** When the record was last written (epoch ms). */
  readonly updatedAt: number
}

/** One sort key of a query. */
export interface OrderBy {
  readonly path: Criteria.PathInput
  readonly direction?: "asc" | "desc"
}

/** A query; every part optional. */
export interface Query {
  /** Which records [all]. */
  readonly where?: Criteria.Criteria
  /** Sort keys, first the most significant [by key text]. */
  readonly orderBy?: OrderBy | ReadonlyArray<OrderBy>
  /** At most this many rows (a positive integer). */
  readonly limit?: number
  /** Skip this many rows first (an integer ≥ 0) [0]. */
  readonly offset?: number
}

/** A committed change. */
export type Change<A, K extends Key = Key> = Data.TaggedEnum<{
  Inserted: { readonly repository: string; readonly row: Row<A, K> }
  Updated: { readonly repository: string; readonly row: Row<A, K>; readonly previous: Row<A, K> }
  Deleted: { readonly repository: string; readonly row: Row<A, K> }
}>

interface ChangeDefinition extends Data.TaggedEnum.WithGenerics<2> {
  readonly taggedEnum: Change<this["A"], this["B"] & Key>
}

/** Constructors and matchers of `Change`. */
export const Change = Data.taggedEnum<ChangeDefinition>()

/** A page of a key-ordered scan (see `scan`). */
export interface ScanPage<A, K extends Key> {
  readonly rows: ReadonlyArray<Row<A, K>>
  /** The key to continue after, or none when no row follows. */
  readonly next: Option.Option<K>
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/**
 * The store itself failed (a database error, a connection lost, a stored record that no longer
 * decodes with the schema). Transient; `cause` is the underlying error.
 */
export class StoreError extends Tagged("StoreError", {
  category: "transient",
  severity: "high",
  message: "Store failure"
})<{
  readonly store: string
  /** What the store was doing ("insert users", "migrate", "decode users"...). */
  readonly during: string
  readonly cause: unknown
}> {
  override describe() {
    const detail = typeof this.cause === "object" && this.cause !== null && "message" in this.cause
      ? `: ${String(this.cause.message)}`
      : ""
    return `${this.store} store failed during ${this.during}${detail}`
  }
}

// ---------------------------------------------------------------------------------------------
// The repository
// ---------------------------------------------------------------------------------------------

/** Typed records of one kind in a store. */
export interface Repository<A, K extends Key = Key> {
  readonly name: string
  /** The field holding the key. */
  readonly keyField: string
  /** The indexed paths. */
  readonly indexes: ReadonlyArray<Criteria.Path>
  /** Adds a record; `AlreadyExistsError` if its key is taken. */
  readonly insert: (value: A) => Effect.Effect<Row<A, K>, AlreadyExistsError | ValidationError | StoreError>
  /** Adds or replaces a record (a replaced record keeps its `createdAt`). */
  readonly put: (value: A) => Effect.Effect<Row<A, K>, ValidationError | StoreError>
  /** The record of `key`, or `NotFoundError`. */
  readonly get: (key: K) => Effect.Effect<Row<A, K>, NotFoundError | StoreError>
  /** The record of `key`, if any. */
  readonly find: (key: K) => Effect.Effect<Option.Option<Row<A, K>>, StoreError>
  /**
   * Changes a record: a patch is merged over it (shallow), a function maps it; the result is
   * validated again, and its key must not change (`ValidationError`).
   */
  readonly update: (
    key: K,
    change: Partial<A> | ((current: A) => A)
  ) => Effect.Effect<Row<A, K>, NotFoundError | ValidationError | StoreError>
  /** Removes a record; returns it. */
  readonly delete: (key: K) => Effect.Effect<Row<A, K>, NotFoundError | StoreError>
  /** The records matching a query (see `Query`); bad criteria or paging are `ValidationError`s. */
  readonly query: (query?: Query) => Effect.Effect<ReadonlyArray<Row<A, K>>, ValidationError | StoreError>
  /** How many records match (no paging). */
  readonly count: (where?: Criteria.Criteria) => Effect.Effect<number, ValidationError | StoreError>
  /**
   * Up to `limit` records matching `where`, in key-text order, strictly after `after` (from the
   * start when none): the cursor walk `Batch.query` pages with.
   */
  readonly scan: (
    after: Option.Option<K>,
    limit: number,
    where?: Criteria.Criteria
  ) => Effect.Effect<ScanPage<A, K>, ValidationError | StoreError>
  /** Committed changes, from the moment of subscription (scoped). */
  readonly changes: Effect.Effect<Stream.Stream<Change<A, K>>, never, Scope.Scope>
}

/** The options of a repository. */
export interface Options<A, I, K extends KeyField<A>> {
  /** The repository's name in its store: letters, digits, `_`, `-` and `.`, 1–100 characters. */
  readonly name: string
  /** The records' schema; its encoded form must be JSON (it is what criteria address). */
  readonly schema: Schema.Schema<A, I>
  /** The field holding the key (a string or a number). */
  readonly key: K
  /** Paths (into the encoded record) to index: `"status"`, `"meta.region"` or `["meta", "region"]`. */
  readonly indexes?: ReadonlyArray<Criteria.PathInput>
}

/** The fields of `A` usable as a key. */
export type KeyField<A> = { readonly [F in keyof A]: A[F] extends Key ? F : never }[keyof A] & string

/** Where repositories live, and what a transaction spans. */
export interface Store {
  /** `memory`, `sqlite` or `pg`. */
  readonly kind: string
  /** Opens (creating it if needed) a repository in this store. */
  readonly repository: <A, I, K extends KeyField<A>>(
    options: Options<A, I, K>
  ) => Effect.Effect<Repository<A, A[K] & Key>, ValidationError | StoreError>
  /**
   * Runs `effect` as one transaction of this store: its writes commit together when it
   * succeeds and are all undone when it fails or is interrupted; no reader outside sees them
   * before the commit. Nested calls are savepoints: an inner failure undoes only the inner
   * writes (if the outer effect recovers from it).
   */
  readonly transaction: <X, E, R>(effect: Effect.Effect<X, E, R>) => Effect.Effect<X, E | StoreError, R>
}

/** The store of the context. */
export class RepositoryStore extends Context.Tag("effect-foundation/RepositoryStore")<RepositoryStore, Store>() {}

/** Opens the repository `options.name` in the `RepositoryStore` of the context. */
export const make = <A, I, K extends KeyField<A>>(
  options: Options<A, I, K>
): Effect.Effect<Repository<A, A[K] & Key>, ValidationError | StoreError, RepositoryStore> =>
  Effect.flatMap(RepositoryStore, (store) => store.repository(options))

/**
 * The repository as a `Batch` store, for batch register / update / unregister (with rollback)
 * and cursor-paged queries: `Batch.make(Repository.batchStore(users))`. An inserted value's key
 * field must equal the key it is registered under (`ValidationError`).
 */
export const batchStore = <A, K extends Key>(
  repository: Repository<A, K>
): Batch.BatchStore<K, A, Partial<A>, ValidationError | StoreError, K> => ({
  name: repository.name,
  insert: (key, value) => {
    const given = (value as Record<string, unknown> | null | undefined)?.[repository.keyField]
    return given === key
      ? Effect.asVoid(repository.insert(value))
      : Effect.fail(
        new ValidationError({
          field: `${repository.name}.${repository.keyField}`,
          reason: `the record's key does not match the key it is registered under (${String(key)})`
        })
      )
  },
  update: (key, patch) =>
    Effect.suspend(() => {
      let previous: A | undefined
      return Effect.map(
        repository.update(key, (current) => {
          previous = current
          return { ...current, ...patch }
        }),
        () => previous as A
      )
    }),
  remove: (key) => Effect.map(repository.delete(key), (row) => row.value),
  scan: (cursor, limit, filter) =>
    Effect.map(repository.scan(cursor, limit), (page) => ({
      entries: page.rows.flatMap((row) => filter === undefined || filter(row.value, row.key) ? [[row.key, row.value] as const] : []),
      next: page.next
    }))
})

/**
 * SqlStore: the `RepositoryStore` on SQL, for SQLite (`layerSqlite`, one file or `:memory:`) and
 * PostgreSQL (`layerPg`), or on any `@effect/sql` client of those dialects in the context
 * (`layer`, `make`). The same repositories, criteria and transactions as the in-memory store,
 * held to the same shared test suite.
 *
 * Guarantees:
 * - One fixed schema for every repository, created by `@effect/sql`'s Migrator under its own
 *   table (`foundation_migrations`, so an application's `effect_sql_migrations` is untouched):
 *   `foundation_records(repository, key, doc, created_at, updated_at)` holds each record encoded
 *   as JSON (`doc`: TEXT in SQLite, JSONB in PostgreSQL; `key`: the key's text, ordered by code
 *   point), `foundation_index(repository, path, value, key)` one row per indexed value (real SQL
 *   indexes), `foundation_indexes(repository, path)` the index set each repository was built with.
 * - Every write changes its row and its index rows in one SQL transaction: the index never holds
 *   a stale entry. `insert` on a taken key is an `AlreadyExistsError` with nothing changed; `put`
 *   over a key keeps its `createdAt`; `update` re-validates and refuses a changed key.
 * - Criteria compile to parameterised SQL (`internal/sqlCriteria`): every value and every path key
 *   is a bound parameter, never SQL text. Results and order are exactly the in-memory ones
 *   (`Criteria.predicate`, `repositoryConfig.comparator`). An `eq`/`in` criterion on an indexed
 *   path narrows the rows through `foundation_index` (`Criteria.plan`).
 * - `transaction` is the client's transaction (`SqlClient.makeWithTransaction`: BEGIN/COMMIT,
 *   nested calls are savepoints, a failure, defect or interruption rolls back). SQLite runs one
 *   transaction at a time on its connection, so a reader outside waits for the commit;
 *   PostgreSQL readers on other connections see only committed data (row locks serialise
 *   concurrent updates of a row: `SELECT … FOR UPDATE`).
 * - Change events of a transaction are buffered (a FiberRef holds the current transaction's
 *   buffer) and published in the outermost COMMIT step, in order; a failed savepoint drops its
 *   own; a rolled-back transaction publishes nothing. On SQLite the publication happens before the
 *   connection is released, so events follow commit order exactly.
 * - Opening a repository whose index set changed since the database last saw it rebuilds the
 *   entries of the new paths from the stored rows and deletes those of dropped paths, in one
 *   transaction. In one store a name is open with one index set (another fails with StoreError).
 * - Database failures are `StoreError`s (`store` = "sqlite" | "pg", `during` = what was being
 *   done, `cause` kept); a stored record that no longer decodes is a `StoreError` during
 *   "decode <repository>", never a defect.
 *
 * Telemetry: `events.insert|update|delete` (`foundation.repository.*`, measurements
 * `{ count: 1 }`, metadata `{ repository, key, store }`) emitted at commit when `Telemetry` was in
 * the context at `make`; metrics `foundation_repository_operations_total{store, repository, op}`
 * and the histogram `foundation_repository_query_duration_ms{store, repository}` (query, count,
 * scan).
 *
 * Limits: PostgreSQL's JSONB and TEXT cannot hold U+0000, so such strings fail to store there
 * (StoreError). Integers beyond 2^53 are not supported.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import { globalValue } from "effect/GlobalValue"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { AlreadyExistsError, NotFoundError, type ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"
import * as Criteria from "./Criteria.js"
import * as config from "./internal/repositoryConfig.js"
import * as sqlCriteria from "./internal/sqlCriteria.js"
import {
  Change,
  type Key,
  type KeyField,
  type Options,
  type Query,
  type Repository,
  RepositoryStore,
  type Row,
  type ScanPage,
  type Store,
  StoreError
} from "./Repository.js"

/** The telemetry events of the SQL store (the repository events of the catalogue, `Events.names.repository`). */
export const events = Events.names.repository

/** The SQL dialects the store runs on. */
export type Kind = sqlCriteria.Dialect

// ---------------------------------------------------------------------------------------------
// The schema
// ---------------------------------------------------------------------------------------------

/** The table of the store's migrations (not `effect_sql_migrations`, which is the application's). */
export const migrationsTable = "foundation_migrations"

const sqliteSchema = [
  `CREATE TABLE foundation_records (
    repository TEXT NOT NULL,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (repository, key)
  )`,
  `CREATE TABLE foundation_index (
    repository TEXT NOT NULL,
    path TEXT NOT NULL,
    value TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (repository, path, value, key)
  )`,
  `CREATE INDEX foundation_index_by_key ON foundation_index (repository, key)`,
  `CREATE TABLE foundation_indexes (
    repository TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (repository, path)
  )`
]

const pgSchema = [
  `CREATE TABLE foundation_records (
    repository text NOT NULL,
    key text COLLATE "C" NOT NULL,
    doc jsonb NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (repository, key)
  )`,
  `CREATE TABLE foundation_index (
    repository text NOT NULL,
    path text NOT NULL,
    value text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    PRIMARY KEY (repository, path, value, key)
  )`,
  `CREATE INDEX foundation_index_by_key ON foundation_index (repository, key)`,
  `CREATE TABLE foundation_indexes (
    repository text NOT NULL,
    path text NOT NULL,
    PRIMARY KEY (repository, path)
  )`
]

const migrations = {
  "1_foundation_repository_store": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.forEach(
      sql.onDialectOrElse({ pg: () => pgSchema, orElse: () => sqliteSchema }),
      (statement) => sql.unsafe(statement),
      { discard: true }
    ))
}

const migrate = Migrator.make({})({ loader: Migrator.fromRecord(migrations), table: migrationsTable })

// ---------------------------------------------------------------------------------------------
// Statements (written with $n placeholders; SQLite gets `?`, in the same order)
// ---------------------------------------------------------------------------------------------

const statementsOf = (kind: Kind) => {
  const q = (pg: string) => kind === "pg" ? pg : pg.replace(/\$\d+(::\w+(\[\])?)?/g, "?")
  return {
    select: q("SELECT key, doc, created_at, updated_at FROM foundation_records WHERE repository = $1 AND key = $2"),
    selectForUpdate: q(
      `SELECT key, doc, created_at, updated_at FROM foundation_records WHERE repository = $1 AND key = $2${
        kind === "pg" ? " FOR UPDATE" : ""
      }`
    ),
    insert: q(
      "INSERT INTO foundation_records (repository, key, doc, created_at, updated_at) VALUES ($1, $2, $3::jsonb, $4, $5)" +
        " ON CONFLICT (repository, key) DO NOTHING RETURNING key"
    ),
    update: q("UPDATE foundation_records SET doc = $1::jsonb, updated_at = $2 WHERE repository = $3 AND key = $4"),
    delete: q("DELETE FROM foundation_records WHERE repository = $1 AND key = $2 RETURNING key, doc, created_at, updated_at"),
    deleteEntries: q("DELETE FROM foundation_index WHERE repository = $1 AND key = $2"),
    /** Entries as three parallel lists (PG) or one JSON list of [path, value, key] (SQLite). */
    insertEntries: kind === "pg"
      ? "INSERT INTO foundation_index (repository, path, value, key) SELECT $1, t.p, t.v, t.k FROM unnest($2::text[], $3::text[], $4::text[]) AS t(p, v, k)"
      : "INSERT INTO foundation_index (repository, path, value, key) SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?)",
    lock: "SELECT pg_advisory_xact_lock(hashtext($1))",
    indexedPaths: q("SELECT path FROM foundation_indexes WHERE repository = $1"),
    deletePathEntries: q("DELETE FROM foundation_index WHERE repository = $1 AND path = $2"),
    forgetPath: q("DELETE FROM foundation_indexes WHERE repository = $1 AND path = $2"),
    rememberPath: q("INSERT INTO foundation_indexes (repository, path) VALUES ($1, $2)"),
    rowsAfter: q("SELECT key, doc FROM foundation_records WHERE repository = $1 AND key > $2 ORDER BY key LIMIT $3")
  }
}

/** A row as the database returns it. */
interface RawRow {
  readonly key: string
  /** JSON text (SQLite) or the parsed JSONB (PostgreSQL). */
  readonly doc: unknown
  /** A number (SQLite) or a bigint's text (PostgreSQL). */
  readonly created_at: unknown
  readonly updated_at: unknown
}

const parseDoc = (doc: unknown): Either.Either<unknown, unknown> => {
  if (typeof doc !== "string") return Either.right(doc)
  try {
    return Either.right(JSON.parse(doc))
  } catch (cause) {
    return Either.left(cause)
  }
}

const rebuildPage = 500

// ---------------------------------------------------------------------------------------------
// Transactions: buffered effects of commit and rollback
// ---------------------------------------------------------------------------------------------

/** What a transaction (or savepoint) does when it commits or rolls back. */
interface Frame {
  /** Run in the outermost COMMIT step (events, telemetry), in order. */
  readonly actions: Array<() => void>
  /** Run, last first, when this transaction or savepoint rolls back. */
  readonly undo: Array<() => void>
}

/**
 * The current transaction's frame. Shared by every SqlStore, so that writes of two stores on one
 * client inside one transaction publish at its commit. Forked fibers inherit it (and join the
 * transaction, as their queries do); joining a fiber never replaces the parent's.
 */
const currentFrame = globalValue(
  Symbol.for("effect-foundation/SqlStore/currentFrame"),
  () => FiberRef.unsafeMake<Frame | undefined>(undefined, { join: (parent) => parent })
)

/** Buffers an action for the commit (every write runs in a transaction, so a frame exists). */
const afterCommit = (action: () => void): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) => {
    const frame = fiber.getFiberRef(currentFrame)
    if (frame === undefined) action()
    else frame.actions.push(action)
    return Effect.void
  })

/** Registers an undo step for a rollback of the current transaction. */
const onRollback = (undo: () => void): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) => {
    fiber.getFiberRef(currentFrame)?.undo.push(undo)
    return Effect.void
  })

const isSqlError = (u: unknown): u is SqlError => u instanceof SqlError

// ---------------------------------------------------------------------------------------------
// Repositories of a store
// ---------------------------------------------------------------------------------------------

/** An index set, with what the SQL needs. */
interface IndexSet {
  readonly paths: ReadonlyArray<Criteria.Path>
  /** `Criteria.pathKey`s (what `Criteria.plan` takes). */
  readonly indexed: ReadonlySet<string>
  /** `foundation_index.path` of each path, in order. */
  readonly texts: ReadonlyArray<string>
  /** pathKey → `foundation_index.path`. */
  readonly textOf: ReadonlyMap<string, string>
  /** Identifies the set (sorted texts). */
  readonly signature: string
}

const indexSetOf = (paths: ReadonlyArray<Criteria.Path>): IndexSet => {
  const texts = paths.map(sqlCriteria.indexPathText)
  return {
    paths,
    indexed: new Set(paths.map(Criteria.pathKey)),
    texts,
    textOf: new Map(paths.map((p, i) => [Criteria.pathKey(p), texts[i]!])),
    signature: JSON.stringify([...texts].sort())
  }
}

/** A repository name open in a store. Fields change only in synchronous steps. */
interface Entry {
  readonly name: string
  readonly index: IndexSet
  readonly pubsub: PubSub.PubSub<Change<unknown, Key>>
  /** The database's index set is known to be this one (checked, committed). */
  verified: boolean
  /** Its open rebuilt indexes in a transaction that rolled back: reopen it. */
  invalid: boolean
  readonly operations: Readonly<Record<Operation, Metric.Metric.Counter<number>>>
  readonly latency: ReturnType<typeof MetricKit.histogram>
}

type Operation = "insert" | "put" | "update" | "delete" | "get" | "find" | "query" | "count" | "scan"
const operations: ReadonlyArray<Operation> = ["insert", "put", "update", "delete", "get", "find", "query", "count", "scan"]

const latencyBoundaries = MetricBoundaries.exponential({ start: 0.05, factor: 2, count: 16 })

/**
 * Makes a store on the `SqlClient` of the context (SQLite or PostgreSQL): runs the store's
 * migrations, then serves repositories. Telemetry is taken from the context now, if present.
 */
export const make: Effect.Effect<Store, StoreError, SqlClient.SqlClient | Scope.Scope> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const dialect = sql.onDialectOrElse({
    sqlite: () => "sqlite" as const,
    pg: () => "pg" as const,
    mysql: () => "mysql" as const,
    mssql: () => "mssql" as const,
    clickhouse: () => "clickhouse" as const,
    orElse: () => "unknown" as const
  })
  if (dialect !== "sqlite" && dialect !== "pg") {
    return yield* new StoreError({
      store: dialect,
      during: "make",
      cause: new Error(`SqlStore runs on SQLite or PostgreSQL, not on ${dialect}`)
    })
  }
  const kind: Kind = dialect
  yield* migrate.pipe(
    Effect.catchAllDefect((defect) => defect instanceof Migrator.MigrationError ? Effect.fail(defect) : Effect.die(defect)),
    Effect.mapError((cause) => new StoreError({ store: kind, during: "migrate", cause }))
  )
  const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
  const statements = statementsOf(kind)
  /**
   * A statement on the open transaction's connection when there is one (every write runs in
   * one): straight to the driver, without the per-statement span and statement object of
   * `sql.unsafe`, which cost several times the SQLite statement itself. Outside a transaction
   * (reads), through the client.
   */
  const exec = <Raw extends object = RawRow>(
    text: string,
    params: ReadonlyArray<unknown>
  ): Effect.Effect<ReadonlyArray<Raw>, SqlError> =>
    Effect.withFiberRuntime((fiber) => {
      const open = Context.getOption(fiber.currentContext, SqlClient.TransactionConnection)
      return Option.isSome(open)
        ? open.value[0].execute(text, params, undefined) as Effect.Effect<ReadonlyArray<Raw>, SqlError>
        : sql.unsafe<Raw>(text, params)
    })
  const storeError = (during: string) => (cause: unknown) => new StoreError({ store: kind, during, cause })

  // ---- transactions ---------------------------------------------------------------------

  const runActions = (frame: Frame): void => {
    for (let i = 0; i < frame.actions.length; i++) frame.actions[i]!()
  }
  const unsafeExec = (conn: SqlConnection.Connection, text: string) =>
    Effect.asVoid(conn.executeUnprepared(text, [], undefined))
  /** The client's transaction (same statements and savepoint names), publishing in COMMIT. */
  const withTransaction = SqlClient.makeWithTransaction({
    transactionTag: SqlClient.TransactionConnection,
    spanAttributes: [["db.system.name", kind === "pg" ? "postgresql" : "sqlite"]],
    acquireConnection: Effect.flatMap(
      Scope.make(),
      (scope) => Effect.map(Scope.extend(sql.reserve, scope), (conn) => [scope, conn] as const)
    ),
    begin: (conn) => unsafeExec(conn, "BEGIN"),
    savepoint: (conn, id) => unsafeExec(conn, `SAVEPOINT effect_sql_${id}`),
    commit: (conn) =>
      Effect.zipRight(
        unsafeExec(conn, "COMMIT"),
        Effect.withFiberRuntime<void>((fiber) => {
          const frame = fiber.getFiberRef(currentFrame)
          if (frame !== undefined) runActions(frame)
          return Effect.void
        })
      ),
    rollback: (conn) => unsafeExec(conn, "ROLLBACK"),
    rollbackSavepoint: (conn, id) => unsafeExec(conn, `ROLLBACK TO SAVEPOINT effect_sql_${id}`)
  })

  /** Runs a fixed statement on the transaction's connection (prepared once, then cached). */
  const control = (conn: SqlConnection.Connection, text: string) => Effect.asVoid(conn.execute(text, [], undefined))
  const savepoint = "SAVEPOINT foundation_write"
  const releaseSavepoint = "RELEASE SAVEPOINT foundation_write"
  const rollbackSavepoint = "ROLLBACK TO SAVEPOINT foundation_write"

  const undoFrame = (frame: Frame): void => {
    for (let i = frame.undo.length - 1; i >= 0; i--) frame.undo[i]!()
  }

  /**
   * A write (or a nested `transaction`) inside an open transaction: a savepoint of its own,
   * released on success (its writes and actions join the enclosing transaction) and rolled back
   * to on failure (its undo steps run, its actions are dropped). Not the client's nested
   * `withTransaction`, which never releases its savepoints: thousands of writes in one
   * transaction would stack thousands of them, and every later write pays for each (SQLite
   * journals pages per open savepoint; PostgreSQL keeps a subtransaction each). Same-named
   * savepoints nest: RELEASE and ROLLBACK TO address the most recent one.
   */
  const nested = <X, E, R>(
    effect: Effect.Effect<X, E, R>,
    parent: Frame,
    conn: SqlConnection.Connection
  ): Effect.Effect<X, E | SqlError, R> =>
    Effect.uninterruptibleMask((restore) => {
      const frame: Frame = { actions: [], undo: [] }
      const rollback = (exit: Exit.Exit<X, E | SqlError>): Effect.Effect<X, E | SqlError> =>
        Effect.zipRight(
          Effect.zipRight(control(conn, rollbackSavepoint), control(conn, releaseSavepoint)),
          Effect.sync(() => undoFrame(frame))
        ).pipe(Effect.zipRight(exit))
      return Effect.zipRight(
        control(conn, savepoint),
        Effect.flatMap(Effect.exit(Effect.locally(restore(effect), currentFrame, frame)), (exit) => {
          if (Exit.isFailure(exit)) return rollback(exit)
          return Effect.matchCauseEffect(control(conn, releaseSavepoint), {
            onFailure: (cause) => rollback(Exit.failCause(cause)),
            onSuccess: () =>
              Effect.sync(() => {
                for (const action of frame.actions) parent.actions.push(action)
                for (const undo of frame.undo) parent.undo.push(undo)
                return exit.value
              })
          })
        })
      )
    })

  /**
   * Runs `effect` in a transaction (a savepoint when one is open, see `nested`) with its own
   * frame: on success its actions go to the parent frame (or are published by the COMMIT); on
   * failure its undo steps run and its actions are dropped. SQL failures, including a failed
   * COMMIT, fail with the SqlError.
   */
  const atomically = <X, E, R>(effect: Effect.Effect<X, E, R>): Effect.Effect<X, E | SqlError, R> =>
    Effect.withFiberRuntime((fiber) => {
      const parent = fiber.getFiberRef(currentFrame)
      const open = Context.getOption(fiber.currentContext, SqlClient.TransactionConnection)
      if (parent !== undefined && Option.isSome(open)) return nested(effect, parent, open.value[0])
      // Inside someone else's SQL transaction our COMMIT step never runs: publish on success.
      const foreign = parent === undefined && Option.isSome(open)
      const frame: Frame = { actions: [], undo: [] }
      return withTransaction(effect).pipe(
        Effect.locally(currentFrame, frame),
        Effect.onExit((exit) =>
          Effect.sync(() => {
            if (Exit.isSuccess(exit)) {
              if (parent !== undefined) {
                for (const action of frame.actions) parent.actions.push(action)
                for (const undo of frame.undo) parent.undo.push(undo)
              } else if (foreign) {
                runActions(frame)
              }
            } else {
              undoFrame(frame)
            }
          })
        ),
        Effect.catchSomeDefect((defect) => isSqlError(defect) ? Option.some(Effect.fail(defect)) : Option.none())
      )
    })

  const transaction = <X, E, R>(effect: Effect.Effect<X, E, R>): Effect.Effect<X, E | StoreError, R> =>
    Effect.catchIf(
      atomically(effect),
      (e): e is SqlError => isSqlError(e),
      (e) => Effect.fail(new StoreError({ store: kind, during: "transaction", cause: e }))
    )

  // ---- repositories ---------------------------------------------------------------------

  /** Open names. Read and written only in synchronous steps. */
  const entries = new Map<string, Entry>()
  yield* Effect.addFinalizer(() => Effect.forEach([...entries.values()], (e) => PubSub.shutdown(e.pubsub), { discard: true }))

  /** Index entries of a record, appended to three parallel lists. */
  const entriesOf = (
    paths: ReadonlyArray<Criteria.Path>,
    texts: ReadonlyArray<string>,
    encoded: unknown,
    keyText: string,
    out: { readonly paths: Array<string>; readonly values: Array<string>; readonly keys: Array<string> }
  ): void => {
    for (let i = 0; i < paths.length; i++) {
      for (const value of Criteria.indexKeys(Criteria.valueAt(encoded, paths[i]!))) {
        out.paths.push(texts[i]!)
        out.values.push(value)
        out.keys.push(keyText)
      }
    }
  }

  const insertEntries = (
    name: string,
    list: { readonly paths: Array<string>; readonly values: Array<string>; readonly keys: Array<string> }
  ): Effect.Effect<void, SqlError> => {
    if (list.paths.length === 0) return Effect.void
    if (kind === "pg") return Effect.asVoid(exec(statements.insertEntries, [name, list.paths, list.values, list.keys]))
    const triples = list.paths.map((p, i) => [p, list.values[i], list.keys[i]])
    return Effect.asVoid(exec(statements.insertEntries, [name, JSON.stringify(triples)]))
  }

  /**
   * Brings the database's index entries of `name` to `index` (in the current transaction):
   * entries of dropped paths deleted, entries of new paths built from the stored rows. True when
   * something changed.
   */
  const reindex = (name: string, index: IndexSet): Effect.Effect<boolean, SqlError | StoreError> =>
    Effect.gen(function*() {
      if (kind === "pg") yield* exec(statements.lock, [`foundation_index:${name}`])
      const current = (yield* exec<{ readonly path: string }>(statements.indexedPaths, [name])).map((r) => r.path)
      const dropped = current.filter((p) => !index.texts.includes(p))
      const added: Array<number> = []
      index.texts.forEach((p, i) => {
        if (!current.includes(p)) added.push(i)
      })
      if (dropped.length === 0 && added.length === 0) return false
      for (const path of dropped) {
        yield* exec(statements.deletePathEntries, [name, path])
        yield* exec(statements.forgetPath, [name, path])
      }
      if (added.length > 0) {
        const paths = added.map((i) => index.paths[i]!)
        const texts = added.map((i) => index.texts[i]!)
        // Leftovers of an earlier build that was never recorded.
        for (const text of texts) yield* exec(statements.deletePathEntries, [name, text])
        let after = ""
        while (true) {
          const rows = yield* exec(statements.rowsAfter, [name, after, rebuildPage])
          const list = { paths: [] as Array<string>, values: [] as Array<string>, keys: [] as Array<string> }
          for (const row of rows) {
            const doc = parseDoc(row.doc)
            if (Either.isLeft(doc)) return yield* new StoreError({ store: kind, during: `decode ${name}`, cause: doc.left })
            entriesOf(paths, texts, doc.right, row.key, list)
          }
          yield* insertEntries(name, list)
          if (rows.length < rebuildPage) break
          after = rows[rows.length - 1]!.key
        }
        for (const text of texts) yield* exec(statements.rememberPath, [name, text])
      }
      return true
    })

  const repository = <A, I, KF extends KeyField<A>>(
    options: Options<A, I, KF>
  ): Effect.Effect<Repository<A, A[KF] & Key>, ValidationError | StoreError> =>
    Effect.gen(function*() {
      type K = A[KF] & Key
      const spec = yield* config.resolve(options)
      const name = spec.name
      const wanted = indexSetOf(spec.indexes)
      const pubsub = yield* PubSub.unbounded<Change<unknown, Key>>()
      // Claim the name (one step): a second open shares the entry; other indexes are refused.
      const entry = yield* Effect.suspend(() => {
        const existing = entries.get(name)
        if (existing !== undefined && !existing.invalid) {
          return existing.index.signature === wanted.signature
            ? Effect.succeed(existing)
            : Effect.fail(
              new StoreError({
                store: kind,
                during: `open ${name}`,
                cause: new Error("the repository is open with other indexes in this store")
              })
            )
        }
        const tags = { store: kind, repository: name }
        const fresh: Entry = {
          name,
          index: wanted,
          pubsub,
          verified: false,
          invalid: false,
          operations: Object.fromEntries(operations.map((op) => [
            op,
            MetricKit.counter("foundation_repository_operations_total", {
              description: "Repository operations completed, by store, repository and operation",
              tags: { ...tags, op }
            })
          ])) as Record<Operation, Metric.Metric.Counter<number>>,
          latency: MetricKit.histogram("foundation_repository_query_duration_ms", latencyBoundaries, {
            description: "Latency of repository queries, counts and scans (ms)",
            tags
          })
        }
        entries.set(name, fresh)
        return Effect.succeed(fresh)
      })
      if (entry.pubsub !== pubsub) yield* PubSub.shutdown(pubsub)
      if (!entry.verified) {
        yield* atomically(Effect.gen(function*() {
          const changed = yield* reindex(name, wanted)
          // Verified once committed; a rollback of a rebuild invalidates the entry (reopen).
          yield* afterCommit(() => {
            entry.verified = true
          })
          if (changed) {
            yield* onRollback(() => {
              entry.invalid = true
              if (entries.get(name) === entry) entries.delete(name)
            })
          }
        })).pipe(Effect.catchIf(isSqlError, (e) => Effect.fail(storeError(`open ${name}`)(e))))
      }
      return repositoryOf<A, K>(spec as unknown as config.Resolved<A, K>, entry)
    })

  const repositoryOf = <A, K extends Key>(spec: config.Resolved<A, K>, entry: Entry): Repository<A, K> => {
    const name = spec.name
    const index = entry.index
    const hasIndexes = index.paths.length > 0
    const pubsub = entry.pubsub as unknown as PubSub.PubSub<Change<A, K>>
    const notFound = (keyText: string) => new NotFoundError({ resource: name, key: keyText })

    /** Fails when the entry was invalidated; maps SQL failures; counts the operation. */
    const guard = <X, E>(op: Operation, effect: Effect.Effect<X, E>): Effect.Effect<X, Exclude<E, SqlError> | StoreError> =>
      Effect.suspend((): Effect.Effect<X, E | StoreError> =>
        entry.invalid
          ? Effect.fail(
            new StoreError({
              store: kind,
              during: `${op} ${name}`,
              cause: new Error("the repository was opened in a transaction that rolled back: open it again")
            })
          )
          : effect
      ).pipe(
        Effect.catchIf(isSqlError, (e) => Effect.fail(new StoreError({ store: kind, during: `${op} ${name}`, cause: e }))),
        Effect.tap(() => MetricKit.bump(entry.operations[op]))
      ) as Effect.Effect<X, Exclude<E, SqlError> | StoreError>

    /** `guard`, plus the latency histogram (queries, counts, scans). */
    const timed = <X, E>(op: Operation, effect: Effect.Effect<X, E>): Effect.Effect<X, Exclude<E, SqlError> | StoreError> =>
      Effect.clockWith((clock) => {
        const start = clock.unsafeCurrentTimeNanos()
        return Effect.tap(guard(op, effect), () =>
          MetricKit.observe(entry.latency, Number(clock.unsafeCurrentTimeNanos() - start) / 1e6))
      })

    const decodeError = (cause: unknown) => new StoreError({ store: kind, during: `decode ${name}`, cause })

    /** A stored row, decoded. */
    const toRow = (raw: RawRow): Either.Either<Row<A, K>, StoreError> => {
      const doc = parseDoc(raw.doc)
      if (Either.isLeft(doc)) return Either.left(decodeError(doc.left))
      const value = spec.decode(doc.right)
      if (Either.isLeft(value)) return Either.left(decodeError(value.left))
      const key = spec.keyOf(value.right)
      if (Either.isLeft(key)) return Either.left(decodeError(key.left))
      return Either.right({
        key: key.right,
        value: value.right,
        createdAt: Number(raw.created_at),
        updatedAt: Number(raw.updated_at)
      })
    }

    const toRows = (raws: ReadonlyArray<RawRow>): Either.Either<Array<Row<A, K>>, StoreError> => {
      const rows: Array<Row<A, K>> = []
      for (const raw of raws) {
        const row = toRow(raw)
        if (Either.isLeft(row)) return Either.left(row.left)
        rows.push(row.right)
      }
      return Either.right(rows)
    }

    /** A record checked, with its key and its JSON. */
    const prepare = (
      value: A
    ): Either.Either<
      { readonly key: K; readonly keyText: string; readonly encoded: Record<string, unknown>; readonly json: string },
      ValidationError
    > => {
      const encoded = spec.encode(value)
      if (Either.isLeft(encoded)) return Either.left(encoded.left)
      const key = spec.keyOf(value)
      if (Either.isLeft(key)) return Either.left(key.left)
      return Either.right({
        key: key.right,
        keyText: config.keyText(key.right),
        encoded: encoded.right,
        json: JSON.stringify(encoded.right)
      })
    }

    /** Replaces the index entries of a key with those of `encoded`. */
    const writeEntries = (keyText: string, encoded: unknown, fresh: boolean): Effect.Effect<void, SqlError> => {
      if (!hasIndexes) return Effect.void
      const list = { paths: [] as Array<string>, values: [] as Array<string>, keys: [] as Array<string> }
      entriesOf(index.paths, index.texts, encoded, keyText, list)
      const inserted = insertEntries(name, list)
      return fresh ? inserted : Effect.zipRight(exec(statements.deleteEntries, [name, keyText]), inserted)
    }

    const publish = (change: Change<A, K>, event: string, key: K): Effect.Effect<void> =>
      afterCommit(() => {
        pubsub.unsafeOffer(change)
        telemetry?.unsafeEmit(event, { count: 1 }, { repository: name, key, store: kind })
      })

    const insert = (value: A): Effect.Effect<Row<A, K>, AlreadyExistsError | ValidationError | StoreError> =>
      guard(
        "insert",
        Effect.suspend((): Effect.Effect<Row<A, K>, AlreadyExistsError | ValidationError | StoreError | SqlError> => {
          const checked = prepare(value)
          if (Either.isLeft(checked)) return Effect.fail(checked.left)
          const { encoded, json, key, keyText } = checked.right
          return atomically(Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            const inserted = yield* exec(statements.insert, [name, keyText, json, now, now])
            if (inserted.length === 0) return yield* new AlreadyExistsError({ resource: name, key: keyText })
            yield* writeEntries(keyText, encoded, true)
            const row: Row<A, K> = { key, value, createdAt: now, updatedAt: now }
            yield* publish(Change.Inserted({ repository: name, row }), events.insert, key)
            return row
          }))
        })
      )

    const put = (value: A): Effect.Effect<Row<A, K>, ValidationError | StoreError> =>
      guard(
        "put",
        Effect.suspend((): Effect.Effect<Row<A, K>, ValidationError | StoreError | SqlError> => {
          const checked = prepare(value)
          if (Either.isLeft(checked)) return Effect.fail(checked.left)
          const { encoded, json, key, keyText } = checked.right
          const attempt: Effect.Effect<Row<A, K>, SqlError | StoreError> = Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            const found = yield* exec(statements.selectForUpdate, [name, keyText])
            if (found.length > 0) {
              const previous = toRow(found[0]!)
              if (Either.isLeft(previous)) return yield* previous.left
              yield* exec(statements.update, [json, now, name, keyText])
              yield* writeEntries(keyText, encoded, false)
              const row: Row<A, K> = { key, value, createdAt: previous.right.createdAt, updatedAt: now }
              yield* publish(Change.Updated({ repository: name, row, previous: previous.right }), events.update, key)
              return row
            }
            const inserted = yield* exec(statements.insert, [name, keyText, json, now, now])
            // PostgreSQL: another transaction inserted the key since our read; take it from the top.
            if (inserted.length === 0) return yield* attempt
            yield* writeEntries(keyText, encoded, true)
            const row: Row<A, K> = { key, value, createdAt: now, updatedAt: now }
            yield* publish(Change.Inserted({ repository: name, row }), events.insert, key)
            return row
          })
          return atomically(attempt)
        })
      )

    const read = (key: K) =>
      Effect.flatMap(exec(statements.select, [name, config.keyText(key)]), (rows) =>
        rows.length === 0 ? Effect.succeed(Option.none<Row<A, K>>()) : Effect.map(toRow(rows[0]!), Option.some))

    const get = (key: K): Effect.Effect<Row<A, K>, NotFoundError | StoreError> =>
      guard(
        "get",
        Effect.flatMap(read(key), (row) =>
          Option.isSome(row) ? Effect.succeed(row.value) : Effect.fail(notFound(config.keyText(key))))
      )

    const find = (key: K): Effect.Effect<Option.Option<Row<A, K>>, StoreError> => guard("find", read(key))

    const update = (
      key: K,
      change: Partial<A> | ((current: A) => A)
    ): Effect.Effect<Row<A, K>, NotFoundError | ValidationError | StoreError> =>
      guard(
        "update",
        atomically(Effect.gen(function*() {
          const keyText = config.keyText(key)
          const found = yield* exec(statements.selectForUpdate, [name, keyText])
          if (found.length === 0) return yield* notFound(keyText)
          const previous = toRow(found[0]!)
          if (Either.isLeft(previous)) return yield* previous.left
          // The caller's function maps a record: pure, run here inside the transaction.
          const next = typeof change === "function"
            ? (change as (current: A) => A)(previous.right.value)
            : { ...previous.right.value, ...change }
          const checked = prepare(next)
          if (Either.isLeft(checked)) return yield* checked.left
          if (checked.right.keyText !== keyText) return yield* config.keyChanged(name, spec.keyField)
          const now = yield* Clock.currentTimeMillis
          yield* exec(statements.update, [checked.right.json, now, name, keyText])
          yield* writeEntries(keyText, checked.right.encoded, false)
          const row: Row<A, K> = { key: previous.right.key, value: next, createdAt: previous.right.createdAt, updatedAt: now }
          yield* publish(Change.Updated({ repository: name, row, previous: previous.right }), events.update, row.key)
          return row
        }))
      )

    const remove = (key: K): Effect.Effect<Row<A, K>, NotFoundError | StoreError> =>
      guard(
        "delete",
        atomically(Effect.gen(function*() {
          const keyText = config.keyText(key)
          const deleted = yield* exec(statements.delete, [name, keyText])
          if (deleted.length === 0) return yield* notFound(keyText)
          // A record that no longer decodes is not deleted (the transaction rolls back).
          const row = toRow(deleted[0]!)
          if (Either.isLeft(row)) return yield* row.left
          if (hasIndexes) yield* exec(statements.deleteEntries, [name, keyText])
          yield* publish(Change.Deleted({ repository: name, row: row.right }), events.delete, row.right.key)
          return row.right
        }))
      )

    /** The SQL `WHERE` of criteria, narrowed by an index when `Criteria.plan` picks one. */
    const filter = (params: sqlCriteria.Params, where: Criteria.Criteria, after?: string): string => {
      const planned = hasIndexes ? Criteria.plan(where, index.indexed).index : undefined
      const use = planned === undefined
        ? undefined
        : { path: index.textOf.get(Criteria.pathKey(planned.path))!, keys: planned.keys }
      return sqlCriteria.filter(params, name, where, use, after)
    }

    const select = "SELECT key, doc, created_at, updated_at FROM foundation_records WHERE "

    const query = (q?: Query): Effect.Effect<ReadonlyArray<Row<A, K>>, ValidationError | StoreError> =>
      timed(
        "query",
        Effect.suspend((): Effect.Effect<ReadonlyArray<Row<A, K>>, ValidationError | StoreError | SqlError> => {
          const resolved = config.resolveQuery(q)
          if (Either.isLeft(resolved)) return Effect.fail(resolved.left)
          const { limit, offset, orderBy, where } = resolved.right
          const params = new sqlCriteria.Params(kind)
          const text = select + filter(params, where) + " ORDER BY " + sqlCriteria.orderBy(params, orderBy) +
            sqlCriteria.page(params, limit, offset)
          return Effect.flatMap(exec(text, params.values), toRows)
        })
      )

    const checkWhere = (where: Criteria.Criteria | undefined) =>
      where === undefined ? Either.right(Criteria.all) : Criteria.validate(where, "where")

    const count = (where?: Criteria.Criteria): Effect.Effect<number, ValidationError | StoreError> =>
      timed(
        "count",
        Effect.suspend((): Effect.Effect<number, ValidationError | SqlError> => {
          const checked = checkWhere(where)
          if (Either.isLeft(checked)) return Effect.fail(checked.left)
          const params = new sqlCriteria.Params(kind)
          const text = "SELECT COUNT(*) AS n FROM foundation_records WHERE " + filter(params, checked.right)
          return Effect.map(exec<{ readonly n: unknown }>(text, params.values), (rows) => Number(rows[0]!.n))
        })
      )

    const scan = (
      after: Option.Option<K>,
      limit: number,
      where?: Criteria.Criteria
    ): Effect.Effect<ScanPage<A, K>, ValidationError | StoreError> =>
      timed(
        "scan",
        Effect.suspend((): Effect.Effect<ScanPage<A, K>, ValidationError | StoreError | SqlError> => {
          const bad = config.checkLimit(limit)
          if (bad !== undefined) return Effect.fail(bad)
          const checked = checkWhere(where)
          if (Either.isLeft(checked)) return Effect.fail(checked.left)
          const params = new sqlCriteria.Params(kind)
          // One row more than the page: `next` is some exactly when a matching row follows.
          const text = select + filter(params, checked.right, Option.isSome(after) ? config.keyText(after.value) : undefined) +
            ` ORDER BY key LIMIT ${params.add(limit + 1)}`
          return Effect.flatMap(exec(text, params.values), (raws) => {
            const rows = toRows(raws.length > limit ? raws.slice(0, limit) : raws)
            if (Either.isLeft(rows)) return Effect.fail(rows.left)
            const page: ScanPage<A, K> = {
              rows: rows.right,
              next: raws.length > limit ? Option.some(rows.right[rows.right.length - 1]!.key) : Option.none()
            }
            return Effect.succeed(page)
          })
        })
      )

    const changes: Repository<A, K>["changes"] = Effect.map(PubSub.subscribe(pubsub), (queue) => Stream.fromQueue(queue))

    return {
      name,
      keyField: spec.keyField,
      indexes: index.paths,
      insert,
      put,
      get,
      find,
      update,
      delete: remove,
      query,
      count,
      scan,
      changes
    }
  }

  return { kind, repository, transaction }
})

// ---------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------

/** The store on the `SqlClient` of the context, as the `RepositoryStore`. */
export const layer: Layer.Layer<RepositoryStore, StoreError, SqlClient.SqlClient> = Layer.scoped(RepositoryStore, make)

/** A new store layer per call: layers are memoised by identity, and each database needs its own. */
const freshLayer = () => Layer.scoped(RepositoryStore, make)

/** Options of `layerSqlite`. */
export interface SqliteOptions {
  /** The database file (created if missing), or `:memory:`. */
  readonly filename: string
}

/** A store on its own SQLite database (better-sqlite3 through `@effect/sql-sqlite-node`). */
export const layerSqlite = (options: SqliteOptions): Layer.Layer<RepositoryStore, StoreError | ValidationError> =>
  Layer.unwrapEffect(
    Effect.map(Validation.nonEmptyString("sqlStore.filename", options?.filename), (filename) =>
      Layer.provide(
        freshLayer(),
        Layer.scoped(
          SqlClient.SqlClient,
          // better-sqlite3 throws when it cannot open the file: a StoreError, not a defect.
          Effect.catchAllDefect(
            SqliteClient.make({ filename }),
            (cause) => Effect.fail(new StoreError({ store: "sqlite", during: "connect", cause }))
          )
        ).pipe(Layer.provide(Reactivity.layer))
      ))
  )

/** Options of `layerPg`. */
export interface PgOptions {
  /** `postgres://user:password@host:port/database` (query parameters such as `options` pass through). */
  readonly url: string
}

/** A store on a PostgreSQL database (node-postgres pool through `@effect/sql-pg`). */
export const layerPg = (options: PgOptions): Layer.Layer<RepositoryStore, StoreError | ValidationError> =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const url = yield* Validation.nonEmptyString("sqlStore.url", options?.url)
      if (!/^postgres(ql)?:\/\//.test(url)) {
        return yield* Validation.invalid("sqlStore.url", "expected a postgres:// or postgresql:// URL")
      }
      return Layer.provide(
        freshLayer(),
        PgClient.layer({ url: Redacted.make(url) }).pipe(
          Layer.mapError((cause) => new StoreError({ store: "pg", during: "connect", cause }))
        )
      )
    })
  )

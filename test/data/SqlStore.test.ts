/**
 * The SQL store: the shared repository contract on SQLite (and on PostgreSQL when
 * FOUNDATION_TEST_PG_URL is set), plus what only a SQL store has: persistence, the physical
 * schema, injection safety, real index use, commit-time events and migrations.
 */
import * as os from "node:os"
import * as path from "node:path"
import * as fs from "node:fs"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Deferred,
  Effect,
  Exit,
  Fiber,
  Layer,
  Metric,
  Option,
  Redacted,
  Ref,
  Schema,
  Stream,
  TestClock,
  Tracer
} from "effect"
import * as Criteria from "../../src/data/Criteria.js"
import * as Repository from "../../src/data/Repository.js"
import * as SqlStore from "../../src/data/SqlStore.js"
import * as Transaction from "../../src/data/Transaction.js"
import { AlreadyExistsError, ValidationError } from "../../src/errors/FoundationError.js"
import * as Telemetry from "../../src/observability/Telemetry.js"
import { Agent, agents, runRepositorySuite } from "./repositorySuite.js"

const pgUrl = process.env["FOUNDATION_TEST_PG_URL"]
if (pgUrl === undefined) {
  console.log(
    "SqlStore: PostgreSQL tests skipped. To run them: FOUNDATION_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/test npx vitest run test/data"
  )
}

// ---------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------

let files = 0
const tempFile = () => {
  const file = path.join(os.tmpdir(), `foundation-sqlstore-${process.pid}-${++files}.db`)
  for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true })
  return file
}

/** The store and its client (to look at the tables), on SQLite. */
const sqlite = (filename = ":memory:") => SqlStore.layer.pipe(Layer.provideMerge(SqliteClient.layer({ filename })))

let schemas = 0
/**
 * The store and its client on a PostgreSQL schema of its own (the connection's `search_path`),
 * created when the layer is built and dropped when it is released; `schema` reuses one.
 */
const pg = (url: string, schema?: string) =>
  Layer.unwrapScoped(
    Effect.gen(function*() {
      const name = schema ?? `foundation_test_${process.pid}_${++schemas}`
      if (schema === undefined) {
        const admin = yield* PgClient.make({ url: Redacted.make(url) })
        yield* Effect.acquireRelease(
          admin.unsafe(`CREATE SCHEMA "${name}"`),
          () => Effect.orDie(admin.unsafe(`DROP SCHEMA "${name}" CASCADE`))
        )
      }
      return SqlStore.layer.pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(withSchema(url, name)) })))
    }).pipe(Effect.provide(Reactivity.layer))
  )

const withSchema = (url: string, schema: string) => {
  const u = new URL(url)
  u.searchParams.set("options", `-c search_path=${schema}`)
  return u.toString()
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const openAgents = (indexes: ReadonlyArray<string> = ["kind", "capabilities", "meta.region"]) =>
  Repository.make({ name: "agents", schema: Agent, key: "id", indexes })

const keys = <A>(rows: ReadonlyArray<Repository.Row<A, string>>) => rows.map((r) => r.key)

/** The index rows of a repository, as "path value key" lines in order. */
const indexRows = (repository = "agents") =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql.unsafe<{ path: string; value: string; key: string }>(
        sql.onDialectOrElse({
          pg: () => "SELECT path, value, key FROM foundation_index WHERE repository = $1 ORDER BY path, value, key",
          orElse: () => "SELECT path, value, key FROM foundation_index WHERE repository = ? ORDER BY path, value, key"
        }),
        [repository]
      ),
      (rows) => rows.map((r) => `${JSON.parse(r.path).join(".")} ${r.value} ${r.key}`)
    ))

const tableCount = (table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql.unsafe<{ n: unknown }>(`SELECT COUNT(*) AS n FROM ${table}`), (rows) => Number(rows[0]!.n)))

/** Runs `effect` with a tracer that records the text of every SQL statement. */
const recordingSql = <A, E, R>(effect: Effect.Effect<A, E, R>, texts: Array<string>) =>
  Effect.flatMap(Effect.tracer, (inner) =>
    Effect.withTracer(
      effect,
      Tracer.make({
        span: (name, parent, context, links, startTime, kind, options) => {
          const span = inner.span(name, parent, context, links, startTime, kind, options)
          const end = span.end.bind(span)
          span.end = (endTime, exit) => {
            const text = span.attributes.get("db.query.text")
            if (typeof text === "string") texts.push(text)
            end(endTime, exit)
          }
          return span
        },
        context: (f, fiber) => inner.context(f, fiber)
      })
    ))

/** Free-form records: what criteria see is exactly the JSON written. */
const Doc = Schema.Struct({ id: Schema.String, data: Schema.Record({ key: Schema.String, value: Schema.String }) })

const nasty = [
  "'",
  "\"",
  ";",
  "--",
  "$1",
  "?",
  "\\",
  "')); DROP TABLE foundation_records; --",
  "\"; DROP TABLE foundation_index; --",
  "a.b",
  "[0]",
  "é😀"
]

/** Injection: every nasty string as a path key and as a value, read back as data. */
const injection = Effect.gen(function*() {
  const docs = yield* Repository.make({ name: "docs", schema: Doc, key: "id", indexes: [["data", "'"]] })
  for (let i = 0; i < nasty.length; i++) {
    yield* docs.insert({ id: `d${i}`, data: { [nasty[i]!]: nasty[i]!, "'": nasty[i]! } })
  }
  const docs_ = nasty.map((s, i) => ({ id: `d${i}`, data: { [s]: s, "'": s } }))
  const expected = (where: Criteria.Criteria) =>
    docs_.filter(Criteria.predicate(where)).map((d) => d.id).sort(Criteria.compareStrings)
  for (let i = 0; i < nasty.length; i++) {
    const s = nasty[i]!
    // The key and the value as data: exactly the records the in-memory predicate picks.
    for (
      const where of [
        Criteria.eq(["data", s], s),
        Criteria.isIn(["data", "'"], [s, "zz"]),
        Criteria.neq(["data", s], s),
        Criteria.gte(["data", s], s),
        Criteria.lt(["data", "'"], s)
      ]
    ) {
      expect(keys(yield* docs.query({ where })), JSON.stringify(where)).toEqual(expected(where))
      expect(yield* docs.count(where), JSON.stringify(where)).toBe(expected(where).length)
    }
    expect(keys(yield* docs.query({ where: Criteria.eq(["data", s], s) }))).toContain(`d${i}`)
    expect(keys(yield* docs.scan(Option.none(), 100, Criteria.eq(["data", "'"], s)).pipe(Effect.map((p) => p.rows))), s)
      .toEqual([`d${i}`])
    // Nasty keys as record keys too.
    const weird = `k${s}`
    yield* docs.put({ id: weird, data: {} })
    expect((yield* docs.get(weird)).key).toBe(weird)
    yield* docs.delete(weird)
  }
  const ordered = yield* docs.query({ orderBy: { path: ["data", "'"], direction: "desc" }, limit: 3 })
  const byValue = [...nasty].map((s, i) => [s, `d${i}`] as const).sort(([a], [b]) => Criteria.compareStrings(b, a))
  expect(keys(ordered)).toEqual(byValue.slice(0, 3).map(([, k]) => k))
  // The tables survived.
  expect(yield* tableCount("foundation_records")).toBe(nasty.length)
  expect(yield* tableCount("foundation_index")).toBe(nasty.length)
})

/** No stale entries: foundation_index holds exactly the current entries after each write. */
const staleEntries = Effect.gen(function*() {
  const repo = yield* openAgents()
  const a1 = agents[0]! // worker, [inference, training], eu
  yield* repo.insert(a1)
  expect(yield* indexRows()).toEqual([
    "capabilities sinference a1",
    "capabilities straining a1",
    "kind sworker a1",
    "meta.region seu a1"
  ])
  // A refused insert, an invalid update and a rolled-back transaction change nothing.
  expect(failureOf(yield* Effect.exit(repo.insert({ ...a1, kind: "x" })))).toBeInstanceOf(AlreadyExistsError)
  expect(failureOf(yield* Effect.exit(repo.update("a1", { kind: 5 as unknown as string })))).toBeInstanceOf(ValidationError)
  yield* Effect.exit(Transaction.run(Effect.zipRight(repo.update("a1", { kind: "gone" }), Effect.fail("no"))))
  expect((yield* indexRows()).length).toBe(4)
  yield* repo.put({ ...a1, kind: "monitor", capabilities: ["metrics", "metrics"] })
  expect(yield* indexRows()).toEqual(["capabilities smetrics a1", "kind smonitor a1", "meta.region seu a1"])
  yield* repo.update("a1", { meta: { region: "us" } })
  expect(yield* indexRows()).toEqual(["capabilities smetrics a1", "kind smonitor a1", "meta.region sus a1"])
  yield* repo.insert(agents[3]!) // a4: worker, [], ap
  yield* repo.delete("a1")
  expect(yield* indexRows()).toEqual(["kind sworker a4", "meta.region sap a4"])
  yield* repo.delete("a4")
  expect(yield* tableCount("foundation_index")).toBe(0)
})

/** An indexed query reads foundation_index: an entry removed behind the store's back hides its row. */
const indexIsRead = Effect.gen(function*() {
  const repo = yield* openAgents()
  const plain = yield* Repository.make({ name: "plain", schema: Agent, key: "id" })
  for (const a of agents) {
    yield* repo.insert(a)
    yield* plain.insert(a)
  }
  const where = Criteria.and(Criteria.isIn("capabilities", ["inference", "metrics"]), Criteria.neq("meta.region", "us"))
  expect(keys(yield* repo.query({ where }))).toEqual(["a1", "a5"])
  expect(keys(yield* plain.query({ where }))).toEqual(["a1", "a5"])
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(
    sql.onDialectOrElse({
      pg: () => "DELETE FROM foundation_index WHERE repository = 'agents' AND key = $1",
      orElse: () => "DELETE FROM foundation_index WHERE repository = 'agents' AND key = ?"
    }),
    ["a5"]
  )
  expect(keys(yield* repo.query({ where }))).toEqual(["a1"])
  expect(yield* repo.count(where)).toBe(1)
  // Criteria the index cannot serve still see the row.
  expect(keys(yield* repo.query({ where: Criteria.gt("load", 0.4), orderBy: { path: "load" } }))).toEqual([
    "a3",
    "a5",
    "b1",
    "a2"
  ])
})

// ---------------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------------

runRepositorySuite("sqlite", SqlStore.layerSqlite({ filename: ":memory:" }))

// ---------------------------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------------------------

describe("SqlStore on SQLite", () => {
  it.scoped("persists in its file: rows, timestamps, index entries and counts survive a restart", () =>
    Effect.gen(function*() {
      const file = tempFile()
      yield* TestClock.adjust("5 seconds")
      yield* Effect.provide(
        Effect.gen(function*() {
          const repo = yield* openAgents()
          for (const a of agents) yield* repo.insert(a)
          yield* TestClock.adjust("1 second")
          yield* repo.update("a2", { load: 0.95 })
          yield* repo.delete("b1")
        }),
        sqlite(file)
      )
      // A new store on the same file (the first one's scope, client included, is closed).
      yield* Effect.provide(
        Effect.gen(function*() {
          const repo = yield* openAgents()
          expect(keys(yield* repo.query())).toEqual(["a1", "a2", "a3", "a4", "a5"])
          expect(yield* repo.get("a2")).toEqual({
            key: "a2",
            value: { ...agents[1]!, load: 0.95 },
            createdAt: 5000,
            updatedAt: 6000
          })
          expect((yield* repo.get("a1")).value).toEqual(agents[0])
          expect(keys(yield* repo.query({ where: Criteria.eq("capabilities", "inference") }))).toEqual(["a1", "a2", "a5"])
          expect(yield* repo.count(Criteria.eq("kind", "worker"))).toBe(3)
          // 5 kinds + 6 capabilities + 5 regions.
          expect(yield* tableCount("foundation_index")).toBe(16)
        }),
        sqlite(file)
      )
      // Changed indexes between runs: the new path is built from the rows, the dropped one goes.
      yield* Effect.provide(
        Effect.gen(function*() {
          const repo = yield* openAgents(["kind", "meta.zone"])
          expect((yield* indexRows()).filter((r) => r.startsWith("meta.zone"))).toEqual([
            "meta.zone n1 a1",
            "meta.zone n2 a2",
            "meta.zone n3 a5"
          ])
          expect((yield* indexRows()).filter((r) => !r.startsWith("meta.zone") && !r.startsWith("kind"))).toEqual([])
          expect(keys(yield* repo.query({ where: Criteria.isIn("meta.zone", [2, 3]) }))).toEqual(["a2", "a5"])
          const sql = yield* SqlClient.SqlClient
          expect((yield* sql.unsafe<{ path: string }>("SELECT path FROM foundation_indexes ORDER BY path")).map((r) => r.path))
            .toEqual([JSON.stringify(["kind"]), JSON.stringify(["meta", "zone"])])
        }),
        sqlite(file)
      )
    }))

  it.scoped("path keys and values are data, never SQL", () => Effect.provide(injection, sqlite()))

  it.scoped("an indexed query searches foundation_index (EXPLAIN QUERY PLAN) and gives the same rows as a scan", () =>
    Effect.provide(
      Effect.gen(function*() {
        yield* indexIsRead
        const repo = yield* openAgents()
        const texts: Array<string> = []
        yield* recordingSql(repo.query({ where: Criteria.eq("kind", "worker"), orderBy: { path: "load" } }), texts)
        const query = texts.find((t) => t.startsWith("SELECT key, doc"))!
        expect(query).toContain("foundation_index")
        const sql = yield* SqlClient.SqlClient
        const plan = yield* sql.unsafe<{ detail: string }>(
          `EXPLAIN QUERY PLAN ${query}`,
          Array.from({ length: query.split("?").length - 1 }, () => null)
        )
        const details = plan.map((p) => p.detail)
        expect(details.some((d) => /^SEARCH foundation_index USING (COVERING )?INDEX/.test(d)), details.join("\n")).toBe(true)
        expect(details.some((d) => /^SEARCH foundation_records USING INDEX .*key=\?/.test(d)), details.join("\n")).toBe(true)
        // Without an indexed criterion the index is not touched.
        texts.length = 0
        yield* recordingSql(repo.query({ where: Criteria.eq("load", 0.5) }), texts)
        expect(texts.find((t) => t.startsWith("SELECT key, doc"))).not.toContain("foundation_index")
      }),
      sqlite()
    ))

  it.scoped("foundation_index holds exactly the current entries after every write", () => Effect.provide(staleEntries, sqlite()))

  it.scoped("a reader outside a transaction waits for its commit, then sees all of it", () =>
    Effect.provide(
      Effect.gen(function*() {
        const repo = yield* openAgents()
        const other = yield* Repository.make({ name: "other", schema: Agent, key: "id" })
        const inside = yield* Deferred.make<void>()
        const commit = yield* Deferred.make<void>()
        const tx = yield* Effect.fork(Transaction.run(Effect.gen(function*() {
          yield* repo.insert(agents[0]!)
          yield* other.insert(agents[1]!)
          yield* Deferred.succeed(inside, undefined)
          yield* Deferred.await(commit)
        })))
        yield* Deferred.await(inside)
        const reader = yield* Effect.fork(Effect.zip(repo.count(), other.count()))
        for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
        expect(Option.isNone(yield* Fiber.poll(reader))).toBe(true)
        yield* Deferred.succeed(commit, undefined)
        yield* Fiber.join(tx)
        expect(yield* Fiber.join(reader)).toEqual([1, 1])
      }),
      sqlite()
    ))

  it.scoped("events and telemetry go out at the commit, in order; a failed savepoint drops its own", () =>
    Effect.gen(function*() {
      const telemetry = yield* Telemetry.Telemetry
      const emitted = yield* Ref.make<ReadonlyArray<string>>([])
      yield* Effect.forkScoped(
        Stream.runForEach(
          telemetry.subscribe("foundation.repository.*"),
          (e) => Ref.update(emitted, (es) => [...es, `${e.name} ${String(e.metadata["key"])} ${String(e.metadata["store"])}`])
        )
      )
      yield* Effect.provide(
        Effect.gen(function*() {
          const repo = yield* openAgents()
          const seen = yield* Ref.make<ReadonlyArray<string>>([])
          const changes = yield* repo.changes
          yield* Effect.forkScoped(Stream.runForEach(changes, (c) => Ref.update(seen, (s) => [...s, `${c._tag} ${c.row.key}`])))
          const settle = Effect.forEach(Array.from({ length: 50 }), () => Effect.yieldNow(), { discard: true })
          yield* settle
          yield* Transaction.run(Effect.gen(function*() {
            yield* repo.insert(agents[0]!)
            yield* Effect.either(Transaction.run(Effect.zipRight(repo.insert(agents[1]!), Effect.fail("inner"))))
            yield* repo.update("a1", { load: 0.1 })
            yield* settle
            // Nothing is out before the commit.
            expect(yield* Ref.get(seen)).toEqual([])
            expect(yield* Ref.get(emitted)).toEqual([])
          }))
          yield* repo.put(agents[2]!)
          yield* Effect.exit(Transaction.run(Effect.zipRight(repo.delete("a1"), Effect.die("boom"))))
          yield* repo.delete("a3")
          yield* settle
          expect(yield* Ref.get(seen)).toEqual(["Inserted a1", "Updated a1", "Inserted a3", "Deleted a3"])
          expect(yield* Ref.get(emitted)).toEqual([
            "foundation.repository.insert a1 sqlite",
            "foundation.repository.update a1 sqlite",
            "foundation.repository.insert a3 sqlite",
            "foundation.repository.delete a3 sqlite"
          ])
        }),
        sqlite()
      )
    }).pipe(Effect.provide(Telemetry.layerWithBus())))

  it.scoped("counts operations per repository and times queries", () =>
    Effect.provide(
      Effect.gen(function*() {
        const repo = yield* Repository.make({ name: "metered", schema: Agent, key: "id" })
        /** The state of the store's metric `name` for this repository (and `op`). */
        const state = (name: string, op?: string) =>
          Effect.map(Metric.snapshot, (pairs) =>
            pairs.find((p) => {
              const tags = Object.fromEntries(p.metricKey.tags.map((t) => [t.key, t.value]))
              return p.metricKey.name === name && tags["repository"] === "metered" && tags["store"] === "sqlite" &&
                tags["op"] === op
            })?.metricState)
        const ops = (op: string) =>
          Effect.map(state("foundation_repository_operations_total", op), (s) => (s as { count?: number } | undefined)?.count ?? 0)
        yield* repo.insert(agents[0]!)
        yield* repo.insert(agents[1]!)
        yield* Effect.exit(repo.insert(agents[1]!)) // refused: not counted
        yield* repo.query()
        yield* repo.count()
        expect([yield* ops("insert"), yield* ops("query"), yield* ops("count"), yield* ops("delete")]).toEqual([2, 1, 1, 0])
        expect(((yield* state("foundation_repository_query_duration_ms")) as { count?: number } | undefined)?.count).toBe(2)
      }),
      sqlite()
    ))

  it.scoped("a write inside someone else's SQL transaction publishes when it succeeds", () =>
    Effect.provide(
      Effect.gen(function*() {
        const repo = yield* openAgents()
        const changes = yield* repo.changes
        const sql = yield* SqlClient.SqlClient
        yield* sql.withTransaction(Effect.zipRight(repo.insert(agents[0]!), repo.insert(agents[1]!)))
        const seen = yield* Stream.runCollect(Stream.take(changes, 2))
        expect([...seen].map((c) => `${c._tag} ${c.row.key}`)).toEqual(["Inserted a1", "Inserted a2"])
      }),
      sqlite()
    ))

  it.scoped("a record that no longer decodes is a StoreError during decode, never a defect", () =>
    Effect.provide(
      Effect.gen(function*() {
        const repo = yield* openAgents()
        yield* repo.insert(agents[0]!)
        yield* repo.insert(agents[1]!)
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe("UPDATE foundation_records SET doc = ? WHERE key = ?", [JSON.stringify({ id: "a1", kind: 5 }), "a1"])
        for (const attempt of [repo.get("a1"), repo.query(), repo.delete("a1"), repo.update("a1", { load: 1 })]) {
          const exit = yield* Effect.exit(attempt as Effect.Effect<unknown, unknown>)
          const error = failureOf(exit)
          expect(error).toBeInstanceOf(Repository.StoreError)
          expect((error as Repository.StoreError).during).toBe("decode agents")
          expect((error as Repository.StoreError).store).toBe("sqlite")
        }
        // The undecodable row was not deleted; the others still read.
        expect(yield* tableCount("foundation_records")).toBe(2)
        expect((yield* repo.get("a2")).value).toEqual(agents[1])
      }),
      sqlite()
    ))

  it.scoped("its migrations are recorded in foundation_migrations; the application's table is untouched", () =>
    Effect.gen(function*() {
      const file = tempFile()
      const client = SqliteClient.layer({ filename: file })
      // The application's own migrations first.
      yield* Effect.provide(
        Migrator.make({})({
          loader: Migrator.fromRecord({
            "1_users": Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe("CREATE TABLE users (id TEXT)"))
          })
        }),
        client
      )
      for (let run = 0; run < 2; run++) {
        yield* Effect.provide(
          Effect.gen(function*() {
            yield* (yield* openAgents()).put(agents[0]!)
            const sql = yield* SqlClient.SqlClient
            expect(yield* sql.unsafe("SELECT migration_id, name FROM foundation_migrations")).toEqual([
              { migration_id: 1, name: "foundation_repository_store" }
            ])
            expect(yield* sql.unsafe("SELECT migration_id, name FROM effect_sql_migrations")).toEqual([
              { migration_id: 1, name: "users" }
            ])
          }),
          SqlStore.layer.pipe(Layer.provideMerge(client))
        )
      }
    }))

  it.scoped("one index set per repository in a store; an open rolled back with its transaction must be redone", () =>
    Effect.provide(
      Effect.gen(function*() {
        const repo = yield* openAgents(["kind"])
        yield* repo.insert(agents[0]!)
        const other = failureOf(yield* Effect.exit(openAgents(["meta.region"])))
        expect(other).toBeInstanceOf(Repository.StoreError)
        expect((other as Repository.StoreError).during).toBe("open agents")
        // An open that builds indexes inside a transaction that fails is undone with it.
        let opened: Repository.Repository<Agent, string> | undefined
        yield* Effect.exit(Transaction.run(Effect.gen(function*() {
          opened = yield* Repository.make({ name: "fresh", schema: Agent, key: "id", indexes: ["kind"] })
          yield* opened.insert(agents[1]!)
          return yield* Effect.fail("rolled back")
        })))
        const stale = failureOf(yield* Effect.exit(opened!.count()))
        expect((stale as Repository.StoreError).during).toBe("count fresh")
        const fresh = yield* Repository.make({ name: "fresh", schema: Agent, key: "id", indexes: ["kind"] })
        yield* fresh.insert(agents[1]!)
        expect(keys(yield* fresh.query({ where: Criteria.eq("kind", "worker") }))).toEqual(["a2"])
        expect(yield* indexRows("fresh")).toEqual(["kind sworker a2"])
      }),
      sqlite()
    ))

  it.effect("bad options are ValidationErrors naming the field; an unusable database is a StoreError", () =>
    Effect.gen(function*() {
      const build = (layer: Layer.Layer<Repository.RepositoryStore, unknown>) =>
        Effect.scoped(Effect.flip(Layer.build(layer)))
      expect(((yield* build(SqlStore.layerSqlite({ filename: "" }))) as ValidationError).field).toBe("sqlStore.filename")
      expect(((yield* build(SqlStore.layerPg({ url: "mysql://x" }))) as ValidationError).field).toBe("sqlStore.url")
      const unopenable = (yield* build(SqlStore.layerSqlite({ filename: path.join(os.tmpdir(), "no-such-dir-x", "a.db") }))) as
        Repository.StoreError
      expect([unopenable._tag, unopenable.store, unopenable.during]).toEqual(["StoreError", "sqlite", "connect"])
      // A client of another dialect.
      const mysql = { onDialectOrElse: (o: { readonly mysql?: () => unknown }) => o.mysql!() } as unknown as SqlClient.SqlClient
      const error = yield* Effect.flip(Effect.scoped(Effect.provideService(SqlStore.make, SqlClient.SqlClient, mysql)))
      expect([error.store, error.during]).toEqual(["mysql", "make"])
      expect(error.message).toContain("SQLite or PostgreSQL")
    }))

  it.live("an unreachable PostgreSQL server fails the layer with a StoreError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Layer.build(SqlStore.layerPg({ url: "postgres://postgres@127.0.0.1:1/test" }))))
      expect(error._tag).toBe("StoreError")
      expect([(error as Repository.StoreError).store, (error as Repository.StoreError).during]).toEqual(["pg", "connect"])
    }))
})

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

describe.skipIf(pgUrl === undefined)("SqlStore on PostgreSQL", () => {
  const url = pgUrl ?? ""
  runRepositorySuite("pg", pg(url))

  it.scoped("path keys and values are data, never SQL", () => Effect.provide(injection, pg(url)))

  it.scoped("an indexed query reads foundation_index and gives the same rows as a scan", () =>
    Effect.provide(indexIsRead, pg(url)))

  it.scoped("foundation_index holds exactly the current entries after every write", () =>
    Effect.provide(staleEntries, pg(url)))

  it.scoped("a reader on another connection sees nothing of an open transaction, then all of it", () =>
    Effect.provide(
      Effect.gen(function*() {
        const repo = yield* openAgents()
        const other = yield* Repository.make({ name: "other", schema: Agent, key: "id" })
        const inside = yield* Deferred.make<void>()
        const commit = yield* Deferred.make<void>()
        const tx = yield* Effect.fork(Transaction.run(Effect.gen(function*() {
          yield* repo.insert(agents[0]!)
          yield* other.insert(agents[1]!)
          expect(yield* Effect.zip(repo.count(), other.count())).toEqual([1, 1])
          yield* Deferred.succeed(inside, undefined)
          yield* Deferred.await(commit)
        })))
        yield* Deferred.await(inside)
        // Read from this fiber, outside the transaction, while it is open.
        expect(yield* Effect.zip(repo.count(), other.count())).toEqual([0, 0])
        expect(yield* repo.find("a1")).toEqual(Option.none())
        yield* Deferred.succeed(commit, undefined)
        yield* Fiber.join(tx)
        expect(yield* Effect.zip(repo.count(), other.count())).toEqual([1, 1])
      }),
      pg(url)
    ))

  it.scoped("persists across stores on one schema; changed indexes are rebuilt on open", () =>
    Effect.gen(function*() {
      const schema = `foundation_test_${process.pid}_${++schemas}`
      const admin = yield* PgClient.make({ url: Redacted.make(url) })
      yield* Effect.acquireRelease(
        admin.unsafe(`CREATE SCHEMA "${schema}"`),
        () => Effect.orDie(admin.unsafe(`DROP SCHEMA "${schema}" CASCADE`))
      )
      yield* TestClock.adjust("2 seconds")
      yield* Effect.provide(
        Effect.gen(function*() {
          const repo = yield* openAgents()
          for (const a of agents) yield* repo.insert(a)
        }),
        pg(url, schema)
      )
      yield* Effect.provide(
        Effect.gen(function*() {
          const repo = yield* openAgents(["kind", "meta.zone"])
          expect(yield* repo.get("a1")).toEqual({ key: "a1", value: agents[0], createdAt: 2000, updatedAt: 2000 })
          expect((yield* indexRows()).filter((r) => r.startsWith("meta.zone"))).toEqual([
            "meta.zone n1 a1",
            "meta.zone n1 b1",
            "meta.zone n2 a2",
            "meta.zone n3 a5"
          ])
          expect(yield* tableCount("foundation_index")).toBe(10)
          expect(keys(yield* repo.query({ where: Criteria.eq("meta.zone", 1) }))).toEqual(["a1", "b1"])
        }),
        pg(url, schema)
      )
    }).pipe(Effect.provide(Reactivity.layer)))
})

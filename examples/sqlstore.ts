// examples/sqlstore.ts — the same repository on SQLite: close the store, open it again, the data is there
import { Effect, Schema } from "effect"
import { Criteria, Repository, SqlStore } from "effect-foundation"

const Job = Schema.Struct({ id: Schema.String, queue: Schema.String, attempts: Schema.Number })

const open = Repository.make({ name: "jobs", schema: Job, key: "id", indexes: ["queue"] })

export const program = (filename: string) =>
  Effect.gen(function*() {
    // First run: write two jobs; the store (and its connection) closes with the scope.
    yield* Effect.scoped(Effect.gen(function*() {
      const jobs = yield* open
      yield* jobs.insert({ id: "j1", queue: "email", attempts: 0 })
      yield* jobs.insert({ id: "j2", queue: "billing", attempts: 2 })
    })).pipe(Effect.provide(SqlStore.layerSqlite({ filename })))

    // A new store on the same file reads them back; criteria become parameterised SQL.
    return yield* Effect.scoped(Effect.gen(function*() {
      const jobs = yield* open
      const email = yield* jobs.query({ where: [Criteria.eq("queue", "email")] })
      return { count: yield* jobs.count(), email: email.map((row) => row.key) }
    })).pipe(Effect.provide(SqlStore.layerSqlite({ filename })))
  })

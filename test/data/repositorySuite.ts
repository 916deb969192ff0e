/**
 * The repository contract, run against every store (memory, SQLite, PostgreSQL): each store's
 * test file calls `runRepositorySuite` with a layer that gives a fresh, empty store each time it
 * is built. Time runs on the TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Deferred, Effect, Either, Exit, Fiber, Layer, Option, Schema, Stream, TestClock } from "effect"
import { AlreadyExistsError, NotFoundError, ValidationError } from "../../src/errors/FoundationError.js"
import * as Batch from "../../src/infra/Batch.js"
import * as Criteria from "../../src/data/Criteria.js"
import * as Repository from "../../src/data/Repository.js"
import * as Transaction from "../../src/data/Transaction.js"

export const Agent = Schema.Struct({
  id: Schema.String,
  kind: Schema.String,
  load: Schema.optional(Schema.Number),
  capabilities: Schema.Array(Schema.String),
  meta: Schema.Struct({ region: Schema.String, zone: Schema.optional(Schema.Number) })
})
export type Agent = typeof Agent.Type

export const Account = Schema.Struct({ id: Schema.Number, owner: Schema.String, balance: Schema.Number })

/** A record whose encoded form differs from its type (a Date stored as an ISO string). */
export const Event = Schema.Struct({ id: Schema.String, at: Schema.Date, tags: Schema.Array(Schema.String) })

const agent = (
  id: string,
  kind: string,
  capabilities: ReadonlyArray<string>,
  region: string,
  load?: number,
  zone?: number
): Agent => ({
  id,
  kind,
  capabilities,
  meta: zone === undefined ? { region } : { region, zone },
  ...(load === undefined ? {} : { load })
})

export const agents: ReadonlyArray<Agent> = [
  agent("a1", "worker", ["inference", "training"], "eu", 0.2, 1),
  agent("a2", "worker", ["inference"], "us", 0.9, 2),
  agent("a3", "coordinator", ["consensus"], "eu", 0.5),
  agent("a4", "worker", [], "ap"),
  agent("a5", "monitor", ["inference", "metrics"], "eu", 0.5, 3),
  agent("b1", "worker", ["training"], "us", 0.7, 1)
]

const openAgents = (indexed = true) =>
  Repository.make({
    name: indexed ? "agents" : "agents_unindexed",
    schema: Agent,
    key: "id",
    indexes: indexed ? ["kind", "capabilities", "meta.region"] : []
  })

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const ids = (rows: ReadonlyArray<Repository.Row<Agent, string>>) => rows.map((r) => r.key)

export const runRepositorySuite = (label: string, store: Layer.Layer<Repository.RepositoryStore, unknown>) => {
  const run = <A, E, R>(effect: Effect.Effect<A, E, R | Repository.RepositoryStore>) =>
    Effect.provide(effect, Layer.orDie(store))

  describe(`Repository contract: ${label}`, () => {
    it.scoped("insert, get, find, put, update, delete, with timestamps from the Clock", () =>
      run(Effect.gen(function*() {
        const repo = yield* openAgents()
        yield* TestClock.adjust("1 second")
        const row = yield* repo.insert(agents[0]!)
        expect(row).toEqual({ key: "a1", value: agents[0], createdAt: 1000, updatedAt: 1000 })
        expect((yield* repo.get("a1")).value).toEqual(agents[0])
        expect(yield* repo.find("zz")).toEqual(Option.none())
        // A taken key: typed error, nothing changed.
        const dup = failureOf(yield* Effect.exit(repo.insert({ ...agents[0]!, kind: "changed" })))
        expect(dup).toBeInstanceOf(AlreadyExistsError)
        expect((dup as AlreadyExistsError).key).toBe("a1")
        expect((yield* repo.get("a1")).value.kind).toBe("worker")
        // put over an existing key keeps createdAt (the original reset it).
        yield* TestClock.adjust("1 second")
        const replaced = yield* repo.put({ ...agents[0]!, kind: "trainer" })
        expect(replaced).toMatchObject({ createdAt: 1000, updatedAt: 2000, value: { kind: "trainer" } })
        // update: a patch, then a function; re-validated; the key cannot change.
        yield* TestClock.adjust("1 second")
        const patched = yield* repo.update("a1", { load: 0.75 })
        expect(patched).toMatchObject({ createdAt: 1000, updatedAt: 3000, value: { kind: "trainer", load: 0.75 } })
        const mapped = yield* repo.update("a1", (a) => ({ ...a, capabilities: [...a.capabilities, "x"] }))
        expect(mapped.value.capabilities).toEqual(["inference", "training", "x"])
        const rekey = failureOf(yield* Effect.exit(repo.update("a1", { id: "other" })))
        expect((rekey as ValidationError).field).toBe("agents.id")
        const bad = failureOf(yield* Effect.exit(repo.update("a1", { load: "high" as unknown as number })))
        expect(bad).toBeInstanceOf(ValidationError)
        expect((bad as ValidationError).field).toBe("agents.load")
        expect((yield* repo.get("a1")).value.load).toBe(0.75)
        const missing = failureOf(yield* Effect.exit(repo.update("zz", { load: 1 })))
        expect(missing).toBeInstanceOf(NotFoundError)
        // delete returns the row; then it is gone.
        const deleted = yield* repo.delete("a1")
        expect(deleted.value.kind).toBe("trainer")
        expect(failureOf(yield* Effect.exit(repo.get("a1")))).toBeInstanceOf(NotFoundError)
        expect(failureOf(yield* Effect.exit(repo.delete("a1")))).toBeInstanceOf(NotFoundError)
        expect(yield* repo.count()).toBe(0)
      })))

    it.scoped("bad records are refused at the boundary with the field named, and nothing is written", () =>
      run(Effect.gen(function*() {
        const repo = yield* openAgents()
        const wrongType = failureOf(yield* Effect.exit(repo.insert({ ...agents[0]!, load: "x" as unknown as number })))
        expect((wrongType as ValidationError).field).toBe("agents.load")
        const nested = failureOf(
          yield* Effect.exit(repo.put({ ...agents[0]!, meta: { region: 7 as unknown as string } }))
        )
        expect((nested as ValidationError).field).toBe("agents.meta.region")
        const noKey = failureOf(yield* Effect.exit(repo.insert({ ...agents[0]!, id: "" })))
        expect((noKey as ValidationError).field).toBe("agents.id")
        expect(yield* repo.count()).toBe(0)
        // Bad options are refused too.
        const badName = failureOf(yield* Effect.exit(Repository.make({ name: "no spaces", schema: Agent, key: "id" })))
        expect((badName as ValidationError).field).toBe("repository.name")
        const badIndex = failureOf(
          yield* Effect.exit(Repository.make({ name: "x", schema: Agent, key: "id", indexes: ["kind", "kind"] }))
        )
        expect((badIndex as ValidationError).field).toBe("repository.indexes.1")
      })))

    it.scoped("criteria: list membership, overlap, negations, comparisons that never match absent fields", () =>
      run(Effect.gen(function*() {
        const repo = yield* openAgents()
        const plain = yield* openAgents(false)
        for (const a of agents) {
          yield* repo.insert(a)
          yield* plain.insert(a)
        }
        const cases: ReadonlyArray<readonly [Criteria.Criteria, ReadonlyArray<string>]> = [
          [Criteria.eq("capabilities", "inference"), ["a1", "a2", "a5"]],
          [Criteria.eq("kind", "worker"), ["a1", "a2", "a4", "b1"]],
          [Criteria.neq("kind", "worker"), ["a3", "a5"]],
          [Criteria.isIn("capabilities", ["consensus", "metrics"]), ["a3", "a5"]],
          [Criteria.notIn("capabilities", ["inference", "training"]), ["a3", "a4"]],
          // An absent field never passes a comparison (the original let it through gte).
          [Criteria.gte("load", 0.5), ["a2", "a3", "a5", "b1"]],
          [Criteria.lt("load", 0.5), ["a1"]],
          [Criteria.neq("load", 0.5), ["a1", "a2", "a4", "b1"]],
          [Criteria.eq(["meta", "region"], "eu"), ["a1", "a3", "a5"]],
          [Criteria.gt("meta.zone", 1), ["a2", "a5"]],
          [Criteria.lt("kind", "n"), ["a3", "a5"]],
          // A number never equals a string, nor compares with one.
          [Criteria.eq("meta.zone", "1"), []],
          [Criteria.gt("meta.region", 1), []],
          [[Criteria.eq("kind", "worker"), Criteria.eq("meta.region", "us")], ["a2", "b1"]],
          [Criteria.or(Criteria.eq("kind", "monitor"), Criteria.eq("meta.region", "ap")), ["a4", "a5"]],
          [Criteria.not(Criteria.eq("capabilities", "inference")), ["a3", "a4", "b1"]],
          [Criteria.and(Criteria.isIn("kind", ["worker", "monitor"]), Criteria.not(Criteria.lt("load", 0.6))), ["a2", "a4", "b1"]],
          [[], ["a1", "a2", "a3", "a4", "a5", "b1"]]
        ]
        for (const [where, expected] of cases) {
          const indexed = ids(yield* repo.query({ where }))
          expect(indexed, JSON.stringify(where)).toEqual(expected)
          expect(ids(yield* plain.query({ where })), JSON.stringify(where)).toEqual(expected)
          expect(yield* repo.count(where), JSON.stringify(where)).toBe(expected.length)
        }
      })))

    it.scoped("bad criteria and paging are ValidationErrors naming the part", () =>
      run(Effect.gen(function*() {
        const repo = yield* openAgents()
        const cases: ReadonlyArray<readonly [unknown, string]> = [
          [[Criteria.eq("kind", "worker"), { path: ["kind"], op: "like", value: "w" }], "query.where.1.op"],
          [{ path: [], op: "eq", value: 1 }, "query.where.path"],
          [{ and: [{ path: ["a"], op: "in", value: "x" }] }, "query.where.and.0.value"],
          [{ or: [{ path: ["a"], op: "gt", value: true }] }, "query.where.or.0.value"],
          [{ not: { path: ["a"], op: "eq", value: { x: 1 } } }, "query.where.not.value"]
        ]
        for (const [where, field] of cases) {
          const error = failureOf(yield* Effect.exit(repo.query({ where: where as Criteria.Criteria })))
          expect(error, field).toBeInstanceOf(ValidationError)
          expect((error as ValidationError).field).toBe(field)
        }
        expect((failureOf(yield* Effect.exit(repo.query({ limit: 0 }))) as ValidationError).field).toBe("query.limit")
        expect((failureOf(yield* Effect.exit(repo.query({ offset: -1 }))) as ValidationError).field).toBe("query.offset")
        expect(
          (failureOf(yield* Effect.exit(repo.query({ orderBy: { path: "load", direction: "up" as "asc" } }))) as ValidationError)
            .field
        ).toBe("query.orderBy.0.direction")
      })))

    it.scoped("orderBy (numbers, then strings, absent last; ties by key), offset and limit; count ignores paging", () =>
      run(Effect.gen(function*() {
        const repo = yield* openAgents()
        for (const a of agents) yield* repo.insert(a)
        expect(ids(yield* repo.query({ orderBy: { path: "load" } }))).toEqual(["a1", "a3", "a5", "b1", "a2", "a4"])
        expect(ids(yield* repo.query({ orderBy: { path: "load", direction: "desc" } }))).toEqual([
          "a2",
          "b1",
          "a3",
          "a5",
          "a1",
          "a4"
        ])
        expect(ids(yield* repo.query({ orderBy: [{ path: "meta.region" }, { path: "load", direction: "desc" }] }))).toEqual([
          "a4",
          "a3",
          "a5",
          "a1",
          "a2",
          "b1"
        ])
        const page = yield* repo.query({ where: Criteria.eq("kind", "worker"), orderBy: { path: "id" }, offset: 1, limit: 2 })
        expect(ids(page)).toEqual(["a2", "a4"])
        expect(yield* repo.count(Criteria.eq("kind", "worker"))).toBe(4)
        // Without orderBy: key order.
        expect(ids(yield* repo.query({ limit: 3 }))).toEqual(["a1", "a2", "a3"])
      })))

    it.scoped("indexes follow every write: no stale entry after put, update or delete", () =>
      run(Effect.gen(function*() {
        const repo = yield* openAgents()
        yield* repo.insert(agents[0]!) // worker, [inference, training], eu
        yield* repo.put({ ...agents[0]!, kind: "monitor", capabilities: ["metrics"] })
        expect(ids(yield* repo.query({ where: Criteria.eq("kind", "worker") }))).toEqual([])
        expect(ids(yield* repo.query({ where: Criteria.eq("capabilities", "inference") }))).toEqual([])
        expect(ids(yield* repo.query({ where: Criteria.eq("kind", "monitor") }))).toEqual(["a1"])
        yield* repo.update("a1", { meta: { region: "us" } })
        expect(ids(yield* repo.query({ where: Criteria.eq("meta.region", "eu") }))).toEqual([])
        expect(ids(yield* repo.query({ where: Criteria.isIn("meta.region", ["us", "ap"]) }))).toEqual(["a1"])
        yield* repo.delete("a1")
        expect(ids(yield* repo.query({ where: Criteria.eq("kind", "monitor") }))).toEqual([])
        yield* repo.insert({ ...agents[0]!, kind: "monitor" })
        expect(ids(yield* repo.query({ where: Criteria.eq("kind", "monitor") }))).toEqual(["a1"])
      })))

    it.scoped("criteria address the encoded record; numeric keys; the same repository opened twice shares its rows", () =>
      run(Effect.gen(function*() {
        const events = yield* Repository.make({ name: "events", schema: Event, key: "id", indexes: ["tags"] })
        yield* events.insert({ id: "e1", at: new Date("2026-01-02T00:00:00.000Z"), tags: ["x"] })
        yield* events.insert({ id: "e2", at: new Date("2026-03-04T00:00:00.000Z"), tags: ["y", "x"] })
        const later = yield* events.query({ where: Criteria.gt("at", "2026-02-01") })
        expect(later.map((r) => r.value.at.toISOString())).toEqual(["2026-03-04T00:00:00.000Z"])
        expect(later[0]!.value.at).toBeInstanceOf(Date)
        const accounts = yield* Repository.make({ name: "accounts", schema: Account, key: "id" })
        yield* accounts.insert({ id: 7, owner: "ann", balance: 10 })
        expect((yield* accounts.get(7)).value.owner).toBe("ann")
        const again = yield* Repository.make({ name: "accounts", schema: Account, key: "id" })
        expect((yield* again.get(7)).value.balance).toBe(10)
        yield* again.update(7, { balance: 11 })
        expect((yield* accounts.get(7)).value.balance).toBe(11)
      })))

    it.scoped("a transaction over two repositories commits both or neither", () =>
      run(Effect.gen(function*() {
        const repo = yield* openAgents()
        const accounts = yield* Repository.make({ name: "accounts", schema: Account, key: "id" })
        yield* repo.insert(agents[2]!)
        // Success: both writes land.
        yield* Transaction.run(Effect.gen(function*() {
          yield* repo.insert(agents[0]!)
          yield* accounts.insert({ id: 1, owner: "a1", balance: 100 })
          // Reads inside see the transaction's own writes.
          expect((yield* repo.get("a1")).value.kind).toBe("worker")
          expect(yield* repo.count(Criteria.eq("kind", "worker"))).toBe(1)
        }))
        expect(yield* repo.count()).toBe(2)
        expect(yield* accounts.count()).toBe(1)
        // Failure: a successful insert, update and delete are all undone with the failing step.
        const failed = yield* Effect.exit(Transaction.run(Effect.gen(function*() {
          yield* repo.insert(agents[1]!)
          yield* repo.update("a3", { kind: "changed" })
          yield* accounts.delete(1)
          yield* accounts.insert({ id: 2, owner: "a2", balance: 5 })
          yield* repo.insert(agents[0]!) // a1 exists: fails
        })))
        expect(failureOf(failed)).toBeInstanceOf(AlreadyExistsError)
        expect(ids(yield* repo.query())).toEqual(["a1", "a3"])
        expect((yield* repo.get("a3")).value.kind).toBe("coordinator")
        expect((yield* repo.query({ where: Criteria.eq("kind", "changed") })).length).toBe(0)
        expect((yield* accounts.query()).map((r) => r.key)).toEqual([1])
        // A defect and an interruption roll back too.
        yield* Effect.exit(Transaction.run(Effect.zipRight(repo.insert(agents[3]!), Effect.die("boom"))))
        const latch = yield* Deferred.make<void>()
        const fiber = yield* Effect.fork(
          Transaction.run(Effect.zipRight(repo.insert(agents[4]!), Effect.zipRight(Deferred.succeed(latch, undefined), Effect.never)))
        )
        yield* Deferred.await(latch)
        yield* Fiber.interrupt(fiber)
        expect(ids(yield* repo.query())).toEqual(["a1", "a3"])
      })))

    it.scoped("nested transactions are savepoints; writes after the commit are visible to new readers only then", () =>
      run(Effect.gen(function*() {
        const repo = yield* openAgents()
        const result = yield* Transaction.run(Effect.gen(function*() {
          yield* repo.insert(agents[0]!)
          const inner = yield* Effect.either(Transaction.run(Effect.gen(function*() {
            yield* repo.insert(agents[1]!)
            return yield* Effect.fail("inner failed" as const)
          })))
          yield* Transaction.run(repo.insert(agents[2]!))
          return inner
        }))
        expect(result).toEqual(Either.left("inner failed"))
        expect(ids(yield* repo.query())).toEqual(["a1", "a3"])
      })))

    it.scoped("no reader outside sees part of a transaction", () =>
      run(Effect.gen(function*() {
        const repo = yield* openAgents()
        const accounts = yield* Repository.make({ name: "accounts", schema: Account, key: "id" })
        const paused = yield* Deferred.make<void>()
        const resume = yield* Deferred.make<void>()
        const tx = yield* Effect.fork(Transaction.run(Effect.gen(function*() {
          yield* repo.insert(agents[0]!)
          yield* Deferred.succeed(paused, undefined)
          yield* Deferred.await(resume)
          yield* accounts.insert({ id: 1, owner: "a1", balance: 1 })
        })))
        yield* Deferred.await(paused)
        // A reader outside: either it reads now and sees nothing of the transaction, or it waits
        // for the commit and then sees all of it.
        const reader = yield* Effect.fork(Effect.zip(repo.count(), accounts.count()))
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
        const early = yield* Fiber.poll(reader)
        if (Option.isSome(early)) expect(early.value).toEqual(Exit.succeed([0, 0]))
        yield* Deferred.succeed(resume, undefined)
        yield* Fiber.join(tx)
        const seen = yield* Fiber.join(reader)
        // The two reads are separate statements: they may straddle the commit ([0, 1], the
        // first before it, the second after), but the first can never see the transaction's
        // first write while the second misses its second one ([1, 0] is half a transaction).
        expect([[0, 0], [0, 1], [1, 1]]).toContainEqual(seen)
        expect(yield* Effect.zip(repo.count(), accounts.count())).toEqual([1, 1])
      })))

    it.scoped("concurrent transfers in transactions lose no update", () =>
      run(Effect.gen(function*() {
        const accounts = yield* Repository.make({ name: "accounts", schema: Account, key: "id" })
        for (let id = 1; id <= 4; id++) yield* accounts.insert({ id, owner: `o${id}`, balance: 100 })
        const transfer = (from: number, to: number, amount: number) =>
          Transaction.run(Effect.gen(function*() {
            // Always in key order, so that databases with row locks cannot deadlock.
            const [first, second] = from < to ? [from, to] : [to, from]
            const delta = (id: number) => id === from ? -amount : amount
            yield* accounts.update(first, (a) => ({ ...a, balance: a.balance + delta(first) }))
            yield* Effect.yieldNow()
            yield* accounts.update(second, (a) => ({ ...a, balance: a.balance + delta(second) }))
          }))
        const transfers = Array.from({ length: 24 }, (_, i) => transfer(1 + (i % 4), 1 + ((i + 1) % 4), 1 + (i % 5)))
        yield* Effect.all(transfers, { concurrency: "unbounded" })
        const balances = (yield* accounts.query()).map((r) => r.value.balance)
        expect(balances.reduce((a, b) => a + b, 0)).toBe(400)
        // Account i sends to i+1 six times and receives from i-1 six times.
        const expected = [1, 2, 3, 4].map((id) => {
          let b = 100
          for (let i = 0; i < 24; i++) {
            const from = 1 + (i % 4)
            const to = 1 + ((i + 1) % 4)
            if (from === id) b -= 1 + (i % 5)
            if (to === id) b += 1 + (i % 5)
          }
          return b
        })
        expect(balances).toEqual(expected)
      })))

    it.scoped("changes: committed writes in order; a rolled-back transaction publishes nothing", () =>
      run(Effect.gen(function*() {
        const repo = yield* openAgents()
        const changes = yield* repo.changes
        yield* repo.insert(agents[0]!)
        yield* repo.update("a1", { load: 0.3 })
        yield* Effect.exit(Transaction.run(Effect.zipRight(repo.insert(agents[1]!), Effect.fail("no"))))
        yield* Transaction.run(Effect.zipRight(repo.insert(agents[2]!), repo.delete("a1")))
        const seen = Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.take(changes, 4)))
        expect(seen.map((c) => `${c._tag} ${c.row.key}`)).toEqual(["Inserted a1", "Updated a1", "Inserted a3", "Deleted a1"])
        const updated = seen[1]!
        expect(updated._tag === "Updated" && updated.previous.value.load).toBe(0.2)
        expect(seen[1]!.row.value.load).toBe(0.3)
      })))

    it.scoped("scan walks key order by cursor; Batch works on a repository, rollback included", () =>
      run(Effect.gen(function*() {
        const repo = yield* openAgents()
        for (const a of agents) yield* repo.insert(a)
        const first = yield* repo.scan(Option.none(), 4)
        expect(ids(first.rows)).toEqual(["a1", "a2", "a3", "a4"])
        expect(first.next).toEqual(Option.some("a4"))
        const second = yield* repo.scan(first.next, 4)
        expect(ids(second.rows)).toEqual(["a5", "b1"])
        expect(second.next).toEqual(Option.none())
        const workers = yield* repo.scan(Option.some("a1"), 10, Criteria.eq("kind", "worker"))
        expect(ids(workers.rows)).toEqual(["a2", "a4", "b1"])

        const batch = yield* Batch.make(Repository.batchStore(repo), { chunkSize: 2 })
        const extra = [agent("c1", "worker", [], "eu"), agent("c2", "worker", [], "eu"), agents[0]!, agent("c3", "x", [], "eu")]
        const result = yield* batch.register(extra.map((a) => [a.id, a] as const), { onError: "rollback" })
        expect(result._tag).toBe("Failed")
        expect(yield* repo.count()).toBe(6) // c1 and c2 undone
        const pages = yield* Stream.runCollect(batch.query((a) => a.kind === "worker", { pageSize: 2 }))
        expect(Chunk.toReadonlyArray(pages).map(([k]) => k)).toEqual(["a1", "a2", "a4", "b1"])
        const updated = yield* batch.update([["a1", { load: 0.1 }], ["zz", { load: 0.1 }]], { onError: "continue" })
        expect(updated._tag).toBe("Partial")
        expect((yield* repo.get("a1")).value.load).toBe(0.1)
      })))
  })
}

import * as os from "node:os"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Deferred, Duration, Effect, Exit, Fiber, Option, Order, Ref, Stream, TestClock } from "effect"
import { AlreadyExistsError, NotFoundError, TimeoutError, ValidationError } from "../../src/errors/FoundationError.js"
import * as Batch from "../../src/infra/Batch.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as Telemetry from "../../src/observability/Telemetry.js"

interface Agent {
  readonly capability: string
  readonly health: "healthy" | "degraded" | "unhealthy"
}

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const settle = Effect.forEach(Array.from({ length: 10 }), () => Effect.yieldNow(), { discard: true })
/** Enough scheduler turns for thousands of fibers to reach their next suspension. */
const settleMany = Effect.forEach(Array.from({ length: 200 }), () => Effect.yieldNow(), { discard: true })

const key = (i: number) => `k${String(i).padStart(4, "0")}`
const agent = (capability = "data"): Agent => ({ capability, health: "healthy" })

const agents = (initial: Iterable<readonly [string, Agent]> = []) =>
  Batch.memoryStore<string, Agent>({ name: "agents", order: Order.string, initial })

/** Wraps a store: each call is logged with the clock time, and optionally delayed. */
const recording = <P, E>(
  inner: Batch.BatchStore<string, Agent, P, E>,
  delay: Duration.DurationInput = 0
) =>
  Effect.gen(function*() {
    const calls = yield* Ref.make<Array<{ readonly op: string; readonly key: string; readonly at: number }>>([])
    const live = yield* Ref.make(0)
    const peak = yield* Ref.make(0)
    const log = (op: string, k: string) =>
      Effect.gen(function*() {
        const at = yield* Effect.clockWith((c) => c.currentTimeMillis)
        yield* Ref.update(calls, (cs) => [...cs, { op, key: k, at }])
        const n = yield* Ref.updateAndGet(live, (x) => x + 1)
        yield* Ref.update(peak, (p) => Math.max(p, n))
        if (Duration.toMillis(delay) > 0) yield* Effect.sleep(delay)
        yield* Ref.update(live, (x) => x - 1)
      })
    const scans = yield* Ref.make(0)
    const store: Batch.BatchStore<string, Agent, P, E> = {
      name: inner.name,
      insert: (k, v) => Effect.zipRight(log("insert", k), inner.insert(k, v)),
      update: (k, p) => Effect.zipRight(log("update", k), inner.update(k, p)),
      remove: (k) => Effect.zipRight(log("remove", k), inner.remove(k)),
      scan: (cursor, limit, filter) => Effect.zipRight(Ref.update(scans, (n) => n + 1), inner.scan(cursor, limit, filter))
    }
    return { store, calls, peak, scans }
  })

describe("Batch writes", () => {
  it.effect("registers every entry: Ok with the keys in input order", () =>
    Effect.gen(function*() {
      const store = yield* agents()
      const batch = yield* Batch.make(store)
      const entries = Array.from({ length: 25 }, (_, i) => [key(i), agent()] as const)
      const result = yield* batch.register(entries, { chunkSize: 5 })
      expect(result).toEqual(Batch.BatchResult.Ok({ keys: entries.map(([k]) => k) }))
      expect(yield* store.size).toBe(25)
      expect(yield* store.get(key(7))).toEqual(Option.some(agent()))
    }))

  it.effect("applies chunk by chunk: a chunk's items run together, the next chunk waits", () =>
    Effect.gen(function*() {
      const rec = yield* recording(yield* agents(), "1 second")
      const batch = yield* Batch.make(rec.store, { chunkSize: 3, concurrency: 10 })
      const fiber = yield* Effect.fork(batch.register(Array.from({ length: 7 }, (_, i) => [key(i), agent()] as const)))
      yield* settle
      expect((yield* Ref.get(rec.calls)).length).toBe(3)
      yield* TestClock.adjust("1 second")
      yield* settle
      expect((yield* Ref.get(rec.calls)).length).toBe(6)
      yield* TestClock.adjust("2 seconds")
      expect(Batch.BatchResult.$is("Ok")(yield* Fiber.join(fiber))).toBe(true)
      expect((yield* Ref.get(rec.calls)).map((c) => c.at)).toEqual([0, 0, 0, 1000, 1000, 1000, 2000])
      expect(yield* Ref.get(rec.peak)).toBe(3)
    }))

  it.effect("the default chunk is 1000 items", () =>
    Effect.gen(function*() {
      // Each insert waits for the gate open when it started; count the inserts started per gate.
      const inner = yield* agents()
      const started = yield* Ref.make(0)
      const gate = yield* Ref.make(yield* Deferred.make<void>())
      const store: Batch.BatchStore<string, Agent> = {
        ...inner,
        insert: (k, v) =>
          Effect.gen(function*() {
            yield* Ref.update(started, (n) => n + 1)
            yield* Deferred.await(yield* Ref.get(gate))
            yield* inner.insert(k, v)
          })
      }
      const batch = yield* Batch.make(store, { concurrency: 5000 })
      const fiber = yield* Effect.fork(batch.register(Array.from({ length: 2500 }, (_, i) => [key(i), agent()] as const)))
      const waves: Array<number> = []
      for (let wave = 0; wave < 3; wave++) {
        yield* settleMany
        waves.push(yield* Ref.get(started))
        const open = yield* Ref.get(gate)
        yield* Ref.set(gate, yield* Deferred.make<void>())
        yield* Deferred.succeed(open, undefined)
      }
      expect(waves).toEqual([1000, 2000, 2500])
      expect(yield* Fiber.join(fiber)).toMatchObject({ _tag: "Ok" })
      expect(yield* inner.size).toBe(2500)
    }))

  it.effect("by default items go one at a time, in input order", () =>
    Effect.gen(function*() {
      const rec = yield* recording(yield* agents())
      const batch = yield* Batch.make(rec.store)
      yield* batch.register(["c", "a", "b"].map((k) => [k, agent()] as const))
      expect((yield* Ref.get(rec.calls)).map((c) => c.key)).toEqual(["c", "a", "b"])
      expect(yield* Ref.get(rec.peak)).toBe(1)
    }))

  it.effect("stop: stops at the first failure, keeps what was applied, lists the failing key and the skipped ones", () =>
    Effect.gen(function*() {
      const store = yield* agents([["b", agent("old")]])
      const batch = yield* Batch.make(store, { chunkSize: 2 })
      const result = yield* batch.register([["a", agent()], ["b", agent()], ["c", agent()], ["d", agent()]], { onError: "stop" })
      if (result._tag !== "Partial") return expect.fail(`expected Partial, got ${result._tag}`)
      expect(result.keys).toEqual(["a"])
      expect(result.failures.map((f) => [f.key, f.index])).toEqual([["b", 1]])
      expect(result.failures[0]!.error).toBeInstanceOf(AlreadyExistsError)
      expect(result.skipped).toEqual(["c", "d"])
      expect(yield* store.entries).toEqual([["a", agent()], ["b", agent("old")]])
    }))

  it.effect("stop with no success is Failed (nothing applied)", () =>
    Effect.gen(function*() {
      const store = yield* agents([["a", agent("old")]])
      const batch = yield* Batch.make(store)
      const result = yield* batch.register([["a", agent()], ["b", agent()]])
      expect(result).toEqual(Batch.BatchResult.Failed({
        failures: [{ key: "a", index: 0, error: expect.any(AlreadyExistsError) }],
        rolledBack: [],
        rollbackFailures: [],
        skipped: ["b"]
      }))
      expect(yield* store.entries).toEqual([["a", agent("old")]])
    }))

  it.effect("continue: applies everything possible; Partial lists every failing key", () =>
    Effect.gen(function*() {
      const store = yield* agents([["b", agent("old")], ["d", agent("old")]])
      const batch = yield* Batch.make(store, { chunkSize: 2 })
      const result = yield* batch.register(
        [["a", agent()], ["b", agent()], ["c", agent()], ["d", agent()], ["e", agent()]],
        { onError: "continue" }
      )
      if (result._tag !== "Partial") return expect.fail(`expected Partial, got ${result._tag}`)
      expect(result.keys).toEqual(["a", "c", "e"])
      expect(result.failures.map((f) => f.key)).toEqual(["b", "d"])
      expect(result.skipped).toEqual([])
      expect((yield* store.entries).map(([k]) => k)).toEqual(["a", "b", "c", "d", "e"])
      expect(yield* store.get("b")).toEqual(Option.some(agent("old")))
    }))

  it.effect("rollback: undoes everything applied, including the failing chunk's successes; the store is exactly as before", () =>
    Effect.gen(function*() {
      const base = yield* agents([["b", agent("old")], ["z", agent("keep")]])
      const before = yield* base.entries
      const rec = yield* recording(base, "1 second")
      const batch = yield* Batch.make(rec.store, { chunkSize: 3, concurrency: 3 })
      // chunk 1: a1 a2 a3 (applied); chunk 2: a4 b a5 run together: b fails, a4 and a5 are applied
      const fiber = yield* Effect.fork(batch.register(
        ["a1", "a2", "a3", "a4", "b", "a5", "a6"].map((k) => [k, agent()] as const),
        { onError: "rollback" }
      ))
      yield* settle
      yield* TestClock.adjust("2 seconds")
      yield* settle
      expect((yield* base.entries).map(([k]) => k)).toEqual(["a1", "a2", "a3", "a4", "a5", "b", "z"])
      yield* TestClock.adjust("10 seconds") // the undos (each 1 s here)
      const result = yield* Fiber.join(fiber)
      if (result._tag !== "Failed") return expect.fail(`expected Failed, got ${result._tag}`)
      expect(result.rolledBack).toEqual(["a1", "a2", "a3", "a4", "a5"])
      expect(result.failures.map((f) => f.key)).toEqual(["b"])
      expect(result.rollbackFailures).toEqual([])
      expect(result.skipped).toEqual(["a6"])
      expect(yield* base.entries).toEqual(before)
      // undone newest first
      expect((yield* Ref.get(rec.calls)).filter((c) => c.op === "remove").map((c) => c.key).slice(0, 3)).toEqual(
        expect.arrayContaining(["a4", "a5"])
      )
    }))

  it.effect("rollback with items one at a time: the failing chunk's earlier items are undone too", () =>
    Effect.gen(function*() {
      const store = yield* agents([["b", agent("old")]])
      const before = yield* store.entries
      const batch = yield* Batch.make(store, { chunkSize: 3 })
      const result = yield* batch.register(["a1", "a2", "a3", "a4", "b", "a5"].map((k) => [k, agent()] as const), {
        onError: "rollback"
      })
      expect(result).toMatchObject({ _tag: "Failed", rolledBack: ["a1", "a2", "a3", "a4"], skipped: ["a5"] })
      expect(yield* store.entries).toEqual(before)
    }))

  it.effect("rollback of updates restores the previous values; of unregisters, the removed entries", () =>
    Effect.gen(function*() {
      const initial = Array.from({ length: 6 }, (_, i) => [key(i), agent()] as const)
      const store = yield* agents(initial)
      const batch = yield* Batch.make(store, { chunkSize: 4, onError: "rollback" })
      const updated = yield* batch.update([
        [key(0), { health: "degraded" }],
        [key(1), { health: "degraded" }],
        [key(4), { health: "degraded" }],
        ["missing", { health: "degraded" }],
        [key(5), { health: "degraded" }]
      ])
      if (updated._tag !== "Failed") return expect.fail(`expected Failed, got ${updated._tag}`)
      expect(updated.failures[0]!.error).toBeInstanceOf(NotFoundError)
      expect(updated.failures[0]).toMatchObject({ key: "missing", index: 3 })
      expect(updated.rolledBack).toEqual([key(0), key(1), key(4)])
      expect(yield* store.entries).toEqual(initial)
      const removed = yield* batch.unregister([key(2), key(3), "ghost", key(5)])
      expect(removed._tag).toBe("Failed")
      expect(yield* store.entries).toEqual(initial)
    }))

  it.effect("update patches and reports its failures (the original dropped them)", () =>
    Effect.gen(function*() {
      const store = yield* agents([["a", agent()], ["b", agent()]])
      const batch = yield* Batch.make(store, { onError: "continue" })
      const result = yield* batch.update([["a", { health: "degraded" }], ["x", { health: "degraded" }], ["b", { capability: "ml" }]])
      expect(result).toEqual(Batch.BatchResult.Partial({
        keys: ["a", "b"],
        failures: [{ key: "x", index: 1, error: expect.any(NotFoundError) }],
        skipped: []
      }))
      expect(yield* store.entries).toEqual([
        ["a", { capability: "data", health: "degraded" }],
        ["b", { capability: "ml", health: "healthy" }]
      ])
    }))

  it.effect("unregister: removes the keys; ignoreMissing counts unknown keys as removed", () =>
    Effect.gen(function*() {
      const store = yield* agents(Array.from({ length: 10 }, (_, i) => [key(i), agent()] as const))
      const batch = yield* Batch.make(store)
      const keys = [...Array.from({ length: 10 }, (_, i) => key(i)), "unknown1", "unknown2"]
      const strict = yield* batch.unregister(keys.slice(0, 5).concat(["unknown1"]), { onError: "continue" })
      expect(strict._tag).toBe("Partial")
      const lenient = yield* batch.unregister(keys, { ignoreMissing: true })
      expect(lenient).toEqual(Batch.BatchResult.Ok({ keys }))
      expect(yield* store.size).toBe(0)
    }))

  it.effect("rollback: an interrupted batch undoes what it applied", () =>
    Effect.gen(function*() {
      const base = yield* agents([["z", agent()]])
      const rec = yield* recording(base, "1 second")
      const batch = yield* Batch.make(rec.store, { chunkSize: 2 })
      const fiber = yield* Effect.fork(batch.register(["a", "b", "c", "d"].map((k) => [k, agent()] as const), { onError: "rollback" }))
      yield* settle
      yield* TestClock.adjust("2500 millis") // a and b applied, c in flight
      expect((yield* base.entries).map(([k]) => k)).toEqual(["a", "b", "z"])
      // the store call in flight completes (and is recorded) before the interruption takes effect
      const interrupting = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* settle
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(interrupting)
      expect((yield* base.entries).map(([k]) => k)).toEqual(["z"])
    }))
})

describe("Batch.query", () => {
  it.effect("pages through the store with its cursor: every entry once, pages of 100 by default", () =>
    Effect.gen(function*() {
      const rec = yield* recording(yield* agents(Array.from({ length: 250 }, (_, i) => [key(i), agent(i % 2 === 0 ? "even" : "odd")] as const)))
      const batch = yield* Batch.make(rec.store)
      const all = yield* Stream.runCollect(batch.query())
      expect(Chunk.toReadonlyArray(all).map(([k]) => k)).toEqual(Array.from({ length: 250 }, (_, i) => key(i)))
      expect(yield* Ref.get(rec.scans)).toBe(3)
      const evens = yield* Stream.runCollect(batch.query((a) => a.capability === "even", { pageSize: 7 }))
      expect(Chunk.toReadonlyArray(evens).map(([k]) => k)).toEqual(Array.from({ length: 125 }, (_, i) => key(i * 2)))
      const firstTen = yield* Stream.runCollect(Stream.take(batch.query(undefined, { pageSize: 5 }), 10))
      expect(Chunk.size(firstTen)).toBe(10)
    }))

  it.effect("inserts and removals during paging never repeat or skip the entries present throughout", () =>
    Effect.gen(function*() {
      // k0000, k0010, ..., k0990: 100 entries, gaps to insert into
      const initial = Array.from({ length: 100 }, (_, i) => [key(i * 10), agent()] as const)
      const store = yield* agents(initial)
      const batch = yield* Batch.make(store, { pageSize: 10 })
      const removed = new Set<string>()
      const insertedAhead = new Set<string>()
      const seen = yield* batch.query().pipe(
        Stream.tap(([k]) =>
          Effect.gen(function*() {
            const n = Number(k.slice(1))
            // behind the cursor: insert (must not appear) and remove an entry already seen
            if (n >= 10) yield* Effect.exit(store.insert(key(n - 5), agent("behind")))
            if (n >= 20) yield* Effect.exit(store.remove(key(n - 20)))
            // ahead of the cursor (a page of 10 spans at most 90 keys): insert one (appears
            // once), remove one not yet seen (never appears)
            if (n % 100 === 0 && n + 105 < 1000) {
              yield* store.insert(key(n + 105), agent("ahead"))
              insertedAhead.add(key(n + 105))
            }
            if (n % 100 === 0 && n + 150 < 1000) {
              yield* store.remove(key(n + 150))
              removed.add(key(n + 150))
            }
          })
        ),
        Stream.map(([k]) => k),
        Stream.runCollect
      )
      const keys = Chunk.toReadonlyArray(seen)
      expect(new Set(keys).size).toBe(keys.length) // nothing twice
      const presentThroughout = initial.map(([k]) => k).filter((k) => !removed.has(k))
      for (const k of presentThroughout) expect(keys).toContain(k)
      for (const k of removed) expect(keys).not.toContain(k)
      for (const k of insertedAhead) expect(keys).toContain(k)
      expect(keys.filter((k) => !presentThroughout.includes(k) && !insertedAhead.has(k))).toEqual([])
      expect(keys).toEqual([...keys].sort())
    }))
})

describe("Batch.parallelMap", () => {
  it.effect("runs at most `concurrency` items at once and returns an Exit per item, in input order", () =>
    Effect.gen(function*() {
      const live = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const work = (n: number) =>
        Effect.acquireUseRelease(
          Ref.updateAndGet(live, (x) => x + 1).pipe(Effect.tap((x) => Ref.update(peak, (p) => Math.max(p, x)))),
          () => n === 3 ? Effect.fail(`bad ${n}`) : Effect.as(Effect.sleep("1 second"), n * 10),
          () => Ref.update(live, (x) => x - 1)
        )
      const fiber = yield* Effect.fork(Batch.parallelMap([1, 2, 3, 4, 5, 6, 7], work, { concurrency: 3 }))
      yield* settle
      yield* TestClock.adjust("3 seconds")
      const exits = yield* Fiber.join(fiber)
      expect(exits.map((e) => Exit.isSuccess(e) ? e.value : failureOf(e))).toEqual([10, 20, "bad 3", 40, 50, 60, 70])
      expect(yield* Ref.get(peak)).toBe(3)
    }))

  it.effect("defaults to one item per core", () =>
    Effect.gen(function*() {
      const cores = os.availableParallelism()
      const live = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const fiber = yield* Effect.fork(Batch.parallelMap(Array.from({ length: cores + 3 }), () =>
        Effect.acquireUseRelease(
          Ref.updateAndGet(live, (x) => x + 1).pipe(Effect.tap((x) => Ref.update(peak, (p) => Math.max(p, x)))),
          () => Effect.sleep("1 second"),
          () => Ref.update(live, (x) => x - 1)
        )))
      yield* settle
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(peak)).toBe(cores)
    }))

  it.effect("a late item is interrupted at exactly its time limit (5 s by default) and the others are kept", () =>
    Effect.gen(function*() {
      const interrupted = yield* Ref.make(0)
      const fiber = yield* Effect.fork(Batch.parallelMap(["fast", "stuck", "slowish"], (name) =>
        name === "stuck"
          ? Effect.onInterrupt(Effect.never, () => Ref.update(interrupted, (n) => n + 1))
          : Effect.as(Effect.sleep(name === "fast" ? "1 second" : "4999 millis"), name), { concurrency: 3 }))
      yield* settle
      yield* TestClock.adjust("4999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const exits = yield* Fiber.join(fiber)
      expect(exits[0]).toEqual(Exit.succeed("fast"))
      expect(failureOf(exits[1]!)).toBeInstanceOf(TimeoutError)
      expect(Duration.toMillis((failureOf(exits[1]!) as TimeoutError).timeout)).toBe(5000)
      expect(exits[2]).toEqual(Exit.succeed("slowish"))
      expect(yield* Ref.get(interrupted)).toBe(1)
      const custom = yield* Effect.fork(Batch.parallelMap([1], () => Effect.never, { timeoutPerItem: "200 millis" }))
      yield* settle
      yield* TestClock.adjust("200 millis")
      expect(failureOf((yield* Fiber.join(custom))[0]!)).toBeInstanceOf(TimeoutError)
    }))

  it.effect("interrupting it interrupts every item", () =>
    Effect.gen(function*() {
      const stopped = yield* Ref.make(0)
      const fiber = yield* Effect.fork(Batch.parallelMap([1, 2, 3], () =>
        Effect.onInterrupt(Effect.never, () => Ref.update(stopped, (n) => n + 1)), { concurrency: 3 }))
      yield* settle
      yield* Fiber.interrupt(fiber)
      expect(yield* Ref.get(stopped)).toBe(3)
    }))
})

describe("Batch validation and telemetry", () => {
  it.effect("rejects bad options naming the field, before touching the store", () =>
    Effect.gen(function*() {
      const store = yield* agents([["a", agent()]])
      const cases: ReadonlyArray<[Batch.Options, string]> = [
        [{ chunkSize: 0 }, "batch.chunkSize"],
        [{ chunkSize: 2.5 }, "batch.chunkSize"],
        [{ concurrency: 0 }, "batch.concurrency"],
        [{ onError: "explode" as Batch.OnError }, "batch.onError"],
        [{ pageSize: -1 }, "batch.pageSize"]
      ]
      for (const [options, field] of cases) {
        expect((yield* Effect.flip(Batch.make(store, options))).field).toBe(field)
      }
      const batch = yield* Batch.make(store)
      const before = yield* store.entries
      const bad = yield* Effect.flip(batch.register([["b", agent()]], { chunkSize: -1 }))
      expect(bad).toBeInstanceOf(ValidationError)
      expect(bad.field).toBe("batch.register.chunkSize")
      expect((yield* Effect.flip(batch.update([["a", {}]], { concurrency: 0 }))).field).toBe("batch.update.concurrency")
      expect((yield* Effect.flip(batch.unregister(["a"], { onError: "nope" as Batch.OnError }))).field).toBe(
        "batch.unregister.onError"
      )
      expect(yield* store.entries).toEqual(before)
      const query = yield* Effect.flip(Stream.runCollect(batch.query(undefined, { pageSize: 0 })))
      expect(query).toMatchObject({ _tag: "ValidationError", field: "batch.query.pageSize" })
      expect((yield* Effect.flip(Batch.parallelMap([1], Effect.succeed, { concurrency: 0 }))).field).toBe(
        "batch.parallelMap.concurrency"
      )
      expect((yield* Effect.flip(Batch.parallelMap([1], Effect.succeed, { timeoutPerItem: 0 }))).field).toBe(
        "batch.parallelMap.timeoutPerItem"
      )
      expect((yield* Effect.flip(agents([["a", agent()], ["a", agent()]]))).field).toBe("memoryStore.initial")
    }))

  it.effect("emits the original's events with counts", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.EventBus
      const seen = yield* Effect.scoped(Effect.gen(function*() {
        const sub = yield* bus.subscribe("foundation.batch_operations.*", { capacity: 100 })
        const store = yield* agents([["b", agent()]])
        const batch = yield* Batch.make(store, { chunkSize: 2 })
        yield* batch.register([["a", agent()], ["b", agent()], ["c", agent()]], { onError: "continue" })
        yield* batch.update([["a", { health: "degraded" }]])
        yield* batch.unregister(["a", "c"], { onError: "rollback" })
        yield* Stream.runDrain(batch.query(undefined, { pageSize: 2 }))
        const out: Array<{ name: string; measurements: Record<string, number>; metadata: Record<string, unknown> }> = []
        for (;;) {
          const next = yield* sub.poll
          if (Option.isNone(next)) return out
          const data = next.value.data as { measurements: Record<string, number>; metadata: Record<string, unknown> }
          out.push({ name: next.value.type, ...data })
        }
      }))
      expect(seen.map((e) => e.name)).toEqual([
        Batch.events.batchRegister,
        Batch.events.batchUpdate,
        Batch.events.batchUnregister,
        Batch.events.query
      ])
      expect(seen[0]!.measurements).toMatchObject({
        count: 3,
        success_count: 2,
        error_count: 1,
        rolled_back_count: 0,
        skipped_count: 0,
        chunk_count: 2
      })
      expect(seen[0]!.metadata).toEqual({ operation: "register", store: "agents", on_error: "continue", outcome: "partial" })
      expect(seen[2]!.measurements).toMatchObject({ count: 2, success_count: 2, error_count: 0 })
      expect(seen[3]!.measurements).toMatchObject({ result_count: 1, page_count: 1 })
      expect(seen[3]!.metadata).toEqual({ store: "agents", filtered: false, complete: true })
    }).pipe(Effect.provide(Telemetry.layerWithBus())))
})

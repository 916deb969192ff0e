import { describe, expect, it } from "@effect/vitest"
import { Data, Deferred, Duration, Effect, Exit, Fiber, Layer, Metric, Option, Ref, type Scope, TestClock } from "effect"
import { AlreadyExistsError, NotFoundError, ValidationError } from "../../src/errors/FoundationError.js"
import * as Cache from "../../src/infra/Cache.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as Telemetry from "../../src/observability/Telemetry.js"

// The TestClock starts at 0 in every test.

/** Yields until `cond` holds (at most 1000 times). */
const waitUntil = (cond: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000; i++) {
      if (yield* cond) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage("condition never held")
  })

const fieldOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.flip(effect), (e) => {
    expect(e).toBeInstanceOf(ValidationError)
    return (e as ValidationError).field
  })

/** The state of a metric with the given name and tags. */
const metric = (name: string, tags: Record<string, string>) =>
  Effect.map(Metric.snapshot, (pairs) =>
    pairs.find((p) =>
      p.metricKey.name === name &&
      Object.entries(tags).every(([k, v]) => p.metricKey.tags.some((t) => t.key === k && t.value === v))
    )?.metricState as { readonly count?: number; readonly value?: number } | undefined)

interface Seen {
  readonly name: string
  readonly measurements: Record<string, number>
  readonly metadata: Record<string, unknown>
}

/** Runs `act` with telemetry on, and returns the foundation.cache.* events it emitted. */
const eventsOf = <A, E>(act: Effect.Effect<A, E, Scope.Scope>) =>
  Effect.scoped(Effect.gen(function*() {
    const bus = yield* EventBus.EventBus
    const sub = yield* bus.subscribe("foundation.cache.*", { capacity: 1000 })
    const exit = yield* Effect.exit(act)
    expect(Exit.isSuccess(exit)).toBe(true)
    const out: Array<Seen> = []
    for (;;) {
      const next = yield* sub.poll
      if (Option.isNone(next)) return out
      const data = next.value.data as { measurements: Record<string, number>; metadata: Record<string, unknown> }
      out.push({ name: next.value.type, measurements: data.measurements, metadata: data.metadata })
    }
  })).pipe(Effect.provide(Telemetry.layerWithBus()))

describe("Cache", () => {
  describe("get / put / delete / clear", () => {
    it.scoped("stores, reads, deletes and clears typed values", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, { readonly n: number }>()
        expect(yield* cache.get("a")).toEqual(Option.none())
        yield* cache.put("a", { n: 1 })
        yield* cache.put("b", { n: 2 })
        expect(yield* cache.get("a")).toEqual(Option.some({ n: 1 }))
        yield* cache.put("a", { n: 3 })
        expect(yield* cache.get("a")).toEqual(Option.some({ n: 3 }))
        expect(yield* cache.delete("a")).toBe(true)
        expect(yield* cache.delete("a")).toBe(false)
        expect(yield* cache.get("a")).toEqual(Option.none())
        yield* cache.put("c", { n: 4 })
        expect(yield* cache.clear).toBe(2)
        expect(yield* cache.size).toBe(0)
        expect(yield* cache.get("b")).toEqual(Option.none())
        expect(cache.config).toMatchObject({ maxSize: 100_000, eviction: "lru", telemetry: "housekeeping" })
        expect(Duration.toMillis(cache.config.cleanupInterval)).toBe(60_000)
        expect(Duration.isFinite(cache.config.ttl)).toBe(false)
      }))

    it.scoped("number and string keys are distinct; 0 is a valid key", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<Cache.Key, string>()
        yield* cache.put(1, "number")
        yield* cache.put("1", "string")
        yield* cache.put(0, "zero")
        expect(yield* cache.get(1)).toEqual(Option.some("number"))
        expect(yield* cache.get("1")).toEqual(Option.some("string"))
        expect(yield* cache.get(0)).toEqual(Option.some("zero"))
      }))

    it.scoped("other key types go through keyOf: equal ids are one entry, keys are returned as given", () =>
      Effect.gen(function*() {
        interface UserId {
          readonly tenant: string
          readonly id: number
        }
        const cache = yield* Cache.make<UserId, string>({ keyOf: (k) => `${k.tenant}/${k.id}` })
        yield* cache.put({ tenant: "t", id: 1 }, "ada")
        expect(yield* cache.get({ tenant: "t", id: 1 })).toEqual(Option.some("ada")) // another object, same id
        expect(yield* cache.get({ tenant: "u", id: 1 })).toEqual(Option.none())
        expect(yield* cache.keys).toEqual([{ tenant: "t", id: 1 }])
      }))
  })

  describe("TTL", () => {
    it.scoped("an entry is returned 1 ms before its expiry and not at or after it", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, number>()
        yield* TestClock.adjust(5_000)
        yield* cache.put("a", 1, "100 millis")
        yield* cache.put("b", 2, 100)
        yield* cache.put("c", 3, 100)
        yield* TestClock.adjust(99)
        expect(yield* cache.get("a")).toEqual(Option.some(1))
        yield* TestClock.adjust(1)
        expect(yield* cache.get("a")).toEqual(Option.none()) // exactly at expiry: gone
        expect(yield* cache.get("b")).toEqual(Option.none())
        yield* TestClock.adjust(1)
        expect(yield* cache.get("c")).toEqual(Option.none()) // 1 ms after
      }))

    it.scoped("an expired entry found by a read is deleted and counted as an expired miss", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, number>({ cleanupInterval: Duration.infinity })
        yield* cache.put("a", 1, "1 second")
        yield* cache.put("keep", 2)
        yield* TestClock.adjust("1 second")
        expect(yield* cache.size).toBe(2) // no sweep: still held
        expect(yield* cache.get("a")).toEqual(Option.none())
        expect(yield* cache.size).toBe(1) // deleted by the read
        expect(yield* cache.get("a")).toEqual(Option.none()) // now simply absent
        expect(yield* cache.stats).toMatchObject({ hits: 0, misses: 2, expiredMisses: 1, absentMisses: 1, expirations: 1 })
      }))

    it.scoped("the cache's ttl applies to puts without one; Duration.infinity means no expiry", () =>
      Effect.gen(function*() {
        // (no sweep: ten years of TestClock would run five million sweeps)
        const cache = yield* Cache.make<string, number>({ ttl: "10 seconds", cleanupInterval: Duration.infinity })
        yield* cache.put("default", 1)
        yield* cache.put("forever", 2, Duration.infinity)
        yield* cache.put("short", 3, "1 second")
        yield* TestClock.adjust("9999 millis")
        expect(yield* cache.get("default")).toEqual(Option.some(1))
        expect(yield* cache.get("short")).toEqual(Option.none())
        yield* TestClock.adjust("1 milli")
        expect(yield* cache.get("default")).toEqual(Option.none())
        yield* TestClock.adjust("3650 days")
        expect(yield* cache.get("forever")).toEqual(Option.some(2))
      }))

    it.scoped("a put renews the TTL; an update without TTL takes the default (no expiry)", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, number>({ cleanupInterval: Duration.infinity })
        yield* cache.put("a", 1, "1 second")
        yield* TestClock.adjust("900 millis")
        yield* cache.put("a", 2, "1 second")
        yield* TestClock.adjust("900 millis")
        expect(yield* cache.get("a")).toEqual(Option.some(2))
        yield* cache.put("a", 3)
        yield* TestClock.adjust("1 day")
        expect(yield* cache.get("a")).toEqual(Option.some(3))
      }))

    it.scoped("the sweep fiber removes expired entries every cleanupInterval, without reads", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, number>({ name: "sweep", cleanupInterval: "1 minute" })
        yield* cache.put("a", 1, "10 seconds")
        yield* cache.put("b", 2, "90 seconds")
        yield* cache.put("c", 3)
        yield* TestClock.adjust("59999 millis")
        expect(yield* cache.size).toBe(3)
        yield* TestClock.adjust("1 milli")
        expect(yield* cache.size).toBe(2)
        yield* TestClock.adjust("1 minute")
        expect(yield* cache.size).toBe(1)
        expect(yield* cache.stats).toMatchObject({ expirations: 2, hits: 0, misses: 0 })
        expect(yield* cache.cleanup).toBe(0)
      }))

    it.scoped("cleanupInterval: Duration.infinity disables the sweep (cleanup still works on demand)", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, number>({ cleanupInterval: Duration.infinity })
        yield* cache.put("a", 1, "1 second")
        yield* TestClock.adjust("1 hour")
        expect(yield* cache.size).toBe(1)
        expect(yield* cache.cleanup).toBe(1)
        expect(yield* cache.size).toBe(0)
      }))

    it.scoped("a sweep over more entries than one slice removes all the expired ones", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<number, number>({ cleanupInterval: Duration.infinity })
        for (let i = 0; i < 25_000; i++) yield* cache.put(i, i, i % 2 === 0 ? 1_000 : 5_000)
        yield* TestClock.adjust("1 second")
        expect(yield* cache.cleanup).toBe(12_500)
        expect(yield* cache.size).toBe(12_500)
        expect(yield* cache.get(1)).toEqual(Option.some(1))
      }))
  })

  describe("size cap and eviction", () => {
    it.scoped("LRU evicts the least recently read entry, one per new key", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, number>({ maxSize: 3 })
        yield* cache.put("a", 1)
        yield* cache.put("b", 2)
        yield* cache.put("c", 3)
        yield* cache.get("a") // order now b, c, a
        expect(yield* cache.keys).toEqual(["b", "c", "a"])
        yield* cache.put("d", 4) // evicts b
        expect(yield* cache.keys).toEqual(["c", "a", "d"])
        yield* cache.get("c") // a, d, c
        yield* cache.put("e", 5) // evicts a
        expect(yield* cache.keys).toEqual(["d", "c", "e"])
        expect(yield* cache.get("a")).toEqual(Option.none())
        expect(yield* cache.get("b")).toEqual(Option.none())
        expect(yield* cache.stats).toMatchObject({ size: 3, evictions: 2 })
      }))

    it.scoped("FIFO evicts the oldest insertion; reads and updates do not move entries", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, number>({ maxSize: 3, eviction: "fifo" })
        yield* cache.put("a", 1)
        yield* cache.put("b", 2)
        yield* cache.put("c", 3)
        yield* cache.get("a")
        yield* cache.put("b", 20)
        expect(yield* cache.keys).toEqual(["a", "b", "c"])
        yield* cache.put("d", 4) // evicts a despite the read
        yield* cache.put("e", 5) // evicts b despite the update
        expect(yield* cache.keys).toEqual(["c", "d", "e"])
        expect(yield* cache.stats).toMatchObject({ evictions: 2 })
      }))

    it.scoped("the original's case: max 2, key1 key2 key3 → key1 evicted", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, string>({ maxSize: 2, eviction: "fifo" })
        yield* cache.put("key1", "v1")
        yield* cache.put("key2", "v2")
        yield* cache.put("key3", "v3")
        expect(yield* cache.get("key1")).toEqual(Option.none())
        expect(yield* cache.get("key2")).toEqual(Option.some("v2"))
        expect(yield* cache.get("key3")).toEqual(Option.some("v3"))
      }))

    it.scoped("updating an existing key never evicts", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, number>({ maxSize: 2 })
        yield* cache.put("a", 1)
        yield* cache.put("b", 2)
        for (let i = 0; i < 10; i++) yield* cache.put(i % 2 === 0 ? "a" : "b", i)
        expect(yield* cache.stats).toMatchObject({ size: 2, evictions: 0 })
        expect(yield* cache.get("a")).toEqual(Option.some(8))
        expect(yield* cache.get("b")).toEqual(Option.some(9))
      }))

    it.scoped("an expired victim counts as an expiration, not an eviction", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, number>({ maxSize: 2, cleanupInterval: Duration.infinity })
        yield* cache.put("old", 1, "1 second")
        yield* cache.put("b", 2)
        yield* TestClock.adjust("1 second")
        yield* cache.put("c", 3)
        expect(yield* cache.keys).toEqual(["b", "c"])
        expect(yield* cache.stats).toMatchObject({ evictions: 0, expirations: 1 })
      }))

    it.scoped("the size never exceeds maxSize (20 puts into 10)", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<number, string>({ maxSize: 10 })
        for (let i = 0; i < 20; i++) yield* cache.put(i, "x".repeat(1000))
        expect(yield* cache.size).toBe(10)
        const present = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) => cache.get(i))
        expect(present.filter(Option.isSome).length).toBe(10)
        expect((yield* cache.stats).evictions).toBe(10)
      }))
  })

  describe("getOrCompute", () => {
    it.scoped("runs one computation for 100 concurrent misses; the others wait for it", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, number>()
        const runs = yield* Ref.make(0)
        const compute = Effect.zipRight(Ref.updateAndGet(runs, (n) => n + 1), Effect.as(Effect.sleep("1 second"), 42))
        const fibers = yield* Effect.forEach(
          Array.from({ length: 100 }),
          () => Effect.fork(cache.getOrCompute("k", compute))
        )
        yield* waitUntil(Effect.map(cache.stats, (s) => s.misses === 100))
        yield* TestClock.adjust("1 second")
        const values = yield* Effect.forEach(fibers, Fiber.join)
        expect(values.every((v) => v === 42)).toBe(true)
        expect(yield* Ref.get(runs)).toBe(1)
        expect(yield* cache.getOrCompute("k", compute)).toBe(42) // now a hit
        expect(yield* Ref.get(runs)).toBe(1)
        expect(yield* cache.stats).toMatchObject({ computations: 1, coalesced: 99, misses: 100, hits: 1, size: 1 })
      }))

    it.scoped("stores the value with the given TTL", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, number>()
        expect(yield* cache.getOrCompute("k", Effect.succeed(1), "1 second")).toBe(1)
        yield* TestClock.adjust("999 millis")
        expect(yield* cache.getOrCompute("k", Effect.succeed(2), "1 second")).toBe(1)
        yield* TestClock.adjust("1 milli")
        expect(yield* cache.getOrCompute("k", Effect.succeed(3), "1 second")).toBe(3)
        expect(yield* cache.stats).toMatchObject({ computations: 2, hits: 1, absentMisses: 1, expiredMisses: 1 })
      }))

    it.scoped("a failure goes to every waiter and is not cached", () =>
      Effect.gen(function*() {
        class LoadError extends Data.TaggedError("LoadError")<{ readonly attempt: number }> {}
        const cache = yield* Cache.make<string, number, LoadError>()
        const runs = yield* Ref.make(0)
        const failing = Effect.flatMap(
          Ref.updateAndGet(runs, (n) => n + 1),
          (attempt) => Effect.zipRight(Effect.sleep("1 second"), Effect.fail(new LoadError({ attempt })))
        )
        const fibers = yield* Effect.forEach(Array.from({ length: 10 }), () => Effect.fork(cache.getOrCompute("k", failing)))
        yield* waitUntil(Effect.map(cache.stats, (s) => s.misses === 10))
        yield* TestClock.adjust("1 second")
        const errors = yield* Effect.forEach(fibers, (f) => Effect.flip(Fiber.join(f)))
        expect(errors.every((e) => e instanceof LoadError && e.attempt === 1)).toBe(true)
        expect(errors.every((e) => e === errors[0])).toBe(true) // the very same failure
        expect(yield* Ref.get(runs)).toBe(1)
        expect(yield* cache.get("k")).toEqual(Option.none())
        // not cached: the next call computes again, at the same instant
        expect(yield* cache.getOrCompute("k", Effect.succeed(7))).toBe(7)
        expect(yield* cache.stats).toMatchObject({ computations: 2, size: 1 })
      }))

    it.scoped("a defect goes to every waiter too", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, number>()
        const dying = Effect.zipRight(Effect.sleep("1 second"), Effect.dieMessage("boom"))
        const fibers = yield* Effect.forEach(Array.from({ length: 3 }), () => Effect.fork(cache.getOrCompute("k", dying)))
        yield* waitUntil(Effect.map(cache.stats, (s) => s.misses === 3))
        yield* TestClock.adjust("1 second")
        const exits = yield* Effect.forEach(fibers, Fiber.await)
        expect(exits.every((e) => Exit.isFailure(e) && e.cause._tag === "Die")).toBe(true)
        expect(yield* cache.size).toBe(0)
      }))

    it.scoped("interrupting the computing fiber does not poison the key: a waiter takes over", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, string>()
        const runs = yield* Ref.make<ReadonlyArray<string>>([])
        const compute = (who: string) =>
          Effect.zipRight(Ref.update(runs, (r) => [...r, who]), Effect.as(Effect.sleep("1 second"), who))
        const leader = yield* Effect.fork(cache.getOrCompute("k", compute("leader")))
        yield* waitUntil(Effect.map(Ref.get(runs), (r) => r.length === 1))
        const waiter = yield* Effect.fork(cache.getOrCompute("k", compute("waiter")))
        yield* waitUntil(Effect.map(cache.stats, (s) => s.coalesced === 1))
        yield* Fiber.interrupt(leader)
        yield* waitUntil(Effect.map(Ref.get(runs), (r) => r.length === 2))
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(waiter)).toBe("waiter") // not interrupted: it computed
        expect(yield* Ref.get(runs)).toEqual(["leader", "waiter"])
        expect(yield* cache.get("k")).toEqual(Option.some("waiter"))
      }))

    it.scoped("interrupting a lone computation leaves the key free for the next call", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, string>()
        const leader = yield* Effect.fork(cache.getOrCompute("k", Effect.never))
        yield* waitUntil(Effect.map(cache.stats, (s) => s.computations === 1))
        yield* Fiber.interrupt(leader)
        expect(yield* cache.getOrCompute("k", Effect.succeed("fresh"))).toBe("fresh")
        expect((yield* cache.stats).computations).toBe(2)
      }))

    it.scoped("an interrupted waiter does not disturb the computation", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, number>()
        const leader = yield* Effect.fork(cache.getOrCompute("k", Effect.as(Effect.sleep("1 second"), 1)))
        yield* waitUntil(Effect.map(cache.stats, (s) => s.computations === 1))
        const waiter = yield* Effect.fork(cache.getOrCompute("k", Effect.succeed(2)))
        yield* waitUntil(Effect.map(cache.stats, (s) => s.coalesced === 1))
        yield* Fiber.interrupt(waiter)
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(leader)).toBe(1)
        expect(yield* cache.get("k")).toEqual(Option.some(1))
        expect((yield* cache.stats).computations).toBe(1)
      }))

    it.scoped("a put during a computation supersedes it: its callers get its value, the put value stays", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, string>()
        const gate = yield* Deferred.make<void>()
        const slow = yield* Effect.fork(cache.getOrCompute("k", Effect.as(Deferred.await(gate), "computed")))
        yield* waitUntil(Effect.map(cache.stats, (s) => s.computations === 1))
        yield* cache.put("k", "put")
        yield* Deferred.succeed(gate, undefined)
        expect(yield* Fiber.join(slow)).toBe("computed")
        expect(yield* cache.get("k")).toEqual(Option.some("put"))
      }))

    it.scoped("different keys compute independently", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<number, number>()
        const values = yield* Effect.forEach(
          [1, 2, 3, 1, 2, 3],
          (k) => cache.getOrCompute(k, Effect.as(Effect.sleep("1 second"), k * 10)),
          { concurrency: "unbounded" }
        ).pipe(Effect.fork)
        yield* waitUntil(Effect.map(cache.stats, (s) => s.misses === 6))
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(values)).toEqual([10, 20, 30, 10, 20, 30])
        expect(yield* cache.stats).toMatchObject({ computations: 3, coalesced: 3 })
      }))
  })

  it.scoped("stats are exact", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.make<string, number>({ name: "exact", maxSize: 2, cleanupInterval: "1 minute" })
      yield* cache.get("x") // absent
      yield* cache.put("a", 1, "1 second")
      yield* cache.get("a") // hit
      yield* cache.get("a") // hit
      yield* TestClock.adjust("1 second")
      yield* cache.get("a") // expired (deleted)
      yield* cache.put("b", 2)
      yield* cache.put("c", 3)
      yield* cache.put("d", 4) // evicts b
      yield* cache.put("e", 5, "10 seconds") // evicts c
      yield* TestClock.adjust("59 seconds") // the sweep at 60 s removes e
      yield* cache.getOrCompute("d", Effect.succeed(0)) // hit
      yield* cache.getOrCompute("f", Effect.succeed(6)) // absent, computed
      expect(yield* cache.stats).toEqual({
        name: "exact",
        size: 2,
        maxSize: 2,
        hits: 3,
        misses: 3,
        absentMisses: 2,
        expiredMisses: 1,
        evictions: 2,
        expirations: 2,
        computations: 1,
        coalesced: 0
      })
    }))

  describe("validation", () => {
    it.effect("bad options fail make, naming the field", () =>
      Effect.gen(function*() {
        const bad = (options: Cache.Options<string>) => Effect.scoped(fieldOf(Cache.make<string, number>(options)))
        expect(yield* bad({ maxSize: 0 })).toBe("cache.maxSize")
        expect(yield* bad({ maxSize: -1 })).toBe("cache.maxSize")
        expect(yield* bad({ maxSize: 1.5 })).toBe("cache.maxSize")
        expect(yield* bad({ maxSize: Number.NaN })).toBe("cache.maxSize")
        expect(yield* bad({ maxSize: Infinity })).toBe("cache.maxSize")
        expect(yield* bad({ ttl: 0 })).toBe("cache.ttl")
        expect(yield* bad({ ttl: -5 })).toBe("cache.ttl")
        expect(yield* bad({ ttl: Number.NaN })).toBe("cache.ttl")
        expect(yield* bad({ ttl: Infinity })).toBe("cache.ttl")
        expect(yield* bad({ ttl: Duration.zero })).toBe("cache.ttl")
        expect(yield* bad({ cleanupInterval: 0 })).toBe("cache.cleanupInterval")
        expect(yield* bad({ cleanupInterval: Number.NaN })).toBe("cache.cleanupInterval")
        expect(yield* bad({ cleanupInterval: Infinity })).toBe("cache.cleanupInterval")
        expect(yield* bad({ cleanupInterval: "0 seconds" })).toBe("cache.cleanupInterval")
        expect(yield* bad({ eviction: "random" as Cache.Eviction })).toBe("cache.eviction")
        expect(yield* bad({ telemetry: "some" as Cache.TelemetryLevel })).toBe("cache.telemetry")
        expect(yield* bad({ name: "" })).toBe("cache.name")
        expect(yield* bad({ keyOf: "id" as unknown as Cache.KeyFunction<string> })).toBe("cache.keyOf")
      }))

    it.scoped("a bad TTL fails with ValidationError(ttl) and changes nothing", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, number>()
        yield* cache.put("a", 1)
        const badTtls: ReadonlyArray<Duration.DurationInput> = [0, -1, Number.NaN, Infinity, Duration.zero, "0 millis", [
          Infinity,
          0
        ]]
        for (const ttl of badTtls) {
          const error = yield* Effect.flip(cache.put("a", 2, ttl))
          expect(error.field).toBe("ttl")
          expect(yield* fieldOf(cache.put("new", 2, ttl))).toBe("ttl")
          expect(yield* fieldOf(cache.getOrCompute("new", Effect.succeed(2), ttl))).toBe("ttl")
        }
        expect((yield* Effect.flip(cache.put("a", 2, Infinity))).reason).toContain("Duration.infinity")
        expect(yield* cache.get("a")).toEqual(Option.some(1))
        expect(yield* cache.stats).toMatchObject({ size: 1, computations: 0 })
        yield* cache.put("a", 3, Duration.infinity) // allowed: no expiry
        expect(yield* cache.get("a")).toEqual(Option.some(3))
      }))

    it.scoped("a null, undefined or NaN key fails with ValidationError(key) and changes nothing", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<Cache.Key, number>()
        const badKeys = [undefined, null, Number.NaN, { id: 1 }] as unknown as ReadonlyArray<Cache.Key>
        for (const key of badKeys) {
          expect(yield* fieldOf(cache.get(key))).toBe("key")
          expect(yield* fieldOf(cache.put(key, 1))).toBe("key")
          expect(yield* fieldOf(cache.delete(key))).toBe("key")
          expect(yield* fieldOf(cache.getOrCompute(key, Effect.succeed(1)))).toBe("key")
        }
        expect((yield* Effect.flip(cache.put(null as unknown as string, 1))).reason).toBe("must not be null")
        expect(yield* cache.stats).toMatchObject({ size: 0, hits: 0, misses: 0, computations: 0 })
      }))

    it.scoped("a keyOf that throws is a defect, not a typed failure, and changes nothing", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<{ readonly id: string }, number>({
          keyOf: (k) => k.id.length > 3 ? k.id : JSON.parse("{")
        })
        const exit = yield* Effect.exit(cache.put({ id: "ab" }, 1))
        expect(Exit.isFailure(exit) && exit.cause._tag === "Die").toBe(true)
        expect(yield* cache.size).toBe(0)
      }))

    it.scoped("a keyOf returning a non-key fails with ValidationError(key)", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<{ readonly id?: string }, number>({ keyOf: (k) => k.id as string })
        const error = yield* Effect.flip(cache.put({}, 1))
        expect(error.field).toBe("key")
        expect(error.reason).toContain("keyOf")
        expect(yield* cache.size).toBe(0)
      }))
  })

  describe("named caches", () => {
    const Users = Cache.define<string, { readonly name: string }>("users", { maxSize: 2 })
    const Counts = Cache.define<string, number>("counts")

    it.effect("a Caches service holds independent caches by name", () =>
      Effect.gen(function*() {
        const caches = yield* Cache.Caches
        const users = yield* caches.cache(Users)
        const counts = yield* caches.cache(Counts)
        yield* users.put("a", { name: "Ada" })
        yield* counts.put("a", 1)
        expect(yield* users.get("a")).toEqual(Option.some({ name: "Ada" }))
        expect(yield* counts.get("a")).toEqual(Option.some(1))
        expect(yield* caches.cache(Users)).toBe(users) // same definition, same cache
        expect(users.config.maxSize).toBe(2)
        expect(counts.config.maxSize).toBe(500) // the service default
        expect(yield* caches.names).toEqual(["users", "counts"])
        const stats = yield* caches.stats
        expect(stats["users"]).toMatchObject({ size: 1, hits: 1 })
        expect(stats["counts"]).toMatchObject({ size: 1, hits: 1 })
        expect(yield* caches.clear("counts")).toBe(1)
        expect(yield* users.get("a")).toEqual(Option.some({ name: "Ada" }))
        expect(yield* Effect.flip(caches.clear("nope"))).toBeInstanceOf(NotFoundError)
        // another definition cannot take a held name
        const impostor = Cache.define<string, string>("users")
        expect(yield* Effect.flip(caches.cache(impostor))).toBeInstanceOf(AlreadyExistsError)
        expect(yield* caches.remove("users")).toBe(true)
        expect(yield* caches.remove("users")).toBe(false)
        // a fresh cache after removal
        expect(yield* (yield* caches.cache(Users)).get("a")).toEqual(Option.none())
      }).pipe(Effect.provide(Cache.layer({ maxSize: 500 }))))

    it.effect("two Caches services never share caches; bad options fail with ValidationError", () =>
      Effect.gen(function*() {
        const one = yield* Effect.provide(Cache.Caches, Cache.layer())
        const two = yield* Effect.provide(Cache.Caches, Cache.layer())
        const a = yield* one.cache(Counts)
        const b = yield* two.cache(Counts)
        yield* a.put("k", 1)
        expect(yield* b.get("k")).toEqual(Option.none())
        const bad = Cache.define<string, number>("bad", { maxSize: 0 })
        expect(yield* fieldOf(one.cache(bad))).toBe("cache.maxSize")
        expect(yield* one.names).toEqual(["counts"])
        expect(yield* fieldOf(Layer.build(Cache.layer({ ttl: -1 })).pipe(Effect.scoped))).toBe("cache.ttl")
      }))

    it.scoped("caches made with make and the same name are independent", () =>
      Effect.gen(function*() {
        const a = yield* Cache.make<string, number>({ name: "same" })
        const b = yield* Cache.make<string, number>({ name: "same" })
        yield* a.put("k", 1)
        expect(yield* b.get("k")).toEqual(Option.none())
      }))

    it.effect("concurrent first uses make one cache", () =>
      Effect.gen(function*() {
        const caches = yield* Cache.Caches
        const made = yield* Effect.forEach(Array.from({ length: 10 }), () => caches.cache(Counts), {
          concurrency: "unbounded"
        })
        expect(made.every((c) => c === made[0])).toBe(true)
      }).pipe(Effect.provide(Cache.layer())))
  })

  describe("metrics and telemetry", () => {
    it.scoped("metrics move: hits, misses by reason, evictions, expirations, size", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.make<string, number>({ name: "metered", maxSize: 2, cleanupInterval: Duration.infinity })
        const tags = { cache: "metered" }
        yield* cache.put("a", 1, "1 second")
        yield* cache.get("a")
        yield* cache.get("zz")
        yield* TestClock.adjust("1 second")
        yield* cache.get("a")
        yield* cache.put("b", 2)
        yield* cache.put("c", 3)
        yield* cache.put("d", 4)
        expect((yield* metric("foundation_cache_hits_total", tags))?.count).toBe(1)
        expect((yield* metric("foundation_cache_misses_total", { ...tags, reason: "absent" }))?.count).toBe(1)
        expect((yield* metric("foundation_cache_misses_total", { ...tags, reason: "expired" }))?.count).toBe(1)
        expect((yield* metric("foundation_cache_evictions_total", tags))?.count).toBe(1)
        expect((yield* metric("foundation_cache_expirations_total", tags))?.count).toBe(1)
        expect((yield* metric("foundation_cache_size", tags))?.value).toBe(2)
        yield* cache.clear
        expect((yield* metric("foundation_cache_size", tags))?.value).toBe(0)
      }))

    it.effect("by default only housekeeping events: started, evicted, cleared, cleanup", () =>
      Effect.gen(function*() {
        const events = yield* eventsOf(Effect.gen(function*() {
          const cache = yield* Cache.make<string, number>({ name: "quiet", maxSize: 1, cleanupInterval: "1 minute" })
          yield* cache.put("a", 1)
          yield* cache.get("a")
          yield* cache.get("x")
          yield* cache.put("b", 2, "1 second") // evicts a
          yield* cache.delete("zz")
          yield* TestClock.adjust("1 minute") // the sweep removes b
          yield* cache.put("c", 3)
          yield* cache.clear
        }))
        expect(events).toEqual([
          {
            name: Cache.events.started,
            measurements: { max_size: 1, cleanup_interval_ms: 60_000 },
            metadata: { cache: "quiet", eviction: "lru", telemetry: "housekeeping" }
          },
          {
            name: Cache.events.evicted,
            measurements: {},
            metadata: { cache: "quiet", key: "a", reason: "size_limit", policy: "lru" }
          },
          { name: Cache.events.cleanup, measurements: { expired_count: 1, duration: 0 }, metadata: { cache: "quiet" } },
          { name: Cache.events.cleared, measurements: { count: 1 }, metadata: { cache: "quiet" } }
        ])
      }))

    it.effect("telemetry: \"all\" adds hit, miss (with reason), put (with ttl) and delete (with existed)", () =>
      Effect.gen(function*() {
        const events = yield* eventsOf(Effect.gen(function*() {
          const cache = yield* Cache.make<string, number>({ name: "loud", telemetry: "all" })
          yield* cache.put("a", 1, "1 second")
          yield* cache.get("a")
          yield* cache.get("x")
          yield* TestClock.adjust("1 second")
          yield* cache.get("a")
          yield* cache.put("b", 2)
          yield* cache.delete("b")
        }))
        expect(events.slice(1).map((e) => [e.name, e.measurements, e.metadata])).toEqual([
          [Cache.events.put, { ttl_ms: 1000 }, { cache: "loud", key: "a" }],
          [Cache.events.hit, {}, { cache: "loud", key: "a" }],
          [Cache.events.miss, {}, { cache: "loud", key: "x", reason: "absent" }],
          [Cache.events.miss, {}, { cache: "loud", key: "a", reason: "expired" }],
          [Cache.events.put, {}, { cache: "loud", key: "b" }],
          [Cache.events.delete, {}, { cache: "loud", key: "b", existed: true }]
        ])
      }))

    it.effect("telemetry: \"none\" emits nothing", () =>
      Effect.gen(function*() {
        const events = yield* eventsOf(Effect.gen(function*() {
          const cache = yield* Cache.make<string, number>({ name: "mute", maxSize: 1, telemetry: "none" })
          yield* cache.put("a", 1)
          yield* cache.put("b", 1)
          yield* cache.clear
        }))
        expect(events).toEqual([])
      }))
  })

  describe("lookup (over Effect's Cache)", () => {
    it.effect("computes once for concurrent callers and then serves from the cache", () =>
      Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        const cache = yield* Cache.lookup({
          lookup: (key: string) => Effect.zipRight(Ref.update(runs, (n) => n + 1), Effect.as(Effect.sleep("1 second"), key.length))
        })
        const fiber = yield* Effect.fork(Effect.forEach(Array.from({ length: 100 }), () => cache.get("abc"), {
          concurrency: "unbounded"
        }))
        yield* waitUntil(Effect.map(cache.stats, (s) => s.hits + s.misses === 100))
        yield* TestClock.adjust("1 second")
        expect((yield* Fiber.join(fiber)).every((n) => n === 3)).toBe(true)
        expect(yield* cache.get("abc")).toBe(3)
        expect(yield* Ref.get(runs)).toBe(1)
      }))

    it.effect("a failure is not kept, even at the same instant", () =>
      Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        const cache = yield* Cache.lookup({
          lookup: (_: string) =>
            Effect.flatMap(Ref.updateAndGet(runs, (n) => n + 1), (n) => n === 1 ? Effect.fail("down" as const) : Effect.succeed(n))
        })
        expect(yield* Effect.flip(cache.get("k"))).toBe("down")
        expect(yield* cache.get("k")).toBe(2)
        expect(yield* cache.get("k")).toBe(2)
      }))

    it.effect("values expire after the ttl", () =>
      Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        const cache = yield* Cache.lookup({ ttl: "1 second", lookup: (_: string) => Ref.updateAndGet(runs, (n) => n + 1) })
        expect(yield* cache.get("k")).toBe(1)
        yield* TestClock.adjust("1 second")
        expect(yield* cache.get("k")).toBe(1) // Effect's Cache: valid up to and including its expiry instant
        yield* TestClock.adjust("1 milli")
        expect(yield* cache.get("k")).toBe(2)
      }))

    it.effect("a waiter whose computing fiber is interrupted computes instead of being interrupted", () =>
      Effect.gen(function*() {
        const started = yield* Ref.make(0)
        const cache = yield* Cache.lookup({
          lookup: (_: string) => Effect.zipRight(Ref.update(started, (n) => n + 1), Effect.as(Effect.sleep("1 second"), "v"))
        })
        const leader = yield* Effect.fork(cache.get("k"))
        yield* waitUntil(Effect.map(Ref.get(started), (n) => n === 1))
        const waiter = yield* Effect.fork(cache.get("k"))
        yield* waitUntil(Effect.map(cache.stats, (s) => s.hits === 1))
        yield* Fiber.interrupt(leader)
        yield* waitUntil(Effect.map(Ref.get(started), (n) => n === 2))
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(waiter)).toBe("v")
      }))

    it.effect("validates its options and keys", () =>
      Effect.gen(function*() {
        const lookup = (_: string) => Effect.succeed(1)
        expect(yield* fieldOf(Cache.lookup({ lookup, capacity: 0 }))).toBe("cache.capacity")
        expect(yield* fieldOf(Cache.lookup({ lookup, ttl: 0 }))).toBe("cache.ttl")
        expect(yield* fieldOf(Cache.lookup({ lookup, ttl: Infinity }))).toBe("cache.ttl")
        const cache = yield* Cache.lookup({ lookup })
        expect(yield* fieldOf(cache.get(undefined as unknown as string))).toBe("key")
      }))
  })
})

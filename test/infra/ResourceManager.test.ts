import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  Metric,
  Option,
  Queue,
  Ref,
  Scope,
  Stream,
  TestClock
} from "effect"
import { AlreadyExistsError, ResourceExhaustedError, ValidationError } from "../../src/errors/FoundationError.js"
import * as ResourceManager from "../../src/infra/ResourceManager.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as Telemetry from "../../src/observability/Telemetry.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** A manager in the current scope, with memory (MB) driven by a Ref. */
const setup = (options: ResourceManager.Options = {}, initialMemoryMb = 0) =>
  Effect.gen(function*() {
    const memory = yield* Ref.make(initialMemoryMb)
    const manager = yield* ResourceManager.make(options).pipe(
      Effect.provide(ResourceManager.memoryProbe(Ref.get(memory)))
    )
    return { manager, memory }
  })

/** A size provider read from a Ref. */
const sized = (manager: ResourceManager.ResourceManagerService, name: string, initial: number) =>
  Effect.gen(function*() {
    const size = yield* Ref.make(initial)
    const registration = yield* manager.register(name, Ref.get(size))
    return { size, registration }
  })

/** Collects every level the `levels` SubscriptionRef emits into a queue; returns once subscribed. */
const watchLevels = (manager: ResourceManager.ResourceManagerService) =>
  Effect.gen(function*() {
    const seen = yield* Queue.unbounded<ResourceManager.Level>()
    const subscribed = yield* Deferred.make<void>()
    yield* Effect.forkScoped(
      Stream.runForEach(manager.levels.changes, (level) =>
        Effect.zipRight(Queue.offer(seen, level), Deferred.succeed(subscribed, undefined)))
    )
    yield* Deferred.await(subscribed)
    return seen
  })

const drain = <A>(queue: Queue.Queue<A>) => Effect.map(Queue.takeAll(queue), (chunk) => Array.from(chunk))

/** The value of a gauge or counter with exactly these tags, from the metric registry. */
const metric = (name: string, tags: Record<string, string>) =>
  Effect.map(Metric.snapshot, (pairs) => {
    const pair = pairs.find((p) =>
      p.metricKey.name === name &&
      p.metricKey.tags.length === Object.keys(tags).length &&
      p.metricKey.tags.every((t) => tags[t.key] === t.value)
    )
    const state = pair?.metricState as { readonly value?: number; readonly count?: number } | undefined
    return state?.value ?? state?.count
  })

describe("ResourceManager", () => {
  describe("options", () => {
    it.scoped("has the original's defaults", () =>
      Effect.gen(function*() {
        const { manager } = yield* setup()
        expect(manager.limits).toEqual({
          name: "resource_manager",
          maxMemoryMb: 1024,
          maxEntries: 1_000_000,
          alertThreshold: 0.9,
          severeThreshold: 0.95,
          sweepInterval: Duration.seconds(60)
        })
      }))

    it.scoped("is a service with a layer; the default probe reads the process's memory", () =>
      Effect.gen(function*() {
        const usedMb = yield* Effect.flatMap(ResourceManager.MemoryProbe, (p) => p.usedMb).pipe(
          Effect.provide(ResourceManager.processMemoryProbe)
        )
        expect(usedMb).toBeGreaterThan(1)
        const stats = yield* Effect.flatMap(ResourceManager.ResourceManager, (m) => m.stats).pipe(
          Effect.provide(ResourceManager.layerWithProcessMemory({ maxMemoryMb: 2048, maxEntries: 10_000 }))
        )
        expect(stats.memory.measured).toBeGreaterThan(1)
        expect(stats.memory.limit).toBe(2048)
        expect(stats.entries.limit).toBe(10_000)
        const level = yield* Effect.flatMap(ResourceManager.ResourceManager, (m) => m.level).pipe(
          Effect.provide(
            ResourceManager.layer({ maxMemoryMb: 10 }).pipe(Layer.provide(ResourceManager.memoryProbe(Effect.succeed(9.6))))
          )
        )
        expect(level).toBe("severe")
      }))

    it.scoped("rejects each bad option with a ValidationError naming the field", () =>
      Effect.gen(function*() {
        const cases: ReadonlyArray<readonly [ResourceManager.Options, string]> = [
          [{ name: "" }, "resourceManager.name"],
          [{ maxMemoryMb: 0 }, "resourceManager.maxMemoryMb"],
          [{ maxMemoryMb: -5 }, "resourceManager.maxMemoryMb"],
          [{ maxMemoryMb: Number.NaN }, "resourceManager.maxMemoryMb"],
          [{ maxMemoryMb: Number.POSITIVE_INFINITY }, "resourceManager.maxMemoryMb"],
          [{ maxEntries: 0 }, "resourceManager.maxEntries"],
          [{ maxEntries: 10.5 }, "resourceManager.maxEntries"],
          [{ alertThreshold: 0 }, "resourceManager.alertThreshold"],
          [{ alertThreshold: -0.1 }, "resourceManager.alertThreshold"],
          [{ alertThreshold: 1.2, severeThreshold: 1 }, "resourceManager.alertThreshold"],
          [{ severeThreshold: 1.5 }, "resourceManager.severeThreshold"],
          [{ alertThreshold: 0.9, severeThreshold: 0.9 }, "resourceManager.severeThreshold"],
          [{ alertThreshold: 0.8, severeThreshold: 0.7 }, "resourceManager.severeThreshold"],
          [{ sweepInterval: 0 }, "resourceManager.sweepInterval"],
          [{ sweepInterval: -1000 }, "resourceManager.sweepInterval"],
          [{ sweepInterval: Duration.infinity }, "resourceManager.sweepInterval"]
        ]
        for (const [options, field] of cases) {
          const error = failureOf(yield* Effect.exit(setup(options)))
          expect(error, JSON.stringify(options)).toBeInstanceOf(ValidationError)
          expect(error).toMatchObject({ field })
        }
        // the layer fails the same way
        const layerExit = yield* Effect.exit(
          Layer.build(ResourceManager.layer({ maxEntries: -1 }).pipe(
            Layer.provide(ResourceManager.memoryProbe(Effect.succeed(0)))
          ))
        )
        expect(failureOf(layerExit)).toMatchObject({ _tag: "ValidationError", field: "resourceManager.maxEntries" })
      }))

    it.scoped("rejects bad acquire input with a ValidationError and changes nothing", () =>
      Effect.gen(function*() {
        const { manager } = yield* setup({ maxEntries: 100 })
        const cases: ReadonlyArray<readonly [string, number, string]> = [
          ["disk", 1, "kind"],
          ["entries", 0, "amount"],
          ["entries", -3, "amount"],
          ["entries", 1.5, "amount"],
          ["memory", Number.NaN, "amount"],
          ["memory", 0, "amount"]
        ]
        for (const [kind, amount, field] of cases) {
          const error = failureOf(yield* Effect.exit(manager.acquire(kind as ResourceManager.Kind, amount)))
          expect(error).toBeInstanceOf(ValidationError)
          expect(error).toMatchObject({ field })
        }
        const stats = yield* manager.stats
        expect(stats.held).toEqual({ memory: { tokens: 0, amount: 0 }, entries: { tokens: 0, amount: 0 } })
        expect(stats.acquisitions).toBe(0)
        expect(stats.denials).toEqual({ memory_exhausted: 0, entries_full: 0, backpressure_active: 0 })
        // a fractional memory amount is fine
        expect((yield* manager.acquire("memory", 0.5)).amount).toBe(0.5)
      }))
  })

  describe("denials", () => {
    it.scoped("memory exhausted, entries full and severe backpressure each name what was exceeded", () =>
      Effect.gen(function*() {
        const { manager, memory } = yield* setup({ maxMemoryMb: 1000, maxEntries: 100 }, 950)
        // memory: 950 + 60 > 1000
        const memoryDenial = failureOf(yield* Effect.exit(manager.acquire("memory", 60)))
        expect(memoryDenial).toBeInstanceOf(ResourceExhaustedError)
        expect(memoryDenial).toMatchObject({ resource: "memory", used: 950, limit: 1000, category: "resource" })
        expect(ResourceManager.reasonOf(memoryDenial as ResourceManager.Denial)).toBe("memory_exhausted")

        yield* Ref.set(memory, 0)
        const { size } = yield* sized(manager, "users", 95)
        // entries: 95 + 10 > 100
        const entriesDenial = failureOf(yield* Effect.exit(manager.acquire("entries", 10)))
        expect(entriesDenial).toBeInstanceOf(ResourceExhaustedError)
        expect(entriesDenial).toMatchObject({ resource: "entries", used: 95, limit: 100 })
        expect(ResourceManager.reasonOf(entriesDenial as ResourceManager.Denial)).toBe("entries_full")

        // 95 of 100 is severe (≥ 0.95): 95 + 1 fits, but severe backpressure refuses it
        const severe = failureOf(yield* Effect.exit(manager.acquire("entries", 1)))
        expect(severe).toBeInstanceOf(ResourceManager.BackpressureActiveError)
        expect(severe).toMatchObject({ resource: "entries", used: 95, limit: 100, threshold: 0.95, requested: 1 })
        expect(ResourceManager.reasonOf(severe as ResourceManager.Denial)).toBe("backpressure_active")

        // below severe, the same request is admitted
        yield* Ref.set(size, 94)
        expect((yield* manager.acquire("entries", 1)).amount).toBe(1)
        expect((yield* manager.stats).denials).toEqual({ memory_exhausted: 1, entries_full: 1, backpressure_active: 1 })
      }))

    it.scoped("checks memory, then entries, then backpressure when several apply", () =>
      Effect.gen(function*() {
        const { manager, memory } = yield* setup({ maxMemoryMb: 100, maxEntries: 100 }, 99)
        const { size } = yield* sized(manager, "table", 99)
        const reasonOfAttempt = (kind: ResourceManager.Kind, amount: number) =>
          Effect.map(Effect.exit(manager.acquire(kind, amount)), (exit) => {
            const error = failureOf(exit)
            if (error === undefined) return "granted"
            return error._tag === "ValidationError" ? "invalid" : ResourceManager.reasonOf(error)
          })
        // all three apply: memory wins, whatever the kind asked for
        expect(yield* reasonOfAttempt("memory", 5)).toBe("memory_exhausted")
        yield* Ref.set(memory, 101)
        expect(yield* reasonOfAttempt("entries", 5)).toBe("memory_exhausted")
        // memory fine: entries full beats backpressure
        yield* Ref.set(memory, 0)
        expect(yield* reasonOfAttempt("entries", 5)).toBe("entries_full")
        // only severe backpressure (memory at 96%, the request fits)
        yield* Ref.set(size, 0)
        yield* Ref.set(memory, 96)
        expect(yield* reasonOfAttempt("entries", 5)).toBe("backpressure_active")
        yield* Ref.set(memory, 50)
        expect(yield* reasonOfAttempt("entries", 5)).toBe("granted")
      }))

    it.scoped("measures usage fresh on each acquisition, without waiting for a sweep", () =>
      Effect.gen(function*() {
        const { manager, memory } = yield* setup({ maxMemoryMb: 100, maxEntries: 100 })
        const { size } = yield* sized(manager, "cache", 0)
        yield* Ref.set(size, 100) // no sweep, no clock movement
        expect(failureOf(yield* Effect.exit(manager.acquire("entries", 1)))).toMatchObject({ resource: "entries", used: 100 })
        // the denied request's measurement changed the level, published before the denial returns
        expect(yield* manager.levels.get).toBe("severe")
        yield* Ref.set(size, 0)
        yield* Ref.set(memory, 100)
        expect(failureOf(yield* Effect.exit(manager.acquire("memory", 1)))).toMatchObject({ resource: "memory", used: 100 })
        const stats = yield* manager.stats
        expect(stats.memory.measured).toBe(100)
        expect(stats.entries.providers).toEqual({ cache: 0 })
        expect(stats.sweeps).toBe(0)
      }))
  })

  describe("tokens", () => {
    it.scoped("hold their amount until the scope closes, and count toward usage", () =>
      Effect.gen(function*() {
        const { manager } = yield* setup({ maxMemoryMb: 100, maxEntries: 100 })
        const scope = yield* Scope.make()
        const token = yield* manager.acquire("entries", 60).pipe(Scope.extend(scope))
        yield* manager.acquire("memory", 30).pipe(Scope.extend(scope))
        expect(token).toMatchObject({ kind: "entries", amount: 60 })
        let stats = yield* manager.stats
        expect(stats.held).toEqual({ memory: { tokens: 1, amount: 30 }, entries: { tokens: 1, amount: 60 } })
        expect(stats.entries).toMatchObject({ measured: 0, reserved: 60, used: 60 })
        // held tokens count: 60 + 50 > 100, 30 + 80 > 100
        expect(failureOf(yield* Effect.exit(manager.acquire("entries", 50)))).toMatchObject({ resource: "entries", used: 60 })
        expect(failureOf(yield* Effect.exit(manager.acquire("memory", 80)))).toMatchObject({ resource: "memory", used: 30 })
        yield* Scope.close(scope, Exit.void)
        stats = yield* manager.stats
        expect(stats.held).toEqual({ memory: { tokens: 0, amount: 0 }, entries: { tokens: 0, amount: 0 } })
        expect(stats.releases).toBe(2)
        expect((yield* Effect.scoped(manager.acquire("entries", 100))).amount).toBe(100)
      }))

    it.scoped("are released exactly once on success, failure, defect and interruption", () =>
      Effect.gen(function*() {
        const { manager } = yield* setup({ maxEntries: 100 })
        yield* Effect.scoped(manager.acquire("entries", 40))
        yield* Effect.exit(Effect.scoped(Effect.zipRight(manager.acquire("entries", 40), Effect.fail("boom"))))
        yield* Effect.exit(Effect.scoped(Effect.zipRight(manager.acquire("entries", 40), Effect.die("defect"))))
        yield* Effect.exit(manager.withResource("entries", 40, Effect.fail("boom")))
        const started = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(
          Effect.scoped(Effect.zipRight(manager.acquire("entries", 40), Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)))
        )
        yield* Deferred.await(started)
        expect((yield* manager.stats).held.entries).toEqual({ tokens: 1, amount: 40 })
        yield* Fiber.interrupt(holder)
        const stats = yield* manager.stats
        expect(stats.acquisitions).toBe(5)
        expect(stats.releases).toBe(5)
        expect(stats.held.entries).toEqual({ tokens: 0, amount: 0 }) // not negative: each released once
        expect(stats.entries.used).toBe(0)
        // a second close of the same scope releases nothing more
        const scope = yield* Scope.make()
        yield* manager.acquire("entries", 10).pipe(Scope.extend(scope))
        yield* Scope.close(scope, Exit.void)
        yield* Scope.close(scope, Exit.void)
        expect((yield* manager.stats).held.entries).toEqual({ tokens: 0, amount: 0 })
        // and the whole limit is available again, no more
        yield* Effect.scoped(Effect.gen(function*() {
          yield* manager.acquire("entries", 100)
          expect(failureOf(yield* Effect.exit(manager.acquire("entries", 1)))).toBeInstanceOf(ResourceExhaustedError)
        }))
      }))

    it.scoped("concurrent acquisitions at the limit admit exactly what fits", () =>
      Effect.gen(function*() {
        const { manager } = yield* setup({ maxEntries: 100 })
        // a provider that yields, so that the measurements of concurrent acquisitions interleave
        yield* manager.register("slow", Effect.as(Effect.yieldNow(), 3))
        const gate = yield* Deferred.make<void>()
        const attempts = Array.from({ length: 20 }, () =>
          Effect.exit(Effect.scoped(Effect.zipRight(manager.acquire("entries", 10), Deferred.await(gate)))))
        const fiber = yield* Effect.fork(Effect.all(attempts, { concurrency: "unbounded" }))
        // 3 measured + 9 × 10 = 93 < 100; the 10th would make 103
        yield* Effect.repeat(manager.stats, { until: (s) => s.acquisitions + s.denials.entries_full === 20 })
        const stats = yield* manager.stats
        expect(stats.held.entries).toEqual({ tokens: 9, amount: 90 })
        expect(stats.entries.used).toBe(93)
        expect(stats.denials.entries_full).toBe(11)
        yield* Deferred.succeed(gate, undefined)
        const exits = yield* Fiber.join(fiber)
        expect(exits.filter(Exit.isSuccess)).toHaveLength(9)
        expect((yield* manager.stats).held.entries).toEqual({ tokens: 0, amount: 0 })
      }))
  })

  describe("backpressure level", () => {
    it.scoped("goes normal → moderate → severe → normal as usage changes, each change published once", () =>
      Effect.gen(function*() {
        const { manager, memory } = yield* setup({ maxMemoryMb: 100, name: "rm-levels" })
        const seen = yield* watchLevels(manager)
        const levelGauge = metric("foundation_resource_manager_level", { resource_manager: "rm-levels" })
        const at = (mb: number) =>
          Effect.gen(function*() {
            yield* Ref.set(memory, mb)
            yield* TestClock.adjust("60 seconds") // the periodic sweep measures
            return yield* manager.level
          })
        expect(yield* manager.level).toBe("normal")
        expect(yield* at(50)).toBe("normal")
        expect(yield* at(90)).toBe("moderate") // ≥ alert 0.9
        expect(yield* levelGauge).toBe(1)
        expect(yield* at(93)).toBe("moderate")
        expect(yield* at(95)).toBe("severe") // ≥ severe 0.95
        expect(yield* levelGauge).toBe(2)
        expect(yield* at(99)).toBe("severe")
        expect(yield* at(10)).toBe("normal")
        expect(yield* levelGauge).toBe(0)
        expect(yield* manager.levels.get).toBe("normal")
        expect(yield* drain(seen)).toEqual(["normal", "moderate", "severe", "normal"])
        expect((yield* manager.stats).sweeps).toBe(6)
      }))

    it.scoped("registering a provider that crosses the alert threshold changes the level at once", () =>
      Effect.gen(function*() {
        const { manager } = yield* setup({ maxEntries: 1000 })
        const changes = yield* Queue.unbounded<ResourceManager.LevelChange>()
        yield* manager.onAlert((change) => Queue.offer(changes, change))
        const seen = yield* watchLevels(manager)
        yield* sized(manager, "small", 100)
        expect(yield* manager.level).toBe("normal")
        const scope = yield* Scope.make()
        yield* sized(manager, "big", 850).pipe(Scope.extend(scope)) // 950 of 1000
        expect(yield* manager.level).toBe("severe") // no sweep, no clock movement
        expect(yield* Queue.take(changes)).toMatchObject({ from: "normal", to: "severe", entriesRatio: 0.95 })
        // removing the provider brings it back
        yield* Scope.close(scope, Exit.void)
        expect(yield* manager.level).toBe("normal")
        expect(yield* Queue.take(changes)).toMatchObject({ from: "severe", to: "normal", entriesRatio: 0.1 })
        expect(yield* drain(seen)).toEqual(["normal", "severe", "normal"])
        expect((yield* manager.stats).entries.providers).toEqual({ small: 100 })
      }))

    it.scoped("a token and its release change the level and alert", () =>
      Effect.gen(function*() {
        const { manager } = yield* setup({ maxEntries: 100 })
        const changes = yield* Queue.unbounded<ResourceManager.LevelChange>()
        yield* manager.onAlert((change) => Queue.offer(changes, change))
        yield* manager.withResource(
          "entries",
          92,
          Effect.gen(function*() {
            expect(yield* manager.level).toBe("moderate")
            expect(yield* Queue.take(changes)).toMatchObject({ from: "normal", to: "moderate" })
          })
        )
        expect(yield* manager.level).toBe("normal")
        expect(yield* Queue.take(changes)).toMatchObject({ from: "moderate", to: "normal" })
      }))

    it.scoped("a failing alert handler is logged with its cause and gets the next alerts", () =>
      Effect.gen(function*() {
        const logged: Array<{ message: string; cause: string }> = []
        const logger = Logger.make(({ cause, message }) => {
          logged.push({ message: Array.isArray(message) ? message.join(" ") : String(message), cause: Cause.pretty(cause) })
        })
        yield* Effect.gen(function*() {
          const { manager, memory } = yield* setup({ maxMemoryMb: 100 })
          const received = yield* Queue.unbounded<string>()
          const healthy = yield* Queue.unbounded<string>()
          let calls = 0
          yield* manager.onAlert((change) =>
            Effect.gen(function*() {
              calls++
              yield* Queue.offer(received, change.to)
              if (calls === 1) return yield* Effect.fail("handler broke")
              if (calls === 2) return yield* Effect.die(new Error("handler died"))
            })
          )
          yield* manager.onAlert((change) => Queue.offer(healthy, change.to))
          for (const mb of [91, 96, 10]) {
            yield* Ref.set(memory, mb)
            yield* manager.sweep
          }
          expect([yield* Queue.take(received), yield* Queue.take(received), yield* Queue.take(received)]).toEqual([
            "moderate",
            "severe",
            "normal"
          ])
          expect([yield* Queue.take(healthy), yield* Queue.take(healthy), yield* Queue.take(healthy)]).toEqual([
            "moderate",
            "severe",
            "normal"
          ])
          expect(yield* manager.level).toBe("normal")
        }).pipe(Effect.provide(Logger.add(logger)))
        const warnings = logged.filter((l) => l.message.includes("alert handler failed"))
        expect(warnings).toHaveLength(2)
        expect(warnings[0]!.cause).toContain("handler broke")
        expect(warnings[1]!.cause).toContain("handler died")
      }))
  })

  describe("measurement", () => {
    it.scoped("the sweep measures every provider on schedule, and stops with the manager's scope", () =>
      Effect.gen(function*() {
        const calls = yield* Ref.make(0)
        const size = yield* Ref.make(10)
        const scope = yield* Scope.make()
        const { manager } = yield* setup({ maxEntries: 100, sweepInterval: "30 seconds" }).pipe(Scope.extend(scope))
        // registered in the test's scope: only the manager's scope closes below
        yield* manager.register("counted", Effect.zipRight(Ref.update(calls, (n) => n + 1), Ref.get(size)))
        expect(yield* Ref.get(calls)).toBe(1) // measured on registration
        yield* TestClock.adjust("29 seconds")
        expect(yield* Ref.get(calls)).toBe(1)
        yield* Ref.set(size, 92)
        yield* TestClock.adjust("1 second")
        expect(yield* Ref.get(calls)).toBe(2)
        expect(yield* manager.level).toBe("moderate") // the sweep's measurement updated the level
        yield* TestClock.adjust("30 seconds")
        expect(yield* Ref.get(calls)).toBe(3)
        expect((yield* manager.stats).sweeps).toBe(2)
        yield* Scope.close(scope, Exit.void)
        yield* TestClock.adjust("5 minutes")
        expect(yield* Ref.get(calls)).toBe(3)
      }))

    it.scoped("a failing provider is logged, keeps its last size and never fails an acquisition", () =>
      Effect.gen(function*() {
        const { manager } = yield* setup({ maxEntries: 100 })
        const broken = yield* Ref.make(false)
        yield* manager.register(
          "flaky",
          Effect.flatMap(Ref.get(broken), (b) => b ? Effect.fail("disk gone") : Effect.succeed(70))
        )
        yield* manager.register("weird", Effect.succeed(Number.NaN))
        yield* Ref.set(broken, true)
        // 70 (last good size) + 40 > 100
        expect(failureOf(yield* Effect.exit(manager.acquire("entries", 40)))).toMatchObject({ resource: "entries", used: 70 })
        expect((yield* Effect.scoped(manager.acquire("entries", 30))).amount).toBe(30)
        const stats = yield* manager.stats
        expect(stats.entries.providers).toEqual({ flaky: 70, weird: 0 })
        expect(stats.measurementFailures).toBe(5) // weird on registration; both on each of two acquisitions
      }))

    it.scoped("a measurement that started earlier never overwrites one that started later", () =>
      Effect.gen(function*() {
        interface Racy {
          readonly value: Ref.Ref<number>
          readonly slow: Ref.Ref<boolean>
          readonly reading: Deferred.Deferred<void>
          readonly gate: Deferred.Deferred<void>
        }
        const racy = (initial: number) =>
          Effect.all({
            value: Ref.make(initial),
            slow: Ref.make(false),
            reading: Deferred.make<void>(),
            gate: Deferred.make<void>()
          })
        /** Reads the value; while slow, holds what it read until the gate opens. */
        const read = (r: Racy) =>
          Effect.gen(function*() {
            const value = yield* Ref.get(r.value)
            if (yield* Ref.get(r.slow)) {
              yield* Deferred.succeed(r.reading, undefined)
              yield* Deferred.await(r.gate)
            }
            return value
          })
        const memory = yield* racy(50)
        const size = yield* racy(50)
        const manager = yield* ResourceManager.make({ maxEntries: 100, maxMemoryMb: 100 }).pipe(
          Effect.provide(ResourceManager.memoryProbe(read(memory)))
        )
        yield* manager.register("racy", read(size))
        for (const source of [memory, size]) {
          yield* Ref.set(source.slow, true)
          const early = yield* Effect.fork(Effect.scoped(manager.acquire("entries", 1)))
          yield* Deferred.await(source.reading) // the early measurement has read 50
          yield* Ref.set(source.slow, false)
          yield* Ref.set(source.value, 10)
          yield* manager.sweep // a later measurement reads 10
          yield* Deferred.succeed(source.gate, undefined)
          yield* Fiber.join(early) // and the early one finishes last
          const stats = yield* manager.stats
          expect(source === memory ? stats.memory.measured : stats.entries.measured).toBe(10)
        }
        expect((yield* manager.stats).entries.providers).toEqual({ racy: 10 })
      }))

    it.scoped("provider names are unique and non-empty", () =>
      Effect.gen(function*() {
        const { manager } = yield* setup()
        yield* manager.register("users", Effect.succeed(1))
        expect(failureOf(yield* Effect.exit(manager.register("users", Effect.succeed(2))))).toBeInstanceOf(
          AlreadyExistsError
        )
        expect(failureOf(yield* Effect.exit(manager.register("", Effect.succeed(2))))).toMatchObject({
          _tag: "ValidationError",
          field: "name"
        })
        expect((yield* manager.stats).entries.providers).toEqual({ users: 1 })
      }))

    it.scoped("a registration can be measured on demand", () =>
      Effect.gen(function*() {
        const { manager } = yield* setup({ maxEntries: 100 })
        const { registration, size } = yield* sized(manager, "repo", 5)
        yield* Ref.set(size, 96)
        expect(yield* manager.level).toBe("normal")
        expect(yield* registration.measure).toBe(96)
        expect(yield* manager.level).toBe("severe")
      }))
  })

  describe("observability", () => {
    it.scoped("stats and metrics move", () =>
      Effect.gen(function*() {
        const tags = { resource_manager: "rm-metrics" }
        const { manager, memory } = yield* setup({ name: "rm-metrics", maxMemoryMb: 100, maxEntries: 100 }, 20)
        yield* sized(manager, "t", 30)
        yield* Effect.scoped(Effect.gen(function*() {
          yield* manager.acquire("entries", 10)
          yield* manager.acquire("memory", 5)
          expect(yield* metric("foundation_resource_manager_entries", tags)).toBe(40)
          expect(yield* metric("foundation_resource_manager_memory_mb", tags)).toBe(25)
        }))
        expect(yield* metric("foundation_resource_manager_entries", tags)).toBe(30)
        yield* Effect.exit(manager.acquire("entries", 80))
        yield* Ref.set(memory, 200)
        yield* Effect.exit(manager.acquire("entries", 1))
        yield* Effect.exit(manager.acquire("entries", 1))
        yield* Ref.set(memory, 96)
        yield* Effect.exit(manager.acquire("entries", 1))
        expect(yield* metric("foundation_resource_manager_acquired_total", tags)).toBe(2)
        expect(yield* metric("foundation_resource_manager_denied_total", { ...tags, reason: "entries_full" })).toBe(1)
        expect(yield* metric("foundation_resource_manager_denied_total", { ...tags, reason: "memory_exhausted" }))
          .toBe(2)
        expect(yield* metric("foundation_resource_manager_denied_total", { ...tags, reason: "backpressure_active" }))
          .toBe(1)
        expect(yield* metric("foundation_resource_manager_memory_mb", tags)).toBe(96)
        expect(yield* metric("foundation_resource_manager_level", tags)).toBe(2)
        const stats = yield* manager.stats
        expect(stats).toMatchObject({
          name: "rm-metrics",
          level: "severe",
          memory: { measured: 96, reserved: 0, used: 96, limit: 100, ratio: 0.96 },
          entries: { measured: 30, reserved: 0, used: 30, limit: 100, ratio: 0.3, providers: { t: 30 } },
          acquisitions: 2,
          releases: 2,
          denials: { memory_exhausted: 2, entries_full: 1, backpressure_active: 1 }
        })
      }))

    it.effect("emits the original's telemetry events", () =>
      Effect.gen(function*() {
        const bus = yield* EventBus.EventBus
        const names = yield* Effect.scoped(Effect.gen(function*() {
          const sub = yield* bus.subscribe("foundation.resource_manager.*", { capacity: 100 })
          yield* Effect.scoped(Effect.gen(function*() {
            const { manager } = yield* setup({ maxEntries: 100 })
            yield* Effect.scoped(manager.acquire("entries", 92))
            yield* Effect.exit(manager.acquire("entries", 200))
            yield* manager.sweep
          }))
          const out: Array<{ name: string; data: unknown }> = []
          for (;;) {
            const next = yield* sub.poll
            if (Option.isNone(next)) return out
            out.push({ name: next.value.type, data: next.value.data })
          }
        }))
        expect(names.map((e) => e.name)).toEqual([
          ResourceManager.events.backpressureChanged,
          ResourceManager.events.acquired,
          ResourceManager.events.backpressureChanged,
          ResourceManager.events.released,
          ResourceManager.events.denied,
          ResourceManager.events.cleanup
        ])
        expect(names[0]!.data).toMatchObject({
          measurements: { memory_ratio: 0, entries_ratio: 0.92 },
          metadata: { old_state: "normal", new_state: "moderate", resource_manager: "resource_manager" }
        })
        expect(names[1]!.data).toMatchObject({ measurements: { amount: 92, active_tokens: 1 }, metadata: { kind: "entries" } })
        expect(names[4]!.data).toMatchObject({
          measurements: { requested: 200, used: 0, limit: 100 },
          metadata: { reason: "entries_full", resource: "entries" }
        })
        expect(Object.values(ResourceManager.events).every((n) => n.startsWith("foundation.resource_manager."))).toBe(true)
      }).pipe(Effect.provide(Telemetry.layerWithBus())))
  })
})


import { describe, expect, it } from "@effect/vitest"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { Cause, Context, Effect, Exit, Fiber, Layer, Option, Ref, Schema, Scope, TestClock } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as Example from "../../examples/health-checker.js"
import * as Agent from "../../src/agents/Agent.js"
import * as AgentMonitor from "../../src/agents/AgentMonitor.js"
import * as AgentRegistry from "../../src/agents/AgentRegistry.js"
import * as Barrier from "../../src/agents/coordination/Barrier.js"
import * as Consensus from "../../src/agents/coordination/Consensus.js"
import * as Lock from "../../src/agents/coordination/Lock.js"
import * as Scheduler from "../../src/agents/Scheduler.js"
import * as MemoryStore from "../../src/data/MemoryStore.js"
import * as Repository from "../../src/data/Repository.js"
import * as SqlStore from "../../src/data/SqlStore.js"
import {
  AlreadyExistsError,
  InternalError,
  NotFoundError,
  TimeoutError,
  ValidationError
} from "../../src/errors/FoundationError.js"
import * as Cache from "../../src/infra/Cache.js"
import * as CommandRunner from "../../src/infra/CommandRunner.js"
import * as ConnectionManager from "../../src/infra/ConnectionManager.js"
import * as ResourceManager from "../../src/infra/ResourceManager.js"
import * as TaskPools from "../../src/infra/TaskPools.js"
import * as HealthChecker from "../../src/integration/HealthChecker.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as Telemetry from "../../src/observability/Telemetry.js"
import * as CircuitBreaker from "../../src/resilience/CircuitBreaker.js"
import * as RateLimiter from "../../src/resilience/RateLimiter.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** Lets every ready fiber run, without moving the clock. */
const settle = Effect.repeatN(Effect.yieldNow(), 50)

/** A check whose result the test sets, counting its executions. */
const controlled = (initial: "ok" | "fail" | "unhealthy" | "degraded" = "ok") =>
  Effect.gen(function*() {
    const mode = yield* Ref.make<"ok" | "fail" | "unhealthy" | "degraded">(initial)
    const executions = yield* Ref.make(0)
    const check = Effect.gen(function*() {
      yield* Ref.update(executions, (n) => n + 1)
      const m = yield* Ref.get(mode)
      if (m === "fail") return yield* Effect.fail("connection refused")
      if (m === "unhealthy") return "unhealthy" as const
      if (m === "degraded") return { status: "degraded" as const, details: { lag: 7 } }
    })
    return { check, set: (m: "ok" | "fail" | "unhealthy" | "degraded") => Ref.set(mode, m), executions: Ref.get(executions) }
  })

const only = (report: HealthChecker.Report, name: string) => report.checks.find((c) => c.name === name)!

describe("HealthChecker", () => {
  it.scoped("runs a check at once, then every interval (per check), on the Clock", () =>
    Effect.gen(function*() {
      const checker = yield* HealthChecker.make()
      const fast = yield* controlled()
      const slow = yield* controlled()
      yield* checker.register({ name: "fast", check: fast.check, interval: "10 seconds" })
      yield* checker.register({ name: "slow", check: slow.check }) // default interval: 60 s
      const pending = yield* checker.report
      expect(pending.checks.map((c) => c.status)).toEqual(["pending", "pending"])
      expect(pending.status).toBe("degraded") // not yet known is not healthy
      yield* settle
      expect([yield* fast.executions, yield* slow.executions]).toEqual([1, 1])
      const first = yield* checker.report
      expect(first.status).toBe("healthy")
      expect(only(first, "fast")).toMatchObject({ status: "healthy", runs: 1, checkedAt: Option.some(0), breaker: "closed" })
      yield* TestClock.adjust("9999 millis")
      expect(yield* fast.executions).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect(yield* fast.executions).toBe(2)
      yield* TestClock.adjust("50 seconds") // t = 60 s
      expect([yield* fast.executions, yield* slow.executions]).toEqual([7, 2])
      expect(only(yield* checker.report, "slow").checkedAt).toEqual(Option.some(60_000))
    }))

  it.scoped("results: void, a status, details; a failure, a defect, a timeout and a bad value are unhealthy", () =>
    Effect.gen(function*() {
      const checker = yield* HealthChecker.make()
      yield* checker.register({ name: "void", check: Effect.void })
      yield* checker.register({ name: "degraded", check: Effect.succeed("degraded" as const) })
      yield* checker.register({ name: "details", check: Effect.succeed({ status: "healthy" as const, details: { n: 1 } }) })
      yield* checker.register({ name: "fails", check: Effect.fail("db down") })
      yield* checker.register({ name: "dies", check: Effect.die(new Error("bug")) })
      yield* checker.register({ name: "hangs", check: Effect.never, timeout: "2 seconds" })
      yield* checker.register({ name: "bad", check: Effect.succeed({ status: "fine" } as unknown as HealthChecker.Health) })
      yield* settle
      yield* TestClock.adjust("2 seconds")
      const report = yield* checker.report
      const by = (name: string) => only(report, name)
      expect(by("void")).toMatchObject({ status: "healthy", lastError: Option.none(), details: {} })
      expect(by("degraded").status).toBe("degraded")
      expect(by("details")).toMatchObject({ status: "healthy", details: { n: 1 } })
      expect(by("fails")).toMatchObject({ status: "unhealthy", lastError: Option.some("db down"), consecutiveFailures: 1 })
      const defect = Option.getOrThrow(by("dies").lastError)
      expect(defect).toBeInstanceOf(InternalError)
      expect((defect as InternalError).message).toContain("bug")
      const timeout = Option.getOrThrow(by("hangs").lastError)
      expect(timeout).toBeInstanceOf(TimeoutError)
      expect(by("hangs")).toMatchObject({ status: "unhealthy", latency: 2000 })
      const bad = Option.getOrThrow(by("bad").lastError) as ValidationError
      expect(bad).toBeInstanceOf(ValidationError)
      expect(bad.field).toBe("bad.result")
      expect(report.status).toBe("unhealthy")
    }))

  it.scoped("the breaker opens after 3 failed runs, refuses runs while open, and closes when the check recovers", () =>
    Effect.gen(function*() {
      const checker = yield* HealthChecker.make()
      const db = yield* controlled("fail")
      yield* checker.register({ name: "db", check: db.check, interval: "1 minute" })
      yield* settle // run 1 (t = 0)
      expect(only(yield* checker.report, "db")).toMatchObject({ consecutiveFailures: 1, breaker: "closed" })
      yield* TestClock.adjust("2 minutes") // runs 2 and 3: the breaker opens
      expect(yield* db.executions).toBe(3)
      expect(only(yield* checker.report, "db")).toMatchObject({
        status: "unhealthy",
        consecutiveFailures: 3,
        breaker: "open",
        lastError: Option.some("connection refused")
      })
      // While open, an on-demand run is refused without running the check.
      const refused = yield* checker.check("db")
      expect(yield* db.executions).toBe(3)
      expect(refused).toMatchObject({ status: "unhealthy", breaker: "open", consecutiveFailures: 3, latency: 0, runs: 4 })
      // The dependency recovers; the next periodic run (one interval after opening) is the trial.
      yield* db.set("ok")
      yield* TestClock.adjust("1 minute")
      expect(yield* db.executions).toBe(4)
      expect(only(yield* checker.report, "db")).toMatchObject({
        status: "healthy",
        consecutiveFailures: 0,
        breaker: "closed",
        lastError: Option.none()
      })
      expect((yield* checker.report).status).toBe("healthy")
    }))

  it.scoped("a failed trial reopens the breaker for another interval; unhealthy results count as failures", () =>
    Effect.gen(function*() {
      const checker = yield* HealthChecker.make({ failureThreshold: 2 })
      const svc = yield* controlled("unhealthy")
      yield* checker.register({ name: "svc", check: svc.check, interval: "30 seconds" })
      yield* settle
      yield* TestClock.adjust("30 seconds") // 2 unhealthy results: open
      expect(only(yield* checker.report, "svc")).toMatchObject({ breaker: "open", consecutiveFailures: 2 })
      yield* TestClock.adjust("30 seconds") // the trial fails: open again
      expect(yield* svc.executions).toBe(3)
      expect(only(yield* checker.report, "svc")).toMatchObject({ breaker: "open", consecutiveFailures: 3 })
      yield* TestClock.adjust("15 seconds")
      expect(yield* checker.check("svc")).toMatchObject({ status: "unhealthy", breaker: "open" })
      expect(yield* svc.executions).toBe(3) // refused: still within the interval
      yield* svc.set("degraded") // degraded is not a failure: the trial closes the breaker
      yield* TestClock.adjust("15 seconds")
      expect(yield* svc.executions).toBe(4)
      expect(only(yield* checker.report, "svc")).toMatchObject({
        status: "degraded",
        breaker: "closed",
        consecutiveFailures: 0,
        details: { lag: 7 }
      })
    }))

  it.scoped("circuitBreaker: false runs the check every time", () =>
    Effect.gen(function*() {
      const checker = yield* HealthChecker.make()
      const db = yield* controlled("fail")
      yield* checker.register({ name: "db", check: db.check, interval: "1 second", circuitBreaker: false })
      yield* settle
      yield* TestClock.adjust("5 seconds")
      expect(yield* db.executions).toBe(6)
      expect(only(yield* checker.report, "db")).toMatchObject({ breaker: "disabled", consecutiveFailures: 6 })
    }))

  it.effect("aggregation: any unhealthy → unhealthy, any degraded → degraded, all healthy → healthy", () =>
    Effect.sync(() => {
      const c = (status: HealthChecker.CheckStatus, critical = true) => ({ status, critical })
      expect(HealthChecker.aggregate([])).toBe("healthy")
      expect(HealthChecker.aggregate([c("healthy"), c("healthy")])).toBe("healthy")
      expect(HealthChecker.aggregate([c("healthy"), c("degraded")])).toBe("degraded")
      expect(HealthChecker.aggregate([c("degraded"), c("unhealthy"), c("healthy")])).toBe("unhealthy")
      expect(HealthChecker.aggregate([c("healthy"), c("unhealthy", false)])).toBe("degraded") // non-critical
      expect(HealthChecker.aggregate([c("unhealthy", false), c("unhealthy")])).toBe("unhealthy")
      expect(HealthChecker.aggregate([c("healthy"), c("pending")])).toBe("degraded")
    }))

  it.scoped("report and checkAll aggregate; a non-critical failure only degrades", () =>
    Effect.gen(function*() {
      const checker = yield* HealthChecker.make()
      const cache = yield* controlled("fail")
      const db = yield* controlled()
      // (No breaker: three failed runs in a row would open it, and a refused run reads unhealthy.)
      yield* checker.register({ name: "cache", check: cache.check, critical: false, circuitBreaker: false })
      yield* checker.register({ name: "db", check: db.check })
      const all = yield* checker.checkAll
      expect(all.status).toBe("degraded")
      expect(all.checks.map((c) => [c.name, c.status, c.critical])).toEqual([["cache", "unhealthy", false], ["db", "healthy", true]])
      yield* db.set("fail")
      expect((yield* checker.checkAll).status).toBe("unhealthy")
      yield* db.set("degraded")
      yield* cache.set("ok")
      expect((yield* checker.checkAll).status).toBe("degraded")
      yield* db.set("ok")
      const healthy = yield* checker.checkAll
      expect(healthy.status).toBe("healthy")
      expect(healthy.at).toBe(0)
    }))

  it.scoped("runs of one check never overlap: check() waits for the run in progress, then runs", () =>
    Effect.gen(function*() {
      const checker = yield* HealthChecker.make()
      let running = 0
      let overlap = 0
      let executions = 0
      const check = Effect.acquireUseRelease(
        Effect.sync(() => {
          executions++
          if (++running > 1) overlap++
        }),
        () => Effect.sleep("1 second"),
        () => Effect.sync(() => void running--)
      )
      yield* checker.register({ name: "slow", check, interval: "1 minute" })
      yield* settle // the first run sleeps
      const fiber = yield* Effect.fork(checker.check("slow"))
      yield* settle
      expect(executions).toBe(1)
      yield* TestClock.adjust("1 second") // first run done; the on-demand one starts
      yield* settle
      expect(executions).toBe(2)
      yield* TestClock.adjust("1 second")
      const report = yield* Fiber.join(fiber)
      expect(report).toMatchObject({ status: "healthy", runs: 2, latency: 1000, checkedAt: Option.some(2000) })
      expect(overlap).toBe(0)
    }))

  it.scoped("a check's context is captured at register", () =>
    Effect.gen(function*() {
      class Db extends Context.Tag("Db")<Db, { readonly ping: Effect.Effect<"pong"> }>() {}
      const checker = yield* HealthChecker.make()
      const check = Effect.flatMap(Db, (db) => Effect.map(db.ping, () => ({ status: "healthy" as const, details: { ping: "pong" } })))
      yield* checker.register({ name: "db", check }).pipe(Effect.provideService(Db, { ping: Effect.succeed("pong" as const) }))
      expect(yield* checker.check("db")).toMatchObject({ status: "healthy", details: { ping: "pong" } })
    }))

  it.scoped("unregister stops the runs; names are unique; unknown names fail", () =>
    Effect.gen(function*() {
      const checker = yield* HealthChecker.make()
      const a = yield* controlled()
      yield* checker.register({ name: "a", check: a.check, interval: "1 second" })
      const duplicate = failureOf(yield* Effect.exit(checker.register({ name: "a", check: Effect.void })))
      expect(duplicate).toBeInstanceOf(AlreadyExistsError)
      yield* settle
      yield* TestClock.adjust("2 seconds")
      expect(yield* a.executions).toBe(3)
      yield* checker.unregister("a")
      yield* TestClock.adjust("1 minute")
      expect(yield* a.executions).toBe(3)
      expect(yield* checker.names).toEqual([])
      expect(failureOf(yield* Effect.exit(checker.check("a")))).toBeInstanceOf(NotFoundError)
      expect(failureOf(yield* Effect.exit(checker.unregister("a")))).toBeInstanceOf(NotFoundError)
      yield* checker.register({ name: "a", check: a.check }) // the name is free again
      expect(yield* checker.names).toEqual(["a"])
    }))

  it.effect("closing the checker's scope stops every check", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const checker = yield* HealthChecker.make().pipe(Scope.extend(scope))
      const a = yield* controlled()
      yield* checker.register({ name: "a", check: a.check, interval: "1 second" })
      yield* settle
      yield* TestClock.adjust("1 second")
      expect(yield* a.executions).toBe(2)
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("1 minute")
      expect(yield* a.executions).toBe(2)
    }))

  it.scoped("options are validated, naming the field", () =>
    Effect.gen(function*() {
      const field = (e: unknown) => (e as ValidationError).field
      expect(field(failureOf(yield* Effect.exit(HealthChecker.make({ failureThreshold: 0 }))))).toBe("healthChecker.failureThreshold")
      expect(field(failureOf(yield* Effect.exit(HealthChecker.make({ defaultTimeout: -1 }))))).toBe("healthChecker.defaultTimeout")
      const checker = yield* HealthChecker.make()
      const register = (options: HealthChecker.CheckOptions) => Effect.exit(checker.register(options))
      expect(field(failureOf(yield* register({ name: "", check: Effect.void })))).toBe("healthCheck.name")
      expect(field(failureOf(yield* register({ name: "x", check: "nope" as never })))).toBe("healthCheck.check")
      expect(field(failureOf(yield* register({ name: "x", check: Effect.void, timeout: 0 })))).toBe("healthCheck.timeout")
      expect(field(failureOf(yield* register({ name: "x", check: Effect.void, interval: "soon" as never })))).toBe(
        "healthCheck.interval"
      )
      expect(field(failureOf(yield* register({ name: "x", check: Effect.void, critical: "yes" as never })))).toBe(
        "healthCheck.critical"
      )
      expect(yield* checker.names).toEqual([]) // nothing registered
    }))

  it.scoped("telemetry: status changes and checkAll", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.EventBus
      const sub = yield* bus.subscribe("foundation.service_integration.**", { capacity: 100 })
      const checker = yield* HealthChecker.make({ name: "hc" })
      const db = yield* controlled()
      yield* checker.register({ name: "db", check: db.check })
      yield* settle
      yield* db.set("fail")
      yield* checker.checkAll
      const events = (yield* sub.takeAll).map((e) => {
        const { measurements, metadata } = e.data as Telemetry.TelemetryEvent
        return [e.type, measurements, metadata]
      })
      expect(events).toEqual([
        [HealthChecker.events.statusChanged, {}, { checker: "hc", check: "db", from: "pending", to: "healthy", breaker: "closed" }],
        [HealthChecker.events.statusChanged, {}, { checker: "hc", check: "db", from: "healthy", to: "unhealthy", breaker: "closed" }],
        [HealthChecker.events.healthCheck, { duration: 0, service_count: 1 }, { checker: "hc", result: "unhealthy" }]
      ])
    }).pipe(Effect.provide(Telemetry.layerWithBus())))
})

describe("HealthChecker built-in checks", () => {
  /** Runs a built-in check once, through a checker, and returns its report. */
  const runCheck = <E, R>(check: Effect.Effect<HealthChecker.Health, E, R>) =>
    Effect.gen(function*() {
      const checker = yield* HealthChecker.make()
      yield* checker.register({ name: "c", check, interval: "1 hour" })
      return () => Effect.map(checker.check("c"), (r) => ({ status: r.status, details: r.details }))
    })

  it.scoped("circuitBreakers: healthy, degraded when some are tripped, unhealthy when all are", () =>
    Effect.gen(function*() {
      const registry = yield* CircuitBreaker.CircuitBreakers
      const a = yield* registry.get("a")
      const b = yield* registry.get("b")
      const check = yield* runCheck(HealthChecker.checks.circuitBreakers())
      expect(yield* check()).toEqual({ status: "healthy", details: { breakers: 2, open: [], halfOpen: [], isolated: [] } })
      yield* a.isolate
      expect(yield* check()).toEqual({ status: "degraded", details: { breakers: 2, open: [], halfOpen: [], isolated: ["a"] } })
      yield* b.isolate
      expect((yield* check()).status).toBe("unhealthy")
      yield* a.reset
      yield* b.reset
      expect((yield* check()).status).toBe("healthy")
    }).pipe(Effect.provide(CircuitBreaker.layer())))

  it.scoped("rateLimiters: degraded when active keys were evicted since the previous run", () =>
    Effect.gen(function*() {
      const limiters = yield* RateLimiter.RateLimiters
      yield* limiters.configure("api", { limit: 10, maxKeys: 2 })
      const check = yield* runCheck(HealthChecker.checks.rateLimiters())
      yield* limiters.consume("api", "k1")
      expect(yield* check()).toEqual({ status: "healthy", details: { limiters: 1, allowed: 1, denied: 0, evicted: 0 } })
      yield* limiters.consume("api", "k2")
      yield* limiters.consume("api", "k3") // the table is full: an active key is evicted
      const after = yield* check()
      expect(after.status).toBe("degraded")
      expect((after.details as { evicted: number }).evicted).toBeGreaterThan(0)
      expect((yield* check()).status).toBe("healthy") // nothing new since the previous run
    }).pipe(Effect.provide(RateLimiter.layer)))

  it.scoped("resourceManager: normal, moderate, severe", () =>
    Effect.gen(function*() {
      const memory = yield* Ref.make(10)
      const manager = yield* ResourceManager.make({ maxMemoryMb: 100 }).pipe(
        Effect.provide(ResourceManager.memoryProbe(Ref.get(memory)))
      )
      const check = yield* runCheck(HealthChecker.checks.resourceManager()).pipe(
        Effect.provideService(ResourceManager.ResourceManager, manager)
      )
      expect(yield* check()).toEqual({ status: "healthy", details: { level: "normal", memoryRatio: 0.1, entriesRatio: 0 } })
      yield* Ref.set(memory, 92)
      yield* manager.sweep
      expect((yield* check()).status).toBe("degraded")
      yield* Ref.set(memory, 97)
      yield* manager.sweep
      expect((yield* check()).status).toBe("unhealthy")
    }))

  it.scoped("taskPools: degraded when a pool is shut down, unhealthy when all are", () =>
    Effect.gen(function*() {
      const pools = yield* TaskPools.TaskPools
      const check = yield* runCheck(HealthChecker.checks.taskPools())
      const first = yield* check()
      expect(first.status).toBe("healthy")
      expect(first.details).toMatchObject({ pools: 5, running: 0, queued: 0, shutdown: [] })
      yield* pools.shutdown("general")
      expect(yield* check()).toMatchObject({ status: "degraded", details: { shutdown: ["general"] } })
      for (const name of yield* pools.names) yield* pools.shutdown(name)
      expect((yield* check()).status).toBe("unhealthy")
    }).pipe(Effect.provide(TaskPools.layer({ cores: 2 }))))

  it.scoped("caches: healthy, with figures", () =>
    Effect.gen(function*() {
      const caches = yield* Cache.Caches
      const users = yield* caches.cache(Cache.define<string, string>("users"))
      yield* users.put("u1", "Ada")
      yield* users.get("u1")
      yield* users.get("u2")
      const check = yield* runCheck(HealthChecker.checks.caches())
      expect(yield* check()).toEqual({ status: "healthy", details: { caches: 1, entries: 1, hitRatio: 0.5 } })
    }).pipe(Effect.provide(Cache.layer())))

  it.scoped("eventBus: degraded when events were dropped since the previous run", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.EventBus
      yield* bus.subscribe("orders.*", { strategy: "dropping", capacity: 1 })
      const check = yield* runCheck(HealthChecker.checks.eventBus())
      yield* bus.publish("orders.created", 1)
      expect((yield* check()).status).toBe("healthy")
      yield* bus.publish("orders.created", 2)
      yield* bus.publish("orders.created", 3)
      expect(yield* check()).toEqual({
        status: "degraded",
        details: { published: 3, delivered: 0, dropped: 2, droppedSince: 2, subscriptions: 1, pending: 1 }
      })
      expect((yield* check()).status).toBe("healthy")
    }).pipe(Effect.provide(EventBus.layer())))

  it.scoped("agentRegistry: by the agents' registered health", () =>
    Effect.gen(function*() {
      const registry = yield* AgentRegistry.AgentRegistry
      const metadata = (health: AgentRegistry.Health): AgentRegistry.Metadata => ({
        capabilities: ["x"],
        health,
        node: "n1",
        resources: {}
      })
      const check = yield* runCheck(HealthChecker.checks.agentRegistry())
      expect(yield* check()).toEqual({ status: "healthy", details: { agents: 0, healthy: 0, degraded: 0, unhealthy: 0 } })
      yield* registry.register("a", metadata("healthy"))
      yield* registry.register("b", metadata("unhealthy"))
      expect(yield* check()).toEqual({ status: "degraded", details: { agents: 2, healthy: 1, degraded: 0, unhealthy: 1 } })
      yield* registry.setHealth("a", "unhealthy")
      expect((yield* check()).status).toBe("unhealthy")
    }).pipe(Effect.provide(AgentRegistry.layer())))

  it.scopedLive("connectionManager: by the pools' breakers (a real refused connection)", () =>
    Effect.gen(function*() {
      const port = yield* Effect.async<number>((resume) => {
        const probe = http.createServer()
        probe.listen(0, "127.0.0.1", () => {
          const p = (probe.address() as AddressInfo).port
          probe.close(() => resume(Effect.succeed(p)))
        })
      })
      const options = { baseUrl: `http://127.0.0.1:${port}`, retry: false as const, breaker: { trip: CircuitBreaker.consecutive(1) } }
      const manager = yield* ConnectionManager.make({ pools: { a: options, b: options } })
      const check = yield* runCheck(HealthChecker.checks.connectionManager()).pipe(
        Effect.provideService(ConnectionManager.ConnectionManager, manager)
      )
      expect(yield* check()).toEqual({ status: "healthy", details: { pools: 2, active: 0, open: [] } })
      yield* Effect.exit(manager.request("a", HttpClientRequest.get("/")))
      expect(yield* check()).toEqual({ status: "degraded", details: { pools: 2, active: 0, open: ["a"] } })
    }))
})

describe("HealthChecker built-in checks of the agents, data and command services", () => {
  const runCheck = <E, R>(check: Effect.Effect<HealthChecker.Health, E, R>) =>
    Effect.gen(function*() {
      const checker = yield* HealthChecker.make()
      yield* checker.register({ name: "c", check, interval: "1 hour" })
      return () =>
        Effect.map(checker.check("c"), (r) => ({ status: r.status, details: r.details, lastError: r.lastError }))
    })
  const metadata: AgentRegistry.Metadata = { capabilities: ["x"], health: "healthy", node: "n1", resources: {} }

  it.scoped("repositoryStore: a real count of the probe repository; a StoreError is unhealthy", () =>
    Effect.gen(function*() {
      const check = yield* runCheck(HealthChecker.checks.repositoryStore())
      expect(yield* check()).toMatchObject({ status: "healthy", details: { store: "memory", probeRecords: 0 } })
      const probe = yield* Repository.make({
        name: HealthChecker.probeRepository,
        schema: Schema.Struct({ id: Schema.String }),
        key: "id"
      })
      yield* probe.insert({ id: "p1" })
      expect((yield* check()).details).toEqual({ store: "memory", probeRecords: 1 }) // it really reads
      // A SQL store whose connection is gone: the count fails with a StoreError.
      const scope = yield* Scope.make()
      const sql = yield* Layer.buildWithScope(SqlStore.layerSqlite({ filename: ":memory:" }), scope)
      const broken = yield* runCheck(HealthChecker.checks.repositoryStore()).pipe(Effect.provide(sql))
      expect((yield* broken()).status).toBe("healthy")
      yield* Scope.close(scope, Exit.void)
      const down = yield* broken()
      expect(down.status).toBe("unhealthy")
      expect(Option.getOrUndefined(down.lastError)).toBeInstanceOf(Repository.StoreError)
    }).pipe(Effect.provide(MemoryStore.layer)))

  it.scoped("agentMonitor: degraded when agent checks failed since the previous run", () =>
    Effect.gen(function*() {
      const registry = yield* AgentRegistry.AgentRegistry
      const monitor = yield* AgentMonitor.AgentMonitor
      const failing = yield* Ref.make(false)
      yield* registry.register("a", metadata)
      yield* monitor.start("a", {
        interval: "1 hour",
        check: () => Effect.flatMap(Ref.get(failing), (f) => f ? Effect.fail("no answer") : Effect.succeed("healthy" as const))
      })
      yield* settle
      const check = yield* runCheck(HealthChecker.checks.agentMonitor())
      expect((yield* check()).status).toBe("healthy")
      yield* Ref.set(failing, true)
      yield* monitor.checkNow("a")
      expect(yield* check()).toMatchObject({
        status: "degraded",
        details: { monitors: 1, down: 0, checks: 2, failed: 1, timedOut: 0 }
      })
      expect((yield* check()).status).toBe("healthy") // nothing new since the previous run
    }).pipe(Effect.provide(AgentMonitor.layer().pipe(Layer.provideMerge(AgentRegistry.layer())))))

  it.scoped("scheduler: degraded when deliveries failed since the previous run", () =>
    Effect.gen(function*() {
      class Refused extends Schema.TaggedError<Refused>()("Refused", {}) {}
      const worker = Agent.define({
        name: "worker",
        state: Schema.Number,
        initial: 0,
        actions: {
          ok: Agent.action({ params: Schema.Struct({}), run: () => Effect.void }),
          refuse: Agent.action({ params: Schema.Struct({}), run: () => Effect.fail(new Refused()) })
        }
      })
      const registry = yield* AgentRegistry.make()
      const scheduler = yield* Scheduler.make().pipe(Effect.provideService(AgentRegistry.AgentRegistry, registry))
      const agent = yield* registry.spawn(worker, { id: "w", metadata })
      const schedule = { every: "1 hour", params: {}, delivery: "call", timeout: "1 second" } as const
      yield* scheduler.schedule(agent, "ok", { ...schedule, action: "ok" })
      yield* scheduler.schedule(agent, "refuse", { ...schedule, action: "refuse" })
      const check = yield* runCheck(HealthChecker.checks.scheduler()).pipe(
        Effect.provideService(Scheduler.Scheduler, scheduler)
      )
      yield* scheduler.runNow(agent, "ok")
      expect(yield* check()).toMatchObject({
        status: "healthy",
        details: { schedules: 2, agents: 1, runs: 1, failures: 0, failedSince: 0 }
      })
      yield* Effect.exit(scheduler.runNow(agent, "refuse"))
      expect(yield* check()).toMatchObject({ status: "degraded", details: { runs: 2, failures: 1, failedSince: 1 } })
      expect((yield* check()).status).toBe("healthy")
    }))

  it.scoped("locks: degraded when a lock with waiters has had the same grant for stallAfter", () =>
    Effect.gen(function*() {
      const locks = yield* Lock.Locks
      const check = yield* runCheck(HealthChecker.checks.locks({ stallAfter: "30 seconds" }))
      const first = yield* locks.acquire("l", { holder: "a" })
      const waiter = yield* Effect.fork(Effect.scoped(locks.acquire("l", { holder: "b" })))
      yield* settle
      // Contention alone is healthy; the same grant with waiters for 30 s is a stall.
      expect(yield* check()).toMatchObject({ status: "healthy", details: { locks: 1, held: 1, waiters: 1, stalled: [] } })
      yield* TestClock.adjust("29 seconds")
      expect((yield* check()).status).toBe("healthy")
      yield* TestClock.adjust("1 second")
      expect(yield* check()).toMatchObject({ status: "degraded", details: { waiters: 1, stalled: ["l"] } })
      yield* locks.release(first)
      yield* Fiber.join(waiter)
      expect(yield* check()).toMatchObject({ status: "healthy", details: { waiters: 0, stalled: [] } })
      // A bad option fails the check, naming the field.
      const bad = yield* runCheck(HealthChecker.checks.locks({ stallAfter: -1 }))
      const failed = yield* bad()
      expect(failed.status).toBe("unhealthy")
      expect((Option.getOrThrow(failed.lastError) as ValidationError).field).toBe("locks.stallAfter")
    }).pipe(Effect.provide(Lock.layer({ lease: "1 hour", timeout: "1 hour" }))))

  it.scoped("barriers: degraded while a barrier is broken", () =>
    Effect.gen(function*() {
      const barriers = yield* Barrier.Barriers
      const barrier = yield* barriers.create({ name: "b", parties: 2 })
      const check = yield* runCheck(HealthChecker.checks.barriers())
      const party = yield* Effect.fork(Effect.exit(barrier.awaitWithin("1 second")))
      yield* settle
      expect(yield* check()).toMatchObject({ status: "healthy", details: { barriers: 1, waiting: 1, broken: [] } })
      yield* TestClock.adjust("1 second") // the party times out: the generation breaks
      yield* Fiber.join(party)
      expect(yield* check()).toMatchObject({ status: "degraded", details: { barriers: 1, waiting: 0, broken: ["b"] } })
      yield* barrier.reset
      expect((yield* check()).status).toBe("healthy")
    }).pipe(Effect.provide(Barrier.layer())))

  it.scoped("consensus: healthy, with the open rounds", () =>
    Effect.gen(function*() {
      const consensus = yield* Consensus.Consensus
      const check = yield* runCheck(HealthChecker.checks.consensus())
      expect(yield* check()).toMatchObject({ status: "healthy", details: { openRounds: 0 } })
      const round = yield* consensus.open({ question: "ship?", participants: ["a", "b"] })
      expect(yield* check()).toMatchObject({ status: "healthy", details: { openRounds: 1 } })
      yield* round.vote("a", "yes")
      yield* round.vote("b", "yes")
      expect((yield* check()).details).toEqual({ openRounds: 0 })
    }).pipe(Effect.provide(Consensus.layer())))

  it.scoped("telemetry: degraded when emissions were dropped for an invalid name since the previous run", () =>
    Effect.gen(function*() {
      const telemetry = yield* Telemetry.Telemetry
      const check = yield* runCheck(HealthChecker.checks.telemetry())
      yield* telemetry.emit("app.ok")
      expect(yield* check()).toMatchObject({ status: "healthy", details: { invalidNames: 0, droppedSince: 0 } })
      yield* telemetry.emit("app..bad")
      expect(yield* check()).toMatchObject({ status: "degraded", details: { invalidNames: 1, droppedSince: 1 } })
      expect((yield* check()).status).toBe("healthy")
    }).pipe(Effect.provide(Telemetry.layerWithBus())))

  it.scopedLive("commandRunner: degraded when runs failed since the previous run (a real process)", () =>
    Effect.gen(function*() {
      const runner = yield* CommandRunner.CommandRunner
      const check = yield* runCheck(HealthChecker.checks.commandRunner())
      const node = (code: string) => runner.run("node", ["-e", code], { useCache: false })
      yield* node("process.exit(0)")
      expect(yield* check()).toMatchObject({
        status: "healthy",
        details: { runs: 1, active: 0, failed: 0, timedOut: 0, rejected: 0 }
      })
      yield* Effect.exit(node("process.exit(3)"))
      expect(yield* check()).toMatchObject({ status: "degraded", details: { runs: 2, failed: 1 } })
      expect((yield* check()).status).toBe("healthy")
    }).pipe(Effect.provide(CommandRunner.layerNode({ allowed: [{ name: "node", path: process.execPath }] }))))
})

describe("HealthChecker example", () => {
  it.scoped("the example runs", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Example.program)
      yield* TestClock.adjust("10 minutes")
      const result = yield* Fiber.join(fiber)
      expect(result).toEqual({
        down: {
          status: "unhealthy",
          database: { status: "unhealthy", breaker: "open", consecutiveFailures: 3, lastError: "connection refused" }
        },
        up: { status: "healthy", database: { status: "healthy", breaker: "closed", consecutiveFailures: 0, lastError: null } }
      })
    }))
})

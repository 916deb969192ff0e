import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  ConfigProvider,
  Context,
  Deferred,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Option,
  Redacted,
  Schema,
  Scope,
  TestClock
} from "effect"
import * as Example from "../examples/foundation.js"
import * as Agent from "../src/agents/Agent.js"
import * as AgentMonitor from "../src/agents/AgentMonitor.js"
import * as AgentRegistry from "../src/agents/AgentRegistry.js"
import * as Barrier from "../src/agents/coordination/Barrier.js"
import * as Consensus from "../src/agents/coordination/Consensus.js"
import * as Lock from "../src/agents/coordination/Lock.js"
import * as Scheduler from "../src/agents/Scheduler.js"
import * as Repository from "../src/data/Repository.js"
import { ValidationError } from "../src/errors/FoundationError.js"
import * as Foundation from "../src/Foundation.js"
import * as Cache from "../src/infra/Cache.js"
import * as CommandRunner from "../src/infra/CommandRunner.js"
import * as ConnectionManager from "../src/infra/ConnectionManager.js"
import * as ResourceManager from "../src/infra/ResourceManager.js"
import * as TaskPools from "../src/infra/TaskPools.js"
import * as HealthChecker from "../src/integration/HealthChecker.js"
import * as Protocols from "../src/integration/Protocols.js"
import * as EventBus from "../src/observability/EventBus.js"
import * as PerformanceMonitor from "../src/observability/PerformanceMonitor.js"
import * as Sampler from "../src/observability/Sampler.js"
import * as Telemetry from "../src/observability/Telemetry.js"
import * as CircuitBreaker from "../src/resilience/CircuitBreaker.js"
import * as RateLimiter from "../src/resilience/RateLimiter.js"

/** Every tag the Foundation provides, with its name in `Lifecycle`. */
const tags = [
  ["EventBus", EventBus.EventBus],
  ["Telemetry", Telemetry.Telemetry],
  ["Sampler", Sampler.Sampler],
  ["PerformanceMonitor", PerformanceMonitor.PerformanceMonitor],
  ["CircuitBreakers", CircuitBreaker.CircuitBreakers],
  ["RateLimiters", RateLimiter.RateLimiters],
  ["Caches", Cache.Caches],
  ["ResourceManager", ResourceManager.ResourceManager],
  ["ConnectionManager", ConnectionManager.ConnectionManager],
  ["TaskPools", TaskPools.TaskPools],
  ["CommandRunner", CommandRunner.CommandRunner],
  ["RepositoryStore", Repository.RepositoryStore],
  ["AgentRegistry", AgentRegistry.AgentRegistry],
  ["AgentMonitor", AgentMonitor.AgentMonitor],
  ["Scheduler", Scheduler.Scheduler],
  ["Consensus", Consensus.Consensus],
  ["Barriers", Barrier.Barriers],
  ["Locks", Lock.Locks],
  ["HealthChecker", HealthChecker.HealthChecker],
  ["RegistryProtocol", Protocols.RegistryProtocol],
  ["CoordinationProtocol", Protocols.CoordinationProtocol],
  ["InfrastructureProtocol", Protocols.InfrastructureProtocol]
] as const

/** A configuration environment with exactly these variables (none of the process's). */
const withEnv = (vars: Record<string, string> = {}) => Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars))))

/** Builds the Foundation in the current scope, reading only `vars` from the environment. */
const build = (config?: Foundation.FoundationConfig, vars?: Record<string, string>) =>
  Layer.build(Foundation.layer(config)).pipe(withEnv(vars))

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** Runs `self` with a logger that keeps the debug lines it logs. */
const capturingLogs = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const logger = Logger.make(({ message }) => {
      lines.push(Array.isArray(message) ? message.join(" ") : String(message))
    })
    const result = yield* self.pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Logger.withMinimumLogLevel(LogLevel.Debug)
    )
    return { result, lines }
  })

const State = Schema.Struct({ ticks: Schema.Number })
type State = typeof State.Type

const counter = Agent.define({
  name: "counter",
  state: State,
  initial: { ticks: 0 },
  actions: {
    tick: Agent.action({
      params: Schema.Struct({}),
      run: (_: {}, ctx: Agent.ActionContext<State>) => ctx.updateState((s) => ({ ticks: s.ticks + 1 }))
    }),
    ticks: Agent.action({ params: Schema.Struct({}), run: (_: {}, ctx: Agent.ActionContext<State>) => Effect.succeed(ctx.state.ticks) })
  }
})

const metadata: AgentRegistry.Metadata = { capabilities: ["count"], health: "healthy", node: "n1", resources: {} }

describe("Foundation.layer", () => {
  it.scoped("builds with the defaults: every service tag resolves, each started once, in tier order", () =>
    Effect.gen(function*() {
      const context = yield* build()
      for (const [name, tag] of tags) {
        expect(Option.isSome(Context.getOption(context, tag as Context.Tag<unknown, unknown>)), name).toBe(true)
      }
      const lifecycle = Context.get(context, Foundation.Lifecycle)
      const services = yield* lifecycle.services
      expect(services.map((s) => s.service)).toEqual(tags.map(([name]) => name))
      expect(services.every((s) => s.state === "running")).toBe(true)
      // Tiers start in order: observability, resilience, infrastructure, data, agents, integration.
      const tiers = services.map((s) => s.tier).filter((t, i, all) => all.indexOf(t) === i)
      expect(tiers).toEqual(["observability", "resilience", "infrastructure", "data", "agents", "integration"])
      expect(yield* lifecycle.isRunning("AgentRegistry")).toBe(true)
      expect(yield* lifecycle.isRunning("Nope")).toBe(false)
      // The defaults: a memory store, and the built-in health checks registered.
      expect(Context.get(context, Repository.RepositoryStore).kind).toBe("memory")
      const checker = Context.get(context, HealthChecker.HealthChecker)
      expect([...(yield* checker.names)].sort()).toEqual([...Foundation.builtInChecks].sort())
      const report = yield* checker.checkAll
      expect(report.status).toBe("healthy")
      expect(report.checks).toHaveLength(16)
      // The services are wired to each other: Consensus resolves ids with the Foundation's registry,
      // events reach the Foundation's bus.
      const registry = Context.get(context, AgentRegistry.AgentRegistry)
      const telemetry = Context.get(context, Telemetry.Telemetry)
      const seen = yield* Deferred.make<string>()
      yield* telemetry.attach("foundation.**", (event) => Deferred.succeed(seen, event.name))
      yield* registry.register("a1", metadata)
      expect(yield* Deferred.await(seen)).toBe(AgentRegistry.events.register)
    }))

  it.effect("resolve: the defaults, reading nothing but the environment", () =>
    Effect.gen(function*() {
      const settings = yield* Foundation.resolve().pipe(withEnv())
      expect(settings.store).toEqual({ _tag: "memory" })
      expect(settings.healthChecks).toBe(true)
      expect(settings.taskPools).toEqual({})
      expect(settings.resourceManager).toEqual({})
    }))

  const envVars = {
    FOUNDATION_STORE: "sqlite",
    FOUNDATION_SQLITE_FILE: ":memory:",
    FOUNDATION_CORES: "3",
    FOUNDATION_MAX_MEMORY_MB: "2048",
    FOUNDATION_MAX_ENTRIES: "5000",
    FOUNDATION_HEALTH_CHECKS: "false",
    FOUNDATION_HEALTH_CHECK_INTERVAL: "30 seconds"
  }

  it.scoped("reads its settings from the environment (Config)", () =>
    Effect.gen(function*() {
      const context = yield* build({}, envVars)
      expect(Context.get(context, Repository.RepositoryStore).kind).toBe("sqlite")
      const pools = Context.get(context, TaskPools.TaskPools)
      expect((yield* pools.stats("distributed_computation")).maxConcurrency).toBe(3)
      const limits = Context.get(context, ResourceManager.ResourceManager).limits
      expect(limits.maxMemoryMb).toBe(2048)
      expect(limits.maxEntries).toBe(5000)
      // No built-in checks; checks of one's own run every 30 s (the default is 60 s).
      const checker = Context.get(context, HealthChecker.HealthChecker)
      expect(yield* checker.names).toEqual([])
      yield* checker.register({ name: "mine", check: Effect.void })
      yield* Effect.yieldNow()
      yield* TestClock.adjust("30 seconds")
      yield* Effect.yieldNow()
      expect((yield* checker.report).checks[0]!.runs).toBe(2)
    }))

  it.scoped("an explicit setting wins over the environment; the store settings go together", () =>
    Effect.gen(function*() {
      const context = yield* build(
        { store: "memory", taskPools: { cores: 2 }, resourceManager: { maxMemoryMb: 512 }, healthChecks: true },
        envVars
      )
      // FOUNDATION_SQLITE_FILE is not read at all: the object chose the store.
      expect(Context.get(context, Repository.RepositoryStore).kind).toBe("memory")
      expect((yield* Context.get(context, TaskPools.TaskPools).stats("distributed_computation")).maxConcurrency).toBe(2)
      const limits = Context.get(context, ResourceManager.ResourceManager).limits
      expect(limits.maxMemoryMb).toBe(512)
      expect(limits.maxEntries).toBe(5000) // not set in the object: the environment's
      expect(yield* Context.get(context, HealthChecker.HealthChecker).names).toHaveLength(16)
      // An invalid environment value that an explicit one replaces is never read.
      const settings = yield* Foundation.resolve({ taskPools: { cores: 4 } }).pipe(withEnv({ FOUNDATION_CORES: "many" }))
      expect(settings.taskPools.cores).toBe(4)
    }))

  it.effect("a PostgreSQL URL from the environment stays secret", () =>
    Effect.gen(function*() {
      const settings = yield* Foundation.resolve().pipe(
        withEnv({ FOUNDATION_STORE: "pg", FOUNDATION_PG_URL: "postgres://app:s3cret@db:5432/app" })
      )
      expect(settings.store._tag).toBe("pg")
      expect(JSON.stringify(settings)).not.toContain("s3cret")
      if (settings.store._tag === "pg") expect(Redacted.value(settings.store.url)).toBe("postgres://app:s3cret@db:5432/app")
      const bad = failureOf(
        yield* Effect.exit(
          Foundation.resolve().pipe(withEnv({ FOUNDATION_STORE: "pg", FOUNDATION_PG_URL: "mysql://app:s3cret@db/app" }))
        )
      )
      expect(bad?.field).toBe("FOUNDATION_PG_URL")
      expect(bad?.message).not.toContain("s3cret")
    }))

  const invalid: ReadonlyArray<
    readonly [string, Foundation.FoundationConfig, Record<string, string>, string, string]
  > = [
    ["store pg without a URL", { store: "pg" }, {}, "pgUrl", `store "pg" needs a postgres:// URL`],
    ["store sqlite without a file", { store: "sqlite" }, {}, "sqliteFile", `store "sqlite" needs a database file`],
    [
      "a SQLite file with store pg",
      { store: "pg", pgUrl: "postgres://localhost/app", sqliteFile: "app.db" },
      {},
      "sqliteFile",
      `is only for store "sqlite", but store is "pg"`
    ],
    [
      "a PostgreSQL URL with the default store",
      { pgUrl: "postgres://localhost/app" },
      {},
      "pgUrl",
      `but the store is "memory" (the default)`
    ],
    ["an unknown store", { store: "redis" as Foundation.Store }, {}, "store", `must be one of "memory", "sqlite", "pg"`],
    ["FOUNDATION_STORE=pg without a URL", {}, { FOUNDATION_STORE: "pg" }, "FOUNDATION_PG_URL", `store "pg" needs`],
    [
      "FOUNDATION_SQLITE_FILE with FOUNDATION_STORE=pg",
      {},
      { FOUNDATION_STORE: "pg", FOUNDATION_PG_URL: "postgres://h/db", FOUNDATION_SQLITE_FILE: "x.db" },
      "FOUNDATION_SQLITE_FILE",
      `but FOUNDATION_STORE is "pg"`
    ],
    ["FOUNDATION_CORES not a number", {}, { FOUNDATION_CORES: "many" }, "FOUNDATION_CORES", `must be an integer, got "many"`],
    ["FOUNDATION_CORES zero", {}, { FOUNDATION_CORES: "0" }, "FOUNDATION_CORES", "must be ≥ 1"],
    ["FOUNDATION_MAX_ENTRIES empty", {}, { FOUNDATION_MAX_ENTRIES: " " }, "FOUNDATION_MAX_ENTRIES", "is set but empty"],
    ["FOUNDATION_HEALTH_CHECKS not a boolean", {}, { FOUNDATION_HEALTH_CHECKS: "maybe" }, "FOUNDATION_HEALTH_CHECKS", "true or false"],
    [
      "FOUNDATION_HEALTH_CHECK_INTERVAL not a duration",
      {},
      { FOUNDATION_HEALTH_CHECK_INTERVAL: "soon" },
      "FOUNDATION_HEALTH_CHECK_INTERVAL",
      "must be a duration"
    ],
    ["healthChecks not a boolean", { healthChecks: "yes" as unknown as boolean }, {}, "healthChecks", "must be a boolean"],
    [
      "contradictory resource thresholds",
      { resourceManager: { alertThreshold: 0.95, severeThreshold: 0.9 } },
      {},
      "resourceManager.severeThreshold",
      "must be greater than alertThreshold"
    ],
    ["a bad limiter", { rateLimiters: { api: { limit: 0 } } }, {}, "rateLimiters.api.limit", "≥ 1"],
    ["a bad cache default", { caches: { maxSize: -1 } }, {}, "caches.maxSize", "≥ 1"],
    ["a bad sampler option", { sampler: { maxEvents: 0 } }, {}, "sampler.maxEvents", "≥ 1"],
    ["taskPools.cores zero", { taskPools: { cores: 0 } }, {}, "taskPools.cores", "≥ 1"],
    ["a service option that is not an object", { locks: 5 as unknown as Lock.Options }, {}, "locks", "must be an object"]
  ]

  for (const [title, config, vars, field, reason] of invalid) {
    it.scoped(`fails before anything starts, naming the setting: ${title}`, () =>
      Effect.gen(function*() {
        const { lines, result: exit } = yield* capturingLogs(Effect.exit(build(config, vars)))
        const error = failureOf(exit)
        expect(error).toBeInstanceOf(ValidationError)
        expect(error).toMatchObject({ field })
        expect(error?.message).toContain(reason)
        expect(lines.filter((line) => line.includes("started"))).toEqual([])
      }))
  }

  it.scoped("the check that nothing started is meaningful: a valid configuration logs each start", () =>
    Effect.gen(function*() {
      const { lines } = yield* capturingLogs(build())
      expect(lines.filter((line) => line.includes("started"))).toHaveLength(tags.length)
      expect(lines[0]).toBe("Foundation: EventBus started")
    }))

  it.effect("every problem is reported at once", () =>
    Effect.gen(function*() {
      const error = failureOf(
        yield* Effect.exit(
          Foundation.resolve({ store: "pg", taskPools: { cores: 0 }, rateLimiters: { api: { window: 0 } } }).pipe(withEnv())
        )
      )
      expect(error?.field).toBe("pgUrl")
      expect(error?.issues?.map((i) => i.field)).toEqual(["pgUrl", "taskPools.cores", "rateLimiters.api.window"])
    }))

  it.effect("runs agents, schedules and monitors on the Clock; closing its scope stops everything and leaves no fiber", () =>
    Effect.gen(function*() {
      const baseline = (yield* Fiber.roots).length
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(Foundation.layer(), scope).pipe(withEnv())
      const work = Effect.gen(function*() {
        const registry = yield* AgentRegistry.AgentRegistry
        const agent = yield* registry.spawn(counter, { id: "worker", metadata })
        yield* (yield* Scheduler.Scheduler).schedule(agent, "beat", { every: "10 seconds", action: "tick", params: {} })
        yield* (yield* AgentMonitor.AgentMonitor).start("worker", { interval: "20 seconds" })
        yield* TestClock.adjust("35 seconds")
        const ticks = yield* agent.call("ticks", {})
        const monitor = yield* (yield* AgentMonitor.AgentMonitor).status("worker")
        return { ticks, checks: monitor.checks }
      })
      // The agent lives in the Foundation's scope: it is stopped with everything else.
      const result = yield* work.pipe(Effect.provide(context), Scope.extend(scope))
      expect(result).toEqual({ ticks: 3, checks: 2 })
      const running = (yield* Fiber.roots).length
      expect(running).toBeGreaterThan(baseline)
      const lifecycle = Context.get(context, Foundation.Lifecycle)
      yield* Scope.close(scope, Exit.void)
      expect((yield* Fiber.roots).length).toBe(baseline)
      expect((yield* lifecycle.services).every((s) => s.state === "stopped")).toBe(true)
    }))

  it.live("runtime: dispose stops every service in reverse order, ends calls in flight and leaves no fiber running", () =>
    Effect.gen(function*() {
      const baseline = (yield* Fiber.roots).length
      const runtime = Foundation.runtime()
      const lifecycle = yield* Effect.promise(() => runtime.runPromise(Foundation.Lifecycle))
      const ready = yield* Deferred.make<void>()
      const seenAtInterruption = yield* Deferred.make<Record<string, boolean>>()
      // A user program: an agent on a schedule, monitored, a consensus round and a barrier party
      // waiting, a lock waiter, and a task that never ends.
      const program = Effect.scoped(Effect.gen(function*() {
        const registry = yield* AgentRegistry.AgentRegistry
        const agent = yield* registry.spawn(counter, { id: "worker", metadata })
        yield* (yield* Scheduler.Scheduler).schedule(agent, "beat", { every: "1 hour", action: "tick", params: {} })
        yield* (yield* AgentMonitor.AgentMonitor).start("worker", { interval: "1 hour" })
        const coordination = yield* Protocols.CoordinationProtocol
        yield* coordination.startConsensus(["a", "b"], "deploy?", { timeout: "1 hour" })
        yield* coordination.createBarrier("sync", 2)
        yield* Effect.forkScoped(coordination.arriveAtBarrier("sync", "a"))
        yield* coordination.acquireLock("l", "holder")
        yield* Effect.forkScoped(coordination.acquireLock("l", "waiter").pipe(Effect.scoped))
        yield* Deferred.succeed(ready, undefined)
        return yield* (yield* TaskPools.TaskPools).execute(
          "monitoring",
          Effect.never.pipe(Effect.onInterrupt(() =>
            Effect.flatMap(
              Effect.all({
                AgentRegistry: lifecycle.isRunning("AgentRegistry"),
                TaskPools: lifecycle.isRunning("TaskPools"),
                EventBus: lifecycle.isRunning("EventBus")
              }),
              (seen) => Deferred.succeed(seenAtInterruption, seen)
            )
          ))
        )
      }))
      const fiber = runtime.runFork(program)
      yield* Effect.promise(() => runtime.runPromise(Deferred.await(ready)))
      expect((yield* Fiber.roots).length).toBeGreaterThan(baseline + 5)

      yield* Effect.promise(() => runtime.dispose())
      // The call in flight ended with a typed error, not a hang.
      const exit = yield* Fiber.await(fiber)
      expect(failureOf(exit)).toMatchObject({ _tag: "PoolShutdownError" })
      // When the pool interrupted the task, the tiers above had stopped, the ones below had not.
      expect(yield* Deferred.await(seenAtInterruption)).toEqual({ AgentRegistry: false, TaskPools: true, EventBus: true })
      expect((yield* Fiber.roots).length).toBe(baseline)

      const history = yield* lifecycle.history
      const started = history.filter((e) => e.event === "started").map((e) => e.service)
      const stopped = history.filter((e) => e.event === "stopped").map((e) => e.service)
      expect(started).toEqual(tags.map(([name]) => name))
      expect(stopped).toEqual([...started].reverse())
      expect(history.findIndex((e) => e.event === "stopped")).toBe(started.length)
    }))
})

const pgUrl = process.env["FOUNDATION_TEST_PG_URL"]

describe.skipIf(pgUrl === undefined)("Foundation on PostgreSQL", () => {
  it.scoped("store pg: the repository store is the PostgreSQL one", () =>
    Effect.gen(function*() {
      const context = yield* build({}, { FOUNDATION_STORE: "pg", FOUNDATION_PG_URL: pgUrl! })
      expect(Context.get(context, Repository.RepositoryStore).kind).toBe("pg")
    }))
})

describe("Foundation protocols", () => {
  it.scoped("the protocols resolve to the in-process implementations over the Foundation's services", () =>
    Effect.gen(function*() {
      const context = yield* build()
      const registry = Context.get(context, Protocols.RegistryProtocol)
      yield* registry.register("gpu-1", { ...metadata, capabilities: ["inference"] })
      const entry = yield* Context.get(context, AgentRegistry.AgentRegistry).lookup("gpu-1")
      expect(Option.map(entry, (e) => e.metadata.capabilities)).toEqual(Option.some(["inference"]))
      const infrastructure = Context.get(context, Protocols.InfrastructureProtocol)
      yield* infrastructure.registerCircuitBreaker("payments")
      expect(yield* Context.get(context, CircuitBreaker.CircuitBreakers).names).toEqual(["payments"])
      const coordination = Context.get(context, Protocols.CoordinationProtocol)
      yield* coordination.createBarrier("b", 1)
      expect((yield* Context.get(context, Barrier.Barriers).list).map((s) => s.name)).toEqual(["b"])
      yield* Protocols.verify({ registry: "1.1", coordination: "1.0", infrastructure: "1.0" }).pipe(Effect.provide(context))
    }))

  it.scoped("a protocol can be swapped for another implementation", () =>
    Effect.gen(function*() {
      const registered: Array<string> = []
      const remote: Protocols.RegistryService = {
        ...Protocols.fromAgentRegistry(yield* AgentRegistry.make()),
        version: "2.0.0",
        register: (id, md) =>
          Effect.sync(() => {
            registered.push(id)
            return { id, metadata: md, registeredAt: 0, updatedAt: 0 }
          })
      }
      const context = yield* Layer.build(
        Layer.provideMerge(Layer.succeed(Protocols.RegistryProtocol, remote), Foundation.layer())
      ).pipe(withEnv())
      const registry = Context.get(context, Protocols.RegistryProtocol)
      expect(registry.version).toBe("2.0.0")
      yield* registry.register("x", metadata)
      expect(registered).toEqual(["x"])
      // The Foundation's own registry did not see it; the other protocols are still the defaults.
      expect(yield* Context.get(context, AgentRegistry.AgentRegistry).count).toBe(0)
      expect(Context.get(context, Protocols.CoordinationProtocol).version).toBe("1.0.0")
      const refused = failureOf(yield* Effect.exit(Protocols.verify({ registry: "1.1" }).pipe(Effect.provide(context))))
      expect(refused).toMatchObject({ _tag: "IncompatibleProtocolError", protocol: "registry", version: "2.0.0" })
    }))
})

describe("Foundation example", () => {
  it.effect("the example runs", () =>
    Effect.gen(function*() {
      expect(yield* Example.program.pipe(withEnv())).toEqual({
        refused: `Invalid sqliteFile: is only for store "sqlite", but store is "pg" (and 1 more: pgUrl)`,
        inference: ["cpu-1", "gpu-1"],
        decision: "accepted",
        third: "RateLimitedError",
        health: "healthy",
        checks: 16,
        services: 22,
        firstStopped: "InfrastructureProtocol",
        lastStopped: "EventBus"
      })
    }))
})

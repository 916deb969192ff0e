import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, type Duration, Effect, Either, Exit, Fiber, Option, Ref, Scope, TestClock } from "effect"
import * as Example from "../../examples/dependency-manager.js"
import { ValidationError } from "../../src/errors/FoundationError.js"
import * as DependencyManager from "../../src/integration/DependencyManager.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as Telemetry from "../../src/observability/Telemetry.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const planOf = (services: ReadonlyArray<{ readonly name: string; readonly dependsOn?: ReadonlyArray<string> }>) =>
  DependencyManager.plan(services)

const leftOf = <A, E>(either: Either.Either<A, E>): E | undefined => Either.isLeft(either) ? either.left : undefined

/** Services that log their starts and stops. */
const harness = Effect.gen(function*() {
  const log = yield* Ref.make<ReadonlyArray<string>>([])
  const write = (line: string) => Ref.update(log, (l) => [...l, line])
  const service = (
    name: string,
    dependsOn: ReadonlyArray<string> = [],
    options: { readonly failStart?: boolean; readonly failStop?: boolean; readonly startTakes?: Duration.DurationInput } = {}
  ): DependencyManager.ServiceSpec<string> => ({
    name,
    dependsOn,
    start: Effect.gen(function*() {
      yield* write(`start ${name}`)
      if (options.startTakes !== undefined) yield* Effect.sleep(options.startTakes)
      if (options.failStart === true) return yield* Effect.fail(`${name} refused`)
      yield* write(`started ${name}`)
    }),
    stop: Effect.gen(function*() {
      if (options.failStop === true) return yield* Effect.fail(`${name} stuck`)
      yield* write(`stop ${name}`)
    })
  })
  return { log: Ref.get(log), clear: Ref.set(log, []), service }
})

describe("DependencyManager.plan", () => {
  it.effect("a chain starts from its end; a single service is its own plan", () =>
    Effect.sync(() => {
      const chain = Either.getOrThrow(planOf([{ name: "A", dependsOn: ["B"] }, { name: "B", dependsOn: ["C"] }, { name: "C" }]))
      expect(chain.order).toEqual(["C", "B", "A"])
      expect(chain.levels).toEqual([["C"], ["B"], ["A"]])
      expect(Either.getOrThrow(planOf([{ name: "S" }])).order).toEqual(["S"])
    }))

  it.effect("a diamond: every service after all its dependencies; ties in declaration order; waves", () =>
    Effect.sync(() => {
      const plan = Either.getOrThrow(planOf([
        { name: "A", dependsOn: ["B", "C"] },
        { name: "B", dependsOn: ["D"] },
        { name: "C", dependsOn: ["D", "E"] },
        { name: "D" },
        { name: "E" }
      ]))
      expect(plan.order).toEqual(["D", "E", "B", "C", "A"])
      expect(plan.levels).toEqual([["D", "E"], ["B", "C"], ["A"]])
      expect(plan.dependencies).toEqual({ A: ["B", "C"], B: ["D"], C: ["D", "E"], D: [], E: [] })
    }))

  it.effect("a dependency nobody declares is MISSING (not a cycle), with every missing name", () =>
    Effect.sync(() => {
      const error = leftOf(planOf([{ name: "api", dependsOn: ["db", "cache", "queue"] }, { name: "db" }]))
      expect(error).toBeInstanceOf(DependencyManager.MissingDependencyError)
      expect(error).toMatchObject({ service: "api", missing: ["cache", "queue"], category: "validation" })
      expect((error as Error).message).toBe(`Service "api" depends on undeclared "cache", "queue"`)
    }))

  it.effect("a cycle is reported as its actual path", () =>
    Effect.sync(() => {
      const cycle = (services: Parameters<typeof planOf>[0]) =>
        (leftOf(planOf(services)) as DependencyManager.DependencyCycleError).cycle
      expect(cycle([{ name: "a", dependsOn: ["b"] }, { name: "b", dependsOn: ["c"] }, { name: "c", dependsOn: ["a"] }])).toEqual(
        ["a", "b", "c", "a"]
      )
      expect(cycle([{ name: "a", dependsOn: ["b"] }, { name: "b", dependsOn: ["a"] }])).toEqual(["a", "b", "a"]) // the original said [a, a]
      expect(cycle([{ name: "a", dependsOn: ["a"] }])).toEqual(["a", "a"])
      // The cycle does not include the service the walk started from.
      expect(cycle([{ name: "x", dependsOn: ["y"] }, { name: "y", dependsOn: ["z"] }, { name: "z", dependsOn: ["y"] }])).toEqual(
        ["y", "z", "y"]
      )
      const error = leftOf(planOf([{ name: "a", dependsOn: ["b"] }, { name: "b", dependsOn: ["a"] }]))
      expect(error).toBeInstanceOf(DependencyManager.DependencyCycleError)
      expect((error as Error).message).toBe("Dependency cycle: a → b → a")
    }))

  it.effect("a long chain plans without overflowing the stack", () =>
    Effect.sync(() => {
      const n = 20_000
      const services = Array.from({ length: n }, (_, i) => ({ name: `s${i}`, dependsOn: i === 0 ? [] : [`s${i - 1}`] }))
      const plan = Either.getOrThrow(planOf(services))
      expect(plan.order[0]).toBe("s0")
      expect(plan.order[n - 1]).toBe(`s${n - 1}`)
      const cyclic = [...services.slice(1), { name: "s0", dependsOn: [`s${n - 1}`] }]
      expect((leftOf(planOf(cyclic)) as DependencyManager.DependencyCycleError).cycle).toHaveLength(n + 1)
    }))

  it.effect("bad declarations fail with ValidationError naming the field", () =>
    Effect.sync(() => {
      const field = (services: unknown) => (leftOf(DependencyManager.plan(services as never)) as ValidationError).field
      expect(field([{ name: "a" }, { name: "a" }])).toBe("dependencyManager.services.1.name")
      expect(field([{ name: "" }])).toBe("dependencyManager.services.0.name")
      expect(field([{ name: "a", dependsOn: "b" }])).toBe("dependencyManager.services.0.dependsOn")
      expect(field([{ name: "a", dependsOn: ["b", ""] }])).toBe("dependencyManager.services.0.dependsOn.1")
      expect(field("nope")).toBe("dependencyManager.services")
    }))
})

describe("DependencyManager", () => {
  it.scoped("startAll starts dependencies first; stopAll stops in reverse; status follows", () =>
    Effect.gen(function*() {
      const h = yield* harness
      const manager = yield* DependencyManager.make({
        services: [h.service("api", ["db", "cache"]), h.service("db", ["config"]), h.service("cache", ["config"]), h.service("config")]
      })
      expect(manager.order).toEqual(["config", "db", "cache", "api"])
      expect((yield* manager.status).map((s) => s.state)).toEqual(["stopped", "stopped", "stopped", "stopped"])
      yield* manager.startAll
      expect(yield* h.log).toEqual([
        "start config",
        "started config",
        "start db",
        "started db",
        "start cache",
        "started cache",
        "start api",
        "started api"
      ])
      const status = yield* manager.status
      expect(status.map((s) => [s.name, s.state])).toEqual([["config", "started"], ["db", "started"], ["cache", "started"], [
        "api",
        "started"
      ]])
      expect(status[3]).toMatchObject({ dependsOn: ["db", "cache"], startedAt: Option.some(0), lastFailure: Option.none() })
      yield* manager.startAll // nothing left to start
      expect((yield* h.log).length).toBe(8)
      yield* h.clear
      yield* manager.stopAll
      expect(yield* h.log).toEqual(["stop api", "stop cache", "stop db", "stop config"])
      expect((yield* manager.status).every((s) => s.state === "stopped")).toBe(true)
    }))

  it.scoped("a failed start stops what was started, in reverse, starts no dependent, and fails typed", () =>
    Effect.gen(function*() {
      const h = yield* harness
      const manager = yield* DependencyManager.make({
        services: [
          h.service("config"),
          h.service("db", ["config"], { failStart: true }),
          h.service("cache", ["config"]),
          h.service("api", ["db"])
        ]
      })
      const error = failureOf(yield* Effect.exit(manager.startAll))
      expect(error).toBeInstanceOf(DependencyManager.ServiceStartError)
      const start = error as DependencyManager.ServiceStartError<string>
      expect(start.service).toBe("db")
      expect(Cause.failureOption(start.cause)).toEqual(Option.some("db refused"))
      expect(start.stopped).toEqual(["config"])
      expect(start.category).toBe("system")
      // cache (same wave as db, declared after it) and api (depends on db) were never started.
      expect(yield* h.log).toEqual(["start config", "started config", "start db", "stop config"])
      const states = Object.fromEntries((yield* manager.status).map((s) => [s.name, s.state]))
      expect(states).toEqual({ config: "stopped", db: "failed", cache: "stopped", api: "stopped" })
      expect(Option.isSome((yield* manager.status).find((s) => s.name === "db")!.lastFailure)).toBe(true)
    }))

  it.scoped("concurrency: a wave's independent services start together; the next wave waits for it", () =>
    Effect.gen(function*() {
      const h = yield* harness
      const manager = yield* DependencyManager.make({
        concurrency: "unbounded",
        services: [
          h.service("a", [], { startTakes: "1 second" }),
          h.service("b", [], { startTakes: "2 seconds" }),
          h.service("c", ["a", "b"])
        ]
      })
      const fiber = yield* Effect.fork(manager.startAll)
      yield* TestClock.adjust("1 second")
      expect(yield* h.log).toEqual(["start a", "start b", "started a"])
      yield* TestClock.adjust("1 second") // 2 s, not 3 s: a and b started concurrently
      yield* Fiber.join(fiber)
      expect(yield* h.log).toEqual(["start a", "start b", "started a", "started b", "start c", "started c"])
      yield* h.clear
      yield* manager.stopAll
      expect(yield* h.log).toEqual(["stop c", "stop b", "stop a"]) // reverse of the order they finished starting
    }))

  it.scoped("concurrency: a failure in a wave lets its running siblings finish, then stops them too", () =>
    Effect.gen(function*() {
      const h = yield* harness
      const manager = yield* DependencyManager.make({
        concurrency: 2,
        services: [
          h.service("a", [], { startTakes: "1 second", failStart: true }),
          h.service("b", [], { startTakes: "2 seconds" }),
          h.service("c", ["b"])
        ]
      })
      const fiber = yield* Effect.fork(Effect.exit(manager.startAll))
      yield* TestClock.adjust("2 seconds")
      const error = failureOf(yield* Fiber.join(fiber)) as DependencyManager.ServiceStartError<string>
      expect([error.service, error.stopped]).toEqual(["a", ["b"]])
      expect(yield* h.log).toEqual(["start a", "start b", "started b", "stop b"])
    }))

  it.scoped("stopAll stops every service even when one fails to stop, and reports the failures", () =>
    Effect.gen(function*() {
      const h = yield* harness
      const manager = yield* DependencyManager.make({
        services: [h.service("a"), h.service("b", ["a"], { failStop: true }), h.service("c", ["b"])]
      })
      yield* manager.startAll
      yield* h.clear
      const error = failureOf(yield* Effect.exit(manager.stopAll))
      expect(error).toBeInstanceOf(DependencyManager.ServiceStopError)
      const failures = (error as DependencyManager.ServiceStopError).failures
      expect(failures.map((f) => [f.service, Option.getOrUndefined(Cause.failureOption(f.cause))])).toEqual([["b", "b stuck"]])
      expect(yield* h.log).toEqual(["stop c", "stop a"])
      expect((yield* manager.status).map((s) => s.state)).toEqual(["stopped", "failed", "stopped"])
    }))

  it.effect("closing the manager's scope stops the started services in reverse", () =>
    Effect.gen(function*() {
      const h = yield* harness
      const scope = yield* Scope.make()
      const manager = yield* DependencyManager.make({ services: [h.service("b", ["a"]), h.service("a")] }).pipe(Scope.extend(scope))
      yield* manager.startAll
      yield* h.clear
      yield* Scope.close(scope, Exit.void)
      expect(yield* h.log).toEqual(["stop b", "stop a"])
    }))

  it.scoped("make validates before anything starts; start and stop run with make's context", () =>
    Effect.gen(function*() {
      const h = yield* harness
      const exit = (options: DependencyManager.Options<ReadonlyArray<DependencyManager.ServiceSpec<unknown>>>) =>
        Effect.exit(DependencyManager.make(options))
      expect(failureOf(yield* exit({ services: [h.service("a", ["b"]), h.service("b", ["a"])] }))).toBeInstanceOf(
        DependencyManager.DependencyCycleError
      )
      expect(failureOf(yield* exit({ services: [h.service("a", ["zzz"])] }))).toBeInstanceOf(DependencyManager.MissingDependencyError)
      const field = (e: unknown) => (e as ValidationError).field
      expect(field(failureOf(yield* exit({ services: [h.service("a")], concurrency: 0 })))).toBe("dependencyManager.concurrency")
      expect(field(failureOf(yield* exit({ services: [{ name: "a", start: "go" as never }] })))).toBe(
        "dependencyManager.services.0.start"
      )
      expect(yield* h.log).toEqual([])

      class Config extends Context.Tag("Config")<Config, { readonly url: string }>() {}
      const seen: Array<string> = []
      const manager = yield* DependencyManager.make({
        services: [{ name: "db", start: Effect.map(Config, (c) => void seen.push(c.url)) }]
      }).pipe(Effect.provideService(Config, { url: "postgres://db" }))
      yield* manager.startAll // needs no Config: it was captured by make
      expect(seen).toEqual(["postgres://db"])
      // In types too: make needs what the start effects need, and startAll fails with their errors.
      const needsConfig = () =>
        DependencyManager.make({ services: [{ name: "db", start: Effect.flatMap(Config, () => Effect.fail(42 as const)) }] })
      // @ts-expect-error Config is not provided
      const unprovided: Effect.Effect<unknown, unknown, Scope.Scope> = needsConfig()
      const typed: Effect.Effect<
        DependencyManager.Manager<42>,
        ValidationError | DependencyManager.MissingDependencyError | DependencyManager.DependencyCycleError,
        Scope.Scope | Config
      > = needsConfig()
      expect([Effect.isEffect(unprovided), Effect.isEffect(typed)]).toEqual([true, true])
    }))

  it.scoped("telemetry: started, failed and stopped services", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.EventBus
      const sub = yield* bus.subscribe("foundation.service_integration.**", { capacity: 100 })
      const h = yield* harness
      const manager = yield* DependencyManager.make({
        name: "app",
        services: [h.service("a"), h.service("b", ["a"], { failStart: true })]
      })
      yield* Effect.exit(manager.startAll)
      const events = (yield* sub.takeAll).map((e) => [e.type, (e.data as Telemetry.TelemetryEvent).metadata])
      expect(events).toEqual([
        [DependencyManager.events.serviceStarted, { manager: "app", service: "a" }],
        [DependencyManager.events.serviceFailed, { manager: "app", service: "b", phase: "start", error: "Error: b refused" }],
        [DependencyManager.events.serviceStopped, { manager: "app", service: "a" }]
      ])
    }).pipe(Effect.provide(Telemetry.layerWithBus())))

  it.scoped("the example runs", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Example.program)
      yield* TestClock.adjust("1 minute")
      expect(yield* Fiber.join(fiber)).toEqual({
        order: ["config", "database", "cache", "api"],
        cycle: ["api", "database", "api"],
        missing: { service: "api", missing: ["queue"] },
        failed: { service: "cache", stopped: ["database", "config"] },
        log: ["start config", "start database", "start cache", "stop database", "stop config"]
      })
    }))
})

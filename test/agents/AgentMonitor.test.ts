import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Option, Ref, Schema, Stream, TestClock } from "effect"
import * as Example from "../../examples/agent-monitor.js"
import * as Agent from "../../src/agents/Agent.js"
import * as AgentMonitor from "../../src/agents/AgentMonitor.js"
import * as AgentRegistry from "../../src/agents/AgentRegistry.js"
import { NotFoundError, TimeoutError, ValidationError } from "../../src/errors/FoundationError.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as Telemetry from "../../src/observability/Telemetry.js"
import { drainTelemetry } from "../support/telemetry.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const metadata: AgentRegistry.Metadata = { capabilities: ["work"], health: "healthy", node: "n1", resources: {} }

const worker = Agent.define({
  name: "worker",
  state: Schema.Struct({ n: Schema.Number }),
  initial: { n: 0 },
  actions: {
    ping: Agent.action({ params: Schema.Struct({}), run: () => Effect.succeed("pong") }),
    crash: Agent.action({ params: Schema.Struct({}), run: () => Effect.die("boom") })
  }
})

/** Lets every ready fiber run, without moving the clock. */
const settle = Effect.repeatN(Effect.yieldNow(), 50)

/**
 * A registry whose `setHealth` calls are counted, and a monitor over it. `check` answers with
 * what `answer` holds: a health, "fail", or "hang".
 */
const setup = (options: AgentMonitor.Options = {}, registryOverrides: Partial<AgentRegistry.Registry> = {}) =>
  Effect.gen(function*() {
    const registry = yield* AgentRegistry.make()
    const writes = yield* Ref.make<ReadonlyArray<string>>([])
    const counted: AgentRegistry.Registry = {
      ...registry,
      setHealth: (id, health) => Effect.zipRight(Ref.update(writes, (w) => [...w, `${id}:${health}`]), registry.setHealth(id, health)),
      ...registryOverrides
    }
    const answer = yield* Ref.make<AgentMonitor.Health | "fail" | "hang">("healthy")
    const calls = yield* Ref.make(0)
    const check: AgentMonitor.Check = () =>
      Effect.zipRight(
        Ref.update(calls, (n) => n + 1),
        Effect.flatMap(Ref.get(answer), (a) =>
          a === "fail" ? Effect.fail("check failed") : a === "hang" ? Effect.never : Effect.succeed(a))
      )
    const monitor = yield* AgentMonitor.make({ check, ...options }).pipe(
      Effect.provideService(AgentRegistry.AgentRegistry, counted)
    )
    const health = (id: string) => Effect.map(registry.get(id), (e) => e.metadata.health)
    return { registry, monitor, writes, answer, calls, health }
  })

describe("AgentMonitor", () => {
  it.scoped("checks at once, then every 30 s, and writes the health into the registry only when it changes", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const agent = yield* h.registry.spawn(worker, { id: "w1", metadata })
      const started = yield* h.monitor.start(agent.id)
      expect(started.state).toBe("monitoring")
      yield* settle
      expect(yield* Ref.get(h.calls)).toBe(1) // at 0 ms
      yield* TestClock.adjust("29 seconds")
      expect(yield* Ref.get(h.calls)).toBe(1)
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(h.calls)).toBe(2) // at 30 s
      expect(yield* Ref.get(h.writes)).toEqual([]) // healthy already: nothing written
      yield* Ref.set(h.answer, "degraded")
      yield* TestClock.adjust("30 seconds")
      expect(yield* Ref.get(h.calls)).toBe(3) // at 60 s
      expect(yield* h.health("w1")).toBe("degraded")
      yield* TestClock.adjust("30 seconds")
      expect(yield* Ref.get(h.calls)).toBe(4)
      expect(yield* Ref.get(h.writes)).toEqual(["w1:degraded"])
      const status = yield* h.monitor.status("w1")
      expect(status.checks).toBe(4)
      expect(status.health).toEqual(Option.some("degraded"))
      expect(status.lastCheckAt).toEqual(Option.some(90_000))
      expect(status.lastOutcome).toEqual(Option.some("ok"))
    }))

  it.scoped("a check that takes longer than 5 s makes the agent unhealthy at once; the next check comes 30 s later", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.registry.spawn(worker, { id: "slow", metadata })
      yield* Ref.set(h.answer, "hang")
      yield* h.monitor.start("slow")
      yield* settle
      yield* TestClock.adjust("4999 millis")
      expect((yield* h.monitor.status("slow")).checks).toBe(0)
      expect(yield* h.health("slow")).toBe("healthy")
      yield* TestClock.adjust("1 millis")
      const status = yield* h.monitor.status("slow")
      expect(status.lastOutcome).toEqual(Option.some("timeout"))
      expect(status.health).toEqual(Option.some("unhealthy"))
      expect(Option.getOrUndefined(status.lastError)).toBeInstanceOf(TimeoutError)
      expect(yield* h.health("slow")).toBe("unhealthy")
      yield* Ref.set(h.answer, "healthy")
      yield* TestClock.adjust("29999 millis")
      expect(yield* Ref.get(h.calls)).toBe(1)
      yield* TestClock.adjust("1 millis") // 30 s after the timed-out check ended
      expect(yield* Ref.get(h.calls)).toBe(2)
      expect(yield* h.health("slow")).toBe("healthy")
      expect((yield* h.monitor.stats).timeouts).toBe(1)
    }))

  it.scoped("failed checks degrade, then make unhealthy at the unhealthyAfter-th in a row; a success resets", () =>
    Effect.gen(function*() {
      const h = yield* setup({ interval: "1 second", unhealthyAfter: 2 })
      yield* h.registry.spawn(worker, { id: "f", metadata })
      yield* Ref.set(h.answer, "fail")
      yield* h.monitor.start("f")
      yield* settle
      expect(yield* h.health("f")).toBe("degraded")
      expect((yield* h.monitor.status("f")).consecutiveFailures).toBe(1)
      expect(Option.getOrUndefined((yield* h.monitor.status("f")).lastError)).toBe("check failed")
      yield* TestClock.adjust("1 second")
      expect(yield* h.health("f")).toBe("unhealthy")
      yield* Ref.set(h.answer, "healthy")
      yield* TestClock.adjust("1 second")
      expect(yield* h.health("f")).toBe("healthy")
      expect((yield* h.monitor.status("f")).consecutiveFailures).toBe(0)
      yield* Ref.set(h.answer, "fail")
      yield* TestClock.adjust("1 second")
      expect(yield* h.health("f")).toBe("degraded") // the count restarted
      expect(yield* Ref.get(h.writes)).toEqual(["f:degraded", "f:unhealthy", "f:healthy", "f:degraded"])
      expect((yield* h.monitor.stats).failures).toBe(3)
    }))

  it.scoped("the default check: healthy while the agent runs; checks.call calls an action", () =>
    Effect.gen(function*() {
      const registry = yield* AgentRegistry.make()
      const monitor = yield* AgentMonitor.make().pipe(Effect.provideService(AgentRegistry.AgentRegistry, registry))
      yield* registry.spawn(worker, { id: "a", metadata: { ...metadata, health: "degraded" } })
      yield* registry.spawn(worker, { id: "b", metadata: { ...metadata, health: "unhealthy" } })
      yield* monitor.start("a")
      yield* monitor.start("b", { check: AgentMonitor.checks.call("ping") })
      yield* registry.register("plain", { ...metadata, health: "degraded" })
      yield* monitor.start("plain") // no reference: the default check keeps its health
      yield* settle
      const healthOf = (id: string) => Effect.map(registry.get(id), (e) => e.metadata.health)
      expect([yield* healthOf("a"), yield* healthOf("b"), yield* healthOf("plain")]).toEqual(["healthy", "healthy", "degraded"])
      expect(failureOf(yield* Effect.exit(monitor.start("c")))).toBeInstanceOf(NotFoundError) // not registered
      yield* registry.spawn(worker, { id: "a2", metadata })
      yield* monitor.start("a2", { check: AgentMonitor.checks.call("nope"), unhealthyAfter: 1 })
      yield* settle
      expect(yield* healthOf("a2")).toBe("unhealthy") // an unknown action fails the check
      expect(Option.getOrUndefined((yield* monitor.status("a2")).lastError)).toBeInstanceOf(ValidationError)
    }))

  it.scoped("an agent that ends is down at once: the monitor's fiber ends and nothing more is written", () =>
    Effect.gen(function*() {
      const h = yield* setup({ interval: "10 seconds" })
      const stopped = yield* h.registry.spawn(worker, { id: "s", metadata })
      const crashed = yield* h.registry.spawn(worker, { id: "c", metadata })
      yield* h.monitor.start("s")
      yield* h.monitor.start("c")
      yield* settle
      expect((yield* h.monitor.stats).fibers).toBe(2)
      yield* Ref.set(h.answer, "degraded") // would be written at every check if the monitors lived on
      yield* stopped.stop
      yield* Effect.exit(crashed.call("crash", {}))
      yield* settle // no clock movement: they learn of it from the registry, not from a check
      const s = yield* h.monitor.status("s")
      const c = yield* h.monitor.status("c")
      expect([s.state, Option.getOrUndefined(s.downReason), s.checks]).toEqual(["down", "unregistered", 1])
      expect([c.state, Option.getOrUndefined(c.downReason), c.checks]).toEqual(["down", "defect", 1])
      expect(s.endedAt).toEqual(Option.some(0))
      expect(yield* h.monitor.monitored).toEqual([])
      expect(yield* h.monitor.stats).toMatchObject({ active: 0, ended: 2, fibers: 0 })
      yield* TestClock.adjust("5 minutes")
      expect(yield* Ref.get(h.writes)).toEqual([])
      expect(yield* Ref.get(h.calls)).toBe(2)
      expect(Option.isNone(yield* h.registry.lookup("s"))).toBe(true) // never registered again
      expect(failureOf(yield* Effect.exit(h.monitor.checkNow("s")))).toBeInstanceOf(NotFoundError)
    }))

  it.scoped("no monitor outlives its agent: 50 agents stopped leave no fiber behind", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const agents = yield* Effect.forEach(Array.from({ length: 50 }, (_, i) => `a${i}`), (id) =>
        h.registry.spawn(worker, { id, metadata }))
      yield* Effect.forEach(agents, (a) => h.monitor.start(a.id))
      yield* settle
      expect(yield* h.monitor.stats).toMatchObject({ active: 50, fibers: 50, checks: 50 })
      yield* Effect.forEach(agents, (a) => a.stop)
      yield* settle
      expect(yield* h.monitor.stats).toMatchObject({ active: 0, ended: 50, fibers: 0, checks: 50 })
      yield* TestClock.adjust("1 minute")
      expect((yield* h.monitor.stats).checks).toBe(50)
    }))

  it.scoped("a check in progress when the entry is removed writes nothing: the entry is never brought back", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.registry.register("e", metadata)
      yield* Ref.set(h.answer, "hang")
      yield* h.monitor.start("e", { timeout: "1 minute" })
      yield* settle
      yield* h.registry.unregister("e")
      yield* settle
      yield* TestClock.adjust("2 minutes")
      expect(Option.isNone(yield* h.registry.lookup("e"))).toBe(true)
      expect(yield* Ref.get(h.writes)).toEqual([])
      expect((yield* h.monitor.status("e")).state).toBe("down")
    }))

  it.scoped("without the registry's changes, the next check finds the entry gone: down, and no write", () =>
    Effect.gen(function*() {
      // A registry whose change stream says nothing: only the check itself can notice.
      const h = yield* setup({ interval: "1 second" }, { changes: Effect.succeed(Stream.never) })
      yield* h.registry.register("q", metadata)
      yield* Ref.set(h.answer, "degraded")
      yield* h.monitor.start("q")
      yield* settle
      expect(yield* Ref.get(h.writes)).toEqual(["q:degraded"])
      yield* h.registry.unregister("q")
      yield* settle
      expect((yield* h.monitor.status("q")).state).toBe("monitoring") // nobody told it
      yield* TestClock.adjust("1 second")
      expect((yield* h.monitor.status("q")).state).toBe("down")
      expect(yield* Ref.get(h.writes)).toEqual(["q:degraded"])
      expect(Option.isNone(yield* h.registry.lookup("q"))).toBe(true)
      expect((yield* h.monitor.stats).fibers).toBe(0)
    }))

  it.scoped("a removal of an earlier registration still in the stream does not end the monitor of the new one", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.registry.register("other", metadata)
      yield* h.monitor.start("other") // the monitor subscribes to the registry's changes
      yield* h.registry.register("x", metadata)
      yield* settle
      // All in one go: the watcher reads the removal of the first "x" after the new "x" is monitored.
      yield* h.registry.unregister("x")
      yield* h.registry.register("x", metadata)
      yield* h.monitor.start("x")
      yield* settle
      expect((yield* h.monitor.status("x")).state).toBe("monitoring")
      yield* h.registry.unregister("x")
      yield* settle
      expect((yield* h.monitor.status("x")).state).toBe("down")
    }))

  it.scoped("checkNow checks at once and leaves the periodic checks where they were; start is idempotent; stop", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.registry.spawn(worker, { id: "n", metadata })
      yield* h.monitor.start("n")
      yield* settle
      yield* TestClock.adjust("10 seconds")
      yield* Ref.set(h.answer, "degraded")
      const now = yield* h.monitor.checkNow("n")
      expect([now.checks, Option.getOrUndefined(now.health)]).toEqual([2, "degraded"])
      expect(yield* h.health("n")).toBe("degraded")
      yield* TestClock.adjust("20 seconds") // 30 s: the periodic check, as planned
      expect(yield* Ref.get(h.calls)).toBe(3)
      const again = yield* h.monitor.start("n", { interval: "1 second" })
      expect(again.checks).toBe(3) // the same monitor
      expect((yield* h.monitor.stats).active).toBe(1)
      const all = yield* h.monitor.checkAll
      expect(all.map((s) => s.checks)).toEqual([4])
      yield* h.monitor.stop("n")
      expect(failureOf(yield* Effect.exit(h.monitor.status("n")))).toBeInstanceOf(NotFoundError)
      expect(failureOf(yield* Effect.exit(h.monitor.stop("n")))).toBeInstanceOf(NotFoundError)
      expect((yield* h.monitor.stats).fibers).toBe(0)
      yield* TestClock.adjust("1 minute")
      expect(yield* Ref.get(h.calls)).toBe(4)
    }))

  it.scoped("options are validated at the boundary, naming the field", () =>
    Effect.gen(function*() {
      const registry = yield* AgentRegistry.make()
      const make = (options: AgentMonitor.Options) =>
        Effect.flip(AgentMonitor.make(options).pipe(Effect.provideService(AgentRegistry.AgentRegistry, registry)))
      expect((yield* make({ interval: -1 })).field).toBe("agentMonitor.interval")
      expect((yield* make({ timeout: 0 })).field).toBe("agentMonitor.timeout")
      expect((yield* make({ unhealthyAfter: 0 })).field).toBe("agentMonitor.unhealthyAfter")
      expect((yield* make({ name: "" })).field).toBe("agentMonitor.name")
      expect((yield* make({ check: "x" as unknown as AgentMonitor.Check })).field).toBe("agentMonitor.check")
      const monitor = yield* AgentMonitor.make().pipe(Effect.provideService(AgentRegistry.AgentRegistry, registry))
      yield* registry.register("v", metadata)
      const bad = yield* Effect.flip(monitor.start("v", { interval: "soon" as unknown as number }))
      expect(bad).toBeInstanceOf(ValidationError)
      expect((bad as ValidationError).field).toBe("interval")
      expect(((yield* Effect.flip(monitor.start(""))) as ValidationError).field).toBe("id")
      expect(yield* monitor.monitored).toEqual([])
    }))

  it.scoped("emits started, health_changed, check_failed and agent_down events", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.EventBus
      const sub = yield* bus.subscribe("foundation.mabeam.agent_monitor.**", { capacity: 100 })
      const h = yield* setup({ name: "m", unhealthyAfter: 1 })
      const agent = yield* h.registry.spawn(worker, { id: "t", metadata })
      yield* Ref.set(h.answer, "fail")
      yield* h.monitor.start("t")
      yield* settle
      yield* agent.stop
      yield* settle
      const seen = yield* drainTelemetry(sub)
      const e = AgentMonitor.events
      expect(seen).toEqual([
        [e.started, { interval_ms: 30_000, timeout_ms: 5_000 }, { monitor: "m", agent_id: "t" }],
        [e.checkFailed, { count: 1, consecutive_failures: 1 }, { monitor: "m", agent_id: "t", reason: "failure", error: "check failed" }],
        [e.healthChanged, { count: 1 }, { monitor: "m", agent_id: "t", from: "unknown", to: "unhealthy" }],
        [e.agentDown, { count: 1, checks: 1 }, { monitor: "m", agent_id: "t", reason: "unregistered" }]
      ])
      expect(Object.values(e).every((n) => n.startsWith("foundation.mabeam.agent_monitor."))).toBe(true)
    }).pipe(Effect.provide(Telemetry.layerWithBus())))

  it.scoped("closing the service's scope stops every monitor", () =>
    Effect.gen(function*() {
      const registry = yield* AgentRegistry.make()
      yield* registry.register("z", metadata)
      const calls = yield* Ref.make(0)
      const check: AgentMonitor.Check = () => Effect.as(Ref.update(calls, (n) => n + 1), "healthy" as const)
      yield* Effect.scoped(Effect.gen(function*() {
        const monitor = yield* AgentMonitor.make({ check, interval: "1 second" })
        yield* monitor.start("z")
        yield* settle
        yield* TestClock.adjust("1 second")
      })).pipe(Effect.provideService(AgentRegistry.AgentRegistry, registry))
      expect(yield* Ref.get(calls)).toBe(2)
      yield* TestClock.adjust("1 minute")
      expect(yield* Ref.get(calls)).toBe(2)
    }))

  it.scoped("the example runs", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Example.program)
      yield* TestClock.adjust("2 minutes")
      const result = yield* fiber.await
      expect(Exit.isSuccess(result)).toBe(true)
      if (Exit.isSuccess(result)) {
        expect(result.value).toEqual({
          afterFirstCheck: "healthy",
          afterTimeout: "unhealthy",
          afterStop: { state: "down", reason: "unregistered" },
          monitored: []
        })
      }
    }))
})

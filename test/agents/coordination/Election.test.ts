import { describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Effect, Exit, Fiber, Option, Ref, Schema, Stream, TestClock } from "effect"
import * as Example from "../../../examples/election.js"
import * as Agent from "../../../src/agents/Agent.js"
import * as AgentRegistry from "../../../src/agents/AgentRegistry.js"
import * as Election from "../../../src/agents/coordination/Election.js"
import { ValidationError } from "../../../src/errors/FoundationError.js"
import * as EventBus from "../../../src/observability/EventBus.js"
import * as Telemetry from "../../../src/observability/Telemetry.js"
import { drainTelemetry } from "../../support/telemetry.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** Lets every ready fiber run, without moving the clock. */
const settle = Effect.repeatN(Effect.yieldNow(), 50)

const worker = Agent.define({
  name: "worker",
  state: Schema.Struct({}),
  initial: {},
  actions: {
    crash: Agent.action({ params: Schema.Struct({}), run: () => Effect.die("boom") })
  }
})

const meta = (overrides: Partial<AgentRegistry.Metadata> = {}): AgentRegistry.Metadata => ({
  capabilities: ["lead"],
  health: "healthy",
  node: "n1",
  resources: {},
  ...overrides
})

/** The leadership as a short line: `3 b lease_expired` (`-` for no leader). */
const line = (l: Election.Leadership) => `${l.term} ${Option.getOrElse(l.leader, () => "-")} ${l.reason}`

const spawn = (registry: AgentRegistry.Registry, id: string, metadata = meta()) => registry.spawn(worker, { id, metadata })

describe("Election", () => {
  it.scoped("the leader is the oldest eligible registration (then the id); others are passed over", () =>
    Effect.gen(function*() {
      const registry = yield* AgentRegistry.make()
      yield* spawn(registry, "sick", meta({ health: "unhealthy" }))
      yield* spawn(registry, "other", meta({ capabilities: ["cook"] }))
      yield* TestClock.adjust("1 millis")
      yield* spawn(registry, "c")
      yield* spawn(registry, "b")
      yield* TestClock.adjust("1 millis")
      yield* spawn(registry, "a")
      const election = yield* Election.make({ registry, capability: "lead" })
      const current = yield* election.current
      expect(line(current)).toBe("1 b elected") // b and c registered at 1 ms; a at 2 ms
      expect([current.since, current.expiresAt, current.previous]).toEqual([2, Option.some(15_002), Option.none()])
      expect(yield* election.leader).toEqual(Option.some("b"))
      // A custom order: the newest first.
      const newest = yield* Election.make({
        registry,
        capability: "lead",
        order: (x, y) => (x.registeredAt > y.registeredAt ? -1 : x.registeredAt < y.registeredAt ? 1 : 0)
      })
      expect(yield* newest.leader).toEqual(Option.some("a"))
    }))

  it.scoped("no capable agent: no leader (term 0); the first eligible one to register is elected", () =>
    Effect.gen(function*() {
      const registry = yield* AgentRegistry.make()
      const election = yield* Election.make({ registry, capability: "lead" })
      expect(line(yield* election.current)).toBe("0 - started")
      yield* spawn(registry, "cook", meta({ capabilities: ["cook"] }))
      yield* registry.register("degraded", meta({ health: "degraded" }))
      yield* settle
      expect(yield* election.leader).toEqual(Option.none())
      yield* TestClock.adjust("5 seconds")
      yield* spawn(registry, "x")
      yield* settle
      const current = yield* election.current
      expect([line(current), current.since]).toEqual(["1 x elected", 5000])
      // Another health allowed: degraded agents are candidates too.
      const lenient = yield* Election.make({ registry, capability: "lead", health: ["healthy", "degraded"] })
      expect(yield* lenient.leader).toEqual(Option.some("degraded"))
    }))

  it.scoped("the leader stops or crashes: the next candidate leads at once, term + 1", () =>
    Effect.gen(function*() {
      const registry = yield* AgentRegistry.make()
      const a = yield* spawn(registry, "a")
      const b = yield* spawn(registry, "b")
      yield* spawn(registry, "c")
      const election = yield* Election.make({ registry, capability: "lead" })
      yield* TestClock.adjust("2 seconds")
      yield* a.stop
      yield* settle
      const second = yield* election.current
      expect([line(second), second.since, second.previous]).toEqual(["2 b leader_unregistered", 2000, Option.some("a")])
      expect(Exit.isFailure(yield* Effect.exit(b.call("crash", {})))).toBe(true)
      yield* settle
      expect(line(yield* election.current)).toBe("3 c leader_down")
      // An explicit unregister counts too, and without candidates there is no leader.
      yield* registry.unregister("c")
      yield* settle
      expect(line(yield* election.current)).toBe("4 - leader_unregistered")
    }))

  it.scoped("a leader that becomes unhealthy or loses the capability is replaced", () =>
    Effect.gen(function*() {
      const registry = yield* AgentRegistry.make()
      yield* spawn(registry, "a")
      yield* spawn(registry, "b")
      const election = yield* Election.make({ registry, capability: "lead" })
      yield* registry.setHealth("a", "degraded")
      yield* settle
      expect(line(yield* election.current)).toBe("2 b leader_ineligible")
      // a is healthy again: a candidate, but b keeps the lead (no take-over).
      yield* registry.setHealth("a", "healthy")
      yield* registry.merge("b", { resources: { load: 1 } })
      yield* settle
      expect(line(yield* election.current)).toBe("2 b leader_ineligible")
      yield* registry.merge("b", { capabilities: ["cook"] })
      yield* settle
      expect(line(yield* election.current)).toBe("3 a leader_ineligible")
    }))

  it.scoped("renewal by the agent: a lease not renewed expires and the next candidate leads; the lapsed one is passed over until it renews", () =>
    Effect.gen(function*() {
      const registry = yield* AgentRegistry.make()
      yield* spawn(registry, "a")
      yield* TestClock.adjust("1 millis")
      yield* spawn(registry, "b")
      const election = yield* Election.make({ registry, capability: "lead", renewal: "agent", lease: "10 seconds" })
      expect(line(yield* election.current)).toBe("1 a elected") // lease until 10 001
      yield* TestClock.adjust("6 seconds")
      const renewed = yield* election.renew("a")
      expect([line(renewed), renewed.expiresAt]).toEqual(["1 a elected", Option.some(16_001)])
      yield* TestClock.adjust("9999 millis") // 16 000
      expect(line(yield* election.current)).toBe("1 a elected")
      yield* TestClock.adjust("1 millis") // 16 001: a did not renew
      const second = yield* election.current
      expect([line(second), second.since, second.previous]).toEqual(["2 b lease_expired", 16_001, Option.some("a")])
      // a is not the leader: its renew fails, but it is a candidate again.
      const notLeader = failureOf(yield* Effect.exit(election.renew("a")))
      expect(notLeader).toBeInstanceOf(Election.NotLeaderError)
      expect(notLeader).toMatchObject({ agent: "a", leader: Option.some("b") })
      // b lets its lease lapse too: a (no longer passed over) leads.
      yield* TestClock.adjust("10 seconds")
      expect(line(yield* election.current)).toBe("3 a lease_expired")
      // a lapses, b is passed over (lapsed, never renewed): nobody leads until one renews.
      yield* TestClock.adjust("10 seconds")
      expect(line(yield* election.current)).toBe("4 - lease_expired")
      const back = yield* election.renew({ id: "b" })
      expect([line(back), back.since]).toEqual(["5 b elected", 36_001])
    }))

  it.scoped("renewal by the service: renewed on its schedule while the leader is alive; when the check fails, the lease runs out", () =>
    Effect.gen(function*() {
      const registry = yield* AgentRegistry.make()
      yield* spawn(registry, "a")
      yield* TestClock.adjust("1 millis")
      yield* spawn(registry, "b")
      const alive = yield* Ref.make(new Set(["a", "b"]))
      const checks = yield* Ref.make(0)
      const election = yield* Election.make({
        registry,
        capability: "lead",
        lease: "3 seconds",
        renewEvery: "1 second",
        check: (entry) => Effect.zipRight(Ref.update(checks, (n) => n + 1), Effect.map(Ref.get(alive), (s) => s.has(entry.id)))
      })
      yield* TestClock.adjust("60 seconds")
      const steady = yield* election.current
      // Renewed at 1.001 s, 2.001 s, ..., 60.001 s.
      expect([line(steady), steady.expiresAt]).toEqual(["1 a elected", Option.some(63_001)])
      expect(yield* Ref.get(checks)).toBe(60)
      yield* Ref.update(alive, (s) => new Set([...s].filter((id) => id !== "a")))
      yield* TestClock.adjust("2999 millis") // the renewals at 61.001 s and 62.001 s fail: the lease runs to 63.001 s
      expect(line(yield* election.current)).toBe("1 a elected")
      yield* TestClock.adjust("2 millis")
      const second = yield* election.current
      expect([line(second), second.since]).toEqual(["2 b lease_expired", 63_001])
    }))

  it.scoped("renewal by the service with the default check: a running leader keeps its lease", () =>
    Effect.gen(function*() {
      const registry = yield* AgentRegistry.make()
      const a = yield* spawn(registry, "a")
      yield* spawn(registry, "b")
      const election = yield* Election.make({ registry, capability: "lead", lease: "3 seconds" })
      yield* TestClock.adjust("1 minute")
      const current = yield* election.current
      expect([line(current), current.expiresAt]).toEqual(["1 a elected", Option.some(63_000)]) // renewed every second (lease / 3), last at 60 s
      yield* a.stop
      yield* settle
      expect(line(yield* election.current)).toBe("2 b leader_unregistered")
    }))

  it.scoped("changes: the current leadership, then every change in term order", () =>
    Effect.gen(function*() {
      const registry = yield* AgentRegistry.make()
      const a = yield* spawn(registry, "a")
      yield* TestClock.adjust("1 millis")
      const b = yield* spawn(registry, "b")
      const election = yield* Election.make({ registry, capability: "lead", renewal: "agent", lease: "10 seconds" })
      const stream = yield* election.changes
      const seen = yield* Effect.fork(Stream.runCollect(Stream.take(stream, 6)))
      yield* settle
      yield* a.stop // 2: b
      yield* settle
      yield* TestClock.adjust("10 seconds") // 3: b's lease expires, nobody left
      yield* spawn(registry, "c") // 4: c
      yield* settle
      yield* b.stop // (not the leader: no change)
      yield* registry.setHealth("c", "unhealthy") // 5: nobody
      yield* settle
      yield* registry.setHealth("c", "healthy") // 6: c again
      const all = Chunk.toReadonlyArray(yield* Fiber.join(seen))
      expect(all.map(line)).toEqual([
        "1 a elected",
        "2 b leader_unregistered",
        "3 - lease_expired",
        "4 c elected",
        "5 - leader_ineligible",
        "6 c elected"
      ])
      expect(all.map((l) => l.previous)).toEqual([
        Option.none(),
        Option.some("a"),
        Option.some("b"),
        Option.none(),
        Option.some("c"),
        Option.none()
      ])
      // A late subscriber starts from the current leadership.
      const late = yield* Stream.runHead(yield* election.changes)
      expect(Option.map(late, line)).toEqual(Option.some("6 c elected"))
    }))

  it.scoped("renew: typed errors for non-candidates; validated options", () =>
    Effect.gen(function*() {
      const registry = yield* AgentRegistry.make()
      yield* spawn(registry, "a")
      yield* spawn(registry, "cook", meta({ capabilities: ["cook"] }))
      yield* spawn(registry, "sick", meta({ health: "unhealthy" }))
      const election = yield* Election.make({ registry, capability: "lead", name: "leaders" })
      const renewFails = (id: string) => Effect.map(Effect.exit(election.renew(id)), failureOf)
      expect(yield* renewFails("nobody")).toMatchObject({ _tag: "NotCandidateError", reason: "not registered" })
      expect(yield* renewFails("cook")).toMatchObject({ _tag: "NotCandidateError", reason: "it lacks the capability \"lead\"" })
      expect(yield* renewFails("sick")).toMatchObject({ _tag: "NotCandidateError", category: "permanent" })
      expect(yield* renewFails("")).toBeInstanceOf(ValidationError)
      const makeFails = (options: Election.Options) =>
        Effect.map(Effect.exit(Election.make({ registry, ...options })), failureOf)
      expect(yield* makeFails({ capability: "" })).toMatchObject({ field: "election.capability" })
      expect(yield* makeFails({ capability: "lead", lease: "1 second", renewEvery: "1 second" })).toMatchObject({
        field: "election.renewEvery"
      })
      expect(yield* makeFails({ capability: "lead", renewal: "agent", check: () => Effect.succeed(true) })).toMatchObject({
        field: "election.check"
      })
      expect(yield* makeFails({ capability: "lead", health: [] })).toMatchObject({ field: "election.health" })
      expect(yield* makeFails({ capability: "lead", health: ["fine" as AgentRegistry.Health] })).toMatchObject({
        field: "election.health.0"
      })
    }))

  it.scoped("emits leader_changed events", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.EventBus
      const sub = yield* bus.subscribe("foundation.mabeam.election.**", { capacity: 10 })
      const registry = yield* AgentRegistry.make()
      const a = yield* spawn(registry, "a")
      yield* Election.make({ registry, capability: "lead", name: "leaders" })
      yield* a.stop
      yield* settle
      const seen = yield* drainTelemetry(sub)
      const at = { election: "leaders", capability: "lead" }
      expect(seen).toEqual([
        [Election.events.leaderChanged, { term: 1 }, { ...at, leader: "a", previous: null, reason: "elected" }],
        [Election.events.leaderChanged, { term: 2 }, { ...at, leader: null, previous: "a", reason: "leader_unregistered" }]
      ])
    }).pipe(Effect.provide(Telemetry.layerWithBus())))

  it.effect("the example runs (on the TestClock)", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Example.program)
      yield* TestClock.adjust("1 minute")
      expect(yield* Fiber.join(fiber)).toEqual({
        first: "1 alpha elected",
        afterStop: "2 beta leader_unregistered",
        afterSilence: "3 gamma lease_expired",
        history: ["0 none started", "1 alpha elected", "2 beta leader_unregistered", "3 gamma lease_expired"]
      })
    }))
})

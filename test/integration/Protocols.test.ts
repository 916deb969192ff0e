import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Effect, Either, Exit, Fiber, Layer, Option, Ref, Scope, TestClock } from "effect"
import * as AgentRegistry from "../../src/agents/AgentRegistry.js"
import * as Barrier from "../../src/agents/coordination/Barrier.js"
import * as Consensus from "../../src/agents/coordination/Consensus.js"
import * as Lock from "../../src/agents/coordination/Lock.js"
import * as Criteria from "../../src/data/Criteria.js"
import { AlreadyExistsError, NotFoundError, ValidationError } from "../../src/errors/FoundationError.js"
import * as ResourceManager from "../../src/infra/ResourceManager.js"
import * as Protocols from "../../src/integration/Protocols.js"
import * as CircuitBreaker from "../../src/resilience/CircuitBreaker.js"
import * as RateLimiter from "../../src/resilience/RateLimiter.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** Lets every ready fiber run, without moving the clock. */
const settle = Effect.repeatN(Effect.yieldNow(), 50)

const pending = (fiber: Fiber.RuntimeFiber<unknown, unknown>) => Effect.map(Fiber.poll(fiber), Option.isNone)

/** The services the protocols delegate to, and the three protocols over them. */
const services = Layer.mergeAll(
  AgentRegistry.layer(),
  Consensus.layer(),
  Barrier.layer(),
  Lock.layer(),
  CircuitBreaker.layer({ trip: CircuitBreaker.consecutive(2), resetAfter: "30 seconds" }),
  RateLimiter.layer,
  ResourceManager.layer({ maxEntries: 100 }).pipe(Layer.provide(ResourceManager.memoryProbe(Effect.succeed(10))))
)
const protocols = Layer.provideMerge(Protocols.layer, services)

const setup = Effect.map(Layer.build(protocols), (context) => ({
  registry: Context.get(context, Protocols.RegistryProtocol),
  coordination: Context.get(context, Protocols.CoordinationProtocol),
  infrastructure: Context.get(context, Protocols.InfrastructureProtocol),
  agents: Context.get(context, AgentRegistry.AgentRegistry),
  barriers: Context.get(context, Barrier.Barriers),
  context
}))

const md = (capabilities: ReadonlyArray<string>, health: AgentRegistry.Health, node: string, memory: number): AgentRegistry.Metadata => ({
  capabilities,
  health,
  node,
  resources: { memory }
})

describe("Protocols: versions", () => {
  it("compatible: same major, at least the required minor.patch, compared as numbers", () => {
    expect(Protocols.compatible("1.1.0", "1.1")).toEqual(Either.right(true))
    expect(Protocols.compatible("1.10.0", "1.9")).toEqual(Either.right(true)) // the original's string compare said no
    expect(Protocols.compatible("1.9.0", "1.10")).toEqual(Either.right(false))
    expect(Protocols.compatible("1.1.0", "1.1.1")).toEqual(Either.right(false))
    expect(Protocols.compatible("2.0.0", "1.1")).toEqual(Either.right(false))
    const bad = Protocols.compatible("1.1.0", "1.x")
    expect(Either.isLeft(bad) && bad.left).toMatchObject({ _tag: "ValidationError", field: "required" })
  })

  it.scoped("verify checks the implementations in the context", () =>
    Effect.gen(function*() {
      const { context } = yield* setup
      yield* Protocols.verify({ registry: "1.1", coordination: "1.0.0", infrastructure: "1.0" }).pipe(Effect.provide(context))
      const tooOld = failureOf(yield* Effect.exit(Protocols.verify({ coordination: "1.2" }).pipe(Effect.provide(context))))
      expect(tooOld).toMatchObject({ _tag: "IncompatibleProtocolError", protocol: "coordination", version: "1.0.0", required: "1.2" })
      const missing = failureOf(yield* Effect.exit(Protocols.verify({ registry: "1.0" })))
      expect(missing).toMatchObject({ _tag: "IncompatibleProtocolError", protocol: "registry", version: "none" })
      const bad = failureOf(yield* Effect.exit(Protocols.verify({ registry: "one" })))
      expect(bad).toMatchObject({ _tag: "ValidationError", field: "required.registry" })
      expect(Protocols.versions).toEqual({ registry: "1.1.0", coordination: "1.0.0", infrastructure: "1.0.0" })
    }))
})

describe("Protocols: registry", () => {
  it.scoped("register, lookup, find by indexed attribute, query, list, update, unregister, count", () =>
    Effect.gen(function*() {
      const { agents, registry } = yield* setup
      expect(registry.version).toBe("1.1.0")
      expect(registry.indexedAttributes).toEqual(["capability", "health", "node"])
      yield* registry.register("a", md(["inference"], "healthy", "n1", 0.8))
      yield* registry.register("b", md(["inference", "training"], "degraded", "n2", 0.3))
      yield* registry.register("c", md(["etl"], "healthy", "n2", 0.6))
      expect(yield* registry.count).toBe(3)
      // The entries are the AgentRegistry's: the protocol is a view of it.
      expect(Option.isSome(yield* agents.lookup("b"))).toBe(true)

      const duplicate = failureOf(yield* Effect.exit(registry.register("a", md([], "healthy", "n1", 0))))
      expect(duplicate).toBeInstanceOf(AlreadyExistsError)
      const invalid = failureOf(yield* Effect.exit(registry.register("d", { ...md([], "healthy", "n1", 0), health: "fine" as AgentRegistry.Health })))
      expect(invalid).toBeInstanceOf(ValidationError)

      expect(Option.map(yield* registry.lookup("a"), (e) => e.metadata.node)).toEqual(Option.some("n1"))
      expect(yield* registry.lookup("zz")).toEqual(Option.none()) // not a bare error

      const ids = (entries: ReadonlyArray<Protocols.RegistryEntry>) => entries.map((e) => e.id).sort()
      expect(ids(yield* registry.findByAttribute("capability", "inference"))).toEqual(["a", "b"])
      expect(ids(yield* registry.findByAttribute("health", "healthy"))).toEqual(["a", "c"])
      expect(ids(yield* registry.findByAttribute("node", "n2"))).toEqual(["b", "c"])
      const unsupported = failureOf(yield* Effect.exit(registry.findByAttribute("color", "red")))
      expect(unsupported).toMatchObject({ _tag: "ValidationError", field: "attribute" })
      const badHealth = failureOf(yield* Effect.exit(registry.findByAttribute("health", "fine")))
      expect(badHealth).toMatchObject({ _tag: "ValidationError", field: "value" })

      // The original's criterion examples.
      expect(ids(yield* registry.query([Criteria.eq("capabilities", "inference"), Criteria.gte("resources.memory", 0.5)]))).toEqual(["a"])
      expect(ids(yield* registry.query(Criteria.isIn("health", ["degraded", "unhealthy"])))).toEqual(["b"])
      const badCriteria = failureOf(yield* Effect.exit(registry.query({ path: ["x"], op: "near", value: 1 } as unknown as Criteria.Criteria)))
      expect(badCriteria).toBeInstanceOf(ValidationError)

      expect(ids(yield* registry.listAll())).toEqual(["a", "b", "c"])
      expect(ids(yield* registry.listAll((m) => m.node === "n2"))).toEqual(["b", "c"])

      const updated = yield* registry.updateMetadata("c", md(["etl", "inference"], "healthy", "n3", 0.9))
      expect(updated.metadata.node).toBe("n3")
      expect(ids(yield* registry.findByAttribute("capability", "inference"))).toEqual(["a", "b", "c"])
      const missing = failureOf(yield* Effect.exit(registry.updateMetadata("zz", md([], "healthy", "n1", 0))))
      expect(missing).toBeInstanceOf(NotFoundError)

      yield* registry.unregister("a")
      expect(failureOf(yield* Effect.exit(registry.unregister("a")))).toBeInstanceOf(NotFoundError)
      expect(yield* registry.count).toBe(2)
    }))
})

describe("Protocols: coordination", () => {
  it.scoped("consensus: a round opened, voted, read while in progress and after", () =>
    Effect.gen(function*() {
      const { coordination } = yield* setup
      const round = yield* coordination.startConsensus(["a", "b", "c"], { deploy: "v2" }, { rule: Consensus.unanimous })
      yield* coordination.vote(round, "a", "yes")
      expect(yield* coordination.getConsensusResult(round)).toEqual(Option.none())
      const stranger = failureOf(yield* Effect.exit(coordination.vote(round, "z", "yes")))
      expect(stranger).toMatchObject({ _tag: "UnknownParticipantError" })
      const twice = failureOf(yield* Effect.exit(coordination.vote(round, "a", "no")))
      expect(twice).toMatchObject({ _tag: "DoubleVoteError" })
      yield* coordination.vote(round, "b", "yes")
      yield* coordination.vote(round, "c", "yes")
      const result = yield* coordination.awaitConsensus(round)
      expect(result).toMatchObject({ decision: "accepted", question: { deploy: "v2" } })
      expect(Option.map(yield* coordination.getConsensusResult(round), (r) => r.decision)).toEqual(Option.some("accepted"))
      expect(failureOf(yield* Effect.exit(coordination.getConsensusResult("nope")))).toBeInstanceOf(NotFoundError)
      const empty = failureOf(yield* Effect.exit(coordination.startConsensus([], "q")))
      expect(empty).toBeInstanceOf(ValidationError)
    }))

  it.scoped("consensus: the deadline runs on the Clock", () =>
    Effect.gen(function*() {
      const { coordination } = yield* setup
      const round = yield* coordination.startConsensus(["a", "b"], "q", { timeout: "10 seconds" })
      yield* coordination.vote(round, "a", "yes")
      const waiting = yield* Effect.fork(coordination.awaitConsensus(round))
      yield* TestClock.adjust("10 seconds")
      expect(yield* Fiber.join(waiting)).toMatchObject({ decision: "no_quorum", reason: "timed_out" })
    }))

  it.scoped("barrier: parties arrive and wait; a participant arrives once per generation; observers wait without arriving", () =>
    Effect.gen(function*() {
      const { barriers, coordination } = yield* setup
      yield* coordination.createBarrier("sync", 2)
      expect(failureOf(yield* Effect.exit(coordination.createBarrier("sync", 2)))).toBeInstanceOf(AlreadyExistsError)
      const observer = yield* Effect.fork(coordination.waitForBarrier("sync"))
      const a = yield* Effect.fork(coordination.arriveAtBarrier("sync", "a"))
      yield* settle
      expect(yield* pending(a)).toBe(true)
      expect(yield* pending(observer)).toBe(true)
      // "a" again, while its first arrival waits: refused, and it does not count as the second party.
      const again = failureOf(yield* Effect.exit(coordination.arriveAtBarrier("sync", "a")))
      expect(again).toMatchObject({ _tag: "AlreadyExistsError", key: "sync/a" })
      expect(yield* pending(a)).toBe(true)
      expect((yield* (yield* barriers.get("sync")).status).waiting).toBe(1)

      const b = yield* coordination.arriveAtBarrier("sync", "b")
      expect(b).toEqual({ generation: 0, index: 1 })
      expect(yield* Fiber.join(a)).toEqual({ generation: 0, index: 0 })
      yield* Fiber.join(observer)
      // A single-use barrier that tripped: waiting answers at once; arriving is refused.
      yield* coordination.waitForBarrier("sync")
      expect(failureOf(yield* Effect.exit(coordination.arriveAtBarrier("sync", "c")))).toMatchObject({
        _tag: "BarrierClosedError",
        reason: "tripped"
      })
      expect(failureOf(yield* Effect.exit(coordination.arriveAtBarrier("nope", "a")))).toBeInstanceOf(NotFoundError)
      expect(failureOf(yield* Effect.exit(coordination.waitForBarrier("nope")))).toBeInstanceOf(NotFoundError)
    }))

  it.scoped("barrier: cyclic generations; an observer's timeout does not break the barrier, a party's does", () =>
    Effect.gen(function*() {
      const { barriers, coordination } = yield* setup
      yield* coordination.createBarrier("cycle", 2, { cyclic: true })
      const a0 = yield* Effect.fork(coordination.arriveAtBarrier("cycle", "a"))
      yield* settle
      yield* coordination.arriveAtBarrier("cycle", "b")
      expect(yield* Fiber.join(a0)).toEqual({ generation: 0, index: 0 })
      // Generation 1: "a" may arrive again.
      const a1 = yield* Effect.fork(coordination.arriveAtBarrier("cycle", "a"))
      yield* settle
      const gaveUp = yield* Effect.fork(coordination.waitForBarrier("cycle", "5 seconds"))
      yield* settle
      yield* TestClock.adjust("5 seconds")
      expect(failureOf(yield* Fiber.await(gaveUp))).toMatchObject({
        _tag: "BarrierTimeoutError",
        generation: 1,
        arrived: 1,
        parties: 2
      })
      expect(yield* pending(a1)).toBe(true)
      expect((yield* (yield* barriers.get("cycle")).status).broken).toBe(false)
      // "b" completes generation 1.
      yield* coordination.arriveAtBarrier("cycle", "b")
      expect(yield* Fiber.join(a1)).toEqual({ generation: 1, index: 0 })

      // A party that times out breaks its generation: the other parties and the observers fail.
      yield* coordination.createBarrier("trio", 3)
      const a = yield* Effect.fork(coordination.arriveAtBarrier("trio", "a"))
      const observer = yield* Effect.fork(coordination.waitForBarrier("trio"))
      const impatient = yield* Effect.fork(coordination.arriveAtBarrier("trio", "b", "1 second"))
      yield* settle
      yield* TestClock.adjust("1 second")
      expect(failureOf(yield* Fiber.await(impatient))).toMatchObject({ _tag: "BarrierTimeoutError", arrived: 2 })
      expect(failureOf(yield* Fiber.await(a))).toMatchObject({ _tag: "BarrierBrokenError", reason: "timeout" })
      expect(failureOf(yield* Fiber.await(observer))).toMatchObject({ _tag: "BarrierBrokenError", generation: 0 })
      // Broken: later observers fail at once, as later parties do.
      expect(failureOf(yield* Effect.exit(coordination.waitForBarrier("trio")))).toMatchObject({ _tag: "BarrierBrokenError" })
    }))

  it.scoped("barrier: an interrupted party breaks its generation for the observers too", () =>
    Effect.gen(function*() {
      const { coordination } = yield* setup
      yield* coordination.createBarrier("pair", 2)
      const party = yield* Effect.fork(coordination.arriveAtBarrier("pair", "a"))
      const observer = yield* Effect.fork(coordination.waitForBarrier("pair"))
      yield* settle
      yield* Fiber.interrupt(party)
      expect(failureOf(yield* Fiber.await(observer))).toMatchObject({ _tag: "BarrierBrokenError", reason: "interrupted" })
    }))

  it.scoped("barrier: closing the services fails waiting parties and observers", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { coordination } = yield* setup.pipe(Scope.extend(scope))
      yield* coordination.createBarrier("closing", 3)
      const party = yield* Effect.fork(coordination.arriveAtBarrier("closing", "a"))
      const observer = yield* Effect.fork(coordination.waitForBarrier("closing"))
      yield* settle
      yield* Scope.close(scope, Exit.void)
      expect(failureOf(yield* Fiber.await(party))).toMatchObject({ _tag: "BarrierClosedError" })
      expect(failureOf(yield* Fiber.await(observer))).toMatchObject({ _tag: "BarrierClosedError" })
    }))

  it.scoped("locks: FIFO holders, timeouts on the Clock, release by lease", () =>
    Effect.gen(function*() {
      const { coordination } = yield* setup
      const lease = yield* coordination.acquireLock("db", "alice")
      expect(yield* coordination.lockStatus("db")).toMatchObject({ locked: true, holder: Option.some("alice") })
      const bob = yield* Effect.fork(Effect.scoped(coordination.acquireLock("db", "bob", "10 seconds")))
      yield* settle
      expect((yield* coordination.lockStatus("db")).waiters).toEqual(["bob"])
      yield* TestClock.adjust("10 seconds")
      expect(failureOf(yield* Fiber.await(bob))).toMatchObject({ _tag: "LockTimeoutError", lock: "db", holder: "bob" })
      const carol = yield* Effect.fork(Effect.scoped(coordination.acquireLock("db", "carol")))
      yield* settle
      expect(yield* coordination.releaseLock(lease)).toBe(true)
      expect(yield* coordination.releaseLock(lease)).toBe(false) // no longer the grant
      const carolLease = yield* Fiber.join(carol)
      expect(carolLease.holder).toBe("carol")
      expect(carolLease.token).toBeGreaterThan(lease.token)
    }))
})

describe("Protocols: infrastructure", () => {
  it.scoped("circuit breakers: registered once, calls through them, status", () =>
    Effect.gen(function*() {
      const { infrastructure } = yield* setup
      expect(infrastructure.version).toBe("1.0.0")
      expect(failureOf(yield* Effect.exit(infrastructure.executeProtected("payments", Effect.succeed(1))))).toBeInstanceOf(NotFoundError)
      expect(failureOf(yield* Effect.exit(infrastructure.circuitStatus("payments")))).toBeInstanceOf(NotFoundError)
      yield* infrastructure.registerCircuitBreaker("payments")
      expect(failureOf(yield* Effect.exit(infrastructure.registerCircuitBreaker("payments")))).toBeInstanceOf(AlreadyExistsError)
      expect(yield* infrastructure.executeProtected("payments", Effect.succeed(42))).toBe(42)
      // Two failures in a row trip it (the CircuitBreakers defaults: consecutive(2)).
      for (let i = 0; i < 2; i++) yield* Effect.exit(infrastructure.executeProtected("payments", Effect.fail("down")))
      expect(yield* infrastructure.circuitStatus("payments")).toBe("open")
      const rejected = failureOf(yield* Effect.exit(infrastructure.executeProtected("payments", Effect.succeed(1))))
      expect(rejected).toMatchObject({ _tag: "CircuitOpenError" })
      yield* TestClock.adjust("30 seconds")
      expect(yield* infrastructure.circuitStatus("payments")).toBe("half_open")
      // Options per breaker.
      yield* infrastructure.registerCircuitBreaker("search", { trip: CircuitBreaker.consecutive(1) })
      yield* Effect.exit(infrastructure.executeProtected("search", Effect.fail("down")))
      expect(yield* infrastructure.circuitStatus("search")).toBe("open")
      expect(failureOf(yield* Effect.exit(infrastructure.registerCircuitBreaker("bad", { successThreshold: 0 })))).toBeInstanceOf(
        ValidationError
      )
    }))

  it.scoped("concurrent registrations of one breaker: exactly one wins", () =>
    Effect.gen(function*() {
      const { infrastructure } = yield* setup
      const exits = yield* Effect.all(
        Array.from({ length: 5 }, () => Effect.exit(infrastructure.registerCircuitBreaker("x"))),
        { concurrency: "unbounded" }
      )
      expect(exits.filter(Exit.isSuccess)).toHaveLength(1)
      expect(exits.map(failureOf).filter((e) => e instanceof AlreadyExistsError)).toHaveLength(4)
    }))

  it.scoped("rate limiters: set up once, checked per identifier, denials consume nothing", () =>
    Effect.gen(function*() {
      const { infrastructure } = yield* setup
      expect(failureOf(yield* Effect.exit(infrastructure.checkRateLimit("api", "alice")))).toBeInstanceOf(NotFoundError)
      yield* infrastructure.setupRateLimiter("api", { limit: 2, window: "1 minute", algorithm: "fixed-window" })
      expect(failureOf(yield* Effect.exit(infrastructure.setupRateLimiter("api")))).toBeInstanceOf(AlreadyExistsError)
      yield* infrastructure.checkRateLimit("api", "alice")
      yield* infrastructure.checkRateLimit("api", "alice")
      const denied = failureOf(yield* Effect.exit(infrastructure.checkRateLimit("api", "alice")))
      expect(denied).toMatchObject({ _tag: "RateLimitedError", key: "alice" })
      expect(yield* infrastructure.checkRateLimit("api", "bob")).toMatchObject({ remaining: 1 })
      expect(yield* infrastructure.rateLimitStatus("api", "alice")).toMatchObject({ key: "alice", limit: 2, remaining: 0 })
      expect(failureOf(yield* Effect.exit(infrastructure.rateLimitStatus("nope", "alice")))).toBeInstanceOf(NotFoundError)
      expect(failureOf(yield* Effect.exit(infrastructure.setupRateLimiter("bad", { limit: -1 })))).toBeInstanceOf(ValidationError)
    }))

  it.scoped("resources: monitored by size while the scope lasts, measured on demand, in the backpressure level", () =>
    Effect.gen(function*() {
      const { infrastructure } = yield* setup
      const size = yield* Ref.make(10)
      const scope = yield* Scope.make()
      yield* infrastructure.monitorResource("queue", Ref.get(size)).pipe(Scope.extend(scope))
      expect(failureOf(yield* Effect.exit(infrastructure.monitorResource("queue", Effect.succeed(1)).pipe(Effect.scoped)))).toBeInstanceOf(
        AlreadyExistsError
      )
      expect(yield* infrastructure.resourceUsage("queue")).toEqual({ resource: "queue", size: 10, level: "normal" })
      yield* Ref.set(size, 96) // of 100 entries: above the severe threshold (0.95)
      expect(yield* infrastructure.resourceUsage("queue")).toEqual({ resource: "queue", size: 96, level: "severe" })
      expect(yield* infrastructure.level).toBe("severe")
      yield* Scope.close(scope, Exit.void)
      expect(failureOf(yield* Effect.exit(infrastructure.resourceUsage("queue")))).toBeInstanceOf(NotFoundError)
      expect(yield* infrastructure.level).toBe("normal")
    }))
})

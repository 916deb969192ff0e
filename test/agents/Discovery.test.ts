import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Either, Exit, FastCheck as fc, Fiber, Option, Random, Ref, Schema, TestClock } from "effect"
import * as Example from "../../examples/discovery.js"
import * as Agent from "../../src/agents/Agent.js"
import * as AgentRegistry from "../../src/agents/AgentRegistry.js"
import * as Discovery from "../../src/agents/Discovery.js"
import * as Criteria from "../../src/data/Criteria.js"
import { ValidationError } from "../../src/errors/FoundationError.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as Telemetry from "../../src/observability/Telemetry.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** The field a failed effect's ValidationError names. */
const fieldOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.flip(effect), (e) => {
    expect(e).toBeInstanceOf(ValidationError)
    return (e as ValidationError).field
  })

const meta = (
  capabilities: ReadonlyArray<string>,
  resources: Record<string, number> = {},
  health: AgentRegistry.Health = "healthy",
  node = "n1",
  extra: Record<string, AgentRegistry.Json> = {}
): AgentRegistry.Metadata => ({ capabilities, health, node, resources, ...extra })

/** A registry entry without an agent (for the pure functions). */
const entry = (id: string, resources: Record<string, number> = {}): AgentRegistry.Entry => ({
  id,
  metadata: meta(["work"], resources),
  ref: Option.none(),
  registeredAt: 0,
  updatedAt: 0
})

const ids = (entries: ReadonlyArray<{ readonly id: string }>) => entries.map((e) => e.id)

/** A distribution as `agent: items` lines. */
const shares = <I>(d: Discovery.Distribution<I>) => Object.fromEntries(d.assignments.map((a) => [a.agentId, a.items]))

const seeded = (seed: number) => Effect.withRandom(Random.make(seed))

/** Lets every ready fiber run, without moving the clock. */
const settle = Effect.repeatN(Effect.yieldNow(), 50)

/** A worker: `work` answers with its items (and fails on "bad"); sleeps `delay` ms while counting calls in flight. */
const makeWorker = (inFlight: Ref.Ref<{ now: number; max: number }>, delay = 0) =>
  Agent.define({
    name: "worker",
    state: Schema.Number,
    initial: 0,
    actions: {
      work: Agent.action({
        params: Schema.Array(Schema.String),
        run: (items: ReadonlyArray<string>, ctx: Agent.ActionContext<number>) =>
          Effect.gen(function*() {
            yield* Ref.update(inFlight, (s) => ({ now: s.now + 1, max: Math.max(s.max, s.now + 1) }))
            if (delay > 0) yield* Effect.sleep(delay)
            yield* Ref.update(inFlight, (s) => ({ ...s, now: s.now - 1 }))
            if (items.includes("bad")) return yield* Effect.fail(new Refused({ agent: ctx.id }))
            return `${ctx.id}:${items.join(",")}`
          })
      })
    }
  })

class Refused extends Schema.TaggedError<Refused>()("Refused", { agent: Schema.String }) {}

/** The registry of the `find` tests (registered out of id order). */
const population = Effect.gen(function*() {
  const registry = yield* AgentRegistry.make()
  yield* registry.register("e", meta(["y"], {}, "unhealthy"))
  yield* registry.register("d", meta(["x", "y"], { cpu_available: 0.9 }, "healthy", "n2", { tier: "gold" }))
  yield* registry.register("c", meta(["x", "y"], { cpu_available: 0.9 }, "degraded", "n2"))
  yield* registry.register("b", meta(["x"], { cpu_available: 0.9 }))
  yield* registry.register("a", meta(["x", "y"], { cpu_available: 0.2 }))
  return registry
})

describe("Discovery", () => {
  describe("find", () => {
    it.scoped("composes criteria: every capability, healthy only by default, node, resources, where; in id order", () =>
      Effect.gen(function*() {
        const registry = yield* population
        const d = Discovery.make(registry)
        // b lacks y, c is degraded, e unhealthy and lacks x.
        expect(ids(yield* d.find({ capabilities: ["x", "y"] }))).toEqual(["a", "d"])
        expect(ids(yield* d.find({ capabilities: ["x"] }))).toEqual(["a", "b", "d"])
        expect(ids(yield* d.find())).toEqual(["a", "b", "d"])
        expect(ids(yield* d.find({ capabilities: ["x", "y"], health: "any" }))).toEqual(["a", "c", "d"])
        expect(ids(yield* d.find({ capabilities: ["x", "y"], health: ["healthy", "degraded"] }))).toEqual(["a", "c", "d"])
        expect(ids(yield* d.find({ capabilities: ["y"], health: "unhealthy" }))).toEqual(["e"])
        expect(ids(yield* d.find({ capabilities: ["x", "y"], node: "n2" }))).toEqual(["d"])
        expect(ids(yield* d.find({ capabilities: ["x"], node: ["n1", "n2"], health: "any" }))).toEqual(["a", "b", "c", "d"])
        expect(ids(yield* d.find({ capabilities: ["x"], minResources: { cpu_available: 0.5 } }))).toEqual(["b", "d"])
        // A missing figure never passes a minimum (the original let it pass `gte`): e has none.
        expect(ids(yield* d.find({ capabilities: ["y"], health: "any", minResources: { cpu_available: 0 } }))).toEqual(["a", "c", "d"])
        expect(ids(yield* d.find({ where: Criteria.eq("tier", "gold") }))).toEqual(["d"])
        expect(ids(yield* d.find({ capabilities: ["x"], where: Criteria.neq("tier", "gold") }))).toEqual(["a", "b"])
        expect(ids(yield* d.find({ capabilities: ["x"], limit: 2 }))).toEqual(["a", "b"])
        expect(yield* d.find({ capabilities: ["nobody-has-this"] })).toEqual([])
        // Through the service.
        const viaService = yield* Discovery.find({ capabilities: ["x", "y"] }).pipe(
          Effect.provideService(AgentRegistry.AgentRegistry, registry)
        )
        expect(ids(viaService)).toEqual(["a", "d"])
      }))

    it.scoped("running: only agents the registry runs", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        const inFlight = yield* Ref.make({ now: 0, max: 0 })
        yield* registry.register("plain", meta(["x"]))
        yield* registry.spawn(makeWorker(inFlight), { id: "live", metadata: meta(["x"]) })
        const d = Discovery.make(registry)
        expect(ids(yield* d.find({ capabilities: ["x"] }))).toEqual(["live", "plain"])
        expect(ids(yield* d.find({ capabilities: ["x"], running: true }))).toEqual(["live"])
      }))

    it("criteriaOf: capabilities first (the registry reads their index), then node, health, resources, where", () => {
      const criteria = Discovery.criteriaOf({
        capabilities: ["x", "y"],
        node: ["n1", "n2"],
        minResources: { "cpu.free": 1 },
        where: Criteria.eq("tier", "gold")
      })
      expect(criteria).toEqual(Either.right([
        Criteria.eq("capabilities", "x"),
        Criteria.eq("capabilities", "y"),
        Criteria.isIn("node", ["n1", "n2"]),
        Criteria.eq("health", "healthy"),
        Criteria.where(["resources", "cpu.free"], "gte", 1),
        Criteria.eq("tier", "gold")
      ]))
      expect(Discovery.criteriaOf({ health: "any" })).toEqual(Either.right([]))
    })

    it.effect("a capability query reads the registry's index", () =>
      Effect.gen(function*() {
        const bus = yield* EventBus.EventBus
        const types = yield* Effect.scoped(Effect.gen(function*() {
          const sub = yield* bus.subscribe("foundation.mabeam.registry.query", { capacity: 10 })
          const registry = yield* AgentRegistry.make({ telemetry: "all" })
          yield* registry.register("a", meta(["x"]))
          const d = Discovery.make(registry)
          yield* d.find({ capabilities: ["x"], where: Criteria.gte("resources.load", 0) })
          yield* d.find({ health: "any", where: Criteria.gte("resources.load", 0) })
          const out: Array<unknown> = []
          for (;;) {
            const next = yield* sub.poll
            if (Option.isNone(next)) return out
            out.push((next.value.data as { metadata: { query_type: string } }).metadata.query_type)
          }
        }))
        expect(types).toEqual(["indexed", "scan"])
      }).pipe(Effect.provide(Telemetry.layerWithBus())))

    it.scoped("options are validated, naming the field", () =>
      Effect.gen(function*() {
        const d = Discovery.make(yield* population)
        const bad = (options: unknown) => fieldOf(d.find(options as Discovery.FindOptions))
        expect(yield* bad("x")).toBe("options")
        expect(yield* bad({ capabilities: "x" })).toBe("capabilities")
        expect(yield* bad({ capabilities: ["x", ""] })).toBe("capabilities.1")
        expect(yield* bad({ health: "sick" })).toBe("health")
        expect(yield* bad({ health: ["healthy", "any"] })).toBe("health.1")
        expect(yield* bad({ health: [] })).toBe("health")
        expect(yield* bad({ node: [] })).toBe("node")
        expect(yield* bad({ node: 3 })).toBe("node")
        expect(yield* bad({ minResources: { cpu: Number.NaN } })).toBe("minResources.cpu")
        expect(yield* bad({ where: { path: ["tier"], op: "like", value: "g" } })).toBe("where.op")
        expect(yield* bad({ where: [Criteria.eq("a", 1), { path: [], op: "eq", value: 1 }] })).toBe("where.1.path")
        expect(yield* bad({ running: "yes" })).toBe("running")
        expect(yield* bad({ limit: 0 })).toBe("limit")
      }))
  })

  describe("select", () => {
    const pool = [
      entry("c", { memory_available: 0.5, cpu_available: 0.5, load: 2 }),
      entry("a", { memory_available: 0.9, cpu_available: 0.1, load: 2 }),
      entry("d", { memory_available: 0.2, cpu_available: 0.9, load: 0.5 }),
      entry("b", { memory_available: 0.3, cpu_available: 0.3, load: 7 }),
      entry("e", { cpu_available: 0.95 })
    ]

    it.effect("greedy: most available first (memory + cpu by default, or the keys given), ties by id", () =>
      Effect.gen(function*() {
        // a 1.0, c 1.0 (tie: a first), d 1.1, b 0.6, e 0.95
        expect(ids(yield* Discovery.select(pool, "greedy"))).toEqual(["d", "a", "c", "e", "b"])
        expect(ids(yield* Discovery.select(pool, "greedy", { count: 2 }))).toEqual(["d", "a"])
        expect(ids(yield* Discovery.select(pool, "greedy", { availableKeys: "cpu_available" }))).toEqual(["e", "d", "c", "b", "a"])
      }))

    it.effect("balanced: least reported load first, ties by id; a missing load reads as missingLoad", () =>
      Effect.gen(function*() {
        expect(ids(yield* Discovery.select(pool, "balanced"))).toEqual(["e", "d", "a", "c", "b"])
        expect(ids(yield* Discovery.select(pool, "balanced", { missingLoad: 100 }))).toEqual(["d", "a", "c", "b", "e"])
        expect(ids(yield* Discovery.select(pool, "balanced", { loadKey: "memory_available", count: 3 }))).toEqual(["e", "d", "b"])
        expect(yield* Discovery.select(pool, "balanced", { count: 0 })).toEqual([])
        expect(ids(yield* Discovery.select(pool, "balanced", { count: 99 }))).toHaveLength(5)
      }))

    it.effect("random: reproducible from a seed, whatever the input order; different seeds differ", () =>
      Effect.gen(function*() {
        const many = Array.from({ length: 20 }, (_, i) => entry(`agent-${String(i).padStart(2, "0")}`))
        const first = ids(yield* Discovery.select(many, "random").pipe(seeded(42)))
        const again = ids(yield* Discovery.select([...many].reverse(), "random").pipe(seeded(42)))
        const other = ids(yield* Discovery.select(many, "random").pipe(seeded(43)))
        expect(again).toEqual(first)
        expect(other).not.toEqual(first)
        expect([...first].sort()).toEqual(ids(many)) // a permutation
        expect(first).not.toEqual(ids(many)) // not the input order
        const three = ids(yield* Discovery.select(many, "random", { count: 3 }).pipe(seeded(42)))
        expect(three).toHaveLength(3)
        expect(new Set(three).size).toBe(3)
        expect(three).toEqual(ids(yield* Discovery.select([...many].reverse(), "random", { count: 3 }).pipe(seeded(42))))
      }))

    it.effect("arguments are validated, naming the field", () =>
      Effect.gen(function*() {
        expect(yield* fieldOf(Discovery.select(pool, "fastest" as Discovery.Strategy))).toBe("strategy")
        expect(yield* fieldOf(Discovery.select(pool, "greedy", { count: -1 }))).toBe("count")
        expect(yield* fieldOf(Discovery.select(pool, "greedy", { availableKeys: [] }))).toBe("availableKeys")
        expect(yield* fieldOf(Discovery.select(pool, "balanced", { loadKey: "" }))).toBe("loadKey")
        expect(yield* fieldOf(Discovery.select(pool, "balanced", { missingLoad: Infinity }))).toBe("missingLoad")
        expect(yield* fieldOf(Discovery.select("all" as unknown as ReadonlyArray<AgentRegistry.Entry>, "greedy"))).toBe("entries")
        expect(yield* fieldOf(Discovery.select([pool[0]!, { id: 3 } as unknown as AgentRegistry.Entry], "greedy"))).toBe("entries.1")
      }))
  })

  describe("assign", () => {
    const items = (n: number) => Array.from({ length: n }, (_, i) => `i${i + 1}`)

    it.effect("balanced: water-fills by load plus what each agent was given, ties by id", () =>
      Effect.gen(function*() {
        const agents = [entry("a", { load: 4 }), entry("c", { load: 2 }), entry("b", { load: 0 })]
        const d = yield* Discovery.assign(agents, items(9))
        // b 0→3, then b and c in turn to 4, then a, b, c to 5 (the original gave all nine to b).
        expect(shares(d)).toEqual({
          a: ["i7"],
          b: ["i1", "i2", "i3", "i5", "i8"],
          c: ["i4", "i6", "i9"]
        })
        expect(ids(d.assignments.map((x) => ({ id: x.agentId })))).toEqual(["a", "b", "c"])
        expect(d.assignments.map((x) => x.load)).toEqual([5, 5, 5])
        expect(d.unassigned).toEqual([])
        // Fractional loads, with the load one item adds.
        const f = yield* Discovery.assign(
          [entry("a", { cpu: 0.5 }), entry("b", { cpu: 0 })],
          items(5),
          { loadKey: "cpu", itemLoad: 0.25 }
        )
        expect(shares(f)).toEqual({ a: ["i3", "i5"], b: ["i1", "i2", "i4"] })
        expect(f.assignments.map((x) => x.load)).toEqual([1, 0.75])
      }))

    it.effect("capacity: no agent above it (a number, or each agent's own figure); the rest is unassigned", () =>
      Effect.gen(function*() {
        const agents = [entry("a", { load: 4 }), entry("b", { load: 0 }), entry("c", { load: 2 })]
        const d = yield* Discovery.assign(agents, items(6), { capacity: 3 })
        // a is above 3 already: nothing; b takes 3 (its tie with c at 2 goes to b), c takes 1.
        expect(shares(d)).toEqual({ b: ["i1", "i2", "i3"], c: ["i4"] })
        expect(d.unassigned).toEqual(["i5", "i6"])
        const own = yield* Discovery.assign(
          [entry("a", { load: 0, max: 1 }), entry("b", { load: 1, max: 3 }), entry("u", { load: 5 })],
          items(8),
          { capacity: "max" }
        )
        // u has no figure: no ceiling.
        expect(shares(own)).toEqual({ a: ["i1"], b: ["i2", "i3"], u: ["i4", "i5", "i6", "i7", "i8"] })
        const perAgent = yield* Discovery.assign([entry("a"), entry("b")], items(5), { maxPerAgent: 2 })
        expect(shares(perAgent)).toEqual({ a: ["i1", "i3"], b: ["i2", "i4"] })
        expect(perAgent.unassigned).toEqual(["i5"])
        expect(yield* Discovery.assign([], items(2))).toEqual({ assignments: [], unassigned: ["i1", "i2"] })
      }))

    it.effect("greedy: fills the most available agent up to its limit, then the next", () =>
      Effect.gen(function*() {
        const agents = [
          entry("a", { cpu_available: 0.2, load: 0 }),
          entry("b", { cpu_available: 0.9, load: 1 }),
          entry("c", { cpu_available: 0.5, load: 0 })
        ]
        const d = yield* Discovery.assign(agents, items(7), { strategy: "greedy", capacity: 3 })
        expect(shares(d)).toEqual({ a: ["i6", "i7"], b: ["i1", "i2"], c: ["i3", "i4", "i5"] })
        const all = yield* Discovery.assign(agents, items(3), { strategy: "greedy" })
        expect(shares(all)).toEqual({ b: ["i1", "i2", "i3"] })
      }))

    it.effect("random: reproducible from a seed, within capacity", () =>
      Effect.gen(function*() {
        const agents = Array.from({ length: 6 }, (_, i) => entry(`a${i}`, { load: i % 3 }))
        const run = (seed: number, list = agents) =>
          Discovery.assign(list, items(12), { strategy: "random", capacity: 3 }).pipe(seeded(seed))
        const first = yield* run(1)
        expect(yield* run(1, [...agents].reverse())).toEqual(first)
        expect(shares(yield* run(2))).not.toEqual(shares(first))
        for (const a of first.assignments) expect(a.load).toBeLessThanOrEqual(3)
        expect(first.assignments.flatMap((a) => a.items).sort()).toEqual(items(12).sort())
      }))

    it.effect("spreads many items over many agents evenly (a heap: no scan per item)", () =>
      Effect.gen(function*() {
        const agents = Array.from({ length: 1_000 }, (_, i) => entry(`w${String(i).padStart(4, "0")}`, { load: i % 2 }))
        const d = yield* Discovery.assign(agents, Array.from({ length: 99_500 }, (_, i) => i))
        const sizes = d.assignments.map((a) => a.items.length)
        // Loads 0 and 1 (500 each) plus 99,500 items: every agent ends at exactly 100.
        expect(new Set(d.assignments.map((a) => a.load))).toEqual(new Set([100]))
        expect(new Set(sizes.filter((_, i) => i % 2 === 0))).toEqual(new Set([100]))
        expect(new Set(sizes.filter((_, i) => i % 2 === 1))).toEqual(new Set([99]))
      }))

    it.effect("options are validated, naming the field", () =>
      Effect.gen(function*() {
        const agents = [entry("a")]
        const bad = (options: unknown, list: unknown = ["x"]) =>
          fieldOf(Discovery.assign(agents, list as Array<string>, options as Discovery.AssignOptions))
        expect(yield* bad({ strategy: "round_robin" })).toBe("strategy")
        expect(yield* bad({ itemLoad: 0 })).toBe("itemLoad")
        expect(yield* bad({ capacity: Number.NaN })).toBe("capacity")
        expect(yield* bad({ capacity: "" })).toBe("capacity")
        expect(yield* bad({ maxPerAgent: 1.5 })).toBe("maxPerAgent")
        expect(yield* bad({}, 42)).toBe("items")
      }))

    const arbitraries = {
      loads: fc.array(fc.integer({ min: 0, max: 10 }), { minLength: 1, maxLength: 8 }),
      capacity: fc.option(fc.integer({ min: 0, max: 15 }), { nil: undefined }),
      maxPerAgent: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
      itemLoad: fc.constantFrom(1, 2, 0.5),
      n: fc.integer({ min: 0, max: 60 }),
      strategy: fc.constantFrom<Discovery.Strategy>("balanced", "greedy", "random"),
      seed: fc.integer()
    }

    // Plain `it.prop` with `runSync` (the plan is synchronous): `it.effect.prop` costs ~20 ms a run.
    it.prop(
      "never above capacity or maxPerAgent; every item once; all assigned when there is room, else exactly the room",
      arbitraries,
      ({ capacity, itemLoad, loads, maxPerAgent, n, seed, strategy }) => {
        const agents = loads.map((load, i) => entry(`a${i}`, { load, cpu_available: (i * 7) % 5 }))
        const list = items(n)
        const d = Effect.runSync(
          Discovery.assign(agents, list, { strategy, capacity, maxPerAgent, itemLoad }).pipe(seeded(seed))
        )
        const room = loads.reduce((sum, load) => {
          const byCapacity = capacity === undefined ? Infinity : Math.max(0, Math.floor((capacity - load) / itemLoad + 1e-9))
          return sum + Math.min(byCapacity, maxPerAgent ?? Infinity)
        }, 0)
        for (const a of d.assignments) {
          expect(a.items.length).toBeGreaterThan(0)
          if (capacity !== undefined) expect(a.load).toBeLessThanOrEqual(capacity + 1e-9)
          if (maxPerAgent !== undefined) expect(a.items.length).toBeLessThanOrEqual(maxPerAgent)
          // Items keep their input order within an agent.
          expect([...a.items].sort((x, y) => list.indexOf(x) - list.indexOf(y))).toEqual(a.items)
        }
        const assigned = d.assignments.flatMap((a) => a.items)
        expect([...assigned, ...d.unassigned].sort()).toEqual([...list].sort())
        expect(d.unassigned.length).toBe(Math.max(0, n - room))
        expect(d.unassigned).toEqual(list.slice(n - d.unassigned.length))
      },
      { fastCheck: { numRuns: 300 } }
    )

    it.prop(
      "balanced without limits is water-filling: an agent given items ends at most one item above the least loaded",
      { loads: arbitraries.loads, n: arbitraries.n },
      ({ loads, n }) => {
        const agents = loads.map((load, i) => entry(`a${i}`, { load }))
        const d = Effect.runSync(Discovery.assign(agents, items(n)))
        const final = agents.map((a, i) => d.assignments.find((x) => x.agentId === a.id)?.load ?? loads[i]!)
        const lowest = Math.min(...final)
        for (const a of d.assignments) expect(a.load - 1).toBeLessThanOrEqual(lowest)
      },
      { fastCheck: { numRuns: 300 } }
    )
  })

  describe("distribute and dispatch", () => {
    it.scoped("distribute: over the capable healthy agents found, by load", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        yield* registry.register("a", meta(["x"], { load: 2 }))
        yield* registry.register("b", meta(["x"], { load: 0 }))
        yield* registry.register("sick", meta(["x"], { load: 0 }, "unhealthy"))
        yield* registry.register("other", meta(["y"], { load: 0 }))
        const d = yield* Discovery.distribute(["j1", "j2", "j3", "j4"], { capabilities: ["x"] }).pipe(
          Effect.provideService(AgentRegistry.AgentRegistry, registry)
        )
        // b 0 → 2, then the tie at 2 goes to a, then b.
        expect(shares(d)).toEqual({ a: ["j3"], b: ["j1", "j2", "j4"] })
        expect(d.assignments[0]!.entry.metadata.resources).toEqual({ load: 2 })
        expect(Option.isNone(d.assignments[0]!.ref)).toBe(true)
      }))

    it.scoped("no capable agent: NoCapableAgentsError (transient), after validation", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        yield* registry.register("sick", meta(["x"], {}, "degraded"))
        const d = Discovery.make(registry)
        const error = failureOf(yield* Effect.exit(d.distribute(["j1"], { capabilities: ["x"] })))
        expect(error).toBeInstanceOf(Discovery.NoCapableAgentsError)
        expect(error).toMatchObject({ purpose: "distribute", capabilities: ["x"], health: ["healthy"], category: "transient" })
        expect((error as Discovery.NoCapableAgentsError).message).toBe("No agents to distribute to (capabilities x; healthy)")
        // With health "any" the degraded one counts.
        expect(shares(yield* d.distribute(["j1"], { capabilities: ["x"], health: "any" }))).toEqual({ sick: ["j1"] })
        // Bad input is reported before anyone is looked for.
        expect(yield* fieldOf(d.distribute(["j1"], { capabilities: ["z"], capacity: -Infinity }))).toBe("capacity")
      }))

    it.scoped("dispatch: each agent running the definition is called with its share, within the concurrency limit", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        const inFlight = yield* Ref.make({ now: 0, max: 0 })
        const worker = makeWorker(inFlight, 1_000)
        const otherKind = makeWorker(inFlight)
        for (const [id, load] of [["w1", 0], ["w2", 0], ["w3", 1], ["w4", 1]] as const) {
          yield* registry.spawn(worker, { id, metadata: meta(["work"], { load }) })
        }
        yield* registry.spawn(otherKind, { id: "w0", metadata: meta(["work"]) }) // another definition
        yield* registry.register("plain", meta(["work"])) // no agent to call
        const fiber = yield* Effect.fork(
          Discovery.make(registry).dispatch(["a", "b", "c", "bad", "e", "f"], {
            capabilities: ["work"],
            definition: worker,
            action: "work",
            params: (items) => items,
            concurrency: 2
          })
        )
        yield* settle
        expect((yield* Ref.get(inFlight)).now).toBe(2)
        yield* TestClock.adjust("1 second")
        yield* settle
        expect((yield* Ref.get(inFlight)).now).toBe(2)
        yield* TestClock.adjust("1 second")
        const { outcomes, unassigned } = yield* Fiber.join(fiber)
        expect(unassigned).toEqual([])
        // Loads 0, 0, 1, 1: a and b even them out, then one each in id order.
        expect(outcomes.map((o) => o.agentId)).toEqual(["w1", "w2", "w3", "w4"])
        expect(outcomes.map((o) => o.items)).toEqual([["a", "c"], ["b", "bad"], ["e"], ["f"]])
        expect(outcomes.map((o) => Either.isRight(o.result) ? o.result.right : o.result.left._tag)).toEqual([
          "w1:a,c",
          "Refused",
          "w3:e",
          "w4:f"
        ])
        expect(yield* Ref.get(inFlight)).toEqual({ now: 0, max: 2 })
      }))

    it.scoped("dispatch: NoCapableAgentsError when no agent runs the definition; options validated", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        const inFlight = yield* Ref.make({ now: 0, max: 0 })
        const worker = makeWorker(inFlight)
        yield* registry.spawn(makeWorker(inFlight), { id: "w0", metadata: meta(["work"]) })
        const d = Discovery.make(registry)
        const options = { capabilities: ["work"], definition: worker, action: "work" as const, params: (items: ReadonlyArray<string>) => items }
        const error = failureOf(yield* Effect.exit(d.dispatch(["a"], options)))
        expect(error).toBeInstanceOf(Discovery.NoCapableAgentsError)
        expect(error).toMatchObject({ purpose: "dispatch" })
        const bad = (extra: Record<string, unknown>) =>
          fieldOf(d.dispatch(["a"], { ...options, ...extra } as unknown as typeof options))
        expect(yield* bad({ action: "play" })).toBe("action")
        expect(yield* bad({ definition: null })).toBe("definition")
        expect(yield* bad({ params: "items" })).toBe("params")
        expect(yield* bad({ concurrency: 0 })).toBe("concurrency")
        expect(yield* bad({ timeout: -1 })).toBe("timeout")
      }))

    it.effect("telemetry: distributed, no_capable_agents and dispatched events", () =>
      Effect.gen(function*() {
        const bus = yield* EventBus.EventBus
        const seen = yield* Effect.scoped(Effect.gen(function*() {
          const sub = yield* bus.subscribe("foundation.mabeam.discovery.*", { capacity: 10 })
          const registry = yield* AgentRegistry.make()
          const inFlight = yield* Ref.make({ now: 0, max: 0 })
          const worker = makeWorker(inFlight)
          yield* registry.spawn(worker, { id: "w", metadata: meta(["work"], { load: 0 }) })
          const d = Discovery.make(registry)
          yield* d.distribute([1, 2, 3], { capabilities: ["work"], capacity: 2 })
          yield* Effect.exit(d.distribute([1], { capabilities: ["none"] }))
          yield* d.dispatch(["a", "bad"], { capabilities: ["work"], definition: worker, action: "work", params: (i) => i })
          const out: Array<{ name: string; measurements: Record<string, number>; metadata: Record<string, unknown> }> = []
          for (;;) {
            const next = yield* sub.poll
            if (Option.isNone(next)) return out
            const data = next.value.data as { measurements: Record<string, number>; metadata: Record<string, unknown> }
            out.push({ name: next.value.type, ...data })
          }
        }))
        const e = Discovery.events
        expect(seen.map((x) => x.name)).toEqual([e.distributed, e.noCapableAgents, e.distributed, e.dispatched])
        expect(seen[0]).toMatchObject({
          measurements: { items: 3, assigned: 2, unassigned: 1, agents: 1, candidates: 1 },
          metadata: { operation: "distribute", strategy: "balanced", capabilities: ["work"] }
        })
        expect(seen[1]).toMatchObject({ measurements: { count: 1, items: 1 }, metadata: { operation: "distribute", capabilities: ["none"] } })
        expect(seen[3]).toMatchObject({
          measurements: { agents: 1, items: 2, succeeded: 0, failed: 1 },
          metadata: { definition: "worker", action: "work" }
        })
      }).pipe(Effect.provide(Telemetry.layerWithBus())))
  })

  it.effect("the example gives what the README says", () =>
    Effect.gen(function*() {
      expect(yield* Example.program).toEqual({
        inEurope: ["enc-a", "enc-b"],
        idle: ["enc-a", "enc-d"],
        leastLoaded: ["enc-a", "enc-d"],
        lucky: ["enc-b"],
        answers: ["enc-a encoded f1 f2 f4 f6 f9", "enc-b encoded f7 f10", "enc-d encoded f3 f5 f8 f11"],
        unassigned: ["f12"]
      })
    }))
})

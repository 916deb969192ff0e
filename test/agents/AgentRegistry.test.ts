import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Effect,
  Either,
  Exit,
  FastCheck as fc,
  Option,
  Ref,
  Schema,
  Scope,
  Stream,
  TestClock
} from "effect"
import * as Agent from "../../src/agents/Agent.js"
import * as AgentRegistry from "../../src/agents/AgentRegistry.js"
import * as Supervisor from "../../src/agents/Supervisor.js"
import * as Criteria from "../../src/data/Criteria.js"
import { AlreadyExistsError, NotFoundError, ValidationError } from "../../src/errors/FoundationError.js"
import * as Batch from "../../src/infra/Batch.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as Telemetry from "../../src/observability/Telemetry.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** The original tests' default metadata. */
const meta = (overrides: Partial<Record<keyof AgentRegistry.Metadata, unknown>> = {}): AgentRegistry.Metadata =>
  ({
    capabilities: ["inference", "training"],
    health: "healthy",
    node: "node1",
    resources: { memory_usage: 0.3, cpu_usage: 0.2, memory_available: 0.7, cpu_available: 0.8 },
    ...overrides
  }) as AgentRegistry.Metadata

const ids = (entries: ReadonlyArray<AgentRegistry.Entry>) => entries.map((e) => e.id).sort()

/** A change as a short line: `Registered a`, `Down b defect`. */
const describeChange = (c: AgentRegistry.Change): string =>
  c._tag === "Down" ? `Down ${c.entry.id} ${c.reason}` : `${c._tag} ${c.entry.id}`

/** The changes seen so far on a subscription (without waiting). */
const drain = (changes: Stream.Stream<AgentRegistry.Change>, n: number) =>
  Effect.map(Stream.runCollect(Stream.take(changes, n)), (c) => Chunk.toReadonlyArray(c).map(describeChange))

/** Lets other fibers run until `done` holds (bounded). */
const until = (done: Effect.Effect<boolean>, what = "condition") =>
  Effect.gen(function*() {
    for (let i = 0; i < 2000; i++) {
      if (yield* done) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage(`not reached: ${what}`)
  })

class Refused extends Schema.TaggedError<Refused>()("Refused", { reason: Schema.String }) {}

/** A worker agent: `ping` answers, `crash` dies, `quit` interrupts itself, `refuse` fails (typed). */
const Worker = Agent.define({
  name: "worker",
  state: Schema.Number,
  initial: 0,
  actions: {
    ping: Agent.action({
      params: Schema.Struct({}),
      run: (_: {}, ctx: Agent.ActionContext<number>) => Effect.as(ctx.updateState((n) => n + 1), `pong ${ctx.id}`)
    }),
    crash: Agent.action({ params: Schema.Struct({}), run: () => Effect.die("boom") }),
    quit: Agent.action({ params: Schema.Struct({}), run: () => Effect.interrupt }),
    refuse: Agent.action({ params: Schema.Struct({}), run: () => Effect.fail(new Refused({ reason: "no" })) }),
    whoami: Agent.action({
      params: Schema.Struct({}),
      run: (_: {}, ctx: Agent.ActionContext<number>) => Effect.succeed(ctx.self.definition.name as string)
    })
  }
})

/** An agent whose start fails (a typed failure of the incarnation). */
const FailsToStart = Agent.define({
  name: "fails-to-start",
  state: Schema.Number,
  initial: 0,
  actions: {},
  hooks: { onStart: () => Effect.fail(new Refused({ reason: "no start" })) }
})

describe("AgentRegistry", () => {
  describe("validation", () => {
    it.scoped("lists every missing required field once, in order, in one error", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        const error = yield* Effect.flip(registry.register("a", { capabilities: ["inference"] } as never))
        expect(error).toBeInstanceOf(ValidationError)
        const v = error as ValidationError
        expect(v.field).toBe("metadata")
        expect(v.reason).toBe("missing required fields: health, node, resources")
        expect(v.issues).toEqual([
          { field: "metadata.health", reason: "is required" },
          { field: "metadata.node", reason: "is required" },
          { field: "metadata.resources", reason: "is required" }
        ])
        const none = (yield* Effect.flip(registry.register("a", {} as never))) as ValidationError
        expect(none.reason).toBe("missing required fields: capabilities, health, node, resources")
        expect(none.issues).toHaveLength(4)
        // A null counts as missing too.
        const nullNode = (yield* Effect.flip(registry.register("a", meta({ node: null })))) as ValidationError
        expect(nullNode.reason).toBe("missing required fields: node")
        expect(yield* registry.count).toBe(0)
      }))

    it.scoped("an invalid health names the allowed values; every other problem names its field", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        const health = (yield* Effect.flip(registry.register("a", meta({ health: "invalid_status" })))) as ValidationError
        expect(health.field).toBe("metadata.health")
        expect(health.reason).toContain(`"healthy", "degraded", "unhealthy"`)
        expect(health.reason).toContain("invalid_status")

        const many = (yield* Effect.flip(
          registry.register("a", meta({
            capabilities: ["ok", ""],
            health: "sick",
            node: 3,
            resources: { cpu: "lots", memory: Number.NaN },
            callback: () => 1,
            nested: { deep: [1, Number.POSITIVE_INFINITY] }
          }))
        )) as ValidationError
        expect(many.issues?.map((i) => i.field)).toEqual([
          "metadata.capabilities.1",
          "metadata.health",
          "metadata.node",
          "metadata.resources.cpu",
          "metadata.resources.memory",
          "metadata.callback",
          "metadata.nested.deep.1"
        ])
        expect(many.field).toBe("metadata.capabilities.1")
        expect(((yield* Effect.flip(registry.register("a", meta({ capabilities: "inference" })))) as ValidationError).field).toBe(
          "metadata.capabilities"
        )
        expect(((yield* Effect.flip(registry.register("", meta()))) as ValidationError).field).toBe("id")
        expect((yield* Effect.flip(registry.findBy({ health: "fine" as AgentRegistry.Health }))).reason).toContain(
          `"healthy", "degraded", "unhealthy"`
        )
        expect(((yield* Effect.flip(registry.setHealth("a", "fine" as AgentRegistry.Health))) as ValidationError).field).toBe(
          "health"
        )
        expect((yield* Effect.flip(AgentRegistry.make({ changesCapacity: 0 }))).field).toBe("agentRegistry.changesCapacity")
        expect(yield* registry.count).toBe(0)
      }))

    it.scoped("stores a frozen copy: the caller's object cannot put the indexes out of step", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        const capabilities = ["inference"]
        const input = meta({ capabilities, team: { name: "a" } })
        const entry = yield* registry.register("a", input)
        capabilities.push("training")
        ;(input as { health: string }).health = "unhealthy"
        expect(entry.metadata.capabilities).toEqual(["inference"])
        expect(Object.isFrozen(entry.metadata)).toBe(true)
        expect(Object.isFrozen(entry.metadata.capabilities)).toBe(true)
        expect(yield* registry.findBy({ capability: "training" })).toEqual([])
        expect(ids(yield* registry.findBy({ health: "healthy" }))).toEqual(["a"])
        expect(entry.metadata["team"]).toEqual({ name: "a" })
      }))

    it("MetadataSchema agrees with the registry's check on JSON input", () => {
      const decodes = Schema.is(AgentRegistry.MetadataSchema)
      const json = fc.jsonValue({ maxDepth: 2 })
      const field = (good: fc.Arbitrary<unknown>) => fc.oneof(good, json, fc.constant(undefined))
      const input = fc.record({
        capabilities: field(fc.array(fc.constantFrom("a", "b", ""), { maxLength: 3 })),
        health: field(fc.constantFrom("healthy", "degraded", "unhealthy", "sick")),
        node: field(fc.constantFrom("n1", "")),
        resources: field(fc.dictionary(fc.constantFrom("cpu", "mem"), fc.oneof(fc.double(), fc.string()))),
        extra: field(json)
      }, { requiredKeys: [] }).map((r) => JSON.parse(JSON.stringify(r)) as unknown)
      fc.assert(
        fc.property(input, (m) => Either.isRight(AgentRegistry.validateMetadata(m)) === decodes(m)),
        { numRuns: 500 }
      )
      expect(Either.isRight(AgentRegistry.validateMetadata(meta()))).toBe(true)
    })
  })

  describe("entries", () => {
    it.scoped("register, lookup, get, count, list and unregister; a duplicate id is refused and the first kept", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        yield* TestClock.adjust(1000)
        const a = yield* registry.register("a", meta())
        expect(a).toMatchObject({ id: "a", registeredAt: 1000, updatedAt: 1000 })
        expect(Option.isNone(a.ref)).toBe(true)
        const duplicate = yield* Effect.flip(registry.register("a", meta({ node: "node2" })))
        expect(duplicate).toBeInstanceOf(AlreadyExistsError)
        expect((yield* registry.get("a")).metadata.node).toBe("node1")
        expect(yield* registry.lookup("a")).toEqual(Option.some(a))
        expect(yield* registry.lookup("nobody")).toEqual(Option.none())
        expect(yield* Effect.flip(registry.get("nobody"))).toBeInstanceOf(NotFoundError)
        yield* registry.register("b", meta({ resources: { memory_usage: 0.9 } }))
        expect(yield* registry.count).toBe(2)
        expect(ids(yield* registry.list())).toEqual(["a", "b"])
        expect(ids(yield* registry.list((e) => (e.metadata.resources["memory_usage"] ?? 0) > 0.8))).toEqual(["b"])
        expect(yield* registry.unregister("a")).toEqual(a)
        expect(yield* registry.lookup("a")).toEqual(Option.none())
        expect(yield* registry.findBy({ capability: "inference" })).toHaveLength(1)
        expect(yield* Effect.flip(registry.unregister("a"))).toBeInstanceOf(NotFoundError)
        expect(yield* registry.count).toBe(1)
      }))

    it.scoped("update replaces, merge merges, setHealth sets the health; a bad change leaves the entry as it was", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        yield* registry.register("a", meta({ team: "blue", version: 1 }))
        yield* TestClock.adjust(500)
        const replaced = yield* registry.update("a", meta({ capabilities: ["training"], health: "degraded", version: 2 }))
        expect(replaced.metadata).toEqual(meta({ capabilities: ["training"], health: "degraded", version: 2 }))
        expect(replaced.metadata["team"]).toBeUndefined() // a full replacement, as in the original
        expect(replaced).toMatchObject({ registeredAt: 0, updatedAt: 500 })

        const merged = yield* registry.merge("a", { node: "node2", team: "red", version: undefined })
        expect(merged.metadata).toEqual(meta({ capabilities: ["training"], health: "degraded", node: "node2", team: "red" }))
        expect("version" in merged.metadata).toBe(false)

        const healthy = yield* registry.setHealth("a", "healthy")
        expect(healthy.metadata).toEqual({ ...merged.metadata, health: "healthy" })
        expect(yield* registry.setHealth("a", "healthy")).toBe(healthy) // no change: the same entry

        const badUpdate = (yield* Effect.flip(registry.update("a", meta({ node: "" })))) as ValidationError
        expect(badUpdate.field).toBe("metadata.node")
        const badMerge = (yield* Effect.flip(registry.merge("a", { health: "sick" as AgentRegistry.Health }))) as ValidationError
        expect(badMerge.field).toBe("metadata.health")
        expect(yield* registry.get("a")).toBe(healthy)
        expect(ids(yield* registry.findBy({ node: "node2" }))).toEqual(["a"])
        expect(yield* Effect.flip(registry.update("b", meta()))).toBeInstanceOf(NotFoundError)
        expect(yield* Effect.flip(registry.merge("b", {}))).toBeInstanceOf(NotFoundError)
        expect(yield* Effect.flip(registry.setHealth("b", "degraded"))).toBeInstanceOf(NotFoundError)
      }))
  })

  describe("indexes", () => {
    it.scoped("the original's find_by_attribute cases, and no stale membership after updates and removals", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        yield* registry.register("a", meta({ capabilities: ["inference"] }))
        yield* registry.register("b", meta({ capabilities: ["training"], node: "node2" }))
        yield* registry.register("c", meta({ capabilities: ["training"], health: "degraded" }))
        expect(ids(yield* registry.findBy({ capability: "inference" }))).toEqual(["a"])
        expect(ids(yield* registry.findBy({ health: "healthy" }))).toEqual(["a", "b"])
        expect(ids(yield* registry.findBy({ node: "node1" }))).toEqual(["a", "c"])

        yield* registry.update("a", meta({ capabilities: ["training"], health: "degraded" }))
        expect(yield* registry.findBy({ capability: "inference" })).toEqual([])
        expect(ids(yield* registry.findBy({ capability: "training" }))).toEqual(["a", "b", "c"])
        expect(ids(yield* registry.findBy({ health: "healthy" }))).toEqual(["b"])
        // Every membership holds the current entry, never a stale copy.
        for (const e of yield* registry.findBy({ capability: "training" })) expect(yield* registry.get(e.id)).toBe(e)

        yield* registry.merge("b", { node: "node1" })
        expect(yield* registry.findBy({ node: "node2" })).toEqual([])
        yield* registry.setHealth("c", "unhealthy")
        expect(yield* registry.findBy({ health: "degraded" })).toEqual([(yield* registry.get("a"))])
        yield* registry.unregister("b")
        expect(ids(yield* registry.findBy({ capability: "training" }))).toEqual(["a", "c"])
        // Overwrite: removed and registered again with other metadata, in one transaction.
        yield* registry.transaction([
          { op: "unregister", id: "a" },
          { op: "register", id: "a", metadata: meta({ capabilities: ["planning"], node: "node3" }) }
        ])
        expect(ids(yield* registry.findBy({ capability: "training" }))).toEqual(["c"])
        expect(ids(yield* registry.findBy({ capability: "planning" }))).toEqual(["a"])
        expect(ids(yield* registry.findBy({ node: "node1" }))).toEqual(["c"])
        const unsupported = (yield* Effect.flip(registry.findBy({ owner: "x" } as never))) as ValidationError
        expect(unsupported.reason).toContain("capability, health, node")
      }))

    const opArb = fc.oneof(
      fc.record({
        kind: fc.constant("register" as const),
        id: fc.constantFrom("a", "b", "c", "d"),
        caps: fc.uniqueArray(fc.constantFrom("x", "y", "z"), { maxLength: 3 }),
        health: fc.constantFrom<AgentRegistry.Health>("healthy", "degraded", "unhealthy"),
        node: fc.constantFrom("n1", "n2")
      }),
      fc.record({
        kind: fc.constant("update" as const),
        id: fc.constantFrom("a", "b", "c", "d"),
        caps: fc.array(fc.constantFrom("x", "y", "z"), { maxLength: 3 }),
        health: fc.constantFrom<AgentRegistry.Health>("healthy", "degraded", "unhealthy"),
        node: fc.constantFrom("n1", "n2")
      }),
      fc.record({
        kind: fc.constantFrom("setHealth" as const),
        id: fc.constantFrom("a", "b", "c", "d"),
        health: fc.constantFrom<AgentRegistry.Health>("healthy", "degraded", "unhealthy")
      }),
      fc.record({ kind: fc.constant("unregister" as const), id: fc.constantFrom("a", "b", "c", "d") }),
      fc.record({
        kind: fc.constant("transaction" as const),
        id: fc.constantFrom("a", "b", "c", "d"),
        node: fc.constantFrom("n1", "n2", "n3"),
        // Ends with an op that fails: nothing of it may stick.
        failing: fc.boolean()
      })
    )

    it.effect.prop(
      "after any sequence of writes, every index read equals a scan of the entries",
      [fc.array(opArb, { maxLength: 30 })],
      ([ops]) =>
        Effect.scoped(Effect.gen(function*() {
          const registry = yield* AgentRegistry.make()
          for (const op of ops) {
            const run: Effect.Effect<unknown, unknown> = op.kind === "register"
              ? registry.register(op.id, meta({ capabilities: op.caps, health: op.health, node: op.node }))
              : op.kind === "update"
              ? registry.update(op.id, meta({ capabilities: op.caps, health: op.health, node: op.node }))
              : op.kind === "setHealth"
              ? registry.setHealth(op.id, op.health)
              : op.kind === "unregister"
              ? registry.unregister(op.id)
              : registry.transaction([
                { op: "merge", id: op.id, metadata: { node: op.node, capabilities: ["x", op.node] } },
                ...(op.failing ? [{ op: "unregister" as const, id: "nobody" }] : [])
              ])
            yield* Effect.exit(run)
          }
          const all = yield* registry.list()
          for (const capability of ["x", "y", "z", "n1", "n2", "n3"]) {
            const expected = all.filter((e) => e.metadata.capabilities.includes(capability))
            expect(ids(yield* registry.findBy({ capability }))).toEqual(ids(expected))
            expect(ids(yield* registry.query(Criteria.eq("capabilities", capability)))).toEqual(ids(expected))
          }
          for (const health of AgentRegistry.healthValues) {
            expect(ids(yield* registry.findBy({ health }))).toEqual(ids(all.filter((e) => e.metadata.health === health)))
          }
          for (const node of ["n1", "n2", "n3"]) {
            expect(ids(yield* registry.findBy({ node }))).toEqual(ids(all.filter((e) => e.metadata.node === node)))
          }
          // Each result is the current entry.
          for (const e of yield* registry.findBy({ capability: "x" })) expect(yield* registry.get(e.id)).toBe(e)
        })),
      { fastCheck: { numRuns: 60 } }
    )
  })

  describe("query", () => {
    const setup = Effect.gen(function*() {
      const registry = yield* AgentRegistry.make()
      yield* registry.register("low", meta({ capabilities: ["inference"], resources: { cpu_usage: 0.1, memory_available: 0.7 } }))
      yield* registry.register("mid", meta({ capabilities: ["training"], resources: { cpu_usage: 0.5, memory_available: 0.2 } }))
      yield* registry.register("high", meta({ capabilities: ["planning"], health: "degraded", resources: { cpu_usage: 0.9 } }))
      return registry
    })

    it.scoped("the original's query cases, with the fixed semantics", () =>
      Effect.gen(function*() {
        const registry = yield* setup
        const q = (c: Criteria.Criteria) => Effect.map(registry.query(c), ids)
        expect(yield* q(Criteria.eq("capabilities", "inference"))).toEqual(["low"])
        expect(yield* q([Criteria.eq("capabilities", "training"), Criteria.eq("health", "healthy")])).toEqual(["mid"])
        expect(yield* q(Criteria.gte(["resources", "memory_available"], 0.5))).toEqual(["low"])
        expect(yield* q(Criteria.gte("resources.cpu_usage", 0.4))).toEqual(["high", "mid"])
        expect(yield* q(Criteria.lt("resources.cpu_usage", 0.6))).toEqual(["low", "mid"])
        expect(yield* q(Criteria.gt("resources.cpu_usage", 0.8))).toEqual(["high"])
        expect(yield* q(Criteria.isIn("capabilities", ["inference", "training"]))).toEqual(["low", "mid"])
        // A missing field never satisfies a comparison (the original let `gte` match it).
        expect(yield* q(Criteria.gte("resources.memory_available", 0))).toEqual(["low", "mid"])
        expect(yield* q(Criteria.lt("resources.gpu", 100))).toEqual([])
        // eq on a list is membership; neq its negation; in is overlap; not_in no overlap.
        yield* registry.register("both", meta({ capabilities: ["inference", "training"], node: "node2" }))
        expect(yield* q(Criteria.eq("capabilities", "training"))).toEqual(["both", "mid"])
        expect(yield* q(Criteria.neq("capabilities", "training"))).toEqual(["high", "low"])
        expect(yield* q(Criteria.isIn("capabilities", ["planning", "inference"]))).toEqual(["both", "high", "low"])
        expect(yield* q(Criteria.notIn("capabilities", ["inference", "training"]))).toEqual(["high"])
        expect(yield* q(Criteria.or(Criteria.eq("node", "node2"), Criteria.eq("health", "degraded")))).toEqual(["both", "high"])
        expect(yield* q(Criteria.all)).toEqual(["both", "high", "low", "mid"])
        expect(yield* q(Criteria.eq("capabilities", 1))).toEqual([]) // typed: a number is not a string
      }))

    it.scoped("invalid criteria fail with a ValidationError naming the criterion", () =>
      Effect.gen(function*() {
        const registry = yield* setup
        const badOp = (yield* Effect.flip(registry.query([Criteria.eq("health", "healthy"), { path: ["node"], op: "like", value: "x" } as never]))) as ValidationError
        expect(badOp.field).toBe("criteria.1.op")
        expect((yield* Effect.flip(registry.query("health" as never))).field).toBe("criteria")
        expect((yield* Effect.flip(registry.query(Criteria.isIn("node", [])))).field).toBe("criteria.value")
      }))

    const value = fc.constantFrom<Criteria.Scalar>("x", "y", "z", "healthy", "degraded", "n1", "n2", 1, 0.5, true)
    const path = fc.constantFrom<Criteria.Path>(["capabilities"], ["health"], ["node"], ["resources", "cpu"], ["team"])
    const criterion = fc.oneof(
      fc.tuple(path, fc.constantFrom("eq" as const, "neq" as const), value).map(([p, op, v]) => Criteria.where(p, op, v)),
      fc.tuple(path, fc.constantFrom("in" as const, "not_in" as const), fc.array(value, { minLength: 1, maxLength: 3 }))
        .map(([p, op, v]) => Criteria.where(p, op, v)),
      fc.tuple(path, fc.constantFrom("gt" as const, "lte" as const), fc.constantFrom<string | number>(0.5, "m"))
        .map(([p, op, v]) => Criteria.where(p, op, v))
    )
    const criteria: fc.Arbitrary<Criteria.Criteria> = fc.oneof(
      criterion,
      fc.array(criterion, { maxLength: 3 }),
      fc.array(criterion, { minLength: 1, maxLength: 3 }).map((cs) => Criteria.and(...cs)),
      fc.tuple(criterion, criterion).map(([a, b]) => [a, Criteria.or(a, Criteria.not(b))])
    )
    const agent = fc.record({
      caps: fc.array(fc.constantFrom("x", "y", "z"), { maxLength: 3 }),
      health: fc.constantFrom<AgentRegistry.Health>("healthy", "degraded", "unhealthy"),
      node: fc.constantFrom("n1", "n2"),
      cpu: fc.option(fc.constantFrom(0.2, 0.8), { nil: undefined }),
      team: fc.option(fc.constantFrom("x", "m", "z"), { nil: undefined })
    })

    it.effect.prop(
      "an indexed query returns what a scan of every entry with the same predicate returns",
      [fc.array(agent, { maxLength: 12 }), criteria],
      ([agents, c]) =>
        Effect.scoped(Effect.gen(function*() {
          const registry = yield* AgentRegistry.make()
          for (const [i, a] of agents.entries()) {
            yield* registry.register(`agent-${i}`, meta({
              capabilities: a.caps,
              health: a.health,
              node: a.node,
              resources: a.cpu === undefined ? {} : { cpu: a.cpu },
              ...(a.team === undefined ? {} : { team: a.team })
            }))
          }
          const matches = Criteria.predicate(c)
          const scanned = (yield* registry.list()).filter((e) => matches(e.metadata))
          const found = yield* registry.query(c)
          expect(ids(found)).toEqual(ids(scanned))
          expect(new Set(found.map((e) => e.id)).size).toBe(found.length) // no duplicates
        })),
      { fastCheck: { numRuns: 200 } }
    )
  })

  describe("transaction", () => {
    it.scoped("applies every op or none: a failure names the op's index and leaves the registry as it was", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        const existing = yield* registry.register("existing", meta())
        const changes = yield* registry.changes
        // The original's case: register, duplicate, update; afterwards nothing of it remains.
        const error = yield* Effect.flip(registry.transaction([
          { op: "register", id: "new_agent", metadata: meta({ capabilities: ["planning"] }) },
          { op: "update", id: "existing", metadata: meta({ health: "degraded" }) },
          { op: "register", id: "existing", metadata: meta() }
        ]))
        expect(error).toBeInstanceOf(AgentRegistry.RegistryTransactionError)
        const tx = error as AgentRegistry.RegistryTransactionError
        expect(tx).toMatchObject({ index: 2, op: "register", id: "existing" })
        expect(tx.error).toBeInstanceOf(AlreadyExistsError)
        expect(tx.message).toContain("op 2")
        expect(yield* registry.lookup("new_agent")).toEqual(Option.none())
        expect(yield* registry.get("existing")).toBe(existing)
        expect(yield* registry.findBy({ capability: "planning" })).toEqual([])
        expect(yield* registry.findBy({ health: "degraded" })).toEqual([])
        expect(yield* registry.count).toBe(1)

        // A bad op (validation, unknown op) fails the same way.
        const invalid = (yield* Effect.flip(registry.transaction([
          { op: "setHealth", id: "existing", health: "degraded" },
          { op: "merge", id: "existing", metadata: { health: "sick" as AgentRegistry.Health } }
        ]))) as AgentRegistry.RegistryTransactionError
        expect(invalid).toMatchObject({ index: 1, op: "merge" })
        expect((invalid.error as ValidationError).field).toBe("metadata.health")
        const unknown = (yield* Effect.flip(registry.transaction([{ op: "upsert", id: "x" } as never]))) as AgentRegistry.RegistryTransactionError
        expect(unknown).toMatchObject({ index: 0, op: "upsert" })
        expect((unknown.error as ValidationError).field).toBe("op")
        expect(yield* registry.get("existing")).toBe(existing)

        // Success: all applied, each op seeing the ones before it; changes in op order.
        yield* TestClock.adjust(10)
        const results = yield* registry.transaction([
          { op: "register", id: "b", metadata: meta({ capabilities: ["planning"] }) },
          { op: "merge", id: "b", metadata: { node: "node2" } },
          { op: "setHealth", id: "existing", health: "unhealthy" },
          { op: "register", id: "temp", metadata: meta() },
          { op: "unregister", id: "temp" }
        ])
        expect(results.map((e) => e.id)).toEqual(["b", "b", "existing", "temp", "temp"])
        expect((yield* registry.get("b")).metadata.node).toBe("node2")
        expect(ids(yield* registry.findBy({ health: "unhealthy" }))).toEqual(["existing"])
        expect(yield* registry.lookup("temp")).toEqual(Option.none())
        expect(yield* registry.transaction([])).toEqual([])
        // The failed transactions published nothing.
        expect(yield* drain(changes, 5)).toEqual([
          "Registered b",
          "Updated b",
          "Updated existing",
          "Registered temp",
          "Unregistered temp"
        ])
      }))
  })

  describe("agents the registry runs", () => {
    it.scoped("spawn registers the agent with its reference; stop removes it (Unregistered)", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        const changes = yield* registry.changes
        const ref = yield* registry.spawn(Worker, { id: "w1", metadata: meta({ capabilities: ["work"] }) })
        const entry = yield* registry.get("w1")
        expect(Option.getOrThrow(entry.ref)).toBe(ref)
        expect(yield* Option.getOrThrow(entry.ref).call("ping", {})).toBe("pong w1")
        expect(yield* ref.call("whoami", {})).toBe("worker")
        expect(ids(yield* registry.findBy({ capability: "work" }))).toEqual(["w1"])
        // A typed failure of an action does not end the agent: it stays registered.
        expect(yield* Effect.flip(ref.call("refuse", {}))).toBeInstanceOf(Refused)
        yield* ref.stop
        expect(yield* registry.lookup("w1")).toEqual(Option.none())
        expect(yield* registry.findBy({ capability: "work" })).toEqual([])
        expect(yield* drain(changes, 2)).toEqual(["Registered w1", "Unregistered w1"])
      }))

    it.scoped("a crashing agent is gone before its caller hears of the crash (Down defect)", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        const changes = yield* registry.changes
        const ref = yield* registry.spawn(Worker, { id: "w1", metadata: meta() })
        // The caller's next step after the crash: the entry must already be gone.
        const seen = yield* Effect.flatMap(Effect.exit(ref.call("crash", {})), (exit) =>
          Effect.map(registry.lookup("w1"), (found) => ({ exit, found })))
        expect(failureOf(seen.exit)).toBeInstanceOf(Agent.AgentCrashedError)
        expect(seen.found).toEqual(Option.none())
        const [registered, down] = Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.take(changes, 2)))
        expect(registered!._tag).toBe("Registered")
        expect(down!._tag).toBe("Down")
        const d = down as Extract<AgentRegistry.Change, { _tag: "Down" }>
        expect(d.reason).toBe("defect")
        expect(Cause.squash(d.cause)).toBe("boom")
        expect(yield* registry.count).toBe(0)
      }))

    it.scoped("an agent that interrupts itself, or whose scope closes, is removed (Down interrupted)", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        const changes = yield* registry.changes
        const ref = yield* registry.spawn(Worker, { id: "quitter", metadata: meta() })
        const seen = yield* Effect.flatMap(Effect.exit(ref.call("quit", {})), () => registry.lookup("quitter"))
        expect(seen).toEqual(Option.none())

        const scope = yield* Scope.make()
        yield* registry.spawn(Worker, { id: "scoped", metadata: meta() }).pipe(Scope.extend(scope))
        expect(yield* registry.count).toBe(1)
        yield* Scope.close(scope, Exit.void)
        expect(yield* registry.lookup("scoped")).toEqual(Option.none())
        expect(yield* drain(changes, 4)).toEqual([
          "Registered quitter",
          "Down quitter interrupted",
          "Registered scoped",
          "Down scoped interrupted"
        ])
      }))

    it.scoped("a start that fails (a typed failure) leaves no entry (Down failure)", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        const changes = yield* registry.changes
        const error = yield* Effect.flip(registry.spawn(FailsToStart, { id: "f", metadata: meta() }))
        expect(error).toBeInstanceOf(Agent.AgentStartError)
        expect(yield* registry.lookup("f")).toEqual(Option.none())
        expect(yield* drain(changes, 2)).toEqual(["Registered f", "Down f failure"])
      }))

    it.scoped("bad metadata fails before anything starts; a taken id is the spawn's AgentStartError", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        const started = yield* Ref.make(0)
        const Counted = Agent.define({
          name: "counted",
          state: Schema.Number,
          initial: 0,
          actions: {},
          hooks: { onStart: () => Ref.update(started, (n) => n + 1) }
        })
        const bad = (yield* Effect.flip(registry.spawn(Counted, { id: "c", metadata: meta({ health: "sick" }) }))) as ValidationError
        expect(bad.field).toBe("metadata.health")
        expect(yield* Ref.get(started)).toBe(0)

        const explicit = yield* registry.register("c", meta({ node: "elsewhere" }))
        const taken = yield* Effect.flip(registry.spawn(Counted, { id: "c", metadata: meta() }))
        expect(taken).toBeInstanceOf(Agent.AgentStartError)
        expect(Cause.squash((taken as Agent.AgentStartError).cause)).toBeInstanceOf(AlreadyExistsError)
        expect(yield* Ref.get(started)).toBe(0)
        expect(yield* registry.get("c")).toBe(explicit)
      }))

    it.scoped("an entry taken over by someone else is not removed when the agent ends; updates keep the reference", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        const ref = yield* registry.spawn(Worker, { id: "w", metadata: meta() })
        const updated = yield* registry.setHealth("w", "degraded")
        expect(Option.getOrThrow(updated.ref)).toBe(ref)
        yield* registry.unregister("w")
        const replacement = yield* registry.register("w", meta({ node: "other" }))
        yield* ref.stop
        expect(yield* registry.get("w")).toBe(replacement)

        // And an updated entry of a running agent still goes with the agent.
        const ref2 = yield* registry.spawn(Worker, { id: "w2", metadata: meta() })
        yield* registry.merge("w2", { capabilities: ["late"] })
        yield* ref2.stop
        expect(yield* registry.lookup("w2")).toEqual(Option.none())
        expect(yield* registry.findBy({ capability: "late" })).toEqual([])
      }))

    it.scoped("supervised: each incarnation registers again; the old one is gone first; shutdown removes it", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        const changes = yield* registry.changes
        const { child, ref } = yield* registry.supervised(Worker, { id: "sup-w", metadata: meta({ capabilities: ["sup"] }) })
        const supervisorScope = yield* Scope.make()
        yield* Supervisor.make({ name: "s", children: [child] }).pipe(Scope.extend(supervisorScope))
        yield* until(Effect.map(registry.lookup("sup-w"), Option.isSome), "registered")
        const first = yield* registry.get("sup-w")
        expect(Option.getOrThrow(first.ref)).toBe(ref)
        yield* TestClock.adjust(100)

        // The caller's next step after the crash finds no entry, or the next incarnation's: never the dead one.
        const crashed = yield* Effect.flatMap(Effect.exit(ref.call("crash", {})), () => registry.lookup("sup-w"))
        expect(Option.isNone(crashed) || crashed.value !== first).toBe(true)
        yield* until(Effect.map(registry.lookup("sup-w"), Option.isSome), "registered again")
        const second = yield* registry.get("sup-w")
        expect(second).not.toBe(first)
        expect(second.registeredAt).toBe(100)
        expect(yield* ref.call("ping", {})).toBe("pong sup-w")
        expect(ids(yield* registry.findBy({ capability: "sup" }))).toEqual(["sup-w"])

        yield* Scope.close(supervisorScope, Exit.void)
        expect(yield* registry.lookup("sup-w")).toEqual(Option.none())
        expect(yield* drain(changes, 4)).toEqual([
          "Registered sup-w",
          "Down sup-w defect",
          "Registered sup-w",
          "Down sup-w interrupted"
        ])
      }))
  })

  describe("changes", () => {
    it.scoped("streams every change in commit order, to each subscriber from when it subscribed", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        yield* registry.register("before", meta())
        const changes = yield* registry.changes
        yield* registry.register("a", meta())
        yield* registry.update("a", meta({ node: "node2" }))
        yield* registry.setHealth("a", "degraded")
        yield* registry.setHealth("a", "degraded") // no change, no event
        yield* Effect.exit(registry.register("a", meta())) // refused: no event
        const late = yield* registry.changes
        yield* registry.unregister("a")
        const ref = yield* registry.spawn(Worker, { id: "b", metadata: meta() })
        yield* Effect.exit(ref.call("crash", {}))
        const all = Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.take(changes, 6)))
        expect(all.map(describeChange)).toEqual([
          "Registered a",
          "Updated a",
          "Updated a",
          "Unregistered a",
          "Registered b",
          "Down b defect"
        ])
        const update = all[2] as Extract<AgentRegistry.Change, { _tag: "Updated" }>
        expect(update.previous.metadata.health).toBe("healthy")
        expect(update.entry.metadata.health).toBe("degraded")
        expect(yield* drain(late, 3)).toEqual(["Unregistered a", "Registered b", "Down b defect"])
      }))

    it.scoped("a subscriber that falls behind loses its oldest changes, not memory", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make({ changesCapacity: 2 })
        const changes = yield* registry.changes
        for (const id of ["a", "b", "c", "d"]) yield* registry.register(id, meta())
        expect(yield* drain(changes, 2)).toEqual(["Registered c", "Registered d"])
      }))
  })

  describe("batches", () => {
    it.scoped("registerAll goes through Batch: ok, partial, and rollback leaving the registry as it was", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        const ok = yield* registry.registerAll([["a", meta()], ["b", meta({ capabilities: ["x"] })]])
        expect(ok).toEqual(Batch.BatchResult.Ok({ keys: ["a", "b"] }))
        expect(ids(yield* registry.findBy({ capability: "x" }))).toEqual(["b"])

        const partial = yield* registry.registerAll([["c", meta()], ["a", meta()], ["d", meta({ health: "sick" })], ["e", meta()]], {
          onError: "continue"
        })
        expect(partial._tag).toBe("Partial")
        const p = partial as Extract<typeof partial, { _tag: "Partial" }>
        expect(p.keys).toEqual(["c", "e"])
        expect(p.failures.map((f) => [f.key, f.index, f.error._tag])).toEqual([
          ["a", 1, "AlreadyExistsError"],
          ["d", 2, "ValidationError"]
        ])

        const before = ids(yield* registry.list())
        const failed = yield* registry.registerAll([["f", meta()], ["g", meta()], ["a", meta()], ["h", meta()]], {
          onError: "rollback",
          chunkSize: 2
        })
        expect(failed._tag).toBe("Failed")
        expect((failed as Extract<typeof failed, { _tag: "Failed" }>).rolledBack).toEqual(["f", "g"])
        expect(ids(yield* registry.list())).toEqual(before)
        expect(yield* registry.findBy({ node: "node1" })).toHaveLength(before.length)
        expect((yield* Effect.flip(registry.registerAll([], { chunkSize: 0 }))).field).toBe("batch.register.chunkSize")
      }))

    it.scoped("batchStore: a rolled-back removal of a running agent puts it back with its reference and its removal", () =>
      Effect.gen(function*() {
        const registry = yield* AgentRegistry.make()
        const ref = yield* registry.spawn(Worker, { id: "w", metadata: meta() })
        yield* registry.register("plain", meta({ capabilities: ["x"] }))
        const batch = yield* Batch.make(AgentRegistry.batchStore(registry))

        const removed = yield* batch.unregister(["w", "plain", "missing"], { onError: "rollback" })
        expect(removed._tag).toBe("Failed")
        const back = yield* registry.get("w")
        expect(Option.getOrThrow(back.ref)).toBe(ref)
        expect(ids(yield* registry.findBy({ capability: "x" }))).toEqual(["plain"])

        const updated = yield* batch.update([["w", { health: "degraded" }], ["missing", {}]], { onError: "rollback" })
        expect(updated._tag).toBe("Failed")
        expect((yield* registry.get("w")).metadata.health).toBe("healthy")
        expect(Option.getOrThrow((yield* registry.get("w")).ref)).toBe(ref)

        // The entry put back still goes with its agent.
        yield* ref.stop
        expect(yield* registry.lookup("w")).toEqual(Option.none())

        // Paged reads by cursor, in id order.
        for (const id of ["c", "a", "b"]) yield* registry.register(id, meta())
        const pages = yield* Stream.runCollect(batch.query((m) => m.health === "healthy", { pageSize: 2 }))
        expect(Chunk.toReadonlyArray(pages).map(([id]) => id)).toEqual(["a", "b", "c", "plain"])
      }))
  })

  describe("telemetry", () => {
    it.effect("emits the original's events, with their measurements and metadata", () =>
      Effect.gen(function*() {
        const bus = yield* EventBus.EventBus
        const seen = yield* Effect.scoped(Effect.gen(function*() {
          const sub = yield* bus.subscribe("foundation.mabeam.registry.*", { capacity: 100 })
          const registry = yield* AgentRegistry.make({ name: "reg" })
          yield* registry.register("a", meta())
          yield* Effect.exit(registry.register("a", meta()))
          yield* Effect.exit(registry.register("b", meta({ health: "sick" })))
          yield* registry.update("a", meta({ capabilities: ["x"], health: "degraded" }))
          yield* Effect.exit(registry.update("nobody", meta()))
          yield* registry.query(Criteria.eq("capabilities", "x")) // not emitted by default
          yield* registry.unregister("a")
          yield* Effect.exit(registry.unregister("a"))
          const ref = yield* registry.spawn(Worker, { id: "w", metadata: meta() })
          yield* Effect.exit(ref.call("crash", {}))
          yield* registry.registerAll([["c", meta()], ["c", meta()]], { onError: "continue" })
          const out: Array<{ name: string; measurements: Record<string, number>; metadata: Record<string, unknown> }> = []
          for (;;) {
            const next = yield* sub.poll
            if (Option.isNone(next)) return out
            const data = next.value.data as { measurements: Record<string, number>; metadata: Record<string, unknown> }
            out.push({ name: next.value.type, ...data })
          }
        }))
        const names = AgentRegistry.events
        expect(seen.map((e) => e.name)).toEqual([
          names.register,
          names.registerFailed,
          names.registerFailed,
          names.update,
          names.updateFailed,
          names.unregister,
          names.unregisterFailed,
          names.register,
          names.agentDown,
          names.register,
          names.registerFailed,
          names.batchOperation
        ])
        expect(names.register).toBe("foundation.mabeam.registry.register")
        expect(seen[0]!.metadata).toEqual({
          registry: "reg",
          agent_id: "a",
          capabilities: ["inference", "training"],
          health_status: "healthy",
          node: "node1"
        })
        expect(seen[1]!.metadata).toMatchObject({ agent_id: "a", reason: "already_exists" })
        expect(seen[2]!.metadata).toMatchObject({ agent_id: "b", reason: "validation" })
        expect(seen[3]!.metadata).toMatchObject({
          old_capabilities: ["inference", "training"],
          new_capabilities: ["x"],
          old_health: "healthy",
          new_health: "degraded"
        })
        expect(seen[4]!.metadata).toMatchObject({ agent_id: "nobody", reason: "not_found" })
        expect(seen[5]!.metadata).toMatchObject({ agent_id: "a", reason: "explicit" })
        expect(seen[6]!.metadata).toMatchObject({ agent_id: "a", reason: "not_found" })
        expect(seen[8]!.metadata).toMatchObject({ agent_id: "w", reason: "defect", health_status: "healthy", node: "node1" })
        expect(seen[11]!.measurements).toMatchObject({ total_count: 2, success_count: 1, failed_count: 1 })
        expect(seen[11]!.metadata).toEqual({ registry: "reg", operation: "batch_register", status: "partial" })
      }).pipe(Effect.provide(Telemetry.layerWithBus())))

    it.effect("queries are events only with telemetry: \"all\"; \"none\" emits nothing", () =>
      Effect.gen(function*() {
        const bus = yield* EventBus.EventBus
        const seen = yield* Effect.scoped(Effect.gen(function*() {
          const sub = yield* bus.subscribe("foundation.mabeam.registry.*", { capacity: 100 })
          const all = yield* AgentRegistry.make({ telemetry: "all" })
          yield* all.register("a", meta())
          yield* all.query(Criteria.eq("capabilities", "inference"))
          yield* all.query(Criteria.gte("resources.cpu_usage", 0))
          const quiet = yield* AgentRegistry.make({ telemetry: "none" })
          yield* quiet.register("a", meta())
          yield* quiet.query(Criteria.all)
          const out: Array<{ name: string; measurements: Record<string, number>; metadata: Record<string, unknown> }> = []
          for (;;) {
            const next = yield* sub.poll
            if (Option.isNone(next)) return out
            const data = next.value.data as { measurements: Record<string, number>; metadata: Record<string, unknown> }
            out.push({ name: next.value.type, ...data })
          }
        }))
        expect(seen.map((e) => e.name)).toEqual([
          AgentRegistry.events.register,
          AgentRegistry.events.query,
          AgentRegistry.events.query
        ])
        expect(seen[1]).toMatchObject({ measurements: { result_count: 1 }, metadata: { query_type: "indexed" } })
        expect(seen[2]).toMatchObject({ measurements: { result_count: 1 }, metadata: { query_type: "scan" } })
      }).pipe(Effect.provide(Telemetry.layerWithBus())))
  })

  it.scoped("layer: the service in the context", () =>
    Effect.gen(function*() {
      const registry = yield* AgentRegistry.AgentRegistry
      yield* registry.register("a", meta())
      expect(registry.name).toBe("agents")
      expect(yield* registry.count).toBe(1)
    }).pipe(Effect.provide(AgentRegistry.layer())))
})

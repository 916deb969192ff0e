// examples/discovery.ts — find capable healthy agents, pick by load, spread work over them by load within capacity
import { Effect, Either, Random, Schema } from "effect"
import { Agent, AgentRegistry, Criteria, Discovery } from "effect-foundation"

const Encoder = Agent.define({
  name: "encoder",
  state: Schema.Number,
  initial: 0,
  actions: {
    encode: Agent.action({
      params: Schema.Array(Schema.String),
      run: (files: ReadonlyArray<string>, ctx: Agent.ActionContext<number>) =>
        Effect.as(ctx.updateState((n) => n + files.length), `${ctx.id} encoded ${files.join(" ")}`)
    })
  }
})

const metadata = (health: AgentRegistry.Health, node: string, load: number): AgentRegistry.Metadata => ({
  capabilities: ["encode", "h264"],
  health,
  node,
  resources: { load }
})

export const program = Effect.scoped(Effect.gen(function*() {
  const registry = yield* AgentRegistry.make()
  yield* registry.spawn(Encoder, { id: "enc-a", metadata: metadata("healthy", "eu", 0) })
  yield* registry.spawn(Encoder, { id: "enc-b", metadata: metadata("healthy", "eu", 3) })
  yield* registry.spawn(Encoder, { id: "enc-c", metadata: metadata("degraded", "eu", 0) }) // never chosen: not healthy
  yield* registry.spawn(Encoder, { id: "enc-d", metadata: metadata("healthy", "us", 1) })
  const discovery = Discovery.make(registry)

  // All capabilities required, healthy only by default; node and extra criteria compose.
  const inEurope = yield* discovery.find({ capabilities: ["encode", "h264"], node: "eu" })
  const idle = yield* discovery.find({ capabilities: ["encode"], where: Criteria.lt("resources.load", 2) })
  const capable = yield* discovery.find({ capabilities: ["encode"] })
  const leastLoaded = yield* Discovery.select(capable, "balanced", { count: 2 })
  // A seeded Random makes the random pick reproducible.
  const lucky = yield* Discovery.select(capable, "random", { count: 1 }).pipe(Effect.withRandom(Random.make(1)))

  // 12 files, each adding 1 to its agent's load; no agent above load 5: each file goes to the
  // least loaded agent that still has room, and what nobody can take comes back.
  const files = Array.from({ length: 12 }, (_, i) => `f${i + 1}`)
  const { outcomes, unassigned } = yield* discovery.dispatch(files, {
    capabilities: ["encode"],
    definition: Encoder,
    action: "encode",
    params: (share) => share,
    capacity: 5,
    concurrency: 2
  })
  return {
    inEurope: inEurope.map((e) => e.id),
    idle: idle.map((e) => e.id),
    leastLoaded: leastLoaded.map((e) => e.id),
    lucky: lucky.map((e) => e.id),
    answers: outcomes.map((o) => Either.getOrElse(o.result, (error) => `${o.agentId} failed: ${error._tag}`)),
    unassigned
  }
}))

// examples/agent-registry.ts — find agents by capability; an agent that dies leaves the directory by itself
import { Chunk, Effect, Option, Schema, Stream } from "effect"
import { Agent, AgentRegistry, Criteria } from "effect-foundation"

const Worker = Agent.define({
  name: "worker",
  state: Schema.Number,
  initial: 0,
  actions: {
    infer: Agent.action({ params: Schema.String, run: (input: string) => Effect.succeed(`${input}: done`) }),
    crash: Agent.action({ params: Schema.Struct({}), run: () => Effect.die("out of memory") })
  }
})

const metadata = (capabilities: ReadonlyArray<string>, memoryFree: number): AgentRegistry.Metadata => ({
  capabilities,
  health: "healthy",
  node: "node1",
  resources: { memory_available: memoryFree }
})

export const program = Effect.scoped(Effect.gen(function*() {
  const registry = yield* AgentRegistry.make()
  const changes = yield* registry.changes
  // Registered while they run, removed when they end, whatever ends them.
  yield* registry.spawn(Worker, { id: "gpu-1", metadata: metadata(["inference", "training"], 0.7) })
  const cpu = yield* registry.spawn(Worker, { id: "cpu-1", metadata: metadata(["inference"], 0.2) })

  // Agents that can run inference with at least half of their memory free (the capability index, then a filter).
  const roomy = yield* registry.query([
    Criteria.eq("capabilities", "inference"),
    Criteria.gte("resources.memory_available", 0.5)
  ])
  const answer = yield* Option.getOrThrow(roomy[0]!.ref).call("infer", "batch 7")

  yield* Effect.exit(cpu.call("crash", {})) // a defect ends the agent: its entry is already gone
  const inference = yield* registry.findBy({ capability: "inference" })
  const seen = yield* Stream.runCollect(Stream.take(changes, 3))
  return {
    roomy: roomy.map((e) => e.id),
    answer,
    inference: inference.map((e) => e.id),
    changes: Chunk.toReadonlyArray(seen).map((c) => c._tag === "Down" ? `Down ${c.entry.id} (${c.reason})` : `${c._tag} ${c.entry.id}`)
  }
}))

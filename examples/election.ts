// examples/election.ts — one leader among the agents with a capability; a new one at once when it goes
import { Chunk, Effect, Fiber, Layer, Option, Schema, Stream } from "effect"
import { Agent, AgentRegistry, Election } from "effect-foundation"

const node = Agent.define({ name: "node", state: Schema.Struct({}), initial: {}, actions: {} })

const show = (l: Election.Leadership) => `${l.term} ${Option.getOrElse(l.leader, () => "none")} ${l.reason}`

export const program = Effect.gen(function*() {
  const registry = yield* AgentRegistry.AgentRegistry
  const election = yield* Election.Election
  // The current leadership first, then every change.
  const history = yield* Effect.fork(Stream.runCollect(Stream.take(yield* election.changes, 4)))

  const metadata: AgentRegistry.Metadata = { capabilities: ["schedule"], health: "healthy", node: "local", resources: {} }
  const alpha = yield* registry.spawn(node, { id: "alpha", metadata })
  yield* Effect.sleep("1 millis") // the oldest registration leads
  yield* registry.spawn(node, { id: "beta", metadata })
  yield* Effect.sleep("1 millis")
  yield* registry.spawn(node, { id: "gamma", metadata })
  const first = show(yield* election.current)

  yield* alpha.stop // the registry removes it: the next candidate leads at once
  yield* Effect.sleep("1 millis")
  const afterStop = show(yield* election.current)

  yield* Effect.sleep("5 seconds")
  yield* election.renew("beta") // what the leader does to keep its lease (10 s from now)...
  yield* Effect.sleep("15 seconds") // ...then falls silent: the lease runs out, the next candidate leads
  const afterSilence = show(yield* election.current)

  return { first, afterStop, afterSilence, history: Chunk.toReadonlyArray(yield* Fiber.join(history)).map(show) }
}).pipe(
  Effect.provide(
    Election.layer({ capability: "schedule", renewal: "agent", lease: "10 seconds" }).pipe(
      Layer.provideMerge(AgentRegistry.layer())
    )
  ),
  Effect.scoped
)

// examples/agent-monitor.ts — health checks written into the registry; a monitor ends with its agent
import { Effect, Layer, Schema } from "effect"
import { Agent, AgentMonitor, AgentRegistry } from "effect-foundation"

const State = Schema.Struct({ frozen: Schema.Boolean })

const worker = Agent.define({
  name: "worker",
  state: State,
  initial: { frozen: false },
  actions: {
    // What the monitor calls: a frozen worker never answers.
    health: Agent.action({
      params: Schema.Struct({}),
      run: (_: {}, ctx: Agent.ActionContext<typeof State.Type>) => ctx.state.frozen ? Effect.never : Effect.succeed("healthy" as const)
    }),
    freeze: Agent.action({
      params: Schema.Struct({}),
      run: (_: {}, ctx: Agent.ActionContext<typeof State.Type>) => ctx.setState({ frozen: true })
    })
  }
})

export const program = Effect.gen(function*() {
  const registry = yield* AgentRegistry.AgentRegistry
  const monitor = yield* AgentMonitor.AgentMonitor
  const agent = yield* registry.spawn(worker, {
    id: "worker-1",
    metadata: { capabilities: ["work"], health: "degraded", node: "local", resources: {} }
  })
  // First check at once, then every 30 s; a check has 5 s to answer.
  yield* monitor.start(agent.id, { check: AgentMonitor.checks.call("health"), interval: "30 seconds", timeout: "5 seconds" })
  yield* Effect.sleep("1 second")
  const afterFirstCheck = (yield* registry.get(agent.id)).metadata.health // "healthy"

  yield* agent.cast("freeze", {})
  yield* Effect.sleep("40 seconds") // the check at 30 s gets no answer by 35 s
  const afterTimeout = (yield* registry.get(agent.id)).metadata.health // "unhealthy"

  yield* agent.stop // the registry removes the entry; the monitor hears of it at once and ends
  yield* Effect.sleep("1 millis")
  const status = yield* monitor.status(agent.id)
  return {
    afterFirstCheck,
    afterTimeout,
    afterStop: { state: status.state, reason: status.downReason._tag === "Some" ? status.downReason.value : "none" },
    monitored: yield* monitor.monitored
  }
}).pipe(
  Effect.provide(AgentMonitor.layer().pipe(Layer.provideMerge(AgentRegistry.layer()))),
  Effect.scoped
)

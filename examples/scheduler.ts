// examples/scheduler.ts — actions delivered on a schedule; runNow adds no timer; schedules end with their agent
import { Clock, Effect, Layer, Option, Schema } from "effect"
import { Agent, AgentRegistry, Scheduler } from "effect-foundation"

const State = Schema.Struct({ beats: Schema.Number, reports: Schema.Array(Schema.String) })
type State = typeof State.Type

const reporter = Agent.define({
  name: "reporter",
  state: State,
  initial: { beats: 0, reports: [] },
  actions: {
    beat: Agent.action({
      params: Schema.Struct({}),
      run: (_: {}, ctx: Agent.ActionContext<State>) => ctx.updateState((s) => ({ ...s, beats: s.beats + 1 }))
    }),
    report: Agent.action({
      params: Schema.Struct({ kind: Schema.Literal("daily", "weekly") }),
      run: ({ kind }, ctx: Agent.ActionContext<State>) => ctx.updateState((s) => ({ ...s, reports: [...s.reports, kind] }))
    }),
    beats: Agent.action({ params: Schema.Struct({}), run: (_: {}, ctx: Agent.ActionContext<State>) => Effect.succeed(ctx.state.beats) })
  }
})

export const program = Effect.gen(function*() {
  const registry = yield* AgentRegistry.AgentRegistry
  const scheduler = yield* Scheduler.Scheduler
  const agent = yield* registry.spawn(reporter, {
    id: "reporter",
    metadata: { capabilities: ["reports"], health: "healthy", node: "local", resources: {} }
  })
  // Fixed delay: first beat 10 s from now, then every 10 s. Params are checked against the action's Schema now.
  yield* scheduler.schedule(agent, "heartbeat", { every: "10 seconds", action: "beat", params: {} })
  yield* scheduler.schedule(agent, "nightly", { cron: "0 3 * * *", timeZone: "UTC", action: "report", params: { kind: "daily" } })

  yield* Effect.sleep("25 seconds") // beats at 10 s and 20 s
  yield* scheduler.runNow(agent, "heartbeat") // one more beat now; the next is still due at 30 s
  yield* Effect.sleep("10 seconds") // the beat at 30 s
  const heartbeat = yield* scheduler.get(agent, "heartbeat")
  const now = yield* Clock.currentTimeMillis
  const ticks = yield* agent.call("beats", {})

  yield* agent.stop // the registry removes the agent: both schedules end at once
  yield* Effect.sleep("1 millis")
  const afterStop = yield* scheduler.list(agent).pipe(
    Effect.as("still scheduled"),
    Effect.catchTag("NotFoundError", () => Effect.succeed("no schedules"))
  )
  return {
    ticks, // 4
    heartbeat: { runs: heartbeat.runs, nextRunIn: Option.getOrElse(heartbeat.nextRun, () => now) - now }, // { runs: 4, nextRunIn: 5000 }
    afterStop // "no schedules"
  }
}).pipe(
  Effect.provide(Scheduler.layer().pipe(Layer.provideMerge(AgentRegistry.layer()))),
  Effect.scoped
)

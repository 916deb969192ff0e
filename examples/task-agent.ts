// examples/task-agent.ts — a task agent: validated tasks, a priority queue drained through a pool, pause/resume
import { Effect, Schema } from "effect"
import { Agent, TaskAgent, TaskPools } from "effect-foundation"

export const program = Effect.scoped(Effect.gen(function*() {
  const definition = yield* TaskAgent.make({
    pool: "general", // a TaskPools pool: its concurrency cap and time limit apply
    processors: {
      resize: TaskAgent.processor({
        input: Schema.Struct({ width: Schema.Number.pipe(Schema.positive()) }),
        run: ({ width }) => Effect.succeed(Math.round(width / 2))
      })
    }
  })
  const agent = yield* Agent.spawn(definition, { id: "images" })

  // A bad task is refused at the door, naming the field; nothing is queued or counted.
  const refused = yield* Effect.flip(agent.call("submit", { id: "x", type: "resize", input: { width: -1 } }))

  yield* agent.call("pause", { reason: "deploy" }) // holds the queue; submit still queues
  yield* agent.call("submit", { id: "thumb", type: "resize", input: { width: 64 }, priority: "low" })
  yield* agent.call("submit", { id: "hero", type: "resize", input: { width: 2048 }, priority: "high" })
  yield* agent.call("resume", {}) // the queue drains by itself: high first

  // process = submit and wait for the outcome (low priority: after the tasks already queued)
  const banner = yield* TaskAgent.process(agent, { id: "banner", type: "resize", input: { width: 801 }, priority: "low" })
  const status = yield* agent.call("status", {})
  return {
    refused: refused._tag === "ValidationError" ? refused.field : refused._tag, // "task_agent.submit.input.width"
    banner, // 401
    order: (yield* agent.call("results", {})).map((r) => r.taskId), // ["hero", "thumb", "banner"]
    processed: status.processed, // 3
    errors: status.errors // 0
  }
})).pipe(Effect.provide(TaskPools.layer()))

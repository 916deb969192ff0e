// examples/event-bus.ts — topics, patterns, per-subscriber queues with exact counts
import { Effect, Schema } from "effect"
import { EventBus } from "effect-foundation"

const TaskCompleted = Schema.Struct({ taskId: Schema.String, millis: Schema.Number })

export const program = Effect.scoped(Effect.gen(function*() {
  const bus = yield* EventBus.make({ source: "scheduler" })
  const completed = yield* bus.subscribe("agent.*.completed") // * = one segment
  const everything = yield* bus.subscribe("agent.**", { strategy: "sliding", capacity: 2 }) // keeps the newest 2

  yield* bus.publish("agent.task.completed", { taskId: "t1", millis: 12 }, { schema: TaskCompleted })
  yield* bus.publish("agent.task.failed", { taskId: "t2" })
  yield* bus.publish("agent.job.completed", { taskId: "t3", millis: 40 }, { schema: TaskCompleted })

  const first = yield* completed.take // a CloudEvents-shaped envelope
  return {
    first: { type: first.type, source: first.source, data: first.data },
    completed: yield* completed.stats, // published 2, delivered 1, pending 1
    everything: yield* everything.stats // published 3, dropped 1 (the oldest), pending 2
  }
}))

// examples/batch.ts — chunked writes with rollback, cursor-paged queries
import { Effect, Order, Stream } from "effect"
import { Batch } from "effect-foundation"

interface Agent {
  readonly name: string
  readonly capability: string
}

export const program = Effect.gen(function*() {
  const store = yield* Batch.memoryStore<string, Agent>({ order: Order.string })
  const batcher = yield* Batch.make(store, { chunkSize: 2, onError: "rollback" })

  const ok = yield* batcher.register([
    ["a1", { name: "planner", capability: "plan" }],
    ["a2", { name: "coder", capability: "code" }],
    ["a3", { name: "tester", capability: "code" }]
  ])
  // a2 exists: the whole batch is undone, including a4 from the same chunk.
  const undone = yield* batcher.register([["a4", { name: "reviewer", capability: "review" }], ["a2", { name: "dup", capability: "x" }]])
  const coders = yield* Stream.runCollect(batcher.query((agent) => agent.capability === "code"))
  return { ok: ok._tag, undone: undone._tag, coders: [...coders].map(([key]) => key), size: yield* store.size }
})

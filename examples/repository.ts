// examples/repository.ts — typed records, indexed criteria queries, an all-or-nothing transaction
import { Effect, Schema } from "effect"
import { Criteria, MemoryStore, Repository, Transaction } from "effect-foundation"

const Agent = Schema.Struct({
  id: Schema.String,
  capabilities: Schema.Array(Schema.String),
  load: Schema.optional(Schema.Number)
})
const Assignment = Schema.Struct({ task: Schema.String, agent: Schema.String })

export const program = Effect.gen(function*() {
  const agents = yield* Repository.make({ name: "agents", schema: Agent, key: "id", indexes: ["capabilities"] })
  const assignments = yield* Repository.make({ name: "assignments", schema: Assignment, key: "task" })
  yield* agents.insert({ id: "a1", capabilities: ["inference", "training"], load: 0.2 })
  yield* agents.insert({ id: "a2", capabilities: ["inference"], load: 0.9 })
  yield* agents.insert({ id: "a3", capabilities: ["consensus"] })

  // eq on a list field means membership; the index on "capabilities" serves it.
  const idle = yield* agents.query({
    where: [Criteria.eq("capabilities", "inference"), Criteria.lt("load", 0.5)],
    orderBy: { path: "load" }
  })

  // Both writes or neither: the second insert fails (task t1 is taken), so a1's load is untouched.
  const assign = (task: string, agent: string) =>
    Transaction.run(Effect.gen(function*() {
      yield* agents.update(agent, (a) => ({ ...a, load: (a.load ?? 0) + 0.3 }))
      yield* assignments.insert({ task, agent })
    }))
  yield* assign("t1", "a1")
  const refused = yield* Effect.flip(assign("t1", "a1"))
  return { idle: idle.map((row) => row.key), refused: refused._tag, load: (yield* agents.get("a1")).value.load }
}).pipe(Effect.provide(MemoryStore.layer))

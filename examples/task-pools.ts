// examples/task-pools.ts — bounded named pools; one Exit per item, failures isolated
import { Effect, Exit } from "effect"
import { TaskPools } from "effect-foundation"

export const program = Effect.gen(function*() {
  const pools = yield* TaskPools.TaskPools // general 10 / 30 s, agent_operations 20 / 30 s, ...
  const exits = yield* pools.executeBatch("general", [1, 2, 3, 4], (n) =>
    n === 3 ? Effect.fail(`item ${n} failed`) : Effect.succeed(n * 10), { timeoutPerItem: "1 second" })
  return exits.map((exit) => Exit.isSuccess(exit) ? exit.value : "failed") // [10, 20, "failed", 40]
}).pipe(Effect.provide(TaskPools.layer()))

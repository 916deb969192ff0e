// examples/constraints.ts — x + y = z with x < y over 1..10: every solution, the first one, and the same set from 3 workers
import { Effect } from "effect"
import { Constraints } from "effect-foundation"

const digits = Array.from({ length: 10 }, (_, i) => i + 1) // 1..10

export const program = Effect.gen(function*() {
  const problem = yield* Constraints.problem({
    variables: { x: digits, y: digits, z: digits },
    constraints: [
      { name: "sum", scope: ["x", "y", "z"], predicate: (a) => a.x! + a.y! === a.z! },
      { name: "ordered", scope: ["x", "y"], predicate: (a) => a.x! < a.y! }
    ]
  })
  const all = yield* Constraints.solve(problem) // every solution, in search order
  const first = yield* Constraints.solveOne(problem, { ac3: true }) // fails with NoSolutionError if none
  const split = yield* Constraints.solveDistributed(problem, { workers: 3 }) // x's domain split in 3
  return { count: all.solutions.length, first, distributedCount: split.solutions.length, splitOn: split.splitOn }
})

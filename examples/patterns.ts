// examples/patterns.ts — a pipeline that rolls back, an ensemble with a slow member, a bounded map-reduce
import { Effect, Ref } from "effect"
import { Patterns } from "effect-foundation"

export const program = Effect.gen(function*() {
  // Pipeline: an order goes through reserve → charge → ship. Shipping fails and its policy is
  // "compensate": the completed stages are undone in reverse (refund, then release).
  const log = yield* Ref.make<ReadonlyArray<string>>([])
  const note = (line: string) => Ref.update(log, (l) => [...l, line])
  const order = { id: "o-1", steps: [] as ReadonlyArray<string> }
  type Order = typeof order
  const step = (name: string) => (o: Order) => Effect.as(note(name), { ...o, steps: [...o.steps, name] })
  const shipped = yield* Patterns.pipeline<Order, string>([
    { name: "reserve", run: step("reserve"), compensate: () => note("release") },
    { name: "charge", run: step("charge"), compensate: () => note("refund") },
    { name: "ship", run: () => Effect.fail("no courier"), onError: "compensate" }
  ], order).pipe(Effect.either)

  // Ensemble: three classifiers, each with 100 ms; "slow" times out. Two answers meet the default
  // quorum ⌊3/2⌋ + 1 = 2; they tie 1–1 and the default tie-break "first" takes member order.
  const vote = yield* Patterns.ensemble([
    { name: "tree", run: Effect.succeed("cat") },
    { name: "svm", run: Effect.succeed("dog") },
    { name: "slow", run: Effect.as(Effect.sleep("1 second"), "dog") }
  ], { timeout: "100 millis", combine: "majority" })

  // Weighted average renormalised over the members that answered: (0.5·2 + 1.5·4) / (0.5 + 1.5) = 3.5.
  const average = yield* Patterns.ensemble([
    { name: "a", run: Effect.succeed(2), weight: 0.5 },
    { name: "b", run: Effect.succeed(4), weight: 1.5 },
    { name: "c", run: Effect.fail("offline"), weight: 8 }
  ], { timeout: "100 millis", combine: "weightedAverage" })

  // Map-reduce: squares of 1..10 summed, at most 3 maps at a time.
  const sumOfSquares = yield* Patterns.mapReduce([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], {
    map: (x) => Effect.succeed(x * x),
    reduce: (acc, y) => acc + y,
    initial: 0,
    concurrency: 3
  })

  return {
    pipeline: shipped._tag === "Left" && shipped.left._tag === "PipelineError"
      ? { failedStage: shipped.left.stage, compensated: shipped.left.compensated }
      : "completed",
    log: yield* Ref.get(log),
    vote: vote.value,
    outcomes: vote.outcomes.map((o) => `${o.name}:${o.status}`),
    average: average.value,
    sumOfSquares
  }
})

// examples/variables.ts — shared hyperparameters: enforced bounds, all-or-nothing updates, a vote, a change stream
import { Chunk, Effect, Fiber, Stream } from "effect"
import { Variables } from "effect-foundation"

export const program = Effect.scoped(Effect.gen(function*() {
  const space = yield* Variables.makeSpace("trainer")
  const lr = yield* space.define("lr", Variables.continuous({ min: 1e-4, max: 1, scale: "log", initial: 0.01 }))
  const momentum = yield* space.define("momentum", Variables.continuous({ min: 0, max: 0.99, initial: 0.9 }))
  const batch = yield* space.define("batch", Variables.discrete([32, 64, 128]))
  // A coupled constraint, checked inside every transaction that writes lr or momentum.
  yield* space.constrain("effective step", [lr, momentum], ([l, m]) => l / (1 - m) <= 1)

  const changes = yield* lr.subscribe // scoped: unsubscribes when the scope closes
  const watcher = yield* Effect.fork(Stream.runCollect(Stream.take(changes, 2)))

  yield* space.updateMany({ lr: 0.05, momentum: 0.9 }, { source: "scheduler" })
  // momentum 2.0 is out of bounds: lr is NOT written either, and no change event is published.
  const rejected = yield* Effect.flip(space.updateMany({ lr: 0.02, momentum: 2.0 }))
  yield* lr.update(0.02)

  // Three agents propose a batch size; the plurality wins and is written like any update.
  const chosen = yield* batch.coordinate([
    { agent: "a1", value: 32 },
    { agent: "a2", value: 64 },
    { agent: "a3", value: 64 }
  ], "vote")

  const seen = Chunk.toReadonlyArray(yield* Fiber.join(watcher)).map((c) => [c.previous, c.current])
  return {
    snapshot: yield* space.snapshot,
    rejected: `${rejected._tag}: ${"constraint" in rejected ? rejected.constraint : ""}`,
    seen,
    chosen,
    lrHistory: (yield* lr.history()).map((e) => e.value)
  }
}))

// examples/barrier.ts — parties wait for each other, epoch after epoch; one party's timeout breaks the wait for all
import { Clock, Effect } from "effect"
import { Barrier } from "effect-foundation"

export const program = Effect.gen(function*() {
  const barriers = yield* Barrier.Barriers
  const start = yield* Clock.currentTimeMillis

  // Three workers, two epochs each: nobody starts epoch 1 before all three finished epoch 0.
  const epoch = yield* barriers.create({ name: "epoch", parties: 3, cyclic: true, timeout: "1 minute" })
  const worker = (id: string, workMillis: number) =>
    Effect.forEach([0, 1], () =>
      Effect.gen(function*() {
        yield* Effect.sleep(workMillis) // the work of this epoch
        const { generation } = yield* epoch.await // released when the third party arrives
        return `${id}:${generation}`
      }))
  const logs = yield* Effect.all([worker("a", 100), worker("b", 300), worker("c", 200)], { concurrency: "unbounded" })
  const tookMillis = (yield* Clock.currentTimeMillis) - start // each epoch waits for the slowest worker

  // Three parties expected, two come: the first timeout breaks the generation for everyone waiting.
  const team = yield* barriers.create({ name: "team", parties: 3 })
  const [timedOut, others] = yield* Effect.all(
    [Effect.flip(team.awaitWithin("5 seconds")), Effect.flip(team.awaitWithin("1 minute"))],
    { concurrency: "unbounded" }
  )

  // Nobody uses "team" any more: the registry sweeps it once idle for `idleTimeout` (see the layer below).
  yield* Effect.sleep("15 minutes")
  const swept = yield* barriers.get("team").pipe(
    Effect.as("still there"),
    Effect.catchTag("NotFoundError", (e) => Effect.succeed(e._tag))
  )
  return {
    epochs: [0, 1].flatMap((i) => logs.map((log) => log[i])), // ["a:0", "b:0", "c:0", "a:1", "b:1", "c:1"]
    tookMillis, // 600
    trips: (yield* epoch.status).trips, // 2
    timedOut: timedOut._tag, // "BarrierTimeoutError"
    others: others._tag, // "BarrierBrokenError"
    swept // "NotFoundError"
  }
}).pipe(Effect.provide(Barrier.layer({ idleTimeout: "10 minutes", sweepInterval: "1 minute" })), Effect.scoped)

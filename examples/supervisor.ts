// examples/supervisor.ts — OTP-style restarts: a crashing worker comes back, its siblings are untouched
import { Effect, Ref } from "effect"
import { Supervisor } from "effect-foundation"

export const program = Effect.scoped(Effect.gen(function*() {
  const starts = yield* Ref.make<ReadonlyArray<string>>([])
  const worker = (id: string, crashOnFirstStart: boolean): Supervisor.ChildSpec => ({
    id,
    run: Effect.gen(function*() {
      const { incarnation } = yield* Supervisor.ChildContext
      yield* Ref.update(starts, (s) => [...s, `${id}#${incarnation}`])
      if (crashOnFirstStart && incarnation === 1) return yield* Effect.fail("lost connection")
      return yield* Effect.never // serve forever
    })
  })
  const supervisor = yield* Supervisor.make({
    name: "workers",
    strategy: "one_for_one",
    maxRestarts: 3, // more than 3 restarts within 5 s: stop everything and escalate
    within: "5 seconds",
    children: [worker("ingest", true), worker("report", false)]
  })
  yield* Effect.repeatN(Effect.yieldNow(), 20)
  return { starts: yield* Ref.get(starts), children: (yield* supervisor.children).map((c) => `${c.id}:${c.status}`) }
}))

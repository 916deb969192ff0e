// examples/bulkhead-timeout.ts — a concurrency limit and a cheap time limit
import { Effect } from "effect"
import { Bulkhead, Timeout } from "effect-foundation"

export const program = Effect.scoped(Effect.gen(function*() {
  const bulkhead = yield* Bulkhead.make({ name: "reports", maxConcurrent: 4, maxQueued: 16 })
  const timeout = yield* Timeout.make({ name: "reports", duration: "2 seconds" }) // one timer for all calls

  // Promise work: timed without forking a fiber; the signal is aborted on timeout.
  const fetchReport = (id: number) => timeout.promise((signal) => Promise.resolve({ id, aborted: signal.aborted }))

  const reports = yield* Effect.forEach([1, 2, 3], (id) => bulkhead.run(fetchReport(id)), { concurrency: "unbounded" })
  return { reports, stats: yield* bulkhead.stats }
}))

// examples/lock.ts — FIFO locks with fencing tokens; an expired lease hands the lock on; a waiter that gives up is gone
import { Effect } from "effect"
import { Lock } from "effect-foundation"

export const program = Effect.gen(function*() {
  const locks = yield* Lock.Locks

  // Three writers want the ledger at once: they get it one after another, in arrival order,
  // each with a greater fencing token (a store can reject writes carrying an older token).
  const writes = yield* Effect.all(
    ["alice", "bob", "carol"].map((holder) =>
      locks.withLock("ledger", (lease) => Effect.as(Effect.sleep("100 millis"), `${lease.holder}:${lease.token}`), { holder })
    ),
    { concurrency: "unbounded" }
  )

  // A holder that stalls past its lease loses the lock to the next waiter, and its lease is stale.
  const expired = yield* Effect.scoped(Effect.gen(function*() {
    const stalled = yield* locks.acquire("job", { holder: "stalled", lease: "10 seconds" })
    const next = yield* Effect.fork(locks.withLock("job", (lease) => Effect.succeed(lease.token), { holder: "next" }))
    yield* Effect.sleep("10 seconds") // no renew: the lease runs out
    const nextToken = yield* next
    const staleReason = yield* locks.validate(stalled).pipe(
      Effect.as("still valid"),
      Effect.catchTag("StaleLeaseError", (e) => Effect.succeed(e.reason))
    )
    return { stalledToken: stalled.token, nextToken, staleReason }
  }))

  // A waiter that gives up leaves the queue for good: it never becomes the owner later.
  const gaveUp = yield* Effect.scoped(Effect.gen(function*() {
    yield* locks.acquire("report", { holder: "owner" })
    return yield* locks.withLock("report", Effect.void, { holder: "impatient", timeout: "1 second" }).pipe(
      Effect.as("got it"),
      Effect.catchTag("LockTimeoutError", (e) => Effect.succeed(e.message))
    )
  })) // the owner's scope closes here: the lock is released
  const report = yield* locks.status("report")

  return {
    writes, // ["alice:1", "bob:2", "carol:3"]
    expired, // { stalledToken: 4, nextToken: 5, staleReason: "expired" }
    gaveUp, // "\"impatient\" timed out after 1s waiting for lock \"report\" (held by \"owner\")"
    reportLocked: report.locked // false
  }
}).pipe(Effect.provide(Lock.layer()))

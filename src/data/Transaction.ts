/**
 * Transaction: several repository operations, on one or more repositories of a store, that
 * commit all together or not at all (the original's `AtomicTransaction` was a best-effort saga
 * with no isolation; this is a transaction).
 *
 * `Transaction.run(effect)` runs `effect` as one transaction of the `RepositoryStore` of the
 * context:
 * - Success commits every write of the effect at once; a failure, a defect or an interruption
 *   undoes all of them: every repository is exactly as before.
 * - Isolation: no reader outside the transaction sees any of its writes before the commit, nor
 *   part of them after. Inside, reads see the transaction's own writes.
 * - No deadlock between repositories: a transaction holds its store's single write lock (memory,
 *   SQLite) or the database's own locks (PostgreSQL, which detects deadlocks and fails one side
 *   with a `StoreError`), never per-repository locks taken in arbitrary order. A write of the
 *   same store made inside the transaction (from the same fiber or a fiber it forked) joins it
 *   instead of waiting for the lock the transaction holds. (A transaction that waits for a write
 *   of the same store made by a fiber it did not fork waits for itself: make the write inside.)
 * - Nested `run` calls are savepoints: if an inner one fails and the outer effect recovers, only
 *   the inner writes are undone.
 * - Change events are published after the commit, in order; a rolled-back transaction publishes
 *   none.
 */
import * as Effect from "effect/Effect"
import { RepositoryStore, type StoreError } from "./Repository.js"

/** Runs `effect` as one all-or-nothing transaction of the store of the context. */
export const run = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | StoreError, R | RepositoryStore> =>
  Effect.flatMap(RepositoryStore, (store) => store.transaction(effect))

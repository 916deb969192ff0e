/**
 * The second half of `foundation demo`: the infrastructure services at work around the same
 * flaky service — a cache in front of it, a task-pool fan-out, and resource backpressure rising
 * and falling as work holds entries.
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Ref from "effect/Ref"
import type { ServiceUnavailableError } from "../errors/FoundationError.js"
import * as Cache from "../infra/Cache.js"
import * as ResourceManager from "../infra/ResourceManager.js"
import * as TaskPools from "../infra/TaskPools.js"

/** What the tour saw. */
export interface ServicesReport {
  readonly cache: { readonly hits: number; readonly misses: number; readonly computations: number; readonly coalesced: number }
  readonly fanOut: { readonly items: number; readonly succeeded: number; readonly failed: number; readonly peak: number }
  readonly levels: ReadonlyArray<string>
}

/** Runs the tour over `lookup` (a call to the service, already protected). */
export const tour = <E>(
  lookup: (item: number) => Effect.Effect<string, E | ServiceUnavailableError>
): Effect.Effect<ServicesReport> =>
  Effect.scoped(Effect.gen(function*() {
    // 1. A cache in front of the service: 60 lookups over 12 items, concurrent misses coalesced.
    yield* Console.log("\nA cache in front of the service (60 lookups of 12 items, 4 at a time):")
    const cache = yield* Cache.make<number, string, E | ServiceUnavailableError>({ name: "inventory", ttl: "2 seconds" })
    yield* Effect.forEach(
      Array.from({ length: 60 }, (_, i) => (i * 7) % 12),
      (item) => Effect.exit(cache.getOrCompute(item, lookup(item))),
      { concurrency: 4, discard: true }
    )
    const cacheStats = yield* cache.stats
    yield* Console.log(
      `  ${cacheStats.hits} hits, ${cacheStats.misses} misses; ${cacheStats.computations} calls reached the service ` +
        `(${cacheStats.coalesced} concurrent misses shared a call)`
    )

    // 2. A pool fan-out: 24 lookups on a pool of 4; each item's failure stays its own.
    yield* Console.log("\nA fan-out of 24 lookups on a task pool of 4:")
    const pool = yield* TaskPools.makePool({ name: "fan-out", maxConcurrency: 4, timeout: "1 second" })
    const current = yield* Ref.make(0)
    const peak = yield* Ref.make(0)
    const tracked = (item: number) =>
      Effect.acquireUseRelease(
        Effect.flatMap(Ref.updateAndGet(current, (n) => n + 1), (n) => Ref.update(peak, (p) => Math.max(p, n))),
        () => lookup(100 + item),
        () => Ref.update(current, (n) => n - 1)
      )
    const exits = yield* pool.executeBatch(Array.from({ length: 24 }, (_, i) => i), tracked).pipe(Effect.orDie)
    const succeeded = exits.filter(Exit.isSuccess).length
    const fanOut = { items: exits.length, succeeded, failed: exits.length - succeeded, peak: yield* Ref.get(peak) }
    yield* Console.log(`  ${fanOut.succeeded} succeeded, ${fanOut.failed} failed (each in its own Exit); at most ${fanOut.peak} at once`)

    // 3. Resource backpressure: work holds entries; the level rises and falls with them.
    yield* Console.log("\nResource backpressure (100 entries allowed; work holds 30 each):")
    const levels: Array<string> = []
    const manager = yield* ResourceManager.make({ maxEntries: 100, alertThreshold: 0.5, severeThreshold: 0.8 }).pipe(
      Effect.provide(ResourceManager.processMemoryProbe),
      Effect.orDie
    )
    yield* manager.onAlert((change) =>
      Effect.sync(() => levels.push(`${change.from} → ${change.to}`)).pipe(
        Effect.zipRight(Console.log(`  level ${change.from} → ${change.to} (entries at ${Math.round(change.entriesRatio * 100)}%)`))
      )
    )
    const hold = (n: number): Effect.Effect<void> =>
      Effect.scoped(Effect.gen(function*() {
        const held = yield* Effect.either(manager.acquire("entries", 30))
        if (held._tag === "Left") {
          yield* Console.log(`  work ${n}: refused (${held.left._tag})`)
          return
        }
        yield* Console.log(`  work ${n}: holds 30 entries`)
        yield* Effect.repeatN(Effect.yieldNow(), 5) // let the alert handler report the change
        if (n < 4) yield* hold(n + 1)
        else yield* Effect.yieldNow()
      }))
    yield* hold(1)
    yield* Effect.repeatN(Effect.yieldNow(), 10) // let the alert handler print the last change
    return {
      cache: {
        hits: cacheStats.hits,
        misses: cacheStats.misses,
        computations: cacheStats.computations,
        coalesced: cacheStats.coalesced
      },
      fanOut,
      levels
    }
  })).pipe(Effect.orDie)

// examples/cache.ts — per-entry TTL, LRU eviction, one computation for concurrent misses
import { Effect, Ref } from "effect"
import { Cache } from "effect-foundation"

export const program = Effect.scoped(Effect.gen(function*() {
  const prices = yield* Cache.make<string, number>({ name: "prices", maxSize: 10_000, ttl: "30 seconds" })
  const fetches = yield* Ref.make(0)
  const fetchPrice = (sku: string) =>
    Effect.zipRight(Ref.update(fetches, (n) => n + 1), Effect.promise(() => Promise.resolve(sku.length * 10)))

  // 20 concurrent misses for one key: one fetch, the others wait for it.
  yield* Effect.forEach(Array.from({ length: 20 }), () => prices.getOrCompute("sku-42", fetchPrice("sku-42")), {
    concurrency: "unbounded"
  })
  yield* prices.put("sku-7", 99, "5 seconds") // a TTL of its own
  const stats = yield* prices.stats
  return { fetches: yield* Ref.get(fetches), cached: yield* prices.get("sku-42"), coalesced: stats.coalesced }
}))

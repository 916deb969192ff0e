// examples/protect.ts — the whole stack in one call
import { Effect, Either } from "effect"
import { CircuitBreaker, Protect, RateLimiter, Retry } from "effect-foundation"

export const program = Effect.scoped(Effect.gen(function*() {
  const limiter = yield* RateLimiter.make({ name: "search-api", limit: 100, window: "1 second" })
  const search = yield* Protect.make({
    name: "search",
    timeout: "2 seconds",
    bulkhead: { maxConcurrent: 10, maxQueued: 50 },
    rateLimit: { limiter, key: "search" },
    breaker: { trip: CircuitBreaker.countWindow({ size: 50, failureRate: 0.5 }), resetAfter: "30 seconds" },
    retry: Either.getOrThrow(Retry.exponential({ base: "50 millis", jitter: "full", maxAttempts: 3 }))
  })
  const hits = yield* search.promise((signal) => Promise.resolve({ query: "effect", aborted: signal.aborted }))
  const breaker = yield* search.policies.breaker!.stats
  return { hits, breakerState: breaker.state, successes: breaker.successes }
}))

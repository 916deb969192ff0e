// examples/rate-limiter.ts — per-key limits that deny without consuming
import { Duration, Effect } from "effect"
import { RateLimiter } from "effect-foundation"

export const program = Effect.scoped(Effect.gen(function*() {
  const limiter = yield* RateLimiter.make({ name: "api", algorithm: "sliding-window", limit: 2, window: "1 minute" })

  yield* limiter.consume("alice")
  yield* limiter.consume("alice")
  const denied = yield* Effect.flip(limiter.consume("alice")) // RateLimitedError, nothing consumed
  yield* limiter.consume("bob") // every key has its own allowance

  return {
    retryAfterMillis: Duration.toMillis(denied.retryAfter),
    alice: (yield* limiter.status("alice")).remaining, // 0
    bob: (yield* limiter.status("bob")).remaining // 1
  }
}))

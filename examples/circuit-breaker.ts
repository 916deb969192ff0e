// examples/circuit-breaker.ts — stop calling a dependency that keeps failing
import { Effect, Schedule } from "effect"
import { CircuitBreaker } from "effect-foundation"

export const program = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make({
    name: "payments",
    trip: CircuitBreaker.consecutive(3), // or countWindow({ size, failureRate }) / timeWindow({ window, buckets })
    resetAfter: Schedule.exponential("1 second"), // 1 s, 2 s, 4 s ... while it keeps failing
    halfOpenMaxCalls: 1
  })
  const charge = (ok: boolean) => breaker.protect(ok ? Effect.succeed("charged") : Effect.fail("card network down"))

  yield* Effect.exit(charge(false))
  yield* Effect.exit(charge(false))
  yield* Effect.exit(charge(false)) // third failure in a row: the breaker opens
  const rejected = yield* Effect.flip(charge(true)) // rejected without running the call
  return {
    state: yield* breaker.state, // "open"
    rejectedWith: rejected, // "card network down" | CircuitOpenError
    snapshot: yield* breaker.snapshot // JSON-safe, restore it after a restart
  }
})

// examples/retry.ts — retry transient failures with a policy and a shared budget
import { Effect, Either, Ref } from "effect"
import { FoundationError, Retry } from "effect-foundation"

export const program = Effect.gen(function*() {
  const policy = Either.getOrThrow(Retry.exponential({
    base: "100 millis",
    cap: "2 seconds",
    jitter: "full",
    maxAttempts: 5
  }))
  const budget = yield* Retry.budget({ capacity: 20, refill: { tokens: 1, every: "100 millis" } })

  const attempts = yield* Ref.make(0)
  const flaky = Ref.updateAndGet(attempts, (n) => n + 1).pipe(
    Effect.flatMap((n) =>
      n < 3 ? Effect.fail(new FoundationError.ServiceUnavailableError({ service: "search" })) : Effect.succeed("found")
    )
  )
  // Transient errors are retried; validation, permanent and system errors are not.
  const result = yield* Retry.retry(flaky, Retry.presets.immediate, { budget })
  return { result, attempts: yield* Ref.get(attempts), policy: policy.name }
})

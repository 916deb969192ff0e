// examples/recovery.ts — choose retry / circuit-break / fallback / propagate / compensate by category
import { Effect, Either } from "effect"
import { FoundationError, Recovery, Retry } from "effect-foundation"

const loadProfile = (id: string) => Effect.fail(new FoundationError.ServiceUnavailableError({ service: "profiles", reason: id }))

export const program = Effect.gen(function*() {
  const profile = yield* Recovery.withRecovery(loadProfile("u1"), {
    retry: Either.getOrThrow(Retry.immediate({ maxAttempts: 3 })), // transient → retry
    fallback: { value: { id: "u1", name: "(cached)" } } // then fall back
  })
  const compensated = yield* Effect.flip(
    Recovery.withRecovery(Effect.die(new Error("disk full")), {
      compensate: (error) => Effect.log(`rolling back after ${error._tag}`) // system → compensate, still fails
    })
  )
  return { profile, compensated: compensated._tag } // compensated: "InternalError", cause kept
})

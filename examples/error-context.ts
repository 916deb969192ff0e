// examples/error-context.ts — operation context that follows the fiber and survives nesting
import { Effect, Option } from "effect"
import { ErrorContext, FoundationError } from "effect-foundation"

const chargeCard = Effect.gen(function*() {
  yield* ErrorContext.addBreadcrumb("card.authorize")
  return yield* new FoundationError.ServiceUnavailableError({ service: "card-network" })
}).pipe(ErrorContext.withContext("payment.charge", { metadata: { amount: 42 } }))

export const program = Effect.gen(function*() {
  const error = yield* Effect.flip(
    chargeCard.pipe(ErrorContext.withContext("checkout", { correlationId: "corr_demo", metadata: { cart: "c1" } }))
  )
  const outside = yield* ErrorContext.current // the parent is restored: none out here
  return {
    correlationId: error.operation?.correlationId, // "corr_demo", inherited
    trail: error.operation?.breadcrumbs.map((b) => b.name), // ["checkout", "payment.charge", "card.authorize"]
    metadata: error.operation?.metadata, // { cart: "c1", amount: 42 }
    outside: Option.isNone(outside)
  }
})

// examples/resource-manager.ts — scoped tokens, typed denials, backpressure levels
import { Effect } from "effect"
import { ResourceManager } from "effect-foundation"

export const program = Effect.scoped(Effect.gen(function*() {
  const resources = yield* ResourceManager.make({ maxEntries: 1000, alertThreshold: 0.9, severeThreshold: 0.95 })
  // Anything that holds entries can report its size; it is measured fresh on every acquire.
  yield* resources.register("registry", Effect.succeed(850))

  const admitted = yield* resources.withResource("entries", 100, Effect.succeed("bulk import done"))
  const refused = yield* Effect.flip(Effect.scoped(resources.acquire("entries", 200))) // 850 + 200 > 1000
  return { admitted, refused: refused._tag, level: yield* resources.level } // the token was released: 85%
})).pipe(Effect.provide(ResourceManager.processMemoryProbe))

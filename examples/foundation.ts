// examples/foundation.ts — every service in one layer: checked before anything starts, stopped in reverse order
import { Effect } from "effect"
import { CircuitBreaker, Foundation, HealthChecker, Protocols } from "effect-foundation"

const config: Foundation.FoundationConfig = {
  store: "memory", // or "sqlite" with sqliteFile, "pg" with pgUrl (or FOUNDATION_STORE, ...)
  rateLimiters: { api: { limit: 2, window: "1 minute" } },
  circuitBreakers: { trip: CircuitBreaker.consecutive(3) }
}

export const program = Effect.gen(function*() {
  // A contradictory configuration fails at once, naming the setting: nothing was started.
  const refused = yield* Effect.flip(Foundation.resolve({ store: "pg", sqliteFile: "app.db" }))

  const { seen, lifecycle } = yield* Effect.gen(function*() {
    // The three protocols, served by the in-process services.
    const registry = yield* Protocols.RegistryProtocol
    yield* registry.register("gpu-1", { capabilities: ["inference"], health: "healthy", node: "n1", resources: {} })
    yield* registry.register("cpu-1", { capabilities: ["inference", "etl"], health: "healthy", node: "n2", resources: {} })
    const inference = yield* registry.findByAttribute("capability", "inference")

    const coordination = yield* Protocols.CoordinationProtocol
    const round = yield* coordination.startConsensus(["gpu-1", "cpu-1"], "deploy v2")
    yield* coordination.vote(round, "gpu-1", "yes")
    yield* coordination.vote(round, "cpu-1", "yes")
    const { decision } = yield* coordination.awaitConsensus(round)

    const infrastructure = yield* Protocols.InfrastructureProtocol
    yield* infrastructure.checkRateLimit("api", "alice")
    yield* infrastructure.checkRateLimit("api", "alice")
    const third = yield* Effect.flip(infrastructure.checkRateLimit("api", "alice"))

    const health = yield* (yield* HealthChecker.HealthChecker).checkAll
    return {
      seen: {
        inference: inference.map((e) => e.id).sort(),
        decision,
        third: third._tag,
        health: health.status,
        checks: health.checks.length
      },
      lifecycle: yield* Foundation.Lifecycle
    }
  }).pipe(Effect.provide(Foundation.layer(config))) // built here, closed when this block ends

  const history = yield* lifecycle.history
  const stopped = history.filter((e) => e.event === "stopped").map((e) => e.service)
  return {
    refused: refused.message,
    ...seen,
    services: stopped.length,
    firstStopped: stopped[0],
    lastStopped: stopped[stopped.length - 1]
  }
})

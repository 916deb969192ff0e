// examples/telemetry.ts — events, spans and Prometheus text from one service
import { Chunk, Effect, Fiber, Stream } from "effect"
import { CircuitBreaker, EventBus, Telemetry } from "effect-foundation"

export const program = Effect.gen(function*() {
  const telemetry = yield* Telemetry.Telemetry
  const bus = yield* EventBus.EventBus
  // Watch every breaker state change (a scoped stream over the bus).
  const watching = yield* Effect.fork(
    Stream.runCollect(Stream.take(telemetry.subscribe("foundation.circuit_breaker.state_change"), 1))
  )
  while ((yield* bus.stats).subscriptions.length === 0) yield* Effect.yieldNow()

  // Policies made where Telemetry is provided report to it.
  const breaker = yield* CircuitBreaker.make({ name: "search", trip: CircuitBreaker.consecutive(1) })
  yield* Effect.exit(breaker.protect(Effect.fail("index offline")))

  // A span: start/stop (or exception) events, an Effect span, and a duration histogram.
  yield* telemetry.span("reports.build", Effect.succeed("done"), { report: "weekly" })

  const [change] = Chunk.toReadonlyArray(yield* Fiber.join(watching))
  const metrics = yield* telemetry.prometheus // text exposition of every metric
  return {
    change: change?.metadata, // { breaker: "search", from_state: "closed", to_state: "open" }
    hasSpanMetric: metrics.includes(`foundation_events_total{event="reports.build.stop"} 1`)
  }
}).pipe(Effect.provide(Telemetry.layerWithBus()))

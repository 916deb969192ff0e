// examples/otel.ts — export spans and metrics over OTLP/HTTP (to a collector, Jaeger, Tempo...)
import { Effect, Layer } from "effect"
import { Otel } from "effect-foundation"

// Everything run under this layer exports its spans (`Effect.withSpan`, `Effect.fn`) and metrics;
// closing it flushes what is pending.
export const ObservabilityLive: Layer.Layer<never, unknown> = Otel.layer({
  baseUrl: "http://127.0.0.1:4318",
  serviceName: "checkout",
  serviceVersion: "1.4.2",
  exportInterval: "5 seconds"
})

export const handler = Effect.succeed("ok").pipe(Effect.withSpan("checkout.handle"), Otel.withComponent("checkout"))

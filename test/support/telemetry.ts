/** Test helpers for telemetry events taken from an `EventBus` subscription. */
import { Effect, Option } from "effect"
import type * as Telemetry from "../../src/observability/Telemetry.js"

/** A subscription's pending events, as `[type, measurements, metadata]`, without waiting. */
export const drainTelemetry = (
  sub: { readonly poll: Effect.Effect<Option.Option<{ readonly type: string; readonly data: unknown }>> }
): Effect.Effect<Array<[string, unknown, unknown]>> =>
  Effect.gen(function*() {
    const seen: Array<[string, unknown, unknown]> = []
    for (;;) {
      const next = yield* sub.poll
      if (Option.isNone(next)) return seen
      const { measurements, metadata } = next.value.data as Telemetry.TelemetryEvent
      seen.push([next.value.type, measurements, metadata])
    }
  })

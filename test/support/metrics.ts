/** Test helpers for metrics of the global registry. */
import { Effect, Metric } from "effect"

/** The value of the counter `name` with exactly these tags (0 when it has none yet). */
export const counterValue = (name: string, tags: Readonly<Record<string, string>>): Effect.Effect<number> =>
  Effect.map(Metric.snapshot, (pairs) => {
    const pair = pairs.find((p) =>
      p.metricKey.name === name &&
      p.metricKey.tags.length === Object.keys(tags).length &&
      p.metricKey.tags.every((t) => tags[t.key] === t.value)
    )
    const state: unknown = pair?.metricState
    return typeof state === "object" && state !== null && "count" in state ? Number(state.count) : 0
  })

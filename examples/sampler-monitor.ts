// examples/sampler-monitor.ts — bound telemetry volume; time operations
import { Effect, Random } from "effect"
import { PerformanceMonitor, Sampler } from "effect-foundation"

export const program = Effect.gen(function*() {
  const sampler = yield* Sampler.make({
    defaultStrategy: { strategy: "always" },
    events: {
      "db.query": { strategy: "random", rate: 0.1 }, // one in ten
      "http.request": { strategy: "rate-limited", maxPerSecond: 100 }
    }
  })
  const kept = yield* Effect.gen(function*() {
    let n = 0
    for (let i = 0; i < 1000; i++) if (yield* sampler.shouldSample("db.query")) n++
    return n
  }).pipe(Effect.withRandom(Random.make(42))) // a seed makes the decisions reproducible

  const monitor = yield* PerformanceMonitor.make()
  yield* monitor.timeOperation("registry.lookup", Effect.succeed("agent-1"))
  yield* Effect.exit(monitor.timeOperation("registry.lookup", Effect.fail("missing")))
  const lookups = yield* monitor.operationStats("registry.lookup")

  return { kept, lookups: lookups._tag === "Some" ? { count: lookups.value.count, errors: lookups.value.errors } : null }
})

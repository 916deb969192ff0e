// examples/health-checker.ts — periodic checks behind breakers, one aggregated report; the breaker closes on recovery
// (HealthChecker is imported relatively until src/index.ts exports it.)
import { Effect, Layer, Option, Ref } from "effect"
import { CircuitBreaker, HealthChecker } from "effect-foundation"

export const program = Effect.gen(function*() {
  const checker = yield* HealthChecker.HealthChecker
  const databaseUp = yield* Ref.make(false)
  // A check of your own: it fails while the database is down.
  yield* checker.register({
    name: "database",
    check: Effect.flatMap(Ref.get(databaseUp), (up) => up ? Effect.void : Effect.fail("connection refused")),
    interval: "30 seconds", // first run at once, then 30 s after each run
    timeout: "2 seconds"
  })
  // A built-in check (the CircuitBreakers service); not critical: at worst it degrades the system.
  yield* checker.register({ name: "breakers", check: HealthChecker.checks.circuitBreakers(), critical: false })

  yield* Effect.sleep("61 seconds") // runs at 0, 30 and 60 s fail: the database's breaker opens
  const down = yield* checker.report
  yield* Ref.set(databaseUp, true)
  yield* Effect.sleep("30 seconds") // the run at 90 s is the half-open trial: it succeeds, the breaker closes
  const up = yield* checker.report

  const view = (report: HealthChecker.Report) => {
    const db = report.checks.find((c) => c.name === "database")!
    return {
      status: report.status,
      database: {
        status: db.status,
        breaker: db.breaker,
        consecutiveFailures: db.consecutiveFailures,
        lastError: Option.getOrNull(db.lastError)
      }
    }
  }
  return { down: view(down), up: view(up) }
}).pipe(
  Effect.provide(Layer.merge(HealthChecker.layer(), CircuitBreaker.layer())),
  Effect.scoped
)

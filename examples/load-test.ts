// examples/load-test.ts — weighted scenarios, ramp-up, warmup, a latency report in milliseconds
import { Effect, Random } from "effect"
import { LoadTest } from "effect-foundation"

const search = Effect.sleep("20 millis")
const checkout = Effect.sleep("80 millis").pipe(Effect.zipRight(Effect.fail("card declined")))

export const program = LoadTest.run([
  { name: "search", weight: 9, run: () => search },
  { name: "checkout", weight: 1, run: () => checkout } // a typed failure counts as an error
], {
  duration: "2 seconds",
  concurrency: 4,
  rampUp: "200 millis", // workers start evenly over it
  warmup: "300 millis", // load runs, nothing is recorded
  scenarioTimeout: "1 second"
}).pipe(
  Effect.map((report) => ({
    requests: report.totalRequests,
    errors: report.errors,
    throughput: report.throughput, // requests per second of the measured window
    p99: report.latency.p99 // milliseconds
  })),
  Effect.withRandom(Random.make(7))
)

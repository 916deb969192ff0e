/**
 * The `foundation demo` job (`npm start`), in three parts: a flaky in-process service (seeded
 * failures and latency, with an outage in the middle) called through a Protect stack, printing
 * what the breaker, the rate limiter and the retries did; a tour of the infrastructure services
 * around it (`DemoServices`); and the agents' story (`TeamDemo`: a supervised team that elects a
 * leader, votes, meets at a barrier, shares work out to the same flaky service, survives a chaos
 * monkey, and reports its health). Reproducible in what it decides (the seed drives every
 * failure, latency and victim); real time is the point, so it runs on the live clock, in a few
 * seconds.
 */
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import { ServiceUnavailableError, type ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as CircuitBreaker from "../resilience/CircuitBreaker.js"
import * as Protect from "../resilience/Protect.js"
import * as RateLimiter from "../resilience/RateLimiter.js"
import * as Retry from "../resilience/Retry.js"
import * as Foundation from "../Foundation.js"
import * as DemoServices from "./DemoServices.js"
import type { Output } from "./LoadTestCommand.js"
import * as TeamDemo from "./TeamDemo.js"

/** Options of the demo. */
export interface DemoOptions {
  /** Calls to make [160]. */
  readonly calls?: number
  /** Seed of the failures and latencies, and of the chaos monkey [42]. */
  readonly seed?: number
  /** Work items of the agents' story [40]. */
  readonly items?: number
  /** Where the agents' story writes (a terminal gets a redrawn progress bar) [the console, plain lines]. */
  readonly output?: Output
}

/** What the demo saw. */
export interface DemoReport {
  readonly outcomes: Readonly<Record<string, number>>
  readonly stateChanges: ReadonlyArray<string>
  readonly breaker: CircuitBreaker.Stats
  readonly limiter: RateLimiter.Stats
  readonly retries: number
  readonly retriesExhausted: number
  readonly elapsedMillis: number
  /** The infrastructure services' part of the demo. */
  readonly services: DemoServices.ServicesReport
  /** The agents' story. */
  readonly team: TeamDemo.TeamReport
}

/** The phase of the dependency at call `i` of `calls`. */
export const phaseOf = (i: number, calls: number): "healthy" | "outage" | "slow" | "burst" => {
  const at = i / calls
  if (at >= 0.25 && at < 0.5) return "outage"
  if (at >= 0.65 && at < 0.8) return "slow"
  if (at >= 0.9) return "burst"
  return "healthy"
}

/**
 * A dependency with moods: mostly healthy (5% errors, 5–40 ms), an outage (90% errors), a slow
 * spell (latency up to 120 ms, past the 60 ms timeout).
 */
export const flakyService = (calls: number) => (i: number): Effect.Effect<string, ServiceUnavailableError> =>
  Effect.gen(function*() {
    const phase = phaseOf(i, calls)
    const latency = yield* Random.nextIntBetween(5, phase === "slow" ? 120 : 40)
    const failed = (yield* Random.next) < (phase === "outage" ? 0.9 : 0.05)
    yield* Effect.sleep(Duration.millis(latency))
    if (failed) return yield* new ServiceUnavailableError({ service: "inventory", reason: phase })
    return `item-${i}`
  })

/** When call `i` starts: every 15 ms, except the final burst, which arrives all at once. */
const startOf = (i: number, calls: number): Duration.Duration =>
  Duration.millis(15 * (phaseOf(i, calls) === "burst" ? Math.floor(calls * 0.9) : i))

/**
 * The Protect stack the demo and the load test put in front of the inventory service: retry (3
 * attempts, full jitter) ▸ rate limit ▸ bulkhead ▸ breaker (5 bad calls in a row, 400 ms open) ▸
 * timeout (60 ms).
 */
export const inventoryStack = (options: {
  readonly name: string
  readonly limitPer100Millis: number
  readonly maxConcurrent: number
  /** A breaker to use (e.g. one of `CircuitBreakers`) [a breaker of its own: 5 bad calls in a row, 400 ms open]. */
  readonly breaker?: CircuitBreaker.CircuitBreaker
}) =>
  Effect.gen(function*() {
    const limiter = yield* RateLimiter.make({
      name: options.name,
      algorithm: "token-bucket",
      limit: options.limitPer100Millis,
      window: "100 millis"
    })
    const retry = yield* Retry.exponential({
      name: options.name,
      base: "20 millis",
      cap: "200 millis",
      jitter: "full",
      maxAttempts: 3
    })
    const stack = yield* Protect.make({
      name: "inventory",
      timeout: "60 millis",
      bulkhead: { maxConcurrent: options.maxConcurrent, maxQueued: 4 },
      rateLimit: { limiter, key: "inventory" },
      breaker: options.breaker ?? { trip: CircuitBreaker.consecutive(5), resetAfter: "400 millis" },
      retry
    })
    return { retry, stack }
  })

/**
 * Runs the demo and returns what happened (printing as it goes). Bad options fail with a
 * `ValidationError` naming the option before anything starts.
 */
export const run = (options: DemoOptions = {}): Effect.Effect<DemoReport, ValidationError> =>
  Effect.gen(function*() {
    const calls = yield* Validation.positiveInt("calls", options.calls ?? 160)
    const seed = yield* Validation.int("seed", options.seed ?? 42)
    const items = yield* Validation.positiveInt("items", options.items ?? 40)
    return yield* demo({ ...options, calls, seed, items })
  })

const demo = (options: DemoOptions & { readonly calls: number; readonly seed: number; readonly items: number }) =>
  Effect.scoped(Effect.gen(function*() {
    const calls = options.calls
    const started = yield* Effect.clockWith((c) => Effect.succeed(c.unsafeCurrentTimeMillis()))
    const { retry, stack } = yield* inventoryStack({ name: "demo", limitPer100Millis: 10, maxConcurrent: 4 })
    const limiter = stack.policies.rateLimiter!
    const breaker = stack.policies.breaker!
    const changes = yield* Ref.make<Array<string>>([])
    yield* breaker.stateChanges.pipe(
      Stream.runForEach((change) =>
        Effect.gen(function*() {
          const line = `  +${String(change.at - started).padStart(5)} ms  breaker ${change.from} → ${change.to}`
          yield* Ref.update(changes, (all) => [...all, line])
          yield* Console.log(line)
        })
      ),
      Effect.forkScoped
    )
    yield* Console.log(TeamDemo.rule("A flaky dependency behind Protect"))
    yield* Console.log(`Calling a flaky "inventory" service ${calls} times through Protect:`)
    yield* Console.log("  retry (3 attempts) ▸ rate limit (10 per 100 ms) ▸ bulkhead (4 + 4 queued) ▸")
    yield* Console.log("  breaker (5 bad calls in a row, 400 ms open) ▸ timeout (60 ms)")
    yield* Console.log("The service has an outage from 25% to 50% of the calls, a slow spell from 65% to 80%,")
    yield* Console.log("and the last 10% of the calls arrive in one burst.\n")
    const outcomes = new Map<string, number>()
    const service = flakyService(calls)
    yield* Effect.forEach(
      Array.from({ length: calls }, (_, i) => i),
      (i) =>
        Effect.sleep(startOf(i, calls)).pipe(
          Effect.zipRight(stack.run(service(i))),
          Effect.match({ onSuccess: () => "ok", onFailure: (e) => e._tag }),
          Effect.map((outcome) => {
            outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
          })
        ),
      { concurrency: "unbounded", discard: true }
    ).pipe(Effect.withRandom(Random.make(options.seed)))
    yield* Effect.yieldNow()
    const summary = {
      outcomes: Object.fromEntries([...outcomes.entries()].sort()),
      stateChanges: yield* Ref.get(changes),
      breaker: yield* breaker.stats,
      limiter: yield* limiter.stats(),
      retries: (yield* Metric.value(retry.metrics.retries)).count,
      retriesExhausted: (yield* Metric.value(retry.metrics.exhausted)).count,
      elapsedMillis: 0
    }
    const report = summary
    yield* Console.log("\nOutcomes of the calls:")
    for (const [outcome, count] of Object.entries(report.outcomes)) {
      yield* Console.log(`  ${outcome.padEnd(24)} ${String(count).padStart(4)}`)
    }
    yield* Console.log("\nCircuit breaker:")
    yield* Console.log(
      `  state ${report.breaker.state}; ${report.breaker.successes} successes, ${report.breaker.failures} failures, ` +
        `${report.breaker.rejections} calls rejected while open; opened ${
          report.stateChanges.filter((l) => l.endsWith("→ open")).length
        } times`
    )
    yield* Console.log("Rate limiter:")
    yield* Console.log(`  ${report.limiter.allowed} admitted, ${report.limiter.denied} denied`)
    yield* Console.log("Retries:")
    yield* Console.log(`  ${report.retries} retries made, ${report.retriesExhausted} calls gave up after all attempts`)
    // The tour gets a stack of its own: the one above may have been left open by the final burst.
    const tourStack = yield* inventoryStack({ name: "tour", limitPer100Millis: 50, maxConcurrent: 4 })
    yield* Console.log(TeamDemo.rule("Infrastructure services around it"))
    const services = yield* DemoServices.tour((item) => tourStack.stack.run(service(item % calls)))
    // The agents' story: the same flaky service behind a stack whose breaker is the "inventory"
    // breaker of the `CircuitBreakers` service (so the health checks see it). Its mood follows the
    // order of the calls (the n-th call of `items` meets the mood of call n of the first part).
    const items = options.items
    const team = yield* TeamDemo.run({
      seed: options.seed,
      items,
      ...(options.output === undefined ? {} : { output: options.output }),
      inventory: (breaker) =>
        Effect.map(
          inventoryStack({ name: "team", limitPer100Millis: 20, maxConcurrent: 4, breaker }),
          ({ retry, stack }): TeamDemo.Inventory => {
            const mood = flakyService(items)
            let made = 0
            return { retry, lookup: () => Effect.suspend(() => stack.run(mood(made++))) }
          }
        )
    }).pipe(Effect.provide(Foundation.layer()))
    const elapsedMillis = (yield* Effect.clockWith((c) => Effect.succeed(c.unsafeCurrentTimeMillis()))) - started
    yield* Console.log(`\nDone in ${elapsedMillis} ms.`)
    return { ...summary, elapsedMillis, services, team }
  })).pipe(Effect.orDie)

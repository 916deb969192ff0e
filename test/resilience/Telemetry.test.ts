import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber, Option, TestClock } from "effect"
import { ServiceUnavailableError } from "../../src/errors/FoundationError.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as Events from "../../src/observability/Events.js"
import * as Telemetry from "../../src/observability/Telemetry.js"
import * as Bulkhead from "../../src/resilience/Bulkhead.js"
import * as CircuitBreaker from "../../src/resilience/CircuitBreaker.js"
import * as RateLimiter from "../../src/resilience/RateLimiter.js"
import * as Recovery from "../../src/resilience/Recovery.js"
import * as Retry from "../../src/resilience/Retry.js"
import * as Timeout from "../../src/resilience/Timeout.js"

interface Seen {
  readonly name: string
  readonly measurements: Record<string, number>
  readonly metadata: Record<string, unknown>
}

/** Runs `act` with telemetry on, and returns the foundation.** events it emitted. */
const eventsOf = <A, E>(act: Effect.Effect<A, E, import("effect/Scope").Scope>) =>
  Effect.scoped(Effect.gen(function*() {
    const bus = yield* EventBus.EventBus
    const sub = yield* bus.subscribe("foundation.**", { capacity: 1000 })
    yield* Effect.exit(act)
    const out: Array<Seen> = []
    for (;;) {
      const next = yield* sub.poll
      if (Option.isNone(next)) return out
      const data = next.value.data as { measurements: Record<string, number>; metadata: Record<string, unknown> }
      out.push({ name: next.value.type, measurements: data.measurements, metadata: data.metadata })
    }
  })).pipe(Effect.provide(Telemetry.layerWithBus()))

const unavailable = new ServiceUnavailableError({ service: "s" })

describe("resilience telemetry", () => {
  it.effect("the breaker reports its state changes and rejections", () =>
    Effect.gen(function*() {
      const events = yield* eventsOf(Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db", trip: CircuitBreaker.consecutive(1) })
        yield* Effect.exit(breaker.protect(Effect.fail("down")))
        yield* Effect.exit(breaker.protect(Effect.void))
      }))
      expect(events).toEqual([
        {
          name: Events.names.circuitBreaker.stateChange,
          measurements: {},
          metadata: { breaker: "db", from_state: "closed", to_state: "open" }
        },
        {
          name: Events.names.circuitBreaker.callRejected,
          measurements: { count: 1, retry_after_ms: 60_000 },
          metadata: { breaker: "db", state: "open" }
        }
      ])
    }))

  it.effect("the rate limiter reports denials (not admissions)", () =>
    Effect.gen(function*() {
      const events = yield* eventsOf(Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ name: "api", limit: 1, window: "1 minute", algorithm: "fixed-window" })
        yield* limiter.consume("alice")
        yield* Effect.exit(limiter.consume("alice"))
      }))
      expect(events).toEqual([{
        name: Events.names.rateLimiter.denied,
        measurements: { count: 1, retry_after_ms: 60_000, remaining: 0 },
        metadata: { limiter: "api", key: "alice" }
      }])
    }))

  it.effect("retries report each retry and the exhaustion", () =>
    Effect.gen(function*() {
      const policy = Either.getOrThrow(Retry.immediate({ name: "quick", maxAttempts: 3 }))
      const events = yield* eventsOf(Retry.retry(Effect.fail(unavailable), policy))
      expect(events.map((e) => [e.name, e.measurements])).toEqual([
        [Events.names.retry.retry, { attempt: 1, delay_ms: 0 }],
        [Events.names.retry.retry, { attempt: 2, delay_ms: 0 }],
        [Events.names.retry.exhausted, { attempts: 3 }]
      ])
      expect(events[2]?.metadata).toMatchObject({ policy: "quick", error_category: "transient", reason: "policy" })
    }))

  it.effect("bulkhead rejections, timeouts and recoveries are reported", () =>
    Effect.gen(function*() {
      const events = yield* eventsOf(Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ name: "b", maxConcurrent: 1 })
        const hold = yield* Effect.fork(bulkhead.run(Effect.never))
        yield* Effect.yieldNow()
        yield* Effect.exit(bulkhead.run(Effect.void))
        yield* Fiber.interrupt(hold)
        const timeout = yield* Timeout.make({ name: "t", duration: "1 second" })
        const slow = yield* Effect.fork(Effect.exit(timeout.promise(() => new Promise<never>(() => {}))))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(slow)
        yield* Effect.exit(Recovery.withRecovery(Effect.fail("raw"), { fallback: { value: 1 } }))
      }))
      expect(events.map((e) => e.name)).toEqual([
        Events.names.bulkhead.rejected,
        Events.names.timeout.expired,
        Events.names.recovery.handled
      ])
      expect(events[0]?.metadata).toEqual({ bulkhead: "b", max_concurrent: 1, max_queued: 0 })
      expect(events[1]).toMatchObject({ measurements: { timeout_ms: 1000 }, metadata: { timeout: "t" } })
      expect(events[2]?.metadata).toMatchObject({ strategy: "compensate", error_category: "system", outcome: "compensated" })
    }))

  it.effect("every emitted name is in the catalogue", () =>
    Effect.gen(function*() {
      expect(Events.all).toContain("foundation.circuit_breaker.state_change")
      expect(new Set(Events.all).size).toBe(Events.all.length)
    }))

  it.effect("without the Telemetry service nothing is emitted and nothing fails", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ trip: CircuitBreaker.consecutive(1) })
      yield* Effect.exit(breaker.protect(Effect.fail("down")))
      expect(yield* breaker.state).toBe("open")
      expect(Option.isNone(yield* Effect.serviceOption(Telemetry.Telemetry))).toBe(true)
    }))
})

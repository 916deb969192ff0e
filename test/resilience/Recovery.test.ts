import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Either, Exit, Fiber, Option, Ref, TestClock } from "effect"
import {
  CircuitOpenError,
  InternalError,
  NotFoundError,
  ResourceExhaustedError,
  ServiceUnavailableError,
  ValidationError
} from "../../src/errors/FoundationError.js"
import * as CircuitBreaker from "../../src/resilience/CircuitBreaker.js"
import * as Recovery from "../../src/resilience/Recovery.js"
import * as Retry from "../../src/resilience/Retry.js"

const unavailable = new ServiceUnavailableError({ service: "api" })
const notFound = new NotFoundError({ resource: "user", key: "u1" })

/** An effect failing with the given errors in turn, then succeeding; counts its runs. */
const script = <E>(runs: Ref.Ref<number>, failures: ReadonlyArray<E>, value = "done") =>
  Effect.flatMap(Ref.getAndUpdate(runs, (n) => n + 1), (n): Effect.Effect<string, E> =>
    n < failures.length ? Effect.fail(failures[n]!) : Effect.succeed(value))

const noDelay = Either.getOrThrow(Retry.immediate({ maxAttempts: 3 }))

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

describe("withRecovery", () => {
  it.effect("passes success through untouched", () =>
    Effect.gen(function*() {
      expect(yield* Recovery.withRecovery(Effect.succeed("ok"))).toBe("ok")
    }))

  it.effect("retries transient failures and succeeds (2 failures, 2 retries: 3 calls)", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const result = yield* Recovery.withRecovery(script(runs, [unavailable, unavailable], "after retries"), {
        retry: noDelay
      })
      expect(result).toBe("after retries")
      expect(yield* Ref.get(runs)).toBe(3)
    }))

  it.effect("always-transient failure: the same error after exactly maxAttempts calls", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const exit = yield* Effect.exit(
        Recovery.withRecovery(script(runs, [unavailable, unavailable, unavailable, unavailable]), { retry: noDelay })
      )
      expect(failureOf(exit)).toBe(unavailable) // the original error, not a wrapper
      expect(yield* Ref.get(runs)).toBe(3)
    }))

  it.effect("the default policy backs off like the original (100·2ᵏ + 1..100 ms)", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const fiber = yield* Effect.fork(Recovery.withRecovery(script(runs, [unavailable, unavailable])))
      yield* Effect.yieldNow()
      expect(yield* Ref.get(runs)).toBe(1)
      yield* TestClock.adjust("100 millis")
      expect(yield* Ref.get(runs)).toBe(1) // the first backoff is 101..200 ms
      yield* TestClock.adjust("100 millis")
      expect(yield* Ref.get(runs)).toBe(2)
      yield* TestClock.adjust("300 millis")
      expect(yield* Fiber.join(fiber)).toBe("done")
      expect(yield* Ref.get(runs)).toBe(3)
    }))

  it.effect("permanent and validation failures are returned after one call", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      expect(failureOf(yield* Effect.exit(Recovery.withRecovery(script(runs, [notFound]), { retry: noDelay })))).toBe(
        notFound
      )
      expect(yield* Ref.get(runs)).toBe(1)
      const invalid = new ValidationError({ field: "id", reason: "empty" })
      const again = yield* Ref.make(0)
      expect(failureOf(yield* Effect.exit(Recovery.withRecovery(script(again, [invalid]), { retry: noDelay })))).toBe(
        invalid
      )
      expect(yield* Ref.get(again)).toBe(1)
    }))

  it.effect("fallback: a value, an effect, or a function of the error", () =>
    Effect.gen(function*() {
      expect(yield* Recovery.withRecovery(Effect.fail(notFound), { fallback: { value: "default" } })).toBe("default")
      expect(yield* Recovery.withRecovery(Effect.fail(notFound), { fallback: Effect.succeed("computed") })).toBe("computed")
      expect(
        yield* Recovery.withRecovery(Effect.fail(notFound), {
          fallback: (e) => Effect.succeed(`missing ${(e as NotFoundError).key}`)
        })
      ).toBe("missing u1")
    }))

  it.effect("retries run out, then the fallback answers", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const result = yield* Recovery.withRecovery(script(runs, Array(10).fill(unavailable)), {
        retry: noDelay,
        fallback: { value: "stale" }
      })
      expect(result).toBe("stale")
      expect(yield* Ref.get(runs)).toBe(3)
    }))

  it.effect("a defect becomes an InternalError (system) that keeps the cause, and is compensated", () =>
    Effect.gen(function*() {
      const compensated = yield* Ref.make<unknown>(undefined)
      const boom = new Error("kaboom")
      const exit = yield* Effect.exit(
        Recovery.withRecovery(Effect.die(boom), { compensate: (e) => Ref.set(compensated, e) })
      )
      const error = failureOf(exit)
      expect(error).toBeInstanceOf(InternalError)
      expect(error?.category).toBe("system")
      expect([...Cause.defects((error as InternalError).cause)]).toEqual([boom])
      expect(yield* Ref.get(compensated)).toBe(error)
      const thrown = yield* Effect.exit(Recovery.withRecovery(Effect.sync(() => {
        throw new Error("thrown")
      })))
      expect(failureOf(thrown)).toBeInstanceOf(InternalError)
    }))

  it.effect("compensate receives the error and the result is still that error; its own failure is kept", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<unknown>(undefined)
      const raw = "needs_cleanup" // no category: treated as system
      const exit = yield* Effect.exit(
        Recovery.withRecovery(Effect.fail(raw), { compensate: (e) => Ref.set(seen, e), fallback: { value: "never" } })
      )
      expect(failureOf(exit)).toBe(raw)
      expect(yield* Ref.get(seen)).toBe(raw)
      const both = yield* Effect.exit(
        Recovery.withRecovery(Effect.fail(raw), { compensate: () => Effect.fail("cleanup failed") })
      )
      expect(Exit.isFailure(both) && [...Cause.failures(both.cause)]).toEqual([raw, "cleanup failed"])
    }))

  it.effect("circuit_break: failures go through the breaker; once open, calls are rejected (or fall back)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ trip: CircuitBreaker.consecutive(5) })
      const runs = yield* Ref.make(0)
      const exhausted = new ResourceExhaustedError({ resource: "pool" })
      for (let i = 0; i < 5; i++) {
        const exit = yield* Effect.exit(Recovery.withRecovery(script(runs, [exhausted]), { breaker }))
        expect(failureOf(exit)).toBe(exhausted)
        yield* Ref.set(runs, 0)
      }
      const rejected = failureOf(yield* Effect.exit(Recovery.withRecovery(Effect.succeed("would work"), { breaker })))
      expect(rejected).toBeInstanceOf(CircuitOpenError)
      expect(
        yield* Recovery.withRecovery(Effect.succeed("would work"), { breaker, fallback: { value: "fallback" } })
      ).toBe("fallback")
    }))

  it.effect("a breaker rejection is never retried, even under a forced retry strategy", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ trip: CircuitBreaker.consecutive(1) })
      const runs = yield* Ref.make(0)
      const exit = yield* Effect.exit(
        Recovery.withRecovery(script(runs, [unavailable, unavailable, unavailable]), {
          breaker,
          strategy: "retry",
          retry: noDelay
        })
      )
      expect(failureOf(exit)).toBeInstanceOf(CircuitOpenError)
      expect(yield* Ref.get(runs)).toBe(1)
    }))

  it.effect("a named breaker comes from the CircuitBreakers service", () =>
    Effect.gen(function*() {
      yield* Effect.exit(Recovery.withRecovery(Effect.fail(unavailable), { breaker: "payments", retry: noDelay }))
      const registry = yield* CircuitBreaker.CircuitBreakers
      const stats = yield* Effect.flatMap(registry.get("payments"), (b) => b.stats)
      expect(stats.failures).toBe(1) // tripped after the first failure: retries were rejected, not run
      expect(stats.state).toBe("open")
    }).pipe(Effect.provide(CircuitBreaker.layer({ trip: CircuitBreaker.consecutive(1) }))))

  it.effect("strategies can be overridden per category or for all", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const exit = yield* Effect.exit(
        Recovery.withRecovery(script(runs, [notFound, notFound]), {
          strategies: { permanent: "retry" },
          retry: noDelay
        })
      )
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(yield* Ref.get(runs)).toBe(3)
      yield* Ref.set(runs, 0)
      yield* Effect.exit(Recovery.withRecovery(script(runs, [unavailable]), { strategy: "propagate", retry: noDelay }))
      expect(yield* Ref.get(runs)).toBe(1)
      expect(Recovery.strategyFor(unavailable)).toBe("retry")
      expect(Recovery.strategyFor(new ResourceExhaustedError({ resource: "r" }))).toBe("circuit_break")
      expect(Recovery.strategyFor("raw")).toBe("compensate")
      expect(Recovery.strategyFor(unavailable, { strategies: { transient: "fallback" } })).toBe("fallback")
    }))

  it.effect("retryable: transient and resource only", () =>
    Effect.gen(function*() {
      expect(Recovery.isRetryable(unavailable)).toBe(true)
      expect(Recovery.isRetryable(new ResourceExhaustedError({ resource: "r" }))).toBe(true)
      expect(Recovery.isRetryable(notFound)).toBe(false)
      expect(Recovery.isRetryable(new ValidationError({ field: "f", reason: "r" }))).toBe(false)
      expect(Recovery.isRetryable("atom")).toBe(false)
      expect(Duration.toMillis(Duration.zero)).toBe(0)
    }))
})

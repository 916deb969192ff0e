import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Clock,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Metric,
  Option,
  Random,
  Schedule,
  TestClock
} from "effect"
import * as FoundationError from "../../src/errors/FoundationError.js"
import * as Retry from "../../src/resilience/Retry.js"

const { InternalError, NotFoundError, ResourceExhaustedError, ServiceUnavailableError, ValidationError } =
  FoundationError

const transient = () => new ServiceUnavailableError({ service: "svc" })

/** An effect that records the clock time of each attempt and fails as `outcome` says. */
const recorder = <E>(outcome: (attempt: number) => Effect.Effect<string, E>) => {
  const times: Array<number> = []
  const effect = Effect.flatMap(Clock.currentTimeMillis, (now) => {
    times.push(now)
    return outcome(times.length)
  })
  return { times, effect }
}

const alwaysFailing = <E>(error: E) => recorder(() => Effect.fail(error))

/** Forks the effect, runs the test clock far ahead, and returns the exit. */
const runOnTestClock = <A, E>(effect: Effect.Effect<A, E>, ahead: Duration.DurationInput = "1 hour") =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust(ahead)
    return yield* Fiber.await(fiber)
  })

const delaysOf = (times: ReadonlyArray<number>) => times.slice(1).map((t, i) => t - times[i]!)

const policy = (p: Either.Either<Retry.Policy, FoundationError.ValidationError>): Retry.Policy =>
  Either.getOrElse(p, (e) => expect.fail(`invalid policy: ${e.message}`))

const invalidField = (p: Either.Either<unknown, FoundationError.ValidationError>): string | undefined =>
  Either.match(p, { onLeft: (e) => e.field, onRight: () => undefined })

let names = 0
const uniqueName = (prefix: string) => `${prefix}_${++names}_${Math.floor(performance.now())}`

describe("Retry policies: exact delay sequences on TestClock", () => {
  it.effect("exponential doubles from base and is capped: 500, 1000, 2000, 4000, 8000, 10000, 10000", () =>
    Effect.gen(function*() {
      const { effect, times } = alwaysFailing(transient())
      const p = policy(Retry.exponential({ base: "500 millis", factor: 2, cap: "10 seconds", maxAttempts: 8 }))
      const exit = yield* runOnTestClock(Retry.retry(effect, p))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(delaysOf(times)).toEqual([500, 1000, 2000, 4000, 8000, 10000, 10000])
      expect(times).toEqual([0, 500, 1500, 3500, 7500, 15500, 25500, 35500])
    }))

  it.effect("exponential defaults: 500 ms ×2, 4 attempts in all", () =>
    Effect.gen(function*() {
      const { effect, times } = alwaysFailing(transient())
      yield* runOnTestClock(Retry.retry(effect, policy(Retry.exponential())))
      expect(times).toEqual([0, 500, 1500, 3500])
    }))

  it.effect("factor 3 grows by ×3", () =>
    Effect.gen(function*() {
      const { effect, times } = alwaysFailing(transient())
      yield* runOnTestClock(Retry.retry(effect, policy(Retry.exponential({ base: 100, factor: 3, cap: "1 minute" }))))
      expect(delaysOf(times)).toEqual([100, 300, 900])
    }))

  it.effect("linear is really linear (initial + n·increment) and capped", () =>
    Effect.gen(function*() {
      const { effect, times } = alwaysFailing(transient())
      const p = policy(Retry.linear({ initial: 500, increment: 250, cap: 1500, maxAttempts: 8 }))
      yield* runOnTestClock(Retry.retry(effect, p))
      expect(delaysOf(times)).toEqual([500, 750, 1000, 1250, 1500, 1500, 1500])
    }))

  it.effect("fixed waits the same delay every time", () =>
    Effect.gen(function*() {
      const { effect, times } = alwaysFailing(transient())
      yield* runOnTestClock(Retry.retry(effect, policy(Retry.fixed("250 millis", { maxAttempts: 5 }))))
      expect(times).toEqual([0, 250, 500, 750, 1000])
    }))

  it.effect("immediate retries without sleeping at all (no 1 ms stand-in)", () =>
    Effect.gen(function*() {
      const { effect, times } = alwaysFailing(transient())
      const fiber = yield* Effect.fork(Retry.retry(effect, policy(Retry.immediate({ maxAttempts: 5 }))))
      yield* TestClock.adjust(0) // lets the fiber run until it is done or suspended; the clock stays at 0
      const exit = yield* Fiber.poll(fiber)
      expect(Option.isSome(exit)).toBe(true)
      expect(times).toEqual([0, 0, 0, 0, 0])
    }))

  it.effect("a custom Schedule drives the delays, and its end ends the loop", () =>
    Effect.gen(function*() {
      const { effect, times } = alwaysFailing(transient())
      const p = policy(Retry.fromSchedule(Schedule.intersect(Schedule.spaced("2 seconds"), Schedule.recurs(2))))
      yield* runOnTestClock(Retry.retry(effect, p))
      expect(times).toEqual([0, 2000, 4000]) // 2 recurrences although 4 attempts are allowed
    }))

  it.effect("policy.schedule gives plain Effect.retry the same delays and attempt limit", () =>
    Effect.gen(function*() {
      const { effect, times } = alwaysFailing(transient())
      const p = policy(Retry.exponential({ base: 100, maxAttempts: 5 }))
      yield* runOnTestClock(Effect.retry(effect, p.schedule))
      expect(times).toEqual([0, 100, 300, 700, 1500])
    }))
})

describe("Retry presets (the original's named defaults)", () => {
  it.effect("exponentialBackoff: 500, 1000, 2000 ms, 3 retries", () =>
    Effect.gen(function*() {
      const { effect, times } = alwaysFailing(transient())
      yield* runOnTestClock(Retry.retry(effect, Retry.presets.exponentialBackoff))
      expect(times).toEqual([0, 500, 1500, 3500])
      expect(Retry.presets.exponentialBackoff.maxAttempts).toBe(4)
      expect(Duration.toMillis(Retry.presets.exponentialBackoff.maxElapsed)).toBe(30_000)
    }))

  it.effect("exponentialBackoff's longer run is capped at 10 s and stopped by its 30 s budget", () =>
    Effect.gen(function*() {
      const { effect, times } = alwaysFailing(transient())
      const p = policy(Retry.fromSchedule(Retry.presets.exponentialBackoff.delays, {
        maxAttempts: Infinity,
        maxElapsed: "30 seconds"
      }))
      yield* runOnTestClock(Retry.retry(effect, p))
      // 500, 1000, 2000, 4000, 8000, 10000 → starts at 25 500; the next (35 500) is past 30 s.
      expect(times).toEqual([0, 500, 1500, 3500, 7500, 15500, 25500])
    }))

  it.effect("fixedDelay: 1 s; immediate: 0; linearBackoff: 500, 1000, 1500", () =>
    Effect.gen(function*() {
      const fixed = alwaysFailing(transient())
      yield* runOnTestClock(Retry.retry(fixed.effect, Retry.presets.fixedDelay))
      expect(fixed.times).toEqual([0, 1000, 2000, 3000])
      const immediate = alwaysFailing(transient())
      yield* Effect.exit(Retry.retry(immediate.effect, Retry.presets.immediate)) // not forked: it never sleeps
      expect(immediate.times.length).toBe(4)
      expect(delaysOf(immediate.times)).toEqual([0, 0, 0])
      const linear = alwaysFailing(transient())
      yield* runOnTestClock(Retry.retry(linear.effect, Retry.presets.linearBackoff))
      expect(delaysOf(linear.times)).toEqual([500, 1000, 1500])
    }))

  it.effect("linearBackoff keeps growing by 500 ms up to its 5 s cap", () =>
    Effect.gen(function*() {
      const { effect, times } = alwaysFailing(transient())
      const p = policy(Retry.fromSchedule(Retry.presets.linearBackoff.delays, { maxAttempts: 13 }))
      yield* runOnTestClock(Retry.retry(effect, p))
      expect(delaysOf(times)).toEqual([500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 5000, 5000])
    }))

  it.effect("errorHandler: min(100·2ᵏ + U{1..100}, 5000) ms", () =>
    Effect.gen(function*() {
      const { effect, times } = alwaysFailing(transient())
      const p = policy(Retry.fromSchedule(Retry.presets.errorHandler.delays, { maxAttempts: 10 }))
      yield* runOnTestClock(Retry.retry(effect, p).pipe(Effect.withRandom(Random.make(7))))
      const delays = delaysOf(times)
      expect(delays.length).toBe(9)
      delays.forEach((d, k) => {
        expect(Number.isInteger(d)).toBe(true)
        if (k < 6) {
          expect(d).toBeGreaterThanOrEqual(100 * 2 ** k + 1)
          expect(d).toBeLessThanOrEqual(100 * 2 ** k + 100)
        } else {
          expect(d).toBe(5000)
        }
      })
      expect(Retry.presets.errorHandler.maxAttempts).toBe(4)
    }))
})

describe("Retry limits", () => {
  it.effect("maxAttempts counts every attempt, the first included", () =>
    Effect.gen(function*() {
      for (const maxAttempts of [1, 2, 3, 6]) {
        const { effect, times } = alwaysFailing(transient())
        yield* runOnTestClock(Retry.retry(effect, policy(Retry.fixed(10, { maxAttempts }))))
        expect(times.length).toBe(maxAttempts)
      }
    }))

  it.effect("maxElapsed stops the loop: no retry starts past the budget, and the clock is not slept past it", () =>
    Effect.gen(function*() {
      const { effect, times } = alwaysFailing(transient())
      const p = policy(
        Retry.exponential({ base: "1 second", cap: "1 minute", maxAttempts: Infinity, maxElapsed: "10 seconds" })
      )
      const fiber = yield* Effect.fork(Retry.retry(effect, p))
      yield* TestClock.adjust("7 seconds")
      const exit = yield* Fiber.poll(fiber)
      // 1 s, 2 s, 4 s: attempts at 0, 1000, 3000, 7000; the next would start at 15 000 > 10 000.
      expect(times).toEqual([0, 1000, 3000, 7000])
      expect(Option.isSome(exit)).toBe(true) // gave up at 7 s instead of sleeping 8 s more
    }))

  it.effect("maxElapsed counts from the start of the first attempt, not from the first failure", () =>
    Effect.gen(function*() {
      const { effect, times } = recorder(() => Effect.zipRight(Effect.sleep("2 seconds"), Effect.fail(transient())))
      const p = policy(Retry.fixed("1 second", { maxAttempts: Infinity, maxElapsed: "5 seconds" }))
      yield* runOnTestClock(Retry.retry(effect, p))
      // Attempts run 0–2 s and 3–5 s; a third would start at 6 s > 5 s. Counted from the first
      // failure (2 s) it would have started.
      expect(times).toEqual([0, 3000])
    }))

  it.effect("a success ends the loop with the value", () =>
    Effect.gen(function*() {
      const { effect, times } = recorder((n) => n < 3 ? Effect.fail(transient()) : Effect.succeed("ok"))
      const exit = yield* runOnTestClock(Retry.retry(effect, Retry.presets.exponentialBackoff))
      expect(exit).toEqual(Exit.succeed("ok"))
      expect(times).toEqual([0, 500, 1500])
    }))

  it.effect("the retrying fiber can be interrupted while it waits; no further attempt runs", () =>
    Effect.gen(function*() {
      const { effect, times } = alwaysFailing(transient())
      const fiber = yield* Effect.fork(Retry.retry(effect, Retry.presets.exponentialBackoff))
      yield* TestClock.adjust("100 millis")
      yield* Fiber.interrupt(fiber)
      yield* TestClock.adjust("1 hour")
      expect(times).toEqual([0])
    }))
})

describe("Retry jitter (seeded Random)", () => {
  const runJitter = (jitter: Retry.Jitter, seed: number, options: Retry.ExponentialOptions = {}) =>
    Effect.gen(function*() {
      const { effect, times } = alwaysFailing(transient())
      const p = policy(Retry.exponential({ base: 100, cap: 5000, maxAttempts: 10, jitter, ...options }))
      yield* runOnTestClock(Retry.retry(effect, p).pipe(Effect.withRandom(Random.make(seed))))
      return delaysOf(times)
    })
  const nominal = [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]

  it.effect("full jitter stays in [0, d), varies, and is reproducible for a seed", () =>
    Effect.gen(function*() {
      const a = yield* runJitter("full", 42)
      const b = yield* runJitter("full", 42)
      const c = yield* runJitter("full", 43)
      expect(a.length).toBe(9)
      a.forEach((d, n) => {
        expect(d).toBeGreaterThanOrEqual(0)
        expect(d).toBeLessThan(nominal[n]!)
      })
      expect(b).toEqual(a)
      expect(c).not.toEqual(a)
      const ratios = new Set(a.map((d, n) => (d / nominal[n]!).toFixed(3)))
      expect(ratios.size).toBeGreaterThan(5) // not a fixed fraction of d
    }))

  it.effect("equal jitter stays in [d/2, d)", () =>
    Effect.gen(function*() {
      const a = yield* runJitter("equal", 1)
      expect(a.length).toBe(9)
      a.forEach((d, n) => {
        expect(d).toBeGreaterThanOrEqual(nominal[n]! / 2)
        expect(d).toBeLessThan(nominal[n]!)
      })
      expect(a).not.toEqual(nominal)
      expect(yield* runJitter("equal", 1)).toEqual(a)
      expect(yield* runJitter("equal", 2)).not.toEqual(a)
    }))

  it.effect("decorrelated jitter starts in [base, 3·base), then stays in [base, 3·previous) and ≤ cap", () =>
    Effect.gen(function*() {
      const a = yield* runJitter("decorrelated", 5, { cap: 2000, maxAttempts: 30 })
      expect(a.length).toBe(29)
      expect(a[0]!).toBeGreaterThanOrEqual(100)
      expect(a[0]!).toBeLessThan(300)
      a.forEach((d, i) => {
        expect(d).toBeGreaterThanOrEqual(100)
        expect(d).toBeLessThanOrEqual(2000)
        if (i > 0) expect(d).toBeLessThanOrEqual(Math.min(2000, 3 * a[i - 1]!))
      })
      expect(Math.max(...a)).toBeGreaterThan(300) // it grows beyond the first step's range
      expect(a.slice(0, 5)).not.toEqual([100, 200, 400, 800, 1600]) // random, not the nominal sequence
      expect(yield* runJitter("decorrelated", 5, { cap: 2000, maxAttempts: 30 })).toEqual(a)
      expect(yield* runJitter("decorrelated", 6, { cap: 2000, maxAttempts: 30 })).not.toEqual(a)
    }))

  it.effect("without jitter the delays are the nominal ones", () =>
    Effect.gen(function*() {
      expect(yield* runJitter("none", 42)).toEqual(nominal)
    }))
})

describe("Retry: what is retried", () => {
  const attemptsFor = <E>(error: E, options?: Retry.RetryOptions<E>) =>
    Effect.gen(function*() {
      const { effect, times } = alwaysFailing(error)
      const exit = yield* runOnTestClock(Retry.retry(effect, Retry.presets.fixedDelay, options))
      return { attempts: times.length, exit }
    })

  it.effect("transient and resource failures are retried", () =>
    Effect.gen(function*() {
      expect((yield* attemptsFor(transient())).attempts).toBe(4)
      expect((yield* attemptsFor(new ResourceExhaustedError({ resource: "pool" }))).attempts).toBe(4)
      expect((yield* attemptsFor(FoundationError.coded("network_error"))).attempts).toBe(4)
    }))

  it.effect("validation, permanent and system failures are not retried (called once)", () =>
    Effect.gen(function*() {
      expect((yield* attemptsFor(new ValidationError({ field: "x", reason: "bad" }))).attempts).toBe(1)
      expect((yield* attemptsFor(new NotFoundError({ resource: "user", key: "1" }))).attempts).toBe(1)
      expect((yield* attemptsFor(InternalError.fromUnknown("boom"))).attempts).toBe(1)
      expect((yield* attemptsFor(FoundationError.coded("authentication_failed"))).attempts).toBe(1)
    }))

  it.effect("uncategorised failures are not retried by default, but are with a `while` predicate", () =>
    Effect.gen(function*() {
      expect((yield* attemptsFor(new Error("plain"))).attempts).toBe(1)
      expect((yield* attemptsFor("just a string")).attempts).toBe(1)
      expect((yield* attemptsFor({ category: "not-a-category" })).attempts).toBe(1)
      expect((yield* attemptsFor(new Error("plain"), { while: () => true })).attempts).toBe(4)
      expect((yield* attemptsFor("just a string", { while: (e) => e.startsWith("just") })).attempts).toBe(4)
    }))

  it.effect("`while` / `until` replace the category rule", () =>
    Effect.gen(function*() {
      expect((yield* attemptsFor(transient(), { while: () => false })).attempts).toBe(1)
      expect((yield* attemptsFor(transient(), { until: () => true })).attempts).toBe(1)
      expect((yield* attemptsFor(new Error("x"), { until: () => false })).attempts).toBe(4)
      // until a given error comes: stop at the third attempt
      const { effect, times } = recorder((n) => Effect.fail(n === 3 ? "stop" : "again"))
      const exit = yield* runOnTestClock(Retry.retry(effect, Retry.presets.fixedDelay, { until: (e) => e === "stop" }))
      expect(times.length).toBe(3)
      expect(exit).toEqual(Exit.fail("stop"))
    }))

  it.effect("a non-retryable failure in the middle of the loop ends it with that failure", () =>
    Effect.gen(function*() {
      const permanent = new NotFoundError({ resource: "user", key: "1" })
      const { effect, times } = recorder((n): Effect.Effect<string, FoundationError.FoundationError> =>
        Effect.fail(n < 2 ? transient() : permanent)
      )
      const exit = yield* runOnTestClock(Retry.retry(effect, Retry.presets.fixedDelay))
      expect(times.length).toBe(2)
      expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause)).toEqual(Option.some(permanent))
    }))

  it.effect("after exhaustion the original last error comes back (same object, not a wrapper)", () =>
    Effect.gen(function*() {
      const errors = [transient(), transient(), transient(), transient()]
      const { effect } = recorder((n) => Effect.fail(errors[n - 1]!))
      const exit = yield* runOnTestClock(Retry.retry(effect, Retry.presets.fixedDelay))
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        expect(Cause.isFailType(exit.cause)).toBe(true)
        const failure = Option.getOrUndefined(Cause.failureOption(exit.cause))
        expect(failure).toBe(errors[3]) // the last one, by reference
        expect(failure).not.toBe(errors[0])
      }
    }))

  it.effect("defects are not retried and come back unchanged", () =>
    Effect.gen(function*() {
      const defect = new Error("bug")
      const { effect, times } = recorder(() => Effect.die(defect))
      const exit = yield* runOnTestClock(Retry.retry(effect, Retry.presets.fixedDelay, { while: () => true }))
      expect(times.length).toBe(1)
      expect(exit).toEqual(Exit.die(defect))
    }))

  it.effect("a failure together with a defect is not retried", () =>
    Effect.gen(function*() {
      const { effect, times } = recorder(() =>
        Effect.failCause(Cause.sequential(Cause.fail(transient()), Cause.die("finalizer bug")))
      )
      const exit = yield* runOnTestClock(Retry.retry(effect, Retry.presets.fixedDelay))
      expect(times.length).toBe(1)
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
    }))

  it.effect("interruption is not retried", () =>
    Effect.gen(function*() {
      const { effect, times } = recorder(() => Effect.interrupt)
      const exit = yield* runOnTestClock(Retry.retry(effect, Retry.presets.fixedDelay, { while: () => true }))
      expect(times.length).toBe(1)
      expect(Exit.isInterrupted(exit)).toBe(true)
    }))

  it.effect("pipe-friendly: effect.pipe(Retry.retry(policy, options))", () =>
    Effect.gen(function*() {
      const { effect, times } = alwaysFailing("plain" as const)
      // The error type is kept in both forms.
      const piped: Effect.Effect<string, "plain"> = effect.pipe(
        Retry.retry(Retry.presets.fixedDelay, { while: (e: string) => e === "plain" })
      )
      const bare: Effect.Effect<string, "plain"> = effect.pipe(Retry.retry(Retry.presets.fixedDelay))
      yield* runOnTestClock(piped)
      expect(times).toEqual([0, 1000, 2000, 3000])
      yield* runOnTestClock(bare)
      expect(times.length).toBe(5) // uncategorised: one more attempt, no retry
    }))
})

describe("Retry budget", () => {
  it.effect("is shared by two callers and stops retries when empty, then refills with time", () =>
    Effect.gen(function*() {
      const budget = yield* Retry.budget({
        name: uniqueName("shared"),
        capacity: 3,
        refill: { tokens: 1, every: "10 seconds" }
      })
      const p = policy(Retry.immediate({ maxAttempts: 10 }))
      const error = transient()

      // Caller A takes the 3 tokens: 1 attempt + 3 retries.
      const a = alwaysFailing(error)
      const exitA = yield* Effect.exit(Retry.retry(a.effect, p, { budget }))
      expect(a.times.length).toBe(4)
      expect(exitA).toEqual(Exit.fail(error))
      expect(yield* budget.state).toEqual({ tokens: 0, capacity: 3, consumed: 3, exhausted: 1 })
      expect(yield* budget.health).toBe("degraded")

      // Caller B, same budget: its first attempt runs, its retries do not; the original error comes back.
      const errorB = transient()
      const b = alwaysFailing(errorB)
      const exitB = yield* Effect.exit(Retry.retry(b.effect, p, { budget }))
      expect(b.times.length).toBe(1)
      expect(Exit.isFailure(exitB) && Option.getOrUndefined(Cause.failureOption(exitB.cause))).toBe(errorB)
      expect((yield* budget.state).exhausted).toBe(2)

      // 10 s later one token is back: caller C gets exactly one retry.
      yield* TestClock.adjust("9999 millis")
      expect((yield* budget.state).tokens).toBe(0)
      yield* TestClock.adjust("1 millis")
      expect(yield* budget.health).toBe("healthy")
      const c = alwaysFailing(transient())
      yield* Effect.exit(Retry.retry(c.effect, p, { budget }))
      expect(c.times.length).toBe(2)

      // Refill never exceeds the capacity.
      yield* TestClock.adjust("1 hour")
      expect((yield* budget.state).tokens).toBe(3)
    }))

  it.effect("first attempts take no token", () =>
    Effect.gen(function*() {
      const budget = yield* Retry.budget({ name: uniqueName("first"), capacity: 1 })
      for (let i = 0; i < 5; i++) {
        yield* Effect.exit(Retry.retry(Effect.succeed("ok"), Retry.presets.immediate, { budget }))
        const notFound = Effect.fail(new NotFoundError({ resource: "r", key: "k" }))
        yield* Effect.exit(Retry.retry(notFound, Retry.presets.immediate, { budget }))
      }
      expect(yield* budget.state).toEqual({ tokens: 1, capacity: 1, consumed: 0, exhausted: 0 })
    }))

  it.effect("two concurrent callers never use more tokens than there are", () =>
    Effect.gen(function*() {
      const budget = yield* Retry.budget({ name: uniqueName("concurrent"), capacity: 5, refill: { every: "1 hour" } })
      const p = policy(Retry.fixed("1 second", { maxAttempts: 10 }))
      const a = alwaysFailing(transient())
      const b = alwaysFailing(transient())
      const fiber = yield* Effect.fork(
        Effect.all([Retry.retry(a.effect, p, { budget }), Retry.retry(b.effect, p, { budget })], {
          concurrency: 2,
          mode: "either"
        })
      )
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      expect(a.times.length + b.times.length).toBe(2 + 5) // two first attempts + 5 retries in all
      expect((yield* budget.state).consumed).toBe(5)
    }))
})

describe("Retry metrics", () => {
  it.effect("count retries and exhausted loops, tagged with the policy name", () =>
    Effect.gen(function*() {
      const p = policy(Retry.named(Retry.presets.fixedDelay, uniqueName("metrics")))
      const other = policy(Retry.named(Retry.presets.fixedDelay, uniqueName("metrics_other")))
      // an exhausted loop: 3 retries
      yield* runOnTestClock(Retry.retry(alwaysFailing(transient()).effect, p))
      // success after 1 retry: not exhausted
      const flaky = recorder((n) => n < 2 ? Effect.fail(transient()) : Effect.succeed("ok"))
      yield* runOnTestClock(Retry.retry(flaky.effect, p))
      // not retryable: neither
      yield* runOnTestClock(Retry.retry(alwaysFailing(new NotFoundError({ resource: "r", key: "k" })).effect, p))
      expect((yield* Metric.value(p.metrics.retries)).count).toBe(4)
      expect((yield* Metric.value(p.metrics.exhausted)).count).toBe(1)
      expect((yield* Metric.value(other.metrics.retries)).count).toBe(0)
      expect(p.name).toMatch(/^metrics_/)
    }))

  it.effect("a loop stopped by an empty budget counts as exhausted, and the denial is counted", () =>
    Effect.gen(function*() {
      const p = policy(Retry.immediate({ name: uniqueName("budget_metrics") }))
      const name = uniqueName("budget")
      const budget = yield* Retry.budget({ name, capacity: 1 })
      yield* Effect.exit(Retry.retry(alwaysFailing(transient()).effect, p, { budget }))
      expect((yield* Metric.value(p.metrics.retries)).count).toBe(1)
      expect((yield* Metric.value(p.metrics.exhausted)).count).toBe(1)
      expect((yield* Metric.value(budget.metrics.denied)).count).toBe(1)
    }))
})

describe("Retry option validation", () => {
  it("rejects bad policy options with a ValidationError naming the field", () => {
    expect(invalidField(Retry.exponential({ base: 0 }))).toBe("base")
    expect(invalidField(Retry.exponential({ base: -5 }))).toBe("base")
    expect(invalidField(Retry.exponential({ base: Number.NaN }))).toBe("base")
    expect(invalidField(Retry.exponential({ factor: 0.5 }))).toBe("factor")
    expect(invalidField(Retry.exponential({ factor: Number.NaN }))).toBe("factor")
    expect(invalidField(Retry.exponential({ factor: Infinity }))).toBe("factor")
    expect(invalidField(Retry.exponential({ base: 1000, cap: 500 }))).toBe("cap")
    expect(invalidField(Retry.exponential({ cap: Duration.infinity }))).toBe("cap")
    expect(invalidField(Retry.exponential({ jitter: "bogus" as Retry.Jitter }))).toBe("jitter")
    expect(invalidField(Retry.exponential({ jitter: "decorrelated", factor: 2 }))).toBe("factor")
    expect(invalidField(Retry.exponential({ maxAttempts: 0 }))).toBe("maxAttempts")
    expect(invalidField(Retry.exponential({ maxAttempts: 1.5 }))).toBe("maxAttempts")
    expect(invalidField(Retry.exponential({ maxAttempts: -1 }))).toBe("maxAttempts")
    expect(invalidField(Retry.exponential({ maxAttempts: Number.NaN }))).toBe("maxAttempts")
    expect(invalidField(Retry.exponential({ maxElapsed: 0 }))).toBe("maxElapsed")
    expect(invalidField(Retry.exponential({ maxElapsed: -1 }))).toBe("maxElapsed")
    expect(invalidField(Retry.exponential({ name: "" }))).toBe("name")
    expect(invalidField(Retry.fixed(0))).toBe("delay")
    expect(invalidField(Retry.fixed(-1))).toBe("delay")
    expect(invalidField(Retry.fixed(Number.NaN))).toBe("delay")
    expect(invalidField(Retry.linear({ initial: 0 }))).toBe("initial")
    expect(invalidField(Retry.linear({ increment: 0 }))).toBe("increment")
    expect(invalidField(Retry.linear({ initial: 1000, cap: 500 }))).toBe("cap")
    expect(invalidField(Retry.immediate({ maxAttempts: 0 }))).toBe("maxAttempts")
    expect(invalidField(Retry.fromSchedule(Schedule.spaced(10), { maxElapsed: Number.NaN }))).toBe("maxElapsed")
    expect(invalidField(Retry.named(Retry.presets.immediate, ""))).toBe("name")
  })

  it("accepts good options, Infinity attempts and an infinite time budget", () => {
    expect(Either.isRight(Retry.exponential({ base: 1, factor: 1, cap: 1 }))).toBe(true)
    expect(Either.isRight(Retry.exponential({ jitter: "decorrelated", maxAttempts: Infinity }))).toBe(true)
    expect(Either.isRight(Retry.fixed("1 second", { maxElapsed: Duration.infinity }))).toBe(true)
    const named = policy(Retry.named(Retry.presets.exponentialBackoff, "db"))
    expect(policy(Retry.named("db")(Retry.presets.immediate)).name).toBe("db")
    expect(named.name).toBe("db")
    expect(named.maxAttempts).toBe(4)
    expect(Retry.isPolicy(named)).toBe(true)
    expect(Retry.isPolicy({})).toBe(false)
  })

  it.effect("rejects bad budget options with a ValidationError naming the field", () =>
    Effect.gen(function*() {
      const field = (options: Retry.BudgetOptions) =>
        Effect.match(Retry.budget(options), { onFailure: (e) => e.field, onSuccess: () => undefined })
      expect(yield* field({ capacity: 0 })).toBe("capacity")
      expect(yield* field({ capacity: 2.5 })).toBe("capacity")
      expect(yield* field({ refill: { tokens: 0 } })).toBe("refill.tokens")
      expect(yield* field({ refill: { every: 0 } })).toBe("refill.every")
      expect(yield* field({ refill: { every: -1 } })).toBe("refill.every")
      expect(yield* field({ name: "" })).toBe("name")
      expect(yield* field({})).toBeUndefined()
    }))
})

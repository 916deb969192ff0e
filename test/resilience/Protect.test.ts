import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Either, Exit, Fiber, Metric, Option, Ref, TestClock } from "effect"
import {
  BulkheadFullError,
  CircuitOpenError,
  RateLimitedError,
  ServiceUnavailableError,
  TimeoutError
} from "../../src/errors/FoundationError.js"
import * as CircuitBreaker from "../../src/resilience/CircuitBreaker.js"
import * as Protect from "../../src/resilience/Protect.js"
import * as RateLimiter from "../../src/resilience/RateLimiter.js"
import * as Retry from "../../src/resilience/Retry.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const unavailable = new ServiceUnavailableError({ service: "backend" })

const retries = (attempts: number) => Either.getOrThrow(Retry.immediate({ maxAttempts: attempts }))

/** Fails with the given errors in turn, then succeeds; counts its runs. */
const script = <E>(runs: Ref.Ref<number>, failures: ReadonlyArray<E>) =>
  Effect.flatMap(Ref.getAndUpdate(runs, (n) => n + 1), (n): Effect.Effect<string, E> =>
    n < failures.length ? Effect.fail(failures[n]!) : Effect.succeed("ok"))

describe("Protect", () => {
  it.scoped("each retry attempt passes through the breaker; the breaker's rejection ends the retries", () =>
    Effect.gen(function*() {
      const stack = yield* Protect.make({
        breaker: { trip: CircuitBreaker.consecutive(2) },
        retry: retries(5)
      })
      const runs = yield* Ref.make(0)
      const exit = yield* Effect.exit(stack.run(script(runs, Array(10).fill(unavailable))))
      expect(failureOf(exit)).toBeInstanceOf(CircuitOpenError)
      expect(yield* Ref.get(runs)).toBe(2) // the third attempt was rejected, not run, and not retried
      const stats = yield* stack.policies.breaker!.stats
      expect(stats).toMatchObject({ failures: 2, rejections: 1, state: "open" })
      const exhausted = yield* Metric.value(stack.policies.retry!.metrics.exhausted)
      expect(exhausted.count).toBe(0) // a rejection is not an exhausted retry loop
    }))

  it.scoped("retries a timed-out attempt, and the breaker counts the timeout as a failure", () =>
    Effect.gen(function*() {
      const stack = yield* Protect.make({
        timeout: "1 second",
        breaker: { trip: CircuitBreaker.consecutive(5) },
        retry: retries(3)
      })
      const runs = yield* Ref.make(0)
      const slowThenFast = Effect.flatMap(Ref.getAndUpdate(runs, (n) => n + 1), (n) =>
        n === 0 ? Effect.as(Effect.sleep("10 seconds"), "slow") : Effect.succeed("fast"))
      const fiber = yield* Effect.fork(stack.run(slowThenFast))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("fast")
      expect(yield* stack.policies.breaker!.stats).toMatchObject({ failures: 1, successes: 1 })
    }))

  it.scoped("rate-limit and bulkhead rejections never reach the breaker and are not retried", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ limit: 2, window: "1 minute", algorithm: "fixed-window" })
      const stack = yield* Protect.make({
        rateLimit: { limiter, key: "tenant-a" },
        bulkhead: { maxConcurrent: 1 },
        breaker: { trip: CircuitBreaker.consecutive(1) },
        retry: retries(3)
      })
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(stack.run(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const full = failureOf(yield* Effect.exit(stack.run(Effect.succeed("x"))))
      expect(full).toBeInstanceOf(BulkheadFullError)
      // two tokens used (holder + the rejected call); the next call is rate limited
      const limited = failureOf(yield* Effect.exit(stack.run(Effect.succeed("y"))))
      expect(limited).toBeInstanceOf(RateLimitedError)
      expect((limited as RateLimitedError).key).toBe("tenant-a")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      const breakerStats = yield* stack.policies.breaker!.stats
      expect(breakerStats).toMatchObject({ state: "closed", failures: 0, successes: 1 })
    }))

  it.scoped("each attempt consumes rate-limit capacity", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ limit: 3, window: "1 minute", algorithm: "fixed-window" })
      const stack = yield* Protect.make({ rateLimit: { limiter }, retry: retries(4) })
      const runs = yield* Ref.make(0)
      expect(yield* stack.run(script(runs, [unavailable, unavailable]))).toBe("ok")
      expect((yield* limiter.status("protect")).remaining).toBe(0)
      const exit = yield* Effect.exit(stack.run(Effect.succeed("more")))
      expect(failureOf(exit)).toBeInstanceOf(RateLimitedError)
      // a per-call key charges another bucket
      expect(yield* stack.run(Effect.succeed("other"), { key: "other-tenant" })).toBe("other")
    }))

  it.scoped("a bulkhead slot is free during the backoff between attempts", () =>
    Effect.gen(function*() {
      const stack = yield* Protect.make({
        bulkhead: { maxConcurrent: 1 },
        retry: Either.getOrThrow(Retry.fixed("1 second", { maxAttempts: 2 }))
      })
      const runs = yield* Ref.make(0)
      const fiber = yield* Effect.fork(stack.run(script(runs, [unavailable])))
      yield* Effect.yieldNow()
      expect(yield* stack.policies.bulkhead!.stats).toMatchObject({ active: 0 }) // waiting 1 s to retry
      expect(yield* stack.run(Effect.succeed("in between"))).toBe("in between")
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("ok")
    }))

  it.scoped("promise work: timed without a fork, rejections as defects or mapped errors", () =>
    Effect.gen(function*() {
      const stack = yield* Protect.make({ timeout: "500 millis", retry: retries(2) })
      expect(yield* stack.promise(() => Promise.resolve(7))).toBe(7)
      const fiber = yield* Effect.fork(Effect.exit(stack.promise(() => new Promise<number>(() => {}))))
      yield* TestClock.adjust("500 millis")
      yield* TestClock.adjust("500 millis") // the retry times out too
      expect(failureOf(yield* Fiber.join(fiber))).toBeInstanceOf(TimeoutError)
      const mapped = yield* Effect.exit(
        stack.tryPromise({ try: () => Promise.reject(new Error("bad gateway")), catch: (e) => (e as Error).message })
      )
      expect(failureOf(mapped)).toBe("bad gateway")
      const died = yield* Effect.exit(stack.promise(() => Promise.reject(new Error("crash"))))
      expect(Exit.isFailure(died) && Cause.isDie(died.cause)).toBe(true)
    }))

  it.scoped("shares policy instances and works with no policy at all", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ trip: CircuitBreaker.consecutive(1) })
      const a = yield* Protect.make({ name: "a", breaker })
      const b = yield* Protect.make({ name: "b", breaker })
      yield* Effect.exit(a.run(Effect.fail("down")))
      expect(failureOf(yield* Effect.exit(b.run(Effect.succeed("x"))))).toBeInstanceOf(CircuitOpenError)
      const bare = yield* Protect.make()
      expect(yield* Effect.succeed(1).pipe(Protect.protect(bare))).toBe(1)
      expect(failureOf(yield* Effect.exit(bare.run(Effect.fail("e"))))).toBe("e")
    }))

  it.scoped("rejects bad options", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ limit: 5 })
      expect((yield* Effect.flip(Protect.make({ rateLimit: { limiter, cost: 6 } }))).field).toBe("protect.rateLimit.cost")
      expect((yield* Effect.flip(Protect.make({ timeout: 0 }))).field).toBe("timeout.duration")
      expect((yield* Effect.flip(Protect.make({ bulkhead: { maxConcurrent: 0 } }))).field).toBe("bulkhead.maxConcurrent")
      expect((yield* Effect.flip(Protect.make({ breaker: { halfOpenMaxCalls: 0 } }))).field).toBe(
        "circuitBreaker.halfOpenMaxCalls"
      )
      expect((yield* Effect.flip(Protect.make({ name: "" }))).field).toBe("protect.name")
    }))

  describe("promise work (one async step per attempt)", () => {
    it.scoped("applies every policy: rate limit, bulkhead, breaker, timeout and retry", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ limit: 10, window: "1 minute", algorithm: "fixed-window" })
        const stack = yield* Protect.make({
          timeout: "1 second",
          bulkhead: { maxConcurrent: 1 },
          rateLimit: { limiter, key: "p" },
          breaker: { trip: CircuitBreaker.consecutive(3) },
          retry: retries(2)
        })
        let calls = 0
        // first attempt never settles (times out), the retry succeeds
        const fiber = yield* Effect.fork(stack.promise(() => ++calls === 1 ? new Promise<string>(() => {}) : Promise.resolve("second")))
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(fiber)).toBe("second")
        expect(calls).toBe(2)
        expect(yield* stack.policies.breaker!.stats).toMatchObject({ failures: 1, successes: 1 }) // the timeout counted
        expect((yield* limiter.status("p")).remaining).toBe(8) // both attempts were charged
        expect(yield* stack.policies.bulkhead!.stats).toMatchObject({ active: 0 })
      }))

    it.scoped("rejections by the policies are final and leave no slot taken", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimiter.make({ limit: 1, window: "1 minute", algorithm: "fixed-window" })
        const stack = yield* Protect.make({ rateLimit: { limiter }, bulkhead: { maxConcurrent: 1 }, retry: retries(3) })
        let calls = 0
        expect(yield* stack.promise(() => Promise.resolve(++calls))).toBe(1)
        expect(failureOf(yield* Effect.exit(stack.promise(() => Promise.resolve(++calls))))).toBeInstanceOf(RateLimitedError)
        expect(calls).toBe(1)
        const breaker = yield* CircuitBreaker.make({ trip: CircuitBreaker.consecutive(1) })
        const guarded = yield* Protect.make({ breaker, bulkhead: { maxConcurrent: 1 }, retry: retries(3) })
        const first = yield* Effect.exit(guarded.tryPromise({ try: () => Promise.reject("down"), catch: (e) => e as string }))
        expect(failureOf(first)).toBe("down") // "down" has no retryable category: one attempt
        expect(failureOf(yield* Effect.exit(guarded.promise(() => Promise.resolve(1))))).toBeInstanceOf(CircuitOpenError)
        expect(yield* guarded.policies.bulkhead!.stats).toMatchObject({ active: 0 })
      }))

    it.scoped("a full bulkhead queues (first come, first served) or rejects", () =>
      Effect.gen(function*() {
        const stack = yield* Protect.make({ bulkhead: { maxConcurrent: 1, maxQueued: 1 } })
        let release: (value: string) => void = () => {}
        const first = yield* Effect.fork(stack.promise(() => new Promise<string>((resolve) => (release = resolve))))
        yield* Effect.yieldNow()
        const second = yield* Effect.fork(stack.promise(() => Promise.resolve("queued")))
        yield* Effect.yieldNow()
        expect(yield* stack.policies.bulkhead!.stats).toMatchObject({ active: 1, queued: 1 })
        expect(failureOf(yield* Effect.exit(stack.promise(() => Promise.resolve("x"))))).toBeInstanceOf(BulkheadFullError)
        release("first")
        expect(yield* Fiber.join(first)).toBe("first")
        expect(yield* Fiber.join(second)).toBe("queued")
        expect(yield* stack.policies.bulkhead!.stats).toMatchObject({ active: 0, queued: 0, rejected: 1 })
      }))

    it.scoped("the slot stays taken until interrupted work settles: the dependency is still busy", () =>
      Effect.gen(function*() {
        const stack = yield* Protect.make({ bulkhead: { maxConcurrent: 1 }, breaker: { trip: CircuitBreaker.consecutive(1) } })
        let release: (value: string) => void = () => {}
        const fiber = yield* Effect.fork(stack.promise(() => new Promise<string>((resolve) => (release = resolve))))
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(fiber)
        expect(yield* stack.policies.bulkhead!.stats).toMatchObject({ active: 1 })
        release("late")
        yield* Effect.promise(() => Promise.resolve())
        expect(yield* stack.policies.bulkhead!.stats).toMatchObject({ active: 0 })
        expect(yield* stack.policies.breaker!.stats).toMatchObject({ successes: 1, failures: 0 })
      }))

    it.scoped("with a signal: interruption aborts the work, and the abort is not held against the dependency", () =>
      Effect.gen(function*() {
        const stack = yield* Protect.make({ breaker: { trip: CircuitBreaker.consecutive(1) }, timeout: "1 minute" })
        let signal: AbortSignal | undefined
        const fiber = yield* Effect.fork(stack.promise((s) => {
          signal = s
          return new Promise<string>((_, reject) => s.addEventListener("abort", () => reject(new Error("aborted"))))
        }))
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(fiber)
        expect(signal?.aborted).toBe(true)
        yield* Effect.promise(() => Promise.resolve())
        const stats = yield* stack.policies.breaker!.stats
        expect(stats).toMatchObject({ state: "closed", failures: 0 })
        // and a timeout aborts it too, and counts
        const slow = yield* Effect.fork(Effect.exit(stack.promise((s) => {
          signal = s
          return new Promise<string>(() => {})
        })))
        yield* TestClock.adjust("1 minute")
        expect(failureOf(yield* Fiber.join(slow))).toBeInstanceOf(TimeoutError)
        expect(signal?.aborted).toBe(true)
        expect(yield* stack.policies.breaker!.state).toBe("open")
      }))

    it.scoped("a rejected promise is a defect with promise and counts for the breaker; tryPromise maps it", () =>
      Effect.gen(function*() {
        const stack = yield* Protect.make<string>({
          breaker: { trip: CircuitBreaker.consecutive(2), isFailure: (e) => e !== "ignored" }
        })
        const died = yield* Effect.exit(stack.promise(() => Promise.reject(new Error("crash"))))
        expect(Exit.isFailure(died) && Cause.isDie(died.cause)).toBe(true)
        yield* Effect.exit(stack.tryPromise({ try: () => Promise.reject(0), catch: () => "ignored" }))
        expect((yield* stack.policies.breaker!.stats).failures).toBe(1)
        yield* Effect.exit(stack.promise(() => {
          throw new Error("sync throw")
        }))
        expect(yield* stack.policies.breaker!.state).toBe("open")
      }))
  })

  describe("edge cases of promise work", () => {
    it.scoped("a catch that throws is a defect, and the slot and the deadline are released", () =>
      Effect.gen(function*() {
        const stack = yield* Protect.make({ timeout: "200 millis", bulkhead: { maxConcurrent: 1 } })
        const exit = yield* Effect.exit(stack.tryPromise({
          try: () => Promise.reject(new Error("down")),
          catch: () => {
            throw new Error("catch crashed")
          }
        }))
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
        expect(yield* stack.policies.bulkhead!.stats).toMatchObject({ active: 0 })
        expect(yield* stack.policies.timeout!.inFlight).toBe(0)
        expect(yield* stack.promise(() => Promise.resolve("next"))).toBe("next")
      }))

    it.scoped("a thenable that calls back twice settles once", () =>
      Effect.gen(function*() {
        const stack = yield* Protect.make({ bulkhead: { maxConcurrent: 1 }, breaker: { trip: CircuitBreaker.consecutive(5) } })
        const twice: PromiseLike<string> = {
          then: <R1, R2>(onOk?: ((value: string) => R1 | PromiseLike<R1>) | null) => {
            onOk?.("a")
            onOk?.("b")
            return Promise.resolve() as unknown as PromiseLike<R1 | R2>
          }
        }
        expect(yield* stack.promise(() => twice)).toBe("a")
        expect(yield* stack.policies.bulkhead!.stats).toMatchObject({ active: 0 })
        expect((yield* stack.policies.breaker!.stats).successes).toBe(1)
      }))

    it.scoped("an interrupted trial call gives its permit back at once: never stuck half-open", () =>
      Effect.gen(function*() {
        const stack = yield* Protect.make({ breaker: { trip: CircuitBreaker.consecutive(1), resetAfter: "1 second" } })
        yield* Effect.exit(stack.promise(() => Promise.reject(new Error("down"))))
        yield* TestClock.adjust("1 second")
        const hung = yield* Effect.fork(stack.promise(() => new Promise<string>(() => {})))
        yield* Effect.yieldNow()
        expect((yield* stack.policies.breaker!.stats).halfOpenInFlight).toBe(1)
        yield* Fiber.interrupt(hung)
        expect((yield* stack.policies.breaker!.stats).halfOpenInFlight).toBe(0)
        expect(yield* stack.promise(() => Promise.resolve("probe"))).toBe("probe")
        expect(yield* stack.policies.breaker!.state).toBe("closed")
      }))

    it.scoped("per-call options are validated", () =>
      Effect.gen(function*() {
        const stack = yield* Protect.make({ timeout: "1 second" })
        const badTimeout = yield* Effect.flip(stack.promise(() => Promise.resolve(1), { timeout: -5 }))
        expect(badTimeout).toMatchObject({ _tag: "ValidationError", field: "protect.timeout" })
        const badKey = yield* Effect.flip(stack.run(Effect.succeed(1), { key: "" }))
        expect(badKey).toMatchObject({ _tag: "ValidationError", field: "protect.key" })
        const short = yield* Effect.fork(Effect.exit(stack.promise(() => new Promise<number>(() => {}), { timeout: "10 millis" })))
        yield* TestClock.adjust("10 millis")
        expect(failureOf(yield* Fiber.join(short))).toBeInstanceOf(TimeoutError)
      }))
  })
})

import { describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Deferred, Duration, Effect, Exit, Fiber, Option, Ref, Scope, TestClock } from "effect"
import { TimeoutError } from "../../src/errors/FoundationError.js"
import * as Timeout from "../../src/resilience/Timeout.js"

const never = <A>() => new Promise<A>(() => {})

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

describe("Timeout", () => {
  it.scoped("lets fast promise work through, and counts nothing in flight afterwards", () =>
    Effect.gen(function*() {
      const timeout = yield* Timeout.make({ duration: "1 second", name: "fast" })
      expect(yield* timeout.promise(() => Promise.resolve(42))).toBe(42)
      expect(yield* timeout.inFlight).toBe(0)
    }))

  it.scoped("fails slow promise work with TimeoutError at the deadline and aborts its signal", () =>
    Effect.gen(function*() {
      const timeout = yield* Timeout.make({ duration: "2 seconds", name: "slow-api" })
      let signal: AbortSignal | undefined
      const fiber = yield* Effect.fork(Effect.exit(timeout.promise((s) => {
        signal = s
        return never<number>()
      })))
      yield* TestClock.adjust("1999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      expect(signal?.aborted).toBe(false)
      yield* TestClock.adjust("1 milli")
      const error = failureOf(yield* Fiber.join(fiber))
      expect(error).toBeInstanceOf(TimeoutError)
      expect(error?.category).toBe("transient")
      expect(Duration.toMillis(error!.timeout)).toBe(2000)
      expect(error?.message).toBe("slow-api timed out after 2s")
      expect(signal?.aborted).toBe(true)
      expect(yield* timeout.inFlight).toBe(0)
    }))

  it.scoped("a rejected promise is a defect with promise, a typed failure with tryPromise", () =>
    Effect.gen(function*() {
      const timeout = yield* Timeout.make({ duration: "1 second" })
      const died = yield* Effect.exit(timeout.promise(() => Promise.reject(new Error("nope"))))
      expect(Exit.isFailure(died) && Cause.isDie(died.cause)).toBe(true)
      const failed = yield* Effect.exit(
        timeout.tryPromise({ try: () => Promise.reject(new Error("nope")), catch: (e) => `caught ${(e as Error).message}` })
      )
      expect(failureOf(failed)).toBe("caught nope")
      const thrown = yield* Effect.exit(timeout.promise(() => {
        throw new Error("sync throw")
      }))
      expect(Exit.isFailure(thrown) && Cause.isDie(thrown.cause)).toBe(true)
      expect(yield* timeout.inFlight).toBe(0)
    }))

  it.scoped("limits any effect and interrupts it on timeout", () =>
    Effect.gen(function*() {
      const timeout = yield* Timeout.make({ duration: "1 second" })
      const finalized = yield* Ref.make(false)
      expect(yield* timeout.apply(Effect.succeed("quick"))).toBe("quick")
      const slow = Effect.never.pipe(Effect.onInterrupt(() => Ref.set(finalized, true)))
      const fiber = yield* Effect.fork(Effect.exit(timeout.apply(slow)))
      yield* TestClock.adjust("1 second")
      expect(failureOf(yield* Fiber.join(fiber))).toBeInstanceOf(TimeoutError)
      expect(yield* Ref.get(finalized)).toBe(true)
      const failing = yield* Effect.exit(timeout.apply(Effect.fail("own error" as const)))
      expect(failureOf(failing)).toBe("own error")
    }))

  it.scoped("a per-call duration shorter than the default fires first", () =>
    Effect.gen(function*() {
      const timeout = yield* Timeout.make({ duration: "10 seconds" })
      const long = yield* Effect.fork(Effect.exit(timeout.promise(() => never<number>())))
      yield* Effect.yieldNow()
      const short = yield* Effect.fork(Effect.exit(timeout.promise(() => never<number>(), "100 millis")))
      yield* TestClock.adjust("100 millis")
      expect(failureOf(yield* Fiber.join(short))).toBeInstanceOf(TimeoutError)
      expect(long.unsafePoll()).toBeNull()
      yield* TestClock.adjust("9900 millis")
      expect(failureOf(yield* Fiber.join(long))).toBeInstanceOf(TimeoutError)
    }))

  it.scoped("many calls share the timer: only those past their deadline time out", () =>
    Effect.gen(function*() {
      const timeout = yield* Timeout.make({ duration: "1 second" })
      const gates = yield* Effect.forEach(Array.from({ length: 50 }), () => Deferred.make<number>())
      const fibers = yield* Effect.forEach(gates, (gate, i) =>
        Effect.fork(Effect.exit(timeout.apply(Deferred.await(gate)))).pipe(
          Effect.zipLeft(i === 24 ? TestClock.adjust("500 millis") : Effect.void)
        ))
      // the first 25 started at t=0, the rest at t=500; release the odd ones now
      yield* Effect.forEach(gates, (gate, i) => i % 2 === 1 ? Deferred.succeed(gate, i) : Effect.void)
      yield* TestClock.adjust("500 millis") // t = 1000: deadlines of the first 25 pass
      const firstHalf = yield* Effect.forEach(fibers.slice(0, 25), Fiber.join)
      expect(firstHalf.filter(Exit.isSuccess).length).toBe(12)
      expect(firstHalf.filter((e) => failureOf(e) instanceof TimeoutError).length).toBe(13)
      expect(fibers.slice(25).every((f) => f.unsafePoll() === null || Exit.isSuccess(f.unsafePoll()!))).toBe(true)
      yield* TestClock.adjust("500 millis")
      const secondHalf = yield* Effect.forEach(fibers.slice(25), Fiber.join)
      expect(secondHalf.filter((e) => failureOf(e) instanceof TimeoutError).length).toBe(12)
      expect(yield* timeout.inFlight).toBe(0)
    }))

  it.scoped("interrupting the caller interrupts the work and aborts the signal", () =>
    Effect.gen(function*() {
      const timeout = yield* Timeout.make({ duration: "1 minute" })
      let signal: AbortSignal | undefined
      const fiber = yield* Effect.fork(timeout.promise((s) => {
        signal = s
        return never<number>()
      }))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(fiber)
      expect(signal?.aborted).toBe(true)
      expect(yield* timeout.inFlight).toBe(0)
      const interrupted = yield* Ref.make(false)
      const inner = yield* Effect.fork(timeout.apply(Effect.never.pipe(Effect.onInterrupt(() => Ref.set(interrupted, true)))))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(inner)
      expect(yield* Ref.get(interrupted)).toBe(true)
      expect(yield* timeout.inFlight).toBe(0)
    }))

  it.effect("holds no timer when idle, and closing its scope fails the calls in flight", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const timeout = yield* Timeout.make({ duration: "1 second" }).pipe(Scope.extend(scope))
      yield* timeout.promise(() => Promise.resolve(1))
      yield* TestClock.adjust("3 seconds") // a quiet period: the wheel goes idle
      expect(Chunk.size(yield* TestClock.sleeps())).toBe(0)
      const fiber = yield* Effect.fork(Effect.exit(timeout.promise(() => never<number>())))
      yield* Effect.yieldNow()
      yield* Scope.close(scope, Exit.void) // no time has passed: the call fails because of the close
      expect(failureOf(yield* Fiber.join(fiber))).toBeInstanceOf(TimeoutError)
    }))

  it.effect("the one-off timeout uses Effect's own", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.exit(Timeout.timeout(Effect.never, "5 seconds")))
      yield* TestClock.adjust("5 seconds")
      const error = failureOf(yield* Fiber.join(fiber))
      expect(error).toBeInstanceOf(TimeoutError)
      expect(yield* Effect.succeed(1).pipe(Timeout.timeout("1 second"))).toBe(1)
    }))

  it.scoped("rejects bad durations at construction", () =>
    Effect.gen(function*() {
      for (const duration of [0, -1, Number.NaN, Duration.infinity, "soon"]) {
        const error = yield* Effect.flip(Timeout.make({ duration: duration as Duration.DurationInput }))
        expect(error.field).toBe("timeout.duration")
      }
      expect((yield* Effect.flip(Timeout.make({ duration: 5, name: "" }))).field).toBe("timeout.name")
    }))

  it.effect("made inside an uninterruptible region, its scope still closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      yield* Effect.uninterruptible(Timeout.make({ duration: "1 second" }).pipe(Scope.extend(scope)))
      yield* Scope.close(scope, Exit.void) // would hang if the timer fiber were uninterruptible
    }))

  it.effect("a call made after its scope closed fails at once instead of running without a deadline", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const timeout = yield* Timeout.make({ duration: "1 second" }).pipe(Scope.extend(scope))
      yield* Scope.close(scope, Exit.void)
      let started = false
      const exit = yield* Effect.exit(timeout.promise(() => {
        started = true
        return never<number>()
      }))
      expect(failureOf(exit)).toBeInstanceOf(TimeoutError)
      expect(started).toBe(false)
      expect(failureOf(yield* Effect.exit(timeout.apply(Effect.never)))).toBeInstanceOf(TimeoutError)
      expect(yield* timeout.inFlight).toBe(0)
    }))

  it.scoped("a catch that throws becomes a defect; a bad per-call duration a ValidationError", () =>
    Effect.gen(function*() {
      const timeout = yield* Timeout.make({ duration: "1 second" })
      const exit = yield* Effect.exit(timeout.tryPromise({
        try: () => Promise.reject(new Error("x")),
        catch: () => {
          throw new Error("catch crashed")
        }
      }))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(yield* timeout.inFlight).toBe(0)
      const bad = yield* Effect.flip(timeout.promise(() => Promise.resolve(1), Number.NaN))
      expect(bad._tag).toBe("ValidationError")
      const badApply = yield* Effect.flip(timeout.apply(Effect.void, 0))
      expect(badApply._tag).toBe("ValidationError")
    }))
})

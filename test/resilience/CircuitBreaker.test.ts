import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  FastCheck as fc,
  Metric,
  Option,
  Ref,
  Schedule,
  Stream,
  TestClock
} from "effect"
import type { CircuitOpenError, ValidationError } from "../../src/errors/FoundationError.js"
import * as CircuitBreaker from "../../src/resilience/CircuitBreaker.js"

/** An effect that counts its runs, then fails or succeeds. */
const counted = (runs: Ref.Ref<number>, outcome: "ok" | "fail" | "die" = "ok") =>
  Ref.update(runs, (n) => n + 1).pipe(
    Effect.zipRight(
      outcome === "ok" ? Effect.succeed("ok") : outcome === "fail" ? Effect.fail("boom" as const) : Effect.die("defect")
    )
  )

const openError = <A, E>(exit: Exit.Exit<A, E>): CircuitOpenError | undefined =>
  Exit.isFailure(exit)
    ? Option.getOrUndefined(
      Option.filter(
        Cause.failureOption(exit.cause),
        (e): e is E & CircuitOpenError =>
          typeof e === "object" && e !== null && (e as { readonly _tag?: unknown })._tag === "CircuitOpenError"
      )
    )
    : undefined

const failTimes = <E>(breaker: CircuitBreaker.CircuitBreaker<E>, n: number, error: E) =>
  Effect.forEach(Array.from({ length: n }), () => Effect.exit(breaker.protect(Effect.fail(error))), { discard: true })

describe("CircuitBreaker", () => {
  describe("closed state and tripping", () => {
    it.effect("passes calls through and opens after 5 consecutive typed failures (the default)", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "db" })
        const runs = yield* Ref.make(0)
        expect(yield* breaker.protect(counted(runs))).toBe("ok")
        yield* failTimes(breaker, 4, "boom")
        expect(yield* breaker.state).toBe("closed")
        yield* Effect.exit(breaker.protect(counted(runs, "fail")))
        expect(yield* breaker.state).toBe("open")
        const before = yield* Ref.get(runs)
        const exit = yield* Effect.exit(breaker.protect(counted(runs)))
        const error = openError(exit)
        expect(error?._tag).toBe("CircuitOpenError")
        expect(error?.breaker).toBe("db")
        expect(error?.state).toBe("open")
        expect(Duration.toMillis(error!.retryAfter)).toBe(60_000)
        expect(yield* Ref.get(runs)).toBe(before) // the protected effect never started
      }))

    it.effect("a success resets the run of failures", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ trip: CircuitBreaker.consecutive(3) })
        yield* failTimes(breaker, 2, "e")
        yield* breaker.protect(Effect.void)
        yield* failTimes(breaker, 2, "e")
        expect(yield* breaker.state).toBe("closed")
        yield* failTimes(breaker, 1, "e")
        expect(yield* breaker.state).toBe("open")
      }))

    it.effect("defects always count; isFailure decides for typed failures; interruptions never count", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make<string>({
          trip: CircuitBreaker.consecutive(2),
          isFailure: (e) => e !== "not-found"
        })
        yield* failTimes(breaker, 5, "not-found")
        yield* Effect.exit(breaker.protect(Effect.interrupt))
        expect((yield* breaker.stats).window.consecutiveFailures).toBe(0)
        yield* Effect.exit(breaker.protect(Effect.die("kaput")))
        yield* Effect.exit(breaker.protect(Effect.fail("bad")))
        expect(yield* breaker.state).toBe("open")
        const stats = yield* breaker.stats
        expect(stats.failures).toBe(2)
      }))

    it.effect("an interrupted caller does not count", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ trip: CircuitBreaker.consecutive(1) })
        const fiber = yield* Effect.fork(breaker.protect(Effect.never))
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(fiber)
        expect(yield* breaker.state).toBe("closed")
        expect((yield* breaker.stats).failures).toBe(0)
      }))

    it.effect("count window trips on the failure rate once the minimum number of calls is reached", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          trip: CircuitBreaker.countWindow({ size: 10, failureRate: 0.5, minimumCalls: 6 })
        })
        // 2 failures out of 5 calls: below the minimum number of calls
        yield* failTimes(breaker, 2, "e")
        yield* Effect.forEach([1, 2, 3], () => breaker.protect(Effect.void))
        expect(yield* breaker.state).toBe("closed")
        yield* breaker.protect(Effect.void) // 2 of 6
        yield* failTimes(breaker, 1, "e") // 3 of 7
        expect(yield* breaker.state).toBe("closed")
        yield* failTimes(breaker, 1, "e") // 4 of 8: the rate reaches 0.5
        expect(yield* breaker.state).toBe("open")
      }))

    it.effect("count window forgets calls older than its size", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          trip: CircuitBreaker.countWindow({ size: 4, failureRate: 0.75, minimumCalls: 4 })
        })
        yield* failTimes(breaker, 2, "e")
        yield* Effect.forEach([1, 2, 3, 4], () => breaker.protect(Effect.void))
        // the two failures were pushed out of the 4-call ring
        expect((yield* breaker.stats).window).toMatchObject({ calls: 4, failures: 0 })
        yield* failTimes(breaker, 2, "e")
        expect(yield* breaker.state).toBe("closed") // 2 of 4
        yield* failTimes(breaker, 1, "e")
        expect(yield* breaker.state).toBe("open") // 3 of 4
      }))

    it.effect("time window counts only the calls inside the window", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          trip: CircuitBreaker.timeWindow({ window: "10 seconds", buckets: 10, failureRate: 0.5, minimumCalls: 4 })
        })
        yield* failTimes(breaker, 3, "e")
        yield* TestClock.adjust("11 seconds")
        yield* failTimes(breaker, 1, "e")
        // the first three fell out of the window: 1 call only
        expect((yield* breaker.stats).window).toMatchObject({ calls: 1, failures: 1 })
        expect(yield* breaker.state).toBe("closed")
        yield* TestClock.adjust("5 seconds")
        yield* breaker.protect(Effect.void)
        yield* failTimes(breaker, 1, "e")
        expect(yield* breaker.state).toBe("closed") // 2 of 3, below the minimum
        yield* failTimes(breaker, 1, "e")
        expect(yield* breaker.state).toBe("open") // 3 of 4 within 10 s
      }))

    it.effect("slow calls count as bad in a consecutive breaker", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          trip: CircuitBreaker.consecutive(2),
          slowCall: { duration: "1 second" }
        })
        const slow = breaker.protect(Effect.sleep("1500 millis"))
        for (let i = 0; i < 2; i++) {
          const f = yield* Effect.fork(slow)
          yield* TestClock.adjust("1500 millis")
          yield* Fiber.join(f)
        }
        expect(yield* breaker.state).toBe("open")
        const stats = yield* breaker.stats
        expect(stats.slowCalls).toBe(2)
        expect(stats.successes).toBe(2)
      }))

    it.effect("slow-call rate trips a window breaker even when every call succeeds", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          trip: CircuitBreaker.countWindow({ size: 4, failureRate: 1, minimumCalls: 4 }),
          slowCall: { duration: "100 millis", rate: 0.5 }
        })
        const run = (ms: number) =>
          Effect.gen(function*() {
            const f = yield* Effect.fork(breaker.protect(Effect.sleep(Duration.millis(ms))))
            yield* TestClock.adjust(Duration.millis(ms))
            yield* Fiber.join(f)
          })
        yield* run(10)
        yield* run(200)
        yield* run(10)
        expect(yield* breaker.state).toBe("closed")
        yield* run(200) // 2 slow of 4
        expect(yield* breaker.state).toBe("open")
      }))

    it.effect("concurrent failures are all counted, none lost", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          trip: CircuitBreaker.countWindow({ size: 1000, failureRate: 1, minimumCalls: 1000 })
        })
        yield* Effect.forEach(
          Array.from({ length: 999 }),
          () => Effect.exit(breaker.protect(Effect.yieldNow().pipe(Effect.zipRight(Effect.fail("e"))))),
          { concurrency: "unbounded", discard: true }
        )
        const stats = yield* breaker.stats
        expect(stats.failures).toBe(999)
        expect(stats.window.calls).toBe(999)
        expect(stats.state).toBe("closed")
        yield* failTimes(breaker, 1, "e")
        expect(yield* breaker.state).toBe("open")
      }))
  })

  describe("open, half-open and reset", () => {
    it.effect("admits one trial call after the reset delay; extra callers are rejected; success closes", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ trip: CircuitBreaker.consecutive(1), resetAfter: "30 seconds" })
        yield* failTimes(breaker, 1, "e")
        yield* TestClock.adjust("29999 millis")
        const early = openError(yield* Effect.exit(breaker.protect(Effect.void)))
        expect(early?.state).toBe("open")
        expect(Duration.toMillis(early!.retryAfter)).toBe(1)
        yield* TestClock.adjust("1 milli")
        const gate = yield* Deferred.make<void>()
        const probe = yield* Effect.fork(breaker.protect(Deferred.await(gate)))
        yield* Effect.yieldNow()
        expect(yield* breaker.state).toBe("half_open")
        const extra = openError(yield* Effect.exit(breaker.protect(Effect.void)))
        expect(extra?.state).toBe("half_open")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(probe)
        expect(yield* breaker.state).toBe("closed")
      }))

    it.effect("a failing trial call reopens; the reset schedule backs off and closing restarts it", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          trip: CircuitBreaker.consecutive(1),
          resetAfter: Schedule.exponential("1 second", 2)
        })
        const openFor = Effect.gen(function*() {
          const e = openError(yield* Effect.exit(breaker.protect(Effect.void)))
          return e === undefined ? -1 : Duration.toMillis(e.retryAfter)
        })
        yield* failTimes(breaker, 1, "e")
        expect(yield* openFor).toBe(1000)
        yield* TestClock.adjust("1 second")
        yield* failTimes(breaker, 1, "e") // trial fails: reopen with the next delay
        expect(yield* openFor).toBe(2000)
        yield* TestClock.adjust("2 seconds")
        yield* failTimes(breaker, 1, "e")
        expect(yield* openFor).toBe(4000)
        yield* TestClock.adjust("4 seconds")
        yield* breaker.protect(Effect.void) // trial succeeds: closed, backoff restarts
        expect(yield* breaker.state).toBe("closed")
        yield* failTimes(breaker, 1, "e")
        expect(yield* openFor).toBe(1000)
        expect((yield* breaker.stats).openCount).toBe(1)
      }))

    it.effect("K trial calls at a time, closing after the success threshold", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          trip: CircuitBreaker.consecutive(1),
          resetAfter: "1 second",
          halfOpenMaxCalls: 2,
          successThreshold: 3
        })
        yield* failTimes(breaker, 1, "e")
        yield* TestClock.adjust("1 second")
        const gate = yield* Deferred.make<void>()
        const a = yield* Effect.fork(breaker.protect(Deferred.await(gate)))
        const b = yield* Effect.fork(breaker.protect(Deferred.await(gate)))
        yield* Effect.yieldNow()
        expect((yield* breaker.stats).halfOpenInFlight).toBe(2)
        expect(openError(yield* Effect.exit(breaker.protect(Effect.void)))?.state).toBe("half_open")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(a)
        yield* Fiber.join(b)
        expect(yield* breaker.state).toBe("half_open") // 2 of 3 successes
        yield* breaker.protect(Effect.void)
        expect(yield* breaker.state).toBe("closed")
      }))

    it.effect("an interrupted trial call gives its permit back: the breaker never sticks half-open", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ trip: CircuitBreaker.consecutive(1), resetAfter: "1 second" })
        yield* failTimes(breaker, 1, "e")
        yield* TestClock.adjust("1 second")
        const probe = yield* Effect.fork(breaker.protect(Effect.never))
        yield* Effect.yieldNow()
        expect((yield* breaker.stats).halfOpenInFlight).toBe(1)
        yield* Fiber.interrupt(probe)
        expect((yield* breaker.stats).halfOpenInFlight).toBe(0)
        expect(yield* breaker.state).toBe("half_open")
        expect(yield* breaker.protect(Effect.succeed(1))).toBe(1)
        expect(yield* breaker.state).toBe("closed")
      }))

    it.effect("results of calls admitted before a transition do not count after it", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ trip: CircuitBreaker.consecutive(2), resetAfter: "1 second" })
        const gate = yield* Deferred.make<void>()
        const late = yield* Effect.fork(breaker.protect(Deferred.await(gate).pipe(Effect.zipRight(Effect.fail("late")))))
        yield* Effect.yieldNow()
        yield* failTimes(breaker, 2, "e")
        yield* TestClock.adjust("1 second")
        yield* breaker.protect(Effect.void) // trial closes it
        expect(yield* breaker.state).toBe("closed")
        yield* Deferred.succeed(gate, undefined)
        yield* Effect.exit(Fiber.join(late))
        expect((yield* breaker.stats).window.consecutiveFailures).toBe(0)
      }))
    it.effect("a trial call still running when the breaker is isolated or reset does not count", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ trip: CircuitBreaker.consecutive(1), resetAfter: "1 second" })
        yield* failTimes(breaker, 1, "e")
        yield* TestClock.adjust("1 second")
        const gate = yield* Deferred.make<void>()
        const probe = yield* Effect.fork(breaker.protect(Deferred.await(gate).pipe(Effect.zipRight(Effect.fail("late")))))
        yield* Effect.yieldNow()
        yield* breaker.isolate
        yield* Deferred.succeed(gate, undefined)
        yield* Effect.exit(Fiber.join(probe))
        expect(yield* breaker.state).toBe("isolated")
        expect((yield* breaker.stats).halfOpenInFlight).toBe(0)
      }))
  })

  describe("manual control, hydration and observation", () => {
    it.effect("isolate rejects until reset; disable lets everything through unrecorded", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ trip: CircuitBreaker.consecutive(1) })
        yield* breaker.isolate
        const e = openError(yield* Effect.exit(breaker.protect(Effect.void)))
        expect(e?.state).toBe("isolated")
        expect(Duration.isFinite(e!.retryAfter)).toBe(false)
        yield* TestClock.adjust("1 hour")
        expect(yield* breaker.state).toBe("isolated")
        yield* breaker.reset
        expect(yield* breaker.state).toBe("closed")
        yield* breaker.disable
        yield* failTimes(breaker, 10, "e")
        expect(yield* breaker.state).toBe("disabled")
        expect((yield* breaker.stats).failures).toBe(0)
        yield* breaker.reset
        yield* failTimes(breaker, 1, "e")
        expect(yield* breaker.state).toBe("open")
      }))

    it.effect("snapshot and restore carry the state across instances; a bad snapshot changes nothing", () =>
      Effect.gen(function*() {
        const a = yield* CircuitBreaker.make({ name: "svc", trip: CircuitBreaker.consecutive(3), resetAfter: "10 seconds" })
        yield* failTimes(a, 2, "e")
        const closedSnapshot = yield* a.snapshot
        expect(closedSnapshot.window).toEqual({ _tag: "consecutive", consecutiveFailures: 2 })
        yield* failTimes(a, 1, "e")
        const snap = yield* a.snapshot
        expect(snap.state).toBe("open")
        // JSON round trip, as a store would do
        const json = JSON.parse(JSON.stringify(snap))
        const b = yield* CircuitBreaker.make({ name: "svc", trip: CircuitBreaker.consecutive(3), resetAfter: "10 seconds", initial: json })
        expect(yield* b.state).toBe("open")
        expect(openError(yield* Effect.exit(b.protect(Effect.void)))?.state).toBe("open")
        const c = yield* CircuitBreaker.make({ trip: CircuitBreaker.consecutive(3) })
        yield* c.restore(closedSnapshot)
        yield* failTimes(c, 1, "e")
        expect(yield* c.state).toBe("open") // 2 restored + 1
        const bad = yield* Effect.either(c.restore({ ...snap, state: "melted" }))
        expect(Either.isLeft(bad) && bad.left.field).toBe("snapshot.state")
        expect(yield* c.state).toBe("open")
      }))

    it.effect("hydration replays the reset backoff", () =>
      Effect.gen(function*() {
        const options = { trip: CircuitBreaker.consecutive(1), resetAfter: Schedule.exponential("1 second") }
        const a = yield* CircuitBreaker.make(options)
        yield* failTimes(a, 1, "e")
        yield* TestClock.adjust("1 second")
        yield* failTimes(a, 1, "e") // second opening: 2 s
        const b = yield* CircuitBreaker.make({ ...options, initial: yield* a.snapshot })
        yield* TestClock.adjust("2 seconds")
        yield* failTimes(b, 1, "e") // third opening: 4 s
        const e = openError(yield* Effect.exit(b.protect(Effect.void)))
        expect(Duration.toMillis(e!.retryAfter)).toBe(4000)
      }))

    it.effect("a restored opening count of any size costs nothing; a finished schedule keeps its last delay", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          trip: CircuitBreaker.consecutive(1),
          resetAfter: Schedule.exponential("1 second").pipe(Schedule.intersect(Schedule.recurs(3)))
        })
        const snapshot = yield* breaker.snapshot
        yield* breaker.restore({ ...snapshot, openCount: 1_000_000_000 })
        yield* breaker.reset
        yield* failTimes(breaker, 1, "e")
        const delays: Array<number> = []
        for (let i = 0; i < 5; i++) {
          const e = openError(yield* Effect.exit(breaker.protect(Effect.void)))
          delays.push(Duration.toMillis(e!.retryAfter))
          yield* TestClock.adjust(e!.retryAfter)
          yield* failTimes(breaker, 1, "e") // the trial call fails: reopen
        }
        expect(delays).toEqual([1000, 2000, 4000, 4000, 4000]) // recurs(3): three delays, then the last holds
      }))

    it.effect("resetting a closed breaker is not a state change", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "no-op-reset" })
        yield* breaker.reset
        yield* breaker.reset
        const pairs = yield* Metric.snapshot
        expect(pairs.some((p) =>
          p.metricKey.name === "foundation_circuit_breaker_state_changes_total" &&
          p.metricKey.tags.some((t) => t.value === "no-op-reset")
        )).toBe(false)
      }))

    it.scoped("publishes state changes as a stream", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "s", trip: CircuitBreaker.consecutive(1), resetAfter: "1 second" })
        const collected = yield* breaker.stateChanges.pipe(Stream.take(4), Stream.runCollect, Effect.fork)
        yield* Effect.sleep("1 milli").pipe(Effect.fork)
        yield* TestClock.adjust("1 milli")
        yield* failTimes(breaker, 1, "e")
        yield* TestClock.adjust("1 second")
        yield* breaker.protect(Effect.void)
        yield* breaker.isolate
        const changes = Chunk.toReadonlyArray(yield* Fiber.join(collected))
        expect(changes.map((c) => `${c.from}->${c.to}`)).toEqual([
          "closed->open",
          "open->half_open",
          "half_open->closed",
          "closed->isolated"
        ])
        expect(changes[0]).toMatchObject({ breaker: "s", at: 1 })
      }))

    it.effect("updates its metrics", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "metrics-test", trip: CircuitBreaker.consecutive(2) })
        yield* breaker.protect(Effect.void)
        yield* failTimes(breaker, 2, "e")
        yield* Effect.exit(breaker.protect(Effect.void))
        const value = (name: string, tags: Record<string, string>) =>
          Effect.map(Metric.snapshot, (pairs) =>
            pairs.find((p) =>
              p.metricKey.name === name &&
              Object.entries(tags).every(([k, v]) => p.metricKey.tags.some((t) => t.key === k && t.value === v))
            )?.metricState)
        const calls = (outcome: string) =>
          Effect.map(
            value("foundation_circuit_breaker_calls_total", { breaker: "metrics-test", outcome }),
            (s) => (s as { readonly count?: number } | undefined)?.count
          )
        expect(yield* calls("success")).toBe(1)
        expect(yield* calls("failure")).toBe(2)
        expect(yield* calls("rejected")).toBe(1)
        const state = (yield* value("foundation_circuit_breaker_state", { breaker: "metrics-test" })) as unknown as {
          readonly value: number
        }
        expect(state.value).toBe(2)
      }))
  })

  describe("validation", () => {
    const invalid = (options: CircuitBreaker.Options) =>
      Effect.flip(CircuitBreaker.make(options)).pipe(Effect.map((e: ValidationError) => e.field))

    it.effect("rejects bad options at construction, naming the field", () =>
      Effect.gen(function*() {
        expect(yield* invalid({ trip: CircuitBreaker.consecutive(0) })).toBe("circuitBreaker.trip.threshold")
        expect(yield* invalid({ trip: CircuitBreaker.consecutive(-1) })).toBe("circuitBreaker.trip.threshold")
        expect(yield* invalid({ trip: CircuitBreaker.consecutive(Number.NaN) })).toBe("circuitBreaker.trip.threshold")
        expect(yield* invalid({ trip: CircuitBreaker.countWindow({ failureRate: 1.5 }) })).toBe("circuitBreaker.trip.failureRate")
        expect(yield* invalid({ trip: CircuitBreaker.countWindow({ failureRate: 0 }) })).toBe("circuitBreaker.trip.failureRate")
        expect(yield* invalid({ trip: CircuitBreaker.countWindow({ size: 0 }) })).toBe("circuitBreaker.trip.size")
        expect(yield* invalid({ trip: CircuitBreaker.countWindow({ size: 5, minimumCalls: 6 }) })).toBe(
          "circuitBreaker.trip.minimumCalls"
        )
        expect(yield* invalid({ trip: CircuitBreaker.timeWindow({ window: 0 }) })).toBe("circuitBreaker.trip.window")
        expect(yield* invalid({ trip: CircuitBreaker.timeWindow({ window: Number.NaN }) })).toBe("circuitBreaker.trip.window")
        expect(yield* invalid({ trip: CircuitBreaker.timeWindow({ window: 5, buckets: 10 }) })).toBe("circuitBreaker.trip.buckets")
        expect(yield* invalid({ resetAfter: -1 })).toBe("circuitBreaker.resetAfter")
        expect(yield* invalid({ resetAfter: Number.NaN })).toBe("circuitBreaker.resetAfter")
        expect(yield* invalid({ halfOpenMaxCalls: 0 })).toBe("circuitBreaker.halfOpenMaxCalls")
        expect(yield* invalid({ successThreshold: 1.5 })).toBe("circuitBreaker.successThreshold")
        expect(yield* invalid({ slowCall: { duration: 0 } })).toBe("circuitBreaker.slowCall.duration")
        expect(yield* invalid({ slowCall: { duration: 10, rate: 2 } })).toBe("circuitBreaker.slowCall.rate")
        expect(yield* invalid({ name: "" })).toBe("circuitBreaker.name")
      }))
  })

  describe("CircuitBreakers service", () => {
    it.effect("gives named breakers with shared defaults, keeps state on reconfiguration, reports status", () =>
      Effect.gen(function*() {
        const registry = yield* CircuitBreaker.CircuitBreakers
        const db = yield* registry.get("db")
        expect(yield* registry.get("db")).toBe(db)
        yield* Effect.exit(registry.protect("db", Effect.fail("e")))
        expect(yield* db.state).toBe("open") // defaults: consecutive(1)
        const api = yield* registry.get("api")
        expect(yield* api.state).toBe("closed")
        const status = yield* registry.status
        expect(Object.keys(status).sort()).toEqual(["api", "db"])
        expect(status.db?.state).toBe("open")
        const reconfigured = yield* registry.configure("db", { resetAfter: "5 seconds" })
        expect(yield* reconfigured.state).toBe("open")
        expect(yield* registry.remove("api")).toBe(true)
        expect(yield* registry.names).toEqual(["db"])
        const bad = yield* Effect.flip(registry.configure("x", { halfOpenMaxCalls: -1 }))
        expect(bad.field).toBe("circuitBreaker.halfOpenMaxCalls")
      }).pipe(Effect.provide(CircuitBreaker.layer({ trip: CircuitBreaker.consecutive(1) }))))

    it.effect("the layer rejects bad defaults", () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(Effect.provide(CircuitBreaker.CircuitBreakers, CircuitBreaker.layer({ resetAfter: 0 })))
        expect(Exit.isFailure(exit)).toBe(true)
      }))
  })
})

// ---------------------------------------------------------------------------------------------
// Model-based property test
// ---------------------------------------------------------------------------------------------

type Command =
  | { readonly _tag: "ok" }
  | { readonly _tag: "fail"; readonly counted: boolean }
  | { readonly _tag: "slow" }
  | { readonly _tag: "advance"; readonly ms: number }
  | { readonly _tag: "start" }
  | { readonly _tag: "finish"; readonly ok: boolean }
  | { readonly _tag: "interrupt" }
  | { readonly _tag: "isolate" }
  | { readonly _tag: "reset" }

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.constant<Command>({ _tag: "ok" }), weight: 4 },
  { arbitrary: fc.boolean().map((counted): Command => ({ _tag: "fail", counted })), weight: 5 },
  { arbitrary: fc.constant<Command>({ _tag: "slow" }), weight: 2 },
  { arbitrary: fc.integer({ min: 1, max: 1500 }).map((ms): Command => ({ _tag: "advance", ms })), weight: 3 },
  { arbitrary: fc.constant<Command>({ _tag: "start" }), weight: 2 },
  { arbitrary: fc.boolean().map((ok): Command => ({ _tag: "finish", ok })), weight: 2 },
  { arbitrary: fc.constant<Command>({ _tag: "interrupt" }), weight: 1 },
  { arbitrary: fc.constant<Command>({ _tag: "isolate" }), weight: 2 },
  { arbitrary: fc.constant<Command>({ _tag: "reset" }), weight: 2 }
)

const SLOW_MS = 200
const RESET_MS = 1000

/** The reference: a direct transcription of the documented rules. */
class Model {
  state: CircuitBreaker.State = "closed"
  run = 0
  openUntil = 0
  probes = 0
  successes = 0
  epoch = 0
  now = 0
  constructor(readonly threshold: number, readonly maxProbes: number, readonly successThreshold: number) {}
  private go(state: CircuitBreaker.State) {
    this.state = state
    this.epoch++
    this.probes = 0
    this.successes = 0
  }
  private open() {
    this.openUntil = this.now + RESET_MS
    this.run = 0
    this.go("open")
  }
  /** Admission: a ticket, or the state that rejected. */
  admit(): { readonly epoch: number; readonly probe: boolean; readonly start: number } | CircuitBreaker.State {
    if (this.state === "closed" || this.state === "disabled") {
      return { epoch: this.epoch, probe: false, start: this.now }
    }
    if (this.state === "isolated") return "isolated"
    if (this.state === "open") {
      if (this.now < this.openUntil) return "open"
      this.go("half_open")
    }
    if (this.probes >= this.maxProbes) return "half_open"
    this.probes++
    return { epoch: this.epoch, probe: true, start: this.now }
  }
  complete(ticket: { readonly epoch: number; readonly probe: boolean; readonly start: number }, verdict: "good" | "bad" | "neutral") {
    if (ticket.epoch !== this.epoch || this.state === "disabled") return
    if (ticket.probe) this.probes--
    if (verdict === "neutral") return
    const bad = verdict === "bad" || this.now - ticket.start >= SLOW_MS
    if (ticket.probe) {
      if (bad) this.open()
      else if (++this.successes >= this.successThreshold) {
        this.run = 0
        this.go("closed")
      }
      return
    }
    if (bad) {
      if (++this.run >= this.threshold) this.open()
    } else this.run = 0
  }
  read(): CircuitBreaker.State {
    if (this.state === "open" && this.now >= this.openUntil) this.go("half_open")
    return this.state
  }
}

describe("CircuitBreaker model", () => {
  it.effect.prop(
    "behaves like the reference state machine on random command sequences",
    {
      commands: fc.array(commandArb, { minLength: 1, maxLength: 60 }),
      threshold: fc.integer({ min: 1, max: 3 }),
      maxProbes: fc.integer({ min: 1, max: 2 }),
      successThreshold: fc.integer({ min: 1, max: 2 })
    },
    ({ commands, maxProbes, successThreshold, threshold }) =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make<string>({
          trip: CircuitBreaker.consecutive(threshold),
          resetAfter: Duration.millis(RESET_MS),
          halfOpenMaxCalls: maxProbes,
          successThreshold,
          slowCall: { duration: Duration.millis(SLOW_MS) },
          isFailure: (e) => e !== "neutral",
          metrics: false
        })
        const model = new Model(threshold, maxProbes, successThreshold)
        const pending: Array<{
          readonly fiber: Fiber.RuntimeFiber<unknown, unknown>
          readonly gate: Deferred.Deferred<boolean>
          readonly ticket: ReturnType<Model["admit"]>
        }> = []
        const expectAdmission = (exit: Exit.Exit<unknown, unknown>, admitted: ReturnType<Model["admit"]>) => {
          const rejected = openError(exit)
          if (typeof admitted === "string") expect(rejected?.state).toBe(admitted)
          else expect(rejected).toBeUndefined()
        }
        for (const command of commands) {
          switch (command._tag) {
            case "ok":
            case "fail": {
              const admitted = model.admit()
              const effect = command._tag === "ok" ? Effect.void : Effect.fail(command.counted ? "boom" : "neutral")
              expectAdmission(yield* Effect.exit(breaker.protect(effect)), admitted)
              if (typeof admitted !== "string") {
                model.complete(admitted, command._tag === "ok" ? "good" : command.counted ? "bad" : "neutral")
              }
              break
            }
            case "slow": {
              const admitted = model.admit()
              const fiber = yield* Effect.fork(Effect.exit(breaker.protect(Effect.sleep(Duration.millis(SLOW_MS)))))
              yield* Effect.yieldNow()
              yield* TestClock.adjust(Duration.millis(SLOW_MS))
              model.now += SLOW_MS
              expectAdmission(yield* Fiber.join(fiber), admitted)
              if (typeof admitted !== "string") model.complete(admitted, "good")
              break
            }
            case "advance":
              yield* TestClock.adjust(Duration.millis(command.ms))
              model.now += command.ms
              break
            case "start": {
              const ticket = model.admit()
              const gate = yield* Deferred.make<boolean>()
              const fiber = yield* Effect.fork(
                breaker.protect(Effect.flatMap(Deferred.await(gate), (ok) => ok ? Effect.void : Effect.fail("boom")))
              )
              yield* Effect.yieldNow()
              if (typeof ticket === "string") {
                expectAdmission(yield* Fiber.await(fiber), ticket)
              } else {
                pending.push({ fiber, gate, ticket })
              }
              break
            }
            case "finish": {
              const call = pending.shift()
              if (call === undefined) break
              yield* Deferred.succeed(call.gate, command.ok)
              yield* Fiber.await(call.fiber)
              if (typeof call.ticket !== "string") model.complete(call.ticket, command.ok ? "good" : "bad")
              break
            }
            case "interrupt": {
              const call = pending.shift()
              if (call === undefined) break
              yield* Fiber.interrupt(call.fiber)
              if (typeof call.ticket !== "string") model.complete(call.ticket, "neutral")
              break
            }
            case "isolate":
              yield* breaker.isolate
              model.state = "isolated"
              model.epoch++
              model.probes = 0
              model.successes = 0
              break
            case "reset":
              yield* breaker.reset
              model.state = "closed"
              model.run = 0
              model.epoch++
              model.probes = 0
              model.successes = 0
              break
          }
          expect(yield* breaker.state).toBe(model.read())
          const stats = yield* breaker.stats
          expect(stats.halfOpenInFlight).toBe(model.state === "half_open" ? model.probes : 0)
        }
        for (const call of pending) yield* Fiber.interrupt(call.fiber)
      }),
    { fastCheck: { numRuns: 150 } }
  )
})

import { describe, expect, it } from "@effect/vitest"
import { Cause, Clock, Duration, Effect, Exit, FastCheck as fc, Fiber, Option, Scope, TestClock } from "effect"
import * as Example from "../../../examples/barrier.js"
import * as Barrier from "../../../src/agents/coordination/Barrier.js"
import { AlreadyExistsError, NotFoundError, ValidationError } from "../../../src/errors/FoundationError.js"
import * as EventBus from "../../../src/observability/EventBus.js"
import * as Telemetry from "../../../src/observability/Telemetry.js"
import { drainTelemetry } from "../../support/telemetry.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** Lets every ready fiber run, without moving the clock. */
const settle = Effect.repeatN(Effect.yieldNow(), 50)

/** Forks `n` parties awaiting the barrier, in order, each settled before the next. */
const forkParties = (barrier: Barrier.Barrier, n: number) =>
  Effect.gen(function*() {
    const fibers: Array<Fiber.RuntimeFiber<Barrier.Arrival, Barrier.AwaitError>> = []
    for (let i = 0; i < n; i++) {
      fibers.push(yield* Effect.fork(barrier.await))
      yield* settle
    }
    return fibers
  })

/** Forks one party awaiting the barrier, and lets it arrive. */
const forkParty = (barrier: Barrier.Barrier) => Effect.tap(Effect.fork(barrier.await), () => settle)

const pending = (fiber: Fiber.RuntimeFiber<unknown, unknown>) => Effect.map(Fiber.poll(fiber), Option.isNone)

describe("Barrier", () => {
  it.scoped("trips exactly when the N-th party arrives, releasing every party with its arrival index", () =>
    Effect.gen(function*() {
      const barrier = yield* Barrier.make({ name: "b", parties: 3 })
      const first = yield* forkParty(barrier)
      const second = yield* forkParty(barrier)
      expect(yield* pending(first)).toBe(true)
      expect(yield* pending(second)).toBe(true)
      expect(yield* barrier.status).toMatchObject({ generation: 0, waiting: 2, parties: 3, broken: false, trips: 0 })
      yield* TestClock.adjust("1 hour") // no timeout: waiting is free and unbounded
      expect(yield* pending(first)).toBe(true)

      const last = yield* barrier.await
      expect(last).toEqual({ generation: 0, index: 2 })
      expect(yield* Fiber.join(first)).toEqual({ generation: 0, index: 0 })
      expect(yield* Fiber.join(second)).toEqual({ generation: 0, index: 1 })
      expect(yield* barrier.status).toMatchObject({ waiting: 0, trips: 1, closed: true, closedReason: Option.some("tripped") })
    }))

  it.scoped("single-use: later arrivals fail with BarrierClosedError (tripped); reset cannot reopen it", () =>
    Effect.gen(function*() {
      const barrier = yield* Barrier.make({ name: "once", parties: 2 })
      yield* forkParty(barrier)
      yield* barrier.await
      const late = failureOf(yield* Effect.exit(barrier.await))
      expect(late).toBeInstanceOf(Barrier.BarrierClosedError)
      expect(late).toMatchObject({ barrier: "once", reason: "tripped", category: "permanent" })
      expect(failureOf(yield* Effect.exit(barrier.reset))).toMatchObject({ _tag: "BarrierClosedError", reason: "tripped" })
      expect((yield* barrier.status).trips).toBe(1)
    }))

  it.scoped("one party is enough for parties = 1", () =>
    Effect.gen(function*() {
      const barrier = yield* Barrier.make({ name: "solo", parties: 1, cyclic: true })
      expect(yield* barrier.await).toEqual({ generation: 0, index: 0 })
      expect(yield* barrier.await).toEqual({ generation: 1, index: 0 })
    }))

  it.scoped("cyclic: each trip starts a new generation, numbered in order", () =>
    Effect.gen(function*() {
      const barrier = yield* Barrier.make({ name: "c", parties: 2, cyclic: true })
      for (let g = 0; g < 3; g++) {
        const waiter = yield* forkParty(barrier)
        expect(yield* barrier.status).toMatchObject({ generation: g, waiting: 1 })
        expect(yield* barrier.await).toEqual({ generation: g, index: 1 })
        expect(yield* Fiber.join(waiter)).toEqual({ generation: g, index: 0 })
      }
      expect(yield* barrier.status).toMatchObject({ generation: 3, waiting: 0, trips: 3, closed: false, broken: false })
    }))

  it.scoped("a timeout breaks the generation for everyone, at the moment it fires", () =>
    Effect.gen(function*() {
      const barrier = yield* Barrier.make({ name: "t", parties: 3, cyclic: true, timeout: "5 seconds" })
      const a = yield* Effect.fork(barrier.await) // times out at 5 s
      yield* TestClock.adjust("2 seconds")
      const b = yield* Effect.fork(barrier.awaitWithin("1 minute")) // would wait until 62 s
      yield* settle
      yield* TestClock.adjust("2999 millis")
      expect(yield* pending(a)).toBe(true)
      expect(yield* pending(b)).toBe(true)
      yield* TestClock.adjust("1 millis") // 5 s
      const aFailure = failureOf(yield* Fiber.await(a))
      expect(aFailure).toBeInstanceOf(Barrier.BarrierTimeoutError)
      expect(aFailure).toMatchObject({ barrier: "t", generation: 0, arrived: 2, parties: 3, category: "transient" })
      expect(Duration.toMillis((aFailure as Barrier.BarrierTimeoutError).timeout)).toBe(5_000)
      const bFailure = failureOf(yield* Fiber.await(b)) // released at 5 s, not at 62 s
      expect(bFailure).toBeInstanceOf(Barrier.BarrierBrokenError)
      expect(bFailure).toMatchObject({ generation: 0, reason: "timeout" })

      // Broken until reset: a newcomer fails at once instead of waiting for a generation that cannot trip.
      expect(failureOf(yield* Effect.exit(barrier.await))).toMatchObject({ _tag: "BarrierBrokenError", reason: "timeout" })
      expect(yield* barrier.status).toMatchObject({ broken: true, brokenReason: Option.some("timeout"), waiting: 0 })
      yield* barrier.reset
      expect(yield* barrier.status).toMatchObject({ generation: 1, broken: false, brokenReason: Option.none() })
      const parties = yield* forkParties(barrier, 2)
      expect(yield* barrier.await).toEqual({ generation: 1, index: 2 })
      for (const p of parties) expect((yield* Fiber.join(p)).generation).toBe(1)
    }))

  it.scoped("an interrupted party breaks the generation for the others", () =>
    Effect.gen(function*() {
      const barrier = yield* Barrier.make({ name: "i", parties: 3 })
      const a = yield* forkParty(barrier)
      const b = yield* forkParty(barrier)
      yield* Fiber.interrupt(b)
      const failure = failureOf(yield* Fiber.await(a))
      expect(failure).toMatchObject({ _tag: "BarrierBrokenError", reason: "interrupted", generation: 0 })
      expect(yield* barrier.status).toMatchObject({ broken: true, waiting: 0 })
    }))

  it.scoped("reset breaks the waiting generation (reason reset) and starts a fresh one", () =>
    Effect.gen(function*() {
      const barrier = yield* Barrier.make({ name: "r", parties: 2 })
      const a = yield* forkParty(barrier)
      yield* barrier.reset
      expect(failureOf(yield* Fiber.await(a))).toMatchObject({ _tag: "BarrierBrokenError", reason: "reset", generation: 0 })
      const b = yield* forkParty(barrier)
      expect(yield* barrier.await).toEqual({ generation: 1, index: 1 })
      expect(yield* Fiber.join(b)).toEqual({ generation: 1, index: 0 })
    }))

  it.scoped("a timeout racing the trip: the party passed if the generation tripped, never half and half", () =>
    Effect.gen(function*() {
      // Both timers fire at 5 s: the arrival of the second party and the first party's timeout.
      for (const order of ["arrival first", "timeout first"] as const) {
        const barrier = yield* Barrier.make({ name: `race-${order}`, parties: 2, timeout: "5 seconds" })
        const late = Effect.zipRight(Effect.sleep("5 seconds"), barrier.awaitWithin("1 hour"))
        let a: Fiber.RuntimeFiber<Barrier.Arrival, Barrier.AwaitError | ValidationError>
        let b: Fiber.RuntimeFiber<Barrier.Arrival, Barrier.AwaitError | ValidationError>
        if (order === "arrival first") {
          b = yield* Effect.fork(late)
          a = yield* Effect.fork(barrier.await)
        } else {
          a = yield* Effect.fork(barrier.await)
          b = yield* Effect.fork(late)
        }
        yield* settle
        yield* TestClock.adjust("5 seconds")
        const [ea, eb] = [yield* Fiber.await(a), yield* Fiber.await(b)]
        const status = yield* barrier.status
        if (Exit.isSuccess(ea)) {
          expect(eb).toEqual(Exit.succeed({ generation: 0, index: 1 }))
          expect(status.trips).toBe(1)
        } else {
          expect(failureOf(ea)).toMatchObject({ _tag: "BarrierTimeoutError" })
          expect(failureOf(eb)).toMatchObject({ _tag: "BarrierBrokenError", reason: "timeout" })
          expect(status.trips).toBe(0)
        }
      }
    }))

  it.effect("closing the barrier's scope fails its waiting parties with BarrierClosedError", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const barrier = yield* Scope.extend(Barrier.make({ name: "s", parties: 2 }), scope)
      const a = yield* forkParty(barrier)
      yield* Scope.close(scope, Exit.void)
      expect(failureOf(yield* Fiber.await(a))).toMatchObject({ _tag: "BarrierClosedError", reason: "closed" })
      expect(failureOf(yield* Effect.exit(barrier.await))).toMatchObject({ _tag: "BarrierClosedError", reason: "closed" })
    }))

  it.scoped("rejects bad options with a ValidationError naming the field", () =>
    Effect.gen(function*() {
      const fieldOf = (options: Barrier.Options) =>
        Effect.map(Effect.flip(Barrier.make(options)), (e) => {
          expect(e).toBeInstanceOf(ValidationError)
          return e.field
        })
      expect(yield* fieldOf({ name: "", parties: 2 })).toBe("barrier.name")
      expect(yield* fieldOf({ name: "x", parties: 0 })).toBe("barrier.parties")
      expect(yield* fieldOf({ name: "x", parties: 1.5 })).toBe("barrier.parties")
      expect(yield* fieldOf({ name: "x", parties: 2, timeout: -1 })).toBe("barrier.timeout")
      expect(yield* fieldOf({ name: "x", parties: 2, timeout: 0 })).toBe("barrier.timeout")
      expect(yield* fieldOf({ name: "x", parties: 2, cyclic: "yes" as unknown as boolean })).toBe("barrier.cyclic")
      const barrier = yield* Barrier.make({ name: "x", parties: 2 })
      expect(yield* Effect.flip(barrier.awaitWithin(Number.NaN))).toMatchObject({ _tag: "ValidationError", field: "timeout" })
      expect(yield* barrier.status).toMatchObject({ waiting: 0, broken: false }) // the bad call did not arrive
    }))

  it.effect.prop(
    "random arrivals on a cyclic barrier: every generation trips with exactly N parties, all released at its last arrival",
    [fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 16, maxLength: 16 })],
    ([parties, rounds, delays]) =>
      Effect.scoped(Effect.gen(function*() {
        const barrier = yield* Barrier.make({ name: "p", parties, cyclic: true })
        const total = parties * rounds
        const fibers = yield* Effect.forEach(
          Array.from({ length: total }, (_, i) => (delays[i % delays.length] ?? 0) * 10 + i), // distinct arrival times
          (at) =>
            Effect.fork(Effect.gen(function*() {
              yield* Effect.sleep(Duration.millis(at))
              const arrival = yield* barrier.await
              return { at, arrival, releasedAt: yield* Clock.currentTimeMillis }
            }))
        )
        yield* TestClock.adjust("1 second")
        const results = yield* Effect.forEach(fibers, Fiber.join)
        const byGeneration = new Map<number, Array<(typeof results)[number]>>()
        for (const r of results) byGeneration.set(r.arrival.generation, [...(byGeneration.get(r.arrival.generation) ?? []), r])
        expect([...byGeneration.keys()].sort()).toEqual(Array.from({ length: rounds }, (_, g) => g))
        for (const [, members] of byGeneration) {
          expect(members.map((m) => m.arrival.index).sort()).toEqual(Array.from({ length: parties }, (_, i) => i))
          const lastArrival = Math.max(...members.map((m) => m.at))
          for (const m of members) expect(m.releasedAt).toBe(lastArrival)
        }
        expect(yield* barrier.status).toMatchObject({ trips: rounds, generation: rounds, waiting: 0 })
      })),
    { fastCheck: { numRuns: 15 } }
  )

  it.effect("the example runs", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Example.program)
      yield* TestClock.adjust("1 hour")
      expect(yield* Fiber.join(fiber)).toEqual({
        epochs: ["a:0", "b:0", "c:0", "a:1", "b:1", "c:1"],
        tookMillis: 600,
        trips: 2,
        timedOut: "BarrierTimeoutError",
        others: "BarrierBrokenError",
        swept: "NotFoundError"
      })
    }))
})

describe("Barriers (named)", () => {
  it.scoped("create, get, getOrCreate, remove; names are unique", () =>
    Effect.gen(function*() {
      const barriers = yield* Barrier.makeRegistry()
      const created = yield* barriers.create({ name: "sync", parties: 2 })
      expect(failureOf(yield* Effect.exit(barriers.create({ name: "sync", parties: 2 })))).toBeInstanceOf(AlreadyExistsError)
      const fetched = yield* barriers.get("sync")
      const waiter = yield* forkParty(created)
      expect((yield* barriers.getOrCreate({ name: "sync", parties: 2 })).name).toBe("sync")
      expect(yield* fetched.await).toEqual({ generation: 0, index: 1 }) // the same barrier
      expect(yield* Fiber.join(waiter)).toEqual({ generation: 0, index: 0 })
      expect(yield* Effect.flip(barriers.getOrCreate({ name: "sync", parties: 3 }))).toMatchObject({
        _tag: "ValidationError",
        field: "barrier.parties"
      })
      expect(yield* Effect.flip(barriers.getOrCreate({ name: "sync", parties: 2, cyclic: true }))).toMatchObject({
        field: "barrier.cyclic"
      })
      expect((yield* barriers.list).map((s) => s.name)).toEqual(["sync"])

      const other = yield* barriers.getOrCreate({ name: "other", parties: 2 })
      const w = yield* forkParty(other)
      expect(yield* barriers.remove("other")).toBe(true)
      expect(yield* barriers.remove("other")).toBe(false)
      expect(failureOf(yield* Fiber.await(w))).toMatchObject({ _tag: "BarrierClosedError", reason: "removed" })
      expect(yield* Effect.flip(barriers.get("other"))).toBeInstanceOf(NotFoundError)
    }))

  it.scoped("abandoned barriers are swept after idleTimeout; a barrier with waiting parties is kept", () =>
    Effect.gen(function*() {
      const barriers = yield* Barrier.makeRegistry({ idleTimeout: "1 minute", sweepInterval: "10 seconds" })
      const abandoned = yield* barriers.create({ name: "abandoned", parties: 2 })
      const busy = yield* barriers.create({ name: "busy", parties: 2 })
      const touched = yield* barriers.create({ name: "touched", parties: 2, cyclic: true })
      const waiter = yield* forkParty(busy) // waits forever (no timeout)
      yield* TestClock.adjust("30 seconds")
      yield* forkParty(touched)
      yield* touched.await // activity at 30 s
      yield* TestClock.adjust("30 seconds") // 60 s: the sweep at 60 s removes "abandoned"
      const names = Effect.map(barriers.list, (l) => l.map((s) => s.name).sort())
      expect(yield* names).toEqual(["busy", "touched"])
      expect(failureOf(yield* Effect.exit(abandoned.await))).toMatchObject({ _tag: "BarrierClosedError", reason: "removed" })
      yield* TestClock.adjust("30 seconds") // 90 s: "touched" idle since 30 s, swept at 90 s
      expect(yield* names).toEqual(["busy"])
      yield* TestClock.adjust("10 minutes")
      expect(yield* names).toEqual(["busy"]) // its party still waits
      expect(yield* pending(waiter)).toBe(true)

      yield* Fiber.interrupt(waiter) // the party leaves: the barrier is idle from now on
      yield* TestClock.adjust("50 seconds")
      expect(yield* names).toEqual(["busy"])
      yield* TestClock.adjust("20 seconds")
      expect(yield* names).toEqual([])
    }))

  it.scoped("sweep removes idle barriers on demand; closing the registry closes its barriers", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const barriers = yield* Scope.extend(Barrier.makeRegistry({ idleTimeout: "1 minute", sweepInterval: "1 hour" }), scope)
      yield* barriers.create({ name: "a", parties: 2 })
      yield* TestClock.adjust("59 seconds")
      expect(yield* barriers.sweep).toBe(0)
      yield* TestClock.adjust("1 second")
      expect(yield* barriers.sweep).toBe(1)
      const b = yield* barriers.create({ name: "b", parties: 2 })
      const w = yield* forkParty(b)
      yield* Scope.close(scope, Exit.void)
      expect(failureOf(yield* Fiber.await(w))).toMatchObject({ _tag: "BarrierClosedError", reason: "closed" })
      expect(yield* Effect.flip(barriers.create({ name: "c", parties: 2 }))).toMatchObject({ _tag: "ServiceUnavailableError" })
    }))

  it.scoped("rejects bad registry options with a ValidationError naming the field", () =>
    Effect.gen(function*() {
      expect(yield* Effect.flip(Barrier.makeRegistry({ idleTimeout: 0 }))).toMatchObject({ field: "barriers.idleTimeout" })
      expect(yield* Effect.flip(Barrier.makeRegistry({ sweepInterval: -5 }))).toMatchObject({ field: "barriers.sweepInterval" })
      expect(yield* Effect.flip(Barrier.makeRegistry({ name: "" }))).toMatchObject({ field: "barriers.name" })
    }))

  it.scoped("emits tripped, broken and removed events", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.EventBus
      const sub = yield* bus.subscribe("foundation.mabeam.barrier.**", { capacity: 100 })
      const barriers = yield* Barrier.makeRegistry({ name: "reg", idleTimeout: "1 minute", sweepInterval: "1 minute" })
      const b = yield* barriers.create({ name: "e", parties: 2, cyclic: true, timeout: "1 second" })
      yield* forkParty(b)
      yield* b.await
      yield* Effect.fork(b.await) // alone: times out at 1 s
      yield* TestClock.adjust("2 minutes") // idle from 1 s: kept by the sweep at 60 s, removed by the one at 120 s
      yield* settle
      const seen = yield* drainTelemetry(sub)
      const e = Barrier.events
      expect(seen).toEqual([
        [e.tripped, { parties: 2, generation: 0 }, { barrier: "e" }],
        [e.broken, { waiting: 1, generation: 1 }, { barrier: "e", reason: "timeout" }],
        [e.removed, { idle_ms: 119_000 }, { barriers: "reg", barrier: "e", reason: "idle" }]
      ])
    }).pipe(Effect.provide(Telemetry.layerWithBus())))
})

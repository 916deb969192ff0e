import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Metric, Option, Ref, TestClock } from "effect"
import { BulkheadFullError } from "../../src/errors/FoundationError.js"
import * as Bulkhead from "../../src/resilience/Bulkhead.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

describe("Bulkhead", () => {
  it.effect("runs up to maxConcurrent calls and rejects the next at once when there is no queue", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 2, name: "db" })
      const gate = yield* Deferred.make<void>()
      const runs = yield* Ref.make(0)
      const call = Ref.update(runs, (n) => n + 1).pipe(Effect.zipRight(Deferred.await(gate)))
      const a = yield* Effect.fork(bulkhead.run(call))
      const b = yield* Effect.fork(bulkhead.run(call))
      yield* Effect.yieldNow()
      const rejected = failureOf(yield* Effect.exit(bulkhead.run(call)))
      expect(rejected).toBeInstanceOf(BulkheadFullError)
      expect(rejected).toMatchObject({ bulkhead: "db", maxConcurrent: 2, maxQueued: 0, category: "resource" })
      expect(yield* Ref.get(runs)).toBe(2)
      expect(yield* bulkhead.stats).toMatchObject({ active: 2, queued: 0, rejected: 1 })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(a)
      yield* Fiber.join(b)
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0 })
      expect(yield* bulkhead.run(Effect.succeed("free again"))).toBe("free again")
    }))

  it.effect("queues up to maxQueued callers and serves them first come, first served", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 2 })
      const order = yield* Ref.make<Array<string>>([])
      const gate = yield* Deferred.make<void>()
      const first = yield* Effect.fork(bulkhead.run(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const queued = yield* Effect.forEach(["q1", "q2"], (name) =>
        Effect.fork(bulkhead.run(Ref.update(order, (o) => [...o, name]))).pipe(Effect.zipLeft(Effect.yieldNow())))
      expect(yield* bulkhead.stats).toMatchObject({ active: 1, queued: 2 })
      expect(failureOf(yield* Effect.exit(bulkhead.run(Effect.void)))).toBeInstanceOf(BulkheadFullError)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(first)
      yield* Effect.forEach(queued, Fiber.join)
      expect(yield* Ref.get(order)).toEqual(["q1", "q2"])
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0, rejected: 1 })
    }))

  it.effect("gives the slot back on failure, defect and interruption, running or queued", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 1 })
      yield* Effect.exit(bulkhead.run(Effect.fail("e")))
      yield* Effect.exit(bulkhead.run(Effect.die("d")))
      expect((yield* bulkhead.stats).active).toBe(0)
      const running = yield* Effect.fork(bulkhead.run(Effect.never))
      yield* Effect.yieldNow()
      const waiting = yield* Effect.fork(bulkhead.run(Effect.never))
      yield* Effect.yieldNow()
      expect(yield* bulkhead.stats).toMatchObject({ active: 1, queued: 1 })
      yield* Fiber.interrupt(waiting)
      expect(yield* bulkhead.stats).toMatchObject({ active: 1, queued: 0 })
      yield* Fiber.interrupt(running)
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0 })
    }))

  it.effect("a slot handed to a caller interrupted at that moment is passed on", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 2 })
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(bulkhead.run(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const doomed = yield* Effect.fork(bulkhead.run(Effect.succeed("doomed")))
      yield* Effect.yieldNow()
      const next = yield* Effect.fork(bulkhead.run(Effect.succeed("next")))
      yield* Effect.yieldNow()
      // free the slot (handed to `doomed`) and interrupt `doomed` in the same step
      yield* Effect.all([Deferred.succeed(gate, undefined), Fiber.interrupt(doomed)], { concurrency: "unbounded" })
      yield* Fiber.join(holder)
      expect(yield* Fiber.join(next)).toBe("next")
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0 })
    }))

  it.effect("never exceeds its limit under load, and every call completes", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 3, maxQueued: 1000 })
      const current = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const call = Effect.gen(function*() {
        const now = yield* Ref.updateAndGet(current, (n) => n + 1)
        yield* Ref.update(peak, (p) => Math.max(p, now))
        yield* Effect.sleep("10 millis")
        yield* Ref.update(current, (n) => n - 1)
      })
      const fibers = yield* Effect.forEach(Array.from({ length: 300 }), () => Effect.fork(bulkhead.run(call)))
      yield* TestClock.adjust("2 seconds")
      yield* Effect.forEach(fibers, Fiber.join)
      expect(yield* Ref.get(peak)).toBe(3)
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0, rejected: 0 })
    }))

  it.effect("counts rejections in its metrics", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, name: "metered" })
      const fiber = yield* Effect.fork(bulkhead.run(Effect.never))
      yield* Effect.yieldNow()
      yield* Effect.exit(bulkhead.run(Effect.void))
      yield* Effect.exit(bulkhead.run(Effect.void))
      const pairs = yield* Metric.snapshot
      const rejected = pairs.find((p) =>
        p.metricKey.name === "foundation_bulkhead_rejected_total" &&
        p.metricKey.tags.some((t) => t.key === "bulkhead" && t.value === "metered")
      )
      expect((rejected?.metricState as unknown as { count: number }).count).toBe(2)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("rejects bad options, naming the field", () =>
    Effect.gen(function*() {
      expect((yield* Effect.flip(Bulkhead.make({ maxConcurrent: 0 }))).field).toBe("bulkhead.maxConcurrent")
      expect((yield* Effect.flip(Bulkhead.make({ maxConcurrent: 1.5 }))).field).toBe("bulkhead.maxConcurrent")
      expect((yield* Effect.flip(Bulkhead.make({ maxConcurrent: 1, maxQueued: -1 }))).field).toBe("bulkhead.maxQueued")
      expect((yield* Effect.flip(Bulkhead.make({ maxConcurrent: 1, maxQueued: Number.NaN }))).field).toBe(
        "bulkhead.maxQueued"
      )
    }))
})

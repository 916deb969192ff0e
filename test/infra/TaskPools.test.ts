import * as os from "node:os"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Duration, Effect, Exit, Fiber, Layer, Option, Ref, Scope, TestClock } from "effect"
import {
  AlreadyExistsError,
  BulkheadFullError,
  NotFoundError,
  TimeoutError,
  ValidationError
} from "../../src/errors/FoundationError.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as Telemetry from "../../src/observability/Telemetry.js"
import * as TaskPools from "../../src/infra/TaskPools.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** Lets forked fibers run up to their next suspension. */
const settle = Effect.forEach(Array.from({ length: 10 }), () => Effect.yieldNow(), { discard: true })

/** A task that counts itself as running, tracks the peak, sleeps, and records its finalizer. */
const tracker = Effect.gen(function*() {
  const live = yield* Ref.make(0)
  const peak = yield* Ref.make(0)
  const finalized = yield* Ref.make(0)
  const task = <A>(sleep: Duration.DurationInput, value: A) =>
    Effect.acquireUseRelease(
      Ref.updateAndGet(live, (n) => n + 1).pipe(Effect.tap((n) => Ref.update(peak, (p) => Math.max(p, n)))),
      () => Effect.as(Effect.sleep(sleep), value),
      () => Effect.zipRight(Ref.update(live, (n) => n - 1), Ref.update(finalized, (n) => n + 1))
    )
  return { live, peak, finalized, task }
})

const withPools = <A, E>(self: Effect.Effect<A, E, TaskPools.TaskPools>, options: TaskPools.Options = { cores: 3 }) =>
  Effect.provide(self, TaskPools.layer(options))

describe("TaskPools", () => {
  it.effect("has the original's default pools (distributed_computation: one slot per core)", () =>
    withPools(Effect.gen(function*() {
      const pools = yield* TaskPools.TaskPools
      const stats = yield* pools.allStats
      const shape = Object.fromEntries(
        Object.values(stats).map((s) => [s.name, [s.maxConcurrency, Duration.toMillis(s.timeout)]])
      )
      expect(shape).toEqual({
        general: [10, 30_000],
        distributed_computation: [3, 60_000],
        agent_operations: [20, 30_000],
        coordination: [15, 15_000],
        monitoring: [5, 10_000]
      })
      expect(Object.values(stats).every((s) => s.status === "running" && s.running === 0)).toBe(true)
    })))

  it.effect("without `cores`, distributed_computation gets os.availableParallelism() slots", () =>
    withPools(
      Effect.gen(function*() {
        const pools = yield* TaskPools.TaskPools
        expect((yield* pools.stats("distributed_computation")).maxConcurrency).toBe(os.availableParallelism())
      }),
      {}
    ))

  it.effect("never runs more than maxConcurrency tasks at once; the rest wait in order", () =>
    withPools(Effect.gen(function*() {
      const pools = yield* TaskPools.TaskPools
      const t = yield* tracker
      const order = yield* Ref.make<Array<number>>([])
      const fibers = yield* Effect.forEach(Array.from({ length: 12 }, (_, i) => i), (i) =>
        Effect.fork(pools.execute("monitoring", Effect.zipRight(Ref.update(order, (o) => [...o, i]), t.task("1 second", i)))))
      yield* settle
      expect(yield* pools.stats("monitoring")).toMatchObject({ running: 5, queued: 7 })
      expect(yield* Ref.get(t.live)).toBe(5)
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(yield* pools.stats("monitoring")).toMatchObject({ running: 5, queued: 2, completed: 5 })
      yield* TestClock.adjust("2 seconds")
      expect(yield* Effect.forEach(fibers, Fiber.join)).toEqual(Array.from({ length: 12 }, (_, i) => i))
      expect(yield* Ref.get(t.peak)).toBe(5)
      expect(yield* Ref.get(order)).toEqual(Array.from({ length: 12 }, (_, i) => i))
      expect(yield* pools.stats("monitoring")).toMatchObject({ running: 0, queued: 0, completed: 12 })
    })))

  it.effect("a task over the pool's timeout fails with TimeoutError at exactly that time, its finalizers run", () =>
    withPools(Effect.gen(function*() {
      const pools = yield* TaskPools.TaskPools
      const t = yield* tracker
      const fiber = yield* Effect.fork(pools.execute("monitoring", t.task("1 hour", "late")))
      yield* settle
      yield* TestClock.adjust(Duration.toMillis("10 seconds") - 1)
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust(1)
      const error = failureOf(yield* Fiber.await(fiber))
      expect(error).toBeInstanceOf(TimeoutError)
      expect(Duration.toMillis((error as TimeoutError).timeout)).toBe(10_000)
      expect(yield* Ref.get(t.finalized)).toBe(1)
      expect(yield* pools.stats("monitoring")).toMatchObject({ timedOut: 1, running: 0, completed: 0, failed: 0 })
    })))

  it.scoped("the time limit counts from the slot, not from the queue", () =>
    Effect.gen(function*() {
      const pool = yield* TaskPools.makePool({ name: "one", maxConcurrency: 1, timeout: "10 seconds" })
      const first = yield* Effect.fork(pool.execute(Effect.as(Effect.sleep("6 seconds"), "first")))
      const second = yield* Effect.fork(pool.execute(Effect.as(Effect.sleep("8 seconds"), "second")))
      yield* settle
      yield* TestClock.adjust("6 seconds")
      expect(yield* Fiber.join(first)).toBe("first")
      yield* TestClock.adjust("8 seconds") // t = 14 s: 14 s after submission, 8 s after its start
      expect(yield* Fiber.join(second)).toBe("second")
    }))

  it.effect("executeBatch returns one Exit per item; failures, defects and timeouts stay in their item", () =>
    withPools(Effect.gen(function*() {
      const pools = yield* TaskPools.TaskPools
      const fiber = yield* Effect.fork(pools.executeBatch("general", [1, 2, 3, 4, 5], (n) => {
        switch (n) {
          case 2:
            return Effect.fail("two" as const)
          case 3:
            return Effect.die("three")
          case 4:
            return Effect.as(Effect.never, 0)
          default:
            return Effect.succeed(n * 2)
        }
      }, { timeoutPerItem: "1 second" }))
      yield* settle
      yield* TestClock.adjust("1 second")
      const exits = yield* Fiber.join(fiber)
      expect(exits).toHaveLength(5)
      expect(exits[0]).toEqual(Exit.succeed(2))
      expect(failureOf(exits[1]!)).toBe("two")
      expect(Exit.isFailure(exits[2]!) && Cause.isDie(exits[2].cause)).toBe(true)
      expect(failureOf(exits[3]!)).toBeInstanceOf(TimeoutError)
      expect(Duration.toMillis((failureOf(exits[3]!) as TimeoutError).timeout)).toBe(1000)
      expect(exits[4]).toEqual(Exit.succeed(10))
      expect(yield* pools.stats("general")).toMatchObject({ completed: 2, failed: 2, timedOut: 1, running: 0 })
    })))

  it.effect("ordered keeps input order; unordered gives completion order with each item's index", () =>
    withPools(Effect.gen(function*() {
      const pools = yield* TaskPools.TaskPools
      const sleepy = (seconds: number) => Effect.as(Effect.sleep(Duration.seconds(seconds)), seconds)
      const ordered = yield* Effect.fork(pools.executeBatch("general", [3, 1, 2], sleepy))
      const unordered = yield* Effect.fork(pools.executeBatch("coordination", [3, 1, 2], sleepy, { ordered: false }))
      yield* settle
      yield* TestClock.adjust("3 seconds")
      expect(yield* Fiber.join(ordered)).toEqual([Exit.succeed(3), Exit.succeed(1), Exit.succeed(2)])
      expect(yield* Fiber.join(unordered)).toEqual([
        { index: 1, exit: Exit.succeed(1) },
        { index: 2, exit: Exit.succeed(2) },
        { index: 0, exit: Exit.succeed(3) }
      ])
    })))

  it.effect("executeBatch's concurrency caps the batch below the pool's size", () =>
    withPools(Effect.gen(function*() {
      const pools = yield* TaskPools.TaskPools
      const t = yield* tracker
      const fiber = yield* Effect.fork(
        pools.executeBatch("general", Array.from({ length: 9 }, (_, i) => i), (i) => t.task("1 second", i), { concurrency: 3 })
      )
      yield* settle
      expect((yield* pools.stats("general")).running).toBe(3)
      yield* TestClock.adjust("3 seconds")
      expect((yield* Fiber.join(fiber)).every(Exit.isSuccess)).toBe(true)
      expect(yield* Ref.get(t.peak)).toBe(3)
    })))

  it.effect("shutdown interrupts running and queued tasks (finalizers run), callers get PoolShutdownError, new work is rejected", () =>
    withPools(Effect.gen(function*() {
      const pools = yield* TaskPools.TaskPools
      yield* pools.createPool("small", { maxConcurrency: 2, timeout: "1 minute" })
      const t = yield* tracker
      const callers = yield* Effect.forEach([1, 2, 3], (i) => Effect.fork(pools.execute("small", t.task("1 hour", i))))
      yield* settle
      expect(yield* pools.stats("small")).toMatchObject({ running: 2, queued: 1 })
      yield* pools.shutdown("small")
      expect(yield* Ref.get(t.finalized)).toBe(2)
      expect(yield* Ref.get(t.live)).toBe(0)
      for (const caller of callers) {
        const error = failureOf(yield* Fiber.await(caller))
        expect(error).toBeInstanceOf(TaskPools.PoolShutdownError)
        expect(error).toMatchObject({ pool: "small", category: "permanent" })
      }
      expect(failureOf(yield* Effect.exit(pools.execute("small", Effect.succeed(1))))).toBeInstanceOf(TaskPools.PoolShutdownError)
      expect(failureOf(yield* Effect.exit(pools.executeBatch("small", [1], Effect.succeed)))).toBeInstanceOf(
        TaskPools.PoolShutdownError
      )
      expect(yield* pools.stats("small")).toMatchObject({ status: "shutdown", running: 0, queued: 0, interrupted: 3 })
      yield* pools.shutdown("small") // idempotent
      // a shut-down name can be made again
      yield* pools.createPool("small", { maxConcurrency: 1, timeout: "1 second" })
      expect(yield* pools.execute("small", Effect.succeed("again"))).toBe("again")
    })))

  it.effect("items of a batch interrupted by a shutdown get PoolShutdownError in their Exit", () =>
    withPools(Effect.gen(function*() {
      const pools = yield* TaskPools.TaskPools
      const pool = yield* pools.createPool("batchy", { maxConcurrency: 1, timeout: "1 minute" })
      const fiber = yield* Effect.fork(pool.executeBatch([1, 2], (n) => n === 1 ? Effect.succeed(n) : Effect.never))
      yield* settle
      yield* pool.shutdown
      const exits = yield* Fiber.join(fiber)
      expect(exits[0]).toEqual(Exit.succeed(1))
      expect(failureOf(exits[1]!)).toBeInstanceOf(TaskPools.PoolShutdownError)
    })))

  it.effect("closing the layer's scope interrupts every task of every pool", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(TaskPools.layer({ cores: 2 }), scope)
      const pools = Context.get(context, TaskPools.TaskPools)
      const t = yield* tracker
      const callers = yield* Effect.forEach(["general", "monitoring", "coordination"], (name) =>
        Effect.fork(pools.execute(name, t.task("1 hour", name))))
      yield* settle
      expect(yield* Ref.get(t.live)).toBe(3)
      yield* Scope.close(scope, Exit.void)
      expect(yield* Ref.get(t.finalized)).toBe(3)
      expect(yield* Ref.get(t.live)).toBe(0)
      for (const caller of callers) {
        expect(failureOf(yield* Fiber.await(caller))).toBeInstanceOf(TaskPools.PoolShutdownError)
      }
      expect((yield* pools.stats("general")).status).toBe("shutdown")
    }))

  it.scoped("closing the scope of a standalone pool interrupts its tasks", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const pool = yield* TaskPools.makePool({ name: "p", maxConcurrency: 2, timeout: "1 minute" }).pipe(Scope.extend(scope))
      const t = yield* tracker
      const caller = yield* Effect.fork(pool.execute(t.task("1 hour", 1)))
      yield* settle
      yield* Scope.close(scope, Exit.void)
      expect(yield* Ref.get(t.finalized)).toBe(1)
      expect(failureOf(yield* Fiber.await(caller))).toBeInstanceOf(TaskPools.PoolShutdownError)
    }))

  it.effect("interrupting a caller interrupts its task (running or queued)", () =>
    withPools(Effect.gen(function*() {
      const pools = yield* TaskPools.TaskPools
      yield* pools.createPool("solo", { maxConcurrency: 1, timeout: "1 minute" })
      const t = yield* tracker
      const running = yield* Effect.fork(pools.execute("solo", t.task("1 hour", 1)))
      const queued = yield* Effect.fork(pools.execute("solo", t.task("1 hour", 2)))
      yield* settle
      expect(yield* pools.stats("solo")).toMatchObject({ running: 1, queued: 1 })
      yield* Fiber.interrupt(queued)
      expect(yield* pools.stats("solo")).toMatchObject({ running: 1, queued: 0 })
      yield* Fiber.interrupt(running)
      expect(yield* Ref.get(t.finalized)).toBe(1) // the running task stopped before the caller resumed
      expect(yield* Ref.get(t.live)).toBe(0)
      expect(yield* pools.stats("solo")).toMatchObject({ running: 0, queued: 0, interrupted: 2 })
      // the slot is free again
      expect(yield* pools.execute("solo", Effect.succeed("free"))).toBe("free")
    })))

  it.effect("interrupting a batch interrupts its items", () =>
    withPools(Effect.gen(function*() {
      const pools = yield* TaskPools.TaskPools
      const t = yield* tracker
      const batch = yield* Effect.fork(pools.executeBatch("general", [1, 2, 3], (i) => t.task("1 hour", i)))
      yield* settle
      expect(yield* Ref.get(t.live)).toBe(3)
      yield* Fiber.interrupt(batch)
      expect(yield* Ref.get(t.finalized)).toBe(3)
      expect((yield* pools.stats("general")).running).toBe(0)
    })))

  it.effect("stats count each outcome and the mean run time exactly", () =>
    withPools(Effect.gen(function*() {
      const pools = yield* TaskPools.TaskPools
      const pool = yield* pools.createPool("counted", { maxConcurrency: 4, timeout: "10 seconds" })
      const ok = yield* Effect.fork(Effect.exit(pool.execute(Effect.as(Effect.sleep("2 seconds"), 1))))
      const bad = yield* Effect.fork(Effect.exit(pool.execute(Effect.zipRight(Effect.sleep("4 seconds"), Effect.fail("no")))))
      const late = yield* Effect.fork(Effect.exit(pool.execute(Effect.never)))
      const cut = yield* Effect.fork(pool.execute(Effect.never))
      yield* settle
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.interrupt(cut)
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(ok)
      yield* Fiber.join(bad)
      yield* Fiber.join(late)
      expect(yield* pool.stats).toEqual({
        name: "counted",
        status: "running",
        maxConcurrency: 4,
        timeout: Duration.decode("10 seconds"),
        running: 0,
        queued: 0,
        completed: 1,
        failed: 1,
        timedOut: 1,
        interrupted: 1,
        rejected: 0,
        averageDurationMillis: (2_000 + 4_000 + 10_000) / 3
      })
    })))

  it.scoped("a bounded queue rejects the overflow with BulkheadFullError", () =>
    Effect.gen(function*() {
      const pool = yield* TaskPools.makePool({ name: "tight", maxConcurrency: 1, maxQueued: 1, timeout: "1 minute" })
      yield* Effect.fork(pool.execute(Effect.never))
      yield* Effect.fork(pool.execute(Effect.never))
      yield* settle
      expect(failureOf(yield* Effect.exit(pool.execute(Effect.void)))).toBeInstanceOf(BulkheadFullError)
      expect(yield* pool.stats).toMatchObject({ running: 1, queued: 1, rejected: 1 })
    }))

  it.effect("tasks keep the caller's context", () =>
    withPools(Effect.gen(function*() {
      class Greeting extends Context.Tag("Greeting")<Greeting, string>() {}
      const pools = yield* TaskPools.TaskPools
      const out = yield* pools.execute("general", Greeting).pipe(Effect.provideService(Greeting, "hello"))
      expect(out).toBe("hello")
    })))

  it.effect("validates options, names the field, and leaves the pools unchanged", () =>
    withPools(Effect.gen(function*() {
      const pools = yield* TaskPools.TaskPools
      const before = yield* pools.names
      const cases: ReadonlyArray<[string, TaskPools.PoolOptions, string]> = [
        ["a", { maxConcurrency: 0, timeout: "1 second" }, "taskPool.maxConcurrency"],
        ["a", { maxConcurrency: 1.5, timeout: "1 second" }, "taskPool.maxConcurrency"],
        ["a", { maxConcurrency: 1, timeout: 0 }, "taskPool.timeout"],
        ["a", { maxConcurrency: 1, timeout: -5 }, "taskPool.timeout"],
        ["a", { maxConcurrency: 1, timeout: Duration.infinity }, "taskPool.timeout"],
        ["a", { maxConcurrency: 1, timeout: "1 second", maxQueued: -1 }, "taskPool.maxQueued"],
        ["", { maxConcurrency: 1, timeout: "1 second" }, "taskPool.name"]
      ]
      for (const [name, options, field] of cases) {
        const error = yield* Effect.flip(pools.createPool(name, options))
        expect(error).toBeInstanceOf(ValidationError)
        expect((error as ValidationError).field).toBe(field)
      }
      expect(yield* pools.names).toEqual(before)
      expect(yield* Effect.flip(pools.createPool("general", { maxConcurrency: 1, timeout: "1 second" }))).toBeInstanceOf(
        AlreadyExistsError
      )
      expect((yield* pools.stats("general")).maxConcurrency).toBe(10) // the running pool was not replaced
      const missing = yield* Effect.flip(pools.execute("nope", Effect.void))
      expect(missing).toBeInstanceOf(NotFoundError)
      expect(missing).toMatchObject({ resource: "task pool", key: "nope" })
      expect(yield* Effect.flip(pools.stats("nope"))).toBeInstanceOf(NotFoundError)
      expect(yield* Effect.flip(pools.shutdown("nope"))).toBeInstanceOf(NotFoundError)
      const ran = yield* Ref.make(0)
      const badBatch = yield* Effect.flip(pools.executeBatch("general", [1], () => Ref.update(ran, (n) => n + 1), { concurrency: 0 }))
      expect(badBatch).toMatchObject({ field: "taskPool.executeBatch.concurrency" })
      const badTimeout = yield* Effect.flip(
        pools.executeBatch("general", [1], () => Ref.update(ran, (n) => n + 1), { timeoutPerItem: "never" as Duration.DurationInput })
      )
      expect(badTimeout).toMatchObject({ field: "taskPool.executeBatch.timeoutPerItem" })
      expect(yield* Ref.get(ran)).toBe(0)
    })))

  it.effect("the layer validates cores and extra pools", () =>
    Effect.gen(function*() {
      const cores = yield* Effect.flip(Effect.scoped(TaskPools.make({ cores: 0 })))
      expect(cores.field).toBe("taskPools.cores")
      const pool = yield* Effect.flip(
        Effect.scoped(TaskPools.make({ cores: 2, pools: { extra: { maxConcurrency: -1, timeout: "1 second" } } }))
      )
      expect(pool.field).toBe("taskPools.pools.extra.maxConcurrency")
    }))

  it.effect("emits pool created, task timeout and pool shutdown events", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.EventBus
      const seen = yield* Effect.scoped(Effect.gen(function*() {
        const sub = yield* bus.subscribe("foundation.task_pool_manager.*", { capacity: 100 })
        yield* Effect.scoped(Effect.gen(function*() {
          const pool = yield* TaskPools.makePool({ name: "ev", maxConcurrency: 1, timeout: "1 second" })
          const fiber = yield* Effect.fork(Effect.exit(pool.execute(Effect.never)))
          yield* settle
          yield* TestClock.adjust("1 second")
          yield* Fiber.join(fiber)
        }))
        const out: Array<[string, unknown]> = []
        for (;;) {
          const next = yield* sub.poll
          if (Option.isNone(next)) return out
          out.push([next.value.type, next.value.data])
        }
      }))
      expect(seen).toEqual([
        [TaskPools.events.poolCreated, { measurements: { max_concurrency: 1, timeout_ms: 1000 }, metadata: { pool: "ev" } }],
        [TaskPools.events.taskTimeout, { measurements: { timeout_ms: 1000 }, metadata: { pool: "ev" } }],
        [TaskPools.events.poolShutdown, { measurements: { running: 0, queued: 0 }, metadata: { pool: "ev" } }]
      ])
    }).pipe(Effect.provide(Telemetry.layerWithBus())))
})

import { describe, expect, it } from "@effect/vitest"
import { Cause, Clock, Deferred, Effect, Exit, Fiber, Layer, Option, Ref, Schema, TestClock } from "effect"
import * as Agent from "../../src/agents/Agent.js"
import * as Supervisor from "../../src/agents/Supervisor.js"
import * as TaskAgent from "../../src/agents/TaskAgent.js"
import { AlreadyExistsError, InternalError, NotFoundError, TimeoutError, ValidationError } from "../../src/errors/FoundationError.js"
import * as TaskPools from "../../src/infra/TaskPools.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as Telemetry from "../../src/observability/Telemetry.js"
import * as Example from "../../examples/task-agent.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

class Boom extends Schema.TaggedError<Boom>()("Boom", { n: Schema.Number }) {}

/** A pool of its own (4 slots, 10 s per task) besides the defaults. */
const pools = TaskPools.layer({ cores: 2, pools: { tasks: { maxConcurrency: 4, timeout: "10 seconds" } } })

const Input = Schema.Struct({ n: Schema.Number.pipe(Schema.int()) })

/**
 * Processors that record what ran (in `log`): `double` (instant), `sleep` (n ms on the Clock),
 * `gated` (waits for `gate`, records its interruption), `fail` (typed failure), `die` (defect),
 * `hang` (never ends).
 */
const setup = (options: Omit<TaskAgent.Options<never>, "processors"> = {}, supervised = false) =>
  Effect.gen(function*() {
    const log = yield* Ref.make<ReadonlyArray<string>>([])
    const gate = yield* Deferred.make<void>()
    const record = (entry: string) => Ref.update(log, (l) => [...l, entry])
    const definition = yield* TaskAgent.make({
      pool: "tasks",
      ...options,
      processors: {
        double: TaskAgent.processor({
          input: Input,
          run: ({ n }, task) => Effect.as(record(task.id), n * 2)
        }),
        sleep: TaskAgent.processor({
          input: Input,
          run: ({ n }, task) => Effect.zipRight(Effect.sleep(n), Effect.as(record(task.id), n))
        }),
        gated: TaskAgent.processor({
          input: Schema.Unknown,
          run: (_, task) =>
            Effect.zipRight(record(`${task.id} started`), Deferred.await(gate)).pipe(
              Effect.zipRight(record(task.id)),
              Effect.onInterrupt(() => record(`${task.id} interrupted`)),
              Effect.as("opened")
            )
        }),
        fail: TaskAgent.processor({
          input: Input,
          run: ({ n }, task) => Effect.zipRight(record(task.id), Effect.fail(new Boom({ n })))
        }),
        die: TaskAgent.processor({
          input: Schema.Unknown,
          run: (_, task) => Effect.zipRight(record(task.id), Effect.die("processor bug"))
        }),
        hang: TaskAgent.processor({
          input: Schema.Unknown,
          run: (_, task) => Effect.zipRight(record(task.id), Effect.never)
        })
      }
    })
    // Spawned, or as the only child of a supervisor.
    const { agent, supervisor } = supervised
      ? yield* Effect.flatMap(Agent.supervised(definition, { id: "worker" }), ({ child, ref }) =>
        Effect.map(Supervisor.make({ children: [child] }), (supervisor) => ({ agent: ref, supervisor })))
      : { agent: yield* Agent.spawn(definition, { id: "worker" }), supervisor: undefined }
    const status = agent.call("status", {})
    /** Polls `status` (yielding between polls, never moving the clock) until `done` holds. */
    const until = (done: (s: TaskAgent.Status) => boolean) =>
      Effect.gen(function*() {
        for (let i = 0; i < 20_000; i++) {
          const s = yield* status
          if (done(s)) return s
          yield* Effect.yieldNow()
        }
        return yield* Effect.dieMessage(`condition not reached; last status ${JSON.stringify(yield* status)}`)
      })
    const submit = (id: string, type: string, input: unknown = { n: 1 }, priority?: TaskAgent.Priority) =>
      agent.call("submit", { id, type, input, ...(priority === undefined ? {} : { priority }) } as never)
    return { agent, supervisor, log: Ref.get(log), gate, status, until, submit }
  })

const settle = Effect.repeatN(Effect.yieldNow(), 50)

describe("TaskAgent", () => {
  it.scoped("a bad id, type, priority or input is refused naming the field: nothing queued, run or counted", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const refused = (params: unknown, action: "submit" | "process" = "submit") =>
        Effect.map(Effect.flip(h.agent.call(action, params as never)), (e) => {
          expect(e).toBeInstanceOf(ValidationError)
          return (e as ValidationError).field
        })
      expect(yield* refused({ id: "", type: "double", input: { n: 1 } })).toBe("task_agent.submit.id")
      expect(yield* refused({ type: "double", input: { n: 1 } })).toBe("task_agent.submit.id")
      expect(yield* refused({ id: "a", type: "nope", input: { n: 1 } })).toBe("task_agent.submit.type")
      expect(yield* refused({ id: "a", type: "double", input: { n: 1 }, priority: "urgent" })).toBe("task_agent.submit.priority")
      expect(yield* refused({ id: "a", type: "double", input: { n: 1.5 } })).toBe("task_agent.submit.input.n")
      expect(yield* refused({ id: "a", type: "double" })).toBe("task_agent.submit.input")
      expect(yield* refused({ id: "a", type: "double", input: { n: "x" } }, "process")).toBe("task_agent.process.input.n")
      const s = yield* h.status
      expect([s.queue.size, s.currentTask, s.processed, s.errors]).toEqual([0, null, 0, 0])
      expect(yield* h.log).toEqual([])
      expect(yield* h.agent.call("results", {})).toEqual([])
      // The agent is unharmed: a good task runs.
      expect(yield* h.submit("a", "double")).toEqual({ taskId: "a", priority: "normal", position: 0, queueSize: 0 })
      expect((yield* h.until((s) => s.processed === 1)).errors).toBe(0)
    }).pipe(Effect.provide(pools)))

  it.scoped("a task id is unique among the queued and the running tasks", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.submit("g", "gated")
      yield* h.submit("q", "double")
      const running = yield* Effect.flip(h.submit("g", "double"))
      expect(running).toBeInstanceOf(AlreadyExistsError)
      expect(running).toMatchObject({ resource: "task", key: "g" })
      expect(yield* Effect.flip(h.submit("q", "double"))).toMatchObject({ _tag: "AlreadyExistsError", key: "q" })
      expect((yield* h.status).queue.size).toBe(1)
      yield* Deferred.succeed(h.gate, undefined)
      yield* h.until((s) => s.processed === 2)
      // Once finished, an id may be used again.
      yield* h.submit("g", "double")
      yield* h.until((s) => s.processed === 3)
      expect(yield* h.log).toEqual(["g started", "g", "q", "g"])
    }).pipe(Effect.provide(pools)))

  it.scoped("the queue holds 1,000 tasks: the next is refused with QueueFullError and none is lost", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.agent.call("pause", {})
      const ids = Array.from({ length: 1000 }, (_, i) => `t${i}`)
      for (const id of ids) yield* h.submit(id, "double")
      const full = yield* Effect.flip(h.submit("one-too-many", "double"))
      expect(full).toBeInstanceOf(TaskAgent.QueueFullError)
      expect(full).toMatchObject({ agent: "worker", size: 1000, limit: 1000, category: "resource" })
      expect((yield* h.status).queue).toEqual({ size: 1000, limit: 1000, high: 0, normal: 1000, low: 0 })
      yield* h.agent.call("resume", {})
      const s = yield* h.until((s) => s.processed === 1000)
      expect([s.queue.size, s.errors]).toEqual([0, 0])
      expect(yield* h.log).toEqual(ids)
    }).pipe(Effect.provide(pools)))

  it.scoped("a custom limit (maxQueue) counts waiting tasks, not the running one", () =>
    Effect.gen(function*() {
      const h = yield* setup({ maxQueue: 2 })
      yield* h.submit("g", "gated") // runs
      yield* h.submit("a", "double")
      yield* h.submit("b", "double")
      expect(yield* Effect.flip(h.submit("c", "double"))).toMatchObject({ _tag: "QueueFullError", size: 2, limit: 2 })
      yield* h.agent.call("cancel", { taskId: "a" })
      expect((yield* h.submit("c", "double")).queueSize).toBe(2)
    }).pipe(Effect.provide(pools)))

  it.scoped("tasks run high before normal before low, first in first out within a priority", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.agent.call("pause", {})
      const receipts = []
      for (const [id, priority] of [["l1", "low"], ["n1", "normal"], ["h1", "high"], ["l2", "low"], ["h2", "high"], ["n2", undefined]] as const) {
        receipts.push(yield* h.submit(id, "double", { n: 1 }, priority))
      }
      // Position in line when queued (1 = next).
      expect(receipts.map((r) => [r.taskId, r.priority, r.position, r.queueSize])).toEqual([
        ["l1", "low", 1, 1],
        ["n1", "normal", 1, 2],
        ["h1", "high", 1, 3],
        ["l2", "low", 4, 4],
        ["h2", "high", 2, 5],
        ["n2", "normal", 4, 6]
      ])
      expect((yield* h.status).queue).toMatchObject({ high: 2, normal: 2, low: 2 })
      yield* h.agent.call("resume", {})
      yield* h.until((s) => s.processed === 6)
      expect(yield* h.log).toEqual(["h1", "h2", "n1", "n2", "l1", "l2"])
    }).pipe(Effect.provide(pools)))

  it.scoped("the queue drains while the agent is idle, with no external trigger and no clock", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      for (const id of ["a", "b", "c", "d", "e"]) yield* h.submit(id, "double")
      const s = yield* h.until((s) => s.processed === 5)
      expect([s.status, s.queue.size, s.currentTask]).toEqual(["idle", 0, null])
      expect(yield* h.log).toEqual(["a", "b", "c", "d", "e"])
      // Idle now (the original's tick stopped here): new work still runs, with the clock still at 0.
      yield* h.submit("f", "double")
      yield* h.submit("g", "double")
      yield* h.until((s) => s.processed === 7)
      expect(yield* h.log).toEqual(["a", "b", "c", "d", "e", "f", "g"])
      expect(yield* Clock.currentTimeMillis).toBe(0)
    }).pipe(Effect.provide(pools)))

  it.scoped("pause holds the queue (the running task finishes) while submit still queues", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.submit("g", "gated")
      expect(yield* h.agent.call("pause", {})).toEqual({ wasPaused: false, reason: "manual pause" })
      expect((yield* h.submit("a", "double")).position).toBe(1)
      expect((yield* h.submit("b", "double")).position).toBe(2)
      const refused = yield* Effect.flip(TaskAgent.process(h.agent, { id: "p", type: "double", input: { n: 1 } }))
      expect(refused).toBeInstanceOf(TaskAgent.AgentPausedError)
      expect(refused).toMatchObject({ agent: "worker", reason: "manual pause" })
      yield* Deferred.succeed(h.gate, undefined)
      yield* h.until((s) => s.processed === 1)
      yield* settle
      const paused = yield* h.status
      expect([paused.status, paused.currentTask, paused.queue.size, paused.processed]).toEqual(["paused", null, 2, 1])
      expect(yield* h.log).toEqual(["g started", "g"])
      expect(yield* h.agent.call("resume", {})).toEqual({ wasPaused: true })
      yield* h.until((s) => s.processed === 3)
      expect(yield* h.log).toEqual(["g started", "g", "a", "b"])
    }).pipe(Effect.provide(pools)))

  it.scoped("status, results, clearErrors, cancel and resume all work while paused", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      expect(yield* h.agent.call("pause", { reason: "maintenance" })).toEqual({ wasPaused: false, reason: "maintenance" })
      expect(yield* h.agent.call("pause", { reason: "again" })).toEqual({ wasPaused: true, reason: "maintenance" })
      yield* h.submit("a", "double")
      yield* h.submit("b", "double")
      const s = yield* h.status
      expect([s.status, s.pausedReason, s.queue.size]).toEqual(["paused", "maintenance", 2])
      expect(yield* h.agent.call("results", {})).toEqual([])
      expect(yield* h.agent.call("clearErrors", {})).toEqual({ cleared: 0 })
      expect(yield* h.agent.call("cancel", { taskId: "b" })).toEqual({ taskId: "b", queueSize: 1 })
      expect(yield* h.agent.call("resume", {})).toEqual({ wasPaused: true })
      expect(yield* h.agent.call("resume", {})).toEqual({ wasPaused: false })
      const after = yield* h.until((s) => s.processed === 1)
      expect([after.status, after.pausedReason]).toEqual(["idle", null])
      expect(yield* h.log).toEqual(["a"])
    }).pipe(Effect.provide(pools)))

  it.scoped("10 failed tasks pause the agent; clearErrors resets the count and resume goes on", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const ids = Array.from({ length: 12 }, (_, i) => `f${i}`)
      for (const id of ids) yield* h.submit(id, "fail")
      const paused = yield* h.until((s) => s.status === "paused")
      yield* settle
      expect(yield* h.status).toEqual(paused)
      expect(paused).toMatchObject({ pausedReason: "error threshold", errors: 10, errorThreshold: 10, processed: 0 })
      expect(paused.queue.size).toBe(2)
      expect(yield* h.log).toEqual(ids.slice(0, 10))
      expect(yield* h.agent.call("clearErrors", {})).toEqual({ cleared: 10 })
      expect((yield* h.status)).toMatchObject({ errors: 0, status: "paused" })
      yield* h.agent.call("resume", {})
      const after = yield* h.until((s) => s.queue.size === 0 && s.currentTask === null)
      expect([after.status, after.errors]).toEqual(["idle", 2])
      expect(yield* h.log).toEqual(ids)
    }).pipe(Effect.provide(pools)))

  it.scoped("a custom threshold; without clearErrors the next failure pauses again, a success does not", () =>
    Effect.gen(function*() {
      const h = yield* setup({ errorThreshold: 3 })
      for (const id of ["f0", "f1", "f2"]) yield* h.submit(id, "fail")
      yield* h.submit("ok", "double")
      const paused = yield* h.until((s) => s.status === "paused")
      expect([paused.errors, paused.queue.size, paused.pausedReason]).toEqual([3, 1, "error threshold"])
      yield* h.agent.call("resume", {})
      const resumed = yield* h.until((s) => s.processed === 1)
      expect([resumed.status, resumed.errors]).toEqual(["idle", 3])
      yield* h.submit("f3", "fail")
      const again = yield* h.until((s) => s.status === "paused")
      expect(again.errors).toBe(4)
      yield* h.agent.call("clearErrors", {})
      yield* h.agent.call("resume", {})
      yield* h.submit("f4", "fail")
      const once = yield* h.until((s) => s.errors === 1)
      expect(once.status).toBe("idle")
    }).pipe(Effect.provide(pools)))

  it.scoped("a typed failure, a defect and a pool timeout each fail their task once; the agent goes on", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.submit("f", "fail", { n: 7 })
      yield* h.submit("d", "die", {})
      yield* h.submit("h", "hang", {})
      yield* h.submit("ok", "double", { n: 4 })
      yield* h.until((s) => s.currentTask === "h" && s.errors === 2)
      yield* TestClock.adjust("10 seconds") // the pool's time limit
      const s = yield* h.until((s) => s.processed === 1)
      expect([s.errors, s.status, s.queue.size]).toEqual([2 + 1, "idle", 0])
      expect(yield* h.agent.running).toBe(true)
      const results = yield* h.agent.call("results", {})
      expect(results.map((r) => [r.taskId, r.outcome])).toEqual([["f", "failed"], ["d", "failed"], ["h", "failed"], ["ok", "completed"]])
      const [f, d, hung, ok] = results
      expect(f).toMatchObject({ error: new Boom({ n: 7 }) })
      expect(d?.outcome === "failed" && d.error).toBeInstanceOf(InternalError)
      expect(hung?.outcome === "failed" && hung.error).toBeInstanceOf(TimeoutError)
      expect(hung?.durationMillis).toBe(10_000)
      expect(ok).toMatchObject({ value: 8, durationMillis: 0, finishedAt: 10_000 })
    }).pipe(Effect.provide(pools)))

  it.scoped("taskTimeout replaces the pool's time limit", () =>
    Effect.gen(function*() {
      const h = yield* setup({ taskTimeout: "1 second" })
      yield* h.submit("h", "hang", {})
      yield* h.until((s) => s.currentTask === "h")
      yield* settle
      yield* TestClock.adjust(999)
      yield* settle
      expect((yield* h.status).currentTask).toBe("h")
      yield* TestClock.adjust(1)
      const s = yield* h.until((s) => s.errors === 1)
      expect(s.currentTask).toBe(null)
      const [result] = yield* h.agent.call("results", {})
      expect(result?.outcome === "failed" && result.error).toBeInstanceOf(TimeoutError)
    }).pipe(Effect.provide(pools)))

  it.scoped("process queues a task and answers its outcome: the value, or the processor's typed failure", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const doubled: number = yield* TaskAgent.process(h.agent, { id: "a", type: "double", input: { n: 21 } })
      expect(doubled).toBe(42)
      const failed = yield* Effect.flip(TaskAgent.process(h.agent, { id: "b", type: "fail", input: { n: 3 } }))
      expect(failed).toEqual(new Boom({ n: 3 }))
      const s = yield* h.status
      expect([s.processed, s.errors]).toEqual([1, 1])
    }).pipe(Effect.provide(pools)))

  it.scoped("status and results change nothing (the original counted them as processed tasks)", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.submit("a", "double")
      yield* h.submit("b", "fail")
      const first = yield* h.until((s) => s.processed === 1 && s.errors === 1)
      const state = yield* h.agent.state
      for (let i = 0; i < 5; i++) {
        expect(yield* h.status).toEqual(first)
        expect((yield* h.agent.call("results", {})).length).toBe(2)
      }
      expect(yield* h.agent.state).toEqual(state)
      expect(first).toMatchObject({ processed: 1, errors: 1, status: "idle" })
    }).pipe(Effect.provide(pools)))

  it.scoped("timing metrics come from the Clock: from getting a pool slot to the end, completed tasks only", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.agent.call("pause", {})
      yield* h.submit("a", "sleep", { n: 30 })
      yield* h.submit("x", "fail", { n: 0 })
      yield* h.submit("b", "sleep", { n: 10 })
      yield* h.submit("c", "sleep", { n: 20 })
      expect((yield* h.status).timing).toEqual({ count: 0, totalMillis: 0, averageMillis: 0, fastest: null, slowest: null })
      yield* h.agent.call("resume", {})
      for (const [id, millis] of [["a", 30], ["b", 10], ["c", 20]] as const) {
        yield* h.until((s) => s.currentTask === id)
        yield* settle
        yield* TestClock.adjust(millis)
      }
      const s = yield* h.until((s) => s.processed === 3)
      expect(s.timing).toEqual({
        count: 3,
        totalMillis: 60,
        averageMillis: 20,
        fastest: { taskId: "b", millis: 10 },
        slowest: { taskId: "a", millis: 30 }
      })
      const results = yield* h.agent.call("results", {})
      expect(results.map((r) => [r.taskId, r.durationMillis, r.finishedAt])).toEqual([
        ["a", 30, 30],
        ["x", 0, 30],
        ["b", 10, 40],
        ["c", 20, 60]
      ])
    }).pipe(Effect.provide(pools)))

  it.scoped("keepResults bounds the recent results (oldest dropped)", () =>
    Effect.gen(function*() {
      const two = yield* setup({ keepResults: 2 })
      for (const id of ["a", "b", "c", "d", "e"]) yield* two.submit(id, "double")
      yield* two.until((s) => s.processed === 5)
      expect((yield* two.agent.call("results", {})).map((r) => r.taskId)).toEqual(["d", "e"])
      yield* two.agent.stop
      const none = yield* setup({ keepResults: 0 })
      yield* none.submit("a", "double")
      yield* none.until((s) => s.processed === 1)
      expect(yield* none.agent.call("results", {})).toEqual([])
    }).pipe(Effect.provide(pools)))

  it.scoped("cancel removes a queued task (NotFoundError otherwise); a process caller hears TaskCancelledError", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.submit("g", "gated")
      yield* h.submit("a", "double")
      const waiting = yield* Effect.fork(TaskAgent.process(h.agent, { id: "p", type: "double", input: { n: 1 } }))
      yield* h.submit("c", "double")
      yield* h.until((s) => s.queue.size === 3)
      expect(yield* h.agent.call("cancel", { taskId: "p" })).toEqual({ taskId: "p", queueSize: 2 })
      expect(failureOf(yield* Fiber.await(waiting))).toEqual(new TaskAgent.TaskCancelledError({ agent: "worker", taskId: "p" }))
      expect(yield* h.agent.call("cancel", { taskId: "a" })).toEqual({ taskId: "a", queueSize: 1 })
      for (const id of ["a", "g", "nope"]) {
        const missing = yield* Effect.flip(h.agent.call("cancel", { taskId: id }))
        expect(missing).toBeInstanceOf(NotFoundError)
        expect(missing).toMatchObject({ resource: "queued task", key: id })
      }
      yield* Deferred.succeed(h.gate, undefined)
      yield* h.until((s) => s.processed === 2)
      expect(yield* h.log).toEqual(["g started", "g", "c"])
    }).pipe(Effect.provide(pools)))

  it.scoped("stopping the agent interrupts the running task and fails the queued ones", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const running = yield* Effect.fork(TaskAgent.process(h.agent, { id: "g", type: "gated", input: null }))
      yield* h.until((s) => s.currentTask === "g")
      const queued = yield* Effect.fork(TaskAgent.process(h.agent, { id: "p", type: "double", input: { n: 1 } }))
      yield* h.submit("s", "double")
      yield* h.until((s) => s.queue.size === 2)
      yield* settle
      expect(yield* h.log).toEqual(["g started"])
      yield* h.agent.stop
      const stopped = new Agent.AgentStoppedError({ agent: "worker" })
      expect(failureOf(yield* Fiber.await(running))).toEqual(stopped)
      expect(failureOf(yield* Fiber.await(queued))).toEqual(stopped)
      expect(yield* h.log).toEqual(["g started", "g interrupted"]) // p and s never ran
      expect((yield* (yield* TaskPools.TaskPools).stats("tasks")).running).toBe(0)
      expect(yield* h.agent.running).toBe(false)
      expect(failureOf(yield* Effect.exit(h.status))).toEqual(stopped)
    }).pipe(Effect.provide(pools)))

  it.scoped("supervised: restarting the child interrupts its task; the new incarnation starts empty and works", () =>
    Effect.gen(function*() {
      const h = yield* setup({}, true)
      const supervisor = h.supervisor!
      const waiting = yield* Effect.fork(TaskAgent.process(h.agent, { id: "g", type: "gated", input: null }))
      yield* h.until((s) => s.currentTask === "g")
      yield* h.submit("a", "double")
      yield* settle
      yield* supervisor.terminateChild("worker")
      expect(failureOf(yield* Fiber.await(waiting))).toEqual(new Agent.AgentStoppedError({ agent: "worker" }))
      expect(yield* h.log).toEqual(["g started", "g interrupted"])
      yield* supervisor.restartChild("worker")
      const fresh = yield* h.status
      expect([fresh.currentTask, fresh.queue.size, fresh.processed]).toEqual([null, 0, 0])
      expect(yield* TaskAgent.process(h.agent, { id: "b", type: "double", input: { n: 5 } })).toBe(10)
      expect(yield* h.log).toEqual(["g started", "g interrupted", "b"])
    }).pipe(Effect.provide(pools)))

  it.scoped("emits started / completed / failed and paused / resumed events with the names in events", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.EventBus
      const sub = yield* bus.subscribe("foundation.**", { capacity: 100 })
      const h = yield* setup({ errorThreshold: 2 })
      yield* h.submit("a", "double")
      yield* h.until((s) => s.processed === 1)
      yield* h.agent.call("pause", { reason: "ops" })
      yield* h.submit("f1", "fail", { n: 1 }, "high")
      yield* h.submit("f2", "fail", { n: 2 })
      yield* h.agent.call("resume", {})
      yield* h.until((s) => s.errors === 2)
      const seen: Array<[string, unknown, unknown]> = []
      for (;;) {
        const next = yield* sub.poll
        if (Option.isNone(next)) break
        const { measurements, metadata } = next.value.data as Telemetry.TelemetryEvent
        if (next.value.type.startsWith("foundation.jido")) seen.push([next.value.type, measurements, metadata])
      }
      const e = TaskAgent.events
      const task = (id: string, type: string) => ({ agent_id: "worker", task_id: id, task_type: type })
      expect(seen).toEqual([
        [e.started, { count: 1 }, { ...task("a", "double"), priority: "normal" }],
        [e.completed, { duration: 0, count: 1 }, { ...task("a", "double"), result: "success" }],
        [e.paused, { error_count: 0, queue_size: 0 }, { agent_id: "worker", reason: "ops" }],
        [e.resumed, { error_count: 0, queue_size: 1 }, { agent_id: "worker" }],
        [e.started, { count: 1 }, { ...task("f1", "fail"), priority: "high" }],
        [e.failed, { duration: 0, count: 1 }, { ...task("f1", "fail"), reason: "Boom", error: new Boom({ n: 1 }) }],
        [e.started, { count: 1 }, { ...task("f2", "fail"), priority: "normal" }],
        [e.failed, { duration: 0, count: 1 }, { ...task("f2", "fail"), reason: "Boom", error: new Boom({ n: 2 }) }],
        [e.paused, { error_count: 2, queue_size: 0 }, { agent_id: "worker", reason: "error threshold" }]
      ])
      expect(e).toEqual({
        started: "foundation.jido_system.task.started",
        completed: "foundation.jido_system.task.completed",
        failed: "foundation.jido_system.task.failed",
        paused: "foundation.jido.agent.task_processing_paused",
        resumed: "foundation.jido.agent.task_processing_resumed"
      })
    }).pipe(Effect.provide(Layer.merge(pools, Telemetry.layerWithBus()))))

  it.effect("make validates its options, naming the field; an unknown pool fails the start", () =>
    Effect.gen(function*() {
      const processors = { t: TaskAgent.processor({ input: Schema.Unknown, run: () => Effect.void }) }
      const field = (options: TaskAgent.Options<TaskAgent.Processors>) =>
        Effect.map(Effect.flip(TaskAgent.make(options)), (e) => e.field)
      expect(yield* field({ processors: {} })).toBe("taskAgent.processors")
      expect(yield* field({ processors: { t: { input: "no", run: () => Effect.void } as never } })).toBe("taskAgent.processors.t.input")
      expect(yield* field({ processors, maxQueue: 0 })).toBe("taskAgent.maxQueue")
      expect(yield* field({ processors, errorThreshold: 1.5 })).toBe("taskAgent.errorThreshold")
      expect(yield* field({ processors, keepResults: -1 })).toBe("taskAgent.keepResults")
      expect(yield* field({ processors, taskTimeout: -5 })).toBe("taskAgent.taskTimeout")
      expect(yield* field({ processors, pool: "" })).toBe("taskAgent.pool")
      const definition = yield* TaskAgent.make({ processors, pool: "missing" })
      const start = yield* Effect.flip(Effect.scoped(Agent.spawn(definition)))
      expect(start).toBeInstanceOf(Agent.AgentStartError)
      expect(failureOf(Exit.failCause((start as Agent.AgentStartError).cause))).toBeInstanceOf(NotFoundError)
    }).pipe(Effect.provide(pools)))

  it.effect("the example runs", () =>
    Effect.gen(function*() {
      expect(yield* Example.program).toEqual({
        refused: "task_agent.submit.input.width",
        banner: 401,
        order: ["hero", "thumb", "banner"],
        processed: 3,
        errors: 0
      })
    }))
})

import { describe, expect, it } from "@effect/vitest"
import { Cause, Cron, Duration, Effect, Exit, Option, Schedule, Schema, Scope, TestClock } from "effect"
import * as Example from "../../examples/scheduler.js"
import * as Agent from "../../src/agents/Agent.js"
import * as AgentRegistry from "../../src/agents/AgentRegistry.js"
import * as Scheduler from "../../src/agents/Scheduler.js"
import { AlreadyExistsError, NotFoundError, ValidationError } from "../../src/errors/FoundationError.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as Telemetry from "../../src/observability/Telemetry.js"
import { drainTelemetry } from "../support/telemetry.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

class Refused extends Schema.TaggedError<Refused>()("Refused", {}) {}

const State = Schema.Struct({ n: Schema.Number, log: Schema.Array(Schema.String) })
type State = typeof State.Type

const counter = Agent.define({
  name: "counter",
  state: State,
  initial: { n: 0, log: [] },
  actions: {
    tick: Agent.action({
      params: Schema.Struct({ by: Schema.Number.pipe(Schema.int(), Schema.positive()) }),
      run: ({ by }, ctx: Agent.ActionContext<State>) => ctx.updateState((s) => ({ ...s, n: s.n + by }))
    }),
    note: Agent.action({
      params: Schema.String,
      run: (text, ctx: Agent.ActionContext<State>) => ctx.updateState((s) => ({ ...s, log: [...s.log, text] }))
    }),
    refuse: Agent.action({ params: Schema.Struct({}), run: () => Effect.fail(new Refused()) }),
    crash: Agent.action({ params: Schema.Struct({}), run: () => Effect.die("boom") }),
    count: Agent.action({ params: Schema.Struct({}), run: (_: {}, ctx: Agent.ActionContext<State>) => Effect.succeed(ctx.state.n) })
  }
})

const metadata: AgentRegistry.Metadata = { capabilities: ["count"], health: "healthy", node: "n1", resources: {} }

/** Lets every ready fiber run, without moving the clock. */
const settle = Effect.repeatN(Effect.yieldNow(), 50)

/** A registry, a scheduler that knows it, and an agent the registry runs. */
const setup = (options: Scheduler.Options = {}) =>
  Effect.gen(function*() {
    const registry = yield* AgentRegistry.make()
    const scheduler = yield* Scheduler.make(options).pipe(Effect.provideService(AgentRegistry.AgentRegistry, registry))
    const agent = yield* registry.spawn(counter, { id: "c", metadata })
    /** The agent's count once every delivery so far was handled (a call waits behind the casts). */
    const count = agent.call("count", {})
    const runs = (id: string) => Effect.map(scheduler.get(agent, id), (i) => i.runs)
    return { registry, scheduler, agent, count, runs }
  })

describe("Scheduler", () => {
  it.scoped("every: first delivery one interval after scheduling, then one per interval", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const info = yield* h.scheduler.schedule(h.agent, "tick", { every: "10 seconds", action: "tick", params: { by: 1 } })
      expect(info.nextRun).toEqual(Option.some(10_000))
      expect(info.timing).toEqual({ kind: "every", every: Duration.seconds(10) })
      yield* settle
      expect(yield* h.count).toBe(0)
      yield* TestClock.adjust("9999 millis")
      expect(yield* h.count).toBe(0)
      yield* TestClock.adjust("1 millis")
      expect(yield* h.count).toBe(1)
      yield* TestClock.adjust("25 seconds")
      expect(yield* h.count).toBe(3) // 10, 20, 30
      const after = yield* h.scheduler.get("c", "tick")
      expect([after.runs, after.failures, after.lastRun, after.nextRun]).toEqual([3, 0, Option.some(30_000), Option.some(40_000)])
    }))

  it.scoped("cron: delivers at each match (5 fields, or 6 with seconds), in the given time zone", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      // The test clock starts at 1970-01-01T00:00:00Z.
      const info = yield* h.scheduler.schedule(h.agent, "five", { cron: "*/5 * * * *", timeZone: "UTC", action: "tick", params: { by: 1 } })
      expect(info.nextRun).toEqual(Option.some(5 * 60_000))
      yield* h.scheduler.schedule(h.agent, "half", { cron: Cron.unsafeParse("*/30 * * * * *", "UTC"), action: "tick", params: { by: 100 } })
      yield* TestClock.adjust("4 minutes")
      expect(yield* h.count).toBe(800) // "half" at 30 s, 1 min, ..., 4 min
      yield* TestClock.adjust("1 minute")
      expect(yield* h.count).toBe(1001) // 5 min: both
      yield* TestClock.adjust("9 minutes")
      expect(yield* h.runs("five")).toBe(2) // 5, 10
      yield* TestClock.adjust("1 minute")
      expect(yield* h.runs("five")).toBe(3) // 15
      expect((yield* h.scheduler.get("c", "five")).nextRun).toEqual(Option.some(20 * 60_000))
      expect((yield* h.scheduler.get("c", "five")).lastRun).toEqual(Option.some(15 * 60_000))
    }))

  it.scoped("updateInterval replaces the timer: the old cadence stops, runs count exactly, stats stay", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.scheduler.schedule(h.agent, "t", { every: "10 seconds", action: "tick", params: { by: 1 } })
      yield* TestClock.adjust("25 seconds")
      expect(yield* h.runs("t")).toBe(2) // 10, 20
      const updated = yield* h.scheduler.updateInterval(h.agent, "t", { every: "3 seconds" })
      expect([updated.runs, updated.nextRun]).toEqual([2, Option.some(28_000)])
      yield* TestClock.adjust("9 seconds") // to 34 s: 28, 31, 34 (and no 30 from the old timer)
      expect(yield* h.runs("t")).toBe(5)
      expect(yield* h.count).toBe(5)
      yield* h.scheduler.updateInterval("c", "t", { cron: "0 * * * *", timeZone: "UTC" })
      yield* TestClock.adjust("30 minutes")
      expect(yield* h.runs("t")).toBe(5)
      yield* TestClock.adjust("30 minutes") // 01:00:34 passed 01:00:00
      expect(yield* h.runs("t")).toBe(6)
      expect((yield* h.scheduler.stats).totalSchedules).toBe(1)
    }))

  it.scoped("runNow delivers once at once and leaves the timer alone (no second timer)", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.scheduler.schedule(h.agent, "t", { every: "10 seconds", action: "tick", params: { by: 1 } })
      yield* TestClock.adjust("4 seconds")
      yield* h.scheduler.runNow(h.agent, "t")
      expect(yield* h.count).toBe(1)
      const now = yield* h.scheduler.get("c", "t")
      expect([now.runs, now.lastRun, now.nextRun]).toEqual([1, Option.some(4_000), Option.some(10_000)])
      yield* TestClock.adjust("6 seconds") // 10 s: the regular delivery, as planned
      expect(yield* h.count).toBe(2)
      yield* TestClock.adjust("4 seconds") // 14 s: a second chain started by runNow would deliver here
      expect(yield* h.count).toBe(2)
      yield* TestClock.adjust("6 seconds") // 20 s
      expect(yield* h.count).toBe(3)
      yield* h.scheduler.runNow("c", "t")
      yield* h.scheduler.runNow("c", "t")
      yield* TestClock.adjust("10 seconds") // 30 s
      expect(yield* h.count).toBe(6)
      expect(yield* h.runs("t")).toBe(6)
      expect(failureOf(yield* Effect.exit(h.scheduler.runNow("c", "nope")))).toBeInstanceOf(NotFoundError)
    }))

  it.scoped("one schedule per (agent, id): AlreadyExistsError, or replace: true (the old timer stops)", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.scheduler.schedule(h.agent, "t", { every: "10 seconds", action: "tick", params: { by: 1 } })
      const taken = failureOf(yield* Effect.exit(
        h.scheduler.schedule(h.agent, "t", { every: "1 second", action: "tick", params: { by: 1 } })
      ))
      expect(taken).toBeInstanceOf(AlreadyExistsError)
      expect((taken as AlreadyExistsError).key).toBe("c/t")
      yield* h.scheduler.schedule(h.agent, "other", { every: "10 seconds", action: "note", params: "hi" })
      yield* TestClock.adjust("12 seconds") // the old one at 10 s
      const replaced = yield* h.scheduler.schedule(h.agent, "t", { every: "10 seconds", action: "tick", params: { by: 10 }, replace: true })
      expect([replaced.runs, replaced.nextRun]).toEqual([0, Option.some(22_000)])
      yield* TestClock.adjust("10 seconds") // 22 s: the new one; the old one would have come at 20 s
      expect(yield* h.count).toBe(11)
      expect((yield* h.agent.state).log).toEqual(["hi", "hi"]) // "other" at 10 s and 20 s, untouched
      expect((yield* h.scheduler.list(h.agent)).map((i) => i.scheduleId).sort()).toEqual(["other", "t"])
      expect((yield* h.scheduler.stats).totalSchedules).toBe(2)
    }))

  it.scoped("the schedules of an agent the registry runs end the moment it stops or crashes", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const other = yield* h.registry.spawn(counter, { id: "d", metadata })
      yield* h.scheduler.schedule(h.agent, "a", { every: "10 seconds", action: "tick", params: { by: 1 } })
      yield* h.scheduler.schedule(h.agent, "b", { cron: "* * * * *", action: "tick", params: { by: 1 } })
      yield* h.scheduler.schedule(other, "a", { every: "10 seconds", action: "tick", params: { by: 1 } })
      yield* TestClock.adjust("10 seconds")
      expect((yield* h.scheduler.stats).watchers).toBe(0) // the registry tells: no fiber per agent
      yield* h.agent.stop
      yield* Effect.exit(other.call("crash", {}))
      yield* settle // no clock movement: the registry told the scheduler
      expect(failureOf(yield* Effect.exit(h.scheduler.list(h.agent)))).toBeInstanceOf(NotFoundError)
      expect(failureOf(yield* Effect.exit(h.scheduler.list(other)))).toBeInstanceOf(NotFoundError)
      const stats = yield* h.scheduler.stats
      expect(stats).toMatchObject({ totalSchedules: 0, activeAgents: 0, endedWithAgent: 3, runs: 2, failures: 0, watchers: 0 })
      yield* TestClock.adjust("10 minutes")
      expect(yield* h.scheduler.stats).toMatchObject({ runs: 2, failures: 0 })
    }))

  it.scoped("without the registry, a spawned agent's stop ends all its schedules at once (one watcher per agent)", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.EventBus
      const sub = yield* bus.subscribe("foundation.mabeam.scheduler.agent_ended", { capacity: 10 })
      const scheduler = yield* Scheduler.make()
      const agent = yield* Agent.spawn(counter, { id: "plain" })
      const other = yield* Agent.spawn(counter, { id: "other" })
      yield* scheduler.schedule(agent, "a", { every: "10 seconds", action: "tick", params: { by: 1 } })
      yield* scheduler.schedule(agent, "b", { every: "1 minute", action: "tick", params: { by: 1 } })
      yield* scheduler.schedule(other, "a", { every: "10 seconds", action: "tick", params: { by: 1 } })
      yield* settle
      expect(yield* scheduler.stats).toMatchObject({ totalSchedules: 3, activeAgents: 2, watchers: 2 })
      yield* agent.stop
      yield* settle // no clock movement: the watcher saw the agent end
      expect(failureOf(yield* Effect.exit(scheduler.list(agent)))).toBeInstanceOf(NotFoundError)
      expect(yield* scheduler.stats).toMatchObject({
        totalSchedules: 1,
        activeAgents: 1,
        endedWithAgent: 2,
        runs: 0,
        failures: 0,
        watchers: 1
      })
      const ended = Option.map(yield* sub.poll, (e) => {
        const { measurements, metadata: meta } = e.data as Telemetry.TelemetryEvent
        return [measurements, meta]
      })
      expect(ended).toEqual(Option.some([{ schedules: 2 }, { scheduler: "scheduler", agent_id: "plain", reason: "stopped" }]))
      yield* TestClock.adjust("10 minutes")
      expect(yield* scheduler.stats).toMatchObject({ runs: 60, failures: 0 }) // all the other agent's
      expect(yield* other.call("count", {})).toBe(60)
      // A stopped agent cannot be scheduled.
      const refused = failureOf(yield* Effect.exit(scheduler.schedule(agent, "a", { every: "1 second", action: "tick", params: { by: 1 } })))
      expect(refused).toBeInstanceOf(Agent.AgentStoppedError)
      expect((yield* scheduler.stats).watchers).toBe(1)
    }).pipe(Effect.provide(Telemetry.layerWithBus())))

  it.scoped("without the registry, an agent whose parent scope closes takes its schedules with it", () =>
    Effect.gen(function*() {
      const scheduler = yield* Scheduler.make()
      const parent = yield* Scope.make()
      const agent = yield* Agent.spawn(counter, { id: "child" }).pipe(Scope.extend(parent))
      yield* scheduler.schedule(agent, "a", { every: "10 seconds", action: "tick", params: { by: 1 } })
      yield* scheduler.schedule(agent, "b", { cron: "* * * * *", action: "tick", params: { by: 1 } })
      yield* TestClock.adjust("10 seconds")
      expect(yield* agent.call("count", {})).toBe(1)
      yield* Scope.close(parent, Exit.void)
      yield* settle
      expect(failureOf(yield* Effect.exit(scheduler.list("child")))).toBeInstanceOf(NotFoundError)
      expect(yield* scheduler.stats).toMatchObject({
        totalSchedules: 0,
        activeAgents: 0,
        endedWithAgent: 2,
        runs: 1,
        failures: 0,
        watchers: 0
      })
    }))

  it.scoped("removing an agent's last schedule ends its watcher: unschedule, unscheduleAgent, completion", () =>
    Effect.gen(function*() {
      const scheduler = yield* Scheduler.make()
      const agent = yield* Agent.spawn(counter, { id: "w" })
      const watchers = Effect.map(scheduler.stats, (s) => s.watchers)
      yield* scheduler.schedule(agent, "a", { every: "1 second", action: "tick", params: { by: 1 } })
      yield* scheduler.schedule(agent, "b", { every: "1 second", action: "tick", params: { by: 1 } })
      yield* settle
      expect(yield* watchers).toBe(1)
      yield* scheduler.unschedule(agent, "a")
      expect(yield* watchers).toBe(1) // "b" is left
      yield* scheduler.unschedule(agent, "b")
      expect(yield* watchers).toBe(0) // at once: unschedule awaited it
      yield* scheduler.schedule(agent, "a", { every: "1 second", action: "tick", params: { by: 1 } })
      yield* scheduler.schedule(agent, "b", { every: "1 second", action: "tick", params: { by: 1 } })
      yield* settle
      expect(yield* watchers).toBe(1)
      expect(yield* scheduler.unscheduleAgent(agent)).toBe(2)
      expect(yield* watchers).toBe(0)
      const twice = Schedule.addDelay(Schedule.recurs(2), () => "1 second")
      yield* scheduler.schedule(agent, "twice", { schedule: twice, action: "tick", params: { by: 1 } })
      yield* settle
      expect(yield* watchers).toBe(1)
      yield* TestClock.adjust("1 minute")
      expect(yield* scheduler.stats).toMatchObject({ completed: 1, totalSchedules: 0, activeAgents: 0, watchers: 0 })
      // The agent ending later touches nothing: no schedule of it is left, nobody watches it.
      yield* agent.stop
      yield* settle
      expect(yield* scheduler.stats).toMatchObject({ endedWithAgent: 0, watchers: 0, runs: 2 })
    }))

  it.scoped("a delivery that finds the agent stopped ends its schedules (backstop for a reference that never ends)", () =>
    Effect.gen(function*() {
      const scheduler = yield* Scheduler.make()
      const spawned = yield* Agent.spawn(counter, { id: "forever" })
      const agent: Agent.AgentRef<typeof counter> = { ...spawned, ended: Effect.never }
      yield* scheduler.schedule(agent, "a", { every: "10 seconds", action: "tick", params: { by: 1 } })
      yield* scheduler.schedule(agent, "b", { every: "1 minute", action: "tick", params: { by: 1 } })
      yield* spawned.stop
      yield* settle
      expect(yield* scheduler.stats).toMatchObject({ totalSchedules: 2, watchers: 1 }) // its `ended` never comes
      yield* TestClock.adjust("10 seconds")
      expect(failureOf(yield* Effect.exit(scheduler.list(agent)))).toBeInstanceOf(NotFoundError)
      expect(yield* scheduler.stats).toMatchObject({ totalSchedules: 0, endedWithAgent: 2, runs: 1, failures: 1, watchers: 0 })
      yield* TestClock.adjust("10 minutes")
      expect((yield* scheduler.stats).runs).toBe(1)
    }))

  it.scoped("call delivery counts the action's failures; runNow reports them; the schedule goes on", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.scheduler.schedule(h.agent, "r", { every: "1 second", action: "refuse", params: {}, delivery: "call", timeout: "1 second" })
      yield* TestClock.adjust("3 seconds")
      const info = yield* h.scheduler.get(h.agent, "r")
      expect([info.runs, info.failures]).toEqual([3, 3])
      expect(Option.getOrUndefined(info.lastError)).toBeInstanceOf(Refused)
      const failed = failureOf(yield* Effect.exit(h.scheduler.runNow(h.agent, "r")))
      expect(failed).toBeInstanceOf(Scheduler.DeliveryFailedError)
      expect((failed as Scheduler.DeliveryFailedError).error).toBeInstanceOf(Refused)
      expect(yield* h.scheduler.stats).toMatchObject({ runs: 4, failures: 4, totalSchedules: 1 })
    }))

  it.scoped("any Schedule: its delays precede deliveries; when it ends, the schedule is removed", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const twice = Schedule.addDelay(Schedule.recurs(2), () => "1 second")
      yield* h.scheduler.schedule(h.agent, "twice", { schedule: twice, action: "tick", params: { by: 1 } })
      yield* TestClock.adjust("1 minute")
      expect(yield* h.count).toBe(2)
      expect(failureOf(yield* Effect.exit(h.scheduler.get(h.agent, "twice")))).toBeInstanceOf(NotFoundError)
      expect(yield* h.scheduler.stats).toMatchObject({ completed: 1, totalSchedules: 0, runs: 2 })
    }))

  it.scoped("unschedule, unscheduleAgent, and NotFoundError for what does not exist", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      yield* h.scheduler.schedule(h.agent, "a", { every: "1 second", action: "tick", params: { by: 1 } })
      yield* h.scheduler.schedule(h.agent, "b", { every: "1 second", action: "tick", params: { by: 1 } })
      yield* h.scheduler.schedule(h.agent, "c", { every: "1 second", action: "tick", params: { by: 1 } })
      yield* h.scheduler.unschedule(h.agent, "a")
      expect(failureOf(yield* Effect.exit(h.scheduler.unschedule(h.agent, "a")))).toBeInstanceOf(NotFoundError)
      expect(failureOf(yield* Effect.exit(h.scheduler.updateInterval("c", "a", { every: 5 })))).toBeInstanceOf(NotFoundError)
      expect(failureOf(yield* Effect.exit(h.scheduler.list("nobody")))).toBeInstanceOf(NotFoundError)
      yield* TestClock.adjust("1 second")
      expect(yield* h.count).toBe(2)
      expect(yield* h.scheduler.unscheduleAgent(h.agent)).toBe(2)
      expect(yield* h.scheduler.unscheduleAgent(h.agent)).toBe(0)
      yield* TestClock.adjust("1 minute")
      expect(yield* h.count).toBe(2)
      expect(yield* h.scheduler.stats).toMatchObject({ totalSchedules: 0, activeAgents: 0, runs: 2, endedWithAgent: 0 })
    }))

  it.scoped("options are validated at the boundary, naming the field; nothing is scheduled", () =>
    Effect.gen(function*() {
      const h = yield* setup()
      const fieldOf = (options: unknown, id = "x") =>
        Effect.map(
          Effect.flip(h.scheduler.schedule(h.agent, id, options as Scheduler.ScheduleOptions<typeof counter, "tick">)),
          (e) => (e as ValidationError).field
        )
      expect(yield* fieldOf({ every: "1 second", action: "nope", params: {} })).toBe("action")
      expect(yield* fieldOf({ every: "1 second", action: "tick", params: { by: -1 } })).toBe("params.by")
      expect(yield* fieldOf({ every: "1 second", action: "tick", params: {} })).toBe("params.by")
      expect(yield* fieldOf({ action: "tick", params: { by: 1 } })).toBe("timing")
      expect(yield* fieldOf({ every: 1000, cron: "* * * * *", action: "tick", params: { by: 1 } })).toBe("timing")
      expect(yield* fieldOf({ every: 0, action: "tick", params: { by: 1 } })).toBe("every")
      expect(yield* fieldOf({ cron: "61 * * * *", action: "tick", params: { by: 1 } })).toBe("cron")
      expect(yield* fieldOf({ cron: "0 0 30 2 *", action: "tick", params: { by: 1 } })).toBe("cron") // February 30th
      expect(yield* fieldOf({ cron: "* * * * *", timeZone: "Mars/Olympus", action: "tick", params: { by: 1 } })).toBe("timeZone")
      expect(yield* fieldOf({ schedule: "often", action: "tick", params: { by: 1 } })).toBe("schedule")
      expect(yield* fieldOf({ every: 1000, action: "tick", params: { by: 1 }, timeout: 5 })).toBe("timeout")
      expect(yield* fieldOf({ every: 1000, action: "tick", params: { by: 1 }, delivery: "post" })).toBe("delivery")
      expect(yield* fieldOf({ every: 1000, action: "tick", params: { by: 1 } }, "")).toBe("scheduleId")
      expect(((yield* Effect.flip(h.scheduler.updateInterval(h.agent, "x", { every: -5 }))) as ValidationError).field).toBe("every")
      expect(((yield* Effect.flip(Scheduler.make({ name: "" }))) as ValidationError).field).toBe("scheduler.name")
      expect(yield* h.scheduler.stats).toMatchObject({ totalSchedules: 0, activeAgents: 0 })
    }))

  it.scoped("another agent under the same id ends the schedules of the one before", () =>
    Effect.gen(function*() {
      const scheduler = yield* Scheduler.make()
      const first = yield* Agent.spawn(counter, { id: "same" })
      yield* scheduler.schedule(first, "a", { every: "1 second", action: "tick", params: { by: 1 } })
      yield* scheduler.schedule(first, "b", { every: "1 second", action: "tick", params: { by: 1 } })
      yield* first.stop
      const second = yield* Agent.spawn(counter, { id: "same" })
      yield* scheduler.schedule(second, "a", { every: "1 second", action: "tick", params: { by: 5 } })
      expect((yield* scheduler.list("same")).map((i) => i.scheduleId)).toEqual(["a"])
      yield* TestClock.adjust("2 seconds")
      expect(yield* second.call("count", {})).toBe(10)
      expect(yield* scheduler.stats).toMatchObject({ endedWithAgent: 2, failures: 0 })
    }))

  it.scoped("emits scheduled, interval_updated, delivery_failed, unscheduled and agent_ended events", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.EventBus
      const sub = yield* bus.subscribe("foundation.mabeam.scheduler.**", { capacity: 100 })
      const h = yield* setup({ name: "s" })
      yield* h.scheduler.schedule(h.agent, "t", { every: "1 second", action: "tick", params: { by: 1 } })
      yield* h.scheduler.schedule(h.agent, "r", { every: "1 second", action: "refuse", params: {}, delivery: "call" })
      yield* h.scheduler.updateInterval(h.agent, "t", { every: "2 seconds" })
      yield* TestClock.adjust("1 second")
      yield* h.scheduler.unschedule(h.agent, "r")
      yield* h.agent.stop
      yield* settle
      const seen = yield* drainTelemetry(sub)
      const e = Scheduler.events
      const at = { scheduler: "s", agent_id: "c" }
      expect(seen).toEqual([
        [e.scheduled, { count: 1 }, { ...at, schedule_id: "t", action: "tick", timing: "every 1s", replaced: false }],
        [e.scheduled, { count: 1 }, { ...at, schedule_id: "r", action: "refuse", timing: "every 1s", replaced: false }],
        [e.intervalUpdated, { count: 1 }, { ...at, schedule_id: "t", timing: "every 2s" }],
        [e.deliveryFailed, { count: 1, failures: 1 }, { ...at, schedule_id: "r", action: "refuse", trigger: "timer", error: "Refused" }],
        [e.unscheduled, { count: 1, runs: 1 }, { ...at, schedule_id: "r", reason: "explicit" }],
        [e.agentEnded, { schedules: 1 }, { ...at, reason: "unregistered" }]
      ])
    }).pipe(Effect.provide(Telemetry.layerWithBus())))

  it.scoped("closing the service's scope stops every timer", () =>
    Effect.gen(function*() {
      const agent = yield* Agent.spawn(counter, { id: "k" })
      const scheduler = yield* Effect.scoped(Effect.gen(function*() {
        const scheduler = yield* Scheduler.make()
        yield* scheduler.schedule(agent, "t", { every: "1 second", action: "tick", params: { by: 1 } })
        yield* TestClock.adjust("2 seconds")
        expect((yield* scheduler.stats).watchers).toBe(1)
        return scheduler
      }))
      yield* TestClock.adjust("1 minute")
      expect(yield* agent.call("count", {})).toBe(2)
      expect((yield* scheduler.stats).watchers).toBe(0) // the watcher went with the scope
    }))

  it.scoped("the example runs", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Example.program)
      yield* TestClock.adjust("1 hour")
      const result = yield* fiber.await
      expect(Exit.isSuccess(result)).toBe(true)
      if (Exit.isSuccess(result)) {
        expect(result.value).toEqual({ ticks: 4, heartbeat: { runs: 4, nextRunIn: 5_000 }, afterStop: "no schedules" })
      }
    }))
})

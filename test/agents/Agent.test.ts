import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Ref, Schedule, Schema, Scope, TestClock } from "effect"
import * as Agent from "../../src/agents/Agent.js"
import * as Supervisor from "../../src/agents/Supervisor.js"
import { TimeoutError, ValidationError } from "../../src/errors/FoundationError.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

class Rejected extends Schema.TaggedError<Rejected>()("Rejected", { reason: Schema.String }) {}

const State = Schema.Struct({ count: Schema.Number.pipe(Schema.nonNegative()), log: Schema.Array(Schema.String), paused: Schema.Boolean })
type State = typeof State.Type

/** A counter agent with a gate (a Deferred the test controls) and a record of what ran. */
const counter = (gate: Deferred.Deferred<void>, stops: Ref.Ref<ReadonlyArray<string>>) =>
  Agent.define({
    name: "counter",
    state: State,
    initial: { count: 0, log: [], paused: false },
    actions: {
      increment: Agent.action({
        params: Schema.Struct({ by: Schema.Number.pipe(Schema.int(), Schema.positive()) }),
        run: ({ by }, ctx: Agent.ActionContext<State>) =>
          Effect.as(ctx.updateState((s) => ({ ...s, count: s.count + by, log: [...s.log, `+${by}`] })), ctx.state.count)
      }),
      note: Agent.action({
        params: Schema.String,
        run: (text, ctx: Agent.ActionContext<State>) => ctx.updateState((s) => ({ ...s, log: [...s.log, text] }))
      }),
      reject: Agent.action({
        params: Schema.Struct({}),
        // Changes the state, then fails: the change must not stick.
        run: (_: {}, ctx: Agent.ActionContext<State>) =>
          Effect.zipRight(ctx.updateState((s) => ({ ...s, count: 999 })), Effect.fail(new Rejected({ reason: "no" })))
      }),
      invalidState: Agent.action({
        params: Schema.Struct({}),
        run: (_: {}, ctx: Agent.ActionContext<State>) => ctx.setState({ count: -1, log: [], paused: false })
      }),
      wait: Agent.action({
        params: Schema.Struct({}),
        run: (_: {}, ctx: Agent.ActionContext<State>) =>
          Effect.zipRight(Deferred.await(gate), ctx.updateState((s) => ({ ...s, log: [...s.log, "waited"] })))
      }),
      crash: Agent.action({ params: Schema.Struct({}), run: () => Effect.die("boom") }),
      pause: Agent.action({
        params: Schema.Struct({}),
        run: (_: {}, ctx: Agent.ActionContext<State>) => ctx.updateState((s) => ({ ...s, paused: true }))
      }),
      resume: Agent.action({
        params: Schema.Struct({}),
        run: (_: {}, ctx: Agent.ActionContext<State>) => ctx.updateState((s) => ({ ...s, paused: false }))
      })
    },
    hooks: {
      onStart: (ctx) => ctx.updateState((s) => ({ ...s, log: ["started"] })),
      // Work is refused while paused; control actions go through.
      beforeAction: (ctx, action) =>
        ctx.state.paused && action !== "resume" ? Effect.fail(new Rejected({ reason: "paused" })) : Effect.void,
      onStop: (state, reason) => Ref.update(stops, (s) => [...s, `${reason} at ${state.count}`])
    }
  })

const setup = Effect.gen(function*() {
  const gate = yield* Deferred.make<void>()
  const stops = yield* Ref.make<ReadonlyArray<string>>([])
  return { gate, stops, definition: counter(gate, stops) }
})

describe("Agent", () => {
  it.scoped("call runs actions one at a time; state changes stick only when the action succeeds", () =>
    Effect.gen(function*() {
      const { definition } = yield* setup
      const agent = yield* Agent.spawn(definition, { id: "c1" })
      expect(agent.id).toBe("c1")
      expect(yield* agent.call("increment", { by: 2 })).toBe(0)
      expect(yield* agent.call("increment", { by: 3 })).toBe(2)
      const rejected = failureOf(yield* Effect.exit(agent.call("reject", {})))
      expect(rejected).toBeInstanceOf(Rejected)
      const invalid = failureOf(yield* Effect.exit(agent.call("invalidState", {})))
      expect((invalid as ValidationError).field).toBe("counter.state.count")
      expect(yield* agent.state).toEqual({ count: 5, log: ["started", "+2", "+3"], paused: false })
      // Casts are processed in order, after what is already queued.
      yield* agent.cast("note", "a")
      yield* agent.cast("note", "b")
      expect(yield* agent.call("increment", { by: 1 })).toBe(5)
      expect((yield* agent.state).log.slice(-3)).toEqual(["a", "b", "+1"])
    }))

  it.scoped("bad params are refused at the caller with the field named; unknown actions too", () =>
    Effect.gen(function*() {
      const { definition } = yield* setup
      const agent = yield* Agent.spawn(definition)
      expect(agent.id.startsWith("counter-")).toBe(true)
      const bad = failureOf(yield* Effect.exit(agent.call("increment", { by: 1.5 })))
      expect((bad as ValidationError).field).toBe("counter.increment.by")
      const unknown = failureOf(yield* Effect.exit(agent.call("nope" as "note", "x")))
      expect((unknown as ValidationError).field).toBe("action")
      expect(yield* agent.mailboxSize).toBe(0)
      const badSpawn = failureOf(yield* Effect.exit(Agent.spawn(definition, { mailbox: 0 })))
      expect((badSpawn as ValidationError).field).toBe("agent.mailbox")
    }))

  it.scoped("a defect ends the agent: the caller and every queued call get AgentCrashedError", () =>
    Effect.gen(function*() {
      const { definition, gate, stops } = yield* setup
      const agent = yield* Agent.spawn(definition)
      const waiting = yield* Effect.fork(agent.call("wait", {}))
      const crash = yield* Effect.fork(agent.call("crash", {}))
      const queued = yield* Effect.fork(agent.call("increment", { by: 1 }))
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(waiting)).toBeUndefined()
      const crashed = failureOf(yield* Fiber.await(crash))
      expect(crashed).toMatchObject({ _tag: "AgentCrashedError", agent: agent.id, action: "crash" })
      expect(failureOf(yield* Fiber.await(queued))).toMatchObject({ _tag: "AgentCrashedError", action: "" })
      expect(failureOf(yield* Effect.exit(agent.call("increment", { by: 1 })))).toMatchObject({ _tag: "AgentStoppedError" })
      expect(failureOf(yield* Effect.exit(agent.cast("note", "x")))).toMatchObject({ _tag: "AgentStoppedError" })
      expect(yield* Ref.get(stops)).toEqual(["crashed at 0"])
      expect(yield* agent.running).toBe(false)
    }))

  it.scoped("the mailbox is bounded: full is a typed error, or a wait with whenFull: wait", () =>
    Effect.gen(function*() {
      const { definition, gate } = yield* setup
      const agent = yield* Agent.spawn(definition, { mailbox: 2 })
      yield* agent.cast("wait", {})
      yield* Effect.repeatN(Effect.yieldNow(), 10) // the agent took it and waits
      yield* agent.cast("note", "1")
      yield* agent.cast("note", "2")
      const full = failureOf(yield* Effect.exit(agent.cast("note", "3")))
      expect(full).toMatchObject({ _tag: "MailboxFullError", capacity: 2 })
      const patient = yield* Agent.spawn(definition, { mailbox: 1, whenFull: "wait" })
      yield* patient.cast("wait", {})
      yield* Effect.repeatN(Effect.yieldNow(), 10)
      yield* patient.cast("note", "1")
      const blocked = yield* Effect.fork(patient.cast("note", "2"))
      yield* Effect.repeatN(Effect.yieldNow(), 10)
      expect(yield* Fiber.poll(blocked)).toEqual(Option.none())
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(blocked)
      expect(yield* patient.call("increment", { by: 1 })).toBe(0)
      expect((yield* patient.state).log).toEqual(["started", "waited", "1", "2", "+1"])
    }))

  it.scoped("a call times out; a call whose caller gave up is never run late", () =>
    Effect.gen(function*() {
      const { definition, gate } = yield* setup
      const agent = yield* Agent.spawn(definition)
      yield* agent.cast("wait", {})
      const late = yield* Effect.fork(agent.call("increment", { by: 7 }, { timeout: "100 millis" }))
      yield* TestClock.adjust("100 millis")
      const error = failureOf(yield* Fiber.await(late))
      expect(error).toBeInstanceOf(TimeoutError)
      expect((error as TimeoutError).message).toBe(`call ${agent.id}.increment timed out after 100ms`)
      yield* Deferred.succeed(gate, undefined)
      expect(yield* agent.call("increment", { by: 1 })).toBe(0) // the +7 never ran
    }))

  it.scoped("beforeAction vetoes work while paused, lets control actions through", () =>
    Effect.gen(function*() {
      const { definition } = yield* setup
      const agent = yield* Agent.spawn(definition)
      yield* agent.call("pause", {})
      const refused = failureOf(yield* Effect.exit(agent.call("increment", { by: 1 })))
      expect(refused).toMatchObject({ _tag: "Rejected", reason: "paused" })
      yield* agent.call("resume", {}) // the original's veto blocked resume too
      expect(yield* agent.call("increment", { by: 1 })).toBe(0)
    }))

  describe("every call is answered, and stop always ends", () => {
    const Edgy = (afterAction?: () => Effect.Effect<void>) =>
      Agent.define({
        name: "edgy",
        state: Schema.Number,
        initial: 0,
        actions: {
          ok: Agent.action({ params: Schema.Struct({}), run: () => Effect.succeed(1) }),
          throwSync: Agent.action({
            params: Schema.Struct({}),
            run: (): Effect.Effect<number> => {
              throw new Error("thrown, not returned")
            }
          }),
          dieOnInterrupt: Agent.action({
            params: Schema.Struct({}),
            run: () => Effect.never.pipe(Effect.ensuring(Effect.die("cleanup failed")))
          }),
          long: Agent.action({ params: Schema.Struct({}), run: () => Effect.never })
        },
        ...(afterAction === undefined ? {} : { hooks: { afterAction } })
      })
    const settle = Effect.repeatN(Effect.yieldNow(), 20)

    it.scoped("a defect in afterAction, or a synchronous throw in run, answers the caller with AgentCrashedError at once", () =>
      Effect.gen(function*() {
        const after = yield* Agent.spawn(Edgy(() => Effect.die("after")))
        const call = yield* Effect.fork(after.call("ok", {}))
        yield* settle
        expect(failureOf(yield* Fiber.await(call))).toMatchObject({ _tag: "AgentCrashedError", action: "ok" })
        const thrower = yield* Agent.spawn(Edgy())
        const thrown = yield* Effect.fork(thrower.call("throwSync", {}))
        yield* settle
        expect(failureOf(yield* Fiber.await(thrown))).toMatchObject({ _tag: "AgentCrashedError", action: "throwSync" })
      }))

    it.scoped("a stop while the action's cleanup dies ends the agent and answers the caller", () =>
      Effect.gen(function*() {
        const agent = yield* Agent.spawn(Edgy())
        const call = yield* Effect.fork(agent.call("dieOnInterrupt", {}))
        yield* settle
        yield* agent.stop
        expect(failureOf(yield* Fiber.await(call))).toMatchObject({ _tag: "AgentStoppedError" })
        expect(yield* agent.running).toBe(false)
      }))

    it.scoped("a worker woken from an uninterruptible region can still be stopped", () =>
      Effect.gen(function*() {
        const agent = yield* Agent.spawn(Edgy())
        yield* Effect.uninterruptible(agent.cast("long", {}))
        yield* settle
        const stopping = yield* Effect.fork(agent.stop)
        yield* settle
        expect(Option.isSome(yield* Fiber.poll(stopping))).toBe(true)
        expect(yield* agent.running).toBe(false)
      }))
  })

  it.scoped("ended completes when the agent ends for good: a stop, a crash, its parent scope closing", () =>
    Effect.gen(function*() {
      const { definition } = yield* setup
      const stopped = yield* Agent.spawn(definition, { id: "e1" })
      const waiting = yield* Effect.fork(stopped.ended)
      yield* Effect.repeatN(Effect.yieldNow(), 10)
      expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
      yield* stopped.stop
      yield* Fiber.join(waiting)
      yield* stopped.ended // at once, once ended
      const crashed = yield* Agent.spawn(definition, { id: "e2" })
      const crashWait = yield* Effect.fork(crashed.ended)
      yield* Effect.exit(crashed.call("crash", {}))
      yield* Fiber.join(crashWait)
      const parent = yield* Scope.make()
      const child = yield* Agent.spawn(definition, { id: "e3" }).pipe(Scope.extend(parent))
      const childWait = yield* Effect.fork(child.ended)
      yield* Scope.close(parent, Exit.void)
      yield* Fiber.join(childWait)
      expect(yield* child.running).toBe(false)
    }))

  it.scoped("stop: onStop runs, queued calls fail with AgentStoppedError, attach's resources are released", () =>
    Effect.gen(function*() {
      const { definition, stops } = yield* setup
      const attached = yield* Ref.make<ReadonlyArray<string>>([])
      const agent = yield* Agent.spawn(definition, {
        id: "stoppable",
        attach: (ref) =>
          Effect.acquireRelease(
            Ref.update(attached, (a) => [...a, `attach ${ref.id}`]),
            () => Ref.update(attached, (a) => [...a, `detach ${ref.id}`])
          )
      })
      expect(yield* Ref.get(attached)).toEqual(["attach stoppable"])
      yield* agent.cast("wait", {})
      const queued = yield* Effect.fork(agent.call("increment", { by: 1 }))
      yield* Effect.repeatN(Effect.yieldNow(), 10)
      yield* agent.stop
      expect(failureOf(yield* Fiber.await(queued))).toMatchObject({ _tag: "AgentStoppedError" })
      expect(yield* Ref.get(stops)).toEqual(["stopped at 0"])
      expect(yield* Ref.get(attached)).toEqual(["attach stoppable", "detach stoppable"])
      // A failing onStart (or attach) is a start error.
      const failing = Agent.define({
        name: "failing",
        state: Schema.Number,
        initial: 0,
        actions: {},
        hooks: { onStart: () => Effect.fail("no database") }
      })
      const startError = failureOf(yield* Effect.exit(Agent.spawn(failing)))
      expect(startError).toMatchObject({ _tag: "AgentStartError" })
    }))

  it.scoped("supervised: a crash restarts a fresh incarnation behind the same reference; calls wait for it", () =>
    Effect.gen(function*() {
      const { definition, stops } = yield* setup
      const { child, ref } = yield* Agent.supervised(definition, { id: "worker" })
      const supervisor = yield* Supervisor.make({
        backoff: Schedule.spaced("1 second"),
        children: [child]
      })
      expect(yield* ref.call("increment", { by: 4 })).toBe(0)
      const crashed = failureOf(yield* Effect.exit(ref.call("crash", {})))
      expect(crashed).toMatchObject({ _tag: "AgentCrashedError" })
      // Restarting after the backoff: a call now waits for the new incarnation.
      const during = yield* Effect.fork(ref.call("increment", { by: 1 }))
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      expect(yield* Fiber.poll(during)).toEqual(Option.none())
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(during)).toBe(0) // fresh state
      expect(yield* ref.state).toEqual({ count: 1, log: ["started", "+1"], paused: false })
      expect((yield* supervisor.children)[0]).toMatchObject({ id: "worker", incarnation: 2, restarts: 1 })
      expect(yield* Ref.get(stops)).toEqual(["crashed at 4"])
    }))
})

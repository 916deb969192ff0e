/**
 * Supervisor: OTP-style supervision of fibers (Effect has no restarting supervisor; this is it).
 *
 * A supervisor starts its children in order, each in a fiber and a `Scope` of its own, and
 * watches them. When a child exits it decides, from the child's restart type, whether to restart:
 * `permanent` always, `transient` only after a failure or a defect, `temporary` never (it is then
 * removed). A restart follows the strategy: `one_for_one` restarts the child alone;
 * `one_for_all` stops every other child (in reverse start order) and starts them all again in
 * order; `rest_for_one` does that for the children started after it. An optional backoff
 * `Schedule` spaces the restarts of a child (reset once the child has had no restart for the
 * intensity window).
 *
 * Guarantees:
 * - Restart intensity: more than `maxRestarts` restarts within `within` (default 3 in 5 s, as the
 *   original) and the supervisor gives up: it stops every child and fails with
 *   `SupervisorEscalatedError` (its `await` fails; as the child of another supervisor it is a
 *   failing child, so the failure climbs the tree). A backoff schedule that ends escalates too.
 * - Shutdown (closing the supervisor's scope, or escalation) stops the children in reverse start
 *   order, each given `shutdownTimeout` (default 5 s; `infinite` for nested supervisors) to run
 *   its finalizers before the supervisor moves on (the interruption goes on in the background).
 * - A child with `awaitReady` is started only once the previous one said it was ready
 *   (`Supervisor.ready`, from inside the child) or exited: a dependency is up before its dependents
 *   start, as OTP's init does.
 * - Decisions are taken one at a time by the supervisor's own fiber (exits, commands and restarts
 *   are messages to it), so a restart never races a command; a stale exit (of a stopped
 *   incarnation) is ignored. Every fiber lives in the supervisor's scope.
 * - Dynamic children: `startChild`, `terminateChild` (stop; not restarted; the spec is kept),
 *   `restartChild` (start a terminated child again), `deleteChild`.
 *
 * Telemetry (when `Telemetry` is in the context at `make`): `foundation.supervisor.child_exited`,
 * `child_restarted`, `escalated`, with metadata { supervisor, child, reason }. Metrics:
 * `foundation_supervisor_restarts_total{supervisor}`.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { AlreadyExistsError, NotFoundError, Tagged, ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"

// ---------------------------------------------------------------------------------------------
// Specs and options
// ---------------------------------------------------------------------------------------------

/** How the siblings of an exited child are treated. */
export type Strategy = "one_for_one" | "one_for_all" | "rest_for_one"

/** When a child is restarted. */
export type RestartType = "permanent" | "transient" | "temporary"

/** A child: an effect run in a fiber and a scope of its own, for the child's whole life. */
export interface ChildSpec<R = never> {
  /** Unique among the supervisor's children. */
  readonly id: string
  /** The child's life. Resources it acquires in its `Scope` are released when it stops. */
  readonly run: Effect.Effect<unknown, unknown, R | Scope.Scope | ChildContext>
  /** [permanent] */
  readonly restart?: RestartType
  /** Time given to the child's finalizers when it is stopped [5 s; `"infinite"` to wait]. */
  readonly shutdownTimeout?: Duration.DurationInput | "infinite"
  /**
   * Start the next child only once this one called `Supervisor.ready` (or exited) [false]. For
   * children that others depend on.
   */
  readonly awaitReady?: boolean
}

/** Options of a supervisor. */
export interface Options<R = never> {
  /** Used in errors, events and metrics [supervisor]. */
  readonly name?: string
  /** [one_for_one] */
  readonly strategy?: Strategy
  /** Restarts allowed within `within` before escalating (an integer ≥ 0) [3]. */
  readonly maxRestarts?: number
  /** The intensity window [5 s]. */
  readonly within?: Duration.DurationInput
  /** Delays between consecutive restarts of a child [none: restart at once]. */
  readonly backoff?: Schedule.Schedule<unknown, unknown>
  /** Started in order when the supervisor is made. */
  readonly children?: ReadonlyArray<ChildSpec<R>>
}

/** What a child can ask of its supervisor. */
export interface ChildContextApi {
  /** The child's id. */
  readonly id: string
  /** This incarnation's number (1 for the first start, then one more per restart). */
  readonly incarnation: number
  /** Tells the supervisor the child is ready (see `awaitReady`); later calls do nothing. */
  readonly ready: Effect.Effect<void>
}

/** The context of a running child. */
export class ChildContext extends Context.Tag("effect-foundation/Supervisor/ChildContext")<ChildContext, ChildContextApi>() {}

/** From inside a child: tells its supervisor it is ready. */
export const ready: Effect.Effect<void, never, ChildContext> = Effect.flatMap(ChildContext, (c) => c.ready)

// ---------------------------------------------------------------------------------------------
// Errors and observations
// ---------------------------------------------------------------------------------------------

/**
 * A supervisor gave up: its restart intensity was exceeded (or a backoff schedule ended). It
 * stopped its children. `cause` is the last child exit that triggered it.
 */
export class SupervisorEscalatedError extends Tagged("SupervisorEscalatedError", {
  category: "system",
  severity: "critical",
  message: "Supervisor escalated"
})<{
  readonly supervisor: string
  readonly child: string
  readonly reason: "intensity" | "backoff_exhausted"
  readonly restarts: number
  readonly cause: Cause.Cause<unknown>
}> {
  override describe() {
    return this.reason === "intensity"
      ? `Supervisor "${this.supervisor}" escalated: ${this.restarts} restarts within its window (child "${this.child}")`
      : `Supervisor "${this.supervisor}" escalated: the backoff of child "${this.child}" ended`
  }
}

/** The supervisor has stopped (escalated or closed): it takes no more commands. */
export class SupervisorStoppedError extends Tagged("SupervisorStoppedError", {
  category: "permanent",
  severity: "medium",
  message: "Supervisor stopped"
})<{ readonly supervisor: string }> {
  override describe() {
    return `Supervisor "${this.supervisor}" has stopped`
  }
}

/** A child's state. */
export type ChildStatus = "starting" | "running" | "restarting" | "stopped"

/** What `children` reports of a child. */
export interface ChildInfo {
  readonly id: string
  readonly status: ChildStatus
  readonly restart: RestartType
  /** Starts so far (1 after the first start). */
  readonly incarnation: number
  /** Restarts so far. */
  readonly restarts: number
}

/** Why a child exited, as events report it. */
export type ExitReason = "normal" | "failure" | "defect" | "interrupted"

export const events = Events.names.supervisor

/** A supervisor. */
export interface Supervisor {
  readonly name: string
  /** The children, in start order. */
  readonly children: Effect.Effect<ReadonlyArray<ChildInfo>>
  /** Adds and starts a child (after the others). */
  readonly startChild: <R>(
    spec: ChildSpec<R>
  ) => Effect.Effect<void, AlreadyExistsError | ValidationError | SupervisorStoppedError, Exclude<R, Scope.Scope | ChildContext>>
  /** Stops a child; it is not restarted, and its spec is kept (see `restartChild`). */
  readonly terminateChild: (id: string) => Effect.Effect<void, NotFoundError | SupervisorStoppedError>
  /** Starts a terminated child again. */
  readonly restartChild: (id: string) => Effect.Effect<void, NotFoundError | ValidationError | SupervisorStoppedError>
  /** Removes a terminated child's spec. */
  readonly deleteChild: (id: string) => Effect.Effect<void, NotFoundError | ValidationError | SupervisorStoppedError>
  /** Waits until the supervisor stops: fails with the escalation, or never returns while it runs. */
  readonly await: Effect.Effect<void, SupervisorEscalatedError>
}

// ---------------------------------------------------------------------------------------------
// The implementation
// ---------------------------------------------------------------------------------------------

/** A child slot: its spec and its current incarnation, touched only by the supervisor fiber. */
interface Slot {
  readonly spec: ChildSpec<unknown>
  readonly restart: RestartType
  readonly shutdownTimeout: Duration.Duration | undefined
  status: ChildStatus
  /** Starts so far. */
  incarnation: number
  /** Bumped on every start and stop: an exit of another epoch is stale. */
  epoch: number
  restarts: number
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
  /** Restart times (ms) within the window, for the backoff reset. */
  lastRestart: number
  backoff: Schedule.ScheduleDriver<unknown, unknown> | undefined
}

type Message =
  | { readonly _tag: "Exited"; readonly id: string; readonly epoch: number; readonly exit: Exit.Exit<unknown, unknown> }
  | {
    readonly _tag: "StartDelayed"
    /** The child whose backoff it was; the plan's ids; the plan's generation. */
    readonly child: string
    readonly ids: ReadonlyArray<string>
    readonly generation: number
    /** The backoff schedule ended: no restart. */
    readonly exhausted: boolean
  }
  | {
    readonly _tag: "Command"
    readonly run: Effect.Effect<void>
  }

const defaultShutdown = Duration.seconds(5)

const reasonOf = (exit: Exit.Exit<unknown, unknown>): ExitReason => {
  if (Exit.isSuccess(exit)) return "normal"
  if (Cause.isInterruptedOnly(exit.cause)) return "interrupted"
  return Option.isSome(Cause.failureOption(exit.cause)) ? "failure" : "defect"
}

const checkSpec = (spec: ChildSpec<unknown>, field: string): Either.Either<Slot, ValidationError> => {
  if (typeof spec?.id !== "string" || spec.id === "") return Validation.invalid(`${field}.id`, "a non-empty string")
  if (!Effect.isEffect(spec.run)) return Validation.invalid(`${field}.run`, "an Effect")
  const restart = spec.restart ?? "permanent"
  if (restart !== "permanent" && restart !== "transient" && restart !== "temporary") {
    return Validation.invalid(`${field}.restart`, `one of permanent, transient, temporary (got ${String(restart)})`)
  }
  let shutdownTimeout: Duration.Duration | undefined = defaultShutdown
  if (spec.shutdownTimeout === "infinite") shutdownTimeout = undefined
  else if (spec.shutdownTimeout !== undefined) {
    const checked = Validation.duration(`${field}.shutdownTimeout`, spec.shutdownTimeout)
    if (Either.isLeft(checked)) return Either.left(checked.left)
    shutdownTimeout = checked.right
  }
  return Either.right({
    spec,
    restart,
    shutdownTimeout,
    status: "stopped",
    incarnation: 0,
    epoch: 0,
    restarts: 0,
    fiber: undefined,
    lastRestart: Number.NEGATIVE_INFINITY,
    backoff: undefined
  })
}

/**
 * Makes a supervisor in the current scope and starts its children; closing the scope stops them
 * in reverse order. Bad options fail with `ValidationError` naming the field.
 */
export const make = <R = never>(
  options: Options<R> = {}
): Effect.Effect<Supervisor, ValidationError, Scope.Scope | R> =>
  Effect.gen(function*() {
    const name = yield* Validation.nonEmptyString("supervisor.name", options.name ?? "supervisor")
    const strategy = options.strategy ?? "one_for_one"
    if (strategy !== "one_for_one" && strategy !== "one_for_all" && strategy !== "rest_for_one") {
      return yield* Validation.invalid("supervisor.strategy", "one of one_for_one, one_for_all, rest_for_one")
    }
    const maxRestarts = yield* Validation.int("supervisor.maxRestarts", options.maxRestarts ?? 3, { min: 0 })
    const within = Duration.toMillis(yield* Validation.duration("supervisor.within", options.within ?? "5 seconds"))
    const slots: Array<Slot> = []
    for (const [i, spec] of (options.children ?? []).entries()) {
      const slot = yield* checkSpec(spec as ChildSpec<unknown>, `supervisor.children.${i}`)
      if (slots.some((s) => s.spec.id === slot.spec.id)) {
        return yield* Validation.invalid(`supervisor.children.${i}.id`, `"${slot.spec.id}" is used twice`)
      }
      slots.push(slot)
    }

    const scope = yield* Effect.scope
    // The children's fibers and scopes live here; created before the supervisor's finalizer, so
    // that the finalizer (ordered stop with timeouts) runs before this scope closes.
    const childrenScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
    const context = yield* Effect.context<R>()
    const clock = yield* Effect.clock
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const restartsMetric = MetricKit.counter("foundation_supervisor_restarts_total", {
      description: "Child restarts, by supervisor",
      tags: { supervisor: name }
    })
    const mailbox = yield* Queue.unbounded<Message>()
    const done = yield* Deferred.make<void, SupervisorEscalatedError>()
    /** Restart times (ms), newest last, for the intensity check. */
    const restartTimes: Array<number> = []
    /** Bumped on every stop-all, so that delayed starts of an earlier plan are dropped. */
    let generation = 0
    let stopped = false

    const find = (id: string) => slots.find((s) => s.spec.id === id)

    const emit = (event: string, slot: Slot, reason: string) =>
      telemetry?.unsafeEmit(event, { count: 1 }, { supervisor: name, child: slot.spec.id, reason, incarnation: slot.incarnation })

    /** Starts a child's new incarnation; waits for its readiness when it asks for that. */
    const start = (slot: Slot): Effect.Effect<void> =>
      Effect.gen(function*() {
        slot.incarnation++
        slot.epoch++
        slot.status = "starting"
        const incarnation = slot.incarnation
        const epoch = slot.epoch
        const readyLatch = yield* Deferred.make<void>()
        const childScope = yield* Scope.fork(childrenScope, ExecutionStrategy.sequential)
        const childContext: ChildContextApi = {
          id: slot.spec.id,
          incarnation,
          ready: Effect.asVoid(Deferred.succeed(readyLatch, undefined))
        }
        const body = Effect.onExit(
          slot.spec.run.pipe(
            Effect.provideService(ChildContext, childContext),
            Effect.provideService(Scope.Scope, childScope),
            Effect.provide(context as Context.Context<unknown>)
          ),
          // The child's resources go first; then the supervisor hears of the exit (an exit of a
          // stopped incarnation is stale and ignored).
          (exit) =>
            Effect.zipRight(
              Scope.close(childScope, exit),
              Effect.zipRight(
                Deferred.succeed(readyLatch, undefined),
                mailbox.offer({ _tag: "Exited", id: slot.spec.id, epoch, exit })
              )
            )
        )
        slot.fiber = yield* Effect.forkIn(body as Effect.Effect<unknown>, childrenScope)
        if (slot.spec.awaitReady === true) yield* Deferred.await(readyLatch)
        if (slot.status === "starting" && slot.epoch === epoch) slot.status = "running"
      })

    /** Stops a child (its fiber interrupted; finalizers given the shutdown timeout). */
    const stop = (slot: Slot): Effect.Effect<void> =>
      Effect.suspend(() => {
        const fiber = slot.fiber
        slot.fiber = undefined
        slot.status = "stopped"
        slot.epoch++ // its exit, when it comes, is stale
        if (fiber === undefined) return Effect.void
        const interrupt = Fiber.interrupt(fiber)
        return slot.shutdownTimeout === undefined
          ? Effect.asVoid(interrupt)
          : Effect.asVoid(Effect.timeoutOption(interrupt, slot.shutdownTimeout))
      })

    /** Stops these children, newest first. */
    const stopAll = (these: ReadonlyArray<Slot>) =>
      Effect.forEach([...these].reverse(), stop, { discard: true })

    const escalate = (slot: Slot, reason: "intensity" | "backoff_exhausted", cause: Cause.Cause<unknown>) =>
      Effect.suspend(() => {
        stopped = true
        generation++
        const error = new SupervisorEscalatedError({ supervisor: name, child: slot.spec.id, reason, restarts: restartTimes.length, cause })
        emit(events.escalated, slot, reason)
        return Effect.zipRight(stopAll(slots), Deferred.fail(done, error))
      })

    /** Starts the children in order, after the child's backoff delay when it has one. */
    const startInOrder = (plan: ReadonlyArray<Slot>, delayed: Slot | undefined): Effect.Effect<void> =>
      Effect.gen(function*() {
        if (delayed !== undefined && options.backoff !== undefined) {
          const now = clock.unsafeCurrentTimeMillis()
          if (delayed.backoff === undefined || now - delayed.lastRestart > within) {
            delayed.backoff = yield* Schedule.driver(options.backoff)
          }
          delayed.lastRestart = now
          for (const s of plan) s.status = "restarting"
          const driver = delayed.backoff
          const ids = plan.map((s) => s.spec.id)
          const planned = generation
          // The delay runs in its own fiber: the supervisor keeps answering meanwhile.
          yield* Effect.forkIn(
            Effect.matchEffect(driver.next(undefined), {
              onFailure: () =>
                mailbox.offer({ _tag: "StartDelayed", child: delayed.spec.id, ids, generation: planned, exhausted: true }),
              onSuccess: () =>
                mailbox.offer({ _tag: "StartDelayed", child: delayed.spec.id, ids, generation: planned, exhausted: false })
            }),
            scope
          )
          return
        }
        for (const s of plan) yield* start(s)
      })

    const onExit = (slot: Slot, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
      Effect.suspend(() => {
        const reason = reasonOf(exit)
        slot.fiber = undefined
        slot.status = "stopped"
        emit(events.childExited, slot, reason)
        const abnormal = reason === "failure" || reason === "defect"
        const restart = slot.restart === "permanent" || (slot.restart === "transient" && abnormal)
        if (!restart) {
          if (slot.restart === "temporary") slots.splice(slots.indexOf(slot), 1)
          return Effect.void
        }
        const now = clock.unsafeCurrentTimeMillis()
        while (restartTimes.length > 0 && now - restartTimes[0]! >= within) restartTimes.shift()
        restartTimes.push(now)
        if (restartTimes.length > maxRestarts) {
          return escalate(slot, "intensity", Exit.isFailure(exit) ? exit.cause : Cause.empty)
        }
        slot.restarts++
        MetricKit.bump(restartsMetric)
        emit(events.childRestarted, slot, reason)
        const index = slots.indexOf(slot)
        const plan = strategy === "one_for_one" ? [slot] : strategy === "one_for_all" ? [...slots] : slots.slice(index)
        const others = plan.filter((s) => s !== slot && s.status !== "stopped")
        // Siblings that are temporary are not restarted with the others (as in OTP): removed.
        return Effect.gen(function*() {
          if (others.length > 0) {
            generation++
            yield* stopAll(others)
          }
          const restartable = plan.filter((s) => s === slot || s.restart !== "temporary")
          for (const s of plan) if (!restartable.includes(s)) slots.splice(slots.indexOf(s), 1)
          yield* startInOrder(restartable, slot)
        })
      })

    const handle = (message: Message): Effect.Effect<void> => {
      if (stopped) return message._tag === "Command" ? message.run : Effect.void
      switch (message._tag) {
        case "Exited": {
          const slot = find(message.id)
          if (slot === undefined || slot.epoch !== message.epoch) return Effect.void
          return onExit(slot, message.exit)
        }
        case "StartDelayed": {
          if (message.generation !== generation) return Effect.void
          if (message.exhausted) {
            const slot = find(message.child)
            return slot === undefined ? Effect.void : escalate(slot, "backoff_exhausted", Cause.empty)
          }
          return Effect.forEach(message.ids, (id) => {
            const slot = find(id)
            return slot !== undefined && slot.status === "restarting" ? start(slot) : Effect.void
          }, { discard: true })
        }
        case "Command":
          return message.run
      }
    }

    /** Runs `f` in the supervisor's fiber (one decision at a time) and returns its result. */
    const command = <A, E>(f: () => Effect.Effect<A, E>): Effect.Effect<A, E | SupervisorStoppedError> =>
      Effect.gen(function*() {
        if (stopped) return yield* new SupervisorStoppedError({ supervisor: name })
        const reply = yield* Deferred.make<A, E | SupervisorStoppedError>()
        const run = Effect.suspend(() =>
          stopped ? Deferred.fail(reply, new SupervisorStoppedError({ supervisor: name })) : Effect.intoDeferred(f(), reply)
        )
        yield* mailbox.offer({ _tag: "Command", run: Effect.asVoid(run) })
        return yield* Deferred.await(reply)
      })

    // The supervisor's fiber. On scope close: it stops first (so no decision runs concurrently),
    // then the children stop in reverse start order with their timeouts, then pending commands
    // are answered.
    const loop = yield* Effect.forkIn(Effect.forever(Effect.flatMap(mailbox.take, handle)), scope)
    yield* Scope.addFinalizer(
      scope,
      Effect.gen(function*() {
        yield* Fiber.interrupt(loop)
        stopped = true
        generation++
        yield* stopAll(slots)
        yield* Effect.forEach(yield* mailbox.takeAll, (m) => m._tag === "Command" ? m.run : Effect.void, { discard: true })
        yield* Deferred.succeed(done, undefined)
      })
    )
    for (const slot of slots) yield* start(slot)

    const supervisor: Supervisor = {
      name,
      children: Effect.sync(() =>
        slots.map((s) => ({
          id: s.spec.id,
          status: s.status,
          restart: s.restart,
          incarnation: s.incarnation,
          restarts: s.restarts
        }))
      ),
      startChild: <R2>(spec: ChildSpec<R2>) =>
        Effect.flatMap(Effect.context<Exclude<R2, Scope.Scope | ChildContext>>(), (callerContext) =>
          command((): Effect.Effect<void, ValidationError | AlreadyExistsError> => {
            // The caller's services, but not its scope or child context: those are the child's
            // own (provided outside this, they would be overridden by the caller's).
            const extra = Context.omit(Scope.Scope, ChildContext)(callerContext) as Context.Context<R2>
            const checked = checkSpec(
              { ...spec, run: Effect.provide(spec.run, extra) } as ChildSpec<unknown>,
              "supervisor.child"
            )
            if (Either.isLeft(checked)) return Effect.fail(checked.left)
            if (find(spec.id) !== undefined) {
              return Effect.fail(new AlreadyExistsError({ resource: `supervisor ${name} child`, key: spec.id }))
            }
            slots.push(checked.right)
            return start(checked.right)
          })),
      terminateChild: (id) =>
        command((): Effect.Effect<void, NotFoundError> => {
          const slot = find(id)
          if (slot === undefined) return Effect.fail(new NotFoundError({ resource: `supervisor ${name} child`, key: id }))
          if (slot.restart === "temporary") slots.splice(slots.indexOf(slot), 1)
          return stop(slot)
        }),
      restartChild: (id) =>
        command((): Effect.Effect<void, NotFoundError | ValidationError> => {
          const slot = find(id)
          if (slot === undefined) return Effect.fail(new NotFoundError({ resource: `supervisor ${name} child`, key: id }))
          if (slot.status !== "stopped") {
            return Effect.fail(new ValidationError({ field: "supervisor.child", reason: `"${id}" is ${slot.status}, not stopped` }))
          }
          return start(slot)
        }),
      deleteChild: (id) =>
        command((): Effect.Effect<void, NotFoundError | ValidationError> => {
          const slot = find(id)
          if (slot === undefined) return Effect.fail(new NotFoundError({ resource: `supervisor ${name} child`, key: id }))
          if (slot.status !== "stopped") {
            return Effect.fail(new ValidationError({ field: "supervisor.child", reason: `"${id}" is ${slot.status}, not stopped` }))
          }
          slots.splice(slots.indexOf(slot), 1)
          return Effect.void
        }),
      await: Deferred.await(done)
    }
    return supervisor
  })

/**
 * A nested supervisor as a child of another: it runs until it escalates, which its parent sees
 * as a failing child (so the failure climbs the tree). Stopped with `infinite` shutdown time by
 * default (its own children's timeouts bound it).
 */
export const child = <R = never>(id: string, options: Options<R>): ChildSpec<R> => ({
  id,
  run: Effect.flatMap(make({ name: id, ...options }), (s) => s.await),
  restart: "permanent",
  shutdownTimeout: "infinite"
})

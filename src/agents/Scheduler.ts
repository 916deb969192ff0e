/**
 * Scheduler: delivers actions to agents on a `Schedule` (the original's
 * `JidoFoundation.SchedulerManager`, which replaced agents' self-scheduling). A schedule belongs
 * to an (agent, schedule id) pair and runs `every` a duration (fixed delay, first delivery after
 * one interval, as the original), on a `cron` expression (effect's `Cron`, `Schedule.cron`), or
 * on any `Schedule` given.
 *
 * Guarantees:
 * - One timer per (agent, schedule id), always: a fiber in the service's scope. `schedule` on a
 *   taken pair fails with `AlreadyExistsError` unless `replace: true`, which stops the old timer
 *   before the new one starts. `updateInterval` changes the timing of the same schedule (its
 *   stats stay) by replacing its timer, never adding one. `runNow` delivers once, at once, in the
 *   caller's fiber, and leaves the timer alone: the next regular delivery comes when it was due
 *   (the original's `force_execution` started a second timer chain).
 * - Params are validated against the action's Schema when the schedule is made (`ValidationError`
 *   naming the field), so every delivery is a valid message.
 * - A schedule ends with its agent, the moment the agent ends, without waiting for a delivery.
 *   For an agent the `AgentRegistry` runs (when the registry is in the context at `make`), all
 *   its schedules end when its registration leaves the registry (stop, crash, interruption,
 *   unregister). For any other agent, one watcher fiber per agent (in the service's scope, made
 *   with the agent's first schedule, interrupted with its last) awaits `AgentRef.ended` and ends
 *   them all when the agent's scope closes (`stop`, a crash, its parent scope closing). As a
 *   backstop, a delivery that finds the agent stopped (`AgentStoppedError`) ends them too. A
 *   supervised agent's reference outlives its restarts: outside the registry its schedules live
 *   until removed; under the registry a restart is a new registration, so re-create its schedules
 *   in its `onStart` (`replace: true`). Closing the service's scope stops every timer and watcher.
 * - Deliveries are `cast` (fire and forget, as the original) or `call` (waits for the action,
 *   within `timeout`, so that its failures count). A failed delivery counts in `failures` and the
 *   schedule goes on.
 * - Stats per schedule (runs, failures, last run, next run, last error) and totals (runs and
 *   failures are cumulative over every schedule ever made; the schedule count is computed, so it
 *   cannot drift as the original's did on re-registration). `watchers` counts the watcher fibers
 *   alive, as the fibers themselves report it: 0 once no agent outside the registry has a schedule.
 *
 * Telemetry (when `Telemetry` is in the context at `make`; see `events`): `scheduled`,
 * `unscheduled`, `interval_updated`, `delivery_failed`, `agent_ended`. Metrics (tagged
 * `scheduler`): `foundation_scheduler_runs_total` (tag `outcome`: ok | failed),
 * `foundation_scheduler_schedules` (gauge).
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Cron from "effect/Cron"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Equal from "effect/Equal"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { AlreadyExistsError, isFoundationError, NotFoundError, Tagged, ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"
import * as Agent from "./Agent.js"
import * as AgentMonitor from "./AgentMonitor.js"
import * as AgentRegistry from "./AgentRegistry.js"

// ---------------------------------------------------------------------------------------------
// Options and data
// ---------------------------------------------------------------------------------------------

/** When a schedule delivers: exactly one of `every`, `cron`, `schedule`. */
export type Timing =
  | {
    /** Fixed delay: first delivery one interval after the schedule starts, then one interval after each. */
    readonly every: Duration.DurationInput
    readonly cron?: undefined
    readonly schedule?: undefined
  }
  | {
    /** A cron expression (5 fields, or 6 with seconds first) or a parsed `Cron`: delivers at each match. */
    readonly cron: string | Cron.Cron
    /** The time zone of a cron string (an IANA name such as "Europe/Paris") [the process's]. */
    readonly timeZone?: string
    readonly every?: undefined
    readonly schedule?: undefined
  }
  | {
    /** Any schedule: each step's delay precedes a delivery; when it ends, the schedule is removed. */
    readonly schedule: Schedule.Schedule<unknown, unknown>
    readonly every?: undefined
    readonly cron?: undefined
  }

/** Options of `schedule`: the timing, and what to deliver. */
export type ScheduleOptions<D extends Agent.AnyDefinition, K extends keyof Agent.ActionsOf<D> & string> = Timing & {
  readonly action: K
  readonly params: Agent.ParamsOf<D, K>
  /** `cast` (fire and forget) or `call` (wait for the action's result) [cast]. */
  readonly delivery?: "cast" | "call"
  /** Time limit of a `call` delivery [5 s]. */
  readonly timeout?: Duration.DurationInput
  /** Replace a schedule of the same id instead of failing with `AlreadyExistsError` [false]. */
  readonly replace?: boolean
}

/** Options of the service. */
export interface Options {
  /** Used in events and metrics ["scheduler"]. */
  readonly name?: string
}

/** Defaults. */
export const defaults = { name: "scheduler", callTimeout: Duration.seconds(5) } as const

/** An agent, by reference or by id. */
export type AgentKey = string | { readonly id: string }

/** A schedule's timing, as reported. */
export type TimingInfo =
  | { readonly kind: "every"; readonly every: Duration.Duration }
  | { readonly kind: "cron"; readonly cron: Cron.Cron; readonly expression: Option.Option<string> }
  | { readonly kind: "schedule" }

/** A schedule and its stats. */
export interface ScheduleInfo {
  readonly agentId: string
  readonly scheduleId: string
  readonly action: string
  readonly params: unknown
  readonly timing: TimingInfo
  readonly delivery: "cast" | "call"
  /** Epoch milliseconds (Clock). */
  readonly createdAt: number
  /** Deliveries made (timer and `runNow`), failed ones included. */
  readonly runs: number
  /** Deliveries that failed. */
  readonly failures: number
  readonly lastRun: Option.Option<number>
  /** When the timer delivers next (none while it computes it). */
  readonly nextRun: Option.Option<number>
  readonly lastError: Option.Option<unknown>
}

/** Totals and every schedule. */
export interface Stats {
  /** Schedules now. */
  readonly totalSchedules: number
  /** Agents with at least one schedule. */
  readonly activeAgents: number
  /** Deliveries ever made. */
  readonly runs: number
  /** Deliveries ever failed. */
  readonly failures: number
  /** Schedules ended because their agent ended. */
  readonly endedWithAgent: number
  /** Schedules removed because their `schedule` ended. */
  readonly completed: number
  /** Watcher fibers alive (one per agent outside the registry with a schedule; 0 when none: no leak). */
  readonly watchers: number
  readonly schedules: ReadonlyArray<ScheduleInfo>
}

/** A `runNow` delivery failed (the action's failure, a full mailbox, a stopped agent...). */
export class DeliveryFailedError extends Tagged("DeliveryFailedError", {
  captureStack: false,
  category: "transient",
  severity: "medium",
  message: "Scheduled delivery failed"
})<{ readonly agent: string; readonly schedule: string; readonly action: string; readonly error: unknown }> {
  override describe() {
    const error = this.error
    const reason = typeof error === "object" && error !== null && "message" in error ? `: ${String(error.message)}` : ""
    return `Delivery of "${this.action}" to agent "${this.agent}" (schedule "${this.schedule}") failed${reason}`
  }
}

/** Telemetry events of this module. */
export const events = Events.names.scheduler

/** The scheduler service. */
export interface Service {
  readonly name: string
  /**
   * Schedules `action` for `agent` under `scheduleId`. Fails with `ValidationError` (bad options,
   * unknown action, params not matching the action's Schema), `AlreadyExistsError` (the pair is
   * taken and `replace` is not set) or `AgentStoppedError` (the agent is not running, nor
   * registered by the registry: an agent in its `onStart` can schedule itself only when the
   * registry runs it). Scheduling another reference under an id ends the schedules of the one
   * before (ids are unique among running agents: that agent has ended).
   */
  schedule<D extends Agent.AnyDefinition, K extends keyof Agent.ActionsOf<D> & string>(
    agent: Agent.AgentRef<D>,
    scheduleId: string,
    options: ScheduleOptions<D, K>
  ): Effect.Effect<ScheduleInfo, ValidationError | AlreadyExistsError | Agent.AgentStoppedError>
  /** Removes a schedule; `NotFoundError` when there is none. */
  unschedule(agent: AgentKey, scheduleId: string): Effect.Effect<void, NotFoundError>
  /** Removes every schedule of an agent; returns how many there were. */
  unscheduleAgent(agent: AgentKey): Effect.Effect<number>
  /** Gives a schedule a new timing (its stats stay); the next delivery follows the new timing from now. */
  updateInterval(agent: AgentKey, scheduleId: string, timing: Timing): Effect.Effect<ScheduleInfo, ValidationError | NotFoundError>
  /** Delivers once now, leaving the timer as it is; fails with `DeliveryFailedError` when the delivery fails. */
  runNow(agent: AgentKey, scheduleId: string): Effect.Effect<void, NotFoundError | DeliveryFailedError>
  /** One schedule. */
  get(agent: AgentKey, scheduleId: string): Effect.Effect<ScheduleInfo, NotFoundError>
  /** The schedules of an agent; `NotFoundError` when it has none (as the original). */
  list(agent: AgentKey): Effect.Effect<ReadonlyArray<ScheduleInfo>, NotFoundError>
  readonly stats: Effect.Effect<Stats>
}

/** The `Scheduler` service. */
export class Scheduler extends Context.Tag("effect-foundation/Scheduler")<Scheduler, Service>() {}

// ---------------------------------------------------------------------------------------------
// The implementation
// ---------------------------------------------------------------------------------------------

interface ResolvedTiming {
  readonly info: TimingInfo
  readonly schedule: Schedule.Schedule<unknown, unknown>
  /** For events. */
  readonly text: string
}

const resolveTiming = (input: unknown, now: number): Either.Either<ResolvedTiming, ValidationError> =>
  Either.gen(function*() {
    if (typeof input !== "object" || input === null) return yield* Validation.invalid("timing", "must be an object")
    const t = input as { readonly every?: unknown; readonly cron?: unknown; readonly timeZone?: unknown; readonly schedule?: unknown }
    const given = [t.every, t.cron, t.schedule].filter((x) => x !== undefined).length
    if (given !== 1) {
      return yield* Validation.invalid("timing", `exactly one of every, cron, schedule is required, got ${given}`)
    }
    if (t.timeZone !== undefined && (t.cron === undefined || typeof t.cron !== "string")) {
      return yield* Validation.invalid("timeZone", "applies to a cron string only")
    }
    if (t.every !== undefined) {
      const every = yield* Validation.duration("every", t.every)
      return { info: { kind: "every", every }, schedule: Schedule.spaced(every), text: `every ${Duration.format(every)}` }
    }
    if (t.cron !== undefined) {
      let cron: Cron.Cron
      let expression = Option.none<string>()
      if (Cron.isCron(t.cron)) cron = t.cron
      else if (typeof t.cron === "string") {
        if (t.timeZone !== undefined && typeof t.timeZone !== "string") {
          return yield* Validation.invalid("timeZone", "must be a time zone name")
        }
        const parsed = Cron.parse(t.cron, t.timeZone as string | undefined)
        if (Either.isLeft(parsed)) {
          const field = parsed.left.message.includes("time zone") ? "timeZone" : "cron"
          return yield* Validation.invalid(field, `${parsed.left.message}: ${JSON.stringify(parsed.left.input ?? t.cron)}`)
        }
        cron = parsed.right
        expression = Option.some(t.cron)
      } else return yield* Validation.invalid("cron", "must be a cron expression or a Cron")
      // `Cron.next` throws when nothing matches (e.g. February 30th): refuse it here, not in the timer.
      const next = Either.try(() => Cron.next(cron, new Date(now)))
      if (Either.isLeft(next)) return yield* Validation.invalid("cron", "never matches")
      return {
        info: { kind: "cron", cron, expression },
        schedule: Schedule.cron(cron),
        text: `cron ${Option.getOrElse(expression, () => String(cron))}`
      }
    }
    if (!Schedule.isSchedule(t.schedule)) return yield* Validation.invalid("schedule", "must be a Schedule")
    return { info: { kind: "schedule" }, schedule: t.schedule as Schedule.Schedule<unknown, unknown>, text: "schedule" }
  })

/** An agent and its schedules. */
interface Slot {
  readonly agentId: string
  readonly ref: Agent.AnyAgentRef
  readonly schedules: Map<string, Rec>
  /** Its registration, when the registry runs it. */
  watching: AgentMonitor.Watching | undefined
  /** A fiber awaits `ref.ended` (the registry does not run it); `watcher` is that fiber once forked. */
  watched: boolean
  watcher: Fiber.RuntimeFiber<void> | undefined
  ended: boolean
}

/** A schedule: mutable, read and written only inside synchronous steps. */
interface Rec {
  readonly slot: Slot
  readonly scheduleId: string
  readonly action: string
  readonly params: unknown
  readonly delivery: "cast" | "call"
  readonly timeout: Duration.Duration
  readonly createdAt: number
  timing: ResolvedTiming
  runs: number
  failures: number
  lastRun: number | undefined
  nextRun: number | undefined
  lastError: Option.Option<unknown>
  /** Bumped when the timer is replaced: an old timer never delivers. */
  generation: number
  ended: boolean
  fiber: Fiber.RuntimeFiber<void> | undefined
}

const infoOf = (rec: Rec): ScheduleInfo => ({
  agentId: rec.slot.agentId,
  scheduleId: rec.scheduleId,
  action: rec.action,
  params: rec.params,
  timing: rec.timing.info,
  delivery: rec.delivery,
  createdAt: rec.createdAt,
  runs: rec.runs,
  failures: rec.failures,
  lastRun: Option.fromNullable(rec.lastRun),
  nextRun: Option.fromNullable(rec.nextRun),
  lastError: rec.lastError
})

const idOf = (agent: AgentKey): string => typeof agent === "string" ? agent : String(agent?.id)

const isTag = (u: unknown, tag: string): boolean =>
  typeof u === "object" && u !== null && "_tag" in u && (u as { readonly _tag: unknown })._tag === tag

/**
 * Makes a scheduler in the current scope. With an `AgentRegistry` in the context, schedules of the
 * agents it runs end as soon as their registration does.
 */
export const make = (options: Options = {}): Effect.Effect<Service, ValidationError, Scope.Scope> =>
  Effect.gen(function*() {
    if (typeof options !== "object" || options === null) return yield* Validation.invalid("scheduler", "options must be an object")
    const name = yield* Validation.nonEmptyString("scheduler.name", options.name ?? defaults.name)
    const scope = yield* Effect.scope
    const clock = yield* Effect.clock
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const registry = Option.getOrUndefined(yield* Effect.serviceOption(AgentRegistry.AgentRegistry))
    const watcher = registry === undefined ? undefined : yield* AgentMonitor.makeWatcher(registry)
    const lock = yield* Effect.makeSemaphore(1)

    const runsCounter = (outcome: "ok" | "failed") =>
      MetricKit.counter("foundation_scheduler_runs_total", {
        description: "Scheduled deliveries, by outcome",
        tags: { scheduler: name, outcome }
      })
    const counters = { ok: runsCounter("ok"), failed: runsCounter("failed") }
    const schedulesGauge = MetricKit.gauge("foundation_scheduler_schedules", {
      description: "Schedules",
      tags: { scheduler: name }
    })

    const slots = new Map<string, Slot>()
    const totals = { schedules: 0, runs: 0, failures: 0, endedWithAgent: 0, completed: 0, watchers: 0 }
    const sized = () => MetricKit.set(schedulesGauge, totals.schedules)

    const notFound = (agentId: string, scheduleId?: string) =>
      new NotFoundError({
        resource: scheduleId === undefined ? "agent schedules" : "schedule",
        key: scheduleId === undefined ? agentId : `${agentId}/${scheduleId}`
      })

    const recOf = (agent: AgentKey, scheduleId: string): Either.Either<Rec, NotFoundError> => {
      const agentId = idOf(agent)
      const rec = slots.get(agentId)?.schedules.get(scheduleId)
      return rec === undefined ? Either.left(notFound(agentId, scheduleId)) : Either.right(rec)
    }

    /** Ends a schedule's timer (one step); the caller awaits the fiber when it can. */
    const endRec = (rec: Rec): Fiber.RuntimeFiber<void> | undefined => {
      if (rec.ended) return undefined
      rec.ended = true
      rec.nextRun = undefined
      totals.schedules--
      sized()
      return rec.fiber
    }

    /** Stops watching a slot's agent (one step); returns the watcher fiber to interrupt, if any. */
    const unwatch = (slot: Slot): Fiber.RuntimeFiber<void> | undefined => {
      slot.watching?.cancel()
      slot.watching = undefined
      const fiber = slot.watcher
      slot.watched = false
      slot.watcher = undefined
      return fiber
    }

    /**
     * Removes one schedule from its slot (one step), and the slot when it was the last. Returns the
     * fibers to interrupt: the schedule's timer, and the agent's watcher when the slot went.
     */
    const removeRec = (rec: Rec, reason: "explicit" | "completed"): Array<Fiber.RuntimeFiber<void>> => {
      const fibers: Array<Fiber.RuntimeFiber<void>> = []
      const timerFiber = endRec(rec)
      if (timerFiber !== undefined) fibers.push(timerFiber)
      const slot = rec.slot
      if (slot.schedules.get(rec.scheduleId) === rec) slot.schedules.delete(rec.scheduleId)
      if (slot.schedules.size === 0 && slots.get(slot.agentId) === slot) {
        slots.delete(slot.agentId)
        const watcherFiber = unwatch(slot)
        if (watcherFiber !== undefined) fibers.push(watcherFiber)
      }
      if (reason === "completed") totals.completed++
      telemetry?.unsafeEmit(events.unscheduled, { count: 1, runs: rec.runs }, {
        scheduler: name,
        agent_id: slot.agentId,
        schedule_id: rec.scheduleId,
        reason
      })
      return fibers
    }

    /** The agent ended: every schedule of it ends (one step; timers interrupted without waiting). */
    const endSlot = (slot: Slot, reason: string): void => {
      if (slot.ended) return
      slot.ended = true
      if (slots.get(slot.agentId) === slot) slots.delete(slot.agentId)
      unwatch(slot)?.unsafeInterruptAsFork(FiberId.none)
      let n = 0
      for (const rec of slot.schedules.values()) {
        const fiber = endRec(rec)
        n++
        fiber?.unsafeInterruptAsFork(FiberId.none)
      }
      totals.endedWithAgent += n
      telemetry?.unsafeEmit(events.agentEnded, { schedules: n }, { scheduler: name, agent_id: slot.agentId, reason })
    }

    /** One delivery; succeeds with whether the timer goes on (false once the schedule ended). */
    const deliver = (
      rec: Rec,
      trigger: "timer" | "run_now",
      generation: number
    ): Effect.Effect<boolean, DeliveryFailedError> =>
      Effect.suspend(() => {
        if (rec.ended || rec.generation !== generation) return Effect.succeed(false)
        rec.runs++
        totals.runs++
        rec.lastRun = clock.unsafeCurrentTimeMillis()
        const ref = rec.slot.ref
        const sent: Effect.Effect<unknown, unknown> = rec.delivery === "cast"
          ? ref.cast(rec.action, rec.params)
          : ref.call(rec.action, rec.params, { timeout: rec.timeout })
        return Effect.matchCauseEffect(sent, {
          onSuccess: () => {
            MetricKit.bump(counters.ok)
            return Effect.succeed(!rec.ended)
          },
          onFailure: (cause) => {
            const error = Cause.squash(cause)
            rec.failures++
            totals.failures++
            rec.lastError = Option.some(error)
            MetricKit.bump(counters.failed)
            telemetry?.unsafeEmit(events.deliveryFailed, { count: 1, failures: rec.failures }, {
              scheduler: name,
              agent_id: rec.slot.agentId,
              schedule_id: rec.scheduleId,
              action: rec.action,
              trigger,
              error: errorText(error)
            })
            if (isTag(error, "AgentStoppedError")) endSlot(rec.slot, "stopped")
            if (trigger === "run_now") {
              return Effect.fail(
                new DeliveryFailedError({ agent: rec.slot.agentId, schedule: rec.scheduleId, action: rec.action, error })
              )
            }
            return Effect.succeed(!rec.ended)
          }
        })
      })

    type Step = readonly [state: unknown, at: number] | undefined

    /** The schedule's next delivery time from `now` (undefined: the schedule is over). */
    const step = (timing: ResolvedTiming, now: number, state: unknown): Effect.Effect<Step> =>
      Effect.map(timing.schedule.step(now, undefined, state), ([next, _, decision]) =>
        ScheduleDecision.isDone(decision)
          ? undefined
          : [next, Math.max(now, ScheduleIntervals.start(decision.intervals))] as const)

    /** The schedule ended: removed, from its own timer fiber (which is not interrupted, it returns). */
    const completed = (rec: Rec, generation: number): Effect.Effect<void> =>
      Effect.fiberIdWith((self) => {
        if (rec.ended || rec.generation !== generation) return Effect.void
        const others = removeRec(rec, "completed").filter((fiber) => !Equal.equals(fiber.id(), self))
        return others.length === 0 ? Effect.void : Fiber.interruptAll(others)
      })

    /**
     * The watcher of an agent outside the registry: awaits its end, then ends its schedules. It
     * counts itself in `totals.watchers` while it lives (both steps uninterruptible, so the count
     * is exact even when it is interrupted before it starts).
     */
    const watchEnd = (slot: Slot): Effect.Effect<void> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend(() => {
          totals.watchers++
          return Effect.ensuring(
            restore(Effect.zipRight(
              slot.ref.ended,
              Effect.sync(() => {
                if (!slot.watched) return // unwatched meanwhile: its schedules were removed
                // Forgotten first: `endSlot` must not interrupt the fiber doing it.
                slot.watched = false
                slot.watcher = undefined
                endSlot(slot, "stopped")
              })
            )),
            Effect.sync(() => {
              totals.watchers--
            })
          )
        })
      )

    /** The timer: sleep to the next time, deliver, step again. `first` was computed by the caller. */
    const timer = (rec: Rec, generation: number, first: Step): Effect.Effect<void> =>
      Effect.gen(function*() {
        let next = first
        for (;;) {
          if (rec.ended || rec.generation !== generation) return
          if (next === undefined) return yield* completed(rec, generation)
          const [state, at] = next
          rec.nextRun = at
          const now = yield* Effect.clockWith((c) => c.currentTimeMillis)
          if (at > now) yield* Effect.sleep(Duration.millis(at - now))
          else yield* Effect.yieldNow() // a schedule without delay must not starve the others
          const going = yield* Effect.orElseSucceed(deliver(rec, "timer", generation), () => true)
          if (!going) return
          next = yield* step(rec.timing, clock.unsafeCurrentTimeMillis(), state)
        }
      })

    /** Starts (or restarts) a schedule's timer from now. */
    const startTimer = (rec: Rec): Effect.Effect<void> =>
      Effect.gen(function*() {
        const generation = ++rec.generation
        const first = yield* step(rec.timing, clock.unsafeCurrentTimeMillis(), rec.timing.schedule.initial)
        if (rec.ended || rec.generation !== generation) return
        rec.nextRun = first?.[1]
        rec.fiber = yield* Effect.forkIn(timer(rec, generation, first), scope)
      })

    const validateParams = (ref: Agent.AnyAgentRef, action: unknown, params: unknown) =>
      Either.gen(function*() {
        if (typeof action !== "string" || action === "") return yield* Validation.invalid("action", "must be a non-empty string")
        const actions = ref.definition?.actions
        const spec = typeof actions === "object" && actions !== null && Object.hasOwn(actions, action)
          ? actions[action]
          : undefined
        if (spec === undefined) {
          return yield* Validation.invalid("action", `agent "${ref.definition?.name}" has no action "${action}"`)
        }
        const checked = Schema.validateEither(spec.params as Schema.Schema<unknown>, { errors: "all" })(params)
        if (Either.isLeft(checked)) return yield* Either.left(Validation.fromParseError(checked.left, "params"))
        return checked.right
      })

    const schedule: Service["schedule"] = (agent, scheduleId, scheduleOptions) =>
      Effect.gen(function*() {
        const ref = agent as Agent.AnyAgentRef
        if (typeof ref !== "object" || ref === null || typeof ref.id !== "string" || typeof ref.cast !== "function") {
          return yield* Validation.invalid("agent", "must be an agent reference")
        }
        yield* Validation.nonEmptyString("scheduleId", scheduleId)
        if (typeof scheduleOptions !== "object" || scheduleOptions === null) {
          return yield* Validation.invalid("options", "must be an object")
        }
        const o = scheduleOptions as ScheduleOptions<Agent.AnyDefinition, string>
        const params = yield* validateParams(ref, o.action, o.params)
        const delivery = yield* Validation.oneOf("delivery", o.delivery ?? "cast", ["cast", "call"])
        if (o.timeout !== undefined && delivery !== "call") {
          return yield* Validation.invalid("timeout", `applies to delivery "call" only`)
        }
        const timeout = o.timeout === undefined ? defaults.callTimeout : yield* Validation.duration("timeout", o.timeout)
        if (o.replace !== undefined && typeof o.replace !== "boolean") return yield* Validation.invalid("replace", "must be a boolean")
        const timing = yield* resolveTiming(scheduleOptions, clock.unsafeCurrentTimeMillis())

        return yield* lock.withPermits(1)(Effect.gen(function*() {
          const agentId = ref.id
          let slot = slots.get(agentId)
          if (slot !== undefined && slot.ref !== ref) {
            endSlot(slot, "replaced")
            slot = undefined
          }
          const existing = slot?.schedules.get(scheduleId)
          if (existing !== undefined && o.replace !== true) {
            return yield* Effect.fail(new AlreadyExistsError({ resource: "schedule", key: `${agentId}/${scheduleId}` }))
          }
          const target: Slot = slot ??
            { agentId, ref, schedules: new Map(), watching: undefined, watched: false, watcher: undefined, ended: false }
          // Watch the agent's current registration (again: a restarted agent is a new one).
          let registered = false
          if (watcher !== undefined) {
            const found = yield* watcher.watch(agentId, (reason) => endSlot(target, reason))
            if (Option.isSome(found)) {
              const entryRef = found.value.entry.ref
              if (Option.isSome(entryRef) && entryRef.value === ref) {
                registered = true
                const previous = target.watching
                target.watching = found.value
                previous?.cancel()
              } else found.value.cancel()
            }
          }
          if (!registered && !(yield* ref.running)) {
            return yield* Effect.fail(new Agent.AgentStoppedError({ agent: agentId }))
          }
          if (target.ended) return yield* Effect.fail(new Agent.AgentStoppedError({ agent: agentId }))
          if (existing !== undefined) {
            const old = endRec(existing)
            target.schedules.delete(scheduleId)
            if (old !== undefined) yield* Fiber.interrupt(old)
          }
          const rec: Rec = {
            slot: target,
            scheduleId,
            action: o.action,
            params,
            delivery,
            timeout,
            createdAt: clock.unsafeCurrentTimeMillis(),
            timing,
            runs: 0,
            failures: 0,
            lastRun: undefined,
            nextRun: undefined,
            lastError: Option.none(),
            generation: 0,
            ended: false,
            fiber: undefined
          }
          target.schedules.set(scheduleId, rec)
          if (slot === undefined) slots.set(agentId, target)
          totals.schedules++
          sized()
          // An agent the registry does not run: one fiber awaits its end (at once if it has ended).
          if (!registered && !target.watched && target.watching === undefined) {
            target.watched = true
            const fiber = yield* Effect.forkIn(watchEnd(target), scope)
            if (target.watched) target.watcher = fiber
          }
          yield* startTimer(rec)
          telemetry?.unsafeEmit(events.scheduled, { count: 1 }, {
            scheduler: name,
            agent_id: agentId,
            schedule_id: scheduleId,
            action: o.action,
            timing: timing.text,
            replaced: existing !== undefined
          })
          return infoOf(rec)
        }))
      })

    const unschedule: Service["unschedule"] = (agent, scheduleId) =>
      lock.withPermits(1)(Effect.gen(function*() {
        const rec = yield* recOf(agent, scheduleId)
        yield* Fiber.interruptAll(removeRec(rec, "explicit"))
      }))

    const unscheduleAgent: Service["unscheduleAgent"] = (agent) =>
      lock.withPermits(1)(Effect.gen(function*() {
        const slot = slots.get(idOf(agent))
        if (slot === undefined) return 0
        const recs = Array.from(slot.schedules.values())
        const fibers = recs.flatMap((rec) => removeRec(rec, "explicit"))
        yield* Fiber.interruptAll(fibers)
        return recs.length
      }))

    const updateInterval: Service["updateInterval"] = (agent, scheduleId, timingInput) =>
      Effect.gen(function*() {
        const timing = yield* resolveTiming(timingInput, clock.unsafeCurrentTimeMillis())
        return yield* lock.withPermits(1)(Effect.gen(function*() {
          const rec = yield* recOf(agent, scheduleId)
          // The old timer stops (and can no longer deliver: its generation is over) before the new one starts.
          rec.generation++
          rec.nextRun = undefined
          if (rec.fiber !== undefined) yield* Fiber.interrupt(rec.fiber)
          rec.timing = timing
          yield* startTimer(rec)
          telemetry?.unsafeEmit(events.intervalUpdated, { count: 1 }, {
            scheduler: name,
            agent_id: rec.slot.agentId,
            schedule_id: scheduleId,
            timing: timing.text
          })
          return infoOf(rec)
        }))
      })

    const runNow: Service["runNow"] = (agent, scheduleId) =>
      Effect.flatMap(recOf(agent, scheduleId), (rec) => Effect.asVoid(deliver(rec, "run_now", rec.generation)))

    const get: Service["get"] = (agent, scheduleId) => Effect.map(recOf(agent, scheduleId), infoOf)

    const list: Service["list"] = (agent) =>
      Effect.suspend(() => {
        const agentId = idOf(agent)
        const slot = slots.get(agentId)
        return slot === undefined || slot.schedules.size === 0
          ? Effect.fail(notFound(agentId))
          : Effect.succeed(Array.from(slot.schedules.values(), infoOf))
      })

    const stats: Service["stats"] = Effect.sync(() => {
      const schedules: Array<ScheduleInfo> = []
      for (const slot of slots.values()) for (const rec of slot.schedules.values()) schedules.push(infoOf(rec))
      return {
        totalSchedules: totals.schedules,
        activeAgents: slots.size,
        runs: totals.runs,
        failures: totals.failures,
        endedWithAgent: totals.endedWithAgent,
        completed: totals.completed,
        watchers: totals.watchers,
        schedules
      }
    })

    return { name, schedule, unschedule, unscheduleAgent, updateInterval, runNow, get, list, stats }
  })

/** The scheduler as a layer (uses the `AgentRegistry` of the context when there is one). */
export const layer = (options: Options = {}): Layer.Layer<Scheduler, ValidationError> =>
  Layer.scoped(Scheduler, make(options))

/** A short text for an error, for events: a library error's message, another tagged error's tag, an Error's message. */
const errorText = (u: unknown): string => {
  if (isFoundationError(u)) return u.message
  if (typeof u === "object" && u !== null && "_tag" in u && typeof u._tag === "string") return u._tag
  if (u instanceof Error) return u.message
  return String(u)
}

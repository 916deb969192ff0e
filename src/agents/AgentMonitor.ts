/**
 * AgentMonitor: a health monitor per agent (the original's `JidoFoundation.AgentMonitor` and
 * `MonitorSupervisor`, merged with `JidoSystem.HealthMonitor`). `start(id)` watches one agent of
 * the `AgentRegistry`: it checks the agent's health at once, then every `interval` (30 s), and
 * writes the result into the registry (`setHealth`, only when it changed).
 *
 * Guarantees:
 * - A check is a user effect (`check`, default `checks.running`) limited to `timeout` (5 s). A
 *   check that times out (or fails with a `TimeoutError`) makes the agent `unhealthy` at once; a
 *   failing check (a failure or a defect, or a value that is not a health) makes it `degraded`,
 *   and `unhealthy` from the `unhealthyAfter`-th consecutive failure (3); a successful check sets
 *   the health it returned and resets the count. Checks of one agent never overlap (`checkNow`
 *   waits for a running check and does not move the next periodic one).
 * - A monitor ends with its agent's registration: the moment the registry removes the entry
 *   (the agent stopped, crashed, was interrupted or was unregistered) the monitor records the agent
 *   as `down` in its own status and its fiber is interrupted, without waiting for the next check
 *   (the original's monitors outlived their agents). It never writes to the registry after that;
 *   a write that meets a removed entry fails `NotFound` and ends the monitor (the registry never
 *   registers on `setHealth`, so nothing is resurrected). The original's final "unhealthy" write
 *   on the agent's death, which raced the registry's own removal, is gone.
 * - One subscription to the registry's `changes` per monitor service (taken on the first
 *   `start`), read by one fiber; every monitor fiber lives in the service's scope, so closing
 *   it stops everything. Ended monitors keep their final status (at most `keepEnded`, oldest
 *   dropped), so `status(id)` tells a dead agent from an unknown one.
 * - `start` of an agent already monitored returns its monitor (idempotent, as the original) and
 *   rebinds it to the agent's current registration. A supervised agent's restart is a new
 *   registration: monitor each incarnation (e.g. `start(ctx.id)` in its `onStart`).
 *
 * Telemetry (when `Telemetry` is in the context at `make`; see `events`): `started`,
 * `health_changed`, `check_failed`, `agent_down`, `stopped`. Metrics (tagged `monitor`):
 * `foundation_agent_monitor_checks_total` (tag `outcome`: ok | failed | timeout),
 * `foundation_agent_monitor_monitors` (gauge of running monitors).
 *
 * `makeWatcher` is the mechanism monitors (and the `Scheduler`) use to learn that a registration
 * ended: one fiber reading `changes`, matching removals to the exact registration watched.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { isFoundationError, NotFoundError, TimeoutError, ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"
import * as AgentRegistry from "./AgentRegistry.js"

// ---------------------------------------------------------------------------------------------
// Watching registrations
// ---------------------------------------------------------------------------------------------

/** How a watched registration ended: removed (`unregister`, or its agent stopped) or down. */
export type EndReason = "unregistered" | AgentRegistry.DownReason

/** A watch on one registration. */
export interface Watching {
  /** The registration as found when the watch began. */
  readonly entry: AgentRegistry.Entry
  /** Stops watching (synchronous; nothing happens once the watch ended). */
  readonly cancel: () => void
}

/** Learns, as soon as the registry publishes it, that a registration ended. */
export interface Watcher {
  /**
   * Watches the current registration of `id` (`None` when `id` is not registered). `onEnd` is
   * called once, inside a synchronous step of the watcher's fiber, when that registration leaves
   * the registry; a later registration under the same id is another one and does not count.
   * Keep `onEnd` short: it must not throw.
   */
  watch(id: string, onEnd: (reason: EndReason) => void): Effect.Effect<Option.Option<Watching>>
}

interface Watch {
  readonly id: string
  /** The entry of the watched registration, as of the changes read so far. */
  current: AgentRegistry.Entry
  readonly onEnd: (reason: EndReason) => void
  done: boolean
}

/**
 * A watcher over `registry`, living in the current scope. It subscribes to `changes` on its
 * first `watch` (so a registry nobody watches pays nothing) and reads them in one fiber.
 *
 * Matching is by registration, not by id: the watcher follows the watched entry through its
 * `Updated` changes, so a removal of an earlier registration of the same id that is still in
 * the stream when a new registration is watched (a supervised agent restarted in the same
 * millisecond) does not end the new one. When it cannot tell (a change it never saw), it asks
 * the registry, and ends the watch only if the id is not registered any more.
 */
export const makeWatcher = (registry: AgentRegistry.Registry): Effect.Effect<Watcher, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const watches = new Map<string, Set<Watch>>()
    /** Changes handled so far: a `watch` retries when the fiber handled one during its lookup. */
    let handled = 0

    const end = (w: Watch, reason: EndReason): void => {
      if (w.done) return
      w.done = true
      const set = watches.get(w.id)
      if (set !== undefined) {
        set.delete(w)
        if (set.size === 0) watches.delete(w.id)
      }
      w.onEnd(reason)
    }

    const handle = (change: AgentRegistry.Change): Effect.Effect<void> => {
      handled++
      switch (change._tag) {
        case "Registered":
          return Effect.void
        case "Updated": {
          const set = watches.get(change.entry.id)
          if (set !== undefined) {
            for (const w of set) if (w.current === change.previous) w.current = change.entry
          }
          return Effect.void
        }
        case "Unregistered":
        case "Down": {
          const id = change.entry.id
          const set = watches.get(id)
          if (set === undefined) return Effect.void
          const reason: EndReason = change._tag === "Down" ? change.reason : "unregistered"
          const unsure: Array<Watch> = []
          for (const w of Array.from(set)) {
            if (w.current === change.entry) end(w, reason)
            else unsure.push(w)
          }
          if (unsure.length === 0) return Effect.void
          // A removal of another registration of this id, or of this one through changes we did
          // not see: the registry decides. Only the watches that existed before the lookup are
          // judged (a watch begun since saw the registry after this removal).
          return Effect.map(registry.lookup(id), (found) => {
            handled++
            if (Option.isNone(found)) for (const w of unsure) end(w, reason)
          })
        }
      }
    }

    const subscribe = Effect.gen(function*() {
      const changes = yield* Scope.extend(registry.changes, scope)
      // (Forked from an uninterruptible region: the reader itself must stay interruptible.)
      yield* Effect.forkIn(Effect.interruptible(Stream.runForEach(changes, handle)), scope)
    })
    // Quick and never waiting: uninterruptible, so that an interrupted first caller cannot leave
    // an interruption cached for every later one.
    const subscribed = yield* Effect.cached(Effect.uninterruptible(subscribe))

    const watch: Watcher["watch"] = (id, onEnd) =>
      Effect.gen(function*() {
        yield* subscribed
        for (;;) {
          const before = handled
          const found = yield* registry.lookup(id)
          if (Option.isNone(found)) return Option.none()
          // The lookup and the insertion are one step unless the fiber handled a change in
          // between; then look again (the entry we hold may be gone already).
          if (handled !== before) continue
          const w: Watch = { id, current: found.value, onEnd, done: false }
          let set = watches.get(id)
          if (set === undefined) watches.set(id, set = new Set())
          set.add(w)
          return Option.some<Watching>({
            entry: found.value,
            cancel: () => {
              if (w.done) return
              w.done = true
              const s = watches.get(id)
              if (s !== undefined) {
                s.delete(w)
                if (s.size === 0) watches.delete(id)
              }
            }
          })
        }
      })

    return { watch }
  })

// ---------------------------------------------------------------------------------------------
// Options and data
// ---------------------------------------------------------------------------------------------

/** An agent's health. */
export type Health = AgentRegistry.Health

/**
 * A health check: gets the agent's current registry entry (with its `ref` when the registry runs
 * the agent) and succeeds with the agent's health. Failing, dying, returning something that is
 * not a health or exceeding the timeout are failed checks (see the module doc).
 */
export type Check = (entry: AgentRegistry.Entry) => Effect.Effect<Health, unknown>

/** Options of one monitor (`start`), defaulting to the service's. */
export interface MonitorOptions {
  /** Time between the end of a check and the next one [30 s]. */
  readonly interval?: Duration.DurationInput
  /** Time limit of one check [5 s]. */
  readonly timeout?: Duration.DurationInput
  /** Consecutive failed checks (not timeouts) before `unhealthy`; fewer: `degraded` (an integer ≥ 1) [3]. */
  readonly unhealthyAfter?: number
  /** [`checks.running`] */
  readonly check?: Check
}

/** Options of the service. */
export interface Options extends MonitorOptions {
  /** Used in events and metrics ["agent_monitor"]. */
  readonly name?: string
  /** Final statuses of ended monitors kept for `status` (an integer ≥ 0) [1000]. */
  readonly keepEnded?: number
}

/** Defaults (the original's numbers). */
export const defaults = {
  name: "agent_monitor",
  interval: Duration.seconds(30),
  timeout: Duration.seconds(5),
  unhealthyAfter: 3,
  keepEnded: 1000
} as const

/** How a check went. */
export type CheckOutcome = "ok" | "failed" | "timeout"

/** A monitor's view of its agent. */
export interface Status {
  readonly id: string
  /** `monitoring` while it runs; `down` once the agent's registration ended; `stopped` by `stop`. */
  readonly state: "monitoring" | "down" | "stopped"
  /** The health of the last check (none before the first). */
  readonly health: Option.Option<Health>
  readonly checks: number
  readonly consecutiveFailures: number
  /** Epoch milliseconds (Clock) of the last check's end. */
  readonly lastCheckAt: Option.Option<number>
  readonly lastOutcome: Option.Option<CheckOutcome>
  /** What the last failed check failed with (the `TimeoutError` for a timeout). */
  readonly lastError: Option.Option<unknown>
  readonly startedAt: number
  readonly endedAt: Option.Option<number>
  /** Why the agent is down. */
  readonly downReason: Option.Option<EndReason>
  readonly interval: Duration.Duration
  readonly timeout: Duration.Duration
}

/** Totals of the service. */
export interface Stats {
  /** Running monitors. */
  readonly active: number
  /** Ended monitors whose status is kept. */
  readonly ended: number
  /** Monitor fibers alive (0 once every monitor ended: no leak). */
  readonly fibers: number
  readonly checks: number
  readonly failures: number
  readonly timeouts: number
}

/** Telemetry events of this module. */
export const events = Events.names.agentMonitor

/** The monitor service. */
export interface Service {
  readonly name: string
  /**
   * Monitors the registered agent `id` (first check at once). Fails with `NotFoundError` when
   * `id` is not registered, `ValidationError` for bad options. Already monitored: returns its
   * status (its options stay).
   */
  start(id: string, options?: MonitorOptions): Effect.Effect<Status, ValidationError | NotFoundError>
  /** Stops monitoring `id` (its status is dropped); `NotFoundError` when not monitored. */
  stop(id: string): Effect.Effect<void, NotFoundError>
  /** The status of a running or ended monitor; `NotFoundError` when `id` was never monitored (or forgotten). */
  status(id: string): Effect.Effect<Status, NotFoundError>
  /** Checks now (after a check in progress), without moving the periodic ones; `NotFoundError` when not running. */
  checkNow(id: string): Effect.Effect<Status, NotFoundError>
  /** Checks every running monitor now (16 at a time). */
  readonly checkAll: Effect.Effect<ReadonlyArray<Status>>
  /** The ids monitored now. */
  readonly monitored: Effect.Effect<ReadonlyArray<string>>
  readonly stats: Effect.Effect<Stats>
}

/** The `AgentMonitor` service. */
export class AgentMonitor extends Context.Tag("effect-foundation/AgentMonitor")<AgentMonitor, Service>() {}

/** Ready-made checks. */
export const checks = {
  /**
   * The default (the original's): `healthy` while the agent runs, `unhealthy` when not. An entry
   * without a reference (registered by `register`) keeps the health it has.
   */
  running: ((entry) =>
    Option.match(entry.ref, {
      onNone: () => Effect.succeed(entry.metadata.health),
      onSome: (ref) => Effect.map(ref.running, (running): Health => running ? "healthy" : "unhealthy")
    })) as Check,
  /**
   * Calls an action of the agent: `healthy` when it succeeds, or the health it returns when it
   * returns one (`"healthy" | "degraded" | "unhealthy"`). An entry without a reference fails the
   * check.
   */
  call: (action: string, params: unknown = {}): Check => (entry) =>
    Option.match(entry.ref, {
      onNone: () => Effect.fail(new NotFoundError({ resource: "agent reference", key: entry.id })),
      onSome: (ref) =>
        Effect.map(
          ref.call(action, params),
          (result): Health => isHealth(result) ? result : "healthy"
        )
    })
}

const isHealth = (u: unknown): u is Health => u === "healthy" || u === "degraded" || u === "unhealthy"

// ---------------------------------------------------------------------------------------------
// The implementation
// ---------------------------------------------------------------------------------------------

interface Resolved {
  readonly interval: Duration.Duration
  readonly timeout: Duration.Duration
  readonly unhealthyAfter: number
  readonly check: Check
}

const resolve = (
  options: unknown,
  base: Resolved,
  prefix: string
): Either.Either<Resolved, ValidationError> =>
  Either.gen(function*() {
    if (options === undefined) return base
    if (typeof options !== "object" || options === null) {
      return yield* Validation.invalid(prefix === "" ? "options" : prefix, "must be an object")
    }
    const o = options as MonitorOptions
    const field = (name: string) => prefix === "" ? name : `${prefix}.${name}`
    const interval = o.interval === undefined ? base.interval : yield* Validation.duration(field("interval"), o.interval)
    const timeout = o.timeout === undefined ? base.timeout : yield* Validation.duration(field("timeout"), o.timeout)
    const unhealthyAfter = o.unhealthyAfter === undefined
      ? base.unhealthyAfter
      : yield* Validation.positiveInt(field("unhealthyAfter"), o.unhealthyAfter)
    if (o.check !== undefined && typeof o.check !== "function") {
      return yield* Validation.invalid(field("check"), "must be a function (entry) => Effect<Health>")
    }
    return { interval, timeout, unhealthyAfter, check: o.check ?? base.check }
  })

/** One monitor: mutable, read and written only inside synchronous steps. */
interface Rec extends Resolved {
  readonly id: string
  /** Serializes the checks of this monitor (periodic and `checkNow`). */
  readonly lock: Effect.Semaphore
  state: Status["state"]
  health: Health | undefined
  checks: number
  failures: number
  lastCheckAt: number | undefined
  lastOutcome: CheckOutcome | undefined
  lastError: Option.Option<unknown>
  readonly startedAt: number
  endedAt: number | undefined
  downReason: EndReason | undefined
  watching: Watching | undefined
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
}

const statusOf = (rec: Rec): Status => ({
  id: rec.id,
  state: rec.state,
  health: Option.fromNullable(rec.health),
  checks: rec.checks,
  consecutiveFailures: rec.failures,
  lastCheckAt: Option.fromNullable(rec.lastCheckAt),
  lastOutcome: Option.fromNullable(rec.lastOutcome),
  lastError: rec.lastError,
  startedAt: rec.startedAt,
  endedAt: Option.fromNullable(rec.endedAt),
  downReason: Option.fromNullable(rec.downReason),
  interval: rec.interval,
  timeout: rec.timeout
})

type Outcome =
  | { readonly _tag: "ok"; readonly health: Health }
  | { readonly _tag: "failed"; readonly error: unknown }
  | { readonly _tag: "timeout"; readonly error: unknown }

/** Makes a monitor service in the current scope, over the `AgentRegistry` of the context. */
export const make = (
  options: Options = {}
): Effect.Effect<Service, ValidationError, Scope.Scope | AgentRegistry.AgentRegistry> =>
  Effect.gen(function*() {
    if (typeof options !== "object" || options === null) return yield* Validation.invalid("agentMonitor", "options must be an object")
    const name = yield* Validation.nonEmptyString("agentMonitor.name", options.name ?? defaults.name)
    const keepEnded = yield* Validation.nonNegativeInt("agentMonitor.keepEnded", options.keepEnded ?? defaults.keepEnded)
    const base = yield* resolve(options, {
      interval: defaults.interval,
      timeout: defaults.timeout,
      unhealthyAfter: defaults.unhealthyAfter,
      check: checks.running
    }, "agentMonitor")
    const registry = yield* AgentRegistry.AgentRegistry
    const scope = yield* Effect.scope
    const clock = yield* Effect.clock
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const watcher = yield* makeWatcher(registry)
    const lock = yield* Effect.makeSemaphore(1)

    const tags = { monitor: name }
    const outcomeCounter = (outcome: CheckOutcome) =>
      MetricKit.counter("foundation_agent_monitor_checks_total", {
        description: "Health checks, by outcome",
        tags: { monitor: name, outcome }
      })
    const counters = { ok: outcomeCounter("ok"), failed: outcomeCounter("failed"), timeout: outcomeCounter("timeout") }
    const monitorsGauge = MetricKit.gauge("foundation_agent_monitor_monitors", { description: "Running monitors", tags })

    const active = new Map<string, Rec>()
    /** Ended monitors (down), oldest first. */
    const ended = new Map<string, Rec>()
    const totals = { checks: 0, failures: 0, timeouts: 0, fibers: 0 }

    const sized = () => MetricKit.set(monitorsGauge, active.size)

    /** The agent's registration ended (or was found gone): record it, stop the fiber. One step. */
    const down = (rec: Rec, reason: EndReason): void => {
      if (rec.state !== "monitoring") return
      rec.state = "down"
      rec.endedAt = clock.unsafeCurrentTimeMillis()
      rec.downReason = reason
      rec.watching?.cancel()
      if (active.get(rec.id) === rec) {
        active.delete(rec.id)
        sized()
        if (keepEnded > 0) {
          ended.delete(rec.id)
          ended.set(rec.id, rec)
          if (ended.size > keepEnded) ended.delete(ended.keys().next().value!)
        }
        telemetry?.unsafeEmit(events.agentDown, { count: 1, checks: rec.checks }, { monitor: name, agent_id: rec.id, reason })
      }
      // Interrupts without waiting: this may run in the watcher's fiber or in the monitor's own.
      rec.fiber?.unsafeInterruptAsFork(FiberId.none)
    }

    const runCheck = (rec: Rec, entry: AgentRegistry.Entry): Effect.Effect<Outcome> =>
      Effect.suspend(() => rec.check(entry)).pipe(
        Effect.exit,
        Effect.timeoutTo({ duration: rec.timeout, onTimeout: Option.none, onSuccess: Option.some }),
        Effect.map((completed): Outcome => {
          if (Option.isNone(completed)) {
            return {
              _tag: "timeout",
              error: new TimeoutError({ timeout: rec.timeout, label: `Health check of agent "${rec.id}"` })
            }
          }
          const result = completed.value
          if (Exit.isSuccess(result)) {
            return isHealth(result.value)
              ? { _tag: "ok", health: result.value }
              : {
                _tag: "failed",
                error: new ValidationError({
                  field: "check",
                  reason: `must succeed with "healthy", "degraded" or "unhealthy", got ${String(result.value)}`
                })
              }
          }
          const error = Cause.squash(result.cause)
          return isTimeoutError(error) ? { _tag: "timeout", error } : { _tag: "failed", error }
        })
      )

    /** Applies a check's outcome to the monitor (one step); returns the health to write. */
    const apply = (rec: Rec, outcome: Outcome): Health => {
      const previous = rec.health
      let health: Health
      rec.checks++
      totals.checks++
      rec.lastCheckAt = clock.unsafeCurrentTimeMillis()
      rec.lastOutcome = outcome._tag
      if (outcome._tag === "ok") {
        rec.failures = 0
        rec.lastError = Option.none()
        health = outcome.health
        MetricKit.bump(counters.ok)
      } else {
        rec.failures++
        rec.lastError = Option.some(outcome.error)
        if (outcome._tag === "timeout") {
          totals.timeouts++
          MetricKit.bump(counters.timeout)
          health = "unhealthy"
        } else {
          totals.failures++
          MetricKit.bump(counters.failed)
          health = rec.failures >= rec.unhealthyAfter ? "unhealthy" : "degraded"
        }
        telemetry?.unsafeEmit(events.checkFailed, { count: 1, consecutive_failures: rec.failures }, {
          monitor: name,
          agent_id: rec.id,
          reason: outcome._tag === "timeout" ? "timeout" : "failure",
          error: errorText(outcome.error)
        })
      }
      rec.health = health
      if (previous !== health) {
        telemetry?.unsafeEmit(events.healthChanged, { count: 1 }, {
          monitor: name,
          agent_id: rec.id,
          from: previous ?? "unknown",
          to: health
        })
      }
      return health
    }

    /** One check and its write; false when the monitor is over. */
    const checkOnce = (rec: Rec): Effect.Effect<boolean> =>
      rec.lock.withPermits(1)(Effect.gen(function*() {
        if (rec.state !== "monitoring") return false
        const found = yield* registry.lookup(rec.id)
        if (Option.isNone(found)) {
          down(rec, "unregistered")
          return false
        }
        const outcome = yield* runCheck(rec, found.value)
        if (rec.state !== "monitoring") return false
        const health = apply(rec, outcome)
        const current = yield* registry.lookup(rec.id)
        if (rec.state !== "monitoring") return false
        if (Option.isNone(current)) {
          down(rec, "unregistered")
          return false
        }
        if (current.value.metadata.health !== health) {
          const written = yield* Effect.either(registry.setHealth(rec.id, health))
          // Removed meanwhile: `setHealth` never registers, so nothing comes back; the monitor ends.
          if (Either.isLeft(written) && written.left._tag === "NotFoundError") {
            down(rec, "unregistered")
            return false
          }
        }
        return rec.state === "monitoring"
      }))

    const loop = (rec: Rec): Effect.Effect<void> =>
      Effect.repeat(checkOnce(rec), { schedule: Schedule.spaced(rec.interval), while: (going) => going }).pipe(
        Effect.asVoid,
        Effect.ensuring(Effect.sync(() => {
          totals.fibers--
        }))
      )

    const start: Service["start"] = (id, monitorOptions) =>
      Effect.gen(function*() {
        yield* Validation.nonEmptyString("id", id)
        const resolved = yield* resolve(monitorOptions, base, "")
        return yield* lock.withPermits(1)(Effect.gen(function*() {
          const existing = active.get(id)
          const rec: Rec = existing ?? {
            id,
            ...resolved,
            lock: Effect.unsafeMakeSemaphore(1),
            state: "monitoring",
            health: undefined,
            checks: 0,
            failures: 0,
            lastCheckAt: undefined,
            lastOutcome: undefined,
            lastError: Option.none(),
            startedAt: clock.unsafeCurrentTimeMillis(),
            endedAt: undefined,
            downReason: undefined,
            watching: undefined,
            fiber: undefined
          }
          const watching = yield* watcher.watch(id, (reason) => down(rec, reason))
          if (Option.isNone(watching) || rec.state !== "monitoring") {
            if (Option.isSome(watching)) watching.value.cancel()
            if (existing !== undefined) down(existing, "unregistered")
            return yield* Effect.fail(new NotFoundError({ resource: "agent", key: id }))
          }
          // Rebinds a running monitor to the current registration (see the module doc).
          const previous = rec.watching
          rec.watching = watching.value
          previous?.cancel()
          if (existing !== undefined) return statusOf(existing)
          active.set(id, rec)
          ended.delete(id)
          sized()
          totals.fibers++
          rec.fiber = yield* Effect.forkIn(loop(rec), scope)
          telemetry?.unsafeEmit(events.started, {
            interval_ms: Duration.toMillis(rec.interval),
            timeout_ms: Duration.toMillis(rec.timeout)
          }, { monitor: name, agent_id: id })
          return statusOf(rec)
        }))
      })

    const notMonitored = (id: string) => new NotFoundError({ resource: "agent monitor", key: String(id) })

    const stop: Service["stop"] = (id) =>
      lock.withPermits(1)(Effect.suspend(() => {
        const rec = active.get(id)
        if (rec === undefined) return Effect.fail(notMonitored(id))
        rec.state = "stopped"
        rec.endedAt = clock.unsafeCurrentTimeMillis()
        rec.watching?.cancel()
        active.delete(id)
        sized()
        telemetry?.unsafeEmit(events.stopped, { count: 1, checks: rec.checks }, { monitor: name, agent_id: id })
        return rec.fiber === undefined ? Effect.void : Effect.asVoid(Fiber.interrupt(rec.fiber))
      }))

    const status: Service["status"] = (id) =>
      Effect.suspend(() => {
        const rec = active.get(id) ?? ended.get(id)
        return rec === undefined ? Effect.fail(notMonitored(id)) : Effect.succeed(statusOf(rec))
      })

    const checkNow: Service["checkNow"] = (id) =>
      Effect.suspend(() => {
        const rec = active.get(id)
        if (rec === undefined) return Effect.fail(notMonitored(id))
        return Effect.map(checkOnce(rec), () => statusOf(rec))
      })

    const checkAll: Service["checkAll"] = Effect.suspend(() =>
      Effect.forEach(Array.from(active.values()), (rec) => Effect.map(checkOnce(rec), () => statusOf(rec)), {
        concurrency: 16
      })
    )

    return {
      name,
      start,
      stop,
      status,
      checkNow,
      checkAll,
      monitored: Effect.sync(() => Array.from(active.keys())),
      stats: Effect.sync((): Stats => ({
        active: active.size,
        ended: ended.size,
        fibers: totals.fibers,
        checks: totals.checks,
        failures: totals.failures,
        timeouts: totals.timeouts
      }))
    }
  })

/** The monitor service as a layer (needs an `AgentRegistry`). */
export const layer = (options: Options = {}): Layer.Layer<AgentMonitor, ValidationError, AgentRegistry.AgentRegistry> =>
  Layer.scoped(AgentMonitor, make(options))

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const isTimeoutError = (u: unknown): boolean =>
  typeof u === "object" && u !== null && "_tag" in u && (u as { readonly _tag: unknown })._tag === "TimeoutError"

/** A short text for an error, for events: a library error's message, another tagged error's tag, an Error's message. */
const errorText = (u: unknown): string => {
  if (isFoundationError(u)) return u.message
  if (typeof u === "object" && u !== null && "_tag" in u && typeof u._tag === "string") return u._tag
  if (u instanceof Error) return u.message
  return String(u)
}

/**
 * HealthChecker: named health checks, run periodically and on demand, each behind its own circuit
 * breaker, aggregated into one report (the original's `ServiceIntegration.HealthChecker`, with its
 * breaker able to close again and its per-check options honoured).
 *
 * A check is an effect of yours, `Effect<Health | void, E, R>`: `void` or `"healthy"` is healthy,
 * `"degraded"` / `"unhealthy"` (or `{ status, details }`) say so; a failure, a defect or a run
 * longer than `timeout` (default 5 s, the check is interrupted) is unhealthy, with the error kept
 * as `lastError`. `register` captures the caller's context, so a check may need services (the
 * built-in `checks.*` need the service they look at).
 *
 * Guarantees:
 * - Every check runs in a fiber of the checker's scope: at once when registered, then every
 *   `interval` (default 60 s, fixed delay after each run; a `Schedule`, so `TestClock` drives it).
 *   `unregister` and closing the scope stop it. A check that fails, dies or hangs never harms the
 *   checker or the other checks (the original's crashing check killed the checker).
 * - Runs of one check never overlap: `check(name)` waits for a periodic run in progress, then runs
 *   again, so a result is always the latest. `checkAll` runs every check concurrently.
 * - The breaker (`CircuitBreaker`, consecutive strategy): after `failureThreshold` (3) failed runs
 *   in a row (failure, defect, timeout, or an `unhealthy` result) it opens; while open, runs are
 *   not made: the check reads `unhealthy` with `breaker: "open"` (its `lastError` and
 *   `consecutiveFailures` are those of the last real run). The breaker stays open for one
 *   `interval`, so the next periodic run is the half-open trial: a healthy or degraded result
 *   closes it (the original's breaker never closed), a failed one opens it for another interval.
 *   `circuitBreaker: false` runs the check every time (`breaker: "disabled"`).
 * - Aggregation (`aggregate`): any unhealthy → unhealthy; else any degraded → degraded; else
 *   healthy (no checks: healthy). A non-critical check (`critical: false`) counts as at most
 *   degraded; a check whose first run has not finished (`pending`) counts as degraded.
 * - Options are validated (`ValidationError` naming the field); a name in use fails with
 *   `AlreadyExistsError`, an unknown one with `NotFoundError`.
 *
 * Built-in checks (`checks`), each reading a real status API: `circuitBreakers`, `rateLimiters`,
 * `connectionManager`, `resourceManager`, `taskPools`, `caches`, `eventBus`, `agentRegistry`,
 * `repositoryStore`, `agentMonitor`, `scheduler`, `locks`, `barriers`, `consensus`,
 * `commandRunner`, `telemetry` (the rules of each are in its doc). Those reading cumulative
 * counters report what happened since the previous run of the same check. `Sampler` and
 * `PerformanceMonitor` have none: they have no failure state (a sampler's drops are its purpose;
 * the monitor's error counts are the measured operations', not its own).
 *
 * Metrics (tagged `checker`, `check`): gauge `foundation_health_check_status` (0 healthy,
 * 1 degraded, 2 unhealthy), counter `foundation_health_checks_total` (tag `outcome`: healthy |
 * degraded | unhealthy | rejected). Telemetry (when `Telemetry` is in the context at `make`): see
 * `events`.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberMap from "effect/FiberMap"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Schema from "effect/Schema"
import * as Events from "../observability/Events.js"
import * as AgentMonitor from "../agents/AgentMonitor.js"
import * as AgentRegistry from "../agents/AgentRegistry.js"
import * as Barrier from "../agents/coordination/Barrier.js"
import * as Consensus from "../agents/coordination/Consensus.js"
import * as Lock from "../agents/coordination/Lock.js"
import * as Scheduler from "../agents/Scheduler.js"
import * as Repository from "../data/Repository.js"
import {
  AlreadyExistsError,
  CircuitOpenError,
  InternalError,
  NotFoundError,
  TimeoutError,
  ValidationError
} from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Cache from "../infra/Cache.js"
import * as CommandRunner from "../infra/CommandRunner.js"
import * as ConnectionManager from "../infra/ConnectionManager.js"
import * as ResourceManager from "../infra/ResourceManager.js"
import * as TaskPools from "../infra/TaskPools.js"
import * as EventBus from "../observability/EventBus.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"
import * as CircuitBreaker from "../resilience/CircuitBreaker.js"
import * as RateLimiter from "../resilience/RateLimiter.js"

// ---------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------

/** The health of a check, and of the whole system. */
export type Status = "healthy" | "degraded" | "unhealthy"

/** The statuses, best first. */
export const statuses: ReadonlyArray<Status> = ["healthy", "degraded", "unhealthy"]

/** The status of one check: a `Status`, or `pending` until its first run finishes. */
export type CheckStatus = Status | "pending"

/** What a check returns: a status, or a status with details (any JSON-like figures). */
export type Health = Status | { readonly status: Status; readonly details?: Readonly<Record<string, unknown>> }

/** Event names (measurements · metadata). */
export const events = Events.names.healthChecker

/** Defaults (the original's). */
export const defaults = {
  name: "health_checker",
  timeout: Duration.seconds(5),
  interval: Duration.seconds(60),
  failureThreshold: 3
} as const

/** Options of the checker. */
export interface Options {
  /** Used in metrics and events ["health_checker"]. */
  readonly name?: string
  /** Failed runs in a row that open a check's breaker, an integer ≥ 1 [3]. */
  readonly failureThreshold?: number
  /** Time limit of a check that sets none [5 s]. */
  readonly defaultTimeout?: Duration.DurationInput
  /** Time between runs of a check that sets none [60 s]. */
  readonly defaultInterval?: Duration.DurationInput
}

/** A check to register. */
export interface CheckOptions<E = never, R = never> {
  /** Unique name of the check. */
  readonly name: string
  /** The check: `void` or a `Health`; a failure or a defect is unhealthy. */
  readonly check: Effect.Effect<Health | void, E, R>
  /** Time limit of one run (positive, finite) [the checker's `defaultTimeout`, 5 s]. */
  readonly timeout?: Duration.DurationInput
  /** Time between runs, after each run (positive, finite) [the checker's `defaultInterval`, 60 s]. */
  readonly interval?: Duration.DurationInput
  /** Whether an unhealthy result makes the system unhealthy (else only degraded) [true]. */
  readonly critical?: boolean
  /** Whether the check runs behind a circuit breaker [true]. */
  readonly circuitBreaker?: boolean
}

/** One check as reported. */
export interface CheckReport {
  readonly name: string
  readonly status: CheckStatus
  readonly critical: boolean
  /** Duration of the latest run in ms (0 before the first, and when the breaker refused it). */
  readonly latency: number
  /** The error of the latest real run, when it failed (its typed error, `TimeoutError`, or an `InternalError` for a defect). */
  readonly lastError: Option.Option<unknown>
  /** Failed runs in a row (a refused run counts for nothing). */
  readonly consecutiveFailures: number
  /** The state of the check's breaker (`disabled` when it has none). */
  readonly breaker: CircuitBreaker.State
  /** The details of the latest result (empty when it had none). */
  readonly details: Readonly<Record<string, unknown>>
  /** When the check was last evaluated (epoch ms, `Clock`). */
  readonly checkedAt: Option.Option<number>
  /** Runs made and refused. */
  readonly runs: number
}

/** The health of everything. */
export interface Report {
  readonly status: Status
  readonly checks: ReadonlyArray<CheckReport>
  /** Epoch ms (`Clock`). */
  readonly at: number
}

/** The health checker. */
export interface Service {
  readonly name: string
  /** Registers a check and starts its runs (the first at once). */
  register<E, R>(options: CheckOptions<E, R>): Effect.Effect<void, ValidationError | AlreadyExistsError, R>
  /** Stops a check's runs and forgets it. */
  unregister(name: string): Effect.Effect<void, NotFoundError>
  /** Runs one check now (after any run in progress) and reports it. */
  check(name: string): Effect.Effect<CheckReport, NotFoundError>
  /** Runs every check now, concurrently, and reports. */
  readonly checkAll: Effect.Effect<Report>
  /** The latest results, without running anything. */
  readonly report: Effect.Effect<Report>
  readonly names: Effect.Effect<ReadonlyArray<string>>
}

/** The `HealthChecker` service. */
export class HealthChecker extends Context.Tag("effect-foundation/HealthChecker")<HealthChecker, Service>() {}

// ---------------------------------------------------------------------------------------------
// Aggregation
// ---------------------------------------------------------------------------------------------

const rank: Readonly<Record<Status, number>> = { healthy: 0, degraded: 1, unhealthy: 2 }

/** What one check contributes to the overall status. */
export const contribution = (check: { readonly status: CheckStatus; readonly critical: boolean }): Status =>
  check.status === "pending" ? "degraded" : check.status === "unhealthy" && !check.critical ? "degraded" : check.status

/** Any unhealthy → unhealthy; else any degraded → degraded; else healthy (see `contribution`). */
export const aggregate = (
  checks: ReadonlyArray<{ readonly status: CheckStatus; readonly critical: boolean }>
): Status => {
  let worst: Status = "healthy"
  for (const check of checks) {
    const status = contribution(check)
    if (rank[status] > rank[worst]) worst = status
  }
  return worst
}

// ---------------------------------------------------------------------------------------------
// Implementation
// ---------------------------------------------------------------------------------------------

interface Normalized {
  readonly status: Status
  readonly details: Readonly<Record<string, unknown>>
}

const noDetails: Readonly<Record<string, unknown>> = Object.freeze({})

const isStatus = (u: unknown): u is Status => u === "healthy" || u === "degraded" || u === "unhealthy"

/** A check's result as a status and details, or why it is not a valid result. */
const normalize = (value: unknown): Either.Either<Normalized, string> => {
  if (value === undefined) return Either.right({ status: "healthy", details: noDetails })
  if (isStatus(value)) return Either.right({ status: value, details: noDetails })
  if (typeof value === "object" && value !== null && "status" in value && isStatus(value.status)) {
    const details = "details" in value ? value.details : undefined
    if (details === undefined) return Either.right({ status: value.status, details: noDetails })
    if (typeof details === "object" && details !== null) {
      return Either.right({ status: value.status, details: details as Readonly<Record<string, unknown>> })
    }
    return Either.left("details must be an object")
  }
  return Either.left(`must be void, "healthy", "degraded", "unhealthy" or { status, details? }`)
}

/** Why a run counts as failed (the breaker counts it). */
class RunFailed {
  readonly _tag = "RunFailed"
  constructor(readonly error: Option.Option<unknown>, readonly health: Normalized | undefined) {}
}

interface Entry {
  readonly name: string
  readonly critical: boolean
  readonly interval: Duration.Duration
  readonly breaker: CircuitBreaker.CircuitBreaker | undefined
  readonly guarded: Effect.Effect<Normalized, RunFailed | CircuitOpenError>
  readonly lock: Effect.Semaphore
  readonly gauge: Metric.Metric.Gauge<number>
  readonly counters: Map<string, Metric.Metric.Counter<number>>
  status: CheckStatus
  latency: number
  lastError: Option.Option<unknown>
  consecutiveFailures: number
  details: Readonly<Record<string, unknown>>
  checkedAt: number | undefined
  runs: number
}

const field = (name: string) => `healthChecker.${name}`
const checkField = (name: string) => `healthCheck.${name}`

const optionalBoolean = (name: string, value: unknown, fallback: boolean): Either.Either<boolean, ValidationError> =>
  value === undefined
    ? Either.right(fallback)
    : typeof value === "boolean"
    ? Either.right(value)
    : Validation.invalid(name, `must be a boolean, got ${typeof value}`)

/** Makes a checker in the current scope; its checks run in fibers of that scope. */
export const make = (options: Options = {}): Effect.Effect<Service, ValidationError, Scope.Scope> =>
  Effect.gen(function*() {
    if (typeof options !== "object" || options === null) return yield* Validation.invalid("healthChecker", "options must be an object")
    const name = yield* Validation.nonEmptyString(field("name"), options.name ?? defaults.name)
    const failureThreshold = yield* Validation.positiveInt(
      field("failureThreshold"),
      options.failureThreshold ?? defaults.failureThreshold
    )
    const defaultTimeout = yield* Validation.duration(field("defaultTimeout"), options.defaultTimeout ?? defaults.timeout)
    const defaultInterval = yield* Validation.duration(field("defaultInterval"), options.defaultInterval ?? defaults.interval)
    const clock = yield* Effect.clock
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const fibers = yield* FiberMap.make<string, void, never>()
    const registrations = yield* Effect.makeSemaphore(1)
    const entries = new Map<string, Entry>()

    const count = (entry: Entry, outcome: string) => {
      let counter = entry.counters.get(outcome)
      if (counter === undefined) {
        counter = MetricKit.counter("foundation_health_checks_total", {
          description: "Health check runs, by outcome",
          tags: { checker: name, check: entry.name, outcome }
        })
        entry.counters.set(outcome, counter)
      }
      MetricKit.bump(counter)
    }

    /** Records the outcome of a run, in one synchronous step. */
    const record = (
      entry: Entry,
      exit: Exit.Exit<Normalized, RunFailed | CircuitOpenError>,
      latency: number,
      now: number,
      breaker: CircuitBreaker.State
    ): void => {
      const before = entry.status
      entry.runs++
      entry.checkedAt = now
      if (Exit.isSuccess(exit)) {
        entry.status = exit.value.status
        entry.details = exit.value.details
        entry.latency = latency
        entry.lastError = Option.none()
        entry.consecutiveFailures = 0
        count(entry, exit.value.status)
      } else {
        const failure = Cause.failureOption(exit.cause)
        const error = Option.getOrUndefined(failure)
        entry.status = "unhealthy"
        if (error instanceof RunFailed) {
          entry.latency = latency
          entry.lastError = error.error
          entry.details = error.health?.details ?? noDetails
          entry.consecutiveFailures++
          count(entry, "unhealthy")
        } else if (error instanceof CircuitOpenError) {
          entry.latency = 0
          count(entry, "rejected")
        } else {
          // Not expected (every failure of a run is one of the two above), but never lost.
          entry.latency = latency
          entry.lastError = Option.some(InternalError.fromCause(exit.cause))
          entry.consecutiveFailures++
          count(entry, "unhealthy")
        }
      }
      const status = entry.status
      MetricKit.set(entry.gauge, rank[status])
      if (status !== before) {
        telemetry?.unsafeEmit(events.statusChanged, {}, { checker: name, check: entry.name, from: before, to: status, breaker })
      }
    }

    const breakerState = (entry: Entry): Effect.Effect<CircuitBreaker.State> =>
      entry.breaker === undefined ? Effect.succeed("disabled") : entry.breaker.state

    const reportOf = (entry: Entry, breaker: CircuitBreaker.State): CheckReport => ({
      name: entry.name,
      status: entry.status,
      critical: entry.critical,
      latency: entry.latency,
      lastError: entry.lastError,
      consecutiveFailures: entry.consecutiveFailures,
      breaker,
      details: entry.details,
      checkedAt: Option.fromNullable(entry.checkedAt),
      runs: entry.runs
    })

    const describe = (entry: Entry): Effect.Effect<CheckReport> => Effect.map(breakerState(entry), (b) => reportOf(entry, b))

    /** One run: never fails (every outcome is recorded); only interruption stops it. */
    const run = (entry: Entry): Effect.Effect<CheckReport> =>
      entry.lock.withPermits(1)(
        Effect.gen(function*() {
          const start = clock.unsafeCurrentTimeMillis()
          const exit = yield* Effect.exit(entry.guarded)
          const now = clock.unsafeCurrentTimeMillis()
          const breaker = yield* breakerState(entry)
          record(entry, exit, now - start, now, breaker)
          return reportOf(entry, breaker)
        })
      )

    const reportAll = (checks: ReadonlyArray<CheckReport>): Report => ({
      status: aggregate(checks),
      checks,
      at: clock.unsafeCurrentTimeMillis()
    })

    const service: Service = {
      name,
      register: <E, R>(check: CheckOptions<E, R>) =>
        Effect.gen(function*() {
          if (typeof check !== "object" || check === null) return yield* Validation.invalid("healthCheck", "must be an object")
          const checkName = yield* Validation.nonEmptyString(checkField("name"), check.name)
          if (!Effect.isEffect(check.check)) return yield* Validation.invalid(checkField("check"), "must be an Effect")
          const timeout = yield* Validation.duration(checkField("timeout"), check.timeout ?? defaultTimeout)
          const interval = yield* Validation.duration(checkField("interval"), check.interval ?? defaultInterval)
          const critical = yield* optionalBoolean(checkField("critical"), check.critical, true)
          const withBreaker = yield* optionalBoolean(checkField("circuitBreaker"), check.circuitBreaker, true)
          const context = yield* Effect.context<R>()
          const breaker = withBreaker
            ? yield* CircuitBreaker.make({
              name: `health.${checkName}`,
              trip: CircuitBreaker.consecutive(failureThreshold),
              // Open for one interval: the next periodic run is the half-open trial.
              resetAfter: interval
            })
            : undefined
          const attempt: Effect.Effect<Normalized, RunFailed> = check.check.pipe(
            Effect.provide(context),
            Effect.timeoutFail({
              duration: timeout,
              onTimeout: () => new TimeoutError({ timeout, label: `Health check "${checkName}"` })
            }),
            Effect.matchCauseEffect({
              onSuccess: (value): Effect.Effect<Normalized, RunFailed> =>
                Either.match(normalize(value), {
                  onLeft: (reason) =>
                    Effect.fail(
                      new RunFailed(Option.some(new ValidationError({ field: `${checkName}.result`, reason })), undefined)
                    ),
                  onRight: (health) =>
                    health.status === "unhealthy" ? Effect.fail(new RunFailed(Option.none(), health)) : Effect.succeed(health)
                }),
              // Reached only when this fiber is not being interrupted: an interruption of the check
              // itself (or a defect) is a failed run like any other.
              onFailure: (cause) =>
                Effect.fail(
                  new RunFailed(
                    Option.some(Option.getOrElse(Cause.failureOption(cause), () => InternalError.fromCause(cause))),
                    undefined
                  )
                )
            })
          )
          const entry: Entry = {
            name: checkName,
            critical,
            interval,
            breaker,
            guarded: breaker === undefined ? attempt : breaker.protect(attempt),
            lock: yield* Effect.makeSemaphore(1),
            gauge: MetricKit.gauge("foundation_health_check_status", {
              description: "Health check status: 0 healthy, 1 degraded, 2 unhealthy",
              tags: { checker: name, check: checkName }
            }),
            counters: new Map(),
            status: "pending",
            latency: 0,
            lastError: Option.none(),
            consecutiveFailures: 0,
            details: noDetails,
            checkedAt: undefined,
            runs: 0
          }
          yield* registrations.withPermits(1)(
            Effect.gen(function*() {
              if (entries.has(checkName)) {
                return yield* Effect.fail(new AlreadyExistsError({ resource: "health check", key: checkName }))
              }
              entries.set(checkName, entry)
              yield* FiberMap.run(
                fibers,
                checkName,
                Effect.asVoid(Effect.repeat(run(entry), Schedule.spaced(interval)))
              )
            })
          )
        }),
      unregister: (checkName) =>
        registrations.withPermits(1)(
          Effect.suspend(() => {
            if (!entries.delete(checkName)) {
              return Effect.fail(new NotFoundError({ resource: "health check", key: checkName }))
            }
            return FiberMap.remove(fibers, checkName)
          })
        ),
      check: (checkName) =>
        Effect.suspend(() => {
          const entry = entries.get(checkName)
          return entry === undefined ? Effect.fail(new NotFoundError({ resource: "health check", key: checkName })) : run(entry)
        }),
      checkAll: Effect.gen(function*() {
        const start = clock.unsafeCurrentTimeMillis()
        const checks = yield* Effect.forEach([...entries.values()], run, { concurrency: "unbounded" })
        const report = reportAll(checks)
        telemetry?.unsafeEmit(events.healthCheck, { duration: report.at - start, service_count: checks.length }, {
          checker: name,
          result: report.status
        })
        return report
      }),
      report: Effect.suspend(() => Effect.map(Effect.forEach([...entries.values()], describe), reportAll)),
      names: Effect.sync(() => [...entries.keys()])
    }
    return service
  })

/** A layer of the `HealthChecker` service. */
export const layer = (options: Options = {}): Layer.Layer<HealthChecker, ValidationError> =>
  Layer.scoped(HealthChecker, make(options))

// ---------------------------------------------------------------------------------------------
// Built-in checks
// ---------------------------------------------------------------------------------------------

const health = (status: Status, details: Readonly<Record<string, unknown>>): Health => ({ status, details })

/** Healthy when none is bad, unhealthy when all of at least one are, degraded otherwise. */
const byShare = (bad: number, total: number): Status => bad === 0 ? "healthy" : bad === total ? "unhealthy" : "degraded"

const tripped = (state: CircuitBreaker.State) => state === "open" || state === "half_open" || state === "isolated"

/** The repository the `repositoryStore` check opens and counts (it never writes to it). */
export const probeRepository = "foundation_health_probe"

const ProbeRecord = Schema.Struct({ id: Schema.String })

/**
 * Built-in checks for the library's services, each reading its status API. Each is made once per
 * registration (some remember the previous run's counters).
 */
export const checks = {
  /**
   * The breakers of `CircuitBreakers`: healthy when none is open, half-open or isolated; unhealthy
   * when all are (and there is at least one); degraded otherwise. Details: `breakers` (count),
   * `open`, `halfOpen`, `isolated` (names).
   */
  circuitBreakers: (): Effect.Effect<Health, never, CircuitBreaker.CircuitBreakers> =>
    Effect.gen(function*() {
      const registry = yield* CircuitBreaker.CircuitBreakers
      const all = Object.values(yield* registry.status)
      const named = (state: CircuitBreaker.State) => all.filter((s) => s.state === state).map((s) => s.name)
      return health(byShare(all.filter((s) => tripped(s.state)).length, all.length), {
        breakers: all.length,
        open: named("open"),
        halfOpen: named("half_open"),
        isolated: named("isolated")
      })
    }),

  /**
   * The limiters of `RateLimiters`: degraded when a limiter evicted active keys since the
   * previous run (its key table is too small: those keys lost their state), else healthy.
   * Details: `limiters`, `allowed`, `denied` (totals), `evicted` (since the previous run).
   */
  rateLimiters: (): Effect.Effect<Health, never, RateLimiter.RateLimiters> => {
    let previousEvicted = 0
    return Effect.gen(function*() {
      const limiters = yield* RateLimiter.RateLimiters
      const status = yield* limiters.status()
      const evictedTotal = status.limiters.reduce((n, l) => n + l.stats.evictedKeys, 0)
      return yield* Effect.sync(() => {
        const evicted = Math.max(0, evictedTotal - previousEvicted)
        previousEvicted = evictedTotal
        return health(evicted > 0 ? "degraded" : "healthy", {
          limiters: status.limiters.length,
          allowed: status.totalAllowed,
          denied: status.totalDenied,
          evicted
        })
      })
    })
  },

  /**
   * The pools of `ConnectionManager`, by the state of each pool's breaker: healthy when none is
   * open (or half-open), unhealthy when all are, degraded otherwise. Details: `pools`, `active`,
   * `open` (pool names).
   */
  connectionManager: (): Effect.Effect<Health, never, ConnectionManager.ConnectionManager> =>
    Effect.gen(function*() {
      const manager = yield* ConnectionManager.ConnectionManager
      const stats = yield* manager.stats
      const pools = Object.values(stats.pools)
      const open = pools.filter((p) => tripped(p.breaker)).map((p) => p.pool)
      return health(byShare(open.length, pools.length), { pools: pools.length, active: stats.active, open })
    }),

  /**
   * `ResourceManager`'s backpressure level: normal → healthy, moderate → degraded, severe →
   * unhealthy. Details: `level`, `memoryRatio`, `entriesRatio`.
   */
  resourceManager: (): Effect.Effect<Health, never, ResourceManager.ResourceManager> =>
    Effect.gen(function*() {
      const manager = yield* ResourceManager.ResourceManager
      const stats = yield* manager.stats
      const status: Status = stats.level === "normal" ? "healthy" : stats.level === "moderate" ? "degraded" : "unhealthy"
      return health(status, { level: stats.level, memoryRatio: stats.memory.ratio, entriesRatio: stats.entries.ratio })
    }),

  /**
   * The pools of `TaskPools`: healthy when every pool runs, unhealthy when all are shut down,
   * degraded otherwise. Details: `pools`, `running`, `queued` (totals), `shutdown` (pool names).
   */
  taskPools: (): Effect.Effect<Health, never, TaskPools.TaskPools> =>
    Effect.gen(function*() {
      const pools = Object.values(yield* (yield* TaskPools.TaskPools).allStats)
      const shutdown = pools.filter((p) => p.status === "shutdown").map((p) => p.name)
      return health(byShare(shutdown.length, pools.length), {
        pools: pools.length,
        running: pools.reduce((n, p) => n + p.running, 0),
        queued: pools.reduce((n, p) => n + p.queued, 0),
        shutdown
      })
    }),

  /**
   * `Caches`: healthy while it answers (a cache has no failure state). Details: `caches`,
   * `entries`, `hitRatio` (overall, 0 before any lookup).
   */
  caches: (): Effect.Effect<Health, never, Cache.Caches> =>
    Effect.gen(function*() {
      const all = Object.values(yield* (yield* Cache.Caches).stats)
      const hits = all.reduce((n, s) => n + s.hits, 0)
      const lookups = hits + all.reduce((n, s) => n + s.misses, 0)
      return health("healthy", {
        caches: all.length,
        entries: all.reduce((n, s) => n + s.size, 0),
        hitRatio: lookups === 0 ? 0 : hits / lookups
      })
    }),

  /**
   * `EventBus`: degraded when events were dropped since the previous run (a subscription was
   * full), else healthy. Details: `published`, `delivered`, `dropped` (totals), `droppedSince`,
   * `subscriptions`, `pending`.
   */
  eventBus: (): Effect.Effect<Health, never, EventBus.EventBus> => {
    let previousDropped = 0
    return Effect.gen(function*() {
      const stats = yield* (yield* EventBus.EventBus).stats
      return yield* Effect.sync(() => {
        const droppedSince = Math.max(0, stats.dropped - previousDropped)
        previousDropped = stats.dropped
        return health(droppedSince > 0 ? "degraded" : "healthy", {
          published: stats.published,
          delivered: stats.delivered,
          dropped: stats.dropped,
          droppedSince,
          subscriptions: stats.subscriptions.length,
          pending: stats.subscriptions.reduce((n, s) => n + s.pending, 0)
        })
      })
    })
  },

  /**
   * The agents of `AgentRegistry`, by their registered health: healthy when none is degraded or
   * unhealthy (no agents included), unhealthy when every agent is unhealthy, degraded otherwise.
   * Details: `agents`, `healthy`, `degraded`, `unhealthy` (counts).
   */
  agentRegistry: (): Effect.Effect<Health, ValidationError, AgentRegistry.AgentRegistry> =>
    Effect.gen(function*() {
      const registry = yield* AgentRegistry.AgentRegistry
      const agents = yield* registry.count
      const degraded = (yield* registry.findBy({ health: "degraded" })).length
      const unhealthy = (yield* registry.findBy({ health: "unhealthy" })).length
      const status: Status = agents > 0 && unhealthy === agents
        ? "unhealthy"
        : degraded + unhealthy > 0
        ? "degraded"
        : "healthy"
      return health(status, { agents, healthy: agents - degraded - unhealthy, degraded, unhealthy })
    }),

  /**
   * The `RepositoryStore`, by a real round trip: opens (creating it if needed) the probe
   * repository `probeRepository` and counts its records. Healthy when it answers; a `StoreError`
   * (connection lost, database error) fails the check, so it reads unhealthy with the error as
   * `lastError`. Details: `store` (its kind), `probeRecords`.
   */
  repositoryStore: (): Effect.Effect<Health, ValidationError | Repository.StoreError, Repository.RepositoryStore> =>
    Effect.gen(function*() {
      const store = yield* Repository.RepositoryStore
      const probe = yield* store.repository({ name: probeRepository, schema: ProbeRecord, key: "id" })
      return health("healthy", { store: store.kind, probeRecords: yield* probe.count() })
    }),

  /**
   * `AgentMonitor`: degraded when agent checks failed or timed out since the previous run (the
   * agents' resulting health is the `agentRegistry` check's business), else healthy. Agents gone
   * `down` are reported, not judged: an agent that stopped on purpose is down too. Details:
   * `monitors` (running), `down` (ended monitors kept), `checks` (total), `failed`, `timedOut`
   * (since the previous run).
   */
  agentMonitor: (): Effect.Effect<Health, never, AgentMonitor.AgentMonitor> => {
    let previous = { failures: 0, timeouts: 0 }
    return Effect.gen(function*() {
      const stats = yield* (yield* AgentMonitor.AgentMonitor).stats
      return yield* Effect.sync(() => {
        const failed = Math.max(0, stats.failures - previous.failures)
        const timedOut = Math.max(0, stats.timeouts - previous.timeouts)
        previous = { failures: stats.failures, timeouts: stats.timeouts }
        return health(failed + timedOut > 0 ? "degraded" : "healthy", {
          monitors: stats.active,
          down: stats.ended,
          checks: stats.checks,
          failed,
          timedOut
        })
      })
    })
  },

  /**
   * `Scheduler`: degraded when deliveries failed since the previous run, else healthy. Details:
   * `schedules`, `agents` (with a schedule), `runs`, `failures` (totals), `failedSince`.
   */
  scheduler: (): Effect.Effect<Health, never, Scheduler.Scheduler> => {
    let previousFailures = 0
    return Effect.gen(function*() {
      const stats = yield* (yield* Scheduler.Scheduler).stats
      return yield* Effect.sync(() => {
        const failedSince = Math.max(0, stats.failures - previousFailures)
        previousFailures = stats.failures
        return health(failedSince > 0 ? "degraded" : "healthy", {
          schedules: stats.totalSchedules,
          agents: stats.activeAgents,
          runs: stats.runs,
          failures: stats.failures,
          failedSince
        })
      })
    })
  },

  /**
   * `Locks`: degraded when a lock is stalled: it has waiters and its current grant was acquired
   * at least `stallAfter` ago (1 minute; a holder renewing its lease keeps its grant), so its
   * queue has not moved for that long; else healthy (waiting alone is ordinary contention). A bad
   * `stallAfter` fails every run with a `ValidationError` naming `locks.stallAfter`. Details:
   * `locks` (held or awaited), `held`, `waiters` (total), `stalled` (lock names).
   */
  locks: (options: { readonly stallAfter?: Duration.DurationInput } = {}): Effect.Effect<
    Health,
    ValidationError,
    Lock.Locks
  > => {
    const stallAfter = Validation.duration("locks.stallAfter", options.stallAfter ?? Duration.minutes(1))
    return Effect.gen(function*() {
      const limit = Duration.toMillis(yield* stallAfter)
      const all = yield* (yield* Lock.Locks).locks
      const now = yield* Clock.currentTimeMillis
      const stalled = all
        .filter((l) => l.waiters.length > 0 && Option.isSome(l.acquiredAt) && now - l.acquiredAt.value >= limit)
        .map((l) => l.name)
      return health(stalled.length > 0 ? "degraded" : "healthy", {
        locks: all.length,
        held: all.filter((l) => l.locked).length,
        waiters: all.reduce((n, l) => n + l.waiters.length, 0),
        stalled
      })
    })
  },

  /**
   * `Barriers`: degraded when a barrier's current generation is broken (its parties failed; it
   * stays broken until `reset`), else healthy. Details: `barriers`, `waiting` (parties, total),
   * `broken` (barrier names).
   */
  barriers: (): Effect.Effect<Health, never, Barrier.Barriers> =>
    Effect.gen(function*() {
      const all = yield* (yield* Barrier.Barriers).list
      const broken = all.filter((b) => b.broken).map((b) => b.name)
      return health(broken.length > 0 ? "degraded" : "healthy", {
        barriers: all.length,
        waiting: all.reduce((n, b) => n + b.waiting, 0),
        broken
      })
    }),

  /**
   * `Consensus`: healthy while it answers (every round has a deadline, so an open round is never
   * stuck). Details: `openRounds` (count).
   */
  consensus: (): Effect.Effect<Health, never, Consensus.Consensus> =>
    Effect.map(
      Effect.flatMap(Consensus.Consensus, (consensus) => consensus.openRounds),
      (open) => health("healthy", { openRounds: open.length })
    ),

  /**
   * `CommandRunner`: degraded when runs failed (an exit code not accepted, or a process that
   * could not run), timed out, or were refused because `maxConcurrent` processes were running,
   * since the previous run; else healthy (a command off the allow-list is the caller's error, not
   * the runner's). Details: `runs`, `active`, `failed`, `timedOut`, `rejected` (the last three
   * since the previous run).
   */
  commandRunner: (): Effect.Effect<Health, never, CommandRunner.CommandRunner> => {
    let previous = { failed: 0, timeouts: 0, rejected: 0 }
    return Effect.gen(function*() {
      const stats = yield* (yield* CommandRunner.CommandRunner).stats
      return yield* Effect.sync(() => {
        const failed = Math.max(0, stats.failed - previous.failed)
        const timedOut = Math.max(0, stats.timeouts - previous.timeouts)
        const rejected = Math.max(0, stats.rejected - previous.rejected)
        previous = { failed: stats.failed, timeouts: stats.timeouts, rejected: stats.rejected }
        return health(failed + timedOut + rejected > 0 ? "degraded" : "healthy", {
          runs: stats.runs,
          active: stats.active,
          failed,
          timedOut,
          rejected
        })
      })
    })
  },

  /**
   * `Telemetry`: degraded when emissions were dropped since the previous run because their name
   * was not a valid topic (those events are lost; drops of full subscriptions are the
   * `eventBus` check's), else healthy. Details: `invalidNames` (total), `droppedSince`.
   */
  telemetry: (): Effect.Effect<Health, never, Telemetry.Telemetry> => {
    let previousInvalid = 0
    return Effect.gen(function*() {
      const invalidNames = yield* (yield* Telemetry.Telemetry).invalidNames
      return yield* Effect.sync(() => {
        const droppedSince = Math.max(0, invalidNames - previousInvalid)
        previousInvalid = invalidNames
        return health(droppedSince > 0 ? "degraded" : "healthy", { invalidNames, droppedSince })
      })
    })
  }
} as const

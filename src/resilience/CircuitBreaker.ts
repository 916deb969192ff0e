/**
 * Circuit breaker: stops calling a dependency that keeps failing, and lets a few trial calls
 * through once it has had time to recover.
 *
 * States: `closed` (calls pass and are recorded), `open` (calls are rejected at once with
 * `CircuitOpenError`, without starting the protected effect), `half_open` (up to
 * `halfOpenMaxCalls` trial calls at a time; `successThreshold` good ones close the breaker, one
 * bad one reopens it), plus the manual `isolated` (forced open until `reset`) and `disabled`
 * (everything passes, nothing is recorded).
 *
 * Guarantees:
 * - every transition happens in one synchronous step, so no count is lost under any
 *   concurrency, and results of calls admitted before a transition never count after it;
 * - a typed failure counts as a failure (unless `isFailure` says otherwise); a defect always
 *   counts; an interruption never counts;
 * - an interrupted half-open trial call gives its permit back: the breaker never sticks
 *   half-open;
 * - no timers and no fibers: `open → half_open` happens on the first call (or state read)
 *   after the reset delay, so an idle breaker costs only its memory;
 * - reopening advances the reset backoff `Schedule`; closing starts it again;
 * - the state is serialisable (`snapshot`/`restore`) so it survives a restart.
 *
 * The clock is the one in the context when the breaker is made (so `TestClock` drives it in
 * tests). Metrics: `foundation_circuit_breaker_state` (gauge: 0 closed, 1 half-open, 2 open,
 * 3 isolated, 4 disabled), `foundation_circuit_breaker_calls_total` (counter, tag `outcome`:
 * success | failure | rejected), `foundation_circuit_breaker_slow_calls_total` and
 * `foundation_circuit_breaker_state_changes_total`, all tagged `breaker`; they are created on a
 * breaker's first use. Telemetry (when the `Telemetry` service is in the context at
 * construction): `foundation.circuit_breaker.state_change` and
 * `foundation.circuit_breaker.call_rejected` (see `Events`).
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { CircuitOpenError, ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"
import {
  BAD,
  BreakerKernel,
  type BreakerKernelApi,
  GOOD,
  NEUTRAL,
  type Ticket,
  type Verdict
} from "./internal/kernel.js"
import {
  type BreakerWindow,
  ConsecutiveWindow,
  CountWindow,
  type RateRule,
  TimeWindow,
  type WindowFigures
} from "./internal/breakerWindow.js"

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/** The state of a breaker. */
export type State = "closed" | "open" | "half_open" | "isolated" | "disabled"

/** When to trip (closed → open). Build one with `consecutive`, `countWindow` or `timeWindow`. */
export type TripStrategy =
  | { readonly _tag: "consecutive"; readonly threshold: number }
  | {
    readonly _tag: "count"
    readonly size: number
    readonly failureRate: number
    readonly minimumCalls: number
  }
  | {
    readonly _tag: "time"
    readonly window: Duration.DurationInput
    readonly buckets: number
    readonly failureRate: number
    readonly minimumCalls: number
  }

/** Trip after `threshold` bad calls in a row (default 5, as the original). */
export const consecutive = (threshold = 5): TripStrategy => ({ _tag: "consecutive", threshold })

/**
 * Trip when, over the last `size` calls (default 100), the failure rate reaches `failureRate`
 * (default 0.5), once at least `minimumCalls` (default 10) were recorded.
 */
export const countWindow = (
  options: { readonly size?: number; readonly failureRate?: number; readonly minimumCalls?: number } = {}
): TripStrategy => ({
  _tag: "count",
  size: options.size ?? 100,
  failureRate: options.failureRate ?? 0.5,
  minimumCalls: options.minimumCalls ?? Math.min(10, options.size ?? 100)
})

/**
 * Trip when, over the last `window` (default 60 s, in `buckets` buckets, default 10), the
 * failure rate reaches `failureRate` (default 0.5), once at least `minimumCalls` (default 10)
 * were recorded.
 */
export const timeWindow = (
  options: {
    readonly window?: Duration.DurationInput
    readonly buckets?: number
    readonly failureRate?: number
    readonly minimumCalls?: number
  } = {}
): TripStrategy => ({
  _tag: "time",
  window: options.window ?? Duration.minutes(1),
  buckets: options.buckets ?? 10,
  failureRate: options.failureRate ?? 0.5,
  minimumCalls: options.minimumCalls ?? 10
})

/** Options of a breaker. Every field is optional; defaults in brackets. */
export interface Options<E = unknown> {
  /** Used in errors, metrics and state changes ["circuit-breaker"]. */
  readonly name?: string
  /** When to trip [consecutive(5)]. */
  readonly trip?: TripStrategy
  /**
   * Slow-call tracking: a call that takes at least `duration` is slow. With a consecutive
   * strategy a slow call counts as a bad call; with a window strategy the breaker also trips
   * when the slow-call rate reaches `rate` [1]. A slow half-open trial call reopens.
   */
  readonly slowCall?: { readonly duration: Duration.DurationInput; readonly rate?: number }
  /**
   * How long to stay open before admitting trial calls: a duration, or a `Schedule` whose
   * successive delays are used for successive reopenings (closing starts it again). [60 s]
   */
  readonly resetAfter?: Duration.DurationInput | Schedule.Schedule<unknown, unknown>
  /** Trial calls admitted at a time in half-open [1]. */
  readonly halfOpenMaxCalls?: number
  /** Good trial calls needed to close [1]. */
  readonly successThreshold?: number
  /**
   * Which typed failures count as failures [all]. Failures it rejects are neutral: they
   * neither count as failures nor reset a run of failures. Defects always count.
   */
  readonly isFailure?: (error: E) => boolean
  /** State to start from (hydration), as produced by `snapshot`. */
  readonly initial?: Snapshot
  /** Whether to update metrics [true]. */
  readonly metrics?: boolean
}

/** The window a trip strategy needs, as data (no closure: a config costs little memory). */
type WindowSpec =
  | { readonly _tag: "consecutive"; readonly threshold: number }
  | { readonly _tag: "count"; readonly size: number; readonly rule: RateRule }
  | { readonly _tag: "time"; readonly windowMillis: number; readonly buckets: number; readonly rule: RateRule }

const makeWindow = (spec: WindowSpec): BreakerWindow => {
  switch (spec._tag) {
    case "consecutive":
      return new ConsecutiveWindow(spec.threshold)
    case "count":
      return new CountWindow(spec.size, spec.rule)
    case "time":
      return new TimeWindow(spec.windowMillis, spec.buckets, spec.rule)
  }
}

/** Options after validation; shared by every breaker made from the same options. */
interface Config<E> {
  readonly window: WindowSpec
  /** Slow-call threshold in ms, or undefined when slow calls are not tracked. */
  readonly slowMillis: number | undefined
  /** Whether a closed-state call must read the clock (time window or slow-call tracking). */
  readonly timed: boolean
  readonly reset: { readonly _tag: "fixed"; readonly millis: number } | {
    readonly _tag: "schedule"
    readonly schedule: Schedule.Schedule<unknown, unknown>
  }
  readonly halfOpenMaxCalls: number
  readonly successThreshold: number
  readonly isFailure: ((error: E) => boolean) | undefined
  readonly metrics: boolean
}

const field = (name: string) => `circuitBreaker.${name}`

/** Validates options; every problem is a ValidationError naming the field. */
const resolve = <E>(options: Options<E>): Either.Either<Config<E>, ValidationError> =>
  Either.gen(function*() {
    const trip = options.trip ?? consecutive()
    const slow = options.slowCall === undefined ? undefined : {
      millis: Duration.toMillis(yield* Validation.duration(field("slowCall.duration"), options.slowCall.duration)),
      rate: yield* Validation.ratio(field("slowCall.rate"), options.slowCall.rate ?? 1, { exclusiveZero: true })
    }
    let window: WindowSpec
    switch (trip._tag) {
      case "consecutive": {
        window = { _tag: "consecutive", threshold: yield* Validation.positiveInt(field("trip.threshold"), trip.threshold) }
        break
      }
      case "count": {
        const size = yield* Validation.int(field("trip.size"), trip.size, { min: 1, max: 1_000_000 })
        const rule = {
          failureRate: yield* Validation.ratio(field("trip.failureRate"), trip.failureRate, { exclusiveZero: true }),
          minimumCalls: yield* Validation.int(field("trip.minimumCalls"), trip.minimumCalls, { min: 1, max: size }),
          slowRate: slow?.rate
        }
        window = { _tag: "count", size, rule }
        break
      }
      case "time": {
        const windowMillis = Duration.toMillis(yield* Validation.duration(field("trip.window"), trip.window))
        const buckets = yield* Validation.int(field("trip.buckets"), trip.buckets, { min: 1, max: 1000 })
        if (windowMillis / buckets < 1) {
          return yield* Validation.invalid(
            field("trip.buckets"),
            `each bucket must span at least 1 ms (window ${windowMillis} ms)`
          )
        }
        const rule = {
          failureRate: yield* Validation.ratio(field("trip.failureRate"), trip.failureRate, { exclusiveZero: true }),
          minimumCalls: yield* Validation.positiveInt(field("trip.minimumCalls"), trip.minimumCalls),
          slowRate: slow?.rate
        }
        window = { _tag: "time", windowMillis, buckets, rule }
        break
      }
      default:
        return yield* Validation.invalid(field("trip"), `unknown strategy ${JSON.stringify(trip)}`)
    }
    const resetAfter = options.resetAfter ?? Duration.minutes(1)
    const reset = Schedule.isSchedule(resetAfter)
      ? { _tag: "schedule" as const, schedule: resetAfter }
      : { _tag: "fixed" as const, millis: Duration.toMillis(yield* Validation.duration(field("resetAfter"), resetAfter)) }
    return {
      window,
      slowMillis: slow?.millis,
      timed: trip._tag === "time" || slow !== undefined,
      reset,
      halfOpenMaxCalls: yield* Validation.positiveInt(field("halfOpenMaxCalls"), options.halfOpenMaxCalls ?? 1),
      successThreshold: yield* Validation.positiveInt(field("successThreshold"), options.successThreshold ?? 1),
      isFailure: options.isFailure,
      metrics: options.metrics ?? true
    }
  })

// ---------------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------------

const Count = Schema.NonNegativeInt

/** The serialisable state of a breaker. Times are epoch milliseconds of the breaker's clock. */
export const Snapshot = Schema.Struct({
  name: Schema.String,
  state: Schema.Literal("closed", "open", "half_open", "isolated", "disabled"),
  /** When the breaker last opened. */
  openedAt: Schema.optional(Schema.Finite),
  /** When an open breaker starts admitting trial calls. */
  openUntil: Schema.optional(Schema.Finite),
  /** Openings since the breaker last closed (drives the reset backoff). */
  openCount: Count,
  halfOpenSuccesses: Count,
  window: Schema.Union(
    Schema.TaggedStruct("consecutive", { consecutiveFailures: Count }),
    Schema.TaggedStruct("count", { outcomes: Schema.Array(Schema.Int.pipe(Schema.between(0, 3))) }),
    Schema.TaggedStruct("time", { bucketStart: Schema.Finite, buckets: Schema.Array(Schema.Tuple(Count, Count, Count)) })
  ),
  successes: Count,
  failures: Count,
  rejections: Count,
  slowCalls: Count
})
export type Snapshot = typeof Snapshot.Type

const decodeSnapshot = Validation.decode(Snapshot, "snapshot")

// ---------------------------------------------------------------------------------------------
// The breaker
// ---------------------------------------------------------------------------------------------

/** A state transition. `at` is epoch milliseconds. */
export interface StateChange {
  readonly breaker: string
  readonly from: State
  readonly to: State
  readonly at: number
}

/** What a breaker has seen. */
export interface Stats {
  readonly name: string
  readonly state: State
  readonly successes: number
  readonly failures: number
  readonly rejections: number
  readonly slowCalls: number
  /** The closed-state window (calls, failures, slow calls, current run of failures). */
  readonly window: WindowFigures
  /** Openings since the breaker last closed. */
  readonly openCount: number
  /** When an open breaker will admit trial calls (epoch ms). */
  readonly openUntil: number | undefined
  /** Trial calls in flight. */
  readonly halfOpenInFlight: number
}

/** A circuit breaker; `E` is the error type its `isFailure` classifies. */
export interface CircuitBreaker<in E = unknown> {
  readonly name: string
  /** Runs the effect if the breaker admits it, recording the outcome. */
  protect<A, E1 extends E, R>(self: Effect.Effect<A, E1, R>): Effect.Effect<A, E1 | CircuitOpenError, R>
  /** The current state (an open breaker whose delay is over reads, and becomes, half-open). */
  readonly state: Effect.Effect<State>
  readonly stats: Effect.Effect<Stats>
  /** State transitions from the moment the stream is run. */
  readonly stateChanges: Stream.Stream<StateChange>
  /** Forces the breaker open until `reset`. */
  readonly isolate: Effect.Effect<void>
  /** Closes the breaker, clears its window and restarts the reset backoff; also re-enables it. */
  readonly reset: Effect.Effect<void>
  /** Lets every call through without recording anything, until `reset`. */
  readonly disable: Effect.Effect<void>
  /** The serialisable state. */
  readonly snapshot: Effect.Effect<Snapshot>
  /** Replaces the state with a snapshot (validated; a bad snapshot changes nothing). */
  restore(snapshot: unknown): Effect.Effect<void, ValidationError>
}

const CLOSED = 0
const HALF_OPEN = 1
const OPEN = 2
const ISOLATED = 3
const DISABLED = 4
type Code = 0 | 1 | 2 | 3 | 4

const stateNames: ReadonlyArray<State> = ["closed", "half_open", "open", "isolated", "disabled"]
const codeOf = (state: State): Code => stateNames.indexOf(state) as Code


/**
 * A breaker's metrics, each made on first use: an Effect metric costs about 1 KB in the registry,
 * so a breaker that never fails holds no failure counter, one that never changes state no gauge.
 */
class BreakerMetrics {
  private successCounter: Metric.Metric.Counter<number> | undefined
  private failureCounter: Metric.Metric.Counter<number> | undefined
  private rejectedCounter: Metric.Metric.Counter<number> | undefined
  private slowCounter: Metric.Metric.Counter<number> | undefined
  private changesCounter: Metric.Metric.Counter<number> | undefined
  private stateGauge: Metric.Metric.Gauge<number> | undefined
  constructor(private readonly breaker: string) {}
  private calls(outcome: string) {
    return MetricKit.counter("foundation_circuit_breaker_calls_total", {
      description: "Calls through circuit breakers by outcome",
      tags: { breaker: this.breaker, outcome }
    })
  }
  success() {
    MetricKit.bump(this.successCounter ??= this.calls("success"))
  }
  failure() {
    MetricKit.bump(this.failureCounter ??= this.calls("failure"))
  }
  rejected() {
    MetricKit.bump(this.rejectedCounter ??= this.calls("rejected"))
  }
  slow() {
    MetricKit.bump(
      this.slowCounter ??= MetricKit.counter("foundation_circuit_breaker_slow_calls_total", {
        description: "Slow calls through circuit breakers",
        tags: { breaker: this.breaker }
      })
    )
  }
  transition(to: number) {
    MetricKit.set(
      this.stateGauge ??= MetricKit.gauge("foundation_circuit_breaker_state", {
        description: "Circuit breaker state: 0 closed, 1 half-open, 2 open, 3 isolated, 4 disabled",
        tags: { breaker: this.breaker }
      }),
      to
    )
    MetricKit.bump(
      this.changesCounter ??= MetricKit.counter("foundation_circuit_breaker_state_changes_total", {
        description: "Circuit breaker state transitions",
        tags: { breaker: this.breaker }
      })
    )
  }
}

/** The ticket of a disabled breaker: its epoch never matches, so nothing is recorded. */
const passThrough: Ticket = { epoch: -1, probe: false, start: -1 }

interface ClosedHandlers<A, E> {
  readonly epoch: number
  readonly onSuccess: (a: A) => Effect.Effect<A>
  readonly onFailure: (cause: Cause.Cause<E>) => Effect.Effect<never, E>
}

/**
 * The implementation. All mutable fields are read and written only inside synchronous steps
 * (an `Effect.sync`/`suspend` body or a `matchCauseEffect` handler): fibers interleave only
 * between effects, so each step is atomic without locks, and no user code runs inside one.
 */
class Breaker<E> implements CircuitBreaker<E> {
  private code: Code = CLOSED
  /** Incremented on every transition; results of calls admitted in another epoch are ignored. */
  private epoch = 0
  private openedAt: number | undefined = undefined
  private openUntil = 0
  private openCount = 0
  private probes = 0
  private halfOpenSuccesses = 0
  private successes = 0
  private failures = 0
  private rejections = 0
  private slowCalls = 0
  /** Delays of successive openings from a reset schedule (computed once, see `init`). */
  private resetDelays: ReadonlyArray<number> = []
  private listeners: Array<(change: StateChange) => void> | undefined = undefined
  private meters: BreakerMetrics | undefined = undefined
  private readonly window: BreakerWindow

  constructor(
    readonly name: string,
    private readonly config: Config<E>,
    private readonly clock: Clock.Clock,
    private readonly telemetry: Telemetry.Service | undefined
  ) {
    this.window = makeWindow(config.window)
  }

  // --- calls --------------------------------------------------------------------------------

  protect<A, E1 extends E, R>(self: Effect.Effect<A, E1, R>): Effect.Effect<A, E1 | CircuitOpenError, R> {
    return Effect.suspend(() => {
      switch (this.code) {
        case CLOSED:
          return this.runClosed(self)
        case DISABLED:
          return self
        case ISOLATED:
          return this.reject("isolated", Duration.infinity)
        case OPEN: {
          // Rejections need no permit, hence no interruption mask.
          const now = this.clock.unsafeCurrentTimeMillis()
          if (now < this.openUntil) return this.reject("open", Duration.millis(this.openUntil - now))
        }
      }
      return this.admitGuarded(self)
    })
  }

  /** Closed state: no permit to give back, so no need to mask interruption. */
  private runClosed<A, E1 extends E, R>(self: Effect.Effect<A, E1, R>): Effect.Effect<A, E1, R> {
    const epoch = this.epoch
    if (this.config.timed) {
      const start = this.clock.unsafeCurrentTimeMillis()
      return Effect.matchCauseEffect(self, {
        onSuccess: (a) => {
          this.recordClosed(epoch, GOOD, start)
          return Effect.succeed(a)
        },
        onFailure: (cause) => {
          this.recordClosed(epoch, this.verdict(cause), start)
          return Effect.failCause(cause)
        }
      })
    }
    // The handlers pass values and causes through unchanged, so they serve any A and E1.
    return Effect.matchCauseEffect(self, this.closedHandlers(epoch) as unknown as ClosedHandlers<A, E1>)
  }

  /** Handlers of untimed closed-state calls, made once per epoch rather than once per call. */
  private handlers: ClosedHandlers<unknown, E> | undefined = undefined
  private closedHandlers(epoch: number): ClosedHandlers<unknown, E> {
    const cached = this.handlers
    if (cached !== undefined && cached.epoch === epoch) return cached
    return this.handlers = {
      epoch,
      onSuccess: (a) => {
        this.recordClosed(epoch, GOOD, -1)
        return Effect.succeed(a)
      },
      onFailure: (cause) => {
        this.recordClosed(epoch, this.verdict(cause), -1)
        return Effect.failCause(cause)
      }
    }
  }

  /** Open, half-open and isolated: admission and permit release are masked from interruption. */
  private admitGuarded<A, E1 extends E, R>(self: Effect.Effect<A, E1, R>): Effect.Effect<A, E1 | CircuitOpenError, R> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.suspend((): Effect.Effect<A, E1 | CircuitOpenError, R> => {
        switch (this.code) {
          case CLOSED:
            return restore(this.runClosed(self))
          case DISABLED:
            return restore(self)
          case ISOLATED:
            return this.reject("isolated", Duration.infinity)
        }
        const now = this.clock.unsafeCurrentTimeMillis()
        if (this.code === OPEN) {
          if (now < this.openUntil) return this.reject("open", Duration.millis(this.openUntil - now))
          this.transition(HALF_OPEN, now)
        }
        if (this.probes >= this.config.halfOpenMaxCalls) return this.reject("half_open", Duration.zero)
        this.probes++
        const epoch = this.epoch
        return Effect.matchCauseEffect(restore(self), {
          onSuccess: (a) => {
            this.completeProbe(epoch, GOOD, now)
            return Effect.succeed(a)
          },
          onFailure: (cause) => {
            this.completeProbe(epoch, this.verdict(cause), now)
            return Effect.failCause(cause)
          }
        })
      })
    )
  }

  private reject(state: CircuitOpenError["state"], retryAfter: Duration.Duration): Effect.Effect<never, CircuitOpenError> {
    return Effect.fail(this.rejection(state, retryAfter))
  }

  private rejection(state: CircuitOpenError["state"], retryAfter: Duration.Duration): CircuitOpenError {
    this.rejections++
    if (this.config.metrics) this.metrics().rejected()
    this.telemetry?.unsafeEmit(Events.names.circuitBreaker.callRejected, {
      count: 1,
      retry_after_ms: Duration.toMillis(retryAfter)
    }, { breaker: this.name, state })
    return new CircuitOpenError({ breaker: this.name, retryAfter, state })
  }

  // --- the synchronous hooks of Protect's fused path (see internal/kernel.ts) ----------------

  get [BreakerKernel](): BreakerKernelApi {
    return this
  }

  admit(): Ticket | CircuitOpenError {
    switch (this.code) {
      case CLOSED:
        return { epoch: this.epoch, probe: false, start: this.config.timed ? this.clock.unsafeCurrentTimeMillis() : -1 }
      case DISABLED:
        return passThrough
      case ISOLATED:
        return this.rejection("isolated", Duration.infinity)
    }
    const now = this.clock.unsafeCurrentTimeMillis()
    if (this.code === OPEN) {
      if (now < this.openUntil) return this.rejection("open", Duration.millis(this.openUntil - now))
      this.transition(HALF_OPEN, now)
    }
    if (this.probes >= this.config.halfOpenMaxCalls) return this.rejection("half_open", Duration.zero)
    this.probes++
    return { epoch: this.epoch, probe: true, start: now }
  }

  settle(ticket: Ticket, verdict: Verdict): void {
    if (ticket.probe) this.completeProbe(ticket.epoch, verdict, ticket.start)
    else this.recordClosed(ticket.epoch, verdict, ticket.start)
  }

  verdictOf(error: unknown): Verdict {
    return this.counts(error as E)
  }

  /** Classifies a failed call. Interruption is neutral; defects are bad. */
  private verdict(cause: Cause.Cause<E>): Verdict {
    if (cause._tag === "Fail") return this.counts(cause.error)
    if (cause._tag === "Die") return BAD
    if (Cause.isInterruptedOnly(cause)) return NEUTRAL
    if (Cause.isDie(cause)) return BAD
    for (const error of Cause.failures(cause)) if (this.counts(error) === BAD) return BAD
    return NEUTRAL
  }

  private counts(error: E): Verdict {
    const isFailure = this.config.isFailure
    if (isFailure === undefined) return BAD
    try {
      return isFailure(error) ? BAD : NEUTRAL
    } catch {
      return BAD // a predicate that throws is a defect: count it like one
    }
  }

  private isSlow(start: number, now: number): boolean {
    return this.config.slowMillis !== undefined && now - start >= this.config.slowMillis
  }

  /** Records a closed-state call; `start` is its start time, or -1 when it was not timed. */
  private recordClosed(epoch: number, verdict: Verdict, start: number): void {
    if (epoch !== this.epoch || verdict === NEUTRAL) return
    const timed = start >= 0
    const now = timed ? this.clock.unsafeCurrentTimeMillis() : -1
    const slow = timed && this.isSlow(start, now)
    const failure = verdict === BAD
    this.count(failure, slow)
    if (this.window.record(failure, slow, now)) this.open(timed ? now : this.clock.unsafeCurrentTimeMillis())
  }

  private completeProbe(epoch: number, verdict: Verdict, start: number): void {
    if (epoch !== this.epoch) return // the breaker moved on; this permit was already dropped
    this.probes--
    if (verdict === NEUTRAL) return
    const now = this.clock.unsafeCurrentTimeMillis()
    const slow = this.isSlow(start, now)
    this.count(verdict === BAD, slow)
    if (verdict === BAD || slow) this.open(now)
    else if (++this.halfOpenSuccesses >= this.config.successThreshold) this.close(now)
  }

  private count(failure: boolean, slow: boolean): void {
    if (failure) this.failures++
    else this.successes++
    if (slow) this.slowCalls++
    if (this.config.metrics) {
      const m = this.metrics()
      if (failure) m.failure()
      else m.success()
      if (slow) m.slow()
    }
  }

  // --- transitions --------------------------------------------------------------------------

  private metrics(): BreakerMetrics {
    return this.meters ??= new BreakerMetrics(this.name)
  }

  private transition(to: Code, now: number): void {
    const from = this.code
    this.code = to
    this.epoch++
    this.probes = 0
    this.halfOpenSuccesses = 0
    if (from === to) return // e.g. `reset` of a closed breaker: a new epoch, but no state change
    if (this.config.metrics) this.metrics().transition(to)
    this.telemetry?.unsafeEmit(Events.names.circuitBreaker.stateChange, {}, {
      breaker: this.name,
      from_state: stateNames[from],
      to_state: stateNames[to]
    })
    const listeners = this.listeners
    if (listeners !== undefined) {
      const change: StateChange = { breaker: this.name, from: stateNames[from]!, to: stateNames[to]!, at: now }
      for (const listener of listeners) listener(change)
    }
  }

  private open(now: number): void {
    this.openedAt = now
    this.openCount++
    this.openUntil = now + this.resetDelay(this.openCount)
    this.window.reset()
    this.transition(OPEN, now)
  }

  private close(now: number): void {
    this.window.reset()
    this.openCount = 0
    this.transition(CLOSED, now)
  }

  /** How long the `n`-th opening since the breaker last closed lasts (n ≥ 1). */
  private resetDelay(n: number): number {
    const reset = this.config.reset
    if (reset._tag === "fixed") return reset.millis
    const delays = this.resetDelays
    return delays.length === 0 ? 0 : delays[Math.min(n, delays.length) - 1]!
  }

  /** Lazily moves an open breaker whose delay is over to half-open. */
  private refresh(now: number): void {
    if (this.code === OPEN && now >= this.openUntil) this.transition(HALF_OPEN, now)
  }

  // --- inspection and control ---------------------------------------------------------------

  get state(): Effect.Effect<State> {
    return Effect.sync(() => {
      this.refresh(this.clock.unsafeCurrentTimeMillis())
      return stateNames[this.code]!
    })
  }

  get stats(): Effect.Effect<Stats> {
    return Effect.sync(() => {
      const now = this.clock.unsafeCurrentTimeMillis()
      this.refresh(now)
      return {
        name: this.name,
        state: stateNames[this.code]!,
        successes: this.successes,
        failures: this.failures,
        rejections: this.rejections,
        slowCalls: this.slowCalls,
        window: this.window.figures(now),
        openCount: this.openCount,
        openUntil: this.code === OPEN ? this.openUntil : undefined,
        halfOpenInFlight: this.probes
      }
    })
  }

  get stateChanges(): Stream.Stream<StateChange> {
    return Stream.asyncPush<StateChange>((emit) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const listener = (change: StateChange) => void emit.single(change)
          ;(this.listeners ??= []).push(listener)
          return listener
        }),
        (listener) =>
          Effect.sync(() => {
            const listeners = this.listeners
            if (listeners === undefined) return
            const i = listeners.indexOf(listener)
            if (i >= 0) listeners.splice(i, 1)
            if (listeners.length === 0) this.listeners = undefined
          })
      ), { bufferSize: 1024, strategy: "sliding" })
  }

  get isolate(): Effect.Effect<void> {
    return Effect.sync(() => this.transition(ISOLATED, this.clock.unsafeCurrentTimeMillis()))
  }

  get disable(): Effect.Effect<void> {
    return Effect.sync(() => this.transition(DISABLED, this.clock.unsafeCurrentTimeMillis()))
  }

  get reset(): Effect.Effect<void> {
    return Effect.sync(() => this.close(this.clock.unsafeCurrentTimeMillis()))
  }

  get snapshot(): Effect.Effect<Snapshot> {
    return Effect.sync(() => {
      this.refresh(this.clock.unsafeCurrentTimeMillis())
      return {
        name: this.name,
        state: stateNames[this.code]!,
        ...(this.openedAt === undefined ? {} : { openedAt: this.openedAt }),
        ...(this.code === OPEN ? { openUntil: this.openUntil } : {}),
        openCount: this.openCount,
        halfOpenSuccesses: this.halfOpenSuccesses,
        window: this.window.snapshot(),
        successes: this.successes,
        failures: this.failures,
        rejections: this.rejections,
        slowCalls: this.slowCalls
      }
    })
  }

  restore(input: unknown): Effect.Effect<void, ValidationError> {
    return Effect.flatMap(decodeSnapshot(input), (snapshot) => this.apply(snapshot))
  }

  /** Applies a valid snapshot. A window of another kind than this breaker's is ignored. */
  apply(snapshot: Snapshot): Effect.Effect<void> {
    return Effect.sync(() => {
      const now = this.clock.unsafeCurrentTimeMillis()
      this.window.reset()
      this.window.restore(snapshot.window)
      this.successes = snapshot.successes
      this.failures = snapshot.failures
      this.rejections = snapshot.rejections
      this.slowCalls = snapshot.slowCalls
      this.openedAt = snapshot.openedAt
      this.openCount = snapshot.openCount
      this.openUntil = snapshot.openUntil ?? now
      this.transition(codeOf(snapshot.state), now)
      this.halfOpenSuccesses = snapshot.state === "half_open"
        ? Math.min(snapshot.halfOpenSuccesses, this.config.successThreshold - 1)
        : 0
    })
  }

  /**
   * Computes the delays of a reset schedule (once: successive openings read them
   * synchronously, so a transition never waits on an effect, and a restored `openCount` of any
   * size costs nothing), then applies the initial snapshot. A schedule that ends keeps its last
   * delay; one that goes on is followed for `maxResetSteps` openings, then its last delay holds.
   * A jittered schedule is sampled once per breaker.
   */
  init(initial: Snapshot | undefined): Effect.Effect<this> {
    const reset = this.config.reset
    const delays = reset._tag === "fixed" ? Effect.void : Effect.map(
      Effect.flatMap(Effect.clock, (clock) => scheduleDelays(reset.schedule, clock.unsafeCurrentTimeMillis())),
      (delays) => {
        this.resetDelays = delays
      }
    )
    return Effect.as(initial === undefined ? delays : Effect.zipRight(delays, this.apply(initial)), this)
  }
}

/** Reset-schedule steps computed per breaker. */
const maxResetSteps = 64

const scheduleDelays = (schedule: Schedule.Schedule<unknown, unknown>, now: number): Effect.Effect<ReadonlyArray<number>> =>
  Effect.gen(function*() {
    const delays: Array<number> = []
    let state: unknown = schedule.initial
    while (delays.length < maxResetSteps) {
      const [next, , decision] = yield* schedule.step(now, undefined, state)
      if (ScheduleDecision.isDone(decision)) break
      state = next
      delays.push(Math.max(0, ScheduleIntervals.start(decision.intervals) - now))
    }
    return delays
  })

/**
 * Makes a breaker. It holds no fibers, timers or finalizers, so it needs no `Scope`.
 * Fails with `ValidationError` (naming the field) on bad options or a bad `initial` snapshot.
 */
export const make = <E = unknown>(options: Options<E> = {}): Effect.Effect<CircuitBreaker<E>, ValidationError> =>
  build(options)

/**
 * Configs are shared between breakers made from equal plain options (no `isFailure` function,
 * no reset `Schedule`): many breakers made alike then hold one config between them, a third of
 * an idle breaker's memory. The cache is small and only holds validated data.
 */
const sharedConfigs = new Map<string, Config<unknown>>()
const resolveShared = <E>(options: Options<E>): Either.Either<Config<E>, ValidationError> =>
  Either.flatMap(resolve(options), (config) => {
    if (config.isFailure !== undefined || config.reset._tag === "schedule") return Either.right(config)
    const key = JSON.stringify([config.window, config.slowMillis, config.reset, config.halfOpenMaxCalls, config.successThreshold, config.metrics])
    const shared = sharedConfigs.get(key)
    if (shared !== undefined) return Either.right(shared as Config<E>)
    if (sharedConfigs.size >= 256) sharedConfigs.delete(sharedConfigs.keys().next().value!)
    sharedConfigs.set(key, config as Config<unknown>)
    return Either.right(config)
  })

const build = <E>(options: Options<E>): Effect.Effect<Breaker<E>, ValidationError> =>
  Effect.gen(function*() {
    const config = yield* resolveShared(options)
    const initial = options.initial === undefined ? undefined : yield* decodeSnapshot(options.initial)
    const name = yield* Validation.nonEmptyString(field("name"), options.name ?? "circuit-breaker")
    const clock = yield* Effect.clock
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    return yield* new Breaker<E>(name, config, clock, telemetry).init(initial)
  })

/** `protect` as a pipeable function: `effect.pipe(CircuitBreaker.protect(breaker))`. */
export const protect: {
  <E>(breaker: CircuitBreaker<E>): <A, E1 extends E, R>(self: Effect.Effect<A, E1, R>) => Effect.Effect<A, E1 | CircuitOpenError, R>
  <A, E1 extends E, R, E>(self: Effect.Effect<A, E1, R>, breaker: CircuitBreaker<E>): Effect.Effect<A, E1 | CircuitOpenError, R>
} = dual(2, <A, E1 extends E, R, E>(self: Effect.Effect<A, E1, R>, breaker: CircuitBreaker<E>) => breaker.protect(self))

// ---------------------------------------------------------------------------------------------
// CircuitBreakers: named breakers
// ---------------------------------------------------------------------------------------------

/** Named breakers sharing default options. */
export interface Registry {
  /** The breaker named `name`, made with the defaults on first use. */
  get(name: string): Effect.Effect<CircuitBreaker>
  /**
   * Makes (or remakes) the breaker named `name` with the defaults overridden by `options`. A
   * breaker that already exists keeps its state (carried over by snapshot) but is replaced: a
   * reference obtained earlier keeps the old instance, so `get` it again.
   */
  configure(name: string, options: Omit<Options, "name">): Effect.Effect<CircuitBreaker, ValidationError>
  /** Removes a breaker; true when it existed. */
  remove(name: string): Effect.Effect<boolean>
  /** Runs an effect through the breaker named `name`. */
  protect<A, E, R>(name: string, self: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpenError, R>
  /** Stats of every breaker, by name. */
  readonly status: Effect.Effect<Readonly<Record<string, Stats>>>
  readonly names: Effect.Effect<ReadonlyArray<string>>
}

/** The `CircuitBreakers` service. */
export class CircuitBreakers extends Context.Tag("effect-foundation/CircuitBreakers")<CircuitBreakers, Registry>() {}

/** Makes a registry; `defaults` are validated here, once. */
export const makeRegistry = (defaults: Omit<Options, "name" | "initial"> = {}): Effect.Effect<Registry, ValidationError> =>
  Effect.gen(function*() {
    const config = yield* resolve(defaults)
    const clock = yield* Effect.clock
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const breakers = new Map<string, Breaker<unknown>>()
    const insert = (name: string, breaker: Breaker<unknown>): Breaker<unknown> => {
      const existing = breakers.get(name)
      if (existing !== undefined) return existing
      breakers.set(name, breaker)
      return breaker
    }
    const get = (name: string): Effect.Effect<CircuitBreaker> =>
      Effect.suspend(() => {
        const existing = breakers.get(name)
        if (existing !== undefined) return Effect.succeed(existing)
        return Effect.map(new Breaker(name, config, clock, telemetry).init(undefined), (b) => insert(name, b))
      })
    const registry: Registry = {
      get,
      configure: (name, options) =>
        Effect.gen(function*() {
          const current = breakers.get(name)
          const state = current === undefined ? undefined : yield* current.snapshot
          const made = yield* build({ ...defaults, ...options, name, ...(state === undefined ? {} : { initial: state }) })
          breakers.set(name, made)
          return made
        }),
      remove: (name) => Effect.sync(() => breakers.delete(name)),
      protect: (name, self) => Effect.flatMap(get(name), (breaker) => breaker.protect(self)),
      status: Effect.suspend(() =>
        Effect.map(
          Effect.forEach([...breakers.values()], (b) => b.stats),
          (all) => Object.fromEntries(all.map((s) => [s.name, s]))
        )
      ),
      names: Effect.sync(() => [...breakers.keys()])
    }
    return registry
  })

/** A layer of the `CircuitBreakers` service with the given defaults. */
export const layer = (defaults: Omit<Options, "name" | "initial"> = {}): Layer.Layer<CircuitBreakers, ValidationError> =>
  Layer.effect(CircuitBreakers, makeRegistry(defaults))

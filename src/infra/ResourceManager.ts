/**
 * ResourceManager: one guard of resource usage. It measures process memory (through the
 * `MemoryProbe` service) and the sizes reported by registered size providers (a repository, a
 * registry, a cache says how many entries it holds), hands out scoped reservations ("tokens") of
 * memory or entries, and derives a backpressure level (normal / moderate / severe) from the usage
 * ratios.
 *
 * Guarantees:
 * - Usage is measured FRESH on every `acquire` (probe and every provider), on `register`, and on
 *   a periodic sweep (a fiber in the manager's scope, driven by a `Schedule`); a measurement that
 *   started earlier never overwrites one that started later.
 * - Usage = measured + reserved: held tokens count. Check-and-reserve is one synchronous step, so
 *   concurrent acquires never over-admit.
 * - A token is held until its scope closes (success, failure, interruption) and is released
 *   exactly once. No expiry timer (the original's 5-minute hack).
 * - Denials are typed and checked in a fixed precedence: memory exhausted (usage plus the request
 *   would exceed the memory limit), then entries full (same for entries), then severe
 *   backpressure (the level is already severe when the request arrives). A request that fits
 *   while the level is below severe is admitted even if it takes the level to severe: the next
 *   one is refused. Each denial names the resource with its used and limit figures.
 * - The level is recomputed in the same step as every change of usage (measurement, new or
 *   removed provider, acquisition, release), so registering a provider or releasing a token
 *   changes it at once. Each change is published once, in order, on `levels` (a read-only view
 *   of a `SubscriptionRef`) and to alert handlers (`onAlert`), which run in their own fibers; a
 *   failing handler is logged with its cause and keeps receiving the next alerts.
 * - Bad options fail construction with `ValidationError` naming the field; bad input to
 *   `acquire`/`register` fails the same way and changes nothing. A failing size provider (or
 *   probe) is logged and keeps its last good value; it never fails an acquisition.
 *
 * Metrics (tagged `resource_manager`): gauges `foundation_resource_manager_memory_mb`,
 * `foundation_resource_manager_entries` (usage, reservations included) and
 * `foundation_resource_manager_level` (0 normal, 1 moderate, 2 severe); counters
 * `foundation_resource_manager_acquired_total` and `foundation_resource_manager_denied_total`
 * (tag `reason`). Telemetry (when the `Telemetry` service is in the context at construction):
 * the names of `events`.
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as Subscribable from "effect/Subscribable"
import * as SubscriptionRef from "effect/SubscriptionRef"
import {
  AlreadyExistsError,
  ResourceExhaustedError,
  Tagged,
  type ValidationError
} from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"

// ---------------------------------------------------------------------------------------------
// Vocabulary, events, errors
// ---------------------------------------------------------------------------------------------

/** What a token reserves: megabytes of memory, or entries. */
export type Kind = "memory" | "entries"

/** The kinds, in denial precedence order. */
export const kinds: ReadonlyArray<Kind> = ["memory", "entries"]

/** The backpressure level. */
export type Level = "normal" | "moderate" | "severe"

/** Why an acquisition was refused (the original's reasons). */
export type DenialReason = "memory_exhausted" | "entries_full" | "backpressure_active"

/** Telemetry event names (the original's `[:foundation, :resource_manager, …]`). */
export const events = Events.names.resourceManager

/**
 * The manager is under severe backpressure: the request would fit, but usage of `resource` is
 * already at or above the severe threshold, so new reservations are refused until it drops.
 */
export class BackpressureActiveError extends Tagged("BackpressureActiveError", {
  captureStack: false,
  category: "resource",
  severity: "medium",
  message: "Severe backpressure: new resources refused"
})<{
  readonly manager: string
  /** The resource whose ratio reached the severe threshold. */
  readonly resource: Kind
  /** Its usage (measured plus reserved), before the request. */
  readonly used: number
  readonly limit: number
  /** The severe threshold (a ratio of `limit`). */
  readonly threshold: number
  readonly kind: Kind
  readonly requested: number
}> {
  override describe() {
    return `Resource manager "${this.manager}" under severe backpressure: ${this.resource} at ${this.used} of ${this.limit} (severe from ${
      this.threshold * 100
    }%); ${this.requested} ${this.kind} refused`
  }
}

/**
 * Why `acquire` can refuse: `ResourceExhaustedError` (resource "memory" or "entries"; `used` is
 * the usage before the request, the message names the request) or `BackpressureActiveError`.
 */
export type Denial = ResourceExhaustedError | BackpressureActiveError

/** The reason of a denial. */
export const reasonOf = (denial: Denial): DenialReason =>
  denial._tag === "BackpressureActiveError"
    ? "backpressure_active"
    : denial.resource === "memory"
    ? "memory_exhausted"
    : "entries_full"

/** The level of a pair of usage ratios: severe if either is ≥ severe, moderate if ≥ alert. */
export const levelOf = (
  memoryRatio: number,
  entriesRatio: number,
  thresholds: { readonly alertThreshold: number; readonly severeThreshold: number }
): Level => {
  const ratio = Math.max(memoryRatio, entriesRatio)
  return ratio >= thresholds.severeThreshold ? "severe" : ratio >= thresholds.alertThreshold ? "moderate" : "normal"
}

// ---------------------------------------------------------------------------------------------
// The memory probe
// ---------------------------------------------------------------------------------------------

/** Reads the memory in use, in megabytes. */
export interface MemoryProbeService {
  readonly usedMb: Effect.Effect<number>
}

/** The `MemoryProbe` service (replace it in tests to drive memory usage). */
export class MemoryProbe extends Context.Tag("effect-foundation/ResourceManager/MemoryProbe")<
  MemoryProbe,
  MemoryProbeService
>() {}

const bytesPerMb = 1024 * 1024

/** The process's resident memory (`process.memoryUsage().rss`), in MB. */
export const processMemoryProbe: Layer.Layer<MemoryProbe> = Layer.succeed(MemoryProbe, {
  usedMb: Effect.sync(() => process.memoryUsage.rss() / bytesPerMb)
})

/** A probe reading `usedMb` (for tests, or another measure of memory). */
export const memoryProbe = (usedMb: Effect.Effect<number>): Layer.Layer<MemoryProbe> =>
  Layer.succeed(MemoryProbe, { usedMb })

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/** Options of a manager; defaults (the original's) in brackets. */
export interface Options {
  /** Used in errors, metrics and events ["resource_manager"]. */
  readonly name?: string
  /** Memory limit in MB, a positive number [1024]. */
  readonly maxMemoryMb?: number
  /** Entries limit (sum of the providers' sizes plus reservations), a positive integer [1,000,000]. */
  readonly maxEntries?: number
  /** Usage ratio from which the level is moderate, in (0, 1] [0.9]. */
  readonly alertThreshold?: number
  /** Usage ratio from which the level is severe, in (0, 1], above `alertThreshold` [0.95]. */
  readonly severeThreshold?: number
  /** Time between periodic measurements [60 s]. */
  readonly sweepInterval?: Duration.DurationInput
}

/** Options after validation. */
export interface Limits {
  readonly name: string
  readonly maxMemoryMb: number
  readonly maxEntries: number
  readonly alertThreshold: number
  readonly severeThreshold: number
  readonly sweepInterval: Duration.Duration
}

/** The original's defaults. */
export const defaults = {
  name: "resource_manager",
  maxMemoryMb: 1024,
  maxEntries: 1_000_000,
  alertThreshold: 0.9,
  severeThreshold: 0.95,
  sweepInterval: Duration.seconds(60)
} as const

const field = (name: string) => `resourceManager.${name}`

/** Validates options; every problem is a `ValidationError` naming the field. */
export const validate = (options: Options = {}): Either.Either<Limits, ValidationError> =>
  Either.gen(function*() {
    const name = yield* Validation.nonEmptyString(field("name"), options.name ?? defaults.name)
    const maxMemoryMb = yield* Validation.number(field("maxMemoryMb"), options.maxMemoryMb ?? defaults.maxMemoryMb, {
      min: 0,
      minExclusive: true
    })
    const maxEntries = yield* Validation.positiveInt(field("maxEntries"), options.maxEntries ?? defaults.maxEntries)
    const alertThreshold = yield* Validation.ratio(
      field("alertThreshold"),
      options.alertThreshold ?? defaults.alertThreshold,
      { exclusiveZero: true }
    )
    const severeThreshold = yield* Validation.ratio(
      field("severeThreshold"),
      options.severeThreshold ?? defaults.severeThreshold,
      { exclusiveZero: true }
    )
    if (severeThreshold <= alertThreshold) {
      return yield* Validation.invalid(
        field("severeThreshold"),
        `must be greater than alertThreshold (${alertThreshold}), got ${severeThreshold}`
      )
    }
    const sweepInterval = yield* Validation.duration(field("sweepInterval"), options.sweepInterval ?? defaults.sweepInterval)
    return { name, maxMemoryMb, maxEntries, alertThreshold, severeThreshold, sweepInterval }
  })

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

/** A held reservation. */
export interface Token {
  readonly id: number
  readonly kind: Kind
  readonly amount: number
  /** Epoch milliseconds (from `Clock`). */
  readonly acquiredAt: number
}

/** A registered size provider; unregistered when the scope of `register` closes. */
export interface Registration {
  readonly name: string
  /** Measures this provider now (updating usage and level) and returns its size. */
  readonly measure: Effect.Effect<number>
}

/** A change of level, as alert handlers receive it. */
export interface LevelChange {
  readonly manager: string
  readonly from: Level
  readonly to: Level
  readonly memoryRatio: number
  readonly entriesRatio: number
  /** Epoch milliseconds. */
  readonly at: number
}

/** Usage of one resource. `used = measured + reserved`; `ratio = used / limit`. */
export interface Usage {
  readonly measured: number
  readonly reserved: number
  readonly used: number
  readonly limit: number
  readonly ratio: number
}

/** Tokens held of one kind. */
export interface Held {
  readonly tokens: number
  readonly amount: number
}

/** What the manager sees and has done. */
export interface Stats {
  readonly name: string
  readonly level: Level
  /** Memory in MB. */
  readonly memory: Usage
  /** Entries, with the last measured size of each provider. */
  readonly entries: Usage & { readonly providers: Readonly<Record<string, number>> }
  readonly held: { readonly [K in Kind]: Held }
  readonly acquisitions: number
  readonly releases: number
  readonly denials: { readonly [R in DenialReason]: number }
  readonly sweeps: number
  /** Probe or provider measurements that failed or gave an invalid size (each logged). */
  readonly measurementFailures: number
}

/** The resource manager. */
export interface ResourceManagerService {
  readonly limits: Limits
  /**
   * Measures usage, then reserves `amount` of `kind` (MB of memory: a positive number; entries:
   * a positive integer) until the scope closes, or fails with a `Denial`.
   */
  acquire(kind: Kind, amount: number): Effect.Effect<Token, Denial | ValidationError, Scope.Scope>
  /** Runs `self` holding a reservation, released when it ends (whatever the outcome). */
  withResource<A, E, R>(
    kind: Kind,
    amount: number,
    self: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | Denial | ValidationError, R>
  /**
   * Registers a size provider under a unique `name`, measured now, on every acquisition and on
   * each sweep, until the scope closes. A provider that fails (or gives a negative or non-finite
   * size) is logged and keeps its last good size (0 before any).
   */
  register<E, R>(
    name: string,
    size: Effect.Effect<number, E, R>
  ): Effect.Effect<Registration, ValidationError | AlreadyExistsError, Scope.Scope | R>
  /** The current level (always up to date with the last change of usage). */
  readonly level: Effect.Effect<Level>
  /** The level as a read-only `SubscriptionRef`: `changes` gives the current level, then each change once. */
  readonly levels: Subscribable.Subscribable<Level>
  /**
   * Runs `handler` on each change of level, in a fiber of the current scope, from now until the
   * scope closes. A failing handler is logged with its cause and gets the next changes.
   */
  onAlert<X, E, R>(handler: (change: LevelChange) => Effect.Effect<X, E, R>): Effect.Effect<void, never, Scope.Scope | R>
  /** Measures everything now (as the periodic sweep does). */
  readonly sweep: Effect.Effect<void>
  readonly stats: Effect.Effect<Stats>
}

/** The `ResourceManager` service. */
export class ResourceManager extends Context.Tag("effect-foundation/ResourceManager")<
  ResourceManager,
  ResourceManagerService
>() {}

// ---------------------------------------------------------------------------------------------
// Implementation
// ---------------------------------------------------------------------------------------------

const levelCode: Readonly<Record<Level, number>> = { normal: 0, moderate: 1, severe: 2 }

/** A registered provider. Mutable fields are touched only inside synchronous steps. */
interface Provider {
  readonly name: string
  readonly size: Effect.Effect<number, unknown>
  value: number
  /** Sequence number of the measurement that gave `value`. */
  seq: number
  active: boolean
}

/** A token with its release flag (so that it is released exactly once). */
interface HeldToken extends Token {
  released: boolean
}

/** What one measurement read: undefined where the read failed. */
interface Reading {
  readonly seq: number
  readonly memoryMb: number | undefined
  readonly sizes: ReadonlyArray<readonly [Provider, number | undefined]>
}

class Meters {
  readonly memory: Metric.Metric.Gauge<number>
  readonly entries: Metric.Metric.Gauge<number>
  readonly level: Metric.Metric.Gauge<number>
  readonly acquired: Metric.Metric.Counter<number>
  readonly denied: Readonly<Record<DenialReason, Metric.Metric.Counter<number>>>
  constructor(name: string) {
    const tags = { resource_manager: name }
    this.memory = MetricKit.gauge("foundation_resource_manager_memory_mb", {
      description: "Memory in use in MB, reservations included",
      tags
    })
    this.entries = MetricKit.gauge("foundation_resource_manager_entries", {
      description: "Entries held by the size providers, reservations included",
      tags
    })
    this.level = MetricKit.gauge("foundation_resource_manager_level", {
      description: "Backpressure level: 0 normal, 1 moderate, 2 severe",
      tags
    })
    this.acquired = MetricKit.counter("foundation_resource_manager_acquired_total", {
      description: "Reservations granted",
      tags
    })
    const denied = (reason: DenialReason) =>
      MetricKit.counter("foundation_resource_manager_denied_total", {
        description: "Reservations refused, by reason",
        tags: { ...tags, reason }
      })
    this.denied = {
      memory_exhausted: denied("memory_exhausted"),
      entries_full: denied("entries_full"),
      backpressure_active: denied("backpressure_active")
    }
  }
}

const isSize = (n: unknown): n is number => typeof n === "number" && Number.isFinite(n) && n >= 0

/**
 * The manager. Every mutable field is read and written only inside synchronous steps (an
 * `Effect.sync`/`suspend` body): fibers interleave only between effects, so each step is atomic
 * without a lock; measurement (user code: the probe and the providers) always runs outside them.
 * Level changes found in a step are queued in `pending` (in step order) and published by
 * `flush`, under `publishLock`, by the fiber that made them before its operation returns.
 */
class Manager implements ResourceManagerService {
  private measuredMemory = 0
  private memorySeq = 0
  private measuredEntries = 0
  private readonly providers = new Map<string, Provider>()
  private readonly reserved: Record<Kind, number> = { memory: 0, entries: 0 }
  private readonly tokens: Record<Kind, number> = { memory: 0, entries: 0 }
  private current: Level = "normal"
  private seq = 0
  private nextTokenId = 1
  private acquisitions = 0
  private releases = 0
  private readonly denials: Record<DenialReason, number> = {
    memory_exhausted: 0,
    entries_full: 0,
    backpressure_active: 0
  }
  private sweeps = 0
  private failures = 0
  private pending: Array<LevelChange> = []
  /** Set when the manager's scope closes: alerts are no longer published (the PubSub is shut down). */
  private closed = false
  private readonly publishLock = Effect.unsafeMakeSemaphore(1)
  private readonly meters: Meters
  readonly levels: Subscribable.Subscribable<Level>

  constructor(
    readonly limits: Limits,
    private readonly probe: MemoryProbeService,
    private readonly clock: Clock.Clock,
    private readonly telemetry: Telemetry.Service | undefined,
    private readonly levelRef: SubscriptionRef.SubscriptionRef<Level>,
    private readonly alerts: PubSub.PubSub<LevelChange>
  ) {
    this.meters = new Meters(limits.name)
    this.levels = levelRef
    MetricKit.set(this.meters.level, 0)
  }

  // --- usage and level (synchronous) ---------------------------------------------------------

  private memoryUsed(): number {
    return this.measuredMemory + this.reserved.memory
  }

  private entriesUsed(): number {
    return this.measuredEntries + this.reserved.entries
  }

  private activeTokens(): number {
    return this.tokens.memory + this.tokens.entries
  }

  /** Recomputes the level after a change of usage; queues the change if there is one. */
  private recompute(): void {
    const memory = this.memoryUsed()
    const entries = this.entriesUsed()
    MetricKit.set(this.meters.memory, memory)
    MetricKit.set(this.meters.entries, entries)
    const memoryRatio = memory / this.limits.maxMemoryMb
    const entriesRatio = entries / this.limits.maxEntries
    const next = levelOf(memoryRatio, entriesRatio, this.limits)
    if (next === this.current) return
    const from = this.current
    this.current = next
    MetricKit.set(this.meters.level, levelCode[next])
    this.telemetry?.unsafeEmit(events.backpressureChanged, { memory_ratio: memoryRatio, entries_ratio: entriesRatio }, {
      resource_manager: this.limits.name,
      old_state: from,
      new_state: next
    })
    this.pending.push({
      manager: this.limits.name,
      from,
      to: next,
      memoryRatio,
      entriesRatio,
      at: this.clock.unsafeCurrentTimeMillis()
    })
  }

  /** Publishes queued level changes in order; uninterruptible, so none is lost. */
  private readonly flush: Effect.Effect<void> = Effect.uninterruptible(
    this.publishLock.withPermits(1)(
      Effect.suspend(() => {
        const batch = this.pending
        if (batch.length === 0) return Effect.void
        this.pending = []
        return Effect.forEach(
          batch,
          (change) =>
            Effect.zipRight(
              SubscriptionRef.set(this.levelRef, change.to),
              // Tokens and registrations may outlive the manager; publishing to the shut-down
              // PubSub would interrupt their release.
              Effect.suspend(() => this.closed ? Effect.void : PubSub.publish(this.alerts, change))
            ),
          { discard: true }
        )
      })
    )
  )

  /**
   * Runs a synchronous step, then publishes the level changes it queued (a step that queued one
   * always finds it still pending: nothing can drain `pending` within the step).
   */
  private step<A, E>(body: () => Effect.Effect<A, E>): Effect.Effect<A, E> {
    return Effect.uninterruptible(Effect.suspend(() => {
      const result = body()
      // Flush first: `result` may be a failure (a denial), which must not skip the flush.
      return this.pending.length === 0 ? result : Effect.zipRight(this.flush, result)
    }))
  }

  /** Stores a reading unless a later-started measurement already stored a source (synchronous). */
  private store(reading: Reading): void {
    if (reading.memoryMb !== undefined && reading.seq > this.memorySeq) {
      this.memorySeq = reading.seq
      this.measuredMemory = reading.memoryMb
    }
    for (const [provider, size] of reading.sizes) {
      if (size === undefined || !provider.active || reading.seq <= provider.seq) continue
      provider.seq = reading.seq
      this.measuredEntries += size - provider.value
      provider.value = size
    }
    this.recompute()
  }

  // --- measurement (runs user code, outside any step) ----------------------------------------

  private readMemory(): Effect.Effect<number | undefined> {
    return Effect.matchCauseEffect(this.probe.usedMb, {
      onSuccess: (mb) => isSize(mb) ? Effect.succeed(mb) : this.failed("memory probe", Cause.die(`invalid size ${mb}`)),
      onFailure: (cause) => this.failed("memory probe", cause)
    })
  }

  private readProvider(provider: Provider): Effect.Effect<number | undefined> {
    return Effect.matchCauseEffect(provider.size, {
      onSuccess: (n) =>
        isSize(n) ? Effect.succeed(n) : this.failed(`size provider "${provider.name}"`, Cause.die(`invalid size ${n}`)),
      onFailure: (cause) => this.failed(`size provider "${provider.name}"`, cause)
    })
  }

  private failed(what: string, cause: Cause.Cause<unknown>): Effect.Effect<undefined> {
    // An interruption carries no failure: pass it on.
    if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
    return Effect.zipRight(
      Effect.sync(() => {
        this.failures++
      }),
      Effect.as(
        Effect.logWarning(`resource manager "${this.limits.name}": ${what} failed; keeping its last size`, cause),
        undefined
      )
    )
  }

  /** Reads the probe and every provider (sequentially: sizes are usually a cheap read). */
  private readonly readAll: Effect.Effect<Reading> = Effect.suspend(() => {
    const seq = ++this.seq
    const providers = Array.from(this.providers.values())
    return Effect.zipWith(
      this.readMemory(),
      Effect.forEach(providers, (p) => Effect.map(this.readProvider(p), (size) => [p, size] as const)),
      (memoryMb, sizes): Reading => ({ seq, memoryMb, sizes })
    )
  })

  // --- acquisition ---------------------------------------------------------------------------

  private checkInput(kind: Kind, amount: number): Either.Either<Kind, ValidationError> {
    return Either.flatMap(
      Validation.oneOf("kind", kind, kinds),
      (k) =>
        Either.map(
          k === "entries"
            ? Validation.positiveInt("amount", amount)
            : Validation.number("amount", amount, { min: 0, minExclusive: true }),
          () => k
        )
    )
  }

  /** Stores a fresh reading, then checks and reserves in the same synchronous step. */
  private reserve(kind: Kind, amount: number, reading: Reading, start: number): Effect.Effect<HeldToken, Denial> {
    return this.step(() => {
      this.store(reading)
      const denial = this.check(kind, amount)
      const now = this.clock.unsafeCurrentTimeMillis()
      if (denial !== undefined) {
        const reason = reasonOf(denial)
        this.denials[reason]++
        MetricKit.bump(this.meters.denied[reason])
        this.telemetry?.unsafeEmit(events.denied, {
          duration: now - start,
          requested: amount,
          used: denial.used ?? 0,
          limit: denial.limit ?? 0
        }, { resource_manager: this.limits.name, kind, reason, resource: denial.resource })
        return Effect.fail(denial)
      }
      this.reserved[kind] += amount
      this.tokens[kind]++
      this.acquisitions++
      MetricKit.bump(this.meters.acquired)
      const token: HeldToken = { id: this.nextTokenId++, kind, amount, acquiredAt: now, released: false }
      this.recompute()
      this.telemetry?.unsafeEmit(events.acquired, {
        duration: now - start,
        amount,
        active_tokens: this.activeTokens(),
        memory_mb: this.memoryUsed(),
        entries: this.entriesUsed()
      }, { resource_manager: this.limits.name, kind, token_id: token.id })
      return Effect.succeed(token)
    })
  }

  /** The denial for a request, in precedence order, or undefined (synchronous). */
  private check(kind: Kind, amount: number): Denial | undefined {
    const { maxEntries, maxMemoryMb, name, severeThreshold } = this.limits
    const memory = this.memoryUsed()
    const entries = this.entriesUsed()
    const wantMemory = kind === "memory" ? amount : 0
    const wantEntries = kind === "entries" ? amount : 0
    const unit = kind === "memory" ? " MB" : ""
    if (memory + wantMemory > maxMemoryMb) {
      return new ResourceExhaustedError({
        resource: "memory",
        used: memory,
        limit: maxMemoryMb,
        message: `Resource manager "${name}": memory exhausted (${memory} MB in use of ${maxMemoryMb} MB; ${amount}${unit} ${kind} requested)`
      })
    }
    if (entries + wantEntries > maxEntries) {
      return new ResourceExhaustedError({
        resource: "entries",
        used: entries,
        limit: maxEntries,
        message: `Resource manager "${name}": entries full (${entries} of ${maxEntries}; ${amount}${unit} ${kind} requested)`
      })
    }
    if (this.current === "severe") {
      const memoryRatio = memory / maxMemoryMb
      const onMemory = memoryRatio >= severeThreshold
      return new BackpressureActiveError({
        manager: name,
        resource: onMemory ? "memory" : "entries",
        used: onMemory ? memory : entries,
        limit: onMemory ? maxMemoryMb : maxEntries,
        threshold: severeThreshold,
        kind,
        requested: amount
      })
    }
    return undefined
  }

  private release(token: HeldToken): Effect.Effect<void> {
    return this.step(() => {
      if (token.released) return Effect.void
      token.released = true
      this.reserved[token.kind] -= token.amount
      // Floating-point sums of fractional MB may not come back to exactly zero.
      if (--this.tokens[token.kind] === 0) this.reserved[token.kind] = 0
      this.releases++
      this.recompute()
      this.telemetry?.unsafeEmit(events.released, {
        duration: this.clock.unsafeCurrentTimeMillis() - token.acquiredAt,
        amount: token.amount,
        active_tokens: this.activeTokens(),
        memory_mb: this.memoryUsed(),
        entries: this.entriesUsed()
      }, { resource_manager: this.limits.name, kind: token.kind, token_id: token.id })
      return Effect.void
    })
  }

  /** Validates, measures (interruptible, nothing held yet), then hands over the reserving step. */
  private prepare(kind: Kind, amount: number): Effect.Effect<Effect.Effect<HeldToken, Denial>, ValidationError> {
    return Effect.suspend(() => {
      const input = this.checkInput(kind, amount)
      if (Either.isLeft(input)) return Effect.fail(input.left)
      const start = this.clock.unsafeCurrentTimeMillis()
      return Effect.map(this.readAll, (reading) => this.reserve(kind, amount, reading, start))
    })
  }

  acquire(kind: Kind, amount: number): Effect.Effect<Token, Denial | ValidationError, Scope.Scope> {
    return Effect.flatMap(this.prepare(kind, amount), (reserve) => Effect.acquireRelease(reserve, (t) => this.release(t)))
  }

  withResource<A, E, R>(
    kind: Kind,
    amount: number,
    self: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | Denial | ValidationError, R> {
    return Effect.flatMap(
      this.prepare(kind, amount),
      (reserve) => Effect.acquireUseRelease(reserve, () => self, (t) => this.release(t))
    )
  }

  // --- providers -----------------------------------------------------------------------------

  register<E, R>(
    name: string,
    size: Effect.Effect<number, E, R>
  ): Effect.Effect<Registration, ValidationError | AlreadyExistsError, Scope.Scope | R> {
    return Effect.gen(this, function*() {
      yield* Validation.nonEmptyString("name", name)
      const context = yield* Effect.context<R>()
      const provider = yield* Effect.acquireRelease(
        Effect.suspend((): Effect.Effect<Provider, AlreadyExistsError> => {
          if (this.providers.has(name)) {
            return Effect.fail(new AlreadyExistsError({ resource: "size provider", key: name }))
          }
          const made: Provider = { name, size: Effect.provide(size, context), value: 0, seq: 0, active: true }
          this.providers.set(name, made)
          return Effect.succeed(made)
        }),
        (p) => this.unregister(p)
      )
      const measure = this.measureOne(provider)
      yield* measure
      return { name, measure }
    })
  }

  private measureOne(provider: Provider): Effect.Effect<number> {
    return Effect.suspend(() => {
      const seq = ++this.seq
      return Effect.flatMap(this.readProvider(provider), (size) =>
        this.step(() => {
          this.store({ seq, memoryMb: undefined, sizes: [[provider, size]] })
          return Effect.succeed(provider.value)
        }))
    })
  }

  private unregister(provider: Provider): Effect.Effect<void> {
    return this.step(() => {
      if (!provider.active) return Effect.void
      provider.active = false
      this.providers.delete(provider.name)
      this.measuredEntries -= provider.value
      if (this.providers.size === 0) this.measuredEntries = 0
      this.recompute()
      return Effect.void
    })
  }

  // --- level, alerts, sweep, stats -----------------------------------------------------------

  get level(): Effect.Effect<Level> {
    return Effect.sync(() => this.current)
  }

  onAlert<X, E, R>(handler: (change: LevelChange) => Effect.Effect<X, E, R>): Effect.Effect<void, never, Scope.Scope | R> {
    return Effect.gen(this, function*() {
      // Subscribed before returning: every change after this call reaches the handler.
      const subscription = yield* PubSub.subscribe(this.alerts)
      const run = (change: LevelChange) =>
        Effect.catchAllCause(handler(change), (cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.failCause(cause)
            : Effect.logWarning(
              `resource manager "${this.limits.name}": alert handler failed on ${change.from} -> ${change.to}`,
              cause
            ))
      // Explicitly interruptible: forked from an uninterruptible region it would otherwise
      // inherit that, and closing the scope would hang.
      yield* Effect.forkScoped(Effect.interruptible(Effect.forever(Effect.flatMap(Queue.take(subscription), run))))
    })
  }

  get sweep(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const start = this.clock.unsafeCurrentTimeMillis()
      return Effect.flatMap(this.readAll, (reading) =>
        this.step(() => {
          this.store(reading)
          this.sweeps++
          this.telemetry?.unsafeEmit(events.cleanup, {
            duration: this.clock.unsafeCurrentTimeMillis() - start,
            active_tokens: this.activeTokens(),
            memory_mb: this.memoryUsed(),
            entries: this.entriesUsed()
          }, { resource_manager: this.limits.name })
          return Effect.void
        }))
    })
  }

  get stats(): Effect.Effect<Stats> {
    return Effect.sync(() => {
      const { maxEntries, maxMemoryMb, name } = this.limits
      const memory = this.memoryUsed()
      const entries = this.entriesUsed()
      return {
        name,
        level: this.current,
        memory: {
          measured: this.measuredMemory,
          reserved: this.reserved.memory,
          used: memory,
          limit: maxMemoryMb,
          ratio: memory / maxMemoryMb
        },
        entries: {
          measured: this.measuredEntries,
          reserved: this.reserved.entries,
          used: entries,
          limit: maxEntries,
          ratio: entries / maxEntries,
          providers: Object.fromEntries(Array.from(this.providers.values(), (p) => [p.name, p.value]))
        },
        held: {
          memory: { tokens: this.tokens.memory, amount: this.reserved.memory },
          entries: { tokens: this.tokens.entries, amount: this.reserved.entries }
        },
        acquisitions: this.acquisitions,
        releases: this.releases,
        denials: { ...this.denials },
        sweeps: this.sweeps,
        measurementFailures: this.failures
      }
    })
  }

  /** Stops publishing alerts and ends the handlers' subscriptions (under the publish lock). */
  get close(): Effect.Effect<void> {
    return this.publishLock.withPermits(1)(Effect.suspend(() => {
      this.closed = true
      return PubSub.shutdown(this.alerts)
    }))
  }

  /** The first measurement, made when the manager is built. */
  get start(): Effect.Effect<void> {
    return Effect.flatMap(this.readAll, (reading) => this.step(() => Effect.sync(() => this.store(reading))))
  }
}

/** Alerts a lagging handler may fall behind by before the oldest are dropped for it. */
const alertCapacity = 1024

/**
 * Makes a manager in the current scope: validates the options, measures once, and forks the
 * periodic sweep into the scope (closing it stops the sweep and ends the alert handlers).
 */
export const make = (
  options: Options = {}
): Effect.Effect<ResourceManagerService, ValidationError, Scope.Scope | MemoryProbe> =>
  Effect.gen(function*() {
    const limits = yield* validate(options)
    const probe = yield* MemoryProbe
    const clock = yield* Effect.clock
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const levelRef = yield* SubscriptionRef.make<Level>("normal")
    const alerts = yield* PubSub.sliding<LevelChange>(alertCapacity)
    const manager = yield* Effect.acquireRelease(
      Effect.sync(() => new Manager(limits, probe, clock, telemetry, levelRef, alerts)),
      (manager) => manager.close
    )
    yield* manager.start
    yield* Effect.forkScoped(Effect.interruptible(Effect.schedule(manager.sweep, Schedule.spaced(limits.sweepInterval))))
    return manager
  })

/** A layer of the `ResourceManager` service; bad options fail it with `ValidationError`. */
export const layer = (options: Options = {}): Layer.Layer<ResourceManager, ValidationError, MemoryProbe> =>
  Layer.scoped(ResourceManager, make(options))

/** `layer` with the process memory probe. */
export const layerWithProcessMemory = (options: Options = {}): Layer.Layer<ResourceManager, ValidationError> =>
  Layer.provide(layer(options), processMemoryProbe)

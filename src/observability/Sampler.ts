/**
 * Event sampling: decides, per event name, whether an event should be emitted, to bound
 * telemetry volume. Each event name has a strategy (configured per event, or the default one).
 *
 * Strategies (`strategy`)
 * - `"always"` / `"never"`.
 * - `"random"`: emits with probability `rate` (0..1; default 1).
 * - `"rate-limited"`: at most `maxPerSecond` emitted events (default 10 000) per 1-second
 *   window; windows are fixed and aligned on whole seconds of `Clock` time (the original reset
 *   every window with a 1 s timer; aligned windows give the same behaviour with no timer). Only
 *   emitted events count against the window.
 * - `"adaptive"`: emits with a current probability, starting at `initialRate` (default 1). Every
 *   `adjustmentInterval` of `Clock` time (default 5 s; the original accepted it but never used
 *   it) the rate of emitted events over the interval just ended is compared with `targetRate`
 *   (emitted events per second, default 1000): above it, the probability is multiplied by
 *   `decreaseFactor` (default 0.9), otherwise by `increaseFactor` (default 1.1, capped at 1).
 *   The probability never falls below `minRate` (> 0, default 0.01), so it can always recover
 *   (the original's could reach 0 and stay there). Adjustments happen lazily, at the first
 *   decision after an interval has ended; an interval with no decision at all is merged into
 *   the next one (one adjustment, from the average rate over the whole elapsed time).
 * - `"reservoir"`: real reservoir sampling (Algorithm R) with a reservoir of `size` items
 *   (default 1000). The first `size` events are emitted and stored; the n-th event after that
 *   replaces a uniformly chosen stored item with probability size/n and is emitted exactly when
 *   it enters the reservoir. So the emission probability is the same as the original's
 *   decaying filter, but the reservoir is real: at any time it holds a uniform sample of every
 *   event seen since the last reset (its sequence number, time and metadata), read with
 *   `reservoir(event)`.
 *
 * Guarantees
 * - `shouldSample` is lock-free: no queue, no semaphore, no single mailbox (the original
 *   serialised every decision through one GenServer). The decision and every state update it
 *   makes happen in ONE synchronous step over plain mutable per-event state, hence atomically
 *   (fibers interleave only between effects); a strategy that needs a random number draws it
 *   from the fiber's `Random` just before that step.
 * - Time comes from `Clock` and randomness from `Random`: under `TestClock` and a seeded
 *   `Random` (`Effect.withRandom(Random.make(seed))`) the decisions are reproducible.
 * - Options are validated at construction and by `configure` (`ValidationError` naming the
 *   field; nothing is coerced). A disabled sampler emits everything and counts nothing.
 * - Memory is bounded: at most `maxEvents` (default 10 000) unconfigured event names get their
 *   own state; further unconfigured names share the state of the `otherEvent` bucket (they are
 *   decided by the default strategy as one stream, and counted under `otherEvent` in the
 *   stats). Configured events always have their own state (they are named explicitly by
 *   `configure` or the layer options, not discovered from traffic). A reservoir holds at most
 *   `size` items.
 * - No background fibers and no timers: windows and adjustment intervals are evaluated against
 *   `Clock` when a decision is made.
 * - When no `Sampler` is provided, the module-level `shouldSample` answers `true` (fail open,
 *   like the original when its process was absent).
 *
 * Metrics (created once per sampler, tagged `sampler` with its name): counters
 * `foundation_sampler_sampled_total` and `foundation_sampler_dropped_total`.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import type { ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as MetricKit from "./MetricKit.js"

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/** The sampling strategies. */
export type StrategyName = "always" | "never" | "random" | "rate-limited" | "adaptive" | "reservoir"

/** All strategies. */
export const strategyNames: ReadonlyArray<StrategyName> = [
  "always",
  "never",
  "random",
  "rate-limited",
  "adaptive",
  "reservoir"
]

/** Options of the adaptive strategy. */
export interface AdaptiveOptions {
  readonly strategy: "adaptive"
  /** Emitted events per second to aim for (a number > 0; default 1000). */
  readonly targetRate?: number | undefined
  /** The emission probability before the first adjustment (minRate..1; default 1). */
  readonly initialRate?: number | undefined
  /** The lowest emission probability (0 < minRate ≤ 1; default 0.01). */
  readonly minRate?: number | undefined
  /** Multiplies the probability when under target (≥ 1; default 1.1). */
  readonly increaseFactor?: number | undefined
  /** Multiplies the probability when over target (0 < f ≤ 1; default 0.9). */
  readonly decreaseFactor?: number | undefined
  /** How often the probability is adjusted (positive, finite; default 5 s). */
  readonly adjustmentInterval?: Duration.DurationInput | undefined
}

/** The strategy of an event, with its parameters (absent parameters take the defaults). */
export type StrategyOptions =
  | { readonly strategy: "always" }
  | { readonly strategy: "never" }
  /** `rate`: emission probability in 0..1 (default 1). */
  | { readonly strategy: "random"; readonly rate?: number | undefined }
  /** `maxPerSecond`: emitted events per 1-second window (a number ≥ 0; default 10 000). */
  | { readonly strategy: "rate-limited"; readonly maxPerSecond?: number | undefined }
  | AdaptiveOptions
  /** `size`: items kept in the reservoir (an integer ≥ 1; default 1000). */
  | { readonly strategy: "reservoir"; readonly size?: number | undefined }

/** A validated strategy. */
export type Strategy =
  | { readonly strategy: "always" }
  | { readonly strategy: "never" }
  | { readonly strategy: "random"; readonly rate: number }
  | { readonly strategy: "rate-limited"; readonly maxPerSecond: number }
  | {
    readonly strategy: "adaptive"
    readonly targetRate: number
    readonly initialRate: number
    readonly minRate: number
    readonly increaseFactor: number
    readonly decreaseFactor: number
    readonly adjustmentInterval: Duration.Duration
  }
  | { readonly strategy: "reservoir"; readonly size: number }

/** Options of a sampler; every field is optional. */
export interface Options {
  /** Used in metric tags and stats (default `"sampler"`). */
  readonly name?: string | undefined
  /** When false, every event is emitted and nothing is counted (default true). */
  readonly enabled?: boolean | undefined
  /** The strategy of events with no configuration of their own (default `always`). */
  readonly defaultStrategy?: StrategyOptions | undefined
  /** Per-event strategies, by event name. */
  readonly events?: Readonly<Record<string, StrategyOptions>> | undefined
  /** Most unconfigured event names with their own state (an integer ≥ 1; default 10 000). */
  readonly maxEvents?: number | undefined
}

/** Validated options. */
export interface Config {
  readonly name: string
  readonly enabled: boolean
  readonly defaultStrategy: Strategy
  readonly events: ReadonlyMap<string, Strategy>
  readonly maxEvents: number
}

/** The defaults (the strategy parameters are the original's). */
export const defaults = {
  name: "sampler",
  enabled: true,
  defaultStrategy: { strategy: "always" },
  maxEvents: 10_000,
  rate: 1,
  maxPerSecond: 10_000,
  reservoirSize: 1000,
  targetRate: 1000,
  initialRate: 1,
  minRate: 0.01,
  increaseFactor: 1.1,
  decreaseFactor: 0.9,
  adjustmentInterval: Duration.seconds(5)
} as const

/** The event name under which unconfigured events beyond `maxEvents` are decided and counted. */
export const otherEvent = "<other>"

/** Arbitrary data attached to an event (stored with reservoir items). */
export type Metadata = Readonly<Record<string, unknown>>

/** One item held by a reservoir. */
export interface ReservoirItem {
  /** Position of the event in the event's stream since the last reset (1-based). */
  readonly sequence: number
  /** When it was decided, in epoch milliseconds (`Clock`). */
  readonly at: number
  readonly metadata: Metadata | undefined
}

/** Counters of one event since the last reset (or since it was last configured). */
export interface EventStats {
  readonly event: string
  readonly strategy: StrategyName
  /** Events emitted. */
  readonly sampled: number
  /** Decisions made. */
  readonly total: number
  /** sampled / total (0 before the first decision). */
  readonly rate: number
  /** The adaptive strategy's current emission probability (adaptive only). */
  readonly currentRate?: number
}

/** Counters of a sampler since it was made or last reset. */
export interface Stats {
  readonly name: string
  readonly enabled: boolean
  /** Milliseconds since the sampler was made or last reset. */
  readonly uptimeMillis: number
  readonly sampled: number
  readonly total: number
  /** Events with at least one decision, by name. */
  readonly events: Readonly<Record<string, EventStats>>
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/** Every field any strategy accepts, for reading options of unknown shape. */
interface LooseStrategyOptions {
  readonly strategy?: unknown
  readonly rate?: unknown
  readonly maxPerSecond?: unknown
  readonly size?: unknown
  readonly targetRate?: unknown
  readonly initialRate?: unknown
  readonly minRate?: unknown
  readonly increaseFactor?: unknown
  readonly decreaseFactor?: unknown
  readonly adjustmentInterval?: unknown
}

/**
 * Validates a strategy, applying the defaults; field names in errors are prefixed with
 * `prefix` (`"defaultStrategy.rate"`, `events["db.query"].size`).
 */
export const validateStrategy = (
  options: StrategyOptions,
  prefix = ""
): Either.Either<Strategy, ValidationError> =>
  Either.gen(function*() {
    const field = (name: string) => (prefix === "" ? name : `${prefix}.${name}`)
    if (typeof options !== "object" || options === null) {
      return yield* Validation.invalid(prefix === "" ? "options" : prefix, "must be an object")
    }
    const o: LooseStrategyOptions = options
    const strategy = yield* Validation.oneOf(field("strategy"), o.strategy, strategyNames)
    switch (strategy) {
      case "always":
      case "never":
        return { strategy }
      case "random": {
        const rate = yield* Validation.ratio(field("rate"), o.rate ?? defaults.rate)
        return { strategy, rate }
      }
      case "rate-limited": {
        const maxPerSecond = yield* Validation.number(field("maxPerSecond"), o.maxPerSecond ?? defaults.maxPerSecond, {
          min: 0
        })
        return { strategy, maxPerSecond }
      }
      case "reservoir": {
        const size = yield* Validation.positiveInt(field("size"), o.size ?? defaults.reservoirSize)
        return { strategy, size }
      }
      case "adaptive": {
        const targetRate = yield* Validation.number(field("targetRate"), o.targetRate ?? defaults.targetRate, {
          min: 0,
          minExclusive: true
        })
        const minRate = yield* Validation.ratio(field("minRate"), o.minRate ?? defaults.minRate, { exclusiveZero: true })
        const initialRate = yield* Validation.number(field("initialRate"), o.initialRate ?? defaults.initialRate, {
          min: minRate,
          max: 1
        })
        const increaseFactor = yield* Validation.number(
          field("increaseFactor"),
          o.increaseFactor ?? defaults.increaseFactor,
          { min: 1 }
        )
        const decreaseFactor = yield* Validation.number(
          field("decreaseFactor"),
          o.decreaseFactor ?? defaults.decreaseFactor,
          { min: 0, minExclusive: true, max: 1 }
        )
        const adjustmentInterval = yield* Validation.duration(
          field("adjustmentInterval"),
          o.adjustmentInterval ?? defaults.adjustmentInterval
        )
        return { strategy, targetRate, initialRate, minRate, increaseFactor, decreaseFactor, adjustmentInterval }
      }
    }
  })

/** Validates options, applying the defaults; fails with a `ValidationError` naming the field. */
export const validate = (options: Options = {}): Either.Either<Config, ValidationError> =>
  Either.gen(function*() {
    const name = yield* Validation.nonEmptyString("name", options.name ?? defaults.name)
    const enabled = options.enabled ?? defaults.enabled
    if (typeof enabled !== "boolean") return yield* Validation.invalid("enabled", "must be a boolean")
    const defaultStrategy = yield* validateStrategy(options.defaultStrategy ?? defaults.defaultStrategy, "defaultStrategy")
    const events = new Map<string, Strategy>()
    for (const [event, strategy] of Object.entries(options.events ?? {})) {
      const prefix = `events[${JSON.stringify(event)}]`
      if (event.length === 0) return yield* Validation.invalid(prefix, "event names must be non-empty")
      events.set(event, yield* validateStrategy(strategy, prefix))
    }
    const maxEvents = yield* Validation.positiveInt("maxEvents", options.maxEvents ?? defaults.maxEvents)
    return { name, enabled, defaultStrategy, events, maxEvents }
  })

// ---------------------------------------------------------------------------------------------
// Per-event state
// ---------------------------------------------------------------------------------------------

const SECOND = 1000

/**
 * The state of one event. One class with every strategy's fields, so that all states have the
 * same shape; read and written only inside synchronous steps.
 */
class EventState {
  sampled = 0
  total = 0
  /** rate-limited: the current window (whole seconds of Clock time) and what it emitted. */
  window = -1
  windowCount = 0
  /** adaptive: the current probability, the start of the interval and what it emitted. */
  currentRate: number
  intervalStart: number
  intervalSampled = 0
  readonly intervalMillis: number
  /** reservoir: the items (at most `size`). */
  readonly items: Array<ReservoirItem> = []

  constructor(
    readonly event: string,
    readonly strategy: Strategy,
    /** Whether the state counts against `maxEvents`. */
    readonly counted: boolean,
    now: number
  ) {
    this.intervalStart = now
    if (strategy.strategy === "adaptive") {
      this.currentRate = strategy.initialRate
      this.intervalMillis = Duration.toMillis(strategy.adjustmentInterval)
    } else {
      this.currentRate = strategy.strategy === "random" ? strategy.rate : strategy.strategy === "never" ? 0 : 1
      this.intervalMillis = 0
    }
  }

  /** Whether the next decision needs a random number. */
  needsRandom(): boolean {
    const s = this.strategy
    switch (s.strategy) {
      case "random":
        return s.rate > 0 && s.rate < 1
      case "adaptive":
        return true
      case "reservoir":
        return this.total >= s.size
      default:
        return false
    }
  }

  /** Decides and updates the strategy's state (not the counters); `u` is uniform in [0, 1). */
  decide(now: number, u: number, metadata: Metadata | undefined): boolean {
    const s = this.strategy
    switch (s.strategy) {
      case "always":
        return true
      case "never":
        return false
      case "random":
        return u < s.rate
      case "rate-limited": {
        const window = Math.floor(now / SECOND)
        if (window !== this.window) {
          this.window = window
          this.windowCount = 0
        }
        if (this.windowCount < s.maxPerSecond) {
          this.windowCount++
          return true
        }
        return false
      }
      case "adaptive": {
        const elapsed = now - this.intervalStart
        if (elapsed >= this.intervalMillis) {
          const observed = (this.intervalSampled * SECOND) / elapsed
          this.currentRate = observed > s.targetRate
            ? Math.max(s.minRate, this.currentRate * s.decreaseFactor)
            : Math.min(1, this.currentRate * s.increaseFactor)
          this.intervalStart = now
          this.intervalSampled = 0
        }
        const keep = u < this.currentRate
        if (keep) this.intervalSampled++
        return keep
      }
      case "reservoir": {
        // Algorithm R: the n-th item enters with probability size/n, replacing a uniform slot.
        const n = this.total + 1
        if (n <= s.size) {
          this.items.push({ sequence: n, at: now, metadata })
          return true
        }
        const slot = Math.floor(u * n)
        if (slot < s.size) {
          this.items[slot] = { sequence: n, at: now, metadata }
          return true
        }
        return false
      }
    }
  }

  stats(): EventStats {
    const base = {
      event: this.event,
      strategy: this.strategy.strategy,
      sampled: this.sampled,
      total: this.total,
      rate: this.total === 0 ? 0 : this.sampled / this.total
    }
    return this.strategy.strategy === "adaptive" ? { ...base, currentRate: this.currentRate } : base
  }
}

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

/** An event sampler. */
export interface SamplerService {
  /** The options as validated at construction (later `configure` calls are not reflected). */
  readonly config: Config
  /**
   * Whether to emit one occurrence of `event` (counted in the stats). `metadata` is stored
   * with the item by the reservoir strategy and ignored by the others.
   */
  readonly shouldSample: (event: string, metadata?: Metadata) => Effect.Effect<boolean>
  /**
   * Sets the strategy of `event` (replacing any previous one); the event starts afresh (its
   * counters and strategy state are cleared). Bad options fail with `ValidationError` and
   * change nothing.
   */
  readonly configure: (event: string, options: StrategyOptions) => Effect.Effect<void, ValidationError>
  /** The strategy that decides `event` now. */
  readonly strategyOf: (event: string) => Effect.Effect<Strategy>
  /** Counters of one event, if it has had a decision since the last reset. */
  readonly eventStats: (event: string) => Effect.Effect<Option.Option<EventStats>>
  /** Counters of every event. */
  readonly stats: Effect.Effect<Stats>
  /** The items held by the reservoir of `event`, in sequence order (empty for other strategies). */
  readonly reservoir: (event: string) => Effect.Effect<ReadonlyArray<ReservoirItem>>
  /** Clears every counter, window, adaptive rate and reservoir; keeps the configuration. */
  readonly reset: Effect.Effect<void>
}

/** The `Sampler` service tag. */
export class Sampler extends Context.Tag("effect-foundation/Sampler")<Sampler, SamplerService>() {}

interface Metrics {
  readonly sampled: Metric.Metric.Counter<number>
  readonly dropped: Metric.Metric.Counter<number>
}

const makeMetrics = (name: string): Metrics => ({
  sampled: MetricKit.counter("foundation_sampler_sampled_total", {
    description: "Events the sampler decided to emit",
    tags: { sampler: name }
  }),
  dropped: MetricKit.counter("foundation_sampler_dropped_total", {
    description: "Events the sampler decided to drop",
    tags: { sampler: name }
  })
})

const alwaysTrue: Effect.Effect<boolean> = Effect.succeed(true)

/** Makes a sampler. Fails with `ValidationError` for bad options. */
export const make = (options: Options = {}): Effect.Effect<SamplerService, ValidationError> =>
  Effect.gen(function*() {
    const config = yield* validate(options)
    const { enabled, maxEvents } = config
    const metrics = makeMetrics(config.name)
    // All of this is plain mutable state, read and written only inside synchronous steps
    // (atomic: fibers interleave only between effects). No lock: this is the hot path.
    const configured = new Map(config.events)
    const states = new Map<string, EventState>()
    let unconfigured = 0
    let startedAt = yield* Clock.currentTimeMillis

    const strategyFor = (event: string): Strategy => configured.get(event) ?? config.defaultStrategy

    const stateFor = (event: string, now: number): EventState => {
      const existing = states.get(event)
      if (existing !== undefined) return existing
      const own = configured.get(event)
      if (own !== undefined) {
        const state = new EventState(event, own, false, now)
        states.set(event, state)
        return state
      }
      if (unconfigured >= maxEvents) {
        const other = states.get(otherEvent)
        if (other !== undefined) return other
        const state = new EventState(otherEvent, strategyFor(otherEvent), false, now)
        states.set(otherEvent, state)
        return state
      }
      unconfigured++
      const state = new EventState(event, config.defaultStrategy, true, now)
      states.set(event, state)
      return state
    }

    // The whole decision: one synchronous step.
    const step = (event: string, now: number, u: number, metadata: Metadata | undefined): boolean => {
      const state = stateFor(event, now)
      const keep = state.decide(now, u, metadata)
      state.total++
      if (keep) {
        state.sampled++
        MetricKit.bump(metrics.sampled)
      } else {
        MetricKit.bump(metrics.dropped)
      }
      return keep
    }

    const shouldSample = (event: string, metadata?: Metadata): Effect.Effect<boolean> =>
      Effect.withFiberRuntime((fiber) => {
        const services = fiber.currentDefaultServices
        const clock = Context.get(services, Clock.Clock)
        const now = clock.unsafeCurrentTimeMillis()
        if (!stateFor(event, now).needsRandom()) return Effect.succeed(step(event, now, 0, metadata))
        // The draw is one step, the decision the next; the decision looks the state up again,
        // so a `configure` or `reset` in between is honoured.
        return Effect.map(
          Context.get(services, Random.Random).next,
          (u) => step(event, clock.unsafeCurrentTimeMillis(), u, metadata)
        )
      })

    const configure = (event: string, strategyOptions: StrategyOptions): Effect.Effect<void, ValidationError> =>
      Effect.suspend(() => {
        const checked = Either.flatMap(Validation.nonEmptyString("event", event), () => validateStrategy(strategyOptions))
        if (Either.isLeft(checked)) return Effect.fail(checked.left)
        configured.set(event, checked.right)
        const previous = states.get(event)
        if (previous !== undefined) {
          states.delete(event)
          if (previous.counted) unconfigured--
        }
        return Effect.void
      })

    const strategyOf = (event: string): Effect.Effect<Strategy> =>
      Effect.sync(() =>
        states.get(event)?.strategy ??
          (configured.has(event) || unconfigured < maxEvents ? strategyFor(event) : strategyFor(otherEvent))
      )

    const eventStats = (event: string): Effect.Effect<Option.Option<EventStats>> =>
      Effect.sync(() => {
        const state = states.get(event)
        return state === undefined ? Option.none() : Option.some(state.stats())
      })

    const stats: Effect.Effect<Stats> = Effect.clockWith((clock) =>
      Effect.sync(() => {
        let sampled = 0
        let total = 0
        const events: Array<readonly [string, EventStats]> = []
        for (const [event, state] of states) {
          sampled += state.sampled
          total += state.total
          events.push([event, state.stats()])
        }
        return {
          name: config.name,
          enabled,
          uptimeMillis: clock.unsafeCurrentTimeMillis() - startedAt,
          sampled,
          total,
          events: Object.fromEntries(events)
        }
      })
    )

    const reservoir = (event: string): Effect.Effect<ReadonlyArray<ReservoirItem>> =>
      Effect.sync(() => [...(states.get(event)?.items ?? [])].sort((a, b) => a.sequence - b.sequence))

    const reset: Effect.Effect<void> = Effect.clockWith((clock) =>
      Effect.sync(() => {
        states.clear()
        unconfigured = 0
        startedAt = clock.unsafeCurrentTimeMillis()
      })
    )

    const service: SamplerService = {
      config,
      shouldSample: enabled ? shouldSample : () => alwaysTrue,
      configure,
      strategyOf,
      eventStats,
      stats,
      reservoir,
      reset
    }
    return service
  })

/** A layer of `Sampler`; bad options fail the layer with `ValidationError` when it is built. */
export const layer = (options: Options = {}): Layer.Layer<Sampler, ValidationError> =>
  Layer.scoped(Sampler, make(options))

// ---------------------------------------------------------------------------------------------
// Accessors
// ---------------------------------------------------------------------------------------------

/** Asks the `Sampler` in the context, if any; with none, answers `true` (fail open). */
export const shouldSample = (event: string, metadata?: Metadata): Effect.Effect<boolean> =>
  Effect.flatMap(
    Effect.serviceOption(Sampler),
    (sampler) => Option.isSome(sampler) ? sampler.value.shouldSample(event, metadata) : alwaysTrue
  )

/**
 * Runs `self` only when the `Sampler` in the context (if any) samples `event`: `Some` of its
 * result, or `None` when the event was dropped.
 */
export const whenSampled: {
  (event: string, metadata?: Metadata): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<Option.Option<A>, E, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, event: string, metadata?: Metadata): Effect.Effect<Option.Option<A>, E, R>
} = dual(
  (args) => Effect.isEffect(args[0]),
  <A, E, R>(self: Effect.Effect<A, E, R>, event: string, metadata?: Metadata): Effect.Effect<Option.Option<A>, E, R> =>
    Effect.flatMap(
      shouldSample(event, metadata),
      (sampled) => (sampled ? Effect.asSome(self) : Effect.succeedNone)
    )
)

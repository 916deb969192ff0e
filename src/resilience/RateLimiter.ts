/**
 * Keyed rate limiting: each limiter admits at most `limit` units of cost per `window` for every
 * key (a user, an IP, a tenant), with three algorithms, a bounded key table, a pluggable store
 * and metrics; and a `RateLimiters` service holding limiters by id.
 *
 * Guarantees
 * - `consume` either admits the whole cost and records it, or fails with `RateLimitedError` and
 *   records NOTHING (a denied request never uses capacity). Check and update are one atomic
 *   step whatever the concurrency: the in-memory store does both inside a single synchronous
 *   effect step, and fibers interleave only between effects.
 * - `retryAfter` of a denial is exact: after waiting it, the same request fits (if nobody else
 *   took the capacity in between). `take` relies on it: it sleeps on `Clock` (so `TestClock`
 *   drives it) exactly until the request fits, is interruptible at any point without consuming
 *   anything, and never waits for a cost that cannot fit (cost > limit is rejected at once).
 * - Options are validated at construction (`ValidationError` naming the field, never later);
 *   the defaults are the original's: 1000 per 60 s window.
 * - Memory is bounded: at most `maxKeys` keys (default 100 000) are held. A key whose state is
 *   indistinguishable from a fresh key ("idle": a full bucket, an expired window) is dropped by
 *   ONE cleanup fiber per limiter, forked into the constructor's scope and driven by a
 *   `Schedule` (every `cleanupInterval`, default 5 min as in the original); no per-key fibers
 *   or timers. Dropping an idle key changes no decision. The in-memory sweep works in slices of
 *   10 000 keys (each one synchronous step), yielding in between, so it never holds the event
 *   loop for long.
 * - When a new key arrives and all `maxKeys` slots are taken, the least recently used key is
 *   removed (LRU approximated by the CLOCK second-chance algorithm, so that a hit only sets a
 *   flag on its own entry). If it was idle nothing changes (counted in `expiredKeys`); if it
 *   was still active, that key will start afresh on its next request (counted in `evictedKeys`
 *   and the `foundation_rate_limiter_evicted_total` counter): for that one key the limiter may then
 *   admit up to one extra `limit`. We evict rather than refuse new keys because refusing would let a
 *   flood of distinct keys lock out every new legitimate caller; size `maxKeys` above the number
 *   of keys active within one window and evictions never happen.
 *
 * Algorithms (`algorithm`, default `"sliding-window"`)
 * - `"token-bucket"`: capacity `limit`, refilled continuously (proportionally to elapsed time) at
 *   `limit` per `window`; bursts up to `limit`, then a steady `limit/window` rate.
 * - `"fixed-window"`: windows aligned on multiples of `window` (as in the original); at most
 *   `limit` per window, but up to 2 × `limit` in a short burst straddling a boundary.
 * - `"sliding-window"`: the two-window weighted counter. The estimate at time t is
 *   `previous × (1 − elapsed/window) + current`, where `current` is the cost admitted in the
 *   current aligned window and `previous` in the one before. Right after a boundary the previous
 *   window still counts fully, so the boundary burst of the fixed window is refused, and the
 *   allowance frees up progressively. We chose it over the exact sliding log because it costs
 *   O(1) memory and time per key (a few numbers) whereas a log keeps up to `limit` timestamps per
 *   key (10⁸ numbers for the defaults × 100 000 keys). It is an approximation that assumes the
 *   previous window's requests were evenly spread: if they all came at its very end, some
 *   window-long interval can see up to nearly 2 × `limit`, but spread over the next window,
 *   never as the instant burst the fixed window allows. Default because it keeps the original's "limit per window" meaning without
 *   the original's 2× boundary burst.
 *
 * Store. State lives behind `RateLimiterStore` (a plain interface passed as a factory in the
 * options), whose operations are atomic per key and receive the limiter's `Clock` time, so that
 * a shared store (Redis with Lua scripts, as `@effect/experimental/RateLimiter/Redis` does) can
 * implement the same contract later. `memoryStore` is the default; for it the limiter skips the
 * effectful interface on `consume` and works on the table directly in one synchronous step (the
 * same code the store's methods run), which is what makes ≥ 1 M checks/s possible.
 *
 * Relation to `@effect/experimental/RateLimiter` (read before writing this). We keep its shape
 * where it fits: `ConsumeResult` has the same fields (`delay`, `limit`, `remaining`,
 * `resetAfter`), denials carry `retryAfter`/`remaining`/`limit` like its `RateLimitExceeded`,
 * the store is an interface separate from the limiter and receives the caller's clock time (its
 * Redis token-bucket script does the same). We do not build on it because: its fixed window is
 * not a window but a per-key expiry extended by every request, and it has no sliding window; its
 * in-memory store has no bound on keys and never drops idle ones (and its Redis token-bucket
 * keys get no TTL); it has no `status`, `reset`, stats or metrics; its token bucket refills in
 * whole-token steps; limit and window travel with every call (one `Duration.decode` and
 * several allocations per check) and every check goes through an effectful store call: about
 * 1.5 µs per allowed check on 100 000 keys in one fiber, against about 0.5 µs here (same
 * machine, same loop); its errors are not part of our hierarchy
 * (`RateLimitedError`, category `resource`). The `"delay"` mode maps to our `take`.
 *
 * Metrics (created once per limiter, tagged `limiter` with its name): counters
 * `foundation_rate_limiter_allowed_total`, `foundation_rate_limiter_denied_total`,
 * `foundation_rate_limiter_evicted_total`, and the gauge `foundation_rate_limiter_keys` (live keys,
 * sampled by the cleanup fiber). Telemetry (when the `Telemetry` service is in the context at
 * construction): `foundation.rate_limiter.denied` (allowed checks are metrics only). The hot path updates the counters through hooks resolved once
 * (the tag is part of the metric key), honouring the fiber's `Metric` labels.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricKey from "effect/MetricKey"
import type * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { NotFoundError, RateLimitedError, ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import { LimiterKernel, type LimiterKernelApi } from "./internal/kernel.js"
import * as Events from "../observability/Events.js"
import * as Telemetry from "../observability/Telemetry.js"
import * as State from "./internal/rateLimiterState.js"

const noLabels: ReadonlyArray<MetricLabel.MetricLabel> = []

// ---------------------------------------------------------------------------------------------
// Options and results
// ---------------------------------------------------------------------------------------------

/** The rate-limiting algorithms. */
export type Algorithm = State.AlgorithmName

/** All algorithms. */
export const algorithms: ReadonlyArray<Algorithm> = ["token-bucket", "fixed-window", "sliding-window"]

/** The defaults (limit and window are the original's). */
export const defaults = {
  name: "rate_limiter",
  algorithm: "sliding-window",
  limit: 1000,
  window: Duration.seconds(60),
  maxKeys: 100_000,
  cleanupInterval: Duration.minutes(5)
} as const satisfies Omit<Config, "windowMillis">

/** Options of `make`; every field is optional. */
export interface Options<E = never> {
  /** Name used in errors, stats and metric tags (default `"rate_limiter"`). */
  readonly name?: string | undefined
  /** Default `"sliding-window"`. */
  readonly algorithm?: Algorithm | undefined
  /** Cost admitted per key per window (a positive integer; default 1000). */
  readonly limit?: number | undefined
  /** The window (whole milliseconds, positive, finite; default 60 s). */
  readonly window?: Duration.DurationInput | undefined
  /** Most keys held at once (a positive integer; default 100 000). */
  readonly maxKeys?: number | undefined
  /** How often idle keys are dropped (positive, finite; default 5 minutes). */
  readonly cleanupInterval?: Duration.DurationInput | undefined
  /** Where the state lives (default `memoryStore`). */
  readonly store?: StoreFactory<E> | undefined
}

/** Validated options. */
export interface Config {
  readonly name: string
  readonly algorithm: Algorithm
  readonly limit: number
  readonly window: Duration.Duration
  /** `window` in milliseconds (an integer). */
  readonly windowMillis: number
  readonly maxKeys: number
  readonly cleanupInterval: Duration.Duration
}

/** An admitted request (fields as in `@effect/experimental`'s `ConsumeResult`). */
export interface ConsumeResult {
  /** How long the request waited (zero for `consume`; the wait of `take`). */
  readonly delay: Duration.Duration
  readonly limit: number
  /** Cost-1 requests that would still fit right now for this key. */
  readonly remaining: number
  /** Time until the key is back to its full capacity. */
  readonly resetAfter: Duration.Duration
}

/** The state of one key, as `status` reports it (nothing is consumed). */
export interface Status {
  readonly key: string
  readonly limit: number
  /** Cost-1 requests that would fit right now. */
  readonly remaining: number
  /** Time until a cost-1 request fits (zero when it fits now). */
  readonly retryAfter: Duration.Duration
  /** Time until the key is back to its full capacity (zero when it is). */
  readonly resetAfter: Duration.Duration
}

/** Counters of one limiter since it was made. */
export interface Stats {
  /** Admitted requests (`consume` and `take`). */
  readonly allowed: number
  /** Requests refused by `consume`. */
  readonly denied: number
  /** `take` calls that had to wait before being admitted. */
  readonly delayed: number
  /** Keys held now. */
  readonly liveKeys: number
  /** Active keys removed to make room for new ones (they lost their state). */
  readonly evictedKeys: number
  /** Idle keys dropped (no change in behaviour). */
  readonly expiredKeys: number
}

// ---------------------------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------------------------

/** A decision of a store. */
export interface StoreDecision {
  readonly allowed: boolean
  /** Cost-1 requests that fit right now (after the request, when it was admitted). */
  readonly remaining: number
  /** Milliseconds until the request would fit (0 when admitted). */
  readonly retryAfterMillis: number
  /** Milliseconds until the key is back to full capacity. */
  readonly resetAfterMillis: number
}

/** Key counts of a store. */
export interface StoreKeys {
  readonly live: number
  readonly evicted: number
  readonly expired: number
}

/**
 * Where a limiter keeps its per-key state. Every operation is atomic per key; `now` is the
 * limiter's `Clock` time in epoch milliseconds. A store may fail with `E` (a remote store's
 * connection error, say); the in-memory store never fails.
 */
export interface RateLimiterStore<E = never> {
  /** Admits `cost` for `key` and records it if it fits; otherwise records nothing. */
  readonly consume: (key: string, cost: number, now: number) => Effect.Effect<StoreDecision, E>
  /** The decision a cost-1 request would get, recording nothing. */
  readonly peek: (key: string, now: number) => Effect.Effect<StoreDecision, E>
  /** Forgets `key` (it starts afresh). */
  readonly reset: (key: string) => Effect.Effect<void, E>
  /** Drops keys that are idle at `now`; returns how many. */
  readonly sweep: (now: number) => Effect.Effect<number, E>
  readonly keys: Effect.Effect<StoreKeys, E>
}

/** Makes the store of one limiter from its validated configuration. */
export type StoreFactory<E = never> = (config: Config) => Effect.Effect<RateLimiterStore<E>, E, Scope.Scope>

/** Entries examined per synchronous step of a sweep. */
const SWEEP_SLICE = 10_000

const MemoryTable: unique symbol = Symbol.for("effect-foundation/RateLimiter/MemoryTable")

interface MemoryStore extends RateLimiterStore {
  readonly [MemoryTable]: State.Table
}

const isMemoryStore = <E>(store: RateLimiterStore<E>): store is RateLimiterStore<E> & MemoryStore =>
  MemoryTable in store

const snapshot = (d: State.Decision): StoreDecision => ({
  allowed: d.allowed,
  remaining: d.remaining,
  retryAfterMillis: d.retryAfter,
  resetAfterMillis: d.resetAfter
})

/**
 * The in-process store: a bounded table (`maxKeys`, least-recently-used eviction). Each
 * operation is one synchronous step over plain mutable state (atomic: fibers interleave only
 * between effects).
 */
export const memoryStore: StoreFactory = (config) =>
  Effect.sync(() => {
    const algorithm = State.algorithm(config.algorithm, config.limit, config.windowMillis)
    const table = new State.Table(algorithm, config.maxKeys)
    const scratch = new State.Entry("")
    const out = State.makeDecision()
    const store: MemoryStore = {
      [MemoryTable]: table,
      consume: (key, cost, now) =>
        Effect.sync(() => {
          algorithm.consume(table.acquire(key, now), cost, now, out)
          return snapshot(out)
        }),
      peek: (key, now) =>
        Effect.sync(() => {
          const entry = table.get(key)
          if (entry === undefined) {
            algorithm.init(scratch, now)
            algorithm.peek(scratch, now, out)
          } else {
            algorithm.peek(entry, now, out)
          }
          return snapshot(out)
        }),
      reset: (key) =>
        Effect.sync(() => {
          table.delete(key)
        }),
      // In slices of SWEEP_SLICE entries, yielding in between, so that sweeping a large table
      // does not hold the event loop (each slice is one synchronous, hence atomic, step).
      sweep: (now) =>
        Effect.suspend(() => {
          const sweep = table.startSweep(now)
          const loop: Effect.Effect<number> = Effect.suspend(() =>
            sweep.step(SWEEP_SLICE) ? Effect.succeed(sweep.removed) : Effect.zipRight(Effect.yieldNow(), loop)
          )
          return loop
        }),
      keys: Effect.sync(() => ({ live: table.size, evicted: table.evicted, expired: table.expired }))
    }
    return store
  })

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/** Validates options, applying the defaults; fails with a `ValidationError` naming the field. */
export const validate = (options: Options<unknown> = {}): Either.Either<Config, ValidationError> =>
  Either.gen(function*() {
    const name = yield* Validation.nonEmptyString("name", options.name ?? defaults.name)
    const algorithm = yield* Validation.oneOf("algorithm", options.algorithm ?? defaults.algorithm, algorithms)
    const limit = yield* Validation.positiveInt("limit", options.limit ?? defaults.limit)
    const window = yield* Validation.duration("window", options.window ?? defaults.window)
    const windowMillis = Duration.toMillis(window)
    if (!Number.isInteger(windowMillis)) {
      return yield* Validation.invalid("window", `must be a whole number of milliseconds, got ${Duration.format(window)}`)
    }
    if (limit * windowMillis > Number.MAX_SAFE_INTEGER) {
      return yield* Validation.invalid(
        "limit",
        `limit × window (ms) must not exceed ${Number.MAX_SAFE_INTEGER}, got ${limit} × ${windowMillis}`
      )
    }
    const maxKeys = yield* Validation.positiveInt("maxKeys", options.maxKeys ?? defaults.maxKeys)
    const cleanupInterval = yield* Validation.duration(
      "cleanupInterval",
      options.cleanupInterval ?? defaults.cleanupInterval
    )
    return { name, algorithm, limit, window, windowMillis, maxKeys, cleanupInterval }
  })

/** A cost must be an integer in 1..limit: a larger one could never fit. */
const checkCost = (cost: number, limit: number): Effect.Effect<never, ValidationError> | undefined => {
  if (Number.isInteger(cost) && cost >= 1 && cost <= limit) return undefined
  const checked = Validation.int("cost", cost, { min: 1, max: limit })
  return Either.isLeft(checked)
    ? Effect.fail(checked.left)
    : Effect.fail(new ValidationError({ field: "cost", reason: `must be an integer in 1..${limit}, got ${cost}` }))
}

// ---------------------------------------------------------------------------------------------
// The limiter
// ---------------------------------------------------------------------------------------------

/** A keyed rate limiter. `E` is the failure type of its store (never for the in-memory one). */
export interface RateLimiter<E = never> {
  readonly config: Config
  /**
   * Admits `cost` (default 1) for `key` now, or fails with `RateLimitedError` having consumed
   * nothing. A cost that is not an integer in 1..limit fails with `ValidationError`.
   */
  readonly consume: {
    (key: string): Effect.Effect<ConsumeResult, RateLimitedError | E>
    (key: string, cost: number | undefined): Effect.Effect<ConsumeResult, RateLimitedError | ValidationError | E>
  }
  /**
   * Waits (on `Clock`) until `cost` (default 1) fits for `key`, then consumes it. Interruptible;
   * nothing is consumed until it succeeds. Waiters are not queued: each retries when its own
   * wait ends, so under contention a waiter may be overtaken.
   */
  readonly take: {
    (key: string): Effect.Effect<ConsumeResult, E>
    (key: string, cost: number | undefined): Effect.Effect<ConsumeResult, ValidationError | E>
  }
  /** The state of `key`, consuming nothing (and not creating the key). */
  readonly status: (key: string) => Effect.Effect<Status, E>
  /** Forgets `key`: its next request starts with full capacity. */
  readonly reset: (key: string) => Effect.Effect<void, E>
  /** Counters since the limiter was made. */
  readonly stats: () => Effect.Effect<Stats, E>
  /** Drops idle keys now (the cleanup fiber does it every `cleanupInterval`); returns how many. */
  readonly cleanup: () => Effect.Effect<number, E>
}

const clockOf = (fiber: Fiber.RuntimeFiber<unknown, unknown>): Clock.Clock =>
  Context.get(fiber.currentDefaultServices, Clock.Clock)

const counter = (name: string, limiter: string, description: string) =>
  Metric.fromMetricKey(MetricKey.tagged(MetricKey.counter(name, { description, incremental: true }), "limiter", limiter))

/** The metric objects of one limiter. */
interface Metrics {
  readonly allowed: Metric.Metric.Counter<number>
  readonly denied: Metric.Metric.Counter<number>
  readonly evicted: Metric.Metric.Counter<number>
  readonly keys: Metric.Metric.Gauge<number>
}

const makeMetrics = (name: string): Metrics => ({
  allowed: counter("foundation_rate_limiter_allowed_total", name, "Requests admitted by the rate limiter"),
  denied: counter("foundation_rate_limiter_denied_total", name, "Requests refused by the rate limiter"),
  evicted: counter("foundation_rate_limiter_evicted_total", name, "Active keys evicted to make room for new keys"),
  keys: Metric.fromMetricKey(
    MetricKey.tagged(MetricKey.gauge("foundation_rate_limiter_keys", { description: "Keys held" }), "limiter", name)
  )
})

/**
 * The result of an admission. The durations are built when first read: most callers never look
 * at them, and building them eagerly would double the allocations of the hot path.
 */
class Admitted implements ConsumeResult {
  constructor(
    readonly limit: number,
    readonly remaining: number,
    readonly resetAfterMillis: number,
    readonly delayMillis: number
  ) {}
  get resetAfter(): Duration.Duration {
    return Duration.millis(this.resetAfterMillis)
  }
  get delay(): Duration.Duration {
    return Duration.millis(this.delayMillis)
  }
  toJSON(): unknown {
    return { delay: this.delay, limit: this.limit, remaining: this.remaining, resetAfter: this.resetAfter }
  }
}

const makeResult = (limit: number, remaining: number, resetAfterMillis: number, delayMillis: number): ConsumeResult =>
  new Admitted(limit, remaining, resetAfterMillis, delayMillis)

/**
 * Makes a limiter. Fails with `ValidationError` for bad options (before anything is created);
 * the cleanup fiber lives in the scope.
 */
export const make = <E = never>(
  options: Options<E> = {}
): Effect.Effect<RateLimiter<E>, ValidationError | E, Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* validate(options)
    const storeFactory: StoreFactory<E> = options.store ?? (memoryStore as StoreFactory<E>)
    const store = yield* storeFactory(config)
    const { limit, name } = config
    const metrics = makeMetrics(name)
    let allowed = 0
    let denied = 0
    let delayed = 0
    // Evictions already added to the metric (the store counts them; we report the difference).
    let evictionsReported = 0

    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const denial = (key: string, d: StoreDecision | State.Decision, retryAfterMillis: number) => {
      telemetry?.unsafeEmit(Events.names.rateLimiter.denied, {
        count: 1,
        retry_after_ms: retryAfterMillis,
        remaining: d.remaining
      }, { limiter: name, key })
      return new RateLimitedError({
        limiter: name,
        key,
        retryAfter: Duration.millis(retryAfterMillis),
        remaining: d.remaining,
        limit
      })
    }

    // The consume step through the store interface (any store).
    const consumeViaStore = (key: string, cost: number): Effect.Effect<ConsumeResult, RateLimitedError | E> =>
      Effect.withFiberRuntime((fiber) =>
        Effect.flatMap(store.consume(key, cost, clockOf(fiber).unsafeCurrentTimeMillis()), (d) => {
          const labels = fiber.getFiberRef(FiberRef.currentMetricLabels)
          if (d.allowed) {
            allowed++
            metrics.allowed.unsafeUpdate(1, labels)
            return Effect.succeed(makeResult(limit, d.remaining, d.resetAfterMillis, 0))
          }
          denied++
          metrics.denied.unsafeUpdate(1, labels)
          return Effect.fail(denial(key, d, d.retryAfterMillis))
        })
      )

    // The hot path for the in-memory store: clock read, check, update, counters and metrics in
    // ONE synchronous step over the table, hence atomic (fibers interleave only between
    // effects) and free of intermediate effects and allocations.
    const consumeInMemory = (table: State.Table) => {
      const algorithm = table.algorithm
      const out = State.makeDecision()
      // Check, update, counters and metrics; the denial, or undefined when admitted (then `out`
      // holds the decision). Also the synchronous hook of Protect's fused path.
      const step = (
        key: string,
        cost: number,
        now: number,
        labels: ReadonlyArray<MetricLabel.MetricLabel>
      ): RateLimitedError | undefined => {
        algorithm.consume(table.acquire(key, now), cost, now, out)
        if (table.evicted !== evictionsReported) {
          metrics.evicted.unsafeUpdate(table.evicted - evictionsReported, labels)
          evictionsReported = table.evicted
        }
        if (out.allowed) {
          allowed++
          metrics.allowed.unsafeUpdate(1, labels)
          return undefined
        }
        denied++
        metrics.denied.unsafeUpdate(1, labels)
        return denial(key, out, out.retryAfter)
      }
      const consume = (key: string, cost: number): Effect.Effect<ConsumeResult, RateLimitedError> =>
        Effect.withFiberRuntime((fiber) => {
          const refused = step(
            key,
            cost,
            clockOf(fiber).unsafeCurrentTimeMillis(),
            fiber.getFiberRef(FiberRef.currentMetricLabels)
          )
          return refused === undefined
            ? Effect.succeed(makeResult(limit, out.remaining, out.resetAfter, 0))
            : Effect.fail(refused)
        })
      return { consume, step }
    }

    const inMemory = isMemoryStore(store) ? consumeInMemory(store[MemoryTable]) : undefined
    const consumeChecked = inMemory?.consume ?? consumeViaStore

    const consume = (key: string, cost: number = 1) => {
      if (cost !== 1) {
        const invalid = checkCost(cost, limit)
        if (invalid !== undefined) return invalid
      }
      return consumeChecked(key, cost)
    }

    // take: try; when refused, sleep exactly the announced wait and try again.
    const takeLoop = (key: string, cost: number, start: number): Effect.Effect<ConsumeResult, E> =>
      Effect.withFiberRuntime((fiber) => {
        const clock = clockOf(fiber)
        return Effect.flatMap(store.consume(key, cost, clock.unsafeCurrentTimeMillis()), (d) => {
          if (!d.allowed) {
            return Effect.zipRight(
              Effect.sleep(Duration.millis(d.retryAfterMillis)),
              takeLoop(key, cost, start)
            )
          }
          const waited = clock.unsafeCurrentTimeMillis() - start
          allowed++
          if (waited > 0) delayed++
          metrics.allowed.unsafeUpdate(1, fiber.getFiberRef(FiberRef.currentMetricLabels))
          return Effect.succeed(makeResult(limit, d.remaining, d.resetAfterMillis, waited))
        })
      })

    const take = (key: string, cost: number = 1) => {
      if (cost !== 1) {
        const invalid = checkCost(cost, limit)
        if (invalid !== undefined) return invalid
      }
      return Effect.flatMap(Clock.currentTimeMillis, (start) => takeLoop(key, cost, start))
    }

    const status = (key: string): Effect.Effect<Status, E> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.map(store.peek(key, now), (d) => ({
          key,
          limit,
          remaining: d.remaining,
          retryAfter: Duration.millis(d.retryAfterMillis),
          resetAfter: Duration.millis(d.resetAfterMillis)
        })))

    const stats = (): Effect.Effect<Stats, E> =>
      Effect.map(store.keys, (keys) => ({
        allowed,
        denied,
        delayed,
        liveKeys: keys.live,
        evictedKeys: keys.evicted,
        expiredKeys: keys.expired
      }))

    const cleanup = (): Effect.Effect<number, E> => Effect.flatMap(Clock.currentTimeMillis, store.sweep)

    // The one background fiber of the limiter: sweep idle keys every `cleanupInterval`, sample
    // the key gauge, and report evictions not yet reported by the hot path.
    const sweepOnce = Effect.gen(function*() {
      yield* cleanup()
      const keys = yield* store.keys
      yield* Metric.set(metrics.keys, keys.live)
      if (keys.evicted > evictionsReported) {
        const fresh = keys.evicted - evictionsReported
        evictionsReported = keys.evicted
        yield* Metric.incrementBy(metrics.evicted, fresh)
      }
    }).pipe(
      Effect.catchAllCause((cause) => Effect.logWarning(`rate limiter "${name}": cleanup failed`, cause))
    )
    // Explicitly interruptible: a fiber forked inside an uninterruptible region (as
    // `RateLimiters.configure` is) would otherwise inherit it, and closing the scope would hang.
    yield* Effect.forkScoped(Effect.interruptible(Effect.schedule(sweepOnce, Schedule.spaced(config.cleanupInterval))))

    const kernel: LimiterKernelApi | undefined = inMemory === undefined
      ? undefined
      : { tryConsume: (key, cost, now) => inMemory.step(key, cost, now, noLabels) }
    const limiter: RateLimiter<E> & { readonly [LimiterKernel]?: LimiterKernelApi } = {
      ...(kernel === undefined ? {} : { [LimiterKernel]: kernel }),
      config,
      consume: consume as RateLimiter<E>["consume"],
      take: take as RateLimiter<E>["take"],
      status,
      reset: store.reset,
      stats,
      cleanup
    }
    return limiter
  })

// ---------------------------------------------------------------------------------------------
// RateLimiters: limiters by id
// ---------------------------------------------------------------------------------------------

/** Options of a limiter held by `RateLimiters` (its name is its id; in-memory stores only). */
export type LimiterOptions = Omit<Options<never>, "name">

/** One limiter as `RateLimiters.status()` reports it. */
export interface LimiterStatus {
  readonly id: string
  readonly config: Config
  readonly stats: Stats
}

/** All limiters of a `RateLimiters` service. */
export interface RateLimitersStatus {
  readonly limiters: ReadonlyArray<LimiterStatus>
  readonly totalAllowed: number
  readonly totalDenied: number
}

/** The service holding limiters by id. Each service instance has its own limiters. */
export interface RateLimitersService {
  /**
   * Creates the limiter `id`, replacing (and closing) any limiter of that id: the replaced
   * limiter's state is discarded. Bad options fail with `ValidationError` and change nothing.
   */
  readonly configure: (id: string, options?: LimiterOptions) => Effect.Effect<RateLimiter, ValidationError>
  readonly get: (id: string) => Effect.Effect<RateLimiter, NotFoundError>
  /** Removes and closes the limiter `id`. */
  readonly remove: (id: string) => Effect.Effect<void, NotFoundError>
  readonly consume: {
    (id: string, key: string): Effect.Effect<ConsumeResult, RateLimitedError | NotFoundError>
    (id: string, key: string, cost: number | undefined): Effect.Effect<
      ConsumeResult,
      RateLimitedError | NotFoundError | ValidationError
    >
  }
  readonly take: {
    (id: string, key: string): Effect.Effect<ConsumeResult, NotFoundError>
    (id: string, key: string, cost: number | undefined): Effect.Effect<ConsumeResult, NotFoundError | ValidationError>
  }
  /** Every limiter with its configuration and counters, and the totals. */
  readonly status: () => Effect.Effect<RateLimitersStatus>
}

/** The `RateLimiters` service tag. */
export class RateLimiters extends Context.Tag("effect-foundation/RateLimiters")<RateLimiters, RateLimitersService>() {}

interface Held {
  readonly limiter: RateLimiter
  readonly scope: Scope.CloseableScope
}

const notFound = (id: string) => new NotFoundError({ resource: "RateLimiter", key: id })

/**
 * Makes a `RateLimiters` service whose limiters live in the current scope (closing it closes
 * them all). Its table of limiters is its own: two services never share limiters.
 */
export const makeRateLimiters: Effect.Effect<RateLimitersService, never, Scope.Scope> = Effect.gen(function*() {
  const parent = yield* Effect.scope
  // Read and written only inside synchronous steps, so every lookup and swap is atomic.
  const held = new Map<string, Held>()

  // Uninterruptible so that a limiter made is always either registered or closed.
  const configure = Effect.fn("RateLimiters.configure")(
    function*(id: string, options: LimiterOptions = {}) {
      yield* Validation.nonEmptyString("id", id)
      const scope = yield* Scope.fork(parent, ExecutionStrategy.sequential)
      const limiter = yield* make({ ...options, name: id }).pipe(
        Scope.extend(scope),
        Effect.tapError(() => Scope.close(scope, Exit.void))
      )
      const previous = held.get(id)
      held.set(id, { limiter, scope })
      if (previous !== undefined) yield* Scope.close(previous.scope, Exit.void)
      return limiter
    },
    Effect.uninterruptible
  )

  const lookup = (id: string): Effect.Effect<RateLimiter, NotFoundError> =>
    Effect.suspend(() => {
      const h = held.get(id)
      return h === undefined ? Effect.fail(notFound(id)) : Effect.succeed(h.limiter)
    })

  const remove = (id: string): Effect.Effect<void, NotFoundError> =>
    Effect.suspend(() => {
      const h = held.get(id)
      if (h === undefined) return Effect.fail(notFound(id))
      held.delete(id)
      return Scope.close(h.scope, Exit.void)
    })

  const consume = (id: string, key: string, cost: number = 1) =>
    Effect.suspend((): Effect.Effect<ConsumeResult, RateLimitedError | NotFoundError | ValidationError> => {
      const h = held.get(id)
      return h === undefined ? Effect.fail(notFound(id)) : h.limiter.consume(key, cost)
    })

  const take = (id: string, key: string, cost: number = 1) =>
    Effect.suspend((): Effect.Effect<ConsumeResult, NotFoundError | ValidationError> => {
      const h = held.get(id)
      return h === undefined ? Effect.fail(notFound(id)) : h.limiter.take(key, cost)
    })

  const status = (): Effect.Effect<RateLimitersStatus> =>
    Effect.map(
      Effect.forEach(
        Array.from(held, ([id, h]) => ({ id, limiter: h.limiter })),
        ({ id, limiter }) => Effect.map(limiter.stats(), (stats): LimiterStatus => ({ id, config: limiter.config, stats }))
      ),
      (limiters) => ({
        limiters,
        totalAllowed: limiters.reduce((n, l) => n + l.stats.allowed, 0),
        totalDenied: limiters.reduce((n, l) => n + l.stats.denied, 0)
      })
    )

  const service: RateLimitersService = {
    configure,
    get: lookup,
    remove,
    consume: consume as RateLimitersService["consume"],
    take: take as RateLimitersService["take"],
    status
  }
  return service
})

/** A layer of `RateLimiters` with no limiter configured yet. */
export const layer: Layer.Layer<RateLimiters> = Layer.scoped(RateLimiters, makeRateLimiters)

/**
 * A layer of `RateLimiters` with the given limiters configured (in order); bad options fail the
 * layer with `ValidationError` when it is built.
 */
export const layerWith = (
  limiters: Readonly<Record<string, LimiterOptions>>
): Layer.Layer<RateLimiters, ValidationError> =>
  Layer.scoped(
    RateLimiters,
    Effect.tap(makeRateLimiters, (service) =>
      Effect.forEach(Object.entries(limiters), ([id, options]) => service.configure(id, options), { discard: true }))
  )

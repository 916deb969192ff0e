/**
 * Barrier: N parties wait for each other (the original's `create_barrier` / `arrive_at_barrier` /
 * `wait_for_barrier`, re-specified after Java's `CyclicBarrier`).
 *
 * Guarantees:
 * - A generation trips exactly when its `parties`-th party arrives: every waiting party is
 *   released at once with its arrival `index` (0 for the first, `parties - 1` for the last); no
 *   party is released earlier, none later. Waiting costs nothing: parties suspend on a
 *   `Deferred`, nothing polls (the original polled every 100 ms, and went on polling after it had
 *   answered a timeout).
 * - All or nothing: when a waiting party times out (`BarrierTimeoutError` for it) or is
 *   interrupted, its generation breaks for everyone: the others fail at once with
 *   `BarrierBrokenError`, and so does every later `await` until `reset`. No party is ever left
 *   waiting for a generation that cannot trip. A timeout that races the trip is resolved in one
 *   step: a party whose generation tripped has passed, whatever its timer says.
 * - `cyclic: true` starts a new generation on each trip (or `reset`); a single-use barrier trips
 *   once, and later arrivals fail with `BarrierClosedError` (the original's `:barrier_full`).
 *   `reset` breaks the waiting generation (its parties fail with reason `reset`) and starts a
 *   fresh one, broken or not.
 * - A barrier ends with its scope (`make`) or its registry (`Barriers`): parties waiting then
 *   fail with `BarrierClosedError`, never hang.
 * - `Barriers` holds named barriers; a barrier nobody waits on and nobody touched for
 *   `idleTimeout` (1 h, as the original's purge) is removed by one sweep fiber in the service's
 *   scope, on a `Schedule` (every `sweepInterval`, 60 s). A barrier with waiting parties is
 *   never removed from under them.
 *
 * Telemetry (when `Telemetry` is in the context at `make`; see `events`): `tripped`, `broken`,
 * `removed`. Metrics: `foundation_barrier_trips_total`, `foundation_barrier_breaks_total{reason}`.
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import {
  AlreadyExistsError,
  NotFoundError,
  ServiceUnavailableError,
  Tagged,
  ValidationError
} from "../../errors/FoundationError.js"
import * as Events from "../../observability/Events.js"
import * as Validation from "../../errors/Validation.js"
import * as MetricKit from "../../observability/MetricKit.js"
import * as Telemetry from "../../observability/Telemetry.js"

// ---------------------------------------------------------------------------------------------
// Options, data, errors
// ---------------------------------------------------------------------------------------------

/** Options of a barrier. */
export interface Options {
  /** Used in errors, events and the registry. */
  readonly name: string
  /** How many parties make a generation trip (an integer ≥ 1). */
  readonly parties: number
  /** Start a new generation after each trip [false: single-use]. */
  readonly cyclic?: boolean
  /** How long `await` waits for the others before it breaks the generation [forever]. */
  readonly timeout?: Duration.DurationInput
}

/** What a party gets when its generation trips. */
export interface Arrival {
  /** The generation that tripped (0 for the first; `reset` also starts a new one). */
  readonly generation: number
  /** The party's arrival order in its generation: 0 first, `parties - 1` last (the one that tripped it). */
  readonly index: number
}

/** Why a generation broke. */
export type BrokenReason = "timeout" | "interrupted" | "reset"

/** Why a barrier takes no more parties. */
export type ClosedReason = "tripped" | "closed" | "removed"

/** A barrier's state. */
export interface Status {
  readonly name: string
  readonly parties: number
  readonly cyclic: boolean
  /** The current generation. */
  readonly generation: number
  /** Parties waiting in the current generation. */
  readonly waiting: number
  /** The current generation is broken (until `reset`). */
  readonly broken: boolean
  readonly brokenReason: Option.Option<BrokenReason>
  /** The barrier takes no more parties (a single-use barrier that tripped, or an ended barrier). */
  readonly closed: boolean
  readonly closedReason: Option.Option<ClosedReason>
  /** Generations that tripped so far. */
  readonly trips: number
}

/** This party waited `timeout` without its generation tripping; the generation is broken for all. */
export class BarrierTimeoutError extends Tagged("BarrierTimeoutError", {
  captureStack: false,
  category: "transient",
  severity: "medium",
  message: "Barrier wait timed out"
})<{
  readonly barrier: string
  readonly generation: number
  readonly timeout: Duration.Duration
  /** Parties that had arrived (this one included). */
  readonly arrived: number
  readonly parties: number
}> {
  override describe() {
    return `Timed out after ${Duration.format(this.timeout)} at barrier "${this.barrier}" (${this.arrived} of ${this.parties} parties arrived)`
  }
}

/** The generation broke (another party timed out or was interrupted, or it was reset). */
export class BarrierBrokenError extends Tagged("BarrierBrokenError", {
  captureStack: false,
  category: "transient",
  severity: "medium",
  message: "Barrier broken"
})<{
  readonly barrier: string
  readonly generation: number
  readonly reason: BrokenReason
}> {
  override describe() {
    const why = this.reason === "timeout"
      ? "a party timed out"
      : this.reason === "interrupted"
      ? "a party was interrupted"
      : "it was reset"
    return `Barrier "${this.barrier}" (generation ${this.generation}) is broken: ${why}`
  }
}

/** The barrier takes no more parties: a single-use barrier that tripped, or one whose scope or registry ended. */
export class BarrierClosedError extends Tagged("BarrierClosedError", {
  captureStack: false,
  category: "permanent",
  severity: "medium",
  message: "Barrier closed"
})<{
  readonly barrier: string
  readonly reason: ClosedReason
}> {
  override describe() {
    return this.reason === "tripped"
      ? `Barrier "${this.barrier}" is single-use and has already tripped`
      : `Barrier "${this.barrier}" is ${this.reason === "closed" ? "closed" : "removed"}`
  }
}

/** What `await` can fail with. */
export type AwaitError = BarrierTimeoutError | BarrierBrokenError | BarrierClosedError

/** A barrier. */
export interface Barrier {
  readonly name: string
  readonly parties: number
  readonly cyclic: boolean
  /** Arrives and waits for the generation to trip, within the barrier's `timeout`. */
  readonly await: Effect.Effect<Arrival, AwaitError>
  /** Arrives and waits within `timeout` (instead of the barrier's). */
  awaitWithin(timeout: Duration.DurationInput): Effect.Effect<Arrival, AwaitError | ValidationError>
  /**
   * Breaks the current generation if parties wait in it (they fail with reason `reset`) and
   * starts a new one, which also clears a broken state. A single-use barrier that tripped stays
   * closed (`BarrierClosedError`).
   */
  readonly reset: Effect.Effect<void, BarrierClosedError>
  readonly status: Effect.Effect<Status>
}

/** Telemetry events of this module. */
export const events = Events.names.barrier

const tripsTotal = MetricKit.counter("foundation_barrier_trips_total", { description: "Barrier generations tripped" })
const breaksTotal = (reason: BrokenReason | "closed" | "removed") =>
  MetricKit.counter("foundation_barrier_breaks_total", { description: "Barrier generations broken", tags: { reason } })
const breaks = {
  timeout: breaksTotal("timeout"),
  interrupted: breaksTotal("interrupted"),
  reset: breaksTotal("reset"),
  closed: breaksTotal("closed"),
  removed: breaksTotal("removed")
}

// ---------------------------------------------------------------------------------------------
// One barrier
// ---------------------------------------------------------------------------------------------

interface Config {
  readonly name: string
  readonly parties: number
  readonly cyclic: boolean
  /** Undefined: wait forever. */
  readonly timeout: Duration.Duration | undefined
}

const validTimeout = (field: string, input: unknown): Either.Either<Duration.Duration | undefined, ValidationError> =>
  Either.map(
    Validation.duration(field, input, { allowInfinite: true }),
    (d) => Duration.isFinite(d) ? d : undefined
  )

const validate = (options: Options): Either.Either<Config, ValidationError> =>
  Either.gen(function*() {
    if (typeof options !== "object" || options === null) return yield* Validation.invalid("barrier", "options must be an object")
    const name = yield* Validation.nonEmptyString("barrier.name", options.name)
    const parties = yield* Validation.positiveInt("barrier.parties", options.parties)
    if (options.cyclic !== undefined && typeof options.cyclic !== "boolean") {
      return yield* Validation.invalid("barrier.cyclic", "must be a boolean")
    }
    const timeout = options.timeout === undefined ? undefined : yield* validTimeout("barrier.timeout", options.timeout)
    return { name, parties, cyclic: options.cyclic === true, timeout }
  })

interface Generation {
  readonly number: number
  /** Parties that arrived in this generation. */
  arrived: number
  state: "open" | "tripped" | "broken"
  brokenReason: BrokenReason | undefined
  /** The failure the waiting parties got, once broken. */
  failure: BarrierBrokenError | BarrierClosedError | undefined
  readonly gate: Deferred.Deferred<void, BarrierBrokenError | BarrierClosedError>
}

/** A barrier plus what its owner (a scope or the registry) needs. */
interface Internal extends Barrier {
  /** Ends the barrier (one step): waiting parties fail with `BarrierClosedError`. */
  close(reason: "closed" | "removed"): void
  /** When it was last touched, if nobody waits on it now (else undefined). */
  idleSince(): number | undefined
}

interface Env {
  readonly now: () => number
  readonly fiberId: FiberId.FiberId
  readonly telemetry: Telemetry.Service | undefined
}

const unsafeMake = (config: Config, env: Env): Internal => {
  const { cyclic, name, parties } = config
  const newGeneration = (number: number): Generation => ({
    number,
    arrived: 0,
    state: "open",
    brokenReason: undefined,
    failure: undefined,
    gate: Deferred.unsafeMake(env.fiberId)
  })
  let current = newGeneration(0)
  let closed: ClosedReason | undefined
  let trips = 0
  let lastActivity = env.now()

  const closedError = (reason: ClosedReason) => new BarrierClosedError({ barrier: name, reason })
  const failureOf = (gen: Generation) =>
    gen.failure ?? new BarrierBrokenError({ barrier: name, generation: gen.number, reason: gen.brokenReason ?? "reset" })

  const trip = (gen: Generation): void => {
    gen.state = "tripped"
    trips++
    lastActivity = env.now()
    Deferred.unsafeDone(gen.gate, Exit.void)
    if (cyclic) current = newGeneration(gen.number + 1)
    else closed = "tripped"
    MetricKit.bump(tripsTotal)
    env.telemetry?.unsafeEmit(events.tripped, { parties, generation: gen.number }, { barrier: name })
  }

  /** Breaks an open generation (one step): its waiting parties fail with `failure`. */
  const breakWith = (
    gen: Generation,
    failure: BarrierBrokenError | BarrierClosedError,
    reason: BrokenReason | "closed" | "removed"
  ): void => {
    if (gen.state !== "open") return
    const waiting = gen.arrived
    gen.state = "broken"
    gen.brokenReason = failure._tag === "BarrierBrokenError" ? failure.reason : undefined
    gen.failure = failure
    lastActivity = env.now()
    Deferred.unsafeDone(gen.gate, Exit.fail(failure))
    MetricKit.bump(breaks[reason])
    env.telemetry?.unsafeEmit(events.broken, { waiting, generation: gen.number }, { barrier: name, reason })
  }

  const breakGeneration = (gen: Generation, reason: BrokenReason): void =>
    breakWith(gen, new BarrierBrokenError({ barrier: name, generation: gen.number, reason }), reason)

  /** The party's timer fired: it passed if its generation tripped meanwhile, else it breaks the generation. */
  const timedOut = (gen: Generation, arrival: Arrival, timeout: Duration.Duration): Effect.Effect<Arrival, AwaitError> =>
    Effect.suspend((): Effect.Effect<Arrival, AwaitError> => {
      if (gen.state === "tripped") return Effect.succeed(arrival)
      if (gen.state === "broken") return Effect.fail(failureOf(gen))
      const arrived = gen.arrived
      breakGeneration(gen, "timeout")
      return Effect.fail(
        new BarrierTimeoutError({ barrier: name, generation: gen.number, timeout, arrived, parties })
      )
    })

  const awaitFor = (timeout: Duration.Duration | undefined): Effect.Effect<Arrival, AwaitError> =>
    // Uninterruptible from the arrival until the interruption handler is in place, so that an
    // arrived party is always either waiting (and breaks the generation if interrupted) or passed.
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend((): Effect.Effect<Arrival, AwaitError> => {
        if (closed !== undefined) return Effect.fail(closedError(closed))
        const gen = current
        if (gen.state === "broken") return Effect.fail(failureOf(gen))
        const arrival: Arrival = { generation: gen.number, index: gen.arrived }
        gen.arrived++
        lastActivity = env.now()
        if (gen.arrived === parties) {
          trip(gen)
          return Effect.succeed(arrival)
        }
        const wait = Effect.as(Deferred.await(gen.gate), arrival)
        const timed = timeout === undefined ? wait : Effect.flatMap(
          Effect.timeoutOption(wait, timeout),
          Option.match({ onNone: () => timedOut(gen, arrival, timeout), onSome: Effect.succeed })
        )
        return restore(timed).pipe(
          Effect.onInterrupt(() =>
            Effect.sync(() => {
              if (gen.state === "open") breakGeneration(gen, "interrupted")
            })
          )
        )
      })
    )

  const close = (reason: "closed" | "removed"): void => {
    if (closed === "closed" || closed === "removed") return
    if (current.state === "open") breakWith(current, closedError(reason), reason)
    closed = reason
  }

  return {
    name,
    parties,
    cyclic,
    await: awaitFor(config.timeout),
    awaitWithin: (timeout) =>
      Effect.flatMap(validTimeout("timeout", timeout), (d) => awaitFor(d)),
    reset: Effect.suspend(() => {
      if (closed !== undefined) return Effect.fail(closedError(closed))
      if (current.state === "open" && current.arrived > 0) breakGeneration(current, "reset")
      current = newGeneration(current.number + 1)
      lastActivity = env.now()
      return Effect.void
    }),
    status: Effect.sync(() => ({
      name,
      parties,
      cyclic,
      generation: current.number,
      waiting: current.state === "open" ? current.arrived : 0,
      broken: current.state === "broken" && current.brokenReason !== undefined,
      brokenReason: Option.fromNullable(current.state === "broken" ? current.brokenReason : undefined),
      closed: closed !== undefined,
      closedReason: Option.fromNullable(closed),
      trips
    })),
    close,
    idleSince: () => current.state === "open" && current.arrived > 0 ? undefined : lastActivity
  }
}

const envOf = Effect.gen(function*() {
  const clock = yield* Effect.clock
  const fiberId = yield* Effect.fiberId
  const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
  return { now: () => clock.unsafeCurrentTimeMillis(), fiberId, telemetry } satisfies Env
})

/**
 * Makes a barrier that lives as long as the current scope: when the scope closes, parties still
 * waiting fail with `BarrierClosedError` (reason `closed`).
 */
export const make = (options: Options): Effect.Effect<Barrier, ValidationError, Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* validate(options)
    const barrier = unsafeMake(config, yield* envOf)
    yield* Effect.addFinalizer(() => Effect.sync(() => barrier.close("closed")))
    return publicOf(barrier)
  })

const publicOf = (b: Internal): Barrier => ({
  name: b.name,
  parties: b.parties,
  cyclic: b.cyclic,
  await: b.await,
  awaitWithin: b.awaitWithin,
  reset: b.reset,
  status: b.status
})

// ---------------------------------------------------------------------------------------------
// Named barriers
// ---------------------------------------------------------------------------------------------

/** Options of the `Barriers` registry. */
export interface RegistryOptions {
  /** Used in events and errors ["barriers"]. */
  readonly name?: string
  /** A barrier nobody waits on and nobody touched for this long is removed [1 hour]. */
  readonly idleTimeout?: Duration.DurationInput
  /** How often the sweep looks for idle barriers [1 minute]. */
  readonly sweepInterval?: Duration.DurationInput
}

/** Defaults of the registry (the original purged barriers older than 1 h, sweeping every 60 s). */
export const registryDefaults = {
  name: "barriers",
  idleTimeout: Duration.hours(1),
  sweepInterval: Duration.minutes(1)
} as const

/** A registry of named barriers. */
export interface Registry {
  readonly name: string
  /** Creates a named barrier; `AlreadyExistsError` when the name is taken. */
  create(options: Options): Effect.Effect<Barrier, ValidationError | AlreadyExistsError | ServiceUnavailableError>
  /**
   * The barrier of that name, created when absent (what parties that only know the name call).
   * An existing barrier must have the same `parties` and `cyclic` (else `ValidationError`).
   */
  getOrCreate(options: Options): Effect.Effect<Barrier, ValidationError | ServiceUnavailableError>
  /** The barrier of that name; `NotFoundError` when absent (never created, removed, or swept). */
  get(name: string): Effect.Effect<Barrier, NotFoundError>
  /** Removes a barrier (its waiting parties fail with `BarrierClosedError`, reason `removed`); false when absent. */
  remove(name: string): Effect.Effect<boolean>
  /** Every barrier's status, by name. */
  readonly list: Effect.Effect<ReadonlyArray<Status>>
  /** Removes the idle barriers now (the sweep does it every `sweepInterval`); returns how many. */
  readonly sweep: Effect.Effect<number>
}

/** The `Barriers` service. */
export class Barriers extends Context.Tag("effect-foundation/Barriers")<Barriers, Registry>() {}

/**
 * Makes a registry of named barriers in the current scope, with its sweep fiber. Closing the
 * scope closes every barrier.
 */
export const makeRegistry = (options: RegistryOptions = {}): Effect.Effect<Registry, ValidationError, Scope.Scope> =>
  Effect.gen(function*() {
    if (typeof options !== "object" || options === null) return yield* Validation.invalid("barriers", "options must be an object")
    const registryName = yield* Validation.nonEmptyString("barriers.name", options.name ?? registryDefaults.name)
    const idleTimeout = yield* Validation.duration("barriers.idleTimeout", options.idleTimeout ?? registryDefaults.idleTimeout)
    const sweepInterval = yield* Validation.duration(
      "barriers.sweepInterval",
      options.sweepInterval ?? registryDefaults.sweepInterval
    )
    const env = yield* envOf
    const idleMillis = Duration.toMillis(idleTimeout)
    const barriers = new Map<string, { readonly internal: Internal; readonly barrier: Barrier }>()
    let closed = false

    const unavailable = () => new ServiceUnavailableError({ service: registryName, reason: "closed" })

    const add = (config: Config) => {
      const internal = unsafeMake(config, env)
      const entry = { internal, barrier: publicOf(internal) }
      barriers.set(config.name, entry)
      return entry.barrier
    }

    const removeEntry = (name: string, reason: "idle" | "explicit", now: number): boolean => {
      const entry = barriers.get(name)
      if (entry === undefined) return false
      barriers.delete(name)
      const idleSince = entry.internal.idleSince()
      entry.internal.close("removed")
      env.telemetry?.unsafeEmit(events.removed, { idle_ms: idleSince === undefined ? 0 : now - idleSince }, {
        barriers: registryName,
        barrier: name,
        reason
      })
      return true
    }

    const sweep = Effect.sync(() => {
      const now = env.now()
      let removed = 0
      for (const [name, entry] of barriers) {
        const idleSince = entry.internal.idleSince()
        if (idleSince !== undefined && now - idleSince >= idleMillis && removeEntry(name, "idle", now)) removed++
      }
      return removed
    })

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        for (const entry of barriers.values()) entry.internal.close("closed")
        barriers.clear()
      })
    )
    const scope = yield* Effect.scope
    yield* Effect.forkIn(Effect.interruptible(Effect.schedule(sweep, Schedule.spaced(sweepInterval))), scope)

    const registry: Registry = {
      name: registryName,
      create: (options) =>
        Effect.flatMap(validate(options), (config) =>
          Effect.suspend((): Effect.Effect<Barrier, AlreadyExistsError | ServiceUnavailableError> => {
            if (closed) return Effect.fail(unavailable())
            if (barriers.has(config.name)) {
              return Effect.fail(new AlreadyExistsError({ resource: "barrier", key: config.name }))
            }
            return Effect.succeed(add(config))
          })),
      getOrCreate: (options) =>
        Effect.flatMap(validate(options), (config) =>
          Effect.suspend((): Effect.Effect<Barrier, ValidationError | ServiceUnavailableError> => {
            if (closed) return Effect.fail(unavailable())
            const existing = barriers.get(config.name)
            if (existing === undefined) return Effect.succeed(add(config))
            const b = existing.barrier
            if (b.parties !== config.parties) {
              return Effect.fail(
                new ValidationError({
                  field: "barrier.parties",
                  reason: `barrier "${config.name}" exists with ${b.parties} parties, got ${config.parties}`
                })
              )
            }
            if (b.cyclic !== config.cyclic) {
              return Effect.fail(
                new ValidationError({
                  field: "barrier.cyclic",
                  reason: `barrier "${config.name}" exists with cyclic ${b.cyclic}, got ${config.cyclic}`
                })
              )
            }
            return Effect.succeed(b)
          })),
      get: (name) =>
        Effect.suspend(() => {
          const entry = barriers.get(name)
          return entry === undefined
            ? Effect.fail(new NotFoundError({ resource: "barrier", key: String(name) }))
            : Effect.succeed(entry.barrier)
        }),
      remove: (name) => Effect.sync(() => removeEntry(name, "explicit", env.now())),
      list: Effect.suspend(() => Effect.all(Array.from(barriers.values(), (e) => e.barrier.status))),
      sweep
    }
    return registry
  })

/** The `Barriers` service as a scoped layer. */
export const layer = (options: RegistryOptions = {}): Layer.Layer<Barriers, ValidationError> =>
  Layer.scoped(Barriers, makeRegistry(options))

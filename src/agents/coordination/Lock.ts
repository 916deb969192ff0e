/**
 * Locks: named mutual exclusion with leases and fencing tokens (the original's `acquire_lock` /
 * `release_lock` / `get_lock_status`, with its defects fixed).
 *
 * Guarantees:
 * - At most one holder per lock name at any time. Each grant carries a fencing token, taken from
 *   one counter of the service, so tokens strictly increase per lock (and across locks): a
 *   resource that remembers the highest token it saw can reject a stale holder's late writes.
 * - FIFO: waiters are granted in arrival order, by direct handoff (a lock is never free while
 *   someone waits, so `tryAcquire` and newcomers cannot barge in). Waiters suspend on a
 *   `Deferred`; nothing polls (the original polled every 100 ms).
 * - No ghost owner: a waiter that times out or is interrupted leaves the queue in the same step
 *   that decides its fate, so it can never be granted afterwards. A grant that races the timeout
 *   is settled in one step: a waiter granted before its timer ran holds the lock (its scope will
 *   release it); a waiter interrupted at the moment of the grant hands the lock straight to the
 *   next waiter. (The original's retry loop went on after the caller had timed out and could
 *   later take the lock for nobody.)
 * - Scoped: `acquire` returns a `Lease` released when the caller's scope closes, whatever the
 *   exit (success, failure, defect, interruption): holder death releases the lock.
 * - Leases: a grant lasts `lease` (30 s by default; `Duration.infinity` for none) unless `renew`ed. When
 *   it expires, the lock goes to the next waiter and the old lease is stale: `validate` and
 *   `renew` fail with `StaleLeaseError`, and its release does nothing. `withLock` interrupts its
 *   effect when its lease expires (failing with `StaleLeaseError`), and the next holder is
 *   granted only once that effect has stopped: two `withLock` effects never overlap (a lease
 *   cannot cut short an uninterruptible region; a raw `acquire` lease is handed on at once, its
 *   token is what protects a resource). Expiry runs on the `Clock`, from one timer fiber in the
 *   service's scope that sleeps until the earliest deadline.
 * - Not re-entrant: a holder acquiring the same lock again waits behind itself (until its
 *   timeout or its lease). Closing the service's scope fails every waiter with
 *   `ServiceUnavailableError` and makes every lease stale.
 *
 * Telemetry (when `Telemetry` is in the context at `make`; see `events`): `lease_expired`,
 * `acquire_timeout`. Metrics (tagged `locks`): `foundation_lock_acquisitions_total`,
 * `foundation_lock_timeouts_total`, `foundation_lock_expirations_total`, `foundation_lock_waiters`.
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Events from "../../observability/Events.js"
import { ServiceUnavailableError, Tagged, ValidationError } from "../../errors/FoundationError.js"
import * as Validation from "../../errors/Validation.js"
import * as MetricKit from "../../observability/MetricKit.js"
import * as Telemetry from "../../observability/Telemetry.js"

// ---------------------------------------------------------------------------------------------
// Options, data, errors
// ---------------------------------------------------------------------------------------------

/** Options of the service. */
export interface Options {
  /** Used in events, metrics and errors ["locks"]. */
  readonly name?: string
  /** The default lease of a grant ["30 seconds"; `Duration.infinity`: no expiry]. */
  readonly lease?: Duration.DurationInput
  /** The default time an `acquire` waits [forever]. */
  readonly timeout?: Duration.DurationInput
}

/** Defaults. */
export const defaults = { name: "locks", lease: Duration.seconds(30), timeout: Duration.infinity } as const

/** Options of one acquisition. */
export interface AcquireOptions {
  /** How long the grant lasts unless renewed [the service's `lease`]. */
  readonly lease?: Duration.DurationInput
  /** How long to wait for the lock; zero: only if free now [the service's `timeout`]. */
  readonly timeout?: Duration.DurationInput
  /** Who holds it, for `status` and errors [the fiber's id, e.g. "#12"]. */
  readonly holder?: string
}

/** A grant of a lock. A plain value: `renew` returns a new one. */
export interface Lease {
  /** The lock's name. */
  readonly name: string
  /** The fencing token: strictly greater than every token granted before it. */
  readonly token: number
  readonly holder: string
  /** Epoch milliseconds (Clock). */
  readonly acquiredAt: number
  /** When the lease expires unless renewed (none: never). */
  readonly expiresAt: Option.Option<number>
}

/** A lock's state. A lock nobody holds or awaits is reported unlocked, with no waiters. */
export interface LockStatus {
  readonly name: string
  readonly locked: boolean
  readonly holder: Option.Option<string>
  readonly token: Option.Option<number>
  readonly acquiredAt: Option.Option<number>
  readonly expiresAt: Option.Option<number>
  /** The waiting holders, first to be granted first. */
  readonly waiters: ReadonlyArray<string>
}

/** The lock was not granted within `timeout`; the waiter left the queue and will never hold it. */
export class LockTimeoutError extends Tagged("LockTimeoutError", {
  captureStack: false,
  category: "transient",
  severity: "medium",
  message: "Lock acquisition timed out"
})<{
  readonly lock: string
  readonly holder: string
  readonly timeout: Duration.Duration
  /** Who held the lock when the waiter gave up. */
  readonly heldBy: string | undefined
}> {
  override describe() {
    return `"${this.holder}" timed out after ${Duration.format(this.timeout)} waiting for lock "${this.lock}"${
      this.heldBy === undefined ? "" : ` (held by "${this.heldBy}")`
    }`
  }
}

/** Why a lease is no longer the lock's current grant. */
export type StaleReason = "expired" | "released" | "closed"

/** The lease is not the lock's current grant any more (it expired, or was released). */
export class StaleLeaseError extends Tagged("StaleLeaseError", {
  captureStack: false,
  category: "permanent",
  severity: "medium",
  message: "Stale lease"
})<{
  readonly lock: string
  readonly token: number
  readonly reason: StaleReason
}> {
  override describe() {
    const why = this.reason === "expired"
      ? "its lease expired"
      : this.reason === "released"
      ? "it was released"
      : "the lock service closed"
    return `Lease ${this.token} of lock "${this.lock}" is stale: ${why}`
  }
}

/** Telemetry events of this module. */
export const events = Events.names.lock

/** The locks service. */
export interface Service {
  readonly name: string
  /**
   * Waits (FIFO) for the lock and returns its lease, released when the current scope closes.
   * Fails with `LockTimeoutError` after `timeout`.
   */
  acquire(
    name: string,
    options?: AcquireOptions
  ): Effect.Effect<Lease, ValidationError | LockTimeoutError | ServiceUnavailableError, Scope.Scope>
  /** The lock if it is free now (released when the current scope closes), else none; never waits. */
  tryAcquire(
    name: string,
    options?: Omit<AcquireOptions, "timeout">
  ): Effect.Effect<Option.Option<Lease>, ValidationError | ServiceUnavailableError, Scope.Scope>
  /**
   * Runs `effect` holding the lock, and releases it after, whatever the exit. If the lease expires
   * (or is released) first, `effect` is interrupted and `withLock` fails with `StaleLeaseError`;
   * the lock passes to the next waiter only once `effect` has stopped.
   */
  withLock<A, E, R>(
    name: string,
    effect: Effect.Effect<A, E, R> | ((lease: Lease) => Effect.Effect<A, E, R>),
    options?: AcquireOptions
  ): Effect.Effect<A, E | ValidationError | LockTimeoutError | StaleLeaseError | ServiceUnavailableError, R>
  /** Extends a current lease by `lease` from now [its own lease duration]; returns the updated lease. */
  renew(lease: Lease, duration?: Duration.DurationInput): Effect.Effect<Lease, StaleLeaseError | ValidationError>
  /** Succeeds while the lease is the lock's current grant; `StaleLeaseError` otherwise. */
  validate(lease: Lease): Effect.Effect<void, StaleLeaseError | ValidationError>
  /** Releases now (before the scope closes); false when the lease was already stale. */
  release(lease: Lease): Effect.Effect<boolean>
  /** One lock's state. */
  status(name: string): Effect.Effect<LockStatus>
  /** Every lock held or awaited. */
  readonly locks: Effect.Effect<ReadonlyArray<LockStatus>>
}

/** The `Locks` service. */
export class Locks extends Context.Tag("effect-foundation/Locks")<Locks, Service>() {}

// ---------------------------------------------------------------------------------------------
// The implementation
// ---------------------------------------------------------------------------------------------

interface Holding {
  readonly rec: LockRec
  readonly token: number
  readonly holder: string
  readonly acquiredAt: number
  /** Milliseconds; Infinity: no expiry. */
  readonly leaseMillis: number
  expiresAt: number
  ended: StaleReason | undefined
  /**
   * Granted to `withLock`: when the lease expires, the lock stays with this grant (stale all the
   * same) until `withLock` has stopped its effect, so that two effects never overlap.
   */
  readonly guarded: boolean
  /** A guarded grant that expired and still waits for its effect to stop. */
  draining: boolean
  /** Completed when the lease expires (made on demand, by `withLock`). */
  lost: Deferred.Deferred<void> | undefined
}

interface Waiter {
  readonly id: number
  readonly holder: string
  readonly leaseMillis: number
  readonly guarded: boolean
  readonly granted: Deferred.Deferred<Holding, ServiceUnavailableError>
  state: "waiting" | "granted" | "left" | "closed"
  holding: Holding | undefined
}

interface LockRec {
  readonly name: string
  holding: Holding | undefined
  /** In arrival order (a Map keeps insertion order; removal is O(1)). */
  readonly waiters: Map<number, Waiter>
}

const millisOf = (d: Duration.Duration): number => Duration.isFinite(d) ? Duration.toMillis(d) : Infinity

const leaseOf = (h: Holding): Lease => ({
  name: h.rec.name,
  token: h.token,
  holder: h.holder,
  acquiredAt: h.acquiredAt,
  expiresAt: h.expiresAt === Infinity ? Option.none() : Option.some(h.expiresAt)
})

const statusOf = (name: string, rec: LockRec | undefined): LockStatus => {
  const h = rec?.holding
  return {
    name,
    locked: h !== undefined,
    holder: Option.fromNullable(h?.holder),
    token: Option.fromNullable(h?.token),
    acquiredAt: Option.fromNullable(h?.acquiredAt),
    expiresAt: h === undefined || h.expiresAt === Infinity ? Option.none() : Option.some(h.expiresAt),
    waiters: rec === undefined ? [] : Array.from(rec.waiters.values(), (w) => w.holder)
  }
}

/** Makes the locks service in the current scope, with its lease timer fiber. */
export const make = (options: Options = {}): Effect.Effect<Service, ValidationError, Scope.Scope> =>
  Effect.gen(function*() {
    if (typeof options !== "object" || options === null) return yield* Validation.invalid("locks", "options must be an object")
    const serviceName = yield* Validation.nonEmptyString("locks.name", options.name ?? defaults.name)
    const defaultLease = millisOf(
      yield* Validation.duration("locks.lease", options.lease ?? defaults.lease, { allowInfinite: true })
    )
    const defaultTimeout = yield* Validation.duration("locks.timeout", options.timeout ?? defaults.timeout, {
      allowInfinite: true,
      allowZero: true
    })
    const clock = yield* Effect.clock
    const serviceFiber = yield* Effect.fiberId
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const now = () => clock.unsafeCurrentTimeMillis()

    const metric = (name: string, description: string) =>
      MetricKit.counter(name, { description, tags: { locks: serviceName } })
    const acquisitions = metric("foundation_lock_acquisitions_total", "Locks granted")
    const timeouts = metric("foundation_lock_timeouts_total", "Lock acquisitions that timed out")
    const expirations = metric("foundation_lock_expirations_total", "Leases that expired")
    const waitersGauge = MetricKit.gauge("foundation_lock_waiters", {
      description: "Waiters queued for locks",
      tags: { locks: serviceName }
    })

    const locks = new Map<string, LockRec>()
    /** Leases granted from `make`: every lease's key to its grant. */
    const holdings = new WeakMap<Lease, Holding>()
    let lastToken = 0
    let lastWaiter = 0
    let waiting = 0
    let closed = false

    // The lease timer: one fiber, asleep until the earliest deadline or until `poke` says a
    // grant expires earlier than that.
    let timerAt = Infinity
    let wake = Deferred.unsafeMake<void>(serviceFiber)
    const poke = (deadline: number): void => {
      if (deadline < timerAt) {
        timerAt = deadline
        Deferred.unsafeDone(wake, Exit.void)
      }
    }

    const setWaiting = (delta: number) => {
      waiting += delta
      MetricKit.set(waitersGauge, waiting)
    }

    const dropIfIdle = (rec: LockRec): void => {
      if (rec.holding === undefined && rec.waiters.size === 0 && locks.get(rec.name) === rec) locks.delete(rec.name)
    }

    /** Grants the lock (one step; it is free). */
    const grant = (rec: LockRec, holder: string, leaseMillis: number, guarded: boolean): Holding => {
      const at = now()
      const holding: Holding = {
        rec,
        token: ++lastToken,
        holder,
        acquiredAt: at,
        leaseMillis,
        expiresAt: at + leaseMillis,
        ended: undefined,
        guarded,
        draining: false,
        lost: undefined
      }
      rec.holding = holding
      MetricKit.bump(acquisitions)
      if (holding.expiresAt !== Infinity) poke(holding.expiresAt)
      return holding
    }

    /** Hands a free lock to its first waiter, if any (one step). */
    const handOff = (rec: LockRec): Holding | undefined => {
      for (const waiter of rec.waiters.values()) {
        rec.waiters.delete(waiter.id)
        setWaiting(-1)
        const holding = grant(rec, waiter.holder, waiter.leaseMillis, waiter.guarded)
        waiter.state = "granted"
        waiter.holding = holding
        Deferred.unsafeDone(waiter.granted, Exit.succeed(holding))
        return holding
      }
      dropIfIdle(rec)
      return undefined
    }

    /** Takes a grant off its lock and hands the lock on (one step). */
    const detach = (holding: Holding): void => {
      const rec = holding.rec
      if (rec.holding !== holding) return
      rec.holding = undefined
      handOff(rec)
    }

    /**
     * Ends a grant (one step) and hands the lock on, except a guarded grant (`withLock`), which
     * keeps the lock, stale, until `finish`: its effect is being stopped. False when it had
     * ended already.
     */
    const end = (holding: Holding, reason: StaleReason): boolean => {
      if (holding.ended !== undefined) return false
      holding.ended = reason
      if (holding.lost !== undefined) Deferred.unsafeDone(holding.lost, Exit.void)
      const rec = holding.rec
      if (reason === "expired") {
        MetricKit.bump(expirations)
        const next = rec.waiters.values().next()
        telemetry?.unsafeEmit(events.leaseExpired, { count: 1, held_ms: now() - holding.acquiredAt }, {
          locks: serviceName,
          lock: rec.name,
          holder: holding.holder,
          token: holding.token,
          next_holder: next.done === true ? undefined : next.value.holder
        })
      }
      if (reason !== "closed" && holding.guarded && rec.holding === holding) {
        holding.draining = true
        holding.expiresAt = Infinity
        return true
      }
      if (reason === "closed") {
        if (rec.holding === holding) rec.holding = undefined
      } else {
        detach(holding)
      }
      return true
    }

    /** The grant's scope closed: releases it, or hands on the lock a drained grant kept. */
    const finish = (holding: Holding): void => {
      end(holding, "released")
      if (holding.draining) {
        holding.draining = false
        detach(holding)
      }
    }

    /** Expires every grant past its deadline; returns the earliest deadline left (one step). */
    const expireDue = (at: number): number => {
      let next = Infinity
      for (const rec of Array.from(locks.values())) {
        const h = rec.holding
        if (h !== undefined && h.ended === undefined && h.expiresAt <= at) end(h, "expired")
        const after = rec.holding
        if (after !== undefined && after.ended === undefined && after.expiresAt < next) next = after.expiresAt
      }
      return next
    }

    const timerStep = Effect.sync(() => {
      const at = now()
      const next = expireDue(at)
      timerAt = next
      wake = Deferred.unsafeMake<void>(serviceFiber)
      return { delay: next - at, wake }
    })
    const timer = Effect.forever(
      Effect.flatMap(timerStep, ({ delay, wake }) =>
        delay === Infinity
          ? Deferred.await(wake)
          : Effect.raceFirst(Effect.sleep(Duration.millis(delay)), Deferred.await(wake)))
    )

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        const unavailable = new ServiceUnavailableError({ service: serviceName, reason: "closed" })
        for (const rec of locks.values()) {
          for (const waiter of rec.waiters.values()) {
            waiter.state = "closed"
            Deferred.unsafeDone(waiter.granted, Exit.fail(unavailable))
          }
          rec.waiters.clear()
          if (rec.holding !== undefined) end(rec.holding, "closed")
        }
        locks.clear()
        setWaiting(-waiting)
      })
    )
    const scope = yield* Effect.scope
    yield* Effect.forkIn(Effect.interruptible(timer), scope)

    const unavailable = () => new ServiceUnavailableError({ service: serviceName, reason: "closed" })

    const recOf = (name: string): LockRec => {
      let rec = locks.get(name)
      if (rec === undefined) locks.set(name, rec = { name, holding: undefined, waiters: new Map() })
      return rec
    }

    interface Request {
      readonly name: string
      readonly holder: string
      readonly leaseMillis: number
      readonly timeout: Duration.Duration
    }

    const request = (
      name: string,
      options: AcquireOptions | undefined,
      withTimeout: boolean
    ): Effect.Effect<Request, ValidationError> =>
      Effect.gen(function*() {
        if (options !== undefined && (typeof options !== "object" || options === null)) {
          return yield* Validation.invalid("options", "must be an object")
        }
        const lockName = yield* Validation.nonEmptyString("name", name)
        const holder = options?.holder === undefined
          ? FiberId.threadName(yield* Effect.fiberId)
          : yield* Validation.nonEmptyString("holder", options.holder)
        const leaseMillis = options?.lease === undefined
          ? defaultLease
          : millisOf(yield* Validation.duration("lease", options.lease, { allowInfinite: true }))
        const timeout = !withTimeout || options?.timeout === undefined
          ? defaultTimeout
          : yield* Validation.duration("timeout", options.timeout, { allowInfinite: true, allowZero: true })
        return { name: lockName, holder, leaseMillis, timeout }
      })

    const timeoutError = (req: Request, rec: LockRec) => {
      MetricKit.bump(timeouts)
      telemetry?.unsafeEmit(
        events.acquireTimeout,
        { count: 1, timeout_ms: Duration.toMillis(req.timeout), waiters: rec.waiters.size },
        { locks: serviceName, lock: req.name, holder: req.holder, held_by: rec.holding?.holder }
      )
      return new LockTimeoutError({ lock: req.name, holder: req.holder, timeout: req.timeout, heldBy: rec.holding?.holder })
    }

    /** The waiter's timer fired: granted meanwhile → it holds the lock; else it leaves the queue, for good. */
    const waitTimedOut = (waiter: Waiter, req: Request, rec: LockRec) =>
      Effect.suspend((): Effect.Effect<Holding, LockTimeoutError | ServiceUnavailableError> => {
        if (waiter.state === "granted" && waiter.holding !== undefined) return Effect.succeed(waiter.holding)
        if (waiter.state === "closed") return Effect.fail(unavailable())
        if (waiter.state === "waiting") {
          waiter.state = "left"
          rec.waiters.delete(waiter.id)
          setWaiting(-1)
          dropIfIdle(rec)
        }
        return Effect.fail(timeoutError(req, rec))
      })

    /** The waiter was interrupted: it leaves the queue, or hands on the grant it just got. */
    const abandon = (waiter: Waiter, rec: LockRec) =>
      Effect.sync(() => {
        if (waiter.state === "waiting") {
          waiter.state = "left"
          rec.waiters.delete(waiter.id)
          setWaiting(-1)
          dropIfIdle(rec)
        } else if (waiter.state === "granted" && waiter.holding !== undefined) {
          finish(waiter.holding)
        }
      })

    const register = (holding: Holding, scope: Scope.Scope): Effect.Effect<Lease> => {
      const lease = leaseOf(holding)
      holdings.set(lease, holding)
      return Effect.as(Scope.addFinalizer(scope, Effect.sync(() => finish(holding))), lease)
    }

    const acquireWith = (
      req: Request,
      guarded: boolean
    ): Effect.Effect<Lease, LockTimeoutError | ServiceUnavailableError, Scope.Scope> =>
      Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            const scope = yield* Effect.scope
            const holding = yield* Effect.suspend((): Effect.Effect<Holding, LockTimeoutError | ServiceUnavailableError> => {
              if (closed) return Effect.fail(unavailable())
              const rec = recOf(req.name)
              if (rec.holding === undefined) return Effect.succeed(grant(rec, req.holder, req.leaseMillis, guarded))
              if (Duration.isZero(req.timeout)) return Effect.fail(timeoutError(req, rec))
              const waiter: Waiter = {
                id: ++lastWaiter,
                holder: req.holder,
                leaseMillis: req.leaseMillis,
                guarded,
                granted: Deferred.unsafeMake(serviceFiber),
                state: "waiting",
                holding: undefined
              }
              rec.waiters.set(waiter.id, waiter)
              setWaiting(1)
              const wait = Deferred.await(waiter.granted)
              const timed = Duration.isFinite(req.timeout)
                ? Effect.flatMap(
                  Effect.timeoutOption(wait, req.timeout),
                  Option.match({ onNone: () => waitTimedOut(waiter, req, rec), onSome: Effect.succeed })
                )
                : wait
              return restore(timed).pipe(Effect.onInterrupt(() => abandon(waiter, rec)))
            })
            return yield* register(holding, scope)
          })
      )

    const acquire: Service["acquire"] = (name, options) =>
      Effect.flatMap(request(name, options, true), (req) => acquireWith(req, false))

    const tryAcquire: Service["tryAcquire"] = (name, options) =>
      Effect.flatMap(request(name, options, false), (req) =>
        Effect.uninterruptible(Effect.gen(function*() {
          const scope = yield* Effect.scope
          if (closed) return yield* Effect.fail(unavailable())
          const rec = recOf(req.name)
          if (rec.holding !== undefined) return Option.none()
          return Option.some(yield* register(grant(rec, req.holder, req.leaseMillis, false), scope))
        })))

    const holdingOf = (lease: Lease): Either.Either<Holding, ValidationError> => {
      const holding = typeof lease === "object" && lease !== null ? holdings.get(lease) : undefined
      return holding === undefined
        ? Validation.invalid("lease", "not a lease granted by this service")
        : Either.right(holding)
    }

    const stale = (h: Holding) =>
      new StaleLeaseError({ lock: h.rec.name, token: h.token, reason: h.ended ?? "released" })

    const current = (h: Holding): Either.Either<Holding, StaleLeaseError> =>
      h.ended === undefined && h.rec.holding === h ? Either.right(h) : Either.left(stale(h))

    const withLock: Service["withLock"] = (name, effect, options) =>
      Effect.flatMap(request(name, options, true), (req) =>
        Effect.scoped(
          Effect.flatMap(acquireWith(req, true), (lease) =>
            Effect.suspend(() => {
              const holding = holdings.get(lease)
              if (holding === undefined) return Effect.dieMessage("lease without a grant")
              if (holding.ended !== undefined) return Effect.fail(stale(holding))
              const lost = holding.lost ??= Deferred.unsafeMake<void>(serviceFiber)
              const run = typeof effect === "function" ? effect(lease) : effect
              return Effect.raceFirst(run, Effect.flatMap(Deferred.await(lost), () => Effect.fail(stale(holding))))
            }))
        ))

    const service: Service = {
      name: serviceName,
      acquire,
      tryAcquire,
      withLock,
      renew: (lease, duration) =>
        Effect.gen(function*() {
          const holding = yield* holdingOf(lease)
          const extra = duration === undefined
            ? holding.leaseMillis
            : millisOf(yield* Validation.duration("duration", duration, { allowInfinite: true }))
          return yield* Effect.suspend(() =>
            Either.match(current(holding), {
              onLeft: Effect.fail,
              onRight: (h) => {
                h.expiresAt = now() + extra
                if (h.expiresAt !== Infinity) poke(h.expiresAt)
                const renewed = leaseOf(h)
                holdings.set(renewed, h)
                return Effect.succeed(renewed)
              }
            })
          )
        }),
      validate: (lease) =>
        Effect.flatMap(holdingOf(lease), (holding) => Effect.suspend(() => Effect.asVoid(current(holding)))),
      release: (lease) =>
        Effect.sync(() => {
          const holding = typeof lease === "object" && lease !== null ? holdings.get(lease) : undefined
          return holding === undefined ? false : end(holding, "released")
        }),
      status: (name) => Effect.sync(() => statusOf(name, locks.get(name))),
      locks: Effect.sync(() => Array.from(locks.values(), (rec) => statusOf(rec.name, rec)))
    }
    return service
  })

/** The `Locks` service as a scoped layer. */
export const layer = (options: Options = {}): Layer.Layer<Locks, ValidationError> => Layer.scoped(Locks, make(options))

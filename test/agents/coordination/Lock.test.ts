import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, FastCheck as fc, Fiber, Option, Ref, Scope, TestClock } from "effect"
import * as Example from "../../../examples/lock.js"
import * as Lock from "../../../src/agents/coordination/Lock.js"
import { ValidationError } from "../../../src/errors/FoundationError.js"
import * as EventBus from "../../../src/observability/EventBus.js"
import * as Telemetry from "../../../src/observability/Telemetry.js"
import { drainTelemetry } from "../../support/telemetry.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** Lets every ready fiber run, without moving the clock. */
const settle = Effect.repeatN(Effect.yieldNow(), 50)

const holderOf = (locks: Lock.Service, name: string) => Effect.map(locks.status(name), (s) => Option.getOrUndefined(s.holder))

/**
 * A holder in a scope of its own: `acquired` completes with its lease; the lock is held until
 * `release` closes the scope (or the fiber is interrupted).
 */
const holdIn = (locks: Lock.Service, name: string, options: Lock.AcquireOptions) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const fiber = yield* Effect.fork(Scope.extend(locks.acquire(name, options), scope))
    yield* settle
    return { fiber, scope, release: Scope.close(scope, Exit.void) }
  })

describe("Locks", () => {
  it.scoped("acquire holds the lock until the scope closes; status shows holder, token, expiry and waiters", () =>
    Effect.gen(function*() {
      const locks = yield* Lock.make()
      expect(yield* locks.status("db")).toEqual({
        name: "db",
        locked: false,
        holder: Option.none(),
        token: Option.none(),
        acquiredAt: Option.none(),
        expiresAt: Option.none(),
        waiters: []
      })
      const a = yield* holdIn(locks, "db", { holder: "a", lease: "10 seconds" })
      const lease = yield* Fiber.join(a.fiber)
      expect(lease).toMatchObject({ name: "db", holder: "a", token: 1, acquiredAt: 0, expiresAt: Option.some(10_000) })
      const b = yield* holdIn(locks, "db", { holder: "b" })
      expect(yield* locks.status("db")).toEqual({
        name: "db",
        locked: true,
        holder: Option.some("a"),
        token: Option.some(1),
        acquiredAt: Option.some(0),
        expiresAt: Option.some(10_000),
        waiters: ["b"]
      })
      expect((yield* locks.locks).map((s) => s.name)).toEqual(["db"])
      yield* a.release
      expect(yield* Fiber.join(b.fiber)).toMatchObject({ holder: "b", token: 2, expiresAt: Option.some(30_000) }) // default lease 30 s
      yield* b.release
      expect((yield* locks.status("db")).locked).toBe(false)
      expect(yield* locks.locks).toEqual([]) // nothing kept for a lock nobody holds or awaits
    }))

  it.scoped("FIFO: waiters are granted in arrival order, each with a strictly greater fencing token", () =>
    Effect.gen(function*() {
      const locks = yield* Lock.make({ lease: Duration.infinity })
      const order = yield* Ref.make<ReadonlyArray<string>>([])
      const first = yield* holdIn(locks, "q", { holder: "first" })
      const holders = ["b", "c", "d", "e"]
      const waiters = []
      for (const holder of holders) {
        waiters.push(
          yield* Effect.fork(
            locks.withLock(
              "q",
              (lease) => Effect.as(Ref.update(order, (o) => [...o, holder]), lease.token),
              { holder }
            )
          )
        )
        yield* settle
      }
      expect((yield* locks.status("q")).waiters).toEqual(holders)
      // The lock is never free while someone waits: no barging.
      expect(Option.isNone(yield* Effect.scoped(locks.tryAcquire("q", { holder: "barger" })))).toBe(true)
      yield* first.release
      const tokens = yield* Effect.forEach(waiters, Fiber.join)
      expect(yield* Ref.get(order)).toEqual(holders)
      expect(tokens).toEqual([2, 3, 4, 5])
      // Tokens keep increasing after the lock's record was dropped and made anew.
      expect(yield* locks.locks).toEqual([])
      const again = yield* Effect.scoped(locks.acquire("q"))
      expect(again.token).toBe(6)
      expect((yield* Effect.scoped(locks.acquire("other"))).token).toBe(7)
    }))

  it.effect.prop(
    "any interleaving of acquisitions, releases, timeouts, expiries and interruptions: one effect at a time, tokens strictly increase",
    [fc.array(fc.record({ hold: fc.integer({ min: 0, max: 12 }), start: fc.integer({ min: 0, max: 20 }), timeout: fc.option(fc.integer({ min: 0, max: 10 }), { nil: undefined }), kill: fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }) }), { minLength: 1, maxLength: 8 })],
    ([clients]) =>
      Effect.scoped(Effect.gen(function*() {
        // Leases of 8 s, effects of up to 12 s: some leases expire while their effect runs.
        const locks = yield* Lock.make({ lease: "8 seconds" })
        let inside = 0
        let overlap = false
        const grants: Array<{ token: number; at: number }> = []
        const fibers = yield* Effect.forEach(clients, (c, i) =>
          Effect.fork(Effect.zipRight(
            Effect.sleep(Duration.seconds(c.start)),
            locks.withLock(
              "p",
              (lease) =>
                Effect.gen(function*() {
                  inside++
                  if (inside > 1) overlap = true
                  grants.push({ token: lease.token, at: i })
                  yield* Effect.sleep(Duration.seconds(c.hold))
                }).pipe(Effect.ensuring(Effect.sync(() => inside--))),
              { holder: `c${i}`, ...(c.timeout === undefined ? {} : { timeout: Duration.seconds(c.timeout) }) }
            )
          )))
        yield* Effect.forEach(clients, (c, i) => {
          const fiber = fibers[i]
          return c.kill === undefined || fiber === undefined
            ? Effect.void
            : Effect.fork(Effect.zipRight(Effect.sleep(Duration.seconds(c.kill)), Fiber.interrupt(fiber)))
        }, { discard: true })
        yield* TestClock.adjust("2 minutes")
        for (const f of fibers) yield* Fiber.await(f)
        expect(overlap).toBe(false)
        const tokens = grants.map((g) => g.token)
        expect(tokens).toEqual([...tokens].sort((x, y) => x - y))
        expect(new Set(tokens).size).toBe(tokens.length)
        expect(yield* locks.locks).toEqual([]) // nobody holds or waits: no ghost owner, no leftover waiter
      })),
    { fastCheck: { numRuns: 15 } }
  )

  it.scoped("released when the holder's scope ends by failure, defect or interruption", () =>
    Effect.gen(function*() {
      const locks = yield* Lock.make()
      const failed = yield* Effect.exit(locks.withLock("r", Effect.fail("boom" as const)))
      expect(failureOf(failed)).toBe("boom")
      expect((yield* locks.status("r")).locked).toBe(false)

      const died = yield* Effect.exit(locks.withLock("r", Effect.die("defect")))
      expect(Exit.isFailure(died) && Cause.isDie(died.cause)).toBe(true)
      expect((yield* locks.status("r")).locked).toBe(false)

      const holder = yield* Effect.fork(Effect.scoped(Effect.zipRight(locks.acquire("r", { holder: "h" }), Effect.never)))
      yield* settle
      expect(yield* holderOf(locks, "r")).toBe("h")
      const waiter = yield* Effect.fork(Effect.scoped(locks.acquire("r", { holder: "w" })))
      yield* settle
      yield* Fiber.interrupt(holder)
      expect((yield* Fiber.join(waiter)).holder).toBe("w") // handed on at once
      expect((yield* locks.status("r")).locked).toBe(false) // and w's scope closed in turn
    }))

  it.scoped("an expired lease hands the lock to the next waiter; the old lease is stale", () =>
    Effect.gen(function*() {
      const locks = yield* Lock.make()
      const a = yield* holdIn(locks, "job", { holder: "a", lease: "10 seconds" })
      const leaseA = yield* Fiber.join(a.fiber)
      const b = yield* holdIn(locks, "job", { holder: "b", lease: "1 minute" })
      yield* TestClock.adjust("9999 millis")
      expect(yield* holderOf(locks, "job")).toBe("a")
      yield* locks.validate(leaseA)
      yield* TestClock.adjust("1 millis")
      const leaseB = yield* Fiber.join(b.fiber)
      expect(leaseB).toMatchObject({ holder: "b", acquiredAt: 10_000, expiresAt: Option.some(70_000) })
      expect(leaseB.token).toBeGreaterThan(leaseA.token)
      expect(yield* holderOf(locks, "job")).toBe("b")

      const stale = yield* Effect.flip(locks.validate(leaseA))
      expect(stale).toBeInstanceOf(Lock.StaleLeaseError)
      expect(stale).toMatchObject({ lock: "job", token: leaseA.token, reason: "expired", category: "permanent" })
      expect(yield* Effect.flip(locks.renew(leaseA))).toMatchObject({ _tag: "StaleLeaseError", reason: "expired" })
      expect(yield* locks.release(leaseA)).toBe(false)
      yield* a.release // the old holder's scope ends late: b keeps the lock
      expect(yield* holderOf(locks, "job")).toBe("b")
      yield* locks.validate(leaseB)

      // With nobody waiting, an expired lease frees the lock.
      yield* TestClock.adjust("1 minute")
      expect((yield* locks.status("job")).locked).toBe(false)
      expect(yield* Effect.flip(locks.validate(leaseB))).toMatchObject({ reason: "expired" })
      yield* b.release
    }))

  it.scoped("renew extends the lease from now; a shorter renewal moves the expiry earlier", () =>
    Effect.gen(function*() {
      const locks = yield* Lock.make()
      const a = yield* holdIn(locks, "r", { holder: "a", lease: "10 seconds" })
      const lease = yield* Fiber.join(a.fiber)
      const b = yield* holdIn(locks, "r", { holder: "b" })
      yield* TestClock.adjust("8 seconds")
      const renewed = yield* locks.renew(lease)
      expect(renewed.expiresAt).toEqual(Option.some(18_000))
      expect(renewed.token).toBe(lease.token)
      yield* TestClock.adjust("9999 millis") // 17.999 s
      expect(yield* holderOf(locks, "r")).toBe("a")
      const shorter = yield* locks.renew(renewed, "1 second") // the old value still names the same grant
      expect(shorter.expiresAt).toEqual(Option.some(18_999))
      yield* TestClock.adjust("999 millis")
      expect(yield* holderOf(locks, "r")).toBe("a")
      yield* TestClock.adjust("1 millis")
      expect(yield* holderOf(locks, "r")).toBe("b")
      yield* b.release
      yield* a.release
    }))

  it.scoped("withLock interrupts its effect when the lease expires, and fails with StaleLeaseError", () =>
    Effect.gen(function*() {
      const locks = yield* Lock.make()
      const interrupted = yield* Ref.make(false)
      const fiber = yield* Effect.fork(
        locks.withLock("w", Effect.onInterrupt(Effect.never, () => Ref.set(interrupted, true)), { lease: "5 seconds" })
      )
      const next = yield* Effect.fork(locks.withLock("w", (lease) => Effect.succeed(lease.holder), { holder: "next" }))
      yield* settle
      yield* TestClock.adjust("5 seconds")
      expect(yield* Effect.flip(Fiber.join(fiber))).toMatchObject({ _tag: "StaleLeaseError", reason: "expired", lock: "w" })
      expect(yield* Ref.get(interrupted)).toBe(true)
      expect(yield* Fiber.join(next)).toBe("next")
      expect((yield* locks.status("w")).locked).toBe(false)
    }))

  it.scoped("withLock: the next holder waits until the expired effect has stopped (an uninterruptible tail)", () =>
    Effect.gen(function*() {
      const locks = yield* Lock.make()
      const log = yield* Ref.make<ReadonlyArray<string>>([])
      const at = (line: string) =>
        Effect.flatMap(Effect.clockWith((c) => c.currentTimeMillis), (t) => Ref.update(log, (l) => [...l, `${line}@${t}`]))
      const first = yield* Effect.fork(
        locks.withLock("d", Effect.zipRight(Effect.uninterruptible(Effect.sleep("8 seconds")), at("first done")), {
          holder: "first",
          lease: "5 seconds"
        })
      )
      yield* settle
      const second = yield* Effect.fork(locks.withLock("d", at("second in"), { holder: "second" }))
      yield* TestClock.adjust("5 seconds")
      // Expired (stale) but its effect still runs: the lock stays with it, the next waiter waits.
      expect(yield* holderOf(locks, "d")).toBe("first")
      expect((yield* locks.status("d")).waiters).toEqual(["second"])
      yield* TestClock.adjust("3 seconds")
      expect(yield* Effect.flip(Fiber.join(first))).toMatchObject({ _tag: "StaleLeaseError", reason: "expired" })
      yield* Fiber.join(second)
      // The uninterruptible sleep ran to its end; what followed it was interrupted; second came after.
      expect(yield* Ref.get(log)).toEqual(["second in@8000"])
    }))

  it.scoped("no ghost owner: a waiter that timed out never holds the lock afterwards", () =>
    Effect.gen(function*() {
      const locks = yield* Lock.make({ lease: Duration.infinity })
      const a = yield* holdIn(locks, "g", { holder: "a" })
      const b = yield* Effect.fork(Effect.scoped(Effect.zipRight(locks.acquire("g", { holder: "b", timeout: "1 second" }), Effect.never)))
      yield* settle
      expect((yield* locks.status("g")).waiters).toEqual(["b"])
      yield* TestClock.adjust("1 second")
      const timedOut = failureOf(yield* Fiber.await(b))
      expect(timedOut).toBeInstanceOf(Lock.LockTimeoutError)
      expect(timedOut).toMatchObject({ lock: "g", holder: "b", heldBy: "a", category: "transient" })
      expect((yield* locks.status("g")).waiters).toEqual([])
      yield* TestClock.adjust("1 second")
      yield* a.release // the original would now hand the lock to b, who gave up a second ago
      yield* settle
      expect((yield* locks.status("g")).locked).toBe(false)
      expect((yield* Effect.scoped(locks.acquire("g", { holder: "c", timeout: 0 }))).holder).toBe("c")
    }))

  it.scoped("a timeout at the very moment of the grant: the waiter holds the lock or is gone, never both or neither", () =>
    Effect.gen(function*() {
      // a's lease expires at 5 s, exactly when b's timeout fires; c waits behind b.
      for (const bFirst of [true, false]) {
        const locks = yield* Lock.make()
        const a = yield* holdIn(locks, "x", { holder: "a", lease: "5 seconds" })
        const waitB = holdIn(locks, "x", { holder: "b", timeout: "5 seconds", lease: Duration.infinity })
        const b = bFirst ? yield* waitB : undefined
        const c = yield* holdIn(locks, "x", { holder: "c", lease: Duration.infinity })
        const b2 = b ?? (yield* waitB)
        yield* TestClock.adjust("5 seconds")
        const bExit = yield* Fiber.await(b2.fiber)
        const status = yield* locks.status("x")
        if (Exit.isSuccess(bExit)) {
          expect(Option.getOrUndefined(status.holder)).toBe("b")
          yield* b2.release
        } else {
          expect(failureOf(bExit)).toMatchObject({ _tag: "LockTimeoutError" })
        }
        if (!bFirst) expect(Exit.isFailure(bExit)).toBe(true) // behind c, b never reached the front
        expect(yield* holderOf(locks, "x")).toBe("c")
        expect((yield* locks.status("x")).waiters).toEqual([])
        yield* c.release
        yield* a.release
        expect(yield* locks.locks).toEqual([])
      }
    }))

  it.scoped("no ghost owner: a waiter interrupted at the moment of its grant hands the lock to the next", () =>
    Effect.gen(function*() {
      const locks = yield* Lock.make()
      const entered = yield* Ref.make<ReadonlyArray<string>>([])
      const a = yield* holdIn(locks, "i", { holder: "a" })
      const leaseA = yield* Fiber.join(a.fiber)
      const contender = (holder: string) =>
        Effect.fork(
          locks.withLock("i", Effect.zipRight(Ref.update(entered, (e) => [...e, holder]), Effect.never), { holder })
        )
      const b = yield* contender("b")
      yield* settle
      const c = yield* contender("c")
      yield* settle
      // In one go: the release grants b (its Deferred completes), and b is interrupted before it resumes.
      expect(yield* locks.release(leaseA)).toBe(true)
      yield* Fiber.interrupt(b)
      yield* settle
      expect(yield* holderOf(locks, "i")).toBe("c")
      expect(yield* Ref.get(entered)).toEqual(["c"])
      yield* Fiber.interrupt(c)
      expect(yield* locks.locks).toEqual([])
      yield* a.release
    }))

  it.scoped("tryAcquire takes a free lock and never waits; timeout 0 fails at once", () =>
    Effect.gen(function*() {
      const locks = yield* Lock.make()
      const scope = yield* Scope.make()
      const got = yield* Scope.extend(locks.tryAcquire("t", { holder: "x" }), scope)
      expect(Option.map(got, (l) => l.holder)).toEqual(Option.some("x"))
      expect(yield* Effect.scoped(locks.tryAcquire("t"))).toEqual(Option.none())
      const now = yield* Effect.flip(Effect.scoped(locks.acquire("t", { timeout: 0, holder: "y" })))
      expect(now).toMatchObject({ _tag: "LockTimeoutError", holder: "y", heldBy: "x" })
      expect((yield* locks.status("t")).waiters).toEqual([])
      yield* Scope.close(scope, Exit.void)
      expect((yield* locks.status("t")).locked).toBe(false)
    }))

  it.scoped("the default holder is the acquiring fiber's id", () =>
    Effect.gen(function*() {
      const locks = yield* Lock.make()
      const lease = yield* locks.acquire("f")
      expect(lease.holder).toMatch(/^#\d+$/)
    }))

  it.effect("closing the service fails its waiters and makes every lease stale", () =>
    Effect.gen(function*() {
      const serviceScope = yield* Scope.make()
      const locks = yield* Scope.extend(Lock.make(), serviceScope)
      const a = yield* holdIn(locks, "s", { holder: "a" })
      const lease = yield* Fiber.join(a.fiber)
      const b = yield* holdIn(locks, "s", { holder: "b" })
      yield* Scope.close(serviceScope, Exit.void)
      expect(failureOf(yield* Fiber.await(b.fiber))).toMatchObject({ _tag: "ServiceUnavailableError", service: "locks" })
      expect(yield* Effect.flip(locks.validate(lease))).toMatchObject({ _tag: "StaleLeaseError", reason: "closed" })
      expect(yield* Effect.flip(Effect.scoped(locks.acquire("s")))).toMatchObject({ _tag: "ServiceUnavailableError" })
      yield* a.release
    }))

  it.scoped("rejects bad input with a ValidationError naming the field, leaving the lock untouched", () =>
    Effect.gen(function*() {
      const locks = yield* Lock.make()
      const fieldOf = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) =>
        Effect.map(Effect.flip(Effect.scoped(effect)), (e) => {
          expect(e).toBeInstanceOf(ValidationError)
          return (e as ValidationError).field
        })
      expect(yield* fieldOf(locks.acquire(""))).toBe("name")
      expect(yield* fieldOf(locks.acquire("v", { lease: 0 }))).toBe("lease")
      expect(yield* fieldOf(locks.acquire("v", { lease: -1 }))).toBe("lease")
      expect(yield* fieldOf(locks.acquire("v", { timeout: Number.NaN }))).toBe("timeout")
      expect(yield* fieldOf(locks.acquire("v", { holder: "" }))).toBe("holder")
      expect(yield* fieldOf(locks.tryAcquire("v", { lease: "soon" as Duration.DurationInput }))).toBe("lease")
      expect(yield* locks.locks).toEqual([])
      const lease = yield* locks.acquire("v")
      expect(yield* fieldOf(locks.renew(lease, -5))).toBe("duration")
      expect(yield* fieldOf(locks.validate({ ...lease }))).toBe("lease") // a copy is not a grant
      expect(yield* Effect.flip(Lock.make({ lease: 0 }))).toMatchObject({ field: "locks.lease" })
      expect(yield* Effect.flip(Lock.make({ timeout: -1 }))).toMatchObject({ field: "locks.timeout" })
      expect(yield* Effect.flip(Lock.make({ name: "" }))).toMatchObject({ field: "locks.name" })
    }))

  it.scoped("emits lease_expired and acquire_timeout events", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.EventBus
      const sub = yield* bus.subscribe("foundation.mabeam.lock.**", { capacity: 100 })
      const locks = yield* Lock.make({ name: "L" })
      const a = yield* holdIn(locks, "e", { holder: "a", lease: "10 seconds" })
      const b = yield* holdIn(locks, "e", { holder: "b", timeout: "2 seconds" })
      const c = yield* holdIn(locks, "e", { holder: "c" })
      yield* TestClock.adjust("10 seconds")
      yield* settle
      const seen = yield* drainTelemetry(sub)
      const e = Lock.events
      expect(seen).toEqual([
        [e.acquireTimeout, { count: 1, timeout_ms: 2_000, waiters: 1 }, { locks: "L", lock: "e", holder: "b", held_by: "a" }],
        [e.leaseExpired, { count: 1, held_ms: 10_000 }, { locks: "L", lock: "e", holder: "a", token: 1, next_holder: "c" }]
      ])
      yield* Effect.forEach([a, b, c], (h) => h.release)
    }).pipe(Effect.provide(Telemetry.layerWithBus())))

  it.effect("the example runs", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Example.program)
      yield* TestClock.adjust("1 hour")
      expect(yield* Fiber.join(fiber)).toEqual({
        writes: ["alice:1", "bob:2", "carol:3"],
        expired: { stalledToken: 4, nextToken: 5, staleReason: "expired" },
        gaveUp: "\"impatient\" timed out after 1s waiting for lock \"report\" (held by \"owner\")",
        reportLocked: false
      })
    }))
})

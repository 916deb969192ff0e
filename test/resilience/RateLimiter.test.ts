import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Fiber, Layer, Metric, MetricState, Option, TestClock } from "effect"
import {
  NotFoundError,
  RateLimitedError,
  ServiceUnavailableError,
  ValidationError
} from "../../src/errors/FoundationError.js"
import * as RateLimiter from "../../src/resilience/RateLimiter.js"

type Algorithm = RateLimiter.Algorithm

// Limit 5 per 10 s everywhere unless said otherwise; the TestClock starts at 0, a window boundary.
const LIMIT = 5
const WINDOW = 10_000

/** What each algorithm answers for a key exhausted at t = 0 (limit 5 per 10 s). */
const exhausted: Record<Algorithm, { readonly retryAfter: number; readonly resetAfter: number }> = {
  // one token every window / limit = 2 s; full again after 5 tokens = 10 s
  "token-bucket": { retryAfter: 2_000, resetAfter: 10_000 },
  // the next window starts at 10 s
  "fixed-window": { retryAfter: 10_000, resetAfter: 10_000 },
  // at 10 s the previous window (5) still weighs fully; 5 × (1 − e/10 s) + 1 ≤ 5 from e = 2 s;
  // the 5 requests stop counting at the end of the next window (20 s)
  "sliding-window": { retryAfter: 12_000, resetAfter: 20_000 }
}

/** A store that goes through the effectful `RateLimiterStore` interface only (as a remote store would). */
const interfaceOnly: RateLimiter.StoreFactory = (config) =>
  Effect.map(RateLimiter.memoryStore(config), (s) => ({
    consume: s.consume,
    peek: s.peek,
    reset: s.reset,
    sweep: s.sweep,
    keys: s.keys
  }))

const stores: ReadonlyArray<readonly [string, RateLimiter.StoreFactory | undefined]> = [
  ["in-memory fast path", undefined],
  ["store interface", interfaceOnly]
]

/** Runs `n` cost-1 consumes for `key`; returns how many were admitted. */
const admitted = (limiter: RateLimiter.RateLimiter, key: string, n: number, cost = 1) =>
  Effect.map(
    Effect.forEach(Array.from({ length: n }), () => Effect.either(limiter.consume(key, cost))),
    (results) => results.filter(Either.isRight).length
  )

const denial = (effect: Effect.Effect<unknown, RateLimitedError | ValidationError>) =>
  Effect.flatMap(Effect.flip(effect), (e) =>
    e._tag === "RateLimitedError" ? Effect.succeed(e) : Effect.dieMessage(`expected a denial, got ${e._tag}`))

const millis = (d: Duration.Duration) => Duration.toMillis(d)

for (const [storeName, store] of stores) {
  for (const algorithm of RateLimiter.algorithms) {
    describe(`${algorithm} (${storeName})`, () => {
      const make = (options: RateLimiter.Options = {}) =>
        RateLimiter.make({ name: "api", algorithm, limit: LIMIT, window: WINDOW, store, ...options })

      it.scoped("admits exactly limit per key, then denies with retryAfter, remaining and limit", () =>
        Effect.gen(function*() {
          const limiter = yield* make()
          const remaining: Array<number> = []
          for (let i = 0; i < LIMIT; i++) remaining.push((yield* limiter.consume("a")).remaining)
          expect(remaining).toEqual([4, 3, 2, 1, 0])
          const error = yield* denial(limiter.consume("a"))
          expect(error).toBeInstanceOf(RateLimitedError)
          expect(error.limiter).toBe("api")
          expect(error.key).toBe("a")
          expect(error.limit).toBe(LIMIT)
          expect(error.remaining).toBe(0)
          expect(millis(error.retryAfter)).toBe(exhausted[algorithm].retryAfter)
          expect(error.category).toBe("resource")
          // another key has its own allowance
          expect(yield* admitted(limiter, "b", LIMIT + 1)).toBe(LIMIT)
          const stats = yield* limiter.stats()
          expect(stats).toMatchObject({ allowed: 2 * LIMIT, denied: 2, liveKeys: 2 })
        }))

      it.scoped("a denied request consumes nothing", () =>
        Effect.gen(function*() {
          const limiter = yield* make()
          yield* limiter.consume("a", 3)
          // 3 + 3 > 5: denied, and it must not use the 2 units left
          const error = yield* denial(limiter.consume("a", 3))
          expect(error.remaining).toBe(2)
          for (let i = 0; i < 20; i++) yield* Effect.either(limiter.consume("a", 3))
          expect((yield* limiter.consume("a", 2)).remaining).toBe(0)
          // many denials on an exhausted key do not push the next admission further away
          for (let i = 0; i < 50; i++) yield* Effect.either(limiter.consume("a"))
          yield* TestClock.adjust(exhausted[algorithm].retryAfter)
          expect(yield* admitted(limiter, "a", 1)).toBe(1)
        }))

      it.scoped("retryAfter is exact: denied 1 ms before it, admitted at it (cost > 1 too)", () =>
        Effect.gen(function*() {
          const limiter = yield* make({ limit: 10 })
          yield* TestClock.adjust(3_217) // somewhere inside a window
          expect((yield* limiter.consume("k", 4)).remaining).toBe(6)
          expect((yield* limiter.consume("k", 6)).remaining).toBe(0)
          yield* TestClock.adjust(1_111)
          const error = yield* denial(limiter.consume("k", 3))
          const wait = millis(error.retryAfter)
          expect(wait).toBeGreaterThan(0)
          yield* TestClock.adjust(wait - 1)
          yield* denial(limiter.consume("k", 3))
          yield* TestClock.adjust(1)
          yield* limiter.consume("k", 3)
        }))

      it.scoped("status reports remaining, retryAfter and resetAfter without consuming or creating keys", () =>
        Effect.gen(function*() {
          const limiter = yield* make()
          const fresh = yield* limiter.status("new")
          expect(fresh.remaining).toBe(LIMIT)
          expect(fresh.limit).toBe(LIMIT)
          expect(millis(fresh.retryAfter)).toBe(0)
          expect(millis(fresh.resetAfter)).toBe(0)
          expect((yield* limiter.stats()).liveKeys).toBe(0)
          yield* limiter.consume("a", 2)
          for (let i = 0; i < 10; i++) expect((yield* limiter.status("a")).remaining).toBe(3)
          yield* limiter.consume("a", 3)
          const full = yield* limiter.status("a")
          expect(full.key).toBe("a")
          expect(full.remaining).toBe(0)
          expect(millis(full.retryAfter)).toBe(exhausted[algorithm].retryAfter)
          expect(millis(full.resetAfter)).toBe(exhausted[algorithm].resetAfter)
          // after resetAfter the key is as good as new
          yield* TestClock.adjust(exhausted[algorithm].resetAfter)
          const later = yield* limiter.status("a")
          expect([later.remaining, millis(later.resetAfter)]).toEqual([LIMIT, 0])
        }))

      it.scoped("reset gives a key its full capacity back, other keys keep theirs", () =>
        Effect.gen(function*() {
          const limiter = yield* make()
          yield* admitted(limiter, "a", LIMIT)
          yield* admitted(limiter, "b", LIMIT)
          yield* limiter.reset("a")
          expect(yield* admitted(limiter, "a", LIMIT + 1)).toBe(LIMIT)
          expect(yield* admitted(limiter, "b", 1)).toBe(0)
        }))

      it.scoped("concurrent consumers never over-admit (fibers interleave as often as possible)", () =>
        Effect.gen(function*() {
          const limiter = yield* make({ limit: 50 })
          // Each fiber runs a different number of operations before consuming and the runtime
          // preempts a fiber every 16 operations, so preemption lands everywhere in the consume
          // (a naive get-then-set on a Ref admits about twice the limit under this harness).
          const busy = (n: number) => Effect.forEach(Array.from({ length: n }), () => Effect.void, { discard: true })
          const results = yield* Effect.forEach(
            Array.from({ length: 200 }, (_, i) => i),
            (i) =>
              Effect.yieldNow().pipe(
                Effect.zipRight(busy(i % 97)),
                Effect.zipRight(Effect.either(limiter.consume("shared", 1 + (i % 3))))
              ),
            { concurrency: "unbounded" }
          ).pipe(Effect.withMaxOpsBeforeYield(16))
          const admittedCost = results.reduce(
            (sum, r, i) => Either.isRight(r) ? sum + 1 + (i % 3) : sum,
            0
          )
          // exactly the limit: never more (no over-admission), and what the counters say is left
          // agrees with what was admitted (later cost-1 requests used up any remainder)
          expect(admittedCost).toBe(50)
          expect((yield* limiter.status("shared")).remaining).toBe(0)
          const stats = yield* limiter.stats()
          expect(stats.allowed + stats.denied).toBe(200)
        }))

      it.effect("take waits exactly until the request fits, then consumes it", () =>
        Effect.scoped(Effect.gen(function*() {
          const limiter = yield* make()
          yield* admitted(limiter, "a", LIMIT)
          const wait = exhausted[algorithm].retryAfter
          const fiber = yield* Effect.fork(limiter.take("a"))
          yield* TestClock.adjust(wait - 1)
          expect(yield* Fiber.poll(fiber)).toEqual(Option.none())
          yield* TestClock.adjust(1)
          const result = yield* Fiber.join(fiber)
          expect(millis(result.delay)).toBe(wait)
          // the take consumed one unit of what became available
          const left = algorithm === "fixed-window" ? LIMIT - 1 : 0
          expect((yield* limiter.status("a")).remaining).toBe(left)
          const stats = yield* limiter.stats()
          expect([stats.allowed, stats.delayed, stats.denied]).toEqual([LIMIT + 1, 1, 0])
          // on a free key it does not wait
          expect(millis((yield* limiter.take("b", LIMIT)).delay)).toBe(0)
        })))

      it.effect("an interrupted take consumes nothing", () =>
        Effect.scoped(Effect.gen(function*() {
          const limiter = yield* make()
          yield* limiter.consume("a", LIMIT)
          const fiber = yield* Effect.fork(limiter.take("a", 2))
          yield* TestClock.adjust(1)
          yield* Fiber.interrupt(fiber)
          yield* TestClock.adjust(exhausted[algorithm].resetAfter)
          expect((yield* limiter.status("a")).remaining).toBe(LIMIT)
        })))

      it.scoped("cost must be an integer in 1..limit, for consume and take, checked at call time", () =>
        Effect.gen(function*() {
          const limiter = yield* make()
          for (const cost of [0, -1, 1.5, Number.NaN, LIMIT + 1, Number.POSITIVE_INFINITY]) {
            const c = yield* Effect.flip(limiter.consume("a", cost))
            expect(c).toBeInstanceOf(ValidationError)
            expect((c as ValidationError).field).toBe("cost")
            const t = yield* Effect.flip(limiter.take("a", cost))
            expect(t.field).toBe("cost")
          }
          expect((yield* limiter.status("a")).remaining).toBe(LIMIT)
          expect((yield* limiter.stats()).liveKeys).toBe(0)
        }))

      it.scoped("the number of keys is bounded: the least recently used active key is evicted and counted", () =>
        Effect.gen(function*() {
          const limiter = yield* make({ maxKeys: 3 })
          yield* admitted(limiter, "a", LIMIT) // a: exhausted and used again and again
          yield* limiter.consume("b")
          yield* limiter.consume("c")
          yield* limiter.consume("d") // no room: b (active, not used since) goes
          const stats = yield* limiter.stats()
          expect([stats.liveKeys, stats.evictedKeys, stats.expiredKeys]).toEqual([3, 1, 0])
          // b lost its state (evicted), a kept it
          expect((yield* limiter.status("b")).remaining).toBe(LIMIT)
          expect(yield* admitted(limiter, "a", 1)).toBe(0)
          // many new keys: never more than maxKeys held
          for (let i = 0; i < 50; i++) yield* limiter.consume(`k${i}`)
          const after = yield* limiter.stats()
          expect(after.liveKeys).toBe(3)
          expect(after.evictedKeys + after.expiredKeys).toBe(51)
        }))

      it.scoped("when room is needed an idle key is dropped first, which is not an eviction", () =>
        Effect.gen(function*() {
          const limiter = yield* make({ maxKeys: 2 })
          yield* limiter.consume("a")
          yield* TestClock.adjust(2 * WINDOW) // a is idle now (indistinguishable from new)
          yield* limiter.consume("b")
          yield* limiter.consume("c")
          const stats = yield* limiter.stats()
          expect([stats.liveKeys, stats.evictedKeys, stats.expiredKeys]).toEqual([2, 0, 1])
          expect((yield* limiter.status("b")).remaining).toBe(LIMIT - 1)
        }))

      it.scoped("one cleanup fiber drops idle keys every cleanupInterval and keeps active ones", () =>
        Effect.gen(function*() {
          const limiter = yield* make({ cleanupInterval: "65 seconds" })
          for (const key of ["a", "b", "c", "d", "e"]) yield* limiter.consume(key)
          yield* TestClock.adjust(62_000)
          yield* limiter.consume("f", LIMIT) // f is still recovering at 65 s
          yield* TestClock.adjust(2_999)
          const before = yield* limiter.status("a")
          expect((yield* limiter.stats()).liveKeys).toBe(6)
          yield* TestClock.adjust(1) // t = 65 s: the sweep runs
          const stats = yield* limiter.stats()
          expect([stats.liveKeys, stats.expiredKeys]).toEqual([1, 5])
          // dropping an idle key changes nothing that can be observed
          expect(yield* limiter.status("a")).toEqual(before)
          expect((yield* limiter.status("f")).remaining).toBeLessThan(LIMIT)
          // and it keeps running, on the schedule
          yield* TestClock.adjust(65_000)
          expect((yield* limiter.stats()).liveKeys).toBe(0)
        }))
    })
  }
}

describe("refill and rollover", () => {
  it.scoped("token bucket refills in proportion to elapsed time, capped at the limit", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ algorithm: "token-bucket", limit: LIMIT, window: WINDOW })
      expect(yield* admitted(limiter, "a", LIMIT + 1)).toBe(LIMIT)
      yield* TestClock.adjust(1_999)
      expect(millis((yield* denial(limiter.consume("a"))).retryAfter)).toBe(1)
      yield* TestClock.adjust(1)
      expect(yield* admitted(limiter, "a", 2)).toBe(1)
      yield* TestClock.adjust(4_000) // two more tokens
      expect(yield* admitted(limiter, "a", 3)).toBe(2)
      yield* TestClock.adjust(10 * WINDOW) // refill stops at the limit
      expect(yield* admitted(limiter, "a", 2 * LIMIT)).toBe(LIMIT)
    }))

  it.scoped("fixed window resets exactly at the boundary", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ algorithm: "fixed-window", limit: LIMIT, window: WINDOW })
      yield* TestClock.adjust(4_000)
      expect(yield* admitted(limiter, "a", LIMIT + 1)).toBe(LIMIT)
      yield* TestClock.adjust(5_999) // t = 9 999
      expect(millis((yield* denial(limiter.consume("a"))).retryAfter)).toBe(1)
      yield* TestClock.adjust(1) // t = 10 000
      expect(yield* admitted(limiter, "a", LIMIT + 1)).toBe(LIMIT)
    }))

  it.scoped("sliding window releases capacity progressively as the previous window fades", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ algorithm: "sliding-window", limit: LIMIT, window: WINDOW })
      expect(yield* admitted(limiter, "a", LIMIT)).toBe(LIMIT)
      yield* TestClock.adjust(WINDOW) // boundary: the previous window still weighs 100 %
      expect(millis((yield* denial(limiter.consume("a"))).retryAfter)).toBe(2_000)
      yield* TestClock.adjust(1_999)
      expect(yield* admitted(limiter, "a", 1)).toBe(0)
      yield* TestClock.adjust(1) // 5 × 0.8 + 1 = 5
      expect(yield* admitted(limiter, "a", 2)).toBe(1)
      // 5 × 0.6 + 2 = 5 at 14 s
      expect(millis((yield* denial(limiter.consume("a"))).retryAfter)).toBe(2_000)
      yield* TestClock.adjust(2 * WINDOW) // both windows gone
      expect(yield* admitted(limiter, "a", LIMIT + 1)).toBe(LIMIT)
    }))

  it.scoped("a boundary burst: fixed window admits 2 × limit within 1 ms, sliding window and token bucket do not", () =>
    Effect.gen(function*() {
      const burst = (algorithm: Algorithm) =>
        Effect.gen(function*() {
          const limiter = yield* RateLimiter.make({ algorithm, limit: LIMIT, window: WINDOW })
          yield* TestClock.adjust(WINDOW - 1) // t = 9 999, end of the first window
          const first = yield* admitted(limiter, "a", LIMIT)
          yield* TestClock.adjust(1) // t = 10 000, start of the next one
          const second = yield* admitted(limiter, "a", LIMIT)
          yield* TestClock.setTime(0)
          return first + second
        })
      expect(yield* burst("fixed-window")).toBe(2 * LIMIT)
      expect(yield* burst("sliding-window")).toBe(LIMIT)
      expect(yield* burst("token-bucket")).toBe(LIMIT)
    }))

  it.scoped("time going backwards (a wall-clock adjustment) does not give capacity back", () =>
    Effect.gen(function*() {
      for (const algorithm of RateLimiter.algorithms) {
        yield* TestClock.setTime(25_000)
        const limiter = yield* RateLimiter.make({ algorithm, limit: LIMIT, window: WINDOW })
        yield* admitted(limiter, "a", LIMIT)
        yield* TestClock.setTime(9_000)
        expect(yield* admitted(limiter, "a", 1)).toBe(0)
      }
    }))
})

describe("options", () => {
  it.scoped("defaults are the original's: 1000 per 60 s; sliding window; 100 000 keys", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make()
      expect(limiter.config).toMatchObject({
        name: "rate_limiter",
        algorithm: "sliding-window",
        limit: 1000,
        windowMillis: 60_000,
        maxKeys: 100_000
      })
      expect(Duration.toMillis(limiter.config.cleanupInterval)).toBe(300_000)
      expect(yield* admitted(limiter, "a", 1001)).toBe(1000)
    }))

  const invalid: ReadonlyArray<readonly [string, RateLimiter.Options]> = [
    ["limit", { limit: -1 }],
    ["limit", { limit: 0 }],
    ["limit", { limit: Number.NaN }],
    ["limit", { limit: 2.5 }],
    ["limit", { limit: Number.POSITIVE_INFINITY }],
    ["limit", { limit: 1e12, window: "1 day" }],
    ["window", { window: 0 }],
    ["window", { window: Number.NaN }],
    ["window", { window: -1000 }],
    ["window", { window: Duration.infinity }],
    ["window", { window: "1.5 millis" }],
    ["window", { window: "soon" as unknown as Duration.DurationInput }],
    ["maxKeys", { maxKeys: 0 }],
    ["maxKeys", { maxKeys: -5 }],
    ["maxKeys", { maxKeys: 1.5 }],
    ["maxKeys", { maxKeys: Number.NaN }],
    ["algorithm", { algorithm: "leaky-bucket" as unknown as Algorithm }],
    ["cleanupInterval", { cleanupInterval: 0 }],
    ["cleanupInterval", { cleanupInterval: Number.NaN }],
    ["name", { name: "" }]
  ]
  for (const [field, options] of invalid) {
    it.scoped(`rejects ${field} = ${String(Object.values(options)[0])} at construction`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(RateLimiter.make(options))
        expect(error).toBeInstanceOf(ValidationError)
        expect(error.field).toBe(field)
        expect(Either.isLeft(RateLimiter.validate(options))).toBe(true)
      }))
  }
})

describe("cleanup of a large table", () => {
  it.scoped("sweeps in slices: every idle key goes, keys used meanwhile stay", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ algorithm: "fixed-window", limit: 2, window: WINDOW, maxKeys: 40_000 })
      for (let i = 0; i < 25_000; i++) yield* limiter.consume(`old${i}`)
      yield* TestClock.adjust(WINDOW) // all 25 000 are idle now
      for (let i = 0; i < 10; i++) yield* limiter.consume(`kept${i}`)
      // keys arriving while the sweep is between slices
      const sweeping = yield* Effect.fork(limiter.cleanup())
      for (let i = 0; i < 100; i++) yield* Effect.zipRight(Effect.yieldNow(), limiter.consume(`new${i}`))
      expect(yield* Fiber.join(sweeping)).toBe(25_000)
      const stats = yield* limiter.stats()
      expect([stats.liveKeys, stats.expiredKeys, stats.evictedKeys]).toEqual([110, 25_000, 0])
      expect((yield* limiter.status("kept3")).remaining).toBe(1)
    }))
})

describe("store", () => {
  it.scoped("a failing store surfaces its error: no fail-open", () =>
    Effect.gen(function*() {
      const down = new ServiceUnavailableError({ service: "redis" })
      const failing: RateLimiter.StoreFactory<ServiceUnavailableError> = () =>
        Effect.succeed({
          consume: () => Effect.fail(down),
          peek: () => Effect.fail(down),
          reset: () => Effect.fail(down),
          sweep: () => Effect.fail(down),
          keys: Effect.fail(down)
        })
      const limiter = yield* RateLimiter.make({ store: failing })
      const error = yield* Effect.flip(limiter.consume("a"))
      expect(error).toBe(down)
      expect(yield* Effect.flip(limiter.take("a"))).toBe(down)
      expect(yield* Effect.flip(limiter.status("a"))).toBe(down)
    }))
})

describe("metrics", () => {
  /** The count of the counter `name` whose tags are exactly `tags`, read from the registry. */
  const counterValue = (name: string, tags: Readonly<Record<string, string>>) =>
    Effect.map(Metric.snapshot, (pairs) => {
      const wanted = Object.entries(tags).map(([k, v]) => `${k}=${v}`).sort().join(",")
      let count = 0
      for (const pair of pairs) {
        const key = pair.metricKey
        const state = pair.metricState
        const got = key.tags.map((t) => `${t.key}=${t.value}`).sort().join(",")
        if (key.name === name && got === wanted && MetricState.isCounterState(state)) count += Number(state.count)
      }
      return count
    })
  const value = (name: string, limiter: string) => counterValue(name, { limiter })

  it.scoped("counts allowed, denied and evicted per limiter name", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ name: "metrics-test", limit: 2, maxKeys: 1 })
      const other = yield* RateLimiter.make({ name: "metrics-other", limit: 2 })
      yield* admitted(limiter, "a", 3)
      yield* limiter.consume("b") // evicts a
      yield* admitted(other, "a", 1)
      expect(yield* value("foundation_rate_limiter_allowed_total", "metrics-test")).toBe(3)
      expect(yield* value("foundation_rate_limiter_denied_total", "metrics-test")).toBe(1)
      expect(yield* value("foundation_rate_limiter_evicted_total", "metrics-test")).toBe(1)
      expect(yield* value("foundation_rate_limiter_allowed_total", "metrics-other")).toBe(1)
    }))

  it.scoped("honours the fiber's metric labels", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ name: "metrics-labelled" })
      yield* limiter.consume("a").pipe(Effect.tagMetrics("tenant", "t1"))
      expect(yield* counterValue("foundation_rate_limiter_allowed_total", { limiter: "metrics-labelled", tenant: "t1" }))
        .toBe(1)
      expect(yield* value("foundation_rate_limiter_allowed_total", "metrics-labelled")).toBe(0)
    }))
})

describe("RateLimiters service", () => {
  const run = <A, E>(effect: Effect.Effect<A, E, RateLimiter.RateLimiters>) =>
    Effect.provide(effect, RateLimiter.layer)

  it.effect("configure, get, consume by id; the limiter's name is its id", () =>
    run(Effect.gen(function*() {
      const limiters = yield* RateLimiter.RateLimiters
      const made = yield* limiters.configure("api", { limit: 2, window: "1 minute" })
      const got = yield* limiters.get("api")
      expect(got).toBe(made)
      expect(got.config).toMatchObject({ name: "api", limit: 2, windowMillis: 60_000 })
      yield* limiters.consume("api", "u1")
      yield* limiters.consume("api", "u1")
      const error = yield* Effect.flip(limiters.consume("api", "u1"))
      expect(error).toBeInstanceOf(RateLimitedError)
      expect(error).toMatchObject({ limiter: "api", key: "u1" })
      expect(millis((yield* limiters.take("api", "u2", 2)).delay)).toBe(0)
    })))

  it.effect("a missing id is a NotFoundError for get, consume, take and remove", () =>
    run(Effect.gen(function*() {
      const limiters = yield* RateLimiter.RateLimiters
      for (
        const op of [
          limiters.get("nope"),
          limiters.consume("nope", "k"),
          limiters.take("nope", "k"),
          limiters.remove("nope")
        ]
      ) {
        const error = yield* Effect.flip(op as Effect.Effect<unknown, NotFoundError | RateLimitedError>)
        expect(error).toBeInstanceOf(NotFoundError)
        expect(error).toMatchObject({ resource: "RateLimiter", key: "nope" })
      }
    })))

  it.effect("remove makes the id unknown", () =>
    run(Effect.gen(function*() {
      const limiters = yield* RateLimiter.RateLimiters
      yield* limiters.configure("api")
      yield* limiters.remove("api")
      expect(yield* Effect.flip(limiters.get("api"))).toBeInstanceOf(NotFoundError)
      expect((yield* limiters.status()).limiters).toEqual([])
    })))

  it.effect("two limiters are independent, even for the same key", () =>
    run(Effect.gen(function*() {
      const limiters = yield* RateLimiter.RateLimiters
      yield* limiters.configure("one", { limit: 1 })
      yield* limiters.configure("two", { limit: 3 })
      const count = (id: string) =>
        Effect.map(
          Effect.forEach(Array.from({ length: 5 }), () => Effect.either(limiters.consume(id, "same"))),
          (rs) => rs.filter(Either.isRight).length
        )
      expect(yield* count("one")).toBe(1)
      expect(yield* count("two")).toBe(3)
      const status = yield* limiters.status()
      expect(status.limiters.map((l) => [l.id, l.stats.allowed, l.stats.denied])).toEqual([
        ["one", 1, 4],
        ["two", 3, 2]
      ])
      expect([status.totalAllowed, status.totalDenied]).toEqual([4, 6])
    })))

  it.effect("bad options fail with ValidationError and leave an existing limiter in place", () =>
    run(Effect.gen(function*() {
      const limiters = yield* RateLimiter.RateLimiters
      const original = yield* limiters.configure("api", { limit: 2 })
      const error = yield* Effect.flip(limiters.configure("api", { limit: 0 }))
      expect(error.field).toBe("limit")
      expect(yield* limiters.get("api")).toBe(original)
      expect((yield* Effect.flip(limiters.configure("", {}))).field).toBe("id")
    })))

  it.effect("configure replaces a limiter (fresh state) and stops the old one's cleanup fiber", () =>
    run(Effect.gen(function*() {
      const limiters = yield* RateLimiter.RateLimiters
      const options = { limit: 1, window: "1 second", cleanupInterval: "1 second" } as const
      const old = yield* limiters.configure("api", options)
      yield* limiters.consume("api", "k")
      yield* TestClock.adjust("10 seconds")
      expect((yield* old.stats()).liveKeys).toBe(0) // its fiber swept k
      yield* old.consume("k") // a key the old limiter's stopped fiber will never sweep
      const replacement = yield* limiters.configure("api", options)
      expect(replacement).not.toBe(old)
      yield* limiters.consume("api", "k") // fresh state: admitted although old's k is used up
      yield* TestClock.adjust("1 minute")
      expect((yield* old.stats()).liveKeys).toBe(1)
      expect((yield* replacement.stats()).liveKeys).toBe(0)
    })))

  it.effect("layer(limiters) configures limiters when built and rejects bad ones", () =>
    Effect.gen(function*() {
      const ids = yield* Effect.provide(
        Effect.map(RateLimiter.RateLimiters, (l) => l.status()).pipe(
          Effect.flatten,
          Effect.map((s) => s.limiters.map((l) => l.id))
        ),
        RateLimiter.layerWith({ login: { limit: 5, window: "1 minute" }, api: {} })
      )
      expect(ids).toEqual(["login", "api"])
      const error = yield* Effect.flip(
        Effect.provide(RateLimiter.RateLimiters, RateLimiter.layerWith({ bad: { maxKeys: 0 } }))
      )
      expect(error).toBeInstanceOf(ValidationError)
      expect(error.field).toBe("maxKeys")
    }))

  it.effect("each service instance has its own limiters (no global table)", () =>
    Effect.gen(function*() {
      const first = yield* Layer.build(RateLimiter.layer)
      const second = yield* Layer.build(RateLimiter.layer)
      const a = Effect.provide(RateLimiter.RateLimiters, first)
      const b = Effect.provide(RateLimiter.RateLimiters, second)
      yield* Effect.flatMap(a, (l) => l.configure("api", { limit: 1 }))
      yield* Effect.flatMap(b, (l) => l.configure("api", { limit: 1 }))
      yield* Effect.flatMap(a, (l) => l.consume("api", "k"))
      yield* Effect.flatMap(b, (l) => l.consume("api", "k"))
      yield* Effect.flatMap(a, (l) => l.remove("api"))
      expect(yield* Effect.flip(Effect.flatMap(a, (l) => l.get("api")))).toBeInstanceOf(NotFoundError)
      yield* Effect.flatMap(b, (l) => l.get("api"))
    }).pipe(Effect.scoped))
})

/**
 * The resilience core side by side with bare calls, Effect built-ins, a naive composition of
 * them, cockatiel and opossum, all on the same promise work (an already-resolved promise), in
 * one process.
 */
import * as RateLimiterX from "@effect/experimental/RateLimiter"
import {
  bulkhead as cockatielBulkhead,
  circuitBreaker as cockatielBreaker,
  ConsecutiveBreaker,
  handleAll,
  retry as cockatielRetry,
  timeout as cockatielTimeout,
  TimeoutStrategy,
  wrap
} from "cockatiel"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Supervisor from "effect/Supervisor"
import Opossum from "opossum"
import * as Bulkhead from "../src/resilience/Bulkhead.js"
import * as CircuitBreaker from "../src/resilience/CircuitBreaker.js"
import * as Protect from "../src/resilience/Protect.js"
import * as RateLimiter from "../src/resilience/RateLimiter.js"
import * as Retry from "../src/resilience/Retry.js"
import * as Timeout from "../src/resilience/Timeout.js"
import { measureAsync, measureEffect, type Row } from "./harness.js"

const work = (): Promise<number> => Promise.resolve(1)

/** A ~15-line Ref-based consecutive-failure breaker: what one writes without a library. */
const refBreaker = (state: Ref.Ref<{ readonly failures: number; readonly openUntil: number }>) =>
<A, E>(self: Effect.Effect<A, E>): Effect.Effect<A, E | string> =>
  Effect.flatMap(Ref.get(state), (s): Effect.Effect<A, E | string> =>
    s.openUntil > Date.now()
      ? Effect.fail("open")
      : Effect.tapBoth(self, {
        onFailure: () =>
          Ref.update(state, (x) =>
            x.failures + 1 >= 5
              ? { failures: 0, openUntil: Date.now() + 30_000 }
              : { failures: x.failures + 1, openUntil: x.openUntil }),
        onSuccess: () => Ref.set(state, { failures: 0, openUntil: 0 })
      }))

export interface ResilienceReport {
  readonly rows: ReadonlyArray<Row>
  readonly limiter: ReadonlyArray<{ readonly name: string; readonly checksPerSecond: number }>
  readonly idleBreakers: {
    readonly count: number
    readonly bytesNeverCalled: number
    readonly bytesCalledOnce: number
    readonly bytesCalledOnceWithoutMetrics: number
    readonly fibers: number
  }
}

const gc = (): void => (globalThis as { gc?: () => void }).gc?.()

const heapAfterGc = (): number => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

/** Per-call overhead of each policy alone, the full stacks, and the peers. */
const overhead = Effect.gen(function*() {
  const rows: Array<Row> = []
  const fiber = (name: string, effect: Effect.Effect<unknown, unknown>, group = "resilience") =>
    Effect.map(measureEffect(group, name, effect), (row) => {
      rows.push(row)
      console.log(`${row.name.padEnd(58)} ${row.nsPerCall.toFixed(0).padStart(7)} ns`)
    })
  const awaited = (name: string, call: () => Promise<unknown>, baseline: "await" | "runPromise" = "await") =>
    Effect.promise(() => measureAsync("resilience", name, call, baseline)).pipe(Effect.map((row) => {
      rows.push(row)
      console.log(`${row.name.padEnd(58)} ${row.nsPerCall.toFixed(0).padStart(7)} ns`)
    }))

  const bare = Effect.promise(work)

  // Ours
  const breaker = yield* CircuitBreaker.make({ name: "bench", metrics: true })
  const timeWindowBreaker = yield* CircuitBreaker.make({ name: "bench-time", trip: CircuitBreaker.timeWindow() })
  const timeout = yield* Timeout.make({ duration: "1 second", name: "bench" })
  const bulkhead = yield* Bulkhead.make({ maxConcurrent: 100, maxQueued: 100, name: "bench" })
  const limiter = yield* RateLimiter.make({ name: "bench", limit: 1_000_000_000, window: "1 minute" })
  const policy = Retry.presets.exponentialBackoff
  const stack = yield* Protect.make({
    name: "bench",
    timeout: "1 second",
    bulkhead: { maxConcurrent: 100, maxQueued: 100 },
    rateLimit: { limiter, key: "bench" },
    breaker: {},
    retry: policy
  })

  // Effect built-ins and the naive composition
  const semaphore = yield* Effect.makeSemaphore(100)
  const refState = yield* Ref.make({ failures: 0, openUntil: 0 })
  const naive = bare.pipe(
    Effect.timeout("1 second"),
    semaphore.withPermits(1),
    refBreaker(refState),
    Effect.retry({ times: 3 })
  )

  // Peers
  const cbPolicy = cockatielBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) })
  const retryPolicy = cockatielRetry(handleAll, { maxAttempts: 3 })
  const timeoutPolicy = cockatielTimeout(1000, TimeoutStrategy.Cooperative)
  const bulkheadPolicy = cockatielBulkhead(100, 100)
  const cockatielStack = wrap(retryPolicy, cbPolicy, timeoutPolicy)
  const opossumNoTimeout = new Opossum(work, { timeout: false })
  const opossumDefault = new Opossum(work, {})

  console.log("-- per-call overhead (sequential, one caller)")
  yield* awaited("bare: await work()", work)
  yield* fiber("bare: in-fiber Effect.promise(work)", bare)
  yield* fiber("breaker (consecutive, closed)", breaker.protect(bare))
  yield* fiber("breaker (time window, closed)", timeWindowBreaker.protect(bare))
  yield* fiber("Timeout.promise (no fork)", timeout.promise(work))
  yield* fiber("Timeout.apply (effect, one fork)", timeout.apply(bare))
  yield* fiber("bulkhead", bulkhead.run(bare))
  yield* fiber("rate limiter consume + call", Effect.zipRight(limiter.consume("k"), bare))
  yield* fiber("Retry.retry (no failure)", Retry.retry(bare, policy))
  yield* fiber("Protect full stack, promise", stack.promise(work))
  yield* fiber("Protect full stack, effect (timeout forks once)", stack.run(bare))
  yield* fiber("Effect.timeout", Effect.timeout(bare, "1 second"))
  yield* fiber("Semaphore.withPermits(1)", semaphore.withPermits(1)(bare))
  yield* fiber("Effect.retry({ times: 3 }) (no failure)", Effect.retry(bare, { times: 3 }))
  yield* fiber("naive: Effect.timeout + semaphore + Ref breaker + Effect.retry", naive)
  yield* awaited("cockatiel circuitBreaker(ConsecutiveBreaker)", () => cbPolicy.execute(work))
  yield* awaited("cockatiel retry(maxAttempts 3)", () => retryPolicy.execute(work))
  yield* awaited("cockatiel timeout(1000, Cooperative)", () => timeoutPolicy.execute(work))
  yield* awaited("cockatiel bulkhead(100, 100)", () => bulkheadPolicy.execute(work))
  yield* awaited("cockatiel wrap(retry, circuitBreaker, timeout)", () => cockatielStack.execute(work))
  yield* awaited("opossum fire() (timeout: false)", () => opossumNoTimeout.fire())
  yield* awaited("opossum fire() (default 10 s timeout)", () => opossumDefault.fire())
  const runtime = yield* Effect.runtime<never>()
  const runPromise = <A, E>(effect: Effect.Effect<A, E>) => () => Effect.runPromiseExit(Effect.provide(effect, runtime.context))
  yield* awaited("runPromise boundary: bare", runPromise(bare), "runPromise")
  yield* awaited("runPromise boundary: Protect full stack, promise", runPromise(stack.promise(work)), "runPromise")
  return rows
})

/** `consume` throughput on a limiter holding 100,000 keys, one fiber, allowed path. */
const limiterThroughput = Effect.gen(function*() {
  const keys = Array.from({ length: 100_000 }, (_, i) => `user-${i}`)
  const results: Array<{ name: string; checksPerSecond: number }> = []
  const run = (name: string, consume: (key: string) => Effect.Effect<unknown, unknown>) =>
    Effect.gen(function*() {
      for (const key of keys) yield* Effect.ignore(consume(key)) // populate
      let best = 0
      for (let round = 0; round < 5; round++) {
        const start = performance.now()
        const n = 1_000_000
        for (let i = 0; i < n; i++) yield* consume(keys[i % 100_000]!)
        const perSecond = n / ((performance.now() - start) / 1000)
        best = Math.max(best, perSecond)
      }
      results.push({ name, checksPerSecond: best })
      console.log(`${name.padEnd(58)} ${(best / 1e6).toFixed(2).padStart(7)} M checks/s`)
    })
  console.log("-- rate limiter, 100,000 keys, one fiber")
  for (const algorithm of RateLimiter.algorithms) {
    const limiter = yield* RateLimiter.make({ limit: 1_000_000_000, window: "1 minute", algorithm, maxKeys: 200_000 })
    yield* run(`effect-foundation RateLimiter (${algorithm})`, (key) => limiter.consume(key))
  }
  const experimental = yield* RateLimiterX.make.pipe(Effect.provide(RateLimiterX.layerStoreMemory))
  yield* run("@effect/experimental RateLimiter (memory store, fixed-window)", (key) =>
    experimental.consume({ key, limit: 1_000_000_000, window: "1 minute", algorithm: "fixed-window" }))
  return results
})

/** Memory and fibers of 100,000 idle breakers, with per-breaker metrics and without. */
const idleBreakers = Effect.gen(function*() {
  const count = 100_000
  const measure = (metrics: boolean) =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      // The names are the caller's data (often the keys it already holds): made before measuring.
      const names = Array.from({ length: count }, (_, i) => `idle-${metrics}-${i}`)
      const breakers: Array<CircuitBreaker.CircuitBreaker> = new Array(count)
      const before = heapAfterGc()
      yield* Effect.supervised(
        Effect.forEach(names, (name, i) =>
          Effect.map(CircuitBreaker.make({ name, metrics }), (b) => {
            breakers[i] = b
          }), { discard: true }),
        supervisor
      )
      const afterMake = heapAfterGc()
      yield* Effect.forEach(breakers, (b) => b.protect(Effect.void), { discard: true })
      const afterCall = heapAfterGc()
      const fibers = (yield* supervisor.value).length
      breakers.length = 0
      return { neverCalled: afterMake - before, calledOnce: afterCall - before, fibers }
    })
  const withMetrics = yield* measure(true)
  const withoutMetrics = yield* measure(false)
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`
  console.log("-- 100,000 idle breakers")
  console.log(
    `metrics on: never called ${mb(withMetrics.neverCalled)}, called once ${mb(withMetrics.calledOnce)}; ` +
      `metrics off: called once ${mb(withoutMetrics.calledOnce)}; fibers: ${withMetrics.fibers + withoutMetrics.fibers}`
  )
  return {
    count,
    bytesNeverCalled: withMetrics.neverCalled,
    bytesCalledOnce: withMetrics.calledOnce,
    bytesCalledOnceWithoutMetrics: withoutMetrics.calledOnce,
    fibers: withMetrics.fibers + withoutMetrics.fibers
  }
})

export const run: Effect.Effect<ResilienceReport> = Effect.scoped(Effect.gen(function*() {
  const rows = yield* overhead
  const limiter = yield* limiterThroughput
  const idle = yield* idleBreakers
  return { rows, limiter, idleBreakers: idle }
})).pipe(Effect.orDie)

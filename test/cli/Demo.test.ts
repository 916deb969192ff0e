import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Demo from "../../src/cli/Demo.js"

describe("foundation demo", () => {
  // Real time is the point of the demo (latencies, timeouts, the breaker's reset delay).
  it.live("calls the flaky service through Protect and reports what each policy did", () =>
    Effect.gen(function*() {
      const report = yield* Demo.run({ calls: 100, seed: 7 })
      const total = Object.values(report.outcomes).reduce((a, b) => a + b, 0)
      expect(total).toBe(100)
      expect(report.outcomes.ok).toBeGreaterThan(30)
      // the outage trips the breaker, which then rejects calls without running them
      expect(report.stateChanges.some((line) => line.endsWith("closed → open"))).toBe(true)
      expect(report.breaker.rejections).toBeGreaterThan(0)
      expect(report.outcomes.CircuitOpenError).toBe(report.breaker.rejections)
      // failures were retried
      expect(report.retries).toBeGreaterThan(0)
      expect(report.limiter.allowed).toBeGreaterThanOrEqual(total - (report.outcomes.RateLimitedError ?? 0))
      // the services: the cache saves calls, the pool caps concurrency, backpressure rises and falls
      const { cache, fanOut, levels } = report.services
      expect(cache.hits + cache.misses).toBe(60)
      expect(cache.computations).toBeLessThan(60)
      expect(fanOut).toMatchObject({ items: 24 })
      expect(fanOut.peak).toBeLessThanOrEqual(4)
      expect(fanOut.succeeded + fanOut.failed).toBe(24)
      expect(levels).toEqual(["normal → moderate", "moderate → severe", "severe → moderate", "moderate → normal"])
    }), 20_000)
})

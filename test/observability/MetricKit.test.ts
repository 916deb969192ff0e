import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as MetricKit from "../../src/observability/MetricKit.js"
import { counterValue } from "../support/metrics.js"

describe("MetricKit.counterFamily", () => {
  it.effect("gives one counter per tag set, made once, counting under its own tags", () =>
    Effect.gen(function*() {
      const family = MetricKit.counterFamily("test_metrickit_family_total", { description: "a test family" })
      const ok = family({ outcome: "ok", pool: "a" })
      expect(family({ outcome: "ok", pool: "a" })).toBe(ok)
      const failed = family({ outcome: "failed", pool: "a" })
      expect(failed).not.toBe(ok)
      MetricKit.bump(ok, 2)
      MetricKit.bump(family({ outcome: "ok", pool: "a" }))
      MetricKit.bump(failed)
      expect(yield* counterValue("test_metrickit_family_total", { outcome: "ok", pool: "a" })).toBe(3)
      expect(yield* counterValue("test_metrickit_family_total", { outcome: "failed", pool: "a" })).toBe(1)
      expect(yield* counterValue("test_metrickit_family_total", { outcome: "ok", pool: "b" })).toBe(0)
    }))
})

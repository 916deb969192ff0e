import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Option, TestClock } from "effect"
import * as LoadTestCommand from "../../src/cli/LoadTestCommand.js"

/** An output that keeps what is written. */
const capture = (isTTY: boolean) => {
  const written: Array<string> = []
  const output: LoadTestCommand.Output = { isTTY, write: (text) => Effect.sync(() => void written.push(text)) }
  return { output, text: () => written.join(""), writes: written }
}

/** Runs the program on the TestClock (the service sleeps, the policies wait on `Clock`). */
const runOnTestClock = (options: LoadTestCommand.LoadTestOptions, output: LoadTestCommand.Output) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(LoadTestCommand.program(options, output))
    yield* TestClock.adjust(Duration.sum(Duration.decode(options.duration ?? "5 seconds"), "1 second"))
    return yield* Fiber.join(fiber)
  })

describe("foundation loadtest", () => {
  it.effect("drives the flaky service through Protect and prints one progress line per report, then the table", () =>
    Effect.gen(function*() {
      const { output, text } = capture(false)
      const report = yield* runOnTestClock(
        { duration: "1 second", concurrency: 4, seed: 3, reportInterval: "250 millis" },
        output
      )
      // Every scenario ran; every request is a success or an error, by outcome.
      expect(Object.keys(report.scenarios)).toEqual(["lookup", "reserve", "bulk"])
      for (const scenario of Object.values(report.scenarios)) expect(scenario.totalRequests).toBeGreaterThan(0)
      expect(report.successes).toBeGreaterThan(0)
      expect(report.errors).toBeGreaterThan(0) // the outage trips the breaker
      expect(report.outcomes.CircuitOpenError).toBeGreaterThan(0)
      expect(Object.values(report.outcomes).reduce((a, b) => a + b, 0)).toBe(report.totalRequests)
      expect(report.latency.p50).toBeLessThanOrEqual(report.latency.p99)

      const out = text()
      expect(out).not.toContain("\r")
      const progressLines = out.split("\n").filter((line) => line.startsWith("["))
      expect(progressLines).toHaveLength(3) // at 250, 500 and 750 ms
      expect(progressLines[0]).toContain(" 25%  0.3 s / 1.0 s")
      expect(progressLines[0]).toContain("service: outage") // the outage is from 25% to 50% of the time
      const requests = String(report.totalRequests).padStart(8)
      expect(out).toContain(`Requests   ${requests}  in 1.0 s: ${report.throughput.toFixed(1)} req/s`)
      expect(out).toMatch(/^success\s+\d+\s+[\d.]+%$/m)
      expect(out).toMatch(/^CircuitOpenError\s+\d+\s+[\d.]+%$/m)
      expect(out).toMatch(/^Latency \(ms\)\s+count\s+p50\s+p90\s+p95\s+p99\s+max$/m)
      for (const row of ["all", "lookup", "reserve", "bulk"]) {
        expect(out).toMatch(new RegExp(`^${row}\\s+\\d+(\\s+\\d+\\.\\d){5}$`, "m"))
      }
    }))

  it.effect("on a terminal, redraws one progress line in place and ends it at 100%", () =>
    Effect.gen(function*() {
      const { output, writes } = capture(true)
      yield* runOnTestClock({ duration: "600 millis", concurrency: 2, seed: 1, reportInterval: "200 millis" }, output)
      const redraws = writes.filter((w) => w.startsWith("\r\x1b[2K"))
      expect(redraws).toHaveLength(3) // at 200 and 400 ms, then the final one
      expect(redraws.slice(0, 2).every((w) => !w.includes("\n"))).toBe(true)
      expect(redraws[2]).toContain("100%")
      expect(redraws[2]!.endsWith("\n")).toBe(true)
    }))

  it.effect("is the same run for the same seed", () =>
    Effect.gen(function*() {
      const options = { duration: "500 millis", concurrency: 3, seed: 9 } as const
      const a = yield* runOnTestClock(options, capture(false).output)
      const b = yield* runOnTestClock(options, capture(false).output)
      expect(b.outcomes).toEqual(a.outcomes)
      expect(b.latency).toEqual(a.latency)
    }))

  it.effect("rejects bad options with the load test's ValidationError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(LoadTestCommand.program({ concurrency: 0 }, capture(false).output))
      expect(error).toMatchObject({ _tag: "ValidationError", field: "concurrency" })
    }))

  it("parses --duration as seconds, with a unit, or as Duration text", () => {
    const millis = (text: string) => Option.map(LoadTestCommand.parseDuration(text), Duration.toMillis)
    expect(millis("5")).toEqual(Option.some(5000))
    expect(millis("2.5")).toEqual(Option.some(2500))
    expect(millis("500ms")).toEqual(Option.some(500))
    expect(millis("5s")).toEqual(Option.some(5000))
    expect(millis("1m")).toEqual(Option.some(60_000))
    expect(millis("750 millis")).toEqual(Option.some(750))
    expect(millis("soon")).toEqual(Option.none())
  })
})

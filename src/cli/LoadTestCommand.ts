/**
 * The `foundation loadtest` command: a load test of the demo's flaky "inventory" service called
 * through a Protect stack, with a live progress bar and a report table at the end.
 *
 * Three scenarios share the load: `lookup` (70%: one call), `reserve` (20%: two calls in a row)
 * and `bulk` (10%: three calls at once). The service's moods follow the run's clock: an outage
 * from 25% to 50% of the time, a slow spell from 65% to 80%. The seed drives the scenario
 * choice and the service's failures and latencies; real time is the point, so the command runs
 * on the live clock (the program runs on any `Clock`, `TestClock` included).
 *
 * Output: on a terminal, one progress line redrawn in place (`\r`); otherwise one line per
 * report. Then the report: throughput, successes and errors by outcome, latency percentiles.
 */
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as CliValidationError from "@effect/cli/ValidationError"
import * as Terminal from "@effect/platform/Terminal"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import type { ValidationError } from "../errors/FoundationError.js"
import * as LoadTest from "../observability/LoadTest.js"
import { flakyService, inventoryStack, phaseOf } from "./Demo.js"

/** Where the command writes. */
export interface Output {
  /** A terminal: the progress line is redrawn in place. */
  readonly isTTY: boolean
  /** Writes text as is (no newline added). */
  readonly write: (text: string) => Effect.Effect<void>
}

/** Options of the load test program. */
export interface LoadTestOptions {
  /** Measured period [5 seconds]. */
  readonly duration?: Duration.DurationInput
  /** Workers [8]. */
  readonly concurrency?: number
  /** Seed of the scenario choice and the service's failures and latencies [42]. */
  readonly seed?: number
  /** Progress cadence [200 ms on a terminal, 1 s otherwise]. */
  readonly reportInterval?: Duration.DurationInput
}

/** The service's moods are spread over this many "calls" of the demo's flaky service. */
const moodSteps = 1000

/** A worker's pause between two executions, so that fail-fast rejections do not spin. */
const thinkTime = Duration.millis(25)

const scenarioText = "lookup 70% (1 call) · reserve 20% (2 calls in a row) · bulk 10% (3 calls at once)"

const stackText = "retry (3 attempts) ▸ rate limit (30 per 100 ms) ▸ bulkhead (6 + 4 queued) ▸ " +
  "breaker (5 bad calls in a row, 400 ms open) ▸ timeout (60 ms)"

/**
 * Runs the load test, writing progress and the report to `output`; returns the report.
 * Fails with `ValidationError` for bad options (duration ≤ 0, concurrency < 1, ...).
 */
export const program = (
  options: LoadTestOptions,
  output: Output
): Effect.Effect<LoadTest.Report, ValidationError | LoadTest.ScenarioSetupError> =>
  Effect.scoped(Effect.gen(function*() {
    const duration = options.duration ?? Duration.seconds(5)
    const concurrency = options.concurrency ?? 8
    const seed = options.seed ?? 42
    const { stack } = yield* inventoryStack({ name: "loadtest", limitPer100Millis: 30, maxConcurrent: 6 })

    // The service's mood follows the run's clock (the measured period; no warmup here).
    const startedAt = yield* Clock.currentTimeMillis
    const durationMillis = Duration.toMillis(Duration.decode(duration))
    const stepAt = Effect.map(
      Clock.currentTimeMillis,
      (now) => Math.min(moodSteps - 1, Math.max(0, Math.floor(((now - startedAt) / durationMillis) * moodSteps)))
    )
    const service = flakyService(moodSteps)
    const call = Effect.flatMap(stepAt, (step) => stack.run(service(step)))
    const scenarios: ReadonlyArray<LoadTest.Scenario> = [
      { name: "lookup", weight: 70, run: () => call },
      { name: "reserve", weight: 20, run: () => Effect.zipRight(call, call) },
      { name: "bulk", weight: 10, run: () => Effect.all([call, call, call], { concurrency: "unbounded" }) }
    ]

    yield* output.write(
      `Load test of the flaky "inventory" service through Protect: ${formatDuration(durationMillis)}, ` +
        `${concurrency} workers, seed ${seed}\n  ${scenarioText}\n  ${stackText}\n` +
        "  The service has an outage from 25% to 50% of the time and a slow spell from 65% to 80%.\n\n"
    )
    const report = yield* LoadTest.run(scenarios, {
      name: "foundation_loadtest",
      duration,
      concurrency,
      thinkTime,
      reportInterval: options.reportInterval ?? (output.isTTY ? "200 millis" : "1 second"),
      onProgress: (progress) =>
        Effect.flatMap(stepAt, (step) =>
          output.write(
            output.isTTY
              ? `\r\x1b[2K${renderProgress(progress, phaseOf(step, moodSteps))}`
              : `${renderProgress(progress, phaseOf(step, moodSteps))}\n`
          ))
    }).pipe(Effect.withRandom(Random.make(seed)))
    if (output.isTTY) {
      yield* output.write(`\r\x1b[2K${renderProgress(finalProgress(report), "done")}\n`)
    }
    yield* output.write(`\n${formatReport(report).join("\n")}\n`)
    return report
  }))

const bar = (fraction: number, width: number): string => {
  const full = Math.round(Math.min(1, Math.max(0, fraction)) * width)
  return `${"█".repeat(full)}${"░".repeat(width - full)}`
}

const formatDuration = (millis: number): string => `${(millis / 1000).toFixed(1)} s`

/** One progress line (no newline): bar, percentage, time, counts, current throughput. */
export const renderProgress = (progress: LoadTest.Progress, mood: string): string => {
  const fraction = progress.plannedMillis === 0 ? 1 : progress.elapsedMillis / progress.plannedMillis
  return `[${bar(fraction, 24)}] ${String(Math.round(fraction * 100)).padStart(3)}%  ` +
    `${formatDuration(progress.elapsedMillis)} / ${formatDuration(progress.plannedMillis)}  ` +
    `${String(progress.completed).padStart(6)} req  ${String(progress.errors).padStart(5)} err  ` +
    `${progress.throughput.toFixed(0).padStart(5)} req/s  service: ${mood}`
}

const finalProgress = (report: LoadTest.Report): LoadTest.Progress => ({
  testId: report.testId,
  name: report.name,
  phase: "cooldown",
  elapsedMillis: report.durationMillis,
  plannedMillis: report.durationMillis,
  activeWorkers: 0,
  inFlight: 0,
  completed: report.totalRequests,
  successes: report.successes,
  errors: report.errors,
  throughput: report.throughput
})

const percent = (part: number, whole: number): string => whole === 0 ? "-" : `${((part / whole) * 100).toFixed(1)}%`

const ms = (millis: number): string => millis.toFixed(1).padStart(8)

/** The report as lines of a table. */
export const formatReport = (report: LoadTest.Report): ReadonlyArray<string> => {
  const lines: Array<string> = []
  const total = report.totalRequests
  lines.push(
    `Requests   ${String(total).padStart(8)}  in ${formatDuration(report.durationMillis)}: ` +
      `${report.throughput.toFixed(1)} req/s`,
    `Successes  ${String(report.successes).padStart(8)}  ${percent(report.successes, total)}`,
    `Errors     ${String(report.errors).padStart(8)}  ${percent(report.errors, total)}`,
    "",
    `${"Outcome".padEnd(28)}${"Count".padStart(8)}${"Share".padStart(9)}`
  )
  const outcomes = Object.entries(report.outcomes).sort(([a, x], [b, y]) =>
    a === "success" ? -1 : b === "success" ? 1 : y - x || a.localeCompare(b)
  )
  for (const [outcome, count] of outcomes) {
    lines.push(`${outcome.padEnd(28)}${String(count).padStart(8)}${percent(count, total).padStart(9)}`)
  }
  lines.push(
    "",
    `${"Latency (ms)".padEnd(14)}${"count".padStart(8)}${"p50".padStart(8)}${"p90".padStart(8)}` +
      `${"p95".padStart(8)}${"p99".padStart(8)}${"max".padStart(8)}`
  )
  const row = (label: string, l: LoadTest.LatencySummary) =>
    `${label.padEnd(14)}${String(l.count).padStart(8)}${ms(l.p50)}${ms(l.p90)}${ms(l.p95)}${ms(l.p99)}${ms(l.max)}`
  lines.push(row("all", report.latency))
  for (const scenario of Object.values(report.scenarios)) lines.push(row(scenario.name, scenario.latency))
  if (report.firstErrors.length > 0) {
    const first = report.firstErrors[0]!
    lines.push("", `First error (+${first.time - report.start} ms, ${first.scenario}): ${first.message}`)
  }
  return lines
}

/**
 * A duration from the command line: a number of seconds ("5", "2.5"), a number with a unit
 * ("500ms", "5s", "1m"), or any `Duration` text ("500 millis", "5 seconds").
 */
export const parseDuration = (text: string): Option.Option<Duration.Duration> => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(text)
  if (match !== null) {
    const value = Number(match[1])
    const unit = match[2] ?? "s"
    return Option.some(
      unit === "ms" ? Duration.millis(value) : unit === "m" ? Duration.minutes(value) : Duration.seconds(value)
    )
  }
  return Duration.decodeUnknown(text)
}

/** The terminal as an `Output` (a write that fails is dropped: there is nowhere to report it). */
export const terminalOutput: Effect.Effect<Output, never, Terminal.Terminal> = Effect.gen(function*() {
  const terminal = yield* Terminal.Terminal
  const isTTY = yield* terminal.isTTY
  return { isTTY, write: (text: string) => Effect.ignore(terminal.display(text)) }
})

/** `foundation loadtest [--duration 5s] [--concurrency 8] [--seed 42]` */
export const command = Command.make(
  "loadtest",
  {
    duration: Options.text("duration").pipe(
      Options.withDefault("5s"),
      Options.mapEffect((text) =>
        Option.match(parseDuration(text), {
          onNone: () =>
            Effect.fail(CliValidationError.invalidValue(HelpDoc.p(`Invalid duration "${text}" (try 5s, 500ms, 1m)`))),
          onSome: Effect.succeed
        })
      ),
      Options.withDescription("Measured period: seconds (5), or with a unit (500ms, 5s, 1m)")
    ),
    concurrency: Options.integer("concurrency").pipe(Options.withDefault(8), Options.withDescription("Workers")),
    seed: Options.integer("seed").pipe(
      Options.withDefault(42),
      Options.withDescription("Seed of the scenario choice and the service's failures and latencies")
    )
  },
  (options) => Effect.flatMap(terminalOutput, (output) => Effect.asVoid(program(options, output)))
).pipe(Command.withDescription("Load-test the demo's flaky service through Protect: live progress, then a report"))

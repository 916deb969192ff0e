/**
 * Load testing: drives weighted scenarios (effects given as input) from `concurrency` worker
 * fibers for a measured period, and reports throughput, outcomes and latency percentiles.
 *
 * Timeline of a run (all on `Clock`, so `TestClock` drives it in tests):
 *
 * ```
 * t0 ── warmup ──► windowStart ── duration (measured) ──► windowEnd ── cooldown ──► end
 *  workers start evenly over `rampUp` from t0
 * ```
 *
 * - **warmup**: load runs (workers start at t0) but nothing is recorded.
 * - **measured window**: an execution is recorded when it *completes* in
 *   [windowStart, windowEnd); its latency is measured from its own start (possibly in warmup).
 * - **cooldown**: no new execution starts after windowEnd; executions in flight may finish but
 *   are not recorded; at the end of the cooldown whatever still runs is interrupted (counted in
 *   `notRecorded.interrupted`). The run always lasts warmup + duration + cooldown.
 * - **rampUp**: worker i (0-based) of n starts at t0 + i·rampUp/n (the original ignored the
 *   value). Workers due after windowEnd are never started.
 * - **thinkTime**: a pause of each worker between two executions, not measured (lets a test
 *   against fail-fast dependencies offer a bounded load). Without it, workers still let the
 *   event loop turn about every 20 ms (see `sliceMillis`), so that instant executions cannot
 *   starve the run's own timers.
 *
 * Semantics:
 * - Each execution picks its scenario with the fiber's `Random` (an integer in [0, total weight)
 *   against cumulative weights: exact, no float gaps; reproducible under a seeded `Random`).
 * - Success = the effect succeeded. A typed failure is an error (outcome: the error's `_tag`,
 *   else `"failure"`; the original counted `{:error, _}` returns as success), a defect (a throw
 *   included) is an error with outcome `"defect"`, an execution past `scenarioTimeout` is
 *   interrupted and is an error with outcome `"timeout"`, an execution that interrupts itself
 *   is an error with outcome `"interrupted"`. A failing scenario never stops its worker.
 * - Workers and the progress reporter are fibers in the run's scope: when the run ends, fails or
 *   is interrupted, they are interrupted and awaited, then scenario teardowns run.
 * - Scenario `setup` runs once, in order, before any load, in the run's scope (resources it
 *   acquires with `acquireRelease` are released when the run ends, after the workers stopped);
 *   a failing setup fails the run with `ScenarioSetupError`. `teardown` runs once at the end
 *   (its failure is logged, not raised).
 *
 * Report: epoch-millisecond start/end of the measured window (from `Clock`), counts, error
 * rate, throughput = recorded requests / measured seconds, latency in milliseconds (min, mean,
 * max over every recorded execution; percentiles over the last `maxSamples` of each scenario,
 * and of the run as a whole, where percentile p is the sample at index round(p·(n−1)) of the
 * sorted retained samples), a per-scenario breakdown and the first `maxErrors` errors.
 * Milliseconds everywhere (the original labelled native units as µs).
 *
 * Progress: every `reportInterval` (before the end), a `Progress` is published on the
 * `EventBus` service if one is in the context (topic `foundation.load_test.progress`) and
 * handed to `onProgress`; `foundation.load_test.started` and `foundation.load_test.completed`
 * (with the report) are published too. Publishing is best-effort: failures are ignored.
 *
 * State: one plain mutable recorder, read and written only inside synchronous steps (atomic:
 * fibers interleave only between effects), so recording costs no lock.
 *
 * Metric: `foundation_load_test_requests_total`, tagged `load_test` (the name), `scenario` and
 * `outcome` (`success` | `error`), counting recorded executions.
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import type * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import { Tagged, type ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import { EventBus } from "./EventBus.js"
import * as MetricKit from "./MetricKit.js"

// ---------------------------------------------------------------------------------------------
// Scenarios and options
// ---------------------------------------------------------------------------------------------

/** What one execution of a scenario is told. */
export interface ScenarioContext {
  /** The run's id (16 hex digits, from `Random`). */
  readonly testId: string
  /** The scenario's name. */
  readonly scenario: string
  /** The worker running it, 0-based. */
  readonly workerId: number
  /** How many executions this worker started before this one. */
  readonly iteration: number
}

/** A scenario: an effect to drive, with its share of the executions. */
export interface Scenario<R = never> {
  /** Unique within a run. */
  readonly name: string
  /** A non-negative integer; the scenario runs for weight / total weight of the executions. */
  readonly weight: number
  /** One execution. Its success is a success; a failure, a defect or a timeout is an error. */
  readonly run: (context: ScenarioContext) => Effect.Effect<unknown, unknown, R>
  /** Runs once before any load, in the run's scope; a failure fails the run. */
  readonly setup?: Effect.Effect<unknown, unknown, R | Scope.Scope> | undefined
  /** Runs once when the run ends, after the workers stopped; a failure is logged. */
  readonly teardown?: Effect.Effect<unknown, unknown, R> | undefined
}

/** Options of a run. Durations are `Duration.DurationInput` (a number is milliseconds). */
export interface Options {
  /** Names the run in events and metrics ["load_test"]. */
  readonly name?: string | undefined
  /** The measured period (required, > 0). */
  readonly duration: Duration.DurationInput
  /** Worker fibers (an integer ≥ 1) [10]. */
  readonly concurrency?: number | undefined
  /** Period over which the workers are started evenly [0: all at once]. */
  readonly rampUp?: Duration.DurationInput | undefined
  /** Load before the measured period, not recorded [0]. */
  readonly warmup?: Duration.DurationInput | undefined
  /** Quiet period after the measured one: no new load, nothing recorded [0]. */
  readonly cooldown?: Duration.DurationInput | undefined
  /**
   * Time limit of one execution [30 seconds]. The limit runs the execution in a child fiber
   * (tens of µs per execution, counted in its latency); `Duration.infinity` for none.
   */
  readonly scenarioTimeout?: Duration.DurationInput | undefined
  /** Pause of a worker between two executions, not measured [0]. */
  readonly thinkTime?: Duration.DurationInput | undefined
  /** Cadence of progress reports [5 seconds]. */
  readonly reportInterval?: Duration.DurationInput | undefined
  /** Latency samples kept per scenario (and for the whole run) for percentiles [10,000]. */
  readonly maxSamples?: number | undefined
  /** Errors kept in `firstErrors` [100]. */
  readonly maxErrors?: number | undefined
  /** Called with each progress report (a failure or defect in it is logged). */
  readonly onProgress?: ((progress: Progress) => Effect.Effect<unknown>) | undefined
}

/** The defaults of the optional options. */
export const defaults = {
  name: "load_test",
  concurrency: 10,
  rampUp: Duration.zero,
  warmup: Duration.zero,
  cooldown: Duration.zero,
  scenarioTimeout: Duration.seconds(30),
  thinkTime: Duration.zero,
  reportInterval: Duration.seconds(5),
  maxSamples: 10_000,
  maxErrors: 100
} as const

/** The topics a run publishes on (when an `EventBus` is in the context). */
export const topics = {
  started: "foundation.load_test.started",
  progress: "foundation.load_test.progress",
  completed: "foundation.load_test.completed"
} as const

/** Distinct outcome labels kept per scenario; further ones are counted under `"other"`. */
const maxOutcomeLabels = 32

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

/** Latency of recorded executions, in milliseconds (all zero when there is none). */
export interface LatencySummary {
  /** Recorded executions. */
  readonly count: number
  /** Samples the percentiles were computed from (the last `maxSamples`). */
  readonly samples: number
  readonly min: number
  readonly mean: number
  readonly p50: number
  readonly p90: number
  readonly p95: number
  readonly p99: number
  readonly max: number
}

/** One scenario's figures over the measured period. */
export interface ScenarioReport {
  readonly name: string
  readonly weight: number
  readonly totalRequests: number
  readonly successes: number
  readonly errors: number
  /** errors / totalRequests (0 when there is no request). */
  readonly errorRate: number
  /** Recorded requests per second of the measured period. */
  readonly throughput: number
  /** Recorded executions by outcome: `"success"`, an error `_tag`, `"timeout"`, `"defect"`... */
  readonly outcomes: Readonly<Record<string, number>>
  readonly latency: LatencySummary
}

/** A recorded error. */
export interface ErrorEntry {
  readonly scenario: string
  readonly outcome: string
  readonly message: string
  /** When the execution ended, epoch milliseconds. */
  readonly time: number
}

/** What a run measured. */
export interface Report {
  readonly testId: string
  readonly name: string
  readonly concurrency: number
  /** Start of the measured period, epoch milliseconds (`Clock`). */
  readonly start: number
  /** End of the measured period, epoch milliseconds. */
  readonly end: number
  readonly durationMillis: number
  readonly totalRequests: number
  readonly successes: number
  readonly errors: number
  readonly errorRate: number
  /** Recorded requests per second of the measured period. */
  readonly throughput: number
  readonly outcomes: Readonly<Record<string, number>>
  readonly latency: LatencySummary
  /** By scenario name, in declaration order. */
  readonly scenarios: Readonly<Record<string, ScenarioReport>>
  /** The first `maxErrors` errors, in the order they happened. */
  readonly firstErrors: ReadonlyArray<ErrorEntry>
  /** Executions not recorded: ended in warmup, ended in cooldown, interrupted at the end. */
  readonly notRecorded: { readonly warmup: number; readonly cooldown: number; readonly interrupted: number }
}

/** Where a run is. */
export type Phase = "warmup" | "measuring" | "cooldown"

/** A progress report. */
export interface Progress {
  readonly testId: string
  readonly name: string
  readonly phase: Phase
  /** Since the load started (t0), milliseconds. */
  readonly elapsedMillis: number
  /** warmup + duration + cooldown, milliseconds. */
  readonly plannedMillis: number
  /** Workers started and not finished. */
  readonly activeWorkers: number
  /** Executions running now. */
  readonly inFlight: number
  /** Recorded executions so far (measured period only). */
  readonly completed: number
  readonly successes: number
  readonly errors: number
  /** Executions finished (recorded or not) per second since the previous report. */
  readonly throughput: number
}

/** A scenario's `setup` failed; the run did not start. */
export class ScenarioSetupError extends Tagged("ScenarioSetupError", {
  category: "permanent",
  severity: "high",
  message: "Load test scenario setup failed"
})<{
  readonly scenario: string
  readonly cause: Cause.Cause<unknown>
}> {
  override describe() {
    return `Setup of load test scenario "${this.scenario}" failed: ${describe(Cause.squash(this.cause))}`
  }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

interface Config {
  readonly name: string
  readonly durationMillis: number
  readonly concurrency: number
  readonly rampUpMillis: number
  readonly warmupMillis: number
  readonly cooldownMillis: number
  /** Infinity for no limit. */
  readonly scenarioTimeout: Duration.Duration
  readonly thinkTime: Duration.Duration
  readonly reportInterval: Duration.Duration
  readonly maxSamples: number
  readonly maxErrors: number
  readonly totalWeight: number
}

const validateScenarios = <R>(scenarios: ReadonlyArray<Scenario<R>>): Either.Either<number, ValidationError> =>
  Either.gen(function*() {
    if (!Array.isArray(scenarios) || scenarios.length === 0) {
      return yield* Validation.invalid("scenarios", "must be a non-empty array")
    }
    const names = new Set<string>()
    let total = 0
    for (let i = 0; i < scenarios.length; i++) {
      const s = scenarios[i]!
      const name = yield* Validation.nonEmptyString(`scenarios[${i}].name`, s.name)
      if (names.has(name)) return yield* Validation.invalid(`scenarios[${i}].name`, `duplicate scenario name "${name}"`)
      names.add(name)
      total += yield* Validation.nonNegativeInt(`scenarios[${i}].weight`, s.weight)
      if (typeof s.run !== "function") return yield* Validation.invalid(`scenarios[${i}].run`, "must be a function")
    }
    if (total === 0) return yield* Validation.invalid("scenarios", "weights must not all be zero")
    return yield* Validation.int("scenarios", total, { max: Number.MAX_SAFE_INTEGER })
  })

/** Validates scenarios and options, applying the defaults; `ValidationError` names the field. */
const validate = <R>(
  scenarios: ReadonlyArray<Scenario<R>>,
  options: Options
): Either.Either<Config, ValidationError> =>
  Either.gen(function*() {
    const totalWeight = yield* validateScenarios(scenarios)
    const millis = (d: Duration.Duration) => Duration.toMillis(d)
    const zeroOk = { allowZero: true }
    return {
      name: yield* Validation.nonEmptyString("name", options.name ?? defaults.name),
      durationMillis: millis(yield* Validation.duration("duration", options.duration)),
      concurrency: yield* Validation.positiveInt("concurrency", options.concurrency ?? defaults.concurrency),
      rampUpMillis: millis(yield* Validation.duration("rampUp", options.rampUp ?? defaults.rampUp, zeroOk)),
      warmupMillis: millis(yield* Validation.duration("warmup", options.warmup ?? defaults.warmup, zeroOk)),
      cooldownMillis: millis(yield* Validation.duration("cooldown", options.cooldown ?? defaults.cooldown, zeroOk)),
      scenarioTimeout: yield* Validation.duration(
        "scenarioTimeout",
        options.scenarioTimeout ?? defaults.scenarioTimeout,
        { allowInfinite: true }
      ),
      thinkTime: yield* Validation.duration("thinkTime", options.thinkTime ?? defaults.thinkTime, zeroOk),
      reportInterval: yield* Validation.duration("reportInterval", options.reportInterval ?? defaults.reportInterval),
      maxSamples: yield* Validation.positiveInt("maxSamples", options.maxSamples ?? defaults.maxSamples),
      maxErrors: yield* Validation.nonNegativeInt("maxErrors", options.maxErrors ?? defaults.maxErrors),
      totalWeight
    }
  })

// ---------------------------------------------------------------------------------------------
// Recording (plain mutable state, touched only inside synchronous steps)
// ---------------------------------------------------------------------------------------------

/** Percentile p of sorted samples: the sample at index round(p · (n − 1)); 0 when empty. */
export const percentile = (sorted: ArrayLike<number>, p: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.round(p * (sorted.length - 1))] ?? 0

/** Latencies: exact count/sum/min/max, and the last `capacity` values in a ring buffer. */
class Latencies {
  private readonly ring: Float64Array
  private next = 0
  private size = 0
  count = 0
  private sum = 0
  private min = Infinity
  private max = -Infinity
  constructor(capacity: number) {
    this.ring = new Float64Array(capacity)
  }
  add(millis: number): void {
    this.count++
    this.sum += millis
    if (millis < this.min) this.min = millis
    if (millis > this.max) this.max = millis
    this.ring[this.next] = millis
    this.next = (this.next + 1) % this.ring.length
    if (this.size < this.ring.length) this.size++
  }
  summary(): LatencySummary {
    if (this.count === 0) return { count: 0, samples: 0, min: 0, mean: 0, p50: 0, p90: 0, p95: 0, p99: 0, max: 0 }
    const sorted = this.ring.slice(0, this.size).sort()
    return {
      count: this.count,
      samples: this.size,
      min: this.min,
      mean: this.sum / this.count,
      p50: percentile(sorted, 0.5),
      p90: percentile(sorted, 0.9),
      p95: percentile(sorted, 0.95),
      p99: percentile(sorted, 0.99),
      max: this.max
    }
  }
}

/** Counts of one scenario, or of the whole run. */
class Tally {
  successes = 0
  errors = 0
  readonly outcomes = new Map<string, number>()
  readonly latency: Latencies
  constructor(maxSamples: number) {
    this.latency = new Latencies(maxSamples)
  }
  add(outcome: string, millis: number): void {
    if (outcome === "success") this.successes++
    else this.errors++
    const label = this.outcomes.has(outcome) || this.outcomes.size < maxOutcomeLabels ? outcome : "other"
    this.outcomes.set(label, (this.outcomes.get(label) ?? 0) + 1)
    this.latency.add(millis)
  }
  get total(): number {
    return this.successes + this.errors
  }
}

/** How one execution ended. */
interface Classified {
  readonly outcome: string
  readonly message: string | undefined
}

const success: Classified = { outcome: "success", message: undefined }

/**
 * The failure our own time limit raises (a private class: recognised with `instanceof`, which
 * also sees through the proxy Effect wraps failures in inside a span).
 */
class TimedOut {
  readonly _tag = "LoadTest/TimedOut"
}

const timedOut = new TimedOut()

const maxMessageLength = 500

const truncate = (s: string): string => s.length > maxMessageLength ? `${s.slice(0, maxMessageLength - 1)}…` : s

const tagOf = (u: unknown): string | undefined =>
  Predicate.hasProperty(u, "_tag") && typeof u._tag === "string" && u._tag.length > 0 ? u._tag.slice(0, 64) : undefined

/** A failure value as one line. */
const describe = (u: unknown): string => {
  if (u instanceof Error) {
    const name = tagOf(u) ?? u.name
    return u.message.length > 0 && u.message !== name ? `${name}: ${u.message}` : name
  }
  if (typeof u === "string") return u
  try {
    return JSON.stringify(u) ?? String(u)
  } catch {
    return String(u)
  }
}

const classify = (exit: Exit.Exit<unknown, unknown>, timeoutText: string): Classified => {
  if (Exit.isSuccess(exit)) return success
  const cause = exit.cause
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (error instanceof TimedOut) return { outcome: "timeout", message: timeoutText }
    return {
      outcome: tagOf(error) ?? (error instanceof Error ? error.name : "failure"),
      message: truncate(describe(error))
    }
  }
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect)) return { outcome: "defect", message: truncate(`defect: ${describe(defect.value)}`) }
  return { outcome: "interrupted", message: "interrupted" }
}

type Counter = Metric.Metric.Counter<number>

/** Everything a run records. */
class Recorder {
  readonly perScenario: ReadonlyArray<Tally>
  readonly all: Tally
  readonly firstErrors: Array<ErrorEntry> = []
  readonly notRecorded = { warmup: 0, cooldown: 0, interrupted: 0 }
  activeWorkers = 0
  inFlight = 0
  /** Executions finished, recorded or not (for the current throughput). */
  finished = 0
  private readonly counters: ReadonlyArray<{ readonly success: Counter; readonly error: Counter }>

  constructor(
    private readonly config: Config,
    private readonly scenarios: ReadonlyArray<Scenario<unknown>>,
    readonly windowStart: number,
    readonly windowEnd: number
  ) {
    this.perScenario = scenarios.map(() => new Tally(config.maxSamples))
    this.all = new Tally(config.maxSamples)
    this.counters = scenarios.map((s) => {
      const tags = (outcome: string) => ({ load_test: config.name, scenario: s.name, outcome })
      const description = "Load test executions recorded, by scenario and outcome"
      return {
        success: MetricKit.counter("foundation_load_test_requests_total", { description, tags: tags("success") }),
        error: MetricKit.counter("foundation_load_test_requests_total", { description, tags: tags("error") })
      }
    })
  }

  /** Records an execution of scenario `index` that ended at `endedAt` (epoch ms). */
  record(index: number, classified: Classified, latencyMillis: number, endedAt: number): void {
    this.finished++
    if (endedAt < this.windowStart) {
      this.notRecorded.warmup++
      return
    }
    if (endedAt >= this.windowEnd) {
      this.notRecorded.cooldown++
      return
    }
    this.perScenario[index]!.add(classified.outcome, latencyMillis)
    this.all.add(classified.outcome, latencyMillis)
    const counters = this.counters[index]!
    if (classified.message === undefined) {
      MetricKit.bump(counters.success)
    } else {
      MetricKit.bump(counters.error)
      if (this.firstErrors.length < this.config.maxErrors) {
        this.firstErrors.push({
          scenario: this.scenarios[index]!.name,
          outcome: classified.outcome,
          message: classified.message,
          time: endedAt
        })
      }
    }
  }

  report(testId: string): Report {
    const seconds = this.config.durationMillis / 1000
    const figures = (tally: Tally) => ({
      totalRequests: tally.total,
      successes: tally.successes,
      errors: tally.errors,
      errorRate: tally.total === 0 ? 0 : tally.errors / tally.total,
      throughput: tally.total / seconds,
      outcomes: Object.fromEntries(tally.outcomes),
      latency: tally.latency.summary()
    })
    const scenarios: Record<string, ScenarioReport> = {}
    this.scenarios.forEach((s, i) => {
      scenarios[s.name] = { name: s.name, weight: s.weight, ...figures(this.perScenario[i]!) }
    })
    return {
      testId,
      name: this.config.name,
      concurrency: this.config.concurrency,
      start: this.windowStart,
      end: this.windowEnd,
      durationMillis: this.config.durationMillis,
      ...figures(this.all),
      scenarios,
      firstErrors: [...this.firstErrors],
      notRecorded: { ...this.notRecorded }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

const newTestId: Effect.Effect<string> = Effect.map(
  Effect.zip(Random.nextIntBetween(0, 0x7fffffff), Random.nextIntBetween(0, 0x7fffffff)),
  ([a, b]) => `${a.toString(16).padStart(8, "0")}${b.toString(16).padStart(8, "0")}`
)

/**
 * Lets the event loop turn. Effect resumes a fiber that yields for running long in a microtask,
 * many times in a row: workers whose executions never suspend (an instant scenario, a fail-fast
 * rejection) would starve every timer, the end of the run and progress reports included, for
 * seconds. So time is cut into slices of this length (from t0), and a worker that has not
 * paused in the current slice sleeps for zero time before its next execution (outside the
 * measured time): one timer turn on the live clock, nothing at all on `TestClock`. All workers
 * pause in the same slice, so the microtask queue drains and due timers run at least about once
 * per slice, whatever the concurrency; a worker whose executions suspend anyway loses at most
 * one timer turn (about 1 ms) per slice.
 */
const sliceMillis = 20

/** Publishes on the bus if there is one; best-effort (failures are ignored). */
const publisher = Effect.map(
  Effect.serviceOption(EventBus),
  (bus) => (topic: string, data: unknown): Effect.Effect<void> =>
    Option.isNone(bus) ? Effect.void : Effect.ignore(bus.value.publish(topic, data))
)

/** The index of the scenario drawn by `r` in [0, total weight), by cumulative weights. */
const chooser = (weights: ReadonlyArray<number>) => {
  const cumulative: Array<number> = []
  let sum = 0
  for (const w of weights) cumulative.push(sum += w)
  return (r: number): number => {
    // Binary search for the first cumulative weight > r (zero-weight scenarios are never chosen).
    let lo = 0
    let hi = cumulative.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (cumulative[mid]! > r) hi = mid
      else lo = mid + 1
    }
    return lo
  }
}

const runValidated = <R>(
  scenarios: ReadonlyArray<Scenario<R>>,
  config: Config,
  onProgress: Options["onProgress"]
): Effect.Effect<Report, ScenarioSetupError, R> =>
  Effect.scoped(Effect.gen(function*() {
    const clock: Clock.Clock = yield* Effect.clock
    const publish = yield* publisher
    const testId = yield* newTestId

    // Setups, in order; teardowns run when the scope closes (after the workers, forked later).
    for (const scenario of scenarios) {
      if (scenario.setup !== undefined) {
        yield* Effect.catchAllCause(
          scenario.setup,
          (cause) => Effect.fail(new ScenarioSetupError({ scenario: scenario.name, cause }))
        )
      }
      if (scenario.teardown !== undefined) {
        const teardown = scenario.teardown
        yield* Effect.addFinalizer(() =>
          Effect.catchAllCause(
            teardown,
            (cause) => Effect.logWarning(`load test scenario "${scenario.name}" teardown failed`, cause)
          )
        )
      }
    }

    const t0 = clock.unsafeCurrentTimeMillis()
    const windowStart = t0 + config.warmupMillis
    const windowEnd = windowStart + config.durationMillis
    const plannedMillis = config.warmupMillis + config.durationMillis + config.cooldownMillis
    const recorder = new Recorder(config, scenarios, windowStart, windowEnd)
    const choose = chooser(scenarios.map((s) => s.weight))
    const timeoutText = `timeout after ${Duration.format(config.scenarioTimeout)}`
    const limited = Duration.isFinite(config.scenarioTimeout)
    const thinks = Duration.toMillis(config.thinkTime) > 0

    const execute = (scenario: Scenario<R>, context: ScenarioContext): Effect.Effect<unknown, unknown, R> => {
      const once = Effect.suspend(() => scenario.run(context)) // a synchronous throw becomes a defect
      return limited ? Effect.timeoutFail(once, { duration: config.scenarioTimeout, onTimeout: () => timedOut }) : once
    }

    const executions = (workerId: number): Effect.Effect<void, never, R> =>
      Effect.gen(function*() {
        const sliceOf = (millis: number) => Math.floor((millis - t0) / sliceMillis)
        let pausedIn = sliceOf(clock.unsafeCurrentTimeMillis())
        for (let iteration = 0;; iteration++) {
          if (iteration > 0 && (thinks || sliceOf(clock.unsafeCurrentTimeMillis()) > pausedIn)) {
            // The slice the pause began in: a worker resumed after others ran on does not get a
            // whole new slice to itself.
            pausedIn = sliceOf(clock.unsafeCurrentTimeMillis())
            yield* Effect.sleep(config.thinkTime)
          }
          if (clock.unsafeCurrentTimeMillis() >= windowEnd) return
          const index = choose(yield* Random.nextIntBetween(0, config.totalWeight))
          const scenario = scenarios[index]!
          const context: ScenarioContext = { testId, scenario: scenario.name, workerId, iteration }
          yield* Effect.acquireUseRelease(
            Effect.sync(() => {
              recorder.inFlight++
              return clock.unsafeCurrentTimeNanos()
            }),
            (startedAt) =>
              Effect.flatMap(Effect.exit(execute(scenario, context)), (exit) =>
                Effect.sync(() => {
                  const latencyMillis = Number(clock.unsafeCurrentTimeNanos() - startedAt) / 1e6
                  recorder.record(index, classify(exit, timeoutText), latencyMillis, clock.unsafeCurrentTimeMillis())
                })),
            (_, exit) =>
              Effect.sync(() => {
                recorder.inFlight--
                if (Exit.isFailure(exit)) recorder.notRecorded.interrupted++
              })
          )
        }
      })

    const startWorker = (workerId: number): Effect.Effect<void, never, R> =>
      Effect.acquireUseRelease(
        Effect.sync(() => recorder.activeWorkers++),
        () => executions(workerId),
        () => Effect.sync(() => recorder.activeWorkers--)
      )

    // Reports are due at t0 + k·reportInterval (a late one does not delay the next ones).
    const intervalMillis = Duration.toMillis(config.reportInterval)
    const progressReporter: Effect.Effect<void> = Effect.gen(function*() {
      let lastAt = t0
      let lastFinished = 0
      for (let k = 1;; k++) {
        const due = t0 + k * intervalMillis
        if (due >= t0 + plannedMillis) return
        yield* Effect.sleep(Duration.millis(Math.max(0, due - clock.unsafeCurrentTimeMillis())))
        const now = clock.unsafeCurrentTimeMillis()
        if (now >= t0 + plannedMillis) return
        k = Math.max(k, Math.floor((now - t0) / intervalMillis)) // reports missed while late are skipped
        const progress: Progress = {
          testId,
          name: config.name,
          phase: now < windowStart ? "warmup" : now < windowEnd ? "measuring" : "cooldown",
          elapsedMillis: now - t0,
          plannedMillis,
          activeWorkers: recorder.activeWorkers,
          inFlight: recorder.inFlight,
          completed: recorder.all.total,
          successes: recorder.all.successes,
          errors: recorder.all.errors,
          throughput: now > lastAt ? ((recorder.finished - lastFinished) * 1000) / (now - lastAt) : 0
        }
        lastAt = now
        lastFinished = recorder.finished
        yield* publish(topics.progress, progress)
        if (onProgress !== undefined) {
          yield* Effect.catchAllCause(
            Effect.suspend(() => onProgress(progress)),
            (cause) => Effect.logWarning("load test progress callback failed", cause)
          )
        }
      }
    })

    yield* publish(topics.started, {
      testId,
      name: config.name,
      start: t0,
      scenarios: scenarios.map((s) => ({ name: s.name, weight: s.weight })),
      concurrency: config.concurrency,
      durationMillis: config.durationMillis,
      warmupMillis: config.warmupMillis,
      cooldownMillis: config.cooldownMillis,
      rampUpMillis: config.rampUpMillis
    })

    // Workers and the reporter live in this set: cleared at the end, interrupted with the scope.
    const fibers = yield* FiberSet.make<void, never>()
    yield* FiberSet.run(fibers, progressReporter)
    for (let i = 0; i < config.concurrency; i++) {
      const delayMillis = (i * config.rampUpMillis) / config.concurrency
      if (t0 + delayMillis >= windowEnd) break
      yield* FiberSet.run(
        fibers,
        delayMillis > 0 ? Effect.zipRight(Effect.sleep(Duration.millis(delayMillis)), startWorker(i)) : startWorker(i)
      )
    }
    yield* Effect.sleep(Duration.millis(plannedMillis))
    yield* FiberSet.clear(fibers)

    const report = recorder.report(testId)
    yield* publish(topics.completed, report)
    return report
  }))

const runScenarios = <R>(
  scenarios: ReadonlyArray<Scenario<R>>,
  options: Options
): Effect.Effect<Report, ValidationError | ScenarioSetupError, R> =>
  Effect.flatMap(
    validate(scenarios, options),
    (config) =>
      runValidated(scenarios, config, options.onProgress).pipe(
        Effect.withSpan("foundation.load_test.run", {
          attributes: { "load_test.name": config.name, "load_test.concurrency": config.concurrency }
        })
      )
  )

/**
 * The services a scenario type needs: those of its `run`, its `setup` (but `Scope`, which the
 * run provides to setups) and its `teardown`.
 */
export type Requirements<S> =
  | (S extends { readonly run: (context: ScenarioContext) => Effect.Effect<unknown, unknown, infer R> } ? R : never)
  | (S extends { readonly setup: Effect.Effect<unknown, unknown, infer R> } ? Exclude<R, Scope.Scope> : never)
  | (S extends { readonly teardown: Effect.Effect<unknown, unknown, infer R> } ? R : never)

/**
 * Runs a load test: validates the scenarios and options (`ValidationError` naming the field),
 * runs the scenarios' setups (`ScenarioSetupError` if one fails), drives the load for
 * warmup + duration + cooldown, and returns the report of the measured period. Scenarios may
 * need different services: the run needs all of them.
 */
export const run = <S extends Scenario<unknown>>(
  scenarios: ReadonlyArray<S>,
  options: Options
): Effect.Effect<Report, ValidationError | ScenarioSetupError, Requirements<S>> =>
  // Each S is a Scenario of (at most) the services in Requirements<S>, plus the Scope the run
  // provides to setups; TypeScript cannot see that through the conditional type.
  runScenarios(scenarios as ReadonlyArray<Scenario<unknown>>, options) as Effect.Effect<
    Report,
    ValidationError | ScenarioSetupError,
    Requirements<S>
  >

/** Runs a load test of one effect (the scenario `"simple"`, weight 1). */
export const runSimple = <R>(
  effect: (context: ScenarioContext) => Effect.Effect<unknown, unknown, R>,
  options: Options
): Effect.Effect<Report, ValidationError | ScenarioSetupError, R> =>
  runScenarios([{ name: "simple", weight: 1, run: effect }], options)

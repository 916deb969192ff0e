/**
 * CommandRunner: runs allow-listed OS commands through `@effect/platform`'s `Command` and the
 * platform `CommandExecutor`, with a time limit, a concurrency cap, a result cache and bounded
 * output (the original's SystemCommandManager, with its flaws fixed).
 *
 * Guarantees:
 * - **No shell, ever.** The executable and its arguments go to the OS as an array
 *   (`Command.runInShell(false)`); `;`, `$(...)`, backticks, `&&`, `|`, `>` in an argument reach
 *   the program as literal text. Stdin is closed at once, so a program waiting on input ends.
 * - **Allow-list.** Only commands configured by name (optionally pinned to an absolute path) run;
 *   anything else fails with `CommandNotAllowedError` (category permanent) without spawning.
 *   Default list: uptime, ps, free, df, iostat, vmstat (the original's).
 * - **Timeout kills.** Each run has a time limit [10 s]; when it expires the process group gets
 *   `SIGKILL` (a program ignoring `SIGTERM` dies too, and so do its children) and the caller gets
 *   `TimeoutError` only once the process has exited. An interrupted caller kills its process the
 *   same way before its interruption completes.
 * - **Concurrency cap, fail fast.** At most `maxConcurrent` [5] processes at once (a `Bulkhead`
 *   with no queue); one more fails at once with `BulkheadFullError` (category resource).
 * - **Cache and coalescing.** Successful results are kept for `cacheTtl` [30 s, on `Clock`],
 *   keyed by command + args + cwd + env + accepted exit codes, in a cache of at most
 *   `cacheCapacity` [1,000] entries (expired ones go first, then the oldest). Identical calls made
 *   while one is running share its process and its outcome; failures are never cached. A shared
 *   process is killed only when every caller waiting for it has been interrupted. Coalesced
 *   callers get the outcome of the first caller's run (its timeout applies).
 * - **Bounded output.** Stdout and stderr are each kept up to `maxOutputBytes` [1 MiB]; the rest
 *   is read and discarded (so the program never blocks on a full pipe), counted, and flagged
 *   (`stdoutTruncated`, `stderrTruncated`); a cut never splits a UTF-8 character.
 * - **Exit codes.** An exit code outside `successExitCodes` [0] is a typed failure,
 *   `CommandFailedError` (category permanent), carrying the code, stdout and stderr; a process that
 *   could not be started, or was killed by a signal it was not sent by us, is a
 *   `CommandExecutionError` (category system).
 * - Bad options and bad inputs (an argument holding a NUL byte, an env name holding `=`, a
 *   non-positive timeout...) fail with `ValidationError` naming the field and change nothing.
 *
 * Closing the layer's scope kills every process still running; callers still waiting for a
 * shared run are interrupted.
 *
 * Metrics (tagged `runner`): `foundation_command_runner_runs_total` (processes spawned),
 * `..._cache_hits_total`, `..._coalesced_total`, `..._timeouts_total`, `..._failures_total`,
 * `..._rejected_total` (tag `reason`: not_allowed | concurrency), `..._active` (gauge) and
 * `..._duration_ms` (histogram). Telemetry (when the `Telemetry` service is in the context at
 * construction): the names in `events`. Arguments are never put in telemetry (they may hold
 * secrets); the command name is.
 */
import * as Command from "@effect/platform/Command"
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import type * as PlatformError from "@effect/platform/Error"
import * as NodeCommandExecutor from "@effect/platform-node/NodeCommandExecutor"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { type BulkheadFullError, Tagged, TimeoutError, type ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"
import * as Bulkhead from "../resilience/Bulkhead.js"

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/** The telemetry events of this module. Durations are milliseconds. */
export const events = Events.names.commandRunner

/** A command the runner may run. */
export interface AllowedCommand {
  /** The name callers use: a program name without path separators (`"uptime"`). */
  readonly name: string
  /**
   * The absolute path of the executable to run for this name. Without it, the name is looked up
   * on the `PATH` of the process when it is spawned. Callers may also call the command by this path.
   */
  readonly path?: string
}

/** The original's allow-list. */
export const defaultAllowed: ReadonlyArray<string> = ["uptime", "ps", "free", "df", "iostat", "vmstat"]

/** Options of a runner. */
export interface Options {
  /** The commands that may run [`defaultAllowed`]; a string is a name looked up on `PATH`. */
  readonly allowed?: ReadonlyArray<string | AllowedCommand>
  /** Default time limit of a run [10 seconds]; positive and finite. */
  readonly timeout?: Duration.DurationInput
  /** Processes allowed to run at once (an integer ≥ 1) [5]; one more fails fast. */
  readonly maxConcurrent?: number
  /** How long a successful result is served from the cache [30 seconds]; zero stores nothing. */
  readonly cacheTtl?: Duration.DurationInput
  /** Results kept at most (an integer ≥ 1) [1,000]. */
  readonly cacheCapacity?: number
  /** Bytes kept of stdout and of stderr, each (an integer ≥ 1) [1 MiB]. */
  readonly maxOutputBytes?: number
  /** Used in errors, metrics and telemetry ["command-runner"]. */
  readonly name?: string
}

/** Options of one run. */
export interface RunOptions {
  /** Time limit of this run [the runner's]. Coalesced callers share the first caller's limit. */
  readonly timeout?: Duration.DurationInput
  /** Working directory [the current one]. */
  readonly cwd?: string
  /** Variables added to (or replacing in) the parent's environment. */
  readonly env?: Readonly<Record<string, string>>
  /** Serve from / store in the cache and coalesce with identical runs [true]. */
  readonly useCache?: boolean
  /** Exit codes that count as success [[0]]. */
  readonly successExitCodes?: ReadonlyArray<number>
}

/** The outcome of a run that ended with an accepted exit code. */
export interface CommandResult {
  /** The allow-list name of the command. */
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly exitCode: number
  /** Stdout as UTF-8, at most `maxOutputBytes` bytes of it. */
  readonly stdout: string
  readonly stderr: string
  /** True when stdout was longer than `maxOutputBytes` and was cut. */
  readonly stdoutTruncated: boolean
  readonly stderrTruncated: boolean
  /** Bytes the process wrote to stdout in all (kept or not). */
  readonly stdoutBytes: number
  readonly stderrBytes: number
  readonly pid: number
  /** Milliseconds from spawn to exit, on `Clock`. */
  readonly durationMs: number
}

/** What a runner has done since it was made. */
export interface Stats {
  readonly name: string
  /** Processes spawned. */
  readonly runs: number
  /** Runs that ended with an accepted exit code. */
  readonly succeeded: number
  /** Runs that ended with another exit code or could not run (timeouts not included). */
  readonly failed: number
  readonly timeouts: number
  /** Calls answered from the cache. */
  readonly cacheHits: number
  /** Calls that joined an identical run in progress. */
  readonly coalesced: number
  /** Calls refused because `maxConcurrent` processes were running. */
  readonly rejected: number
  /** Calls refused because the command is not on the allow-list. */
  readonly notAllowed: number
  /** Processes running now. */
  readonly active: number
  /** Fresh results in the cache. */
  readonly cacheSize: number
  /** The names on the allow-list. */
  readonly allowed: ReadonlyArray<string>
}

/** The command is not on the allow-list; nothing was spawned. */
export class CommandNotAllowedError extends Tagged("CommandNotAllowedError", {
  captureStack: false,
  category: "permanent",
  severity: "medium",
  message: "Command not allowed"
})<{
  readonly runner: string
  readonly command: string
}> {
  override describe() {
    return `Command ${JSON.stringify(this.command)} is not allowed by runner "${this.runner}"`
  }
}

/** The process ended with an exit code outside the accepted ones. */
export class CommandFailedError extends Tagged("CommandFailedError", {
  category: "permanent",
  severity: "medium",
  message: "Command failed"
})<{
  readonly runner: string
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly exitCode: number
  readonly stdout: string
  readonly stderr: string
  readonly stdoutTruncated: boolean
  readonly stderrTruncated: boolean
  readonly pid: number
}> {
  override describe() {
    return `Command "${this.command}" exited with code ${this.exitCode}`
  }
}

/** The process could not be started, its output could not be read, or a signal ended it. */
export class CommandExecutionError extends Tagged("CommandExecutionError", {
  category: "system",
  severity: "high",
  message: "Command could not run"
})<{
  readonly runner: string
  readonly command: string
  readonly reason: string
  /** The platform error. */
  readonly cause: unknown
}> {
  override describe() {
    return `Command "${this.command}" could not run: ${this.reason}`
  }
}

/** Every way a run can fail. */
export type RunError =
  | ValidationError
  | CommandNotAllowedError
  | CommandFailedError
  | CommandExecutionError
  | TimeoutError
  | BulkheadFullError

/** A command runner. */
export interface Service {
  readonly name: string
  /**
   * Runs `command` (an allow-list name, or the absolute path of an entry) with `args`, passed as
   * an array to the program, never through a shell.
   */
  run(command: string, args?: ReadonlyArray<string>, options?: RunOptions): Effect.Effect<CommandResult, RunError>
  /** The allow-list. */
  readonly allowed: Effect.Effect<ReadonlyArray<AllowedCommand>>
  /** Replaces the allow-list (validated first: a bad list changes nothing) and empties the cache. */
  setAllowed(allowed: ReadonlyArray<string | AllowedCommand>): Effect.Effect<void, ValidationError>
  /** Drops every cached result (runs in progress go on and may store theirs). */
  readonly clearCache: Effect.Effect<void>
  readonly stats: Effect.Effect<Stats>
}

/** The `CommandRunner` service. */
export class CommandRunner extends Context.Tag("effect-foundation/CommandRunner")<CommandRunner, Service>() {}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

const field = (name: string): string => `commandRunner.${name}`

interface Entry {
  readonly name: string
  readonly path: string | undefined
}

interface AllowList {
  readonly byName: ReadonlyMap<string, Entry>
  readonly byPath: ReadonlyMap<string, Entry>
}

const isAbsolutePath = (p: string): boolean => p.startsWith("/") || /^[A-Za-z]:[\\/]/.test(p) || p.startsWith("\\\\")

const checkName = (at: string, value: unknown): Either.Either<string, ValidationError> => {
  if (typeof value !== "string" || value.length === 0) return Validation.invalid(at, "must be a non-empty string")
  if (value.trim() !== value) return Validation.invalid(at, "must not start or end with white space")
  if (/[/\\\0]/.test(value)) return Validation.invalid(at, "must be a program name without path separators or NUL")
  if (value === "." || value === "..") return Validation.invalid(at, "must be a program name")
  return Either.right(value)
}

const checkAllowed = (
  at: string,
  list: unknown
): Either.Either<AllowList, ValidationError> => {
  if (!Array.isArray(list)) return Validation.invalid(at, "must be an array")
  const byName = new Map<string, Entry>()
  const byPath = new Map<string, Entry>()
  for (let i = 0; i < list.length; i++) {
    const item: unknown = list[i]
    const here = `${at}[${i}]`
    let entry: Entry
    if (typeof item === "string") {
      const name = checkName(here, item)
      if (Either.isLeft(name)) return Either.left(name.left)
      entry = { name: name.right, path: undefined }
    } else if (typeof item === "object" && item !== null) {
      const raw = item as { readonly name?: unknown; readonly path?: unknown }
      const name = checkName(`${here}.name`, raw.name)
      if (Either.isLeft(name)) return Either.left(name.left)
      let path: string | undefined = undefined
      if (raw.path !== undefined) {
        if (typeof raw.path !== "string" || !isAbsolutePath(raw.path) || raw.path.includes("\0")) {
          return Validation.invalid(`${here}.path`, "must be an absolute path without NUL")
        }
        path = raw.path
      }
      entry = { name: name.right, path }
    } else {
      return Validation.invalid(here, "must be a command name or { name, path? }")
    }
    if (byName.has(entry.name)) return Validation.invalid(here, `duplicate command ${JSON.stringify(entry.name)}`)
    byName.set(entry.name, entry)
    if (entry.path !== undefined) byPath.set(entry.path, entry)
  }
  return Either.right({ byName, byPath })
}

interface Config {
  readonly name: string
  readonly allowed: AllowList
  readonly timeoutMs: number
  readonly maxConcurrent: number
  readonly cacheTtlMs: number
  readonly cacheCapacity: number
  readonly maxOutputBytes: number
}

const resolve = (options: Options): Either.Either<Config, ValidationError> =>
  Either.gen(function*() {
    const name = yield* Validation.nonEmptyString(field("name"), options.name ?? "command-runner")
    const allowed = yield* checkAllowed(field("allowed"), options.allowed ?? defaultAllowed)
    const timeout = yield* Validation.duration(field("timeout"), options.timeout ?? "10 seconds")
    const maxConcurrent = yield* Validation.positiveInt(field("maxConcurrent"), options.maxConcurrent ?? 5)
    const cacheTtl = yield* Validation.duration(field("cacheTtl"), options.cacheTtl ?? "30 seconds", { allowZero: true })
    const cacheCapacity = yield* Validation.positiveInt(field("cacheCapacity"), options.cacheCapacity ?? 1000)
    const maxOutputBytes = yield* Validation.positiveInt(field("maxOutputBytes"), options.maxOutputBytes ?? 1024 * 1024)
    return {
      name,
      allowed,
      timeoutMs: Duration.toMillis(timeout),
      maxConcurrent,
      cacheTtlMs: Duration.toMillis(cacheTtl),
      cacheCapacity,
      maxOutputBytes
    }
  })

/** One validated call. */
interface Request {
  readonly entry: Entry
  readonly args: ReadonlyArray<string>
  readonly cwd: string | undefined
  readonly env: Readonly<Record<string, string>> | undefined
  readonly timeoutMs: number
  readonly successExitCodes: ReadonlyArray<number>
  readonly useCache: boolean
  readonly key: string
}

const noNul = (at: string, value: unknown): Either.Either<string, ValidationError> =>
  typeof value !== "string"
    ? Validation.invalid(at, "must be a string")
    : value.includes("\0")
    ? Validation.invalid(at, "must not contain a NUL byte")
    : Either.right(value)

const checkRun = (
  command: unknown,
  args: unknown,
  options: RunOptions,
  defaultTimeoutMs: number
): Either.Either<Omit<Request, "entry" | "key"> & { readonly command: string }, ValidationError> =>
  Either.gen(function*() {
    const name = yield* Validation.nonEmptyString("command", command)
    yield* noNul("command", name)
    if (!Array.isArray(args)) return yield* Validation.invalid("args", "must be an array of strings")
    const argv: Array<string> = []
    for (let i = 0; i < args.length; i++) argv.push(yield* noNul(`args[${i}]`, args[i]))
    const timeoutMs = options.timeout === undefined
      ? defaultTimeoutMs
      : Duration.toMillis(yield* Validation.duration("options.timeout", options.timeout))
    let cwd: string | undefined = undefined
    if (options.cwd !== undefined) {
      cwd = yield* noNul("options.cwd", options.cwd)
      if (cwd.length === 0) return yield* Validation.invalid("options.cwd", "must be a non-empty string")
    }
    let env: Record<string, string> | undefined = undefined
    if (options.env !== undefined) {
      if (typeof options.env !== "object" || options.env === null) {
        return yield* Validation.invalid("options.env", "must be a record of strings")
      }
      env = {}
      for (const key of Object.keys(options.env).sort()) {
        if (key.length === 0 || key.includes("=") || key.includes("\0")) {
          return yield* Validation.invalid(`options.env.${key}`, "a variable name must be non-empty, without '=' or NUL")
        }
        env[key] = yield* noNul(`options.env.${key}`, options.env[key])
      }
    }
    const codes = options.successExitCodes ?? [0]
    if (!Array.isArray(codes) || codes.length === 0) {
      return yield* Validation.invalid("options.successExitCodes", "must be a non-empty array of exit codes")
    }
    const successExitCodes: Array<number> = []
    for (let i = 0; i < codes.length; i++) {
      successExitCodes.push(yield* Validation.nonNegativeInt(`options.successExitCodes[${i}]`, codes[i]))
    }
    successExitCodes.sort((a, b) => a - b)
    return { command: name, args: argv, cwd, env, timeoutMs, successExitCodes, useCache: options.useCache ?? true }
  })

// ---------------------------------------------------------------------------------------------
// Output capture
// ---------------------------------------------------------------------------------------------

/** Keeps the first `max` bytes of a stream and counts the rest. Local to one run. */
class OutputBuffer {
  private readonly parts: Array<Uint8Array> = []
  kept = 0
  total = 0
  constructor(private readonly max: number) {}

  push(bytes: Uint8Array): this {
    this.total += bytes.length
    const room = this.max - this.kept
    if (room > 0) {
      // A copy for a partial chunk, so the rest of its buffer is not retained.
      const part = bytes.length <= room ? bytes : bytes.slice(0, room)
      this.parts.push(part)
      this.kept += part.length
    }
    return this
  }

  get truncated(): boolean {
    return this.total > this.kept
  }

  text(): string {
    const all = new Uint8Array(this.kept)
    let offset = 0
    for (const part of this.parts) {
      all.set(part, offset)
      offset += part.length
    }
    return decoder.decode(this.truncated ? all.subarray(0, utf8Boundary(all)) : all)
  }
}

const decoder = new TextDecoder()

/** The length of the longest prefix of `bytes` that does not end inside a UTF-8 character. */
const utf8Boundary = (bytes: Uint8Array): number => {
  let i = bytes.length - 1
  let continuation = 0
  while (i >= 0 && continuation < 3 && ((bytes[i] ?? 0) & 0xc0) === 0x80) {
    i--
    continuation++
  }
  if (i < 0) return bytes.length
  const lead = bytes[i] ?? 0
  const size = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1
  return i + size > bytes.length ? i : bytes.length
}

const collect = (stream: Stream.Stream<Uint8Array, PlatformError.PlatformError>, max: number) =>
  Effect.suspend(() => Stream.runFold(stream, new OutputBuffer(max), (buffer, bytes) => buffer.push(bytes)))

// ---------------------------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------------------------

interface Pending {
  readonly _tag: "Pending"
  readonly deferred: Deferred.Deferred<CommandResult, RunError>
  /** Callers waiting for this run; at zero the run is interrupted (its process killed). */
  waiters: number
  fiber: Fiber.RuntimeFiber<CommandResult, RunError> | undefined
}

interface Ready {
  readonly _tag: "Ready"
  readonly result: CommandResult
  readonly expiresAt: number
}

const durationBoundaries = MetricBoundaries.exponential({ start: 1, factor: 2, count: 16 })

const shortName = (command: string): string => command.length <= 200 ? command : `${command.slice(0, 200)}…`

/**
 * The allow-list, the cache and the counters are plain structures read and written only inside
 * synchronous steps (`Effect.sync` / `Effect.suspend` bodies and `onExit` callbacks), so each
 * step is atomic: fibers interleave only between effects. No process is started and no user
 * code runs inside such a step.
 */
class Runner implements Service {
  private allowList: AllowList
  private readonly cache = new Map<string, Pending | Ready>()
  private runs = 0
  private succeeded = 0
  private failed = 0
  private timeouts = 0
  private cacheHits = 0
  private coalesced = 0
  private rejected = 0
  private notAllowed = 0
  private active = 0

  private readonly runsCounter: Metric.Metric.Counter<number>
  private readonly cacheHitsCounter: Metric.Metric.Counter<number>
  private readonly coalescedCounter: Metric.Metric.Counter<number>
  private readonly timeoutsCounter: Metric.Metric.Counter<number>
  private readonly failuresCounter: Metric.Metric.Counter<number>
  private readonly notAllowedCounter: Metric.Metric.Counter<number>
  private readonly busyCounter: Metric.Metric.Counter<number>
  private readonly activeGauge: Metric.Metric.Gauge<number>
  private readonly durationHistogram: Metric.Metric<MetricKeyType.MetricKeyType.Histogram, number, unknown>

  constructor(
    private readonly config: Config,
    private readonly executor: CommandExecutor.CommandExecutor,
    private readonly bulkhead: Bulkhead.Bulkhead,
    private readonly scope: Scope.Scope,
    private readonly clock: Clock.Clock,
    private readonly telemetry: Telemetry.Service | undefined
  ) {
    this.allowList = config.allowed
    const tags = { runner: config.name }
    const counter = (what: string, description: string, extra: Record<string, string> = {}) =>
      MetricKit.counter(`foundation_command_runner_${what}`, { description, tags: { ...tags, ...extra } })
    this.runsCounter = counter("runs_total", "Processes spawned")
    this.cacheHitsCounter = counter("cache_hits_total", "Calls answered from the cache")
    this.coalescedCounter = counter("coalesced_total", "Calls that joined an identical run in progress")
    this.timeoutsCounter = counter("timeouts_total", "Runs killed at their time limit")
    this.failuresCounter = counter("failures_total", "Runs that failed (exit code or execution error)")
    this.notAllowedCounter = counter("rejected_total", "Calls refused", { reason: "not_allowed" })
    this.busyCounter = counter("rejected_total", "Calls refused", { reason: "concurrency" })
    this.activeGauge = MetricKit.gauge("foundation_command_runner_active", { description: "Processes running", tags })
    this.durationHistogram = MetricKit.histogram("foundation_command_runner_duration_ms", durationBoundaries, {
      description: "Duration of runs that ended on their own, in milliseconds",
      tags
    })
  }

  get name(): string {
    return this.config.name
  }

  run(command: string, args: ReadonlyArray<string> = [], options: RunOptions = {}): Effect.Effect<CommandResult, RunError> {
    return Effect.suspend(() => {
      const checked = checkRun(command, args, options, this.config.timeoutMs)
      if (Either.isLeft(checked)) return Effect.fail(checked.left)
      const input = checked.right
      const entry = this.allowList.byName.get(input.command) ??
        (isAbsolutePath(input.command) ? this.allowList.byPath.get(input.command) : undefined)
      if (entry === undefined) {
        this.notAllowed++
        MetricKit.bump(this.notAllowedCounter)
        this.telemetry?.unsafeEmit(events.rejected, { count: 1 }, {
          runner: this.config.name,
          command: shortName(input.command),
          reason: "not_allowed"
        })
        return Effect.fail(new CommandNotAllowedError({ runner: this.config.name, command: input.command }))
      }
      const key = JSON.stringify([entry.name, input.args, input.cwd ?? null, input.env ?? null, input.successExitCodes])
      const request: Request = { ...input, entry, key }
      return request.useCache ? this.shared(request) : this.execute(request)
    })
  }

  /** Answers from the cache, joins an identical run in progress, or starts one that others may join. */
  private shared(request: Request): Effect.Effect<CommandResult, RunError> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        const now = this.clock.unsafeCurrentTimeMillis()
        const found = this.cache.get(request.key)
        if (found !== undefined) {
          if (found._tag === "Pending") {
            found.waiters++
            this.coalesced++
            MetricKit.bump(this.coalescedCounter)
            return this.join(request.key, found, restore)
          }
          if (now < found.expiresAt) {
            this.cacheHits++
            MetricKit.bump(this.cacheHitsCounter)
            return Effect.succeed(found.result)
          }
          this.cache.delete(request.key)
        }
        const pending: Pending = {
          _tag: "Pending",
          deferred: Deferred.unsafeMake<CommandResult, RunError>(FiberId.none),
          waiters: 1,
          fiber: undefined
        }
        this.cache.set(request.key, pending)
        // The run belongs to the runner's scope, not to this caller: others may join it.
        const lead = Effect.onExit(
          this.execute(request),
          (exit) => Effect.sync(() => this.settle(request.key, pending, exit))
        )
        return Effect.flatMap(Effect.forkIn(Effect.interruptible(lead), this.scope), (fiber) => {
          pending.fiber = fiber
          return this.join(request.key, pending, restore)
        })
      })
    )
  }

  /** Waits for a shared run; the last waiter to be interrupted interrupts the run (and waits for its process to die). */
  private join(
    key: string,
    pending: Pending,
    restore: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  ): Effect.Effect<CommandResult, RunError> {
    return Effect.onInterrupt(restore(Deferred.await(pending.deferred)), () =>
      Effect.suspend(() => {
        pending.waiters--
        if (pending.waiters > 0 || pending.fiber === undefined) return Effect.void
        if (this.cache.get(key) === pending) this.cache.delete(key)
        return Fiber.interrupt(pending.fiber)
      }))
  }

  /** Stores a shared run's success (failures are not cached) and hands its outcome to the waiters. */
  private settle(key: string, pending: Pending, exit: Exit.Exit<CommandResult, RunError>): void {
    if (this.cache.get(key) === pending) {
      this.cache.delete(key)
      if (Exit.isSuccess(exit) && this.config.cacheTtlMs > 0) {
        const now = this.clock.unsafeCurrentTimeMillis()
        this.cache.set(key, { _tag: "Ready", result: exit.value, expiresAt: now + this.config.cacheTtlMs })
        this.evict(now)
      }
    }
    Deferred.unsafeDone(pending.deferred, exit)
  }

  /** Keeps the cache within its capacity: expired results go first, then the oldest. */
  private evict(now: number): void {
    if (this.cache.size <= this.config.cacheCapacity) return
    for (const [key, entry] of this.cache) {
      if (entry._tag === "Ready" && entry.expiresAt <= now) this.cache.delete(key)
    }
    for (const [key, entry] of this.cache) {
      if (this.cache.size <= this.config.cacheCapacity) return
      if (entry._tag === "Ready") this.cache.delete(key)
    }
  }

  /** One process, in a slot of the bulkhead. */
  private execute(request: Request): Effect.Effect<CommandResult, RunError> {
    return Effect.tapErrorTag(this.bulkhead.run(this.spawn(request)), "BulkheadFullError", () =>
      Effect.sync(() => {
        this.rejected++
        MetricKit.bump(this.busyCounter)
        this.telemetry?.unsafeEmit(events.rejected, { count: 1 }, {
          runner: this.config.name,
          command: request.entry.name,
          reason: "concurrency"
        })
      }))
  }

  private spawn(request: Request): Effect.Effect<CommandResult, RunError> {
    const name = request.entry.name
    let command = Command.runInShell(Command.make(request.entry.path ?? name, ...request.args), false)
    if (request.cwd !== undefined) command = Command.workingDirectory(command, request.cwd)
    if (request.env !== undefined) command = Command.env(command, request.env)
    const executionError = (reason: string, cause: unknown) => {
      const error = new CommandExecutionError({ runner: this.config.name, command: name, reason, cause })
      return Effect.sync(() => {
        this.failed++
        MetricKit.bump(this.failuresCounter)
        this.telemetry?.unsafeEmit(events.failed, {}, {
          runner: this.config.name,
          command: name,
          reason: "execution",
          error: reason
        })
      }).pipe(Effect.zipRight(Effect.fail(error)))
    }
    const started = Effect.sync(() => {
      this.runs++
      this.active++
      MetricKit.bump(this.runsCounter)
      MetricKit.set(this.activeGauge, this.active)
    })
    const stopped = Effect.sync(() => {
      this.active--
      MetricKit.set(this.activeGauge, this.active)
    })
    return Effect.scoped(Effect.gen(this, function*() {
      const startedAt = this.clock.unsafeCurrentTimeMillis()
      const process = yield* Effect.acquireRelease(
        Effect.tap(this.executor.start(command), () => started),
        // Unless the run ended normally (timeout, interruption, failure), kill the whole process
        // group with SIGKILL and wait for the exit; this runs before the executor's own release.
        (process, exit) =>
          Exit.isSuccess(exit) ? stopped : Effect.zipRight(Effect.ignore(process.kill("SIGKILL")), stopped)
      ).pipe(
        Effect.catchAll((error) => executionError(`could not start: ${error.message}`, error))
      )
      // No input: close stdin so a program reading it sees end-of-file.
      yield* Effect.forkScoped(Effect.ignore(Stream.run(Stream.empty, process.stdin)))
      const outcome = yield* Effect.all(
        [
          collect(process.stdout, this.config.maxOutputBytes),
          collect(process.stderr, this.config.maxOutputBytes),
          process.exitCode
        ],
        { concurrency: "unbounded" }
      ).pipe(
        Effect.timeoutOption(Duration.millis(request.timeoutMs)),
        Effect.catchAll((error) => executionError(error.message, error))
      )
      if (Option.isNone(outcome)) {
        this.timeouts++
        MetricKit.bump(this.timeoutsCounter)
        this.telemetry?.unsafeEmit(events.timeout, { timeout_ms: request.timeoutMs }, {
          runner: this.config.name,
          command: name,
          pid: process.pid
        })
        return yield* new TimeoutError({
          timeout: Duration.millis(request.timeoutMs),
          label: `Command "${name}" (pid ${process.pid})`
        })
      }
      const [stdout, stderr, exitCode] = outcome.value
      const durationMs = this.clock.unsafeCurrentTimeMillis() - startedAt
      const result: CommandResult = {
        command: name,
        args: request.args,
        exitCode,
        stdout: stdout.text(),
        stderr: stderr.text(),
        stdoutTruncated: stdout.truncated,
        stderrTruncated: stderr.truncated,
        stdoutBytes: stdout.total,
        stderrBytes: stderr.total,
        pid: process.pid,
        durationMs
      }
      MetricKit.observe(this.durationHistogram, durationMs)
      if (!request.successExitCodes.includes(exitCode)) {
        this.failed++
        MetricKit.bump(this.failuresCounter)
        this.telemetry?.unsafeEmit(events.failed, { duration: durationMs, exit_code: exitCode }, {
          runner: this.config.name,
          command: name,
          reason: "exit_code"
        })
        return yield* new CommandFailedError({
          runner: this.config.name,
          command: name,
          args: request.args,
          exitCode,
          stdout: result.stdout,
          stderr: result.stderr,
          stdoutTruncated: result.stdoutTruncated,
          stderrTruncated: result.stderrTruncated,
          pid: result.pid
        })
      }
      this.succeeded++
      this.telemetry?.unsafeEmit(events.completed, {
        duration: durationMs,
        exit_code: exitCode,
        stdout_bytes: result.stdoutBytes,
        stderr_bytes: result.stderrBytes
      }, {
        runner: this.config.name,
        command: name,
        pid: result.pid,
        truncated: result.stdoutTruncated || result.stderrTruncated
      })
      return result
    })).pipe(
      Effect.withSpan("CommandRunner.run", { attributes: { runner: this.config.name, command: name } })
    )
  }

  get allowed(): Effect.Effect<ReadonlyArray<AllowedCommand>> {
    return Effect.sync(() =>
      Array.from(
        this.allowList.byName.values(),
        (e): AllowedCommand => e.path === undefined ? { name: e.name } : { name: e.name, path: e.path }
      )
    )
  }

  setAllowed(allowed: ReadonlyArray<string | AllowedCommand>): Effect.Effect<void, ValidationError> {
    return Effect.suspend(() => {
      const checked = checkAllowed("allowed", allowed)
      if (Either.isLeft(checked)) return Effect.fail(checked.left)
      this.allowList = checked.right
      this.dropResults()
      return Effect.void
    })
  }

  get clearCache(): Effect.Effect<void> {
    return Effect.sync(() => this.dropResults())
  }

  private dropResults(): void {
    for (const [key, entry] of this.cache) {
      if (entry._tag === "Ready") this.cache.delete(key)
    }
  }

  get stats(): Effect.Effect<Stats> {
    return Effect.sync(() => {
      const now = this.clock.unsafeCurrentTimeMillis()
      let cacheSize = 0
      for (const entry of this.cache.values()) if (entry._tag === "Ready" && now < entry.expiresAt) cacheSize++
      return {
        name: this.config.name,
        runs: this.runs,
        succeeded: this.succeeded,
        failed: this.failed,
        timeouts: this.timeouts,
        cacheHits: this.cacheHits,
        coalesced: this.coalesced,
        rejected: this.rejected,
        notAllowed: this.notAllowed,
        active: this.active,
        cacheSize,
        allowed: Array.from(this.allowList.byName.keys())
      }
    })
  }
}

// ---------------------------------------------------------------------------------------------
// Constructors and layers
// ---------------------------------------------------------------------------------------------

/**
 * Makes a runner in the current scope (closing it kills the processes still running); bad
 * options fail with `ValidationError` naming the field.
 */
export const make = (
  options: Options = {}
): Effect.Effect<Service, ValidationError, CommandExecutor.CommandExecutor | Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* resolve(options)
    const bulkhead = yield* Bulkhead.make({ maxConcurrent: config.maxConcurrent, maxQueued: 0, name: config.name })
    const executor = yield* CommandExecutor.CommandExecutor
    const scope = yield* Effect.scope
    const clock = yield* Effect.clock
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    return new Runner(config, executor, bulkhead, scope, clock, telemetry)
  })

/** The `CommandRunner` service over the `CommandExecutor` in the context. */
export const layer = (
  options: Options = {}
): Layer.Layer<CommandRunner, ValidationError, CommandExecutor.CommandExecutor> => Layer.scoped(CommandRunner, make(options))

/** The `CommandRunner` service over Node's command executor. */
export const layerNode = (options: Options = {}): Layer.Layer<CommandRunner, ValidationError> =>
  Layer.provide(layer(options), Layer.provide(NodeCommandExecutor.layer, NodeFileSystem.layer))

/** Runs a command with the `CommandRunner` in the context. */
export const run = (
  command: string,
  args?: ReadonlyArray<string>,
  options?: RunOptions
): Effect.Effect<CommandResult, RunError, CommandRunner> =>
  Effect.flatMap(CommandRunner, (runner) => runner.run(command, args, options))

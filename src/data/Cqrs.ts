/**
 * CQRS helpers: commands (state-changing operations) and queries (reads, optionally cached),
 * each with a Schema for its parameters, timing telemetry and metrics (the original's
 * `Foundation.CQRS`, `defcommand` / `defquery`).
 *
 * Guarantees
 * - Parameters are decoded with the Schema before anything runs, with every issue reported: bad
 *   input fails with one `ValidationError` whose `field` is `<name>.<path>` (e.g.
 *   `create_user.address.zip`; `<name>` alone for the root) and whose `issues` list them all;
 *   `execute` never runs then. Optional fields (`Schema.optional`) may be absent (the original
 *   ran type rules on `nil` and rejected them).
 * - `execute`'s own failures (and defects, interruptions) pass through untouched; nothing else is
 *   added to the error channel but `ValidationError`.
 * - Secrets never reach events or error messages: the params shown in events go through
 *   `redact` (fields named like password / passwd / secret / token / api key / authorization /
 *   credential, at any depth and in arrays, and `Redacted` values, become "[REDACTED]"), and the
 *   values quoted by validation messages are redacted the same way (a value under a secret field
 *   is never quoted). Custom Schema messages that print values themselves are the caller's
 *   responsibility, as are secret fields with other names: declare those `Schema.Redacted`.
 * - Query caching (`cacheTtl`) goes through the query's own `Cache` and its `getOrCompute`:
 *   concurrent fetches of the same params run `execute` once; failures are never cached; an
 *   entry is served for `cacheTtl` exactly (time from `Clock`). The key is the query name and the
 *   canonical JSON (object keys sorted) of the ENCODED params (so key order, excess properties
 *   and defaults do not split entries), or `<name>:<cacheKey(params)>`.
 * - `cache_hit` is exact (the original looked the key up a second time after executing): it is
 *   true exactly when this call ran no `execute` because the cache served it, either from a
 *   stored entry (`coalesced: false`) or from the computation of another call that was still
 *   running when this call started (`coalesced: true`, the waiters of a single flight; they
 *   share its outcome, a failure included). A call whose own `execute` ran is a miss, including
 *   a waiter that took over a computation whose fiber was interrupted. Uncached queries and
 *   rejected params report `cache_hit: false`.
 *
 * Why a query owns its cache (rather than taking a shared one): the cache's keys, value type and
 * error type are the query's, `invalidateAll` can clear it without touching other queries, its
 * lifetime is the scope the query is defined in, and its keys (which may hold parameter values,
 * secrets included) never leave it (it emits no cache events: `telemetry: "none"`). Hence
 * `defineQuery` always needs a `Scope` (a simple signature that does not change when a TTL is
 * added; an uncached query allocates no cache and no fiber). `defineCommand` needs none.
 * Both are validated constructors (an `Effect` failing with `ValidationError` naming the
 * option) that capture the `Clock` and the optional `Telemetry` service when called.
 *
 * Telemetry (names as in the original; see `events`): `foundation.cqrs.command.started`
 * (metadata { command, params (redacted, decoded) }; only for valid params),
 * `foundation.cqrs.command.completed` (measurements { duration_us, duration (ms) }; metadata
 * { command, success, error? (the failure's `_tag`, "Defect" or "Interrupted") }), and
 * `foundation.cqrs.query.executed` (same measurements; metadata { query, cache_hit, coalesced,
 * success, error? }). Durations are measured with `Clock.unsafeCurrentTimeNanos`; `duration` is
 * in milliseconds like every other event's (the telemetry histogram reads it as such), and
 * `duration_us` is the original's microseconds. Events carry the `ErrorContext` correlation id.
 *
 * Metrics (made once per command / query): `foundation_cqrs_commands_total{command, outcome}`
 * and `foundation_cqrs_queries_total{query, outcome}` (outcome: success | failure | invalid |
 * interrupted; a defect is a failure), `foundation_cqrs_command_duration_us{command}` and
 * `foundation_cqrs_query_duration_us{query}` (histograms of calls that were not rejected or
 * interrupted), `foundation_cqrs_query_cache_hits_total{query, source=stored|coalesced}` and
 * `foundation_cqrs_query_cache_misses_total{query}` (cached queries, calls that completed).
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import type * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as ErrorContext from "../errors/ErrorContext.js"
import { ValidationError, type ValidationIssue } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Cache from "../infra/Cache.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/** The telemetry events of commands and queries (the original's `[:foundation, :cqrs, …]`). */
export const events = Events.names.cqrs

// ---------------------------------------------------------------------------------------------
// Redaction
// ---------------------------------------------------------------------------------------------

/** Field names whose values are secrets. */
export const secretFieldPattern: RegExp = /password|passwd|secret|token|api[_-]?key|authorization|credential/i

/** What a secret is shown as. */
export const REDACTED = "[REDACTED]"

/** What a reference back to an enclosing object is shown as. */
export const CIRCULAR = "[Circular]"

/** Past this nesting depth values are shown as this (deep enough for params; avoids stack overflows). */
const MAX_DEPTH = 64
const TOO_DEEP = "[MaxDepth]"

/** True when a field of this name holds a secret. */
export const isSecretField = (name: string): boolean => secretFieldPattern.test(name)

/** Marks a copy in progress (its object is an ancestor of the value being copied). */
const inProgress: unique symbol = Symbol("effect-foundation/Cqrs/inProgress")

/**
 * A deep copy of `value` safe to log: every field whose name matches `secretFieldPattern` (at any
 * depth, in arrays, `Map`s and `Set`s too) and every `Redacted` value becomes "[REDACTED]".
 * A reference to an object being copied (a cycle) becomes "[Circular]"; an object reached twice
 * without a cycle is copied once and shared, so the copy takes linear time. Class instances
 * become plain objects of their own enumerable fields (an `Error` keeps `name` and `message`);
 * dates are copied; functions, binary views and primitives are kept as they are.
 */
export const redact = (value: unknown): unknown => copy(value, new Map(), 0)

const copy = (value: unknown, seen: Map<object, unknown>, depth: number): unknown => {
  if (typeof value !== "object" || value === null) return value
  if (Redacted.isRedacted(value)) return REDACTED
  const known = seen.get(value)
  if (known !== undefined) return known === inProgress ? CIRCULAR : known
  if (depth >= MAX_DEPTH) return TOO_DEEP
  if (value instanceof Date) return new Date(value.getTime())
  if (ArrayBuffer.isView(value)) return value
  seen.set(value, inProgress)
  let out: unknown
  if (Array.isArray(value)) {
    out = value.map((item) => copy(item, seen, depth + 1))
  } else if (value instanceof Map) {
    const map = new Map<unknown, unknown>()
    for (const [k, v] of value) {
      map.set(k, typeof k === "string" && isSecretField(k) ? REDACTED : copy(v, seen, depth + 1))
    }
    out = map
  } else if (value instanceof Set) {
    const set = new Set<unknown>()
    for (const v of value) set.add(copy(v, seen, depth + 1))
    out = set
  } else {
    const record: Record<string, unknown> = value instanceof Error ? { name: value.name, message: value.message } : {}
    for (const key of Object.keys(value)) {
      record[key] = isSecretField(key) ? REDACTED : copy((value as Record<string, unknown>)[key], seen, depth + 1)
    }
    out = record
  }
  seen.set(value, out)
  return out
}

/**
 * The issue tree with every value it quotes redacted: values under a secret field (a `Pointer`
 * through one) become "[REDACTED]", others go through `redact`. The formatter then quotes
 * these, so validation messages never show a secret.
 */
const redactIssue = (issue: ParseResult.ParseIssue, secret: boolean): ParseResult.ParseIssue => {
  const actual = (u: unknown): unknown => secret ? REDACTED : redact(u)
  switch (issue._tag) {
    case "Type":
      return new ParseResult.Type(issue.ast, actual(issue.actual), issue.message)
    case "Forbidden":
      return new ParseResult.Forbidden(issue.ast, actual(issue.actual), issue.message)
    case "Unexpected":
      return new ParseResult.Unexpected(actual(issue.actual), issue.message)
    case "Missing":
      return issue
    case "Pointer": {
      const keys: ReadonlyArray<PropertyKey> = Array.isArray(issue.path) ? issue.path : [issue.path as PropertyKey]
      const inner = secret || keys.some((k) => typeof k === "string" && isSecretField(k))
      return new ParseResult.Pointer(issue.path, actual(issue.actual), redactIssue(issue.issue, inner))
    }
    case "Refinement":
      return new ParseResult.Refinement(issue.ast, actual(issue.actual), issue.kind, redactIssue(issue.issue, secret))
    case "Transformation":
      return new ParseResult.Transformation(issue.ast, actual(issue.actual), issue.kind, redactIssue(issue.issue, secret))
    case "Composite": {
      const issues = issue.issues
      const mapped: ParseResult.SingleOrNonEmpty<ParseResult.ParseIssue> = Array.isArray(issues)
        ? [redactIssue(issues[0], secret), ...issues.slice(1).map((i) => redactIssue(i, secret))]
        : redactIssue(issues as ParseResult.ParseIssue, secret)
      return new ParseResult.Composite(issue.ast, actual(issue.actual), mapped, issue.output)
    }
  }
}

/** A parse error as one `ValidationError` listing every issue, fields prefixed by `name`, values redacted. */
const validationError = (name: string, error: ParseResult.ParseError): ValidationError => {
  const issues: ReadonlyArray<ValidationIssue> = ParseResult.ArrayFormatter.formatIssueSync(
    redactIssue(error.issue, false)
  ).map((issue) => ({ field: [name, ...issue.path.map(String)].join("."), reason: issue.message }))
  const first = issues[0] ?? { field: name, reason: "is invalid" }
  return new ValidationError({ field: first.field, reason: first.reason, issues })
}

// ---------------------------------------------------------------------------------------------
// Canonical JSON (cache keys)
// ---------------------------------------------------------------------------------------------

/**
 * A stable JSON rendering: object keys sorted, `undefined` fields omitted (as `JSON.stringify`
 * does), arrays in order, dates as ISO strings, bigints as `"<n>n"`, non-finite numbers as
 * `null`, a cycle as "[Circular]". Equal encoded params give equal strings whatever the order of
 * their keys.
 */
export const canonicalJson = (value: unknown): string => canonical(value, new Set())

const canonical = (value: unknown, path: Set<object>): string => {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value)
    case "number":
      return Number.isFinite(value) ? JSON.stringify(value) : "null"
    case "boolean":
      return value ? "true" : "false"
    case "bigint":
      return JSON.stringify(`${value}n`)
    case "undefined":
    case "function":
    case "symbol":
      return "null"
  }
  if (typeof value !== "object" || value === null) return "null"
  if (value instanceof Date) return JSON.stringify(Number.isNaN(value.getTime()) ? null : value.toISOString())
  if (path.has(value)) return JSON.stringify(CIRCULAR)
  path.add(value)
  let out: string
  if (Array.isArray(value)) {
    out = `[${value.map((item) => canonical(item, path)).join(",")}]`
  } else {
    const record = value as Record<string, unknown>
    const parts: Array<string> = []
    for (const key of Object.keys(record).sort()) {
      const v = record[key]
      if (v === undefined || typeof v === "function" || typeof v === "symbol") continue
      parts.push(`${JSON.stringify(key)}:${canonical(v, path)}`)
    }
    out = `{${parts.join(",")}}`
  }
  path.delete(value)
  return out
}

// ---------------------------------------------------------------------------------------------
// Shared plumbing
// ---------------------------------------------------------------------------------------------

/** How a call ended, for metrics. */
export type Outcome = "success" | "failure" | "invalid" | "interrupted"

const outcomes: ReadonlyArray<Outcome> = ["success", "failure", "invalid", "interrupted"]

/** Histogram boundaries in microseconds: 10 µs … ~84 s. */
const durationBoundaries = MetricBoundaries.exponential({ start: 10, factor: 2, count: 24 })

type Histogram = Metric.Metric<MetricKeyType.MetricKeyType.Histogram, number, unknown>

const empty: Readonly<Record<string, never>> = {}

/** The `_tag` of a failure, "Defect" or "Interrupted". */
const errorTag = (cause: Cause.Cause<unknown>): string => {
  if (Cause.isInterruptedOnly(cause)) return "Interrupted"
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    return Predicate.hasProperty(error, "_tag") && typeof error._tag === "string" ? error._tag : "UnknownError"
  }
  return "Defect"
}

const outcomeOf = (exit: Exit.Exit<unknown, unknown>): Outcome =>
  Exit.isSuccess(exit) ? "success" : Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "failure"

/** The correlation id of the fiber's operation context, if any. */
const correlationIdOf = (fiber: Fiber.RuntimeFiber<unknown, unknown>): string | undefined => {
  const context = fiber.getFiberRef(ErrorContext.currentContext)
  return Option.isSome(context) ? context.value.correlationId : undefined
}

/** Elapsed time since `start` (nanoseconds), as the events' measurements. */
const measure = (clock: Clock.Clock, start: bigint): { readonly duration_us: number; readonly duration: number } => {
  const nanos = Number(clock.unsafeCurrentTimeNanos() - start)
  return { duration_us: nanos / 1000, duration: nanos / 1_000_000 }
}

/** Common checks of the options of both kinds; `kind` names the fields (`command.name`, ...). */
const checkCommon = (
  kind: "command" | "query",
  options: { readonly name: unknown; readonly params: unknown; readonly execute: unknown }
): Either.Either<string, ValidationError> =>
  Either.gen(function*() {
    const name = yield* Validation.nonEmptyString(`${kind}.name`, options.name)
    if (!Schema.isSchema(options.params)) return yield* Validation.invalid(`${kind}.params`, "must be a Schema")
    if (typeof options.execute !== "function") return yield* Validation.invalid(`${kind}.execute`, "must be a function")
    return name
  })

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

/** Options of `defineCommand`. */
export interface CommandOptions<P, I, A, E, R> {
  /** Names the command in events, metrics and error fields. */
  readonly name: string
  /** Decodes the input of `dispatch` (every issue is reported). */
  readonly params: Schema.Schema<P, I>
  /** Performs the command with decoded params. */
  readonly execute: (params: P) => Effect.Effect<A, E, R>
}

/** A command: decoded, timed and counted; see the module doc. */
export interface Command<P, I, A, E = never, R = never> {
  readonly name: string
  readonly params: Schema.Schema<P, I>
  /** Decodes `input` (failing with `ValidationError` naming the field) and runs `execute`. */
  dispatch(input: unknown): Effect.Effect<A, E | ValidationError, R>
}

interface CommandMetrics {
  readonly outcomes: Readonly<Record<Outcome, Metric.Metric.Counter<number>>>
  readonly duration: Histogram
}

const commandMetrics = (command: string): CommandMetrics => ({
  outcomes: Object.fromEntries(outcomes.map((outcome) => [
    outcome,
    MetricKit.counter("foundation_cqrs_commands_total", {
      description: "Commands dispatched, by outcome",
      tags: { command, outcome }
    })
  ])) as Record<Outcome, Metric.Metric.Counter<number>>,
  duration: MetricKit.histogram("foundation_cqrs_command_duration_us", durationBoundaries, {
    description: "Duration of dispatched commands (valid params), in microseconds",
    tags: { command }
  })
})

/**
 * Defines a command. Bad options fail with `ValidationError` (`command.name`, `command.params`,
 * `command.execute`). The `Clock` and the `Telemetry` service (if any) are taken from the
 * context here.
 */
export const defineCommand = <P, I, A, E = never, R = never>(
  options: CommandOptions<P, I, A, E, R>
): Effect.Effect<Command<P, I, A, E, R>, ValidationError> =>
  Effect.gen(function*() {
    const name = yield* checkCommon("command", options)
    const clock = yield* Effect.clock
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const decode = Schema.decodeUnknownEither(options.params, { errors: "all" })
    const execute = options.execute
    const metrics = commandMetrics(name)

    /** Counts and reports the end of a call; one synchronous step. */
    const completed = (
      start: bigint,
      outcome: Outcome,
      error: string | undefined,
      correlationId: string | undefined
    ): void => {
      const measured = measure(clock, start)
      MetricKit.bump(metrics.outcomes[outcome])
      if (outcome === "success" || outcome === "failure") MetricKit.observe(metrics.duration, measured.duration_us)
      telemetry?.unsafeEmit(
        events.commandCompleted,
        measured,
        error === undefined ? { command: name, success: true } : { command: name, success: false, error },
        correlationId
      )
    }

    const command: Command<P, I, A, E, R> = {
      name,
      params: options.params,
      dispatch: (input) =>
        Effect.withFiberRuntime((fiber) => {
          const start = clock.unsafeCurrentTimeNanos()
          const correlationId = correlationIdOf(fiber)
          const decoded = decode(input)
          if (Either.isLeft(decoded)) {
            const error = validationError(name, decoded.left)
            completed(start, "invalid", error._tag, correlationId)
            return Effect.fail(error)
          }
          const params = decoded.right
          telemetry?.unsafeEmit(events.commandStarted, empty, { command: name, params: redact(params) }, correlationId)
          return Effect.onExit(
            Effect.suspend(() => execute(params)),
            (exit) =>
              Effect.sync(() =>
                completed(start, outcomeOf(exit), Exit.isSuccess(exit) ? undefined : errorTag(exit.cause), correlationId)
              )
          )
        })
    }
    return command
  })

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/** Options of the cache a query makes for itself (its TTL is `cacheTtl`). */
export interface QueryCacheOptions {
  /** Most entries (default 100 000; least recently used evicted first). */
  readonly maxSize?: number | undefined
  readonly eviction?: Cache.Eviction | undefined
  /** How often expired entries are swept (default 60 s). */
  readonly cleanupInterval?: Duration.DurationInput | undefined
}

/** Options of `defineQuery`. */
export interface QueryOptions<P, I, A, E, R> extends CommandOptions<P, I, A, E, R> {
  /** Caches successful results for this long (positive, or `Duration.infinity`); absent: no cache. */
  readonly cacheTtl?: Duration.DurationInput | undefined
  /**
   * The key of decoded params in the query's cache (default: the canonical JSON of the encoded
   * params, prefixed by the query name). Must be pure and total and return a string.
   */
  readonly cacheKey?: ((params: P) => string) | undefined
  /** Options of the query's cache (used only with `cacheTtl`). */
  readonly cache?: QueryCacheOptions | undefined
}

/** A query: decoded, timed, counted, and cached when it has a `cacheTtl`; see the module doc. */
export interface Query<P, I, A, E = never, R = never> {
  readonly name: string
  readonly params: Schema.Schema<P, I>
  /** True when results are cached. */
  readonly cached: boolean
  /** Decodes `input` and returns the cached result for these params, or runs `execute`. */
  fetch(input: unknown): Effect.Effect<A, E | ValidationError, R>
  /** Drops the cached result for these params; true when there was one (false without a cache). */
  invalidate(input: unknown): Effect.Effect<boolean, ValidationError>
  /** Drops every cached result of the query; returns how many there were. */
  readonly invalidateAll: Effect.Effect<number>
}

/** A cached value with the number of the computation that produced it (see `completions`). */
interface Stamped<A> {
  readonly value: A
  readonly completion: number
}

interface QueryMetrics {
  readonly outcomes: Readonly<Record<Outcome, Metric.Metric.Counter<number>>>
  readonly duration: Histogram
  readonly storedHits: Metric.Metric.Counter<number>
  readonly coalescedHits: Metric.Metric.Counter<number>
  readonly misses: Metric.Metric.Counter<number>
}

const queryMetrics = (query: string): QueryMetrics => {
  const hits = (source: string) =>
    MetricKit.counter("foundation_cqrs_query_cache_hits_total", {
      description: "Query calls served by the cache, by source (stored entry, or another call's computation)",
      tags: { query, source }
    })
  return {
    outcomes: Object.fromEntries(outcomes.map((outcome) => [
      outcome,
      MetricKit.counter("foundation_cqrs_queries_total", { description: "Queries fetched, by outcome", tags: { query, outcome } })
    ])) as Record<Outcome, Metric.Metric.Counter<number>>,
    duration: MetricKit.histogram("foundation_cqrs_query_duration_us", durationBoundaries, {
      description: "Duration of fetched queries (valid params), in microseconds",
      tags: { query }
    }),
    storedHits: hits("stored"),
    coalescedHits: hits("coalesced"),
    misses: MetricKit.counter("foundation_cqrs_query_cache_misses_total", {
      description: "Query calls of a cached query that ran execute",
      tags: { query }
    })
  }
}

/**
 * Defines a query; with `cacheTtl`, its cache lives in the current scope. Bad options fail with
 * `ValidationError` (`query.name`, `query.params`, `query.execute`, `query.cacheTtl`,
 * `query.cacheKey`, `query.cache.maxSize`, ...). The `Clock` and the `Telemetry` service (if
 * any) are taken from the context here.
 */
export const defineQuery = <P, I, A, E = never, R = never>(
  options: QueryOptions<P, I, A, E, R>
): Effect.Effect<Query<P, I, A, E, R>, ValidationError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = yield* checkCommon("query", options)
    const ttl = options.cacheTtl === undefined
      ? undefined
      : yield* Cache.positiveDuration("query.cacheTtl", options.cacheTtl)
    const cacheKey = options.cacheKey
    if (cacheKey !== undefined && typeof cacheKey !== "function") {
      return yield* Validation.invalid("query.cacheKey", "must be a function")
    }
    const cacheOptions = {
      ...options.cache,
      name: `cqrs.${name}`,
      ...(ttl === undefined ? {} : { ttl }),
      telemetry: "none" as const
    }
    yield* Either.mapLeft(
      Cache.validate(cacheOptions),
      (e) => new ValidationError({ field: e.field.replace(/^cache\./, "query.cache."), reason: e.reason })
    )
    const clock = yield* Effect.clock
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const cache = ttl === undefined ? undefined : yield* Cache.make<string, Stamped<A>, E>(cacheOptions)
    return makeQuery(name, options, cache, clock, telemetry)
  })

const makeQuery = <P, I, A, E, R>(
  name: string,
  options: QueryOptions<P, I, A, E, R>,
  cache: Cache.Cache<string, Stamped<A>, E> | undefined,
  clock: Clock.Clock,
  telemetry: Telemetry.Service | undefined
): Query<P, I, A, E, R> => {
  const decode = Schema.decodeUnknownEither(options.params, { errors: "all" })
  const encode = Schema.encodeEither(options.params)
  const execute = options.execute
  const cacheKey = options.cacheKey
  const metrics = queryMetrics(name)
  /**
   * Computations of this query that have succeeded so far. Read and written only inside
   * synchronous steps. A call notes it when it starts; a value stamped with a larger number was
   * computed by an `execute` still running when the call started (the call was coalesced).
   */
  let completions = 0

  /** Decoded params and their cache key, or the `ValidationError`. */
  const prepare = (input: unknown): Either.Either<{ readonly params: P; readonly key: string }, ValidationError> => {
    const decoded = decode(input)
    if (Either.isLeft(decoded)) return Either.left(validationError(name, decoded.left))
    const params = decoded.right
    if (cache === undefined) return Either.right({ params, key: "" })
    if (cacheKey !== undefined) {
      const custom: unknown = cacheKey(params)
      return typeof custom === "string"
        ? Either.right({ params, key: `${name}:${custom}` })
        : Validation.invalid(`${name}.cacheKey`, `must return a string, got ${typeof custom}`)
    }
    const encoded = encode(params)
    return Either.isLeft(encoded)
      ? Either.left(validationError(name, encoded.left))
      : Either.right({ params, key: `${name}:${canonicalJson(encoded.right)}` })
  }

  /** Counts and reports the end of a call; one synchronous step. */
  const executed = (
    start: bigint,
    outcome: Outcome,
    error: string | undefined,
    hit: "stored" | "coalesced" | "miss" | undefined,
    correlationId: string | undefined
  ): void => {
    const measured = measure(clock, start)
    MetricKit.bump(metrics.outcomes[outcome])
    if (outcome === "success" || outcome === "failure") {
      MetricKit.observe(metrics.duration, measured.duration_us)
      if (hit !== undefined) {
        MetricKit.bump(hit === "stored" ? metrics.storedHits : hit === "coalesced" ? metrics.coalescedHits : metrics.misses)
      }
    }
    const cacheHit = hit === "stored" || hit === "coalesced"
    telemetry?.unsafeEmit(
      events.queryExecuted,
      measured,
      error === undefined
        ? { query: name, cache_hit: cacheHit, coalesced: hit === "coalesced", success: true }
        : { query: name, cache_hit: cacheHit, coalesced: hit === "coalesced", success: false, error },
      correlationId
    )
  }

  const fetch = (input: unknown): Effect.Effect<A, E | ValidationError, R> =>
    Effect.withFiberRuntime((fiber) => {
      const start = clock.unsafeCurrentTimeNanos()
      const correlationId = correlationIdOf(fiber)
      const prepared = prepare(input)
      if (Either.isLeft(prepared)) {
        executed(start, "invalid", prepared.left._tag, undefined, correlationId)
        return Effect.fail(prepared.left)
      }
      const { key, params } = prepared.right
      if (cache === undefined) {
        return Effect.onExit(
          Effect.suspend(() => execute(params)),
          (exit) =>
            Effect.sync(() =>
              executed(start, outcomeOf(exit), Exit.isSuccess(exit) ? undefined : errorTag(exit.cause), undefined, correlationId)
            )
        )
      }
      const startedAfter = completions
      // Set when this call's own execute runs (the cache runs a computation in the caller's fiber).
      let ran = false
      const compute = Effect.map(
        Effect.suspend(() => {
          ran = true
          return execute(params)
        }),
        (value): Stamped<A> => ({ value, completion: ++completions })
      )
      return Effect.map(
        Effect.onExit(cache.getOrCompute(key, compute), (exit) =>
          Effect.sync(() => {
            const hit = ran
              ? "miss"
              : Exit.isSuccess(exit)
              ? exit.value.completion > startedAfter ? "coalesced" : "stored"
              // A failure is never stored: one reaching a call that ran nothing is a shared one.
              : "coalesced"
            executed(start, outcomeOf(exit), Exit.isSuccess(exit) ? undefined : errorTag(exit.cause), hit, correlationId)
          })),
        (stamped) => stamped.value
      )
    })

  return {
    name,
    params: options.params,
    cached: cache !== undefined,
    fetch,
    invalidate: (input) =>
      Effect.suspend(() => {
        const prepared = prepare(input)
        if (Either.isLeft(prepared)) return Effect.fail(prepared.left)
        return cache === undefined ? Effect.succeed(false) : cache.delete(prepared.right.key)
      }),
    invalidateAll: cache === undefined ? Effect.succeed(0) : cache.clear
  }
}

/**
 * ConnectionManager: named HTTP connection pools over `@effect/platform`'s `HttpClient`, each
 * with its own undici `Agent` (so its own connection limit), base URL, default headers, time
 * limit, retry policy and circuit breaker (the original's Finch-based `ConnectionManager`, with
 * its sizing actually applied and the resilience it only promised).
 *
 * `request(pool, request, options?)` takes an `HttpClientRequest` whose URL is a path relative to
 * the pool's base URL (`HttpClientRequest.get("/users/1")`) and returns the whole response
 * (status, headers, body bytes): the body is read inside the time limit, so a returned response
 * holds no connection. Per attempt, in the order of `Protect`:
 *
 * ```
 * retry ─► circuit breaker ─► timeout ─► HTTP exchange (request + body)
 * ```
 *
 * Two transports, one behaviour: a request whose body is empty or in memory, on a pool without
 * tracing, goes straight to the pool's undici `Agent` (`internal/undiciExchange.ts`: breaker,
 * deadline and request set up in one step through undici's dispatch API; the retry loop is
 * entered only after a first failure), about 0.9× a bare undici `request(url)` on loopback; a
 * streamed body or a tracing pool goes through the platform `HttpClient` (spans, W3C trace
 * headers), about 2× (bench/RESULTS.md).
 *
 * Guarantees:
 * - Requests run in the caller's fiber (on the HttpClient transport, the attempt in a child fiber
 *   the shared `Timeout` forks and joins), never in a shared server: interrupting the caller aborts the HTTP request (undici
 *   closes its socket) and frees its connection slot; the pool's counters are restored on every
 *   exit, interruption included (the original hung callers and leaked `active_requests`).
 * - At most `maxConnections` requests of a pool are on the wire at once (undici queues the rest).
 * - Typed failures: `HttpTransportError` (connection refused, reset, aborted; transient, code
 *   4101), `TimeoutError` (per attempt: default 30 s, overridable per request), `HttpStatusError`
 *   for any status ≥ 400 (category `transient` for 502, 503 and 504, `permanent` for every other
 *   status), `CircuitOpenError` (the pool's breaker is open; the request is not sent),
 *   `NotFoundError` (unknown pool), `ValidationError` (a request URL that is not a relative path,
 *   a bad per-request timeout).
 * - Retries (default: 3 attempts, exponential backoff from 100 ms with full jitter, capped at
 *   2 s) cover transient failures only, and only for idempotent methods (GET, HEAD, OPTIONS,
 *   TRACE, PUT, DELETE) unless the request says `idempotent: true`; `CircuitOpenError` is never
 *   retried. The breaker (default: 5 bad attempts in a row, 60 s open) counts transport
 *   failures, timeouts and 5xx answers; 4xx answers are the caller's problem and count for
 *   nothing.
 * - Bad pool options fail `configure` with `ValidationError` naming the field and change
 *   nothing. Reconfiguring a pool keeps its breaker state and its counters; the old dispatcher is
 *   closed gracefully in the background (its in-flight requests finish). Closing the layer's
 *   scope destroys every dispatcher (in-flight requests are aborted).
 *
 * Metrics, tagged `pool`: `foundation_connection_manager_requests_total` (tag `outcome`: success
 * | failure | interrupted), the gauge `foundation_connection_manager_active_requests` and the
 * histogram `foundation_connection_manager_request_duration_ms` (whole calls, retries included).
 * Telemetry (when the `Telemetry` service is in the context when the manager is made): see
 * `events`; the per-request event only for pools with `requestEvents: true` (an event costs an
 * envelope per call). No span per request unless a pool sets `tracing: true` (then the
 * platform's client span, with W3C trace propagation).
 */
import type * as Headers from "@effect/platform/Headers"
import type { HttpMethod } from "@effect/platform/HttpMethod"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Undici from "@effect/platform-node/Undici"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import { constTrue, dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type * as MetricKeyType from "effect/MetricKeyType"
import type * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import type * as Scope from "effect/Scope"
import {
  type CircuitOpenError,
  NotFoundError,
  Tagged,
  TimeoutError,
  ValidationError
} from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Exchange from "./internal/undiciExchange.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"
import * as CircuitBreaker from "../resilience/CircuitBreaker.js"
import {
  BreakerKernel,
  type BreakerKernelApi,
  TimeoutKernel,
  type TimeoutKernelApi
} from "../resilience/internal/kernel.js"
import * as Retry from "../resilience/Retry.js"
import * as Timeout from "../resilience/Timeout.js"
import * as config from "./internal/connectionConfig.js"

// ---------------------------------------------------------------------------------------------
// Events, errors, responses
// ---------------------------------------------------------------------------------------------

/** The telemetry events of the connection manager (the original's names). */
export const events = Events.names.connectionManager

/** A response, read whole. */
export interface Response {
  readonly status: number
  readonly headers: Headers.Headers
  readonly body: Uint8Array
  /** The body decoded as UTF-8 (on first read). */
  readonly text: string
}

const decoder = new TextDecoder()

class ResponseImpl implements Response {
  private decoded: string | undefined = undefined
  constructor(readonly status: number, readonly headers: Headers.Headers, readonly body: Uint8Array) {}
  get text(): string {
    return this.decoded ??= decoder.decode(this.body)
  }
}

/** Where a transport failure happened, as the platform reports it. */
export type TransportReason = "Transport" | "Encode" | "Decode" | "EmptyBody" | "StatusCode"

/**
 * The request never got a complete answer: connection refused or reset, DNS failure, aborted,
 * body stream broken. Transient (code 4101, network_error). `cause` is the underlying error.
 */
export class HttpTransportError extends Tagged("HttpTransportError", {
  captureStack: false,
  category: "transient",
  severity: "medium",
  type: "network_error",
  message: "HTTP transport failure"
})<{
  readonly pool: string
  readonly method: string
  readonly url: string
  readonly reason: TransportReason
  readonly cause: unknown
}> {
  override describe() {
    const detail = Predicate.hasProperty(this.cause, "message") && typeof this.cause.message === "string"
      ? `: ${this.cause.message}`
      : ""
    return `${this.method} ${this.url} failed (pool "${this.pool}", ${this.reason})${detail}`
  }
}

/** The categories an HTTP status maps to. */
export type StatusCategory = "transient" | "permanent"

/** True for the statuses worth retrying: 502, 503, 504. */
export const isTransientStatus = (status: number): boolean => status === 502 || status === 503 || status === 504

/**
 * The server answered with a status ≥ 400. Category `transient` for 502, 503 and 504 (retried,
 * counted by the breaker), `permanent` otherwise (not retried; 5xx count for the breaker, 4xx do
 * not). Code 4201 (external_service_error). The whole response is kept.
 */
export class HttpStatusError extends Tagged("HttpStatusError", {
  captureStack: false,
  // The category depends on the status (see the field below); declared wide here.
  category: "permanent" as StatusCategory,
  severity: "medium",
  type: "external_service_error",
  message: "HTTP error status"
})<{
  readonly pool: string
  readonly method: string
  readonly url: string
  readonly status: number
  readonly response: Response
}> {
  override readonly category: StatusCategory = isTransientStatus(this.status) ? "transient" : "permanent"
  override describe() {
    return `${this.method} ${this.url} answered ${this.status} (pool "${this.pool}")`
  }
}

/** What `request` can fail with. */
export type RequestError =
  | HttpTransportError
  | HttpStatusError
  | TimeoutError
  | CircuitOpenError
  | NotFoundError
  | ValidationError

/** What one attempt can fail with, before the breaker. */
type AttemptError = HttpTransportError | HttpStatusError | TimeoutError | ValidationError

/** The breaker counts what the dependency did wrong: transport failures, timeouts, 5xx. */
const countsForBreaker = (error: AttemptError): boolean =>
  error._tag === "HttpTransportError" || error._tag === "TimeoutError" ||
  (error._tag === "HttpStatusError" && error.status >= 500)

/** Transient failures are retried; the breaker's rejection never is. */
const retryable = (error: AttemptError | CircuitOpenError): boolean =>
  error._tag !== "CircuitOpenError" && Retry.isRetryable(error)

const idempotentMethods: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"])

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/** Breaker options of a pool (its name is the pool's; what counts as a failure is fixed). */
export type BreakerOptions = Omit<CircuitBreaker.Options<AttemptError>, "name" | "initial" | "isFailure">

/** Options of one pool; defaults in brackets. */
export interface PoolOptions {
  /** `http(s)://host[:port][/prefix]`; request paths are appended to it. */
  readonly baseUrl: string
  /** Connections (so requests on the wire) at once, an integer in 1–10,000 [50]. */
  readonly maxConnections?: number
  /** Time limit of each attempt, body included [30 s]; a request may override it. */
  readonly timeout?: Duration.DurationInput
  /** Time limit to establish a connection [5 s]. */
  readonly connectTimeout?: Duration.DurationInput
  /** Headers sent with every request; a request's own headers win. */
  readonly headers?: Readonly<Record<string, string>>
  /** The retry policy, or `false` for a single attempt [3 attempts, exponential from 100 ms]. */
  readonly retry?: Retry.Policy | false
  /** The breaker's options [consecutive(5), resetAfter 60 s]. */
  readonly breaker?: BreakerOptions
  /** Emit `foundation.connection_manager.request` per call [false]. */
  readonly requestEvents?: boolean
  /** Let the platform's client make a span per request, with trace propagation [false]. */
  readonly tracing?: boolean
}

/** Options of the manager. */
export interface Options {
  /** Pools configured when the manager is made. */
  readonly pools?: Readonly<Record<string, PoolOptions>>
  /** Defaults under every pool's options (headers are merged, the pool's winning). */
  readonly defaults?: Omit<PoolOptions, "baseUrl">
}

/** Per-request settings. */
export interface RequestOptions {
  /** Time limit of each attempt of this request (overrides the pool's). */
  readonly timeout?: Duration.DurationInput
  /** Whether retrying is safe [by method: GET, HEAD, OPTIONS, TRACE, PUT, DELETE]. */
  readonly idempotent?: boolean
}

/** A configured pool, as validated. */
export interface PoolInfo {
  readonly name: string
  /** Origin and path prefix, without a trailing slash. */
  readonly baseUrl: string
  readonly scheme: "http" | "https"
  readonly host: string
  readonly port: number
  readonly maxConnections: number
  readonly timeout: Duration.Duration
  readonly connectTimeout: Duration.Duration
  /** Default headers, names in lowercase. */
  readonly headers: Readonly<Record<string, string>>
  /** The retry policy's name, or undefined for a single attempt. */
  readonly retry: string | undefined
  readonly requestEvents: boolean
  readonly tracing: boolean
}

/** Failures of completed calls, by kind. */
export interface FailureCounts {
  readonly transport: number
  readonly status: number
  readonly timeout: number
  readonly circuitOpen: number
  readonly validation: number
}

/** What a pool has done (counters live as long as the pool is configured). */
export interface PoolStats {
  readonly pool: string
  /** Calls in progress (on the wire, queued for a connection, or between retries). */
  readonly active: number
  /** Calls started. */
  readonly total: number
  readonly successes: number
  readonly failures: number
  readonly failuresBy: FailureCounts
  /** Calls whose caller was interrupted. */
  readonly interrupted: number
  readonly breaker: CircuitBreaker.State
  /**
   * Call durations in ms: the histogram series `foundation_connection_manager_request_duration_ms`
   * of this pool name (shared by every manager in the process that has a pool of that name).
   */
  readonly latency: MetricState.MetricState.Histogram
}

/** Stats of every pool. */
export interface Stats {
  readonly pools: Readonly<Record<string, PoolStats>>
  readonly active: number
  readonly total: number
}

/** The connection manager. */
export interface Service {
  /** Sends `request` (its URL a path relative to the pool's base URL) and reads the response. */
  request(
    pool: string,
    request: HttpClientRequest.HttpClientRequest,
    options?: RequestOptions
  ): Effect.Effect<Response, RequestError>
  /** Adds or replaces a pool. */
  configure(pool: string, options: PoolOptions): Effect.Effect<PoolInfo, ValidationError>
  /** Removes a pool; its dispatcher closes once its in-flight requests are done. */
  remove(pool: string): Effect.Effect<void, NotFoundError>
  readonly pools: Effect.Effect<ReadonlyArray<PoolInfo>>
  readonly stats: Effect.Effect<Stats>
}

/** The `ConnectionManager` service. */
export class ConnectionManager extends Context.Tag("effect-foundation/ConnectionManager")<ConnectionManager, Service>() {}

// ---------------------------------------------------------------------------------------------
// Pools
// ---------------------------------------------------------------------------------------------

/** A pool's validated options, before any resource is made. */
interface Resolved {
  readonly info: PoolInfo
  readonly defaultHeaders: ReadonlyArray<readonly [string, string]>
  readonly retry: Retry.Policy | undefined
  readonly breaker: BreakerOptions
}

const defaultTimeout = Duration.seconds(30)
const defaultConnectTimeout = Duration.seconds(5)

const resolve = (
  name: string,
  options: PoolOptions,
  defaultRetry: Retry.Policy
): Either.Either<Resolved, ValidationError> =>
  Either.gen(function*() {
    yield* Validation.nonEmptyString(config.field("pool"), name)
    const base = yield* config.baseUrl(options.baseUrl)
    const maxConnections = yield* config.count("maxConnections", options.maxConnections, 50, 10_000)
    const timeout = yield* config.duration("timeout", options.timeout, defaultTimeout)
    const connectTimeout = yield* config.duration("connectTimeout", options.connectTimeout, defaultConnectTimeout)
    const defaultHeaders = yield* config.headers(options.headers)
    const requestEvents = yield* config.flag("requestEvents", options.requestEvents, false)
    const tracing = yield* config.flag("tracing", options.tracing, false)
    const retry = options.retry === false ? undefined : options.retry ?? defaultRetry
    if (retry !== undefined && !Retry.isPolicy(retry)) {
      return yield* Validation.invalid(config.field("retry"), "must be a Retry.Policy or false")
    }
    return {
      info: {
        name,
        baseUrl: base.href,
        scheme: base.scheme,
        host: base.host,
        port: base.port,
        maxConnections,
        timeout,
        connectTimeout,
        headers: Object.fromEntries(defaultHeaders),
        retry: retry?.name,
        requestEvents,
        tracing
      },
      defaultHeaders,
      retry,
      breaker: options.breaker ?? {}
    }
  })

/**
 * A pool's counters. A plain structure, read and written only inside single synchronous steps
 * (fibers interleave only between effects, so each step is atomic); kept across reconfiguration.
 */
interface Counters {
  active: number
  total: number
  successes: number
  failures: number
  interrupted: number
  transport: number
  status: number
  timeout: number
  circuitOpen: number
  validation: number
}

const newCounters = (): Counters => ({
  active: 0,
  total: 0,
  successes: 0,
  failures: 0,
  interrupted: 0,
  transport: 0,
  status: 0,
  timeout: 0,
  circuitOpen: 0,
  validation: 0
})

const durationBoundaries = MetricBoundaries.exponential({ start: 0.25, factor: 2, count: 20 })

/** A pool's metric series, made once per pool name. */
class PoolMetrics {
  readonly success: Metric.Metric.Counter<number>
  readonly failure: Metric.Metric.Counter<number>
  readonly interrupted: Metric.Metric.Counter<number>
  readonly active: Metric.Metric.Gauge<number>
  readonly duration: Metric.Metric<MetricKeyType.MetricKeyType.Histogram, number, MetricState.MetricState.Histogram>
  constructor(pool: string) {
    const calls = (outcome: string) =>
      MetricKit.counter("foundation_connection_manager_requests_total", {
        description: "HTTP calls through connection pools, by outcome",
        tags: { pool, outcome }
      })
    this.success = calls("success")
    this.failure = calls("failure")
    this.interrupted = calls("interrupted")
    this.active = MetricKit.gauge("foundation_connection_manager_active_requests", {
      description: "HTTP calls in progress per connection pool",
      tags: { pool }
    })
    this.duration = MetricKit.histogram("foundation_connection_manager_request_duration_ms", durationBoundaries, {
      description: "Duration of HTTP calls through connection pools (retries included), in milliseconds",
      tags: { pool }
    })
  }
}

/** A configured pool. Immutable; replaced as a whole by `configure`. */
interface Pool {
  readonly info: PoolInfo
  readonly defaultHeaders: ReadonlyArray<readonly [string, string]>
  readonly agent: Undici.Agent
  /** The direct path: agent, origin, path prefix, breaker and deadline hooks. */
  readonly route: Exchange.Route<Response, AttemptError>
  readonly client: HttpClient.HttpClient
  readonly breaker: CircuitBreaker.CircuitBreaker<AttemptError>
  readonly retry: Retry.Policy | undefined
  /** The pool's time limit when it differs from the shared `Timeout`'s default, else undefined. */
  readonly timeout: Duration.Duration | undefined
  readonly counters: Counters
  readonly metrics: PoolMetrics
}

/** The request with the pool's base URL prepended and its default headers added under its own. */
const prepare = (pool: Pool, request: HttpClientRequest.HttpClientRequest): HttpClientRequest.HttpClientRequest => {
  const located = HttpClientRequest.prependUrl(request, pool.info.baseUrl)
  const defaults = pool.defaultHeaders
  if (defaults.length === 0) return located
  let missing: Record<string, string> | undefined
  for (const [name, value] of defaults) {
    if (!Object.hasOwn(request.headers, name)) (missing ??= {})[name] = value
  }
  return missing === undefined ? located : HttpClientRequest.setHeaders(located, missing)
}

const transportError = (
  pool: string,
  request: HttpClientRequest.HttpClientRequest,
  error: HttpClientError.HttpClientError
): HttpTransportError | ValidationError =>
  error.reason === "InvalidUrl"
    ? new ValidationError({ field: "request.url", reason: `is not a valid URL: ${request.url}` })
    : new HttpTransportError({
      pool,
      method: request.method,
      url: request.url,
      reason: error.reason,
      cause: error.cause ?? error
    })

/** The response of an exchange, or the status error for a status ≥ 400. */
const answer = (
  pool: { readonly info: PoolInfo },
  method: HttpMethod,
  url: string,
  response: ResponseImpl
): Exit.Exit<Response, HttpStatusError> =>
  response.status < 400 ? Exit.succeed(response) : Exit.fail(
    new HttpStatusError({ pool: pool.info.name, method, url, status: response.status, response })
  )

/** The request's headers over the pool's defaults, as one record (for the direct path). */
const mergedHeaders = (pool: Pool, request: HttpClientRequest.HttpClientRequest): Readonly<Record<string, string>> => {
  if (pool.defaultHeaders.length === 0) return request.headers
  const out: Record<string, string> = {}
  for (const [name, value] of pool.defaultHeaders) out[name] = value
  return Object.assign(out, request.headers)
}

/** The direct path's route of a pool (see `internal/undiciExchange.ts`). */
const routeOf = (
  info: PoolInfo,
  agent: Undici.Agent,
  breaker: CircuitBreaker.CircuitBreaker<AttemptError>,
  timeout: TimeoutKernelApi
): Exchange.Route<Response, AttemptError> => {
  const pool = { info }
  const origin = `${info.scheme}://${info.host.includes(":") ? `[${info.host}]` : info.host}:${info.port}`
  return {
    agent,
    origin,
    prefix: info.baseUrl.slice(new URL(info.baseUrl).origin.length),
    breaker: (breaker as unknown as { readonly [BreakerKernel]: BreakerKernelApi })[BreakerKernel],
    timeout,
    onError: (cause, request) =>
      new HttpTransportError({
        pool: info.name,
        method: request.method,
        url: info.baseUrl + request.url,
        reason: "Transport",
        cause
      }),
    onAnswer: (raw, request) =>
      answer(pool, request.method, info.baseUrl + request.url, new ResponseImpl(raw.status, raw.headers as Headers.Headers, raw.body))
  }
}

/** One exchange: send, read the whole body, fail on a status ≥ 400. */
const exchange = (pool: Pool, request: HttpClientRequest.HttpClientRequest): Effect.Effect<Response, AttemptError> =>
  Effect.flatMap(
    Effect.mapError(pool.client.execute(request), (error) => transportError(pool.info.name, request, error)),
    (response) =>
      Effect.matchEffect(response.arrayBuffer, {
        onFailure: (error) => Effect.fail(transportError(pool.info.name, request, error)),
        onSuccess: (buffer) =>
          answer(pool, request.method, request.url, new ResponseImpl(response.status, response.headers, new Uint8Array(buffer)))
      })
  )

// ---------------------------------------------------------------------------------------------
// The manager
// ---------------------------------------------------------------------------------------------

/**
 * Makes a manager in the current scope (closing it destroys every pool's dispatcher). Fails with
 * `ValidationError` for bad defaults or pools.
 */
export const make = (options: Options = {}): Effect.Effect<Service, ValidationError, Scope.Scope> =>
  Effect.gen(function*() {
    const defaults = options.defaults ?? {}
    const defaultRetry = yield* Retry.exponential({
      name: "connection_manager",
      base: "100 millis",
      cap: "2 seconds",
      maxAttempts: 3,
      jitter: "full"
    })
    // The defaults are checked now, against a placeholder URL, so that bad ones fail the layer.
    yield* resolve("defaults", { ...defaults, baseUrl: "http://localhost" }, defaultRetry)
    yield* CircuitBreaker.make({ ...defaults.breaker, name: "defaults", metrics: false })
    const scope = yield* Effect.scope
    const clock = yield* Effect.clock
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const sharedTimeout = defaults.timeout === undefined ? defaultTimeout : Duration.decode(defaults.timeout)
    // One timer fiber for every pool (a deadline wheel), in this scope.
    const timeout = yield* Timeout.make({ duration: sharedTimeout, name: "connection-manager" })
    const timeoutKernel = (timeout as unknown as { readonly [TimeoutKernel]: TimeoutKernelApi })[TimeoutKernel]

    // Plain structures, read and written only inside single synchronous steps (see Counters).
    const pools = new Map<string, Pool>()
    const metrics = new Map<string, PoolMetrics>()
    /** Every dispatcher not yet closed: live pools' and those draining after a replacement. */
    const open = new Set<Undici.Agent>()
    let closed = false
    const admin = yield* Effect.makeSemaphore(1)
    // Once the manager is closed its dispatchers are gone: retrying would only fail again.
    const retryOptions: Retry.RetryOptions<AttemptError | CircuitOpenError> = {
      while: (error) => !closed && retryable(error)
    }

    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closed = true
        const agents = [...open]
        open.clear()
        pools.clear()
        return Effect.ignore(Effect.tryPromise(() => Promise.allSettled(agents.map((agent) => agent.destroy()))))
      })
    )

    /** Closes a replaced dispatcher gracefully, in the background (destroyed at shutdown if still open). */
    const retire = (agent: Undici.Agent) =>
      Effect.forkIn(
        Effect.tap(Effect.ignore(Effect.tryPromise(() => agent.close())), () => Effect.sync(() => open.delete(agent))),
        scope
      )

    const withTelemetry = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      telemetry === undefined ? effect : Effect.provideService(effect, Telemetry.Telemetry, telemetry)

    const configure = (name: string, poolOptions: PoolOptions): Effect.Effect<PoolInfo, ValidationError> =>
      admin.withPermits(1)(Effect.gen(function*() {
        const merged: PoolOptions = {
          ...defaults,
          ...poolOptions,
          headers: { ...defaults.headers, ...poolOptions.headers }
        }
        const resolved = yield* resolve(name, merged, defaultRetry)
        if (closed) return yield* Effect.dieMessage("ConnectionManager used after its scope closed")
        const previous = pools.get(name)
        const initial = previous === undefined ? undefined : yield* previous.breaker.snapshot
        const breaker = yield* withTelemetry(CircuitBreaker.make<AttemptError>({
          ...resolved.breaker,
          name,
          isFailure: countsForBreaker,
          ...(initial === undefined ? {} : { initial })
        }))
        // Nothing can fail from here on: the dispatcher is made and the pool swapped in one step.
        return yield* Effect.flatMap(
          Effect.sync(() => {
            const info = resolved.info
            const agent = new Undici.Agent({
              connections: info.maxConnections,
              connect: { timeout: Duration.toMillis(info.connectTimeout) }
            })
            open.add(agent)
            const platform = NodeHttpClient.makeUndici(agent)
            let poolMetrics = metrics.get(name)
            if (poolMetrics === undefined) metrics.set(name, poolMetrics = new PoolMetrics(name))
            const pool: Pool = {
              info,
              defaultHeaders: resolved.defaultHeaders,
              agent,
              route: routeOf(info, agent, breaker, timeoutKernel),
              client: info.tracing ? platform : HttpClient.withTracerDisabledWhen(platform, constTrue),
              breaker,
              retry: resolved.retry,
              timeout: Duration.equals(info.timeout, sharedTimeout) ? undefined : info.timeout,
              counters: previous?.counters ?? newCounters(),
              metrics: poolMetrics
            }
            pools.set(name, pool)
            telemetry?.unsafeEmit(events.poolConfigured, { count: 1 }, {
              pool_id: name,
              scheme: info.scheme,
              host: info.host,
              port: info.port,
              max_connections: info.maxConnections
            })
            return info
          }),
          (info) => previous === undefined ? Effect.succeed(info) : Effect.as(retire(previous.agent), info)
        )
      }))

    const remove = (name: string): Effect.Effect<void, NotFoundError> =>
      admin.withPermits(1)(Effect.suspend(() => {
        const pool = pools.get(name)
        if (pool === undefined) return Effect.fail(new NotFoundError({ resource: "connection pool", key: name }))
        pools.delete(name)
        telemetry?.unsafeEmit(events.poolRemoved, { count: 1 }, { pool_id: name })
        return Effect.asVoid(retire(pool.agent))
      }))

    /** Counts a finished call (one synchronous step; runs on every exit, interruption included). */
    const finish = (
      pool: Pool,
      method: string,
      path: string,
      start: bigint,
      exit: Exit.Exit<Response, RequestError>
    ): void => {
      const counters = pool.counters
      const m = pool.metrics
      counters.active--
      MetricKit.set(m.active, counters.active)
      const millis = Number(clock.unsafeCurrentTimeNanos() - start) / 1e6
      MetricKit.observe(m.duration, millis)
      let status: number | "error" = "error"
      let outcome: "success" | "failure" | "interrupted"
      if (Exit.isSuccess(exit)) {
        outcome = "success"
        status = exit.value.status
        counters.successes++
        MetricKit.bump(m.success)
      } else {
        const failure = Cause.failureOption(exit.cause)
        if (failure._tag === "None") {
          if (Cause.isInterruptedOnly(exit.cause)) {
            outcome = "interrupted"
            counters.interrupted++
            MetricKit.bump(m.interrupted)
          } else {
            outcome = "failure" // a defect
            counters.failures++
            MetricKit.bump(m.failure)
          }
        } else {
          outcome = "failure"
          counters.failures++
          MetricKit.bump(m.failure)
          const error = failure.value
          switch (error._tag) {
            case "HttpTransportError":
              counters.transport++
              break
            case "HttpStatusError":
              counters.status++
              status = error.status
              break
            case "TimeoutError":
              counters.timeout++
              break
            case "CircuitOpenError":
              counters.circuitOpen++
              break
            default:
              counters.validation++
          }
        }
      }
      if (pool.info.requestEvents) {
        telemetry?.unsafeEmit(events.request, { duration: millis, count: 1 }, {
          pool_id: pool.info.name,
          method,
          path,
          status,
          outcome
        })
      }
    }

    const request = (
      name: string,
      input: HttpClientRequest.HttpClientRequest,
      options?: RequestOptions
    ): Effect.Effect<Response, RequestError> =>
      Effect.suspend(() => {
        const pool = pools.get(name)
        if (pool === undefined) return Effect.fail(new NotFoundError({ resource: "connection pool", key: name }))
        const path = input.url
        if (path !== "" && path.charCodeAt(0) !== 47 /* "/" */) {
          return Effect.fail(
            new ValidationError({
              field: "request.url",
              reason: `must be a path relative to the pool's base URL, starting with "/", got "${path}"`
            })
          )
        }
        let limit = pool.timeout
        let idempotent = idempotentMethods.has(input.method)
        if (options !== undefined) {
          if (options.timeout !== undefined) {
            const checked = Validation.duration("request.timeout", options.timeout)
            if (Either.isLeft(checked)) return Effect.fail(checked.left)
            limit = checked.right
          }
          if (options.idempotent !== undefined) idempotent = options.idempotent
        }
        const retry = idempotent ? pool.retry : undefined
        const counters = pool.counters
        counters.active++
        counters.total++
        MetricKit.set(pool.metrics.active, counters.active)
        const start = clock.unsafeCurrentTimeNanos()
        const relabel = (error: AttemptError | CircuitOpenError): RequestError =>
          error._tag === "TimeoutError"
            ? new TimeoutError({ timeout: error.timeout, label: `${name} ${input.method} ${path}` })
            : error
        const finished = (exit: Exit.Exit<Response, RequestError>) => Effect.sync(() => finish(pool, input.method, path, start, exit))
        if (!pool.info.tracing && Exchange.supports(input)) {
          // The direct path: breaker, deadline and request in one step, and the bookkeeping in the
          // step that settles it; a retry loop only after a first failure.
          const headers = mergedHeaders(pool, input)
          const millis = Duration.toMillis(limit ?? sharedTimeout)
          const startedAt = retry !== undefined && Duration.isFinite(retry.maxElapsed) ? clock.unsafeCurrentTimeMillis() : undefined
          return Exchange.attempt(pool.route, input, headers, millis, {
            next: (exit): Effect.Effect<Response, RequestError> => {
              if (Exit.isFailure(exit) && retry !== undefined) {
                const again = Exchange.attempt(pool.route, input, headers, millis)
                return Effect.onExit(
                  Effect.mapError(Retry.continueAfter(again, retry, retryOptions, startedAt, exit.cause), relabel),
                  finished
                )
              }
              const final = Exit.mapError(exit, relabel)
              finish(pool, input.method, path, start, final)
              return final
            },
            interrupted: () => finish(pool, input.method, path, start, Exit.interrupt(FiberId.none))
          })
        }
        // Through `HttpClient`, under the shared Timeout (one fork per attempt) and the breaker.
        const guarded = pool.breaker.protect(
          limit === undefined
            ? timeout.apply(exchange(pool, prepare(pool, input)))
            : timeout.apply(exchange(pool, prepare(pool, input)), limit)
        )
        const call = retry !== undefined ? Retry.retry(guarded, retry, retryOptions) : guarded
        return Effect.onExit(Effect.mapError(call, relabel), finished)
      })

    const snapshot = (pool: Pool): Effect.Effect<PoolStats> =>
      Effect.zipWith(pool.breaker.state, Metric.value(pool.metrics.duration), (breaker, latency) => {
        const c = pool.counters
        return {
          pool: pool.info.name,
          active: c.active,
          total: c.total,
          successes: c.successes,
          failures: c.failures,
          failuresBy: {
            transport: c.transport,
            status: c.status,
            timeout: c.timeout,
            circuitOpen: c.circuitOpen,
            validation: c.validation
          },
          interrupted: c.interrupted,
          breaker,
          latency
        }
      })

    const service: Service = {
      request,
      configure,
      remove,
      pools: Effect.sync(() => [...pools.values()].map((pool) => pool.info)),
      stats: Effect.suspend(() =>
        Effect.map(Effect.forEach([...pools.values()], snapshot), (all) => ({
          pools: Object.fromEntries(all.map((s) => [s.pool, s])),
          active: all.reduce((n, s) => n + s.active, 0),
          total: all.reduce((n, s) => n + s.total, 0)
        }))
      )
    }
    for (const [name, poolOptions] of Object.entries(options.pools ?? {})) yield* configure(name, poolOptions)
    return service
  })

/** The `ConnectionManager` service; its dispatchers are destroyed when the layer's scope closes. */
export const layer = (options: Options = {}): Layer.Layer<ConnectionManager, ValidationError> =>
  Layer.scoped(ConnectionManager, make(options))

/**
 * Sends a request through the named pool of the `ConnectionManager` in the context; data-last
 * for pipes: `HttpClientRequest.get("/users").pipe(ConnectionManager.request("api"))`.
 */
export const request: {
  (
    pool: string,
    options?: RequestOptions
  ): (request: HttpClientRequest.HttpClientRequest) => Effect.Effect<Response, RequestError, ConnectionManager>
  (
    request: HttpClientRequest.HttpClientRequest,
    pool: string,
    options?: RequestOptions
  ): Effect.Effect<Response, RequestError, ConnectionManager>
} = dual(
  (args) => Predicate.hasProperty(args[0], HttpClientRequest.TypeId),
  (request: HttpClientRequest.HttpClientRequest, pool: string, options?: RequestOptions) =>
    Effect.flatMap(ConnectionManager, (manager) => manager.request(pool, request, options))
)

/** Adds or replaces a pool of the `ConnectionManager` in the context. */
export const configure = (pool: string, options: PoolOptions): Effect.Effect<PoolInfo, ValidationError, ConnectionManager> =>
  Effect.flatMap(ConnectionManager, (manager) => manager.configure(pool, options))

/** Removes a pool of the `ConnectionManager` in the context. */
export const remove = (pool: string): Effect.Effect<void, NotFoundError, ConnectionManager> =>
  Effect.flatMap(ConnectionManager, (manager) => manager.remove(pool))

/** The pools of the `ConnectionManager` in the context. */
export const pools: Effect.Effect<ReadonlyArray<PoolInfo>, never, ConnectionManager> = Effect.flatMap(
  ConnectionManager,
  (manager) => manager.pools
)

/** The stats of the `ConnectionManager` in the context. */
export const stats: Effect.Effect<Stats, never, ConnectionManager> = Effect.flatMap(
  ConnectionManager,
  (manager) => manager.stats
)

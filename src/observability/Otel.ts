/**
 * Otel: exports the library's traces (the spans of `Effect.withSpan` / `Effect.fn`) and metrics
 * (every Effect `Metric` in the process) to an OpenTelemetry collector over OTLP/HTTP, with the
 * `OtlpTracer` / `OtlpMetrics` modules of `@effect/opentelemetry`: no OpenTelemetry SDK, no
 * span-id → context table, no sweeper (the original bridge's table and its 60 s / 5 min sweep
 * disappear, because Effect spans carry their parent themselves).
 *
 * Guarantees:
 * - Bad options fail the layer's construction with a `ValidationError` naming the field; nothing
 *   is exported and no fiber is started then.
 * - Spans are buffered and sent in batches every `exportInterval` (or as soon as `maxBatchSize`
 *   spans are waiting); metrics are sent as a cumulative snapshot every `exportInterval`.
 * - A failed span has the ERROR status, the first error's message and an `exception` event (and,
 *   unlike raw `OtlpTracer` 0.64.1, is not labelled "interrupted"); an interrupted one is OK.
 * - Closing the layer's scope sends what is pending (ended spans, and a last metric snapshot;
 *   a span still open then is not exported);
 *   each of the two exporters gets at most `shutdownTimeout` for it, and both run at once, so
 *   closing takes about `shutdownTimeout` at worst even when the collector hangs.
 * - The exporters never fail the program: a rejected or failed export is retried (transient
 *   errors, up to 3 times) and then dropped, as `@effect/opentelemetry` does. Unlike the
 *   original (errors rescued and logged at debug), a drop is visible: every export request is
 *   counted in `foundation_otel_exports_total` and every failed one in
 *   `foundation_otel_export_failures_total` (both tagged `service` and `signal`). One limit of
 *   `@effect/opentelemetry` 0.64: after a failed export an exporter pauses for 60 s, and the
 *   spans that end during the pause (the final flush included) are discarded without a request,
 *   so they show in neither counter.
 *
 * Conventions kept from the original: the `service.name` (and `service.version`) resource
 * attributes, span kind from the span (`internal` by default), and a `foundation.component`
 * span attribute set with `withComponent`. Resource attributes from the standard
 * `OTEL_RESOURCE_ATTRIBUTES` environment variable are merged in (the options win).
 */
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as OtlpMetrics from "@effect/opentelemetry/OtlpMetrics"
import * as OtlpSerialization from "@effect/opentelemetry/OtlpSerialization"
import * as OtlpTracer from "@effect/opentelemetry/OtlpTracer"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type { ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"

/** A resource attribute value (numbers must be finite). */
export type AttributeValue = string | number | boolean | bigint | ReadonlyArray<string | number | boolean>

/** How telemetry is encoded on the wire. */
export type Serialization = "json" | "protobuf"

/** Options of the OTLP exporter. */
export interface Options {
  /**
   * The collector's OTLP/HTTP base URL (http or https, no query or fragment), e.g.
   * `http://127.0.0.1:4318`; traces go to `<baseUrl>/v1/traces`, metrics to `<baseUrl>/v1/metrics`.
   */
  readonly baseUrl: string
  /** The `service.name` resource attribute (non-empty) ["effect-foundation"]. */
  readonly serviceName?: string
  /** The `service.version` resource attribute (non-empty) [none]. */
  readonly serviceVersion?: string
  /** More resource attributes; `service.name` / `service.version` have their own options [none]. */
  readonly resourceAttributes?: Readonly<Record<string, AttributeValue>>
  /** HTTP headers sent with every export (e.g. an API key) [none]. */
  readonly headers?: Readonly<Record<string, string>>
  /** How often pending spans and a metric snapshot are sent (> 0, finite) ["5 seconds"]. */
  readonly exportInterval?: Duration.DurationInput
  /** Time each exporter gets to send what is pending when the scope closes (> 0, finite) ["3 seconds"]. */
  readonly shutdownTimeout?: Duration.DurationInput
  /** Spans per export request; reaching it sends at once (an integer ≥ 1) [1000]. */
  readonly maxBatchSize?: number
  /** Wire format ["json"]. */
  readonly serialization?: Serialization
}

/** Validated options, with the defaults filled in. */
export interface Config {
  readonly baseUrl: string
  readonly tracesUrl: string
  readonly metricsUrl: string
  readonly serviceName: string
  readonly serviceVersion: string | undefined
  readonly resourceAttributes: Readonly<Record<string, AttributeValue>>
  readonly headers: Readonly<Record<string, string>>
  readonly exportInterval: Duration.Duration
  readonly shutdownTimeout: Duration.Duration
  readonly maxBatchSize: number
  readonly serialization: Serialization
}

/** The default `service.name`. */
export const defaultServiceName = "effect-foundation"

/** The span attribute naming the library component a span belongs to. */
export const ComponentAttribute = "foundation.component"

/**
 * Validates the options and fills in the defaults; fails with a `ValidationError` naming the
 * first bad field.
 */
export const validate = (options: Options): Either.Either<Config, ValidationError> =>
  Either.gen(function*() {
    const baseUrl = yield* httpUrl("baseUrl", options.baseUrl)
    const serviceName = yield* Validation.optional(
      options.serviceName,
      defaultServiceName,
      (v) => Validation.nonEmptyString("serviceName", v)
    )
    const serviceVersion = options.serviceVersion === undefined
      ? undefined
      : yield* Validation.nonEmptyString("serviceVersion", options.serviceVersion)
    const resourceAttributes = yield* attributes("resourceAttributes", options.resourceAttributes ?? {})
    const headers = yield* httpHeaders("headers", options.headers ?? {})
    const exportInterval = yield* Validation.duration("exportInterval", options.exportInterval ?? "5 seconds")
    const shutdownTimeout = yield* Validation.duration("shutdownTimeout", options.shutdownTimeout ?? "3 seconds")
    const maxBatchSize = yield* Validation.positiveInt("maxBatchSize", options.maxBatchSize ?? 1000)
    const serialization = yield* Validation.oneOf("serialization", options.serialization ?? "json", [
      "json",
      "protobuf"
    ])
    return {
      baseUrl,
      tracesUrl: `${baseUrl}/v1/traces`,
      metricsUrl: `${baseUrl}/v1/metrics`,
      serviceName,
      serviceVersion,
      resourceAttributes,
      headers,
      exportInterval,
      shutdownTimeout,
      maxBatchSize,
      serialization
    }
  })

/**
 * Exports traces and metrics over OTLP/HTTP with the `HttpClient` found in the context (bring
 * your own: `FetchHttpClient.layer`, `NodeHttpClient.layerUndici`, a client with a proxy...).
 * Provide it to the program (or merge it into the application's layer): spans made under it go
 * to the collector. Fails with `ValidationError` when built with bad options.
 */
export const layerFromContext = (options: Options): Layer.Layer<never, ValidationError, HttpClient.HttpClient> =>
  Layer.unwrapEffect(Effect.map(validate(options), exporters))

/**
 * Exports traces and metrics over OTLP/HTTP with Node's HTTP client (`NodeHttpClient.layer`,
 * its own keep-alive agent, released with the layer). Fails with `ValidationError` when built
 * with bad options.
 */
export const layer = (options: Options): Layer.Layer<never, ValidationError> =>
  Layer.unwrapEffect(
    Effect.map(validate(options), (config) => Layer.provide(exporters(config), NodeHttpClient.layer))
  )

/**
 * Sets the `foundation.component` attribute on every span started inside `self` (its own
 * `withSpan` and those of everything it calls).
 */
export const withComponent: {
  (component: string): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, component: string): Effect.Effect<A, E, R>
} = dual(
  2,
  <A, E, R>(self: Effect.Effect<A, E, R>, component: string): Effect.Effect<A, E, R> =>
    Effect.annotateSpans(self, ComponentAttribute, component)
)

// internal

const exporters = (config: Config): Layer.Layer<never, never, HttpClient.HttpClient> => {
  const resource = config.serviceVersion === undefined
    ? { serviceName: config.serviceName, attributes: config.resourceAttributes }
    : { serviceName: config.serviceName, serviceVersion: config.serviceVersion, attributes: config.resourceAttributes }
  const common = {
    resource,
    headers: config.headers,
    exportInterval: config.exportInterval,
    shutdownTimeout: config.shutdownTimeout
  }
  return Layer.mergeAll(
    OtlpTracer.layer({ ...common, url: config.tracesUrl, maxBatchSize: config.maxBatchSize }),
    OtlpMetrics.layer({ ...common, url: config.metricsUrl })
  ).pipe(
    Layer.provide(serialization(config.serialization)),
    Layer.provide(countingClient(config))
  )
}

/**
 * The chosen wire format, correcting one thing on the way: `OtlpTracer` (0.64.1) labels every
 * failed span `span.label = "⚠︎ Interrupted"` and `status.interrupted = true`, whether it was
 * interrupted or failed, so every error would show as an interruption in the trace viewer. Those
 * two attributes are removed from spans with the ERROR status (their status, message and
 * `exception` event stay); spans interrupted without an error have the OK status and keep
 * nothing of the kind either way. The data is built afresh for each export, so editing it in
 * place is safe; an unexpected shape is passed through untouched.
 */
const serialization = (format: Serialization): Layer.Layer<OtlpSerialization.OtlpSerialization> =>
  Layer.effect(
    OtlpSerialization.OtlpSerialization,
    Effect.map(OtlpSerialization.OtlpSerialization, (base) => ({
      traces: (data: unknown) => base.traces(dropFalseInterruptionLabels(data)),
      metrics: base.metrics,
      logs: base.logs
    }))
  ).pipe(Layer.provide(format === "json" ? OtlpSerialization.layerJson : OtlpSerialization.layerProtobuf))

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null

const arrayAt = (u: unknown, key: string): ReadonlyArray<unknown> => {
  const value = isRecord(u) ? u[key] : undefined
  return Array.isArray(value) ? value : []
}

const statusErrorCode = 2

const isFalseInterruptionLabel = (kv: unknown): boolean => {
  if (!isRecord(kv) || !isRecord(kv.value)) return false
  return (kv.key === "span.label" && kv.value.stringValue === "⚠︎ Interrupted") ||
    (kv.key === "status.interrupted" && kv.value.boolValue === true)
}

const dropFalseInterruptionLabels = (data: unknown): unknown => {
  for (const resourceSpans of arrayAt(data, "resourceSpans")) {
    for (const scopeSpans of arrayAt(resourceSpans, "scopeSpans")) {
      for (const span of arrayAt(scopeSpans, "spans")) {
        if (!isRecord(span) || !isRecord(span.status) || span.status.code !== statusErrorCode) continue
        span.attributes = arrayAt(span, "attributes").filter((kv) => !isFalseInterruptionLabel(kv))
      }
    }
  }
  return data
}

type Signal = "traces" | "metrics"

/**
 * The context's HttpClient, counting each export request and each failed one (a transport
 * error, or a response that is not 2xx), so that dropped telemetry shows up in the metrics.
 */
const countingClient = (config: Config): Layer.Layer<HttpClient.HttpClient, never, HttpClient.HttpClient> =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.map(HttpClient.HttpClient, (client) => {
      // Made once per layer, not per export.
      const counters = (signal: Signal) => {
        const tag = (metric: Metric.Metric.Counter<number>) =>
          metric.pipe(Metric.tagged("service", config.serviceName), Metric.tagged("signal", signal))
        return {
          requests: tag(Metric.counter("foundation_otel_exports_total", {
            description: "OTLP export requests sent (retries included)",
            incremental: true
          })),
          failures: tag(Metric.counter("foundation_otel_export_failures_total", {
            description: "OTLP export requests that failed (transport error or non-2xx answer)",
            incremental: true
          }))
        }
      }
      const bySignal = { traces: counters("traces"), metrics: counters("metrics") }
      const countersFor = (url: string) => url === config.metricsUrl ? bySignal.metrics : bySignal.traces
      return client.pipe(
        HttpClient.tap((response) => {
          const counter = countersFor(response.request.url)
          return response.status >= 200 && response.status < 300
            ? Metric.increment(counter.requests)
            : Effect.zipRight(Metric.increment(counter.requests), Metric.increment(counter.failures))
        }),
        HttpClient.tapError((error: HttpClientError.HttpClientError) => {
          const counter = countersFor(error.request.url)
          return Effect.zipRight(Metric.increment(counter.requests), Metric.increment(counter.failures))
        })
      )
    })
  )

const httpUrl = (field: string, value: unknown): Either.Either<string, ValidationError> => {
  if (typeof value !== "string" || value.length === 0) return Validation.invalid(field, "must be a non-empty URL")
  if (!URL.canParse(value)) return Validation.invalid(field, `must be an absolute URL, got ${JSON.stringify(value)}`)
  const url = new URL(value)
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return Validation.invalid(field, `must be an http or https URL, got ${JSON.stringify(value)}`)
  }
  if (url.search !== "" || url.hash !== "") {
    return Validation.invalid(field, `must not have a query or a fragment, got ${JSON.stringify(value)}`)
  }
  return Either.right(url.href.replace(/\/+$/, ""))
}

// RFC 9110 token characters.
const headerName = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// Visible characters, spaces and tabs (no CR, LF or NUL).
const headerValue = /^[\t\x20-\x7e\x80-\xff]*$/

const httpHeaders = (
  field: string,
  headers: Readonly<Record<string, string>>
): Either.Either<Readonly<Record<string, string>>, ValidationError> => {
  for (const [name, value] of Object.entries(headers)) {
    if (!headerName.test(name)) return Validation.invalid(`${field}.${name}`, "is not a valid HTTP header name")
    if (typeof value !== "string" || !headerValue.test(value)) {
      return Validation.invalid(`${field}.${name}`, "must be a string without control characters")
    }
  }
  return Either.right({ ...headers })
}

const reservedAttributes: Readonly<Record<string, string>> = {
  "service.name": "serviceName",
  "service.version": "serviceVersion"
}

const scalar = (value: unknown): boolean =>
  typeof value === "string" || typeof value === "boolean" || typeof value === "bigint" ||
  (typeof value === "number" && Number.isFinite(value))

const attributes = (
  field: string,
  attrs: Readonly<Record<string, AttributeValue>>
): Either.Either<Readonly<Record<string, AttributeValue>>, ValidationError> => {
  for (const [key, value] of Object.entries(attrs)) {
    if (key.length === 0) return Validation.invalid(field, "must not have an empty key")
    const option = reservedAttributes[key]
    if (option !== undefined) return Validation.invalid(`${field}.${key}`, `is set with the ${option} option`)
    const ok = Array.isArray(value) ? value.every((v) => typeof v !== "bigint" && scalar(v)) : scalar(value)
    if (!ok) {
      return Validation.invalid(
        `${field}.${key}`,
        "must be a string, a boolean, a finite number, a bigint, or an array of strings, booleans and finite numbers"
      )
    }
  }
  return Either.right({ ...attrs })
}

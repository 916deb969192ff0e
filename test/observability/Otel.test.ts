import * as Http from "node:http"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Data, Duration, Effect, Either, Exit, Layer, Metric, Queue, Scope } from "effect"
import { ValidationError } from "../../src/errors/FoundationError.js"
import * as Otel from "../../src/observability/Otel.js"
import { counterValue } from "../support/metrics.js"

// --- A real OTLP/HTTP receiver on 127.0.0.1 ------------------------------------------------------

interface Received {
  readonly path: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: Buffer
}

interface Receiver {
  readonly url: string
  readonly received: Array<Received>
  /** Waits for the next request on `path` (requests on other paths are skipped). */
  readonly next: (path: string) => Effect.Effect<Received>
}

/** `status` answers each request with that status; "hang" never answers. */
const makeReceiver = (answer: number | "hang" = 200) =>
  Effect.gen(function*() {
    const queue = yield* Queue.unbounded<Received>()
    const received: Array<Received> = []
    const server = yield* Effect.acquireRelease(
      Effect.async<Http.Server>((resume) => {
        const server = Http.createServer((req, res) => {
          const chunks: Array<Buffer> = []
          req.on("data", (chunk: Buffer) => chunks.push(chunk))
          req.on("end", () => {
            const request = { path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks) }
            received.push(request)
            queue.unsafeOffer(request)
            if (answer === "hang") return
            res.writeHead(answer, { "content-type": "application/json" })
            res.end("{}")
          })
        })
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.async<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    )
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    const receiver: Receiver = {
      url: `http://127.0.0.1:${port}`,
      received,
      next: (path) =>
        Queue.take(queue).pipe(
          Effect.repeat({ until: (r) => r.path === path }),
          Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error(`no request on ${path}`) }),
          Effect.orDie
        )
    }
    return receiver
  })

// --- OTLP JSON, as far as the tests read it ------------------------------------------------------

interface AnyValue {
  readonly stringValue?: string
  readonly intValue?: number
  readonly doubleValue?: number
  readonly boolValue?: boolean
}
interface KeyValue {
  readonly key: string
  readonly value: AnyValue
}
interface Resource {
  readonly attributes: ReadonlyArray<KeyValue>
}
interface Span {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
  readonly kind: number
  readonly attributes: ReadonlyArray<KeyValue>
  readonly status: { readonly code: number; readonly message?: string }
  readonly events: ReadonlyArray<{ readonly name: string; readonly attributes: ReadonlyArray<KeyValue> }>
}
interface TracesBody {
  readonly resourceSpans: ReadonlyArray<{
    readonly resource: Resource
    readonly scopeSpans: ReadonlyArray<{ readonly spans: ReadonlyArray<Span> }>
  }>
}
interface OtlpMetric {
  readonly name: string
  readonly sum?: {
    readonly isMonotonic: boolean
    readonly dataPoints: ReadonlyArray<{ readonly asDouble?: number; readonly asInt?: number }>
  }
}
interface MetricsBody {
  readonly resourceMetrics: ReadonlyArray<{
    readonly resource: Resource
    readonly scopeMetrics: ReadonlyArray<{ readonly metrics: ReadonlyArray<OtlpMetric> }>
  }>
}

const bodiesOn = <A>(receiver: Receiver, path: string): Array<A> =>
  receiver.received.filter((r) => r.path === path).map((r) => JSON.parse(r.body.toString("utf8")) as A)

const spansOf = (bodies: ReadonlyArray<TracesBody>): Array<Span> =>
  bodies.flatMap((b) => b.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)))

const metricsOf = (bodies: ReadonlyArray<MetricsBody>): Array<OtlpMetric> =>
  bodies.flatMap((b) => b.resourceMetrics.flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics)))

const attr = (attrs: ReadonlyArray<KeyValue>, key: string): AnyValue | undefined =>
  attrs.find((a) => a.key === key)?.value

const spanNamed = (spans: ReadonlyArray<Span>, name: string): Span => {
  const span = spans.find((s) => s.name === name)
  expect(span, `span ${name}`).toBeDefined()
  return span as Span
}


class Boom extends Data.TaggedError("Boom")<{ readonly message: string }> {}

/** Builds the layer in its own scope, runs `program` under it, and returns the scope to close. */
const runUnder = <A, E>(layer: Layer.Layer<never, ValidationError>, program: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const runtime = yield* Layer.toRuntime(layer).pipe(Scope.extend(scope))
    const result = yield* Effect.provide(program, runtime)
    return { scope, result }
  })

// --- Tests ---------------------------------------------------------------------------------------

describe("Otel", () => {
  it.scopedLive("exports nested spans, their attributes and errors, and metrics, all flushed when the scope closes", () =>
    Effect.gen(function*() {
      const receiver = yield* makeReceiver()
      const events = Metric.counter("foundation_otel_test_events_total", { incremental: true })
      const double = Effect.fn("double")(function*(n: number) {
        return n * 2
      })
      const program = Effect.gen(function*() {
        const doubled = yield* Effect.gen(function*() {
          yield* Effect.void.pipe(
            Effect.withSpan("inner", { attributes: { "http.route": "/users", attempt: 2, cached: true } })
          )
          yield* Metric.incrementBy(events, 3)
          return yield* double(21)
        }).pipe(Effect.withSpan("outer"), Otel.withComponent("resilience"))
        const failure = yield* Effect.fail(new Boom({ message: "kaput" })).pipe(Effect.withSpan("failing"), Effect.flip)
        const interrupted = yield* Effect.interrupt.pipe(Effect.withSpan("interrupted"), Effect.exit)
        return { doubled, failure, interrupted }
      })

      // A one-minute interval: whatever arrives was sent by the flush on close.
      const { result, scope } = yield* runUnder(
        Otel.layer({
          baseUrl: receiver.url,
          serviceName: "otel-test",
          serviceVersion: "1.2.3",
          resourceAttributes: { "deployment.environment": "test" },
          headers: { "x-api-key": "secret" },
          exportInterval: "1 minute",
          shutdownTimeout: "5 seconds"
        }),
        program
      )
      expect(result.doubled).toBe(42)
      expect(result.failure).toBeInstanceOf(Boom)
      expect(Exit.isInterrupted(result.interrupted)).toBe(true)
      expect(receiver.received).toEqual([])

      yield* Scope.close(scope, Exit.void)

      const traceRequests = receiver.received.filter((r) => r.path === "/v1/traces")
      expect(traceRequests.length).toBeGreaterThan(0)
      expect(traceRequests[0]?.headers["content-type"]).toContain("application/json")
      expect(traceRequests[0]?.headers["x-api-key"]).toBe("secret")

      const traces = bodiesOn<TracesBody>(receiver, "/v1/traces")
      const spans = spansOf(traces)
      expect(spans.map((s) => s.name).sort()).toEqual(["double", "failing", "inner", "interrupted", "outer"])

      const outer = spanNamed(spans, "outer")
      const inner = spanNamed(spans, "inner")
      const doubleSpan = spanNamed(spans, "double")
      const failing = spanNamed(spans, "failing")
      expect(outer.parentSpanId).toBeUndefined()
      expect(inner.parentSpanId).toBe(outer.spanId)
      expect(inner.traceId).toBe(outer.traceId)
      expect(doubleSpan.parentSpanId).toBe(outer.spanId)
      expect(doubleSpan.traceId).toBe(outer.traceId)
      expect(inner.spanId).not.toBe(outer.spanId)
      expect(failing.traceId).not.toBe(outer.traceId)
      expect(outer.traceId).toMatch(/^[0-9a-f]{32}$/)
      expect(outer.spanId).toMatch(/^[0-9a-f]{16}$/)

      expect(attr(inner.attributes, "http.route")).toEqual({ stringValue: "/users" })
      expect(attr(inner.attributes, "attempt")).toEqual({ intValue: 2 })
      expect(attr(inner.attributes, "cached")).toEqual({ boolValue: true })
      expect(attr(inner.attributes, Otel.ComponentAttribute)).toEqual({ stringValue: "resilience" })
      expect(attr(outer.attributes, Otel.ComponentAttribute)).toEqual({ stringValue: "resilience" })
      expect(attr(failing.attributes, Otel.ComponentAttribute)).toBeUndefined()
      expect(inner.kind).toBe(1) // internal

      expect(outer.status.code).toBe(1) // OK
      expect(inner.status.code).toBe(1)
      expect(failing.status).toMatchObject({ code: 2, message: "kaput" }) // ERROR
      const exception = failing.events.find((e) => e.name === "exception")
      expect(attr(exception?.attributes ?? [], "exception.message")).toEqual({ stringValue: "kaput" })
      // A failure is not labelled as an interruption (OtlpTracer 0.64.1 does that; Otel removes it).
      expect(attr(failing.attributes, "status.interrupted")).toBeUndefined()
      expect(attr(failing.attributes, "span.label")).toBeUndefined()
      // An interruption alone is not an error.
      expect(spanNamed(spans, "interrupted").status.code).toBe(1)

      const resource = traces[0]?.resourceSpans[0]?.resource.attributes ?? []
      expect(attr(resource, "service.name")).toEqual({ stringValue: "otel-test" })
      expect(attr(resource, "service.version")).toEqual({ stringValue: "1.2.3" })
      expect(attr(resource, "deployment.environment")).toEqual({ stringValue: "test" })

      const metricBodies = bodiesOn<MetricsBody>(receiver, "/v1/metrics")
      expect(metricBodies.length).toBeGreaterThan(0)
      expect(attr(metricBodies[0]?.resourceMetrics[0]?.resource.attributes ?? [], "service.name"))
        .toEqual({ stringValue: "otel-test" })
      const counter = metricsOf(metricBodies).find((m) => m.name === "foundation_otel_test_events_total")
      expect(counter?.sum?.isMonotonic).toBe(true)
      expect(counter?.sum?.dataPoints[0]?.asDouble).toBe(3)
    }))

  it.scopedLive("exports every exportInterval while the layer is open", () =>
    Effect.gen(function*() {
      const receiver = yield* makeReceiver()
      const { scope } = yield* runUnder(
        Otel.layer({ baseUrl: receiver.url, exportInterval: "50 millis" }),
        Effect.void.pipe(Effect.withSpan("periodic"))
      )
      const request = yield* receiver.next("/v1/traces")
      const spans = spansOf([JSON.parse(request.body.toString("utf8")) as TracesBody])
      expect(spans.map((s) => s.name)).toEqual(["periodic"])
      const resource = (JSON.parse(request.body.toString("utf8")) as TracesBody).resourceSpans[0]?.resource
      expect(attr(resource?.attributes ?? [], "service.name")).toEqual({ stringValue: Otel.defaultServiceName })
      yield* receiver.next("/v1/metrics")
      yield* Scope.close(scope, Exit.void)
    }))

  it.scopedLive("closing is bounded by shutdownTimeout when the collector never answers", () =>
    Effect.gen(function*() {
      const receiver = yield* makeReceiver("hang")
      const { scope } = yield* runUnder(
        Otel.layer({ baseUrl: receiver.url, exportInterval: "1 minute", shutdownTimeout: "300 millis" }),
        Effect.void.pipe(Effect.withSpan("unanswered"))
      )
      const start = yield* Clock.currentTimeMillis
      yield* Scope.close(scope, Exit.void)
      const elapsed = (yield* Clock.currentTimeMillis) - start
      // Both exporters tried (the requests reached the receiver), and gave up after the timeout.
      expect(receiver.received.map((r) => r.path).sort()).toEqual(["/v1/metrics", "/v1/traces"])
      expect(elapsed).toBeGreaterThanOrEqual(250)
      expect(elapsed).toBeLessThan(2_000)
    }))

  it.scopedLive("counts failed exports instead of failing silently", () =>
    Effect.gen(function*() {
      const receiver = yield* makeReceiver(400)
      const serviceName = "otel-rejected"
      const { scope } = yield* runUnder(
        Otel.layer({ baseUrl: receiver.url, serviceName, exportInterval: "1 minute" }),
        Effect.void.pipe(Effect.withSpan("rejected"))
      )
      yield* Scope.close(scope, Exit.void)
      for (const signal of ["traces", "metrics"]) {
        const tags = { service: serviceName, signal }
        expect(yield* counterValue("foundation_otel_exports_total", tags)).toBe(1)
        expect(yield* counterValue("foundation_otel_export_failures_total", tags)).toBe(1)
      }
    }))

  it.scopedLive("layerFromContext uses the HttpClient of the context; protobuf is supported", () =>
    Effect.gen(function*() {
      const receiver = yield* makeReceiver()
      const client = Layer.effect(
        HttpClient.HttpClient,
        Effect.map(HttpClient.HttpClient, HttpClient.mapRequest(HttpClientRequest.setHeader("x-client", "mine")))
      ).pipe(Layer.provide(NodeHttpClient.layer))
      const { scope } = yield* runUnder(
        Otel.layerFromContext({ baseUrl: `${receiver.url}/`, exportInterval: "1 minute", serialization: "protobuf" })
          .pipe(Layer.provide(client)),
        Effect.void.pipe(Effect.withSpan("binary"))
      )
      yield* Scope.close(scope, Exit.void)
      const traces = receiver.received.find((r) => r.path === "/v1/traces")
      expect(traces?.headers["x-client"]).toBe("mine")
      expect(traces?.headers["content-type"]).toBe("application/x-protobuf")
      // The span name is a length-delimited string in the protobuf body.
      expect(traces?.body.includes(Buffer.from("binary"))).toBe(true)
      expect(receiver.received.some((r) => r.path === "/v1/metrics")).toBe(true)
    }))

  describe("validation", () => {
    const fieldOf = (options: Otel.Options) =>
      Layer.build(Otel.layer(options)).pipe(
        Effect.scoped,
        Effect.flip,
        Effect.map((error) => {
          expect(error).toBeInstanceOf(ValidationError)
          return error.field
        })
      )

    const url = "http://127.0.0.1:4318"
    const cases: ReadonlyArray<readonly [string, Otel.Options, string]> = [
      ["a URL that does not parse", { baseUrl: "not a url" }, "baseUrl"],
      ["an empty URL", { baseUrl: "" }, "baseUrl"],
      ["a URL that is not http(s)", { baseUrl: "ftp://127.0.0.1:4318" }, "baseUrl"],
      ["a URL with a query", { baseUrl: `${url}?x=1` }, "baseUrl"],
      ["an empty service name", { baseUrl: url, serviceName: "" }, "serviceName"],
      ["an empty service version", { baseUrl: url, serviceVersion: "" }, "serviceVersion"],
      ["a zero export interval", { baseUrl: url, exportInterval: 0 }, "exportInterval"],
      ["a NaN export interval", { baseUrl: url, exportInterval: Number.NaN }, "exportInterval"],
      ["an infinite export interval", { baseUrl: url, exportInterval: Duration.infinity }, "exportInterval"],
      ["a zero shutdown timeout", { baseUrl: url, shutdownTimeout: Duration.zero }, "shutdownTimeout"],
      ["a negative shutdown timeout", { baseUrl: url, shutdownTimeout: -1 }, "shutdownTimeout"],
      ["a zero batch size", { baseUrl: url, maxBatchSize: 0 }, "maxBatchSize"],
      ["a bad header name", { baseUrl: url, headers: { "bad header": "x" } }, "headers.bad header"],
      ["a header value with a newline", { baseUrl: url, headers: { "x-key": "a\r\nb" } }, "headers.x-key"],
      ["service.name among the attributes", {
        baseUrl: url,
        resourceAttributes: { "service.name": "x" }
      }, "resourceAttributes.service.name"],
      ["a NaN attribute", { baseUrl: url, resourceAttributes: { ratio: Number.NaN } }, "resourceAttributes.ratio"]
    ]
    for (const [what, options, field] of cases) {
      it.effect(`rejects ${what} at construction, naming ${field}`, () =>
        Effect.map(fieldOf(options), (actual) => expect(actual).toBe(field)))
    }

    it.effect("rejects an unknown serialization", () =>
      Effect.gen(function*() {
        const options: unknown = { baseUrl: url, serialization: "xml" }
        const result = Otel.validate(options as Otel.Options)
        expect(Either.isLeft(result) && result.left.field).toBe("serialization")
      }))

    it.effect("fills in the defaults and derives the signal URLs", () =>
      Effect.gen(function*() {
        const config = yield* Otel.validate({ baseUrl: "https://collector.example:4318/otlp/" })
        expect(config).toMatchObject({
          tracesUrl: "https://collector.example:4318/otlp/v1/traces",
          metricsUrl: "https://collector.example:4318/otlp/v1/metrics",
          serviceName: "effect-foundation",
          serviceVersion: undefined,
          maxBatchSize: 1000,
          serialization: "json"
        })
        expect(Duration.toMillis(config.exportInterval)).toBe(5_000)
        expect(Duration.toMillis(config.shutdownTimeout)).toBe(3_000)
      }))
  })
})

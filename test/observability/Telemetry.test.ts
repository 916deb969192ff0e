import { describe, expect, it } from "@effect/vitest"
import * as HttpServer from "@effect/platform/HttpServer"
import { Cause, Chunk, Effect, Fiber, Layer, Metric, MetricBoundaries, Option, Ref, Stream, TestClock } from "effect"
import * as ErrorContext from "../../src/errors/ErrorContext.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as MetricKit from "../../src/observability/MetricKit.js"
import * as Prometheus from "../../src/observability/Prometheus.js"
import * as Telemetry from "../../src/observability/Telemetry.js"

const withTelemetry = <A, E>(effect: Effect.Effect<A, E, Telemetry.Telemetry | EventBus.EventBus>) =>
  Effect.provide(effect, Telemetry.layerWithBus())

/** Collects `n` events matching `pattern` while `act` runs. */
const collect = <E, R>(pattern: string, n: number, act: Effect.Effect<unknown, E, R>) =>
  Effect.gen(function*() {
    const telemetry = yield* Telemetry.Telemetry
    const bus = yield* EventBus.EventBus
    const fiber = yield* Effect.fork(Stream.runCollect(Stream.take(telemetry.subscribe(pattern), n)))
    while ((yield* bus.stats).subscriptions.length === 0) yield* Effect.yieldNow()
    yield* act
    return Chunk.toReadonlyArray(yield* Fiber.join(fiber))
  })

const counterValue = (name: string, tags: Record<string, string>) =>
  Effect.map(Metric.snapshot, (pairs) => {
    const pair = pairs.find((p) =>
      p.metricKey.name === name &&
      Object.entries(tags).every(([k, v]) => p.metricKey.tags.some((t) => t.key === k && t.value === v))
    )
    return pair === undefined ? undefined : (pair.metricState as unknown as { readonly count: number }).count
  })

describe("Telemetry", () => {
  it.effect("emits events with measurements and metadata; names as dotted strings or segments", () =>
    withTelemetry(Effect.gen(function*() {
      const telemetry = yield* Telemetry.Telemetry
      yield* TestClock.adjust("5 millis")
      const events = yield* collect("foundation.cache.*", 2, Effect.all([
        telemetry.emit("foundation.cache.hit", { duration: 2 }, { key: "k1" }),
        telemetry.emit("foundation.other.thing", { x: 1 }),
        telemetry.emit(["foundation", "cache", "miss"], {}, { reason: "absent" })
      ]))
      expect(events).toEqual([
        { name: "foundation.cache.hit", measurements: { duration: 2 }, metadata: { key: "k1" }, time: 5, correlationId: undefined },
        { name: "foundation.cache.miss", measurements: {}, metadata: { reason: "absent" }, time: 5, correlationId: undefined }
      ])
      const traced = yield* collect("traced.*", 1, telemetry.emit("traced.op").pipe(
        ErrorContext.withContext("op", { correlationId: "corr_t" })
      ))
      expect(traced[0]?.correlationId).toBe("corr_t")
    })))

  it.effect("never fails or waits: bad names are counted, a full subscriber drops", () =>
    withTelemetry(Effect.gen(function*() {
      const telemetry = yield* Telemetry.Telemetry
      const bus = yield* EventBus.EventBus
      yield* telemetry.emit("bad..name")
      yield* telemetry.emit("also.*.bad")
      expect(yield* telemetry.invalidNames).toBe(2)
      yield* Effect.scoped(Effect.gen(function*() {
        const sub = yield* bus.subscribe("busy.topic", { capacity: 1 }) // nobody consumes
        for (let i = 0; i < 5; i++) yield* telemetry.emit("busy.topic", { i })
        expect(yield* sub.stats).toMatchObject({ published: 5, pending: 1, dropped: 4 })
      }))
    })))

  it.effect("span emits start and stop with the duration on the Clock, and returns the result", () =>
    withTelemetry(Effect.gen(function*() {
      const telemetry = yield* Telemetry.Telemetry
      const spanName = yield* Ref.make<string | undefined>(undefined)
      const work = Effect.gen(function*() {
        const span = yield* Effect.currentSpan
        yield* Ref.set(spanName, span.name)
        yield* Effect.sleep("30 millis")
        return "result"
      })
      const events = yield* collect("job.import.*", 2, Effect.gen(function*() {
        const fiber = yield* Effect.fork(telemetry.span("job.import", work, { batch: 7 }))
        yield* TestClock.adjust("30 millis")
        expect(yield* Fiber.join(fiber)).toBe("result")
      }))
      expect(events.map((e) => e.name)).toEqual(["job.import.start", "job.import.stop"])
      expect(events[0]).toMatchObject({ measurements: { system_time: 0 }, metadata: { batch: 7 } })
      expect(events[1]).toMatchObject({ measurements: { duration: 30 }, metadata: { batch: 7, status: "ok" } })
      expect(yield* Ref.get(spanName)).toBe("job.import")
    })))

  it.effect("span reports failures, defects and interruptions with the full cause", () =>
    withTelemetry(Effect.gen(function*() {
      const telemetry = yield* Telemetry.Telemetry
      const boom = new Error("kaput")
      const events = yield* collect("op.**", 6, Effect.gen(function*() {
        yield* Effect.exit(telemetry.span("op.fail", Effect.fail("typed")))
        yield* Effect.exit(telemetry.span("op.die", Effect.die(boom)))
        const fiber = yield* Effect.fork(telemetry.span("op.hang", Effect.never))
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(fiber)
      }))
      const exceptions = events.filter((e) => e.name.endsWith(".exception"))
      expect(exceptions.map((e) => [e.name, e.metadata["kind"]])).toEqual([
        ["op.fail.exception", "failure"],
        ["op.die.exception", "defect"],
        ["op.hang.exception", "interrupt"]
      ])
      expect(exceptions[0]?.metadata["error"]).toBe("typed")
      const cause = exceptions[1]?.metadata["cause"] as Cause.Cause<unknown>
      expect(([...Cause.defects(cause)][0] as Error).message).toBe(boom.message)
      expect(Cause.pretty(cause)).toContain("Telemetry.test.ts") // the stack trace is kept
    })))

  it.effect("a failing handler is logged and does not stop the next events or the emitter", () =>
    withTelemetry(Effect.scoped(Effect.gen(function*() {
      const telemetry = yield* Telemetry.Telemetry
      const bus = yield* EventBus.EventBus
      const seen = yield* Ref.make<Array<number>>([])
      yield* telemetry.attach("orders.*", (event) => {
        const n = event.measurements["n"]!
        return n === 2 ? Effect.fail("handler bug") : n === 3 ? Effect.die("handler crash") : Ref.update(seen, (s) => [...s, n])
      })
      while ((yield* bus.stats).subscriptions.length === 0) yield* Effect.yieldNow()
      for (const n of [1, 2, 3, 4]) yield* telemetry.emit("orders.placed", { n })
      while ((yield* Ref.get(seen)).length < 2) yield* Effect.yieldNow()
      expect(yield* Ref.get(seen)).toEqual([1, 4])
    }))))

  it.effect("folds events into metrics: a counter per name and a histogram of durations", () =>
    withTelemetry(Effect.gen(function*() {
      const telemetry = yield* Telemetry.Telemetry
      yield* telemetry.emit("metrics.test.done", { duration: 3 })
      yield* telemetry.emit("metrics.test.done", { duration: 5 })
      expect(yield* counterValue("foundation_events_total", { event: "metrics.test.done" })).toBe(2)
      const text = yield* telemetry.prometheus
      expect(text).toContain(`foundation_events_total{event="metrics.test.done"} 2`)
      expect(text).toContain(`foundation_event_duration_ms_count{event="metrics.test.done"} 2`)
      expect(text).toContain(`foundation_event_duration_ms_sum{event="metrics.test.done"} 8`)
    })))

  it.effect("Telemetry.emit is a no-op without the service", () =>
    Effect.gen(function*() {
      yield* Telemetry.emit("nobody.listens", { x: 1 })
      expect(Option.isNone(yield* Effect.serviceOption(Telemetry.Telemetry))).toBe(true)
    }))
})

describe("Prometheus exposition", () => {
  it("renders counters, gauges, histograms and summaries with HELP, TYPE and escaped labels", () => {
    const pairs = Effect.runSync(Effect.gen(function*() {
      const counter = MetricKit.counter("prom_test_requests_total", {
        description: "Requests",
        tags: { path: "/a\"b", method: "GET" }
      })
      MetricKit.bump(counter, 3)
      const gauge = MetricKit.gauge("prom.test.gauge", { tags: { pool: "p1" } })
      MetricKit.set(gauge, 7)
      const histogram = MetricKit.histogram("prom_test_latency", MetricBoundaries.fromIterable([1, 5]))
      MetricKit.observe(histogram, 0.5)
      MetricKit.observe(histogram, 3)
      MetricKit.observe(histogram, 100)
      yield* Metric.update(Metric.summary({ name: "prom_test_summary", maxAge: "1 minute", maxSize: 10, error: 0.01, quantiles: [0.5] }), 4)
      return (yield* Metric.snapshot).filter((p) => p.metricKey.name.startsWith("prom"))
    }))
    const text = Prometheus.render(pairs)
    expect(text).toContain("# HELP prom_test_requests_total Requests\n# TYPE prom_test_requests_total counter\n")
    expect(text).toContain(`prom_test_requests_total{path="/a\\"b",method="GET"} 3`)
    expect(text).toContain(`# TYPE prom_test_gauge gauge\nprom_test_gauge{pool="p1"} 7`)
    expect(text).toContain(`prom_test_latency_bucket{le="1"} 1`)
    expect(text).toContain(`prom_test_latency_bucket{le="5"} 2`)
    expect(text).toContain(`prom_test_latency_bucket{le="+Inf"} 3`)
    expect(text).toContain("prom_test_latency_sum 103.5")
    expect(text).toContain("prom_test_latency_count 3")
    expect(text).toContain(`# TYPE prom_test_summary summary\nprom_test_summary{quantile="0.5"} 4`)
    expect(text.endsWith("\n")).toBe(true)
  })

  it("keeps the scrape valid: one TYPE per name, reserved and duplicate labels renamed", () => {
    const pairs = Effect.runSync(Effect.gen(function*() {
      MetricKit.set(MetricKit.gauge("prom_clash"), 1)
      MetricKit.bump(MetricKit.counter("prom_clash"), 2)
      MetricKit.observe(MetricKit.histogram("prom_le_tag", MetricBoundaries.fromIterable([1]), { tags: { le: "x" } }), 0.5)
      MetricKit.bump(MetricKit.counter("prom_dup_labels", { tags: { "a.b": "1", "a_b": "2" } }), 1)
      return (yield* Metric.snapshot).filter((p) => p.metricKey.name.startsWith("prom_"))
    }))
    const text = Prometheus.render(pairs)
    const types = text.split("\n").filter((l) => l.startsWith("# TYPE"))
    expect(new Set(types.map((l) => l.split(" ")[2])).size).toBe(types.length)
    expect(text).toMatch(/prom_clash(_counter)? 2|prom_clash(_gauge)? 1/)
    expect(text).toContain(`prom_le_tag_bucket{tag_le="x",le="1"} 1`)
    expect(text).toContain(`prom_dup_labels{a_b="1",a_b_2="2"} 1`)
  })

  // A real HTTP server on 127.0.0.1: real I/O is the point.
  it.live("serves the exposition over HTTP", () =>
    Effect.gen(function*() {
      MetricKit.bump(MetricKit.counter("prom_http_test_total"), 1)
      const address = yield* HttpServer.addressWith((a) => Effect.succeed(a))
      const port = address._tag === "TcpAddress" ? address.port : -1
      const response = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/metrics`))
      expect(response.status).toBe(200)
      expect(response.headers.get("content-type")).toBe(Prometheus.contentType)
      expect(yield* Effect.promise(() => response.text())).toContain("prom_http_test_total 1")
      const missing = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/other`))
      expect(missing.status).toBe(404)
    }).pipe(Effect.provide(Prometheus.layerServer({ port: 0 })), Effect.scoped))

  it.effect("rejects bad server options", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(Prometheus.layerServer({ path: "metrics" })).pipe(Effect.scoped))
      expect(error).toMatchObject({ _tag: "ValidationError", field: "prometheus.path" })
      const port = yield* Effect.flip(Layer.build(Prometheus.layerServer({ port: 70000 })).pipe(Effect.scoped))
      expect(port).toMatchObject({ field: "prometheus.port" })
    }))
})

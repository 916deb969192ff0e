import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Fiber, Layer, Option, Scope, Stream } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { CircuitOpenError, NotFoundError, TimeoutError, ValidationError } from "../../src/errors/FoundationError.js"
import * as ConnectionManager from "../../src/infra/ConnectionManager.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as Telemetry from "../../src/observability/Telemetry.js"
import * as CircuitBreaker from "../../src/resilience/CircuitBreaker.js"
import * as Retry from "../../src/resilience/Retry.js"

/** What the test server has seen. */
interface Seen {
  /** Requests received, by path (query excluded). */
  readonly hits: Map<string, number>
  readonly requests: Array<{ readonly method: string; readonly url: string; readonly headers: http.IncomingHttpHeaders }>
  concurrent: number
  peak: number
  /** Resolved when a /hang request arrives, and when its connection closes. */
  hangArrived: Promise<void>
  hangClosed: Promise<void>
}

const deferred = () => {
  let resolve!: () => void
  const promise = new Promise<void>((r) => {
    resolve = r
  })
  return { promise, resolve }
}

/**
 * A real node:http server on 127.0.0.1 (ephemeral port), closed with the test's scope.
 * Routes: /echo (200, JSON of what it received), /slow?ms=N (200 after N ms), /status/N
 * (answers N), /hang (never answers), /busy (200 after 40 ms, tracking concurrency).
 */
const startServer = Effect.acquireRelease(
  Effect.async<{ readonly server: http.Server; readonly port: number; readonly seen: Seen }>((resume) => {
    const arrived = deferred()
    const closed = deferred()
    const seen: Seen = {
      hits: new Map(),
      requests: [],
      concurrent: 0,
      peak: 0,
      hangArrived: arrived.promise,
      hangClosed: closed.promise
    }
    const server = http.createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://x")
      seen.hits.set(url.pathname, (seen.hits.get(url.pathname) ?? 0) + 1)
      seen.requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers })
      const parts = url.pathname.split("/").filter((p) => p !== "")
      const route = parts.at(-2) === "status" ? "status" : parts.at(-1)
      switch (route) {
        case "slow": {
          const timer = setTimeout(() => res.end("slow"), Number(url.searchParams.get("ms")))
          res.on("close", () => clearTimeout(timer))
          return
        }
        case "status": {
          res.statusCode = Number(parts.at(-1))
          res.end(`status ${res.statusCode}`)
          return
        }
        case "hang": {
          res.on("close", () => closed.resolve())
          arrived.resolve()
          return
        }
        case "busy": {
          seen.concurrent++
          seen.peak = Math.max(seen.peak, seen.concurrent)
          setTimeout(() => {
            seen.concurrent--
            res.end("done")
          }, 40)
          return
        }
        default: {
          let body = ""
          req.on("data", (chunk: Buffer) => {
            body += chunk.toString("utf8")
          })
          req.on("end", () => {
            res.setHeader("content-type", "application/json")
            res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }))
          })
        }
      }
    })
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, port: (server.address() as AddressInfo).port, seen })))
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
)

/** A port nothing listens on: bound, then released. */
const freePort = Effect.async<number>((resume) => {
  const probe = http.createServer()
  probe.listen(0, "127.0.0.1", () => {
    const port = (probe.address() as AddressInfo).port
    probe.close(() => resume(Effect.succeed(port)))
  })
})

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const get = (path: string) => HttpClientRequest.get(path)

/** Waits for a promise made outside Effect (the server's callbacks), failing after `ms`. */
const within = (promise: Promise<void>, ms: number) =>
  Effect.timeoutFail(Effect.promise(() => promise), { duration: ms, onTimeout: () => `not within ${ms} ms` })

const immediate3 = Retry.immediate({ maxAttempts: 3, name: "test_immediate" }).pipe(Effect.orDie)

describe("ConnectionManager", () => {
  it.scopedLive("sends requests under the pool's base URL with its default headers; the request's own headers win", () =>
    Effect.gen(function*() {
      const { port, seen } = yield* startServer
      const manager = yield* ConnectionManager.make({
        pools: {
          "base-url": {
            baseUrl: `http://127.0.0.1:${port}/api/v1/`,
            headers: { "X-Team": "core", "X-Env": "default" }
          }
        }
      })
      const response = yield* manager.request(
        "base-url",
        get("/echo").pipe(HttpClientRequest.setUrlParam("q", "1"), HttpClientRequest.setHeader("x-env", "mine"))
      )
      expect(response.status).toBe(200)
      const echoed = JSON.parse(response.text) as { url: string; headers: Record<string, string> }
      expect(echoed.url).toBe("/api/v1/echo?q=1")
      expect(echoed.headers["x-team"]).toBe("core")
      expect(echoed.headers["x-env"]).toBe("mine")
      // A body goes through too, and the pipeable form reaches the same pool.
      const posted = yield* HttpClientRequest.post("/echo").pipe(
        HttpClientRequest.bodyText("hello"),
        ConnectionManager.request("base-url"),
        Effect.provideService(ConnectionManager.ConnectionManager, manager)
      )
      expect(JSON.parse(posted.text)).toMatchObject({ method: "POST", url: "/api/v1/echo", body: "hello" })
      expect(seen.requests.map((r) => r.headers["x-team"])).toEqual(["core", "core"])
      // An absolute URL would leave the pool: refused before anything is sent.
      const absolute = failureOf(yield* Effect.exit(manager.request("base-url", get("http://example.com/x"))))
      expect(absolute).toBeInstanceOf(ValidationError)
      expect((absolute as ValidationError).field).toBe("request.url")
      expect(seen.requests).toHaveLength(2)
    }))

  it.scopedLive("a slow response fails with TimeoutError at the pool's limit; a per-request timeout overrides it", () =>
    Effect.gen(function*() {
      const { port } = yield* startServer
      const manager = yield* ConnectionManager.make()
      yield* manager.configure("timeouts", { baseUrl: `http://127.0.0.1:${port}`, timeout: "100 millis", retry: false })
      const started = Date.now()
      const error = failureOf(yield* Effect.exit(manager.request("timeouts", get("/slow?ms=600"))))
      const elapsed = Date.now() - started
      expect(error).toBeInstanceOf(TimeoutError)
      expect(Duration.toMillis((error as TimeoutError).timeout)).toBe(100)
      expect((error as TimeoutError).message).toBe("timeouts GET /slow?ms=600 timed out after 100ms")
      expect(elapsed).toBeGreaterThanOrEqual(90)
      expect(elapsed).toBeLessThan(500)
      const slow = yield* manager.request("timeouts", get("/slow?ms=150"), { timeout: "2 seconds" })
      expect(slow.text).toBe("slow")
      const bad = failureOf(yield* Effect.exit(manager.request("timeouts", get("/slow?ms=1"), { timeout: -5 })))
      expect((bad as ValidationError).field).toBe("request.timeout")
      const stats = (yield* manager.stats).pools["timeouts"]!
      expect(stats.failuresBy.timeout).toBe(1)
      expect(stats.successes).toBe(1)
    }))

  it.scopedLive("retries 503 on idempotent requests, then the breaker opens and rejects without reaching the server", () =>
    Effect.gen(function*() {
      const { port, seen } = yield* startServer
      const manager = yield* ConnectionManager.make()
      yield* manager.configure("flaky", {
        baseUrl: `http://127.0.0.1:${port}`,
        retry: yield* immediate3,
        breaker: { trip: CircuitBreaker.consecutive(4) }
      })
      const first = failureOf(yield* Effect.exit(manager.request("flaky", get("/status/503"))))
      expect(first).toBeInstanceOf(ConnectionManager.HttpStatusError)
      expect((first as ConnectionManager.HttpStatusError).status).toBe(503)
      expect((first as ConnectionManager.HttpStatusError).category).toBe("transient")
      expect((first as ConnectionManager.HttpStatusError).response.text).toBe("status 503")
      expect(seen.hits.get("/status/503")).toBe(3) // 1 attempt + 2 retries
      // A POST is not retried unless the request says it is idempotent: one more hit, the 4th
      // bad attempt in a row, which opens the breaker.
      const post = failureOf(yield* Effect.exit(manager.request("flaky", HttpClientRequest.post("/status/503"))))
      expect((post as ConnectionManager.HttpStatusError).status).toBe(503)
      expect(seen.hits.get("/status/503")).toBe(4)
      const rejected = failureOf(yield* Effect.exit(manager.request("flaky", get("/status/503"))))
      expect(rejected).toBeInstanceOf(CircuitOpenError)
      expect((rejected as CircuitOpenError).breaker).toBe("flaky")
      expect(seen.hits.get("/status/503")).toBe(4) // not sent
      const stats = (yield* manager.stats).pools["flaky"]!
      expect(stats.breaker).toBe("open")
      expect(stats.failuresBy).toMatchObject({ status: 2, circuitOpen: 1 })
    }))

  it.scopedLive("500 and 4xx are permanent: never retried; 4xx do not count against the breaker", () =>
    Effect.gen(function*() {
      const { port, seen } = yield* startServer
      const manager = yield* ConnectionManager.make()
      yield* manager.configure("permanent", {
        baseUrl: `http://127.0.0.1:${port}`,
        retry: yield* immediate3,
        breaker: { trip: CircuitBreaker.consecutive(2) }
      })
      for (let i = 0; i < 3; i++) {
        const notFound = failureOf(yield* Effect.exit(manager.request("permanent", get("/status/404"))))
        expect((notFound as ConnectionManager.HttpStatusError).category).toBe("permanent")
      }
      expect(seen.hits.get("/status/404")).toBe(3) // each sent once
      expect((yield* manager.stats).pools["permanent"]!.breaker).toBe("closed")
      const internal = failureOf(yield* Effect.exit(manager.request("permanent", get("/status/500"))))
      expect((internal as ConnectionManager.HttpStatusError).category).toBe("permanent")
      expect(seen.hits.get("/status/500")).toBe(1)
      yield* Effect.exit(manager.request("permanent", get("/status/500")))
      expect((yield* manager.stats).pools["permanent"]!.breaker).toBe("open") // two 5xx in a row
    }))

  it.scopedLive("connection refused is a typed, transient transport error", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const manager = yield* ConnectionManager.make({
        pools: { refused: { baseUrl: `http://127.0.0.1:${port}`, retry: yield* immediate3 } }
      })
      const error = failureOf(yield* Effect.exit(manager.request("refused", get("/x"))))
      expect(error).toBeInstanceOf(ConnectionManager.HttpTransportError)
      const transport = error as ConnectionManager.HttpTransportError
      expect(transport.category).toBe("transient")
      expect(transport.code).toBe(4101)
      expect(transport.reason).toBe("Transport")
      expect(transport.url).toBe(`http://127.0.0.1:${port}/x`)
      expect((transport.cause as { code?: string }).code).toBe("ECONNREFUSED")
      const stats = (yield* manager.stats).pools["refused"]!
      expect(stats.failuresBy.transport).toBe(1)
      expect(stats.total).toBe(1) // one call, three attempts
    }))

  it.scopedLive("interrupting the caller aborts the request: the server sees the socket close and the slot is freed", () =>
    Effect.gen(function*() {
      const { port, seen } = yield* startServer
      const manager = yield* ConnectionManager.make({
        pools: { abort: { baseUrl: `http://127.0.0.1:${port}`, maxConnections: 1 } }
      })
      const fiber = yield* Effect.fork(manager.request("abort", get("/hang")))
      yield* within(seen.hangArrived, 2000)
      expect((yield* manager.stats).pools["abort"]!.active).toBe(1)
      yield* Fiber.interrupt(fiber)
      yield* within(seen.hangClosed, 2000)
      // The pool's only connection slot is free again: the next request goes through.
      const next = yield* manager.request("abort", get("/echo"), { timeout: "2 seconds" })
      expect(next.status).toBe(200)
      const stats = (yield* manager.stats).pools["abort"]!
      expect(stats).toMatchObject({ active: 0, total: 2, successes: 1, failures: 0, interrupted: 1 })
    }))

  it.scopedLive("a request still waiting for a connection can be interrupted or time out, and is never sent", () =>
    Effect.gen(function*() {
      const { port, seen } = yield* startServer
      const manager = yield* ConnectionManager.make({
        pools: { queued: { baseUrl: `http://127.0.0.1:${port}`, maxConnections: 1, retry: false } }
      })
      const holder = yield* Effect.fork(manager.request("queued", get("/hang")))
      yield* within(seen.hangArrived, 2000)
      // Both wait behind /hang for the pool's only connection.
      const interrupted = yield* Effect.fork(manager.request("queued", get("/echo?n=1")))
      const timedOut = yield* Effect.exit(manager.request("queued", get("/echo?n=2"), { timeout: "50 millis" }))
      expect(failureOf(timedOut)).toBeInstanceOf(TimeoutError)
      yield* Fiber.interrupt(interrupted)
      yield* Fiber.interrupt(holder)
      yield* within(seen.hangClosed, 2000)
      const next = yield* manager.request("queued", get("/echo?n=3"), { timeout: "2 seconds" })
      expect(next.status).toBe(200)
      expect(seen.requests.map((r) => r.url)).toEqual(["/hang", "/echo?n=3"])
      expect((yield* manager.stats).pools["queued"]).toMatchObject({ active: 0, interrupted: 2, successes: 1, failures: 1 })
    }))

  it.scopedLive("caps the requests on the wire at maxConnections", () =>
    Effect.gen(function*() {
      const { port, seen } = yield* startServer
      const manager = yield* ConnectionManager.make({
        pools: { capped: { baseUrl: `http://127.0.0.1:${port}`, maxConnections: 3 } }
      })
      const responses = yield* Effect.forEach(
        Array.from({ length: 12 }, () => get("/busy")),
        (request) => manager.request("capped", request),
        { concurrency: "unbounded" }
      )
      expect(responses.map((r) => r.text)).toEqual(Array.from({ length: 12 }, () => "done"))
      expect(seen.peak).toBe(3)
      expect(seen.hits.get("/busy")).toBe(12)
    }))

  it.scopedLive("bad pool options fail with ValidationError naming the field, and change nothing", () =>
    Effect.gen(function*() {
      const { port } = yield* startServer
      const manager = yield* ConnectionManager.make()
      const good = yield* manager.configure("good", { baseUrl: `http://127.0.0.1:${port}`, maxConnections: 2 })
      expect(good).toMatchObject({ scheme: "http", host: "127.0.0.1", port, maxConnections: 2 })
      const cases: ReadonlyArray<readonly [string, string, ConnectionManager.PoolOptions]> = [
        ["good", "connectionManager.baseUrl", { baseUrl: "not a url" }],
        ["good", "connectionManager.baseUrl.scheme", { baseUrl: "ftp://127.0.0.1" }],
        ["good", "connectionManager.baseUrl.port", { baseUrl: "http://127.0.0.1:70000" }],
        ["good", "connectionManager.baseUrl.port", { baseUrl: "http://127.0.0.1:0" }],
        ["good", "connectionManager.baseUrl", { baseUrl: "http://127.0.0.1/?q=1" }],
        ["good", "connectionManager.maxConnections", { baseUrl: `http://127.0.0.1:${port}`, maxConnections: 0 }],
        ["good", "connectionManager.maxConnections", { baseUrl: `http://127.0.0.1:${port}`, maxConnections: 2.5 }],
        ["good", "connectionManager.timeout", { baseUrl: `http://127.0.0.1:${port}`, timeout: -1 }],
        ["good", "connectionManager.headers.bad name", { baseUrl: `http://127.0.0.1:${port}`, headers: { "bad name": "x" } }],
        ["good", "connectionManager.headers.x-ok", { baseUrl: `http://127.0.0.1:${port}`, headers: { "x-ok": "a\r\nb" } }],
        ["", "connectionManager.pool", { baseUrl: `http://127.0.0.1:${port}` }]
      ]
      for (const [name, field, options] of cases) {
        const error = failureOf(yield* Effect.exit(manager.configure(name, options)))
        expect(error, field).toBeInstanceOf(ValidationError)
        expect((error as ValidationError).field).toBe(field)
      }
      expect(yield* manager.pools).toEqual([good])
      expect((yield* manager.request("good", get("/echo"))).status).toBe(200)
      // A layer with a bad pool fails to build.
      const layerExit = yield* Effect.exit(
        Layer.build(ConnectionManager.layer({ pools: { x: { baseUrl: "http://h", maxConnections: -1 } } }))
      )
      expect((failureOf(layerExit) as ValidationError).field).toBe("connectionManager.maxConnections")
    }))

  it.scopedLive("an unknown pool is NotFoundError; remove and reconfigure take effect at once", () =>
    Effect.gen(function*() {
      const first = yield* startServer
      const second = yield* startServer
      const manager = yield* ConnectionManager.make()
      const unknown = failureOf(yield* Effect.exit(manager.request("nope", get("/echo"))))
      expect(unknown).toBeInstanceOf(NotFoundError)
      expect((unknown as NotFoundError).key).toBe("nope")
      expect(failureOf(yield* Effect.exit(manager.remove("nope")))).toBeInstanceOf(NotFoundError)
      yield* manager.configure("moving", { baseUrl: `http://127.0.0.1:${first.port}/a` })
      yield* manager.request("moving", get("/echo"))
      yield* manager.configure("moving", { baseUrl: `http://127.0.0.1:${second.port}/b` })
      yield* manager.request("moving", get("/echo"))
      expect(first.seen.requests.map((r) => r.url)).toEqual(["/a/echo"])
      expect(second.seen.requests.map((r) => r.url)).toEqual(["/b/echo"])
      expect((yield* manager.stats).pools["moving"]!.total).toBe(2) // counters kept
      yield* manager.remove("moving")
      expect(yield* manager.pools).toEqual([])
      expect(failureOf(yield* Effect.exit(manager.request("moving", get("/echo"))))).toBeInstanceOf(NotFoundError)
    }))

  it.scopedLive("stats count calls, outcomes and latency per pool", () =>
    Effect.gen(function*() {
      const { port } = yield* startServer
      const manager = yield* ConnectionManager.make({ pools: { counted: { baseUrl: `http://127.0.0.1:${port}` } } })
      yield* manager.request("counted", get("/echo"))
      yield* manager.request("counted", get("/slow?ms=20"))
      yield* Effect.exit(manager.request("counted", get("/status/404")))
      const stats = yield* manager.stats
      const pool = stats.pools["counted"]!
      expect(pool).toMatchObject({ active: 0, total: 3, successes: 2, failures: 1, interrupted: 0, breaker: "closed" })
      expect(pool.failuresBy.status).toBe(1)
      expect(pool.latency.count).toBe(3)
      expect(pool.latency.max).toBeGreaterThanOrEqual(20)
      expect(stats.total).toBe(3)
    }))

  it.scopedLive("emits pool_configured, pool_removed and, when asked, one request event per call", () =>
    Effect.gen(function*() {
      const { port } = yield* startServer
      const bus = yield* EventBus.EventBus
      const subscription = yield* bus.subscribe("foundation.connection_manager.*", { capacity: 100 })
      const manager = yield* ConnectionManager.make()
      yield* manager.configure("quiet", { baseUrl: `http://127.0.0.1:${port}` })
      yield* manager.request("quiet", get("/echo"))
      yield* manager.configure("loud", { baseUrl: `http://127.0.0.1:${port}`, requestEvents: true })
      yield* manager.request("loud", get("/echo"))
      yield* Effect.exit(manager.request("loud", get("/status/404")))
      yield* manager.remove("loud")
      const seen: Array<{ type: string; data: unknown }> = []
      for (;;) {
        const next = yield* subscription.poll
        if (Option.isNone(next)) break
        seen.push({ type: next.value.type, data: next.value.data })
      }
      expect(seen.map((e) => e.type)).toEqual([
        ConnectionManager.events.poolConfigured,
        ConnectionManager.events.poolConfigured,
        ConnectionManager.events.request,
        ConnectionManager.events.request,
        ConnectionManager.events.poolRemoved
      ])
      expect(seen[0]!.data).toMatchObject({
        measurements: { count: 1 },
        metadata: { pool_id: "quiet", scheme: "http", host: "127.0.0.1", port }
      })
      expect(seen[2]!.data).toMatchObject({
        measurements: { count: 1 },
        metadata: { pool_id: "loud", method: "GET", path: "/echo", status: 200, outcome: "success" }
      })
      expect(seen[3]!.data).toMatchObject({ metadata: { status: 404, outcome: "failure" } })
      expect(seen[4]!.data).toMatchObject({ metadata: { pool_id: "loud" } })
    }).pipe(Effect.provide(Telemetry.layerWithBus())))

  it.scopedLive("the HttpClient transport (tracing pools, streamed bodies) behaves like the direct one", () =>
    Effect.gen(function*() {
      const { port, seen } = yield* startServer
      const manager = yield* ConnectionManager.make({
        pools: {
          traced: {
            baseUrl: `http://127.0.0.1:${port}/api`,
            headers: { "X-Team": "core" },
            tracing: true,
            timeout: "100 millis",
            retry: yield* immediate3,
            breaker: { trip: CircuitBreaker.consecutive(10) }
          }
        }
      })
      // Base URL, default headers and the W3C trace header the platform client adds.
      const echoed = JSON.parse((yield* manager.request("traced", get("/echo"))).text) as {
        url: string
        headers: Record<string, string>
      }
      expect(echoed.url).toBe("/api/echo")
      expect(echoed.headers["x-team"]).toBe("core")
      expect(echoed.headers["traceparent"]).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
      // A streamed body cannot take the direct path: it goes through HttpClient on any pool.
      const streamed = yield* manager.request(
        "traced",
        HttpClientRequest.post("/echo").pipe(
          HttpClientRequest.bodyStream(Stream.make(new TextEncoder().encode("str"), new TextEncoder().encode("eam")))
        )
      )
      expect(JSON.parse(streamed.text)).toMatchObject({ method: "POST", body: "stream" })
      // The time limit, the retries of a transient status and the abort on interruption.
      const slow = failureOf(yield* Effect.exit(manager.request("traced", get("/slow?ms=600"))))
      expect(slow).toBeInstanceOf(TimeoutError)
      expect(seen.hits.get("/api/slow")).toBe(3) // a timeout is transient: retried
      const unavailable = failureOf(yield* Effect.exit(manager.request("traced", get("/status/503"))))
      expect((unavailable as ConnectionManager.HttpStatusError).status).toBe(503)
      expect(seen.hits.get("/api/status/503")).toBe(3)
      const fiber = yield* Effect.fork(manager.request("traced", get("/hang"), { timeout: "10 seconds" }))
      yield* within(seen.hangArrived, 2000)
      yield* Fiber.interrupt(fiber)
      yield* within(seen.hangClosed, 2000)
      expect((yield* manager.stats).pools["traced"]).toMatchObject({ active: 0, successes: 2, failures: 2, interrupted: 1 })
    }))

  it.scopedLive("closing the manager's scope destroys its dispatchers: an in-flight request is aborted", () =>
    Effect.gen(function*() {
      const { port, seen } = yield* startServer
      const scope = yield* Scope.make()
      const manager = yield* ConnectionManager.make({ pools: { closing: { baseUrl: `http://127.0.0.1:${port}` } } }).pipe(
        Scope.extend(scope)
      )
      const fiber = yield* Effect.fork(manager.request("closing", get("/hang")))
      yield* within(seen.hangArrived, 2000)
      yield* Scope.close(scope, Exit.void)
      yield* within(seen.hangClosed, 2000)
      const error = failureOf(yield* Fiber.await(fiber))
      expect(error).toBeInstanceOf(ConnectionManager.HttpTransportError)
    }))
})

import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, TestClock } from "effect"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { fileURLToPath } from "node:url"
import * as AgentExample from "../examples/agent.js"
import * as AgentRegistryExample from "../examples/agent-registry.js"
import * as BatchExample from "../examples/batch.js"
import * as BulkheadTimeout from "../examples/bulkhead-timeout.js"
import * as CacheExample from "../examples/cache.js"
import * as CircuitBreakerExample from "../examples/circuit-breaker.js"
import * as CommandRunnerExample from "../examples/command-runner.js"
import * as ConnectionManagerExample from "../examples/connection-manager.js"
import * as ConstraintsExample from "../examples/constraints.js"
import * as CqrsExample from "../examples/cqrs.js"
import * as DiscoveryExample from "../examples/discovery.js"
import * as ErrorContextExample from "../examples/error-context.js"
import * as Errors from "../examples/errors.js"
import * as EventBusExample from "../examples/event-bus.js"
import * as LoadTestExample from "../examples/load-test.js"
import * as MultiObjectiveExample from "../examples/multi-objective.js"
import * as OtelExample from "../examples/otel.js"
import * as SamplerMonitor from "../examples/sampler-monitor.js"
import * as TaskPoolsExample from "../examples/task-pools.js"
import * as TelemetryExample from "../examples/telemetry.js"
import * as ProtectExample from "../examples/protect.js"
import * as RateLimiterExample from "../examples/rate-limiter.js"
import * as RecoveryExample from "../examples/recovery.js"
import * as ResourceManagerExample from "../examples/resource-manager.js"
import * as RepositoryExample from "../examples/repository.js"
import * as RetryExample from "../examples/retry.js"
import * as SqlStoreExample from "../examples/sqlstore.js"
import * as SupervisorExample from "../examples/supervisor.js"

const root = fileURLToPath(new URL("..", import.meta.url))

describe("README examples", () => {
  // The coordination, integration, Foundation and ML examples are run by their modules' tests ("the example runs").
  it("the README shows every example file verbatim", () => {
    const readme = readFileSync(`${root}/README.md`, "utf8")
    const files = readdirSync(`${root}/examples`).filter((f) => f.endsWith(".ts"))
    expect(files.length).toBe(45)
    for (const file of files) {
      const source = readFileSync(`${root}/examples/${file}`, "utf8")
      expect(readme, `README block for examples/${file}`).toContain("```ts\n" + source + "```")
    }
  })

  it.effect("errors", () =>
    Effect.gen(function*() {
      expect(yield* Errors.program).toEqual({ empty: null, category: "permanent", code: 3401, strategy: "propagate" })
    }))

  it.effect("error context", () =>
    Effect.gen(function*() {
      expect(yield* ErrorContextExample.program).toEqual({
        correlationId: "corr_demo",
        trail: ["checkout", "payment.charge", "card.authorize"],
        metadata: { cart: "c1", amount: 42 },
        outside: true
      })
    }))

  it.effect("circuit breaker", () =>
    Effect.gen(function*() {
      const result = yield* CircuitBreakerExample.program
      expect(result.state).toBe("open")
      expect(result.rejectedWith).toMatchObject({ _tag: "CircuitOpenError", breaker: "payments" })
      expect(result.snapshot).toMatchObject({ name: "payments", state: "open", openCount: 1 })
    }))

  it.effect("rate limiter", () =>
    Effect.gen(function*() {
      const result = yield* RateLimiterExample.program
      expect(result.alice).toBe(0)
      expect(result.bob).toBe(1)
      expect(result.retryAfterMillis).toBeGreaterThan(0)
    }))

  it.effect("retry", () =>
    Effect.gen(function*() {
      expect(yield* RetryExample.program).toEqual({ result: "found", attempts: 3, policy: "exponential" })
    }))

  it.effect("bulkhead and timeout", () =>
    Effect.gen(function*() {
      const result = yield* BulkheadTimeout.program
      expect(result.reports).toEqual([{ id: 1, aborted: false }, { id: 2, aborted: false }, { id: 3, aborted: false }])
      expect(result.stats).toMatchObject({ active: 0, queued: 0, rejected: 0 })
    }))

  it.effect("recovery", () =>
    Effect.gen(function*() {
      expect(yield* RecoveryExample.program).toEqual({
        profile: { id: "u1", name: "(cached)" },
        compensated: "InternalError"
      })
    }))

  it.effect("protect", () =>
    Effect.gen(function*() {
      expect(yield* ProtectExample.program).toEqual({
        hits: { query: "effect", aborted: false },
        breakerState: "closed",
        successes: 1
      })
    }))

  it.effect("event bus", () =>
    Effect.gen(function*() {
      const result = yield* EventBusExample.program
      expect(result.first).toEqual({
        type: "agent.task.completed",
        source: "scheduler",
        data: { taskId: "t1", millis: 12 }
      })
      expect(result.completed).toMatchObject({ published: 2, delivered: 1, pending: 1, dropped: 0 })
      expect(result.everything).toMatchObject({ published: 3, dropped: 1, pending: 2 })
    }))

  it.effect("telemetry", () =>
    Effect.gen(function*() {
      expect(yield* TelemetryExample.program).toEqual({
        change: { breaker: "search", from_state: "closed", to_state: "open" },
        hasSpanMetric: true
      })
    }))

  it.effect("sampler and performance monitor", () =>
    Effect.gen(function*() {
      const result = yield* SamplerMonitor.program
      expect(result.kept).toBeGreaterThan(60)
      expect(result.kept).toBeLessThan(140)
      expect(result.lookups).toEqual({ count: 2, errors: 1 })
      expect(yield* SamplerMonitor.program).toEqual(result) // same seed, same decisions
    }))

  it("otel (built, not run: it needs a collector)", () => {
    expect(Layer.isLayer(OtelExample.ObservabilityLive)).toBe(true)
    expect(Effect.isEffect(OtelExample.handler)).toBe(true)
  })

  it.effect("load test (on the TestClock)", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(LoadTestExample.program)
      yield* TestClock.adjust("3 seconds")
      const report = yield* Fiber.join(fiber)
      expect(report.requests).toBeGreaterThan(200)
      expect(report.errors).toBeGreaterThan(0)
      expect(report.errors).toBeLessThan(report.requests / 2)
      expect(report.throughput).toBeCloseTo(report.requests / 2, 5)
      expect(report.p99).toBe(80)
    }))

  it.effect("cache", () =>
    Effect.gen(function*() {
      expect(yield* CacheExample.program).toEqual({ fetches: 1, cached: Option.some(60), coalesced: 19 })
    }))

  it.effect("resource manager", () =>
    Effect.gen(function*() {
      expect(yield* ResourceManagerExample.program).toEqual({
        admitted: "bulk import done",
        refused: "ResourceExhaustedError",
        level: "normal"
      })
    }))

  it.scopedLive("connection manager", () =>
    Effect.gen(function*() {
      // The inventory service: a real server on loopback; item 0 does not exist.
      const seen: Array<string | undefined> = []
      const server = yield* Effect.acquireRelease(
        Effect.async<http.Server>((resume) => {
          const s = http.createServer((req, res) => {
            seen.push(req.headers["x-client"] as string | undefined)
            res.statusCode = req.url === "/v1/items/0" ? 404 : 200
            res.setHeader("content-type", "application/json")
            res.end(JSON.stringify({ url: req.url }))
          })
          s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
        }),
        (s) => Effect.async<void>((resume) => {
          s.closeAllConnections()
          s.close(() => resume(Effect.void))
        })
      )
      const { port } = server.address() as AddressInfo
      const result = yield* ConnectionManagerExample.program(`http://127.0.0.1:${port}`)
      expect(result).toEqual({ item: { url: "/v1/items/42" }, missing: "404 permanent", calls: 2 })
      expect(seen).toEqual(["shop", "shop"]) // the 404 was sent once, not retried
    }))

  it.effect("cqrs", () =>
    Effect.gen(function*() {
      expect(yield* CqrsExample.program).toEqual({
        found: { email: "ann@example.com" },
        invalidField: "create_user.email",
        redacted: { user: { password: "[REDACTED]" } }
      })
    }))

  it.effect("repository", () =>
    Effect.gen(function*() {
      expect(yield* RepositoryExample.program).toEqual({ idle: ["a1"], refused: "AlreadyExistsError", load: 0.5 })
    }))

  it.effect("sql store: what SQLite wrote survives closing the store", () =>
    Effect.acquireUseRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "foundation-example-"))),
      (dir) =>
        Effect.map(SqlStoreExample.program(join(dir, "jobs.db")), (result) => {
          expect(result).toEqual({ count: 2, email: ["j1"] })
        }),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    ))

  it.effect("agent", () =>
    Effect.gen(function*() {
      expect(yield* AgentExample.program).toEqual({ refused: "Overdrawn", invalidField: "account.deposit.amount", left: 45 })
    }))

  it.effect("agent registry", () =>
    Effect.gen(function*() {
      expect(yield* AgentRegistryExample.program).toEqual({
        roomy: ["gpu-1"],
        answer: "batch 7: done",
        inference: ["gpu-1"],
        changes: ["Registered gpu-1", "Registered cpu-1", "Down cpu-1 (defect)"]
      })
    }))

  it.effect("discovery", () =>
    Effect.gen(function*() {
      expect(yield* DiscoveryExample.program).toEqual({
        inEurope: ["enc-a", "enc-b"],
        idle: ["enc-a", "enc-d"],
        leastLoaded: ["enc-a", "enc-d"],
        lucky: ["enc-b"],
        answers: ["enc-a encoded f1 f2 f4 f6 f9", "enc-b encoded f7 f10", "enc-d encoded f3 f5 f8 f11"],
        unassigned: ["f12"]
      })
    }))

  it.effect("constraints", () =>
    Effect.gen(function*() {
      expect(yield* ConstraintsExample.program).toEqual({ count: 20, first: { x: 1, y: 2, z: 3 }, distributedCount: 20, splitOn: "x" })
    }))

  it.effect("multi-objective (NSGA-II)", () =>
    Effect.gen(function*() {
      expect(yield* MultiObjectiveExample.program).toEqual({ frontSize: 40, xRange: [0, 2], hypervolume: 13.16 })
    }))

  it.effect("supervisor", () =>
    Effect.gen(function*() {
      expect(yield* SupervisorExample.program).toEqual({
        starts: ["ingest#1", "report#1", "ingest#2"],
        children: ["ingest:running", "report:running"]
      })
    }))

  it.effect("task pools", () =>
    Effect.gen(function*() {
      expect(yield* TaskPoolsExample.program).toEqual([10, 20, "failed", 40])
    }))

  it.effect("batch", () =>
    Effect.gen(function*() {
      expect(yield* BatchExample.program).toEqual({ ok: "Ok", undone: "Failed", coders: ["a2", "a3"], size: 3 })
    }))

  // Real processes are the point.
  it.live("command runner", () =>
    Effect.gen(function*() {
      expect(yield* CommandRunnerExample.program).toEqual({ stdout: "; rm -rf ~", refused: "CommandNotAllowedError" })
    }))
})

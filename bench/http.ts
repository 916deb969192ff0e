/**
 * The ConnectionManager side by side with a bare undici `request`, the bare `@effect/platform`
 * HttpClient (NodeHttpClient over undici) and the steps in between, on the same loopback
 * keep-alive GET, in one run. The server (node:http, a 2-byte body) runs in a worker thread, so
 * that its work is not charged to the client's thread. Sequential calls by one caller; every
 * scenario reads the whole body and has its own undici Agent (one connection, kept alive).
 *
 * Loopback HTTP is noisy (two threads, the kernel, the garbage collector), so the scenarios are
 * measured in interleaved rounds (round r measures every scenario once, in a rotated order) and
 * each row is the median of its rounds: drift hits every scenario alike.
 *
 * Target: the manager's call (default pool: retry policy, breaker, 30 s timeout) within 5% of
 * the bare undici `request`.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Effect from "effect/Effect"
import { constTrue } from "effect/Function"
import * as Runtime from "effect/Runtime"
import { Worker } from "node:worker_threads"
import { Agent, request } from "undici"
import * as ConnectionManager from "../src/infra/ConnectionManager.js"
import * as Timeout from "../src/resilience/Timeout.js"
import { type Baseline, ns, type Row } from "./harness.js"

export interface HttpReport {
  readonly rows: ReadonlyArray<Row>
  /** The bare undici `request` row, the target's baseline. */
  readonly baseline: Row
  /** The manager's row (default pool). */
  readonly manager: Row
  /** manager / baseline. */
  readonly ratio: number
  readonly targetMet: boolean
}

export const baselineName = "bare: await undici request(url) + body.text()"
export const managerName = "ConnectionManager.request, default pool (retry, breaker, 30 s timeout)"

const rounds = 9
const targetMillisPerBatch = 150

const serverSource = `
const http = require("node:http")
const { parentPort } = require("node:worker_threads")
const server = http.createServer((req, res) => { res.setHeader("content-type", "text/plain"); res.end("ok") })
server.keepAliveTimeout = 60000
server.listen(0, "127.0.0.1", () => parentPort.postMessage(server.address().port))
`

/** A node:http server in a worker thread; its port. Terminated with the scope. */
const server = Effect.acquireRelease(
  Effect.async<{ readonly worker: Worker; readonly port: number }>((resume) => {
    const worker = new Worker(serverSource, { eval: true })
    worker.once("message", (port: number) => resume(Effect.succeed({ worker, port })))
  }),
  ({ worker }) => Effect.promise(() => worker.terminate())
)

const makeAgent = Effect.acquireRelease(
  Effect.sync(() => new Agent({ connections: 50 })),
  (agent) => Effect.promise(() => agent.destroy())
)

interface Scenario {
  readonly name: string
  readonly baseline: Baseline
  /** Runs `n` calls in a row; nanoseconds per call. */
  readonly batch: (n: number) => Promise<number>
}

const awaited = (name: string, call: () => Promise<unknown>): Scenario => ({
  name,
  baseline: "await",
  batch: async (n) => {
    const start = performance.now()
    for (let i = 0; i < n; i++) await call()
    return ((performance.now() - start) * 1e6) / n
  }
})

/** An effect run `n` times in one fiber (one `runPromise` per batch, not per call). */
const inFiber = (runtime: Runtime.Runtime<never>, name: string, effect: Effect.Effect<unknown, unknown>): Scenario => ({
  name,
  baseline: "fiber",
  batch: (n) =>
    Runtime.runPromise(runtime)(Effect.gen(function*() {
      const start = performance.now()
      for (let i = 0; i < n; i++) yield* effect
      return ((performance.now() - start) * 1e6) / n
    }))
})

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

const measureInterleaved = async (scenarios: ReadonlyArray<Scenario>): Promise<ReadonlyArray<Row>> => {
  const sizes: Array<number> = []
  for (const scenario of scenarios) {
    const warm = await scenario.batch(2_000)
    sizes.push(Math.max(500, Math.round((targetMillisPerBatch * 1e6) / warm)))
  }
  const samples: Array<Array<number>> = scenarios.map(() => [])
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < scenarios.length; k++) {
      const i = (k + r) % scenarios.length
      samples[i]!.push(await scenarios[i]!.batch(sizes[i]!))
    }
  }
  return scenarios.map((scenario, i) => {
    const xs = samples[i]!
    const row: Row = {
      group: "http",
      name: scenario.name,
      baseline: scenario.baseline,
      nsPerCall: median(xs),
      spread: Math.max(...xs) / Math.min(...xs)
    }
    console.log(`${row.name.padEnd(76)} ${(row.nsPerCall / 1000).toFixed(1).padStart(7)} µs  spread ${row.spread.toFixed(2)}`)
    return row
  })
}

export const run: Effect.Effect<HttpReport> = Effect.scoped(Effect.gen(function*() {
  const { port } = yield* server
  const origin = `http://127.0.0.1:${port}`
  const url = `${origin}/bench`
  const runtime = yield* Effect.runtime<never>()
  const agents = yield* Effect.all(Array.from({ length: 7 }, () => makeAgent))
  const [a1, a2, a3, a4, a5, a6, a7] = agents as [Agent, Agent, Agent, Agent, Agent, Agent, Agent]

  const getRequest = HttpClientRequest.get(url)
  const traced = NodeHttpClient.makeUndici(a5)
  const untraced = HttpClient.withTracerDisabledWhen(NodeHttpClient.makeUndici(a6), constTrue)
  const untracedTimed = HttpClient.withTracerDisabledWhen(NodeHttpClient.makeUndici(a7), constTrue)
  const timeout = yield* Timeout.make({ duration: "30 seconds", name: "bench-http" })
  const manager = yield* ConnectionManager.make({
    pools: {
      bench: { baseUrl: origin },
      "bench-single": { baseUrl: origin, retry: false },
      "bench-traced": { baseUrl: origin, tracing: true }
    }
  })
  const path = HttpClientRequest.get("/bench")

  const scenarios: ReadonlyArray<Scenario> = [
    awaited(baselineName, async () => (await request(url, { dispatcher: a1 })).body.text()),
    awaited(
      "bare: await agent.request({ origin, path }) + body.text()",
      async () => (await a2.request({ origin, path: "/bench", method: "GET" })).body.text()
    ),
    inFiber(
      runtime,
      "in-fiber Effect.promise(undici request + text)",
      Effect.promise(async () => (await request(url, { dispatcher: a3 })).body.text())
    ),
    inFiber(
      runtime,
      "in-fiber Effect.tryPromise(undici request + text, with an AbortSignal)",
      Effect.tryPromise({
        try: async (signal) => (await request(url, { dispatcher: a4, signal })).body.text(),
        catch: (error) => error
      })
    ),
    inFiber(
      runtime,
      "@effect/platform HttpClient GET + text (tracer on: the default)",
      Effect.flatMap(traced.execute(getRequest), (r) => r.text)
    ),
    inFiber(
      runtime,
      "@effect/platform HttpClient GET + text (tracer off)",
      Effect.flatMap(untraced.execute(getRequest), (r) => r.text)
    ),
    inFiber(
      runtime,
      "@effect/platform HttpClient GET + arrayBuffer (tracer off) in Timeout.apply",
      timeout.apply(Effect.flatMap(untracedTimed.execute(getRequest), (r) => r.arrayBuffer))
    ),
    inFiber(runtime, "ConnectionManager.request, retry: false (breaker, 30 s timeout)", manager.request("bench-single", path)),
    inFiber(runtime, managerName, manager.request("bench", path)),
    inFiber(
      runtime,
      "ConnectionManager.request, tracing pool (the HttpClient transport, client span per call)",
      manager.request("bench-traced", path)
    )
  ]

  console.log(`-- loopback keep-alive GET (server in a worker thread), one caller, median of ${rounds} interleaved rounds`)
  const rows = yield* Effect.promise(() => measureInterleaved(scenarios))
  const baseline = rows.find((r) => r.name === baselineName)!
  const managerRow = rows.find((r) => r.name === managerName)!
  const ratio = managerRow.nsPerCall / baseline.nsPerCall
  return { rows, baseline, manager: managerRow, ratio, targetMet: ratio <= 1.05 }
})).pipe(Effect.orDie)

/** The report as a RESULTS.md section. */
export const markdown = (report: HttpReport): string => {
  const base = report.baseline.nsPerCall
  const lines = report.rows.map((row) =>
    `| ${row.name} | ${ns(row.nsPerCall)} | ${
      row.name === baselineName ? "–" : `${row.nsPerCall >= base ? "+" : "−"}${ns(Math.abs(row.nsPerCall - base))}`
    } | ${(row.nsPerCall / base).toFixed(2)}× | ${row.spread.toFixed(2)} |`
  )
  return `## HTTP: loopback keep-alive GET (server in a worker thread)

Median of ${rounds} interleaved rounds per scenario (spread = slowest round / fastest). Target: the
ConnectionManager call within 5% of a bare undici \`request\`: ${report.ratio.toFixed(2)}× — ${
    report.targetMet ? "met" : "NOT met"
  }.

| scenario | per call | over bare undici | ratio | spread |
|---|---|---|---|---|
${lines.join("\n")}
`
}

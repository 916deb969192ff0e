/**
 * The ConnectionManager side by side with a bare undici `request`, the bare `@effect/platform`
 * HttpClient (NodeHttpClient over undici) and the steps in between, on the same loopback
 * keep-alive GET, in one run. The server (node:http, a 2-byte body) runs in a child process, so
 * that its work is charged neither to the client's thread nor to its CPU time. Sequential calls
 * by one caller; every scenario reads the whole body and has its own undici Agent (one
 * connection, kept alive).
 *
 * Loopback HTTP is noisy (two processes, the kernel, the garbage collector), so the scenarios are
 * measured in interleaved rounds (round r measures every scenario once, in a rotated order): each
 * row is the median of its rounds, and the target's ratio is the median of the per-round ratios
 * (manager / baseline, measured moments apart), which cancels the drift between rounds. The
 * client's CPU time per call (`process.cpuUsage`) is reported too: it is what the client's code
 * costs, without the waiting.
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
import { spawn, type ChildProcess } from "node:child_process"
import { Agent, request } from "undici"
import * as ConnectionManager from "../src/infra/ConnectionManager.js"
import * as Timeout from "../src/resilience/Timeout.js"
import { type Baseline, ns, type Row } from "./harness.js"

/** A row, with the client's CPU time per call (median of the rounds). */
export interface HttpRow extends Row {
  readonly cpuNsPerCall: number
}

export interface HttpReport {
  readonly rows: ReadonlyArray<HttpRow>
  /** The bare undici `request` row, the target's baseline. */
  readonly baseline: HttpRow
  /** The manager's row (default pool). */
  readonly manager: HttpRow
  /** Median of the per-round ratios manager / baseline (wall time per call). */
  readonly ratio: number
  /** The same for the client's CPU time per call. */
  readonly cpuRatio: number
  readonly targetMet: boolean
}

export const baselineName = "bare: await undici request(url) + body.text()"
export const managerName = "ConnectionManager.request, default pool (retry, breaker, 30 s timeout)"

const rounds = 15
const targetMillisPerBatch = 120

const serverSource = `
const http = require("node:http")
const server = http.createServer((req, res) => { res.setHeader("content-type", "text/plain"); res.end("ok") })
server.keepAliveTimeout = 60000
server.listen(0, "127.0.0.1", () => console.log(server.address().port))
`

/** A node:http server in a child process; its port. Killed with the scope. */
const server = Effect.acquireRelease(
  Effect.async<{ readonly child: ChildProcess; readonly port: number }>((resume) => {
    const child = spawn(process.execPath, ["-e", serverSource], { stdio: ["ignore", "pipe", "inherit"] })
    child.stdout!.once("data", (data: Buffer) => resume(Effect.succeed({ child, port: Number(String(data).trim()) })))
  }),
  ({ child }) => Effect.sync(() => child.kill())
)

const makeAgent = Effect.acquireRelease(
  Effect.sync(() => new Agent({ connections: 50 })),
  (agent) => Effect.promise(() => agent.destroy())
)

interface Scenario {
  readonly name: string
  readonly baseline: Baseline
  /** Runs `n` calls in a row; wall and CPU nanoseconds per call. */
  readonly batch: (n: number) => Promise<Sample>
}

interface Sample {
  readonly wall: number
  readonly cpu: number
}

/** Starts a sample; the returned function ends it for `n` calls. */
const startSample = (): (n: number) => Sample => {
  const cpu = process.cpuUsage()
  const start = performance.now()
  return (n) => {
    const wall = performance.now() - start
    const used = process.cpuUsage(cpu)
    return { wall: (wall * 1e6) / n, cpu: ((used.user + used.system) * 1e3) / n }
  }
}

const awaited = (name: string, call: () => Promise<unknown>): Scenario => ({
  name,
  baseline: "await",
  batch: async (n) => {
    const end = startSample()
    for (let i = 0; i < n; i++) await call()
    return end(n)
  }
})

/** An effect run `n` times in one fiber (one `runPromise` per batch, not per call). */
const inFiber = (runtime: Runtime.Runtime<never>, name: string, effect: Effect.Effect<unknown, unknown>): Scenario => ({
  name,
  baseline: "fiber",
  batch: (n) =>
    Runtime.runPromise(runtime)(Effect.gen(function*() {
      const end = startSample()
      for (let i = 0; i < n; i++) yield* effect
      return end(n)
    }))
})

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** Every scenario's samples, round by round (`samples[i][r]`). */
const measureInterleaved = async (scenarios: ReadonlyArray<Scenario>): Promise<Array<Array<Sample>>> => {
  const sizes: Array<number> = []
  for (const scenario of scenarios) {
    const warm = await scenario.batch(2_000)
    sizes.push(Math.max(500, Math.round((targetMillisPerBatch * 1e6) / warm.wall)))
  }
  const samples: Array<Array<Sample>> = scenarios.map(() => [])
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < scenarios.length; k++) {
      const i = (k + r) % scenarios.length
      samples[i]!.push(await scenarios[i]!.batch(sizes[i]!))
    }
  }
  return samples
}

const rowOf = (scenario: Scenario, samples: ReadonlyArray<Sample>): HttpRow => {
  const walls = samples.map((x) => x.wall)
  const row: HttpRow = {
    group: "http",
    name: scenario.name,
    baseline: scenario.baseline,
    nsPerCall: median(walls),
    spread: Math.max(...walls) / Math.min(...walls),
    cpuNsPerCall: median(samples.map((x) => x.cpu))
  }
  console.log(
    `${row.name.padEnd(76)} ${(row.nsPerCall / 1000).toFixed(1).padStart(7)} µs  cpu ${
      (row.cpuNsPerCall / 1000).toFixed(1).padStart(6)
    } µs  spread ${row.spread.toFixed(2)}`
  )
  return row
}

/** Median over the rounds of `of(a) / of(b)`, the two measured in the same round. */
const pairedRatio = (a: ReadonlyArray<Sample>, b: ReadonlyArray<Sample>, of: (x: Sample) => number): number =>
  median(a.map((x, r) => of(x) / of(b[r]!)))

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

  console.log(`-- loopback keep-alive GET (server in a child process), one caller, ${rounds} interleaved rounds`)
  const samples = yield* Effect.promise(() => measureInterleaved(scenarios))
  const rows = scenarios.map((scenario, i) => rowOf(scenario, samples[i]!))
  const b = scenarios.findIndex((x) => x.name === baselineName)
  const m = scenarios.findIndex((x) => x.name === managerName)
  const ratio = pairedRatio(samples[m]!, samples[b]!, (x) => x.wall)
  const cpuRatio = pairedRatio(samples[m]!, samples[b]!, (x) => x.cpu)
  console.log(`manager / bare undici: ${ratio.toFixed(3)} (wall), ${cpuRatio.toFixed(3)} (client CPU)`)
  return { rows, baseline: rows[b]!, manager: rows[m]!, ratio, cpuRatio, targetMet: ratio <= 1.05 }
})).pipe(Effect.orDie)

/** The report as a RESULTS.md section. */
export const markdown = (report: HttpReport): string => {
  const base = report.baseline
  const lines = report.rows.map((row) =>
    `| ${row.name} | ${ns(row.nsPerCall)} | ${
      row.name === baselineName ? "–" : `${row.nsPerCall >= base.nsPerCall ? "+" : "−"}${ns(Math.abs(row.nsPerCall - base.nsPerCall))}`
    } | ${(row.nsPerCall / base.nsPerCall).toFixed(2)}× | ${ns(row.cpuNsPerCall)} | ${
      (row.cpuNsPerCall / base.cpuNsPerCall).toFixed(2)
    }× | ${row.spread.toFixed(2)} |`
  )
  return `## HTTP: loopback keep-alive GET (server in a child process)

${rounds} interleaved rounds per scenario; each row is the median of its rounds (spread = slowest
round / fastest); "CPU" is the client process's CPU time per call. Target: the ConnectionManager
call within 5% of a bare undici \`request\`, as the median of the per-round ratios:
${report.ratio.toFixed(2)}× wall time, ${report.cpuRatio.toFixed(2)}× client CPU — ${report.targetMet ? "met" : "NOT met"}.
Loopback latency is noisy: the same code measures a few percent apart from run to run.

| scenario | per call | over bare undici | ratio | CPU per call | CPU ratio | spread |
|---|---|---|---|---|---|---|
${lines.join("\n")}
`
}

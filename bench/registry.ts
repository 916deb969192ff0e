/**
 * The agent registry at scale: 100,000 registered agents (register rate, heap per entry), then,
 * over them, lookups by id in one fiber, a capability query returning 100 agents (indexed), the
 * same with two more criteria (the index, then a filter), the same through `findBy`, and a query no
 * index can serve (a full scan, for scale).
 *
 * Rates are the best of several rounds, in one fiber, on compiled code. The heap figure counts what
 * the registry adds per agent (entry, frozen metadata copy, index memberships, map slots), not the
 * id strings, which the caller already holds.
 *
 * Targets: register ≥ 100,000/s; lookup ≥ 2,000,000/s in one fiber; a capability query returning
 * ~100 agents ≤ 20 µs.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as AgentRegistry from "../src/agents/AgentRegistry.js"
import * as Criteria from "../src/data/Criteria.js"

export interface RegistryReport {
  readonly count: number
  readonly registerPerSecond: number
  readonly bytesPerAgent: number
  readonly lookupsPerSecond: number
  readonly floorLookupsPerSecond: number
  readonly queryMicros: number
  readonly queryResults: number
  readonly compoundMicros: number
  readonly compoundResults: number
  readonly findByMicros: number
  readonly scanMillis: number
  readonly scanResults: number
}

export const N = 100_000
/** Distinct capabilities: each is held by N / 1000 = 100 agents. */
const capabilityCount = 1000

const gc = (): void => {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect !== undefined) for (let i = 0; i < 3; i++) collect()
}

const heap = (): number => {
  gc()
  return process.memoryUsage().heapUsed
}

const healths: ReadonlyArray<AgentRegistry.Health> = ["healthy", "degraded", "unhealthy"]

const metadataOf = (i: number): AgentRegistry.Metadata => ({
  capabilities: [`cap-${i % capabilityCount}`, `tier-${i % 10}`],
  health: healths[i % 3]!,
  node: `node-${i % 16}`,
  resources: { memory_usage: (i % 100) / 100, cpu_available: ((i * 7) % 100) / 100 }
})

/** The best rate (per second) over `rounds` rounds of `n` runs of `body`. */
const bestRate = <E>(rounds: number, n: number, body: (i: number) => Effect.Effect<unknown, E>) =>
  Effect.orDie(Effect.gen(function*() {
    let best = 0
    for (let r = 0; r < rounds; r++) {
      const start = performance.now()
      for (let i = 0; i < n; i++) yield* body(i)
      best = Math.max(best, n / ((performance.now() - start) / 1000))
    }
    return best
  }))

export const run: Effect.Effect<RegistryReport> = Effect.gen(function*() {
  console.log("-- agent registry")
  const scope = yield* Scope.make()
  // Warm the code paths on a registry of their own, then measure on a fresh one.
  const warm = yield* Effect.orDie(Scope.extend(AgentRegistry.make({ name: "warm" }), scope))
  for (let i = 0; i < 20_000; i++) yield* Effect.orDie(warm.register(`w-${i}`, metadataOf(i)))
  for (let i = 0; i < 20_000; i++) yield* Effect.orDie(warm.unregister(`w-${i}`))

  let inputs: Array<AgentRegistry.Metadata> | undefined = Array.from({ length: N }, (_, i) => metadataOf(i))
  const ids = Array.from({ length: N }, (_, i) => `agent-${i}`)
  const before = heap()
  const registry = yield* Effect.orDie(Scope.extend(AgentRegistry.make({ name: "bench" }), scope))
  const start = performance.now()
  for (let i = 0; i < N; i++) yield* Effect.orDie(registry.register(ids[i]!, inputs[i]!))
  const registerPerSecond = N / ((performance.now() - start) / 1000)
  inputs = undefined // the registry keeps copies: the inputs are garbage now
  const bytesPerAgent = (heap() - before) / N
  console.log(`register ${N}: ${(registerPerSecond / 1000).toFixed(0)} k/s, ${bytesPerAgent.toFixed(0)} B per agent`)

  const lookupsPerSecond = yield* bestRate(5, N, (i) => registry.lookup(ids[i]!))
  console.log(`lookup: ${(lookupsPerSecond / 1e6).toFixed(2)} M/s`)
  const plain = new Map(ids.map((id, i) => [id, i]))
  const floorLookupsPerSecond = yield* bestRate(5, N, (i) => Effect.sync(() => plain.get(ids[i]!)))
  console.log(`floor (Effect.sync of a Map get): ${(floorLookupsPerSecond / 1e6).toFixed(2)} M/s`)

  const criteria = Array.from({ length: 100 }, (_, c) => Criteria.eq("capabilities", `cap-${c * 7}`))
  let queryResults = 0
  const queryRate = yield* bestRate(5, 20_000, (i) =>
    Effect.map(registry.query(criteria[i % 100]!), (found) => {
      queryResults = found.length
    }))
  const queryMicros = 1e6 / queryRate
  console.log(`query capability (${queryResults} agents): ${queryMicros.toFixed(2)} µs`)

  const compound = Array.from({ length: 100 }, (_, c) => [
    Criteria.eq("capabilities", `cap-${c * 7}`),
    Criteria.eq("health", "healthy"),
    Criteria.gte(["resources", "cpu_available"], 0.2)
  ])
  let compoundResults = 0
  const compoundRate = yield* bestRate(5, 20_000, (i) =>
    Effect.map(registry.query(compound[i % 100]!), (found) => {
      compoundResults = found.length
    }))
  const compoundMicros = 1e6 / compoundRate
  console.log(`query capability ∧ healthy ∧ cpu_available ≥ 0.2 (${compoundResults} agents): ${compoundMicros.toFixed(2)} µs`)

  const findByRate = yield* bestRate(5, 20_000, (i) => registry.findBy({ capability: `cap-${(i % 100) * 7}` }))
  const findByMicros = 1e6 / findByRate
  console.log(`findBy capability: ${findByMicros.toFixed(2)} µs`)

  const scan = Criteria.and(Criteria.gte(["resources", "memory_usage"], 0.99), Criteria.neq("node", "x"))
  let scanResults = 0
  const scanRate = yield* bestRate(3, 20, () =>
    Effect.map(registry.query(scan), (found) => {
      scanResults = found.length
    }))
  const scanMillis = 1000 / scanRate
  console.log(`query by a resource (full scan of ${N}, ${scanResults} agents): ${scanMillis.toFixed(2)} ms`)
  yield* Scope.close(scope, Exit.void)
  return {
    count: N,
    registerPerSecond,
    bytesPerAgent,
    lookupsPerSecond,
    floorLookupsPerSecond,
    queryMicros,
    queryResults,
    compoundMicros,
    compoundResults,
    findByMicros,
    scanMillis,
    scanResults
  }
})

/** The report as a RESULTS.md section. */
export const markdown = (r: RegistryReport): string => `## Agent registry

| | figure | target |
|---|---|---|
| register ${r.count.toLocaleString("en")} agents, one fiber (validate, copy, index by capability, health, node) | ${(r.registerPerSecond / 1000).toFixed(0)} k/s | ≥ 100 k/s |
| heap per registered agent (entry, metadata copy, index memberships; ids not counted) | ${(r.bytesPerAgent / 1024).toFixed(2)} KB | (reported) |
| lookup by id among ${r.count.toLocaleString("en")}, one fiber | ${(r.lookupsPerSecond / 1e6).toFixed(2)} M/s | ≥ 2 M/s |
| floor: \`Effect.sync\` of a plain \`Map\` get, same ids | ${(r.floorLookupsPerSecond / 1e6).toFixed(2)} M/s | |
| query \`eq capabilities\` returning ${r.queryResults} agents (one criterion on an index: the index holds the answer) | ${r.queryMicros.toFixed(2)} µs | ≤ 20 µs |
| query capability ∧ \`health eq healthy\` ∧ \`cpu_available gte 0.2\` (${r.compoundResults} agents: the index, then a filter) | ${r.compoundMicros.toFixed(2)} µs | |
| \`findBy({ capability })\` returning ${r.queryResults} agents | ${r.findByMicros.toFixed(2)} µs | |
| query on a resource figure (no index: a scan of ${r.count.toLocaleString("en")}, ${r.scanResults} agents) | ${r.scanMillis.toFixed(2)} ms | |
`

/**
 * Agents at scale: spawning 100,000 idle agents, through the registry and alone (time and heap
 * per agent; an idle agent holds no fiber: a worker runs while it has messages), and the call round trip
 * (caller → mailbox → agent fiber → reply) in one caller fiber, side by side with a bare
 * `Queue` + `Deferred` round trip to a fiber (the floor of any mailbox actor on Effect).
 *
 * Targets: 100,000 idle agents in ≤ 3 s and ≤ 4 KB each; ≥ 100,000 calls/s.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Exit from "effect/Exit"
import * as Agent from "../src/agents/Agent.js"
import * as AgentRegistry from "../src/agents/AgentRegistry.js"

export interface AgentsReport {
  readonly count: number
  /** Spawned through the registry (registered while they run). */
  readonly spawnSeconds: number
  readonly bytesPerAgent: number
  /** Spawned with `Agent.spawn` alone. */
  readonly bareSpawnSeconds: number
  readonly bareBytesPerAgent: number
  readonly callsPerSecond: number
  readonly floorCallsPerSecond: number
}

export const N = 100_000

const gc = (): void => {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect !== undefined) for (let i = 0; i < 3; i++) collect()
}

const heap = (): number => {
  gc()
  return process.memoryUsage().heapUsed
}

const Counter = Agent.define({
  name: "counter",
  state: Schema.Number,
  initial: 0,
  actions: {
    increment: Agent.action({
      params: Schema.Number,
      run: (by: number, ctx: Agent.ActionContext<number>) => Effect.as(ctx.updateState((n) => n + by), ctx.state)
    })
  }
})

/** Ids made before measuring: their strings are the caller's, not the agents'. */
const ids = Array.from({ length: N }, (_, i) => `agent-${i}`)
const capabilities = ["count", "inference", "training", "consensus"]

const spawnMany = (registered: boolean) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const registry = yield* AgentRegistry.make().pipe(Scope.extend(scope))
    const metadata = ids.map((_, i): AgentRegistry.Metadata => ({
      capabilities: [capabilities[i % capabilities.length]!],
      health: "healthy",
      node: `node-${i % 10}`,
      resources: {}
    }))
    const before = heap()
    const start = performance.now()
    // One fiber spawns them all into `scope` (the agents' parent), as a service's layer would.
    yield* Effect.gen(function*() {
      if (registered) {
        for (let i = 0; i < N; i++) yield* registry.spawn(Counter, { id: ids[i]!, metadata: metadata[i]! })
      } else {
        for (let i = 0; i < N; i++) yield* Agent.spawn(Counter, { id: ids[i]! })
      }
    }).pipe(Scope.extend(scope))
    const seconds = (performance.now() - start) / 1000
    const bytes = (heap() - before) / N
    if (registered && (yield* registry.count) !== N) return yield* Effect.dieMessage("not every agent is registered")
    yield* Scope.close(scope, Exit.void)
    return { seconds, bytes }
  })

const callRate = Effect.scoped(Effect.gen(function*() {
  const agent = yield* Agent.spawn(Counter, { id: "bench" })
  const call = agent.call("increment", 1)
  for (let i = 0; i < 20_000; i++) yield* call
  let best = 0
  for (let r = 0; r < 5; r++) {
    const n = 100_000
    const start = performance.now()
    for (let i = 0; i < n; i++) yield* call
    best = Math.max(best, n / ((performance.now() - start) / 1000))
  }
  return best
}))

/** The floor: a fiber serving a Queue of (value, Deferred) pairs. */
const floorRate = Effect.scoped(Effect.gen(function*() {
  const mailbox = yield* Queue.bounded<readonly [number, Deferred.Deferred<number>]>(1000)
  let state = 0
  yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(mailbox), ([by, reply]) => {
    state += by
    return Deferred.succeed(reply, state)
  })))
  const call = Effect.flatMap(Deferred.make<number>(), (reply) => Effect.zipRight(Queue.offer(mailbox, [1, reply]), Deferred.await(reply)))
  for (let i = 0; i < 20_000; i++) yield* call
  let best = 0
  for (let r = 0; r < 5; r++) {
    const n = 100_000
    const start = performance.now()
    for (let i = 0; i < n; i++) yield* call
    best = Math.max(best, n / ((performance.now() - start) / 1000))
  }
  return best
}))

export const run: Effect.Effect<AgentsReport> = Effect.gen(function*() {
  console.log("-- agents")
  const bare = yield* spawnMany(false)
  console.log(`spawn ${N} idle agents: ${bare.seconds.toFixed(2)} s, ${bare.bytes.toFixed(0)} B per agent`)
  const spawned = yield* spawnMany(true)
  console.log(`spawn ${N} idle agents, registered: ${spawned.seconds.toFixed(2)} s, ${spawned.bytes.toFixed(0)} B per agent`)
  const calls = yield* callRate
  console.log(`agent call round trip: ${(calls / 1000).toFixed(0)} k calls/s`)
  const floor = yield* floorRate
  console.log(`floor (Queue + Deferred to a fiber): ${(floor / 1000).toFixed(0)} k calls/s`)
  return {
    count: N,
    spawnSeconds: spawned.seconds,
    bytesPerAgent: spawned.bytes,
    bareSpawnSeconds: bare.seconds,
    bareBytesPerAgent: bare.bytes,
    callsPerSecond: calls,
    floorCallsPerSecond: floor
  }
}).pipe(Effect.orDie)

/** The report as a RESULTS.md section. */
export const markdown = (r: AgentsReport): string => `## Agents

| | figure | target |
|---|---|---|
| spawn ${r.count.toLocaleString("en")} idle agents through the registry (registered while they run) | ${r.spawnSeconds.toFixed(2)} s | ≤ 3 s |
| heap per idle registered agent (scope, mailbox, reference, registry entry and indexes) | ${(r.bytesPerAgent / 1024).toFixed(2)} KB | ≤ 4 KB |
| the same with \`Agent.spawn\` alone (no registry) | ${r.bareSpawnSeconds.toFixed(2)} s, ${(r.bareBytesPerAgent / 1024).toFixed(2)} KB per agent | |
| call round trip, one caller (validate params, mailbox, action, reply) | ${(r.callsPerSecond / 1000).toFixed(0)} k calls/s | ≥ 100 k/s |
| floor: a bare \`Queue\` + \`Deferred\` round trip to a fiber | ${(r.floorCallsPerSecond / 1000).toFixed(0)} k calls/s | |
`

import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Demo from "../../src/cli/Demo.js"
import type * as LoadTestCommand from "../../src/cli/LoadTestCommand.js"
import * as TeamDemo from "../../src/cli/TeamDemo.js"

const capture = (isTTY: boolean) => {
  const written: Array<string> = []
  const output: LoadTestCommand.Output = { isTTY, write: (text) => Effect.sync(() => void written.push(text)) }
  return { output, text: () => written.join("") }
}

const sections = ["1. Team", "2. Leader election", "3. Consensus", "4. Barrier", "5. Work", "6. Chaos", "7. Health", "8. Key metrics"]

describe("foundation demo", () => {
  // Real time is the point of the demo (latencies, timeouts, the breaker's reset delay).
  it.live("calls the flaky service through Protect, tours the services, and tells the agents' story", () =>
    Effect.gen(function*() {
      const { output, text } = capture(false)
      const report = yield* Demo.run({ calls: 100, seed: 7, output })
      const total = Object.values(report.outcomes).reduce((a, b) => a + b, 0)
      expect(total).toBe(100)
      expect(report.outcomes.ok).toBeGreaterThan(30)
      // the outage trips the breaker, which then rejects calls without running them
      expect(report.stateChanges.some((line) => line.endsWith("closed → open"))).toBe(true)
      expect(report.breaker.rejections).toBeGreaterThan(0)
      expect(report.outcomes.CircuitOpenError).toBe(report.breaker.rejections)
      // failures were retried
      expect(report.retries).toBeGreaterThan(0)
      expect(report.limiter.allowed).toBeGreaterThanOrEqual(total - (report.outcomes.RateLimitedError ?? 0))
      // the services: the cache saves calls, the pool caps concurrency, backpressure rises and falls
      const { cache, fanOut, levels } = report.services
      expect(cache.hits + cache.misses).toBe(60)
      expect(cache.computations).toBeLessThan(60)
      expect(fanOut).toMatchObject({ items: 24 })
      expect(fanOut.peak).toBeLessThanOrEqual(4)
      expect(fanOut.succeeded + fanOut.failed).toBe(24)
      expect(levels).toEqual(["normal → moderate", "moderate → severe", "severe → moderate", "moderate → normal"])

      const team = report.team
      const profiles = new Map(TeamDemo.team.map((p) => [p.id, p]))
      // 1. the supervised team registered itself with its capabilities
      expect(team.registered.map((e) => e.id)).toEqual(["ada", "babbage", "curie", "dijkstra", "euler", "fermi"])
      for (const e of team.registered) {
        expect(e.capabilities).toEqual(profiles.get(e.id)!.capabilities)
        expect(e.health).toBe("healthy")
      }
      // 2. the oldest registered coordinator leads
      expect(team.election).toEqual({ capability: "coordinate", leader: "ada", term: 1 })
      // 3. a majority accepted (4 of 6 tolerate the risk; curie does not)
      expect(team.consensus.decision).toBe("accepted")
      const vote = (id: string) => team.consensus.votes.find((v) => v.participant === id)
      for (const id of ["ada", "babbage", "dijkstra", "euler"]) expect(vote(id)).toMatchObject({ vote: "yes", source: "voted" })
      expect(vote("curie")).toMatchObject({ vote: "no", source: "voted" })
      // 4. the barrier tripped once, releasing every party of its one generation
      expect(team.barrier.parties).toBe(6)
      expect(team.barrier.trips).toBe(1)
      expect(team.barrier.arrivals.map((a) => a.index)).toEqual([0, 1, 2, 3, 4, 5])
      expect(team.barrier.arrivals.every((a) => a.generation === 0)).toBe(true)
      expect(new Set(team.barrier.arrivals.map((a) => a.agent))).toEqual(new Set(profiles.keys()))
      // 5. every work item is accounted for, and went to an agent with its capability
      const work = team.work
      expect(work.processed + work.failed + work.unassigned).toBe(40)
      expect(work.unassigned).toBe(0)
      expect(work.processed).toBeGreaterThan(10)
      let assigned = 0
      for (const [agent, byKind] of Object.entries(work.assignments)) {
        for (const [kind, n] of Object.entries(byKind)) {
          expect(profiles.get(agent)!.capabilities).toContain(kind)
          assigned += n
        }
      }
      expect(assigned).toBe(40)
      expect(Object.values(work.failures).reduce((a, b) => a + b, 0)).toBe(work.failed)
      // 6. the killed agents (the leader first) came back: restarted, registered again, a new leader
      const chaos = team.chaos
      expect(chaos.killed).toHaveLength(3)
      expect(new Set(chaos.killed).size).toBe(3)
      expect(chaos.killed[0]).toBe("ada")
      expect(chaos.reregistered).toEqual(chaos.killed)
      expect(chaos.registryCount).toBe(6)
      expect(chaos.restarts).toBe(3)
      for (const id of profiles.keys()) expect(chaos.incarnations[id]).toBe(chaos.killed.includes(id) ? 2 : 1)
      for (const id of chaos.killed) {
        const down = chaos.events.indexOf(`registry: ${id} down (defect)`)
        const back = chaos.events.findIndex((e) => e.startsWith(`registry: ${id} registered again`))
        expect(down).toBeGreaterThanOrEqual(0)
        expect(back).toBeGreaterThan(down)
      }
      expect(chaos.leaderBefore).toBe("ada")
      expect(chaos.leaderAfter).toBeDefined()
      expect(chaos.leaderAfter).not.toBe("ada")
      expect(chaos.termAfter).toBeGreaterThanOrEqual(2)
      expect(chaos.events.some((e) => e.startsWith("election: term 2, leader ") && e.includes("leader_down, was ada"))).toBe(true)
      // 7. a health report with a status, from the built-in checks and the inventory breaker's
      expect(["healthy", "degraded", "unhealthy"]).toContain(team.health.status)
      expect(team.health.checks.map((c) => c.name)).toEqual(
        expect.arrayContaining(["agent_registry", "circuit_breakers", "inventory", "task_pools"])
      )
      expect(team.health.checks.find((c) => c.name === "agent_registry")?.status).toBe("healthy")
      // 8. the key figures agree with the sections
      expect(team.metrics).toMatchObject({
        calls: 40,
        successes: work.processed,
        failures: work.failed,
        restarts: 3,
        leaderTerm: chaos.termAfter
      })
      expect(team.metrics.retries).toBeGreaterThanOrEqual(0)

      // The story's text: every section, in order; plain lines only (no control characters).
      const written = text()
      const at = sections.map((title) => written.indexOf(`── ${title} `))
      expect(at.every((i) => i >= 0)).toBe(true)
      expect([...at].sort((a, b) => a - b)).toEqual(at)
      expect(written).not.toMatch(/[\r\x1b]/)
      expect(written).toContain("  [██████████████████████████████]  40/40 items")
      expect(work.progressUpdates).toBe(4) // a line per quarter
    }), 30_000)

  it.effect("bad options are refused, naming the option, before anything runs", () =>
    Effect.gen(function*() {
      const { output, text } = capture(false)
      const items = yield* Effect.flip(Demo.run({ items: 0, output }))
      expect(items).toMatchObject({ _tag: "ValidationError", field: "items" })
      const calls = yield* Effect.flip(Demo.run({ calls: 1.5, output }))
      expect(calls).toMatchObject({ _tag: "ValidationError", field: "calls" })
      const inventory = () => Effect.die("not reached")
      const kills = yield* Effect.flip(TeamDemo.run({ kills: 6, output, inventory }).pipe(Effect.provide(TeamDemo.teamServices)))
      expect(kills).toMatchObject({ _tag: "ValidationError", field: "kills" })
      expect(text()).toBe("")
    }))

  it.live("on a terminal, the work's progress is one line redrawn in place", () =>
    Effect.gen(function*() {
      const { output, text } = capture(true)
      const report = yield* TeamDemo.run({
        seed: 1,
        items: 12,
        kills: 1,
        output,
        inventory: (breaker) =>
          Effect.map(
            Demo.inventoryStack({ name: "team-tty", limitPer100Millis: 50, maxConcurrent: 4, breaker }),
            ({ retry, stack }) => ({ retry, lookup: (item: number) => stack.run(Demo.flakyService(1000)(item)) })
          )
      }).pipe(Effect.provide(TeamDemo.teamServices))
      expect(report.work.processed + report.work.failed).toBe(12)
      expect(report.work.progressUpdates).toBe(12) // one redraw per item
      const written = text()
      const redraws = written.split("\r").slice(1)
      expect(redraws).toHaveLength(12)
      expect(redraws.slice(0, 11).every((r) => !r.includes("\n"))).toBe(true) // no line feed between redraws
      expect(redraws[11]).toMatch(/^ {2}\[█{30}\] {2}12\/12 items/)
      expect(report.chaos).toMatchObject({ killed: ["ada"], reregistered: ["ada"], registryCount: 6, restarts: 1 })
    }), 20_000)
})

/**
 * The agents' part of `foundation demo`: a supervised team of agents on the Foundation's
 * services, told in sections. The team registers with its capabilities, elects a leader, votes,
 * meets at a barrier, shares out work (through a task pool, to a flaky dependency behind
 * Protect), loses agents to a chaos monkey and gets them back from its supervisor, and ends with
 * a health report and the key figures.
 *
 * Guarantees:
 * - Every service comes from one layer: `foundation demo` runs the story on `Foundation.layer()`
 *   (the whole runtime); `teamServices` (just the modules it uses) serves tests and embedding.
 * - What the story decides is reproducible from the seed: the team, the votes, the barrier's
 *   order, the work's distribution and the chaos monkey's victims (the flaky dependency draws
 *   from the same seed, but its draws interleave with real time). It runs on the live clock in
 *   about two seconds.
 * - Output goes to an `Output`: on a terminal the work's progress bar is one line redrawn with
 *   `\r`; elsewhere it is a few plain lines, with no control characters at all.
 * - Every work item is accounted for: processed, failed (with its error's tag) or unassigned.
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Agent from "../agents/Agent.js"
import * as AgentRegistry from "../agents/AgentRegistry.js"
import * as Barrier from "../agents/coordination/Barrier.js"
import * as Consensus from "../agents/coordination/Consensus.js"
import * as Election from "../agents/coordination/Election.js"
import * as Discovery from "../agents/Discovery.js"
import * as Supervisor from "../agents/Supervisor.js"
import type { ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as TaskPools from "../infra/TaskPools.js"
import * as HealthChecker from "../integration/HealthChecker.js"
import * as CircuitBreaker from "../resilience/CircuitBreaker.js"
import type * as Retry from "../resilience/Retry.js"
import type { Output } from "./LoadTestCommand.js"

// ---------------------------------------------------------------------------------------------
// The services
// ---------------------------------------------------------------------------------------------

/**
 * The services the story runs on, as one layer: the agent registry (which consensus resolves
 * ids through), consensus, named barriers, task pools, named circuit breakers and the health
 * checker. `Foundation.layer()` provides all of these too.
 */
export const teamServices = Layer.mergeAll(
  Consensus.layer(),
  Barrier.layer(),
  TaskPools.layer(),
  CircuitBreaker.layer(),
  HealthChecker.layer()
).pipe(Layer.provideMerge(AgentRegistry.layer()))

/** What `run` needs from its context. */
export type TeamServices = Layer.Layer.Success<typeof teamServices>

// ---------------------------------------------------------------------------------------------
// The team
// ---------------------------------------------------------------------------------------------

/** One member of the team: what it can do, its reported load, and its temperament. */
export interface Profile {
  readonly id: string
  readonly capabilities: ReadonlyArray<string>
  /** The load it reports to the registry (work goes to the least loaded first). */
  readonly load: number
  /** The highest risk it votes yes to. */
  readonly tolerance: number
  /** How long it thinks before it votes. */
  readonly thinkMillis: number
  /** How long it takes to prepare before the barrier. */
  readonly prepareMillis: number
}

/** The team. Three can coordinate (the election's candidates); work needs inference or training. */
export const team: ReadonlyArray<Profile> = [
  { id: "ada", capabilities: ["coordinate", "inference"], load: 2, tolerance: 0.5, thinkMillis: 30, prepareMillis: 80 },
  { id: "babbage", capabilities: ["coordinate", "training"], load: 1, tolerance: 0.6, thinkMillis: 60, prepareMillis: 30 },
  { id: "curie", capabilities: ["inference"], load: 0, tolerance: 0.3, thinkMillis: 45, prepareMillis: 120 },
  { id: "dijkstra", capabilities: ["inference", "training"], load: 0, tolerance: 0.5, thinkMillis: 90, prepareMillis: 50 },
  { id: "euler", capabilities: ["training"], load: 1, tolerance: 0.7, thinkMillis: 120, prepareMillis: 100 },
  { id: "fermi", capabilities: ["coordinate", "inference"], load: 3, tolerance: 0.2, thinkMillis: 150, prepareMillis: 70 }
]

/** The question put to the team. */
export const question = { proposal: "ship model v2 to production", risk: 0.4 } as const

const Question = Schema.Struct({ proposal: Schema.String, risk: Schema.Number })
const Prepare = Schema.Struct({ barrier: Schema.String })
const Work = Schema.Struct({ items: Schema.Array(Schema.Number) })
const Tally = Schema.Struct({ processed: Schema.Number, failed: Schema.Number })
const TeamState = Schema.Struct({ processed: Schema.Number, failed: Schema.Number, prepared: Schema.Boolean })
type TeamState = typeof TeamState.Type

/** The flaky dependency the work goes to, behind its Protect stack. */
export interface Inventory {
  /** Looks up item `i` through the stack. */
  readonly lookup: (item: number) => Effect.Effect<string, unknown>
  /** The stack's retry policy (for its metrics). */
  readonly retry: Retry.Policy
}

/** What a work item became. */
type ItemOutcome = { readonly ok: true } | { readonly ok: false; readonly error: string }

/** The agents' definition: one for the whole team (work is dispatched to agents running it). */
const teamAgent = (deps: {
  readonly profileOf: (id: string) => Profile
  readonly barriers: Barrier.Registry
  readonly pool: TaskPools.Pool
  readonly inventory: Inventory
  readonly itemDone: (outcome: ItemOutcome) => Effect.Effect<void>
}) =>
  Agent.define({
    name: "team-agent",
    state: TeamState,
    initial: { processed: 0, failed: 0, prepared: false },
    actions: {
      /** Votes on a question after thinking: yes when the risk is within its tolerance. */
      vote: Agent.action({
        params: Question,
        run: (q: typeof Question.Type, ctx: Agent.ActionContext<TeamState>) => {
          const profile = deps.profileOf(ctx.id)
          return Effect.as(Effect.sleep(Duration.millis(profile.thinkMillis)), q.risk <= profile.tolerance ? "yes" : "no")
        }
      }),
      /** Prepares, then waits at the barrier for the others; answers its arrival. */
      prepare: Agent.action({
        params: Prepare,
        run: ({ barrier }: typeof Prepare.Type, ctx: Agent.ActionContext<TeamState>) =>
          Effect.gen(function*() {
            yield* Effect.sleep(Duration.millis(deps.profileOf(ctx.id).prepareMillis))
            yield* ctx.updateState((s) => ({ ...s, prepared: true }))
            const arrivedAt = yield* Clock.currentTimeMillis
            const arrival = yield* (yield* deps.barriers.get(barrier)).awaitWithin("5 seconds")
            return { ...arrival, arrivedAt, at: yield* Clock.currentTimeMillis }
          })
      }),
      /**
       * Processes its share of the work, each item a task of the pool calling the dependency.
       * Protect never retries its own rejections; the agent does, for an open breaker: it pauses
       * (a `Schedule`) and tries the item again, a few times.
       */
      work: Agent.action({
        params: Work,
        run: ({ items }: typeof Work.Type, ctx: Agent.ActionContext<TeamState>) =>
          Effect.gen(function*() {
            const exits = yield* deps.pool.executeBatch(items, (item) =>
              deps.inventory.lookup(item).pipe(
                Effect.retry({ schedule: breakerPause, while: isCircuitOpen }),
                Effect.onExit((exit) =>
                  deps.itemDone(Exit.isSuccess(exit) ? { ok: true } : { ok: false, error: tagOf(exit.cause) })
                )
              ))
            const processed = exits.filter(Exit.isSuccess).length
            const failed = exits.length - processed
            yield* ctx.updateState((s) => ({ ...s, processed: s.processed + processed, failed: s.failed + failed }))
            return Tally.make({ processed, failed })
          })
      }),
      /** The chaos monkey's button: the agent dies (a defect). */
      crash: Agent.action({
        params: Schema.Struct({}),
        run: (_: object, ctx: Agent.ActionContext<TeamState>) => Effect.dieMessage(`chaos monkey killed ${ctx.id}`)
      })
    }
  })

/** How an agent waits for an open breaker: 150 ms, five times at most. */
const breakerPause = Schedule.intersect(Schedule.spaced("150 millis"), Schedule.recurs(5))

const isCircuitOpen = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "_tag" in error && error._tag === "CircuitOpenError"

/** The tag of a failed item's error ("Defect", "Interrupted" when it has none). */
const tagOf = (cause: Cause.Cause<unknown>): string =>
  Option.match(Cause.failureOption(cause), {
    onNone: () => Cause.isInterruptedOnly(cause) ? "Interrupted" : "Defect",
    onSome: (error) =>
      typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string" ? error._tag : "Error"
  })

// ---------------------------------------------------------------------------------------------
// Output helpers
// ---------------------------------------------------------------------------------------------

/** Writes whole lines to the console (no terminal control): the default output. */
export const consoleOutput: Output = {
  isTTY: false,
  write: (text) => Console.log(text.endsWith("\n") ? text.slice(0, -1) : text)
}

/** A section heading (a blank line, then the title in a rule). */
export const rule = (title: string): string => `\n── ${title} ${"─".repeat(Math.max(3, 72 - title.length))}`

const bar = (done: number, total: number, width = 30): string => {
  const full = total === 0 ? width : Math.round((done / total) * width)
  return `[${"█".repeat(full)}${"░".repeat(width - full)}]`
}

const times = (n: number): string => n === 1 ? "once" : `${n} times`

const seconds = (millis: number): string => `${(millis / 1000).toFixed(2)} s`

const ordinal = (n: number): string => {
  const suffix = n % 10 === 1 && n % 100 !== 11 ? "st" : n % 10 === 2 && n % 100 !== 12 ? "nd" : n % 10 === 3 && n % 100 !== 13 ? "rd" : "th"
  return `${n}${suffix}`
}

const detailsText = (details: Readonly<Record<string, unknown>>): string =>
  Object.entries(details)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? (v.length === 0 ? "none" : v.join(",")) : typeof v === "number" && !Number.isInteger(v) ? v.toFixed(2) : String(v)}`)
    .join(" ")

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

/** What the team's story saw. */
export interface TeamReport {
  readonly teamSize: number
  /** The registry after the team started, by id. */
  readonly registered: ReadonlyArray<{ readonly id: string; readonly capabilities: ReadonlyArray<string>; readonly health: string }>
  readonly election: { readonly capability: string; readonly leader: string | undefined; readonly term: number }
  readonly consensus: {
    readonly decision: Consensus.Decision
    readonly reason: Consensus.EndReason
    readonly votes: ReadonlyArray<{ readonly participant: string; readonly vote: Consensus.Vote; readonly source: Consensus.BallotSource }>
  }
  readonly barrier: {
    readonly parties: number
    readonly trips: number
    /** Agents in arrival order. */
    readonly arrivals: ReadonlyArray<{ readonly agent: string; readonly index: number; readonly generation: number }>
  }
  readonly work: {
    readonly items: number
    readonly processed: number
    readonly failed: number
    readonly unassigned: number
    /** Items given to each agent, by kind. */
    readonly assignments: Readonly<Record<string, Readonly<Record<string, number>>>>
    /** Failed items by error tag. */
    readonly failures: Readonly<Record<string, number>>
    /** The progress lines written (plain output) or redraws made (terminal). */
    readonly progressUpdates: number
  }
  readonly chaos: {
    readonly killed: ReadonlyArray<string>
    /** What the registry and the election said, in order. */
    readonly events: ReadonlyArray<string>
    /** Killed agents that registered again. */
    readonly reregistered: ReadonlyArray<string>
    readonly registryCount: number
    readonly incarnations: Readonly<Record<string, number>>
    readonly restarts: number
    readonly leaderBefore: string | undefined
    readonly leaderAfter: string | undefined
    readonly termAfter: number
  }
  readonly health: {
    readonly status: HealthChecker.Status
    readonly checks: ReadonlyArray<{ readonly name: string; readonly status: HealthChecker.CheckStatus }>
  }
  readonly metrics: {
    readonly calls: number
    readonly successes: number
    readonly failures: number
    readonly retries: number
    readonly breakerOpens: number
    readonly breakerRejections: number
    readonly restarts: number
    readonly leaderTerm: number
    readonly elapsedMillis: number
  }
}

/** Options of the story. */
export interface TeamOptions {
  /** Seed of the chaos monkey (and of the dependency's failures) [42]. */
  readonly seed?: number
  /** Work items [40]. */
  readonly items?: number
  /** Agents the chaos monkey kills: the leader first, then others at random (1–5) [3]. */
  readonly kills?: number
  /** Where to write [the console, plain lines]. */
  readonly output?: Output
  /**
   * The dependency behind Protect, built around the breaker the story registers as "inventory"
   * in `CircuitBreakers` (so the health checks see it).
   */
  readonly inventory: (breaker: CircuitBreaker.CircuitBreaker) => Effect.Effect<Inventory, ValidationError, Scope.Scope>
}

// ---------------------------------------------------------------------------------------------
// The story
// ---------------------------------------------------------------------------------------------

/**
 * Tells the story (writing as it goes) and returns what happened. Bad options fail with a
 * `ValidationError` naming the option (`seed`, `items`, `kills`) before anything starts; a
 * failure of the services after that is a defect (the story has no way around it).
 */
export const run = (options: TeamOptions): Effect.Effect<TeamReport, ValidationError, TeamServices> =>
  Effect.gen(function*() {
    const seed = yield* Validation.int("seed", options.seed ?? 42)
    const items = yield* Validation.positiveInt("items", options.items ?? 40)
    const kills = yield* Validation.int("kills", options.kills ?? 3, { min: 1, max: team.length - 1 })
    return yield* story(options, seed, items, kills)
  })

const story = (
  options: TeamOptions,
  seed: number,
  itemCount: number,
  kills: number
): Effect.Effect<TeamReport, never, TeamServices> =>
  Effect.scoped(Effect.gen(function*() {
    const output = options.output ?? consoleOutput
    const say = (line = "") => output.write(`${line}\n`)
    const started = yield* Clock.currentTimeMillis

    const registry = yield* AgentRegistry.AgentRegistry
    const consensus = yield* Consensus.Consensus
    const barriers = yield* Barrier.Barriers
    const pools = yield* TaskPools.TaskPools
    const breakers = yield* CircuitBreaker.CircuitBreakers
    const checker = yield* HealthChecker.HealthChecker

    yield* say(rule("The agents' story"))
    yield* say("The Foundation runtime is up (`Foundation.layer()`: event bus, telemetry, breakers, limiters, caches,")
    yield* say("resources, HTTP pools, task pools, store, agent registry, monitor, scheduler, locks, barriers,")
    yield* say("consensus, health checks; each service scoped: closing it stops them all, in reverse order).")

    // ---- the dependency, and what the work reports to the progress bar ----
    const breaker = yield* breakers.configure("inventory", {
      trip: CircuitBreaker.consecutive(5),
      resetAfter: "400 millis"
    })
    const inventory = yield* options.inventory(breaker)
    const pool = yield* pools.createPool("inventory", { maxConcurrency: 6, timeout: "5 seconds" })
    const breakerOpens = { count: 0 }
    yield* breaker.stateChanges.pipe(
      Stream.runForEach((change) => Effect.sync(() => {
        if (change.to === "open") breakerOpens.count++
      })),
      Effect.forkScoped
    )
    const progress = { done: 0, processed: 0, failed: 0, updates: 0, lastQuarter: 0, failures: new Map<string, number>() }
    const itemDone = (outcome: ItemOutcome): Effect.Effect<void> =>
      Effect.suspend(() => {
        progress.done++
        if (outcome.ok) progress.processed++
        else {
          progress.failed++
          progress.failures.set(outcome.error, (progress.failures.get(outcome.error) ?? 0) + 1)
        }
        const line = `${bar(progress.done, itemCount)} ${String(progress.done).padStart(3)}/${itemCount} items  ` +
          `${progress.processed} processed, ${progress.failed} failed`
        if (output.isTTY) {
          progress.updates++
          return output.write(`\r  ${line}`)
        }
        const quarter = Math.floor((progress.done / itemCount) * 4)
        if (quarter <= progress.lastQuarter) return Effect.void
        progress.lastQuarter = quarter
        progress.updates++
        return say(`  ${line}`)
      })

    const profiles = new Map(team.map((p) => [p.id, p]))
    const definition = teamAgent({ profileOf: (id) => profiles.get(id)!, barriers, pool, inventory, itemDone })

    // ---- 1. Team ----
    yield* say(rule("1. Team"))
    yield* say(`A supervisor (one_for_one, at most 5 restarts in 5 s) starts ${team.length} agents; each incarnation`)
    yield* say("registers itself with its capabilities and leaves the registry when it ends.")
    const refs = new Map<string, Agent.AgentRef<typeof definition>>()
    const specs: Array<Supervisor.ChildSpec> = []
    for (const profile of team) {
      const { child, ref } = yield* registry.supervised(definition, {
        id: profile.id,
        metadata: { capabilities: profile.capabilities, health: "healthy", node: "local", resources: { load: profile.load } }
      })
      specs.push(child)
      refs.set(profile.id, ref)
    }
    // The children are given to `make` (started in order, each once ready), not to `startChild`:
    // that one provides the caller's whole context to the child, Scope included, which then
    // overrides the child's own scope, so an incarnation's registration would outlive it.
    const supervisor = yield* Supervisor.make({
      name: "team",
      strategy: "one_for_one",
      maxRestarts: 5,
      within: "5 seconds",
      children: specs
    })
    const entries = [...(yield* registry.list())].sort((a, b) => a.id.localeCompare(b.id))
    yield* say(`  ${"agent".padEnd(10)} ${"capabilities".padEnd(24)} ${"health".padEnd(9)} load`)
    for (const e of entries) {
      yield* say(
        `  ${e.id.padEnd(10)} ${e.metadata.capabilities.join(", ").padEnd(24)} ${e.metadata.health.padEnd(9)} ${
          e.metadata.resources["load"] ?? 0
        }`
      )
    }
    const registered = entries.map((e) => ({ id: e.id, capabilities: e.metadata.capabilities, health: e.metadata.health }))

    // ---- 2. Leader election ----
    yield* say(rule("2. Leader election"))
    yield* say(`Candidates: the healthy agents that can "coordinate"; the oldest registration leads, on a 15 s lease`)
    yield* say("that the service renews while the leader runs.")
    const coordinators = yield* Discovery.find({ capabilities: ["coordinate"] })
    yield* say(`  candidates: ${coordinators.map((e) => e.id).join(", ")}`)
    const election = yield* Election.make({ capability: "coordinate", name: "team-lead" })
    const elected = yield* election.current
    const leader = Option.getOrUndefined(elected.leader)
    yield* say(`  leader: ${leader ?? "none"} (term ${elected.term})`)

    // ---- 3. Consensus ----
    yield* say(rule("3. Consensus"))
    yield* say(`Question: "${question.proposal}?" (risk ${question.risk}), put to all ${team.length} through their`)
    yield* say(`\`vote\` action; majority rule: ${Math.floor(team.length / 2) + 1} yes accept, ${Math.ceil(team.length / 2)} no reject.`)
    const result = yield* consensus.propose({
      question,
      participants: team.map((p) => refs.get(p.id)!),
      action: "vote",
      rule: Consensus.majority,
      timeout: "2 seconds"
    })
    const byTime = [...result.votes].sort((a, b) => a.at - b.at || a.participant.localeCompare(b.participant))
    for (const ballot of byTime) {
      const when = ballot.source === "voted" ? `after ${ballot.at - result.openedAt} ms` : ballot.source.replace("_", " ")
      yield* say(`  ${ballot.participant.padEnd(10)} ${(ballot.source === "voted" ? ballot.vote : "—").padEnd(4)} ${when}`)
    }
    yield* say(
      `  decision: ${result.decision} (${result.tally.yes} yes, ${result.tally.no} no, ${result.tally.abstain} not needed; ` +
        `${result.reason === "decided" ? "decided early" : result.reason}, in ${result.closedAt - result.openedAt} ms)`
    )

    // ---- 4. Barrier ----
    yield* say(rule("4. Barrier"))
    yield* say(`Each agent prepares (its \`prepare\` action), then waits at barrier "launch" until all ${team.length} are there.`)
    const launch = yield* barriers.create({ name: "launch", parties: team.length })
    const barrierStart = yield* Clock.currentTimeMillis
    const arrivals = yield* Effect.forEach(
      team,
      (p) => Effect.map(refs.get(p.id)!.call("prepare", { barrier: "launch" }), (a) => ({ agent: p.id, ...a })),
      { concurrency: "unbounded" }
    )
    // An agent whose ballot was not needed went on thinking (its action runs to its end): it
    // takes its `prepare` message after that.
    const stillVoting = new Set(result.votes.filter((b) => b.source === "not_needed").map((b) => b.participant))
    const inOrder = [...arrivals].sort((a, b) => a.index - b.index)
    for (const a of inOrder) {
      yield* say(
        `  ${a.agent.padEnd(10)} arrived ${ordinal(a.index + 1)} at +${a.arrivedAt - barrierStart} ms ` +
          `(prepares in ${profiles.get(a.agent)!.prepareMillis} ms${
            stillVoting.has(a.agent) ? ", after the vote it was still thinking about" : ""
          })`
      )
    }
    const launchStatus = yield* launch.status
    yield* say(
      `  tripped ${times(launchStatus.trips)} (generation ${inOrder[0]?.generation ?? 0}): all ${arrivals.length} released together, ` +
        `${Math.max(...arrivals.map((a) => a.at)) - barrierStart} ms after the start, when the last arrived`
    )

    // ---- 5. Work ----
    yield* say(rule("5. Work"))
    const inferenceCount = Math.round(itemCount * 0.6)
    const kinds = [
      { kind: "inference", items: Array.from({ length: inferenceCount }, (_, i) => i) },
      { kind: "training", items: Array.from({ length: itemCount - inferenceCount }, (_, i) => inferenceCount + i) }
    ] as const
    yield* say(
      `${itemCount} items (${kinds[0].items.length} inference, ${kinds[1].items.length} training), each spread to the capable agents ` +
        `by load, each item a task`
    )
    yield* say(`of pool "inventory" (6 at a time) calling the flaky inventory service behind Protect.`)
    const retriesBefore = (yield* Metric.value(inventory.retry.metrics.retries)).count
    const workStart = yield* Clock.currentTimeMillis
    const plans = yield* Effect.forEach(kinds, ({ items, kind }) =>
      Effect.map(
        Discovery.distribute(items, { capabilities: [kind], strategy: "balanced" }),
        (d) => ({ kind, d })
      ))
    const assignments: Record<string, Record<string, number>> = {}
    for (const { d, kind } of plans) {
      yield* say(
        `  ${kind.padEnd(9)} → ${d.assignments.map((a) => `${a.agentId} ${a.items.length} (load ${a.load - a.items.length})`).join(", ")}`
      )
      for (const a of d.assignments) (assignments[a.agentId] ??= {})[kind] = a.items.length
    }
    const dispatched = yield* Effect.forEach(kinds, ({ items, kind }) =>
      Discovery.dispatch(items, {
        capabilities: [kind],
        strategy: "balanced",
        definition,
        action: "work",
        params: (share) => ({ items: share }),
        timeout: "20 seconds"
      }), { concurrency: "unbounded" })
    if (output.isTTY) yield* output.write("\n")
    let processed = 0
    let failed = 0
    let unassigned = 0
    const failures: Record<string, number> = {}
    for (const d of dispatched) {
      unassigned += d.unassigned.length
      for (const o of d.outcomes) {
        if (Either.isRight(o.result)) {
          processed += o.result.right.processed
          failed += o.result.right.failed
        } else {
          failed += o.items.length // the agent's call failed: none of its items counts as processed
          failures[o.result.left._tag] = (failures[o.result.left._tag] ?? 0) + o.items.length
        }
      }
    }
    for (const [tag, n] of progress.failures) failures[tag] = (failures[tag] ?? 0) + n
    const workMillis = (yield* Clock.currentTimeMillis) - workStart
    const retries = (yield* Metric.value(inventory.retry.metrics.retries)).count - retriesBefore
    const rejections = (yield* breaker.stats).rejections
    yield* say(
      `  done in ${seconds(workMillis)}: ${processed} processed, ${failed} failed` +
        (Object.keys(failures).length === 0
          ? ""
          : ` (${Object.entries(failures).sort().map(([t, n]) => `${t} ${n}`).join(", ")})`) +
        `${unassigned > 0 ? `, ${unassigned} unassigned` : ""}`
    )
    yield* say(
      `  Protect: ${retries} retries; the breaker opened ${times(breakerOpens.count)}` +
        (rejections === 0 ? "" : `, ${rejections} calls met it open (the agents paused and tried again)`)
    )

    // ---- 6. Chaos ----
    yield* say(rule("6. Chaos"))
    const others = team.map((p) => p.id).filter((id) => id !== leader)
    const shuffled = Chunk.toReadonlyArray(yield* Random.shuffle(others).pipe(Effect.withRandom(Random.make(seed))))
    const victims = [...(leader === undefined ? [] : [leader]), ...shuffled].slice(0, kills)
    yield* say(`The chaos monkey (seed ${seed}) kills ${victims.join(", ")}: each dies of a defect in its \`crash\` action.`)
    yield* say("The supervisor restarts it (a fresh incarnation, same reference); the registry and the election follow.")
    const events: Array<string> = []
    type Heard = { readonly _tag: "Registered"; readonly id: string } | { readonly _tag: "Leader"; readonly term: number }
    const heard = yield* Queue.unbounded<Heard>()
    const registryChanges = (yield* registry.changes).pipe(
      Stream.map((change): readonly [string, Heard | undefined] => {
        switch (change._tag) {
          case "Registered":
            return [`registry: ${change.entry.id} registered again (${change.entry.metadata.capabilities.join(", ")})`, {
              _tag: "Registered",
              id: change.entry.id
            }]
          case "Down":
            return [`registry: ${change.entry.id} down (${change.reason})`, undefined]
          case "Unregistered":
            return [`registry: ${change.entry.id} unregistered`, undefined]
          case "Updated":
            return [`registry: ${change.entry.id} updated`, undefined]
        }
      })
    )
    const leaderChanges = (yield* election.changes).pipe(
      Stream.drop(1), // the current leadership
      Stream.map((l): readonly [string, Heard] => [
        `election: term ${l.term}, leader ${Option.getOrElse(l.leader, () => "none")} (${l.reason}${
          Option.match(l.previous, { onNone: () => "", onSome: (p) => `, was ${p}` })
        })`,
        { _tag: "Leader", term: l.term }
      ])
    )
    yield* Stream.merge(registryChanges, leaderChanges).pipe(
      Stream.runForEach(([line, h]) =>
        Effect.zipRight(
          Effect.zipRight(Effect.sync(() => events.push(line)), say(`  ${line}`)),
          h === undefined ? Effect.void : Queue.offer(heard, h)
        )
      ),
      Effect.forkScoped
    )
    const reregistered: Array<string> = []
    for (const victim of victims) {
      const wasLeader = Option.getOrUndefined(yield* election.leader) === victim
      yield* say(`  ✗ killing ${victim}${wasLeader ? " (the leader)" : ""}`)
      const crashed = yield* Effect.flip(refs.get(victim)!.call("crash", {}))
      // Wait for the registry to see it back (and the election to move on when it led).
      let back = false
      let moved = !wasLeader
      const waited = yield* Effect.timeoutOption(
        Effect.iterate(false, {
          while: (done) => !done,
          body: () =>
            Effect.map(Queue.take(heard), (h) => {
              if (h._tag === "Registered" && h.id === victim) back = true
              if (h._tag === "Leader") moved = true
              return back && moved
            })
        }),
        "3 seconds"
      )
      if (back) reregistered.push(victim)
      const info = (yield* supervisor.children).find((c) => c.id === victim)
      yield* say(
        `    caller got ${crashed._tag}; supervisor: ${victim} restarted, incarnation ${info?.incarnation ?? "?"}` +
          `${Option.isNone(waited) ? " (not back within 3 s)" : ""}`
      )
    }
    const children = yield* supervisor.children
    const restarts = children.reduce((n, c) => n + c.restarts, 0)
    const registryCount = yield* registry.count
    const after = yield* election.current
    const leaderAfter = Option.getOrUndefined(after.leader)
    yield* say(
      `  supervisor: ${children.map((c) => `${c.id}#${c.incarnation}`).join(" ")} (${restarts} restarts); ` +
        `registry: ${registryCount} of ${team.length} agents`
    )
    yield* say(`  leader now: ${leaderAfter ?? "none"} (term ${after.term})`)

    // ---- 7. Health ----
    yield* say(rule("7. Health"))
    yield* say("Health checks, each behind its own breaker: the built-in ones for the services used, and one for the")
    yield* say("inventory breaker (not critical: an open breaker degrades, it does not fail, the system).")
    // The built-in checks under the names `Foundation.layer()` registers them with: a runtime that
    // has them already keeps its own.
    const present = new Set(yield* checker.names)
    const builtIn: ReadonlyArray<HealthChecker.CheckOptions<ValidationError, TeamServices>> = [
      { name: "agent_registry", check: HealthChecker.checks.agentRegistry() },
      { name: "task_pools", check: HealthChecker.checks.taskPools() },
      { name: "circuit_breakers", check: HealthChecker.checks.circuitBreakers() }
    ]
    for (const check of builtIn) if (!present.has(check.name)) yield* checker.register(check)
    yield* checker.register({
      name: "inventory",
      critical: false,
      check: Effect.map(breaker.state, (state): HealthChecker.Health => ({
        status: state === "closed" ? "healthy" : state === "half_open" ? "degraded" : "unhealthy",
        details: { breaker: state }
      }))
    })
    const health = yield* checker.checkAll
    for (const c of health.checks) {
      yield* say(`  ${c.name.padEnd(18)} ${c.status.padEnd(9)} ${detailsText(c.details)}`)
    }
    yield* say(`  overall: ${health.status}`)

    // ---- 8. Key metrics ----
    const breakerStats = yield* breaker.stats
    const elapsedMillis = (yield* Clock.currentTimeMillis) - started
    const metrics = {
      calls: itemCount - unassigned,
      successes: processed,
      failures: failed,
      retries,
      breakerOpens: breakerOpens.count,
      breakerRejections: breakerStats.rejections,
      restarts,
      leaderTerm: after.term,
      elapsedMillis
    }
    yield* say(rule("8. Key metrics"))
    const figure = (name: string, value: string) => say(`  ${name.padEnd(28)} ${value}`)
    yield* figure("calls to inventory", `${metrics.calls} (${breakerStats.successes + breakerStats.failures} attempts reached it)`)
    yield* figure("succeeded / failed", `${metrics.successes} / ${metrics.failures}`)
    yield* figure("retries", `${metrics.retries}`)
    yield* figure("breaker opens / rejections", `${metrics.breakerOpens} / ${metrics.breakerRejections}`)
    yield* figure("agent restarts", `${metrics.restarts}`)
    yield* figure("leader term", `${metrics.leaderTerm} (${leaderAfter ?? "none"})`)
    yield* figure("health", health.status)
    yield* figure("elapsed (the agents' story)", seconds(elapsedMillis))

    return {
      teamSize: team.length,
      registered,
      election: { capability: "coordinate", leader, term: elected.term },
      consensus: {
        decision: result.decision,
        reason: result.reason,
        votes: result.votes.map((b) => ({ participant: b.participant, vote: b.vote, source: b.source }))
      },
      barrier: {
        parties: launch.parties,
        trips: launchStatus.trips,
        arrivals: inOrder.map((a) => ({ agent: a.agent, index: a.index, generation: a.generation }))
      },
      work: {
        items: itemCount,
        processed,
        failed,
        unassigned,
        assignments,
        failures,
        progressUpdates: progress.updates
      },
      chaos: {
        killed: victims,
        events,
        reregistered,
        registryCount,
        incarnations: Object.fromEntries(children.map((c) => [c.id, c.incarnation])),
        restarts,
        leaderBefore: leader,
        leaderAfter,
        termAfter: after.term
      },
      health: { status: health.status, checks: health.checks.map((c) => ({ name: c.name, status: c.status })) },
      metrics
    } satisfies TeamReport
  })).pipe(Effect.orDie)

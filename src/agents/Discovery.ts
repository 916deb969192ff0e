/**
 * Discovery: finding capable, healthy agents in the `AgentRegistry`, ranking them, and spreading
 * work over them (the original's `MABEAM.Discovery` named queries and the intended
 * `CoordinationPatterns.distribute_work` / `execute_distributed`, which were placeholders there).
 *
 * - `find(options)` composes one `Criteria` query from `capabilities` (all of them), `health`
 *   (healthy only unless told otherwise), `node`, `minResources` and any extra `where` criteria,
 *   and runs it on the registry, whose capability (else node, else health) index gives the
 *   candidates. Results are in code-point id order, so `limit` and every tie below are
 *   deterministic whatever order the registry holds its entries in.
 * - `select(entries, strategy, options?)` ranks: `greedy` (most available resources first: the
 *   sum of `availableKeys`), `balanced` (least reported load first: the `loadKey` resource),
 *   `random` (a uniform sample; the randomness comes from Effect's `Random` service, two draws
 *   seeding a generator per call, so a seeded `Random` reproduces it). Ties go to the smaller id.
 * - `assign(entries, items, options)` plans a distribution: `balanced` water-fills (each item to
 *   the agent whose load plus what it has been given is lowest, ties by id: a heap, O(N log k));
 *   `greedy` fills agents in greedy order up to their limits; `random` gives each item to a
 *   random agent that still has room. Limits: `capacity` (an agent's load may not exceed it
 *   after assignment; one number, or each agent's own resource figure) and `maxPerAgent`. No
 *   agent is ever given more than its limits allow; items nobody can take come back as
 *   `unassigned`, never dropped. (The original's least-loaded distribution never updated the
 *   load, so every item went to one agent.)
 * - `distribute(items, options)` is `find` then `assign`; `dispatch(items, options)` also calls
 *   an action on each agent running a given definition, with its items, with a concurrency
 *   limit: each agent's outcome is returned (a failed agent does not fail the others).
 *   Both fail with `NoCapableAgentsError` when `find` finds nobody.
 * - Every option is validated before anything is read: bad input fails with a `ValidationError`
 *   naming the option (`capabilities.1`, `where.0.op`, `capacity`...).
 *
 * The functions read the `AgentRegistry` service; `make(registry)` binds them to a registry at
 * hand. Telemetry (when `Telemetry` is in the context; see `events`): `distributed`,
 * `no_capable_agents`, `dispatched`.
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import { PCGRandom } from "effect/Utils"
import * as Events from "../observability/Events.js"
import * as Criteria from "../data/Criteria.js"
import { Tagged, type ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Telemetry from "../observability/Telemetry.js"
import type * as Agent from "./Agent.js"
import * as AgentRegistry from "./AgentRegistry.js"

// ---------------------------------------------------------------------------------------------
// Options and data
// ---------------------------------------------------------------------------------------------

/** How agents are ranked (`select`) and items spread (`assign`). */
export type Strategy = "greedy" | "balanced" | "random"

/** The strategies, in the order errors list them. */
export const strategies: ReadonlyArray<Strategy> = ["greedy", "balanced", "random"]

/** Defaults. */
export const defaults = {
  health: "healthy",
  strategy: "balanced",
  loadKey: "load",
  availableKeys: ["memory_available", "cpu_available"],
  missingLoad: 0,
  itemLoad: 1,
  timeout: "30 seconds",
  concurrency: "unbounded"
} as const

/** Which agents `find` returns. */
export interface FindOptions {
  /** Capabilities an agent must all have [none: any agent]. */
  readonly capabilities?: ReadonlyArray<string> | undefined
  /** The health (or healths) accepted, or `"any"` ["healthy"]. */
  readonly health?: AgentRegistry.Health | ReadonlyArray<AgentRegistry.Health> | "any" | undefined
  /** The node (or nodes) accepted [any]. */
  readonly node?: string | ReadonlyArray<string> | undefined
  /** Minimum resource figures: `resources.<key> ≥ value` (an agent lacking the figure fails). */
  readonly minResources?: Readonly<Record<string, number>> | undefined
  /** Further criteria over the metadata, all of which must hold. */
  readonly where?: Criteria.Criteria | undefined
  /** Only agents the registry runs (entries with a reference) [false]. */
  readonly running?: boolean | undefined
  /** At most this many, the first by id (an integer ≥ 1) [all]. */
  readonly limit?: number | undefined
}

/** How agents are scored. */
export interface RankOptions {
  /** Resource keys summed into what an agent has available (`greedy`); a missing figure is 0 [memory_available, cpu_available]. */
  readonly availableKeys?: string | ReadonlyArray<string> | undefined
  /** The resource key of an agent's reported load (`balanced`, and every distribution) ["load"]. */
  readonly loadKey?: string | undefined
  /** The load of an agent that reports none (a finite number) [0]. */
  readonly missingLoad?: number | undefined
}

/** Options of `select`. */
export interface SelectOptions extends RankOptions {
  /** How many to return (an integer ≥ 0) [all, ranked]. */
  readonly count?: number | undefined
}

/** Options of `assign`: how items are spread, and the agents' limits. */
export interface AssignOptions extends RankOptions {
  /** ["balanced"] */
  readonly strategy?: Strategy | undefined
  /** The load one item adds to its agent (a finite number > 0) [1]. */
  readonly itemLoad?: number | undefined
  /**
   * The most load an agent may have after assignment: a number (the same for every agent) or a
   * resource key (each agent's own figure; an agent without it has no ceiling) [no ceiling].
   */
  readonly capacity?: number | string | undefined
  /** The most items one agent is given (an integer ≥ 1) [no limit]. */
  readonly maxPerAgent?: number | undefined
}

/** Options of `distribute`: which agents, and how. */
export interface DistributeOptions extends FindOptions, AssignOptions {}

/** The items given to one agent. */
export interface Assignment<I> {
  readonly agentId: string
  readonly entry: AgentRegistry.Entry
  /** The agent, when the registry runs it. */
  readonly ref: Option.Option<Agent.AnyAgentRef>
  /** In the order they were given. */
  readonly items: ReadonlyArray<I>
  /** The agent's reported load plus what it was given (`items.length × itemLoad`). */
  readonly load: number
}

/** A distribution: the agents given at least one item (by id), and what nobody could take. */
export interface Distribution<I> {
  readonly assignments: ReadonlyArray<Assignment<I>>
  /** In their input order. */
  readonly unassigned: ReadonlyArray<I>
}

/** Options of `dispatch`: a distribution, then a call per agent. */
export interface DispatchOptions<I, D extends Agent.AnyDefinition, K extends keyof Agent.ActionsOf<D> & string>
  extends DistributeOptions
{
  /** Only agents running this definition are considered (entries with a reference to it). */
  readonly definition: D
  /** The action each agent is called with. */
  readonly action: K
  /** The action's params for an agent's items. */
  readonly params: (items: ReadonlyArray<I>, assignment: Assignment<I>) => Agent.ParamsOf<D, K>
  /** Calls in flight at once (an integer ≥ 1, or "unbounded") ["unbounded": one per agent]. */
  readonly concurrency?: number | "unbounded" | undefined
  /** Time limit of each call [30 s, as the original's execute_distributed]. */
  readonly timeout?: Duration.DurationInput | undefined
}

/** What one agent's call gave. */
export interface Outcome<I, D extends Agent.AnyDefinition, K extends keyof Agent.ActionsOf<D> & string> {
  readonly agentId: string
  readonly ref: Agent.AgentRef<D>
  readonly items: ReadonlyArray<I>
  readonly result: Either.Either<Agent.ResultOf<D, K>, Agent.ErrorOf<D, K> | Agent.HookErrorOf<D> | Agent.CallError>
}

/** The outcomes of `dispatch` (by agent id) and the items nobody could take. */
export interface DispatchResult<I, D extends Agent.AnyDefinition, K extends keyof Agent.ActionsOf<D> & string> {
  readonly outcomes: ReadonlyArray<Outcome<I, D, K>>
  readonly unassigned: ReadonlyArray<I>
}

/** Telemetry events of this module. */
export const events = Events.names.discovery

/** `find` found no agent for a distribution (agents may register or recover: transient). */
export class NoCapableAgentsError extends Tagged("NoCapableAgentsError", {
  category: "transient",
  severity: "medium",
  message: "No capable agents"
})<{
  /** What the agents were wanted for: `distribute` or `dispatch`. */
  readonly purpose: "distribute" | "dispatch"
  readonly capabilities: ReadonlyArray<string>
  /** The healths accepted, or "any". */
  readonly health: ReadonlyArray<AgentRegistry.Health> | "any"
}> {
  override describe() {
    const caps = this.capabilities.length === 0 ? "any capability" : `capabilities ${this.capabilities.join(", ")}`
    const health = this.health === "any" ? "any health" : this.health.join(" or ")
    return `No agents to ${this.purpose} to (${caps}; ${health})`
  }
}

/** Discovery bound to one registry. */
export interface Discovery {
  find(options?: FindOptions): Effect.Effect<ReadonlyArray<AgentRegistry.Entry>, ValidationError>
  distribute<I>(
    items: Iterable<I>,
    options?: DistributeOptions
  ): Effect.Effect<Distribution<I>, ValidationError | NoCapableAgentsError>
  dispatch<I, D extends Agent.AnyDefinition, K extends keyof Agent.ActionsOf<D> & string>(
    items: Iterable<I>,
    options: DispatchOptions<I, D, K>
  ): Effect.Effect<DispatchResult<I, D, K>, ValidationError | NoCapableAgentsError>
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

type Checked<A> = Either.Either<A, ValidationError>

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const optionsOf = (options: unknown, field = "options"): Checked<Record<string, unknown>> =>
  options === undefined ? Either.right({}) : isObject(options) ? Either.right(options) : Validation.invalid(field, "expected an object")

/** A string, or a non-empty list of non-empty strings. */
const stringList = (field: string, value: unknown, allowEmpty: boolean): Checked<ReadonlyArray<string>> => {
  const list: ReadonlyArray<unknown> | undefined = typeof value === "string" ? [value] : Array.isArray(value) ? value : undefined
  if (list === undefined) return Validation.invalid(field, "expected a string or a list of strings")
  if (list.length === 0 && !allowEmpty) return Validation.invalid(field, "expected at least one value")
  const out: Array<string> = []
  for (let i = 0; i < list.length; i++) {
    const v = list[i]
    if (typeof v !== "string" || v === "") {
      return Validation.invalid(typeof value === "string" ? field : `${field}.${i}`, "must be a non-empty string")
    }
    if (!out.includes(v)) out.push(v)
  }
  return Either.right(out)
}

/** `find`'s options, checked and compiled. */
interface FindPlan {
  readonly criteria: Criteria.Criteria
  readonly capabilities: ReadonlyArray<string>
  readonly health: ReadonlyArray<AgentRegistry.Health> | "any"
  readonly nodes: ReadonlyArray<string> | undefined
  readonly running: boolean
  readonly limit: number | undefined
}

const checkFind = (o: Record<string, unknown>): Checked<FindPlan> =>
  Either.gen(function*() {
    const capabilities = o["capabilities"] === undefined
      ? []
      : Array.isArray(o["capabilities"])
      ? yield* stringList("capabilities", o["capabilities"], true)
      : yield* Validation.invalid("capabilities", "expected a list of capabilities (all required)")
    const rawHealth = o["health"] ?? defaults.health
    let health: ReadonlyArray<AgentRegistry.Health> | "any"
    if (rawHealth === "any") health = "any"
    else {
      const list = Array.isArray(rawHealth) ? rawHealth : [rawHealth]
      if (list.length === 0) return yield* Validation.invalid("health", "expected at least one health (or \"any\")")
      const out: Array<AgentRegistry.Health> = []
      for (let i = 0; i < list.length; i++) {
        const h = yield* Validation.oneOf(
          Array.isArray(rawHealth) ? `health.${i}` : "health",
          list[i],
          [...AgentRegistry.healthValues, ...(Array.isArray(rawHealth) ? [] : ["any" as const])]
        )
        if (h !== "any" && !out.includes(h)) out.push(h)
      }
      health = out
    }
    const nodes = o["node"] === undefined ? undefined : yield* stringList("node", o["node"], false)
    const minResources: Array<Criteria.Criteria> = []
    if (o["minResources"] !== undefined) {
      const min = o["minResources"]
      if (!isObject(min)) return yield* Validation.invalid("minResources", "expected { resource: minimum }")
      for (const key of Object.keys(min)) {
        if (key === "") return yield* Validation.invalid("minResources", "a resource key cannot be empty")
        const value = yield* Validation.number(`minResources.${key}`, min[key])
        minResources.push(Criteria.where(["resources", key], "gte", value))
      }
    }
    const where = o["where"] === undefined ? undefined : yield* Criteria.validate(o["where"], "where")
    const running = o["running"] === undefined
      ? false
      : typeof o["running"] === "boolean"
      ? o["running"]
      : yield* Validation.invalid("running", "must be a boolean")
    const limit = o["limit"] === undefined ? undefined : yield* Validation.positiveInt("limit", o["limit"])
    // Order matters to the registry: among equally selective `eq`s it reads the index of the
    // first, so capabilities (usually the most selective) come first, then node, then health.
    const criteria: Array<Criteria.Criteria> = capabilities.map((c) => Criteria.eq("capabilities", c))
    if (nodes !== undefined) {
      criteria.push(nodes.length === 1 ? Criteria.eq("node", nodes[0]!) : Criteria.isIn("node", nodes))
    }
    if (health !== "any" && health.length < AgentRegistry.healthValues.length) {
      criteria.push(health.length === 1 ? Criteria.eq("health", health[0]!) : Criteria.isIn("health", health))
    }
    criteria.push(...minResources)
    if (where !== undefined) criteria.push(where)
    return { criteria, capabilities, health, nodes, running, limit }
  })

/** Scoring, checked. */
interface Rank {
  readonly availableKeys: ReadonlyArray<string>
  readonly loadKey: string
  readonly missingLoad: number
}

const checkRank = (o: Record<string, unknown>): Checked<Rank> =>
  Either.gen(function*() {
    const availableKeys = yield* stringList("availableKeys", o["availableKeys"] ?? defaults.availableKeys, false)
    const loadKey = yield* Validation.nonEmptyString("loadKey", o["loadKey"] ?? defaults.loadKey)
    const missingLoad = yield* Validation.number("missingLoad", o["missingLoad"] ?? defaults.missingLoad)
    return { availableKeys, loadKey, missingLoad }
  })

/** `assign`'s options, checked. */
interface AssignPlan extends Rank {
  readonly strategy: Strategy
  readonly itemLoad: number
  readonly capacity: number | string | undefined
  readonly maxPerAgent: number
}

const checkAssign = (o: Record<string, unknown>): Checked<AssignPlan> =>
  Either.gen(function*() {
    const rank = yield* checkRank(o)
    const strategy = yield* Validation.oneOf("strategy", o["strategy"] ?? defaults.strategy, strategies)
    const itemLoad = yield* Validation.number("itemLoad", o["itemLoad"] ?? defaults.itemLoad, {
      min: 0,
      minExclusive: true
    })
    const rawCapacity = o["capacity"]
    const capacity = rawCapacity === undefined
      ? undefined
      : typeof rawCapacity === "string"
      ? yield* Validation.nonEmptyString("capacity", rawCapacity)
      : yield* Validation.number("capacity", rawCapacity)
    const maxPerAgent = o["maxPerAgent"] === undefined
      ? Infinity
      : yield* Validation.positiveInt("maxPerAgent", o["maxPerAgent"])
    return { ...rank, strategy, itemLoad, capacity, maxPerAgent }
  })

const checkEntries = (entries: unknown): Checked<ReadonlyArray<AgentRegistry.Entry>> => {
  if (!Array.isArray(entries)) return Validation.invalid("entries", "expected a list of registry entries")
  for (let i = 0; i < entries.length; i++) {
    const e: unknown = entries[i]
    if (!isObject(e) || typeof e["id"] !== "string" || !isObject(e["metadata"])) {
      return Validation.invalid(`entries.${i}`, "expected a registry entry ({ id, metadata, ... })")
    }
  }
  return Either.right(entries)
}

const checkItems = <I>(items: Iterable<I>): Checked<ReadonlyArray<I>> =>
  typeof items === "object" && items !== null && typeof (items as Partial<Iterable<I>>)[Symbol.iterator] === "function"
    ? Either.right(Array.isArray(items) ? items : Array.from(items))
    : Validation.invalid("items", "expected a list (an iterable) of items")

// ---------------------------------------------------------------------------------------------
// Criteria and ranking
// ---------------------------------------------------------------------------------------------

/**
 * The criteria `find` runs for these options (capabilities first, so the registry reads the
 * capability index), or the `ValidationError` naming the bad option.
 */
export const criteriaOf = (options: FindOptions = {}): Checked<Criteria.Criteria> =>
  Either.map(Either.flatMap(optionsOf(options), checkFind), (plan) => plan.criteria)

const byId = (a: AgentRegistry.Entry, b: AgentRegistry.Entry): number => Criteria.compareStrings(a.id, b.id)

const figure = (entry: AgentRegistry.Entry, key: string): number | undefined => {
  const resources: unknown = entry.metadata.resources
  if (!isObject(resources)) return undefined
  const v = resources[key]
  return typeof v === "number" && Number.isFinite(v) ? v : undefined
}

const loadOf = (entry: AgentRegistry.Entry, rank: Rank): number => figure(entry, rank.loadKey) ?? rank.missingLoad

const availableOf = (entry: AgentRegistry.Entry, rank: Rank): number => {
  let sum = 0
  for (const key of rank.availableKeys) sum += figure(entry, key) ?? 0
  return sum
}

/**
 * A uniform integer draw in [0, n), seeded by two draws from the `Random` service (so a seeded
 * `Random` reproduces every draw), then synchronous: one effect per plan, not one per item.
 */
const drawer: Effect.Effect<(n: number) => number> = Random.randomWith((random) =>
  Effect.zipWith(random.nextIntBetween(0, 2 ** 32), random.nextIntBetween(0, 2 ** 32), (hi, lo) => {
    const prng = new PCGRandom(hi, lo)
    return (n: number) => prng.integer(n)
  })
)

/** The entries (already in id order) in an order by score; stable, so ties stay in id order. */
const rankedBy = (
  sorted: ReadonlyArray<AgentRegistry.Entry>,
  score: (entry: AgentRegistry.Entry) => number,
  descending: boolean
): Array<number> => {
  const scores = sorted.map(score)
  const order = sorted.map((_, i) => i)
  order.sort((a, b) => {
    const d = descending ? scores[b]! - scores[a]! : scores[a]! - scores[b]!
    return d !== 0 ? d : a - b
  })
  return order
}

/**
 * Ranks entries by a strategy and returns the first `count` (all by default): `greedy` most
 * available first, `balanced` least loaded first, `random` a uniform sample in random order
 * (from the `Random` service: `Effect.withRandom(Random.make(seed))` reproduces it). Ties, and the
 * order a random draw starts from, go by id, so the input order never matters.
 */
export const select = (
  entries: ReadonlyArray<AgentRegistry.Entry>,
  strategy: Strategy,
  options: SelectOptions = {}
): Effect.Effect<ReadonlyArray<AgentRegistry.Entry>, ValidationError> =>
  Effect.suspend(() => {
    const checked = Either.gen(function*() {
      const list = yield* checkEntries(entries)
      const s = yield* Validation.oneOf("strategy", strategy, strategies)
      const o = yield* optionsOf(options)
      const rank = yield* checkRank(o)
      const count = o["count"] === undefined ? list.length : yield* Validation.nonNegativeInt("count", o["count"])
      return { list, s, rank, count: Math.min(count, list.length) }
    })
    if (Either.isLeft(checked)) return Effect.fail(checked.left)
    const { count, list, rank, s } = checked.right
    const sorted = [...list].sort(byId)
    if (s === "random") {
      return Effect.map(drawer, (draw) => {
        // A partial Fisher–Yates shuffle: `count` draws.
        for (let i = 0; i < count; i++) {
          const j = i + draw(sorted.length - i)
          const t = sorted[i]!
          sorted[i] = sorted[j]!
          sorted[j] = t
        }
        return sorted.slice(0, count)
      })
    }
    const order = s === "greedy"
      ? rankedBy(sorted, (e) => availableOf(e, rank), true)
      : rankedBy(sorted, (e) => loadOf(e, rank), false)
    return Effect.succeed(order.slice(0, count).map((i) => sorted[i]!))
  })

// ---------------------------------------------------------------------------------------------
// Distribution
// ---------------------------------------------------------------------------------------------

/** A binary min-heap of agent indexes under a comparison (for water-filling). */
class IndexHeap {
  readonly items: Array<number> = []
  constructor(readonly less: (a: number, b: number) => boolean) {}
  push(i: number): void {
    const h = this.items
    h.push(i)
    let k = h.length - 1
    while (k > 0) {
      const p = (k - 1) >> 1
      if (!this.less(h[k]!, h[p]!)) break
      const t = h[k]!
      h[k] = h[p]!
      h[p] = t
      k = p
    }
  }
  /** Restores the order after the top's key grew. */
  siftDownTop(): void {
    const h = this.items
    const n = h.length
    let k = 0
    for (;;) {
      const l = 2 * k + 1
      if (l >= n) return
      const r = l + 1
      const c = r < n && this.less(h[r]!, h[l]!) ? r : l
      if (!this.less(h[c]!, h[k]!)) return
      const t = h[k]!
      h[k] = h[c]!
      h[c] = t
      k = c
    }
  }
  popTop(): void {
    const h = this.items
    const last = h.pop()!
    if (h.length > 0) {
      h[0] = last
      this.siftDownTop()
    }
  }
}

/** Runs a checked plan: the entries in id order, each item to one agent or to `unassigned`. */
const distributeOver = <I>(
  list: ReadonlyArray<AgentRegistry.Entry>,
  items: ReadonlyArray<I>,
  plan: AssignPlan
): Effect.Effect<Distribution<I>> => {
  const sorted = [...list].sort(byId)
  const n = sorted.length
  const load = sorted.map((e) => loadOf(e, plan))
  const ceiling = sorted.map((e) =>
    plan.capacity === undefined ? Infinity : typeof plan.capacity === "number" ? plan.capacity : figure(e, plan.capacity) ?? Infinity
  )
  const given: Array<Array<I>> = sorted.map(() => [])
  const itemLoad = plan.itemLoad
  /** Whether agent `i` may take one more item (a rounding tolerance on the ceiling). */
  const canTake = (i: number): boolean => {
    const count = given[i]!.length
    if (count >= plan.maxPerAgent) return false
    const limit = ceiling[i]!
    return limit === Infinity || load[i]! + (count + 1) * itemLoad <= limit + 1e-9 * Math.max(1, Math.abs(limit))
  }
  const current = (i: number): number => load[i]! + given[i]!.length * itemLoad
  const unassigned: Array<I> = []
  const finish = (): Distribution<I> => {
    const assignments: Array<Assignment<I>> = []
    for (let i = 0; i < n; i++) {
      const its = given[i]!
      if (its.length === 0) continue
      const entry = sorted[i]!
      assignments.push({ agentId: entry.id, entry, ref: entry.ref, items: its, load: current(i) })
    }
    return { assignments, unassigned }
  }

  switch (plan.strategy) {
    case "balanced": {
      // Each agent's current load, kept next to the heap (recomputed from the count, not
      // accumulated, so no rounding drifts).
      const key = Float64Array.from(load)
      const heap = new IndexHeap((a, b) => key[a]! < key[b]! || (key[a] === key[b] && a < b))
      for (let i = 0; i < n; i++) if (canTake(i)) heap.push(i)
      for (let k = 0; k < items.length; k++) {
        if (heap.items.length === 0) {
          for (; k < items.length; k++) unassigned.push(items[k]!)
          break
        }
        const i = heap.items[0]!
        given[i]!.push(items[k]!)
        key[i] = current(i)
        if (canTake(i)) heap.siftDownTop()
        else heap.popTop()
      }
      return Effect.sync(finish)
    }
    case "greedy": {
      const order = rankedBy(sorted, (e) => availableOf(e, plan), true)
      let p = 0
      for (let k = 0; k < items.length; k++) {
        while (p < n && !canTake(order[p]!)) p++
        if (p === n) {
          for (; k < items.length; k++) unassigned.push(items[k]!)
          break
        }
        given[order[p]!]!.push(items[k]!)
      }
      return Effect.sync(finish)
    }
    case "random": {
      const pool: Array<number> = []
      for (let i = 0; i < n; i++) if (canTake(i)) pool.push(i)
      return Effect.map(drawer, (draw) => {
        for (let k = 0; k < items.length; k++) {
          if (pool.length === 0) {
            for (; k < items.length; k++) unassigned.push(items[k]!)
            break
          }
          const j = draw(pool.length)
          const i = pool[j]!
          given[i]!.push(items[k]!)
          if (!canTake(i)) {
            pool[j] = pool[pool.length - 1]!
            pool.pop()
          }
        }
        return finish()
      })
    }
  }
}

/**
 * Plans how `items` are spread over `entries` (see the module doc); a pure plan over the entries
 * given, without the registry. With no entries every item is unassigned.
 */
export const assign = <I>(
  entries: ReadonlyArray<AgentRegistry.Entry>,
  items: Iterable<I>,
  options: AssignOptions = {}
): Effect.Effect<Distribution<I>, ValidationError> =>
  Effect.suspend(() => {
    const checked = Either.gen(function*() {
      const list = yield* checkEntries(entries)
      const its = yield* checkItems(items)
      const plan = yield* checkAssign(yield* optionsOf(options))
      return { list, its, plan }
    })
    return Either.isLeft(checked)
      ? Effect.fail(checked.left)
      : distributeOver(checked.right.list, checked.right.its, checked.right.plan)
  })

// ---------------------------------------------------------------------------------------------
// Over a registry
// ---------------------------------------------------------------------------------------------

const emit = (
  name: string,
  measurements: Readonly<Record<string, number>>,
  metadata: Readonly<Record<string, unknown>>
): Effect.Effect<void> =>
  Effect.flatMap(
    Effect.serviceOption(Telemetry.Telemetry),
    (telemetry) => Option.isSome(telemetry) ? telemetry.value.emit(name, measurements, metadata) : Effect.void
  )

const runFind = (
  registry: AgentRegistry.Registry,
  plan: FindPlan,
  keep?: (entry: AgentRegistry.Entry) => boolean
): Effect.Effect<ReadonlyArray<AgentRegistry.Entry>, ValidationError> =>
  Effect.map(registry.query(plan.criteria), (found) => {
    let out = plan.running || keep !== undefined
      ? found.filter((e) => (!plan.running || Option.isSome(e.ref)) && (keep === undefined || keep(e)))
      : [...found]
    out.sort(byId)
    if (plan.limit !== undefined && out.length > plan.limit) out = out.slice(0, plan.limit)
    return out
  })

const noneFound = (purpose: "distribute" | "dispatch", plan: FindPlan, items: number) =>
  Effect.zipRight(
    emit(events.noCapableAgents, { count: 1, items }, {
      operation: purpose,
      capabilities: plan.capabilities,
      health: plan.health,
      node: plan.nodes ?? "any"
    }),
    Effect.fail(new NoCapableAgentsError({ purpose, capabilities: plan.capabilities, health: plan.health }))
  )

const distributed = <I>(operation: string, plan: AssignPlan & FindPlan, candidates: number, d: Distribution<I>, items: number) =>
  emit(events.distributed, {
    items,
    assigned: items - d.unassigned.length,
    unassigned: d.unassigned.length,
    agents: d.assignments.length,
    candidates
  }, { operation, strategy: plan.strategy, capabilities: plan.capabilities })

/** Discovery over `registry`. */
export const make = (registry: AgentRegistry.Registry): Discovery => {
  const find: Discovery["find"] = (options) =>
    Effect.suspend(() => {
      const plan = Either.flatMap(optionsOf(options), checkFind)
      return Either.isLeft(plan) ? Effect.fail(plan.left) : runFind(registry, plan.right)
    })

  const distribute: Discovery["distribute"] = <I>(items: Iterable<I>, options?: DistributeOptions) =>
    Effect.suspend(() => {
      const checked = Either.gen(function*() {
        const o = yield* optionsOf(options)
        const its = yield* checkItems(items)
        const plan = { ...(yield* checkFind(o)), ...(yield* checkAssign(o)) }
        return { its, plan }
      })
      if (Either.isLeft(checked)) return Effect.fail(checked.left)
      const { its, plan } = checked.right
      return Effect.flatMap(runFind(registry, plan), (found) =>
        found.length === 0
          ? noneFound("distribute", plan, its.length)
          : Effect.tap(
            distributeOver(found, its, plan),
            (d) => distributed("distribute", plan, found.length, d, its.length)
          ))
    })

  const dispatch: Discovery["dispatch"] = <I, D extends Agent.AnyDefinition, K extends keyof Agent.ActionsOf<D> & string>(
    items: Iterable<I>,
    options: DispatchOptions<I, D, K>
  ) =>
    Effect.suspend(() => {
      const checked = Either.gen(function*() {
        const o = yield* optionsOf(options)
        const its = yield* checkItems(items)
        const plan = { ...(yield* checkFind(o)), ...(yield* checkAssign(o)) }
        const definition = o["definition"]
        if (!isObject(definition) || typeof definition["name"] !== "string" || !isObject(definition["actions"])) {
          return yield* Validation.invalid("definition", "expected an agent definition (Agent.define)")
        }
        const action = o["action"]
        if (typeof action !== "string" || !Object.prototype.hasOwnProperty.call(definition["actions"], action)) {
          return yield* Validation.invalid(
            "action",
            `unknown action ${JSON.stringify(action ?? null)} of agent "${definition["name"]}" (one of ${
              Object.keys(definition["actions"]).join(", ")
            })`
          )
        }
        if (typeof o["params"] !== "function") {
          return yield* Validation.invalid("params", "expected a function (items, assignment) => params")
        }
        const concurrency = o["concurrency"] === undefined || o["concurrency"] === "unbounded"
          ? "unbounded" as const
          : yield* Validation.positiveInt("concurrency", o["concurrency"])
        const timeout = yield* Validation.duration("timeout", o["timeout"] ?? defaults.timeout)
        return { its, plan, concurrency, timeout }
      })
      if (Either.isLeft(checked)) return Effect.fail(checked.left)
      const { concurrency, its, plan, timeout } = checked.right
      const { action, definition, params } = options
      const runs = (e: AgentRegistry.Entry) => Option.isSome(e.ref) && e.ref.value.definition === definition
      return Effect.gen(function*() {
        const found = yield* runFind(registry, plan, runs)
        if (found.length === 0) return yield* noneFound("dispatch", plan, its.length)
        const d = yield* distributeOver(found, its, plan)
        yield* distributed("dispatch", plan, found.length, d, its.length)
        const startedAt = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        const outcomes = yield* Effect.forEach(d.assignments, (a) => {
          // `runs` kept only agents whose reference runs `definition`.
          const ref = (a.ref as Option.Some<Agent.AnyAgentRef>).value as Agent.AgentRef<D>
          return Effect.map(
            Effect.either(Effect.suspend(() => ref.call(action, params(a.items, a), { timeout }))),
            (result): Outcome<I, D, K> => ({ agentId: a.agentId, ref, items: a.items, result })
          )
        }, { concurrency })
        const failed = outcomes.filter((o) => Either.isLeft(o.result)).length
        const endedAt = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        yield* emit(events.dispatched, {
          agents: outcomes.length,
          items: its.length - d.unassigned.length,
          succeeded: outcomes.length - failed,
          failed,
          duration: endedAt - startedAt
        }, { definition: definition.name, action })
        return { outcomes, unassigned: d.unassigned }
      }).pipe(Effect.withSpan("Discovery.dispatch", { attributes: { definition: definition.name, action } }))
    })

  return { find, distribute, dispatch }
}

/** Agents of the `AgentRegistry` service matching the options, in id order (see `FindOptions`). */
export const find = (
  options?: FindOptions
): Effect.Effect<ReadonlyArray<AgentRegistry.Entry>, ValidationError, AgentRegistry.AgentRegistry> =>
  Effect.flatMap(AgentRegistry.AgentRegistry, (registry) => make(registry).find(options))

/** `find`, then `assign` over what it found; `NoCapableAgentsError` when it found nobody. */
export const distribute = <I>(
  items: Iterable<I>,
  options?: DistributeOptions
): Effect.Effect<Distribution<I>, ValidationError | NoCapableAgentsError, AgentRegistry.AgentRegistry> =>
  Effect.flatMap(AgentRegistry.AgentRegistry, (registry) => make(registry).distribute(items, options))

/**
 * `distribute` over the agents running `definition`, then one `call` of `action` per agent with
 * `params(items)`, at most `concurrency` at once, each within `timeout`. Every agent's outcome
 * is returned (`Either`), in id order; `NoCapableAgentsError` when no such agent was found.
 */
export const dispatch = <I, D extends Agent.AnyDefinition, K extends keyof Agent.ActionsOf<D> & string>(
  items: Iterable<I>,
  options: DispatchOptions<I, D, K>
): Effect.Effect<DispatchResult<I, D, K>, ValidationError | NoCapableAgentsError, AgentRegistry.AgentRegistry> =>
  Effect.flatMap(AgentRegistry.AgentRegistry, (registry) => make(registry).dispatch(items, options))

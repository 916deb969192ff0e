/**
 * AgentRegistry: the capability-indexed directory of agents (the original's `MABEAM.AgentRegistry`).
 * An entry is an id, its metadata (`capabilities`, `health`, `node`, `resources`, plus any JSON
 * fields), the agent's reference when the registry runs it, and Clock timestamps. Entries are
 * indexed by capability, health and node; queries use the data layer's `Criteria` language
 * (criteria address the metadata, with its semantics: `eq` on a list is membership, `in` is
 * overlap, a missing field never satisfies a comparison). Among the criteria that must all hold,
 * an `eq`/`in` on an indexed attribute picks the candidates from its index (which holds the
 * entries themselves), and only the other criteria filter them: a capability query returning
 * 100 agents of 100,000 takes about a microsecond (see `bench/registry.ts`).
 *
 * Guarantees:
 * - Every write applies the entry and its index memberships in one synchronous step (plain
 *   `Map`s and `Set`s, read and written only inside single synchronous steps: JavaScript runs one
 *   step at a time, which is what makes each step atomic). No reader ever sees an entry without
 *   its index memberships, a stale membership, or half of an update (the original cleared then
 *   re-inserted index rows while readers looked). Reads are one `Map` get: no lock, no STM.
 * - Input is validated before anything changes (and before the entry is looked up, except for a
 *   merge, which is validated as merged): the required fields missing are reported
 *   together (`ValidationError` on `metadata`, listed in the order capabilities, health, node,
 *   resources, one issue each); an invalid health names the allowed values; every other problem is
 *   an issue naming its field. The registry stores a frozen copy, so neither the caller's object
 *   nor a returned entry can put the indexes out of step.
 * - `transaction(ops)` is all or nothing: every op is checked against a private overlay first,
 *   then all are applied in one synchronous step; a failure names the op's index and leaves the
 *   registry exactly as it was (the original kept partial writes and orphaned monitors).
 * - Agents run with `spawn` / `supervised` are registered by each incarnation (in `Agent`'s
 *   `attach`, inside the incarnation's scope) and removed when it ends, whatever ends it: stop,
 *   typed failure, defect, interruption, the parent scope closing, a supervisor's shutdown. A
 *   defect in an action or `beforeAction` removes the entry before the caller hears of the crash,
 *   so there is no moment where a dead agent can still be found; an explicit `register` takes no
 *   reference, so nothing else can register an agent that is not running (the original's race).
 * - `changes` is a `Stream` of `Registered`, `Updated`, `Unregistered` and `Down` (with the
 *   reason and the cause), in commit order, published in the write's own step. Only subscribers
 *   pay: nothing is built or offered while nobody listens. Each subscriber may fall at most
 *   `changesCapacity` changes behind (default 16,384); beyond that its oldest changes are
 *   dropped (a sliding `PubSub`), so a stuck subscriber cannot grow memory without bound.
 *
 * Telemetry (when `Telemetry` is in the context at `make`), with the original's names (see
 * `events`): `register`, `register_failed`, `unregister`, `unregister_failed`, `update`,
 * `update_failed`, `agent_down` and `batch_operation` by default; `query` only with
 * `telemetry: "all"` (a query is a per-call read: an envelope per query would cost the hot path,
 * so by default queries only count in a metric). Lookups emit nothing and count nowhere.
 * Metrics (tagged `registry`): `foundation_agent_registry_agents` (gauge),
 * `foundation_agent_registry_operations_total` (tag `operation`).
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Criteria from "../data/Criteria.js"
import {
  AlreadyExistsError,
  NotFoundError,
  Tagged,
  ValidationError,
  type ValidationIssue
} from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Batch from "../infra/Batch.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"
import * as Agent from "./Agent.js"
import type * as Supervisor from "./Supervisor.js"

// ---------------------------------------------------------------------------------------------
// Data model
// ---------------------------------------------------------------------------------------------

/** An agent's health. */
export type Health = "healthy" | "degraded" | "unhealthy"

/** The allowed health values, in the order errors list them. */
export const healthValues: ReadonlyArray<Health> = ["healthy", "degraded", "unhealthy"]

/** The required metadata fields, in the order a missing-fields error lists them. */
export const requiredFields = ["capabilities", "health", "node", "resources"] as const

/** An agent's metadata: the four required fields and any JSON fields besides. */
export interface Metadata {
  readonly capabilities: ReadonlyArray<string>
  readonly health: Health
  readonly node: string
  /** Resource figures (finite numbers), e.g. `memory_usage`, `cpu_available`. */
  readonly resources: Readonly<Record<string, number>>
  readonly [field: string]: unknown
}

/** A patch for `merge`: fields replace the entry's (shallowly); `undefined` removes an extra field. */
export type MetadataPatch = { readonly [K in keyof Metadata]?: Metadata[K] | undefined }

/** A JSON value (what an extra metadata field may hold). */
export type Json = null | string | number | boolean | ReadonlyArray<Json> | { readonly [key: string]: Json }

/** The Schema of a JSON value (numbers finite). */
export const JsonSchema: Schema.Schema<Json> = Schema.Union(
  Schema.Null,
  Schema.String,
  Schema.Finite,
  Schema.Boolean,
  Schema.Array(Schema.suspend((): Schema.Schema<Json> => JsonSchema)),
  Schema.Record({ key: Schema.String, value: Schema.suspend((): Schema.Schema<Json> => JsonSchema) })
)

/**
 * The Schema of metadata (for decoding it at a boundary, e.g. from JSON). The registry applies
 * the same rules to JSON input with a precompiled check (much cheaper than a decode; the tests
 * hold the two to agreement) that also lists every missing required field at once.
 */
export const MetadataSchema: Schema.Schema<Metadata> = Schema.Struct(
  {
    capabilities: Schema.Array(Schema.NonEmptyString),
    health: Schema.Literal(...healthValues),
    node: Schema.NonEmptyString,
    resources: Schema.Record({ key: Schema.String, value: Schema.Finite })
  },
  Schema.Record({ key: Schema.String, value: JsonSchema })
) as unknown as Schema.Schema<Metadata>

/** A registered agent. */
export interface Entry {
  readonly id: string
  /** Frozen. */
  readonly metadata: Metadata
  /** The agent, when the registry runs it (`spawn` / `supervised`). */
  readonly ref: Option.Option<Agent.AnyAgentRef>
  /** Epoch milliseconds, from `Clock`. */
  readonly registeredAt: number
  readonly updatedAt: number
}

/** Why a running agent's entry went away without a stop: how its incarnation ended. */
export type DownReason = "failure" | "defect" | "interrupted"

/** A change of the registry, as `changes` streams them. */
export type Change = Data.TaggedEnum<{
  Registered: { readonly entry: Entry }
  Updated: { readonly entry: Entry; readonly previous: Entry }
  /** Removed by `unregister` (or a transaction, or a batch), or its agent was stopped. */
  Unregistered: { readonly entry: Entry }
  /** Its agent's incarnation ended otherwise: failure, defect, interruption. */
  Down: { readonly entry: Entry; readonly reason: DownReason; readonly cause: Cause.Cause<unknown> }
}>

/** Constructors and matchers of `Change`. */
export const Change = Data.taggedEnum<Change>()

/** The indexed attributes, as `findBy` takes them. */
export type FindBy =
  | { readonly capability: string }
  | { readonly health: Health }
  | { readonly node: string }

/** The metadata paths of the indexes (what `query` reads an index for, under `eq` and `in`). */
export const indexedPaths: ReadonlyArray<Criteria.Path> = [["capabilities"], ["health"], ["node"]]

/** One operation of a transaction. */
export type Op =
  | { readonly op: "register"; readonly id: string; readonly metadata: Metadata }
  | { readonly op: "update"; readonly id: string; readonly metadata: Metadata }
  | { readonly op: "merge"; readonly id: string; readonly metadata: MetadataPatch }
  | { readonly op: "setHealth"; readonly id: string; readonly health: Health }
  | { readonly op: "unregister"; readonly id: string }

/** A transaction failed at one op; nothing of it was applied. */
export class RegistryTransactionError extends Tagged("RegistryTransactionError", {
  category: "permanent",
  severity: "medium",
  message: "Registry transaction failed"
})<{
  /** The failing op's position in the list. */
  readonly index: number
  readonly op: string
  readonly id: string
  readonly error: ValidationError | NotFoundError | AlreadyExistsError
}> {
  override describe() {
    return `Registry transaction failed at op ${this.index} (${this.op} "${this.id}"): ${this.error.message}; nothing was applied`
  }
}

/** Which telemetry events a registry emits (see the module doc). */
export type TelemetryLevel = "none" | "changes" | "all"

/** Options of a registry. */
export interface Options {
  /** Used in metrics and events ["agents"]. */
  readonly name?: string
  /** Changes a subscriber may fall behind before its oldest are dropped (an integer ≥ 1) [16384]. */
  readonly changesCapacity?: number
  /** ["changes"] */
  readonly telemetry?: TelemetryLevel
}

/** Defaults. */
export const defaults = { name: "agents", changesCapacity: 16_384, telemetry: "changes" } as const

/** Options of `spawn` and `supervised`: the agent's options and the metadata it registers with. */
export interface SpawnOptions extends Agent.SpawnOptions {
  /** Registered by each incarnation (validated when `spawn`/`supervised` is called). */
  readonly metadata: Metadata
}

/** Telemetry events of this module, with the original's names. */
export const events = Events.names.agentRegistry

/** The registry. */
export interface Registry {
  readonly name: string
  /** Registers an entry without an agent reference (agents the registry runs: `spawn`). */
  register(id: string, metadata: Metadata): Effect.Effect<Entry, ValidationError | AlreadyExistsError>
  /** Removes an entry; returns it. */
  unregister(id: string): Effect.Effect<Entry, NotFoundError>
  /** The entry, if registered. One `Map` get. */
  lookup(id: string): Effect.Effect<Option.Option<Entry>>
  /** The entry, or `NotFoundError`. */
  get(id: string): Effect.Effect<Entry, NotFoundError>
  /** Replaces the metadata (validated). The reference and `registeredAt` stay. */
  update(id: string, metadata: Metadata): Effect.Effect<Entry, ValidationError | NotFoundError>
  /** Merges a patch over the metadata, shallowly; the result is validated. */
  merge(id: string, patch: MetadataPatch): Effect.Effect<Entry, ValidationError | NotFoundError>
  /** Sets the health (what a health monitor calls); no change and no event when it is the same. */
  setHealth(id: string, health: Health): Effect.Effect<Entry, ValidationError | NotFoundError>
  /** Every entry (unordered), or those `filter` keeps. */
  list(filter?: (entry: Entry) => boolean): Effect.Effect<ReadonlyArray<Entry>>
  readonly count: Effect.Effect<number>
  /** The entries with a capability, a health or a node (an index read). */
  findBy(by: FindBy): Effect.Effect<ReadonlyArray<Entry>, ValidationError>
  /** The entries whose metadata matches the criteria (unordered); `eq`/`in` on an indexed attribute reads its index. */
  query(criteria: Criteria.Criteria): Effect.Effect<ReadonlyArray<Entry>, ValidationError>
  /** Applies every op or none (see the module doc); one entry per op (for `unregister`, the removed one). */
  transaction(ops: ReadonlyArray<Op>): Effect.Effect<ReadonlyArray<Entry>, ValidationError | RegistryTransactionError>
  /** Registers many entries through `Batch` (chunks, `onError` stop | continue | rollback). */
  registerAll(
    entries: Iterable<readonly [string, Metadata]>,
    options?: Batch.WriteOptions
  ): Effect.Effect<Batch.BatchResult<string, BatchError>, ValidationError>
  /**
   * Spawns an agent (`Agent.spawn`) registered while it runs. Bad metadata fails with
   * `ValidationError` before anything starts; a refused registration (the id is taken) is the
   * spawn's `AgentStartError`. Stopping it through the returned reference publishes
   * `Unregistered`; any other end publishes `Down`.
   */
  spawn<D extends Agent.AnyDefinition>(
    definition: D,
    options: SpawnOptions
  ): Effect.Effect<Agent.AgentRef<D>, ValidationError | Agent.AgentStartError, Scope.Scope | Agent.ContextOf<D>>
  /**
   * A supervised agent (`Agent.supervised`) that each incarnation registers (with the initial
   * metadata) and that is removed when the incarnation ends (`Down`).
   */
  supervised<D extends Agent.AnyDefinition>(
    definition: D,
    options: SpawnOptions & {
      readonly restart?: Supervisor.RestartType
      readonly shutdownTimeout?: Duration.DurationInput
    }
  ): Effect.Effect<
    { readonly ref: Agent.AgentRef<D>; readonly child: Supervisor.ChildSpec<Agent.ContextOf<D>> },
    ValidationError
  >
  /** The changes from now on, while the scope lasts. */
  readonly changes: Effect.Effect<Stream.Stream<Change>, never, Scope.Scope>
}

/** The `AgentRegistry` service. */
export class AgentRegistry extends Context.Tag("effect-foundation/AgentRegistry")<AgentRegistry, Registry>() {}

/** What a batch item can fail with (through `batchStore`). */
export type BatchError = AlreadyExistsError | NotFoundError | ValidationError

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

const isRecord = (u: unknown): u is Record<string, unknown> => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) return false
  const proto = Object.getPrototypeOf(u)
  return proto === Object.prototype || proto === null
}

const maxDepth = 64

/** Where `value` stops being JSON (a path suffix and a reason), or undefined. */
const jsonProblem = (value: unknown, depth: number): readonly [string, string] | undefined => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined
    case "number":
      return Number.isFinite(value) ? undefined : ["", "must be a finite number"]
    case "object": {
      if (value === null) return undefined
      if (depth >= maxDepth) return ["", `is nested deeper than ${maxDepth} levels`]
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const problem = jsonProblem(value[i], depth + 1)
          if (problem !== undefined) return [`.${i}${problem[0]}`, problem[1]]
        }
        return undefined
      }
      if (!isRecord(value)) return ["", "must be JSON (a plain object, a list, a string, a number, a boolean or null)"]
      for (const key of Object.keys(value)) {
        const problem = jsonProblem(value[key], depth + 1)
        if (problem !== undefined) return [`.${key}${problem[0]}`, problem[1]]
      }
      return undefined
    }
    default:
      return ["", "must be JSON (a plain object, a list, a string, a number, a boolean or null)"]
  }
}

const isRequired = (key: string): boolean =>
  key === "capabilities" || key === "health" || key === "node" || key === "resources"

const isHealth = (u: unknown): u is Health => u === "healthy" || u === "degraded" || u === "unhealthy"

const isPatch = (u: unknown): u is MetadataPatch => typeof u === "object" && u !== null && !Array.isArray(u)

const healthMessage = (field: string, value: unknown): string => {
  const checked = Validation.oneOf(field, value, healthValues)
  return Either.isLeft(checked) ? checked.left.reason : ""
}

/**
 * Checks metadata and returns the frozen copy the registry stores (the caller's object is never
 * kept, so mutating it later changes nothing). `field` prefixes the issues' fields.
 */
export const validateMetadata = (input: unknown, field = "metadata"): Either.Either<Metadata, ValidationError> => {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return Validation.invalid(field, "must be an object with capabilities, health, node and resources")
  }
  const m = input as Record<string, unknown>
  const capabilities = m["capabilities"]
  const health = m["health"]
  const node = m["node"]
  const resources = m["resources"]
  if (capabilities == null || health == null || node == null || resources == null) {
    const missing = requiredFields.filter((k) => m[k] == null)
    return Either.left(
      new ValidationError({
        field,
        reason: `missing required fields: ${missing.join(", ")}`,
        issues: missing.map((k) => ({ field: `${field}.${k}`, reason: "is required" }))
      })
    )
  }
  let issues: Array<ValidationIssue> | undefined
  const issue = (f: string, reason: string) => (issues ??= []).push({ field: f, reason })
  if (!Array.isArray(capabilities)) issue(`${field}.capabilities`, "must be a list of non-empty strings")
  else {
    for (let i = 0; i < capabilities.length; i++) {
      const c = capabilities[i]
      if (typeof c !== "string" || c === "") issue(`${field}.capabilities.${i}`, "must be a non-empty string")
    }
  }
  if (health !== "healthy" && health !== "degraded" && health !== "unhealthy") {
    issue(`${field}.health`, healthMessage(`${field}.health`, health))
  }
  if (typeof node !== "string" || node === "") issue(`${field}.node`, "must be a non-empty string")
  if (!isRecord(resources)) issue(`${field}.resources`, "must be an object of finite numbers")
  else {
    for (const k of Object.keys(resources)) {
      const v = resources[k]
      if (typeof v !== "number" || !Number.isFinite(v)) issue(`${field}.resources.${k}`, "must be a finite number")
    }
  }
  const keys = Object.keys(m)
  let extras = false
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!
    if (isRequired(k)) continue
    const v = m[k]
    if (v === undefined) continue
    extras = true
    const problem = jsonProblem(v, 0)
    if (problem !== undefined) issue(`${field}.${k}${problem[0]}`, problem[1])
  }
  if (issues !== undefined) {
    const first = issues[0]!
    return Either.left(new ValidationError({ field: first.field, reason: first.reason, issues }))
  }
  const stored: Record<string, unknown> = {
    capabilities: Object.isFrozen(capabilities) ? capabilities : Object.freeze((capabilities as Array<string>).slice()),
    health,
    node,
    resources: Object.isFrozen(resources) ? resources : Object.freeze({ ...(resources as Record<string, number>) })
  }
  if (extras) {
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!
      if (!isRequired(k) && m[k] !== undefined) stored[k] = m[k]
    }
  }
  return Either.right(Object.freeze(stored) as Metadata)
}

const checkId = (id: unknown, field = "id"): ValidationError | undefined =>
  typeof id === "string" && id !== "" ? undefined : new ValidationError({ field, reason: "must be a non-empty string" })

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/** One incarnation's registration: while its entry carries it, the incarnation owns the entry. */
class Lease {
  /** The incarnation ended (or crashed): its entry can never come back. */
  released = false
  constructor(readonly id: string) {}
}

/** A stored entry with what the registry keeps beside it. */
interface Rec {
  readonly entry: Entry
  /** `Option.some(entry)`, made once: a lookup allocates nothing. */
  readonly some: Option.Option<Entry>
  /** The incarnation that registered it, for agents the registry runs. */
  readonly owner: Lease | undefined
}

const makeRec = (entry: Entry, owner: Lease | undefined): Rec => ({ entry, some: Option.some(entry), owner })

/** An index: attribute value → (id → the entry). Holding entries, not ids, saves a lookup per result. */
type Index = Map<string, Map<string, Entry>>

const addTo = (index: Index, key: string, entry: Entry): void => {
  let members = index.get(key)
  if (members === undefined) index.set(key, members = new Map())
  members.set(entry.id, entry)
}

const removeFrom = (index: Index, key: string, id: string): void => {
  const members = index.get(key)
  if (members === undefined) return
  members.delete(id)
  if (members.size === 0) index.delete(key)
}

const sameList = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): boolean => {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * The entries and their indexes: plain structures, read and written only inside single
 * synchronous steps (each method is one such step's work), so every write is atomic.
 */
class State {
  readonly entries = new Map<string, Rec>()
  readonly byCapability: Index = new Map()
  readonly byHealth: Index = new Map()
  readonly byNode: Index = new Map()
  /** Ids in code-point order (for batch scans), rebuilt on demand after an insert or a removal. */
  private sorted: Array<string> | undefined = undefined

  /** Stores `rec` in place of `previous` (undefined: a new id), indexes and all. */
  put(rec: Rec, previous: Rec | undefined): void {
    const entry = rec.entry
    const id = entry.id
    const next = entry.metadata
    this.entries.set(id, rec)
    if (previous === undefined) {
      this.sorted = undefined
      for (const c of next.capabilities) addTo(this.byCapability, c, entry)
      addTo(this.byHealth, next.health, entry)
      addTo(this.byNode, next.node, entry)
      return
    }
    // Same attribute: the membership now holds the new entry (`addTo` replaces it in place).
    const before = previous.entry.metadata
    if (!sameList(before.capabilities, next.capabilities)) {
      for (const c of before.capabilities) removeFrom(this.byCapability, c, id)
    }
    for (const c of next.capabilities) addTo(this.byCapability, c, entry)
    if (before.health !== next.health) removeFrom(this.byHealth, before.health, id)
    addTo(this.byHealth, next.health, entry)
    if (before.node !== next.node) removeFrom(this.byNode, before.node, id)
    addTo(this.byNode, next.node, entry)
  }

  remove(rec: Rec): void {
    const id = rec.entry.id
    const m = rec.entry.metadata
    this.entries.delete(id)
    this.sorted = undefined
    for (const c of m.capabilities) removeFrom(this.byCapability, c, id)
    removeFrom(this.byHealth, m.health, id)
    removeFrom(this.byNode, m.node, id)
  }

  sortedIds(): ReadonlyArray<string> {
    return this.sorted ??= [...this.entries.keys()].sort(Criteria.compareStrings)
  }

  indexOf(pathKey: string): Index | undefined {
    return pathKey === "capabilities"
      ? this.byCapability
      : pathKey === "health"
      ? this.byHealth
      : pathKey === "node"
      ? this.byNode
      : undefined
  }
}

const indexedKeys: ReadonlySet<string> = new Set(indexedPaths.map(Criteria.pathKey))

/** Collects the criteria that must all hold (the members of lists and `and`s, recursively). */
const conjuncts = (criteria: Criteria.Criteria, out: Array<Criteria.Criteria>): void => {
  if (Array.isArray(criteria)) for (const c of criteria as ReadonlyArray<Criteria.Criteria>) conjuncts(c, out)
  else if ("and" in criteria) for (const c of criteria.and) conjuncts(c, out)
  else out.push(criteria)
}

const reasonOf = (cause: Cause.Cause<unknown>): DownReason =>
  Cause.isInterruptedOnly(cause) ? "interrupted" : Option.isSome(Cause.failureOption(cause)) ? "failure" : "defect"

/** What a running agent's registration needs, shared by its incarnations. */
interface Life {
  /** The current incarnation's lease, while it is registered. */
  lease: Lease | undefined
  /** Set by the returned reference's `stop` (spawned agents): the end is a stop, not a down. */
  stopping: boolean
  /** The reference handed out (and stored in the entry). */
  ref: Agent.AnyAgentRef | undefined
}

/** Internals `batchStore` uses to restore an entry with its reference (undo of an update or removal). */
interface Internals {
  /** Puts back a removed or replaced entry (with its reference and owner); fails if its agent has ended. */
  readonly restore: (rec: Rec) => Effect.Effect<void, AlreadyExistsError | NotFoundError>
  /** The record of an entry (for the undo stash). */
  readonly recOf: (id: string) => Rec | undefined
  /** The ids in code-point order (cached until an insert or a removal). */
  readonly sortedIds: () => ReadonlyArray<string>
}

const internals = new WeakMap<Registry, Internals>()

// ---------------------------------------------------------------------------------------------
// The registry
// ---------------------------------------------------------------------------------------------

/** Makes a registry in the current scope (closing it ends the change streams). */
export const make = (options: Options = {}): Effect.Effect<Registry, ValidationError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = yield* Validation.nonEmptyString("agentRegistry.name", options.name ?? defaults.name)
    const changesCapacity = yield* Validation.positiveInt(
      "agentRegistry.changesCapacity",
      options.changesCapacity ?? defaults.changesCapacity
    )
    const level = yield* Validation.oneOf("agentRegistry.telemetry", options.telemetry ?? defaults.telemetry, [
      "none",
      "changes",
      "all"
    ])
    const clock = yield* Effect.clock
    const telemetryService = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const telemetry = level === "none" ? undefined : telemetryService
    const queryTelemetry = level === "all" ? telemetryService : undefined
    const pubsub = yield* Effect.acquireRelease(PubSub.sliding<Change>(changesCapacity), PubSub.shutdown)
    let listeners = 0

    const tags = { registry: name }
    const agentsGauge = MetricKit.gauge("foundation_agent_registry_agents", { description: "Registered agents", tags })
    const opCounter = (operation: string): Metric.Metric.Counter<number> =>
      MetricKit.counter("foundation_agent_registry_operations_total", {
        description: "Registry operations, by operation",
        tags: { registry: name, operation }
      })
    const counters = {
      register: opCounter("register"),
      registerFailed: opCounter("register_failed"),
      update: opCounter("update"),
      unregister: opCounter("unregister"),
      down: opCounter("down"),
      query: opCounter("query"),
      transaction: opCounter("transaction")
    }

    const state = new State()

    // -- effects of a committed write (called inside the write's step) --------------------------

    /**
     * Publishes a change in the current step. `unsafeOffer` does not apply the sliding strategy
     * (it refuses when a subscriber is full): then the strategy's own publish runs, which is
     * synchronous for a sliding `PubSub` (it drops the oldest change and publishes).
     */
    const publish = (change: Change): void => {
      if (!pubsub.unsafeOffer(change)) Effect.runSyncExit(PubSub.publish(pubsub, change))
    }

    const sized = (): void => MetricKit.set(agentsGauge, state.entries.size)

    const registered = (entry: Entry): void => {
      MetricKit.bump(counters.register)
      if (listeners > 0) publish(Change.Registered({ entry }))
      telemetry?.unsafeEmit(events.register, { count: 1 }, {
        registry: name,
        agent_id: entry.id,
        capabilities: entry.metadata.capabilities,
        health_status: entry.metadata.health,
        node: entry.metadata.node
      })
    }

    const updated = (entry: Entry, previous: Entry): void => {
      MetricKit.bump(counters.update)
      if (listeners > 0) publish(Change.Updated({ entry, previous }))
      telemetry?.unsafeEmit(events.update, { count: 1 }, {
        registry: name,
        agent_id: entry.id,
        old_capabilities: previous.metadata.capabilities,
        new_capabilities: entry.metadata.capabilities,
        old_health: previous.metadata.health,
        new_health: entry.metadata.health
      })
    }

    const unregistered = (entry: Entry, reason: "explicit" | "stopped"): void => {
      MetricKit.bump(counters.unregister)
      if (listeners > 0) publish(Change.Unregistered({ entry }))
      telemetry?.unsafeEmit(events.unregister, { count: 1 }, { registry: name, agent_id: entry.id, reason })
    }

    const down = (entry: Entry, cause: Cause.Cause<unknown>): void => {
      const reason = reasonOf(cause)
      MetricKit.bump(counters.down)
      if (listeners > 0) publish(Change.Down({ entry, reason, cause }))
      telemetry?.unsafeEmit(events.agentDown, { count: 1, timestamp: clock.unsafeCurrentTimeMillis() }, {
        registry: name,
        agent_id: entry.id,
        reason,
        capabilities: entry.metadata.capabilities,
        health_status: entry.metadata.health,
        node: entry.metadata.node
      })
    }

    const registerFailed = (id: unknown, reason: "already_exists" | "validation", error: ValidationError | AlreadyExistsError) => {
      MetricKit.bump(counters.registerFailed)
      telemetry?.unsafeEmit(events.registerFailed, { count: 1 }, { registry: name, agent_id: id, reason, error: error.message })
    }

    const updateFailed = (id: unknown, error: ValidationError | NotFoundError) =>
      telemetry?.unsafeEmit(events.updateFailed, { count: 1 }, {
        registry: name,
        agent_id: id,
        reason: error._tag === "NotFoundError" ? "not_found" : "validation",
        error: error.message
      })

    const notFound = (id: string) => new NotFoundError({ resource: "agent", key: id })
    const alreadyExists = (id: string) => new AlreadyExistsError({ resource: "agent", key: id })

    // -- writes: each one synchronous step ------------------------------------------------------

    const register: Registry["register"] = (id, metadata) =>
      Effect.suspend((): Effect.Effect<Entry, ValidationError | AlreadyExistsError> => {
        const badId = checkId(id)
        if (badId !== undefined) {
          registerFailed(id, "validation", badId)
          return Effect.fail(badId)
        }
        const checked = validateMetadata(metadata)
        if (Either.isLeft(checked)) {
          registerFailed(id, "validation", checked.left)
          return Effect.fail(checked.left)
        }
        if (state.entries.has(id)) {
          const error = alreadyExists(id)
          registerFailed(id, "already_exists", error)
          return Effect.fail(error)
        }
        const now = clock.unsafeCurrentTimeMillis()
        const rec = makeRec({ id, metadata: checked.right, ref: Option.none(), registeredAt: now, updatedAt: now }, undefined)
        state.put(rec, undefined)
        sized()
        registered(rec.entry)
        return Effect.succeed(rec.entry)
      })

    /** Replaces an entry's metadata (already validated), keeping its reference and owner. */
    const replace = (previous: Rec, metadata: Metadata, now: number): Rec =>
      makeRec({ ...previous.entry, metadata, updatedAt: now }, previous.owner)

    /** The validated metadata of a change to `previous`. */
    const changed = (
      previous: Rec,
      change: { readonly _tag: "update"; readonly metadata: unknown } | { readonly _tag: "merge"; readonly patch: unknown } | {
        readonly _tag: "setHealth"
        readonly health: unknown
      }
    ): Either.Either<Metadata, ValidationError> => {
      switch (change._tag) {
        case "update":
          return validateMetadata(change.metadata)
        case "merge": {
          const patch = change.patch
          if (!isPatch(patch)) return Validation.invalid("metadata", "a patch must be an object")
          return validateMetadata({ ...previous.entry.metadata, ...patch })
        }
        case "setHealth": {
          const health = change.health
          if (!isHealth(health)) return Validation.invalid("health", healthMessage("health", health))
          // The other fields are the stored (frozen, valid) ones: only the health changes.
          return Either.right(Object.freeze({ ...previous.entry.metadata, health }) as Metadata)
        }
      }
    }

    const write = (
      id: string,
      change: Parameters<typeof changed>[1]
    ): Effect.Effect<Entry, ValidationError | NotFoundError> =>
      Effect.suspend((): Effect.Effect<Entry, ValidationError | NotFoundError> => {
        // The input first (what needs no entry), then the entry.
        let checked: Either.Either<Metadata, ValidationError> | undefined
        if (change._tag === "update") checked = validateMetadata(change.metadata)
        else if (change._tag === "setHealth" && !isHealth(change.health)) {
          checked = Validation.invalid("health", healthMessage("health", change.health))
        } else if (change._tag === "merge" && !isPatch(change.patch)) {
          checked = Validation.invalid("metadata", "a patch must be an object")
        }
        if (checked !== undefined && Either.isLeft(checked)) {
          updateFailed(id, checked.left)
          return Effect.fail(checked.left)
        }
        const previous = state.entries.get(id)
        if (previous === undefined) {
          const error = notFound(String(id))
          updateFailed(id, error)
          return Effect.fail(error)
        }
        if (change._tag === "setHealth" && previous.entry.metadata.health === change.health) {
          return Effect.succeed(previous.entry)
        }
        checked ??= changed(previous, change)
        if (Either.isLeft(checked)) {
          updateFailed(id, checked.left)
          return Effect.fail(checked.left)
        }
        const rec = replace(previous, checked.right, clock.unsafeCurrentTimeMillis())
        state.put(rec, previous)
        updated(rec.entry, previous.entry)
        return Effect.succeed(rec.entry)
      })

    const unregister: Registry["unregister"] = (id) =>
      Effect.suspend(() => {
        const rec = state.entries.get(id)
        if (rec === undefined) {
          telemetry?.unsafeEmit(events.unregisterFailed, { count: 1 }, { registry: name, agent_id: id, reason: "not_found" })
          return Effect.fail(notFound(String(id)))
        }
        state.remove(rec)
        sized()
        unregistered(rec.entry, "explicit")
        return Effect.succeed(rec.entry)
      })

    // -- reads ----------------------------------------------------------------------------------

    const none = Option.none<Entry>()

    const lookup: Registry["lookup"] = (id) => Effect.sync(() => state.entries.get(id)?.some ?? none)

    const get: Registry["get"] = (id) =>
      Effect.suspend(() => {
        const rec = state.entries.get(id)
        return rec === undefined ? Effect.fail(notFound(String(id))) : Effect.succeed(rec.entry)
      })

    const list: Registry["list"] = (filter) =>
      Effect.sync(() => {
        const out: Array<Entry> = []
        for (const rec of state.entries.values()) if (filter === undefined || filter(rec.entry)) out.push(rec.entry)
        return out
      })

    const entriesOf = (members: Map<string, Entry> | undefined): Array<Entry> =>
      members === undefined ? [] : Array.from(members.values())

    const findBy: Registry["findBy"] = (by) =>
      Effect.suspend((): Effect.Effect<ReadonlyArray<Entry>, ValidationError> => {
        if (typeof by !== "object" || by === null) {
          return Effect.fail(new ValidationError({ field: "findBy", reason: "expected { capability }, { health } or { node }" }))
        }
        if ("capability" in by) {
          return typeof by.capability === "string"
            ? Effect.succeed(entriesOf(state.byCapability.get(by.capability)))
            : Effect.fail(new ValidationError({ field: "findBy.capability", reason: "must be a string" }))
        }
        if ("health" in by) {
          const h = by.health
          return h === "healthy" || h === "degraded" || h === "unhealthy"
            ? Effect.succeed(entriesOf(state.byHealth.get(h)))
            : Effect.fail(new ValidationError({ field: "findBy.health", reason: healthMessage("findBy.health", h) }))
        }
        if ("node" in by) {
          return typeof by.node === "string"
            ? Effect.succeed(entriesOf(state.byNode.get(by.node)))
            : Effect.fail(new ValidationError({ field: "findBy.node", reason: "must be a string" }))
        }
        return Effect.fail(
          new ValidationError({
            field: "findBy",
            reason: `unsupported attribute ${JSON.stringify(Object.keys(by)[0] ?? null)} (one of capability, health, node)`
          })
        )
      })

    /** The entries of an index under `eq`/`in` values (strings only: the indexed attributes hold strings). */
    const indexRead = (index: Index, value: Criteria.Scalar | ReadonlyArray<Criteria.Scalar>): Array<Entry> => {
      if (!Array.isArray(value)) return typeof value === "string" ? entriesOf(index.get(value)) : []
      const out: Array<Entry> = []
      const seen = value.length > 1 ? new Set<string>() : undefined
      for (const v of value) {
        if (typeof v !== "string") continue
        const members = index.get(v)
        if (members === undefined) continue
        for (const entry of members.values()) {
          if (seen !== undefined) {
            if (seen.has(entry.id)) continue
            seen.add(entry.id)
          }
          out.push(entry)
        }
      }
      return out
    }

    const query: Registry["query"] = (criteria) =>
      Effect.suspend((): Effect.Effect<ReadonlyArray<Entry>, ValidationError> => {
        const checked = Criteria.validate(criteria)
        if (Either.isLeft(checked)) return Effect.fail(checked.left)
        // The criteria that must all hold; an `eq`/`in` on an indexed attribute among them (the
        // one with the fewest values, then the first: `Criteria.plan`'s rule) gives the
        // candidates, which are exactly the entries it matches, so only the others filter them.
        const all: Array<Criteria.Criteria> = []
        conjuncts(checked.right, all)
        let best = -1
        let bestSize = Infinity
        for (let i = 0; i < all.length; i++) {
          const c = all[i]!
          if (!Criteria.isCriterion(c) || (c.op !== "eq" && c.op !== "in") || c.path.length !== 1) continue
          if (!indexedKeys.has(c.path[0])) continue
          const size = c.op === "eq" ? 1 : (c.value as ReadonlyArray<Criteria.Scalar>).length
          if (size < bestSize) {
            best = i
            bestSize = size
          }
        }
        let out: Array<Entry>
        if (best < 0) {
          const matches = Criteria.predicate(all)
          out = []
          for (const rec of state.entries.values()) if (matches(rec.entry.metadata)) out.push(rec.entry)
        } else {
          const chosen = all[best] as Criteria.Criterion
          const candidates = indexRead(state.indexOf(chosen.path[0])!, chosen.value)
          if (all.length === 1) out = candidates
          else {
            all.splice(best, 1)
            const matches = Criteria.predicate(all)
            out = []
            for (const entry of candidates) if (matches(entry.metadata)) out.push(entry)
          }
        }
        MetricKit.bump(counters.query)
        queryTelemetry?.unsafeEmit(events.query, { result_count: out.length }, {
          registry: name,
          query_type: best < 0 ? "scan" : "indexed"
        })
        return Effect.succeed(out)
      })

    // -- transactions ---------------------------------------------------------------------------

    type Planned =
      | { readonly kind: "put"; readonly rec: Rec }
      | { readonly kind: "remove"; readonly id: string }

    const transaction: Registry["transaction"] = (ops) =>
      Effect.suspend((): Effect.Effect<ReadonlyArray<Entry>, ValidationError | RegistryTransactionError> => {
        if (!Array.isArray(ops)) return Effect.fail(new ValidationError({ field: "ops", reason: "must be a list of operations" }))
        // 1. Every op against a private overlay: nothing shared is touched until all have passed.
        const overlay = new Map<string, Rec | null>()
        const read = (id: string): Rec | undefined => {
          const pending = overlay.get(id)
          return pending === undefined ? state.entries.get(id) : pending ?? undefined
        }
        const planned: Array<Planned> = []
        const results: Array<Entry> = []
        const now = clock.unsafeCurrentTimeMillis()
        for (let i = 0; i < ops.length; i++) {
          const raw: unknown = ops[i]
          const op = typeof raw === "object" && raw !== null ? (raw as Record<string, unknown>) : {}
          const kind = String(op["op"])
          const id = op["id"]
          const fail = (error: ValidationError | NotFoundError | AlreadyExistsError) =>
            Effect.fail(new RegistryTransactionError({ index: i, op: kind, id: String(id), error }))
          const badId = checkId(id)
          if (badId !== undefined) return fail(badId)
          const key = id as string
          const previous = read(key)
          switch (kind) {
            case "register": {
              const checked = validateMetadata(op["metadata"])
              if (Either.isLeft(checked)) return fail(checked.left)
              if (previous !== undefined) return fail(alreadyExists(key))
              const rec = makeRec(
                { id: key, metadata: checked.right, ref: Option.none(), registeredAt: now, updatedAt: now },
                undefined
              )
              overlay.set(key, rec)
              planned.push({ kind: "put", rec })
              results.push(rec.entry)
              break
            }
            case "update":
            case "merge":
            case "setHealth": {
              if (previous === undefined) return fail(notFound(key))
              const checked = changed(
                previous,
                kind === "update"
                  ? { _tag: "update", metadata: op["metadata"] }
                  : kind === "merge"
                  ? { _tag: "merge", patch: op["metadata"] }
                  : { _tag: "setHealth", health: op["health"] }
              )
              if (Either.isLeft(checked)) return fail(checked.left)
              const rec = replace(previous, checked.right, now)
              overlay.set(key, rec)
              planned.push({ kind: "put", rec })
              results.push(rec.entry)
              break
            }
            case "unregister": {
              if (previous === undefined) return fail(notFound(key))
              overlay.set(key, null)
              planned.push({ kind: "remove", id: key })
              results.push(previous.entry)
              break
            }
            default:
              return fail(
                new ValidationError({
                  field: "op",
                  reason: `unknown operation ${JSON.stringify(op["op"] ?? null)} (one of register, update, merge, setHealth, unregister)`
                })
              )
          }
        }
        // 2. Apply all (this step cannot fail: each op was checked against the state it will
        // meet), then the events, in op order.
        for (const p of planned) {
          if (p.kind === "put") {
            const previous = state.entries.get(p.rec.entry.id)
            state.put(p.rec, previous)
            if (previous === undefined) registered(p.rec.entry)
            else updated(p.rec.entry, previous.entry)
          } else {
            const previous = state.entries.get(p.id)!
            state.remove(previous)
            unregistered(previous.entry, "explicit")
          }
        }
        sized()
        MetricKit.bump(counters.transaction)
        return Effect.succeed(results)
      })

    // -- agents the registry runs ---------------------------------------------------------------

    /** Registers an incarnation (one step); its lease makes it the entry's owner. */
    const registerOwned = (life: Life, id: string, metadata: Metadata): Either.Either<Lease, AlreadyExistsError> => {
      if (state.entries.has(id)) {
        const error = alreadyExists(id)
        registerFailed(id, "already_exists", error)
        return Either.left(error)
      }
      const lease = new Lease(id)
      const now = clock.unsafeCurrentTimeMillis()
      const rec = makeRec({ id, metadata, ref: Option.some(life.ref!), registeredAt: now, updatedAt: now }, lease)
      state.put(rec, undefined)
      life.lease = lease
      sized()
      registered(rec.entry)
      return Either.right(lease)
    }

    /** Removes the entry `lease` owns, if it still does (one step). */
    const removeOwned = (lease: Lease, stopped: boolean, cause: Cause.Cause<unknown>): void => {
      const rec = state.entries.get(lease.id)
      if (rec === undefined || rec.owner !== lease) return
      state.remove(rec)
      sized()
      if (stopped) unregistered(rec.entry, "stopped")
      else down(rec.entry, cause)
    }

    /**
     * The `attach` of a registry-run agent: the user's own attach, then the registration, whose
     * release (when the incarnation's scope closes, whatever closes it) removes the entry. `Agent`
     * releases it before it answers a call whose defect ended the agent, so no one can find a
     * dead agent in between. (`Scope.addFinalizerExit`, not `acquireRelease`: that one keeps a
     * copy of the fiber refs per agent.)
     */
    const attachFor = (life: Life, metadata: Metadata, userAttach: Agent.SpawnOptions["attach"]) =>
    (ref: Agent.AnyAgentRef): Effect.Effect<void, unknown, Scope.Scope> => {
      life.ref = ref
      const registration = Effect.uninterruptible(Effect.flatMap(Effect.scope, (scope) =>
        Effect.flatMap(
          Effect.suspend(() => registerOwned(life, ref.id, metadata)),
          (lease) => Scope.addFinalizerExit(scope, releaseOf(life, lease))
        )))
      return userAttach === undefined ? registration : Effect.zipRight(userAttach(ref), registration)
    }

    // The closures an agent keeps for its life come from these small functions, so that each
    // holds only what it uses (a closure keeps its enclosing function's whole context alive).

    /** The registration's release: the incarnation's scope closed, whatever closed it. */
    const releaseOf = (life: Life, lease: Lease) => (exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
      Effect.sync(() => {
        lease.released = true
        if (life.lease === lease) life.lease = undefined
        const cause = Exit.isFailure(exit) ? exit.cause : Cause.empty
        removeOwned(lease, life.stopping && (Exit.isSuccess(exit) || Cause.isInterruptedOnly(cause)), cause)
      })

    /** The reference handed out for a spawned agent: a stop through it is a stop, not a down. */
    const decorate = (life: Life) => (inner: Agent.AnyAgentRef): Agent.AnyAgentRef => ({
      ...inner,
      stop: Effect.suspend(() => {
        life.stopping = true
        return inner.stop
      })
    })

    const splitOptions = <O extends SpawnOptions>(options: O) => {
      const { attach, metadata, ...rest } = options
      return { attach, metadata, rest }
    }

    const spawn: Registry["spawn"] = <D extends Agent.AnyDefinition>(definition: D, options: SpawnOptions) =>
      Effect.suspend(() => {
        if (typeof options !== "object" || options === null) {
          return Validation.invalid("options", "expected { metadata, ... }")
        }
        const checked = validateMetadata(options.metadata)
        if (Either.isLeft(checked)) return Effect.fail(checked.left)
        const life: Life = { lease: undefined, stopping: false, ref: undefined }
        return Agent.spawn(definition, {
          id: options.id,
          mailbox: options.mailbox,
          whenFull: options.whenFull,
          // The reference handed out (and stored, and the agent's `ctx.self`): a stop through it
          // marks the end as a stop (an `Unregistered`, not a `Down`).
          reference: decorate(life),
          attach: attachFor(life, checked.right, options.attach)
        })
      })

    const supervised: Registry["supervised"] = <D extends Agent.AnyDefinition>(
      definition: D,
      options: SpawnOptions & { readonly restart?: Supervisor.RestartType; readonly shutdownTimeout?: Duration.DurationInput }
    ) =>
      Effect.suspend(() => {
        if (typeof options !== "object" || options === null) {
          return Validation.invalid("options", "expected { metadata, ... }")
        }
        const { attach, metadata, rest } = splitOptions(options)
        const checked = validateMetadata(metadata)
        if (Either.isLeft(checked)) return Effect.fail(checked.left)
        // A supervised agent is stopped by its supervisor: every end of an incarnation is a `Down`.
        const life: Life = { lease: undefined, stopping: false, ref: undefined }
        return Agent.supervised(definition, { ...rest, attach: attachFor(life, checked.right, attach) })
      })

    // -- changes, batches -----------------------------------------------------------------------

    const changes: Registry["changes"] = Effect.map(
      Effect.zipRight(
        Effect.acquireRelease(
          Effect.sync(() => {
            listeners++
          }),
          () =>
            Effect.sync(() => {
              listeners--
            })
        ),
        PubSub.subscribe(pubsub)
      ),
      (queue) => Stream.fromQueue(queue)
    )

    const registerAll: Registry["registerAll"] = (entries, options) =>
      Effect.gen(function*() {
        const startedAt = clock.unsafeCurrentTimeMillis()
        const items = Array.from(entries)
        const batcher = yield* Batch.make(batchStore(registry))
        const result = yield* batcher.register(items, options)
        const total = Batch.BatchResult.$match(result, {
          Ok: (r) => ({ success: r.keys.length, failed: 0, status: "ok" }),
          Partial: (r) => ({ success: r.keys.length, failed: r.failures.length, status: "partial" }),
          // What stays applied of a failed batch: the items whose undo failed.
          Failed: (r) => ({ success: r.rollbackFailures.length, failed: r.failures.length, status: "failed" })
        })
        telemetry?.unsafeEmit(events.batchOperation, {
          duration: clock.unsafeCurrentTimeMillis() - startedAt,
          total_count: items.length,
          success_count: total.success,
          failed_count: total.failed
        }, { registry: name, operation: "batch_register", status: total.status })
        return result
      })

    const restore: Internals["restore"] = (rec) =>
      Effect.suspend((): Effect.Effect<void, AlreadyExistsError | NotFoundError> => {
        const id = rec.entry.id
        if (rec.owner !== undefined && rec.owner.released) {
          return Effect.fail(new NotFoundError({ resource: "running agent", key: id }))
        }
        if (state.entries.has(id)) return Effect.fail(alreadyExists(id))
        const back = makeRec({ ...rec.entry, updatedAt: clock.unsafeCurrentTimeMillis() }, rec.owner)
        state.put(back, undefined)
        sized()
        registered(back.entry)
        return Effect.void
      })

    const registry: Registry = {
      name,
      register,
      unregister,
      lookup,
      get,
      update: (id, metadata) => write(id, { _tag: "update", metadata }),
      merge: (id, patch) => write(id, { _tag: "merge", patch }),
      setHealth: (id, health) => write(id, { _tag: "setHealth", health }),
      list,
      count: Effect.sync(() => state.entries.size),
      findBy,
      query,
      transaction,
      registerAll,
      spawn,
      supervised,
      changes
    }
    internals.set(registry, { restore, recOf: (id) => state.entries.get(id), sortedIds: () => state.sortedIds() })
    return registry
  })

/** The registry as a layer. */
export const layer = (options: Options = {}): Layer.Layer<AgentRegistry, ValidationError> =>
  Layer.scoped(AgentRegistry, make(options))

// ---------------------------------------------------------------------------------------------
// Batch adapter
// ---------------------------------------------------------------------------------------------

/**
 * The registry as a `Batch.BatchStore` (keys: ids; values: metadata; patches: merged), so that
 * `Batch.make(AgentRegistry.batchStore(registry)).register(...)` works, rollback included. The undo
 * of an update or a removal of an agent the registry runs puts its entry back with its reference
 * and its automatic removal, unless the agent has ended meanwhile (then the undo fails with
 * `NotFoundError`: a dead agent is never registered again). Scans are in code-point id order.
 */
export const batchStore = (
  registry: Registry
): Batch.BatchStore<string, Metadata, MetadataPatch, ValidationError | NotFoundError, string> => {
  const inner = internals.get(registry)
  /** Records taken out by this adapter, by the metadata object it handed back (for the undo). */
  const stash = new WeakMap<Metadata, Rec>()
  const stashed = (id: string): Metadata | undefined => {
    const rec = inner?.recOf(id)
    if (rec !== undefined) stash.set(rec.entry.metadata, rec)
    return rec?.entry.metadata
  }
  return {
    name: registry.name,
    insert: (key, value) =>
      Effect.suspend((): Effect.Effect<void, AlreadyExistsError | ValidationError | NotFoundError> => {
        const rec = stash.get(value)
        if (inner !== undefined && rec !== undefined && rec.entry.id === key) {
          stash.delete(value)
          return inner.restore(rec)
        }
        return Effect.asVoid(registry.register(key, value))
      }),
    update: (key, patch) =>
      Effect.suspend((): Effect.Effect<Metadata, ValidationError | NotFoundError> => {
        if (inner === undefined) {
          // A registry made elsewhere: read the previous metadata first (for the undo).
          return Effect.flatMap(registry.get(key), (before) => Effect.as(registry.merge(key, patch), before.metadata))
        }
        const previous = stashed(key)
        return Effect.map(registry.merge(key, patch), (entry) => previous ?? entry.metadata)
      }),
    remove: (key) =>
      Effect.suspend(() => {
        stashed(key)
        return Effect.map(registry.unregister(key), (entry) => entry.metadata)
      }),
    scan: (cursor, limit, filter) =>
      Effect.suspend(() => {
        const checked = Validation.positiveInt("agentRegistry.scan.limit", limit)
        if (Either.isLeft(checked)) return Effect.fail(checked.left)
        const page = (ids: ReadonlyArray<string>, entryOf: (id: string) => Entry | undefined) => {
          let i = 0
          if (Option.isSome(cursor)) {
            let lo = 0
            let hi = ids.length
            while (lo < hi) {
              const mid = (lo + hi) >>> 1
              if (Criteria.compareStrings(ids[mid]!, cursor.value) <= 0) lo = mid + 1
              else hi = mid
            }
            i = lo
          }
          const out: Array<readonly [string, Metadata]> = []
          let last: string | undefined
          for (; i < ids.length && out.length < limit; i++) {
            const entry = entryOf(ids[i]!)
            if (entry === undefined) continue
            last = entry.id
            if (filter === undefined || filter(entry.metadata, entry.id)) out.push([entry.id, entry.metadata])
          }
          return { entries: out, next: i < ids.length && last !== undefined ? Option.some(last) : Option.none() }
        }
        if (inner !== undefined) return Effect.succeed(page(inner.sortedIds(), (id) => inner.recOf(id)?.entry))
        // A registry made elsewhere: sort what `list` gives.
        return Effect.map(registry.list(), (entries) => {
          const byId = new Map(entries.map((e) => [e.id, e]))
          return page([...byId.keys()].sort(Criteria.compareStrings), (id) => byId.get(id))
        })
      })
  }
}

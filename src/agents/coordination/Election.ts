/**
 * Election: one leader among the agents of the `AgentRegistry` that have a capability, holding a
 * lease (the original's `CoordinationPatterns.elect_leader` / `monitor_leader`, which were
 * placeholders: random votes, a leader watched by polling).
 *
 * Candidates are the registered agents with the capability whose health is eligible (healthy by
 * default). The leader is the first candidate by `order` (default: the oldest registration,
 * then the id), and it keeps the lead until it loses it: a better candidate arriving later does
 * not take over (no flapping). Each change of leader starts a new term; terms strictly increase.
 *
 * The lease: a leader holds it for `lease` (15 s) from its election, and it is renewed either by
 * the service (`renewal: "service"`, the default: every `renewEvery`, on a `Schedule`, while the
 * leader is alive: still running, and passing the optional `check`) or by the leader itself
 * (`renewal: "agent"`: it calls `renew(id)` in time). `renew` works in both modes.
 *
 * Guarantees:
 * - A new leader is chosen at once (no polling) when the leader's registration goes away (the
 *   registry's `changes`: `Unregistered`, `Down`), when its entry stops being eligible (lost the
 *   capability, health no longer eligible), or when its lease expires without renewal. An agent
 *   whose lease expired is passed over until it calls `renew` again (or registers again), so a
 *   hung leader is not re-elected at once; when no candidate is left, there is no leader, and the
 *   first eligible agent to appear (or to renew) is elected.
 * - Every change is one step, serialized with the others: the leader, the term and the lease
 *   change together, and `changes` publishes them in term order. `changes` starts with the
 *   current leadership, then every change (none missed, none repeated).
 * - The lease timer and the renewal are one fiber per term in the service's scope; they end with
 *   the term. Closing the scope stops everything and ends the streams.
 *
 * Telemetry (when `Telemetry` is in the context at `make`; see `events`): `leader_changed`.
 * Metric: `foundation_election_term` (gauge, tag `election`).
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Order from "effect/Order"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Events from "../../observability/Events.js"
import * as Criteria from "../../data/Criteria.js"
import { Tagged, type ValidationError } from "../../errors/FoundationError.js"
import * as Validation from "../../errors/Validation.js"
import * as MetricKit from "../../observability/MetricKit.js"
import * as Telemetry from "../../observability/Telemetry.js"
import * as AgentRegistry from "../AgentRegistry.js"

// ---------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------

/** Why the leadership is what it is. */
export type Reason =
  /** No leader since the start (term 0): no candidate yet. */
  | "started"
  /** A leader where there was none. */
  | "elected"
  /** The leader's entry was removed (unregistered, or its agent stopped). */
  | "leader_unregistered"
  /** The leader's agent ended otherwise (failure, defect, interruption). */
  | "leader_down"
  /** The leader's lease ran out without a renewal. */
  | "lease_expired"
  /** The leader's entry lost the capability, or its health is no longer eligible. */
  | "leader_ineligible"

/** The leadership of one term (what `current` returns and `changes` streams). */
export interface Leadership {
  /** The leader's agent id, if there is one. */
  readonly leader: Option.Option<string>
  /** The leader of the term before. */
  readonly previous: Option.Option<string>
  /** Strictly increasing, by one per change (0: no leader ever). */
  readonly term: number
  readonly reason: Reason
  /** When the term began (epoch milliseconds, Clock). */
  readonly since: number
  /** When the lease ends unless renewed (as of the read, for `current`; at the change, in `changes`). */
  readonly expiresAt: Option.Option<number>
}

/** Who renews the lease. */
export type Renewal = "service" | "agent"

/** Options of an election. */
export interface Options {
  /** The capability the candidates must have. */
  readonly capability: string
  /** How long a lease lasts without renewal [15 s]. */
  readonly lease?: Duration.DurationInput
  /** How often the service renews the lease (`renewal: "service"`); less than `lease` [lease / 3]. */
  readonly renewEvery?: Duration.DurationInput
  /** Who renews the lease ["service"]. */
  readonly renewal?: Renewal
  /**
   * With `renewal: "service"`: whether the leader is alive, run before each renewal (a failure,
   * `false` or no answer before the lease ends: no renewal) [the agent is running].
   */
  readonly check?: (entry: AgentRegistry.Entry) => Effect.Effect<boolean, unknown>
  /** The healths a candidate may have [["healthy"]]. */
  readonly health?: ReadonlyArray<AgentRegistry.Health>
  /** Which candidate leads [oldest registration first, then by id]. */
  readonly order?: Order.Order<AgentRegistry.Entry>
  /** Used in events and metrics ["election"]. */
  readonly name?: string
  /** Changes a subscriber may fall behind before its oldest are dropped (an integer ≥ 1) [1024]. */
  readonly changesCapacity?: number
}

/** Defaults. */
export const defaults = {
  lease: Duration.seconds(15),
  renewal: "service",
  health: ["healthy"],
  name: "election",
  changesCapacity: 1024
} as const

/** The default order: the oldest registration first, then by id (code points). */
export const oldestFirst: Order.Order<AgentRegistry.Entry> = Order.combine(
  Order.mapInput(Order.number, (e: AgentRegistry.Entry) => e.registeredAt),
  Order.make((a: AgentRegistry.Entry, b: AgentRegistry.Entry) => Math.sign(Criteria.compareStrings(a.id, b.id)) as -1 | 0 | 1)
)

/** Telemetry events of this module. */
export const events = Events.names.election

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** `renew` from an agent that is a candidate but not the leader. */
export class NotLeaderError extends Tagged("NotLeaderError", {
  category: "permanent",
  severity: "low",
  message: "Not the leader"
})<{ readonly election: string; readonly agent: string; readonly leader: Option.Option<string> }> {
  override describe() {
    return `Agent "${this.agent}" is not the leader of election "${this.election}"${
      Option.isSome(this.leader) ? ` (the leader is "${this.leader.value}")` : " (there is none)"
    }`
  }
}

/** `renew` from an agent that is not registered, lacks the capability or has an ineligible health. */
export class NotCandidateError extends Tagged("NotCandidateError", {
  category: "permanent",
  severity: "low",
  message: "Not a candidate"
})<{ readonly election: string; readonly agent: string; readonly reason: string }> {
  override describe() {
    return `Agent "${this.agent}" is not a candidate of election "${this.election}": ${this.reason}`
  }
}

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

/** An election. */
export interface Service {
  readonly name: string
  readonly capability: string
  /** The leader's id, if there is one. */
  readonly leader: Effect.Effect<Option.Option<string>>
  /** The current term's leadership, with the lease's current end. */
  readonly current: Effect.Effect<Leadership>
  /** The current leadership, then every change, while the scope lasts. */
  readonly changes: Effect.Effect<Stream.Stream<Leadership>, never, Scope.Scope>
  /**
   * The leader renews its lease (for `lease` from now) and gets the leadership. From another
   * candidate: it is no longer passed over after an expired lease, it is elected if there is no
   * leader, else `NotLeaderError`. From an agent that is not a candidate: `NotCandidateError`.
   */
  renew(agent: string | { readonly id: string }): Effect.Effect<Leadership, ValidationError | NotLeaderError | NotCandidateError>
}

/** The `Election` service. */
export class Election extends Context.Tag("effect-foundation/Election")<Election, Service>() {}

/**
 * Makes an election in the current scope, over the registry given (`registry`) or the
 * `AgentRegistry` in the context. The first leader is chosen before it returns.
 */
export function make(
  options: Options & { readonly registry: AgentRegistry.Registry }
): Effect.Effect<Service, ValidationError, Scope.Scope>
export function make(options: Options): Effect.Effect<Service, ValidationError, Scope.Scope | AgentRegistry.AgentRegistry>
export function make(
  options: Options & { readonly registry?: AgentRegistry.Registry }
): Effect.Effect<Service, ValidationError, Scope.Scope | AgentRegistry.AgentRegistry> {
  return Effect.gen(function*() {
    if (typeof options !== "object" || options === null) return yield* Validation.invalid("election", "expected options")
    const name = yield* Validation.nonEmptyString("election.name", options.name ?? defaults.name)
    const capability = yield* Validation.nonEmptyString("election.capability", options.capability)
    const lease = options.lease === undefined ? defaults.lease : yield* Validation.duration("election.lease", options.lease)
    const leaseMillis = Duration.toMillis(lease)
    const renewal = yield* Validation.oneOf("election.renewal", options.renewal ?? defaults.renewal, ["service", "agent"])
    const renewEvery = options.renewEvery === undefined
      ? Duration.millis(leaseMillis / 3)
      : yield* Validation.duration("election.renewEvery", options.renewEvery)
    if (!Duration.lessThan(renewEvery, lease)) {
      return yield* Validation.invalid("election.renewEvery", `must be less than the lease (${Duration.format(lease)})`)
    }
    if (options.check !== undefined) {
      if (typeof options.check !== "function") return yield* Validation.invalid("election.check", "must be a function")
      if (renewal !== "service") return yield* Validation.invalid("election.check", "applies to renewal \"service\" only")
    }
    const healthInput: unknown = options.health ?? defaults.health
    if (!Array.isArray(healthInput) || healthInput.length === 0) {
      return yield* Validation.invalid("election.health", "must be a non-empty list of healths")
    }
    const health = new Set<AgentRegistry.Health>()
    for (let i = 0; i < healthInput.length; i++) {
      health.add(yield* Validation.oneOf(`election.health.${i}`, healthInput[i], AgentRegistry.healthValues))
    }
    if (options.order !== undefined && typeof options.order !== "function") {
      return yield* Validation.invalid("election.order", "must be an Order")
    }
    const order = options.order ?? oldestFirst
    const changesCapacity = yield* Validation.positiveInt(
      "election.changesCapacity",
      options.changesCapacity ?? defaults.changesCapacity
    )
    const registry = options.registry ?? (yield* AgentRegistry.AgentRegistry)
    const check = options.check ?? ((entry: AgentRegistry.Entry) =>
      Option.match(entry.ref, { onNone: () => Effect.succeed(true), onSome: (ref) => ref.running }))
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const clock = yield* Effect.clock
    const scope = yield* Effect.scope
    const pubsub = yield* Effect.acquireRelease(PubSub.sliding<Leadership>(changesCapacity), PubSub.shutdown)
    const lock = yield* Effect.makeSemaphore(1)
    const termGauge = MetricKit.gauge("foundation_election_term", { description: "The election's term", tags: { election: name } })

    // -- state: read and written in single steps; changes of term serialized by `lock` ---------

    let state: Leadership = {
      leader: Option.none(),
      previous: Option.none(),
      term: 0,
      reason: "started",
      since: clock.unsafeCurrentTimeMillis(),
      expiresAt: Option.none()
    }
    /** The leader's entry (as of the changes read so far). */
    let leaderEntry: AgentRegistry.Entry | undefined = undefined
    /** The lease's end (epoch ms), while there is a leader. */
    let deadline = 0
    /** The current term's fiber (lease timer and renewals). */
    let termFiber: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
    /** Agents whose lease expired: passed over until they renew or register again. */
    const lapsed = new Set<string>()

    const serialized = <A, E>(self: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      lock.withPermits(1)(Effect.uninterruptible(self))

    const current = (): Leadership =>
      leaderEntry === undefined ? state : { ...state, expiresAt: Option.some(deadline) }

    const eligible = (entry: AgentRegistry.Entry): boolean =>
      entry.metadata.capabilities.includes(capability) && health.has(entry.metadata.health)

    /** The candidates, best first. */
    const candidates: Effect.Effect<ReadonlyArray<AgentRegistry.Entry>> = Effect.map(
      Effect.orDie(registry.findBy({ capability })),
      (entries) => entries.filter((e) => eligible(e) && !lapsed.has(e.id)).sort(order)
    )

    /** Starts a new term led by `next` (or by nobody): one step, then the new term's fiber. */
    const transition = (next: AgentRegistry.Entry | undefined, reason: Reason): Effect.Effect<void> =>
      Effect.suspend(() => {
        const now = clock.unsafeCurrentTimeMillis()
        const term = state.term + 1
        leaderEntry = next
        deadline = next === undefined ? 0 : now + leaseMillis
        state = {
          leader: next === undefined ? Option.none() : Option.some(next.id),
          previous: state.leader,
          term,
          reason,
          since: now,
          expiresAt: next === undefined ? Option.none() : Option.some(deadline)
        }
        // The old term's fiber may be the one running this (its lease expired): it ends after
        // this uninterruptible step.
        termFiber?.unsafeInterruptAsFork(FiberId.none)
        termFiber = undefined
        MetricKit.set(termGauge, term)
        telemetry?.unsafeEmit(events.leaderChanged, { term }, {
          election: name,
          capability,
          leader: Option.getOrNull(state.leader),
          previous: Option.getOrNull(state.previous),
          reason
        })
        const published = PubSub.publish(pubsub, state)
        if (next === undefined) return published
        return Effect.zipRight(
          published,
          Effect.map(Effect.forkIn(Effect.interruptible(termLoop(term)), scope), (fiber) => {
            termFiber = fiber
          })
        )
      })

    /** The leader is gone (or no longer eligible): the best candidate left leads, or nobody. */
    const replaceLeader = (reason: Reason): Effect.Effect<void> =>
      Effect.flatMap(candidates, (list) => transition(list[0], reason))

    /** Elects the best candidate when there is no leader. */
    const electIfNone: Effect.Effect<void> = Effect.suspend(() =>
      leaderEntry !== undefined
        ? Effect.void
        : Effect.flatMap(candidates, (list) =>
          list.length === 0 || leaderEntry !== undefined ? Effect.void : transition(list[0], "elected"))
    )

    /** Expires the lease of term `term` if it is due (under the lock); false when it was renewed meanwhile. */
    const expireIfDue = (term: number): Effect.Effect<boolean> =>
      Effect.suspend(() => {
        if (state.term !== term || leaderEntry === undefined) return Effect.succeed(true)
        if (clock.unsafeCurrentTimeMillis() < deadline) return Effect.succeed(false)
        lapsed.add(leaderEntry.id)
        return Effect.as(replaceLeader("lease_expired"), true)
      })

    /** A term's fiber: the lease timer (sleeps until the lease's end, no polling) and, for "service", the renewals. */
    const termLoop = (term: number): Effect.Effect<void> => {
      const timer = Effect.gen(function*() {
        for (;;) {
          if (state.term !== term) return
          const wait = deadline - clock.unsafeCurrentTimeMillis()
          if (wait > 0) {
            yield* Effect.sleep(Duration.millis(wait))
            continue
          }
          if (yield* serialized(expireIfDue(term))) return
        }
      })
      if (renewal !== "service") return timer
      const renewOnce = Effect.suspend(() => {
        const entry = leaderEntry
        if (state.term !== term || entry === undefined) return Effect.void
        return check(entry).pipe(
          Effect.catchAllCause(() => Effect.succeed(false)),
          Effect.flatMap((alive) =>
            Effect.sync(() => {
              const now = clock.unsafeCurrentTimeMillis()
              if (alive === true && state.term === term && now < deadline) deadline = now + leaseMillis
            })
          )
        )
      })
      const renewals = Effect.delay(Effect.repeat(renewOnce, Schedule.spaced(renewEvery)), renewEvery)
      return Effect.raceFirst(timer, Effect.asVoid(renewals))
    }

    /** Reacts to a registry change (under the lock). */
    const handle = (change: AgentRegistry.Change): Effect.Effect<void> =>
      serialized(Effect.suspend(() => {
        const entry = change.entry
        const id = entry.id
        const isLeader = leaderEntry !== undefined && leaderEntry.id === id
        switch (change._tag) {
          case "Registered":
            return leaderEntry === undefined && eligible(entry) && !lapsed.has(id) ? electIfNone : Effect.void
          case "Updated":
            if (isLeader) {
              if (eligible(entry)) {
                leaderEntry = entry
                return Effect.void
              }
              return replaceLeader("leader_ineligible")
            }
            return leaderEntry === undefined && eligible(entry) && !lapsed.has(id) ? electIfNone : Effect.void
          case "Unregistered":
          case "Down":
            lapsed.delete(id)
            // (An older registration of the leader's id, still in the stream, is not the leader's.)
            if (isLeader && entry.registeredAt >= leaderEntry!.registeredAt) {
              return replaceLeader(change._tag === "Down" ? "leader_down" : "leader_unregistered")
            }
            return Effect.void
        }
      }))

    const renew: Service["renew"] = (agent) =>
      Effect.suspend((): Effect.Effect<Leadership, ValidationError | NotLeaderError | NotCandidateError> => {
        const input: unknown = typeof agent === "object" && agent !== null ? agent.id : agent
        const checked = Validation.nonEmptyString("agent", input)
        if (Either.isLeft(checked)) return Effect.fail(checked.left)
        const id = checked.right
        return serialized(Effect.gen(function*() {
          if (leaderEntry !== undefined && leaderEntry.id === id) {
            const now = clock.unsafeCurrentTimeMillis()
            if (now < deadline) {
              deadline = now + leaseMillis
              return current()
            }
            // Too late: the lease has run out (its timer is due at this very instant).
            lapsed.add(id)
            yield* replaceLeader("lease_expired")
          }
          const found = yield* registry.lookup(id)
          if (Option.isNone(found)) {
            return yield* new NotCandidateError({ election: name, agent: id, reason: "not registered" })
          }
          if (!eligible(found.value)) {
            const m = found.value.metadata
            const reason = m.capabilities.includes(capability)
              ? `its health "${m.health}" is not eligible`
              : `it lacks the capability "${capability}"`
            return yield* new NotCandidateError({ election: name, agent: id, reason })
          }
          lapsed.delete(id)
          yield* electIfNone
          if (leaderEntry !== undefined && leaderEntry.id === id) return current()
          return yield* new NotLeaderError({ election: name, agent: id, leader: state.leader })
        }))
      })

    const changes: Service["changes"] = Effect.map(PubSub.subscribe(pubsub), (queue) => {
      const now = current()
      return Stream.concat(
        Stream.succeed(now),
        Stream.filter(Stream.fromQueue(queue), (l) => l.term > now.term)
      )
    })

    // Subscribe first, so that no change after the first election is missed.
    const registryChanges = yield* Scope.extend(registry.changes, scope)
    yield* serialized(electIfNone)
    yield* Effect.forkIn(Effect.interruptible(Stream.runForEach(registryChanges, handle)), scope)

    return {
      name,
      capability,
      leader: Effect.sync(() => state.leader),
      current: Effect.sync(current),
      changes,
      renew
    } satisfies Service
  })
}

/** An election as a layer (over the `AgentRegistry` in the context). */
export const layer = (options: Options): Layer.Layer<Election, ValidationError, AgentRegistry.AgentRegistry> =>
  Layer.scoped(Election, make(options))

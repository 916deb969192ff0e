/**
 * Protocols: the original's three abstract surfaces (`Foundation.Registry`, `Foundation.Coordination`,
 * `Foundation.Infrastructure`) as service tags, each with an in-process default layer that
 * delegates to the library's services, so that another implementation (a distributed one, a
 * test double) can be provided instead without touching the code that uses them.
 *
 * - `RegistryProtocol` (version 1.1.0): register / lookup / findByAttribute / query /
 *   indexedAttributes / listAll / updateMetadata / unregister / count, over `AgentRegistry`.
 * - `CoordinationProtocol` (1.0.0): consensus (startConsensus / vote / getConsensusResult /
 *   awaitConsensus), barriers (createBarrier / arriveAtBarrier / waitForBarrier), locks
 *   (acquireLock / releaseLock / lockStatus), over `Consensus`, `Barriers` and `Locks`.
 * - `InfrastructureProtocol` (1.0.0): circuit breakers (registerCircuitBreaker /
 *   executeProtected / circuitStatus), rate limiters (setupRateLimiter / checkRateLimit /
 *   rateLimitStatus), resource monitoring (monitorResource / resourceUsage / level), over
 *   `CircuitBreakers`, `RateLimiters` and `ResourceManager`.
 *
 * Guarantees (and the original's defects they fix):
 * - One error shape: every failure is a typed error of the library (`NotFoundError`,
 *   `AlreadyExistsError`, `ValidationError`, the services' own errors); a lookup of a missing key
 *   is `Option.none()` (the original answered a bare `:error` there and `{:error, _}` elsewhere).
 * - No backend leaks into the interface: queries use the `Criteria` language (the original's
 *   `select(match_spec)` exposed ETS).
 * - Versions are semantic versions on each service (`version`); `compatible` and `verify`
 *   compare them numerically, same major and at least the required minor.patch (the original
 *   fell back to string comparison, where "1.10" < "1.9").
 * - The default implementations hold no fibers of their own; `register`-style operations check
 *   and record in one synchronous step, so two concurrent registrations of one id never both win.
 *
 * `arriveAtBarrier` arrives and waits (in Effect, a caller that must not wait forks it);
 * `waitForBarrier` waits without arriving, for the generation current when it is called, and
 * sees the trips of arrivals made through the protocol. A waiter that gives up does not break
 * the barrier (only an arrived party does).
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as AgentRegistry from "../agents/AgentRegistry.js"
import * as Barrier from "../agents/coordination/Barrier.js"
import * as Consensus from "../agents/coordination/Consensus.js"
import * as Lock from "../agents/coordination/Lock.js"
import type * as Criteria from "../data/Criteria.js"
import {
  AlreadyExistsError,
  type CircuitOpenError,
  NotFoundError,
  type RateLimitedError,
  type ServiceUnavailableError,
  Tagged,
  ValidationError
} from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as ResourceManager from "../infra/ResourceManager.js"
import * as CircuitBreaker from "../resilience/CircuitBreaker.js"
import * as RateLimiter from "../resilience/RateLimiter.js"

// ---------------------------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------------------------

/** The protocols. */
export type Protocol = "registry" | "coordination" | "infrastructure"

/** The versions the default implementations speak. */
export const versions = { registry: "1.1.0", coordination: "1.0.0", infrastructure: "1.0.0" } as const

/** A protocol's version does not satisfy what the caller requires. */
export class IncompatibleProtocolError extends Tagged("IncompatibleProtocolError", {
  category: "permanent",
  severity: "high",
  message: "Incompatible protocol version"
})<{
  readonly protocol: Protocol
  /** The implementation's version ("none" when no implementation is provided). */
  readonly version: string
  readonly required: string
}> {
  override describe() {
    return this.version === "none"
      ? `No ${this.protocol} protocol implementation is provided (required ${this.required})`
      : `The ${this.protocol} protocol is at version ${this.version}; ${this.required} or a later compatible version is required`
  }
}

const versionPattern = /^(0|[1-9]\d*)\.(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?$/

/** Parses "major.minor" or "major.minor.patch" (numbers without leading zeros). */
const parseVersion = (field: string, input: unknown): Either.Either<readonly [number, number, number], ValidationError> => {
  if (typeof input !== "string") return Validation.invalid(field, "must be a version string such as \"1.1\" or \"1.1.0\"")
  const match = versionPattern.exec(input)
  if (match === null) return Validation.invalid(field, `must be "major.minor" or "major.minor.patch", got ${JSON.stringify(input)}`)
  return Either.right([Number(match[1]), Number(match[2]), Number(match[3] ?? "0")] as const)
}

/**
 * Whether `version` satisfies `required`: same major version, and minor.patch at least the
 * required ones (compared as numbers). Bad version strings fail with `ValidationError`.
 */
export const compatible = (version: string, required: string): Either.Either<boolean, ValidationError> =>
  Either.gen(function*() {
    const [major, minor, patch] = yield* parseVersion("version", version)
    const [rMajor, rMinor, rPatch] = yield* parseVersion("required", required)
    return major === rMajor && (minor > rMinor || (minor === rMinor && patch >= rPatch))
  })

/** The minimum versions a caller needs, by protocol. */
export interface Requirements {
  readonly registry?: string
  readonly coordination?: string
  readonly infrastructure?: string
}

/**
 * Checks the protocol implementations in the context against `required`: fails with
 * `IncompatibleProtocolError` for the first protocol (registry, coordination, infrastructure)
 * that is missing or too old, `ValidationError` (naming `required.<protocol>`) for a bad version
 * string. Protocols not named are not checked.
 */
export const verify = (required: Requirements): Effect.Effect<void, ValidationError | IncompatibleProtocolError> =>
  Effect.gen(function*() {
    const provided: Record<Protocol, Option.Option<string>> = {
      registry: Option.map(yield* Effect.serviceOption(RegistryProtocol), (s) => s.version),
      coordination: Option.map(yield* Effect.serviceOption(CoordinationProtocol), (s) => s.version),
      infrastructure: Option.map(yield* Effect.serviceOption(InfrastructureProtocol), (s) => s.version)
    }
    for (const protocol of ["registry", "coordination", "infrastructure"] as const) {
      const wanted = required[protocol]
      if (wanted === undefined) continue
      yield* parseVersion(`required.${protocol}`, wanted)
      const version = provided[protocol]
      if (Option.isNone(version)) {
        return yield* new IncompatibleProtocolError({ protocol, version: "none", required: wanted })
      }
      const ok = yield* Either.mapLeft(
        compatible(version.value, wanted),
        (e) => new ValidationError({ field: `${protocol}.version`, reason: e.reason })
      )
      if (!ok) return yield* new IncompatibleProtocolError({ protocol, version: version.value, required: wanted })
    }
  })

// ---------------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------------

/** An entry as the registry protocol reports it (`AgentRegistry.Entry` is one). */
export interface RegistryEntry {
  readonly id: string
  readonly metadata: AgentRegistry.Metadata
  /** Epoch milliseconds. */
  readonly registeredAt: number
  readonly updatedAt: number
}

/** The registry protocol (the original's `Foundation.Registry`, version 1.1). */
export interface RegistryService {
  readonly version: string
  /** Registers `id` with its metadata (validated); `AlreadyExistsError` when the id is taken. */
  register(id: string, metadata: AgentRegistry.Metadata): Effect.Effect<RegistryEntry, ValidationError | AlreadyExistsError>
  /** The entry, if registered. */
  lookup(id: string): Effect.Effect<Option.Option<RegistryEntry>>
  /** The entries whose indexed `attribute` (one of `indexedAttributes`) has `value`; another attribute is a `ValidationError`. */
  findByAttribute(attribute: string, value: string): Effect.Effect<ReadonlyArray<RegistryEntry>, ValidationError>
  /** The entries whose metadata matches the criteria (all of them, for a list). */
  query(criteria: Criteria.Criteria): Effect.Effect<ReadonlyArray<RegistryEntry>, ValidationError>
  /** The attributes `findByAttribute` takes (and `query` reads an index for). */
  readonly indexedAttributes: ReadonlyArray<string>
  /** Every entry, or those whose metadata `filter` keeps. */
  listAll(filter?: (metadata: AgentRegistry.Metadata) => boolean): Effect.Effect<ReadonlyArray<RegistryEntry>>
  /** Replaces the metadata (validated). */
  updateMetadata(id: string, metadata: AgentRegistry.Metadata): Effect.Effect<RegistryEntry, ValidationError | NotFoundError>
  unregister(id: string): Effect.Effect<void, NotFoundError>
  readonly count: Effect.Effect<number>
}

/** The registry protocol's tag. */
export class RegistryProtocol extends Context.Tag("effect-foundation/Protocols/Registry")<RegistryProtocol, RegistryService>() {}

/** The attributes of the in-process registry's indexes. */
export const indexedAttributes: ReadonlyArray<"capability" | "health" | "node"> = ["capability", "health", "node"]

/** The registry protocol over an `AgentRegistry`. */
export const fromAgentRegistry = (registry: AgentRegistry.Registry): RegistryService => ({
  version: versions.registry,
  register: (id, metadata) => registry.register(id, metadata),
  lookup: (id) => registry.lookup(id),
  findByAttribute: (attribute, value) => {
    switch (attribute) {
      case "capability":
        return registry.findBy({ capability: value })
      case "node":
        return registry.findBy({ node: value })
      case "health":
        return Effect.flatMap(
          Validation.oneOf("value", value, AgentRegistry.healthValues),
          (health) => registry.findBy({ health })
        )
      default:
        return Validation.invalid(
          "attribute",
          `must be an indexed attribute (${indexedAttributes.map((a) => `"${a}"`).join(", ")}), got ${JSON.stringify(attribute)}`
        )
    }
  },
  query: (criteria) => registry.query(criteria),
  indexedAttributes,
  listAll: (filter) => filter === undefined ? registry.list() : registry.list((entry) => filter(entry.metadata)),
  updateMetadata: (id, metadata) => registry.update(id, metadata),
  unregister: (id) => Effect.asVoid(registry.unregister(id)),
  count: registry.count
})

/** The in-process registry protocol, over the `AgentRegistry` in the context. */
export const layerRegistry: Layer.Layer<RegistryProtocol, never, AgentRegistry.AgentRegistry> = Layer.effect(
  RegistryProtocol,
  Effect.map(AgentRegistry.AgentRegistry, fromAgentRegistry)
)

// ---------------------------------------------------------------------------------------------
// Coordination
// ---------------------------------------------------------------------------------------------

/** Options of `startConsensus`. */
export type ConsensusOptions = Omit<Consensus.OpenOptions<unknown>, "question" | "participants">

/** Options of `createBarrier`. */
export type BarrierOptions = Omit<Barrier.Options, "name" | "parties">

/** What waiting at a barrier can fail with. */
export type BarrierWaitError = Barrier.AwaitError | NotFoundError | ValidationError

/** The coordination protocol (the original's `Foundation.Coordination`, version 1.0). */
export interface CoordinationService {
  readonly version: string
  /** Opens a round of votes among `participants` on `proposal`; returns the round's id. */
  startConsensus<Q>(
    participants: ReadonlyArray<string>,
    proposal: Q,
    options?: ConsensusOptions
  ): Effect.Effect<string, ValidationError | AlreadyExistsError>
  vote(round: string, participant: string, vote: Consensus.Vote): Effect.Effect<void, Consensus.VoteError>
  /** The result of a finished round, none while it is in progress. */
  getConsensusResult(round: string): Effect.Effect<Option.Option<Consensus.Result>, NotFoundError>
  /** Waits for a round's result. */
  awaitConsensus(round: string): Effect.Effect<Consensus.Result, NotFoundError>
  /** Creates the barrier `id` for `parties` parties. */
  createBarrier(
    id: string,
    parties: number,
    options?: BarrierOptions
  ): Effect.Effect<void, ValidationError | AlreadyExistsError | ServiceUnavailableError>
  /**
   * `participant` arrives at the barrier and waits until its generation trips (or breaks); a
   * participant already arrived in the waiting generation fails with `AlreadyExistsError`.
   * `timeout` defaults to the barrier's.
   */
  arriveAtBarrier(
    id: string,
    participant: string,
    timeout?: Duration.DurationInput
  ): Effect.Effect<Barrier.Arrival, BarrierWaitError | AlreadyExistsError>
  /**
   * Waits, without arriving, until the barrier's current generation trips (a single-use barrier
   * that already tripped answers at once); fails as its parties do when the generation breaks,
   * and with `BarrierTimeoutError` after `timeout` [forever] (which does not break the barrier).
   */
  waitForBarrier(id: string, timeout?: Duration.DurationInput): Effect.Effect<void, BarrierWaitError>
  /** Waits (FIFO) for the lock; the lease is released when the scope closes (or by `releaseLock`). */
  acquireLock(
    id: string,
    holder: string,
    timeout?: Duration.DurationInput
  ): Effect.Effect<Lock.Lease, ValidationError | Lock.LockTimeoutError | ServiceUnavailableError, Scope.Scope>
  /** Releases a lease now; false when it was no longer the lock's grant (expired or released). */
  releaseLock(lease: Lock.Lease): Effect.Effect<boolean>
  lockStatus(id: string): Effect.Effect<Lock.LockStatus>
}

/** The coordination protocol's tag. */
export class CoordinationProtocol
  extends Context.Tag("effect-foundation/Protocols/Coordination")<CoordinationProtocol, CoordinationService>()
{}

/** Arrivals recorded through the protocol in one generation of one barrier. */
interface Arrivals {
  readonly generation: number
  readonly participants: Set<string>
}

/** The coordination protocol over the three services. */
export const fromCoordination = (
  consensus: Consensus.Service,
  barriers: Barrier.Registry,
  locks: Lock.Service
): CoordinationService => {
  // Read and written only inside single synchronous steps.
  const arrivals = new Map<string, Arrivals>()
  /** Observers of a generation, by barrier then generation. */
  const observers = new Map<string, Map<number, Deferred.Deferred<void, Barrier.AwaitError>>>()

  const settleGeneration = (id: string, generation: number, exit: Exit.Exit<void, Barrier.AwaitError>): void => {
    const current = arrivals.get(id)
    if (current !== undefined && current.generation === generation) arrivals.delete(id)
    const byGeneration = observers.get(id)
    const deferred = byGeneration?.get(generation)
    if (byGeneration === undefined || deferred === undefined) return
    byGeneration.delete(generation)
    if (byGeneration.size === 0) observers.delete(id)
    Deferred.unsafeDone(deferred, exit)
  }

  /** After a party's wait ended: tells the observers of its generation how it went. */
  const settle = (
    barrier: Barrier.Barrier,
    participant: string,
    generation: number,
    exit: Exit.Exit<Barrier.Arrival, Barrier.AwaitError | ValidationError>
  ): Effect.Effect<void> => {
    const id = barrier.name
    if (Exit.isSuccess(exit)) return Effect.sync(() => settleGeneration(id, exit.value.generation, Exit.void))
    const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
    if (failure === undefined) {
      // Interrupted (or died): if it had arrived, the barrier broke its generation; if not, it
      // may arrive again.
      return Effect.flatMap(barrier.status, (now) =>
        Effect.sync(() => {
          const reason = Option.getOrUndefined(now.brokenReason)
          if (now.generation === generation && reason !== undefined) {
            settleGeneration(id, generation, Exit.fail(new Barrier.BarrierBrokenError({ barrier: id, generation, reason })))
          } else {
            const recorded = arrivals.get(id)
            if (recorded !== undefined && recorded.generation === generation) recorded.participants.delete(participant)
          }
        }))
    }
    return Effect.sync(() => {
      switch (failure._tag) {
        case "ValidationError":
          // A bad timeout (checked before arriving, so not reached): the party never arrived.
          return
        case "BarrierBrokenError":
          return settleGeneration(id, failure.generation, Exit.fail(failure))
        case "BarrierTimeoutError":
          return settleGeneration(
            id,
            failure.generation,
            Exit.fail(new Barrier.BarrierBrokenError({ barrier: id, generation: failure.generation, reason: "timeout" }))
          )
        case "BarrierClosedError": {
          arrivals.delete(id)
          const byGeneration = observers.get(id)
          observers.delete(id)
          for (const deferred of byGeneration?.values() ?? []) Deferred.unsafeDone(deferred, Exit.fail(failure))
        }
      }
    })
  }

  return {
    version: versions.coordination,
    startConsensus: (participants, proposal, options = {}) =>
      Effect.map(consensus.open({ ...options, question: proposal, participants }), (round) => round.id),
    vote: (round, participant, vote) => consensus.vote(round, participant, vote),
    getConsensusResult: (round) => Effect.map(consensus.status(round), (info) => info.result),
    awaitConsensus: (round) => consensus.await(round),
    createBarrier: (id, parties, options = {}) => Effect.asVoid(barriers.create({ ...options, name: id, parties })),
    arriveAtBarrier: (id, participant, timeout) =>
      Effect.gen(function*() {
        yield* Validation.nonEmptyString("participant", participant)
        const limit = timeout === undefined ? undefined : yield* Validation.duration("timeout", timeout)
        const barrier = yield* barriers.get(id)
        const status = yield* barrier.status
        yield* Effect.suspend(() => {
          let recorded = arrivals.get(id)
          if (recorded === undefined || recorded.generation !== status.generation) {
            recorded = { generation: status.generation, participants: new Set() }
            arrivals.set(id, recorded)
          }
          if (recorded.participants.has(participant)) {
            return Effect.fail(new AlreadyExistsError({ resource: "barrier arrival", key: `${id}/${participant}` }))
          }
          recorded.participants.add(participant)
          return Effect.void
        })
        const wait = limit === undefined ? barrier.await : barrier.awaitWithin(limit)
        return yield* wait.pipe(Effect.onExit((exit) => settle(barrier, participant, status.generation, exit)))
      }),
    waitForBarrier: (id, timeout) =>
      Effect.gen(function*() {
        const limit = timeout === undefined ? undefined : yield* Validation.duration("timeout", timeout)
        const barrier = yield* barriers.get(id)
        const status = yield* barrier.status
        const closed = Option.getOrUndefined(status.closedReason)
        if (closed === "tripped") return
        if (closed !== undefined) return yield* new Barrier.BarrierClosedError({ barrier: id, reason: closed })
        const broken = Option.getOrUndefined(status.brokenReason)
        if (broken !== undefined) {
          return yield* new Barrier.BarrierBrokenError({ barrier: id, generation: status.generation, reason: broken })
        }
        const fiberId = yield* Effect.fiberId
        const deferred = yield* Effect.sync(() => {
          let byGeneration = observers.get(id)
          if (byGeneration === undefined) {
            byGeneration = new Map()
            observers.set(id, byGeneration)
          }
          let found = byGeneration.get(status.generation)
          if (found === undefined) {
            found = Deferred.unsafeMake<void, Barrier.AwaitError>(fiberId)
            byGeneration.set(status.generation, found)
          }
          return found
        })
        if (limit === undefined) return yield* Deferred.await(deferred)
        const done = yield* Effect.timeoutOption(Deferred.await(deferred), limit)
        if (Option.isNone(done)) {
          const now = yield* barrier.status
          return yield* new Barrier.BarrierTimeoutError({
            barrier: id,
            generation: status.generation,
            timeout: limit,
            arrived: now.generation === status.generation ? now.waiting : status.parties,
            parties: status.parties
          })
        }
      }),
    acquireLock: (id, holder, timeout) =>
      locks.acquire(id, timeout === undefined ? { holder } : { holder, timeout }),
    releaseLock: (lease) => locks.release(lease),
    lockStatus: (id) => locks.status(id)
  }
}

/** The in-process coordination protocol, over the `Consensus`, `Barriers` and `Locks` in the context. */
export const layerCoordination: Layer.Layer<
  CoordinationProtocol,
  never,
  Consensus.Consensus | Barrier.Barriers | Lock.Locks
> = Layer.effect(
  CoordinationProtocol,
  Effect.gen(function*() {
    return fromCoordination(yield* Consensus.Consensus, yield* Barrier.Barriers, yield* Lock.Locks)
  })
)

// ---------------------------------------------------------------------------------------------
// Infrastructure
// ---------------------------------------------------------------------------------------------

/** Options of `registerCircuitBreaker`. */
export type BreakerOptions = Omit<CircuitBreaker.Options, "name" | "initial">

/** A monitored resource's usage. */
export interface ResourceUsage {
  readonly resource: string
  /** Its size, measured now. */
  readonly size: number
  /** The manager's backpressure level after this measurement. */
  readonly level: ResourceManager.Level
}

/** The infrastructure protocol (the original's `Foundation.Infrastructure`, version 1.0). */
export interface InfrastructureService {
  readonly version: string
  /** Sets up the breaker of `service`; `AlreadyExistsError` when it has one. */
  registerCircuitBreaker(service: string, options?: BreakerOptions): Effect.Effect<void, ValidationError | AlreadyExistsError>
  /** Runs `effect` through the breaker of `service` (`NotFoundError` when it has none). */
  executeProtected<A, E, R>(
    service: string,
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | CircuitOpenError | NotFoundError, R>
  circuitStatus(service: string): Effect.Effect<CircuitBreaker.State, NotFoundError>
  /** Sets up the limiter `id`; `AlreadyExistsError` when it exists. */
  setupRateLimiter(id: string, options?: RateLimiter.LimiterOptions): Effect.Effect<void, ValidationError | AlreadyExistsError>
  /** Admits one request of `identifier` (or `cost`), or fails with `RateLimitedError` having consumed nothing. */
  checkRateLimit(
    id: string,
    identifier: string,
    cost?: number
  ): Effect.Effect<RateLimiter.ConsumeResult, RateLimitedError | NotFoundError | ValidationError>
  rateLimitStatus(id: string, identifier: string): Effect.Effect<RateLimiter.Status, NotFoundError>
  /**
   * Monitors a resource by its size (entries it holds), counted in the resource manager's usage
   * and backpressure level until the scope closes.
   */
  monitorResource<E, R>(
    id: string,
    size: Effect.Effect<number, E, R>
  ): Effect.Effect<void, ValidationError | AlreadyExistsError, Scope.Scope | R>
  /** Measures a monitored resource now. */
  resourceUsage(id: string): Effect.Effect<ResourceUsage, NotFoundError>
  /** The resource manager's backpressure level. */
  readonly level: Effect.Effect<ResourceManager.Level>
}

/** The infrastructure protocol's tag. */
export class InfrastructureProtocol
  extends Context.Tag("effect-foundation/Protocols/Infrastructure")<InfrastructureProtocol, InfrastructureService>()
{}

/** The infrastructure protocol over the three services. */
export const fromInfrastructure = (
  breakers: CircuitBreaker.Registry,
  limiters: RateLimiter.RateLimitersService,
  resources: ResourceManager.ResourceManagerService
): Effect.Effect<InfrastructureService> =>
  Effect.gen(function*() {
    // Serialises the check-then-create of breakers and limiters (creation is an effect).
    const creating = yield* Effect.makeSemaphore(1)
    // Read and written only inside single synchronous steps.
    const monitored = new Map<string, ResourceManager.Registration>()
    const breakerNames = Effect.map(breakers.names, (names) => new Set(names))
    const noBreaker = (service: string) => new NotFoundError({ resource: "circuit breaker", key: service })

    const service: InfrastructureService = {
      version: versions.infrastructure,
      registerCircuitBreaker: (name, options = {}) =>
        creating.withPermits(1)(Effect.gen(function*() {
          yield* Validation.nonEmptyString("service", name)
          if ((yield* breakerNames).has(name)) {
            return yield* new AlreadyExistsError({ resource: "circuit breaker", key: name })
          }
          yield* breakers.configure(name, options)
        })),
      executeProtected: <A, E, R>(name: string, effect: Effect.Effect<A, E, R>) =>
        Effect.flatMap(
          breakerNames,
          (names): Effect.Effect<A, E | CircuitOpenError | NotFoundError, R> =>
            names.has(name) ? breakers.protect(name, effect) : Effect.fail(noBreaker(name))
        ),
      circuitStatus: (name) =>
        Effect.flatMap(breakerNames, (names) =>
          names.has(name) ? Effect.flatMap(breakers.get(name), (breaker) => breaker.state) : Effect.fail(noBreaker(name))),
      setupRateLimiter: (id, options = {}) =>
        creating.withPermits(1)(Effect.gen(function*() {
          yield* Validation.nonEmptyString("id", id)
          const existing = yield* Effect.option(limiters.get(id))
          if (Option.isSome(existing)) return yield* new AlreadyExistsError({ resource: "rate limiter", key: id })
          yield* limiters.configure(id, options)
        })),
      checkRateLimit: (id, identifier, cost) => limiters.consume(id, identifier, cost),
      rateLimitStatus: (id, identifier) => Effect.flatMap(limiters.get(id), (limiter) => limiter.status(identifier)),
      monitorResource: (id, size) =>
        Effect.gen(function*() {
          const registration = yield* resources.register(id, size)
          yield* Effect.acquireRelease(
            Effect.sync(() => monitored.set(id, registration)),
            () => Effect.sync(() => monitored.delete(id))
          )
        }),
      resourceUsage: (id) =>
        Effect.suspend(() => {
          const registration = monitored.get(id)
          if (registration === undefined) return Effect.fail(new NotFoundError({ resource: "monitored resource", key: id }))
          return Effect.flatMap(registration.measure, (size) =>
            Effect.map(resources.level, (level): ResourceUsage => ({ resource: id, size, level })))
        }),
      level: resources.level
    }
    return service
  })

/**
 * The in-process infrastructure protocol, over the `CircuitBreakers`, `RateLimiters` and
 * `ResourceManager` in the context.
 */
export const layerInfrastructure: Layer.Layer<
  InfrastructureProtocol,
  never,
  CircuitBreaker.CircuitBreakers | RateLimiter.RateLimiters | ResourceManager.ResourceManager
> = Layer.effect(
  InfrastructureProtocol,
  Effect.gen(function*() {
    return yield* fromInfrastructure(
      yield* CircuitBreaker.CircuitBreakers,
      yield* RateLimiter.RateLimiters,
      yield* ResourceManager.ResourceManager
    )
  })
)

/** The three in-process protocols. */
export const layer: Layer.Layer<
  RegistryProtocol | CoordinationProtocol | InfrastructureProtocol,
  never,
  | AgentRegistry.AgentRegistry
  | Consensus.Consensus
  | Barrier.Barriers
  | Lock.Locks
  | CircuitBreaker.CircuitBreakers
  | RateLimiter.RateLimiters
  | ResourceManager.ResourceManager
> = Layer.mergeAll(layerRegistry, layerCoordination, layerInfrastructure)

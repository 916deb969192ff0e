/**
 * Foundation: the whole library as one runtime. `layer(config?)` wires every service with its
 * defaults, in dependency order; `runtime(config?)` is that layer as a `ManagedRuntime`.
 *
 * Configuration comes from the `config` object and from the environment (through Effect's
 * `Config`, so `ConfigProvider.fromMap` drives it in tests); see `env` for the variables. An
 * explicit setting wins over the environment; the store settings (`store`, `sqliteFile`,
 * `pgUrl`) go together: when the object sets any of them, the environment's are not read.
 *
 * Guarantees:
 * - Fail fast: the configuration is read and validated when the layer is built, before any
 *   service starts. A bad or contradictory setting fails the layer with a `ValidationError`
 *   naming the setting (its key, or its environment variable) and listing every problem found
 *   (the original only advised, then failed at first use). The options of the services whose
 *   modules export a validator (`resourceManager`, `caches`, `rateLimiters`, `sampler`,
 *   `performanceMonitor`) are checked then too; the others are checked by each service as it
 *   starts, and a failure there stops the services already started, in reverse order.
 * - Order: services start one at a time, each after the services it uses (tiers:
 *   observability, resilience, infrastructure, data, agents, integration); closing the layer's
 *   scope (or disposing the runtime) stops them in exactly the reverse order, each after its
 *   dependents, and interrupts every fiber they forked: nothing keeps running.
 * - `Lifecycle` records each start and stop (with `Clock` time), as the original's
 *   `which_services` / `service_running?` reported its supervised children; each is also logged
 *   at debug level.
 * - The three protocol surfaces (`Protocols.RegistryProtocol`, `CoordinationProtocol`,
 *   `InfrastructureProtocol`) are provided by their in-process implementations. To swap one,
 *   provide your layer over this one: `Layer.provideMerge(myRegistry, Foundation.layer())`
 *   (the later layer wins, and yours can use every Foundation service).
 *
 * Not wired by default (they need per-application input): `Election` (a capability),
 * `DependencyManager` (your services), `Contracts` (your tags), `Otel`, `Prometheus.layerServer`.
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as AgentMonitor from "./agents/AgentMonitor.js"
import * as AgentRegistry from "./agents/AgentRegistry.js"
import * as Barrier from "./agents/coordination/Barrier.js"
import * as Consensus from "./agents/coordination/Consensus.js"
import * as Lock from "./agents/coordination/Lock.js"
import * as Scheduler from "./agents/Scheduler.js"
import * as MemoryStore from "./data/MemoryStore.js"
import type * as Repository from "./data/Repository.js"
import * as SqlStore from "./data/SqlStore.js"
import { ValidationError, type ValidationIssue } from "./errors/FoundationError.js"
import * as Validation from "./errors/Validation.js"
import * as Cache from "./infra/Cache.js"
import * as CommandRunner from "./infra/CommandRunner.js"
import * as ConnectionManager from "./infra/ConnectionManager.js"
import * as ResourceManager from "./infra/ResourceManager.js"
import * as TaskPools from "./infra/TaskPools.js"
import * as HealthChecker from "./integration/HealthChecker.js"
import * as Protocols from "./integration/Protocols.js"
import * as EventBus from "./observability/EventBus.js"
import * as PerformanceMonitor from "./observability/PerformanceMonitor.js"
import * as Sampler from "./observability/Sampler.js"
import * as Telemetry from "./observability/Telemetry.js"
import * as CircuitBreaker from "./resilience/CircuitBreaker.js"
import * as RateLimiter from "./resilience/RateLimiter.js"

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/** Where repositories keep their rows. */
export type Store = "memory" | "sqlite" | "pg"

/** The stores. */
export const stores: ReadonlyArray<Store> = ["memory", "sqlite", "pg"]

/**
 * The configuration; every field is optional, defaults in brackets. The per-service options are
 * those of the service's own `layer` (see its module), validated with the field names it uses.
 */
export interface FoundationConfig {
  /** Where repositories (`RepositoryStore`) keep their rows ["memory"]. Env `FOUNDATION_STORE`. */
  readonly store?: Store
  /** The SQLite database file, or ":memory:"; required by, and only for, store "sqlite". Env `FOUNDATION_SQLITE_FILE`. */
  readonly sqliteFile?: string
  /** The PostgreSQL URL (postgres://…); required by, and only for, store "pg". Env `FOUNDATION_PG_URL`. */
  readonly pgUrl?: string | Redacted.Redacted<string>
  /**
   * Whether the `HealthChecker` runs the built-in checks of the services (`builtInChecks`: event
   * bus, breakers, limiters, caches, resource manager, connection manager, task pools, agent
   * registry, repository store, agent monitor, scheduler, locks, barriers, consensus, command
   * runner, telemetry) [true]. Env `FOUNDATION_HEALTH_CHECKS`.
   */
  readonly healthChecks?: boolean
  readonly eventBus?: EventBus.Options
  readonly sampler?: Sampler.Options
  readonly performanceMonitor?: PerformanceMonitor.Options
  /** Defaults of every named breaker. */
  readonly circuitBreakers?: Omit<CircuitBreaker.Options, "name" | "initial">
  /** Limiters configured at start, by id [none]. */
  readonly rateLimiters?: Readonly<Record<string, RateLimiter.LimiterOptions>>
  /** Defaults of every named cache. */
  readonly caches?: Cache.CommonOptions
  /** Env `FOUNDATION_MAX_MEMORY_MB` (`maxMemoryMb`), `FOUNDATION_MAX_ENTRIES` (`maxEntries`). */
  readonly resourceManager?: ResourceManager.Options
  readonly connectionManager?: ConnectionManager.Options
  /** Env `FOUNDATION_CORES` (`cores`). */
  readonly taskPools?: TaskPools.Options
  readonly commandRunner?: CommandRunner.Options
  readonly agentRegistry?: AgentRegistry.Options
  readonly agentMonitor?: AgentMonitor.Options
  readonly scheduler?: Scheduler.Options
  /** (Rounds resolve participant ids with the Foundation's `AgentRegistry`.) */
  readonly consensus?: Omit<Consensus.Options, "registry">
  readonly barriers?: Barrier.RegistryOptions
  readonly locks?: Lock.Options
  /** Env `FOUNDATION_HEALTH_CHECK_INTERVAL` (`defaultInterval`). */
  readonly healthChecker?: HealthChecker.Options
}

/** The environment variables read, by setting (all optional; an empty value is an error). */
export const env = {
  /** "memory" | "sqlite" | "pg" */
  store: "FOUNDATION_STORE",
  /** A path, or ":memory:" (store "sqlite" only). */
  sqliteFile: "FOUNDATION_SQLITE_FILE",
  /** postgres://user:password@host:port/database (store "pg" only; read as a secret). */
  pgUrl: "FOUNDATION_PG_URL",
  /** `taskPools.cores`: an integer ≥ 1. */
  cores: "FOUNDATION_CORES",
  /** `resourceManager.maxMemoryMb`: a number > 0. */
  maxMemoryMb: "FOUNDATION_MAX_MEMORY_MB",
  /** `resourceManager.maxEntries`: an integer ≥ 1. */
  maxEntries: "FOUNDATION_MAX_ENTRIES",
  /** `healthChecks`: true/false (also yes/no, on/off, 1/0). */
  healthChecks: "FOUNDATION_HEALTH_CHECKS",
  /** `healthChecker.defaultInterval`: a duration ("30 seconds", "2 minutes") or milliseconds. */
  healthCheckInterval: "FOUNDATION_HEALTH_CHECK_INTERVAL"
} as const

/** The repository store chosen. */
export type StoreSettings =
  | { readonly _tag: "memory" }
  | { readonly _tag: "sqlite"; readonly filename: string }
  | { readonly _tag: "pg"; readonly url: Redacted.Redacted<string> }

/** The configuration once read and validated: what `layer` builds from. */
export interface Settings {
  readonly store: StoreSettings
  readonly healthChecks: boolean
  readonly eventBus: EventBus.Options
  readonly sampler: Sampler.Options
  readonly performanceMonitor: PerformanceMonitor.Options
  readonly circuitBreakers: Omit<CircuitBreaker.Options, "name" | "initial">
  readonly rateLimiters: Readonly<Record<string, RateLimiter.LimiterOptions>>
  readonly caches: Cache.CommonOptions
  readonly resourceManager: ResourceManager.Options
  readonly connectionManager: ConnectionManager.Options
  readonly taskPools: TaskPools.Options
  readonly commandRunner: CommandRunner.Options
  readonly agentRegistry: AgentRegistry.Options
  readonly agentMonitor: AgentMonitor.Options
  readonly scheduler: Scheduler.Options
  readonly consensus: Omit<Consensus.Options, "registry">
  readonly barriers: Barrier.RegistryOptions
  readonly locks: Lock.Options
  readonly healthChecker: HealthChecker.Options
}

const serviceKeys = [
  "eventBus",
  "sampler",
  "performanceMonitor",
  "circuitBreakers",
  "rateLimiters",
  "caches",
  "resourceManager",
  "connectionManager",
  "taskPools",
  "commandRunner",
  "agentRegistry",
  "agentMonitor",
  "scheduler",
  "consensus",
  "barriers",
  "locks",
  "healthChecker"
] as const

const isObject = (u: unknown): boolean => typeof u === "object" && u !== null && !Array.isArray(u)

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** Reads an environment variable through `Config`; absent is none. */
const readEnv = (name: string): Effect.Effect<Option.Option<string>, ValidationError> =>
  Config.option(Config.string(name)).pipe(
    Effect.mapError((error) => new ValidationError({ field: name, reason: `could not be read: ${error.message}` }))
  )

const readSecretEnv = (name: string): Effect.Effect<Option.Option<Redacted.Redacted<string>>, ValidationError> =>
  Config.option(Config.redacted(name)).pipe(
    Effect.mapError((error) => new ValidationError({ field: name, reason: `could not be read: ${error.message}` }))
  )

const numberPattern = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/

/** Parses an environment string, then checks the value; the reason quotes the string. */
const fromText = <T, A>(
  name: string,
  raw: string,
  parse: (text: string) => Option.Option<T>,
  what: string,
  check: (value: T) => Either.Either<A, ValidationError>
): Either.Either<A, ValidationError> => {
  const text = raw.trim()
  if (text.length === 0) return Validation.invalid(name, "is set but empty")
  const parsed = parse(text)
  if (Option.isNone(parsed)) return Validation.invalid(name, `must be ${what}, got ${JSON.stringify(raw)}`)
  return Either.mapLeft(
    check(parsed.value),
    (e) => new ValidationError({ field: name, reason: `${e.reason} (from ${JSON.stringify(raw)})` })
  )
}

const parseNumber = (text: string): Option.Option<number> =>
  numberPattern.test(text) ? Option.some(Number(text)) : Option.none()

const booleans: ReadonlyMap<string, boolean> = new Map([
  ["true", true],
  ["yes", true],
  ["on", true],
  ["1", true],
  ["false", false],
  ["no", false],
  ["off", false],
  ["0", false]
])

const parseBoolean = (text: string): Option.Option<boolean> => Option.fromNullable(booleans.get(text.toLowerCase()))

const parseDuration = (text: string): Option.Option<Duration.Duration> =>
  /^\d+$/.test(text) ? Option.some(Duration.millis(Number(text))) : Duration.decodeUnknown(text)

/** A validation error re-rooted under a configuration key (`under("sampler", "name")` → `sampler.name`). */
const under = (prefix: string, error: ValidationError): ValidationIssue => ({
  field: error.field.startsWith(`${prefix}.`) ? error.field : `${prefix}.${error.field}`,
  reason: error.reason
})

const isRedactedString = (u: unknown): boolean => Redacted.isRedacted(u) && typeof Redacted.value(u) === "string"

const pgUrlPattern = /^postgres(ql)?:\/\//

/**
 * Reads the environment and validates the whole configuration, starting nothing. Fails with one
 * `ValidationError` whose `issues` list every problem (the first one is its `field`/`reason`).
 */
export const resolve = (config: FoundationConfig = {}): Effect.Effect<Settings, ValidationError> =>
  Effect.gen(function*() {
    if (!isObject(config)) return yield* Validation.invalid("config", "must be an object")
    const issues: Array<ValidationIssue> = []
    const check = <A>(result: Either.Either<A, ValidationError>): A | undefined => {
      if (Either.isRight(result)) return result.right
      issues.push(...(result.left.issues ?? [{ field: result.left.field, reason: result.left.reason }]))
      return undefined
    }
    for (const key of serviceKeys) {
      const value = config[key]
      if (value !== undefined && !isRecord(value)) issues.push({ field: key, reason: "must be an object" })
    }
    const options = <K extends typeof serviceKeys[number]>(key: K): NonNullable<FoundationConfig[K]> | {} => {
      const value = config[key]
      return isRecord(value) ? value : {}
    }

    // Store: the object's store settings, or else the environment's.
    const explicitStore = config.store !== undefined || config.sqliteFile !== undefined || config.pgUrl !== undefined
    let store: Store | undefined
    let sqliteFile: string | undefined
    let pgUrl: Redacted.Redacted<string> | undefined
    const names = explicitStore
      ? { store: "store", sqliteFile: "sqliteFile", pgUrl: "pgUrl" }
      : { store: env.store, sqliteFile: env.sqliteFile, pgUrl: env.pgUrl }
    if (explicitStore) {
      if (config.store !== undefined) store = check(Validation.oneOf("store", config.store, stores))
      if (config.sqliteFile !== undefined) sqliteFile = check(Validation.nonEmptyString("sqliteFile", config.sqliteFile))
      if (config.pgUrl !== undefined) {
        const raw = config.pgUrl
        if (typeof raw === "string") pgUrl = Redacted.make(raw)
        else if (isRedactedString(raw)) pgUrl = raw
        else check(Validation.invalid("pgUrl", "must be a string or a Redacted string"))
      }
    } else {
      const rawStore = yield* readEnv(env.store)
      if (Option.isSome(rawStore)) {
        store = check(fromText(env.store, rawStore.value, Option.some, "a store", (s) => Validation.oneOf(env.store, s, stores)))
      }
      const rawFile = yield* readEnv(env.sqliteFile)
      if (Option.isSome(rawFile)) {
        sqliteFile = check(fromText(env.sqliteFile, rawFile.value, Option.some, "a file", Either.right))
      }
      const rawUrl = yield* readSecretEnv(env.pgUrl)
      if (Option.isSome(rawUrl)) {
        pgUrl = Redacted.value(rawUrl.value).trim().length === 0
          ? check(Validation.invalid(env.pgUrl, "is set but empty"))
          : rawUrl.value
      }
    }
    if (pgUrl !== undefined && !pgUrlPattern.test(Redacted.value(pgUrl).trim())) {
      // The reason never shows the URL: it may hold a password.
      issues.push({ field: names.pgUrl, reason: "must be a postgres:// or postgresql:// URL" })
    }
    const chosen: Store = store ?? "memory"
    const storeIs = store === undefined ? `the store is "memory" (the default)` : `${names.store} is "${chosen}"`
    if (sqliteFile !== undefined && chosen !== "sqlite") {
      issues.push({ field: names.sqliteFile, reason: `is only for store "sqlite", but ${storeIs}` })
    }
    if (pgUrl !== undefined && chosen !== "pg") {
      issues.push({ field: names.pgUrl, reason: `is only for store "pg", but ${storeIs}` })
    }
    if (chosen === "sqlite" && sqliteFile === undefined) {
      issues.push({ field: names.sqliteFile, reason: `is required: store "sqlite" needs a database file (or ":memory:")` })
    }
    if (chosen === "pg" && pgUrl === undefined) {
      issues.push({ field: names.pgUrl, reason: `is required: store "pg" needs a postgres:// URL` })
    }
    const storeSettings: StoreSettings = chosen === "sqlite"
      ? { _tag: "sqlite", filename: sqliteFile ?? "" }
      : chosen === "pg"
      ? { _tag: "pg", url: pgUrl ?? Redacted.make("") }
      : { _tag: "memory" }

    /** An explicit value, or else the environment's (parsed), or else none. */
    const setting = <A>(
      explicit: A | undefined,
      name: string,
      parse: (text: string) => Option.Option<A>,
      what: string,
      validate: (field: string, value: A) => Either.Either<A, ValidationError>
    ): Effect.Effect<A | undefined, ValidationError> =>
      explicit !== undefined ? Effect.succeed(explicit) : Effect.map(readEnv(name), (raw) =>
        Option.isNone(raw)
          ? undefined
          : check(fromText(name, raw.value, parse, what, (value) => validate(name, value))))

    // Health checks.
    const healthChecks = config.healthChecks !== undefined
      ? check(
        typeof config.healthChecks === "boolean"
          ? Either.right(config.healthChecks)
          : Validation.invalid("healthChecks", "must be a boolean")
      )
      : yield* setting(undefined, env.healthChecks, parseBoolean, "true or false", (_, b) => Either.right(b))
    const healthCheckerOptions = options("healthChecker") as HealthChecker.Options
    const interval = yield* setting(
      healthCheckerOptions.defaultInterval,
      env.healthCheckInterval,
      parseDuration,
      "a duration such as \"30 seconds\"",
      (field, d) => Validation.duration(field, d)
    )
    if (healthCheckerOptions.defaultInterval !== undefined) {
      check(Validation.duration("healthChecker.defaultInterval", healthCheckerOptions.defaultInterval))
    }
    const healthChecker: HealthChecker.Options = interval === undefined
      ? healthCheckerOptions
      : { ...healthCheckerOptions, defaultInterval: interval }

    // Task pools.
    const taskPoolsOptions = options("taskPools") as TaskPools.Options
    const cores = yield* setting(taskPoolsOptions.cores, env.cores, parseNumber, "an integer", Validation.positiveInt)
    if (taskPoolsOptions.cores !== undefined) check(Validation.positiveInt("taskPools.cores", taskPoolsOptions.cores))
    const taskPools: TaskPools.Options = cores === undefined ? taskPoolsOptions : { ...taskPoolsOptions, cores }

    // Resource manager.
    const rmOptions = options("resourceManager") as ResourceManager.Options
    const maxMemoryMb = yield* setting(
      rmOptions.maxMemoryMb,
      env.maxMemoryMb,
      parseNumber,
      "a number",
      (field, n) => Validation.number(field, n, { min: 0, minExclusive: true })
    )
    const maxEntries = yield* setting(rmOptions.maxEntries, env.maxEntries, parseNumber, "an integer", Validation.positiveInt)
    const resourceManager: ResourceManager.Options = {
      ...rmOptions,
      ...(maxMemoryMb === undefined ? {} : { maxMemoryMb }),
      ...(maxEntries === undefined ? {} : { maxEntries })
    }
    check(Either.mapLeft(ResourceManager.validate(resourceManager), (e) => withIssue(under("resourceManager", e))))

    // The other services whose modules export a validator.
    const caches = options("caches") as Cache.CommonOptions
    check(Either.mapLeft(Cache.validate(caches), (e) => withIssue(under("caches", rename(e, "cache.", "caches.")))))
    const sampler = options("sampler") as Sampler.Options
    check(Either.mapLeft(Sampler.validate(sampler), (e) => withIssue(under("sampler", e))))
    const performanceMonitor = options("performanceMonitor") as PerformanceMonitor.Options
    check(Either.mapLeft(PerformanceMonitor.validate(performanceMonitor), (e) => withIssue(under("performanceMonitor", e))))
    const rateLimiters = options("rateLimiters") as Readonly<Record<string, RateLimiter.LimiterOptions>>
    for (const [id, limiter] of Object.entries(rateLimiters)) {
      if (!isRecord(limiter)) {
        issues.push({ field: `rateLimiters.${id}`, reason: "must be an object" })
        continue
      }
      check(Either.mapLeft(RateLimiter.validate({ ...limiter, name: id }), (e) => withIssue(under(`rateLimiters.${id}`, e))))
    }

    if (issues.length > 0) {
      const [first] = issues
      return yield* new ValidationError({ field: first!.field, reason: first!.reason, issues })
    }
    return {
      store: storeSettings,
      healthChecks: healthChecks ?? true,
      eventBus: options("eventBus") as EventBus.Options,
      sampler,
      performanceMonitor,
      circuitBreakers: options("circuitBreakers") as Omit<CircuitBreaker.Options, "name" | "initial">,
      rateLimiters,
      caches,
      resourceManager,
      connectionManager: options("connectionManager") as ConnectionManager.Options,
      taskPools,
      commandRunner: options("commandRunner") as CommandRunner.Options,
      agentRegistry: options("agentRegistry") as AgentRegistry.Options,
      agentMonitor: options("agentMonitor") as AgentMonitor.Options,
      scheduler: options("scheduler") as Scheduler.Options,
      consensus: options("consensus") as Omit<Consensus.Options, "registry">,
      barriers: options("barriers") as Barrier.RegistryOptions,
      locks: options("locks") as Lock.Options,
      healthChecker
    } satisfies Settings
  })

const withIssue = (issue: ValidationIssue): ValidationError => new ValidationError({ ...issue, issues: [issue] })

const rename = (error: ValidationError, from: string, to: string): ValidationError =>
  error.field.startsWith(from) ? new ValidationError({ field: to + error.field.slice(from.length), reason: error.reason }) : error

// ---------------------------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------------------------

/** The tiers of the architecture, in start order. */
export type Tier = "observability" | "resilience" | "infrastructure" | "data" | "agents" | "integration"

/** One start or stop. */
export interface LifecycleEvent {
  readonly service: string
  readonly tier: Tier
  readonly event: "started" | "stopped"
  /** Epoch milliseconds (`Clock`). */
  readonly at: number
}

/** A service and its state. */
export interface ServiceState {
  readonly service: string
  readonly tier: Tier
  readonly state: "running" | "stopped"
  readonly startedAt: number
  readonly stoppedAt: Option.Option<number>
}

/** What the Foundation started and stopped. It stays readable after the runtime is closed. */
export interface LifecycleService {
  /** Every service started, in start order, with its state. */
  readonly services: Effect.Effect<ReadonlyArray<ServiceState>>
  /** Whether `service` (a name of `services`, e.g. "AgentRegistry") is running. */
  isRunning(service: string): Effect.Effect<boolean>
  /** Every start and stop, in order. */
  readonly history: Effect.Effect<ReadonlyArray<LifecycleEvent>>
}

/** The `Lifecycle` service. */
export class Lifecycle extends Context.Tag("effect-foundation/Foundation/Lifecycle")<Lifecycle, LifecycleService>() {}

interface Recorder {
  readonly service: LifecycleService
  record(service: string, tier: Tier, event: "started" | "stopped"): Effect.Effect<void>
}

const makeRecorder: Effect.Effect<Recorder> = Effect.map(Effect.clock, (clock) => {
  // Appended to only inside single synchronous steps.
  const history: Array<LifecycleEvent> = []
  const states = new Map<string, ServiceState>()
  return {
    service: {
      services: Effect.sync(() => [...states.values()]),
      isRunning: (service) => Effect.sync(() => states.get(service)?.state === "running"),
      history: Effect.sync(() => history.slice())
    },
    record: (service, tier, event) =>
      Effect.sync(() => {
        const at = clock.unsafeCurrentTimeMillis()
        history.push({ service, tier, event, at })
        const previous = states.get(service)
        states.set(
          service,
          event === "started"
            ? { service, tier, state: "running", startedAt: at, stoppedAt: Option.none() }
            : { service, tier, state: "stopped", startedAt: previous?.startedAt ?? at, stoppedAt: Option.some(at) }
        )
      })
  }
})

/**
 * `layer`, recorded: "stopped" is recorded by a finalizer added before the service's own, so it
 * runs after them (when the service has really stopped).
 */
const tracked = <ROut, E, RIn>(
  recorder: Recorder,
  service: string,
  tier: Tier,
  layer: Layer.Layer<ROut, E, RIn>
): Layer.Layer<ROut, E, RIn> =>
  Layer.scopedContext(Effect.gen(function*() {
    let started = false
    yield* Effect.addFinalizer(() =>
      started
        ? Effect.zipRight(
          recorder.record(service, tier, "stopped"),
          Effect.logDebug(`Foundation: ${service} stopped`).pipe(Effect.annotateLogs({ service, tier }))
        )
        : Effect.void
    )
    const context = yield* Layer.buildWithScope(layer, yield* Effect.scope)
    yield* recorder.record(service, tier, "started")
    started = true
    yield* Effect.logDebug(`Foundation: ${service} started`).pipe(Effect.annotateLogs({ service, tier }))
    return context
  }))

// ---------------------------------------------------------------------------------------------
// The layer
// ---------------------------------------------------------------------------------------------

/** Every service the Foundation provides. */
export type Services =
  | Lifecycle
  | EventBus.EventBus
  | Telemetry.Telemetry
  | Sampler.Sampler
  | PerformanceMonitor.PerformanceMonitor
  | CircuitBreaker.CircuitBreakers
  | RateLimiter.RateLimiters
  | Cache.Caches
  | ResourceManager.ResourceManager
  | ConnectionManager.ConnectionManager
  | TaskPools.TaskPools
  | CommandRunner.CommandRunner
  | Repository.RepositoryStore
  | AgentRegistry.AgentRegistry
  | AgentMonitor.AgentMonitor
  | Scheduler.Scheduler
  | Consensus.Consensus
  | Barrier.Barriers
  | Lock.Locks
  | HealthChecker.HealthChecker
  | Protocols.RegistryProtocol
  | Protocols.CoordinationProtocol
  | Protocols.InfrastructureProtocol

/** What building the Foundation can fail with (a `StoreError` when the SQL store cannot connect). */
export type BuildError = ValidationError | Repository.StoreError

/** The names the built-in health checks are registered under. */
export const builtInChecks = [
  "event_bus",
  "circuit_breakers",
  "rate_limiters",
  "caches",
  "resource_manager",
  "connection_manager",
  "task_pools",
  "agent_registry",
  "repository_store",
  "agent_monitor",
  "scheduler",
  "locks",
  "barriers",
  "consensus",
  "command_runner",
  "telemetry"
] as const

const registerBuiltInChecks = (checker: HealthChecker.Service) =>
  Effect.all([
    checker.register({ name: "event_bus", check: HealthChecker.checks.eventBus() }),
    checker.register({ name: "circuit_breakers", check: HealthChecker.checks.circuitBreakers() }),
    checker.register({ name: "rate_limiters", check: HealthChecker.checks.rateLimiters() }),
    checker.register({ name: "caches", check: HealthChecker.checks.caches() }),
    checker.register({ name: "resource_manager", check: HealthChecker.checks.resourceManager() }),
    checker.register({ name: "connection_manager", check: HealthChecker.checks.connectionManager() }),
    checker.register({ name: "task_pools", check: HealthChecker.checks.taskPools() }),
    checker.register({ name: "agent_registry", check: HealthChecker.checks.agentRegistry() }),
    checker.register({ name: "repository_store", check: HealthChecker.checks.repositoryStore() }),
    checker.register({ name: "agent_monitor", check: HealthChecker.checks.agentMonitor() }),
    checker.register({ name: "scheduler", check: HealthChecker.checks.scheduler() }),
    checker.register({ name: "locks", check: HealthChecker.checks.locks() }),
    checker.register({ name: "barriers", check: HealthChecker.checks.barriers() }),
    checker.register({ name: "consensus", check: HealthChecker.checks.consensus() }),
    checker.register({ name: "command_runner", check: HealthChecker.checks.commandRunner() }),
    checker.register({ name: "telemetry", check: HealthChecker.checks.telemetry() })
  ], { discard: true }).pipe(
    // Fixed, distinct names on a fresh checker: neither failure can happen.
    Effect.orDie
  )

const storeLayer = (store: StoreSettings): Layer.Layer<Repository.RepositoryStore, BuildError> =>
  store._tag === "memory"
    ? MemoryStore.layer
    : store._tag === "sqlite"
    ? SqlStore.layerSqlite({ filename: store.filename })
    : SqlStore.layerPg({ url: Redacted.value(store.url) })

/** The Foundation's layer for settings already resolved (see `resolve`). */
export const fromSettings = (settings: Settings): Layer.Layer<Services, BuildError> =>
  Layer.unwrapEffect(Effect.map(makeRecorder, (recorder) => {
    const on = <ROut, E, RIn>(service: string, tier: Tier, layer: Layer.Layer<ROut, E, RIn>) =>
    <ROut0, E0, RIn0>(lower: Layer.Layer<ROut0, E0, RIn0>) => Layer.provideMerge(tracked(recorder, service, tier, layer), lower)

    const observability = Layer.succeed(Lifecycle, recorder.service).pipe(
      on("EventBus", "observability", EventBus.layer(settings.eventBus)),
      on("Telemetry", "observability", Telemetry.layer),
      on("Sampler", "observability", Sampler.layer(settings.sampler)),
      on("PerformanceMonitor", "observability", PerformanceMonitor.layer(settings.performanceMonitor))
    )
    const infrastructure = observability.pipe(
      on("CircuitBreakers", "resilience", CircuitBreaker.layer(settings.circuitBreakers)),
      on("RateLimiters", "resilience", RateLimiter.layerWith(settings.rateLimiters)),
      on("Caches", "infrastructure", Cache.layer(settings.caches)),
      on("ResourceManager", "infrastructure", ResourceManager.layerWithProcessMemory(settings.resourceManager)),
      on("ConnectionManager", "infrastructure", ConnectionManager.layer(settings.connectionManager)),
      on("TaskPools", "infrastructure", TaskPools.layer(settings.taskPools)),
      on("CommandRunner", "infrastructure", CommandRunner.layerNode(settings.commandRunner))
    )
    const agents = infrastructure.pipe(
      on("RepositoryStore", "data", storeLayer(settings.store)),
      on("AgentRegistry", "agents", AgentRegistry.layer(settings.agentRegistry)),
      on("AgentMonitor", "agents", AgentMonitor.layer(settings.agentMonitor)),
      on("Scheduler", "agents", Scheduler.layer(settings.scheduler)),
      on("Consensus", "agents", Consensus.layer(settings.consensus)),
      on("Barriers", "agents", Barrier.layer(settings.barriers)),
      on("Locks", "agents", Lock.layer(settings.locks))
    )
    const checker = settings.healthChecks
      ? Layer.tap(HealthChecker.layer(settings.healthChecker), (context) =>
        registerBuiltInChecks(Context.get(context, HealthChecker.HealthChecker)))
      : HealthChecker.layer(settings.healthChecker)
    return agents.pipe(
      on("HealthChecker", "integration", checker),
      on("RegistryProtocol", "integration", Protocols.layerRegistry),
      on("CoordinationProtocol", "integration", Protocols.layerCoordination),
      on("InfrastructureProtocol", "integration", Protocols.layerInfrastructure)
    )
  }))

/**
 * Every service of the library, wired with its defaults over `config` and the environment (see
 * `env`). The configuration is validated before anything starts (see the module doc).
 */
export const layer = (config: FoundationConfig = {}): Layer.Layer<Services, BuildError> =>
  Layer.unwrapEffect(Effect.map(resolve(config), fromSettings))

/**
 * `layer` as a `ManagedRuntime`: built on first use (or `runtime.runtime()`); `dispose()` stops
 * every service in reverse dependency order and leaves no fiber running.
 */
export const runtime = (config: FoundationConfig = {}): ManagedRuntime.ManagedRuntime<Services, BuildError> =>
  ManagedRuntime.make(layer(config))

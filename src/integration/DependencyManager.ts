/**
 * DependencyManager: starts services after the services they depend on, and stops them in reverse
 * (the original's `ServiceIntegration.DependencyManager`, with its defects fixed).
 *
 * `make({ services: [{ name, dependsOn, start, stop }] })` validates the declaration when it is
 * built, before anything starts:
 * - a dependency that names no declared service fails with `MissingDependencyError { service,
 *   missing }` (the first such service in declaration order, with all its missing names);
 * - a cycle fails with `DependencyCycleError { cycle }`, the actual path along `dependsOn`
 *   (`["a", "b", "c", "a"]`; a self-dependency is `["a", "a"]`). The original reported the two
 *   cases confused (an unregistered dependency read as "circular") and the cycle path wrong;
 * - bad options (a duplicate or empty name, a `start` that is not an Effect...) fail with
 *   `ValidationError` naming the field.
 *
 * Order: a topological sort of the dependency graph by `effect/Graph` (Kahn's algorithm; ties in
 * declaration order, so the order is deterministic). `plan` computes it without making anything.
 *
 * Guarantees:
 * - `startAll` starts every service not yet started, each only once all its dependencies have
 *   started. With `concurrency: 1` (the default) one at a time in `order`; with more, wave by wave
 *   (`levels`: a wave holds the services whose dependencies are all in earlier waves), up to
 *   `concurrency` services of a wave at once. Independent services of one wave may thus start
 *   concurrently; a wave never starts before the previous one has finished.
 * - A failed start stops the services started so far, in reverse order of their start, and fails
 *   with `ServiceStartError { service, cause, stopped }`. No dependent of a failed service is ever
 *   started (the original started them anyway); services of the same wave already running finish
 *   their start and are then stopped too.
 * - `stopAll` stops the started services in reverse order of their start, one at a time, each
 *   even when an earlier one failed to stop; failures are reported together in `ServiceStopError`.
 * - Closing the manager's scope stops whatever is still started (the original linked started
 *   services to the manager process). `startAll` and `stopAll` never run at the same time.
 * - `status` gives each service's state (`stopped`, `starting`, `started`, `stopping`, `failed`).
 *
 * Telemetry (when `Telemetry` is in the context at `make`): see `events`.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Graph from "effect/Graph"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Events from "../observability/Events.js"
import { Tagged, type ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Telemetry from "../observability/Telemetry.js"

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** A service depends on names that no declared service has. */
export class MissingDependencyError extends Tagged("MissingDependencyError", {
  category: "validation",
  severity: "high",
  message: "Missing dependency"
})<{
  readonly service: string
  readonly missing: ReadonlyArray<string>
}> {
  override describe() {
    return `Service "${this.service}" depends on undeclared ${this.missing.map((m) => `"${m}"`).join(", ")}`
  }
}

/** The dependencies form a cycle; `cycle` is its path along `dependsOn`, first name repeated at the end. */
export class DependencyCycleError extends Tagged("DependencyCycleError", {
  category: "validation",
  severity: "high",
  message: "Dependency cycle"
})<{
  readonly cycle: ReadonlyArray<string>
}> {
  override describe() {
    return `Dependency cycle: ${this.cycle.join(" → ")}`
  }
}

/** A service failed to start; the services started before it were stopped (`stopped`, in stop order). */
export class ServiceStartError<E = unknown> extends Tagged("ServiceStartError", {
  category: "system",
  severity: "high",
  message: "Service failed to start"
})<{
  readonly service: string
  readonly cause: Cause.Cause<E>
  readonly stopped: ReadonlyArray<string>
  /** Services that failed to stop during the roll-back. */
  readonly stopFailures: ReadonlyArray<StopFailure>
}> {
  override describe() {
    return `Service "${this.service}" failed to start: ${Cause.pretty(this.cause).split("\n")[0]}`
  }
}

/** One service that failed to stop. */
export interface StopFailure {
  readonly service: string
  readonly cause: Cause.Cause<unknown>
}

/** Services failed to stop (every other started service was still stopped). */
export class ServiceStopError extends Tagged("ServiceStopError", {
  category: "system",
  severity: "medium",
  message: "Services failed to stop"
})<{
  readonly failures: ReadonlyArray<StopFailure>
}> {
  override describe() {
    return `Failed to stop ${this.failures.map((f) => `"${f.service}"`).join(", ")}`
  }
}

// ---------------------------------------------------------------------------------------------
// Options and data
// ---------------------------------------------------------------------------------------------

/** A service: how to start and stop it, and what it needs started first. */
export interface ServiceSpec<E = unknown, R = never> {
  /** Unique, non-empty. */
  readonly name: string
  /** Names of the services to start first [none]. */
  readonly dependsOn?: ReadonlyArray<string>
  readonly start: Effect.Effect<unknown, E, R>
  /** [nothing to do] */
  readonly stop?: Effect.Effect<unknown, unknown, R>
}

/** Options of `make`. */
export interface Options<S extends ReadonlyArray<ServiceSpec<unknown, unknown>>> {
  /** Used in events ["dependency_manager"]. */
  readonly name?: string
  readonly services: S
  /** Services of one wave started at once: a positive integer or "unbounded" [1: one at a time, in `order`]. */
  readonly concurrency?: number | "unbounded"
}

/** What the start effects of `S` may fail with. */
export type StartErrorOf<S extends ReadonlyArray<ServiceSpec<unknown, unknown>>> = S[number] extends infer X
  ? X extends { readonly start: Effect.Effect<infer _A, infer E, infer _R> } ? E : never
  : never

/** What the start and stop effects of `S` need. */
export type ContextOf<S extends ReadonlyArray<ServiceSpec<unknown, unknown>>> = S[number] extends infer X ?
    | (X extends { readonly start: Effect.Effect<infer _A, infer _E, infer R> } ? R : never)
    | (X extends { readonly stop: Effect.Effect<infer _A, infer _E, infer R> } ? R : never)
  : never

/** The start plan of a declaration. */
export interface Plan {
  /** Every service after its dependencies (ties in declaration order). */
  readonly order: ReadonlyArray<string>
  /** Waves: each service's dependencies are all in earlier waves. */
  readonly levels: ReadonlyArray<ReadonlyArray<string>>
  /** Each service's dependencies (duplicates removed), by name, in declaration order. */
  readonly dependencies: Readonly<Record<string, ReadonlyArray<string>>>
}

/** The state of a service. */
export type State = "stopped" | "starting" | "started" | "stopping" | "failed"

/** One service as `status` reports it. */
export interface ServiceStatus {
  readonly name: string
  readonly dependsOn: ReadonlyArray<string>
  readonly state: State
  /** When it last finished starting (epoch ms, `Clock`). */
  readonly startedAt: Option.Option<number>
  /** Why its last start or stop failed. */
  readonly lastFailure: Option.Option<Cause.Cause<unknown>>
}

/** A dependency manager. */
export interface Manager<E = unknown> extends Plan {
  readonly name: string
  /** Starts every service not yet started, dependencies first (see the module doc). */
  readonly startAll: Effect.Effect<void, ServiceStartError<E>>
  /** Stops the started services in reverse order of their start. */
  readonly stopAll: Effect.Effect<void, ServiceStopError>
  /** Every service, in `order`. */
  readonly status: Effect.Effect<ReadonlyArray<ServiceStatus>>
}

/** A manager as a service (see `layer`). */
export class DependencyManager extends Context.Tag("effect-foundation/DependencyManager")<
  DependencyManager,
  Manager<unknown>
>() {}

/** Event names (measurements · metadata). */
export const events = Events.names.dependencyManager

/** Defaults. */
export const defaults = { name: "dependency_manager", concurrency: 1 } as const

// ---------------------------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------------------------

const field = (path: string) => `dependencyManager.${path}`

interface Declared {
  readonly names: ReadonlyArray<string>
  readonly dependencies: ReadonlyMap<string, ReadonlyArray<string>>
}

/** Validates the shape of the declaration (names and dependency lists). */
const declare = (services: unknown): Either.Either<Declared, ValidationError> =>
  Either.gen(function*() {
    if (!Array.isArray(services)) return yield* Validation.invalid(field("services"), "must be an array")
    const dependencies = new Map<string, ReadonlyArray<string>>()
    const names: Array<string> = []
    for (let i = 0; i < services.length; i++) {
      const spec: unknown = services[i]
      const at = field(`services.${i}`)
      if (typeof spec !== "object" || spec === null) return yield* Validation.invalid(at, "must be an object")
      const name = yield* Validation.nonEmptyString(`${at}.name`, "name" in spec ? spec.name : undefined)
      if (dependencies.has(name)) return yield* Validation.invalid(`${at}.name`, `duplicate service name "${name}"`)
      const dependsOn: unknown = "dependsOn" in spec ? spec.dependsOn : undefined
      if (dependsOn !== undefined && !Array.isArray(dependsOn)) {
        return yield* Validation.invalid(`${at}.dependsOn`, "must be an array of service names")
      }
      const deps: Array<string> = []
      for (const [j, dep] of (dependsOn ?? []).entries()) {
        const depName = yield* Validation.nonEmptyString(`${at}.dependsOn.${j}`, dep)
        if (!deps.includes(depName)) deps.push(depName)
      }
      names.push(name)
      dependencies.set(name, deps)
    }
    return { names, dependencies }
  })

/** The first cycle found by a depth-first walk along `dependsOn`, in declaration order. */
const findCycle = (declared: Declared): ReadonlyArray<string> | undefined => {
  const GREY = 1
  const BLACK = 2
  const color = new Map<string, number>()
  for (const root of declared.names) {
    if (color.has(root)) continue
    // An explicit stack (the path from the root), so a long chain cannot overflow the call stack.
    const path: Array<{ readonly node: string; next: number }> = [{ node: root, next: 0 }]
    color.set(root, GREY)
    while (path.length > 0) {
      const top = path[path.length - 1]!
      const deps = declared.dependencies.get(top.node)!
      if (top.next < deps.length) {
        const dep = deps[top.next++]!
        const seen = color.get(dep)
        if (seen === GREY) {
          const from = path.findIndex((frame) => frame.node === dep)
          return [...path.slice(from).map((frame) => frame.node), dep]
        }
        if (seen === undefined) {
          color.set(dep, GREY)
          path.push({ node: dep, next: 0 })
        }
      } else {
        color.set(top.node, BLACK)
        path.pop()
      }
    }
  }
  return undefined
}

/**
 * The start plan of a list of services (only `name` and `dependsOn` are read), or why there is
 * none: `ValidationError`, then `MissingDependencyError`, then `DependencyCycleError`.
 */
export const plan = (
  services: ReadonlyArray<Pick<ServiceSpec<unknown, unknown>, "name" | "dependsOn">>
): Either.Either<Plan, ValidationError | MissingDependencyError | DependencyCycleError> =>
  Either.gen(function*() {
    const declared = yield* declare(services)
    for (const name of declared.names) {
      const missing = declared.dependencies.get(name)!.filter((dep) => !declared.dependencies.has(dep))
      if (missing.length > 0) return yield* Either.left(new MissingDependencyError({ service: name, missing }))
    }
    const cycle = findCycle(declared)
    if (cycle !== undefined) return yield* Either.left(new DependencyCycleError({ cycle }))
    // Edges go from a dependency to its dependent, so a topological order starts with dependencies.
    const graph = Graph.directed<string, void>((mutable) => {
      const index = new Map<string, Graph.NodeIndex>()
      for (const name of declared.names) index.set(name, Graph.addNode(mutable, name))
      for (const name of declared.names) {
        for (const dep of declared.dependencies.get(name)!) Graph.addEdge(mutable, index.get(dep)!, index.get(name)!, undefined)
      }
    })
    const order = Array.from(Graph.values(Graph.topo(graph)))
    const level = new Map<string, number>()
    const levels: Array<Array<string>> = []
    for (const name of order) {
      const l = declared.dependencies.get(name)!.reduce((max, dep) => Math.max(max, level.get(dep)! + 1), 0)
      level.set(name, l)
      ;(levels[l] ??= []).push(name)
    }
    return {
      order,
      levels,
      dependencies: Object.fromEntries(declared.names.map((name) => [name, declared.dependencies.get(name)!]))
    }
  })

// ---------------------------------------------------------------------------------------------
// The manager
// ---------------------------------------------------------------------------------------------

interface Slot {
  readonly name: string
  readonly start: Effect.Effect<unknown, unknown>
  readonly stop: Effect.Effect<unknown, unknown>
  state: State
  startedAt: number | undefined
  lastFailure: Cause.Cause<unknown> | undefined
}

/**
 * Makes a manager in the current scope (closing it stops the started services). The start and
 * stop effects run with the context of the caller of `make`.
 */
export const make = <const S extends ReadonlyArray<ServiceSpec<unknown, unknown>>>(
  options: Options<S>
): Effect.Effect<
  Manager<StartErrorOf<S>>,
  ValidationError | MissingDependencyError | DependencyCycleError,
  Scope.Scope | ContextOf<S>
> =>
  Effect.gen(function*() {
    if (typeof options !== "object" || options === null) return yield* Validation.invalid("dependencyManager", "options must be an object")
    const name = yield* Validation.nonEmptyString(field("name"), options.name ?? defaults.name)
    const concurrency = options.concurrency === "unbounded"
      ? "unbounded" as const
      : yield* Validation.positiveInt(field("concurrency"), options.concurrency ?? defaults.concurrency)
    const planned = yield* plan(options.services)
    for (const [i, spec] of options.services.entries()) {
      if (!Effect.isEffect(spec.start)) return yield* Validation.invalid(field(`services.${i}.start`), "must be an Effect")
      if (spec.stop !== undefined && !Effect.isEffect(spec.stop)) {
        return yield* Validation.invalid(field(`services.${i}.stop`), "must be an Effect")
      }
    }
    const context = yield* Effect.context<ContextOf<S>>()
    const clock = yield* Effect.clock
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const lock = yield* Effect.makeSemaphore(1)

    // `ContextOf<S>` is, by its definition, what every start and stop effect of `S` needs.
    const provided = (effect: Effect.Effect<unknown, unknown, unknown>) =>
      Effect.provide(effect as Effect.Effect<unknown, unknown, ContextOf<S>>, context)
    const slots = new Map<string, Slot>()
    for (const spec of options.services) {
      slots.set(spec.name, {
        name: spec.name,
        start: provided(spec.start),
        stop: spec.stop === undefined ? Effect.void : provided(spec.stop),
        state: "stopped",
        startedAt: undefined,
        lastFailure: undefined
      })
    }
    /** Started services, in the order their start finished. */
    const started: Array<string> = []

    const emitFailure = (slot: Slot, phase: "start" | "stop", duration: number, cause: Cause.Cause<unknown>) =>
      telemetry?.unsafeEmit(events.serviceFailed, { duration }, {
        manager: name,
        service: slot.name,
        phase,
        error: Cause.pretty(cause).split("\n")[0]
      })

    const startOne = (slot: Slot): Effect.Effect<void, unknown> =>
      Effect.suspend(() => {
        const t0 = clock.unsafeCurrentTimeMillis()
        slot.state = "starting"
        return Effect.asVoid(Effect.onExit(slot.start, (exit) =>
          Effect.sync(() => {
            const now = clock.unsafeCurrentTimeMillis()
            if (Exit.isSuccess(exit)) {
              slot.state = "started"
              slot.startedAt = now
              started.push(slot.name)
              telemetry?.unsafeEmit(events.serviceStarted, { duration: now - t0 }, { manager: name, service: slot.name })
            } else if (Cause.isInterruptedOnly(exit.cause)) {
              slot.state = "stopped"
            } else {
              slot.state = "failed"
              slot.lastFailure = exit.cause
              emitFailure(slot, "start", now - t0, exit.cause)
            }
          })))
      })

    const stopOne = (slot: Slot): Effect.Effect<void, unknown> =>
      Effect.suspend(() => {
        const t0 = clock.unsafeCurrentTimeMillis()
        slot.state = "stopping"
        return Effect.asVoid(Effect.onExit(slot.stop, (exit) =>
          Effect.sync(() => {
            const now = clock.unsafeCurrentTimeMillis()
            if (Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)) {
              slot.state = "started" // still to be stopped (by the next stopAll or the scope)
              return
            }
            started.splice(started.lastIndexOf(slot.name), 1)
            if (Exit.isSuccess(exit)) {
              slot.state = "stopped"
              telemetry?.unsafeEmit(events.serviceStopped, { duration: now - t0 }, { manager: name, service: slot.name })
            } else {
              slot.state = "failed"
              slot.lastFailure = exit.cause
              emitFailure(slot, "stop", now - t0, exit.cause)
            }
          })))
      })

    /** Stops every started service, newest first; returns which stopped and which failed to. */
    const stopStarted: Effect.Effect<{ stopped: Array<string>; failures: Array<StopFailure> }> = Effect.gen(function*() {
      const stopped: Array<string> = []
      const failures: Array<StopFailure> = []
      for (const service of [...started].reverse()) {
        const exit = yield* Effect.exit(stopOne(slots.get(service)!))
        if (Exit.isSuccess(exit)) stopped.push(service)
        else failures.push({ service, cause: exit.cause })
      }
      return { stopped, failures }
    })

    const startAll = lock.withPermits(1)(Effect.gen(function*() {
      for (const wave of planned.levels) {
        let failed: { readonly service: string; readonly cause: Cause.Cause<unknown> } | undefined
        const todo = wave.map((service) => slots.get(service)!).filter((slot) => slot.state !== "started")
        yield* Effect.forEach(todo, (slot) =>
          Effect.suspend(() =>
            failed !== undefined
              ? Effect.void // a service of this wave failed: start no more
              : Effect.catchAllCause(startOne(slot), (cause) =>
                Effect.sync(() => {
                  failed ??= { service: slot.name, cause }
                }))
          ), { concurrency, discard: true })
        if (failed !== undefined) {
          const rollback = yield* stopStarted
          return yield* Effect.fail(
            new ServiceStartError({
              service: failed.service,
              cause: failed.cause as Cause.Cause<StartErrorOf<S>>,
              stopped: rollback.stopped,
              stopFailures: rollback.failures
            })
          )
        }
      }
    }))

    const stopAll = lock.withPermits(1)(Effect.flatMap(
      stopStarted,
      ({ failures }) => failures.length === 0 ? Effect.void : Effect.fail(new ServiceStopError({ failures }))
    ))

    yield* Effect.addFinalizer(() =>
      Effect.flatMap(
        lock.withPermits(1)(stopStarted),
        ({ failures }) =>
          failures.length === 0
            ? Effect.void
            : Effect.logWarning(`${name}: services failed to stop`, new ServiceStopError({ failures }))
      )
    )

    const manager: Manager<StartErrorOf<S>> = {
      name,
      order: planned.order,
      levels: planned.levels,
      dependencies: planned.dependencies,
      startAll,
      stopAll,
      status: Effect.sync(() =>
        planned.order.map((service) => {
          const slot = slots.get(service)!
          return {
            name: service,
            dependsOn: planned.dependencies[service]!,
            state: slot.state,
            startedAt: Option.fromNullable(slot.startedAt),
            lastFailure: Option.fromNullable(slot.lastFailure)
          }
        })
      )
    }
    return manager
  })

/** A layer of the `DependencyManager` service (its start and stop effects need nothing more). */
export const layer = (
  options: Options<ReadonlyArray<ServiceSpec<unknown, never>>>
): Layer.Layer<DependencyManager, ValidationError | MissingDependencyError | DependencyCycleError> =>
  Layer.scoped(DependencyManager, make(options))

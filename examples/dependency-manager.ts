// examples/dependency-manager.ts — dependencies start first, stops go in reverse; a cycle and a missing dependency are told apart
// (DependencyManager is imported relatively until src/index.ts exports it.)
import { Effect, Either, Ref } from "effect"
import { DependencyManager } from "effect-foundation"

export const program = Effect.gen(function*() {
  // Declarations are checked before anything starts.
  const cycle = DependencyManager.plan([{ name: "api", dependsOn: ["database"] }, { name: "database", dependsOn: ["api"] }])
  const missing = DependencyManager.plan([{ name: "api", dependsOn: ["queue"] }])

  const log = yield* Ref.make<ReadonlyArray<string>>([])
  const note = (line: string) => Ref.update(log, (lines) => [...lines, line])
  const service = (name: string, dependsOn: ReadonlyArray<string>, fails = false) => ({
    name,
    dependsOn,
    start: Effect.zipRight(note(`start ${name}`), fails ? Effect.fail(`${name}: port in use`) : Effect.void),
    stop: note(`stop ${name}`)
  })
  const manager = yield* DependencyManager.make({
    services: [
      service("api", ["database", "cache"]),
      service("database", ["config"]),
      service("cache", ["config"], true),
      service("config", [])
    ]
  })
  // The cache fails to start: what was started is stopped in reverse, and the api never starts.
  const failed = yield* Effect.flip(manager.startAll)
  return {
    order: manager.order,
    cycle: Either.isLeft(cycle) && cycle.left._tag === "DependencyCycleError" ? cycle.left.cycle : [],
    missing: Either.isLeft(missing) && missing.left._tag === "MissingDependencyError"
      ? { service: missing.left.service, missing: missing.left.missing }
      : {},
    failed: { service: failed.service, stopped: failed.stopped },
    log: yield* Ref.get(log)
  }
}).pipe(Effect.scoped)

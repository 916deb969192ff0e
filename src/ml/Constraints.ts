/**
 * Constraint satisfaction over finite domains: variables with a list of values each, constraints
 * as predicates over named variables, solved by backtracking search with MRV (degree tie-break),
 * forward checking and optional AC-3 (maintained at every node).
 *
 * Guarantees:
 * - A problem is validated once, at `problem`: an empty domain, a duplicate value, an unknown or
 *   repeated variable in a scope, a duplicate constraint name fail with a `ValidationError`
 *   naming the field. Nothing is coerced.
 * - The search is complete and deterministic: values are tried in domain order, variables in MRV
 *   order (fewest live values, then most constraints on unassigned neighbours, then declaration
 *   order), so the same problem gives the same solutions in the same order. Every returned
 *   solution satisfies every constraint; without a `limit` every solution is returned.
 * - The search runs as an Effect in synchronous slices of `yieldEvery` nodes separated by
 *   `Effect.yieldNow`, so it never monopolises the runtime and can be interrupted at any slice.
 * - `solveDistributed` splits the domain of the first variable across workers (fibers forked into
 *   a scope, concurrency `workers`); without a limit it returns exactly the single-worker solution
 *   set; with a limit it stops the other workers as soon as enough solutions are found.
 * - A predicate that throws fails the search with `ConstraintPredicateError`; an unsatisfiable
 *   problem fails `solveOne` with `NoSolutionError`.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import { Tagged, ValidationError, type ValidationIssue } from "../errors/FoundationError.js"

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** The problem has no solution (raised by `solveOne`). */
export class NoSolutionError extends Tagged("NoSolutionError", {
  category: "permanent",
  severity: "low",
  message: "The constraint problem has no solution"
})<{
  /** Search nodes visited before proving unsatisfiability. */
  readonly nodes: number
}> {
  override describe() {
    return `The constraint problem has no solution (${this.nodes} nodes searched)`
  }
}

/** A constraint's predicate threw instead of returning a boolean. The search is abandoned. */
export class ConstraintPredicateError extends Tagged("ConstraintPredicateError", {
  category: "permanent",
  severity: "high",
  message: "A constraint predicate threw"
})<{
  /** The constraint's name (or `constraints[i]`). */
  readonly constraint: string
  readonly cause: unknown
}> {
  override describe() {
    const reason = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `Constraint "${this.constraint}" threw: ${reason}`
  }
}

// ---------------------------------------------------------------------------------------------
// Problems
// ---------------------------------------------------------------------------------------------

/** An assignment of (some of) the variables: the predicate sees at least its scope assigned. */
export type Assignment<V> = Readonly<Record<string, V>>

/** A constraint: a predicate over the variables of its scope. */
export interface Constraint<V> {
  /** The variables the predicate reads; it is evaluated only when all of them are assigned. */
  readonly scope: ReadonlyArray<string>
  /**
   * True when the values of the scope are allowed together. Must be pure and synchronous. The
   * assignment object is reused by the search: read it, do not keep it.
   */
  readonly predicate: (assignment: Assignment<V>) => boolean
  /** For error messages; unique when given. */
  readonly name?: string
}

/** What `problem` accepts. */
export interface ProblemSpec<V> {
  /** Each variable with its finite domain (the order is the order values are tried in). */
  readonly variables: Readonly<Record<string, ReadonlyArray<V>>>
  readonly constraints: ReadonlyArray<Constraint<V>>
}

/** A validated problem. */
export interface Problem<V> {
  readonly _tag: "ConstraintProblem"
  /** Variable names in declaration order. */
  readonly names: ReadonlyArray<string>
  /** Domains by variable index. */
  readonly domains: ReadonlyArray<ReadonlyArray<V>>
  /** Constraints, each with its scope as variable indices and a display name. */
  readonly constraints: ReadonlyArray<CompiledConstraint<V>>
}

/** A constraint of a validated problem. */
export interface CompiledConstraint<V> {
  readonly name: string
  readonly scope: ReadonlyArray<number>
  readonly predicate: (assignment: Assignment<V>) => boolean
}

const isRecord = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/** Validates a problem. Every problem found is listed in the error's `issues`. */
export const problem = <V>(spec: ProblemSpec<V>): Effect.Effect<Problem<V>, ValidationError> =>
  Effect.suspend(() => {
    const issues: Array<ValidationIssue> = []
    const names: Array<string> = []
    const domains: Array<ReadonlyArray<V>> = []
    const index = new Map<string, number>()
    if (!isRecord(spec) || !isRecord(spec.variables)) {
      issues.push({ field: "variables", reason: "must be an object of name → domain" })
    } else {
      for (const [name, domain] of Object.entries(spec.variables)) {
        if (!Array.isArray(domain)) {
          issues.push({ field: `variables.${name}`, reason: "domain must be an array" })
          continue
        }
        if (domain.length === 0) issues.push({ field: `variables.${name}`, reason: "domain must not be empty" })
        else if (new Set(domain).size !== domain.length) {
          issues.push({ field: `variables.${name}`, reason: "domain must not contain duplicate values" })
        }
        index.set(name, names.length)
        names.push(name)
        domains.push(domain as ReadonlyArray<V>)
      }
      if (names.length === 0 && issues.length === 0) {
        issues.push({ field: "variables", reason: "must declare at least one variable" })
      }
    }
    const compiled: Array<CompiledConstraint<V>> = []
    const rawConstraints: unknown = isRecord(spec) ? spec.constraints : undefined
    if (!Array.isArray(rawConstraints)) {
      issues.push({ field: "constraints", reason: "must be an array" })
    } else {
      const seenNames = new Set<string>()
      rawConstraints.forEach((c: unknown, i) => {
        const field = `constraints[${i}]`
        if (!isRecord(c)) {
          issues.push({ field, reason: "must be an object { scope, predicate, name? }" })
          return
        }
        let name = field
        if (c.name !== undefined) {
          if (typeof c.name !== "string" || c.name.length === 0) {
            issues.push({ field: `${field}.name`, reason: "must be a non-empty string" })
          } else if (seenNames.has(c.name)) {
            issues.push({ field: `${field}.name`, reason: `duplicate constraint name "${c.name}"` })
          } else {
            seenNames.add(c.name)
            name = c.name
          }
        }
        if (typeof c.predicate !== "function") {
          issues.push({ field: `${field}.predicate`, reason: "must be a function" })
        }
        const scope: Array<number> = []
        if (!Array.isArray(c.scope) || c.scope.length === 0) {
          issues.push({ field: `${field}.scope`, reason: "must be a non-empty array of variable names" })
        } else {
          for (const v of c.scope as ReadonlyArray<unknown>) {
            const at = typeof v === "string" ? index.get(v) : undefined
            if (at === undefined) {
              issues.push({ field: `${field}.scope`, reason: `unknown variable ${JSON.stringify(v)}` })
            } else if (scope.includes(at)) {
              issues.push({ field: `${field}.scope`, reason: `variable "${String(v)}" appears twice` })
            } else scope.push(at)
          }
        }
        compiled.push({ name, scope, predicate: c.predicate as (a: Assignment<V>) => boolean })
      })
    }
    const first = issues[0]
    if (first !== undefined) return Effect.fail(new ValidationError({ ...first, issues }))
    return Effect.succeed({ _tag: "ConstraintProblem", names, domains, constraints: compiled })
  })

// ---------------------------------------------------------------------------------------------
// Options and results
// ---------------------------------------------------------------------------------------------

/** Options of `solve`. */
export interface SolveOptions {
  /** Stop after this many solutions (default: all). */
  readonly limit?: number
  /** Maintain arc consistency (AC-3) on the constraints with two unassigned variables (default false). */
  readonly ac3?: boolean
  /** Prune neighbours' domains after each assignment (default true). */
  readonly forwardChecking?: boolean
  /** Variable order: "mrv" (default; degree tie-break) or "input" (declaration order). */
  readonly order?: "mrv" | "input"
  /** Search nodes per synchronous slice before yielding to the runtime (default 1000). */
  readonly yieldEvery?: number
}

/** Options of `solveDistributed`. */
export interface DistributedOptions extends SolveOptions {
  /** Number of domain parts, solved concurrently (required, ≥ 1). */
  readonly workers: number
  /** The variable whose domain is split (default: the first variable in MRV order at the root). */
  readonly splitOn?: string
}

/** Search effort. */
export interface Stats {
  /** Values assigned (search nodes). */
  readonly nodes: number
  /** Assignments undone because they violated a constraint or wiped out a domain. */
  readonly backtracks: number
}

/** What `solve` returns. */
export interface Result<V> {
  /** Solutions in the order found, each a full assignment in declaration order. */
  readonly solutions: ReadonlyArray<Assignment<V>>
  /** True when the whole space was searched (the solutions are all there are). */
  readonly exhausted: boolean
  readonly stats: Stats
}

/** What `solveDistributed` returns. */
export interface DistributedResult<V> extends Result<V> {
  /** The variable whose domain was split. */
  readonly splitOn: string
  /** Per-part effort, in part order (a stopped worker reports what it did before stopping). */
  readonly workers: ReadonlyArray<Stats & { readonly values: ReadonlyArray<V>; readonly solutions: number }>
}

interface Settings {
  readonly limit: number
  readonly ac3: boolean
  readonly forwardChecking: boolean
  readonly order: "mrv" | "input"
  readonly yieldEvery: number
}

const validateOptions = (options: SolveOptions): Effect.Effect<Settings, ValidationError> => {
  const fail = (field: string, reason: string) => Effect.fail(new ValidationError({ field, reason }))
  const { limit, yieldEvery, order } = options
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1)) {
    return fail("limit", `must be an integer ≥ 1, got ${String(limit)}`)
  }
  if (yieldEvery !== undefined && !(Number.isInteger(yieldEvery) && yieldEvery >= 1)) {
    return fail("yieldEvery", `must be an integer ≥ 1, got ${String(yieldEvery)}`)
  }
  if (order !== undefined && order !== "mrv" && order !== "input") {
    return fail("order", `must be one of "mrv", "input", got ${JSON.stringify(order)}`)
  }
  return Effect.succeed({
    limit: limit ?? Number.POSITIVE_INFINITY,
    ac3: options.ac3 === true,
    forwardChecking: options.forwardChecking !== false,
    order: order ?? "mrv",
    yieldEvery: yieldEvery ?? 1000
  })
}

// ---------------------------------------------------------------------------------------------
// The search engine (synchronous, resumable)
// ---------------------------------------------------------------------------------------------

interface Frame {
  readonly v: number
  /** Next domain index to try. */
  next: number
  /** Trail length before this variable was assigned. */
  readonly mark: number
}

/**
 * A backtracking search whose state lives in plain arrays, advanced by `run(budget)` in
 * synchronous slices. Domains are bitmaps over the original domain indices; every removal is
 * recorded on a trail and undone on backtrack.
 */
class Search<V> {
  readonly n: number
  readonly live: Array<Uint8Array>
  readonly size: Array<number>
  readonly value: Int32Array
  readonly unassigned: Int32Array
  /** Constraint indices by variable. */
  readonly byVar: Array<Array<number>>
  readonly asg: Record<string, V> = {}
  readonly trailVar: Array<number> = []
  readonly trailVal: Array<number> = []
  readonly stack: Array<Frame> = []
  readonly solutions: Array<Assignment<V>> = []
  nodes = 0
  backtracks = 0
  done = false
  exhausted = false
  /** Set when a predicate threw: the search stops and reports it. */
  failure: ConstraintPredicateError | undefined = undefined
  /** Start: the root propagation has not run yet. */
  private started = false
  /** Whether the next step selects a variable (true) or tries the next value of the top frame. */
  private selecting = true

  constructor(
    readonly problem: Problem<V>,
    readonly settings: Settings,
    /** Domain restrictions (variable index → allowed domain indices) applied at the root. */
    readonly restrict?: ReadonlyMap<number, ReadonlySet<number>>
  ) {
    const { constraints, domains } = problem
    this.n = domains.length
    this.live = domains.map((d) => new Uint8Array(d.length).fill(1))
    this.size = domains.map((d) => d.length)
    this.value = new Int32Array(this.n).fill(-1)
    this.unassigned = new Int32Array(constraints.length)
    this.byVar = domains.map(() => [])
    constraints.forEach((c, ci) => {
      this.unassigned[ci] = c.scope.length
      for (const v of c.scope) this.byVar[v]!.push(ci)
    })
    if (restrict !== undefined) {
      for (const [v, allowed] of restrict) {
        const live = this.live[v]!
        for (let k = 0; k < live.length; k++) {
          if (!allowed.has(k)) {
            live[k] = 0
            this.size[v]!--
          }
        }
      }
    }
  }

  private test(ci: number): boolean {
    if (this.failure !== undefined) return false
    const c = this.problem.constraints[ci]!
    try {
      return c.predicate(this.asg) === true
    } catch (cause) {
      // User code threw: stop the search (the loop checks `done`) and report it as a typed failure.
      this.failure = new ConstraintPredicateError({ constraint: c.name, cause })
      this.done = true
      return false
    }
  }

  private remove(v: number, k: number): void {
    this.live[v]![k] = 0
    this.size[v]!--
    this.trailVar.push(v)
    this.trailVal.push(k)
  }

  private undo(mark: number): void {
    while (this.trailVar.length > mark) {
      const v = this.trailVar.pop()!
      const k = this.trailVal.pop()!
      this.live[v]![k] = 1
      this.size[v]!++
    }
  }

  private name(v: number): string {
    return this.problem.names[v]!
  }

  private assign(v: number, k: number): void {
    this.value[v] = k
    this.asg[this.name(v)] = this.problem.domains[v]![k]!
    for (const ci of this.byVar[v]!) this.unassigned[ci]!--
  }

  private unassign(v: number): void {
    if (this.value[v]! < 0) return
    this.value[v] = -1
    delete this.asg[this.name(v)]
    for (const ci of this.byVar[v]!) this.unassigned[ci]!++
  }

  /** The only unassigned variable of a constraint with one left. */
  private lastUnassigned(ci: number): number {
    for (const v of this.problem.constraints[ci]!.scope) if (this.value[v]! < 0) return v
    return -1
  }

  /** Removes the values of `y` that violate constraint `ci` given the current assignment. */
  private reviseLast(ci: number, y: number): boolean {
    const live = this.live[y]!
    const domain = this.problem.domains[y]!
    const key = this.name(y)
    for (let k = 0; k < live.length; k++) {
      if (live[k] === 0) continue
      this.asg[key] = domain[k]!
      if (!this.test(ci)) this.remove(y, k)
    }
    delete this.asg[key]
    return this.size[y]! > 0
  }

  /** The two unassigned variables of a constraint with exactly two left, or undefined. */
  private pair(ci: number): readonly [number, number] | undefined {
    if (this.unassigned[ci] !== 2) return undefined
    let a = -1
    for (const v of this.problem.constraints[ci]!.scope) {
      if (this.value[v]! >= 0) continue
      if (a < 0) a = v
      else return [a, v]
    }
    return undefined
  }

  /** AC-3 revise: drops the values of x without support in y under constraint ci. */
  private revise(x: number, ci: number, y: number): boolean {
    const lx = this.live[x]!
    const ly = this.live[y]!
    const dx = this.problem.domains[x]!
    const dy = this.problem.domains[y]!
    const kx = this.name(x)
    const ky = this.name(y)
    let changed = false
    for (let a = 0; a < lx.length; a++) {
      if (lx[a] === 0) continue
      this.asg[kx] = dx[a]!
      let supported = false
      for (let b = 0; b < ly.length && !supported; b++) {
        if (ly[b] === 0) continue
        this.asg[ky] = dy[b]!
        supported = this.test(ci)
      }
      if (!supported) {
        this.remove(x, a)
        changed = true
      }
    }
    delete this.asg[kx]
    delete this.asg[ky]
    return changed
  }

  /** AC-3 over the constraints with two unassigned variables, seeded by the changed variables. */
  private ac3(changed: ReadonlyArray<number> | undefined, assigned: number): boolean {
    const queue: Array<[number, number, number]> = []
    const enqueueAround = (y: number, except: number) => {
      for (const ci of this.byVar[y]!) {
        if (ci === except) continue
        const p = this.pair(ci)
        if (p === undefined) continue
        const x = p[0] === y ? p[1] : p[0]
        queue.push([x, ci, y])
      }
    }
    if (changed === undefined) {
      this.problem.constraints.forEach((_, ci) => {
        const p = this.pair(ci)
        if (p !== undefined) queue.push([p[0], ci, p[1]], [p[1], ci, p[0]])
      })
    } else {
      for (const y of changed) enqueueAround(y, -1)
      // n-ary constraints of the assigned variable that now have two unassigned variables left.
      for (const ci of this.byVar[assigned]!) {
        const p = this.pair(ci)
        if (p !== undefined) queue.push([p[0], ci, p[1]], [p[1], ci, p[0]])
      }
    }
    while (queue.length > 0) {
      const [x, ci, y] = queue.shift()!
      if (this.value[x]! >= 0 || this.value[y]! >= 0) continue
      if (this.revise(x, ci, y)) {
        if (this.size[x] === 0) return false
        enqueueAround(x, ci)
      }
    }
    return true
  }

  /** Checks and propagates after `v` was assigned (or at the root when v < 0). */
  private propagate(v: number, mark: number): boolean {
    const { forwardChecking, ac3 } = this.settings
    const constraints = v >= 0 ? this.byVar[v]! : this.problem.constraints.map((_, ci) => ci)
    for (const ci of constraints) {
      const left = this.unassigned[ci]!
      if (left === 0) {
        // With forward checking the value was already filtered against this constraint.
        if (!forwardChecking && !this.test(ci)) return false
      } else if (left === 1 && forwardChecking) {
        if (!this.reviseLast(ci, this.lastUnassigned(ci))) return false
      }
    }
    if (ac3) {
      if (v < 0) return this.ac3(undefined, -1)
      const changed = new Set<number>(this.trailVar.slice(mark))
      return this.ac3([...changed], v)
    }
    return true
  }

  /** The next variable to branch on, or -1 when all are assigned. */
  select(): number {
    let best = -1
    let bestSize = 0
    let bestDegree = 0
    for (let v = 0; v < this.n; v++) {
      if (this.value[v]! >= 0) continue
      if (this.settings.order === "input") return v
      const size = this.size[v]!
      if (best >= 0 && size > bestSize) continue
      let degree = 0
      for (const ci of this.byVar[v]!) if (this.unassigned[ci]! > 1) degree++
      if (best < 0 || size < bestSize || degree > bestDegree) {
        best = v
        bestSize = size
        bestDegree = degree
      }
    }
    return best
  }

  /** Root propagation; false when the problem is inconsistent at the root. */
  root(): boolean {
    this.started = true
    const ok = this.size.every((s) => s > 0) && this.propagate(-1, 0)
    if (!ok) {
      this.done = true
      this.exhausted = true
    }
    return ok
  }

  /**
   * Advances by at most `budget` nodes. With `pauseOnSolution`, returns right after a solution
   * is recorded (so that a coordinator can count it). A throwing predicate sets `failure`.
   */
  run(budget: number, pauseOnSolution: boolean): void {
    if (!this.started && !this.root()) return
    const stop = this.nodes + budget
    while (!this.done && this.nodes < stop) {
      if (this.selecting) {
        const v = this.select()
        if (v < 0) {
          const solution: Record<string, V> = {}
          for (let i = 0; i < this.n; i++) solution[this.name(i)] = this.problem.domains[i]![this.value[i]!]!
          this.solutions.push(solution)
          if (this.solutions.length >= this.settings.limit) {
            this.done = true
            return
          }
          this.selecting = false
          if (pauseOnSolution) return
          continue
        }
        this.stack.push({ v, next: 0, mark: this.trailVar.length })
        this.selecting = false
      }
      const frame = this.stack[this.stack.length - 1]!
      this.unassign(frame.v)
      this.undo(frame.mark)
      const live = this.live[frame.v]!
      let k = frame.next
      while (k < live.length && live[k] === 0) k++
      if (k >= live.length) {
        this.stack.pop()
        if (this.stack.length === 0) {
          this.done = true
          this.exhausted = true
        }
        continue
      }
      frame.next = k + 1
      this.nodes++
      this.assign(frame.v, k)
      if (this.propagate(frame.v, frame.mark)) this.selecting = true
      else this.backtracks++
    }
  }

  stats(): Stats {
    return { nodes: this.nodes, backtracks: this.backtracks }
  }
}

/** Drives a search to its end in slices, yielding to the runtime between slices. */
const drive = <V>(search: Search<V>, pauseOnSolution: boolean, onSlice?: Effect.Effect<void>) =>
  Effect.gen(function*() {
    while (!search.done) {
      search.run(search.settings.yieldEvery, pauseOnSolution)
      if (search.failure !== undefined) return yield* Effect.fail(search.failure)
      if (onSlice !== undefined) yield* onSlice
      if (!search.done) yield* Effect.yieldNow()
    }
  })

// ---------------------------------------------------------------------------------------------
// Public solving functions
// ---------------------------------------------------------------------------------------------

/**
 * Solves a problem: all solutions, or the first `limit` in search order. Interruptible between
 * slices of `yieldEvery` nodes.
 */
export const solve = <V>(
  problem: Problem<V>,
  options: SolveOptions = {}
): Effect.Effect<Result<V>, ValidationError | ConstraintPredicateError> =>
  Effect.gen(function*() {
    const settings = yield* validateOptions(options)
    const search = new Search(problem, settings)
    yield* drive(search, false)
    return { solutions: search.solutions, exhausted: search.exhausted, stats: search.stats() }
  }).pipe(Effect.withSpan("Constraints.solve"))

/** The first solution in search order, or `NoSolutionError` when there is none. */
export const solveOne = <V>(
  problem: Problem<V>,
  options: Omit<SolveOptions, "limit"> = {}
): Effect.Effect<Assignment<V>, ValidationError | ConstraintPredicateError | NoSolutionError> =>
  Effect.flatMap(solve(problem, { ...options, limit: 1 }), (result) => {
    const first = result.solutions[0]
    return first === undefined ? Effect.fail(new NoSolutionError({ nodes: result.stats.nodes })) : Effect.succeed(first)
  })

/**
 * Splits the live domain of one variable (`splitOn`, default the root's MRV choice) into
 * min(`workers`, values) contiguous parts of near-equal size and solves them concurrently, each in a fiber of a scope. Without `limit` the
 * solutions are the single-worker set, listed part by part; with `limit`, the remaining workers
 * are interrupted as soon as `limit` solutions exist in total (which ones are kept then depends
 * on which workers found them first).
 */
export const solveDistributed = <V>(
  problem: Problem<V>,
  options: DistributedOptions
): Effect.Effect<DistributedResult<V>, ValidationError | ConstraintPredicateError> =>
  Effect.gen(function*() {
    const settings = yield* validateOptions(options)
    const { workers } = options
    if (!(Number.isInteger(workers) && workers >= 1)) {
      return yield* Effect.fail(
        new ValidationError({ field: "workers", reason: `must be an integer ≥ 1, got ${String(workers)}` })
      )
    }
    // The split variable and its live values after root propagation.
    const probe = new Search(problem, settings)
    const consistent = probe.root()
    if (probe.failure !== undefined) return yield* Effect.fail(probe.failure)
    let split: number
    if (options.splitOn !== undefined) {
      split = problem.names.indexOf(options.splitOn)
      if (split < 0) {
        return yield* Effect.fail(
          new ValidationError({ field: "splitOn", reason: `unknown variable ${JSON.stringify(options.splitOn)}` })
        )
      }
    } else split = probe.select()
    const splitName = problem.names[split]!
    if (!consistent) {
      return { solutions: [], exhausted: true, stats: probe.stats(), splitOn: splitName, workers: [] }
    }
    const liveValues: Array<number> = []
    probe.live[split]!.forEach((on, k) => {
      if (on === 1) liveValues.push(k)
    })
    // min(workers, values) contiguous parts whose sizes differ by at most one.
    const partCount = Math.min(workers, liveValues.length)
    const parts: Array<ReadonlyArray<number>> = []
    for (let i = 0, start = 0; i < partCount; i++) {
      const end = start + Math.floor(liveValues.length / partCount) + (i < liveValues.length % partCount ? 1 : 0)
      parts.push(liveValues.slice(start, end))
      start = end
    }
    const searches = parts.map((part) => new Search(problem, settings, new Map([[split, new Set(part)]])))

    const limited = Number.isFinite(settings.limit)
    const found = yield* Ref.make(0)
    const enough = yield* Deferred.make<void>()
    const solvePart = (search: Search<V>) => {
      let reported = 0
      const report = Effect.suspend(() => {
        const fresh = search.solutions.length - reported
        reported = search.solutions.length
        if (fresh === 0) return Effect.void
        return Ref.updateAndGet(found, (n) => n + fresh).pipe(
          Effect.flatMap((total) => total >= settings.limit ? Deferred.succeed(enough, undefined) : Effect.void)
        )
      })
      return drive(search, limited, limited ? report : undefined)
    }
    const all = Effect.forEach(searches, solvePart, { concurrency: workers, discard: true })
    yield* Effect.scoped(Effect.gen(function*() {
      const fiber = yield* Effect.forkScoped(all)
      // Whichever comes first: enough solutions (closing the scope stops the rest) or every worker done.
      yield* limited ? Effect.raceFirst(Deferred.await(enough), Fiber.join(fiber)) : Fiber.join(fiber)
    }))
    const solutions = searches.flatMap((s) => s.solutions).slice(0, settings.limit)
    const exhausted = searches.every((s) => s.exhausted) && solutions.length === searches.reduce(
      (n, s) => n + s.solutions.length,
      0
    )
    return {
      solutions,
      exhausted,
      stats: {
        nodes: searches.reduce((n, s) => n + s.nodes, 0),
        backtracks: searches.reduce((n, s) => n + s.backtracks, 0)
      },
      splitOn: splitName,
      workers: searches.map((s, i) => ({
        ...s.stats(),
        values: parts[i]!.map((k) => problem.domains[split]![k]!),
        solutions: s.solutions.length
      }))
    }
  }).pipe(Effect.withSpan("Constraints.solveDistributed"))

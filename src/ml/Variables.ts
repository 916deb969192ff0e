/**
 * Typed, shared variables (hyperparameters and the like) grouped in namespaced spaces, with
 * enforced domains, atomic multi-variable updates, bounded history, change streams, coordination
 * of proposals from several agents, and analyses that compute real values.
 *
 * Guarantees:
 * - Namespaces: a `Space` owns its variables; two spaces may both define `learning_rate` and
 *   never see each other. Redefining a name fails with `AlreadyExistsError`, an unknown name
 *   with `NotFoundError`.
 * - Domains are enforced on every write: continuous (inclusive bounds, linear or log scale),
 *   integer (bounds and step), discrete (a list of values), structured (a `Schema`), plus named
 *   custom predicates. A bad value fails with `ConstraintViolationError { variable, constraint,
 *   value, reason }` and changes nothing.
 * - All-or-nothing: state lives in STM (`TRef` per variable, `TMap` of variables). `updateMany`
 *   commits every value or none; coupled constraints across variables (`constrain`) are checked
 *   inside the same transaction as the write, so no interleaving of concurrent updates can
 *   commit a state that breaks them.
 * - History: a ring buffer per variable (default capacity 100) of `{ value, at, seq, source }`,
 *   written in the same transaction; `at` comes from `Clock`, `seq` is the space's commit
 *   number. The defining value is the first entry (source "define").
 * - Changes: each variable has a `TPubSub`; the event is published inside the committing
 *   transaction, so every subscriber sees exactly one `{ previous, current }` per successful
 *   update, in commit order, and none for a rejected one. Subscriptions are scoped.
 * - Coordination reducers (consensus, vote, leader, average) are pure and total: empty input is
 *   `NoProposalsError` (never nil), ties are broken by a documented rule, ragged vectors are a
 *   `ValidationError`. The chosen value then goes through the normal validated atomic update.
 * - Analyses are pure (`convergence`, `optimalRange`, `correlation` with a t-test p-value,
 *   `sensitivity` by finite differences) and also available on a space's live history.
 *
 * Predicates given to `constrain` run inside STM transactions: keep them pure and fast (a
 * transaction may run them more than once). A predicate that throws counts as a violation.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Equal from "effect/Equal"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as STM from "effect/STM"
import * as Stream from "effect/Stream"
import * as TArray from "effect/TArray"
import * as TMap from "effect/TMap"
import * as TPubSub from "effect/TPubSub"
import * as TRef from "effect/TRef"
import { AlreadyExistsError, NotFoundError, Tagged, ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** A value was rejected by a variable's domain, one of its constraints, or a coupled constraint. */
export class ConstraintViolationError extends Tagged("ConstraintViolationError", {
  category: "validation",
  severity: "medium",
  message: "Constraint violated"
})<{
  readonly space: string
  /** The variable (for a coupled constraint: its variables, comma-separated). */
  readonly variable: string
  /** "type", "finite", "bounds", "integer", "step", "values", "schema", or a constraint's name. */
  readonly constraint: string
  /** The rejected value (for a coupled constraint: the values it was checked on, by name). */
  readonly value: unknown
  readonly reason: string
}> {
  override describe() {
    return `Variable "${this.variable}" in space "${this.space}" violates "${this.constraint}": ${this.reason}`
  }
}

/** The proposals disagree, so the consensus strategy cannot pick a value. */
export class NoConsensusError extends Tagged("NoConsensusError", {
  category: "permanent",
  severity: "low",
  message: "No consensus"
})<{
  /** The distinct values proposed, in order of first appearance. */
  readonly values: ReadonlyArray<unknown>
}> {
  override describe() {
    return `No consensus among ${this.values.length} distinct proposed values`
  }
}

/** A coordination strategy was given no proposals. */
export class NoProposalsError extends Tagged("NoProposalsError", {
  category: "validation",
  severity: "low",
  message: "No proposals"
})<{
  readonly strategy: string
}> {
  override describe() {
    return `No proposals to coordinate (strategy ${this.strategy})`
  }
}

/** An analysis needs more data points than it was given. */
export class InsufficientDataError extends Tagged("InsufficientDataError", {
  category: "validation",
  severity: "low",
  message: "Insufficient data"
})<{
  readonly analysis: string
  readonly required: number
  readonly got: number
}> {
  override describe() {
    return `${this.analysis} needs at least ${this.required} data points, got ${this.got}`
  }
}

// ---------------------------------------------------------------------------------------------
// Definitions
// ---------------------------------------------------------------------------------------------

/** How a continuous variable is explored: evenly, or evenly in its logarithm. */
export type Scale = "linear" | "log"

/** A named predicate a value must satisfy. */
export interface Constraint<A> {
  readonly name: string
  predicate(value: A): boolean
}

/** The set of values a variable may take. */
export type Domain<A> =
  | { readonly kind: "continuous"; readonly min: number; readonly max: number; readonly scale: Scale }
  | { readonly kind: "integer"; readonly min: number; readonly max: number; readonly step: number }
  | { readonly kind: "discrete"; readonly values: ReadonlyArray<A> }
  | { readonly kind: "structured"; readonly check: (value: unknown) => string | undefined }

/** What a variable is: its domain, its initial value and its extra constraints. */
export interface Definition<A> {
  readonly domain: Domain<A>
  readonly initial: A
  readonly constraints: ReadonlyArray<Constraint<A>>
}

/**
 * A real number in [min, max] (inclusive; default (−∞, ∞)). Log scale needs 0 < min ≤ max < ∞.
 * The default initial value is the midpoint (linear, finite bounds), the geometric mean (log),
 * or 0 clamped into the bounds (infinite bounds).
 */
export const continuous = (options: {
  readonly min?: number
  readonly max?: number
  readonly scale?: Scale
  readonly initial?: number
  readonly constraints?: ReadonlyArray<Constraint<number>>
} = {}): Definition<number> => {
  const min = options.min ?? -Infinity
  const max = options.max ?? Infinity
  const scale = options.scale ?? "linear"
  // √min·√max and min/2 + max/2 neither overflow nor underflow where √(min·max) and (min + max)/2
  // would (e.g. [1e200, 1e300] or [1e308, 1.7e308]); the clamp absorbs the last ulp of rounding.
  const initial = options.initial ??
    (scale === "log"
      ? Math.min(Math.max(Math.sqrt(min) * Math.sqrt(max), min), max)
      : Number.isFinite(min) && Number.isFinite(max)
      ? Math.min(Math.max(min / 2 + max / 2, min), max)
      : Math.min(Math.max(0, min), max))
  return { domain: { kind: "continuous", min, max, scale }, initial, constraints: options.constraints ?? [] }
}

/** An integer in [min, max] on the grid min, min + step, … (step default 1). Initial default: min. */
export const integer = (options: {
  readonly min: number
  readonly max: number
  readonly step?: number
  readonly initial?: number
  readonly constraints?: ReadonlyArray<Constraint<number>>
}): Definition<number> => ({
  domain: { kind: "integer", min: options.min, max: options.max, step: options.step ?? 1 },
  initial: options.initial ?? options.min,
  constraints: options.constraints ?? []
})

/** One of `values` (compared structurally). Initial default: the first value. */
export const discrete = <const V>(
  values: ReadonlyArray<V>,
  options: { readonly initial?: V; readonly constraints?: ReadonlyArray<Constraint<V>> } = {}
): Definition<V> => ({
  domain: { kind: "discrete", values },
  initial: options.initial !== undefined ? options.initial : (values[0] as V),
  constraints: options.constraints ?? []
})

/** Any value of the schema's type (validated on the type side; the schema needs no services). */
export const structured = <A, I>(
  schema: Schema.Schema<A, I, never>,
  options: { readonly initial: A; readonly constraints?: ReadonlyArray<Constraint<A>> }
): Definition<A> => {
  const validate = Schema.validateEither(schema)
  return {
    domain: {
      kind: "structured",
      check: (value) => Either.match(validate(value), { onLeft: (e) => e.message, onRight: () => undefined })
    },
    initial: options.initial,
    constraints: options.constraints ?? []
  }
}

/** Why a value is rejected. */
interface Violation {
  readonly constraint: string
  readonly reason: string
}

const isPlainObject = (u: unknown): u is Readonly<Record<string, unknown>> => {
  if (typeof u !== "object" || u === null) return false
  const proto = Object.getPrototypeOf(u)
  return proto === Object.prototype || proto === null
}

/**
 * Structural equality used for discrete values and proposals: arrays and plain objects by
 * content, everything else by `Equal.equals` (so `Data` values compare structurally too).
 */
export const sameValue = (a: unknown, b: unknown): boolean => {
  if (Object.is(a, b)) return true
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => sameValue(x, b[i]))
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const ka = Object.keys(a)
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && sameValue(a[k], b[k]))
  }
  return Equal.equals(a, b)
}

const show = (u: unknown): string => {
  if (typeof u === "number") return String(u)
  try {
    return JSON.stringify(u) ?? String(u)
  } catch {
    return String(u)
  }
}

const checkDomain = (domain: Domain<unknown>, value: unknown): Violation | undefined => {
  switch (domain.kind) {
    case "continuous":
    case "integer": {
      if (typeof value !== "number" || Number.isNaN(value)) {
        return { constraint: "type", reason: `must be a number, got ${show(value)}` }
      }
      if (!Number.isFinite(value)) return { constraint: "finite", reason: `must be finite, got ${value}` }
      if (domain.kind === "integer" && !Number.isInteger(value)) {
        return { constraint: "integer", reason: `must be an integer, got ${value}` }
      }
      if (value < domain.min || value > domain.max) {
        return { constraint: "bounds", reason: `must be within [${domain.min}, ${domain.max}], got ${value}` }
      }
      if (domain.kind === "integer" && (value - domain.min) % domain.step !== 0) {
        return { constraint: "step", reason: `must be ${domain.min} + k·${domain.step}, got ${value}` }
      }
      return undefined
    }
    case "discrete":
      return domain.values.some((v) => sameValue(v, value))
        ? undefined
        : { constraint: "values", reason: `must be one of ${show(domain.values)}, got ${show(value)}` }
    case "structured": {
      const reason = domain.check(value)
      return reason === undefined ? undefined : { constraint: "schema", reason }
    }
  }
}

const runPredicate = (name: string, test: () => boolean): Violation | undefined => {
  try {
    return test() ? undefined : { constraint: name, reason: "predicate returned false" }
  } catch (error) {
    return { constraint: name, reason: `predicate threw: ${error instanceof Error ? error.message : show(error)}` }
  }
}

/** Why `value` is not allowed by `definition`, or undefined when it is. Pure. */
export const violation = <A>(definition: Definition<A>, value: unknown): Violation | undefined => {
  const domainViolation = checkDomain(definition.domain, value)
  if (domainViolation !== undefined) return domainViolation
  for (const c of definition.constraints) {
    const v = runPredicate(c.name, () => c.predicate(value as A))
    if (v !== undefined) return v
  }
  return undefined
}

const validateDefinition = <A>(definition: Definition<A>): Either.Either<void, ValidationError> => {
  const d = definition.domain
  // Hand-built definitions (plain JS, deserialised) must not slip past the checks below: an
  // unknown kind would accept every value, and a missing `check` or `constraints` would die later.
  const kind = Validation.oneOf("kind", d.kind, ["continuous", "integer", "discrete", "structured"])
  if (Either.isLeft(kind)) return kind
  if (d.kind === "structured" && typeof d.check !== "function") return Validation.invalid("check", "must be a function")
  if (!Array.isArray(definition.constraints)) return Validation.invalid("constraints", "must be an array")
  const notNaN = (field: string, x: unknown) =>
    typeof x === "number" && !Number.isNaN(x)
      ? Either.void
      : Validation.invalid(field, `must be a number, got ${show(x)}`)
  switch (d.kind) {
    case "continuous": {
      for (const [field, x] of [["min", d.min], ["max", d.max]] as const) {
        const r = notNaN(field, x)
        if (Either.isLeft(r)) return r
      }
      if (d.min > d.max) return Validation.invalid("max", `must be ≥ min (${d.min}), got ${d.max}`)
      const scale = Validation.oneOf("scale", d.scale, ["linear", "log"])
      if (Either.isLeft(scale)) return scale
      if (d.scale === "log" && !(d.min > 0 && Number.isFinite(d.max))) {
        return Validation.invalid("min", `log scale needs 0 < min ≤ max < ∞, got [${d.min}, ${d.max}]`)
      }
      break
    }
    case "integer": {
      for (const [field, x] of [["min", d.min], ["max", d.max]] as const) {
        const r = Validation.int(field, x)
        if (Either.isLeft(r)) return r
      }
      if (d.min > d.max) return Validation.invalid("max", `must be ≥ min (${d.min}), got ${d.max}`)
      const step = Validation.positiveInt("step", d.step)
      if (Either.isLeft(step)) return step
      break
    }
    case "discrete": {
      if (!Array.isArray(d.values) || d.values.length === 0) return Validation.invalid("values", "must be a non-empty array")
      for (let i = 1; i < d.values.length; i++) {
        if (d.values.slice(0, i).some((v) => sameValue(v, d.values[i]))) {
          return Validation.invalid(`values[${i}]`, `duplicate value ${show(d.values[i])}`)
        }
      }
      break
    }
    case "structured":
      break
  }
  const names = new Set<string>()
  for (const [i, c] of definition.constraints.entries()) {
    const name = Validation.nonEmptyString(`constraints[${i}].name`, c.name)
    if (Either.isLeft(name)) return name
    if (names.has(c.name)) return Validation.invalid(`constraints[${i}].name`, `duplicate constraint "${c.name}"`)
    names.add(c.name)
    if (typeof c.predicate !== "function") return Validation.invalid(`constraints[${i}].predicate`, "must be a function")
  }
  const bad = violation(definition, definition.initial)
  return bad === undefined
    ? Either.void
    : Validation.invalid("initial", `violates "${bad.constraint}": ${bad.reason}`)
}

// ---------------------------------------------------------------------------------------------
// Coordination: pure reducers
// ---------------------------------------------------------------------------------------------

/** One agent's proposed value. */
export interface Proposal<A> {
  readonly agent: string
  readonly value: A
}

/**
 * How proposals become one value:
 * - `"consensus"`: all proposals equal (structurally) → that value, else `NoConsensusError`;
 * - `"vote"`: plurality; a tie goes to the value proposed first (earliest first appearance);
 * - `"leader"`: the first proposal; `{ leader: "a1" }`: agent a1's proposal (`NotFoundError` if
 *   it did not propose);
 * - `"average"`: the mean of numbers, or the element-wise mean of equal-length numeric arrays.
 * Every strategy fails with `NoProposalsError` on an empty list.
 */
export type Strategy = "consensus" | "vote" | "leader" | "average" | { readonly leader: string }

/** The errors of coordination itself (before the update). */
export type CoordinationError = NoConsensusError | NoProposalsError | NotFoundError | ValidationError

const strategyName = (strategy: Strategy): string => typeof strategy === "string" ? strategy : `leader(${strategy.leader})`

/** Proposals must be an array of `{ agent, value }` with distinct, non-empty agent ids. */
const validateProposals = (proposals: ReadonlyArray<Proposal<unknown>>): Either.Either<void, ValidationError> => {
  if (!Array.isArray(proposals)) return Validation.invalid("proposals", "must be an array")
  const seen = new Set<string>()
  for (const [i, p] of proposals.entries()) {
    if (!isPlainObject(p)) return Validation.invalid(`proposals[${i}]`, "must be { agent, value }")
    const agent = Validation.nonEmptyString(`proposals[${i}].agent`, p.agent)
    if (Either.isLeft(agent)) return agent
    if (seen.has(agent.right)) return Validation.invalid(`proposals[${i}].agent`, `agent "${agent.right}" proposed twice`)
    seen.add(agent.right)
  }
  return Either.void
}

const validateStrategy = (strategy: Strategy): Either.Either<void, ValidationError> =>
  typeof strategy === "object" && strategy !== null
    ? Either.map(Validation.nonEmptyString("strategy.leader", strategy.leader), () => undefined)
    : Either.map(Validation.oneOf("strategy", strategy, ["consensus", "vote", "leader", "average"]), () => undefined)

/** Distinct values with their vote counts, in order of first appearance. */
export const tally = <A>(
  proposals: ReadonlyArray<Proposal<A>>
): Array<{ readonly value: A; readonly votes: number; readonly firstIndex: number }> => {
  const out: Array<{ value: A; votes: number; firstIndex: number }> = []
  proposals.forEach((p, i) => {
    const entry = out.find((e) => sameValue(e.value, p.value))
    if (entry === undefined) out.push({ value: p.value, votes: 1, firstIndex: i })
    else entry.votes++
  })
  return out
}

/** All proposals equal → that value; otherwise `NoConsensusError`; none → `NoProposalsError`. */
export const consensus = <A>(
  proposals: ReadonlyArray<Proposal<A>>
): Either.Either<A, NoConsensusError | NoProposalsError | ValidationError> =>
  Either.gen(function*() {
    yield* validateProposals(proposals)
    const first = proposals[0]
    if (first === undefined) return yield* Either.left(new NoProposalsError({ strategy: "consensus" }))
    const distinct = tally(proposals)
    if (distinct.length > 1) return yield* Either.left(new NoConsensusError({ values: distinct.map((d) => d.value) }))
    return first.value
  })

/** Plurality vote; ties go to the value whose first proposal came earliest. */
export const vote = <A>(proposals: ReadonlyArray<Proposal<A>>): Either.Either<A, NoProposalsError | ValidationError> =>
  Either.gen(function*() {
    yield* validateProposals(proposals)
    let best: { readonly value: A; readonly votes: number } | undefined
    // `tally` lists values by first appearance and only a strictly larger count replaces the
    // leader, so among tied values the earliest first proposal wins.
    for (const entry of tally(proposals)) if (best === undefined || entry.votes > best.votes) best = entry
    if (best === undefined) return yield* Either.left(new NoProposalsError({ strategy: "vote" }))
    return best.value
  })

/** The first proposal, or the named leader's. */
export const leader = <A>(
  proposals: ReadonlyArray<Proposal<A>>,
  name?: string
): Either.Either<A, NoProposalsError | NotFoundError | ValidationError> =>
  Either.gen(function*() {
    yield* validateProposals(proposals)
    if (proposals.length === 0) {
      return yield* Either.left(new NoProposalsError({ strategy: name === undefined ? "leader" : `leader(${name})` }))
    }
    const chosen = name === undefined ? proposals[0] : proposals.find((p) => p.agent === name)
    if (chosen === undefined) return yield* Either.left(new NotFoundError({ resource: "proposal from leader", key: name ?? "" }))
    return chosen.value
  })

/** Neumaier-compensated sum: exact to a few ulps even for many terms of mixed size. */
const sum = (xs: ReadonlyArray<number>): number => {
  let s = 0
  let c = 0
  for (const x of xs) {
    const t = s + x
    c += Math.abs(s) >= Math.abs(x) ? (s - t) + x : (x - t) + s
    s = t
  }
  return s + c
}

const mean = (xs: ReadonlyArray<number>): number => sum(xs) / xs.length

const isFiniteNumber = (u: unknown): u is number => typeof u === "number" && Number.isFinite(u)

const averageImpl = (
  proposals: ReadonlyArray<Proposal<unknown>>
): Either.Either<number | ReadonlyArray<number>, NoProposalsError | ValidationError> =>
  Either.gen(function*() {
    yield* validateProposals(proposals)
    const first = proposals[0]
    if (first === undefined) return yield* Either.left(new NoProposalsError({ strategy: "average" }))
    if (typeof first.value === "number") {
      const xs: Array<number> = []
      for (const [i, p] of proposals.entries()) {
        if (!isFiniteNumber(p.value)) {
          return yield* Validation.invalid(`proposals[${i}].value`, `must be a finite number, got ${show(p.value)}`)
        }
        xs.push(p.value)
      }
      return mean(xs)
    }
    if (Array.isArray(first.value)) {
      const width = first.value.length
      const columns: Array<Array<number>> = Array.from({ length: width }, () => [])
      for (const [i, p] of proposals.entries()) {
        if (!Array.isArray(p.value)) {
          return yield* Validation.invalid(`proposals[${i}].value`, "must be an array like the first proposal")
        }
        const row: ReadonlyArray<unknown> = p.value
        if (row.length !== width) {
          return yield* Validation.invalid(`proposals[${i}].value`, `has length ${row.length}, expected ${width} (ragged proposals)`)
        }
        for (const [j, x] of row.entries()) {
          if (!isFiniteNumber(x)) {
            return yield* Validation.invalid(`proposals[${i}].value[${j}]`, `must be a finite number, got ${show(x)}`)
          }
          columns[j]!.push(x)
        }
      }
      return columns.map(mean) as ReadonlyArray<number>
    }
    return yield* Validation.invalid("proposals[0].value", `average needs numbers or numeric arrays, got ${show(first.value)}`)
  })

/**
 * The mean of numeric proposals, or the element-wise mean of equal-length numeric arrays.
 * Mixed, non-numeric, non-finite or ragged input is a `ValidationError` naming the proposal.
 */
export function average(proposals: ReadonlyArray<Proposal<number>>): Either.Either<number, NoProposalsError | ValidationError>
export function average(
  proposals: ReadonlyArray<Proposal<ReadonlyArray<number>>>
): Either.Either<ReadonlyArray<number>, NoProposalsError | ValidationError>
export function average(
  proposals: ReadonlyArray<Proposal<unknown>>
): Either.Either<number | ReadonlyArray<number>, NoProposalsError | ValidationError>
export function average(
  proposals: ReadonlyArray<Proposal<unknown>>
): Either.Either<number | ReadonlyArray<number>, NoProposalsError | ValidationError> {
  return averageImpl(proposals)
}

/** Applies a strategy to proposals (see `Strategy`). Pure. */
export const resolve = <A>(
  proposals: ReadonlyArray<Proposal<A>>,
  strategy: Strategy
): Either.Either<A | number | ReadonlyArray<number>, CoordinationError> =>
  Either.flatMap(validateStrategy(strategy), (): Either.Either<A | number | ReadonlyArray<number>, CoordinationError> => {
    if (typeof strategy === "object") return leader(proposals, strategy.leader)
    switch (strategy) {
      case "consensus":
        return consensus(proposals)
      case "vote":
        return vote(proposals)
      case "leader":
        return leader(proposals)
      case "average":
        return averageImpl(proposals)
    }
  })

// ---------------------------------------------------------------------------------------------
// Analyses: pure functions
// ---------------------------------------------------------------------------------------------

const checkFinite = (field: string, xs: ReadonlyArray<number>): Either.Either<void, ValidationError> => {
  if (!Array.isArray(xs)) return Validation.invalid(field, "must be an array of numbers")
  for (const [i, x] of xs.entries()) {
    if (!isFiniteNumber(x)) return Validation.invalid(`${field}[${i}]`, `must be a finite number, got ${show(x)}`)
  }
  return Either.void
}

/** Population variance (divides by n). */
export const variance = (xs: ReadonlyArray<number>): number => {
  if (xs.length === 0) return 0
  const m = mean(xs)
  return sum(xs.map((x) => (x - m) ** 2)) / xs.length
}

/** The median (mean of the two middle values for an even count). */
export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** Result of `convergence`. Variances are undefined when there was not enough data. */
export interface ConvergenceReport {
  readonly converged: boolean
  /** "stable" when both windows have the same variance (e.g. both constant). */
  readonly trend: "converging" | "diverging" | "stable" | "insufficient_data"
  /** 1 − var_recent / (var_older + 1e-4), clamped to [0, 1]; 0 with insufficient data. */
  readonly stability: number
  readonly recentVariance: number | undefined
  readonly olderVariance: number | undefined
  /** How many values were given. */
  readonly points: number
}

/**
 * Has a series settled? `values` are newest first (as `history` returns them). With fewer than
 * 2·window values (default window 5, so 10) the report says "insufficient_data". Otherwise,
 * with var_recent and var_older the population variances of the newest `window` values and of
 * the `window` before them: converged ⇔ var_recent < 0.5·var_older, or var_recent = 0 (a
 * constant recent window has settled, which the original missed when both windows were flat).
 */
export const convergence = (
  values: ReadonlyArray<number>,
  options: { readonly window?: number } = {}
): Either.Either<ConvergenceReport, ValidationError> =>
  Either.gen(function*() {
    const window = yield* Validation.optional(options.window, 5, (w) => Validation.positiveInt("window", w))
    yield* checkFinite("values", values)
    if (values.length < 2 * window) {
      return {
        converged: false,
        trend: "insufficient_data",
        stability: 0,
        recentVariance: undefined,
        olderVariance: undefined,
        points: values.length
      } as const
    }
    const recentVariance = variance(values.slice(0, window))
    const olderVariance = variance(values.slice(window, 2 * window))
    const stability = Math.min(1, Math.max(0, 1 - recentVariance / (olderVariance + 1e-4)))
    return {
      converged: recentVariance < 0.5 * olderVariance || recentVariance === 0,
      trend: recentVariance < olderVariance ? "converging" : recentVariance > olderVariance ? "diverging" : "stable",
      stability,
      recentVariance,
      olderVariance,
      points: values.length
    } as const
  })

/** Result of `optimalRange`. */
export interface OptimalRange {
  /** Suggested bounds: the observed range widened on each side, clipped to `bounds`. */
  readonly min: number
  readonly max: number
  /** The median of the observations (geometric for log scale). */
  readonly sweetSpot: number
  readonly observedMin: number
  readonly observedMax: number
  readonly points: number
}

/**
 * A suggested search range from observed values: [lo − w·width, hi + w·width] where lo/hi are the
 * observed extremes, width = hi − lo and w = `widen` (default 0.2). This fixes the original's
 * `min·0.8, max·1.2`, which shrank the range for negative values. When all values are equal,
 * the range is widened by w·|value| instead (sign-correct). With `scale: "log"` (positive values
 * only) the same is done on log10 values. The result is clipped to `bounds` when given.
 */
export const optimalRange = (
  values: ReadonlyArray<number>,
  options: { readonly widen?: number; readonly scale?: Scale; readonly bounds?: readonly [number, number] } = {}
): Either.Either<OptimalRange, InsufficientDataError | ValidationError> =>
  Either.gen(function*() {
    const widen = yield* Validation.optional(options.widen, 0.2, (w) => Validation.number("widen", w, { min: 0 }))
    const scale = yield* Validation.optional(options.scale, "linear", (s) => Validation.oneOf("scale", s, ["linear", "log"]))
    yield* checkFinite("values", values)
    if (values.length === 0) return yield* Either.left(new InsufficientDataError({ analysis: "optimalRange", required: 1, got: 0 }))
    if (scale === "log" && values.some((v) => v <= 0)) return yield* Validation.invalid("values", "log scale needs positive values")
    const to = scale === "log" ? Math.log10 : (x: number) => x
    const from = scale === "log" ? (x: number) => 10 ** x : (x: number) => x
    const xs = values.map(to)
    const lo = Math.min(...xs)
    const hi = Math.max(...xs)
    const margin = hi > lo ? widen * (hi - lo) : widen * Math.abs(lo)
    let min = from(lo - margin)
    let max = from(hi + margin)
    if (options.bounds !== undefined) {
      min = Math.max(min, options.bounds[0])
      max = Math.min(max, options.bounds[1])
    }
    return {
      min,
      max,
      sweetSpot: from(median(xs)),
      observedMin: from(lo),
      observedMax: from(hi),
      points: values.length
    }
  })

const LANCZOS = [
  0.99999999999980993,
  676.5203681218851,
  -1259.1392167224028,
  771.32342877765313,
  -176.61502916214059,
  12.507343278686905,
  -0.13857109526572012,
  9.9843695780195716e-6,
  1.5056327351493116e-7
]

/** ln Γ(z) for z > 0 (Lanczos, g = 7; ~15 significant digits). */
export const logGamma = (z: number): number => {
  if (z < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * z)) - logGamma(1 - z)
  const x0 = z - 1
  let acc = LANCZOS[0]!
  for (let i = 1; i < LANCZOS.length; i++) acc += LANCZOS[i]! / (x0 + i)
  const t = x0 + 7.5
  return 0.5 * Math.log(2 * Math.PI) + (x0 + 0.5) * Math.log(t) - t + Math.log(acc)
}

/** Continued fraction for the incomplete beta (modified Lentz). */
const betaContinuedFraction = (a: number, b: number, x: number): number => {
  const tiny = 1e-300
  const qab = a + b
  const qap = a + 1
  const qam = a - 1
  let c = 1
  let d = 1 - (qab * x) / qap
  if (Math.abs(d) < tiny) d = tiny
  d = 1 / d
  let h = d
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2))
    d = 1 + aa * d
    if (Math.abs(d) < tiny) d = tiny
    c = 1 + aa / c
    if (Math.abs(c) < tiny) c = tiny
    d = 1 / d
    h *= d * c
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2))
    d = 1 + aa * d
    if (Math.abs(d) < tiny) d = tiny
    c = 1 + aa / c
    if (Math.abs(c) < tiny) c = tiny
    d = 1 / d
    const delta = d * c
    h *= delta
    if (Math.abs(delta - 1) < 1e-16) break
  }
  return h
}

/** The regularised incomplete beta function I_x(a, b), for a, b > 0 and x in [0, 1]. */
export const regularizedIncompleteBeta = (a: number, b: number, x: number): number => {
  if (x <= 0) return 0
  if (x >= 1) return 1
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x))
  // The continued fraction converges fast for x < (a + 1)/(a + b + 2); use the symmetry otherwise.
  return x < (a + 1) / (a + b + 2)
    ? (front * betaContinuedFraction(a, b, x)) / a
    : 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b
}

/** Two-sided p-value of Student's t statistic with `df` degrees of freedom: P(|T| ≥ |t|). */
export const studentTTwoSided = (t: number, df: number): number => {
  if (!Number.isFinite(t)) return 0
  return regularizedIncompleteBeta(df / 2, 0.5, df / (df + t * t))
}

/** Result of `correlation`. */
export interface Correlation {
  /** Pearson's r in [−1, 1]. */
  readonly r: number
  /** Two-sided p-value of H0: ρ = 0 (t = r·√((n−2)/(1−r²)), n − 2 degrees of freedom). */
  readonly pValue: number
  readonly t: number
  readonly n: number
  /** pValue < alpha (default 0.05). */
  readonly significant: boolean
  /** |r| < 0.1 none, < 0.4 weak, < 0.7 moderate, else strong. */
  readonly strength: "none" | "weak" | "moderate" | "strong"
  readonly direction: "positive" | "negative" | "none"
}

/**
 * Pearson correlation of paired samples with its two-sided significance. Needs n ≥ 3 pairs
 * (`InsufficientDataError`), equal lengths and non-constant series (`ValidationError`: r is
 * undefined when a series has zero variance).
 */
export const correlation = (
  xs: ReadonlyArray<number>,
  ys: ReadonlyArray<number>,
  options: { readonly alpha?: number } = {}
): Either.Either<Correlation, InsufficientDataError | ValidationError> =>
  Either.gen(function*() {
    const alpha = yield* Validation.optional(options.alpha, 0.05, (a) => Validation.ratio("alpha", a, { exclusiveZero: true }))
    yield* checkFinite("xs", xs)
    yield* checkFinite("ys", ys)
    if (xs.length !== ys.length) return yield* Validation.invalid("ys", `must have the length of xs (${xs.length}), got ${ys.length}`)
    const n = xs.length
    if (n < 3) return yield* Either.left(new InsufficientDataError({ analysis: "correlation", required: 3, got: n }))
    const mx = mean(xs)
    const my = mean(ys)
    const dx = xs.map((x) => x - mx)
    const dy = ys.map((y) => y - my)
    const sxx = sum(dx.map((d) => d * d))
    const syy = sum(dy.map((d) => d * d))
    if (sxx === 0) return yield* Validation.invalid("xs", "has zero variance: correlation is undefined")
    if (syy === 0) return yield* Validation.invalid("ys", "has zero variance: correlation is undefined")
    const sxy = sum(dx.map((d, i) => d * dy[i]!))
    const r = Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)))
    const df = n - 2
    const t = Math.abs(r) === 1 ? Math.sign(r) * Infinity : r * Math.sqrt(df / (1 - r * r))
    const pValue = studentTTwoSided(t, df)
    const abs = Math.abs(r)
    return {
      r,
      pValue,
      t,
      n,
      significant: pValue < alpha,
      strength: abs < 0.1 ? "none" : abs < 0.4 ? "weak" : abs < 0.7 ? "moderate" : "strong",
      direction: r > 0 ? "positive" : r < 0 ? "negative" : "none"
    } as const
  })

/** The range of one numeric input for `sensitivity`. */
export interface Axis {
  /** Default −∞. */
  readonly min?: number
  /** Default +∞. */
  readonly max?: number
  /**
   * Log-scale axes are probed at x·e^(±δ), δ = relativeStep·ln(max/min), and differentiated in
   * ln x: ∂f/∂x = (f(x·e^δ) − f(x·e^−δ)) / (2δ·x).
   */
  readonly scale?: Scale
  /** An integer axis on this grid: probes move by whole steps (at least one). */
  readonly step?: number
}

/** Options of `sensitivity`. */
export interface SensitivityOptions {
  /** Probe distance as a fraction of the axis width (default 1e-3; of max(|x|, 1) when unbounded). */
  readonly relativeStep?: number
  /** Which way the objective should go (default "minimize"); decides `direction`. */
  readonly goal?: "minimize" | "maximize"
  /** |derivative| at or below this is "none" (default 1e-9). */
  readonly tolerance?: number
}

/** The sensitivity of the objective to one input. */
export interface VariableSensitivity {
  readonly variable: string
  readonly value: number
  /** ∂f/∂x by central difference (one-sided at a bound). */
  readonly derivative: number
  /** Normalised impact ∂f/∂x · x / f(x): % change of f per % change of x (undefined if f(x) = 0). */
  readonly elasticity: number | undefined
  /** |∂f/∂x| · axis width (· max(|x|, 1) when unbounded): first-order swing of f over the range. */
  readonly impact: number
  /** impact / Σ impacts over the analysed inputs (0 when all are 0). */
  readonly share: number
  /** Which way to move this input to improve the objective. */
  readonly direction: "increase" | "decrease" | "none"
  /** The two points the derivative was taken between. */
  readonly probes: readonly [number, number]
}

/** Result of `sensitivity`. */
export interface SensitivityReport {
  /** f at the point. */
  readonly objective: number
  readonly goal: "minimize" | "maximize"
  /** One entry per axis, in the axes' key order. */
  readonly variables: ReadonlyArray<VariableSensitivity>
}

interface ProbePlan {
  readonly variable: string
  readonly value: number
  readonly lo: number
  readonly hi: number
  readonly width: number
  /** Differentiate in ln x (central in log space), then divide by x. */
  readonly log: boolean
}

interface SensitivitySettings {
  readonly relativeStep: number
  readonly goal: "minimize" | "maximize"
  readonly tolerance: number
}

const sensitivitySettings = (options: SensitivityOptions): Either.Either<SensitivitySettings, ValidationError> =>
  Either.gen(function*() {
    const relativeStep = yield* Validation.optional(
      options.relativeStep,
      1e-3,
      (s) => Validation.number("relativeStep", s, { min: 0, max: 0.5, minExclusive: true })
    )
    const goal = yield* Validation.optional(options.goal, "minimize", (g) => Validation.oneOf("goal", g, ["minimize", "maximize"]))
    const tolerance = yield* Validation.optional(options.tolerance, 1e-9, (t) => Validation.number("tolerance", t, { min: 0 }))
    return { relativeStep, goal, tolerance }
  })

const planProbes = (
  point: Readonly<Record<string, number>>,
  axes: Readonly<Record<string, Axis>>,
  relativeStep: number
): Either.Either<ReadonlyArray<ProbePlan>, ValidationError> =>
  Either.gen(function*() {
    const plans: Array<ProbePlan> = []
    for (const [variable, axis] of Object.entries(axes)) {
      const x = yield* Validation.number(`point.${variable}`, point[variable])
      const min = axis.min ?? -Infinity
      const max = axis.max ?? Infinity
      if (Number.isNaN(min) || Number.isNaN(max) || min > max) {
        return yield* Validation.invalid(`axes.${variable}`, `needs min ≤ max, got [${min}, ${max}]`)
      }
      if (x < min || x > max) return yield* Validation.invalid(`point.${variable}`, `must be within [${min}, ${max}], got ${x}`)
      const finite = Number.isFinite(min) && Number.isFinite(max)
      const width = finite ? max - min : Math.max(Math.abs(x), 1)
      let lo: number
      let hi: number
      if (axis.step !== undefined) {
        const step = yield* Validation.positiveInt(`axes.${variable}.step`, axis.step)
        const h = Math.max(step, Math.round((relativeStep * width) / step) * step)
        const gridMax = Number.isFinite(min) && Number.isFinite(max) ? min + Math.floor((max - min) / step) * step : max
        lo = Math.max(min, x - h)
        hi = Math.min(gridMax, x + h)
      } else if (axis.scale === "log") {
        if (!(min > 0 && Number.isFinite(max))) {
          return yield* Validation.invalid(`axes.${variable}`, `log scale needs 0 < min ≤ max < ∞`)
        }
        const delta = relativeStep * Math.log(max / min)
        lo = Math.max(min, x * Math.exp(-delta))
        hi = Math.min(max, x * Math.exp(delta))
      } else {
        const h = relativeStep * width
        lo = Math.max(min, x - h)
        hi = Math.min(max, x + h)
      }
      plans.push({ variable, value: x, lo, hi, width, log: axis.scale === "log" && axis.step === undefined })
    }
    return plans
  })

const finishSensitivity = (
  settings: SensitivitySettings,
  base: number,
  plans: ReadonlyArray<ProbePlan>,
  evaluations: ReadonlyArray<readonly [number, number]>
): Either.Either<SensitivityReport, ValidationError> => {
  if (!Number.isFinite(base)) return Validation.invalid("objective", `returned ${base} at the point`)
  const partial: Array<Omit<VariableSensitivity, "share">> = []
  for (const [i, plan] of plans.entries()) {
    const [fLo, fHi] = evaluations[i]!
    if (!Number.isFinite(fLo) || !Number.isFinite(fHi)) {
      return Validation.invalid("objective", `returned a non-finite value while probing ${plan.variable}`)
    }
    const derivative = !(plan.hi > plan.lo)
      ? 0
      : plan.log
      ? (fHi - fLo) / (Math.log(plan.hi) - Math.log(plan.lo)) / plan.value
      : (fHi - fLo) / (plan.hi - plan.lo)
    const flat = Math.abs(derivative) <= settings.tolerance
    const improveUp = settings.goal === "minimize" ? derivative < 0 : derivative > 0
    partial.push({
      variable: plan.variable,
      value: plan.value,
      derivative,
      elasticity: base === 0 ? undefined : (derivative * plan.value) / base,
      impact: Math.abs(derivative) * plan.width,
      direction: flat ? "none" : improveUp ? "increase" : "decrease",
      probes: [plan.lo, plan.hi]
    })
  }
  const total = sum(partial.map((p) => p.impact))
  return Either.right({
    objective: base,
    goal: settings.goal,
    variables: partial.map((p) => ({ ...p, share: total > 0 ? p.impact / total : 0 }))
  })
}

/**
 * Local sensitivity of `objective` at `point` to each input named in `axes`: a central
 * finite-difference derivative with the probe distance relative to the axis (see `Axis`,
 * `SensitivityOptions`), one-sided where a bound is in the way. Evaluates the objective
 * 1 + 2·(number of axes) times.
 */
export const sensitivity = (
  objective: (point: Readonly<Record<string, number>>) => number,
  point: Readonly<Record<string, number>>,
  axes: Readonly<Record<string, Axis>>,
  options: SensitivityOptions = {}
): Either.Either<SensitivityReport, ValidationError> =>
  Either.gen(function*() {
    const settings = yield* sensitivitySettings(options)
    const plans = yield* planProbes(point, axes, settings.relativeStep)
    const base = objective(point)
    const evaluations = plans.map((p) =>
      [objective({ ...point, [p.variable]: p.lo }), objective({ ...point, [p.variable]: p.hi })] as const
    )
    return yield* finishSensitivity(settings, base, plans, evaluations)
  })

// ---------------------------------------------------------------------------------------------
// Spaces
// ---------------------------------------------------------------------------------------------

/** One entry of a variable's history. */
export interface HistoryEntry<A> {
  readonly value: A
  /** Clock time of the commit, epoch milliseconds. */
  readonly at: number
  /** The space's commit number: entries written by one `updateMany` share it. */
  readonly seq: number
  /** Who wrote it: "define", "coordinate:<strategy>", or the caller's `source`. */
  readonly source: string | undefined
}

/** A successful update, as seen by subscribers. */
export interface Change<A> {
  readonly variable: string
  readonly previous: A
  readonly current: A
  readonly at: number
  readonly seq: number
  readonly source: string | undefined
}

/** Options of an update. */
export interface UpdateOptions {
  /** Recorded in the history and the change event. */
  readonly source?: string
}

/** Options of `makeSpace`. */
export interface SpaceOptions {
  /** History entries kept per variable (default 100). */
  readonly historyCapacity?: number
}

/** A typed handle on one variable of a space. */
export interface Variable<A> {
  readonly name: string
  readonly space: string
  readonly definition: Definition<A>
  /** The current value. */
  readonly get: Effect.Effect<A>
  /** Validates and writes `value` (domain, constraints, coupled constraints), atomically. */
  update(value: A, options?: UpdateOptions): Effect.Effect<void, ConstraintViolationError | ValidationError>
  /** Newest first, at most `limit` (default: all kept). */
  history(limit?: number): Effect.Effect<ReadonlyArray<HistoryEntry<A>>, ValidationError>
  /** Subscribes when the stream starts; one event per successful update after that. */
  readonly changes: Stream.Stream<Change<A>>
  /** Subscribes now (in the scope) and returns the stream of later changes. */
  readonly subscribe: Effect.Effect<Stream.Stream<Change<A>>, never, Scope.Scope>
  /** Resolves the proposals by `strategy`, then updates; returns the value written. */
  coordinate(
    proposals: ReadonlyArray<Proposal<A>>,
    strategy: Strategy,
    options?: UpdateOptions
  ): Effect.Effect<A, CoordinationError | ConstraintViolationError>
}

/** The values of a tuple of variable handles. */
export type ValuesOf<Vs extends ReadonlyArray<Variable<unknown>>> = {
  readonly [K in keyof Vs]: Vs[K] extends Variable<infer A> ? A : never
}

/** A namespaced collection of variables. */
export interface Space {
  readonly name: string
  /** Defines a variable; `AlreadyExistsError` if the name is taken in this space. */
  define<A>(
    name: string,
    definition: Definition<A>,
    options?: { readonly historyCapacity?: number }
  ): Effect.Effect<Variable<A>, AlreadyExistsError | ValidationError>
  /** The handle of a defined variable. */
  variable(name: string): Effect.Effect<Variable<unknown>, NotFoundError>
  /** The names of the defined variables, in definition order. */
  readonly names: Effect.Effect<ReadonlyArray<string>>
  /** Every current value, read in one transaction. */
  readonly snapshot: Effect.Effect<Readonly<Record<string, unknown>>>
  get(name: string): Effect.Effect<unknown, NotFoundError>
  update(name: string, value: unknown, options?: UpdateOptions): Effect.Effect<
    void,
    NotFoundError | ConstraintViolationError | ValidationError
  >
  /** All or nothing: every value is validated, then all are written in one transaction. */
  updateMany(values: Readonly<Record<string, unknown>>, options?: UpdateOptions): Effect.Effect<
    void,
    NotFoundError | ConstraintViolationError | ValidationError
  >
  /**
   * Adds a coupled constraint over some variables, checked inside every transaction that writes
   * one of them. The predicate receives their values in the order given. Fails if the current
   * values already violate it (`ConstraintViolationError`), if a variable is unknown
   * (`NotFoundError`) or if the constraint name is taken (`AlreadyExistsError`).
   */
  constrain<const Vs extends ReadonlyArray<Variable<unknown>>>(
    name: string,
    variables: Vs,
    predicate: (values: ValuesOf<Vs>) => boolean
  ): Effect.Effect<void, AlreadyExistsError | NotFoundError | ConstraintViolationError | ValidationError>
  constrain(
    name: string,
    variables: ReadonlyArray<string>,
    predicate: (values: ReadonlyArray<unknown>) => boolean
  ): Effect.Effect<void, AlreadyExistsError | NotFoundError | ConstraintViolationError | ValidationError>
  history(name: string, limit?: number): Effect.Effect<ReadonlyArray<HistoryEntry<unknown>>, NotFoundError | ValidationError>
  changes(name: string): Stream.Stream<Change<unknown>, NotFoundError>
  subscribe(name: string): Effect.Effect<Stream.Stream<Change<unknown>>, NotFoundError, Scope.Scope>
  coordinate(
    name: string,
    proposals: ReadonlyArray<Proposal<unknown>>,
    strategy: Strategy,
    options?: UpdateOptions
  ): Effect.Effect<unknown, NotFoundError | CoordinationError | ConstraintViolationError>
  /** `convergence` over the variable's numeric history (newest first). */
  convergence(name: string, options?: { readonly window?: number }): Effect.Effect<
    ConvergenceReport,
    NotFoundError | ValidationError
  >
  /** `optimalRange` over the variable's history, on its scale, clipped to its bounds. */
  optimalRange(name: string, options?: { readonly widen?: number }): Effect.Effect<
    OptimalRange,
    NotFoundError | InsufficientDataError | ValidationError
  >
  /**
   * `correlation` between two numeric variables over their joint states: after each commit that
   * wrote either of them (as far back as both histories reach), one pair (value of a, value of b).
   */
  correlation(a: string, b: string, options?: { readonly alpha?: number }): Effect.Effect<
    Correlation,
    NotFoundError | InsufficientDataError | ValidationError
  >
  /**
   * `sensitivity` of an (effectful) objective at the current values, to the numeric variables
   * named (default: every continuous and integer variable), each probed within its bounds and on
   * its scale or step. The objective receives the whole snapshot with one variable moved.
   */
  sensitivity<E, R>(
    objective: (values: Readonly<Record<string, unknown>>) => Effect.Effect<number, E, R>,
    options?: SensitivityOptions & {
      readonly variables?: ReadonlyArray<string>
      /** Objective evaluations run at once (default 1). */
      readonly concurrency?: number
    }
  ): Effect.Effect<SensitivityReport, E | NotFoundError | ValidationError, R>
}

interface Cell {
  readonly name: string
  readonly definition: Definition<unknown>
  readonly value: TRef.TRef<unknown>
  readonly ring: TArray.TArray<HistoryEntry<unknown> | undefined>
  /** Entries ever written; the next goes to slot written % capacity. */
  readonly written: TRef.TRef<number>
  readonly changes: TPubSub.TPubSub<Change<unknown>>
}

interface Coupling {
  readonly name: string
  readonly cells: ReadonlyArray<Cell>
  readonly predicate: (values: ReadonlyArray<unknown>) => boolean
}

/** The cell behind each handle, so that handles from another space are recognised. */
const cellOfHandle = new WeakMap<object, Cell>()

const readHistory = (cell: Cell, limit: number): STM.STM<Array<HistoryEntry<unknown>>> =>
  STM.gen(function*() {
    const written = yield* TRef.get(cell.written)
    const capacity = TArray.size(cell.ring)
    const n = Math.min(written, capacity, limit)
    const out: Array<HistoryEntry<unknown>> = []
    for (let k = 0; k < n; k++) {
      const entry = yield* TArray.get(cell.ring, (written - 1 - k) % capacity)
      if (entry !== undefined) out.push(entry)
    }
    return out
  })

const record = (cell: Cell, entry: HistoryEntry<unknown>): STM.STM<void> =>
  STM.gen(function*() {
    const written = yield* TRef.get(cell.written)
    yield* TArray.update(cell.ring, written % TArray.size(cell.ring), () => entry)
    yield* TRef.set(cell.written, written + 1)
  })

const axisOf = (domain: Domain<unknown>): Axis | undefined =>
  domain.kind === "continuous"
    ? { min: domain.min, max: domain.max, scale: domain.scale }
    : domain.kind === "integer"
    ? { min: domain.min, max: domain.max, step: domain.step }
    : undefined

/** Pairs (a, b) after each commit that wrote a or b, from both histories (oldest first). */
const jointSamples = (
  a: ReadonlyArray<HistoryEntry<unknown>>,
  b: ReadonlyArray<HistoryEntry<unknown>>
): { readonly xs: Array<unknown>; readonly ys: Array<unknown> } => {
  const events = [
    ...a.map((e) => ({ seq: e.seq, side: 0, value: e.value })),
    ...b.map((e) => ({ seq: e.seq, side: 1, value: e.value }))
  ].sort((p, q) => p.seq - q.seq || p.side - q.side)
  const xs: Array<unknown> = []
  const ys: Array<unknown> = []
  const current: [unknown, unknown] = [undefined, undefined]
  const known = [false, false]
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!
    current[e.side] = e.value
    known[e.side] = true
    const lastOfCommit = i + 1 === events.length || events[i + 1]!.seq !== e.seq
    if (lastOfCommit && known[0] && known[1]) {
      xs.push(current[0])
      ys.push(current[1])
    }
  }
  return { xs, ys }
}

const numeric = (space: string, variable: string, values: ReadonlyArray<unknown>): Either.Either<Array<number>, ValidationError> => {
  const out: Array<number> = []
  for (const value of values) {
    if (typeof value !== "number") return Validation.invalid("variable", `"${variable}" in space "${space}" is not numeric`)
    out.push(value)
  }
  return Either.right(out)
}

/**
 * Makes an empty space. `name` (default "space") labels errors; isolation comes from the
 * space itself, not its name: two spaces with the same name are still separate.
 */
export const makeSpace = (name: string = "space", options: SpaceOptions = {}): Effect.Effect<Space, ValidationError> =>
  Effect.gen(function*() {
    yield* Validation.nonEmptyString("name", name)
    const defaultCapacity = yield* Validation.optional(
      options.historyCapacity,
      100,
      (n) => Validation.positiveInt("historyCapacity", n)
    )
    const cells = yield* STM.commit(TMap.empty<string, Cell>())
    const order = yield* STM.commit(TRef.make<ReadonlyArray<string>>([]))
    const couplings = yield* STM.commit(TRef.make<ReadonlyArray<Coupling>>([]))
    const version = yield* STM.commit(TRef.make(0))

    const notFound = (key: string) => new NotFoundError({ resource: `variable in space "${name}"`, key })

    const lookup = (key: string): Effect.Effect<Cell, NotFoundError> =>
      Effect.flatMap(
        STM.commit(TMap.get(cells, key)),
        Option.match({ onNone: () => Effect.fail(notFound(key)), onSome: Effect.succeed })
      )

    const rejected = (variable: string, constraint: string, value: unknown, reason: string) =>
      new ConstraintViolationError({ space: name, variable, constraint, value, reason })

    /** The transaction: coupled constraints, then every write, history entry and event. */
    const commit = (
      updates: ReadonlyArray<readonly [Cell, unknown]>,
      at: number,
      source: string | undefined
    ): STM.STM<void, ConstraintViolationError> =>
      STM.gen(function*() {
        const pending = new Map<Cell, unknown>(updates)
        for (const coupling of yield* TRef.get(couplings)) {
          if (!coupling.cells.some((c) => pending.has(c))) continue
          const values: Array<unknown> = []
          for (const c of coupling.cells) values.push(pending.has(c) ? pending.get(c) : yield* TRef.get(c.value))
          const bad = runPredicate(coupling.name, () => coupling.predicate(values))
          if (bad !== undefined) {
            const byName = Object.fromEntries(coupling.cells.map((c, i) => [c.name, values[i]]))
            return yield* STM.fail(
              rejected(coupling.cells.map((c) => c.name).join(", "), bad.constraint, byName, bad.reason)
            )
          }
        }
        const seq = yield* TRef.updateAndGet(version, (n) => n + 1)
        for (const [cell, value] of updates) {
          const previous = yield* TRef.getAndSet(cell.value, value)
          yield* record(cell, { value, at, seq, source })
          yield* TPubSub.publish(cell.changes, { variable: cell.name, previous, current: value, at, seq, source })
        }
      })

    /** Validates each value against its own definition (outside STM), then commits all. */
    const write = (
      updates: ReadonlyArray<readonly [Cell, unknown]>,
      options: UpdateOptions | undefined
    ): Effect.Effect<void, ConstraintViolationError | ValidationError> =>
      Effect.gen(function*() {
        const source = options?.source
        if (source !== undefined) yield* Validation.nonEmptyString("source", source)
        for (const [cell, value] of updates) {
          const bad = violation(cell.definition, value)
          if (bad !== undefined) return yield* Effect.fail(rejected(cell.name, bad.constraint, value, bad.reason))
        }
        if (updates.length === 0) return
        const at = yield* Clock.currentTimeMillis
        yield* STM.commit(commit(updates, at, source))
      })

    const subscribeCell = (cell: Cell): Effect.Effect<Stream.Stream<Change<unknown>>, never, Scope.Scope> =>
      Effect.map(TPubSub.subscribeScoped(cell.changes), Stream.fromTQueue)

    const historyOf = (cell: Cell, limit: number | undefined) =>
      Effect.gen(function*() {
        const n = yield* Validation.optional(limit, Number.MAX_SAFE_INTEGER, (l) => Validation.positiveInt("limit", l))
        return yield* STM.commit(readHistory(cell, n))
      })

    const coordinateCell = (
      cell: Cell,
      proposals: ReadonlyArray<Proposal<unknown>>,
      strategy: Strategy,
      options: UpdateOptions | undefined
    ) =>
      Effect.gen(function*() {
        const value = yield* resolve(proposals, strategy)
        yield* write([[cell, value]], { source: options?.source ?? `coordinate:${strategyName(strategy)}` })
        return value
      })

    const handle = <A>(cell: Cell): Variable<A> => {
      const variable: Variable<A> = {
        name: cell.name,
        space: name,
        definition: cell.definition as Definition<A>,
        get: STM.commit(TRef.get(cell.value)) as Effect.Effect<A>,
        update: (value, options) => write([[cell, value]], options),
        history: (limit) => historyOf(cell, limit) as Effect.Effect<Array<HistoryEntry<A>>, ValidationError>,
        changes: Stream.unwrapScoped(subscribeCell(cell)) as Stream.Stream<Change<A>>,
        subscribe: subscribeCell(cell) as Effect.Effect<Stream.Stream<Change<A>>, never, Scope.Scope>,
        // The value passed the variable's own validation before it was written, so it is an A.
        coordinate: (proposals, strategy, options) =>
          coordinateCell(cell, proposals, strategy, options) as Effect.Effect<A, CoordinationError | ConstraintViolationError>
      }
      cellOfHandle.set(variable, cell)
      return variable
    }

    const define = <A>(
      key: string,
      definition: Definition<A>,
      defineOptions: { readonly historyCapacity?: number } = {}
    ): Effect.Effect<Variable<A>, AlreadyExistsError | ValidationError> =>
      Effect.gen(function*() {
        yield* Validation.nonEmptyString("name", key)
        if (!isPlainObject(definition) || !isPlainObject(definition.domain)) {
          return yield* Validation.invalid("definition", "must be made by continuous, integer, discrete or structured")
        }
        yield* validateDefinition(definition)
        const capacity = yield* Validation.optional(
          defineOptions.historyCapacity,
          defaultCapacity,
          (n) => Validation.positiveInt("historyCapacity", n)
        )
        const at = yield* Clock.currentTimeMillis
        const cell = yield* STM.commit(STM.gen(function*() {
          if (Option.isSome(yield* TMap.get(cells, key))) {
            return yield* STM.fail(new AlreadyExistsError({ resource: `variable in space "${name}"`, key }))
          }
          const seq = yield* TRef.updateAndGet(version, (n) => n + 1)
          const first: HistoryEntry<unknown> = { value: definition.initial, at, seq, source: "define" }
          const cell: Cell = {
            name: key,
            definition: definition as Definition<unknown>,
            value: yield* TRef.make<unknown>(definition.initial),
            ring: yield* TArray.fromIterable<HistoryEntry<unknown> | undefined>(
              Array.from({ length: capacity }, (_, i) => i === 0 ? first : undefined)
            ),
            written: yield* TRef.make(1),
            changes: yield* TPubSub.unbounded<Change<unknown>>()
          }
          yield* TMap.set(cells, key, cell)
          yield* TRef.update(order, (names) => [...names, key])
          return cell
        }))
        return handle<A>(cell)
      })

    const constrain = (
      constraintName: string,
      variables: ReadonlyArray<string | Variable<unknown>>,
      predicate: (values: ReadonlyArray<unknown>) => boolean
    ): Effect.Effect<void, AlreadyExistsError | NotFoundError | ConstraintViolationError | ValidationError> =>
      Effect.gen(function*() {
        yield* Validation.nonEmptyString("name", constraintName)
        if (!Array.isArray(variables) || variables.length === 0) {
          return yield* Validation.invalid("variables", "must be a non-empty array")
        }
        if (typeof predicate !== "function") return yield* Validation.invalid("predicate", "must be a function")
        const resolved: Array<Cell> = []
        for (const [i, v] of variables.entries()) {
          const cell = typeof v === "string" ? yield* lookup(v) : cellOfHandle.get(v)
          const ours = cell !== undefined && Option.getOrUndefined(yield* STM.commit(TMap.get(cells, cell.name))) === cell
          if (cell === undefined || !ours) return yield* Validation.invalid(`variables[${i}]`, "is a variable of another space")
          if (resolved.includes(cell)) return yield* Validation.invalid(`variables[${i}]`, `"${cell.name}" is listed twice`)
          resolved.push(cell)
        }
        const coupling: Coupling = { name: constraintName, cells: resolved, predicate }
        yield* STM.commit(STM.gen(function*() {
          const existing = yield* TRef.get(couplings)
          if (existing.some((c) => c.name === constraintName)) {
            return yield* STM.fail(new AlreadyExistsError({ resource: `constraint in space "${name}"`, key: constraintName }))
          }
          const values: Array<unknown> = []
          for (const c of resolved) values.push(yield* TRef.get(c.value))
          const bad = runPredicate(constraintName, () => predicate(values))
          if (bad !== undefined) {
            const byName = Object.fromEntries(resolved.map((c, i) => [c.name, values[i]]))
            return yield* STM.fail(rejected(resolved.map((c) => c.name).join(", "), bad.constraint, byName, bad.reason))
          }
          yield* TRef.set(couplings, [...existing, coupling])
        }))
      })

    const snapshot: Effect.Effect<Readonly<Record<string, unknown>>> = STM.commit(STM.gen(function*() {
      const out: Record<string, unknown> = {}
      for (const key of yield* TRef.get(order)) {
        const found = yield* TMap.get(cells, key)
        if (Option.isSome(found)) out[key] = yield* TRef.get(found.value.value)
      }
      return out
    }))

    const space: Space = {
      name,
      define,
      variable: (key) => Effect.map(lookup(key), (cell) => handle<unknown>(cell)),
      names: STM.commit(TRef.get(order)),
      snapshot,
      get: (key) => Effect.flatMap(lookup(key), (cell) => STM.commit(TRef.get(cell.value))),
      update: (key, value, options) => Effect.flatMap(lookup(key), (cell) => write([[cell, value]], options)),
      updateMany: (values, options) =>
        Effect.gen(function*() {
          if (!isPlainObject(values)) return yield* Validation.invalid("values", "must be a record of name → value")
          const updates: Array<readonly [Cell, unknown]> = []
          for (const [key, value] of Object.entries(values)) updates.push([yield* lookup(key), value])
          yield* write(updates, options)
        }),
      constrain: constrain as Space["constrain"],
      history: (key, limit) => Effect.flatMap(lookup(key), (cell) => historyOf(cell, limit)),
      changes: (key) => Stream.unwrapScoped(Effect.flatMap(lookup(key), subscribeCell)),
      subscribe: (key) => Effect.flatMap(lookup(key), subscribeCell),
      coordinate: (key, proposals, strategy, options) =>
        Effect.flatMap(lookup(key), (cell) => coordinateCell(cell, proposals, strategy, options)),
      convergence: (key, options) =>
        Effect.gen(function*() {
          const cell = yield* lookup(key)
          const entries = yield* STM.commit(readHistory(cell, Number.MAX_SAFE_INTEGER))
          const values = yield* numeric(name, key, entries.map((e) => e.value))
          return yield* convergence(values, options)
        }),
      optimalRange: (key, options) =>
        Effect.gen(function*() {
          const cell = yield* lookup(key)
          const entries = yield* STM.commit(readHistory(cell, Number.MAX_SAFE_INTEGER))
          const values = yield* numeric(name, key, entries.map((e) => e.value))
          const axis = axisOf(cell.definition.domain)
          return yield* optimalRange(values, {
            ...options,
            ...(axis?.scale === "log" ? { scale: "log" as const } : {}),
            ...(axis === undefined ? {} : { bounds: [axis.min ?? -Infinity, axis.max ?? Infinity] as const })
          })
        }),
      correlation: (a, b, options) =>
        Effect.gen(function*() {
          const cellA = yield* lookup(a)
          const cellB = yield* lookup(b)
          const [histA, histB] = yield* STM.commit(
            STM.all([readHistory(cellA, Number.MAX_SAFE_INTEGER), readHistory(cellB, Number.MAX_SAFE_INTEGER)])
          )
          const joint = jointSamples(histA, histB)
          const xs = yield* numeric(name, a, joint.xs)
          const ys = yield* numeric(name, b, joint.ys)
          return yield* correlation(xs, ys, options)
        }),
      sensitivity: (objective, options = {}) =>
        Effect.gen(function*() {
          const settings = yield* sensitivitySettings(options)
          const concurrency = yield* Validation.optional(options.concurrency, 1, (c) => Validation.positiveInt("concurrency", c))
          const keys = options.variables ?? (yield* STM.commit(TRef.get(order)))
          const axes: Record<string, Axis> = {}
          for (const [i, key] of keys.entries()) {
            const axis = axisOf((yield* lookup(key)).definition.domain)
            if (axis !== undefined) axes[key] = axis
            else if (options.variables !== undefined) {
              return yield* Validation.invalid(`variables[${i}]`, `"${key}" is not a continuous or integer variable`)
            }
          }
          const values = yield* snapshot
          const point: Record<string, number> = {}
          for (const key of Object.keys(axes)) point[key] = values[key] as number
          const plans = yield* planProbes(point, axes, settings.relativeStep)
          const base = yield* objective(values)
          const evaluations = yield* Effect.forEach(
            plans,
            (p) =>
              Effect.all([objective({ ...values, [p.variable]: p.lo }), objective({ ...values, [p.variable]: p.hi })]),
            { concurrency }
          )
          return yield* finishSensitivity(settings, base, plans, evaluations)
        })
    }
    return space
  })

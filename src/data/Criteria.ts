/**
 * Criteria: the query language of the repositories and the agent registry (the original's
 * `{path, value, op}` match specs, with the semantics its tests intended and none of its
 * accidents).
 *
 * A criterion is `{ path, op, value }`: `path` is a non-empty list of keys into nested data,
 * `op` one of `eq`, `neq`, `gt`, `lt`, `gte`, `lte`, `in`, `not_in`. Criteria combine with
 * `and`, `or` and `not` groups; a list of criteria means all of them; an empty list matches
 * everything.
 *
 * Semantics (the same in memory and in SQL: the stores run one shared test suite):
 * - A field is the value at `path`; a missing field and `null` are the same: absent.
 * - `eq v`: the field equals `v` (same type: `1` is not `"1"`), or the field is a list
 *   containing `v`. `neq` is its negation (so an absent field matches `neq`).
 * - `in [v…]`: the field equals one of the values, or is a list sharing one with them.
 *   `not_in` is its negation (no overlap; an absent field matches).
 * - `gt`, `gte`, `lt`, `lte` compare numbers with numbers and strings with strings (by code
 *   point, as SQL's binary collation does); an absent field, a list, or a field of the other
 *   type never matches (the original let an absent field pass `gte`).
 * - Values are strings, finite numbers or booleans (`in`/`not_in`: a non-empty list of them;
 *   comparisons: a string or a number).
 *
 * `validate` checks untrusted input by the rules of `CriteriaSchema` (the Schema of the
 * language, for decoding criteria from the outside), failing with a `ValidationError` whose
 * `field` names the offending criterion (`criteria.and.1.value`). `predicate` compiles criteria to a plain function; `plan` picks an
 * index for an `eq`/`in` criterion on an indexed path (the original never used its indexes).
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { ValidationError } from "../errors/FoundationError.js"

// ---------------------------------------------------------------------------------------------
// The language
// ---------------------------------------------------------------------------------------------

/** The operators. */
export const operators = ["eq", "neq", "gt", "lt", "gte", "lte", "in", "not_in"] as const
export type Operator = typeof operators[number]

/** A value a field is compared with. */
export type Scalar = string | number | boolean

/** A path into nested data: a non-empty list of keys. */
export type Path = readonly [string, ...Array<string>]

/** One condition on one field. */
export interface Criterion {
  readonly path: Path
  readonly op: Operator
  readonly value: Scalar | ReadonlyArray<Scalar>
}

/** All of the criteria. */
export interface And {
  readonly and: ReadonlyArray<Criteria>
}
/** At least one of the criteria. */
export interface Or {
  readonly or: ReadonlyArray<Criteria>
}
/** Not the criteria. */
export interface Not {
  readonly not: Criteria
}

/** A criterion, a group, or a list (all of them). */
export type Criteria = Criterion | And | Or | Not | ReadonlyArray<Criteria>

// ---------------------------------------------------------------------------------------------
// Constructors
// ---------------------------------------------------------------------------------------------

/** `"a.b"` or `["a", "b"]` (use the list form when a key contains a dot). */
export type PathInput = string | Path

const toPath = (path: PathInput): Path => typeof path === "string" ? path.split(".") as unknown as Path : path

/** A criterion; `path` as a dotted string or a list of keys. Checked by `validate`, not here. */
export const where = (path: PathInput, op: Operator, value: Scalar | ReadonlyArray<Scalar>): Criterion => ({
  path: toPath(path),
  op,
  value
})
export const eq = (path: PathInput, value: Scalar): Criterion => where(path, "eq", value)
export const neq = (path: PathInput, value: Scalar): Criterion => where(path, "neq", value)
export const gt = (path: PathInput, value: string | number): Criterion => where(path, "gt", value)
export const gte = (path: PathInput, value: string | number): Criterion => where(path, "gte", value)
export const lt = (path: PathInput, value: string | number): Criterion => where(path, "lt", value)
export const lte = (path: PathInput, value: string | number): Criterion => where(path, "lte", value)
export const isIn = (path: PathInput, values: ReadonlyArray<Scalar>): Criterion => where(path, "in", values)
export const notIn = (path: PathInput, values: ReadonlyArray<Scalar>): Criterion => where(path, "not_in", values)
export const and = (...criteria: ReadonlyArray<Criteria>): And => ({ and: criteria })
export const or = (...criteria: ReadonlyArray<Criteria>): Or => ({ or: criteria })
export const not = (criteria: Criteria): Not => ({ not: criteria })

/** Matches everything. */
export const all: Criteria = []

// ---------------------------------------------------------------------------------------------
// Schema and validation
// ---------------------------------------------------------------------------------------------

const ScalarSchema = Schema.Union(Schema.String, Schema.Finite, Schema.Boolean)

const valueRule = (criterion: { readonly op: Operator; readonly value: unknown }): string | undefined => {
  const value = criterion.value
  switch (criterion.op) {
    case "in":
    case "not_in":
      return Array.isArray(value) && value.length > 0 ? undefined : `"${criterion.op}" takes a non-empty list of values`
    case "eq":
    case "neq":
      return Array.isArray(value) ? `"${criterion.op}" takes one value, not a list (use "in")` : undefined
    default:
      return typeof value === "string" || typeof value === "number"
        ? undefined
        : `"${criterion.op}" compares with a string or a number`
  }
}

/** The Schema of one criterion (the value's shape depends on the operator). */
export const CriterionSchema: Schema.Schema<Criterion> = Schema.Struct({
  path: Schema.NonEmptyArray(Schema.String.pipe(Schema.minLength(1, { message: () => "a path key cannot be empty" }))),
  op: Schema.Literal(...operators),
  value: Schema.Union(ScalarSchema, Schema.Array(ScalarSchema))
}).pipe(
  Schema.filter((c) => {
    const problem = valueRule(c)
    return problem === undefined ? undefined : { path: ["value"], message: problem }
  })
) as unknown as Schema.Schema<Criterion>

/** The Schema of criteria (criteria, groups and lists, nested). */
export const CriteriaSchema: Schema.Schema<Criteria> = Schema.Union(
  CriterionSchema,
  Schema.Struct({ and: Schema.Array(Schema.suspend(() => CriteriaSchema)) }),
  Schema.Struct({ or: Schema.Array(Schema.suspend(() => CriteriaSchema)) }),
  Schema.Struct({ not: Schema.suspend(() => CriteriaSchema) }),
  Schema.Array(Schema.suspend(() => CriteriaSchema))
) as unknown as Schema.Schema<Criteria>

/**
 * Checks untrusted criteria: a `ValidationError` naming the offending criterion (its `field`
 * is a path such as `criteria.and.1.op`), or the criteria. Applies exactly the rules of
 * `CriteriaSchema` (the tests hold the two to agreement), by a direct walk that allocates
 * nothing on valid input and names the innermost offending part (a union's decode error can only
 * name the union).
 */
export const validate = (input: unknown, field = "criteria"): Either.Either<Criteria, ValidationError> => {
  const problem = check(input, field)
  return problem === undefined ? Either.right(input as Criteria) : Either.left(problem)
}

/**
 * The fast structural check (no allocation on valid input); the first problem, or undefined.
 * Same rules as the Schema.
 */
const check = (input: unknown, field: string): ValidationError | undefined => {
  if (Array.isArray(input)) {
    for (let i = 0; i < input.length; i++) {
      const problem = check(input[i], `${field}.${i}`)
      if (problem !== undefined) return problem
    }
    return undefined
  }
  if (typeof input !== "object" || input === null) return invalid(field, "expected a criterion, a group or a list")
  if ("and" in input || "or" in input) {
    const key = "and" in input ? "and" : "or"
    const list = (input as Record<string, unknown>)[key]
    return Array.isArray(list) ? check(list, `${field}.${key}`) : invalid(`${field}.${key}`, "expected a list of criteria")
  }
  if ("not" in input) return check((input as Not).not, `${field}.not`)
  const c = input as { readonly path?: unknown; readonly op?: unknown; readonly value?: unknown }
  if (!Array.isArray(c.path) || c.path.length === 0) return invalid(`${field}.path`, "expected a non-empty list of keys")
  for (const key of c.path) {
    if (typeof key !== "string" || key === "") return invalid(`${field}.path`, "every key must be a non-empty string")
  }
  if (typeof c.op !== "string" || !(operators as ReadonlyArray<string>).includes(c.op)) {
    return invalid(`${field}.op`, `unknown operator ${JSON.stringify(c.op)} (one of ${operators.join(", ")})`)
  }
  const values = Array.isArray(c.value) ? c.value : [c.value]
  for (const v of values) {
    if (!isScalar(v)) return invalid(`${field}.value`, "values are strings, finite numbers or booleans")
  }
  const problem = valueRule(c as { readonly op: Operator; readonly value: unknown })
  return problem === undefined ? undefined : invalid(`${field}.value`, problem)
}

const invalid = (field: string, reason: string): ValidationError => new ValidationError({ field, reason })

const isScalar = (v: unknown): v is Scalar =>
  typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v))

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/** The value at `path` in `data`, or undefined (a `null` reads as undefined: absent). */
export const valueAt = (data: unknown, path: ReadonlyArray<string>): unknown => {
  let current = data
  for (let i = 0; i < path.length; i++) {
    if (typeof current !== "object" || current === null || Array.isArray(current)) return undefined
    current = (current as Record<string, unknown>)[path[i]!]
  }
  return current === null ? undefined : current
}

/** Compares strings by code point (as SQL's binary collation orders UTF-8), not by UTF-16 unit. */
export const compareStrings = (a: string, b: string): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    // Surrogates (0xD800–0xDFFF) encode code points above 0xFFFF: they sort after the rest of
    // the BMP's high range (0xE000–0xFFFF) by code point.
    const sx = x >= 0xd800 && x <= 0xdfff
    const sy = y >= 0xd800 && y <= 0xdfff
    if (sx !== sy) return sx ? 1 : -1
    return x - y
  }
  return a.length - b.length
}

const equalsScalar = (field: unknown, value: Scalar): boolean => {
  if (field === value) return true
  if (!Array.isArray(field)) return false
  for (let i = 0; i < field.length; i++) if (field[i] === value) return true
  return false
}

const compare = (field: unknown, value: string | number): number | undefined => {
  if (typeof value === "number") return typeof field === "number" ? field - value : undefined
  return typeof field === "string" ? compareStrings(field, value) : undefined
}

const compileCriterion = (c: Criterion): (data: unknown) => boolean => {
  const path = c.path
  const single = path.length === 1 ? path[0] : undefined
  const read = single !== undefined
    ? (data: unknown): unknown => {
      if (typeof data !== "object" || data === null) return undefined
      const v = (data as Record<string, unknown>)[single]
      return v === null ? undefined : v
    }
    : (data: unknown): unknown => valueAt(data, path)
  switch (c.op) {
    case "eq": {
      const value = c.value as Scalar
      return (data) => equalsScalar(read(data), value)
    }
    case "neq": {
      const value = c.value as Scalar
      return (data) => !equalsScalar(read(data), value)
    }
    case "in":
    case "not_in": {
      const values = new Set(c.value as ReadonlyArray<Scalar>)
      const matches = (data: unknown): boolean => {
        const field = read(data)
        if (Array.isArray(field)) {
          for (let i = 0; i < field.length; i++) if (values.has(field[i] as Scalar)) return true
          return false
        }
        return values.has(field as Scalar)
      }
      return c.op === "in" ? matches : (data) => !matches(data)
    }
    case "gt": {
      const value = c.value as string | number
      return (data) => (compare(read(data), value) ?? 0) > 0
    }
    case "gte": {
      const value = c.value as string | number
      return (data) => {
        const d = compare(read(data), value)
        return d !== undefined && d >= 0
      }
    }
    case "lt": {
      const value = c.value as string | number
      return (data) => (compare(read(data), value) ?? 0) < 0
    }
    case "lte": {
      const value = c.value as string | number
      return (data) => {
        const d = compare(read(data), value)
        return d !== undefined && d <= 0
      }
    }
  }
}

const always = (): boolean => true

/** True for a single criterion (not a group or a list). */
export const isCriterion = (c: Criteria): c is Criterion => !Array.isArray(c) && "op" in c

const allOf = (parts: ReadonlyArray<(data: unknown) => boolean>): (data: unknown) => boolean => {
  if (parts.length === 0) return always
  if (parts.length === 1) return parts[0]!
  if (parts.length === 2) {
    const [a, b] = parts as [(data: unknown) => boolean, (data: unknown) => boolean]
    return (data) => a(data) && b(data)
  }
  return (data) => {
    for (let i = 0; i < parts.length; i++) if (!parts[i]!(data)) return false
    return true
  }
}

/** Compiles (already validated) criteria to a predicate over the data. */
export const predicate = (criteria: Criteria): (data: unknown) => boolean => {
  if (Array.isArray(criteria)) return allOf((criteria as ReadonlyArray<Criteria>).map(predicate))
  const c = criteria as Exclude<Criteria, ReadonlyArray<Criteria>>
  if ("op" in c) return compileCriterion(c)
  if ("and" in c) return allOf(c.and.map(predicate))
  if ("or" in c) {
    const parts = c.or.map(predicate)
    return (data) => {
      for (let i = 0; i < parts.length; i++) if (parts[i]!(data)) return true
      return false
    }
  }
  const inner = predicate(c.not)
  return (data) => !inner(data)
}

/** Validates and compiles in one step. */
export const compile = (input: unknown, field = "criteria"): Either.Either<(data: unknown) => boolean, ValidationError> =>
  Either.map(validate(input, field), predicate)

// ---------------------------------------------------------------------------------------------
// Indexes and plans
// ---------------------------------------------------------------------------------------------

/** The key of a path in index maps. */
export const pathKey = (path: ReadonlyArray<string>): string => path.length === 1 ? path[0]! : path.join("\u0000")

/** The index key of a scalar (typed: `1` and `"1"` differ). */
export const scalarKey = (value: Scalar): string =>
  typeof value === "string" ? `s${value}` : typeof value === "number" ? `n${value === 0 ? 0 : value}` : value ? "bt" : "bf"

/**
 * The index keys of a field's value: one per element for a list (duplicates removed), one for a
 * scalar, none for an absent field, an object, or a non-finite number.
 */
export const indexKeys = (field: unknown): ReadonlyArray<string> => {
  if (isScalar(field)) return [scalarKey(field)]
  if (!Array.isArray(field)) return []
  const keys = new Set<string>()
  for (const element of field) if (isScalar(element)) keys.add(scalarKey(element))
  return [...keys]
}

/** How to run criteria against indexed data. */
export interface Plan {
  /**
   * Use this index: the rows whose field at `path` has one of `keys` (index keys) are the only
   * candidates; undefined for a full scan.
   */
  readonly index: { readonly path: Path; readonly keys: ReadonlyArray<string> } | undefined
  /** The whole criteria as a predicate (candidates from an index still go through it). */
  readonly matches: (data: unknown) => boolean
}

/**
 * Plans (already validated) criteria: among the top-level criteria that must all hold (a
 * criterion, or the members of a list or an `and`), an `eq` or `in` on an indexed path narrows
 * the candidates; with several, the one with the fewest values (then the first). `indexed`
 * holds `pathKey`s. Anything under `or` or `not` is only filtered.
 */
export const plan = (criteria: Criteria, indexed: ReadonlySet<string>): Plan => {
  let best: Criterion | undefined
  const visit = (c: Criteria): void => {
    if (Array.isArray(c)) return (c as ReadonlyArray<Criteria>).forEach(visit)
    const node = c as Exclude<Criteria, ReadonlyArray<Criteria>>
    if ("and" in node) return node.and.forEach(visit)
    if (!("op" in node) || (node.op !== "eq" && node.op !== "in") || !indexed.has(pathKey(node.path))) return
    const size = node.op === "eq" ? 1 : (node.value as ReadonlyArray<Scalar>).length
    const bestSize = best === undefined ? Infinity : best.op === "eq" ? 1 : (best.value as ReadonlyArray<Scalar>).length
    if (size < bestSize) best = node
  }
  visit(criteria)
  const chosen = best as Criterion | undefined
  return {
    index: chosen === undefined ? undefined : {
      path: chosen.path,
      keys: chosen.op === "eq"
        ? [scalarKey(chosen.value as Scalar)]
        : [...new Set((chosen.value as ReadonlyArray<Scalar>).map(scalarKey))]
    },
    matches: predicate(criteria)
  }
}

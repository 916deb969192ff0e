/**
 * Criteria and sort orders compiled to SQL, for SQLite and PostgreSQL, over the fixed schema of
 * `SqlStore` (`foundation_records.doc` holds the encoded record as JSON).
 *
 * Guarantees:
 * - Nothing that comes from a caller is spliced into the SQL text: every value, every list of
 *   values and every path key is a bound parameter. The text depends only on the *shape* of the
 *   criteria (operators, groups, path lengths, which value types a list holds).
 * - The SQL means exactly what `Criteria.predicate` means on the encoded record, and orders
 *   exactly as `repositoryConfig.comparator` (the shared test suite and a property test hold
 *   both stores to it):
 *   - a field is read by object keys only (an array on the way is absent, as in `valueAt`);
 *     JSON `null` is absent;
 *   - `eq v` is `in [v]`: the field is one of the values (same type; `1` and `1.0` are equal),
 *     or a list with an element among them; `neq`/`not_in` are their negations (every
 *     expression is two-valued, never SQL NULL, so negation is exact);
 *   - comparisons hold only number-with-number and string-with-string (strings by code point:
 *     SQLite's BINARY collation on UTF-8, PostgreSQL's `COLLATE "C"`).
 *
 * SQLite reads fields with `json_type`/`json_extract`/`json_each` and a JSON path
 * (`$."a"."b"`, keys quoted and escaped) passed as a parameter; PostgreSQL with
 * `doc -> $1::text -> $2::text` (the text form of `->` reads object keys only).
 */
import * as Criteria from "../Criteria.js"
import type { Sort } from "./repositoryConfig.js"

/** The SQL dialects of the store. */
export type Dialect = "sqlite" | "pg"

/**
 * Bound parameters, in placeholder order. SQLite placeholders (`?`) are positional, so text must
 * be produced left to right (each `add` appends one); PostgreSQL's are numbered (`$n`) and may
 * be reused.
 */
export class Params {
  readonly values: Array<unknown> = []
  constructor(readonly dialect: Dialect) {}
  /** The placeholder of a new parameter. */
  add(value: unknown): string {
    this.values.push(value)
    return this.dialect === "pg" ? `$${this.values.length}` : "?"
  }
  /**
   * A value used several times: in PostgreSQL one parameter referenced at each use, in SQLite a
   * parameter per use (call the returned function where the placeholder goes).
   */
  shared(value: unknown): () => string {
    if (this.dialect === "sqlite") return () => this.add(value)
    let placeholder: string | undefined
    return () => placeholder ??= this.add(value)
  }
}

/** The JSON path of SQLite for `path`: `$."a"."b"` (keys quoted, `"` and `\` escaped). */
export const sqlitePath = (path: ReadonlyArray<string>): string => {
  let out = "$"
  for (const key of path) out += `."${key.replace(/\\/g, "\\\\").replace(/"/g, "\\\"")}"`
  return out
}

/** The text stored in `foundation_index.path` for an indexed path. */
export const indexPathText = (path: ReadonlyArray<string>): string => JSON.stringify(path)

// ---------------------------------------------------------------------------------------------
// Field access
// ---------------------------------------------------------------------------------------------

/**
 * How SQLite reads one field of `doc`; each call emits its text with its own parameter.
 * `json_type` is `integer`, `real`, `text`, `true`, `false`, `array`, `object`, `null`, or NULL
 * when the path is missing (a quoted key never indexes an array, as in `Criteria.valueAt`).
 */
const sqliteField = (params: Params, path: ReadonlyArray<string>) => {
  const p = params.shared(sqlitePath(path))
  return {
    type: () => `json_type(doc, ${p()})`,
    value: () => `json_extract(doc, ${p()})`,
    each: () => `json_each(doc, ${p()})`
  }
}

/** How PostgreSQL reads one field of `doc`: the jsonb, or NULL when missing (`->` with a text key reads objects only). */
const pgField = (params: Params, path: ReadonlyArray<string>): { readonly read: () => string } => {
  const keys = path.map((key) => params.shared(key))
  return {
    read: () => {
      let out = "(doc"
      for (const key of keys) out += ` -> ${key()}::text`
      return out + ")"
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Criteria
// ---------------------------------------------------------------------------------------------

const truth = (dialect: Dialect, value: boolean): string =>
  dialect === "pg" ? (value ? "TRUE" : "FALSE") : (value ? "1" : "0")

/**
 * The SQL condition of (validated) criteria, over the column `doc` of the current row. Always
 * TRUE or FALSE, never NULL.
 */
export const where = (params: Params, criteria: Criteria.Criteria): string => {
  if (Array.isArray(criteria)) return all(params, criteria as ReadonlyArray<Criteria.Criteria>)
  const c = criteria as Exclude<Criteria.Criteria, ReadonlyArray<Criteria.Criteria>>
  if ("op" in c) return params.dialect === "pg" ? pgCriterion(params, c) : sqliteCriterion(params, c)
  if ("and" in c) return all(params, c.and)
  if ("or" in c) {
    if (c.or.length === 0) return truth(params.dialect, false)
    if (c.or.length === 1) return where(params, c.or[0]!)
    let out = "("
    for (let i = 0; i < c.or.length; i++) out += (i === 0 ? "" : " OR ") + where(params, c.or[i]!)
    return out + ")"
  }
  return `(NOT ${where(params, c.not)})`
}

const all = (params: Params, list: ReadonlyArray<Criteria.Criteria>): string => {
  if (list.length === 0) return truth(params.dialect, true)
  if (list.length === 1) return where(params, list[0]!)
  let out = "("
  for (let i = 0; i < list.length; i++) out += (i === 0 ? "" : " AND ") + where(params, list[i]!)
  return out + ")"
}

/** True when the criteria are empty (match everything): no condition is needed. */
export const isAll = (criteria: Criteria.Criteria): boolean => {
  if (Array.isArray(criteria)) return (criteria as ReadonlyArray<Criteria.Criteria>).every(isAll)
  const c = criteria as Exclude<Criteria.Criteria, ReadonlyArray<Criteria.Criteria>>
  return "and" in c && c.and.every(isAll)
}

const valuesOf = (c: Criteria.Criterion): ReadonlyArray<Criteria.Scalar> =>
  c.op === "in" || c.op === "not_in" ? c.value as ReadonlyArray<Criteria.Scalar> : [c.value as Criteria.Scalar]

const comparison = (op: Criteria.Operator): string => op === "gt" ? ">" : op === "gte" ? ">=" : op === "lt" ? "<" : "<="

const sqliteCriterion = (params: Params, c: Criteria.Criterion): string => {
  const field = sqliteField(params, c.path)
  switch (c.op) {
    case "eq":
    case "in":
    case "neq":
    case "not_in": {
      const values = valuesOf(c)
      const strings: Array<string> = []
      const numbers: Array<number> = []
      let hasTrue = false
      let hasFalse = false
      for (const v of values) {
        if (typeof v === "string") strings.push(v)
        else if (typeof v === "number") numbers.push(v)
        else if (v) hasTrue = true
        else hasFalse = true
      }
      // One scalar (its json type and SQL value) among the values, by type.
      const matchScalar = (type: () => string, value: () => string): string => {
        const parts: Array<string> = []
        if (strings.length > 0) {
          parts.push(`(${type()} = 'text' AND ${value()} IN (SELECT value FROM json_each(${params.add(JSON.stringify(strings))})))`)
        }
        if (numbers.length > 0) {
          parts.push(
            `(${type()} IN ('integer', 'real') AND ${value()} IN (SELECT value FROM json_each(${params.add(JSON.stringify(numbers))})))`
          )
        }
        if (hasTrue) parts.push(`${type()} = 'true'`)
        if (hasFalse) parts.push(`${type()} = 'false'`)
        return parts.join(" OR ")
      }
      const scalar = matchScalar(field.type, field.value)
      const list = `(${field.type()} = 'array' AND EXISTS (SELECT 1 FROM ${field.each()} AS e WHERE ${
        matchScalar(() => "e.type", () => "e.value")
      }))`
      const matches = `COALESCE(${scalar} OR ${list}, 0)`
      return c.op === "eq" || c.op === "in" ? matches : `(NOT ${matches})`
    }
    default: {
      const value = c.value as string | number
      const types = typeof value === "number" ? "IN ('integer', 'real')" : "= 'text'"
      return `COALESCE(${field.type()} ${types} AND ${field.value()} ${comparison(c.op)} ${params.add(value)}, 0)`
    }
  }
}

const pgCriterion = (params: Params, c: Criteria.Criterion): string => {
  const field = pgField(params, c.path)
  switch (c.op) {
    case "eq":
    case "in":
    case "neq":
    case "not_in": {
      // The values as a jsonb array; a scalar matches when the array contains it (jsonb
      // containment of scalars is equality: same type, numbers by value).
      const values = params.shared(JSON.stringify(valuesOf(c)))
      const f = field.read
      const matches = `(CASE WHEN jsonb_typeof(${f()}) = 'array' THEN EXISTS (SELECT 1 FROM jsonb_array_elements(${f()}) AS e(v)` +
        ` WHERE jsonb_typeof(e.v) IN ('string', 'number', 'boolean') AND ${values()}::jsonb @> jsonb_build_array(e.v))` +
        ` WHEN jsonb_typeof(${f()}) IN ('string', 'number', 'boolean') THEN ${values()}::jsonb @> jsonb_build_array(${f()})` +
        ` ELSE FALSE END)`
      return c.op === "eq" || c.op === "in" ? matches : `(NOT ${matches})`
    }
    default: {
      const value = c.value as string | number
      const f = field.read
      // CASE guards the cast: a jsonb string cast to numeric would raise.
      return typeof value === "number"
        ? `(CASE WHEN jsonb_typeof(${f()}) = 'number' THEN (${f()})::numeric ${comparison(c.op)} ${
          params.add(String(value))
        }::numeric ELSE FALSE END)`
        : `(CASE WHEN jsonb_typeof(${f()}) = 'string' THEN (${f()} #>> '{}') COLLATE "C" ${comparison(c.op)} ${
          params.add(value)
        }::text ELSE FALSE END)`
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sort orders
// ---------------------------------------------------------------------------------------------

/**
 * The ORDER BY list of `comparator(orderBy)`: per sort key its type rank (numbers, strings,
 * the rest; ascending in both directions), then its value within numbers and within strings
 * (in the sort's direction; the rest tie), and finally the key text ascending.
 */
export const orderBy = (params: Params, sorts: ReadonlyArray<Sort>): string => {
  const parts: Array<string> = []
  for (const sort of sorts) {
    const direction = sort.descending ? "DESC" : "ASC"
    if (params.dialect === "sqlite") {
      const field = sqliteField(params, sort.path)
      parts.push(
        `CASE ${field.type()} WHEN 'integer' THEN 0 WHEN 'real' THEN 0 WHEN 'text' THEN 1 ELSE 2 END ASC`,
        `CASE WHEN ${field.type()} IN ('integer', 'real', 'text') THEN ${field.value()} END ${direction}`
      )
    } else {
      const f = pgField(params, sort.path).read
      parts.push(
        `CASE jsonb_typeof(${f()}) WHEN 'number' THEN 0 WHEN 'string' THEN 1 ELSE 2 END ASC`,
        `CASE WHEN jsonb_typeof(${f()}) = 'number' THEN (${f()})::numeric END ${direction}`,
        `(CASE WHEN jsonb_typeof(${f()}) = 'string' THEN ${f()} #>> '{}' END) COLLATE "C" ${direction}`
      )
    }
  }
  parts.push("key ASC")
  return parts.join(", ")
}

// ---------------------------------------------------------------------------------------------
// Whole statements
// ---------------------------------------------------------------------------------------------

/** An index to narrow a query with (from `Criteria.plan`). */
export interface IndexUse {
  /** `indexPathText` of the indexed path. */
  readonly path: string
  /** Index keys (`Criteria.scalarKey`). */
  readonly keys: ReadonlyArray<string>
}

/** The `WHERE` of a query over one repository (without the keyword). */
export const filter = (
  params: Params,
  repository: string,
  criteria: Criteria.Criteria,
  index: IndexUse | undefined,
  after?: string
): string => {
  let out = `repository = ${params.add(repository)}`
  if (after !== undefined) out += ` AND key > ${params.add(after)}`
  if (index !== undefined) {
    out += ` AND key IN (SELECT key FROM foundation_index WHERE repository = ${params.add(repository)} AND path = ${
      params.add(index.path)
    } AND value ${
      params.dialect === "pg"
        ? `= ANY(${params.add(index.keys)}::text[])`
        : `IN (SELECT value FROM json_each(${params.add(JSON.stringify(index.keys))}))`
    })`
  }
  if (!isAll(criteria)) out += ` AND ${where(params, criteria)}`
  return out
}

/** `LIMIT`/`OFFSET` (with a leading space), or nothing. */
export const page = (params: Params, limit: number | undefined, offset: number): string => {
  if (limit === undefined && offset === 0) return ""
  if (limit === undefined) return params.dialect === "pg" ? ` OFFSET ${params.add(offset)}` : ` LIMIT -1 OFFSET ${params.add(offset)}`
  return offset === 0 ? ` LIMIT ${params.add(limit)}` : ` LIMIT ${params.add(limit)} OFFSET ${params.add(offset)}`
}

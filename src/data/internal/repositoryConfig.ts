/**
 * What every store does the same way: checking a repository's options and a query's parts,
 * encoding and decoding records with the schema, the key's text, and the sort order (so the
 * in-memory store and the SQL stores agree on every result).
 */
import * as Either from "effect/Either"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { ValidationError } from "../../errors/FoundationError.js"
import * as Validation from "../../errors/Validation.js"
import * as Criteria from "../Criteria.js"
import type { Key, KeyField, Options, Query } from "../Repository.js"

/** A repository's options, checked, with the schema's codecs compiled. */
export interface Resolved<A, K extends Key> {
  readonly name: string
  readonly keyField: string
  readonly indexes: ReadonlyArray<Criteria.Path>
  /** `Criteria.pathKey` of each index. */
  readonly indexed: ReadonlySet<string>
  /** Validates and encodes a record (to a plain JSON object). */
  readonly encode: (value: A) => Either.Either<Record<string, unknown>, ValidationError>
  /** Decodes a stored (encoded) record. */
  readonly decode: (encoded: unknown) => Either.Either<A, ParseResult.ParseError>
  /** The key of a record, checked (a non-empty string or a finite number). */
  readonly keyOf: (value: A) => Either.Either<K, ValidationError>
}

const namePattern = /^[A-Za-z0-9_.-]{1,100}$/

/** Checks a repository's options. */
export const resolve = <A, I, K extends KeyField<A>>(
  options: Options<A, I, K>
): Either.Either<Resolved<A, A[K] & Key>, ValidationError> => {
  if (typeof options.name !== "string" || !namePattern.test(options.name)) {
    return Validation.invalid("repository.name", "1–100 letters, digits, '_', '-' or '.'")
  }
  if (!Schema.isSchema(options.schema)) return Validation.invalid("repository.schema", "expected a Schema")
  if (typeof options.key !== "string" || options.key === "") {
    return Validation.invalid("repository.key", "expected the name of the key field")
  }
  const indexes: Array<Criteria.Path> = []
  const indexed = new Set<string>()
  const given = options.indexes ?? []
  for (let i = 0; i < given.length; i++) {
    const input = given[i]
    const path = typeof input === "string" ? input.split(".") : input
    if (!Array.isArray(path) || path.length === 0 || path.some((k) => typeof k !== "string" || k === "")) {
      return Validation.invalid(`repository.indexes.${i}`, "expected a non-empty path of non-empty keys")
    }
    const key = Criteria.pathKey(path)
    if (indexed.has(key)) return Validation.invalid(`repository.indexes.${i}`, `"${path.join(".")}" is indexed twice`)
    indexed.add(key)
    indexes.push(path as unknown as Criteria.Path)
  }
  const name = options.name
  const keyField = options.key
  const encodeEither = Schema.encodeEither(options.schema, { errors: "all" })
  const decode = Schema.decodeUnknownEither(options.schema, { errors: "all" })
  return Either.right({
    name,
    keyField,
    indexes,
    indexed,
    encode: (value) => {
      const encoded = encodeEither(value)
      if (Either.isLeft(encoded)) return Either.left(Validation.fromParseError(encoded.left, name))
      const json: unknown = encoded.right
      return typeof json === "object" && json !== null && !Array.isArray(json)
        ? Either.right(json as Record<string, unknown>)
        : Validation.invalid(name, "a record must encode to a JSON object")
    },
    decode,
    keyOf: (value) => {
      const key: unknown = (value as Record<string, unknown> | null | undefined)?.[keyField]
      return (typeof key === "string" && key !== "") || (typeof key === "number" && Number.isFinite(key))
        ? Either.right(key as A[K] & Key)
        : Validation.invalid(`${name}.${keyField}`, "the key must be a non-empty string or a finite number")
    }
  })
}

/** The text a key is stored and ordered by. */
export const keyText = (key: Key): string => typeof key === "string" ? key : String(key)

/** One sort key, checked. */
export interface Sort {
  readonly path: Criteria.Path
  readonly descending: boolean
}

/** A query, checked. */
export interface ResolvedQuery {
  readonly where: Criteria.Criteria
  readonly orderBy: ReadonlyArray<Sort>
  readonly limit: number | undefined
  readonly offset: number
}

const noQuery: ResolvedQuery = { where: Criteria.all, orderBy: [], limit: undefined, offset: 0 }

/** Checks a query: every bad part is a `ValidationError` naming it (`query.where.0.op`...). */
export const resolveQuery = (query: Query | undefined): Either.Either<ResolvedQuery, ValidationError> => {
  if (query === undefined) return Either.right(noQuery)
  const where = query.where === undefined ? Either.right(Criteria.all) : Criteria.validate(query.where, "query.where")
  if (Either.isLeft(where)) return Either.left(where.left)
  const sorts: Array<Sort> = []
  const given = query.orderBy === undefined ? [] : Array.isArray(query.orderBy) ? query.orderBy : [query.orderBy]
  for (let i = 0; i < given.length; i++) {
    const field = `query.orderBy.${i}`
    const order = given[i] as { readonly path?: unknown; readonly direction?: unknown } | undefined
    const path = typeof order?.path === "string" ? order.path.split(".") : order?.path
    if (!Array.isArray(path) || path.length === 0 || path.some((k) => typeof k !== "string" || k === "")) {
      return Validation.invalid(`${field}.path`, "expected a non-empty path of non-empty keys")
    }
    if (order!.direction !== undefined && order!.direction !== "asc" && order!.direction !== "desc") {
      return Validation.invalid(`${field}.direction`, `expected "asc" or "desc"`)
    }
    sorts.push({ path: path as unknown as Criteria.Path, descending: order!.direction === "desc" })
  }
  let limit: number | undefined
  if (query.limit !== undefined) {
    const checked = Validation.positiveInt("query.limit", query.limit)
    if (Either.isLeft(checked)) return Either.left(checked.left)
    limit = checked.right
  }
  let offset = 0
  if (query.offset !== undefined) {
    const checked = Validation.nonNegativeInt("query.offset", query.offset)
    if (Either.isLeft(checked)) return Either.left(checked.left)
    offset = checked.right
  }
  return Either.right({ where: where.right, orderBy: sorts, limit, offset })
}

/** Checks a scan's page size. */
export const checkLimit = (limit: number): ValidationError | undefined => {
  const checked = Validation.positiveInt("scan.limit", limit)
  return Either.isLeft(checked) ? checked.left : undefined
}

/** Sort rank of a value: numbers, then strings, then everything else (absent included). */
export const sortRank = (value: unknown): 0 | 1 | 2 =>
  typeof value === "number" ? 0 : typeof value === "string" ? 1 : 2

/** An encoded record and its key text: what the sort order compares. */
export interface Sortable {
  readonly encoded: unknown
  readonly keyText: string
}

/**
 * The order of `query`: by each sort key (numbers before strings, anything else last, in both
 * directions; a direction orders within numbers and within strings), then by key text.
 */
export const comparator = (orderBy: ReadonlyArray<Sort>): (a: Sortable, b: Sortable) => number =>
(a, b) => {
  for (const sort of orderBy) {
    const x = Criteria.valueAt(a.encoded, sort.path)
    const y = Criteria.valueAt(b.encoded, sort.path)
    const rx = sortRank(x)
    const ry = sortRank(y)
    if (rx !== ry) return rx - ry
    if (rx === 2) continue
    const d = rx === 0 ? (x as number) - (y as number) : Criteria.compareStrings(x as string, y as string)
    if (d !== 0) return sort.descending ? -d : d
  }
  return Criteria.compareStrings(a.keyText, b.keyText)
}

/** A ValidationError for a record whose key changed in an update. */
export const keyChanged = (name: string, keyField: string): ValidationError =>
  new ValidationError({ field: `${name}.${keyField}`, reason: "an update cannot change the key" })

/**
 * Validation of options and inputs at the boundary. Each check returns an `Either` (usable with
 * `yield*` inside `Effect.gen`) that fails with a `ValidationError` naming the field and the
 * reason. Nothing here throws; an invalid value is never coerced into a "reasonable" one (a
 * negative limit is an error, a zero window is an error, NaN is an error).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { ValidationError, type ValidationIssue } from "./FoundationError.js"

/** Fails with a ValidationError for `field`. */
export const invalid = (field: string, reason: string): Either.Either<never, ValidationError> =>
  Either.left(new ValidationError({ field, reason }))

/** Bounds for number checks; all optional. */
export interface NumberBounds {
  readonly min?: number
  readonly max?: number
  /** When true, `min` itself is not allowed. */
  readonly minExclusive?: boolean
}

/** A finite number within the bounds. */
export const number = (field: string, value: unknown, bounds: NumberBounds = {}): Either.Either<number, ValidationError> => {
  if (typeof value !== "number" || Number.isNaN(value)) return invalid(field, `must be a number, got ${show(value)}`)
  if (!Number.isFinite(value)) return invalid(field, `must be finite, got ${value}`)
  if (bounds.min !== undefined) {
    if (bounds.minExclusive === true ? value <= bounds.min : value < bounds.min) {
      return invalid(field, `must be ${bounds.minExclusive === true ? ">" : "≥"} ${bounds.min}, got ${value}`)
    }
  }
  if (bounds.max !== undefined && value > bounds.max) return invalid(field, `must be ≤ ${bounds.max}, got ${value}`)
  return Either.right(value)
}

/** An integer within the bounds. */
export const int = (field: string, value: unknown, bounds: NumberBounds = {}): Either.Either<number, ValidationError> =>
  Either.flatMap(
    number(field, value, bounds),
    (n) => Number.isInteger(n) ? Either.right(n) : invalid(field, `must be an integer, got ${n}`)
  )

/** An integer ≥ 1. */
export const positiveInt = (field: string, value: unknown): Either.Either<number, ValidationError> =>
  int(field, value, { min: 1 })

/** An integer ≥ 0. */
export const nonNegativeInt = (field: string, value: unknown): Either.Either<number, ValidationError> =>
  int(field, value, { min: 0 })

/** A ratio in [0, 1] (or (0, 1] with `exclusiveZero`). */
export const ratio = (
  field: string,
  value: unknown,
  options: { readonly exclusiveZero?: boolean } = {}
): Either.Either<number, ValidationError> =>
  number(field, value, { min: 0, max: 1, minExclusive: options.exclusiveZero === true })

/** Options for `duration`. */
export interface DurationBounds {
  /** Allow a zero duration (default false). */
  readonly allowZero?: boolean
  /** Allow an infinite duration (default false). */
  readonly allowInfinite?: boolean
}

/**
 * A `Duration.DurationInput` (a Duration, milliseconds as a number, or a string such as
 * "5 seconds") that is not NaN, not negative, and by default neither zero nor infinite.
 */
export const duration = (
  field: string,
  input: unknown,
  bounds: DurationBounds = {}
): Either.Either<Duration.Duration, ValidationError> => {
  if (typeof input === "number" && Number.isNaN(input)) return invalid(field, "must be a duration, got NaN")
  if ((typeof input === "number" || typeof input === "bigint") && input < 0) {
    return invalid(field, `must not be negative, got ${show(input)}`)
  }
  const decoded = Duration.decodeUnknown(input)
  if (decoded._tag === "None") return invalid(field, `must be a duration, got ${show(input)}`)
  const d = decoded.value
  if (d.value._tag === "Millis" && Number.isNaN(d.value.millis)) return invalid(field, "must be a duration, got NaN")
  if (Duration.lessThan(d, Duration.zero) || (d.value._tag === "Millis" && d.value.millis < 0)) {
    return invalid(field, `must not be negative, got ${show(input)}`)
  }
  if (bounds.allowZero !== true && Duration.isZero(d)) return invalid(field, "must be greater than zero")
  if (bounds.allowInfinite !== true && !Duration.isFinite(d)) return invalid(field, "must be finite")
  return Either.right(d)
}

/** A non-empty string. */
export const nonEmptyString = (field: string, value: unknown): Either.Either<string, ValidationError> =>
  typeof value === "string" && value.length > 0 ? Either.right(value) : invalid(field, "must be a non-empty string")

/** One of the allowed literal values; the error lists them. */
export const oneOf = <const L extends string>(
  field: string,
  value: unknown,
  allowed: ReadonlyArray<L>
): Either.Either<L, ValidationError> =>
  (allowed as ReadonlyArray<unknown>).includes(value)
    ? Either.right(value as L)
    : invalid(field, `must be one of ${allowed.map((a) => `"${a}"`).join(", ")}, got ${show(value)}`)

/** Takes an optional value through a check, or the default when it is absent. */
export const optional = <A, B extends A>(
  value: A | undefined,
  fallback: B,
  check: (value: A) => Either.Either<A, ValidationError>
): Either.Either<A, ValidationError> => check(value === undefined ? fallback : value)

/** All the issues of a ParseError, with dotted paths (prefixed by `prefix`). */
export const issuesOf = (error: ParseResult.ParseError, prefix?: string): ReadonlyArray<ValidationIssue> =>
  ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => ({
    field: [prefix, ...issue.path.map(String)].filter((s) => s !== undefined && s !== "").join(".") || (prefix ?? "input"),
    reason: issue.message
  }))

/** A ParseError as a ValidationError listing every issue. */
export const fromParseError = (error: ParseResult.ParseError, prefix?: string): ValidationError => {
  const issues = issuesOf(error, prefix)
  const first = issues[0] ?? { field: prefix ?? "input", reason: error.message }
  return new ValidationError({ field: first.field, reason: first.reason, issues })
}

/** Decodes an unknown input with a Schema, failing with a ValidationError that lists every issue. */
export const decode = <A, I>(schema: Schema.Schema<A, I>, prefix?: string) => {
  const decodeEither = Schema.decodeUnknownEither(schema, { errors: "all" })
  return (input: unknown): Effect.Effect<A, ValidationError> =>
    Either.match(decodeEither(input), {
      onLeft: (error) => Effect.fail(fromParseError(error, prefix)),
      onRight: Effect.succeed
    })
}

const show = (u: unknown): string => {
  if (typeof u === "string") return JSON.stringify(u)
  if (typeof u === "bigint") return `${u}n`
  if (u === undefined) return "undefined"
  try {
    return JSON.stringify(u) ?? String(u)
  } catch {
    return String(u)
  }
}

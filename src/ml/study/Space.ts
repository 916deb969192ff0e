/**
 * Search spaces for hyperparameter studies: float (uniform or log-uniform, optionally on a
 * step grid), int (with a step, optionally log-scaled) and categorical parameters.
 *
 * Guarantees:
 * - `validate` rejects an invalid space with a `ValidationError` naming the parameter and the
 *   reason (empty space, low ≥ high, a log range that is not positive, a step that does not
 *   divide the range, an empty or duplicated choice list); nothing runs on a bad space.
 * - Every sampled value lies in its declared domain: floats in [low, high] (on the step grid
 *   when one is given), ints on `low + k·step` within [low, high], categoricals among `choices`.
 * - Each parameter has an internal numeric form (`toInternal` / `fromInternal`: the log for a
 *   log scale, the index for a categorical) that samplers such as TPE model; the round trip
 *   snaps to the domain, so a sampler can never produce an out-of-domain value.
 */
import * as Either from "effect/Either"
import { ValidationError } from "../../errors/FoundationError.js"
import * as Validation from "../../errors/Validation.js"

/** A categorical choice: a string, a number or a boolean (so parameters stay serialisable). */
export type Choice = string | number | boolean

/** A real-valued parameter on [low, high]. */
export interface FloatParam {
  readonly _tag: "Float"
  readonly low: number
  readonly high: number
  /** Sample uniformly in log space (low must be > 0). */
  readonly log: boolean
  /** Restrict to `low + k·step` (not with `log`). */
  readonly step: number | undefined
}

/** An integer parameter on `low + k·step` within [low, high]. */
export interface IntParam {
  readonly _tag: "Int"
  readonly low: number
  readonly high: number
  readonly step: number
  /** Sample uniformly in log space (low must be ≥ 1, step must be 1). */
  readonly log: boolean
}

/** One of a fixed list of choices. */
export interface CategoricalParam<C extends Choice = Choice> {
  readonly _tag: "Categorical"
  readonly choices: ReadonlyArray<C>
}

/** Any parameter. */
export type Param = FloatParam | IntParam | CategoricalParam

/** A search space: parameter name → parameter, in declaration order. */
export type Space = Readonly<Record<string, Param>>

/** The value type of one parameter. */
export type ValueOf<P extends Param> = P extends CategoricalParam<infer C> ? C : number

/** The parameters of one trial, typed from the space. */
export type Params<S extends Space> = { readonly [K in keyof S]: ValueOf<S[K]> }

/** Untyped parameters, as stored. */
export type AnyParams = Readonly<Record<string, Choice>>

/** A float on [low, high]; `log: true` samples log-uniformly, `step` restricts to a grid. */
export const float = (
  low: number,
  high: number,
  options: { readonly log?: boolean; readonly step?: number } = {}
): FloatParam => ({ _tag: "Float", low, high, log: options.log ?? false, step: options.step })

/** An integer on `low + k·step` within [low, high] (step 1 by default). */
export const int = (
  low: number,
  high: number,
  options: { readonly step?: number; readonly log?: boolean } = {}
): IntParam => ({ _tag: "Int", low, high, step: options.step ?? 1, log: options.log ?? false })

/** One of `choices` (kept in the given order, which the grid sampler follows). */
export const categorical = <const C extends Choice>(choices: ReadonlyArray<C>): CategoricalParam<C> => ({
  _tag: "Categorical",
  choices
})

const isMultiple = (range: number, step: number): boolean => {
  const k = Math.round(range / step)
  return Math.abs(k * step - range) <= 1e-9 * Math.max(1, Math.abs(range))
}

const validateParam = (name: string, param: Param): Either.Either<Param, ValidationError> =>
  Either.gen(function*() {
    const field = `space.${name}`
    if (typeof param !== "object" || param === null) return yield* Validation.invalid(field, "must be a parameter")
    switch (param._tag) {
      case "Categorical": {
        if (!Array.isArray(param.choices) || param.choices.length === 0) {
          return yield* Validation.invalid(`${field}.choices`, "must be a non-empty list")
        }
        for (const [i, c] of param.choices.entries()) {
          const ok = typeof c === "string" || typeof c === "boolean" || (typeof c === "number" && Number.isFinite(c))
          if (!ok) return yield* Validation.invalid(`${field}.choices[${i}]`, "must be a string, a finite number or a boolean")
        }
        if (new Set(param.choices).size !== param.choices.length) {
          return yield* Validation.invalid(`${field}.choices`, "must not repeat a choice")
        }
        return param
      }
      case "Float":
      case "Int": {
        const check = param._tag === "Int" ? Validation.int : Validation.number
        const low = yield* check(`${field}.low`, param.low)
        const high = yield* check(`${field}.high`, param.high)
        if (param._tag === "Float" ? low >= high : low > high) {
          return yield* Validation.invalid(field, `low (${low}) must be ${param._tag === "Float" ? "<" : "≤"} high (${high})`)
        }
        if (param.log && low <= 0) return yield* Validation.invalid(`${field}.low`, `must be > 0 on a log scale, got ${low}`)
        if (param.step !== undefined) {
          const step = yield* check(`${field}.step`, param.step, { min: 0, minExclusive: true })
          if (param.log && !(param._tag === "Int" && step === 1)) {
            return yield* Validation.invalid(`${field}.step`, "cannot be combined with a log scale")
          }
          if (!isMultiple(high - low, step)) {
            return yield* Validation.invalid(`${field}.step`, `${step} must divide high − low (${high - low})`)
          }
        }
        return param
      }
      default:
        return yield* Validation.invalid(field, "must be made with float, int or categorical")
    }
  })

/** Checks every parameter; the first problem fails with a `ValidationError` naming it. */
export const validate = <S extends Space>(space: S): Either.Either<S, ValidationError> =>
  Either.gen(function*() {
    if (typeof space !== "object" || space === null) return yield* Validation.invalid("space", "must be an object")
    const names = Object.keys(space)
    if (names.length === 0) return yield* Validation.invalid("space", "must define at least one parameter")
    for (const name of names) yield* validateParam(name, space[name]!)
    return space
  })

/** True when `value` lies in the parameter's domain (on its step grid, among its choices). */
export const contains = (param: Param, value: unknown): boolean => {
  if (param._tag === "Categorical") return param.choices.includes(value as Choice)
  if (typeof value !== "number" || !Number.isFinite(value)) return false
  if (value < param.low || value > param.high) return false
  if (param._tag === "Int" && !Number.isInteger(value)) return false
  return param.step === undefined || isMultiple(value - param.low, param.step)
}

/** Checks a full parameter assignment against the space (for `enqueue` and stored studies). */
export const validateParams = (space: Space, params: unknown, field = "params"): Either.Either<AnyParams, ValidationError> => {
  if (typeof params !== "object" || params === null) return Validation.invalid(field, "must be an object")
  const record = params as Record<string, unknown>
  for (const name of Object.keys(space)) {
    if (!(name in record)) return Validation.invalid(`${field}.${name}`, "is missing")
    if (!contains(space[name]!, record[name])) {
      return Validation.invalid(`${field}.${name}`, `${JSON.stringify(record[name])} is outside the parameter's domain`)
    }
  }
  for (const name of Object.keys(record)) {
    if (!(name in space)) return Validation.invalid(`${field}.${name}`, "is not a parameter of the space")
  }
  return Either.right(record as AnyParams)
}

// ---------------------------------------------------------------------------------------------
// Internal numeric form (what samplers model)
// ---------------------------------------------------------------------------------------------

/** The internal interval of a numeric parameter: log-space for log scales; ints widened by half a step. */
export const internalBounds = (param: FloatParam | IntParam): readonly [number, number] => {
  if (param._tag === "Int") {
    if (param.log) return [Math.log(param.low - 0.5), Math.log(param.high + 0.5)]
    return [param.low - param.step / 2, param.high + param.step / 2]
  }
  if (param.log) return [Math.log(param.low), Math.log(param.high)]
  if (param.step !== undefined) return [param.low - param.step / 2, param.high + param.step / 2]
  return [param.low, param.high]
}

/** The internal form of a numeric value (inverse of `fromInternal`). */
export const toInternal = (param: FloatParam | IntParam, value: number): number => param.log ? Math.log(value) : value

/** `low + k·step`, tidied to 12 significant digits when that only removes float noise. */
const gridPoint = (low: number, k: number, step: number, integral: boolean): number => {
  const raw = low + k * step
  if (integral) return raw // exact below 2^53
  // So that 0.1 + 3·0.1 reads 0.4, not 0.30000000000000004 (and never moves a point off its grid).
  const tidy = Number(raw.toPrecision(12))
  return Math.abs(tidy - raw) <= 1e-9 * step ? tidy : raw
}

const snap = (value: number, low: number, high: number, step: number, integral: boolean): number => {
  const k = Math.round((value - low) / step)
  const max = Math.round((high - low) / step)
  return Math.min(Math.max(gridPoint(low, Math.min(Math.max(k, 0), max), step, integral), low), high)
}

/** The domain value of an internal number: exponentiated, snapped to the step grid, clamped. */
export const fromInternal = (param: FloatParam | IntParam, internal: number): number => {
  const raw = param.log ? Math.exp(internal) : internal
  if (param._tag === "Int") return snap(raw, param.low, param.high, param.step, true)
  if (param.step !== undefined) return snap(raw, param.low, param.high, param.step, false)
  return Math.min(Math.max(raw, param.low), param.high)
}

/** Uniform sample from a parameter, given a uniform number u ∈ [0, 1). */
export const sampleUniform = (param: Param, u: number): Choice => {
  if (param._tag === "Categorical") return param.choices[Math.min(Math.floor(u * param.choices.length), param.choices.length - 1)]!
  const [lo, hi] = internalBounds(param)
  return fromInternal(param, lo + u * (hi - lo))
}

/** Every value of a parameter in order (ints and stepped floats enumerate; plain floats have no grid). */
export const gridValues = (param: Param): ReadonlyArray<Choice> | undefined => {
  if (param._tag === "Categorical") return param.choices
  if (param._tag === "Float" && param.step === undefined) return undefined
  const step = param.step!
  const count = Math.round((param.high - param.low) / step) + 1
  return Array.from({ length: count }, (_, k) => Math.min(gridPoint(param.low, k, step, param._tag === "Int"), param.high))
}

/** A short text for a parameter, used in reports: `float[0.0001, 0.1] log`, `int[1, 4]`, `{16, 32}`. */
export const describe = (param: Param): string => {
  switch (param._tag) {
    case "Categorical":
      return `{${param.choices.map((c) => String(c)).join(", ")}}`
    case "Float":
      return `float[${param.low}, ${param.high}]${param.log ? " log" : ""}${param.step !== undefined ? ` step ${param.step}` : ""}`
    case "Int":
      return `int[${param.low}, ${param.high}]${param.step !== 1 ? ` step ${param.step}` : ""}${param.log ? " log" : ""}`
  }
}

/** True when two spaces declare the same parameters with the same domains (to resume a stored study). */
export const sameSpace = (a: Space, b: Space): boolean => {
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  if (ka.length !== kb.length) return false
  return ka.every((k) => k in b && JSON.stringify(normalize(a[k]!)) === JSON.stringify(normalize(b[k]!)))
}

const normalize = (param: Param): unknown =>
  param._tag === "Categorical"
    ? { _tag: param._tag, choices: param.choices }
    : { _tag: param._tag, low: param.low, high: param.high, log: param.log, step: param.step ?? null }

/** A JSON-safe copy of a space (for storage). */
export const toJson = (space: Space): Record<string, unknown> =>
  Object.fromEntries(Object.entries(space).map(([k, p]) => [k, normalize(p)]))

/** Rebuilds a space from `toJson` output (as stored), validating it. */
export const fromJson = (json: unknown): Either.Either<Space, ValidationError> => {
  if (typeof json !== "object" || json === null) return Validation.invalid("space", "must be an object")
  const out: Record<string, Param> = {}
  for (const [k, entry] of Object.entries(json)) {
    if (typeof entry !== "object" || entry === null) return Validation.invalid(`space.${k}`, "must be a parameter")
    const raw = entry as Record<string, unknown>
    switch (raw._tag) {
      case "Categorical":
        out[k] = { _tag: "Categorical", choices: raw.choices as ReadonlyArray<Choice> }
        break
      case "Float":
        out[k] = float(raw.low as number, raw.high as number, {
          log: raw.log === true,
          ...(typeof raw.step === "number" ? { step: raw.step } : {})
        })
        break
      case "Int":
        out[k] = int(raw.low as number, raw.high as number, { step: raw.step as number, log: raw.log === true })
        break
      default:
        return Validation.invalid(`space.${k}`, `unknown parameter kind ${JSON.stringify(raw._tag)}`)
    }
  }
  return validate(out)
}

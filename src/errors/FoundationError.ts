/**
 * The one error hierarchy of effect-foundation. Every failure the library produces is a tagged
 * error (a `Data.TaggedError`, so it can be `yield*`-ed and matched with `catchTag`) that carries:
 *
 * - `category`: transient | permanent | resource | validation | system (a literal type, so the
 *   helpers in `Pipeline` can narrow the error channel by category);
 * - `severity`: low | medium | high | critical;
 * - `code`: the numeric code of the original's code table where it has an entry (else undefined);
 * - `operation`: the `ErrorContext` operation it was raised in, once attached.
 *
 * Guarantees: constructing an error never fails and never loses what it wraps (`InternalError`
 * keeps the full `Cause`, stack traces included); `normalize` turns any unknown failure into a
 * system error without discarding it.
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Predicate from "effect/Predicate"
import type * as Types from "effect/Types"
import { type ErrorCategory, isErrorCategory, type Severity } from "./Category.js"
import {
  type CategoryOf,
  codeTable,
  type ErrorType,
  lookup,
  retryStrategyOf,
  type RetryStrategy,
  typeOfCode
} from "./Codes.js"

export * from "./Category.js"
export * from "./Codes.js"

/** Marks every error of the hierarchy. */
export const TypeId: unique symbol = Symbol.for("effect-foundation/FoundationError")
export type TypeId = typeof TypeId

/**
 * The operation context an error was raised in (see `ErrorContext`). Declared here so that
 * errors can carry it without the error module depending on the context module.
 */
export interface OperationContext {
  readonly operationId: number
  readonly name: string
  readonly correlationId: string
  /** When the operation started, in epoch milliseconds (from `Clock`). */
  readonly startedAt: number
  readonly metadata: Readonly<Record<string, unknown>>
  readonly breadcrumbs: ReadonlyArray<Breadcrumb>
  readonly parent: OperationContext | undefined
}

/** One step of the trail that led to an operation. */
export interface Breadcrumb {
  readonly name: string
  /** Epoch milliseconds. */
  readonly at: number
  readonly metadata: Readonly<Record<string, unknown>>
}

/** What every error of the hierarchy has. */
export interface FoundationError {
  readonly [TypeId]: TypeId
  readonly _tag: string
  readonly category: ErrorCategory
  readonly severity: Severity
  readonly code: number | undefined
  readonly message: string
  readonly operation?: OperationContext | undefined
}

interface ErrorSpec<C extends ErrorCategory> {
  readonly category: C
  readonly severity: Severity
  /** The code-table type this class stands for, if it has one. */
  readonly type?: ErrorType
  readonly message: string
  /**
   * Whether to capture a stack trace (default true). Rejections raised on hot paths by the
   * library itself (an open breaker, a denied rate limit, a full bulkhead) set it to false: their
   * stack would only show library internals, and capturing it costs several microseconds.
   */
  readonly captureStack?: boolean
}

type ConstructorArgs<A> = Types.VoidIfEmpty<{ readonly [P in keyof A as P extends "_tag" ? never : P]: A[P] }>

/** Fields every error of the hierarchy accepts at construction. */
export interface CommonFields {
  /** Overrides the message built from the other fields. */
  readonly message?: string
  /** The operation the error was raised in. */
  readonly operation?: OperationContext
}

/** The instance side of a class made by `Tagged`. */
export interface TaggedInstance<Tag extends string, C extends ErrorCategory>
  extends Cause.YieldableError, Omit<FoundationError, "message">
{
  readonly _tag: Tag
  readonly category: C
  /** The message used when none is given; override it to build one from the fields. */
  describe(): string
}

/** The constructor made by `Tagged`: the fields are its type argument. */
export type TaggedConstructor<Tag extends string, C extends ErrorCategory> = new<
  A extends Record<string, unknown> = {}
>(
  args: ConstructorArgs<A & CommonFields>
) => TaggedInstance<Tag, C> & Readonly<A>

/**
 * Builds a base class for a tagged error of a fixed category. Subclasses declare their fields as
 * the type argument and may override `describe()` to build a message from them.
 *
 * @example
 * class QuotaError extends FoundationError.Tagged("QuotaError", {
 *   category: "resource", severity: "medium", message: "Quota exceeded"
 * })<{ readonly quota: string }> {}
 */
export const Tagged = <const Tag extends string, const C extends ErrorCategory>(
  tag: Tag,
  spec: ErrorSpec<C>
): TaggedConstructor<Tag, C> => {
  const code = spec.type === undefined ? undefined : codeTable[spec.type].code
  const captureStack = spec.captureStack ?? true
  class Base extends Data.TaggedError(tag)<CommonFields> {
    readonly [TypeId]: TypeId = TypeId
    readonly category: C = spec.category
    readonly severity: Severity = spec.severity
    readonly code: number | undefined = code
    constructor(args: CommonFields) {
      if (captureStack) {
        super(args)
      } else {
        const limit = Error.stackTraceLimit
        Error.stackTraceLimit = 0
        super(args)
        Error.stackTraceLimit = limit
      }
    }
    describe(): string {
      return spec.message
    }
    override toJSON(): unknown {
      const json = super.toJSON()
      return typeof json === "object" && json !== null ? { ...json, message: this.message } : json
    }
  }
  // The message is built from the fields on first read (and then kept), so that constructing an
  // error costs no string formatting; an explicit `message` argument replaces it.
  Object.defineProperty(Base.prototype, "message", {
    configurable: true,
    get(this: Base) {
      const message = this.describe()
      Object.defineProperty(this, "message", { value: message, writable: true, configurable: true })
      return message
    },
    set(this: Base, message: string) {
      Object.defineProperty(this, "message", { value: message, writable: true, configurable: true })
    }
  })
  return Base as unknown as TaggedConstructor<Tag, C>
}

/** True for any error of the hierarchy. */
export const isFoundationError = (u: unknown): u is FoundationError => Predicate.hasProperty(u, TypeId)

const formatDuration = (d: Duration.Duration): string => Duration.format(d)

/** A circuit breaker rejected the call without running it. `retryAfter` says when to come back. */
export class CircuitOpenError extends Tagged("CircuitOpenError", {
  captureStack: false,
  category: "resource",
  severity: "medium",
  message: "Circuit breaker is open"
})<{
  readonly breaker: string
  /** Time until the breaker will admit a trial call (zero when it admits one now but is saturated). */
  readonly retryAfter: Duration.Duration
  readonly state: "open" | "half_open" | "isolated"
}> {
  override describe() {
    return this.state === "isolated"
      ? `Circuit breaker "${this.breaker}" is isolated`
      : `Circuit breaker "${this.breaker}" is ${this.state === "open" ? "open" : "half-open and busy"}; retry after ${
        formatDuration(this.retryAfter)
      }`
  }
}

/** A rate limiter denied the request; the request consumed nothing. */
export class RateLimitedError extends Tagged("RateLimitedError", {
  captureStack: false,
  category: "resource",
  severity: "medium",
  message: "Rate limit exceeded"
})<{
  readonly limiter: string
  readonly key: string
  readonly retryAfter: Duration.Duration
  /** Capacity left for this key at the moment of the denial. */
  readonly remaining: number
  readonly limit: number
}> {
  override describe() {
    return `Rate limit "${this.limiter}" exceeded for key "${this.key}"; retry after ${formatDuration(this.retryAfter)}`
  }
}

/** An operation did not finish within its time budget. */
export class TimeoutError extends Tagged("TimeoutError", {
  category: "transient",
  severity: "medium",
  type: "timeout",
  message: "Operation timed out"
})<{
  readonly timeout: Duration.Duration
  /** What timed out, for the message. */
  readonly label?: string
}> {
  override describe() {
    return `${this.label ?? "Operation"} timed out after ${formatDuration(this.timeout)}`
  }
}

/** A queue or resource refused work because it is full. */
export class BackpressureError extends Tagged("BackpressureError", {
  captureStack: false,
  category: "resource",
  severity: "medium",
  message: "Backpressure: capacity reached"
})<{
  readonly resource: string
  readonly capacity?: number
}> {
  override describe() {
    return `Backpressure on "${this.resource}"${this.capacity === undefined ? "" : ` (capacity ${this.capacity})`}`
  }
}

/** A bulkhead has no free slot and no room in its queue. */
export class BulkheadFullError extends Tagged("BulkheadFullError", {
  captureStack: false,
  category: "resource",
  severity: "medium",
  message: "Bulkhead full"
})<{
  readonly bulkhead: string
  readonly maxConcurrent: number
  readonly maxQueued: number
}> {
  override describe() {
    return `Bulkhead "${this.bulkhead}" is full (${this.maxConcurrent} running, ${this.maxQueued} queued)`
  }
}

/** One problem found in an input. */
export interface ValidationIssue {
  readonly field: string
  readonly reason: string
}

/**
 * Bad input, rejected at the boundary. `field` names the offending field (a dotted path) and
 * `reason` says what is wrong; `issues` lists every problem when there were several.
 */
export class ValidationError extends Tagged("ValidationError", {
  category: "validation",
  severity: "medium",
  type: "validation_failed",
  message: "Validation failed"
})<{
  readonly field: string
  readonly reason: string
  readonly issues?: ReadonlyArray<ValidationIssue>
}> {
  override describe() {
    const rest = this.issues !== undefined && this.issues.length > 1
      ? ` (and ${this.issues.length - 1} more: ${this.issues.slice(1).map((i) => i.field).join(", ")})`
      : ""
    return `Invalid ${this.field}: ${this.reason}${rest}`
  }
}

/** Something looked up by key does not exist. */
export class NotFoundError extends Tagged("NotFoundError", {
  category: "permanent",
  severity: "low",
  type: "data_not_found",
  message: "Not found"
})<{
  readonly resource: string
  readonly key: string
}> {
  override describe() {
    return `${this.resource} "${this.key}" not found`
  }
}

/** Something to be created exists already. */
export class AlreadyExistsError extends Tagged("AlreadyExistsError", {
  category: "permanent",
  severity: "low",
  message: "Already exists"
})<{
  readonly resource: string
  readonly key: string
}> {
  override describe() {
    return `${this.resource} "${this.key}" already exists`
  }
}

/** A service cannot take calls right now (it may later). */
export class ServiceUnavailableError extends Tagged("ServiceUnavailableError", {
  category: "transient",
  severity: "high",
  type: "service_unavailable",
  message: "Service unavailable"
})<{
  readonly service: string
  readonly reason?: string
}> {
  override describe() {
    return `Service "${this.service}" unavailable${this.reason === undefined ? "" : `: ${this.reason}`}`
  }
}

/** A finite resource (memory, entries, connections) is used up. */
export class ResourceExhaustedError extends Tagged("ResourceExhaustedError", {
  category: "resource",
  severity: "high",
  type: "resource_exhausted",
  message: "Resource exhausted"
})<{
  readonly resource: string
  readonly limit?: number
  readonly used?: number
}> {
  override describe() {
    return `Resource "${this.resource}" exhausted${
      this.limit === undefined ? "" : ` (${this.used ?? "?"} of ${this.limit} used)`
    }`
  }
}

/**
 * Something unexpected went wrong. Wraps the full `Cause` of the original failure (defects,
 * interruptions, parallel and sequential failures, stack traces) without losing any of it.
 */
export class InternalError extends Tagged("InternalError", {
  category: "system",
  severity: "critical",
  type: "internal_error",
  message: "Internal error"
})<{
  readonly cause: Cause.Cause<unknown>
}> {
  override describe() {
    return `Internal error: ${describeCause(this.cause)}`
  }
  /** The wrapped cause rendered with its stack traces. */
  get pretty(): string {
    return Cause.pretty(this.cause, { renderErrorCause: true })
  }
  /** Wraps a cause. */
  static fromCause(cause: Cause.Cause<unknown>, message?: string): InternalError {
    return message === undefined ? new InternalError({ cause }) : new InternalError({ cause, message })
  }
  /** Wraps an unknown thrown or failed value. */
  static fromUnknown(u: unknown, message?: string): InternalError {
    return InternalError.fromCause(Cause.fail(u), message)
  }
}

const describeCause = (cause: Cause.Cause<unknown>): string => {
  if (Cause.isInterruptedOnly(cause)) return "interrupted"
  const squashed = Cause.squash(cause)
  if (squashed instanceof Error) return squashed.message || squashed.name
  if (typeof squashed === "string") return squashed
  try {
    return JSON.stringify(squashed) ?? String(squashed)
  } catch {
    return String(squashed)
  }
}

/**
 * An error of any type of the original code table (`network_error`, `authentication_failed`,
 * ...), with that type's code, severity and category. Use it where no dedicated class exists.
 */
export class CodedError<T extends ErrorType = ErrorType> extends Data.TaggedError("CodedError")<{
  readonly type: T
  readonly message: string
  readonly details: Readonly<Record<string, unknown>>
  readonly operation?: OperationContext
}> {
  readonly [TypeId]: TypeId = TypeId
  readonly category: CategoryOf<T> = codeTable[this.type].category as CategoryOf<T>
  readonly severity: Severity = codeTable[this.type].severity
  readonly code: number = codeTable[this.type].code
  /** The retry strategy the original derived for this type. */
  get retryStrategy(): RetryStrategy {
    return retryStrategyOf(this.type)
  }
}

/** Makes a coded error; the message defaults to the table's message for the type. */
export const coded = <T extends ErrorType>(
  type: T,
  message?: string,
  details: Readonly<Record<string, unknown>> = {}
): CodedError<T> => new CodedError({ type, message: message ?? codeTable[type].message, details })

/** The retry strategy of any error of the hierarchy, by its code-table type or severity. */
export const retryStrategy = (error: FoundationError): RetryStrategy => {
  if (error instanceof CodedError) return error.retryStrategy
  const type = error.code === undefined ? undefined : typeOfCode(error.code)
  return retryStrategyOf(type ?? "unknown", error.severity)
}

/** True when the severity calls for escalation (high or critical). */
export const shouldEscalate = (error: FoundationError): boolean =>
  error.severity === "high" || error.severity === "critical"

/**
 * Any failure as an error of the hierarchy: errors of the hierarchy pass unchanged, anything
 * else becomes an `InternalError` (category system) that keeps the original value in its cause.
 */
export const normalize = (u: unknown): FoundationError => isFoundationError(u) ? u : InternalError.fromUnknown(u)

/** The category of any failure value: its own if it has a valid one, else `system`. */
export const categoryOf = (u: unknown): ErrorCategory =>
  Predicate.hasProperty(u, "category") && isErrorCategory(u.category) ? u.category : "system"

/** `[code:Tag] message | Severity: s`, the original's one-line rendering. */
export const format = (error: FoundationError): string =>
  `[${error.code ?? lookup("unknown").code}:${error._tag}] ${error.message} | Severity: ${error.severity}`

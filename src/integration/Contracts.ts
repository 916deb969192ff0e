/**
 * Contracts: a service's API described as Schemas, and implementations checked against it (the
 * original's `ContractValidator` and `ContractEvolution`, which probed function arities, re-done
 * with Schema).
 *
 * `define({ name, operations: { op: { input, output } } })` describes the API. `implement(contract,
 * handlers)` checks, when it runs (at startup, or at layer build with `layer`), that every
 * operation has a handler and that it is a function: otherwise it fails with
 * `ContractViolationError` naming the operation and what is wrong (every violation is listed).
 * Handlers that the contract does not name are ignored (they are not exposed).
 *
 * Every call of the implementation is checked at the boundary:
 * - the input is DECODED with the operation's `input` Schema (so the caller passes its encoded
 *   form, which is the value itself for a Schema without transformations), and a bad input fails
 *   with `ContractInputError` naming the operation and the field (`input.id`), without calling the
 *   handler;
 * - the handler's value is VALIDATED against the `output` Schema (its type side, refinements
 *   included); a value that breaks the contract fails with `ContractOutputError` naming the
 *   operation and the field (`output.email`): a bug of the implementation, category `system`.
 *   A handler that throws dies with that defect; one that returns something other than an Effect
 *   fails with `ContractOutputError` (field `output`).
 * - the handler's own failures pass through unchanged.
 *
 * Schemas must need no context (`Schema<A, I, never>`). Telemetry (when `Telemetry` is in the
 * context of `implement`): `events.violation` for implementation and output violations.
 */
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import * as Events from "../observability/Events.js"
import { Tagged, type ValidationError, type ValidationIssue } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Telemetry from "../observability/Telemetry.js"

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** One thing wrong with an implementation. */
export interface Violation {
  readonly operation: string
  readonly reason: string
}

/** An implementation does not fulfil its contract; `operationName`/`reason` are the first of `violations`. */
export class ContractViolationError extends Tagged("ContractViolationError", {
  category: "validation",
  severity: "high",
  message: "Contract violated"
})<{
  readonly contract: string
  /** The operation (not `operation`: that field of every error is its `ErrorContext`). */
  readonly operationName: string
  readonly reason: string
  readonly violations: ReadonlyArray<Violation>
}> {
  override describe() {
    const more = this.violations.length > 1 ? ` (and ${this.violations.length - 1} more)` : ""
    return `Contract "${this.contract}": operation "${this.operationName}" ${this.reason}${more}`
  }
}

/** A call's input does not decode with the operation's `input` Schema; the handler was not called. */
export class ContractInputError extends Tagged("ContractInputError", {
  category: "validation",
  severity: "medium",
  type: "validation_failed",
  message: "Invalid input"
})<{
  readonly contract: string
  /** The operation (not `operation`: that field of every error is its `ErrorContext`). */
  readonly operationName: string
  /** Dotted path of the first bad field (`input.id`). */
  readonly field: string
  readonly reason: string
  readonly issues: ReadonlyArray<ValidationIssue>
}> {
  override describe() {
    return `${this.contract}.${this.operationName}: invalid ${this.field}: ${this.reason}`
  }
}

/** A handler's value breaks the operation's `output` Schema: a bug of the implementation. */
export class ContractOutputError extends Tagged("ContractOutputError", {
  category: "system",
  severity: "high",
  message: "Invalid output"
})<{
  readonly contract: string
  /** The operation (not `operation`: that field of every error is its `ErrorContext`). */
  readonly operationName: string
  /** Dotted path of the first bad field (`output.email`). */
  readonly field: string
  readonly reason: string
  readonly issues: ReadonlyArray<ValidationIssue>
}> {
  override describe() {
    return `${this.contract}.${this.operationName}: implementation returned an invalid ${this.field}: ${this.reason}`
  }
}

// ---------------------------------------------------------------------------------------------
// Contracts
// ---------------------------------------------------------------------------------------------

/** Event names (measurements · metadata). */
export const events = Events.names.contracts

/** One operation: the Schemas of its input and of its output. */
export interface Operation {
  readonly input: Schema.Schema.AnyNoContext
  readonly output: Schema.Schema.AnyNoContext
}

/** Operations by name. */
export type Operations = { readonly [name: string]: Operation }

const ContractTypeId: unique symbol = Symbol.for("effect-foundation/Contracts/Contract")

/** A service's API. */
export interface Contract<Ops extends Operations = Operations> {
  readonly [ContractTypeId]: typeof ContractTypeId
  readonly name: string
  readonly operations: Ops
}

/** The operations of a contract. */
export type OperationsOf<C> = C extends Contract<infer Ops> ? Ops : never

/** What the handler of an operation receives. */
export type InputOf<O extends Operation> = Schema.Schema.Type<O["input"]>
/** What a caller of an operation passes (the encoded form of the input). */
export type EncodedInputOf<O extends Operation> = Schema.Schema.Encoded<O["input"]>
/** What an operation returns. */
export type OutputOf<O extends Operation> = Schema.Schema.Type<O["output"]>

/** Handlers of a contract, failing with `E` and needing `R`. */
export type Handlers<C extends Contract, E = never, R = never> = {
  readonly [K in keyof OperationsOf<C>]: (input: InputOf<OperationsOf<C>[K]>) => Effect.Effect<OutputOf<OperationsOf<C>[K]>, E, R>
}

/** Any handlers of a contract (each with its own error and context). */
export type AnyHandlers<C extends Contract> = {
  readonly [K in keyof OperationsOf<C>]: (
    input: InputOf<OperationsOf<C>[K]>
  ) => Effect.Effect<OutputOf<OperationsOf<C>[K]>, unknown, unknown>
}

/**
 * A checked implementation of a contract, as callers see it: every operation with its input
 * decoded and its output validated. Declare a service's tag with it:
 * `class Users extends Context.Tag("Users")<Users, Contracts.Service<typeof UsersApi, NotFound>>() {}`.
 */
export type Service<C extends Contract, E = never, R = never> = {
  readonly [K in keyof OperationsOf<C>]: (
    input: EncodedInputOf<OperationsOf<C>[K]>
  ) => Effect.Effect<OutputOf<OperationsOf<C>[K]>, E | ContractInputError | ContractOutputError, R>
}

/** The implementation `implement` makes from handlers `H`: each operation keeps its handler's error and context. */
export type Implementation<C extends Contract, H extends AnyHandlers<C>> = {
  readonly [K in keyof OperationsOf<C>]: (
    input: EncodedInputOf<OperationsOf<C>[K]>
  ) => Effect.Effect<
    OutputOf<OperationsOf<C>[K]>,
    Effect.Effect.Error<ReturnType<H[K]>> | ContractInputError | ContractOutputError,
    Effect.Effect.Context<ReturnType<H[K]>>
  >
}

/** Describes an API. Checked when implemented (a bad contract fails `implement` with `ValidationError`). */
export const define = <const Ops extends Operations>(spec: {
  readonly name: string
  readonly operations: Ops
}): Contract<Ops> => ({ [ContractTypeId]: ContractTypeId, name: spec.name, operations: spec.operations })

/** True for a value made by `define`. */
export const isContract = (u: unknown): u is Contract => Predicate.hasProperty(u, ContractTypeId)

type Handler = (input: unknown) => Effect.Effect<unknown, unknown, unknown>

/** Checks the contract itself; every problem is a ValidationError naming the field. */
const checkContract = (contract: unknown): Either.Either<Contract, ValidationError> =>
  Either.gen(function*() {
    if (!isContract(contract)) return yield* Validation.invalid("contract", "must be made by Contracts.define")
    yield* Validation.nonEmptyString("contract.name", contract.name)
    const operations: unknown = contract.operations
    if (typeof operations !== "object" || operations === null) {
      return yield* Validation.invalid("contract.operations", "must be an object")
    }
    const names = Object.keys(operations)
    if (names.length === 0) return yield* Validation.invalid("contract.operations", "must name at least one operation")
    for (const name of names) {
      const op: unknown = (operations as Record<string, unknown>)[name]
      const at = `contract.operations.${name}`
      if (typeof op !== "object" || op === null) return yield* Validation.invalid(at, "must be { input, output }")
      for (const side of ["input", "output"] as const) {
        if (!(side in op) || !Schema.isSchema((op as Record<string, unknown>)[side])) {
          return yield* Validation.invalid(`${at}.${side}`, "must be a Schema")
        }
      }
    }
    return contract
  })

/** Every way the handlers fail the contract (missing operations, handlers that are not functions). */
export const violations = (contract: Contract, handlers: unknown): ReadonlyArray<Violation> => {
  if (typeof handlers !== "object" || handlers === null) {
    return Object.keys(contract.operations).map((operation) => ({ operation, reason: "has no handler (no implementation object)" }))
  }
  const found: Array<Violation> = []
  for (const operation of Object.keys(contract.operations)) {
    const handler: unknown = (handlers as Record<string, unknown>)[operation]
    if (handler === undefined) found.push({ operation, reason: "is not implemented" })
    else if (typeof handler !== "function") found.push({ operation, reason: `must be a function, got ${typeOf(handler)}` })
  }
  return found
}

const typeOf = (u: unknown): string => u === null ? "null" : Array.isArray(u) ? "an array" : typeof u

const issuesError = (
  error: ParseResult.ParseError,
  prefix: "input" | "output"
): { field: string; reason: string; issues: ReadonlyArray<ValidationIssue> } => {
  const issues = Validation.issuesOf(error, prefix)
  const first = issues[0] ?? { field: prefix, reason: error.message }
  return { field: first.field, reason: first.reason, issues }
}

/** Checks handlers against a contract and wraps them (untyped core of `implement` and `layer`). */
const build = (
  contractInput: unknown,
  handlers: unknown
): Effect.Effect<Record<string, Handler>, ContractViolationError | ValidationError> =>
  Effect.gen(function*() {
    const contract = yield* checkContract(contractInput)
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const found = violations(contract, handlers)
    if (found.length > 0) {
      for (const v of found) {
        telemetry?.unsafeEmit(events.violation, { count: 1 }, {
          contract: contract.name,
          operation: v.operation,
          kind: "implementation",
          reason: v.reason
        })
      }
      return yield* Effect.fail(
        new ContractViolationError({
          contract: contract.name,
          operationName: found[0]!.operation,
          reason: found[0]!.reason,
          violations: found
        })
      )
    }
    const impl = handlers as Record<string, Handler>
    const wrapped: Record<string, Handler> = {}
    for (const [operation, schemas] of Object.entries(contract.operations)) {
      const handler = impl[operation]!
      const decodeInput = Schema.decodeUnknown(schemas.input, { errors: "all" })
      const validateOutput = Schema.validate(schemas.output, { errors: "all" })
      const outputError = (details: { field: string; reason: string; issues: ReadonlyArray<ValidationIssue> }) => {
        telemetry?.unsafeEmit(events.violation, { count: 1 }, {
          contract: contract.name,
          operation,
          kind: "output",
          reason: `${details.field}: ${details.reason}`
        })
        return new ContractOutputError({ contract: contract.name, operationName: operation, ...details })
      }
      wrapped[operation] = (input: unknown) =>
        Effect.flatMap(
          Effect.mapError(
            decodeInput(input),
            (error) => new ContractInputError({ contract: contract.name, operationName: operation, ...issuesError(error, "input") })
          ),
          (decoded) =>
            Effect.flatMap(
              Effect.suspend(() => {
                // Called with `this` = the handlers object, as a method call would.
                const result: unknown = handler.call(impl, decoded)
                return Effect.isEffect(result)
                  ? result as Effect.Effect<unknown, unknown, unknown>
                  : Effect.fail(outputError({
                    field: "output",
                    reason: `the handler must return an Effect, got ${typeOf(result)}`,
                    issues: []
                  }))
              }),
              (output) => Effect.mapError(validateOutput(output), (error) => outputError(issuesError(error, "output")))
            )
        )
    }
    return wrapped
  })

/**
 * Checks `handlers` against `contract` and returns the checked implementation. Fails with
 * `ContractViolationError` (every missing or non-function operation) or `ValidationError` (a bad
 * contract).
 */
export const implement = <C extends Contract, const H extends AnyHandlers<C>>(
  contract: C,
  handlers: H
): Effect.Effect<Implementation<C, H>, ContractViolationError | ValidationError> =>
  build(contract, handlers) as Effect.Effect<unknown, ContractViolationError | ValidationError> as Effect.Effect<
    Implementation<C, H>,
    ContractViolationError | ValidationError
  >

/** A layer providing `tag` with the checked implementation; the check runs when the layer is built. */
export const layer = <Id, C extends Contract, E, R>(
  tag: Context.Tag<Id, Service<C, E, R>>,
  contract: C,
  handlers: Handlers<C, E, R>
): Layer.Layer<Id, ContractViolationError | ValidationError> =>
  Layer.effect(
    tag,
    build(contract, handlers) as Effect.Effect<unknown, ContractViolationError | ValidationError> as Effect.Effect<
      Service<C, E, R>,
      ContractViolationError | ValidationError
    >
  )

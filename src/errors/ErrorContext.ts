/**
 * Operation context: a correlation id, metadata, a breadcrumb trail and the parent operation,
 * carried in a `FiberRef` so that it follows the fiber (and its children) and is restored when a
 * nested operation ends (the original kept it in the process dictionary and lost the parent).
 *
 * Guarantees: `withContext` never changes the success value or the typed error's type; errors of
 * the hierarchy raised inside get the context attached (the innermost one wins); a defect inside
 * becomes an `InternalError` that keeps the full cause and carries the context.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import {
  type Breadcrumb,
  InternalError,
  isFoundationError,
  type OperationContext
} from "./FoundationError.js"

export type { Breadcrumb, OperationContext } from "./FoundationError.js"

/** The current operation context of the fiber, if any. */
export const currentContext: FiberRef.FiberRef<Option.Option<OperationContext>> = FiberRef.unsafeMake(
  Option.none<OperationContext>()
)

let nextOperationId = 0

/** The current operation context. */
export const current: Effect.Effect<Option.Option<OperationContext>> = FiberRef.get(currentContext)

/** Options of a new operation context. */
export interface ContextOptions {
  /** The correlation id; default: the parent's, or a new random `corr_…` id. */
  readonly correlationId?: string
  /** Metadata merged over the parent's (the child wins). */
  readonly metadata?: Readonly<Record<string, unknown>>
}

/** Makes a context named `name`, as a child of the current one when there is one. */
export const make = (name: string, options: ContextOptions = {}): Effect.Effect<OperationContext> =>
  Effect.gen(function*() {
    const parent = Option.getOrUndefined(yield* FiberRef.get(currentContext))
    const now = yield* Clock.currentTimeMillis
    const correlationId = options.correlationId ?? parent?.correlationId ?? (yield* newCorrelationId)
    const metadata = { ...parent?.metadata, ...options.metadata }
    return {
      operationId: ++nextOperationId,
      name,
      correlationId,
      startedAt: now,
      metadata,
      breadcrumbs: [...(parent?.breadcrumbs ?? []), { name, at: now, metadata: options.metadata ?? {} }],
      parent
    }
  })

const newCorrelationId: Effect.Effect<string> = Effect.map(
  Effect.zip(Random.nextIntBetween(0, 0x7fffffff), Random.nextIntBetween(0, 0x7fffffff)),
  ([a, b]) => `corr_${a.toString(16).padStart(8, "0")}${b.toString(16).padStart(8, "0")}`
)

/**
 * Attaches an operation context to an error of the hierarchy that has none yet, returning a copy
 * (same class, same stack, same fields); other values are returned unchanged.
 */
export const attach = <E>(error: E, context: OperationContext): E => {
  if (!isFoundationError(error) || error.operation !== undefined) return error
  const copy = Object.create(Object.getPrototypeOf(error), Object.getOwnPropertyDescriptors(error)) as E
  Object.defineProperty(copy, "operation", { value: context, enumerable: true, writable: false, configurable: true })
  return copy
}

/**
 * Runs an effect inside a new operation context named `name` (a child of the current one).
 * Errors of the hierarchy get the context attached; a defect becomes an `InternalError`
 * carrying the context and the full cause. Log lines inside are annotated with the
 * correlation id.
 */
export const withContext: {
  (name: string, options?: ContextOptions): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | InternalError, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, name: string, options?: ContextOptions): Effect.Effect<A, E | InternalError, R>
} = dual(
  (args) => Effect.isEffect(args[0]),
  <A, E, R>(self: Effect.Effect<A, E, R>, name: string, options?: ContextOptions) =>
    Effect.flatMap(make(name, options), (context) =>
      self.pipe(
        Effect.catchAllCause((cause): Effect.Effect<never, E | InternalError> => {
          if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
          // The context as it is now, with the breadcrumbs and metadata added inside.
          return Effect.flatMap(FiberRef.get(currentContext), (now): Effect.Effect<never, E | InternalError> => {
            const latest = Option.getOrElse(now, () => context)
            const failure = Cause.failureOption(cause)
            if (Option.isSome(failure)) return Effect.fail(attach(failure.value, latest))
            return Effect.fail(attach(InternalError.fromCause(cause), latest))
          })
        }),
        Effect.locally(currentContext, Option.some(context)),
        Effect.annotateLogs("correlationId", context.correlationId)
      ))
)

/** Adds a breadcrumb to the current context (no-op outside any context). */
export const addBreadcrumb = (name: string, metadata: Readonly<Record<string, unknown>> = {}): Effect.Effect<void> =>
  Effect.flatMap(Clock.currentTimeMillis, (at) =>
    FiberRef.update(
      currentContext,
      Option.map((ctx): OperationContext => ({ ...ctx, breadcrumbs: [...ctx.breadcrumbs, { name, at, metadata }] }))
    ))

/** Merges metadata into the current context (no-op outside any context). */
export const addMetadata = (metadata: Readonly<Record<string, unknown>>): Effect.Effect<void> =>
  FiberRef.update(currentContext, Option.map((ctx): OperationContext => ({ ...ctx, metadata: { ...ctx.metadata, ...metadata } })))

/** Attaches the current context (if any) to an error of the hierarchy. */
export const enhance = <E>(error: E): Effect.Effect<E> =>
  Effect.map(FiberRef.get(currentContext), Option.match({ onNone: () => error, onSome: (ctx) => attach(error, ctx) }))

/** How long the operation has run, in milliseconds. */
export const elapsedMillis = (context: OperationContext): Effect.Effect<number> =>
  Effect.map(Clock.currentTimeMillis, (now) => now - context.startedAt)

/** The contexts from the outermost to this one. */
export const lineage = (context: OperationContext): ReadonlyArray<OperationContext> => {
  const chain: Array<OperationContext> = []
  for (let c: OperationContext | undefined = context; c !== undefined; c = c.parent) chain.unshift(c)
  return chain
}

/** `"a (120ms ago) -> b (20ms ago)"`, relative to `now` (epoch ms). */
export const formatBreadcrumbs = (context: OperationContext, now: number): string =>
  context.breadcrumbs.map((b: Breadcrumb) => `${b.name} (${Math.max(0, now - b.at)}ms ago)`).join(" -> ")

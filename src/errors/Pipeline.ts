/**
 * Typed error pipelines by category: catch, tap or test errors by their `category`, with the
 * error channel narrowed in the type system. Catching `"validation"` removes exactly the errors
 * whose category is `"validation"` from the error type; an error whose category is a union (a
 * `CodedError<ErrorType>`, say) is handed to the handler when the categories overlap and is
 * removed only when all of its possible categories were caught.
 */
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Predicate from "effect/Predicate"
import type { ErrorCategory } from "./Category.js"

/** The categories an error type can have. */
export type CategoryIn<E> = E extends { readonly category: infer C extends ErrorCategory } ? C : never

/** The members of `E` that may have a category in `C`. */
export type OfCategory<E, C extends ErrorCategory> = E extends { readonly category: infer K }
  ? [Extract<K, C>] extends [never] ? never : E
  : never

/** The members of `E` left once every error with a category in `C` is handled. */
export type ExcludeCategory<E, C extends ErrorCategory> = E extends { readonly category: infer K }
  ? [Exclude<K, C>] extends [never] ? never : E
  : E

const matches = (categories: ErrorCategory | ReadonlyArray<ErrorCategory>) =>
  typeof categories === "string"
    ? (u: unknown) => Predicate.hasProperty(u, "category") && u.category === categories
    : (u: unknown) =>
      Predicate.hasProperty(u, "category") && (categories as ReadonlyArray<unknown>).includes(u.category)

/** A refinement that is true for errors of the given categories. */
export const isCategory = <const C extends ErrorCategory>(...categories: ReadonlyArray<C>) => {
  const test = matches(categories)
  return <E>(error: E): error is OfCategory<E, C> => test(error)
}

/**
 * Handles the errors of one or more categories; the others pass through unchanged.
 *
 * @example
 * // Effect<User, NotFoundError | ValidationError> → Effect<User | null, NotFoundError>
 * const lenient = findUser(id).pipe(catchCategory("validation", () => Effect.succeed(null)))
 */
export const catchCategory: {
  <E, const C extends CategoryIn<E>, A1, E1, R1>(
    categories: C | ReadonlyArray<C>,
    f: (error: NoInfer<OfCategory<E, C>>) => Effect.Effect<A1, E1, R1>
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | A1, NoInfer<ExcludeCategory<E, C>> | E1, R | R1>
  <A, E, R, const C extends CategoryIn<E>, A1, E1, R1>(
    self: Effect.Effect<A, E, R>,
    categories: C | ReadonlyArray<C>,
    f: (error: OfCategory<E, C>) => Effect.Effect<A1, E1, R1>
  ): Effect.Effect<A | A1, ExcludeCategory<E, C> | E1, R | R1>
} = dual(3, <A, E, R, A1, E1, R1>(
  self: Effect.Effect<A, E, R>,
  categories: ErrorCategory | ReadonlyArray<ErrorCategory>,
  f: (error: E) => Effect.Effect<A1, E1, R1>
) => {
  const test = matches(categories)
  return Effect.catchIf(self, (e): e is E => test(e), f)
})

/** Runs an effect for the errors of the given categories, keeping the failure as it is. */
export const tapCategory: {
  <E, const C extends CategoryIn<E>, X, E1, R1>(
    categories: C | ReadonlyArray<C>,
    f: (error: NoInfer<OfCategory<E, C>>) => Effect.Effect<X, E1, R1>
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | E1, R | R1>
  <A, E, R, const C extends CategoryIn<E>, X, E1, R1>(
    self: Effect.Effect<A, E, R>,
    categories: C | ReadonlyArray<C>,
    f: (error: OfCategory<E, C>) => Effect.Effect<X, E1, R1>
  ): Effect.Effect<A, E | E1, R | R1>
} = dual(3, <A, E, R, X, E1, R1>(
  self: Effect.Effect<A, E, R>,
  categories: ErrorCategory | ReadonlyArray<ErrorCategory>,
  f: (error: E) => Effect.Effect<X, E1, R1>
) => {
  const test = matches(categories)
  return Effect.tapError(self, (e) => test(e) ? f(e) : Effect.void)
})

/**
 * Turns the errors of the given categories into defects: for failures that the caller declares
 * impossible or unrecoverable at this point (e.g. validation of constants).
 */
export const orDieCategory: {
  <E, const C extends CategoryIn<E>>(
    categories: C | ReadonlyArray<C>
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, NoInfer<ExcludeCategory<E, C>>, R>
  <A, E, R, const C extends CategoryIn<E>>(
    self: Effect.Effect<A, E, R>,
    categories: C | ReadonlyArray<C>
  ): Effect.Effect<A, ExcludeCategory<E, C>, R>
} = dual(2, <A, E, R>(self: Effect.Effect<A, E, R>, categories: ErrorCategory | ReadonlyArray<ErrorCategory>) => {
  const test = matches(categories)
  return Effect.catchIf(self, (e): e is E => test(e), Effect.die)
})

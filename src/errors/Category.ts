/**
 * Error categories and recovery strategies: the one vocabulary every module uses to say what
 * kind of failure happened and what to do about it.
 *
 * Guarantees: the category → strategy table is total and fixed; `isRetryableCategory` is true
 * exactly for `transient` and `resource`.
 */

/** What kind of failure an error is; decides how the recovery machinery treats it. */
export type ErrorCategory = "transient" | "permanent" | "resource" | "validation" | "system"

/** All categories, in a fixed order (useful for metrics and exhaustive tests). */
export const categories: ReadonlyArray<ErrorCategory> = [
  "transient",
  "permanent",
  "resource",
  "validation",
  "system"
]

/** What to do with a failure. */
export type RecoveryStrategy = "retry" | "circuit_break" | "fallback" | "propagate" | "compensate"

/** All strategies, in a fixed order. */
export const strategies: ReadonlyArray<RecoveryStrategy> = [
  "retry",
  "circuit_break",
  "fallback",
  "propagate",
  "compensate"
]

/**
 * The default category → strategy table:
 * transient → retry, resource → circuit_break, permanent → propagate, validation → propagate,
 * system → compensate.
 */
export const defaultStrategy: { readonly [C in ErrorCategory]: RecoveryStrategy } = {
  transient: "retry",
  permanent: "propagate",
  resource: "circuit_break",
  validation: "propagate",
  system: "compensate"
}

/** How bad a failure is. */
export type Severity = "low" | "medium" | "high" | "critical"

/** True for the categories worth retrying: `transient` and `resource`. */
export const isRetryableCategory = (category: ErrorCategory): boolean =>
  category === "transient" || category === "resource"

/** True when the value is one of the five categories. */
export const isErrorCategory = (u: unknown): u is ErrorCategory =>
  u === "transient" || u === "permanent" || u === "resource" || u === "validation" || u === "system"

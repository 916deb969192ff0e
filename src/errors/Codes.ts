/**
 * The numeric error-code table (1101–4401, 9999 for anything unknown), each entry's severity,
 * area and recovery category, and the retry-strategy derivation of the original system.
 *
 * Guarantees: every code is unique; `lookup` is total (unknown types map to 9999); the retry
 * strategy derivation applies the original's rules in their order, with the type-specific rules
 * checked before the severity rules so that none of them is unreachable (the original let the
 * severity rules shadow two type rules). For the built-in table both orders give the same answer.
 */
import * as Duration from "effect/Duration"
import type { ErrorCategory, Severity } from "./Category.js"

/** The functional area a coded error belongs to. */
export type ErrorArea = "config" | "system" | "data" | "external" | "unknown"

/** How a coded error should be retried, by the original's classification. */
export type RetryStrategy = "no_retry" | "immediate" | "fixed_delay" | "exponential_backoff"

/** One row of the code table. */
export interface CodeEntry {
  readonly code: number
  readonly severity: Severity
  readonly area: ErrorArea
  readonly subarea: string
  readonly category: ErrorCategory
  readonly message: string
}

const entry = <const C extends ErrorCategory>(
  code: number,
  severity: Severity,
  area: ErrorArea,
  subarea: string,
  category: C,
  message: string
) => ({ code, severity, area, subarea, category, message }) as const

/** The code table, keyed by error type. */
export const codeTable = {
  invalid_config_structure: entry(1101, "high", "config", "structure", "validation", "Invalid configuration structure"),
  missing_required_field: entry(1102, "high", "config", "structure", "validation", "Required configuration field missing"),
  invalid_config_value: entry(1201, "medium", "config", "validation", "validation", "Invalid configuration value"),
  constraint_violation: entry(1202, "medium", "config", "validation", "validation", "Configuration constraint violated"),
  range_error: entry(1203, "low", "config", "validation", "validation", "Value out of range"),
  config_not_found: entry(1301, "high", "config", "access", "permanent", "Configuration not found"),
  config_update_forbidden: entry(1401, "medium", "config", "runtime", "permanent", "Configuration update forbidden"),
  initialization_failed: entry(2101, "critical", "system", "initialization", "system", "Initialization failed"),
  service_unavailable: entry(2102, "high", "system", "initialization", "transient", "Service unavailable"),
  registry_not_configured: entry(2103, "high", "system", "initialization", "permanent", "Registry not configured"),
  resource_exhausted: entry(2201, "high", "system", "resources", "resource", "Resource exhausted"),
  dependency_failed: entry(2301, "high", "system", "dependencies", "transient", "Dependency failed"),
  internal_error: entry(2401, "critical", "system", "runtime", "system", "Internal error"),
  process_not_alive: entry(2402, "medium", "system", "runtime", "transient", "Process not alive"),
  serialization_failed: entry(3101, "medium", "data", "serialization", "permanent", "Serialization failed"),
  deserialization_failed: entry(3102, "medium", "data", "serialization", "permanent", "Deserialization failed"),
  type_mismatch: entry(3201, "low", "data", "validation", "validation", "Type mismatch"),
  format_error: entry(3202, "low", "data", "validation", "validation", "Invalid format"),
  validation_failed: entry(3203, "medium", "data", "validation", "validation", "Validation failed"),
  invalid_input: entry(3204, "low", "data", "validation", "validation", "Invalid input"),
  data_corruption: entry(3301, "critical", "data", "corruption", "system", "Data corruption detected"),
  data_not_found: entry(3401, "low", "data", "not_found", "permanent", "Data not found"),
  network_error: entry(4101, "medium", "external", "network", "transient", "Network error"),
  external_service_error: entry(4201, "medium", "external", "service", "transient", "External service error"),
  timeout: entry(4301, "medium", "external", "timeout", "transient", "Operation timed out"),
  authentication_failed: entry(4401, "high", "external", "auth", "permanent", "Authentication failed"),
  unknown: entry(9999, "medium", "unknown", "unknown", "system", "Unknown error")
} as const satisfies Record<string, CodeEntry>

/** An error type named in the code table. */
export type ErrorType = keyof typeof codeTable

/** The recovery category of a coded error type. */
export type CategoryOf<T extends ErrorType> = (typeof codeTable)[T]["category"]

/** Every error type in the table, in code order. */
export const errorTypes: ReadonlyArray<ErrorType> = (Object.keys(codeTable) as Array<ErrorType>).sort(
  (a, b) => codeTable[a].code - codeTable[b].code
)

/** The entry for a type; anything not in the table is the `unknown` entry (9999). */
export const lookup = (type: string): CodeEntry =>
  Object.prototype.hasOwnProperty.call(codeTable, type) ? codeTable[type as ErrorType] : codeTable.unknown

/** True when the string names a type of the table. */
export const isErrorType = (u: unknown): u is ErrorType =>
  typeof u === "string" && Object.prototype.hasOwnProperty.call(codeTable, u)

/** The type whose code is `code`, if any. */
export const typeOfCode = (code: number): ErrorType | undefined => errorTypes.find((t) => codeTable[t].code === code)

/**
 * Derives the retry strategy of a coded error (first match wins):
 * 1. timeout → exponential_backoff; 2. network_error → exponential_backoff;
 * 3. external_service_error → fixed_delay; 4. invalid_config_value → no_retry;
 * 5. data_corruption → no_retry; 6. resource_exhausted → immediate;
 * 7. severity critical → no_retry; 8. severity high → immediate; 9. otherwise fixed_delay.
 */
export const retryStrategyOf = (type: string, severity: Severity = lookup(type).severity): RetryStrategy => {
  switch (type) {
    case "timeout":
    case "network_error":
      return "exponential_backoff"
    case "external_service_error":
      return "fixed_delay"
    case "invalid_config_value":
    case "data_corruption":
      return "no_retry"
    case "resource_exhausted":
      return "immediate"
  }
  if (severity === "critical") return "no_retry"
  if (severity === "high") return "immediate"
  return "fixed_delay"
}

/**
 * The delay before retry number `attempt` (0-based) under a retry strategy:
 * exponential = min(1000·2ⁿ, 30 000) ms, fixed = 1000 ms, immediate = 0, no_retry = infinity.
 */
export const retryDelay = (strategy: RetryStrategy, attempt: number): Duration.Duration => {
  switch (strategy) {
    case "exponential_backoff":
      return Duration.millis(Math.min(1000 * 2 ** Math.max(0, attempt), 30_000))
    case "fixed_delay":
      return Duration.seconds(1)
    case "immediate":
      return Duration.zero
    case "no_retry":
      return Duration.infinity
  }
}

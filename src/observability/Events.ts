/**
 * The catalogue of telemetry events the library emits: one place for their names (dotted, as
 * the original's `[:foundation, component, action]` lists, where the original had one) and the
 * shapes of their measurements and metadata. Durations are milliseconds everywhere.
 *
 * Per-call successes are not events (they would cost every call an envelope); they are metrics.
 * Events mark what is worth reacting to: state changes, rejections, retries, timeouts.
 */

/** Every event name, by component. */
export const names = {
  circuitBreaker: {
    /** measurements {} · metadata { breaker, from_state, to_state } */
    stateChange: "foundation.circuit_breaker.state_change",
    /** measurements { count: 1, retry_after_ms } · metadata { breaker, state } */
    callRejected: "foundation.circuit_breaker.call_rejected"
  },
  rateLimiter: {
    /** measurements { count: 1, retry_after_ms, remaining } · metadata { limiter, key } */
    denied: "foundation.rate_limiter.denied"
  },
  retry: {
    /** measurements { attempt, delay_ms } · metadata { policy, error_category, error } */
    retry: "foundation.retry.retry",
    /** measurements { attempts } · metadata { policy, error_category, error, reason } */
    exhausted: "foundation.retry.exhausted"
  },
  bulkhead: {
    /** measurements { count: 1 } · metadata { bulkhead, max_concurrent, max_queued } */
    rejected: "foundation.bulkhead.rejected"
  },
  timeout: {
    /** measurements { timeout_ms } · metadata { timeout } */
    expired: "foundation.timeout.expired"
  },
  recovery: {
    /** measurements { count: 1 } · metadata { strategy, error_category, outcome, error } */
    handled: "foundation.error_handler.handled"
  }
} as const

/** Every event name, flat. */
export const all: ReadonlyArray<string> = Object.values(names).flatMap((group) => Object.values(group))

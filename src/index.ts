/**
 * effect-foundation: resilient services and multi-agent systems on Effect 3.22.
 * Every public module is reached from here as a namespace:
 * `import { CircuitBreaker, FoundationError } from "effect-foundation"`.
 */
export * as ErrorContext from "./errors/ErrorContext.js"
export * as ErrorPipeline from "./errors/Pipeline.js"
export * as FoundationError from "./errors/FoundationError.js"
export * as Validation from "./errors/Validation.js"
export * as EventBus from "./observability/EventBus.js"
export * as Events from "./observability/Events.js"
export * as LoadTest from "./observability/LoadTest.js"
export * as MetricKit from "./observability/MetricKit.js"
export * as Otel from "./observability/Otel.js"
export * as PerformanceMonitor from "./observability/PerformanceMonitor.js"
export * as Prometheus from "./observability/Prometheus.js"
export * as Sampler from "./observability/Sampler.js"
export * as Telemetry from "./observability/Telemetry.js"
export * as Bulkhead from "./resilience/Bulkhead.js"
export * as CircuitBreaker from "./resilience/CircuitBreaker.js"
export * as Protect from "./resilience/Protect.js"
export * as RateLimiter from "./resilience/RateLimiter.js"
export * as Recovery from "./resilience/Recovery.js"
export * as Retry from "./resilience/Retry.js"
export * as Timeout from "./resilience/Timeout.js"

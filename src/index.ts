/**
 * effect-foundation: resilient services and multi-agent systems on Effect 3.22.
 * Every public module is reached from here as a namespace:
 * `import { CircuitBreaker, FoundationError } from "effect-foundation"`.
 */
export * as ErrorContext from "./errors/ErrorContext.js"
export * as ErrorPipeline from "./errors/Pipeline.js"
export * as FoundationError from "./errors/FoundationError.js"
export * as Validation from "./errors/Validation.js"

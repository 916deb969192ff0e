import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Either, Exit, Option } from "effect"
import * as FoundationError from "../../src/errors/FoundationError.js"
import * as Pipeline from "../../src/errors/Pipeline.js"
import * as Validation from "../../src/errors/Validation.js"

const {
  AlreadyExistsError,
  BackpressureError,
  BulkheadFullError,
  CircuitOpenError,
  InternalError,
  NotFoundError,
  RateLimitedError,
  ResourceExhaustedError,
  ServiceUnavailableError,
  TimeoutError,
  ValidationError
} = FoundationError

describe("categories and strategies", () => {
  it("maps each category to its default strategy", () => {
    expect(FoundationError.defaultStrategy).toEqual({
      transient: "retry",
      resource: "circuit_break",
      permanent: "propagate",
      validation: "propagate",
      system: "compensate"
    })
  })

  it("retries only transient and resource", () => {
    expect(FoundationError.categories.filter(FoundationError.isRetryableCategory)).toEqual(["transient", "resource"])
  })
})

describe("code table", () => {
  it("has 26 typed entries from 1101 to 4401 plus 9999, all codes unique", () => {
    const codes = FoundationError.errorTypes.map((t) => FoundationError.codeTable[t].code)
    expect(codes.length).toBe(27)
    expect(new Set(codes).size).toBe(27)
    expect(codes[0]).toBe(1101)
    expect(codes[25]).toBe(4401)
    expect(codes[26]).toBe(9999)
  })

  it("maps unknown types to 9999 medium", () => {
    expect(FoundationError.lookup("no_such_type")).toMatchObject({ code: 9999, severity: "medium", area: "unknown" })
    expect(FoundationError.lookup("toString").code).toBe(9999)
  })

  it("derives the retry strategy by the original's rules", () => {
    const s = FoundationError.retryStrategyOf
    expect(s("timeout")).toBe("exponential_backoff")
    expect(s("network_error")).toBe("exponential_backoff")
    expect(s("external_service_error")).toBe("fixed_delay")
    expect(s("internal_error")).toBe("no_retry") // critical
    expect(s("initialization_failed")).toBe("no_retry") // critical
    expect(s("config_not_found")).toBe("immediate") // high
    expect(s("authentication_failed")).toBe("immediate") // high
    expect(s("invalid_config_value")).toBe("no_retry")
    expect(s("data_corruption")).toBe("no_retry")
    expect(s("resource_exhausted")).toBe("immediate")
    expect(s("data_not_found")).toBe("fixed_delay")
    expect(s("whatever")).toBe("fixed_delay")
    // type rules come before severity rules: a critical timeout still backs off
    expect(s("timeout", "critical")).toBe("exponential_backoff")
    expect(s("resource_exhausted", "critical")).toBe("immediate")
  })

  it("computes the original's retry delays", () => {
    const ms = (n: number) => Duration.toMillis(FoundationError.retryDelay("exponential_backoff", n))
    expect([0, 1, 2, 3, 4, 5, 6].map(ms)).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000])
    expect(Duration.toMillis(FoundationError.retryDelay("fixed_delay", 7))).toBe(1000)
    expect(Duration.toMillis(FoundationError.retryDelay("immediate", 7))).toBe(0)
    expect(Duration.isFinite(FoundationError.retryDelay("no_retry", 0))).toBe(false)
  })
})

describe("error classes", () => {
  it("carry category, severity and code", () => {
    const cases = [
      [new CircuitOpenError({ breaker: "b", retryAfter: Duration.seconds(1), state: "open" }), "resource", undefined],
      [new RateLimitedError({ limiter: "l", key: "k", retryAfter: Duration.seconds(1), remaining: 0, limit: 5 }), "resource", undefined],
      [new TimeoutError({ timeout: Duration.seconds(1) }), "transient", 4301],
      [new BackpressureError({ resource: "q" }), "resource", undefined],
      [new BulkheadFullError({ bulkhead: "b", maxConcurrent: 1, maxQueued: 0 }), "resource", undefined],
      [new ValidationError({ field: "f", reason: "r" }), "validation", 3203],
      [new NotFoundError({ resource: "agent", key: "a1" }), "permanent", 3401],
      [new AlreadyExistsError({ resource: "agent", key: "a1" }), "permanent", undefined],
      [new ServiceUnavailableError({ service: "s" }), "transient", 2102],
      [new ResourceExhaustedError({ resource: "memory" }), "resource", 2201],
      [InternalError.fromUnknown("boom"), "system", 2401]
    ] as const
    for (const [error, category, code] of cases) {
      expect(FoundationError.isFoundationError(error)).toBe(true)
      expect(error.category).toBe(category)
      expect(error.code).toBe(code)
      expect(error.message.length).toBeGreaterThan(0)
    }
  })

  it("builds messages from fields, and lets an explicit message win", () => {
    const open = new CircuitOpenError({ breaker: "db", retryAfter: Duration.seconds(5), state: "open" })
    expect(open.message).toBe(`Circuit breaker "db" is open; retry after 5s`)
    expect(String(open.stack)).toContain("Circuit breaker \"db\" is open")
    const v = new ValidationError({ field: "limit", reason: "must be ≥ 1, got 0", message: "custom" })
    expect(v.message).toBe("custom")
    expect(JSON.parse(JSON.stringify(open))).toMatchObject({ _tag: "CircuitOpenError", category: "resource", breaker: "db", message: open.message })
  })

  it("are yieldable and matchable by tag", () =>
    Effect.gen(function*() {
      const result = yield* Effect.gen(function*() {
        return yield* new NotFoundError({ resource: "agent", key: "x" })
      }).pipe(Effect.catchTag("NotFoundError", (e) => Effect.succeed(e.key)))
      expect(result).toBe("x")
    }).pipe(Effect.runSync))

  it("InternalError keeps the full cause with its stack", () => {
    const original = new Error("kaboom")
    const cause = Cause.sequential(Cause.die(original), Cause.fail("second"))
    const internal = InternalError.fromCause(cause)
    expect(internal.cause).toBe(cause)
    expect(internal.message).toBe("Internal error: second")
    expect(internal.pretty).toContain("kaboom")
    expect(internal.pretty).toContain("FoundationError.test.ts")
    expect(Cause.defects(internal.cause).pipe((c) => [...c])).toEqual([original])
  })

  it("coded errors take code, severity and category from the table", () => {
    const e = FoundationError.coded("authentication_failed", undefined, { user: "u" })
    expect([e.code, e.severity, e.category, e.message]).toEqual([4401, "high", "permanent", "Authentication failed"])
    expect(FoundationError.coded("network_error").category).toBe("transient")
    expect(FoundationError.retryStrategy(e)).toBe("immediate")
    expect(FoundationError.retryStrategy(new TimeoutError({ timeout: Duration.seconds(1) }))).toBe("exponential_backoff")
  })

  it("normalize keeps hierarchy errors and wraps anything else as a system error", () => {
    const nf = new NotFoundError({ resource: "r", key: "k" })
    expect(FoundationError.normalize(nf)).toBe(nf)
    const raw = FoundationError.normalize({ reason: "weird" })
    expect(raw._tag).toBe("InternalError")
    expect(raw.category).toBe("system")
    expect(Cause.failureOption((raw as InstanceType<typeof InternalError>).cause)).toEqual(Option.some({ reason: "weird" }))
    expect(FoundationError.categoryOf("string")).toBe("system")
    expect(FoundationError.categoryOf(nf)).toBe("permanent")
  })

  it("formats as [code:Tag] message | Severity", () => {
    expect(FoundationError.format(new NotFoundError({ resource: "agent", key: "a" }))).toBe(
      `[3401:NotFoundError] agent "a" not found | Severity: low`
    )
  })
})

describe("typed pipelines by category", () => {
  const program = (n: number): Effect.Effect<
    string,
    | InstanceType<typeof ValidationError>
    | InstanceType<typeof TimeoutError>
    | InstanceType<typeof NotFoundError>
  > =>
    n === 0
      ? Effect.fail(new ValidationError({ field: "n", reason: "zero" }))
      : n === 1
      ? Effect.fail(new TimeoutError({ timeout: Duration.seconds(1) }))
      : n === 2
      ? Effect.fail(new NotFoundError({ resource: "n", key: "2" }))
      : Effect.succeed("ok")

  it("catchCategory removes exactly the caught category from the error type", () => {
    const handled = program(0).pipe(Pipeline.catchCategory("validation", (e) => Effect.succeed(`fixed ${e.field}`)))
    // Type-level check: the remaining error type has no ValidationError.
    const check: Effect.Effect<
      string,
      InstanceType<typeof TimeoutError> | InstanceType<typeof NotFoundError>
    > = handled
    expect(Effect.runSync(check)).toBe("fixed n")
    const passed = Effect.runSyncExit(program(1).pipe(Pipeline.catchCategory("validation", () => Effect.succeed("no"))))
    expect(Exit.isFailure(passed) && Cause.failureOption(passed.cause).pipe(Option.map((e) => e._tag))).toEqual(
      Option.some("TimeoutError")
    )
  })

  it("catchCategory with several categories", () => {
    const handled = program(2).pipe(Pipeline.catchCategory(["permanent", "transient"], (e) => Effect.succeed(e._tag)))
    const check: Effect.Effect<string, InstanceType<typeof ValidationError>> = handled
    expect(Effect.runSync(check)).toBe("NotFoundError")
  })

  it("isCategory refines, tapCategory observes without handling", () => {
    const seen: Array<string> = []
    const exit = Effect.runSyncExit(
      program(1).pipe(Pipeline.tapCategory("transient", (e) => Effect.sync(() => seen.push(e._tag))))
    )
    expect(Exit.isFailure(exit)).toBe(true)
    expect(seen).toEqual(["TimeoutError"])
    expect(Pipeline.isCategory("transient", "resource")(new TimeoutError({ timeout: Duration.seconds(1) }))).toBe(true)
    expect(Pipeline.isCategory("transient")(new NotFoundError({ resource: "a", key: "b" }))).toBe(false)
  })

  it("coded errors with a union category are handled but kept in the type", () => {
    const e: FoundationError.CodedError = FoundationError.coded("network_error")
    const handled = Effect.fail(e).pipe(Pipeline.catchCategory("transient", () => Effect.succeed("retried")))
    const check: Effect.Effect<string, FoundationError.CodedError> = handled
    expect(Effect.runSync(check)).toBe("retried")
  })
})

describe("Validation", () => {
  const left = <A>(e: Either.Either<A, InstanceType<typeof ValidationError>>) =>
    Either.isLeft(e) ? { field: e.left.field, reason: e.left.reason } : undefined

  it("rejects NaN, infinity, negatives and zero durations, naming the field", () => {
    expect(left(Validation.duration("resetTimeout", Number.NaN))?.field).toBe("resetTimeout")
    expect(left(Validation.duration("resetTimeout", -5))?.reason).toContain("negative")
    expect(left(Validation.duration("window", 0))?.reason).toContain("greater than zero")
    expect(left(Validation.duration("window", "1 parsec"))?.reason).toContain("must be a duration")
    expect(left(Validation.duration("window", Duration.infinity))?.reason).toContain("finite")
    expect(Either.isRight(Validation.duration("window", Duration.infinity, { allowInfinite: true }))).toBe(true)
    expect(Either.getOrThrow(Validation.duration("window", "5 seconds"))).toEqual(Duration.seconds(5))
    expect(Either.isRight(Validation.duration("delay", 0, { allowZero: true }))).toBe(true)
  })

  it("checks numbers, ratios and choices", () => {
    expect(left(Validation.positiveInt("limit", 0))?.reason).toBe("must be ≥ 1, got 0")
    expect(left(Validation.positiveInt("limit", 1.5))?.reason).toContain("integer")
    expect(left(Validation.ratio("threshold", 1.2))?.reason).toContain("≤ 1")
    expect(left(Validation.ratio("threshold", 0, { exclusiveZero: true }))?.reason).toContain("> 0")
    expect(left(Validation.number("x", Number.NaN))?.reason).toContain("number")
    expect(left(Validation.oneOf("algorithm", "leaky", ["token-bucket", "fixed-window"]))?.reason).toBe(
      `must be one of "token-bucket", "fixed-window", got "leaky"`
    )
  })
})

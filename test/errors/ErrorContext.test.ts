import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Fiber, Option, Random, TestClock } from "effect"
import * as ErrorContext from "../../src/errors/ErrorContext.js"
import { InternalError, NotFoundError } from "../../src/errors/FoundationError.js"

describe("ErrorContext", () => {
  it.effect("nested contexts inherit the correlation id and metadata, and the parent is restored", () =>
    Effect.gen(function*() {
      const seen: Array<ErrorContext.OperationContext> = []
      const capture = Effect.flatMap(ErrorContext.current, (c) => Effect.sync(() => Option.map(c, (ctx) => seen.push(ctx))))
      yield* capture.pipe(
        Effect.zipRight(capture.pipe(ErrorContext.withContext("inner", { metadata: { step: 2, shared: "child" } }))),
        Effect.zipRight(capture),
        ErrorContext.withContext("outer", { correlationId: "corr_fixed", metadata: { step: 1, shared: "parent" } })
      )
      const [outer, inner, outerAgain] = seen
      expect(outer?.name).toBe("outer")
      expect(inner?.name).toBe("inner")
      expect(inner?.correlationId).toBe("corr_fixed")
      expect(inner?.metadata).toEqual({ step: 2, shared: "child" })
      expect(inner?.parent).toBe(outer)
      expect(inner?.breadcrumbs.map((b) => b.name)).toEqual(["outer", "inner"])
      expect(outerAgain).toBe(outer) // restored after the nested operation (the original lost it)
      expect(Option.isNone(yield* ErrorContext.current)).toBe(true)
      expect(ErrorContext.lineage(inner!).map((c) => c.name)).toEqual(["outer", "inner"])
    }))

  it.effect("a random correlation id is made when none is inherited, reproducible under a seed", () =>
    Effect.gen(function*() {
      const a = yield* ErrorContext.make("op")
      expect(a.correlationId).toMatch(/^corr_[0-9a-f]{16}$/)
      const b = yield* ErrorContext.make("op")
      expect(b.correlationId).not.toBe(a.correlationId)
      expect(b.operationId).toBeGreaterThan(a.operationId)
      const seeded = Effect.suspend(() =>
        Effect.map(ErrorContext.make("op"), (c) => c.correlationId).pipe(Effect.withRandom(Random.make(7)))
      )
      expect(yield* seeded).toBe(yield* seeded)
    }))

  it.effect("errors of the hierarchy get the context (with what was added inside); other errors pass unchanged", () =>
    Effect.gen(function*() {
      const failing = Effect.gen(function*() {
        yield* ErrorContext.addBreadcrumb("db.query", { table: "users" })
        yield* ErrorContext.addMetadata({ userId: "u1" })
        return yield* new NotFoundError({ resource: "user", key: "u1" })
      }).pipe(ErrorContext.withContext("load-user"))
      const error = yield* Effect.flip(failing)
      expect(error).toBeInstanceOf(NotFoundError)
      expect(error._tag).toBe("NotFoundError")
      expect(error.operation?.name).toBe("load-user")
      expect(error.operation?.breadcrumbs.map((b) => b.name)).toEqual(["load-user", "db.query"])
      expect(error.operation?.metadata).toEqual({ userId: "u1" })
      expect(error.message).toBe(`user "u1" not found`)
      const raw = yield* Effect.flip(Effect.fail("plain").pipe(ErrorContext.withContext("op")))
      expect(raw).toBe("plain")
    }))

  it.effect("the innermost context wins", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.fail(new NotFoundError({ resource: "r", key: "k" })).pipe(
          ErrorContext.withContext("inner"),
          ErrorContext.withContext("outer")
        )
      )
      expect(error.operation?.name).toBe("inner")
    }))

  it.effect("a defect becomes an InternalError with the context and the full cause", () =>
    Effect.gen(function*() {
      const boom = new Error("kaboom")
      const error = yield* Effect.flip(Effect.die(boom).pipe(ErrorContext.withContext("risky")))
      expect(error).toBeInstanceOf(InternalError)
      expect((error as InternalError).operation?.name).toBe("risky")
      expect([...Cause.defects((error as InternalError).cause)]).toEqual([boom])
    }))

  it.effect("interruption passes through untouched", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.never.pipe(ErrorContext.withContext("waiting")))
      yield* Effect.yieldNow()
      const exit = yield* Fiber.interrupt(fiber)
      expect(exit._tag === "Failure" && Cause.isInterruptedOnly(exit.cause)).toBe(true)
    }))

  it.effect("formats breadcrumbs relative to now and measures elapsed time on the Clock", () =>
    Effect.gen(function*() {
      const ctx = yield* ErrorContext.make("a")
      yield* TestClock.adjust("120 millis")
      const child = yield* ErrorContext.make("b").pipe(Effect.locally(ErrorContext.currentContext, Option.some(ctx)))
      yield* TestClock.adjust("20 millis")
      expect(ErrorContext.formatBreadcrumbs(child, 140)).toBe("a (140ms ago) -> b (20ms ago)")
      expect(yield* ErrorContext.elapsedMillis(ctx)).toBe(140)
    }))

  it.effect("enhance attaches the current context outside withContext's failure path", () =>
    Effect.gen(function*() {
      const error = new NotFoundError({ resource: "x", key: "y" })
      const plain = yield* ErrorContext.enhance(error)
      expect(plain).toBe(error) // no context: unchanged
      const enhanced = yield* ErrorContext.enhance(error).pipe(ErrorContext.withContext("op"))
      expect(enhanced.operation?.name).toBe("op")
      expect(enhanced.stack).toBe(error.stack)
      expect(error.operation).toBeUndefined() // the original is not mutated
    }))
})

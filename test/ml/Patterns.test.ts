import { describe, expect, it } from "@effect/vitest"
import { Cause, type Duration, Effect, Exit, Fiber, Option, Ref, TestClock } from "effect"
import * as Example from "../../examples/patterns.js"
import { ValidationError } from "../../src/errors/FoundationError.js"
import * as Patterns from "../../src/ml/Patterns.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

describe("Patterns.pipeline", () => {
  const add = (n: number) => (x: number) => Effect.succeed(x + n)

  it.effect("runs stages in order and records each output (3 → +1 → ×2 = 8)", () =>
    Effect.gen(function*() {
      const result = yield* Patterns.pipeline<number>([
        { name: "inc", run: add(1) },
        { name: "double", run: (x) => Effect.succeed(x * 2) }
      ], 3)
      expect(result.output).toBe(8)
      expect(result.outcomes).toEqual([
        { stage: "inc", status: "ok", output: 4 },
        { stage: "double", status: "ok", output: 8 }
      ])
    }))

  it.effect("skip passes the input through unchanged and records the error", () =>
    Effect.gen(function*() {
      const result = yield* Patterns.pipeline<number, string>([
        { name: "inc", run: add(1) },
        { name: "broken", run: () => Effect.fail("bad"), onError: "skip" },
        { name: "double", run: (x) => Effect.succeed(x * 2) }
      ], 3)
      expect(result.output).toBe(8)
      expect(result.outcomes[1]).toEqual({ stage: "broken", status: "skipped", error: "bad" })
    }))

  it.effect("halt (the default) stops at the failing stage, runs nothing after it and undoes nothing", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const exit = yield* Effect.exit(Patterns.pipeline<number, string>([
        { name: "inc", run: add(1), compensate: () => Effect.sync(() => log.push("undo inc")) },
        { name: "broken", run: () => Effect.fail("bad") },
        { name: "never", run: (x) => Effect.sync(() => (log.push("never ran"), x)) }
      ], 3))
      const error = failureOf(exit)
      expect(error?._tag).toBe("PipelineError")
      if (error?._tag !== "PipelineError") return
      expect(error.stage).toBe("broken")
      expect(error.error).toBe("bad")
      expect(error.policy).toBe("halt")
      expect(error.compensated).toEqual([])
      expect(error.outcomes).toEqual([
        { stage: "inc", status: "ok", output: 4 },
        { stage: "broken", status: "failed", error: "bad" }
      ])
      expect(log).toEqual([])
    }))

  it.effect("compensate rolls back the completed stages in reverse, with their input, the error and their output", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const undo = (name: string) => (input: number, error: string, output: number) =>
        Effect.sync(() => void log.push(`${name}(${input}→${output}) because ${error}`))
      const exit = yield* Effect.exit(Patterns.pipeline<number, string>([
        { name: "a", run: add(1), compensate: undo("a") },
        { name: "skipped", run: () => Effect.fail("meh"), onError: "skip", compensate: undo("skipped") },
        { name: "b", run: add(10) }, // no hook: nothing to undo
        { name: "c", run: add(100), compensate: undo("c") },
        { name: "d", run: () => Effect.fail("boom"), onError: "compensate", compensate: undo("d") },
        { name: "e", run: add(1000), compensate: undo("e") }
      ], 0))
      expect(log).toEqual(["c(11→111) because boom", "a(0→1) because boom"])
      const error = failureOf(exit)
      if (error?._tag !== "PipelineError") return expect.fail("expected a PipelineError")
      expect(error.policy).toBe("compensate")
      expect(error.stage).toBe("d")
      expect(error.compensated).toEqual(["c", "a"])
      expect(error.outcomes.map((o) => `${o.stage}:${o.status}`)).toEqual([
        "a:compensated",
        "skipped:skipped",
        "b:ok",
        "c:compensated",
        "d:failed"
      ])
    }))

  it.effect("a failing compensation is recorded and the rollback goes on", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const exit = yield* Effect.exit(Patterns.pipeline<number, string>([
        { name: "a", run: add(1), compensate: () => Effect.sync(() => void log.push("undo a")) },
        { name: "b", run: add(1), compensate: () => Effect.fail("cannot undo b") },
        { name: "c", run: () => Effect.fail("boom"), onError: "compensate" }
      ], 0))
      expect(log).toEqual(["undo a"])
      const error = failureOf(exit)
      if (error?._tag !== "PipelineError") return expect.fail("expected a PipelineError")
      expect(error.compensated).toEqual(["a"])
      expect(error.outcomes[1]).toEqual({ stage: "b", status: "compensationFailed", output: 2, error: "cannot undo b" })
    }))

  it.effect("rejects duplicate or empty stage names and unknown policies before running anything", () =>
    Effect.gen(function*() {
      let runs = 0
      const run = (x: number) => Effect.sync(() => (runs++, x))
      const dup = failureOf(yield* Effect.exit(Patterns.pipeline([{ name: "a", run }, { name: "a", run }], 0)))
      expect(dup).toBeInstanceOf(ValidationError)
      expect(dup?._tag === "ValidationError" && dup.field).toBe("stages[1].name")
      const empty = failureOf(yield* Effect.exit(Patterns.pipeline([{ name: "", run }], 0)))
      expect(empty?._tag === "ValidationError" && empty.field).toBe("stages[0].name")
      const policy = failureOf(
        yield* Effect.exit(Patterns.pipeline([{ name: "a", run, onError: "retry" as Patterns.ErrorPolicy }], 0))
      )
      expect(policy?._tag === "ValidationError" && policy.field).toBe("stages[0].onError")
      expect(runs).toBe(0)
    }))
})

describe("Patterns.ensemble", () => {
  const answer = <A>(name: string, value: A, after?: Duration.DurationInput, weight?: number): Patterns.Member<A> => ({
    name,
    run: after === undefined ? Effect.succeed(value) : Effect.as(Effect.sleep(after), value),
    ...(weight === undefined ? {} : { weight })
  })

  it.effect("each member has its own timeout: slow members are recorded as timed out, on the TestClock", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Patterns.ensemble([
        answer("fast", "cat", "50 millis"),
        answer("slow", "dog", "200 millis"),
        answer("ok", "cat", "99 millis")
      ], { timeout: "100 millis", combine: "majority" }))
      yield* TestClock.adjust("99 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true) // still waiting for "slow"
      yield* TestClock.adjust("1 millis")
      const result = yield* Fiber.join(fiber)
      expect(result.value).toBe("cat")
      expect(result.outcomes.map((o) => `${o.name}:${o.status}`)).toEqual(["fast:answered", "slow:timedOut", "ok:answered"])
      expect(result.answers.map((a) => a.name)).toEqual(["fast", "ok"])
    }))

  it.effect("majority corrects disjoint errors: three classifiers, each wrong on a different input", () =>
    Effect.gen(function*() {
      const truth = ["a", "b", "c"]
      const classifier = (wrongOn: number) => (i: number) => (i === wrongOn ? "x" : truth[i]!)
      const predictions = yield* Effect.forEach([0, 1, 2], (i) =>
        Patterns.ensemble([0, 1, 2].map((m) => answer(`m${m}`, classifier(m)(i))), { timeout: "1 second", combine: "majority" })
          .pipe(Effect.map((r) => r.value)))
      expect(predictions).toEqual(truth)
    }))

  it.effect("fewer answers than the quorum (default ⌊n/2⌋+1) fail with QuorumNotReachedError carrying the answers", () =>
    Effect.gen(function*() {
      const members: ReadonlyArray<Patterns.Member<string, string>> = [
        answer("a", "cat"),
        { name: "b", run: Effect.fail("down") },
        { name: "c", run: Effect.die("crashed") }
      ]
      const error = failureOf(yield* Effect.exit(Patterns.ensemble(members, { timeout: "1 second", combine: "majority" })))
      if (error?._tag !== "QuorumNotReachedError") return expect.fail("expected QuorumNotReachedError")
      expect(error.quorum).toBe(2)
      expect(error.answers).toEqual([{ name: "a", value: "cat", weight: 1 }])
      expect(error.outcomes.map((o) => o.status)).toEqual(["answered", "failed", "failed"])
      // With quorum 1 the survivor decides.
      const ok = yield* Patterns.ensemble(members, { timeout: "1 second", combine: "majority", quorum: 1 })
      expect(ok.value).toBe("cat")
    }))

  it.effect("timed-out members count against the quorum too", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.exit(Patterns.ensemble([
        answer("a", 1, "10 millis"),
        answer("b", 2, "10 seconds"),
        answer("c", 3, "10 seconds"),
        answer("d", 4, "10 millis")
      ], { timeout: "1 second", combine: "average" })))
      yield* TestClock.adjust("1 second")
      const error = failureOf(yield* Fiber.join(fiber))
      if (error?._tag !== "QuorumNotReachedError") return expect.fail("expected QuorumNotReachedError")
      expect(error.quorum).toBe(3)
      expect(error.answers.map((a) => a.value)).toEqual([1, 4])
    }))

  it.effect("tie-break: default 'first' follows member order, not completion order; 'lowest'; a comparator", () =>
    Effect.gen(function*() {
      // "dog" answers first in time, but "cat" comes first in member order.
      const members = [answer("m1", "cat", "20 millis"), answer("m2", "dog", "10 millis")]
      const run = (tieBreak?: Patterns.TieBreak<string>) =>
        Effect.gen(function*() {
          const fiber = yield* Effect.fork(Patterns.ensemble(members, {
            timeout: "1 second",
            combine: "majority",
            quorum: 2,
            ...(tieBreak === undefined ? {} : { tieBreak })
          }))
          yield* TestClock.adjust("20 millis")
          return (yield* Fiber.join(fiber)).value
        })
      expect(yield* run()).toBe("cat")
      expect(yield* run("first")).toBe("cat")
      expect(yield* run((a, b) => b.localeCompare(a))).toBe("dog") // highest wins
      const numbers = yield* Patterns.ensemble([answer("a", 10), answer("b", 9), answer("c", 10), answer("d", 9)], {
        timeout: "1 second",
        combine: "majority",
        tieBreak: "lowest"
      })
      expect(numbers.value).toBe(9) // numeric, not "10" < "9" as strings
    }))

  it.effect("weighted vote sums weights per value", () =>
    Effect.gen(function*() {
      const result = yield* Patterns.ensemble([
        answer("a", "cat", undefined, 1),
        answer("b", "cat", undefined, 1),
        answer("c", "dog", undefined, 3)
      ], { timeout: "1 second", combine: "weightedVote" })
      expect(result.value).toBe("dog") // majority would say "cat"
      const plain = yield* Patterns.ensemble([answer("a", "cat", undefined, 1), answer("b", "cat", undefined, 1), answer("c", "dog", undefined, 3)], {
        timeout: "1 second",
        combine: "majority"
      })
      expect(plain.value).toBe("cat")
    }))

  it.effect("weighted average is renormalised over the members that answered (exact)", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Patterns.ensemble([
        answer("a", 1, undefined, 1),
        answer("b", 4, undefined, 3),
        answer("late", 1000, "5 seconds", 4),
        { name: "down", run: Effect.fail("x"), weight: 2 }
      ], { timeout: "1 second", combine: "weightedAverage", quorum: 2 }))
      yield* TestClock.adjust("1 second")
      const result = yield* Fiber.join(fiber)
      // (1·1 + 3·4) / (1 + 3) = 13/4, not 13/10 (weights of the missing members kept) and not 13 (no division).
      expect(result.value).toBe(3.25)
      const average = yield* Patterns.ensemble([answer("a", 1, undefined, 1), answer("b", 4, undefined, 3)], {
        timeout: "1 second",
        combine: "average"
      })
      expect(average.value).toBe(2.5)
    }))

  it("numeric combinations are only accepted for numeric members (type level)", () => {
    const strings = [answer("a", "cat")]
    // @ts-expect-error averaging strings is a type error
    void Patterns.ensemble(strings, { timeout: "1 second", combine: "weightedAverage" })
    void Patterns.ensemble([answer("a", 1)], { timeout: "1 second", combine: "weightedAverage" })
  })

  it.effect("a custom combine receives the answers in member order", () =>
    Effect.gen(function*() {
      const result = yield* Patterns.ensemble([answer("a", 2), answer("b", 3)], {
        timeout: "1 second",
        combine: (answers) => answers.map((a) => `${a.name}=${a.value}`).join(",")
      })
      expect(result.value).toBe("a=2,b=3")
    }))

  it.effect("rejects empty members, duplicate names, bad weights, bad quorum and bad timeout, naming the field", () =>
    Effect.gen(function*() {
      const fieldOf = (exit: Exit.Exit<unknown, unknown>) => {
        const e = failureOf(exit)
        return e instanceof ValidationError ? e.field : undefined
      }
      const opts = { timeout: "1 second", combine: "majority" } as const
      expect(fieldOf(yield* Effect.exit(Patterns.ensemble([] as ReadonlyArray<Patterns.Member<number>>, opts)))).toBe("members")
      expect(fieldOf(yield* Effect.exit(Patterns.ensemble([answer("a", 1), answer("a", 1)], opts)))).toBe("members[1].name")
      expect(fieldOf(yield* Effect.exit(Patterns.ensemble([answer("a", 1, undefined, 0)], opts)))).toBe("members[0].weight")
      expect(fieldOf(yield* Effect.exit(Patterns.ensemble([answer("a", 1)], { ...opts, quorum: 2 })))).toBe("quorum")
      expect(fieldOf(yield* Effect.exit(Patterns.ensemble([answer("a", 1)], { ...opts, quorum: 0 })))).toBe("quorum")
      expect(fieldOf(yield* Effect.exit(Patterns.ensemble([answer("a", 1)], { ...opts, timeout: -1 })))).toBe("timeout")
    }))
})

describe("Patterns.mapReduce", () => {
  it.effect("never runs more than `concurrency` maps at once, and reduces in input order", () =>
    Effect.gen(function*() {
      const running = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const items = [5, 1, 4, 2, 3, 1, 2, 5, 3, 4]
      const fiber = yield* Effect.fork(Patterns.mapReduce(items, {
        map: (x, i) =>
          Effect.gen(function*() {
            const now = yield* Ref.updateAndGet(running, (n) => n + 1)
            yield* Ref.update(peak, (p) => Math.max(p, now))
            yield* Effect.sleep(`${x * 10} millis`) // completion order differs from input order
            yield* Ref.update(running, (n) => n - 1)
            return `${i}:${x * x}`
          }),
        reduce: (acc, s) => (acc === "" ? s : `${acc} ${s}`),
        initial: "",
        concurrency: 3
      }))
      yield* TestClock.adjust("1 second")
      const result = yield* Fiber.join(fiber)
      expect(result).toBe("0:25 1:1 2:16 3:4 4:9 5:1 6:4 7:25 8:9 9:16")
      expect(yield* Ref.get(peak)).toBe(3) // bounded, and actually concurrent
    }))

  it.effect("sums squares; a failing map fails the run; concurrency must be a positive integer", () =>
    Effect.gen(function*() {
      const sum = yield* Patterns.mapReduce([1, 2, 3], { map: (x) => Effect.succeed(x * x), reduce: (a, b) => a + b, initial: 0, concurrency: 2 })
      expect(sum).toBe(14)
      const failed = yield* Effect.exit(Patterns.mapReduce([1, 2, 3], {
        map: (x) => (x === 2 ? Effect.fail("two") : Effect.succeed(x)),
        reduce: (a, b) => a + b,
        initial: 0,
        concurrency: 1
      }))
      expect(failureOf(failed)).toBe("two")
      const bad = failureOf(yield* Effect.exit(Patterns.mapReduce([1], { map: (x: number) => Effect.succeed(x), reduce: (a, b) => a + b, initial: 0, concurrency: 0 })))
      expect(bad instanceof ValidationError && bad.field).toBe("concurrency")
    }))
})

describe("the example", () => {
  it.effect("runs as documented", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Example.program)
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(fiber)).toEqual({
        pipeline: { failedStage: "ship", compensated: ["charge", "reserve"] },
        log: ["reserve", "charge", "refund", "release"],
        vote: "cat",
        outcomes: ["tree:answered", "svm:answered", "slow:timedOut"],
        average: 3.5,
        sumOfSquares: 385
      })
    }))
})

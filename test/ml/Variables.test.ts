import { describe, expect, it } from "@effect/vitest"
import { Chunk, Data, Effect, Either, Fiber, Random, Ref, Schema, Stream, TestClock } from "effect"
import * as Example from "../../examples/variables.js"
import { AlreadyExistsError, NotFoundError, ValidationError } from "../../src/errors/FoundationError.js"
import * as Variables from "../../src/ml/Variables.js"
import {
  ConstraintViolationError,
  InsufficientDataError,
  NoConsensusError,
  NoProposalsError
} from "../../src/ml/Variables.js"

/** The field a failed effect's ValidationError names. */
const fieldOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.flip(effect), (e) => {
    expect(e).toBeInstanceOf(ValidationError)
    return (e as ValidationError).field
  })

const right = <A, E>(either: Either.Either<A, E>): A => {
  if (Either.isLeft(either)) throw new Error(`expected Right, got Left(${String(either.left)})`)
  return either.right
}

const left = <A, E>(either: Either.Either<A, E>): E => {
  if (Either.isRight(either)) throw new Error(`expected Left, got Right(${JSON.stringify(either.right)})`)
  return either.left
}

const proposals = <A>(...values: ReadonlyArray<A>) => values.map((value, i) => ({ agent: `agent${i + 1}`, value }))

/** A space with lr ∈ [1e-4, 1] (log) and momentum ∈ [0, 0.99]. */
const trainer = Effect.gen(function*() {
  const space = yield* Variables.makeSpace("trainer")
  const lr = yield* space.define("lr", Variables.continuous({ min: 1e-4, max: 1, scale: "log", initial: 0.1 }))
  const momentum = yield* space.define("momentum", Variables.continuous({ min: 0, max: 0.99, initial: 0.9 }))
  return { space, lr, momentum }
})

describe("definitions and enforced domains", () => {
  it.effect("rejects lr = 2.0 with bounds [1e-4, 1]; nothing changes", () =>
    Effect.gen(function*() {
      const { lr, space } = yield* trainer
      const error = yield* Effect.flip(lr.update(2.0))
      expect(error).toBeInstanceOf(ConstraintViolationError)
      expect(error).toMatchObject({ space: "trainer", variable: "lr", constraint: "bounds", value: 2.0 })
      expect(error.message).toContain("[0.0001, 1]")
      expect(yield* lr.get).toBe(0.1)
      expect((yield* lr.history()).map((e) => e.value)).toEqual([0.1]) // only the defining entry
      // by name too, and the bounds are inclusive
      expect(yield* Effect.flip(space.update("lr", 0))).toMatchObject({ constraint: "bounds" })
      yield* space.update("lr", 1e-4)
      yield* space.update("lr", 1)
      expect(yield* space.get("lr")).toBe(1)
    }))

  it.effect("checks type, finiteness, integer grid, discrete values, schema and named predicates", () =>
    Effect.gen(function*() {
      const space = yield* Variables.makeSpace()
      const x = yield* space.define("x", Variables.continuous({ min: -1, max: 1 }))
      const layers = yield* space.define("layers", Variables.integer({ min: 0, max: 10, step: 2 }))
      const optimizer = yield* space.define("optimizer", Variables.discrete(["adam", "sgd"]))
      const shape = yield* space.define(
        "shape",
        Variables.structured(Schema.Struct({ width: Schema.Int, height: Schema.Int }), {
          initial: { width: 2, height: 4 },
          constraints: [{ name: "square-ish", predicate: (s) => s.width * 4 >= s.height }]
        })
      )
      const odd = yield* space.define(
        "odd",
        Variables.integer({
          min: 1,
          max: 99,
          initial: 1,
          constraints: [{ name: "odd", predicate: (n) => n % 2 === 1 }, {
            name: "not 13",
            predicate: (n) => {
              if (n === 13) throw new Error("unlucky")
              return true
            }
          }]
        })
      )
      const constraintOf = <A>(effect: Effect.Effect<A, unknown>) =>
        Effect.map(Effect.flip(effect), (e) => (e as ConstraintViolationError).constraint)
      expect(yield* constraintOf(space.update("x", "0.5"))).toBe("type")
      expect(yield* constraintOf(x.update(Number.NaN))).toBe("type")
      expect(yield* constraintOf(x.update(Infinity))).toBe("finite")
      expect(yield* constraintOf(layers.update(3))).toBe("step")
      expect(yield* constraintOf(layers.update(4.5))).toBe("integer")
      expect(yield* constraintOf(layers.update(12))).toBe("bounds")
      expect(yield* constraintOf(space.update("optimizer", "rmsprop"))).toBe("values")
      expect(yield* constraintOf(space.update("shape", { width: 1.5, height: 2 }))).toBe("schema")
      expect(yield* constraintOf(shape.update({ width: 1, height: 8 }))).toBe("square-ish")
      expect(yield* constraintOf(odd.update(4))).toBe("odd")
      const thrown = yield* Effect.flip(odd.update(13))
      expect(thrown).toMatchObject({ constraint: "not 13" })
      expect(thrown.reason).toContain("unlucky")
      // nothing above was written
      expect(yield* space.snapshot).toEqual({
        x: 0,
        layers: 0,
        optimizer: "adam",
        shape: { width: 2, height: 4 },
        odd: 1
      })
      // and valid values are
      yield* layers.update(6)
      yield* optimizer.update("sgd")
      yield* shape.update({ width: 3, height: 3 })
      yield* odd.update(15)
      expect(yield* space.snapshot).toMatchObject({ layers: 6, optimizer: "sgd", shape: { width: 3, height: 3 }, odd: 15 })
    }))

  it.effect("default initial values: geometric mean (log), midpoint (linear), 0 (unbounded), first (discrete), min (integer)", () =>
    Effect.gen(function*() {
      const space = yield* Variables.makeSpace()
      expect(yield* (yield* space.define("lr", Variables.continuous({ min: 1e-4, max: 1, scale: "log" }))).get).toBeCloseTo(0.01, 15)
      expect(yield* (yield* space.define("m", Variables.continuous({ min: 0, max: 0.99 }))).get).toBe(0.495)
      expect(yield* (yield* space.define("free", Variables.continuous())).get).toBe(0)
      expect(yield* (yield* space.define("pos", Variables.continuous({ min: 2 }))).get).toBe(2)
      expect(yield* (yield* space.define("batch", Variables.discrete([32, 64, 128]))).get).toBe(32)
      expect(yield* (yield* space.define("n", Variables.integer({ min: 3, max: 9 }))).get).toBe(3)
    }))

  it.effect("default initial values stay finite and in bounds for extreme ranges (review fix)", () =>
    Effect.gen(function*() {
      const space = yield* Variables.makeSpace()
      // √(min·max) overflowed to ∞ (or underflowed to 0) and (min + max)/2 overflowed: the
      // definitions were rejected as violating their own default.
      const huge = yield* space.define("huge", Variables.continuous({ min: 1e200, max: 1e300, scale: "log" }))
      expect(yield* huge.get).toBeCloseTo(1e250, -236)
      const tiny = yield* space.define("tiny", Variables.continuous({ min: 1e-320, max: 1e-300, scale: "log" }))
      expect(yield* tiny.get).toBeGreaterThanOrEqual(1e-320)
      expect(yield* tiny.get).toBeLessThanOrEqual(1e-300)
      const wide = yield* space.define("wide", Variables.continuous({ min: 1e308, max: 1.7e308 }))
      expect(yield* wide.get).toBe(1.35e308)
      for (const x of [0.1, 0.3, 0.7, 1.3, 2.9, 1e-7]) {
        expect(Variables.continuous({ min: x, max: x, scale: "log" }).initial).toBe(x)
      }
    }))

  it.effect("hand-built definitions are validated too: unknown kind, missing check or constraints (review fix)", () =>
    Effect.gen(function*() {
      const space = yield* Variables.makeSpace()
      const define = (definition: unknown) => space.define("v", definition as Variables.Definition<unknown>)
      // an unknown kind used to be accepted with no domain at all (any value then passed)
      expect(yield* fieldOf(define({ domain: { kind: "bogus" }, initial: 1, constraints: [] }))).toBe("kind")
      // these two used to die (TypeError) instead of failing with a ValidationError
      expect(yield* fieldOf(define({ domain: { kind: "structured" }, initial: 1, constraints: [] }))).toBe("check")
      expect(yield* fieldOf(define({ domain: { kind: "discrete", values: [1, 2] }, initial: 1 }))).toBe("constraints")
      expect(yield* space.names).toEqual([])
    }))

  it.effect("redefining is AlreadyExistsError, unknown names are NotFoundError", () =>
    Effect.gen(function*() {
      const { space } = yield* trainer
      const again = yield* Effect.flip(space.define("lr", Variables.continuous({ min: 0, max: 1 })))
      expect(again).toBeInstanceOf(AlreadyExistsError)
      expect(again).toMatchObject({ key: "lr" })
      expect(yield* space.get("lr")).toBe(0.1) // the first definition stands
      for (const effect of [space.get("nope"), space.update("nope", 1), space.history("nope"), space.variable("nope")]) {
        const e = yield* Effect.flip(effect)
        expect(e).toBeInstanceOf(NotFoundError)
        expect(e).toMatchObject({ key: "nope" })
      }
      const streamed = yield* Effect.flip(Stream.runDrain(space.changes("nope")))
      expect(streamed).toBeInstanceOf(NotFoundError)
      // an unknown name in updateMany: nothing is written
      expect(yield* Effect.flip(space.updateMany({ lr: 0.5, nope: 1 }))).toBeInstanceOf(NotFoundError)
      expect(yield* space.get("lr")).toBe(0.1)
      expect(yield* space.names).toEqual(["lr", "momentum"])
    }))

  it.effect("bad definitions and options fail with a ValidationError naming the field", () =>
    Effect.gen(function*() {
      const space = yield* Variables.makeSpace()
      expect(yield* fieldOf(space.define("a", Variables.continuous({ min: 2, max: 1 })))).toBe("max")
      expect(yield* fieldOf(space.define("a", Variables.continuous({ min: 0, max: 1, scale: "log" })))).toBe("min")
      expect(yield* fieldOf(space.define("a", Variables.continuous({ min: 0, max: 1, initial: 3 })))).toBe("initial")
      expect(yield* fieldOf(space.define("a", Variables.continuous({ min: Number.NaN })))).toBe("min")
      expect(yield* fieldOf(space.define("a", Variables.integer({ min: 0, max: 5, step: 0 })))).toBe("step")
      expect(yield* fieldOf(space.define("a", Variables.integer({ min: 0.5, max: 5 })))).toBe("min")
      expect(yield* fieldOf(space.define("a", Variables.discrete([])))).toBe("values")
      expect(yield* fieldOf(space.define("a", Variables.discrete([1, 2, 1])))).toBe("values[2]")
      expect(yield* fieldOf(space.define("a", Variables.discrete([1, 2], { initial: 3 as 1 })))).toBe("initial")
      expect(
        yield* fieldOf(space.define("a", Variables.continuous({ constraints: [{ name: "", predicate: () => true }] })))
      ).toBe("constraints[0].name")
      expect(yield* fieldOf(space.define("", Variables.continuous()))).toBe("name")
      expect(yield* fieldOf(space.define("a", Variables.continuous(), { historyCapacity: 0 }))).toBe("historyCapacity")
      expect(yield* fieldOf(Variables.makeSpace("s", { historyCapacity: -1 }))).toBe("historyCapacity")
      expect(yield* fieldOf(Variables.makeSpace(""))).toBe("name")
      expect(yield* space.names).toEqual([]) // nothing was defined
    }))
})

describe("atomic updates", () => {
  it.effect("updateMany {lr: 0.01, momentum: 2.0} with momentum ∈ [0, 0.99] changes nothing", () =>
    Effect.gen(function*() {
      const { lr, momentum, space } = yield* trainer
      const events = yield* Effect.scoped(Effect.gen(function*() {
        const stream = yield* lr.subscribe
        const error = yield* Effect.flip(space.updateMany({ lr: 0.01, momentum: 2.0 }))
        expect(error).toBeInstanceOf(ConstraintViolationError)
        expect(error).toMatchObject({ variable: "momentum", constraint: "bounds", value: 2.0 })
        yield* lr.update(0.02) // the sentinel: the first event must be this one
        return yield* Stream.runCollect(Stream.take(stream, 1))
      }))
      expect(Chunk.toReadonlyArray(events).map((e) => [e.previous, e.current])).toEqual([[0.1, 0.02]])
      expect(yield* momentum.get).toBe(0.9)
      expect((yield* lr.history()).map((e) => e.value)).toEqual([0.02, 0.1]) // 0.01 never recorded
      expect((yield* momentum.history()).map((e) => e.value)).toEqual([0.9])
      // and a valid multi-update writes both under one commit number
      yield* space.updateMany({ lr: 0.01, momentum: 0.5 }, { source: "tuner" })
      const [l] = yield* lr.history(1)
      const [m] = yield* momentum.history(1)
      expect([l!.value, m!.value]).toEqual([0.01, 0.5])
      expect(l!.seq).toBe(m!.seq)
      expect([l!.source, m!.source]).toEqual(["tuner", "tuner"])
    }))

  it.effect("coupled constraints are checked in the transaction, by name or by handle", () =>
    Effect.gen(function*() {
      const space = yield* Variables.makeSpace("budget")
      const a = yield* space.define("a", Variables.continuous({ min: 0, max: 1, initial: 0 }))
      const b = yield* space.define("b", Variables.continuous({ min: 0, max: 1, initial: 0 }))
      yield* space.define("c", Variables.continuous({ min: 0, max: 1, initial: 0 }))
      yield* space.constrain("a + b ≤ 1", [a, b], ([x, y]) => x + y <= 1)
      yield* space.constrain("c ≤ a", ["c", "a"], ([c, x]) => (c as number) <= (x as number))
      const both = yield* Effect.flip(space.updateMany({ a: 0.6, b: 0.6 }))
      expect(both).toMatchObject({ constraint: "a + b ≤ 1", variable: "a, b", value: { a: 0.6, b: 0.6 } })
      yield* a.update(0.6)
      const single = yield* Effect.flip(b.update(0.5))
      expect(single).toMatchObject({ constraint: "a + b ≤ 1", value: { a: 0.6, b: 0.5 } })
      expect(yield* Effect.flip(space.update("c", 0.7))).toMatchObject({ constraint: "c ≤ a" })
      yield* space.updateMany({ a: 0.3, b: 0.7, c: 0.3 }) // satisfies both once all are written
      expect(yield* space.snapshot).toEqual({ a: 0.3, b: 0.7, c: 0.3 })
      expect(yield* Effect.flip(a.update(0.2))).toMatchObject({ constraint: "c ≤ a" }) // c = 0.3 would exceed a
      // adding a constraint the current state breaks, a taken name, an unknown or foreign variable
      expect(yield* Effect.flip(space.constrain("tight", ["a", "b"], ([x, y]) => (x as number) + (y as number) < 0.5)))
        .toBeInstanceOf(ConstraintViolationError)
      expect(yield* Effect.flip(space.constrain("a + b ≤ 1", ["a"], () => true))).toBeInstanceOf(AlreadyExistsError)
      expect(yield* Effect.flip(space.constrain("x", ["a", "zzz"], () => true))).toBeInstanceOf(NotFoundError)
      const other = yield* Variables.makeSpace("budget")
      const foreign = yield* other.define("a", Variables.continuous({ min: 0, max: 1 }))
      expect(yield* fieldOf(space.constrain("x", [a, foreign], () => true))).toBe("variables[1]")
      expect(yield* fieldOf(space.constrain("x", [a, a], () => true))).toBe("variables[1]")
      // a throwing coupled predicate rejects the write
      yield* space.constrain("throws above 0.9", [a], ([x]) => {
        if (x > 0.9) throw new Error("boom")
        return true
      })
      expect(yield* Effect.flip(space.updateMany({ a: 0.95, b: 0 }))).toMatchObject({ constraint: "throws above 0.9" })
      expect(yield* space.snapshot).toEqual({ a: 0.3, b: 0.7, c: 0.3 })
    }))

  it.effect("concurrent updates from many fibers never break a + b ≤ 1, and events match commits", () =>
    Effect.gen(function*() {
      const space = yield* Variables.makeSpace("concurrent", { historyCapacity: 5000 })
      const a = yield* space.define("a", Variables.continuous({ min: 0, max: 1, initial: 0 }))
      const b = yield* space.define("b", Variables.continuous({ min: 0, max: 1, initial: 0 }))
      yield* space.constrain("budget", [a, b], ([x, y]) => x + y <= 1)
      const successes = yield* Ref.make({ a: 0, b: 0, rejected: 0, brokenSnapshots: 0 })
      const result = yield* Effect.scoped(Effect.gen(function*() {
        const eventsA = yield* a.subscribe
        const eventsB = yield* b.subscribe
        yield* Effect.forEach(
          Array.from({ length: 40 }, (_, i) => i),
          (worker) =>
            Effect.gen(function*() {
              for (let i = 0; i < 25; i++) {
                const x = yield* Random.nextRange(0, 1)
                const y = yield* Random.nextRange(0, 1)
                const kind = (worker + i) % 3
                const write = kind === 0 ? space.updateMany({ a: x, b: y }) : kind === 1 ? a.update(x) : b.update(y)
                const outcome = yield* Effect.either(write)
                yield* Ref.update(successes, (s) =>
                  Either.isLeft(outcome)
                    ? { ...s, rejected: s.rejected + 1 }
                    : { ...s, a: s.a + (kind !== 2 ? 1 : 0), b: s.b + (kind !== 1 ? 1 : 0) })
                yield* Effect.yieldNow()
                const snap = yield* space.snapshot
                if ((snap.a as number) + (snap.b as number) > 1) {
                  yield* Ref.update(successes, (s) => ({ ...s, brokenSnapshots: s.brokenSnapshots + 1 }))
                }
              }
            }),
          { concurrency: "unbounded" }
        ).pipe(Effect.withRandom(Random.make(7)))
        const counts = yield* Ref.get(successes)
        // Exactly one event per successful write: after the counted events comes the sentinel.
        yield* space.updateMany({ a: 0, b: 0 }, { source: "sentinel" })
        const seenA = Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.take(eventsA, counts.a + 1)))
        const seenB = Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.take(eventsB, counts.b + 1)))
        return { counts, seenA, seenB }
      }))
      const { counts, seenA, seenB } = result
      expect(counts.brokenSnapshots).toBe(0)
      expect(counts.a).toBeGreaterThan(50) // the test exercised both outcomes
      expect(counts.rejected).toBeGreaterThan(50)
      expect(seenA.at(-1)!.source).toBe("sentinel")
      expect(seenB.at(-1)!.source).toBe("sentinel")
      // events are in commit order and chain: each previous is the last current
      for (let i = 1; i < seenA.length; i++) {
        expect(seenA[i]!.previous).toBe(seenA[i - 1]!.current)
        expect(seenA[i]!.seq).toBeGreaterThan(seenA[i - 1]!.seq)
      }
      // every joint state ever committed satisfies the invariant
      const histA = [...(yield* a.history())].reverse()
      const histB = [...(yield* b.history())].reverse()
      expect(histA.length).toBe(counts.a + 2) // define + writes + sentinel
      const merged = [...histA.map((e) => ({ ...e, side: "a" })), ...histB.map((e) => ({ ...e, side: "b" }))]
        .sort((p, q) => p.seq - q.seq)
      let cur = { a: 0, b: 0 }
      for (const [i, e] of merged.entries()) {
        cur = { ...cur, [e.side]: e.value }
        if (merged[i + 1]?.seq !== e.seq) expect(cur.a + cur.b).toBeLessThanOrEqual(1)
      }
    }))
})

describe("change streams", () => {
  it.scoped("2 subscribers each get (old, new) exactly once per successful update, none on a rejected one", () =>
    Effect.gen(function*() {
      const { lr } = yield* trainer
      const s1 = yield* lr.subscribe
      const s2 = yield* lr.subscribe
      yield* TestClock.adjust("1 second")
      yield* lr.update(0.01, { source: "agent-1" })
      yield* Effect.flip(lr.update(2.0)) // rejected
      yield* lr.update(0.01) // same value again: still a successful update
      yield* lr.update(0.5)
      const take = (s: Stream.Stream<Variables.Change<number>>) =>
        Effect.map(Stream.runCollect(Stream.take(s, 3)), Chunk.toReadonlyArray)
      const [one, two] = yield* Effect.all([take(s1), take(s2)], { concurrency: 2 })
      const pairs = [[0.1, 0.01], [0.01, 0.01], [0.01, 0.5]]
      expect(one.map((c) => [c.previous, c.current])).toEqual(pairs)
      expect(two.map((c) => [c.previous, c.current])).toEqual(pairs)
      expect(one[0]).toMatchObject({ variable: "lr", at: 1000, source: "agent-1" })
    }))

  it.effect("`changes` subscribes when the stream starts; a late subscriber sees only later updates", () =>
    Effect.gen(function*() {
      const { lr, space } = yield* trainer
      yield* lr.update(0.2) // before anyone listens
      const fiber = yield* Effect.fork(Stream.runCollect(Stream.take(space.changes("lr"), 2)))
      // keep writing until the subscriber has two events: it sees two consecutive updates
      let v = 0.3
      while ((yield* Fiber.poll(fiber))._tag === "None") {
        yield* lr.update(v)
        v += 0.01
        yield* Effect.yieldNow()
      }
      const seen = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      expect(seen).toHaveLength(2)
      expect(seen[1]!.previous).toBe(seen[0]!.current)
      expect(seen[0]!.previous).not.toBe(0.1) // the update to 0.2 came before the subscription
    }))
})

describe("spaces and history", () => {
  it.effect("two spaces each defining learning_rate do not collide", () =>
    Effect.gen(function*() {
      const s1 = yield* Variables.makeSpace("team")
      const s2 = yield* Variables.makeSpace("team") // even with the same name
      const lr1 = yield* s1.define("learning_rate", Variables.continuous({ min: 0, max: 1, initial: 0.1 }))
      const lr2 = yield* s2.define("learning_rate", Variables.continuous({ min: 0, max: 10, initial: 5 }))
      yield* lr1.update(0.3)
      yield* s2.update("learning_rate", 7) // legal in s2's bounds, not in s1's
      expect(yield* s1.get("learning_rate")).toBe(0.3)
      expect(yield* lr2.get).toBe(7)
      expect(yield* Effect.flip(s1.update("learning_rate", 7))).toBeInstanceOf(ConstraintViolationError)
      expect((yield* s1.history("learning_rate")).map((e) => e.value)).toEqual([0.3, 0.1])
    }))

  it.effect("history is a bounded ring, newest first, with Clock times, commit numbers and sources", () =>
    Effect.gen(function*() {
      const space = yield* Variables.makeSpace("h", { historyCapacity: 5 })
      const x = yield* space.define("x", Variables.integer({ min: 0, max: 100 }))
      const y = yield* space.define("y", Variables.integer({ min: 0, max: 100 }), { historyCapacity: 2 })
      for (let i = 1; i <= 12; i++) {
        yield* TestClock.adjust("1 second")
        yield* x.update(i, { source: `step ${i}` })
        yield* y.update(i)
      }
      const h = yield* x.history()
      expect(h.map((e) => e.value)).toEqual([12, 11, 10, 9, 8])
      expect(h.map((e) => e.at)).toEqual([12000, 11000, 10000, 9000, 8000])
      expect(h[0]!.source).toBe("step 12")
      expect(h[0]!.seq).toBeGreaterThan(h[1]!.seq)
      expect((yield* x.history(2)).map((e) => e.value)).toEqual([12, 11])
      expect((yield* space.history("y")).map((e) => e.value)).toEqual([12, 11])
      expect(yield* fieldOf(x.history(0))).toBe("limit")
      // before wrapping, the defining value is the oldest entry
      const z = yield* space.define("z", Variables.discrete(["a", "b"]))
      yield* z.update("b")
      expect((yield* z.history()).map((e) => [e.value, e.source])).toEqual([["b", undefined], ["a", "define"]])
    }))
})

describe("coordination", () => {
  it("consensus, vote, leader and average reducers", () => {
    expect(right(Variables.consensus(proposals(0.1, 0.1)))).toBe(0.1)
    expect(right(Variables.consensus(proposals([1, 2], [1, 2])))).toEqual([1, 2]) // structural
    const split = left(Variables.consensus(proposals(0.1, 0.2)))
    expect(split).toBeInstanceOf(NoConsensusError)
    expect((split as NoConsensusError).values).toEqual([0.1, 0.2])
    expect(right(Variables.vote(proposals(32, 64, 64)))).toBe(64)
    expect(right(Variables.vote(proposals(64, 32, 32, 64)))).toBe(64) // tie: earliest first proposal
    expect(right(Variables.vote(proposals(32, 64)))).toBe(32)
    expect(right(Variables.vote(proposals(Data.struct({ k: 1 }), Data.struct({ k: 2 }), Data.struct({ k: 2 })))))
      .toEqual(Data.struct({ k: 2 }))
    expect(right(Variables.leader(proposals(3, 1, 2)))).toBe(3)
    expect(right(Variables.leader(proposals(3, 1, 2), "agent3"))).toBe(2)
    expect(left(Variables.leader(proposals(3), "agent9"))).toBeInstanceOf(NotFoundError)
    expect(Math.abs(right(Variables.average(proposals(0.1, 0.2, 0.3))) - 0.2)).toBeLessThan(1e-12)
    expect(right(Variables.average(proposals([1, 2], [3, 4])))).toEqual([2, 3])
    const ragged = left(Variables.average(proposals([1, 2], [3, 4, 5])))
    expect(ragged).toMatchObject({ _tag: "ValidationError", field: "proposals[1].value" })
    expect(left(Variables.average(proposals<unknown>(1, [2])))).toMatchObject({ field: "proposals[1].value" })
    expect(left(Variables.average(proposals<unknown>("a", "b")))).toMatchObject({ field: "proposals[0].value" })
    expect(left(Variables.average(proposals(1, Number.NaN)))).toMatchObject({ field: "proposals[1].value" })
    for (const strategy of ["consensus", "vote", "leader", "average", { leader: "a" }] as const) {
      expect(left(Variables.resolve([], strategy))).toBeInstanceOf(NoProposalsError)
    }
    const twice = [{ agent: "a", value: 1 }, { agent: "a", value: 2 }]
    expect(left(Variables.vote(twice))).toMatchObject({ field: "proposals[1].agent" })
    expect(left(Variables.resolve(proposals(1), "majority" as "vote"))).toMatchObject({ field: "strategy" })
    expect(Variables.tally(proposals("x", "y", "x"))).toEqual([
      { value: "x", votes: 2, firstIndex: 0 },
      { value: "y", votes: 1, firstIndex: 1 }
    ])
  })

  it.effect("coordinate resolves, then writes through the validated atomic update", () =>
    Effect.gen(function*() {
      const space = yield* Variables.makeSpace()
      const batch = yield* space.define("batch", Variables.discrete([32, 64, 128]))
      const layers = yield* space.define("layers", Variables.integer({ min: 1, max: 8, initial: 2 }))
      expect(yield* batch.coordinate(proposals(32, 64, 64), "vote")).toBe(64)
      expect(yield* batch.get).toBe(64)
      expect((yield* batch.history(1))[0]!.source).toBe("coordinate:vote")
      expect(yield* Effect.flip(batch.coordinate(proposals(32, 128), "consensus"))).toBeInstanceOf(NoConsensusError)
      expect(yield* Effect.flip(space.coordinate("batch", [], "consensus"))).toBeInstanceOf(NoProposalsError)
      // the average of 32 and 64 is not an allowed batch size: rejected, nothing written
      expect(yield* Effect.flip(batch.coordinate(proposals(32, 64), "average"))).toMatchObject({ constraint: "values" })
      expect(yield* Effect.flip(layers.coordinate(proposals(2, 3), "average"))).toMatchObject({ constraint: "integer" })
      expect(yield* space.coordinate("layers", proposals(2, 4, 6), "average")).toBe(4)
      expect(yield* layers.coordinate(proposals(2, 7), { leader: "agent2" })).toBe(7)
      expect(yield* space.snapshot).toEqual({ batch: 64, layers: 7 })
    }))
})

describe("analyses", () => {
  it("convergence: the original's numbers", () => {
    // newest first: recent [1,2,1,2,1] (variance 0.24), older [1,3,1,3,1] (variance 0.96)
    const report = right(Variables.convergence([1, 2, 1, 2, 1, 1, 3, 1, 3, 1]))
    expect(report.converged).toBe(true)
    expect(report.trend).toBe("converging")
    expect(report.recentVariance).toBeCloseTo(0.24, 12)
    expect(report.olderVariance).toBeCloseTo(0.96, 12)
    expect(report.stability).toBeCloseTo(1 - 0.24 / 0.9601, 12)
    expect(report.stability.toFixed(5)).toBe("0.75003")
    expect(right(Variables.convergence([2, 2, 2, 2, 2, 1, 3, 1, 3, 1])).stability).toBe(1)
    const short = right(Variables.convergence([1, 2, 3, 4, 5, 6, 7, 8, 9]))
    expect(short).toMatchObject({ converged: false, trend: "insufficient_data", stability: 0 })
    const diverging = right(Variables.convergence([1, 3, 1, 3, 1, 1, 2, 1, 2, 1]))
    expect(diverging).toMatchObject({ converged: false, trend: "diverging", stability: 0 })
    // not converged when the recent variance is only a little smaller
    expect(right(Variables.convergence([1, 3, 1, 3, 1.5, 1, 3, 1, 3, 1])).converged).toBe(false)
    // flat in both windows: settled (the original said "diverging")
    expect(right(Variables.convergence(Array(10).fill(4)))).toMatchObject({ converged: true, trend: "stable", stability: 1 })
    expect(right(Variables.convergence([1, 2, 1, 2, 3, 3, 1, 3, 1, 3, 1, 9], { window: 6 })).points).toBe(12)
    expect(left(Variables.convergence([1, Number.NaN]))).toMatchObject({ field: "values[1]" })
  })

  it.effect("convergence over a variable's live history", () =>
    Effect.gen(function*() {
      const space = yield* Variables.makeSpace()
      const oldestFirst = [1, 3, 1, 3, 1, 1, 2, 1, 2, 1]
      const loss = yield* space.define("loss", Variables.continuous({ min: 0, max: 10, initial: oldestFirst[0]! }))
      expect((yield* space.convergence("loss")).trend).toBe("insufficient_data")
      for (const v of oldestFirst.slice(1)) yield* loss.update(v)
      const report = yield* space.convergence("loss")
      expect(report.converged).toBe(true)
      expect(report.stability.toFixed(5)).toBe("0.75003")
      yield* space.define("opt", Variables.discrete(["adam", "sgd"]))
      expect(yield* fieldOf(space.convergence("opt"))).toBe("variable")
    }))

  it("optimalRange widens by 20% of the observed width, sign-correct", () => {
    const r = right(Variables.optimalRange([0.01, 0.02, 0.03]))
    expect(r.min).toBeCloseTo(0.006, 15)
    expect(r.max).toBeCloseTo(0.034, 15)
    expect(r.sweetSpot).toBe(0.02)
    expect(right(Variables.optimalRange([1, 2, 3, 4])).sweetSpot).toBe(2.5)
    // negative values: the original's min·0.8, max·1.2 gave [-2.4, -1.2], excluding the data
    const neg = right(Variables.optimalRange([-3, -2, -1]))
    expect(neg.min).toBeCloseTo(-3.4, 12)
    expect(neg.max).toBeCloseTo(-0.6, 12)
    expect(right(Variables.optimalRange([-5, -5]))).toMatchObject({ min: -6, max: -4, sweetSpot: -5 })
    const log = right(Variables.optimalRange([0.001, 0.01, 0.1], { scale: "log" }))
    expect(log.min).toBeCloseTo(10 ** -3.4, 15)
    expect(log.max).toBeCloseTo(10 ** -0.6, 12)
    expect(log.sweetSpot).toBeCloseTo(0.01, 15)
    expect(right(Variables.optimalRange([0.1, 0.9], { bounds: [0, 1] }))).toMatchObject({ min: 0, max: 1 })
    expect(left(Variables.optimalRange([]))).toBeInstanceOf(InsufficientDataError)
    expect(left(Variables.optimalRange([1], { widen: -1 }))).toMatchObject({ field: "widen" })
  })

  it.effect("optimalRange over a variable: its scale and bounds", () =>
    Effect.gen(function*() {
      const space = yield* Variables.makeSpace()
      const m = yield* space.define("m", Variables.continuous({ min: 0, max: 0.99, initial: 0.5 }))
      yield* m.update(0.95)
      const r = yield* space.optimalRange("m")
      expect(r.min).toBeCloseTo(0.41, 12) // 0.5 − 0.2·0.45
      expect(r.max).toBe(0.99) // 0.95 + 0.09 = 1.04, clipped to the variable's bound
      const lr = yield* space.define("lr", Variables.continuous({ min: 1e-4, max: 1, scale: "log", initial: 0.001 }))
      yield* lr.update(0.1)
      const logRange = yield* space.optimalRange("lr")
      expect(logRange.min).toBeCloseTo(10 ** -3.4, 15) // widened in log10 space
      expect(logRange.sweetSpot).toBeCloseTo(0.01, 15) // geometric middle
    }))

  it("correlation: Pearson r with a two-sided t-test p-value", () => {
    const xs = [1, 2, 3, 4, 5, 6, 7, 8]
    const perfect = right(Variables.correlation(xs, xs.map((x) => 2 * x + 1)))
    expect(perfect.r).toBeCloseTo(1, 12)
    expect(perfect.pValue).toBe(0)
    expect(perfect).toMatchObject({ significant: true, strength: "strong", direction: "positive", n: 8 })
    expect(right(Variables.correlation(xs, xs.map((x) => 5 - 0.5 * x))).r).toBeCloseTo(-1, 12)
    // Anscombe's quartet, set I (reference values from scipy.stats.pearsonr)
    const ax = [10, 8, 13, 9, 11, 14, 6, 4, 12, 7, 5]
    const ay = [8.04, 6.95, 7.58, 8.81, 8.33, 9.96, 7.24, 4.26, 10.84, 4.82, 5.68]
    const anscombe = right(Variables.correlation(ax, ay))
    expect(anscombe.r).toBeCloseTo(0.8164205163448395, 12)
    expect(anscombe.pValue).toBeCloseTo(0.0021696288730788152, 12)
    const small = right(Variables.correlation([1, 2, 3, 4, 5], [2, 4, 5, 4, 5]))
    expect(small.r).toBeCloseTo(0.7745966692414835, 12)
    expect(small.pValue).toBeCloseTo(0.1240270626575546, 12)
    expect(small.significant).toBe(false)
    const negative = right(Variables.correlation([1, 2, 3, 4, 5, 6], [6, 4, 5, 3, 1, 2]))
    expect(negative.r).toBeCloseTo(-0.8857142857142857, 12)
    expect(negative.pValue).toBeCloseTo(0.018845481049562695, 12)
    expect(negative).toMatchObject({ direction: "negative", significant: true })
    expect(right(Variables.correlation([1, 2, 3], [1, 3, 2])).pValue).toBeCloseTo(2 / 3, 12)
    expect(left(Variables.correlation([1, 2], [1, 2]))).toBeInstanceOf(InsufficientDataError)
    expect(left(Variables.correlation([1, 2, 3], [1, 2]))).toMatchObject({ field: "ys" })
    expect(left(Variables.correlation([1, 1, 1], [1, 2, 3]))).toMatchObject({ field: "xs" })
  })

  it("the t distribution and incomplete beta match reference values", () => {
    expect(Variables.studentTTwoSided(2.228139, 10)).toBeCloseTo(0.04999998745288254, 12)
    expect(Variables.studentTTwoSided(3.169273, 10)).toBeCloseTo(0.009999994438294224, 12)
    expect(Variables.studentTTwoSided(12.7062, 1)).toBeCloseTo(0.0500000185607104, 12)
    expect(Variables.studentTTwoSided(0.5, 3)).toBeCloseTo(0.651447964848151, 12)
    expect(Variables.studentTTwoSided(10, 100) / 9.90168898459413e-17).toBeCloseTo(1, 8)
    expect(Variables.studentTTwoSided(0, 5)).toBe(1)
    expect(Variables.regularizedIncompleteBeta(2, 3, 0.4)).toBeCloseTo(0.5248, 14)
    expect(Variables.regularizedIncompleteBeta(0.5, 0.5, 0.3)).toBeCloseTo(0.36901011956554536, 13)
    expect(Variables.regularizedIncompleteBeta(10, 20, 0.3)).toBeCloseTo(0.3640040810719437, 13)
    expect(Variables.logGamma(10)).toBeCloseTo(Math.log(362880), 12)
  })

  it.effect("correlation over two variables pairs their joint states", () =>
    Effect.gen(function*() {
      const space = yield* Variables.makeSpace()
      yield* space.define("lr", Variables.continuous({ min: 0, max: 10, initial: 0 }))
      yield* space.define("loss", Variables.continuous({ min: 0, max: 100, initial: 0 }))
      for (const x of [1, 2, 3]) yield* space.updateMany({ lr: x, loss: 2 * x })
      yield* space.update("lr", 4) // loss stays 6: the joint state (4, 6)
      const expected = right(Variables.correlation([0, 1, 2, 3, 4], [0, 2, 4, 6, 6]))
      const got = yield* space.correlation("lr", "loss")
      expect(got.n).toBe(5)
      expect(got.r).toBeCloseTo(expected.r, 14)
      expect(got.pValue).toBeCloseTo(expected.pValue, 14)
      expect(got.r).toBeLessThan(1)
    }))

  it("sensitivity of f = 3x + y² by central differences", () => {
    const f = (p: Readonly<Record<string, number>>) => 3 * p.x! + p.y! ** 2
    const axes = { x: { min: 0, max: 10 }, y: { min: -5, max: 5 } }
    const at = right(Variables.sensitivity(f, { x: 1, y: 2 }, axes))
    expect(at.objective).toBe(7)
    const [sx, sy] = at.variables
    expect(sx!.derivative).toBeCloseTo(3, 9)
    expect(sy!.derivative).toBeCloseTo(4, 9)
    expect(sx!.elasticity).toBeCloseTo(3 / 7, 9)
    expect(sy!.elasticity).toBeCloseTo(8 / 7, 9)
    expect(sx!.impact).toBeCloseTo(30, 8)
    expect(sy!.impact).toBeCloseTo(40, 8)
    expect(sx!.share).toBeCloseTo(3 / 7, 9)
    expect(sy!.share).toBeCloseTo(4 / 7, 9)
    expect([sx!.direction, sy!.direction]).toEqual(["decrease", "decrease"])
    expect(sx!.probes[0]).toBeCloseTo(0.99, 12)
    expect(sx!.probes[1]).toBeCloseTo(1.01, 12)
    const maximize = right(Variables.sensitivity(f, { x: 1, y: 2 }, axes, { goal: "maximize" }))
    expect(maximize.variables.map((v) => v.direction)).toEqual(["increase", "increase"])
    const valley = right(Variables.sensitivity(f, { x: 1, y: -1 }, axes)).variables[1]!
    expect(valley.derivative).toBeCloseTo(-2, 9)
    expect(valley.direction).toBe("increase")
    expect(right(Variables.sensitivity(f, { x: 1, y: 0 }, axes)).variables[1]!.direction).toBe("none")
    // at a bound the difference is one-sided and still exact for the linear term
    const edge = right(Variables.sensitivity(f, { x: 0, y: 5 }, axes)).variables
    expect(edge[0]!.probes).toEqual([0, 0.01])
    expect(edge[0]!.derivative).toBeCloseTo(3, 9)
    expect(edge[1]!.probes[1]).toBe(5)
    expect(edge[1]!.derivative).toBeCloseTo(10, 1) // one-sided: 2y − h
    // log axis: d ln(x)/dx = 1/x; integer axis: whole steps
    const ln = right(Variables.sensitivity((p) => Math.log(p.lr!), { lr: 0.01 }, { lr: { min: 1e-4, max: 1, scale: "log" } }))
    expect(ln.variables[0]!.derivative).toBeCloseTo(100, 9) // exact in log space
    const cube = right(Variables.sensitivity((p) => p.lr! ** 3, { lr: 0.5 }, { lr: { min: 1e-4, max: 1, scale: "log" } }))
    expect(cube.variables[0]!.derivative / 0.75).toBeCloseTo(1, 3) // 3x² = 0.75, relative error 1.5·δ²
    const sq = right(Variables.sensitivity((p) => p.n! ** 2, { n: 3 }, { n: { min: 0, max: 10, step: 1 } }))
    expect(sq.variables[0]!.probes).toEqual([2, 4])
    expect(sq.variables[0]!.derivative).toBe(6)
    expect(right(Variables.sensitivity(() => 0, { x: 1 }, { x: {} })).variables[0]!.elasticity).toBeUndefined()
    expect(left(Variables.sensitivity(f, { x: 11, y: 0 }, axes))).toMatchObject({ field: "point.x" })
    expect(left(Variables.sensitivity(f, { x: 1, y: 0 }, axes, { relativeStep: 0 }))).toMatchObject({ field: "relativeStep" })
    expect(left(Variables.sensitivity(() => Number.NaN, { x: 1 }, { x: {} }))).toMatchObject({ field: "objective" })
  })

  it.effect("sensitivity of an effectful objective at a space's current values", () =>
    Effect.gen(function*() {
      const space = yield* Variables.makeSpace()
      yield* space.define("x", Variables.continuous({ min: 0, max: 10, initial: 1 }))
      yield* space.define("y", Variables.continuous({ min: -5, max: 5, initial: 2 }))
      yield* space.define("opt", Variables.discrete(["adam", "sgd"]))
      const calls = yield* Ref.make(0)
      const objective = (v: Readonly<Record<string, unknown>>) =>
        Effect.as(Ref.update(calls, (n) => n + 1), 3 * (v.x as number) + (v.y as number) ** 2 + (v.opt === "adam" ? 0 : 100))
      const report = yield* space.sensitivity(objective, { concurrency: 2 })
      expect(report.objective).toBe(7)
      expect(report.variables.map((v) => v.variable)).toEqual(["x", "y"]) // the discrete one is skipped
      expect(report.variables[0]!.derivative).toBeCloseTo(3, 9)
      expect(report.variables[1]!.derivative).toBeCloseTo(4, 9)
      expect(yield* Ref.get(calls)).toBe(5)
      expect((yield* space.sensitivity(objective, { variables: ["y"] })).variables).toHaveLength(1)
      expect(yield* fieldOf(space.sensitivity(objective, { variables: ["opt"] }))).toBe("variables[0]")
      expect(yield* Effect.flip(space.sensitivity(objective, { variables: ["nope"] }))).toBeInstanceOf(NotFoundError)
      expect(yield* Effect.flip(space.sensitivity(() => Effect.fail("objective down" as const)))).toBe("objective down")
    }))
})

describe("example", () => {
  it.effect("examples/variables.ts", () =>
    Effect.gen(function*() {
      expect(yield* Example.program).toEqual({
        snapshot: { lr: 0.02, momentum: 0.9, batch: 64 },
        rejected: "ConstraintViolationError: bounds",
        seen: [[0.01, 0.05], [0.05, 0.02]],
        chosen: 64,
        lrHistory: [0.02, 0.05, 0.01]
      })
    }))
})

import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import * as Example from "../../examples/constraints.js"
import { ValidationError } from "../../src/errors/FoundationError.js"
import * as Constraints from "../../src/ml/Constraints.js"

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

/** N queens, one per column: q<i> is the row of the queen in column i. */
const queens = (n: number) => {
  const variables: Record<string, ReadonlyArray<number>> = {}
  for (let i = 0; i < n; i++) variables[`q${i}`] = range(0, n - 1)
  const constraints: Array<Constraints.Constraint<number>> = []
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const a = `q${i}`, b = `q${j}`, d = j - i
      constraints.push({ scope: [a, b], predicate: (s) => s[a] !== s[b] && Math.abs(s[a]! - s[b]!) !== d })
    }
  }
  return Constraints.problem({ variables, constraints })
}

/** Is this a valid placement of n queens (computed independently of the solver)? */
const isQueens = (n: number, s: Constraints.Assignment<number>) => {
  const rows = range(0, n - 1).map((i) => s[`q${i}`]!)
  return rows.every((r, i) => rows.every((r2, j) => i === j || (r !== r2 && Math.abs(r - r2) !== Math.abs(i - j))))
}

const key = (s: Constraints.Assignment<unknown>) => JSON.stringify(Object.entries(s).sort())
const asSet = (solutions: ReadonlyArray<Constraints.Assignment<unknown>>) => new Set(solutions.map(key))

/** SEND + MORE = MONEY, column by column with carries c1..c4. */
const sendMoreMoney = () => {
  const letters = ["S", "E", "N", "D", "M", "O", "R", "Y"]
  const variables: Record<string, ReadonlyArray<number>> = {}
  for (const l of letters) variables[l] = range(0, 9)
  for (const c of ["c1", "c2", "c3", "c4"]) variables[c] = [0, 1]
  const constraints: Array<Constraints.Constraint<number>> = []
  letters.forEach((a, i) =>
    letters.slice(i + 1).forEach((b) => constraints.push({ scope: [a, b], predicate: (s) => s[a] !== s[b] }))
  )
  const v = (s: Constraints.Assignment<number>, k: string) => s[k]!
  constraints.push(
    { name: "S>0", scope: ["S"], predicate: (s) => v(s, "S") > 0 },
    { name: "M>0", scope: ["M"], predicate: (s) => v(s, "M") > 0 },
    { name: "units", scope: ["D", "E", "Y", "c1"], predicate: (s) => v(s, "D") + v(s, "E") === v(s, "Y") + 10 * v(s, "c1") },
    {
      name: "tens",
      scope: ["N", "R", "c1", "E", "c2"],
      predicate: (s) => v(s, "N") + v(s, "R") + v(s, "c1") === v(s, "E") + 10 * v(s, "c2")
    },
    {
      name: "hundreds",
      scope: ["E", "O", "c2", "N", "c3"],
      predicate: (s) => v(s, "E") + v(s, "O") + v(s, "c2") === v(s, "N") + 10 * v(s, "c3")
    },
    {
      name: "thousands",
      scope: ["S", "M", "c3", "O", "c4"],
      predicate: (s) => v(s, "S") + v(s, "M") + v(s, "c3") === v(s, "O") + 10 * v(s, "c4")
    },
    { name: "ten-thousands", scope: ["c4", "M"], predicate: (s) => v(s, "c4") === v(s, "M") }
  )
  return Constraints.problem({ variables, constraints })
}

const word = (s: Constraints.Assignment<number>, w: string) => Number([...w].map((l) => s[l]).join(""))

describe("Constraints", () => {
  it.effect("N-queens has 2, 4 and 92 solutions for N = 4, 6, 8, each a valid placement", () =>
    Effect.gen(function*() {
      for (const [n, count] of [[4, 2], [6, 4], [8, 92]] as const) {
        const result = yield* Constraints.solve(yield* queens(n))
        expect(result.solutions.length).toBe(count)
        expect(asSet(result.solutions).size).toBe(count)
        expect(result.solutions.every((s) => isQueens(n, s))).toBe(true)
        expect(result.exhausted).toBe(true)
      }
      // Deterministic: the 4-queens solutions in search order.
      const four = yield* Constraints.solve(yield* queens(4))
      expect(four.solutions).toEqual([{ q0: 1, q1: 3, q2: 0, q3: 2 }, { q0: 2, q1: 0, q2: 3, q3: 1 }])
    }))

  it.effect("SEND + MORE = MONEY has the unique solution 9567 + 1085 = 10652", () =>
    Effect.gen(function*() {
      const problem = yield* sendMoreMoney()
      for (const ac3 of [false, true]) {
        const { solutions } = yield* Constraints.solve(problem, { ac3 })
        expect(solutions.length).toBe(1)
        const s = solutions[0]!
        expect([word(s, "SEND"), word(s, "MORE"), word(s, "MONEY")]).toEqual([9567, 1085, 10652])
        expect(word(s, "SEND") + word(s, "MORE")).toBe(word(s, "MONEY"))
      }
    }))

  it.effect("x + y = z with x < y over 1..10: 20 solutions, the first is (1, 2, 3) (the example)", () =>
    Effect.gen(function*() {
      expect(yield* Example.program).toEqual({ count: 20, first: { x: 1, y: 2, z: 3 }, distributedCount: 20, splitOn: "x" })
    }))

  it.effect("limit returns the first k solutions in search order and stops searching", () =>
    Effect.gen(function*() {
      const problem = yield* queens(8)
      const all = yield* Constraints.solve(problem)
      const first5 = yield* Constraints.solve(problem, { limit: 5 })
      expect(first5.solutions).toEqual(all.solutions.slice(0, 5))
      expect(first5.exhausted).toBe(false)
      expect(first5.stats.nodes).toBeLessThan(all.stats.nodes)
      const more = yield* Constraints.solve(yield* queens(4), { limit: 10 })
      expect(more.solutions.length).toBe(2)
      expect(more.exhausted).toBe(true)
    }))

  it.effect("AC-3, forward checking and variable order change the effort, never the solutions", () =>
    Effect.gen(function*() {
      const problem = yield* queens(8)
      const plain = yield* Constraints.solve(problem)
      const withAc3 = yield* Constraints.solve(problem, { ac3: true })
      const noFc = yield* Constraints.solve(problem, { forwardChecking: false, order: "input" })
      expect(asSet(withAc3.solutions)).toEqual(asSet(plain.solutions))
      expect(asSet(noFc.solutions)).toEqual(asSet(plain.solutions))
      expect(withAc3.stats.nodes).toBeLessThan(plain.stats.nodes)
      expect(plain.stats.nodes).toBeLessThan(noFc.stats.nodes)
      expect(noFc.stats.backtracks).toBeGreaterThan(0)
    }))

  it.effect("MRV picks the smallest domain first, then the highest degree", () =>
    Effect.gen(function*() {
      const problem = yield* Constraints.problem({
        variables: { a: [1, 2, 3], b: [3], c: [1, 2, 3] },
        constraints: [
          { scope: ["a", "b"], predicate: (s) => s.a !== s.b },
          { scope: ["b", "c"], predicate: (s) => s.b !== s.c },
          { scope: ["a", "c"], predicate: (s) => s.a! < s.c! }
        ]
      })
      const mrv = yield* Constraints.solve(problem)
      const input = yield* Constraints.solve(problem, { order: "input" })
      expect(mrv.solutions).toEqual([{ a: 1, b: 3, c: 2 }])
      expect(input.solutions).toEqual(mrv.solutions)
      // MRV: b=3, a=1, c=2 (solution), a=2 (c wiped out). Input order: a=1, b=3, c=2, a=2, b=3, a=3.
      expect(mrv.stats).toEqual({ nodes: 4, backtracks: 1 })
      expect(input.stats).toEqual({ nodes: 6, backtracks: 2 })

      // Equal domains: the hub (two constraints) goes before x (one), though x is declared first.
      const firstAssigned: Array<string> = []
      const log = (s: Constraints.Assignment<number>) => {
        if (firstAssigned.length === 0) firstAssigned.push(Object.keys(s)[0]!)
        return true
      }
      const star = yield* Constraints.problem({
        variables: { x: [1, 2], hub: [1, 2], y: [1, 2] },
        constraints: [{ scope: ["x", "hub"], predicate: log }, { scope: ["hub", "y"], predicate: log }]
      })
      yield* Constraints.solve(star, { limit: 1 })
      expect(firstAssigned).toEqual(["hub"])
    }))

  it.effect("an unsatisfiable problem: no solutions from solve, NoSolutionError from solveOne", () =>
    Effect.gen(function*() {
      const problem = yield* queens(3)
      expect((yield* Constraints.solve(problem)).solutions).toEqual([])
      const error = yield* Effect.flip(Constraints.solveOne(problem))
      expect(error._tag).toBe("NoSolutionError")
      expect(error.category).toBe("permanent")
    }))

  it.effect("a throwing predicate fails the search with ConstraintPredicateError naming it", () =>
    Effect.gen(function*() {
      const problem = yield* Constraints.problem({
        variables: { a: [1, 2] },
        constraints: [{
          name: "boom",
          scope: ["a"],
          predicate: () => {
            throw new Error("kaput")
          }
        }]
      })
      const error = yield* Effect.flip(Constraints.solve(problem))
      expect(error._tag).toBe("ConstraintPredicateError")
      if (error._tag === "ConstraintPredicateError") expect(error.constraint).toBe("boom")
    }))

  it.effect("distributed search finds exactly the single-worker solution sets (6 and 8 queens, SEND+MORE)", () =>
    Effect.gen(function*() {
      for (const n of [6, 8]) {
        const problem = yield* queens(n)
        const single = yield* Constraints.solve(problem)
        for (const workers of [1, 3, 4, 20]) {
          const split = yield* Constraints.solveDistributed(problem, { workers })
          expect(split.solutions.length).toBe(single.solutions.length)
          expect(asSet(split.solutions)).toEqual(asSet(single.solutions))
          expect(split.exhausted).toBe(true)
          expect(split.splitOn).toBe("q0")
          expect(split.workers.length).toBe(Math.min(workers, n))
          expect(split.workers.flatMap((w) => w.values)).toEqual(range(0, n - 1))
        }
      }
      const money = yield* Constraints.solveDistributed(yield* sendMoreMoney(), { workers: 4, ac3: true })
      expect(money.solutions.map((s) => word(s, "MONEY"))).toEqual([10652])
    }))

  it.effect("distributed with limit 1 stops the other workers early", () =>
    Effect.gen(function*() {
      const problem = yield* queens(8)
      const full = yield* Constraints.solveDistributed(problem, { workers: 4 })
      const one = yield* Constraints.solveDistributed(problem, { workers: 4, limit: 1, yieldEvery: 5 })
      expect(one.solutions.length).toBe(1)
      expect(isQueens(8, one.solutions[0]!)).toBe(true)
      expect(one.exhausted).toBe(false)
      expect(one.stats.nodes).toBeLessThan(full.stats.nodes / 4)
      // Not a single worker ran its part to the end.
      expect(one.workers.every((w, i) => w.nodes < full.workers[i]!.nodes)).toBe(true)
    }))

  it.effect("a huge search yields to the runtime and can be interrupted", () =>
    Effect.gen(function*() {
      // 10^30 leaves and no solution: only interruption can end it.
      const variables: Record<string, ReadonlyArray<number>> = {}
      for (let i = 0; i < 30; i++) variables[`v${i}`] = range(0, 9)
      const problem = yield* Constraints.problem({
        variables,
        constraints: [{ scope: Object.keys(variables), predicate: () => false }]
      })
      const fiber = yield* Effect.fork(Constraints.solve(problem, { yieldEvery: 100 }))
      yield* Effect.repeatN(Effect.yieldNow(), 10)
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
    }))

  it.effect("bad problems and options fail with a ValidationError naming the field", () =>
    Effect.gen(function*() {
      const fail = <A, E>(effect: Effect.Effect<A, E>) => Effect.flip(effect)
      const p = (spec: Constraints.ProblemSpec<number>) => fail(Constraints.problem(spec))
      const empty = yield* p({ variables: { a: [] }, constraints: [] })
      expect(empty).toBeInstanceOf(ValidationError)
      expect([empty.field, empty.reason]).toEqual(["variables.a", "domain must not be empty"])
      expect((yield* p({ variables: { a: [1, 1] }, constraints: [] })).field).toBe("variables.a")
      expect((yield* p({ variables: {}, constraints: [] })).field).toBe("variables")
      const unknown = yield* p({ variables: { a: [1] }, constraints: [{ scope: ["a", "zz"], predicate: () => true }] })
      expect([unknown.field, unknown.reason]).toEqual(["constraints[0].scope", "unknown variable \"zz\""])
      expect((yield* p({ variables: { a: [1] }, constraints: [{ scope: ["a", "a"], predicate: () => true }] })).field)
        .toBe("constraints[0].scope")
      expect((yield* p({ variables: { a: [1] }, constraints: [{ scope: [], predicate: () => true }] })).field)
        .toBe("constraints[0].scope")
      const dup = yield* p({
        variables: { a: [1] },
        constraints: [{ name: "c", scope: ["a"], predicate: () => true }, { name: "c", scope: ["a"], predicate: () => true }]
      })
      expect([dup.field, dup.reason]).toEqual(["constraints[1].name", "duplicate constraint name \"c\""])
      const many = yield* p({ variables: { a: [], b: [] }, constraints: [] })
      expect(many.issues?.map((i) => i.field)).toEqual(["variables.a", "variables.b"])

      const problem = yield* queens(4)
      const field = (e: ValidationError | Constraints.ConstraintPredicateError) =>
        e._tag === "ValidationError" ? e.field : e._tag
      expect(field(yield* fail(Constraints.solve(problem, { limit: 0 })))).toBe("limit")
      expect(field(yield* fail(Constraints.solve(problem, { limit: 1.5 })))).toBe("limit")
      expect(field(yield* fail(Constraints.solveDistributed(problem, { workers: 0 })))).toBe("workers")
      expect(field(yield* fail(Constraints.solveDistributed(problem, { workers: 2, splitOn: "nope" })))).toBe("splitOn")
    }))
})

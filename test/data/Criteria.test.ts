import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import * as Criteria from "../../src/data/Criteria.js"
import type { ValidationError } from "../../src/errors/FoundationError.js"

// ---------------------------------------------------------------------------------------------
// Generators: records with nested objects, lists, absent fields; criteria over their paths.
// ---------------------------------------------------------------------------------------------

const keys = ["a", "b", "c"] as const
const scalar: fc.Arbitrary<Criteria.Scalar> = fc.oneof(
  fc.constantFrom("x", "y", "é", "𝄞", "Z", ""),
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(0.5, -0.5),
  fc.boolean()
)
const field: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: scalar, weight: 4 },
  { arbitrary: fc.array(scalar, { maxLength: 3 }), weight: 2 },
  { arbitrary: fc.constant(null), weight: 1 },
  { arbitrary: fc.record({ a: scalar }, { requiredKeys: [] }), weight: 1 }
)
const record = fc.record({ a: field, b: field, c: fc.record({ a: field, b: field }, { requiredKeys: [] }) }, {
  requiredKeys: []
})
const path: fc.Arbitrary<Criteria.Path> = fc.oneof(
  fc.constantFrom(...keys).map((k): Criteria.Path => [k]),
  fc.constantFrom("a", "b").map((k): Criteria.Path => ["c", k])
)
const criterion: fc.Arbitrary<Criteria.Criterion> = fc.oneof(
  fc.tuple(path, fc.constantFrom("eq" as const, "neq" as const), scalar).map(([p, op, v]) => Criteria.where(p, op, v)),
  fc.tuple(path, fc.constantFrom("in" as const, "not_in" as const), fc.array(scalar, { minLength: 1, maxLength: 3 }))
    .map(([p, op, v]) => Criteria.where(p, op, v)),
  fc.tuple(
    path,
    fc.constantFrom("gt" as const, "gte" as const, "lt" as const, "lte" as const),
    fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom("x", "é", "Z"))
  ).map(([p, op, v]) => Criteria.where(p, op, v))
)
const criteria: fc.Arbitrary<Criteria.Criteria> = fc.letrec<{ node: Criteria.Criteria }>((tie) => ({
  node: fc.oneof(
    { maxDepth: 3 },
    { arbitrary: criterion, weight: 5 },
    { arbitrary: fc.array(tie("node"), { maxLength: 3 }), weight: 1 },
    { arbitrary: fc.array(tie("node"), { maxLength: 3 }).map((c) => Criteria.and(...c)), weight: 1 },
    { arbitrary: fc.array(tie("node"), { maxLength: 3 }).map((c) => Criteria.or(...c)), weight: 1 },
    { arbitrary: tie("node").map((c) => Criteria.not(c)), weight: 1 }
  )
})).node

/** Malformed criteria: a valid tree with one node broken. */
const broken: fc.Arbitrary<unknown> = fc.oneof(
  fc.record({ path: fc.constant([]), op: fc.constant("eq"), value: fc.constant(1) }),
  fc.record({ path: fc.constant(["a", ""]), op: fc.constant("eq"), value: fc.constant(1) }),
  fc.record({ path: fc.constant(["a"]), op: fc.constantFrom("like", "EQ", "", 3), value: fc.constant(1) }),
  fc.record({ path: fc.constant(["a"]), op: fc.constantFrom("in", "not_in"), value: fc.constantFrom("x", [], 1) }),
  fc.record({ path: fc.constant(["a"]), op: fc.constantFrom("eq", "neq"), value: fc.constantFrom([1], { x: 1 }, null) }),
  fc.record({ path: fc.constant(["a"]), op: fc.constantFrom("gt", "lte"), value: fc.constantFrom(true, [1], Infinity) }),
  fc.record({ path: fc.constant(["a"]), op: fc.constant("eq"), value: fc.constant(Number.NaN) }),
  fc.constantFrom(null, 3, "a", { and: "x" }, { or: 1 })
).chain((bad) =>
  fc.oneof(
    fc.constant(bad),
    fc.tuple(criterion, fc.constant(bad)).map((list) => list as unknown),
    fc.constant({ and: [bad] }),
    fc.constant({ not: { or: [Criteria.eq("a", 1), bad] } })
  )
)

const decodes = (input: unknown) => Either.isRight(Schema.decodeUnknownEither(Criteria.CriteriaSchema)(input))

describe("Criteria", () => {
  it("validate agrees with CriteriaSchema on valid and broken criteria, and names the broken part", () => {
    fc.assert(fc.property(criteria, (c) => Either.isRight(Criteria.validate(c)) && decodes(c)), { numRuns: 300 })
    fc.assert(fc.property(broken, (c) => Either.isLeft(Criteria.validate(c)) && !decodes(c)), { numRuns: 300 })
    const field = (input: unknown) => (Either.getLeft(Criteria.validate(input)).pipe((o) => o._tag === "Some" ? o.value : undefined) as ValidationError).field
    expect(field({ and: [Criteria.eq("a", 1), { or: [{ path: ["a"], op: "like", value: 1 }] }] })).toBe("criteria.and.1.or.0.op")
    expect(field([Criteria.eq("a", 1), { not: { path: ["a"], op: "in", value: [] } }])).toBe("criteria.1.not.value")
    expect(field({ path: ["a", ""], op: "eq", value: 1 })).toBe("criteria.path")
  })

  it("semantics: membership, overlap, typed equality, absent fields", () => {
    const m = (c: Criteria.Criteria, data: unknown) => Criteria.predicate(c)(data)
    expect(m(Criteria.eq("tags", "x"), { tags: ["y", "x"] })).toBe(true)
    expect(m(Criteria.eq("n", 1), { n: "1" })).toBe(false)
    expect(m(Criteria.eq("n", 1), { n: 1.0 })).toBe(true)
    expect(m(Criteria.isIn("tags", ["q", "x"]), { tags: ["x"] })).toBe(true)
    expect(m(Criteria.isIn("tags", ["q"]), { tags: ["x"] })).toBe(false)
    expect(m(Criteria.notIn("tags", ["q"]), { tags: ["x"] })).toBe(true)
    expect(m(Criteria.notIn("tags", ["x"]), {})).toBe(true)
    expect(m(Criteria.neq("n", 1), { n: null })).toBe(true)
    for (const op of ["gt", "gte", "lt", "lte"] as const) {
      expect(m(Criteria.where("n", op, 0), {}), op).toBe(false)
      expect(m(Criteria.where("n", op, 0), { n: null }), op).toBe(false)
      expect(m(Criteria.where("n", op, 0), { n: [1, -1] }), op).toBe(false)
      expect(m(Criteria.where("n", op, 0), { n: "5" }), op).toBe(false)
      expect(m(Criteria.where("n", op, "a"), { n: 5 }), op).toBe(false)
    }
    expect(m(Criteria.gte("n", 0.5), { n: 0.5 })).toBe(true)
    expect(m(Criteria.gt("s", "Z"), { s: "a" })).toBe(true) // code point order: 'a' (97) > 'Z' (90)
    expect(m(Criteria.eq(["a", "b"], 1), { a: { b: 1 } })).toBe(true)
    expect(m(Criteria.eq(["a", "b"], 1), { a: [{ b: 1 }] })).toBe(false) // a path does not walk into lists
    expect(m([], { anything: 1 })).toBe(true)
    expect(m(Criteria.or(), {})).toBe(false)
  })

  it("negations are exact: neq = not eq, not_in = not in, not(c) = !c", () => {
    fc.assert(
      fc.property(record, path, scalar, fc.array(scalar, { minLength: 1, maxLength: 3 }), criteria, (r, p, v, vs, c) => {
        const m = (x: Criteria.Criteria) => Criteria.predicate(x)(r)
        return m(Criteria.where(p, "neq", v)) === !m(Criteria.where(p, "eq", v)) &&
          m(Criteria.where(p, "not_in", vs)) === !m(Criteria.where(p, "in", vs)) &&
          m(Criteria.not(c)) === !m(c) &&
          m(Criteria.and(c, Criteria.not(c))) === false
      }),
      { numRuns: 500 }
    )
  })

  it("a plan's index candidates always contain every match (the index never hides a row)", () => {
    fc.assert(
      fc.property(fc.array(record, { maxLength: 25 }), criteria, fc.subarray(["a", "b", "c\u0000a"]), (records, c, indexedPaths) => {
        const indexed = new Set(indexedPaths)
        const plan = Criteria.plan(c, indexed)
        const full = records.filter(Criteria.predicate(c))
        if (plan.index === undefined) return records.filter(plan.matches).length === full.length
        // Build the index the way a store does and read the candidates from it.
        const candidates = records.filter((r) => {
          const entries = Criteria.indexKeys(Criteria.valueAt(r, plan.index!.path))
          return plan.index!.keys.some((k) => entries.includes(k))
        })
        const viaIndex = candidates.filter(plan.matches)
        return viaIndex.length === full.length && viaIndex.every((r) => full.includes(r))
      }),
      { numRuns: 500 }
    )
    // It picks the narrowest indexed eq/in among the conjuncts, never under or/not.
    const p = Criteria.plan([Criteria.isIn("a", [1, 2]), Criteria.and(Criteria.eq("b", "x"))], new Set(["a", "b"]))
    expect(p.index).toEqual({ path: ["b"], keys: ["sx"] })
    expect(Criteria.plan(Criteria.or(Criteria.eq("a", 1)), new Set(["a"])).index).toBeUndefined()
    expect(Criteria.plan(Criteria.not(Criteria.eq("a", 1)), new Set(["a"])).index).toBeUndefined()
  })

  it("strings compare by code point, as SQL's binary collation orders UTF-8", () => {
    const text = fc.string({ unit: "binary", maxLength: 6 })
    fc.assert(
      fc.property(text, text, (a, b) =>
        Math.sign(Criteria.compareStrings(a, b)) === Math.sign(Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8")))),
      { numRuns: 1000 }
    )
    expect(Criteria.compareStrings("\uffff", "𝄞")).toBeLessThan(0) // UTF-16 units would say the opposite
  })

  it("index keys are typed and deduplicated", () => {
    expect(Criteria.indexKeys(1)).toEqual(["n1"])
    expect(Criteria.indexKeys("1")).toEqual(["s1"])
    expect(Criteria.indexKeys(-0)).toEqual(["n0"])
    expect(Criteria.indexKeys(true)).toEqual(["bt"])
    expect(Criteria.indexKeys(["x", "x", 2, { o: 1 }, null])).toEqual(["sx", "n2"])
    expect(Criteria.indexKeys(undefined)).toEqual([])
    expect(Criteria.indexKeys({ a: 1 })).toEqual([])
  })
})

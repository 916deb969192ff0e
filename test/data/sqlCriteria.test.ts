/**
 * Criteria in SQL mean what they mean in memory: a property test runs random criteria, sort
 * orders and pages over random records in SQLite (and PostgreSQL when FOUNDATION_TEST_PG_URL is
 * set) and compares with `Criteria.predicate` + `repositoryConfig.comparator`; and the compiled
 * SQL never contains a value or a path key.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, Option, Redacted, Schema } from "effect"
import * as fc from "effect/FastCheck"
import * as Criteria from "../../src/data/Criteria.js"
import * as config from "../../src/data/internal/repositoryConfig.js"
import * as sqlCriteria from "../../src/data/internal/sqlCriteria.js"
import * as Repository from "../../src/data/Repository.js"
import * as SqlStore from "../../src/data/SqlStore.js"
import * as Transaction from "../../src/data/Transaction.js"

const pgUrl = process.env["FOUNDATION_TEST_PG_URL"]

// ---------------------------------------------------------------------------------------------
// Records and criteria
// ---------------------------------------------------------------------------------------------

const Rec = Schema.Struct({
  id: Schema.String,
  a: Schema.optional(Schema.Unknown),
  b: Schema.optional(Schema.Unknown),
  tags: Schema.optional(Schema.Unknown)
})
type Rec = typeof Rec.Type

/** Strings that collide, differ by code point order across planes, or look like other types. */
const string = fc.oneof(
  { arbitrary: fc.constantFrom("a", "ab", "b", "B", "é", "😀", "\ue000"), weight: 6 },
  { arbitrary: fc.constantFrom("", "e\u0301", "\uffff", "z", "0", "1", "10", "true", "'", "\""), weight: 2 },
  { arbitrary: fc.string({ unit: "grapheme", maxLength: 3 }).filter((s) => !s.includes("\u0000")), weight: 1 }
)
const number = fc.oneof(
  { arbitrary: fc.integer({ min: -2, max: 3 }), weight: 6 },
  { arbitrary: fc.constantFrom(0.5, -1.25, 1e21, 2.5e-8, 3.000001, -0), weight: 2 },
  { arbitrary: fc.double({ min: -5, max: 5, noNaN: true, noDefaultInfinity: true }), weight: 1 }
)
const scalar = fc.oneof({ arbitrary: string, weight: 4 }, { arbitrary: number, weight: 4 }, { arbitrary: fc.boolean(), weight: 1 })

/** Field values: mostly scalars and lists of scalars; also null, nested lists and objects. */
const { value } = fc.letrec((tie) => ({
  value: fc.oneof(
    { maxDepth: 2, depthIdentifier: "value" },
    { arbitrary: scalar, weight: 6 },
    { arbitrary: fc.array(scalar, { maxLength: 3 }), weight: 3 },
    { arbitrary: fc.constant(null), weight: 1 },
    { arbitrary: fc.array(tie("value"), { maxLength: 2 }), weight: 1 },
    { arbitrary: fc.record({ x: tie("value"), y: tie("value") }, { requiredKeys: [] }), weight: 3 }
  )
}))

const record = fc.record({ a: value, b: value, tags: value }, { requiredKeys: ["a", "b"] })
const records = fc.uniqueArray(
  fc.tuple(fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 3 }), record).map(([id, r]): Rec => ({ ...r, id })),
  { selector: (r) => r.id, minLength: 2, maxLength: 12 }
)

const path = fc.oneof(
  { arbitrary: fc.constantFrom<Criteria.Path>(["a"], ["b"], ["tags"]), weight: 6 },
  { arbitrary: fc.constantFrom<Criteria.Path>(["a", "x"], ["a", "y"], ["b", "x"]), weight: 3 },
  { arbitrary: fc.constantFrom<Criteria.Path>(["a", "x", "y"], ["tags", "0"], ["id"]), weight: 1 }
)

const criterion: fc.Arbitrary<Criteria.Criteria> = fc.oneof(
  fc.record({ path, op: fc.constantFrom("eq" as const, "neq" as const), value: scalar }),
  fc.record({ path, op: fc.constantFrom("in" as const, "not_in" as const), value: fc.array(scalar, { minLength: 1, maxLength: 3 }) }),
  fc.record({
    path,
    op: fc.constantFrom("gt" as const, "gte" as const, "lt" as const, "lte" as const),
    value: fc.oneof(string, number)
  })
)

const { criteria } = fc.letrec<{ criteria: Criteria.Criteria }>((tie) => ({
  criteria: fc.oneof(
    { maxDepth: 3, depthIdentifier: "criteria" },
    { arbitrary: criterion, weight: 8 },
    { arbitrary: fc.array(tie("criteria"), { maxLength: 2 }), weight: 1 },
    { arbitrary: fc.array(tie("criteria"), { maxLength: 3 }).map((and) => ({ and })), weight: 1 },
    { arbitrary: fc.array(tie("criteria"), { maxLength: 3 }).map((or) => ({ or })), weight: 1 },
    { arbitrary: tie("criteria").map((not) => ({ not })), weight: 1 }
  )
}))

const orderBy = fc.array(fc.record({ path, direction: fc.constantFrom("asc" as const, "desc" as const) }), { maxLength: 2 })
const paging = fc.record({
  limit: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
  offset: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined })
})

// ---------------------------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------------------------

let runs = 0

/** SQL results (query, count, scan) equal the in-memory semantics on the stored JSON. */
const parity = (
  recs: ReadonlyArray<Rec>,
  where: Criteria.Criteria,
  sorts: ReadonlyArray<Repository.OrderBy>,
  page: { readonly limit: number | undefined; readonly offset: number | undefined }
) =>
  Effect.gen(function*() {
    const repo = yield* Repository.make({
      name: `p${++runs}`,
      schema: Rec,
      key: "id",
      indexes: [["a"], ["tags"], ["a", "x"]]
    })
    yield* Transaction.run(Effect.forEach(recs, (r) => repo.insert(r), { discard: true }))
    // What the store holds is the JSON of the record.
    const stored = recs.map((r) => ({ encoded: JSON.parse(JSON.stringify(r)) as unknown, keyText: r.id }))
    const matches = Criteria.predicate(where)
    const query: Repository.Query = {
      where,
      orderBy: sorts,
      ...(page.limit === undefined ? {} : { limit: page.limit }),
      ...(page.offset === undefined ? {} : { offset: page.offset })
    }
    const resolved = config.resolveQuery(query)
    if (Either.isLeft(resolved)) return yield* Effect.die(resolved.left)
    const matching = stored.filter((s) => matches(s.encoded))
    const ordered = [...matching].sort(config.comparator(resolved.right.orderBy)).map((s) => s.keyText)
    const offset = page.offset ?? 0
    const expected = ordered.slice(offset, page.limit === undefined ? undefined : offset + page.limit)
    const label = JSON.stringify({ where, sorts, page })

    const rows = yield* repo.query(query)
    expect(rows.map((r) => r.key), label).toEqual(expected)
    expect(yield* repo.count(where), label).toBe(matching.length)
    const byKey = matching.map((s) => s.keyText).sort(Criteria.compareStrings)
    const scanned = yield* repo.scan(Option.none(), 3, where)
    expect(scanned.rows.map((r) => r.key), label).toEqual(byKey.slice(0, 3))
    expect(scanned.next, label).toEqual(byKey.length > 3 ? Option.some(byKey[2]) : Option.none())
  })


describe("Criteria in SQL: parity with the in-memory semantics", () => {
  it.layer(SqlStore.layerSqlite({ filename: ":memory:" }))("SQLite", (it) => {
    it.effect.prop(
      "query, count and scan give the in-memory results, in the comparator's order",
      [records, criteria, orderBy, paging],
      ([recs, where, sorts, page]) => parity(recs, where, sorts, page),
      { fastCheck: { numRuns: 250 } }
    )
  })

  describe.skipIf(pgUrl === undefined)("PostgreSQL", () => {
    const url = pgUrl ?? ""
    const schema = `foundation_criteria_${process.pid}`
    const store = Layer.unwrapScoped(
      Effect.gen(function*() {
        const admin = yield* PgClient.make({ url: Redacted.make(url) })
        yield* Effect.acquireRelease(
          admin.unsafe(`CREATE SCHEMA "${schema}"`),
          () => Effect.orDie(admin.unsafe(`DROP SCHEMA "${schema}" CASCADE`))
        )
        const u = new URL(url)
        u.searchParams.set("options", `-c search_path=${schema}`)
        return SqlStore.layerPg({ url: u.toString() })
      }).pipe(Effect.provide(Reactivity.layer))
    )
    // Named: an unnamed `it.layer` inside a describe shares `it` with the SQLite block's.
    it.layer(store, { timeout: "30 seconds" })("on its own schema", (it) => {
      it.effect.prop(
        "query, count and scan give the in-memory results, in the comparator's order",
        [records, criteria, orderBy, paging],
        ([recs, where, sorts, page]) => parity(recs, where, sorts, page),
        { fastCheck: { numRuns: 150 }, timeout: 60_000 }
      )
    })
  })
})

// ---------------------------------------------------------------------------------------------
// The SQL text
// ---------------------------------------------------------------------------------------------

describe("Criteria compiled to SQL", () => {
  const marker = "Zq'\"; DROP TABLE x; --$1?\\"
  const where: Criteria.Criteria = [
    Criteria.eq(["k", marker], marker),
    Criteria.or(Criteria.isIn([marker], [marker, 7, true]), Criteria.not(Criteria.gt(["n", marker], marker))),
    Criteria.lte(["n"], 12345.5)
  ]

  for (const dialect of ["sqlite", "pg"] as const) {
    it(`${dialect}: no value and no path key in the text, all of them bound`, () => {
      const params = new sqlCriteria.Params(dialect)
      const text = sqlCriteria.filter(params, "repo'", where, { path: sqlCriteria.indexPathText([marker]), keys: [marker] }) +
        " ORDER BY " + sqlCriteria.orderBy(params, [{ path: [marker], descending: true }]) +
        sqlCriteria.page(params, 5, 2)
      for (const piece of ["Zq", "DROP", "12345", "repo'", "$1?"]) expect(text).not.toContain(piece)
      const bound = JSON.stringify(params.values)
      expect(bound).toContain("Zq")
      expect(bound).toContain("12345.5")
      // Placeholders: one `?` per parameter in SQLite; `$n` up to the count in PostgreSQL.
      if (dialect === "sqlite") expect(text.split("?").length - 1).toBe(params.values.length)
      else expect(Math.max(...[...text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])))).toBe(params.values.length)
    })
  }

  it("SQLite JSON paths quote every key and escape quotes and backslashes", () => {
    expect(sqlCriteria.sqlitePath(["a", "b.c", "q\"x", "back\\s", "[0]"])).toBe(
      "$.\"a\".\"b.c\".\"q\\\"x\".\"back\\\\s\".\"[0]\""
    )
  })

  it("empty criteria need no condition; empty `or` matches nothing", () => {
    expect(sqlCriteria.isAll([])).toBe(true)
    expect(sqlCriteria.isAll({ and: [[], { and: [] }] })).toBe(true)
    expect(sqlCriteria.isAll({ or: [] })).toBe(false)
    expect(sqlCriteria.where(new sqlCriteria.Params("pg"), { or: [] })).toBe("FALSE")
    expect(sqlCriteria.where(new sqlCriteria.Params("sqlite"), { not: { or: [] } })).toBe("(NOT 0)")
  })
})

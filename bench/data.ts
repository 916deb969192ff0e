/**
 * Repositories: inserts, indexed queries against full scans, and two-repository transactions,
 * in memory (100,000 records with an indexed attribute) and on SQLite (a file, as an embedded
 * user would run it), side by side with a plain `Map` (the floor: no validation, no index, no
 * timestamps) in one run. Best of 3 rounds for throughputs, median of rounds for latencies.
 *
 * Targets (in memory): an indexed query returning ~100 of 100,000 records is ≥ 100× faster than
 * a full scan of the same data; ≥ 200,000 inserts/s; ≥ 50,000 two-repository transactions/s.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Criteria from "../src/data/Criteria.js"
import * as MemoryStore from "../src/data/MemoryStore.js"
import * as Repository from "../src/data/Repository.js"
import * as SqlStore from "../src/data/SqlStore.js"
import * as Transaction from "../src/data/Transaction.js"

const Item = Schema.Struct({
  id: Schema.String,
  group: Schema.Number,
  /** The same value as `group`, never indexed: what a full scan filters on. */
  groupCopy: Schema.Number,
  name: Schema.String,
  score: Schema.Number
})
type Item = typeof Item.Type

const Counter = Schema.Struct({ id: Schema.String, value: Schema.Number })

export const N = 100_000
const groups = 1_000 // 100 records per group

const item = (i: number): Item => ({
  id: `item-${i}`,
  group: i % groups,
  groupCopy: i % groups,
  name: `name ${i}`,
  score: (i * 7919) % 1000
})

export interface Row {
  readonly name: string
  /** Operations per second (throughput rows), or undefined. */
  readonly perSecond?: number
  /** Microseconds per operation (latency rows), or undefined. */
  readonly micros?: number
}

export interface DataReport {
  readonly rows: ReadonlyArray<Row>
  readonly memoryInsertsPerSecond: number
  readonly indexedQueryMicros: number
  readonly scanQueryMicros: number
  readonly transactionsPerSecond: number
  readonly sqliteInsertsPerSecond: number
  readonly sqliteIndexedQueryMicros: number
}

const median = (xs: ReadonlyArray<number>): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** Times `n` runs of `effect` in this fiber; µs per run. */
const micros = <A, E, R>(effect: Effect.Effect<A, E, R>, n: number): Effect.Effect<number, E, R> =>
  Effect.gen(function*() {
    const start = performance.now()
    for (let i = 0; i < n; i++) yield* effect
    return ((performance.now() - start) * 1000) / n
  })

const log = (row: Row): Row => {
  const figure = row.perSecond !== undefined
    ? `${(row.perSecond / 1000).toFixed(1).padStart(9)} k/s`
    : `${row.micros!.toFixed(1).padStart(9)} µs`
  console.log(`${row.name.padEnd(84)} ${figure}`)
  return row
}

/** Inserts N records into a fresh repository; records per second. */
const insertRound = Effect.gen(function*() {
  const repo = yield* Repository.make({ name: "items", schema: Item, key: "id", indexes: ["group"] })
  const items = Array.from({ length: N }, (_, i) => item(i))
  const start = performance.now()
  for (const it of items) yield* repo.insert(it)
  return N / ((performance.now() - start) / 1000)
}).pipe(Effect.provide(MemoryStore.layer))

const mapRound = (): number => {
  const rows = new Map<string, Item>()
  const index = new Map<number, Set<string>>()
  const items = Array.from({ length: N }, (_, i) => item(i))
  const start = performance.now()
  for (const it of items) {
    rows.set(it.id, it)
    let keys = index.get(it.group)
    if (keys === undefined) index.set(it.group, keys = new Set())
    keys.add(it.id)
  }
  return N / ((performance.now() - start) / 1000)
}

const memory = Effect.gen(function*() {
  const rows: Array<Row> = []
  let inserts = 0
  for (let r = 0; r < 3; r++) inserts = Math.max(inserts, yield* insertRound)
  rows.push(log({ name: `memory: insert (Schema-validated, indexed, timestamped), ${N} records`, perSecond: inserts }))
  let floor = 0
  for (let r = 0; r < 3; r++) floor = Math.max(floor, mapRound())
  rows.push(log({ name: "floor: Map.set + a hand-made index, same records", perSecond: floor }))

  const repo = yield* Repository.make({ name: "items", schema: Item, key: "id", indexes: ["group"] })
  for (let i = 0; i < N; i++) yield* repo.insert(item(i))
  const indexed = repo.query({ where: Criteria.eq("group", 417) })
  const scanned = repo.query({ where: Criteria.eq("groupCopy", 417) })
  const found = (yield* indexed).length
  const foundByScan = (yield* scanned).length
  if (found !== 100 || foundByScan !== 100) return yield* Effect.dieMessage(`expected 100 rows, got ${found} / ${foundByScan}`)
  const indexedMicros = median(yield* Effect.forEach([1, 2, 3, 4, 5], () => micros(indexed, 2_000)))
  const scanMicros = median(yield* Effect.forEach([1, 2, 3, 4, 5], () => micros(scanned, 20)))
  rows.push(log({ name: "memory: indexed query, eq on an indexed attribute (100 of 100,000 rows)", micros: indexedMicros }))
  rows.push(log({ name: "memory: the same query on an unindexed attribute (full scan)", micros: scanMicros }))
  const get = repo.get("item-4242")
  rows.push(log({ name: "memory: get by key", micros: median(yield* Effect.forEach([1, 2, 3], () => micros(get, 100_000))) }))

  const counters = yield* Repository.make({ name: "counters", schema: Counter, key: "id" })
  yield* counters.insert({ id: "c", value: 0 })
  let next = N
  const transaction = Transaction.run(Effect.zipRight(
    Effect.suspend(() => repo.insert(item(next++))),
    counters.update("c", (c) => ({ ...c, value: c.value + 1 }))
  ))
  let txRate = 0
  for (let r = 0; r < 3; r++) txRate = Math.max(txRate, 1e6 / (yield* micros(transaction, 20_000)))
  rows.push(log({ name: "memory: transaction over two repositories (insert + update)", perSecond: txRate }))
  return {
    rows,
    memoryInsertsPerSecond: inserts,
    indexedQueryMicros: indexedMicros,
    scanQueryMicros: scanMicros,
    transactionsPerSecond: txRate
  }
}).pipe(Effect.provide(MemoryStore.layer))

/** Records written to SQLite: a file on disk, as an embedded user would run it. */
export const SQLITE_N = 20_000

const sqlite = (filename: string) =>
  Effect.scoped(Effect.gen(function*() {
    const rows: Array<Row> = []
    const repo = yield* Repository.make({ name: "items", schema: Item, key: "id", indexes: ["group"] })
    const start = performance.now()
    yield* Transaction.run(Effect.gen(function*() {
      for (let i = 0; i < SQLITE_N; i++) yield* repo.insert(item(i))
    }))
    const inserts = SQLITE_N / ((performance.now() - start) / 1000)
    rows.push(log({ name: `SQLite file: insert in one transaction, ${SQLITE_N} records (row + index row each)`, perSecond: inserts }))
    const indexed = repo.query({ where: Criteria.eq("group", 417) })
    const scanned = repo.query({ where: Criteria.eq("groupCopy", 417) })
    const found = (yield* indexed).length
    const foundByScan = (yield* scanned).length
    const expected = SQLITE_N / groups
    if (found !== expected || foundByScan !== expected) {
      return yield* Effect.dieMessage(`expected ${expected} rows, got ${found} / ${foundByScan}`)
    }
    const indexedMicros = median(yield* Effect.forEach([1, 2, 3, 4, 5], () => micros(indexed, 500)))
    const scanMicros = median(yield* Effect.forEach([1, 2, 3], () => micros(scanned, 5)))
    rows.push(log({ name: `SQLite file: indexed query, eq on an indexed attribute (${expected} of ${SQLITE_N} rows)`, micros: indexedMicros }))
    rows.push(log({ name: "SQLite file: the same query on an unindexed attribute (JSON scan)", micros: scanMicros }))
    const get = repo.get("item-4242")
    rows.push(log({ name: "SQLite file: get by key", micros: median(yield* Effect.forEach([1, 2, 3], () => micros(get, 5_000))) }))
    const counters = yield* Repository.make({ name: "counters", schema: Counter, key: "id" })
    yield* counters.insert({ id: "c", value: 0 })
    let next = SQLITE_N
    const transaction = Transaction.run(Effect.zipRight(
      Effect.suspend(() => repo.insert(item(next++))),
      counters.update("c", (c) => ({ ...c, value: c.value + 1 }))
    ))
    const txRate = 1e6 / (yield* micros(transaction, 2_000))
    rows.push(log({ name: "SQLite file: transaction over two repositories (insert + update, a commit each)", perSecond: txRate }))
    return { rows, inserts, indexedMicros }
  })).pipe(Effect.provide(SqlStore.layerSqlite({ filename })))

export const run: Effect.Effect<DataReport> = Effect.gen(function*() {
  console.log("-- repositories")
  const report = yield* memory
  const onDisk = yield* Effect.acquireUseRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "foundation-bench-"))),
    (dir) => sqlite(join(dir, "bench.db")),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )
  return {
    ...report,
    rows: [...report.rows, ...onDisk.rows],
    sqliteInsertsPerSecond: onDisk.inserts,
    sqliteIndexedQueryMicros: onDisk.indexedMicros
  }
}).pipe(Effect.orDie)

/** The report as a RESULTS.md section. */
export const markdown = (report: DataReport): string => `## Repositories

${N.toLocaleString("en")} records of a 5-field Schema struct in memory (${SQLITE_N.toLocaleString("en")} in a SQLite file), an
indexed attribute with 100 records per value in memory (20 on SQLite); one fiber; in-memory
throughputs best of 3 rounds, latencies median of rounds.

| scenario | figure |
|---|---|
${
  report.rows.map((r) =>
    `| ${r.name} | ${r.perSecond !== undefined ? `${(r.perSecond / 1000).toFixed(1)} k/s` : `${r.micros!.toFixed(1)} µs`} |`
  ).join("\n")
}
`


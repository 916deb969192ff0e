/**
 * MemoryStore: the in-memory `RepositoryStore`, the embedded default (nothing to install, nothing
 * kept after the process).
 *
 * Guarantees (the same contract as the SQL stores; one shared test suite runs on all of them):
 * - Every write applies its row and its index entries in one synchronous step, so no reader ever
 *   sees a row without its index entries or a stale entry.
 * - Transactions are serialisable: `transaction` takes the store's single write lock (an Effect
 *   `Semaphore`) and records its writes in an overlay that its own reads see; the commit applies
 *   the overlay in one synchronous step, so readers outside see all of it or none of it, and a
 *   failure, defect or interruption simply drops the overlay (nothing to undo, nothing half
 *   applied). Writes outside a transaction run in one step when no transaction holds the lock,
 *   and wait for it otherwise, so they never interleave with a transaction's reads and writes.
 *   One lock for the store, not one per repository: no lock-ordering deadlock. A write from a
 *   fiber running inside the transaction (or forked by it) joins it rather than wait for the lock
 *   it holds. Nested transactions are savepoints (a child overlay).
 * - Indexed `eq`/`in` queries read the index (`Criteria.plan`); the rest scan. Change events go
 *   out after each commit, in commit order, and only when someone listens (no cost otherwise).
 * - Plain structures, read and written only inside single synchronous steps (JavaScript runs one
 *   step at a time), which is what makes each step atomic.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import { AlreadyExistsError, NotFoundError, type ValidationError } from "../errors/FoundationError.js"
import * as Criteria from "./Criteria.js"
import * as config from "./internal/repositoryConfig.js"
import {
  Change,
  type Key,
  type KeyField,
  type Options,
  type Query,
  type Repository,
  RepositoryStore,
  type Row,
  type ScanPage,
  type Store,
  StoreError
} from "./Repository.js"

/** A committed (or overlaid) record with what the store derives from it. */
interface Stored<A, K extends Key> {
  readonly row: Row<A, K>
  readonly encoded: Record<string, unknown>
  readonly keyText: string
  /** The key has no UTF-16 surrogates: its native string order is its code point order. */
  readonly plainKey: boolean
  /** The index keys of each index (in the table's index order). */
  readonly indexKeys: ReadonlyArray<ReadonlyArray<string>>
}

const surrogate = /[\uD800-\uDFFF]/

/**
 * Key order (code points), the default order of query results: the native comparison where it
 * means the same (no surrogates in either key: about 4× faster than `Criteria.compareStrings`).
 */
const byKey = (a: Stored<unknown, Key>, b: Stored<unknown, Key>): number =>
  a.plainKey && b.plainKey
    ? (a.keyText < b.keyText ? -1 : a.keyText > b.keyText ? 1 : 0)
    : Criteria.compareStrings(a.keyText, b.keyText)

/** An overlay entry: the new record, or null for a deletion. */
type Pending<A, K extends Key> = Stored<A, K> | null

/** A transaction (or a savepoint, with a parent): its writes and its events, not yet applied. */
class Tx {
  open = true
  readonly writes = new Map<Table<unknown, Key>, Map<string, Pending<unknown, Key>>>()
  readonly events: Array<readonly [Table<unknown, Key>, Change<unknown, Key>]> = []
  constructor(readonly parent: Tx | undefined) {}

  /** The pending entry of `keyText` in `table`, looking up through the parents. */
  lookup<A, K extends Key>(table: Table<A, K>, keyText: string): Pending<A, K> | undefined {
    for (let tx: Tx | undefined = this; tx !== undefined; tx = tx.parent) {
      const found = tx.writes.get(table as unknown as Table<unknown, Key>)?.get(keyText)
      if (found !== undefined) return found as Pending<A, K>
    }
    return undefined
  }

  write<A, K extends Key>(table: Table<A, K>, keyText: string, entry: Pending<A, K>, event: Change<A, K>): void {
    const t = table as unknown as Table<unknown, Key>
    let writes = this.writes.get(t)
    if (writes === undefined) this.writes.set(t, writes = new Map())
    writes.set(keyText, entry as Pending<unknown, Key>)
    this.events.push([t, event as Change<unknown, Key>])
  }

  /** Every pending entry of `table` through the parents (a child's entry wins). */
  overlay<A, K extends Key>(table: Table<A, K>): Map<string, Pending<A, K>> | undefined {
    let merged: Map<string, Pending<A, K>> | undefined
    const chain: Array<Tx> = []
    for (let tx: Tx | undefined = this; tx !== undefined; tx = tx.parent) chain.push(tx)
    for (let i = chain.length - 1; i >= 0; i--) {
      const writes = chain[i]!.writes.get(table as unknown as Table<unknown, Key>)
      if (writes === undefined) continue
      merged ??= new Map()
      for (const [k, v] of writes) merged.set(k, v as Pending<A, K>)
    }
    return merged
  }

  /** A savepoint succeeded: its writes and events become its parent's. */
  absorb(child: Tx): void {
    for (const [table, writes] of child.writes) {
      let mine = this.writes.get(table)
      if (mine === undefined) this.writes.set(table, mine = new Map())
      for (const [k, v] of writes) mine.set(k, v)
    }
    for (const event of child.events) this.events.push(event)
  }
}

/** The committed state of one repository. */
class Table<A, K extends Key> {
  readonly rows = new Map<string, Stored<A, K>>()
  /** Per index (in the spec's order): index key → the stored rows with it, by key text. */
  readonly index: ReadonlyArray<Map<string, Map<string, Stored<A, K>>>>
  /** Key texts in order, rebuilt on demand after an insert or a delete. */
  private sorted: Array<string> | undefined = undefined
  listeners = 0
  readonly pubsub: PubSub.PubSub<Change<A, K>>

  /** pathKey → position in `index`. */
  private readonly positions: ReadonlyMap<string, number>

  constructor(readonly spec: config.Resolved<A, K>, pubsub: PubSub.PubSub<Change<A, K>>) {
    this.index = spec.indexes.map(() => new Map())
    this.positions = new Map(spec.indexes.map((path, i) => [Criteria.pathKey(path), i]))
    this.pubsub = pubsub
  }

  /** Applies one committed write: row and index entries together. */
  apply(keyText: string, entry: Pending<A, K>): void {
    const previous = this.rows.get(keyText)
    if (previous !== undefined) {
      for (let i = 0; i < this.index.length; i++) {
        for (const k of previous.indexKeys[i]!) {
          const keys = this.index[i]!.get(k)
          if (keys !== undefined) {
            keys.delete(keyText)
            if (keys.size === 0) this.index[i]!.delete(k)
          }
        }
      }
    }
    if (entry === null) {
      if (previous !== undefined) {
        this.rows.delete(keyText)
        this.sorted = undefined
      }
      return
    }
    if (previous === undefined) this.sorted = undefined
    this.rows.set(keyText, entry)
    for (let i = 0; i < this.index.length; i++) {
      const index = this.index[i]!
      for (const k of entry.indexKeys[i]!) {
        let members = index.get(k)
        if (members === undefined) index.set(k, members = new Map())
        members.set(keyText, entry)
      }
    }
  }

  publish(event: Change<A, K>): void {
    if (this.listeners > 0) this.pubsub.unsafeOffer(event)
  }

  sortedKeys(): Array<string> {
    return this.sorted ??= [...this.rows.keys()].sort(Criteria.compareStrings)
  }

  /** The committed rows that may match `plan` (from the index when it has one). */
  candidates(plan: Criteria.Plan): Iterable<Stored<A, K>> {
    if (plan.index === undefined) return this.rows.values()
    const index = this.index[this.positions.get(Criteria.pathKey(plan.index.path))!]!
    const keys = plan.index.keys
    // One index key: its members are the candidates, as they are (the index holds the rows).
    if (keys.length === 1) return index.get(keys[0]!)?.values() ?? []
    const out = new Set<Stored<A, K>>()
    for (const k of keys) {
      const members = index.get(k)
      if (members !== undefined) for (const stored of members.values()) out.add(stored)
    }
    return out
  }
}

const derive = <A, K extends Key>(
  spec: config.Resolved<A, K>,
  key: K,
  value: A,
  encoded: Record<string, unknown>,
  createdAt: number,
  updatedAt: number
): Stored<A, K> => {
  const keyText = config.keyText(key)
  return {
    row: { key, value, createdAt, updatedAt },
    encoded,
    keyText,
    plainKey: !surrogate.test(keyText),
    indexKeys: spec.indexes.map((path) => Criteria.indexKeys(Criteria.valueAt(encoded, path)))
  }
}

/** Makes an in-memory store (its clock is the one in the context now). */
export const make: Effect.Effect<Store> = Effect.gen(function*() {
  const clock = yield* Effect.clock
  const lock = yield* Effect.makeSemaphore(1)
  const current = FiberRef.unsafeMake<Tx | undefined>(undefined)
  /** The transaction holding the lock, if any. */
  let holder: Tx | undefined
  const tables = new Map<string, Table<unknown, Key>>()

  /** The open transaction of the calling fiber, if any. */
  const openTx = <X, E>(f: (tx: Tx | undefined) => Effect.Effect<X, E>): Effect.Effect<X, E> =>
    Effect.withFiberRuntime((fiber) => {
      const tx = fiber.getFiberRef(current)
      return f(tx !== undefined && tx.open ? tx : undefined)
    })

  /**
   * Runs a write step: in the caller's transaction, or at once when no transaction holds the
   * lock, or once the lock is free.
   */
  const writeStep = <X, E>(step: (tx: Tx | undefined) => Either.Either<X, E>): Effect.Effect<X, E> =>
    openTx((tx) => {
      if (tx !== undefined || holder === undefined) return step(tx)
      return lock.withPermits(1)(Effect.suspend(() => step(undefined)))
    })

  const commit = (tx: Tx): void => {
    for (const [table, writes] of tx.writes) {
      for (const [keyText, entry] of writes) table.apply(keyText, entry)
    }
    for (const [table, event] of tx.events) table.publish(event)
  }

  const transaction = <X, E, R>(effect: Effect.Effect<X, E, R>): Effect.Effect<X, E | StoreError, R> =>
    Effect.withFiberRuntime((fiber) => {
      const outer = fiber.getFiberRef(current)
      if (outer !== undefined && outer.open) {
        const child = new Tx(outer)
        return Effect.onExit(Effect.locally(effect, current, child), (exit) =>
          Effect.sync(() => {
            child.open = false
            if (exit._tag === "Success" && outer.open) outer.absorb(child)
          }))
      }
      return lock.withPermits(1)(Effect.suspend(() => {
        const tx = new Tx(undefined)
        holder = tx
        return Effect.onExit(Effect.locally(effect, current, tx), (exit) =>
          Effect.sync(() => {
            tx.open = false
            holder = undefined
            if (exit._tag === "Success") commit(tx)
          }))
      }))
    })

  const repository = <A, I, KF extends KeyField<A>>(
    options: Options<A, I, KF>
  ): Effect.Effect<Repository<A, A[KF] & Key>, ValidationError | StoreError> =>
    Effect.suspend((): Effect.Effect<Repository<A, A[KF] & Key>, ValidationError | StoreError> => {
      type K = A[KF] & Key
      const resolved = config.resolve(options)
      if (Either.isLeft(resolved)) return Effect.fail(resolved.left)
      const spec = resolved.right
      const existing = tables.get(spec.name) as Table<A, K> | undefined
      if (existing !== undefined) {
        const same = existing.spec.indexes.length === spec.indexes.length &&
          spec.indexes.every((p) => existing.spec.indexed.has(Criteria.pathKey(p)))
        if (!same) {
          return Effect.fail(
            new StoreError({
              store: "memory",
              during: `open ${spec.name}`,
              cause: new Error("the repository is open with other indexes in this store")
            })
          )
        }
        return Effect.succeed(repositoryOf(existing, spec))
      }
      return Effect.map(PubSub.unbounded<Change<A, K>>(), (pubsub) => {
        const table = new Table<A, K>(spec, pubsub)
        tables.set(spec.name, table as unknown as Table<unknown, Key>)
        return repositoryOf(table, spec)
      })
    })

  const repositoryOf = <A, K extends Key>(table: Table<A, K>, spec: config.Resolved<A, K>): Repository<A, K> => {
    const name = spec.name
    const notFound = (keyText: string) => new NotFoundError({ resource: name, key: keyText })

    /** The current record of `keyText` as the caller sees it. */
    const read = (tx: Tx | undefined, keyText: string): Stored<A, K> | undefined => {
      if (tx !== undefined) {
        const pending = tx.lookup(table, keyText)
        if (pending !== undefined) return pending ?? undefined
      }
      return table.rows.get(keyText)
    }

    /** Records a write: in the transaction's overlay, or committed and published now. */
    const write = (tx: Tx | undefined, keyText: string, entry: Pending<A, K>, event: Change<A, K>): void => {
      if (tx !== undefined) return tx.write(table, keyText, entry, event)
      table.apply(keyText, entry)
      table.publish(event)
    }

    const encodeWithKey = (value: A): Either.Either<readonly [K, Record<string, unknown>], ValidationError> => {
      const encoded = spec.encode(value)
      if (Either.isLeft(encoded)) return Either.left(encoded.left)
      const key = spec.keyOf(value)
      if (Either.isLeft(key)) return Either.left(key.left)
      return Either.right([key.right, encoded.right] as const)
    }

    const insert = (value: A): Effect.Effect<Row<A, K>, AlreadyExistsError | ValidationError> =>
      Effect.suspend((): Effect.Effect<Row<A, K>, AlreadyExistsError | ValidationError> => {
        const checked = encodeWithKey(value)
        if (Either.isLeft(checked)) return Effect.fail(checked.left)
        const [key, encoded] = checked.right
        const keyText = config.keyText(key)
        return writeStep((tx): Either.Either<Row<A, K>, AlreadyExistsError> => {
          if (read(tx, keyText) !== undefined) return Either.left(new AlreadyExistsError({ resource: name, key: keyText }))
          const now = clock.unsafeCurrentTimeMillis()
          const stored = derive(spec, key, value, encoded, now, now)
          write(tx, keyText, stored, Change.Inserted({ repository: name, row: stored.row }))
          return Either.right(stored.row)
        })
      })

    const put = (value: A): Effect.Effect<Row<A, K>, ValidationError> =>
      Effect.suspend(() => {
        const checked = encodeWithKey(value)
        if (Either.isLeft(checked)) return Effect.fail(checked.left)
        const [key, encoded] = checked.right
        const keyText = config.keyText(key)
        return writeStep((tx) => {
          const previous = read(tx, keyText)
          const now = clock.unsafeCurrentTimeMillis()
          const stored = derive(spec, key, value, encoded, previous?.row.createdAt ?? now, now)
          write(
            tx,
            keyText,
            stored,
            previous === undefined
              ? Change.Inserted({ repository: name, row: stored.row })
              : Change.Updated({ repository: name, row: stored.row, previous: previous.row })
          )
          return Either.right<Row<A, K>>(stored.row)
        })
      })

    const get = (key: K): Effect.Effect<Row<A, K>, NotFoundError> =>
      openTx((tx) => {
        const keyText = config.keyText(key)
        const found = read(tx, keyText)
        return found === undefined ? Effect.fail(notFound(keyText)) : Effect.succeed(found.row)
      })

    const find = (key: K): Effect.Effect<Option.Option<Row<A, K>>> =>
      openTx((tx) => Effect.succeed(Option.map(Option.fromNullable(read(tx, config.keyText(key))), (s) => s.row)))

    const update = (
      key: K,
      change: Partial<A> | ((current: A) => A)
    ): Effect.Effect<Row<A, K>, NotFoundError | ValidationError> =>
      writeStep((tx): Either.Either<Row<A, K>, NotFoundError | ValidationError> => {
        const keyText = config.keyText(key)
        const previous = read(tx, keyText)
        if (previous === undefined) return Either.left(notFound(keyText))
        // The user's function runs here, inside this step: it must be pure (it maps a record).
        const next = typeof change === "function"
          ? (change as (current: A) => A)(previous.row.value)
          : { ...previous.row.value, ...change }
        const checked = encodeWithKey(next)
        if (Either.isLeft(checked)) return Either.left(checked.left)
        const [nextKey, encoded] = checked.right
        if (config.keyText(nextKey) !== keyText) return Either.left(config.keyChanged(name, spec.keyField))
        const stored = derive(spec, previous.row.key, next, encoded, previous.row.createdAt, clock.unsafeCurrentTimeMillis())
        write(tx, keyText, stored, Change.Updated({ repository: name, row: stored.row, previous: previous.row }))
        return Either.right(stored.row)
      })

    const remove = (key: K): Effect.Effect<Row<A, K>, NotFoundError> =>
      writeStep((tx) => {
        const keyText = config.keyText(key)
        const previous = read(tx, keyText)
        if (previous === undefined) return Either.left(notFound(keyText))
        write(tx, keyText, null, Change.Deleted({ repository: name, row: previous.row }))
        return Either.right(previous.row)
      })

    /** The records matching `plan`, as the caller sees them (unordered). */
    const matching = (tx: Tx | undefined, plan: Criteria.Plan): Array<Stored<A, K>> => {
      const out: Array<Stored<A, K>> = []
      const overlay = tx?.overlay(table)
      for (const stored of table.candidates(plan)) {
        if (overlay !== undefined && overlay.has(stored.keyText)) continue
        if (plan.matches(stored.encoded)) out.push(stored)
      }
      if (overlay !== undefined) {
        for (const pending of overlay.values()) {
          if (pending !== null && plan.matches(pending.encoded)) out.push(pending)
        }
      }
      return out
    }

    const query = (q?: Query): Effect.Effect<ReadonlyArray<Row<A, K>>, ValidationError> =>
      openTx((tx) => {
        const resolved = config.resolveQuery(q)
        if (Either.isLeft(resolved)) return Effect.fail(resolved.left)
        const { limit, offset, orderBy, where } = resolved.right
        const found = matching(tx, Criteria.plan(where, spec.indexed))
        found.sort(orderBy.length === 0 ? byKey : config.comparator(orderBy))
        const end = limit === undefined ? found.length : offset + limit
        const rows: Array<Row<A, K>> = []
        for (let i = offset; i < end && i < found.length; i++) rows.push(found[i]!.row)
        return Effect.succeed(rows)
      })

    const count = (where?: Criteria.Criteria): Effect.Effect<number, ValidationError> =>
      openTx((tx) => {
        const checked = where === undefined ? Either.right(Criteria.all) : Criteria.validate(where, "where")
        if (Either.isLeft(checked)) return Effect.fail(checked.left)
        return Effect.succeed(matching(tx, Criteria.plan(checked.right, spec.indexed)).length)
      })

    const scan = (
      after: Option.Option<K>,
      limit: number,
      where?: Criteria.Criteria
    ): Effect.Effect<ScanPage<A, K>, ValidationError> =>
      openTx((tx) => {
        const bad = config.checkLimit(limit)
        if (bad !== undefined) return Effect.fail(bad)
        const checked = where === undefined ? Either.right(Criteria.all) : Criteria.validate(where, "where")
        if (Either.isLeft(checked)) return Effect.fail(checked.left)
        const matches = Criteria.predicate(checked.right)
        const overlay = tx?.overlay(table)
        // Committed keys in order, merged with the transaction's own inserts.
        let keys = table.sortedKeys()
        if (overlay !== undefined) {
          const added = [...overlay.keys()].filter((k) => !table.rows.has(k))
          if (added.length > 0) keys = [...keys, ...added].sort(Criteria.compareStrings)
        }
        let i = 0
        if (Option.isSome(after)) {
          const from = config.keyText(after.value)
          let lo = 0
          let hi = keys.length
          while (lo < hi) {
            const mid = (lo + hi) >>> 1
            if (Criteria.compareStrings(keys[mid]!, from) <= 0) lo = mid + 1
            else hi = mid
          }
          i = lo
        }
        const rows: Array<Row<A, K>> = []
        let last: K | undefined
        for (; i < keys.length && rows.length < limit; i++) {
          const stored = read(tx, keys[i]!)
          if (stored === undefined) continue
          last = stored.row.key
          if (matches(stored.encoded)) rows.push(stored.row)
        }
        // Another row may follow when the walk stopped before the end.
        const next = i < keys.length && last !== undefined ? Option.some(last) : Option.none()
        return Effect.succeed({ rows, next })
      })

    const changes: Repository<A, K>["changes"] = Effect.map(
      Effect.acquireRelease(
        Effect.sync(() => {
          table.listeners++
        }),
        () =>
          Effect.sync(() => {
            table.listeners--
          })
      ).pipe(Effect.zipRight(PubSub.subscribe(table.pubsub))),
      (queue) => Stream.fromQueue(queue)
    )

    return {
      name,
      keyField: spec.keyField,
      indexes: spec.indexes,
      insert,
      put,
      get,
      find,
      update,
      delete: remove,
      query,
      count,
      scan,
      changes
    }
  }

  return { kind: "memory", repository, transaction }
})

/** The in-memory store as the `RepositoryStore` of the context. */
export const layer: Layer.Layer<RepositoryStore> = Layer.effect(RepositoryStore, make)

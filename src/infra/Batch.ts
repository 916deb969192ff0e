/**
 * Batch: bulk writes, paged reads and bounded parallel maps over any keyed store (the original's
 * `BatchOperations`, generic so that the agent registry and the repositories can share it).
 *
 * A store is a `BatchStore<K, V, P, E, C>`: `insert`, `update` (returns the previous value),
 * `remove` (returns the previous value) and a cursor-paged `scan`. `memoryStore` is an in-memory
 * implementation, ordered by key.
 *
 * Writes (`register` / `update` / `unregister` on a `Batcher` made by `make(store)`):
 * - Items are applied chunk by chunk (`chunkSize`, default 1000): a chunk's items run up to
 *   `concurrency` at a time (default 1, in input order), and the next chunk starts only once the
 *   previous one has settled.
 * - `onError` (default `stop`): `stop` starts no item after a failure has been seen and keeps
 *   what was applied; `continue` applies everything it can; `rollback` stops like `stop` and then
 *   undoes, newest first, everything this batch applied, including the successful items of the
 *   failing chunk (the original skipped those), so the store ends as it was. Under `rollback`,
 *   interrupting the batch undoes what it applied too.
 * - The result is a `BatchResult`: `Ok(keys)` when every item was applied; `Partial(keys,
 *   failures, skipped)` when some were; `Failed(failures, rolledBack, rollbackFailures, skipped)`
 *   when nothing of the batch remains applied (rolled back, or no item succeeded). Every failure
 *   names its key and input index; keys are in input order. Nothing is lost (the original
 *   dropped update errors). Bad options fail with `ValidationError` before any item is applied.
 *
 * Reads (`query`): a `Stream` of pages of `pageSize` (default 100) fetched with the store's
 * cursor, never by re-running the query with growing offsets (which shifted items and cost
 * O(n²)). Guarantee, given a store honouring the `scan` contract (entries in a fixed key order,
 * strictly after the cursor): every entry present for the whole stream is yielded exactly once;
 * an entry inserted or removed meanwhile is yielded at most once (inserted after the cursor: yes;
 * removed before its page is read: no); an entry's value is the one current when its page was
 * read. No entry is ever yielded twice.
 *
 * `parallelMap(items, f, { concurrency, timeoutPerItem })` runs `f` over the items, at most
 * `concurrency` (default: one per core) at once, each within `timeoutPerItem` (default 5 s; a
 * late item is interrupted and its result is a `TimeoutError`), returning one `Exit` per item in
 * input order. All its fibers (and its one timer fiber) end before it returns.
 *
 * Metrics, tagged `store`: `foundation_batch_items_total` (tags `operation`: register | update |
 * unregister, `outcome`: applied | failed | rolled_back | skipped) and
 * `foundation_batch_query_results_total`. Telemetry (when the `Telemetry` service is in the
 * context at `make`): see `events`.
 */
import * as os from "node:os"
import * as Arr from "effect/Array"
import * as Chunk from "effect/Chunk"
import type * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Order from "effect/Order"
import * as RedBlackTree from "effect/RedBlackTree"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import {
  AlreadyExistsError,
  NotFoundError,
  type TimeoutError,
  type ValidationError
} from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"
import * as Timeout from "../resilience/Timeout.js"

// ---------------------------------------------------------------------------------------------
// The store contract
// ---------------------------------------------------------------------------------------------

/** One page of a scan. */
export interface Page<K, V, C = K> {
  readonly entries: ReadonlyArray<readonly [K, V]>
  /** Where the next page starts; `None` when the scan is complete. */
  readonly next: Option.Option<C>
}

/**
 * A keyed store the batch operations work on. `E` is the store's own failure type (I/O...);
 * `C` is its cursor (for a key-ordered store, the last key seen).
 */
export interface BatchStore<K, V, P = Partial<V>, E = never, C = K> {
  /** Used in errors, metrics and events. */
  readonly name: string
  /** Adds an entry; fails with `AlreadyExistsError` if the key is taken. */
  readonly insert: (key: K, value: V) => Effect.Effect<void, AlreadyExistsError | E>
  /** Applies a patch; returns the previous value (for undo), or fails with `NotFoundError`. */
  readonly update: (key: K, patch: P) => Effect.Effect<V, NotFoundError | E>
  /** Removes an entry; returns its value (for undo), or fails with `NotFoundError`. */
  readonly remove: (key: K) => Effect.Effect<V, NotFoundError | E>
  /**
   * Up to `limit` (a positive integer) entries matching `filter`, in the store's fixed key order,
   * strictly after `cursor` (from the start when `None`). `next` is `None` only when no entry
   * follows; a page may be short (or empty) with a `next` when the filter skipped entries.
   */
  readonly scan: (
    cursor: Option.Option<C>,
    limit: number,
    filter?: (value: V, key: K) => boolean
  ) => Effect.Effect<Page<K, V, C>, E>
}

/** What a write item can fail with: the store's errors (and the undo's, on rollback). */
export type StoreError<E> = AlreadyExistsError | NotFoundError | E

// ---------------------------------------------------------------------------------------------
// Results, options, events
// ---------------------------------------------------------------------------------------------

/** One failed item: its key, its position in the input, and the error. */
export interface ItemFailure<K, E> {
  readonly key: K
  readonly index: number
  readonly error: E
}

/** The outcome of a batch write. Keys are in input order. */
export type BatchResult<K, E> = Data.TaggedEnum<{
  /** Every item was applied. */
  Ok: { readonly keys: ReadonlyArray<K> }
  /** Some items were applied (`keys`), some failed, and some were not attempted (`skipped`, under `stop`). */
  Partial: {
    readonly keys: ReadonlyArray<K>
    readonly failures: ReadonlyArray<ItemFailure<K, E>>
    readonly skipped: ReadonlyArray<K>
  }
  /**
   * Nothing of the batch remains applied: it was rolled back (`rolledBack` lists the undone keys),
   * or no item succeeded. `rollbackFailures` lists the undos that failed (those items stay applied).
   */
  Failed: {
    readonly failures: ReadonlyArray<ItemFailure<K, E>>
    readonly rolledBack: ReadonlyArray<K>
    readonly rollbackFailures: ReadonlyArray<ItemFailure<K, E>>
    readonly skipped: ReadonlyArray<K>
  }
}>

interface BatchResultDefinition extends Data.TaggedEnum.WithGenerics<2> {
  readonly taggedEnum: BatchResult<this["A"], this["B"]>
}

/** Constructors and matchers of `BatchResult` (`BatchResult.Ok({ keys })`, `$is`, `$match`). */
export const BatchResult = Data.taggedEnum<BatchResultDefinition>()

/** What to do when an item fails. */
export type OnError = "stop" | "continue" | "rollback"

/** Options of a batch write. */
export interface WriteOptions {
  /** Items per chunk (an integer ≥ 1) [1000]. */
  readonly chunkSize?: number
  /** Items of a chunk applied at once (an integer ≥ 1) [1]. */
  readonly concurrency?: number
  /** [stop] */
  readonly onError?: OnError
}

/** Options of `unregister`. */
export interface UnregisterOptions extends WriteOptions {
  /** Count a missing key as removed [false]. */
  readonly ignoreMissing?: boolean
}

/** Options of `query`. */
export interface QueryOptions {
  /** Entries per page (an integer ≥ 1) [100]. */
  readonly pageSize?: number
}

/** Defaults of a `Batcher` (and `parallelMap`'s time limit), as in the original. */
export interface Options extends WriteOptions, QueryOptions {}

/** The original's numbers. */
export const defaults = {
  chunkSize: 1000,
  concurrency: 1,
  onError: "stop",
  pageSize: 100,
  timeoutPerItem: "5 seconds"
} as const

/** Telemetry events of this module, with the original's names. Durations in milliseconds. */
export const events = Events.names.batch

type Operation = "register" | "update" | "unregister"

const eventOf: Record<Operation, string> = {
  register: events.batchRegister,
  update: events.batchUpdate,
  unregister: events.batchUnregister
}

// ---------------------------------------------------------------------------------------------
// Batcher
// ---------------------------------------------------------------------------------------------

/** Batch operations bound to one store. */
export interface Batcher<K, V, P = Partial<V>, E = never, C = K> {
  readonly store: BatchStore<K, V, P, E, C>
  /** Inserts the entries. */
  register(
    entries: Iterable<readonly [K, V]>,
    options?: WriteOptions
  ): Effect.Effect<BatchResult<K, StoreError<E>>, ValidationError>
  /** Patches the entries (undo restores the previous value). */
  update(
    patches: Iterable<readonly [K, P]>,
    options?: WriteOptions
  ): Effect.Effect<BatchResult<K, StoreError<E>>, ValidationError>
  /** Removes the keys (undo re-inserts the removed value). */
  unregister(keys: Iterable<K>, options?: UnregisterOptions): Effect.Effect<BatchResult<K, StoreError<E>>, ValidationError>
  /** The entries matching `filter`, in pages, by cursor (see the module doc for the guarantee). */
  query(filter?: (value: V, key: K) => boolean, options?: QueryOptions): Stream.Stream<readonly [K, V], E | ValidationError>
}

interface WriteSettings {
  readonly chunkSize: number
  readonly concurrency: number
  readonly onError: OnError
}

/** One item of a write: its key, and applying it, which yields its undo (if it has one). */
interface Step<K, Err> {
  readonly key: K
  readonly apply: Effect.Effect<Option.Option<Effect.Effect<void, Err>>, Err>
}

interface Applied<K, Err> {
  readonly key: K
  readonly index: number
  readonly undo: Option.Option<Effect.Effect<void, Err>>
}

const validateWrite = (options: WriteOptions, fallback: WriteSettings, prefix: string) =>
  Effect.gen(function*() {
    const settings: WriteSettings = {
      chunkSize: yield* Validation.positiveInt(`${prefix}.chunkSize`, options.chunkSize ?? fallback.chunkSize),
      concurrency: yield* Validation.positiveInt(`${prefix}.concurrency`, options.concurrency ?? fallback.concurrency),
      onError: yield* Validation.oneOf(`${prefix}.onError`, options.onError ?? fallback.onError, [
        "stop",
        "continue",
        "rollback"
      ])
    }
    return settings
  })

const outcomes = ["applied", "failed", "rolled_back", "skipped"] as const
type Outcome = typeof outcomes[number]

class BatcherImpl<K, V, P, E, C> implements Batcher<K, V, P, E, C> {
  private readonly counters = new Map<string, Metric.Metric.Counter<number>>()
  private readonly queryResults: Metric.Metric.Counter<number>

  constructor(
    readonly store: BatchStore<K, V, P, E, C>,
    private readonly settings: WriteSettings,
    private readonly pageSize: number,
    private readonly clock: Clock.Clock,
    private readonly telemetry: Telemetry.Service | undefined
  ) {
    this.queryResults = MetricKit.counter("foundation_batch_query_results_total", {
      description: "Entries yielded by batch queries",
      tags: { store: store.name }
    })
  }

  /** The counter of one operation and outcome, made on first use (then kept). */
  private count(operation: Operation, outcome: Outcome, by: number): void {
    if (by === 0) return
    const key = `${operation}/${outcome}`
    let counter = this.counters.get(key)
    if (counter === undefined) {
      counter = MetricKit.counter("foundation_batch_items_total", {
        description: "Items of batch writes, by operation and outcome",
        tags: { store: this.store.name, operation, outcome }
      })
      this.counters.set(key, counter)
    }
    MetricKit.bump(counter, by)
  }

  register(
    entries: Iterable<readonly [K, V]>,
    options: WriteOptions = {}
  ): Effect.Effect<BatchResult<K, StoreError<E>>, ValidationError> {
    const store = this.store
    return Effect.flatMap(validateWrite(options, this.settings, "batch.register"), (settings) =>
      this.run("register", settings, Array.from(entries, ([key, value]): Step<K, StoreError<E>> => ({
        key,
        apply: Effect.as(store.insert(key, value), Option.some(Effect.asVoid(store.remove(key))))
      }))))
  }

  update(
    patches: Iterable<readonly [K, P]>,
    options: WriteOptions = {}
  ): Effect.Effect<BatchResult<K, StoreError<E>>, ValidationError> {
    const store = this.store
    return Effect.flatMap(validateWrite(options, this.settings, "batch.update"), (settings) =>
      this.run("update", settings, Array.from(patches, ([key, patch]): Step<K, StoreError<E>> => ({
        key,
        apply: Effect.map(store.update(key, patch), (previous) =>
          Option.some(Effect.zipRight(store.remove(key), store.insert(key, previous))))
      }))))
  }

  unregister(keys: Iterable<K>, options: UnregisterOptions = {}): Effect.Effect<BatchResult<K, StoreError<E>>, ValidationError> {
    const store = this.store
    return Effect.gen(this, function*() {
      const settings = yield* validateWrite(options, this.settings, "batch.unregister")
      const ignoreMissing = options.ignoreMissing ?? false
      if (typeof ignoreMissing !== "boolean") {
        return yield* Validation.invalid("batch.unregister.ignoreMissing", "must be a boolean")
      }
      return yield* this.run("unregister", settings, Array.from(keys, (key): Step<K, StoreError<E>> => {
        const removed: Effect.Effect<Option.Option<Effect.Effect<void, StoreError<E>>>, StoreError<E>> = Effect.map(
          store.remove(key),
          (previous) => Option.some(store.insert(key, previous))
        )
        return {
          key,
          apply: ignoreMissing
            ? Effect.catchIf(removed, (e) => e instanceof NotFoundError, () => Effect.succeed(Option.none()))
            : removed
        }
      }))
    })
  }

  /** Applies the steps chunk by chunk under the policy, then reports. */
  private run<Err>(operation: Operation, settings: WriteSettings, steps: ReadonlyArray<Step<K, Err>>): Effect.Effect<BatchResult<K, Err>> {
    return Effect.suspend(() => {
      const startedAt = this.clock.unsafeCurrentTimeMillis()
      // The progress of this batch: plain arrays and flags, read and written only inside
      // synchronous steps (so each update is atomic under any concurrency).
      const applied: Array<Applied<K, Err>> = []
      const failures: Array<ItemFailure<K, Err>> = []
      const skipped: Array<number> = []
      let halted = false
      let chunkCount = 0

      const attempt = (index: number): Effect.Effect<void> =>
        Effect.suspend(() => {
          const step = steps[index]!
          if (halted) {
            skipped.push(index)
            return Effect.void
          }
          const tracked = Effect.matchEffect(step.apply, {
            onSuccess: (undo) => Effect.sync(() => applied.push({ key: step.key, index, undo })),
            onFailure: (error) =>
              Effect.sync(() => {
                failures.push({ key: step.key, index, error })
                if (settings.onError !== "continue") halted = true
              })
          })
          // Under rollback, an item applied is always recorded (so it can be undone), even when
          // the batch is interrupted at that moment: the store call is not cut in the middle.
          return settings.onError === "rollback" ? Effect.uninterruptible(tracked) : tracked
        })

      const chunks = Arr.chunksOf(Arr.makeBy(steps.length, (i) => i), settings.chunkSize)
      const applyAll = Effect.forEach(chunks, (chunk) =>
        Effect.suspend(() => {
          if (halted) {
            skipped.push(...chunk)
            return Effect.void
          }
          chunkCount++
          return Effect.forEach(chunk, attempt, { concurrency: settings.concurrency, discard: true })
        }), { discard: true })

      /** Undoes everything applied, newest first; returns the undone keys and the undos that failed. */
      const undoAll = Effect.suspend(() => {
        const toUndo = applied.splice(0).reverse()
        const rolledBack: Array<Applied<K, Err>> = []
        const rollbackFailures: Array<ItemFailure<K, Err>> = []
        return Effect.as(
          Effect.forEach(toUndo, (item) =>
            Option.match(item.undo, {
              onNone: () => Effect.sync(() => rolledBack.push(item)),
              onSome: (undo) =>
                Effect.matchEffect(undo, {
                  onSuccess: () => Effect.sync(() => rolledBack.push(item)),
                  onFailure: (error) => Effect.sync(() => rollbackFailures.push({ key: item.key, index: item.index, error }))
                })
            }), { discard: true }),
          { rolledBack, rollbackFailures }
        )
      })

      const guarded = settings.onError === "rollback"
        ? Effect.onInterrupt(applyAll, () => undoAll) // an interrupted rollback batch leaves nothing behind
        : applyAll

      return Effect.flatMap(guarded, () =>
        Effect.gen(this, function*() {
          const byIndex = <T extends { readonly index: number }>(items: ReadonlyArray<T>) =>
            [...items].sort((a, b) => a.index - b.index)
          const skippedKeys = skipped.sort((a, b) => a - b).map((i) => steps[i]!.key)
          const sortedFailures = byIndex(failures)
          let result: BatchResult<K, Err>
          let rolledBackCount = 0
          if (failures.length === 0) {
            result = BatchResult.Ok({ keys: byIndex(applied).map((a) => a.key) })
          } else if (settings.onError === "rollback") {
            const undone = yield* undoAll
            rolledBackCount = undone.rolledBack.length
            result = BatchResult.Failed({
              failures: sortedFailures,
              rolledBack: byIndex(undone.rolledBack).map((a) => a.key),
              rollbackFailures: byIndex(undone.rollbackFailures),
              skipped: skippedKeys
            })
          } else if (applied.length === 0) {
            result = BatchResult.Failed({ failures: sortedFailures, rolledBack: [], rollbackFailures: [], skipped: skippedKeys })
          } else {
            result = BatchResult.Partial({
              keys: byIndex(applied).map((a) => a.key),
              failures: sortedFailures,
              skipped: skippedKeys
            })
          }
          const remaining = result._tag === "Failed" ? result.rollbackFailures.length : applied.length
          this.report(operation, settings, result, {
            duration: this.clock.unsafeCurrentTimeMillis() - startedAt,
            count: steps.length,
            success_count: remaining,
            error_count: steps.length - remaining,
            rolled_back_count: rolledBackCount,
            skipped_count: skipped.length,
            chunk_count: chunkCount
          }, failures.length)
          return result
        }))
    })
  }

  private report(
    operation: Operation,
    settings: WriteSettings,
    result: BatchResult<K, unknown>,
    measurements: {
      readonly duration: number
      readonly count: number
      readonly success_count: number
      readonly error_count: number
      readonly rolled_back_count: number
      readonly skipped_count: number
      readonly chunk_count: number
    },
    failed: number
  ): void {
    this.count(operation, "applied", measurements.success_count + measurements.rolled_back_count)
    this.count(operation, "failed", failed)
    this.count(operation, "rolled_back", measurements.rolled_back_count)
    this.count(operation, "skipped", measurements.skipped_count)
    this.telemetry?.unsafeEmit(eventOf[operation], measurements, {
      operation,
      store: this.store.name,
      on_error: settings.onError,
      outcome: result._tag === "Ok" ? "ok" : result._tag === "Partial" ? "partial" : "failed"
    })
  }

  query(
    filter?: (value: V, key: K) => boolean,
    options: QueryOptions = {}
  ): Stream.Stream<readonly [K, V], E | ValidationError> {
    return Stream.unwrap(Effect.gen(this, function*() {
      const pageSize = yield* Validation.positiveInt("batch.query.pageSize", options.pageSize ?? this.pageSize)
      // Per stream run; touched only inside synchronous steps.
      const startedAt = this.clock.unsafeCurrentTimeMillis()
      let results = 0
      let pages = 0
      let complete = false
      const pagesStream = Stream.paginateChunkEffect(Option.none<C>(), (cursor) =>
        Effect.map(this.store.scan(cursor, pageSize, filter), (page) => {
          results += page.entries.length
          pages++
          MetricKit.bump(this.queryResults, page.entries.length)
          if (Option.isNone(page.next)) complete = true
          return [Chunk.fromIterable(page.entries), Option.map(page.next, Option.some)] as const
        }))
      return Stream.ensuringWith(pagesStream, () =>
        Effect.sync(() =>
          this.telemetry?.unsafeEmit(events.query, {
            duration: this.clock.unsafeCurrentTimeMillis() - startedAt,
            result_count: results,
            page_count: pages
          }, { store: this.store.name, filtered: filter !== undefined, complete })
        ))
    }))
  }
}

/** A `Batcher` over `store`; bad options fail with `ValidationError` naming the field. */
export const make = <K, V, P, E, C>(
  store: BatchStore<K, V, P, E, C>,
  options: Options = {}
): Effect.Effect<Batcher<K, V, P, E, C>, ValidationError> =>
  Effect.gen(function*() {
    const settings = yield* validateWrite(options, defaults, "batch")
    const pageSize = yield* Validation.positiveInt("batch.pageSize", options.pageSize ?? defaults.pageSize)
    yield* Validation.nonEmptyString("batch.store.name", store.name)
    const clock = yield* Effect.clock
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    return new BatcherImpl(store, settings, pageSize, clock, telemetry)
  })

// ---------------------------------------------------------------------------------------------
// parallelMap
// ---------------------------------------------------------------------------------------------

/** Options of `parallelMap`. */
export interface ParallelMapOptions {
  /** Items at once (an integer ≥ 1) [`os.availableParallelism()`]. */
  readonly concurrency?: number
  /** Time limit of each item [5 s]. */
  readonly timeoutPerItem?: Duration.DurationInput
}

/**
 * Runs `f` over the items with bounded concurrency and a per-item time limit; one `Exit` per item,
 * in input order (a failing or late item never sinks the others). Interrupting it interrupts
 * every item.
 */
export const parallelMap = <I, A, E, R>(
  items: Iterable<I>,
  f: (item: I, index: number) => Effect.Effect<A, E, R>,
  options: ParallelMapOptions = {}
): Effect.Effect<ReadonlyArray<Exit.Exit<A, E | TimeoutError>>, ValidationError, R> =>
  Effect.gen(function*() {
    const concurrency = yield* Validation.positiveInt(
      "batch.parallelMap.concurrency",
      options.concurrency ?? os.availableParallelism()
    )
    const duration = yield* Validation.duration(
      "batch.parallelMap.timeoutPerItem",
      options.timeoutPerItem ?? defaults.timeoutPerItem
    )
    const input = Array.from(items)
    // The timer lives in a scope of this call only (not the caller's, which `f` may use).
    return yield* Effect.acquireUseRelease(
      Scope.make(),
      (scope) =>
        Effect.flatMap(
          Scope.extend(Timeout.make({ duration, name: "batch.parallel_map" }), scope),
          (timeout) =>
            Effect.forEach(
              input,
              (item, index) => Effect.exit(timeout.apply(Effect.suspend(() => f(item, index)))),
              { concurrency }
            )
        ),
      (scope, exit) => Scope.close(scope, exit)
    )
  })

// ---------------------------------------------------------------------------------------------
// In-memory store
// ---------------------------------------------------------------------------------------------

/** The in-memory store, with reads for tests and examples. */
export interface MemoryStore<K, V, P = Partial<V>> extends BatchStore<K, V, P, never, K> {
  readonly get: (key: K) => Effect.Effect<Option.Option<V>>
  /** Every entry, in key order. */
  readonly entries: Effect.Effect<ReadonlyArray<readonly [K, V]>>
  readonly size: Effect.Effect<number>
}

/** Options of `memoryStore`. */
export interface MemoryStoreOptions<K, V> {
  /** ["memory"] */
  readonly name?: string
  /** The key order (the scan order; the cursor is the last key seen). */
  readonly order: Order.Order<K>
  /** Entries to start with (keys must be distinct). */
  readonly initial?: Iterable<readonly [K, V]>
}

const showKey = (key: unknown): string => {
  if (typeof key === "string") return key
  if (typeof key === "number" || typeof key === "bigint" || typeof key === "boolean") return String(key)
  try {
    return JSON.stringify(key) ?? String(key)
  } catch {
    return String(key)
  }
}

/**
 * An in-memory store ordered by key: an immutable red-black tree in a `Ref`, so each operation
 * is one atomic update and a scan reads a consistent snapshot; a page costs O(log n + page).
 * Object values are patched by a shallow merge unless `applyPatch` is given.
 */
export function memoryStore<K, V extends object>(
  options: MemoryStoreOptions<K, V>
): Effect.Effect<MemoryStore<K, V, Partial<V>>, ValidationError>
export function memoryStore<K, V, P>(
  options: MemoryStoreOptions<K, V> & { readonly applyPatch: (value: V, patch: P) => V }
): Effect.Effect<MemoryStore<K, V, P>, ValidationError>
export function memoryStore<K, V, P>(
  options: MemoryStoreOptions<K, V> & { readonly applyPatch?: (value: V, patch: P) => V }
): Effect.Effect<MemoryStore<K, V, P>, ValidationError> {
  return Effect.gen(function*() {
    const name = yield* Validation.nonEmptyString("memoryStore.name", options.name ?? "memory")
    const applyPatch = options.applyPatch ?? ((value: V, patch: P): V => Object.assign({}, value, patch))
    let initial = RedBlackTree.empty<K, V>(options.order)
    for (const [key, value] of options.initial ?? []) {
      if (RedBlackTree.has(initial, key)) {
        return yield* Validation.invalid("memoryStore.initial", `duplicate key ${showKey(key)}`)
      }
      initial = RedBlackTree.insert(initial, key, value)
    }
    type Tree = RedBlackTree.RedBlackTree<K, V>
    const ref = yield* Ref.make(initial)
    const notFound = (key: K) => new NotFoundError({ resource: name, key: showKey(key) })

    const store: MemoryStore<K, V, P> = {
      name,
      insert: (key, value) =>
        Effect.flatten(Ref.modify(ref, (tree): readonly [Effect.Effect<void, AlreadyExistsError>, Tree] =>
          RedBlackTree.has(tree, key)
            ? [Effect.fail(new AlreadyExistsError({ resource: name, key: showKey(key) })), tree]
            : [Effect.void, RedBlackTree.insert(tree, key, value)])),
      update: (key, patch) =>
        Effect.flatten(Ref.modify(ref, (tree): readonly [Effect.Effect<V, NotFoundError>, Tree] => {
          const previous = RedBlackTree.findFirst(tree, key)
          if (Option.isNone(previous)) return [Effect.fail(notFound(key)), tree]
          const next = applyPatch(previous.value, patch)
          return [Effect.succeed(previous.value), RedBlackTree.insert(RedBlackTree.removeFirst(tree, key), key, next)]
        })),
      remove: (key) =>
        Effect.flatten(Ref.modify(ref, (tree): readonly [Effect.Effect<V, NotFoundError>, Tree] => {
          const previous = RedBlackTree.findFirst(tree, key)
          return Option.isNone(previous)
            ? [Effect.fail(notFound(key)), tree]
            : [Effect.succeed(previous.value), RedBlackTree.removeFirst(tree, key)]
        })),
      scan: (cursor, limit, filter) =>
        Effect.flatMap(Ref.get(ref), (tree) => {
          const checked = Validation.positiveInt("memoryStore.scan.limit", limit)
          // A contract violation by the caller (the Batcher validates its page size): a defect.
          if (Either.isLeft(checked)) return Effect.die(checked.left)
          const source = Option.isSome(cursor) ? RedBlackTree.greaterThan(tree, cursor.value) : tree
          const iterator = source[Symbol.iterator]()
          const entries: Array<readonly [K, V]> = []
          let last = Option.none<K>()
          for (;;) {
            if (entries.length >= limit) break
            const step = iterator.next()
            if (step.done === true) return Effect.succeed({ entries, next: Option.none() })
            const [key, value] = step.value
            last = Option.some(key)
            if (filter === undefined || filter(value, key)) entries.push([key, value])
          }
          return Effect.succeed({ entries, next: iterator.next().done === true ? Option.none() : last })
        }),
      get: (key) => Effect.map(Ref.get(ref), (tree) => RedBlackTree.findFirst(tree, key)),
      entries: Effect.map(Ref.get(ref), (tree) => Array.from(tree, ([k, v]) => [k, v] as const)),
      size: Effect.map(Ref.get(ref), RedBlackTree.size)
    }
    return store
  })
}

/**
 * The in-process store of a `Cache`: a JS `Map` from key to entry for O(1) lookup, and an
 * intrusive doubly linked list of the same entries giving the eviction order (head = next
 * victim). Under LRU a read or a write moves the entry to the tail (O(1), no allocation); under
 * FIFO nothing moves, so the head is the oldest insertion.
 *
 * Everything here is synchronous. Callers run each operation inside ONE synchronous Effect step:
 * fibers interleave only between effects, so no other fiber can observe an operation half-done.
 * No user code runs here (the key function is applied by the caller, before).
 *
 * Expiry: an entry with `expiresAt <= now` is expired (it lived exactly its TTL). An expired
 * entry is never returned: `read` deletes it (counted as an expiration and an "expired" miss),
 * `write` over it counts an expiration and treats the key as freshly inserted, and `sweep`
 * removes the rest in slices.
 *
 * @internal
 */
import { IntrusiveList, type Node } from "../../observability/internal/intrusiveList.js"

/** What the store indexes by: the key itself (string or number) or the key function's result. */
export type Id = string | number

/** Why a read missed. */
export type MissReason = "absent" | "expired"

/** One cached value. */
export class Entry<K, V> implements Node<Entry<K, V>> {
  prev: Entry<K, V> | undefined = undefined
  next: Entry<K, V> | undefined = undefined
  list: IntrusiveList<Entry<K, V>> | undefined = undefined
  constructor(
    readonly id: Id,
    public key: K,
    public value: V,
    /** Epoch milliseconds; `Infinity` for no expiry. */
    public expiresAt: number
  ) {}
}

/** Called synchronously by the store when something worth a metric or an event happens. */
export interface Hooks<K, V> {
  /** `count` expired entries were removed (read, write over, eviction victim or sweep). */
  readonly expired: (count: number) => void
  /** A live entry was evicted to make room for a new key. */
  readonly evicted: (entry: Entry<K, V>) => void
  /** The number of entries changed. */
  readonly resized: (size: number) => void
}

/** A sweep in progress: `step` examines up to `n` entries; true when the sweep is done. */
export interface Sweep {
  step(n: number): boolean
  readonly removed: number
}

export class CacheStore<K, V> {
  private readonly map = new Map<Id, Entry<K, V>>()
  private order = new IntrusiveList<Entry<K, V>>()
  hits = 0
  absentMisses = 0
  expiredMisses = 0
  evictions = 0
  expirations = 0
  /** Why the last `read` that returned undefined missed. */
  lastMiss: MissReason = "absent"

  constructor(
    readonly maxSize: number,
    readonly lru: boolean,
    private readonly hooks: Hooks<K, V>
  ) {}

  get size(): number {
    return this.map.size
  }

  /** The live entry of `id` (counted as a hit, and touched under LRU), or undefined (a miss). */
  read(id: Id, now: number): Entry<K, V> | undefined {
    const entry = this.map.get(id)
    if (entry === undefined) {
      this.absentMisses++
      this.lastMiss = "absent"
      return undefined
    }
    if (entry.expiresAt <= now) {
      this.unlink(entry)
      this.expiredMisses++
      this.lastMiss = "expired"
      this.expirations++
      this.hooks.expired(1)
      this.hooks.resized(this.map.size)
      return undefined
    }
    this.hits++
    if (this.lru && entry !== this.order.tail) {
      this.order.remove(entry)
      this.order.push(entry)
    }
    return entry
  }

  /** The live entry of `id`, counting and touching nothing. */
  peek(id: Id, now: number): Entry<K, V> | undefined {
    const entry = this.map.get(id)
    return entry !== undefined && entry.expiresAt > now ? entry : undefined
  }

  /**
   * Stores a value. Updating a key that is present never evicts; inserting a new key into a
   * full store first removes the head of the order (an expired head counts as an expiration,
   * a live one as an eviction).
   */
  write(id: Id, key: K, value: V, expiresAt: number, now: number): void {
    const existing = this.map.get(id)
    if (existing !== undefined) {
      const wasExpired = existing.expiresAt <= now
      existing.key = key
      existing.value = value
      existing.expiresAt = expiresAt
      if (wasExpired) {
        // The old entry is gone; the key counts as a fresh insertion (to the tail in both modes).
        this.expirations++
        this.hooks.expired(1)
        this.order.remove(existing)
        this.order.push(existing)
      } else if (this.lru && existing !== this.order.tail) {
        this.order.remove(existing)
        this.order.push(existing)
      }
      return
    }
    if (this.map.size >= this.maxSize) {
      const victim = this.order.head
      if (victim !== undefined) {
        this.unlink(victim)
        if (victim.expiresAt <= now) {
          this.expirations++
          this.hooks.expired(1)
        } else {
          this.evictions++
          this.hooks.evicted(victim)
        }
      }
    }
    const entry = new Entry(id, key, value, expiresAt)
    this.map.set(id, entry)
    this.order.push(entry)
    this.hooks.resized(this.map.size)
  }

  /** Removes `id`; true when a live entry was there (an expired one counts as an expiration). */
  remove(id: Id, now: number): boolean {
    const entry = this.map.get(id)
    if (entry === undefined) return false
    this.unlink(entry)
    this.hooks.resized(this.map.size)
    if (entry.expiresAt <= now) {
      this.expirations++
      this.hooks.expired(1)
      return false
    }
    return true
  }

  /** Removes everything; returns how many entries there were. */
  clear(): number {
    const count = this.map.size
    this.map.clear()
    // A fresh list: stale nodes still point at the old one, so removing one later is a no-op.
    this.order = new IntrusiveList<Entry<K, V>>()
    this.hooks.resized(0)
    return count
  }

  /** The keys of live entries in eviction order (next victim first). */
  liveKeys(now: number): Array<K> {
    const out: Array<K> = []
    for (let e = this.order.head; e !== undefined; e = e.next) if (e.expiresAt > now) out.push(e.key)
    return out
  }

  /**
   * Starts a sweep removing entries expired at `now`. It walks the map's own iterator, which
   * stays valid across deletions and insertions made between steps (each step is one
   * synchronous, hence atomic, slice).
   */
  startSweep(now: number): Sweep {
    const iterator = this.map.values()
    let removed = 0
    const step = (n: number): boolean => {
      const before = removed
      for (let i = 0; i < n; i++) {
        const next = iterator.next()
        if (next.done === true) {
          flush(before)
          return true
        }
        const entry = next.value
        if (entry.expiresAt <= now) {
          this.unlink(entry)
          removed++
        }
      }
      flush(before)
      return false
    }
    const flush = (before: number) => {
      const n = removed - before
      if (n > 0) {
        this.expirations += n
        this.hooks.expired(n)
        this.hooks.resized(this.map.size)
      }
    }
    return {
      step,
      get removed() {
        return removed
      }
    }
  }

  private unlink(entry: Entry<K, V>): void {
    this.map.delete(entry.id)
    this.order.remove(entry)
  }
}

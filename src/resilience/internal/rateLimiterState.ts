/**
 * The in-process state of a rate limiter: the three algorithms as plain arithmetic on a mutable
 * per-key entry, and a bounded table of entries with (approximately) least-recently-used
 * eviction.
 *
 * Everything here is synchronous and allocation-free on the hot path (one entry object per new
 * key). Callers run each operation inside ONE synchronous Effect step: fibers interleave only
 * between effects, so a check-and-update done here can never be observed half-done by another
 * fiber, whatever the concurrency.
 *
 * Arithmetic is exact: all quantities are integers as long as times are whole milliseconds and
 * `limit × window` ≤ `Number.MAX_SAFE_INTEGER` (checked by the limiter's validation). The token
 * bucket counts in "token-milliseconds" (one token = `window` units, refill `limit` units per
 * ms) so that a proportional refill never accumulates rounding errors; the sliding window
 * compares `estimate × window` with `limit × window` for the same reason. A denial's
 * `retryAfter` is therefore the exact smallest wait after which the same request fits.
 *
 * Time never runs backwards for a key: a `now` older than the key's last update is treated as
 * that update's time (the live clock is wall-clock time and may be adjusted).
 *
 * @internal
 */

/** The algorithms, by name. */
export type AlgorithmName = "token-bucket" | "fixed-window" | "sliding-window"

/**
 * The state of one key. Field use by algorithm:
 * - token-bucket: `level` = tokens × window (0…limit × window), `t` = time of the last refill;
 * - fixed-window: `count` = cost admitted in the window starting at `t`;
 * - sliding-window: `count` = cost admitted in the window starting at `t`, `previous` = cost
 *   admitted in the window before it.
 */
export class Entry {
  level = 0
  count = 0
  previous = 0
  t = 0
  /** Used since the eviction hand last passed (CLOCK second chance). */
  used = false
  /** Towards the oldest end (next candidate for eviction). */
  older: Entry | undefined = undefined
  /** Towards the newest end. */
  newer: Entry | undefined = undefined
  constructor(readonly key: string) {}
}

/** Written by the algorithms; owned by the caller and reused across calls. */
export interface Decision {
  allowed: boolean
  /** Cost-1 requests that would fit right now (after this request when it was allowed). */
  remaining: number
  /** Milliseconds until the request would fit (0 when allowed). */
  retryAfter: number
  /** Milliseconds until the key is back to full capacity (indistinguishable from a new key). */
  resetAfter: number
}

/** Creates a reusable decision buffer. */
export const makeDecision = (): Decision => ({ allowed: false, remaining: 0, retryAfter: 0, resetAfter: 0 })

/** One algorithm, parameterised by limit and window (whole milliseconds). */
export interface Algorithm {
  readonly name: AlgorithmName
  /** Puts a new entry in the state of a key never seen (or idle). */
  readonly init: (entry: Entry, now: number) => void
  /**
   * Admits `cost` if it fits and records it; a denial changes nothing that affects later
   * decisions (it may only roll the entry forward in time, which is behaviour-neutral).
   */
  readonly consume: (entry: Entry, cost: number, now: number, out: Decision) => void
  /** The decision a request of cost 1 would get, without recording anything. */
  readonly peek: (entry: Entry, now: number, out: Decision) => void
  /** The time from which the entry is indistinguishable from a fresh one. */
  readonly idleAt: (entry: Entry) => number
}

const floorDiv = (a: number, b: number): number => Math.floor(a / b)

/** A token bucket: capacity `limit`, refilled continuously at `limit` tokens per `window`. */
export const tokenBucket = (limit: number, window: number): Algorithm => {
  const full = limit * window
  const refill = (entry: Entry, now: number): void => {
    if (now > entry.t) {
      const level = entry.level + (now - entry.t) * limit
      entry.level = level > full ? full : level
      entry.t = now
    }
  }
  return {
    name: "token-bucket",
    init: (entry, now) => {
      entry.level = full
      entry.t = now
    },
    consume: (entry, cost, now, out) => {
      refill(entry, now)
      const need = cost * window
      let level = entry.level
      if (level >= need) {
        level -= need
        entry.level = level
        out.allowed = true
        out.retryAfter = 0
      } else {
        out.allowed = false
        out.retryAfter = Math.ceil((need - level) / limit)
      }
      out.remaining = floorDiv(level, window)
      out.resetAfter = Math.ceil((full - level) / limit)
    },
    peek: (entry, now, out) => {
      refill(entry, now)
      const level = entry.level
      out.allowed = level >= window
      out.remaining = floorDiv(level, window)
      out.retryAfter = level >= window ? 0 : Math.ceil((window - level) / limit)
      out.resetAfter = Math.ceil((full - level) / limit)
    },
    idleAt: (entry) => entry.t + Math.ceil((full - entry.level) / limit)
  }
}

/** Fixed windows aligned on multiples of `window` since the epoch, `limit` per window. */
export const fixedWindow = (limit: number, window: number): Algorithm => {
  const roll = (entry: Entry, now: number): void => {
    if (now >= entry.t + window) {
      entry.t = floorDiv(now, window) * window
      entry.count = 0
    }
  }
  return {
    name: "fixed-window",
    init: (entry, now) => {
      entry.t = floorDiv(now, window) * window
      entry.count = 0
    },
    consume: (entry, cost, now, out) => {
      roll(entry, now)
      const elapsed = now > entry.t ? now - entry.t : 0
      let count = entry.count
      if (count + cost <= limit) {
        count += cost
        entry.count = count
        out.allowed = true
        out.retryAfter = 0
      } else {
        out.allowed = false
        out.retryAfter = window - elapsed
      }
      out.remaining = limit - count
      out.resetAfter = count === 0 ? 0 : window - elapsed
    },
    peek: (entry, now, out) => {
      roll(entry, now)
      const elapsed = now > entry.t ? now - entry.t : 0
      const count = entry.count
      out.allowed = count < limit
      out.remaining = limit - count
      out.retryAfter = count < limit ? 0 : window - elapsed
      out.resetAfter = count === 0 ? 0 : window - elapsed
    },
    idleAt: (entry) => entry.count === 0 ? entry.t : entry.t + window
  }
}

/**
 * The two-window weighted counter: the estimate at `now` is
 * `previous × (1 − elapsed/window) + count`, where `count` is the cost admitted in the current
 * aligned window and `previous` the cost admitted in the one before. A request fits when
 * `estimate + cost ≤ limit`. Compared in units of `1/window` to stay in exact integers.
 */
export const slidingWindow = (limit: number, window: number): Algorithm => {
  const full = limit * window
  const roll = (entry: Entry, now: number): void => {
    if (now >= entry.t + window) {
      const start = floorDiv(now, window) * window
      entry.previous = start - entry.t === window ? entry.count : 0
      entry.count = 0
      entry.t = start
    }
  }
  /** Milliseconds from `now` until `cost` fits, given that it does not fit now. */
  const waitFor = (entry: Entry, cost: number, elapsed: number): number => {
    const previous = entry.previous
    const count = entry.count
    // In the current window: previous × (window − e) ≤ (limit − count − cost) × window.
    const room = limit - count - cost
    if (room >= 0 && previous > 0) {
      const at = window - floorDiv(room * window, previous)
      if (at < window) return at - elapsed
    }
    // In the next window, `count` becomes the previous window's cost and nothing is admitted yet.
    const nextRoom = limit - cost
    const at = count > nextRoom ? window - floorDiv(nextRoom * window, count) : 0
    return window - elapsed + (at > 0 ? at : 0)
  }
  const resetAfter = (entry: Entry, elapsed: number): number =>
    entry.count > 0 ? 2 * window - elapsed : entry.previous > 0 ? window - elapsed : 0
  return {
    name: "sliding-window",
    init: (entry, now) => {
      entry.t = floorDiv(now, window) * window
      entry.count = 0
      entry.previous = 0
    },
    consume: (entry, cost, now, out) => {
      roll(entry, now)
      const elapsed = now > entry.t ? now - entry.t : 0
      const weighted = entry.previous * (window - elapsed)
      let count = entry.count
      if (weighted + (count + cost) * window <= full) {
        count += cost
        entry.count = count
        out.allowed = true
        out.retryAfter = 0
      } else {
        out.allowed = false
        out.retryAfter = waitFor(entry, cost, elapsed)
      }
      const free = full - weighted - count * window
      out.remaining = free > 0 ? floorDiv(free, window) : 0
      out.resetAfter = resetAfter(entry, elapsed)
    },
    peek: (entry, now, out) => {
      roll(entry, now)
      const elapsed = now > entry.t ? now - entry.t : 0
      const free = full - entry.previous * (window - elapsed) - entry.count * window
      out.allowed = free >= window
      out.remaining = free > 0 ? floorDiv(free, window) : 0
      out.retryAfter = free >= window ? 0 : waitFor(entry, 1, elapsed)
      out.resetAfter = resetAfter(entry, elapsed)
    },
    idleAt: (entry) => entry.count > 0 ? entry.t + 2 * window : entry.previous > 0 ? entry.t + window : entry.t
  }
}

/** The algorithm of a name. */
export const algorithm = (name: AlgorithmName, limit: number, window: number): Algorithm => {
  switch (name) {
    case "token-bucket":
      return tokenBucket(limit, window)
    case "fixed-window":
      return fixedWindow(limit, window)
    case "sliding-window":
      return slidingWindow(limit, window)
  }
}

/** A sweep in progress (see `Table.startSweep`). */
export interface Sweep {
  removed: number
  readonly step: (budget: number) => boolean
}

/**
 * A bounded table of entries: a `Map` for lookup plus an intrusive doubly linked list that
 * orders the entries for eviction, managed by the CLOCK (second-chance) approximation of
 * least-recently-used: a hit only sets the entry's `used` flag (no relinking, so the hot path
 * touches no other entry); when room is needed, the hand walks from the oldest entry, giving
 * each used entry a second chance (flag cleared, moved to the newest end) and removing the first
 * entry that is idle or has not been used since the hand last passed it.
 *
 * Removing an idle entry (indistinguishable from a fresh key) changes nothing and is counted as
 * `expired`; removing an entry still in use is a real eviction (that key will start afresh) and
 * is counted as `evicted`.
 */
export class Table {
  private readonly entries = new Map<string, Entry>()
  private oldest: Entry | undefined = undefined
  private newest: Entry | undefined = undefined
  /** Live entries removed to make room (their keys lost their state). */
  evicted = 0
  /** Idle entries removed (no change in behaviour). */
  expired = 0

  constructor(readonly algorithm: Algorithm, readonly maxKeys: number) {}

  get size(): number {
    return this.entries.size
  }

  /** The entry of `key`, if held (not marked as used). */
  get(key: string): Entry | undefined {
    return this.entries.get(key)
  }

  /**
   * The entry of `key`, marked as used; created fresh when missing, after making room when the
   * table is full.
   */
  acquire(key: string, now: number): Entry {
    const found = this.entries.get(key)
    if (found !== undefined) {
      found.used = true
      return found
    }
    if (this.entries.size >= this.maxKeys) this.makeRoom(now)
    const entry = new Entry(key)
    this.algorithm.init(entry, now)
    this.entries.set(key, entry)
    this.append(entry)
    return entry
  }

  /** Removes the entry of `key`; true when there was one. */
  delete(key: string): boolean {
    const entry = this.entries.get(key)
    if (entry === undefined) return false
    this.remove(entry)
    return true
  }

  /**
   * Starts a sweep removing the entries idle at `now`. Each `step(budget)` examines up to
   * `budget` entries and returns true once the whole table has been seen; `removed` counts the
   * removals so far. Steps may be separated by other operations: the walk uses the `Map`
   * iterator, which tolerates removals and insertions, and an entry used after `now` is never
   * idle at `now`.
   */
  startSweep(now: number): Sweep {
    const iterator = this.entries.values()
    const sweep: Sweep = {
      removed: 0,
      step: (budget) => {
        for (let seen = 0; seen < budget; seen++) {
          const next = iterator.next()
          if (next.done === true) return true
          const entry = next.value
          if (this.algorithm.idleAt(entry) <= now) {
            this.remove(entry)
            this.expired++
            sweep.removed++
          }
        }
        return false
      }
    }
    return sweep
  }

  /** Removes every entry. */
  clear(): void {
    this.entries.clear()
    this.oldest = undefined
    this.newest = undefined
  }

  /** Removes one entry (the CLOCK hand; amortised O(1): each skip clears a flag a hit set). */
  private makeRoom(now: number): void {
    let victim = this.oldest
    while (victim !== undefined) {
      if (this.algorithm.idleAt(victim) <= now) {
        this.remove(victim)
        this.expired++
        return
      }
      if (!victim.used) {
        this.remove(victim)
        this.evicted++
        return
      }
      victim.used = false
      this.unlink(victim)
      this.append(victim)
      victim = this.oldest
    }
  }

  private remove(entry: Entry): void {
    this.entries.delete(entry.key)
    this.unlink(entry)
  }

  private unlink(entry: Entry): void {
    const { newer, older } = entry
    if (older === undefined) this.oldest = newer
    else older.newer = newer
    if (newer === undefined) this.newest = older
    else newer.older = older
    entry.older = undefined
    entry.newer = undefined
  }

  private append(entry: Entry): void {
    const newest = this.newest
    entry.older = newest
    entry.newer = undefined
    if (newest === undefined) this.oldest = entry
    else newest.newer = entry
    this.newest = entry
  }
}

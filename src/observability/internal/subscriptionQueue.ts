/**
 * The queue of one bus subscription: a bounded FIFO of events, the subscriber's waiting takers,
 * and — for the `backpressure` strategy — the publishers waiting for room, in arrival order.
 *
 * Why not Effect's `Mailbox`: whether a waiting publisher's event got in must be decided in the
 * same synchronous step that makes room, so that an interrupted publisher's event is counted as
 * dropped exactly when it did not get in, and a new publisher must not overtake the waiting ones
 * (events would arrive out of order). Here a `take` moves waiting events in and marks them
 * accepted in one step; a publisher that gives up removes only what is still waiting.
 *
 * Every method runs in one synchronous step (fibers interleave only between effects).
 */
import { IntrusiveList, type Node } from "./intrusiveList.js"

/** A publisher's event waiting for room. */
export interface Waiting<A> extends Node<Waiting<A>> {
  readonly item: A
  /** Called once the event is in the queue. */
  readonly accepted: () => void
}

interface Taker<A> extends Node<Taker<A>> {
  readonly resume: (items: ReadonlyArray<A> | undefined) => void
  readonly all: boolean
}

export class SubscriptionQueue<A> {
  private items: Array<A> = []
  private head = 0
  private readonly waiting = new IntrusiveList<Waiting<A>>()
  private readonly takers = new IntrusiveList<Taker<A>>()
  private closed = false

  constructor(readonly capacity: number, private readonly onTaken: (count: number) => void) {}

  /** Events in the queue (not counting waiting publishers). */
  get size(): number {
    return this.items.length - this.head
  }

  /** Events whose publishers wait for room. */
  get waitingCount(): number {
    return this.waiting.size
  }

  get isClosed(): boolean {
    return this.closed
  }

  /** Full: no room, or publishers already waiting (a newcomer must not overtake them). */
  get isFull(): boolean {
    return this.size >= this.capacity || this.waiting.size > 0
  }

  /** Adds an event if there is room; hands it straight to a waiting taker if there is one. */
  offer(item: A): boolean {
    if (this.closed || this.isFull) return false
    this.items.push(item)
    this.serveTakers()
    return true
  }

  /** Adds an event, dropping the oldest to make room; returns whether one was dropped. */
  offerSliding(item: A): boolean {
    if (this.closed) return false
    let dropped = false
    if (this.size >= this.capacity) {
      this.shift()
      dropped = true
    }
    this.items.push(item)
    this.serveTakers()
    return dropped
  }

  /** Queues a publisher's event behind the others waiting; `accepted` runs when it gets in. */
  wait(node: Waiting<A>): void {
    this.waiting.push(node)
  }

  /** Gives up a waiting event; true when it was still waiting (it never got in). */
  cancel(node: Waiting<A>): boolean {
    return this.waiting.remove(node)
  }

  /** Takes up to `max` events now (moving waiting publishers' events in), or none. */
  takeNow(max: number): ReadonlyArray<A> {
    const n = Math.min(max, this.size)
    if (n === 0) return []
    const out = this.items.slice(this.head, this.head + n)
    this.head += n
    this.compact()
    this.refill()
    this.onTaken(n)
    return out
  }

  /** Registers a taker for the next events; `resume(undefined)` when the queue closes. */
  awaitItems(all: boolean, resume: (items: ReadonlyArray<A> | undefined) => void): Taker<A> | undefined {
    if (this.closed) {
      resume(undefined)
      return undefined
    }
    const taker: Taker<A> = { resume, all, prev: undefined, next: undefined, list: undefined }
    this.takers.push(taker)
    return taker
  }

  cancelTaker(taker: Taker<A>): void {
    this.takers.remove(taker)
  }

  /**
   * Closes the queue: takers end, waiting publishers are released (their events never got in)
   * and the events still queued are discarded. Returns how many events were lost that way.
   */
  close(): number {
    if (this.closed) return 0
    this.closed = true
    let lost = this.size
    this.items = []
    this.head = 0
    for (let w = this.waiting.head; w !== undefined; w = this.waiting.head) {
      this.waiting.remove(w)
      lost++
      w.accepted() // the publisher goes on; the event is counted as lost
    }
    for (let t = this.takers.head; t !== undefined; t = this.takers.head) {
      this.takers.remove(t)
      t.resume(undefined)
    }
    return lost
  }

  private shift(): void {
    this.head++
    this.compact()
    this.refill()
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
  }

  /** Moves waiting events in while there is room, in their order, and tells their publishers. */
  private refill(): void {
    while (this.size < this.capacity) {
      const next = this.waiting.head
      if (next === undefined) return
      this.waiting.remove(next)
      this.items.push(next.item)
      next.accepted()
    }
  }

  private serveTakers(): void {
    for (let t = this.takers.head; t !== undefined && this.size > 0; t = this.takers.head) {
      this.takers.remove(t)
      t.resume(this.takeNow(t.all ? Number.POSITIVE_INFINITY : 1))
    }
  }
}

/**
 * The event bus: publish on dot-separated topics (`agent.task.completed`), subscribe by exact
 * topic or pattern (`agent.*.completed`, `agent.**`), receive CloudEvents-shaped envelopes.
 *
 * Guarantees:
 * - Routing goes through a segment trie (and a cache of recent topics), so its cost depends on
 *   the topic and its matches, not on how many other subscriptions exist.
 * - Each subscription has its own bounded queue (default capacity 10,000, as the original) and a
 *   strategy for when it is full: `backpressure` (the publisher waits), `dropping` (the new
 *   event is dropped), `sliding` (the oldest is dropped) or `reject` (the publish fails with
 *   `BackpressureError` and reaches no subscriber at all).
 * - Nothing is lost silently: per subscription, `published = delivered + dropped + pending`
 *   holds at every moment (an event whose publisher waits for room is pending), events still
 *   pending when a subscription closes are counted as dropped, and so is the event of a publisher
 *   interrupted while it waited — decided in the same step that accepts events, so never both.
 * - Order: a subscription receives events in publishing order; a publisher never overtakes the
 *   ones already waiting for room.
 * - Subscriptions live in a `Scope`: closing it unsubscribes.
 * - Envelopes carry `id`, `type` (the topic), `source`, `time` (from `Clock`), `data` and the
 *   `correlationId` (given, or the current `ErrorContext`'s); data is validated when the
 *   publisher supplies a Schema.
 * - With `replay: n`, the last n events of each topic are kept (for a bounded number of topics)
 *   and handed to subscriptions made with `replay: true` before any new event.
 *
 * Metrics (tagged `bus`): `foundation_event_bus_published_total`,
 * `foundation_event_bus_delivered_total`, `foundation_event_bus_dropped_total`.
 */
import type * as Clock from "effect/Clock"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as ErrorContext from "../errors/ErrorContext.js"
import { BackpressureError, ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import { SubscriptionQueue, type Waiting } from "./internal/subscriptionQueue.js"
import { matches, parsePattern, parseTopic, TopicTrie } from "./internal/topicTrie.js"
import * as MetricKit from "./MetricKit.js"

/** An event as subscribers receive it (the CloudEvents attributes, in camelCase). */
export interface Envelope<A = unknown> {
  readonly specversion: "1.0"
  /** Unique per bus. */
  readonly id: string
  /** The topic. */
  readonly type: string
  readonly source: string
  /** Epoch milliseconds, from the bus's `Clock`. */
  readonly time: number
  readonly data: A
  readonly correlationId: string | undefined
}

/** What a full subscription queue does with a new event. */
export type Strategy = "backpressure" | "dropping" | "sliding" | "reject"

export const strategies: ReadonlyArray<Strategy> = ["backpressure", "dropping", "sliding", "reject"]

/** Options of a bus. */
export interface Options {
  /** Used in metrics ["event_bus"]. */
  readonly name?: string
  /** The `source` of envelopes when the publisher gives none ["effect-foundation"]. */
  readonly source?: string
  /** Default queue capacity of a subscription [10,000]. */
  readonly capacity?: number
  /** Events kept per topic for late subscribers [0: none]. */
  readonly replay?: number
  /** Topics whose last events are kept, at most (oldest topic forgotten first) [10,000]. */
  readonly replayTopics?: number
}

/** Options of a subscription. */
export interface SubscribeOptions {
  /** What to do when the queue is full ["backpressure"]. */
  readonly strategy?: Strategy
  /** Queue capacity [the bus's]. */
  readonly capacity?: number
  /** Receive the kept events of matching topics first [false]. */
  readonly replay?: boolean
}

/** Options of a publish. */
export interface PublishOptions<A, I> {
  /** [the bus's source] */
  readonly source?: string
  /** [the current ErrorContext's correlation id, if any] */
  readonly correlationId?: string
  /** Validates the data (an unknown input decoded to `A`) before anything is published. */
  readonly schema?: Schema.Schema<A, I>
}

/** What a subscription has seen. `published = delivered + dropped + pending`. */
export interface SubscriptionStats {
  readonly pattern: string
  readonly strategy: Strategy
  readonly capacity: number
  readonly published: number
  readonly delivered: number
  readonly dropped: number
  readonly pending: number
}

/**
 * A subscription, valid until its scope closes. When the bus itself closes first, a reader
 * waiting in `take`/`takeAll` is interrupted (there will be nothing more) and `stream` ends.
 */
export interface Subscription {
  readonly pattern: string
  /** The next event (waits for one). */
  readonly take: Effect.Effect<Envelope>
  /** Every event waiting, at least one (waits for one). */
  readonly takeAll: Effect.Effect<ReadonlyArray<Envelope>>
  /** The next event if there is one, without waiting. */
  readonly poll: Effect.Effect<Option.Option<Envelope>>
  /** The events, as they come. */
  readonly stream: Stream.Stream<Envelope>
  readonly stats: Effect.Effect<SubscriptionStats>
}

/** What the bus has seen. */
export interface BusStats {
  readonly published: number
  readonly delivered: number
  readonly dropped: number
  readonly subscriptions: ReadonlyArray<SubscriptionStats>
}

/** A bus (the `EventBus` service, or one made with `make`). */
export interface Bus {
  /**
   * Publishes `data` on `topic`. Waits while a `backpressure` subscription is full; fails with
   * `BackpressureError` (publishing nothing) when a `reject` subscription is full, and with
   * `ValidationError` for a bad topic or data the schema rejects.
   */
  publish<A = unknown, I = A>(
    topic: string,
    data: unknown,
    options?: PublishOptions<A, I>
  ): Effect.Effect<void, BackpressureError | ValidationError>
  /**
   * Publishes without ever waiting or refusing, from a synchronous step (telemetry from inside a
   * state update): a full subscription of any strategy — `backpressure` and `reject` included —
   * drops the event for itself only (counted); the others still get it. Returns the failure (a
   * bad topic) instead of failing.
   */
  unsafePublish(topic: string, data: unknown, options?: Omit<PublishOptions<unknown, unknown>, "schema">):
    | BackpressureError
    | ValidationError
    | undefined
  /** Subscribes until the scope closes. */
  subscribe(pattern: string, options?: SubscribeOptions): Effect.Effect<Subscription, ValidationError, Scope.Scope>
  /** The events matching `pattern`, subscribed while the stream runs. */
  stream(pattern: string, options?: SubscribeOptions): Stream.Stream<Envelope, ValidationError>
  readonly stats: Effect.Effect<BusStats>
}

/** The `EventBus` service. */
export class EventBus extends Context.Tag("effect-foundation/EventBus")<EventBus, Bus>() {}

interface Config {
  readonly name: string
  readonly source: string
  readonly capacity: number
  readonly replay: number
  readonly replayTopics: number
}

const validate = (options: Options): Either.Either<Config, ValidationError> =>
  Either.gen(function*() {
    return {
      name: yield* Validation.nonEmptyString("eventBus.name", options.name ?? "event_bus"),
      source: yield* Validation.nonEmptyString("eventBus.source", options.source ?? "effect-foundation"),
      capacity: yield* Validation.positiveInt("eventBus.capacity", options.capacity ?? 10_000),
      replay: yield* Validation.nonNegativeInt("eventBus.replay", options.replay ?? 0),
      replayTopics: yield* Validation.positiveInt("eventBus.replayTopics", options.replayTopics ?? 10_000)
    }
  })

/** One subscription's queue and counters. Mutated only inside synchronous steps. */
class Sub {
  published = 0
  delivered = 0
  dropped = 0
  readonly queue: SubscriptionQueue<Envelope>
  constructor(
    readonly pattern: string,
    readonly segments: ReadonlyArray<string>,
    readonly strategy: Strategy,
    readonly capacity: number,
    onTaken: (sub: Sub, count: number) => void
  ) {
    this.queue = new SubscriptionQueue(capacity, (count) => onTaken(this, count))
  }
  stats(): SubscriptionStats {
    return {
      pattern: this.pattern,
      strategy: this.strategy,
      capacity: this.capacity,
      published: this.published,
      delivered: this.delivered,
      dropped: this.dropped,
      // events whose publishers wait for room count as pending: they are neither in nor lost
      pending: this.queue.size + this.queue.waitingCount
    }
  }
}

/** Bounded map of recent topics to their matching subscriptions. */
const routeCacheSize = 10_000

class BusImpl implements Bus {
  private readonly trie = new TopicTrie<Sub>()
  private readonly subs = new Set<Sub>()
  private readonly routes = new Map<string, ReadonlyArray<Sub>>()
  private readonly kept = new Map<string, Array<Envelope>>()
  private seq = 0
  private published = 0
  private deliveredTotal = 0
  private droppedTotal = 0
  private readonly publishedCounter: Metric.Metric.Counter<number>
  private readonly deliveredCounter: Metric.Metric.Counter<number>
  private readonly droppedCounter: Metric.Metric.Counter<number>

  constructor(private readonly config: Config, private readonly clock: Clock.Clock) {
    const tags = { bus: config.name }
    this.publishedCounter = MetricKit.counter("foundation_event_bus_published_total", {
      description: "Events published on the bus",
      tags
    })
    this.deliveredCounter = MetricKit.counter("foundation_event_bus_delivered_total", {
      description: "Events handed to subscribers",
      tags
    })
    this.droppedCounter = MetricKit.counter("foundation_event_bus_dropped_total", {
      description: "Events dropped by full or closing subscriptions (counted per subscription)",
      tags
    })
  }

  /** The subscriptions matching a topic, or why the topic is bad. */
  private route(topic: string): ReadonlyArray<Sub> | ValidationError {
    const cached = this.routes.get(topic)
    if (cached !== undefined) return cached
    const segments = parseTopic(topic)
    if (typeof segments === "string") return new ValidationError({ field: "topic", reason: segments })
    const found: Array<Sub> = []
    this.trie.match(segments, found)
    if (this.routes.size >= routeCacheSize) this.routes.clear()
    this.routes.set(topic, found)
    return found
  }

  private envelope(topic: string, data: unknown, source: string | undefined, correlationId: string | undefined): Envelope {
    return {
      specversion: "1.0",
      id: (++this.seq).toString(36),
      type: topic,
      source: source ?? this.config.source,
      time: this.clock.unsafeCurrentTimeMillis(),
      data,
      correlationId
    }
  }

  private keep(topic: string, envelope: Envelope): void {
    const n = this.config.replay
    if (n === 0) return
    let ring = this.kept.get(topic)
    if (ring === undefined) {
      if (this.kept.size >= this.config.replayTopics) this.kept.delete(this.kept.keys().next().value!)
      ring = []
      this.kept.set(topic, ring)
    }
    ring.push(envelope)
    if (ring.length > n) ring.shift()
  }

  private drop(sub: Sub, count: number): void {
    sub.dropped += count
    this.droppedTotal += count
    MetricKit.bump(this.droppedCounter, count)
  }

  /**
   * Offers an envelope to every subscription, in one synchronous step. Returns the
   * `backpressure` subscriptions that were full (when `wait`), the rejection if a `reject`
   * subscription is full (then nothing was published), or undefined. Without `wait` nothing is
   * ever refused: a full subscription of any strategy drops the event, counted.
   */
  private deliver(
    subs: ReadonlyArray<Sub>,
    topic: string,
    data: unknown,
    source: string | undefined,
    correlationId: string | undefined,
    wait: boolean
  ): { readonly envelope: Envelope; readonly full: ReadonlyArray<Sub> } | BackpressureError | undefined {
    if (wait) {
      for (const sub of subs) {
        if (sub.strategy === "reject" && sub.queue.isFull) {
          return new BackpressureError({ resource: `subscription "${sub.pattern}"`, capacity: sub.capacity })
        }
      }
    }
    const envelope = this.envelope(topic, data, source, correlationId)
    this.published++
    MetricKit.bump(this.publishedCounter)
    this.keep(topic, envelope)
    let full: Array<Sub> | undefined
    for (const sub of subs) {
      sub.published++
      if (sub.strategy === "sliding") {
        if (sub.queue.offerSliding(envelope)) this.drop(sub, 1) // the oldest went
      } else if (!sub.queue.offer(envelope)) {
        if (wait && sub.strategy === "backpressure") (full ??= []).push(sub)
        else this.drop(sub, 1)
      }
    }
    return full === undefined ? undefined : { envelope, full }
  }

  /**
   * Waits until the event is in every full `backpressure` subscription, queued behind the
   * publishers already waiting. If the publisher is interrupted, the subscriptions it had not got
   * into yet count the event as dropped — decided in the same step that accepts events.
   */
  private waitForRoom(envelope: Envelope, full: ReadonlyArray<Sub>): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      let remaining = full.length
      const nodes = full.map((sub) => {
        const node: Waiting<Envelope> = {
          item: envelope,
          accepted: () => {
            if (--remaining === 0) resume(Effect.void)
          },
          prev: undefined,
          next: undefined,
          list: undefined
        }
        sub.queue.wait(node)
        return [sub, node] as const
      })
      return Effect.sync(() => {
        for (const [sub, node] of nodes) if (sub.queue.cancel(node)) this.drop(sub, 1)
      })
    })
  }

  publish<A = unknown, I = A>(
    topic: string,
    data: unknown,
    options?: PublishOptions<A, I>
  ): Effect.Effect<void, BackpressureError | ValidationError> {
    const schema = options?.schema
    if (schema !== undefined) {
      return Effect.flatMap(
        Validation.decode(schema, "data")(data),
        (decoded) =>
          this.publish(topic, decoded, {
            ...(options?.source === undefined ? {} : { source: options.source }),
            ...(options?.correlationId === undefined ? {} : { correlationId: options.correlationId })
          })
      )
    }
    return Effect.withFiberRuntime((fiber) => {
      const subs = this.route(topic)
      if (subs instanceof ValidationError) return Effect.fail(subs)
      const correlationId = options?.correlationId ??
        Option.getOrUndefined(fiber.getFiberRef(ErrorContext.currentContext))?.correlationId
      const outcome = this.deliver(subs, topic, data, options?.source, correlationId, true)
      if (outcome === undefined) return Effect.void
      if (outcome instanceof BackpressureError) return Effect.fail(outcome)
      return this.waitForRoom(outcome.envelope, outcome.full)
    })
  }

  unsafePublish(
    topic: string,
    data: unknown,
    options?: Omit<PublishOptions<unknown, unknown>, "schema">
  ): BackpressureError | ValidationError | undefined {
    const subs = this.route(topic)
    if (subs instanceof ValidationError) return subs
    const outcome = this.deliver(subs, topic, data, options?.source, options?.correlationId, false)
    return outcome instanceof BackpressureError ? outcome : undefined
  }

  subscribe(pattern: string, options: SubscribeOptions = {}): Effect.Effect<Subscription, ValidationError, Scope.Scope> {
    return Effect.acquireRelease(
      Effect.flatMap(this.open(pattern, options), (sub) => Effect.map(Effect.sync(() => this.attach(sub, options)), () => sub)),
      (sub) => this.close(sub)
    ).pipe(Effect.map((sub) => this.handle(sub)))
  }

  stream(pattern: string, options?: SubscribeOptions): Stream.Stream<Envelope, ValidationError> {
    return Stream.unwrapScoped(Effect.map(this.subscribe(pattern, options), (subscription) => subscription.stream))
  }

  /** Validates and makes the queue (not yet routed to). */
  private open(pattern: string, options: SubscribeOptions): Effect.Effect<Sub, ValidationError> {
    return Effect.gen(this, function*() {
      const segments = parsePattern(pattern)
      if (typeof segments === "string") return yield* new ValidationError({ field: "pattern", reason: segments })
      const strategy = yield* Validation.oneOf("subscribe.strategy", options.strategy ?? "backpressure", strategies)
      const capacity = yield* Validation.positiveInt("subscribe.capacity", options.capacity ?? this.config.capacity)
      return new Sub(pattern, segments, strategy, capacity, (sub, count) => this.delivered(sub, count))
    })
  }

  /** Routes to the subscription (and replays), in one step: no event can slip between. */
  private attach(sub: Sub, options: SubscribeOptions): void {
    if (options.replay === true && this.config.replay > 0) {
      const earlier: Array<Envelope> = []
      for (const [topic, ring] of this.kept) {
        if (matches(sub.segments, topic.split("."))) earlier.push(...ring)
      }
      earlier.sort((a, b) => parseInt(a.id, 36) - parseInt(b.id, 36))
      for (const envelope of earlier.slice(-sub.capacity)) {
        sub.published++
        sub.queue.offer(envelope)
      }
    }
    this.trie.add(sub.segments, sub)
    this.subs.add(sub)
    this.routes.clear()
  }

  private close(sub: Sub): Effect.Effect<void> {
    return Effect.sync(() => {
      if (sub.queue.isClosed) return
      this.trie.remove(sub.segments, sub)
      this.subs.delete(sub)
      this.routes.clear()
      const lost = sub.queue.close()
      if (lost > 0) this.drop(sub, lost) // never lost silently: counted as dropped
    })
  }

  private delivered(sub: Sub, count: number): void {
    sub.delivered += count
    this.deliveredTotal += count
    MetricKit.bump(this.deliveredCounter, count)
  }

  private handle(sub: Sub): Subscription {
    const queue = sub.queue
    /** The next events (one, or all waiting), waiting for one; undefined once the queue is closed. */
    const next = (all: boolean): Effect.Effect<ReadonlyArray<Envelope> | undefined> =>
      Effect.suspend(() => {
        if (queue.size > 0) return Effect.succeed(queue.takeNow(all ? Number.POSITIVE_INFINITY : 1))
        if (queue.isClosed) return Effect.succeed(undefined)
        return Effect.async<ReadonlyArray<Envelope> | undefined>((resume) => {
          const taker = queue.awaitItems(all, (items) => resume(Effect.succeed(items)))
          if (taker !== undefined) return Effect.sync(() => queue.cancelTaker(taker))
        })
      })
    // Reading a subscription whose bus has closed interrupts the reader: there will be nothing more.
    const orInterrupt = <A>(items: A | undefined): Effect.Effect<A> => items === undefined ? Effect.interrupt : Effect.succeed(items)
    return {
      pattern: sub.pattern,
      take: Effect.flatMap(next(false), (items) => orInterrupt(items?.[0])),
      takeAll: Effect.flatMap(next(true), orInterrupt),
      poll: Effect.sync(() => {
        const items = queue.takeNow(1)
        return items.length === 0 ? Option.none() : Option.some(items[0]!)
      }),
      stream: Stream.repeatEffectChunkOption(
        Effect.flatMap(next(true), (items): Effect.Effect<Chunk.Chunk<Envelope>, Option.Option<never>> =>
          items === undefined ? Effect.fail(Option.none()) : Effect.succeed(Chunk.unsafeFromArray(items as Array<Envelope>)))
      ),
      stats: Effect.sync(() => sub.stats())
    }
  }

  /** Closes every subscription (the bus is going away). */
  get closeAll(): Effect.Effect<void> {
    return Effect.suspend(() => Effect.forEach([...this.subs], (sub) => this.close(sub), { discard: true }))
  }

  get stats(): Effect.Effect<BusStats> {
    return Effect.sync(() => ({
      published: this.published,
      delivered: this.deliveredTotal,
      dropped: this.droppedTotal,
      subscriptions: [...this.subs].map((sub) => sub.stats())
    }))
  }
}

/**
 * Makes a bus. When the scope closes, every subscription still open is closed (its stream ends,
 * its pending events are counted as dropped).
 */
export const make = (options: Options = {}): Effect.Effect<Bus, ValidationError, Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* validate(options)
    const bus = new BusImpl(config, yield* Effect.clock)
    yield* Effect.addFinalizer(() => bus.closeAll)
    return bus
  })

/** A layer of the `EventBus` service. */
export const layer = (options: Options = {}): Layer.Layer<EventBus, ValidationError> =>
  Layer.scoped(EventBus, make(options))

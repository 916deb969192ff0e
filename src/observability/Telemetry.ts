/**
 * Telemetry: named events with measurements and metadata, published on the event bus and
 * folded into metrics; scoped subscriptions as streams; spans that emit start/stop/exception
 * events around an effect (and an Effect span).
 *
 * Names are dotted strings or segment arrays (`foundation.circuit_breaker.state_change` or
 * `["foundation", "circuit_breaker", "state_change"]`); the name is the bus topic, so patterns
 * (`foundation.circuit_breaker.*`, `foundation.**`) select events.
 *
 * Guarantees:
 * - Emitting never fails, never waits and never runs a handler in the emitter: it publishes
 *   without waiting (a full subscription drops, counted by the bus), so telemetry cannot slow or
 *   break the code it observes. `unsafeEmit` does the same from inside a synchronous step.
 * - Handlers (`attach`) run in their own fiber; a failing handler is logged with its full cause
 *   and goes on with the next event.
 * - Failures reported by `span` carry the full `Cause`, stack traces included (the original kept
 *   only a message).
 * - Each event name counts in `foundation_events_total{event}`; a `duration` measurement (ms)
 *   also goes to the histogram `foundation_event_duration_ms{event}`. Names are code-defined; to
 *   keep metric cardinality bounded, names beyond the first 1,000 count under `event="other"`.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type * as MetricKeyType from "effect/MetricKeyType"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as ErrorContext from "../errors/ErrorContext.js"
import type { ValidationError } from "../errors/FoundationError.js"
import * as EventBus from "./EventBus.js"
import * as MetricKit from "./MetricKit.js"
import * as Prometheus from "./Prometheus.js"

/** An event name: dotted, or as segments. */
export type Name = string | ReadonlyArray<string>

/** A telemetry event as subscribers see it. */
export interface TelemetryEvent {
  readonly name: string
  readonly measurements: Readonly<Record<string, number>>
  readonly metadata: Readonly<Record<string, unknown>>
  /** Epoch milliseconds, from the bus's Clock. */
  readonly time: number
  /** The correlation id of the operation that emitted it (see `ErrorContext`), if any. */
  readonly correlationId: string | undefined
}

/** Options of a subscription to telemetry. */
export interface SubscribeOptions {
  /** Queue capacity [10,000]; when full, new events are dropped and counted. */
  readonly capacity?: number
}

/** The telemetry service. */
export interface Service {
  /** Emits an event (never fails, never waits), with the current `ErrorContext` correlation id. */
  emit(
    name: Name,
    measurements?: Readonly<Record<string, number>>,
    metadata?: Readonly<Record<string, unknown>>
  ): Effect.Effect<void>
  /** Emits from inside a synchronous step (with the correlation id, when the caller has one). */
  unsafeEmit(
    name: Name,
    measurements?: Readonly<Record<string, number>>,
    metadata?: Readonly<Record<string, unknown>>,
    correlationId?: string
  ): void
  /** The events matching `pattern`, from the moment the stream runs. */
  subscribe(pattern: string, options?: SubscribeOptions): Stream.Stream<TelemetryEvent, ValidationError>
  /**
   * Runs `handler` on each event matching `pattern`, in a fiber of the current scope. A failing
   * handler is logged (with its cause) and does not stop the next events.
   */
  attach<X, E, R>(
    pattern: string,
    handler: (event: TelemetryEvent) => Effect.Effect<X, E, R>,
    options?: SubscribeOptions
  ): Effect.Effect<void, ValidationError, Scope.Scope | R>
  /**
   * Runs `self` inside a span: emits `<name>.start` (system_time), then `<name>.stop` (duration
   * ms) or `<name>.exception` (duration ms; metadata `kind`: failure | defect | interrupt,
   * `error`, and the full `cause`), and wraps it in an Effect span named `name`.
   */
  span<A, E, R>(name: Name, self: Effect.Effect<A, E, R>, metadata?: Readonly<Record<string, unknown>>): Effect.Effect<A, E, R>
  /** Prometheus text of every metric. */
  readonly prometheus: Effect.Effect<string>
  /** Emissions dropped because the name was not a valid topic. */
  readonly invalidNames: Effect.Effect<number>
}

/** The `Telemetry` service. */
export class Telemetry extends Context.Tag("effect-foundation/Telemetry")<Telemetry, Service>() {}

const empty: Readonly<Record<string, never>> = {}

const nameOf = (name: Name): string => typeof name === "string" ? name : name.join(".")

const maxNames = 1000

const durationBoundaries = MetricBoundaries.exponential({ start: 0.5, factor: 2, count: 20 })

/** The metrics of one event name, made on its first emission. */
class NameMetrics {
  readonly count: Metric.Metric.Counter<number>
  private histogram: Metric.Metric<MetricKeyType.MetricKeyType.Histogram, number, unknown> | undefined
  constructor(private readonly event: string) {
    this.count = MetricKit.counter("foundation_events_total", {
      description: "Telemetry events emitted, by event name",
      tags: { event }
    })
  }
  duration(millis: number): void {
    MetricKit.observe(
      this.histogram ??= MetricKit.histogram("foundation_event_duration_ms", durationBoundaries, {
        description: "The duration measurement of telemetry events, in milliseconds",
        tags: { event: this.event }
      }),
      millis
    )
  }
}

class TelemetryImpl implements Service {
  private readonly metrics = new Map<string, NameMetrics>()
  private other: NameMetrics | undefined = undefined
  private invalid = 0

  constructor(private readonly bus: EventBus.Bus) {}

  private metricsOf(name: string): NameMetrics {
    const known = this.metrics.get(name)
    if (known !== undefined) return known
    if (this.metrics.size >= maxNames) return this.other ??= new NameMetrics("other")
    const made = new NameMetrics(name)
    this.metrics.set(name, made)
    return made
  }

  unsafeEmit(
    name: Name,
    measurements: Readonly<Record<string, number>> = empty,
    metadata: Readonly<Record<string, unknown>> = empty,
    correlationId?: string
  ): void {
    const topic = nameOf(name)
    const failure = this.bus.unsafePublish(
      topic,
      { measurements, metadata },
      correlationId === undefined ? undefined : { correlationId }
    )
    if (failure !== undefined && failure._tag === "ValidationError") {
      this.invalid++
      return
    }
    const m = this.metricsOf(topic)
    MetricKit.bump(m.count)
    const duration = measurements["duration"]
    if (duration !== undefined && Number.isFinite(duration)) m.duration(duration) // a NaN would poison the sum
  }

  emit(
    name: Name,
    measurements?: Readonly<Record<string, number>>,
    metadata?: Readonly<Record<string, unknown>>
  ): Effect.Effect<void> {
    return Effect.withFiberRuntime((fiber) => {
      const context = fiber.getFiberRef(ErrorContext.currentContext)
      this.unsafeEmit(name, measurements, metadata, context._tag === "Some" ? context.value.correlationId : undefined)
      return Effect.void
    })
  }

  subscribe(pattern: string, options: SubscribeOptions = {}): Stream.Stream<TelemetryEvent, ValidationError> {
    return Stream.map(
      this.bus.stream(pattern, { strategy: "backpressure", ...(options.capacity === undefined ? {} : { capacity: options.capacity }) }),
      toEvent
    )
  }

  attach<X, E, R>(
    pattern: string,
    handler: (event: TelemetryEvent) => Effect.Effect<X, E, R>,
    options: SubscribeOptions = {}
  ): Effect.Effect<void, ValidationError, Scope.Scope | R> {
    return Effect.gen(this, function*() {
      const subscription = yield* this.bus.subscribe(pattern, {
        strategy: "backpressure",
        ...(options.capacity === undefined ? {} : { capacity: options.capacity })
      })
      const run = (event: TelemetryEvent) =>
        Effect.catchAllCause(
          handler(event),
          (cause) =>
            Cause.isInterruptedOnly(cause)
              ? Effect.failCause(cause)
              : Effect.logWarning(`telemetry handler for "${pattern}" failed on "${event.name}"`, cause)
        )
      yield* Effect.forkScoped(
        Effect.interruptible(Stream.runForEach(Stream.map(subscription.stream, toEvent), run))
      )
    })
  }

  span<A, E, R>(
    name: Name,
    self: Effect.Effect<A, E, R>,
    metadata: Readonly<Record<string, unknown>> = empty
  ): Effect.Effect<A, E, R> {
    const base = nameOf(name)
    return Effect.clockWith((clock) =>
      Effect.suspend(() => {
        const start = clock.unsafeCurrentTimeMillis()
        this.unsafeEmit(`${base}.start`, { system_time: start }, metadata)
        return self.pipe(
          Effect.withSpan(base, { attributes: metadata }),
          Effect.onExit((exit) =>
            Effect.sync(() => {
              const duration = clock.unsafeCurrentTimeMillis() - start
              if (Exit.isSuccess(exit)) {
                this.unsafeEmit(`${base}.stop`, { duration }, { ...metadata, status: "ok" })
                return
              }
              const cause = exit.cause
              const kind = Cause.isInterruptedOnly(cause) ? "interrupt" : Cause.isDie(cause) ? "defect" : "failure"
              this.unsafeEmit(`${base}.exception`, { duration }, {
                ...metadata,
                status: "error",
                kind,
                error: kind === "interrupt" ? undefined : Cause.squash(cause),
                cause
              })
            })
          )
        )
      })
    )
  }

  get prometheus(): Effect.Effect<string> {
    return Prometheus.text
  }

  get invalidNames(): Effect.Effect<number> {
    return Effect.sync(() => this.invalid)
  }
}

const toEvent = (envelope: EventBus.Envelope): TelemetryEvent => {
  const data = envelope.data as { readonly measurements?: Record<string, number>; readonly metadata?: Record<string, unknown> }
  return {
    name: envelope.type,
    measurements: data?.measurements ?? empty,
    metadata: data?.metadata ?? empty,
    time: envelope.time,
    correlationId: envelope.correlationId
  }
}

/** Makes the service over a bus. */
export const make = (bus: EventBus.Bus): Service => new TelemetryImpl(bus)

/** Telemetry over the `EventBus` service in the context. */
export const layer: Layer.Layer<Telemetry, never, EventBus.EventBus> = Layer.effect(
  Telemetry,
  Effect.map(EventBus.EventBus, make)
)

/** Telemetry with its own bus (both services provided). */
export const layerWithBus = (
  options: EventBus.Options = {}
): Layer.Layer<Telemetry | EventBus.EventBus, ValidationError> => Layer.provideMerge(layer, EventBus.layer(options))

/** Emits through the `Telemetry` service when there is one in the context; does nothing otherwise. */
export const emit = (
  name: Name,
  measurements?: Readonly<Record<string, number>>,
  metadata?: Readonly<Record<string, unknown>>
): Effect.Effect<void> =>
  Effect.flatMap(Effect.serviceOption(Telemetry), (telemetry) =>
    telemetry._tag === "Some" ? telemetry.value.emit(name, measurements, metadata) : Effect.void)

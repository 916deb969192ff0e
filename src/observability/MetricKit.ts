/**
 * Metrics with their tags fixed when they are made, for hot paths. `Metric.tagged` resolves the
 * metric's hook again on every update (it merges the tags into a new array, which misses the hook
 * cache, then looks the key up in the registry): about 1 µs per update. A metric made here from a
 * tagged `MetricKey` caches its hook, so an update costs a few nanoseconds.
 *
 * `bump`/`set`/`observe` update a metric synchronously, for use inside a synchronous step of a
 * service (they ignore the fiber's `Metric.withLabels`-style extra tags: the tags are the ones
 * given here). Elsewhere use the normal `Metric` API on the same objects.
 */
import * as Metric from "effect/Metric"
import type * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as MetricLabel from "effect/MetricLabel"
import type * as MetricState from "effect/MetricState"

/** Tags as a plain record. */
export type Tags = Readonly<Record<string, string>>

const labels = (tags: Tags | undefined): ReadonlyArray<MetricLabel.MetricLabel> =>
  tags === undefined ? [] : Object.entries(tags).map(([k, v]) => MetricLabel.make(k, v))

/** An incremental counter with fixed tags. */
export const counter = (
  name: string,
  options: { readonly description?: string; readonly tags?: Tags } = {}
): Metric.Metric.Counter<number> =>
  Metric.fromMetricKey(
    MetricKey.taggedWithLabels(
      MetricKey.counter(name, { description: options.description, incremental: true }),
      labels(options.tags)
    )
  )

/**
 * Counters of one name whose tags vary (by outcome, state...): `family(tags)` returns the counter
 * for those tags, made once and then reused, so a hot path never rebuilds a metric key.
 */
export const counterFamily = (
  name: string,
  options: { readonly description?: string } = {}
): (tags: Tags) => Metric.Metric.Counter<number> => {
  const made = new Map<string, Metric.Metric.Counter<number>>()
  return (tags) => {
    const key = Object.entries(tags).map(([k, v]) => `${k}\u0000${v}`).join("\u0001")
    let c = made.get(key)
    if (c === undefined) {
      c = counter(name, { ...options, tags })
      made.set(key, c)
    }
    return c
  }
}

/** A gauge with fixed tags. */
export const gauge = (
  name: string,
  options: { readonly description?: string; readonly tags?: Tags } = {}
): Metric.Metric.Gauge<number> =>
  Metric.fromMetricKey(
    MetricKey.taggedWithLabels(MetricKey.gauge(name, { description: options.description }), labels(options.tags))
  )

/** A histogram with fixed tags. */
export const histogram = (
  name: string,
  boundaries: MetricBoundaries.MetricBoundaries,
  options: { readonly description?: string; readonly tags?: Tags } = {}
): Metric.Metric<MetricKeyType.MetricKeyType.Histogram, number, MetricState.MetricState.Histogram> =>
  Metric.fromMetricKey(
    MetricKey.taggedWithLabels(MetricKey.histogram(name, boundaries, options.description), labels(options.tags))
  )

const noTags: ReadonlyArray<MetricLabel.MetricLabel> = []

/** Adds to a counter, synchronously. */
export const bump = (metric: Metric.Metric.Counter<number>, by = 1): void => metric.unsafeUpdate(by, noTags)

/** Sets a gauge, synchronously. */
export const set = (metric: Metric.Metric.Gauge<number>, value: number): void => metric.unsafeUpdate(value, noTags)

/** Records a value in a histogram, synchronously. */
export const observe = (metric: Metric.Metric<MetricKeyType.MetricKeyType.Histogram, number, unknown>, value: number): void =>
  metric.unsafeUpdate(value, noTags)


/**
 * Prometheus text exposition (format 0.0.4) of every Effect metric: counters, gauges,
 * histograms (cumulative `_bucket{le=...}`, `_sum`, `_count`), summaries (quantiles, `_sum`,
 * `_count`) and frequencies (a counter per value), grouped by metric name with `# HELP` and
 * `# TYPE` lines; label values escaped, names sanitised. And an optional HTTP endpoint serving it.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type * as MetricKey from "effect/MetricKey"
import type * as MetricPair from "effect/MetricPair"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"
import { createServer } from "node:http"
import type { ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"

/** The content type of the exposition. */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

const sanitiseName = (name: string): string => {
  const cleaned = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return /^[a-zA-Z_:]/.test(cleaned) ? cleaned : `_${cleaned}`
}

const sanitiseLabel = (name: string): string => {
  const cleaned = name.replace(/[^a-zA-Z0-9_]/g, "_")
  return /^[a-zA-Z_]/.test(cleaned) ? cleaned : `_${cleaned}`
}

const escapeValue = (value: string): string => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, "\\\"")

const escapeHelp = (help: string): string => help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

const number = (n: number): string =>
  Number.isNaN(n) ? "NaN" : n === Number.POSITIVE_INFINITY ? "+Inf" : n === Number.NEGATIVE_INFINITY ? "-Inf" : `${n}`

const labels = (tags: ReadonlyArray<{ readonly key: string; readonly value: string }>, extra?: readonly [string, string]) => {
  const all = extra === undefined ? tags : [...tags, { key: extra[0], value: extra[1] }]
  if (all.length === 0) return ""
  return `{${all.map((t) => `${sanitiseLabel(t.key)}="${escapeValue(t.value)}"`).join(",")}}`
}

type Kind = "counter" | "gauge" | "histogram" | "summary"

interface Family {
  readonly name: string
  readonly kind: Kind
  help: string | undefined
  readonly lines: Array<string>
}

/** Renders metric pairs (from `Metric.snapshot`) as Prometheus text. */
export const render = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, Family>()
  const family = (name: string, kind: Kind, key: MetricKey.MetricKey.Untyped): Family => {
    const id = `${name}\u0000${kind}`
    let f = families.get(id)
    if (f === undefined) {
      f = { name, kind, help: undefined, lines: [] }
      families.set(id, f)
    }
    if (f.help === undefined) f.help = Option.getOrUndefined(key.description)
    return f
  }
  for (const pair of pairs) {
    const key = pair.metricKey
    const state = pair.metricState
    const name = sanitiseName(key.name)
    const tags = key.tags
    if (MetricState.isCounterState(state)) {
      family(name, "counter", key).lines.push(`${name}${labels(tags)} ${number(Number(state.count))}`)
    } else if (MetricState.isGaugeState(state)) {
      family(name, "gauge", key).lines.push(`${name}${labels(tags)} ${number(Number(state.value))}`)
    } else if (MetricState.isHistogramState(state)) {
      const f = family(name, "histogram", key)
      let infinite = false
      for (const [boundary, count] of state.buckets) {
        if (boundary === Number.POSITIVE_INFINITY) infinite = true
        f.lines.push(`${name}_bucket${labels(tags, ["le", number(boundary)])} ${count}`)
      }
      if (!infinite) f.lines.push(`${name}_bucket${labels(tags, ["le", "+Inf"])} ${state.count}`)
      f.lines.push(`${name}_sum${labels(tags)} ${number(state.sum)}`)
      f.lines.push(`${name}_count${labels(tags)} ${state.count}`)
    } else if (MetricState.isSummaryState(state)) {
      const f = family(name, "summary", key)
      for (const [quantile, value] of state.quantiles) {
        f.lines.push(
          `${name}${labels(tags, ["quantile", number(quantile)])} ${number(Option.getOrElse(value, () => Number.NaN))}`
        )
      }
      f.lines.push(`${name}_sum${labels(tags)} ${number(state.sum)}`)
      f.lines.push(`${name}_count${labels(tags)} ${state.count}`)
    } else if (MetricState.isFrequencyState(state)) {
      const f = family(name, "counter", key)
      for (const [value, count] of state.occurrences) {
        f.lines.push(`${name}${labels(tags, ["value", value])} ${count}`)
      }
    }
  }
  const out: Array<string> = []
  for (const f of families.values()) {
    if (f.help !== undefined) out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`)
    out.push(`# TYPE ${f.name} ${f.kind}`)
    out.push(...f.lines)
  }
  return out.length === 0 ? "" : `${out.join("\n")}\n`
}

/** The exposition of every metric now. */
export const text: Effect.Effect<string> = Effect.map(Metric.snapshot, render)

/** Options of the HTTP endpoint. */
export interface ServerOptions {
  /** [9568, as the original's documentation] */
  readonly port?: number
  /** ["127.0.0.1"] */
  readonly host?: string
  /** ["/metrics"] */
  readonly path?: string
}

const validateServer = (options: ServerOptions) =>
  Either.gen(function*() {
    const port = yield* Validation.int("prometheus.port", options.port ?? 9568, { min: 0, max: 65535 })
    const host = yield* Validation.nonEmptyString("prometheus.host", options.host ?? "127.0.0.1")
    const path = yield* Validation.nonEmptyString("prometheus.path", options.path ?? "/metrics")
    if (!path.startsWith("/")) return yield* Validation.invalid("prometheus.path", `must start with "/", got "${path}"`)
    return { port, host, path: path as `/${string}` }
  })

/**
 * A layer serving the exposition over HTTP (GET `path`) for as long as it lives. It also
 * provides the `HttpServer` (so `HttpServer.addressWith` tells the port when 0 was asked for).
 */
export const layerServer = (
  options: ServerOptions = {}
): Layer.Layer<HttpServer.HttpServer, ValidationError | HttpServerError.ServeError> =>
  Layer.unwrapEffect(Effect.map(validateServer(options), ({ host, path, port }) =>
    HttpRouter.empty.pipe(
      HttpRouter.get(path, Effect.map(text, (body) => HttpServerResponse.text(body, { contentType }))),
      HttpServer.serve(),
      Layer.provideMerge(NodeHttpServer.layer(() => createServer(), { port, host }))
    )))

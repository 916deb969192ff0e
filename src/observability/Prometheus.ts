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

/** Label names the exposition itself uses on some series. */
const reserved = new Set(["le", "quantile", "value"])

/**
 * The label set: tag names sanitised, a tag that would clash with a reserved label (`le`,
 * `quantile`, `value`) renamed `tag_<name>`, and duplicates after sanitising made unique.
 */
const labels = (tags: ReadonlyArray<{ readonly key: string; readonly value: string }>, extra?: readonly [string, string]) => {
  if (tags.length === 0 && extra === undefined) return ""
  const used = new Set<string>()
  const parts: Array<string> = []
  const add = (name: string, value: string) => {
    let unique = name
    for (let i = 2; used.has(unique); i++) unique = `${name}_${i}`
    used.add(unique)
    parts.push(`${unique}="${escapeValue(value)}"`)
  }
  if (extra !== undefined) used.add(extra[0])
  for (const t of tags) {
    const name = sanitiseLabel(t.key)
    add(reserved.has(name) ? `tag_${name}` : name, t.value)
  }
  if (extra !== undefined) parts.push(`${extra[0]}="${escapeValue(extra[1])}"`)
  return `{${parts.join(",")}}`
}

type Kind = "counter" | "gauge" | "histogram" | "summary"

interface Family {
  readonly name: string
  readonly kind: Kind
  help: string | undefined
  readonly lines: Array<string>
}

/**
 * Renders metric pairs (from `Metric.snapshot`) as Prometheus text: one family (one `# TYPE`)
 * per name. A metric whose name is taken by a family of another kind is exposed under
 * `<name>_<kind>`, so that the scrape stays valid.
 */
export const render = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, Family>()
  const family = (base: string, kind: Kind, key: MetricKey.MetricKey.Untyped): Family => {
    let name = base
    let f = families.get(name)
    if (f !== undefined && f.kind !== kind) {
      name = `${base}_${kind}`
      f = families.get(name)
    }
    if (f === undefined) {
      f = { name, kind, help: undefined, lines: [] }
      families.set(name, f)
    }
    if (f.help === undefined) f.help = Option.getOrUndefined(key.description)
    return f
  }
  for (const pair of pairs) {
    const key = pair.metricKey
    const state = pair.metricState
    const base = sanitiseName(key.name)
    const tags = key.tags
    if (MetricState.isCounterState(state)) {
      const f = family(base, "counter", key)
      f.lines.push(`${f.name}${labels(tags)} ${number(Number(state.count))}`)
    } else if (MetricState.isGaugeState(state)) {
      const f = family(base, "gauge", key)
      f.lines.push(`${f.name}${labels(tags)} ${number(Number(state.value))}`)
    } else if (MetricState.isHistogramState(state)) {
      const f = family(base, "histogram", key)
      const name = f.name
      let infinite = false
      for (const [boundary, count] of state.buckets) {
        if (boundary === Number.POSITIVE_INFINITY) infinite = true
        f.lines.push(`${name}_bucket${labels(tags, ["le", number(boundary)])} ${count}`)
      }
      if (!infinite) f.lines.push(`${name}_bucket${labels(tags, ["le", "+Inf"])} ${state.count}`)
      f.lines.push(`${name}_sum${labels(tags)} ${number(state.sum)}`)
      f.lines.push(`${name}_count${labels(tags)} ${state.count}`)
    } else if (MetricState.isSummaryState(state)) {
      const f = family(base, "summary", key)
      const name = f.name
      for (const [quantile, value] of state.quantiles) {
        f.lines.push(
          `${name}${labels(tags, ["quantile", number(quantile)])} ${number(Option.getOrElse(value, () => Number.NaN))}`
        )
      }
      f.lines.push(`${name}_sum${labels(tags)} ${number(state.sum)}`)
      f.lines.push(`${name}_count${labels(tags)} ${state.count}`)
    } else if (MetricState.isFrequencyState(state)) {
      const f = family(base, "counter", key)
      for (const [value, count] of state.occurrences) {
        f.lines.push(`${f.name}${labels(tags, ["value", value])} ${count}`)
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

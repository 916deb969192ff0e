/**
 * Study reports: a JSON-safe report of a study (its settings, counts, best trial, convergence
 * and every trial) and a self-contained HTML page rendering it.
 *
 * Guarantees:
 * - Pure: no I/O, no clock, no randomness. The same study and trials give the same report,
 *   byte for byte.
 * - `json` returns plain data that survives `JSON.parse(JSON.stringify(report))` unchanged:
 *   missing values are `null`, non-finite numbers are `null`, settings that are not JSON
 *   (functions, cycles) are described as text.
 * - `html` is one page with no external reference: inline CSS, inline SVG, no script. Every
 *   piece of text taken from the study (names, parameter values, errors, settings) is escaped,
 *   so a parameter value such as `<script>` shows as text.
 * - The convergence plot draws each complete trial as a circle at (number, value), a pruned
 *   trial with a value as a diamond, a failed trial (or a pruned one without a value) as a
 *   cross in a strip under the values, and the best value so far as a step line. It copes with
 *   no values at all, with all-equal values, and with a log scale (`"auto"`: chosen when every
 *   value is positive and they span two decades or more; impossible with values ≤ 0, which
 *   falls back to linear).
 */
import * as Space from "./Space.js"
import { bestOf, convergence, type Direction, type TrialRecord, type TrialState } from "./Trial.js"

// ---------------------------------------------------------------------------------------------
// The JSON report
// ---------------------------------------------------------------------------------------------

/** A JSON value. */
export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

/** What the report needs to know about a study (a `Study.Study` is one). */
export interface StudyMeta {
  readonly name: string
  readonly direction: Direction
  readonly seed: number
  readonly sampler: { readonly name: string; readonly settings: Readonly<Record<string, unknown>> }
  readonly pruner: { readonly name: string; readonly settings: Readonly<Record<string, unknown>> }
  readonly space: Space.Space
  /** A sentence about the problem, shown under the title. */
  readonly description?: string
}

/** One parameter of the space, described. */
export interface ParamReport {
  readonly type: "float" | "int" | "categorical"
  /** `Space.describe`: `float[0.0001, 0.1] log`, `int[1, 4]`, `{16, 32}`. */
  readonly domain: string
  readonly low?: number
  readonly high?: number
  readonly log?: boolean
  readonly step?: number | null
  readonly choices?: ReadonlyArray<Space.Choice>
}

/** One trial, JSON-safe. */
export interface TrialReport {
  readonly number: number
  readonly state: TrialState
  readonly value: number | null
  readonly params: Space.AnyParams
  readonly intermediate: ReadonlyArray<{ readonly step: number; readonly value: number | null }>
  readonly error: string | null
  readonly attempts: number
  readonly startedAt: number
  readonly endedAt: number | null
  /** endedAt − startedAt, in milliseconds (null while running). */
  readonly durationMillis: number | null
}

/** The best complete trial. */
export interface BestReport {
  readonly number: number
  readonly value: number
  readonly params: Space.AnyParams
}

/** A study report. */
export interface Report {
  readonly study: {
    readonly name: string
    readonly description: string | null
    readonly direction: Direction
    readonly seed: number
    readonly sampler: { readonly name: string; readonly settings: Json }
    readonly pruner: { readonly name: string; readonly settings: Json }
    readonly space: Readonly<Record<string, ParamReport>>
  }
  readonly summary: {
    readonly trials: number
    readonly states: Readonly<Record<TrialState, number>>
    readonly best: BestReport | null
  }
  /** The best value so far after each trial, aligned with `trials` (null before the first complete one). */
  readonly convergence: ReadonlyArray<number | null>
  /** Every trial, in number order. */
  readonly trials: ReadonlyArray<TrialReport>
}

const finiteOrNull = (v: number | undefined): number | null => v !== undefined && Number.isFinite(v) ? v : null

/** A JSON-safe copy of any value: functions and symbols become text, non-finite numbers null, cycles "[cycle]". */
export const toJson = (value: unknown, seen: ReadonlySet<object> = new Set()): Json => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value
    case "number":
      return Number.isFinite(value) ? value : null
    case "bigint":
      return value.toString()
    case "function":
      return "[function]"
    case "symbol":
      return value.toString()
    case "undefined":
      return null
    case "object": {
      if (value === null) return null
      if (seen.has(value)) return "[cycle]"
      const inner = new Set(seen).add(value)
      if (Array.isArray(value)) return value.map((v) => toJson(v, inner))
      const out: Record<string, Json> = {}
      for (const [k, v] of Object.entries(value)) {
        if (v !== undefined && typeof v !== "function") out[k] = toJson(v, inner)
      }
      return out
    }
  }
}

const describeParam = (param: Space.Param): ParamReport => {
  const domain = Space.describe(param)
  switch (param._tag) {
    case "Categorical":
      return { type: "categorical", domain, choices: [...param.choices] }
    case "Float":
      return { type: "float", domain, low: param.low, high: param.high, log: param.log, step: param.step ?? null }
    case "Int":
      return { type: "int", domain, low: param.low, high: param.high, log: param.log, step: param.step }
  }
}

/** The best value so far after each trial (in the order given), null before the first complete trial. */
export const bestSoFar = (direction: Direction, trials: ReadonlyArray<TrialRecord>): ReadonlyArray<number | null> =>
  convergence(direction, trials).map((v) => v ?? null)

/** The parameters in the space's declaration order (samplers may build them in another order), extras last. */
const ordered = (space: Space.Space, params: Space.AnyParams): Space.AnyParams => {
  const out: Record<string, Space.Choice> = {}
  for (const k of Object.keys(space)) if (k in params) out[k] = params[k]!
  for (const [k, v] of Object.entries(params)) if (!(k in out)) out[k] = v
  return out
}

const trialReport = (space: Space.Space, t: TrialRecord): TrialReport => ({
  number: t.number,
  state: t.state,
  value: finiteOrNull(t.value),
  params: ordered(space, t.params),
  intermediate: t.intermediate.map((p) => ({ step: p.step, value: finiteOrNull(p.value) })),
  error: t.error ?? null,
  attempts: t.attempts,
  startedAt: t.startedAt,
  endedAt: t.endedAt ?? null,
  durationMillis: t.endedAt === undefined ? null : t.endedAt - t.startedAt
})

/** The report of a study: its settings, counts, best trial, convergence and trials (sorted by number). */
export const json = (meta: StudyMeta, trials: ReadonlyArray<TrialRecord>): Report => {
  const sorted = [...trials].sort((a, b) => a.number - b.number)
  const states: Record<TrialState, number> = { running: 0, complete: 0, pruned: 0, failed: 0 }
  for (const t of sorted) states[t.state]++
  const best = bestOf(meta.direction, sorted)
  return {
    study: {
      name: meta.name,
      description: meta.description ?? null,
      direction: meta.direction,
      seed: meta.seed,
      sampler: { name: meta.sampler.name, settings: toJson(meta.sampler.settings) },
      pruner: { name: meta.pruner.name, settings: toJson(meta.pruner.settings) },
      space: Object.fromEntries(Object.entries(meta.space).map(([k, p]) => [k, describeParam(p)]))
    },
    summary: {
      trials: sorted.length,
      states,
      best: best === undefined ? null : { number: best.number, value: best.value!, params: ordered(meta.space, best.params) }
    },
    convergence: bestSoFar(meta.direction, sorted),
    trials: sorted.map((t) => trialReport(meta.space, t))
  }
}

// ---------------------------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------------------------

/** Escapes text for HTML content and attribute values. */
export const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === "\"" ? "&quot;" : "&#39;")

/** A number in a few characters: integers as they are, others to 6 significant digits, tiny or huge ones in exponent form. */
export const formatNumber = (v: number): string => {
  if (!Number.isFinite(v)) return String(v)
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v)
  const a = Math.abs(v)
  if (a !== 0 && (a < 1e-4 || a >= 1e9)) return v.toExponential(3).replace(/\.?0+e/, "e")
  return String(Number(v.toPrecision(6)))
}

const formatChoice = (v: Space.Choice): string => typeof v === "number" ? formatNumber(v) : String(v)

/** `name = value` pairs, for text output. */
export const formatParams = (params: Space.AnyParams): string =>
  Object.entries(params).map(([k, v]) => `${k} = ${formatChoice(v)}`).join(", ")

const formatDuration = (millis: number | null): string => {
  if (millis === null) return "–"
  if (millis < 1000) return `${Math.round(millis)} ms`
  if (millis < 60_000) return `${(millis / 1000).toFixed(2)} s`
  return `${Math.floor(millis / 60_000)} min ${Math.round((millis % 60_000) / 1000)} s`
}

// ---------------------------------------------------------------------------------------------
// Scales and ticks
// ---------------------------------------------------------------------------------------------

/** A linear or log scale from a data domain to a pixel range, with its ticks. */
export interface Scale {
  readonly log: boolean
  readonly domain: readonly [number, number]
  readonly ticks: ReadonlyArray<number>
  readonly apply: (v: number) => number
}

const niceStep = (rough: number): number => {
  const p = 10 ** Math.floor(Math.log10(rough))
  const f = rough / p
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p
}

/** Round ticks (1, 2, 5 × 10ᵏ apart) covering [min, max], about `count` of them; the domain widened to the outer ticks. */
export const linearTicks = (min: number, max: number, count = 5): { domain: readonly [number, number]; ticks: ReadonlyArray<number> } => {
  let lo = min
  let hi = max
  if (hi === lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1
    lo -= pad
    hi += pad
  }
  const step = niceStep((hi - lo) / Math.max(1, count))
  const first = Math.floor(lo / step)
  const last = Math.ceil(hi / step)
  const ticks: Array<number> = []
  for (let k = first; k <= last; k++) ticks.push(Number((k * step).toPrecision(12)))
  return { domain: [ticks[0]!, ticks[ticks.length - 1]!], ticks }
}

/** Ticks on a log scale: the decades covering [min, max] (min > 0), with 2 and 5 in between when they span ≤ 2 decades. */
export const logTicks = (min: number, max: number): { domain: readonly [number, number]; ticks: ReadonlyArray<number> } => {
  let lo = Math.floor(Math.log10(min))
  let hi = Math.ceil(Math.log10(max))
  if (hi === lo) hi = lo + 1
  if (hi - lo > 12) lo = hi - 12
  const ticks: Array<number> = []
  const dense = hi - lo <= 2
  for (let e = lo; e <= hi; e++) {
    const p = Number((10 ** e).toPrecision(12))
    ticks.push(p)
    if (dense && e < hi) ticks.push(Number((2 * p).toPrecision(12)), Number((5 * p).toPrecision(12)))
  }
  return { domain: [ticks[0]!, ticks[ticks.length - 1]!], ticks }
}

/** How to scale the value axis: `"auto"` picks log for positive values spanning ≥ 2 decades. */
export type LogScale = boolean | "auto"

const makeScale = (values: ReadonlyArray<number>, logScale: LogScale, range: readonly [number, number], integer = false): Scale => {
  const min = values.length === 0 ? 0 : values.reduce((a, b) => Math.min(a, b))
  const max = values.length === 0 ? 1 : values.reduce((a, b) => Math.max(a, b))
  const positive = values.length > 0 && min > 0
  const log = positive && (logScale === true || (logScale === "auto" && max / min >= 100))
  const { domain, ticks } = log ? logTicks(min, max) : linearTicks(min, max, integer ? Math.min(8, Math.max(1, max - min)) : 5)
  const [r0, r1] = range
  const [d0, d1] = log ? [Math.log10(domain[0]), Math.log10(domain[1])] : domain
  const apply = (v: number) => {
    // A log axis keeps at most 12 decades: smaller values sit on its floor.
    const x = log ? Math.max(d0, Math.log10(v)) : v
    return r0 + ((x - d0) / (d1 - d0)) * (r1 - r0)
  }
  return { log, domain, ticks: integer ? ticks.filter((t) => Number.isInteger(t)) : ticks, apply }
}

// ---------------------------------------------------------------------------------------------
// SVG
// ---------------------------------------------------------------------------------------------

const px = (v: number): string => String(Math.round(v * 10) / 10)

const width = 760
const height = 360
const margin = { left: 72, right: 20, top: 16, bottom: 48 }

/** Options of the plots and the page. */
export interface HtmlOptions {
  /** The value axis' scale ["auto"]. */
  readonly logScale?: LogScale
}

const axes = (x: Scale, y: Scale, top: number, bottom: number, xLabel: string, yLabel: string): string => {
  const left = margin.left
  const right = width - margin.right
  const parts: Array<string> = []
  parts.push(`<g class="grid">`)
  for (const t of y.ticks) parts.push(`<line x1="${left}" x2="${right}" y1="${px(y.apply(t))}" y2="${px(y.apply(t))}"/>`)
  parts.push(`</g><g class="axis">`)
  parts.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${bottom}"/>`)
  parts.push(`<line x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}"/>`)
  for (const t of y.ticks) {
    const yy = px(y.apply(t))
    parts.push(`<line x1="${left - 5}" x2="${left}" y1="${yy}" y2="${yy}"/>`)
    parts.push(`<text x="${left - 8}" y="${yy}" text-anchor="end" dominant-baseline="middle">${escapeHtml(formatNumber(t))}</text>`)
  }
  for (const t of x.ticks) {
    const xx = px(x.apply(t))
    parts.push(`<line x1="${xx}" x2="${xx}" y1="${bottom}" y2="${bottom + 5}"/>`)
    parts.push(`<text x="${xx}" y="${bottom + 18}" text-anchor="middle">${escapeHtml(formatNumber(t))}</text>`)
  }
  parts.push(`<text class="label" x="${px((left + right) / 2)}" y="${height - 8}" text-anchor="middle">${escapeHtml(xLabel)}</text>`)
  parts.push(
    `<text class="label" transform="translate(16 ${px((top + bottom) / 2)}) rotate(-90)" text-anchor="middle">${
      escapeHtml(yLabel)
    }${y.log ? " (log scale)" : ""}</text>`
  )
  parts.push(`</g>`)
  return parts.join("")
}

const tooltip = (t: TrialReport): string => {
  const value = t.value === null ? "" : ` = ${formatNumber(t.value)}`
  const error = t.error === null ? "" : `\n${t.error}`
  return `<title>#${t.number} ${t.state}${escapeHtml(value)}\n${escapeHtml(formatParams(t.params))}${escapeHtml(error)}</title>`
}

/**
 * The convergence plot, an inline `<svg>`: complete trials as circles, pruned ones as diamonds,
 * failed ones as crosses in a strip under the values, the best value so far as a step line.
 */
export const convergenceSvg = (report: Report, options: HtmlOptions = {}): string => {
  const trials = report.trials
  const plotted = trials.filter((t) => (t.state === "complete" || t.state === "pruned") && t.value !== null)
  const valueless = trials.filter((t) => t.state === "failed" || (t.state === "pruned" && t.value === null))
  const strip = valueless.length > 0 ? 18 : 0
  const top = margin.top
  const bottom = height - margin.bottom
  const valueBottom = bottom - strip
  const maxNumber = trials.reduce((m, t) => Math.max(m, t.number), 0)
  const x = makeScale([0, Math.max(1, maxNumber)], false, [margin.left + 10, width - margin.right - 10], true)
  const y = makeScale(plotted.map((t) => t.value!), options.logScale ?? "auto", [valueBottom - 6, top + 6])
  const parts: Array<string> = []
  const label = `Convergence of study ${report.study.name}`
  parts.push(
    `<svg class="plot" viewBox="0 0 ${width} ${height}" role="img" aria-label="${
      escapeHtml(label)
    }">`
  )
  parts.push(axes(x, y, top, bottom, "trial", report.study.direction === "minimize" ? "value (minimised)" : "value (maximised)"))
  if (strip > 0) {
    parts.push(`<line class="strip" x1="${margin.left}" x2="${width - margin.right}" y1="${valueBottom}" y2="${valueBottom}"/>`)
    parts.push(`<text class="strip-label" x="${margin.left + 4}" y="${valueBottom + 12}">no value</text>`)
  }
  if (plotted.length === 0) {
    parts.push(
      `<text class="empty" x="${px((margin.left + width - margin.right) / 2)}" y="${
        px((top + valueBottom) / 2)
      }" text-anchor="middle">No complete trial yet</text>`
    )
  }
  // The best so far, as a step line from the first complete trial to the last trial.
  let d = ""
  let lastX = 0
  for (const [i, t] of trials.entries()) {
    const b = report.convergence[i] ?? null
    if (b === null) continue
    const xx = x.apply(t.number)
    const yy = y.apply(b)
    d += d === "" ? `M${px(xx)} ${px(yy)}` : `H${px(xx)}V${px(yy)}`
    lastX = xx
  }
  if (d !== "") parts.push(`<path class="best" fill="none" d="${d}H${px(Math.max(lastX, x.apply(maxNumber)))}"/>`)
  for (const t of plotted) {
    const xx = x.apply(t.number)
    const yy = y.apply(t.value!)
    if (t.state === "complete") {
      parts.push(`<circle class="complete" cx="${px(xx)}" cy="${px(yy)}" r="3.5">${tooltip(t)}</circle>`)
    } else {
      parts.push(
        `<path class="pruned" d="M${px(xx)} ${px(yy - 4.5)}L${px(xx + 4.5)} ${px(yy)}L${px(xx)} ${px(yy + 4.5)}L${
          px(xx - 4.5)
        } ${px(yy)}Z">${tooltip(t)}</path>`
      )
    }
  }
  for (const t of valueless) {
    const xx = x.apply(t.number)
    const yy = valueBottom + strip / 2
    parts.push(
      `<path class="${t.state}-x" d="M${px(xx - 3.5)} ${px(yy - 3.5)}L${px(xx + 3.5)} ${px(yy + 3.5)}M${px(xx - 3.5)} ${
        px(yy + 3.5)
      }L${px(xx + 3.5)} ${px(yy - 3.5)}">${tooltip(t)}</path>`
    )
  }
  parts.push(`</svg>`)
  return parts.join("")
}

/** The intermediate values of every trial that reported some, as lines by step (undefined when none did). */
export const intermediateSvg = (report: Report, options: HtmlOptions = {}): string | undefined => {
  const curves = report.trials.filter((t) => t.intermediate.some((p) => p.value !== null))
  if (curves.length === 0) return undefined
  const steps: Array<number> = []
  const values: Array<number> = []
  for (const t of curves) {
    for (const p of t.intermediate) {
      if (p.value === null) continue
      steps.push(p.step)
      values.push(p.value)
    }
  }
  const top = margin.top
  const bottom = height - margin.bottom
  const x = makeScale([Math.min(0, steps.reduce((a, b) => Math.min(a, b))), Math.max(1, steps.reduce((a, b) => Math.max(a, b)))], false, [margin.left + 10, width - margin.right - 10])
  const y = makeScale(values, options.logScale ?? "auto", [bottom - 6, top + 6])
  const best = report.summary.best?.number
  const parts: Array<string> = [
    `<svg class="plot" viewBox="0 0 ${width} ${height}" role="img" aria-label="${
      escapeHtml(`Intermediate values of study ${report.study.name}`)
    }">`,
    axes(x, y, top, bottom, "step", "intermediate value")
  ]
  // Complete curves first, then the pruned ones (shorter, else hidden), the best trial on top.
  const rank = (t: TrialReport) => t.number === best ? 2 : t.state === "complete" ? 0 : 1
  for (const t of [...curves].sort((a, b) => rank(a) - rank(b) || a.number - b.number)) {
    const points = t.intermediate.filter((p) => p.value !== null).map((p) => `${px(x.apply(p.step))},${px(y.apply(p.value!))}`)
    const cls = t.number === best ? "curve best-curve" : `curve ${t.state}-curve`
    parts.push(`<polyline class="${cls}" fill="none" points="${points.join(" ")}">${tooltip(t)}</polyline>`)
  }
  parts.push(`</svg>`)
  return parts.join("")
}

// ---------------------------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------------------------

const css = `
:root{--complete:#2563eb;--pruned:#d97706;--failed:#dc2626;--running:#6b7280;--best:#16a34a;--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);margin:0 auto;max-width:1000px;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
.muted{color:var(--muted)}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
dl.settings{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}
dl.settings dt{color:var(--muted)}dl.settings dd{margin:0}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;background:#f9fafb}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.best td{background:#f0fdf4}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:110px}
.card .n{font-size:20px;font-weight:600}
.state{display:inline-block;padding:0 6px;border-radius:4px;color:#fff;font-size:12px}
.state.complete{background:var(--complete)}.state.pruned{background:var(--pruned)}.state.failed{background:var(--failed)}.state.running{background:var(--running)}
svg.plot{width:100%;height:auto;max-width:${width}px;display:block}
svg .grid line{stroke:#f1f5f9}
svg .axis line{stroke:#9ca3af}
svg text{font-size:11px;fill:#4b5563}
svg text.label{font-size:12px;fill:var(--ink)}
svg text.empty{font-size:14px;fill:var(--muted)}
svg text.strip-label{font-size:10px;fill:var(--muted)}
svg line.strip{stroke:#e5e7eb;stroke-dasharray:3 3}
svg circle.complete{fill:var(--complete);fill-opacity:.75}
svg path.pruned{fill:var(--pruned);fill-opacity:.8}
svg path.failed-x,svg path.pruned-x{fill:none;stroke-width:1.6}
svg path.failed-x{stroke:var(--failed)}svg path.pruned-x{stroke:var(--pruned)}
svg path.best{fill:none;stroke:var(--best);stroke-width:2}
svg polyline.curve{fill:none;stroke-width:1;stroke-opacity:.55}
svg polyline.complete-curve{stroke:var(--complete)}svg polyline.pruned-curve{stroke:var(--pruned)}
svg polyline.failed-curve,svg polyline.running-curve{stroke:var(--failed)}
svg polyline.best-curve{stroke:var(--best);stroke-width:2.5;stroke-opacity:1}
.legend{display:flex;gap:16px;margin:4px 0 0 72px;font-size:12.5px;color:var(--muted)}
.legend .c{color:var(--complete)}.legend .p{color:var(--pruned)}.legend .f{color:var(--failed)}.legend .b{color:var(--best)}
`.trim()

const settingsText = (settings: Json): string => {
  if (settings !== null && typeof settings === "object" && !Array.isArray(settings) && Object.keys(settings).length === 0) return ""
  return JSON.stringify(settings)
}

const paramsCell = (params: Space.AnyParams): string =>
  Object.entries(params).map(([k, v]) => `<code>${escapeHtml(k)} = ${escapeHtml(formatChoice(v))}</code>`).join("<br>")

const valueCell = (v: number | null): string => v === null ? "–" : escapeHtml(formatNumber(v))

/** The report as a self-contained HTML page: title, settings, summary and best parameters, plots, the trials. */
export const html = (report: Report, options: HtmlOptions = {}): string => {
  const { study, summary } = report
  const e = escapeHtml
  const out: Array<string> = []
  out.push(
    `<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n` +
      `<title>Study ${e(study.name)}</title>\n<style>\n${css}\n</style>\n</head>\n<body>\n`
  )
  out.push(`<h1>Study <code>${e(study.name)}</code></h1>\n`)
  if (study.description !== null) out.push(`<p class="muted">${e(study.description)}</p>\n`)

  // Settings
  const samplerSettings = settingsText(study.sampler.settings)
  const prunerSettings = settingsText(study.pruner.settings)
  out.push(`<h2>Settings</h2>\n<dl class="settings">\n`)
  out.push(`<dt>Direction</dt><dd>${e(study.direction)}</dd>\n`)
  out.push(`<dt>Seed</dt><dd>${e(String(study.seed))}</dd>\n`)
  out.push(
    `<dt>Sampler</dt><dd>${e(study.sampler.name)}${samplerSettings === "" ? "" : ` <code>${e(samplerSettings)}</code>`}</dd>\n`
  )
  out.push(`<dt>Pruner</dt><dd>${e(study.pruner.name)}${prunerSettings === "" ? "" : ` <code>${e(prunerSettings)}</code>`}</dd>\n`)
  out.push(`</dl>\n<h2>Search space</h2>\n<table class="space"><thead><tr><th>Parameter</th><th>Domain</th></tr></thead><tbody>\n`)
  for (const [name, p] of Object.entries(study.space)) out.push(`<tr><td><code>${e(name)}</code></td><td><code>${e(p.domain)}</code></td></tr>\n`)
  out.push(`</tbody></table>\n`)

  // Summary
  out.push(`<h2>Summary</h2>\n<div class="cards">\n<div class="card"><div class="muted">trials</div><div class="n">${summary.trials}</div></div>\n`)
  for (const state of ["complete", "pruned", "failed", "running"] as const) {
    if (state === "running" && summary.states.running === 0) continue
    out.push(
      `<div class="card"><div class="muted"><span class="state ${state}">${state}</span></div><div class="n">${
        summary.states[state]
      }</div></div>\n`
    )
  }
  if (summary.best !== null) {
    out.push(
      `<div class="card"><div class="muted">best value (trial #${summary.best.number})</div><div class="n">${
        e(formatNumber(summary.best.value))
      }</div></div>\n`
    )
  }
  out.push(`</div>\n`)
  if (summary.best !== null) {
    out.push(`<h2>Best parameters</h2>\n<table class="best-params"><thead><tr><th>Parameter</th><th class="num">Value</th></tr></thead><tbody>\n`)
    for (const [k, v] of Object.entries(summary.best.params)) {
      out.push(`<tr><td><code>${e(k)}</code></td><td class="num"><code>${e(formatChoice(v))}</code></td></tr>\n`)
    }
    out.push(`</tbody></table>\n`)
  } else {
    out.push(`<p class="muted">No trial completed, so there is no best trial.</p>\n`)
  }

  // Plots
  out.push(`<h2>Convergence</h2>\n${convergenceSvg(report, options)}\n`)
  out.push(
    `<div class="legend"><span><span class="c">●</span> complete</span><span><span class="p">◆</span> pruned</span>` +
      `<span><span class="f">✕</span> failed</span><span><span class="b">━</span> best so far</span></div>\n`
  )
  const curves = intermediateSvg(report, options)
  if (curves !== undefined) {
    out.push(`<h2>Intermediate values</h2>\n${curves}\n`)
    out.push(
      `<div class="legend"><span><span class="c">━</span> complete</span><span><span class="p">━</span> pruned</span>` +
        `<span><span class="b">━</span> best trial</span></div>\n`
    )
  }

  // Trials
  const withSteps = report.trials.some((t) => t.intermediate.length > 0)
  const withErrors = report.trials.some((t) => t.error !== null)
  out.push(
    `<h2>Trials</h2>\n<table class="trials"><thead><tr><th class="num">#</th><th>State</th><th class="num">Value</th><th>Parameters</th>` +
      `${withSteps ? `<th class="num">Steps</th>` : ""}<th class="num">Attempts</th><th class="num">Duration</th>${
        withErrors ? "<th>Error</th>" : ""
      }</tr></thead><tbody>\n`
  )
  const bestNumber = summary.best?.number
  for (const t of report.trials) {
    out.push(
      `<tr${t.number === bestNumber ? ` class="best"` : ""}><td class="num">${t.number}</td>` +
        `<td><span class="state ${t.state}">${t.state}</span></td><td class="num">${valueCell(t.value)}</td>` +
        `<td>${paramsCell(t.params)}</td>` +
        `${withSteps ? `<td class="num">${t.intermediate.length}</td>` : ""}` +
        `<td class="num">${t.attempts}</td><td class="num">${e(formatDuration(t.durationMillis))}</td>` +
        `${withErrors ? `<td>${t.error === null ? "" : e(t.error)}</td>` : ""}</tr>\n`
    )
  }
  out.push(`</tbody></table>\n</body>\n</html>\n`)
  return out.join("")
}

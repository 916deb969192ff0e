import { describe, expect, it } from "@effect/vitest"
import * as Study from "../../src/ml/Study.js"
import * as Report from "../../src/ml/study/Report.js"
import type { TrialRecord } from "../../src/ml/study/Trial.js"

const record = (
  number: number,
  state: TrialRecord["state"],
  value: number | undefined,
  params: TrialRecord["params"] = { x: number / 10, kind: "a" },
  extra: Partial<TrialRecord> = {}
): TrialRecord => ({
  number,
  params,
  state,
  value,
  intermediate: [],
  error: state === "failed" ? "Error: boom" : undefined,
  attempts: 1,
  startedAt: 1000 * number,
  endedAt: state === "running" ? undefined : 1000 * number + 250,
  ...extra
})

const space = { x: Study.float(0, 1), kind: Study.categorical(["a", "b", "<script>alert(1)</script>"]) }

const meta = (overrides: Partial<Report.StudyMeta> = {}): Report.StudyMeta => ({
  name: "demo",
  direction: "minimize",
  seed: 7,
  sampler: Study.tpe(),
  pruner: Study.median(),
  space,
  ...overrides
})

// Numbers out of order, every state, a pruned trial with a curve, a failed one, a running one.
const trials: ReadonlyArray<TrialRecord> = [
  record(4, "complete", 2),
  record(0, "complete", 3),
  record(1, "failed", undefined),
  record(3, "pruned", 5, undefined, { intermediate: [{ step: 1, value: 9 }, { step: 2, value: 5 }] }),
  record(2, "complete", 1, { kind: "b", x: 0.2 }),
  record(5, "running", undefined)
]

const count = (text: string, needle: string) => text.split(needle).length - 1

describe("Report.json", () => {
  it("counts the states, finds the best trial and the best value so far after each trial", () => {
    const report = Report.json(meta(), trials)
    expect(report.trials.map((t) => t.number)).toEqual([0, 1, 2, 3, 4, 5])
    expect(report.summary).toEqual({
      trials: 6,
      states: { running: 1, complete: 3, pruned: 1, failed: 1 },
      // Parameters come in the space's order, whatever order the trial had them in.
      best: { number: 2, value: 1, params: { x: 0.2, kind: "b" } }
    })
    expect(Object.keys(report.trials[2]!.params)).toEqual(["x", "kind"])
    expect(report.convergence).toEqual([3, 3, 1, 1, 1, 1])
    // The same as Study.convergence, with null for "no value yet".
    const sorted = [...trials].sort((a, b) => a.number - b.number)
    expect(report.convergence).toEqual(Study.convergence("minimize", sorted).map((v) => v ?? null))
    const maximized = Report.json(meta({ direction: "maximize" }), trials)
    expect(maximized.summary.best).toMatchObject({ number: 0, value: 3 })
    expect(maximized.convergence).toEqual([3, 3, 3, 3, 3, 3])
  })

  it("describes the study's settings and space, and every trial", () => {
    const report = Report.json(meta({ description: "a test" }), trials)
    expect(report.study).toMatchObject({
      name: "demo",
      description: "a test",
      direction: "minimize",
      seed: 7,
      sampler: { name: "tpe", settings: { startupTrials: 10, candidates: 24, multivariate: true } },
      pruner: { name: "median", settings: { startupTrials: 5, warmupSteps: 0 } }
    })
    expect(report.study.space).toEqual({
      x: { type: "float", domain: "float[0, 1]", low: 0, high: 1, log: false, step: null },
      kind: { type: "categorical", domain: "{a, b, <script>alert(1)</script>}", choices: ["a", "b", "<script>alert(1)</script>"] }
    })
    expect(report.trials[1]).toEqual({
      number: 1,
      state: "failed",
      value: null,
      params: { x: 0.1, kind: "a" },
      intermediate: [],
      error: "Error: boom",
      attempts: 1,
      startedAt: 1000,
      endedAt: 1250,
      durationMillis: 250
    })
    expect(report.trials[3]!.intermediate).toEqual([{ step: 1, value: 9 }, { step: 2, value: 5 }])
    expect(report.trials[5]).toMatchObject({ state: "running", endedAt: null, durationMillis: null })
  })

  it("is JSON-safe: a JSON round trip gives it back unchanged, whatever the settings hold", () => {
    const odd = { name: "odd", settings: { fn: (n: number) => n, inf: Infinity, nested: { nan: Number.NaN, list: [1, undefined] } } }
    const report = Report.json(meta({ sampler: odd }), trials)
    expect(JSON.parse(JSON.stringify(report))).toEqual(report)
    expect(report.study.sampler.settings).toEqual({ inf: null, nested: { nan: null, list: [1, null] } })
    const cyclic: Record<string, unknown> = {}
    cyclic["self"] = cyclic
    expect(Report.toJson(cyclic)).toEqual({ self: "[cycle]" })
  })
})

describe("Report.html", () => {
  it("is one page with an SVG plot: a circle per complete trial, a diamond per pruned one, a cross per failed one", () => {
    const html = Report.html(Report.json(meta(), trials))
    expect(html.startsWith("<!doctype html>")).toBe(true)
    expect(html).toContain("<title>Study demo</title>")
    expect(count(html, "<svg")).toBe(2) // convergence, and the pruned trial's intermediate values
    expect(count(html, "<circle")).toBe(3)
    expect(count(html, `<circle class="complete"`)).toBe(3)
    expect(count(html, `<path class="pruned"`)).toBe(1)
    expect(count(html, `<path class="failed-x"`)).toBe(1)
    expect(count(html, `<path class="best"`)).toBe(1)
    expect(html).toContain("Intermediate values")
    // The table: one row per trial, the best one marked.
    expect(count(html, "<tr")).toBe(1 + 6 + 1 + 2 + 1 + 2) // trials + header, space + header, best params + header
    expect(html).toMatch(/<tr class="best"><td class="num">2<\/td>/)
    expect(html).toContain("250 ms")
    // Axes with ticks and labels.
    expect(html).toContain(">trial</text>")
    expect(html).toContain("value (minimised)")
  })

  it("escapes every text taken from the study and references nothing outside the page", () => {
    const nasty = "<script>alert(1)</script>"
    const report = Report.json(
      meta({ name: `x"<b>&`, description: "<img src=x onerror=alert(1)>" }),
      [
        record(0, "complete", 1, { x: 0.5, kind: nasty }),
        record(1, "failed", undefined, { x: 0.1, kind: "a" }, { error: "<iframe src=http://evil>" })
      ]
    )
    const html = Report.html(report)
    expect(html).not.toContain("<script")
    expect(html).not.toContain("<img")
    expect(html).not.toContain("<iframe")
    expect(html).not.toContain("<b>")
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;")
    expect(html).toContain("x&quot;&lt;b&gt;&amp;")
    expect(html).toContain("&lt;iframe src=http://evil&gt;")
    // The only "http" and "src=" are inside the escaped texts above.
    const withoutEscapedText = html.replaceAll("&lt;iframe src=http://evil&gt;", "").replaceAll("&lt;img src=x onerror=alert(1)&gt;", "")
    expect(withoutEscapedText).not.toMatch(/https?:/)
    expect(withoutEscapedText).not.toContain("src=")
    expect(html).not.toContain("<link")
    expect(html).not.toContain("url(")
    expect(Report.escapeHtml(`<a href="x">'&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;")
  })

  it("copes with no complete trial, no trial at all, and all-equal values", () => {
    const none = Report.json(meta(), [record(0, "failed", undefined), record(1, "pruned", undefined)])
    expect(none.summary.best).toBeNull()
    expect(none.convergence).toEqual([null, null])
    const html = Report.html(none)
    expect(html).not.toContain("<circle")
    expect(html).toContain("No complete trial yet")
    expect(html).toContain("there is no best trial")
    expect(count(html, `<path class="failed-x"`)).toBe(1)
    expect(count(html, `<path class="pruned-x"`)).toBe(1)
    expect(html).not.toContain(`class="best"`)

    const empty = Report.html(Report.json(meta(), []))
    expect(empty).toContain("No complete trial yet")
    expect(empty).not.toMatch(/NaN|Infinity/)

    const flat = Report.html(Report.json(meta(), [0, 1, 2].map((n) => record(n, "complete", 2))))
    expect(count(flat, "<circle")).toBe(3)
    expect(flat).not.toMatch(/NaN|Infinity/)
    expect(Report.linearTicks(2, 2).ticks).toEqual([1.8, 1.9, 2, 2.1, 2.2])
    expect(Report.linearTicks(0, 0).domain).toEqual([-1, 1])
  })

  it("uses a log scale for positive values spanning decades, and linear otherwise", () => {
    const spread = [0.5, 40, 300].map((v, n) => record(n, "complete", v))
    expect(Report.html(Report.json(meta(), spread))).toContain("(log scale)")
    expect(Report.html(Report.json(meta(), spread), { logScale: false })).not.toContain("(log scale)")
    const narrow = [1, 2, 3].map((v, n) => record(n, "complete", v))
    expect(Report.html(Report.json(meta(), narrow))).not.toContain("(log scale)")
    expect(Report.html(Report.json(meta(), narrow), { logScale: true })).toContain("(log scale)")
    // Values ≤ 0 cannot go on a log axis, even when asked.
    const negative = [-3, 5, 400].map((v, n) => record(n, "complete", v))
    expect(Report.html(Report.json(meta(), negative), { logScale: true })).not.toContain("(log scale)")

    expect(Report.logTicks(0.4, 300)).toEqual({ domain: [0.1, 1000], ticks: [0.1, 1, 10, 100, 1000] })
    expect(Report.logTicks(2, 30).ticks).toEqual([1, 2, 5, 10, 20, 50, 100])
    expect(Report.linearTicks(0, 9.3)).toEqual({ domain: [0, 10], ticks: [0, 2, 4, 6, 8, 10] })
  })

  it("stays small: 100 trials in well under 200 KB", () => {
    const many = Array.from({ length: 100 }, (_, n) => record(n, n % 10 === 9 ? "failed" : "complete", n % 10 === 9 ? undefined : 100 / (n + 1)))
    const html = Report.html(Report.json(meta(), many))
    expect(count(html, "<circle")).toBe(90)
    expect(html.length).toBeLessThan(100_000)
  })
})

import * as Command from "@effect/cli/Command"
import * as CliValidationError from "@effect/cli/ValidationError"
import * as Terminal from "@effect/platform/Terminal"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as StudyCommand from "../../src/cli/StudyCommand.js"
import { ValidationError } from "../../src/errors/FoundationError.js"
import { branin } from "../../src/ml/problems.js"
import * as Study from "../../src/ml/Study.js"
import type * as Report from "../../src/ml/study/Report.js"

const root = fs.mkdtempSync(path.join(os.tmpdir(), "foundation-study-cli-"))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))
let dirs = 0
const tempDir = () => path.join(root, `run-${dirs++}`)

/** An output that keeps what is written. */
const capture = (isTTY: boolean) => {
  const written: Array<string> = []
  const output: StudyCommand.Output = { isTTY, write: (text) => Effect.sync(() => void written.push(text)) }
  return { output, text: () => written.join(""), writes: written }
}

const run = (options: StudyCommand.StudyOptions, isTTY = false) =>
  Effect.gen(function*() {
    const { output, text, writes } = capture(isTTY)
    const result = yield* StudyCommand.run(options, output)
    return { result, text: text(), writes }
  }).pipe(Effect.provide(NodeContext.layer))

const readReport = (file: string): Report.Report => JSON.parse(fs.readFileSync(file, "utf8")) as Report.Report

const fieldOf = (options: StudyCommand.StudyOptions) =>
  Effect.map(Effect.flip(run(options)), (e) => {
    expect(e).toBeInstanceOf(ValidationError)
    return (e as ValidationError).field
  })

describe("foundation study", () => {
  it.effect("runs the study, prints progress and a summary, and writes the JSON and HTML report", () =>
    Effect.gen(function*() {
      const out = tempDir()
      const { result, text } = yield* run({ problem: "branin", trials: 30, seed: 1, out })
      expect(result.files).toEqual({ json: path.join(out, "branin.json"), html: path.join(out, "branin.html") })
      const report = readReport(result.files.json)
      expect(report).toEqual(result.report)
      expect(report.summary.trials).toBe(30)
      expect(report.study).toMatchObject({ name: "branin", direction: "minimize", seed: 1, sampler: { name: "tpe" }, pruner: { name: "none" } })

      // The same best as Study.optimize with the same settings (TPE, seed 1, concurrency 4).
      const study = yield* Study.make({ space: { x: Study.float(-5, 10), y: Study.float(0, 15) }, sampler: Study.tpe(), seed: 1 })
      const summary = yield* study.optimize((t) => Effect.succeed(branin(t.params.x, t.params.y)), { trials: 30, concurrency: 4 })
      expect(report.summary.best).toEqual({ number: summary.best!.number, value: summary.best!.value, params: summary.best!.params })

      const html = fs.readFileSync(result.files.html, "utf8")
      expect(html.split("<circle").length - 1).toBe(30)
      expect(html).toContain("Branin")

      // Progress every tenth of the trials (3 trials), then the summary.
      const progress = text.split("\n").filter((line) => line.startsWith("["))
      expect(progress).toHaveLength(10)
      expect(progress[0]).toMatch(/^\[█+░+\]  3\/30  10%  best [\d.]+ \(#\d\)  complete 3  pruned 0  failed 0/)
      expect(progress[9]).toContain("30/30 100%")
      expect(text).not.toContain("\r")
      expect(text).toContain("30 trials: 30 complete, 0 pruned, 0 failed")
      expect(text).toContain(`Best value ${String(Number(summary.best!.value!.toPrecision(6)))} (trial #${summary.best!.number})`)
      expect(text).toMatch(/Best params x = -?[\d.]+, y = [\d.]+/)
      expect(text).toContain(`Report: ${result.files.html}`)
    }))

  it.effect("--storage keeps the study in SQLite: a rerun resumes it and keeps the first trials unchanged", () =>
    Effect.gen(function*() {
      const out = tempDir()
      const storage = path.join(tempDir(), "studies.db")
      const first = yield* run({ problem: "branin", trials: 20, seed: 3, out, storage })
      expect(first.result.report.trials).toHaveLength(20)
      expect(first.result.resumed).toBe(0)
      // No seed given on the rerun: the stored study keeps its own.
      const second = yield* run({ problem: "branin", trials: 30, out, storage })
      expect(second.result.resumed).toBe(20)
      expect(second.text).toContain("Resuming: 20 trials done")
      const report = readReport(second.result.files.json)
      expect(report.study.seed).toBe(3)
      expect(report.trials).toHaveLength(30)
      expect(report.trials.slice(0, 20)).toEqual(first.result.report.trials)
      // The same trials as a study run in one go.
      const fresh = yield* run({ problem: "branin", trials: 30, seed: 3, out: tempDir() })
      const strip = (r: Report.Report) => r.trials.map((t) => [t.number, t.params, t.value])
      expect(strip(report)).toEqual(strip(fresh.result.report))
      // A stored study keeps its sampler: another one is a ValidationError.
      expect(yield* fieldOf({ problem: "branin", trials: 30, out, storage, sampler: "random" })).toBe("sampler")
      expect(yield* fieldOf({ problem: "branin", trials: 30, out, storage, seed: 4 })).toBe("seed")
    }), 20_000)

  it.effect("rejects bad options with a ValidationError naming the option, before anything runs", () =>
    Effect.gen(function*() {
      const out = tempDir()
      expect(yield* fieldOf({ trials: -1, out })).toBe("trials")
      expect(yield* fieldOf({ trials: 2.5, out })).toBe("trials")
      expect(yield* fieldOf({ problem: "ackley", out })).toBe("problem")
      expect(yield* fieldOf({ sampler: "cmaes", out })).toBe("sampler")
      expect(yield* fieldOf({ pruner: "hyperband", out })).toBe("pruner")
      expect(yield* fieldOf({ concurrency: 0, out })).toBe("concurrency")
      expect(yield* fieldOf({ seed: 1.5, out })).toBe("seed")
      expect(yield* fieldOf({ name: "../escape", out })).toBe("name")
      expect(yield* fieldOf({ out: "" })).toBe("out")
      expect(fs.existsSync(out)).toBe(false)
    }))

  it.effect("curves: the median pruner stops trials whose curve falls behind; the report keeps each curve", () =>
    Effect.gen(function*() {
      const { result, text } = yield* run({ problem: "curves", trials: 40, seed: 5, out: tempDir() })
      const { report } = result
      expect(report.study.pruner.name).toBe("median")
      expect(report.summary.states.pruned).toBeGreaterThan(5)
      expect(report.summary.states.complete + report.summary.states.pruned).toBe(40)
      for (const t of report.trials) {
        expect(t.intermediate.length).toBeGreaterThan(0)
        expect(t.intermediate.length).toBeLessThanOrEqual(StudyCommand.curveSteps)
        if (t.state === "complete") expect(t.intermediate).toHaveLength(StudyCommand.curveSteps)
        if (t.state === "pruned") expect(t.value).toBe(t.intermediate[t.intermediate.length - 1]!.value)
      }
      expect(report.summary.best!.value).toBeGreaterThan(0.9)
      expect(text).toMatch(/Pruning ran \d+ of 800 steps \(\d+% saved\)/)
      expect(fs.readFileSync(result.files.html, "utf8")).toContain("Intermediate values")
    }))

  it.effect("grid on a continuous problem: 10 points per float, in order, until the grid is run through", () =>
    Effect.gen(function*() {
      const { result, text } = yield* run({ problem: "sphere", sampler: "grid", trials: 150, out: tempDir() })
      const { report } = result
      expect(report.trials).toHaveLength(100)
      expect(report.trials.slice(0, 3).map((t) => t.params)).toEqual([{ x0: -5, x1: -5 }, { x0: -5, x1: -3.88888888889 }, {
        x0: -5,
        x1: -2.77777777778
      }])
      expect(new Set(report.trials.map((t) => t.params["x0"])).size).toBe(10)
      expect(text).toContain("(the grid is exhausted)")
      expect(StudyCommand.defaultGridValues({ lr: Study.float(1e-4, 1e-1, { log: true }) })["lr"]).toEqual([
        1e-4,
        2.15443469003e-4,
        4.64158883361e-4,
        1e-3,
        2.15443469003e-3,
        4.64158883361e-3,
        0.01,
        0.0215443469003,
        0.0464158883361,
        0.1
      ])
      // The mixed space's grid (10 × 4 × 4) holds its optimum exactly.
      const mixed = yield* run({ problem: "mixed", sampler: "grid", trials: 200, concurrency: 8, out: tempDir() })
      expect(mixed.result.report.trials).toHaveLength(160)
      expect(mixed.result.report.summary.best!.params).toEqual({ lr: 0.01, batchSize: 64, layers: 2 })
    }))

  it.effect("on a terminal, redraws one progress line in place and ends it", () =>
    Effect.gen(function*() {
      const { writes } = yield* run({ problem: "rosenbrock", trials: 12, sampler: "random", out: tempDir() }, true)
      const redraws = writes.filter((w) => w.startsWith("\r\x1b[2K"))
      expect(redraws).toHaveLength(13) // one per trial, then the final one
      expect(redraws.slice(0, 12).every((w) => !w.includes("\n"))).toBe(true)
      expect(redraws[12]).toContain("12/12 100%")
      expect(redraws[12]!.endsWith("\n")).toBe(true)
    }))
})

describe("the study command line", () => {
  /** A terminal that keeps what is displayed. */
  const terminal = (displayed: Array<string>) =>
    Layer.succeed(
      Terminal.Terminal,
      Terminal.Terminal.of({
        columns: Effect.succeed(100),
        rows: Effect.succeed(40),
        isTTY: Effect.succeed(false),
        readInput: Effect.die("no input in tests"),
        readLine: Effect.die("no input in tests"),
        display: (text) => Effect.sync(() => void displayed.push(text))
      })
    )
  const cli = (args: ReadonlyArray<string>) => {
    const displayed: Array<string> = []
    return Command.run(StudyCommand.command, { name: "foundation", version: "test" })(["node", "study", ...args]).pipe(
      Effect.provide(terminal(displayed)),
      Effect.provide(NodeContext.layer),
      Effect.as(displayed)
    )
  }

  it.effect("parses every option and runs the study", () =>
    Effect.gen(function*() {
      const out = tempDir()
      const displayed = yield* cli([
        "--problem",
        "sphere",
        "--trials",
        "8",
        "--sampler",
        "random",
        "--pruner",
        "asha",
        "--concurrency",
        "2",
        "--seed",
        "9",
        "--out",
        out,
        "--name",
        "my-sphere"
      ])
      const report = readReport(path.join(out, "my-sphere.json"))
      expect(fs.existsSync(path.join(out, "my-sphere.html"))).toBe(true)
      expect(report.study).toMatchObject({ name: "my-sphere", seed: 9, sampler: { name: "random" }, pruner: { name: "asha" } })
      expect(Object.keys(report.study.space)).toEqual(["x0", "x1"])
      expect(report.trials).toHaveLength(8)
      expect(displayed.join("")).toContain("concurrency 2 · seed 9")
      expect(displayed.join("")).toContain("Note: sphere reports no steps, so nothing is pruned")
    }))

  it.effect("has the documented defaults", () =>
    Effect.gen(function*() {
      const out = tempDir()
      const displayed = yield* cli(["--trials", "5", "--out", out])
      const report = readReport(path.join(out, "branin.json"))
      expect(report.study).toMatchObject({ name: "branin", seed: 42, sampler: { name: "tpe" }, pruner: { name: "none" } })
      expect(displayed.join("")).toContain("5 trials · tpe sampler · no pruner · concurrency 4 · seed 42")
    }))

  it.effect("rejects an unknown choice while parsing, and a bad number with the study's ValidationError", () =>
    Effect.gen(function*() {
      const parseError = yield* Effect.flip(cli(["--problem", "ackley", "--out", tempDir()]))
      expect(CliValidationError.isValidationError(parseError)).toBe(true)
      const error = yield* Effect.flip(cli(["--trials", "-1", "--out", tempDir()]))
      expect(error).toMatchObject({ _tag: "ValidationError", field: "trials" })
    }))
})

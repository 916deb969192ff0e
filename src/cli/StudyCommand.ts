/**
 * The `foundation study` command: a hyperparameter study on one of the benchmark problems, with
 * a live progress bar, a short summary and a report written as JSON and as a self-contained
 * HTML page (`<out>/<name>.json`, `<out>/<name>.html`).
 *
 * Problems: `branin` (minimise; [−5, 10] × [0, 15]; minimum 5/(4π) ≈ 0.397887), `sphere`
 * (minimise Σxᵢ² on [−5, 5]²), `rosenbrock` (minimise on [−2, 2]²; 0 at (1, 1)), `mixed` (the
 * mixed space lr / batchSize / layers, maximised; 0 at (0.01, 64, 2)) and `curves` (synthetic
 * learning curves a·(1 − e^(−t/τ)) reported step by step for 20 steps, maximised; pruned by
 * the median rule unless told otherwise).
 *
 * Guarantees:
 * - Options are checked before anything runs: a bad one is a `ValidationError` naming it.
 * - The same options give the same trials (the study is seeded; default seed 42).
 * - With `--storage <file>`, the study lives in that SQLite file: a rerun with the same name
 *   resumes it (its seed, sampler, pruner and trials), runs the trials still missing up to
 *   `--trials`, and writes the report over all of them.
 * - Grid search on a continuous problem uses a built-in grid of 10 points per float (spaced
 *   logarithmically on a log scale); the study ends when the grid is run through.
 *
 * Output: on a terminal, one progress line redrawn in place; otherwise a line every tenth of
 * the trials. Then the summary: the best value and parameters and the report paths.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as SqlStore from "../data/SqlStore.js"
import { ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import { branin, braninMinimum, learningCurve, mixedObjective, rosenbrock, sphere } from "../ml/problems.js"
import * as Study from "../ml/Study.js"
import * as Report from "../ml/study/Report.js"
import * as Space from "../ml/study/Space.js"
import type * as Storage from "../ml/study/Storage.js"
import { type Output, terminalOutput } from "./LoadTestCommand.js"

export type { Output } from "./LoadTestCommand.js"

// ---------------------------------------------------------------------------------------------
// Problems
// ---------------------------------------------------------------------------------------------

/** The problems the command runs. */
export const problemNames = ["branin", "sphere", "rosenbrock", "mixed", "curves"] as const
export type ProblemName = (typeof problemNames)[number]

export const samplerNames = ["tpe", "random", "grid"] as const
export type SamplerName = (typeof samplerNames)[number]

export const prunerNames = ["none", "median", "asha"] as const
export type PrunerName = (typeof prunerNames)[number]

/** The steps the `curves` problem reports (its "epochs"). */
export const curveSteps = 20

/** Grid points per float parameter without a step, for grid search on continuous problems. */
export const gridPoints = 10

/** A study opened on a problem, with the problem's objective bound in. */
interface OpenedStudy {
  readonly meta: Report.StudyMeta
  readonly optimize: (
    options: Study.OptimizeOptions<Space.AnyParams>
  ) => Effect.Effect<Study.Summary, ValidationError | Storage.StorageError>
  readonly trials: Effect.Effect<ReadonlyArray<Study.TrialRecord>>
}

/** A benchmark problem: its space, direction and objective. */
export interface Problem {
  readonly name: ProblemName
  readonly description: string
  readonly direction: Study.Direction
  readonly space: Study.Space
  /** Steps each trial reports (pruning acts only on problems that report). */
  readonly steps: number | undefined
  /** The pruner used when none is given. */
  readonly defaultPruner: PrunerName
  readonly open: (options: {
    readonly name: string
    readonly sampler: Study.Sampler
    readonly pruner: Study.Pruner
    readonly seed: number | undefined
    readonly storage: Study.Storage
  }) => Effect.Effect<OpenedStudy, ValidationError | Storage.StorageError>
}

const problem = <const S extends Study.Space>(definition: {
  readonly name: ProblemName
  readonly description: string
  readonly direction: Study.Direction
  readonly space: S
  readonly steps?: number
  readonly defaultPruner?: PrunerName
  readonly objective: (trial: Study.Trial<Study.Params<S>>) => Effect.Effect<number, Study.TrialPrunedError | ValidationError>
}): Problem => ({
  name: definition.name,
  description: definition.description,
  direction: definition.direction,
  space: definition.space,
  steps: definition.steps,
  defaultPruner: definition.defaultPruner ?? "none",
  open: (options) =>
    Effect.map(
      Study.make({
        name: options.name,
        sampler: options.sampler,
        pruner: options.pruner,
        storage: options.storage,
        ...(options.seed !== undefined ? { seed: options.seed } : {}),
        space: definition.space,
        direction: definition.direction
      }),
      (study): OpenedStudy => ({
        meta: {
          name: study.name,
          direction: study.direction,
          seed: study.seed,
          sampler: study.sampler,
          pruner: study.pruner,
          space: study.space,
          description: definition.description
        },
        optimize: (opts) => study.optimize(definition.objective, opts),
        trials: study.trials
      })
    )
})

/** The benchmark problems, by name. */
export const problems: Readonly<Record<ProblemName, Problem>> = {
  branin: problem({
    name: "branin",
    description: `Branin–Hoo on [−5, 10] × [0, 15], minimised; global minimum ${braninMinimum.toFixed(6)} at three points.`,
    direction: "minimize",
    space: { x: Study.float(-5, 10), y: Study.float(0, 15) },
    objective: (t) => Effect.succeed(branin(t.params.x, t.params.y))
  }),
  sphere: problem({
    name: "sphere",
    description: "Sphere x0² + x1² on [−5, 5]², minimised; minimum 0 at the origin.",
    direction: "minimize",
    space: { x0: Study.float(-5, 5), x1: Study.float(-5, 5) },
    objective: (t) => Effect.succeed(sphere([t.params.x0, t.params.x1]))
  }),
  rosenbrock: problem({
    name: "rosenbrock",
    description: "Rosenbrock 100(x1 − x0²)² + (1 − x0)² on [−2, 2]², minimised; minimum 0 at (1, 1).",
    direction: "minimize",
    space: { x0: Study.float(-2, 2), x1: Study.float(-2, 2) },
    objective: (t) => Effect.succeed(rosenbrock([t.params.x0, t.params.x1]))
  }),
  mixed: problem({
    name: "mixed",
    description: "−(log₁₀ lr + 2)² − ((batchSize − 64)/64)² − 0.1·|layers − 2|, maximised; 0 at lr 0.01, batchSize 64, 2 layers.",
    direction: "maximize",
    space: {
      lr: Study.float(1e-4, 1e-1, { log: true }),
      batchSize: Study.categorical([16, 32, 64, 128]),
      layers: Study.int(1, 4)
    },
    objective: (t) => Effect.succeed(mixedObjective(t.params.lr, t.params.batchSize, t.params.layers))
  }),
  curves: problem({
    name: "curves",
    description: `Synthetic learning curves a·(1 − e^(−t/τ)) reported at steps 1…${curveSteps}, maximised; ` +
      "a trial whose curve falls behind is pruned.",
    direction: "maximize",
    space: { a: Study.float(0.5, 1), tau: Study.float(1, 30) },
    steps: curveSteps,
    defaultPruner: "median",
    objective: (t) =>
      Effect.gen(function*() {
        let value = 0
        for (let step = 1; step <= curveSteps; step++) {
          value = learningCurve(t.params.a, t.params.tau, step)
          yield* t.report(value, step)
        }
        return value
      })
  })
}

/**
 * The built-in grid of a space: `points` values per float without a step (evenly spaced, or
 * geometrically on a log scale, both ends included); other parameters enumerate themselves.
 */
export const defaultGridValues = (space: Study.Space, points = gridPoints): Readonly<Record<string, ReadonlyArray<number>>> => {
  const out: Record<string, ReadonlyArray<number>> = {}
  for (const [name, p] of Object.entries(space)) {
    if (p._tag !== "Float" || p.step !== undefined) continue
    out[name] = Array.from({ length: points }, (_, k) => {
      const u = points === 1 ? 0 : k / (points - 1)
      const v = p.log ? p.low * (p.high / p.low) ** u : p.low + u * (p.high - p.low)
      return Math.min(p.high, Math.max(p.low, Number(v.toPrecision(12))))
    })
  }
  return out
}

const makeSampler = (name: SamplerName, space: Study.Space): Study.Sampler =>
  name === "tpe" ? Study.tpe() : name === "random" ? Study.random() : Study.grid({ values: defaultGridValues(space) })

const makePruner = (name: PrunerName): Study.Pruner =>
  name === "median" ? Study.median() : name === "asha" ? Study.asha() : Study.none()

// ---------------------------------------------------------------------------------------------
// The program
// ---------------------------------------------------------------------------------------------

/** Options of the study program (as typed on the command line; all checked). */
export interface StudyOptions {
  /** branin | sphere | rosenbrock | mixed | curves ["branin"] */
  readonly problem?: string | undefined
  /** The study holds this many trials at the end (a resumed study runs the rest) [100]. */
  readonly trials?: number | undefined
  /** tpe | random | grid ["tpe"; a resumed study: its own] */
  readonly sampler?: string | undefined
  /** none | median | asha ["none", "median" for curves; a resumed study: its own] */
  readonly pruner?: string | undefined
  /** Trials at once [4]. */
  readonly concurrency?: number | undefined
  /** Seed of a new study [42; a resumed study keeps its own]. */
  readonly seed?: number | undefined
  /** Directory of the report ["./study-report"]. */
  readonly out?: string | undefined
  /** A SQLite file holding the study, resumed on rerun [none: in memory]. */
  readonly storage?: string | undefined
  /** The study's name, also the report's file name: letters, digits, `.`, `_`, `-` [the problem's name]. */
  readonly name?: string | undefined
}

/** What a run produced. */
export interface StudyResult {
  readonly summary: Study.Summary
  readonly report: Report.Report
  /** Trials that were already stored when the run started. */
  readonly resumed: number
  /** The report files written. */
  readonly files: { readonly json: string; readonly html: string }
}

const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

/** Checks the options; the first problem is a `ValidationError` naming the option. */
export const validate = (options: StudyOptions) =>
  Either.gen(function*() {
    const problem = yield* Validation.oneOf("problem", options.problem ?? "branin", problemNames)
    const trials = yield* Validation.positiveInt("trials", options.trials ?? 100)
    const sampler = options.sampler === undefined ? undefined : yield* Validation.oneOf("sampler", options.sampler, samplerNames)
    const pruner = options.pruner === undefined ? undefined : yield* Validation.oneOf("pruner", options.pruner, prunerNames)
    const concurrency = yield* Validation.positiveInt("concurrency", options.concurrency ?? 4)
    const seed = options.seed === undefined ? undefined : yield* Validation.int("seed", options.seed)
    const out = yield* Validation.nonEmptyString("out", options.out ?? "./study-report")
    const storage = options.storage === undefined ? undefined : yield* Validation.nonEmptyString("storage", options.storage)
    const name = options.name ?? problem
    if (typeof name !== "string" || !namePattern.test(name)) {
      return yield* Validation.invalid("name", `must be letters, digits, ".", "_" or "-" (it names the report files), got ${JSON.stringify(name)}`)
    }
    return { problem: problems[problem], trials, sampler, pruner, concurrency, seed, out, storage, name }
  })

/** Runs `use` with the study storage: in memory, or in the SQLite file (closed afterwards). */
const withStorage = <A, E, R>(
  file: string | undefined,
  use: (storage: Study.Storage) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | Storage.StorageError, R> =>
  file === undefined
    ? Effect.flatMap(Study.memoryStorage, use)
    : Effect.flatMap(Study.repositoryStorage, use).pipe(Effect.provide(SqlStore.layerSqlite({ filename: file })))

interface Counts {
  done: number
  complete: number
  pruned: number
  failed: number
}

const bar = (fraction: number, width: number): string => {
  const full = Math.round(Math.min(1, Math.max(0, fraction)) * width)
  return `${"█".repeat(full)}${"░".repeat(width - full)}`
}

/** One progress line (no newline): bar, trials done, best so far, counts by state, elapsed time. */
export const renderProgress = (
  progress: { readonly done: number; readonly total: number; readonly complete: number; readonly pruned: number; readonly failed: number },
  best: Study.TrialRecord | undefined,
  elapsedMillis: number
): string => {
  const fraction = progress.total === 0 ? 1 : progress.done / progress.total
  const width = String(progress.total).length
  const bestText = best?.value === undefined ? "best –" : `best ${Report.formatNumber(best.value)} (#${best.number})`
  return `[${bar(fraction, 24)}] ${String(progress.done).padStart(width)}/${progress.total} ` +
    `${String(Math.round(fraction * 100)).padStart(3)}%  ${bestText}  ` +
    `complete ${progress.complete}  pruned ${progress.pruned}  failed ${progress.failed}  ${(elapsedMillis / 1000).toFixed(1)} s`
}

/**
 * Runs a study on a benchmark problem, writing progress and a summary to `output` and the
 * report to `<out>/<name>.json` and `<out>/<name>.html`. Fails with `ValidationError` for bad
 * options (nothing runs then), a storage error, or a file-system error.
 */
export const run = (
  options: StudyOptions,
  output: Output
): Effect.Effect<StudyResult, ValidationError | Storage.StorageError | PlatformError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const o = yield* validate(options)
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const problem = o.problem
    if (o.storage !== undefined) yield* fs.makeDirectory(path.dirname(path.resolve(o.storage)), { recursive: true })

    const ran = yield* withStorage(o.storage, (storage) =>
      Effect.gen(function*() {
        // A stored study keeps its seed, sampler and pruner; given ones must agree with them.
        const stored = yield* storage.load(o.name)
        const storedStudy = Option.map(stored, (s) => s.study)
        const sampler = yield* pick("sampler", o.sampler, storedStudy, samplerNames, "tpe")
        const pruner = yield* pick("pruner", o.pruner, storedStudy, prunerNames, problem.defaultPruner)
        const study = yield* problem.open({
          name: o.name,
          sampler: makeSampler(sampler, problem.space),
          pruner: makePruner(pruner),
          seed: Option.isSome(stored) ? o.seed : o.seed ?? 42,
          storage
        })
        const before = yield* study.trials
        const counts: Counts = { done: 0, complete: 0, pruned: 0, failed: 0 }
        for (const t of before) count(counts, t.state)
        const resumed = before.length
        const total = Math.max(o.trials, counts.done)
        const meta = study.meta
        yield* output.write(
          `Study "${meta.name}": ${problem.name}, ${meta.direction} over ` +
            `${Object.entries(meta.space).map(([k, p]) => `${k} ∈ ${Space.describe(p)}`).join(", ")}\n` +
            `  ${o.trials} trials · ${sampler} sampler · ${pruner === "none" ? "no pruner" : `${pruner} pruner`} · ` +
            `concurrency ${o.concurrency} · seed ${meta.seed}` +
            (o.storage === undefined ? "" : ` · stored in ${o.storage}`) + "\n" +
            (resumed > 0 ? `  Resuming: ${counts.done} trials done, ${resumed - counts.done} to run again\n` : "") +
            (sampler === "grid" && Object.keys(defaultGridValues(problem.space)).length > 0
              ? `  Grid: ${gridPoints} points per float parameter\n`
              : "") +
            (pruner !== "none" && problem.steps === undefined ? `  Note: ${problem.name} reports no steps, so nothing is pruned\n` : "") +
            "\n"
        )

        const startedAt = yield* Clock.currentTimeMillis
        const state = yield* Ref.make(counts)
        const every = Math.max(1, Math.ceil(total / 10))
        const draw = (c: Counts, best: Study.TrialRecord | undefined, final: boolean) =>
          Effect.gen(function*() {
            const elapsed = (yield* Clock.currentTimeMillis) - startedAt
            const line = renderProgress({ ...c, total }, best, elapsed)
            if (output.isTTY) yield* output.write(`\r\x1b[2K${line}${final ? "\n" : ""}`)
            else if (final || c.done % every === 0) yield* output.write(`${line}\n`)
          })
        const summary = yield* study.optimize({
          trials: o.trials,
          concurrency: o.concurrency,
          onTrial: (record, best) =>
            Effect.flatMap(
              // The counts this trial ended with (a snapshot, so every tenth is printed once).
              Ref.modify(state, (c) => {
                const next = count({ ...c }, record.state)
                return [next, next]
              }),
              (c) => draw(c, best, false)
            )
        })
        const finalCounts = yield* Ref.get(state)
        // Redraw the finished bar on a terminal, or print it when the last line was not at the end.
        if (output.isTTY || finalCounts.done % every !== 0) yield* draw(finalCounts, summary.best, true)
        const trials = yield* study.trials
        return { summary, report: Report.json(meta, trials), resumed, exhausted: sampler === "grid" && trials.length < o.trials }
      }))

    const { report, summary } = ran
    yield* fs.makeDirectory(o.out, { recursive: true })
    const files = {
      json: path.resolve(o.out, `${o.name}.json`),
      html: path.resolve(o.out, `${o.name}.html`)
    }
    yield* fs.writeFileString(files.json, `${JSON.stringify(report, null, 2)}\n`)
    yield* fs.writeFileString(files.html, Report.html(report))
    yield* output.write(`\n${formatSummary(report, ran.exhausted).join("\n")}\nReport: ${files.html}\n        ${files.json}\n`)
    return { summary, report, resumed: ran.resumed, files }
  })

const count = (c: Counts, state: Study.TrialState): Counts => {
  if (state === "running") return c
  c.done++
  c[state]++
  return c
}

/** The given sampler or pruner, the stored one, or the default; a given one must match the stored one. */
const pick = <const L extends string>(
  field: "sampler" | "pruner",
  given: L | undefined,
  stored: Option.Option<Study.StudyRecord>,
  allowed: ReadonlyArray<L>,
  fallback: L
): Either.Either<L, ValidationError> => {
  if (Option.isNone(stored)) return Either.right(given ?? fallback)
  const storedName = stored.value[field]
  if (given !== undefined && given !== storedName) {
    return Either.left(
      new ValidationError({ field, reason: `the stored study "${stored.value.name}" uses "${storedName}", got "${given}"` })
    )
  }
  return Validation.oneOf(field, storedName, allowed)
}

/** The final summary as lines: counts, best value and parameters, steps saved by pruning. */
export const formatSummary = (report: Report.Report, exhausted = false): ReadonlyArray<string> => {
  const { states, trials, best } = report.summary
  const lines = [
    `${trials} trials: ${states.complete} complete, ${states.pruned} pruned, ${states.failed} failed` +
      (states.running > 0 ? `, ${states.running} running` : "") +
      (exhausted ? " (the grid is exhausted)" : "")
  ]
  if (best === null) lines.push("No trial completed.")
  else {
    lines.push(
      `Best value ${Report.formatNumber(best.value)} (trial #${best.number})`,
      `Best params ${Report.formatParams(best.params)}`
    )
  }
  const stepsRun = report.trials.reduce((n, t) => n + t.intermediate.length, 0)
  const finished = report.trials.filter((t) => t.state !== "running")
  const maxSteps = finished.reduce((m, t) => Math.max(m, t.intermediate.length), 0)
  if (states.pruned > 0 && maxSteps > 0) {
    const full = finished.length * maxSteps
    lines.push(`Pruning ran ${stepsRun} of ${full} steps (${Math.round((1 - stepsRun / full) * 100)}% saved)`)
  }
  return lines
}

// ---------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------

const optionalText = (name: string, description: string) =>
  Options.text(name).pipe(Options.optional, Options.withDescription(description))

/**
 * `foundation study [--problem branin] [--trials 100] [--sampler tpe] [--pruner none]
 * [--concurrency 4] [--seed 42] [--out ./study-report] [--storage file.db] [--name branin]`
 */
export const command = Command.make(
  "study",
  {
    problem: Options.choice("problem", problemNames).pipe(
      Options.withDefault("branin" as ProblemName),
      Options.withDescription("Benchmark problem [branin]; curves: learning curves reported step by step, with pruning")
    ),
    trials: Options.integer("trials").pipe(Options.withDefault(100), Options.withDescription("Trials the study holds at the end; a resumed study runs the rest [100]")),
    sampler: Options.choice("sampler", samplerNames).pipe(
      Options.optional,
      Options.withDescription(`Sampler [tpe]; grid uses ${gridPoints} points per float parameter`)
    ),
    pruner: Options.choice("pruner", prunerNames).pipe(
      Options.optional,
      Options.withDescription("Pruner [median for curves, none otherwise]")
    ),
    concurrency: Options.integer("concurrency").pipe(Options.withDefault(4), Options.withDescription("Trials at once [4]")),
    seed: Options.integer("seed").pipe(
      Options.optional,
      Options.withDescription("Seed of a new study [42]; a stored study keeps its own")
    ),
    out: Options.text("out").pipe(
      Options.withDefault("./study-report"),
      Options.withDescription("Directory of the report: <out>/<name>.json and <out>/<name>.html [./study-report]")
    ),
    storage: optionalText("storage", "SQLite file holding the study; a rerun with the same name resumes it [none: in memory]"),
    name: optionalText("name", "Study name, also the report's file name [the problem's name]")
  },
  (parsed) =>
    Effect.flatMap(terminalOutput, (output) =>
      Effect.asVoid(run({
        problem: parsed.problem,
        trials: parsed.trials,
        sampler: Option.getOrUndefined(parsed.sampler),
        pruner: Option.getOrUndefined(parsed.pruner),
        concurrency: parsed.concurrency,
        seed: Option.getOrUndefined(parsed.seed),
        out: parsed.out,
        storage: Option.getOrUndefined(parsed.storage),
        name: Option.getOrUndefined(parsed.name)
      }, output)))
).pipe(Command.withDescription(
  "Run a hyperparameter study on a benchmark problem: live progress, a summary, and a JSON and HTML report"
))

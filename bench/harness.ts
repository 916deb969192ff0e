/**
 * Measurement helpers for the side-by-side benchmarks: sequential calls, an adaptive number of
 * iterations per round (about 250 ms each), several rounds, the median reported. Effect
 * scenarios run in one fiber (`yield*` in a loop); promise scenarios in an `async` loop.
 * These are not tests: nothing here asserts a time.
 */
import * as Effect from "effect/Effect"

/** Which baseline a row is compared with. */
export type Baseline = "fiber" | "await" | "runPromise"

export interface Row {
  readonly group: string
  readonly name: string
  readonly baseline: Baseline
  /** Median over the rounds. */
  readonly nsPerCall: number
  /** Spread of the rounds (max / min). */
  readonly spread: number
}

export interface Settings {
  readonly rounds: number
  readonly targetMillisPerRound: number
}

export const defaults: Settings = { rounds: 5, targetMillisPerRound: 250 }

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

const iterationsFor = (nsPerCall: number, settings: Settings): number =>
  Math.max(2_000, Math.min(300_000, Math.round((settings.targetMillisPerRound * 1e6) / Math.max(nsPerCall, 1))))

const summarise = (group: string, name: string, baseline: Baseline, samples: ReadonlyArray<number>): Row => ({
  group,
  name,
  baseline,
  nsPerCall: median(samples),
  spread: Math.max(...samples) / Math.min(...samples)
})

/** Times `effect` run `n` times in a row in the current fiber; ns per run. */
const timeLoop = <A, E>(effect: Effect.Effect<A, E>, n: number): Effect.Effect<number, E> =>
  Effect.gen(function*() {
    const start = performance.now()
    for (let i = 0; i < n; i++) yield* effect
    return ((performance.now() - start) * 1e6) / n
  })

/** Measures an effect run sequentially in one fiber. */
export const measureEffect = <A, E>(
  group: string,
  name: string,
  effect: Effect.Effect<A, E>,
  settings: Settings = defaults
): Effect.Effect<Row, E> =>
  Effect.gen(function*() {
    const warm = yield* timeLoop(effect, 2_000)
    const n = iterationsFor(warm, settings)
    yield* timeLoop(effect, Math.min(n, 20_000))
    const samples: Array<number> = []
    for (let r = 0; r < settings.rounds; r++) samples.push(yield* timeLoop(effect, n))
    return summarise(group, name, "fiber", samples)
  })

/** Measures a promise-returning call awaited sequentially. */
export const measureAsync = async (
  group: string,
  name: string,
  call: () => Promise<unknown>,
  baseline: Baseline = "await",
  settings: Settings = defaults
): Promise<Row> => {
  const loop = async (n: number) => {
    const start = performance.now()
    for (let i = 0; i < n; i++) await call()
    return ((performance.now() - start) * 1e6) / n
  }
  const warm = await loop(2_000)
  const n = iterationsFor(warm, settings)
  await loop(Math.min(n, 20_000))
  const samples: Array<number> = []
  for (let r = 0; r < settings.rounds; r++) samples.push(await loop(n))
  return summarise(group, name, baseline, samples)
}

/** Formats nanoseconds for a table. */
export const ns = (x: number): string =>
  x >= 10_000 ? `${(x / 1000).toFixed(1)} µs` : x >= 1000 ? `${(x / 1000).toFixed(2)} µs` : `${x.toFixed(0)} ns`

/**
 * Benchmark problems for the optimisers in `src/ml`: pure, deterministic functions of a
 * decision vector. All are minimisation problems.
 *
 * - `zdt1` / `zdt2` (Zitzler, Deb & Thiele 2000): two objectives, n variables in [0, 1] (the
 *   usual n is 30). Pareto-optimal when x₂…xₙ = 0: ZDT1's front is f₂ = 1 − √f₁ (convex,
 *   hypervolume against (1.1, 1.1) = 1.21 − 1/3 ≈ 0.8767), ZDT2's is f₂ = 1 − f₁² (concave,
 *   hypervolume ≈ 1.21 − 2/3 ≈ 0.5433).
 * - `branin` on [−5, 10] × [0, 15]: global minimum 5/(4π) ≈ 0.397887 at (−π, 12.275),
 *   (π, 2.275) and (9.42478, 2.475). `sphere` (minimum 0 at the origin) and `rosenbrock`
 *   (minimum 0 at (1, …, 1)).
 * - `mixedObjective`: the mixed-space problem of the study benchmarks, maximised: 0 at
 *   lr = 0.01, batchSize = 64, layers = 2.
 * - `learningCurve`: a synthetic accuracy curve a·(1 − e^(−t/τ)), for pruning benchmarks.
 */

/** ZDT's g(x) = 1 + 9·Σᵢ₌₂ⁿ xᵢ / (n − 1) (1 when n = 1). */
const zdtG = (x: ReadonlyArray<number>): number => {
  if (x.length < 2) return 1
  let sum = 0
  for (let i = 1; i < x.length; i++) sum += x[i]!
  return 1 + (9 * sum) / (x.length - 1)
}

/** ZDT1: f₁ = x₁, f₂ = g·(1 − √(x₁/g)). Variables in [0, 1]; convex front. */
export const zdt1 = (x: ReadonlyArray<number>): ReadonlyArray<number> => {
  const f1 = x[0]!
  const g = zdtG(x)
  return [f1, g * (1 - Math.sqrt(f1 / g))]
}

/** ZDT2: f₁ = x₁, f₂ = g·(1 − (x₁/g)²). Variables in [0, 1]; concave front. */
export const zdt2 = (x: ReadonlyArray<number>): ReadonlyArray<number> => {
  const f1 = x[0]!
  const g = zdtG(x)
  return [f1, g * (1 - (f1 / g) ** 2)]
}

/** Branin–Hoo: (x₂ − 5.1x₁²/(4π²) + 5x₁/π − 6)² + 10(1 − 1/(8π))cos x₁ + 10 on [−5, 10] × [0, 15]. */
export const branin = (x1: number, x2: number): number => {
  const b = 5.1 / (4 * Math.PI * Math.PI)
  const c = 5 / Math.PI
  const t = 1 / (8 * Math.PI)
  return (x2 - b * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - t) * Math.cos(x1) + 10
}

/** Branin's global minimum, 5/(4π) (reached at three points). */
export const braninMinimum = 5 / (4 * Math.PI)

/** Σ xᵢ². */
export const sphere = (x: ReadonlyArray<number>): number => x.reduce((s, v) => s + v * v, 0)

/** Σ 100(xᵢ₊₁ − xᵢ²)² + (1 − xᵢ)². */
export const rosenbrock = (x: ReadonlyArray<number>): number => {
  let sum = 0
  for (let i = 0; i + 1 < x.length; i++) sum += 100 * (x[i + 1]! - x[i]! ** 2) ** 2 + (1 - x[i]!) ** 2
  return sum
}

/** −(log₁₀ lr + 2)² − ((batchSize − 64)/64)² − 0.1·|layers − 2|: maximised, 0 at (0.01, 64, 2). */
export const mixedObjective = (lr: number, batchSize: number, layers: number): number =>
  -((Math.log10(lr) + 2) ** 2) - ((batchSize - 64) / 64) ** 2 - 0.1 * Math.abs(layers - 2)

/** a·(1 − e^(−t/τ)): a synthetic learning curve rising to `a` with time constant `tau`. */
export const learningCurve = (a: number, tau: number, t: number): number => a * (1 - Math.exp(-t / tau))

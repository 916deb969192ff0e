/**
 * Benchmark problems for the optimisers in `src/ml`: pure, deterministic functions of a
 * decision vector. All are minimisation problems.
 *
 * - `zdt1` / `zdt2` (Zitzler, Deb & Thiele 2000): two objectives, n variables in [0, 1] (the
 *   usual n is 30). Pareto-optimal when x₂…xₙ = 0: ZDT1's front is f₂ = 1 − √f₁ (convex,
 *   hypervolume against (1.1, 1.1) = 1.21 − 1/3 ≈ 0.8767), ZDT2's is f₂ = 1 − f₁² (concave,
 *   hypervolume ≈ 1.21 − 2/3 ≈ 0.5433).
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

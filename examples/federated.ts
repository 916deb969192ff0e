// examples/federated.ts — FedAvg: four clients with non-IID slices of y = 2x + 1 learn (w, b) together
import { Effect } from "effect"
import { Federated } from "effect-foundation"

/** A client holding `xs` (labels y = 2x + 1) that takes `steps` full-batch gradient steps on its MSE. */
export const linearClient = (id: string, xs: ReadonlyArray<number>, lr = 0.1, steps = 1): Federated.Client => ({
  id,
  fit: (global, { mu }) =>
    Effect.sync(() => {
      let w = Float64Array.from(global)
      for (let s = 0; s < steps; s++) {
        let gw = 0, gb = 0
        for (const x of xs) {
          const err = w[0]! * x + w[1]! - (2 * x + 1)
          gw += (err * x) / xs.length
          gb += err / xs.length
        }
        const grad = Federated.proximalGradient([gw, gb], w, global, mu) // FedProx term (0 when mu = 0)
        w = w.map((v, i) => v - lr * grad[i]!)
      }
      return { params: w, numExamples: xs.length }
    })
})

/** n evenly spaced points of [lo, hi). */
export const range = (lo: number, hi: number, n: number) => Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / n)

export const program = Effect.gen(function*() {
  const slices = [range(-2, -1, 10), range(-1, 0, 20), range(0, 1, 30), range(1, 2, 40)] // non-IID, 10/20/30/40 points
  const result = yield* Federated.run({
    initial: [0, 0],
    clients: slices.map((xs, k) => linearClient(`client-${k}`, xs, 0.3)),
    rounds: 100,
    fraction: 0.5, // two of the four clients per round, drawn from the seed
    seed: 7
  })
  const [w, b] = Array.from(result.params, (p) => Number(p.toFixed(3)))
  return { w, b, rounds: result.history.length, firstRound: result.history[0]!.selected }
})

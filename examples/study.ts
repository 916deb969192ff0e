// examples/study.ts — hyperparameter search: TPE with median pruning over a mixed space
import { Effect } from "effect"
import { Study } from "effect-foundation"

// A stand-in for training: the score climbs towards a ceiling set by the hyperparameters.
const ceiling = (p: { lr: number; batchSize: number; layers: number }) =>
  1 - (Math.log10(p.lr) + 2) ** 2 / 4 - ((p.batchSize - 64) / 128) ** 2 - 0.05 * Math.abs(p.layers - 2)

export const program = Effect.gen(function*() {
  const study = yield* Study.make({
    space: {
      lr: Study.float(1e-4, 1e-1, { log: true }),
      batchSize: Study.categorical([16, 32, 64, 128]),
      layers: Study.int(1, 4)
    },
    direction: "maximize",
    sampler: Study.tpe(), // 10 random start-up trials, then TPE
    pruner: Study.median(), // stop a trial whose curve is below the median at the same epoch
    seed: 7 // the same seed gives the same trials, at any concurrency
  })
  const summary = yield* study.optimize((trial) =>
    Effect.gen(function*() {
      let score = 0
      for (let epoch = 1; epoch <= 10; epoch++) {
        score = ceiling(trial.params) * (1 - Math.exp(-epoch / 3))
        yield* trial.report(score, epoch) // fails with TrialPrunedError when the pruner says stop
      }
      return score
    }), { trials: 60, concurrency: 4, timeoutPerTrial: "1 minute", retries: 1 })
  const best = summary.best!
  return {
    states: summary.states,
    bestLr: Number((best.params["lr"] as number).toPrecision(1)),
    bestBatchSize: best.params["batchSize"],
    bestScore: Number(best.value!.toFixed(2))
  }
})

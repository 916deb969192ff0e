import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Option, Random, TestClock } from "effect"
import * as Example from "../../examples/federated.js"
import { ValidationError } from "../../src/errors/FoundationError.js"
import * as Federated from "../../src/ml/Federated.js"

const { linearClient, range } = Example

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** The field a failed effect's ValidationError names. */
const fieldOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.flip(effect), (e) => {
    expect(e).toBeInstanceOf(ValidationError)
    return (e as ValidationError).field
  })

// The benchmark problem: y = 2x + 1 over four clients with disjoint x ranges and 10/20/30/40 points.
const slices = [range(-2, -1, 10), range(-1, 0, 20), range(0, 1, 30), range(1, 2, 40)]
const pooled = slices.flat()

/** Centralized full-batch gradient descent on the pooled data, written independently of the clients. */
const centralizedGD = (steps: number, lr: number): [number, number] => {
  let w = 0, b = 0
  for (let s = 0; s < steps; s++) {
    let gw = 0, gb = 0
    for (const x of pooled) {
      const err = w * x + b - (2 * x + 1)
      gw += err * x
      gb += err
    }
    w -= (lr * gw) / pooled.length
    b -= (lr * gb) / pooled.length
  }
  return [w, b]
}

/** A client that returns the global model unchanged (Δ = 0), or `params(global)` when given. */
const constant = (
  id: string,
  numExamples = 1,
  params?: (global: Float64Array) => ReadonlyArray<number>
): Federated.Client => ({
  id,
  fit: (global) => Effect.succeed({ params: params === undefined ? global : params(global), numExamples })
})

describe("pure aggregation", () => {
  it("l2norm, clip", () => {
    expect(Federated.l2norm([3, 4])).toBe(5)
    expect(Federated.l2norm([])).toBe(0)
    const unit = Federated.clip([3, 4], 1)
    expect(unit[0]).toBeCloseTo(0.6, 15)
    expect(unit[1]).toBeCloseTo(0.8, 15)
    expect(Federated.l2norm(Federated.clip([30, 40], 5))).toBeCloseTo(5, 12)
    expect(Array.from(Federated.clip([1, 1], 5))).toEqual([1, 1]) // within the bound: unchanged
    expect(Array.from(Federated.clip([0, 0], 5))).toEqual([0, 0])
    const input = [30, 40]
    Federated.clip(input, 1)
    expect(input).toEqual([30, 40]) // a copy, never in place
  })

  it("fedAvg is the numExamples-weighted mean", () => {
    const avg = Federated.fedAvg([
      { params: [0, 10], numExamples: 1 },
      { params: [4, 0], numExamples: 3 }
    ])
    expect(Array.from(avg)).toEqual([3, 2.5])
    expect(Array.from(Federated.fedAvg([{ params: [1, 2], numExamples: 7 }]))).toEqual([1, 2])
    expect(Federated.fedAvg([]).length).toBe(0)
  })

  it("proximalGradient adds μ(w − w_global); μ = 0 returns the gradient itself", () => {
    expect(Array.from(Federated.proximalGradient([1, 2], [5, 5], [3, 6], 0.5))).toEqual([2, 1.5])
    expect(Array.from(Federated.proximalGradient([1, 2], [5, 5], [3, 6], 0))).toEqual([1, 2])
    expect(Federated.proximalTerm([5, 5], [3, 6], 2)).toBe(5) // (2/2)·(4 + 1)
    expect(Number.isNaN(Federated.proximalGradient([1, 2], [5], [3], 1)[1])).toBe(true) // never a wrong number
  })

  it("sampleSize = max(minClients, ceil(fraction·n)), ceil robust to float error", () => {
    expect(Federated.sampleSize(10, 0.5, 1)).toBe(5)
    expect(Federated.sampleSize(10, 0.25, 1)).toBe(3)
    expect(Federated.sampleSize(30, 0.1, 1)).toBe(3) // 0.1·30 = 3.0000000000000004 in floating point
    expect(Federated.sampleSize(10, 0.1, 4)).toBe(4)
    expect(Federated.sampleSize(4, 1, 1)).toBe(4)
  })
})

describe("Federated.run: FedAvg = centralized GD", () => {
  it.effect("one full-batch step per client, weighted by numExamples, matches pooled GD to 1e-9", () =>
    Effect.gen(function*() {
      const lr = 0.1
      for (const rounds of [1, 5, 25]) {
        const result = yield* Federated.run({
          initial: [0, 0],
          clients: slices.map((xs, k) => linearClient(`c${k}`, xs, lr)),
          rounds
        })
        const [w, b] = centralizedGD(rounds, lr)
        expect(Math.abs(result.params[0]! - w)).toBeLessThan(1e-9)
        expect(Math.abs(result.params[1]! - b)).toBeLessThan(1e-9)
        expect(result.history.map((h) => h.totalExamples)).toEqual(Array(rounds).fill(100))
      }
    }))

  it.effect("uniform weights (the original's 1/n) would not match: the weighting matters", () =>
    Effect.gen(function*() {
      const lr = 0.1
      const result = yield* Federated.run({
        initial: [0, 0],
        // Every client claims the same count: this is the unweighted mean.
        clients: slices.map((xs, k) => {
          const inner = linearClient(`c${k}`, xs, lr)
          return { id: inner.id, fit: (p, c) => Effect.map(inner.fit(p, c), (r) => ({ ...r, numExamples: 1 })) }
        }),
        rounds: 5
      })
      const [w] = centralizedGD(5, lr)
      expect(Math.abs(result.params[0]! - w)).toBeGreaterThan(1e-3)
    }))

  it.effect("converges to y = 2x + 1", () =>
    Effect.gen(function*() {
      const result = yield* Federated.run({
        initial: [0, 0],
        clients: slices.map((xs, k) => linearClient(`c${k}`, xs, 0.3)),
        rounds: 200
      })
      expect(result.params[0]).toBeCloseTo(2, 6)
      expect(result.params[1]).toBeCloseTo(1, 6)
    }))
})

describe("Federated.run: FedProx", () => {
  const clients = (steps: number) => slices.map((xs, k) => linearClient(`c${k}`, xs, 0.2, steps))

  it.effect("mu = 0 is FedAvg exactly (bit for bit), with several local steps", () =>
    Effect.gen(function*() {
      const fedavg = yield* Federated.run({ initial: [0, 0], clients: clients(5), rounds: 10 })
      const prox0 = yield* Federated.run({ initial: [0, 0], clients: clients(5), rounds: 10, mu: 0 })
      expect(Array.from(prox0.params)).toEqual(Array.from(fedavg.params))
    }))

  it.effect("mu > 0 with several local steps differs and keeps each client closer to the global model", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      const recordMu = clients(5).map((c): Federated.Client => ({
        id: c.id,
        fit: (p, config) => (seen.push(config.mu), c.fit(p, config))
      }))
      const fedavg = yield* Federated.run({ initial: [0, 0], clients: clients(5), rounds: 3 })
      const prox = yield* Federated.run({ initial: [0, 0], clients: recordMu, rounds: 3, mu: 1 })
      expect(seen).toEqual(Array(12).fill(1)) // mu reaches every client in every round
      expect(Math.abs(prox.params[0]! - fedavg.params[0]!)).toBeGreaterThan(1e-3)
      // Round 1 starts from the same global model in both runs: every client drifts less with mu > 0.
      const drift = (r: Federated.Result) => r.history[0]!.updates.map((u) => u.updateNorm)
      const plain = drift(fedavg)
      drift(prox).forEach((d, k) => expect(d).toBeLessThan(plain[k]!))
      expect(prox.history[0]!.updateNorm).toBeLessThan(fedavg.history[0]!.updateNorm)
    }))
})

describe("Federated.run: client sampling", () => {
  const counting = (n: number) => {
    const calls = new Map<string, number>()
    const clients = Array.from({ length: n }, (_, i): Federated.Client => ({
      id: `c${i}`,
      fit: (p) => Effect.sync(() => (calls.set(`c${i}`, (calls.get(`c${i}`) ?? 0) + 1), { params: p, numExamples: 1 }))
    }))
    return { calls, clients }
  }

  it.effect("selects max(minClients, ceil(fraction·n)) distinct clients, and only those train", () =>
    Effect.gen(function*() {
      const { calls, clients } = counting(10)
      const result = yield* Federated.run({ initial: [0], clients, rounds: 20, fraction: 0.3, seed: 1 })
      for (const h of result.history) {
        expect(h.selected.length).toBe(3)
        expect(new Set(h.selected).size).toBe(3)
        expect([...h.selected].sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))).toEqual(h.selected) // client order
      }
      expect([...calls.values()].reduce((a, b) => a + b, 0)).toBe(60)
      expect(calls.size).toBeGreaterThan(3) // not always the same three
      const withMin = yield* Federated.run({ initial: [0], clients, rounds: 3, fraction: 0.1, minClients: 6, seed: 1 })
      expect(withMin.history.map((h) => h.selected.length)).toEqual([6, 6, 6])
    }))

  it.effect("the same seed gives the same selections; another seed gives others", () =>
    Effect.gen(function*() {
      const { clients } = counting(10)
      const run = (seed: number) => Federated.run({ initial: [0], clients, rounds: 10, fraction: 0.5, seed })
      const a = (yield* run(42)).history.map((h) => h.selected)
      const b = (yield* run(42)).history.map((h) => h.selected)
      const c = (yield* run(43)).history.map((h) => h.selected)
      expect(a).toEqual(b)
      expect(c).not.toEqual(a)
    }))

  it.effect("a client drawing from Random does not shift the server's seeded draws", () =>
    Effect.gen(function*() {
      const { clients } = counting(10)
      const noisy = clients.map((c): Federated.Client => ({
        id: c.id,
        fit: (p, config) => Effect.zipRight(Effect.randomWith((r) => r.next), c.fit(p, config))
      }))
      const plain = yield* Federated.run({ initial: [0], clients, rounds: 5, fraction: 0.5, seed: 9 })
      const drawing = yield* Federated.run({ initial: [0], clients: noisy, rounds: 5, fraction: 0.5, seed: 9 })
      expect(drawing.history.map((h) => h.selected)).toEqual(plain.history.map((h) => h.selected))
    }))
  it.effect("each client draws from its own Random: reproducible from the seed, whatever the concurrency (review fix)", () =>
    Effect.gen(function*() {
      // Each client yields a different number of times before drawing, so with concurrency the
      // clients reach Random in another order than sequentially.
      const drawing = Array.from({ length: 4 }, (_, i): Federated.Client => ({
        id: `c${i}`,
        fit: (p) =>
          Effect.gen(function*() {
            for (let k = 0; k < (4 - i) * 3; k++) yield* Effect.yieldNow()
            const r = yield* Random.next
            return { params: p, numExamples: 1, metrics: { r } }
          })
      }))
      const draws = (concurrency: number | "unbounded", seed = 7) =>
        Effect.map(
          Federated.run({ initial: [0], clients: drawing, rounds: 3, seed, concurrency }),
          (result) => result.history.map((h) => h.updates.map((u) => u.metrics!["r"]!))
        )
      const sequential = yield* draws(1)
      expect(yield* draws(1)).toEqual(sequential) // the same seed: the same client draws
      expect(yield* draws("unbounded")).toEqual(sequential) // whatever the scheduling
      expect(yield* draws(2)).toEqual(sequential)
      expect(new Set(sequential.flat()).size).toBe(12) // distinct per client and per round
      expect(yield* draws(1, 8)).not.toEqual(sequential)
      // Without a seed, the ambient Random decides, once, at the start.
      const ambient = (concurrency: number | "unbounded") =>
        Effect.withRandom(
          Effect.map(Federated.run({ initial: [0], clients: drawing, rounds: 2, concurrency }), (r) =>
            r.history.map((h) => h.updates.map((u) => u.metrics!["r"]!))),
          Random.make(3)
        )
      expect(yield* ambient("unbounded")).toEqual(yield* ambient(1))
      // evaluate is seeded per round as well
      const evals = Effect.map(
        Federated.run({ initial: [0], clients: drawing, rounds: 2, seed: 7, evaluate: () => Random.next }),
        (r) => [r.initialEvaluation, ...r.history.map((h) => h.evaluation)]
      )
      const e1 = yield* evals
      expect(yield* evals).toEqual(e1)
      expect(new Set(e1.map((e) => e?.status === "ok" ? e.metrics : undefined)).size).toBe(3)
    }))
})

describe("Federated.run: failure tolerance", () => {
  const failing = (id: string, fromRound = 1): Federated.Client<{}, string> => ({
    id,
    fit: (p, { round }) => round >= fromRound ? Effect.fail(`boom ${id}`) : Effect.succeed({ params: p, numExamples: 1 })
  })
  const good = (id: string, target: number, numExamples: number): Federated.Client<{}, string> =>
    constant(id, numExamples, () => [target])

  it.effect("up to acceptFailures failed clients are recorded and the others are aggregated", () =>
    Effect.gen(function*() {
      const result = yield* Federated.run({
        initial: [0],
        clients: [good("a", 10, 1), failing("b"), good("c", 20, 3)],
        rounds: 2,
        acceptFailures: 1
      })
      expect(result.params[0]).toBe(17.5) // (1·10 + 3·20) / 4, b left out
      const h = result.history[0]!
      expect(h.selected).toEqual(["a", "b", "c"])
      expect(h.updates.map((u) => u.clientId)).toEqual(["a", "c"])
      expect(h.totalExamples).toBe(4)
      expect(h.failures).toHaveLength(1)
      const failure = h.failures[0]!
      expect(failure.clientId).toBe("b")
      expect(failure.reason).toBe("error")
      if (failure.reason === "error") expect(Option.getOrUndefined(Cause.failureOption(failure.cause))).toBe("boom b")
    }))

  it.effect("k + 1 failures fail the round with RoundFailedError(round, failures, history)", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Federated.run({
        initial: [0],
        clients: [good("a", 10, 1), failing("b", 3), failing("c", 3), good("d", 20, 1)],
        rounds: 5,
        acceptFailures: 1
      }))
      const error = failureOf(exit)
      expect(error).toBeInstanceOf(Federated.RoundFailedError)
      if (!(error instanceof Federated.RoundFailedError)) return
      expect(error.round).toBe(3)
      expect(error.failures.map((f) => f.clientId)).toEqual(["b", "c"])
      expect(error.succeeded).toBe(2)
      expect(error.history.map((h) => h.round)).toEqual([1, 2])
      // The last good model is the one after round 2: round 1 averages 10, 0, 0, 20 → 7.5;
      // round 2 averages 10, 7.5, 7.5, 20 → 11.25.
      expect(Array.from(error.params)).toEqual([11.25])
      expect(error.message).toContain("round 3")
    }))

  it.effect("with acceptFailures = 0 (the default) one failure fails the round", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Federated.run({ initial: [0], clients: [good("a", 1, 1), failing("b")], rounds: 1 }))
      expect(error._tag).toBe("RoundFailedError")
    }))

  it.effect("fewer than minClients successes fail the round even within acceptFailures", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Federated.run({
        initial: [0],
        clients: [good("a", 1, 1), good("b", 1, 1), failing("c"), good("d", 1, 1)],
        rounds: 1,
        minClients: 4,
        acceptFailures: 2
      }))
      expect(error._tag).toBe("RoundFailedError")
      if (error._tag === "RoundFailedError") expect([error.succeeded, error.minClients]).toEqual([3, 4])
    }))

  it.effect("a defect in a client is recorded like a failure", () =>
    Effect.gen(function*() {
      const dying: Federated.Client = { id: "x", fit: () => Effect.die("kaput") }
      const result = yield* Federated.run({ initial: [0], clients: [good("a", 4, 1), dying], rounds: 1, acceptFailures: 1 })
      expect(result.params[0]).toBe(4)
      const f = result.history[0]!.failures[0]!
      expect(f.reason === "error" && Cause.isDie(f.cause)).toBe(true)
    }))

  it.effect("an invalid update is rejected as that client's failure, naming the field", () =>
    Effect.gen(function*() {
      const clients = [
        good("ok", 6, 2),
        constant("short", 1, () => [1, 2, 3]),
        constant("nan", 1, () => [NaN]),
        constant("zero", 0),
        constant("negative", -3)
      ]
      const result = yield* Federated.run({ initial: [0], clients, rounds: 1, acceptFailures: 4 })
      expect(result.params[0]).toBe(6)
      const failures = result.history[0]!.failures
      expect(failures.map((f) => [f.clientId, f.reason])).toEqual([
        ["short", "invalidUpdate"],
        ["nan", "invalidUpdate"],
        ["zero", "invalidUpdate"],
        ["negative", "invalidUpdate"]
      ])
      expect(failures.map((f) => f.reason === "invalidUpdate" ? f.error.field : "")).toEqual([
        `clients["short"].params`,
        `clients["nan"].params[0]`,
        `clients["zero"].numExamples`,
        `clients["negative"].numExamples`
      ])
      // With the default acceptFailures = 0 the same bad update fails the round.
      const error = yield* Effect.flip(Federated.run({ initial: [0], clients: clients.slice(0, 2), rounds: 1 }))
      expect(error._tag).toBe("RoundFailedError")
    }))

  it.effect("a client over clientTimeout is interrupted and recorded as a timeout (TestClock)", () =>
    Effect.gen(function*() {
      let interrupted = false
      const slow: Federated.Client = {
        id: "slow",
        fit: (p) =>
          Effect.sleep("10 seconds").pipe(
            Effect.as({ params: p, numExamples: 1 }),
            Effect.onInterrupt(() => Effect.sync(() => (interrupted = true)))
          )
      }
      const fast: Federated.Client = {
        id: "fast",
        fit: () => Effect.as(Effect.sleep("200 millis"), { params: [3], numExamples: 1 })
      }
      const fiber = yield* Effect.fork(Federated.run({
        initial: [0],
        clients: [slow, fast],
        rounds: 1,
        clientTimeout: "1 second",
        acceptFailures: 1
      }))
      yield* TestClock.adjust("999 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      const result = yield* Fiber.join(fiber)
      expect(interrupted).toBe(true)
      expect(result.params[0]).toBe(3)
      const h = result.history[0]!
      expect(h.failures.map((f) => [f.clientId, f.reason])).toEqual([["slow", "timeout"]])
      expect(h.durationMillis).toBe(1000)
      // Without acceptFailures the timeout fails the round.
      const strict = yield* Effect.fork(Effect.flip(Federated.run({
        initial: [0],
        clients: [slow, fast],
        rounds: 1,
        clientTimeout: "1 second"
      })))
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(strict)
      expect(error._tag).toBe("RoundFailedError")
    }))
})

describe("Federated.run: clipping and noise", () => {
  it.effect("each update is clipped to clipNorm before averaging; the aggregate update is within it", () =>
    Effect.gen(function*() {
      const one = yield* Federated.run({
        initial: [1, 1],
        clients: [constant("a", 1, (g) => [g[0]! + 30, g[1]! + 40])],
        rounds: 1,
        clipNorm: 5
      })
      expect(one.params[0]).toBeCloseTo(4, 12)
      expect(one.params[1]).toBeCloseTo(5, 12)
      expect(one.history[0]!.updates[0]).toMatchObject({ updateNorm: 50, clipped: true })
      expect(one.history[0]!.updateNorm).toBeCloseTo(5, 12)
      const many = yield* Federated.run({
        initial: [0, 0, 0],
        clients: [
          constant("a", 5, () => [100, 0, 0]),
          constant("b", 1, () => [0, -300, 7]),
          constant("c", 2, () => [0.1, 0.1, 0.1]) // small: left alone
        ],
        rounds: 4,
        clipNorm: 2
      })
      for (const h of many.history) expect(h.updateNorm).toBeLessThanOrEqual(2 + 1e-12)
      expect(many.history[0]!.updates.map((u) => u.clipped)).toEqual([true, true, false])
      // Without clipping, the same first round moves the model by ‖(500.2, −299.8, 7.2)/8‖ ≈ 72.9.
      const unclipped = yield* Federated.run({
        initial: [0, 0, 0],
        clients: [constant("a", 5, () => [100, 0, 0]), constant("b", 1, () => [0, -300, 7]), constant("c", 2, () => [0.1, 0.1, 0.1])],
        rounds: 1
      })
      expect(unclipped.history[0]!.updateNorm).toBeGreaterThan(70)
    }))

  it.effect("noise is N(0, (σ·C/m)²) per coordinate, reproducible from the seed", () =>
    Effect.gen(function*() {
      const dim = 20_000
      const sigma = 1.5
      const C = 2
      const clients = ["a", "b", "c", "d"].map((id) => constant(id, 1)) // Δ = 0: the step is pure noise
      const run = (seed: number) =>
        Federated.run({ initial: new Float64Array(dim), clients, rounds: 1, clipNorm: C, noiseMultiplier: sigma, seed })
      const a = yield* run(5)
      const b = yield* run(5)
      const c = yield* run(6)
      expect(Array.from(a.params)).toEqual(Array.from(b.params))
      expect(Array.from(c.params)).not.toEqual(Array.from(a.params))
      const mean = a.params.reduce((s, v) => s + v, 0) / dim
      const std = Math.sqrt(a.params.reduce((s, v) => s + (v - mean) ** 2, 0) / (dim - 1))
      const expected = (sigma * C) / clients.length // 0.75
      expect(Math.abs(std - expected) / expected).toBeLessThan(0.1)
      expect(Math.abs(std - expected) / expected).toBeLessThan(0.03) // 20k samples: far tighter in fact
      expect(Math.abs(mean)).toBeLessThan(0.05)
      // Clipping alone adds nothing random.
      const clipOnly = yield* Federated.run({ initial: new Float64Array(10), clients, rounds: 1, clipNorm: C })
      expect(Array.from(clipOnly.params)).toEqual(Array(10).fill(0))
    }))
  it.effect("with unequal weights the noise covers the heaviest client's share: σ·C·max nₖ/Σnₖ (review fix)", () =>
    Effect.gen(function*() {
      // One client holds 5 of the 8 examples: changing its clipped update moves the weighted
      // average by up to C·5/8, not C/4, so σ·C/4 noise would give it far less protection.
      expect(Federated.dpWeight([{ numExamples: 1 }, { numExamples: 1 }, { numExamples: 1 }, { numExamples: 5 }])).toBe(5 / 8)
      expect(Federated.dpWeight([{ numExamples: 3 }, { numExamples: 3 }])).toBe(1 / 2)
      const dim = 20_000
      const sigma = 1.5
      const C = 2
      const clients = [constant("a", 1), constant("b", 1), constant("c", 1), constant("d", 5)] // Δ = 0: pure noise
      const result = yield* Federated.run({ initial: new Float64Array(dim), clients, rounds: 1, clipNorm: C, noiseMultiplier: sigma, seed: 5 })
      const mean = result.params.reduce((s, v) => s + v, 0) / dim
      const std = Math.sqrt(result.params.reduce((s, v) => s + (v - mean) ** 2, 0) / (dim - 1))
      const expected = sigma * C * (5 / 8) // 1.875; the old σ·C/m gave 0.75
      expect(Math.abs(std - expected) / expected).toBeLessThan(0.03)
    }))
})

describe("Federated.run: config, evaluation and history", () => {
  it.effect("clients get the round, mu and configureRound's fields; history records metrics and evaluations", () =>
    Effect.gen(function*() {
      const configs: Array<unknown> = []
      const client = (id: string, numExamples: number, loss: number): Federated.Client<{ lr: number; round: string }> => ({
        id,
        fit: (p, config) =>
          Effect.sync(() => {
            configs.push({ id, ...config })
            return { params: [p[0]! + config.lr], numExamples, metrics: { loss: loss * config.round } }
          })
      })
      const evaluated: Array<[number, number]> = []
      const result = yield* Federated.run({
        initial: [0],
        clients: [client("a", 1, 1), client("b", 3, 2)],
        rounds: 2,
        mu: 0.25,
        configureRound: (round) => ({ lr: round / 10, round: "ignored" }),
        evaluate: (params, round) => Effect.sync(() => (evaluated.push([round, params[0]!]), { value: params[0]! * 10 }))
      })
      expect(configs).toEqual([
        { id: "a", lr: 0.1, round: 1, mu: 0.25 },
        { id: "b", lr: 0.1, round: 1, mu: 0.25 },
        { id: "a", lr: 0.2, round: 2, mu: 0.25 },
        { id: "b", lr: 0.2, round: 2, mu: 0.25 }
      ])
      expect(evaluated.map(([r]) => r)).toEqual([0, 1, 2])
      expect(result.initialEvaluation).toEqual({ status: "ok", metrics: { value: 0 } })
      expect(result.params[0]).toBeCloseTo(0.3, 12)
      const [h1, h2] = result.history
      expect(h1!.round).toBe(1)
      expect(h1!.selected).toEqual(["a", "b"])
      expect(h1!.totalExamples).toBe(4)
      expect(h1!.fitMetrics.loss).toBeCloseTo((1 * 1 + 3 * 2) / 4, 12) // weighted by numExamples
      expect(h2!.fitMetrics.loss).toBeCloseTo((1 * 2 + 3 * 4) / 4, 12)
      expect(h1!.updates.map((u) => [u.clientId, u.numExamples, u.metrics])).toEqual([
        ["a", 1, { loss: 1 }],
        ["b", 3, { loss: 2 }]
      ])
      expect(h1!.evaluation?.status).toBe("ok")
      if (h2!.evaluation?.status === "ok") expect(h2!.evaluation.metrics.value).toBeCloseTo(3, 12)
      expect(h1!.failures).toEqual([])
      expect(h1!.durationMillis).toBe(0) // nothing slept on the TestClock
    }))

  it.effect("round duration comes from the Clock and includes the slowest client and the evaluation", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Federated.run({
        initial: [0],
        clients: [1, 3].map((s) => ({
          id: `s${s}`,
          fit: (p: Float64Array) => Effect.as(Effect.sleep(`${s} seconds`), { params: p, numExamples: 1 })
        })),
        rounds: 2,
        evaluate: () => Effect.as(Effect.sleep("500 millis"), "done")
      }))
      yield* TestClock.adjust("10 seconds")
      const result = yield* Fiber.join(fiber)
      expect(result.history.map((h) => h.durationMillis)).toEqual([3500, 3500])
    }))

  it.effect("a failing evaluate is recorded, not fatal", () =>
    Effect.gen(function*() {
      const result = yield* Federated.run({
        initial: [0],
        clients: [constant("a")],
        rounds: 2,
        evaluate: (_, round) => round === 1 ? Effect.fail("eval down") : Effect.succeed(round)
      })
      expect(result.history[0]!.evaluation?.status).toBe("failed")
      expect(result.history[1]!.evaluation).toEqual({ status: "ok", metrics: 2 })
      expect(result.history[0]!.evaluation).not.toHaveProperty("metrics")
    }))

  it.effect("clients get private copies: mutating the input or the returned array changes nothing else", () =>
    Effect.gen(function*() {
      const received: Array<Array<number>> = []
      let returned: Array<number> = []
      const vandal: Federated.Client = {
        id: "vandal",
        fit: (p) =>
          Effect.sync(() => {
            received.push(Array.from(p))
            p.fill(1e9)
            returned = [1, 1]
            return { params: returned, numExamples: 1 }
          })
      }
      const initial = [5, 5]
      const observer: Federated.Client = {
        id: "observer",
        fit: (p) => Effect.sync(() => (received.push(Array.from(p)), { params: Array.from(p), numExamples: 1 }))
      }
      const fiber = yield* Effect.fork(Federated.run({ initial, clients: [vandal, observer], rounds: 1, concurrency: 1 }))
      const result = yield* Fiber.join(fiber)
      returned[0] = 1e9 // after the run: must not reach the server's model
      expect(received).toEqual([[5, 5], [5, 5]])
      expect(Array.from(result.params)).toEqual([3, 3])
      expect(initial).toEqual([5, 5])
    }))
})

describe("Federated.run: concurrency and interruption", () => {
  it.effect("at most `concurrency` clients train at once", () =>
    Effect.gen(function*() {
      let running = 0
      let peak = 0
      const clients = Array.from({ length: 6 }, (_, i): Federated.Client => ({
        id: `c${i}`,
        fit: (p) =>
          Effect.acquireUseRelease(
            Effect.sync(() => (peak = Math.max(peak, ++running))),
            () => Effect.as(Effect.sleep("1 second"), { params: p, numExamples: 1 }),
            () => Effect.sync(() => running--)
          )
      }))
      const fiber = yield* Effect.fork(Federated.run({ initial: [0], clients, rounds: 1, concurrency: 2 }))
      yield* TestClock.adjust("1 second")
      expect(peak).toBe(2)
      yield* TestClock.adjust("2 seconds")
      const result = yield* Fiber.join(fiber)
      expect(result.history[0]!.durationMillis).toBe(3000) // three waves of two
      expect(running).toBe(0)
      peak = 0
      const all = yield* Effect.fork(Federated.run({ initial: [0], clients, rounds: 1 }))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(all)
      expect(peak).toBe(6) // default: all selected clients at once
    }))

  it.effect("interrupting the run interrupts every client in flight; nothing keeps running", () =>
    Effect.gen(function*() {
      let started = 0
      let interrupted = 0
      const clients = Array.from({ length: 4 }, (_, i): Federated.Client => ({
        id: `c${i}`,
        fit: () =>
          Effect.zipRight(
            Effect.sync(() => started++),
            Effect.onInterrupt(Effect.never, () => Effect.sync(() => interrupted++))
          )
      }))
      const fiber = yield* Effect.fork(Federated.run({ initial: [0], clients, rounds: 3 }))
      yield* TestClock.adjust("1 second")
      expect(started).toBe(4)
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(interrupted).toBe(4)
    }))
})

describe("Federated.run: validation", () => {
  it.effect("bad options fail with a ValidationError naming the field, before any client runs", () =>
    Effect.gen(function*() {
      let calls = 0
      const client = (id: string): Federated.Client => ({
        id,
        fit: (p) => Effect.sync(() => (calls++, { params: p, numExamples: 1 }))
      })
      const clients = [client("a"), client("b")]
      const base = { initial: [0, 0], clients, rounds: 2 }
      const cases: Array<[string, Partial<Federated.Options<{}, never, never, never, never, never>>]> = [
        ["initial", { initial: [] }],
        ["initial[1]", { initial: [0, NaN] }],
        ["clients", { clients: [] }],
        ["clients[1].id", { clients: [client("a"), client("a")] }],
        ["clients[0].id", { clients: [client("")] }],
        ["rounds", { rounds: 0 }],
        ["rounds", { rounds: 1.5 }],
        ["fraction", { fraction: 0 }],
        ["fraction", { fraction: 1.5 }],
        ["fraction", { fraction: NaN }],
        ["minClients", { minClients: 0 }],
        ["minClients", { minClients: 3 }],
        ["acceptFailures", { acceptFailures: -1 }],
        ["clientTimeout", { clientTimeout: -5 }],
        ["mu", { mu: -0.1 }],
        ["clipNorm", { clipNorm: 0 }],
        ["noiseMultiplier", { noiseMultiplier: -1, clipNorm: 1 }],
        ["noiseMultiplier", { noiseMultiplier: 1 }],
        ["concurrency", { concurrency: 0 }],
        ["seed", { seed: 1.5 }]
      ]
      for (const [field, patch] of cases) {
        expect(yield* fieldOf(Federated.run({ ...base, ...patch }))).toBe(field)
      }
      expect(calls).toBe(0)
    }))
})

describe("examples/federated.ts", () => {
  it.effect("learns y = 2x + 1 from two sampled clients per round", () =>
    Effect.gen(function*() {
      expect(yield* Example.program).toEqual({ w: 2, b: 1, rounds: 100, firstRound: ["client-0", "client-2"] })
    }))
})

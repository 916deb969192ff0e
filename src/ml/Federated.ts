/**
 * Federated learning: a server loop over rounds that samples clients, lets them train locally
 * (concurrently), and aggregates their parameter vectors with FedAvg (McMahan et al. 2017),
 * optionally with FedProx (Li et al. 2020) and DP-style update clipping plus Gaussian noise.
 *
 * Guarantees:
 * - FedAvg is real arithmetic: the new global model is Σ nₖ·wₖ / Σ nₖ over the clients that
 *   succeeded (nₖ = their `numExamples`), in client order, so it never depends on completion order.
 *   With one full-batch gradient step per client it equals centralized gradient descent on the
 *   pooled data (see the tests).
 * - Sampling: each round selects `max(minClients, ceil(fraction·n))` distinct clients, drawn from
 *   Effect's `Random` (a private `Random.make(seed)` with `seed`, else the ambient service), so a
 *   seed reproduces the selection and the noise.
 * - Clients' randomness is reproducible too: each `fit` runs with its own `Random`, seeded from
 *   (run seed, round, client id) — the run seed being `seed`, else one draw from the ambient
 *   `Random` at the start — so what a client draws depends neither on the concurrency nor on how
 *   the clients were scheduled, and never shifts the server's draws. `evaluate` likewise runs
 *   with a `Random` seeded from (run seed, round).
 * - Failure tolerance: a client that fails, dies, times out (`clientTimeout`) or returns an invalid
 *   update (wrong length, non-finite values, `numExamples` not > 0) is recorded as a failure of that
 *   client only. The round fails with `RoundFailedError` (round, failures, history so far) when more
 *   than `acceptFailures` clients fail or fewer than `minClients` succeed.
 * - FedProx is client side: the server passes `mu` in each client's config and `proximalGradient`
 *   adds μ(w − w_global) to the client's gradient; with μ = 0 it returns the gradient unchanged,
 *   so FedProx(0) is FedAvg exactly.
 * - Clipping / noise: with `clipNorm` C, every client's update Δₖ = wₖ − w_global is scaled to L2
 *   norm ≤ C before averaging (so the aggregate update has norm ≤ C); with `noiseMultiplier` σ,
 *   N(0, (σ·S)²) noise (Box–Muller) is added to each coordinate of the averaged update, where
 *   S = C·maxₖ nₖ / Σₖ nₖ is the sensitivity of the weighted average to one client's clipped
 *   update (as in DP-FedAvg, McMahan et al. 2018). With equal weights S = C/m (m clients
 *   aggregated): noise σ·C on the sum, as in Flower's server-side fixed clipping; with unequal
 *   weights a heavy client moves the average by more than C/m, and the noise covers that.
 * - Clients receive their own copy of the global parameters; nothing a client does to it (or to
 *   the array it returns) can change the server's state.
 * - Clients of a round run concurrently (`concurrency`, default all at once) as child fibers of
 *   the run; interrupting the run interrupts them, and nothing keeps running.
 * - Options are validated at the boundary (`ValidationError` naming the field) before any client
 *   code runs.
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import { Tagged, ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import { gaussianFill, generator } from "./internal/random.js"

// ---------------------------------------------------------------------------------------------
// Pure building blocks
// ---------------------------------------------------------------------------------------------

/** The Euclidean (L2) norm of a vector. */
export const l2norm = (vector: ArrayLike<number>): number => {
  let sum = 0
  for (let i = 0; i < vector.length; i++) sum += vector[i]! * vector[i]!
  return Math.sqrt(sum)
}

/**
 * A copy of `vector` scaled to L2 norm at most `maxNorm` (C > 0): `v · min(1, C / ‖v‖)`. A vector
 * already within the bound (or zero) is copied unchanged.
 */
export const clip = (vector: ArrayLike<number>, maxNorm: number): Float64Array => {
  const out = Float64Array.from(vector)
  const norm = l2norm(out)
  if (norm > maxNorm) {
    const scale = maxNorm / norm
    for (let i = 0; i < out.length; i++) out[i] = out[i]! * scale
  }
  return out
}

/** One vector with its weight, as aggregated by `fedAvg`. */
export interface WeightedVector {
  readonly params: ArrayLike<number>
  /** The weight: the number of examples the vector was trained on (> 0). */
  readonly numExamples: number
}

/**
 * FedAvg: the weighted mean Σ nₖ·vₖ / Σ nₖ, accumulated in the order given. Expects vectors of one
 * length and positive weights (`run` checks both before calling it); no updates gives an empty
 * vector.
 */
export const fedAvg = (updates: ReadonlyArray<WeightedVector>): Float64Array => {
  if (updates.length === 0) return new Float64Array(0)
  const dim = updates[0]!.params.length
  const out = new Float64Array(dim)
  let total = 0
  for (const { numExamples, params } of updates) {
    total += numExamples
    for (let i = 0; i < dim; i++) out[i] = out[i]! + numExamples * params[i]!
  }
  for (let i = 0; i < dim; i++) out[i] = out[i]! / total
  return out
}

/**
 * FedProx's proximal gradient: `grad + μ·(w − wGlobal)`, the gradient of the local loss plus
 * (μ/2)‖w − wGlobal‖². With μ = 0 the result equals `grad`. `w` and `wGlobal` must have the length
 * of `grad`; a missing coordinate gives NaN (never a plausible wrong number), and the server
 * rejects a non-finite update.
 */
export const proximalGradient = (
  grad: ArrayLike<number>,
  w: ArrayLike<number>,
  wGlobal: ArrayLike<number>,
  mu: number
): Float64Array => {
  const out = new Float64Array(grad.length)
  for (let i = 0; i < grad.length; i++) {
    out[i] = mu === 0 ? grad[i]! : grad[i]! + mu * ((w[i] ?? NaN) - (wGlobal[i] ?? NaN))
  }
  return out
}

/** FedProx's proximal term (μ/2)·‖w − wGlobal‖², to add to a client's reported loss. */
export const proximalTerm = (w: ArrayLike<number>, wGlobal: ArrayLike<number>, mu: number): number => {
  let sum = 0
  for (let i = 0; i < w.length; i++) sum += ((w[i]! - (wGlobal[i] ?? NaN)) ** 2)
  return (mu / 2) * sum
}

/**
 * `length` independent N(0, std²) samples by the Box–Muller transform, from a `PCGRandom`
 * seeded by two draws of the `Random` service.
 */
export const gaussianVector = (length: number, std: number): Effect.Effect<Float64Array> =>
  Effect.map(generator, (rng) => gaussianFill(new Float64Array(length), std, rng))

/**
 * The largest weight of one client in a weighted average, maxₖ nₖ / Σₖ nₖ (1/m for m equal
 * weights): the sensitivity of `fedAvg` to one client's update, per unit of update norm.
 */
export const dpWeight = (updates: ReadonlyArray<{ readonly numExamples: number }>): number => {
  let total = 0
  let max = 0
  for (const { numExamples } of updates) {
    total += numExamples
    if (numExamples > max) max = numExamples
  }
  return total > 0 ? max / total : 0
}

/**
 * The number of clients selected per round: `max(minClients, ceil(fraction·n))`, at most n. The
 * ceiling forgives float error below 1e-9 (0.1·30 is 3.0000000000000004 in floating point: 3, not 4).
 */
export const sampleSize = (clients: number, fraction: number, minClients: number): number =>
  Math.min(clients, Math.max(minClients, Math.ceil(fraction * clients - 1e-9)))

// ---------------------------------------------------------------------------------------------
// Clients, options and results
// ---------------------------------------------------------------------------------------------

/**
 * What a client receives with the global parameters: the round (1-based), FedProx's `mu`, and the
 * fields returned by `configureRound(round)` (`round` and `mu` always come from the server).
 */
export type FitConfig<C extends object = {}> = Omit<C, "round" | "mu"> & {
  readonly round: number
  readonly mu: number
}

/** What a client returns after local training. */
export interface FitResult {
  /** The locally trained parameters; must have the global model's length and be finite. */
  readonly params: Float64Array | ReadonlyArray<number>
  /** The number of local examples (the FedAvg weight); a finite number > 0. */
  readonly numExamples: number
  /** Training metrics (e.g. local loss); aggregated per round weighted by `numExamples`. */
  readonly metrics?: Readonly<Record<string, number>>
}

/** A federated client: an id and a local training step. */
export interface Client<C extends object = {}, E = never, R = never> {
  readonly id: string
  /** Trains from `params` (a private copy of the global model) and returns the new parameters. */
  readonly fit: (params: Float64Array, config: FitConfig<C>) => Effect.Effect<FitResult, E, R>
}

/** Options of `run`. */
export interface Options<C extends object, E, R, M, EE, RE> {
  /** The initial global parameters: a non-empty vector of finite numbers. */
  readonly initial: ArrayLike<number>
  /** The clients (non-empty, unique non-empty ids). */
  readonly clients: ReadonlyArray<Client<C, E, R>>
  /** Number of rounds, a positive integer. */
  readonly rounds: number
  /** Fraction of clients selected per round, in (0, 1] (default 1). */
  readonly fraction?: number
  /** Minimum clients selected and required to succeed per round, 1 ≤ minClients ≤ n (default 1). */
  readonly minClients?: number
  /** Failed clients tolerated per round, an integer ≥ 0 (default 0). */
  readonly acceptFailures?: number
  /** Time budget of one client's `fit`; a client over it is a failure. */
  readonly clientTimeout?: Duration.DurationInput
  /** FedProx's μ ≥ 0, passed to clients in their config (default 0 = FedAvg). */
  readonly mu?: number
  /** Clip each client's update Δₖ = wₖ − w_global to this L2 norm (> 0). */
  readonly clipNorm?: number
  /**
   * σ ≥ 0: add N(0, (σ·C·maxₖ nₖ/Σnₖ)²) noise to each coordinate of the averaged update — σ·C/m with
   * equal weights (needs `clipNorm`).
   */
  readonly noiseMultiplier?: number
  /** Server-side evaluation of the global model, after each round and of `initial` (round 0). */
  readonly evaluate?: (params: Float64Array, round: number) => Effect.Effect<M, EE, RE>
  /** Extra per-round config for the clients (e.g. epochs, learning rate). */
  readonly configureRound?: (round: number) => C
  /** Clients training at once: a positive integer or "unbounded" (default "unbounded"). */
  readonly concurrency?: number | "unbounded"
  /** Seed of the server's private `Random` (sampling and noise); default: the ambient `Random`. */
  readonly seed?: number
}

/** A client that succeeded in a round. */
export interface ClientUpdate {
  readonly clientId: string
  readonly numExamples: number
  /** ‖wₖ − w_global‖ before clipping. */
  readonly updateNorm: number
  /** True when clipping scaled this update down. */
  readonly clipped: boolean
  readonly metrics?: Readonly<Record<string, number>>
}

/** A client that failed in a round. */
export type ClientFailure<E> =
  /** `fit` failed or died (the cause says which). */
  | { readonly clientId: string; readonly reason: "error"; readonly cause: Cause.Cause<E> }
  /** `fit` did not finish within `clientTimeout` (it was interrupted). */
  | { readonly clientId: string; readonly reason: "timeout"; readonly timeout: Duration.Duration }
  /** `fit` returned an update the server rejected (length, non-finite value, numExamples). */
  | { readonly clientId: string; readonly reason: "invalidUpdate"; readonly error: ValidationError }

/** The outcome of a server-side evaluation (a failing `evaluate` is recorded, not fatal). */
export type Evaluation<M, EE> =
  | { readonly status: "ok"; readonly metrics: M }
  | { readonly status: "failed"; readonly cause: Cause.Cause<EE> }

/** What happened in one round. */
export interface RoundRecord<M = unknown, E = unknown, EE = unknown> {
  /** 1-based. */
  readonly round: number
  /** The selected client ids, in client order. */
  readonly selected: ReadonlyArray<string>
  /** The aggregated clients, in client order. */
  readonly updates: ReadonlyArray<ClientUpdate>
  /** The failed clients, in client order. */
  readonly failures: ReadonlyArray<ClientFailure<E>>
  /** Σ numExamples over the aggregated clients (the FedAvg denominator). */
  readonly totalExamples: number
  /** Client metrics averaged with weights numExamples, per key, over the clients reporting it. */
  readonly fitMetrics: Readonly<Record<string, number>>
  /** ‖w_new − w_old‖ (after clipping and noise). */
  readonly updateNorm: number
  /** The server-side evaluation of the new global model, when `evaluate` is given. */
  readonly evaluation?: Evaluation<M, EE>
  /** Wall time of the round (selection to evaluation), from `Clock`. */
  readonly durationMillis: number
}

/** The result of `run`. */
export interface Result<M = unknown, E = unknown, EE = unknown> {
  /** The final global parameters. */
  readonly params: Float64Array
  /** One record per round, in order. */
  readonly history: ReadonlyArray<RoundRecord<M, E, EE>>
  /** `evaluate(initial, 0)`, when `evaluate` is given. */
  readonly initialEvaluation?: Evaluation<M, EE>
}

/** A round had more failed clients than accepted, or fewer successes than `minClients`. */
export class RoundFailedError<E = unknown> extends Tagged("RoundFailedError", {
  category: "transient",
  severity: "medium",
  message: "Federated round failed"
})<{
  /** The failed round (1-based). */
  readonly round: number
  /** The failed clients, in client order. */
  readonly failures: ReadonlyArray<ClientFailure<E>>
  /** The clients selected for the round, in client order. */
  readonly selected: ReadonlyArray<string>
  /** How many clients succeeded. */
  readonly succeeded: number
  readonly acceptFailures: number
  readonly minClients: number
  /** The global parameters at the start of the failed round (the last good model). */
  readonly params: Float64Array
  /** The records of the rounds completed before it. */
  readonly history: ReadonlyArray<RoundRecord<unknown, E, unknown>>
}> {
  override describe() {
    return `Federated round ${this.round} failed: ${this.failures.length} of ${this.selected.length} clients failed ` +
      `(${this.acceptFailures} accepted), ${this.succeeded} succeeded (${this.minClients} required)`
  }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

interface Settings {
  readonly initial: Float64Array
  readonly rounds: number
  readonly fraction: number
  readonly minClients: number
  readonly acceptFailures: number
  readonly clientTimeout: Duration.Duration | undefined
  readonly mu: number
  readonly clipNorm: number | undefined
  readonly noiseMultiplier: number
  readonly concurrency: number | "unbounded"
}

const validate = <C extends object, E, R, M, EE, RE>(
  options: Options<C, E, R, M, EE, RE>
): Either.Either<Settings, ValidationError> =>
  Either.gen(function*() {
    const initialInput: unknown = options.initial
    if (
      typeof initialInput !== "object" || initialInput === null ||
      typeof (initialInput as ArrayLike<unknown>).length !== "number" || (initialInput as ArrayLike<unknown>).length === 0
    ) {
      return yield* Validation.invalid("initial", "must be a non-empty array of numbers")
    }
    const initial = new Float64Array(options.initial.length)
    for (let i = 0; i < initial.length; i++) initial[i] = yield* Validation.number(`initial[${i}]`, options.initial[i])
    if (!Array.isArray(options.clients) || options.clients.length === 0) {
      return yield* Validation.invalid("clients", "must be a non-empty array")
    }
    const ids = new Set<string>()
    for (const [i, client] of options.clients.entries()) {
      if (typeof client !== "object" || client === null) return yield* Validation.invalid(`clients[${i}]`, "must be a client")
      const id = yield* Validation.nonEmptyString(`clients[${i}].id`, client.id)
      if (ids.has(id)) return yield* Validation.invalid(`clients[${i}].id`, `duplicate client id "${id}"`)
      ids.add(id)
      if (typeof client.fit !== "function") return yield* Validation.invalid(`clients[${i}].fit`, "must be a function")
    }
    const n = options.clients.length
    const rounds = yield* Validation.positiveInt("rounds", options.rounds)
    const fraction = yield* Validation.optional(options.fraction, 1, (f) => Validation.ratio("fraction", f, { exclusiveZero: true }))
    const minClients = yield* Validation.optional(options.minClients, 1, (m) => Validation.int("minClients", m, { min: 1, max: n }))
    const acceptFailures = yield* Validation.optional(options.acceptFailures, 0, (k) => Validation.nonNegativeInt("acceptFailures", k))
    const clientTimeout = options.clientTimeout === undefined
      ? undefined
      : yield* Validation.duration("clientTimeout", options.clientTimeout)
    const mu = yield* Validation.optional(options.mu, 0, (m) => Validation.number("mu", m, { min: 0 }))
    const clipNorm = options.clipNorm === undefined
      ? undefined
      : yield* Validation.number("clipNorm", options.clipNorm, { min: 0, minExclusive: true })
    const noiseMultiplier = yield* Validation.optional(
      options.noiseMultiplier,
      0,
      (s) => Validation.number("noiseMultiplier", s, { min: 0 })
    )
    if (noiseMultiplier > 0 && clipNorm === undefined) {
      return yield* Validation.invalid("noiseMultiplier", "requires clipNorm (the noise scale is σ·clipNorm)")
    }
    if (options.evaluate !== undefined && typeof options.evaluate !== "function") {
      return yield* Validation.invalid("evaluate", "must be a function")
    }
    if (options.configureRound !== undefined && typeof options.configureRound !== "function") {
      return yield* Validation.invalid("configureRound", "must be a function")
    }
    const concurrency = options.concurrency === undefined || options.concurrency === "unbounded"
      ? "unbounded" as const
      : yield* Validation.positiveInt("concurrency", options.concurrency)
    if (options.seed !== undefined) yield* Validation.int("seed", options.seed)
    return { initial, rounds, fraction, minClients, acceptFailures, clientTimeout, mu, clipNorm, noiseMultiplier, concurrency }
  })

/** Checks a client's update against the model's dimension; returns it as a fresh Float64Array. */
const checkUpdate = (
  clientId: string,
  result: FitResult,
  dim: number
): Either.Either<{ readonly params: Float64Array; readonly numExamples: number }, ValidationError> =>
  Either.gen(function*() {
    const field = `clients["${clientId}"]`
    if (typeof result !== "object" || result === null) return yield* Validation.invalid(field, "fit must return { params, numExamples }")
    const params: unknown = result.params
    if (typeof params !== "object" || params === null || typeof (params as ArrayLike<unknown>).length !== "number") {
      return yield* Validation.invalid(`${field}.params`, "must be an array of numbers")
    }
    const values = params as ArrayLike<unknown>
    if (values.length !== dim) {
      return yield* Validation.invalid(`${field}.params`, `must have length ${dim} (the global model's), got ${values.length}`)
    }
    const out = new Float64Array(dim)
    for (let i = 0; i < dim; i++) out[i] = yield* Validation.number(`${field}.params[${i}]`, values[i])
    const numExamples = yield* Validation.number(`${field}.numExamples`, result.numExamples, { min: 0, minExclusive: true })
    return { params: out, numExamples }
  })

// ---------------------------------------------------------------------------------------------
// The server loop
// ---------------------------------------------------------------------------------------------

type Outcome<E> =
  | {
    readonly _tag: "ok"
    readonly clientId: string
    readonly params: Float64Array
    readonly numExamples: number
    readonly metrics: Readonly<Record<string, number>> | undefined
  }
  | { readonly _tag: "failed"; readonly failure: ClientFailure<E> }

const weightedMetrics = (
  updates: ReadonlyArray<{ readonly numExamples: number; readonly metrics?: Readonly<Record<string, number>> | undefined }>
): Record<string, number> => {
  const sums = new Map<string, { value: number; weight: number }>()
  for (const { metrics, numExamples } of updates) {
    if (metrics === undefined || typeof metrics !== "object" || metrics === null) continue
    for (const [key, value] of Object.entries(metrics)) {
      if (typeof value !== "number" || !Number.isFinite(value)) continue
      const acc = sums.get(key) ?? { value: 0, weight: 0 }
      acc.value += numExamples * value
      acc.weight += numExamples
      sums.set(key, acc)
    }
  }
  const out: Record<string, number> = {}
  for (const [key, { value, weight }] of sums) out[key] = value / weight
  return out
}

const evaluation = <M, EE, RE>(effect: Effect.Effect<M, EE, RE>): Effect.Effect<Evaluation<M, EE>, never, RE> =>
  Effect.map(Effect.exit(effect), (exit): Evaluation<M, EE> =>
    Exit.isSuccess(exit) ? { status: "ok", metrics: exit.value } : { status: "failed", cause: exit.cause })

/**
 * Runs `rounds` rounds of federated training from `initial`. Each round:
 *
 * 1. selects `max(minClients, ceil(fraction·n))` distinct clients at random (all of them when
 *    that is n);
 * 2. calls each selected client's `fit` with a private copy of the global parameters and
 *    `{ ...configureRound(round), round, mu }`, at most `concurrency` at once, each under
 *    `clientTimeout`;
 * 3. records failures: an error or defect, a timeout, or an invalid update (the update is
 *    rejected, the other clients' updates still count). More than `acceptFailures` failures, or
 *    fewer than `minClients` successes, fail the run with `RoundFailedError`;
 * 4. aggregates: w ← w + Σ nₖ·clip(wₖ − w) / Σ nₖ (+ noise), which without clipping or noise is
 *    FedAvg's Σ nₖ·wₖ / Σ nₖ;
 * 5. evaluates the new model with `evaluate` (a failure is recorded) and appends a `RoundRecord`.
 */
export const run = <C extends object = {}, E = never, R = never, M = never, EE = never, RE = never>(
  options: Options<C, E, R, M, EE, RE>
): Effect.Effect<Result<M, E, EE>, RoundFailedError<E> | ValidationError, R | RE> =>
  Effect.gen(function*() {
    const s = yield* validate(options)
    const clients = options.clients
    const n = clients.length
    const dim = s.initial.length
    const size = sampleSize(n, s.fraction, s.minClients)
    const random = options.seed === undefined ? yield* Effect.random : Random.make(options.seed)
    // The base of every client's private Random (see `fitOne`): the seed, else one ambient draw.
    const clientSeed = options.seed ?? (yield* random.nextInt)
    const evaluate = options.evaluate
    const configureRound = options.configureRound

    const fitOne = (
      index: number,
      round: number,
      global: Float64Array,
      config: FitConfig<C>
    ): Effect.Effect<Outcome<E>, never, R> => {
      const client = clients[index]!
      const clientId = client.id
      // A Random per (run, round, client): a client's draws never depend on scheduling.
      const fit = Effect.withRandom(
        Effect.suspend(() => client.fit(Float64Array.from(global), config)),
        Random.make(`federated/${clientSeed}/${round}/client/${clientId}`)
      )
      const timed: Effect.Effect<Option.Option<FitResult>, E, R> = s.clientTimeout === undefined
        ? Effect.map(fit, Option.some)
        : Effect.timeoutOption(fit, s.clientTimeout)
      return Effect.map(Effect.exit(timed), (exit): Outcome<E> => {
        if (Exit.isFailure(exit)) return { _tag: "failed", failure: { clientId, reason: "error", cause: exit.cause } }
        if (Option.isNone(exit.value)) {
          return { _tag: "failed", failure: { clientId, reason: "timeout", timeout: s.clientTimeout! } }
        }
        const checked = checkUpdate(clientId, exit.value.value, dim)
        if (Either.isLeft(checked)) return { _tag: "failed", failure: { clientId, reason: "invalidUpdate", error: checked.left } }
        return { _tag: "ok", clientId, ...checked.right, metrics: exit.value.value.metrics }
      })
    }

    let global = s.initial
    const history: Array<RoundRecord<M, E, EE>> = []
    // Server-side evaluation gets its own Random per round too (e.g. to sample an evaluation batch).
    const evaluateRound = (params: Float64Array, round: number) =>
      evaluation(Effect.withRandom(
        Effect.suspend(() => evaluate!(Float64Array.from(params), round)),
        Random.make(`federated/${clientSeed}/${round}/evaluate`)
      ))
    const initialEvaluation = evaluate === undefined ? undefined : yield* evaluateRound(global, 0)

    for (let round = 1; round <= s.rounds; round++) {
      const startedAt = yield* Clock.currentTimeMillis
      const indices = Array.from({ length: n }, (_, i) => i)
      const chosen = size === n ? indices : Chunk.toReadonlyArray(yield* random.shuffle(indices)).slice(0, size)
      const selectedIndices = [...chosen].sort((a, b) => a - b)
      const selected = selectedIndices.map((i) => clients[i]!.id)
      const extra = configureRound === undefined ? undefined : configureRound(round)
      const config = { ...extra, round, mu: s.mu } as FitConfig<C>

      const outcomes = yield* Effect.forEach(selectedIndices, (i) => fitOne(i, round, global, config), {
        concurrency: s.concurrency
      })
      const oks = outcomes.flatMap((o) => o._tag === "ok" ? [o] : [])
      const failures = outcomes.flatMap((o) => o._tag === "failed" ? [o.failure] : [])
      if (failures.length > s.acceptFailures || oks.length < s.minClients) {
        return yield* new RoundFailedError<E>({
          round,
          failures,
          selected,
          succeeded: oks.length,
          acceptFailures: s.acceptFailures,
          minClients: s.minClients,
          params: Float64Array.from(global),
          history
        })
      }

      // Aggregate the updates Δₖ = wₖ − w (clipped when asked), then add noise.
      const updates: Array<ClientUpdate> = []
      const deltas: Array<WeightedVector> = []
      for (const ok of oks) {
        const delta = new Float64Array(dim)
        for (let i = 0; i < dim; i++) delta[i] = ok.params[i]! - global[i]!
        const norm = l2norm(delta)
        const clipped = s.clipNorm !== undefined && norm > s.clipNorm
        deltas.push({ params: clipped ? clip(delta, s.clipNorm!) : delta, numExamples: ok.numExamples })
        updates.push(
          ok.metrics === undefined
            ? { clientId: ok.clientId, numExamples: ok.numExamples, updateNorm: norm, clipped }
            : { clientId: ok.clientId, numExamples: ok.numExamples, updateNorm: norm, clipped, metrics: ok.metrics }
        )
      }
      const step = s.clipNorm === undefined ? undefined : fedAvg(deltas)
      if (step !== undefined && s.noiseMultiplier > 0) {
        // The weighted average moves by at most C·nₖ/Σn when one client's clipped update changes.
        const sensitivity = s.clipNorm! * dpWeight(oks)
        const noise = yield* Effect.withRandom(gaussianVector(dim, s.noiseMultiplier * sensitivity), random)
        for (let i = 0; i < dim; i++) step[i] = step[i]! + noise[i]!
      }
      // Without clipping, average the parameters themselves: FedAvg exactly as Σ nₖ·wₖ / Σ nₖ.
      const next = step === undefined ? fedAvg(oks) : global.map((w, i) => w + step[i]!)
      const updateNorm = l2norm(next.map((w, i) => w - global[i]!))
      global = next

      const evaluated = evaluate === undefined ? undefined : yield* evaluateRound(global, round)
      const endedAt = yield* Clock.currentTimeMillis
      const record: RoundRecord<M, E, EE> = {
        round,
        selected,
        updates,
        failures,
        totalExamples: oks.reduce((sum, o) => sum + o.numExamples, 0),
        fitMetrics: weightedMetrics(oks),
        updateNorm,
        durationMillis: endedAt - startedAt,
        ...(evaluated === undefined ? {} : { evaluation: evaluated })
      }
      history.push(record)
      yield* Effect.logDebug("federated round done").pipe(
        Effect.annotateLogs({ round, selected: selected.length, failures: failures.length })
      )
    }
    const result: Result<M, E, EE> = initialEvaluation === undefined
      ? { params: global, history }
      : { params: global, history, initialEvaluation }
    return result
  }).pipe(Effect.withSpan("Federated.run", { attributes: { clients: options.clients?.length ?? 0, rounds: options.rounds } }))

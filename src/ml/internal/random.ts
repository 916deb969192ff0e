/**
 * Random numbers for the ML modules' tight loops. Every generator is seeded from Effect's
 * `Random` service (or from explicit seeds), so a seeded `Random` reproduces a run, while the
 * draws themselves are synchronous (an effect per draw would cost more than the draw).
 */
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import { PCGRandom } from "effect/Utils"

/** A generator seeded by two draws from the `Random` service (one per generation, round, plan...). */
export const generator: Effect.Effect<PCGRandom> = Random.randomWith((random) =>
  Effect.zipWith(
    random.nextIntBetween(0, 2 ** 32),
    random.nextIntBetween(0, 2 ** 32),
    (hi, lo) => new PCGRandom(hi, lo)
  )
)

/** Murmur3's 32-bit finaliser: a bijection on 32-bit integers that mixes every bit. */
export const mix32 = (x: number): number => {
  let h = x >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/** A generator for item `index` of a run seeded with `seed`: distinct indexes never share one. */
export const generatorFor = (seed: number, index: number): PCGRandom => new PCGRandom(mix32(seed), mix32(index))

/** A standard normal draw (Box–Muller; 1 − u keeps the logarithm finite). */
export const gaussian = (rng: PCGRandom): number => {
  const u = 1 - rng.number()
  const v = rng.number()
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
}

/** Fills `out` with independent N(0, std²) draws, two per Box–Muller pair. */
export const gaussianFill = (out: Float64Array, std: number, rng: PCGRandom): Float64Array => {
  for (let i = 0; i < out.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rng.number()))
    const angle = 2 * Math.PI * rng.number()
    out[i] = std * r * Math.cos(angle)
    if (i + 1 < out.length) out[i + 1] = std * r * Math.sin(angle)
  }
  return out
}

/**
 * A draw from N(mu, sigma²) truncated to [low, high], by rejection; a component with almost no
 * mass inside the interval falls back to a uniform draw after 64 tries.
 */
export const truncatedNormal = (mu: number, sigma: number, low: number, high: number, rng: PCGRandom): number => {
  for (let attempt = 0; attempt < 64; attempt++) {
    const x = mu + sigma * gaussian(rng)
    if (x >= low && x <= high) return x
  }
  return low + rng.number() * (high - low)
}

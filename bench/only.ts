/**
 * `node --expose-gc build/bench/only.js <section> [--report]`: runs one benchmark section alone,
 * printing its figures. With `--report`, the section's report follows as one JSON line after
 * `REPORT ` (what `bench/run.ts` reads: it runs each section in a fresh process, so that one
 * section's JIT and heap state cannot skew another's figures).
 */
import * as Effect from "effect/Effect"
import * as Agents from "./agents.js"
import * as Data from "./data.js"
import * as EventBusBench from "./eventbus.js"
import * as Http from "./http.js"
import * as Ml from "./ml.js"
import * as Registry from "./registry.js"
import * as Resilience from "./resilience.js"

export const sections = {
  resilience: Resilience.run,
  eventbus: EventBusBench.run,
  http: Http.run,
  data: Data.run,
  agents: Agents.run,
  registry: Registry.run,
  ml: Ml.run
} as const

export type Section = keyof typeof sections

const main = (): void => {
  const name = process.argv[2] ?? ""
  const bench: Effect.Effect<unknown> | undefined = (sections as Record<string, Effect.Effect<unknown>>)[name]
  if (bench === undefined) {
    console.error(`usage: node --expose-gc build/bench/only.js <${Object.keys(sections).join(" | ")}> [--report]`)
    process.exitCode = 2
    return
  }
  Effect.runPromise(bench).then((report) => {
    if (process.argv.includes("--report")) console.log(`REPORT ${JSON.stringify(report)}`)
  }).catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
}

main()

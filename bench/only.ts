/**
 * `node --expose-gc build/bench/only.js <name>`: runs one benchmark alone (data, agents, http),
 * printing its figures without writing RESULTS.md: for working on one hot path.
 */
import * as Effect from "effect/Effect"
import * as Agents from "./agents.js"
import * as Data from "./data.js"
import * as Http from "./http.js"

const benches: Record<string, Effect.Effect<unknown>> = { data: Data.run, agents: Agents.run, http: Http.run }
const name = process.argv[2] ?? ""
const bench = benches[name]
if (bench === undefined) {
  console.error(`usage: node --expose-gc build/bench/only.js <${Object.keys(benches).join(" | ")}>`)
  process.exitCode = 2
} else {
  Effect.runPromise(bench).catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
}

// examples/command-runner.ts — allow-listed processes, no shell, killed on timeout
import { Effect } from "effect"
import { CommandRunner } from "effect-foundation"

export const program = Effect.gen(function*() {
  const runner = yield* CommandRunner.CommandRunner
  // Arguments go to the program as they are: "; rm -rf ~" is just text here.
  const echoed = yield* runner.run("node", ["-e", "console.log(process.argv[1])", "; rm -rf ~"], { timeout: "5 seconds" })
  const refused = yield* Effect.flip(runner.run("rm", ["-rf", "/tmp/x"])) // not on the allow-list: never spawned
  return { stdout: echoed.stdout.trim(), refused: refused._tag }
}).pipe(Effect.provide(CommandRunner.layerNode({ allowed: [{ name: "node", path: process.execPath }] })))

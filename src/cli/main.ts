#!/usr/bin/env node
/**
 * The `foundation` command. `foundation demo` runs the resilience demo (`npm start`).
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Demo from "./Demo.js"
import * as LoadTestCommand from "./LoadTestCommand.js"

const demo = Command.make(
  "demo",
  {
    calls: Options.integer("calls").pipe(Options.withDefault(160), Options.withDescription("Calls to make")),
    seed: Options.integer("seed").pipe(Options.withDefault(42), Options.withDescription("Seed of failures and latencies"))
  },
  (options) => Effect.asVoid(Demo.run(options))
).pipe(Command.withDescription("Call a flaky service through Protect and show what the policies did"))

const foundation = Command.make("foundation").pipe(
  Command.withDescription("effect-foundation: resilient services and multi-agent systems on Effect"),
  Command.withSubcommands([demo, LoadTestCommand.command])
)

const cli = Command.run(foundation, { name: "foundation", version: "0.1.0" })

cli(process.argv).pipe(Effect.provide(NodeContext.layer), NodeRuntime.runMain)

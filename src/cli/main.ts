#!/usr/bin/env node
/**
 * The `foundation` command. `foundation demo` runs the demo (`npm start`): a flaky service behind
 * Protect, the infrastructure services, then a supervised team of agents on the Foundation's
 * services (see `Demo` and `TeamDemo`). `foundation study` runs a hyperparameter study on a
 * benchmark problem and writes a JSON and HTML report (see `StudyCommand`).
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Demo from "./Demo.js"
import * as LoadTestCommand from "./LoadTestCommand.js"
import * as StudyCommand from "./StudyCommand.js"

const demo = Command.make(
  "demo",
  {
    calls: Options.integer("calls").pipe(Options.withDefault(160), Options.withDescription("Calls to make")),
    seed: Options.integer("seed").pipe(
      Options.withDefault(42),
      Options.withDescription("Seed of failures, latencies and the chaos monkey")
    ),
    items: Options.integer("items").pipe(Options.withDefault(40), Options.withDescription("Work items of the agents' story"))
  },
  (options) => Effect.flatMap(LoadTestCommand.terminalOutput, (output) => Effect.asVoid(Demo.run({ ...options, output })))
).pipe(Command.withDescription(
  "Call a flaky service through Protect, tour the services, then run a supervised team of agents " +
    "(election, consensus, barrier, work, chaos, health)"
))

const foundation = Command.make("foundation").pipe(
  Command.withDescription("effect-foundation: resilient services and multi-agent systems on Effect"),
  Command.withSubcommands([demo, LoadTestCommand.command, StudyCommand.command])
)

const cli = Command.run(foundation, { name: "foundation", version: "0.1.0" })

cli(process.argv).pipe(Effect.provide(NodeContext.layer), NodeRuntime.runMain)

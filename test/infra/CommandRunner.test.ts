import * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as NodeCommandExecutor from "@effect/platform-node/NodeCommandExecutor"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Layer, Metric, Option, Schedule, Scope, TestClock } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { BulkheadFullError, TimeoutError, ValidationError } from "../../src/errors/FoundationError.js"
import * as CommandRunner from "../../src/infra/CommandRunner.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as Telemetry from "../../src/observability/Telemetry.js"

const nodeEntry = { name: "node", path: process.execPath }

const nodeExecutor = Layer.provide(NodeCommandExecutor.layer, NodeFileSystem.layer)

/** `node -e <code> -- <args...>`: the args reach the script as process.argv.slice(1). */
const script = (code: string, ...args: Array<string>): Array<string> => ["-e", code, "--", ...args]

/** A runner over Node's executor wrapped to count every process it starts. */
const setup = (options: CommandRunner.Options = {}) =>
  Effect.gen(function*() {
    const spawned = { count: 0 }
    const real = yield* CommandExecutor.CommandExecutor
    const counting = CommandExecutor.makeExecutor((command) =>
      Effect.suspend(() => {
        spawned.count++
        return real.start(command)
      })
    )
    const runner = yield* CommandRunner.make({ allowed: [nodeEntry], ...options }).pipe(
      Effect.provideService(CommandExecutor.CommandExecutor, counting)
    )
    return { runner, spawned }
  }).pipe(Effect.provide(nodeExecutor))

/** A fresh temporary directory, removed with the scope. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "command-runner-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** True while the process exists and is not a zombie (PID 1 here may not reap orphans). */
const isAlive = (pid: number): boolean => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z"
  } catch {
    if (fs.existsSync("/proc/self/stat")) return false
  }
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** Polls a condition on the real clock (for real processes), for at most 3 s. */
const waitFor = (condition: () => boolean) =>
  Effect.sync(condition).pipe(
    Effect.repeat({ until: (ok) => ok, schedule: Schedule.spaced("10 millis") }),
    Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => new Error("condition not met in time") }),
    Effect.orDie
  )

const readPids = (file: string): ReadonlyArray<number> => JSON.parse(fs.readFileSync(file, "utf8")) as Array<number>

/** Appends to the counter file named by its first argument and prints how many runs it has seen. */
const counterScript = [
  `const fs = require("fs")`,
  `fs.appendFileSync(process.argv[1], "x")`,
  `process.stdout.write(String(fs.readFileSync(process.argv[1], "utf8").length))`
].join("; ")

/** Writes its pid to the file named by its first argument, then runs until killed. */
const pidThenForever =
  `require("fs").writeFileSync(process.argv[1], JSON.stringify([process.pid])); setInterval(() => {}, 1000)`

describe("CommandRunner", () => {
  it.scopedLive("runs an allowed command with its arguments and captures stdout and stderr", () =>
    Effect.gen(function*() {
      const { runner, spawned } = yield* setup()
      const result = yield* runner.run(
        "node",
        script(`process.stdout.write("out:" + process.argv.slice(1).join("|")); process.stderr.write("warn")`, "a b", "c")
      )
      expect(result).toMatchObject({
        command: "node",
        exitCode: 0,
        stdout: "out:a b|c",
        stderr: "warn",
        stdoutTruncated: false,
        stderrTruncated: false,
        stdoutBytes: 9,
        stderrBytes: 4
      })
      expect(result.pid).toBeGreaterThan(0)
      expect(spawned.count).toBe(1)
      expect(yield* runner.stats).toMatchObject({ runs: 1, succeeded: 1, failed: 0, active: 0 })
    }))

  it.scopedLive("passes shell metacharacters in arguments literally and never executes them", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const marker = path.join(dir, "pwned")
      const attempts = [
        `; touch ${marker}`,
        `$(touch ${marker})`,
        `\`touch ${marker}\``,
        `&& touch ${marker}`,
        `| touch ${marker}`,
        `> ${marker}`,
        `$HOME`,
        `'quoted' "double" \\ *`
      ]
      const { runner } = yield* setup()
      const echo = `process.stdout.write(JSON.stringify(process.argv.slice(1)))`
      const result = yield* runner.run("node", script(echo, ...attempts))
      expect(JSON.parse(result.stdout)).toEqual(attempts)
      expect(fs.existsSync(marker)).toBe(false)
    }))

  it.scopedLive("refuses a command not on the allow-list without spawning anything", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const victim = path.join(dir, "keep")
      fs.writeFileSync(victim, "data")
      const { runner, spawned } = yield* setup()
      for (const command of ["rm", "/bin/rm", "sh", "../node", "node ", "/usr/bin/env"]) {
        const error = yield* Effect.flip(runner.run(command, ["-rf", victim]))
        expect(error).toBeInstanceOf(CommandRunner.CommandNotAllowedError)
        expect(error).toMatchObject({ command, runner: "command-runner", category: "permanent" })
      }
      expect(spawned.count).toBe(0)
      expect(fs.existsSync(victim)).toBe(true)
      expect(yield* runner.stats).toMatchObject({ runs: 0, notAllowed: 6 })
      // The pinned absolute path of an entry is accepted too, and runs as that entry.
      const byPath = yield* runner.run(process.execPath, script(`process.stdout.write("ok")`))
      expect(byPath).toMatchObject({ command: "node", stdout: "ok" })
    }))

  it.scopedLive("kills a run at its timeout (SIGTERM ignored, children included) before failing with TimeoutError", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const pidFile = path.join(dir, "pids")
      const { runner } = yield* setup({ timeout: "10 seconds" })
      const code = `
        const cp = require("child_process")
        const child = cp.spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" })
        process.on("SIGTERM", () => {})
        require("fs").writeFileSync(process.argv[1], JSON.stringify([process.pid, child.pid]))
        setInterval(() => {}, 1000)`
      const started = yield* Clock.currentTimeMillis
      const error = yield* Effect.flip(runner.run("node", script(code, pidFile), { timeout: "1 second" }))
      const elapsed = (yield* Clock.currentTimeMillis) - started
      expect(error).toBeInstanceOf(TimeoutError)
      expect(error).toMatchObject({ category: "transient" })
      expect(elapsed).toBeGreaterThanOrEqual(1000)
      expect(elapsed).toBeLessThan(2500)
      const [pid, grandchild] = readPids(pidFile)
      expect(isAlive(pid!)).toBe(false) // gone by the time the error is seen
      yield* waitFor(() => !isAlive(grandchild!)) // an orphan: its reaping is not ours
      expect(yield* runner.stats).toMatchObject({ timeouts: 1, active: 0, succeeded: 0 })
    }))

  it.scopedLive("an interrupted caller kills its process, shared or not", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const { runner } = yield* setup()
      for (const useCache of [true, false]) {
        const pidFile = path.join(dir, `pid-${useCache}`)
        const fiber = yield* Effect.fork(runner.run("node", script(pidThenForever, pidFile), { useCache }))
        yield* waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, "utf8").length > 0)
        const [pid] = readPids(pidFile)
        expect(isAlive(pid!)).toBe(true)
        yield* Fiber.interrupt(fiber)
        expect(isAlive(pid!)).toBe(false)
      }
      expect(yield* runner.stats).toMatchObject({ active: 0, cacheSize: 0 })
    }))

  it.scopedLive("runs at most 5 processes at once: the 6th fails fast with BulkheadFullError", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const release = path.join(dir, "release")
      const { runner, spawned } = yield* setup()
      // Polls for the release file, then prints its second argument.
      const awaitRelease = [
        `const fs = require("fs")`,
        `const t = setInterval(() => {`,
        `  if (fs.existsSync(process.argv[1])) { clearInterval(t); process.stdout.write(process.argv[2]) }`,
        `}, 10)`
      ].join("\n")
      const wait = (i: number) =>
        runner.run("node", script(awaitRelease, release, String(i)))
      const fibers = yield* Effect.forEach([1, 2, 3, 4, 5], (i) => Effect.fork(wait(i)))
      yield* waitFor(() => Effect.runSync(runner.stats).active === 5)
      const started = yield* Clock.currentTimeMillis
      const error = yield* Effect.flip(wait(6))
      expect((yield* Clock.currentTimeMillis) - started).toBeLessThan(200)
      expect(error).toBeInstanceOf(BulkheadFullError)
      expect(error).toMatchObject({ maxConcurrent: 5, maxQueued: 0, category: "resource" })
      expect(spawned.count).toBe(5)
      fs.writeFileSync(release, "")
      const results = yield* Effect.forEach(fibers, Fiber.join)
      expect(results.map((r) => r.stdout)).toEqual(["1", "2", "3", "4", "5"])
      expect(yield* runner.stats).toMatchObject({ rejected: 1, runs: 5, active: 0 })
      expect((yield* wait(7)).stdout).toBe("7") // slots are free again
    }))

  it.scoped("serves an identical call from the cache for 30 s (on Clock), then runs it again", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const counter = path.join(dir, "count")
      const { runner, spawned } = yield* setup()
      const call = runner.run("node", script(counterScript, counter))
      const first = yield* call
      expect(first.stdout).toBe("1")
      expect(yield* call).toEqual(first)
      yield* TestClock.adjust("29 seconds")
      expect(yield* call).toEqual(first)
      expect(spawned.count).toBe(1)
      expect(fs.readFileSync(counter, "utf8")).toBe("x")
      expect(yield* runner.stats).toMatchObject({ runs: 1, cacheHits: 2, cacheSize: 1 })
      yield* TestClock.adjust("1 second")
      expect((yield* call).stdout).toBe("2") // 30 s after the result: expired
      expect(spawned.count).toBe(2)
      // The key is command + args + cwd + env: any difference runs again; useCache: false always runs.
      expect((yield* runner.run("node", script(counterScript, counter), { cwd: dir })).stdout).toBe("3")
      expect((yield* runner.run("node", script(counterScript, counter), { env: { X: "1" } })).stdout).toBe("4")
      expect((yield* runner.run("node", script(counterScript, counter), { useCache: false })).stdout).toBe("5")
      expect((yield* call).stdout).toBe("2")
      yield* runner.clearCache
      expect((yield* call).stdout).toBe("6")
      expect(spawned.count).toBe(6)
    }))

  it.scoped("keeps at most cacheCapacity results, dropping the oldest", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const counter = path.join(dir, "count")
      const { runner, spawned } = yield* setup({ cacheCapacity: 2 })
      const call = (tag: string) => runner.run("node", script(counterScript, counter, tag))
      yield* call("a")
      yield* call("b")
      yield* call("c") // evicts "a"
      expect((yield* runner.stats).cacheSize).toBe(2)
      yield* call("c")
      yield* call("b")
      expect(spawned.count).toBe(3)
      yield* call("a")
      expect(spawned.count).toBe(4)
    }))

  it.scopedLive("concurrent identical calls share one process", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const counter = path.join(dir, "count")
      const { runner, spawned } = yield* setup()
      const call = runner.run("node", script(`${counterScript}; setTimeout(() => {}, 300)`, counter))
      const results = yield* Effect.all([call, call, call], { concurrency: "unbounded" })
      expect(results.map((r) => r.stdout)).toEqual(["1", "1", "1"])
      expect(new Set(results.map((r) => r.pid)).size).toBe(1)
      expect(spawned.count).toBe(1)
      expect(fs.readFileSync(counter, "utf8")).toBe("x")
      expect(yield* runner.stats).toMatchObject({ runs: 1, coalesced: 2 })
    }))

  it.scopedLive("output beyond maxOutputBytes is read, counted, dropped and flagged; a UTF-8 character is never split", () =>
    Effect.gen(function*() {
      const { runner } = yield* setup({ maxOutputBytes: 1001 })
      const result = yield* runner.run(
        "node",
        script(`process.stdout.write("é".repeat(100000)); process.stderr.write("ok")`)
      )
      expect(result.exitCode).toBe(0) // never blocked on a full pipe
      expect(result.stdout).toBe("é".repeat(500)) // 1,000 bytes: the 1,001st would split a character
      expect(result).toMatchObject({
        stdoutTruncated: true,
        stdoutBytes: 200_000,
        stderr: "ok",
        stderrTruncated: false,
        stderrBytes: 2
      })
    }))

  it.scopedLive("a non-zero exit code is a CommandFailedError with the code and output, and is not cached", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const counter = path.join(dir, "count")
      const { runner, spawned } = yield* setup()
      const code = `${counterScript}; process.stderr.write("bad"); process.exit(3)`
      const error = yield* Effect.flip(runner.run("node", script(code, counter)))
      expect(error).toBeInstanceOf(CommandRunner.CommandFailedError)
      expect(error).toMatchObject({ exitCode: 3, stdout: "1", stderr: "bad", command: "node", category: "permanent" })
      const again = yield* Effect.flip(runner.run("node", script(code, counter)))
      expect(again).toMatchObject({ exitCode: 3, stdout: "2" })
      expect(spawned.count).toBe(2)
      const accepted = yield* runner.run("node", script(code, counter), { successExitCodes: [0, 3] })
      expect(accepted).toMatchObject({ exitCode: 3, stdout: "3", stderr: "bad" })
      expect(yield* runner.stats).toMatchObject({ failed: 2, succeeded: 1 })
    }))

  it.scopedLive("closes stdin, so a program reading it ends", () =>
    Effect.gen(function*() {
      const { runner } = yield* setup({ timeout: "2 seconds" })
      const result = yield* runner.run(
        "node",
        script([
          `let n = 0`,
          `process.stdin.on("data", (d) => { n += d.length })`,
          `process.stdin.on("end", () => process.stdout.write("eof " + n))`
        ].join("; "))
      )
      expect(result.stdout).toBe("eof 0")
    }))

  it.scopedLive("a program that cannot start is a CommandExecutionError", () =>
    Effect.gen(function*() {
      const { runner } = yield* setup({ allowed: [{ name: "ghost", path: "/nonexistent/ghost" }] })
      const error = yield* Effect.flip(runner.run("ghost"))
      expect(error).toBeInstanceOf(CommandRunner.CommandExecutionError)
      expect(error).toMatchObject({ command: "ghost", category: "system" })
      expect(yield* runner.stats).toMatchObject({ failed: 1, active: 0 })
    }))

  it.scopedLive("closing the runner's scope kills the processes still running", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const pidFile = path.join(dir, "pid")
      const scope = yield* Scope.make()
      const { runner } = yield* setup().pipe(Effect.provideService(Scope.Scope, scope))
      const fiber = yield* Effect.fork(runner.run("node", script(pidThenForever, pidFile)))
      yield* waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, "utf8").length > 0)
      const [pid] = readPids(pidFile)
      yield* Scope.close(scope, Exit.void)
      expect(isAlive(pid!)).toBe(false)
      expect(Exit.isInterrupted(yield* Fiber.await(fiber))).toBe(true)
    }))

  it.scoped("defaults to the original's allow-list", () =>
    Effect.gen(function*() {
      const runner = yield* CommandRunner.make().pipe(Effect.provide(nodeExecutor))
      expect((yield* runner.allowed).map((e) => e.name)).toEqual(["uptime", "ps", "free", "df", "iostat", "vmstat"])
      const refused = yield* Effect.flip(runner.run(process.execPath, ["-e", ""]))
      expect(refused).toBeInstanceOf(CommandRunner.CommandNotAllowedError)
    }))

  it.scopedLive("setAllowed replaces the list (a bad one changes nothing) and drops cached results", () =>
    Effect.gen(function*() {
      const { runner, spawned } = yield* setup()
      const call = runner.run("node", script(`process.stdout.write("hi")`))
      yield* call
      const bad = yield* Effect.flip(runner.setAllowed([nodeEntry, ""]))
      expect(bad).toMatchObject({ field: "allowed[1]" })
      yield* call
      expect(spawned.count).toBe(1) // still allowed, still cached
      yield* runner.setAllowed(["uptime"])
      expect(yield* Effect.flip(call)).toBeInstanceOf(CommandRunner.CommandNotAllowedError)
      yield* runner.setAllowed([nodeEntry])
      yield* call
      expect(spawned.count).toBe(2)
    }))

  it.scoped("rejects bad options and bad inputs with a ValidationError naming the field, changing nothing", () =>
    Effect.gen(function*() {
      const badOptions: ReadonlyArray<readonly [CommandRunner.Options, string]> = [
        [{ timeout: 0 }, "commandRunner.timeout"],
        [{ timeout: -1 }, "commandRunner.timeout"],
        [{ timeout: Number.NaN }, "commandRunner.timeout"],
        [{ maxConcurrent: 0 }, "commandRunner.maxConcurrent"],
        [{ maxConcurrent: 1.5 }, "commandRunner.maxConcurrent"],
        [{ cacheTtl: -1 }, "commandRunner.cacheTtl"],
        [{ cacheCapacity: 0 }, "commandRunner.cacheCapacity"],
        [{ maxOutputBytes: 0 }, "commandRunner.maxOutputBytes"],
        [{ name: "" }, "commandRunner.name"],
        [{ allowed: ["uptime", ""] }, "commandRunner.allowed[1]"],
        [{ allowed: [" ps"] }, "commandRunner.allowed[0]"],
        [{ allowed: ["bin/ls"] }, "commandRunner.allowed[0]"],
        [{ allowed: [{ name: "x", path: "relative/x" }] }, "commandRunner.allowed[0].path"],
        [{ allowed: [{ name: "" }] }, "commandRunner.allowed[0].name"],
        [{ allowed: ["ps", { name: "ps", path: "/bin/ps" }] }, "commandRunner.allowed[1]"]
      ]
      for (const [options, field] of badOptions) {
        const error = yield* Effect.flip(CommandRunner.make(options).pipe(Effect.provide(nodeExecutor)))
        expect(error).toBeInstanceOf(ValidationError)
        expect(error.field).toBe(field)
      }
      const { runner, spawned } = yield* setup()
      const badCalls: ReadonlyArray<readonly [Effect.Effect<unknown, unknown>, string]> = [
        [runner.run("", []), "command"],
        [runner.run("node", ["-e", "ok\0; rm"]), "args[1]"],
        [runner.run("node", [], { timeout: 0 }), "options.timeout"],
        [runner.run("node", [], { cwd: "" }), "options.cwd"],
        [runner.run("node", [], { env: { "A=B": "x" } }), "options.env.A=B"],
        [runner.run("node", [], { env: { A: "x\0" } }), "options.env.A"],
        [runner.run("node", [], { successExitCodes: [] }), "options.successExitCodes"],
        [runner.run("node", [], { successExitCodes: [-1] }), "options.successExitCodes[0]"]
      ]
      for (const [call, field] of badCalls) {
        expect(yield* Effect.flip(call)).toMatchObject({ _tag: "ValidationError", field })
      }
      expect(spawned.count).toBe(0)
      expect(yield* runner.stats).toMatchObject({ runs: 0, notAllowed: 0, cacheSize: 0, allowed: ["node"] })
    }))

  it.scopedLive("emits telemetry and updates metrics", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.EventBus
      const subscription = yield* bus.subscribe("foundation.command_runner.*", { capacity: 100 })
      const { runner } = yield* setup({ name: "observed", timeout: "300 millis" })
      yield* runner.run("node", script(`process.stdout.write("hi")`))
      yield* Effect.exit(runner.run("rm", ["-rf", "/"]))
      yield* Effect.exit(runner.run("node", script(`process.exit(2)`)))
      yield* Effect.exit(runner.run("node", script(`setInterval(() => {}, 1000)`)))
      const seen: Array<{ name: string; measurements: Record<string, number>; metadata: Record<string, unknown> }> = []
      for (;;) {
        const next = yield* subscription.poll
        if (Option.isNone(next)) break
        const data = next.value.data as { measurements: Record<string, number>; metadata: Record<string, unknown> }
        seen.push({ name: next.value.type, ...data })
      }
      expect(seen.map((e) => e.name)).toEqual([
        CommandRunner.events.completed,
        CommandRunner.events.rejected,
        CommandRunner.events.failed,
        CommandRunner.events.timeout
      ])
      expect(seen[0]).toMatchObject({
        measurements: { exit_code: 0, stdout_bytes: 2, stderr_bytes: 0 },
        metadata: { runner: "observed", command: "node", truncated: false }
      })
      expect(seen[1]).toMatchObject({ metadata: { runner: "observed", command: "rm", reason: "not_allowed" } })
      expect(seen[2]).toMatchObject({ measurements: { exit_code: 2 }, metadata: { reason: "exit_code" } })
      expect(seen[3]).toMatchObject({ measurements: { timeout_ms: 300 }, metadata: { command: "node" } })
      const pairs = yield* Metric.snapshot
      const count = (name: string, extra?: readonly [string, string]) => {
        const pair = pairs.find((p) =>
          p.metricKey.name === name &&
          p.metricKey.tags.some((t) => t.key === "runner" && t.value === "observed") &&
          (extra === undefined || p.metricKey.tags.some((t) => t.key === extra[0] && t.value === extra[1]))
        )
        return (pair?.metricState as unknown as { count: number } | undefined)?.count
      }
      expect(count("foundation_command_runner_runs_total")).toBe(3)
      expect(count("foundation_command_runner_timeouts_total")).toBe(1)
      expect(count("foundation_command_runner_failures_total")).toBe(1)
      expect(count("foundation_command_runner_rejected_total", ["reason", "not_allowed"])).toBe(1)
    }).pipe(Effect.provide(Telemetry.layerWithBus())))

  it.scopedLive("layerNode provides the service over Node's executor", () =>
    Effect.gen(function*() {
      const result = yield* CommandRunner.run("node", script(`process.stdout.write("layer")`))
      expect(result.stdout).toBe("layer")
    }).pipe(Effect.provide(CommandRunner.layerNode({ allowed: [nodeEntry] }))))
})

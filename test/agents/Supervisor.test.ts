import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, FastCheck as fc, Fiber, Option, Queue, Ref, Schedule, Scope, TestClock } from "effect"
import * as Supervisor from "../../src/agents/Supervisor.js"
import { AlreadyExistsError, NotFoundError, ValidationError } from "../../src/errors/FoundationError.js"

type Command = "fail" | "die" | "exit"

/** Children driven by commands, writing what happens to a log. */
const harness = Effect.gen(function*() {
  const log = yield* Ref.make<ReadonlyArray<string>>([])
  const controls = new Map<string, Queue.Queue<Command>>()
  const running = new Map<string, number>()
  let overlap = 0
  const write = (line: string) => Ref.update(log, (l) => [...l, line])
  const control = (id: string) => {
    let q = controls.get(id)
    if (q === undefined) controls.set(id, q = Effect.runSync(Queue.unbounded<Command>()))
    return q
  }
  const child = (id: string, options: Partial<Supervisor.ChildSpec> = {}): Supervisor.ChildSpec => ({
    id,
    run: Effect.gen(function*() {
      const { incarnation } = yield* Supervisor.ChildContext
      running.set(id, (running.get(id) ?? 0) + 1)
      if (running.get(id)! > 1) overlap++
      yield* write(`start ${id}#${incarnation}`)
      yield* Effect.addFinalizer(() =>
        Effect.zipRight(write(`stop ${id}#${incarnation}`), Effect.sync(() => running.set(id, running.get(id)! - 1)))
      )
      const command = yield* Queue.take(control(id))
      if (command === "fail") return yield* Effect.fail(`${id} failed`)
      if (command === "die") return yield* Effect.die(`${id} died`)
    }),
    ...options
  })
  const send = (id: string, command: Command) => Queue.offer(control(id), command)
  /** Lets the fibers run until `done` holds (bounded). */
  const until = (done: (log: ReadonlyArray<string>) => boolean) =>
    Effect.gen(function*() {
      for (let i = 0; i < 2000; i++) {
        if (done(yield* Ref.get(log))) return
        yield* Effect.yieldNow()
      }
      return yield* Effect.dieMessage(`not reached; log: ${(yield* Ref.get(log)).join(", ")}`)
    })
  const settle = Effect.repeatN(Effect.yieldNow(), 200)
  return { log, child, send, until, settle, write, overlap: () => overlap, clear: Ref.set(log, []) }
})

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const statuses = (s: Supervisor.Supervisor) =>
  Effect.map(s.children, (cs) => cs.map((c) => `${c.id}:${c.status}#${c.incarnation}`))

describe("Supervisor", () => {
  it.scoped("starts children in order; one_for_one restarts only the child that exited", () =>
    Effect.gen(function*() {
      const h = yield* harness
      const sup = yield* Supervisor.make({ name: "s", children: [h.child("a"), h.child("b"), h.child("c")] })
      yield* h.until((l) => l.length === 3)
      expect(yield* Ref.get(h.log)).toEqual(["start a#1", "start b#1", "start c#1"])
      yield* h.clear
      yield* h.send("b", "fail")
      yield* h.until((l) => l.includes("start b#2"))
      expect(yield* Ref.get(h.log)).toEqual(["stop b#1", "start b#2"])
      expect(yield* statuses(sup)).toEqual(["a:running#1", "b:running#2", "c:running#1"])
      expect((yield* sup.children).find((c) => c.id === "b")!.restarts).toBe(1)
    }))

  it.scoped("a child added with startChild from a scoped caller releases its resources in its own scope", () =>
    Effect.gen(function*() {
      const log = yield* Ref.make<ReadonlyArray<string>>([])
      const supervisor = yield* Supervisor.make({ name: "dynamic", strategy: "one_for_one", children: [] })
      yield* supervisor.startChild({
        id: "worker",
        run: Effect.gen(function*() {
          const { incarnation } = yield* Supervisor.ChildContext
          yield* Effect.acquireRelease(
            Ref.update(log, (l) => [...l, `acquired#${incarnation}`]),
            () => Ref.update(log, (l) => [...l, `released#${incarnation}`])
          )
          if (incarnation === 1) return yield* Effect.fail("crash")
          return yield* Effect.never
        })
      })
      yield* Effect.repeatN(Effect.yieldNow(), 50)
      // The first incarnation's resource went with it, before the restart (not with the caller's scope).
      expect(yield* Ref.get(log)).toEqual(["acquired#1", "released#1", "acquired#2"])
    }))

  it.scoped("one_for_all stops the others in reverse order and starts all again in order", () =>
    Effect.gen(function*() {
      const h = yield* harness
      yield* Supervisor.make({ strategy: "one_for_all", children: [h.child("a"), h.child("b"), h.child("c")] })
      yield* h.until((l) => l.length === 3)
      yield* h.clear
      yield* h.send("b", "die")
      yield* h.until((l) => l.includes("start c#2"))
      expect(yield* Ref.get(h.log)).toEqual(["stop b#1", "stop c#1", "stop a#1", "start a#2", "start b#2", "start c#2"])
    }))

  it.scoped("rest_for_one restarts the child and those started after it", () =>
    Effect.gen(function*() {
      const h = yield* harness
      const sup = yield* Supervisor.make({ strategy: "rest_for_one", children: [h.child("a"), h.child("b"), h.child("c")] })
      yield* h.until((l) => l.length === 3)
      yield* h.clear
      yield* h.send("b", "fail")
      yield* h.until((l) => l.includes("start c#2"))
      expect(yield* Ref.get(h.log)).toEqual(["stop b#1", "stop c#1", "start b#2", "start c#2"])
      expect(yield* statuses(sup)).toEqual(["a:running#1", "b:running#2", "c:running#2"])
    }))

  it.scoped("restart types: permanent always, transient after failures only, temporary never (and removed)", () =>
    Effect.gen(function*() {
      const h = yield* harness
      const sup = yield* Supervisor.make({
        maxRestarts: 10,
        children: [
          h.child("perm"),
          h.child("trans", { restart: "transient" }),
          h.child("trans2", { restart: "transient" }),
          h.child("temp", { restart: "temporary" })
        ]
      })
      yield* h.until((l) => l.length === 4)
      yield* h.send("perm", "exit") // normal exit: still restarted
      yield* h.send("trans", "exit") // normal exit: not restarted
      yield* h.send("trans2", "die") // defect: restarted
      yield* h.send("temp", "fail") // never restarted
      yield* h.until((l) => l.includes("start perm#2") && l.includes("start trans2#2") && l.includes("stop temp#1"))
      yield* h.settle
      expect(yield* statuses(sup)).toEqual(["perm:running#2", "trans:stopped#1", "trans2:running#2"])
    }))

  it.scoped("more than maxRestarts within the window escalates: every child stopped, await fails", () =>
    Effect.gen(function*() {
      const h = yield* harness
      const sup = yield* Supervisor.make({ name: "top", maxRestarts: 3, within: "5 seconds", children: [h.child("a"), h.child("b")] })
      yield* h.until((l) => l.length === 2)
      // Restarts spaced 2 s apart never exceed 3 within 5 s.
      for (let i = 2; i <= 5; i++) {
        yield* h.send("a", "fail")
        yield* h.until((l) => l.includes(`start a#${i}`))
        yield* TestClock.adjust("2 seconds")
      }
      expect(yield* Fiber.poll(yield* Effect.fork(sup.await))).toEqual(Option.none())
      // An empty window, then four restarts within 5 s: the fourth escalates.
      yield* TestClock.adjust("10 seconds")
      for (let i = 6; i <= 8; i++) {
        yield* h.send("a", "fail")
        yield* h.until((l) => l.includes(`start a#${i}`))
      }
      yield* h.send("a", "fail")
      const error = failureOf(yield* Effect.exit(sup.await))
      expect(error).toBeInstanceOf(Supervisor.SupervisorEscalatedError)
      expect(error).toMatchObject({ supervisor: "top", child: "a", reason: "intensity", restarts: 4 })
      expect((yield* Ref.get(h.log)).slice(-2)).toEqual(["stop a#8", "stop b#1"])
      expect(failureOf(yield* Effect.exit(sup.startChild(h.child("x"))))).toBeInstanceOf(Supervisor.SupervisorStoppedError)
    }))

  it.scoped("a backoff schedule spaces the restarts; when it ends, the supervisor escalates", () =>
    Effect.gen(function*() {
      const h = yield* harness
      const sup = yield* Supervisor.make({
        maxRestarts: 100,
        backoff: Schedule.exponential("100 millis").pipe(Schedule.intersect(Schedule.recurs(2))),
        children: [h.child("a"), h.child("b")]
      })
      yield* h.until((l) => l.length === 2)
      yield* h.send("a", "fail")
      yield* h.settle
      expect(yield* statuses(sup)).toEqual(["a:restarting#1", "b:running#1"])
      yield* TestClock.adjust("99 millis")
      yield* h.settle
      expect((yield* Ref.get(h.log)).includes("start a#2")).toBe(false)
      yield* TestClock.adjust("1 millis")
      yield* h.until((l) => l.includes("start a#2"))
      yield* h.send("a", "fail")
      yield* TestClock.adjust("199 millis")
      yield* h.settle
      expect((yield* Ref.get(h.log)).includes("start a#3")).toBe(false)
      yield* TestClock.adjust("1 millis")
      yield* h.until((l) => l.includes("start a#3"))
      yield* h.send("a", "fail")
      yield* TestClock.adjust("10 seconds")
      const error = failureOf(yield* Effect.exit(sup.await))
      expect(error).toMatchObject({ _tag: "SupervisorEscalatedError", reason: "backoff_exhausted", child: "a" })
    }))

  it.scoped("closing the scope stops children in reverse order, each within its shutdown timeout", () =>
    Effect.gen(function*() {
      const h = yield* harness
      const scope = yield* Scope.make()
      const stubborn: Supervisor.ChildSpec = {
        id: "stubborn",
        shutdownTimeout: "1 second",
        run: Effect.zipRight(
          Effect.addFinalizer(() => Effect.zipRight(h.write("stubborn cleaning"), Effect.zipRight(Effect.sleep("1 hour"), h.write("stubborn clean")))),
          Effect.never
        )
      }
      yield* Supervisor.make({ children: [h.child("a"), stubborn, h.child("c")] }).pipe(Scope.extend(scope))
      yield* h.until((l) => l.length === 2)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* h.until((l) => l.includes("stubborn cleaning"))
      expect(yield* Ref.get(h.log)).toEqual(["start a#1", "start c#1", "stop c#1", "stubborn cleaning"])
      yield* TestClock.adjust("1 second")
      yield* h.until((l) => l.includes("stop a#1"))
      yield* TestClock.adjust("1 hour")
      yield* Fiber.join(closing)
    }))

  it.scoped("awaitReady holds the next child until the previous one is ready", () =>
    Effect.gen(function*() {
      const h = yield* harness
      const database: Supervisor.ChildSpec = {
        id: "database",
        awaitReady: true,
        run: Effect.gen(function*() {
          yield* Effect.sleep("2 seconds") // migrating
          yield* h.write("database ready")
          yield* Supervisor.ready
          return yield* Effect.never
        })
      }
      const made = yield* Effect.fork(Supervisor.make({ children: [database, h.child("api")] }))
      yield* h.settle
      expect(yield* Ref.get(h.log)).toEqual([])
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(made)
      yield* h.until((l) => l.includes("start api#1"))
      expect(yield* Ref.get(h.log)).toEqual(["database ready", "start api#1"])
    }))

  it.scoped("nested supervisors: an inner escalation is a failing child of the outer one", () =>
    Effect.gen(function*() {
      const h = yield* harness
      const outer = yield* Supervisor.make({
        name: "outer",
        maxRestarts: 1,
        children: [h.child("sibling"), Supervisor.child("inner", { maxRestarts: 0, children: [h.child("leaf")] })]
      })
      yield* h.until((l) => l.includes("start leaf#1"))
      yield* h.send("leaf", "fail") // inner allows no restart: escalates; outer restarts inner
      yield* h.until((l) => l.includes("start leaf#1") && l.filter((x) => x === "start leaf#1").length === 2)
      expect(yield* statuses(outer)).toEqual(["sibling:running#1", "inner:running#2"])
      yield* h.send("leaf", "fail") // second restart of inner within 5 s: outer escalates too
      const error = failureOf(yield* Effect.exit(outer.await))
      expect(error).toMatchObject({ supervisor: "outer", child: "inner", reason: "intensity" })
      const cause = (error as Supervisor.SupervisorEscalatedError).cause
      expect(Option.getOrUndefined(Cause.failureOption(cause))).toMatchObject({ supervisor: "inner", child: "leaf" })
      expect((yield* Ref.get(h.log)).slice(-1)).toEqual(["stop sibling#1"])
    }))

  it.scoped("dynamic children: start, terminate (kept, not restarted), restart, delete; bad specs named", () =>
    Effect.gen(function*() {
      const h = yield* harness
      const sup = yield* Supervisor.make({ children: [h.child("a")] })
      yield* sup.startChild(h.child("b"))
      yield* h.until((l) => l.includes("start b#1"))
      expect(failureOf(yield* Effect.exit(sup.startChild(h.child("b"))))).toBeInstanceOf(AlreadyExistsError)
      const bad = failureOf(yield* Effect.exit(sup.startChild({ id: "", run: Effect.void })))
      expect((bad as ValidationError).field).toBe("supervisor.child.id")
      yield* sup.terminateChild("b")
      yield* h.settle
      expect(yield* statuses(sup)).toEqual(["a:running#1", "b:stopped#1"])
      expect(failureOf(yield* Effect.exit(sup.deleteChild("a")))).toBeInstanceOf(ValidationError)
      yield* sup.restartChild("b")
      yield* h.until((l) => l.includes("start b#2"))
      yield* sup.terminateChild("b")
      yield* sup.deleteChild("b")
      expect(yield* statuses(sup)).toEqual(["a:running#1"])
      expect(failureOf(yield* Effect.exit(sup.terminateChild("b")))).toBeInstanceOf(NotFoundError)
      const badOptions = failureOf(yield* Effect.exit(Supervisor.make({ maxRestarts: -1 })))
      expect((badOptions as ValidationError).field).toBe("supervisor.maxRestarts")
      const dup = failureOf(yield* Effect.exit(Supervisor.make({ children: [h.child("x"), h.child("x")] })))
      expect((dup as ValidationError).field).toBe("supervisor.children.1.id")
    }))

  it.scoped.prop(
    "random kills: never two incarnations of a child at once; permanent children always come back",
    [fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.constantFrom<Command>("fail", "die", "exit"), fc.boolean()), { maxLength: 25 })],
    ([kills]) =>
      Effect.gen(function*() {
        const h = yield* harness
        const ids = ["a", "b", "c", "d"]
        const sup = yield* Supervisor.make({
          strategy: "rest_for_one",
          maxRestarts: 1000,
          children: ids.map((id) => h.child(id))
        })
        yield* h.until((l) => l.length === 4)
        for (const [i, command, wait] of kills) {
          yield* h.send(ids[i]!, command)
          if (wait) yield* h.settle
        }
        yield* h.settle
        yield* h.settle
        const children = yield* sup.children
        expect(children.map((c) => c.status)).toEqual(["running", "running", "running", "running"])
        expect(h.overlap()).toBe(0)
        // Every start has a matching stop except the live incarnations.
        const log = yield* Ref.get(h.log)
        const starts = log.filter((l) => l.startsWith("start")).length
        const stops = log.filter((l) => l.startsWith("stop")).length
        expect(starts - stops).toBe(4)
      }),
    { fastCheck: { numRuns: 40 } }
  )
})

import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, FastCheck as fc, Fiber, Option, Schema, Scope, Stream, TestClock } from "effect"
import * as ErrorContext from "../../src/errors/ErrorContext.js"
import { BackpressureError } from "../../src/errors/FoundationError.js"
import * as EventBus from "../../src/observability/EventBus.js"
import { matches, parsePattern, parseTopic, TopicTrie } from "../../src/observability/internal/topicTrie.js"

const topicsOf = (events: ReadonlyArray<EventBus.Envelope>) => events.map((e) => e.type)

/** Everything waiting in a subscription, without blocking. */
const drain = (sub: EventBus.Subscription) =>
  Effect.gen(function*() {
    const out: Array<EventBus.Envelope> = []
    for (;;) {
      const next = yield* sub.poll
      if (Option.isNone(next)) return out
      out.push(next.value)
    }
  })

describe("topic routing", () => {
  it("matches exact topics, * for one segment and ** for any trailing segments", () => {
    const p = (s: string) => parsePattern(s) as ReadonlyArray<string>
    const t = (s: string) => parseTopic(s) as ReadonlyArray<string>
    expect(matches(p("agent.task.completed"), t("agent.task.completed"))).toBe(true)
    expect(matches(p("agent.*.completed"), t("agent.task.completed"))).toBe(true)
    expect(matches(p("agent.*"), t("agent.task.completed"))).toBe(false)
    expect(matches(p("agent.**"), t("agent.task.completed"))).toBe(true)
    expect(matches(p("agent.**"), t("agent"))).toBe(true)
    expect(matches(p("**"), t("anything.at.all"))).toBe(true)
    expect(matches(p("agent.task"), t("agent.task.completed"))).toBe(false)
  })

  it("the trie finds the same subscriptions as a direct match, and prunes what is removed", () => {
    fc.assert(fc.property(
      fc.array(fc.array(fc.constantFrom("a", "b", "*"), { minLength: 1, maxLength: 3 }), { maxLength: 20 }),
      fc.array(fc.constantFrom("a", "b", "c"), { minLength: 1, maxLength: 4 }),
      fc.boolean(),
      (patterns, topic, withGlobstar) => {
        const trie = new TopicTrie<number>()
        const all = patterns.map((p) => withGlobstar ? [...p, "**"] : p)
        all.forEach((p, i) => trie.add(p, i))
        const found: Array<number> = []
        trie.match(topic, found)
        const expected = all.flatMap((p, i) => matches(p, topic) ? [i] : [])
        expect([...found].sort((a, b) => a - b)).toEqual(expected)
        all.forEach((p, i) => trie.remove(p, i))
        const none: Array<number> = []
        trie.match(topic, none)
        expect(none).toEqual([])
      }
    ))
  })

  it("rejects bad topics and patterns", () => {
    expect(parseTopic("")).toBe("must not be empty")
    expect(parseTopic("a..b")).toContain("empty segment")
    expect(parseTopic("a.*")).toContain("wildcards")
    expect(parsePattern("a.**.b")).toContain("only as the last segment")
    expect(parsePattern("a.b*")).toContain("whole segment")
  })
})

describe("EventBus", () => {
  it.scoped("delivers to exact and pattern subscriptions, and only to those that match", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.make()
      const exact = yield* bus.subscribe("agent.task.completed")
      const star = yield* bus.subscribe("agent.*.completed")
      const rest = yield* bus.subscribe("agent.**")
      const other = yield* bus.subscribe("cache.*")
      yield* bus.publish("agent.task.completed", { id: 1 })
      yield* bus.publish("agent.task.failed", { id: 2 })
      yield* bus.publish("agent", { id: 3 })
      expect(topicsOf(yield* drain(exact))).toEqual(["agent.task.completed"])
      expect(topicsOf(yield* drain(star))).toEqual(["agent.task.completed"])
      expect(topicsOf(yield* drain(rest))).toEqual(["agent.task.completed", "agent.task.failed", "agent"])
      expect(yield* drain(other)).toEqual([])
    }))

  it.scoped("wraps data in a CloudEvents envelope: id, type, source, time from the Clock, correlation id", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.make({ source: "orders-service" })
      const sub = yield* bus.subscribe("order.*")
      yield* TestClock.adjust("1234 millis")
      yield* bus.publish("order.created", { total: 42 })
      yield* bus.publish("order.paid", null, { source: "payments", correlationId: "corr_given" })
      yield* bus.publish("order.shipped", 1).pipe(ErrorContext.withContext("ship", { correlationId: "corr_ctx" }))
      const [created, paid, shipped] = yield* drain(sub)
      expect(created).toMatchObject({
        specversion: "1.0",
        type: "order.created",
        source: "orders-service",
        time: 1234,
        data: { total: 42 },
        correlationId: undefined
      })
      expect(paid).toMatchObject({ source: "payments", correlationId: "corr_given" })
      expect(shipped?.correlationId).toBe("corr_ctx")
      expect(new Set([created!.id, paid!.id, shipped!.id]).size).toBe(3)
    }))

  it.scoped("validates data with the publisher's schema; rejected data is not published", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.make()
      const sub = yield* bus.subscribe("user.created")
      const User = Schema.Struct({ id: Schema.String, age: Schema.Number })
      yield* bus.publish("user.created", { id: "u1", age: 30 }, { schema: User })
      const bad = yield* Effect.flip(bus.publish("user.created", { id: "u2", age: "old" }, { schema: User }))
      expect(bad._tag).toBe("ValidationError")
      expect(bad).toMatchObject({ field: "data.age" })
      expect((yield* drain(sub)).map((e) => e.data)).toEqual([{ id: "u1", age: 30 }])
      expect((yield* bus.stats).published).toBe(1)
    }))

  it.scoped("backpressure: the publisher waits until the subscriber makes room", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.make()
      const sub = yield* bus.subscribe("t", { strategy: "backpressure", capacity: 2 })
      yield* bus.publish("t", 1)
      yield* bus.publish("t", 2)
      const third = yield* Effect.fork(bus.publish("t", 3))
      yield* Effect.yieldNow()
      expect(third.unsafePoll()).toBeNull()
      expect((yield* sub.take).data).toBe(1)
      yield* Fiber.join(third)
      expect((yield* drain(sub)).map((e) => e.data)).toEqual([2, 3])
      expect(yield* sub.stats).toMatchObject({ published: 3, delivered: 3, dropped: 0, pending: 0 })
    }))

  it.scoped("a publisher interrupted while waiting leaves the event counted as dropped", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.make()
      const sub = yield* bus.subscribe("t", { strategy: "backpressure", capacity: 1 })
      yield* bus.publish("t", 1)
      const waiting = yield* Effect.fork(bus.publish("t", 2))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(waiting)
      expect(yield* sub.stats).toMatchObject({ published: 2, delivered: 0, dropped: 1, pending: 1 })
    }))

  it.scoped("a publisher waiting on several full subscriptions, interrupted: each counts the event once", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.make()
      const a = yield* bus.subscribe("t", { capacity: 1 })
      const b = yield* bus.subscribe("t", { capacity: 1 })
      yield* bus.publish("t", 1)
      const waiting = yield* Effect.fork(bus.publish("t", 2))
      yield* Effect.yieldNow()
      expect(yield* a.stats).toMatchObject({ published: 2, pending: 2, dropped: 0 }) // one in, one waiting
      yield* a.take // room in a: the event gets into a, still waiting for b
      yield* Fiber.interrupt(waiting)
      expect(yield* a.stats).toMatchObject({ published: 2, delivered: 1, dropped: 0, pending: 1 })
      expect(yield* b.stats).toMatchObject({ published: 2, delivered: 0, dropped: 1, pending: 1 })
    }))

  it.scoped("an event accepted as its publisher is interrupted is delivered, never also counted as dropped", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.make()
      const sub = yield* bus.subscribe("t", { capacity: 1 })
      yield* bus.publish("t", 1)
      const waiting = yield* Effect.fork(bus.publish("t", 2))
      yield* Effect.yieldNow()
      // in one step: the interruption is queued, then a take makes room and accepts the event
      yield* Effect.withFiberRuntime((self) => {
        waiting.unsafeInterruptAsFork(self.id())
        return sub.take
      })
      yield* Fiber.await(waiting)
      const stats = yield* sub.stats
      expect(stats).toMatchObject({ published: 2, delivered: 1, dropped: 0, pending: 1 })
      expect((yield* sub.take).data).toBe(2)
    }))

  it.scoped("publishers never overtake the ones waiting: every subscription gets events in order", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.make()
      const a = yield* bus.subscribe("t", { capacity: 1 })
      const b = yield* bus.subscribe("t", { capacity: 1 })
      yield* bus.publish("t", 1)
      const second = yield* Effect.fork(bus.publish("t", 2))
      yield* Effect.yieldNow()
      yield* a.take // room in a only
      const third = yield* Effect.fork(bus.publish("t", 3))
      yield* Effect.yieldNow()
      const rest = (sub: EventBus.Subscription) => Effect.forEach([1, 2], () => Effect.map(sub.take, (e) => e.data))
      const fromA = yield* Effect.fork(rest(a))
      const fromB = yield* Effect.fork(Effect.forEach([1, 2, 3], () => Effect.map(b.take, (e) => e.data)))
      yield* Fiber.join(second)
      yield* Fiber.join(third)
      expect(yield* Fiber.join(fromA)).toEqual([2, 3])
      expect(yield* Fiber.join(fromB)).toEqual([1, 2, 3])
    }))

  it.effect("reading a subscription after its bus closed interrupts the reader", () =>
    Effect.gen(function*() {
      const busScope = yield* Scope.make()
      const bus = yield* EventBus.make().pipe(Scope.extend(busScope))
      const sub = yield* bus.subscribe("t").pipe(Scope.extend(busScope))
      const reader = yield* Effect.fork(sub.take)
      yield* Effect.yieldNow()
      yield* Scope.close(busScope, Exit.void)
      const exit = yield* Fiber.await(reader)
      expect(Exit.isInterrupted(exit)).toBe(true)
    }))

  it.scoped("dropping drops the newest, sliding the oldest; both counted", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.make()
      const dropping = yield* bus.subscribe("t", { strategy: "dropping", capacity: 2 })
      const sliding = yield* bus.subscribe("t", { strategy: "sliding", capacity: 2 })
      yield* Effect.forEach([1, 2, 3, 4], (n) => bus.publish("t", n))
      expect((yield* drain(dropping)).map((e) => e.data)).toEqual([1, 2])
      expect((yield* drain(sliding)).map((e) => e.data)).toEqual([3, 4])
      expect(yield* dropping.stats).toMatchObject({ published: 4, delivered: 2, dropped: 2, pending: 0 })
      expect(yield* sliding.stats).toMatchObject({ published: 4, delivered: 2, dropped: 2, pending: 0 })
      expect((yield* bus.stats).dropped).toBe(4)
    }))

  it.scoped("reject: a full subscription fails the publish with BackpressureError, and nobody gets the event", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.make()
      const strict = yield* bus.subscribe("t", { strategy: "reject", capacity: 1 })
      const relaxed = yield* bus.subscribe("t", { strategy: "dropping", capacity: 10 })
      yield* bus.publish("t", 1)
      const error = yield* Effect.flip(bus.publish("t", 2))
      expect(error).toBeInstanceOf(BackpressureError)
      expect(error).toMatchObject({ category: "resource", capacity: 1 })
      expect((yield* drain(relaxed)).map((e) => e.data)).toEqual([1])
      expect(yield* strict.stats).toMatchObject({ published: 1, dropped: 0, pending: 1 })
      expect((yield* bus.stats).published).toBe(1)
      yield* strict.take
      yield* bus.publish("t", 3) // room again
      expect((yield* strict.take).data).toBe(3)
    }))

  it.scoped("unsafePublish never waits or refuses: a full subscription drops for itself only", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.make()
      const sub = yield* bus.subscribe("t", { capacity: 1 })
      const strict = yield* bus.subscribe("t", { capacity: 1, strategy: "reject" })
      const roomy = yield* bus.subscribe("t", { capacity: 10 })
      expect(bus.unsafePublish("t", 1)).toBeUndefined()
      expect(bus.unsafePublish("t", 2)).toBeUndefined()
      expect(yield* sub.stats).toMatchObject({ published: 2, dropped: 1, pending: 1 })
      expect(yield* strict.stats).toMatchObject({ published: 2, dropped: 1, pending: 1 })
      expect(yield* roomy.stats).toMatchObject({ published: 2, dropped: 0, pending: 2 })
      expect(bus.unsafePublish("bad..topic", 3)?._tag).toBe("ValidationError")
    }))

  it.effect("closing a subscription's scope unsubscribes and counts what was pending as dropped", () =>
    Effect.gen(function*() {
      const busScope = yield* Scope.make()
      const bus = yield* EventBus.make().pipe(Scope.extend(busScope))
      const subScope = yield* Scope.make()
      const sub = yield* bus.subscribe("t").pipe(Scope.extend(subScope))
      yield* bus.publish("t", 1)
      yield* bus.publish("t", 2)
      yield* sub.take
      const statsBefore = yield* sub.stats
      yield* Scope.close(subScope, Exit.void)
      const stats = yield* sub.stats
      expect(statsBefore).toMatchObject({ published: 2, delivered: 1, dropped: 0, pending: 1 })
      expect(stats).toMatchObject({ published: 2, delivered: 1, dropped: 1, pending: 0 })
      yield* bus.publish("t", 3)
      expect((yield* bus.stats).subscriptions).toEqual([])
      yield* Scope.close(busScope, Exit.void)
    }))

  it.effect("closing the bus ends its subscriptions' streams", () =>
    Effect.gen(function*() {
      const busScope = yield* Scope.make()
      const bus = yield* EventBus.make().pipe(Scope.extend(busScope))
      const collected = yield* Effect.fork(Effect.scoped(Effect.flatMap(bus.subscribe("t"), (sub) => Stream.runCollect(sub.stream))))
      while ((yield* bus.stats).subscriptions.length === 0) yield* Effect.yieldNow()
      yield* bus.publish("t", "a")
      yield* Effect.yieldNow()
      yield* Scope.close(busScope, Exit.void)
      const events = Chunk.toReadonlyArray(yield* Fiber.join(collected))
      expect(events.map((e) => e.data)).toEqual(["a"])
    }))

  it.scoped("replays the last events of matching topics to late subscribers that ask for it", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.make({ replay: 2 })
      yield* Effect.forEach([1, 2, 3], (n) => bus.publish("a.x", n))
      yield* bus.publish("a.y", 10)
      yield* bus.publish("b.z", 99)
      const late = yield* bus.subscribe("a.*", { replay: true })
      const plain = yield* bus.subscribe("a.*")
      yield* bus.publish("a.x", 4)
      expect((yield* drain(late)).map((e) => e.data)).toEqual([2, 3, 10, 4])
      expect((yield* drain(plain)).map((e) => e.data)).toEqual([4])
      expect(yield* late.stats).toMatchObject({ published: 4, delivered: 4 })
    }))

  it.scoped("streams events as they come, through bus.stream", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.make()
      const fiber = yield* Effect.fork(bus.stream("job.*").pipe(Stream.take(3), Stream.runCollect))
      // the stream subscribes when it starts running: wait for that
      while ((yield* bus.stats).subscriptions.length === 0) yield* Effect.yieldNow()
      yield* Effect.forEach(["job.a", "other", "job.b", "job.c"], (t) => bus.publish(t, t))
      const events = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      expect(topicsOf(events)).toEqual(["job.a", "job.b", "job.c"])
      expect((yield* bus.stats).subscriptions).toEqual([]) // the stream's subscription ended with it
    }))

  it.scoped("rejects bad options, topics and patterns", () =>
    Effect.gen(function*() {
      expect((yield* Effect.flip(EventBus.make({ capacity: 0 }))).field).toBe("eventBus.capacity")
      expect((yield* Effect.flip(EventBus.make({ replay: -1 }))).field).toBe("eventBus.replay")
      const bus = yield* EventBus.make()
      expect((yield* Effect.flip(bus.subscribe("a.**.b"))).field).toBe("pattern")
      expect((yield* Effect.flip(bus.subscribe("a", { capacity: 1.5 }))).field).toBe("subscribe.capacity")
      expect((yield* Effect.flip(bus.subscribe("a", { strategy: "lossy" as EventBus.Strategy }))).field).toBe(
        "subscribe.strategy"
      )
      expect(yield* Effect.flip(bus.publish("a..b", 1))).toMatchObject({ field: "topic" })
      expect(yield* Effect.flip(bus.publish("a.*", 1))).toMatchObject({ field: "topic" })
    }))

  it.effect.prop(
    "published = delivered + dropped + pending for every subscription, whatever happens",
    {
      steps: fc.array(
        fc.oneof(
          fc.record({ op: fc.constant("publish" as const), topic: fc.constantFrom("a.b", "a.c", "x.y") }),
          fc.record({ op: fc.constant("publishForked" as const), topic: fc.constantFrom("x.y", "a.b") }),
          fc.record({ op: fc.constant("interrupt" as const) }),
          fc.record({ op: fc.constant("take" as const), sub: fc.integer({ min: 0, max: 4 }) }),
          fc.record({ op: fc.constant("close" as const), sub: fc.integer({ min: 0, max: 4 }) })
        ),
        { maxLength: 80 }
      )
    },
    ({ steps }) =>
      Effect.scoped(Effect.gen(function*() {
        const bus = yield* EventBus.make()
        const setups: ReadonlyArray<readonly [string, EventBus.SubscribeOptions]> = [
          ["a.*", { strategy: "dropping", capacity: 3 }],
          ["**", { strategy: "sliding", capacity: 2 }],
          ["a.b", { strategy: "reject", capacity: 4 }],
          ["x.*", { strategy: "backpressure", capacity: 2 }],
          ["**", { strategy: "backpressure", capacity: 1 }]
        ]
        const subs = yield* Effect.forEach(setups, ([pattern, options]) =>
          Effect.gen(function*() {
            const scope = yield* Scope.make()
            const sub = yield* bus.subscribe(pattern, options).pipe(Scope.extend(scope))
            return { sub, scope, open: true }
          }))
        const publishers: Array<import("effect/Fiber").RuntimeFiber<void, unknown>> = []
        for (const step of steps) {
          if (step.op === "publish") yield* Effect.exit(bus.publish(step.topic, 0).pipe(Effect.timeoutOption(0)))
          else if (step.op === "publishForked") publishers.push(yield* Effect.fork(bus.publish(step.topic, 0)))
          else if (step.op === "interrupt") {
            const p = publishers.shift()
            if (p !== undefined) yield* Fiber.interrupt(p)
          } else {
            const s = subs[step.sub % subs.length]!
            if (!s.open) continue
            if (step.op === "take") yield* s.sub.poll
            else {
              yield* Scope.close(s.scope, Exit.void)
              s.open = false
            }
          }
          yield* Effect.yieldNow()
          for (const s of subs) {
            const st = yield* s.sub.stats
            expect(st.published).toBe(st.delivered + st.dropped + st.pending)
          }
        }
      })),
    { fastCheck: { numRuns: 100 } }
  )
})

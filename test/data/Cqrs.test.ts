import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Metric, Option, Redacted, Ref, Schema, TestClock } from "effect"
import * as Cqrs from "../../src/data/Cqrs.js"
import * as ErrorContext from "../../src/errors/ErrorContext.js"
import { NotFoundError, ValidationError } from "../../src/errors/FoundationError.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as Telemetry from "../../src/observability/Telemetry.js"

// The TestClock starts at 0 in every test. Metric series are global: each test uses its own names.

interface Seen {
  readonly name: string
  readonly measurements: Record<string, number>
  readonly metadata: Record<string, unknown>
  readonly correlationId: string | undefined
}

/** Subscribes to the cqrs events; the effect returned drains those emitted since. */
const recorder = Effect.gen(function*() {
  const bus = yield* EventBus.EventBus
  const sub = yield* bus.subscribe("foundation.cqrs.**", { capacity: 1000 })
  return Effect.gen(function*() {
    const out: Array<Seen> = []
    for (;;) {
      const next = yield* sub.poll
      if (Option.isNone(next)) return out
      const data = next.value.data as { measurements: Record<string, number>; metadata: Record<string, unknown> }
      out.push({
        name: next.value.type,
        measurements: data.measurements,
        metadata: data.metadata,
        correlationId: next.value.correlationId
      })
    }
  })
})

const withTelemetry = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, Telemetry.layerWithBus())

/** The state of a metric with the given name and tags. */
const metric = (name: string, tags: Record<string, string>) =>
  Effect.map(Metric.snapshot, (pairs) =>
    pairs.find((p) =>
      p.metricKey.name === name &&
      Object.entries(tags).every(([k, v]) => p.metricKey.tags.some((t) => t.key === k && t.value === v))
    )?.metricState as { readonly count?: number; readonly sum?: number; readonly max?: number } | undefined)

const counterOf = (name: string, tags: Record<string, string>) =>
  Effect.map(metric(name, tags), (state) => state?.count ?? 0)

const CreateUser = Schema.Struct({
  name: Schema.String,
  age: Schema.optional(Schema.Number),
  address: Schema.Struct({ city: Schema.String, zip: Schema.String.pipe(Schema.pattern(/^\d{5}$/)) }),
  tags: Schema.optional(Schema.Array(Schema.String))
})

const countingCommand = (name: string) =>
  Effect.gen(function*() {
    const runs = yield* Ref.make(0)
    const command = yield* Cqrs.defineCommand({
      name,
      params: CreateUser,
      execute: (params) => Effect.as(Ref.update(runs, (n) => n + 1), `created ${params.name}`)
    })
    return { command, runs }
  })

describe("Cqrs", () => {
  describe("commands: params", () => {
    it.scoped("bad params fail with a ValidationError naming the field (nested, in arrays) and never run execute", () =>
      withTelemetry(Effect.gen(function*() {
        const drain = yield* recorder
        const { command, runs } = yield* countingCommand("create_user")
        const error = yield* Effect.flip(command.dispatch({ name: "Ada", address: { city: "Paris", zip: "75A01" } }))
        expect(error).toBeInstanceOf(ValidationError)
        expect(error).toMatchObject({ _tag: "ValidationError", field: "create_user.address.zip", category: "validation" })

        // Every issue is listed, each with its full path.
        const many = yield* Effect.flip(command.dispatch({ name: 1, address: { zip: "1" }, tags: ["a", 2] }))
        // (Schema also reports `tags` itself: an optional field is a union with undefined.)
        expect((many as ValidationError).issues?.map((i) => i.field)).toEqual([
          "create_user.name",
          "create_user.address.city",
          "create_user.address.zip",
          "create_user.tags.1",
          "create_user.tags"
        ])
        const root = yield* Effect.flip(command.dispatch("not an object"))
        expect((root as ValidationError).field).toBe("create_user")
        expect(yield* Ref.get(runs)).toBe(0)

        // A rejected call emits only `completed`, with success false.
        const seen = yield* drain
        expect(seen.map((e) => e.name)).toEqual([
          Cqrs.events.commandCompleted,
          Cqrs.events.commandCompleted,
          Cqrs.events.commandCompleted
        ])
        expect(seen[0]?.metadata).toEqual({ command: "create_user", success: false, error: "ValidationError" })
      })))

    it.effect("optional fields may be absent", () =>
      Effect.gen(function*() {
        const { command, runs } = yield* countingCommand("create_user_optional")
        expect(yield* command.dispatch({ name: "Ada", address: { city: "Paris", zip: "75001" } })).toBe("created Ada")
        expect(yield* command.dispatch({ name: "Bo", age: 3, address: { city: "Oslo", zip: "01500" }, tags: [] })).toBe(
          "created Bo"
        )
        // Present but of the wrong type still fails.
        const error = yield* Effect.flip(command.dispatch({ name: "Cy", age: "3", address: { city: "a", zip: "12345" } }))
        expect((error as ValidationError).field).toBe("create_user_optional.age")
        expect(yield* Ref.get(runs)).toBe(2)
      }))

    it.effect("validation messages never quote a secret", () =>
      Effect.gen(function*() {
        const command = yield* Cqrs.defineCommand({
          name: "login",
          params: Schema.Struct({
            user: Schema.String,
            credentials: Schema.Struct({ password: Schema.String.pipe(Schema.minLength(8)) }),
            profile: Schema.Union(Schema.String, Schema.Number)
          }),
          execute: () => Effect.void
        })
        const error = (yield* Effect.flip(
          command.dispatch({
            user: "ada",
            credentials: { password: "hunter2" },
            profile: { apiKey: "sk_live_123", shown: "visible" }
          })
        )) as ValidationError
        const text = JSON.stringify(error.issues) + error.message
        expect(text).not.toContain("hunter2")
        expect(text).not.toContain("sk_live_123")
        expect(text).toContain("[REDACTED]")
        expect(text).toContain("visible") // non-secret values are still quoted
        expect(error.field).toBe("login.credentials.password")
        expect(error.reason).toContain("at least 8")
      }))

    it.effect("execute's errors pass through untouched", () =>
      Effect.gen(function*() {
        const failure = new NotFoundError({ resource: "user", key: "u1" })
        const command = yield* Cqrs.defineCommand({
          name: "delete_user",
          params: Schema.Struct({ id: Schema.String }),
          execute: () => Effect.fail(failure)
        })
        const error = yield* Effect.flip(command.dispatch({ id: "u1" }))
        expect(error).toBe(failure)
      }))

    it.effect("bad options fail with a ValidationError naming the option", () =>
      Effect.gen(function*() {
        const field = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
          Effect.map(Effect.flip(effect), (e) => (e as ValidationError).field)
        expect(yield* field(Cqrs.defineCommand({ name: "", params: Schema.String, execute: () => Effect.void }))).toBe(
          "command.name"
        )
        expect(
          yield* field(Cqrs.defineCommand({ name: "c", params: {} as Schema.Schema<string>, execute: () => Effect.void }))
        ).toBe("command.params")
        const query = (options: Partial<Cqrs.QueryOptions<string, string, number, never, never>>) =>
          field(Effect.scoped(Cqrs.defineQuery({ name: "q", params: Schema.String, execute: () => Effect.succeed(1), ...options })))
        expect(yield* query({ cacheTtl: 0 })).toBe("query.cacheTtl")
        expect(yield* query({ cacheTtl: -5 })).toBe("query.cacheTtl")
        expect(yield* query({ cacheTtl: "1 second", cache: { maxSize: 0 } })).toBe("query.cache.maxSize")
      }))
  })

  describe("commands: telemetry and metrics", () => {
    it.scoped("events carry redacted params and durations measured on the Clock", () =>
      withTelemetry(Effect.gen(function*() {
        const drain = yield* recorder
        const entered = yield* Deferred.make<void>()
        const command = yield* Cqrs.defineCommand({
          name: "register",
          params: Schema.Struct({
            user: Schema.Struct({ name: Schema.String, password: Schema.String }),
            sessions: Schema.Array(Schema.Struct({ id: Schema.Number, token: Schema.String })),
            config: Schema.Struct({ apiKey: Schema.String, nested: Schema.Struct({ client_secret: Schema.String }) }),
            pin: Schema.Redacted(Schema.String)
          }),
          execute: (params) =>
            Deferred.succeed(entered, undefined).pipe(
              Effect.zipRight(Effect.sleep("1500 millis")),
              Effect.as(params.user.name)
            )
        })
        const input = {
          user: { name: "ada", password: "hunter2" },
          sessions: [{ id: 1, token: "t-1" }, { id: 2, token: "t-2" }],
          config: { apiKey: "sk_1", nested: { client_secret: "s3cr3t" } },
          pin: "1234"
        }
        const fiber = yield* Effect.fork(
          command.dispatch(input).pipe(ErrorContext.withContext("signup", { correlationId: "corr_1" }))
        )
        yield* Deferred.await(entered)
        yield* TestClock.adjust("1500 millis")
        expect(yield* Fiber.join(fiber)).toBe("ada")

        const [started, completed] = yield* drain
        expect(started?.name).toBe(Cqrs.events.commandStarted)
        expect(started?.metadata).toEqual({
          command: "register",
          params: {
            user: { name: "ada", password: "[REDACTED]" },
            sessions: [{ id: 1, token: "[REDACTED]" }, { id: 2, token: "[REDACTED]" }],
            config: { apiKey: "[REDACTED]", nested: { client_secret: "[REDACTED]" } },
            pin: "[REDACTED]"
          }
        })
        expect(JSON.stringify(started)).not.toMatch(/hunter2|t-1|sk_1|s3cr3t|1234/)
        expect(started?.correlationId).toBe("corr_1")
        expect(completed?.name).toBe(Cqrs.events.commandCompleted)
        expect(completed?.measurements).toEqual({ duration_us: 1_500_000, duration: 1500 })
        expect(completed?.metadata).toEqual({ command: "register", success: true })
        expect(input.user.password).toBe("hunter2") // the caller's input is not touched
      })))

    it.scoped("a failure reports its tag; metrics count outcomes and durations", () =>
      withTelemetry(Effect.gen(function*() {
        const drain = yield* recorder
        const command = yield* Cqrs.defineCommand({
          name: "charge_metrics",
          params: Schema.Struct({ amount: Schema.Number }),
          execute: ({ amount }) =>
            Effect.sleep(Duration.millis(amount)).pipe(
              Effect.zipRight(amount > 100 ? Effect.fail(new NotFoundError({ resource: "card", key: "c" })) : Effect.void)
            )
        })
        const run = (amount: unknown) =>
          Effect.gen(function*() {
            const fiber = yield* Effect.fork(Effect.exit(command.dispatch({ amount })))
            yield* TestClock.adjust(Duration.millis(typeof amount === "number" ? amount : 0))
            return yield* Fiber.join(fiber)
          })
        expect(Exit.isSuccess(yield* run(20))).toBe(true)
        expect(Exit.isSuccess(yield* run(30))).toBe(true)
        expect(Exit.isFailure(yield* run(200))).toBe(true)
        expect(Exit.isFailure(yield* run("x"))).toBe(true)

        const tags = (outcome: string) => ({ command: "charge_metrics", outcome })
        expect(yield* counterOf("foundation_cqrs_commands_total", tags("success"))).toBe(2)
        expect(yield* counterOf("foundation_cqrs_commands_total", tags("failure"))).toBe(1)
        expect(yield* counterOf("foundation_cqrs_commands_total", tags("invalid"))).toBe(1)
        const histogram = yield* metric("foundation_cqrs_command_duration_us", { command: "charge_metrics" })
        expect(histogram).toMatchObject({ count: 3, sum: 250_000, max: 200_000 })

        const completed = (yield* drain).filter((e) => e.name === Cqrs.events.commandCompleted)
        expect(completed.map((e) => e.metadata["error"])).toEqual([undefined, undefined, "NotFoundError", "ValidationError"])
        expect(completed.map((e) => e.measurements["duration_us"])).toEqual([20_000, 30_000, 200_000, 0])
      })))
  })

  describe("redact", () => {
    it("replaces secret fields at any depth, in arrays, maps and Redacted values; copies deeply", () => {
      const shared = { label: "x" }
      const input = {
        Password: "p",
        passwd: "p",
        nested: { deep: [{ access_token: "t", keep: 1 }, "plain"], API_KEY: "k", "api-key": "k", Authorization: "Bearer" },
        credentials: { user: "u" },
        hidden: Redacted.make("r"),
        map: new Map<string, unknown>([["secret", "s"], ["ok", { token: "t" }]]),
        when: new Date(0),
        a: shared,
        b: shared
      }
      const out = Cqrs.redact(input) as Record<string, unknown>
      expect(out).toEqual({
        Password: "[REDACTED]",
        passwd: "[REDACTED]",
        nested: {
          deep: [{ access_token: "[REDACTED]", keep: 1 }, "plain"],
          API_KEY: "[REDACTED]",
          "api-key": "[REDACTED]",
          Authorization: "[REDACTED]"
        },
        credentials: "[REDACTED]",
        hidden: "[REDACTED]",
        map: new Map<string, unknown>([["secret", "[REDACTED]"], ["ok", { token: "[REDACTED]" }]]),
        when: new Date(0),
        a: { label: "x" },
        b: { label: "x" } // shared, not circular
      })
      expect(out["nested"]).not.toBe(input.nested)
      expect(input.nested.deep[0]).toEqual({ access_token: "t", keep: 1 })
      expect(Cqrs.redact("token")).toBe("token") // a bare value has no field name
    })

    it("cycles become [Circular] and do not hang", () => {
      const a: Record<string, unknown> = { name: "a" }
      const list: Array<unknown> = [a]
      a["self"] = a
      a["list"] = list
      list.push(list)
      // `a` inside `list` is an ancestor: a cycle too.
      expect(Cqrs.redact(a)).toEqual({ name: "a", self: "[Circular]", list: ["[Circular]", "[Circular]"] })
      expect(Cqrs.redact(list)).toEqual([{ name: "a", self: "[Circular]", list: "[Circular]" }, "[Circular]"])
      expect(() => JSON.stringify(Cqrs.redact(a))).not.toThrow()
    })
  })

  describe("queries: cache", () => {
    const GetUser = Schema.Struct({ id: Schema.String, include: Schema.optional(Schema.Array(Schema.String)) })

    const countingQuery = (name: string, options: Partial<Cqrs.QueryOptions<typeof GetUser.Type, typeof GetUser.Encoded, string, never, never>> = {}) =>
      Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        const query = yield* Cqrs.defineQuery({
          name,
          params: GetUser,
          cacheTtl: "10 seconds",
          execute: (params) => Effect.as(Ref.update(runs, (n) => n + 1), `user ${params.id}`),
          ...options
        })
        return { query, runs }
      })

    const hits = (seen: ReadonlyArray<Seen>) =>
      seen.filter((e) => e.name === Cqrs.events.queryExecuted).map((e) => e.metadata["cache_hit"])

    it.scoped("first call misses, then hits until the TTL, then misses again; metrics agree", () =>
      withTelemetry(Effect.gen(function*() {
        const drain = yield* recorder
        const { query, runs } = yield* countingQuery("get_user_ttl")
        expect(yield* query.fetch({ id: "1" })).toBe("user 1")
        expect(yield* query.fetch({ id: "1" })).toBe("user 1")
        yield* TestClock.adjust("9999 millis")
        expect(yield* query.fetch({ id: "1" })).toBe("user 1") // last millisecond of the TTL
        expect(yield* Ref.get(runs)).toBe(1)
        yield* TestClock.adjust("1 millis")
        expect(yield* query.fetch({ id: "1" })).toBe("user 1")
        expect(yield* Ref.get(runs)).toBe(2)
        expect(yield* query.fetch({ id: "2" })).toBe("user 2")

        const seen = yield* drain
        expect(hits(seen)).toEqual([false, true, true, false, false])
        expect(seen[1]?.metadata).toEqual({ query: "get_user_ttl", cache_hit: true, coalesced: false, success: true })
        expect(seen[0]?.measurements).toEqual({ duration_us: 0, duration: 0 })

        expect(yield* counterOf("foundation_cqrs_query_cache_misses_total", { query: "get_user_ttl" })).toBe(3)
        expect(yield* counterOf("foundation_cqrs_query_cache_hits_total", { query: "get_user_ttl", source: "stored" })).toBe(2)
        expect(yield* counterOf("foundation_cqrs_query_cache_hits_total", { query: "get_user_ttl", source: "coalesced" })).toBe(0)
        expect(yield* counterOf("foundation_cqrs_queries_total", { query: "get_user_ttl", outcome: "success" })).toBe(5)
      })))

    it.scoped("concurrent identical fetches run execute once; the waiters are coalesced hits", () =>
      withTelemetry(Effect.gen(function*() {
        const drain = yield* recorder
        const runs = yield* Ref.make(0)
        const query = yield* Cqrs.defineQuery({
          name: "slow_user",
          params: GetUser,
          cacheTtl: "1 minute",
          execute: (params) =>
            Ref.update(runs, (n) => n + 1).pipe(Effect.zipRight(Effect.sleep("2 seconds")), Effect.as(`user ${params.id}`))
        })
        const first = yield* Effect.fork(query.fetch({ id: "1" }))
        yield* Effect.yieldNow()
        const others = yield* Effect.fork(
          Effect.all([query.fetch({ id: "1" }), query.fetch({ id: "1", extra: "stripped" })], { concurrency: "unbounded" })
        )
        yield* Effect.yieldNow()
        yield* TestClock.adjust("1 second")
        // A call arriving mid-computation joins it too.
        const late = yield* Effect.fork(query.fetch({ id: "1" }))
        yield* Effect.yieldNow()
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(first)).toBe("user 1")
        expect(yield* Fiber.join(others)).toEqual(["user 1", "user 1"])
        expect(yield* Fiber.join(late)).toBe("user 1")
        expect(yield* Ref.get(runs)).toBe(1)
        // Afterwards: a hit from the stored entry, not a coalesced one.
        expect(yield* query.fetch({ id: "1" })).toBe("user 1")

        const seen = (yield* drain).filter((e) => e.name === Cqrs.events.queryExecuted)
        const summary = seen.map((e) => [e.metadata["cache_hit"], e.metadata["coalesced"], e.measurements["duration_us"]])
        // The waiters finish with the computation (2 s for the first three, 1 s for the late one).
        expect(summary).toEqual([
          [false, false, 2_000_000],
          [true, true, 2_000_000],
          [true, true, 2_000_000],
          [true, true, 1_000_000],
          [true, false, 0]
        ])
        expect(yield* counterOf("foundation_cqrs_query_cache_hits_total", { query: "slow_user", source: "coalesced" })).toBe(3)
        expect(yield* counterOf("foundation_cqrs_query_cache_hits_total", { query: "slow_user", source: "stored" })).toBe(1)
        expect(yield* counterOf("foundation_cqrs_query_cache_misses_total", { query: "slow_user" })).toBe(1)
      })))

    it.scoped("a waiter that takes over an interrupted computation runs execute: a miss", () =>
      withTelemetry(Effect.gen(function*() {
        const drain = yield* recorder
        const runs = yield* Ref.make(0)
        const query = yield* Cqrs.defineQuery({
          name: "takeover",
          params: Schema.Struct({ id: Schema.String }),
          cacheTtl: "1 minute",
          execute: ({ id }) => Ref.update(runs, (n) => n + 1).pipe(Effect.zipRight(Effect.sleep("1 second")), Effect.as(id))
        })
        const first = yield* Effect.fork(query.fetch({ id: "a" }))
        yield* Effect.yieldNow()
        const waiter = yield* Effect.fork(query.fetch({ id: "a" }))
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(first)
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(waiter)).toBe("a")
        expect(yield* Ref.get(runs)).toBe(2)
        const seen = (yield* drain).filter((e) => e.name === Cqrs.events.queryExecuted)
        expect(seen.map((e) => [e.metadata["success"], e.metadata["cache_hit"], e.metadata["error"]])).toEqual([
          [false, false, "Interrupted"],
          [true, false, undefined]
        ])
      })))

    it.scoped("failures are not cached; waiters share a failure", () =>
      withTelemetry(Effect.gen(function*() {
        const drain = yield* recorder
        const runs = yield* Ref.make(0)
        const query = yield* Cqrs.defineQuery({
          name: "flaky",
          params: Schema.Struct({ id: Schema.String }),
          cacheTtl: "1 minute",
          execute: ({ id }) =>
            Effect.flatMap(Ref.updateAndGet(runs, (n) => n + 1), (n) =>
              n === 1
                ? Effect.sleep("1 second").pipe(Effect.zipRight(Effect.fail(new NotFoundError({ resource: "user", key: id }))))
                : Effect.succeed(`user ${id} (run ${n})`))
        })
        const first = yield* Effect.fork(Effect.flip(query.fetch({ id: "1" })))
        yield* Effect.yieldNow()
        const waiter = yield* Effect.fork(Effect.flip(query.fetch({ id: "1" })))
        yield* Effect.yieldNow()
        yield* TestClock.adjust("1 second")
        const error = yield* Fiber.join(first)
        expect(error).toBeInstanceOf(NotFoundError)
        expect(yield* Fiber.join(waiter)).toBe(error) // the same failure, untouched
        expect(yield* query.fetch({ id: "1" })).toBe("user 1 (run 2)") // not cached: execute runs again
        expect(yield* query.fetch({ id: "1" })).toBe("user 1 (run 2)")
        expect(yield* Ref.get(runs)).toBe(2)
        const seen = (yield* drain).filter((e) => e.name === Cqrs.events.queryExecuted)
        expect(seen.map((e) => [e.metadata["success"], e.metadata["cache_hit"], e.metadata["coalesced"]])).toEqual([
          [false, false, false],
          [false, true, true],
          [true, false, false],
          [true, true, false]
        ])
        expect(seen[0]?.metadata["error"]).toBe("NotFoundError")
      })))

    it.scoped("invalidate drops one entry, invalidateAll every entry", () =>
      Effect.gen(function*() {
        const { query, runs } = yield* countingQuery("invalidated")
        yield* query.fetch({ id: "1" })
        yield* query.fetch({ id: "2" })
        expect(yield* query.invalidate({ id: "1" })).toBe(true)
        expect(yield* query.invalidate({ id: "1" })).toBe(false)
        yield* query.fetch({ id: "1" })
        yield* query.fetch({ id: "2" })
        expect(yield* Ref.get(runs)).toBe(3)
        expect(yield* query.invalidateAll).toBe(2)
        yield* query.fetch({ id: "1" })
        yield* query.fetch({ id: "2" })
        expect(yield* Ref.get(runs)).toBe(5)
        const error = yield* Effect.flip(query.invalidate({ id: 1 }))
        expect(error.field).toBe("invalidated.id")
      }))

    it.scoped("cache keys are stable under key order and excess properties; cacheKey replaces them", () =>
      Effect.gen(function*() {
        expect(Cqrs.canonicalJson({ b: [2, { y: 1, x: undefined, w: null }], a: "1" })).toBe(
          "{\"a\":\"1\",\"b\":[2,{\"w\":null,\"y\":1}]}"
        )
        expect(Cqrs.canonicalJson({ a: 1, b: 2 })).toBe(Cqrs.canonicalJson({ b: 2, a: 1 }))

        const { query, runs } = yield* countingQuery("ordered")
        yield* query.fetch({ id: "1", include: ["a", "b"] })
        yield* query.fetch({ include: ["a", "b"], id: "1" })
        yield* query.fetch({ include: ["a", "b"], id: "1", extra: "ignored by the schema" })
        expect(yield* Ref.get(runs)).toBe(1)
        yield* query.fetch({ id: "1", include: ["b", "a"] }) // array order matters
        expect(yield* Ref.get(runs)).toBe(2)

        const custom = yield* countingQuery("by_id", { cacheKey: (params) => params.id })
        yield* custom.query.fetch({ id: "1", include: ["a"] })
        yield* custom.query.fetch({ id: "1", include: ["b"] })
        expect(yield* Ref.get(custom.runs)).toBe(1)
      }))

    it.scoped("uncached queries run execute every time and report no hit; bad params are rejected", () =>
      withTelemetry(Effect.gen(function*() {
        const drain = yield* recorder
        const runs = yield* Ref.make(0)
        const query = yield* Cqrs.defineQuery({
          name: "uncached",
          params: Schema.Struct({ id: Schema.NumberFromString }),
          execute: ({ id }) => Effect.as(Ref.update(runs, (n) => n + 1), id * 2)
        })
        expect(query.cached).toBe(false)
        expect(yield* query.fetch({ id: "21" })).toBe(42)
        expect(yield* query.fetch({ id: "21" })).toBe(42)
        const error = yield* Effect.flip(query.fetch({ id: "x" }))
        expect(error.field).toBe("uncached.id")
        expect(yield* Ref.get(runs)).toBe(2)
        expect(yield* query.invalidateAll).toBe(0)
        const seen = (yield* drain).map((e) => e.metadata)
        expect(seen).toEqual([
          { query: "uncached", cache_hit: false, coalesced: false, success: true },
          { query: "uncached", cache_hit: false, coalesced: false, success: true },
          { query: "uncached", cache_hit: false, coalesced: false, success: false, error: "ValidationError" }
        ])
        expect(yield* counterOf("foundation_cqrs_queries_total", { query: "uncached", outcome: "invalid" })).toBe(1)
        expect(yield* counterOf("foundation_cqrs_query_cache_misses_total", { query: "uncached" })).toBe(0)
      })))
  })
})

import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Layer, Option, Schema } from "effect"
import * as Example from "../../examples/contracts.js"
import { ValidationError } from "../../src/errors/FoundationError.js"
import * as Contracts from "../../src/integration/Contracts.js"
import * as EventBus from "../../src/observability/EventBus.js"
import * as Telemetry from "../../src/observability/Telemetry.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

class OutOfStock extends Schema.TaggedError<OutOfStock>()("OutOfStock", { sku: Schema.String }) {}

const Item = Schema.Struct({ sku: Schema.String, quantity: Schema.Int.pipe(Schema.nonNegative()) })

const Inventory = Contracts.define({
  name: "inventory",
  operations: {
    // The caller passes { sku, quantity: "3" }; the handler receives quantity 3.
    reserve: { input: Schema.Struct({ sku: Schema.NonEmptyString, quantity: Schema.NumberFromString }), output: Item },
    count: { input: Schema.Struct({ sku: Schema.String }), output: Schema.Int }
  }
})

describe("Contracts", () => {
  it.effect("decodes the input, calls the handler, validates the output; handler errors pass unchanged", () =>
    Effect.gen(function*() {
      const seen: Array<unknown> = []
      const inventory = yield* Contracts.implement(Inventory, {
        reserve: (input) => {
          seen.push(input)
          return input.sku === "none"
            ? Effect.fail(new OutOfStock({ sku: input.sku }))
            : Effect.succeed({ sku: input.sku, quantity: input.quantity })
        },
        count: () => Effect.succeed(7)
      })
      expect(yield* inventory.reserve({ sku: "apple", quantity: "3" })).toEqual({ sku: "apple", quantity: 3 })
      expect(seen).toEqual([{ sku: "apple", quantity: 3 }])
      expect(yield* inventory.count({ sku: "apple" })).toBe(7)
      const outOfStock = failureOf(yield* Effect.exit(inventory.reserve({ sku: "none", quantity: "1" })))
      expect(outOfStock).toBeInstanceOf(OutOfStock)
      // Per-operation error types are kept: `count` cannot fail with OutOfStock.
      const count: Effect.Effect<number, Contracts.ContractInputError | Contracts.ContractOutputError> = inventory.count({ sku: "x" })
      expect(yield* count).toBe(7)
    }))

  it.effect("a bad input fails with ContractInputError naming the operation and every field; the handler is not called", () =>
    Effect.gen(function*() {
      let calls = 0
      const inventory = yield* Contracts.implement(Inventory, {
        reserve: ({ sku, quantity }) => Effect.sync(() => (calls++, { sku, quantity })),
        count: () => Effect.succeed(0)
      })
      const error = failureOf(yield* Effect.exit(inventory.reserve({ sku: "", quantity: "many" })))
      expect(error).toBeInstanceOf(Contracts.ContractInputError)
      const input = error as Contracts.ContractInputError
      expect(input).toMatchObject({ contract: "inventory", operationName: "reserve", field: "input.sku", category: "validation" })
      expect(input.issues.map((i) => i.field)).toEqual(["input.sku", "input.quantity"])
      expect(input.message).toMatch(/^inventory\.reserve: invalid input\.sku: /)
      expect(calls).toBe(0)
      // An input of the wrong shape altogether (from untyped callers).
      const untyped = inventory.count as (input: unknown) => Effect.Effect<number, Contracts.ContractInputError>
      expect((failureOf(yield* Effect.exit(untyped("apple"))) as Contracts.ContractInputError).field).toBe("input")
    }))

  it.scoped("an output that breaks the contract fails with ContractOutputError (category system) and is reported", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.EventBus
      const sub = yield* bus.subscribe("foundation.service_integration.**", { capacity: 10 })
      const inventory = yield* Contracts.implement(Inventory, {
        reserve: ({ sku }) => Effect.succeed({ sku, quantity: -1 }),
        count: () => Effect.succeed(1.5)
      })
      const reserve = failureOf(yield* Effect.exit(inventory.reserve({ sku: "apple", quantity: "1" })))
      expect(reserve).toBeInstanceOf(Contracts.ContractOutputError)
      expect(reserve).toMatchObject({ operationName: "reserve", field: "output.quantity", category: "system", severity: "high" })
      const count = failureOf(yield* Effect.exit(inventory.count({ sku: "apple" }))) as Contracts.ContractOutputError
      expect([count.operationName, count.field]).toEqual(["count", "output"])
      const events = (yield* sub.takeAll).map((e) => [e.type, (e.data as Telemetry.TelemetryEvent).metadata])
      expect(events.map(([type]) => type)).toEqual([Contracts.events.violation, Contracts.events.violation])
      expect(events[0]![1]).toMatchObject({ contract: "inventory", operation: "reserve", kind: "output" })
    }).pipe(Effect.provide(Telemetry.layerWithBus())))

  it.effect("a handler that throws dies with that defect; one that returns no Effect breaks the contract", () =>
    Effect.gen(function*() {
      const handlers = {
        reserve: () => {
          throw new Error("bug")
        },
        count: () => 3
      }
      const inventory = yield* Contracts.implement(Inventory, handlers as unknown as Contracts.Handlers<typeof Inventory>)
      const died = yield* Effect.exit(inventory.reserve({ sku: "a", quantity: "1" }))
      expect(Exit.isFailure(died) && Cause.isDie(died.cause)).toBe(true)
      const notEffect = failureOf(yield* Effect.exit(inventory.count({ sku: "a" }))) as Contracts.ContractOutputError
      expect(notEffect).toBeInstanceOf(Contracts.ContractOutputError)
      expect([notEffect.field, notEffect.reason]).toEqual(["output", "the handler must return an Effect, got number"])
    }))

  it.effect("implement refuses missing operations and non-functions, listing every violation; extra handlers are not exposed", () =>
    Effect.gen(function*() {
      const plugin: Record<string, unknown> = { count: 42, extra: () => Effect.void }
      const error = failureOf(
        yield* Effect.exit(Contracts.implement(Inventory, plugin as Contracts.Handlers<typeof Inventory>))
      )
      expect(error).toBeInstanceOf(Contracts.ContractViolationError)
      const violation = error as Contracts.ContractViolationError
      expect(violation).toMatchObject({ contract: "inventory", operationName: "reserve", reason: "is not implemented" })
      expect(violation.violations).toEqual([
        { operation: "reserve", reason: "is not implemented" },
        { operation: "count", reason: "must be a function, got number" }
      ])
      expect(violation.message).toBe(`Contract "inventory": operation "reserve" is not implemented (and 1 more)`)
      const withExtra = yield* Contracts.implement(Inventory, {
        reserve: ({ sku, quantity }) => Effect.succeed({ sku, quantity }),
        count: () => Effect.succeed(0),
        extra: () => Effect.void
      })
      expect(Object.keys(withExtra).sort()).toEqual(["count", "reserve"])
      expect(Contracts.violations(Inventory, null).map((v) => v.operation)).toEqual(["reserve", "count"])
    }))

  it.effect("a bad contract fails with ValidationError naming the field", () =>
    Effect.gen(function*() {
      const field = (contract: unknown) =>
        Effect.map(Effect.flip(Contracts.implement(contract as typeof Inventory, {} as never)), (e) => (e as ValidationError).field)
      expect(yield* field({ name: "x" })).toBe("contract")
      expect(yield* field(Contracts.define({ name: "", operations: { a: { input: Schema.String, output: Schema.String } } }))).toBe(
        "contract.name"
      )
      expect(yield* field(Contracts.define({ name: "x", operations: {} }))).toBe("contract.operations")
      expect(
        yield* field(Contracts.define({ name: "x", operations: { a: { input: Schema.String, output: "str" as never } } }))
      ).toBe("contract.operations.a.output")
    }))

  it.effect("layer: the implementation is checked when the layer is built", () =>
    Effect.gen(function*() {
      class InventoryService extends Context.Tag("Inventory")<InventoryService, Contracts.Service<typeof Inventory, OutOfStock>>() {}
      const good = Contracts.layer(InventoryService, Inventory, {
        reserve: ({ sku, quantity }) => quantity > 10 ? Effect.fail(new OutOfStock({ sku })) : Effect.succeed({ sku, quantity }),
        count: () => Effect.succeed(5)
      })
      const reserved = yield* Effect.flatMap(InventoryService, (s) => s.reserve({ sku: "a", quantity: "2" })).pipe(
        Effect.provide(good)
      )
      expect(reserved).toEqual({ sku: "a", quantity: 2 })
      const broken = Contracts.layer(
        InventoryService,
        Inventory,
        { reserve: ({ sku }: { sku: string }) => Effect.succeed({ sku, quantity: 0 }) } as unknown as Contracts.Handlers<
          typeof Inventory,
          OutOfStock
        >
      )
      const built = yield* Effect.exit(Effect.scoped(Layer.build(broken)))
      const error = failureOf(built) as Contracts.ContractViolationError
      expect([error._tag, error.operationName]).toEqual(["ContractViolationError", "count"])
      // In types: a handler returning the wrong output, or an error the service does not declare, is refused.
      Contracts.layer(InventoryService, Inventory, {
        // @ts-expect-error quantity must be a number
        reserve: ({ sku }) => Effect.succeed({ sku, quantity: "2" }),
        count: () => Effect.succeed(1)
      })
      Contracts.layer(InventoryService, Inventory, {
        reserve: ({ sku, quantity }) => Effect.succeed({ sku, quantity }),
        // @ts-expect-error "boom" is not an error of the service
        count: () => Effect.fail("boom")
      })
    }))

  it.effect("the example runs", () =>
    Effect.gen(function*() {
      expect(yield* Example.program).toEqual({
        ada: "Ada",
        badInput: "get input.id: Expected a positive number, actual -1",
        notFound: "no user 2",
        badOutput: "rename output.email (system)",
        incomplete: `Contract "users": operation "rename" is not implemented`
      })
    }))
})

// examples/agent.ts — a typed agent: validated params, typed failures returned, state kept only on success
import { Effect, Schema } from "effect"
import { Agent } from "effect-foundation"

class Overdrawn extends Schema.TaggedError<Overdrawn>()("Overdrawn", { balance: Schema.Number }) {}

const Account = Agent.define({
  name: "account",
  state: Schema.Struct({ balance: Schema.Number.pipe(Schema.nonNegative()) }),
  initial: { balance: 0 },
  actions: {
    deposit: Agent.action({
      params: Schema.Struct({ amount: Schema.Number.pipe(Schema.positive()) }),
      run: ({ amount }, ctx: Agent.ActionContext<{ balance: number }>) =>
        Effect.as(ctx.updateState((s) => ({ balance: s.balance + amount })), ctx.state.balance + amount)
    }),
    withdraw: Agent.action({
      params: Schema.Struct({ amount: Schema.Number.pipe(Schema.positive()) }),
      run: ({ amount }, ctx: Agent.ActionContext<{ balance: number }>) =>
        Effect.gen(function*() {
          if (ctx.state.balance < amount) return yield* new Overdrawn({ balance: ctx.state.balance })
          yield* ctx.updateState((s) => ({ balance: s.balance - amount }))
          return ctx.state.balance
        })
    })
  }
})

export const program = Effect.scoped(Effect.gen(function*() {
  const account = yield* Agent.spawn(Account, { id: "acc-1", mailbox: 100 })
  yield* account.call("deposit", { amount: 50 })
  yield* account.cast("deposit", { amount: 25 }) // queued; runs after the call before it
  const refused = yield* Effect.flip(account.call("withdraw", { amount: 500 })) // a typed failure: the agent goes on
  const invalid = yield* Effect.flip(account.call("deposit", { amount: -1 })) // refused at the caller
  const left = yield* account.call("withdraw", { amount: 30 }, { timeout: "1 second" })
  return { refused: refused._tag, invalidField: invalid._tag === "ValidationError" ? invalid.field : "", left }
}))

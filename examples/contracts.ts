// examples/contracts.ts — a service's API as Schemas: the implementation is checked at startup, each call at the boundary
// (Contracts is imported relatively until src/index.ts exports it.)
import { Context, Effect, Schema } from "effect"
import { Contracts } from "effect-foundation"

class UserNotFound extends Schema.TaggedError<UserNotFound>()("UserNotFound", { id: Schema.Number }) {}

const User = Schema.Struct({ id: Schema.Number, name: Schema.NonEmptyString, email: Schema.String.pipe(Schema.pattern(/@/)) })

const UsersApi = Contracts.define({
  name: "users",
  operations: {
    get: { input: Schema.Struct({ id: Schema.Int.pipe(Schema.positive()) }), output: User },
    rename: { input: Schema.Struct({ id: Schema.Int, name: Schema.NonEmptyString }), output: User }
  }
})

class Users extends Context.Tag("Users")<Users, Contracts.Service<typeof UsersApi, UserNotFound>>() {}

const rows = new Map([[1, { id: 1, name: "Ada", email: "ada@example.com" }]])

// Checked when the layer is built: every operation must have a handler, and be a function.
const UsersLive = Contracts.layer(Users, UsersApi, {
  get: ({ id }) => Effect.orElseFail(Effect.fromNullable(rows.get(id)), () => new UserNotFound({ id })),
  rename: ({ id, name }) => Effect.succeed({ id, name, email: "unknown" }) // a bug: the email breaks the contract
})

export const program = Effect.gen(function*() {
  const users = yield* Users
  const ada = yield* users.get({ id: 1 })
  const badInput = yield* users.get({ id: -1 }).pipe( // refused before the handler runs
    Effect.as("accepted"),
    Effect.catchTag("ContractInputError", (e) => Effect.succeed(`${e.operationName} ${e.field}: ${e.reason}`))
  )
  const notFound = yield* users.get({ id: 2 }).pipe( // the handler's own error, unchanged
    Effect.as("found"),
    Effect.catchTag("UserNotFound", (e) => Effect.succeed(`no user ${e.id}`))
  )
  const badOutput = yield* users.rename({ id: 1, name: "Ada L." }).pipe(
    Effect.as("accepted"),
    Effect.catchTag("ContractOutputError", (e) => Effect.succeed(`${e.operationName} ${e.field} (${e.category})`))
  )
  // A plugin loaded at run time (its type unknown) that lacks an operation is refused at startup.
  const plugin: Record<string, unknown> = { get: () => Effect.succeed(ada) }
  const incomplete = yield* Effect.flip(Contracts.implement(UsersApi, plugin as Contracts.Handlers<typeof UsersApi>))
  return { ada: ada.name, badInput, notFound, badOutput, incomplete: incomplete.message }
}).pipe(Effect.provide(UsersLive))

// examples/cqrs.ts — commands and cached queries with decoded params and redacted telemetry
import { Effect, Ref, Schema } from "effect"
import { Cqrs } from "effect-foundation"

export const program = Effect.scoped(Effect.gen(function*() {
  const users = yield* Ref.make(new Map<string, { readonly email: string }>())
  const createUser = yield* Cqrs.defineCommand({
    name: "create_user",
    params: Schema.Struct({ email: Schema.String, password: Schema.String }),
    execute: ({ email }) => Ref.update(users, (m) => new Map(m).set(email, { email }))
  })
  const findUser = yield* Cqrs.defineQuery({
    name: "find_user",
    params: Schema.Struct({ email: Schema.String }),
    execute: ({ email }) => Effect.map(Ref.get(users), (m) => m.get(email) ?? null),
    cacheTtl: "30 seconds"
  })
  yield* createUser.dispatch({ email: "ann@example.com", password: "hunter2" }) // events show "[REDACTED]"
  const invalid = yield* Effect.flip(createUser.dispatch({ email: 42 }))
  const found = yield* findUser.fetch({ email: "ann@example.com" }) // a miss: runs execute
  yield* findUser.fetch({ email: "ann@example.com" }) // a hit: served by the cache
  return { found, invalidField: invalid.field, redacted: Cqrs.redact({ user: { password: "hunter2" } }) }
}))

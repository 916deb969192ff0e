// examples/errors.ts — typed errors with categories, narrowed by category
import { Effect } from "effect"
import { ErrorPipeline, FoundationError } from "effect-foundation"

interface User {
  readonly id: string
  readonly name: string
}

const findUser = (id: string): Effect.Effect<User, FoundationError.ValidationError | FoundationError.NotFoundError> =>
  Effect.gen(function*() {
    if (id === "") return yield* new FoundationError.ValidationError({ field: "id", reason: "must not be empty" })
    if (id === "ghost") return yield* new FoundationError.NotFoundError({ resource: "user", key: id })
    return { id, name: "Ada" }
  })

// Effect<User | null, NotFoundError>: the validation errors are gone from the type.
export const lenient = (id: string): Effect.Effect<User | null, FoundationError.NotFoundError> =>
  findUser(id).pipe(ErrorPipeline.catchCategory("validation", () => Effect.succeed(null)))

export const program = Effect.gen(function*() {
  const error = yield* Effect.flip(findUser("ghost"))
  return {
    empty: yield* lenient(""),
    category: error.category, // "permanent"
    code: error.code, // 3401 (data_not_found)
    strategy: FoundationError.defaultStrategy[error.category] // "propagate"
  }
})

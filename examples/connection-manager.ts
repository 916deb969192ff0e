// examples/connection-manager.ts — a named pool: base URL, headers, retries, breaker, typed errors
import { HttpClientRequest } from "@effect/platform"
import { Effect } from "effect"
import { ConnectionManager } from "effect-foundation"

/** `baseUrl`: where the inventory service listens (the test starts one on loopback). */
export const program = (baseUrl: string) =>
  Effect.gen(function*() {
    const ok = yield* HttpClientRequest.get("/items/42").pipe(ConnectionManager.request("inventory"))
    // A 404 is a permanent HttpStatusError: not retried, and the breaker does not count it.
    const missing = yield* HttpClientRequest.get("/items/0").pipe(
      ConnectionManager.request("inventory", { timeout: "2 seconds" }),
      Effect.catchTag("HttpStatusError", (error) => Effect.succeed(`${error.status} ${error.category}`))
    )
    const stats = yield* ConnectionManager.stats
    return { item: JSON.parse(ok.text) as unknown, missing, calls: stats.pools["inventory"]?.total }
  }).pipe(
    Effect.provide(ConnectionManager.layer({
      pools: { inventory: { baseUrl: `${baseUrl}/v1`, maxConnections: 20, headers: { "x-client": "shop" } } }
    }))
  )

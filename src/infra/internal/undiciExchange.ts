/**
 * One HTTP exchange straight on a pool's undici `Agent`, timed by the deadline wheel of a
 * `Timeout`, in a single `Effect.async`: no fiber per request, no `AbortController` (undici takes
 * an `EventEmitter` as its abort signal, which costs far less), no URL object. Interrupting the
 * caller aborts the request (the connection is freed); the deadline aborts it too and fails with
 * `TimeoutError`. The response body is read whole.
 *
 * Used for requests whose body is empty or in memory and for pools without tracing; the others go
 * through `@effect/platform`'s `HttpClient`, which measures 1.5–1.8× a bare undici request on
 * loopback (see bench/RESULTS.md), against about 1.05× here.
 */
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as UrlParams from "@effect/platform/UrlParams"
import * as Effect from "effect/Effect"
import { EventEmitter } from "node:events"
import type * as Undici from "undici"
import type { TimeoutError } from "../../errors/FoundationError.js"
import type { TimeoutKernelApi } from "../../resilience/internal/kernel.js"

/** What an exchange gives back. */
export interface Raw {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
}

/** True when the request can take the direct path (its body is empty or already in memory). */
export const supports = (request: HttpClientRequest.HttpClientRequest): boolean => {
  const body = request.body
  return body._tag === "Empty" || body._tag === "Uint8Array" ||
    (body._tag === "Raw" && (typeof body.body === "string" || body.body instanceof Uint8Array))
}

const flattenHeaders = (headers: Undici.Dispatcher.ResponseData["headers"]): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const name in headers) {
    const value = headers[name]
    if (value !== undefined) out[name] = typeof value === "string" ? value : value.join(", ")
  }
  return out
}

export interface Target {
  readonly agent: Undici.Agent
  /** `scheme://host:port` */
  readonly origin: string
  /** The base URL's path prefix ("" or "/v1"). */
  readonly prefix: string
}

/**
 * Sends `request` (a path relative to the pool; headers already merged with the pool's), failing
 * with `onError` for transport errors.
 */
export const exchange = <E>(
  target: Target,
  request: HttpClientRequest.HttpClientRequest,
  headers: Readonly<Record<string, string>>,
  timeout: TimeoutKernelApi,
  millis: number,
  onError: (cause: unknown) => E
): Effect.Effect<Raw, E | TimeoutError> =>
  Effect.async<Raw, E | TimeoutError>((resume) => {
    const abort = new EventEmitter()
    const entry = timeout.wheel.add(millis, (shutdown) => {
      abort.emit("abort")
      resume(Effect.fail(timeout.error(millis, shutdown)))
    })
    if (entry === undefined) return resume(Effect.fail(timeout.error(millis, true)))
    const won = () => timeout.wheel.remove(entry)
    const query = UrlParams.toString(request.urlParams)
    const body = request.body
    let payload: string | Uint8Array | undefined
    let contentType: string | undefined
    if (body._tag === "Uint8Array") {
      payload = body.body
      contentType = body.contentType
    } else if (body._tag === "Raw") {
      payload = body.body as string | Uint8Array
      contentType = body.contentType
    }
    const sent = contentType !== undefined && headers["content-type"] === undefined
      ? { ...headers, "content-type": contentType }
      : headers
    let pending: Promise<Undici.Dispatcher.ResponseData>
    try {
      pending = target.agent.request({
        origin: target.origin,
        path: target.prefix + request.url + (query === "" ? "" : `?${query}`),
        method: request.method as Undici.Dispatcher.HttpMethod,
        headers: sent,
        body: payload ?? null,
        signal: abort
      })
    } catch (error) {
      // undici refuses some requests synchronously (a malformed header, say)
      if (won()) resume(Effect.fail(onError(error)))
      return
    }
    pending.then(
      (response) =>
        response.body.arrayBuffer().then(
          (buffer) => {
            if (won()) {
              resume(Effect.succeed({
                status: response.statusCode,
                headers: flattenHeaders(response.headers),
                body: new Uint8Array(buffer)
              }))
            }
          },
          (error: unknown) => {
            if (won()) resume(Effect.fail(onError(error)))
          }
        ),
      (error: unknown) => {
        if (won()) resume(Effect.fail(onError(error)))
      }
    )
    // The caller was interrupted: abort the request and free its connection.
    return Effect.sync(() => {
      if (won()) abort.emit("abort")
    })
  })

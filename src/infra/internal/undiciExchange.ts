/**
 * One HTTP attempt straight on a pool's undici `Agent`, in a single `Effect.async`: the breaker's
 * admission, the deadline (on the shared wheel of a `Timeout`), the request through undici's
 * dispatch API and the whole body, with no fiber, no interruption mask, no abort signal, no body
 * stream and no URL object. The breaker hears the outcome once: the attempt's verdict, or neutral
 * when the caller was interrupted (the request is then aborted and its connection freed). The
 * deadline aborts the request too and fails with `TimeoutError`.
 *
 * Used for requests whose body is empty or in memory, on pools without tracing; the others go
 * through `@effect/platform`'s `HttpClient` (spans, trace headers), which costs 1.5–1.8× a bare
 * undici request on loopback (see bench/RESULTS.md).
 */
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as UrlParams from "@effect/platform/UrlParams"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Undici from "undici"
import { CircuitOpenError, type TimeoutError } from "../../errors/FoundationError.js"
import {
  BAD,
  type BreakerKernelApi,
  GOOD,
  NEUTRAL,
  type Ticket,
  type TimeoutKernelApi,
  type Verdict
} from "../../resilience/internal/kernel.js"
import type { Entry } from "../../resilience/internal/deadlineWheel.js"

/** What the server answered, body read whole. */
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

/** Where and how a pool's attempts go. */
export interface Route<A, E> {
  readonly agent: Undici.Agent
  /** `scheme://host:port` */
  readonly origin: string
  /** The base URL's path prefix ("" or "/v1"). */
  readonly prefix: string
  /** The pool's breaker hooks (admission and outcome). */
  readonly breaker: BreakerKernelApi
  readonly timeout: TimeoutKernelApi
  /** A transport failure (connection refused, reset, aborted by the server...). */
  readonly onError: (cause: unknown, request: HttpClientRequest.HttpClientRequest) => E
  /** The attempt's result from the answer (a status error for a status ≥ 400, say). */
  readonly onAnswer: (raw: Raw, request: HttpClientRequest.HttpClientRequest) => Exit.Exit<A, E>
}

/**
 * The undici handler of one attempt (undici's dispatch API: no `Readable` body stream, no abort
 * signal). It collects the body and settles the attempt exactly once: on the answer, a transport
 * error, the deadline or the caller's interruption, whichever comes first.
 */
class Handler<A, E, B, E2> implements Undici.Dispatcher.DispatchHandler {
  private ticket: Ticket | undefined
  private entry: Entry | undefined = undefined
  private controller: Undici.Dispatcher.DispatchController | undefined = undefined
  /** Set when the attempt was settled before undici handed over its controller. */
  private abandoned = false
  private status = 0
  private headers: Readonly<Record<string, string>> = {}
  private chunks: Array<Buffer> = []

  constructor(
    private readonly route: Route<A, E>,
    private readonly request: HttpClientRequest.HttpClientRequest,
    private readonly resume: (effect: Effect.Effect<B, E2>) => void,
    private readonly then: Then<A, E, B, E2>,
    ticket: Ticket
  ) {
    this.ticket = ticket
  }

  private done(exit: Exit.Exit<A, E | TimeoutError | CircuitOpenError>): void {
    this.resume(this.then.next(exit))
  }

  /** Registers the deadline; false when the Timeout is closed (the attempt has then failed). */
  arm(millis: number): boolean {
    const timeout = this.route.timeout
    this.entry = timeout.wheel.add(millis, (shutdown) => {
      this.abort()
      const error = timeout.error(millis, shutdown)
      this.settle(shutdown ? NEUTRAL : this.route.breaker.verdictOf(error))
      this.done(Exit.fail(error))
    })
    if (this.entry !== undefined) return true
    this.settle(NEUTRAL)
    this.done(Exit.fail(timeout.error(millis, true)))
    return false
  }

  /** True when this call is the first to finish the attempt (the deadline will not fire). */
  private won(): boolean {
    return this.entry !== undefined && this.route.timeout.wheel.remove(this.entry)
  }

  private settle(verdict: Verdict): void {
    if (this.ticket === undefined) return
    this.route.breaker.settle(this.ticket, verdict)
    this.ticket = undefined
  }

  private abort(): void {
    if (this.controller === undefined) this.abandoned = true
    else this.controller.abort(new Error("aborted"))
  }

  /** The caller was interrupted: abort; the breaker hears nothing against the server. */
  interrupt(): void {
    if (!this.won()) return
    this.abort()
    this.settle(NEUTRAL)
    this.then.interrupted()
  }

  fail(cause: unknown): void {
    if (!this.won()) return
    const error = this.route.onError(cause, this.request)
    this.settle(this.route.breaker.verdictOf(error))
    this.done(Exit.fail(error))
  }

  onRequestStart(controller: Undici.Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.abandoned) controller.abort(new Error("aborted"))
  }

  onResponseStart(
    _controller: Undici.Dispatcher.DispatchController,
    statusCode: number,
    headers: Undici.Dispatcher.ResponseData["headers"]
  ): void {
    this.status = statusCode
    this.headers = flattenHeaders(headers)
  }

  onResponseData(_controller: Undici.Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk)
  }

  onResponseEnd(): void {
    if (!this.won()) return
    const chunks = this.chunks
    const body = chunks.length === 1 ? new Uint8Array(chunks[0]!) : new Uint8Array(Buffer.concat(chunks))
    const exit = this.route.onAnswer({ status: this.status, headers: this.headers, body }, this.request)
    const breaker = this.route.breaker
    this.settle(Exit.isSuccess(exit) ? GOOD : exit.cause._tag === "Fail" ? breaker.verdictOf(exit.cause.error) : BAD)
    this.done(exit)
  }

  onResponseError(_controller: Undici.Dispatcher.DispatchController | undefined, error: Error): void {
    this.fail(error)
  }
}

/**
 * What follows an attempt, run in the step that settles it (so a caller can finish its
 * bookkeeping without wrapping the attempt in more effects).
 */
export interface Then<A, E, B, E2> {
  /** What the caller resumes with, given the attempt's exit. */
  readonly next: (exit: Exit.Exit<A, E | TimeoutError | CircuitOpenError>) => Effect.Effect<B, E2>
  /** The caller was interrupted during the attempt. */
  readonly interrupted: () => void
}

/** The attempt's exit as it is. */
const asIs: Then<unknown, unknown, unknown, unknown> = { next: (exit) => exit, interrupted: () => {} }

/**
 * Sends `request` (a path relative to the pool; `headers` already merged with the pool's) with a
 * time limit of `millis`, and resumes with `then.next` of its exit.
 */
export const attempt = <A, E, B = A, E2 = E | TimeoutError | CircuitOpenError>(
  route: Route<A, E>,
  request: HttpClientRequest.HttpClientRequest,
  headers: Readonly<Record<string, string>>,
  millis: number,
  then: Then<A, E, B, E2> = asIs as unknown as Then<A, E, B, E2>
): Effect.Effect<B, E2> =>
  Effect.async<B, E2>((resume) => {
    const admitted = route.breaker.admit()
    if (admitted instanceof CircuitOpenError) return resume(then.next(Exit.fail(admitted)))
    const handler = new Handler(route, request, resume, then, admitted)
    if (!handler.arm(millis)) return
    const query = request.urlParams.length === 0 ? "" : UrlParams.toString(request.urlParams)
    const body = request.body
    let payload: string | Uint8Array | null = null
    let contentType: string | undefined
    if (body._tag === "Uint8Array") {
      payload = body.body
      contentType = body.contentType
    } else if (body._tag === "Raw") {
      payload = body.body as string | Uint8Array
      contentType = body.contentType
    }
    try {
      route.agent.dispatch({
        origin: route.origin,
        path: route.prefix + request.url + (query === "" ? "" : `?${query}`),
        method: request.method as Undici.Dispatcher.HttpMethod,
        headers: contentType !== undefined && headers["content-type"] === undefined
          ? { ...headers, "content-type": contentType }
          : headers,
        body: payload
      }, handler)
    } catch (error) {
      // undici refuses some requests synchronously (a malformed header, say)
      handler.fail(error)
      return
    }
    return Effect.sync(() => handler.interrupt())
  })

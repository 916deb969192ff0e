/**
 * Validation of `ConnectionManager` pool options: the base URL (scheme, host, port, path prefix),
 * the sizes and durations, and the default headers. Pure: every check returns an `Either` that
 * fails with a `ValidationError` naming the field (`connectionManager.<field>`); nothing is
 * coerced.
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import type { ValidationError } from "../../errors/FoundationError.js"
import * as Validation from "../../errors/Validation.js"

/** A validated base URL. */
export interface BaseUrl {
  /** The URL as given back to users: origin plus path prefix, no trailing slash. */
  readonly href: string
  readonly scheme: "http" | "https"
  readonly host: string
  readonly port: number
}

export const field = (name: string): string => `connectionManager.${name}`

// scheme://[userinfo@]host[:port] — only to find the port text before `URL` rejects it wholesale,
// so that the error can name the port.
const authorityPort = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/(?:[^/?#@]*@)?(?:\[[^\]]*\]|[^/?#:]*):([^/?#]*)/

/** An absolute `http:`/`https:` URL with a host, an optional port (1–65535) and path prefix. */
export const baseUrl = (input: unknown): Either.Either<BaseUrl, ValidationError> => {
  const name = field("baseUrl")
  if (typeof input !== "string" || input.length === 0) {
    return Validation.invalid(name, `must be an absolute http(s) URL such as "https://api.example.com", got ${show(input)}`)
  }
  const port = authorityPort.exec(input)?.[1]
  if (port !== undefined && port !== "" && !(/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) {
    return Validation.invalid(`${name}.port`, `must be an integer in 1–65535, got "${port}"`)
  }
  if (!URL.canParse(input)) return Validation.invalid(name, `must be an absolute http(s) URL, got "${input}"`)
  const url = new URL(input)
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return Validation.invalid(`${name}.scheme`, `must be "http" or "https", got "${url.protocol.slice(0, -1)}"`)
  }
  if (url.hostname === "") return Validation.invalid(`${name}.host`, "must not be empty")
  if (url.username !== "" || url.password !== "") {
    return Validation.invalid(name, "must not carry credentials (send them as a default header)")
  }
  if (url.search !== "" || url.hash !== "") return Validation.invalid(name, "must not have a query or a fragment")
  if (url.port === "0") return Validation.invalid(`${name}.port`, "must be an integer in 1–65535, got \"0\"")
  const scheme = url.protocol === "https:" ? "https" : "http"
  const path = url.pathname.endsWith("/") ? url.pathname.slice(0, -1) : url.pathname
  return Either.right({
    href: url.origin + path,
    scheme,
    host: url.hostname,
    port: url.port === "" ? (scheme === "https" ? 443 : 80) : Number(url.port)
  })
}

// RFC 9110 token characters.
const headerName = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** Default headers: token names (kept lowercase), string values without CR, LF or NUL. */
export const headers = (
  input: unknown
): Either.Either<ReadonlyArray<readonly [string, string]>, ValidationError> => {
  if (input === undefined) return Either.right([])
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return Validation.invalid(field("headers"), `must be a record of header names to values, got ${show(input)}`)
  }
  const out: Array<readonly [string, string]> = []
  for (const [name, value] of Object.entries(input)) {
    if (!headerName.test(name)) return Validation.invalid(field(`headers.${name}`), "is not a valid header name")
    if (typeof value !== "string" || /[\r\n\0]/.test(value)) {
      return Validation.invalid(field(`headers.${name}`), "must be a string without CR, LF or NUL")
    }
    out.push([name.toLowerCase(), value])
  }
  return Either.right(out)
}

/** A positive, finite duration, or the fallback. */
export const duration = (
  name: string,
  input: Duration.DurationInput | undefined,
  fallback: Duration.Duration
): Either.Either<Duration.Duration, ValidationError> =>
  input === undefined ? Either.right(fallback) : Validation.duration(field(name), input)

/** An integer ≥ 1 (and ≤ `max`), or the fallback. */
export const count = (
  name: string,
  input: number | undefined,
  fallback: number,
  max: number
): Either.Either<number, ValidationError> =>
  Validation.int(field(name), input ?? fallback, { min: 1, max })

/** A boolean, or the fallback. */
export const flag = (name: string, input: unknown, fallback: boolean): Either.Either<boolean, ValidationError> =>
  input === undefined
    ? Either.right(fallback)
    : typeof input === "boolean"
    ? Either.right(input)
    : Validation.invalid(field(name), `must be a boolean, got ${show(input)}`)

const show = (u: unknown): string => {
  if (typeof u === "string") return JSON.stringify(u)
  try {
    return JSON.stringify(u) ?? String(u)
  } catch {
    return String(u)
  }
}

/**
 * Agent: a typed actor. A definition names the agent's state (a Schema, with an initial value),
 * its actions (each with a Schema for its params and an effect to run) and lifecycle hooks; a
 * spawned agent is a fiber that takes messages from a bounded mailbox one at a time, in its own
 * `Scope` (the original relied on an external framework, Jido; this is our own, minimal one).
 *
 * Guarantees:
 * - Params are validated at the caller (`ValidationError` naming the field: `<agent>.<action>.<path>`;
 *   an unknown action is `ValidationError` on `action`), so nothing invalid reaches the mailbox.
 * - One message at a time, in mailbox order. An action sees the state as it was when it started
 *   and changes it with `ctx.setState` / `ctx.updateState` (validated with the state Schema); the
 *   change is applied only if the action succeeds, so a failed action leaves the state as it was.
 * - `call` is request/response with a time limit (default 5 s, as GenServer): the action's typed
 *   failure comes back to the caller and the agent goes on. A defect in an action (or a hook)
 *   ends the agent: the caller gets `AgentCrashedError`, and so does every call still in the
 *   mailbox; a supervisor sees the defect. A call whose caller gave up (timeout, interruption)
 *   before the agent took it is dropped, never run late.
 * - The mailbox is bounded (default 1,000): when full, `call` and `cast` fail with
 *   `MailboxFullError` (or wait, with `whenFull: "wait"`); never unbounded growth.
 * - Hooks: `onStart` (may set the initial state; a failure fails the start), `beforeAction` (a
 *   failure vetoes the action and is returned to the caller; it gets the action's name, so control
 *   actions can be let through), `afterAction`, `onError` (typed failures), `onStop` (with the
 *   reason; runs when the agent's scope closes, whatever the cause).
 * - `Agent.spawn` runs the agent in a scope of its own (closed by `stop`, or with the spawning
 *   scope); `Agent.supervised` gives a stable `AgentRef` and a `Supervisor` child spec: each
 *   restart starts a fresh incarnation (initial state) on the same mailbox, so callers keep their
 *   reference and calls made during a restart wait for the new incarnation.
 * - `attach` (an option) runs in each incarnation's scope before its first message: what the
 *   agent registry uses to register an agent and remove it when the incarnation ends, whatever
 *   the reason.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Equal from "effect/Equal"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import { Tagged, TimeoutError, ValidationError } from "../errors/FoundationError.js"
import { DeadlineWheel, type Entry } from "../resilience/internal/deadlineWheel.js"
import * as Validation from "../errors/Validation.js"
import * as Supervisor from "./Supervisor.js"

// ---------------------------------------------------------------------------------------------
// Definitions
// ---------------------------------------------------------------------------------------------

/** What an action's effect can read and change. */
export interface ActionContext<S> {
  /** The agent's id. */
  readonly id: string
  /** The state when the action started (plus the action's own changes so far). */
  readonly state: S
  // (Method signatures: an action that ignores its context types as an action of any state.)
  /** Replaces the state (validated), applied if the action succeeds. */
  setState(state: S): Effect.Effect<void, ValidationError>
  /** Maps the state (validated), applied if the action succeeds. */
  updateState(f: (state: S) => S): Effect.Effect<void, ValidationError>
  /** This agent, to cast to itself (never `call` yourself: you would wait for yourself). */
  readonly self: AnyAgentRef
}

/** An action: its params' Schema and what it does. */
export interface Action<S, P, E, A, R> {
  readonly params: Schema.Schema<P, any>
  readonly run: (params: P, ctx: ActionContext<S>) => Effect.Effect<A, E, R>
}

/** Any action of state `S`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyAction<S> = Action<S, any, any, any, any>

/** Makes an action (a typed identity, for inference). */
export const action = <S, P, E, A, R>(action: Action<S, P, E, A, R>): Action<S, P, E, A, R> => action

/** Why an agent stopped, as `onStop` hears it. */
export type StopReason = "stopped" | "crashed" | "start_failed"

/**
 * Lifecycle hooks; each optional. `HE` is what `beforeAction` may fail with (a veto, returned to
 * the caller); an `onStart` failure becomes the spawn's `AgentStartError`.
 */
export interface Hooks<S, HE, R> {
  readonly onStart?: (ctx: ActionContext<S>) => Effect.Effect<void, unknown, R>
  readonly beforeAction?: (ctx: ActionContext<S>, action: string, params: unknown) => Effect.Effect<void, HE, R>
  readonly afterAction?: (ctx: ActionContext<S>, action: string, result: unknown) => Effect.Effect<void, never, R>
  readonly onError?: (ctx: ActionContext<S>, action: string, error: unknown) => Effect.Effect<void, never, R>
  readonly onStop?: (state: S, reason: StopReason) => Effect.Effect<void, never, R>
}

/** An agent definition. */
export interface Definition<S, Actions extends Record<string, AnyAction<S>>, HE = never, R = never> {
  readonly name: string
  readonly state: Schema.Schema<S, any>
  readonly initial: S
  readonly actions: Actions
  readonly hooks?: Hooks<S, HE, R>
}

/**
 * Any definition. (`any` here as in Effect's own "any instance" types: the state type appears both
 * as input and output, so no other type admits every concrete definition.)
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyDefinition = Definition<any, Record<string, AnyAction<any>>, any, any>

/** Defines an agent (checked when spawned). */
export const define = <S, const Actions extends Record<string, AnyAction<S>>, HE = never, R = never>(
  definition: Definition<S, Actions, HE, R>
): Definition<S, Actions, HE, R> => definition

export type StateOf<D> = D extends Definition<infer S, any, any, any> ? S : never
export type ActionsOf<D> = D extends Definition<any, infer Actions, any, any> ? Actions : never
export type HookErrorOf<D> = D extends Definition<any, any, infer HE, any> ? HE : never
export type ContextOf<D> = D extends Definition<any, infer Actions, any, infer R>
  ? R | { [K in keyof Actions]: Actions[K] extends Action<any, any, any, any, infer AR> ? AR : never }[keyof Actions]
  : never
export type ParamsOf<D, K extends keyof ActionsOf<D>> = ActionsOf<D>[K] extends Action<any, infer P, any, any, any> ? P : never
export type ResultOf<D, K extends keyof ActionsOf<D>> = ActionsOf<D>[K] extends Action<any, any, any, infer A, any> ? A : never
export type ErrorOf<D, K extends keyof ActionsOf<D>> = ActionsOf<D>[K] extends Action<any, any, infer E, any, any> ? E : never

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** The agent's mailbox is full (`whenFull: "fail"`). Resource; retry later. */
export class MailboxFullError extends Tagged("MailboxFullError", {
  captureStack: false,
  category: "resource",
  severity: "medium",
  message: "Agent mailbox full"
})<{ readonly agent: string; readonly capacity: number }> {
  override describe() {
    return `The mailbox of agent "${this.agent}" is full (${this.capacity} messages)`
  }
}

/** The agent is not running any more (stopped, or crashed without a supervisor to restart it). */
export class AgentStoppedError extends Tagged("AgentStoppedError", {
  captureStack: false,
  category: "permanent",
  severity: "medium",
  message: "Agent stopped"
})<{ readonly agent: string }> {
  override describe() {
    return `Agent "${this.agent}" is not running`
  }
}

/** The agent died (a defect) while handling, or before handling, this call. */
export class AgentCrashedError extends Tagged("AgentCrashedError", {
  captureStack: false,
  category: "system",
  severity: "high",
  message: "Agent crashed"
})<{ readonly agent: string; readonly action: string; readonly cause: Cause.Cause<unknown> }> {
  override describe() {
    return `Agent "${this.agent}" crashed${this.action === "" ? "" : ` handling "${this.action}"`}`
  }
}

/** `onStart` failed: the incarnation did not start. */
export class AgentStartError extends Tagged("AgentStartError", {
  category: "system",
  severity: "high",
  message: "Agent failed to start"
})<{ readonly agent: string; readonly cause: Cause.Cause<unknown> }> {
  override describe() {
    return `Agent "${this.agent}" failed to start`
  }
}

/** What a call can fail with besides the action's own errors and the hooks' vetoes. */
export type CallError = ValidationError | MailboxFullError | AgentStoppedError | AgentCrashedError | TimeoutError

// ---------------------------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------------------------

/** Options of one call. */
export interface CallOptions {
  /** Time limit, waiting in the mailbox included [5 s]. */
  readonly timeout?: Duration.DurationInput
}

/** A running (or supervised) agent. */
export interface AgentRef<D extends AnyDefinition = AnyDefinition> {
  readonly id: string
  readonly definition: D
  /** Runs an action and waits for its result. */
  readonly call: <K extends keyof ActionsOf<D> & string>(
    action: K,
    params: ParamsOf<D, K>,
    options?: CallOptions
  ) => Effect.Effect<ResultOf<D, K>, ErrorOf<D, K> | HookErrorOf<D> | CallError>
  /** Queues an action without waiting (its result and failure are dropped; `onError` sees failures). */
  readonly cast: <K extends keyof ActionsOf<D> & string>(
    action: K,
    params: ParamsOf<D, K>
  ) => Effect.Effect<void, ValidationError | MailboxFullError | AgentStoppedError>
  /** The last committed state. */
  readonly state: Effect.Effect<StateOf<D>>
  /** Messages waiting. */
  readonly mailboxSize: Effect.Effect<number>
  /** True while an incarnation runs. */
  readonly running: Effect.Effect<boolean>
  /**
   * Waits until the agent has ended for good (a spawned agent's scope closed, whatever closed
   * it); at once if it has. A supervised agent never ends this way: its reference outlives each
   * incarnation.
   */
  readonly ended: Effect.Effect<void>
  /** Stops the agent (spawned: closes its scope; supervised: use the supervisor). */
  readonly stop: Effect.Effect<void>
}

/** Any agent reference. */
export type AnyAgentRef = AgentRef<AnyDefinition>

/** Options of a spawned or supervised agent. */
export interface SpawnOptions {
  /** Unique id [generated: `<name>-<random>`]. */
  readonly id?: string | undefined
  /** Mailbox capacity (an integer ≥ 1) [1000]. */
  readonly mailbox?: number | undefined
  /** When the mailbox is full: fail with `MailboxFullError`, or wait [fail]. */
  readonly whenFull?: "fail" | "wait" | undefined
  /**
   * Runs in each incarnation's scope before its first message, with the agent's reference: resources
   * it acquires there are released when the incarnation ends (the registry registers here).
   */
  readonly attach?: ((ref: AnyAgentRef) => Effect.Effect<void, unknown, Scope.Scope>) | undefined
  /**
   * Decorates the agent's reference (made once per agent): the result is what `spawn` and
   * `supervised` return, what `attach` receives and what actions see as `ctx.self` (the registry
   * wraps `stop` here).
   */
  readonly reference?: ((ref: AnyAgentRef) => AnyAgentRef) | undefined
}

// ---------------------------------------------------------------------------------------------
// The implementation
// ---------------------------------------------------------------------------------------------

/** How a waiting caller is resumed: with its reply, or a failure. */
type Resume = (effect: Effect.Effect<unknown, unknown>) => void

/** A message. A call carries its caller's resume callback and its deadline in the wheel. */
interface Envelope {
  readonly action: string
  readonly params: unknown
  readonly isCall: boolean
  /** The waiting caller (a call), or undefined while it is not registered (or gone). */
  resume: Resume | undefined
  /** A reply that arrived while no caller was registered (see `Cell.continueWaiting`). */
  result: Effect.Effect<unknown, unknown> | undefined
  /** Set when the caller gave up (timeout, interruption) before the agent took the message. */
  abandoned: boolean
  deadline: Entry | undefined
  wheel: DeadlineWheel | undefined
  /** A cast waiting for room (`whenFull: "wait"`): resumes the caster once queued. */
  admitted: (() => void) | undefined
}

const envelope = (action: string, params: unknown, isCall: boolean): Envelope => ({
  action,
  params,
  isCall,
  resume: undefined,
  result: undefined,
  abandoned: false,
  deadline: undefined,
  wheel: undefined,
  admitted: undefined
})

/** Answers a call (once): cancels its deadline, resumes its caller or keeps the reply for it. */
const reply = (message: Envelope, effect: Effect.Effect<unknown, unknown>): void => {
  if (!message.isCall) return
  if (message.deadline !== undefined) {
    message.wheel!.remove(message.deadline)
    message.deadline = undefined
  }
  const resume = message.resume
  if (resume !== undefined) {
    message.resume = undefined
    resume(effect)
  } else if (!message.abandoned) {
    message.result = effect
  }
}

const defaultCallTimeout = Duration.seconds(5)

/** Validators are made once per Schema and field prefix, not per agent. */
const validators = new WeakMap<object, Map<string, (u: unknown) => Either.Either<unknown, ValidationError>>>()
const validatorOf = (
  schema: Schema.Schema<unknown, unknown>,
  prefix: string
): (u: unknown) => Either.Either<unknown, ValidationError> => {
  let byPrefix = validators.get(schema)
  if (byPrefix === undefined) validators.set(schema, byPrefix = new Map())
  let validate = byPrefix.get(prefix)
  if (validate === undefined) {
    const check = Schema.validateEither(schema, { errors: "all" })
    validate = (u) => Either.mapLeft(check(u), (e) => Validation.fromParseError(e, prefix))
    byPrefix.set(prefix, validate)
  }
  return validate
}

/** One timer fiber for the call deadlines of all agents spawned in a scope. */
const wheels = new WeakMap<Scope.Scope, DeadlineWheel>()
const wheelIn = (scope: Scope.Scope): Effect.Effect<DeadlineWheel> =>
  Effect.suspend(() => {
    const known = wheels.get(scope)
    if (known !== undefined && !known.closed) return Effect.succeed(known)
    return Effect.flatMap(Effect.clock, (clock) => {
      const wheel = new DeadlineWheel(clock)
      wheels.set(scope, wheel)
      return Effect.as(
        Effect.zipRight(
          Scope.addFinalizer(scope, Effect.sync(() => wheel.close())),
          Effect.forkIn(Effect.interruptible(wheel.run), scope)
        ),
        wheel
      )
    })
  })

/** The running incarnation of an agent. */
interface Live {
  /** The incarnation's scope: its workers run in it, with it in their context. */
  readonly scope: Scope.Scope
  /** The services the workers run with, but the scope (built at the first worker). */
  readonly base: Context.Context<never>
  context: Context.Context<never> | undefined
  /** A worker runs (or is being forked). */
  busy: boolean
  reason: StopReason
  /** The worker fiber while one runs, and the message it handles. */
  worker: Fiber.RuntimeFiber<void, never> | undefined
  current: Envelope | undefined
  /** `stop` from inside an action: honoured once the action is done. */
  stopRequested: boolean
  /** The call whose defect ended the incarnation: answered when its scope has closed. */
  crashed: { readonly message: Envelope; readonly cause: Cause.Cause<unknown> } | undefined
  /** What runs the incarnation: how it ends. */
  readonly host: Host
}

/** What runs an incarnation: `spawn` (the agent's own scope) or a supervisor's child. */
interface Host {
  /** Ends the incarnation after a defect (spawned: closes its scope; supervised: fails its run). */
  die(live: Live, cause: Cause.Cause<unknown>): Effect.Effect<void>
  /** Ends the incarnation on request, from its own worker (spawned agents). */
  readonly stop: Effect.Effect<void>
  /** The incarnation's scope has closed (its last step). */
  ended(): void
}

/**
 * An agent's mailbox and state, shared by its incarnations. An idle agent holds no fiber: a
 * worker fiber is started in the incarnation's scope when a message arrives and none runs, takes
 * messages one at a time, and ends once the mailbox stays empty (it yields twice first, so a
 * caller that sends again as soon as it has its reply finds it still there).
 */
class Cell {
  state: unknown
  running = false
  /** The agent ended for good (spawned agents only). */
  closed = false
  live: Live | undefined = undefined
  /** The deadlines of calls (undefined: calls use a timer of their own). */
  wheel: DeadlineWheel | undefined = undefined
  private items: Array<Envelope | undefined> = []
  private head = 0
  private waiting: Array<Envelope> | undefined = undefined
  readonly validateState: (u: unknown) => Either.Either<unknown, ValidationError>

  constructor(
    readonly id: string,
    readonly definition: AnyDefinition,
    readonly capacity: number,
    readonly wait: boolean
  ) {
    this.state = definition.initial
    this.validateState = validatorOf(definition.state, `${definition.name}.state`)
  }

  /** Messages queued, plus those waiting for room. */
  get size(): number {
    return this.items.length - this.head + (this.waiting?.length ?? 0)
  }

  /** Validates a message's action and params (at the caller). */
  check(action: string, params: unknown): Either.Either<unknown, ValidationError> {
    const act = Object.prototype.hasOwnProperty.call(this.definition.actions, action)
      ? this.definition.actions[action]
      : undefined
    if (act === undefined) {
      return Either.left(
        new ValidationError({ field: "action", reason: `agent "${this.definition.name}" has no action "${action}"` })
      )
    }
    return validatorOf(act.params, `${this.definition.name}.${action}`)(params)
  }

  /** Queues a message: "queued", "waiting" (for room, `whenFull: "wait"`) or the refusal. */
  admit(message: Envelope): "queued" | "waiting" | MailboxFullError | AgentStoppedError {
    if (this.closed) return new AgentStoppedError({ agent: this.id })
    if (this.items.length - this.head < this.capacity && this.waiting === undefined) {
      this.items.push(message)
      return "queued"
    }
    if (!this.wait) return new MailboxFullError({ agent: this.id, capacity: this.capacity })
    ;(this.waiting ??= []).push(message)
    return "waiting"
  }

  /** True while `message` waits for room. */
  isWaiting(message: Envelope): boolean {
    return this.waiting !== undefined && this.waiting.includes(message)
  }

  /** The next message not abandoned, moving a waiting one into the room it leaves. */
  take(): Envelope | undefined {
    while (this.head < this.items.length) {
      const message = this.items[this.head]!
      this.items[this.head++] = undefined
      if (this.head === this.items.length) {
        this.items = []
        this.head = 0
      } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
        this.items = this.items.slice(this.head)
        this.head = 0
      }
      this.admitWaiting()
      if (!message.abandoned) return message
    }
    return undefined
  }

  private admitWaiting(): void {
    const waiting = this.waiting
    if (waiting === undefined) return
    while (waiting.length > 0 && this.items.length - this.head < this.capacity) {
      const next = waiting.shift()!
      if (next.abandoned) continue
      this.items.push(next)
      const admitted = next.admitted
      next.admitted = undefined
      admitted?.()
    }
    if (waiting.length === 0) this.waiting = undefined
  }

  /**
   * Starts a worker in the incarnation's scope when a message waits and none runs (undefined
   * when there is nothing to do). It runs with the incarnation's services and scope; its other
   * fiber refs are those of the fiber that woke the agent.
   */
  wake(): Effect.Effect<void> | undefined {
    const live = this.live
    if (live === undefined || live.busy || this.items.length === this.head) return undefined
    live.busy = true
    live.context ??= Context.add(live.base, Scope.Scope, live.scope)
    // Interruptible whatever the waker's region (the worker inherits its runtime flags); the fork
    // itself cannot be interrupted once `busy` is set, or no worker would ever start again.
    const work = Effect.interruptible(Effect.provide(this.work(live), live.context))
    return Effect.uninterruptible(Effect.asVoid(Effect.forkIn(work, live.scope)))
  }

  /** Everything queued or waiting, taken out (the agent ended for good). */
  takeAll(): Array<Envelope> {
    const left: Array<Envelope> = []
    for (let i = this.head; i < this.items.length; i++) left.push(this.items[i]!)
    if (this.waiting !== undefined) left.push(...this.waiting)
    this.items = []
    this.head = 0
    this.waiting = undefined
    return left
  }

  /** The worker: messages one at a time until the mailbox stays empty or the incarnation ends. */
  private work(live: Live): Effect.Effect<void> {
    let idle = 0
    const loop: Effect.Effect<void> = Effect.suspend(() => {
      if (this.live !== live) return Effect.void
      if (live.stopRequested) return Effect.zipRight(Effect.sync(() => this.release(live)), live.host.stop)
      const message = this.take()
      if (message === undefined) {
        if (idle++ < 2) return Effect.zipRight(Effect.yieldNow(), loop)
        this.release(live)
        return Effect.void
      }
      idle = 0
      live.current = message
      return Effect.zipRight(this.handle(live, message), loop)
    })
    // The worker records itself (not its waker: a worker may end before its waker resumes).
    const start = Effect.withFiberRuntime<void>((fiber) => {
      if (this.live === live) live.worker = fiber as Fiber.RuntimeFiber<void, never>
      return loop
    })
    return Effect.onExit(start, (exit) => {
      if (Exit.isSuccess(exit)) return Effect.void
      this.release(live)
      const current = live.current
      live.current = undefined
      if (Cause.isInterrupted(exit.cause)) {
        // Stopped under an action (even if its cleanup failed too): its caller hears so at once.
        if (current !== undefined) reply(current, Effect.fail(new AgentStoppedError({ agent: this.id })))
        return Effect.void
      }
      // A defect outside the action's own exit (a hook, a synchronous throw): the message being
      // handled is answered as crashed once the incarnation's scope has closed.
      if (current !== undefined && live.crashed === undefined) live.crashed = { message: current, cause: exit.cause }
      live.reason = "crashed"
      return live.host.die(live, exit.cause)
    })
  }

  /** The worker is gone: a later message starts another. */
  private release(live: Live): void {
    live.worker = undefined
    live.busy = false
  }

  /** Handles one message; a defect fails the worker (and ends the incarnation). */
  private handle(live: Live, message: Envelope): Effect.Effect<void> {
    const definition = this.definition
    const hooks = definition.hooks
    const ctx = this.contextOf(this.state)
    const act = definition.actions[message.action]!
    // The definition's services are in the worker's context (see `wake`). Suspended, so that a
    // synchronous throw in `run` or `beforeAction` is a defect of this message.
    const work = Effect.suspend(() =>
      hooks?.beforeAction === undefined
        ? act.run(message.params, ctx)
        : Effect.zipRight(hooks.beforeAction(ctx, message.action, message.params), act.run(message.params, ctx))
    ) as Effect.Effect<unknown, unknown>
    // `live.current` stays set until the message is answered: a defect or a stop before that
    // (in a hook too) is answered by the worker's end (see `work`).
    const answer = (effect: Effect.Effect<unknown, unknown>) =>
      Effect.sync(() => {
        live.current = undefined
        reply(message, effect)
      })
    return Effect.flatMap(Effect.exit(work), (exit): Effect.Effect<void> => {
      if (Exit.isSuccess(exit)) {
        this.state = ctx.state
        if (hooks?.afterAction === undefined) {
          live.current = undefined
          reply(message, exit)
          return Effect.void
        }
        const after = hooks.afterAction(ctx, message.action, exit.value) as Effect.Effect<void>
        return Effect.zipRight(after, answer(exit))
      }
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure)) {
        const failed = Effect.fail(failure.value)
        if (hooks?.onError === undefined) {
          live.current = undefined
          reply(message, failed)
          return Effect.void
        }
        const onError = hooks.onError(ctx, message.action, failure.value) as Effect.Effect<void>
        return Effect.zipRight(onError, answer(failed))
      }
      // A defect, or an action that interrupted itself (an interruption from outside skips this
      // handler): the incarnation ends; the caller hears of it once the incarnation's scope has
      // closed (its registration is gone by then).
      live.current = undefined
      live.crashed = { message, cause: exit.cause }
      if (Cause.isInterruptedOnly(exit.cause)) return live.host.die(live, exit.cause)
      live.reason = "crashed"
      return Effect.failCause(exit.cause) as Effect.Effect<never>
    })
  }

  /** An action's view of the state: changes are validated and kept in `ctx.state`. */
  contextOf(state: unknown): ActionContext<unknown> & { state: unknown } {
    const cell = this
    const ctx = {
      id: cell.id,
      state,
      setState: (next: unknown) =>
        Effect.suspend(() => {
          const checked = cell.validateState(next)
          if (Either.isLeft(checked)) return Effect.fail(checked.left)
          ctx.state = checked.right
          return Effect.void
        }),
      updateState: (f: (state: unknown) => unknown) =>
        Effect.suspend(() => {
          const checked = cell.validateState(f(ctx.state))
          if (Either.isLeft(checked)) return Effect.fail(checked.left)
          ctx.state = checked.right
          return Effect.void
        }),
      self: cell.ref
    }
    return ctx
  }

  ref: AnyAgentRef = undefined as never
  /** Completed when the agent ends for good (made on first use: most agents are never awaited). */
  endedSignal: Deferred.Deferred<void> | undefined = undefined
}

/** Fails every message still queued or waiting: the agent ended for good. */
const drain = (cell: Cell, cause: Cause.Cause<unknown>): void => {
  cell.closed = true
  if (cell.endedSignal !== undefined) Deferred.unsafeDone(cell.endedSignal, Exit.void)
  const left = cell.takeAll()
  if (left.length === 0) return
  const error = Cause.isInterruptedOnly(cause) || Cause.isEmpty(cause)
    ? new AgentStoppedError({ agent: cell.id })
    : new AgentCrashedError({ agent: cell.id, action: "", cause })
  const failed = Effect.fail(error)
  for (const message of left) {
    if (message.isCall) reply(message, failed)
    else {
      // A cast waiting for room: its caster hears that the agent stopped (now, or when it
      // registers: `abandoned` is what it checks).
      message.abandoned = true
      const admitted = message.admitted
      message.admitted = undefined
      admitted?.()
    }
  }
}

/** Waits for a call's reply on a timer of its own (no wheel, or the wheel closed under it). */
const waitOwnTimer = (message: Envelope, millis: number, label: string): Effect.Effect<unknown, unknown> =>
  Effect.async<unknown, unknown>((resume) => {
    if (message.result !== undefined) return resume(message.result)
    message.resume = resume
    return Effect.sync(() => {
      message.abandoned = true
      message.resume = undefined
    })
  }).pipe(
    Effect.timeoutFail({
      duration: Duration.millis(Math.max(0, millis)),
      onTimeout: () => new TimeoutError({ timeout: Duration.millis(millis), label })
    })
  )

/** Waits for a call's reply, its deadline in the wheel. */
const waitWheel = (
  message: Envelope,
  wheel: DeadlineWheel,
  millis: number,
  limit: Duration.Duration,
  label: string
): Effect.Effect<unknown, unknown> =>
  Effect.async<unknown, unknown>((resume) => {
    if (message.result !== undefined) return resume(message.result)
    message.resume = resume
    message.wheel = wheel
    const entry = wheel.add(millis, (shutdown) => {
      message.deadline = undefined
      const waiting = message.resume
      message.resume = undefined
      if (waiting === undefined) return
      if (!shutdown) {
        message.abandoned = true
        waiting(Effect.fail(new TimeoutError({ timeout: limit, label })))
      } else {
        // The wheel's scope closed while the agent lives on (a supervised restart): wait on,
        // on a timer of its own, for the rest of the time.
        waiting(waitOwnTimer(message, entry!.deadline - wheel.now(), label))
      }
    })
    if (entry === undefined) {
      message.resume = undefined
      return resume(waitOwnTimer(message, millis, label))
    }
    message.deadline = entry
    return Effect.sync(() => {
      message.abandoned = true
      message.resume = undefined
      if (message.deadline !== undefined) {
        wheel.remove(message.deadline)
        message.deadline = undefined
      }
    })
  })

const timeoutOf = (options: CallOptions | undefined): Either.Either<Duration.Duration, ValidationError> =>
  options?.timeout === undefined ? Either.right(defaultCallTimeout) : Validation.duration("call.timeout", options.timeout)

const refOf = <D extends AnyDefinition>(
  cell: Cell,
  stop: Effect.Effect<void>,
  reference: SpawnOptions["reference"]
): AgentRef<D> => {
  const ref: AgentRef<D> = {
    id: cell.id,
    definition: cell.definition as D,
    call: (action, params, options) =>
      Effect.suspend((): Effect.Effect<never, CallError> => {
        if (cell.closed) return Effect.fail(new AgentStoppedError({ agent: cell.id }))
        const limit = timeoutOf(options)
        if (Either.isLeft(limit)) return Effect.fail(limit.left)
        const checked = cell.check(action, params)
        if (Either.isLeft(checked)) return Effect.fail(checked.left)
        const millis = Duration.toMillis(limit.right)
        const label = `call ${cell.id}.${action}`
        const message = envelope(action, checked.right, true)
        const admitted = cell.admit(message)
        if (typeof admitted !== "string") return Effect.fail(admitted)
        const wheel = cell.wheel
        const wait = wheel === undefined || wheel.closed
          ? waitOwnTimer(message, millis, label)
          : waitWheel(message, wheel, millis, limit.right, label)
        const wake = cell.wake()
        return (wake === undefined ? wait : Effect.zipRight(wake, wait)) as Effect.Effect<never>
      }),
    cast: (action, params) =>
      Effect.suspend((): Effect.Effect<void, ValidationError | MailboxFullError | AgentStoppedError> => {
        if (cell.closed) return Effect.fail(new AgentStoppedError({ agent: cell.id }))
        const checked = cell.check(action, params)
        if (Either.isLeft(checked)) return Effect.fail(checked.left)
        const message = envelope(action, checked.right, false)
        const admitted = cell.admit(message)
        if (typeof admitted !== "string") return Effect.fail(admitted)
        if (admitted === "queued") return cell.wake() ?? Effect.void
        // Waiting for room (`whenFull: "wait"`): resumed once a worker moves it into the mailbox.
        return Effect.async<void, AgentStoppedError>((resume) => {
          if (message.abandoned) return resume(Effect.fail(new AgentStoppedError({ agent: cell.id })))
          if (!cell.isWaiting(message)) return resume(Effect.void)
          message.admitted = () => resume(Effect.void)
          return Effect.sync(() => {
            if (message.admitted === undefined) return
            message.admitted = undefined
            message.abandoned = true
          })
        }).pipe(Effect.flatMap(() =>
          message.abandoned ? Effect.fail(new AgentStoppedError({ agent: cell.id })) : Effect.void
        ))
      }),
    state: Effect.sync(() => cell.state as StateOf<D>),
    mailboxSize: Effect.sync(() => cell.closed ? 0 : cell.size),
    running: Effect.sync(() => cell.running),
    ended: Effect.suspend(() => cell.closed ? Effect.void : Deferred.await(cell.endedSignal ??= Deferred.unsafeMake(FiberId.none))),
    stop
  }
  cell.ref = reference === undefined ? ref : reference(ref)
  return cell.ref as AgentRef<D>
}

/** Checks a definition (once per definition object). */
const checkedDefinitions = new WeakSet<object>()
const checkDefinition = (definition: AnyDefinition): Either.Either<void, ValidationError> => {
  if (typeof definition === "object" && definition !== null && checkedDefinitions.has(definition)) return Either.void
  const name = Validation.nonEmptyString("agent.name", definition?.name)
  if (Either.isLeft(name)) return name
  if (!Schema.isSchema(definition.state)) return Validation.invalid("agent.state", "expected a Schema")
  if (typeof definition.actions !== "object" || definition.actions === null) {
    return Validation.invalid("agent.actions", "expected an object of actions")
  }
  for (const [name, action] of Object.entries(definition.actions)) {
    if (!Schema.isSchema(action?.params)) return Validation.invalid(`agent.actions.${name}.params`, "expected a Schema")
    if (typeof action.run !== "function") return Validation.invalid(`agent.actions.${name}.run`, "expected a function")
  }
  const initial = validatorOf(definition.state, `${definition.name}.state`)(definition.initial)
  if (Either.isLeft(initial)) return Either.left(initial.left)
  checkedDefinitions.add(definition)
  return Either.void
}

/** Checks the definition and options and makes the agent's cell (an id is drawn when none given). */
const makeCell = (definition: AnyDefinition, options: SpawnOptions): Effect.Effect<Cell, ValidationError> => {
  const checked = checkDefinition(definition)
  if (Either.isLeft(checked)) return Effect.fail(checked.left)
  let capacity = 1000
  if (options.mailbox !== undefined) {
    const mailbox = Validation.positiveInt("agent.mailbox", options.mailbox)
    if (Either.isLeft(mailbox)) return Effect.fail(mailbox.left)
    capacity = mailbox.right
  }
  const whenFull = options.whenFull ?? "fail"
  if (whenFull !== "fail" && whenFull !== "wait") return Validation.invalid("agent.whenFull", `"fail" or "wait"`)
  if (options.id !== undefined) {
    const id = Validation.nonEmptyString("agent.id", options.id)
    if (Either.isLeft(id)) return Effect.fail(id.left)
    return Effect.succeed(new Cell(id.right, definition, capacity, whenFull === "wait"))
  }
  return Effect.map(
    Random.nextIntBetween(0, 2 ** 31),
    (n) => new Cell(`${definition.name}-${n.toString(36)}`, definition, capacity, whenFull === "wait")
  )
}

// The finalizers an agent keeps for its life are made by these small functions, so that they hold
// only what they use (a closure keeps its whole enclosing function's context alive).

/** The incarnation's last step: answers a crashed call, runs `onStop`, tells its host. */
const endOf = (cell: Cell, live: Live): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (cell.live === live) cell.live = undefined
    cell.running = false
    const crashed = live.crashed
    if (crashed !== undefined) {
      const error = new AgentCrashedError({ agent: cell.id, action: crashed.message.action, cause: crashed.cause })
      reply(crashed.message, Effect.fail(error))
    }
    const onStop = cell.definition.hooks?.onStop
    const stopped = onStop === undefined ? Effect.void : onStop(cell.state, live.reason) as Effect.Effect<void>
    return Effect.ensuring(stopped, Effect.sync(() => live.host.ended()))
  })

/** The incarnation's first step when its scope closes: no new worker, the running one interrupted. */
const interruptWorkerOf = (cell: Cell, live: Live): Effect.Effect<void> =>
  Effect.fiberIdWith((self) => {
    if (cell.live === live) cell.live = undefined
    const worker = live.worker
    // Not the worker itself (it is the one closing the scope, after a defect or `stop`).
    if (worker === undefined || Equal.equals(self, worker.id())) return Effect.void
    return Effect.asVoid(Fiber.interrupt(worker))
  })

/**
 * Starts an incarnation in `scope`: fresh state, `attach` and `onStart` (with `scope` as their
 * scope); then the agent takes messages (in worker fibers of `scope`) until the scope closes.
 * Returns the live incarnation, or fails with `AgentStartError` (the caller closes the scope).
 */
const startIncarnation = (
  cell: Cell,
  options: SpawnOptions,
  scope: Scope.Scope,
  base: Context.Context<never>,
  host: Host
): Effect.Effect<Live, AgentStartError> => {
  const definition = cell.definition
  const hooks = definition.hooks
  cell.state = definition.initial
  const live: Live = {
    scope,
    base,
    context: undefined,
    busy: false,
    reason: "stopped",
    worker: undefined,
    current: undefined,
    stopRequested: false,
    crashed: undefined,
    host
  }
  // Added first, so it runs last: after `attach`'s resources (the registration) are released.
  // (`Scope.addFinalizer`, not `Effect.addFinalizer`: that one keeps a copy of the fiber refs.)
  const ending = Scope.addFinalizer(scope, endOf(cell, live))
  // Runs first when the scope closes: no new worker starts, the running one is interrupted.
  const interrupting = Scope.addFinalizer(scope, interruptWorkerOf(cell, live))
  const go = Effect.zipRight(
    interrupting,
    Effect.suspend(() => {
      cell.live = live
      cell.running = true
      const wake = cell.wake()
      return wake === undefined ? Effect.succeed(live) : Effect.as(wake, live)
    })
  )
  const startFailed = (cause: Cause.Cause<unknown>) => {
    live.reason = "start_failed"
    return Effect.fail(new AgentStartError({ agent: cell.id, cause }))
  }
  const attach = options.attach === undefined ? undefined : Effect.catchAllCause(
    Effect.provideService(options.attach(cell.ref), Scope.Scope, scope) as Effect.Effect<void, unknown>,
    startFailed
  )
  const onStart = hooks?.onStart === undefined ? undefined : Effect.suspend(() => {
    const ctx = cell.contextOf(cell.state)
    const started = hooks.onStart!(ctx) as Effect.Effect<void, unknown, Scope.Scope>
    return Effect.matchCauseEffect(Effect.provideService(started, Scope.Scope, scope), {
      onFailure: startFailed,
      onSuccess: () =>
        Effect.sync(() => {
          cell.state = ctx.state
        })
    })
  })
  let start: Effect.Effect<unknown, AgentStartError> = ending
  if (attach !== undefined) start = Effect.zipRight(start, attach)
  if (onStart !== undefined) start = Effect.zipRight(start, onStart)
  return Effect.zipRight(start, go) as Effect.Effect<Live, AgentStartError>
}

/**
 * Spawns an agent in a scope of its own, forked from the current one: `stop` (or closing the
 * current scope) ends it. Fails with `ValidationError` for a bad definition or options, and with
 * `AgentStartError` when `attach` or `onStart` fails (the agent is then not running). `attach` and
 * `onStart` run in the spawning fiber; an idle agent holds no fiber.
 */
export const spawn = <D extends AnyDefinition>(
  definition: D,
  options: SpawnOptions = {}
): Effect.Effect<AgentRef<D>, ValidationError | AgentStartError, Scope.Scope | ContextOf<D>> =>
  Effect.flatMap(makeCell(definition, options), (cell) =>
    Effect.withFiberRuntime((fiber) => {
      const base = fiber.currentContext as Context.Context<never>
      const parent = Context.get(base as Context.Context<Scope.Scope>, Scope.Scope)
      // The wheel first: the parent closes the agents' scopes before their shared wheel.
      return Effect.flatMap(wheelIn(parent), (wheel) => {
        cell.wheel = wheel
        return Effect.flatMap(Scope.fork(parent, ExecutionStrategy.sequential), (scope) => {
          const host = new SpawnedHost(cell, scope)
          refOf<D>(cell, host.stopFromAnywhere, options.reference)
          return Effect.matchCauseEffect(startIncarnation(cell, options, scope, base, host), {
            onFailure: (cause) => Effect.zipRight(host.close(Exit.failCause(cause)), Effect.failCause(cause)),
            onSuccess: () => Effect.succeed(cell.ref as AgentRef<D>)
          })
        })
      })
    }))

/** A spawned agent's end: its own scope, closed once, by `stop`, a defect or its parent. */
class SpawnedHost implements Host {
  private closing: Deferred.Deferred<void> | undefined = undefined
  private crash: Cause.Cause<unknown> = Cause.empty
  constructor(readonly cell: Cell, readonly scope: Scope.CloseableScope) {}

  /** Closes the agent's scope (once; a second caller waits for the first). */
  close(exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.closing !== undefined) return Deferred.await(this.closing)
      const done = this.closing = Deferred.unsafeMake<void>(FiberId.none)
      return Effect.ensuring(Scope.close(this.scope, exit), Deferred.succeed(done, undefined))
    })
  }

  die(_: Live, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    this.crash = cause
    // Already closing (a stop waits for this very worker to end): nothing to wait for here.
    if (this.closing !== undefined) return Effect.void
    return this.close(Exit.failCause(cause))
  }

  get stop(): Effect.Effect<void> {
    return this.close(Exit.void)
  }

  /** `stop` of the reference: from the agent's own worker, honoured after the current message. */
  get stopFromAnywhere(): Effect.Effect<void> {
    return Effect.fiberIdWith((self) => {
      const live = this.cell.live
      const worker = live?.worker
      if (live !== undefined && worker !== undefined && Equal.equals(self, worker.id())) {
        live.stopRequested = true
        return Effect.void
      }
      return this.close(Exit.void)
    })
  }

  /** The agent ended for good: what is still queued fails. */
  ended(): void {
    drain(this.cell, this.crash)
  }
}

/**
 * A supervised agent: a stable reference and the `Supervisor` child spec that runs it. Each
 * (re)start is a fresh incarnation on the same mailbox; the child is ready (`awaitReady`) once
 * `onStart` succeeded. Add the child with `supervisor.startChild(child)` or in `children`. The
 * child's fiber waits while the agent is idle; messages run in worker fibers of its scope.
 */
export const supervised = <D extends AnyDefinition>(
  definition: D,
  options: SpawnOptions & { readonly restart?: Supervisor.RestartType; readonly shutdownTimeout?: Duration.DurationInput } = {}
): Effect.Effect<{ readonly ref: AgentRef<D>; readonly child: Supervisor.ChildSpec<ContextOf<D>> }, ValidationError> =>
  Effect.gen(function*() {
    const cell = yield* makeCell(definition, options)
    const ref = refOf<D>(cell, Effect.void, options.reference)
    const run = Effect.gen(function*() {
      const childContext = yield* Effect.serviceOption(Supervisor.ChildContext)
      const scope = yield* Effect.scope
      const wheel = yield* wheelIn(scope)
      cell.wheel = wheel
      yield* Scope.addFinalizer(
        scope,
        Effect.sync(() => {
          if (cell.wheel === wheel) cell.wheel = undefined
        })
      )
      const death = Deferred.unsafeMake<never, unknown>(FiberId.none)
      const host: Host = {
        die: (live, cause) =>
          Effect.sync(() => {
            if (cell.live === live) cell.live = undefined
            Deferred.unsafeDone(death, Exit.failCause(cause))
          }),
        stop: Effect.void,
        ended: () => {}
      }
      yield* startIncarnation(cell, options, scope, yield* Effect.context<never>(), host)
      yield* Option.match(childContext, { onNone: () => Effect.void, onSome: (c) => c.ready })
      return yield* Deferred.await(death)
    }) as Effect.Effect<never, AgentStartError, Scope.Scope | ContextOf<D>>
    const child: Supervisor.ChildSpec<ContextOf<D>> = {
      id: cell.id,
      restart: options.restart ?? "permanent",
      awaitReady: true,
      ...(options.shutdownTimeout === undefined ? {} : { shutdownTimeout: options.shutdownTimeout }),
      run
    }
    return { ref, child }
  })

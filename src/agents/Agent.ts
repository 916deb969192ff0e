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
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Equal from "effect/Equal"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import { Tagged, TimeoutError, ValidationError } from "../errors/FoundationError.js"
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

/** Any definition. */
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
  /** Stops the agent (spawned: closes its scope; supervised: use the supervisor). */
  readonly stop: Effect.Effect<void>
}

/** Any agent reference. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyAgentRef = AgentRef<any>

/** Options of a spawned or supervised agent. */
export interface SpawnOptions {
  /** Unique id [generated: `<name>-<random>`]. */
  readonly id?: string
  /** Mailbox capacity (an integer ≥ 1) [1000]. */
  readonly mailbox?: number
  /** When the mailbox is full: fail with `MailboxFullError`, or wait [fail]. */
  readonly whenFull?: "fail" | "wait"
  /**
   * Runs in each incarnation's scope before its first message, with the agent's reference: resources
   * it acquires there are released when the incarnation ends (the registry registers here).
   */
  readonly attach?: (ref: AnyAgentRef) => Effect.Effect<void, unknown, Scope.Scope>
}

// ---------------------------------------------------------------------------------------------
// The implementation
// ---------------------------------------------------------------------------------------------

interface Envelope {
  readonly action: string
  readonly params: unknown
  /** Undefined for a cast. */
  readonly reply: Deferred.Deferred<unknown, unknown> | undefined
  /** Set when the caller gave up before the agent took the message. */
  abandoned: boolean
}

const defaultCallTimeout = Duration.seconds(5)

/** An agent's mailbox and state, shared by its incarnations. */
class Cell {
  state: unknown
  running = false
  /** The agent ended for good (spawned agents only): its mailbox is shut down. */
  closed = false
  /** Closes the spawned agent's scope (spawn only). */
  stopper: Effect.Effect<void> = Effect.void
  readonly validators = new Map<string, (u: unknown) => Either.Either<unknown, ValidationError>>()
  readonly validateState: (u: unknown) => Either.Either<unknown, ValidationError>

  constructor(
    readonly id: string,
    readonly definition: AnyDefinition,
    readonly mailbox: Queue.Queue<Envelope>,
    readonly capacity: number,
    readonly wait: boolean
  ) {
    this.state = definition.initial
    for (const [name, action] of Object.entries(definition.actions)) {
      const validate = Schema.validateEither(action.params as Schema.Schema<unknown>, { errors: "all" })
      const prefix = `${definition.name}.${name}`
      this.validators.set(name, (u) => Either.mapLeft(validate(u), (e) => Validation.fromParseError(e, prefix)))
    }
    const validate = Schema.validateEither(definition.state as Schema.Schema<unknown>, { errors: "all" })
    this.validateState = (u) => Either.mapLeft(validate(u), (e) => Validation.fromParseError(e, `${definition.name}.state`))
  }

  /** Checks a message and puts it in the mailbox. */
  enqueue(
    action: string,
    params: unknown,
    reply: Deferred.Deferred<unknown, unknown> | undefined
  ): Effect.Effect<Envelope, ValidationError | MailboxFullError | AgentStoppedError> {
    const validate = this.validators.get(action)
    if (validate === undefined) {
      return Effect.fail(
        new ValidationError({ field: "action", reason: `agent "${this.definition.name}" has no action "${action}"` })
      )
    }
    const checked = validate(params)
    if (Either.isLeft(checked)) return Effect.fail(checked.left)
    const envelope: Envelope = { action, params: checked.right, reply, abandoned: false }
    if (this.wait) {
      // A queue shut down under a waiting offer interrupts the offer: that means "stopped".
      return Effect.catchAllCause(
        Effect.as(Queue.offer(this.mailbox, envelope), envelope),
        (cause) => Cause.isInterruptedOnly(cause) ? Effect.fail(new AgentStoppedError({ agent: this.id })) : Effect.failCause(cause)
      )
    }
    return Effect.suspend(() =>
      this.mailbox.unsafeOffer(envelope)
        ? Effect.succeed(envelope)
        : Effect.fail(new MailboxFullError({ agent: this.id, capacity: this.capacity }))
    )
  }
}

const refOf = <D extends AnyDefinition>(cell: Cell): AgentRef<D> => {
  const stopped = new AgentStoppedError({ agent: cell.id })
  const ref: AgentRef<D> = {
    id: cell.id,
    definition: cell.definition as D,
    call: (action, params, options) =>
      Effect.suspend((): Effect.Effect<never, CallError> => {
        if (cell.closed) return Effect.fail(stopped)
        let limit = defaultCallTimeout
        if (options?.timeout !== undefined) {
          const checked = Validation.duration("call.timeout", options.timeout)
          if (Either.isLeft(checked)) return Effect.fail(checked.left)
          limit = checked.right
        }
        const reply = Deferred.unsafeMake<unknown, unknown>(undefined as never)
        return Effect.flatMap(cell.enqueue(action, params, reply), (envelope) =>
          Deferred.await(reply).pipe(
            Effect.timeoutFail({
              duration: limit,
              onTimeout: () => new TimeoutError({ timeout: limit, label: `call ${cell.id}.${action}` })
            }),
            Effect.onInterrupt(() => Effect.sync(() => {
              envelope.abandoned = true
            })),
            Effect.tapError(() =>
              Effect.sync(() => {
                envelope.abandoned = true
              })
            )
          )) as Effect.Effect<never>
      }),
    cast: (action, params) =>
      Effect.suspend(() =>
        cell.closed ? Effect.fail(stopped) : Effect.asVoid(cell.enqueue(action, params, undefined))
      ),
    state: Effect.sync(() => cell.state as StateOf<D>),
    mailboxSize: Effect.suspend(() =>
      cell.closed ? Effect.succeed(0) : Effect.map(Queue.size(cell.mailbox), (n) => Math.max(0, n))
    ),
    running: Effect.sync(() => cell.running),
    stop: Effect.suspend(() => cell.stopper)
  }
  return ref
}

const makeCell = (definition: AnyDefinition, options: SpawnOptions): Effect.Effect<Cell, ValidationError> =>
  Effect.gen(function*() {
    yield* Validation.nonEmptyString("agent.name", definition?.name)
    if (!Schema.isSchema(definition.state)) return yield* Validation.invalid("agent.state", "expected a Schema")
    if (typeof definition.actions !== "object" || definition.actions === null) {
      return yield* Validation.invalid("agent.actions", "expected an object of actions")
    }
    for (const [name, action] of Object.entries(definition.actions)) {
      if (!Schema.isSchema(action?.params)) return yield* Validation.invalid(`agent.actions.${name}.params`, "expected a Schema")
      if (typeof action.run !== "function") return yield* Validation.invalid(`agent.actions.${name}.run`, "expected a function")
    }
    const capacity = yield* Validation.positiveInt("agent.mailbox", options.mailbox ?? 1000)
    const whenFull = options.whenFull ?? "fail"
    if (whenFull !== "fail" && whenFull !== "wait") return yield* Validation.invalid("agent.whenFull", `"fail" or "wait"`)
    const id = options.id ?? `${definition.name}-${(yield* Random.nextIntBetween(0, 2 ** 31)).toString(36)}`
    yield* Validation.nonEmptyString("agent.id", id)
    const mailbox = yield* Queue.bounded<Envelope>(capacity)
    const cell = new Cell(id, definition, mailbox, capacity, whenFull === "wait")
    const initial = cell.validateState(definition.initial)
    if (Either.isLeft(initial)) return yield* Effect.fail(initial.left)
    return cell
  })

/** One incarnation: fresh state, `attach`, `onStart`, then messages until the scope closes. */
const incarnation = (
  cell: Cell,
  ref: AnyAgentRef,
  options: SpawnOptions,
  started: Effect.Effect<void>
): Effect.Effect<never, AgentStartError, Scope.Scope> =>
  Effect.gen(function*() {
    const definition = cell.definition
    const hooks = definition.hooks ?? {}
    cell.state = definition.initial
    const contextOf = (pending: { state: unknown }): ActionContext<unknown> => ({
      id: cell.id,
      get state() {
        return pending.state
      },
      setState: (next) =>
        Effect.suspend(() => {
          const checked = cell.validateState(next)
          if (Either.isLeft(checked)) return Effect.fail(checked.left)
          pending.state = checked.right
          return Effect.void
        }),
      updateState: (f) =>
        Effect.suspend(() => {
          const checked = cell.validateState(f(pending.state))
          if (Either.isLeft(checked)) return Effect.fail(checked.left)
          pending.state = checked.right
          return Effect.void
        }),
      self: ref
    })
    let reason: StopReason = "stopped"
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        cell.running = false
        return hooks.onStop === undefined ? Effect.void : hooks.onStop(cell.state, reason)
      })
    )
    if (options.attach !== undefined) {
      const attached = yield* Effect.exit(options.attach(ref))
      if (Exit.isFailure(attached)) {
        reason = "start_failed"
        return yield* Effect.fail(new AgentStartError({ agent: cell.id, cause: attached.cause }))
      }
    }
    if (hooks.onStart !== undefined) {
      const pending = { state: cell.state }
      const startExit = yield* Effect.exit(hooks.onStart(contextOf(pending)))
      if (Exit.isFailure(startExit)) {
        reason = "start_failed"
        return yield* Effect.fail(new AgentStartError({ agent: cell.id, cause: startExit.cause }))
      }
      cell.state = pending.state
    }
    cell.running = true
    yield* started

    /** Handles one message; a defect ends the loop (and the agent). */
    const handle = (envelope: Envelope): Effect.Effect<void> => {
      if (envelope.abandoned) return Effect.void
      const pending = { state: cell.state }
      const ctx = contextOf(pending)
      const act = definition.actions[envelope.action]!
      const work = Effect.zipRight(
        hooks.beforeAction === undefined ? Effect.void : hooks.beforeAction(ctx, envelope.action, envelope.params),
        act.run(envelope.params, ctx)
      )
      return Effect.flatMap(Effect.exit(work), (exit) => {
        if (Exit.isSuccess(exit)) {
          cell.state = pending.state
          const reply = envelope.reply === undefined ? Effect.void : Deferred.succeed(envelope.reply, exit.value)
          return Effect.zipRight(
            hooks.afterAction === undefined ? Effect.void : hooks.afterAction(ctx, envelope.action, exit.value),
            reply
          )
        }
        const failure = Cause.failureOption(exit.cause)
        if (Option.isSome(failure)) {
          const reply = envelope.reply === undefined ? Effect.void : Deferred.fail(envelope.reply, failure.value)
          return Effect.zipRight(
            hooks.onError === undefined ? Effect.void : hooks.onError(ctx, envelope.action, failure.value),
            reply
          )
        }
        // A defect (or an interruption of the agent): the caller hears of it, then the agent ends.
        reason = "crashed"
        const crashed = new AgentCrashedError({ agent: cell.id, action: envelope.action, cause: exit.cause })
        return Effect.zipRight(
          envelope.reply === undefined ? Effect.void : Deferred.fail(envelope.reply, crashed),
          Effect.failCause(exit.cause) as Effect.Effect<never>
        )
      }).pipe(Effect.asVoid) as Effect.Effect<void>
    }
    return yield* Effect.forever(Effect.flatMap(Queue.take(cell.mailbox), handle))
  }) as Effect.Effect<never, AgentStartError, Scope.Scope>

/** Fails every call still waiting in the mailbox (the agent ended for good). */
const drain = (cell: Cell, cause: Cause.Cause<unknown>): Effect.Effect<void> =>
  Effect.gen(function*() {
    cell.closed = true
    const left = yield* Queue.takeAll(cell.mailbox)
    yield* Queue.shutdown(cell.mailbox)
    const error = Cause.isInterruptedOnly(cause) || cause === Cause.empty
      ? new AgentStoppedError({ agent: cell.id })
      : new AgentCrashedError({ agent: cell.id, action: "", cause })
    for (const envelope of left) {
      if (envelope.reply !== undefined) yield* Deferred.fail(envelope.reply, error)
    }
  })

/**
 * Spawns an agent in a scope of its own, forked from the current one: `stop` (or closing the
 * current scope) ends it. Fails with `ValidationError` for a bad definition or options, and with
 * `AgentStartError` when `attach` or `onStart` fails (the agent is then not running).
 */
export const spawn = <D extends AnyDefinition>(
  definition: D,
  options: SpawnOptions = {}
): Effect.Effect<AgentRef<D>, ValidationError | AgentStartError, Scope.Scope | ContextOf<D>> =>
  Effect.gen(function*() {
    const cell = yield* makeCell(definition, options)
    const ref = refOf<D>(cell)
    const parent = yield* Effect.scope
    const scope = yield* Scope.fork(parent, ExecutionStrategy.sequential)
    const context = yield* Effect.context<ContextOf<D>>()
    const started = yield* Deferred.make<void, AgentStartError>()
    const life = incarnation(cell, ref, options, Deferred.succeed(started, undefined).pipe(Effect.asVoid)).pipe(
      Effect.provideService(Scope.Scope, scope),
      Effect.provide(context),
      Effect.onExit((exit) =>
        Effect.gen(function*() {
          if (Exit.isFailure(exit)) {
            const failure = Cause.failureOption(exit.cause)
            if (Option.isSome(failure)) yield* Deferred.fail(started, failure.value as AgentStartError)
          }
          yield* Scope.close(scope, exit)
          yield* drain(cell, Exit.isFailure(exit) ? exit.cause : Cause.empty)
        })
      )
    )
    const fiber = yield* Effect.forkIn(life, parent)
    // From outside: interrupt and wait for the finalizers; from the agent itself: do not wait
    // for yourself.
    cell.stopper = Effect.fiberIdWith((self) =>
      Equal.equals(self, fiber.id()) ? Fiber.interruptFork(fiber) : Effect.asVoid(Fiber.interrupt(fiber))
    )
    yield* Deferred.await(started)
    return ref
  })

/**
 * A supervised agent: a stable reference and the `Supervisor` child spec that runs it. Each
 * (re)start is a fresh incarnation on the same mailbox; the child is ready (`awaitReady`) once
 * `onStart` succeeded. Add the child with `supervisor.startChild(child)` or in `children`.
 */
export const supervised = <D extends AnyDefinition>(
  definition: D,
  options: SpawnOptions & { readonly restart?: Supervisor.RestartType; readonly shutdownTimeout?: Duration.DurationInput } = {}
): Effect.Effect<{ readonly ref: AgentRef<D>; readonly child: Supervisor.ChildSpec<ContextOf<D>> }, ValidationError> =>
  Effect.gen(function*() {
    const cell = yield* makeCell(definition, options)
    const ref = refOf<D>(cell)
    cell.stopper = Effect.void
    const child: Supervisor.ChildSpec<ContextOf<D>> = {
      id: cell.id,
      restart: options.restart ?? "permanent",
      awaitReady: true,
      ...(options.shutdownTimeout === undefined ? {} : { shutdownTimeout: options.shutdownTimeout }),
      run: Effect.flatMap(
        Effect.serviceOption(Supervisor.ChildContext),
        (childContext) =>
          incarnation(
            cell,
            ref,
            options,
            Option.match(childContext, { onNone: () => Effect.void, onSome: (c) => c.ready })
          )
      )
    }
    return { ref, child }
  })

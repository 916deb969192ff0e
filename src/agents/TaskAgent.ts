/**
 * TaskAgent: an `Agent` that processes typed tasks from a bounded priority queue, through a named
 * `TaskPools` pool, with pause/resume, an error count that pauses the agent at a threshold, and
 * status with timing metrics (the original's JidoSystem TaskAgent, with its defects fixed).
 *
 * `TaskAgent.make(options)` validates the options and returns an `Agent.Definition`; spawn it with
 * `Agent.spawn` or supervise it with `Agent.supervised`. Its context needs `TaskPools` (and what the
 * processors need); `Telemetry` is used when present.
 *
 * Guarantees:
 * - Tasks are validated at the boundary: the envelope with Schema at the caller (`id` non-empty,
 *   `type` one of the processors' types, `priority` high | normal | low), the input with the
 *   processor's `input` Schema in the agent; a bad task fails with `ValidationError` naming the
 *   field (`<agent>.submit.id`, `<agent>.submit.type`, `<agent>.submit.input.<path>`) and touches
 *   nothing: it is neither queued, nor processed, nor counted as an error. Task ids are unique
 *   among the queued and running tasks (`AlreadyExistsError`).
 * - The queue is bounded (`maxQueue`, default 1,000): a full queue refuses with `QueueFullError`
 *   (size, limit) and loses nothing already queued. Order: high, then normal, then low; first in,
 *   first out within each (`process` queues like `submit`, and its caller waits for the outcome).
 * - One task at a time per agent, as the original: the running task, whatever its source, holds
 *   the agent's only slot; the pool's own concurrency cap and time limit apply on top (several
 *   agents share a pool). Tasks run in a fiber of the agent's incarnation scope, never in the
 *   agent's message loop, so `status`, `submit`, `pause` and the others are answered while a
 *   task runs, and stopping the agent interrupts its task.
 * - Draining without timers: when a task finishes, its fiber sends the result to the agent's own
 *   mailbox (`taskFinished`), and that message records it and starts the next task. `submit`,
 *   `process` and `resume` start a task themselves when the agent is idle. So whenever the agent
 *   is idle, not paused and the queue is non-empty, a task starts (the original's tick stopped
 *   re-arming once idle). When the mailbox is full, the result is re-sent with a short backoff
 *   (1 ms doubling, at most 100 ms apart) until there is room: it is never dropped.
 * - The pause gate holds work only: while paused no task starts and `process` is refused with
 *   `AgentPausedError`, but `submit` still queues (the queue waits for `resume`) and `pause`,
 *   `resume`, `status`, `results`, `clearErrors` and `cancel` always work (the original's veto
 *   blocked resume and status). A task already running when the agent pauses runs to its end.
 * - Each failed task counts once in the error count (the original could count twice); when the
 *   count reaches `errorThreshold` (default 10) the agent pauses itself (reason
 *   "error threshold", with an event). `clearErrors` resets the count; `resume` continues. A
 *   failure while the count is still at or above the threshold pauses the agent again.
 * - A processor's typed failure, the pool's `TimeoutError` / `PoolShutdownError` /
 *   `BulkheadFullError`, a missing pool (`NotFoundError`) and a processor defect (as an
 *   `InternalError` keeping the cause) all fail that task only, counted as an error: the agent
 *   goes on (a defect in an agent action would end the agent; processors do not run there).
 * - `status` and `results` change nothing (the original counted status queries as processed).
 *   Timing metrics (total, average, fastest, slowest) come from `Clock`, over the completed tasks,
 *   each measured from the moment the pool gave it a slot to its end.
 * - The last `keepResults` results (default 100) are kept; older ones are dropped.
 *
 * State: the agent's state (a Schema'd value, replaced by each action and committed only when the
 * action succeeds). The queue is an immutable `TaskQueue`; it and the recent results are checked
 * by a cheap guard rather than element by element, so that an action at a full queue costs O(1)
 * validation, not O(1,000).
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { AlreadyExistsError, InternalError, NotFoundError, Tagged, type ValidationError } from "../errors/FoundationError.js"
import * as Validation from "../errors/Validation.js"
import * as TaskPools from "../infra/TaskPools.js"
import * as Events from "../observability/Events.js"
import * as MetricKit from "../observability/MetricKit.js"
import * as Telemetry from "../observability/Telemetry.js"
import * as Agent from "./Agent.js"

// ---------------------------------------------------------------------------------------------
// Events and errors
// ---------------------------------------------------------------------------------------------

/**
 * Telemetry events, named after the original's (`[:jido_system, :task, ...]`,
 * `[:jido, :agent, :task_processing_paused]`). Durations in milliseconds.
 */
export const events = Events.names.taskAgent

/** The queue is at its limit: the task was not queued (nothing queued was lost). */
export class QueueFullError extends Tagged("QueueFullError", {
  captureStack: false,
  category: "resource",
  severity: "medium",
  message: "Task queue full"
})<{ readonly agent: string; readonly size: number; readonly limit: number }> {
  override describe() {
    return `The task queue of agent "${this.agent}" is full (${this.size} of ${this.limit})`
  }
}

/** The agent is paused: it takes no work to run now (`resume` it). */
export class AgentPausedError extends Tagged("AgentPausedError", {
  captureStack: false,
  category: "transient",
  severity: "low",
  message: "Task processing is paused"
})<{ readonly agent: string; readonly reason: string }> {
  override describe() {
    return `Task processing of agent "${this.agent}" is paused (${this.reason})`
  }
}

/** A task given to `process` was cancelled before it ran. */
export class TaskCancelledError extends Tagged("TaskCancelledError", {
  captureStack: false,
  category: "permanent",
  severity: "low",
  message: "Task cancelled"
})<{ readonly agent: string; readonly taskId: string }> {
  override describe() {
    return `Task "${this.taskId}" of agent "${this.agent}" was cancelled before it ran`
  }
}

// ---------------------------------------------------------------------------------------------
// Tasks and processors
// ---------------------------------------------------------------------------------------------

/** Task priorities, in drain order. */
export type Priority = "high" | "normal" | "low"

const PrioritySchema = Schema.Literal("high", "normal", "low")

/** A task as given to `submit` / `process` (validated there). */
export interface TaskParams<K extends string = string> {
  /** Non-empty, unique among the queued and running tasks. */
  readonly id: string
  /** One of the processors' types. */
  readonly type: K
  /** Decoded with the processor's `input` Schema. */
  readonly input?: unknown
  /** [normal] */
  readonly priority?: Priority
}

/** A task the agent accepted (its input decoded). */
export interface Task {
  readonly id: string
  readonly type: string
  readonly input: unknown
  readonly priority: Priority
}

/** What a processor is told about the task it runs. */
export interface TaskInfo {
  readonly id: string
  readonly type: string
  readonly priority: Priority
  /** The agent's id. */
  readonly agent: string
}

/** How to run the tasks of one type: the Schema of their input, and the work. */
export interface Processor<S extends Schema.Schema.AnyNoContext, A, E, R> {
  readonly input: S
  readonly run: (input: Schema.Schema.Type<S>, task: TaskInfo) => Effect.Effect<A, E, R>
}

/** Any processor. */
export type AnyProcessor = Processor<Schema.Schema.AnyNoContext, unknown, unknown, unknown>

/** Processors by task type. */
export type Processors = Readonly<Record<string, AnyProcessor>>

/** Makes a processor (a typed identity: the input Schema types `run`'s input). */
export const processor = <S extends Schema.Schema.AnyNoContext, A, E = never, R = never>(
  processor: Processor<S, A, E, R>
): Processor<S, A, E, R> => processor

type RunOf<X> = X extends { readonly run: (...args: never) => Effect.Effect<infer A, infer E, infer R> } ? [A, E, R] : never
/** What a processor succeeds with. */
export type ResultOfProcessor<X> = RunOf<X>[0]
/** What a processor fails with. */
export type ErrorOfProcessor<X> = RunOf<X>[1]
/** What a processor needs. */
export type ContextOfProcessor<X> = RunOf<X>[2]
/** The results of any processor of `P`. */
export type ResultOf<P extends Processors> = { [K in keyof P]: ResultOfProcessor<P[K]> }[keyof P]
/** The failures of any processor of `P`. */
export type ErrorOf<P extends Processors> = { [K in keyof P]: ErrorOfProcessor<P[K]> }[keyof P]
/** The context any processor of `P` needs. */
export type ContextOf<P extends Processors> = { [K in keyof P]: ContextOfProcessor<P[K]> }[keyof P]

/**
 * How running a task can fail besides the processor's own errors: the pool's limit or shutdown,
 * a full pool queue, a missing pool, a processor defect (`InternalError` with the cause).
 */
export type ExecutionError = TaskPools.TaskError | NotFoundError | InternalError

/** How a task given to `process` can end, besides its success. */
export type TaskFailure<E> = E | ExecutionError | TaskCancelledError | Agent.AgentStoppedError

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/** Where a `process` caller waits for its task's outcome. */
export type Reply = Deferred.Deferred<unknown, unknown>

/** A queued task. */
export interface Entry {
  readonly task: Task
  /** Epoch milliseconds. */
  readonly enqueuedAt: number
  /** Set for tasks given to `process`. */
  readonly reply: Reply | undefined
}

const priorities: ReadonlyArray<Priority> = ["high", "normal", "low"]

/** The queue: immutable (every change returns a new queue), one FIFO array per priority. */
export class TaskQueue {
  static readonly empty: TaskQueue = new TaskQueue({ high: [], normal: [], low: [] })

  private constructor(readonly lanes: Readonly<Record<Priority, ReadonlyArray<Entry>>>) {}

  get size(): number {
    return this.lanes.high.length + this.lanes.normal.length + this.lanes.low.length
  }

  /** Adds at the end of its priority's lane. */
  push(entry: Entry): TaskQueue {
    const lane = entry.task.priority
    return new TaskQueue({ ...this.lanes, [lane]: [...this.lanes[lane], entry] })
  }

  /** The next entry in drain order, and the queue without it. */
  shift(): readonly [Entry, TaskQueue] | undefined {
    for (const lane of priorities) {
      const [first, ...rest] = this.lanes[lane]
      if (first !== undefined) return [first, new TaskQueue({ ...this.lanes, [lane]: rest })]
    }
    return undefined
  }

  /** Removes the entry of a task. */
  remove(taskId: string): readonly [Entry, TaskQueue] | undefined {
    for (const lane of priorities) {
      const entries = this.lanes[lane]
      const index = entries.findIndex((e) => e.task.id === taskId)
      if (index >= 0) return [entries[index]!, new TaskQueue({ ...this.lanes, [lane]: entries.filter((_, i) => i !== index) })]
    }
    return undefined
  }

  has(taskId: string): boolean {
    return priorities.some((lane) => this.lanes[lane].some((e) => e.task.id === taskId))
  }

  /** The position (1-based, in drain order) of the last entry of `lane`. */
  positionOfLast(lane: Priority): number {
    let position = 0
    for (const l of priorities) {
      position += this.lanes[l].length
      if (l === lane) break
    }
    return position
  }

  /** Every entry, in drain order. */
  entries(): ReadonlyArray<Entry> {
    return priorities.flatMap((lane) => this.lanes[lane])
  }
}

/** Identifies one run of a task, so that a stale or foreign `taskFinished` is ignored. */
export class RunToken {
  readonly _tag = "RunToken"
}

/** The task being run. */
export interface Running {
  readonly task: Task
  /** When the agent started it (epoch milliseconds). */
  readonly startedAt: number
  readonly token: RunToken
  readonly reply: Reply | undefined
}

/** One task's time. */
export interface TaskTime {
  readonly taskId: string
  readonly millis: number
}

/** Processing times of the completed tasks (milliseconds, from `Clock`). */
export interface Timing {
  readonly count: number
  readonly totalMillis: number
  readonly fastest: TaskTime | null
  readonly slowest: TaskTime | null
}

interface ResultBase {
  readonly taskId: string
  readonly type: string
  readonly priority: Priority
  /** From getting a pool slot to the end (0 if it never got one). */
  readonly durationMillis: number
  /** Epoch milliseconds. */
  readonly finishedAt: number
}

/** The outcome of one task. */
export type TaskResult =
  | (ResultBase & { readonly outcome: "completed"; readonly value: unknown })
  | (ResultBase & { readonly outcome: "failed"; readonly error: unknown })

/** The agent's state. */
export interface State {
  /** The agent's id (set when it starts). */
  readonly agent: string
  readonly paused: boolean
  readonly pausedReason: string | null
  readonly queue: TaskQueue
  readonly current: Running | null
  /** Tasks completed successfully. */
  readonly processed: number
  /** Failed tasks since the last `clearErrors`. */
  readonly errors: number
  readonly timing: Timing
  /** The most recent results, oldest first (bounded by `keepResults`). */
  readonly recent: ReadonlyArray<TaskResult>
}

const Count = Schema.Number.pipe(Schema.int(), Schema.nonNegative())
const Millis = Schema.Number.pipe(Schema.nonNegative())
const ReplySchema = Schema.declare((u): u is Reply => Predicate.hasProperty(u, Deferred.DeferredTypeId), {
  identifier: "Deferred"
})
const TaskTimeSchema = Schema.Struct({ taskId: Schema.String, millis: Millis })

const StateSchema = Schema.Struct({
  agent: Schema.String,
  paused: Schema.Boolean,
  pausedReason: Schema.NullOr(Schema.String),
  queue: Schema.declare((u): u is TaskQueue => u instanceof TaskQueue, { identifier: "TaskQueue" }),
  current: Schema.NullOr(Schema.Struct({
    task: Schema.Struct({ id: Schema.NonEmptyString, type: Schema.String, input: Schema.Unknown, priority: PrioritySchema }),
    startedAt: Schema.Number,
    token: Schema.instanceOf(RunToken),
    reply: Schema.UndefinedOr(ReplySchema)
  })),
  processed: Count,
  errors: Count,
  timing: Schema.Struct({
    count: Count,
    totalMillis: Millis,
    fastest: Schema.NullOr(TaskTimeSchema),
    slowest: Schema.NullOr(TaskTimeSchema)
  }),
  recent: Schema.declare((u): u is ReadonlyArray<TaskResult> => Array.isArray(u), { identifier: "TaskResults" })
})

const initialState: State = {
  agent: "",
  paused: false,
  pausedReason: null,
  queue: TaskQueue.empty,
  current: null,
  processed: 0,
  errors: 0,
  timing: { count: 0, totalMillis: 0, fastest: null, slowest: null },
  recent: []
}

// ---------------------------------------------------------------------------------------------
// Actions' params and results
// ---------------------------------------------------------------------------------------------

const NoParams = Schema.Struct({})
/** Params of the actions without params (`{}`). */
export type NoParams = typeof NoParams.Type

const PauseParams = Schema.Struct({ reason: Schema.optional(Schema.String) })
const CancelParams = Schema.Struct({ taskId: Schema.String })

/** Sent by a task's fiber to its agent (internal: a result whose token is not the running task's is ignored). */
export interface TaskFinished {
  readonly token: RunToken
  readonly exit: Exit.Exit<unknown, unknown>
  readonly durationMillis: number
  readonly finishedAt: number
}

const TaskFinishedParams = Schema.Struct({
  token: Schema.instanceOf(RunToken),
  exit: Schema.declare((u): u is Exit.Exit<unknown, unknown> => Exit.isExit(u), { identifier: "Exit" }),
  durationMillis: Millis,
  finishedAt: Schema.Number
})

/** What `submit` answers. */
export interface SubmitReceipt {
  readonly taskId: string
  readonly priority: Priority
  /** 0 when the task started at once, else its place in line (1 = next). */
  readonly position: number
  /** Tasks waiting, after this one was queued (or started). */
  readonly queueSize: number
}

/** What `status` answers. */
export interface Status {
  readonly agent: string
  readonly status: "idle" | "processing" | "paused"
  readonly pausedReason: string | null
  readonly currentTask: string | null
  readonly queue: {
    readonly size: number
    readonly limit: number
    readonly high: number
    readonly normal: number
    readonly low: number
  }
  readonly processed: number
  readonly errors: number
  readonly errorThreshold: number
  readonly timing: {
    readonly count: number
    readonly totalMillis: number
    /** total / count; 0 before the first completed task. */
    readonly averageMillis: number
    readonly fastest: TaskTime | null
    readonly slowest: TaskTime | null
  }
}

type Work<P extends Processors> = Scope.Scope | TaskPools.TaskPools | ContextOf<P>
type Accepted = ValidationError | AlreadyExistsError | QueueFullError

/** The actions of a task agent (a type alias, so that it is a record of actions). */
export type Actions<P extends Processors> = {
  /** Validates and queues a task (starting it if the agent is idle); queues while paused too. */
  readonly submit: Agent.Action<State, TaskParams<keyof P & string>, Accepted, SubmitReceipt, Work<P>>
  /**
   * As `submit`, but answers an effect that waits for the task's outcome (see
   * `TaskAgent.process`). Refused while paused (the caller would wait for a `resume`).
   */
  readonly process: Agent.Action<
    State,
    TaskParams<keyof P & string>,
    Accepted | AgentPausedError,
    Effect.Effect<ResultOf<P>, TaskFailure<ErrorOf<P>>>,
    Work<P>
  >
  /** Stops starting tasks (the running one finishes); answers whether it was paused already. */
  readonly pause: Agent.Action<
    State,
    { readonly reason?: string | undefined },
    ValidationError,
    { readonly wasPaused: boolean; readonly reason: string },
    never
  >
  /** Starts taking tasks again (works while paused); answers whether it was paused. */
  readonly resume: Agent.Action<State, NoParams, ValidationError, { readonly wasPaused: boolean }, Work<P>>
  readonly status: Agent.Action<State, NoParams, never, Status, never>
  /** The recent results, oldest first. */
  readonly results: Agent.Action<State, NoParams, never, ReadonlyArray<TaskResult>, never>
  /** Resets the error count; answers the count it had. */
  readonly clearErrors: Agent.Action<State, NoParams, ValidationError, { readonly cleared: number }, never>
  /** Removes a queued task (`NotFoundError` if it is not queued); a `process` caller gets `TaskCancelledError`. */
  readonly cancel: Agent.Action<
    State,
    { readonly taskId: string },
    ValidationError | NotFoundError,
    { readonly taskId: string; readonly queueSize: number },
    never
  >
  /** Internal: a task's fiber reports its outcome. */
  readonly taskFinished: Agent.Action<State, TaskFinished, ValidationError, void, Work<P>>
}

/** A task agent's definition. */
export type Definition<P extends Processors> = Agent.Definition<State, Actions<P>, never, TaskPools.TaskPools>

/** Options of `make`. */
export interface Options<P extends Processors> {
  /** The definition's name (agent ids default to `<name>-<random>`) [task_agent]. */
  readonly name?: string
  /** The task types it accepts, each with its processor (at least one). */
  readonly processors: P
  /** Tasks allowed to wait (an integer ≥ 1) [1000]. */
  readonly maxQueue?: number
  /** Failed tasks that pause the agent (an integer ≥ 1) [10]. */
  readonly errorThreshold?: number
  /** The `TaskPools` pool the tasks run in; checked when the agent starts [general]. */
  readonly pool?: string
  /** Each task's time limit, replacing the pool's default; counted from when it gets a slot [the pool's]. */
  readonly taskTimeout?: Duration.DurationInput
  /** Recent results kept (an integer ≥ 0) [100]. */
  readonly keepResults?: number
}

// ---------------------------------------------------------------------------------------------
// make
// ---------------------------------------------------------------------------------------------

/** Re-sending a result to a full mailbox: 1 ms doubling, at most 100 ms apart, until it fits. */
const redelivery = Schedule.union(Schedule.exponential("1 millis"), Schedule.spaced("100 millis"))

const durationBoundaries = MetricBoundaries.exponential({ start: 1, factor: 2, count: 20 })

const tagOf = (error: unknown): string =>
  Predicate.hasProperty(error, "_tag") && typeof error._tag === "string" ? error._tag : typeof error

/**
 * Makes a task agent's definition. Bad options fail with `ValidationError` naming the field
 * (`taskAgent.maxQueue`, `taskAgent.processors.<type>.input`, ...).
 */
export const make = <const P extends Processors>(options: Options<P>): Effect.Effect<Definition<P>, ValidationError> =>
  Effect.gen(function*() {
    const name = yield* Validation.nonEmptyString("taskAgent.name", options.name ?? "task_agent")
    const processors = options.processors
    if (typeof processors !== "object" || processors === null) {
      return yield* Validation.invalid("taskAgent.processors", "expected an object of processors by task type")
    }
    const types = Object.keys(processors)
    if (types.length === 0) return yield* Validation.invalid("taskAgent.processors", "must name at least one task type")
    for (const type of types) {
      const p = processors[type]
      if (!Schema.isSchema(p?.input)) return yield* Validation.invalid(`taskAgent.processors.${type}.input`, "expected a Schema")
      if (typeof p.run !== "function") return yield* Validation.invalid(`taskAgent.processors.${type}.run`, "expected a function")
    }
    const maxQueue = yield* Validation.positiveInt("taskAgent.maxQueue", options.maxQueue ?? 1000)
    const errorThreshold = yield* Validation.positiveInt("taskAgent.errorThreshold", options.errorThreshold ?? 10)
    const pool = yield* Validation.nonEmptyString("taskAgent.pool", options.pool ?? "general")
    const taskTimeout = options.taskTimeout === undefined
      ? undefined
      : yield* Validation.duration("taskAgent.taskTimeout", options.taskTimeout)
    const keepResults = yield* Validation.nonNegativeInt("taskAgent.keepResults", options.keepResults ?? 100)

    const decoders = new Map(types.map((type) => {
      const input = processors[type]!.input
      return [type, {
        submit: Validation.decode(input, `${name}.submit.input`),
        process: Validation.decode(input, `${name}.process.input`)
      }] as const
    }))
    const TaskParamsSchema = Schema.Struct({
      id: Schema.NonEmptyString,
      type: Schema.Literal(...(types as [string, ...Array<string>])).annotations({
        message: () => `must be one of the task types of this agent: ${types.map((t) => `"${t}"`).join(", ")}`
      }),
      input: Schema.optional(Schema.Unknown),
      priority: Schema.optional(PrioritySchema)
    }) as unknown as Schema.Schema<TaskParams<keyof P & string>>

    const metrics = {
      completed: MetricKit.counter("foundation_task_agent_tasks_total", {
        description: "Tasks a task agent finished, by outcome",
        tags: { agent: name, outcome: "completed" }
      }),
      failed: MetricKit.counter("foundation_task_agent_tasks_total", {
        description: "Tasks a task agent finished, by outcome",
        tags: { agent: name, outcome: "failed" }
      }),
      duration: MetricKit.histogram("foundation_task_agent_task_duration_ms", durationBoundaries, {
        description: "Run time of a task agent's tasks, in milliseconds",
        tags: { agent: name }
      }) as Metric.Metric<MetricKeyType.MetricKeyType.Histogram, number, unknown>
    }

    /** Runs one task in the pool and reports its outcome to the agent (the task's own fiber). */
    const execute = (running: Running, self: Agent.AnyAgentRef, agentId: string): Effect.Effect<void, never, TaskPools.TaskPools> => {
      const task = running.task
      const run = processors[task.type]!.run
      const info: TaskInfo = { id: task.id, type: task.type, priority: task.priority, agent: agentId }
      return Effect.gen(function*() {
        const pools = yield* TaskPools.TaskPools
        const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
        const clock = yield* Effect.clock
        const meta = { agent_id: agentId, task_id: task.id, task_type: task.type }
        telemetry?.unsafeEmit(events.started, { count: 1 }, { ...meta, priority: task.priority })
        // Written in the step where the pool gives the task its slot, read after the task ended.
        let startedAt = -1
        const work = Effect.suspend(() => {
          startedAt = clock.unsafeCurrentTimeMillis()
          // Its context (`ContextOf<P>`) is required by the actions that start tasks.
          return run(task.input, info) as Effect.Effect<unknown, unknown>
        })
        const pooled: Effect.Effect<unknown, unknown> = taskTimeout === undefined
          ? pools.execute(pool, work)
          : pools.executeBatch(pool, [task], () => work, { timeoutPerItem: taskTimeout }).pipe(
            Effect.catchTag("ValidationError", (e) => Effect.die(e)), // validated in make
            Effect.flatMap((exits) => exits[0]!)
          )
        const raw = yield* Effect.exit(pooled)
        const finishedAt = clock.unsafeCurrentTimeMillis()
        const durationMillis = startedAt < 0 ? 0 : finishedAt - startedAt
        // A defect (or the processor interrupting itself) becomes a typed InternalError.
        const exit: Exit.Exit<unknown, unknown> = Exit.isSuccess(raw)
          ? raw
          : Option.match(Cause.failureOption(raw.cause), {
            onSome: (error) => Exit.fail(error),
            onNone: () => Exit.fail(InternalError.fromCause(raw.cause, `Task "${task.id}" died`))
          })
        MetricKit.observe(metrics.duration, durationMillis)
        if (Exit.isSuccess(exit)) {
          MetricKit.bump(metrics.completed)
          telemetry?.unsafeEmit(events.completed, { duration: durationMillis, count: 1 }, { ...meta, result: "success" })
        } else {
          MetricKit.bump(metrics.failed)
          const error = Option.getOrUndefined(Cause.failureOption(exit.cause))
          telemetry?.unsafeEmit(events.failed, { duration: durationMillis, count: 1 }, { ...meta, reason: tagOf(error), error })
        }
        const finished: TaskFinished = { token: running.token, exit, durationMillis, finishedAt }
        yield* self.cast("taskFinished", finished).pipe(
          Effect.retry({ schedule: redelivery, while: (e) => e._tag === "MailboxFullError" }),
          // Only when the agent stopped, and then this fiber is being interrupted and `onStop`
          // tells the `process` caller.
          Effect.ignore
        )
      })
    }

    /**
     * When the agent is idle and not paused, takes the next task: the state with it running, and
     * the effect that forks its fiber (to run after the state is set, as the action's last step).
     */
    const begin = (
      state: State,
      self: Agent.AnyAgentRef,
      agentId: string,
      now: number
    ): readonly [State, Effect.Effect<void, never, Scope.Scope | TaskPools.TaskPools>] => {
      if (state.paused || state.current !== null) return [state, Effect.void]
      const next = state.queue.shift()
      if (next === undefined) return [state, Effect.void]
      const [entry, queue] = next
      const running: Running = { task: entry.task, startedAt: now, token: new RunToken(), reply: entry.reply }
      return [{ ...state, queue, current: running }, Effect.asVoid(Effect.forkScoped(execute(running, self, agentId)))]
    }

    /**
     * Checks a task against the agent's state and queues it, starting the next task when the agent
     * is idle (the change is committed only if every check passes).
     */
    const enqueue = (
      params: TaskParams,
      action: "submit" | "process",
      ctx: Agent.ActionContext<State>,
      reply: Reply | undefined
    ): Effect.Effect<SubmitReceipt, Accepted, Scope.Scope | TaskPools.TaskPools> =>
      Effect.gen(function*() {
        const input = yield* decoders.get(params.type)![action](params.input)
        const state = ctx.state
        if (state.current?.task.id === params.id || state.queue.has(params.id)) {
          return yield* new AlreadyExistsError({ resource: "task", key: params.id })
        }
        if (state.queue.size >= maxQueue) {
          return yield* new QueueFullError({ agent: ctx.id, size: state.queue.size, limit: maxQueue })
        }
        const task: Task = { id: params.id, type: params.type, input, priority: params.priority ?? "normal" }
        const now = yield* Clock.currentTimeMillis
        const queue = state.queue.push({ task, enqueuedAt: now, reply })
        const [next, start] = begin({ ...state, queue }, ctx.self, ctx.id, now)
        yield* ctx.setState(next)
        yield* start
        const started = next.current?.task.id === task.id
        return {
          taskId: task.id,
          priority: task.priority,
          position: started ? 0 : queue.positionOfLast(task.priority),
          queueSize: next.queue.size
        }
      })

    const emitPause = (event: string, agentId: string, state: State, reason?: string) =>
      Effect.map(Effect.serviceOption(Telemetry.Telemetry), (telemetry) => {
        if (Option.isNone(telemetry)) return
        const metadata = reason === undefined ? { agent_id: agentId } : { agent_id: agentId, reason }
        telemetry.value.unsafeEmit(event, { error_count: state.errors, queue_size: state.queue.size }, metadata)
      })

    const actions: Actions<P> = {
      submit: Agent.action({
        params: TaskParamsSchema,
        run: (params, ctx: Agent.ActionContext<State>) => enqueue(params, "submit", ctx, undefined)
      }),

      process: Agent.action({
        params: TaskParamsSchema,
        run: (params, ctx: Agent.ActionContext<State>) =>
          Effect.gen(function*() {
            if (ctx.state.paused) {
              return yield* new AgentPausedError({ agent: ctx.id, reason: ctx.state.pausedReason ?? "paused" })
            }
            const reply = yield* Deferred.make<unknown, unknown>()
            yield* enqueue(params, "process", ctx, reply)
            return Deferred.await(reply) as Effect.Effect<ResultOf<P>, TaskFailure<ErrorOf<P>>>
          })
      }),

      pause: Agent.action({
        params: PauseParams,
        run: ({ reason }, ctx: Agent.ActionContext<State>) =>
          Effect.gen(function*() {
            const state = ctx.state
            if (state.paused) return { wasPaused: true, reason: state.pausedReason ?? "paused" }
            const next: State = { ...state, paused: true, pausedReason: reason ?? "manual pause" }
            yield* ctx.setState(next)
            yield* emitPause(events.paused, ctx.id, next, next.pausedReason ?? undefined)
            return { wasPaused: false, reason: next.pausedReason ?? "" }
          })
      }),

      resume: Agent.action({
        params: NoParams,
        run: (_: NoParams, ctx: Agent.ActionContext<State>) =>
          Effect.gen(function*() {
            if (!ctx.state.paused) return { wasPaused: false }
            const now = yield* Clock.currentTimeMillis
            const [next, start] = begin({ ...ctx.state, paused: false, pausedReason: null }, ctx.self, ctx.id, now)
            yield* ctx.setState(next)
            yield* emitPause(events.resumed, ctx.id, next)
            yield* start
            return { wasPaused: true }
          })
      }),

      status: Agent.action({
        params: NoParams,
        run: (_: NoParams, ctx: Agent.ActionContext<State>) =>
          Effect.sync((): Status => {
            const s = ctx.state
            const q = s.queue.lanes
            return {
              agent: ctx.id,
              status: s.paused ? "paused" : s.current !== null ? "processing" : "idle",
              pausedReason: s.pausedReason,
              currentTask: s.current?.task.id ?? null,
              queue: {
                size: s.queue.size,
                limit: maxQueue,
                high: q.high.length,
                normal: q.normal.length,
                low: q.low.length
              },
              processed: s.processed,
              errors: s.errors,
              errorThreshold,
              timing: {
                ...s.timing,
                averageMillis: s.timing.count === 0 ? 0 : s.timing.totalMillis / s.timing.count
              }
            }
          })
      }),

      results: Agent.action({
        params: NoParams,
        run: (_: NoParams, ctx: Agent.ActionContext<State>) => Effect.sync(() => ctx.state.recent)
      }),

      clearErrors: Agent.action({
        params: NoParams,
        run: (_: NoParams, ctx: Agent.ActionContext<State>) =>
          Effect.as(ctx.setState({ ...ctx.state, errors: 0 }), { cleared: ctx.state.errors })
      }),

      cancel: Agent.action({
        params: CancelParams,
        run: ({ taskId }, ctx: Agent.ActionContext<State>) =>
          Effect.gen(function*() {
            const removed = ctx.state.queue.remove(taskId)
            if (removed === undefined) return yield* new NotFoundError({ resource: "queued task", key: taskId })
            const [entry, queue] = removed
            yield* ctx.setState({ ...ctx.state, queue })
            if (entry.reply !== undefined) yield* Deferred.fail(entry.reply, new TaskCancelledError({ agent: ctx.id, taskId }))
            return { taskId, queueSize: queue.size }
          })
      }),

      taskFinished: Agent.action({
        params: TaskFinishedParams,
        run: (finished, ctx: Agent.ActionContext<State>) =>
          Effect.gen(function*() {
            const state = ctx.state
            const current = state.current
            if (current === null || current.token !== finished.token) return // stale, or not ours
            const { task } = current
            const base = {
              taskId: task.id,
              type: task.type,
              priority: task.priority,
              durationMillis: finished.durationMillis,
              finishedAt: finished.finishedAt
            }
            const exit = finished.exit
            const result: TaskResult = Exit.isSuccess(exit)
              ? { ...base, outcome: "completed", value: exit.value }
              : { ...base, outcome: "failed", error: Option.getOrUndefined(Cause.failureOption(exit.cause)) }
            const recent = keepResults === 0 ? [] : [...state.recent, result].slice(-keepResults)
            let settled: State
            let autoPaused = false
            if (Exit.isSuccess(exit)) {
              const time: TaskTime = { taskId: task.id, millis: finished.durationMillis }
              const t = state.timing
              settled = {
                ...state,
                current: null,
                recent,
                processed: state.processed + 1,
                timing: {
                  count: t.count + 1,
                  totalMillis: t.totalMillis + time.millis,
                  fastest: t.fastest === null || time.millis < t.fastest.millis ? time : t.fastest,
                  slowest: t.slowest === null || time.millis > t.slowest.millis ? time : t.slowest
                }
              }
            } else {
              const errors = state.errors + 1
              autoPaused = errors >= errorThreshold && !state.paused
              settled = {
                ...state,
                current: null,
                recent,
                errors,
                ...(autoPaused ? { paused: true, pausedReason: "error threshold" } : {})
              }
            }
            const now = yield* Clock.currentTimeMillis
            const [next, start] = begin(settled, ctx.self, ctx.id, now)
            yield* ctx.setState(next)
            if (autoPaused) yield* emitPause(events.paused, ctx.id, next, "error threshold")
            if (current.reply !== undefined) yield* Deferred.done(current.reply, exit)
            yield* start
          })
      })
    }

    const definition: Definition<P> = {
      name,
      state: StateSchema,
      initial: initialState,
      actions,
      hooks: {
        // Fails the start early when the pool does not exist.
        onStart: (ctx) =>
          Effect.zipRight(
            Effect.flatMap(TaskPools.TaskPools, (pools) => pools.pool(pool)),
            ctx.updateState((s) => ({ ...s, agent: ctx.id }))
          ),
        // `process` callers still waiting hear that the agent stopped (the running task's fiber,
        // interrupted before this runs, tells its own caller).
        onStop: (state) =>
          Effect.forEach(
            [...state.queue.entries().map((e) => e.reply), state.current?.reply],
            (reply) => reply === undefined ? Effect.void : Deferred.fail(reply, new Agent.AgentStoppedError({ agent: state.agent })),
            { discard: true }
          )
      }
    }
    return definition
  })

/**
 * Queues a task as `submit` does (in its priority's place in line) and waits for its outcome: the
 * processor's result, or its typed failure (or the pool's, or `InternalError` for a defect). The
 * call's time limit (`options.timeout`, default 5 s) covers the hand-over only; the task's own
 * limit is the pool's (or `taskTimeout`). Giving up waiting does not cancel the task.
 */
export const process = <P extends Processors, const K extends keyof P & string>(
  agent: Agent.AgentRef<Definition<P>>,
  task: TaskParams<K>,
  options?: Agent.CallOptions
): Effect.Effect<
  ResultOfProcessor<P[K]>,
  | TaskFailure<ErrorOfProcessor<P[K]>>
  | ValidationError
  | AlreadyExistsError
  | QueueFullError
  | AgentPausedError
  | Agent.CallError
> => {
  const call = agent.call as (
    action: "process",
    params: TaskParams<K>,
    options?: Agent.CallOptions
  ) => Effect.Effect<
    Effect.Effect<ResultOfProcessor<P[K]>, TaskFailure<ErrorOfProcessor<P[K]>>>,
    ValidationError | AlreadyExistsError | QueueFullError | AgentPausedError | Agent.CallError
  >
  return Effect.flatten(call("process", task, options))
}

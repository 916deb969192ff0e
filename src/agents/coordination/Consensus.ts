/**
 * Consensus: rounds of votes among agents, decided by an explicit rule (the original's
 * `AgentCoordination` consensus collected one vote from every participant and left the decision
 * to the caller; `CoordinationPatterns.build_consensus` had the rules but random votes).
 *
 * A round has a question, its participants (ids), a rule and a deadline. `propose` asks every
 * participant at once (a `call` of one of its actions, with the question as params) and returns
 * the result; `open` makes a round whose votes come through `vote` (both may be mixed: a
 * participant of a proposed round may also vote with `vote`).
 *
 * Rules (n participants; weights only for `weighted`):
 * - `majority`: accepted when more than half of all participants vote yes;
 * - `unanimous`: accepted when every participant votes yes;
 * - `quorum(k)`: accepted when at least k participants vote yes;
 * - `weighted(t)`: accepted when the yes weight is more than `t` (default 0.5) of the total weight.
 * A round is `rejected` when its no votes alone make acceptance impossible (a tie under
 * `majority` rejects; a single no rejects a `unanimous` round), and `no_quorum` when it ended
 * neither accepted nor rejected: too many abstained, failed or did not answer in time.
 *
 * Guarantees:
 * - One ballot per participant, ever: a second vote fails with `DoubleVoteError`, a vote from a
 *   non-participant with `UnknownParticipantError`, a vote after the round closed with
 *   `RoundClosedError`; none of them changes the round. Input is validated before a round opens
 *   (`ValidationError` naming the field).
 * - Early decision (on by default): the round closes as soon as its decision can no longer change,
 *   whatever the participants still to vote would do; they are recorded as abstentions
 *   (`not_needed`) and their calls are interrupted. The decision is always the one waiting for
 *   every vote would have given. With `earlyDecision: false` the round waits for every vote.
 * - The deadline runs on `Clock`: participants without a ballot then are recorded as abstentions
 *   (`timed_out`), and the round is decided with what it has. A participant whose call failed
 *   (its action failed, it stopped or crashed, it answered something that is not a vote) is
 *   recorded at once as an abstention (`failed`, with the error).
 * - The result lists every participant's ballot (participant order) with its weight and time.
 * - Each step of a round (a ballot, the decision, the close) is one synchronous step: no ballot is
 *   lost or counted twice however votes, calls and the deadline interleave. Every fiber (the calls,
 *   a timer per round) lives in the service's scope; closing it closes the open rounds (`closed`).
 * - Finished rounds stay readable (`await`, `status`) for `retain` (1 minute), at most
 *   `maxRetained` (1,000) of them, oldest dropped first: the original never deleted a round.
 *
 * Telemetry (when `Telemetry` is in the context at `make`; see `events`): `started`, `completed`.
 * Metric: `foundation_consensus_rounds_total` (tags `consensus`, `decision`).
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Events from "../../observability/Events.js"
import { AlreadyExistsError, NotFoundError, Tagged, ValidationError } from "../../errors/FoundationError.js"
import * as Validation from "../../errors/Validation.js"
import * as MetricKit from "../../observability/MetricKit.js"
import * as Telemetry from "../../observability/Telemetry.js"
import type * as Agent from "../Agent.js"
import * as AgentRegistry from "../AgentRegistry.js"

// ---------------------------------------------------------------------------------------------
// Rules, votes, results
// ---------------------------------------------------------------------------------------------

/** How a round is decided (see the module doc). */
export type Rule =
  | { readonly _tag: "Majority" }
  | { readonly _tag: "Unanimous" }
  | { readonly _tag: "Quorum"; readonly size: number }
  | { readonly _tag: "Weighted"; readonly threshold: number }

/** Accepted when more than half of all participants vote yes. */
export const majority: Rule = { _tag: "Majority" }

/** Accepted when every participant votes yes. */
export const unanimous: Rule = { _tag: "Unanimous" }

/** Accepted when at least `size` participants vote yes (an integer, 1 ≤ size ≤ participants). */
export const quorum = (size: number): Rule => ({ _tag: "Quorum", size })

/** Accepted when the yes weight is more than `threshold` (in [0, 1)) of the total weight. */
export const weighted = (threshold = 0.5): Rule => ({ _tag: "Weighted", threshold })

/** A vote. */
export type Vote = "yes" | "no" | "abstain"

/** The Schema of a vote. */
export const Vote: Schema.Schema<Vote> = Schema.Literal("yes", "no", "abstain")

/**
 * What a participant's action may answer: a vote, a boolean (true is yes) or `{ vote }`. Anything
 * else is recorded as a failed ballot.
 */
export const Reply = Schema.Union(Vote, Schema.Boolean, Schema.Struct({ vote: Vote }))

/** The decision of a round. */
export type Decision = "accepted" | "rejected" | "no_quorum"

/** Why a round ended. */
export type EndReason =
  /** Its decision could no longer change (early decision). */
  | "decided"
  /** Every participant had a ballot. */
  | "all_voted"
  /** The deadline passed. */
  | "timed_out"
  /** `close`, an interrupted `propose`, or the service's scope closing. */
  | "closed"

/** Where a ballot came from. */
export type BallotSource =
  /** The participant's own vote (an abstention included). */
  | "voted"
  /** No vote by the deadline. */
  | "timed_out"
  /** Its call failed or answered something that is not a vote (see `error`). */
  | "failed"
  /** The decision was certain before it voted (early decision). */
  | "not_needed"
  /** The round was closed before it voted. */
  | "closed"

/** One participant's ballot. Non-responders are abstentions, with their source. */
export interface Ballot {
  readonly participant: string
  readonly vote: Vote
  /** The weight it counted with (1 unless the rule is `weighted` and a weight was given). */
  readonly weight: number
  /** Epoch milliseconds (Clock). */
  readonly at: number
  readonly source: BallotSource
  /** Why a `failed` ballot failed. */
  readonly error?: unknown
}

/** Counts and weights of the ballots, by vote (every non-responder is an abstention). */
export interface Tally {
  readonly yes: number
  readonly no: number
  readonly abstain: number
  readonly yesWeight: number
  readonly noWeight: number
  readonly abstainWeight: number
}

/** A finished round. */
export interface Result<Q = unknown> {
  readonly id: string
  readonly question: Q
  readonly rule: Rule
  readonly decision: Decision
  readonly reason: EndReason
  /** Every participant's ballot, in participant order. */
  readonly votes: ReadonlyArray<Ballot>
  readonly tally: Tally
  /** Epoch milliseconds (Clock). */
  readonly openedAt: number
  readonly closedAt: number
}

/** A round, as `status` shows it. */
export interface RoundInfo<Q = unknown> {
  readonly id: string
  readonly question: Q
  readonly rule: Rule
  readonly participants: ReadonlyArray<string>
  readonly open: boolean
  /** The ballots so far, in the order they came. */
  readonly votes: ReadonlyArray<Ballot>
  /** Participants without a ballot yet. */
  readonly pending: ReadonlyArray<string>
  readonly openedAt: number
  readonly deadline: number
  readonly result: Option.Option<Result<Q>>
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** A vote from someone who is not a participant of the round. Nothing changed. */
export class UnknownParticipantError extends Tagged("UnknownParticipantError", {
  category: "validation",
  severity: "low",
  message: "Not a participant of the round"
})<{ readonly round: string; readonly participant: string }> {
  override describe() {
    return `"${this.participant}" is not a participant of consensus round "${this.round}"`
  }
}

/** A participant voted twice. The first ballot stands. */
export class DoubleVoteError extends Tagged("DoubleVoteError", {
  category: "permanent",
  severity: "low",
  message: "Already voted"
})<{ readonly round: string; readonly participant: string; readonly ballot: Ballot }> {
  override describe() {
    return `"${this.participant}" already has a ballot (${this.ballot.vote}, ${this.ballot.source}) in consensus round "${this.round}"`
  }
}

/** A vote after the round closed. */
export class RoundClosedError extends Tagged("RoundClosedError", {
  category: "permanent",
  severity: "low",
  message: "Consensus round closed"
})<{ readonly round: string; readonly decision: Decision; readonly reason: EndReason }> {
  override describe() {
    return `Consensus round "${this.round}" is closed (${this.decision}, ${this.reason})`
  }
}

/** What `vote` can fail with. */
export type VoteError = ValidationError | NotFoundError | RoundClosedError | UnknownParticipantError | DoubleVoteError

// ---------------------------------------------------------------------------------------------
// Options and the service
// ---------------------------------------------------------------------------------------------

/** Options of a round made with `open`. */
export interface OpenOptions<Q> {
  readonly question: Q
  /** Ids (or anything with an `id`, e.g. agent references); at least one, no duplicates. */
  readonly participants: ReadonlyArray<string | { readonly id: string }>
  /** [majority] */
  readonly rule?: Rule
  /** Time for the whole round [the service's `timeout`, 30 s]. */
  readonly timeout?: Duration.DurationInput
  /** Weights by participant id (finite, > 0; default 1), for the `weighted` rule only. */
  readonly weights?: Readonly<Record<string, number>>
  /** Close as soon as the decision cannot change [true]. */
  readonly earlyDecision?: boolean
  /** The round's id [`<service name>-<n>`]. */
  readonly id?: string
}

/** Options of `propose`: a round whose participants are agents, asked through an action. */
export interface ProposeOptions<Q> extends Omit<OpenOptions<Q>, "participants"> {
  /** Agent references, or ids the `AgentRegistry` resolves to agents it runs. */
  readonly participants: ReadonlyArray<Agent.AnyAgentRef | string>
  /** The action every participant is asked with (params: the question); it answers a `Reply`. */
  readonly action: string
}

/** Options of the service. */
export interface Options {
  /** Used in round ids, events and metrics ["consensus"]. */
  readonly name?: string
  /** Default time for a round [30 s, as the original's consensus coordination]. */
  readonly timeout?: Duration.DurationInput
  /** How long a finished round stays readable [1 minute]; zero is allowed. */
  readonly retain?: Duration.DurationInput
  /** Finished rounds kept at most (an integer ≥ 0) [1000]. */
  readonly maxRetained?: number
  /** Resolves participant ids in `propose` [the `AgentRegistry` in the context at `make`, if any]. */
  readonly registry?: AgentRegistry.Registry
}

/** Defaults. */
export const defaults = {
  name: "consensus",
  timeout: Duration.seconds(30),
  retain: Duration.minutes(1),
  maxRetained: 1000
} as const

/** Telemetry events of this module. */
export const events = Events.names.consensus

/** A round made by `open`, bound to its id. */
export interface Round<Q> {
  readonly id: string
  vote(participant: string, vote: Vote): Effect.Effect<void, VoteError>
  /** Waits for the result. */
  readonly await: Effect.Effect<Result<Q>>
  /** Closes the round now (participants without a ballot abstain, `closed`); its result. */
  readonly close: Effect.Effect<Result<Q>>
  readonly status: Effect.Effect<RoundInfo<Q>>
}

/** The consensus service. */
export interface Service {
  readonly name: string
  /**
   * Asks every participant concurrently (`call` of `action`, the question as params, within the
   * round's time) and returns the result. Fails with `ValidationError` (bad options, an agent
   * without the action, a question its params Schema refuses, an id the registry runs no agent
   * for, an id without a registry), `NotFoundError` (an id not registered) or `AlreadyExistsError`
   * (the round id is taken). Interrupting it closes the round.
   */
  propose<Q>(options: ProposeOptions<Q>): Effect.Effect<Result<Q>, ValidationError | NotFoundError | AlreadyExistsError>
  /** Opens a round whose votes come through `vote`. */
  open<Q>(options: OpenOptions<Q>): Effect.Effect<Round<Q>, ValidationError | AlreadyExistsError>
  /** Records a participant's vote (see the errors in the module doc; the round must exist: `NotFoundError`). */
  vote(round: string, participant: string, vote: Vote): Effect.Effect<void, VoteError>
  /** Waits for a round's result. */
  await(round: string): Effect.Effect<Result, NotFoundError>
  /** Closes a round now and returns its result (a closed round's result as it was). */
  close(round: string): Effect.Effect<Result, NotFoundError>
  status(round: string): Effect.Effect<RoundInfo, NotFoundError>
  /** The open rounds' ids. */
  readonly openRounds: Effect.Effect<ReadonlyArray<string>>
}

/** The `Consensus` service. */
export class Consensus extends Context.Tag("effect-foundation/Consensus")<Consensus, Service>() {}

// ---------------------------------------------------------------------------------------------
// Decision
// ---------------------------------------------------------------------------------------------

/** Running counts of a round. */
interface Counts {
  yes: number
  no: number
  abstain: number
  yesWeight: number
  noWeight: number
  abstainWeight: number
}

/**
 * A rule as two monotone tests: `accepts(yes)` (the yes votes meet the rule) and `blocks(no)`
 * (the no votes alone make acceptance impossible). `weighted` reads weights, the others counts.
 */
interface Test {
  readonly weighted: boolean
  readonly accepts: (yes: number) => boolean
  readonly blocks: (no: number) => boolean
}

const testOf = (rule: Rule, n: number, total: number): Test => {
  switch (rule._tag) {
    case "Majority":
      return { weighted: false, accepts: (y) => 2 * y > n, blocks: (x) => 2 * (n - x) <= n }
    case "Unanimous":
      return { weighted: false, accepts: (y) => y >= n, blocks: (x) => x >= 1 }
    case "Quorum":
      return { weighted: false, accepts: (y) => y >= rule.size, blocks: (x) => n - x < rule.size }
    case "Weighted": {
      const bar = rule.threshold * total
      return { weighted: true, accepts: (y) => y > bar, blocks: (x) => total - x <= bar }
    }
  }
}

/**
 * The decision if it can no longer change whatever the `pending` participants do, else
 * undefined. Each test is monotone, so the extremes decide: all pending yes (can it still be
 * accepted?), all pending no (rejected?), all pending abstaining (neither?).
 */
const settled = (test: Test, c: Counts, pending: number, pendingWeight: number): Decision | undefined => {
  const yes = test.weighted ? c.yesWeight : c.yes
  const no = test.weighted ? c.noWeight : c.no
  const more = test.weighted ? pendingWeight : pending
  const accepted = test.accepts(yes + more)
  const rejected = test.blocks(no + more)
  const neither = !test.accepts(yes) && !test.blocks(no)
  if (accepted && !rejected && !neither) return "accepted"
  if (rejected && !accepted && !neither) return "rejected"
  if (neither && !accepted && !rejected) return "no_quorum"
  return undefined
}

const ruleText = (rule: Rule): string =>
  rule._tag === "Quorum"
    ? `quorum(${rule.size})`
    : rule._tag === "Weighted"
    ? `weighted(${rule.threshold})`
    : rule._tag.toLowerCase()

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

interface Checked {
  readonly rule: Rule
  readonly ids: ReadonlyArray<string>
  readonly weights: ReadonlyMap<string, number>
  readonly timeout: Duration.Duration
  readonly early: boolean
  readonly id: string | undefined
}

const checkRule = (input: unknown, n: number): Either.Either<Rule, ValidationError> => {
  if (typeof input !== "object" || input === null || !("_tag" in input)) {
    return Validation.invalid("rule", "must be a rule: majority, unanimous, quorum(k) or weighted(t)")
  }
  const rule = input as Rule
  switch (rule._tag) {
    case "Majority":
    case "Unanimous":
      return Either.right(rule)
    case "Quorum":
      return Either.map(Validation.int("rule.size", rule.size, { min: 1, max: n }), (size) => quorum(size))
    case "Weighted": {
      const t = Validation.number("rule.threshold", rule.threshold, { min: 0 })
      if (Either.isLeft(t)) return Either.left(t.left)
      return t.right < 1 ? Either.right(weighted(t.right)) : Validation.invalid("rule.threshold", `must be < 1, got ${t.right}`)
    }
    default:
      return Validation.invalid("rule", "must be a rule: majority, unanimous, quorum(k) or weighted(t)")
  }
}

const checkOptions = (
  options: Omit<OpenOptions<unknown>, "participants">,
  ids: ReadonlyArray<string>,
  defaultTimeout: Duration.Duration
): Either.Either<Checked, ValidationError> =>
  Either.gen(function*() {
    const rule = yield* checkRule(options.rule ?? majority, ids.length)
    const weights = new Map<string, number>()
    if (options.weights !== undefined) {
      if (rule._tag !== "Weighted") return yield* Validation.invalid("weights", "apply to the weighted rule only")
      if (typeof options.weights !== "object" || options.weights === null) {
        return yield* Validation.invalid("weights", "must be an object of weights by participant id")
      }
      const known = new Set(ids)
      for (const [id, w] of Object.entries(options.weights)) {
        if (!known.has(id)) return yield* Validation.invalid(`weights.${id}`, "is not a participant")
        weights.set(id, yield* Validation.number(`weights.${id}`, w, { min: 0, minExclusive: true }))
      }
    }
    const timeout = options.timeout === undefined ? defaultTimeout : yield* Validation.duration("timeout", options.timeout)
    const early = options.earlyDecision ?? true
    if (typeof early !== "boolean") return yield* Validation.invalid("earlyDecision", "must be a boolean")
    const id = options.id === undefined ? undefined : yield* Validation.nonEmptyString("id", options.id)
    return { rule, ids, weights, timeout, early, id }
  })

/** The participants' ids: at least one, each a non-empty string, no duplicates. */
const checkIds = (participants: unknown): Either.Either<ReadonlyArray<string>, ValidationError> => {
  if (!Array.isArray(participants)) return Validation.invalid("participants", "must be a list")
  if (participants.length === 0) return Validation.invalid("participants", "must not be empty")
  const ids: Array<string> = []
  const seen = new Set<string>()
  for (let i = 0; i < participants.length; i++) {
    const p: unknown = participants[i]
    const id = typeof p === "string" ? p : typeof p === "object" && p !== null && "id" in p ? p.id : undefined
    if (typeof id !== "string" || id === "") {
      return Validation.invalid(`participants.${i}`, "must be an id (a non-empty string) or have one")
    }
    if (seen.has(id)) return Validation.invalid(`participants.${i}`, `duplicate participant "${id}"`)
    seen.add(id)
    ids.push(id)
  }
  return Either.right(ids)
}

const decodeReply = Schema.decodeUnknownEither(Reply)

/** A participant's answer as a vote, or the reason it is not one. */
const voteOf = (participant: string, answer: unknown): Either.Either<Vote, ValidationError> =>
  Either.match(decodeReply(answer), {
    onLeft: () =>
      Validation.invalid(`votes.${participant}`, "must be \"yes\", \"no\", \"abstain\", a boolean or { vote }"),
    onRight: (r) => Either.right(typeof r === "boolean" ? (r ? "yes" : "no") : typeof r === "string" ? r : r.vote)
  })

// ---------------------------------------------------------------------------------------------
// The implementation
// ---------------------------------------------------------------------------------------------

interface RoundState {
  readonly id: string
  readonly question: unknown
  readonly rule: Rule
  readonly participants: ReadonlyArray<string>
  readonly members: ReadonlySet<string>
  readonly weights: ReadonlyMap<string, number>
  readonly test: Test
  readonly early: boolean
  readonly openedAt: number
  readonly deadline: number
  readonly ballots: Map<string, Ballot>
  readonly counts: Counts
  pendingWeight: number
  result: Result | undefined
  readonly done: Deferred.Deferred<Result>
  /** The calls of a proposed round still running, by participant. */
  readonly askers: Map<string, Fiber.RuntimeFiber<void>>
}

/** Makes the service in the current scope. */
export const make = (options: Options = {}): Effect.Effect<Service, ValidationError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = yield* Validation.nonEmptyString("consensus.name", options.name ?? defaults.name)
    const defaultTimeout = options.timeout === undefined
      ? defaults.timeout
      : yield* Validation.duration("consensus.timeout", options.timeout)
    const retain = options.retain === undefined
      ? defaults.retain
      : yield* Validation.duration("consensus.retain", options.retain, { allowZero: true })
    const maxRetained = yield* Validation.nonNegativeInt("consensus.maxRetained", options.maxRetained ?? defaults.maxRetained)
    const registry = options.registry ?? Option.getOrUndefined(yield* Effect.serviceOption(AgentRegistry.AgentRegistry))
    const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
    const clock = yield* Effect.clock
    const scope = yield* Effect.scope

    const rounds = new Map<string, RoundState>()
    /** Finished rounds still kept, oldest first. */
    const finished = new Set<RoundState>()
    let sequence = 0

    const counters = MetricKit.counterFamily("foundation_consensus_rounds_total", {
      description: "Finished consensus rounds, by decision"
    })
    const roundsCounter = (decision: Decision) => counters({ consensus: name, decision })

    const notFound = (id: string) => new NotFoundError({ resource: "consensus round", key: id })

    const tallyOf = (c: Counts): Tally => ({ ...c })

    /** Closes a round (one step): the missing ballots, the decision, the waiters, the calls. */
    const finish = (round: RoundState, reason: EndReason): Result => {
      if (round.result !== undefined) return round.result
      const now = clock.unsafeCurrentTimeMillis()
      const source: BallotSource = reason === "timed_out" ? "timed_out" : reason === "decided" ? "not_needed" : "closed"
      for (const p of round.participants) {
        if (!round.ballots.has(p)) add(round, { participant: p, vote: "abstain", weight: weightOf(round, p), at: now, source })
      }
      const c = round.counts
      const test = round.test
      const decision: Decision = test.accepts(test.weighted ? c.yesWeight : c.yes)
        ? "accepted"
        : test.blocks(test.weighted ? c.noWeight : c.no)
        ? "rejected"
        : "no_quorum"
      const result: Result = {
        id: round.id,
        question: round.question,
        rule: round.rule,
        decision,
        reason,
        votes: round.participants.map((p) => round.ballots.get(p)!),
        tally: tallyOf(c),
        openedAt: round.openedAt,
        closedAt: now
      }
      round.result = result
      Deferred.unsafeDone(round.done, Exit.succeed(result))
      for (const fiber of round.askers.values()) fiber.unsafeInterruptAsFork(FiberId.none)
      round.askers.clear()
      finished.add(round)
      if (finished.size > maxRetained) {
        const oldest = finished.values().next().value!
        finished.delete(oldest)
        if (rounds.get(oldest.id) === oldest) rounds.delete(oldest.id)
      }
      MetricKit.bump(roundsCounter(decision))
      telemetry?.unsafeEmit(events.completed, {
        duration: now - round.openedAt,
        yes: c.yes,
        no: c.no,
        abstain: c.abstain
      }, { consensus: name, round_id: round.id, rule: ruleText(round.rule), decision, reason })
      return result
    }

    const weightOf = (round: RoundState, participant: string): number => round.weights.get(participant) ?? 1

    const add = (round: RoundState, ballot: Ballot): void => {
      round.ballots.set(ballot.participant, ballot)
      const c = round.counts
      c[ballot.vote]++
      c[`${ballot.vote}Weight`] += ballot.weight
      round.pendingWeight -= ballot.weight
    }

    /** Records a ballot (one step) and closes the round when it is decided or complete. */
    const record = (round: RoundState, participant: string, vote: Vote, source: BallotSource, error?: unknown): void => {
      round.askers.delete(participant)
      const ballot: Ballot = {
        participant,
        vote,
        weight: weightOf(round, participant),
        at: clock.unsafeCurrentTimeMillis(),
        source,
        ...(error === undefined ? {} : { error })
      }
      add(round, ballot)
      const pending = round.participants.length - round.ballots.size
      if (pending === 0) finish(round, "all_voted")
      else if (round.early && settled(round.test, round.counts, pending, round.pendingWeight) !== undefined) {
        finish(round, "decided")
      }
    }

    /** The round's timer: the deadline closes it; then it stays readable for `retain`. */
    const keeper = (round: RoundState): Effect.Effect<void> =>
      Effect.gen(function*() {
        const wait = round.deadline - clock.unsafeCurrentTimeMillis()
        yield* Effect.raceFirst(Deferred.await(round.done), Effect.sleep(Duration.millis(Math.max(0, wait))))
        yield* Effect.sync(() => finish(round, "timed_out"))
        yield* Effect.sleep(retain)
        yield* Effect.sync(() => {
          finished.delete(round)
          if (rounds.get(round.id) === round) rounds.delete(round.id)
        })
      })

    /** Opens a round (one step, then its timer is forked). */
    const openRound = (question: unknown, checked: Checked): Effect.Effect<RoundState, AlreadyExistsError> =>
      Effect.suspend(() => {
        let id = checked.id
        if (id === undefined) {
          do id = `${name}-${++sequence}`
          while (rounds.has(id))
        } else if (rounds.has(id)) {
          return Effect.fail(new AlreadyExistsError({ resource: "consensus round", key: id }))
        }
        const now = clock.unsafeCurrentTimeMillis()
        let total = 0
        for (const p of checked.ids) total += checked.weights.get(p) ?? 1
        const round: RoundState = {
          id,
          question,
          rule: checked.rule,
          participants: checked.ids,
          members: new Set(checked.ids),
          weights: checked.weights,
          test: testOf(checked.rule, checked.ids.length, total),
          early: checked.early,
          openedAt: now,
          deadline: now + Duration.toMillis(checked.timeout),
          ballots: new Map(),
          counts: { yes: 0, no: 0, abstain: 0, yesWeight: 0, noWeight: 0, abstainWeight: 0 },
          pendingWeight: total,
          result: undefined,
          done: Deferred.unsafeMake<Result>(FiberId.none),
          askers: new Map()
        }
        rounds.set(id, round)
        telemetry?.unsafeEmit(events.started, {
          participants: checked.ids.length,
          timeout_ms: Duration.toMillis(checked.timeout)
        }, { consensus: name, round_id: id, rule: ruleText(checked.rule) })
        return Effect.as(Effect.forkIn(Effect.interruptible(keeper(round)), scope), round)
      })

    const getRound = (id: string): Effect.Effect<RoundState, NotFoundError> =>
      Effect.suspend(() => {
        const round = rounds.get(id)
        return round === undefined ? Effect.fail(notFound(id)) : Effect.succeed(round)
      })

    const vote: Service["vote"] = (roundId, participant, value) =>
      Effect.suspend((): Effect.Effect<void, VoteError> => {
        const checked = Validation.oneOf("vote", value, ["yes", "no", "abstain"])
        if (Either.isLeft(checked)) return Effect.fail(checked.left)
        const round = rounds.get(roundId)
        if (round === undefined) return Effect.fail(notFound(roundId))
        if (round.result !== undefined) {
          return Effect.fail(
            new RoundClosedError({ round: roundId, decision: round.result.decision, reason: round.result.reason })
          )
        }
        if (!round.members.has(participant)) {
          return Effect.fail(new UnknownParticipantError({ round: roundId, participant }))
        }
        const previous = round.ballots.get(participant)
        if (previous !== undefined) {
          return Effect.fail(new DoubleVoteError({ round: roundId, participant, ballot: previous }))
        }
        // A participant of a proposed round voting directly: its call is no longer needed.
        round.askers.get(participant)?.unsafeInterruptAsFork(FiberId.none)
        record(round, participant, checked.right, "voted")
        return Effect.void
      })

    const infoOf = (round: RoundState): RoundInfo => ({
      id: round.id,
      question: round.question,
      rule: round.rule,
      participants: round.participants,
      open: round.result === undefined,
      votes: Array.from(round.ballots.values()),
      pending: round.participants.filter((p) => !round.ballots.has(p)),
      openedAt: round.openedAt,
      deadline: round.deadline,
      result: Option.fromNullable(round.result)
    })

    const roundOf = <Q>(round: RoundState): Round<Q> => ({
      id: round.id,
      vote: (participant, v) => vote(round.id, participant, v),
      await: Deferred.await(round.done) as Effect.Effect<Result<Q>>,
      close: Effect.sync(() => finish(round, "closed") as Result<Q>),
      status: Effect.sync(() => infoOf(round) as RoundInfo<Q>)
    })

    const open: Service["open"] = <Q>(options: OpenOptions<Q>) =>
      Effect.suspend((): Effect.Effect<Round<Q>, ValidationError | AlreadyExistsError> => {
        if (typeof options !== "object" || options === null) return Validation.invalid("options", "expected an object")
        const ids = checkIds(options.participants)
        if (Either.isLeft(ids)) return Effect.fail(ids.left)
        const checked = checkOptions(options, ids.right, defaultTimeout)
        if (Either.isLeft(checked)) return Effect.fail(checked.left)
        return Effect.map(openRound(options.question, checked.right), (round) => roundOf<Q>(round))
      })

    /** Resolves the participants of `propose` to agent references. */
    const resolve = (
      participants: ReadonlyArray<Agent.AnyAgentRef | string>
    ): Effect.Effect<ReadonlyArray<Agent.AnyAgentRef>, ValidationError | NotFoundError> =>
      Effect.forEach(participants, (p, i) => {
        if (typeof p !== "string") return Effect.succeed(p)
        if (registry === undefined) {
          return Validation.invalid(`participants.${i}`, "an id needs an AgentRegistry (the registry option, or in the context at make)")
        }
        return Effect.flatMap(registry.get(p), (entry) =>
          Option.match(entry.ref, {
            onNone: () => Validation.invalid(`participants.${i}`, `agent "${p}" is registered without a running agent to ask`),
            onSome: Effect.succeed
          }))
      })

    /** Checks that every agent has the action and accepts the question as its params. */
    const checkAction = (
      refs: ReadonlyArray<Agent.AnyAgentRef>,
      action: unknown,
      question: unknown
    ): Either.Either<string, ValidationError> => {
      const name = Validation.nonEmptyString("action", action)
      if (Either.isLeft(name)) return name
      const seen = new Set<unknown>()
      for (const ref of refs) {
        const actions: Record<string, Agent.AnyAction<unknown>> | undefined = ref.definition?.actions
        const definition = actions !== undefined && Object.hasOwn(actions, name.right) ? actions[name.right] : undefined
        if (definition === undefined) return Validation.invalid("action", `agent "${ref.id}" has no action "${name.right}"`)
        if (seen.has(definition.params)) continue
        seen.add(definition.params)
        const valid = Schema.validateEither(definition.params as Schema.Schema<unknown, unknown>, { errors: "all" })(question)
        if (Either.isLeft(valid)) return Either.left(Validation.fromParseError(valid.left, "question"))
      }
      return name
    }

    /** Asks one participant; its answer (or failure) becomes its ballot. */
    const ask = (round: RoundState, ref: Agent.AnyAgentRef, action: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        // The round's own timer decides timeouts; the call's limit only backs it up.
        const left = Math.max(0, round.deadline - clock.unsafeCurrentTimeMillis())
        return ref.call(action, round.question, { timeout: Duration.millis(left + 1000) })
      }).pipe(
        Effect.matchCause({
          onSuccess: (answer) => {
            if (round.result !== undefined || round.ballots.has(ref.id)) return
            const v = voteOf(ref.id, answer)
            if (Either.isRight(v)) record(round, ref.id, v.right, "voted")
            else record(round, ref.id, "abstain", "failed", v.left)
          },
          onFailure: (cause) => {
            if (round.result !== undefined || round.ballots.has(ref.id)) return
            if (Cause.isInterruptedOnly(cause)) return
            record(round, ref.id, "abstain", "failed", Option.getOrElse(Cause.failureOption(cause), () => cause))
          }
        })
      )

    const propose: Service["propose"] = <Q>(options: ProposeOptions<Q>) =>
      Effect.gen(function*() {
        if (typeof options !== "object" || options === null) return yield* Validation.invalid("options", "expected an object")
        const ids = yield* checkIds(options.participants)
        const checked = yield* checkOptions(options, ids, defaultTimeout)
        const refs = yield* resolve(options.participants)
        const action = yield* checkAction(refs, options.action, options.question)
        return yield* Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            const round = yield* openRound(options.question, checked)
            for (const ref of refs) {
              if (round.result !== undefined) break
              if (round.ballots.has(ref.id)) continue
              const fiber = yield* Effect.forkIn(Effect.interruptible(ask(round, ref, action)), scope)
              if (round.result === undefined && !round.ballots.has(ref.id)) round.askers.set(ref.id, fiber)
            }
            return yield* restore(Deferred.await(round.done)).pipe(
              Effect.onInterrupt(() => Effect.sync(() => finish(round, "closed")))
            )
          })
        ) as Effect.Effect<Result<Q>>
      })

    // Closing the service closes the open rounds, so that nobody waits for ever.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const round of Array.from(rounds.values())) finish(round, "closed")
      })
    )

    return {
      name,
      propose,
      open,
      vote,
      await: (id) => Effect.flatMap(getRound(id), (round) => Deferred.await(round.done)),
      close: (id) => Effect.map(getRound(id), (round) => finish(round, "closed")),
      status: (id) => Effect.map(getRound(id), infoOf),
      openRounds: Effect.sync(() => Array.from(rounds.values()).filter((r) => r.result === undefined).map((r) => r.id))
    }
  })

/** The service as a layer (it uses the `AgentRegistry` in the context, if any). */
export const layer = (options: Options = {}): Layer.Layer<Consensus, ValidationError> =>
  Layer.scoped(Consensus, make(options))

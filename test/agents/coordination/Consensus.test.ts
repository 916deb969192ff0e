import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, FastCheck as fc, Fiber, Option, Schema, TestClock } from "effect"
import * as Example from "../../../examples/consensus.js"
import * as Agent from "../../../src/agents/Agent.js"
import * as AgentRegistry from "../../../src/agents/AgentRegistry.js"
import * as Consensus from "../../../src/agents/coordination/Consensus.js"
import { AlreadyExistsError, NotFoundError, ValidationError } from "../../../src/errors/FoundationError.js"
import * as EventBus from "../../../src/observability/EventBus.js"
import * as Telemetry from "../../../src/observability/Telemetry.js"
import { drainTelemetry } from "../../support/telemetry.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** Lets every ready fiber run, without moving the clock. */
const settle = Effect.repeatN(Effect.yieldNow(), 50)

class Refused extends Schema.TaggedError<Refused>()("Refused", {}) {}

/** What a voter does when asked: answer (after `delay` ms), never answer, answer garbage, fail. */
type Behaviour = Consensus.Vote | boolean | "never" | "garbage" | "fail"

const Proposal = Schema.Struct({ proposal: Schema.String })

/** A voter agent that answers `ballot` as told. */
const voter = (behaviour: Behaviour, delay = 0) =>
  Agent.define({
    name: "voter",
    state: Schema.Struct({ asked: Schema.Number }),
    initial: { asked: 0 },
    actions: {
      ballot: Agent.action({
        params: Proposal,
        run: (_: typeof Proposal.Type, ctx: Agent.ActionContext<{ readonly asked: number }>) =>
          Effect.gen(function*() {
            yield* ctx.updateState((s) => ({ asked: s.asked + 1 }))
            if (delay > 0) yield* Effect.sleep(delay)
            switch (behaviour) {
              case "never":
                return yield* Effect.never
              case "garbage":
                return 42 as unknown
              case "fail":
                return yield* new Refused()
              default:
                return typeof behaviour === "boolean" ? behaviour : { vote: behaviour }
            }
          })
      }),
      crash: Agent.action({ params: Schema.Struct({}), run: () => Effect.die("boom") })
    }
  })

const metadata: AgentRegistry.Metadata = { capabilities: ["vote"], health: "healthy", node: "n1", resources: {} }

/** A registry, a consensus service that resolves ids through it, and voters `a`, `b`, ... */
const setup = (behaviours: ReadonlyArray<Behaviour | readonly [Behaviour, number]>, options: Consensus.Options = {}) =>
  Effect.gen(function*() {
    const registry = yield* AgentRegistry.make()
    const consensus = yield* Consensus.make(options).pipe(Effect.provideService(AgentRegistry.AgentRegistry, registry))
    const agents = yield* Effect.forEach(behaviours, (b, i) => {
      const [behaviour, delay] = Array.isArray(b) ? b : [b, 0]
      return registry.spawn(voter(behaviour as Behaviour, delay as number), { id: String.fromCharCode(97 + i), metadata })
    })
    return { registry, consensus, agents }
  })

/** Short form of the ballots: `a:yes@1000/voted`. */
const ballots = (result: Consensus.Result) => result.votes.map((b) => `${b.participant}:${b.vote}@${b.at}/${b.source}`)

/**
 * Opens a round over `votes`' participants, casts the votes in order (stopping when the round
 * closes), then closes it if it is still open.
 */
const decide = (
  rule: Consensus.Rule,
  votes: ReadonlyArray<readonly [string, Consensus.Vote | undefined]>,
  options: { readonly earlyDecision?: boolean; readonly weights?: Record<string, number> } = {}
) =>
  Effect.scoped(Effect.gen(function*() {
    const consensus = yield* Consensus.make()
    const round = yield* consensus.open({ question: "q", participants: votes.map(([p]) => p), rule, ...options })
    for (const [participant, vote] of votes) {
      if (vote === undefined) continue
      if (!(yield* round.status).open) break
      yield* round.vote(participant, vote)
    }
    return (yield* round.status).open ? yield* round.close : yield* round.await
  }))

describe("Consensus", () => {
  describe("rules", () => {
    it.effect("majority: more than half of all participants; a tie is rejected; abstentions give no quorum", () =>
      Effect.gen(function*() {
        const full = { earlyDecision: false }
        const r1 = yield* decide(Consensus.majority, [["a", "yes"], ["b", "yes"], ["c", "yes"], ["d", "no"]], full)
        expect([r1.decision, r1.reason]).toEqual(["accepted", "all_voted"])
        expect(r1.tally).toEqual({ yes: 3, no: 1, abstain: 0, yesWeight: 3, noWeight: 1, abstainWeight: 0 })
        expect((yield* decide(Consensus.majority, [["a", "yes"], ["b", "yes"], ["c", "no"], ["d", "no"]], full)).decision)
          .toBe("rejected")
        expect((yield* decide(Consensus.majority, [["a", "yes"], ["b", "yes"], ["c", "abstain"], ["d", "abstain"]], full)).decision)
          .toBe("no_quorum")
        // Early: the third yes of four settles it; d is not needed.
        const early = yield* decide(Consensus.majority, [["a", "yes"], ["b", "yes"], ["c", "yes"], ["d", undefined]])
        expect([early.decision, early.reason]).toEqual(["accepted", "decided"])
        expect(ballots(early)).toEqual(["a:yes@0/voted", "b:yes@0/voted", "c:yes@0/voted", "d:abstain@0/not_needed"])
      }))

    it.effect("unanimous: every participant; one no rejects at once; an abstention gives no quorum", () =>
      Effect.gen(function*() {
        const all = yield* decide(Consensus.unanimous, [["a", "yes"], ["b", "yes"], ["c", "yes"]])
        expect([all.decision, all.reason]).toEqual(["accepted", "all_voted"])
        const one = yield* decide(Consensus.unanimous, [["a", "yes"], ["b", "no"], ["c", "yes"]])
        expect([one.decision, one.reason]).toEqual(["rejected", "decided"])
        expect(ballots(one)).toEqual(["a:yes@0/voted", "b:no@0/voted", "c:abstain@0/not_needed"])
        const abstained = yield* decide(Consensus.unanimous, [["a", "yes"], ["b", "abstain"], ["c", "yes"]])
        expect([abstained.decision, abstained.reason]).toEqual(["no_quorum", "all_voted"])
      }))

    it.effect("quorum(k): at least k yes; rejected once the no votes leave fewer than k possible", () =>
      Effect.gen(function*() {
        const yes = yield* decide(Consensus.quorum(2), [["a", "yes"], ["b", "no"], ["c", "yes"], ["d", undefined]])
        expect([yes.decision, yes.reason]).toEqual(["accepted", "decided"])
        const no = yield* decide(Consensus.quorum(2), [["a", "no"], ["b", "no"], ["c", "no"], ["d", undefined]])
        expect([no.decision, no.reason]).toEqual(["rejected", "decided"])
        const few = yield* decide(Consensus.quorum(2), [["a", "yes"], ["b", "abstain"], ["c", "no"], ["d", "abstain"]])
        expect([few.decision, few.reason]).toEqual(["no_quorum", "all_voted"])
        // With two no of four, two yes are still possible: not decided until they come.
        const open = yield* decide(Consensus.quorum(2), [["a", "no"], ["b", "no"], ["c", "yes"], ["d", "yes"]])
        expect([open.decision, open.reason]).toEqual(["accepted", "all_voted"])
      }))

    it.effect("weighted: the yes weight against a threshold of the total weight", () =>
      Effect.gen(function*() {
        const weights = { a: 5, b: 1, c: 1, d: 1 } // total 8
        // a alone holds more than half of the weight: its yes settles it (a plain majority would not).
        const heavy = yield* decide(Consensus.weighted(), [["a", "yes"], ["b", "no"], ["c", "no"], ["d", "no"]], { weights })
        expect([heavy.decision, heavy.reason]).toEqual(["accepted", "decided"])
        expect(heavy.votes.map((b) => b.weight)).toEqual([5, 1, 1, 1])
        expect(heavy.tally).toMatchObject({ yes: 1, yesWeight: 5, abstain: 3, abstainWeight: 3 })
        const plain = yield* decide(Consensus.majority, [["a", "yes"], ["b", "no"], ["c", "no"], ["d", "no"]])
        expect(plain.decision).toBe("rejected")
        // Against: a's no alone leaves 3 of 8, not more than half.
        const against = yield* decide(Consensus.weighted(), [["a", "no"], ["b", "yes"], ["c", undefined], ["d", undefined]], {
          weights
        })
        expect([against.decision, against.reason]).toEqual(["rejected", "decided"])
        // A threshold of 0.7 (more than 5.6 of 8): a's 5 is not enough, a + b (6) is.
        const high = yield* decide(Consensus.weighted(0.7), [["a", "yes"], ["b", "yes"], ["c", "no"], ["d", "no"]], {
          weights
        })
        expect([high.decision, high.reason, high.tally.yesWeight]).toEqual(["accepted", "decided", 6])
        // Without weights every participant weighs 1.
        const unit = yield* decide(Consensus.weighted(0.5), [["a", "yes"], ["b", "yes"], ["c", "no"], ["d", "no"]])
        expect(unit.decision).toBe("rejected")
      }))

    it("early decision never changes the decision (any rule, votes, order)", () => {
      const vote = fc.constantFrom<Consensus.Vote | undefined>("yes", "no", "abstain", undefined)
      const rule = fc.oneof(
        fc.constant(Consensus.majority),
        fc.constant(Consensus.unanimous),
        fc.integer({ min: 1, max: 6 }).map((k) => Consensus.quorum(k)),
        fc.double({ min: 0, max: 0.95, noNaN: true }).map((t) => Consensus.weighted(t))
      )
      fc.assert(
        fc.property(
          rule,
          fc.array(fc.tuple(vote, fc.integer({ min: 1, max: 5 })), { minLength: 1, maxLength: 6 }),
          (rule, cast) => {
            const n = cast.length
            const size = rule._tag === "Quorum" ? Math.min(rule.size, n) : 0
            const r = rule._tag === "Quorum" ? Consensus.quorum(size) : rule
            const votes = cast.map(([v], i) => [`p${i}`, v] as const)
            const weights = rule._tag === "Weighted" ? Object.fromEntries(cast.map(([, w], i) => [`p${i}`, w])) : undefined
            const options = weights === undefined ? {} : { weights }
            const full = Effect.runSync(decide(r, votes, { ...options, earlyDecision: false }))
            const early = Effect.runSync(decide(r, votes, options))
            return full.decision === early.decision
          }
        ),
        { numRuns: 250, seed: 42 }
      )
    })
  })

  describe("propose", () => {
    it.scoped("asks every participant concurrently; the result lists each ballot with its weight and time", () =>
      Effect.gen(function*() {
        const h = yield* setup([["yes", 3000], ["no", 1000], [true, 2000]])
        const fiber = yield* Effect.fork(
          h.consensus.propose({
            question: { proposal: "scale up" },
            participants: h.agents,
            action: "ballot",
            rule: Consensus.majority,
            timeout: "10 seconds",
            earlyDecision: false
          })
        )
        yield* TestClock.adjust("3 seconds")
        const result = yield* Fiber.join(fiber)
        // Asked at once: each answered after its own delay (in turn, they would end at 3, 4 and 6 s).
        expect(ballots(result)).toEqual(["a:yes@3000/voted", "b:no@1000/voted", "c:yes@2000/voted"])
        expect([result.decision, result.reason, result.closedAt]).toEqual(["accepted", "all_voted", 3000])
        expect(result.question).toEqual({ proposal: "scale up" })
        for (const agent of h.agents) expect((yield* agent.state).asked).toBe(1)
      }))

    it.scoped("ids are resolved through the registry; participants without an answer by the deadline abstain (timed_out)", () =>
      Effect.gen(function*() {
        const h = yield* setup(["yes", "yes", "never", ["no", 60_000]])
        const fiber = yield* Effect.fork(
          h.consensus.propose({ question: { proposal: "p" }, participants: ["a", "b", "c", "d"], action: "ballot", timeout: "5 seconds" })
        )
        yield* TestClock.adjust("4999 millis")
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        yield* TestClock.adjust("1 millis")
        const result = yield* Fiber.join(fiber)
        expect(ballots(result)).toEqual(["a:yes@0/voted", "b:yes@0/voted", "c:abstain@5000/timed_out", "d:abstain@5000/timed_out"])
        // 2 yes of 4 is not more than half, and nobody said no.
        expect([result.decision, result.reason]).toEqual(["no_quorum", "timed_out"])
        expect(yield* h.consensus.openRounds).toEqual([])
      }))

    it.scoped("a failed call, a stopped agent and an answer that is not a vote are failed ballots, recorded at once", () =>
      Effect.gen(function*() {
        const h = yield* setup(["yes", "fail", "garbage", "yes", "yes"])
        yield* h.agents[4]!.stop
        const result = yield* h.consensus.propose({
          question: { proposal: "p" },
          participants: h.agents,
          action: "ballot",
          timeout: "1 minute",
          earlyDecision: false
        })
        expect(ballots(result)).toEqual([
          "a:yes@0/voted",
          "b:abstain@0/failed",
          "c:abstain@0/failed",
          "d:yes@0/voted",
          "e:abstain@0/failed"
        ])
        expect(result.votes.map((b) => (b.error as { _tag?: string } | undefined)?._tag)).toEqual([
          undefined,
          "Refused",
          "ValidationError",
          undefined,
          "AgentStoppedError"
        ])
        expect([result.decision, result.reason]).toEqual(["no_quorum", "all_voted"])
      }))

    it.scoped("early decision: the round closes as soon as the outcome is certain; late votes are refused", () =>
      Effect.gen(function*() {
        const h = yield* setup(["yes", "yes", "yes", "never", "never"])
        const result = yield* h.consensus.propose({ question: { proposal: "p" }, participants: h.agents, action: "ballot" })
        expect([result.decision, result.reason, result.closedAt]).toEqual(["accepted", "decided", 0])
        expect(result.votes.slice(3).map((b) => b.source)).toEqual(["not_needed", "not_needed"])
        // A late participant can no longer vote.
        const late = failureOf(yield* Effect.exit(h.consensus.vote(result.id, "d", "no")))
        expect(late).toBeInstanceOf(Consensus.RoundClosedError)
        expect(late).toMatchObject({ round: result.id, decision: "accepted", reason: "decided" })
      }))

    it.scoped("interrupting propose closes its round", () =>
      Effect.gen(function*() {
        const h = yield* setup(["never", "never"])
        const fiber = yield* Effect.fork(
          h.consensus.propose({ id: "r1", question: { proposal: "p" }, participants: h.agents, action: "ballot" })
        )
        yield* settle
        expect(yield* h.consensus.openRounds).toEqual(["r1"])
        yield* Fiber.interrupt(fiber)
        const status = yield* h.consensus.status("r1")
        expect(status.open).toBe(false)
        expect(Option.map(status.result, (r) => [r.decision, r.reason])).toEqual(Option.some(["no_quorum", "closed"]))
      }))

    it.scoped("bad input is refused before a round opens", () =>
      Effect.gen(function*() {
        const h = yield* setup(["yes"])
        yield* h.registry.register("plain", metadata)
        const base = { question: { proposal: "p" }, participants: ["a"], action: "ballot" }
        const fails = (options: Consensus.ProposeOptions<unknown>) =>
          Effect.map(Effect.exit(h.consensus.propose(options)), failureOf)
        expect(yield* fails({ ...base, participants: ["nobody"] })).toBeInstanceOf(NotFoundError)
        expect(yield* fails({ ...base, participants: ["plain"] })).toMatchObject({ _tag: "ValidationError", field: "participants.0" })
        expect(yield* fails({ ...base, action: "vote" })).toMatchObject({ _tag: "ValidationError", field: "action" })
        expect(yield* fails({ ...base, question: { proposal: 1 } })).toMatchObject({ _tag: "ValidationError", field: "question.proposal" })
        expect(yield* fails({ ...base, participants: ["a", h.agents[0]!] })).toMatchObject({ field: "participants.1" })
        expect(yield* fails({ ...base, participants: [] })).toMatchObject({ field: "participants" })
        expect(yield* h.consensus.openRounds).toEqual([])
        // Without a registry, ids cannot be resolved.
        const alone = yield* Consensus.make()
        const error = failureOf(yield* Effect.exit(alone.propose(base)))
        expect(error).toMatchObject({ _tag: "ValidationError", field: "participants.0" })
      }))
  })

  describe("manual rounds", () => {
    it.scoped("one vote per participant: unknown participants, double votes and closed rounds fail and change nothing", () =>
      Effect.gen(function*() {
        const consensus = yield* Consensus.make()
        const round = yield* consensus.open({ question: "deploy?", participants: ["a", "b", "c"], rule: Consensus.unanimous })
        yield* round.vote("a", "yes")
        const unknown = failureOf(yield* Effect.exit(round.vote("zed", "yes")))
        expect(unknown).toBeInstanceOf(Consensus.UnknownParticipantError)
        expect(unknown).toMatchObject({ round: round.id, participant: "zed", category: "validation" })
        const twice = failureOf(yield* Effect.exit(consensus.vote(round.id, "a", "no")))
        expect(twice).toBeInstanceOf(Consensus.DoubleVoteError)
        expect(twice).toMatchObject({ participant: "a", ballot: { vote: "yes" }, category: "permanent" })
        const bad = failureOf(yield* Effect.exit(round.vote("b", "maybe" as Consensus.Vote)))
        expect(bad).toMatchObject({ _tag: "ValidationError", field: "vote" })
        expect(failureOf(yield* Effect.exit(consensus.vote("nope", "a", "yes")))).toBeInstanceOf(NotFoundError)
        const status = yield* round.status
        expect([status.open, status.votes.map((b) => `${b.participant}:${b.vote}`), status.pending]).toEqual([
          true,
          ["a:yes"],
          ["b", "c"]
        ])
        yield* round.vote("b", "no") // unanimous: rejected at once
        const closed = failureOf(yield* Effect.exit(round.vote("c", "yes")))
        expect(closed).toBeInstanceOf(Consensus.RoundClosedError)
        expect(closed).toMatchObject({ decision: "rejected", reason: "decided" })
        const result = yield* consensus.await(round.id)
        expect(ballots(result)).toEqual(["a:yes@0/voted", "b:no@0/voted", "c:abstain@0/not_needed"])
      }))

    it.scoped("the deadline records the missing votes as timed_out abstentions; close records them as closed", () =>
      Effect.gen(function*() {
        const consensus = yield* Consensus.make({ timeout: "30 seconds" })
        const round = yield* consensus.open({ question: 1, participants: ["a", "b", "c"] })
        const waiter = yield* Effect.fork(round.await)
        yield* TestClock.adjust("10 seconds")
        yield* round.vote("a", "yes")
        yield* TestClock.adjust("19999 millis")
        expect(Option.isNone(yield* Fiber.poll(waiter))).toBe(true)
        yield* TestClock.adjust("1 millis")
        const result = yield* Fiber.join(waiter)
        expect(ballots(result)).toEqual(["a:yes@10000/voted", "b:abstain@30000/timed_out", "c:abstain@30000/timed_out"])
        expect([result.decision, result.reason, result.openedAt, result.closedAt]).toEqual(["no_quorum", "timed_out", 0, 30_000])

        const other = yield* consensus.open({ question: 2, participants: ["a", "b"], rule: Consensus.quorum(1) })
        yield* other.vote("b", "no")
        const closed = yield* other.close
        expect(ballots(closed)).toEqual(["a:abstain@30000/closed", "b:no@30000/voted"])
        expect([closed.decision, closed.reason]).toEqual(["no_quorum", "closed"])
        expect(yield* other.close).toBe(closed) // closing again: the same result
      }))

    it.scoped("options are validated: participants, rule, weights, timeout, id", () =>
      Effect.gen(function*() {
        const consensus = yield* Consensus.make()
        const fails = (options: Consensus.OpenOptions<string>) => Effect.map(Effect.exit(consensus.open(options)), failureOf)
        const base = { question: "q", participants: ["a", "b", "c"] }
        expect(yield* fails({ ...base, participants: [] })).toMatchObject({ field: "participants", reason: "must not be empty" })
        expect(yield* fails({ ...base, participants: ["a", "a"] })).toMatchObject({ field: "participants.1" })
        expect(yield* fails({ ...base, rule: Consensus.quorum(4) })).toMatchObject({ field: "rule.size" })
        expect(yield* fails({ ...base, rule: Consensus.quorum(0) })).toMatchObject({ field: "rule.size" })
        expect(yield* fails({ ...base, rule: Consensus.weighted(1) })).toMatchObject({ field: "rule.threshold" })
        expect(yield* fails({ ...base, weights: { a: 2 } })).toMatchObject({ field: "weights", reason: "apply to the weighted rule only" })
        expect(yield* fails({ ...base, rule: Consensus.weighted(), weights: { z: 2 } })).toMatchObject({ field: "weights.z" })
        expect(yield* fails({ ...base, rule: Consensus.weighted(), weights: { a: 0 } })).toMatchObject({ field: "weights.a" })
        expect(yield* fails({ ...base, timeout: -1 })).toMatchObject({ field: "timeout" })
        expect(yield* consensus.openRounds).toEqual([])
        yield* consensus.open({ ...base, id: "r" })
        expect(yield* fails({ ...base, id: "r" })).toBeInstanceOf(AlreadyExistsError)
        const badService = yield* Effect.exit(Consensus.make({ maxRetained: -1 }))
        expect(failureOf(badService)).toBeInstanceOf(ValidationError)
      }))

    it.scoped("finished rounds stay readable for `retain`, at most `maxRetained` of them", () =>
      Effect.gen(function*() {
        const consensus = yield* Consensus.make({ retain: "1 minute", maxRetained: 2 })
        const open = (id: string) => consensus.open({ id, question: id, participants: ["a"] })
        for (const id of ["r1", "r2", "r3"]) yield* Effect.flatMap(open(id), (r) => r.vote("a", "yes"))
        // Three finished, two kept: the oldest went first.
        expect(failureOf(yield* Effect.exit(consensus.status("r1")))).toBeInstanceOf(NotFoundError)
        expect((yield* consensus.await("r3")).decision).toBe("accepted")
        yield* TestClock.adjust("59 seconds")
        expect((yield* consensus.status("r2")).open).toBe(false)
        yield* TestClock.adjust("1 second")
        expect(failureOf(yield* Effect.exit(consensus.await("r2")))).toBeInstanceOf(NotFoundError)
        expect(failureOf(yield* Effect.exit(consensus.status("r3")))).toBeInstanceOf(NotFoundError)
        // An id can be used again once its round is gone.
        yield* open("r1")
        expect(yield* consensus.openRounds).toEqual(["r1"])
      }))

    it.effect("closing the service closes its open rounds (waiters get a result)", () =>
      Effect.gen(function*() {
        const { result } = yield* Effect.scoped(Effect.gen(function*() {
          const consensus = yield* Consensus.make()
          const round = yield* consensus.open({ question: "q", participants: ["a", "b"] })
          yield* round.vote("a", "yes")
          const waiter = yield* Effect.fork(round.await)
          return { result: waiter }
        }))
        const closed = yield* Fiber.join(result)
        expect([closed.reason, closed.decision]).toEqual(["closed", "no_quorum"])
        expect(ballots(closed)).toEqual(["a:yes@0/voted", "b:abstain@0/closed"])
      }))

    it.scoped("emits started and completed events", () =>
      Effect.gen(function*() {
        const bus = yield* EventBus.EventBus
        const sub = yield* bus.subscribe("foundation.mabeam.consensus.**", { capacity: 10 })
        const consensus = yield* Consensus.make({ name: "council" })
        const round = yield* consensus.open({ id: "r", question: "q", participants: ["a", "b", "c"], rule: Consensus.quorum(2) })
        yield* TestClock.adjust("2 seconds")
        yield* round.vote("a", "yes")
        yield* round.vote("b", "yes")
        const seen = yield* drainTelemetry(sub)
        const at = { consensus: "council", round_id: "r", rule: "quorum(2)" }
        expect(seen).toEqual([
          [Consensus.events.started, { participants: 3, timeout_ms: 30_000 }, at],
          [Consensus.events.completed, { duration: 2000, yes: 2, no: 0, abstain: 1 }, { ...at, decision: "accepted", reason: "decided" }]
        ])
      }).pipe(Effect.provide(Telemetry.layerWithBus())))
  })

  it.effect("the example runs (on the TestClock)", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Example.program)
      yield* TestClock.adjust("1 minute")
      expect(yield* Fiber.join(fiber)).toEqual({
        decision: "accepted",
        reason: "decided",
        tookMillis: 4000,
        votes: ["planner:yes", "critic:no", "builder:yes", "tester:yes", "sleeper:abstain (not_needed)"],
        manual: { decision: "rejected", error: "DoubleVoteError" }
      })
    }))
})

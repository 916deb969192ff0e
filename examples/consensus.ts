// examples/consensus.ts — agents vote on a proposal; the round ends as soon as its outcome is certain
import { type Duration, Effect, Layer, Schema } from "effect"
import { Agent, AgentRegistry, Consensus } from "effect-foundation"

const Proposal = Schema.Struct({ change: Schema.String, risk: Schema.Number })

// A reviewer thinks for a while, then votes yes when the risk is within its tolerance.
const reviewer = (tolerance: number, think: Duration.DurationInput) =>
  Agent.define({
    name: "reviewer",
    state: Schema.Struct({}),
    initial: {},
    actions: {
      review: Agent.action({
        params: Proposal,
        run: ({ risk }: typeof Proposal.Type) => Effect.as(Effect.sleep(think), risk <= tolerance ? "yes" : "no")
      })
    }
  })

export const program = Effect.gen(function*() {
  const registry = yield* AgentRegistry.AgentRegistry
  const consensus = yield* Consensus.Consensus
  const metadata: AgentRegistry.Metadata = { capabilities: ["review"], health: "healthy", node: "local", resources: {} }
  yield* registry.spawn(reviewer(0.5, "1 second"), { id: "planner", metadata })
  yield* registry.spawn(reviewer(0.1, "2 seconds"), { id: "critic", metadata })
  yield* registry.spawn(reviewer(0.8, "3 seconds"), { id: "builder", metadata })
  yield* registry.spawn(reviewer(0.6, "4 seconds"), { id: "tester", metadata })
  yield* registry.spawn(reviewer(1.0, "1 hour"), { id: "sleeper", metadata })

  // Every participant is asked at once (a call of `review`); a majority of 5 needs 3 yes.
  const result = yield* consensus.propose({
    question: { change: "enable the cache", risk: 0.3 },
    participants: ["planner", "critic", "builder", "tester", "sleeper"], // ids resolved through the registry
    action: "review",
    rule: Consensus.majority,
    timeout: "30 seconds" // whoever has not answered by then abstains
  })

  // A round fed by hand: one ballot per participant; a single no rejects a unanimous round.
  const round = yield* consensus.open({ question: "roll back?", participants: ["alice", "bob", "carol"], rule: Consensus.unanimous })
  yield* round.vote("alice", "yes")
  const twice = yield* Effect.flip(round.vote("alice", "no"))
  yield* round.vote("bob", "no")
  const manual = yield* round.await

  return {
    decision: result.decision, // "accepted"
    reason: result.reason, // "decided": the third yes came at 4 s, the sleeper was not waited for
    tookMillis: result.closedAt - result.openedAt, // 4000
    votes: result.votes.map((b) => `${b.participant}:${b.vote}${b.source === "voted" ? "" : ` (${b.source})`}`),
    manual: { decision: manual.decision, error: twice._tag } // { decision: "rejected", error: "DoubleVoteError" }
  }
}).pipe(
  Effect.provide(Consensus.layer().pipe(Layer.provideMerge(AgentRegistry.layer()))),
  Effect.scoped
)

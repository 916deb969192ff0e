/**
 * Event bus throughput, publish → deliver, side by side with Node's EventEmitter (exact topics)
 * and eventemitter2 (wildcards), in one process. Each figure is events delivered per second
 * (for 100 subscribers: deliveries, i.e. events × subscribers), best of 5 rounds.
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import EventEmitter2Module from "eventemitter2"
import { EventEmitter } from "node:events"
import * as EventBus from "../src/observability/EventBus.js"

export interface Row {
  readonly name: string
  readonly perSecond: number
}

export interface EventBusReport {
  readonly rows: ReadonlyArray<Row>
}

const N = 200_000
const rounds = 5

/** Runs a consumer per subscription until it has seen `expected` events, while one fiber publishes. */
const busRound = (
  subscribers: number,
  noise: number,
  topicOf: (i: number) => string
): Effect.Effect<number, never> =>
  Effect.scoped(Effect.gen(function*() {
    const bus = yield* EventBus.make({ capacity: 10_000 })
    for (let i = 0; i < noise; i++) yield* bus.subscribe(`noise.${i}.*.never`)
    const subs = yield* Effect.forEach(Array.from({ length: subscribers }), () => bus.subscribe("agent.task.*"))
    const consumers = yield* Effect.forEach(subs, (sub) =>
      Effect.fork(Effect.gen(function*() {
        let seen = 0
        while (seen < N) seen += (yield* sub.takeAll).length
      })))
    const start = performance.now()
    for (let i = 0; i < N; i++) yield* bus.publish(topicOf(i), i)
    yield* Effect.forEach(consumers, Fiber.join, { discard: true })
    return (N * subscribers) / ((performance.now() - start) / 1000)
  })).pipe(Effect.orDie)

const best = (round: Effect.Effect<number>) =>
  Effect.gen(function*() {
    let top = 0
    for (let r = 0; r < rounds; r++) top = Math.max(top, yield* round)
    return top
  })

const emitterRound = (subscribers: number, noise: number): number => {
  const emitter = new EventEmitter()
  emitter.setMaxListeners(0)
  let seen = 0
  for (let i = 0; i < noise; i++) emitter.on(`noise.${i}.never`, () => {})
  for (let s = 0; s < subscribers; s++) emitter.on("agent.task.completed", () => void seen++)
  const start = performance.now()
  for (let i = 0; i < N; i++) emitter.emit("agent.task.completed", i)
  return seen / ((performance.now() - start) / 1000)
}

// A CommonJS module: its exports object carries the class.
const { EventEmitter2 } = EventEmitter2Module

const emitter2Round = (subscribers: number, noise: number): number => {
  const emitter = new EventEmitter2({ wildcard: true, delimiter: ".", maxListeners: 0 })
  let seen = 0
  for (let i = 0; i < noise; i++) emitter.on(`noise.${i}.*.never`, () => {})
  for (let s = 0; s < subscribers; s++) emitter.on("agent.task.*", () => void seen++)
  const start = performance.now()
  for (let i = 0; i < N; i++) emitter.emit("agent.task.completed", i)
  return seen / ((performance.now() - start) / 1000)
}

const bestSync = (round: () => number): number => {
  let top = 0
  for (let r = 0; r < rounds; r++) top = Math.max(top, round())
  return top
}

export const run: Effect.Effect<EventBusReport> = Effect.gen(function*() {
  const rows: Array<Row> = []
  const add = (name: string, perSecond: number) => {
    rows.push({ name, perSecond })
    console.log(`${name.padEnd(70)} ${(perSecond / 1e6).toFixed(2).padStart(6)} M/s`)
  }
  console.log("-- event bus: publish → deliver, events (or deliveries) per second")
  const same = () => "agent.task.completed"
  const unique = (i: number) => `agent.task.t${i}`
  add("EventBus, 1 subscriber (pattern agent.task.*)", yield* best(busRound(1, 0, same)))
  add("EventBus, 1 subscriber + 1,000 non-matching pattern subscriptions", yield* best(busRound(1, 1000, same)))
  add("EventBus, 1 subscriber + 1,000 non-matching, every topic new (trie, no cache)", yield* best(busRound(1, 1000, unique)))
  add("EventBus, 1 subscriber, every topic new (trie, no cache)", yield* best(busRound(1, 0, unique)))
  add("EventBus, 100 subscribers (deliveries/s)", yield* best(busRound(100, 0, same)))
  add("EventBus, 100 subscribers + 1,000 non-matching (deliveries/s)", yield* best(busRound(100, 1000, same)))
  add("node:events EventEmitter, 1 listener (exact topic)", bestSync(() => emitterRound(1, 0)))
  add("node:events EventEmitter, 1 listener + 1,000 other topics", bestSync(() => emitterRound(1, 1000)))
  add("node:events EventEmitter, 100 listeners (deliveries/s)", bestSync(() => emitterRound(100, 0)))
  add("eventemitter2 (wildcard), 1 listener agent.task.*", bestSync(() => emitter2Round(1, 0)))
  add("eventemitter2 (wildcard), 1 listener + 1,000 non-matching patterns", bestSync(() => emitter2Round(1, 1000)))
  add("eventemitter2 (wildcard), 100 listeners (deliveries/s)", bestSync(() => emitter2Round(100, 0)))
  return { rows }
})

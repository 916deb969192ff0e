/**
 * Routing of dot-separated topics (`agent.task.completed`) to subscriptions by exact topic or
 * pattern: `*` matches one segment, `**` (last segment only) any number of trailing segments,
 * none included (`agent.**` matches `agent` and `agent.task.completed`).
 *
 * A segment trie: matching walks only the branches the topic can take, so its cost depends on
 * the topic's length and on the matches, not on how many other subscriptions exist.
 */

/** Splits and checks a topic to publish on: non-empty segments, no wildcards. */
export const parseTopic = (topic: string): ReadonlyArray<string> | string => {
  if (topic.length === 0) return "must not be empty"
  const segments = topic.split(".")
  for (const segment of segments) {
    if (segment.length === 0) return `has an empty segment in "${topic}"`
    if (segment === "*" || segment === "**") return `must not contain wildcards ("${topic}"); publish on a concrete topic`
  }
  return segments
}

/** Splits and checks a pattern to subscribe with; `**` may only be the last segment. */
export const parsePattern = (pattern: string): ReadonlyArray<string> | string => {
  if (pattern.length === 0) return "must not be empty"
  const segments = pattern.split(".")
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!
    if (segment.length === 0) return `has an empty segment in "${pattern}"`
    if (segment === "**" && i !== segments.length - 1) return `may use ** only as the last segment ("${pattern}")`
    if (segment !== "*" && segment !== "**" && segment.includes("*")) {
      return `may use * only as a whole segment ("${pattern}")`
    }
  }
  return segments
}

class TrieNode<S> {
  readonly children = new Map<string, TrieNode<S>>()
  star: TrieNode<S> | undefined = undefined
  /** Subscriptions whose pattern ends here. */
  readonly here: Array<S> = []
  /** Subscriptions whose pattern ends here with `**`. */
  readonly rest: Array<S> = []

  isEmpty(): boolean {
    return this.children.size === 0 && this.star === undefined && this.here.length === 0 && this.rest.length === 0
  }
}

const removeFrom = <S>(list: Array<S>, item: S): void => {
  const i = list.indexOf(item)
  if (i >= 0) list.splice(i, 1)
}

export class TopicTrie<S> {
  private readonly root = new TrieNode<S>()

  add(segments: ReadonlyArray<string>, item: S): void {
    let node = this.root
    for (const segment of segments) {
      if (segment === "**") {
        node.rest.push(item)
        return
      }
      if (segment === "*") {
        node = node.star ??= new TrieNode<S>()
      } else {
        let child = node.children.get(segment)
        if (child === undefined) {
          child = new TrieNode<S>()
          node.children.set(segment, child)
        }
        node = child
      }
    }
    node.here.push(item)
  }

  remove(segments: ReadonlyArray<string>, item: S): void {
    const path: Array<readonly [TrieNode<S>, string]> = []
    let node: TrieNode<S> | undefined = this.root
    for (const segment of segments) {
      if (segment === "**") {
        removeFrom(node.rest, item)
        break
      }
      const next: TrieNode<S> | undefined = segment === "*" ? node.star : node.children.get(segment)
      if (next === undefined) return
      path.push([node, segment])
      node = next
    }
    if (segments[segments.length - 1] !== "**") removeFrom(node.here, item)
    // Prune the branches left empty, so that a churn of subscriptions leaves nothing behind.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, segment] = path[i]!
      const child = segment === "*" ? parent.star : parent.children.get(segment)
      if (child === undefined || !child.isEmpty()) break
      if (segment === "*") parent.star = undefined
      else parent.children.delete(segment)
    }
  }

  /** Appends every item whose pattern matches the topic to `out`. */
  match(segments: ReadonlyArray<string>, out: Array<S>): void {
    visit(this.root, segments, 0, out)
  }
}

const visit = <S>(node: TrieNode<S>, segments: ReadonlyArray<string>, i: number, out: Array<S>): void => {
  for (const item of node.rest) out.push(item)
  if (i === segments.length) {
    for (const item of node.here) out.push(item)
    return
  }
  const child = node.children.get(segments[i]!)
  if (child !== undefined) visit(child, segments, i + 1, out)
  if (node.star !== undefined) visit(node.star, segments, i + 1, out)
}

/** True when the topic matches the pattern (for replay and tests; routing uses the trie). */
export const matches = (pattern: ReadonlyArray<string>, topic: ReadonlyArray<string>): boolean => {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!
    if (p === "**") return true
    if (i >= topic.length) return false
    if (p !== "*" && p !== topic[i]) return false
  }
  return pattern.length === topic.length
}

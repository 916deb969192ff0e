/**
 * A doubly linked list whose nodes carry their own links (no wrapper allocation): append and
 * remove are O(1), and a node knows whether it is still in the list, so removing it twice is
 * harmless. Used where waiters or deadlines arrive in order and leave in any order. (Effect's
 * `MutableList` cannot remove an arbitrary element in O(1): `append` gives no handle.)
 */

/** What a node of an intrusive list carries. */
export interface Node<N extends Node<N>> {
  prev: N | undefined
  next: N | undefined
  /** The list the node is in, if any. */
  list: IntrusiveList<N> | undefined
}

export class IntrusiveList<N extends Node<N>> {
  head: N | undefined = undefined
  tail: N | undefined = undefined
  size = 0

  /** Appends a node that is in no list. */
  push(node: N): void {
    node.list = this
    node.prev = this.tail
    node.next = undefined
    if (this.tail === undefined) this.head = node
    else this.tail.next = node
    this.tail = node
    this.size++
  }

  /** Removes a node; true when it was in this list. */
  remove(node: N): boolean {
    if (node.list !== this) return false
    if (node.prev === undefined) this.head = node.next
    else node.prev.next = node.next
    if (node.next === undefined) this.tail = node.prev
    else node.next.prev = node.prev
    node.list = undefined
    node.prev = undefined
    node.next = undefined
    this.size--
    return true
  }
}

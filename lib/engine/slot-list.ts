/**
 * An unordered list of objects that each keep their own index in it, in a
 * field named when the list is made: adding, removing and checking
 * membership cost no hashing, and a member leaves by the last one taking its
 * place. Heartbeat groups and socket registries use it instead of a Set. V8
 * rebuilds a Set's hash table every few additions while members come and
 * go, and a table left behind in the old generation still points at the
 * members it held; until the next full collection every scavenge takes
 * those pointers as roots, so nearly every short-lived connection was copied
 * and promoted to the old generation (the README's Performance section,
 * handshakes). An array grows rarely, and shrinks in place.
 *
 * A member is in at most one list per field.
 */
export class SlotList<Member extends { [key in Field]: number }, Field extends string> {
  /** The members, in no particular order. Read it; change it only through the list. */
  readonly items: Member[] = []

  /** `field` is the member's number field that holds its index (-1 while in no list). */
  constructor (private readonly field: Field) {}

  get size (): number {
    return this.items.length
  }

  has (member: Member): boolean {
    const slot = member[this.field]
    return slot >= 0 && this.items[slot] === member
  }

  /** Adds `member`; false when it is in already. */
  add (member: Member): boolean {
    if (this.has(member)) return false
    member[this.field] = this.items.length as Member[Field]
    this.items.push(member)
    return true
  }

  /** Removes `member`; false when it was not in. */
  remove (member: Member): boolean {
    if (!this.has(member)) return false
    const items = this.items
    const slot = member[this.field]
    const last = items.pop()!
    if (last !== member) {
      items[slot] = last
      last[this.field] = slot
    }
    member[this.field] = -1 as Member[Field]
    return true
  }
}

/**
 * Idle detection for any number of connections with one timer per distinct
 * timeout, not one per connection: resetting a timer on every frame would
 * cost more than the frame. A connection only flags inbound activity (one
 * boolean store per socket read); each group's timer ticks four times per
 * timeout. Two quiet ticks (half the timeout) send a ping; four quiet ticks
 * mean the peer did not answer it, and the connection is dropped.
 */
import { SlotList } from './slot-list.js'

export interface HeartbeatMember {
  /** Set by the connection on every socket read. */
  activity: boolean
  /** Ticks since the last activity, kept by the group. */
  idleTicks: number
  /** Where the group keeps this member (-1: in no group), kept by the group. */
  heartbeatSlot: number
  /** Half the timeout passed in silence. */
  heartbeatPing (): void
  /** The whole timeout passed, the ping included: the peer is gone. */
  heartbeatExpired (): void
}

const TICKS_PER_TIMEOUT = 4
const PING_AT_TICK = 2

class HeartbeatGroup {
  /** Not a Set: see slot-list.ts. */
  readonly members = new SlotList<HeartbeatMember, 'heartbeatSlot'>('heartbeatSlot')
  private readonly timer: NodeJS.Timeout

  constructor (readonly timeoutMs: number, private readonly groups: Map<number, HeartbeatGroup>) {
    this.timer = setInterval(sweep, Math.max(1, Math.floor(timeoutMs / TICKS_PER_TIMEOUT)), this)
    this.timer.unref()
  }

  remove (member: HeartbeatMember): void {
    if (this.members.remove(member) && this.members.size === 0) {
      clearInterval(this.timer)
      this.groups.delete(this.timeoutMs)
    }
  }

  sweep (): void {
    // A copy: a ping or a drop may end a connection, and with it its place.
    for (const member of this.members.items.slice()) {
      if (!this.members.has(member)) continue
      if (member.activity) {
        member.activity = false
        member.idleTicks = 0
        continue
      }
      const ticks = ++member.idleTicks
      if (ticks === PING_AT_TICK) member.heartbeatPing()
      else if (ticks >= TICKS_PER_TIMEOUT) member.heartbeatExpired()
    }
  }
}

function sweep (group: HeartbeatGroup): void {
  group.sweep()
}

const groups = new Map<number, HeartbeatGroup>()

/** Watches `member` for `timeoutMs` of inbound silence. Returns the function that stops watching. */
export function watchIdle (member: HeartbeatMember, timeoutMs: number): HeartbeatGroup {
  let group = groups.get(timeoutMs)
  if (group === undefined) {
    group = new HeartbeatGroup(timeoutMs, groups)
    groups.set(timeoutMs, group)
  }
  member.activity = false
  member.idleTicks = 0
  group.members.add(member)
  return group
}

export type { HeartbeatGroup }

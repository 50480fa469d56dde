/**
 * Message buffers lent to their owner for one handler call, then reused.
 *
 * Every large message needs memory of its own: it outlives the socket read
 * that brought it. A fresh `Buffer` per message is a fresh ArrayBuffer, and
 * V8 11 counts a dead ArrayBuffer's bytes as allocated until it has swept
 * it, so a stream of 64 KiB or 1 MiB messages keeps starting full
 * collections (README, "Large messages: one V8 flag"). When the owner says
 * the message is done with once its handler has returned (text, which a
 * route turns into a string at once; binary on a route with
 * `binaryMessages: 'borrow'`), the parser takes the message's memory from
 * here instead, and the owner gives it back: the next message reuses it,
 * and a steady stream allocates nothing.
 *
 * The one other holder is a write the kernel did not take at once: Node
 * keeps a reference to the payload until it is written. The frame writer
 * writes a lent payload at once (not at the end of the tick) and, when any
 * of it stays queued, calls `keepOutOfPool`: that memory is then the
 * write's, and is never reused.
 *
 * Memory is pooled by size class (powers of two from 4 KiB up to 8 MiB),
 * and at most `MAX_FREE_BYTES` wait in the pool; past that, free memory of
 * other sizes makes room for what is given back, and the rest is left to the
 * collector.
 *
 * A small message (under 4 KiB) is a slice of Node's own Buffer pool, which
 * costs no ArrayBuffer of its own, but still a Buffer object, and an 8 KiB
 * ArrayBuffer for every 8 KiB of messages. Given back, the very Buffer is
 * lent again to the next message of its length: a stream of messages of one
 * size (an echo, a game's fixed-size updates) allocates nothing. At most
 * `MAX_SMALL_SPARES` wait, one per length, and each keeps Node's 8 KiB slab
 * that it is a slice of. As with the size classes, memory given back now is
 * memory in use now: when that many wait, the one that has waited longest
 * makes room, so lengths seen once in a burst do not keep the lengths in use
 * after it from being lent again.
 */
import { Buffer } from 'node:buffer'

/** Messages from this size on are lent in memory of a size class; smaller ones are slices of Node's Buffer pool, lent again as they are (see above). */
export const LEND_THRESHOLD = 4096
const MIN_CLASS = 12
const MAX_CLASS = 23
/** Free memory the pool keeps for later loans; beyond it, given-back memory goes to the collector. */
export const MAX_FREE_BYTES = 8 * 1024 * 1024

/** Given-back small loans waiting, one per length at most (see above). */
export const MAX_SMALL_SPARES = 64
/**
 * Small loans out now, so that a give-back is taken only from the loan
 * itself (any other Buffer may still be in use). Few: a synchronous handler
 * gives its message back before the next one is lent. Past this many, the
 * oldest is forgotten, and its give-back ignored.
 */
export const MAX_SMALL_OUT = 16

/** `smallSpares[n]`: a given-back small loan of n bytes, lent again as it is. */
const smallSpares: Array<Buffer | undefined> = new Array<Buffer | undefined>(LEND_THRESHOLD).fill(undefined)
/** The lengths that have a spare waiting, the longest waiting first (the next to make room). */
const spareLengths: number[] = []
/** The small loans out, oldest first. */
const smallOut: Uint8Array[] = []

/** The memory on loan, each with the view it was lent as (so only that loan can give it back). */
const loans = new WeakMap<ArrayBufferLike, Buffer>()
/** Free memory by size class: `free[c]` holds ArrayBuffers of 2^c bytes. */
const free: ArrayBufferLike[][] = Array.from({ length: MAX_CLASS + 1 }, () => [])
let freeBytes = 0

/** The class whose memory holds `size` bytes: log2 of the power of two at or above it (from MIN_CLASS). */
function sizeClass (size: number): number {
  return size <= 1 << MIN_CLASS ? MIN_CLASS : 32 - Math.clz32(size - 1)
}

/**
 * `size` bytes (uninitialised), on loan when `size` is small or within the
 * pooled classes; else a Buffer of its own, as `Buffer.allocUnsafe` gives,
 * that `giveBack` ignores.
 */
export function lend (size: number): Buffer {
  if (size < LEND_THRESHOLD) return lendSmall(size)
  const classOfSize = sizeClass(size)
  if (classOfSize > MAX_CLASS) return Buffer.allocUnsafe(size)
  let memory = free[classOfSize].pop()
  if (memory === undefined) memory = Buffer.allocUnsafeSlow(1 << classOfSize).buffer
  else freeBytes -= memory.byteLength
  const view = Buffer.from(memory, 0, size)
  loans.set(memory, view)
  return view
}

function lendSmall (size: number): Buffer {
  let view = smallSpares[size]
  if (view !== undefined) {
    smallSpares[size] = undefined
    // From the end: in a stream of one length, its spare is the newest.
    spareLengths.splice(spareLengths.lastIndexOf(size), 1)
  } else {
    view = Buffer.allocUnsafe(size)
  }
  if (smallOut.length === MAX_SMALL_OUT) smallOut.shift()
  smallOut.push(view)
  return view
}

function giveBackSmall (view: Uint8Array): void {
  const at = smallOut.lastIndexOf(view)
  if (at < 0) return
  // In order, so that the one forgotten past MAX_SMALL_OUT is the oldest.
  smallOut.splice(at, 1)
  const size = view.length
  if (smallSpares[size] !== undefined) return
  if (spareLengths.length === MAX_SMALL_SPARES) smallSpares[spareLengths.shift()!] = undefined
  smallSpares[size] = view as Buffer
  spareLengths.push(size)
}

/**
 * Whether `data` (or the Buffer it is a view of) is memory on loan from the
 * size classes: the memory a frame writer must not keep past its write
 * (loans under 4 KiB never are, since the writer copies them).
 */
export function isLent (data: Uint8Array): boolean {
  return loans.has(data.buffer)
}

/** A queued write still reads `data`: its memory leaves the pool for good and is never lent again. */
export function keepOutOfPool (data: Uint8Array): void {
  loans.delete(data.buffer)
}

/**
 * The owner is done with a message it was lent as `view`: its memory goes
 * back to the pool. A no-op for anything else (memory not on loan, already
 * given back, or kept out of the pool by a write). Give each loan back
 * once, when done: a small loan is lent again as the very same Buffer, so
 * a late second give-back, after it was lent again, would return the new
 * loan.
 */
export function giveBack (view: Uint8Array): void {
  if (view.byteLength < LEND_THRESHOLD) return giveBackSmall(view)
  const memory = view.buffer
  if (loans.get(memory) !== view) return
  loans.delete(memory)
  const size = memory.byteLength
  const classOfSize = sizeClass(size)
  if (freeBytes + size > MAX_FREE_BYTES) makeRoom(size, classOfSize)
  if (freeBytes + size > MAX_FREE_BYTES) return
  free[classOfSize].push(memory)
  freeBytes += size
}

/**
 * Memory given back now is memory in use now: free memory of other sizes
 * (left by a burst of larger messages, long over) leaves the pool for it,
 * largest first. Without this, a pool filled with 1 MiB buffers turned
 * every later 64 KiB message away to the collector, a fresh ArrayBuffer
 * per message again, and V8's full collections with them. When the pool
 * is full of this very size, the memory given back is the one dropped.
 */
function makeRoom (size: number, keep: number): void {
  for (let c = MAX_CLASS; c >= MIN_CLASS && freeBytes + size > MAX_FREE_BYTES; c--) {
    if (c === keep) continue
    const list = free[c]
    while (list.length > 0 && freeBytes + size > MAX_FREE_BYTES) freeBytes -= list.pop()!.byteLength
  }
}

/** @internal Small loans waiting to be lent again (tests). */
export function smallSparesWaiting (): number {
  return spareLengths.length
}

/** @internal Bytes waiting in the pool (tests). */
export function pooledBytes (): number {
  return freeBytes
}

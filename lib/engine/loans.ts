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
 * Memory is pooled by size class (powers of two from 4 KiB, below which
 * `Buffer.allocUnsafe` slices Node's own pool, up to 8 MiB), and at most
 * `MAX_FREE_BYTES` wait in the pool; past that, free memory of other sizes
 * makes room for what is given back, and the rest is left to the collector.
 */
import { Buffer } from 'node:buffer'

/** Messages from this size on are lent; smaller ones come from Node's Buffer pool, which costs no ArrayBuffer each. */
export const LEND_THRESHOLD = 4096
const MIN_CLASS = 12
const MAX_CLASS = 23
/** Free memory the pool keeps for later loans; beyond it, given-back memory goes to the collector. */
export const MAX_FREE_BYTES = 8 * 1024 * 1024

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
 * `size` bytes (uninitialised), on loan when `size` is within the pooled
 * classes; else a Buffer of its own, as `Buffer.allocUnsafe` gives, that
 * `giveBack` ignores.
 */
export function lend (size: number): Buffer {
  if (size < LEND_THRESHOLD) return Buffer.allocUnsafe(size)
  const classOfSize = sizeClass(size)
  if (classOfSize > MAX_CLASS) return Buffer.allocUnsafe(size)
  let memory = free[classOfSize].pop()
  if (memory === undefined) memory = Buffer.allocUnsafeSlow(1 << classOfSize).buffer
  else freeBytes -= memory.byteLength
  const view = Buffer.from(memory, 0, size)
  loans.set(memory, view)
  return view
}

/** Whether `data` (or the Buffer it is a view of) is memory on loan. */
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
 * given back, or kept out of the pool by a write).
 */
export function giveBack (view: Uint8Array): void {
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

/** @internal Bytes waiting in the pool (tests). */
export function pooledBytes (): number {
  return freeBytes
}

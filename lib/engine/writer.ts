/**
 * The frame writer: server frames are never masked (RFC 6455 §5.1: "A server
 * MUST NOT mask any frames that it sends to the client"), so a frame is a
 * 2–10 byte header and the payload as it is.
 *
 * Two ways out, both leaving one tick's frames in one write:
 * - In a read batch (`beginBatch` … `endBatch`, which the connection wraps
 *   around the parsing of one socket read), small frames are assembled in
 *   one staging buffer shared by the process, and `endBatch` writes them
 *   with one `socket.write`. An echo costs no Buffer of its own, and sixteen
 *   pipelined replies are one write of one chunk. Only one batch stages at a
 *   time; the staging bytes are reused once the kernel has taken them, and a
 *   write that stays queued keeps the buffer it points into (a fresh one is
 *   taken for the next batch).
 * - Elsewhere (a timer, an awaited handler, a broadcast from another
 *   socket's handler), writes are corked for the rest of the tick, and the
 *   socket is uncorked by one `process.nextTick` per batch (not per frame).
 *   Small payloads and every string are copied into the header's buffer, so
 *   such a frame is one allocation and one write.
 *
 * A payload over 4 KiB in lent memory (a borrowed message sent on, as
 * an echo does) leaves at once instead: see `writeLent`. On a TLS socket it
 * is copied first, and the copy written corked like any other payload.
 *
 * Whoever ends the socket after frames of a batch calls `flush()` first:
 * `Connection` does.
 *
 * `MaskingFrameWriter` writes client frames (the in-process test client of
 * `injectWS`): each one masked with a fresh random key (§5.3).
 */
import { Buffer } from 'node:buffer'
import { randomFillSync } from 'node:crypto'
import { Socket } from 'node:net'
import { nextTick } from 'node:process'
import type { Writable } from 'node:stream'
import { isLent, keepOutOfPool } from './loans.js'
import { applyMask } from './mask.js'

/** Buffers up to this size are copied behind their header rather than written as a second chunk. */
const MERGE_LIMIT = 4096
/**
 * The staging buffer's size. Small on purpose: a write the kernel cannot take
 * at once (a slow reader) keeps the whole buffer alive until it completes.
 */
const STAGING_SIZE = 16 * 1024

function headerLength (length: number): number {
  return length < 126 ? 2 : length < 0x10000 ? 4 : 10
}

/** Writes the header at `target[at]`; returns where the payload goes. */
function writeHeader (target: Buffer, firstByte: number, length: number, at = 0): number {
  target[at] = firstByte
  if (length < 126) {
    target[at + 1] = length
    return at + 2
  }
  if (length < 0x10000) {
    target[at + 1] = 126
    target.writeUInt16BE(length, at + 2)
    return at + 4
  }
  target[at + 1] = 127
  target.writeUInt32BE(Math.floor(length / 0x100000000), at + 2)
  target.writeUInt32BE(length >>> 0, at + 6)
  return at + 10
}

/** A close frame's payload (§5.5.1): the code in network byte order, then the reason; empty for code 0. */
function closePayload (code: number, reason: Buffer): Buffer {
  if (code === 0) return Buffer.alloc(0)
  const payload = Buffer.allocUnsafe(2 + reason.length)
  payload.writeUInt16BE(code, 0)
  reason.copy(payload, 2)
  return payload
}

function uncork (writer: FrameWriter): void {
  writer.corked = false
  writer.socket.uncork()
}

// The staging buffer: its first `staged` bytes are the active batch's frames,
// not yet written. It never holds bytes a queued write still reads.
let staging = Buffer.allocUnsafe(STAGING_SIZE)
let staged = 0
/**
 * The view of the staging buffer the last batch was written from: the next
 * batch of the same length from the same buffer (an echo's replies) is
 * written from it again rather than from a new Buffer object. Node's
 * `socket.write` keeps no hold on a view once its write is done.
 */
let stagedView = staging.subarray(0, 0)
/** The writer whose read batch is staging, if any. */
let batchOwner: FrameWriter | undefined

/**
 * Set to true on a stream whose writes copy what they are given (the
 * in-process pair of `injectWS`): like a TCP socket, it may be written
 * from memory that is reused once the write is done.
 */
export const kWritesCopy = Symbol('wsroutes.writesCopy')

export class FrameWriter {
  readonly socket: Socket
  /** @internal */
  corked = false
  /**
   * Whether a write this socket reports done has taken its bytes, so the
   * memory it was written from (the staging buffer, a lent payload) may
   * carry other bytes: true of a TCP socket, whose kernel took them, and of
   * a stream that copies (`kWritesCopy`). Another Duplex (a PassThrough
   * pair) may hand the very Buffer on to its reader and call back at once:
   * it is written copies.
   */
  private readonly writesTakeBytes: boolean

  constructor (socket: Socket) {
    this.socket = socket
    this.writesTakeBytes = socket instanceof Socket || (socket as { [kWritesCopy]?: boolean })[kWritesCopy] === true
  }

  /** Bytes written but not yet handed to the kernel: the socket's buffer and this writer's staged frames. */
  get bufferedAmount (): number {
    return this.socket.writableLength + (batchOwner === this ? staged : 0)
  }

  /**
   * Starts a read batch: frames are staged until `endBatch()`. A no-op when
   * another writer's batch is staging (a read inside a read, as in-process
   * streams can do): this one then writes corked, as outside a batch.
   */
  beginBatch (): void {
    if (batchOwner === undefined) batchOwner = this
  }

  /** Ends a read batch: its frames leave in one write. */
  endBatch (): void {
    if (batchOwner !== this) return
    this.flush()
    batchOwner = undefined
  }

  /** Writes this batch's staged frames now (before the socket is ended); the batch goes on. */
  flush (): void {
    if (batchOwner !== this || staged === 0) return
    const socket = this.socket
    if (socket.destroyed || !socket.writable) {
      staged = 0
      return
    }
    // Data already queued: this write will wait too, and must not pin the
    // staging buffer: it gets a copy of just its bytes (as does every write
    // to a stream that may keep what it is given).
    const copy = socket.writableLength > 0 || !this.writesTakeBytes
    let region = stagedView
    if (region.length !== staged || region.buffer !== staging.buffer || region.byteOffset !== staging.byteOffset) {
      region = stagedView = staging.subarray(0, staged)
    }
    socket.write(copy ? Buffer.from(region) : region)
    if (!copy && socket.writableLength > 0) {
      // The kernel took part of it; the rest waits in the socket and reads
      // from this buffer until written.
      staging = Buffer.allocUnsafe(STAGING_SIZE)
    }
    staged = 0
  }

  /**
   * Hands this read's staged frames and this tick's corked ones to the
   * kernel now, rather than when the read or the tick ends, and returns the
   * bytes it left queued: what the peer has not taken yet. (A rare call: the
   * backpressure check, once the buffered amount is over its limit.)
   */
  unsentAfterFlush (): number {
    this.flush()
    this.uncorkNow()
    return this.socket.writableLength
  }

  /** Ends this tick's cork early; the pending nextTick uncork then finds nothing to do. */
  private uncorkNow (): void {
    if (!this.corked) return
    this.corked = false
    this.socket.uncork()
  }

  /**
   * Writes one frame with `payload` (a string is sent as UTF-8). Returns
   * false once the socket's buffer (with this batch's staged frames) is
   * over the high-water mark: 'drain' follows.
   */
  frame (opcode: number, payload: Buffer | string, fin = true): boolean {
    const firstByte = (fin ? 0x80 : 0) | opcode
    const length = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length
    if (batchOwner === this) {
      if (length <= MERGE_LIMIT) return this.stage(firstByte, payload, length)
      // A large payload goes as its own chunk, behind what is staged.
      this.flush()
    }
    if (!this.corked) {
      this.corked = true
      this.socket.cork()
      nextTick(uncork, this)
    }
    if (typeof payload === 'string') {
      const out = Buffer.allocUnsafe(headerLength(length) + length)
      out.write(payload, writeHeader(out, firstByte, length))
      return this.socket.write(out)
    }
    if (length <= MERGE_LIMIT) {
      const out = Buffer.allocUnsafe(headerLength(length) + length)
      out.set(payload, writeHeader(out, firstByte, length))
      return this.socket.write(out)
    }
    const header = Buffer.allocUnsafe(headerLength(length))
    writeHeader(header, firstByte, length)
    if (isLent(payload)) {
      // A TLS socket's write stays queued until the encrypted bytes are out,
      // however fast the kernel takes them, so a lent payload written as it
      // is would always leave the pool (`keepOutOfPool`): a fresh
      // power-of-two buffer per message. A copy of its own size costs less,
      // and the loan goes back. (Asked here, on this rare path, rather than
      // kept per connection.)
      if (this.writesTakeBytes && (this.socket as { encrypted?: boolean }).encrypted !== true) return this.writeLent(header, payload)
      payload = Buffer.from(payload)
    }
    this.socket.write(header)
    return this.socket.write(payload)
  }

  /**
   * A payload in lent memory (loans.ts), which is reused once its handler
   * has returned: written now rather than at the end of the tick, after
   * whatever this tick corked before it. If the kernel does not take all of
   * it at once, the queued write keeps reading it, so that memory is taken
   * out of the pool for good.
   */
  private writeLent (header: Buffer, payload: Buffer): boolean {
    const socket = this.socket
    this.uncorkNow()
    socket.cork()
    socket.write(header)
    const belowHighWaterMark = socket.write(payload)
    socket.uncork()
    if (socket.writableLength > 0) keepOutOfPool(payload)
    return belowHighWaterMark
  }

  /** A close frame; `code` 0 sends an empty payload. */
  close (code: number, reason: Buffer): boolean {
    return this.frame(0x8, closePayload(code, reason))
  }

  /** Appends a small frame to the staging buffer. */
  private stage (firstByte: number, payload: Buffer | string, length: number): boolean {
    const size = headerLength(length) + length
    if (STAGING_SIZE - staged < size) this.flush()
    const at = writeHeader(staging, firstByte, length, staged)
    if (typeof payload === 'string') staging.write(payload, at)
    else staging.set(payload, at)
    staged = at + length
    return this.bufferedAmount < this.socket.writableHighWaterMark
  }
}

/** Masking keys are cut from one random buffer, refilled when used up: one `randomFillSync` per 2048 frames. */
const KEY_POOL_SIZE = 8192
const keyPool = Buffer.allocUnsafe(KEY_POOL_SIZE)
let keyOffset = KEY_POOL_SIZE

/**
 * The client side's writer. §5.3: "The masking key is a 32-bit value chosen
 * at random by the client. [...] the masking key for each frame MUST be
 * picked from the set of allowed 32-bit values" and must be unpredictable,
 * so keys come from the CSPRNG. The payload is copied behind the header and
 * masked there: masking in place would change the caller's buffer.
 */
export class MaskingFrameWriter {
  readonly socket: Writable

  constructor (socket: Writable) {
    this.socket = socket
  }

  /** Writes one masked frame with `payload` (a string is sent as UTF-8), in one write. */
  frame (opcode: number, payload: Buffer | string, fin = true): boolean {
    const length = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length
    const keyAt = headerLength(length)
    const payloadAt = keyAt + 4
    const out = Buffer.allocUnsafe(payloadAt + length)
    writeHeader(out, (fin ? 0x80 : 0) | opcode, length)
    out[1] |= 0x80
    if (keyOffset === KEY_POOL_SIZE) {
      randomFillSync(keyPool)
      keyOffset = 0
    }
    keyPool.copy(out, keyAt, keyOffset, keyOffset + 4)
    keyOffset += 4
    if (typeof payload === 'string') out.write(payload, payloadAt)
    else out.set(payload, payloadAt)
    applyMask(out.subarray(payloadAt), out.subarray(keyAt, payloadAt), 0)
    return this.socket.write(out)
  }

  /** A close frame; `code` 0 sends an empty payload. */
  close (code: number, reason: Buffer): boolean {
    return this.frame(0x8, closePayload(code, reason))
  }
}

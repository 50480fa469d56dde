/**
 * The frame writer: server frames are never masked (RFC 6455 §5.1: "A server
 * MUST NOT mask any frames that it sends to the client"), so a frame is a
 * 2–10 byte header and the payload as it is.
 *
 * Writes are corked for the rest of the current tick: every frame a handler
 * sends while one `data` event is processed leaves in one `writev`, and the
 * socket is uncorked by one `process.nextTick` per batch (not per frame).
 * Small payloads and every string are copied into the header's buffer, so
 * such a frame is one allocation and one write.
 *
 * `MaskingFrameWriter` writes client frames (the in-process test client of
 * `injectWS`): each one masked with a fresh random key (§5.3).
 */
import { Buffer } from 'node:buffer'
import { randomFillSync } from 'node:crypto'
import type { Socket } from 'node:net'
import { nextTick } from 'node:process'
import type { Writable } from 'node:stream'
import { applyMask } from './mask.js'

/** Buffers up to this size are copied behind their header rather than written as a second chunk. */
const MERGE_LIMIT = 4096

function headerLength (length: number): number {
  return length < 126 ? 2 : length < 0x10000 ? 4 : 10
}

function writeHeader (target: Buffer, firstByte: number, length: number): number {
  target[0] = firstByte
  if (length < 126) {
    target[1] = length
    return 2
  }
  if (length < 0x10000) {
    target[1] = 126
    target.writeUInt16BE(length, 2)
    return 4
  }
  target[1] = 127
  target.writeUInt32BE(Math.floor(length / 0x100000000), 2)
  target.writeUInt32BE(length >>> 0, 6)
  return 10
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

export class FrameWriter {
  readonly socket: Socket
  /** @internal */
  corked = false

  constructor (socket: Socket) {
    this.socket = socket
  }

  /**
   * Writes one frame with `payload` (a string is sent as UTF-8). Returns the
   * socket's answer: false once its buffer is over the high-water mark.
   */
  frame (opcode: number, payload: Buffer | string, fin = true): boolean {
    const firstByte = (fin ? 0x80 : 0) | opcode
    if (!this.corked) {
      this.corked = true
      this.socket.cork()
      nextTick(uncork, this)
    }
    if (typeof payload === 'string') {
      const length = Buffer.byteLength(payload)
      const out = Buffer.allocUnsafe(headerLength(length) + length)
      out.write(payload, writeHeader(out, firstByte, length))
      return this.socket.write(out)
    }
    const length = payload.length
    if (length <= MERGE_LIMIT) {
      const out = Buffer.allocUnsafe(headerLength(length) + length)
      out.set(payload, writeHeader(out, firstByte, length))
      return this.socket.write(out)
    }
    const header = Buffer.allocUnsafe(headerLength(length))
    writeHeader(header, firstByte, length)
    this.socket.write(header)
    return this.socket.write(payload)
  }

  /** A close frame; `code` 0 sends an empty payload. */
  close (code: number, reason: Buffer): boolean {
    return this.frame(0x8, closePayload(code, reason))
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

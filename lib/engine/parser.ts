/**
 * The frame parser: a streaming state machine (RFC 6455 §5.2) fed socket
 * chunks cut at arbitrary boundaries. One method per state; each returns
 * false when it needs more bytes. It reports to its owner through the small
 * `FrameHandler` interface, never through events.
 *
 * Data frame payloads are consumed as they arrive: each piece is unmasked in
 * place and, for text, validated at once, so invalid UTF-8 fails the
 * connection at the first bad byte even when the rest of the frame is still
 * on the wire. Header bytes are read straight from the current chunk (or from
 * a 14-byte scratch buffer when a header spans chunks), so a frame costs no
 * allocation beyond the Buffer view handed to the owner. The scratch buffer
 * is one for all parsers: header bytes are read from it at once, before any
 * other parser can run.
 *
 * The server reads masked client frames; with `role: 'client'` the same
 * parser reads unmasked server frames (the in-process test client of
 * `injectWS`), at the cost of one boolean check per frame on the server path.
 */
import { Buffer, constants } from 'node:buffer'
import { isValidCloseCode } from './close-codes.js'
import { ErrorCodes, wsError, type WebSocketError } from './errors.js'
import { giveBack, lend } from './loans.js'
import { applyMaskWord, copyMasked } from './mask.js'
import { UTF8_ACCEPT, UTF8_REJECT, isValidUtf8, validateUtf8Chunk } from './utf8.js'

export const Opcode = {
  CONTINUATION: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa,
} as const

export interface FrameHandler {
  /**
   * A complete message. `data` is unmasked and, for text, valid UTF-8. With
   * `lent`, its memory is on loan (loans.ts, `lendText`/`lendBinary`): the
   * handler calls `giveBack(data)` once done with it, and its memory is
   * then reused.
   */
  onMessage (data: Buffer, isBinary: boolean, lent: boolean): void
  onPing (data: Buffer): void
  onPong (data: Buffer): void
  /** A valid close frame; `code` is 1005 when it carried none. The parser stops after it. */
  onClose (code: number, reason: Buffer): void
  /** The peer broke the protocol; the parser has stopped. `error.closeCode` is the code to close with. */
  onProtocolError (error: WebSocketError): void
}

export interface ParserOptions {
  /** Largest message, in bytes, summed over its fragments. */
  maxPayload: number
  /** Most frames one message may be split into. */
  maxFragments: number
  /**
   * Whose frames are parsed, named by the side that reads them: `server`
   * (the default) reads a client's frames, which must be masked; `client`
   * reads a server's, which must not be (RFC 6455 §5.1).
   */
  role?: 'server' | 'client'
  /**
   * Whether the owner is done with a text (`lendText`) or binary
   * (`lendBinary`) message once it has handled it: a whole message (one
   * frame) that needs memory of its own, copied out of a volatile chunk or
   * assembled from reads (from 16 KiB on), is then delivered in lent memory
   * (`lent` true), which the owner gives back. Default false: every message
   * is the owner's to keep.
   */
  lendText?: boolean
  lendBinary?: boolean
}

const enum State {
  INFO,
  LENGTH_16,
  LENGTH_64,
  MASK,
  PAYLOAD,
  STOPPED,
}

const EMPTY = Buffer.alloc(0)
const MAX_STRING_LENGTH = constants.MAX_STRING_LENGTH
/** Header bytes that span chunks, made contiguous (at most 2 + 8 + 4); shared, see above. */
const SCRATCH = Buffer.allocUnsafe(14)
/** Frames from this size on that span socket reads are assembled in place rather than concatenated. */
const ASSEMBLE_THRESHOLD = 16 * 1024
/**
 * A message's pieces are joined in runs of this many when each averages at
 * most `SMALL_PIECE` bytes: a kept Buffer costs about 100 bytes besides its
 * payload, so a peer sending a message as 65,536 one-byte fragments (the
 * default `maxFragments`) would otherwise hold about 6.5 MB with 64 KiB of
 * payload. Runs of larger pieces are left as they are (copying them again
 * would cost more than their Buffers do).
 */
const JOIN_RUN = 64
const SMALL_PIECE = 1024

export class FrameParser {
  private readonly handler: FrameHandler
  /** maxPayload and maxFragments: the options object itself, which a connection shares with the others of its route. */
  private readonly limits: ParserOptions
  /** Whether frames must be masked (the server role) or must not be (the client role). */
  private readonly masked: boolean

  /** Unread input: chunks[0] is read from `offset` on. */
  private readonly chunks: Buffer[] = []
  private offset = 0
  private buffered = 0
  /** Where `take()` left the contiguous header bytes; EMPTY once the header is read, so an idle parser keeps no chunk alive. */
  private view: Buffer = EMPTY

  private state = State.INFO
  // The frame being read.
  private fin = false
  private opcode = 0
  private payloadLength = 0
  private payloadRead = 0
  /** The frame's masking key as a word (`maskWord`). */
  private maskKey = 0
  // The message being assembled (opcode 0 when none).
  private messageOpcode = 0
  private messageLength = 0
  private fragmentCount = 0
  /** The pieces of a message received so far, when it is in more than one; created for such a message only. */
  private fragments: Buffer[] | undefined
  /** `fragments` from this index on are pieces as received, not yet considered for joining (`joinRun`). */
  private rawFrom = 0
  /** The UTF-8 validator's state over a text message so far (utf8.ts). */
  private utf8State = UTF8_ACCEPT
  /** The payload of a large frame that spans socket reads, filled as they arrive. */
  private frameBuffer: Buffer | undefined
  /** Whether `frameBuffer` is lent memory (a whole message the owner gives back). */
  private frameBufferLent = false
  /** While paused, input is kept but no frame is parsed (the owner awaits a handler). */
  private paused = false
  /** The chunk of the current `write()` when its memory is reused after the call (direct reads). */
  private volatileChunk: Buffer | undefined
  /** Whether the last `consume()` gave lent memory (a whole message copied out of a volatile chunk). */
  private consumedLent = false

  constructor (handler: FrameHandler, options: ParserOptions) {
    this.handler = handler
    this.limits = options
    this.masked = options.role !== 'client'
  }

  get stopped (): boolean {
    return this.state === State.STOPPED
  }

  /**
   * Feeds bytes from the socket. With `volatile`, `chunk`'s memory is reused
   * once this call returns (a shared read buffer): whatever is handed out or
   * kept from it is copied first, and `chunk` itself is not kept either (the
   * caller may pass the same Buffer object again with other bytes).
   */
  write (chunk: Buffer, volatile = false): void {
    if (this.state === State.STOPPED || chunk.length === 0) return
    this.chunks.push(chunk)
    this.buffered += chunk.length
    if (!volatile) {
      if (!this.paused) this.run()
      return
    }
    this.volatileChunk = chunk
    if (!this.paused) this.run()
    this.volatileChunk = undefined
    // Header bytes are read where `take()` found them, at once: nothing reads
    // `view` before the next `take()`, and it must not hold on to `chunk`.
    this.view = EMPTY
    // Only the last chunk can be this one: earlier ones were kept as copies.
    const last = this.chunks.length - 1
    if (last >= 0 && this.chunks[last] === chunk) {
      const start = last === 0 ? this.offset : 0
      this.chunks[last] = Buffer.from(chunk.subarray(start))
      if (last === 0) this.offset = 0
    }
  }

  /** Bytes received and not parsed yet. */
  get pending (): number {
    return this.buffered
  }

  /** Stops after the frame being delivered; input keeps accumulating until `resume()`. */
  pause (): void {
    this.paused = true
  }

  resume (): void {
    if (!this.paused) return
    this.paused = false
    this.run()
  }

  /** Stops parsing and drops whatever is buffered; later input is ignored. */
  stop (): void {
    this.state = State.STOPPED
    this.view = EMPTY
    this.chunks.length = 0
    this.fragments = undefined
    // A message cut short: lent memory goes back (giveBack ignores the rest).
    if (this.frameBuffer !== undefined) giveBack(this.frameBuffer)
    this.frameBuffer = undefined
    this.buffered = 0
    this.offset = 0
  }

  private run (): void {
    let more = true
    while (more && !this.paused) {
      switch (this.state) {
        case State.INFO: more = this.readInfo(); break
        case State.LENGTH_16: more = this.readLength16(); break
        case State.LENGTH_64: more = this.readLength64(); break
        case State.MASK: more = this.readMask(); break
        case State.PAYLOAD: more = this.readPayload(); break
        default: return
      }
    }
  }

  // ---------------------------------------------------------------- states

  private readInfo (): boolean {
    if (this.buffered < 2) return false
    const at = this.take(2)
    const b0 = this.view[at]
    const b1 = this.view[at + 1]

    // §5.2: "MUST be 0 unless an extension is negotiated that defines meanings
    // for non-zero values. If a nonzero value is received and none of the
    // negotiated extensions defines the meaning of such a nonzero value, the
    // receiving endpoint MUST _Fail the WebSocket Connection_."
    if ((b0 & 0x70) !== 0) return this.fail(ErrorCodes.UNEXPECTED_RSV, 'RSV1, RSV2 and RSV3 must be clear', 1002)

    this.fin = (b0 & 0x80) !== 0
    this.opcode = b0 & 0x0f
    this.payloadLength = b1 & 0x7f

    switch (this.opcode) {
      case Opcode.CONTINUATION:
        // §5.4: a fragmented message is a first frame, any number of
        // continuation frames, and a last one with FIN set.
        if (this.messageOpcode === 0) return this.fail(ErrorCodes.UNEXPECTED_CONTINUATION, 'continuation frame without a message to continue', 1002)
        break
      case Opcode.TEXT:
      case Opcode.BINARY:
        if (this.messageOpcode !== 0) return this.fail(ErrorCodes.EXPECTED_CONTINUATION, 'new data frame inside a fragmented message', 1002)
        break
      case Opcode.CLOSE:
      case Opcode.PING:
      case Opcode.PONG:
        // §5.5: "All control frames MUST have a payload length of 125 bytes
        // or less and MUST NOT be fragmented."
        if (!this.fin) return this.fail(ErrorCodes.EXPECTED_FIN, 'control frames must not be fragmented', 1002)
        if (this.payloadLength > 125) return this.fail(ErrorCodes.INVALID_CONTROL_PAYLOAD_LENGTH, 'control frame payload over 125 bytes', 1002)
        break
      default:
        // §5.2: "If an unknown opcode is received, the receiving endpoint
        // MUST _Fail the WebSocket Connection_."
        return this.fail(ErrorCodes.INVALID_OPCODE, `invalid opcode ${this.opcode}`, 1002)
    }

    // §5.1: "The server MUST close the connection upon receiving a frame
    // that is not masked." and "A client MUST close a connection if it
    // detects a masked frame."
    if (((b1 & 0x80) !== 0) !== this.masked) {
      return this.masked
        ? this.fail(ErrorCodes.EXPECTED_MASK, 'client frames must be masked', 1002)
        : this.fail(ErrorCodes.UNEXPECTED_MASK, 'server frames must not be masked', 1002)
    }

    if (this.payloadLength === 126) this.state = State.LENGTH_16
    else if (this.payloadLength === 127) this.state = State.LENGTH_64
    else return this.checkLength()
    return true
  }

  private readLength16 (): boolean {
    if (this.buffered < 2) return false
    const at = this.take(2)
    this.payloadLength = this.view.readUInt16BE(at)
    return this.checkLength()
  }

  private readLength64 (): boolean {
    if (this.buffered < 8) return false
    const at = this.take(8)
    const high = this.view.readUInt32BE(at)
    // §5.2: "the most significant bit MUST be 0".
    if (high > 0x7fffffff) return this.fail(ErrorCodes.UNSUPPORTED_DATA_PAYLOAD_LENGTH, '64-bit payload length with the most significant bit set', 1002)
    this.payloadLength = high * 0x100000000 + this.view.readUInt32BE(at + 4)
    return this.checkLength()
  }

  /** The declared length is checked before any payload is buffered. */
  private checkLength (): boolean {
    if (this.opcode < Opcode.CLOSE) {
      const { maxPayload, maxFragments } = this.limits
      const length = this.messageLength + this.payloadLength
      if (length > maxPayload) {
        return this.fail(ErrorCodes.MAX_PAYLOAD, `message exceeds maxPayload (${maxPayload} bytes)`, 1009)
      }
      // Text is for strings, and V8's longest holds MAX_STRING_LENGTH
      // characters (about 512 MiB): a longer text message (possible only with
      // a larger maxPayload) could never be decoded.
      if (length > MAX_STRING_LENGTH && (this.opcode === Opcode.TEXT || (this.opcode === Opcode.CONTINUATION && this.messageOpcode === Opcode.TEXT))) {
        return this.fail(ErrorCodes.MAX_PAYLOAD, `text message exceeds the longest string (${MAX_STRING_LENGTH} characters)`, 1009)
      }
      if (++this.fragmentCount > maxFragments) {
        return this.fail(ErrorCodes.TOO_MANY_FRAGMENTS, `message exceeds maxFragments (${maxFragments} frames)`, 1009)
      }
    }
    this.state = State.MASK
    return true
  }

  private readMask (): boolean {
    // An unmasked frame (the client role) has no masking key.
    if (this.masked) {
      if (this.buffered < 4) return false
      const at = this.take(4)
      this.maskKey = this.view.readInt32LE(at)
    }
    this.view = EMPTY
    this.payloadRead = 0
    this.state = State.PAYLOAD
    if (this.opcode === Opcode.TEXT || this.opcode === Opcode.BINARY) this.messageOpcode = this.opcode
    return true
  }

  private readPayload (): boolean {
    if (this.opcode >= Opcode.CLOSE) return this.readControlPayload()

    const remaining = this.payloadLength - this.payloadRead
    if (remaining > 0 && this.buffered === 0) return false
    const n = remaining < this.buffered ? remaining : this.buffered
    let piece: Buffer
    if (this.frameBuffer !== undefined || (n < remaining && this.payloadRead === 0 && remaining >= ASSEMBLE_THRESHOLD)) {
      // A large frame that spans socket reads is copied, as it arrives, into
      // one buffer of its declared length: the reads can be freed at once,
      // and no concatenation follows. Allocating fresh memory is what costs
      // most here (page faults), so each large frame costs one allocation.
      const target = this.frameBuffer ?? this.startFrameBuffer()
      if (target === undefined) return false
      const at = this.payloadRead
      this.copyInto(target, n, at, this.masked)
      piece = target.subarray(at, at + n)
    } else {
      piece = n === 0 ? EMPTY : this.consume(n, this.masked)
    }
    let lent = this.consumedLent
    this.consumedLent = false
    this.payloadRead += n
    const frameDone = this.payloadRead === this.payloadLength
    const messageDone = frameDone && this.fin

    if (this.messageOpcode === Opcode.TEXT) {
      const state = this.utf8State = validateUtf8Chunk(this.utf8State, piece)
      if (state === UTF8_REJECT || (messageDone && state !== UTF8_ACCEPT)) {
        if (lent) giveBack(piece)
        return this.fail(ErrorCodes.INVALID_UTF8, 'invalid UTF-8 in a text message', 1007)
      }
    }

    if (this.frameBuffer !== undefined) {
      if (!frameDone) return false
      piece = this.frameBuffer
      lent = this.frameBufferLent
      this.frameBuffer = undefined
    }
    const fragments = this.fragments
    if (messageDone && fragments === undefined) {
      // The common case: a whole message in one piece, handed over as it is.
      this.state = State.INFO
      this.deliver(piece, lent)
      return !this.stopped
    }
    if (piece.length > 0) {
      if (fragments === undefined) {
        this.fragments = [piece]
        this.rawFrom = 0
      } else if (fragments.push(piece) - this.rawFrom === JOIN_RUN) {
        this.joinRun(fragments)
      }
    }
    this.messageLength += piece.length
    if (!frameDone) return false
    this.state = State.INFO
    if (messageDone) {
      // Defined: a finished message with no pieces kept was delivered above.
      const pieces = this.fragments!
      this.fragments = undefined
      let message: Buffer
      try {
        message = pieces.length === 1 ? pieces[0] : Buffer.concat(pieces, this.messageLength)
      } catch (error) {
        return this.noMemory(error)
      }
      this.deliver(message, false)
    }
    return !this.stopped
  }

  /** Joins the last `JOIN_RUN` pieces into one when they are small (see JOIN_RUN). */
  private joinRun (fragments: Buffer[]): void {
    const from = this.rawFrom
    let bytes = 0
    for (let i = from; i < fragments.length; i++) bytes += fragments[i].length
    if (bytes <= JOIN_RUN * SMALL_PIECE) {
      const joined = Buffer.allocUnsafe(bytes)
      let at = 0
      for (let i = from; i < fragments.length; i++) {
        joined.set(fragments[i], at)
        at += fragments[i].length
      }
      fragments.length = from
      fragments.push(joined)
    }
    this.rawFrom = fragments.length
  }

  private readControlPayload (): boolean {
    if (this.buffered < this.payloadLength) return false
    const payload = this.payloadLength === 0 ? EMPTY : this.consume(this.payloadLength, this.masked)
    this.state = State.INFO
    if (this.opcode === Opcode.PING) this.handler.onPing(payload)
    else if (this.opcode === Opcode.PONG) this.handler.onPong(payload)
    else return this.readClose(payload)
    return !this.stopped
  }

  private readClose (payload: Buffer): boolean {
    if (payload.length === 1) return this.fail(ErrorCodes.INVALID_CLOSE_PAYLOAD, 'close frame with a one-byte payload', 1002)
    let code = 1005
    let reason: Buffer = EMPTY
    if (payload.length >= 2) {
      code = payload.readUInt16BE(0)
      if (!isValidCloseCode(code)) return this.fail(ErrorCodes.INVALID_CLOSE_CODE, `invalid close code ${code}`, 1002)
      reason = payload.subarray(2)
      // §5.5.1: the reason "is not guaranteed to be human readable" but
      // "the data is UTF-8-encoded"; invalid UTF-8 fails the connection.
      if (!isValidUtf8(reason)) return this.fail(ErrorCodes.INVALID_UTF8, 'invalid UTF-8 in the close reason', 1007)
    }
    this.stop()
    this.handler.onClose(code, reason)
    return false
  }

  private deliver (data: Buffer, lent: boolean): void {
    const isBinary = this.messageOpcode === Opcode.BINARY
    this.messageOpcode = 0
    this.messageLength = 0
    this.fragmentCount = 0
    this.utf8State = UTF8_ACCEPT
    this.handler.onMessage(data, isBinary, lent)
  }

  /**
   * Whether the frame being read may be delivered in lent memory: a whole
   * message (one frame, FIN set; fragments are joined into memory of their
   * own) of a kind its owner is done with once handled.
   */
  private lendsFrame (): boolean {
    if (!this.fin || this.fragments !== undefined) return false
    return this.messageOpcode === Opcode.BINARY ? this.limits.lendBinary === true : this.limits.lendText === true
  }

  /** The buffer a large frame that spans reads is assembled in: lent when `lendsFrame`, else its own. */
  private startFrameBuffer (): Buffer | undefined {
    const lent = this.frameBufferLent = this.lendsFrame()
    try {
      return (this.frameBuffer = lent ? lend(this.payloadLength) : Buffer.allocUnsafe(this.payloadLength))
    } catch (error) {
      this.noMemory(error)
      return undefined
    }
  }

  /**
   * A message's memory could not be had (gigabytes under a large
   * `maxPayload`): that fails this connection with 1009 instead of
   * throwing out of the socket's read, which would take the process down.
   */
  private noMemory (error: unknown): false {
    if (!(error instanceof RangeError)) throw error
    return this.fail(ErrorCodes.MAX_PAYLOAD, `no memory for a message of ${this.messageLength + this.payloadLength} bytes`, 1009)
  }

  private fail (code: Parameters<typeof wsError>[0], message: string, closeCode: number): false {
    this.stop()
    this.handler.onProtocolError(wsError(code, message, closeCode))
    return false
  }

  // ---------------------------------------------------------------- input

  /**
   * Makes `n` (≤ 14) header bytes contiguous and returns their index in
   * `this.view`: the current chunk when it holds them all, else SCRATCH.
   */
  private take (n: number): number {
    const head = this.chunks[0]
    const start = this.offset
    const available = head.length - start
    if (available >= n) {
      if (available === n) {
        this.chunks.shift()
        this.offset = 0
      } else {
        this.offset += n
      }
      this.buffered -= n
      this.view = head
      return start
    }
    this.copyInto(SCRATCH, n)
    this.view = SCRATCH
    return 0
  }

  /**
   * Removes `n` payload bytes from the input as one Buffer (a view when one
   * chunk holds them); with `unmask`, unmasked (they are the payload from
   * `payloadRead` on).
   */
  private consume (n: number, unmask: boolean): Buffer {
    const head = this.chunks[0]
    const available = head.length - this.offset
    if (n <= available) {
      let out: Buffer
      if (head === this.volatileChunk) {
        // The read buffer is reused after this write: the payload gets
        // memory of its own, lent when the owner is done with it once handled.
        const lent = this.consumedLent = this.opcode < Opcode.CLOSE && n === this.payloadLength && this.lendsFrame()
        out = lent ? lend(n) : Buffer.allocUnsafe(n)
        if (unmask) copyMasked(head, this.offset, this.offset + n, out, 0, this.maskKey, this.payloadRead)
        else head.copy(out, 0, this.offset, this.offset + n)
      } else {
        out = this.offset === 0 && n === head.length ? head : head.subarray(this.offset, this.offset + n)
        if (unmask) applyMaskWord(out, this.maskKey, this.payloadRead)
      }
      if (n === available) {
        this.chunks.shift()
        this.offset = 0
      } else {
        this.offset += n
      }
      this.buffered -= n
      return out
    }
    const out = Buffer.allocUnsafe(n)
    this.copyInto(out, n, 0, unmask)
    return out
  }

  /**
   * Moves `n` bytes of input into `target` at `targetStart`; with `unmask`,
   * they are unmasked on the way (they are the payload from `payloadRead` on).
   */
  private copyInto (target: Buffer, n: number, targetStart = 0, unmask = false): void {
    let written = 0
    while (written < n) {
      const head = this.chunks[0]
      const available = head.length - this.offset
      const count = available < n - written ? available : n - written
      if (unmask) copyMasked(head, this.offset, this.offset + count, target, targetStart + written, this.maskKey, this.payloadRead + written)
      else head.copy(target, targetStart + written, this.offset, this.offset + count)
      written += count
      if (count === available) {
        this.chunks.shift()
        this.offset = 0
      } else {
        this.offset += count
      }
    }
    this.buffered -= n
  }
}

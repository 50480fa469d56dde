/**
 * A WebSocket connection after the opening handshake: ready state, the
 * closing handshake, ping/pong, backpressure. It owns the TCP socket, a
 * `FrameParser` (whose handler it is) and a `FrameWriter`, and reports to
 * its owner (a route) through the `ConnectionHandler` interface.
 */
import { Buffer, kMaxLength } from 'node:buffer'
import type { Socket } from 'node:net'
import { CloseCodes, MAX_CLOSE_REASON_BYTES, isValidCloseCode, type CloseCode } from './close-codes.js'
import { ErrorCodes, WebSocketError, wsError, wsRangeError, wsTypeError } from './errors.js'
import { FrameParser, Opcode, type FrameHandler } from './parser.js'
import { watchIdle, type HeartbeatGroup, type HeartbeatMember } from './heartbeat.js'
import { readDirectly, resumeDirectReads } from './direct-read.js'
import { giveBack } from './loans.js'
import { FrameWriter } from './writer.js'

export const ReadyState = {
  CONNECTING: 0,
  OPEN: 1,
  CLOSING: 2,
  CLOSED: 3,
} as const
export type ReadyState = (typeof ReadyState)[keyof typeof ReadyState]

/** What `send()` did with a message (the numbers uWebSockets uses). */
export const SendStatus = {
  /** Queued behind earlier data: the socket is over its high-water mark; wait for `drain`. */
  BUFFERED: 0,
  /** Handed to the socket, which is under its high-water mark. */
  SENT: 1,
  /** Not sent: the connection is closing, or `maxBackpressure` was reached with the `drop` policy. */
  DROPPED: 2,
} as const
export type SendStatus = (typeof SendStatus)[keyof typeof SendStatus]

export type BackpressurePolicy = 'close' | 'drop'

export interface ConnectionOptions {
  /** Largest incoming message in bytes (default 1 MiB). */
  maxPayload?: number
  /** Most frames per incoming message (default 65536). */
  maxFragments?: number
  /**
   * How long to wait for the peer's close frame before destroying the socket,
   * in ms (default 5000). Once both close frames are exchanged the socket is
   * closed at once; only when our last bytes are still queued, or after a
   * protocol error, is TCP half-closed and this also the wait for the peer's
   * FIN.
   */
  closeTimeout?: number
  /** Bytes buffered for the peer above which `backpressurePolicy` applies (default Infinity). */
  maxBackpressure?: number
  /** `close`: close a slow consumer with 1008; `drop`: drop new messages and count them (default `close`). */
  backpressurePolicy?: BackpressurePolicy
  /**
   * Seconds without any inbound bytes before the peer counts as gone (default
   * 120; 0 turns the heartbeat off; a frame still arriving counts, since the
   * pong cannot overtake it). A ping goes out after half of it; a peer
   * that stays silent for the rest is dropped (its `close` reports 1006, its
   * `error` WS_ERR_IDLE_TIMEOUT).
   */
  idleTimeout?: number
  /**
   * Read a TCP socket's bytes into one shared buffer (Node's `onread` mode)
   * instead of through 'data' events (default true): no Buffer per read,
   * less CPU per message at every size measured (the README's Direct reads
   * section). Sockets that cannot (TLS, in-process streams, a Node without
   * the mode) use 'data' events either way; `false` keeps 'data' events for
   * all, for code that listens to the raw socket itself.
   */
  directReads?: boolean
  /**
   * Whether the handler is done with a text (`lendText`) or binary
   * (`lendBinary`) message once its `onMessage` has returned (default
   * false): a whole message (one frame) that needs memory of its own, a
   * frame of 16 KiB or more that spans reads or one copied out of the shared
   * read buffer of direct reads, is then delivered in lent memory
   * (`onMessage`'s `lent`), which the handler hands back with
   * `giveBack(data)`, once, when done, and the next message reuses
   * (loans.ts). A smaller frame that spans reads, and a fragmented message,
   * are joined into memory of their own and not lent.
   */
  lendText?: boolean
  lendBinary?: boolean
  /** The negotiated subprotocol ('' for none). */
  protocol?: string
}

export interface ConnectionHandler {
  /** A message; with `lent`, `data` is lent memory, given back with `giveBack(data)` (`lendText`, `lendBinary`). */
  onMessage (connection: Connection, data: Buffer, isBinary: boolean, lent: boolean): void
  /**
   * Called once, when the TCP connection is gone, and not before `start()`
   * (a connection gone earlier is reported by `start()`). `code`: the
   * peer's, 1006 when no close frame was received, or the one a protocol
   * error failed the connection with.
   */
  onClose (connection: Connection, code: number, reason: Buffer): void
  /** Called once, at once, when the TCP connection is gone, before `start()` too; `onClose` follows. */
  onGone? (connection: Connection): void
  onPing? (connection: Connection, data: Buffer): void
  onPong? (connection: Connection, data: Buffer): void
  onDrain? (connection: Connection): void
  /** Protocol errors, socket errors and close timeouts. */
  onError? (connection: Connection, error: Error): void
}

export interface SendOptions {
  /** Send as a binary frame. Default: binary for Buffers, text for strings. */
  binary?: boolean
}

/** The empty payload and reason: one Buffer for every connection (a Buffer of its own costs about 180 bytes). */
const EMPTY = Buffer.alloc(0)

export const DEFAULT_MAX_PAYLOAD = 1024 * 1024
/**
 * A message is held in one Buffer: 4 GiB at most (Node 20's largest; later
 * Nodes allow more, but no single message should), whatever `maxPayload`
 * says, `Infinity` included. A longer one is refused with 1009 on its header.
 */
export const MAX_MESSAGE_BYTES = Math.min(kMaxLength, 2 ** 32)
export const DEFAULT_MAX_FRAGMENTS = 65536
export const DEFAULT_CLOSE_TIMEOUT = 5000
export const DEFAULT_IDLE_TIMEOUT = 120

/**
 * The limits of `ConnectionOptions` with their defaults applied. Resolved
 * once per options object and shared by every connection made with it (a
 * route's connections all are), rather than copied into each: five fields
 * less per connection. An options object is read when its first connection
 * is made; changing it afterwards changes nothing.
 */
interface ConnectionSettings {
  readonly maxPayload: number
  readonly maxFragments: number
  readonly closeTimeout: number
  readonly maxBackpressure: number
  readonly backpressurePolicy: BackpressurePolicy
  readonly idleTimeoutMs: number
  readonly directReads: boolean
  readonly lendText: boolean
  readonly lendBinary: boolean
}

const settingsByOptions = new WeakMap<ConnectionOptions, ConnectionSettings>()

function settingsOf (options: ConnectionOptions): ConnectionSettings {
  let settings = settingsByOptions.get(options)
  if (settings === undefined) {
    settings = {
      maxPayload: Math.min(options.maxPayload ?? DEFAULT_MAX_PAYLOAD, MAX_MESSAGE_BYTES),
      maxFragments: options.maxFragments ?? DEFAULT_MAX_FRAGMENTS,
      closeTimeout: options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT,
      maxBackpressure: options.maxBackpressure ?? Infinity,
      backpressurePolicy: options.backpressurePolicy ?? 'close',
      idleTimeoutMs: (options.idleTimeout ?? DEFAULT_IDLE_TIMEOUT) * 1000,
      directReads: options.directReads ?? true,
      lendText: options.lendText ?? false,
      lendBinary: options.lendBinary ?? false,
    }
    settingsByOptions.set(options, settings)
  }
  return settings
}

const kConnection = Symbol('wsroutes.connection')
type OwnedSocket = Socket & { [kConnection]?: Connection }

/**
 * Parses one socket read. Every frame the handlers send meanwhile leaves in
 * one write at the end of it (FrameWriter's read batch).
 */
function parseRead (connection: Connection, chunk: Buffer, volatile: boolean): void {
  connection.activity = true
  const writer = connection.writer
  writer.beginBatch()
  try {
    connection.parser.write(chunk, volatile)
  } finally {
    writer.endBatch()
  }
}
function socketOnData (this: OwnedSocket, chunk: Buffer): void {
  parseRead(this[kConnection]!, chunk, false)
}
/**
 * The view of the shared read buffer that the last direct read was parsed
 * from: a read of the same length reuses it rather than making another
 * Buffer object. The parser keeps neither the bytes of a volatile chunk nor
 * the chunk itself (`FrameParser.write`).
 */
let readView: Buffer | undefined

function socketOnDirectRead (this: OwnedSocket, length: number, buffer: Buffer): boolean {
  const connection = this[kConnection]!
  let view = readView
  if (view === undefined || view.length !== length || view.buffer !== buffer.buffer || view.byteOffset !== buffer.byteOffset) {
    view = readView = buffer.subarray(0, length)
  }
  parseRead(connection, view, true)
  // False makes Node stop the handle: TCP then pushes back on the peer.
  return !connection.readingPaused
}
function socketOnEnd (this: OwnedSocket): void {
  // The peer closed its half: close ours too (HTTP server sockets allow
  // half-open), unless the closing handshake already did.
  if (!this.writableEnded) this.end()
  // The socket closes once what we queued is out, and a peer that has left
  // may never read it: `closeTimeout` bounds that wait too, as long as no
  // progress is made (a peer that half-closed and still reads goes on).
  const connection = this[kConnection]!
  if (connection.closeTimer === undefined && connection.readyState !== ReadyState.CLOSED) {
    connection.closeTimer = setTimeout(queueAfterFinExpired, connection.closeTimeout, connection, unsentBytes(this))
  }
}
/**
 * What the kernel has not taken yet: the stream's queue, plus what libuv
 * still holds of the write in progress (`writeQueueSize`, which shrinks as
 * the kernel takes it, where the stream counts a write whole until it is
 * done; one tick's corked frames are a single write).
 */
function unsentBytes (socket: OwnedSocket): number {
  const handle = (socket as { _handle?: { writeQueueSize?: number } | null })._handle
  return socket.writableLength + (handle?.writeQueueSize ?? 0)
}
function queueAfterFinExpired (connection: Connection, queuedBefore: number): void {
  const queued = unsentBytes(connection.socket)
  if (queued > 0 && queued < queuedBefore) {
    connection.closeTimer = setTimeout(queueAfterFinExpired, connection.closeTimeout, connection, queued)
    return
  }
  closeTimeoutExpired(connection)
}
function socketOnClose (this: OwnedSocket): void {
  this[kConnection]!.finish()
}
function socketOnError (this: OwnedSocket, error: Error): void {
  const connection = this[kConnection]!
  this.destroy()
  connection.reportError(error)
}
function socketOnDrain (this: OwnedSocket): void {
  const connection = this[kConnection]!
  // Before `start()` (an async `open` still running): the owner hears of it
  // once `open` is done, as of everything else.
  if (connection.phase !== Phase.STARTED) {
    connection.phase = Phase.DRAINED_BEFORE_START
    return
  }
  // The kernel took what was queued: the peer is reading. A peer busy with
  // a long download may send nothing, not even the pong, which waits behind
  // the download in its receive buffer: for the heartbeat, it is alive.
  connection.activity = true
  if (connection.pendingPong !== undefined) connection.sendPendingPong()
  connection.handler.onDrain?.(connection)
}
function closeTimeoutExpired (connection: Connection): void {
  connection.closeTimer = undefined
  connection.reportError(wsError(ErrorCodes.CLOSE_TIMEOUT, 'the peer did not complete the closing handshake in time'))
  connection.socket.destroy()
}

/**
 * A message dropped by the `drop` policy owes its producer a 'drain' once
 * the peer has caught up. Node emits 'drain' only after a write that found
 * the buffer over its high-water mark, and a `maxBackpressure` below that
 * mark drops messages before any such write: the stream is told to emit it
 * all the same, when its queue (never empty here) has gone out.
 */
function oweDrain (socket: Socket): void {
  const state = (socket as { _writableState?: { needDrain: boolean } })._writableState
  if (state !== undefined && !state.needDrain) state.needDrain = true
}

function toBuffer (data: ArrayBufferView | ArrayBuffer): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  return Buffer.from(data)
}

/** Where a connection is in its start: its owner hears nothing (but errors) before `start()`. */
const enum Phase {
  NOT_STARTED,
  /** Not started, and the socket drained: `start()` reports the drain. */
  DRAINED_BEFORE_START,
  STARTED,
}

export class Connection implements FrameHandler, HeartbeatMember {
  readonly socket: OwnedSocket
  /** @internal */
  readonly parser: FrameParser
  /** @internal */
  readonly handler: ConnectionHandler
  /** @internal */
  readonly writer: FrameWriter
  private readonly settings: ConnectionSettings
  /** Whether this socket is read directly (`directReads`) rather than through 'data' events. */
  readingDirectly = false
  private heartbeat: HeartbeatGroup | undefined
  /** @internal Inbound bytes since the heartbeat's last tick. */
  activity = false
  /** @internal */
  idleTicks = 0
  /** @internal This connection's place in its heartbeat group. */
  heartbeatSlot = -1
  /** @internal Reading is paused by the owner: silence is ours, not the peer's. */
  readingPaused = false
  /** @internal */
  phase: Phase = Phase.NOT_STARTED

  readyState: ReadyState = ReadyState.OPEN
  /** The negotiated subprotocol, '' when none. */
  readonly protocol: string
  /** Messages dropped by the `drop` backpressure policy. */
  droppedMessages = 0
  /**
   * Whether frames may still be written: open, and our side of TCP not
   * ended (the peer's FIN ends it before any close frame, and a write then
   * would only raise a write-after-end error).
   */
  private get canWrite (): boolean {
    return this.readyState === ReadyState.OPEN && this.socket.writable
  }

  /** @internal */
  get closeTimeout (): number {
    return this.settings.closeTimeout
  }

  /** @internal The latest ping's payload, when its pong waits for 'drain' (`onPing`). */
  pendingPong: Buffer | undefined

  private closeFrameSent = false
  private closeFrameReceived = false
  /** The connection was failed (§7.1.7): close TCP right after our close frame. */
  private failed = false
  private closeCode: number = CloseCodes.ABNORMAL
  private closeReason: Buffer = EMPTY
  /** @internal */
  closeTimer: NodeJS.Timeout | undefined

  /**
   * `protocol` is the negotiated subprotocol (default `options.protocol`),
   * given apart so that connections can share one options object and its
   * resolved limits.
   */
  constructor (socket: Socket, handler: ConnectionHandler, options: ConnectionOptions = {}, protocol = options.protocol ?? '') {
    this.socket = socket
    this.handler = handler
    this.protocol = protocol
    const settings = this.settings = settingsOf(options)
    this.parser = new FrameParser(this, settings)
    this.writer = new FrameWriter(socket)
    this.socket[kConnection] = this
    // Closing, errors and drains are watched from the start, so a peer that
    // leaves before `start()` (during an async `open`) is still reported
    // once, and a drain owed to a send in `open` is not lost. That includes
    // 'end': a FIN with nothing buffered before it is emitted at once,
    // unread, and a half-open server socket would otherwise never close. The
    // close and the drain reach the owner at `start()`, after its `open`
    // logic; errors at once.
    socket.on('close', socketOnClose)
    socket.on('error', socketOnError)
    socket.on('end', socketOnEnd)
    socket.on('drain', socketOnDrain)
  }

  /**
   * Starts reading frames: `head` holds bytes that arrived with the upgrade
   * request. Call it after the owner has run its `open` logic, so no message
   * overtakes it. A close or a drain that came before is reported now.
   */
  start (head?: Buffer): void {
    const socket = this.socket
    const drained = this.phase === Phase.DRAINED_BEFORE_START
    if (this.phase === Phase.STARTED) return
    this.phase = Phase.STARTED
    if (this.readyState === ReadyState.CLOSED) {
      // The socket closed before the owner was done opening: `finish()` held
      // the close for now.
      this.handler.onClose(this, this.closeCode, this.closeReason)
      return
    }
    if (drained) this.handler.onDrain?.(this)
    // A net.Socket has both; a plain Duplex (the in-process pair of
    // `injectWS`) has neither and needs neither. Once per connection.
    socket.setTimeout?.(0)
    socket.setNoDelay?.(true)
    // After a close frame or a protocol error the parser ignores its input,
    // but the socket is still read so the peer's FIN is seen.
    this.readingDirectly = this.settings.directReads && readDirectly(socket, socketOnDirectRead)
    if (!this.readingDirectly) socket.on('data', socketOnData)
    const idleTimeoutMs = this.settings.idleTimeoutMs
    if (idleTimeoutMs > 0) this.heartbeat = watchIdle(this, idleTimeoutMs)
    if (head !== undefined && head.length > 0) this.parser.write(head)
    if (this.readingDirectly) {
      // Bytes that arrived while the upgrade was being decided sit in the
      // stream's buffer, ahead of anything read directly from now on.
      let early: Buffer | null
      while ((early = socket.read() as Buffer | null) !== null) this.parser.write(early)
      if (!this.readingPaused) resumeDirectReads(socket)
    }
    if (socket.destroyed) this.finish()
  }

  /** Bytes written but not yet handed to the kernel. */
  get bufferedAmount (): number {
    return this.writer.bufferedAmount
  }

  /**
   * Sends a message: a string as a text frame, binary data as a binary frame
   * (unless `options.binary` says otherwise).
   */
  send (data: string | Buffer | ArrayBufferView | ArrayBuffer, options?: SendOptions): SendStatus {
    if (!this.canWrite) return SendStatus.DROPPED
    const settings = this.settings
    // Over the limit counting this tick's own frames, which are not yet
    // offered to the kernel: offered now, the policy applies only to what the
    // peer has not taken, so one burst to a reader that keeps up is no
    // slow consumer.
    if (this.writer.bufferedAmount > settings.maxBackpressure && this.writer.unsentAfterFlush() > settings.maxBackpressure) {
      if (settings.backpressurePolicy === 'drop') {
        this.droppedMessages++
        oweDrain(this.socket)
        return SendStatus.DROPPED
      }
      this.close(CloseCodes.POLICY_VIOLATION, 'backpressure limit reached')
      return SendStatus.DROPPED
    }
    let binary: boolean
    let payload: Buffer | string
    if (typeof data === 'string') {
      binary = options?.binary === true
      payload = binary ? Buffer.from(data) : data
    } else {
      binary = options?.binary !== false
      payload = toBuffer(data)
    }
    return this.writer.frame(binary ? Opcode.BINARY : Opcode.TEXT, payload) ? SendStatus.SENT : SendStatus.BUFFERED
  }

  ping (data: string | ArrayBufferView | ArrayBuffer = EMPTY): SendStatus {
    return this.control(Opcode.PING, data)
  }

  pong (data: string | ArrayBufferView | ArrayBuffer = EMPTY): SendStatus {
    return this.control(Opcode.PONG, data)
  }

  private control (opcode: number, data: string | ArrayBufferView | ArrayBuffer): SendStatus {
    const payload = typeof data === 'string' ? Buffer.from(data) : toBuffer(data)
    if (payload.length > 125) throw wsRangeError(ErrorCodes.CONTROL_PAYLOAD_TOO_LONG, 'control frame payloads are limited to 125 bytes')
    // Like send(): once our side has ended (the peer's FIN ends it before any
    // close), a write would only raise a write-after-end error.
    if (!this.canWrite) return SendStatus.DROPPED
    return this.writer.frame(opcode, payload) ? SendStatus.SENT : SendStatus.BUFFERED
  }

  /**
   * Starts the closing handshake. `code` must be one an endpoint may send
   * (`CloseCode`); `reason` at most 123 bytes of UTF-8. The socket is destroyed
   * if the peer does not answer within `closeTimeout`.
   */
  close (code?: CloseCode, reason?: string): void {
    if (code !== undefined && !isValidCloseCode(code)) {
      throw wsTypeError(ErrorCodes.INVALID_CLOSE_CODE, `invalid close code ${String(code)}: use 1000-1003, 1007-1014 or 3000-4999`)
    }
    const reasonBytes = reason === undefined || reason === '' ? EMPTY : Buffer.from(reason)
    if (reasonBytes.length > MAX_CLOSE_REASON_BYTES) {
      throw wsRangeError(ErrorCodes.CLOSE_REASON_TOO_LONG, `close reason is ${reasonBytes.length} bytes of UTF-8; the limit is ${MAX_CLOSE_REASON_BYTES}`)
    }
    if (reasonBytes.length > 0 && code === undefined) {
      throw wsTypeError(ErrorCodes.INVALID_CLOSE_CODE, 'a close reason needs a close code')
    }
    this.sendClose(code ?? 0, reasonBytes)
  }

  /** Destroys the TCP connection at once, without a closing handshake. */
  terminate (): void {
    if (this.readyState === ReadyState.CLOSED) return
    this.readyState = ReadyState.CLOSING
    this.socket.destroy()
  }

  /** Sends our close frame once; after both close frames, the server closes TCP first (§7.1.1). */
  private sendClose (code: number, reason: Buffer): void {
    if (this.readyState === ReadyState.CLOSED) return
    if (!this.closeFrameSent) {
      this.closeFrameSent = true
      this.readyState = ReadyState.CLOSING
      if (this.socket.writable) this.writer.close(code, reason)
    }
    if (this.closeFrameReceived || this.failed) {
      // The close frame may still be staged in this read's batch.
      this.writer.flush()
      if (this.closeFrameReceived && this.socket.writableLength === 0) {
        // §5.5.1: "After both sending and receiving a Close message, an
        // endpoint considers the WebSocket connection closed and MUST close
        // the underlying TCP connection." Everything we wrote is with the
        // kernel, which sends it ahead of the FIN; the peer has nothing left
        // to say, so there is no half-closed wait for its FIN.
        this.socket.destroy()
        return
      }
      // A failed connection's peer may still be sending: a full close would
      // answer that with a reset, which can discard our close frame before
      // the peer reads it. Half-close, and read until its FIN.
      this.socket.end()
    }
    // The peer's answer must be read. A socket paused for an async handler
    // reads on (whatever messages come before the answer are dropped, as in
    // CLOSING), or the answer would wait behind the handler and the closing
    // handshake time out, the peer blamed for our pause.
    if (this.readingPaused) this.resumeReading()
    if (this.closeTimer === undefined) this.closeTimer = setTimeout(closeTimeoutExpired, this.settings.closeTimeout, this)
  }

  /** @internal The socket is gone: report the close once. */
  finish (): void {
    if (this.readyState === ReadyState.CLOSED) return
    this.readyState = ReadyState.CLOSED
    if (this.closeTimer !== undefined) {
      clearTimeout(this.closeTimer)
      this.closeTimer = undefined
    }
    this.parser.stop()
    if (this.heartbeat !== undefined) {
      this.heartbeat.remove(this)
      this.heartbeat = undefined
    }
    this.handler.onGone?.(this)
    // Before `start()`, the owner's `open` is still running: `start()`
    // reports the close once it is done, so that a handler's `close` never
    // comes before its `open` has finished.
    if (this.phase === Phase.STARTED) this.handler.onClose(this, this.closeCode, this.closeReason)
  }

  /**
   * Stops parsing after the current message, and reading from the socket, so
   * TCP pushes back on the peer while the owner awaits a handler.
   */
  pauseReading (): void {
    this.readingPaused = true
    this.parser.pause()
    // Direct reads stop when their callback returns false, at the next read.
    if (!this.readingDirectly) this.socket.pause()
  }

  resumeReading (): void {
    this.readingPaused = false
    if (this.readyState === ReadyState.CLOSED) return
    // The heartbeat counts from here: what the peer sent meanwhile is unread.
    this.activity = true
    if (this.readingDirectly) resumeDirectReads(this.socket)
    else this.socket.resume()
    this.parser.resume()
  }

  /** @internal Half the idle timeout passed without a frame. */
  heartbeatPing (): void {
    if (this.canWrite) this.writer.frame(Opcode.PING, EMPTY)
  }

  /** @internal The idle timeout passed, the ping unanswered. */
  heartbeatExpired (): void {
    if (this.readyState === ReadyState.CLOSED) return
    // Not reading (a handler is awaited): the peer's pongs wait unread.
    if (this.readingPaused) {
      this.idleTicks = 0
      return
    }
    this.reportError(wsError(ErrorCodes.IDLE_TIMEOUT, `no frame from the peer for ${this.settings.idleTimeoutMs / 1000} s, ping unanswered`))
    this.terminate()
  }

  /** @internal */
  reportError (error: Error): void {
    this.handler.onError?.(this, error)
  }

  // ------------------------------------------------------ FrameHandler

  /** @internal */
  onMessage (data: Buffer, isBinary: boolean, lent: boolean): void {
    // Once either side has started closing, no more messages are delivered.
    if (this.readyState !== ReadyState.OPEN) {
      if (lent) giveBack(data)
      return
    }
    this.handler.onMessage(this, data, isBinary, lent)
  }

  /** @internal */
  onPing (data: Buffer): void {
    // §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong
    // frame in response, unless it already received a Close frame."
    // Not after our side has ended (the peer's FIN came while an async
    // handler held the read, and the ping was parsed after it).
    if (this.canWrite) {
      // A peer that pings without reading would grow our queue of pongs
      // without bound (the backpressure policy governs messages only). §5.5.3:
      // "If an endpoint receives a Ping frame and has not yet sent Pong
      // frame(s) in response to previous Ping frame(s), the endpoint MAY
      // elect to send a Pong frame for only the most recently processed Ping
      // frame." So above the socket's high-water mark only the latest ping
      // is kept (copied: it may lie in the read buffer), and answered at
      // 'drain'.
      if (this.writer.bufferedAmount < this.socket.writableHighWaterMark) this.writer.frame(Opcode.PONG, data)
      else this.pendingPong = Buffer.from(data)
    }
    this.handler.onPing?.(this, data)
  }

  /** @internal The socket drained: the pong of the latest ping left waiting goes out. */
  sendPendingPong (): void {
    const payload = this.pendingPong!
    this.pendingPong = undefined
    if (this.canWrite) this.writer.frame(Opcode.PONG, payload)
  }

  /** @internal */
  onPong (data: Buffer): void {
    this.handler.onPong?.(this, data)
  }

  /** @internal */
  onClose (code: number, reason: Buffer): void {
    this.closeFrameReceived = true
    this.closeCode = code
    this.closeReason = reason
    // §5.5.1: "the endpoint MUST send a Close frame in response. (When sending
    // a Close frame in response, the endpoint typically echos the status code
    // it received.)" A close without a code is answered with 1000.
    this.sendClose(code === CloseCodes.NO_STATUS ? CloseCodes.NORMAL : code, EMPTY)
  }

  /** @internal */
  onProtocolError (error: WebSocketError): void {
    // §7.1.7 _Fail the WebSocket Connection_: send the close frame, then
    // close TCP without waiting; no further data is read.
    this.failed = true
    this.closeCode = error.closeCode
    this.reportError(error)
    this.sendClose(error.closeCode, EMPTY)
  }
}

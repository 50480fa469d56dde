/**
 * In-process WebSocket connections for tests, framework-neutral: `injectWS`
 * of the Fastify plugin and of the Express adapter are both built on
 * `injectUpgrade` here.
 *
 * No port is opened. A pair of connected Duplex streams stands in for the
 * TCP connection; an `IncomingMessage` with a valid opening handshake is
 * built on the server's end and handed to the adapter's own upgrade
 * listener, so routing, hooks, middleware and schemas run exactly as for a
 * real upgrade, and a refusal is a real HTTP response. The client's end is
 * an `InjectedSocket`, which speaks RFC 6455 as a client: it checks the 101,
 * masks its frames (`MaskingFrameWriter`) and reads the server's unmasked
 * frames with the engine's own parser in its client role.
 */
import { AssertionError } from 'node:assert'
import { randomBytes } from 'node:crypto'
import { IncomingMessage, STATUS_CODES, type IncomingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import { Duplex } from 'node:stream'
import { CloseCodes, isValidCloseCode, MAX_CLOSE_REASON_BYTES, type CloseCode } from '../engine/close-codes.js'
import { ReadyState, type SendOptions } from '../engine/connection.js'
import { ErrorCodes, wsError, wsRangeError, wsTypeError, type WebSocketError } from '../engine/errors.js'
import { acceptKey, headerHasToken, parseProtocols } from '../engine/handshake.js'
import { FrameParser, Opcode, type FrameHandler } from '../engine/parser.js'
import { MaskingFrameWriter, kWritesCopy } from '../engine/writer.js'
import { MAX_TIMER_MS } from './options.js'
import type { RawData } from './types.js'

/** How long `injectWS` waits for the answer to its upgrade request, and `expect*()` for what they expect, by default (ms). */
export const DEFAULT_INJECT_TIMEOUT = 5000

export interface InjectWSOptions {
  /**
   * Request headers, added to (and overriding) the handshake's own: `host`,
   * `upgrade`, `connection`, `sec-websocket-key`, `sec-websocket-version`.
   * `undefined` removes one, to test a refused handshake.
   */
  headers?: Record<string, string | number | readonly string[] | undefined>
  /** Subprotocols to offer (`Sec-WebSocket-Protocol`), in order of preference. */
  protocols?: string | readonly string[]
  /** The query string, appended to the path's own. */
  query?: string | URLSearchParams | Record<string, string | number | boolean | ReadonlyArray<string | number | boolean>>
  /**
   * Milliseconds to wait for the server's answer to the upgrade request;
   * also the default wait of every `expect*()` and of the closing handshake.
   * Default 5000; `0` or `Infinity`: no deadline (while debugging a test).
   */
  timeout?: number
}

/** The upgrade listener of an adapter: what the HTTP server's `upgrade` event calls. */
export type UpgradeListener = (request: IncomingMessage, socket: Duplex, head: Buffer) => void

/**
 * The upgrade was answered with something other than 101: a hook's 401, a
 * 404, the handshake check's 400… `statusCode`, `headers` and `body` are
 * the HTTP response.
 */
export class UpgradeRefusedError extends Error {
  override name = 'UpgradeRefusedError'
  readonly code = ErrorCodes.INVALID_HANDSHAKE
  readonly statusCode: number
  readonly headers: IncomingHttpHeaders
  /** The response body, decoded as UTF-8. */
  readonly body: string

  constructor (statusCode: number, headers: IncomingHttpHeaders, body: string) {
    super(`the upgrade was refused with ${statusCode} ${STATUS_CODES[statusCode] ?? ''}`.trimEnd())
    this.statusCode = statusCode
    this.headers = headers
    this.body = body
  }
}

const EMPTY = Buffer.alloc(0)

// ------------------------------------------------------------- duplex pair

/**
 * One end of an in-memory connection. What is written to one end is read
 * from the other on a later turn of the event loop (as from a socket), as a
 * copy (so a writer may reuse its buffer), in order. `end()` is a FIN: the
 * other end reads EOF after the data. `destroy()` sends the FIN as well, and
 * drops what the other end still wants to write, as a closed socket would.
 * A write the other end has no room for waits until it reads: backpressure
 * works as over TCP.
 *
 * It is a plain Duplex with the address fields of a socket (Fastify's
 * `request.ip` and the loggers read them), not a `net.Socket`: no
 * `setNoDelay`, `setTimeout` or `setKeepAlive`.
 */
export class PipeEnd extends Duplex {
  /** The other end. */
  peer!: PipeEnd
  /** Its writes copy (`_write`): the frame writer may reuse what it wrote from. */
  readonly [kWritesCopy] = true
  readonly remoteAddress = '127.0.0.1'
  readonly remoteFamily = 'IPv4'
  readonly remotePort: number
  readonly localAddress = '127.0.0.1'
  readonly localPort: number
  /** @internal A write waiting for the peer to read. */
  blocked: (() => void) | undefined
  /** @internal The FIN went out (end or destroy). */
  finSent = false

  constructor (localPort: number, remotePort: number) {
    super({ allowHalfOpen: true })
    this.localPort = localPort
    this.remotePort = remotePort
  }

  override _read (): void {
    const callback = this.peer.blocked
    if (callback !== undefined) {
      this.peer.blocked = undefined
      callback()
    }
  }

  override _write (chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    setImmediate(deliver, this, Buffer.from(chunk), callback)
  }

  override _writev (chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    // A corked batch arrives as one read, as one writev would.
    const data = Buffer.concat(chunks.map(entry => entry.chunk))
    setImmediate(deliver, this, data, callback)
  }

  override _final (callback: (error?: Error | null) => void): void {
    sendFin(this)
    callback()
  }

  override _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    sendFin(this)
    // A write of the peer's waiting for us to read would wait forever.
    const waiting = this.peer.blocked
    if (waiting !== undefined) {
      this.peer.blocked = undefined
      waiting()
    }
    callback(error)
  }
}

function deliver (from: PipeEnd, data: Buffer, callback: () => void): void {
  const to = from.peer
  // To an end that is gone: dropped, as by TCP. A write already on its way
  // when its writer is destroyed still arrives, ahead of the FIN, as bytes
  // the kernel had taken do (`send(x); terminate()` delivers x).
  if (to.destroyed || to.readableEnded) {
    callback()
    return
  }
  if (to.push(data)) callback()
  else from.blocked = callback
}

function sendFin (from: PipeEnd): void {
  if (from.finSent) return
  from.finSent = true
  // After the data already on its way (setImmediate keeps the order).
  setImmediate(pushEof, from.peer)
}

function pushEof (to: PipeEnd): void {
  if (!to.destroyed) to.push(null)
}

let nextPort = 40000

/** Two connected ends: `[server, client]`. */
export function duplexPair (): [PipeEnd, PipeEnd] {
  const clientPort = nextPort
  nextPort = nextPort === 65535 ? 40000 : nextPort + 1
  const server = new PipeEnd(80, clientPort)
  const client = new PipeEnd(clientPort, 80)
  server.peer = client
  client.peer = server
  return [server, client]
}

// ---------------------------------------------------------------- request

function headerValue (value: string | number | readonly string[]): string | string[] {
  if (typeof value === 'number') return String(value)
  if (typeof value === 'string') return value
  return [...value]
}

/**
 * The upgrade request as Node's HTTP server would hand it to an `upgrade`
 * listener: `GET`, HTTP/1.1, lower-case `headers`, `rawHeaders`, on `socket`,
 * its (empty) body already ended.
 */
export function buildUpgradeRequest (socket: Duplex, path: string, options: InjectWSOptions, key: string): IncomingMessage {
  const request = new IncomingMessage(socket as Socket)
  request.method = 'GET'
  request.httpVersionMajor = 1
  request.httpVersionMinor = 1
  request.httpVersion = '1.1'
  // As a client sends it: percent-encoded (`/café 1` is `/caf%C3%A9%201`),
  // without a fragment. Prefixed, so that `//x` stays a path.
  const target = new URL(`http://localhost${path.startsWith('/') ? path : `/${path}`}`)
  request.url = withQuery(target.pathname + target.search, options.query)

  const defaults: Record<string, string> = {
    host: 'localhost',
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': key,
    'sec-websocket-version': '13',
  }
  const protocols = typeof options.protocols === 'string' ? [options.protocols] : options.protocols ?? []
  if (protocols.length > 0) defaults['sec-websocket-protocol'] = protocols.join(', ')
  const merged: Record<string, string | string[] | undefined> = { ...defaults }
  for (const name in options.headers) {
    const value = options.headers[name]
    merged[name.toLowerCase()] = value === undefined ? undefined : headerValue(value)
  }
  const headers: IncomingHttpHeaders = {}
  const rawHeaders: string[] = []
  for (const name in merged) {
    const value = merged[name]
    if (value === undefined) continue
    headers[name] = Array.isArray(value) ? foldHeader(name, value) : value
    for (const one of Array.isArray(value) ? value : [value]) rawHeaders.push(name, one)
  }
  request.headers = headers
  request.rawHeaders = rawHeaders
  ;(request as IncomingMessage & { upgrade: boolean }).upgrade = true
  request.complete = true
  // No body: reading the request ends at once, and never resumes the socket
  // (IncomingMessage's _read would, dropping early frames on the floor).
  request.push(null)
  return request
}

/** Headers of which Node's parser keeps the first value and drops repeats (`IncomingMessage`'s `matchKnownFields`). */
const SINGLE_VALUE_HEADERS = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host',
  'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards',
  'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent',
])

/** A repeated header as Node's HTTP parser gives it in `headers`. */
function foldHeader (name: string, values: string[]): string | string[] {
  if (name === 'set-cookie') return values
  if (SINGLE_VALUE_HEADERS.has(name)) return values[0]
  return values.join(name === 'cookie' ? '; ' : ', ')
}

function withQuery (path: string, query: InjectWSOptions['query']): string {
  if (query === undefined) return path
  let search: string
  if (typeof query === 'string') search = query.startsWith('?') ? query.slice(1) : query
  else if (query instanceof URLSearchParams) search = query.toString()
  else {
    const params = new URLSearchParams()
    for (const name in query) {
      const value = query[name]
      if (Array.isArray(value)) for (const one of value) params.append(name, String(one))
      else params.append(name, String(value))
    }
    search = params.toString()
  }
  if (search === '') return path
  return path + (path.includes('?') ? '&' : '?') + search
}

// ----------------------------------------------------------------- client

interface Waiter<T> {
  resolve (value: T): void
  reject (error: Error): void
  timer: NodeJS.Timeout | undefined
}

/** Values in arrival order, and the callers waiting for the next one. */
class Inbox<T> {
  private readonly values: T[] = []
  private readonly waiters: Array<Waiter<T>> = []
  private ended: (() => Error) | undefined

  push (value: T): void {
    const waiter = this.waiters.shift()
    if (waiter === undefined) {
      this.values.push(value)
      return
    }
    clearTimeout(waiter.timer)
    waiter.resolve(value)
  }

  /** No more values: waiting callers, and later ones once the values are taken, get `error()`. */
  end (error: () => Error): void {
    this.ended = error
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer)
      waiter.reject(error())
    }
  }

  next (timeout: number, what: string): Promise<T> {
    let ms: number
    try {
      ms = deadlineMs(timeout)
    } catch (error) {
      // A promise-returning call rejects rather than throws, as expectClose does.
      return Promise.reject(error)
    }
    if (this.values.length > 0) return Promise.resolve(this.values.shift()!)
    if (this.ended !== undefined) return Promise.reject(this.ended())
    return new Promise((resolve, reject) => {
      const waiter: Waiter<T> = {
        resolve,
        reject,
        timer: startDeadline(ms, () => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1)
          reject(timeoutError(`no ${what} within ${timeout} ms`))
        }),
      }
      this.waiters.push(waiter)
    })
  }
}

/**
 * A wait in ms, checked: from 1 to Node's longest timer (a longer one would
 * fire at once); `0` and `Infinity` are no deadline, returned as Infinity.
 */
function deadlineMs (timeout: number): number {
  if (timeout === 0 || timeout === Infinity) return Infinity
  if (typeof timeout !== 'number' || !(timeout >= 1 && timeout <= MAX_TIMER_MS)) {
    throw new RangeError(`wsroutes: timeout must be a number of milliseconds from 1 to ${MAX_TIMER_MS}, or 0 or Infinity for none; got ${String(timeout)}`)
  }
  return timeout
}

/** A timer for a wait checked by `deadlineMs`; none for no deadline. */
function startDeadline (ms: number, expire: () => void): NodeJS.Timeout | undefined {
  return ms === Infinity ? undefined : setTimeout(expire, ms)
}

function timeoutError (message: string): Error {
  return Object.assign(new Error(message), { code: 'ETIMEDOUT' })
}

/** How an injected connection ended. */
export interface InjectedClose {
  /** The server's close code; 1005 for a close frame without one, 1006 when the connection ended without a close frame. */
  code: number
  reason: string
}

type ResponseHead = { statusCode: number, headers: IncomingHttpHeaders }

/**
 * The client end of an injected connection. `TSend` is what `send()`
 * takes besides strings and bytes (the route's `message` schema type);
 * `TMessage` what `expectJson()` returns by default (its `send` schema type).
 *
 * Messages, pings and pongs from the server are queued until taken with
 * `expectMessage()`/`expectJson()`, `expectPing()`, `expectPong()`; every
 * `expect*()` rejects after `timeout` ms, or once the connection has closed
 * with nothing left to take. Pings are answered at once.
 */
export class InjectedSocket<TSend = unknown, TMessage = unknown> {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readyState: ReadyState = ReadyState.CONNECTING
  /** The subprotocol the server chose, '' for none. */
  protocol = ''
  /** The headers of the 101 response. */
  headers: IncomingHttpHeaders = {}

  private readonly socket: PipeEnd
  private readonly key: string
  private readonly offered: readonly string[]
  private readonly writer: MaskingFrameWriter
  private parser: FrameParser | undefined
  /** Response bytes until the 101's head is complete, then unused. */
  private received: Buffer[] = []
  private receivedLength = 0
  private refused: ResponseHead | undefined

  private readonly messages = new Inbox<string | Buffer>()
  private readonly pings = new Inbox<Buffer>()
  private readonly pongs = new Inbox<Buffer>()
  private closeFrameSent = false
  private closeFrameReceived = false
  private closeCode: number = CloseCodes.ABNORMAL
  private closeReason = ''
  /** The server broke the protocol (a masked frame, invalid UTF-8…). */
  private protocolError: WebSocketError | undefined
  private closeTimer: NodeJS.Timeout | undefined
  private readonly closed: Promise<InjectedClose>
  private settleOpen: { resolve (socket: InjectedSocket<TSend, TMessage>): void, reject (error: Error): void } | undefined
  private readonly timeout: number

  /** @internal Use `injectUpgrade` (`app.injectWS()`). */
  constructor (socket: PipeEnd, key: string, offered: readonly string[], timeout = DEFAULT_INJECT_TIMEOUT) {
    this.socket = socket
    this.key = key
    this.offered = offered
    this.timeout = timeout
    this.writer = new MaskingFrameWriter(socket)
    // Closed once both ends are: the server's `close` handler has been called by then.
    const server = socket.peer
    this.closed = Promise.all([
      new Promise<void>(resolve => socket.once('close', resolve)),
      new Promise<void>(resolve => server.once('close', resolve)),
    ]).then(() => ({ code: this.closeCode, reason: this.closeReason }))
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('end', () => this.onEnd())
    socket.on('close', () => this.onSocketClose())
    socket.on('error', () => socket.destroy())
  }

  /** @internal Resolves on the 101, rejects on any other answer, or none within `timeout` ms. */
  opened (): Promise<this> {
    return new Promise<InjectedSocket<TSend, TMessage>>((resolve, reject) => {
      const timer = startDeadline(this.timeout, () => {
        this.failHandshake(timeoutError(`no answer to the upgrade request within ${this.timeout} ms`))
      })
      this.settleOpen = {
        resolve: socket => { clearTimeout(timer); resolve(socket) },
        reject: error => { clearTimeout(timer); reject(error) },
      }
    }) as Promise<this>
  }

  // -------------------------------------------------------- sending

  /**
   * Sends a message: a string as a text frame, bytes as a binary frame
   * (unless `options.binary` says otherwise), anything else as JSON text.
   * Throws `WS_ERR_NOT_OPEN` once the connection is closing.
   */
  send (data: TSend | RawData, options?: SendOptions): void {
    let binary: boolean
    let payload: Buffer | string
    if (typeof data === 'string') {
      binary = options?.binary === true
      payload = binary ? Buffer.from(data) : data
    } else if (Buffer.isBuffer(data) || ArrayBuffer.isView(data) || data instanceof ArrayBuffer) {
      binary = options?.binary !== false
      payload = Buffer.isBuffer(data) ? data : ArrayBuffer.isView(data) ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(data)
    } else {
      binary = false
      const json = JSON.stringify(data) as string | undefined
      if (json === undefined) throw new TypeError(`send() cannot serialize ${typeof data} as JSON`)
      payload = json
    }
    this.assertOpen('send')
    this.writer.frame(binary ? Opcode.BINARY : Opcode.TEXT, payload)
  }

  /** Sends a ping (at most 125 bytes); the server's pong can be taken with `expectPong()`. */
  ping (data: string | Buffer = EMPTY): void {
    const payload = typeof data === 'string' ? Buffer.from(data) : data
    if (payload.length > 125) throw wsRangeError(ErrorCodes.CONTROL_PAYLOAD_TOO_LONG, 'control frame payloads are limited to 125 bytes')
    this.assertOpen('ping')
    this.writer.frame(Opcode.PING, payload)
  }

  /**
   * Starts the closing handshake, with the close codes an endpoint may send;
   * `expectClose()` resolves once the server has answered and closed.
   */
  close (code?: CloseCode, reason?: string): void {
    if (code !== undefined && !isValidCloseCode(code)) {
      throw wsTypeError(ErrorCodes.INVALID_CLOSE_CODE, `invalid close code ${String(code)}: use 1000-1003, 1007-1014 or 3000-4999`)
    }
    const reasonBytes = reason === undefined || reason === '' ? EMPTY : Buffer.from(reason)
    if (reasonBytes.length > MAX_CLOSE_REASON_BYTES) {
      throw wsRangeError(ErrorCodes.CLOSE_REASON_TOO_LONG, `close reason is ${reasonBytes.length} bytes of UTF-8; the limit is ${MAX_CLOSE_REASON_BYTES}`)
    }
    if (reasonBytes.length > 0 && code === undefined) throw wsTypeError(ErrorCodes.INVALID_CLOSE_CODE, 'a close reason needs a close code')
    this.sendClose(code ?? 0, reasonBytes)
  }

  /** Drops the connection at once, without a closing handshake (the server sees 1006). */
  terminate (): void {
    if (this.readyState === ReadyState.CLOSED) return
    this.readyState = ReadyState.CLOSING
    this.socket.destroy()
  }

  // -------------------------------------------------------- expecting

  /** The next message: text as a string, binary as a Buffer. */
  expectMessage (timeout = this.timeout): Promise<string | Buffer> {
    return this.messages.next(timeout, 'message')
  }

  /** The next message, parsed as JSON; rejects when it is binary or not JSON. */
  async expectJson<T = TMessage> (timeout = this.timeout): Promise<T> {
    const message = await this.expectMessage(timeout)
    if (typeof message !== 'string') throw new TypeError(`expected a JSON text message, got a binary message of ${message.length} bytes`)
    try {
      return JSON.parse(message) as T
    } catch (error) {
      throw new SyntaxError(`expected a JSON text message, got ${JSON.stringify(message.length > 200 ? message.slice(0, 200) + '…' : message)}`, { cause: error })
    }
  }

  /** The payload of the next ping from the server (already answered). */
  expectPing (timeout = this.timeout): Promise<Buffer> {
    return this.pings.next(timeout, 'ping')
  }

  /** The payload of the next pong from the server. */
  expectPong (timeout = this.timeout): Promise<Buffer> {
    return this.pongs.next(timeout, 'pong')
  }

  /**
   * Resolves once the connection is closed at both ends (so the server's
   * `close` handler has run), with the server's close code and reason.
   * With `code`, rejects with an `AssertionError` when the code differs.
   */
  async expectClose (code?: number, timeout = this.timeout): Promise<InjectedClose> {
    const ms = deadlineMs(timeout)
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<never>((_resolve, reject) => {
      timer = startDeadline(ms, () => reject(timeoutError(`the connection did not close within ${timeout} ms`)))
    })
    let result: InjectedClose
    try {
      result = await Promise.race([this.closed, expired])
    } finally {
      clearTimeout(timer)
    }
    if (code !== undefined && result.code !== code) {
      throw new AssertionError({
        message: `expected close code ${code}, got ${result.code}${result.reason === '' ? '' : ` (${result.reason})`}`,
        actual: result.code,
        expected: code,
        operator: 'strictEqual',
      })
    }
    return result
  }

  // -------------------------------------------------------- handshake

  private onData (chunk: Buffer): void {
    if (this.parser !== undefined) {
      this.parser.write(chunk)
      return
    }
    this.received.push(chunk)
    this.receivedLength += chunk.length
    const data = this.received.length === 1 ? chunk : Buffer.concat(this.received, this.receivedLength)
    this.received = [data]
    if (this.refused !== undefined) {
      this.readRefusal(false)
      return
    }
    const end = data.indexOf('\r\n\r\n')
    if (end === -1) return
    const head = parseHead(data.subarray(0, end).toString('latin1'))
    const rest = data.subarray(end + 4)
    if (head === undefined) {
      this.failHandshake(new Error('the server answered the upgrade request with something other than HTTP'))
      return
    }
    if (head.statusCode !== 101) {
      this.refused = head
      this.received = [rest]
      this.receivedLength = rest.length
      this.readRefusal(false)
      return
    }
    this.opening(head, rest)
  }

  /** The 101: checked as a client must (§4.1), then frames. */
  private opening (head: ResponseHead, rest: Buffer): void {
    const headers = head.headers
    const protocol = typeof headers['sec-websocket-protocol'] === 'string' ? headers['sec-websocket-protocol'] : ''
    let problem: string | undefined
    if (!headerHasToken(headers.upgrade, 'websocket')) problem = 'the 101 response has no Upgrade: websocket'
    else if (!headerHasToken(headers.connection, 'upgrade')) problem = 'the 101 response has no Connection: Upgrade'
    else if (headers['sec-websocket-accept'] !== acceptKey(this.key)) problem = 'the 101 response has a wrong Sec-WebSocket-Accept'
    else if (protocol !== '' && !this.offered.includes(protocol)) problem = `the server chose the subprotocol ${protocol}, which was not offered`
    // §4.1: a Sec-WebSocket-Extensions naming "an extension that was not
    // present in the client's handshake" fails the connection; this client
    // speaks no extension, whatever `headers` offered.
    else if (headers['sec-websocket-extensions'] !== undefined) problem = `the server chose the extension ${String(headers['sec-websocket-extensions'])}; the injectWS client speaks none`
    if (problem !== undefined) {
      this.failHandshake(Object.assign(new Error(problem), { code: ErrorCodes.INVALID_HANDSHAKE }))
      return
    }
    this.headers = headers
    this.protocol = protocol
    this.readyState = ReadyState.OPEN
    this.received = []
    this.parser = new FrameParser(this.frameHandler(), { maxPayload: Infinity, maxFragments: Infinity, role: 'client' })
    const settle = this.settleOpen
    this.settleOpen = undefined
    settle?.resolve(this)
    if (rest.length > 0) this.parser.write(rest)
  }

  /** A refusal's body: complete at its Content-Length, or at the server's FIN. */
  private readRefusal (eof: boolean): void {
    const head = this.refused!
    const data = this.received.length === 1 ? this.received[0] : Buffer.concat(this.received)
    const declared = Number(head.headers['content-length'])
    const chunked = /\bchunked\b/i.test(head.headers['transfer-encoding'] ?? '')
    let body: Buffer | undefined
    if (chunked) body = decodeChunked(data)
    else if (Number.isInteger(declared) && data.length >= declared) body = data.subarray(0, declared)
    if (body === undefined && !eof) return
    const settle = this.settleOpen
    this.settleOpen = undefined
    // The server has ended its side after the response; ours goes too.
    this.socket.destroy()
    settle?.reject(new UpgradeRefusedError(head.statusCode, head.headers, (body ?? data).toString()))
  }

  private failHandshake (error: Error): void {
    const settle = this.settleOpen
    this.settleOpen = undefined
    this.socket.destroy()
    this.socket.peer.destroy()
    settle?.reject(error)
  }

  // -------------------------------------------------------- frames

  private frameHandler (): FrameHandler {
    return {
      onMessage: (data, isBinary) => {
        if (this.readyState === ReadyState.OPEN) this.messages.push(isBinary ? data : data.toString())
      },
      onPing: data => {
        // §5.5.2: answered with the same payload, unless a close frame came first.
        if (this.readyState === ReadyState.OPEN) this.writer.frame(Opcode.PONG, data)
        this.pings.push(data)
      },
      onPong: data => {
        this.pongs.push(data)
      },
      onClose: (code, reason) => {
        this.closeFrameReceived = true
        this.closeCode = code
        this.closeReason = reason.toString()
        // §5.5.1: echo the code (an empty close frame is answered with an
        // empty one); then the server closes TCP first (§7.1.1).
        this.sendClose(code === CloseCodes.NO_STATUS ? 0 : code, EMPTY)
      },
      onProtocolError: error => {
        // §7.1.7: _Fail the WebSocket Connection_: our close frame, then TCP.
        this.protocolError = error
        this.closeCode = error.closeCode
        this.sendClose(error.closeCode, EMPTY)
        this.socket.end()
      },
    }
  }

  private sendClose (code: number, reason: Buffer): void {
    // Never CONNECTING: the socket is handed out once open.
    if (this.readyState === ReadyState.CLOSED) return
    this.readyState = ReadyState.CLOSING
    if (!this.closeFrameSent) {
      this.closeFrameSent = true
      if (this.socket.writable) this.writer.close(code, reason)
    }
    // The server should close TCP now (or, after our close, once it has
    // answered); if it does not, the connection is dropped.
    if (this.closeTimer === undefined) {
      this.closeTimer = startDeadline(this.timeout, () => this.socket.destroy())
    }
  }

  private assertOpen (what: string): void {
    if (this.readyState !== ReadyState.OPEN) {
      throw wsError(ErrorCodes.NOT_OPEN, `${what}() on a connection that is ${this.readyState === ReadyState.CLOSING ? 'closing' : this.readyState === ReadyState.CLOSED ? 'closed' : 'not open yet'}`)
    }
  }

  private onEnd (): void {
    if (this.refused !== undefined) {
      this.readRefusal(true)
      return
    }
    if (this.settleOpen !== undefined) {
      this.failHandshake(Object.assign(new Error('socket hang up: the server closed the connection without answering the upgrade request'), { code: 'ECONNRESET' }))
      return
    }
    // The server closed its side: close ours (§7.1.1: the client waits for that).
    if (!this.socket.writableEnded) this.socket.end()
  }

  private onSocketClose (): void {
    if (this.settleOpen !== undefined) this.failHandshake(Object.assign(new Error('the connection closed before the upgrade was answered'), { code: 'ECONNRESET' }))
    this.readyState = ReadyState.CLOSED
    if (this.closeTimer !== undefined) clearTimeout(this.closeTimer)
    this.parser?.stop()
    const describe = (): string => this.protocolError !== undefined
      ? `${this.protocolError.code}: ${this.protocolError.message}`
      : `code ${this.closeCode}${this.closeReason === '' ? '' : `, ${this.closeReason}`}`
    const ended = (what: string) => () => Object.assign(new Error(`the connection closed (${describe()}) before a ${what} arrived`), { code: ErrorCodes.NOT_OPEN })
    this.messages.end(ended('message'))
    this.pings.end(ended('ping'))
    this.pongs.end(ended('pong'))
  }
}

/** The status line and headers of an HTTP/1.1 response, or undefined when it is not one. */
function parseHead (text: string): ResponseHead | undefined {
  const lines = text.split('\r\n')
  const status = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0])
  if (status === null) return undefined
  const headers: IncomingHttpHeaders = {}
  for (let i = 1; i < lines.length; i++) {
    const colon = lines[i].indexOf(':')
    if (colon <= 0) continue
    const name = lines[i].slice(0, colon).trim().toLowerCase()
    const value = lines[i].slice(colon + 1).trim()
    const previous = headers[name]
    if (name === 'set-cookie') headers[name] = [...(previous as string[] | undefined ?? []), value]
    else headers[name] = previous === undefined ? value : `${previous as string}, ${value}`
  }
  return { statusCode: Number(status[1]), headers }
}

/** A chunked body, once its last chunk is in; undefined before. */
function decodeChunked (data: Buffer): Buffer | undefined {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at)
    if (lineEnd === -1) return undefined
    const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16)
    if (Number.isNaN(size)) return Buffer.concat(parts)
    if (size === 0) return Buffer.concat(parts)
    const start = lineEnd + 2
    if (data.length < start + size + 2) return undefined
    parts.push(data.subarray(start, start + size))
    at = start + size + 2
  }
}

// ----------------------------------------------------------------- inject

/**
 * Opens an in-process WebSocket: builds the upgrade request on one end of
 * a duplex pair and hands it to `onUpgrade` (the adapter's `upgrade`
 * listener), then speaks RFC 6455 on the other end. Resolves with the
 * client once the 101 has arrived; rejects with `UpgradeRefusedError` for
 * any other answer.
 */
export function injectUpgrade<TSend = unknown, TMessage = unknown> (onUpgrade: UpgradeListener, path: string, options: InjectWSOptions = {}): Promise<InjectedSocket<TSend, TMessage>> {
  const offered = typeof options.protocols === 'string' ? [options.protocols] : [...options.protocols ?? []]
  if (offered.length > 0 && parseProtocols(offered.join(', ')) === null) {
    return Promise.reject(new TypeError(`invalid subprotocol list: ${offered.join(', ')}`))
  }
  let timeout: number
  try {
    timeout = deadlineMs(options.timeout ?? DEFAULT_INJECT_TIMEOUT)
  } catch (error) {
    return Promise.reject(error)
  }
  const [server, client] = duplexPair()
  const request = buildUpgradeRequest(server, path, options, randomBytes(16).toString('base64'))
  // The 101 is checked against what was sent: `headers` may replace the
  // key or the offered subprotocols (or remove them, and the server refuses).
  const sent = request.headers
  const key = typeof sent['sec-websocket-key'] === 'string' ? sent['sec-websocket-key'] : ''
  const sentProtocols = typeof sent['sec-websocket-protocol'] === 'string' ? parseProtocols(sent['sec-websocket-protocol']) : []
  const socket = new InjectedSocket<TSend, TMessage>(client, key, sentProtocols ?? [], timeout)
  const opened = socket.opened()
  try {
    onUpgrade(request, server, EMPTY)
  } catch (error) {
    opened.catch(() => {})
    socket.terminate()
    server.destroy()
    return Promise.reject(error)
  }
  return opened
}

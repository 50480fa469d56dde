/**
 * Client-side tools shared by the plugin, core and interop tests: a raw TCP
 * client that speaks exact bytes (requests, masked frames) and parses the
 * server's frames, a `ws` client opener, and a log sink for pino output.
 */
import { once } from 'node:events'
import net from 'node:net'
import { Writable } from 'node:stream'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import WebSocket from 'ws'

/** What a helper needs of a tap test: somewhere to register cleanup. */
export interface Teardown {
  teardown (fn: () => unknown): void
}

export const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
/** The accept value RFC 6455 §1.3 gives for KEY. */
export const ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo='

let sequence = 0
/** `path` with a query string no other client in this process uses, to tell a route's sockets apart. */
export function unique (path: string): string {
  return `${path}?id=${++sequence}`
}

export function portOf (server: Server): number {
  return (server.address() as AddressInfo).port
}

// ------------------------------------------------------------ frames

export const Op = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const

const MASK = Buffer.from([0x12, 0x34, 0x56, 0x78])

/** A masked client frame (RFC 6455 §5.2). */
export function clientFrame (opcode: number, payload: Buffer | string = Buffer.alloc(0), fin = true): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload
  const length = data.length
  const header = length < 126 ? Buffer.alloc(2) : length < 0x10000 ? Buffer.alloc(4) : Buffer.alloc(10)
  header[0] = (fin ? 0x80 : 0) | opcode
  if (length < 126) {
    header[1] = 0x80 | length
  } else if (length < 0x10000) {
    header[1] = 0x80 | 126
    header.writeUInt16BE(length, 2)
  } else {
    header[1] = 0x80 | 127
    header.writeBigUInt64BE(BigInt(length), 2)
  }
  const masked = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) masked[i] = data[i] ^ MASK[i & 3]
  return Buffer.concat([header, MASK, masked])
}

export function closePayload (code: number, reason = ''): Buffer {
  const out = Buffer.alloc(2 + Buffer.byteLength(reason))
  out.writeUInt16BE(code, 0)
  out.write(reason, 2)
  return out
}

/**
 * The start of the frame at the head of `b`: its payload length and where
 * the masking key (or, unmasked, the payload) begins; undefined until the
 * whole length field has arrived.
 */
export function frameHeader (b: Buffer): { masked: boolean, length: number, at: number } | undefined {
  if (b.length < 2) return undefined
  const masked = (b[1] & 0x80) !== 0
  const length = b[1] & 0x7f
  if (length === 126) return b.length < 4 ? undefined : { masked, length: b.readUInt16BE(2), at: 4 }
  if (length === 127) return b.length < 10 ? undefined : { masked, length: Number(b.readBigUInt64BE(2)), at: 10 }
  return { masked, length, at: 2 }
}

export interface ServerFrame {
  fin: boolean
  opcode: number
  masked: boolean
  payload: Buffer
}

export interface HttpHead {
  status: number
  statusLine: string
  headers: Record<string, string>
}

function parseHead (text: string): HttpHead {
  const [statusLine, ...lines] = text.split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  return { status: Number(statusLine.split(' ')[1]), statusLine, headers }
}

export interface RequestOptions {
  path?: string
  method?: string
  /** Replaces the default handshake headers where a name matches; `null` removes one. */
  headers?: Record<string, string | null>
  /** Bytes written right after the request head, in the same write. */
  extra?: Buffer
  host?: string
}

export function upgradeRequest (options: RequestOptions = {}): Buffer {
  const headers: Record<string, string | null> = {
    Host: 'localhost',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': KEY,
    'Sec-WebSocket-Version': '13',
    ...options.headers,
  }
  let head = `${options.method ?? 'GET'} ${options.path ?? '/'} HTTP/1.1\r\n`
  for (const name in headers) if (headers[name] !== null) head += `${name}: ${headers[name]}\r\n`
  return Buffer.concat([Buffer.from(head + '\r\n'), options.extra ?? Buffer.alloc(0)])
}

/**
 * A client on a bare TCP socket. It reads the HTTP response head, then the
 * server's frames; everything it receives is kept, so a test can await the
 * next frame, the end of the stream, or the raw bytes.
 */
export class RawClient {
  readonly socket: net.Socket
  /** Every byte received after the HTTP head. */
  private buffer = Buffer.alloc(0)
  private headText: string | undefined
  private headWaiters: Array<(head: HttpHead) => void> = []
  private frameWaiters: Array<() => void> = []
  readonly frames: ServerFrame[] = []
  private framesRead = 0
  /** All bytes ever received, head included. */
  raw = Buffer.alloc(0)
  ended = false
  readonly closed: Promise<void>

  constructor (socket: net.Socket) {
    this.socket = socket
    socket.on('error', () => {})
    socket.on('data', chunk => this.onData(chunk))
    socket.on('end', () => {
      this.ended = true
      this.wake()
    })
    this.closed = new Promise(resolve => socket.once('close', () => {
      this.ended = true
      this.wake()
      resolve()
    }))
  }

  static async connect (port: number, host = '127.0.0.1'): Promise<RawClient> {
    const socket = net.connect(port, host)
    await once(socket, 'connect')
    return new RawClient(socket)
  }

  /** Connects and sends an upgrade request; resolves with the response head. */
  static async request (port: number, options: RequestOptions = {}): Promise<{ client: RawClient, head: HttpHead }> {
    const client = await RawClient.connect(port, options.host)
    client.socket.write(upgradeRequest(options))
    return { client, head: await client.head() }
  }

  /** Connects, upgrades (expects 101) and returns the client. */
  static async open (port: number, options: RequestOptions = {}): Promise<RawClient> {
    const { client, head } = await RawClient.request(port, options)
    if (head.status !== 101) {
      client.destroy()
      throw new Error(`expected 101, got ${head.statusLine}`)
    }
    return client
  }

  private onData (chunk: Buffer): void {
    this.raw = Buffer.concat([this.raw, chunk])
    if (this.headText === undefined) {
      const end = this.raw.indexOf('\r\n\r\n')
      if (end === -1) return
      this.headText = this.raw.subarray(0, end).toString('latin1')
      this.buffer = this.raw.subarray(end + 4)
      const head = parseHead(this.headText)
      for (const waiter of this.headWaiters.splice(0)) waiter(head)
    } else {
      this.buffer = Buffer.concat([this.buffer, chunk])
    }
    this.parseFrames()
    this.wake()
  }

  private parseFrames (): void {
    for (;;) {
      const b = this.buffer
      const header = frameHeader(b)
      if (header === undefined) return
      const { masked, length } = header
      const at = header.at + (masked ? 4 : 0)
      if (b.length < at + length) return
      this.frames.push({ fin: (b[0] & 0x80) !== 0, opcode: b[0] & 0x0f, masked, payload: Buffer.from(b.subarray(at, at + length)) })
      this.buffer = b.subarray(at + length)
    }
  }

  private wake (): void {
    for (const waiter of this.frameWaiters.splice(0)) waiter()
  }

  /** The HTTP response head. */
  head (): Promise<HttpHead> {
    if (this.headText !== undefined) return Promise.resolve(parseHead(this.headText))
    return new Promise((resolve, reject) => {
      this.headWaiters.push(resolve)
      void this.closed.then(() => reject(new Error(`connection closed before a response head; got ${JSON.stringify(this.raw.toString('latin1'))}`)))
    })
  }

  /** The whole response body, once the server has ended the connection. */
  async body (): Promise<string> {
    await this.closed
    return this.buffer.toString()
  }

  /** The next frame the server sent; rejects if the connection ends first. */
  async nextFrame (): Promise<ServerFrame> {
    for (;;) {
      if (this.framesRead < this.frames.length) return this.frames[this.framesRead++]
      if (this.ended) throw new Error('connection ended before the next frame')
      await new Promise<void>(resolve => this.frameWaiters.push(resolve))
    }
  }

  /** Reads frames until a close frame; returns its code (1005 for none) and reason. */
  async nextClose (): Promise<{ code: number, reason: string }> {
    for (;;) {
      const frame = await this.nextFrame()
      if (frame.opcode !== Op.CLOSE) continue
      if (frame.payload.length < 2) return { code: 1005, reason: '' }
      return { code: frame.payload.readUInt16BE(0), reason: frame.payload.subarray(2).toString() }
    }
  }

  send (opcode: number, payload?: Buffer | string, fin = true): void {
    this.socket.write(clientFrame(opcode, payload, fin))
  }

  write (bytes: Buffer): void {
    this.socket.write(bytes)
  }

  destroy (): void {
    this.socket.destroy()
  }
}

// ------------------------------------------------------------ ws client

interface Message { data: Buffer, isBinary: boolean }

/**
 * Every message a `ws` client receives, from its creation on: a server that
 * sends in `open` can have its message arrive with the 101, before a test
 * could attach a listener after awaiting 'open'.
 */
const inboxes = new WeakMap<WebSocket, { messages: Message[], waiters: Array<(message: Message) => void> }>()

export function wsClient (url: string, protocols?: string | string[], options?: WebSocket.ClientOptions): WebSocket {
  const ws = new WebSocket(url, protocols, options)
  const inbox = { messages: [] as Message[], waiters: [] as Array<(message: Message) => void> }
  inboxes.set(ws, inbox)
  ws.on('message', (data, isBinary) => {
    const message = { data: data as Buffer, isBinary }
    const waiter = inbox.waiters.shift()
    if (waiter !== undefined) waiter(message)
    else inbox.messages.push(message)
  })
  return ws
}

/** Opens a `ws` client and waits for 'open'; rejects on 'unexpected-response' or 'error'. */
export async function openWs (url: string, protocols?: string | string[], options?: WebSocket.ClientOptions): Promise<WebSocket> {
  const ws = wsClient(url, protocols, options)
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)))
  })
  return ws
}

/** The next message of a client made by `wsClient`/`openWs`. */
export function nextMessage (ws: WebSocket): Promise<Message> {
  const inbox = inboxes.get(ws)
  if (inbox === undefined) throw new Error('not a client made by wsClient()')
  const message = inbox.messages.shift()
  if (message !== undefined) return Promise.resolve(message)
  return new Promise(resolve => inbox.waiters.push(resolve))
}

/** What a `ws` client got instead of a 101. */
export interface Refusal { status: number, headers: Record<string, string | string[] | undefined>, body: string }

/**
 * Opens a `ws` client that must be refused: resolves with the status,
 * headers and body of the 'unexpected-response'; rejects if the handshake
 * succeeds or the connection fails.
 */
export async function refusedWs (url: string, options?: WebSocket.ClientOptions): Promise<Refusal> {
  const ws = new WebSocket(url, options)
  return await new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.terminate()
      reject(new Error('the handshake succeeded'))
    })
    ws.once('error', reject)
    ws.once('unexpected-response', (req, res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => {
        req.destroy()
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body })
      })
    })
  })
}

export interface CloseEventData { code: number, reason: string }

export function wsClosed (ws: WebSocket): Promise<CloseEventData> {
  return new Promise(resolve => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })))
}

/** Closes a client if it is still open (teardown helper). */
export function closeWs (ws: WebSocket): void {
  if (ws.readyState !== WebSocket.CLOSED) ws.terminate()
}

// ------------------------------------------------------------ logs

export interface LogLine {
  level: number
  msg: string
  reqId?: string
  err?: { message: string, type: string, code?: string }
  [key: string]: unknown
}

/** A pino destination that keeps every line, and lets a test wait for one. */
export class LogSink extends Writable {
  readonly lines: LogLine[] = []
  private waiters: Array<{ match: (line: LogLine) => boolean, resolve: (line: LogLine) => void }> = []

  override _write (chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    for (const text of chunk.toString().split('\n')) {
      if (text === '') continue
      const line = JSON.parse(text) as LogLine
      this.lines.push(line)
      this.waiters = this.waiters.filter(waiter => {
        if (!waiter.match(line)) return true
        waiter.resolve(line)
        return false
      })
    }
    callback()
  }

  waitFor (match: (line: LogLine) => boolean): Promise<LogLine> {
    const found = this.lines.find(match)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise(resolve => this.waiters.push({ match, resolve }))
  }
}

/** A promise with its resolver, for events a test waits on. */
export function deferred<T = void> (): { promise: Promise<T>, resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>(r => { resolve = r })
  return { promise, resolve }
}

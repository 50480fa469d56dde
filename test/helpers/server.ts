/**
 * A minimal WebSocket server built from the engine alone (an `http.Server`
 * whose 'upgrade' handler checks the request, writes the 101 and starts a
 * `Connection`), a recording connection handler, and a raw TCP client that
 * sends exact bytes and reads the server's frames.
 */
import { EventEmitter, once } from 'node:events'
import http from 'node:http'
import net, { type Socket } from 'node:net'
import {
  Connection,
  acceptResponse,
  checkUpgradeRequest,
  selectProtocol,
  writeHttpResponse,
  type ConnectionHandler,
  type ConnectionOptions,
  type ProtocolSelector,
} from '../../lib/engine/index.js'
import { parseServerFrame, type ServerFrame } from './frames.js'

/** What a test needs of tap's `t` here. */
interface Teardown { teardown: (fn: () => void | Promise<void>) => void }

/** How long a helper waits for something before failing the test instead of hanging it. */
const WAIT_MS = 5000

function timeout (what: string, ms = WAIT_MS): { promise: Promise<never>, cancel: () => void } {
  let timer: NodeJS.Timeout | undefined
  const promise = new Promise<never>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  promise.catch(() => {})
  return { promise, cancel: () => clearTimeout(timer) }
}

/** Resolves when `predicate()` holds, re-checked on every `event` of `emitter`. */
export async function until (emitter: EventEmitter, event: string, predicate: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  if (predicate()) return
  const limit = timeout(what, ms)
  try {
    await Promise.race([
      new Promise<void>(resolve => {
        const check = (): void => {
          if (predicate()) {
            emitter.off(event, check)
            resolve()
          }
        }
        emitter.on(event, check)
      }),
      limit.promise,
    ])
  } finally {
    limit.cancel()
  }
}

export const delay = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

// -------------------------------------------------------------- recording

export type Recorded =
  | { type: 'message', data: Buffer, isBinary: boolean }
  | { type: 'ping', data: Buffer }
  | { type: 'pong', data: Buffer }
  | { type: 'close', code: number, reason: string }
  | { type: 'error', error: Error & { code?: string, closeCode?: number } }
  | { type: 'drain' }

/**
 * A ConnectionHandler that records every call. `echo` sends each message
 * back; `on` adds behaviour to a call without losing the record.
 */
export class RecordingHandler extends EventEmitter implements ConnectionHandler {
  readonly events: Recorded[] = []
  echo = false
  /** Extra behaviour per call, run after the call is recorded. */
  hooks: { [K in Recorded['type']]?: (connection: Connection, event: Recorded) => void } = {}

  private record (connection: Connection, event: Recorded): void {
    this.events.push(event)
    this.hooks[event.type]?.(connection, event)
    this.emit('event', event)
  }

  onMessage (connection: Connection, data: Buffer, isBinary: boolean): void {
    const copy = Buffer.from(data)
    this.record(connection, { type: 'message', data: copy, isBinary })
    if (this.echo) connection.send(copy, { binary: isBinary })
  }

  onPing (connection: Connection, data: Buffer): void { this.record(connection, { type: 'ping', data: Buffer.from(data) }) }
  onPong (connection: Connection, data: Buffer): void { this.record(connection, { type: 'pong', data: Buffer.from(data) }) }
  onClose (connection: Connection, code: number, reason: Buffer): void { this.record(connection, { type: 'close', code, reason: reason.toString() }) }
  onError (connection: Connection, error: Error): void { this.record(connection, { type: 'error', error }) }
  onDrain (connection: Connection): void { this.record(connection, { type: 'drain' }) }

  of<K extends Recorded['type']> (type: K): Array<Extract<Recorded, { type: K }>> {
    return this.events.filter((e): e is Extract<Recorded, { type: K }> => e.type === type)
  }

  async waitFor<K extends Recorded['type']> (type: K, count = 1, ms = WAIT_MS): Promise<Array<Extract<Recorded, { type: K }>>> {
    await until(this, 'event', () => this.of(type).length >= count, `${count} '${type}' call(s)`, ms)
    return this.of(type)
  }
}

// ----------------------------------------------------------------- server

export interface ServerOptions {
  connection?: ConnectionOptions
  protocols?: ProtocolSelector<http.IncomingMessage>
  /** Runs before `start()`, like an async `open`; the connection is not read until it settles. */
  beforeStart?: (connection: Connection) => Promise<void>
}

export interface TestServer {
  port: number
  /** Every Connection made, in order, with its handler. */
  accepted: Array<{ connection: Connection, handler: RecordingHandler }>
  /** The next connection (the first one not yet taken). */
  next: () => Promise<{ connection: Connection, handler: RecordingHandler }>
  events: EventEmitter
}

/** Starts the minimal server on 127.0.0.1, port 0; everything it opens is closed at teardown. */
export async function startServer (t: Teardown, options: ServerOptions = {}): Promise<TestServer> {
  const sockets = new Set<net.Socket>()
  const server = http.createServer((req, res) => {
    res.statusCode = 404
    res.end()
  })
  const events = new EventEmitter()
  const accepted: TestServer['accepted'] = []
  server.on('connection', socket => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  server.on('upgrade', (req: http.IncomingMessage, duplex, head: Buffer) => {
    const socket = duplex as Socket
    const check = checkUpgradeRequest(req)
    if (!check.ok) {
      writeHttpResponse(socket, check.status, check.headers, check.message)
      return
    }
    const protocol = selectProtocol(check.protocols, options.protocols, req)
    socket.write(acceptResponse(check.key, protocol))
    const handler = new RecordingHandler()
    const connection = new Connection(socket, handler, { ...options.connection, protocol })
    accepted.push({ connection, handler })
    events.emit('connection')
    if (options.beforeStart === undefined) connection.start(head)
    else void options.beforeStart(connection).then(() => connection.start(head))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>(resolve => server.close(() => resolve()))
  })
  let taken = 0
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted,
    events,
    async next () {
      await until(events, 'connection', () => accepted.length > taken, 'a connection')
      return accepted[taken++]
    },
  }
}

// ------------------------------------------------------------- raw client

export const CLIENT_KEY = 'dGhlIHNhbXBsZSBub25jZQ=='

export function upgradeRequest (port: number, extra: Record<string, string> = {}, path = '/'): string {
  const headers: Record<string, string> = {
    Host: `127.0.0.1:${port}`,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': CLIENT_KEY,
    'Sec-WebSocket-Version': '13',
    ...extra,
  }
  let head = `GET ${path} HTTP/1.1\r\n`
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`
  return head + '\r\n'
}

/** A TCP client that speaks WebSocket byte by byte, for sending exactly what a test needs. */
export class RawClient extends EventEmitter {
  readonly socket: Socket
  private buffer: Buffer = Buffer.alloc(0)
  /** Total bytes received, including the handshake response. */
  received = 0
  gotEnd = false
  gotClose = false
  /** The HTTP response head of the handshake. */
  response = ''
  /** When false, incoming bytes are only counted (for tests that move megabytes). */
  keep = true

  constructor (socket: Socket) {
    super()
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.received += chunk.length
      if (this.keep) this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
      this.emit('update')
    })
    socket.on('end', () => { this.gotEnd = true; this.emit('update') })
    socket.on('close', () => { this.gotClose = true; this.emit('update') })
    socket.on('error', () => {})
  }

  static async connect (t: Teardown, port: number, request?: string | Buffer): Promise<RawClient> {
    const socket = net.connect(port, '127.0.0.1')
    t.teardown(() => { socket.destroy() })
    const client = new RawClient(socket)
    await once(socket, 'connect')
    if (request !== undefined) socket.write(request)
    return client
  }

  /** Connects and completes the opening handshake; `after` is sent in the same write as the request. */
  static async open (t: Teardown, port: number, after?: Buffer, extra?: Record<string, string>): Promise<RawClient> {
    const request = Buffer.from(upgradeRequest(port, extra))
    const client = await RawClient.connect(t, port, after === undefined ? request : Buffer.concat([request, after]))
    await client.readResponse()
    if (!client.response.startsWith('HTTP/1.1 101 ')) throw new Error(`handshake failed: ${client.response}`)
    return client
  }

  async readResponse (): Promise<string> {
    await until(this, 'update', () => this.buffer.includes('\r\n\r\n') || this.gotEnd, 'the HTTP response')
    const end = this.buffer.indexOf('\r\n\r\n')
    if (end < 0) throw new Error('connection ended before the HTTP response')
    this.response = this.buffer.subarray(0, end + 4).toString('latin1')
    this.buffer = this.buffer.subarray(end + 4)
    return this.response
  }

  /** Everything received after the response so far (and removes it). */
  take (): Buffer {
    const out = this.buffer
    this.buffer = Buffer.alloc(0)
    return out
  }

  /** The next whole frame from the server. */
  async frame (ms = WAIT_MS): Promise<ServerFrame> {
    await until(this, 'update', () => parseServerFrame(this.buffer) !== null || this.gotEnd, 'a frame', ms)
    const frame = parseServerFrame(this.buffer)
    if (frame === null) throw new Error(`the server closed the connection instead of sending a frame (${this.buffer.length} bytes left)`)
    this.buffer = this.buffer.subarray(frame.length)
    return frame
  }

  /** Resolves when the server has closed its side (FIN received). */
  async ended (ms = WAIT_MS): Promise<void> {
    await until(this, 'update', () => this.gotEnd || this.gotClose, 'the server to close TCP', ms)
  }

  /** Resolves when the TCP connection is fully closed. */
  async closed (ms = WAIT_MS): Promise<void> {
    await until(this, 'update', () => this.gotClose, 'the socket to close', ms)
  }

  send (bytes: Buffer): void {
    this.socket.write(bytes)
  }
}

/** A close frame's payload as code and reason. */
export function closeOf (frame: ServerFrame): { code: number | undefined, reason: string } {
  if (frame.opcode !== 0x8) throw new Error(`expected a close frame, got opcode ${frame.opcode}`)
  return {
    code: frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : undefined,
    reason: frame.payload.subarray(2).toString(),
  }
}

/**
 * One route table served by either adapter, so every production test runs
 * against the Fastify plugin and the Express adapter alike: same route
 * options, same adapter options, a `before` step that stands for the route's
 * hooks (Fastify `onRequest`) or middleware (Express), Node server options
 * (`headersTimeout`, …), captured logs, and a close that does what an
 * application does (`app.close()`, `server.close()`).
 */
import express from 'express'
import Fastify from 'fastify'
import { once } from 'node:events'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { wsroutes } from '../../lib/index.js'
import { wsExpress, type WsLogger } from '../../lib/express/index.js'
import { clientFrame, frameHeader, type Teardown } from '../interop/helpers.js'

export type Kind = 'fastify' | 'express'
export const KINDS: readonly Kind[] = ['fastify', 'express']

/** Route options as both adapters take them: handlers, limits, `schema` (`message`, `send`), … */
export type RouteOptions = Record<string, unknown>

export interface RouteSpec {
  path: string
  options: RouteOptions
  /** Runs before the upgrade, as the route's onRequest hook or middleware. */
  before?: () => Promise<void>
}

export interface LogRecord { level: 'error' | 'warn' | 'info' | 'debug', message: string, err?: unknown }

export interface Served {
  kind: Kind
  port: number
  server: http.Server
  url (path: string): string
  /** Every log line the adapter wrote (Fastify's pino at debug, the Express adapter's logger). */
  readonly logs: LogRecord[]
  /** Resolves with the first log line `match` accepts, now or within 5 s. */
  logged (match: (record: LogRecord) => boolean): Promise<LogRecord>
  /** Closes like an application: `app.close()` (Fastify), `server.close()` (Express). Idempotent. */
  close (): Promise<void>
}

export interface ServeOptions {
  /** The plugin's / adapter's options. */
  adapter?: Record<string, unknown>
  /** Node's `http.createServer` options. */
  http?: http.ServerOptions
}

const PINO_LEVELS: Record<number, LogRecord['level']> = { 20: 'debug', 30: 'info', 40: 'warn', 50: 'error' }

/** Serves `routes` with `kind` on 127.0.0.1:0; closed at teardown. */
export async function serve (t: Teardown, kind: Kind, routes: RouteSpec[], options: ServeOptions = {}): Promise<Served> {
  const logs: LogRecord[] = []
  const waiters: Array<{ match: (record: LogRecord) => boolean, resolve: (record: LogRecord) => void }> = []
  const record = (entry: LogRecord): void => {
    logs.push(entry)
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].match(entry)) waiters.splice(i, 1)[0].resolve(entry)
    }
  }
  let server: http.Server
  let close: () => Promise<void>
  if (kind === 'fastify') {
    const sink = new Writable({
      write (chunk: Buffer, _encoding, callback) {
        for (const line of chunk.toString().split('\n')) {
          if (line === '') continue
          const parsed = JSON.parse(line) as { level: number, msg: string, err?: unknown }
          record({ level: PINO_LEVELS[parsed.level] ?? 'error', message: parsed.msg, err: parsed.err })
        }
        callback()
      },
    })
    const app = Fastify({ logger: { level: 'debug', stream: sink }, http: options.http })
    await app.register(wsroutes, options.adapter ?? {})
    for (const route of routes) {
      const before = route.before
      app.ws(route.path, { ...route.options, ...(before === undefined ? {} : { onRequest: async () => { await before() } }) } as any)
    }
    await app.listen({ host: '127.0.0.1', port: 0 })
    server = app.server
    let closing: Promise<void> | undefined
    close = () => (closing ??= app.close())
  } else {
    const logger: WsLogger = {
      error (object, message) { record({ level: 'error', message, err: (object as { err?: unknown }).err }) },
      warn (object, message) { record({ level: 'warn', message, err: (object as { err?: unknown }).err }) },
      info (object, message) { record({ level: 'info', message, err: (object as { err?: unknown }).err }) },
      debug (object, message) { record({ level: 'debug', message, err: (object as { err?: unknown }).err }) },
    }
    const app = express()
    server = http.createServer(options.http ?? {}, app)
    wsExpress(app, server, { logger, ...options.adapter })
    for (const route of routes) {
      const before = route.before
      if (before === undefined) app.ws(route.path, route.options as any)
      else app.ws(route.path, async (_req, _res, next) => { await before(); next() }, route.options as any)
    }
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    let closing: Promise<void> | undefined
    close = () => (closing ??= new Promise<void>((resolve, reject) => {
      server.close(error => error === undefined ? resolve() : reject(error))
      server.closeIdleConnections()
    }))
  }
  t.teardown(() => close())
  const port = (server.address() as AddressInfo).port
  return {
    kind,
    port,
    server,
    url: path => `ws://127.0.0.1:${port}${path}`,
    logs,
    logged (match) {
      const found = logs.find(match)
      if (found !== undefined) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('timed out after 5000 ms waiting for a log line')), 5000)
        waiters.push({ match, resolve: record => { clearTimeout(timer); resolve(record) } })
      })
    },
    close,
  }
}

// Shared with the other suites (test/helpers/wait.ts); `until` is its name here.
export { delay, waitUntil as until } from '../helpers/wait.js'

// ------------------------------------------------------------ a reader that can stop reading

export interface SkimmedFrame { opcode: number, length: number, payload?: Buffer }

/**
 * A raw client for the megabyte tests: it completes the handshake, then
 * reads only when told (`stall()` / `read()`). Received frames are parsed
 * as they stream by, data payloads counted and dropped, control frames kept.
 */
export class StallingClient {
  readonly socket: net.Socket
  head = ''
  /** Data frames received, in order of arrival, without their payloads. */
  dataFrames = 0
  dataBytes = 0
  /** Control frames (ping, pong, close), with their payloads. */
  readonly control: SkimmedFrame[] = []
  closed = false
  private pending = Buffer.alloc(0)
  /** Payload bytes of the current data frame still to skip. */
  private skip = 0

  private constructor (socket: net.Socket) {
    this.socket = socket
    socket.on('error', () => {})
    socket.on('close', () => { this.closed = true })
  }

  static async open (t: Teardown, port: number, path: string): Promise<StallingClient> {
    const socket = net.connect(port, '127.0.0.1')
    t.teardown(() => { socket.destroy() })
    await once(socket, 'connect')
    const client = new StallingClient(socket)
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
    let buffered = Buffer.alloc(0)
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        buffered = Buffer.concat([buffered, chunk])
        const end = buffered.indexOf('\r\n\r\n')
        if (end === -1) return
        socket.off('data', onData)
        socket.pause()
        client.head = buffered.subarray(0, end).toString('latin1')
        client.pending = buffered.subarray(end + 4)
        resolve()
      }
      socket.on('data', onData)
      socket.once('close', () => reject(new Error('closed before the handshake response')))
    })
    if (!client.head.startsWith('HTTP/1.1 101 ')) throw new Error(`expected 101, got ${client.head}`)
    return client
  }

  /** Starts reading: everything the server queued flows in and is skimmed. */
  read (): void {
    this.socket.on('data', chunk => this.skim(chunk))
    this.socket.resume()
    if (this.pending.length > 0) {
      const first = this.pending
      this.pending = Buffer.alloc(0)
      this.skim(first)
    }
  }

  /** The close frame received, if any. */
  get closeFrame (): { code: number, reason: string } | undefined {
    const frame = this.control.find(f => f.opcode === 0x8)
    if (frame?.payload === undefined) return undefined
    return { code: frame.payload.readUInt16BE(0), reason: frame.payload.subarray(2).toString() }
  }

  send (opcode: number, payload?: Buffer | string): void {
    this.socket.write(clientFrame(opcode, payload))
  }

  private skim (chunk: Buffer): void {
    if (this.skip > 0) {
      const n = Math.min(this.skip, chunk.length)
      this.skip -= n
      this.dataBytes += n
      chunk = chunk.subarray(n)
      if (chunk.length === 0) return
    }
    let b = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
    for (;;) {
      const header = frameHeader(b)
      if (header === undefined) break
      const { length, at } = header
      const opcode = b[0] & 0x0f
      if (opcode >= 0x8) {
        if (b.length < at + length) break
        this.control.push({ opcode, length, payload: Buffer.from(b.subarray(at, at + length)) })
        b = b.subarray(at + length)
        continue
      }
      this.dataFrames++
      const available = Math.min(length, b.length - at)
      this.dataBytes += available
      if (available < length) {
        this.skip = length - available
        b = Buffer.alloc(0)
        break
      }
      b = b.subarray(at + length)
    }
    this.pending = b.length === 0 ? Buffer.alloc(0) : Buffer.from(b)
  }
}

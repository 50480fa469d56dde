/**
 * Helpers for the Express adapter tests: an app on 127.0.0.1:0 that the test
 * closes, raw upgrade requests, and `ws` clients that report what they saw.
 */
import express, { type Express } from 'express'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import WebSocket from 'ws'
import { wsExpress, type WsExpress, type WsExpressOptions, type WsLogger } from '../../lib/express/index.js'

export interface Started {
  app: Express
  server: Server
  ws: WsExpress
  port: number
  /** `ws://127.0.0.1:port` + path */
  url (path: string): string
  /** `http://127.0.0.1:port` + path */
  http (path: string): string
}

interface Teardown {
  teardown (fn: () => unknown): void
}

/** Closes the server and the adapter when the test ends, unless the test closed them itself. */
export function closeAtTeardown (t: Teardown, server: Server, ws: { close (): Promise<void> }): void {
  t.teardown(async () => {
    if (!server.listening) return
    const closed = new Promise(resolve => server.close(resolve))
    server.closeAllConnections()
    await ws.close()
    await closed
  })
}

/** An Express app with the adapter, listening on 127.0.0.1:0; closed when the test ends. */
export async function start (t: Teardown, setup: (app: Express) => void, options: WsExpressOptions = {}): Promise<Started> {
  const app = express()
  const server = createServer(app)
  const ws = wsExpress(app, server, { logger: silentLogger(), ...options })
  setup(app)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  closeAtTeardown(t, server, ws)
  return {
    app,
    server,
    ws,
    port,
    url: path => `ws://127.0.0.1:${port}${path}`,
    http: path => `http://127.0.0.1:${port}${path}`,
  }
}

export interface LogEntry { level: 'error' | 'warn' | 'debug', object: object, message: string }

/** A logger that keeps what it is given. */
export function silentLogger (entries: LogEntry[] = []): WsLogger & { entries: LogEntry[] } {
  return {
    entries,
    error (object, message) { entries.push({ level: 'error', object, message }) },
    warn (object, message) { entries.push({ level: 'warn', object, message }) },
    debug (object, message) { entries.push({ level: 'debug', object, message }) },
  }
}

export interface RawAnswer {
  statusLine: string
  status: number
  headers: Record<string, string>
  body: string
  /** Everything the server sent, as text. */
  raw: string
}

/**
 * Sends a WebSocket opening handshake on a bare TCP socket and returns
 * everything the server wrote before it closed the connection.
 */
export async function rawUpgrade (port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<RawAnswer> {
  const socket = connect(port, '127.0.0.1')
  const lines = [
    `${method} ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
  ]
  for (const name in headers) lines.push(`${name}: ${headers[name]}`)
  socket.write(lines.join('\r\n') + '\r\n\r\n')
  const chunks: Buffer[] = []
  socket.on('data', chunk => chunks.push(chunk))
  await new Promise<void>((resolve, reject) => {
    socket.on('close', () => resolve())
    socket.on('error', reject)
    // A 101 never closes on its own: stop reading after the head arrives.
    socket.on('data', () => {
      if (Buffer.concat(chunks).toString('latin1').startsWith('HTTP/1.1 101')) socket.destroy()
    })
  })
  return parseAnswer(Buffer.concat(chunks).toString())
}

function parseAnswer (raw: string): RawAnswer {
  const end = raw.indexOf('\r\n\r\n')
  const head = end === -1 ? raw : raw.slice(0, end)
  const [statusLine = '', ...headerLines] = head.split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of headerLines) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  return { statusLine, status: Number(statusLine.split(' ')[1]), headers, body: end === -1 ? '' : raw.slice(end + 4), raw }
}

/** Messages a client received that no test has taken yet, and the takers waiting. */
interface Inbox { messages: Array<string | Buffer>, waiting: Array<(message: string | Buffer) => void> }
const inboxes = new WeakMap<WebSocket, Inbox>()

/** Queues every message from the start: a server's first message can arrive in the same chunk as its 101. */
function listen (client: WebSocket): Inbox {
  const inbox: Inbox = { messages: [], waiting: [] }
  inboxes.set(client, inbox)
  client.on('message', (data: Buffer, isBinary: boolean) => {
    const message = isBinary ? data : data.toString()
    const taker = inbox.waiting.shift()
    if (taker !== undefined) taker(message)
    else inbox.messages.push(message)
  })
  return inbox
}

/** Opens a `ws` client and waits for 'open'. */
export async function open (url: string, options: WebSocket.ClientOptions & { protocols?: string[] } = {}): Promise<WebSocket> {
  const client = new WebSocket(url, options.protocols ?? [], options)
  listen(client)
  await new Promise<void>((resolve, reject) => {
    client.once('open', resolve)
    client.once('error', reject)
    client.once('unexpected-response', (_request, response) => reject(new Error(`unexpected response ${response.statusCode ?? 0}`)))
  })
  return client
}

/** The next message a client opened by `open()` receives: text as a string, binary as a Buffer. */
export async function nextMessage (client: WebSocket): Promise<string | Buffer> {
  const inbox = inboxes.get(client) ?? listen(client)
  const queued = inbox.messages.shift()
  if (queued !== undefined) return queued
  return await new Promise(resolve => inbox.waiting.push(resolve))
}

/** Resolves with the close code and reason a `ws` client saw. */
export async function closed (client: WebSocket): Promise<{ code: number, reason: string }> {
  if (client.readyState === WebSocket.CLOSED) throw new Error('already closed; listen before it closes')
  const [code, reason] = await once(client, 'close') as [number, Buffer]
  return { code, reason: reason.toString() }
}

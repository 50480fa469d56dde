/**
 * The server the interop tests talk to: one Fastify app with a route per
 * behaviour, reporting what its handlers saw through `events`.
 */
import { EventEmitter, once } from 'node:events'
import Fastify, { type FastifyInstance } from 'fastify'
import { wsroutes } from '../../lib/index.js'
import { portOf } from './helpers.js'

export interface InteropServer {
  app: FastifyInstance
  port: number
  url: string
  /**
   * What the handlers saw, each event first naming the socket by its request
   * URL: 'close' (url, code, reason), 'pong' (url, data), 'ping' (url, data),
   * 'failure' (url, error: the route's `error` handler), 'open' (url, protocol).
   */
  events: EventEmitter
  /** The oldest `event` of the socket opened with `url` not taken yet (waiting for it if need be); its arguments after the URL. */
  next (event: string, url: string): Promise<unknown[]>
}

export const SMALL_LIMIT = 1000

export async function startInteropServer (host = '127.0.0.1'): Promise<InteropServer> {
  const app = Fastify()
  const events = new EventEmitter()
  // A client that never answers the 1001 of app.close() (see undici's failed
  // subprotocol negotiation) holds the shutdown for closeTimeout.
  await app.register(wsroutes, { closeTimeout: 1000 })

  // Events name the socket by its request URL: tests connect to `unique(path)`.
  type Socket = { request: { url: string } }
  const report = () => ({
    close (socket: Socket, code: number, reason: string) { events.emit('close', socket.request.url, code, reason) },
    error (socket: Socket, error: Error) { events.emit('failure', socket.request.url, error) },
    ping (socket: Socket, data: Buffer) { events.emit('ping', socket.request.url, data) },
    pong (socket: Socket, data: Buffer) { events.emit('pong', socket.request.url, data) },
  })

  app.ws('/echo', {
    ...report(),
    message (socket, data, isBinary) { socket.send(data, { binary: isBinary }) },
  })
  // Sends a ping with the payload it is told; the client's pong reaches `pong`.
  app.ws('/ping', {
    ...report(),
    message (socket, data) { socket.ping(String(data)) },
  })
  // Closes with the code and reason it is told: "4001 bye".
  app.ws('/server-close', {
    ...report(),
    message (socket, data) {
      const text = String(data)
      const space = text.indexOf(' ')
      socket.close(Number(text.slice(0, space)) as 4001, text.slice(space + 1))
    },
  })
  app.ws('/terminate', {
    ...report(),
    message (socket) { socket.terminate() },
  })
  app.ws('/small', {
    ...report(),
    maxPayload: SMALL_LIMIT,
    message (socket, data, isBinary) { socket.send(data, { binary: isBinary }) },
  })
  app.ws('/protocols', {
    ...report(),
    protocols: ['chat', 'superchat'],
    open (socket) {
      events.emit('open', socket.request.url, socket.protocol)
      socket.send(`protocol:${socket.protocol}`)
    },
  })
  // Picks the last offer that starts with "v", to show the function sees the client's order.
  app.ws('/protocol-fn', {
    ...report(),
    protocols (offered, request) {
      if (request.headers['x-refuse'] !== undefined) return false
      return offered.filter(name => name.startsWith('v')).pop()
    },
    open (socket) {
      events.emit('open', socket.request.url, socket.protocol)
      socket.send(`protocol:${socket.protocol}`)
    },
  })

  // Every event is kept until a test takes it, so none is missed by a test
  // that starts waiting after the fact.
  const seen: Array<{ event: string, url: string, args: unknown[] }> = []
  for (const event of ['close', 'failure', 'ping', 'pong', 'open']) {
    events.on(event, (url: string, ...args: unknown[]) => seen.push({ event, url, args }))
  }

  await app.listen({ host, port: 0 })
  const port = portOf(app.server)
  const url = `ws://${host.includes(':') ? `[${host}]` : host}:${port}`
  return {
    app,
    port,
    url,
    events,
    async next (event, url) {
      for (;;) {
        const index = seen.findIndex(entry => entry.event === event && entry.url === url)
        if (index !== -1) return seen.splice(index, 1)[0].args
        await once(events, event)
      }
    },
  }
}

/** Messages of these sizes must come back byte for byte (the length encodings' edges, and 1 MiB, the default maxPayload). */
export const SIZES = [0, 125, 126, 65535, 65536, 1024 * 1024]

/** Bytes that are not all alike, so a shifted or truncated echo shows. */
export function pattern (length: number, seed = 7): Buffer {
  const out = Buffer.allocUnsafe(length)
  let x = seed
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    out[i] = x >>> 16
  }
  return out
}

/** ASCII text of `length` bytes. */
export function text (length: number): string {
  let out = ''
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'
  while (out.length < length) out += alphabet
  return out.slice(0, length)
}

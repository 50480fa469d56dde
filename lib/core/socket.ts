/**
 * The socket handlers receive: the engine's connection plus the request that
 * opened it and the route that serves it.
 */
import type { Socket } from 'node:net'
import { Connection, type ConnectionOptions, type SendOptions, type SendStatus } from '../engine/connection.js'
import type { RouteLogger, RouteRunner } from './route.js'
import type { RawData } from './types.js'

export class RouteSocket<TRequest = unknown> extends Connection {
  /** @internal The request, until `releaseRequest()` (routes with `keepRequest: false`). */
  keptRequest: TRequest | undefined
  /** @internal Whether `releaseRequest()` let the request go. */
  requestReleased = false
  /** @internal The route's logger for this socket, taken from the request at the 101 so it outlives the request. */
  readonly log: RouteLogger
  /** @internal This socket's place in its registry (-1: in none). */
  registrySlot = -1
  /** Invalid inbound messages on a JSON route (bad JSON, schema mismatch, unknown type, binary), whatever the policy did with them. */
  invalidMessages = 0

  constructor (socket: Socket, route: RouteRunner<TRequest>, request: TRequest, log: RouteLogger, options: ConnectionOptions, protocol: string) {
    super(socket, route, options, protocol)
    this.keptRequest = request
    this.log = log
  }

  /** @internal The route that serves this socket: the connection's handler, not kept twice. */
  get route (): RouteRunner<TRequest> {
    return this.handler as RouteRunner<TRequest>
  }

  /** The request that opened the connection; see `WebSocket.request`. */
  get request (): TRequest {
    if (this.requestReleased) {
      throw new TypeError('wsroutes: socket.request was let go after open (the route has keepRequest: false); keep what later handlers need in open')
    }
    return this.keptRequest as TRequest
  }

  /** @internal Lets go of the request (`keepRequest: false`), so an open connection no longer holds it or its IncomingMessage. */
  releaseRequest (): void {
    this.keptRequest = undefined
    this.requestReleased = true
  }

  /**
   * Sends a message. On a route with a `send` schema the value is validated
   * and serialized with it (a text frame): a value that does not match
   * throws `WS_ERR_INVALID_OUTBOUND` and nothing is sent. Elsewhere strings
   * go as text, binary data as binary.
   */
  override send (data: unknown, options?: SendOptions): SendStatus {
    const codec = this.route.codec
    if (codec !== undefined && codec.encodes) {
      // JSON goes as text, which is what the peer's JSON route accepts
      // (binary is refused with 1003 there). Bytes go through `sendRaw`.
      if (options?.binary === true) throw new TypeError('wsroutes: send() on a route with a send schema writes JSON as a text frame; use sendRaw() for a binary frame')
      return super.send(codec.encode(data))
    }
    return super.send(data as RawData, options)
  }

  /** Sends a string or bytes as they are, without the route's `send` schema (for example a message serialized once for many sockets). */
  sendRaw (data: RawData, options?: SendOptions): SendStatus {
    return super.send(data, options)
  }
}

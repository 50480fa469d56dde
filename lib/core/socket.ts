/**
 * The socket handlers receive: the engine's connection plus the request that
 * opened it and the route that serves it.
 */
import type { Socket } from 'node:net'
import { Connection, type ConnectionOptions } from '../engine/connection.js'
import type { RouteRunner } from './route.js'

export class RouteSocket<TRequest = unknown> extends Connection {
  readonly request: TRequest
  /** @internal */
  readonly route: RouteRunner<TRequest>

  constructor (socket: Socket, route: RouteRunner<TRequest>, request: TRequest, options: ConnectionOptions) {
    super(socket, route, options)
    this.route = route
    this.request = request
  }
}

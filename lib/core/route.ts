/**
 * The framework-neutral half of a WebSocket route: it accepts a checked
 * upgrade (writes the 101, creates the socket), runs the user's handlers and
 * keeps their failures contained: a handler that throws or rejects closes
 * its own socket with 1011 and is logged; the process lives on.
 *
 * Inbound flow: one message at a time per socket. A `message` handler that
 * returns a promise pauses the socket's reading until it settles, so the
 * next message waits (per-socket order) and a fast client is held back by
 * TCP instead of growing the server's memory.
 */
import type { Socket } from 'node:net'
import { CloseCodes } from '../engine/close-codes.js'
import { ReadyState, type ConnectionHandler, type ConnectionOptions } from '../engine/connection.js'
import { ErrorCodes, WebSocketError, wsError } from '../engine/errors.js'
import { acceptResponse, selectProtocol, type ProtocolSelector } from '../engine/handshake.js'
import { giveBack } from '../engine/loans.js'
import type { InvalidMessageError, MessageCodec } from './messages.js'
import type { SocketRegistry } from './registry.js'
import { RouteSocket } from './socket.js'
import type { WsHandlers, WsLimits } from './types.js'
import { refuseUpgrade, type PendingUpgrade } from './upgrade.js'

/** The pino-like subset of a logger the routes use. */
export interface RouteLogger {
  error (object: object, message: string): void
  warn (object: object, message: string): void
  /** Refused inbound messages are logged here (at debug when absent). */
  info? (object: object, message: string): void
  debug (object: object, message: string): void
}

/** Network failures a server sees every day: logged at debug, not error. */
const NETWORK_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED'])

export function isNetworkError (error: Error): boolean {
  return NETWORK_ERRORS.has((error as NodeJS.ErrnoException).code ?? '')
}

export interface RouteRunnerOptions<TRequest> {
  handlers: WsHandlers<TRequest, any, any>
  limits: WsLimits
  protocols?: ProtocolSelector<TRequest>
  registry: SocketRegistry
  logger (request: TRequest): RouteLogger
  /** The route's `wsErrorHandler`, else the plugin's `errorHandler`: called for every error on a socket after the route's `error` handler. */
  errorHandler? (this: void, error: Error, socket: RouteSocket<TRequest>, request: TRequest | undefined): void
  /** JSON messages: decode, validate, route and refuse inbound messages; validate and serialize `send()`. Can also be set later with `setMessageCodec`. */
  messages?: MessageCodec<Handler>
}

type Handler = (...args: any[]) => unknown

export class RouteRunner<TRequest = unknown> implements ConnectionHandler {
  private readonly handlers: WsHandlers<TRequest, any, any>
  private readonly connectionOptions: ConnectionOptions
  private readonly protocols: ProtocolSelector<TRequest> | undefined
  private readonly registry: SocketRegistry
  private readonly logger: (request: TRequest) => RouteLogger
  private readonly errorHandler: RouteRunnerOptions<TRequest>['errorHandler']
  /** `keepRequest`: whether sockets keep their request after `open`. */
  private readonly keepRequest: boolean
  /** @internal The route's JSON message handling, when it has schemas. */
  codec: MessageCodec<Handler> | undefined

  constructor (options: RouteRunnerOptions<TRequest>) {
    // The limits were checked by `pickLimits` where the route was declared.
    const binaryMessages = options.limits.binaryMessages
    this.handlers = options.handlers
    // Text becomes a string before any handler sees it, so its memory is
    // always lent; binary only where the route borrows it (`binaryMessages`).
    this.connectionOptions = { ...options.limits, lendText: true, lendBinary: binaryMessages === 'borrow' }
    this.protocols = options.protocols
    this.registry = options.registry
    this.logger = options.logger
    this.errorHandler = options.errorHandler
    this.keepRequest = options.limits.keepRequest ?? true
    this.codec = options.messages
  }

  /** Installs the route's compiled message handling (frameworks that compile schemas lazily call it before the first `accept`). */
  setMessageCodec (codec: MessageCodec<Handler> | undefined): void {
    this.codec = codec
  }

  /** Completes a checked upgrade: 101, socket, `open`, then frames. */
  accept (upgrade: PendingUpgrade, request: TRequest): RouteSocket<TRequest> | undefined {
    const { socket, head } = upgrade
    if (upgrade.answered) {
      // The app's own answer goes out as it is (the socket closes once it is
      // written, or the handshake deadline answers 503 if it never is).
      this.logger(request).warn({}, 'websocket upgrade not completed: the request was already answered by a hook or middleware that let it go on')
      return undefined
    }
    // The handshake timed out while hooks or middleware ran: the client
    // already has its 503, and the socket lingers with its error guard.
    if (upgrade.expired) return undefined
    // A client that left while hooks or middleware ran: its FIN may already
    // have been read ('end' emitted), and the connection would never see it.
    if (socket.destroyed || socket.readableEnded) {
      upgrade.clearTimeout()
      socket.destroy()
      return undefined
    }
    // From here on the socket is answered here (and guarded again) or
    // handed to the connection.
    upgrade.release()
    // Hooks or middleware that were still running when shutdown began: the
    // registry has already said goodbye and would not close this socket, so
    // the server would wait on it forever. Refused like a later upgrade.
    if (this.registry.closing) {
      refuseUpgrade(socket, 503, 'server shutting down')
      return undefined
    }
    let protocol: string
    try {
      protocol = selectProtocol(upgrade.protocols, this.protocols, request)
    } catch (error) {
      // A `protocols` function that throws: the server's fault, answered as
      // such, and the socket closed once the answer is written.
      this.logger(request).error({ err: error }, 'websocket subprotocol selection failed')
      // With the error guard back (`release` removed it): a client that
      // resets after reading the 500 must not crash the process.
      refuseUpgrade(socket, 500, 'subprotocol selection failed')
      return undefined
    }
    socket.write(acceptResponse(upgrade.key, protocol))
    const ws = new RouteSocket(socket as Socket, this, request, this.logger(request), this.connectionOptions, protocol)
    this.registry.add(ws)
    const open = this.handlers.open
    if (open === undefined) {
      this.opened(ws, head)
      return ws
    }
    let result: unknown
    try {
      result = open(ws, request)
    } catch (error) {
      this.handlerFailed(ws, 'open', error)
      this.opened(ws, head)
      return ws
    }
    if (isPromise(result)) {
      // Frames that arrive meanwhile wait in the socket (bounded by its
      // buffer, then by TCP) and are parsed once `open` has settled.
      result.then(() => this.opened(ws, head), (error: unknown) => {
        this.handlerFailed(ws, 'open', error)
        this.opened(ws, head)
      })
    } else {
      this.opened(ws, head)
    }
    return ws
  }

  /** `open` is done: the socket lets go of its request if the route says so, and frames start. */
  private opened (ws: RouteSocket<TRequest>, head: Buffer): void {
    if (!this.keepRequest) ws.releaseRequest()
    ws.start(head)
  }

  // ------------------------------------------------ ConnectionHandler

  onMessage (connection: RouteSocket<TRequest>, data: Buffer, isBinary: boolean, lent: boolean): void {
    const codec = this.codec
    if (codec !== undefined && codec.decodes) {
      // Decoding is synchronous. A binary message is refused here: with
      // `'borrow'`, an `invalidMessage` function gets it borrowed too, and
      // an async one keeps the loan until its promise settles.
      const hookRunning = this.onJsonMessage(codec, connection, data, isBinary)
      if (hookRunning !== undefined) this.readAfter(connection, hookRunning, lent ? data : undefined)
      else if (lent) giveBack(data)
      return
    }
    const handler = this.handlers.message
    if (isBinary && handler !== undefined) {
      this.runMessage(connection, handler, data, true, lent)
      return
    }
    const text = isBinary ? undefined : data.toString()
    if (lent) giveBack(data)
    if (text !== undefined && handler !== undefined) this.runMessage(connection, handler, text, false, false)
  }

  /**
   * The socket is gone: it leaves the registry at once (its `close` handler
   * and everyone else's broadcasts no longer see it), but shutdown waits for
   * its `close` handler, which may still wait for an async `open`.
   */
  onGone (connection: RouteSocket<TRequest>): void {
    this.registry.leave(connection)
  }

  onClose (connection: RouteSocket<TRequest>, code: number, reason: Buffer): void {
    const handler = this.handlers.close
    // An async `close` (saving a session) is waited for at shutdown too.
    const running = handler === undefined ? undefined : this.run(connection, 'close', handler, code, reason.toString())
    this.registry.closed(running)
  }

  onDrain (connection: RouteSocket<TRequest>): void {
    const handler = this.handlers.drain
    if (handler !== undefined) this.run(connection, 'drain', handler)
  }

  onPing (connection: RouteSocket<TRequest>, data: Buffer): void {
    const handler = this.handlers.ping
    if (handler !== undefined) this.run(connection, 'ping', handler, data)
  }

  onPong (connection: RouteSocket<TRequest>, data: Buffer): void {
    const handler = this.handlers.pong
    if (handler !== undefined) this.run(connection, 'pong', handler, data)
  }

  onError (connection: RouteSocket<TRequest>, error: Error): void {
    const log = connection.log
    if (error instanceof WebSocketError) log.debug({ err: error }, `websocket closed: ${error.code}`)
    else if (isNetworkError(error)) log.debug({ err: error }, 'websocket network error')
    else log.error({ err: error }, 'websocket error')
    this.reportError(connection, error)
  }

  /** Returns the promise of an async `invalidMessage` hook still running on the message. */
  private onJsonMessage (codec: MessageCodec<Handler>, ws: RouteSocket<TRequest>, data: Buffer, isBinary: boolean): Promise<void> | undefined {
    let decoded
    try {
      decoded = codec.decode(data, isBinary)
    } catch (error) {
      // The validator itself threw: the server's fault, not the peer's.
      this.handlerFailed(ws, 'message validation', error)
      return undefined
    }
    if (decoded.ok) {
      const handler = decoded.handler ?? this.handlers.message
      if (handler !== undefined) this.runMessage(ws, handler, decoded.value, false, false)
      return undefined
    }
    return this.refuse(codec, ws, decoded.error, decoded.raw)
  }

  /**
   * An invalid inbound message: logged (never with its payload), reported to
   * the error handlers, counted, then the route's policy. Returns the
   * promise of an async hook, which settles (never rejects) with it.
   */
  private refuse (codec: MessageCodec<Handler>, ws: RouteSocket<TRequest>, error: InvalidMessageError, raw: string | Buffer): Promise<void> | undefined {
    const log = ws.log
    if (log.info !== undefined) log.info({ err: error }, `websocket message refused: ${error.code}`)
    else log.debug({ err: error }, `websocket message refused: ${error.code}`)
    this.reportError(ws, error)
    try {
      const decided = codec.refuse(ws, error, raw, (cause: unknown) => this.handlerFailed(ws, 'invalidMessage', cause))
      return typeof decided === 'object' ? decided : undefined
    } catch (cause) {
      this.handlerFailed(ws, 'invalidMessage', cause)
      return undefined
    }
  }

  /**
   * An async `invalidMessage` hook is awaited as `runMessage` awaits an async
   * handler: the socket reads nothing until it settles, so messages stay in
   * order and TCP pushes back on a peer that floods invalid ones. A borrowed
   * message (`lent`) stays lent until then.
   */
  private readAfter (ws: RouteSocket<TRequest>, done: Promise<void>, lent: Buffer | undefined): void {
    ws.pauseReading()
    done.then(() => {
      if (lent !== undefined) giveBack(lent)
      ws.resumeReading()
    })
  }

  // ------------------------------------------------ handler calls

  /**
   * Calls a user handler; a throw or a rejection fails this socket only.
   * Returns the promise of an async handler, which settles (never rejects)
   * with it.
   */
  private run (ws: RouteSocket<TRequest>, phase: string, handler: Handler, a?: unknown, b?: unknown): Promise<void> | undefined {
    let result: unknown
    try {
      result = handler(ws, a, b)
    } catch (error) {
      this.handlerFailed(ws, phase, error)
      return undefined
    }
    if (isPromise(result)) return result.then(undefined, (error: unknown) => this.handlerFailed(ws, phase, error))
    return undefined
  }

  /**
   * Calls a `message` handler. A synchronous one costs nothing more than
   * `run`; a promise pauses the socket's reading (the parser stops after this
   * message, the socket stops reading, TCP pushes back on the peer) until it
   * settles, so messages are handled one at a time, in order. A borrowed
   * message (`lent`) is given back when the handler has returned, or when
   * its promise has settled.
   */
  private runMessage (ws: RouteSocket<TRequest>, handler: Handler, data: unknown, isBinary: boolean, lent: boolean): void {
    let result: unknown
    try {
      result = handler(ws, data, isBinary)
    } catch (error) {
      if (lent) giveBack(data as Buffer)
      this.handlerFailed(ws, 'message', error)
      return
    }
    if (!isPromise(result)) {
      if (lent) giveBack(data as Buffer)
      return
    }
    ws.pauseReading()
    result.then(() => {
      if (lent) giveBack(data as Buffer)
      ws.resumeReading()
    }, (error: unknown) => {
      if (lent) giveBack(data as Buffer)
      this.handlerFailed(ws, 'message', error)
      // Read on: the peer's answer to our 1011 must still be seen.
      ws.resumeReading()
    })
  }

  private handlerFailed (ws: RouteSocket<TRequest>, phase: string, cause: unknown): void {
    const error = wsError(ErrorCodes.HANDLER_FAILED, `the ${phase} handler failed: ${describe(cause)}`, CloseCodes.INTERNAL_ERROR)
    error.cause = cause
    ws.log.error({ err: cause }, `websocket ${phase} handler failed`)
    this.reportError(ws, error)
    // §7.4.1: 1011 "indicates that a server is terminating the connection
    // because it encountered an unexpected condition".
    if (ws.readyState === ReadyState.OPEN) ws.close(CloseCodes.INTERNAL_ERROR)
  }

  /**
   * The route's `error` handler, then the route's `wsErrorHandler` or else
   * the plugin's `errorHandler`; their own failures (a throw or a rejection)
   * are only logged, and one's failure does not keep the other from running.
   */
  private reportError (ws: RouteSocket<TRequest>, error: Error): void {
    const routeHandler = this.handlers.error
    // Plain calls, as every handler: `this` is not the runner.
    const errorHandler = this.errorHandler
    if (routeHandler !== undefined) {
      try {
        guardErrorHandler(ws, routeHandler(ws, error))
      } catch (failure) {
        errorHandlerFailed(ws, failure)
      }
    }
    if (errorHandler !== undefined) {
      try {
        // After `open` on a keepRequest: false route, the request is gone: undefined.
        guardErrorHandler(ws, errorHandler(error, ws, ws.keptRequest))
      } catch (failure) {
        errorHandlerFailed(ws, failure)
      }
    }
  }
}

/** An async error handler's rejection is logged like a throw, never left unhandled. */
function guardErrorHandler (ws: RouteSocket<any>, result: unknown): void {
  if (isPromise(result)) result.then(undefined, (failure: unknown) => errorHandlerFailed(ws, failure))
}

function errorHandlerFailed (ws: RouteSocket<any>, failure: unknown): void {
  ws.log.error({ err: failure }, 'websocket error handler failed')
}

function isPromise (value: unknown): value is Promise<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as Promise<unknown>).then === 'function'
}

function describe (cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause)
}

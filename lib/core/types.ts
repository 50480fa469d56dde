/**
 * The public shapes shared by the Fastify plugin and the Express adapter:
 * the socket a handler receives, the handlers, and the per-route options.
 */
import type { CloseCode } from '../engine/close-codes.js'
import type { ConnectionOptions, ReadyState, SendOptions, SendStatus } from '../engine/connection.js'
import type { ProtocolSelector } from '../engine/handshake.js'
import type { InvalidMessagePolicy } from './messages.js'

/**
 * `send()`'s options: all of them where `send()` takes raw data, none that
 * would turn a send schema's JSON into a binary frame.
 */
export type SendOptionsFor<TSend> = [RawData] extends [TSend] ? SendOptions : SendOptions & { binary?: false }

/** What a handler's socket offers. `TSend` is what `send()` accepts. */
export interface WebSocket<TSend = RawData, TRequest = unknown> {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: ReadyState
  /** The negotiated subprotocol, '' when none. */
  readonly protocol: string
  /** Bytes queued for the peer and not yet handed to the kernel. */
  readonly bufferedAmount: number
  /** Messages dropped by the `drop` backpressure policy. */
  readonly droppedMessages: number
  /** Whether this socket is read directly into the shared buffer (`directReads`) rather than through 'data' events. */
  readonly readingDirectly: boolean
  /**
   * The request that opened the connection (Fastify's `FastifyRequest`,
   * Express's `Request`). On a route with `keepRequest: false` it is there
   * until `open` has returned (or its promise settled); reading it later
   * throws a TypeError.
   */
  readonly request: TRequest
  /**
   * Sends a message; strings go as text frames, binary data as binary frames
   * unless `options.binary` says otherwise. On a route with a `send` schema it
   * takes the schema's type: the value is validated and serialized (a text
   * frame), and one that does not match throws `WS_ERR_INVALID_OUTBOUND`
   * with nothing sent; JSON always goes as text (`binary: true` there does
   * not compile, and is a TypeError at run time).
   */
  send (data: TSend, options?: SendOptionsFor<TSend>): SendStatus
  /** Sends a string or bytes as they are, bypassing any `send` schema (for example one message serialized once for many sockets). */
  sendRaw (data: RawData, options?: SendOptions): SendStatus
  /** Invalid inbound messages on a JSON route, counted whatever the `invalidMessage` policy did with them. */
  readonly invalidMessages: number
  /** Sends a ping (at most 125 bytes: text as UTF-8, or bytes as `send()` takes them). */
  ping (data?: RawData): SendStatus
  pong (data?: RawData): SendStatus
  /**
   * Starts the closing handshake. Only codes an endpoint may send compile:
   * 1000–1003, 1007–1014, 3000–4999. The reason is at most 123 UTF-8 bytes.
   */
  close (code?: CloseCode, reason?: string): void
  /** Drops the TCP connection at once. */
  terminate (): void
}

/** Anything `send()` takes on a route without a `send` schema. */
export type RawData = string | Buffer | ArrayBuffer | ArrayBufferView

type MaybePromise<T> = T | Promise<T>

/**
 * The handlers of a route. They are called as plain functions: `this` is
 * undefined in them (typed `void`, so `this.…` does not compile); what a
 * handler needs comes through its socket (`socket.request`) or its closure.
 */
export interface WsHandlers<TRequest = unknown, TMessage = string | Buffer, TSend = RawData> {
  /** The connection is open. Frames that arrive while an async `open` runs are delivered after it settles. */
  open? (this: void, socket: WebSocket<TSend, TRequest>, request: TRequest): MaybePromise<void>
  /** A message: text as a string, binary as a Buffer (or the validated object on a schema route). */
  message? (this: void, socket: WebSocket<TSend, TRequest>, data: TMessage, isBinary: boolean): MaybePromise<void>
  /**
   * The connection is closed (once). `code` is the peer's close code (1005
   * for a close frame without one), 1006 when TCP ended without a close
   * frame, or after a protocol error the code the connection was failed
   * with (1002, 1007, 1009…).
   */
  close? (this: void, socket: WebSocket<TSend, TRequest>, code: number, reason: string): MaybePromise<void>
  /** The socket's buffer emptied after `send()` returned BUFFERED. */
  drain? (this: void, socket: WebSocket<TSend, TRequest>): void
  /** A protocol error, network error or handler failure on this socket (`error.code` tells which). */
  error? (this: void, socket: WebSocket<TSend, TRequest>, error: Error): void
  ping? (this: void, socket: WebSocket<TSend, TRequest>, data: Buffer): void
  pong? (this: void, socket: WebSocket<TSend, TRequest>, data: Buffer): void
}

/**
 * Limits and behaviour, set plugin-wide and overridden per route: the
 * engine's connection limits (documented, with their defaults, where the
 * engine reads them) plus the handshake deadline the adapters enforce.
 */
export interface WsLimits extends Omit<ConnectionOptions, 'protocol' | 'lendText' | 'lendBinary'> {
  /**
   * Milliseconds from a complete upgrade request to the 101: hooks or
   * middleware still running then get the client a 503 and the socket is
   * closed. Default 10000; 0 turns it off. A route's own value takes over
   * once the request reaches the route (its own hooks or middleware).
   */
  handshakeTimeout?: number
  /**
   * Whether each socket keeps the request that opened it (`socket.request`)
   * for as long as it is open. Default true. With false, the request reaches
   * the hooks or middleware and `open(socket, request)` as usual, and the
   * socket lets go of it once `open` has returned (or its promise settled):
   * the request and Node's `IncomingMessage` with its headers are about
   * half of what an idle connection costs (README, "Keeping the request").
   * Keep what later handlers need in `open`. Reading `socket.request`
   * afterwards throws a TypeError, and error handlers receive `undefined`
   * for the request.
   */
  keepRequest?: boolean
  /**
   * What a `message` handler gets for a binary message. `own` (default): a
   * Buffer of its own, which the handler may keep. `borrow`: a Buffer lent
   * for the handler's call, until it returns or, for an async handler, its
   * promise settles; the memory then carries a later message. Sending it on
   * (`socket.send(data)`, to any socket) is safe, but keeping it, or a view
   * of it, is not: copy what must outlive the call (`Buffer.from(data)`).
   * A large message then costs no allocation, and V8's collector is spared
   * the ArrayBuffers (README, "Borrowed binary messages"). Text messages
   * reach handlers as strings and are never affected.
   */
  binaryMessages?: 'own' | 'borrow'
}

/** One entry of `messages`: the schema of that message type (the whole message, discriminator included) and its handler. */
export interface WsMessageRoute<TRequest = unknown, TMessage = unknown, TSend = RawData, TSchema = unknown> {
  schema?: TSchema
  handler (this: void, socket: WebSocket<TSend, TRequest>, message: TMessage): MaybePromise<void>
}

/** The JSON-message options of a route (the schemas themselves are in the route's `schema`: `message`, `send`). */
export interface WsMessageOptions<TRequest = unknown, TSend = RawData> {
  /**
   * Handlers by message type: `{ join: { schema, handler }, say: { schema, handler } }`.
   * The message's `discriminator` property picks the entry; a missing or
   * unknown type is an invalid message (`WS_ERR_UNKNOWN_MESSAGE_TYPE`).
   * A route has either `message` or `messages`.
   */
  messages?: Record<string, WsMessageRoute<TRequest, unknown, TSend>>
  /** The property that names a message's type in `messages` and in the error envelope. Default `type`. */
  discriminator?: string
  /**
   * What happens to an inbound message that is not valid JSON, does not
   * match its schema, has an unknown type, or is binary on a JSON route:
   * `close` (default; 1007 for bad JSON, 1008 for a mismatch or an unknown
   * type, 1003 for binary), `reply` (an error envelope, the connection stays
   * open), `ignore`, or a function that decides (returns one of those, or acts
   * itself and returns nothing). Every one is counted in `socket.invalidMessages`.
   */
  invalidMessage?: InvalidMessagePolicy<WebSocket<TSend, TRequest>>
}

/** The schemas a JSON route may declare next to Fastify's (`params`, `querystring`, `headers`). */
export interface WsMessageSchemas {
  /** Every inbound text message is parsed as JSON and validated with it. */
  message?: unknown
  /** What `send()` takes: validated, then serialized with it. */
  send?: unknown
}

export interface WsRouteOptions<TRequest = unknown, TMessage = string | Buffer, TSend = RawData>
  extends WsHandlers<TRequest, TMessage, TSend>, WsLimits, WsMessageOptions<TRequest, TSend> {
  /** Subprotocols this route speaks, in order of preference, or a function choosing among the client's offers. */
  protocols?: ProtocolSelector<TRequest>
  /**
   * This route's error handler: replaces the plugin's (adapter's)
   * `errorHandler` for its sockets. Called for every error, after the
   * route's `error` handler. (Not `errorHandler`: on a Fastify route that
   * name is Fastify's own, for the HTTP part before the 101.)
   */
  wsErrorHandler?: WsErrorHandler<WebSocket<TSend, TRequest>, TRequest>
}

/**
 * The error channel: every error on a socket, told apart by `error.code`:
 * `WS_ERR_HANDLER_FAILED` (a handler threw or rejected; `error.cause`), the
 * protocol codes `WS_ERR_*`, the invalid-message codes of JSON routes
 * (`WS_ERR_INVALID_JSON`, `WS_ERR_INVALID_MESSAGE`, `WS_ERR_UNKNOWN_MESSAGE_TYPE`,
 * `WS_ERR_BINARY_NOT_ALLOWED`), `WS_ERR_IDLE_TIMEOUT`, `WS_ERR_CLOSE_TIMEOUT`,
 * and Node's own codes for network errors (`ECONNRESET`, `EPIPE`, …).
 * `request` is the socket's request; on a route with `keepRequest: false`
 * it is `undefined` once `open` has returned.
 */
export type WsErrorHandler<TSocket = WebSocket, TRequest = unknown> = (this: void, error: Error, socket: TSocket, request: TRequest | undefined) => void

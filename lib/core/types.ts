/**
 * The public shapes shared by the Fastify plugin and the Express adapter:
 * the socket a handler receives, the handlers, and the per-route options.
 */
import type { CloseCode } from '../engine/close-codes.js'
import type { BackpressurePolicy, ReadyState, SendOptions, SendStatus } from '../engine/connection.js'
import type { ProtocolSelector } from '../engine/handshake.js'

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
  /** The request that opened the connection (Fastify's `FastifyRequest`, Express's `Request`). */
  readonly request: TRequest
  /** Sends a message; strings go as text frames, binary data as binary frames unless `options.binary` says otherwise. */
  send (data: TSend, options?: SendOptions): SendStatus
  ping (data?: string | Buffer): SendStatus
  pong (data?: string | Buffer): SendStatus
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

export interface WsHandlers<TRequest = unknown, TMessage = string | Buffer, TSend = RawData> {
  /** The connection is open. Frames that arrive while an async `open` runs are delivered after it settles. */
  open? (socket: WebSocket<TSend, TRequest>, request: TRequest): MaybePromise<void>
  /** A message: text as a string, binary as a Buffer (or the validated object on a schema route). */
  message? (socket: WebSocket<TSend, TRequest>, data: TMessage, isBinary: boolean): MaybePromise<void>
  /** The connection is closed (once). `code` is 1006 when it ended without a close frame. */
  close? (socket: WebSocket<TSend, TRequest>, code: number, reason: string): MaybePromise<void>
  /** The socket's buffer emptied after `send()` returned BUFFERED. */
  drain? (socket: WebSocket<TSend, TRequest>): void
  /** A protocol error, network error or handler failure on this socket (`error.code` tells which). */
  error? (socket: WebSocket<TSend, TRequest>, error: Error): void
  ping? (socket: WebSocket<TSend, TRequest>, data: Buffer): void
  pong? (socket: WebSocket<TSend, TRequest>, data: Buffer): void
}

/** Limits and behaviour, set plugin-wide and overridden per route. */
export interface WsLimits {
  /** Largest incoming message in bytes. Default 1 MiB. */
  maxPayload?: number
  /** Most frames per incoming message. Default 65536. */
  maxFragments?: number
  /** Milliseconds to wait for the peer's side of the closing handshake. Default 5000. */
  closeTimeout?: number
  /** Bytes queued for a peer above which `backpressurePolicy` applies. Default Infinity. */
  maxBackpressure?: number
  /** `close` (1008) or `drop`. Default `close`. */
  backpressurePolicy?: BackpressurePolicy
}

export interface WsRouteOptions<TRequest = unknown, TMessage = string | Buffer, TSend = RawData>
  extends WsHandlers<TRequest, TMessage, TSend>, WsLimits {
  /** Subprotocols this route speaks, in order of preference, or a function choosing among the client's offers. */
  protocols?: ProtocolSelector<TRequest>
}

/**
 * One error type for everything the engine reports. Every error carries a
 * stable `code` (documented in the README) and, where the error ends the
 * connection, the close code sent to the peer.
 */

export const ErrorCodes = {
  /** A frame used an opcode RFC 6455 does not define (1002). */
  INVALID_OPCODE: 'WS_ERR_INVALID_OPCODE',
  /** RSV1-3 set without an extension that defines them (1002). */
  UNEXPECTED_RSV: 'WS_ERR_UNEXPECTED_RSV',
  /** A client frame arrived unmasked (1002). */
  EXPECTED_MASK: 'WS_ERR_EXPECTED_MASK',
  /** A server frame arrived masked, at a client (1002). */
  UNEXPECTED_MASK: 'WS_ERR_UNEXPECTED_MASK',
  /** A control frame was fragmented (1002). */
  EXPECTED_FIN: 'WS_ERR_EXPECTED_FIN',
  /** A control frame carried more than 125 bytes (1002). */
  INVALID_CONTROL_PAYLOAD_LENGTH: 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH',
  /** A 64-bit payload length had its most significant bit set (1002). */
  UNSUPPORTED_DATA_PAYLOAD_LENGTH: 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH',
  /** A continuation frame arrived with no message to continue (1002). */
  UNEXPECTED_CONTINUATION: 'WS_ERR_UNEXPECTED_CONTINUATION',
  /** A new text/binary frame arrived while a fragmented message was open (1002). */
  EXPECTED_CONTINUATION: 'WS_ERR_EXPECTED_CONTINUATION',
  /** A text message or close reason was not valid UTF-8 (1007). */
  INVALID_UTF8: 'WS_ERR_INVALID_UTF8',
  /** A message was larger than `maxPayload` (1009). */
  MAX_PAYLOAD: 'WS_ERR_MAX_PAYLOAD',
  /** A message was split into more than `maxFragments` frames (1009). */
  TOO_MANY_FRAGMENTS: 'WS_ERR_TOO_MANY_FRAGMENTS',
  /** A close frame carried a code that may not be sent on the wire (1002); also the TypeError of `close()`. */
  INVALID_CLOSE_CODE: 'WS_ERR_INVALID_CLOSE_CODE',
  /** A close frame carried a one-byte payload (1002). */
  INVALID_CLOSE_PAYLOAD: 'WS_ERR_INVALID_CLOSE_PAYLOAD',
  /** `close()` was given a reason longer than 123 UTF-8 bytes (RangeError). */
  CLOSE_REASON_TOO_LONG: 'WS_ERR_CLOSE_REASON_TOO_LONG',
  /** The peer did not answer our close frame within `closeTimeout`; the TCP connection was destroyed. */
  CLOSE_TIMEOUT: 'WS_ERR_CLOSE_TIMEOUT',
  /** A route handler threw or rejected (1011). */
  HANDLER_FAILED: 'WS_ERR_HANDLER_FAILED',
  /** The peer sent nothing for `idleTimeout` seconds and did not answer the heartbeat ping; the connection was dropped (close reports 1006). */
  IDLE_TIMEOUT: 'WS_ERR_IDLE_TIMEOUT',
  /** `send()`/`ping()` on a connection that is closing or closed. */
  NOT_OPEN: 'WS_ERR_NOT_OPEN',
  /** The opening handshake was invalid; answered with an HTTP status, no upgrade. */
  INVALID_HANDSHAKE: 'WS_ERR_INVALID_HANDSHAKE',
  /** A control frame payload passed to `ping()`/`pong()` was over 125 bytes (RangeError). */
  CONTROL_PAYLOAD_TOO_LONG: 'WS_ERR_CONTROL_PAYLOAD_TOO_LONG',
  /** On a JSON route, a text message was not valid JSON or carried a `__proto__`/`constructor.prototype` key (1007 under the `close` policy). */
  INVALID_JSON: 'WS_ERR_INVALID_JSON',
  /** On a JSON route, a message did not match the route's message schema (1008 under the `close` policy); `error.validation` holds the validator's errors. */
  INVALID_MESSAGE: 'WS_ERR_INVALID_MESSAGE',
  /** On a route with `messages`, the discriminator property was missing or named no handler (1008 under the `close` policy). */
  UNKNOWN_MESSAGE_TYPE: 'WS_ERR_UNKNOWN_MESSAGE_TYPE',
  /** On a JSON route, a binary message arrived (1003 under the `close` policy, RFC 6455 §7.4.1). */
  BINARY_NOT_ALLOWED: 'WS_ERR_BINARY_NOT_ALLOWED',
  /** `send()` on a route with a `send` schema was given a value that does not match it; nothing was sent, the connection stays open. */
  INVALID_OUTBOUND: 'WS_ERR_INVALID_OUTBOUND',
} as const

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]

export class WebSocketError extends Error {
  override name = 'WebSocketError'
  readonly code: ErrorCode
  /** The close code this error ends the connection with, or 0 when it does not close it. */
  readonly closeCode: number

  constructor (code: ErrorCode, message: string, closeCode: number) {
    super(message)
    this.code = code
    this.closeCode = closeCode
  }
}

/** The one factory: every protocol error is made here, so `code` and `closeCode` never drift apart. */
export function wsError (code: ErrorCode, message: string, closeCode = 0): WebSocketError {
  return new WebSocketError(code, message, closeCode)
}

/** A `TypeError` with a stable code, for invalid arguments (for example `close(1005)`). */
export function wsTypeError (code: ErrorCode, message: string): TypeError & { code: ErrorCode } {
  const err = new TypeError(message) as TypeError & { code: ErrorCode }
  err.code = code
  return err
}

/** A `RangeError` with a stable code, for out-of-range arguments (for example a 200-byte close reason). */
export function wsRangeError (code: ErrorCode, message: string): RangeError & { code: ErrorCode } {
  const err = new RangeError(message) as RangeError & { code: ErrorCode }
  err.code = code
  return err
}

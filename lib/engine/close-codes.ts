/**
 * Close codes (RFC 6455 §7.4).
 *
 * `CloseCode` is the type of the codes an application may *send*: 1000–1003,
 * 1007–1014 and 3000–4999. 1004 is reserved, 1005, 1006 and 1015 "MUST NOT be
 * set as a status code in a Close control frame by an endpoint", and
 * 1016–2999 are reserved for future revisions of the protocol. A literal
 * outside that set is a compile-time error; a computed number is checked at
 * run time by `close()`.
 */

type Digit = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9
type Hundreds = `${Digit}${Digit}`
type NumberFrom<S> = S extends `${infer N extends number}` ? N : never

/** 3000–3999 (registered with IANA) and 4000–4999 (private use). */
export type ApplicationCloseCode = NumberFrom<`${3 | 4}${Digit}${Hundreds}`>
/** The protocol-defined codes an endpoint may put in a Close frame. */
export type ProtocolCloseCode = 1000 | 1001 | 1002 | 1003 | 1007 | 1008 | 1009 | 1010 | 1011 | 1012 | 1013 | 1014
/** Every code `socket.close()` accepts. */
export type CloseCode = ProtocolCloseCode | ApplicationCloseCode

export const CloseCodes = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  /** Received only: the peer's close frame had no status code. Never sent. */
  NO_STATUS: 1005,
  /** Received only: the connection ended without a close frame. Never sent. */
  ABNORMAL: 1006,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  MANDATORY_EXTENSION: 1010,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  BAD_GATEWAY: 1014,
} as const

/**
 * Whether `code` may appear in a Close frame on the wire, in either direction.
 * A received frame with any other code is a protocol error (1002).
 */
export function isValidCloseCode (code: number): code is CloseCode {
  // A computed 1004.5 would pass the range checks, and the writer would put
  // its integer part, a reserved code, on the wire.
  return Number.isInteger(code) && (
    (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999)
  )
}

/** Maximum close reason: a control frame carries 125 bytes, two of which are the code. */
export const MAX_CLOSE_REASON_BYTES = 123

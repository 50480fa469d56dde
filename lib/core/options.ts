/**
 * Small pieces of route configuration that every framework adapter shares:
 * which keys are limits, the checks of adapter-wide options, and the answer
 * to a plain HTTP request on a route that only speaks WebSocket.
 */
import type { Server } from 'node:http'
import { MAX_CLOSE_REASON_BYTES } from '../engine/close-codes.js'
import { ErrorCodes, wsRangeError } from '../engine/errors.js'
import type { WsLimits } from './types.js'

/** The keys of `WsLimits`, set adapter-wide and overridden per route. */
export const LIMIT_KEYS = ['maxPayload', 'maxFragments', 'closeTimeout', 'maxBackpressure', 'backpressurePolicy', 'idleTimeout', 'directReads', 'keepRequest', 'binaryMessages'] as const

/** The limits set in `source`, without the keys it leaves undefined (so they do not override defaults). */
export function pickLimits (source: WsLimits): WsLimits {
  const limits: Record<string, unknown> = {}
  for (const key of LIMIT_KEYS) if (source[key] !== undefined) limits[key] = source[key]
  return limits as WsLimits
}

/**
 * A plain HTTP request to a WebSocket-only route. RFC 9110 §15.5.22: a 426
 * response "MUST send an Upgrade header field", and §7.8: "When Upgrade is
 * sent, the sender MUST also send a Connection header field that contains an
 * "upgrade" connection option".
 */
export const UPGRADE_REQUIRED = {
  statusCode: 426,
  headers: { upgrade: 'websocket', connection: 'upgrade' },
  body: {
    statusCode: 426,
    error: 'Upgrade Required',
    message: 'this route only accepts WebSocket connections',
  },
} as const

/**
 * The reason sent with every 1001 on shutdown, checked when the adapter is
 * set up rather than on the first socket it would close: a reason over 123
 * bytes would make each `close()` throw (§5.5: a control frame's payload is
 * at most 125 bytes, two of them the code), and shutdown could not finish.
 */
export function checkShutdownReason (reason: string): string {
  const bytes = Buffer.byteLength(reason)
  if (bytes > MAX_CLOSE_REASON_BYTES) {
    throw wsRangeError(ErrorCodes.CLOSE_REASON_TOO_LONG, `wsroutes: shutdownReason is ${bytes} bytes of UTF-8; the limit is ${MAX_CLOSE_REASON_BYTES}`)
  }
  return reason
}

const servedServers = new WeakSet<object>()

/**
 * Claims `server`'s upgrades for one adapter. Each adapter answers every
 * upgrade request on its server (a 404 where none of its routes matches),
 * so a second one on the same server would answer the same requests again.
 */
export function claimServer (server: Server | object): void {
  if (servedServers.has(server)) {
    throw new Error('wsroutes: this server already has a wsroutes adapter; serve every WebSocket route of a server through one wsExpress() or one registration of the Fastify plugin')
  }
  servedServers.add(server)
}

/**
 * Small pieces of route configuration that every framework adapter shares:
 * which keys are limits, and the answer to a plain HTTP request on a route
 * that only speaks WebSocket.
 */
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
 * response "MUST send an Upgrade header field".
 */
export const UPGRADE_REQUIRED = {
  statusCode: 426,
  headers: { upgrade: 'websocket' },
  body: {
    statusCode: 426,
    error: 'Upgrade Required',
    message: 'this route only accepts WebSocket connections',
  },
} as const

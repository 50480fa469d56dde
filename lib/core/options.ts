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

/** Node's timers take at most 2^31 - 1 ms; a longer one fires after 1 ms (with a warning). */
export const MAX_TIMER_MS = 2 ** 31 - 1

const isNumber = (value: unknown): value is number => typeof value === 'number' && !Number.isNaN(value)
const positive = (value: unknown): boolean => isNumber(value) && value > 0
const atLeastZero = (value: unknown): boolean => isNumber(value) && value >= 0
const timerMs = (value: unknown): boolean => atLeastZero(value) && (value as number) <= MAX_TIMER_MS
const isBoolean = (value: unknown): boolean => typeof value === 'boolean'

/**
 * What each limit accepts, and what the error says otherwise. A mistake
 * fails where the adapter or the route is set up, not on the first
 * connection, where it would close every socket (`maxPayload: 0`) or go
 * unnoticed (`backpressurePolicy: 'nope'`).
 */
const LIMIT_RULES: Record<typeof LIMIT_KEYS[number] | 'handshakeTimeout', { ok: (value: unknown) => boolean, expected: string }> = {
  maxPayload: { ok: positive, expected: 'a number of bytes above 0 (Infinity for no limit)' },
  maxFragments: { ok: positive, expected: 'a number of frames above 0 (Infinity for no limit)' },
  closeTimeout: { ok: timerMs, expected: `a number of milliseconds from 0 to ${MAX_TIMER_MS}` },
  maxBackpressure: { ok: atLeastZero, expected: 'a number of bytes, 0 or more (Infinity for no limit)' },
  backpressurePolicy: { ok: value => value === 'close' || value === 'drop', expected: "'close' or 'drop'" },
  idleTimeout: { ok: value => timerMs(value) && (value as number) * 1000 <= MAX_TIMER_MS, expected: `a number of seconds from 0 to ${Math.floor(MAX_TIMER_MS / 1000)} (0: no heartbeat)` },
  handshakeTimeout: { ok: timerMs, expected: `a number of milliseconds from 0 to ${MAX_TIMER_MS} (0: no deadline)` },
  directReads: { ok: isBoolean, expected: 'true or false' },
  keepRequest: { ok: isBoolean, expected: 'true or false' },
  binaryMessages: { ok: value => value === 'own' || value === 'borrow', expected: "'own' or 'borrow'" },
}

/**
 * The limits set in `source`, without the keys it leaves undefined (so they
 * do not override defaults). Every limit set there, `handshakeTimeout`
 * included, is checked: a TypeError names the one that is wrong.
 */
export function pickLimits (source: WsLimits): WsLimits {
  const limits: Record<string, unknown> = {}
  for (const key of Object.keys(LIMIT_RULES) as Array<keyof typeof LIMIT_RULES>) {
    const value = source[key]
    if (value === undefined) continue
    const rule = LIMIT_RULES[key]
    if (!rule.ok(value)) throw new TypeError(`wsroutes: ${key} must be ${rule.expected}, not ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`)
    if (key !== 'handshakeTimeout') limits[key] = value
  }
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

/**
 * The first steps of every upgrade, whichever framework routes it: check the
 * handshake, keep the raw socket from crashing the process while hooks or
 * middleware run, and give the framework an HTTP response object that writes
 * to the raw socket, so a hook's 401 or a 404 is a real HTTP answer.
 */
import { ServerResponse, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { checkUpgradeRequest, writeHttpResponse } from '../engine/handshake.js'

export const kUpgrade = Symbol('wsroutes.upgrade')

export interface PendingUpgrade {
  socket: Duplex
  head: Buffer
  key: string
  protocols: string[]
  /** Hands the socket over to the WebSocket connection (detaches the HTTP response and the guard). */
  release (): void
}

export type UpgradeRequest = IncomingMessage & { [kUpgrade]?: PendingUpgrade }

function destroyOnError (this: Duplex): void {
  // Until a connection owns the socket, an error (ECONNRESET while an auth
  // hook runs) only ends it; there is no listener left by the HTTP server.
  this.destroy()
}

function endSocketAfterResponse (this: ServerResponse): void {
  const socket = this.socket
  if (socket !== null) {
    this.detachSocket(socket)
    socket.end()
  }
}

/**
 * Checks the handshake. On failure the client gets the HTTP status and the
 * socket is closed; on success the request carries a `PendingUpgrade` and the
 * returned response writes to the raw socket.
 */
export function beginUpgrade (request: IncomingMessage, socket: Duplex, head: Buffer): ServerResponse | undefined {
  socket.on('error', destroyOnError)
  const check = checkUpgradeRequest(request)
  if (!check.ok) {
    writeHttpResponse(socket, check.status, check.headers, check.message)
    return undefined
  }
  const response = new ServerResponse(request)
  response.shouldKeepAlive = false
  response.assignSocket(socket as any)
  response.once('finish', endSocketAfterResponse)
  ;(request as UpgradeRequest)[kUpgrade] = {
    socket,
    head,
    key: check.key,
    protocols: check.protocols,
    release () {
      response.off('finish', endSocketAfterResponse)
      if (response.socket !== null) response.detachSocket(response.socket)
      socket.off('error', destroyOnError)
    },
  }
  return response
}

/** Refuses upgrades while the server shuts down. */
export function refuseUpgrade (socket: Duplex, status: number, message: string): void {
  socket.on('error', destroyOnError)
  writeHttpResponse(socket, status, {}, message)
}

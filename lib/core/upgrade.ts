/**
 * The first steps of every upgrade, whichever framework routes it: check the
 * handshake, keep the raw socket from crashing the process while hooks or
 * middleware run, and give the framework an HTTP response object that writes
 * to the raw socket, so a hook's 401 or a 404 is a real HTTP answer.
 */
import { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { nextTick } from 'node:process'
import type { Duplex } from 'node:stream'
import { checkUpgradeRequest, endAndLinger, headerHasToken, writeHttpResponse } from '../engine/handshake.js'

export const kUpgrade = Symbol('wsroutes.upgrade')
/** When an upgrade that first waited behind an earlier response arrived. */
const kArrived = Symbol('wsroutes.arrived')

/** Milliseconds from a complete upgrade request to the 101 (`handshakeTimeout`). */
export const DEFAULT_HANDSHAKE_TIMEOUT = 10_000

/**
 * An upgrade that passed the handshake check and waits for the framework's
 * routing, hooks or middleware to decide.
 */
export class PendingUpgrade {
  /** The handshake timed out: the client got a 503 and the socket was closed; it must not be upgraded. */
  expired = false
  /** The app began a response of its own (see `answered`). */
  private answeredByApp = false
  /** When the upgrade request arrived (`performance.now()`), a wait behind an earlier response included. */
  private readonly arrived: number
  private timer: NodeJS.Timeout | undefined

  constructor (
    readonly socket: Duplex,
    readonly head: Buffer,
    readonly key: string,
    readonly protocols: string[],
    private request: UpgradeRequest | undefined,
    private response: ServerResponse | undefined,
  ) {
    this.arrived = request?.[kArrived] ?? performance.now()
  }

  /**
   * Hands the socket over to the WebSocket connection: detaches the HTTP
   * response and the early error guard, and drops every reference the
   * request held, so an open connection keeps neither the response nor this
   * object alive.
   */
  release (): void {
    this.clearTimeout()
    const response = this.response
    if (response !== undefined) {
      response.off('finish', endSocketAfterResponse)
      response.off('close', abortUnansweredRequest)
      if (response.socket !== null) response.detachSocket(response.socket)
      this.response = undefined
    }
    if (this.request !== undefined) {
      this.request[kUpgrade] = undefined
      this.request = undefined
    }
    this.socket.off('error', destroyOnError)
    this.socket.off('end', destroyWhenClientLeaves)
  }

  /**
   * Whether the app has answered this request itself: a hook or middleware
   * sent a response and still let the request go on to its route (Fastify:
   * an async hook that called `reply.send()` without returning the reply;
   * Express: `res.status(401).json(…)` followed by `next()`). That answer
   * stands, and no 101 may follow it: upgrading there would let the request
   * past the very hook that refused it.
   */
  get answered (): boolean {
    const response = this.response
    // A status set (`reply.code(401)`, `res.status(401)`) is an answer on
    // its way, even one whose sending is still to come (`res.sendFile`).
    return this.answeredByApp || (response !== undefined && (response.statusCode !== 200 || response.headersSent || response.writableEnded))
  }

  /** The framework began sending a response (Fastify: `reply.send` was called). */
  markAnswered (): void {
    this.answeredByApp = true
  }

  /**
   * Sets the deadline for the 101 to `ms` after the request arrived (0: no
   * deadline), replacing any earlier one. A route with its own
   * `handshakeTimeout` calls it once the request has reached the route.
   */
  setTimeout (ms: number): void {
    this.clearTimeout()
    if (ms <= 0 || this.expired || this.response === undefined) return
    this.timer = setTimeout(expireUpgrade, Math.max(0, this.arrived + ms - performance.now()), this)
    this.timer.unref()
  }

  /** @internal */
  clearTimeout (): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
  }

  /**
   * The deadline passed with hooks or middleware still running: the client
   * gets a 503 and the socket is closed. The framework's response is cut
   * loose, so whatever the hooks answer later goes nowhere, and `accept`
   * refuses this upgrade. A response already on its way is left to finish.
   */
  expire (): void {
    this.timer = undefined
    const response = this.response
    const socket = this.socket
    if (response === undefined || response.headersSent || socket.destroyed || socket.writableEnded) return
    this.expired = true
    response.off('finish', endSocketAfterResponse)
    response.off('close', abortUnansweredRequest)
    if (response.socket !== null) response.detachSocket(response.socket)
    this.response = undefined
    answerTimedOut(socket)
    // The hooks still running have lost their client: once the 503 is out
    // (destroying the request earlier would take the socket with it).
    const request = this.request
    if (request !== undefined) socket.once('close', () => { request.destroy() })
  }
}

/** The 503 of an upgrade whose `handshakeTimeout` passed before its 101. */
function answerTimedOut (socket: Duplex): void {
  writeHttpResponse(socket, 503, {}, 'handshake timed out')
}

function expireUpgrade (upgrade: PendingUpgrade): void {
  upgrade.expire()
}

export type UpgradeRequest = IncomingMessage & { [kUpgrade]?: PendingUpgrade, [kArrived]?: number }

function destroyOnError (this: Duplex): void {
  // Until a connection owns the socket, an error (ECONNRESET while an auth
  // hook runs) only ends it; there is no listener left by the HTTP server.
  this.destroy()
}

function destroyWhenClientLeaves (this: Duplex): void {
  // The client's FIN before anything was answered: as Node's HTTP server
  // takes it (without `httpAllowHalfOpen`), the client is gone. A WebSocket
  // client that has stopped sending cannot use a 101 either. Destroying the
  // socket closes the response, which aborts the request
  // (`abortUnansweredRequest`). An answer already on its way is left to
  // finish; the socket then closes by itself.
  if (!this.writableEnded) this.destroy()
}

function endSocketAfterResponse (this: ServerResponse): void {
  // A hook or the router answered (401, 404, …): no deadline any more.
  ;(this.req as UpgradeRequest | undefined)?.[kUpgrade]?.clearTimeout()
  const socket = this.socket
  if (socket !== null) {
    this.detachSocket(socket)
    endAndLinger(socket)
  }
}

/**
 * HTTP/1.1 pipelining: a client may send an upgrade request right behind
 * another request on the same connection, and Node emits 'upgrade' as soon
 * as it has parsed the head, while the app may still be answering the
 * request before. RFC 9112 §9.3.2: a server "MUST send the corresponding
 * responses in the same order that the requests were received". So such an
 * upgrade waits until that response is written, then `retry` handles it
 * (Node's own `_httpMessage`, the response that owns the socket, tells; a
 * second response cannot be assigned to it meanwhile). The wait counts
 * toward `handshakeTimeout`, measured from the upgrade's arrival: past it,
 * the upgrade gets its 503 once that response is out (the response itself
 * is never cut short). Sockets waiting are in `waiting` meanwhile, for a
 * shutdown that must close them. Returns whether the upgrade has to wait.
 */
export function waitForEarlierResponse (request: IncomingMessage, socket: Duplex, head: Buffer, retry: (request: IncomingMessage, socket: Duplex, head: Buffer) => void, waiting?: Set<Duplex>): boolean {
  const owner = (socket as { _httpMessage?: ServerResponse | null })._httpMessage
  if (owner === undefined || owner === null) return false
  const earlier: ServerResponse = owner
  ;(request as UpgradeRequest)[kArrived] ??= performance.now()
  socket.on('error', destroyOnError)
  waiting?.add(socket)
  // Node took its own socket listeners away with the upgrade; for the
  // response still being written they are needed, so they stand in for
  // them, as Node's HTTP server has them:
  // - 'drain' tells the response it may write on (a streamed one would stall);
  const drained = (): void => { relayDrain(socket) }
  // - the client's FIN ends the connection (no upgrade can follow);
  const clientEnded = (): void => {
    stopWaiting()
    socket.end()
  }
  // - the server's socket timeout (`server.timeout`) hangs up.
  const timedOut = (): void => { socket.destroy() }
  socket.on('drain', drained)
  socket.on('end', clientEnded)
  socket.on('timeout', timedOut)
  function stopWaiting (): void {
    waiting?.delete(socket)
    earlier.off('finish', written)
    socket.off('close', stopWaiting)
    socket.off('drain', drained)
    socket.off('end', clientEnded)
    socket.off('timeout', timedOut)
  }
  function written (): void {
    stopWaiting()
    // After Node's own 'finish' listener, which hands the socket on (to a
    // response queued behind this one, or to nobody) in this same emit.
    nextTick(() => {
      // That response ended the connection (`Connection: close`), or the
      // client reset it: the guard stays, for the errors still to come (a
      // failed last write is reported after 'finish').
      if (socket.destroyed || socket.writableEnded) return
      socket.off('error', destroyOnError)
      // Node armed its keep-alive timeout for a next request that is not coming.
      ;(socket as Socket).setTimeout?.(0)
      retry(request, socket, head)
    })
  }
  earlier.once('finish', written)
  socket.once('close', stopWaiting)
  return true
}

/** Node's symbol for a response whose last write waits for 'drain', found on first use. */
let kNeedDrain: symbol | undefined

/** What Node's HTTP server does at a socket's 'drain': the response writing to it may write on. */
function relayDrain (socket: Duplex): void {
  const response = (socket as { _httpMessage?: ServerResponse | null })._httpMessage
  if (response === undefined || response === null || response.writableFinished) return
  kNeedDrain ??= Object.getOwnPropertySymbols(response).find(symbol => symbol.description === 'kNeedDrain')
  const state = response as unknown as Record<symbol, boolean>
  if (kNeedDrain !== undefined && state[kNeedDrain] === true) {
    state[kNeedDrain] = false
    response.emit('drain')
  }
}

/**
 * Checks the handshake. On failure the client gets the HTTP status and the
 * socket is closed; on success the request carries a `PendingUpgrade` and the
 * returned response writes to the raw socket. `handshakeTimeout` (ms, 0 for
 * none) bounds the time until the 101: see `PendingUpgrade.expire`.
 */
export function beginUpgrade (request: IncomingMessage, socket: Duplex, head: Buffer, handshakeTimeout = 0): ServerResponse | undefined {
  socket.on('error', destroyOnError)
  socket.on('end', destroyWhenClientLeaves)
  // An upgrade to another protocol (`Upgrade: h2c`, …) is no WebSocket
  // handshake: it is served as the plain HTTP request it also is, as Node
  // would serve it if nobody listened for upgrades (the framework routes
  // `response.req`, which carries the request's body).
  if (!headerHasToken(request.headers.upgrade, 'websocket')) return plainResponse(request, socket, head)
  const check = checkUpgradeRequest(request)
  if (!check.ok) {
    writeHttpResponse(socket, check.status, check.headers, check.message)
    return undefined
  }
  // The server's socket timeout (`server.timeout`, Fastify's
  // `connectionTimeout`) no longer hangs up this socket: Node removed its
  // listener with the upgrade. Left armed, it would only fire Fastify's
  // `onTimeout` hooks for a request that then goes on; `handshakeTimeout` is
  // the deadline until the 101.
  ;(socket as Socket).setTimeout?.(0)
  // Its deadline passed while it waited behind an earlier response.
  const arrived = (request as UpgradeRequest)[kArrived]
  if (arrived !== undefined && handshakeTimeout > 0 && performance.now() - arrived >= handshakeTimeout) {
    answerTimedOut(socket)
    return undefined
  }
  const response = responseOnSocket(request, socket)
  const upgrade = new PendingUpgrade(socket, head, check.key, check.protocols, request as UpgradeRequest, response)
  ;(request as UpgradeRequest)[kUpgrade] = upgrade
  upgrade.setTimeout(handshakeTimeout)
  return response
}

/**
 * The response to an upgrade served as plain HTTP. Node parsed such a
 * request as an upgrade: its IncomingMessage ended after the head, and
 * the body went to `head` and the socket. So the framework gets a request of
 * its own, fed with those bytes up to `Content-Length` (a chunked body
 * cannot be delimited here: 411).
 */
function plainResponse (request: IncomingMessage, socket: Duplex, head: Buffer): ServerResponse | undefined {
  const length = request.headers['content-length']
  if (request.headers['transfer-encoding'] !== undefined) {
    writeHttpResponse(socket, 411, {}, 'an upgrade request served as plain HTTP needs Content-Length for its body')
    return undefined
  }
  if (length === undefined || length === '0') return responseOnSocket(request, socket)
  let remaining = Number(length)
  if (!Number.isSafeInteger(remaining) || remaining < 0) {
    writeHttpResponse(socket, 400, {}, 'invalid Content-Length')
    return undefined
  }
  const withBody = new IncomingMessage(socket as Socket)
  withBody.method = request.method
  withBody.url = request.url
  withBody.httpVersion = request.httpVersion
  withBody.httpVersionMajor = request.httpVersionMajor
  withBody.httpVersionMinor = request.httpVersionMinor
  withBody.headers = request.headers
  withBody.rawHeaders = request.rawHeaders
  const feed = (chunk: Buffer): void => {
    const part = chunk.subarray(0, remaining)
    remaining -= part.length
    // A body read slower than it comes (or not at all, by a slow route):
    // the socket waits, as under Node's parser, until the request is read
    // on (IncomingMessage's _read resumes its socket).
    if (part.length > 0 && !withBody.push(part)) socket.pause()
    if (remaining === 0) {
      // Anything after the body (a pipelined request) is not read: the
      // socket closes after this response.
      socket.off('data', feed)
      // As Node's parser marks a whole message: an IncomingMessage destroyed
      // incomplete (at the end of its reading) counts as aborted and takes
      // the socket with it, before the response is written.
      withBody.complete = true
      withBody.push(null)
    }
  }
  feed(head)
  const response = responseOnSocket(withBody, socket)
  if (remaining > 0) {
    socket.on('data', feed)
    socket.once('close', () => { if (remaining > 0) withBody.destroy() })
    // Answered before its body was read: the rest is not the request's.
    response.once('finish', () => { socket.off('data', feed) })
  }
  return response
}

/**
 * The socket closed before the response was written: the client left while
 * hooks or middleware ran. As Node does for an HTTP request whose client
 * leaves, the request is destroyed, so it emits 'close' with `aborted` set:
 * Fastify's `request.signal` aborts and its `onRequestAbort` hooks run.
 */
function abortUnansweredRequest (this: ServerResponse): void {
  if (this.writableFinished) return
  // Nobody to answer any more: no deadline either (its timer would keep the
  // request, the response and the socket until it fired).
  ;(this.req as UpgradeRequest)[kUpgrade]?.clearTimeout()
  this.req.destroy()
}

/** An HTTP response written straight to the raw socket, which is closed once the response is sent. */
function responseOnSocket (request: IncomingMessage, socket: Duplex): ServerResponse {
  const response = new ServerResponse(request)
  response.shouldKeepAlive = false
  response.assignSocket(socket as any)
  response.once('finish', endSocketAfterResponse)
  // Node emits the response's 'close' when its socket closes, until the
  // socket is detached (answered, released or expired).
  response.once('close', abortUnansweredRequest)
  return response
}

/** Answers an upgrade that will not happen (shutdown, a failed `protocols` function) on a socket no one else guards. */
export function refuseUpgrade (socket: Duplex, status: number, message: string): void {
  socket.on('error', destroyOnError)
  writeHttpResponse(socket, status, {}, message)
}

/**
 * The server side of the opening handshake (RFC 6455 §4.2): checks the
 * client's request, negotiates a subprotocol, and writes either the 101
 * response or a real HTTP error.
 */
import * as crypto from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'

/** §1.3: the GUID appended to the key before hashing. */
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
/** A base64-encoded 16-byte value is 22 characters and '=='. */
const KEY_PATTERN = /^[+/0-9A-Za-z]{21}[AQgw]==$/
/** RFC 7230 token characters, for subprotocol names. */
const TOKEN_PATTERN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

export interface UpgradeRequestLike {
  method?: string
  httpVersion: string
  headers: IncomingHttpHeaders
}

export type HandshakeCheck =
  | { ok: true, key: string, protocols: string[] }
  | { ok: false, status: number, message: string, headers?: Record<string, string> }

/** Whether `value` is `lowerToken` in ASCII case-insensitive comparison, without a lower-cased copy. */
function equalsIgnoringAsciiCase (value: string, lowerToken: string): boolean {
  if (value.length !== lowerToken.length) return false
  for (let i = 0; i < value.length; i++) {
    let code = value.charCodeAt(i)
    if (code >= 0x41 && code <= 0x5a) code += 0x20
    if (code !== lowerToken.charCodeAt(i)) return false
  }
  return true
}

/** Whether a comma-separated header holds `token` (lower case), compared case-insensitively. */
export function headerHasToken (value: string | string[] | undefined, token: string): boolean {
  if (value === undefined) return false
  // What every client sends ("websocket", "Upgrade"): one token, no list to split.
  if (typeof value === 'string' && value.length === token.length) return equalsIgnoringAsciiCase(value, token)
  const text = Array.isArray(value) ? value.join(',') : value
  for (const part of text.split(',')) {
    if (equalsIgnoringAsciiCase(part.trim(), token)) return true
  }
  return false
}

/**
 * Parses `Sec-WebSocket-Protocol`: the subprotocols the client offers, in its
 * order of preference. Returns null when the header is malformed (an
 * invalid token, a duplicate, or no token at all). Empty elements (`a,,b`, a trailing comma)
 * are skipped: RFC 9110 §5.6.1.2, "a recipient MUST parse and ignore a
 * reasonable number of empty list elements".
 */
export function parseProtocols (value: string | string[] | undefined): string[] | null {
  if (value === undefined) return []
  const text = Array.isArray(value) ? value.join(',') : value
  const protocols: string[] = []
  // A Set for the duplicates: thousands of offers fit in a header, and a
  // search of the list for each would be quadratic work before any auth.
  const seen = new Set<string>()
  for (const part of text.split(',')) {
    const name = part.trim()
    if (name === '') continue
    if (!TOKEN_PATTERN.test(name) || seen.has(name)) return null
    seen.add(name)
    protocols.push(name)
  }
  // §4.1: the header is `1#token`, at least one.
  return protocols.length === 0 ? null : protocols
}

/** Checks an upgrade request against §4.2.1. */
export function checkUpgradeRequest (req: UpgradeRequestLike): HandshakeCheck {
  // §4.2.1 1: "An HTTP/1.1 or higher GET request".
  if (req.method !== 'GET') return { ok: false, status: 405, message: 'the opening handshake must be a GET request', headers: { Allow: 'GET' } }
  if (req.httpVersion !== '1.1') {
    const [major, minor] = req.httpVersion.split('.').map(Number)
    if (!(major > 1 || (major === 1 && minor >= 1))) return { ok: false, status: 400, message: 'the opening handshake needs HTTP/1.1 or higher' }
  }
  const headers = req.headers
  // §4.2.1 2: "A |Host| header field containing the server's authority."
  if (headers.host === undefined || headers.host === '') return { ok: false, status: 400, message: 'missing Host header' }
  // §4.2.1 3 and 4: "An |Upgrade| header field containing the value
  // "websocket", treated as an ASCII case-insensitive value" and "A
  // |Connection| header field that includes the token "Upgrade"".
  if (!headerHasToken(headers.upgrade, 'websocket')) return { ok: false, status: 400, message: 'the Upgrade header must name websocket' }
  if (!headerHasToken(headers.connection, 'upgrade')) return { ok: false, status: 400, message: 'the Connection header must include Upgrade' }
  // §4.2.2: a version the server does not understand gets "an appropriate
  // HTTP error code (such as 426 Upgrade Required) and a
  // |Sec-WebSocket-Version| header field indicating the version(s) the
  // server is capable of understanding."
  // RFC 9110 §15.5.22: a 426 "MUST send an Upgrade header field".
  if (headers['sec-websocket-version'] !== '13') {
    return { ok: false, status: 426, message: 'unsupported WebSocket version; this server speaks 13', headers: { Upgrade: 'websocket', 'Sec-WebSocket-Version': '13' } }
  }
  // §4.2.1 5: "A |Sec-WebSocket-Key| header field with a base64-encoded
  // value that, when decoded, is 16 bytes in length."
  const key = headers['sec-websocket-key']
  if (typeof key !== 'string' || !KEY_PATTERN.test(key.trim())) return { ok: false, status: 400, message: 'Sec-WebSocket-Key must be the base64 of 16 bytes' }
  const protocols = parseProtocols(headers['sec-websocket-protocol'])
  if (protocols === null) return { ok: false, status: 400, message: 'malformed Sec-WebSocket-Protocol header' }
  // The opening handshake is a GET without a body (§4.1 lists no body, and
  // Node hands whatever follows the head to the upgrade as its first
  // bytes): body bytes would be read as the client's first frames.
  const contentLength = headers['content-length']
  if ((contentLength !== undefined && contentLength !== '0') || headers['transfer-encoding'] !== undefined) {
    return { ok: false, status: 400, message: 'the opening handshake must not have a body' }
  }
  return { ok: true, key: key.trim(), protocols }
}

/** One-shot hashing without a Hash object (Node ≥ 20.12); `createHash` on older Nodes. */
const sha1Base64: (data: string) => string = typeof crypto.hash === 'function'
  ? data => crypto.hash('sha1', data, 'base64')
  : data => crypto.createHash('sha1').update(data).digest('base64')

/** §4.2.2: base64 of the SHA-1 of the key and the GUID. */
export function acceptKey (key: string): string {
  return sha1Base64(key + GUID)
}

/**
 * What a route accepts as subprotocols: a list in the server's order of
 * preference, or a function that picks one of the client's offers (or none).
 */
export type ProtocolSelector<Req = unknown> = readonly string[] | ((offered: string[], request: Req) => string | false | undefined)

/** The subprotocol to answer with, or '' for none. */
export function selectProtocol<Req> (offered: string[], selector: ProtocolSelector<Req> | undefined, request: Req): string {
  if (offered.length === 0 || selector === undefined) return ''
  if (typeof selector === 'function') {
    const chosen = selector(offered, request)
    // The server may only answer with one of the client's offers (§4.1, client step 6).
    return typeof chosen === 'string' && offered.includes(chosen) ? chosen : ''
  }
  for (const name of selector) if (offered.includes(name)) return name
  return ''
}

/** The 101 response. */
export function acceptResponse (key: string, protocol: string, extraHeaders?: Record<string, string>): string {
  let head = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n`
  if (protocol !== '') head += `Sec-WebSocket-Protocol: ${protocol}\r\n`
  if (extraHeaders !== undefined) for (const name in extraHeaders) head += `${name}: ${extraHeaders[name]}\r\n`
  return head + '\r\n'
}

/** How long a socket that got its answer waits for the client's FIN before it is destroyed. */
export const LINGER_MS = 2000

function destroySocket (socket: Duplex): void {
  socket.destroy()
}

/**
 * Ends the socket after `data` and closes it for good once the client has
 * closed its side too, or after `LINGER_MS`: a lingering close, as HTTP
 * servers make it. Not at once, because closing a socket with unread input
 * resets the connection, and a reset can discard the answer before the
 * client has read it. Not never, because server sockets allow half-open
 * connections: a client that does not close its side would keep the socket,
 * and its file descriptor, for good.
 */
export function endAndLinger (socket: Duplex, data?: Buffer): void {
  socket.end(data)
  // Read and discard what the client still sends, so its FIN is seen: with
  // both sides ended the socket closes by itself.
  socket.resume()
  const timer = setTimeout(destroySocket, LINGER_MS, socket)
  timer.unref()
  socket.once('close', () => { clearTimeout(timer) })
}

/**
 * Answers an upgrade request with a plain HTTP response and closes the
 * socket once it is written (`endAndLinger`). Used for every rejected handshake.
 */
export function writeHttpResponse (socket: Duplex, status: number, headers: Record<string, string | number> = {}, body = ''): void {
  if (socket.destroyed) return
  const payload = Buffer.from(body)
  const names = Object.keys(headers).map(name => name.toLowerCase())
  // RFC 9110 §7.8: "When Upgrade is sent, the sender MUST also send a
  // Connection header field that contains an "upgrade" connection option".
  const connection = names.includes('upgrade') ? 'Upgrade, close' : 'close'
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\nConnection: ${connection}\r\n`
  if (!names.includes('content-length')) head += `Content-Length: ${payload.length}\r\n`
  if (!names.includes('content-type') && payload.length > 0) head += 'Content-Type: text/plain; charset=utf-8\r\n'
  for (const name in headers) head += `${name}: ${headers[name]}\r\n`
  endAndLinger(socket, Buffer.concat([Buffer.from(head + '\r\n'), payload]))
}

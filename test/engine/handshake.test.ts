/**
 * The server side of the opening handshake (RFC 6455 §4.2): every rule of
 * checkUpgradeRequest, the accept key, subprotocol parsing and selection,
 * and the HTTP responses, also over a real http.Server.
 */
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import http from 'node:http'
import { PassThrough } from 'node:stream'
import t from 'tap'
import {
  acceptKey,
  acceptResponse,
  checkUpgradeRequest,
  headerHasToken,
  parseProtocols,
  selectProtocol,
  writeHttpResponse,
  type UpgradeRequestLike,
} from '../../lib/engine/handshake.js'
import { CLIENT_KEY, RawClient, startServer, upgradeRequest } from '../helpers/server.js'

function request (headers: Record<string, string | string[] | undefined> = {}, method: string | null = 'GET', httpVersion = '1.1'): UpgradeRequestLike {
  const base: Record<string, string | string[] | undefined> = {
    host: 'example.com',
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': CLIENT_KEY,
    'sec-websocket-version': '13',
  }
  const merged: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries({ ...base, ...headers })) if (value !== undefined) merged[name] = value
  return { method: method ?? undefined, httpVersion, headers: merged }
}

t.test('a valid request', async t => {
  t.same(checkUpgradeRequest(request()), { ok: true, key: CLIENT_KEY, protocols: [] })
  t.same(checkUpgradeRequest(request({}, 'GET', '2.0')), { ok: true, key: CLIENT_KEY, protocols: [] }, 'HTTP versions above 1.1 are fine')
  t.same(checkUpgradeRequest(request({}, 'GET', '1.2')), { ok: true, key: CLIENT_KEY, protocols: [] })
})

t.test('§4.2.1 1: the method must be GET (405 with Allow)', async t => {
  for (const method of ['POST', 'PUT', 'HEAD', 'get', null]) {
    const check = checkUpgradeRequest(request({}, method))
    t.match(check, { ok: false, status: 405, headers: { Allow: 'GET' } }, `method ${String(method)}`)
  }
})

t.test('§4.2.1 1: HTTP/1.1 or higher (400)', async t => {
  for (const version of ['1.0', '0.9']) {
    t.match(checkUpgradeRequest(request({}, 'GET', version)), { ok: false, status: 400 }, `HTTP/${version}`)
  }
  for (const version of ['1.1', '1.2', '2.0']) {
    t.equal(checkUpgradeRequest(request({}, 'GET', version)).ok, true, `HTTP/${version}`)
  }
})

t.test('§4.2.1 2: a Host header (400)', async t => {
  t.match(checkUpgradeRequest(request({ host: undefined })), { ok: false, status: 400, message: /Host/ })
  t.match(checkUpgradeRequest(request({ host: '' })), { ok: false, status: 400, message: /Host/ })
})

t.test('§4.2.1 3: Upgrade must name websocket, case-insensitively (400)', async t => {
  for (const upgrade of ['websocket', 'WebSocket', 'WEBSOCKET', 'h2c, websocket', 'websocket , foo']) {
    t.equal(checkUpgradeRequest(request({ upgrade })).ok, true, `Upgrade: ${upgrade}`)
  }
  // "ASCII case-insensitive": a KELVIN SIGN (U+212A), which JavaScript's
  // toLowerCase() turns into "k", is not a K.
  for (const upgrade of [undefined, '', 'h2c', 'websockets', 'web socket', 'WEBSOC\u212AET', 'h2c, websoc\u212Aet']) {
    t.match(checkUpgradeRequest(request({ upgrade })), { ok: false, status: 400, message: /Upgrade/ }, `Upgrade: ${String(upgrade)}`)
  }
})

t.test('§4.2.1 4: Connection must include the token Upgrade, case-insensitively, in a list (400)', async t => {
  for (const connection of ['Upgrade', 'upgrade', 'UPGRADE', 'keep-alive, Upgrade', 'Upgrade, keep-alive', 'keep-alive,upgrade', '  Upgrade  ']) {
    t.equal(checkUpgradeRequest(request({ connection })).ok, true, `Connection: ${connection}`)
  }
  t.equal(checkUpgradeRequest(request({ connection: ['keep-alive', 'Upgrade'] })).ok, true, 'repeated header lines')
  for (const connection of [undefined, '', 'keep-alive', 'close', 'upgraded', 'keep-alive upgrade']) {
    t.match(checkUpgradeRequest(request({ connection })), { ok: false, status: 400, message: /Connection/ }, `Connection: ${String(connection)}`)
  }
})

t.test('§4.2.2: a version other than 13 gets 426 with Sec-WebSocket-Version: 13 (and, RFC 9110 §15.5.22, Upgrade)', async t => {
  for (const version of [undefined, '8', '7', '12', '14', '', '13, 8']) {
    t.match(checkUpgradeRequest(request({ 'sec-websocket-version': version })), {
      ok: false,
      status: 426,
      headers: { Upgrade: 'websocket', 'Sec-WebSocket-Version': '13' },
    }, `version ${String(version)}`)
  }
})

t.test('§4.2.1 5: Sec-WebSocket-Key must be the base64 of 16 bytes (400)', async t => {
  const bad = [
    undefined,
    '',
    'dGhlIHNhbXBsZSBub25jZQ', // no padding
    'dGhlIHNhbXBsZSBub25jZQ=', // one '='
    'dGhlIHNhbXBsZSBub25j', // 15 bytes
    'dGhlIHNhbXBsZSBub25jZSE=', // 17 bytes
    'dGhlIHNhbXBsZSBub25jZQ==dGhl', // trailing data
    'dGhlIHNhbXBsZSBub25jZ!==', // not base64
    'dGhlIHNhbXBs ZSBub25jZQ==', // a space inside
  ]
  for (const key of bad) {
    t.match(checkUpgradeRequest(request({ 'sec-websocket-key': key })), { ok: false, status: 400, message: /Key/ }, `key ${String(key)}`)
  }
  t.match(checkUpgradeRequest(request({ 'sec-websocket-key': [CLIENT_KEY, CLIENT_KEY] })), { ok: false, status: 400 }, 'two keys')
  // Any 16 random bytes, as a client makes them, are accepted.
  let accepted = 0
  for (let i = 0; i < 500; i++) {
    const key = randomBytes(16).toString('base64')
    const check = checkUpgradeRequest(request({ 'sec-websocket-key': key }))
    if (check.ok && check.key === key) accepted++
  }
  t.equal(accepted, 500, 'every random 16-byte key')
})

t.test('Sec-WebSocket-Protocol is parsed into the offered list', async t => {
  t.match(checkUpgradeRequest(request({ 'sec-websocket-protocol': 'chat, superchat' })), { ok: true, protocols: ['chat', 'superchat'] })
  t.match(checkUpgradeRequest(request({ 'sec-websocket-protocol': ['chat', 'v2.json'] })), { ok: true, protocols: ['chat', 'v2.json'] })
  t.match(checkUpgradeRequest(request({ 'sec-websocket-protocol': 'chat,,superchat,' })), { ok: true, protocols: ['chat', 'superchat'] }, 'empty elements are ignored')
  for (const value of ['chat superchat', 'chat, chat', '', ' , ', 'a/b', 'chat;q=1']) {
    t.match(checkUpgradeRequest(request({ 'sec-websocket-protocol': value })), { ok: false, status: 400, message: /Protocol/ }, `malformed: ${JSON.stringify(value)}`)
  }
})

t.test('a handshake with a body is refused (400): its bytes would be read as frames', async t => {
  t.match(checkUpgradeRequest(request({ 'content-length': '5' })), { ok: false, status: 400, message: /must not have a body/ })
  t.match(checkUpgradeRequest(request({ 'transfer-encoding': 'chunked' })), { ok: false, status: 400, message: /must not have a body/ })
  t.match(checkUpgradeRequest(request({ 'content-length': '0' })), { ok: true }, 'Content-Length: 0 is no body')
})

t.test('headerHasToken', async t => {
  t.equal(headerHasToken('keep-alive, Upgrade', 'upgrade'), true)
  t.equal(headerHasToken(['a', 'B, c'], 'b'), true)
  t.equal(headerHasToken('upgrade-insecure', 'upgrade'), false)
  t.equal(headerHasToken(undefined, 'upgrade'), false)
})

t.test('parseProtocols', async t => {
  t.same(parseProtocols(undefined), [])
  t.same(parseProtocols('a'), ['a'])
  t.same(parseProtocols(' a ,b,  c '), ['a', 'b', 'c'], 'whitespace around the commas')
  t.same(parseProtocols(['a, b', 'c']), ['a', 'b', 'c'])
  t.same(parseProtocols("!#$%&'*+-.^_`|~09AZaz"), ["!#$%&'*+-.^_`|~09AZaz"], 'every token character')
  t.equal(parseProtocols('a, a'), null, 'duplicate')
  t.equal(parseProtocols(['a', 'a']), null, 'duplicate across header lines')
  t.equal(parseProtocols('a b'), null)
  t.same(parseProtocols('a,'), ['a'], 'RFC 9110 §5.6.1.2: empty list elements are ignored')
  t.same(parseProtocols(', a,, b ,'), ['a', 'b'])
  t.same(parseProtocols(['', 'a']), ['a'])
  t.equal(parseProtocols(' , '), null, 'no token at all: malformed (§4.1: 1#token)')
  t.equal(parseProtocols('a,,a'), null, 'still a duplicate')
  t.equal(parseProtocols('"a"'), null)
  t.equal(parseProtocols('a@b'), null)
  t.equal(parseProtocols('ü'), null)
})

t.test('acceptKey: the example of RFC 6455 §1.3', async t => {
  t.equal(acceptKey('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=')
})

t.test('selectProtocol', async t => {
  const req = { url: '/chat' }
  t.equal(selectProtocol([], ['chat'], req), '', 'nothing offered')
  t.equal(selectProtocol(['chat'], undefined, req), '', 'the route takes none')
  t.equal(selectProtocol(['a', 'b', 'c'], ['c', 'b'], req), 'c', 'the server\'s order of preference wins')
  t.equal(selectProtocol(['a', 'b'], ['x', 'y'], req), '', 'no match')
  t.equal(selectProtocol(['a', 'b'], [], req), '')
  t.equal(selectProtocol(['A'], ['a'], req), '', 'names are case-sensitive')

  let seen: unknown[] = []
  const pick = (offered: string[], r: typeof req): string | false | undefined => {
    seen = [offered, r]
    return offered.at(-1)
  }
  t.equal(selectProtocol(['a', 'b'], pick, req), 'b', 'a function picks')
  t.same(seen, [['a', 'b'], req], 'and is given the offers and the request')
  t.equal(selectProtocol(['a'], () => 'z', req), '', 'a pick that was not offered is ignored (§4.1)')
  t.equal(selectProtocol(['a'], () => false, req), '')
  t.equal(selectProtocol(['a'], () => undefined, req), '')
  let called = false
  t.equal(selectProtocol([], () => { called = true; return 'a' }, req), '')
  t.equal(called, false, 'not asked when nothing was offered')
})

t.test('acceptResponse', async t => {
  t.equal(acceptResponse(CLIENT_KEY, ''),
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n')
  t.equal(acceptResponse(CLIENT_KEY, 'chat', { 'X-Extra': '1', 'Set-Cookie': 'a=b' }),
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n' +
    'X-Extra: 1\r\nSet-Cookie: a=b\r\n\r\n')
})

/** What writeHttpResponse writes, and whether it ended the stream. */
async function captureResponse (...args: Parameters<typeof writeHttpResponse> extends [unknown, ...infer R] ? R : never): Promise<{ text: string, ended: boolean }> {
  const stream = new PassThrough()
  const chunks: Buffer[] = []
  stream.on('data', (chunk: Buffer) => chunks.push(chunk))
  writeHttpResponse(stream, ...args)
  await once(stream, 'end')
  return { text: Buffer.concat(chunks).toString(), ended: stream.writableEnded }
}

t.test('writeHttpResponse', async t => {
  t.same(await captureResponse(426, { 'Sec-WebSocket-Version': '13' }, 'unsupported version'), {
    text: 'HTTP/1.1 426 Upgrade Required\r\nConnection: close\r\nContent-Length: 19\r\n' +
      'Content-Type: text/plain; charset=utf-8\r\nSec-WebSocket-Version: 13\r\n\r\nunsupported version',
    ended: true,
  }, '426 with a body')
  t.same((await captureResponse(426, { Upgrade: 'websocket' })).text,
    'HTTP/1.1 426 Upgrade Required\r\nConnection: Upgrade, close\r\nContent-Length: 0\r\nUpgrade: websocket\r\n\r\n',
    'with Upgrade, Connection names the upgrade option too (RFC 9110 §7.8)')
  t.same((await captureResponse(400)).text, 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', 'no body: no Content-Type')
  t.same((await captureResponse(405, { Allow: 'GET' })).text, 'HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\nContent-Length: 0\r\nAllow: GET\r\n\r\n')
  t.same((await captureResponse(403, { 'content-type': 'application/json', 'Content-Length': 2 }, '{}')).text,
    'HTTP/1.1 403 Forbidden\r\nConnection: close\r\ncontent-type: application/json\r\nContent-Length: 2\r\n\r\n{}',
    'the caller\'s Content-Type and Content-Length are not doubled')
  const body = 'données ✓'
  t.match((await captureResponse(400, {}, body)).text, `Content-Length: ${Buffer.byteLength(body)}\r\n`, 'the length is in bytes')
  t.match((await captureResponse(599)).text, /^HTTP\/1\.1 599 Unknown\r\n/, 'a status without a reason phrase')

  const destroyed = new PassThrough()
  destroyed.destroy()
  let wrote = false
  destroyed.write = () => { wrote = true; return true }
  destroyed.end = () => { wrote = true; return destroyed }
  writeHttpResponse(destroyed, 400)
  t.equal(wrote, false, 'nothing is written to a destroyed socket')
})

// ------------------------------------------------------------ over the wire

t.test('over a real server: rejected handshakes get a real HTTP response', async t => {
  const server = await startServer(t)
  const get = (headers: Record<string, string>, method = 'GET'): Promise<http.IncomingMessage & { body: string }> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: server.port, method, headers, agent: false })
      req.on('upgrade', () => reject(new Error('unexpected upgrade')))
      req.on('response', res => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', chunk => { body += chunk })
        res.on('end', () => resolve(Object.assign(res, { body })))
      })
      req.on('error', reject)
      req.end()
    })
  const upgrade = { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Key': CLIENT_KEY }
  const old = await get({ ...upgrade, 'Sec-WebSocket-Version': '8' })
  t.equal(old.statusCode, 426)
  t.equal(old.headers['sec-websocket-version'], '13')
  t.equal(old.headers.upgrade, 'websocket')
  t.equal(old.headers.connection, 'Upgrade, close')
  t.match(old.body, /13/)
  const noKey = await get({ Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13' })
  t.equal(noKey.statusCode, 400)
  t.equal(server.accepted.length, 0, 'no connection was made')
})

t.test('over a real server: a valid handshake gets 101 with the accept key and the chosen subprotocol', async t => {
  const server = await startServer(t, { protocols: ['superchat', 'chat'] })
  const client = await RawClient.connect(t, server.port, upgradeRequest(server.port, { 'Sec-WebSocket-Protocol': 'chat, superchat', Connection: 'keep-alive, Upgrade', Upgrade: 'WebSocket' }))
  const response = await client.readResponse()
  // The exact 101, written out: CLIENT_KEY is RFC 6455 §1.3's sample key, whose accept value the RFC gives.
  t.equal(CLIENT_KEY, 'dGhlIHNhbXBsZSBub25jZQ==')
  t.equal(response,
    'HTTP/1.1 101 Switching Protocols\r\n' +
    'Upgrade: websocket\r\n' +
    'Connection: Upgrade\r\n' +
    'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n' +
    'Sec-WebSocket-Protocol: superchat\r\n' +
    '\r\n')
  const { connection } = await server.next()
  t.equal(connection.protocol, 'superchat')

  const http10 = await RawClient.connect(t, server.port, upgradeRequest(server.port).replace('HTTP/1.1', 'HTTP/1.0'))
  t.match(await http10.readResponse(), /^HTTP\/1\.1 400 Bad Request\r\n/)
  await http10.ended()
})

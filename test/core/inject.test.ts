/**
 * The framework-neutral parts of `injectWS`: the duplex pair that stands in
 * for TCP, the upgrade request built on it, and the client end, driven here
 * against the bare engine (a `Connection` on a plain Duplex, behind a
 * hand-written upgrade listener) so no framework is involved.
 */
import t from 'tap'
import { AssertionError } from 'node:assert'
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { buildUpgradeRequest, duplexPair, injectUpgrade, UpgradeRefusedError, type UpgradeListener } from '../../lib/core/inject.js'
import { Connection, type ConnectionHandler } from '../../lib/engine/connection.js'
import { ErrorCodes } from '../../lib/engine/errors.js'
import { acceptResponse, checkUpgradeRequest, selectProtocol, writeHttpResponse } from '../../lib/engine/handshake.js'
import { binary, parseServerFrame } from '../helpers/frames.js'

const tick = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

// --------------------------------------------------------------- the pair

t.test('the pair: bytes cross on a later turn, in order, as copies', async t => {
  const [server, client] = duplexPair()
  const received: Buffer[] = []
  server.on('data', (chunk: Buffer) => received.push(chunk))
  const buffer = Buffer.from('abc')
  client.write(buffer)
  client.write('def')
  t.same(received, [], 'nothing arrives synchronously')
  buffer.fill(0x78)
  await tick()
  await tick()
  t.equal(Buffer.concat(received).toString(), 'abcdef', 'in order, as written before the writer reused its buffer')
  t.ok(server.remoteAddress === '127.0.0.1' && server.remotePort === client.localPort, 'socket address fields')
})

t.test('the pair: a corked batch arrives as one chunk', async t => {
  const [server, client] = duplexPair()
  const received: Buffer[] = []
  client.on('data', (chunk: Buffer) => received.push(chunk))
  server.cork()
  server.write('one ')
  server.write('two ')
  server.write('three')
  process.nextTick(() => server.uncork())
  await tick()
  await tick()
  t.same(received.map(String), ['one two three'])
})

t.test('the pair: end() is a FIN after the data; both ends close once both have ended', async t => {
  const [server, client] = duplexPair()
  const seen: string[] = []
  server.on('data', (chunk: Buffer) => seen.push(`data ${String(chunk)}`))
  server.on('end', () => { seen.push('server end'); server.end() })
  client.on('data', () => {})
  client.on('end', () => seen.push('client end'))
  client.write('last words')
  client.end()
  await Promise.all([once(server, 'close'), once(client, 'close')])
  t.same(seen, ['data last words', 'server end', 'client end'])
})

t.test('the pair: destroy() sends a FIN; writes to a destroyed end are dropped', async t => {
  const [server, client] = duplexPair()
  client.on('data', () => t.fail('nothing may arrive after destroy'))
  const ended = once(client, 'end')
  server.destroy()
  await ended
  t.pass('the peer read EOF')
  t.equal(client.write('into the void'), true)
  client.end()
  await once(client, 'close')
  t.pass('the peer closed after ending its side')
})

t.test('the pair: backpressure — a reader that pauses holds the writer, drain follows resume', async t => {
  const [server, client] = duplexPair()
  server.pause()
  const big = Buffer.alloc(64 * 1024)
  let writes = 0
  while (client.write(big)) writes++
  t.ok(writes < 64, `write() returned false after ${writes + 1} writes of 64 KiB`)
  await tick()
  await tick()
  t.ok(client.writableLength > 0, 'the writer holds bytes while the reader is paused')
  let read = 0
  server.on('data', (chunk: Buffer) => { read += chunk.length })
  server.resume()
  await once(client, 'drain')
  await tick()
  await tick()
  t.equal(read, (writes + 1) * big.length, 'everything arrived once the reader resumed')
})

t.test('the pair: destroying a reader releases a writer it held', async t => {
  const [server, client] = duplexPair()
  server.pause()
  const big = Buffer.alloc(64 * 1024)
  while (client.write(big));
  await tick()
  client.end()
  server.destroy()
  client.on('data', () => {})
  await once(client, 'close')
  t.pass('the writer finished and closed')
})

// ------------------------------------------------------------ the request

t.test('the upgrade request: a valid handshake on the given socket', async t => {
  const [server] = duplexPair()
  const request = buildUpgradeRequest(server, '/chat/7', { protocols: ['b', 'a'] }, 'dGhlIHNhbXBsZSBub25jZQ==')
  t.equal(request.method, 'GET')
  t.equal(request.url, '/chat/7')
  t.equal(request.httpVersion, '1.1')
  t.equal(request.socket, server)
  t.same(request.headers, {
    host: 'localhost',
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'sec-websocket-version': '13',
    'sec-websocket-protocol': 'b, a',
  })
  t.equal(request.rawHeaders.length, 12)
  t.same(checkUpgradeRequest(request), { ok: true, key: 'dGhlIHNhbXBsZSBub25jZQ==', protocols: ['b', 'a'] })
  request.resume()
  await once(request, 'end')
  t.pass('the body is empty and ended')
})

t.test('the upgrade request: query strings, headers added, overridden and removed', async t => {
  const [server] = duplexPair()
  const url = (path: string, query?: Parameters<typeof buildUpgradeRequest>[2]['query']): string | undefined => buildUpgradeRequest(server, path, { query }, 'k').url
  t.equal(url('/a', { x: 1, y: ['p', 'q'], z: true }), '/a?x=1&y=p&y=q&z=true')
  t.equal(url('/a?k=v', { x: 'a b' }), '/a?k=v&x=a+b')
  t.equal(url('/a', '?s=1'), '/a?s=1')
  t.equal(url('/a', new URLSearchParams({ u: '2' })), '/a?u=2')
  t.equal(url('/a', {}), '/a')
  t.equal(url('relative'), '/relative')

  const request = buildUpgradeRequest(server, '/', {
    headers: { Authorization: 'Bearer x', 'X-Many': ['1', '2'], 'Content-Length': 0, 'sec-websocket-version': '8', host: undefined },
  }, 'k')
  t.equal(request.headers.authorization, 'Bearer x', 'names are lower-cased')
  t.equal(request.headers['x-many'], '1, 2', 'repeated values are joined as Node joins them')
  t.equal(request.headers['content-length'], '0')
  t.equal(request.headers['sec-websocket-version'], '8', 'a handshake header can be overridden')
  t.notOk('host' in request.headers, 'and removed')
  t.same(request.rawHeaders, [
    'upgrade', 'websocket', 'connection', 'Upgrade', 'sec-websocket-key', 'k', 'sec-websocket-version', '8',
    'authorization', 'Bearer x', 'x-many', '1', 'x-many', '2', 'content-length', '0',
  ], 'raw headers: one pair per value, nothing for a removed one')
})

// ------------------------------------------------- the client, bare engine

interface EngineServer {
  onUpgrade: UpgradeListener
  events: string[]
  connections: Connection[]
}

/** A framework-free server: the handshake check, the 101 and a `Connection` on the raw (plain Duplex) socket. */
function engineServer (handler: Partial<ConnectionHandler> = {}, protocols: string[] = []): EngineServer {
  const events: string[] = []
  const connections: Connection[] = []
  const echo: ConnectionHandler = {
    onMessage (connection, data, isBinary) {
      events.push(`message ${isBinary ? data.toString('hex') : data.toString()}`)
      connection.send(isBinary ? data : data.toString(), { binary: isBinary })
    },
    onClose (_connection, code, reason) { events.push(`close ${code} ${reason.toString()}`) },
    onPing (_connection, data) { events.push(`ping ${data.toString()}`) },
    onPong (_connection, data) { events.push(`pong ${data.toString()}`) },
    onError (_connection, error) { events.push(`error ${(error as { code?: string }).code ?? error.message}`) },
    ...handler,
  }
  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const check = checkUpgradeRequest(request)
    if (!check.ok) {
      writeHttpResponse(socket, check.status, check.headers, check.message)
      return
    }
    const protocol = selectProtocol(check.protocols, protocols, request)
    socket.write(acceptResponse(check.key, protocol))
    const connection = new Connection(socket as Socket, echo, { protocol, closeTimeout: 1000 })
    connections.push(connection)
    connection.start(head)
  }
  return { onUpgrade, events, connections }
}

t.test('a Connection runs on a plain Duplex: echo text, binary and JSON, both ways masked as they must be', async t => {
  const server = engineServer()
  const ws = await injectUpgrade(server.onUpgrade, '/')
  t.equal(ws.readyState, 1, 'open')
  t.equal(ws.protocol, '')
  t.match(ws.headers, { upgrade: 'websocket', connection: 'Upgrade' })
  ws.send('hello')
  t.equal(await ws.expectMessage(), 'hello')
  ws.send(Buffer.from([0, 1, 2, 255]))
  t.same(await ws.expectMessage(), Buffer.from([0, 1, 2, 255]))
  ws.send({ type: 'say', text: 'hi' })
  t.same(await ws.expectJson<{ type: string, text: string }>(), { type: 'say', text: 'hi' })
  ws.send('as bytes', { binary: true })
  t.same(await ws.expectMessage(), Buffer.from('as bytes'))
  ws.send(Buffer.from('as text'), { binary: false })
  t.equal(await ws.expectMessage(), 'as text')
  ws.send(new Uint8Array([7, 8]))
  t.same(await ws.expectMessage(), Buffer.from([7, 8]))
  t.same(server.events, ['message hello', 'message 000102ff', 'message {"type":"say","text":"hi"}', 'message 6173206279746573', 'message as text', 'message 0708'])
  ws.close(1000, 'done')
  t.same(await ws.expectClose(1000), { code: 1000, reason: '' }, 'the server echoed the code')
  t.equal(ws.readyState, 3)
  t.same(server.events.slice(-1), ['close 1000 done'], 'the server saw the close before expectClose resolved')
})

t.test('messages queue up until taken; several waiters are served in order', async t => {
  const server = engineServer()
  const ws = await injectUpgrade(server.onUpgrade, '/')
  t.teardown(() => ws.terminate())
  const first = ws.expectMessage()
  const second = ws.expectMessage()
  ws.send('1')
  ws.send('2')
  ws.send('3')
  t.same(await Promise.all([first, second]), ['1', '2'])
  t.equal(await ws.expectMessage(), '3')
})

t.test('server pings are answered at once and can be taken; client pings get pongs', async t => {
  const server = engineServer()
  const ws = await injectUpgrade(server.onUpgrade, '/')
  t.teardown(() => ws.terminate())
  server.connections[0].ping('are you there')
  t.equal(String(await ws.expectPing()), 'are you there')
  await t.resolves(async () => { while (!server.events.includes('pong are you there')) await tick() })
  ws.ping('client ping')
  t.equal(String(await ws.expectPong()), 'client ping')
  t.ok(server.events.includes('ping client ping'))
  t.throws(() => ws.ping(Buffer.alloc(126)), { code: ErrorCodes.CONTROL_PAYLOAD_TOO_LONG })
})

t.test('the server closes: code and reason reach expectClose; later calls are refused', async t => {
  const server = engineServer()
  const ws = await injectUpgrade(server.onUpgrade, '/')
  const pending = t.rejects(ws.expectMessage(), { code: ErrorCodes.NOT_OPEN, message: /closed \(code 4001, bye now\) before a message/ }, 'a waiting expectMessage fails')
  server.connections[0].close(4001, 'bye now')
  t.same(await ws.expectClose(4001), { code: 4001, reason: 'bye now' })
  await pending
  await t.rejects(ws.expectMessage(), { code: ErrorCodes.NOT_OPEN })
  t.throws(() => ws.send('late'), { code: ErrorCodes.NOT_OPEN })
  t.throws(() => ws.ping(), { code: ErrorCodes.NOT_OPEN })
  t.same(server.events, ['close 4001 '], 'the server got the echo')
})

t.test('messages that arrived before the close can still be taken', async t => {
  const server = engineServer()
  const ws = await injectUpgrade(server.onUpgrade, '/')
  server.connections[0].send('one')
  server.connections[0].send('two')
  server.connections[0].close(1000)
  await ws.expectClose(1000)
  t.equal(await ws.expectMessage(), 'one')
  t.equal(await ws.expectMessage(), 'two')
})

t.test('a close frame without a code: the server sees 1005 and answers 1000; the client echoes an empty one', async t => {
  const server = engineServer()
  const ws = await injectUpgrade(server.onUpgrade, '/')
  ws.close()
  t.same(await ws.expectClose(1000), { code: 1000, reason: '' })
  t.same(server.events, ['close 1005 '])

  const second = await injectUpgrade(server.onUpgrade, '/')
  server.connections[1].socket.write(Buffer.from([0x88, 0x00]))
  t.same(await second.expectClose(1005), { code: 1005, reason: '' }, 'an empty close from the server')
  t.same(server.events.slice(-1), ['close 1005 '], 'answered with an empty close')
})

t.test('expectClose asserts the code', async t => {
  const server = engineServer()
  const ws = await injectUpgrade(server.onUpgrade, '/')
  server.connections[0].close(1000)
  const error = await ws.expectClose(1001).catch((e: unknown) => e)
  t.ok(error instanceof AssertionError, 'an AssertionError')
  t.match(error, { actual: 1000, expected: 1001, message: 'expected close code 1001, got 1000' })
  t.same(await ws.expectClose(), { code: 1000, reason: '' }, 'without a code it only waits')
})

t.test('terminate(): the server sees 1006; close() validates its arguments', async t => {
  const server = engineServer()
  const ws = await injectUpgrade(server.onUpgrade, '/')
  t.throws(() => ws.close(1005 as never), { code: ErrorCodes.INVALID_CLOSE_CODE })
  t.throws(() => ws.close(undefined, 'reason without code'), { code: ErrorCodes.INVALID_CLOSE_CODE })
  t.throws(() => ws.close(1000, 'x'.repeat(124)), { code: ErrorCodes.CLOSE_REASON_TOO_LONG })
  ws.terminate()
  t.same(await ws.expectClose(1006), { code: 1006, reason: '' })
  t.same(server.events, ['close 1006 '])
})

t.test('a server that drops TCP without a close frame: 1006', async t => {
  const server = engineServer()
  const ws = await injectUpgrade(server.onUpgrade, '/')
  server.connections[0].terminate()
  t.same(await ws.expectClose(1006), { code: 1006, reason: '' })
})

t.test('a masked frame from the server fails the client with 1002 (WS_ERR_UNEXPECTED_MASK)', async t => {
  const server = engineServer()
  const ws = await injectUpgrade(server.onUpgrade, '/')
  const pending = t.rejects(ws.expectMessage(), { message: /WS_ERR_UNEXPECTED_MASK/ })
  // A client-style frame, written raw by the "server".
  server.connections[0].socket.write(binary(Buffer.from('masked')))
  t.same(await ws.expectClose(1002), { code: 1002, reason: '' })
  await pending
  t.same(server.events, ['close 1002 '], 'the server got our 1002')
})

t.test('the client masks what it sends, with a fresh key per frame', async t => {
  const frames: Buffer[] = []
  const onUpgrade: UpgradeListener = (request, socket) => {
    socket.write(acceptResponse(request.headers['sec-websocket-key'] as string, ''))
    socket.on('data', (chunk: Buffer) => frames.push(chunk))
  }
  const ws = await injectUpgrade(onUpgrade, '/')
  ws.send('same')
  ws.send('same')
  while (frames.length < 2) await tick()
  const [a, b] = frames.map(chunk => parseServerFrame(chunk)!)
  t.ok(a.masked && b.masked, 'masked')
  t.equal(String(a.payload), 'same')
  t.not(frames[0].subarray(2, 6).toString('hex'), frames[1].subarray(2, 6).toString('hex'), 'different keys')
  ws.terminate()
})

t.test('subprotocols: offered, chosen by the server, checked by the client', async t => {
  const server = engineServer({}, ['chat.v2', 'chat.v1'])
  const ws = await injectUpgrade(server.onUpgrade, '/', { protocols: ['chat.v1', 'chat.v2'] })
  t.teardown(() => ws.terminate())
  t.equal(ws.protocol, 'chat.v2')
  t.equal(server.connections[0].protocol, 'chat.v2')
  const single = await injectUpgrade(server.onUpgrade, '/', { protocols: 'chat.v1' })
  t.teardown(() => single.terminate())
  t.equal(single.protocol, 'chat.v1')
  const none = await injectUpgrade(server.onUpgrade, '/', { protocols: ['other'] })
  t.teardown(() => none.terminate())
  t.equal(none.protocol, '')
  await t.rejects(injectUpgrade(server.onUpgrade, '/', { protocols: ['bad token'] }), TypeError)

  // A server that picks a subprotocol nobody offered.
  const rogue: UpgradeListener = (request, socket) => { socket.write(acceptResponse(request.headers['sec-websocket-key'] as string, 'x')) }
  await t.rejects(injectUpgrade(rogue, '/', { protocols: ['a'] }), { code: ErrorCodes.INVALID_HANDSHAKE, message: /subprotocol x/ })
})

t.test('a 101 that chooses an extension fails the handshake: the client speaks none', async t => {
  const deflating: UpgradeListener = (request, socket) => {
    socket.write(acceptResponse(request.headers['sec-websocket-key'] as string, '', { 'Sec-WebSocket-Extensions': 'permessage-deflate' }))
  }
  await t.rejects(injectUpgrade(deflating, '/'), { code: ErrorCodes.INVALID_HANDSHAKE, message: /extension permessage-deflate/ })
  await t.rejects(injectUpgrade(deflating, '/', { headers: { 'sec-websocket-extensions': 'permessage-deflate' } }), { code: ErrorCodes.INVALID_HANDSHAKE }, 'even when headers offered it')
})

// ----------------------------------------------------------- refusals

t.test('a refused upgrade rejects with the status, headers and body', async t => {
  const server = engineServer()
  const error = await injectUpgrade(server.onUpgrade, '/', { headers: { 'sec-websocket-version': '8' } }).catch((e: unknown) => e)
  t.ok(error instanceof UpgradeRefusedError)
  t.match(error, {
    name: 'UpgradeRefusedError',
    code: ErrorCodes.INVALID_HANDSHAKE,
    statusCode: 426,
    headers: { 'sec-websocket-version': '13', connection: 'close' },
    body: 'unsupported WebSocket version; this server speaks 13',
    message: 'the upgrade was refused with 426 Upgrade Required',
  })
  await t.rejects(injectUpgrade(server.onUpgrade, '/', { headers: { host: undefined } }), { name: 'UpgradeRefusedError', statusCode: 400, body: 'missing Host header' })
})

t.test('a refusal with a chunked body, or one that ends at EOF', async t => {
  const chunked: UpgradeListener = (_request, socket) => {
    socket.write('HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n')
    setImmediate(() => socket.end('5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n'))
  }
  await t.rejects(injectUpgrade(chunked, '/'), { name: 'UpgradeRefusedError', statusCode: 403, body: 'hello world', headers: { 'set-cookie': ['a=1', 'b=2'] } })
  const untilEof: UpgradeListener = (_request, socket) => { socket.end('HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\nit broke') }
  await t.rejects(injectUpgrade(untilEof, '/'), { name: 'UpgradeRefusedError', statusCode: 500, body: 'it broke' })
})

t.test('no answer, a hang-up, a listener that throws, a wrong accept key', async t => {
  const silent: UpgradeListener = () => {}
  await t.rejects(injectUpgrade(silent, '/', { timeout: 50 }), { code: 'ETIMEDOUT', message: 'no answer to the upgrade request within 50 ms' })
  let hungUp: Duplex | undefined
  const hangUp: UpgradeListener = (_request, socket) => { hungUp = socket; socket.destroy() }
  await t.rejects(injectUpgrade(hangUp, '/'), { code: 'ECONNRESET' })
  t.ok(hungUp?.destroyed)
  const throws: UpgradeListener = () => { throw new Error('listener failed') }
  await t.rejects(injectUpgrade(throws, '/'), { message: 'listener failed' })
  const wrongKey: UpgradeListener = (_request, socket) => { socket.write(acceptResponse('AAAAAAAAAAAAAAAAAAAAAA==', '')) }
  await t.rejects(injectUpgrade(wrongKey, '/'), { code: ErrorCodes.INVALID_HANDSHAKE, message: /Sec-WebSocket-Accept/ })
  const notHttp: UpgradeListener = (_request, socket) => { socket.write('SSH-2.0-OpenSSH\r\n\r\n') }
  await t.rejects(injectUpgrade(notHttp, '/'), { message: /other than HTTP/ })
})

t.test('expect*() time out', async t => {
  const server = engineServer()
  const ws = await injectUpgrade(server.onUpgrade, '/', { timeout: 1000 })
  await t.rejects(ws.expectMessage(20), { code: 'ETIMEDOUT', message: 'no message within 20 ms' })
  await t.rejects(ws.expectPing(20), { code: 'ETIMEDOUT' })
  await t.rejects(ws.expectClose(undefined, 20), { code: 'ETIMEDOUT', message: 'the connection did not close within 20 ms' })
  ws.send('after a timeout')
  t.equal(await ws.expectMessage(), 'after a timeout', 'a timed-out waiter does not take a later message')
  ws.send(Buffer.from('bin'))
  await t.rejects(ws.expectJson(), TypeError)
  ws.send('not json')
  await t.rejects(ws.expectJson(), SyntaxError)
  t.throws(() => ws.send(undefined), TypeError)
  ws.close(1000)
  await ws.expectClose(1000)
})

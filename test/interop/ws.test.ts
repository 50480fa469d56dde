/**
 * Interop with the `ws` package's client: messages of every length encoding,
 * fragmented input, ping/pong both ways, close codes both ways,
 * subprotocols, maxPayload and terminate.
 */
import t from 'tap'
import WebSocket from 'ws'
import { closeWs, nextMessage, openWs, unique, wsClient, wsClosed, type Teardown } from './helpers.js'
import { SIZES, SMALL_LIMIT, pattern, startInteropServer, text, type InteropServer } from './server.js'

let server: InteropServer
t.before(async () => { server = await startInteropServer() })
t.teardown(() => server.app.close())

/** Opens a client on `path` (a URL from `unique()` when the test reads the server's events). */
async function client (t: Teardown, path: string, protocols?: string | string[], options?: WebSocket.ClientOptions): Promise<WebSocket> {
  const ws = await openWs(server.url + path, protocols, options)
  t.teardown(() => closeWs(ws))
  return ws
}

t.test('text and binary messages of every length encoding echo byte for byte', async t => {
  const ws = await client(t, '/echo')
  for (const size of SIZES) {
    const bytes = pattern(size, size + 1)
    ws.send(bytes)
    const binary = await nextMessage(ws)
    t.equal(binary.isBinary, true, `${size} B binary stays binary`)
    t.ok(binary.data.equals(bytes), `${size} B binary is echoed exactly`)

    const str = text(size)
    ws.send(str)
    const reply = await nextMessage(ws)
    t.equal(reply.isBinary, false, `${size} B text stays text`)
    t.equal(reply.data.toString(), str, `${size} B text is echoed exactly`)
  }
  const unicode = 'héllo wörld € 😀'
  ws.send(unicode)
  t.equal((await nextMessage(ws)).data.toString(), unicode, 'multi-byte UTF-8 survives')
})

t.test('fragmented messages are reassembled, with control frames between fragments', async t => {
  const ws = await client(t, '/echo')
  ws.send('Hel', { fin: false })
  ws.send('lo, ', { fin: false })
  ws.ping('between')
  ws.send('world', { fin: true })
  const pong = new Promise<Buffer>(resolve => ws.once('pong', resolve))
  const text = await nextMessage(ws)
  t.equal(text.isBinary, false)
  t.equal(text.data.toString(), 'Hello, world')
  t.equal((await pong).toString(), 'between', 'the ping between fragments is answered')

  const whole = pattern(200000)
  ws.send(whole.subarray(0, 1), { fin: false })
  ws.send(whole.subarray(1, 70000), { fin: false })
  ws.send(whole.subarray(70000, 70000), { fin: false })
  ws.send(whole.subarray(70000), { fin: true })
  const binary = await nextMessage(ws)
  t.equal(binary.isBinary, true)
  t.ok(binary.data.equals(whole), '200000 B in four fragments (one empty) is echoed exactly')

  // A 4-byte character cut between fragments.
  const emoji = Buffer.from('a😀b')
  ws.send(emoji.subarray(0, 3), { fin: false, binary: false })
  ws.send(emoji.subarray(3), { fin: true, binary: false })
  t.equal((await nextMessage(ws)).data.toString(), 'a😀b')
})

t.test('a client ping is answered with a pong carrying the same payload', async t => {
  const path = unique('/ping')
  const ws = await client(t, path)
  for (const payload of [Buffer.alloc(0), Buffer.from('hello'), pattern(125)]) {
    const pong = new Promise<Buffer>(resolve => ws.once('pong', resolve))
    ws.ping(payload)
    t.ok((await pong).equals(payload), `${payload.length} B ping payload comes back`)
    const [data] = await server.next('ping', path)
    t.ok((data as Buffer).equals(payload), 'the route ping handler sees it too')
  }
})

t.test('a server ping is answered by the client, and the pong reaches the route', async t => {
  const path = unique('/ping')
  const ws = await client(t, path)
  const ping = new Promise<Buffer>(resolve => ws.once('ping', resolve))
  ws.send('are you there')
  t.equal((await ping).toString(), 'are you there', 'the client receives the ping')
  const [data] = await server.next('pong', path)
  t.equal((data as Buffer).toString(), 'are you there', 'the route pong handler gets the payload')
})

t.test('client close codes reach the close handler and are echoed', async t => {
  for (const [code, reason] of [[1000, 'done'], [4000, 'custom reason'], [3000, 'é€😀']] as const) {
    const path = unique('/echo')
    const ws = await client(t, path)
    const closed = wsClosed(ws)
    ws.close(code, reason)
    const [serverCode, serverReason] = await server.next('close', path)
    t.equal(serverCode, code, `the server sees ${code}`)
    t.equal(serverReason, reason, 'and the reason')
    const seen = await closed
    t.equal(seen.code, code, `the client sees ${code} echoed`)
  }

  const path = unique('/echo')
  const ws = await client(t, path)
  const closed = wsClosed(ws)
  ws.close()
  const [serverCode, serverReason] = await server.next('close', path)
  t.equal(serverCode, 1005, 'a close without a code is 1005 on the server')
  t.equal(serverReason, '')
  t.equal((await closed).code, 1000, 'and answered with 1000')
})

t.test('socket.close(code, reason) reaches the client', async t => {
  const path = unique('/server-close')
  const ws = await client(t, path)
  const closed = wsClosed(ws)
  ws.send('4001 bye')
  t.same(await closed, { code: 4001, reason: 'bye' })
  const [code] = await server.next('close', path)
  t.equal(code, 4001, 'the server sees the client echo 4001')

  const otherPath = unique('/server-close')
  const other = await client(t, otherPath)
  const otherClosed = wsClosed(other)
  const reason = 'r'.repeat(123)
  other.send(`1000 ${reason}`)
  t.same(await otherClosed, { code: 1000, reason }, 'a 123-byte reason arrives whole')
  const [otherCode] = await server.next('close', otherPath)
  t.equal(otherCode, 1000)
})

t.test('subprotocols', async t => {
  t.test('offering none: no protocol', async t => {
    const path = unique('/protocols')
    const ws = await client(t, path)
    t.equal(ws.protocol, '')
    t.equal((await nextMessage(ws)).data.toString(), 'protocol:')
    const [protocol] = await server.next('open', path)
    t.equal(protocol, '')
  })
  t.test('matching: the server picks by its own preference', async t => {
    const path = unique('/protocols')
    const ws = await client(t, path, ['superchat', 'chat'])
    t.equal(ws.protocol, 'chat')
    t.equal((await nextMessage(ws)).data.toString(), 'protocol:chat')
    const [protocol] = await server.next('open', path)
    t.equal(protocol, 'chat')
  })
  t.test('only the less preferred one offered', async t => {
    const path = unique('/protocols')
    const ws = await client(t, path, 'superchat')
    t.equal(ws.protocol, 'superchat')
    t.equal((await nextMessage(ws)).data.toString(), 'protocol:superchat')
    const [protocol] = await server.next('open', path)
    t.equal(protocol, 'superchat')
  })
  t.test('non-matching: the 101 names none, which the ws client refuses', async t => {
    // RFC 6455 §4.2.2 lets the server answer without a subprotocol; ws (like
    // browsers) then fails the connection on its side.
    const path = unique('/protocols')
    const ws = wsClient(server.url + path, ['mqtt'])
    t.teardown(() => closeWs(ws))
    const error = await new Promise<Error>(resolve => ws.once('error', resolve))
    t.match(error.message, /no subprotocol/)
    const [protocol] = await server.next('open', path)
    t.equal(protocol, '', 'the server opened with no protocol')
    const [code] = await server.next('close', path)
    t.equal(code, 1006, 'and saw the client drop the connection')
  })
  t.test('a selector function gets the offers in the client\'s order', async t => {
    const path = unique('/protocol-fn')
    const ws = await client(t, path, ['v1', 'x', 'v2'])
    t.equal(ws.protocol, 'v2')
    t.equal((await nextMessage(ws)).data.toString(), 'protocol:v2')
    const [protocol] = await server.next('open', path)
    t.equal(protocol, 'v2')
  })
  t.test('a selector function answering false: no protocol', async t => {
    const path = unique('/protocol-fn')
    const ws = wsClient(server.url + path, ['v1'], { headers: { 'x-refuse': '1' } })
    t.teardown(() => closeWs(ws))
    const error = await new Promise<Error>(resolve => ws.once('error', resolve))
    t.match(error.message, /no subprotocol/)
    const [protocol] = await server.next('open', path)
    t.equal(protocol, '')
    await server.next('close', path)
  })
})

t.test('a message over maxPayload closes with 1009', async t => {
  const path = unique('/small')
  const ws = await client(t, path)
  ws.send(pattern(SMALL_LIMIT))
  const echo = await nextMessage(ws)
  t.equal(echo.data.length, SMALL_LIMIT, 'exactly maxPayload is accepted')
  const closed = wsClosed(ws)
  ws.send(pattern(SMALL_LIMIT + 1))
  t.equal((await closed).code, 1009)
  const [error] = await server.next('failure', path)
  t.equal((error as { code: string }).code, 'WS_ERR_MAX_PAYLOAD')
  const [code] = await server.next('close', path)
  t.equal(code, 1009, 'the close handler reports 1009')
})

t.test('a fragmented message over maxPayload closes with 1009', async t => {
  const path = unique('/small')
  const ws = await client(t, path)
  const closed = wsClosed(ws)
  ws.send(pattern(600), { fin: false })
  ws.send(pattern(600), { fin: true })
  t.equal((await closed).code, 1009)
  const [error] = await server.next('failure', path)
  t.equal((error as { code: string }).code, 'WS_ERR_MAX_PAYLOAD')
  await server.next('close', path)
})

t.test('socket.terminate() drops the connection: the client sees 1006', async t => {
  const path = unique('/terminate')
  const ws = await client(t, path)
  const closed = wsClosed(ws)
  ws.send('go')
  t.equal((await closed).code, 1006)
  const [code] = await server.next('close', path)
  t.equal(code, 1006, 'the server reports 1006 too')
})

t.test('many clients at once', async t => {
  const clients = await Promise.all(Array.from({ length: 20 }, () => client(t, '/echo')))
  const replies = await Promise.all(clients.map(async (ws, i) => {
    const reply = nextMessage(ws)
    ws.send(`client ${i}`)
    return (await reply).data.toString()
  }))
  t.same(replies, clients.map((_, i) => `client ${i}`))
})

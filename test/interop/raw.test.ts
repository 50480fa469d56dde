/**
 * A raw TCP client sending exact bytes: the 101 itself, invalid UTF-8 (1007),
 * unmasked frames (1002), frames that arrive with the upgrade request, and
 * the server over IPv6.
 */
import net from 'node:net'
import t from 'tap'
import { ACCEPT, Op, RawClient, closePayload, nextMessage, openWs, unique, upgradeRequest, clientFrame, closeWs } from './helpers.js'
import { startInteropServer, type InteropServer } from './server.js'

let server: InteropServer
t.before(async () => { server = await startInteropServer() })
t.teardown(() => server.app.close())

async function open (t: { teardown (fn: () => unknown): void }, path: string): Promise<RawClient> {
  const client = await RawClient.open(server.port, { path })
  t.teardown(() => client.destroy())
  return client
}

t.test('the 101 answers RFC 6455\'s sample key', async t => {
  const { client, head } = await RawClient.request(server.port, { path: '/echo' })
  t.teardown(() => client.destroy())
  t.equal(head.statusLine, 'HTTP/1.1 101 Switching Protocols')
  t.equal(head.headers.upgrade, 'websocket')
  t.equal(head.headers.connection, 'Upgrade')
  t.equal(head.headers['sec-websocket-accept'], ACCEPT)
  t.notOk('sec-websocket-protocol' in head.headers, 'no subprotocol was offered, none is named')
  t.notOk('sec-websocket-extensions' in head.headers, 'no extension is negotiated')

  client.send(Op.TEXT, 'raw')
  const echo = await client.nextFrame()
  t.same({ fin: echo.fin, opcode: echo.opcode, masked: echo.masked, payload: echo.payload.toString() },
    { fin: true, opcode: Op.TEXT, masked: false, payload: 'raw' }, 'server frames are unmasked')
})

t.test('a subprotocol the route speaks is named in the 101', async t => {
  const { client, head } = await RawClient.request(server.port, { path: '/protocols', headers: { 'Sec-WebSocket-Protocol': 'mqtt, superchat' } })
  t.teardown(() => client.destroy())
  t.equal(head.status, 101)
  t.equal(head.headers['sec-websocket-protocol'], 'superchat')
  t.equal((await client.nextFrame()).payload.toString(), 'protocol:superchat')
})

t.test('a subprotocol the route does not speak: 101 without the header', async t => {
  const { client, head } = await RawClient.request(server.port, { path: '/protocols', headers: { 'Sec-WebSocket-Protocol': 'mqtt' } })
  t.teardown(() => client.destroy())
  t.equal(head.status, 101)
  t.notOk('sec-websocket-protocol' in head.headers)
  t.equal((await client.nextFrame()).payload.toString(), 'protocol:')
})

t.test('invalid UTF-8 in a text message closes with 1007', async t => {
  const path = unique('/echo')
  const client = await open(t, path)
  client.send(Op.TEXT, Buffer.from([0x68, 0x69, 0xff]))
  t.same(await client.nextClose(), { code: 1007, reason: '' })
  await client.closed
  t.pass('the server closed the TCP connection')
  const [error] = await server.next('failure', path)
  t.equal((error as { code: string }).code, 'WS_ERR_INVALID_UTF8')
  const [code] = await server.next('close', path)
  t.equal(code, 1007)
})

t.test('invalid UTF-8 across fragments closes with 1007 before the message ends', async t => {
  const path = unique('/echo')
  const client = await open(t, path)
  // "€" is e2 82 ac: the first fragment ends inside it, the second breaks it.
  client.send(Op.TEXT, Buffer.from([0x61, 0xe2, 0x82]), false)
  client.send(Op.CONT, Buffer.from([0x41]), false)
  t.same(await client.nextClose(), { code: 1007, reason: '' })
  const [error] = await server.next('failure', path)
  t.equal((error as { code: string }).code, 'WS_ERR_INVALID_UTF8')
})

t.test('a text message ending inside a character closes with 1007', async t => {
  const path = unique('/echo')
  const client = await open(t, path)
  client.send(Op.TEXT, Buffer.from([0x61, 0xf0, 0x9f, 0x98]))
  t.same(await client.nextClose(), { code: 1007, reason: '' })
  await server.next('failure', path)
})

t.test('invalid UTF-8 in a close reason closes with 1007', async t => {
  const path = unique('/echo')
  const client = await open(t, path)
  client.send(Op.CLOSE, Buffer.concat([closePayload(1000), Buffer.from([0xc0, 0xaf])]))
  t.same(await client.nextClose(), { code: 1007, reason: '' })
  const [error] = await server.next('failure', path)
  t.equal((error as { code: string }).code, 'WS_ERR_INVALID_UTF8')
})

t.test('an unmasked frame closes with 1002', async t => {
  const path = unique('/echo')
  const client = await open(t, path)
  client.write(Buffer.from([0x81, 0x02, 0x68, 0x69]))
  t.same(await client.nextClose(), { code: 1002, reason: '' })
  const [error] = await server.next('failure', path)
  t.equal((error as { code: string }).code, 'WS_ERR_EXPECTED_MASK')
})

t.test('a close frame with a forbidden code closes with 1002', async t => {
  const path = unique('/echo')
  const client = await open(t, path)
  client.send(Op.CLOSE, closePayload(1005))
  t.same(await client.nextClose(), { code: 1002, reason: '' })
  const [error] = await server.next('failure', path)
  t.equal((error as { code: string }).code, 'WS_ERR_INVALID_CLOSE_CODE')
})

t.test('frames sent in the same packet as the upgrade request are delivered', async t => {
  const client = await RawClient.connect(server.port)
  t.teardown(() => client.destroy())
  client.write(upgradeRequest({ path: '/echo', extra: Buffer.concat([clientFrame(Op.TEXT, 'early'), clientFrame(Op.BINARY, Buffer.from([1, 2, 3]))]) }))
  t.equal((await client.head()).status, 101)
  const first = await client.nextFrame()
  t.equal(first.payload.toString(), 'early')
  const second = await client.nextFrame()
  t.equal(second.opcode, Op.BINARY)
  t.same([...second.payload], [1, 2, 3])
})

t.test('a frame cut into single bytes is read whole', async t => {
  const client = await open(t, '/echo')
  const bytes = clientFrame(Op.TEXT, 'x'.repeat(300))
  for (const byte of bytes) {
    client.write(Buffer.from([byte]))
    // Each byte its own TCP write: wait until the kernel took it.
    await new Promise<void>(resolve => client.socket.write('', () => resolve()))
  }
  t.equal((await client.nextFrame()).payload.toString(), 'x'.repeat(300))
})

t.test('a client that drops TCP without a close frame: 1006', async t => {
  const path = unique('/echo')
  const client = await open(t, path)
  client.socket.end()
  const [code, reason] = await server.next('close', path)
  t.equal(code, 1006)
  t.equal(reason, '')
})

const ipv6 = await new Promise<boolean>(resolve => {
  const probe = net.createServer().once('error', () => resolve(false))
  probe.listen(0, '::1', () => probe.close(() => resolve(true)))
})

t.test('over IPv6 (::1)', { skip: ipv6 ? false : '::1 is not available' }, async t => {
  const v6 = await startInteropServer('::1')
  t.teardown(() => v6.app.close())
  const ws = await openWs(`${v6.url}/echo`)
  t.teardown(() => closeWs(ws))
  ws.send('over v6')
  t.equal((await nextMessage(ws)).data.toString(), 'over v6')
  const path = unique('/echo')
  const raw = await RawClient.open(v6.port, { path, host: '::1' })
  t.teardown(() => raw.destroy())
  raw.send(Op.CLOSE, closePayload(4002, 'v6'))
  t.same(await raw.nextClose(), { code: 4002, reason: '' })
  t.same(await v6.next('close', path), [4002, 'v6'])
})

/**
 * Connection over real TCP: a minimal http.Server built from the engine
 * (test/helpers/server.ts), driven by raw sockets that send exact bytes and
 * by the ws client.
 */
import { once } from 'node:events'
import t from 'tap'
import WebSocket from 'ws'
import { ReadyState, SendStatus, type CloseCode } from '../../lib/engine/index.js'
import { Op, binary, close, frame, text } from '../helpers/frames.js'
import { RawClient, closeOf, delay, startServer, until, upgradeRequest } from '../helpers/server.js'
import type { TestContext } from '../helpers/tap.js'
import { prng, randomBytes } from '../helpers/random.js'
import { waitUntil } from '../helpers/wait.js'
import { deferred } from '../interop/helpers.js'

async function openWs (t: TestContext, port: number, protocols?: string[]): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, protocols)
  t.teardown(() => ws.terminate())
  await once(ws, 'open')
  return ws
}

const nextMacrotask = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

// ------------------------------------------------------------------ messages

t.test('echo with the ws client: text, binary, fragmented, large, empty', async t => {
  const server = await startServer(t)
  const ws = await openWs(t, server.port)
  const { connection, handler } = await server.next()
  handler.echo = true
  t.equal(connection.readyState, ReadyState.OPEN)

  const received: Array<{ data: Buffer, isBinary: boolean }> = []
  ws.on('message', (data: Buffer, isBinary: boolean) => received.push({ data, isBinary }))
  const big = Buffer.alloc(200 * 1024, 0xab)
  ws.send('héllo wörld 😀')
  ws.send(Buffer.from([0, 1, 2, 255]))
  ws.send('frag', { fin: false })
  ws.send('mented', { fin: true })
  ws.send(big)
  ws.send('')
  await until(ws, 'message', () => received.length === 5, 'five echoes')
  t.equal(received[0].data.toString(), 'héllo wörld 😀')
  t.equal(received[0].isBinary, false)
  t.same([...received[1].data], [0, 1, 2, 255])
  t.equal(received[1].isBinary, true)
  t.equal(received[2].data.toString(), 'fragmented', 'two fragments arrive as one message')
  t.ok(received[3].data.equals(big), '200 KiB intact')
  t.same([received[4].data.length, received[4].isBinary], [0, false], 'the empty text message')
  t.same(handler.of('message').map(m => m.isBinary), [false, true, false, true, false])

  ws.close(1000)
  const [code] = await once(ws, 'close') as [number]
  t.equal(code, 1000)
  t.same((await handler.waitFor('close')).map(c => c.code), [1000])
})

t.test('send(): strings as text, buffers as binary, unless told otherwise', async t => {
  const server = await startServer(t)
  const client = await RawClient.open(t, server.port)
  const { connection } = await server.next()
  t.equal(connection.send('text'), SendStatus.SENT)
  t.equal(connection.send(Buffer.from('buf')), SendStatus.SENT)
  t.equal(connection.send('as binary', { binary: true }), SendStatus.SENT)
  t.equal(connection.send(Buffer.from('as text'), { binary: false }), SendStatus.SENT)
  t.equal(connection.send(new Uint8Array([1, 2, 3])), SendStatus.SENT)
  t.equal(connection.send(new Uint16Array([0x0201]).buffer), SendStatus.SENT)
  const frames = []
  for (let i = 0; i < 6; i++) frames.push(await client.frame())
  t.same(frames.map(f => [f.opcode, f.fin, f.masked, f.payload.toString('hex')]), [
    [Op.TEXT, true, false, Buffer.from('text').toString('hex')],
    [Op.BINARY, true, false, Buffer.from('buf').toString('hex')],
    [Op.BINARY, true, false, Buffer.from('as binary').toString('hex')],
    [Op.TEXT, true, false, Buffer.from('as text').toString('hex')],
    [Op.BINARY, true, false, '010203'],
    [Op.BINARY, true, false, '0102'],
  ])
})

t.test('subprotocol negotiation with the ws client', async t => {
  const server = await startServer(t, { protocols: ['chat', 'superchat'] })
  const ws = await openWs(t, server.port, ['superchat', 'chat'])
  const { connection } = await server.next()
  t.equal(ws.protocol, 'chat', 'the server\'s preference')
  t.equal(connection.protocol, 'chat')
})

t.test('frames that arrive with the upgrade request (head) are parsed', async t => {
  const server = await startServer(t)
  const client = await RawClient.open(t, server.port, Buffer.concat([text('early'), binary(Buffer.from([9]))]))
  const { handler } = await server.next()
  const messages = await handler.waitFor('message', 2)
  t.same(messages.map(m => [m.data.toString('hex'), m.isBinary]), [[Buffer.from('early').toString('hex'), false], ['09', true]])
  t.equal(client.take().length, 0, 'nothing was sent back')
})

t.test('TCP connections read directly unless directReads is false; both ways echo alike', async t => {
  for (const directReads of [undefined, true, false]) {
    const server = await startServer(t, { connection: { maxPayload: 8 * 1024 * 1024, directReads } })
    const ws = await openWs(t, server.port)
    const { connection, handler } = await server.next()
    handler.echo = true
    t.equal(connection.readingDirectly, directReads !== false, `directReads ${String(directReads)}: readingDirectly is ${String(connection.readingDirectly)}`)
    const sent = [Buffer.alloc(70_000, 1), Buffer.from('small'), Buffer.alloc(3_000_000, 2)]
    const received: Buffer[] = []
    ws.on('message', (data: Buffer) => received.push(data))
    for (const message of sent) ws.send(message)
    await until(ws, 'message', () => received.length === sent.length, 'three echoes')
    t.ok(received.every((data, i) => data.equals(sent[i])), 'every echo intact')
    ws.close(1000)
    await handler.waitFor('close')
  }
})

t.test('direct reads of one length, each ending in part of the next header: every message intact', async t => {
  // Reads of one length are parsed from one view of the shared read buffer.
  // The header bytes left over at the end of each read must be kept as the
  // parser's own copy, not as that view, whose bytes the next read replaces.
  const server = await startServer(t, { connection: { directReads: true } })
  const client = await RawClient.open(t, server.port)
  const { connection, handler } = await server.next()
  t.equal(connection.readingDirectly, true)
  const random = prng(7)
  const payloads = Array.from({ length: 6 }, () => randomBytes(random, 1100))
  const frames = payloads.map(payload => binary(payload))
  const stream = Buffer.concat(frames)
  const frameLength = frames[0].length
  // 3 bytes, then reads of one frame's length each: the rest of a frame and
  // the first 3 bytes (of 8) of the next one's header.
  client.send(stream.subarray(0, 3))
  await delay(5)
  for (let i = 0; i < payloads.length; i++) {
    client.send(stream.subarray(3 + i * frameLength, Math.min(stream.length, 3 + (i + 1) * frameLength)))
    await handler.waitFor('message', i + 1)
  }
  const messages = handler.of('message')
  t.equal(messages.length, payloads.length)
  t.ok(messages.every((m, i) => m.data.equals(payloads[i])), 'each message carries its own bytes')
})

t.test('pauseReading() with direct reads: TCP stops being read; resumeReading() delivers what waited', async t => {
  const server = await startServer(t, { connection: { directReads: true } })
  const client = await RawClient.open(t, server.port)
  const { connection, handler } = await server.next()
  t.equal(connection.readingDirectly, true)
  const handle = (connection.socket as unknown as { _handle: { reading: boolean } })._handle
  connection.pauseReading()
  client.send(text('one'))
  await delay(100)
  t.equal(handle.reading, false, 'the socket handle stopped reading')
  client.send(text('two'))
  await delay(50)
  t.equal(handler.of('message').length, 0, 'nothing delivered while paused')
  connection.resumeReading()
  const messages = await handler.waitFor('message', 2)
  t.same(messages.map(m => m.data.toString()), ['one', 'two'], 'both, in order')
  t.equal(handle.reading, true)
})

for (const directReads of [false, true]) {
  t.test(`an async open: frames wait for start(), and a peer that leaves first is reported once, after start() (directReads ${String(directReads)})`, async t => {
    // Each connection's open ends when the test says so, not after a delay.
    const openDone: Array<() => void> = []
    const server = await startServer(t, { beforeStart: () => new Promise<void>(resolve => openDone.push(resolve)), connection: { directReads } })
    const client = await RawClient.open(t, server.port)
    const { connection, handler } = await server.next()
    client.send(text('sent before start'))
    await new Promise<void>(resolve => client.socket.write('', () => resolve()))
    // The frame has reached the server's socket (its stream buffers it) while open is pending.
    await waitUntil(() => connection.socket.bytesRead === client.socket.bytesWritten, 'the server to read the frame')
    t.equal(handler.of('message').length, 0, 'not read before start()')
    openDone[0]()
    const [message] = await handler.waitFor('message')
    t.equal(message.data.toString(), 'sent before start', 'delivered once started')
    t.equal(connection.readyState, ReadyState.OPEN)

    const gone = await RawClient.open(t, server.port)
    const second = await server.next()
    let started!: () => void
    const startRan = new Promise<void>(resolve => { started = resolve })
    const start = second.connection.start.bind(second.connection)
    second.connection.start = head => {
      start(head)
      started()
    }
    gone.socket.destroy()
    await until(second.connection.socket, 'close', () => second.connection.readyState === ReadyState.CLOSED, 'the socket closed')
    t.equal(second.connection.readyState, ReadyState.CLOSED, 'closed while open was still pending: the owner can see it')
    t.equal(second.handler.of('close').length, 0, 'but its close is held while open runs')
    openDone[1]()
    await startRan
    const closes = await second.handler.waitFor('close')
    t.same(closes.map(c => c.code), [1006], 'reported once open is done, by start()')
    await delay(20)
    t.equal(second.handler.of('close').length, 1, 'and only once')
  })
}

t.test('a drain owed to a send made before start() is reported at start(), not lost', async t => {
  const gate = deferred()
  let buffered: SendStatus | undefined
  const server = await startServer(t, {
    beforeStart: async connection => {
      buffered = connection.send(Buffer.alloc(1024 * 1024, 7))
      await gate.promise
    },
  })
  const client = await RawClient.open(t, server.port)
  client.keep = false
  const { connection, handler } = await server.next()
  t.equal(buffered, SendStatus.BUFFERED, 'a megabyte is over the high-water mark')
  await until(client, 'update', () => client.received >= 1024 * 1024, 'the megabyte')
  await until(connection.socket, 'drain', () => connection.bufferedAmount === 0, 'drained')
  t.equal(connection.bufferedAmount, 0, 'the socket drained while open ran')
  t.equal(handler.of('drain').length, 0, 'the owner hears nothing before start()')
  gate.resolve()
  await handler.waitFor('drain')
  t.equal(handler.of('drain').length, 1, 'one drain, at start()')
})

// ------------------------------------------------------------------ ping/pong

t.test('a ping is answered with a pong carrying the same payload', async t => {
  const server = await startServer(t)
  const client = await RawClient.open(t, server.port)
  const { handler } = await server.next()
  for (const payload of [Buffer.from('hello 🎉'), Buffer.alloc(0), Buffer.alloc(125, 0x5a)]) {
    client.send(frame({ opcode: Op.PING, payload }))
    const pong = await client.frame()
    t.equal(pong.opcode, Op.PONG, `pong for a ${payload.length}-byte ping`)
    t.ok(pong.payload.equals(payload), 'same payload')
    t.ok(pong.fin && !pong.masked)
  }
  t.same(handler.of('ping').map(p => p.data.length), [10, 0, 125], 'the handler sees the pings')

  // A ping between two fragments is answered at once.
  client.send(Buffer.concat([text('a', false), frame({ opcode: Op.PING, payload: 'mid' })]))
  const pong = await client.frame()
  t.same([pong.opcode, pong.payload.toString()], [Op.PONG, 'mid'])
})

t.test('a peer that pings without reading: the pongs queued stay bounded, and the latest ping is answered once it reads', async t => {
  const server = await startServer(t)
  const client = await RawClient.open(t, server.port)
  const { connection } = await server.next()
  client.socket.pause()
  const ping = (n: number): Buffer => frame({ opcode: Op.PING, payload: Buffer.alloc(125, n % 251) })
  let sent = 0
  let peak = 0
  // 20 MiB of pings, 1 MiB a write, with the server's queue sampled between them.
  for (let round = 0; round < 20; round++) {
    const batch: Buffer[] = []
    for (let i = 0; i < 8192; i++) batch.push(ping(sent++))
    const flushed = client.socket.write(Buffer.concat(batch))
    if (!flushed) await Promise.race([once(client.socket, 'drain'), delay(200)])
    await delay(5)
    peak = Math.max(peak, connection.bufferedAmount)
  }
  t.ok(peak < 256 * 1024, `the server queued at most ${peak} bytes of pongs for ${sent} pings (${sent * 127} bytes)`)
  t.equal(connection.readyState, ReadyState.OPEN, 'the connection is fine')

  // Reading again: the queue drains, and the last ping of all gets its pong.
  client.socket.resume()
  const last = Buffer.alloc(125, (sent - 1) % 251)
  let lastPong: Buffer | undefined
  while (lastPong === undefined || !lastPong.equals(last)) lastPong = (await client.frame()).payload
  t.pass('the latest ping is answered')
})

t.test('the ws client\'s ping gets its pong', async t => {
  const server = await startServer(t)
  const ws = await openWs(t, server.port)
  ws.ping('are you there')
  const [data] = await once(ws, 'pong') as [Buffer]
  t.equal(data.toString(), 'are you there')
})

t.test('pongs are given to the handler and not answered', async t => {
  const server = await startServer(t)
  const client = await RawClient.open(t, server.port)
  const { connection, handler } = await server.next()
  handler.echo = true
  client.send(frame({ opcode: Op.PONG, payload: 'unsolicited' }))
  client.send(text('after'))
  const next = await client.frame()
  t.same([next.opcode, next.payload.toString()], [Op.TEXT, 'after'], 'the next frame is the echo, not a reply to the pong')
  t.same(handler.of('pong').map(p => p.data.toString()), ['unsolicited'])

  t.equal(connection.ping('from server'), SendStatus.SENT)
  const ping = await client.frame()
  t.same([ping.opcode, ping.payload.toString()], [Op.PING, 'from server'])
  client.send(frame({ opcode: Op.PONG, payload: ping.payload }))
  await handler.waitFor('pong', 2)
  t.equal(handler.of('pong')[1].data.toString(), 'from server')
  t.equal(connection.pong('x'), SendStatus.SENT, 'an unsolicited pong may be sent')
  t.same([(await client.frame()).opcode], [Op.PONG])
  t.throws(() => connection.ping(Buffer.alloc(126)), { name: 'RangeError', code: 'WS_ERR_CONTROL_PAYLOAD_TOO_LONG' })
  // Bytes in any form send() takes: a Uint8Array view, an ArrayBuffer.
  const bytes = new Uint8Array([0, 1, 2, 3, 4, 5]).subarray(1, 4)
  t.equal(connection.ping(bytes), SendStatus.SENT)
  const viewPing = await client.frame()
  t.same([viewPing.opcode, [...viewPing.payload]], [Op.PING, [1, 2, 3]], 'a Uint8Array view: its own bytes only')
  t.equal(connection.pong(new Uint8Array([9, 8]).buffer), SendStatus.SENT)
  const bufferPong = await client.frame()
  t.same([bufferPong.opcode, [...bufferPong.payload]], [Op.PONG, [9, 8]], 'an ArrayBuffer')
  t.throws(() => connection.ping(new Uint8Array(126)), { code: 'WS_ERR_CONTROL_PAYLOAD_TOO_LONG' }, 'the limit holds for views too')
})

// ------------------------------------------------------------ closing handshake

t.test('the peer closes with 4000: we answer 4000 and close TCP', async t => {
  const server = await startServer(t)
  const client = await RawClient.open(t, server.port)
  const { connection, handler } = await server.next()
  client.send(close(4000, 'bye now'))
  const answer = await client.frame()
  t.same([...client.take()], [], 'nothing after the close frame')
  t.same([answer.opcode, answer.fin, answer.masked, answer.payload.toString('hex')], [Op.CLOSE, true, false, '0fa0'], 'close frame 88 02 0f a0: the code echoed')
  await client.ended()
  t.pass('the server closed TCP')
  const closes = await handler.waitFor('close')
  t.same(closes.map(c => [c.code, c.reason]), [[4000, 'bye now']])
  t.equal(connection.readyState, ReadyState.CLOSED)
  t.same(handler.of('error'), [])
})

t.test('after both close frames TCP is closed at once: no wait for the peer\'s FIN', async t => {
  // A long close timeout: if the server waited for the peer's half of TCP,
  // this peer (which never sends its FIN) would hold it open for a minute.
  const server = await startServer(t, { connection: { closeTimeout: 60_000 } })
  const client = await RawClient.open(t, server.port)
  // Read when the FIN arrives: the client's side then stays open.
  client.socket.allowHalfOpen = true
  const { connection, handler } = await server.next()
  client.send(close(1000, 'done'))
  t.same(closeOf(await client.frame()), { code: 1000, reason: '' })
  await client.ended()
  t.equal(client.socket.writableEnded, false, 'the peer has not closed its half')
  t.same((await handler.waitFor('close')).map(c => c.code), [1000])
  t.equal(connection.readyState, ReadyState.CLOSED)
  t.same(handler.of('error'), [], 'no close timeout')
})

t.test('a large echo still queued when the close arrives goes out whole, then the close frame, then the FIN', async t => {
  const server = await startServer(t, { connection: { maxPayload: 16 * 1024 * 1024 } })
  const client = await RawClient.open(t, server.port)
  const { connection, handler } = await server.next()
  handler.echo = true
  // The client stops reading, so the 12 MiB echo cannot all reach the kernel
  // at once and is still queued in the socket when the close is answered.
  client.socket.pause()
  const payload = Buffer.alloc(12 * 1024 * 1024, 0x5a)
  client.send(Buffer.concat([binary(payload), close(1000)]))
  await handler.waitFor('message')
  await delay(50)
  t.ok(connection.bufferedAmount > 0, 'the echo is still queued in the socket')
  t.equal(client.gotEnd, false, 'no FIN while the echo is queued')
  client.socket.resume()
  const echo = await client.frame()
  t.same([echo.opcode, echo.payload.length, echo.payload.equals(payload)], [Op.BINARY, payload.length, true], 'the echo, whole')
  t.same(closeOf(await client.frame()), { code: 1000, reason: '' }, 'then the close frame')
  await client.ended()
  t.same((await handler.waitFor('close')).map(c => c.code), [1000])
  t.same(handler.of('error'), [])
})

t.test('the peer sends an empty close: we answer 1000; the handler sees 1005', async t => {
  const server = await startServer(t)
  const client = await RawClient.open(t, server.port)
  const { handler } = await server.next()
  client.send(close())
  const answer = await client.frame()
  t.same(closeOf(answer), { code: 1000, reason: '' })
  await client.ended()
  t.same((await handler.waitFor('close')).map(c => [c.code, c.reason]), [[1005, '']])
})

t.test('the ws client closes with a code and reason', async t => {
  const server = await startServer(t)
  const ws = await openWs(t, server.port)
  const { handler } = await server.next()
  ws.close(4321, 'done here')
  const [code, reason] = await once(ws, 'close') as [number, Buffer]
  t.equal(code, 4321, 'the client got our echo of its code')
  t.equal(reason.toString(), '')
  t.same((await handler.waitFor('close')).map(c => [c.code, c.reason]), [[4321, 'done here']])
})

t.test('we close: the peer answers, then onClose once with the peer\'s code', async t => {
  const server = await startServer(t)
  const client = await RawClient.open(t, server.port)
  const { connection, handler } = await server.next()
  connection.close(1000, 'server done')
  t.equal(connection.readyState, ReadyState.CLOSING)
  const ours = await client.frame()
  t.same(closeOf(ours), { code: 1000, reason: 'server done' })
  await delay(50)
  t.equal(client.gotEnd, false, 'TCP stays open until the peer answers')
  t.equal(handler.of('close').length, 0)
  client.send(close(4001, 'ok'))
  await client.ended()
  const closes = await handler.waitFor('close')
  await delay(50)
  t.same(closes.map(c => [c.code, c.reason]), [[4001, 'ok']], 'once, with the peer\'s code and reason')
  t.equal(client.take().length, 0, 'no second close frame')
})

t.test('we close and the ws client answers', async t => {
  const server = await startServer(t)
  const ws = await openWs(t, server.port)
  const { connection, handler } = await server.next()
  connection.close(3003, 'see you')
  const [code, reason] = await once(ws, 'close') as [number, Buffer]
  t.same([code, reason.toString()], [3003, 'see you'])
  t.same((await handler.waitFor('close')).map(c => c.code), [3003])
})

t.test('a close frame is sent once, however often close() is called', async t => {
  const server = await startServer(t)
  const client = await RawClient.open(t, server.port)
  const { connection, handler } = await server.next()
  connection.close(1000)
  connection.close(4000, 'again')
  connection.close()
  client.send(close(1000))
  await client.ended()
  connection.close(1001)
  const frames = []
  for (;;) {
    try { frames.push(await client.frame(200)) } catch { break }
  }
  t.same(frames.map(f => closeOf(f)), [{ code: 1000, reason: '' }], 'one close frame')
  await handler.waitFor('close')
  connection.close(1000)
  t.equal(handler.of('close').length, 1)

  // The same when the peer closed first.
  const second = await RawClient.open(t, server.port)
  const other = await server.next()
  second.send(close(4002))
  await second.frame()
  other.connection.close(1000, 'late')
  await second.ended()
  t.equal(second.take().length, 0, 'no frame after the answer')
})

t.test('close() rejects codes that may not be sent: TypeError WS_ERR_INVALID_CLOSE_CODE', async t => {
  const server = await startServer(t)
  const client = await RawClient.open(t, server.port)
  const { connection, handler } = await server.next()
  handler.echo = true
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535, -1000, 1000.5, NaN]) {
    t.throws(() => connection.close(code as CloseCode), { name: 'TypeError', code: 'WS_ERR_INVALID_CLOSE_CODE' }, `code ${code}`)
  }
  t.throws(() => connection.close(undefined, 'a reason without a code'), { name: 'TypeError', code: 'WS_ERR_INVALID_CLOSE_CODE' })
  t.equal(connection.readyState, ReadyState.OPEN, 'still open')
  client.send(text('still there?'))
  const echo = await client.frame()
  t.same([echo.opcode, echo.payload.toString()], [Op.TEXT, 'still there?'], 'no close frame was sent')
})

t.test('close() limits the reason to 123 bytes of UTF-8: RangeError WS_ERR_CLOSE_REASON_TOO_LONG', async t => {
  const server = await startServer(t)
  const cases: Array<[string, string, boolean]> = [
    ['124 ASCII bytes', 'a'.repeat(124), false],
    ['62 two-byte characters (124 bytes)', 'é'.repeat(62), false],
    ['31 four-byte characters (124 bytes)', '😀'.repeat(31), false],
    ['123 ASCII bytes', 'a'.repeat(123), true],
    ['61 two-byte characters and one ASCII (123 bytes)', 'é'.repeat(61) + 'a', true],
    ['41 three-byte characters (123 bytes)', '€'.repeat(41), true],
  ]
  for (const [name, reason, ok] of cases) {
    const client = await RawClient.open(t, server.port)
    const { connection } = await server.next()
    if (!ok) {
      t.throws(() => connection.close(4000, reason), { name: 'RangeError', code: 'WS_ERR_CLOSE_REASON_TOO_LONG' }, name)
      t.equal(connection.readyState, ReadyState.OPEN, `${name}: nothing sent`)
      continue
    }
    connection.close(4000, reason)
    const f = await client.frame()
    t.equal(f.payload.length, 125, `${name}: a 125-byte close payload`)
    t.same(closeOf(f), { code: 4000, reason }, `${name}: sent intact`)
  }
})

t.test('the close timeout destroys a peer that never answers', async t => {
  const server = await startServer(t, { connection: { closeTimeout: 100 } })
  const client = await RawClient.open(t, server.port)
  const { connection, handler } = await server.next()
  const started = Date.now()
  connection.close(1000)
  t.same(closeOf(await client.frame()), { code: 1000, reason: '' })
  await client.closed()
  const elapsed = Date.now() - started
  t.ok(elapsed >= 90, `destroyed after ${elapsed} ms, not before the timeout`)
  t.ok(elapsed < 2000, 'and not much later')
  t.same(handler.of('error').map(e => e.error.code), ['WS_ERR_CLOSE_TIMEOUT'])
  t.same((await handler.waitFor('close')).map(c => c.code), [1006], 'no close frame came back: 1006')
})

t.test('messages are not delivered once closing has started', async t => {
  const server = await startServer(t)
  const client = await RawClient.open(t, server.port)
  const { connection, handler } = await server.next()
  connection.close(1000)
  await client.frame()
  // The peer had messages in flight when our close arrived.
  client.send(Buffer.concat([text('in flight'), binary(Buffer.from([1])), close(1000)]))
  await client.ended()
  await handler.waitFor('close')
  t.same(handler.of('message'), [], 'not delivered after our close frame')

  // And nothing after the peer's close frame.
  const second = await RawClient.open(t, server.port)
  const other = await server.next()
  second.send(Buffer.concat([close(1000), text('after close')]))
  await second.ended()
  await other.handler.waitFor('close')
  t.same(other.handler.of('message'), [])
})

// ------------------------------------------------------------ failures

t.test('protocol errors: a close frame with the right code, then TCP closed', async t => {
  const cases: Array<[string, Buffer, string, number]> = [
    ['an unmasked frame', text('hi', true, { mask: false }), 'WS_ERR_EXPECTED_MASK', 1002],
    ['RSV1 set', text('hi', true, { rsv: 4 }), 'WS_ERR_UNEXPECTED_RSV', 1002],
    ['opcode 3', frame({ opcode: 3 }), 'WS_ERR_INVALID_OPCODE', 1002],
    ['a fragmented ping', frame({ opcode: Op.PING, fin: false }), 'WS_ERR_EXPECTED_FIN', 1002],
    ['close code 1005 on the wire', close(1005), 'WS_ERR_INVALID_CLOSE_CODE', 1002],
    ['invalid UTF-8', text(Buffer.from([0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80])), 'WS_ERR_INVALID_UTF8', 1007],
    ['a message over maxPayload', binary(Buffer.alloc(1025)), 'WS_ERR_MAX_PAYLOAD', 1009],
  ]
  const server = await startServer(t, { connection: { maxPayload: 1024 } })
  for (const [name, bytes, code, closeCode] of cases) {
    const client = await RawClient.open(t, server.port)
    const { handler } = await server.next()
    // The bad frame, then a good one the server must not read.
    client.send(Buffer.concat([bytes, text('never read')]))
    const f = await client.frame()
    t.same(closeOf(f), { code: closeCode, reason: '' }, `${name}: close frame ${closeCode}`)
    await client.ended()
    t.pass(`${name}: TCP closed without waiting for the peer's close frame`)
    const errors = await handler.waitFor('error')
    t.same(errors.map(e => [e.error.name, e.error.code, e.error.closeCode]), [['WebSocketError', code, closeCode]], `${name}: onError ${code}`)
    t.same((await handler.waitFor('close')).map(c => c.code), [closeCode], `${name}: onClose ${closeCode}`)
    t.same(handler.of('message'), [], `${name}: nothing after the bad frame was delivered`)
  }
})

t.test('maxPayload fails the connection on the header alone', async t => {
  const server = await startServer(t, { connection: { maxPayload: 1000 } })
  const client = await RawClient.open(t, server.port)
  const { handler } = await server.next()
  // A 16-bit length of 1001, and no key or payload at all.
  client.send(binary(Buffer.alloc(1001)).subarray(0, 4))
  t.same(closeOf(await client.frame()), { code: 1009, reason: '' })
  await client.ended()
  t.same((await handler.waitFor('error')).map(e => e.error.code), ['WS_ERR_MAX_PAYLOAD'])
})

t.test('maxPayload: Infinity still refuses a frame larger than a Buffer can be (1009), without trying to allocate it', async t => {
  const server = await startServer(t, { connection: { maxPayload: Infinity } })
  const client = await RawClient.open(t, server.port)
  const { handler } = await server.next()
  // A 64-bit length of 1 TiB, the masking key and one payload byte.
  client.send(Buffer.concat([frame({ opcode: Op.BINARY, lengthBits: 64, declaredLength: 1n << 40n }).subarray(0, 14), Buffer.from([0x55])]))
  t.same(closeOf(await client.frame()), { code: 1009, reason: '' })
  t.same((await handler.waitFor('error')).map(e => e.error.code), ['WS_ERR_MAX_PAYLOAD'])
})

t.test('the peer sends FIN while our data is still queued and never reads it: closeTimeout ends the wait (1006)', async t => {
  const server = await startServer(t, { connection: { closeTimeout: 300, idleTimeout: 0 } })
  const client = await RawClient.open(t, server.port)
  const { connection, handler } = await server.next()
  client.socket.pause()
  // More than the kernel's buffers hold: the rest stays queued in the process.
  for (let i = 0; i < 20; i++) connection.send(Buffer.alloc(1024 * 1024))
  await delay(50)
  t.ok(connection.bufferedAmount > 0, 'data queued')
  client.socket.end()
  const started = Date.now()
  const [closed] = await handler.waitFor('close', 1, 3000)
  t.equal(closed.code, 1006)
  t.ok(Date.now() - started < 2000, `closed after ${Date.now() - started} ms`)
  t.same((await handler.waitFor('error')).map(e => e.error.code), ['WS_ERR_CLOSE_TIMEOUT'])
})

t.test('a peer that half-closes and still reads, slowly, gets everything queued for it: the wait after its FIN counts progress', async t => {
  const server = await startServer(t, { connection: { closeTimeout: 300, idleTimeout: 0 } })
  const client = await RawClient.open(t, server.port)
  const { connection, handler } = await server.next()
  client.keep = false
  const before = client.received
  // Reads 10 ms apart: 16 MiB, more than the kernel's buffers hold, take
  // seconds to drain from the server's queue, far beyond closeTimeout.
  client.socket.on('data', () => {
    client.socket.pause()
    setTimeout(() => client.socket.resume(), 10)
  })
  for (let i = 0; i < 16; i++) connection.send(Buffer.alloc(1024 * 1024, i))
  client.socket.end()
  const [closed] = await handler.waitFor('close', 1, 10_000)
  t.equal(closed.code, 1006)
  await client.closed()
  t.equal(client.received - before, 16 * (1024 * 1024 + 10), 'every byte arrived')
  t.same(handler.of('error'), [], 'no close timeout')
})

t.test('TCP dropping without a close frame: onClose once with 1006', async t => {
  const server = await startServer(t)
  const raw = await RawClient.open(t, server.port)
  const first = await server.next()
  raw.send(text('half a frame, then gone').subarray(0, 10))
  await delay(20)
  raw.socket.destroy()
  t.same((await first.handler.waitFor('close')).map(c => [c.code, c.reason]), [[1006, '']])

  const ws = await openWs(t, server.port)
  const second = await server.next()
  ws.terminate()
  t.same((await second.handler.waitFor('close')).map(c => c.code), [1006])

  // A FIN without a close frame.
  const polite = await RawClient.open(t, server.port)
  const third = await server.next()
  polite.socket.end()
  await polite.closed()
  t.same((await third.handler.waitFor('close')).map(c => c.code), [1006])

  // terminate() from our side.
  const fourth = await RawClient.open(t, server.port)
  const fourthConnection = await server.next()
  fourthConnection.connection.terminate()
  await fourth.closed()
  t.same((await fourthConnection.handler.waitFor('close')).map(c => c.code), [1006])

  await delay(50)
  for (const [i, c] of [first, second, third, fourthConnection].entries()) {
    t.equal(c.handler.of('close').length, 1, `connection ${i + 1}: onClose exactly once`)
    t.equal(c.connection.readyState, ReadyState.CLOSED)
  }
})

// ------------------------------------------------------------ sending after close

t.test('send() and ping() after close() return DROPPED', async t => {
  const server = await startServer(t)
  const client = await RawClient.open(t, server.port)
  const { connection, handler } = await server.next()
  connection.close(1000)
  t.equal(connection.send('late'), SendStatus.DROPPED)
  t.equal(connection.send(Buffer.from('late')), SendStatus.DROPPED)
  t.equal(connection.ping(), SendStatus.DROPPED)
  t.equal(connection.pong(), SendStatus.DROPPED)
  const f = await client.frame()
  t.equal(f.opcode, Op.CLOSE, 'only the close frame went out')
  client.send(close(1000))
  await client.ended()
  await handler.waitFor('close')
  t.equal(connection.send('later still'), SendStatus.DROPPED, 'and after the connection is gone')
  t.equal(connection.ping('x'), SendStatus.DROPPED)
  t.equal(client.take().length, 0)
})

t.test('ping() after the peer half-closed returns DROPPED and raises no error', async t => {
  const server = await startServer(t)
  const client = await RawClient.open(t, server.port)
  const { connection, handler } = await server.next()
  const results: SendStatus[] = []
  // Runs after the connection's own 'end' listener, which ends our side.
  connection.socket.on('end', () => {
    results.push(connection.send('after FIN'), connection.ping('after FIN'), connection.pong('after FIN'))
  })
  client.socket.end()
  await handler.waitFor('close')
  await delay(20)
  t.same(results, [SendStatus.DROPPED, SendStatus.DROPPED, SendStatus.DROPPED])
  t.same(handler.of('error').map(e => e.error.message), [], 'no write-after-end error')
})

// ------------------------------------------------------------ backpressure

/**
 * Sends `size`-byte messages, one per macrotask, until send() says
 * `until` (or 256 MiB went out). The raw client must be paused.
 */
async function sendUntil (send: () => SendStatus, wanted: SendStatus, max = 32768): Promise<{ statuses: SendStatus[], found: boolean }> {
  const statuses: SendStatus[] = []
  for (let i = 0; i < max; i++) {
    const status = send()
    statuses.push(status)
    if (status === wanted) return { statuses, found: true }
    await nextMacrotask()
  }
  return { statuses, found: false }
}

t.test('send() returns BUFFERED when the peer does not read; drain follows when it does', async t => {
  const server = await startServer(t)
  const client = await RawClient.open(t, server.port)
  client.keep = false
  client.socket.pause()
  const { connection, handler } = await server.next()
  const handshakeBytes = client.received
  t.equal(connection.bufferedAmount, 0)

  const payload = Buffer.alloc(8192, 1)
  const { statuses, found } = await sendUntil(() => connection.send(payload), SendStatus.BUFFERED)
  t.ok(found, `BUFFERED after ${statuses.length} sends of 8 KiB`)
  t.equal(statuses[0], SendStatus.SENT, 'the first sends go straight out')
  t.ok(statuses.length > 2, 'only once the kernel buffers are full')
  t.ok(connection.bufferedAmount > 0, `bufferedAmount ${connection.bufferedAmount}`)
  t.equal(connection.bufferedAmount, connection.socket.writableLength)
  await delay(50)
  t.ok(connection.bufferedAmount > 0, 'still buffered while the peer does not read')
  t.equal(handler.of('drain').length, 0, 'no drain yet')

  client.socket.resume()
  await handler.waitFor('drain')
  t.equal(connection.bufferedAmount, 0, 'drained')
  const frameBytes = 4 + payload.length
  await until(client, 'update', () => client.received - handshakeBytes === statuses.length * frameBytes, 'every byte')
  t.equal(client.received - handshakeBytes, statuses.length * frameBytes, 'nothing was lost')
  t.equal(connection.send(payload), SendStatus.SENT, 'SENT again after drain')
})

t.test('a large send is BUFFERED at once: it is over the high-water mark', async t => {
  const server = await startServer(t)
  const client = await RawClient.open(t, server.port)
  client.keep = false
  const { connection, handler } = await server.next()
  t.equal(connection.send(Buffer.alloc(1024 * 1024)), SendStatus.BUFFERED)
  t.ok(connection.bufferedAmount >= 1024 * 1024, 'bufferedAmount counts it')
  await handler.waitFor('drain')
  t.equal(connection.bufferedAmount, 0)
})

t.test('backpressurePolicy drop: messages over maxBackpressure are dropped and counted', async t => {
  const server = await startServer(t, { connection: { maxBackpressure: 64 * 1024, backpressurePolicy: 'drop' } })
  const client = await RawClient.open(t, server.port)
  client.keep = false
  client.socket.pause()
  const { connection, handler } = await server.next()
  const handshakeBytes = client.received
  const payload = Buffer.alloc(16 * 1024, 2)
  const { statuses, found } = await sendUntil(() => connection.send(payload), SendStatus.DROPPED)
  t.ok(found, `DROPPED after ${statuses.length} sends`)
  t.equal(connection.droppedMessages, 1)
  t.ok(connection.bufferedAmount > 64 * 1024)
  for (let i = 0; i < 5; i++) t.equal(connection.send(payload), SendStatus.DROPPED)
  t.equal(connection.droppedMessages, 6, 'each drop is counted')
  t.equal(connection.readyState, ReadyState.OPEN, 'the connection stays open')

  client.socket.resume()
  await handler.waitFor('drain')
  const accepted = statuses.length - 1
  await until(client, 'update', () => client.received - handshakeBytes === accepted * (4 + payload.length), 'the accepted messages')
  await delay(20)
  t.equal(client.received - handshakeBytes, accepted * (4 + payload.length), 'exactly the accepted messages arrived')
  t.not(connection.send(payload), SendStatus.DROPPED, 'sending works again once drained')
  t.equal(connection.droppedMessages, 6)
})

t.test('backpressurePolicy close (the default): a slow consumer is closed with 1008', async t => {
  const server = await startServer(t, { connection: { maxBackpressure: 64 * 1024 } })
  const client = await RawClient.open(t, server.port)
  client.socket.pause()
  const { connection, handler } = await server.next()
  const payload = Buffer.alloc(16 * 1024, 3)
  const { found } = await sendUntil(() => connection.send(payload), SendStatus.DROPPED)
  t.ok(found)
  t.equal(connection.readyState, ReadyState.CLOSING)
  t.equal(connection.droppedMessages, 0, 'not counted as a drop')
  client.socket.resume()
  let last
  do last = await client.frame()
  while (last.opcode !== Op.CLOSE)
  t.same(closeOf(last), { code: 1008, reason: 'backpressure limit reached' })
  client.send(close(1008))
  await client.ended()
  t.same((await handler.waitFor('close')).map(c => c.code), [1008])
})

for (const policy of ['close', 'drop'] as const) {
  t.test(`maxBackpressure counts what the peer has not taken, not this tick's own frames: a burst to a reader that keeps up goes out (${policy})`, async t => {
    const server = await startServer(t, { connection: { maxBackpressure: 8192, backpressurePolicy: policy } })
    const client = await RawClient.open(t, server.port)
    const { connection, handler } = await server.next()
    const message = 'x'.repeat(3000)
    // Outside a read: frames corked for the rest of the tick.
    const corked = [0, 1, 2, 3].map(() => connection.send(message))
    // Inside a read: frames staged for the read's one write.
    const staged: SendStatus[] = []
    handler.hooks.message = c => { for (let i = 0; i < 4; i++) staged.push(c.send(message)) }
    client.send(text('go'))
    const frames = []
    for (let i = 0; i < 8; i++) frames.push(await client.frame())
    t.notOk(corked.includes(SendStatus.DROPPED), `corked burst: ${corked.join(',')}`)
    t.notOk(staged.includes(SendStatus.DROPPED), `staged burst: ${staged.join(',')}`)
    t.same(frames.map(f => [f.opcode, f.payload.length]), Array(8).fill([Op.TEXT, 3000]), 'all eight arrive')
    t.equal(connection.readyState, ReadyState.OPEN)
    t.equal(connection.droppedMessages, 0)
    t.equal(handler.of('close').length, 0)
  })
}

t.test('backpressurePolicy drop below the high-water mark: the drain still comes once the peer has caught up', async t => {
  const maxBackpressure = 8192
  const server = await startServer(t, { connection: { maxBackpressure, backpressurePolicy: 'drop' } })
  const client = await RawClient.open(t, server.port)
  client.keep = false
  client.socket.pause()
  const { connection, handler } = await server.next()
  t.ok(maxBackpressure < connection.socket.writableHighWaterMark, 'the limit is below the socket\'s high-water mark')
  const payload = Buffer.alloc(3000, 4)
  const { statuses, found } = await sendUntil(() => connection.send(payload), SendStatus.DROPPED)
  t.ok(found, `DROPPED after ${statuses.length} sends`)
  t.notOk(statuses.includes(SendStatus.BUFFERED), 'no send said BUFFERED: no write ever crossed the high-water mark')
  client.socket.resume()
  await handler.waitFor('drain')
  t.equal(connection.bufferedAmount, 0, 'drained')
  t.equal(connection.send(payload), SendStatus.SENT, 'and sending goes on')
})

// ------------------------------------------------------------ raw requests

t.test('the test server answers bad handshakes over raw TCP too', async t => {
  const server = await startServer(t)
  const client = await RawClient.connect(t, server.port, upgradeRequest(server.port, { 'Sec-WebSocket-Version': '8' }))
  const response = await client.readResponse()
  t.match(response, /^HTTP\/1\.1 426 Upgrade Required\r\n/)
  t.match(response, /\r\nSec-WebSocket-Version: 13\r\n/)
  await client.ended()
  t.equal(server.accepted.length, 0)
})

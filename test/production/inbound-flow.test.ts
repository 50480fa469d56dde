/**
 * Inbound flow through both adapters: a `message` handler that returns a
 * promise gets one message at a time, in order (raw and JSON routes), and
 * while it is awaited the socket is not read, so a client that sends
 * megabytes is held back by TCP instead of filling the server's memory.
 */
import t from 'tap'
import type { RouteSocket } from '../../lib/core/socket.js'
import { Op, clientFrame, deferred, openWs, type Teardown } from '../interop/helpers.js'
import { KINDS, StallingClient, delay, serve, until } from './servers.js'

const COUNT = 1000

/** A handler that awaits a little (a turn, sometimes a timer) and records what it saw. */
function slowRecorder (): { seen: unknown[], maxInFlight: number, handler: (socket: unknown, data: unknown) => Promise<void> } {
  let inFlight = 0
  const state = {
    seen: [] as unknown[],
    maxInFlight: 0,
    async handler (_socket: unknown, data: unknown): Promise<void> {
      inFlight++
      state.maxInFlight = Math.max(state.maxInFlight, inFlight)
      state.seen.push(data)
      const n = state.seen.length
      await (n % 50 === 0 ? delay(1) : new Promise(resolve => setImmediate(resolve)))
      inFlight--
    },
  }
  return state
}

async function sendAll (t: Teardown, url: string, make: (i: number) => string): Promise<void> {
  const ws = await openWs(url)
  t.teardown(() => ws.terminate())
  for (let i = 0; i < COUNT; i++) ws.send(make(i))
}

for (const kind of KINDS) {
  t.test(`${kind}: an async message handler sees ${COUNT} messages one at a time, in order`, async t => {
    const recorder = slowRecorder()
    const served = await serve(t, kind, [{ path: '/slow', options: { message: recorder.handler } }])
    await sendAll(t, served.url('/slow'), i => String(i))
    await until(() => recorder.seen.length === COUNT, `${COUNT} messages`, 20000)
    t.same(recorder.seen, Array.from({ length: COUNT }, (_, i) => String(i)), 'strictly in order')
    t.equal(recorder.maxInFlight, 1, 'never two at once')
  })

  t.test(`${kind}: a JSON route's async handlers too (message schema and messages by type)`, async t => {
    const one = slowRecorder()
    const byType = slowRecorder()
    const message = { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] }
    const served = await serve(t, kind, [
      { path: '/json', options: { schema: { message }, message: one.handler } },
      { path: '/typed', options: { messages: { n: { schema: message, handler: byType.handler } } } },
    ])
    await sendAll(t, served.url('/json'), i => JSON.stringify({ n: i }))
    await sendAll(t, served.url('/typed'), i => JSON.stringify({ type: 'n', n: i }))
    await until(() => one.seen.length === COUNT && byType.seen.length === COUNT, 'every message', 20000)
    t.same(one.seen.map(m => (m as { n: number }).n), Array.from({ length: COUNT }, (_, i) => i), 'schema route: in order')
    t.same(byType.seen.map(m => (m as { n: number }).n), Array.from({ length: COUNT }, (_, i) => i), 'messages route: in order')
    t.equal(one.maxInFlight, 1, 'schema route: never two at once')
    t.equal(byType.maxInFlight, 1, 'messages route: never two at once')
  })

  t.test(`${kind}: an async invalidMessage hook is awaited like a handler: in order, one at a time`, async t => {
    const seen: string[] = []
    let inFlight = 0
    let maxInFlight = 0
    const message = { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] }
    const served = await serve(t, kind, [{
      path: '/json',
      options: {
        schema: { message },
        message (_socket: unknown, value: { n: number }) { seen.push(`ok ${value.n}`) },
        async invalidMessage (_socket: unknown, error: { code: string }) {
          inFlight++
          maxInFlight = Math.max(maxInFlight, inFlight)
          await delay(5)
          seen.push(`refused ${error.code}`)
          inFlight--
          return 'ignore'
        },
      },
    }])
    // Invalid and valid messages alternate: each valid one must wait for the hook before it.
    await sendAll(t, served.url('/json'), i => i % 2 === 0 ? 'not json' : JSON.stringify({ n: i }))
    await until(() => seen.length === COUNT, 'every message', 20000)
    t.same(seen, Array.from({ length: COUNT }, (_, i) => i % 2 === 0 ? 'refused WS_ERR_INVALID_JSON' : `ok ${i}`), 'strictly in order')
    t.equal(maxInFlight, 1, 'never two hooks at once: a flood of invalid messages is read one at a time')
  })

  t.test(`${kind}: while a handler is awaited the socket is not read: TCP holds a fast client back`, async t => {
    const gate = deferred()
    const opened = deferred<RouteSocket>()
    const seen: number[] = []
    const served = await serve(t, kind, [{
      path: '/gate',
      options: {
        open (socket: RouteSocket) { opened.resolve(socket) },
        async message (_socket: unknown, data: Buffer) {
          seen.push(data.readUInt32BE(0))
          if (seen.length === 1) await gate.promise
        },
      },
    }])
    const client = await StallingClient.open(t, served.port, '/gate')
    const server = await opened.promise
    // 32 MiB in 2048 binary messages of 16 KiB, written as fast as the socket takes them.
    const payload = Buffer.alloc(16 * 1024)
    for (let i = 0; i < 2048; i++) {
      payload.writeUInt32BE(i, 0)
      client.socket.write(clientFrame(Op.BINARY, payload))
    }
    await delay(300)
    const held = (server as unknown as { parser: { pending: number } }).parser.pending + server.socket.readableLength
    t.same(seen, [0], 'the first message is in the handler, the others wait')
    t.ok(held < 1024 * 1024, `the server holds ${held} bytes of the 32 MiB sent`)
    t.ok(client.socket.writableLength > 16 * 1024 * 1024, `the client's writes are held back (${client.socket.writableLength} bytes queued at the client)`)

    gate.resolve()
    await until(() => seen.length === 2048, 'every message', 20000)
    t.same(seen, Array.from({ length: 2048 }, (_, i) => i), 'then all of them, in order')
  })
}

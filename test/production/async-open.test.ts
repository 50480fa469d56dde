/**
 * An async `open` through both adapters: 1,000 messages the client sends
 * the moment the socket opens wait until `open` settles and then all arrive,
 * in order; an `open` that throws or rejects closes its socket with 1011
 * and reaches the error handlers as WS_ERR_HANDLER_FAILED.
 */
import { once } from 'node:events'
import t from 'tap'
import { wsClient, wsClosed } from '../interop/helpers.js'
import { KINDS, delay, serve, until } from './servers.js'

const COUNT = 1000

for (const kind of KINDS) {
  t.test(`${kind}: ${COUNT} messages sent during an async open all arrive after it, in order`, async t => {
    const events: string[] = []
    const served = await serve(t, kind, [{
      path: '/open',
      options: {
        async open (socket: { send (data: string): void }) {
          events.push('open start')
          await delay(100)
          events.push('open end')
          socket.send('ready')
        },
        message (socket: { send (data: string): void }, data: string) {
          events.push(data)
          if (data === String(COUNT - 1)) socket.send('all in')
        },
      },
    }])
    const ws = wsClient(served.url('/open'))
    t.teardown(() => ws.terminate())
    const replies: string[] = []
    ws.on('message', data => replies.push(String(data)))
    await once(ws, 'open')
    for (let i = 0; i < COUNT; i++) ws.send(String(i))
    await until(() => replies.length === 2, 'both replies', 10000)
    t.same(replies, ['ready', 'all in'], 'open\'s message first, then the answer to the last message')
    t.same(events, ['open start', 'open end', ...Array.from({ length: COUNT }, (_, i) => String(i))], 'none lost, none early, in order')
  })

  for (const mode of ['throws', 'rejects'] as const) {
    t.test(`${kind}: an open that ${mode} closes the socket with 1011`, async t => {
      const codes: string[] = []
      const served = await serve(t, kind, [{
        path: '/broken',
        options: {
          open: mode === 'throws'
            ? () => { throw new Error('no database') }
            : async () => { await delay(20); throw new Error('no database') },
          message () { codes.push('message delivered') },
        },
      }], { adapter: { errorHandler (error: Error & { code: string, cause?: Error }) { codes.push(`${error.code}: ${error.cause?.message ?? ''}`) } } })
      const ws = wsClient(served.url('/broken'))
      t.teardown(() => ws.terminate())
      const closed = wsClosed(ws)
      ws.on('open', () => ws.send('too early'))
      t.equal((await closed).code, 1011, '1011 Internal Error')
      t.same(codes, ['WS_ERR_HANDLER_FAILED: no database'], 'reported once, and no message reached the handler')
      await served.logged(record => record.level === 'error' && record.message.includes('open handler failed'))
    })
  }
}

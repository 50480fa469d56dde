/**
 * Graceful shutdown through both adapters, the way applications close
 * (`app.close()`, `server.close()`): `preClose` broadcasts a goodbye that
 * reaches every client before its 1001; 200 clients are closed with the
 * reason, every closing handshake completed (none terminated at
 * `closeTimeout`); a client that never answers is
 * terminated at the deadline; a failing or hanging `preClose` does not stop
 * the shutdown; upgrades that arrive meanwhile get 503.
 */
import t from 'tap'
import type WebSocket from 'ws'
import { RawClient, deferred, openWs, upgradeRequest } from '../interop/helpers.js'
import { KINDS, serve, until } from './servers.js'

interface Seen { messages: string[], close?: { code: number, reason: string } }

function watch (ws: WebSocket): Seen {
  const seen: Seen = { messages: [] }
  ws.on('message', data => seen.messages.push(String(data)))
  ws.on('close', (code, reason) => { seen.close = { code, reason: reason.toString() } })
  return seen
}

type Broadcast = Iterable<{ sendRaw (data: string): unknown, readyState: number }>

for (const kind of KINDS) {
  t.test(`${kind}: 200 clients: the preClose goodbye, then 1001 with the reason, every closing handshake completed`, async t => {
    // Generous: what is checked is that no socket had to be terminated at the
    // deadline (its close handler would see 1006) and that close() did not
    // wait for the deadline, not how fast 200 sockets close.
    const closeTimeout = 10_000
    const closes: number[] = []
    let preCloseSaw = 0
    const served = await serve(t, kind, [{ path: '/room', options: { close (_socket: unknown, code: number) { closes.push(code) } } }], {
      adapter: {
        closeTimeout,
        shutdownReason: 'maintenance',
        preClose (sockets: Broadcast) {
          for (const socket of sockets) {
            preCloseSaw++
            socket.sendRaw('goodbye')
          }
        },
      },
    })
    const clients = await Promise.all(Array.from({ length: 200 }, () => openWs(served.url('/room'))))
    t.teardown(() => { for (const ws of clients) ws.terminate() })
    const seen = clients.map(watch)
    let deadlinePassed = false
    const deadline = setTimeout(() => { deadlinePassed = true }, closeTimeout)
    await served.close()
    clearTimeout(deadline)
    t.equal(deadlinePassed, false, 'close() resolved when the handshakes were done, not at the closeTimeout deadline')
    t.equal(closes.length, 200, 'close() resolved after every close handler ran')
    t.equal(preCloseSaw, 200, 'preClose saw every open socket')
    await until(() => seen.every(s => s.close !== undefined), 'every client to see its close')
    t.equal(seen.filter(s => s.close?.code === 1001 && s.close.reason === 'maintenance').length, 200, 'every client saw 1001 with the reason')
    t.equal(seen.filter(s => s.messages.length === 1 && s.messages[0] === 'goodbye').length, 200, 'every client got the goodbye before its close')
    t.equal(closes.length, 200, 'every close handler ran, once')
    t.same(closes.filter(code => code !== 1001), [], 'each with the client\'s 1001: every closing handshake completed, none was terminated at closeTimeout (1006)')
  })

  t.test(`${kind}: a client that never answers the 1001 is terminated at closeTimeout`, async t => {
    const closeTimeout = 300
    const served = await serve(t, kind, [{ path: '/a', options: {} }], { adapter: { closeTimeout } })
    const polite = await openWs(served.url('/a'))
    const politeSeen = watch(polite)
    const silent = await RawClient.open(served.port, { path: '/a' })
    t.teardown(() => silent.destroy())
    const started = Date.now()
    await served.close()
    const elapsed = Date.now() - started
    t.ok(elapsed >= closeTimeout - 10 && elapsed < closeTimeout + 700, `close() waited for the deadline (${elapsed} ms for ${closeTimeout})`)
    t.same(await silent.nextClose(), { code: 1001, reason: 'server shutting down' }, 'the silent client was told')
    await silent.closed
    t.pass('and disconnected')
    await until(() => politeSeen.close !== undefined, 'the polite client\'s close')
    t.same(politeSeen.close, { code: 1001, reason: 'server shutting down' }, 'the polite client closed normally')
  })

  t.test(`${kind}: close() resolves after the close handlers, even of sockets it had to terminate`, async t => {
    const closeTimeout = 300
    const closes: Array<{ path: string, code: number }> = []
    let closeResolved = false
    const paused = deferred<void>()
    const served = await serve(t, kind, [
      { path: '/silent', options: { close (_socket: unknown, code: number) { closes.push({ path: '/silent', code, ...(closeResolved ? { late: true } : {}) }) } } },
      {
        // An async handler holds the socket's reading when shutdown begins:
        // the 1001 goes out, and the client's answer must still be read.
        path: '/paused',
        options: {
          async message () { paused.resolve(); await new Promise(resolve => setTimeout(resolve, 2 * closeTimeout)) },
          close (_socket: unknown, code: number) { closes.push({ path: '/paused', code, ...(closeResolved ? { late: true } : {}) }) },
        },
      },
    ], { adapter: { closeTimeout } })
    const silent = await RawClient.open(served.port, { path: '/silent' })
    t.teardown(() => silent.destroy())
    const busy = await openWs(served.url('/paused'))
    t.teardown(() => busy.terminate())
    const busySeen = watch(busy)
    busy.send('work')
    await paused.promise
    await served.close()
    closeResolved = true
    t.same(closes.slice().sort((a, b) => a.path.localeCompare(b.path)), [
      { path: '/paused', code: 1001 },
      { path: '/silent', code: 1006 },
    ], 'both close handlers ran before close() resolved: the paused socket read the client\'s answer (1001), the silent one was terminated (1006)')
    await until(() => busySeen.close !== undefined, 'the busy client\'s close')
    t.same(busySeen.close, { code: 1001, reason: 'server shutting down' })
  })

  t.test(`${kind}: a preClose that throws is logged; the sockets still get their 1001`, async t => {
    const served = await serve(t, kind, [{ path: '/a', options: {} }], {
      adapter: { preClose () { throw new Error('broadcast failed') } },
    })
    const ws = await openWs(served.url('/a'))
    const seen = watch(ws)
    await served.close()
    await until(() => seen.close !== undefined, 'the close')
    t.equal(seen.close?.code, 1001, 'the client still got 1001')
    const line = await served.logged(record => record.message.includes('preClose failed'))
    t.equal(line.level, 'error', 'logged as an error')
    t.match(line.err, { message: 'broadcast failed' }, 'with what preClose threw')
  })

  t.test(`${kind}: a preClose that hangs gets closeTimeout; no upgrade meanwhile`, async t => {
    const closeTimeout = 300
    const entered = deferred()
    const served = await serve(t, kind, [{ path: '/a', options: {} }], {
      adapter: {
        closeTimeout,
        preClose () {
          entered.resolve()
          return new Promise(() => {})
        },
      },
    })
    const ws = await openWs(served.url('/a'))
    const seen = watch(ws)
    const started = Date.now()
    const closing = served.close()
    await entered.promise
    if (kind === 'fastify') {
      // Fastify runs preClose hooks before it stops listening.
      const late = await RawClient.connect(served.port)
      t.teardown(() => late.destroy())
      late.write(upgradeRequest({ path: '/a' }))
      t.equal((await late.head()).status, 503, 'an upgrade during preClose is refused')
    } else {
      // server.close() stops listening at once (the adapter's own close() would answer 503).
      await t.rejects(RawClient.connect(served.port), { code: 'ECONNREFUSED' }, 'no new connection during preClose')
    }
    await closing
    const elapsed = Date.now() - started
    t.ok(elapsed >= closeTimeout - 10 && elapsed < 2 * closeTimeout + 700, `close() went on after preClose's closeTimeout (${elapsed} ms)`)
    await until(() => seen.close !== undefined, 'the close')
    t.equal(seen.close?.code, 1001, 'then the 1001')
    await served.logged(record => record.level === 'error' && /did not settle/.test(String((record.err as Error | undefined)?.message)))
  })
}

/**
 * The heartbeat through both adapters, with real timers: `idleTimeout`
 * plugin-wide and per route; a raw client that never answers the ping is
 * dropped (close 1006, once; error WS_ERR_IDLE_TIMEOUT); a `ws` client,
 * which answers pings by itself, stays; a socket whose reading is paused by
 * a slow handler is not mistaken for a dead peer.
 */
import { once } from 'node:events'
import t from 'tap'
import WebSocket from 'ws'
import { Op, RawClient, openWs } from '../interop/helpers.js'
import { KINDS, delay, serve, until } from './servers.js'

interface Seen { closes: number[], errors: string[] }

function watched (seen: Seen): Record<string, unknown> {
  return {
    close (_socket: unknown, code: number) { seen.closes.push(code) },
    error (_socket: unknown, error: Error & { code?: string }) { seen.errors.push(error.code ?? error.message) },
  }
}

for (const kind of KINDS) {
  t.test(`${kind}: a client that stops answering pings is dropped, its close handler runs once`, async t => {
    const seen: Seen = { closes: [], errors: [] }
    // Per route: 0.2 s; the adapter's default stays at 120 s.
    const served = await serve(t, kind, [{ path: '/hb', options: { idleTimeout: 0.2, ...watched(seen) } }])
    const raw = await RawClient.open(served.port, { path: '/hb' })
    t.teardown(() => raw.destroy())
    const started = Date.now()
    const ping = await raw.nextFrame()
    t.equal(ping.opcode, Op.PING, 'the server pings the quiet client')
    const pingAt = Date.now() - started
    // Lower bounds are exact (timers never fire early); upper ones would only
    // measure the machine, so the ping's place is asserted by the order and
    // the gap of events: two more quiet ticks (50 ms each) between it and the drop.
    t.ok(pingAt >= 50, `the ping came after at least one quiet tick (${pingAt} ms)`)
    await raw.closed
    const droppedAt = Date.now() - started
    t.ok(droppedAt >= 150, `dropped after about the whole timeout (${droppedAt} ms)`)
    t.ok(droppedAt - pingAt >= 50, `the ping came well before the drop, about half-way, not with it (${pingAt} ms, then ${droppedAt} ms)`)
    t.ok(droppedAt < 10_000, `by the route's 0.2 s, not the adapter's default 120 s (${droppedAt} ms)`)
    await until(() => seen.closes.length > 0, 'the close handler')
    await delay(300)
    t.same(seen.closes, [1006], 'close ran exactly once, with 1006')
    t.same(seen.errors, ['WS_ERR_IDLE_TIMEOUT'])
    t.notOk(raw.frames.some(frame => frame.opcode === Op.CLOSE), 'no closing handshake with a dead peer')
  })

  t.test(`${kind}: a ws client answers the pings itself and stays`, async t => {
    const seen: Seen = { closes: [], errors: [] }
    const served = await serve(t, kind, [{ path: '/hb', options: { idleTimeout: 0.2, ...watched(seen), message (socket: { send (data: unknown): void }, data: unknown) { socket.send(data) } } }])
    const ws = await openWs(served.url('/hb'))
    t.teardown(() => ws.terminate())
    let pings = 0
    ws.on('ping', () => pings++)
    await delay(800)
    t.equal(ws.readyState, WebSocket.OPEN, 'open after four idle timeouts')
    t.ok(pings >= 3, `pinged while quiet (${pings} pings)`)
    ws.send('still here')
    const [reply] = await once(ws, 'message') as [Buffer]
    t.equal(reply.toString(), 'still here')
    t.same(seen, { closes: [], errors: [] })
  })

  t.test(`${kind}: idleTimeout plugin-wide, and a route turning it off`, async t => {
    const seen: Seen = { closes: [], errors: [] }
    const served = await serve(t, kind, [
      { path: '/default', options: watched(seen) },
      { path: '/off', options: { idleTimeout: 0, ...watched(seen) } },
    ], { adapter: { idleTimeout: 0.2 } })
    const dropped = await RawClient.open(served.port, { path: '/default' })
    const kept = await RawClient.open(served.port, { path: '/off' })
    t.teardown(() => { dropped.destroy(); kept.destroy() })
    await dropped.closed
    t.pass('the plugin-wide idleTimeout dropped the silent client')
    await delay(400)
    t.notOk(kept.ended, 'the route with idleTimeout 0 keeps its silent client')
    t.same(kept.frames, [], 'and never pings it')
    t.same(seen.closes, [1006])
  })

  t.test(`${kind}: a handler awaited longer than the idle timeout does not get its peer dropped`, async t => {
    const seen: Seen = { closes: [], errors: [] }
    const served = await serve(t, kind, [{
      path: '/slow',
      options: {
        idleTimeout: 0.2,
        ...watched(seen),
        async message (socket: { send (data: string): void }, data: string) {
          if (data === 'slow') await delay(700)
          socket.send(`done ${data}`)
        },
      },
    }])
    const ws = await openWs(served.url('/slow'))
    t.teardown(() => ws.terminate())
    ws.send('slow')
    const reply = await Promise.race([
      once(ws, 'message').then(([data]) => String(data)),
      once(ws, 'close').then(([code]) => `closed with ${String(code)}`),
    ])
    t.equal(reply, 'done slow', 'the handler finished, the socket is alive')
    t.equal(ws.readyState, WebSocket.OPEN)
    t.same(seen, { closes: [], errors: [] })
  })
}

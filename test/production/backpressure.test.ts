/**
 * Outbound backpressure through both adapters, against a raw TCP client
 * that stops reading after the handshake: `send()` returns SENT, then
 * BUFFERED once the socket is over its high-water mark, then, over
 * `maxBackpressure`, DROPPED (policy `drop`, counted in `droppedMessages`)
 * or the slow consumer is closed with 1008 (policy `close`). The queue never
 * grows past the limit plus one message; `drain` runs once the client reads.
 */
import t from 'tap'
import { SendStatus } from '../../lib/index.js'
import type { RouteSocket } from '../../lib/core/socket.js'
import { Op, closePayload, deferred, type Teardown } from '../interop/helpers.js'
import { KINDS, StallingClient, serve, until, type Kind, type Served } from './servers.js'

const LIMIT = 256 * 1024
/** A string: every send() makes a fresh frame, as real messages do. */
const MESSAGE = 'x'.repeat(8 * 1024)
const FRAME = MESSAGE.length + 4

interface Route {
  served: Served
  socket: RouteSocket
  client: StallingClient
  drains: number
  closes: number[]
}

async function route (t: Teardown, kind: Kind, path: string): Promise<Route> {
  const opened = deferred<RouteSocket>()
  const state = { drains: 0, closes: [] as number[] }
  const handlers = {
    open (socket: RouteSocket) { opened.resolve(socket) },
    drain () { state.drains++ },
    close (_socket: unknown, code: number) { state.closes.push(code) },
  }
  const served = await serve(t, kind, [
    { path: '/drop', options: handlers },
    { path: '/close', options: { ...handlers, backpressurePolicy: 'close' } },
  ], { adapter: { maxBackpressure: LIMIT, backpressurePolicy: 'drop' } })
  const client = await StallingClient.open(t, served.port, path)
  const socket = await opened.promise
  return {
    served,
    socket,
    client,
    get drains () { return state.drains },
    get closes () { return state.closes },
  }
}

interface Pushed { statuses: SendStatus[], maxBuffered: number }

/** Sends one message per turn of the event loop (so the kernel takes what it can) until `stop` says so. */
async function push (socket: RouteSocket, stop: (statuses: SendStatus[]) => boolean): Promise<Pushed> {
  const statuses: SendStatus[] = []
  let maxBuffered = 0
  // 64 MiB at most: far more than loopback's socket buffers hold.
  for (let i = 0; i < 8192 && !stop(statuses); i++) {
    statuses.push(socket.send(MESSAGE))
    maxBuffered = Math.max(maxBuffered, socket.bufferedAmount)
    await new Promise(resolve => setImmediate(resolve))
  }
  return { statuses, maxBuffered }
}

const count = (statuses: SendStatus[], status: SendStatus): number => statuses.filter(s => s === status).length

for (const kind of KINDS) {
  t.test(`${kind}: policy drop: SENT, BUFFERED, then DROPPED and counted; bounded; drain once the client reads`, async t => {
    const r = await route(t, kind, '/drop')
    const { statuses, maxBuffered } = await push(r.socket, s => count(s, SendStatus.DROPPED) >= 50)
    const firstBuffered = statuses.indexOf(SendStatus.BUFFERED)
    const firstDropped = statuses.indexOf(SendStatus.DROPPED)
    t.equal(statuses[0], SendStatus.SENT, 'the first message is SENT')
    t.ok(firstBuffered > 0, `BUFFERED once over the high-water mark (message ${firstBuffered})`)
    t.ok(firstDropped > firstBuffered, `DROPPED once over maxBackpressure (message ${firstDropped}, ${(firstDropped * FRAME / 1048576).toFixed(1)} MiB in)`)
    t.ok(statuses.slice(firstDropped).every(s => s === SendStatus.DROPPED), 'and from then on, while the client does not read')
    t.equal(r.socket.droppedMessages, count(statuses, SendStatus.DROPPED), 'droppedMessages counts them')
    t.ok(maxBuffered <= LIMIT + FRAME, `bufferedAmount peaked at ${maxBuffered}, under the limit plus one message (${LIMIT + FRAME})`)
    t.equal(r.socket.readyState, 1, 'the drop policy keeps the connection')
    const drains = r.drains
    await new Promise(resolve => setTimeout(resolve, 100))
    t.equal(r.drains, drains, 'no drain while the client does not read')

    r.client.read()
    await until(() => r.drains > drains, 'the drain handler')
    t.equal(r.socket.bufferedAmount, 0, 'the buffer is empty at drain')
    t.equal(r.socket.send(MESSAGE), SendStatus.SENT, 'send works again')
    const delivered = statuses.length - count(statuses, SendStatus.DROPPED) + 1
    await until(() => r.client.dataFrames === delivered, `${delivered} messages at the client`)
    t.equal(r.client.dataBytes, delivered * MESSAGE.length, 'every message not dropped arrived, whole')
  })

  t.test(`${kind}: policy close (per route): the slow consumer is closed with 1008`, async t => {
    const r = await route(t, kind, '/close')
    const { statuses, maxBuffered } = await push(r.socket, s => s.includes(SendStatus.DROPPED))
    const firstDropped = statuses.indexOf(SendStatus.DROPPED)
    t.equal(statuses[0], SendStatus.SENT, 'the first message is SENT')
    t.ok(statuses.indexOf(SendStatus.BUFFERED) > 0, 'BUFFERED before the limit')
    t.equal(firstDropped, statuses.length - 1, 'the send over the limit returns DROPPED')
    t.equal(r.socket.readyState, 2, 'and starts the closing handshake')
    t.equal(r.socket.send(MESSAGE), SendStatus.DROPPED, 'later sends are dropped')
    t.equal(r.socket.droppedMessages, 0, 'the close policy does not count drops')
    t.ok(maxBuffered <= LIMIT + FRAME, `bufferedAmount peaked at ${maxBuffered}`)

    r.client.read()
    await until(() => r.client.closeFrame !== undefined, 'the close frame')
    t.same(r.client.closeFrame, { code: 1008, reason: 'backpressure limit reached' }, 'behind everything queued: 1008')
    t.equal(r.client.dataFrames, firstDropped, 'every message queued before it arrived first')
    r.client.send(Op.CLOSE, closePayload(1008))
    await until(() => r.closes.length > 0, 'the close handler')
    t.same(r.closes, [1008], 'the close handler sees the 1008 the client echoed')
    await until(() => r.client.closed, 'the server to close TCP')
  })
}

import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { Connection, checkUpgradeRequest, acceptResponse, type ConnectionHandler } from '../../lib/engine/index.js'
import { watchIdle } from '../../lib/engine/heartbeat.js'
import { waitUntil } from '../helpers/wait.js'

interface Seen { closes: number[], errors: string[], pings: number }

async function startServer (t: Test, idleTimeout: number, onConnection?: (connection: Connection) => void): Promise<{ port: number, seen: Seen }> {
  const seen: Seen = { closes: [], errors: [], pings: 0 }
  const handler: ConnectionHandler = {
    onMessage (connection, data) { connection.send(data) },
    onClose (_connection, code) { seen.closes.push(code) },
    onError (_connection, error) { seen.errors.push((error as { code?: string }).code ?? error.message) },
  }
  const server = http.createServer()
  const sockets = new Set<net.Socket>()
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  server.on('upgrade', (request, socket, head) => {
    const check = checkUpgradeRequest(request)
    if (!check.ok) return socket.destroy()
    socket.write(acceptResponse(check.key, ''))
    const connection = new Connection(socket as net.Socket, handler, { idleTimeout })
    onConnection?.(connection)
    connection.start(head)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    // Upgraded sockets keep server.close() waiting: end them, then wait for the close.
    for (const socket of sockets) socket.destroy()
    await new Promise(resolve => server.close(resolve))
  })
  return { port: (server.address() as net.AddressInfo).port, seen }
}


/** A client that completes the handshake and then never answers anything. */
async function silentClient (port: number): Promise<{ socket: net.Socket, received: Buffer[] }> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write(`GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
  const received: Buffer[] = []
  socket.on('data', chunk => received.push(chunk))
  socket.on('error', () => {})
  return { socket, received }
}

t.test('a peer that never answers the heartbeat ping is dropped, once', async t => {
  const { port, seen } = await startServer(t, 0.2)
  const { socket, received } = await silentClient(port)
  t.teardown(() => socket.destroy())
  await once(socket, 'close')
  const bytes = Buffer.concat(received)
  const body = bytes.subarray(bytes.indexOf('\r\n\r\n') + 4)
  t.same([...body.subarray(0, 2)], [0x89, 0x00], 'an empty ping went out before the drop')
  await new Promise(resolve => setImmediate(resolve))
  t.same(seen.closes, [1006], 'close reported once, as abnormal')
  t.same(seen.errors, ['WS_ERR_IDLE_TIMEOUT'])
})

t.test('a peer that only reads (each drain of our writes) counts as alive', { timeout: 10_000 }, async t => {
  const connections: Connection[] = []
  const { port, seen } = await startServer(t, 0.2, connection => connections.push(connection))
  const { socket } = await silentClient(port)
  t.teardown(() => socket.destroy())
  await waitUntil(() => connections.length === 1, 'the connection')
  // What a download to a slow reader looks like on our side: 'drain' after
  // 'drain', and nothing inbound (its pong waits behind the download).
  const draining = setInterval(() => connections[0].socket.emit('drain'), 40)
  await new Promise(resolve => setTimeout(resolve, 600))
  clearInterval(draining)
  t.same(seen.closes, [], 'not dropped in three idle timeouts while the peer kept reading')
  await once(socket, 'close')
  t.same(seen.errors, ['WS_ERR_IDLE_TIMEOUT'], 'dropped once the drains stopped and the ping went unanswered')
})

t.test('a peer that answers pings stays connected', async t => {
  const { port, seen } = await startServer(t, 0.2)
  const client = new WebSocket(`ws://127.0.0.1:${port}/`)
  t.teardown(() => client.terminate())
  await once(client, 'open')
  let pings = 0
  client.on('ping', () => pings++)
  await new Promise(resolve => setTimeout(resolve, 700))
  t.equal(client.readyState, WebSocket.OPEN, 'still open after more than three idle timeouts')
  t.ok(pings >= 2, `the server pinged the quiet client (${pings} pings)`)
  t.same(seen.closes, [])
  client.send('still here')
  const [reply] = await once(client, 'message')
  t.equal(reply.toString(), 'still here')
})

t.test('idleTimeout 0 turns the heartbeat off', async t => {
  const { port, seen } = await startServer(t, 0)
  const { socket, received } = await silentClient(port)
  t.teardown(() => socket.destroy())
  await new Promise(resolve => setTimeout(resolve, 300))
  t.notOk(socket.destroyed, 'still connected')
  const bytes = Buffer.concat(received)
  t.equal(bytes.length, bytes.indexOf('\r\n\r\n') + 4, 'nothing but the 101 was sent')
  t.same(seen.closes, [])
})

/** A member that records what the group did to it, and leaves its group when dropped (at once, inside the sweep). */
class FakeMember {
  activity = false
  idleTicks = 0
  heartbeatSlot = -1
  pings = 0
  expiries = 0
  group: ReturnType<typeof watchIdle> | undefined
  constructor (readonly name: string) {}
  heartbeatPing (): void { this.pings++ }
  heartbeatExpired (): void {
    this.expiries++
    this.group?.remove(this)
  }
}

t.test('a group keeps its members through removals from anywhere in it, and sweeps each once per tick', async t => {
  // Four ticks per timeout: a ping at the second quiet tick, the drop at the
  // fourth. The test sweeps by hand, tick by tick; the timeout is long enough
  // that the group's own timer (one tick an hour) never fires meanwhile. The
  // tests above go through the timer.
  const timeoutMs = 4 * 3_600_000
  const members = Array.from({ length: 12 }, (_, i) => new FakeMember(`m${i}`))
  const group = members.map(member => (member.group = watchIdle(member, timeoutMs)))[0]
  t.ok(members.every(member => watchIdle(member, timeoutMs) === group), 'one group per timeout; adding a member twice keeps one place')
  t.equal(group.members.size, 12)
  // First, last, middle, and the one that moved into the first's place.
  const removed = new Set([members[0], members[11], members[5], members[10]])
  for (const member of removed) group.remove(member)
  group.remove(members[0])
  const kept = members.filter(member => !removed.has(member))
  t.same(new Set(group.members.items), new Set(kept), 'the others are still members, each once')
  t.ok(group.members.items.every((member, slot) => member.heartbeatSlot === slot), 'every member knows its place')
  t.ok([...removed].every(member => member.heartbeatSlot === -1))
  // kept[0] shows activity before every tick; the others go quiet.
  const active = kept[0]
  const quiet = kept.slice(1)
  const expected = [[0, 0], [1, 0], [1, 0], [1, 1], [1, 1]]
  for (let tick = 1; tick <= expected.length; tick++) {
    active.activity = true
    group.sweep()
    const [pings, expiries] = expected[tick - 1]
    t.same(quiet.map(member => [member.pings, member.expiries]), quiet.map(() => [pings, expiries]),
      `after tick ${tick}: ${pings} ping(s) and ${expiries} drop(s) each` + (tick === 2 ? ' (the ping, at the second quiet tick)' : tick === 4 ? ' (dropped, leaving the group while it was swept)' : ''))
  }
  t.same(group.members.items, [active], 'the active member is the one left')
  t.equal(active.pings + active.expiries, 0, 'an active member is neither pinged nor dropped')
  t.ok([...removed].every(member => member.pings + member.expiries === 0), 'removed members are never swept')
  group.remove(active)
  t.equal(group.members.size, 0)
  t.not(watchIdle(active, timeoutMs), group, 'an emptied group is gone; the next member starts a new one')
  watchIdle(active, timeoutMs).remove(active)
})

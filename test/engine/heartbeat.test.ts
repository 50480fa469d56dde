import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { Connection, checkUpgradeRequest, acceptResponse, type ConnectionHandler } from '../../lib/engine/index.js'

interface Seen { closes: number[], errors: string[], pings: number }

async function startServer (t: Test, idleTimeout: number): Promise<{ port: number, seen: Seen }> {
  const seen: Seen = { closes: [], errors: [], pings: 0 }
  const handler: ConnectionHandler = {
    onMessage (connection, data) { connection.send(data) },
    onClose (_connection, code) { seen.closes.push(code) },
    onError (_connection, error) { seen.errors.push((error as { code?: string }).code ?? error.message) },
  }
  const server = http.createServer()
  server.on('upgrade', (request, socket, head) => {
    const check = checkUpgradeRequest(request)
    if (!check.ok) return socket.destroy()
    socket.write(acceptResponse(check.key, ''))
    new Connection(socket as net.Socket, handler, { idleTimeout }).start(head)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
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

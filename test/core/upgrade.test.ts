/**
 * The framework-neutral first steps of an upgrade: the handshake check with
 * real HTTP answers, the ServerResponse bound to the raw socket (so a hook's
 * 401 is HTTP), `release()` handing the socket over, the guard that keeps
 * a client reset from crashing the process, and `refuseUpgrade`.
 */
import express from 'express'
import Fastify from 'fastify'
import { once } from 'node:events'
import http, { type ServerResponse } from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { Readable, type Duplex } from 'node:stream'
import t from 'tap'
import { wsroutes } from '../../lib/index.js'
import { wsExpress } from '../../lib/express/index.js'
import { beginUpgrade, kUpgrade, refuseUpgrade, type PendingUpgrade, type UpgradeRequest } from '../../lib/core/upgrade.js'
import { acceptKey, acceptResponse, LINGER_MS } from '../../lib/engine/handshake.js'
import { KEY, Op, RawClient, clientFrame, deferred, portOf, upgradeRequest } from '../interop/helpers.js'
import { waitUntil } from '../helpers/wait.js'

interface Seen {
  request: UpgradeRequest
  socket: Duplex
  response: ServerResponse | undefined
}

/** A plain HTTP server whose upgrade listener calls beginUpgrade, then `then` (if given). */
async function serve (t: { teardown (fn: () => unknown): void }, then?: (seen: Seen) => void): Promise<{ port: number, next (): Promise<Seen> }> {
  const queue: Seen[] = []
  const waiters: Array<(seen: Seen) => void> = []
  const server = http.createServer((_req, res) => res.end('plain'))
  server.on('upgrade', (request: UpgradeRequest, socket: Duplex, head: Buffer) => {
    const seen = { request, socket, response: beginUpgrade(request, socket, head) }
    then?.(seen)
    const waiter = waiters.shift()
    if (waiter !== undefined) waiter(seen)
    else queue.push(seen)
  })
  server.listen(0, '127.0.0.1')
  await new Promise(resolve => server.once('listening', resolve))
  t.teardown(() => new Promise(resolve => server.close(resolve)))
  return {
    port: portOf(server),
    next: () => {
      const seen = queue.shift()
      return seen !== undefined ? Promise.resolve(seen) : new Promise(resolve => waiters.push(resolve))
    },
  }
}

t.test('invalid handshakes get an HTTP status and the socket is closed', async t => {
  const { port, next } = await serve(t)
  const cases: Array<{ name: string, request: Parameters<typeof upgradeRequest>[0], status: number, headers?: Record<string, string> }> = [
    { name: 'missing key', request: { headers: { 'Sec-WebSocket-Key': null } }, status: 400 },
    { name: 'a key that is not 16 bytes', request: { headers: { 'Sec-WebSocket-Key': 'c2hvcnQ=' } }, status: 400 },
    { name: 'version 8', request: { headers: { 'Sec-WebSocket-Version': '8' } }, status: 426, headers: { 'sec-websocket-version': '13', upgrade: 'websocket', connection: 'Upgrade, close' } },
    { name: 'no version', request: { headers: { 'Sec-WebSocket-Version': null } }, status: 426, headers: { 'sec-websocket-version': '13', upgrade: 'websocket', connection: 'Upgrade, close' } },
    { name: 'POST', request: { method: 'POST', headers: { 'Content-Length': '0' } }, status: 405, headers: { allow: 'GET' } },
    { name: 'a duplicate subprotocol', request: { headers: { 'Sec-WebSocket-Protocol': 'chat, chat' } }, status: 400 },
    { name: 'an invalid subprotocol token', request: { headers: { 'Sec-WebSocket-Protocol': 'a b' } }, status: 400 },
  ]
  for (const c of cases) {
    const { client, head } = await RawClient.request(port, c.request)
    const seen = await next()
    t.equal(head.status, c.status, `${c.name}: ${c.status}`)
    t.match(head.headers.connection, /(^|, )close$/, `${c.name}: Connection: close`)
    for (const name in c.headers) t.equal(head.headers[name], c.headers[name], `${c.name}: ${name}`)
    t.equal(seen.response, undefined, `${c.name}: no response object`)
    t.equal(seen.request[kUpgrade], undefined, `${c.name}: no pending upgrade`)
    t.ok((await client.body()).length > 0, `${c.name}: a body says why`)
    t.notOk(client.raw.includes('101 Switching'), `${c.name}: never a 101`)
  }
})

t.test('an upgrade to another protocol (h2c) is served as plain HTTP, not refused', async t => {
  const { port, next } = await serve(t, seen => {
    seen.response?.writeHead(200, { 'content-type': 'text/plain' }).end('plain answer')
  })
  const { client, head } = await RawClient.request(port, { headers: { Upgrade: 'h2c' } })
  const seen = await next()
  t.ok(seen.response, 'a response on the raw socket for the framework to route')
  t.equal(seen.request[kUpgrade], undefined, 'no pending upgrade')
  t.equal(head.status, 200, 'the route answers as HTTP')
  await client.body()
  t.match(client.raw, /plain answer/, 'the body')
  t.notOk(client.raw.includes('101 Switching'), 'never a 101')
})

t.test('a valid handshake: a pending upgrade and a response on the raw socket', async t => {
  const { port, next } = await serve(t)
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())
  const early = clientFrame(Op.TEXT, 'early')
  client.write(upgradeRequest({ path: '/x?y=1', headers: { 'Sec-WebSocket-Protocol': 'b, a' }, extra: early }))
  const seen = await next()
  const pending = seen.request[kUpgrade] as PendingUpgrade
  t.ok(seen.response, 'a ServerResponse')
  t.equal(pending.key, KEY)
  t.same(pending.protocols, ['b', 'a'], 'the offers in the client\'s order')
  t.ok(pending.head.equals(early), 'the bytes after the request head')
  t.equal(pending.socket, seen.socket)

  // A framework's 401 goes out as HTTP, then the socket is ended.
  seen.response!.writeHead(401, { 'www-authenticate': 'Bearer', 'content-length': 11 })
  seen.response!.end('who are you')
  const head = await client.head()
  t.equal(head.statusLine, 'HTTP/1.1 401 Unauthorized')
  t.equal(head.headers['www-authenticate'], 'Bearer')
  t.equal(head.headers.connection, 'close')
  t.equal(await client.body(), 'who are you')
})

t.test('release() hands the socket over: a finished response no longer ends it', async t => {
  const { port, next } = await serve(t)
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())
  client.write(upgradeRequest())
  const seen = await next()
  const pending = seen.request[kUpgrade]!
  pending.release()
  t.equal(seen.response!.socket, null, 'the response is detached')
  t.equal(seen.socket.listenerCount('error'), 0, 'the guard is removed: the new owner handles errors')
  seen.socket.write(acceptResponse(pending.key, ''))
  t.equal((await client.head()).status, 101)
  // The socket is still ours: write on it and read back.
  seen.socket.write(Buffer.from([0x81, 0x02, 0x6f, 0x6b]))
  const frame = await client.nextFrame()
  t.equal(frame.payload.toString(), 'ok')
  t.equal(client.ended, false, 'the connection is still open')
  seen.socket.destroy()
})

t.test('a client reset before release does not crash the process', async t => {
  const reset = deferred<void>()
  const { port, next } = await serve(t)
  const client = await RawClient.connect(port)
  client.write(upgradeRequest())
  const seen = await next()
  seen.socket.once('close', () => reset.resolve())
  // RST, as a client that crashes or times out does.
  client.socket.resetAndDestroy()
  await reset.promise
  t.equal(seen.socket.destroyed, true, 'the server side is destroyed')
  // A hook answering late writes to a dead socket: no throw, no crash.
  seen.response!.writeHead(401)
  seen.response!.end('late')
  t.doesNotThrow(() => seen.request[kUpgrade]!.release())
  // Give any stray 'error' a turn to surface as an uncaught exception.
  await new Promise(resolve => setImmediate(resolve))
  t.pass('still alive')
})

t.test('an error on the socket before release only destroys it', async t => {
  const { port, next } = await serve(t)
  const client = await RawClient.connect(port)
  t.teardown(() => client.destroy())
  client.write(upgradeRequest())
  const seen = await next()
  seen.socket.emit('error', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))
  t.equal(seen.socket.destroyed, true)
  await client.closed
  t.pass('the client is disconnected')
})

t.test('refuseUpgrade answers with the status and closes', async t => {
  const { port } = await serve(t, seen => {
    // Take the request back from beginUpgrade's response, as a server shutting down would refuse it.
    seen.request[kUpgrade]?.release()
    refuseUpgrade(seen.socket, 503, 'server shutting down')
  })
  const { client, head } = await RawClient.request(port)
  t.equal(head.status, 503)
  t.equal(head.headers.connection, 'close')
  t.equal(await client.body(), 'server shutting down')
})

// ------------------------------------------------- pipelined upgrades

/**
 * Both adapters, each with a plain route that answers after `delay` ms
 * (`/slow`, or `/slow?close` with `Connection: close`) and an echo route
 * `/ws`, on 127.0.0.1:0; closed at teardown.
 */
async function serveBoth (t: { teardown (fn: () => unknown): void }, delay: number): Promise<Array<{ kind: string, port: number, server: http.Server }>> {
  const answer = async (close: boolean): Promise<{ body: string, close: boolean }> => {
    await new Promise(resolve => setTimeout(resolve, delay))
    return { body: 'slow answer', close }
  }
  const fastify = Fastify()
  await fastify.register(wsroutes)
  fastify.get('/slow', async (request, reply) => {
    const { body, close } = await answer('close' in (request.query as object))
    if (close) reply.header('connection', 'close')
    return body
  })
  fastify.ws('/ws', { message (socket, data) { socket.send(data) } })
  fastify.get('/stream', (_request, reply) => {
    reply.hijack()
    streamSlowly(reply.raw)
  })
  await fastify.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => fastify.close())

  const app = express()
  const server = http.createServer(app)
  wsExpress(app, server)
  app.get('/slow', (request, response) => {
    void answer('close' in request.query).then(({ body, close }) => {
      if (close) response.set('connection', 'close')
      response.send(body)
    })
  })
  app.ws('/ws', { message (socket, data) { socket.send(data) } })
  app.get('/stream', (_request, response) => { streamSlowly(response) })
  server.listen(0, '127.0.0.1')
  await new Promise(resolve => server.once('listening', resolve))
  t.teardown(() => new Promise(resolve => server.close(resolve)))
  return [
    { kind: 'fastify', port: (fastify.server.address() as AddressInfo).port, server: fastify.server },
    { kind: 'express', port: portOf(server), server },
  ]
}

/** A response streamed in pieces over 200 ms, as a download or server-sent events are. */
function streamSlowly (response: http.ServerResponse): void {
  const body = new Readable({ read () {} })
  body.push('first piece\n')
  const timers = [setTimeout(() => body.push('second piece\n'), 100), setTimeout(() => body.push(null), 200)]
  response.once('close', () => { for (const timer of timers) clearTimeout(timer) })
  response.writeHead(200, { 'content-type': 'text/plain' })
  body.pipe(response)
}

/** A TCP client that keeps every byte it receives, and waits for a condition on them; destroyed at teardown. */
async function pipelining (t: { teardown (fn: () => unknown): void }, port: number): Promise<{ socket: net.Socket, received: () => string, until: (test: (text: string) => boolean) => Promise<string> }> {
  const socket = net.connect(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  let bytes = ''
  const waiters = new Set<() => void>()
  socket.on('data', chunk => {
    bytes += chunk.toString('latin1')
    for (const wake of waiters) wake()
  })
  socket.on('close', () => { for (const wake of waiters) wake() })
  return {
    socket,
    received: () => bytes,
    until: async test => {
      while (!test(bytes)) {
        if (socket.destroyed) throw new Error(`closed; received ${JSON.stringify(bytes)}`)
        await new Promise<void>(resolve => {
          const wake = (): void => { waiters.delete(wake); resolve() }
          waiters.add(wake)
        })
      }
      return bytes
    },
  }
}

const plainRequest = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`

t.test('an upgrade pipelined behind a request is answered after that request, in order', async t => {
  for (const { kind, port } of await serveBoth(t, 30)) {
    const client = await pipelining(t, port)
    // One write: Node parses both heads at once and emits 'upgrade' while /slow is still running.
    client.socket.write(Buffer.concat([Buffer.from(plainRequest('/slow') + plainRequest('/slow')), upgradeRequest({ path: '/ws' })]))
    const text = await client.until(bytes => {
      const at = bytes.indexOf('HTTP/1.1 101')
      return at !== -1 && bytes.includes('\r\n\r\n', at)
    })
    const first = text.indexOf('HTTP/1.1 200')
    const second = text.indexOf('HTTP/1.1 200', first + 1)
    const upgraded = text.indexOf('HTTP/1.1 101')
    t.ok(first === 0 && second > first && upgraded > second, `${kind}: 200, 200, then 101 (${JSON.stringify(text)})`)
    t.equal(text.split('slow answer').length - 1, 2, `${kind}: both answers whole`)
    t.match(text.slice(upgraded), new RegExp(`Sec-WebSocket-Accept: ${acceptKey(KEY).replace(/[+/]/g, '\\$&')}`, 'i'), `${kind}: the 101 accepts the key`)

    const afterHead = Buffer.byteLength(text.slice(0, text.indexOf('\r\n\r\n', upgraded) + 4), 'latin1')
    client.socket.write(clientFrame(Op.TEXT, 'echo me'))
    const echoed = await client.until(bytes => bytes.length >= afterHead + 2 + 7)
    t.equal(echoed.slice(afterHead), '\x81\x07echo me', `${kind}: the connection works`)
    client.socket.write(clientFrame(Op.CLOSE, Buffer.from([0x03, 0xe8])))
    await once(client.socket, 'close')
  }
})

t.test('an upgrade behind a response that closes the connection is dropped, and the server goes on', async t => {
  for (const { kind, port } of await serveBoth(t, 10)) {
    const client = await pipelining(t, port)
    client.socket.write(Buffer.concat([Buffer.from(plainRequest('/slow?close')), upgradeRequest({ path: '/ws' })]))
    await once(client.socket, 'close')
    t.match(client.received(), /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nslow answer$/i, `${kind}: only the first answer, then the end`)
    const next = await RawClient.open(port, { path: '/ws' })
    t.pass(`${kind}: a later upgrade is served`)
    next.destroy()
  }
})

t.test('a client gone while its upgrade waits behind a response crashes nothing', async t => {
  for (const { kind, port } of await serveBoth(t, 50)) {
    const client = await pipelining(t, port)
    client.socket.write(Buffer.concat([Buffer.from(plainRequest('/slow')), upgradeRequest({ path: '/ws' })]))
    await new Promise(resolve => setTimeout(resolve, 10))
    client.socket.destroy()
    await new Promise(resolve => setTimeout(resolve, 80))
    const next = await RawClient.open(port, { path: '/ws' })
    t.pass(`${kind}: a later upgrade is served`)
    next.destroy()
  }
})

// ------------------------------------------------------- closing after an answer

t.test('a refused client that never closes its side is disconnected after the linger time', async t => {
  for (const { kind, port, server } of await serveBoth(t, 0)) {
    const connections = (): Promise<number> => new Promise((resolve, reject) => server.getConnections((error, count) => error === null ? resolve(count) : reject(error)))
    for (const [what, request] of [
      ['404 from the framework', upgradeRequest({ path: '/nope' })],
      ['400 for a bad handshake', upgradeRequest({ path: '/ws', headers: { 'Sec-WebSocket-Key': 'short' } })],
    ] as const) {
      // allowHalfOpen: the client reads the answer and its FIN, and never sends its own.
      const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
      t.teardown(() => socket.destroy())
      await once(socket, 'connect')
      let answer = ''
      socket.on('data', chunk => { answer += chunk.toString('latin1') })
      socket.write(request)
      await once(socket, 'end')
      t.match(answer, /^HTTP\/1\.1 (404|400) /, `${kind}, ${what}: answered, then the server's FIN`)
      const answered = Date.now()
      t.equal(await connections(), 1, `${kind}, ${what}: the server still lingers`)
      // The client is left in CLOSE_WAIT, which only its own close ends; the server's socket goes.
      await waitUntil(async () => await connections() === 0, `${kind}, ${what}: the server to close its socket`, LINGER_MS + 5000)
      t.equal(await connections(), 0, `${kind}, ${what}: the server's socket is closed, not kept`)
      // Measured from the client's side of the answer, so loosely: a lower bound that still tells a linger from a close soon after the answer.
      t.ok(Date.now() - answered >= LINGER_MS / 2, `${kind}, ${what}: after the linger time (${Date.now() - answered} ms, linger ${LINGER_MS} ms)`)
    }
  }
})

t.test('a client gone before the answer: the handshake deadline no longer holds the request', async t => {
  const pending: PendingUpgrade[] = []
  const server = http.createServer()
  server.on('upgrade', (request: UpgradeRequest, socket: Duplex, head: Buffer) => {
    beginUpgrade(request, socket, head, 10_000)
    pending.push(request[kUpgrade]!)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise(resolve => server.close(resolve)))
  for (const [index, leave] of (['FIN', 'reset'] as const).entries()) {
    const client = await RawClient.connect(portOf(server))
    t.teardown(() => client.destroy())
    client.write(upgradeRequest())
    await waitUntil(() => pending.length === index + 1, 'the upgrade to reach the server')
    const upgrade = pending[index]
    t.ok((upgrade as unknown as { timer?: unknown }).timer !== undefined, 'a deadline while the hooks run')
    if (leave === 'FIN') client.socket.end()
    else client.socket.resetAndDestroy()
    // Not events.once: the reset's 'error' (handled by the guard) would reject it.
    await new Promise(resolve => upgrade.socket.once('close', resolve))
    t.equal((upgrade as unknown as { timer?: unknown }).timer, undefined, `${leave}: the timer is cleared with the client gone`)
  }
})

t.test('a client that leaves while its upgrade waits behind a streamed response crashes nothing', async t => {
  for (const { kind, port } of await serveBoth(t, 0)) {
    for (const leave of ['FIN', 'reset'] as const) {
      const socket = net.connect({ port, host: '127.0.0.1' })
      t.teardown(() => socket.destroy())
      socket.on('error', () => {})
      await once(socket, 'connect')
      socket.write(Buffer.concat([Buffer.from(plainRequest('/stream')), upgradeRequest({ path: '/ws' })]))
      await new Promise(resolve => setTimeout(resolve, 30))
      // The server's next write draws a reset, and the one after fails.
      if (leave === 'FIN') socket.destroy()
      else socket.resetAndDestroy()
      await new Promise(resolve => setTimeout(resolve, 300))
    }
    const next = await RawClient.open(port, { path: '/ws' })
    t.pass(`${kind}: still serving`)
    next.destroy()
  }
})

t.test('the wait behind an earlier response counts toward handshakeTimeout; that response is never cut short', async t => {
  const app = Fastify()
  await app.register(wsroutes, { handshakeTimeout: 200 })
  app.get('/slow', async () => {
    await new Promise(resolve => setTimeout(resolve, 400))
    return 'slow body'
  })
  app.ws('/ws', { open () {} })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const client = await pipelining(t, (app.server.address() as AddressInfo).port)
  client.socket.write(Buffer.concat([Buffer.from(plainRequest('/slow')), upgradeRequest({ path: '/ws' })]))
  await once(client.socket, 'close')
  const text = client.received()
  t.match(text, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nslow body/, 'the slow response, whole')
  t.match(text.slice(text.indexOf('slow body')), /HTTP\/1\.1 503 Service Unavailable[^]*handshake timed out$/, 'then the upgrade\'s 503: its deadline passed while it waited')
})

t.test('forceCloseConnections: true also closes an upgrade waiting behind a response that never finishes', async t => {
  const app = Fastify({ forceCloseConnections: true })
  // Closed here on a failure too; the test's own close below is what it checks.
  t.teardown(() => app.close())
  await app.register(wsroutes)
  let hanging = 0
  app.get('/hang', () => {
    hanging++
    return new Promise(() => {})
  })
  app.ws('/ws', { open () {} })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const client = await pipelining(t, (app.server.address() as AddressInfo).port)
  client.socket.write(Buffer.concat([Buffer.from(plainRequest('/hang')), upgradeRequest({ path: '/ws' })]))
  // The request reached its handler; the upgrade, read with it, waits behind it.
  await waitUntil(() => hanging === 1, 'the /hang request to reach its handler')
  const started = Date.now()
  await Promise.all([app.close(), once(client.socket, 'close')])
  t.ok(Date.now() - started < 1000, `app.close() and the socket closed in ${Date.now() - started} ms`)
  t.equal(client.received(), '', 'nothing was answered out of order')
})

t.test('while an upgrade waits behind a response, the socket behaves as under Node: drain, the client FIN, the socket timeout', async t => {
  const app = Fastify({ connectionTimeout: 400 })
  await app.register(wsroutes, { handshakeTimeout: 0 })
  let hanging = 0
  app.get('/hang', () => {
    hanging++
    return new Promise(() => {})
  })
  app.get('/big', (_request, reply) => {
    let left = 256
    return reply.send(new Readable({ read () { this.push(left-- > 0 ? Buffer.alloc(64 * 1024, 7) : null) } }))
  })
  app.ws('/ws', { open (socket) { socket.send('open') } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const port = (app.server.address() as AddressInfo).port
  const connections = (): Promise<number> => new Promise((resolve, reject) => app.server.getConnections((error, count) => error === null ? resolve(count) : reject(error)))

  // A streamed response larger than the socket's buffers needs 'drain' to go on.
  const big = await pipelining(t, port)
  big.socket.write(Buffer.concat([Buffer.from(plainRequest('/big')), upgradeRequest({ path: '/ws' })]))
  const text = await big.until(bytes => bytes.includes('\x81\x04open'))
  t.ok(text.indexOf('HTTP/1.1 101') > 16 * 1024 * 1024, 'the whole 16 MiB, then the 101 and the open message')
  big.socket.destroy()

  // The client's FIN ends the connection.
  const leaving = await pipelining(t, port)
  leaving.socket.write(Buffer.concat([Buffer.from(plainRequest('/hang')), upgradeRequest({ path: '/ws' })]))
  // The request reached its handler; the upgrade, read with it, waits behind it.
  await waitUntil(() => hanging === 1, 'the /hang request to reach its handler')
  leaving.socket.end()
  await once(leaving.socket, 'close')
  await waitUntil(async () => await connections() === 0, 'the server to close the connection')
  t.equal(await connections(), 0, 'a FIN closes it')

  // The server's socket timeout still hangs up.
  const idle = await pipelining(t, port)
  idle.socket.write(Buffer.concat([Buffer.from(plainRequest('/hang')), upgradeRequest({ path: '/ws' })]))
  const started = Date.now()
  await once(idle.socket, 'close')
  t.ok(Date.now() - started < 2000, `connectionTimeout closed it after ${Date.now() - started} ms`)
})

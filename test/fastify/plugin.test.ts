/**
 * The Fastify plugin: upgrades go through Fastify's router, hooks and
 * schemas before the 101 and get real HTTP answers when refused; handler
 * failures close only their socket (1011) and are logged through
 * `request.log`; errors reach the route's and the plugin's handlers;
 * resets do not crash the process; `app.close()` closes every socket with
 * 1001 and refuses new upgrades; the socket API's runtime checks.
 */
import { once } from 'node:events'
import net from 'node:net'
import t from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import WebSocket from 'ws'
import { wsroutes, ReadyState, type WsPluginOptions } from '../../lib/index.js'
import { LogSink, RawClient, closeWs, deferred, nextMessage, openWs, portOf, refusedWs, upgradeRequest, wsClosed, type Teardown } from '../interop/helpers.js'

interface App {
  app: FastifyInstance
  port: number
  url: string
  logs: LogSink
}

/**
 * A Fastify app with the plugin, its pino output captured; `routes` declares
 * routes before it listens on 127.0.0.1:0. Closed at teardown.
 */
async function build (t: Teardown, routes: (app: FastifyInstance) => void | Promise<void>, options: WsPluginOptions = {}, fastifyOptions: FastifyServerOptions = {}): Promise<App> {
  const logs = new LogSink()
  const app = Fastify({ logger: { level: 'debug', stream: logs }, ...fastifyOptions })
  await app.register(wsroutes, options)
  await routes(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const port = portOf(app.server)
  return { app, port, url: `ws://127.0.0.1:${port}`, logs }
}

async function client (t: Teardown, url: string, protocols?: string | string[], options?: WebSocket.ClientOptions): Promise<WebSocket> {
  const ws = await openWs(url, protocols, options)
  t.teardown(() => closeWs(ws))
  return ws
}

async function rawRequest (t: Teardown, port: number, options: Parameters<typeof RawClient.request>[1]): Promise<Awaited<ReturnType<typeof RawClient.request>>> {
  const result = await RawClient.request(port, options)
  t.teardown(() => result.client.destroy())
  return result
}

// ------------------------------------------------------------------ hooks

t.test('a client that leaves while the hooks run aborts request.signal and runs onRequestAbort', async t => {
  const seen: string[] = []
  const entered = deferred()
  const hookDone = deferred()
  const { port } = await build(t, app => {
    app.addHook('onRequestAbort', async request => { seen.push(`onRequestAbort ${request.url}`) })
    app.ws('/slow', {
      onRequest: async request => {
        request.signal.addEventListener('abort', () => seen.push('signal aborted'))
        entered.resolve()
        await new Promise(resolve => setTimeout(resolve, 100))
        seen.push(`hook done, aborted: ${String(request.signal.aborted)}`)
        hookDone.resolve()
      },
      open () { seen.push('open') },
    })
    app.ws('/deny', { onRequest: async (_request, reply) => reply.code(401).send(), open () {} })
    app.ws('/fine', { open () {} })
  })
  const leaving = await RawClient.connect(port)
  t.teardown(() => leaving.destroy())
  leaving.write(upgradeRequest({ path: '/slow' }))
  await entered.promise
  leaving.destroy()
  await hookDone.promise
  t.same(seen, ['signal aborted', 'onRequestAbort /slow', 'hook done, aborted: true'], 'as for an HTTP request whose client left')

  seen.length = 0
  t.equal((await rawRequest(t, port, { path: '/deny' })).head.status, 401)
  const fine = await RawClient.open(port, { path: '/fine' })
  t.teardown(() => fine.destroy())
  fine.destroy()
  await fine.closed
  await new Promise(resolve => setTimeout(resolve, 50))
  t.same(seen, [], 'an answered or upgraded request is no abort')
})

t.test("the server's socket timeout (connectionTimeout) does not fire onTimeout for an upgrade: handshakeTimeout is its deadline", async t => {
  const timedOut: string[] = []
  const { port } = await build(t, app => {
    app.addHook('onTimeout', async request => { timedOut.push(request.url) })
    app.ws('/slow', { onRequest: async () => { await new Promise(resolve => setTimeout(resolve, 300)) }, open (socket) { socket.send('in') } })
  }, {}, { connectionTimeout: 100 })
  const client = await RawClient.open(port, { path: '/slow' })
  t.teardown(() => client.destroy())
  t.equal((await client.nextFrame()).payload.toString(), 'in')
  t.same(timedOut, [], 'no onTimeout for a request that was not hung up')
})

t.test('an onRequest hook answering 401 is a real HTTP 401, no upgrade', async t => {
  const opens: string[] = []
  const { url, port } = await build(t, app => {
    app.addHook('onRequest', async (request, reply) => {
      if (request.headers.authorization !== 'Bearer ok') return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'no' })
    })
    app.ws('/private', { open (socket) { opens.push(socket.request.url) } })
  })

  const refused = await refusedWs(url + '/private')
  t.equal(refused.status, 401, 'ws sees unexpected-response 401')
  t.equal(refused.headers['www-authenticate'], 'Bearer')
  t.same(JSON.parse(refused.body), { error: 'no' })

  const { client: raw, head } = await rawRequest(t, port, { path: '/private' })
  t.equal(head.statusLine, 'HTTP/1.1 401 Unauthorized', 'the raw status line')
  t.equal(head.headers.connection, 'close')
  t.notOk('sec-websocket-accept' in head.headers)
  await raw.closed
  t.pass('the server closed the connection after the response')

  const ws = await client(t, url + '/private', undefined, { headers: { authorization: 'Bearer ok' } })
  t.equal(ws.readyState, WebSocket.OPEN, 'with credentials the upgrade goes through')
  t.same(opens, ['/private'], 'open ran only for the authorized client')
})

t.test('a synchronous onRequest hook answering 401 (callback style)', async t => {
  const { url } = await build(t, app => {
    app.addHook('onRequest', (_request, reply, done) => {
      reply.code(401).send()
      done()
    })
    app.ws('/x', {})
  })
  const refused = await refusedWs(url + '/x')
  t.equal(refused.status, 401)
})

t.test('a hook that sends 401 without returning the reply, on an app with an async onSend hook: still a 401', async t => {
  // Fastify writes the reply only once the async onSend hook is done, and the
  // hook's promise resolved without the reply: the request reaches the route
  // before anything is written. No 101 may follow the hook's answer.
  const opens: string[] = []
  const { url, port, logs } = await build(t, app => {
    app.addHook('onSend', async (_request, _reply, payload) => {
      await new Promise(resolve => setTimeout(resolve, 20))
      return payload
    })
    app.addHook('onRequest', async (request, reply) => {
      if (request.headers.authorization !== 'Bearer ok') reply.code(401).send({ error: 'no' })
    })
    app.ws('/private', { open (socket) { opens.push(socket.request.url) } })
  })
  const refused = await refusedWs(url + '/private')
  t.equal(refused.status, 401, 'the hook\'s answer')
  t.same(JSON.parse(refused.body), { error: 'no' })
  const { client: raw, head } = await rawRequest(t, port, { path: '/private' })
  t.equal(head.statusLine, 'HTTP/1.1 401 Unauthorized')
  await raw.closed
  t.notMatch(raw.raw.toString('latin1'), /101 Switching Protocols/, 'and nothing after it')
  t.same(opens, [], 'open never ran')
  t.ok(logs.lines.some(line => /upgrade not completed: the request was already answered/.test(String(line.msg))), 'the route says why it did not upgrade')
  const ws = await client(t, url + '/private', undefined, { headers: { authorization: 'Bearer ok' } })
  t.equal(ws.readyState, WebSocket.OPEN, 'with credentials the upgrade goes through, after the onSend hook')
})

t.test('a hook that answers without returning the reply, sent later by an async error handler or preSerialization hook: no 101', async t => {
  // As the @fastify/jwt README writes it: `try { await verify() } catch (err) { reply.send(err) }`.
  const opens: string[] = []
  const setups: Array<[string, (app: FastifyInstance) => void]> = [
    ['an async error handler', app => {
      app.setErrorHandler(async (error, _request, reply) => {
        await new Promise(resolve => setTimeout(resolve, 20))
        return reply.code(401).send({ error: (error as Error).message })
      })
    }],
    ['an async preSerialization hook', app => {
      app.addHook('preSerialization', async (_request, _reply, payload) => {
        await new Promise(resolve => setTimeout(resolve, 20))
        return payload
      })
    }],
    ['a status set now and the answer sent later', () => {}],
  ]
  for (const [what, setup] of setups) {
    const { url } = await build(t, app => {
      setup(app)
      app.addHook('onRequest', async (request, reply) => {
        if (request.headers.authorization === 'Bearer ok') return
        if (what.startsWith('a status')) {
          reply.code(401)
          setTimeout(() => { void reply.send({ error: 'no' }) }, 20)
        } else if (what.includes('error handler')) reply.send(new Error('bad token'))
        else reply.code(401).send({ error: 'no' })
      })
      app.ws('/private', { open (socket) { opens.push(`${what}: ${socket.request.url}`) } })
    })
    const refused = await refusedWs(url + '/private')
    t.equal(refused.status, 401, `${what}: the hook's 401`)
    const ws = await client(t, url + '/private', undefined, { headers: { authorization: 'Bearer ok' } })
    t.equal(ws.readyState, WebSocket.OPEN, `${what}: with credentials the upgrade goes through`)
  }
  t.same(opens, setups.map(([what]) => `${what}: /private`), 'open ran only for the authorized clients')
})

t.test("a reply.send wrapped by an earlier hook is kept on upgrades, and still marks them answered", async t => {
  const wrapped: string[] = []
  const { url } = await build(t, app => {
    app.addHook('onRequest', async (request, reply) => {
      const send = reply.send
      reply.send = function (this: typeof reply, payload?: unknown) {
        wrapped.push(request.url)
        return send.call(this, payload)
      }
    })
    app.addHook('onSend', async (_request, _reply, payload) => {
      await new Promise(resolve => setTimeout(resolve, 10))
      return payload
    })
    app.ws('/private', { onRequest: async (_request, reply) => { reply.code(401).send({ error: 'no' }) }, open () {} })
  })
  t.equal((await refusedWs(url + '/private')).status, 401)
  t.equal((await refusedWs(url + '/nowhere')).status, 404)
  t.same(wrapped, ['/private', '/nowhere'], 'the earlier wrapper ran for both answers')
})

t.test('a protocols function that throws: 500, the socket closed, and app.close() does not wait on it', async t => {
  const { app, port, logs } = await build(t, app => {
    app.ws('/p', { protocols: () => { throw new Error('selector bug') } })
  })
  const { client: raw, head } = await rawRequest(t, port, { path: '/p', headers: { 'sec-websocket-protocol': 'chat' } })
  t.equal(head.statusLine, 'HTTP/1.1 500 Internal Server Error')
  await raw.closed
  t.pass('the server closed the connection after the 500')
  t.ok(logs.lines.some(line => line.level === 50 && /subprotocol selection failed/.test(String(line.msg))), 'logged as an error')
  // A client that keeps its side open, then resets once it has the 500,
  // while the server's socket lingers.
  const resetting = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  t.teardown(() => resetting.destroy())
  resetting.on('error', () => {})
  await once(resetting, 'connect')
  resetting.write(upgradeRequest({ path: '/p', headers: { 'sec-websocket-protocol': 'chat' } }))
  const [answer] = await once(resetting, 'data') as [Buffer]
  t.match(answer.toString('latin1'), /^HTTP\/1\.1 500 /)
  await new Promise(resolve => setTimeout(resolve, 50))
  resetting.resetAndDestroy()
  await new Promise(resolve => setTimeout(resolve, 100))
  t.pass('the reset crashed nothing')
  await app.close()
  t.pass('app.close() completed')
})

t.test('a client that resets after the 503 of an expired handshake, while hooks still ran, crashes nothing', async t => {
  const hookDone = deferred()
  let opened = false
  const { port } = await build(t, app => {
    app.ws('/late', { handshakeTimeout: 100, onRequest: async () => { await new Promise(resolve => setTimeout(resolve, 300)); hookDone.resolve() }, open () { opened = true } })
  })
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  t.teardown(() => socket.destroy())
  socket.on('error', () => {})
  await once(socket, 'connect')
  socket.write(upgradeRequest({ path: '/late' }))
  const [answer] = await once(socket, 'data') as [Buffer]
  t.match(answer.toString('latin1'), /^HTTP\/1\.1 503 /)
  // The hook finishes (the upgrade is declined), then the client resets the lingering socket.
  await hookDone.promise
  // Fastify runs the route's handler (accept) in the hook's continuation: by the next turn it has declined the expired upgrade.
  await new Promise(resolve => setImmediate(resolve))
  t.equal(opened, false, 'no open after the 503')
  socket.resetAndDestroy()
  await new Promise(resolve => setTimeout(resolve, 100))
  t.pass('the reset crashed nothing')
})

t.test('an h2c request body is read as fast as the route reads it, not buffered whole', async t => {
  const gate = deferred()
  const buffered = deferred<number>()
  const { port } = await build(t, app => {
    app.get('/slow', {
      onRequest: async request => {
        // The client keeps sending meanwhile; the route has not read any of it.
        await new Promise(resolve => setTimeout(resolve, 300))
        buffered.resolve(request.raw.readableLength)
        await gate.promise
      },
    }, async () => 'done')
  })
  const socket = net.connect({ port, host: '127.0.0.1' })
  socket.on('error', () => {})
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  const size = 16 * 1024 * 1024
  socket.write(`GET /slow HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nContent-Length: ${size}\r\n\r\n`)
  const chunk = Buffer.alloc(1024 * 1024)
  for (let i = 0; i < 16; i++) socket.write(chunk)
  const held = await buffered.promise
  t.ok(held < 1024 * 1024, `the request held ${held} of the ${size} bytes sent: TCP pushed back`)
  gate.resolve()
})

t.test('onRequest, preParsing, preValidation and preHandler run before open, in order', async t => {
  const order: string[] = []
  const { url } = await build(t, app => {
    app.decorateRequest('user', '')
    app.ws('/hooked', {
      onRequest: async () => { order.push('onRequest') },
      preParsing: async () => { order.push('preParsing') },
      preValidation: async () => { order.push('preValidation') },
      preHandler: async (request) => {
        order.push('preHandler');
        (request as FastifyRequest & { user: string }).user = 'ada'
      },
      open (socket) {
        order.push(`open ${(socket.request as FastifyRequest & { user: string }).user}`)
        socket.send('hi')
      },
    })
  })
  const ws = await client(t, url + '/hooked')
  t.equal((await nextMessage(ws)).data.toString(), 'hi')
  t.same(order, ['onRequest', 'preParsing', 'preValidation', 'preHandler', 'open ada'])
})

t.test('preValidation and preHandler can refuse with their own status', async t => {
  const { url } = await build(t, app => {
    app.ws('/pv', { preValidation: async (_request, reply) => reply.code(403).send({ why: 'pv' }) })
    app.ws('/ph', { preHandler: async (_request, reply) => reply.code(429).header('retry-after', '1').send({ why: 'ph' }) })
    app.ws('/throws', { preHandler: async () => { throw Object.assign(new Error('teapot'), { statusCode: 418 }) } })
  })
  const pv = await refusedWs(url + '/pv')
  t.equal(pv.status, 403)
  t.same(JSON.parse(pv.body), { why: 'pv' })
  const ph = await refusedWs(url + '/ph')
  t.equal(ph.status, 429)
  t.equal(ph.headers['retry-after'], '1')
  const thrown = await refusedWs(url + '/throws')
  t.equal(thrown.status, 418, 'a hook that throws goes through Fastify\'s error handler')
  t.match(JSON.parse(thrown.body), { message: 'teapot' })
})

t.test('the app\'s setErrorHandler answers a failing hook', async t => {
  const { url } = await build(t, app => {
    app.setErrorHandler((_error, _request, reply) => reply.code(451).send('custom'))
    app.ws('/x', { onRequest: async () => { throw new Error('nope') } })
  })
  const refused = await refusedWs(url + '/x')
  t.equal(refused.status, 451)
  t.equal(refused.body, 'custom')
})

// ------------------------------------------------------------------ schemas, params, prefixes

t.test('params, querystring and headers schemas: a mismatch is a 400 before the upgrade', async t => {
  const opens: unknown[] = []
  const { url } = await build(t, app => {
    app.ws<{ Params: { id: number }, Querystring: { n: number } }>('/items/:id', {
      schema: {
        params: { type: 'object', properties: { id: { type: 'integer' } }, required: ['id'] },
        querystring: { type: 'object', properties: { n: { type: 'integer', minimum: 1 } }, required: ['n'] },
        headers: { type: 'object', properties: { 'x-client': { type: 'string', enum: ['good'] } }, required: ['x-client'] },
      },
      open (socket) {
        opens.push([socket.request.params.id, socket.request.query.n])
        socket.send(JSON.stringify({ id: socket.request.params.id, n: socket.request.query.n }))
      },
    })
  })
  const good = { headers: { 'x-client': 'good' } }
  for (const [path, options, what] of [
    ['/items/abc?n=1', good, 'params'],
    ['/items/1?n=0', good, 'querystring'],
    ['/items/1', good, 'missing querystring'],
    ['/items/1?n=1', { headers: { 'x-client': 'bad' } }, 'headers'],
    ['/items/1?n=1', {}, 'missing header'],
  ] as const) {
    const refused = await refusedWs(url + path, options)
    t.equal(refused.status, 400, `${what}: 400`)
    t.equal(JSON.parse(refused.body).code, 'FST_ERR_VALIDATION', `${what}: Fastify's validation error`)
  }
  t.same(opens, [], 'no socket was opened')

  const ws = await client(t, url + '/items/7?n=3', undefined, good)
  t.same(JSON.parse((await nextMessage(ws)).data.toString()), { id: 7, n: 3 }, 'coerced params and query reach the socket')
})

t.test('route params, wildcards and prefixes', async t => {
  const { url } = await build(t, async app => {
    app.ws<{ Params: { room: string, user: string } }>('/rooms/:room/users/:user', {
      open (socket) { socket.send(`${socket.request.params.room}/${socket.request.params.user}`) },
    })
    await app.register(async child => {
      child.ws('/x', { open (socket) { socket.send(`prefixed ${socket.request.url}`) } })
      await child.register(async grandchild => {
        grandchild.ws('/deep', { open (socket) { socket.send('deep') } })
      }, { prefix: '/v2' })
    }, { prefix: '/api' })
    app.ws('/files/*', { open (socket) { socket.send(`file ${(socket.request.params as Record<string, string>)['*']}`) } })
  })
  const rooms = await client(t, url + '/rooms/lobby/users/ada')
  t.equal((await nextMessage(rooms)).data.toString(), 'lobby/ada')
  const prefixed = await client(t, url + '/api/x?a=1')
  t.equal((await nextMessage(prefixed)).data.toString(), 'prefixed /api/x?a=1')
  const deep = await client(t, url + '/api/v2/deep')
  t.equal((await nextMessage(deep)).data.toString(), 'deep')
  const file = await client(t, url + '/files/a/b.txt')
  t.equal((await nextMessage(file)).data.toString(), 'file a/b.txt')
  t.equal((await refusedWs(url + '/x')).status, 404, 'the unprefixed path is not a route')
})

t.test('route constraints: version and host', async t => {
  const { url } = await build(t, app => {
    app.ws('/v', { constraints: { version: '1.0.0' }, open (socket) { socket.send('v1') } })
    app.ws('/v', { constraints: { version: '2.0.0' }, open (socket) { socket.send('v2') } })
    app.ws('/h', { constraints: { host: 'chat.example' }, open (socket) { socket.send('chat host') } })
  })
  const v1 = await client(t, url + '/v', undefined, { headers: { 'accept-version': '1.x' } })
  t.equal((await nextMessage(v1)).data.toString(), 'v1')
  const v2 = await client(t, url + '/v', undefined, { headers: { 'accept-version': '2.x' } })
  t.equal((await nextMessage(v2)).data.toString(), 'v2')
  t.equal((await refusedWs(url + '/v', { headers: { 'accept-version': '3.x' } })).status, 404, 'no matching version: 404')
  const host = await client(t, url + '/h', undefined, { headers: { host: 'chat.example' } })
  t.equal((await nextMessage(host)).data.toString(), 'chat host')
  t.equal((await refusedWs(url + '/h')).status, 404, 'another host: 404')
})

// ------------------------------------------------------------------ routing of upgrades and plain requests

t.test('an upgrade to an unknown path is a 404, never 101-then-close', async t => {
  const { url, port } = await build(t, app => {
    app.ws('/known', {})
  })
  const refused = await refusedWs(url + '/unknown')
  t.equal(refused.status, 404)
  t.match(JSON.parse(refused.body), { statusCode: 404 })
  const { client, head } = await rawRequest(t, port, { path: '/unknown' })
  t.equal(head.statusLine, 'HTTP/1.1 404 Not Found')
  await client.closed
  t.notOk(client.raw.includes('101 Switching'), 'no 101 at all')
})

t.test('an upgrade to an HTTP-only route is a 404, and the custom not-found handler answers it', async t => {
  const handled: string[] = []
  const { url, app } = await build(t, app => {
    app.get('/http', async (request) => {
      handled.push(request.url)
      return { http: true }
    })
    app.setNotFoundHandler((_request, reply) => reply.code(404).send('custom not found'))
  })
  const refused = await refusedWs(url + '/http')
  t.equal(refused.status, 404)
  t.equal(refused.body, 'custom not found')
  t.same(handled, [], 'the HTTP handler never ran for the upgrade')
  const plain = await app.inject('/http')
  t.same(plain.json(), { http: true }, 'plain GET still works')
})

t.test("an upgrade to an HTTP-only route runs none of that route's hooks or schemas before the 404", async t => {
  const calls: string[] = []
  const { url, app } = await build(t, app => {
    app.addHook('preHandler', async () => { calls.push('app preHandler') })
    app.get('/items', {
      schema: { querystring: { type: 'object', properties: { page: { type: 'integer' } }, required: ['page'] } },
      onRequest: async () => { calls.push('route onRequest') },
      preHandler: async () => { calls.push('route preHandler') },
    }, async () => ({ items: [] }))
    app.get('/admin', { onRequest: async (_request, reply) => reply.code(401).send({ error: 'no' }) }, async () => 'secret')
  })
  for (const path of ['/items', '/items?page=1', '/admin']) {
    calls.length = 0
    t.equal((await refusedWs(url + path)).status, 404, `${path}: the app's 404`)
    t.same(calls, ['app preHandler'], `${path}: only the not-found handler's hooks ran`)
  }
  calls.length = 0
  t.same((await app.inject('/items?page=1')).json(), { items: [] }, 'plain requests still run the whole route')
  t.same(calls, ['route onRequest', 'app preHandler', 'route preHandler'])
  t.equal((await app.inject('/items')).statusCode, 400)
  t.equal((await app.inject('/admin')).statusCode, 401)
})

t.test('an upgrade to another protocol (h2c) is plain HTTP: the route answers, ws routes say 426', async t => {
  const { port } = await build(t, app => {
    app.get('/http', async () => ({ http: true }))
    app.ws('/socket', { message () {} })
  })
  const http = await rawRequest(t, port, { path: '/http', headers: { Upgrade: 'h2c', Connection: 'Upgrade, HTTP2-Settings' } })
  t.equal(http.head.status, 200, 'the HTTP handler answers, as without the plugin')
  await http.client.body()
  t.match(http.client.raw, /"http":true/)
  const ws = await rawRequest(t, port, { path: '/socket', headers: { Upgrade: 'h2c' } })
  t.equal(ws.head.status, 426, 'a ws-only route asks for a WebSocket upgrade')
  t.equal(ws.head.headers.upgrade, 'websocket')
  t.equal(ws.head.headers.connection, 'upgrade', 'RFC 9110 §7.8: Upgrade comes with the upgrade connection option')
})

t.test('an h2c upgrade with a body is plain HTTP with its body, however it arrives', async t => {
  const { port } = await build(t, app => {
    app.post('/echo', async request => ({ got: request.body }))
  })
  const raw = await RawClient.connect(port)
  t.teardown(() => raw.destroy())
  const body = JSON.stringify({ a: 1, text: 'x'.repeat(100) })
  raw.socket.write(`POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 10)}`)
  await new Promise(resolve => setTimeout(resolve, 30))
  raw.socket.write(body.slice(10))
  const head = await raw.head()
  t.equal(head.status, 200, 'as Node serves it without an upgrade listener')
  await raw.closed
  const text = raw.raw.toString()
  t.same(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)), { got: { a: 1, text: 'x'.repeat(100) } }, 'the body, from the bytes after the head and from the socket')
  const chunked = await RawClient.connect(port)
  t.teardown(() => chunked.destroy())
  chunked.socket.write('POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n')
  t.equal((await chunked.head()).status, 411, 'a chunked body cannot be delimited there: Length Required')
})

t.test('a plain GET on a ws-only route is 426 with Upgrade: websocket', async t => {
  const { app, port } = await build(t, app => { app.ws('/only', {}) })
  const injected = await app.inject('/only')
  t.equal(injected.statusCode, 426)
  t.equal(injected.headers.upgrade, 'websocket')
  t.equal(injected.headers.connection, 'upgrade', 'RFC 9110 §7.8: Upgrade comes with the upgrade connection option')
  const response = await fetch(`http://127.0.0.1:${port}/only`)
  t.equal(response.status, 426, 'over the network too')
  t.equal(response.headers.get('upgrade'), 'websocket')
  await response.arrayBuffer()
})

t.test('a route with both handler and ws serves both', async t => {
  const { url, app } = await build(t, app => {
    app.route({
      method: 'GET',
      url: '/both',
      handler: async () => ({ kind: 'http' }),
      ws: { open (socket) { socket.send('ws') } },
    })
    app.ws('/both-shorthand', {
      handler: async () => 'http too',
      open (socket) { socket.send('ws too') },
    })
  })
  t.same((await app.inject('/both')).json(), { kind: 'http' })
  t.equal((await app.inject('/both-shorthand')).body, 'http too')
  const ws = await client(t, url + '/both')
  t.equal((await nextMessage(ws)).data.toString(), 'ws')
  const ws2 = await client(t, url + '/both-shorthand')
  t.equal((await nextMessage(ws2)).data.toString(), 'ws too')
})

t.test('a ws option on a route without GET is refused at registration', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wsroutes)
  t.throws(() => app.route({ method: 'POST', url: '/p', handler: async () => 'x', ws: {} }), /must use GET/)
})

t.test('bad handshakes get the right HTTP status', async t => {
  const { port } = await build(t, app => { app.ws('/ws', {}) })
  const cases = [
    { name: 'missing key', options: { path: '/ws', headers: { 'Sec-WebSocket-Key': null } }, status: 400 },
    { name: 'version 8', options: { path: '/ws', headers: { 'Sec-WebSocket-Version': '8' } }, status: 426, header: ['sec-websocket-version', '13'] },
    { name: 'POST upgrade', options: { path: '/ws', method: 'POST', headers: { 'Content-Length': '0' } }, status: 405, header: ['allow', 'GET'] },
    { name: 'missing Host', options: { path: '/ws', headers: { Host: null } }, status: 400 },
  ] as const
  for (const c of cases) {
    const { client, head } = await rawRequest(t, port, c.options)
    t.equal(head.status, c.status, `${c.name}: ${c.status}`)
    if ('header' in c) t.equal(head.headers[c.header[0]], c.header[1], `${c.name}: ${c.header[0]}: ${c.header[1]}`)
    await client.closed
    t.notOk(client.raw.includes('101 Switching'), `${c.name}: no 101`)
  }
})

// ------------------------------------------------------------------ handler failures

for (const phase of ['open', 'message', 'close'] as const) {
  for (const mode of ['throws', 'rejects'] as const) {
    t.test(`${phase === 'open' ? 'an' : 'a'} ${phase} handler that ${mode}: 1011, logged through request.log, others served`, async t => {
      const errors: Array<{ who: string, code: string, request: boolean }> = []
      const fail = (): undefined | Promise<void> => {
        const error = new Error(`${phase} ${mode}`)
        if (mode === 'throws') throw error
        return Promise.reject(error)
      }
      const { url, logs } = await build(t, app => {
        app.ws('/fragile', {
          open (socket) {
            if (phase === 'open' && socket.request.query !== null && (socket.request.query as Record<string, string>).bad !== undefined) return fail()
          },
          message (socket, data) {
            if (phase === 'message' && data === 'bad') return fail()
            socket.send(data)
          },
          close (socket) {
            if (phase === 'close' && (socket.request.query as Record<string, string>).bad !== undefined) return fail()
          },
          error (socket, error) { errors.push({ who: 'route', code: (error as Error & { code: string }).code, request: socket.request !== undefined }) },
        })
      }, {
        errorHandler (error, socket, request) { errors.push({ who: 'plugin', code: (error as Error & { code: string }).code, request: socket.request === request }) },
      })
      const healthy = await client(t, url + '/fragile')
      const bad = await openWs(url + '/fragile?bad=1')
      t.teardown(() => closeWs(bad))
      const badClosed = wsClosed(bad)
      if (phase === 'message') bad.send('bad')
      if (phase === 'close') bad.close(4000)
      t.equal((await badClosed).code, phase === 'close' ? 4000 : 1011, phase === 'close' ? 'the close completes normally' : 'the client sees 1011')

      const line = await logs.waitFor(line => line.msg === `websocket ${phase} handler failed`)
      t.equal(line.level, 50, 'logged at error level')
      t.equal(line.err?.message, `${phase} ${mode}`, 'with the error')
      t.type(line.reqId, 'string', 'through request.log (the line carries the request id)')
      t.same(errors, [
        { who: 'route', code: 'WS_ERR_HANDLER_FAILED', request: true },
        { who: 'plugin', code: 'WS_ERR_HANDLER_FAILED', request: true },
      ], 'the route error handler, then the plugin\'s, with WS_ERR_HANDLER_FAILED')

      healthy.send('still served')
      t.equal((await nextMessage(healthy)).data.toString(), 'still served', 'the other client is unaffected')
      const fresh = await client(t, url + '/fragile')
      fresh.send('new client')
      t.equal((await nextMessage(fresh)).data.toString(), 'new client', 'and new clients are served')
    })
  }
}

t.test('protocol errors reach the error handlers with their codes', async t => {
  const seen: Array<[string, string]> = []
  const { port, url, logs } = await build(t, app => {
    app.ws('/strict', {
      maxPayload: 16,
      error (_socket, error) { seen.push(['route', (error as Error & { code: string }).code]) },
    })
  }, { errorHandler (error) { seen.push(['plugin', (error as Error & { code: string }).code]) } })

  const raw = await RawClient.open(port, { path: '/strict' })
  t.teardown(() => raw.destroy())
  raw.send(0x1, Buffer.from([0xc3, 0x28]))
  t.same(await raw.nextClose(), { code: 1007, reason: '' })
  const ws = await client(t, url + '/strict')
  const closed = wsClosed(ws)
  ws.send('x'.repeat(17))
  t.equal((await closed).code, 1009)
  await logs.waitFor(line => line.msg === 'websocket closed: WS_ERR_MAX_PAYLOAD')
  t.same(seen, [
    ['route', 'WS_ERR_INVALID_UTF8'], ['plugin', 'WS_ERR_INVALID_UTF8'],
    ['route', 'WS_ERR_MAX_PAYLOAD'], ['plugin', 'WS_ERR_MAX_PAYLOAD'],
  ])
  const line = await logs.waitFor(line => line.msg === 'websocket closed: WS_ERR_INVALID_UTF8')
  t.equal(line.level, 20, 'a peer\'s protocol error is logged at debug')
  t.type(line.reqId, 'string')
})

t.test('socket.request and request.log in handlers', async t => {
  const { url, logs } = await build(t, app => {
    app.ws('/who', {
      open (socket, request) {
        t.equal(socket.request, request, 'open gets the request as its second argument too')
        request.log.info({ who: request.headers['x-name'] }, 'hello from open')
      },
      message (socket, data) {
        socket.request.log.info({ got: data }, 'message logged')
        socket.send(`${String(socket.request.headers['x-name'])}: ${String(data)}`)
      },
    })
  })
  const ws = await client(t, url + '/who', undefined, { headers: { 'x-name': 'ada' } })
  ws.send('hi')
  t.equal((await nextMessage(ws)).data.toString(), 'ada: hi')
  const open = await logs.waitFor(line => line.msg === 'hello from open')
  const message = await logs.waitFor(line => line.msg === 'message logged')
  t.equal(open.who, 'ada')
  t.equal(message.got, 'hi')
  t.equal(open.reqId, message.reqId, 'both lines carry the upgrade request\'s id')
  const incoming = await logs.waitFor(line => line.msg === 'incoming request' && line.reqId === open.reqId)
  t.match(incoming, { req: { url: '/who' } }, 'the same id as Fastify\'s own request log')
})

// ------------------------------------------------------------------ async open, socket API

t.test('an async open: messages sent at once arrive after it, in order', async t => {
  const events: string[] = []
  const { url } = await build(t, app => {
    app.ws('/slow', {
      async open (socket) {
        events.push('open start')
        await new Promise(resolve => setTimeout(resolve, 50))
        events.push('open end')
        socket.send('ready')
      },
      message (socket, data) {
        events.push(String(data))
        if (data === 'm9') socket.send('got all')
      },
    })
  })
  const ws = new WebSocket(url + '/slow')
  t.teardown(() => closeWs(ws))
  const messages: string[] = []
  const done = new Promise<void>(resolve => ws.on('message', data => {
    messages.push(String(data))
    if (messages.length === 2) resolve()
  }))
  ws.on('open', () => { for (let i = 0; i < 10; i++) ws.send(`m${i}`) })
  await done
  t.same(messages, ['ready', 'got all'])
  t.same(events, ['open start', 'open end', ...Array.from({ length: 10 }, (_, i) => `m${i}`)])
})

t.test('readyState, bufferedAmount and terminate', async t => {
  const states: unknown[] = []
  const closedState = deferred<number>()
  const { url } = await build(t, app => {
    app.ws('/state', {
      open (socket) {
        states.push(['open', socket.readyState, typeof socket.bufferedAmount])
      },
      message (socket, data) {
        if (data === 'big') {
          const size = 2 * 1024 * 1024
          socket.send(Buffer.alloc(size))
          // Written this tick and corked, so still counted.
          states.push(['after send', socket.bufferedAmount >= size])
        } else if (data === 'close') {
          socket.close(1000, 'asked')
          states.push(['after close', socket.readyState])
        } else if (data === 'terminate') {
          socket.terminate()
        }
      },
      close (socket) { closedState.resolve(socket.readyState) },
    })
  })
  const ws = await client(t, url + '/state')
  ws.send('big')
  t.equal((await nextMessage(ws)).data.length, 2 * 1024 * 1024)
  const closed = wsClosed(ws)
  ws.send('close')
  t.same(await closed, { code: 1000, reason: 'asked' })
  t.equal(await closedState.promise, ReadyState.CLOSED, 'CLOSED in the close handler')
  t.same(states, [['open', ReadyState.OPEN, 'number'], ['after send', true], ['after close', ReadyState.CLOSING]])

  const other = await client(t, url + '/state')
  const otherClosed = wsClosed(other)
  other.send('terminate')
  t.equal((await otherClosed).code, 1006, 'terminate: the client sees 1006')
})

t.test('socket.close() checks its arguments at run time', async t => {
  const results = deferred<unknown[]>()
  const { url } = await build(t, app => {
    app.ws('/checks', {
      open (socket) {
        const out: unknown[] = []
        const attempt = (fn: () => void): unknown => {
          try {
            fn()
            return 'no error'
          } catch (error) {
            return { name: (error as Error).name, code: (error as { code?: string }).code }
          }
        }
        for (const code of [999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 1000.5, 1004.5, -1, Number.NaN]) {
          out.push([code, attempt(() => socket.close(code as 1000))])
        }
        out.push(['124 bytes', attempt(() => socket.close(1000, 'x'.repeat(124)))])
        out.push(['124 bytes of é', attempt(() => socket.close(1000, 'é'.repeat(62)))])
        out.push(['reason without code', attempt(() => socket.close(undefined, 'why'))])
        out.push(['state', socket.readyState])
        socket.send('still open')
        // 41 three-byte characters: 123 bytes, the most a reason may hold.
        out.push(['123 bytes', attempt(() => socket.close(4999, '€'.repeat(41)))])
        results.resolve(out)
      },
    })
  })
  const ws = await client(t, url + '/checks')
  const closed = wsClosed(ws)
  const typeError = { name: 'TypeError', code: 'WS_ERR_INVALID_CLOSE_CODE' }
  const rangeError = { name: 'RangeError', code: 'WS_ERR_CLOSE_REASON_TOO_LONG' }
  t.same(await results.promise, [
    [999, typeError], [1004, typeError], [1005, typeError], [1006, typeError], [1015, typeError], [1016, typeError],
    [2000, typeError], [2999, typeError], [5000, typeError], [1000.5, typeError], [1004.5, typeError], [-1, typeError], [Number.NaN, typeError],
    ['124 bytes', rangeError],
    ['124 bytes of é', rangeError],
    ['reason without code', typeError],
    ['state', ReadyState.OPEN],
    ['123 bytes', 'no error'],
  ])
  t.equal((await nextMessage(ws)).data.toString(), 'still open', 'failed close() calls left the socket open')
  t.same(await closed, { code: 4999, reason: '€'.repeat(41) })
})

// ------------------------------------------------------------------ resets

t.test('a client reset during an async onRequest hook does not crash the process', async t => {
  for (const how of ['destroy', 'resetAndDestroy'] as const) {
    for (const then of ['continue', 'reply 401'] as const) {
      const entered = deferred<void>()
      const gate = deferred<void>()
      const opens: string[] = []
      const { port, url, logs } = await build(t, app => {
        app.addHook('onRequest', async (request, reply) => {
          if (request.headers['x-gate'] === undefined) return
          entered.resolve()
          await gate.promise
          if (then === 'reply 401') return reply.code(401).send()
        })
        app.ws('/gated', { open (socket) { opens.push(socket.request.url) } })
        app.ws('/echo', { message (socket, data) { socket.send(data) } })
      })
      const raw = await RawClient.connect(port)
      t.teardown(() => raw.destroy())
      raw.write(upgradeRequest({ path: '/gated', headers: { 'x-gate': '1' } }))
      await entered.promise
      raw.socket[how]()
      await raw.closed
      gate.resolve()
      // The server keeps serving.
      const ws = await client(t, url + '/echo')
      ws.send(`after ${how} then ${then}`)
      t.equal((await nextMessage(ws)).data.toString(), `after ${how} then ${then}`, `${how}, then ${then}: still serving`)
      t.same(logs.lines.filter(line => line.level >= 50), [], `${how}, then ${then}: nothing logged as an error`)
    }
  }
})

t.test('a client reset after the upgrade does not crash the process', async t => {
  const closes: number[] = []
  const allClosed = deferred<void>()
  const { port, url, logs } = await build(t, app => {
    app.ws('/r', {
      message (socket, data) { socket.send(data) },
      close (_socket, code) {
        closes.push(code)
        if (closes.length === 2) allClosed.resolve()
      },
    })
  })
  for (const how of ['destroy', 'resetAndDestroy'] as const) {
    const raw = await RawClient.open(port, { path: '/r' })
    t.teardown(() => raw.destroy())
    raw.send(0x1, 'x'.repeat(100_000))
    raw.socket[how]()
    await raw.closed
  }
  await allClosed.promise
  t.same(closes, [1006, 1006], 'both are reported as 1006')
  const ws = await client(t, url + '/r')
  ws.send('alive')
  t.equal((await nextMessage(ws)).data.toString(), 'alive')
  t.same(logs.lines.filter(line => line.level >= 50), [], 'a peer\'s reset is not logged as an error')
})

// ------------------------------------------------------------------ shutdown

t.test('app.close() closes every socket with 1001 and the reason', async t => {
  const closes: number[] = []
  const { app, url } = await build(t, app => {
    app.ws('/a', { close (_socket, code) { closes.push(code) } })
  }, { shutdownReason: 'maintenance window' })
  const clients = await Promise.all([1, 2, 3].map(() => openWs(url + '/a')))
  const closed = clients.map(ws => wsClosed(ws))
  await app.close()
  for (const event of await Promise.all(closed)) t.same(event, { code: 1001, reason: 'maintenance window' })
  t.same(closes, [1001, 1001, 1001], 'every close handler ran before close() resolved')
})

t.test('app.close(): the default reason, and a client that never answers is dropped', async t => {
  const { app, port, url } = await build(t, app => { app.ws('/a', {}) }, { closeTimeout: 100 })
  const ws = await openWs(url + '/a')
  const closed = wsClosed(ws)
  const silent = await RawClient.open(port, { path: '/a' })
  t.teardown(() => silent.destroy())
  await app.close()
  t.same(await closed, { code: 1001, reason: 'server shutting down' })
  t.same(await silent.nextClose(), { code: 1001, reason: 'server shutting down' })
  await silent.closed
  t.pass('the silent client was disconnected')
})

t.test('an upgrade attempted during shutdown is refused', async t => {
  const { app, port } = await build(t, app => { app.ws('/a', {}) })
  // This client reads the 1001 but answers only when told, holding the shutdown open.
  const holder = await RawClient.open(port, { path: '/a' })
  t.teardown(() => holder.destroy())
  const closing = app.close()
  t.same(await holder.nextClose(), { code: 1001, reason: 'server shutting down' })
  const { client, head } = await RawClient.request(port, { path: '/a' })
  t.teardown(() => client.destroy())
  t.equal(head.status, 503, 'refused with 503')
  await client.closed
  t.notOk(client.raw.includes('101'), 'no 101')
  holder.send(0x8, Buffer.from([0x03, 0xe9]))
  await closing
  t.pass('close() resolved once the last client answered')
})

t.test('an upgrade whose hooks were still running when shutdown began is refused, and close() does not hang', async t => {
  const entered = deferred<void>()
  const gate = deferred<void>()
  const opens: string[] = []
  const { app, port } = await build(t, app => {
    app.ws('/a', {
      onRequest: async () => {
        entered.resolve()
        await gate.promise
      },
      open (socket) { opens.push(socket.request.url) },
    })
  })
  const raw = await RawClient.connect(port)
  t.teardown(() => raw.destroy())
  raw.write(upgradeRequest({ path: '/a' }))
  await entered.promise
  const closing = app.close()
  // The plugin's preClose hook runs after this tick; let it start.
  await new Promise(resolve => setTimeout(resolve, 20))
  gate.resolve()
  const head = await raw.head()
  t.equal(head.status, 503, 'refused with 503, not accepted after the goodbyes')
  await raw.closed
  t.notOk(raw.raw.includes('101'), 'no 101')
  await closing
  t.same(opens, [], 'open never ran')
})

t.test('the plugin once per server; a shutdownReason too long for a close frame is refused at registration', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  // Two sibling contexts, each with its own registration: both would listen for the server's upgrades.
  app.register(async child => { child.register(wsroutes) })
  app.register(async child => { child.register(wsroutes) })
  await t.rejects(async () => { await app.ready() }, /already has a wsroutes adapter/, 'the app fails to start, not the process')
  const other = Fastify()
  t.teardown(() => other.close())
  await t.rejects(async () => { await other.register(wsroutes, { shutdownReason: 'é'.repeat(62) }) }, { name: 'RangeError', code: 'WS_ERR_CLOSE_REASON_TOO_LONG' })
})

t.test('limits and invalidMessage that are wrong fail at registration or at the route, not on a connection', async t => {
  for (const options of [{ maxPayload: 0 }, { backpressurePolicy: 'nope' }, { idleTimeout: -1 }, { handshakeTimeout: 'abc' }, { invalidMessage: 'explode' }]) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(wsroutes, options as never) }, { name: 'TypeError', message: new RegExp(`wsroutes: ${Object.keys(options)[0]} must be`) }, JSON.stringify(options))
  }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wsroutes)
  t.throws(() => app.ws('/a', { maxFragments: 0, open () {} }), { name: 'TypeError', message: /maxFragments must be/ })
  t.throws(() => app.ws('/b', { closeTimeout: Infinity, open () {} }), { name: 'TypeError', message: /closeTimeout must be/ })
  t.throws(() => app.get('/c', { ws: { binaryMessages: 'lend' as 'own' } }, async () => 'http'), { name: 'TypeError', message: /binaryMessages must be/ })
})

t.test('two apps with the plugin keep their sockets apart', async t => {
  const one = await build(t, app => { app.ws('/', { open (socket) { socket.send('one') } }) })
  const two = await build(t, app => { app.ws('/', { open (socket) { socket.send('two') } }) })
  const a = await client(t, one.url)
  const b = await openWs(two.url)
  const bClosed = wsClosed(b)
  t.equal((await nextMessage(a)).data.toString(), 'one')
  t.equal((await nextMessage(b)).data.toString(), 'two')
  await two.app.close()
  t.equal((await bClosed).code, 1001)
  a.send('x')
  t.equal(a.readyState, WebSocket.OPEN, 'closing one app leaves the other\'s sockets open')
})

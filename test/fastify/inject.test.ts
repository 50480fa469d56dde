/**
 * `app.injectWS()`: WebSocket routes tested in-process, nothing listening.
 * The upgrade takes the plugin's own path, so hooks, schemas and routing
 * answer as for a real client (401, 404, 400), and the client end speaks
 * RFC 6455 (masked frames out, the server's frames checked on the way in).
 */
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { wsroutes, UpgradeRefusedError, type WsPluginOptions } from '../../lib/index.js'

interface Teardown { teardown: (fn: () => unknown) => void }

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>

/** An app with the plugin and `routes`; never listens; closed at teardown. */
async function build (t: Teardown, routes: (app: App) => void, options: WsPluginOptions = {}): Promise<App> {
  const app = Fastify().withTypeProvider<TypeBoxTypeProvider>()
  await app.register(wsroutes, options)
  routes(app)
  t.teardown(() => app.close())
  return app
}

function echo (app: App): void {
  app.ws('/echo', {
    message (socket, data, isBinary) { socket.send(data, { binary: isBinary }) },
  })
}

t.test('echo text and binary, with nothing listening', async t => {
  const app = await build(t, echo)
  const ws = await app.injectWS('/echo')
  t.equal(ws.readyState, 1)
  ws.send('hello')
  t.equal(await ws.expectMessage(), 'hello')
  ws.send(Buffer.from([1, 2, 3]))
  t.same(await ws.expectMessage(), Buffer.from([1, 2, 3]))
  ws.send(Buffer.alloc(200_000, 7))
  t.same(await ws.expectMessage(), Buffer.alloc(200_000, 7), 'a message larger than the pipe\'s buffers')
  t.equal(app.server.listening, false, 'the server never listened')
  t.equal(app.server.address(), null)
})

t.test('a key or subprotocols given in headers are the ones the 101 is checked against', async t => {
  const app = await build(t, app => {
    app.ws('/chat', { protocols: ['chat'], message (socket, data) { socket.send(data) } })
  })
  const keyed = await app.injectWS('/chat', { headers: { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' } })
  keyed.send('with my key')
  t.equal(await keyed.expectMessage(), 'with my key', 'a custom key: the upgrade completes')
  keyed.close(1000)
  const offered = await app.injectWS('/chat', { headers: { 'sec-websocket-protocol': 'chat' } })
  t.equal(offered.protocol, 'chat', 'a subprotocol offered through headers')
  offered.close(1000)
  const removed = await app.injectWS('/chat', { protocols: ['chat'], headers: { 'sec-websocket-protocol': undefined } })
  t.equal(removed.protocol, '', 'the offer removed: none chosen')
  removed.close(1000)
})

t.test('injectWS waits for ready: routes declared after register are found', async t => {
  const app = Fastify()
  await app.register(wsroutes)
  app.ws('/late', { open (socket) { socket.send('found') } })
  t.teardown(() => app.close())
  const ws = await app.injectWS('/late')
  t.equal(await ws.expectMessage(), 'found')
})

t.test('a JSON route with schemas: typed both ways, invalid messages refused per policy', async t => {
  const Inbound = Type.Object({ type: Type.Literal('say'), text: Type.String({ maxLength: 10 }) })
  const Outbound = Type.Object({ type: Type.Literal('said'), text: Type.String(), length: Type.Integer() })
  const app = await build(t, app => {
    app.ws('/json', {
      schema: { message: Inbound, send: Outbound },
      message (socket, msg) { socket.send({ type: 'said', text: msg.text, length: msg.text.length }) },
    })
    app.ws('/json-reply', {
      schema: { message: Inbound },
      invalidMessage: 'reply',
      message (socket, msg) { socket.sendRaw(msg.text) },
    })
  })
  const ws = await app.injectWS<{ type: 'say', text: string }, { type: 'said', text: string, length: number }>('/json')
  ws.send({ type: 'say', text: 'hi' })
  const said = await ws.expectJson()
  t.same(said, { type: 'said', text: 'hi', length: 2 })
  ws.send({ type: 'say', text: 'far too long here' })
  t.same(await ws.expectClose(1008), { code: 1008, reason: 'message does not match the schema' })

  const binary = await app.injectWS('/json')
  binary.send(Buffer.from('{}'))
  await binary.expectClose(1003)

  const badJson = await app.injectWS('/json')
  badJson.send('{ not json')
  await badJson.expectClose(1007)

  const reply = await app.injectWS('/json-reply')
  reply.send('{"type":"say","text":"far too long here"}')
  t.same(await reply.expectJson(), { type: 'error', error: { code: 'WS_ERR_INVALID_MESSAGE', message: 'message does not match the schema' } })
  reply.send({ type: 'say', text: 'still open' })
  t.equal(await reply.expectMessage(), 'still open')
})

t.test('an onRequest hook answering 401: injectWS rejects with the status, headers and body; no upgrade', async t => {
  const opens: string[] = []
  const app = await build(t, app => {
    app.addHook('onRequest', async (request, reply) => {
      if (request.headers.authorization !== 'Bearer ok') return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'no' })
    })
    app.ws('/private', { open (socket) { opens.push(socket.request.url) } })
  })
  const error = await app.injectWS('/private').catch((e: unknown) => e)
  t.ok(error instanceof UpgradeRefusedError)
  t.match(error, { statusCode: 401, headers: { 'www-authenticate': 'Bearer', connection: 'close' } })
  t.same(JSON.parse((error as UpgradeRefusedError).body), { error: 'no' })
  t.same(opens, [], 'open never ran')

  const ws = await app.injectWS('/private', { headers: { authorization: 'Bearer ok' } })
  t.equal(ws.readyState, 1, 'with credentials the upgrade goes through')
  t.same(opens, ['/private'])
})

t.test('an unknown path gets the app\'s 404; a plain GET route gets 404 too; a bad handshake 400', async t => {
  const app = await build(t, app => {
    echo(app)
    app.get('/http', async () => ({ plain: true }))
  })
  await t.rejects(app.injectWS('/nowhere'), { name: 'UpgradeRefusedError', statusCode: 404, body: /Route GET:\/nowhere not found/ })
  await t.rejects(app.injectWS('/http'), { name: 'UpgradeRefusedError', statusCode: 404 })
  await t.rejects(app.injectWS('/echo', { headers: { 'sec-websocket-key': 'short' } }), { name: 'UpgradeRefusedError', statusCode: 400, body: 'Sec-WebSocket-Key must be the base64 of 16 bytes' })
  await t.rejects(app.injectWS('/echo', { headers: { 'sec-websocket-version': '8' } }), { name: 'UpgradeRefusedError', statusCode: 426, headers: { 'sec-websocket-version': '13' } })
})

t.test('route params and the query string, through their schemas', async t => {
  const app = await build(t, app => {
    app.ws('/rooms/:room', {
      schema: {
        params: Type.Object({ room: Type.String({ pattern: '^[a-z]+$' }) }),
        querystring: Type.Object({ limit: Type.Integer({ maximum: 50 }), tag: Type.Optional(Type.Array(Type.String())) }),
      },
      open (socket, request) {
        socket.send(JSON.stringify({ room: request.params.room, limit: request.query.limit, tag: request.query.tag, ip: request.ip }))
      },
    })
  })
  const ws = await app.injectWS('/rooms/lobby', { query: { limit: 20, tag: ['a', 'b'] } })
  t.same(await ws.expectJson(), { room: 'lobby', limit: 20, tag: ['a', 'b'], ip: '127.0.0.1' }, 'limit coerced to a number by the schema')
  const inline = await app.injectWS('/rooms/hall?limit=3')
  t.same(await inline.expectJson(), { room: 'hall', limit: 3, ip: '127.0.0.1' })
  await t.rejects(app.injectWS('/rooms/lobby', { query: { limit: 99 } }), { name: 'UpgradeRefusedError', statusCode: 400, body: /querystring\/limit must be <= 50/ })
  await t.rejects(app.injectWS('/rooms/NOPE', { query: { limit: 1 } }), { name: 'UpgradeRefusedError', statusCode: 400, body: /params\/room/ })
})

t.test('subprotocols are negotiated', async t => {
  const app = await build(t, app => {
    app.ws('/proto', { protocols: ['v2', 'v1'], open (socket) { socket.send(socket.protocol) } })
  })
  const ws = await app.injectWS('/proto', { protocols: ['v1', 'v2'] })
  t.equal(ws.protocol, 'v2')
  t.equal(await ws.expectMessage(), 'v2')
  const none = await app.injectWS('/proto')
  t.equal(none.protocol, '')
})

t.test('server close codes reach expectClose; the route sees the client\'s', async t => {
  const closes: Array<[number, string]> = []
  const app = await build(t, app => {
    app.ws('/close', {
      message (socket, data) {
        const [code, reason] = String(data).split(' ')
        socket.close(Number(code) as 4000, reason)
      },
      close (_socket, code, reason) { closes.push([code, reason]) },
    })
    app.ws('/fail', { message () { throw new Error('handler bug') } })
  })
  const ws = await app.injectWS('/close')
  ws.send('4000 custom')
  t.same(await ws.expectClose(4000), { code: 4000, reason: 'custom' })
  t.throws(() => ws.send('late'), { code: 'WS_ERR_NOT_OPEN' }, 'a closed client refuses to send')

  const clientCloses = await app.injectWS('/close')
  clientCloses.close(4002, 'leaving')
  t.same(await clientCloses.expectClose(4002), { code: 4002, reason: '' }, 'the server echoes the code')
  t.same(closes, [[4000, ''], [4002, 'leaving']], 'the route\'s close handler ran before expectClose resolved')

  const failing = await app.injectWS('/fail')
  failing.send('boom')
  await failing.expectClose(1011)

  const dropped = await app.injectWS('/close')
  dropped.terminate()
  await dropped.expectClose(1006)
  t.same(closes.at(-1), [1006, ''], 'terminate: the server sees 1006')
})

t.test('a server ping is answered at once; the route\'s pong handler sees it', async t => {
  const app = await build(t, app => {
    app.ws('/ping', {
      open (socket) { socket.ping('are you there') },
      pong (socket, data) { socket.send(`pong: ${data.toString()}`) },
      ping (socket, data) { socket.send(`ping: ${data.toString()}`) },
    })
  })
  const ws = await app.injectWS('/ping')
  t.equal(String(await ws.expectPing()), 'are you there')
  t.equal(await ws.expectMessage(), 'pong: are you there')
  ws.ping('client')
  t.equal(String(await ws.expectPong()), 'client', 'the server pongs back')
  t.equal(await ws.expectMessage(), 'ping: client')
})

t.test('app.close() closes injected sockets with 1001 and refuses new ones with 503', async t => {
  const app = Fastify()
  await app.register(wsroutes, { shutdownReason: 'maintenance' })
  echo(app as App)
  const closes: number[] = []
  app.ws('/tracked', { close (_socket, code) { closes.push(code) } })
  const one = await app.injectWS('/echo')
  const two = await app.injectWS('/tracked')
  const closed = Promise.all([one.expectClose(1001), two.expectClose(1001)])
  await app.close()
  t.same(await closed, [{ code: 1001, reason: 'maintenance' }, { code: 1001, reason: 'maintenance' }])
  t.same(closes, [1001])
  t.equal(app.server.listening, false)
  await t.rejects(app.injectWS('/echo'), { name: 'UpgradeRefusedError', statusCode: 503 })
})

t.test('hooks around the upgrade run once, in order, as for a real client', async t => {
  const seen: string[] = []
  const app = await build(t, app => {
    app.addHook('onRequest', async request => { seen.push(`onRequest ${request.url}`) })
    app.addHook('preValidation', async () => { seen.push('preValidation') })
    app.addHook('preHandler', async () => { seen.push('preHandler') })
    app.ws('/hooks', { open () { seen.push('open') } })
  })
  const ws = await app.injectWS('/hooks', { query: 'x=1' })
  t.same(seen, ['onRequest /hooks?x=1', 'preValidation', 'preHandler', 'open'])
  ws.close(1000)
  await ws.expectClose(1000)
})

t.test('frames sent while an async open runs wait in the pipe and arrive after it, in order', async t => {
  const app = await build(t, app => {
    app.ws('/slow-open', {
      async open (socket) {
        await new Promise(resolve => setTimeout(resolve, 30))
        ;(socket as unknown as { ready: boolean }).ready = true
      },
      message (socket, data) { socket.send(`${(socket as unknown as { ready?: boolean }).ready === true ? 'after open' : 'too early'}: ${String(data)}`) },
    })
  })
  const ws = await app.injectWS('/slow-open')
  ws.send('one')
  ws.send('two')
  t.equal(await ws.expectMessage(), 'after open: one')
  t.equal(await ws.expectMessage(), 'after open: two')
})

t.test('a message sent just before terminate() still reaches the server, ahead of the drop', async t => {
  const got: string[] = []
  let closed!: () => void
  const done = new Promise<void>(resolve => { closed = resolve })
  const app = await build(t, app => {
    app.ws('/log', {
      message (_socket, data) { got.push(String(data)) },
      close (_socket, code) {
        got.push(`close ${code}`)
        closed()
      },
    })
  })
  const ws = await app.injectWS('/log')
  ws.send('last words')
  ws.terminate()
  await done
  t.same(got, ['last words', 'close 1006'])
})

t.test('timeout: 0 or Infinity is no deadline; a value a timer cannot take is a RangeError', async t => {
  const app = await build(t, app => {
    app.ws('/late', {
      message (socket) { setTimeout(() => socket.send('late'), 50) },
    })
  })
  for (const timeout of [0, Infinity]) {
    const ws = await app.injectWS('/late', { timeout })
    ws.send('go')
    t.equal(await ws.expectMessage(), 'late', `timeout ${timeout}: expectMessage waits`)
    ws.close(1000)
    t.same(await ws.expectClose(), { code: 1000, reason: '' }, `timeout ${timeout}: the closing handshake is not cut short`)
  }
  for (const timeout of [2 ** 31, -1, 0.5, Number.NaN]) {
    await t.rejects(app.injectWS('/late', { timeout }), RangeError, `timeout ${timeout}`)
  }
  const ws = await app.injectWS('/late')
  await t.rejects(ws.expectMessage(2 ** 31), RangeError, 'expectMessage checks its own timeout')
  await t.rejects(ws.expectClose(undefined, -5), RangeError, 'and so does expectClose')
  ws.terminate()
})

t.test('repeated headers reach the route as Node\'s parser folds them; the path is percent-encoded', async t => {
  let seen: Record<string, unknown> = {}
  const app = await build(t, app => {
    app.ws('/r/:name', {
      onRequest: async request => {
        seen = {
          url: request.raw.url,
          name: (request.params as { name: string }).name,
          x: (request.query as { x: string }).x,
          cookie: request.headers.cookie,
          authorization: request.headers.authorization,
          accept: request.headers.accept,
          'set-cookie': request.headers['set-cookie'],
        }
      },
      open (socket) { socket.close(1000) },
    })
  })
  const ws = await app.injectWS('/r/café 1?x=a b', {
    headers: {
      cookie: ['a=1', 'b=2'],
      authorization: ['Bearer one', 'Bearer two'],
      accept: ['text/plain', 'application/json'],
      'set-cookie': ['s=1', 't=2'],
    },
  })
  await ws.expectClose(1000)
  t.same(seen, {
    url: '/r/caf%C3%A9%201?x=a%20b',
    name: 'café 1',
    x: 'a b',
    cookie: 'a=1; b=2',
    authorization: 'Bearer one',
    accept: 'text/plain, application/json',
    'set-cookie': ['s=1', 't=2'],
  })
})

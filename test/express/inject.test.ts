/**
 * `wsExpress(...).injectWS()`: Express ws routes tested in-process. The
 * server is created and never listens; the upgrade runs through the app's
 * middleware, routers and error handling as a real one does.
 */
import express, { type Express, type NextFunction, type Request, type Response } from 'express'
import { createServer, type Server } from 'node:http'
import t from 'tap'
import { UpgradeRefusedError, wsExpress, type WsExpress, type WsExpressOptions } from '../../lib/express/index.js'
import { silentLogger } from './helpers.js'

interface Teardown { teardown: (fn: () => unknown) => void }

/** An app, a server that never listens, the adapter; the adapter is closed at teardown. */
function build (t: Teardown, setup: (app: Express) => void, options: WsExpressOptions = {}): { app: Express, server: Server, ws: WsExpress } {
  const app = express()
  const server = createServer(app)
  const ws = wsExpress(app, server, { logger: silentLogger(), ...options })
  setup(app)
  t.teardown(() => ws.close())
  return { app, server, ws }
}

function requireAuth (req: Request, res: Response, next: NextFunction): void {
  if (req.headers.authorization === 'Bearer ok') next()
  else res.status(401).set('www-authenticate', 'Bearer').json({ error: 'no' })
}

t.test('echo text and binary through Express, with nothing listening', async t => {
  const { ws, server } = build(t, app => {
    app.ws('/echo', { message (socket, data, isBinary) { socket.send(data, { binary: isBinary }) } })
  })
  const client = await ws.injectWS('/echo')
  client.send('hello')
  t.equal(await client.expectMessage(), 'hello')
  client.send(Buffer.from([9, 8, 7]))
  t.same(await client.expectMessage(), Buffer.from([9, 8, 7]))
  t.equal(server.listening, false, 'the server never listened')
  t.equal(ws.clients.size, 1, 'the injected socket is one of the adapter\'s clients')
  client.close(1000)
  await client.expectClose(1000)
  t.equal(ws.clients.size, 0)
})

t.test('a JSON route with schemas', async t => {
  const Say = { type: 'object', properties: { type: { const: 'say' }, text: { type: 'string', maxLength: 5 } }, required: ['type', 'text'] } as const
  const Said = { type: 'object', properties: { type: { const: 'said' }, text: { type: 'string' } }, required: ['type', 'text'] } as const
  const { ws } = build(t, app => {
    app.ws('/json', {
      schema: { message: Say, send: Said },
      message (socket, msg) { socket.send({ type: 'said', text: (msg as { text: string }).text.toUpperCase(), dropped: true }) },
    })
  })
  const client = await ws.injectWS<{ type: 'say', text: string }, { type: 'said', text: string }>('/json')
  client.send({ type: 'say', text: 'hi' })
  t.same(await client.expectJson(), { type: 'said', text: 'HI' }, 'serialized with the send schema')
  client.send({ type: 'say', text: 'too long' })
  t.same(await client.expectClose(1008), { code: 1008, reason: 'message does not match the schema' })
})

t.test('middleware answering 401: injectWS rejects with the status, headers and body', async t => {
  const opens: string[] = []
  const { ws } = build(t, app => {
    app.ws('/private', requireAuth, { open (_socket, req) { opens.push(req.path) } })
  })
  const error = await ws.injectWS('/private').catch((e: unknown) => e)
  t.ok(error instanceof UpgradeRefusedError)
  t.match(error, { statusCode: 401, headers: { 'www-authenticate': 'Bearer' } })
  t.same(JSON.parse((error as UpgradeRefusedError).body), { error: 'no' })
  t.same(opens, [])
  const client = await ws.injectWS('/private', { headers: { Authorization: 'Bearer ok' } })
  t.equal(client.readyState, 1)
  t.same(opens, ['/private'])
})

t.test('an unknown path gets Express\'s 404; next(err) gets the error middleware\'s answer', async t => {
  const { ws } = build(t, app => {
    app.ws('/oops', (_req, _res, next) => { next(new Error('boom')) }, {})
    app.use((error: Error, _req: Request, res: Response, _next: NextFunction) => { res.status(418).send(`caught ${error.message}`) })
  })
  await t.rejects(ws.injectWS('/nowhere'), { name: 'UpgradeRefusedError', statusCode: 404, body: /Cannot GET \/nowhere/ })
  await t.rejects(ws.injectWS('/oops'), { name: 'UpgradeRefusedError', statusCode: 418, body: 'caught boom' })
})

t.test('route params, routers and the query string', async t => {
  const { ws } = build(t, app => {
    const router = express.Router()
    router.ws('/rooms/:room', {
      open (socket, req) { socket.send(JSON.stringify({ room: req.params.room, query: req.query, baseUrl: req.baseUrl, ip: req.ip })) },
    })
    app.use('/api', router)
  })
  const client = await ws.injectWS('/api/rooms/lobby', { query: { limit: 20, tag: ['a', 'b'] } })
  t.same(await client.expectJson(), { room: 'lobby', query: { limit: '20', tag: ['a', 'b'] }, baseUrl: '/api', ip: '127.0.0.1' })
})

t.test('server close codes reach expectClose; a server ping is answered and the route\'s pong handler sees it', async t => {
  const closes: Array<[number, string]> = []
  const { ws } = build(t, app => {
    app.ws('/session', {
      open (socket) { socket.ping('hb') },
      pong (socket, data) { socket.send(`pong ${data.toString()}`) },
      message (socket, data) { socket.close(4100, String(data)) },
      close (_socket, code, reason) { closes.push([code, reason]) },
    })
  })
  const client = await ws.injectWS('/session')
  t.equal(String(await client.expectPing()), 'hb')
  t.equal(await client.expectMessage(), 'pong hb')
  client.send('kicked')
  t.same(await client.expectClose(4100), { code: 4100, reason: 'kicked' })
  t.same(closes, [[4100, '']])
})

t.test('close() and server.close() close injected sockets with 1001, then refuse with 503', async t => {
  const app = express()
  const server = createServer(app)
  const ws = wsExpress(app, server, { logger: silentLogger(), shutdownReason: 'deploy' })
  app.ws('/echo', {})
  const one = await ws.injectWS('/echo')
  const closed = one.expectClose(1001)
  await ws.close()
  t.same(await closed, { code: 1001, reason: 'deploy' })
  await t.rejects(ws.injectWS('/echo'), { name: 'UpgradeRefusedError', statusCode: 503 })

  const app2 = express()
  const server2 = createServer(app2)
  const ws2 = wsExpress(app2, server2, { logger: silentLogger() })
  app2.ws('/echo', {})
  const two = await ws2.injectWS('/echo')
  const closed2 = two.expectClose(1001)
  server2.close()
  t.same(await closed2, { code: 1001, reason: 'server shutting down' })
})

/**
 * The Express adapter with real middleware and real clients: upgrades go
 * through Express's routing and middleware before any 101.
 */
import express, { type ErrorRequestHandler, type NextFunction, type Request, type Response } from 'express'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { WebSocket as UndiciWebSocket } from 'undici'
import WebSocket from 'ws'
import { wsExpress } from '../../lib/express/index.js'
import { refusedWs } from '../interop/helpers.js'
import { closed, nextMessage, open, rawUpgrade, silentLogger, start } from './helpers.js'

declare global {
  namespace Express {
    interface Request {
      user?: { name: string }
    }
  }
}

/** Bearer-token auth that answers 401 itself. */
function requireAuth (req: Request, res: Response, next: NextFunction): void {
  const header = req.get('authorization') ?? ''
  if (header !== 'Bearer good-token') {
    res.status(401).set('WWW-Authenticate', 'Bearer').json({ error: 'unauthorized' })
    return
  }
  req.user = { name: 'ada' }
  next()
}

const echo = {
  message (socket: { send (data: string | Buffer, options?: { binary?: boolean }): unknown }, data: string | Buffer, isBinary: boolean) {
    socket.send(data, { binary: isBinary })
  },
}

t.test('a ws route echoes text and binary; params, query and request reach the handlers', async t => {
  const seen: Array<{ room: string, q: unknown, same: boolean, url: string }> = []
  const s = await start(t, app => {
    app.ws('/chat/:room', {
      open (socket, req) {
        seen.push({ room: req.params.room, q: req.query.who, same: socket.request === req, url: req.originalUrl })
        socket.send(`welcome to ${req.params.room}`)
      },
      ...echo,
    })
  })
  const client = await open(s.url('/chat/lobby?who=bob'))
  t.equal(await nextMessage(client), 'welcome to lobby')
  client.send('hello')
  t.equal(await nextMessage(client), 'hello')
  client.send(Buffer.from([1, 2, 3]))
  t.same(await nextMessage(client), Buffer.from([1, 2, 3]))
  t.same(seen, [{ room: 'lobby', q: 'bob', same: true, url: '/chat/lobby?who=bob' }])
  const done = closed(client)
  client.close(1000, 'bye')
  t.equal((await done).code, 1000, 'the close handshake completes')
})

t.test("undici's WebSocket talks to an Express route", async t => {
  const s = await start(t, app => {
    app.ws('/echo', echo)
  })
  const client = new UndiciWebSocket(s.url('/echo'))
  client.binaryType = 'arraybuffer'
  await new Promise((resolve, reject) => {
    client.onopen = resolve
    client.onerror = reject
  })
  const messages: unknown[] = []
  const two = new Promise<void>(resolve => {
    client.onmessage = event => {
      messages.push(event.data)
      if (messages.length === 2) resolve()
    }
  })
  client.send('text ✓')
  client.send(new Uint8Array([9, 8, 7]))
  await two
  t.equal(messages[0], 'text ✓')
  t.same(Buffer.from(messages[1] as ArrayBuffer), Buffer.from([9, 8, 7]))
  const done = new Promise<number>(resolve => { client.onclose = event => resolve(event.code) })
  client.close(1000)
  t.equal(await done, 1000)
})

t.test('bearer-token middleware answers 401 before any 101', async t => {
  let opened = 0
  const s = await start(t, app => {
    app.ws('/private', requireAuth, {
      open (socket, req) {
        opened++
        socket.send(`hello ${req.user?.name ?? '?'}`)
      },
    })
  })

  const raw = await rawUpgrade(s.port, '/private')
  t.equal(raw.statusLine, 'HTTP/1.1 401 Unauthorized', 'the raw socket sees the HTTP status line')
  t.equal(raw.headers['www-authenticate'], 'Bearer')
  t.match(raw.headers['content-type'], /application\/json/)
  t.same(JSON.parse(raw.body), { error: 'unauthorized' })
  t.notMatch(raw.raw, /101 Switching Protocols/)

  const refusal = await refusedWs(s.url('/private'), { headers: { authorization: 'Bearer wrong' } })
  t.equal(refusal.status, 401, "the ws client gets 'unexpected-response' with the 401")
  t.same(JSON.parse(refusal.body), { error: 'unauthorized' })

  const client = await open(s.url('/private'), { headers: { authorization: 'Bearer good-token' } })
  t.equal(await nextMessage(client), 'hello ada', 'fields set by auth middleware reach the handler')
  t.equal(opened, 1)
  client.close()
})

t.test('middleware that answers 401 and still calls next(): the 401 stands, no 101 after it', async t => {
  let opened = 0
  const s = await start(t, app => {
    app.ws('/private', (req: Request, res: Response, next: NextFunction) => {
      if (req.get('authorization') !== 'Bearer good-token') res.status(401).json({ error: 'unauthorized' })
      next()
    }, { open () { opened++ } })
  })
  const raw = await rawUpgrade(s.port, '/private')
  t.equal(raw.statusLine, 'HTTP/1.1 401 Unauthorized')
  t.same(JSON.parse(raw.body), { error: 'unauthorized' }, 'the body is the 401\'s alone')
  t.notMatch(raw.raw, /101 Switching Protocols/, 'no 101 follows the answer')
  t.equal(opened, 0, 'open never ran')
  const client = await open(s.url('/private'), { headers: { authorization: 'Bearer good-token' } })
  t.equal(opened, 1, 'a request the middleware let through is upgraded')
  client.close()
})

t.test('middleware that sets a 401 whose answer is sent later (sendFile, a timer), then calls next(): no 101', async t => {
  let opened = 0
  const file = fileURLToPath(new URL('../../package.json', import.meta.url))
  const s = await start(t, app => {
    app.ws('/file', (req: Request, res: Response, next: NextFunction) => {
      // sendFile answers once it has opened the file: after next().
      if (req.get('authorization') !== 'Bearer good-token') res.status(401).sendFile(file)
      next()
    }, { open () { opened++ } })
    app.ws('/timer', (req: Request, res: Response, next: NextFunction) => {
      if (req.get('authorization') !== 'Bearer good-token') {
        res.status(401)
        setTimeout(() => { res.json({ error: 'unauthorized' }) }, 20)
      }
      next()
    }, { open () { opened++ } })
  })
  for (const path of ['/file', '/timer']) {
    const raw = await rawUpgrade(s.port, path)
    t.equal(raw.statusLine, 'HTTP/1.1 401 Unauthorized', `${path}: the middleware's 401`)
    t.notMatch(raw.raw, /101 Switching Protocols/, `${path}: no 101`)
  }
  t.equal(opened, 0, 'open never ran')
  const client = await open(s.url('/timer'), { headers: { authorization: 'Bearer good-token' } })
  t.equal(opened, 1, 'a request the middleware let through is upgraded')
  client.close()
})

t.test('a protocols function that throws: 500 and the socket closed', async t => {
  const s = await start(t, app => {
    app.ws('/p', { protocols: () => { throw new Error('selector bug') } })
  })
  const raw = await rawUpgrade(s.port, '/p', { 'Sec-WebSocket-Protocol': 'chat' })
  t.equal(raw.statusLine, 'HTTP/1.1 500 Internal Server Error', 'the client gets an HTTP answer, not a silent close')
})

t.test('an h2c upgrade with a body is plain HTTP with its body', async t => {
  const s = await start(t, app => {
    app.post('/echo', express.json(), (req: Request, res: Response) => { res.json({ got: req.body }) })
  })
  const body = JSON.stringify({ a: 1 })
  const socket = (await import('node:net')).connect(s.port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  socket.write(`POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
  const chunks: Buffer[] = []
  socket.on('data', chunk => chunks.push(chunk))
  await once(socket, 'close')
  const text = Buffer.concat(chunks).toString()
  t.match(text, /^HTTP\/1.1 200/)
  t.same(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)), { got: { a: 1 } }, 'express.json() read the body')
})

t.test('an async middleware runs before the upgrade; app.use and app.param too', async t => {
  const order: string[] = []
  const s = await start(t, app => {
    app.use((req, _res, next) => {
      order.push(`use ${req.path}`)
      next()
    })
    app.param('room', (req, res, next, value: string) => {
      order.push(`param ${value}`)
      if (value === 'closed') {
        res.status(404).send('no such room')
        return
      }
      next()
    })
    app.ws('/rooms/:room', async (_req, res, next) => {
      await new Promise(resolve => setTimeout(resolve, 20))
      order.push('async middleware')
      res.locals.checked = true
      next()
    }, {
      open (socket, req) {
        order.push(`open ${req.params.room} ${String(req.res?.locals.checked)}`)
        socket.send('ok')
      },
    })
  })
  const client = await open(s.url('/rooms/a'))
  t.equal(await nextMessage(client), 'ok')
  t.same(order, ['use /rooms/a', 'param a', 'async middleware', 'open a true'])
  client.close()

  const raw = await rawUpgrade(s.port, '/rooms/closed')
  t.equal(raw.status, 404)
  t.equal(raw.body, 'no such room')
})

t.test('router.ws on express.Router with params, mounted under app.use("/api", router)', async t => {
  const seen: unknown[] = []
  const s = await start(t, app => {
    const router = express.Router()
    const nested = express.Router({ mergeParams: true })
    router.use((req, _res, next) => {
      req.user = { name: 'from router' }
      next()
    })
    router.ws('/feed/:topic', {
      open (socket, req) {
        seen.push({ topic: req.params.topic, baseUrl: req.baseUrl, url: req.url, originalUrl: req.originalUrl, user: req.user?.name })
        socket.send(req.params.topic)
      },
      ...echo,
    })
    nested.ws('/stream', {
      open (socket, req) {
        socket.send(`team ${String((req.params as Record<string, string>).team)}`)
      },
    })
    router.use('/teams/:team', nested)
    // A plain router next to it keeps working.
    router.get('/plain', (_req, res) => { res.send('plain') })
    app.use('/api', router)
  })

  const client = await open(s.url('/api/feed/news'))
  t.equal(await nextMessage(client), 'news')
  client.send('ping?')
  t.equal(await nextMessage(client), 'ping?')
  t.same(seen, [{ topic: 'news', baseUrl: '/api', url: '/feed/news', originalUrl: '/api/feed/news', user: 'from router' }])
  client.close()

  const nestedClient = await open(s.url('/api/teams/red/stream'))
  t.equal(await nextMessage(nestedClient), 'team red', 'mergeParams routers see the parent params')
  nestedClient.close()

  const plain = await fetch(s.http('/api/plain'))
  t.equal(await plain.text(), 'plain')

  t.equal((await rawUpgrade(s.port, '/feed/news')).status, 404, 'not without the /api prefix')
})

t.test('a sub-app mounted with app.use has ws routes too', async t => {
  const s = await start(t, app => {
    const admin = express()
    admin.ws('/console', {
      open (socket, req) { socket.send(`${req.baseUrl}|${req.path}`) },
    })
    app.use('/admin', admin)
  })
  const client = await open(s.url('/admin/console'))
  t.equal(await nextMessage(client), '/admin|/console')
  client.close()
})

t.test('next(err) goes to error middleware, which answers with its status; no upgrade', async t => {
  const s = await start(t, app => {
    app.ws('/forbidden', (_req, _res, next) => {
      next(Object.assign(new Error('not yours'), { status: 403 }))
    }, { open () { t.fail('must not open') } })
    app.ws('/broken', () => {
      throw new Error('middleware bug')
    }, { open () { t.fail('must not open') } })
    const onError: ErrorRequestHandler = (err: Error & { status?: number }, _req, res, _next) => {
      res.status(err.status ?? 500).json({ error: err.message })
    }
    app.use(onError)
  })

  const forbidden = await rawUpgrade(s.port, '/forbidden')
  t.equal(forbidden.statusLine, 'HTTP/1.1 403 Forbidden')
  t.same(JSON.parse(forbidden.body), { error: 'not yours' })
  t.equal(forbidden.headers.connection, 'close')

  const broken = await refusedWs(s.url('/broken'))
  t.equal(broken.status, 500)
  t.same(JSON.parse(broken.body), { error: 'middleware bug' })
})

t.test("without error middleware, Express's final handler answers next(err)", async t => {
  // finalhandler logs the error's stack unless the app's env is 'test'.
  const logged: unknown[] = []
  const consoleError = console.error
  console.error = (...args: unknown[]) => { logged.push(args) }
  t.teardown(() => { console.error = consoleError })
  const s = await start(t, app => {
    app.set('env', 'production')
    app.ws('/denied', (_req, _res, next) => {
      next(Object.assign(new Error('secret'), { status: 403 }))
    }, {})
    app.ws('/oops', (_req, _res, next) => { next(new Error('boom')) }, {})
  })
  const denied = await rawUpgrade(s.port, '/denied')
  t.equal(denied.status, 403)
  t.match(denied.body, /Forbidden/)
  const oops = await rawUpgrade(s.port, '/oops')
  t.equal(oops.status, 500)
  t.match(oops.body, /Internal Server Error/)
  t.notMatch(oops.body, /boom/, 'production mode hides the message')
  t.equal(logged.length, 2, 'Express logged both errors')
})

t.test('an upgrade to a path no ws route matches gets 404', async t => {
  await t.test("Express's final handler", async t => {
    const s = await start(t, app => {
      app.ws('/known', {})
    })
    const raw = await rawUpgrade(s.port, '/unknown')
    t.equal(raw.statusLine, 'HTTP/1.1 404 Not Found')
    t.match(raw.body, /Cannot GET \/unknown/)
    const refusal = await refusedWs(s.url('/unknown'))
    t.equal(refusal.status, 404)
  })
  await t.test("the app's own 404 middleware", async t => {
    const s = await start(t, app => {
      app.ws('/known', {})
      app.use((req, res) => { res.status(404).json({ notFound: req.originalUrl }) })
    })
    const raw = await rawUpgrade(s.port, '/nope?x=1')
    t.equal(raw.status, 404)
    t.same(JSON.parse(raw.body), { notFound: '/nope?x=1' })
  })
})

t.test("routing settings made after wsExpress() still apply: 'strict routing', 'case sensitive routing'", async t => {
  // start() calls wsExpress() before this setup, as an application does.
  const s = await start(t, app => {
    app.enable('strict routing')
    app.enable('case sensitive routing')
    app.get('/Page/', (_req, res) => { res.send('page') })
    app.ws('/Room/', {})
  })
  t.equal((await fetch(s.http('/Page/'))).status, 200)
  t.equal((await fetch(s.http('/Page'))).status, 404, 'strict: no trailing slash, no match')
  t.equal((await fetch(s.http('/page/'))).status, 404, 'case sensitive')
  t.equal((await rawUpgrade(s.port, '/Room/')).status, 101)
  t.equal((await rawUpgrade(s.port, '/Room')).status, 404, 'a ws route too: strict')
  t.equal((await rawUpgrade(s.port, '/room/')).status, 404, 'a ws route too: case sensitive')
})

t.test('a plain GET to a ws route gets 426 with Upgrade: websocket', async t => {
  const s = await start(t, app => {
    app.ws('/only-ws', requireAuth, {})
  })
  const response = await fetch(s.http('/only-ws'), { headers: { authorization: 'Bearer good-token' } })
  t.equal(response.status, 426)
  t.equal(response.headers.get('upgrade'), 'websocket')
  t.equal(response.headers.get('connection'), 'upgrade', 'RFC 9110 §7.8: Upgrade comes with the upgrade connection option')
  t.same(await response.json(), { statusCode: 426, error: 'Upgrade Required', message: 'this route only accepts WebSocket connections' })
  const unauthenticated = await fetch(s.http('/only-ws'))
  t.equal(unauthenticated.status, 401, 'middleware still runs first')
  await unauthenticated.arrayBuffer()
})

t.test('invalid handshakes are refused before Express runs', async t => {
  let reached = false
  const s = await start(t, app => {
    app.use((_req, _res, next) => { reached = true; next() })
    app.ws('/x', {})
  })
  const badVersion = await rawUpgrade(s.port, '/x', { 'Sec-WebSocket-Version': '8' })
  t.equal(badVersion.status, 426)
  t.equal(badVersion.headers['sec-websocket-version'], '13')
  const post = await rawUpgrade(s.port, '/x', {}, 'POST')
  t.equal(post.status, 405)
  t.equal(reached, false)
})

t.test('subprotocols are negotiated per route', async t => {
  const s = await start(t, app => {
    app.ws('/proto', { protocols: ['v2', 'v1'], open (socket) { socket.send(socket.protocol) } })
    app.ws('/pick', {
      protocols: (offered, req) => offered.find(name => name === req.query.want),
      open (socket) { socket.send(`[${socket.protocol}]`) },
    })
  })
  const client = await open(s.url('/proto'), { protocols: ['v1', 'v2'] })
  t.equal(client.protocol, 'v2')
  t.equal(await nextMessage(client), 'v2')
  client.close()
  const picked = await open(s.url('/pick?want=b'), { protocols: ['a', 'b'] })
  t.equal(picked.protocol, 'b')
  t.equal(await nextMessage(picked), '[b]')
  picked.close()
})

t.test('limits: adapter-wide defaults, overridden per route', async t => {
  const s = await start(t, app => {
    app.ws('/small', echo)
    app.ws('/large', { maxPayload: 64, ...echo })
  }, { maxPayload: 16 })
  const small = await open(s.url('/small'))
  const smallClosed = closed(small)
  small.send('x'.repeat(17))
  t.equal((await smallClosed).code, 1009)

  const large = await open(s.url('/large'))
  large.send('y'.repeat(64))
  t.equal(await nextMessage(large), 'y'.repeat(64))
  const largeClosed = closed(large)
  large.send('y'.repeat(65))
  t.equal((await largeClosed).code, 1009)
})

t.test('binaryMessages: borrow, adapter-wide or per route; own by default', async t => {
  const memories = new Map<string, ArrayBufferLike[]>()
  const recordingEcho = (name: string): { message: (socket: { send: (data: Buffer) => unknown }, data: Buffer) => void } => ({
    message (socket, data) {
      memories.set(name, [...(memories.get(name) ?? []), data.buffer])
      socket.send(data)
    },
  })
  const s = await start(t, app => {
    app.ws('/borrowing', recordingEcho('adapter-wide'))
    app.ws('/owning', { binaryMessages: 'own', ...recordingEcho('route own') })
  }, { binaryMessages: 'borrow' })
  for (const [path, name] of [['/borrowing', 'adapter-wide'], ['/owning', 'route own']]) {
    const client = await open(s.url(path))
    for (const byte of [1, 2]) {
      client.send(Buffer.alloc(30_000, byte))
      t.ok(Buffer.from(await nextMessage(client) as Buffer).equals(Buffer.alloc(30_000, byte)), `${path}: echo ${byte} is right`)
    }
    const [first, second] = memories.get(name)!
    if (name === 'adapter-wide') t.equal(second, first, 'borrowed: the second message reuses the first one\'s memory')
    else t.not(second, first, 'owned: each message has memory of its own')
  }
})

t.test('throwing handlers close their socket with 1011, are logged, and others keep working', async t => {
  const logger = silentLogger()
  const errors: string[] = []
  const s = await start(t, app => {
    app.ws('/sync', {
      message (socket, data) {
        if (data === 'throw') throw new Error('sync failure')
        if (data === 'ping') socket.send('pong')
      },
    })
    app.ws('/async', {
      async message (socket, data) {
        await new Promise(resolve => setImmediate(resolve))
        if (data === 'throw') throw new Error('async failure')
        if (data === 'ping') socket.send('pong')
      },
    })
    app.ws('/open', {
      open () { throw new Error('open failure') },
    })
    app.ws('/echo', echo)
  }, { logger, errorHandler (error) { errors.push((error as Error & { code: string }).code) } })

  const bystander = await open(s.url('/echo'))

  for (const [path, message] of [['/sync', 'sync failure'], ['/async', 'async failure']] as const) {
    const client = await open(s.url(path))
    const done = closed(client)
    client.send('fine')
    client.send('throw')
    t.equal((await done).code, 1011, `${path}: 1011`)
    t.ok(logger.entries.some(entry => entry.level === 'error' && (entry.object as { err: Error }).err.message === message), `${path}: logged`)
  }
  const opening = await open(s.url('/open'))
  t.equal((await closed(opening)).code, 1011, 'open: 1011')

  bystander.send('still here')
  t.equal(await nextMessage(bystander), 'still here', 'other clients keep working')
  for (const path of ['/sync', '/async']) {
    // A reply, not readyState right after send(): a route that closed later
    // sockets (1011 or otherwise) would still read OPEN at that point.
    const again = await open(s.url(path))
    const done = closed(again)
    again.send('fine')
    again.send('ping')
    const reply = await Promise.race([nextMessage(again), done.then(({ code }) => `closed with ${code}`)])
    t.equal(reply, 'pong', `${path}: the route keeps serving new sockets after a failure`)
    t.equal(again.readyState, WebSocket.OPEN, `${path}: and keeps them open`)
    again.close(1000)
    t.equal((await done).code, 1000, `${path}: the client's close completes normally`)
  }
  const bystanderDone = closed(bystander)
  bystander.close()
  await bystanderDone
  t.same(errors, ['WS_ERR_HANDLER_FAILED', 'WS_ERR_HANDLER_FAILED', 'WS_ERR_HANDLER_FAILED'], 'the errorHandler option sees each failure')
})

t.test('ws.close() sends 1001 to every client, refuses new upgrades with 503 and resolves', async t => {
  const closes: number[] = []
  const s = await start(t, app => {
    app.ws('/a', { close (_socket, code) { closes.push(code) } })
    app.ws('/b/:id', { close (_socket, code) { closes.push(code) } })
  }, { shutdownReason: 'maintenance' })
  const clients = await Promise.all([open(s.url('/a')), open(s.url('/a')), open(s.url('/b/1')), open(s.url('/b/2'))])
  t.equal(s.ws.clients.size, 4)
  const results = clients.map(client => closed(client))
  await s.ws.close()
  t.same(await Promise.all(results), clients.map(() => ({ code: 1001, reason: 'maintenance' })))
  t.same(closes, [1001, 1001, 1001, 1001])
  t.equal(s.ws.clients.size, 0)

  const late = await rawUpgrade(s.port, '/a')
  t.equal(late.status, 503)
  const http = await fetch(s.http('/a'))
  t.equal(http.status, 426, 'plain HTTP is not affected')
  await http.arrayBuffer()
})

t.test('server.close() says goodbye to websockets and completes', async t => {
  const s = await start(t, app => {
    app.ws('/a', {})
  })
  const clients = await Promise.all([open(s.url('/a')), open(s.url('/a'))])
  const results = clients.map(client => closed(client))
  await new Promise<void>((resolve, reject) => s.server.close(error => error === undefined ? resolve() : reject(error)))
  t.same((await Promise.all(results)).map(result => result.code), [1001, 1001])
  t.equal(s.server.listenerCount('upgrade'), 0, 'the upgrade listener is removed')
})

t.test('a client that leaves while middleware runs is dropped, without a 101 or an open; its request closes, as for HTTP', async t => {
  let opened = false
  let reachedRoute!: () => void
  const reached = new Promise<void>(resolve => { reachedRoute = resolve })
  let requestClosed!: () => void
  const requestClose = new Promise<void>(resolve => { requestClosed = resolve })
  let letMiddlewareFinish!: () => void
  const middlewareMayFinish = new Promise<void>(resolve => { letMiddlewareFinish = resolve })
  let routeRan!: () => void
  const routeDone = new Promise<void>(resolve => { routeRan = resolve })
  const closes: string[] = []
  const s = await start(t, app => {
    app.ws('/slow', async (req, _res, next) => {
      // What middleware watching for a client that left listens to.
      req.once('close', () => {
        closes.push(`request closed, destroyed: ${String(req.destroyed)}`)
        requestClosed()
      })
      reachedRoute()
      // Held until the server has seen the client leave, however long that takes.
      await middlewareMayFinish
      // Express calls the route's own handler (the handshake) from next(), synchronously.
      next()
      routeRan()
    }, { open () { opened = true } })
  })
  const client = new WebSocket(s.url('/slow'))
  client.on('error', () => {})
  await reached
  client.terminate()
  await requestClose
  letMiddlewareFinish()
  await routeDone
  t.equal(opened, false)
  t.equal(s.ws.clients.size, 0)
  t.same(closes, ['request closed, destroyed: true'])
})

t.test('one adapter per server; a shutdownReason too long for a close frame is refused at setup', async t => {
  const app = express()
  const server = createServer(app)
  wsExpress(app, server, { logger: silentLogger() })
  t.throws(() => wsExpress(express(), server, { logger: silentLogger() }), /already has a wsroutes adapter/,
    'a second adapter would answer the same upgrades again')
  t.throws(() => wsExpress(app, createServer(app), { shutdownReason: 'x'.repeat(124) }), { name: 'RangeError', code: 'WS_ERR_CLOSE_REASON_TOO_LONG' },
    'rather than on the first socket shutdown would close')
})

t.test('limits and invalidMessage that are wrong fail in wsExpress() or at the route, not on a connection', async t => {
  for (const options of [{ maxPayload: 0 }, { backpressurePolicy: 'nope' }, { idleTimeout: -1 }, { handshakeTimeout: 'abc' }, { invalidMessage: 'explode' }]) {
    t.throws(() => wsExpress(express(), createServer(), options as never), { name: 'TypeError', message: new RegExp(`wsroutes: ${Object.keys(options)[0]} must be`) }, JSON.stringify(options))
  }
  const app = express()
  t.throws(() => app.ws('/a', { maxFragments: 0 }), { name: 'TypeError', message: /maxFragments must be/ })
  t.throws(() => app.ws('/b', { binaryMessages: 'lend' as 'own' }), { name: 'TypeError', message: /binaryMessages must be/ })
  t.throws(() => express.Router().ws('/c', { keepRequest: 'no' as never }), { name: 'TypeError', message: /keepRequest must be/ })
})

t.test('ws() without the options object is a TypeError', async t => {
  const app = express()
  t.throws(() => (app.ws as (...args: unknown[]) => unknown)('/x'), TypeError)
  t.throws(() => (app.ws as (...args: unknown[]) => unknown)('/x', () => {}), TypeError)
  t.throws(() => (express.Router().ws as (...args: unknown[]) => unknown)('/x', null), TypeError)
})

t.test('one app on two servers: each adapter has its own limits, clients and shutdown', async t => {
  const app = express()
  app.ws('/echo', echo)
  const servers = [createServer(app), createServer(app)]
  const adapters = [wsExpress(app, servers[0], { maxPayload: 8, logger: silentLogger() }), wsExpress(app, servers[1], { maxPayload: 64, logger: silentLogger() })]
  const ports: number[] = []
  for (const server of servers) {
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    ports.push((server.address() as AddressInfo).port)
    t.teardown(() => new Promise(resolve => server.close(resolve)))
  }
  const small = await open(`ws://127.0.0.1:${ports[0]}/echo`)
  const large = await open(`ws://127.0.0.1:${ports[1]}/echo`)
  large.send('z'.repeat(32))
  t.equal(await nextMessage(large), 'z'.repeat(32))
  const smallClosed = closed(small)
  small.send('z'.repeat(32))
  t.equal((await smallClosed).code, 1009)

  const other = await open(`ws://127.0.0.1:${ports[0]}/echo`)
  const otherClosed = closed(other)
  await adapters[0].close()
  t.equal((await otherClosed).code, 1001)
  t.equal(adapters[1].clients.size, 1, 'the other server keeps its clients')
  large.send('still open')
  t.equal(await nextMessage(large), 'still open')
  large.close()
})

t.test('an upgrade whose middleware is still running when ws.close() begins gets 503', async t => {
  let release!: () => void
  const gate = new Promise<void>(resolve => { release = resolve })
  let reachedRoute!: () => void
  const reached = new Promise<void>(resolve => { reachedRoute = resolve })
  const s = await start(t, app => {
    app.ws('/slow', async (_req, _res, next) => {
      reachedRoute()
      await gate
      next()
    }, { open () { t.fail('must not open') } })
  })
  const answer = rawUpgrade(s.port, '/slow')
  await reached
  const closing = s.ws.close()
  release()
  t.equal((await answer).status, 503)
  await closing
  t.equal(s.ws.clients.size, 0)
})

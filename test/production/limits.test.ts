/**
 * Limits through both adapters: set plugin-wide (adapter-wide) and
 * overridden per route (`maxPayload`, `maxFragments`, `closeTimeout`; the
 * heartbeat and backpressure tests cover `idleTimeout`, `maxBackpressure`
 * and `backpressurePolicy`), and the handshake's own deadlines:
 * `handshakeTimeout` for hooks or middleware that hang (503, socket
 * closed, no upgrade ever), and Node's `headersTimeout` for a client that
 * sends half a request head (408).
 */
import net from 'node:net'
import t from 'tap'
import { Op, RawClient, upgradeRequest } from '../interop/helpers.js'
import { KINDS, delay, serve, until } from './servers.js'

const echo = {
  message (socket: { send (data: unknown, options: { binary: boolean }): void }, data: unknown, isBinary: boolean) {
    socket.send(data, { binary: isBinary })
  },
}

for (const kind of KINDS) {
  t.test(`${kind}: maxPayload and maxFragments plugin-wide, overridden per route`, async t => {
    const served = await serve(t, kind, [
      { path: '/defaults', options: echo },
      { path: '/big', options: { ...echo, maxPayload: 64, maxFragments: 4 } },
    ], { adapter: { maxPayload: 16, maxFragments: 2 } })

    const small = await RawClient.open(served.port, { path: '/defaults' })
    t.teardown(() => small.destroy())
    small.send(Op.TEXT, 'x'.repeat(16))
    t.equal((await small.nextFrame()).payload.toString(), 'x'.repeat(16), '16 bytes pass the plugin-wide maxPayload')
    small.send(Op.TEXT, 'x'.repeat(17))
    t.same(await small.nextClose(), { code: 1009, reason: '' }, '17 bytes: 1009')

    const fragmented = await RawClient.open(served.port, { path: '/defaults' })
    t.teardown(() => fragmented.destroy())
    fragmented.send(Op.TEXT, 'a', false)
    fragmented.send(Op.CONT, 'b', false)
    fragmented.send(Op.CONT, 'c', true)
    t.same(await fragmented.nextClose(), { code: 1009, reason: '' }, 'three fragments over the plugin-wide maxFragments (2): 1009')

    const big = await RawClient.open(served.port, { path: '/big' })
    t.teardown(() => big.destroy())
    big.send(Op.TEXT, 'y'.repeat(64))
    t.equal((await big.nextFrame()).payload.length, 64, 'the route allows 64 bytes')
    big.send(Op.TEXT, 'a', false)
    big.send(Op.CONT, 'b', false)
    big.send(Op.CONT, 'c', false)
    big.send(Op.CONT, 'd', true)
    t.equal((await big.nextFrame()).payload.toString(), 'abcd', 'and four fragments')
    big.send(Op.TEXT, 'y'.repeat(65))
    t.same(await big.nextClose(), { code: 1009, reason: '' }, '65 bytes: 1009')
  })

  t.test(`${kind}: closeTimeout plugin-wide, overridden per route`, async t => {
    const errors: string[] = []
    const route = (extra: Record<string, unknown>): Record<string, unknown> => ({
      ...extra,
      open (socket: { close (code: number): void }) { socket.close(1000) },
      error (_socket: unknown, error: Error & { code: string }) { errors.push(error.code) },
    })
    const served = await serve(t, kind, [
      { path: '/plugin', options: route({}) },
      { path: '/quick', options: route({ closeTimeout: 100 }) },
    ], { adapter: { closeTimeout: 500 } })
    const timing = async (path: string): Promise<number> => {
      const raw = await RawClient.open(served.port, { path })
      t.teardown(() => raw.destroy())
      t.same(await raw.nextClose(), { code: 1000, reason: '' }, `${path}: the server's close frame`)
      const started = Date.now()
      await raw.closed
      return Date.now() - started
    }
    const [plugin, quick] = await Promise.all([timing('/plugin'), timing('/quick')])
    t.ok(quick >= 80 && quick < 400, `the route's closeTimeout (100 ms): dropped after ${quick} ms`)
    t.ok(plugin >= 450 && plugin < 1000, `the plugin-wide closeTimeout (500 ms): dropped after ${plugin} ms`)
    t.same(errors, ['WS_ERR_CLOSE_TIMEOUT', 'WS_ERR_CLOSE_TIMEOUT'], 'both reported WS_ERR_CLOSE_TIMEOUT')
  })

  t.test(`${kind}: directReads on by default, set plugin-wide, overridden per route`, async t => {
    // The plugin-wide option, then what each route ends up with: /inherit sets nothing, /off and /on their own.
    const cases = [
      [{}, { '/inherit': true, '/off': false, '/on': true }],
      [{ directReads: true }, { '/inherit': true, '/off': false, '/on': true }],
      [{ directReads: false }, { '/inherit': false, '/off': false, '/on': true }],
    ] as const
    for (const [adapter, expected] of cases) {
      const seen: Record<string, boolean> = {}
      const route = (path: string, extra: Record<string, unknown>): { path: string, options: Record<string, unknown> } => ({
        path,
        options: {
          ...extra,
          message (socket: { readingDirectly: boolean, send (data: unknown): void }, data: unknown) {
            seen[path] = socket.readingDirectly
            socket.send(data)
          },
        },
      })
      const served = await serve(t, kind, [route('/inherit', {}), route('/off', { directReads: false }), route('/on', { directReads: true })], { adapter })
      for (const path of Object.keys(expected)) {
        const raw = await RawClient.open(served.port, { path })
        t.teardown(() => raw.destroy())
        raw.send(Op.BINARY, Buffer.alloc(100_000, 7))
        t.ok((await raw.nextFrame()).payload.equals(Buffer.alloc(100_000, 7)), `${JSON.stringify(adapter)} ${path}: the echo is intact`)
      }
      t.same(seen, expected, `plugin-wide ${JSON.stringify(adapter)}`)
    }
  })

  t.test(`${kind}: handshakeTimeout: a hook that hangs gets the client a 503, and no upgrade ever`, async t => {
    const opens: string[] = []
    let hookDone = false
    const served = await serve(t, kind, [{
      path: '/hang',
      options: { open () { opens.push('open') } },
      before: async () => {
        await delay(600)
        hookDone = true
      },
    }], { adapter: { handshakeTimeout: 150 } })
    const started = Date.now()
    const raw = await RawClient.connect(served.port)
    t.teardown(() => raw.destroy())
    raw.write(upgradeRequest({ path: '/hang' }))
    const head = await raw.head()
    const elapsed = Date.now() - started
    t.equal(head.status, 503, '503 Service Unavailable')
    t.equal(head.headers.connection, 'close', 'Connection: close')
    t.ok(elapsed >= 140 && elapsed < 500, `at the deadline (${elapsed} ms for 150)`)
    await raw.closed
    t.pass('and the socket is closed')
    await until(() => hookDone, 'the hook to finish')
    await delay(50)
    t.same(opens, [], 'the hook finishing later upgrades nothing')
    t.equal(raw.raw.toString('latin1').match(/HTTP\/1\.1/g)?.length, 1, 'one response only')
  })

  t.test(`${kind}: handshakeTimeout per route, shorter or longer than the plugin-wide one`, async t => {
    const opens: string[] = []
    // Hooks that outlast the deadline that should apply, and end well within
    // the one that should not: which deadline applied shows in the status,
    // and the answers come in the order of the deadlines, far apart.
    const served = await serve(t, kind, [
      { path: '/short', options: { handshakeTimeout: 100, open () { opens.push('short') } }, before: () => delay(500) },
      { path: '/long', options: { handshakeTimeout: 2000, open () { opens.push('long') } }, before: () => delay(1000) },
      { path: '/plugin', options: { open () { opens.push('plugin') } }, before: () => delay(1000) },
    ], { adapter: { handshakeTimeout: 600 } })
    // The order the answers came in: the three requests start together.
    const answered: string[] = []
    const request = async (path: string): Promise<{ status: number, elapsed: number }> => {
      const started = Date.now()
      const { client, head } = await RawClient.request(served.port, { path })
      t.teardown(() => client.destroy())
      answered.push(path)
      return { status: head.status, elapsed: Date.now() - started }
    }
    const [short, long, plugin] = await Promise.all([request('/short'), request('/long'), request('/plugin')])
    t.equal(short.status, 503, `the route's 100 ms: 503 after ${short.elapsed} ms (under the plugin-wide 600 ms its 500 ms hook would pass)`)
    t.ok(short.elapsed >= 90, `not before the route's deadline (${short.elapsed} ms)`)
    t.equal(long.status, 101, 'the route\'s 2000 ms: a 1000 ms hook is fine (the plugin-wide 600 ms would refuse it)')
    t.equal(plugin.status, 503, `the plugin-wide 600 ms: 503 after ${plugin.elapsed} ms`)
    t.ok(plugin.elapsed >= 590, `not before the plugin-wide deadline (${plugin.elapsed} ms)`)
    t.same(answered, ['/short', '/plugin', '/long'], 'the route\'s 503 first, well before the plugin-wide one, then the 101 once its hook ended')
    await until(() => opens.length > 0, 'the long route\'s open')
    await delay(200)
    t.same(opens, ['long'], 'only the route that answered in time opened')
  })

  t.test(`${kind}: a hook that fails before the deadline gets its own answer, and nothing more`, async t => {
    const served = await serve(t, kind, [{
      path: '/fail',
      options: {},
      before: async () => { throw new Error('auth backend down') },
    }], { adapter: { handshakeTimeout: 100 } })
    const raw = await RawClient.connect(served.port)
    t.teardown(() => raw.destroy())
    raw.write(upgradeRequest({ path: '/fail' }))
    t.equal((await raw.head()).status, 500, 'the framework\'s 500')
    await delay(200)
    t.equal(raw.raw.toString('latin1').match(/HTTP\/1\.1/g)?.length, 1, 'no 503 after it')
  })

  t.test(`${kind}: half a request head: Node's headersTimeout answers 408 and closes`, async t => {
    const served = await serve(t, kind, [{ path: '/a', options: {} }], {
      http: { headersTimeout: 300, connectionsCheckingInterval: 50 },
    })
    const socket = net.connect(served.port, '127.0.0.1')
    t.teardown(() => { socket.destroy() })
    const chunks: Buffer[] = []
    socket.on('data', chunk => chunks.push(chunk))
    socket.on('error', () => {})
    await new Promise(resolve => socket.once('connect', resolve))
    const started = Date.now()
    socket.write('GET /a HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n')
    await new Promise(resolve => socket.once('close', resolve))
    const elapsed = Date.now() - started
    t.match(Buffer.concat(chunks).toString('latin1'), /^HTTP\/1\.1 408 /, '408 Request Timeout')
    t.ok(elapsed >= 250 && elapsed < 1500, `closed after ${elapsed} ms (headersTimeout 300)`)
  })
}

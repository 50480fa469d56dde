/**
 * SocketRegistry: the open sockets of one plugin instance, and the graceful
 * shutdown that sends them 1001, waits for the closing handshakes, and
 * terminates whatever did not answer.
 */
import http from 'node:http'
import t from 'tap'
import { SocketRegistry } from '../../lib/core/registry.js'
import { RouteRunner } from '../../lib/core/route.js'
import type { RouteSocket } from '../../lib/core/socket.js'
import { beginUpgrade, kUpgrade, type UpgradeRequest } from '../../lib/core/upgrade.js'
import { ReadyState } from '../../lib/engine/connection.js'
import { RawClient, openWs, portOf, wsClosed, closeWs } from '../interop/helpers.js'

/** What the route does when a socket is gone: it leaves, then its (synchronous) close handler has run. */
function leaveAndClose (registry: SocketRegistry, socket: unknown): void {
  registry.leave(socket as RouteSocket)
  registry.closed(undefined)
}

/** A stand-in with the three members the registry uses. */
class FakeSocket {
  readyState: number = ReadyState.OPEN
  closes: Array<[number | undefined, string | undefined]> = []
  terminated = 0
  constructor (private readonly registry: SocketRegistry, private readonly answer: 'sync' | 'async' | 'never') {}
  close (code?: number, reason?: string): void {
    this.closes.push([code, reason])
    this.readyState = ReadyState.CLOSING
    if (this.answer === 'sync') this.gone()
    else if (this.answer === 'async') setImmediate(() => this.gone())
  }

  terminate (): void {
    this.terminated++
    this.gone()
  }

  gone (): void {
    this.readyState = ReadyState.CLOSED
    leaveAndClose(this.registry, this)
  }
}

function fake (registry: SocketRegistry, answer: 'sync' | 'async' | 'never' = 'async'): FakeSocket {
  const socket = new FakeSocket(registry, answer)
  registry.add(socket as unknown as RouteSocket)
  return socket
}

t.test('add, leave, size and iteration', async t => {
  const registry = new SocketRegistry()
  t.equal(registry.size, 0)
  const a = fake(registry)
  const b = fake(registry)
  t.equal(registry.size, 2)
  t.same([...registry], [a, b], 'iterates its sockets')
  registry.add(a as unknown as RouteSocket)
  t.equal(registry.size, 2, 'adding twice keeps one entry')
  leaveAndClose(registry, a)
  t.same([...registry], [b])
  registry.leave(a as unknown as RouteSocket)
  t.equal(registry.size, 1, 'leaving twice is harmless')
  leaveAndClose(registry, b)
  const started = Date.now()
  await registry.closeAll('bye', 60_000)
  t.ok(Date.now() - started < 60_000, 'and leaves no close pending: closeAll has nothing to wait for')
})

t.test('sockets leave from any place and the others stay, each once', async t => {
  const registry = new SocketRegistry()
  const sockets = Array.from({ length: 8 }, () => fake(registry))
  // First, last, middle, then the one that took the first's place.
  const gone = [sockets[0], sockets[7], sockets[3], sockets[6]]
  for (const socket of gone) leaveAndClose(registry, socket)
  const left = sockets.filter(socket => !gone.includes(socket))
  t.equal(registry.size, left.length)
  t.same(new Set(registry), new Set(left))
  t.equal([...registry].length, left.length, 'no socket twice')
  registry.add(sockets[0] as unknown as RouteSocket)
  t.same(new Set(registry), new Set([...left, sockets[0]]), 'a socket can come back')
  for (const socket of [...registry]) leaveAndClose(registry, socket)
  t.equal(registry.size, 0)
  t.same([...registry], [])
})

t.test('closeAll with no sockets resolves at once', async t => {
  const registry = new SocketRegistry()
  t.equal(registry.closing, false)
  await registry.closeAll('bye', 60_000)
  t.equal(registry.size, 0)
  t.equal(registry.closing, true, 'closing from then on, so upgrades in flight are refused')
})

t.test('closeAll sends 1001 with the reason to open sockets and waits for them', async t => {
  const registry = new SocketRegistry()
  const a = fake(registry)
  const b = fake(registry)
  const closing = fake(registry, 'never')
  closing.readyState = ReadyState.CLOSING
  // The closing one finishes on its own a little later.
  setImmediate(() => closing.gone())
  await registry.closeAll('going away', 60_000)
  t.same(a.closes, [[1001, 'going away']])
  t.same(b.closes, [[1001, 'going away']])
  t.same(closing.closes, [], 'a socket already closing is not sent another close')
  t.equal(a.terminated + b.terminated + closing.terminated, 0, 'nothing is terminated when all answer')
  t.equal(registry.size, 0)
})

t.test('closeAll resolves when every socket leaves synchronously', async t => {
  const registry = new SocketRegistry()
  const a = fake(registry, 'sync')
  const b = fake(registry, 'sync')
  await registry.closeAll('now', 60_000)
  t.equal(a.closes.length + b.closes.length, 2)
  t.equal(registry.size, 0)
})

t.test('closeAll terminates the sockets that do not answer within the timeout', async t => {
  const registry = new SocketRegistry()
  const polite = fake(registry, 'async')
  const silent = fake(registry, 'never')
  await registry.closeAll('bye', 50)
  t.equal(polite.terminated, 0)
  t.same(silent.closes, [[1001, 'bye']], 'the silent one was asked first')
  t.equal(silent.terminated, 1, 'then terminated')
  t.equal(registry.size, 0)
})

t.test('a socket that left is no longer listed, but closeAll waits for its close handler', async t => {
  const registry = new SocketRegistry()
  const socket = fake(registry, 'never')
  const steps: string[] = []
  registry.leave(socket as unknown as RouteSocket)
  t.equal(registry.size, 0, 'gone from the list at once')
  t.same([...registry], [])
  // Its close handler is async, and runs after an async open: both later.
  setTimeout(() => {
    registry.closed(new Promise<void>(resolve => setTimeout(() => {
      steps.push('close handler settled')
      resolve()
    }, 20)))
  }, 20)
  await registry.closeAll('bye', 60_000)
  steps.push('closeAll resolved')
  t.same(steps, ['close handler settled', 'closeAll resolved'])
  t.same(socket.closes, [], 'a socket that left is not sent a close')
  t.equal(socket.terminated, 0)
})

t.test('a synchronous close handler: closed() without a promise settles at once', async t => {
  const registry = new SocketRegistry()
  const socket = fake(registry, 'never')
  registry.leave(socket as unknown as RouteSocket)
  registry.closed(undefined)
  const started = Date.now()
  await registry.closeAll('bye', 60_000)
  t.ok(Date.now() - started < 60_000, 'nothing left to wait for')
})

t.test('closeAll waits for a close handler that never settles up to the timeout once, then reports it', async t => {
  const registry = new SocketRegistry()
  const socket = fake(registry, 'never')
  registry.leave(socket as unknown as RouteSocket)
  registry.closed(new Promise<void>(() => {}))
  const errors: Array<[unknown, string]> = []
  const started = Date.now()
  await registry.closeAll('bye', 250, undefined, (error, what) => errors.push([error, what]))
  const elapsed = Date.now() - started
  t.ok(elapsed >= 250, `waited for it (${elapsed} ms)`)
  t.ok(elapsed < 500, `one timeout, not two: no socket was left to terminate (${elapsed} ms)`)
  t.equal(errors.length, 1)
  t.equal(errors[0][1], 'close handlers did not settle')
  t.match((errors[0][0] as Error).message, /1 close handler\(s\) not settled within 250 ms/)
})

t.test('a preClose failure is reported as one', async t => {
  const registry = new SocketRegistry()
  const errors: string[] = []
  await registry.closeAll('bye', 100, () => { throw new Error('goodbye failed') }, (error, what) => errors.push(`${what}: ${(error as Error).message}`))
  t.same(errors, ['preClose failed: goodbye failed'])
})

t.test('after closeAll the registry works as before', async t => {
  const registry = new SocketRegistry()
  fake(registry)
  await registry.closeAll('first', 60_000)
  const later = fake(registry)
  leaveAndClose(registry, later)
  t.equal(registry.size, 0, 'a socket leaving after closeAll does not call a stale waiter')
  const again = fake(registry)
  await registry.closeAll('second', 60_000)
  t.same(again.closes, [[1001, 'second']])
})

t.test('with real connections: clients see 1001 and the reason; a silent one is dropped', async t => {
  const registry = new SocketRegistry()
  const closeCodes: number[] = []
  let allClosed!: () => void
  const bothClosed = new Promise<void>(resolve => { allClosed = resolve })
  const runner = new RouteRunner<http.IncomingMessage>({
    handlers: {
      close (_socket, code) {
        closeCodes.push(code)
        if (closeCodes.length === 2) allClosed()
      },
    },
    limits: {},
    registry,
    logger: () => ({ error () {}, warn () {}, debug () {} }),
  })
  const server = http.createServer()
  server.on('upgrade', (request: UpgradeRequest, socket, head) => {
    if (beginUpgrade(request, socket, head) !== undefined) runner.accept(request[kUpgrade]!, request)
  })
  server.listen(0, '127.0.0.1')
  await new Promise(resolve => server.once('listening', resolve))
  t.teardown(() => new Promise(resolve => server.close(resolve)))
  const port = portOf(server)

  const ws = await openWs(`ws://127.0.0.1:${port}/`)
  t.teardown(() => closeWs(ws))
  const wsClosedEvent = wsClosed(ws)
  // The raw client reads the close frame but never answers it.
  const raw = await RawClient.open(port)
  t.teardown(() => raw.destroy())
  t.equal(registry.size, 2)

  await registry.closeAll('maintenance', 200)
  t.same(await wsClosedEvent, { code: 1001, reason: 'maintenance' })
  t.same(await raw.nextClose(), { code: 1001, reason: 'maintenance' })
  await raw.closed
  t.pass('the silent client was disconnected')
  // A terminated socket leaves the registry when its TCP close is reported,
  // just after closeAll returns (the HTTP server's close waits for it).
  await bothClosed
  t.same(closeCodes.sort(), [1001, 1006], 'the close handlers saw the echo and the drop')
  t.equal(registry.size, 0)
})

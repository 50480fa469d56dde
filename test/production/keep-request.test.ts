/**
 * `keepRequest: false`, through both adapters: the request reaches `open`
 * (and stays readable while an async `open` runs), then the socket lets go
 * of it. Reading `socket.request` later throws a TypeError that says why,
 * which a handler turns into the usual 1011; error handlers get `undefined`
 * for it. The request is really let go: garbage collection takes it while
 * the connection stays open, which it never does with the default.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import { closeWs, nextMessage, openWs, wsClosed } from '../interop/helpers.js'
import { KINDS, delay, serve, until } from './servers.js'

// A collection on demand, to see whether anything still holds a request.
setFlagsFromString('--expose-gc')
const collectGarbage = runInNewContext('gc') as () => void
setFlagsFromString('--no-expose-gc')

type Coded = Error & { code: string, cause?: unknown }
interface Socket { request: { url: string }, send (data: string): void }

const urlOf = (request: unknown): string => (request as { url: string }).url

for (const kind of KINDS) {
  t.test(`${kind}: keepRequest: false: open has the request, later handlers do not`, async t => {
    const seen: string[] = []
    const served = await serve(t, kind, [{
      path: '/released',
      options: {
        keepRequest: false,
        open (socket: Socket, request: unknown) {
          seen.push(`open: ${urlOf(request)}, socket.request is it: ${socket.request === request}`)
        },
        message (socket: Socket) {
          try {
            socket.send(`still there: ${socket.request.url}`)
          } catch (error) {
            socket.send(`${(error as Error).name}: ${(error as Error).message}`)
          }
        },
      },
    }])
    const ws = await openWs(served.url('/released?who=ada'))
    t.teardown(() => closeWs(ws))
    ws.send('hello')
    const reply = (await nextMessage(ws)).data.toString()
    t.same(seen, ['open: /released?who=ada, socket.request is it: true'])
    t.match(reply, /^TypeError: wsroutes: socket\.request was let go after open \(the route has keepRequest: false\)/, 'a TypeError that says why')
  })

  t.test(`${kind}: keepRequest: false: an async open keeps the request until its promise settles`, async t => {
    const seen: string[] = []
    const served = await serve(t, kind, [{
      path: '/async',
      options: {
        keepRequest: false,
        async open (socket: Socket) {
          await delay(30)
          seen.push(`after await: ${socket.request.url}`)
        },
        message (socket: Socket) {
          let readable = true
          try { void socket.request } catch { readable = false }
          socket.send(`readable: ${readable}`)
        },
      },
    }])
    const ws = await openWs(served.url('/async'))
    t.teardown(() => closeWs(ws))
    ws.send('hello')
    t.equal((await nextMessage(ws)).data.toString(), 'readable: false', 'let go once open settled')
    t.same(seen, ['after await: /async'], 'still readable inside open, after its await')
  })

  t.test(`${kind}: keepRequest: false: a handler that reads it anyway fails as any handler does`, async t => {
    const reports: Array<{ by: string, code: string, cause: string, request: unknown }> = []
    const served = await serve(t, kind, [{
      path: '/reads',
      options: {
        keepRequest: false,
        message (socket: Socket) { socket.send(socket.request.url) },
        error (_socket: unknown, error: Coded) {
          reports.push({ by: 'error', code: error.code, cause: String((error.cause as Error).name), request: 'n/a' })
        },
      },
    }], {
      adapter: {
        errorHandler (error: Coded, _socket: unknown, request: unknown) {
          reports.push({ by: 'errorHandler', code: error.code, cause: String((error.cause as Error).name), request })
        },
      },
    })
    const ws = await openWs(served.url('/reads'))
    const closed = wsClosed(ws)
    ws.send('hello')
    t.equal((await closed).code, 1011, '1011, as for any handler that throws')
    await until(() => reports.length === 2, 'both error handlers')
    t.same(reports, [
      { by: 'error', code: 'WS_ERR_HANDLER_FAILED', cause: 'TypeError', request: 'n/a' },
      { by: 'errorHandler', code: 'WS_ERR_HANDLER_FAILED', cause: 'TypeError', request: undefined },
    ], 'the route\'s error handler, then the adapter\'s, which gets undefined for the request')
    await served.logged(record => record.level === 'error' && /message handler failed/.test(record.message))
    t.pass('logged through the route\'s logger, which outlives the request')
  })

  t.test(`${kind}: the default keeps the request; plugin-wide false, a route's own true wins`, async t => {
    const handlers = {
      message (socket: Socket) {
        let url = 'gone'
        try { url = socket.request.url } catch {}
        socket.send(url)
      },
    }
    const byDefault = await serve(t, kind, [{ path: '/default', options: handlers }])
    const released = await serve(t, kind, [
      { path: '/plugin-wide', options: handlers },
      { path: '/own', options: { ...handlers, keepRequest: true } },
    ], { adapter: { keepRequest: false } })
    const answer = async (url: string): Promise<string> => {
      const ws = await openWs(url)
      t.teardown(() => closeWs(ws))
      ws.send('?')
      return (await nextMessage(ws)).data.toString()
    }
    t.equal(await answer(byDefault.url('/default')), '/default', 'kept by default')
    t.equal(await answer(released.url('/plugin-wide')), 'gone', 'plugin-wide keepRequest: false')
    t.equal(await answer(released.url('/own')), '/own', 'the route\'s keepRequest: true wins')
  })

  t.test(`${kind}: keepRequest: false lets the request be collected while the connection stays open`, async t => {
    const refs: Record<string, Array<WeakRef<object>>> = { kept: [], released: [] }
    const route = (into: Array<WeakRef<object>>, keepRequest: boolean): Record<string, unknown> => ({
      keepRequest,
      open (_socket: unknown, request: object) { into.push(new WeakRef(request)) },
      message (socket: Socket, data: string) { socket.send(data) },
    })
    const served = await serve(t, kind, [
      { path: '/kept', options: route(refs.kept, true) },
      { path: '/released', options: route(refs.released, false) },
    ])
    const clients = []
    for (const path of ['/kept', '/released']) {
      for (let i = 0; i < 5; i++) {
        const ws = await openWs(served.url(path))
        t.teardown(() => closeWs(ws))
        clients.push(ws)
      }
    }
    // Every connection still works, so nothing was torn down to free memory.
    for (const ws of clients) {
      ws.send('ping')
      t.equal((await nextMessage(ws)).data.toString(), 'ping')
    }
    for (let i = 0; i < 3; i++) {
      collectGarbage()
      await delay(10)
    }
    t.equal(refs.released.filter(ref => ref.deref() !== undefined).length, 0, 'every released request was collected')
    t.equal(refs.kept.filter(ref => ref.deref() !== undefined).length, 5, 'every kept request is still there')
  })
}

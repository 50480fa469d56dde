/**
 * One error channel, through both adapters: every error on a socket reaches
 * the route's `error` handler first, then the route's `wsErrorHandler` if it
 * has one, else the plugin's (adapter's) `errorHandler`, as
 * `(error, socket, request)`. Handler failures, protocol errors, invalid
 * JSON messages and network errors are told apart by `error.code`.
 */
import t from 'tap'
import { RawClient, nextMessage, openWs, wsClosed } from '../interop/helpers.js'
import { KINDS, serve, until } from './servers.js'

interface Report { by: string, code: string, path?: string, cause?: string }

type Coded = Error & { code: string, cause?: unknown }

/** What caused it: a handler's message, or the kind of a parser's error. */
function causeOf (error: Coded): string | undefined {
  const cause = error.cause as Error | undefined
  return cause instanceof SyntaxError ? 'SyntaxError' : cause?.message
}

for (const kind of KINDS) {
  t.test(`${kind}: every kind of error reaches the handlers with its code`, async t => {
    const reports: Report[] = []
    const pathOf = (request: unknown): string => String((request as { url: string }).url)
    const routeError = (socket: { request: unknown }, error: Coded): void => {
      reports.push({ by: 'error', code: error.code, path: pathOf(socket.request) })
    }
    const served = await serve(t, kind, [
      {
        path: '/shared',
        options: {
          error: routeError,
          message (_socket: unknown, data: string) { if (data === 'throw') throw new Error('handler bug') },
        },
      },
      {
        path: '/own',
        options: {
          error: routeError,
          wsErrorHandler (error: Coded, socket: { request: unknown }, request: unknown) {
            t.equal(socket.request, request, 'wsErrorHandler: the socket\'s request is the third argument')
            reports.push({ by: 'wsErrorHandler', code: error.code, path: pathOf(request), cause: causeOf(error) })
          },
          message (_socket: unknown, data: string) { if (data === 'throw') throw new Error('handler bug') },
        },
      },
      {
        path: '/json',
        options: {
          error: routeError,
          schema: { message: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } },
          invalidMessage: 'reply',
          message () {},
        },
      },
    ], {
      adapter: {
        errorHandler (error: Coded, socket: { request: unknown }, request: unknown) {
          t.equal(socket.request, request, 'errorHandler: the socket\'s request is the third argument')
          reports.push({ by: 'errorHandler', code: error.code, path: pathOf(request), cause: causeOf(error) })
        },
      },
    })
    const take = async (count: number): Promise<Report[]> => {
      await until(() => reports.length >= count, `${count} reports`)
      return reports.splice(0, count)
    }

    // A handler that throws: WS_ERR_HANDLER_FAILED with the cause, 1011.
    for (const path of ['/shared', '/own']) {
      const ws = await openWs(served.url(path))
      const closed = wsClosed(ws)
      ws.send('throw')
      t.equal((await closed).code, 1011, `${path}: 1011`)
      t.same(await take(2), [
        { by: 'error', code: 'WS_ERR_HANDLER_FAILED', path },
        { by: path === '/own' ? 'wsErrorHandler' : 'errorHandler', code: 'WS_ERR_HANDLER_FAILED', path, cause: 'handler bug' },
      ], `${path}: a handler failure, to the route's error handler, then to ${path === '/own' ? 'the route\'s wsErrorHandler only' : 'the plugin\'s errorHandler'}`)
    }

    // A protocol error: an unmasked frame is WS_ERR_EXPECTED_MASK, 1002.
    const raw = await RawClient.open(served.port, { path: '/own' })
    t.teardown(() => raw.destroy())
    raw.write(Buffer.from([0x81, 0x02, 0x68, 0x69]))
    t.same(await raw.nextClose(), { code: 1002, reason: '' }, 'an unmasked frame: 1002')
    t.same(await take(2), [
      { by: 'error', code: 'WS_ERR_EXPECTED_MASK', path: '/own' },
      { by: 'wsErrorHandler', code: 'WS_ERR_EXPECTED_MASK', path: '/own', cause: undefined },
    ], 'a protocol error, with its WS_ERR_* code')

    // Invalid JSON messages: reported whatever the policy (here `reply`, the connection stays).
    const json = await openWs(served.url('/json'))
    t.teardown(() => json.terminate())
    json.send('{not json')
    json.send(JSON.stringify({ n: 'one' }))
    json.send(Buffer.from([1, 2, 3]))
    t.same(await take(6), [
      { by: 'error', code: 'WS_ERR_INVALID_JSON', path: '/json' },
      { by: 'errorHandler', code: 'WS_ERR_INVALID_JSON', path: '/json', cause: 'SyntaxError' },
      { by: 'error', code: 'WS_ERR_INVALID_MESSAGE', path: '/json' },
      { by: 'errorHandler', code: 'WS_ERR_INVALID_MESSAGE', path: '/json', cause: undefined },
      { by: 'error', code: 'WS_ERR_BINARY_NOT_ALLOWED', path: '/json' },
      { by: 'errorHandler', code: 'WS_ERR_BINARY_NOT_ALLOWED', path: '/json', cause: undefined },
    ], 'invalid messages, each with its code')
    const envelope = await nextMessage(json)
    t.equal(JSON.parse(envelope.data.toString()).error.code, 'WS_ERR_INVALID_JSON', 'the reply policy still answered')

    // A network error: the peer resets the connection: Node's ECONNRESET.
    const reset = await RawClient.open(served.port, { path: '/shared' })
    reset.socket.resetAndDestroy()
    t.same(await take(2), [
      { by: 'error', code: 'ECONNRESET', path: '/shared' },
      { by: 'errorHandler', code: 'ECONNRESET', path: '/shared', cause: undefined },
    ], 'a network error keeps Node\'s code')
    const line = await served.logged(record => record.message === 'websocket network error')
    t.equal(line.level, 'debug', 'and is logged at debug')
    t.notOk(served.logs.some(record => record.level === 'error' && /ECONNRESET/.test(String((record.err as { code?: string } | undefined)?.code))), 'not as an error')
  })
}

/**
 * JSON-schema messages on Fastify with a real client (`ws`): inbound
 * messages parsed safely and validated with the instance's validator
 * compiler, routed by type, the invalid-message policies, `send()` validated
 * and serialized with the instance's compilers, handshake schemas still run
 * before the 101.
 */
import t from 'tap'
import { Writable } from 'node:stream'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyServerOptions, type FastifySchemaCompiler } from 'fastify'
import { Type, TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import WebSocket from 'ws'
import { wsroutes, type WsPluginOptions } from '../../lib/index.js'
import { refusedWs } from '../interop/helpers.js'

interface Teardown { teardown: (fn: () => unknown) => void }

/** Collects pino's JSON lines. */
class Logs extends Writable {
  lines: Array<Record<string, any>> = []
  override _write (chunk: Buffer, _encoding: string, callback: () => void): void {
    for (const line of chunk.toString().split('\n')) if (line !== '') this.lines.push(JSON.parse(line))
    callback()
  }
}

interface Built { app: FastifyInstance<any, any, any, any, TypeBoxTypeProvider>, url: string, logs: Logs }

async function build (
  t: Teardown,
  routes: (app: FastifyInstance<any, any, any, any, TypeBoxTypeProvider>) => void,
  options: WsPluginOptions = {},
  fastifyOptions: FastifyServerOptions = {},
): Promise<Built> {
  const logs = new Logs()
  const app = Fastify({ logger: { level: 'info', stream: logs }, ...fastifyOptions }).withTypeProvider<TypeBoxTypeProvider>()
  await app.register(wsroutes, options)
  routes(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return { app, url: `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}`, logs }
}

/** A connected client whose messages queue up for `next()`; closed at teardown. */
class Client {
  readonly ws: WebSocket
  private readonly queue: Array<{ data: string, binary: boolean }> = []
  private readonly waiters: Array<() => void> = []
  readonly closed: Promise<{ code: number, reason: string }>

  constructor (ws: WebSocket) {
    this.ws = ws
    ws.on('message', (data, binary) => {
      this.queue.push({ data: data.toString(), binary })
      this.waiters.shift()?.()
    })
    this.closed = new Promise(resolve => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })))
  }

  static async open (t: Teardown, url: string): Promise<Client> {
    const ws = new WebSocket(url)
    t.teardown(() => { if (ws.readyState !== WebSocket.CLOSED) ws.terminate() })
    // Listening before 'open': a message sent by the server's `open` can arrive with the 101.
    const client = new Client(ws)
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    return client
  }

  send (data: unknown): void {
    this.ws.send(typeof data === 'string' || Buffer.isBuffer(data) ? data : JSON.stringify(data))
  }

  async next (): Promise<string> {
    return (await this.frame()).data
  }

  /** The next message with its kind. */
  async frame (): Promise<{ data: string, binary: boolean }> {
    const deadline = Date.now() + 5000
    while (this.queue.length === 0) {
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error('closed before the next message')
      if (Date.now() > deadline) throw new Error('no message within 5 s')
      await Promise.race([
        new Promise<void>(resolve => this.waiters.push(resolve)),
        this.closed,
        new Promise(resolve => setTimeout(resolve, 100)),
      ])
    }
    return this.queue.shift()!
  }

  async json (): Promise<any> {
    return JSON.parse(await this.next())
  }
}


const Chat = Type.Union([
  Type.Object({ type: Type.Literal('join'), name: Type.String({ maxLength: 32 }) }),
  Type.Object({ type: Type.Literal('say'), text: Type.String({ maxLength: 500 }) }),
])
const Said = Type.Object({ type: Type.Literal('said'), from: Type.String(), text: Type.String() })

function chatRoute (app: Built['app'], path = '/chat/:room', extra: Record<string, unknown> = {}): void {
  app.ws(path, {
    schema: {
      params: Type.Object({ room: Type.String({ pattern: '^[a-z]+$' }) }),
      message: Chat,
      send: Said,
    },
    message (socket, msg) {
      const from = socket.request.params.room
      socket.send({ type: 'said', from, text: msg.type === 'say' ? msg.text : `${msg.name} joined` })
    },
    ...extra,
  })
}

const envelope = (code: string, message: string, key = 'type'): unknown => ({ [key]: 'error', error: { code, message } })

// ----------------------------------------------------------------- basics

t.test('valid messages reach the handler typed and validated; send() serializes', async t => {
  const { url } = await build(t, app => chatRoute(app))
  const client = await Client.open(t, `${url}/chat/lobby`)
  client.send({ type: 'join', name: 'ann' })
  t.same(await client.json(), { type: 'said', from: 'lobby', text: 'ann joined' })
  client.send({ type: 'say', text: 'hello' })
  t.equal(await client.next(), '{"type":"said","from":"lobby","text":"hello"}')
})

t.test('handshake schemas still answer with HTTP before the 101', async t => {
  const { url } = await build(t, app => chatRoute(app))
  t.equal((await refusedWs(`${url}/chat/NOT-LOWER`)).status, 400)
})

t.test('a route without schemas keeps raw strings, Buffers and raw send', async t => {
  const { url } = await build(t, app => {
    app.ws('/raw', {
      message (socket, data, isBinary) {
        socket.send(typeof data === 'string' ? `text:${data}` : Buffer.concat([Buffer.from('bin:'), data]), { binary: isBinary })
      },
    })
  })
  const client = await Client.open(t, `${url}/raw`)
  client.send('{not json')
  t.equal(await client.next(), 'text:{not json')
  client.send(Buffer.from([1, 2]))
  t.equal(await client.next(), 'bin:\u0001\u0002')
})

// ----------------------------------------------------------------- policies

t.test('close policy (default): 1007 for bad JSON', async t => {
  let serverClosed!: (code: number) => void
  const serverCode = new Promise<number>(resolve => { serverClosed = resolve })
  const { url } = await build(t, app => chatRoute(app, '/chat/:room', { close (_socket: unknown, code: number) { serverClosed(code) } }))
  const client = await Client.open(t, `${url}/chat/a`)
  client.send('{"type": "join", ')
  t.same(await client.closed, { code: 1007, reason: 'message is not valid JSON' })
  t.equal(await serverCode, 1007, 'the server\'s close handler saw it')
})

t.test('close policy: 1008 for a schema mismatch', async t => {
  const { url } = await build(t, app => chatRoute(app))
  const client = await Client.open(t, `${url}/chat/a`)
  client.send({ type: 'say', text: 'x'.repeat(501) })
  t.same(await client.closed, { code: 1008, reason: 'message does not match the schema' })
})

t.test('close policy: 1003 for a binary message on a JSON route', async t => {
  const { url } = await build(t, app => chatRoute(app))
  const client = await Client.open(t, `${url}/chat/a`)
  client.send(Buffer.from(JSON.stringify({ type: 'join', name: 'a' })))
  t.same(await client.closed, { code: 1003, reason: 'binary messages are not accepted' })
})

t.test('reply policy: an error envelope, the connection stays open', async t => {
  const { url } = await build(t, app => chatRoute(app, '/chat/:room', { invalidMessage: 'reply' }))
  const client = await Client.open(t, `${url}/chat/a`)
  client.send('nope')
  t.same(await client.json(), envelope('WS_ERR_INVALID_JSON', 'message is not valid JSON'))
  client.send({ type: 'join', name: 'n'.repeat(33) })
  const reply = await client.next()
  t.same(JSON.parse(reply), envelope('WS_ERR_INVALID_MESSAGE', 'message does not match the schema'))
  t.notMatch(reply, /nnnn|maxLength|instancePath/, 'neither the payload nor the validator\'s words go back')
  client.send(Buffer.from('{}'))
  t.same(await client.json(), envelope('WS_ERR_BINARY_NOT_ALLOWED', 'binary messages are not accepted'))
  client.send({ type: 'say', text: 'still here' })
  t.same(await client.json(), { type: 'said', from: 'a', text: 'still here' })
})

t.test('ignore policy: dropped and counted in socket.invalidMessages', async t => {
  const { url } = await build(t, app => {
    app.ws('/count', {
      schema: { message: Type.Object({ n: Type.Integer() }) },
      invalidMessage: 'ignore',
      message (socket, msg) { socket.send(`${msg.n}:${socket.invalidMessages}`) },
    })
  })
  const client = await Client.open(t, `${url}/count`)
  client.send('{')
  client.send({ n: 'x' })
  client.send(Buffer.from('1'))
  client.send({ n: 1 })
  t.equal(await client.next(), '1:3')
})

t.test('a hook decides: it gets the error with the validator\'s errors and the raw message', async t => {
  const seen: Array<{ code: string, validation: unknown, raw: string | Buffer, count: number }> = []
  const { url } = await build(t, app => chatRoute(app, '/chat/:room', {
    invalidMessage (socket: { invalidMessages: number, sendRaw: (s: string) => void }, error: { code: string, validation?: unknown }, raw: string | Buffer) {
      seen.push({ code: error.code, validation: error.validation, raw, count: socket.invalidMessages })
      if (error.code === 'WS_ERR_INVALID_JSON') {
        socket.sendRaw('custom answer')
        return undefined
      }
      return typeof raw === 'string' && raw.includes('bye') ? 'close' : 'reply'
    },
  }))
  const client = await Client.open(t, `${url}/chat/a`)
  client.send('{')
  t.equal(await client.next(), 'custom answer')
  client.send({ type: 'say' })
  t.same(await client.json(), envelope('WS_ERR_INVALID_MESSAGE', 'message does not match the schema'))
  client.send({ type: 'bye' })
  t.equal((await client.closed).code, 1008)
  t.match(seen, [
    { code: 'WS_ERR_INVALID_JSON', validation: undefined, raw: '{', count: 1 },
    { code: 'WS_ERR_INVALID_MESSAGE', validation: Array, raw: '{"type":"say"}', count: 2 },
    { code: 'WS_ERR_INVALID_MESSAGE', raw: '{"type":"bye"}', count: 3 },
  ])
})

t.test('a hook that throws fails the socket with 1011', async t => {
  const { url, logs } = await build(t, app => chatRoute(app, '/chat/:room', { invalidMessage () { throw new Error('hook bug') } }))
  const client = await Client.open(t, `${url}/chat/a`)
  client.send('{')
  t.equal((await client.closed).code, 1011)
  t.ok(logs.lines.some(line => line.level === 50 && line.msg === 'websocket invalidMessage handler failed'))
})

t.test('the plugin-wide policy applies; a route\'s own wins', async t => {
  const { url } = await build(t, app => {
    chatRoute(app, '/wide/:room')
    chatRoute(app, '/own/:room', { invalidMessage: 'close' })
  }, { invalidMessage: 'reply' })
  const wide = await Client.open(t, `${url}/wide/a`)
  wide.send('{')
  t.same(await wide.json(), envelope('WS_ERR_INVALID_JSON', 'message is not valid JSON'))
  const own = await Client.open(t, `${url}/own/a`)
  own.send('{')
  t.equal((await own.closed).code, 1007)
})

t.test('refused messages are logged at info with the validator\'s errors, not the payload', async t => {
  const { url, logs } = await build(t, app => chatRoute(app, '/chat/:room', { invalidMessage: 'reply' }))
  const client = await Client.open(t, `${url}/chat/a`)
  client.send({ type: 'join', name: 'SECRET'.repeat(10) })
  await client.next()
  const line = logs.lines.find(line => line.msg === 'websocket message refused: WS_ERR_INVALID_MESSAGE')
  t.ok(line)
  t.equal(line?.level, 30)
  t.equal(line?.err.code, 'WS_ERR_INVALID_MESSAGE')
  t.ok(Array.isArray(line?.err.validation) && line.err.validation.length > 0, 'the validator errors are in the log')
  t.notMatch(JSON.stringify(line), /SECRET/)
  t.ok(line?.reqId, 'logged through request.log')
})

// ------------------------------------------------------- hostile payloads

t.test('oversized strings, extra properties, deep nesting', async t => {
  const got: unknown[] = []
  const { url } = await build(t, app => {
    app.ws('/strict', {
      schema: {
        message: Type.Object({ type: Type.Literal('say'), text: Type.String({ maxLength: 10 }) }, { additionalProperties: false }),
      },
      invalidMessage: 'reply',
      message (socket, msg) {
        got.push(msg)
        socket.send('ok')
      },
    })
  })
  const client = await Client.open(t, `${url}/strict`)
  client.send({ type: 'say', text: 'x'.repeat(11) })
  t.match(await client.json(), { error: { code: 'WS_ERR_INVALID_MESSAGE' } }, 'maxLength')
  client.send({ type: 'say', text: 'hi', isAdmin: true })
  t.equal(await client.next(), 'ok', 'extra properties: Fastify\'s default Ajv removes them')
  t.same(got, [{ type: 'say', text: 'hi' }])
  t.notOk(Object.hasOwn(got[0] as object, 'isAdmin'))
  client.send('['.repeat(200_000) + ']'.repeat(200_000))
  t.match(await client.json(), { error: { code: 'WS_ERR_INVALID_MESSAGE' } }, 'deep arrays')
  client.send('{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000))
  t.match(await client.json(), { error: { code: 'WS_ERR_INVALID_MESSAGE' } }, 'deep objects')
  client.send({ type: 'say', text: 'alive' })
  t.equal(await client.next(), 'ok')
})

t.test('extra properties are refused when the instance\'s Ajv does not remove them', async t => {
  const { url } = await build(t, app => {
    app.ws('/strict', {
      schema: { message: Type.Object({ a: Type.Integer() }, { additionalProperties: false }) },
      invalidMessage: 'reply',
      message (socket) { socket.send('ok') },
    })
  }, {}, { ajv: { customOptions: { removeAdditional: false } } })
  const client = await Client.open(t, `${url}/strict`)
  client.send({ a: 1, b: 2 })
  t.match(await client.json(), { error: { code: 'WS_ERR_INVALID_MESSAGE' } })
  client.send({ a: 1 })
  t.equal(await client.next(), 'ok')
})

t.test('__proto__ and constructor.prototype payloads are refused and poison nothing', async t => {
  const got: unknown[] = []
  const { url } = await build(t, app => {
    app.ws('/any', {
      schema: { message: Type.Object({}, { additionalProperties: true }) },
      invalidMessage: 'reply',
      message (socket, msg) {
        got.push(msg)
        socket.send(JSON.stringify({ polluted: ({} as Record<string, unknown>).polluted ?? null, merged: Object.assign({}, msg as object) }))
      },
    })
  })
  const client = await Client.open(t, `${url}/any`)
  for (const payload of [
    '{"__proto__": {"polluted": "yes"}}',
    '{"nested": {"__proto__": {"polluted": "yes"}}}',
    '{"\\u005f\\u005fproto__": {"polluted": "yes"}}',
    '{"constructor": {"prototype": {"polluted": "yes"}}}',
  ]) {
    client.send(payload)
    t.same(await client.json(), envelope('WS_ERR_INVALID_JSON', 'message is not valid JSON'), payload)
  }
  client.send('{"ok": true}')
  t.same(await client.json(), { polluted: null, merged: { ok: true } })
  t.same(got, [{ ok: true }])
  t.equal(({} as Record<string, unknown>).polluted, undefined)
})

t.test('onProtoPoisoning: remove strips the key, as the JSON body parser does', async t => {
  const { url } = await build(t, app => {
    app.ws('/any', {
      schema: { message: Type.Object({}, { additionalProperties: true }) },
      message (socket, msg) {
        socket.send(JSON.stringify({ own: Object.hasOwn(msg as object, '__proto__'), keys: Object.keys(msg as object), proto: Object.getPrototypeOf(msg) === Object.prototype }))
      },
    })
  }, {}, { onProtoPoisoning: 'remove' })
  const client = await Client.open(t, `${url}/any`)
  client.send('{"a": 1, "__proto__": {"polluted": "yes"}}')
  t.same(await client.json(), { own: false, keys: ['a'], proto: true })
})

// ------------------------------------------------------------ messages

t.test('messages: each type to its own handler and schema; unknown types refused', async t => {
  const calls: string[] = []
  const { url } = await build(t, app => {
    app.ws('/rpc', {
      schema: { send: Type.Object({ ok: Type.Boolean(), type: Type.String() }) },
      invalidMessage: 'reply',
      messages: {
        join: {
          schema: Type.Object({ type: Type.Literal('join'), name: Type.String({ minLength: 1 }) }),
          handler (socket, msg) {
            calls.push(`join ${msg.name}`)
            socket.send({ ok: true, type: 'joined' })
          },
        },
        leave: {
          schema: Type.Object({ type: Type.Literal('leave') }),
          async handler (socket) {
            calls.push('leave')
            socket.send({ ok: true, type: 'left' })
          },
        },
      },
    })
  })
  const client = await Client.open(t, `${url}/rpc`)
  client.send({ type: 'join', name: 'a' })
  t.same(await client.json(), { ok: true, type: 'joined' })
  client.send({ type: 'leave' })
  t.same(await client.json(), { ok: true, type: 'left' })
  client.send({ type: 'join', name: '' })
  t.same(await client.json(), envelope('WS_ERR_INVALID_MESSAGE', 'message does not match the schema'))
  for (const unknown of [{ type: 'dance' }, { name: 'no type' }, { type: 'constructor' }, { type: 'hasOwnProperty' }, [1], 'str']) {
    client.send(JSON.stringify(unknown))
    t.same(await client.json(), envelope('WS_ERR_UNKNOWN_MESSAGE_TYPE', 'unknown message type'), JSON.stringify(unknown))
  }
  t.same(calls, ['join a', 'leave'])
})

t.test('messages: an unknown type closes with 1008 under the close policy; a custom discriminator', async t => {
  const { url } = await build(t, app => {
    app.ws('/kind', {
      discriminator: 'kind',
      messages: { ping: { handler (socket) { socket.send('pong') } } },
    })
    app.ws('/kind-reply', {
      discriminator: 'kind',
      invalidMessage: 'reply',
      messages: { ping: { handler (socket) { socket.send('pong') } } },
    })
  })
  const reply = await Client.open(t, `${url}/kind-reply`)
  reply.send({ type: 'ping' })
  t.same(await reply.json(), envelope('WS_ERR_UNKNOWN_MESSAGE_TYPE', 'unknown message type', 'kind'), 'the envelope uses the discriminator')
  reply.send({ kind: 'ping' })
  t.equal(await reply.next(), 'pong')

  const client = await Client.open(t, `${url}/kind`)
  client.send({ kind: 'ping' })
  t.equal(await client.next(), 'pong')
  client.send({ kind: 'pang' })
  t.same(await client.closed, { code: 1008, reason: 'unknown message type' })
})

t.test('a route with both message and messages is refused at declaration', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wsroutes)
  t.throws(() => app.ws('/both', { message () {}, messages: { a: { handler () {} } } }), /either a message handler or messages/)
  t.throws(() => app.ws('/bad', { schema: { message: {} }, invalidMessage: 'drop' as 'close' }), /invalidMessage must be/)
})

// ------------------------------------------------------------- outbound

t.test('send() with a value that does not match throws WS_ERR_INVALID_OUTBOUND, sends nothing, keeps the connection', async t => {
  const errors: Array<{ code: string, validation?: unknown[] }> = []
  const { url } = await build(t, app => {
    app.ws('/out', {
      schema: { message: Type.Object({ bad: Type.Boolean() }), send: Said },
      message (socket, msg) {
        if (msg.bad) {
          try {
            socket.send({ type: 'said', from: 'x' } as never)
          } catch (error) {
            errors.push(error as { code: string, validation?: unknown[] })
          }
          try {
            socket.send({ type: 'shout', from: 'x', text: 'y' } as never)
          } catch (error) {
            errors.push(error as { code: string })
          }
        }
        socket.send({ type: 'said', from: 'server', text: `after ${errors.length} errors` })
      },
    })
  })
  const client = await Client.open(t, `${url}/out`)
  client.send({ bad: true })
  t.same(await client.json(), { type: 'said', from: 'server', text: 'after 2 errors' }, 'the next message is the valid one')
  t.match(errors, [{ code: 'WS_ERR_INVALID_OUTBOUND', validation: [{ keyword: 'required' }] }, { code: 'WS_ERR_INVALID_OUTBOUND' }])
  client.send({ bad: false })
  t.same(await client.json(), { type: 'said', from: 'server', text: 'after 2 errors' })
  t.equal(client.ws.readyState, WebSocket.OPEN)
})

t.test('an uncaught outbound error is a handler failure: 1011', async t => {
  const { url } = await build(t, app => {
    app.ws('/out', {
      schema: { send: Said },
      message (socket) { socket.send({ nope: true } as never) },
    })
  })
  const client = await Client.open(t, `${url}/out`)
  client.send('anything')
  t.equal((await client.closed).code, 1011)
})

t.test('sendRaw bypasses the send schema', async t => {
  const { url } = await build(t, app => {
    app.ws('/raw', {
      schema: { send: Said },
      open (socket) { socket.sendRaw('pre-serialized') },
    })
  })
  const client = await Client.open(t, `${url}/raw`)
  t.equal(await client.next(), 'pre-serialized')
})

t.test('send() on a route with a send schema writes JSON as text: binary: true is a TypeError, nothing sent', async t => {
  const outcomes: string[] = []
  const { url } = await build(t, app => {
    app.ws('/text', {
      schema: { send: Said },
      open (socket) {
        try {
          // @ts-expect-error: it does not compile either; JavaScript callers get the TypeError
          socket.send({ type: 'said', from: 'a', text: 'as binary?' }, { binary: true })
        } catch (error) {
          outcomes.push(`${(error as Error).name}: ${(error as Error).message}`)
        }
        socket.send({ type: 'said', from: 'a', text: 'text' }, { binary: false })
        socket.sendRaw(Buffer.from('bytes'))
      },
    })
  })
  const client = await Client.open(t, `${url}/text`)
  const frames = [await client.frame(), await client.frame()]
  t.match(outcomes, [/^TypeError: .*sendRaw/])
  t.same(frames, [{ data: '{"type":"said","from":"a","text":"text"}', binary: false }, { data: 'bytes', binary: true }], 'the JSON as text, raw bytes as binary')
})

// ----------------------------------------------------- custom compilers

t.test('the instance\'s custom validator and serializer compilers are honoured', async t => {
  const compiled: Array<{ url: string, httpPart?: string }> = []
  const { url } = await build(t, app => {
    app.setValidatorCompiler(({ schema, url, httpPart }) => {
      compiled.push({ url, httpPart })
      const required = (schema as { required?: string[] }).required ?? []
      return (data: any) => {
        if (typeof data === 'object' && data !== null && required.every(key => key in data) && !JSON.stringify(data).includes('forbidden')) return true
        return { error: new Error('custom says no') }
      }
    })
    app.setSerializerCompiler(() => data => `custom:${JSON.stringify(data)}`)
    app.ws('/custom', {
      schema: {
        message: { type: 'object', required: ['a'] },
        send: { type: 'object', required: ['b'] },
      },
      invalidMessage: 'reply',
      message (socket) { socket.send({ b: 1 }) },
    })
  })
  const client = await Client.open(t, `${url}/custom`)
  client.send({ a: 'forbidden' })
  t.same(await client.json(), envelope('WS_ERR_INVALID_MESSAGE', 'message does not match the schema'))
  client.send({ a: 1 })
  t.equal(await client.next(), 'custom:{"b":1}')
  t.same(compiled, [{ url: '/custom', httpPart: 'body' }, { url: '/custom', httpPart: 'body' }], 'message and send compiled by the custom compiler')
})

t.test('a route-level validatorCompiler wins; TypeBox\'s own compiler works', async t => {
  const { url } = await build(t, app => {
    app.ws('/typebox', {
      schema: { message: Type.Object({ n: Type.Number({ maximum: 10 }) }) },
      validatorCompiler: TypeBoxValidatorCompiler as FastifySchemaCompiler<unknown>,
      invalidMessage: 'reply',
      message (socket, msg) { socket.send(`n=${msg.n}`) },
    })
  })
  const client = await Client.open(t, `${url}/typebox`)
  client.send({ n: 3 })
  t.equal(await client.next(), 'n=3')
  client.send({ n: 11 })
  t.match(await client.json(), { error: { code: 'WS_ERR_INVALID_MESSAGE' } })
  client.send({ n: '3' })
  t.match(await client.json(), { error: { code: 'WS_ERR_INVALID_MESSAGE' } }, 'no coercion: messages are validated as a body')
})

t.test('a validator that throws fails the socket with 1011', async t => {
  const { url } = await build(t, app => {
    app.ws('/throws', {
      schema: { message: { type: 'object' } },
      validatorCompiler: () => () => { throw new Error('validator bug') },
      message () {},
    })
  })
  const client = await Client.open(t, `${url}/throws`)
  client.send('{}')
  t.equal((await client.closed).code, 1011)
})

t.test('a schema that does not compile answers the upgrade with 500', async t => {
  const { url, logs } = await build(t, app => {
    app.ws('/broken', { schema: { message: { type: 'no-such-type' } }, message () {} })
  })
  t.equal((await refusedWs(`${url}/broken`)).status, 500)
  t.ok(logs.lines.some(line => /compiling the message schemas of \/broken failed/.test(line.err?.message ?? '')))
})

t.test('app.get with ws: the route schema applies to the ws handlers', async t => {
  const { url } = await build(t, app => {
    app.get('/both', {
      schema: { message: Type.Object({ q: Type.String() }), send: Type.Object({ a: Type.String() }) },
      handler: async () => 'http',
      ws: {
        invalidMessage: 'reply',
        message (socket, msg) { socket.send({ a: msg.q.toUpperCase() }) },
      },
    })
  })
  const response = await fetch(url.replace('ws:', 'http:') + '/both')
  t.equal(await response.text(), 'http')
  const client = await Client.open(t, `${url}/both`)
  client.send({ q: 'hi' })
  t.same(await client.json(), { a: 'HI' })
  client.send({})
  t.match(await client.json(), { error: { code: 'WS_ERR_INVALID_MESSAGE' } })
})

import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { describe, expect, test } from 'tstyche'
import wsroutes, { type ErrorEnvelope, type InvalidMessageError, type RawData, type WebSocket, type WsRouteOptions, type WsShorthandOptions } from '../lib/index.js'

const app = Fastify().withTypeProvider<TypeBoxTypeProvider>()

const Message = Type.Union([
  Type.Object({ type: Type.Literal('join'), name: Type.String({ maxLength: 32 }) }),
  Type.Object({ type: Type.Literal('say'), text: Type.String({ maxLength: 500 }) }),
])
const Said = Type.Object({ type: Type.Literal('said'), from: Type.String(), text: Type.String() })

type Inbound = { type: 'join', name: string } | { type: 'say', text: string }
type Outbound = { type: 'said', from: string, text: string }

describe('TypeBox: schema.message and schema.send', () => {
  test('msg is the union of the message schema, and narrows by type', () => {
    app.ws('/chat/:room', {
      schema: { params: Type.Object({ room: Type.String() }), message: Message, send: Said },
      message (socket, msg) {
        expect(msg).type.toBe<Inbound>()
        if (msg.type === 'say') expect(msg.text).type.toBe<string>()
        else expect(msg).type.toBe<{ type: 'join', name: string }>()
        expect(socket.request.params).type.toBe<{ room: string }>()
      },
    })
  })

  test('send() takes the send schema\'s type only', () => {
    app.ws('/chat', {
      schema: { message: Message, send: Said },
      message (socket) {
        expect(socket.send).type.toBeCallableWith({ type: 'said', from: 'a', text: 'b' })
        expect(socket.send).type.toBeCallableWith({ type: 'said', from: 'a', text: 'b' }, { binary: false })
        expect(socket.send).type.not.toBeCallableWith({ type: 'said', from: 'a', text: 'b' }, { binary: true })
        expect(socket.sendRaw).type.toBeCallableWith(Buffer.from('bytes'), { binary: true })
        expect(socket.send).type.not.toBeCallableWith({ type: 'said', from: 'a' })
        expect(socket.send).type.not.toBeCallableWith({ type: 'other', from: 'a', text: 'b' })
        expect(socket.send).type.not.toBeCallableWith('a string')
        expect(socket.send).type.not.toBeCallableWith(Buffer.from('bytes'))
        expect(socket.sendRaw).type.toBeCallableWith('a string')
        expect(socket.sendRaw).type.toBeCallableWith(Buffer.from('bytes'))
        expect(socket).type.toBeAssignableTo<WebSocket<Outbound, any>>()
      },
    })
  })

  test('a value of the wrong shape does not compile, in any handler', () => {
    app.ws('/chat', {
      schema: { send: Said },
      open (socket) {
        expect(socket.send).type.not.toBeCallableWith({ type: 'said', from: 'a', text: 42 })
        expect(socket.send).type.not.toBeCallableWith({ type: 'said', from: 'a', text: 'b', extra: true })
        expect(socket.send).type.not.toBeCallableWith(null)
      },
    })
  })

  test('every handler\'s socket has the send type', () => {
    app.ws('/chat', {
      schema: { send: Said },
      open (socket) {
        expect(socket.send).type.toBeCallableWith({ type: 'said', from: 'a', text: 'b' })
        expect(socket.send).type.not.toBeCallableWith('text')
      },
      close (socket) {
        expect(socket.send).type.not.toBeCallableWith('text')
      },
    })
  })

  test('a send schema alone leaves inbound messages raw', () => {
    app.ws('/chat', {
      schema: { send: Said },
      message (_socket, msg) {
        expect(msg).type.toBe<string | Buffer>()
      },
    })
  })

  test('a message schema alone leaves send() raw', () => {
    app.ws('/chat', {
      schema: { message: Message },
      message (socket, msg) {
        expect(msg).type.toBe<Inbound>()
        expect(socket.send).type.toBeCallableWith('text')
        expect(socket.send).type.not.toBeCallableWith({ type: 'join', name: 'a' })
        expect<Parameters<typeof socket.send>[0]>().type.toBe<RawData>()
      },
    })
  })
})

describe('messages: handlers by type', () => {
  test('each handler gets its own variant', () => {
    app.ws('/rpc', {
      schema: { send: Said },
      messages: {
        join: {
          schema: Type.Object({ type: Type.Literal('join'), name: Type.String() }),
          handler (socket, msg) {
            expect(msg).type.toBe<{ type: 'join', name: string }>()
            expect(socket.send).type.not.toBeCallableWith('text')
          },
        },
        say: {
          schema: Type.Object({ type: Type.Literal('say'), text: Type.String() }),
          handler (_socket, msg) {
            expect(msg).type.toBe<{ type: 'say', text: string }>()
          },
        },
      },
    })
  })

  test('a custom discriminator', () => {
    app.ws('/rpc', {
      discriminator: 'kind',
      messages: {
        ping: {
          schema: Type.Object({ kind: Type.Literal('ping'), at: Type.Number() }),
          handler (socket, msg) {
            expect(msg).type.toBe<{ kind: 'ping', at: number }>()
            expect(socket.send).type.toBeCallableWith('raw text')
          },
        },
      },
    })
  })

  test('in the ws option of a route, a handler\'s message is unknown until annotated (typed by app.ws)', () => {
    app.get('/rpc', {
      ws: {
        messages: {
          hi: {
            schema: Type.Object({ type: Type.Literal('hi'), n: Type.Number() }),
            handler (_socket, msg) {
              expect(msg).type.toBe<unknown>()
            },
          },
          annotated: {
            handler (_socket, msg: { type: 'annotated', n: number }) {
              expect(msg.n).type.toBe<number>()
            },
          },
        },
      },
    }, async () => 'http')
  })

  test('route options built from the exported types are accepted (a helper or shared config)', () => {
    const plain = Fastify()
    const echoRoute = (): WsRouteOptions<FastifyRequest> => ({ maxPayload: 1024, message (socket, data) { socket.send(data) } })
    expect(plain.ws).type.toBeCallableWith('/echo', echoRoute())
    expect(plain.get).type.toBeCallableWith('/both', { ws: echoRoute() }, async () => 'http')
    const shorthand: WsShorthandOptions = { onRequest: async () => {}, message (socket, data) { socket.send(data) } }
    expect(plain.ws).type.toBeCallableWith('/typed', shorthand)
  })

  test('discriminator must be a string', () => {
    expect(app.ws).type.toBeCallableWith('/rpc', { discriminator: 'kind', messages: {} })
    expect(app.ws).type.not.toBeCallableWith('/rpc', { discriminator: 1, messages: {} })
  })
})

describe('routes without schemas', () => {
  test('messages are string | Buffer and send() takes raw data', () => {
    const plain = Fastify()
    plain.ws('/raw', {
      message (socket, data, isBinary) {
        expect(data).type.toBe<string | Buffer>()
        expect(isBinary).type.toBe<boolean>()
        expect(socket.send).type.toBeCallableWith('text')
        expect(socket.send).type.toBeCallableWith(Buffer.from('x'))
        expect(socket.send).type.toBeCallableWith(new Uint8Array(2))
        expect(socket.send).type.not.toBeCallableWith({ type: 'x' })
        expect(socket.send).type.not.toBeCallableWith(42)
        expect<Parameters<typeof socket.send>[0]>().type.toBe<RawData>()
        expect(socket).type.toBeAssignableTo<WebSocket<RawData, any>>()
      },
    })
    app.ws('/raw', {
      schema: { params: Type.Object({ id: Type.String() }) },
      message (socket, data) {
        expect(data).type.toBe<string | Buffer>()
        expect(socket.request.params.id).type.toBe<string>()
        expect(socket.send).type.not.toBeCallableWith({ type: 'x' })
        expect<Parameters<typeof socket.send>[0]>().type.toBe<RawData>()
      },
    })
  })

  test('without a type provider, a message schema gives unknown', () => {
    Fastify().ws('/untyped', {
      schema: { message: { type: 'object' } },
      message (_socket, msg) {
        expect(msg).type.toBe<unknown>()
      },
    })
  })
})

describe('the invalid-message policy', () => {
  test('close, reply, ignore or a hook', () => {
    app.ws('/a', { schema: { message: Message }, invalidMessage: 'close' })
    app.ws('/a', { schema: { message: Message }, invalidMessage: 'reply' })
    app.ws('/a', { schema: { message: Message }, invalidMessage: 'ignore' })
    app.ws('/a', {
      schema: { message: Message, send: Said },
      invalidMessage (socket, error, raw) {
        expect(error).type.toBe<InvalidMessageError>()
        expect(raw).type.toBe<string | Buffer>()
        expect(socket.invalidMessages).type.toBe<number>()
        expect(socket.send).type.not.toBeCallableWith('text')
        return 'reply'
      },
    })
    expect(app.ws).type.not.toBeCallableWith('/a', { schema: { message: Message }, invalidMessage: 'drop' })
  })

  test('the envelope type', () => {
    expect<ErrorEnvelope>().type.toHaveProperty('type')
    expect<ErrorEnvelope['type']>().type.toBe<'error'>()
    expect<ErrorEnvelope<'kind'>['kind']>().type.toBe<'error'>()
  })
})

describe('json-schema-to-ts', () => {
  const jst = Fastify().withTypeProvider<JsonSchemaToTsProvider>()

  test('msg and send from plain JSON schemas', () => {
    jst.ws('/j', {
      schema: {
        message: {
          type: 'object',
          properties: { type: { const: 'say' }, text: { type: 'string' } },
          required: ['type', 'text'],
          additionalProperties: false,
        },
        send: {
          type: 'object',
          properties: { ok: { type: 'boolean' } },
          required: ['ok'],
          additionalProperties: false,
        },
      },
      message (socket, msg) {
        expect(msg).type.toBe<{ type: 'say', text: string }>()
        expect(socket.send).type.toBeCallableWith({ ok: true })
        expect(socket.send).type.not.toBeCallableWith({ ok: 'yes' })
      },
    })
  })

  test('a oneOf message narrows by type', () => {
    jst.ws('/j', {
      schema: {
        message: {
          oneOf: [
            { type: 'object', properties: { type: { const: 'a' }, n: { type: 'number' } }, required: ['type', 'n'], additionalProperties: false },
            { type: 'object', properties: { type: { const: 'b' }, s: { type: 'string' } }, required: ['type', 's'], additionalProperties: false },
          ],
        },
      },
      message (_socket, msg) {
        if (msg.type === 'a') expect(msg.n).type.toBe<number>()
        else expect(msg.s).type.toBe<string>()
      },
    })
  })
})

describe('plugin options and the ws route option', () => {
  test('invalidMessage plugin-wide', () => {
    const plain = Fastify()
    expect(plain.register).type.toBeCallableWith(wsroutes, { invalidMessage: 'reply' as const })
    expect(plain.register).type.toBeCallableWith(wsroutes, { invalidMessage: (_socket: unknown, _error: InvalidMessageError) => 'ignore' as const })
  })

  test('app.get with ws: the route schema types the handlers', () => {
    app.get('/both', {
      schema: { message: Message, send: Said },
      handler: async () => 'http',
      ws: {
        message (socket, msg) {
          expect(msg).type.toBe<Inbound>()
          expect(socket.send).type.not.toBeCallableWith('text')
        },
      },
    })
  })

  test('a messages entry without a schema gets unknown', () => {
    app.ws('/rpc', {
      messages: {
        ping: {
          handler (_socket, msg) {
            expect(msg).type.toBe<unknown>()
          },
        },
      },
    })
  })
})

import express, { type NextFunction, type Request, type Response } from 'express'
import { createServer } from 'node:http'
import { describe, expect, test } from 'tstyche'
import { wsExpress, type RawData, type WebSocket, type WsExpress, type WsExpressRouteOptions } from '../lib/express/index.js'

const app = express()
const server = createServer(app)
const router = express.Router()

function requireAuth (_req: Request, _res: Response, next: NextFunction): void { next() }

describe('wsExpress', () => {
  test('takes an app, a server and options; returns the adapter', () => {
    expect(wsExpress(app, server)).type.toBe<WsExpress>()
    expect(wsExpress(app, server, { maxPayload: 1024, logger: console, shutdownReason: 'bye', idleTimeout: 30 })).type.toBe<WsExpress>()
    expect(wsExpress(app, server).close()).type.toBe<Promise<void>>()
    expect(wsExpress).type.not.toBeCallableWith(app, server, { maxPayload: '1' })
  })
})

describe('app.ws and router.ws', () => {
  test('params come from the path; the request and socket.request are Express requests', () => {
    app.ws('/chat/:room', {
      open (socket, req) {
        expect(req.params).type.toBe<{ room: string }>()
        expect(socket.request.params.room).type.toBe<string>()
        expect(req.query).type.toBeAssignableTo<Request['query']>()
        expect(socket).type.toBe<WebSocket<RawData, Request<{ room: string }>>>()
      },
      message (socket, data, isBinary) {
        expect(data).type.toBe<string | Buffer>()
        expect(isBinary).type.toBe<boolean>()
        expect(socket.send).type.toBeCallableWith('text')
        expect(socket.send).type.toBeCallableWith(Buffer.from('bytes'), { binary: true })
      },
      close (socket, code, reason) {
        expect(code).type.toBe<number>()
        expect(reason).type.toBe<string>()
        expect(socket.close).type.not.toBeCallableWith(1005)
      },
    })
  })

  test('middleware comes before the options; inline middleware is typed', () => {
    expect(app.ws('/private', (req, _res, next) => {
      expect(req.params).type.toBe<{}>()
      next()
    }, { maxPayload: 1024 })).type.toBe<typeof app>()
    expect(app.ws('/x/:id', (req, _res, next) => {
      expect(req.params.id).type.toBe<string>()
      next()
    }, { open (_socket, req) { expect(req.params.id).type.toBe<string>() } })).type.toBe<typeof app>()
  })

  test('as with app.get, an annotated middleware (Request = Request<ParamsDictionary>) sets the params type', () => {
    expect(app.ws('/x/:id', requireAuth, { open (_socket, req) { expect(req.params.id).type.toBe<string | string[]>() } })).type.toBe<typeof app>()
    expect(app.ws('/x/:id', [requireAuth, requireAuth], { open () {} })).type.toBe<typeof app>()
  })

  test('the options object is required and comes last', () => {
    expect(app.ws).type.not.toBeCallableWith('/x')
    expect(app.ws).type.not.toBeCallableWith('/x', requireAuth)
    expect(app.ws).type.not.toBeCallableWith('/x', {}, requireAuth)
    expect(app.ws).type.not.toBeCallableWith('/x', { maxPayload: 'big' })
  })

  test('routers have ws, returning the router', () => {
    expect(router.ws('/feed/:topic', {
      open (_socket, req) { expect(req.params.topic).type.toBe<string>() },
    })).type.toBe<express.Router>()
  })

  test('regular expression paths work', () => {
    expect(app.ws(/^\/re\/(\d+)$/, { open () {} })).type.toBe<typeof app>()
  })
})

describe('JSON routes', () => {
  const Say = { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] } as const

  test('without schemas, messages are text or bytes and send takes raw data', () => {
    app.ws('/raw', {
      message (socket, data) {
        expect(data).type.toBe<string | Buffer>()
        expect(socket.send).type.not.toBeCallableWith({ any: 'object' })
      },
    })
  })

  test('with schema.message the handler gets the parsed value, unknown until annotated', () => {
    app.ws('/json', {
      schema: { message: Say },
      message (_socket, data) {
        expect(data).type.toBe<unknown>()
      },
    })
    app.ws('/json', {
      schema: { message: Say },
      message (_socket, data: { text: string }) {
        expect(data.text).type.toBe<string>()
      },
    })
  })

  test('with schema.send, send() takes values for the schema to validate; sendRaw takes raw data', () => {
    app.ws('/out', {
      schema: { send: Say },
      open (socket) {
        expect(socket.send).type.toBeCallableWith({ text: 'hi' })
        expect(socket.sendRaw).type.toBeCallableWith('already serialized')
        expect(socket.sendRaw).type.not.toBeCallableWith({ text: 'hi' })
      },
    })
  })

  test('messages: handlers by type, with the route\'s request', () => {
    app.ws('/rooms/:room', {
      discriminator: 'kind',
      invalidMessage: 'reply',
      messages: {
        join: {
          schema: Say,
          handler (socket, msg: { text: string }) {
            expect(socket.request.params.room).type.toBe<string>()
            expect(msg.text).type.toBe<string>()
          },
        },
      },
    })
    expect(app.ws).type.not.toBeCallableWith('/x', { invalidMessage: 'explode' })
  })

  test('route options built from the exported types are accepted', () => {
    const echo: WsExpressRouteOptions<Request> = { message (socket, data) { socket.send(data) } }
    expect(app.ws).type.toBeCallableWith('/e', echo)
  })

  test('adapter options: invalidMessage, ajv, jsonParse', () => {
    expect(wsExpress).type.toBeCallableWith(app, server, { invalidMessage: 'ignore', jsonParse: { protoAction: 'remove' } })
    expect(wsExpress).type.toBeCallableWith(app, server, { invalidMessage: (socket: WebSocket<any, Request>) => { socket.close(4000) } })
  })
})

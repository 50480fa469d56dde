import express, { type Request } from 'express'
import Fastify, { type FastifyRequest } from 'fastify'
import { createServer } from 'node:http'
import { describe, expect, test } from 'tstyche'
import wsroutes, { type RawData, type WebSocket } from '../lib/index.js'
import { wsExpress } from '../lib/express/index.js'

describe('the production options of the Fastify plugin', () => {
  const app = Fastify()

  test('preClose, handshakeTimeout and the limits, plugin-wide', () => {
    expect(app.register).type.toBeCallableWith(wsroutes, {
      idleTimeout: 30,
      maxBackpressure: 1 << 20,
      backpressurePolicy: 'drop' as const,
      handshakeTimeout: 5000,
      closeTimeout: 2000,
      preClose (sockets: Iterable<WebSocket<RawData, FastifyRequest>>) {
        for (const socket of sockets) socket.send('bye')
      },
    })
    expect(app.register).type.toBeCallableWith(wsroutes, { preClose: async () => {} })
    expect(app.register).type.not.toBeCallableWith(wsroutes, { handshakeTimeout: '5s' })
    expect(app.register).type.not.toBeCallableWith(wsroutes, { backpressurePolicy: 'block' })
  })

  test('the socket says which read path it is on, and its counters, read-only', () => {
    const socket = {} as WebSocket<RawData, FastifyRequest>
    expect(socket.readingDirectly).type.toBe<boolean>()
    expect(socket.droppedMessages).type.toBe<number>()
    expect(socket.bufferedAmount).type.toBe<number>()
    expect(socket).type.not.toBeAssignableTo<{ readingDirectly: string }>()
  })

  test('ping() and pong() take what send() takes as bytes', () => {
    const socket = {} as WebSocket<RawData, FastifyRequest>
    expect(socket.ping).type.toBeCallableWith(new Uint8Array(3))
    expect(socket.pong).type.toBeCallableWith(new ArrayBuffer(3))
    expect(socket.ping).type.toBeCallableWith('text')
    expect(socket.ping).type.not.toBeCallableWith(42)
  })

  test('keepRequest, plugin-wide and per route: a boolean', () => {
    expect(app.register).type.toBeCallableWith(wsroutes, { keepRequest: false })
    expect(app.register).type.not.toBeCallableWith(wsroutes, { keepRequest: 'no' })
    expect(app.ws).type.toBeCallableWith('/lean', { keepRequest: false, open (_socket: WebSocket<RawData, FastifyRequest>, request: FastifyRequest) { void request.headers } })
    expect(app.ws).type.not.toBeCallableWith('/lean', { keepRequest: 0 })
  })

  test('binaryMessages, plugin-wide and per route: own or borrow', () => {
    expect(app.register).type.toBeCallableWith(wsroutes, { binaryMessages: 'borrow' })
    expect(app.register).type.not.toBeCallableWith(wsroutes, { binaryMessages: 'borrowed' })
    expect(app.ws).type.toBeCallableWith('/echo', { binaryMessages: 'borrow', message (socket: WebSocket<RawData, FastifyRequest>, data: string | Buffer) { socket.send(data) } })
    expect(app.ws).type.toBeCallableWith('/keep', { binaryMessages: 'own' })
    expect(app.ws).type.not.toBeCallableWith('/echo', { binaryMessages: true })
  })

  test('a route: limits, handshakeTimeout and its own wsErrorHandler', () => {
    app.ws('/r/:id', {
      idleTimeout: 0,
      handshakeTimeout: 1000,
      maxBackpressure: 65536,
      backpressurePolicy: 'close',
      wsErrorHandler (error, socket, request) {
        expect(error).type.toBe<Error>()
        // undefined once `open` has returned on a keepRequest: false route
        expect(request).type.toBe<typeof socket.request | undefined>()
        expect(request?.params).type.toBe<unknown>()
      },
      // Fastify's own route errorHandler (the HTTP part before the 101) is still there.
      errorHandler (_error, _request, reply) { void reply.code(500).send() },
    })
    expect(app.ws).type.not.toBeCallableWith('/x', { handshakeTimeout: '1s' })
  })

  test('handlers are plain functions: this is void', () => {
    app.ws('/t', {
      open () { expect(this).type.toBe<void>() },
      message () { expect(this).type.toBe<void>() },
      messages: undefined,
      wsErrorHandler () { expect(this).type.toBe<void>() },
    })
    app.ws('/t', {
      messages: { a: { handler () { expect(this).type.toBe<void>() } } },
    })
    class Room {
      name = 'lobby'
      greet (this: Room, socket: WebSocket): void { socket.send(this.name) }
    }
    // A method that declares its `this`, passed as a handler, would run without it.
    expect(app.ws).type.not.toBeCallableWith('/t', { open: new Room().greet })
    expect(app.ws).type.toBeCallableWith('/t', { open: (socket: WebSocket) => { socket.send('hi') } })
  })
})

describe('the production options of the Express adapter', () => {
  const app = express()
  const server = createServer(app)

  test('preClose and handshakeTimeout, adapter-wide', () => {
    expect(wsExpress).type.toBeCallableWith(app, server, {
      handshakeTimeout: 5000,
      preClose (sockets: Iterable<WebSocket<RawData, Request>>) {
        for (const socket of sockets) socket.sendRaw('bye')
      },
    })
    expect(wsExpress).type.not.toBeCallableWith(app, server, { preClose: 'bye' })
  })

  test('keepRequest, adapter-wide: a boolean', () => {
    expect(wsExpress).type.toBeCallableWith(app, server, { keepRequest: false })
    expect(wsExpress).type.not.toBeCallableWith(app, server, { keepRequest: 'no' })
  })

  test('binaryMessages, adapter-wide: own or borrow', () => {
    expect(wsExpress).type.toBeCallableWith(app, server, { binaryMessages: 'borrow' })
    expect(wsExpress).type.not.toBeCallableWith(app, server, { binaryMessages: 'lend' })
  })

  test('a route: handshakeTimeout and wsErrorHandler', () => {
    app.ws('/r/:id', {
      handshakeTimeout: 1000,
      wsErrorHandler (error, socket, request) {
        expect(error).type.toBe<Error>()
        expect(request?.params.id).type.toBe<string | undefined>()
        expect(socket.request.params.id).type.toBe<string>()
      },
    })
  })
})

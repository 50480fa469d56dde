import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import express from 'express'
import Fastify from 'fastify'
import { createServer } from 'node:http'
import { describe, expect, test } from 'tstyche'
import { UpgradeRefusedError as ExpressUpgradeRefusedError, wsExpress, type InjectedSocket as ExpressInjectedSocket } from '../lib/express/index.js'
import { ReadyState, UpgradeRefusedError, type InjectedClose, type InjectedSocket, type InjectWSOptions } from '../lib/index.js'

const app = Fastify()

type Say = { type: 'say', text: string }
type Said = { type: 'said', from: string, text: string }

describe('app.injectWS', () => {
  test('takes a path and options; resolves with the client end', () => {
    expect(app.injectWS('/chat')).type.toBe<Promise<InjectedSocket<unknown, unknown>>>()
    expect(app.injectWS).type.toBeCallableWith('/chat', { headers: { authorization: 'Bearer x', 'x-many': ['1', '2'], 'content-length': 0, host: undefined } })
    expect(app.injectWS).type.toBeCallableWith('/chat', { protocols: ['v1', 'v2'], query: { limit: 10, tag: ['a'], on: true }, timeout: 100 })
    expect(app.injectWS).type.toBeCallableWith('/chat', { protocols: 'v1', query: 'a=1' })
    expect(app.injectWS).type.toBeCallableWith('/chat', { query: new URLSearchParams() })
    expect(app.injectWS).type.not.toBeCallableWith()
    expect(app.injectWS).type.not.toBeCallableWith('/chat', { headers: { authorization: true } })
    expect(app.injectWS).type.not.toBeCallableWith('/chat', { protocols: 13 })
    expect(app.injectWS).type.not.toBeCallableWith('/chat', { timeout: '1s' })
  })

  test('is there on an instance with a type provider', () => {
    const typed = Fastify().withTypeProvider<TypeBoxTypeProvider>()
    expect(typed.injectWS('/chat')).type.toBe<Promise<InjectedSocket<unknown, unknown>>>()
  })

  test('the options type is exported', () => {
    expect<InjectWSOptions>().type.toBeAssignableFrom({ headers: { cookie: 'a=1' }, protocols: ['chat'] })
  })
})

describe('the client end', () => {
  test('send() takes TSend as JSON, and strings and bytes as they are', async () => {
    const ws = await app.injectWS<Say, Said>('/chat')
    expect(ws.send).type.toBeCallableWith({ type: 'say', text: 'hi' })
    expect(ws.send).type.toBeCallableWith('raw text')
    expect(ws.send).type.toBeCallableWith(Buffer.from('bytes'), { binary: true })
    expect(ws.send).type.toBeCallableWith(new Uint8Array(2))
    expect(ws.send).type.not.toBeCallableWith({ type: 'say' })
    expect(ws.send).type.not.toBeCallableWith({ type: 'other', text: 'hi' })
    expect(ws.send('x')).type.toBe<void>()
  })

  test('expectJson() returns TMessage unless told otherwise; expectMessage() text or bytes', async () => {
    const ws = await app.injectWS<Say, Said>('/chat')
    expect(ws.expectJson()).type.toBe<Promise<Said>>()
    expect(ws.expectJson<{ n: number }>()).type.toBe<Promise<{ n: number }>>()
    expect(ws.expectJson(100)).type.toBe<Promise<Said>>()
    expect(ws.expectMessage()).type.toBe<Promise<string | Buffer>>()
    expect(ws.expectPing()).type.toBe<Promise<Buffer>>()
    expect(ws.expectPong(50)).type.toBe<Promise<Buffer>>()
    const untyped = await app.injectWS('/chat')
    expect(untyped.expectJson()).type.toBe<Promise<unknown>>()
    expect(untyped.send).type.toBeCallableWith({ anything: 1 })
  })

  test('closing: only sendable close codes; expectClose resolves with code and reason', async () => {
    const ws = await app.injectWS('/chat')
    expect(ws.close).type.toBeCallableWith()
    expect(ws.close).type.toBeCallableWith(1000)
    expect(ws.close).type.toBeCallableWith(4000, 'bye')
    expect(ws.close).type.not.toBeCallableWith(1005)
    expect(ws.close).type.not.toBeCallableWith(1006)
    expect(ws.close).type.not.toBeCallableWith(5000)
    expect(ws.expectClose()).type.toBe<Promise<InjectedClose>>()
    expect(ws.expectClose(1001, 500)).type.toBe<Promise<InjectedClose>>()
    expect<InjectedClose>().type.toBe<{ code: number, reason: string }>()
    expect(ws.terminate()).type.toBe<void>()
    expect(ws.ping).type.toBeCallableWith('x')
    expect(ws.ping).type.toBeCallableWith()
  })

  test('state', async () => {
    const ws = await app.injectWS('/chat')
    expect(ws.readyState).type.toBe<ReadyState>()
    expect(ws.protocol).type.toBe<string>()
    expect(ws.headers['sec-websocket-accept']).type.toBe<string | undefined>()
  })
})

describe('UpgradeRefusedError', () => {
  test('carries the HTTP response', () => {
    const error = new UpgradeRefusedError(401, {}, '')
    expect(error.statusCode).type.toBe<number>()
    expect(error.body).type.toBe<string>()
    expect(error.headers['www-authenticate']).type.toBe<string | undefined>()
    expect(error.code).type.toBe<'WS_ERR_INVALID_HANDSHAKE'>()
    expect(error).type.toBeAssignableTo<Error>()
  })
})

describe('wsExpress(...).injectWS', () => {
  const adapter = wsExpress(express(), createServer())

  test('the same client end', async () => {
    expect(adapter.injectWS('/chat')).type.toBe<Promise<ExpressInjectedSocket<unknown, unknown>>>()
    expect(adapter.injectWS<Say, Said>('/chat', { headers: { authorization: 'x' } })).type.toBe<Promise<InjectedSocket<Say, Said>>>()
    expect(adapter.injectWS).type.not.toBeCallableWith(1)
    const ws = await adapter.injectWS<Say, Said>('/chat')
    expect(ws.expectJson()).type.toBe<Promise<Said>>()
    expect(ws.send).type.not.toBeCallableWith({ type: 'other' })
    expect<typeof ExpressUpgradeRefusedError>().type.toBe<typeof UpgradeRefusedError>()
  })
})

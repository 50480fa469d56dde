/**
 * lib/core/socket.ts: the socket handlers receive. Its `request` until the
 * route lets go of it (`releaseRequest()`, routes with `keepRequest: false`),
 * then a TypeError; `send()` through the route's `send` schema when there is
 * one, `sendRaw()` never through it. Built on the in-process duplex pair of
 * `injectWS`, with a real RouteRunner and the Express adapter's compilers;
 * the frames the socket writes are read back from the other end.
 */
import t from 'tap'
import type { Socket } from 'node:net'
import { duplexPair, type PipeEnd } from '../../lib/core/inject.js'
import { InvalidOutboundError, compileMessageCodec, type MessageSchemaSpec } from '../../lib/core/messages.js'
import { SocketRegistry } from '../../lib/core/registry.js'
import { RouteRunner, type RouteLogger } from '../../lib/core/route.js'
import { RouteSocket } from '../../lib/core/socket.js'
import { SendStatus } from '../../lib/engine/connection.js'
import { ErrorCodes } from '../../lib/engine/errors.js'
import { Op, parseServerFrames, type ServerFrame } from '../helpers/frames.js'
import { ajvCompilers, createAjv } from '../../lib/express/schemas.js'
import type { TestContext } from '../helpers/tap.js'

const silent: RouteLogger = { error () {}, warn () {}, debug () {} }

interface Built {
  socket: RouteSocket<{ url: string }>
  request: { url: string }
  /** Every frame the socket wrote so far. */
  frames: () => Promise<ServerFrame[]>
}

/** A RouteSocket on one end of a duplex pair, for a route with `spec`'s schemas (none by default). */
function build (t: TestContext, spec?: MessageSchemaSpec<never>): Built {
  const [serverEnd, clientEnd]: [PipeEnd, PipeEnd] = duplexPair()
  const received: Buffer[] = []
  clientEnd.on('data', (chunk: Buffer) => received.push(chunk))
  const route = new RouteRunner<{ url: string }>({
    handlers: {},
    limits: {},
    registry: new SocketRegistry(),
    logger: () => silent,
    messages: spec === undefined ? undefined : compileMessageCodec(spec, ajvCompilers(createAjv())),
  })
  const request = { url: '/chat' }
  const socket = new RouteSocket(serverEnd as unknown as Socket, route, request, silent, {}, '')
  socket.start()
  t.teardown(() => {
    socket.terminate()
    clientEnd.destroy()
  })
  return {
    socket,
    request,
    frames: async () => {
      // The pair hands bytes over on a later turn.
      await new Promise(resolve => setImmediate(resolve))
      await new Promise(resolve => setImmediate(resolve))
      const { frames, rest } = parseServerFrames(Buffer.concat(received))
      t.equal(rest.length, 0, 'whole frames only')
      return frames
    },
  }
}

const said = {
  type: 'object',
  properties: { type: { const: 'said' }, text: { type: 'string' } },
  required: ['type', 'text'],
  additionalProperties: false,
}

t.test('request: the request that opened the socket, until releaseRequest(); then a TypeError', async t => {
  const { socket, request, frames } = build(t)
  t.equal(socket.request, request, 'the request itself')
  t.equal(socket.request, request, 'as often as it is read')
  t.equal(socket.requestReleased, false)
  socket.releaseRequest()
  t.equal(socket.requestReleased, true)
  t.equal(socket.keptRequest, undefined, 'the socket no longer holds it')
  t.throws(() => socket.request, { name: 'TypeError', message: /socket\.request was let go after open \(the route has keepRequest: false\)/ })
  t.throws(() => socket.request, TypeError, 'on every later read too')
  t.equal(socket.readyState, 1, 'the socket itself is unaffected')
  t.equal(socket.send('still works'), SendStatus.SENT)
  t.same((await frames()).map(frame => frame.payload.toString()), ['still works'], 'and still sends')
})

t.test('without a send schema, send() and sendRaw() both send raw data: strings as text, bytes as binary', async t => {
  const { socket, frames } = build(t)
  t.equal(socket.send('text'), SendStatus.SENT)
  t.equal(socket.send(Buffer.from([1, 2, 3])), SendStatus.SENT)
  t.equal(socket.send('as binary', { binary: true }), SendStatus.SENT)
  t.equal(socket.sendRaw('raw text'), SendStatus.SENT)
  t.equal(socket.sendRaw(new Uint8Array([4, 5])), SendStatus.SENT)
  t.same((await frames()).map(frame => [frame.opcode, frame.masked, frame.payload.toString('hex')]), [
    [Op.TEXT, false, Buffer.from('text').toString('hex')],
    [Op.BINARY, false, '010203'],
    [Op.BINARY, false, Buffer.from('as binary').toString('hex')],
    [Op.TEXT, false, Buffer.from('raw text').toString('hex')],
    [Op.BINARY, false, '0405'],
  ], 'unmasked frames, as sent')
})

t.test('a message schema alone: send() stays raw', async t => {
  const { socket, frames } = build(t, { message: said })
  t.equal(socket.send('not json at all'), SendStatus.SENT, 'no send schema to check it against')
  t.same((await frames()).map(frame => [frame.opcode, frame.payload.toString()]), [[Op.TEXT, 'not json at all']])
})

t.test('with a send schema, send() validates and serializes; sendRaw() bypasses the schema', async t => {
  const { socket, frames } = build(t, { send: said })
  t.equal(socket.send({ type: 'said', text: 'hi' }), SendStatus.SENT)
  const error = t.throws(() => socket.send({ type: 'said' }), InvalidOutboundError, 'a value the schema refuses throws') as InvalidOutboundError
  t.equal(error.code, ErrorCodes.INVALID_OUTBOUND)
  t.throws(() => socket.send('a string'), { code: ErrorCodes.INVALID_OUTBOUND }, 'raw data is no exception')
  t.equal(socket.sendRaw('{"type":"other"}'), SendStatus.SENT, 'sendRaw: a string the schema would refuse')
  t.equal(socket.sendRaw(Buffer.from([9])), SendStatus.SENT, 'sendRaw: bytes, as binary')
  t.equal(socket.readyState, 1, 'a refused send() leaves the socket open')
  t.same((await frames()).map(frame => [frame.opcode, frame.payload.toString('hex')]), [
    [Op.TEXT, Buffer.from('{"type":"said","text":"hi"}').toString('hex')],
    [Op.TEXT, Buffer.from('{"type":"other"}').toString('hex')],
    [Op.BINARY, '09'],
  ], 'the serialized value as text, nothing for the refused ones, then the raw data as it was')
})

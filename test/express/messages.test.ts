/**
 * JSON messages on Express routes: schemas compiled with Ajv and
 * fast-json-stringify, the same policies and error codes as the Fastify plugin.
 */
import { Ajv } from 'ajv'
import express from 'express'
import t from 'tap'
import { closed, nextMessage, open, rawUpgrade, start } from './helpers.js'

const Say = {
  type: 'object',
  properties: { type: { const: 'say' }, text: { type: 'string', maxLength: 20 } },
  required: ['type', 'text'],
  additionalProperties: false,
} as const

const Said = {
  type: 'object',
  properties: { type: { const: 'said' }, text: { type: 'string' }, at: { type: 'integer' } },
  required: ['type', 'text'],
} as const

interface SayMessage { type: 'say', text: string }

t.test('schema.message: handlers get the validated value; invalid messages close with the policy codes', async t => {
  const received: unknown[] = []
  const s = await start(t, app => {
    app.ws('/chat', {
      schema: { message: Say, send: Said },
      message (socket, msg: SayMessage) {
        received.push(msg)
        socket.send({ type: 'said', text: msg.text.toUpperCase(), at: 1, extra: 'not in the schema' })
      },
    })
  })

  const client = await open(s.url('/chat'))
  client.send(JSON.stringify({ type: 'say', text: 'hi' }))
  t.same(JSON.parse(await nextMessage(client) as string), { type: 'said', text: 'HI', at: 1 }, 'serialized with the send schema')
  t.same(received, [{ type: 'say', text: 'hi' }])

  for (const [payload, code, label] of [
    ['{"type":"say"', 1007, 'bad JSON'],
    [JSON.stringify({ type: 'say', text: 'x'.repeat(21) }), 1008, 'schema mismatch'],
    [Buffer.from('binary'), 1003, 'binary'],
    ['{"type":"say","text":"a","__proto__":{"admin":true}}', 1007, 'prototype poisoning'],
  ] as const) {
    const c = await open(s.url('/chat'))
    const done = closed(c)
    c.send(payload)
    const result = await done
    t.equal(result.code, code, label)
    t.notMatch(result.reason, /x{21}|admin/, 'the reason never echoes the payload')
  }
  t.equal(received.length, 1)
  client.close()
})

t.test('messages: routed by discriminator, each with its schema; the reply policy answers with an envelope', async t => {
  const log: string[] = []
  const s = await start(t, app => {
    app.ws('/rooms/:room', {
      discriminator: 'kind',
      invalidMessage: 'reply',
      messages: {
        join: {
          schema: { type: 'object', properties: { kind: { const: 'join' }, name: { type: 'string', format: 'email' } }, required: ['kind', 'name'] },
          handler (socket, msg: { name: string }) {
            log.push(`join ${msg.name} in ${socket.request.params.room}`)
            socket.send(JSON.stringify({ kind: 'joined' }))
          },
        },
        leave: {
          handler (socket) {
            log.push('leave')
            socket.close(1000)
          },
        },
      },
    })
  })
  const client = await open(s.url('/rooms/r1'))
  client.send(JSON.stringify({ kind: 'join', name: 'ada@example.org' }))
  t.same(JSON.parse(await nextMessage(client) as string), { kind: 'joined' })

  client.send(JSON.stringify({ kind: 'join', name: 'not an email' }))
  t.same(JSON.parse(await nextMessage(client) as string), { kind: 'error', error: { code: 'WS_ERR_INVALID_MESSAGE', message: 'message does not match the schema' } }, 'ajv-formats checks formats')
  client.send(JSON.stringify({ kind: 'dance' }))
  t.same(JSON.parse(await nextMessage(client) as string), { kind: 'error', error: { code: 'WS_ERR_UNKNOWN_MESSAGE_TYPE', message: 'unknown message type' } })

  const done = closed(client)
  client.send(JSON.stringify({ kind: 'leave' }))
  t.equal((await done).code, 1000)
  t.same(log, ['join ada@example.org in r1', 'leave'])
})

t.test('send(): a value that does not match the send schema throws WS_ERR_INVALID_OUTBOUND and sends nothing', async t => {
  const errors: string[] = []
  const s = await start(t, app => {
    app.ws('/out', {
      schema: { send: Said },
      message (socket, data) {
        try {
          socket.send({ type: 'wrong' })
        } catch (error) {
          errors.push((error as { code: string }).code)
        }
        socket.send({ type: 'said', text: String(data) })
        socket.sendRaw('raw text')
      },
    })
  })
  const client = await open(s.url('/out'))
  client.send('go')
  t.same(JSON.parse(await nextMessage(client) as string), { type: 'said', text: 'go' })
  t.equal(await nextMessage(client), 'raw text')
  t.same(errors, ['WS_ERR_INVALID_OUTBOUND'])
  client.close()
})

t.test('the adapter-wide invalidMessage policy applies to JSON routes; a route\'s own wins', async t => {
  const seen: string[] = []
  const s = await start(t, app => {
    app.ws('/default', { schema: { message: Say }, message () {} })
    app.ws('/own', { schema: { message: Say }, invalidMessage: 'close', message () {} })
  }, {
    invalidMessage (socket, error) {
      seen.push(error.code)
      socket.close(4000, 'custom')
    },
  })
  const a = await open(s.url('/default'))
  const aClosed = closed(a)
  a.send('[]')
  t.same(await aClosed, { code: 4000, reason: 'custom' })
  t.same(seen, ['WS_ERR_INVALID_MESSAGE'])

  const b = await open(s.url('/own'))
  const bClosed = closed(b)
  b.send('[]')
  t.equal((await bClosed).code, 1008)
  t.same(seen, ['WS_ERR_INVALID_MESSAGE'])
})

t.test('Ajv is set up like Fastify\'s: defaults are filled, additional properties removed', async t => {
  const s = await start(t, app => {
    app.ws('/defaults', {
      schema: {
        message: {
          type: 'object',
          properties: { n: { type: 'integer', default: 7 } },
          additionalProperties: false,
        },
      },
      message (socket, msg) { socket.send(JSON.stringify(msg)) },
    })
  })
  const client = await open(s.url('/defaults'))
  client.send('{"other":1}')
  t.same(JSON.parse(await nextMessage(client) as string), { n: 7 })
  client.close()
})

t.test('the ajv option: the adapter compiles with the given instance', async t => {
  const ajv = new Ajv({ allErrors: false })
  ajv.addKeyword({ keyword: 'even', type: 'number', validate: (_schema: unknown, data: number) => data % 2 === 0 })
  const s = await start(t, app => {
    app.ws('/even', {
      schema: { message: { type: 'number', even: true } },
      invalidMessage: 'reply',
      message (socket, n) { socket.send(`ok ${String(n)}`) },
    })
  }, { ajv })
  const client = await open(s.url('/even'))
  client.send('4')
  t.equal(await nextMessage(client), 'ok 4')
  client.send('5')
  t.match(JSON.parse(await nextMessage(client) as string), { type: 'error', error: { code: 'WS_ERR_INVALID_MESSAGE' } })
  client.close()
})

t.test('the ajv option: schemas added to it resolve in send schemas too ($ref)', async t => {
  const ajv = new Ajv({ allErrors: false })
  ajv.addSchema({ $id: 'said', type: 'object', properties: { text: { type: 'string' } }, required: ['text'] })
  const s = await start(t, app => {
    app.ws('/out', {
      schema: { message: { $ref: 'said' }, send: { $ref: 'said' } },
      message (socket, value) { socket.send({ text: `echo ${(value as { text: string }).text}` }) },
    })
  }, { ajv })
  const client = await open(s.url('/out'))
  client.send(JSON.stringify({ text: 'hi' }))
  t.same(JSON.parse(await nextMessage(client) as string), { text: 'echo hi' }, 'validated and serialized through the registered schema')
  client.close()
})

t.test('a schema Ajv refuses fails the upgrade with 500, through Express\'s error handling', async t => {
  const errors: string[] = []
  const s = await start(t, app => {
    app.ws('/broken', { schema: { message: { type: 'no-such-type' } }, message () {} })
    app.use(((error: Error, _req, res, _next) => {
      errors.push(error.message)
      res.status(500).send('schema error')
    }) as express.ErrorRequestHandler)
  })
  const raw = await rawUpgrade(s.port, '/broken')
  t.equal(raw.status, 500)
  t.match(errors[0], /compiling the message schemas of \/broken failed/)
})

t.test('message options are checked when the route is declared', async t => {
  const app = express()
  t.throws(() => app.ws('/x', { schema: { message: Say }, message () {}, messages: { a: { handler () {} } } }), /either a message handler or messages/)
  t.throws(() => app.ws('/x', { messages: { a: {} as never } }), /messages\.a needs a handler/)
  t.throws(() => app.ws('/x', { schema: { message: Say }, invalidMessage: 'explode' as never }), /invalidMessage must be/)
})

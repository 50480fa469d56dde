/**
 * lib/core/messages.ts without a framework: the codec compiled with the
 * Express adapter's own compilers (lib/express/schemas.ts: Ajv and
 * fast-json-stringify, no framework), fed Buffers as the engine delivers
 * them, acting on a recording socket.
 */
import t from 'tap'
import { Ajv, type Options as AjvOptions } from 'ajv'
import {
  INVALID_MESSAGE_CLOSE_CODES,
  InvalidMessageError,
  InvalidOutboundError,
  MessageCodec,
  checkMessageSpec,
  compileMessageCodec,
  hasMessageSchemas,
  runValidator,
  type InvalidMessagePolicy,
  type InvalidMessageTarget,
  type MessageSchemaSpec,
  type SchemaCompilers,
} from '../../lib/core/messages.js'
import { ErrorCodes } from '../../lib/engine/errors.js'
import { DEFAULT_AJV_OPTIONS, ajvCompilers, createAjv } from '../../lib/express/schemas.js'

/**
 * The Express adapter's own compilers (Ajv with Fastify's default options,
 * fast-json-stringify), optionally with some Ajv options changed.
 */
function adapterCompilers (options?: AjvOptions): SchemaCompilers {
  return ajvCompilers(options === undefined ? createAjv() : new Ajv({ ...DEFAULT_AJV_OPTIONS, ...options }))
}

class FakeSocket implements InvalidMessageTarget {
  invalidMessages = 0
  closed: Array<[number, string]> = []
  sent: string[] = []
  close (code: number, reason: string): void { this.closed.push([code, reason]) }
  sendRaw (data: string): void { this.sent.push(data) }
}

const text = (value: unknown): Buffer => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value))

const chat = {
  type: 'object',
  properties: {
    type: { type: 'string', enum: ['join', 'say'] },
    name: { type: 'string', maxLength: 32 },
    text: { type: 'string', maxLength: 500 },
  },
  required: ['type'],
  additionalProperties: false,
}

const said = {
  type: 'object',
  properties: { type: { const: 'said' }, from: { type: 'string' }, text: { type: 'string' } },
  required: ['type', 'from', 'text'],
  additionalProperties: false,
}

function codec (spec: MessageSchemaSpec<string>, compilers = adapterCompilers()): MessageCodec<string> {
  return compileMessageCodec(spec, compilers)
}

t.test('a valid message is parsed and validated', async t => {
  const c = codec({ message: chat })
  t.ok(c.decodes)
  t.notOk(c.encodes)
  const decoded = c.decode(text({ type: 'join', name: 'ann' }), false)
  t.same(decoded, { ok: true, value: { type: 'join', name: 'ann' }, handler: undefined })
})

t.test('each kind of invalid message has its code, close code and fixed text', async t => {
  const c = codec({ message: chat })
  const cases: Array<[Buffer, boolean, string, number]> = [
    [text('{"type": "join",'), false, ErrorCodes.INVALID_JSON, 1007],
    [text(''), false, ErrorCodes.INVALID_JSON, 1007],
    [text({ type: 'join', name: 'x'.repeat(33) }), false, ErrorCodes.INVALID_MESSAGE, 1008],
    [text({ type: 'leave' }), false, ErrorCodes.INVALID_MESSAGE, 1008],
    [text([1, 2]), false, ErrorCodes.INVALID_MESSAGE, 1008],
    [text('null'), false, ErrorCodes.INVALID_MESSAGE, 1008],
    [text({ type: 'join' }), true, ErrorCodes.BINARY_NOT_ALLOWED, 1003],
  ]
  for (const [data, binary, code, closeCode] of cases) {
    const decoded = c.decode(data, binary)
    if (decoded.ok) {
      t.fail(`${data.toString()} was accepted`)
      continue
    }
    t.type(decoded.error, InvalidMessageError)
    t.equal(decoded.error.code, code, data.toString().slice(0, 40))
    t.equal(decoded.error.closeCode, closeCode)
    t.equal(INVALID_MESSAGE_CLOSE_CODES[decoded.error.code], closeCode)
    t.notMatch(decoded.error.message, data.toString().slice(0, 8) || 'never', 'the message does not quote the payload')
  }
})

t.test('a schema mismatch carries the validator errors; bad JSON its SyntaxError', async t => {
  const c = codec({ message: chat })
  const mismatch = c.decode(text({ type: 'join', name: 'x'.repeat(33) }), false)
  t.equal(mismatch.ok, false)
  if (mismatch.ok) return
  t.equal(mismatch.error.validation?.[0]?.keyword, 'maxLength')
  t.equal(mismatch.error.validation?.[0]?.instancePath, '/name')
  t.equal(mismatch.raw, JSON.stringify({ type: 'join', name: 'x'.repeat(33) }))

  const bad = c.decode(text('{nope'), false)
  t.equal(bad.ok, false)
  if (bad.ok) return
  t.type(bad.error.cause, SyntaxError)
  t.equal(bad.error.validation, undefined)
  t.equal(bad.raw, '{nope')
  // The cause is logged: V8's own message would quote the payload.
  const secret = c.decode(text('password=hunter2'), false)
  if (!secret.ok) {
    t.notMatch(String((secret.error.cause as Error).message), /password|hunter/, 'no payload in the cause')
    t.notMatch(secret.error.message, /password|hunter/)
  } else t.fail('decoded')
  const positioned = c.decode(text('{"a": 1,}'), false)
  t.equal(positioned.ok, false, 'a trailing comma is refused')
  if (!positioned.ok) t.match((positioned.error.cause as Error).message, /^not valid JSON( at position \d+)?$/)

  const binary = c.decode(Buffer.from([1, 2, 3]), true)
  t.equal(binary.ok, false)
  if (!binary.ok) t.same(binary.raw, Buffer.from([1, 2, 3]), 'a binary message is handed on as a Buffer')
})

t.test('the validator options apply: Fastify\'s defaults strip extra properties and coerce', async t => {
  const c = codec({ message: chat })
  const stripped = c.decode(text({ type: 'say', text: 'hi', admin: true }), false)
  t.same(stripped, { ok: true, value: { type: 'say', text: 'hi' }, handler: undefined })

  const strict = codec({ message: chat }, adapterCompilers({ removeAdditional: false, coerceTypes: false }))
  const refused = strict.decode(text({ type: 'say', text: 'hi', admin: true }), false)
  t.equal(refused.ok, false)
  if (!refused.ok) t.equal(refused.error.validation?.[0]?.keyword, 'additionalProperties')

  const root = codec({ message: { type: 'number' } })
  t.same(root.decode(text('"42"'), false), { ok: true, value: 42, handler: undefined }, 'a coerced root value is kept')
})

t.test('prototype poisoning: __proto__ and constructor.prototype are invalid JSON by default', async t => {
  const c = codec({ message: { type: 'object' } })
  for (const payload of [
    '{"__proto__": {"polluted": true}}',
    '{"a": {"__proto__": {"polluted": true}}}',
    '{"\\u005f_proto__": {"polluted": true}}',
    '{"constructor": {"prototype": {"polluted": true}}}',
    '[{"x": {"constructor": {"prototype": {"polluted": true}}}}]',
  ]) {
    const decoded = c.decode(text(payload), false)
    t.equal(decoded.ok, false, payload)
    if (!decoded.ok) t.equal(decoded.error.code, ErrorCodes.INVALID_JSON)
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is untouched')

  const removing = codec({ message: { type: 'object' }, parse: { protoAction: 'remove', constructorAction: 'remove' } })
  const decoded = removing.decode(text('{"ok": 1, "__proto__": {"polluted": true}}'), false)
  t.equal(decoded.ok, true)
  if (decoded.ok) {
    t.same(decoded.value, { ok: 1 })
    t.notOk(Object.hasOwn(decoded.value as object, '__proto__'), 'the key was removed')
    t.equal(Object.getPrototypeOf(decoded.value), Object.prototype)
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined)
  // A constructor key that is not a prototype path is ordinary data.
  t.equal(c.decode(text({ constructor: 'x' }), false).ok, true)
})

t.test('deep nesting is parsed and refused without exhausting the stack', async t => {
  const c = codec({ message: chat })
  const depth = 100_000
  const decoded = c.decode(Buffer.from('['.repeat(depth) + ']'.repeat(depth)), false)
  t.equal(decoded.ok, false)
  if (!decoded.ok) t.equal(decoded.error.code, ErrorCodes.INVALID_MESSAGE)
  const deepObject = c.decode(Buffer.from('{"a":'.repeat(depth) + '1' + '}'.repeat(depth)), false)
  t.equal(deepObject.ok, false)
  if (!deepObject.ok) t.equal(deepObject.error.code, ErrorCodes.INVALID_MESSAGE)
})

t.test('messages: routed by the discriminator, each validated by its own schema', async t => {
  const c = codec({
    messages: {
      join: { schema: { type: 'object', properties: { type: { const: 'join' }, name: { type: 'string' } }, required: ['type', 'name'] }, handler: 'onJoin' },
      ping: { handler: 'onPing' },
    },
  })
  t.ok(c.decodes)
  t.same(c.decode(text({ type: 'join', name: 'a' }), false), { ok: true, value: { type: 'join', name: 'a' }, handler: 'onJoin' })
  t.same(c.decode(text({ type: 'ping' }), false), { ok: true, value: { type: 'ping' }, handler: 'onPing' })

  const invalid = c.decode(text({ type: 'join' }), false)
  t.equal(!invalid.ok && invalid.error.code, ErrorCodes.INVALID_MESSAGE)

  for (const payload of [{ type: 'leave' }, { name: 'no type' }, { type: 42 }, { type: 'constructor' }, { type: '__proto__' }, { type: 'toString' }, 'ping', ['ping'], null]) {
    const decoded = c.decode(text(JSON.stringify(payload)), false)
    t.equal(!decoded.ok && decoded.error.code, ErrorCodes.UNKNOWN_MESSAGE_TYPE, JSON.stringify(payload))
    t.equal(!decoded.ok && decoded.error.closeCode, 1008)
  }
  // An inherited property does not name a type.
  const inherited = c.decode(text('{"__proto__": {"type": "ping"}}'), false)
  t.equal(inherited.ok, false)
})

t.test('a custom discriminator', async t => {
  const c = codec({ discriminator: 'kind', messages: { hello: { handler: 'h' } } })
  t.same(c.decode(text({ kind: 'hello' }), false), { ok: true, value: { kind: 'hello' }, handler: 'h' })
  const wrongKey = c.decode(text({ type: 'hello' }), false)
  t.equal(!wrongKey.ok && wrongKey.error.code, ErrorCodes.UNKNOWN_MESSAGE_TYPE)
  t.equal(c.envelope(ErrorCodes.UNKNOWN_MESSAGE_TYPE), '{"kind":"error","error":{"code":"WS_ERR_UNKNOWN_MESSAGE_TYPE","message":"unknown message type"}}')
})

t.test('schema.message then messages: both apply', async t => {
  const c = codec({
    message: { type: 'object', required: ['id'], properties: { id: { type: 'integer' } } },
    messages: { a: { handler: 'a' } },
  })
  t.same(c.decode(text({ type: 'a', id: 1 }), false), { ok: true, value: { type: 'a', id: 1 }, handler: 'a' })
  const noId = c.decode(text({ type: 'a' }), false)
  t.equal(!noId.ok && noId.error.code, ErrorCodes.INVALID_MESSAGE)
})

t.test('the close policy closes with the close code and the fixed text', async t => {
  const c = codec({ message: chat })
  const socket = new FakeSocket()
  for (const [payload, binary] of [['{', false], ['{"type":"nope"}', false], ['x', true]] as const) {
    const decoded = c.decode(Buffer.from(payload), binary)
    if (!decoded.ok) t.equal(c.refuse(socket, decoded.error, decoded.raw), 'close')
  }
  t.same(socket.closed, [
    [1007, 'message is not valid JSON'],
    [1008, 'message does not match the schema'],
    [1003, 'binary messages are not accepted'],
  ])
  t.equal(socket.invalidMessages, 3)
  t.same(socket.sent, [])
})

t.test('the reply policy sends the envelope, nothing of the payload or the validator', async t => {
  const c = codec({ message: chat, invalidMessage: 'reply' })
  const socket = new FakeSocket()
  const decoded = c.decode(text({ type: 'join', name: 'secret-'.repeat(10) }), false)
  t.equal(decoded.ok, false)
  if (decoded.ok) return
  t.equal(c.refuse(socket, decoded.error, decoded.raw), 'reply')
  t.same(socket.sent.map(s => JSON.parse(s)), [{ type: 'error', error: { code: 'WS_ERR_INVALID_MESSAGE', message: 'message does not match the schema' } }])
  t.notMatch(socket.sent[0], /secret|maxLength|\/name/)
  t.same(socket.closed, [])
  t.equal(socket.invalidMessages, 1)
})

t.test('the ignore policy only counts', async t => {
  const c = codec({ message: chat, invalidMessage: 'ignore' })
  const socket = new FakeSocket()
  for (let i = 0; i < 3; i++) {
    const decoded = c.decode(text('nope'), false)
    if (!decoded.ok) t.equal(c.refuse(socket, decoded.error, decoded.raw), 'ignore')
  }
  t.equal(socket.invalidMessages, 3)
  t.same(socket.closed, [])
  t.same(socket.sent, [])
})

t.test('a hook decides, acts itself, or fails', async t => {
  const seen: Array<[string, string | Buffer]> = []
  let decision: ReturnType<Extract<InvalidMessagePolicy, Function>> = 'reply'
  const hook: InvalidMessagePolicy<FakeSocket> = (socket, error, raw) => {
    seen.push([error.code, raw])
    return decision
  }
  const c = codec({ message: chat, invalidMessage: hook })
  const socket = new FakeSocket()
  const refuse = (payload: string): ReturnType<typeof c.refuse> => {
    const decoded = c.decode(Buffer.from(payload), false)
    if (decoded.ok) throw new Error('accepted')
    return c.refuse(socket, decoded.error, decoded.raw)
  }
  t.equal(refuse('{'), 'reply')
  decision = 'close'
  t.equal(refuse('{"type":"x"}'), 'close')
  decision = 'ignore'
  t.equal(refuse('1'), 'ignore')
  decision = undefined
  t.equal(refuse('2'), undefined, 'nothing returned: the hook handled it')
  t.same(seen, [['WS_ERR_INVALID_JSON', '{'], ['WS_ERR_INVALID_MESSAGE', '{"type":"x"}'], ['WS_ERR_INVALID_MESSAGE', '1'], ['WS_ERR_INVALID_MESSAGE', '2']])
  t.equal(socket.invalidMessages, 4)
  t.equal(socket.sent.length, 1)
  t.same(socket.closed, [[1008, 'message does not match the schema']])

  decision = 'explode' as 'close'
  t.throws(() => refuse('3'), TypeError, 'an unknown decision is a bug in the hook')

  const failures: unknown[] = []
  const asyncCodec = codec({ message: chat, invalidMessage: async () => { throw new Error('hook failed') } })
  const decoded = asyncCodec.decode(text('{'), false)
  t.ok(!decoded.ok)
  if (decoded.ok) return
  const running = asyncCodec.refuse(socket, decoded.error, decoded.raw, cause => failures.push(cause))
  t.type(running, Promise, 'an async hook: a promise that settles with it, so a lent message can be kept until then')
  await running
  t.match(failures, [{ message: 'hook failed' }], 'an async hook\'s rejection is reported, and the promise returned still resolves')
})

t.test('a message nested deeper than a recursive schema\'s validator can follow is refused as a mismatch', async t => {
  const tree = { $id: 'tree', type: 'object', properties: { child: { $ref: 'tree' } } }
  // With Fastify's Ajv options (addUsedSchema: false) a schema's $ref to its
  // own $id resolves once it is added to the instance, as in Fastify itself
  // (inline, Fastify refuses to build it too); the compilers then find it by $id.
  const ajv = createAjv()
  ajv.addSchema(tree)
  const c = codec({ message: tree }, ajvCompilers(ajv))
  let deep = '{}'
  for (let i = 0; i < 20_000; i++) deep = `{"child":${deep}}`
  const decoded = c.decode(Buffer.from(deep), false)
  t.match(decoded, { ok: false, error: { code: ErrorCodes.INVALID_MESSAGE } }, 'the peer\'s input, not a validator failure (1011)')
  t.match(c.decode(text({ child: { child: {} } }), false), { ok: true }, 'a shallow tree is valid')
})

t.test('send: validated, then serialized; a mismatch throws and returns nothing to send', async t => {
  const c = codec({ send: said })
  t.ok(c.encodes)
  t.notOk(c.decodes, 'a send schema alone leaves inbound messages raw')
  t.equal(c.encode({ type: 'said', from: 'a', text: 'b' }), '{"type":"said","from":"a","text":"b"}')

  for (const bad of [{ type: 'said', from: 'a' }, { type: 'other', from: 'a', text: 'b' }, 'a string', null, [1]]) {
    const error = t.throws(() => c.encode(bad), InvalidOutboundError, JSON.stringify(bad)) as InvalidOutboundError
    t.equal(error.code, ErrorCodes.INVALID_OUTBOUND)
    t.equal(error.closeCode, 0)
  }
  const error = t.throws(() => c.encode({ type: 'said', from: 'a' })) as InvalidOutboundError
  t.equal(error.validation?.[0]?.keyword, 'required')

  const strict = codec({ send: said }, adapterCompilers({ removeAdditional: false }))
  t.throws(() => strict.encode({ type: 'said', from: 'a', text: 'b', secret: 1 }), { code: 'WS_ERR_INVALID_OUTBOUND' }, 'extra properties are refused by a strict validator')
  t.equal(c.encode({ type: 'said', from: 'a', text: 'b', secret: 1 }), '{"type":"said","from":"a","text":"b"}', 'and never serialized by the default one')

  const failing = new MessageCodec({ send: { serialize: () => { throw new Error('cannot') } } })
  t.throws(() => failing.encode({}), { code: 'WS_ERR_INVALID_OUTBOUND', message: /cannot/ })
  t.throws(() => codec({ message: chat }).encode({}), TypeError, 'no send schema')
})

t.test('send: a value with no JSON form in a free-form part of the schema throws; nothing that is not JSON goes out', async t => {
  const event = codec({ send: { type: 'object', properties: { type: { const: 'event' }, data: {} }, required: ['type'] } })
  for (const [what, data] of [['a function', () => 1], ['a symbol', Symbol('s')]] as const) {
    t.throws(() => event.encode({ type: 'event', data }), { code: 'WS_ERR_INVALID_OUTBOUND', message: /no JSON form/ }, what)
  }
  t.throws(() => codec({ send: { type: 'array', items: {} } }).encode([1, undefined]), { code: 'WS_ERR_INVALID_OUTBOUND' }, 'undefined in an array')
  const anything = codec({ send: {} })
  t.throws(() => anything.encode(undefined), { code: 'WS_ERR_INVALID_OUTBOUND' }, 'undefined at the root')
  t.throws(() => anything.encode(() => 1), { code: 'WS_ERR_INVALID_OUTBOUND' }, 'a function at the root')
  t.equal(event.encode({ type: 'event', data: 'undefined' }), '{"type":"event","data":"undefined"}', 'the word inside a string is JSON')
  t.equal(event.encode({ type: 'event', data: { undefined: [null] } }), '{"type":"event","data":{"undefined":[null]}}', 'and as a key')
  t.equal(event.encode({ type: 'event', data: [':undefined,', 'x'] }), '{"type":"event","data":[":undefined,","x"]}', 'and inside a string where it looks pasted')
  t.equal(event.encode({ type: 'event', data: { n: 1 } }), '{"type":"event","data":{"n":1}}')
})

t.test('send: a value with toJSON() is validated as what the serializer writes, its toJSON()', async t => {
  const short = codec({ send: { type: 'object', properties: { type: { const: 'said' }, text: { type: 'string', maxLength: 5 } }, required: ['type', 'text'] } })
  class Said {
    readonly type = 'said'
    constructor (readonly text: string, private readonly body: string) {}
    toJSON (): unknown { return { type: this.type, text: this.body } }
  }
  t.throws(() => short.encode(new Said('short', 'x'.repeat(40))), { code: 'WS_ERR_INVALID_OUTBOUND' }, 'its toJSON() breaks maxLength')
  t.equal(short.encode(new Said('a long text, never written', 'hi')), '{"type":"said","text":"hi"}', 'what it writes matches')
  const stamp = codec({ send: { type: 'string', minLength: 24 } })
  t.equal(stamp.encode(new Date(0)), '"1970-01-01T00:00:00.000Z"', 'a Date, as its ISO string')
})

t.test('runValidator speaks every result a Fastify validator compiler may return', async t => {
  const withValue = Object.assign((data: unknown) => ({ value: { wrapped: data } }), {})
  t.same(runValidator(withValue, 1), { ok: true, value: { wrapped: 1 } })
  t.same(runValidator(() => ({ error: [{ keyword: 'k', instancePath: '', schemaPath: '#', params: {} }] }), 1),
    { ok: false, issues: [{ keyword: 'k', instancePath: '', schemaPath: '#', params: {} }], cause: undefined })
  const joiError = Object.assign(new Error('"a" is required'), { validation: [{ keyword: 'required', instancePath: '', schemaPath: '#', params: {} }] })
  const joi = runValidator(() => ({ error: joiError }), 1)
  t.equal(joi.ok, false)
  if (!joi.ok) {
    t.equal(joi.cause, joiError)
    t.equal(joi.issues?.length, 1)
  }
  t.same(runValidator(() => undefined, 5), { ok: true, value: 5 }, 'anything else passes, as in Fastify')
  t.same(runValidator(() => ({}), 5), { ok: true, value: 5 })
  t.throws(() => runValidator(async () => true, 1), TypeError, 'async validators cannot keep messages in order')
})

t.test('the route options are checked when the route is declared', async t => {
  t.throws(() => checkMessageSpec({ messages: { a: { handler: () => {} } } }, true, '/x'), /either a message handler or messages/)
  t.throws(() => checkMessageSpec({ messages: { a: {} as never } }, false, '/x'), /messages\.a needs a handler/)
  t.throws(() => checkMessageSpec({ discriminator: '' }, false, '/x'), /discriminator/)
  t.throws(() => checkMessageSpec({ invalidMessage: 'drop' as never }, false, '/x'), /invalidMessage must be/)
  t.doesNotThrow(() => checkMessageSpec({ message: {}, invalidMessage: 'reply', discriminator: 'kind' }, true, '/x'))
  t.throws(() => new MessageCodec({ invalidMessage: 'drop' as never }), TypeError)
  t.equal(hasMessageSchemas({}), false)
  t.equal(hasMessageSchemas({ invalidMessage: 'reply' }), false, 'a policy alone does not make a JSON route')
  t.equal(hasMessageSchemas({ send: {} }), true)
  t.equal(hasMessageSchemas({ messages: {} }), true)
})

/**
 * lib/express/schemas.ts: the Express adapter's schema compilers. Ajv set up
 * as Fastify's default validator (its options, frozen, and ajv-formats);
 * validators looked up by `$id` in the Ajv instance before compiling; send
 * serializers that resolve `$ref`s to the schemas added to that instance,
 * but not to JSON Schema's own meta-schemas (ids under json-schema.org).
 */
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import t from 'tap'
import { Ajv } from 'ajv'
import { DEFAULT_AJV_OPTIONS, ajvCompilers, createAjv } from '../../lib/express/schemas.js'

t.test('DEFAULT_AJV_OPTIONS: Fastify\'s defaults, frozen', async t => {
  t.same(DEFAULT_AJV_OPTIONS, { coerceTypes: 'array', useDefaults: true, removeAdditional: true, addUsedSchema: false, allErrors: false })
  t.ok(Object.isFrozen(DEFAULT_AJV_OPTIONS), 'frozen')
  t.throws(() => { (DEFAULT_AJV_OPTIONS as { allErrors: boolean }).allErrors = true }, TypeError, 'an adapter cannot change them for the others')
  t.equal(DEFAULT_AJV_OPTIONS.allErrors, false)

  // The very options of the Fastify installed here (@fastify/ajv-compiler),
  // but for its uriResolver: fast-uri, which Ajv 8 uses by default.
  const require = createRequire(import.meta.url)
  const fastifyDir = dirname(require.resolve('fastify'))
  const fastifyDefaults = require(require.resolve('@fastify/ajv-compiler/lib/default-ajv-options.js', { paths: [fastifyDir] })) as Record<string, unknown>
  const { uriResolver, ...rest } = fastifyDefaults
  t.ok(uriResolver !== undefined, 'Fastify sets a uriResolver')
  t.same(DEFAULT_AJV_OPTIONS, rest, 'the same as Fastify\'s default-ajv-options')
})

t.test('createAjv: a private instance with those options and ajv-formats', async t => {
  const ajv = createAjv()
  t.not(ajv, createAjv(), 'one per call')
  const validate = ajv.compile({
    type: 'object',
    properties: { email: { type: 'string', format: 'email' }, tags: { type: 'array', items: { type: 'string' } }, n: { type: 'number', default: 1 } },
    additionalProperties: false,
  })
  const data: Record<string, unknown> = { email: 'a@example.com', tags: 'one', extra: true }
  t.ok(validate(data), 'valid')
  t.same(data, { email: 'a@example.com', tags: ['one'], n: 1 }, 'coerced to an array, the default filled in, the extra property removed')
  t.notOk(validate({ email: 'not an email' }), 'formats are checked')
  t.equal(validate.errors?.[0]?.keyword, 'format')
  t.notOk(validate({ email: 1, tags: {} }))
  t.equal(validate.errors?.length, 1, 'the first error only (allErrors: false)')
})

const counted = { $id: 'counted', type: 'object', properties: { n: { type: 'number' } }, required: ['n'] }

t.test('validator: a schema with an $id added to the Ajv instance is taken from it, not compiled again', async t => {
  const ajv = createAjv()
  ajv.addSchema(counted)
  const { validator } = ajvCompilers(ajv)
  const validate = validator(counted, 'message')
  t.equal(validate, ajv.getSchema('counted'), 'the instance\'s own compiled validator')
  t.equal(validator({ ...counted }, 'message'), validate, 'found by $id, whatever object carries it')
  t.equal(validator({ $id: 'counted', type: 'string' }, 'send'), validate, 'the $id wins over the object it came in')
  t.ok(validate({ n: 1 }))
  t.notOk(validate({}))
})

t.test('validator: a schema without an $id, or one the instance does not have, is compiled', async t => {
  const ajv = createAjv()
  const { validator } = ajvCompilers(ajv)
  const plain = validator({ type: 'string', maxLength: 2 }, 'message')
  t.ok(plain('ab'))
  t.notOk(plain('abc'))
  const unknownId = validator({ $id: 'not-added', type: 'integer' }, 'message')
  t.ok(unknownId(3))
  t.notOk(unknownId('3x'))
  t.equal(ajv.getSchema('not-added'), undefined, 'compiling does not add it (addUsedSchema: false)')
  t.ok(validator(true, 'message')('anything'), 'a boolean schema has no $id to look up, and compiles')
})

t.test('serializer: $refs resolve to the schemas added to the instance, not to ids under json-schema.org', async t => {
  const ajv = new Ajv({ ...DEFAULT_AJV_OPTIONS })
  ajv.addSchema({ $id: 'https://example.com/item', type: 'object', properties: { x: { type: 'integer' } } })
  ajv.addSchema({ $id: 'item', type: 'object', properties: { y: { type: 'string' } } })
  ajv.addSchema({ $id: 'http://json-schema.org/custom', type: 'string' })
  ajv.addSchema({ $id: 'https://json-schema.org/custom-too', type: 'string' })
  t.ok(Object.keys(ajv.schemas).some(id => id.startsWith('http://json-schema.org/draft-07/schema')), 'the instance holds the draft-07 meta-schema too')
  const { serializer } = ajvCompilers(ajv)
  t.equal(serializer({ $ref: 'https://example.com/item' })({ x: 1, other: 2 }), '{"x":1}', 'an added schema, by URL id')
  t.equal(serializer({ $ref: 'item' })({ y: 'a', other: 2 }), '{"y":"a"}', 'an added schema, by plain id')
  t.equal(serializer({ type: 'object', properties: { list: { type: 'array', items: { $ref: 'item' } } } })({ list: [{ y: 'b' }] }), '{"list":[{"y":"b"}]}', 'inside another schema')
  t.throws(() => serializer({ $ref: 'http://json-schema.org/custom' }), /Cannot resolve ref "http:\/\/json-schema\.org\/custom/, 'an http://json-schema.org/ id is left out')
  t.throws(() => serializer({ $ref: 'https://json-schema.org/custom-too' }), /Cannot resolve ref "https:\/\/json-schema\.org\/custom-too/, 'and an https:// one')
  t.equal(serializer({ type: 'object', properties: { a: { type: 'string' } } })({ a: 'z' }), '{"a":"z"}', 'a schema without refs, beside the meta-schema')
})

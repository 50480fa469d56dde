/**
 * Schema compilers for the Express adapter's JSON routes. Express has no
 * schema compilers of its own, so messages are validated with Ajv, set up
 * like Fastify's default validator (coercion of arrays, defaults, removal of
 * additional properties, ajv-formats, no `allErrors`), and `send()` is
 * serialized with fast-json-stringify, as Fastify's default serializer does.
 */
import { Ajv, type Options as AjvOptions } from 'ajv'
import formatsModule, { type FormatsPlugin } from 'ajv-formats'
import fastJson from 'fast-json-stringify'
import type { MessageSerializer, MessageValidator, SchemaCompilers } from '../core/messages.js'

/** Fastify's default Ajv options (`@fastify/ajv-compiler`). */
export const DEFAULT_AJV_OPTIONS: Readonly<AjvOptions> = Object.freeze({
  coerceTypes: 'array',
  useDefaults: true,
  removeAdditional: true,
  addUsedSchema: false,
  // `allErrors: true` lets a crafted message make validation slow.
  allErrors: false,
})

// ajv-formats is CommonJS with `exports.default`: the default import is `module.exports`.
const addFormats = (formatsModule as unknown as { default: FormatsPlugin }).default

/** A private Ajv instance with Fastify's defaults and formats. */
export function createAjv (): Ajv {
  const ajv = new Ajv({ ...DEFAULT_AJV_OPTIONS })
  addFormats(ajv)
  return ajv
}

/** Compilers over one Ajv instance; schemas with an `$id` are compiled once. */
export function ajvCompilers (ajv: Ajv): SchemaCompilers {
  return {
    validator (schema): MessageValidator {
      const id = typeof schema === 'object' && schema !== null ? (schema as { $id?: unknown }).$id : undefined
      if (typeof id === 'string') {
        const known = ajv.getSchema(id)
        if (known !== undefined) return known as MessageValidator
      }
      return ajv.compile(schema as object) as MessageValidator
    },
    serializer (schema): MessageSerializer {
      // The schemas registered in the Ajv instance (`ajv.addSchema`), so a
      // send schema's `$ref` resolves as the message schema's does.
      return fastJson(schema as FastJsonSchema, { schema: registeredSchemas(ajv) }) as MessageSerializer
    },
  }
}

/** The schemas added to `ajv` by id, without JSON Schema's own meta-schemas. */
type FastJsonSchema = Parameters<typeof fastJson>[0]

function registeredSchemas (ajv: Ajv): Record<string, FastJsonSchema> {
  const schemas: Record<string, FastJsonSchema> = {}
  for (const id in ajv.schemas) {
    const schema = ajv.schemas[id]?.schema
    if (typeof schema === 'object' && schema !== null && !/^https?:\/\/json-schema\.org\//.test(id)) schemas[id] = schema as FastJsonSchema
  }
  return schemas
}

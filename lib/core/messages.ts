/**
 * JSON messages, framework-neutral: parse a text message safely, validate it
 * with an already compiled function, route it by its discriminator, and
 * decide what happens to a message that fails (the invalid-message policy);
 * on the way out, validate and serialize what a handler sends.
 *
 * Nothing here compiles a schema: the Fastify plugin hands in functions from
 * the instance's validator and serializer compilers, the Express adapter
 * functions from Ajv and fast-json-stringify. A validator is anything
 * Fastify accepts from a validator compiler: Ajv's `(data) => boolean` with
 * `.errors`, or a function returning `{ value }` / `{ error }`.
 */
import sjson from 'secure-json-parse'
import { CloseCodes, type CloseCode } from '../engine/close-codes.js'
import { ErrorCodes, WebSocketError, type ErrorCode } from '../engine/errors.js'

/** One validator error, as Ajv (and Fastify's `FastifySchemaValidationError`) report it. */
export interface ValidationIssue {
  keyword: string
  instancePath: string
  schemaPath: string
  params: Record<string, unknown>
  message?: string
}

/** A compiled validation function: Ajv's, or any Fastify validator compiler's result. */
export interface MessageValidator {
  (data: any, dataContext?: any): unknown
  errors?: readonly unknown[] | null
  /** Set on Ajv functions: they can replace a coerced root value through its parent. */
  schemaEnv?: unknown
}

/** A compiled serializer: fast-json-stringify's, or any Fastify serializer compiler's result. */
export type MessageSerializer = (data: any) => string

function hasToJSON (value: unknown): value is { toJSON (): unknown } {
  return typeof value === 'object' && value !== null && typeof (value as { toJSON?: unknown }).toJSON === 'function'
}

/** `undefined` where a JSON value would stand: at the start, or after `:`, `,` or `[`, and before `,`, `]`, `}` or the end. */
const PASTED_UNDEFINED = /(?:^|[:,[])undefined(?:[,\]}]|$)/

function isJson (text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/** What to do when `__proto__` or `constructor.prototype` keys arrive (secure-json-parse's options, Fastify's `onProtoPoisoning`/`onConstructorPoisoning`). */
export interface JsonParseOptions {
  /** Default `error`: the message is invalid JSON. `remove` deletes the key. `ignore` keeps it (unsafe). */
  protoAction?: 'error' | 'remove' | 'ignore'
  constructorAction?: 'error' | 'remove' | 'ignore'
}

/** The codes an invalid inbound message carries. */
export type InvalidMessageCode =
  | typeof ErrorCodes.INVALID_JSON
  | typeof ErrorCodes.INVALID_MESSAGE
  | typeof ErrorCodes.UNKNOWN_MESSAGE_TYPE
  | typeof ErrorCodes.BINARY_NOT_ALLOWED

/**
 * An inbound message was refused. `code` is stable; `closeCode` is what the
 * `close` policy sends; `validation` holds the validator's errors, for the
 * server log only (the peer never sees them, nor its own payload).
 */
export class InvalidMessageError extends WebSocketError {
  override name = 'InvalidMessageError'
  declare readonly code: InvalidMessageCode
  /** The validator's errors (Ajv's `errors`) when the message did not match a schema. */
  validation?: ValidationIssue[]

  constructor (code: InvalidMessageCode, cause?: unknown, validation?: ValidationIssue[]) {
    super(code, INVALID_MESSAGE_TEXT[code], INVALID_MESSAGE_CLOSE_CODES[code])
    if (cause !== undefined) this.cause = cause
    if (validation !== undefined) this.validation = validation
  }
}

/**
 * `send()` on a route with a `send` schema was given a value that does not
 * match it. Nothing was sent; the connection stays open.
 */
export class InvalidOutboundError extends WebSocketError {
  override name = 'InvalidOutboundError'
  declare readonly code: typeof ErrorCodes.INVALID_OUTBOUND
  validation?: ValidationIssue[]

  constructor (message: string, cause?: unknown, validation?: ValidationIssue[]) {
    super(ErrorCodes.INVALID_OUTBOUND, message, 0)
    if (cause !== undefined) this.cause = cause
    if (validation !== undefined) this.validation = validation
  }
}

/**
 * The close code of each refusal under the `close` policy:
 * - bad JSON: 1007, "data within a message that was not consistent with the type of the message" (RFC 6455 §7.4.1);
 * - schema mismatch, unknown type: 1008, "a message that violates its policy";
 * - a binary message on a JSON route: 1003, "a type of data it cannot accept (e.g., an endpoint that understands only text data MAY send this if it receives a binary message)".
 */
export const INVALID_MESSAGE_CLOSE_CODES: Readonly<Record<InvalidMessageCode, CloseCode>> = {
  [ErrorCodes.INVALID_JSON]: CloseCodes.INVALID_PAYLOAD,
  [ErrorCodes.INVALID_MESSAGE]: CloseCodes.POLICY_VIOLATION,
  [ErrorCodes.UNKNOWN_MESSAGE_TYPE]: CloseCodes.POLICY_VIOLATION,
  [ErrorCodes.BINARY_NOT_ALLOWED]: CloseCodes.UNSUPPORTED_DATA,
}

/** The fixed texts sent to the peer (close reason, envelope message): nothing from the validator or the payload. */
export const INVALID_MESSAGE_TEXT: Readonly<Record<InvalidMessageCode, string>> = {
  [ErrorCodes.INVALID_JSON]: 'message is not valid JSON',
  [ErrorCodes.INVALID_MESSAGE]: 'message does not match the schema',
  [ErrorCodes.UNKNOWN_MESSAGE_TYPE]: 'unknown message type',
  [ErrorCodes.BINARY_NOT_ALLOWED]: 'binary messages are not accepted',
}

/**
 * The `reply` policy's answer, one text message. Its discriminator property
 * is the route's (`type` unless `discriminator` says otherwise), so a client
 * that switches on `msg.type` sees `'error'`:
 *
 *     { "type": "error", "error": { "code": "WS_ERR_INVALID_MESSAGE", "message": "message does not match the schema" } }
 */
export type ErrorEnvelope<TDiscriminator extends string = 'type'> = { [K in TDiscriminator]: 'error' } & {
  error: { code: InvalidMessageCode, message: string }
}

/** What the policy may do with an invalid message. */
export type InvalidMessageAction = 'close' | 'reply' | 'ignore'

/**
 * A hook that decides: it may return an action, or act itself (send, close)
 * and return nothing. Every invalid message is counted in
 * `socket.invalidMessages` whatever is decided.
 */
export type InvalidMessageHook<TSocket = any> = (socket: TSocket, error: InvalidMessageError, raw: string | Buffer) => InvalidMessageAction | void | Promise<void>

/** `close` (the default), `reply`, `ignore`, or a hook that decides. */
export type InvalidMessagePolicy<TSocket = any> = InvalidMessageAction | InvalidMessageHook<TSocket>

export const DEFAULT_DISCRIMINATOR = 'type'

/** The socket surface the policy acts on. */
export interface InvalidMessageTarget {
  invalidMessages: number
  close (code: CloseCode, reason: string): void
  sendRaw (data: string): unknown
}

export type ValidationResult = { ok: true, value: unknown } | { ok: false, issues: ValidationIssue[] | undefined, cause: unknown }

/**
 * Runs a compiled validator the way Fastify does: `false` fails with
 * `.errors`; `{ error }` fails; `{ value }` replaces the data; anything else
 * passes. Ajv functions get a parent, so a coerced root value is kept. An
 * asynchronous validator cannot keep messages in order and is refused.
 */
export function runValidator (validate: MessageValidator, data: unknown): ValidationResult {
  let result: unknown
  let value = data
  try {
    if (validate.schemaEnv !== undefined) {
      const parent = { value: data }
      result = validate(data, { parentData: parent, parentDataProperty: 'value' })
      value = parent.value
    } else {
      result = validate(data)
    }
  } catch (error) {
    // A message nested deeper than the validator can recurse (a schema that
    // refers to itself): the peer's input, refused as a mismatch, not a
    // failure of the server.
    if (error instanceof RangeError && /call stack/i.test(error.message)) return { ok: false, issues: undefined, cause: error }
    throw error
  }
  if (result === true) return { ok: true, value }
  if (result === false) return { ok: false, issues: (validate.errors ?? undefined) as ValidationIssue[] | undefined, cause: undefined }
  if (typeof result === 'object' && result !== null) {
    if (typeof (result as PromiseLike<unknown>).then === 'function') {
      throw new TypeError('wsroutes: asynchronous validators are not supported for WebSocket messages')
    }
    const { error } = result as { error?: unknown }
    if (error !== undefined && error !== null && error !== false) {
      if (Array.isArray(error)) return { ok: false, issues: error as ValidationIssue[], cause: undefined }
      const issues = (error as { validation?: unknown }).validation
      return { ok: false, issues: Array.isArray(issues) ? issues as ValidationIssue[] : undefined, cause: error }
    }
    if ('value' in result) return { ok: true, value: (result as { value: unknown }).value }
  }
  return { ok: true, value }
}

/** A route's inbound handler for one message type. */
export interface MessageRoute<THandler> {
  validate?: MessageValidator
  handler: THandler
}

export interface MessageCodecOptions<THandler> {
  /** Validates every inbound message (the route's `schema.message`). */
  validate?: MessageValidator
  /** Handlers by message type (the route's `messages`): the message's discriminator property picks one. */
  routes?: Record<string, MessageRoute<THandler>> | Map<string, MessageRoute<THandler>>
  /** The property that names a message's type. Default `type`. */
  discriminator?: string
  /** Validates (optional but recommended: serializers do not reject) and serializes what `send()` is given. */
  send?: { validate?: MessageValidator, serialize: MessageSerializer }
  /** What happens to invalid inbound messages. Default `close`. */
  invalidMessage?: InvalidMessagePolicy
  /** `__proto__` / `constructor.prototype` handling. Default: both are an error (invalid JSON). */
  parse?: JsonParseOptions
}

/** A decoded inbound message: the value, and the handler its type selected (on a `messages` route). */
export type Decoded<THandler> =
  | { ok: true, value: unknown, handler: THandler | undefined }
  | { ok: false, error: InvalidMessageError, raw: string | Buffer }

/**
 * One route's compiled message handling. `decodes` is true when inbound
 * messages are JSON (a message schema or `messages`); `encodes` when `send()`
 * goes through the `send` schema.
 */
export class MessageCodec<THandler = unknown> {
  readonly decodes: boolean
  readonly encodes: boolean
  readonly discriminator: string
  readonly policy: InvalidMessagePolicy
  private readonly validate: MessageValidator | undefined
  private readonly routes: Map<string, MessageRoute<THandler>> | undefined
  private readonly sendValidate: MessageValidator | undefined
  private readonly serialize: MessageSerializer | undefined
  private readonly parseOptions: Required<JsonParseOptions>
  private readonly envelopes = new Map<InvalidMessageCode, string>()

  constructor (options: MessageCodecOptions<THandler>) {
    this.validate = options.validate
    const routes = options.routes
    this.routes = routes === undefined ? undefined : routes instanceof Map ? new Map(routes) : new Map(Object.entries(routes))
    this.discriminator = options.discriminator ?? DEFAULT_DISCRIMINATOR
    this.sendValidate = options.send?.validate
    this.serialize = options.send?.serialize
    this.policy = options.invalidMessage ?? 'close'
    checkInvalidMessagePolicy(this.policy)
    this.parseOptions = {
      protoAction: options.parse?.protoAction ?? 'error',
      constructorAction: options.parse?.constructorAction ?? 'error',
    }
    this.decodes = this.validate !== undefined || this.routes !== undefined
    this.encodes = this.serialize !== undefined
  }

  /** Parses, validates and routes one inbound message. A throwing validator throws (a server bug, not the peer's). */
  decode (data: Buffer, isBinary: boolean): Decoded<THandler> {
    if (isBinary) return { ok: false, error: new InvalidMessageError(ErrorCodes.BINARY_NOT_ALLOWED), raw: data }
    const text = data.toString()
    let value: unknown
    try {
      value = sjson.parse(text, undefined, this.parseOptions)
    } catch (cause) {
      return { ok: false, error: new InvalidMessageError(ErrorCodes.INVALID_JSON, withoutPayload(cause)), raw: text }
    }
    if (this.validate !== undefined) {
      const checked = runValidator(this.validate, value)
      if (!checked.ok) return { ok: false, error: new InvalidMessageError(ErrorCodes.INVALID_MESSAGE, checked.cause, checked.issues), raw: text }
      value = checked.value
    }
    if (this.routes === undefined) return { ok: true, value, handler: undefined }
    const type = typeof value === 'object' && value !== null && !Array.isArray(value) && Object.hasOwn(value, this.discriminator)
      ? (value as Record<string, unknown>)[this.discriminator]
      : undefined
    const route = typeof type === 'string' ? this.routes.get(type) : undefined
    if (route === undefined) return { ok: false, error: new InvalidMessageError(ErrorCodes.UNKNOWN_MESSAGE_TYPE), raw: text }
    if (route.validate !== undefined) {
      const checked = runValidator(route.validate, value)
      if (!checked.ok) return { ok: false, error: new InvalidMessageError(ErrorCodes.INVALID_MESSAGE, checked.cause, checked.issues), raw: text }
      value = checked.value
    }
    return { ok: true, value, handler: route.handler }
  }

  /**
   * Validates and serializes an outbound value; throws `InvalidOutboundError`
   * when it does not match the `send` schema or cannot be serialized.
   * The validator runs with its own options: Fastify's default Ajv removes
   * properties that `additionalProperties: false` forbids, fills defaults and
   * coerces types, in the object given.
   */
  encode (value: unknown): string {
    const serialize = this.serialize
    if (serialize === undefined) throw new TypeError('wsroutes: this route has no send schema')
    // The serializer writes what a value's `toJSON()` returns (an ORM
    // entity, a Decimal): that is what must match the schema. (Nested
    // values are validated as they are.)
    if (hasToJSON(value)) value = value.toJSON()
    if (this.sendValidate !== undefined) {
      const checked = runValidator(this.sendValidate, value)
      if (!checked.ok) throw new InvalidOutboundError('the message does not match the send schema; nothing was sent', checked.cause, checked.issues)
      value = checked.value
    }
    let text: unknown
    try {
      text = serialize(value)
    } catch (cause) {
      throw new InvalidOutboundError(`the message could not be serialized with the send schema: ${cause instanceof Error ? cause.message : String(cause)}`, cause)
    }
    // A free-form part of the schema (`{}`, `Type.Any()`, `Type.Unknown()`)
    // is written with JSON.stringify, which gives `undefined` for a
    // function, a symbol or `undefined`, and the serializer pastes that into
    // its output: not JSON. A substring search on every send; a parse only
    // when the word stands where a value would (inside a string it is
    // fine, and the parse tells the two apart).
    if (typeof text !== 'string' || (text.includes('undefined') && PASTED_UNDEFINED.test(text) && !isJson(text))) {
      throw new InvalidOutboundError('the message could not be serialized with the send schema: a value has no JSON form (undefined, a function or a symbol in a free-form part); nothing was sent')
    }
    return text
  }

  /** The `reply` policy's message for an error, in this route's discriminator. */
  envelope (code: InvalidMessageCode): string {
    let text = this.envelopes.get(code)
    if (text === undefined) {
      text = JSON.stringify({ [this.discriminator]: 'error', error: { code, message: INVALID_MESSAGE_TEXT[code] } })
      this.envelopes.set(code, text)
    }
    return text
  }

  /**
   * Applies the policy to an invalid message: counts it, then closes
   * (`error.closeCode`, the fixed text as reason), replies with the envelope,
   * ignores it, or asks the hook. A hook that throws throws; an async
   * hook's rejection goes to `failed`, and what is returned then is a
   * promise that settles with the hook (never rejecting), so a caller that
   * lent `raw` knows when the hook is done with it.
   */
  refuse (socket: InvalidMessageTarget, error: InvalidMessageError, raw: string | Buffer, failed?: (cause: unknown) => void): InvalidMessageAction | Promise<void> | undefined {
    socket.invalidMessages++
    let action: InvalidMessageAction
    if (typeof this.policy === 'function') {
      // A plain call, as every handler: `this` is not the codec.
      const policy = this.policy
      const decided: unknown = policy(socket, error, raw)
      if (decided === undefined) return undefined
      if (typeof decided === 'object' && decided !== null && typeof (decided as PromiseLike<unknown>).then === 'function') {
        return Promise.resolve(decided as PromiseLike<unknown>).then(ignoreValue, failed ?? ignoreValue)
      }
      checkInvalidMessagePolicy(decided)
      action = decided as InvalidMessageAction
    } else {
      action = this.policy
    }
    if (action === 'close') socket.close(error.closeCode as CloseCode, error.message)
    else if (action === 'reply') socket.sendRaw(this.envelope(error.code))
    return action
  }
}

/**
 * The parser's error, fit for logs: V8's JSON errors quote the text they
 * failed on ("Unexpected token 'p', "password=h"... is not valid JSON"), and
 * invalid messages are logged, so only the position is kept. The prototype
 * poisoning errors of secure-json-parse quote nothing and stay as they are.
 */
function withoutPayload (cause: unknown): SyntaxError {
  const message = cause instanceof Error ? cause.message : ''
  if (/forbidden prototype property/.test(message)) return cause as SyntaxError
  const position = /at position (\d+)/.exec(message)
  return new SyntaxError(position === null ? 'not valid JSON' : `not valid JSON at position ${position[1]}`)
}

const ACTIONS = new Set<unknown>(['close', 'reply', 'ignore'])

function ignoreValue (): void {}

/** Checks an `invalidMessage` option (a route's, or an adapter's default) where it is set. */
export function checkInvalidMessagePolicy (policy: unknown): void {
  if (typeof policy !== 'function' && !ACTIONS.has(policy)) {
    throw new TypeError(`wsroutes: invalidMessage must be 'close', 'reply', 'ignore' or a function, not ${JSON.stringify(policy)}`)
  }
}

// ------------------------------------------------------------ compiling

/** The schema-related options of a route, as a user writes them. */
export interface MessageSchemaSpec<THandler = unknown> {
  /** The schema of every inbound message. */
  message?: unknown
  /** The schema of what `send()` takes. */
  send?: unknown
  /** Handlers by message type, each with its own schema. */
  messages?: Record<string, { schema?: unknown, handler: THandler }>
  discriminator?: string
  invalidMessage?: InvalidMessagePolicy
  parse?: JsonParseOptions
}

/** How to turn schemas into functions: the framework's compilers, or Ajv and fast-json-stringify. */
export interface SchemaCompilers {
  validator (schema: unknown, use: 'message' | 'send'): MessageValidator
  serializer (schema: unknown): MessageSerializer
}

/** Whether a route uses JSON messages at all (any of `message`, `send`, `messages`). */
export function hasMessageSchemas (spec: MessageSchemaSpec<unknown>): boolean {
  return spec.message !== undefined || spec.send !== undefined || spec.messages !== undefined
}

/**
 * Checks a route's message options when the route is declared, so mistakes
 * fail at startup: `message` handler with `messages`, a `messages` entry
 * without a handler, a bad discriminator or policy.
 */
export function checkMessageSpec (spec: MessageSchemaSpec<unknown>, hasMessageHandler: boolean, route: string): void {
  if (spec.messages !== undefined) {
    if (typeof spec.messages !== 'object' || spec.messages === null) throw new TypeError(`wsroutes: ${route}: messages must be an object of { schema, handler } by message type`)
    if (hasMessageHandler) throw new TypeError(`wsroutes: ${route}: a route has either a message handler or messages, not both`)
    for (const [type, entry] of Object.entries(spec.messages)) {
      if (typeof entry !== 'object' || entry === null || typeof entry.handler !== 'function') {
        throw new TypeError(`wsroutes: ${route}: messages.${type} needs a handler function`)
      }
    }
  }
  if (spec.discriminator !== undefined && (typeof spec.discriminator !== 'string' || spec.discriminator === '')) {
    throw new TypeError(`wsroutes: ${route}: discriminator must be a non-empty property name`)
  }
  if (spec.invalidMessage !== undefined) checkInvalidMessagePolicy(spec.invalidMessage)
}

/** Compiles a route's schemas into a codec. The `send` schema is compiled twice: to validate, and to serialize. */
export function compileMessageCodec<THandler> (spec: MessageSchemaSpec<THandler>, compilers: SchemaCompilers): MessageCodec<THandler> {
  let routes: Map<string, MessageRoute<THandler>> | undefined
  if (spec.messages !== undefined) {
    routes = new Map()
    for (const [type, entry] of Object.entries(spec.messages)) {
      routes.set(type, {
        validate: entry.schema === undefined ? undefined : compilers.validator(entry.schema, 'message'),
        handler: entry.handler,
      })
    }
  }
  return new MessageCodec<THandler>({
    validate: spec.message === undefined ? undefined : compilers.validator(spec.message, 'message'),
    routes,
    discriminator: spec.discriminator,
    send: spec.send === undefined
      ? undefined
      : { validate: compilers.validator(spec.send, 'send'), serialize: compilers.serializer(spec.send) },
    invalidMessage: spec.invalidMessage,
    parse: spec.parse,
  })
}

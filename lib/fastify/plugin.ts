/**
 * The Fastify plugin: it takes the server's `upgrade` event, routes the
 * request through Fastify's own router, so the route's hooks and its
 * params/querystring/headers schemas run before the 101 (a hook's
 * `reply.code(401).send()` is a real HTTP answer), and only then runs the
 * handshake and the engine.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type {
  ContextConfigDefault,
  FastifyBaseLogger,
  FastifyInstance,
  FastifyPluginCallback,
  FastifyReply,
  FastifyRequest,
  FastifySchema,
  FastifyTypeProvider,
  FastifyTypeProviderDefault,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerBase,
  RawServerDefault,
  RouteGenericInterface,
  RouteHandlerMethod,
  RouteOptions,
  RouteShorthandOptions,
} from 'fastify'
import fp from 'fastify-plugin'
import { LIMIT_KEYS, checkShutdownReason, claimServer, pickLimits, UPGRADE_REQUIRED } from '../core/options.js'
import { checkInvalidMessagePolicy, checkMessageSpec, compileMessageCodec, hasMessageSchemas, type InvalidMessagePolicy, type MessageSchemaSpec } from '../core/messages.js'
import { RouteRunner } from '../core/route.js'
import { SocketRegistry } from '../core/registry.js'
import type { RouteSocket } from '../core/socket.js'
import type { RawData, WebSocket, WsLimits, WsMessageSchemas, WsRouteOptions } from '../core/types.js'
import { beginUpgrade, DEFAULT_HANDSHAKE_TIMEOUT, kUpgrade, refuseUpgrade, waitForEarlierResponse, type UpgradeRequest } from '../core/upgrade.js'
import { DEFAULT_CLOSE_TIMEOUT } from '../engine/connection.js'
import { decorateInjectWS } from './inject.js'

export interface WsPluginOptions extends WsLimits {
  /** Called for every error on any socket (after the route's own `error` handler), unless the route has a `wsErrorHandler`. */
  errorHandler?: (this: void, error: Error, socket: RouteSocket<FastifyRequest>, request: FastifyRequest | undefined) => void
  /** The reason sent with 1001 to every client when the app closes. Default 'server shutting down'. */
  shutdownReason?: string
  /**
   * Called when the app closes, after new upgrades are refused and before
   * the 1001s, with the open sockets: a goodbye broadcast goes out ahead of
   * each close frame. Awaited up to `closeTimeout`; a failure is logged.
   * On JSON routes use `socket.sendRaw` (the sockets' `send` schemas differ).
   */
  preClose?: (sockets: Iterable<WebSocket<RawData, FastifyRequest>>) => void | Promise<void>
  /** The default `invalidMessage` policy of JSON routes: `close` (default), `reply`, `ignore` or a function. A route's own option wins. */
  invalidMessage?: InvalidMessagePolicy<WebSocket<any, FastifyRequest>>
}

type MaybePromise<T> = T | Promise<T>

// Fastify's own type-provider calls (types/type-provider.d.ts), which its entry point does not export.
type CallValidatorTypeProvider<F extends FastifyTypeProvider, S> = (F & { schema: S })['validator']
type CallSerializerTypeProvider<F extends FastifyTypeProvider, S> = (F & { schema: S })['serializer']

/** What a route's `message` handler receives: the type of `schema.message` through the type provider, or `string | Buffer` without one. */
export type WsMessageType<TypeProvider extends FastifyTypeProvider, SchemaCompiler> =
  SchemaCompiler extends { message: infer Schema } ? CallValidatorTypeProvider<TypeProvider, Schema> : string | Buffer

/** What a route's `send()` takes: the type of `schema.send` through the type provider, or raw data without one. */
export type WsSendType<TypeProvider extends FastifyTypeProvider, SchemaCompiler> =
  SchemaCompiler extends { send: infer Schema } ? CallSerializerTypeProvider<TypeProvider, Schema> : RawData

/** `messages`, typed: each handler receives its own schema's type. `Messages` maps a message type to its schema. */
export type WsMessageRoutes<TypeProvider extends FastifyTypeProvider, TRequest, TSend, Messages> = {
  [Type in keyof Messages]: {
    /** The schema of this message type: the whole message, discriminator included. */
    schema?: Messages[Type]
    handler (this: void, socket: WebSocket<TSend, TRequest>, message: CallValidatorTypeProvider<TypeProvider, Messages[Type]>): MaybePromise<void>
  }
}

/** The request type of a ws route, resolved like Fastify resolves a handler's request. */
export type WsRequest<
  RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
  RawServer extends RawServerBase = RawServerDefault,
  RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
  SchemaCompiler extends FastifySchema = FastifySchema,
  TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
  ContextConfig = ContextConfigDefault,
  Logger extends FastifyBaseLogger = FastifyBaseLogger,
> = FastifyRequest<RouteGeneric, RawServer, RawRequest, SchemaCompiler, TypeProvider, ContextConfig, Logger>

/** `app.ws(path, options)`: Fastify's route shorthand options plus the ws handlers, limits and protocols. */
export type WsShorthandOptions<
  RawServer extends RawServerBase = RawServerDefault,
  RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
  RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
  RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
  ContextConfig = ContextConfigDefault,
  SchemaCompiler extends FastifySchema = FastifySchema,
  TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
  Logger extends FastifyBaseLogger = FastifyBaseLogger,
  Messages = Record<string, unknown>,
> = Omit<RouteShorthandOptions<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger>, 'ws'> &
  Omit<WsRouteOptions<
    WsRequest<RouteGeneric, RawServer, RawRequest, SchemaCompiler, TypeProvider, ContextConfig, Logger>,
    WsMessageType<TypeProvider, SchemaCompiler>,
    WsSendType<TypeProvider, SchemaCompiler>
  >, 'messages'> & {
    /** Answers plain HTTP requests to the same path; without it they get 426 Upgrade Required. */
    handler?: RouteHandlerMethod<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger>
    /**
     * Handlers by message type, each with its own schema: `{ join: { schema, handler }, say: { schema, handler } }`.
     * The message's `discriminator` property (default `type`) picks one; a missing or unknown type is an invalid message.
     */
    messages?: WsMessageRoutes<
      TypeProvider,
      WsRequest<RouteGeneric, RawServer, RawRequest, SchemaCompiler, TypeProvider, ContextConfig, Logger>,
      WsSendType<TypeProvider, SchemaCompiler>,
      Messages
    >
  }

declare module 'fastify' {
  interface FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider> {
    /** Declares a WebSocket route: `GET path`, upgraded after its hooks and schemas ran. */
    ws<
      RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
      ContextConfig = ContextConfigDefault,
      const SchemaCompiler extends FastifySchema = FastifySchema,
      const Messages extends Record<string, unknown> = Record<string, unknown>,
    >(
      path: string,
      options: WsShorthandOptions<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger, Messages>,
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>
  }

  /** A WebSocket route's schemas: `message` (inbound, parsed as JSON and validated) and `send` (what `send()` takes), next to `params`, `querystring`, `headers`. */
  interface FastifySchema extends WsMessageSchemas {}

  interface RouteShorthandOptions<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger> {
    /** Makes the route a WebSocket route too: upgrade requests get these handlers, plain requests the `handler`. */
    ws?: WsRouteOptions<
      FastifyRequest<RouteGeneric, RawServer, RawRequest, SchemaCompiler, TypeProvider, ContextConfig, Logger>,
      WsMessageType<TypeProvider, SchemaCompiler>,
      WsSendType<TypeProvider, SchemaCompiler>
    >
  }
}

const WS_KEYS = new Set<string>([...LIMIT_KEYS, 'handshakeTimeout', 'wsErrorHandler', 'open', 'message', 'close', 'drain', 'error', 'ping', 'pong', 'protocols', 'messages', 'discriminator', 'invalidMessage'])

function upgradeRequired (_request: FastifyRequest, reply: FastifyReply): void {
  reply.code(UPGRADE_REQUIRED.statusCode).headers(UPGRADE_REQUIRED.headers).send(UPGRADE_REQUIRED.body)
}

type OnRequestHook = (request: FastifyRequest, reply: FastifyReply, next: () => void) => void

/** Runs `hook` first among the route's own `onRequest` hooks (after the app's and its plugins'). */
function prependOnRequest (routeOptions: RouteOptions, hook: OnRequestHook): void {
  const onRequest = routeOptions.onRequest
  routeOptions.onRequest = [hook, ...(onRequest === undefined ? [] : Array.isArray(onRequest) ? onRequest : [onRequest])] as RouteOptions['onRequest']
}

/** On a GET route without `ws`: an upgrade gets the app's 404 (the route's hooks, schemas and handler do not run); plain requests go on. */
function upgradeNotFound (request: FastifyRequest, reply: FastifyReply, next: () => void): void {
  if ((request.raw as UpgradeRequest)[kUpgrade] === undefined) next()
  else reply.callNotFound()
}

/** A `send` a hook set on the reply before wsroutes' own hook (an own property), kept by `sendAnswer`. */
const kEarlierSend = Symbol('wsroutes.earlierSend')
type WatchedReply = FastifyReply & { [kEarlierSend]?: FastifyReply['send'] }

/**
 * An upgrade's `reply.send`, set as the reply's own property (other replies
 * keep the prototype's): it marks the upgrade answered, then sends with the
 * `send` the reply had, its prototype's or one an earlier hook set. One
 * function for all, no closure per upgrade.
 */
function sendAnswer (this: WatchedReply, payload?: unknown): FastifyReply {
  ;(this.request.raw as UpgradeRequest)[kUpgrade]?.markAnswered()
  const send = this[kEarlierSend] ?? (Object.getPrototypeOf(this) as FastifyReply).send
  return send.call(this, payload)
}

function methodsOf (options: RouteOptions): string[] {
  return Array.isArray(options.method) ? options.method : [options.method]
}

const plugin: FastifyPluginCallback<WsPluginOptions> = (fastify, options, done) => {
  const registry = new SocketRegistry()
  let defaults: WsLimits
  let shutdownReason: string
  try {
    defaults = pickLimits(options)
    if (options.invalidMessage !== undefined) checkInvalidMessagePolicy(options.invalidMessage)
    shutdownReason = checkShutdownReason(options.shutdownReason ?? 'server shutting down')
    claimServer(fastify.server)
  } catch (error) {
    // The registration fails (`register()` and `ready()` reject) rather than the process.
    done(error as Error)
    return
  }
  let closing = false

  fastify.decorate('ws', function ws (this: FastifyInstance, path: string, routeOptions: Record<string, unknown>) {
    const wsOptions: Record<string, unknown> = {}
    const httpOptions: Record<string, unknown> = {}
    for (const key in routeOptions) {
      if (WS_KEYS.has(key)) wsOptions[key] = routeOptions[key]
      else httpOptions[key] = routeOptions[key]
    }
    return this.route({ ...httpOptions, method: 'GET', url: path, handler: (httpOptions.handler as RouteHandlerMethod | undefined) ?? upgradeRequired, ws: wsOptions } as RouteOptions)
  } as any)

  fastify.addHook('onRoute', (routeOptions) => {
    const methods = methodsOf(routeOptions)
    if (!methods.includes('GET')) {
      if (routeOptions.ws !== undefined && !methods.includes('HEAD')) throw new Error(`wsroutes: the WebSocket route ${routeOptions.url} must use GET`)
      return
    }
    const httpHandler = routeOptions.handler
    const wsOptions = routeOptions.ws
    if (wsOptions === undefined) {
      // An upgrade to a path with no ws route gets the app's 404, as HTTP,
      // before any of this route's own hooks or schemas run for it.
      prependOnRequest(routeOptions, upgradeNotFound)
      return
    }
    const schema = routeOptions.schema as WsMessageSchemas | undefined
    const spec: MessageSchemaSpec<any> = {
      message: schema?.message,
      send: schema?.send,
      messages: wsOptions.messages,
      discriminator: wsOptions.discriminator,
      invalidMessage: wsOptions.invalidMessage ?? options.invalidMessage,
      // The JSON body parser's rules for __proto__ and constructor.prototype.
      parse: { protoAction: fastify.initialConfig.onProtoPoisoning, constructorAction: fastify.initialConfig.onConstructorPoisoning },
    }
    checkMessageSpec(spec, wsOptions.message !== undefined, routeOptions.url)
    // JSON routes compile their schemas with the route's own compilers on the
    // first upgrade (Fastify exposes them per request): a route-level
    // `validatorCompiler`, the instance's `setValidatorCompiler`, or the default Ajv.
    let compiled = !hasMessageSchemas(spec)
    const runner = new RouteRunner<FastifyRequest>({
      handlers: wsOptions as WsRouteOptions<FastifyRequest>,
      limits: { ...defaults, ...pickLimits(wsOptions) },
      protocols: wsOptions.protocols as WsRouteOptions<FastifyRequest>['protocols'],
      registry,
      logger: request => request.log,
      errorHandler: (wsOptions.wsErrorHandler as WsPluginOptions['errorHandler']) ?? options.errorHandler,
    })
    const handshakeTimeout = wsOptions.handshakeTimeout
    if (handshakeTimeout !== undefined) {
      // The route's deadline takes over once routing found it, ahead of the route's own hooks.
      prependOnRequest(routeOptions, function wsHandshakeTimeout (request: FastifyRequest, _reply: FastifyReply, next: () => void) {
        ;(request.raw as UpgradeRequest)[kUpgrade]?.setTimeout(handshakeTimeout)
        next()
      })
    }
    routeOptions.handler = function wsRouteHandler (this: FastifyInstance, request, reply) {
      const upgrade = (request.raw as UpgradeRequest)[kUpgrade]
      if (upgrade === undefined) return httpHandler.call(this, request, reply)
      if (!compiled) {
        try {
          runner.setMessageCodec(compileMessageCodec(spec, {
            // JSON messages are validated like a JSON body.
            validator: schema => request.compileValidationSchema(schema as Record<string, unknown>, 'body'),
            serializer: schema => reply.compileSerializationSchema(schema as Record<string, unknown>),
          }))
        } catch (error) {
          throw new Error(`wsroutes: compiling the message schemas of ${routeOptions.url} failed: ${(error as Error).message}`, { cause: error })
        }
        compiled = true
      }
      // A hook answered and let the request go on: that answer stands
      // (`PendingUpgrade.answered`; accept then declines), and Fastify, still
      // sending it, must keep the reply.
      if (!upgrade.answered) reply.hijack()
      runner.accept(upgrade, request)
    }
  })

  // A hook that calls `reply.send()` without returning the reply lets the
  // request go on to the route, and Fastify may write that answer only
  // later: after an async error handler, `preSerialization` or `onSend`
  // hook. The route must not upgrade such a request, so on upgrades
  // `reply.send` marks the upgrade answered the moment it is called. This
  // hook is the app's first when wsroutes is registered first; plain HTTP
  // requests pass with one property lookup.
  fastify.addHook('onRequest', function wsWatchReplies (request, reply, next) {
    if ((request.raw as UpgradeRequest)[kUpgrade] !== undefined) {
      // A `send` wrapped by a hook before this one is kept, and wrapped in turn.
      if (Object.hasOwn(reply, 'send')) (reply as WatchedReply)[kEarlierSend] = reply.send
      reply.send = sendAnswer
    }
    next()
  })

  /** Upgrades pipelined behind a response still being written (`waitForEarlierResponse`). */
  const waitingBehindResponses = new Set<Duplex>()

  function onUpgrade (request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (waitForEarlierResponse(request, socket, head, onUpgrade, waitingBehindResponses)) return
    if (closing) {
      refuseUpgrade(socket, 503, 'server shutting down')
      return
    }
    const response = beginUpgrade(request, socket, head, options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT)
    if (response === undefined) return
    try {
      // `response.req`: the request itself, or for an upgrade served as plain HTTP one that carries its body.
      fastify.routing(response.req, response)
    } catch (error) {
      fastify.log.error({ err: error }, 'wsroutes: routing an upgrade request failed')
      socket.destroy()
    }
  }
  fastify.server.on('upgrade', onUpgrade)
  // `app.injectWS()`: in-process upgrades through the same listener.
  decorateInjectWS(fastify, onUpgrade)

  fastify.addHook('preClose', async () => {
    // New upgrades get 503 from now on; `preClose` may say goodbye; open
    // sockets get 1001 and `closeTimeout` to answer, then whatever is left
    // is terminated.
    closing = true
    // Node no longer lists an upgraded socket, so `forceCloseConnections:
    // true` would miss one still waiting behind a response: closed here.
    if (fastify.initialConfig.forceCloseConnections === true) for (const socket of waitingBehindResponses) socket.destroy()
    await registry.closeAll(shutdownReason, options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT, options.preClose, (error, what) => {
      fastify.log.error({ err: error }, `wsroutes: ${what}`)
    })
  })
  fastify.addHook('onClose', (_instance, next) => {
    fastify.server.off('upgrade', onUpgrade)
    next()
  })
  done()
}

/** The wsroutes plugin: `fastify.register(wsroutes, options)`. */
export const wsroutes = fp(plugin, { fastify: '5.x', name: 'wsroutes' })

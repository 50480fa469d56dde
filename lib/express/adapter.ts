/**
 * The Express 5 adapter. It takes the HTTP server's `upgrade` event and runs
 * the request through the Express app itself, with a `ServerResponse` bound
 * to the raw socket: params, `app.use` prefixes, routers, auth middleware and
 * error middleware all run before any 101, and whatever they answer (a 401, a
 * `next(err)`, Express's 404) is a real HTTP response on the socket. Only the
 * last handler of a `ws` route runs the handshake and hands the socket to the
 * engine.
 *
 * `app.ws()` and `router.ws()` are installed on Express's application and
 * Router prototypes, so routes can be declared on any router, before or after
 * `wsExpress()` is called. A route finds the adapter that owns the server
 * through the request, so one app can serve several servers (HTTP and HTTPS),
 * each with its own limits and its own shutdown.
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { Duplex } from 'node:stream'
import express from 'express'
import type {
  Application,
  NextFunction,
  ParamsDictionary,
  PathParams,
  Query,
  Request,
  RequestHandler,
  RequestHandlerParams,
  Response,
  RouteParameters,
} from 'express-serve-static-core'
import type { Ajv } from 'ajv'
import {
  checkInvalidMessagePolicy,
  checkMessageSpec,
  compileMessageCodec,
  hasMessageSchemas,
  type InvalidMessagePolicy,
  type JsonParseOptions,
  type MessageSchemaSpec,
  type SchemaCompilers,
} from '../core/messages.js'
import { checkShutdownReason, claimServer, pickLimits, UPGRADE_REQUIRED } from '../core/options.js'
import { SocketRegistry } from '../core/registry.js'
import { RouteRunner, type RouteLogger } from '../core/route.js'
import type { RouteSocket } from '../core/socket.js'
import type { RawData, WebSocket, WsLimits, WsMessageSchemas, WsRouteOptions } from '../core/types.js'
import { beginUpgrade, DEFAULT_HANDSHAKE_TIMEOUT, kUpgrade, refuseUpgrade, waitForEarlierResponse, type UpgradeRequest } from '../core/upgrade.js'
import { DEFAULT_CLOSE_TIMEOUT } from '../engine/connection.js'
import { injectUpgrade, type InjectedSocket, type InjectWSOptions } from '../core/inject.js'
import { ajvCompilers, createAjv } from './schemas.js'

/** The pino-like logger the adapter writes to: `{ error, warn, debug }`, each `(object, message)`. */
export type WsLogger = RouteLogger

export interface WsExpressOptions extends WsLimits {
  /**
   * Where handler failures and socket errors are logged. Default: errors and
   * warnings to the console, debug messages nowhere.
   */
  logger?: WsLogger
  /** Called for every error on any socket (after the route's own `error` handler), unless the route has a `wsErrorHandler`. */
  errorHandler?: (this: void, error: Error, socket: RouteSocket<Request>, request: Request | undefined) => void
  /** The reason sent with 1001 to every client on shutdown. Default 'server shutting down'. */
  shutdownReason?: string
  /**
   * Called on shutdown (`close()` or `server.close()`), after new upgrades
   * are refused and before the 1001s, with the open sockets: a goodbye
   * broadcast goes out ahead of each close frame. Awaited up to
   * `closeTimeout`; a failure is logged. On JSON routes use `socket.sendRaw`.
   */
  preClose?: (sockets: Iterable<WebSocket<RawData, Request>>) => void | Promise<void>
  /** The default `invalidMessage` policy of JSON routes: `close` (default), `reply`, `ignore` or a function. A route's own option wins. */
  invalidMessage?: InvalidMessagePolicy<WebSocket<any, Request>>
  /**
   * The Ajv instance that compiles the message schemas. Default: a private
   * one per adapter with Fastify's default options and ajv-formats.
   */
  ajv?: Ajv
  /** What a JSON message's `__proto__` and `constructor.prototype` keys do. Default: both make it invalid JSON. */
  jsonParse?: JsonParseOptions
}

/**
 * The options object that ends `app.ws(path, ...middleware, options)`:
 * handlers, limits, protocols and, for JSON routes, `schema` (`message`,
 * `send`), `messages`, `discriminator` and `invalidMessage`.
 */
export interface WsExpressRouteOptions<TRequest = Request, TMessage = string | Buffer, TSend = RawData>
  extends WsRouteOptions<TRequest, TMessage, TSend> {
  /**
   * JSON messages: `message` is the JSON schema every inbound text message
   * is parsed and validated against (the handler gets the value), `send`
   * the schema `send()` validates and serializes with.
   */
  schema?: WsMessageSchemas
}

/** What `message` receives on a route with these schemas: the parsed value (annotate it), or text/bytes. */
export type WsExpressMessage<S> = S extends { message: {} } ? unknown : S extends { messages: {} } ? unknown : string | Buffer
/** What `send()` takes on a route with these schemas: anything the `send` schema validates, or raw data. */
export type WsExpressSend<S> = S extends { send: {} } ? unknown : RawData

/** The route options, typed by the route's request and its `schema`. */
type OptionsFor<P, ReqQuery, LocalsObj extends Record<string, any>, S> =
  WsExpressRouteOptions<Request<P, any, any, ReqQuery, LocalsObj>, WsExpressMessage<S>, WsExpressSend<S>> & { schema?: S }

/** The open sockets of one adapter: iterable, with a count. */
export interface WsClients {
  readonly size: number
  [Symbol.iterator] (): Iterator<WebSocket<RawData, Request>>
}

/** What `wsExpress()` returns. */
export interface WsExpress {
  readonly app: Application
  readonly server: HttpServer | HttpsServer
  /** The sockets open right now, for broadcasts. */
  readonly clients: WsClients
  /**
   * Refuses new upgrades with 503, runs `preClose`, sends every open socket
   * 1001 and resolves once they have closed (or after `closeTimeout`,
   * terminating the rest). `server.close()` calls it too.
   */
  close (): Promise<void>
  /**
   * Opens a WebSocket to `path` in-process, without `listen`: the request
   * runs through the app's middleware and routing as a real upgrade does.
   * Resolves once the 101 has arrived; rejects with an `UpgradeRefusedError`
   * (`statusCode`, `headers`, `body`) when it is answered otherwise.
   */
  injectWS<TSend = unknown, TMessage = unknown> (path: string, options?: InjectWSOptions): Promise<InjectedSocket<TSend, TMessage>>
}

/**
 * `app.ws()` / `router.ws()`: a path, optional middleware, and the route
 * options last. The overloads follow Express's own `IRouterMatcher`: plain
 * request handlers first (so inline middleware is contextually typed), then
 * any handler params (arrays, error middleware); params are inferred from
 * the path.
 */
export interface WsRouteMatcher<T> {
  <
    Route extends string,
    P = RouteParameters<Route>,
    ReqQuery = Query,
    LocalsObj extends Record<string, any> = Record<string, any>,
    const S extends WsMessageSchemas = {},
  >(
    path: Route,
    ...handlers: [
      ...middleware: Array<RequestHandler<P, any, any, ReqQuery, LocalsObj>>,
      options: OptionsFor<P, ReqQuery, LocalsObj, S>,
    ]
  ): T
  <
    Route extends string,
    P = RouteParameters<Route>,
    ReqQuery = Query,
    LocalsObj extends Record<string, any> = Record<string, any>,
    const S extends WsMessageSchemas = {},
  >(
    path: Route,
    ...handlers: [
      ...middleware: Array<RequestHandlerParams<P, any, any, ReqQuery, LocalsObj>>,
      options: OptionsFor<P, ReqQuery, LocalsObj, S>,
    ]
  ): T
  <
    P = ParamsDictionary,
    ReqQuery = Query,
    LocalsObj extends Record<string, any> = Record<string, any>,
    const S extends WsMessageSchemas = {},
  >(
    path: PathParams,
    ...handlers: [
      ...middleware: Array<RequestHandler<P, any, any, ReqQuery, LocalsObj>>,
      options: OptionsFor<P, ReqQuery, LocalsObj, S>,
    ]
  ): T
  <
    P = ParamsDictionary,
    ReqQuery = Query,
    LocalsObj extends Record<string, any> = Record<string, any>,
    const S extends WsMessageSchemas = {},
  >(
    path: PathParams,
    ...handlers: [
      ...middleware: Array<RequestHandlerParams<P, any, any, ReqQuery, LocalsObj>>,
      options: OptionsFor<P, ReqQuery, LocalsObj, S>,
    ]
  ): T
}

declare module 'express-serve-static-core' {
  interface Application<LocalsObj extends Record<string, any> = Record<string, any>> {
    /**
     * Declares a WebSocket route: `GET path`, upgraded after the middleware
     * before it (and every `app.use` on the way) has run. Plain HTTP requests
     * get 426 Upgrade Required.
     */
    ws: WsRouteMatcher<this>
  }
  interface Router {
    /** Declares a WebSocket route on this router; see `app.ws()`. */
    ws: WsRouteMatcher<this>
  }
}

// ------------------------------------------------------------------ routes

/** What one `wsExpress()` call shares with the routes it serves. */
interface Adapter {
  registry: SocketRegistry
  defaults: WsLimits
  logger: WsLogger
  errorHandler: WsExpressOptions['errorHandler']
  invalidMessage: WsExpressOptions['invalidMessage']
  jsonParse: JsonParseOptions | undefined
  /** Ajv and fast-json-stringify, set up on the first JSON route. */
  compilers (): SchemaCompilers
}

const kAdapter = Symbol('wsroutes.express')

type AdapterRequest = UpgradeRequest & { [kAdapter]?: Adapter }

const consoleLogger: WsLogger = {
  error (object, message) {
    console.error(`wsroutes: ${message}`, (object as { err?: unknown }).err ?? object)
  },
  warn (object, message) {
    console.warn(`wsroutes: ${message}`, (object as { err?: unknown }).err ?? object)
  },
  debug () {},
}

/** The last handler of a ws route: the handshake for upgrades, 426 for plain HTTP. */
function wsRouteHandler (path: PathParams, options: WsExpressRouteOptions<any, any, any>): (req: Request, res: Response, next: NextFunction) => void {
  const spec: MessageSchemaSpec<any> = {
    message: options.schema?.message,
    send: options.schema?.send,
    messages: options.messages,
    discriminator: options.discriminator,
    invalidMessage: options.invalidMessage,
  }
  // Mistakes in the limits and message options fail here, when the route is declared.
  const limits = pickLimits(options)
  checkMessageSpec(spec, options.message !== undefined, String(path))
  const json = hasMessageSchemas(spec)
  // One runner per adapter: the limits, registry, logger and schema compilers are the adapter's.
  const runners = new WeakMap<Adapter, RouteRunner<Request>>()
  return function wsRoute (req, res) {
    const upgrade = (req as AdapterRequest)[kUpgrade]
    const adapter = (req as AdapterRequest)[kAdapter]
    if (upgrade === undefined || adapter === undefined) {
      res.status(UPGRADE_REQUIRED.statusCode).set(UPGRADE_REQUIRED.headers).json(UPGRADE_REQUIRED.body)
      return
    }
    let runner = runners.get(adapter)
    if (runner === undefined) {
      // Compiled on the first upgrade; a schema Ajv refuses goes to Express's
      // error handling (500), and the next upgrade tries again.
      let messages
      if (json) {
        try {
          messages = compileMessageCodec({ ...spec, invalidMessage: spec.invalidMessage ?? adapter.invalidMessage, parse: adapter.jsonParse }, adapter.compilers())
        } catch (error) {
          throw new Error(`wsroutes: compiling the message schemas of ${String(path)} failed: ${(error as Error).message}`, { cause: error })
        }
      }
      runner = new RouteRunner<Request>({
        handlers: options,
        limits: { ...adapter.defaults, ...limits },
        protocols: options.protocols,
        registry: adapter.registry,
        logger: () => adapter.logger,
        errorHandler: (options.wsErrorHandler as WsExpressOptions['errorHandler']) ?? adapter.errorHandler,
        messages,
      })
      runners.set(adapter, runner)
    }
    try {
      runner.accept(upgrade, req)
    } catch (error) {
      // An `open` setup that threw before any handler ran (a `protocols`
      // function that throws is answered with a 500 by accept itself): the
      // response is already detached, so Express's error handling could not
      // answer.
      adapter.logger.error({ err: error }, 'websocket handshake failed')
      upgrade.socket.destroy()
    }
  }
}

interface RouteTarget {
  route (path: PathParams): { get (...handlers: unknown[]): unknown }
}

function ws (this: RouteTarget, path: PathParams, ...handlers: unknown[]): RouteTarget {
  const options = handlers.pop()
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError('wsroutes: ws(path, ...middleware, options) needs the route options object (handlers and limits) last')
  }
  const routeOptions = options as WsExpressRouteOptions
  const handshakeTimeout = routeOptions.handshakeTimeout
  if (handshakeTimeout !== undefined) {
    // The route's deadline takes over once routing reached it, ahead of its own middleware.
    handlers.unshift(function wsHandshakeTimeout (req: Request, _res: Response, next: NextFunction) {
      ;(req as AdapterRequest)[kUpgrade]?.setTimeout(handshakeTimeout)
      next()
    })
  }
  this.route(path).get(...handlers, wsRouteHandler(path, routeOptions))
  return this
}

/** Installs `ws` where `get` lives, without replacing anything already there. */
function install (target: object | null | undefined): void {
  if (target === null || target === undefined) return
  if (Object.prototype.hasOwnProperty.call(target, 'ws')) return
  Object.defineProperty(target, 'ws', { value: ws, writable: true, configurable: true, enumerable: false })
}

// Apps created from now on get `ws` from the application prototype, and every
// router (`express.Router()` and each app's own) from Router.prototype.
install(express.application)
install((express.Router as unknown as { prototype: object }).prototype)

// ------------------------------------------------------------------ server

/**
 * Serves the ws routes of `app` on `server`: upgrade requests go through the
 * app's middleware and routing before the handshake.
 */
export function wsExpress (app: Application, server: HttpServer | HttpsServer, options: WsExpressOptions = {}): WsExpress {
  // An app created before this module was loaded, or by another copy of
  // Express: install on the app. Another copy's routers need `ws` too, on
  // the prototype of that copy's router, which only the app's own router
  // leads to; reading `app.router` creates it, and Express fixes 'strict
  // routing' and 'case sensitive routing' at that moment, so it is read only
  // for another copy (whose settings must then come before `wsExpress`).
  if (typeof (app as Partial<Application>).ws !== 'function') install(app)
  const handle = (app: object): unknown => (app as { handle?: unknown }).handle
  if (handle(app) !== handle(express.application)) {
    install(Object.getPrototypeOf((app as unknown as { router: object }).router))
  }

  if (options.invalidMessage !== undefined) checkInvalidMessagePolicy(options.invalidMessage)
  const adapter: Adapter = {
    registry: new SocketRegistry(),
    defaults: pickLimits(options),
    logger: options.logger ?? consoleLogger,
    errorHandler: options.errorHandler,
    invalidMessage: options.invalidMessage,
    jsonParse: options.jsonParse,
    compilers () {
      const compilers = ajvCompilers(options.ajv ?? createAjv())
      this.compilers = () => compilers
      return compilers
    },
  }
  const shutdownReason = checkShutdownReason(options.shutdownReason ?? 'server shutting down')
  claimServer(server)
  let closing: Promise<void> | undefined

  /** Upgrades pipelined behind a response still being written (`waitForEarlierResponse`). */
  const waitingBehindResponses = new Set<Duplex>()

  function onUpgrade (request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (waitForEarlierResponse(request, socket, head, onUpgrade, waitingBehindResponses)) return
    if (closing !== undefined) {
      refuseUpgrade(socket, 503, 'server shutting down')
      return
    }
    const response = beginUpgrade(request, socket, head, options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT)
    if (response === undefined) return
    // `response.req`: the request itself, or for an upgrade served as plain
    // HTTP one that carries its body.
    const routed = response.req
    ;(routed as AdapterRequest)[kAdapter] = adapter
    try {
      app(routed, response)
    } catch (error) {
      adapter.logger.error({ err: error }, 'routing an upgrade request failed')
      socket.destroy()
    }
  }
  server.on('upgrade', onUpgrade)

  function close (): Promise<void> {
    closing ??= adapter.registry.closeAll(shutdownReason, options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT, options.preClose, (error, what) => {
      adapter.logger.error({ err: error }, what)
    })
    return closing
  }

  // server.close() waits for every connection, upgraded ones included, and
  // emits 'close' only after the last: too late to say goodbye. So closing
  // the server starts the adapter's shutdown first.
  // Its callback waits for that shutdown too: Node counts a destroyed socket
  // out of the server at once, but the socket's 'close', and with it the
  // route's close handler, comes a tick later.
  const serverClose = server.close
  server.close = function closeServerAndSockets (this: typeof server, callback?: (error?: Error) => void) {
    const shutdown = close().catch((error: unknown) => adapter.logger.error({ err: error }, 'closing websockets failed'))
    if (callback === undefined) return serverClose.call(this)
    return serverClose.call(this, (error?: Error) => { void shutdown.then(() => callback(error)) })
  } as typeof server.close
  // Node no longer lists an upgraded socket, so `closeAllConnections()`
  // would miss one still waiting behind a response.
  const closeAllConnections = server.closeAllConnections
  server.closeAllConnections = function closeAllConnectionsAndWaiting (this: typeof server) {
    for (const socket of waitingBehindResponses) socket.destroy()
    closeAllConnections.call(this)
  }
  server.once('close', () => {
    server.off('upgrade', onUpgrade)
    server.close = serverClose
    server.closeAllConnections = closeAllConnections
  })

  return {
    app,
    server,
    get clients (): WsClients {
      return adapter.registry as unknown as WsClients
    },
    close,
    // The listener the server's 'upgrade' event calls, called directly.
    injectWS: (path, injectOptions) => injectUpgrade(onUpgrade, path, injectOptions),
  }
}

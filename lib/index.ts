/**
 * wsroutes: WebSocket routes for Fastify, on a hand-written RFC 6455 engine.
 */
import { wsroutes } from './fastify/plugin.js'

export default wsroutes
export { wsroutes }
export type { WsPluginOptions, WsShorthandOptions, WsRequest } from './fastify/plugin.js'
export type { WsMessageType, WsSendType, WsMessageRoutes } from './fastify/plugin.js'
export * from './core/public.js'

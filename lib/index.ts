/**
 * wsroutes: WebSocket routes for Fastify, on a hand-written RFC 6455 engine.
 */
import { wsroutes } from './fastify/plugin.js'
// The declaration of `app.injectWS` lives there; plugin.ts imports the module
// only for its value, which declaration files leave out, so the augmentation
// would not reach an application's types without this import.
import './fastify/inject.js'

export default wsroutes
export { wsroutes }
export type { WsPluginOptions, WsShorthandOptions, WsRequest } from './fastify/plugin.js'
export type { WsMessageType, WsSendType, WsMessageRoutes } from './fastify/plugin.js'
export * from './core/public.js'

/**
 * wsroutes: WebSocket routes for Fastify, on a hand-written RFC 6455 engine.
 */
import { wsroutes } from './fastify/plugin.js'

export default wsroutes
export { wsroutes }
export type { WsPluginOptions, WsShorthandOptions, WsRequest } from './fastify/plugin.js'
export type { WebSocket, WsHandlers, WsLimits, WsRouteOptions, WsMessageOptions, WsMessageRoute, WsMessageSchemas, WsErrorHandler, RawData } from './core/types.js'
export type { WsMessageType, WsSendType, WsMessageRoutes } from './fastify/plugin.js'
export {
  InvalidMessageError,
  InvalidOutboundError,
  INVALID_MESSAGE_CLOSE_CODES,
  type ErrorEnvelope,
  type InvalidMessageAction,
  type InvalidMessageCode,
  type InvalidMessageHook,
  type InvalidMessagePolicy,
  type ValidationIssue,
} from './core/messages.js'
export { RouteSocket } from './core/socket.js'
export { UpgradeRefusedError, type InjectedSocket, type InjectedClose, type InjectWSOptions } from './core/inject.js'
export { CloseCodes, isValidCloseCode, MAX_CLOSE_REASON_BYTES, type CloseCode, type ApplicationCloseCode, type ProtocolCloseCode } from './engine/close-codes.js'
export { ErrorCodes, WebSocketError, type ErrorCode } from './engine/errors.js'
export { ReadyState, SendStatus, type SendOptions, type BackpressurePolicy } from './engine/connection.js'

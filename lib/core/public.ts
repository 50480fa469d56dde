/**
 * The framework-neutral public API, exported alike by `wsroutes` (Fastify)
 * and `wsroutes/express`, so the two entry points cannot drift apart.
 */
export type { WebSocket, WsHandlers, WsLimits, WsRouteOptions, WsMessageOptions, WsMessageRoute, WsMessageSchemas, WsErrorHandler, RawData } from './types.js'
export {
  InvalidMessageError,
  InvalidOutboundError,
  INVALID_MESSAGE_CLOSE_CODES,
  type ErrorEnvelope,
  type InvalidMessageAction,
  type InvalidMessageCode,
  type InvalidMessageHook,
  type InvalidMessagePolicy,
  type JsonParseOptions,
  type ValidationIssue,
} from './messages.js'
export { RouteSocket } from './socket.js'
export { UpgradeRefusedError, type InjectedSocket, type InjectedClose, type InjectWSOptions } from './inject.js'
export { CloseCodes, isValidCloseCode, MAX_CLOSE_REASON_BYTES, type CloseCode, type ApplicationCloseCode, type ProtocolCloseCode } from '../engine/close-codes.js'
export { ErrorCodes, WebSocketError, type ErrorCode } from '../engine/errors.js'
export { ReadyState, SendStatus, type SendOptions, type BackpressurePolicy } from '../engine/connection.js'

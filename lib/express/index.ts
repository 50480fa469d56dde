/**
 * wsroutes/express: WebSocket routes for Express 5, upgraded only after the
 * app's own middleware and routing have run.
 */
export { wsExpress } from './adapter.js'
export type {
  WsClients,
  WsExpress,
  WsExpressMessage,
  WsExpressOptions,
  WsExpressRouteOptions,
  WsExpressSend,
  WsLogger,
  WsRouteMatcher,
} from './adapter.js'
export { DEFAULT_AJV_OPTIONS } from './schemas.js'
export type { WebSocket, WsHandlers, WsLimits, WsRouteOptions, WsMessageOptions, WsMessageRoute, WsMessageSchemas, WsErrorHandler, RawData } from '../core/types.js'
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
} from '../core/messages.js'
export { RouteSocket } from '../core/socket.js'
export { UpgradeRefusedError, type InjectedSocket, type InjectedClose, type InjectWSOptions } from '../core/inject.js'
export { CloseCodes, isValidCloseCode, MAX_CLOSE_REASON_BYTES, type CloseCode, type ApplicationCloseCode, type ProtocolCloseCode } from '../engine/close-codes.js'
export { ErrorCodes, WebSocketError, type ErrorCode } from '../engine/errors.js'
export { ReadyState, SendStatus, type SendOptions, type BackpressurePolicy } from '../engine/connection.js'

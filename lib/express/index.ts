/**
 * wsroutes/express: WebSocket routes for Express 5, upgraded only after the
 * app's own middleware and routing have run.
 */
export { wsExpress } from './adapter.js'
export type { WsClients, WsExpress, WsExpressOptions, WsExpressRouteOptions, WsLogger, WsRouteMatcher } from './adapter.js'
export type { WebSocket, WsHandlers, WsLimits, WsRouteOptions, RawData } from '../core/types.js'
export { RouteSocket } from '../core/socket.js'
export { CloseCodes, isValidCloseCode, MAX_CLOSE_REASON_BYTES, type CloseCode, type ApplicationCloseCode, type ProtocolCloseCode } from '../engine/close-codes.js'
export { ErrorCodes, WebSocketError, type ErrorCode } from '../engine/errors.js'
export { ReadyState, SendStatus, type SendOptions, type BackpressurePolicy } from '../engine/connection.js'

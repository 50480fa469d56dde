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
export * from '../core/public.js'

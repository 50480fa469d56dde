/**
 * Express echo server: text comes back as text, binary as binary, any size
 * up to 16 MiB, on every path. The conformance suite runs against it too.
 *
 *   PORT=9003 npm run example:express-echo
 *   KEEP_REQUEST=0 PORT=9003 npm run example:express-echo   # with keepRequest: false
 */
import express from 'express'
import { createServer, type Server } from 'node:http'
import { pathToFileURL } from 'node:url'
import { wsExpress, type WsExpress } from '../lib/express/index.js'

export interface ExpressEchoServer {
  app: express.Express
  server: Server
  ws: WsExpress
}

export function buildExpressEchoServer (): ExpressEchoServer {
  const app = express()
  const server = createServer(app)
  const ws = wsExpress(app, server, {
    maxPayload: 16 * 1024 * 1024,
    // Autobahn 9.3/9.4 send 4 MiB in fragments of 64 bytes.
    maxFragments: 1 << 20,
    keepRequest: process.env.KEEP_REQUEST !== '0',
    logger: process.env.LOG === '1' ? { error: console.error, warn: console.warn, debug: console.debug } : undefined,
  })
  // Any path: Express 5 names the wildcard.
  app.ws('/{*path}', {
    message (socket, data, isBinary) {
      socket.send(data, { binary: isBinary })
    },
  })
  return { app, server, ws }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { server } = buildExpressEchoServer()
  const port = Number(process.env.PORT ?? 9003)
  server.listen(port, process.env.HOST ?? '127.0.0.1', () => {
    console.log(`express echo server on ws://127.0.0.1:${port}/`)
  })
  // server.close() sends 1001 to every client first (wsExpress hooks it).
  const shutdown = (): void => {
    server.close(error => process.exit(error === undefined ? 0 : 1))
    server.closeIdleConnections()
  }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
}

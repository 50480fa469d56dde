/**
 * Echo server: text comes back as text, binary as binary, any size up to
 * 16 MiB. The conformance suite and the benchmarks run against it.
 *
 *   PORT=9002 npm run example:echo
 *   DIRECT_READS=0 PORT=9002 npm run example:echo   # with directReads: false ('data' events)
 *   KEEP_REQUEST=0 PORT=9002 npm run example:echo   # with keepRequest: false (the echo never reads socket.request)
 *   BINARY_MESSAGES=own PORT=9002 npm run example:echo   # binary messages the handler owns instead of borrows
 *
 * Compiled (`npm run build`), it is what `npm run bench` measures. In
 * production, run it as the README's "Running in production" advises for
 * large messages and for many idle connections:
 *   node --no-concurrent-array-buffer-sweeping --max-semi-space-size=2 dist/examples/echo.js
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { pathToFileURL } from 'node:url'
import wsroutes from '../lib/index.js'

export async function buildEchoServer (options: { directReads?: boolean, keepRequest?: boolean, binaryMessages?: 'own' | 'borrow' } = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: process.env.LOG === '1' })
  await app.register(wsroutes, {
    maxPayload: 16 * 1024 * 1024,
    // Autobahn 9.3/9.4 send 4 MiB in fragments of 64 bytes.
    maxFragments: 1 << 20,
    directReads: options.directReads ?? process.env.DIRECT_READS !== '0',
    keepRequest: options.keepRequest ?? process.env.KEEP_REQUEST !== '0',
    // The handler only sends each message on, so it borrows them: a large
    // message costs no allocation (README, "Borrowed binary messages").
    binaryMessages: options.binaryMessages ?? (process.env.BINARY_MESSAGES === 'own' ? 'own' : 'borrow'),
  })
  app.ws('/*', {
    message (socket, data, isBinary) {
      socket.send(data, { binary: isBinary })
    },
  })
  return app
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const app = await buildEchoServer()
  const port = Number(process.env.PORT ?? 9002)
  await app.listen({ host: process.env.HOST ?? '127.0.0.1', port })
  console.log(`echo server on ws://127.0.0.1:${port}/`)
  const shutdown = (): void => { app.close().then(() => process.exit(0), () => process.exit(1)) }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
}

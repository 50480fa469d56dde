/**
 * WebSocket over TLS (wss://) through both adapters: Fastify with its
 * `https` option, Express on `https.createServer`. A TLS socket is read
 * through 'data' events (its handle reads ciphertext), and its writes stay
 * queued until the encrypted bytes are out, so a borrowed message sent on
 * is copied rather than written from lent memory (lib/engine/writer.ts).
 * The client checks the server's certificate against the test CA
 * (test/fixtures/tls, a self-signed certificate for localhost, 127.0.0.1
 * and ::1).
 */
import express from 'express'
import Fastify from 'fastify'
import { readFileSync } from 'node:fs'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { wsExpress } from '../../lib/express/index.js'
import { wsroutes } from '../../lib/index.js'
import type { RouteSocket } from '../../lib/core/socket.js'
import { prng, randomBytes } from '../helpers/random.js'
import { closeWs, nextMessage, openWs, wsClosed, type Teardown } from '../interop/helpers.js'

const fixtures = new URL('../fixtures/tls/', import.meta.url)
const key = readFileSync(new URL('localhost-key.pem', fixtures))
const cert = readFileSync(new URL('localhost-cert.pem', fixtures))

interface Seen {
  /** The memory each binary message arrived in. */
  memories: ArrayBufferLike[]
  readingDirectly: boolean[]
}

function echoRoute (seen: Seen): Record<string, unknown> {
  return {
    binaryMessages: 'borrow',
    maxPayload: 2 << 20,
    message (socket: RouteSocket<unknown>, data: Buffer | string, isBinary: boolean) {
      seen.readingDirectly.push(socket.readingDirectly)
      if (isBinary) seen.memories.push((data as Buffer).buffer)
      socket.send(data, { binary: isBinary })
    },
  }
}

async function serveTls (t: Teardown, kind: 'fastify' | 'express', seen: Seen): Promise<number> {
  if (kind === 'fastify') {
    const app = Fastify({ https: { key, cert } })
    await app.register(wsroutes)
    app.ws('/echo', echoRoute(seen))
    await app.listen({ host: '127.0.0.1', port: 0 })
    t.teardown(() => app.close())
    return (app.server.address() as AddressInfo).port
  }
  const app = express()
  const server = https.createServer({ key, cert }, app)
  const ws = wsExpress(app, server)
  app.ws('/echo', echoRoute(seen))
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    await ws.close()
    await new Promise(resolve => server.close(resolve))
  })
  return (server.address() as AddressInfo).port
}

for (const kind of ['fastify', 'express'] as const) {
  t.test(`${kind} over TLS: echoes of every size come back intact; borrowed memory goes back to the pool`, async t => {
    const seen: Seen = { memories: [], readingDirectly: [] }
    const port = await serveTls(t, kind, seen)
    const ws = await openWs(`wss://127.0.0.1:${port}/echo`, undefined, { ca: cert })
    t.teardown(() => closeWs(ws))

    ws.send('hello')
    t.equal(String((await nextMessage(ws)).data), 'hello', 'a text message')
    const longText = 'é'.repeat(60_000)
    ws.send(longText)
    t.equal(String((await nextMessage(ws)).data), longText, 'a 120,000-byte text message')

    const random = prng(kind === 'fastify' ? 11 : 12)
    const sizes = [1, 125, 126, 5000, 65_535, 65_536, 1 << 20, ...Array<number>(10).fill(20_000)]
    const wrong: number[] = []
    for (const size of sizes) {
      const message = randomBytes(random, size)
      ws.send(message)
      const echo = await nextMessage(ws)
      if (!echo.isBinary || !Buffer.from(echo.data).equals(message)) wrong.push(size)
    }
    t.same(wrong, [], `${sizes.length} binary echoes, 1 B to 1 MiB, are the messages sent`)
    t.same([...new Set(seen.readingDirectly)], [false], 'a TLS socket is read through \'data\' events')
    // The ten 20,000-byte messages, each one sent on before the next: lent
    // from one size class, they arrive in the memory the previous one gave
    // back. Written from lent memory, each write would have kept its memory
    // out of the pool and the next come in a fresh buffer.
    const last = seen.memories.slice(-10)
    t.equal(new Set(last).size, 1, 'the ten 20 KB messages all came in the same lent memory')

    const closed = wsClosed(ws)
    ws.close(1000, 'done')
    t.same(await closed, { code: 1000, reason: '' }, 'the closing handshake completes over TLS (the server echoes the code)')
  })
}

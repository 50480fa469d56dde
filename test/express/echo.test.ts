/**
 * The Express echo example: what the conformance suite runs against.
 */
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { buildExpressEchoServer } from '../../examples/express-echo.js'
import { closeAtTeardown, closed, nextMessage, open } from './helpers.js'

t.test('the Express echo server echoes text as text and binary as binary on any path, and closes with 1001', async t => {
  const { server, ws } = buildExpressEchoServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  // The test closes the server itself; this is for a test that failed first.
  closeAtTeardown(t, server, ws)

  const root = await open(`ws://127.0.0.1:${port}/`)
  t.teardown(() => root.terminate())
  const deep = await open(`ws://127.0.0.1:${port}/a/b/c?x=1`)
  t.teardown(() => deep.terminate())
  root.send('héllo')
  t.equal(await nextMessage(root), 'héllo')
  const big = Buffer.alloc(5 * 1024 * 1024, 0xab)
  deep.send(big)
  t.same(await nextMessage(deep), big)
  deep.send('')
  t.equal(await nextMessage(deep), '')
  t.equal(ws.clients.size, 2)

  const results = [closed(root), closed(deep)]
  await new Promise(resolve => server.close(resolve))
  t.same((await Promise.all(results)).map(result => result.code), [1001, 1001])
})

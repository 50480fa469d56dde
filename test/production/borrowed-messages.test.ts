/**
 * Borrowed binary messages (`binaryMessages: 'borrow'`) through both
 * adapters, at the one place where lent memory could be overwritten while
 * still in use: echoes that the kernel cannot take at once. A client sends
 * messages of many sizes back to back and does not read for a while, so
 * the server's writes queue behind a full socket buffer while later
 * messages keep arriving in lent memory. Every echo must come back as it
 * was sent.
 */
import { once } from 'node:events'
import t from 'tap'
import { prng, randomBytes } from '../helpers/random.js'
import { wsClient } from '../interop/helpers.js'
import { KINDS, delay, serve, until } from './servers.js'

const SIZES = [4096, 5000, 20_000, 65_536, 100_000, 300_000, 1 << 20]

for (const kind of KINDS) {
  t.test(`${kind}: borrowed echoes to a client that stops reading all come back intact`, async t => {
    const served = await serve(t, kind, [{
      path: '/echo',
      options: {
        binaryMessages: 'borrow',
        maxPayload: 2 << 20,
        message (socket: { send (data: Buffer): void }, data: Buffer) { socket.send(data) },
      },
    }])
    const random = prng(kind === 'fastify' ? 7 : 8)
    const sent = Array.from({ length: 60 }, (_, i) => randomBytes(random, SIZES[i % SIZES.length]))
    const ws = wsClient(served.url('/echo'))
    t.teardown(() => ws.terminate())
    const received: Buffer[] = []
    ws.on('message', (data: Buffer) => received.push(Buffer.from(data)))
    await once(ws, 'open')
    // Stop reading: the server's echoes fill the kernel's buffers and queue.
    const raw = (ws as unknown as { _socket: { pause (): void, resume (): void } })._socket
    raw.pause()
    for (const message of sent) ws.send(message)
    await delay(300)
    raw.resume()
    await until(() => received.length === sent.length, `${sent.length} echoes`, 20_000)
    const wrong = sent.flatMap((message, i) => received[i].equals(message) ? [] : [`#${i} (${message.length} bytes)`])
    t.same(wrong, [], `all ${sent.length} echoes (4 KiB to 1 MiB) are the messages sent, in order`)
  })
}

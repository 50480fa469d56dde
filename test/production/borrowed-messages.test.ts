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

for (const kind of KINDS) {
  t.test(`${kind}: a binary message refused on a JSON route stays lent until an async invalidMessage settles`, async t => {
    const seen: string[] = []
    const hookStarted: Array<() => void> = []
    let release: () => void = () => {}
    const gate = new Promise<void>(resolve => { release = resolve })
    const served = await serve(t, kind, [{
      path: '/json',
      options: {
        binaryMessages: 'borrow',
        schema: { message: { type: 'object' } },
        message () {},
        // Binary messages are refused on a JSON route; 'ignore' keeps the socket open.
        async invalidMessage (_socket: unknown, _error: unknown, raw: Buffer) {
          const before = raw[0]
          hookStarted.shift()?.()
          await gate
          seen.push(`${before} → ${raw[0]}, ${String(raw.equals(Buffer.alloc(50_000, before)))}`)
          return 'ignore'
        },
      },
    }])
    const first = wsClient(served.url('/json'))
    const second = wsClient(served.url('/json'))
    t.teardown(() => { first.terminate(); second.terminate() })
    await Promise.all([once(first, 'open'), once(second, 'open')])
    const started = new Promise<void>(resolve => hookStarted.push(resolve))
    first.send(Buffer.alloc(50_000, 1))
    await started
    // Meanwhile, more messages of the same size class: the first socket's
    // next one, and another socket's, each refused by the same hook.
    first.send(Buffer.alloc(50_000, 2))
    second.send(Buffer.alloc(50_000, 3))
    await delay(100)
    release()
    await until(() => seen.length === 3, 'three refusals handled')
    t.same(seen.slice().sort(), ['1 → 1, true', '2 → 2, true', '3 → 3, true'],
      'each hook read its own message after the await: none was given back while its hook ran')
    t.equal(seen[0], '1 → 1, true', 'the first socket read nothing more until its hook settled')
  })
}

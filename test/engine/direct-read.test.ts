/**
 * Direct reads on real TCP sockets: bytes reach the callback and never a
 * 'data' listener, returning false stops the handle, resumeDirectReads()
 * restarts it, and the peer's FIN is still an 'end'. Sockets that cannot
 * read directly are left alone.
 */
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { PassThrough } from 'node:stream'
import t from 'tap'
import { directReadsAvailable, isAllocatorPrimed, readDirectly, resumeDirectReads } from '../../lib/engine/direct-read.js'
import { maskingReadBuffer } from '../../lib/engine/mask.js'
import { delay } from '../helpers/server.js'
import type { TestContext } from '../helpers/tap.js'

/** A TCP server on 127.0.0.1 and one client connected to it; both closed at the end of the test. */
async function tcpPair (t: TestContext): Promise<{ server: net.Socket, client: net.Socket }> {
  const listener = net.createServer()
  listener.listen(0, '127.0.0.1')
  await once(listener, 'listening')
  const port = (listener.address() as net.AddressInfo).port
  const client = net.connect(port, '127.0.0.1')
  const [server] = await once(listener, 'connection') as [net.Socket]
  await once(client, 'connect')
  t.teardown(async () => {
    client.destroy()
    server.destroy()
    await new Promise(resolve => listener.close(resolve))
  })
  return { server, client }
}

/** Reads `socket` directly, collecting copies of what arrives; `answer` decides what the callback returns. */
function collect (socket: net.Socket, answer: () => boolean = () => true): { chunks: Buffer[], total: () => number, enabled: boolean } {
  const chunks: Buffer[] = []
  const enabled = readDirectly(socket, (length, buffer) => {
    chunks.push(Buffer.from(buffer.subarray(0, length)))
    return answer()
  })
  return { chunks, total: () => chunks.reduce((sum, c) => sum + c.length, 0), enabled }
}

async function waitFor (predicate: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await delay(5)
  }
}

t.test('this Node offers direct reads', async t => {
  t.equal(directReadsAvailable, true, 'the onread properties were found on the probe socket')
})

t.test('the first socket read directly primes the allocator, once, and not before', async t => {
  t.equal(isAllocatorPrimed(), false, 'nothing is allocated at load time')
  const { server } = await tcpPair(t)
  t.equal(collect(server).enabled, true)
  t.equal(isAllocatorPrimed(), true, 'primed by the first switch')
})

/** Runs test/helpers/allocator-faults.ts in a fresh process: page faults per 1 MiB buffer dropped and allocated again after priming. */
async function faultsPerMessageBuffer (env: Record<string, string> = {}): Promise<{ primed: boolean, faultsPerBuffer: number }> {
  const script = fileURLToPath(new URL('../helpers/allocator-faults.ts', import.meta.url))
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, ...env },
  })
  return JSON.parse(stdout)
}

const glibc = process.platform === 'linux' &&
  (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime !== undefined

t.test('after priming, freed 1 MiB message buffers stay with the process', { skip: glibc ? false : 'glibc only' }, async t => {
  // V8 frees young buffers in bursts of about 32 MiB; the primer sets glibc's
  // trim threshold above that, so they are not faulted in again (256 faults
  // for a 1 MiB buffer that is).
  const primed = await faultsPerMessageBuffer()
  t.equal(primed.primed, true)
  t.ok(primed.faultsPerBuffer < 16, `${primed.faultsPerBuffer} page faults per 1 MiB buffer (of 256 pages)`)
  // With MALLOC_TRIM_THRESHOLD_ set, glibc keeps its thresholds fixed: every
  // buffer is mapped and faulted in afresh, as the count shows.
  const fixed = await faultsPerMessageBuffer({ MALLOC_TRIM_THRESHOLD_: '131072' })
  t.equal(fixed.primed, true)
  t.ok(fixed.faultsPerBuffer > 200, `${fixed.faultsPerBuffer} page faults per buffer with the thresholds fixed`)
})

t.test('bytes reach the callback, not data listeners, and arrive in order', async t => {
  const { server, client } = await tcpPair(t)
  const seen = collect(server)
  t.equal(seen.enabled, true)
  let dataEvents = 0
  server.on('data', () => { dataEvents++ })
  const sent = Buffer.alloc(300_000)
  for (let i = 0; i < sent.length; i++) sent[i] = (i * 31 + 7) & 0xff
  client.write(sent)
  await waitFor(() => seen.total() === sent.length, 'all bytes')
  t.ok(Buffer.concat(seen.chunks).equals(sent), 'the bytes arrive whole and in order')
  t.ok(seen.chunks.length > 1, `in several reads (${seen.chunks.length})`)
  t.equal(dataEvents, 0, 'no data events')
})

t.test('returning false stops reading until resumeDirectReads()', async t => {
  const { server, client } = await tcpPair(t)
  let paused = false
  const seen = collect(server, () => !paused)
  const handle = (server as unknown as { _handle: { reading: boolean } })._handle

  paused = true
  client.write('first')
  await waitFor(() => seen.total() === 5, 'the first write')
  t.equal(handle.reading, false, 'the handle stopped after the callback said false')

  client.write('second')
  await delay(100)
  t.equal(seen.total(), 5, 'nothing is read while stopped')

  paused = false
  resumeDirectReads(server)
  t.equal(handle.reading, true, 'the handle reads again')
  await waitFor(() => seen.total() === 11, 'the second write')
  t.equal(Buffer.concat(seen.chunks).toString(), 'firstsecond')

  resumeDirectReads(server)
  t.equal(handle.reading, true, 'resuming a reading handle changes nothing')
})

t.test("the peer's FIN is still an 'end', after the last bytes", async t => {
  const { server, client } = await tcpPair(t)
  const seen = collect(server)
  const ended = once(server, 'end')
  client.end('last words')
  await ended
  t.equal(Buffer.concat(seen.chunks).toString(), 'last words')
})

t.test('sockets that cannot read directly are left alone', async t => {
  t.test('a stream without a TCP handle', async t => {
    const stream = new PassThrough() as unknown as net.Socket
    t.equal(readDirectly(stream, () => true), false)
  })

  t.test('an encrypted socket', async t => {
    const { server } = await tcpPair(t)
    Object.defineProperty(server, 'encrypted', { value: true })
    t.equal(readDirectly(server, () => true), false, 'TLS plaintext only comes through data events')
  })

  t.test('a socket already reading directly', async t => {
    const { server } = await tcpPair(t)
    t.equal(readDirectly(server, () => true), true)
    t.equal(readDirectly(server, () => true), false)
  })

  t.test('a destroyed socket', async t => {
    const { server } = await tcpPair(t)
    server.destroy()
    t.equal(readDirectly(server, () => true), false, 'no handle any more')
    resumeDirectReads(server)
    t.pass('resuming a destroyed socket does nothing')
  })
})

t.test('reads land in the masking module\'s read page, so payloads are unmasked where they lie', async t => {
  t.ok(maskingReadBuffer !== undefined, 'the SIMD module is here')
  const { server, client } = await tcpPair(t)
  const buffers: Buffer[] = []
  t.equal(readDirectly(server, (length, buffer) => {
    buffers.push(buffer)
    return true
  }), true)
  resumeDirectReads(server)
  client.write(Buffer.alloc(1000, 7))
  await waitFor(() => buffers.length > 0, 'a read')
  t.ok(buffers.every(buffer => buffer === maskingReadBuffer), 'every read is into maskingReadBuffer')
})

/**
 * FrameWriter: the bytes of every frame it writes (checked header byte by
 * byte and parsed back), the corking that makes one tick's frames leave in
 * one write, and lent payloads (loans.ts): written at once, behind what the
 * tick corked before them, and kept out of the pool when the write stays
 * queued, since the queued write still reads them.
 */
import { once } from 'node:events'
import net, { type Socket } from 'node:net'
import { Writable } from 'node:stream'
import t from 'tap'
import { giveBack, isLent, lend, pooledBytes } from '../../lib/engine/loans.js'
import { Opcode } from '../../lib/engine/parser.js'
import { FrameWriter, kWritesCopy } from '../../lib/engine/writer.js'
import { parseServerFrame, parseServerFrames } from '../helpers/frames.js'
import { prng, randomBytes, utf8OfLength } from '../helpers/random.js'

type Call = { op: 'cork' } | { op: 'uncork' } | { op: 'write', chunk: Buffer }

/** Just enough of a net.Socket for the writer: records what it is asked to do. */
class FakeSocket {
  readonly calls: Call[] = []
  /** What write() answers, like a socket under (true) or over (false) its high-water mark. */
  answer = true

  cork (): void { this.calls.push({ op: 'cork' }) }
  uncork (): void { this.calls.push({ op: 'uncork' }) }
  write (chunk: Buffer): boolean {
    this.calls.push({ op: 'write', chunk })
    return this.answer
  }

  get written (): Buffer {
    return Buffer.concat(this.calls.flatMap(c => c.op === 'write' ? [c.chunk] : []))
  }

  get writes (): Buffer[] {
    return this.calls.flatMap(c => c.op === 'write' ? [c.chunk] : [])
  }

  get ops (): string[] {
    return this.calls.map(c => c.op)
  }
}

function fakeWriter (): { writer: FrameWriter, socket: FakeSocket } {
  const socket = new FakeSocket()
  return { writer: new FrameWriter(socket as unknown as Socket), socket }
}

const nextTick = (): Promise<void> => new Promise(resolve => process.nextTick(resolve))

/** The header RFC 6455 §5.2 prescribes for an unmasked server frame. */
function expectedHeader (firstByte: number, length: number): number[] {
  if (length < 126) return [firstByte, length]
  if (length < 0x10000) return [firstByte, 126, length >> 8, length & 0xff]
  const out = [firstByte, 127]
  for (let shift = 56n; shift >= 0n; shift -= 8n) out.push(Number((BigInt(length) >> shift) & 0xffn))
  return out
}

t.test('binary frames of 0, 125, 126, 65535, 65536 bytes and 1 MiB', async t => {
  const random = prng(11)
  for (const length of [0, 1, 125, 126, 127, 4096, 4097, 65535, 65536, 1024 * 1024]) {
    const { writer, socket } = fakeWriter()
    const payload = randomBytes(random, length)
    t.equal(writer.frame(0x2, payload), true, `${length}: returns the socket's answer`)
    const bytes = socket.written
    const header = expectedHeader(0x82, length)
    t.same([...bytes.subarray(0, header.length)], header, `${length}: header ${Buffer.from(header).toString('hex')}`)
    t.equal(bytes.length, header.length + length, `${length}: header and payload, nothing more`)
    const parsed = parseServerFrame(bytes)
    t.ok(parsed !== null && parsed.fin && parsed.rsv === 0 && parsed.opcode === 2 && !parsed.masked, `${length}: FIN, no RSV, binary, unmasked (§5.1)`)
    t.ok(parsed?.payload.equals(payload), `${length}: payload parses back`)
    if (length <= 4096) {
      t.equal(socket.writes.length, 1, `${length}: small payloads are copied behind the header, one write`)
    } else {
      t.equal(socket.writes.length, 2, `${length}: large payloads are a second write`)
      t.equal(socket.writes[1], payload, `${length}: ... of the caller's Buffer itself, not a copy`)
    }
  }
})

t.test('64-bit lengths above 4 GiB put the high word first', async t => {
  // Only the header is built from the payload's length; the payload itself
  // is handed to the socket untouched, so a stand-in object is enough.
  for (const length of [2 ** 32 + 5, 0x12345 * 2 ** 32 + 0xdeadbeef]) {
    const { writer, socket } = fakeWriter()
    const standIn = { length } as unknown as Buffer
    writer.frame(0x2, standIn)
    t.same([...socket.writes[0]], expectedHeader(0x82, length), `length ${length}`)
    t.equal(socket.writes[1], standIn)
  }
})

t.test('text frames from strings: the length is counted in UTF-8 bytes', async t => {
  const cases: Array<[string, string]> = [
    ['empty', ''],
    ['ASCII', 'hello'],
    ['125 bytes, multi-byte', utf8OfLength(125).toString()],
    ['126 bytes, multi-byte', utf8OfLength(126).toString()],
    ['42 euro signs (126 bytes, 42 characters)', '€'.repeat(42)],
    ['65535 bytes', utf8OfLength(65535).toString()],
    ['65536 bytes', utf8OfLength(65536).toString()],
    ['emoji', '😀'.repeat(40)],
  ]
  for (const [name, text] of cases) {
    const { writer, socket } = fakeWriter()
    writer.frame(0x1, text)
    const bytes = socket.written
    const length = Buffer.byteLength(text)
    const header = expectedHeader(0x81, length)
    t.same([...bytes.subarray(0, header.length)], header, `${name}: header`)
    const parsed = parseServerFrame(bytes)
    t.equal(parsed?.length, bytes.length, `${name}: exactly one frame`)
    t.equal(parsed?.payload.toString(), text, `${name}: payload parses back`)
    t.equal(socket.writes.length, 1, `${name}: one write`)
  }
})

t.test('fin=false and other opcodes', async t => {
  const { writer, socket } = fakeWriter()
  writer.frame(0x1, 'part', false)
  writer.frame(0x0, Buffer.from('more'), false)
  writer.frame(0x0, '', true)
  writer.frame(0x9, Buffer.from('ping'))
  writer.frame(0xa, '')
  const { frames, rest } = parseServerFrames(socket.written)
  t.equal(rest.length, 0)
  t.same(frames.map(f => [f.fin, f.opcode, f.payload.toString()]), [
    [false, 0x1, 'part'],
    [false, 0x0, 'more'],
    [true, 0x0, ''],
    [true, 0x9, 'ping'],
    [true, 0xa, ''],
  ])
  t.same([...socket.writes[0].subarray(0, 2)], [0x01, 0x04], 'a first fragment: FIN clear, opcode 1')
})

t.test('close frames', async t => {
  const { writer, socket } = fakeWriter()
  writer.close(1000, Buffer.from('bye'))
  t.same([...socket.written], [0x88, 0x05, 0x03, 0xe8, 0x62, 0x79, 0x65], '88 05, 03e8 (1000), "bye"')

  const empty = fakeWriter()
  empty.writer.close(0, Buffer.alloc(0))
  t.same([...empty.socket.written], [0x88, 0x00], 'code 0: an empty close frame')

  const codeOnly = fakeWriter()
  codeOnly.writer.close(4999, Buffer.alloc(0))
  t.same([...codeOnly.socket.written], [0x88, 0x02, 0x13, 0x87], 'code only')

  const longest = fakeWriter()
  const reason = utf8OfLength(123)
  longest.writer.close(3000, reason)
  const bytes = longest.socket.written
  t.same([...bytes.subarray(0, 4)], [0x88, 125, 0x0b, 0xb8], 'a 123-byte reason makes the largest control frame, 125 bytes')
  t.ok(bytes.subarray(4).equals(reason))
})

t.test('frames written in one tick are corked together; one uncork per tick', async t => {
  const { writer, socket } = fakeWriter()
  writer.frame(0x1, 'a')
  writer.frame(0x2, Buffer.alloc(10000))
  writer.close(1000, Buffer.alloc(0))
  t.same(socket.ops, ['cork', 'write', 'write', 'write', 'write'], 'corked once, before the first write; not yet uncorked')
  t.equal(writer.corked, true)
  await nextTick()
  t.same(socket.ops, ['cork', 'write', 'write', 'write', 'write', 'uncork'], 'uncorked once, on the next tick')
  t.equal(writer.corked, false)

  // A later tick corks again.
  writer.frame(0x1, 'b')
  await nextTick()
  t.same(socket.ops.slice(6), ['cork', 'write', 'uncork'])
})

t.test('frame() returns what socket.write answered', async t => {
  const { writer, socket } = fakeWriter()
  socket.answer = false
  t.equal(writer.frame(0x1, 'x'), false, 'a string')
  t.equal(writer.frame(0x2, Buffer.alloc(10)), false, 'a small buffer')
  t.equal(writer.frame(0x2, Buffer.alloc(100000)), false, 'a large buffer')
  t.equal(writer.close(1000, Buffer.alloc(0)), false, 'a close frame')
  socket.answer = true
  t.equal(writer.frame(0x2, Buffer.alloc(100000)), true)
  await nextTick()
})

/** A connected pair of TCP sockets on 127.0.0.1. */
async function socketPair (t: { teardown: (fn: () => void | Promise<void>) => void }): Promise<{ server: Socket, client: Socket }> {
  const listener = net.createServer()
  listener.listen(0, '127.0.0.1')
  await once(listener, 'listening')
  t.teardown(() => new Promise<void>(resolve => listener.close(() => resolve())))
  const address = listener.address() as net.AddressInfo
  const client = net.connect(address.port, '127.0.0.1')
  const [server] = await once(listener, 'connection') as [Socket]
  await once(client, 'connect')
  t.teardown(() => {
    client.destroy()
    server.destroy()
  })
  return { server, client }
}

/** Counts the stream's calls down to the socket handle: `_write` for one chunk, `_writev` for several. */
function countWrites (socket: Socket): { write: number, writev: number } {
  const calls = { write: 0, writev: 0 }
  const internals = socket as unknown as { _writev: (...args: unknown[]) => void, _write: (...args: unknown[]) => void }
  const writev = internals._writev.bind(socket)
  const write = internals._write.bind(socket)
  internals._writev = (...args) => { calls.writev++; writev(...args) }
  internals._write = (...args) => { calls.write++; write(...args) }
  return calls
}

function collect (socket: Socket): { chunks: Buffer[], bytes: () => Buffer } {
  const chunks: Buffer[] = []
  socket.on('data', chunk => chunks.push(chunk))
  return { chunks, bytes: () => Buffer.concat(chunks) }
}

t.test('over a real socket: one tick\'s frames leave in one writev', async t => {
  const { server, client } = await socketPair(t)
  const received = collect(client)
  const calls = countWrites(server)

  const writer = new FrameWriter(server)
  const big = randomBytes(prng(12), 20000)
  writer.frame(0x1, 'one')
  writer.frame(0x2, big)
  writer.frame(0x9, Buffer.from('p'))
  writer.close(1001, Buffer.from('done'))
  t.equal(calls.writev + calls.write, 0, 'nothing reaches the socket during the tick')
  await nextTick()
  t.equal(calls.writev, 1, 'one writev for the whole tick')
  t.equal(calls.write, 0, 'and no single writes')

  server.end()
  await once(client, 'end')
  const { frames, rest } = parseServerFrames(received.bytes())
  t.equal(rest.length, 0, 'no stray bytes')
  t.same(frames.map(f => f.opcode), [0x1, 0x2, 0x9, 0x8])
  t.equal(frames[0].payload.toString(), 'one')
  t.ok(frames[1].payload.equals(big))
  t.same([...frames[3].payload], [0x03, 0xe9, ...Buffer.from('done')])
  t.ok(frames.every(f => !f.masked && f.fin && f.rsv === 0))
})

t.test('over a real socket: a 1 MiB frame and a 65536-byte string arrive intact', async t => {
  const { server, client } = await socketPair(t)
  const received = collect(client)
  const writer = new FrameWriter(server)
  const big = randomBytes(prng(13), 1024 * 1024)
  const text = utf8OfLength(65536).toString()
  writer.frame(0x2, big)
  writer.frame(0x1, text)
  server.end()
  await once(client, 'end')
  const bytes = received.bytes()
  t.same([...bytes.subarray(0, 10)], [0x82, 127, 0, 0, 0, 0, 0, 0x10, 0, 0], '64-bit length 0x100000')
  const { frames, rest } = parseServerFrames(bytes)
  t.equal(rest.length, 0)
  t.equal(frames.length, 2)
  t.ok(frames[0].payload.equals(big), 'binary payload intact')
  t.equal(frames[1].payload.toString(), text, 'text payload intact')
})

/**
 * A FakeSocket that behaves like a TCP socket towards the memory it is
 * written from (`kWritesCopy`): a write taken at once is copied, a queued
 * one (`holds`) keeps reading it, and `writableLength` counts it.
 */
class BufferingSocket extends FakeSocket {
  readonly [kWritesCopy] = true
  writableLength = 0
  writableHighWaterMark = 16384
  destroyed = false
  writable = true
  /** Whether writes stay queued (a reader that does not keep up) instead of going to the kernel at once. */
  holds = false
  /** The Buffer objects write() was given, as given. */
  readonly given: Buffer[] = []

  override write (chunk: Buffer): boolean {
    this.given.push(chunk)
    // A write the kernel takes at once is copied there; a queued one keeps
    // reading the caller's memory until it is written.
    if (this.holds) {
      super.write(chunk)
      this.writableLength += chunk.length
    } else {
      super.write(Buffer.from(chunk))
    }
    return this.writableLength < this.writableHighWaterMark
  }
}

function batchWriter (): { writer: FrameWriter, socket: BufferingSocket } {
  const socket = new BufferingSocket()
  return { writer: new FrameWriter(socket as unknown as Socket), socket }
}

t.test('in a read batch, small frames leave in one write of one chunk when the batch ends', async t => {
  const { writer, socket } = batchWriter()
  writer.beginBatch()
  for (let i = 0; i < 16; i++) writer.frame(0x2, Buffer.alloc(32, i))
  writer.frame(0x1, 'héllo')
  writer.close(1000, Buffer.from('bye'))
  t.same(socket.ops, [], 'nothing reaches the socket during the batch')
  writer.endBatch()
  t.same(socket.ops, ['write'], 'one write, no cork')
  const { frames, rest } = parseServerFrames(socket.written)
  t.equal(rest.length, 0)
  t.equal(frames.length, 18)
  t.ok(frames.slice(0, 16).every((f, i) => f.opcode === 2 && f.payload.equals(Buffer.alloc(32, i))), 'binary frames in order')
  t.equal(frames[16].payload.toString(), 'héllo')
  t.same([...frames[17].payload], [0x03, 0xe8, ...Buffer.from('bye')])
  await nextTick()
  t.same(socket.ops, ['write'], 'and nothing on the next tick')
})

t.test('in a read batch, a large payload goes behind the staged frames as its own chunk', async t => {
  const { writer, socket } = batchWriter()
  const big = randomBytes(prng(21), 100000)
  writer.beginBatch()
  writer.frame(0x1, 'before')
  writer.frame(0x2, big)
  writer.frame(0x1, 'after')
  writer.endBatch()
  await nextTick()
  const { frames, rest } = parseServerFrames(socket.written)
  t.equal(rest.length, 0)
  t.same(frames.map(f => f.opcode), [1, 2, 1])
  t.equal(frames[0].payload.toString(), 'before')
  t.ok(frames[1].payload.equals(big))
  t.equal(frames[2].payload.toString(), 'after')
  t.ok(socket.writes.some(chunk => chunk.equals(big)), 'the payload is a chunk of its own')
})

t.test('in a read batch, more than the staging buffer holds is written in order, in several writes', async t => {
  const { writer, socket } = batchWriter()
  const payloads = Array.from({ length: 40 }, (_, i) => randomBytes(prng(100 + i), 1000 + i))
  writer.beginBatch()
  for (const payload of payloads) writer.frame(0x2, payload)
  writer.endBatch()
  t.ok(socket.writes.length >= 3, `${socket.writes.length} writes for 40 KiB of frames`)
  const { frames, rest } = parseServerFrames(socket.written)
  t.equal(rest.length, 0)
  t.ok(frames.length === 40 && frames.every((f, i) => f.payload.equals(payloads[i])), 'every frame intact, in order')
})

t.test('in a read batch, frame() answers false once the socket and the staged bytes reach the high-water mark', async t => {
  const { writer, socket } = batchWriter()
  socket.writableLength = 10000
  writer.beginBatch()
  t.equal(writer.frame(0x2, Buffer.alloc(4000)), true, '10000 + 4004 staged: under 16384')
  t.equal(writer.bufferedAmount, 14004, 'bufferedAmount counts the staged frame')
  t.equal(writer.frame(0x2, Buffer.alloc(4000)), false, '10000 + 8008: over')
  writer.endBatch()
  t.equal(writer.bufferedAmount, 10000)
})

t.test('a write that stays queued keeps its bytes: the next batch does not overwrite them', async t => {
  const { writer, socket } = batchWriter()
  socket.holds = true
  writer.beginBatch()
  writer.frame(0x1, 'first')
  writer.endBatch()
  const first = socket.writes[0]
  const firstBytes = Buffer.from(first)
  // Another socket's batch reuses the staging memory.
  const other = batchWriter()
  other.writer.beginBatch()
  other.writer.frame(0x1, 'XXXXXXXXXXXXXXXX')
  other.writer.endBatch()
  t.ok(first.equals(firstBytes), 'the queued write still reads "first"')

  // Now the socket has data queued: the next write gets a copy of its bytes.
  writer.beginBatch()
  writer.frame(0x1, 'second')
  writer.endBatch()
  const second = socket.writes[1]
  const secondBytes = Buffer.from(second)
  other.writer.beginBatch()
  other.writer.frame(0x1, 'YYYYYYYYYYYYYYYY')
  other.writer.endBatch()
  t.ok(second.equals(secondBytes), 'the second queued write is intact too')
  const { frames } = parseServerFrames(socket.written)
  t.same(frames.map(f => f.payload.toString()), ['first', 'second'])
})

t.test('batches of one length are written from one view of the staging buffer, each with its own bytes', async t => {
  const { writer, socket } = batchWriter()
  for (const word of ['one', 'two', 'six']) {
    writer.beginBatch()
    writer.frame(0x1, word)
    writer.endBatch()
  }
  t.equal(socket.given.length, 3)
  t.ok(socket.given[1] === socket.given[0] && socket.given[2] === socket.given[0], 'one Buffer object for the three writes')
  t.same(parseServerFrames(socket.written).frames.map(f => f.payload.toString()), ['one', 'two', 'six'], 'each write carried its own batch')
  writer.beginBatch()
  writer.frame(0x1, 'seven')
  writer.endBatch()
  t.not(socket.given[3], socket.given[0], 'another length: another view')

  // A write that stays queued keeps its view and the memory under it: the
  // next batch of that length, on any socket, is written from other memory.
  socket.holds = true
  writer.beginBatch()
  writer.frame(0x1, 'eight')
  writer.endBatch()
  const queued = socket.given[4]
  const other = batchWriter()
  other.writer.beginBatch()
  other.writer.frame(0x1, 'nine!')
  other.writer.endBatch()
  t.not(other.socket.given[0], queued, 'not the queued write\'s view')
  t.not(other.socket.given[0].buffer, queued.buffer, 'nor its memory')
  t.equal(parseServerFrame(queued)!.payload.toString(), 'eight', 'the queued write still reads its own bytes')
  t.equal(parseServerFrame(other.socket.written)!.payload.toString(), 'nine!')
})

t.test('one batch stages at a time: a writer used during another\'s batch writes corked', async t => {
  const a = batchWriter()
  const b = batchWriter()
  a.writer.beginBatch()
  b.writer.beginBatch()
  b.writer.frame(0x1, 'from b')
  t.same(b.socket.ops, ['cork', 'write'], 'b writes at once, corked until the next tick')
  a.writer.frame(0x1, 'from a')
  b.writer.endBatch()
  a.writer.endBatch()
  t.same(a.socket.ops, ['write'], 'a\'s batch is one write')
  await nextTick()
  t.same(b.socket.ops, ['cork', 'write', 'uncork'])
  t.equal(parseServerFrames(a.socket.written).frames[0].payload.toString(), 'from a')
  t.equal(parseServerFrames(b.socket.written).frames[0].payload.toString(), 'from b')
})

t.test('flush() writes the staged frames before the socket is ended; a destroyed socket gets nothing', async t => {
  const { writer, socket } = batchWriter()
  writer.beginBatch()
  writer.close(1000, Buffer.alloc(0))
  writer.flush()
  t.same([...socket.written], [0x88, 0x02, 0x03, 0xe8], 'the close frame is out before end()')
  writer.endBatch()
  t.equal(socket.writes.length, 1, 'nothing left for the end of the batch')

  const gone = batchWriter()
  gone.writer.beginBatch()
  gone.writer.frame(0x1, 'lost')
  gone.socket.destroyed = true
  gone.writer.endBatch()
  t.same(gone.socket.ops, [], 'no write to a destroyed socket')
  // The staging buffer is free again for the next batch.
  const next = batchWriter()
  next.writer.beginBatch()
  next.writer.frame(0x1, 'next')
  next.writer.endBatch()
  t.equal(parseServerFrames(next.socket.written).frames[0].payload.toString(), 'next')
})

t.test('over a real socket: a read batch\'s replies leave in one write', async t => {
  const { server, client } = await socketPair(t)
  const received = collect(client)
  const calls = countWrites(server)

  const writer = new FrameWriter(server)
  writer.beginBatch()
  for (let i = 0; i < 16; i++) writer.frame(0x2, Buffer.alloc(32, i))
  writer.endBatch()
  t.equal(calls.write, 1, 'one write')
  t.equal(calls.writev, 0, 'no writev')
  t.equal(server.writableLength, 0, 'the kernel took it at once')
  // The staging memory is reused by the next batch: what was sent is unchanged.
  writer.beginBatch()
  writer.frame(0x2, Buffer.alloc(32, 0xff))
  writer.endBatch()
  server.end()
  await once(client, 'end')
  const { frames, rest } = parseServerFrames(received.bytes())
  t.equal(rest.length, 0)
  t.equal(frames.length, 17)
  t.ok(frames.every((f, i) => f.payload.equals(Buffer.alloc(32, i < 16 ? i : 0xff))), 'every reply intact')
})

// ------------------------------------------------------------ lent payloads

/**
 * A socket stand-in. `takesAll`: every write completes at once, as when the
 * kernel takes it; else writes stay queued until `release()`. Chunks are
 * copied when written, so what the peer got is what the memory held then.
 */
class TestSocket extends Writable {
  /** It copies what it is given, as a socket's kernel does. */
  readonly [kWritesCopy] = true
  readonly received: Buffer[] = []
  private pending: Array<() => void> = []

  constructor (private readonly takesAll: boolean) {
    super({ highWaterMark: 16 * 1024 * 1024 })
  }

  override _write (chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.received.push(Buffer.from(chunk))
    if (this.takesAll) callback()
    else this.pending.push(() => callback())
  }

  release (): void {
    const pending = this.pending
    this.pending = []
    for (const done of pending) done()
  }

  frames (): Array<{ opcode: number, payload: Buffer }> {
    return parseServerFrames(Buffer.concat(this.received)).frames
  }
}

function filled (view: Buffer, byte: number): Buffer {
  view.fill(byte)
  return view
}

t.test('a lent payload leaves at once, behind the frames corked before it', async t => {
  const socket = new TestSocket(true)
  const writer = new FrameWriter(socket as unknown as Socket)
  writer.frame(Opcode.TEXT, 'first')
  t.equal(socket.received.length, 0, 'an ordinary frame waits for the end of the tick (corked)')
  const payload = filled(lend(10_000), 7)
  writer.frame(Opcode.BINARY, payload)
  const frames = socket.frames()
  t.same(frames.map(frame => [frame.opcode, frame.payload.length]), [[Opcode.TEXT, 5], [Opcode.BINARY, 10_000]], 'both are written before the handler returns, in order')
  t.ok(frames[1].payload.equals(Buffer.alloc(10_000, 7)))
  t.ok(isLent(payload), 'all taken at once: the memory is still the lender\'s')
  const before = pooledBytes()
  giveBack(payload)
  t.equal(pooledBytes(), before + 16 * 1024, 'and goes back to the pool')
  // The tick's pending uncork finds nothing left to do.
  await new Promise(resolve => setImmediate(resolve))
  t.equal(socket.frames().length, 2)
})

t.test('a lent payload whose write stays queued is kept out of the pool', async t => {
  const socket = new TestSocket(false)
  const writer = new FrameWriter(socket as unknown as Socket)
  const payload = filled(lend(10_000), 9)
  const memory = payload.buffer
  writer.frame(Opcode.BINARY, payload)
  t.ok(socket.writableLength > 0, 'the write is queued')
  t.notOk(isLent(payload), 'the queued write keeps the memory')
  const before = pooledBytes()
  giveBack(payload)
  t.equal(pooledBytes(), before, 'its give-back pools nothing')
  const next = filled(lend(10_000), 1)
  t.not(next.buffer, memory, 'a later message cannot overwrite what the write still reads')
  socket.release()
  t.ok(socket.frames()[0].payload.equals(Buffer.alloc(10_000, 9)))
  giveBack(next)
})

t.test('on a TLS socket, a lent payload is copied: the loan goes back to the pool', async t => {
  // A TLS socket's writes stay queued until the encrypted bytes are out.
  const socket = Object.assign(new TestSocket(false), { encrypted: true })
  const writer = new FrameWriter(socket as unknown as Socket)
  const payload = filled(lend(10_000), 5)
  const memory = payload.buffer
  writer.frame(Opcode.BINARY, payload)
  t.ok(isLent(payload), 'the memory is still the lender\'s: the write holds a copy')
  giveBack(payload)
  const next = filled(lend(10_000), 6)
  t.equal(next.buffer, memory, 'the next message reuses the memory')
  await new Promise(resolve => setImmediate(resolve))
  socket.release()
  t.same(socket.frames().map(frame => [frame.opcode, frame.payload.equals(Buffer.alloc(10_000, 5))]), [[Opcode.BINARY, true]],
    'and the frame written is the first message, not what the memory holds now')
  giveBack(next)
})

t.test('inside a read batch, a lent payload leaves behind the staged frames', async t => {
  const socket = new TestSocket(true)
  const writer = new FrameWriter(socket as unknown as Socket)
  writer.beginBatch()
  writer.frame(Opcode.TEXT, 'staged')
  const payload = filled(lend(8_000), 3)
  writer.frame(Opcode.BINARY, payload)
  t.same(socket.frames().map(frame => frame.opcode), [Opcode.TEXT, Opcode.BINARY], 'written before the batch ends')
  writer.endBatch()
  t.ok(isLent(payload))
  giveBack(payload)
})

/** A stream that hands on the very Buffers it is given and reports each write done at once, as a PassThrough pair does. */
class KeepingStream extends Writable {
  readonly kept: Buffer[] = []
  override _write (chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.kept.push(chunk)
    callback()
  }
}

t.test('a stream that keeps what it is given gets copies: no later reply or message overwrites what it holds', async t => {
  const first = new KeepingStream()
  const second = new KeepingStream()
  const one = new FrameWriter(first as unknown as Socket)
  const two = new FrameWriter(second as unknown as Socket)
  // Two read batches, one after the other, through the shared staging buffer.
  one.beginBatch()
  one.frame(Opcode.BINARY, Buffer.alloc(100, 1))
  one.endBatch()
  two.beginBatch()
  two.frame(Opcode.BINARY, Buffer.alloc(100, 2))
  two.endBatch()
  t.same(parseServerFrame(Buffer.concat(first.kept))?.payload, Buffer.alloc(100, 1), 'the first batch\'s reply is intact after the second batch')
  // A lent payload, given back and lent again for another message.
  const payload = filled(lend(10_000), 7)
  one.frame(Opcode.BINARY, payload)
  giveBack(payload)
  const next = filled(lend(10_000), 8)
  await new Promise(resolve => setImmediate(resolve))
  const frames = parseServerFrames(Buffer.concat(first.kept)).frames
  t.same(frames.map(frame => frame.payload.length), [100, 10_000])
  t.ok(frames[1].payload.equals(Buffer.alloc(10_000, 7)), 'the lent message written is intact after its memory carried the next one')
  giveBack(next)
})

t.test('an ordinary large payload is written at the end of the tick, as before', async t => {
  const socket = new TestSocket(true)
  const writer = new FrameWriter(socket as unknown as Socket)
  writer.frame(Opcode.BINARY, Buffer.alloc(10_000, 5))
  t.equal(socket.received.length, 0, 'corked for the rest of the tick')
  await new Promise(resolve => process.nextTick(resolve))
  t.same(socket.frames().map(frame => frame.payload.length), [10_000])
})

/**
 * The parser's client role and the masking writer, which the in-process
 * client of `injectWS` is made of. A client reads unmasked server frames and
 * fails the connection on a masked one (RFC 6455 §5.1: "A client MUST close
 * a connection if it detects a masked frame", WS_ERR_UNEXPECTED_MASK, 1002).
 * Every case is fed whole, split in two and one byte at a time, as in
 * parser.test.ts: inputs up to 4 KiB are split at every byte boundary; larger
 * ones at every byte of each frame header and the payload's first word, at
 * every alignment (mod 8) of 64 points spread through the payload, and in
 * the last 16 bytes (see `cuts`). The frames come from test/helpers/frames.ts
 * (`mask: false` for server frames).
 */
import t from 'tap'
import type { Writable } from 'node:stream'
import { ErrorCodes, type WebSocketError } from '../../lib/engine/errors.js'
import { FrameParser, type FrameHandler, type ParserOptions } from '../../lib/engine/parser.js'
import { MaskingFrameWriter } from '../../lib/engine/writer.js'
import { Op, binary, close, continuation, frame, parseServerFrame, text, type FrameSpec } from '../helpers/frames.js'
import { prng, randomBytes, sparseUtf8OfLength, utf8OfLength } from '../helpers/random.js'
import type { TestContext } from '../helpers/tap.js'

type Event =
  | { type: 'message', data: string, binary: boolean }
  | { type: 'ping' | 'pong', data: string }
  | { type: 'close', code: number, reason: string }
  | { type: 'error', code: string, closeCode: number }

/** Handler calls, payloads as hex so runs compare with `same`. */
class Recorder implements FrameHandler {
  readonly events: Event[] = []
  onMessage (data: Buffer, isBinary: boolean): void { this.events.push({ type: 'message', data: data.toString('hex'), binary: isBinary }) }
  onPing (data: Buffer): void { this.events.push({ type: 'ping', data: data.toString('hex') }) }
  onPong (data: Buffer): void { this.events.push({ type: 'pong', data: data.toString('hex') }) }
  onClose (code: number, reason: Buffer): void { this.events.push({ type: 'close', code, reason: reason.toString('hex') }) }
  onProtocolError (error: WebSocketError): void { this.events.push({ type: 'error', code: error.code, closeCode: error.closeCode }) }
}

const CLIENT: ParserOptions = { maxPayload: 64 * 1024 * 1024, maxFragments: 65536, role: 'client' }

function parse (chunks: Buffer[], options: Partial<ParserOptions> = {}): Event[] {
  const recorder = new Recorder()
  const parser = new FrameParser(recorder, { ...CLIENT, ...options })
  for (const chunk of chunks) parser.write(chunk)
  return recorder.events
}

/** Inputs up to this size are split at every byte boundary. */
const EVERY_CUT_UP_TO = 4096
/** Points spread through a large payload, each cut at its 8 alignments. */
const SPREAD_POINTS = 64

/**
 * Where to split `bytes` in two: everywhere in small inputs. In large ones:
 * every byte of each frame's header and of its payload's first 8 bytes (the
 * frames found by walking the headers; the first 16 bytes if they do not
 * walk), 8 consecutive cuts (every alignment mod 8, so every phase of the
 * mask key and of word-wide loops) at each of 64 points spread through each
 * payload, and the last 16 bytes.
 */
function cuts (bytes: Buffer): number[] {
  const length = bytes.length
  const all = new Set<number>()
  const add = (i: number): void => { if (i > 0 && i < length) all.add(i) }
  if (length <= EVERY_CUT_UP_TO) {
    for (let i = 1; i < length; i++) all.add(i)
    return [...all]
  }
  let at = 0
  while (at < length) {
    const parsed = parseServerFrame(bytes, at)
    if (parsed === null) {
      for (let i = at; i <= at + 16; i++) add(i)
      break
    }
    const payloadAt = at + parsed.headerLength
    for (let i = at; i <= payloadAt + 8; i++) add(i)
    const payloadLength = parsed.length - parsed.headerLength
    if (payloadLength > 16) {
      for (let k = 1; k <= SPREAD_POINTS; k++) {
        const point = payloadAt + Math.floor(k * payloadLength / (SPREAD_POINTS + 1))
        const aligned = point - (point % 8)
        for (let i = aligned; i < aligned + 8; i++) add(i)
      }
    }
    at += parsed.length
  }
  for (let i = length - 16; i < length; i++) add(i)
  return [...all].sort((a, b) => a - b)
}

const same = (a: Event[], b: Event[]): boolean => JSON.stringify(a) === JSON.stringify(b)

/**
 * Whole, split in two at each of `cuts(bytes)` (every byte boundary up to
 * 4 KiB), one byte at a time: each way must give `expected`.
 */
function expectEvents (t: TestContext, bytes: Buffer, expected: Event[], options?: Partial<ParserOptions>): void {
  t.same(parse([Buffer.from(bytes)], options), expected, 'whole input')
  const mismatches: string[] = []
  const ways = cuts(bytes)
  const want = JSON.stringify(expected)
  for (const i of ways) {
    const events = parse([Buffer.from(bytes.subarray(0, i)), Buffer.from(bytes.subarray(i))], options)
    if (JSON.stringify(events) !== want && mismatches.length < 3) mismatches.push(`split at ${i}`)
  }
  const single: Buffer[] = []
  for (let i = 0; i < bytes.length; i++) single.push(Buffer.from([bytes[i]]))
  if (!same(parse(single, options), expected)) mismatches.push('one byte at a time')
  const how = bytes.length <= EVERY_CUT_UP_TO ? 'every cut' : `${ways.length} cuts: every one in the headers, ${SPREAD_POINTS} points × 8 alignments through the payload, the last 16`
  t.same(mismatches, [], `${ways.length + 2} ways of cutting ${bytes.length} bytes agree (${how}, one byte at a time)`)
}

const UNMASKED = { mask: false } as const
const msg = (data: Buffer | string, isBinary = false): Event => ({ type: 'message', data: Buffer.from(data).toString('hex'), binary: isBinary })
const unexpectedMask: Event = { type: 'error', code: ErrorCodes.UNEXPECTED_MASK, closeCode: 1002 }

// ------------------------------------------------------------ unmasked frames

t.test('the client role reads unmasked frames across the 7-, 16- and 64-bit lengths', async t => {
  const random = prng(11)
  const cases: Array<[number, boolean]> = [[0, true], [0, false], [1, true], [125, false], [126, true], [127, false], [65535, true], [65536, false]]
  for (const [length, isBinary] of cases) {
    const payload = isBinary ? randomBytes(random, length) : length > 1000 ? sparseUtf8OfLength(length) : utf8OfLength(length)
    const bytes = isBinary ? binary(payload, true, UNMASKED) : text(payload, true, UNMASKED)
    t.equal(bytes.length, (length < 126 ? 2 : length < 65536 ? 4 : 10) + length, `${length}: no masking key on the wire`)
    expectEvents(t, bytes, [msg(payload, isBinary)])
  }
})

t.test('a payload is delivered as it came: nothing is unmasked', async t => {
  // Bytes that would change under any non-zero key.
  const payload = Buffer.from([0x00, 0xff, 0x37, 0xfa, 0x21, 0x3d, 0x80, 0x7f])
  expectEvents(t, binary(payload, true, UNMASKED), [msg(payload, true)])
})

t.test('fragments, control frames between them, and a close frame, unmasked', async t => {
  const bytes = Buffer.concat([
    text('Hello, ', false, UNMASKED),
    frame({ opcode: Op.PING, payload: 'are you there', mask: false }),
    continuation('wor', false, UNMASKED),
    frame({ opcode: Op.PONG, payload: '', mask: false }),
    continuation('ld', true, UNMASKED),
    binary(Buffer.from([1, 2, 3]), true, UNMASKED),
    close(1001, 'going away', UNMASKED),
  ])
  expectEvents(t, bytes, [
    { type: 'ping', data: Buffer.from('are you there').toString('hex') },
    { type: 'pong', data: '' },
    msg('Hello, world'),
    msg(Buffer.from([1, 2, 3]), true),
    { type: 'close', code: 1001, reason: Buffer.from('going away').toString('hex') },
  ])
})

t.test('a large unmasked frame that spans reads is assembled whole', async t => {
  const payload = randomBytes(prng(12), 200_000)
  const bytes = binary(payload, true, UNMASKED)
  const chunks: Buffer[] = []
  for (let i = 0; i < bytes.length; i += 16384) chunks.push(Buffer.from(bytes.subarray(i, i + 16384)))
  t.same(parse(chunks), [msg(payload, true)])
})

// -------------------------------------------------------------- masked frames

t.test('a masked frame fails the client with WS_ERR_UNEXPECTED_MASK / 1002', async t => {
  const cases: Array<[string, Partial<FrameSpec> & { opcode: number }]> = [
    ['text', { opcode: Op.TEXT, payload: 'hi' }],
    ['binary', { opcode: Op.BINARY, payload: Buffer.from([1, 2]) }],
    ['empty binary', { opcode: Op.BINARY }],
    ['ping', { opcode: Op.PING, payload: 'p' }],
    ['pong', { opcode: Op.PONG }],
    ['close', { opcode: Op.CLOSE, payload: Buffer.from([0x03, 0xe8]) }],
    ['16-bit length', { opcode: Op.BINARY, payload: Buffer.alloc(300) }],
    ['64-bit length', { opcode: Op.BINARY, payload: Buffer.alloc(10), lengthBits: 64 }],
    ['all-zero key', { opcode: Op.TEXT, payload: 'zero key', mask: Buffer.alloc(4) }],
  ]
  for (const [name, spec] of cases) {
    t.test(name, async t => expectEvents(t, frame(spec), [unexpectedMask]))
  }
})

t.test('a masked frame after valid ones: what came before is delivered, nothing after', async t => {
  const bytes = Buffer.concat([text('one', true, UNMASKED), text('two'), text('three', true, UNMASKED)])
  expectEvents(t, bytes, [msg('one'), unexpectedMask])
})

t.test('a masked continuation inside an unmasked message', async t => {
  const bytes = Buffer.concat([text('par', false, UNMASKED), continuation('t')])
  expectEvents(t, bytes, [unexpectedMask])
})

// ------------------------------------------------- the other checks still apply

t.test('the protocol checks are the same in the client role', async t => {
  expectEvents(t, text('x', true, { ...UNMASKED, rsv: 4 }), [{ type: 'error', code: ErrorCodes.UNEXPECTED_RSV, closeCode: 1002 }])
  expectEvents(t, frame({ opcode: 0x3, mask: false }), [{ type: 'error', code: ErrorCodes.INVALID_OPCODE, closeCode: 1002 }])
  expectEvents(t, frame({ opcode: Op.PING, fin: false, mask: false }), [{ type: 'error', code: ErrorCodes.EXPECTED_FIN, closeCode: 1002 }])
  expectEvents(t, continuation('x', true, UNMASKED), [{ type: 'error', code: ErrorCodes.UNEXPECTED_CONTINUATION, closeCode: 1002 }])
  expectEvents(t, text(Buffer.from([0x61, 0xc0, 0x80]), true, UNMASKED), [{ type: 'error', code: ErrorCodes.INVALID_UTF8, closeCode: 1007 }])
  expectEvents(t, close(1005, '', UNMASKED), [{ type: 'error', code: ErrorCodes.INVALID_CLOSE_CODE, closeCode: 1002 }])
  expectEvents(t, binary(Buffer.alloc(11), true, UNMASKED), [{ type: 'error', code: ErrorCodes.MAX_PAYLOAD, closeCode: 1009 }], { maxPayload: 10 })
})

t.test('the server role is unchanged: masked frames pass, unmasked fail with WS_ERR_EXPECTED_MASK', async t => {
  for (const role of [undefined, 'server'] as const) {
    expectEvents(t, text('masked'), [msg('masked')], { role })
    expectEvents(t, text('plain', true, UNMASKED), [{ type: 'error', code: ErrorCodes.EXPECTED_MASK, closeCode: 1002 }], { role })
  }
})

// ------------------------------------------------------------ masking writer

class Sink {
  readonly chunks: Buffer[] = []
  write (chunk: Buffer): boolean {
    this.chunks.push(chunk)
    return true
  }
}

function writerOnSink (): { writer: MaskingFrameWriter, sink: Sink } {
  const sink = new Sink()
  return { writer: new MaskingFrameWriter(sink as unknown as Writable), sink }
}

t.test('the masking writer: every frame masked, read back by the server role however it is cut', async t => {
  const random = prng(13)
  for (const length of [0, 1, 125, 126, 4097, 65535, 65536]) {
    const payload = randomBytes(random, length)
    const original = Buffer.from(payload)
    const { writer, sink } = writerOnSink()
    writer.frame(Op.BINARY, payload)
    t.equal(sink.chunks.length, 1, `${length}: one write`)
    const bytes = sink.chunks[0]
    t.equal(bytes[1] & 0x80, 0x80, `${length}: the MASK bit is set`)
    t.equal(bytes.length, (length < 126 ? 2 : length < 65536 ? 4 : 10) + 4 + length, `${length}: header, key, payload`)
    t.same(payload, original, `${length}: the caller's buffer is untouched`)
    const parsed = parseServerFrame(bytes)!
    t.ok(parsed.masked && parsed.fin && parsed.opcode === Op.BINARY && parsed.payload.equals(payload), `${length}: unmasks to the payload`)
    expectEvents(t, bytes, [msg(payload, true)], { role: 'server' })
  }
})

t.test('the masking writer: strings as UTF-8, control frames, close frames', async t => {
  const { writer, sink } = writerOnSink()
  writer.frame(Op.TEXT, 'héllo €')
  writer.frame(Op.TEXT, 'frag', false)
  writer.frame(Op.CONTINUATION, 'ment')
  writer.frame(Op.PING, Buffer.from('p'))
  writer.close(0, Buffer.alloc(0))
  t.same(parse(sink.chunks.map(c => Buffer.from(c)), { role: 'server' }), [
    msg('héllo €'),
    msg('fragment'),
    { type: 'ping', data: Buffer.from('p').toString('hex') },
    { type: 'close', code: 1005, reason: '' },
  ])
  const second = writerOnSink()
  second.writer.close(4000, Buffer.from('done'))
  t.same(parse(second.sink.chunks, { role: 'server' }), [{ type: 'close', code: 4000, reason: Buffer.from('done').toString('hex') }])
})

t.test('the masking writer draws a fresh key per frame, across refills of its pool', async t => {
  const { writer, sink } = writerOnSink()
  // More frames than one pool of keys (2048), so the pool is refilled.
  for (let i = 0; i < 5000; i++) writer.frame(Op.BINARY, Buffer.alloc(4))
  const keys = new Set(sink.chunks.map(chunk => chunk.subarray(2, 6).toString('hex')))
  // 5000 random 32-bit keys collide with probability ~0.3%; a stuck pool would give ~1 distinct key.
  t.ok(keys.size >= 4990, `${keys.size} distinct keys in 5000 frames`)
  const zeroPayloadMasked = sink.chunks.every(chunk => chunk.subarray(6).equals(chunk.subarray(2, 6)))
  t.ok(zeroPayloadMasked, 'a zero payload masked is the key itself')
})

/**
 * FrameParser: every frame-level case is fed whole, split in two at every
 * byte boundary, and one byte at a time, and must give the same handler
 * calls each way.
 */
import { constants } from 'node:buffer'
import t from 'tap'
import { FrameParser, type FrameHandler, type ParserOptions } from '../../lib/engine/parser.js'
import { maskingReadBuffer } from '../../lib/engine/mask.js'
import { giveBack, lend, pooledBytes } from '../../lib/engine/loans.js'
import type { WebSocketError } from '../../lib/engine/errors.js'
import { Op, binary, close, closePayload, continuation, frame, text } from '../helpers/frames.js'
import { prng, randomBytes, sparseUtf8OfLength, utf8OfLength } from '../helpers/random.js'
import type { TestContext } from '../helpers/tap.js'

type Event =
  | { type: 'message', data: Buffer, binary: boolean }
  | { type: 'ping', data: Buffer }
  | { type: 'pong', data: Buffer }
  | { type: 'close', code: number, reason: Buffer }
  | { type: 'error', code: string, closeCode: number }
  /** A handler call after close or a protocol error: the parser must not make one. */
  | { type: 'after-stop', what: string }

/**
 * Records handler calls. Payloads are kept as the views the parser hands
 * over, not copies, so a parser that reused or overwrote a delivered buffer
 * would show up as a mismatch. Messages are copied unless `keepViews` is
 * set: with ordinary input they may be views of the caller's chunk, which
 * the tests refill between runs.
 */
class Recorder implements FrameHandler {
  readonly events: Event[] = []
  private ended = false

  constructor (private readonly keepViews = false) {}

  private push (event: Event): void {
    if (this.ended) this.events.push({ type: 'after-stop', what: event.type })
    else this.events.push(event)
  }

  onMessage (data: Buffer, isBinary: boolean): void {
    this.push({ type: 'message', data: this.keepViews ? data : Buffer.from(data), binary: isBinary })
  }

  onPing (data: Buffer): void {
    this.push({ type: 'ping', data })
  }

  onPong (data: Buffer): void {
    this.push({ type: 'pong', data })
  }

  onClose (code: number, reason: Buffer): void {
    this.push({ type: 'close', code, reason })
    this.ended = true
  }

  onProtocolError (error: WebSocketError): void {
    this.push({ type: 'error', code: error.code, closeCode: error.closeCode })
    this.ended = true
  }
}

const DEFAULTS: ParserOptions = { maxPayload: 64 * 1024 * 1024, maxFragments: 65536 }

function newParser (options: Partial<ParserOptions> = {}, keepViews = false): { parser: FrameParser, recorder: Recorder } {
  const recorder = new Recorder(keepViews)
  const parser = new FrameParser(recorder, { ...DEFAULTS, ...options })
  return { parser, recorder }
}

/** Parses `chunks` and returns the handler calls. The parser unmasks in place: the chunks are changed. */
function parseChunks (chunks: Buffer[], options?: Partial<ParserOptions>): Event[] {
  const { parser, recorder } = newParser(options)
  for (const chunk of chunks) parser.write(chunk)
  return recorder.events
}

/**
 * Parses `chunks` the way direct reads deliver them: each one written from
 * one shared buffer (`write(chunk, true)`) that is overwritten right after
 * the call. Every payload is recorded as the view the parser handed over, so
 * one that still pointed into the shared buffer would read as garbage.
 */
function parseVolatile (chunks: Buffer[], shared: Buffer, options?: Partial<ParserOptions>): Event[] {
  const { parser, recorder } = newParser(options, true)
  for (const chunk of chunks) {
    shared.set(chunk)
    parser.write(shared.subarray(0, chunk.length), true)
    shared.fill(0xee, 0, chunk.length)
  }
  return recorder.events
}

function sameEvent (a: Event, b: Event): boolean {
  if (a.type !== b.type) return false
  switch (a.type) {
    case 'message': {
      const o = b as typeof a
      return a.binary === o.binary && a.data.equals(o.data)
    }
    case 'ping':
    case 'pong':
      return a.data.equals((b as typeof a).data)
    case 'close': {
      const o = b as typeof a
      return a.code === o.code && a.reason.equals(o.reason)
    }
    case 'error': {
      const o = b as typeof a
      return a.code === o.code && a.closeCode === o.closeCode
    }
    case 'after-stop':
      return a.what === (b as typeof a).what
  }
}

function sameEvents (a: Event[], b: Event[]): boolean {
  return a.length === b.length && a.every((event, i) => sameEvent(event, b[i]))
}

/** A short, readable form of events for assertions and diagnostics. */
function describe (events: Event[]): unknown[] {
  return events.map(e => {
    switch (e.type) {
      case 'message': return { type: e.type, binary: e.binary, length: e.data.length, data: e.data.length <= 64 ? e.data.toString('hex') : undefined }
      case 'ping':
      case 'pong': return { type: e.type, data: e.data.toString('hex') }
      case 'close': return { type: e.type, code: e.code, reason: e.reason.toString('hex') }
      default: return e
    }
  })
}

interface FeedResult {
  /** The handler calls when the bytes arrive in one chunk. */
  whole: Event[]
  /** How many ways of cutting the input were tried. */
  ways: number
  /** The cuts that gave different calls (at most a few kept). */
  mismatches: Array<{ how: string, events: unknown[] }>
}

/**
 * Feeds `bytes` whole, then split at every byte boundary (two writes), then
 * one byte at a time, each of those also through a reused read buffer (as
 * direct reads do), and compares every run with the first.
 */
function feedEveryWay (bytes: Buffer, options?: Partial<ParserOptions>): FeedResult {
  const whole = parseChunks([Buffer.from(bytes)], options)
  const mismatches: FeedResult['mismatches'] = []
  let ways = 1
  // One working copy, refilled for every cut (the parser unmasks in place):
  // memory already touched is much cheaper than a fresh 64 KiB per cut. The
  // events of a cut are compared before the next refill.
  const work = Buffer.allocUnsafe(bytes.length)
  for (let i = 1; i < bytes.length; i++) {
    work.set(bytes)
    const events = parseChunks([work.subarray(0, i), work.subarray(i)], options)
    ways++
    if (!sameEvents(events, whole) && mismatches.length < 3) mismatches.push({ how: `split at ${i}`, events: describe(events) })
  }
  // The engine's own read buffer when the input fits: payload bytes in it
  // are unmasked where they lie (mask.ts), a path of its own.
  const shared = maskingReadBuffer !== undefined && bytes.length <= maskingReadBuffer.length ? maskingReadBuffer : Buffer.allocUnsafe(bytes.length)
  {
    const events = parseVolatile([bytes], shared, options)
    ways++
    if (!sameEvents(events, whole)) mismatches.push({ how: 'whole, through a reused buffer', events: describe(events) })
  }
  for (let i = 1; i < bytes.length; i++) {
    const events = parseVolatile([bytes.subarray(0, i), bytes.subarray(i)], shared, options)
    ways++
    if (!sameEvents(events, whole) && mismatches.length < 6) mismatches.push({ how: `split at ${i}, through a reused buffer`, events: describe(events) })
  }
  const single: Buffer[] = []
  for (let i = 0; i < bytes.length; i++) single.push(Buffer.from([bytes[i]]))
  let events = parseChunks(single, options)
  ways++
  if (!sameEvents(events, whole)) mismatches.push({ how: 'one byte at a time', events: describe(events) })
  // `single` was unmasked in place by that run: cut the original instead.
  const bytewise: Buffer[] = []
  for (let i = 0; i < bytes.length; i++) bytewise.push(bytes.subarray(i, i + 1))
  events = parseVolatile(bytewise, shared, options)
  ways++
  if (!sameEvents(events, whole)) mismatches.push({ how: 'one byte at a time, through a reused buffer', events: describe(events) })
  return { whole, ways, mismatches }
}

/** Asserts that every way of feeding `bytes` gives exactly `expected`. */
function expectEvents (t: TestContext, bytes: Buffer, expected: Event[], options?: Partial<ParserOptions>): void {
  const result = feedEveryWay(bytes, options)
  t.ok(sameEvents(result.whole, expected), 'whole input gives the expected calls', { found: describe(result.whole), wanted: describe(expected) })
  t.same(result.mismatches, [], `all ${result.ways} ways of cutting ${bytes.length} bytes agree`)
}

/** Asserts that every way of feeding `bytes` ends in the protocol error `code`/`closeCode` after `before`. */
function expectError (t: TestContext, bytes: Buffer, code: string, closeCode: number, before: Event[] = [], options?: Partial<ParserOptions>): void {
  expectEvents(t, bytes, [...before, { type: 'error', code, closeCode }], options)
}

const msg = (data: Buffer | string, isBinary = false): Event => ({ type: 'message', data: Buffer.from(data), binary: isBinary })

// ------------------------------------------------------------------ lengths

t.test('payload lengths across the 7-, 16- and 64-bit encodings', async t => {
  const random = prng(1)
  // Every cut of a 64 KiB frame costs a full parse, so the two largest sizes
  // are run once each (binary at the 16-bit maximum, text at the first 64-bit
  // length) to keep the run short; both types are covered at every encoding.
  const cases: Array<[number, 'binary' | 'text']> = [
    [0, 'binary'], [0, 'text'], [1, 'binary'], [1, 'text'], [125, 'binary'], [125, 'text'],
    [126, 'binary'], [126, 'text'], [127, 'binary'], [127, 'text'], [65535, 'binary'], [65536, 'text'],
  ]
  for (const [length, type] of cases) {
    t.test(`${type}, ${length} bytes`, async t => {
      // Mixed UTF-8 everywhere but in the 64 KiB text, where a character every
      // 4 KiB keeps the thousands of runs quick (smaller cases cover dense text).
      const payload = type === 'binary' ? randomBytes(random, length) : length > 1000 ? sparseUtf8OfLength(length) : utf8OfLength(length)
      const bytes = type === 'binary' ? binary(payload) : text(payload)
      const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10
      t.equal(bytes.length, headerLength + 4 + length, 'the frame uses the smallest length encoding')
      t.equal(bytes[1] & 0x7f, length < 126 ? length : length < 65536 ? 126 : 127, 'length field')
      expectEvents(t, bytes, [msg(payload, type === 'binary')])
    })
  }
  // The two largest once more, whole and one byte at a time, in the other type.
  t.test('text, 65535 bytes and binary, 65536 bytes, whole and byte by byte', async t => {
    for (const [payload, isBinary] of [[utf8OfLength(65535), false], [randomBytes(random, 65536), true]] as const) {
      const bytes = isBinary ? binary(payload) : text(payload)
      t.ok(sameEvents(parseChunks([Buffer.from(bytes)]), [msg(payload, isBinary)]), `whole, ${payload.length}`)
      const single: Buffer[] = []
      for (let i = 0; i < bytes.length; i++) single.push(Buffer.from([bytes[i]]))
      t.ok(sameEvents(parseChunks(single), [msg(payload, isBinary)]), `byte by byte, ${payload.length}`)
    }
  })
})

t.test('longer-than-needed length encodings are read correctly', async t => {
  expectEvents(t, text('hello', true, { lengthBits: 16 }), [msg('hello')])
  expectEvents(t, text('hello', true, { lengthBits: 64 }), [msg('hello')])
  expectEvents(t, binary(Buffer.alloc(0), true, { lengthBits: 64 }), [msg(Buffer.alloc(0), true)])
})

t.test('a payload that is not a multiple of four is unmasked with the right key byte', async t => {
  const random = prng(2)
  for (let length = 0; length < 40; length++) {
    const payload = randomBytes(random, length)
    const mask = randomBytes(random, 4)
    const result = feedEveryWay(binary(payload, true, { mask }))
    t.ok(sameEvents(result.whole, [msg(payload, true)]) && result.mismatches.length === 0, `length ${length}`)
  }
})

t.test('an unmasked-looking zero key still works', async t => {
  expectEvents(t, text('abc', true, { mask: Buffer.alloc(4) }), [msg('abc')])
})

// ------------------------------------------------------------- fragmentation

t.test('a message in two fragments', async t => {
  const bytes = Buffer.concat([text('Hello, ', false), continuation('world')])
  expectEvents(t, bytes, [msg('Hello, world')])
  const bin = Buffer.concat([binary(Buffer.from([1, 2, 3]), false), continuation(Buffer.from([4, 5]))])
  expectEvents(t, bin, [msg(Buffer.from([1, 2, 3, 4, 5]), true)])
})

t.test('a message in many fragments, some empty', async t => {
  const payload = utf8OfLength(500)
  const frames: Buffer[] = []
  // Cuts of 0..9 bytes, many of them inside multi-byte characters.
  let at = 0
  let size = 0
  frames.push(text(Buffer.alloc(0), false))
  while (at < payload.length) {
    const end = Math.min(payload.length, at + size)
    frames.push(continuation(payload.subarray(at, end), false))
    at = end
    size = (size + 3) % 10
  }
  frames.push(continuation(Buffer.alloc(0), true))
  t.ok(frames.length > 100, `${frames.length} fragments`)
  expectEvents(t, Buffer.concat(frames), [msg(payload)])
})

t.test('tiny fragments are joined as they arrive: the parser keeps few pieces, and the message is intact', async t => {
  const payload = utf8OfLength(20_000)
  const frames: Buffer[] = [text(payload.subarray(0, 1), false)]
  for (let i = 1; i < payload.length - 1; i++) frames.push(continuation(payload.subarray(i, i + 1), false))
  frames.push(continuation(payload.subarray(payload.length - 1)))
  const bytes = Buffer.concat(frames)
  // Fresh copies each time: the parser unmasks in place.
  for (const [how, events] of [
    ['whole', parseChunks([Buffer.from(bytes)])],
    ['through a reused buffer, 1000 bytes a read', parseVolatile(Array.from({ length: Math.ceil(bytes.length / 1000) }, (_, i) => bytes.subarray(i * 1000, (i + 1) * 1000)), Buffer.allocUnsafe(1000))],
  ] as const) {
    t.ok(sameEvents(events, [msg(payload)]), `${how}: one message, every byte in order`)
  }
  const { parser } = newParser()
  parser.write(Buffer.from(bytes.subarray(0, bytes.length - 7)))
  const kept = (parser as unknown as { fragments: Buffer[] }).fragments.length
  t.ok(kept <= Math.ceil(payload.length / 64) + 64, `${payload.length - 1} one-byte fragments kept as ${kept} pieces`)

  // Large fragments are kept as they came (joining them would only copy them again).
  const big = randomBytes(prng(7), 100 * 2048)
  const bigFrames: Buffer[] = []
  for (let at = 0; at < big.length; at += 2048) bigFrames.push(at === 0 ? binary(big.subarray(0, 2048), false) : continuation(big.subarray(at, at + 2048), at + 2048 >= big.length))
  t.ok(sameEvents(parseChunks([Buffer.concat(bigFrames)]), [msg(big, true)]), '100 fragments of 2 KiB: intact')
  const large = newParser()
  large.parser.write(Buffer.concat(bigFrames.slice(0, 99)))
  t.equal((large.parser as unknown as { fragments: Buffer[] }).fragments.length, 99, 'and not joined')
})

t.test('a message made only of empty fragments', async t => {
  expectEvents(t, Buffer.concat([text('', false), continuation('', false), continuation('')]), [msg('')])
  expectEvents(t, Buffer.concat([binary(Buffer.alloc(0), false), continuation(Buffer.alloc(0))]), [msg(Buffer.alloc(0), true)])
})

t.test('a UTF-8 character split across fragments', async t => {
  const euro = Buffer.from('€') // e2 82 ac
  const bytes = Buffer.concat([
    text(Buffer.from([0x61, euro[0]]), false),
    continuation(euro.subarray(1, 2), false),
    continuation(Buffer.concat([euro.subarray(2), Buffer.from('b')])),
  ])
  expectEvents(t, bytes, [msg('a€b')])
})

t.test('control frames between fragments are delivered at once', async t => {
  const bytes = Buffer.concat([
    text('one ', false),
    frame({ opcode: Op.PING, payload: 'p1' }),
    continuation('two ', false),
    frame({ opcode: Op.PONG, payload: 'p2' }),
    frame({ opcode: Op.PING }),
    continuation('three'),
  ])
  expectEvents(t, bytes, [
    { type: 'ping', data: Buffer.from('p1') },
    { type: 'pong', data: Buffer.from('p2') },
    { type: 'ping', data: Buffer.alloc(0) },
    msg('one two three'),
  ])
})

t.test('a close frame between fragments ends parsing; the message is never delivered', async t => {
  const bytes = Buffer.concat([text('one ', false), close(1000, 'bye'), continuation('two')])
  expectEvents(t, bytes, [{ type: 'close', code: 1000, reason: Buffer.from('bye') }])
})

t.test('several frames in one chunk', async t => {
  const random = prng(3)
  const big = randomBytes(random, 300)
  const bytes = Buffer.concat([
    text('a'),
    binary(big),
    frame({ opcode: Op.PING, payload: 'ping' }),
    text(''),
    binary(Buffer.from([0xff]), false),
    continuation(Buffer.from([0xfe])),
    frame({ opcode: Op.PONG, payload: Buffer.alloc(125, 7) }),
    text('zzz'),
    close(1001, 'going'),
  ])
  expectEvents(t, bytes, [
    msg('a'),
    msg(big, true),
    { type: 'ping', data: Buffer.from('ping') },
    msg(''),
    msg(Buffer.from([0xff, 0xfe]), true),
    { type: 'pong', data: Buffer.alloc(125, 7) },
    msg('zzz'),
    { type: 'close', code: 1001, reason: Buffer.from('going') },
  ])
})

// ------------------------------------------------------------ control frames

t.test('ping and pong payloads of 0 and 125 bytes', async t => {
  for (const opcode of [Op.PING, Op.PONG]) {
    const type = opcode === Op.PING ? 'ping' : 'pong'
    expectEvents(t, frame({ opcode }), [{ type, data: Buffer.alloc(0) }])
    const payload = randomBytes(prng(opcode), 125)
    expectEvents(t, frame({ opcode, payload }), [{ type, data: payload }])
  }
})

t.test('close frames: empty, code only, code and reason', async t => {
  expectEvents(t, close(), [{ type: 'close', code: 1005, reason: Buffer.alloc(0) }])
  expectEvents(t, close(1000), [{ type: 'close', code: 1000, reason: Buffer.alloc(0) }])
  const reason = 'ünïcödé ✓ 😀'
  expectEvents(t, close(4000, reason), [{ type: 'close', code: 4000, reason: Buffer.from(reason) }])
  const longest = utf8OfLength(123)
  expectEvents(t, close(3000, longest), [{ type: 'close', code: 3000, reason: longest }])
})

t.test('valid close codes are accepted', async t => {
  const codes = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
  for (const code of codes) {
    expectEvents(t, close(code, 'r'), [{ type: 'close', code, reason: Buffer.from('r') }])
  }
})

t.test('invalid close codes fail with WS_ERR_INVALID_CLOSE_CODE / 1002', async t => {
  for (const code of [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
    t.test(`code ${code}`, async t => {
      expectError(t, close(code), 'WS_ERR_INVALID_CLOSE_CODE', 1002)
    })
  }
})

t.test('a close frame with a one-byte payload fails with WS_ERR_INVALID_CLOSE_PAYLOAD / 1002', async t => {
  expectError(t, frame({ opcode: Op.CLOSE, payload: Buffer.from([0x03]) }), 'WS_ERR_INVALID_CLOSE_PAYLOAD', 1002)
})

t.test('input after a close frame is ignored', async t => {
  expectEvents(t, Buffer.concat([close(1000), text('late'), frame({ opcode: Op.PING })]), [{ type: 'close', code: 1000, reason: Buffer.alloc(0) }])
  const { parser, recorder } = newParser()
  parser.write(close(4001))
  t.ok(parser.stopped, 'the parser stops after a close frame')
  parser.write(text('more'))
  parser.write(Buffer.from([0xff, 0xff, 0xff]))
  t.same(describe(recorder.events), [{ type: 'close', code: 4001, reason: '' }])
})

// --------------------------------------------------------- protocol errors

t.test('RSV bits fail with WS_ERR_UNEXPECTED_RSV / 1002', async t => {
  for (let rsv = 1; rsv <= 7; rsv++) {
    expectError(t, text('x', true, { rsv }), 'WS_ERR_UNEXPECTED_RSV', 1002)
  }
  expectError(t, frame({ opcode: Op.PING, rsv: 4 }), 'WS_ERR_UNEXPECTED_RSV', 1002)
  expectError(t, Buffer.concat([text('a', false), continuation('b', true, { rsv: 2 })]), 'WS_ERR_UNEXPECTED_RSV', 1002)
})

t.test('unknown opcodes fail with WS_ERR_INVALID_OPCODE / 1002', async t => {
  for (const opcode of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
    expectError(t, frame({ opcode, payload: 'x' }), 'WS_ERR_INVALID_OPCODE', 1002)
    expectError(t, frame({ opcode, fin: false }), 'WS_ERR_INVALID_OPCODE', 1002)
  }
})

t.test('unmasked frames fail with WS_ERR_EXPECTED_MASK / 1002', async t => {
  expectError(t, text('hi', true, { mask: false }), 'WS_ERR_EXPECTED_MASK', 1002)
  expectError(t, frame({ opcode: Op.PING, mask: false }), 'WS_ERR_EXPECTED_MASK', 1002)
  expectError(t, Buffer.concat([text('a', false), continuation('b', true, { mask: false })]), 'WS_ERR_EXPECTED_MASK', 1002)
  expectError(t, Buffer.concat([text('ok'), text('no', true, { mask: false })]), 'WS_ERR_EXPECTED_MASK', 1002, [msg('ok')])
})

t.test('fragmented control frames fail with WS_ERR_EXPECTED_FIN / 1002', async t => {
  for (const opcode of [Op.PING, Op.PONG, Op.CLOSE]) {
    expectError(t, frame({ opcode, fin: false, payload: 'x' }), 'WS_ERR_EXPECTED_FIN', 1002)
  }
})

t.test('control frames over 125 bytes fail with WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH / 1002', async t => {
  for (const opcode of [Op.PING, Op.PONG, Op.CLOSE]) {
    expectError(t, frame({ opcode, payload: Buffer.alloc(126, 0x61) }), 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', 1002)
  }
  // Only the two header bytes are needed to see it.
  const { parser, recorder } = newParser()
  parser.write(frame({ opcode: Op.PING, payload: Buffer.alloc(126) }).subarray(0, 2))
  t.same(describe(recorder.events), [{ type: 'error', code: 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', closeCode: 1002 }])
})

t.test('a 64-bit length with the top bit set fails with WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH / 1002', async t => {
  const bytes = frame({ opcode: Op.BINARY, lengthBits: 64, declaredLength: 1n << 63n })
  // Header only: the frame never gets a payload.
  expectError(t, bytes.subarray(0, 10), 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', 1002)
  expectError(t, frame({ opcode: Op.TEXT, lengthBits: 64, declaredLength: 0xffffffffffffffffn }).subarray(0, 10), 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', 1002)
})

t.test('a continuation without a message to continue fails with WS_ERR_UNEXPECTED_CONTINUATION / 1002', async t => {
  expectError(t, continuation('x'), 'WS_ERR_UNEXPECTED_CONTINUATION', 1002)
  expectError(t, continuation('x', false), 'WS_ERR_UNEXPECTED_CONTINUATION', 1002)
  // After a complete message, there is nothing to continue either.
  expectError(t, Buffer.concat([text('a', false), continuation('b'), continuation('c')]), 'WS_ERR_UNEXPECTED_CONTINUATION', 1002, [msg('ab')])
})

t.test('a new data frame inside a fragmented message fails with WS_ERR_EXPECTED_CONTINUATION / 1002', async t => {
  expectError(t, Buffer.concat([text('a', false), text('b')]), 'WS_ERR_EXPECTED_CONTINUATION', 1002)
  expectError(t, Buffer.concat([binary(Buffer.from([1]), false), continuation(Buffer.from([2]), false), binary(Buffer.from([3]))]), 'WS_ERR_EXPECTED_CONTINUATION', 1002)
  expectError(t, Buffer.concat([text('a', false), frame({ opcode: Op.PING }), binary(Buffer.from([3]), false)]), 'WS_ERR_EXPECTED_CONTINUATION', 1002, [{ type: 'ping', data: Buffer.alloc(0) }])
})

// ---------------------------------------------------------------- UTF-8

t.test('invalid UTF-8 fails with WS_ERR_INVALID_UTF8 / 1007', async t => {
  t.test('in a single frame', async t => {
    for (const bad of [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0x61, 0x80], [0xe2, 0x82], [0xf0, 0x9f, 0x98]]) {
      expectError(t, text(Buffer.from(bad)), 'WS_ERR_INVALID_UTF8', 1007)
    }
    // Long enough for the validator's native fast path, which then falls back.
    const long = Buffer.concat([utf8OfLength(300), Buffer.from([0xc3, 0x28]), utf8OfLength(20)])
    expectError(t, text(long), 'WS_ERR_INVALID_UTF8', 1007)
  })
  t.test('across fragments', async t => {
    // e2 82 then 28: the third byte of € is not a continuation byte.
    expectError(t, Buffer.concat([text(Buffer.from([0x61, 0xe2, 0x82]), false), continuation(Buffer.from([0x28]))]), 'WS_ERR_INVALID_UTF8', 1007)
    // A character left unfinished by the last fragment.
    expectError(t, Buffer.concat([text('a', false), continuation(Buffer.from([0xe2, 0x82]))]), 'WS_ERR_INVALID_UTF8', 1007)
    expectError(t, Buffer.concat([text(Buffer.from([0xf0, 0x9f]), false), continuation(Buffer.from([0x98]), false), continuation('')]), 'WS_ERR_INVALID_UTF8', 1007)
    // A surrogate assembled from two fragments.
    expectError(t, Buffer.concat([text(Buffer.from([0xed]), false), continuation(Buffer.from([0xb0, 0x80]))]), 'WS_ERR_INVALID_UTF8', 1007)
  })
  t.test('in a close reason', async t => {
    expectError(t, close(1000, Buffer.from([0xff])), 'WS_ERR_INVALID_UTF8', 1007)
    expectError(t, close(1000, Buffer.from([0x61, 0xe2, 0x82])), 'WS_ERR_INVALID_UTF8', 1007)
    expectError(t, close(4000, Buffer.from([0xed, 0xa0, 0x80])), 'WS_ERR_INVALID_UTF8', 1007)
  })
  t.test('binary messages are not checked', async t => {
    const bytes = Buffer.from([0xff, 0xc0, 0x80, 0xed, 0xa0, 0x80])
    expectEvents(t, binary(bytes), [msg(bytes, true)])
    expectEvents(t, Buffer.concat([binary(bytes.subarray(0, 2), false), continuation(bytes.subarray(2))]), [msg(bytes, true)])
  })
})

/**
 * Feeds `bytes` one byte at a time and returns how many bytes had been
 * written when the first protocol error was reported (0 if never).
 */
function bytesUntilError (bytes: Buffer, options?: Partial<ParserOptions>): { at: number, events: Event[] } {
  const { parser, recorder } = newParser(options)
  const copy = Buffer.from(bytes)
  for (let i = 0; i < copy.length; i++) {
    parser.write(copy.subarray(i, i + 1))
    if (recorder.events.some(e => e.type === 'error')) {
      // The rest arrives too and must change nothing.
      parser.write(copy.subarray(i + 1))
      return { at: i + 1, events: recorder.events }
    }
  }
  return { at: 0, events: recorder.events }
}

t.test('invalid UTF-8 fails before the rest of the frame arrives', async t => {
  // 1000-byte text frame; byte 10 of the payload is an overlong lead byte.
  const payload = utf8OfLength(1000)
  payload[10] = 0xc0
  const bytes = text(payload)
  const header = 4 + 4 // 16-bit length, then the key
  const result = bytesUntilError(bytes)
  t.equal(result.at, header + 11, 'the error comes with the bad byte')
  t.same(describe(result.events), [{ type: 'error', code: 'WS_ERR_INVALID_UTF8', closeCode: 1007 }], 'and nothing follows it')

  // The same with a chunk holding the header and the first 20 payload bytes.
  const { parser, recorder } = newParser()
  const copy = Buffer.from(bytes)
  parser.write(copy.subarray(0, header + 20))
  t.same(describe(recorder.events), [{ type: 'error', code: 'WS_ERR_INVALID_UTF8', closeCode: 1007 }], 'fails on a partial payload')
  t.ok(parser.stopped)

  // A sequence that only becomes invalid at its second byte: ed a0 (a surrogate).
  const surrogate = utf8OfLength(300)
  surrogate[100] = 0xed
  surrogate[101] = 0xa0
  surrogate[102] = 0x80
  t.equal(bytesUntilError(text(surrogate)).at, header + 102, 'fails at the byte that makes the sequence invalid')
})

t.test('invalid UTF-8 in the first fragment fails before the last fragment arrives', async t => {
  const first = utf8OfLength(200)
  first[150] = 0xf8
  const bytes = Buffer.concat([text(first, false), continuation(utf8OfLength(50))])
  const result = bytesUntilError(bytes)
  t.equal(result.at, 4 + 4 + 151, 'fails inside the first fragment')
  t.same(describe(result.events), [{ type: 'error', code: 'WS_ERR_INVALID_UTF8', closeCode: 1007 }])

  // And in a middle fragment, before the final one.
  const mid = Buffer.concat([text('ok', false), continuation(Buffer.from([0x61, 0xe0, 0x80]), false), continuation('tail')])
  const first2 = text('ok', false).length
  t.equal(bytesUntilError(mid).at, first2 + 2 + 4 + 3, 'fails at e0 80 (overlong) in the second fragment')
})

// ----------------------------------------------------------------- limits

t.test('maxPayload is checked against the declared length, before the payload arrives', async t => {
  const options = { maxPayload: 1000 }
  expectEvents(t, binary(Buffer.alloc(1000, 1)), [msg(Buffer.alloc(1000, 1), true)], options)
  const tooBig = binary(Buffer.alloc(1001, 1))
  expectError(t, tooBig, 'WS_ERR_MAX_PAYLOAD', 1009, [], options)

  // Only the header: 2 bytes and the 16-bit length. No key, no payload.
  const { parser, recorder } = newParser(options)
  parser.write(Buffer.from(tooBig.subarray(0, 4)))
  t.same(describe(recorder.events), [{ type: 'error', code: 'WS_ERR_MAX_PAYLOAD', closeCode: 1009 }], 'fails after the 4 header bytes')

  // A 64-bit length of 1 TiB: fails after the 10 header bytes.
  const huge = frame({ opcode: Op.BINARY, lengthBits: 64, declaredLength: 1n << 40n }).subarray(0, 10)
  expectError(t, huge, 'WS_ERR_MAX_PAYLOAD', 1009, [], options)
})

t.test('a text message longer than the longest string fails with WS_ERR_MAX_PAYLOAD / 1009, even under maxPayload', async t => {
  const options = { maxPayload: Infinity }
  const over = BigInt(constants.MAX_STRING_LENGTH) + 1n
  expectError(t, frame({ opcode: Op.TEXT, lengthBits: 64, declaredLength: over }).subarray(0, 10), 'WS_ERR_MAX_PAYLOAD', 1009, [], options)
  // Over the fragments of one message too.
  const first = text('a', false)
  const rest = frame({ opcode: Op.CONTINUATION, lengthBits: 64, declaredLength: over - 1n }).subarray(0, 10)
  expectError(t, Buffer.concat([first, rest]), 'WS_ERR_MAX_PAYLOAD', 1009, [], options)
  // Binary has no such limit: the header alone is accepted.
  const { parser, recorder } = newParser(options)
  parser.write(frame({ opcode: Op.BINARY, lengthBits: 64, declaredLength: over }).subarray(0, 14))
  t.same(recorder.events, [], 'a binary message of that length may come')
})

t.test('no memory for a message: WS_ERR_MAX_PAYLOAD / 1009 for that connection, nothing thrown', async t => {
  const original = Buffer.allocUnsafe
  const refuse = (size: number): void => {
    Buffer.allocUnsafe = ((n: number) => {
      if (n === size) throw new RangeError('Array buffer allocation failed')
      return original(n)
    }) as typeof Buffer.allocUnsafe
  }
  t.teardown(() => { Buffer.allocUnsafe = original })

  // The frames are made first (masking them allocates too).
  const big = binary(Buffer.alloc(20_000, 3))
  const fragmented = Buffer.concat([binary(Buffer.alloc(3000, 1), false), continuation(Buffer.alloc(3000, 2))])

  // A large frame across two reads: its buffer is taken at the first.
  refuse(20_000)
  const one = newParser()
  t.doesNotThrow(() => {
    one.parser.write(Buffer.from(big.subarray(0, 5000)))
    one.parser.write(Buffer.from(big.subarray(5000)))
  })
  t.same(describe(one.recorder.events), [{ type: 'error', code: 'WS_ERR_MAX_PAYLOAD', closeCode: 1009 }])

  // A fragmented message: its pieces are joined at the end.
  refuse(2 * 3000)
  const two = newParser()
  t.doesNotThrow(() => two.parser.write(fragmented))
  t.same(describe(two.recorder.events), [{ type: 'error', code: 'WS_ERR_MAX_PAYLOAD', closeCode: 1009 }])

  Buffer.allocUnsafe = original
  t.ok(sameEvents(parseChunks([Buffer.from(big.subarray(0, 5000)), Buffer.from(big.subarray(5000))]), [msg(Buffer.alloc(20_000, 3), true)]), 'with the memory there, the same frame is delivered')
})

t.test('maxPayload counts the whole message over its fragments', async t => {
  const options = { maxPayload: 1000 }
  const ok = Buffer.concat([text(utf8OfLength(600), false), continuation(utf8OfLength(400))])
  expectEvents(t, ok, [msg(Buffer.concat([utf8OfLength(600), utf8OfLength(400)]))], options)
  const over = Buffer.concat([text(utf8OfLength(600), false), continuation(utf8OfLength(401))])
  expectError(t, over, 'WS_ERR_MAX_PAYLOAD', 1009, [], options)
  // The second fragment's header is enough.
  const first = text(utf8OfLength(600), false)
  const { parser, recorder } = newParser(options)
  parser.write(Buffer.concat([first, over.subarray(first.length, first.length + 4)]))
  t.same(describe(recorder.events), [{ type: 'error', code: 'WS_ERR_MAX_PAYLOAD', closeCode: 1009 }])
  // The count starts again with the next message.
  const two = Buffer.concat([binary(Buffer.alloc(800)), binary(Buffer.alloc(800))])
  expectEvents(t, two, [msg(Buffer.alloc(800), true), msg(Buffer.alloc(800), true)], options)
})

t.test('control frames do not count towards maxPayload', async t => {
  const bytes = Buffer.concat([binary(Buffer.alloc(10), false), frame({ opcode: Op.PING, payload: Buffer.alloc(100) }), continuation(Buffer.alloc(10))])
  expectEvents(t, bytes, [{ type: 'ping', data: Buffer.alloc(100) }, msg(Buffer.alloc(20), true)], { maxPayload: 20 })
})

t.test('maxFragments fails with WS_ERR_TOO_MANY_FRAGMENTS / 1009', async t => {
  const options = { maxFragments: 3 }
  const three = Buffer.concat([text('a', false), continuation('b', false), continuation('c')])
  expectEvents(t, Buffer.concat([three, three]), [msg('abc'), msg('abc')], options)
  const four = Buffer.concat([text('a', false), continuation('b', false), continuation('c', false), continuation('d')])
  expectError(t, four, 'WS_ERR_TOO_MANY_FRAGMENTS', 1009, [], options)
  // Control frames in between are not fragments.
  const withPings = Buffer.concat([text('a', false), frame({ opcode: Op.PING }), continuation('b', false), frame({ opcode: Op.PING }), continuation('c')])
  expectEvents(t, withPings, [{ type: 'ping', data: Buffer.alloc(0) }, { type: 'ping', data: Buffer.alloc(0) }, msg('abc')], options)
  // Fails on the header of the fourth frame, before its payload.
  const { parser, recorder } = newParser(options)
  const fourthAt = four.length - continuation('d').length
  parser.write(Buffer.from(four.subarray(0, fourthAt + 2)))
  t.same(describe(recorder.events), [{ type: 'error', code: 'WS_ERR_TOO_MANY_FRAGMENTS', closeCode: 1009 }])
  // One frame is one fragment: maxFragments 1 forbids fragmentation.
  expectEvents(t, text('whole'), [msg('whole')], { maxFragments: 1 })
  expectError(t, Buffer.concat([text('a', false), continuation('b')]), 'WS_ERR_TOO_MANY_FRAGMENTS', 1009, [], { maxFragments: 1 })
})

// ---------------------------------------------------------------- stopping

t.test('input after a protocol error is ignored', async t => {
  const { parser, recorder } = newParser()
  parser.write(Buffer.concat([text('ok'), frame({ opcode: 5 }), text('late')]))
  t.ok(parser.stopped)
  parser.write(text('later'))
  parser.write(close(1000))
  t.same(describe(recorder.events), [{ type: 'message', binary: false, length: 2, data: Buffer.from('ok').toString('hex') }, { type: 'error', code: 'WS_ERR_INVALID_OPCODE', closeCode: 1002 }])
})

t.test('stop() drops buffered input and ignores what follows', async t => {
  const { parser, recorder } = newParser()
  const bytes = text('hello')
  parser.write(Buffer.from(bytes.subarray(0, 5)))
  parser.stop()
  t.ok(parser.stopped)
  parser.write(Buffer.from(bytes.subarray(5)))
  parser.write(text('again'))
  t.same(recorder.events, [])
})

t.test('a handler may stop the parser from inside a callback', async t => {
  const events: string[] = []
  const parser: FrameParser = new FrameParser({
    onMessage (data) { events.push(data.toString()); parser.stop() },
    onPing () { events.push('ping') },
    onPong () { events.push('pong') },
    onClose () { events.push('close') },
    onProtocolError () { events.push('error') },
  }, DEFAULTS)
  parser.write(Buffer.concat([text('first'), text('second'), frame({ opcode: Op.PING }), close(1000)]))
  t.same(events, ['first'])
})

// ------------------------------------------------------ closePayload sanity

t.test('the test helper builds the frames RFC 6455 shows (§5.7)', async t => {
  // "A single-frame masked text message: 0x81 0x85 0x37 0xfa 0x21 0x3d 0x7f 0x9f 0x4d 0x51 0x58 (contains "Hello")"
  t.same([...text('Hello')], [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58])
  t.same([...closePayload(1000, 'a')], [0x03, 0xe8, 0x61])
  expectEvents(t, Buffer.from([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]), [msg('Hello')])
})

t.test('large frames that span reads are assembled in place, also inside fragmented messages', async t => {
  const big = randomBytes(prng(7), 20000)
  const bigText = utf8OfLength(40000)
  const cases: Array<[string, Buffer, Event[]]> = [
    ['one 20000-byte binary frame', binary(big), [msg(big, true)]],
    ['one 40000-byte text frame', text(bigText), [msg(bigText, false)]],
    ['a large frame between small fragments, a ping in between', Buffer.concat([
      binary(big.subarray(0, 10), false), frame({ opcode: 0x9, payload: 'p' }), continuation(big.subarray(10, 19990), false), continuation(big.subarray(19990)),
    ]), [{ type: 'ping', data: Buffer.from('p') }, msg(big, true)]],
    ['two large fragments', Buffer.concat([text(bigText.subarray(0, 17000), false), continuation(bigText.subarray(17000))]), [msg(bigText, false)]],
  ]
  for (const [name, bytes, expected] of cases) {
    for (const size of [1, 7, 1000, 4096, 16383, 16384, 65536]) {
      const chunks: Buffer[] = []
      for (let at = 0; at < bytes.length; at += size) chunks.push(Buffer.from(bytes.subarray(at, at + size)))
      t.ok(sameEvents(parseChunks(chunks), expected), `${name}, in reads of ${size} bytes`)
    }
  }
})

t.test('invalid UTF-8 fails at the bad byte inside an assembled frame', async t => {
  const payload = utf8OfLength(30000)
  payload[25000] = 0xff
  const bytes = text(payload)
  const { parser, recorder } = newParser()
  const copy = Buffer.from(bytes)
  parser.write(copy.subarray(0, 10 + 24000))
  t.same(recorder.events, [], 'valid so far')
  parser.write(copy.subarray(10 + 24000, 10 + 25001))
  t.same(describe(recorder.events), [{ type: 'error', code: 'WS_ERR_INVALID_UTF8', closeCode: 1007 }], 'fails with the bad byte, 5000 bytes before the frame ends')
})

// ------------------------------------------------------------ pause / resume

t.test('pause() inside a handler stops after that message; resume() goes on in order', async t => {
  const events: string[] = []
  const parser: FrameParser = new FrameParser({
    onMessage (data) { events.push(`message ${data.toString()}`); parser.pause() },
    onPing (data) { events.push(`ping ${data.toString()}`) },
    onPong () { events.push('pong') },
    onClose (code) { events.push(`close ${code}`) },
    onProtocolError (e) { events.push(`error ${e.code}`) },
  }, DEFAULTS)
  const bytes = Buffer.concat([text('one'), frame({ opcode: Op.PING, payload: 'p' }), text('two', false), continuation('!'), close(1000), text('after')])
  parser.write(bytes)
  t.same(events, ['message one'], 'nothing after the first message')
  t.equal(parser.pending, bytes.length - text('one').length, 'the rest is kept')
  parser.write(text('more input while paused'))
  t.same(events, ['message one'], 'input while paused is only kept')
  parser.resume()
  t.same(events, ['message one', 'ping p', 'message two!'], 'the next message, and the ping before it')
  parser.resume()
  t.same(events, ['message one', 'ping p', 'message two!', 'close 1000'], 'then the close; nothing after it')
  t.ok(parser.stopped)
  t.equal(parser.pending, 0)
})

t.test('pause() before input: nothing is parsed until resume()', async t => {
  const { parser, recorder } = newParser()
  parser.pause()
  parser.write(text('a'))
  parser.write(binary(Buffer.from([1])))
  t.same(recorder.events, [])
  t.equal(parser.pending, text('a').length + binary(Buffer.from([1])).length)
  parser.resume()
  t.same(describe(recorder.events), describe([msg('a'), msg(Buffer.from([1]), true)]))
  parser.resume() // not paused: a no-op
  t.equal(recorder.events.length, 2)
})

t.test('pausing on every message, whatever the cuts, gives the same messages', async t => {
  const bytes = Buffer.concat([text('x'), frame({ opcode: Op.PING }), binary(Buffer.alloc(300, 1)), text('y', false), continuation('z'), close(1001)])
  const expected = ['m:x', 'ping', 'm:' + Buffer.alloc(300, 1).toString(), 'm:yz', 'close:1001']
  const run = (chunks: Buffer[]): string[] => {
    const events: string[] = []
    const parser: FrameParser = new FrameParser({
      onMessage (data) { events.push(`m:${data.toString()}`); parser.pause() },
      onPing () { events.push('ping') },
      onPong () { events.push('pong') },
      onClose (code) { events.push(`close:${code}`) },
      onProtocolError (e) { events.push(`error:${e.code}`) },
    }, DEFAULTS)
    for (const chunk of chunks) {
      parser.write(chunk)
      // The owner resumes as soon as its handler is done.
      for (let i = 0; i < 10; i++) parser.resume()
    }
    return events
  }
  const wrong: number[] = []
  for (let i = 1; i < bytes.length; i++) {
    const copy = Buffer.from(bytes)
    if (run([copy.subarray(0, i), copy.subarray(i)]).join('|') !== expected.join('|')) wrong.push(i)
  }
  t.same(wrong, [], `all ${bytes.length - 1} cuts`)
})

t.test('resume() from inside the handler that paused delivers each message once, in order', async t => {
  const events: string[] = []
  const parser: FrameParser = new FrameParser({
    onMessage (data) {
      events.push(data.toString())
      parser.pause()
      parser.resume()
    },
    onPing () { events.push('ping') },
    onPong () {},
    onClose () { events.push('close') },
    onProtocolError (e) { events.push(e.code) },
  }, DEFAULTS)
  parser.write(Buffer.concat([text('1'), text('2'), frame({ opcode: Op.PING }), text('3'), close(1000), text('4')]))
  t.same(events, ['1', '2', 'ping', '3', 'close'])
})

t.test('stop() while paused: resume() parses nothing', async t => {
  const { parser, recorder } = newParser()
  parser.pause()
  parser.write(text('kept'))
  parser.stop()
  parser.resume()
  t.same(recorder.events, [])
  t.equal(parser.pending, 0)
})

t.test('once a frame is read, the parser holds no reference to the chunks it came in', async t => {
  // A connection that goes idle after a large message must not keep that
  // message's first socket chunk alive through the header view.
  const { parser } = newParser()
  const bytes = binary(Buffer.alloc(70000, 7))
  // The header and the first payload bytes in one chunk, the rest in another.
  parser.write(bytes.subarray(0, 100))
  parser.write(bytes.subarray(100))
  const internals = parser as unknown as { view: Buffer, chunks: Buffer[] }
  t.equal(internals.view.length, 0, 'the header view is released')
  t.equal(internals.chunks.length, 0, 'no input is kept')
  // A header split across chunks goes through the shared scratch, also released.
  const small = text('hi')
  parser.write(small.subarray(0, 1))
  parser.write(small.subarray(1))
  t.equal(internals.view.length, 0, 'released after a split header too')
})

// ------------------------------------------------------------ lent messages

t.test('with lendText and lendBinary, every cut still gives the same messages', async t => {
  const random = prng(41)
  const lending = { lendText: true, lendBinary: true }
  // The read-spanning assembly (≥ 16 KiB), the whole-frame copy out of a
  // reused read buffer into class memory (≥ 4 KiB), a message just under
  // that (a small loan), and a fragmented one, which is never lent.
  const large = randomBytes(random, 20_000)
  expectEvents(t, binary(large), [{ type: 'message', data: large, binary: true }], lending)
  const words = utf8OfLength(17_000)
  expectEvents(t, text(words), [{ type: 'message', data: words, binary: false }], lending)
  const medium = randomBytes(random, 5000)
  expectEvents(t, Buffer.concat([binary(medium), binary(medium.subarray(0, 4095))]), [
    { type: 'message', data: medium, binary: true },
    { type: 'message', data: medium.subarray(0, 4095), binary: true },
  ], lending)
  expectEvents(t, Buffer.concat([binary(large.subarray(0, 9000), false), continuation(large.subarray(9000))]), [{ type: 'message', data: large, binary: true }], lending)
})

/** Records each message with whether it was lent and its memory, then gives it back at once, as a route does. */
class GivingBack implements FrameHandler {
  readonly messages: Array<{ data: Buffer, binary: boolean, lent: boolean, memory: ArrayBufferLike, view: Buffer }> = []
  readonly errors: string[] = []
  onMessage (data: Buffer, isBinary: boolean, lent: boolean): void {
    this.messages.push({ data: Buffer.from(data), binary: isBinary, lent, memory: data.buffer, view: data })
    if (lent) giveBack(data)
  }

  onPing (): void {}
  onPong (): void {}
  onClose (): void {}
  onProtocolError (error: WebSocketError): void { this.errors.push(error.code) }
}

/** Writes `bytes` cut at `at`, each piece through the shared read buffer when `volatile` (direct reads). */
function feedCut (parser: FrameParser, bytes: Buffer, at: number, volatile: boolean): void {
  for (const piece of [bytes.subarray(0, at), bytes.subarray(at)]) {
    const chunk = Buffer.from(piece)
    parser.write(chunk, volatile)
    if (volatile) chunk.fill(0xee)
  }
}

t.test('lent messages: which are lent, and memory given back carries the next message', async t => {
  const random = prng(42)
  const first = randomBytes(random, 20_000)
  const second = randomBytes(random, 30_000)
  for (const volatile of [false, true]) {
    const handler = new GivingBack()
    const parser = new FrameParser(handler, { ...DEFAULTS, lendBinary: true })
    feedCut(parser, binary(first), 9000, volatile)
    feedCut(parser, binary(second), 12_000, volatile)
    t.same(handler.messages.map(m => m.lent), [true, true], `volatile ${volatile}: read-spanning binary frames are lent`)
    t.ok(handler.messages[0].data.equals(first) && handler.messages[1].data.equals(second), 'with the right bytes')
    t.equal(handler.messages[1].memory, handler.messages[0].memory, 'the second message reuses the memory the first gave back')
  }

  const inOneRead = new GivingBack()
  const parser = new FrameParser(inOneRead, { ...DEFAULTS, lendBinary: true })
  const medium = randomBytes(random, 6000)
  parser.write(Buffer.from(binary(medium)), true)
  parser.write(Buffer.from(binary(medium)), false)
  t.same(inOneRead.messages.map(m => m.lent), [true, false], 'a whole frame in one read buffer is lent; a view of a chunk of its own needs no memory of ours')
  t.ok(inOneRead.messages.every(m => m.data.equals(medium)))

  const kinds = new GivingBack()
  const onlyText = new FrameParser(kinds, { ...DEFAULTS, lendText: true })
  const words = utf8OfLength(20_000)
  feedCut(onlyText, text(words), 5000, true)
  feedCut(onlyText, binary(first), 5000, true)
  feedCut(onlyText, Buffer.concat([text(words.subarray(0, 10_000), false), continuation(words.subarray(10_000))]), 12_000, true)
  t.same(kinds.messages.map(m => [m.binary, m.lent]), [[false, true], [true, false], [false, false]], 'lendText lends whole text messages only: not binary ones, not fragmented ones')

  const none = new GivingBack()
  feedCut(new FrameParser(none, DEFAULTS), binary(first), 9000, true)
  t.same(none.messages.map(m => m.lent), [false], 'by default nothing is lent')
})

t.test('small whole messages out of the read buffer are lent, and the next of a length gets the Buffer given back', async t => {
  const random = prng(43)
  const handler = new GivingBack()
  const parser = new FrameParser(handler, { ...DEFAULTS, lendBinary: true, lendText: true })
  const first = randomBytes(random, 1000)
  const second = randomBytes(random, 1000)
  const words = utf8OfLength(1000)
  for (const frame of [binary(first), binary(second), text(words)]) {
    const chunk = Buffer.from(frame)
    parser.write(chunk, true)
    chunk.fill(0xee)
  }
  t.same(handler.messages.map(m => m.lent), [true, true, true], 'each one lent')
  t.ok(handler.messages[0].data.equals(first) && handler.messages[1].data.equals(second) && handler.messages[2].data.equals(words), 'with its own bytes')
  t.equal(handler.messages[1].view, handler.messages[0].view, 'the second message came in the Buffer the first gave back')
  t.equal(handler.messages[2].view, handler.messages[0].view, 'so did the text message of that length')

  const kept = new GivingBack()
  const own = new FrameParser(kept, { ...DEFAULTS, lendBinary: true })
  own.write(Buffer.from(binary(first)), false)
  feedCut(own, Buffer.concat([binary(first.subarray(0, 400), false), continuation(first.subarray(400))]), 300, true)
  t.same(kept.messages.map(m => m.lent), [false, false], 'not a view of a chunk of its own, nor a fragmented message')
  t.ok(kept.messages.every(m => m.data.equals(first)))
})

t.test('a lent message cut short goes back to the pool', async t => {
  // The memory on top of a class's free list is the next one lent: a loan
  // given back puts it there again, and the loan after that finds it.
  const topOfClass = (size: number): ArrayBufferLike => {
    const probe = lend(size)
    giveBack(probe)
    return probe.buffer
  }
  const handler = new GivingBack()
  const parser = new FrameParser(handler, { ...DEFAULTS, lendBinary: true, lendText: true })
  const bytes = binary(Buffer.alloc(100_000, 1))
  const memory = topOfClass(100_000)
  parser.write(Buffer.from(bytes.subarray(0, 50_000)), true)
  const before = pooledBytes()
  parser.stop()
  t.equal(pooledBytes(), before + 128 * 1024, 'stop() gives back the half-read frame\'s memory')
  t.equal(topOfClass(100_000), memory, 'the very memory it was lent')

  // Invalid UTF-8 in a whole text frame lent out of the read buffer: the
  // connection fails, and the memory is not lost to the pool either.
  const bad = Buffer.alloc(5000, 0x61)
  bad[4000] = 0xff
  const failing = new GivingBack()
  const textParser = new FrameParser(failing, { ...DEFAULTS, lendText: true })
  const badMemory = topOfClass(5000)
  const beforeBad = pooledBytes()
  textParser.write(Buffer.from(text(bad)), true)
  t.same(failing.errors, ['WS_ERR_INVALID_UTF8'])
  t.equal(failing.messages.length, 0)
  t.equal(pooledBytes(), beforeBad, 'the memory it was lent is back in the pool')
  t.equal(topOfClass(5000), badMemory, 'on top of its class')
})

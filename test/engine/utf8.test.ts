/**
 * The incremental UTF-8 validator, checked against Node's own `isUtf8` on
 * edge cases and many seeded random sequences, fed whole, cut at every
 * point and one byte at a time.
 */
import { isUtf8 } from 'node:buffer'
import t from 'tap'
import { UTF8_ACCEPT, UTF8_REJECT, Utf8Validator, isValidUtf8, validateUtf8Chunk } from '../../lib/engine/utf8.js'
import { prng } from '../helpers/random.js'

const hex = (data: Uint8Array): string => Buffer.from(data).toString('hex')

/** Feeds `chunks` (the last with `last`), stopping at the first false as the parser does. */
function validate (chunks: Uint8Array[]): boolean {
  const v = new Utf8Validator()
  for (let i = 0; i < chunks.length; i++) {
    if (!v.write(chunks[i], i === chunks.length - 1)) return false
  }
  return true
}

/**
 * The reference for "fail at the first invalid byte": a prefix can still
 * become valid UTF-8 if it is valid, or if adding up to three continuation
 * bytes makes it valid. 0x80, 0x90 and 0xa0 stand for every continuation
 * byte: the second-byte limits after e0, ed, f0 and f4 change only at
 * 0x90 and 0xa0.
 */
function viablePrefix (prefix: Buffer, depth = 3): boolean {
  if (isUtf8(prefix)) return true
  if (depth === 0) return false
  for (const c of [0x80, 0x90, 0xa0]) {
    if (viablePrefix(Buffer.concat([prefix, Buffer.from([c])]), depth - 1)) return true
  }
  return false
}

/** Index of the first byte after which `data` can no longer be valid, or -1. */
function firstInvalidByte (data: Buffer): number {
  for (let i = 0; i < data.length; i++) {
    if (!viablePrefix(data.subarray(0, i + 1))) return i
  }
  return -1
}

/** Index of the byte whose write returned false when fed one byte at a time (not last), or -1. */
function validatorFailsAt (data: Uint8Array): number {
  const v = new Utf8Validator()
  for (let i = 0; i < data.length; i++) {
    if (!v.write(data.subarray(i, i + 1), false)) return i
  }
  return -1
}

interface Disagreement { data: string, how: string, got: boolean | number, wanted: boolean | number }

/** Every check of one sequence; returns what disagreed with the reference. */
function checkSequence (data: Buffer): Disagreement[] {
  const out: Disagreement[] = []
  const wanted = isUtf8(data)
  const report = (how: string, got: boolean | number, want: boolean | number = wanted): void => {
    if (got !== want) out.push({ data: hex(data), how, got, wanted: want })
  }
  report('isValidUtf8', isValidUtf8(data))
  report('whole', validate([data]))
  for (let i = 0; i <= data.length; i++) report(`split at ${i}`, validate([data.subarray(0, i), data.subarray(i)]))
  const bytes: Buffer[] = []
  for (let i = 0; i < data.length; i++) bytes.push(data.subarray(i, i + 1))
  report('byte by byte', validate(bytes))
  report('byte by byte, then an empty last write', validate([...bytes, Buffer.alloc(0)]))
  report('first invalid byte', validatorFailsAt(data), firstInvalidByte(data))
  return out
}

const EDGE_CASES: Array<[string, number[], boolean]> = [
  ['empty', [], true],
  ['ASCII', [0x00, 0x41, 0x7f], true],
  ['smallest 2-byte (U+0080)', [0xc2, 0x80], true],
  ['largest 2-byte (U+07FF)', [0xdf, 0xbf], true],
  ['smallest 3-byte (U+0800)', [0xe0, 0xa0, 0x80], true],
  ['U+D7FF, just below the surrogates', [0xed, 0x9f, 0xbf], true],
  ['U+E000, just above the surrogates', [0xee, 0x80, 0x80], true],
  ['U+FFFF', [0xef, 0xbf, 0xbf], true],
  ['U+FEFF (BOM) is a character like any other', [0xef, 0xbb, 0xbf], true],
  ['smallest 4-byte (U+10000)', [0xf0, 0x90, 0x80, 0x80], true],
  ['U+10FFFF, the last code point', [0xf4, 0x8f, 0xbf, 0xbf], true],
  ['overlong NUL, 2 bytes', [0xc0, 0x80], false],
  ['overlong 2 bytes, c1 bf', [0xc1, 0xbf], false],
  ['overlong 3 bytes, e0 80 80', [0xe0, 0x80, 0x80], false],
  ['overlong 3 bytes, e0 9f bf', [0xe0, 0x9f, 0xbf], false],
  ['overlong 4 bytes, f0 80 80 80', [0xf0, 0x80, 0x80, 0x80], false],
  ['overlong 4 bytes, f0 8f bf bf', [0xf0, 0x8f, 0xbf, 0xbf], false],
  ['high surrogate U+D800, ed a0 80', [0xed, 0xa0, 0x80], false],
  ['low surrogate U+DFFF, ed bf bf', [0xed, 0xbf, 0xbf], false],
  ['surrogate pair as CESU-8', [0xed, 0xa0, 0xbd, 0xed, 0xb2, 0x8a], false],
  ['U+110000, f4 90 80 80', [0xf4, 0x90, 0x80, 0x80], false],
  ['f5 lead byte', [0xf5, 0x80, 0x80, 0x80], false],
  ['f8 (old 5-byte form)', [0xf8, 0x88, 0x80, 0x80, 0x80], false],
  ['fc (old 6-byte form)', [0xfc, 0x84, 0x80, 0x80, 0x80, 0x80], false],
  ['fe', [0xfe], false],
  ['ff', [0xff], false],
  ['lone continuation byte', [0x80], false],
  ['continuation after ASCII', [0x61, 0xbf], false],
  ['truncated 2-byte', [0xc3], false],
  ['truncated 3-byte', [0xe2, 0x82], false],
  ['truncated 4-byte', [0xf0, 0x9f, 0x98], false],
  ['truncated sequence followed by ASCII', [0xe2, 0x82, 0x41], false],
  ['two lead bytes', [0xc3, 0xc3, 0xa9], false],
  ['too many continuation bytes', [0xc3, 0xa9, 0xa9], false],
]

t.test('edge cases agree with isUtf8 however they are cut', async t => {
  for (const [name, bytes, valid] of EDGE_CASES) {
    const data = Buffer.from(bytes)
    t.equal(isUtf8(data), valid, `${name}: the reference says ${valid ? 'valid' : 'invalid'}`)
    t.same(checkSequence(data), [], name)
    // The same inside a longer text, where the native fast path runs first.
    const long = Buffer.concat([Buffer.from('Größe: 10 € — '), data, Buffer.from(' and some more text after it')])
    t.same(checkSequence(long), [], `${name}, inside ${long.length} bytes of text`)
  }
})

t.test('seeded random sequences agree with isUtf8', async t => {
  const random = prng(20240601)
  const pieces = [
    [0x41], [0x7f], [0xc3, 0xa9], [0xe2, 0x82, 0xac], [0xf0, 0x9f, 0x98, 0x80], [0xf4, 0x8f, 0xbf, 0xbf], [0xed, 0x9f, 0xbf],
  ]
  // Bytes that sit at a boundary of some rule, to be mixed in one by one.
  const odd = [0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff]
  let valid = 0
  let invalid = 0
  const disagreements: Disagreement[] = []
  for (let n = 0; n < 3000; n++) {
    const parts: number[] = []
    const length = Math.floor(random() * 24)
    while (parts.length < length) {
      const r = random()
      if (r < 0.75) parts.push(...pieces[Math.floor(random() * pieces.length)])
      else if (r < 0.9) parts.push(odd[Math.floor(random() * odd.length)])
      else parts.push(Math.floor(random() * 256))
    }
    const data = Buffer.from(parts)
    if (isUtf8(data)) valid++
    else invalid++
    disagreements.push(...checkSequence(data))
    if (disagreements.length > 5) break
  }
  t.same(disagreements, [])
  t.ok(valid > 300 && invalid > 300, `both kinds were tried (${valid} valid, ${invalid} invalid)`)
})

t.test('every 1- to 4-byte sequence starting with a lead byte', async t => {
  // All lead bytes c0-ff followed by every second byte 00-ff, then two fixed
  // continuation bytes: each second-byte range limit is crossed.
  const disagreements: Array<{ data: string, got: boolean, wanted: boolean }> = []
  for (let lead = 0x80; lead <= 0xff; lead++) {
    for (let second = 0; second <= 0xff; second++) {
      for (const tail of [[], [0x80], [0x80, 0xbf]]) {
        const data = Buffer.from([lead, second, ...tail])
        const wanted = isUtf8(data)
        const got = validate([data])
        const gotSplit = validate([data.subarray(0, 1), data.subarray(1)])
        if (got !== wanted || gotSplit !== wanted || isValidUtf8(data) !== wanted) disagreements.push({ data: hex(data), got, wanted })
      }
    }
  }
  t.same(disagreements.slice(0, 5), [])
})

t.test('long random valid text cut at every point', async t => {
  const random = prng(7)
  const chars = ['a', 'é', '€', '😀', 'ß', '中', '\u0000', '\u07ff', '\uffff', '\u{10ffff}']
  let s = ''
  while (Buffer.byteLength(s) < 400) s += chars[Math.floor(random() * chars.length)]
  const data = Buffer.from(s)
  t.same(checkSequence(data), [])
  // One byte changed, at a few places.
  for (const at of [0, 1, 17, 200, data.length - 1]) {
    const broken = Buffer.from(data)
    broken[at] = 0xff
    t.same(checkSequence(broken), [], `0xff at ${at}`)
  }
})

t.test('fails at the first invalid byte', async t => {
  const v = new Utf8Validator()
  t.ok(v.write(Buffer.from('abc'), false))
  t.ok(v.write(Buffer.from([0xe2]), false), 'a lead byte may still be completed')
  t.ok(v.write(Buffer.from([0x82]), false))
  t.notOk(v.write(Buffer.from([0x41]), false), 'ASCII inside a 3-byte sequence fails at once, without last')

  // Inside a long chunk (the native path is tried first and falls back).
  const long = Buffer.alloc(1000, 0x61)
  long[500] = 0xc0
  t.notOk(new Utf8Validator().write(long, false), 'an invalid byte in the middle of a long chunk fails without last')

  // An invalid second byte: e0 9f is an overlong start, ed a0 a surrogate, f4 90 above U+10FFFF.
  for (const bytes of [[0xe0, 0x9f], [0xed, 0xa0], [0xf4, 0x90], [0xf0, 0x8f]]) {
    const w = new Utf8Validator()
    t.ok(w.write(Buffer.from(bytes.slice(0, 1)), false), `${hex(Buffer.from(bytes))}: the lead byte alone is fine`)
    t.notOk(w.write(Buffer.from(bytes.slice(1)), false), `${hex(Buffer.from(bytes))}: the second byte fails`)
  }
})

t.test('last: an unfinished character is invalid only at the end of the stream', async t => {
  const euro = Buffer.from('€')
  const v = new Utf8Validator()
  t.ok(v.write(euro.subarray(0, 2), false), 'unfinished, not last: fine')
  t.notOk(v.complete, 'not on a character boundary')
  t.notOk(new Utf8Validator().write(euro.subarray(0, 2), true), 'unfinished and last: invalid')
  t.ok(v.write(euro.subarray(2), true), 'finished by the last write')
  t.ok(v.complete)

  const w = new Utf8Validator()
  t.ok(w.write(euro.subarray(0, 1), false))
  t.notOk(w.write(Buffer.alloc(0), true), 'an empty last write after an unfinished character fails')
  t.ok(new Utf8Validator().write(Buffer.alloc(0), true), 'an empty stream is valid')
  t.ok(new Utf8Validator().write(Buffer.alloc(0), false))

  // Long chunks ending inside a character take the fallback path.
  const long = Buffer.concat([Buffer.alloc(100, 0x61), euro.subarray(0, 2)])
  t.ok(new Utf8Validator().write(long, false), 'long chunk ending inside a character, not last')
  t.notOk(new Utf8Validator().write(long, true), 'long chunk ending inside a character, last')
})

t.test('reset() starts a new stream', async t => {
  const v = new Utf8Validator()
  t.ok(v.write(Buffer.from([0xf0, 0x9f]), false))
  v.reset()
  t.ok(v.complete)
  t.ok(v.write(Buffer.from('plain'), true), 'the unfinished character is forgotten')
  // And after a rejection.
  t.notOk(v.write(Buffer.from([0xff]), false))
  v.reset()
  t.ok(v.write(Buffer.from('again'), true))
})

t.test('validateUtf8Chunk: the state as a number, as the parser keeps it', async t => {
  const euro = Buffer.from('€')
  t.equal(validateUtf8Chunk(UTF8_ACCEPT, Buffer.from('plain')), UTF8_ACCEPT, 'whole characters end in ACCEPT')
  const inside = validateUtf8Chunk(UTF8_ACCEPT, euro.subarray(0, 2))
  t.not(inside, UTF8_ACCEPT, 'inside a character: neither ACCEPT…')
  t.not(inside, UTF8_REJECT, '…nor REJECT')
  t.equal(validateUtf8Chunk(inside, euro.subarray(2)), UTF8_ACCEPT, 'the state carries the character across chunks')
  t.equal(validateUtf8Chunk(inside, Buffer.from('a long ASCII run of more than sixteen bytes')), UTF8_REJECT, 'an unfinished character followed by ASCII')
  t.equal(validateUtf8Chunk(UTF8_ACCEPT, Buffer.from([0xc0, 0x80])), UTF8_REJECT, 'an overlong form')
  t.equal(validateUtf8Chunk(UTF8_REJECT, Buffer.from('ok')), UTF8_REJECT, 'nothing leaves REJECT')
  t.equal(validateUtf8Chunk(UTF8_REJECT, Buffer.alloc(0)), UTF8_REJECT, 'not even nothing')
})

t.test('isValidUtf8 on whole buffers, short and long', async t => {
  t.ok(isValidUtf8(Buffer.alloc(0)))
  t.ok(isValidUtf8(Buffer.from('héllo')))
  t.notOk(isValidUtf8(Buffer.from([0x68, 0xc3])))
  t.ok(isValidUtf8(Buffer.from('a longer string with ünïcödé and 😀 in it')))
  t.notOk(isValidUtf8(Buffer.concat([Buffer.from('a longer string with ünïcödé'), Buffer.from([0xed, 0xa0, 0x80])])))
  // Works on plain Uint8Arrays and unaligned views too.
  const backing = new Uint8Array([0x00, 0xe2, 0x82, 0xac, 0x00])
  t.ok(isValidUtf8(backing.subarray(1, 4)))
  t.notOk(isValidUtf8(backing.subarray(1, 3)))
})

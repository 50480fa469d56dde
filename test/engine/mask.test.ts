/**
 * applyMask against the definition in RFC 6455 §5.3 ("Octet i of the
 * transformed data is the XOR of octet i of the original data with octet at
 * index i modulo 4 of the masking key"), written as a plain byte loop.
 */
import t from 'tap'
import { applyMask, applyMaskWord, copyMasked, maskWord, maskingReadBuffer, simdMasking } from '../../lib/engine/mask.js'
import { prng, randomBytes } from '../helpers/random.js'

function naiveMask (data: Uint8Array, mask: Uint8Array, offset: number): Uint8Array {
  const out = new Uint8Array(data.length)
  for (let i = 0; i < data.length; i++) out[i] = data[i] ^ mask[(offset + i) % 4]
  return out
}

const equal = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)

t.test('equals the byte loop for lengths 0-200, offsets 0-3, at every alignment', async t => {
  const random = prng(99)
  const GUARD = 8
  for (let byteOffset = 0; byteOffset < 8; byteOffset++) {
    const failures: string[] = []
    let checked = 0
    for (let length = 0; length <= 200; length++) {
      for (let offset = 0; offset < 4; offset++) {
        const mask = randomBytes(random, 4)
        // A fresh backing store, so the view starts exactly `byteOffset` bytes into it.
        const backing = new Uint8Array(new ArrayBuffer(byteOffset + length + GUARD))
        for (let i = 0; i < backing.length; i++) backing[i] = Math.floor(random() * 256)
        const before = backing.slice()
        const data = backing.subarray(byteOffset, byteOffset + length)
        const wanted = naiveMask(data, mask, offset)
        applyMask(data, mask, offset)
        checked++
        if (!equal(data, wanted)) failures.push(`length ${length}, offset ${offset}`)
        const outside = [...before.subarray(0, byteOffset), ...before.subarray(byteOffset + length)]
        const outsideAfter = [...backing.subarray(0, byteOffset), ...backing.subarray(byteOffset + length)]
        if (outside.join() !== outsideAfter.join()) failures.push(`length ${length}, offset ${offset}: bytes outside the view changed`)
      }
    }
    t.same(failures.slice(0, 5), [], `byteOffset ${byteOffset}: ${checked} cases`)
  }
})

t.test('the WebAssembly SIMD module compiles on this Node (else the SIMD tests below only test the word loop)', async t => {
  t.equal(simdMasking, true)
})

t.test('the SIMD path: lengths around its threshold and across its 256 KiB window', async t => {
  const random = prng(4)
  const lengths = [240, 255, 256, 257, 259, 271, 272, 273, 319, 320, 321, 496, 511, 512, 513, 515, 527, 528, 529, 1023, 1024, 1031, 65536 + 3, 4 * 65536 - 1, 4 * 65536, 4 * 65536 + 1, 4 * 65536 + 17, 600000 + 5]
  for (const length of lengths) {
    const failures: string[] = []
    for (let offset = 0; offset < 4; offset++) {
      for (const byteOffset of [0, 1, 2, 3, 5]) {
        const mask = randomBytes(random, 4)
        const backing = randomBytes(random, byteOffset + length + 4)
        const before = Buffer.from(backing)
        const data = backing.subarray(byteOffset, byteOffset + length)
        const wanted = naiveMask(data, mask, offset)
        applyMask(data, mask, offset)
        if (!equal(data, wanted)) failures.push(`offset ${offset}, byteOffset ${byteOffset}`)
        if (!backing.subarray(0, byteOffset).equals(before.subarray(0, byteOffset)) || !backing.subarray(byteOffset + length).equals(before.subarray(byteOffset + length))) {
          failures.push(`offset ${offset}, byteOffset ${byteOffset}: bytes outside the view changed`)
        }
      }
    }
    t.same(failures, [], `length ${length}`)
  }
})

t.test('works on Buffers from the shared pool (arbitrary byteOffset) and large inputs', async t => {
  const random = prng(5)
  for (const length of [31, 32, 33, 1000, 4096, 65537]) {
    const source = randomBytes(random, length + 3)
    for (let start = 0; start < 3; start++) {
      // A view `start` bytes into a (possibly pooled) Buffer: unaligned for start 1 and 2.
      const data = Buffer.from(source).subarray(start, start + length)
      const mask = randomBytes(random, 4)
      const offset = Math.floor(random() * 4)
      const wanted = naiveMask(data, mask, offset)
      applyMask(data, mask, offset)
      t.ok(equal(data, wanted), `length ${length}, start ${start}, byteOffset ${data.byteOffset % 4}, offset ${offset}`)
    }
  }
})

t.test('masking twice restores the data', async t => {
  const random = prng(6)
  for (const length of [0, 1, 3, 4, 5, 31, 32, 33, 127, 1024, 10007]) {
    const original = randomBytes(random, length)
    const data = Buffer.from(original)
    const mask = randomBytes(random, 4)
    applyMask(data, mask, 2)
    if (length >= 8) t.notOk(data.equals(original), `length ${length}: masked differs`)
    applyMask(data, mask, 2)
    t.ok(data.equals(original), `length ${length}: restored`)
  }
})

t.test('masking in pieces with running offsets equals masking at once', async t => {
  const random = prng(8)
  // Pieces below and above the SIMD threshold, at every key rotation.
  const original = randomBytes(random, 5000)
  const mask = randomBytes(random, 4)
  const whole = Buffer.from(original)
  applyMask(whole, mask, 0)
  for (const cuts of [[1, 2, 3, 100, 250, 499], [33, 66, 99], [4, 8, 12, 64], [7, 200], [513, 1026, 1539, 4001], [1, 1000, 1001, 3333]]) {
    const pieces = Buffer.from(original)
    let at = 0
    for (const cut of [...cuts, 5000]) {
      applyMask(pieces.subarray(at, cut), mask, at)
      at = cut
    }
    t.ok(pieces.equals(whole), `cut at ${cuts.join(', ')}`)
  }
})

t.test('the RFC 6455 §5.7 example: "Hello" with key 37 fa 21 3d', async t => {
  const data = Buffer.from('Hello')
  applyMask(data, Buffer.from([0x37, 0xfa, 0x21, 0x3d]), 0)
  t.same([...data], [0x7f, 0x9f, 0x4d, 0x51, 0x58])
})

t.test('maskWord holds octet 0 of the key in the low byte; applyMaskWord with it equals applyMask', async t => {
  const mask = Buffer.from([0x37, 0xfa, 0x21, 0x3d])
  t.equal(maskWord(mask), 0x3d21fa37 | 0)
  t.equal(maskWord(Buffer.from([0xff, 0xff, 0xff, 0xff])), -1, 'a signed 32-bit integer, as readInt32LE gives it')
  const random = prng(31)
  for (const length of [0, 1, 5, 127, 128, 129, 255, 256, 257, 4099]) {
    for (let offset = 0; offset < 4; offset++) {
      const key = randomBytes(random, 4)
      const data = randomBytes(random, length)
      const other = Buffer.from(data)
      applyMask(data, key, offset)
      applyMaskWord(other, key.readInt32LE(0), offset)
      t.ok(data.equals(other), `length ${length}, offset ${offset}`)
    }
  }
})

t.test('a zero key leaves the data as it is', async t => {
  const data = randomBytes(prng(9), 100)
  const copy = Buffer.from(data)
  applyMask(data, Buffer.alloc(4), 3)
  t.ok(data.equals(copy))
})

t.test('the SIMD path equals the byte loop: around its threshold, across windows, unaligned, in pieces', async t => {
  const random = prng(2024)
  const mask = Buffer.from([0x9e, 0x01, 0x7c, 0xe3])
  const lengths = [255, 256, 257, 271, 272, 511, 512, 513, 527, 528, 4096 + 7, 65536, 262143, 262144, 262145, 262144 * 2 + 19, 1 << 20]
  for (const length of lengths) {
    for (const offset of [0, 1, 2, 3]) {
      const backing = randomBytes(random, length + 3)
      const data = backing.subarray(offset, offset + length)
      const wanted = naiveMask(data, mask, offset)
      applyMask(data, mask, offset)
      t.ok(equal(data, wanted), `length ${length}, offset ${offset}`)
    }
  }
  // A 700 KiB payload unmasked as it arrives, in pieces of odd sizes.
  const whole = randomBytes(random, 700 * 1024)
  const wanted = naiveMask(whole, mask, 0)
  let at = 0
  for (const size of [1, 600, 70001, 262144, 333, 300000]) {
    applyMask(whole.subarray(at, at + size), mask, at)
    at += size
  }
  applyMask(whole.subarray(at), mask, at)
  t.ok(equal(whole, wanted), 'pieces of 1, 600, 70001, 262144, 333, 300000 bytes and the rest')
})

t.test('copyMasked copies and unmasks in one go, equal to a copy and the byte loop', async t => {
  const random = prng(77)
  const mask = Buffer.from([0x5a, 0xc3, 0x01, 0xff])
  for (const length of [0, 1, 31, 255, 256, 257, 511, 512, 529, 65536 + 3, 262144 * 2 + 5]) {
    for (const offset of [0, 1, 2, 3]) {
      const source = randomBytes(random, length + 7)
      const target = Buffer.alloc(length + 9, 0xee)
      copyMasked(source, 3, 3 + length, target, 5, maskWord(mask), offset)
      const wanted = naiveMask(source.subarray(3, 3 + length), mask, offset)
      t.ok(equal(target.subarray(5, 5 + length), wanted), `length ${length}, offset ${offset}`)
      t.ok(target.subarray(0, 5).every(b => b === 0xee) && target.subarray(5 + length).every(b => b === 0xee), 'nothing outside the range is touched')
    }
  }
})

t.test('maskingReadBuffer: 64 KiB of the SIMD module\'s memory, unmasked in place by applyMask and copyMasked', async t => {
  t.ok(maskingReadBuffer !== undefined && maskingReadBuffer.length === 65536, 'present where SIMD is')
  const region = maskingReadBuffer!
  const random = prng(77)
  const failures: string[] = []
  let checked = 0
  for (const length of [255, 256, 257, 271, 1024, 1031, 4096 + 5, 65536 - 40, 65536 - 3]) {
    for (const start of [0, 1, 3, 16, 37]) {
      if (start + length > region.length) continue
      for (const offset of [0, 1, 2, 3]) {
        const mask = randomBytes(random, 4)
        const content = randomBytes(random, region.length)
        checked++
        // applyMask on a view of the region: the view unmasked, the rest untouched.
        region.set(content)
        const wanted = naiveMask(content.subarray(start, start + length), mask, offset)
        applyMask(region.subarray(start, start + length), mask, offset)
        if (!equal(region.subarray(start, start + length), wanted)) failures.push(`applyMask: length ${length}, start ${start}, offset ${offset}`)
        if (!region.subarray(0, start).equals(content.subarray(0, start)) || !region.subarray(start + length).equals(content.subarray(start + length))) {
          failures.push(`applyMask: length ${length}, start ${start}: bytes outside the view changed`)
        }
        // copyMasked from the region: the target gets the unmasked bytes at its offset, and nothing around them.
        region.set(content)
        const target = randomBytes(random, length + 10)
        const targetBefore = Buffer.from(target)
        copyMasked(region, start, start + length, target, 5, maskWord(mask), offset)
        if (!equal(target.subarray(5, 5 + length), wanted)) failures.push(`copyMasked: length ${length}, start ${start}, offset ${offset}`)
        if (!target.subarray(0, 5).equals(targetBefore.subarray(0, 5)) || !target.subarray(5 + length).equals(targetBefore.subarray(5 + length))) {
          failures.push(`copyMasked: length ${length}, start ${start}: target bytes outside the piece changed`)
        }
        if (!region.subarray(0, start).equals(content.subarray(0, start)) || !region.subarray(start + length).equals(content.subarray(start + length))) {
          failures.push(`copyMasked: length ${length}, start ${start}: region bytes outside the piece changed`)
        }
      }
    }
  }
  t.same(failures.slice(0, 5), [], `${checked} cases`)
})

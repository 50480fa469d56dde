/**
 * XOR masking (RFC 6455 §5.3): octet i of the payload is XORed with octet
 * (i MOD 4) of the masking key. A payload may be unmasked in pieces as it
 * arrives, so `offset` says how many payload bytes came before `data`.
 *
 * Long runs are processed as 32-bit words through a Uint32Array view, after
 * a few single bytes that bring the view to a 4-byte aligned address.
 */
import { endianness } from 'node:os'

const LITTLE_ENDIAN = endianness() === 'LE'
/** Below this, creating the word view costs more than it saves. */
const WORD_THRESHOLD = 32

export function applyMask (data: Uint8Array, mask: Uint8Array, offset: number): void {
  const length = data.length
  let i = 0
  if (LITTLE_ENDIAN && length >= WORD_THRESHOLD) {
    const lead = (4 - (data.byteOffset & 3)) & 3
    for (; i < lead; i++) data[i] ^= mask[(offset + i) & 3]
    const words = (length - i) >>> 2
    const k = (offset + i) & 3
    const maskWord = (mask[k] | (mask[(k + 1) & 3] << 8) | (mask[(k + 2) & 3] << 16) | (mask[(k + 3) & 3] << 24))
    const view = new Uint32Array(data.buffer, data.byteOffset + i, words)
    for (let w = 0; w < words; w++) view[w] ^= maskWord
    i += words << 2
  }
  for (; i < length; i++) data[i] ^= mask[(offset + i) & 3]
}

/** A small seeded PRNG (mulberry32), so "random" test inputs are the same on every run. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

export function randomBytes (random: () => number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) out[i] = Math.floor(random() * 256)
  return out
}

/**
 * Valid UTF-8 of exactly `length` bytes: mostly ASCII with 2-, 3- and 4-byte
 * characters mixed in, so cuts fall inside multi-byte sequences.
 */
export function utf8OfLength (length: number): Buffer {
  const pattern = ['é', 'a', 'b', 'c', '€', 'd', 'e', 'f', 'g', '😀', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ß']
  const parts: string[] = []
  let bytes = 0
  for (let i = 0; ; i++) {
    const ch = pattern[i % pattern.length]
    const size = Buffer.byteLength(ch)
    if (bytes + size > length) break
    parts.push(ch)
    bytes += size
  }
  while (bytes < length) {
    parts.push('.')
    bytes++
  }
  const out = Buffer.from(parts.join(''))
  if (out.length !== length) throw new Error('utf8OfLength: wrong length')
  return out
}

/**
 * Valid UTF-8 of exactly `length` bytes, ASCII but for a multi-byte character
 * every `every` bytes or so: cheap to validate many times over, yet some cuts
 * still fall inside a character.
 */
export function sparseUtf8OfLength (length: number, every = 4096): Buffer {
  const out = Buffer.alloc(length, 0x2e)
  const chars = ['é', '€', '😀'].map(c => Buffer.from(c))
  for (let at = 7, i = 0; at + 4 <= length; at += every, i++) {
    const ch = chars[i % chars.length]
    ch.copy(out, at)
  }
  return out
}

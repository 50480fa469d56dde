/**
 * Builders for raw client frames (RFC 6455 §5.2), so tests can send exact
 * bytes: any opcode, FIN and RSV bits, mask key, and a forced length
 * encoding (a 16- or 64-bit length even where 7 bits would do).
 */
import { Opcode } from '../../lib/engine/parser.js'

export interface FrameSpec {
  opcode: number
  payload?: Buffer | string
  /** Default true. */
  fin?: boolean
  /** RSV1-3 as a 3-bit number (4 = RSV1, 2 = RSV2, 1 = RSV3). Default 0. */
  rsv?: number
  /** The masking key; `false` sends the frame unmasked. Default 37 fa 21 3d. */
  mask?: Buffer | false
  /** Force the length encoding: 7, 16 or 64 bits. Default: the smallest that fits. */
  lengthBits?: 7 | 16 | 64
  /** Put this value in the length field instead of the payload's length (for 64-bit lengths with the top bit set, or lies). */
  declaredLength?: bigint | number
}

export const DEFAULT_MASK = Buffer.from([0x37, 0xfa, 0x21, 0x3d])

/** XOR with the key, as a client does (§5.3): octet i with key octet i mod 4. */
export function maskBytes (payload: Buffer, key: Buffer): Buffer {
  const out = Buffer.allocUnsafe(payload.length)
  for (let i = 0; i < payload.length; i++) out[i] = payload[i] ^ key[i & 3]
  return out
}

export function frame (spec: FrameSpec): Buffer {
  const payload = typeof spec.payload === 'string' ? Buffer.from(spec.payload) : spec.payload ?? Buffer.alloc(0)
  const fin = spec.fin ?? true
  const rsv = spec.rsv ?? 0
  const mask = spec.mask ?? DEFAULT_MASK
  const length = BigInt(spec.declaredLength ?? payload.length)
  const bits = spec.lengthBits ?? (length < 126n ? 7 : length < 0x10000n ? 16 : 64)

  const header: number[] = [(fin ? 0x80 : 0) | ((rsv & 7) << 4) | (spec.opcode & 0x0f)]
  const maskBit = mask === false ? 0 : 0x80
  if (bits === 7) {
    header.push(maskBit | Number(length))
  } else if (bits === 16) {
    header.push(maskBit | 126, Number(length >> 8n) & 0xff, Number(length) & 0xff)
  } else {
    header.push(maskBit | 127)
    for (let shift = 56n; shift >= 0n; shift -= 8n) header.push(Number((length >> shift) & 0xffn))
  }
  if (mask === false) return Buffer.concat([Buffer.from(header), payload])
  return Buffer.concat([Buffer.from(header), mask, maskBytes(payload, mask)])
}

/** The opcodes of RFC 6455 §5.2, as the engine names them. */
export const Op = Opcode

export function text (payload: Buffer | string, fin = true, extra: Partial<FrameSpec> = {}): Buffer {
  return frame({ opcode: Op.TEXT, payload, fin, ...extra })
}

export function binary (payload: Buffer | string, fin = true, extra: Partial<FrameSpec> = {}): Buffer {
  return frame({ opcode: Op.BINARY, payload, fin, ...extra })
}

export function continuation (payload: Buffer | string, fin = true, extra: Partial<FrameSpec> = {}): Buffer {
  return frame({ opcode: Op.CONTINUATION, payload, fin, ...extra })
}

/** A close frame payload: the 2-byte code and the reason. */
export function closePayload (code: number, reason: Buffer | string = ''): Buffer {
  const head = Buffer.alloc(2)
  head.writeUInt16BE(code, 0)
  return Buffer.concat([head, typeof reason === 'string' ? Buffer.from(reason) : reason])
}

export function close (code?: number, reason: Buffer | string = '', extra: Partial<FrameSpec> = {}): Buffer {
  return frame({ opcode: Op.CLOSE, payload: code === undefined ? Buffer.alloc(0) : closePayload(code, reason), ...extra })
}

/**
 * A server frame as the server must send it: unmasked (§5.1), parsed back.
 * Returns null when `data` does not start with a whole frame.
 */
export interface ServerFrame {
  fin: boolean
  rsv: number
  opcode: number
  masked: boolean
  payload: Buffer
  /** Bytes of header before the payload. */
  headerLength: number
  /** Header and payload. */
  length: number
}

export function parseServerFrame (data: Buffer, at = 0): ServerFrame | null {
  if (data.length - at < 2) return null
  const b0 = data[at]
  const b1 = data[at + 1]
  let length = b1 & 0x7f
  let pos = at + 2
  if (length === 126) {
    if (data.length - pos < 2) return null
    length = data.readUInt16BE(pos)
    pos += 2
  } else if (length === 127) {
    if (data.length - pos < 8) return null
    length = Number(data.readBigUInt64BE(pos))
    pos += 8
  }
  const masked = (b1 & 0x80) !== 0
  let key: Buffer | undefined
  if (masked) {
    if (data.length - pos < 4) return null
    key = data.subarray(pos, pos + 4)
    pos += 4
  }
  if (data.length - pos < length) return null
  let payload = data.subarray(pos, pos + length)
  if (key !== undefined) payload = maskBytes(payload, key)
  return {
    fin: (b0 & 0x80) !== 0,
    rsv: (b0 >> 4) & 7,
    opcode: b0 & 0x0f,
    masked,
    payload,
    headerLength: pos - at,
    length: pos - at + length,
  }
}

/** Every whole server frame at the start of `data`, and the bytes left over. */
export function parseServerFrames (data: Buffer): { frames: ServerFrame[], rest: Buffer } {
  const frames: ServerFrame[] = []
  let at = 0
  for (;;) {
    const f = parseServerFrame(data, at)
    if (f === null) break
    frames.push(f)
    at += f.length
  }
  return { frames, rest: data.subarray(at) }
}

/**
 * Micro-benchmarks of the frame parser and the frame writer against ws's
 * Receiver and Sender on the same frames (ws is a devDependency, used here
 * for comparison only; without bufferutil installed it masks in JavaScript,
 * as our engine always does).
 *
 *   npx tsx bench/frames.ts
 *
 * Numbers are messages per second on this machine, one run; compare the
 * columns of a row, not runs with each other.
 */
import { createRequire } from 'node:module'
import { FrameParser, type FrameHandler } from '../lib/engine/parser.js'
import { FrameWriter } from '../lib/engine/writer.js'
import type { Socket } from 'node:net'

const require = createRequire(import.meta.url)
const { Receiver, Sender } = require('ws')

function maskedFrame (payload: Buffer, opcode = 2): Buffer {
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78])
  const len = payload.length
  const header = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : len < 65536 ? Buffer.from([0x80 | opcode, 0xfe, len >> 8, len & 255]) : (() => { const h = Buffer.alloc(10); h[0] = 0x80 | opcode; h[1] = 0xff; h.writeUInt32BE(Math.floor(len / 2 ** 32), 2); h.writeUInt32BE(len >>> 0, 6); return h })()
  const body = Buffer.alloc(len)
  for (let i = 0; i < len; i++) body[i] = payload[i] ^ mask[i & 3]
  return Buffer.concat([header, mask, body])
}

/** `count` frames of `size` bytes, cut into 64 KiB chunks as a socket would deliver them. */
function stream (size: number, count: number, opcode: number): Buffer[] {
  const payload = opcode === 1 ? Buffer.from('a'.repeat(size)) : Buffer.alloc(size, 0x5a)
  const one = maskedFrame(payload, opcode)
  const all = Buffer.concat(Array.from({ length: count }, () => one))
  const chunks: Buffer[] = []
  for (let i = 0; i < all.length; i += 65536) chunks.push(all.subarray(i, i + 65536))
  return chunks
}

function time (fn: () => void, rounds: number): number {
  fn() // warm-up
  const start = process.hrtime.bigint()
  for (let i = 0; i < rounds; i++) fn()
  return Number(process.hrtime.bigint() - start) / 1e9
}

function parseOurs (pristine: Buffer[], work: Buffer[], expected: number): () => void {
  return () => {
    let messages = 0
    const handler: FrameHandler = { onMessage () { messages++ }, onPing () {}, onPong () {}, onClose () {}, onProtocolError (e) { throw e } }
    const parser = new FrameParser(handler, { maxPayload: 64 << 20, maxFragments: 1 << 20 })
    for (let i = 0; i < pristine.length; i++) { pristine[i].copy(work[i]); parser.write(work[i]) }
    if (messages !== expected) throw new Error(`ours: ${messages} of ${expected}`)
  }
}

function parseWs (pristine: Buffer[], work: Buffer[], expected: number): () => void {
  const noop = (): void => {}
  return () => {
    let messages = 0
    const receiver = new Receiver({ isServer: true, maxPayload: 64 << 20 })
    receiver.on('message', () => { messages++ })
    receiver.on('error', (e: Error) => { throw e })
    for (let i = 0; i < pristine.length; i++) { pristine[i].copy(work[i]); receiver._write(work[i], 'buffer', noop) }
    if (messages !== expected) throw new Error(`ws: ${messages} of ${expected}`)
  }
}

class NullSocket {
  bytes = 0
  cork (): void {}
  uncork (): void {}
  write (chunk: Buffer | string): boolean { this.bytes += chunk.length; return true }
}

const rows: string[][] = []
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US')

for (const [label, size, count, opcode] of [
  ['32 B binary', 32, 20000, 2], ['1 KiB binary', 1024, 5000, 2], ['1 KiB text', 1024, 5000, 1],
  ['64 KiB binary', 65536, 200, 2], ['1 MiB binary', 1 << 20, 16, 2], ['1 MiB text', 1 << 20, 16, 1],
] as const) {
  const pristine = stream(size, count, opcode)
  const work = pristine.map(chunk => Buffer.allocUnsafe(chunk.length))
  const rounds = Math.max(3, Math.round(2e7 / (size * count)))
  const ours = count * rounds / time(parseOurs(pristine, work, count), rounds)
  const theirs = count * rounds / time(parseWs(pristine, work, count), rounds)
  rows.push([`parse ${label}`, fmt(ours), fmt(theirs), (ours / theirs).toFixed(2)])
}

for (const [label, size] of [['32 B', 32], ['1 KiB', 1024], ['64 KiB', 65536], ['1 MiB', 1 << 20]] as const) {
  const payload = Buffer.alloc(size, 1)
  const count = Math.max(50, Math.round(2e7 / size))
  const ourSocket = new NullSocket()
  const writer = new FrameWriter(ourSocket as unknown as Socket)
  const ours = count / time(() => { for (let i = 0; i < count; i++) writer.frame(2, payload) }, 3) * 3
  const theirSocket = new NullSocket()
  const sender = new Sender(theirSocket)
  const theirs = count / time(() => { for (let i = 0; i < count; i++) sender.sendFrame(Sender.frame(payload, { fin: true, opcode: 2, mask: false, readOnly: false, rsv1: false }), undefined) }, 3) * 3
  rows.push([`write ${label}`, fmt(ours), fmt(theirs), (ours / theirs).toFixed(2)])
}

console.log('| operation | wsroutes msgs/s | ws msgs/s | ratio |')
console.log('|---|---:|---:|---:|')
for (const row of rows) console.log(`| ${row.join(' | ')} |`)

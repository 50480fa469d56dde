/**
 * The Node floor: the least a Node process can do per WebSocket echo, as a
 * yardstick for the engine (as cecho is one for the machine). It answers
 * the handshake on `http.Server`'s 'upgrade' event, reads each socket
 * directly into one shared buffer (the engine's direct reads) and, for each
 * read, writes the replies to every complete frame back with one
 * `socket.write`. The payloads are NOT unmasked: the replies carry the
 * right lengths and the client's masked bytes, so measure it with
 * `wsload --no-verify` (lengths only). No validation, no fragmentation, no
 * control frames but close, no routing, no handler, no allocation but the
 * reply. It is not a WebSocket server anyone should run: it shows what
 * Node's own accept, read and write path costs, which no engine running in
 * Node can go below.
 *
 *   npm run build && PORT=9010 node dist/bench/node-floor.js
 *   wsload -p 9010 -m echo -c 64 -s 1k --no-verify   (and cecho the same way)
 *   SERVER=dist/bench/node-floor.js npm run bench:profile -- -m echo -c 64 -s 1k --no-verify
 */
import { createServer } from 'node:http'
import type { Socket } from 'node:net'
import { readDirectly, resumeDirectReads } from '../lib/engine/direct-read.js'
import { acceptKey } from '../lib/engine/handshake.js'

/** Bytes of a frame that spans reads, kept until it is complete. */
const pendingBytes = new WeakMap<Socket, Buffer>()

function onRead (this: Socket, length: number, buffer: Buffer): boolean {
  const kept = pendingBytes.get(this)
  const data = kept === undefined ? buffer.subarray(0, length) : Buffer.concat([kept, buffer.subarray(0, length)])
  pendingBytes.delete(this)
  const out = Buffer.allocUnsafe(data.length)
  let read = 0
  let written = 0
  while (data.length - read >= 6) {
    const opcode = data[read] & 0x0f
    let length = data[read + 1] & 0x7f
    let at = read + 2
    if (length === 126) {
      if (data.length - read < 8) break
      length = data.readUInt16BE(at)
      at += 2
    } else if (length === 127) {
      if (data.length - read < 14) break
      length = data.readUInt32BE(at + 4)
      at += 8
    }
    const keyAt = at
    at += 4
    if (data.length - at < length) break
    if (opcode === 0x8) {
      // Both close frames exchanged: the server closes TCP at once, as the
      // engine does (the kernel sends what was written ahead of the FIN).
      out[written] = 0x88
      out[written + 1] = 0
      this.write(out.subarray(0, written + 2))
      if (this.writableLength === 0) this.destroy()
      else this.end()
      return !this.destroyed
    }
    // The reply: the same header without the mask bit and key, then the
    // payload as it came.
    const headerLength = keyAt - read
    data.copy(out, written, read, keyAt)
    out[written + 1] &= 0x7f
    data.copy(out, written + headerLength, at, at + length)
    written += headerLength + length
    read = at + length
  }
  if (read < data.length) pendingBytes.set(this, Buffer.from(data.subarray(read)))
  if (written > 0) this.write(out.subarray(0, written))
  return true
}

const server = createServer((_request, response) => {
  response.writeHead(426).end()
})
server.on('upgrade', (request, socket: Socket, head: Buffer) => {
  const key = request.headers['sec-websocket-key'] ?? ''
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`)
  socket.setNoDelay(true)
  socket.on('error', () => socket.destroy())
  socket.on('end', () => socket.destroy())
  if (head.length > 0) onRead.call(socket, head.length, head)
  if (!readDirectly(socket, onRead)) throw new Error('node-floor needs direct reads (a plain TCP socket)')
  let early: Buffer | null
  while ((early = socket.read() as Buffer | null) !== null) onRead.call(socket, early.length, early)
  resumeDirectReads(socket)
})
const port = Number(process.env.PORT ?? 9010)
server.listen(port, process.env.HOST ?? '127.0.0.1', () => {
  console.log(`node floor echo on ws://127.0.0.1:${port}/`)
})
// Exiting rather than dying on the signal lets `node --cpu-prof` write its
// profile (`SERVER=dist/bench/node-floor.js npm run bench:profile`).
process.once('SIGTERM', () => process.exit(0))

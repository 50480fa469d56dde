/**
 * Direct reads: a TCP socket's bytes go straight from the kernel into one
 * shared buffer and from there to the frame parser, without a Buffer
 * allocated per read and without the Readable stream's push/'data' path.
 *
 * Node has this mode built in: with the `onread` option of `net.Socket`,
 * incoming data is stored in one caller-supplied buffer and passed to a
 * callback, and the stream itself provides no data. A server's sockets are
 * created by Node without it, so the same switch is turned on here for a
 * socket the HTTP server has handed over: the three properties the option
 * would have set, and the handle's `useUserBuffer()`, which is what the
 * option calls.
 *
 * Those names are Node's internals, so nothing is assumed: the properties
 * are found at load time on a probe socket built with the public option, and
 * a socket without a stream handle that offers `useUserBuffer` (a TLS socket,
 * the in-process pair of `injectWS`, a Node that changed) keeps the 'data'
 * path.
 *
 * Without Node's per-read buffers, nothing small is allocated above the
 * freed message buffers at the top of glibc's heap, so with glibc's initial
 * settings it returns them to the kernel (trims its heap at 128 KiB free)
 * and the next messages fault them in again: 64 KiB echoes measured about a
 * third slower than with 'data' events. glibc raises those thresholds by
 * itself the first time it frees a large chunk it had mapped (its dynamic
 * mmap threshold); the first socket switched here makes that happen at
 * once, by allocating and dropping one 31 MiB buffer (`primeAllocator`).
 *
 * The buffer is shared by every socket of the process: reads run one at a
 * time on the main thread, and the bytes of one read are either parsed or
 * copied (`FrameParser.write(chunk, true)`) before the callback returns.
 */
import { Buffer } from 'node:buffer'
import { Socket } from 'node:net'
import { maskingReadBuffer, READ_REGION } from './mask.js'

/** Called with the bytes of one read, valid only during the call. Returning false stops reading. */
export type DirectReadCallback = (this: Socket, length: number, buffer: Buffer) => boolean

interface OnreadKeys {
  buffer: symbol
  callback: symbol
  generator: symbol
}

interface StreamHandle {
  reading?: boolean
  useUserBuffer?: (buffer: Uint8Array) => void
  readStart?: () => number
}

/** The properties `new Socket({ onread })` sets, found on a probe built with that public option. */
function findOnreadKeys (): OnreadKeys | undefined {
  try {
    const buffer = Buffer.alloc(1)
    const callback = (): void => {}
    // The option exists since Node 12 but is typed only for `net.connect()`.
    const probe = new Socket({ onread: { buffer, callback } } as ConstructorParameters<typeof Socket>[0])
    const keys = new Map(Object.getOwnPropertySymbols(probe).map((key) => [key.description, key]))
    probe.destroy()
    const bufferKey = keys.get('kBuffer')
    const callbackKey = keys.get('kBufferCb')
    const generatorKey = keys.get('kBufferGen')
    const record = probe as unknown as Record<symbol, unknown>
    if (bufferKey === undefined || callbackKey === undefined || generatorKey === undefined) return undefined
    if (record[bufferKey] !== buffer || record[callbackKey] !== callback) return undefined
    return { buffer: bufferKey, callback: callbackKey, generator: generatorKey }
  } catch {
    return undefined
  }
}

/**
 * glibc's malloc, when it frees a chunk it had mapped (above its mmap
 * threshold, 128 KiB at first), raises the threshold to that chunk's size
 * and its trim threshold to twice that, for chunks up to 32 MiB (its
 * DEFAULT_MMAP_THRESHOLD_MAX on 64-bit). This primer stays a MiB under
 * that limit, since the mapped chunk (glibc's header included, rounded up to
 * whole pages) must not exceed it; a primer of 32 MiB less one page was
 * measured not to raise the thresholds. From then on, buffers up to 31 MiB
 * come from glibc's heap, and up to 62 MiB of freed heap stays with the
 * process instead of being faulted in again.
 *
 * Why 62 MiB and not less: V8 frees young message buffers in bursts, a
 * scavenge each time 32 MiB of young ArrayBuffer memory has piled up. With
 * a 16 MiB primer (trim at 32 MiB) such a burst went back to the kernel and
 * the next 32 MiB of messages faulted in again: about half the pages of
 * every 1 MiB message, and 1 MiB echoes a quarter slower.
 *
 * Every process that once frees a buffer that large ends up so; this makes
 * it happen when the first socket is read directly (V8 frees the buffer at
 * its next collection). Where MALLOC_MMAP_THRESHOLD_ or
 * MALLOC_TRIM_THRESHOLD_ is set, glibc keeps those values, and on other
 * allocators this is one short-lived allocation.
 */
const PRIMING_SIZE = 31 * 1024 * 1024
let allocatorPrimed = false

function primeAllocator (): void {
  allocatorPrimed = true
  Buffer.allocUnsafeSlow(PRIMING_SIZE)
}

/** Whether the first direct read has primed glibc's thresholds (see `primeAllocator`). */
export function isAllocatorPrimed (): boolean {
  return allocatorPrimed
}

const onreadKeys = findOnreadKeys()
/**
 * Where the SIMD masking module is available, the buffer is a page of its
 * memory: payload bytes are unmasked where the kernel put them and copied
 * once, to their message (see `maskingReadBuffer`). Elsewhere it is a plain
 * buffer of the same size (64 KiB, what Node itself reads into).
 */
const sharedReadBuffer = maskingReadBuffer ?? Buffer.allocUnsafe(READ_REGION)

function handleOf (socket: Socket): StreamHandle | null | undefined {
  return (socket as unknown as { _handle?: StreamHandle | null })._handle
}

/** Whether this Node offers direct reads at all. */
export const directReadsAvailable = onreadKeys !== undefined

/**
 * Switches `socket` to direct reads with `callback`. Returns false, changing
 * nothing, when the socket cannot have them: it then still emits 'data'.
 * Bytes the stream had already buffered are not touched: drain them with
 * `socket.read()` before returning to the event loop, ahead of the first
 * direct read.
 */
export function readDirectly (socket: Socket, callback: DirectReadCallback): boolean {
  if (onreadKeys === undefined) return false
  // A TLS socket's handle reads ciphertext; its plaintext comes through 'data'.
  if ((socket as { encrypted?: boolean }).encrypted === true) return false
  const handle = handleOf(socket)
  if (handle == null || typeof handle.useUserBuffer !== 'function' || typeof handle.readStart !== 'function') return false
  const record = socket as unknown as Record<symbol, unknown>
  if (record[onreadKeys.buffer] != null) return false
  record[onreadKeys.buffer] = sharedReadBuffer
  record[onreadKeys.callback] = callback
  // Node asks this property for the next buffer unless it is null.
  record[onreadKeys.generator] = null
  handle.useUserBuffer(sharedReadBuffer)
  if (!allocatorPrimed) primeAllocator()
  return true
}

/**
 * Starts reading again after the callback returned false (Node then stopped
 * the handle). A no-op while the handle is still reading.
 */
export function resumeDirectReads (socket: Socket): void {
  const handle = handleOf(socket)
  if (handle == null || handle.reading === true || socket.destroyed) return
  handle.reading = true
  const status = handle.readStart!()
  if (status !== 0) {
    handle.reading = false
    socket.destroy(new Error(`read failed to restart (libuv status ${status})`))
  }
}

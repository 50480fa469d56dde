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
 * It is opt-in (`directReads: true`) because of glibc: with its default
 * settings, large messages got about twice as slow. Nothing small is then
 * allocated above the freed message buffers, so glibc returns them to the
 * kernel and the next messages fault them in again. Told to keep its memory
 * (the README's Direct reads section), glibc makes this mode the faster
 * one for 1 KiB to 1 MiB echoes alike.
 *
 * The buffer is shared by every socket of the process: reads run one at a
 * time on the main thread, and the bytes of one read are either parsed or
 * copied (`FrameParser.write(chunk, true)`) before the callback returns.
 */
import { Socket } from 'node:net'

/** The size Node itself asks libuv to read into (64 KiB). */
const READ_BUFFER_SIZE = 64 * 1024

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

const onreadKeys = findOnreadKeys()
const sharedReadBuffer = Buffer.allocUnsafe(READ_BUFFER_SIZE)

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

/**
 * The open sockets of one plugin or adapter instance, for graceful shutdown.
 */
import { CloseCodes } from '../engine/close-codes.js'
import { ReadyState } from '../engine/connection.js'
import { SlotList } from '../engine/slot-list.js'
import type { RouteSocket } from './socket.js'

export class SocketRegistry {
  /** Not a Set: see slot-list.ts. */
  private readonly sockets = new SlotList<RouteSocket<any>, 'registrySlot'>('registrySlot')
  private emptied: (() => void) | undefined
  private shuttingDown = false
  /** Async `close` handlers still running: shutdown waits for them as for the sockets. */
  private closesRunning = 0

  get size (): number {
    return this.sockets.size
  }

  /** Whether `closeAll` has begun: upgrades still in flight must be refused, not added. */
  get closing (): boolean {
    return this.shuttingDown
  }

  add (socket: RouteSocket<any>): void {
    this.sockets.add(socket)
  }

  delete (socket: RouteSocket<any>): void {
    if (this.sockets.remove(socket)) this.settleIfDone()
  }

  /** A socket's async `close` handler, which settles (never rejects): shutdown resolves after it. */
  waitFor (closing: Promise<void>): void {
    this.closesRunning++
    closing.then(() => {
      this.closesRunning--
      this.settleIfDone()
    })
  }

  private settleIfDone (): void {
    if (this.sockets.size === 0 && this.closesRunning === 0 && this.emptied !== undefined) this.emptied()
  }

  /**
   * The open sockets, in no particular order. A socket leaves at its
   * 'close' event, never during a synchronous loop over them; one that
   * closes meanwhile may still be visited (its sends are dropped).
   */
  [Symbol.iterator] (): IterableIterator<RouteSocket<any>> {
    return this.sockets.items.values()
  }

  /**
   * Refuses upgrades from now on, runs `preClose` with the open sockets (for
   * a goodbye broadcast; up to `timeout` ms, its failure goes to `onError`),
   * then sends every open socket a 1001 close, waits up to `timeout` ms for
   * the closing handshakes, terminates whatever is left, and waits (up to
   * `timeout` ms again) for those to close.
   */
  async closeAll (reason: string, timeout: number, preClose?: PreClose, onError?: (error: unknown) => void): Promise<void> {
    this.shuttingDown = true
    if (preClose !== undefined) await this.runPreClose(preClose, timeout, onError)
    // Copies: a socket may leave as soon as it is closed (an in-process one).
    for (const socket of this.sockets.items.slice()) {
      if (socket.readyState === ReadyState.OPEN) socket.close(CloseCodes.GOING_AWAY, reason)
    }
    await this.untilEmpty(timeout)
    if (this.sockets.size === 0 && this.closesRunning === 0) return
    for (const socket of this.sockets.items.slice()) socket.terminate()
    // A destroyed socket's 'close', and with it the socket's `close`
    // handler, comes in a later tick: wait for them, so that shutdown
    // resolves after every close handler ran (an async one settled).
    // Bounded like the handshakes, for a socket whose 'close' never comes
    // or a handler that never settles.
    await this.untilEmpty(timeout)
    if (this.closesRunning > 0) onError?.(new Error(`${this.closesRunning} close handler(s) did not settle within ${timeout} ms of shutdown`))
  }

  /** Resolves once every socket has left and every async `close` handler settled, or after `timeout` ms. */
  private async untilEmpty (timeout: number): Promise<void> {
    if (this.sockets.size === 0 && this.closesRunning === 0) return
    let timer: NodeJS.Timeout | undefined
    await new Promise<void>(resolve => {
      this.emptied = resolve
      timer = setTimeout(resolve, timeout)
    })
    clearTimeout(timer)
    this.emptied = undefined
  }

  private async runPreClose (preClose: PreClose, timeout: number, onError = (_error: unknown): void => {}): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<false>(resolve => { timer = setTimeout(resolve, timeout, false) })
    const settled = (async () => { await preClose(this) })().then(() => true, (error: unknown) => {
      onError(error)
      return true
    })
    const inTime = await Promise.race([settled, late])
    clearTimeout(timer)
    if (!inTime) onError(new Error(`preClose did not settle within ${timeout} ms; closing the sockets anyway`))
  }
}

/** Called on shutdown before the 1001s, with the sockets still open. */
export type PreClose = (sockets: Iterable<RouteSocket<any>>) => void | Promise<void>

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
  /**
   * Sockets gone whose `close` handler has not yet run (an async `open`
   * still runs before it) or has not settled (an async one): shutdown waits
   * for them as for the open sockets.
   */
  private closesPending = 0

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

  /** A socket is gone: no longer listed, but its `close` handler is still to come (`closed`). */
  leave (socket: RouteSocket<any>): void {
    if (this.sockets.remove(socket)) this.closesPending++
  }

  /** The `close` handler of a socket that left has run; `running` is an async one's promise, which never rejects. */
  closed (running: Promise<void> | undefined): void {
    if (running !== undefined) {
      running.then(() => this.closeSettled())
      return
    }
    this.closeSettled()
  }

  private closeSettled (): void {
    this.closesPending--
    this.settleIfDone()
  }

  private settleIfDone (): void {
    if (this.sockets.size === 0 && this.closesPending === 0 && this.emptied !== undefined) this.emptied()
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
  async closeAll (reason: string, timeout: number, preClose?: PreClose, onError?: ShutdownErrorHandler): Promise<void> {
    this.shuttingDown = true
    if (preClose !== undefined) await this.runPreClose(preClose, timeout, onError)
    // Copies: a socket may leave as soon as it is closed (an in-process one).
    for (const socket of this.sockets.items.slice()) {
      if (socket.readyState === ReadyState.OPEN) socket.close(CloseCodes.GOING_AWAY, reason)
    }
    await this.untilEmpty(timeout)
    if (this.sockets.size > 0) {
      for (const socket of this.sockets.items.slice()) socket.terminate()
      // A destroyed socket's 'close', and with it the socket's `close`
      // handler, comes in a later tick: wait for them, so that shutdown
      // resolves after every close handler ran (an async one settled).
      // Bounded like the handshakes, for a socket whose 'close' never comes
      // or a handler that never settles.
      await this.untilEmpty(timeout)
    }
    if (this.closesPending > 0) {
      onError?.(new Error(`${this.closesPending} close handler(s) not settled within ${timeout} ms (or the async open before them); shutdown goes on`), 'close handlers did not settle')
    }
  }

  /** Resolves once every socket has left and every `close` handler has run and settled, or after `timeout` ms. */
  private async untilEmpty (timeout: number): Promise<void> {
    if (this.sockets.size === 0 && this.closesPending === 0) return
    let timer: NodeJS.Timeout | undefined
    await new Promise<void>(resolve => {
      this.emptied = resolve
      timer = setTimeout(resolve, timeout)
    })
    clearTimeout(timer)
    this.emptied = undefined
  }

  private async runPreClose (preClose: PreClose, timeout: number, onError: ShutdownErrorHandler = () => {}): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<false>(resolve => { timer = setTimeout(resolve, timeout, false) })
    const settled = (async () => { await preClose(this) })().then(() => true, (error: unknown) => {
      onError(error, 'preClose failed')
      return true
    })
    const inTime = await Promise.race([settled, late])
    clearTimeout(timer)
    if (!inTime) onError(new Error(`preClose did not settle within ${timeout} ms; closing the sockets anyway`), 'preClose failed')
  }
}

/** Called on shutdown before the 1001s, with the sockets still open. */
export type PreClose = (sockets: Iterable<RouteSocket<any>>) => void | Promise<void>

/** A failure during shutdown, with what failed (the log message). */
export type ShutdownErrorHandler = (error: unknown, what: string) => void

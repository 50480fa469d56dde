/**
 * Incremental UTF-8 validation.
 *
 * RFC 6455 §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but
 * finds that the byte stream is not, in fact, a valid UTF-8 stream, that
 * endpoint MUST _Fail the WebSocket Connection_." We fail at the first byte
 * that cannot begin or continue a valid sequence, even when the message is
 * fragmented or its payload has only partly arrived, so the validator keeps
 * its state across calls.
 *
 * The automaton is Björn Höhrmann's UTF-8 DFA: a byte is mapped to one of 12
 * classes, and (state + class) indexes the transition table. It rejects
 * overlong forms, surrogates (U+D800–U+DFFF) and code points above U+10FFFF.
 * Whole buffers are handed to Node's native `isUtf8` first; the DFA runs only
 * where a chunk ends inside a sequence or is invalid.
 */
import { isUtf8 } from 'node:buffer'

/** The validator's state between characters, and at the start of a stream. */
export const UTF8_ACCEPT = 0
/** The state after a byte that cannot be part of valid UTF-8; nothing that follows changes it. */
export const UTF8_REJECT = 12
const ACCEPT = UTF8_ACCEPT
const REJECT = UTF8_REJECT

// prettier-ignore
const BYTE_CLASS = new Uint8Array([
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
  7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  8, 8, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
  10, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 3, 3, 11, 6, 6, 6, 5, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,
])

// prettier-ignore
const TRANSITION = new Uint8Array([
  0, 12, 24, 36, 60, 96, 84, 12, 12, 12, 48, 72, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
  12, 0, 12, 12, 12, 12, 12, 0, 12, 0, 12, 12, 12, 24, 12, 12, 12, 12, 12, 24, 12, 24, 12, 12,
  12, 12, 12, 12, 12, 12, 12, 24, 12, 12, 12, 12, 12, 24, 12, 12, 12, 12, 12, 12, 12, 24, 12, 12,
  12, 12, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12, 12, 36, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12,
  12, 36, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
])

/** Runs the DFA over `data[start..end)` from `state`; returns the new state (REJECT stops early). */
function step (state: number, data: Uint8Array, start: number, end: number): number {
  for (let i = start; i < end; i++) {
    const byte = data[i]
    if (state === ACCEPT && byte < 0x80) continue
    state = TRANSITION[state + BYTE_CLASS[byte]]
    if (state === REJECT) return REJECT
  }
  return state
}

/**
 * Feeds the next bytes of a stream to the validator in state `state`
 * (`UTF8_ACCEPT` to start) and returns the new state: `UTF8_REJECT` as soon
 * as they cannot be valid UTF-8, `UTF8_ACCEPT` when they end on a character
 * boundary, another state inside a character. The parser keeps this number
 * per connection instead of a `Utf8Validator` object.
 */
export function validateUtf8Chunk (state: number, data: Uint8Array): number {
  if (state === ACCEPT && data.length >= 16 && isUtf8(data)) return ACCEPT
  return step(state, data, 0, data.length)
}

export class Utf8Validator {
  private state = ACCEPT

  /**
   * Feeds the next bytes of the stream. Returns false as soon as they cannot be
   * part of valid UTF-8. `last` says the stream ends with these bytes, so an
   * unfinished sequence at the end is invalid too.
   */
  write (data: Uint8Array, last: boolean): boolean {
    this.state = validateUtf8Chunk(this.state, data)
    if (this.state === REJECT) return false
    return !last || this.state === ACCEPT
  }

  /** Whether the bytes fed so far end on a character boundary. */
  get complete (): boolean {
    return this.state === ACCEPT
  }

  reset (): void {
    this.state = ACCEPT
  }
}

/** Whether a complete buffer is valid UTF-8. */
export function isValidUtf8 (data: Uint8Array): boolean {
  return data.length >= 16 ? isUtf8(data) : step(ACCEPT, data, 0, data.length) === ACCEPT
}

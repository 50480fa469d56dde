/**
 * The engine's error type and its stable codes.
 */
import t from 'tap'
import { ErrorCodes, WebSocketError, wsError, wsRangeError, wsTypeError } from '../../lib/engine/errors.js'
import { FrameParser } from '../../lib/engine/parser.js'
import { close, frame, text } from '../helpers/frames.js'

t.test('every code is WS_ERR_ followed by its key, and unique', async t => {
  const entries = Object.entries(ErrorCodes)
  t.ok(entries.length > 15)
  for (const [key, value] of entries) t.equal(value, `WS_ERR_${key}`, key)
  t.equal(new Set(Object.values(ErrorCodes)).size, entries.length, 'no two keys share a code')
})

t.test('WebSocketError carries code, closeCode and message', async t => {
  const err = new WebSocketError(ErrorCodes.INVALID_UTF8, 'bad bytes', 1007)
  t.ok(err instanceof Error)
  t.ok(err instanceof WebSocketError)
  t.equal(err.name, 'WebSocketError')
  t.equal(err.code, 'WS_ERR_INVALID_UTF8')
  t.equal(err.closeCode, 1007)
  t.equal(err.message, 'bad bytes')
  t.match(err.stack, /^WebSocketError: bad bytes\n/, 'the stack names the error')
  t.match(String(err), 'WebSocketError: bad bytes')
})

t.test('wsError: closeCode defaults to 0, for errors that do not close', async t => {
  const timeout = wsError(ErrorCodes.CLOSE_TIMEOUT, 'no answer')
  t.ok(timeout instanceof WebSocketError)
  t.equal(timeout.closeCode, 0)
  t.equal(timeout.code, 'WS_ERR_CLOSE_TIMEOUT')
  t.equal(wsError(ErrorCodes.MAX_PAYLOAD, 'too big', 1009).closeCode, 1009)
})

t.test('wsTypeError and wsRangeError are the built-in types with a code', async t => {
  const type = wsTypeError(ErrorCodes.INVALID_CLOSE_CODE, 'bad code')
  t.ok(type instanceof TypeError)
  t.notOk(type instanceof WebSocketError)
  t.equal(type.name, 'TypeError')
  t.equal(type.code, 'WS_ERR_INVALID_CLOSE_CODE')
  t.equal(type.message, 'bad code')
  const range = wsRangeError(ErrorCodes.CLOSE_REASON_TOO_LONG, 'too long')
  t.ok(range instanceof RangeError)
  t.equal(range.name, 'RangeError')
  t.equal(range.code, 'WS_ERR_CLOSE_REASON_TOO_LONG')
})

t.test('the errors the parser reports are WebSocketErrors with the code and close code of their kind', async t => {
  const cases: Array<[Buffer, string, number]> = [
    [frame({ opcode: 3 }), ErrorCodes.INVALID_OPCODE, 1002],
    [text('x', true, { rsv: 1 }), ErrorCodes.UNEXPECTED_RSV, 1002],
    [text('x', true, { mask: false }), ErrorCodes.EXPECTED_MASK, 1002],
    [text(Buffer.from([0xff])), ErrorCodes.INVALID_UTF8, 1007],
    [close(1006), ErrorCodes.INVALID_CLOSE_CODE, 1002],
    [text('x'.repeat(11)), ErrorCodes.MAX_PAYLOAD, 1009],
  ]
  for (const [bytes, code, closeCode] of cases) {
    let error: unknown
    const parser = new FrameParser({
      onMessage () {},
      onPing () {},
      onPong () {},
      onClose () {},
      onProtocolError (e) { error = e },
    }, { maxPayload: 10, maxFragments: 10 })
    parser.write(bytes)
    t.ok(error instanceof WebSocketError, code)
    t.match(error, { code, closeCode, name: 'WebSocketError' }, code)
    t.type((error as Error).message, 'string')
    t.ok((error as Error).message.length > 0, 'with a message')
  }
})

/**
 * Close codes (RFC 6455 §7.4): which may appear in a Close frame, the named
 * constants, and the CloseCode type that keeps invalid literals out of
 * `close()` at compile time.
 */
import t from 'tap'
import { CloseCodes, MAX_CLOSE_REASON_BYTES, isValidCloseCode, type CloseCode } from '../../lib/engine/close-codes.js'

t.test('isValidCloseCode over every 16-bit code', async t => {
  const valid: number[] = []
  for (let code = 0; code <= 0xffff; code++) if (isValidCloseCode(code)) valid.push(code)
  const expected: number[] = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]
  for (let code = 3000; code <= 4999; code++) expected.push(code)
  t.same(valid, expected, '1000-1003, 1007-1014 and 3000-4999, nothing else')
})

t.test('the codes RFC 6455 §7.4 forbids on the wire', async t => {
  // 1004 reserved; 1005, 1006, 1015 "MUST NOT be set as a status code in a
  // Close control frame"; 1016-2999 reserved; 0-999 "not used".
  for (const code of [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
    t.equal(isValidCloseCode(code), false, `${code}`)
  }
  for (const code of [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 3999, 4000, 4999]) {
    t.equal(isValidCloseCode(code), true, `${code}`)
  }
})

t.test('non-integers and out-of-range numbers are not codes', async t => {
  for (const code of [1000.5, 1004.5, 2999.9, 3000.1, 4999.5, NaN, Infinity, -Infinity, -1000, 65536 + 1000]) {
    t.equal(isValidCloseCode(code), false, `${code}`)
  }
})

t.test('the named constants carry the RFC 6455 §7.4.1 numbers', async t => {
  t.same(CloseCodes, {
    NORMAL: 1000,
    GOING_AWAY: 1001,
    PROTOCOL_ERROR: 1002,
    UNSUPPORTED_DATA: 1003,
    NO_STATUS: 1005,
    ABNORMAL: 1006,
    INVALID_PAYLOAD: 1007,
    POLICY_VIOLATION: 1008,
    MESSAGE_TOO_BIG: 1009,
    MANDATORY_EXTENSION: 1010,
    INTERNAL_ERROR: 1011,
    SERVICE_RESTART: 1012,
    TRY_AGAIN_LATER: 1013,
    BAD_GATEWAY: 1014,
  })
  t.equal(isValidCloseCode(CloseCodes.NO_STATUS), false, 'NO_STATUS is received only')
  t.equal(isValidCloseCode(CloseCodes.ABNORMAL), false, 'ABNORMAL is received only')
})

t.test('a close reason is at most 123 bytes: 125 for a control frame, less the code', async t => {
  t.equal(MAX_CLOSE_REASON_BYTES, 123)
})

t.test('CloseCode accepts the sendable literals and rejects the others at compile time', async t => {
  const sendable: CloseCode[] = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3456, 4000, 4999]
  t.ok(sendable.every(isValidCloseCode), 'every literal the type accepts is valid at run time')
  // Checked by `tsc --noEmit`: each line below must be a type error.
  // @ts-expect-error 1004 is reserved
  const reserved: CloseCode = 1004
  // @ts-expect-error 1005 is never sent
  const noStatus: CloseCode = 1005
  // @ts-expect-error 1006 is never sent
  const abnormal: CloseCode = 1006
  // @ts-expect-error 1015 is never sent
  const tls: CloseCode = 1015
  // @ts-expect-error 2000 is reserved for the protocol
  const future: CloseCode = 2000
  // @ts-expect-error 5000 is out of range
  const outOfRange: CloseCode = 5000
  // @ts-expect-error 999 is not used
  const tooLow: CloseCode = 999
  t.same([reserved, noStatus, abnormal, tls, future, outOfRange, tooLow].filter(isValidCloseCode), [], 'and none of them is valid at run time')
})

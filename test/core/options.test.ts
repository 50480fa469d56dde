/**
 * The adapter-wide pieces every adapter shares: picking and checking limits,
 * checking the shutdown reason up front, and one adapter per server.
 */
import { createServer } from 'node:http'
import t from 'tap'
import { checkShutdownReason, claimServer, pickLimits } from '../../lib/core/options.js'

t.test('pickLimits keeps the limits that are set, and nothing else', async t => {
  t.same(pickLimits({ maxPayload: 10, closeTimeout: undefined, keepRequest: false, ...{ open () {} } } as never), { maxPayload: 10, keepRequest: false })
})

t.test('pickLimits checks every limit it is given, handshakeTimeout included (which it does not keep)', async t => {
  const good = {
    maxPayload: 1, maxFragments: Infinity, closeTimeout: 0, maxBackpressure: 0, backpressurePolicy: 'drop',
    idleTimeout: 0, directReads: false, keepRequest: true, binaryMessages: 'borrow', handshakeTimeout: 2 ** 31 - 1,
  } as const
  const { handshakeTimeout: _dropped, ...kept } = good
  t.same(pickLimits(good), kept)
  t.same(pickLimits({ maxPayload: Infinity, maxBackpressure: Infinity, idleTimeout: 2_147_483, backpressurePolicy: 'close', binaryMessages: 'own' }),
    { maxPayload: Infinity, maxBackpressure: Infinity, idleTimeout: 2_147_483, backpressurePolicy: 'close', binaryMessages: 'own' })
  const bad: Array<[string, unknown, RegExp]> = [
    ['maxPayload', 0, /maxPayload must be a number of bytes above 0 \(Infinity for no limit\), not 0/],
    ['maxPayload', -5, /maxPayload must be/],
    ['maxPayload', '1mb', /maxPayload must be .*, not "1mb"/],
    ['maxPayload', NaN, /maxPayload must be/],
    ['maxFragments', 0, /maxFragments must be a number of frames above 0/],
    ['closeTimeout', -1, /closeTimeout must be a number of milliseconds from 0 to 2147483647/],
    ['closeTimeout', Infinity, /closeTimeout must be/],
    ['closeTimeout', 2 ** 31, /closeTimeout must be/],
    ['maxBackpressure', -1, /maxBackpressure must be/],
    ['backpressurePolicy', 'nope', /backpressurePolicy must be 'close' or 'drop', not "nope"/],
    ['idleTimeout', -1, /idleTimeout must be a number of seconds from 0 to 2147483 \(0: no heartbeat\)/],
    ['idleTimeout', 2_147_484, /idleTimeout must be/],
    ['handshakeTimeout', 'abc', /handshakeTimeout must be a number of milliseconds from 0 to 2147483647 \(0: no deadline\), not "abc"/],
    ['directReads', 'yes', /directReads must be true or false/],
    ['keepRequest', 0, /keepRequest must be true or false, not 0/],
    ['binaryMessages', 'lend', /binaryMessages must be 'own' or 'borrow', not "lend"/],
  ]
  for (const [key, value, message] of bad) {
    t.throws(() => pickLimits({ [key]: value } as never), { name: 'TypeError', message }, `${key}: ${String(value)}`)
  }
})

t.test('a shutdown reason over 123 bytes of UTF-8 is refused when the adapter is set up', async t => {
  t.equal(checkShutdownReason('x'.repeat(123)), 'x'.repeat(123), '123 bytes fit a close frame with its code')
  t.equal(checkShutdownReason(''), '')
  t.throws(() => checkShutdownReason('x'.repeat(124)), { name: 'RangeError', code: 'WS_ERR_CLOSE_REASON_TOO_LONG', message: /124 bytes/ })
  t.throws(() => checkShutdownReason('é'.repeat(62)), { code: 'WS_ERR_CLOSE_REASON_TOO_LONG' }, 'counted in bytes: 62 × 2')
})

t.test('a server is claimed by one adapter', async t => {
  const server = createServer()
  claimServer(server)
  t.throws(() => claimServer(server), /already has a wsroutes adapter/)
  t.doesNotThrow(() => claimServer(createServer()), 'another server is free')
})

/**
 * The adapter-wide pieces every adapter shares: picking limits, checking
 * the shutdown reason up front, and one adapter per server.
 */
import { createServer } from 'node:http'
import t from 'tap'
import { checkShutdownReason, claimServer, pickLimits } from '../../lib/core/options.js'

t.test('pickLimits keeps the limits that are set, and nothing else', async t => {
  t.same(pickLimits({ maxPayload: 10, closeTimeout: undefined, keepRequest: false, ...{ open () {} } } as never), { maxPayload: 10, keepRequest: false })
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

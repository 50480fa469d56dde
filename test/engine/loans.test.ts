/**
 * The message-buffer loans: sizes and classes, memory given back and lent
 * again, a stale give-back that must not free someone else's loan, memory a
 * write keeps, and the cap on what the pool holds.
 */
import t from 'tap'
import { LEND_THRESHOLD, MAX_FREE_BYTES, giveBack, isLent, keepOutOfPool, lend, pooledBytes } from '../../lib/engine/loans.js'

t.test('a loan is exactly the size asked, in memory of its power-of-two class', async t => {
  const view = lend(20_000)
  t.equal(view.length, 20_000)
  t.equal(view.buffer.byteLength, 32 * 1024, 'the class of 20,000 bytes is 32 KiB')
  t.equal(view.byteOffset, 0)
  t.ok(isLent(view))
  t.ok(isLent(view.subarray(100, 200)), 'a view of lent memory is lent memory too')
  t.equal(lend(LEND_THRESHOLD).buffer.byteLength, LEND_THRESHOLD, 'the smallest loan is a class of its own')
  t.equal(lend(65_536).buffer.byteLength, 65_536, 'a power of two is its own class')
  giveBack(view)
})

t.test('below the threshold and above the largest class, a Buffer of its own that giveBack ignores', async t => {
  const small = lend(LEND_THRESHOLD - 1)
  t.equal(small.length, LEND_THRESHOLD - 1)
  t.notOk(isLent(small), 'small messages come from Node\'s own Buffer pool')
  const huge = lend(MAX_FREE_BYTES + 1)
  t.equal(huge.length, MAX_FREE_BYTES + 1)
  t.notOk(isLent(huge), 'larger than the pool may hold: never lent')
  const before = pooledBytes()
  giveBack(small)
  giveBack(huge)
  t.equal(pooledBytes(), before)
})

t.test('memory given back is lent again; the first loan\'s view can no longer give it back', async t => {
  const first = lend(40_000)
  const memory = first.buffer
  const before = pooledBytes()
  giveBack(first)
  t.equal(pooledBytes(), before + 65_536, 'the 64 KiB class waits in the pool')
  t.notOk(isLent(first), 'given back: no longer on loan')
  const second = lend(50_000)
  t.equal(second.buffer, memory, 'the next loan of that class reuses the memory')
  t.equal(pooledBytes(), before)
  giveBack(first)
  t.ok(isLent(second), 'a stale give-back (the first loan\'s view) leaves the second loan alone')
  t.equal(pooledBytes(), before)
  giveBack(second.subarray(0, 10))
  t.ok(isLent(second), 'only the view that was lent gives it back')
  giveBack(second)
  giveBack(second)
  t.equal(pooledBytes(), before + 65_536, 'giving back twice pools it once')
  lend(50_000)
})

t.test('memory a write keeps never returns to the pool', async t => {
  const view = lend(10_000)
  const memory = view.buffer
  keepOutOfPool(view)
  t.notOk(isLent(view), 'it is the write\'s now, like any Buffer of its own')
  const before = pooledBytes()
  giveBack(view)
  t.equal(pooledBytes(), before, 'its give-back is ignored')
  const next = lend(10_000)
  t.not(next.buffer, memory, 'and it is never lent again')
  giveBack(next)
})

t.test('the pool holds at most MAX_FREE_BYTES; the rest is left to the collector', async t => {
  const size = 1024 * 1024
  const loans = Array.from({ length: MAX_FREE_BYTES / size + 4 }, () => lend(size))
  for (const view of loans) giveBack(view)
  t.ok(pooledBytes() <= MAX_FREE_BYTES, `${pooledBytes()} bytes pooled`)
  t.ok(pooledBytes() >= MAX_FREE_BYTES - size, 'filled up to the cap')
  // Drain the 1 MiB class again, so later tests start from a smaller pool.
  for (let i = 0; i < loans.length; i++) lend(size)
})

t.test('a pool full of one size makes room for another size in use now: it is lent again, not dropped', async t => {
  const large = 1024 * 1024
  const bursts = Array.from({ length: MAX_FREE_BYTES / large }, () => lend(large))
  for (const view of bursts) giveBack(view)
  t.equal(pooledBytes(), MAX_FREE_BYTES, 'a burst of 1 MiB messages filled the pool')
  const small = lend(65_536)
  const memory = small.buffer
  giveBack(small)
  const again = lend(65_536)
  t.equal(again.buffer, memory, 'the 64 KiB memory given back is lent again')
  t.ok(pooledBytes() <= MAX_FREE_BYTES, 'within the cap')
  t.equal(pooledBytes(), MAX_FREE_BYTES - large, 'one 1 MiB buffer left the pool to make room')
  giveBack(again)
  // A pool full of the very size given back drops what comes back, as before.
  const same = Array.from({ length: MAX_FREE_BYTES / large + 1 }, () => lend(large))
  for (const view of same) giveBack(view)
  t.ok(pooledBytes() <= MAX_FREE_BYTES)
  // Drain the 1 MiB class again, so later tests start from a smaller pool.
  for (let i = 0; i < same.length; i++) lend(large)
})

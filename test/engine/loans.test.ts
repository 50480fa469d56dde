/**
 * The message-buffer loans: sizes and classes, memory given back and lent
 * again, a stale give-back that must not free someone else's loan, memory a
 * write keeps, the cap on what the pool holds, and small loans lent again
 * by length.
 */
import t from 'tap'
import { LEND_THRESHOLD, MAX_FREE_BYTES, MAX_SMALL_OUT, MAX_SMALL_SPARES, giveBack, isLent, keepOutOfPool, lend, pooledBytes, smallSparesWaiting } from '../../lib/engine/loans.js'

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

t.test('above the largest class, a Buffer of its own that giveBack ignores', async t => {
  const huge = lend(MAX_FREE_BYTES + 1)
  t.equal(huge.length, MAX_FREE_BYTES + 1)
  t.notOk(isLent(huge), 'larger than the pool may hold: never lent')
  const before = pooledBytes()
  giveBack(huge)
  t.equal(pooledBytes(), before)
})

t.test('a small loan given back is lent again, the very Buffer, to the next message of its length', async t => {
  const first = lend(LEND_THRESHOLD - 1)
  t.equal(first.length, LEND_THRESHOLD - 1)
  t.notOk(isLent(first), 'not class memory: a writer copies small payloads anyway')
  const spares = smallSparesWaiting()
  giveBack(first)
  t.equal(smallSparesWaiting(), spares + 1, 'it waits for the next message of its length')
  const second = lend(LEND_THRESHOLD - 1)
  t.equal(second, first, 'which gets the very Buffer')
  t.equal(smallSparesWaiting(), spares)
  const third = lend(LEND_THRESHOLD - 1)
  t.not(third, first, 'while that one is out, another message of the length gets another')
  t.not(lend(100), first, 'as does another length')
  giveBack(second)
  giveBack(third)
  t.equal(smallSparesWaiting(), spares + 1, 'one waits per length; the other is left to the collector')
  const fourth = lend(LEND_THRESHOLD - 1)
  giveBack(fourth)
  giveBack(fourth)
  t.equal(smallSparesWaiting(), spares + 1, 'giving back twice keeps it once')
  lend(LEND_THRESHOLD - 1)
})

t.test('a Buffer that was not lent, or not as it is, is never taken by giveBack', async t => {
  const spares = smallSparesWaiting()
  const own = Buffer.allocUnsafe(300)
  giveBack(own)
  t.equal(smallSparesWaiting(), spares, 'a Buffer of the caller\'s own is ignored')
  t.not(lend(300), own, 'and never lent')
  const loan = lend(301)
  giveBack(loan.subarray(0, 300))
  giveBack(Buffer.from(loan.buffer, loan.byteOffset, loan.length))
  t.equal(smallSparesWaiting(), spares, 'a view of a loan, even one of the same bytes, is not the loan')
  const big = lend(10_000)
  giveBack(big.subarray(0, 100))
  t.ok(isLent(big), 'a small view of class memory gives nothing back either')
  giveBack(big)
  giveBack(loan)
})

t.test('at most MAX_SMALL_SPARES small loans wait; of the loans out, the last MAX_SMALL_OUT are known', async t => {
  const given = Array.from({ length: MAX_SMALL_SPARES + 10 }, (_, i) => {
    const view = lend(1000 + i)
    giveBack(view)
    return view
  })
  t.equal(smallSparesWaiting(), MAX_SMALL_SPARES, 'filled up to the cap, one per length')
  const again = given.map((_, i) => lend(1000 + i))
  t.ok(again.slice(0, 10).every((view, i) => view !== given[i]), 'the first ten made room for the last ten')
  t.ok(again.slice(10).every((view, i) => view === given[10 + i]), 'which are lent again')
  t.equal(smallSparesWaiting(), 0, 'lent again, they wait no more')

  const waiting = smallSparesWaiting()
  const out = Array.from({ length: MAX_SMALL_OUT + 1 }, () => lend(2000))
  giveBack(out[0])
  t.equal(smallSparesWaiting(), waiting, 'the oldest loan was forgotten: its give-back is ignored')
  giveBack(out[MAX_SMALL_OUT])
  t.equal(smallSparesWaiting(), waiting + 1, 'a known one waits to be lent again')
  for (const view of out.slice(1, MAX_SMALL_OUT)) giveBack(view)
  lend(2000)
})

t.test('a burst of lengths seen once does not keep a later length from being lent again', async t => {
  // A burst of varied messages (chat lines, JSON), each length seen once,
  // fills the spares; the lengths in use after it must still find theirs.
  const burst = Array.from({ length: MAX_SMALL_SPARES }, (_, i) => {
    const view = lend(500 + i)
    giveBack(view)
    return view
  })
  t.equal(smallSparesWaiting(), MAX_SMALL_SPARES)
  const first = lend(3000)
  giveBack(first)
  const second = lend(3000)
  t.equal(second, first, 'the steady stream\'s message given back is lent again')
  giveBack(second)
  t.equal(smallSparesWaiting(), MAX_SMALL_SPARES, 'in the place of the one that waited longest')
  t.not(lend(500), burst[0], 'whose length now gets a Buffer of its own')
  t.equal(lend(501), burst[1], 'while the others still wait')
})

t.test('past MAX_SMALL_OUT loans out, the oldest is forgotten, whatever was given back meanwhile', async t => {
  const out = Array.from({ length: MAX_SMALL_OUT }, () => lend(2500))
  giveBack(out[0])
  t.equal(lend(2500), out[0])
  // Out now: out[0..15] and one more, one too many: out[1] is forgotten.
  lend(2600)
  giveBack(out[MAX_SMALL_OUT - 1])
  t.equal(lend(2500), out[MAX_SMALL_OUT - 1], 'a recent loan is still known when given back')
  giveBack(out[1])
  t.not(lend(2500), out[1], 'the oldest was the one forgotten')
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

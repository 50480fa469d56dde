/**
 * The profile summary of `npm run bench:profile`: self time per function and
 * busy time per owner, from a hand-made profile whose answer is known, and
 * from a real profile of this process.
 */
import { Session } from 'node:inspector/promises'
import t from 'tap'
import { formatSummary, ownerOf, summarize, type CpuProfile } from '../../bench/profile-summary.js'

const frame = (functionName: string, url = '', lineNumber = 0): CpuProfile['nodes'][number]['callFrame'] => ({ functionName, url, lineNumber })

t.test('each frame is owned by who wrote it', async t => {
  t.equal(ownerOf('parseRead', 'file:///srv/app/node_modules/wsroutes/dist/lib/engine/connection.js'), 'dependencies', 'an installed copy is a dependency of the app')
  t.equal(ownerOf('parseRead', 'file:///work/main/dist/lib/engine/connection.js'), 'wsroutes')
  t.equal(ownerOf('buildEchoServer', 'file:///work/main/examples/echo.ts'), 'wsroutes')
  t.equal(ownerOf('Socket', 'node:net'), 'node')
  t.equal(ownerOf('lookup', 'file:///work/main/node_modules/find-my-way/index.js'), 'dependencies')
  t.equal(ownerOf('writeBuffer', ''), 'native', 'a C++ binding (here a write system call)')
  t.equal(ownerOf('(garbage collector)', ''), 'garbage collector')
  t.equal(ownerOf('(program)', ''), 'other')
})

t.test('self time is summed per function, idle left out, shares of busy time', async t => {
  const profile: CpuProfile = {
    nodes: [
      { id: 1, callFrame: frame('(root)'), children: [2, 3, 4, 5] },
      { id: 2, callFrame: frame('(idle)') },
      { id: 3, callFrame: frame('parseRead', 'file:///x/lib/engine/connection.js', 39), children: [6] },
      { id: 4, callFrame: frame('(garbage collector)') },
      { id: 5, callFrame: frame('Socket', 'node:net', 357) },
      { id: 6, callFrame: frame('writeBuffer') },
    ],
    // parseRead 300 µs in two samples, writeBuffer 500, Socket 100, GC 100, idle 1000.
    samples: [3, 6, 2, 3, 5, 4],
    timeDeltas: [100, 500, 1000, 200, 100, 100],
  }
  const summary = summarize(profile, 3)
  t.equal(summary.busyMicros, 1000)
  t.equal(summary.idleMicros, 1000, 'idle is counted apart')
  t.same(summary.byOwner, { wsroutes: 300, node: 100, dependencies: 0, native: 500, 'garbage collector': 100, other: 0 })
  t.same(summary.top, [
    { name: 'writeBuffer', micros: 500 },
    { name: 'parseRead engine/connection.js:40', micros: 300 },
    { name: 'Socket node:net:358', micros: 100 },
  ], 'the top three, with 1-based lines')
  const text = formatSummary(summary)
  t.match(text, /50\.0 %\s+native/)
  t.match(text, /30\.0 %\s+parseRead engine\/connection\.js:40/)
  t.match(text, /^busy 1 ms, idle 1 ms$/m, 'both totals head the summary')
  t.notMatch(text, /%\s+\(idle\)/, 'idle is no row of the shares')
})

t.test('a window keeps only the samples taken in it', async t => {
  const profile: CpuProfile = {
    nodes: [
      { id: 1, callFrame: frame('(root)'), children: [2, 3] },
      { id: 2, callFrame: frame('readFileUtf8') },
      { id: 3, callFrame: frame('writeBuffer') },
    ],
    // Loading the modules for 2 ms, then the load: writes at 2.5, 3 and 3.5 ms, and one more read at 4 ms.
    samples: [2, 2, 3, 3, 3, 2],
    timeDeltas: [1000, 1000, 500, 500, 500, 500],
  }
  const whole = summarize(profile)
  t.equal(whole.busyMicros, 4000, 'without a window, every sample counts')
  const load = summarize(profile, 5, { fromMs: 2, toMs: 3.5 })
  t.equal(load.busyMicros, 1500, 'the samples after 2 ms up to 3.5 ms')
  t.same(load.top, [{ name: 'writeBuffer', micros: 1500 }], 'loading the modules is left out')
  t.equal(summarize(profile, 5, { fromMs: 3 }).busyMicros, 1000, 'an open end runs to the last sample')
  t.equal(summarize(profile, 5, { toMs: 1 }).busyMicros, 1000, 'an open start counts from the first')
})

t.test('a real profile of this process adds up', async t => {
  const session = new Session()
  session.connect()
  t.teardown(() => session.disconnect())
  await session.post('Profiler.enable')
  await session.post('Profiler.start')
  const deadline = Date.now() + 50
  let spin = 0
  while (Date.now() < deadline) spin += Math.sqrt(spin + 1)
  const { profile } = await session.post('Profiler.stop') as { profile: CpuProfile }
  const summary = summarize(profile)
  const owned = Object.values(summary.byOwner).reduce((sum, micros) => sum + micros, 0)
  t.equal(owned, summary.busyMicros, 'every busy microsecond has an owner')
  t.ok(summary.busyMicros > 20_000, `the 50 ms spin is busy time (${summary.busyMicros} µs)`)
  t.ok(summary.top.length > 0)
})

/**
 * The targets section of `npm run bench` reports: each target read from the
 * report's tables and judged against its bound, the rows where a Node peer
 * is ahead, and the reasons printed only for the targets not met. Checked on
 * a hand-made report whose answer is known and on a committed one.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { checkTargets, formatTargets, readTable, TARGETS } from '../../bench/targets.js'

/** A report with the tables `checkTargets` reads, in `report.js`'s layout. */
function report (ratios: Record<string, [number, number, number, number, number]>, idle: [number, number, number, number, number, number]): string {
  const ratioRows = Object.entries(ratios).map(([scenario, [ws, bu, fastify, uws, ours]]) =>
    `| ${scenario} | ${ws.toFixed(2)} | ${bu.toFixed(2)} | ${fastify.toFixed(2)} | ${uws.toFixed(2)} | ${ours.toFixed(2)} |`)
  const spreadRows = Object.keys(ratios).map(scenario => `| ${scenario} | 3% | 4% | 5% | 6% | 7% | 12% |`)
  return [
    '# WebSocket peers', '',
    '## Ratio to cecho (msgs/s; handshakes/s for connect)', '',
    '| scenario | ws | ws-bufferutil | fastify | uws | wsroutes |',
    '|:---|---:|---:|---:|---:|---:|',
    ...ratioRows, '',
    '## Handshakes and idle connections', '',
    '| measure | cecho | ws | ws-bufferutil | fastify | uws | wsroutes |',
    '|:---|---:|---:|---:|---:|---:|---:|',
    '| connect-64: handshakes/s | 16,867 | 5,571 | 4,943 | 4,362 | 16,849 | 7,144 |',
    `| idle-5000: KiB RSS per connection | ${idle.map(v => v.toFixed(2)).join(' | ')} |`, '',
    '## Spread between repetitions ((max-min)/median of msgs/s or handshakes/s)', '',
    '| scenario | cecho | ws | ws-bufferutil | fastify | uws | wsroutes |',
    '|:---|---:|---:|---:|---:|---:|---:|',
    ...spreadRows, '',
  ].join('\n')
}

/** Ratios (ws, ws-bufferutil, fastify, uws, wsroutes) with every target met and no row behind. */
const ALL_MET: Record<string, [number, number, number, number, number]> = {
  'echo-1c-1KiB': [0.80, 0.90, 0.85, 1.00, 0.95],
  'echo-64c-1KiB': [0.44, 0.44, 0.46, 0.91, 0.82],
  'echo-64c-64KiB': [0.16, 0.32, 0.22, 0.94, 0.75],
  'echo-64c-1MiB': [0.20, 0.57, 0.37, 1.07, 0.90],
  'pipe16-64c-32B': [0.04, 0.04, 0.04, 0.34, 0.40],
  'connect-64': [0.33, 0.29, 0.26, 1.00, 0.95],
}
/** Idle KiB per connection: cecho, ws, ws-bufferutil, fastify, uws, wsroutes. */
const idleOf = (ours: number): [number, number, number, number, number, number] => [0.29, 7.2, 8.0, 11.1, 0.57, ours]

const allMet = report(ALL_MET, idleOf(2.9))

t.test('a markdown table is read by its heading, rows by their first cell', async t => {
  const table = readTable(allMet, '## Ratio to cecho')!
  t.same(table.columns, ['scenario', 'ws', 'ws-bufferutil', 'fastify', 'uws', 'wsroutes'])
  t.equal(table.rows.get('connect-64')?.get('uws'), '1.00')
  t.equal(readTable(allMet, '## No such heading'), undefined)
})

t.test('every target met, no row behind: the section says so and gives no reasons', async t => {
  const check = checkTargets(allMet)
  t.equal(check.candidate, 'wsroutes')
  t.equal(check.readings.length, TARGETS.length)
  t.same(check.readings.map(reading => reading.met), TARGETS.map(() => true))
  t.same(check.behind, [])
  const idle = check.readings.find(reading => reading.target.scenario === 'idle')!
  t.equal(idle.ours, 2.9)
  t.same(idle.bestPeer, { name: 'ws', value: 7.2 }, 'for memory the best peer is the lowest')
  const section = formatTargets(check)
  t.match(section, /^## Targets\n/)
  t.match(section, /None: every row is level with or ahead/)
  t.match(section, /Every target is met\./)
  t.notMatch(section, /\*\*no\*\*/)
})

t.test('a target exactly at its bound is met; under it is not, and its reason is printed', async t => {
  const markdown = report({
    ...ALL_MET,
    'echo-64c-1KiB': [0.44, 0.44, 0.46, 0.91, 0.80],
    'echo-64c-64KiB': [0.16, 0.32, 0.22, 0.94, 0.42],
  }, idleOf(3))
  const check = checkTargets(markdown)
  const met = Object.fromEntries(check.readings.map(reading => [reading.target.scenario, reading.met]))
  t.same(met, { 'echo-64c-1KiB': true, 'pipe16-64c-32B': true, 'echo-64c-64KiB': false, 'echo-64c-1MiB': true, 'connect-64': true, idle: true })
  const section = formatTargets(check)
  t.match(section, /\| echo, 64 connections, 64 KiB \| 0\.42 \| 0\.32 \(ws \+ bufferutil\) \| 0\.94 \| ≥ 0\.75 \| \*\*no\*\* \|/)
  const limits = section.slice(section.indexOf('### What limits'))
  t.match(limits, /\*\*echo, 64 connections, 64 KiB\*\*: the echo borrows its messages/)
  t.equal(limits.split('\n').filter(line => line.startsWith('- ')).length, 1, 'one reason: only the one target not met')
  t.match(limits, /README\.md#what-limits-the-unmet-targets/)
})

t.test('rows where a Node peer is ahead are listed with that peer and the spread', async t => {
  const markdown = report({ ...ALL_MET, 'echo-1c-1KiB': [0.80, 1.01, 0.99, 1.00, 0.92] }, idleOf(7.5))
  const check = checkTargets(markdown)
  t.same(check.behind, [
    { scenario: 'echo-1c-1KiB', ours: 0.92, peers: [{ name: 'ws-bufferutil', value: 1.01 }, { name: 'fastify', value: 0.99 }], kind: 'min', spread: { ours: '12%', cecho: '3%' } },
    { scenario: 'idle', ours: 7.5, peers: [{ name: 'ws', value: 7.2 }], kind: 'max' },
  ])
  const section = formatTargets(check)
  t.match(section, /- echo-1c-1KiB: 0\.92 against ws \+ bufferutil 1\.01, @fastify\/websocket 0\.99 \(spread between repetitions: ours 12%, cecho's 3%\)/)
  t.match(section, /- idle: 7\.50 KiB against ws 7\.20 KiB\n/)


  // A run of one repetition has no spread: the row is listed without one.
  const single = checkTargets(markdown.replace(/\| echo-1c-1KiB \| 3% .*\|$/m, '| echo-1c-1KiB | n/a | n/a | n/a | n/a | n/a | n/a |'))
  t.equal(single.behind[0].spread, undefined)
  t.match(formatTargets(single), /- echo-1c-1KiB: 0\.92 against ws \+ bufferutil 1\.01, @fastify\/websocket 0\.99\n/)
})

t.test('a report without the ratio table or our column is refused', async t => {
  t.throws(() => checkTargets('# nothing here\n'), /no "Ratio to cecho" table/)
  t.throws(() => checkTargets(allMet.replaceAll('wsroutes', 'other')), /no wsroutes column/)
})

t.test('a committed report: the 2026-12-01 14:25 run', async t => {
  const markdown = readFileSync(new URL('../../bench/results/2026-12-01-1425.md', import.meta.url), 'utf8')
  const check = checkTargets(markdown)
  const byScenario = new Map(check.readings.map(reading => [reading.target.scenario, reading]))
  t.equal(byScenario.get('pipe16-64c-32B')?.ours, 0.34)
  t.equal(byScenario.get('pipe16-64c-32B')?.met, true)
  t.equal(byScenario.get('connect-64')?.ours, 0.42)
  t.equal(byScenario.get('connect-64')?.met, false)
  t.same(byScenario.get('connect-64')?.bestPeer, { name: 'ws', value: 0.33 })
  t.equal(byScenario.get('idle')?.ours, 9.26)
  t.same(check.behind.map(row => row.scenario), ['echo-1c-1KiB', 'echo-1c-64KiB', 'echo-1c-1MiB', 'idle'])
})

/**
 * The project's performance targets, checked against one report of
 * `npm run bench`: for each target, our ratio to cecho (or idle memory),
 * the best Node peer's, uWS's, whether it is met, and for a target that is
 * not, what limits it (the measured reasons, told in full in the README).
 * Then every row where a Node peer is ahead of us. `bench/run-peers.sh`
 * appends this section to each report it writes; run by hand, it prints the
 * section for an existing report:
 *
 *   node dist/bench/targets.js bench/results/2026-12-01-1425.md
 */
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

export interface Target {
  /** The report's row name (`echo-64c-1KiB`, `connect-64`, `idle`). */
  scenario: string
  /** What the row measures, in words. */
  label: string
  /** `min`: the ratio to cecho must reach `bound`; `max`: idle KiB per connection must stay at or under it. */
  kind: 'min' | 'max'
  bound: number
  /** What limits the target where it is not met, measured (README, "What limits the unmet targets"). */
  limit: string
}

const README_LIMITS = '../../README.md#what-limits-the-unmet-targets'

export const TARGETS: readonly Target[] = [
  {
    scenario: 'echo-64c-1KiB',
    label: 'echo, 64 connections, 1 KiB',
    kind: 'min',
    bound: 0.80,
    limit: 'the target is at or above what a Node process can do at all: `bench/node-floor.ts`, which only reads and writes, reaches 0.73–0.87 of cecho, and the time goes to the kernel\'s `read` and `write` per echo and to Node\'s per-read and per-write machinery; the parser, writer and routes are a few per cent',
  },
  {
    scenario: 'pipe16-64c-32B',
    label: 'pipelined 16 × 64 connections, 32 B',
    kind: 'min',
    bound: 0.30,
    limit: 'Node\'s per-read callback and the one write per read; the parser and writer take a few per cent',
  },
  {
    scenario: 'echo-64c-64KiB',
    label: 'echo, 64 connections, 64 KiB',
    kind: 'min',
    bound: 0.75,
    limit: 'the echo borrows its messages (`binaryMessages: \'borrow\'`), so each costs one copy out of the read buffer and one into the kernel and no allocation in a steady stream, also after a burst of larger messages (the loan pool makes room for the size in use); with messages the handler owns, a fresh ArrayBuffer each, and with V8\'s default flags a mark-compact after nearly every scavenge (V8 11 still counts the freed buffers as allocated when it decides on a full collection)',
  },
  {
    scenario: 'echo-64c-1MiB',
    label: 'echo, 64 connections, 1 MiB',
    kind: 'min',
    bound: 0.85,
    limit: 'as at 64 KiB: borrowed, the copies; owned, an ArrayBuffer per message and, with V8\'s default flags, the mark-compacts that follow',
  },
  {
    scenario: 'connect-64',
    label: 'handshakes/s, 64 connections',
    kind: 'min',
    bound: 0.90,
    limit: 'Node\'s HTTP server alone (`bench/node-floor.ts`) reaches 0.66 of cecho: its HTTP parser, the `net.Socket` per connection and the system calls for the 101, the close frame and the close; Fastify\'s routing and hooks, the upgrade checks and our connection state add about half again',
  },
  {
    scenario: 'idle',
    label: 'idle memory per connection (KiB RSS, read 2 s after the last handshake)',
    kind: 'max',
    bound: 3,
    limit: 'mostly the young generation V8 grows during the burst of handshakes, not connection state; read 25 s after the burst the same connections cost 2.7–3.0 KiB; `--max-semi-space-size=2` and `keepRequest: false` bring the 2 s reading to 3.8–3.9 KiB, and the Node floor itself reads 6.8–6.9 KiB at 2 s',
  },
]

/** The Node peers of a report; uWS is C++ and cecho the yardstick. */
export const NODE_PEERS = ['ws', 'ws-bufferutil', 'fastify'] as const

/** A markdown table: its header cells and, per row name (first cell), the cells by header. */
export interface Table {
  columns: string[]
  rows: Map<string, Map<string, string>>
}

/** The first table after the heading that starts with `heading` (`## Ratio to cecho`). */
export function readTable (markdown: string, heading: string): Table | undefined {
  const lines = markdown.split('\n')
  let i = lines.findIndex(line => line.startsWith(heading))
  if (i < 0) return undefined
  while (i < lines.length && !lines[i].startsWith('|')) i++
  const cells = (line: string): string[] => line.slice(1, line.lastIndexOf('|')).split('|').map(cell => cell.trim())
  if (i >= lines.length) return undefined
  const columns = cells(lines[i])
  const rows = new Map<string, Map<string, string>>()
  // Skip the header and its |:---|---:| line.
  for (i += 2; i < lines.length && lines[i].startsWith('|'); i++) {
    const row = cells(lines[i])
    rows.set(row[0], new Map(columns.map((column, c) => [column, row[c] ?? ''])))
  }
  return { columns, rows }
}

/** The number at the start of a cell ("0.65", "9.26", "7,144 (0.42)"), or undefined for an empty one. */
function numberIn (cell: string | undefined): number | undefined {
  const match = /^-?[\d,]*\.?\d+/.exec(cell ?? '')
  return match === null ? undefined : Number(match[0].replaceAll(',', ''))
}

/** Our column: the first whose name starts with `wsroutes` (`wsroutes`, `wsroutes-data-events`). */
function candidateColumn (table: Table): string | undefined {
  return table.columns.find(column => column.startsWith('wsroutes'))
}

export interface Reading {
  target: Target
  /** Ours, the best Node peer's (with its name) and uWS's; undefined when the report lacks the row. */
  ours: number | undefined
  bestPeer: { name: string, value: number } | undefined
  uws: number | undefined
  met: boolean | undefined
}

export interface Behind {
  scenario: string
  ours: number
  /** The Node peers ahead of us on this row, with their readings. */
  peers: Array<{ name: string, value: number }>
  /** `min`: higher is better (ratios); `max`: lower is better (idle memory). */
  kind: 'min' | 'max'
  /** The row's spread between repetitions ((max-min)/median), ours and cecho's, where the report has it. */
  spread?: { ours: string, cecho: string }
}

export interface TargetsCheck {
  candidate: string
  readings: Reading[]
  behind: Behind[]
}

/** The idle row of the handshakes table (`idle-5000: KiB RSS per connection`, whatever the count). */
function idleRow (table: Table | undefined): Map<string, string> | undefined {
  if (table === undefined) return undefined
  for (const [name, row] of table.rows) if (name.startsWith('idle-') && name.includes('KiB RSS per connection')) return row
  return undefined
}

function better (kind: 'min' | 'max', a: number, b: number): boolean {
  return kind === 'min' ? a > b : a < b
}

export function checkTargets (markdown: string): TargetsCheck {
  const ratios = readTable(markdown, '## Ratio to cecho')
  const handshakes = readTable(markdown, '## Handshakes and idle connections')
  if (ratios === undefined) throw new Error('targets: the report has no "Ratio to cecho" table')
  const candidate = candidateColumn(ratios)
  if (candidate === undefined) throw new Error('targets: the report has no wsroutes column')
  const spreads = readTable(markdown, '## Spread between repetitions')
  const idle = idleRow(handshakes)
  const rowOf = (scenario: string): Map<string, string> | undefined => scenario === 'idle' ? idle : ratios.rows.get(scenario)

  const readings = TARGETS.map((target): Reading => {
    const row = rowOf(target.scenario)
    const ours = numberIn(row?.get(candidate))
    let bestPeer: Reading['bestPeer']
    for (const name of NODE_PEERS) {
      const value = numberIn(row?.get(name))
      if (value !== undefined && (bestPeer === undefined || better(target.kind, value, bestPeer.value))) bestPeer = { name, value }
    }
    const met = ours === undefined ? undefined : target.kind === 'min' ? ours >= target.bound : ours <= target.bound
    return { target, ours, bestPeer, uws: numberIn(row?.get('uws')), met }
  })

  const behind: Behind[] = []
  const rows: Array<[string, Map<string, string>, 'min' | 'max']> = [...ratios.rows].map(([name, row]) => [name, row, 'min'])
  if (idle !== undefined) rows.push(['idle', idle, 'max'])
  for (const [scenario, row, kind] of rows) {
    const ours = numberIn(row.get(candidate))
    if (ours === undefined) continue
    const peers: Behind['peers'] = []
    for (const name of NODE_PEERS) {
      const value = numberIn(row.get(name))
      if (value !== undefined && better(kind, value, ours)) peers.push({ name, value })
    }
    if (peers.length === 0) continue
    const spread = spreads?.rows.get(scenario)
    // One repetition has no spread (the report says n/a).
    const measured = spread !== undefined && /\d/.test(spread.get(candidate) ?? '')
    behind.push(!measured ? { scenario, ours, peers, kind } : { scenario, ours, peers, kind, spread: { ours: spread.get(candidate) ?? '', cecho: spread.get('cecho') ?? '' } })
  }
  return { candidate, readings, behind }
}

const PEER_NAMES: Record<string, string> = { ws: 'ws', 'ws-bufferutil': 'ws + bufferutil', fastify: '@fastify/websocket' }

function formatValue (target: Target, value: number | undefined): string {
  if (value === undefined) return '–'
  return target.scenario === 'idle' ? `${value.toFixed(2)} KiB` : value.toFixed(2)
}

/** The report section: targets, rows behind a Node peer, and what limits each target not met. */
export function formatTargets (check: TargetsCheck): string {
  const lines = [
    '## Targets',
    '',
    `Checked by \`bench/targets.ts\` against the tables above: ratios to cecho (higher is better), idle memory in KiB per connection (lower is better). "Best Node peer" is the best of ws, ws + bufferutil and @fastify/websocket in this run.`,
    '',
    `| target | ${check.candidate} | best Node peer | uWS (C++) | bound | met |`,
    '|:---|---:|---:|---:|---:|:---|',
  ]
  for (const { target, ours, bestPeer, uws, met } of check.readings) {
    const peer = bestPeer === undefined ? '–' : `${formatValue(target, bestPeer.value)} (${PEER_NAMES[bestPeer.name] ?? bestPeer.name})`
    const bound = `${target.kind === 'min' ? '≥' : '≤'} ${target.scenario === 'idle' ? `${target.bound} KiB` : target.bound.toFixed(2)}`
    lines.push(`| ${target.label} | ${formatValue(target, ours)} | ${peer} | ${formatValue(target, uws)} | ${bound} | ${met === undefined ? 'not measured' : met ? 'yes' : '**no**'} |`)
  }
  lines.push('', '### Rows where a Node peer is ahead', '')
  if (check.behind.length === 0) {
    lines.push('None: every row is level with or ahead of ws, ws + bufferutil and @fastify/websocket.')
  } else {
    for (const { scenario, ours, peers, kind, spread } of check.behind) {
      const unit = kind === 'max' ? ' KiB' : ''
      const them = peers.map(peer => `${PEER_NAMES[peer.name] ?? peer.name} ${peer.value.toFixed(2)}${unit}`).join(', ')
      const noise = spread === undefined ? '' : ` (spread between repetitions: ours ${spread.ours}, cecho's ${spread.cecho})`
      lines.push(`- ${scenario}: ${ours.toFixed(2)}${unit} against ${them}${noise}`)
    }
  }
  const unmet = check.readings.filter(reading => reading.met === false)
  lines.push('', '### What limits the targets not met', '')
  if (unmet.length === 0) {
    lines.push('Every target is met.')
  } else {
    for (const { target } of unmet) lines.push(`- **${target.label}**: ${target.limit}.`)
    lines.push('', `The measurements behind these reasons: [README, What limits the unmet targets](${README_LIMITS}).`)
  }
  return lines.join('\n') + '\n'
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2]
  if (file === undefined) {
    console.error('usage: node dist/bench/targets.js REPORT.md')
    process.exit(2)
  }
  process.stdout.write(formatTargets(checkTargets(readFileSync(file, 'utf8'))))
}

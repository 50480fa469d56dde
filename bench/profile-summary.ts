/**
 * Where a `node --cpu-prof` profile's time went: the functions with the most
 * self time, and the busy time split into who spent it (this project's
 * code, Node's own JavaScript, dependencies, native code and system calls,
 * the garbage collector). `bench/profile.sh` runs it on the echo server's
 * profile; the same file opens as a flame graph in Chrome DevTools
 * (Performance, "Load profile") or in speedscope.
 *
 *   node dist/bench/profile-summary.js PROFILE.cpuprofile [TOP] [--from-ms N] [--to-ms M]
 *
 * `--from-ms` and `--to-ms` keep only the samples taken that many
 * milliseconds after the profile started: the window in which the load ran.
 * A profile of `--cpu-prof` starts with the process, so without them the
 * summary also counts loading the modules, which on a cold file cache was
 * measured at a quarter of a 6 s handshake profile's busy time.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { pathToFileURL } from 'node:url'

/** The parts of the V8 CPU profile format (`Profiler.Profile`) read here. */
export interface CpuProfile {
  nodes: Array<{
    id: number
    callFrame: { functionName: string, url: string, lineNumber: number }
    children?: number[]
  }>
  samples: number[]
  timeDeltas: number[]
}

/** The part of a profile to summarize, in milliseconds after the profile started (its `startTime`). */
export interface SampleWindow {
  fromMs?: number
  toMs?: number
}

export type Owner = 'wsroutes' | 'node' | 'dependencies' | 'native' | 'garbage collector' | 'other'

export interface ProfileSummary {
  /** Microseconds with the thread busy: every sample but `(idle)`. */
  busyMicros: number
  /**
   * Microseconds sampled as `(idle)`. Not only the time before and after the
   * load: V8 also samples libuv's poll phase outside any JavaScript callback
   * as idle, and that is where epoll and the read system calls of direct
   * reads run. With the echo server saturated, 15–19 % of every half second
   * was idle; `perf` counts that time as the server's.
   */
  idleMicros: number
  /** Busy time per owner, in microseconds. */
  byOwner: Record<Owner, number>
  /** Functions by self time, most first. */
  top: Array<{ name: string, micros: number }>
}

/**
 * Who owns a frame, from its script's URL (V8's pseudo-frames have none):
 * this repository's lib/, examples/ and bench/ are `wsroutes`, anything
 * under node_modules/ a dependency, native frames (C++ bindings, with the
 * system calls they make) have no URL.
 */
export function ownerOf (functionName: string, url: string): Owner {
  if (functionName === '(garbage collector)') return 'garbage collector'
  if (url === '') return functionName === '(program)' || functionName === '(root)' ? 'other' : 'native'
  if (url.startsWith('node:')) return 'node'
  if (url.includes('/node_modules/')) return 'dependencies'
  if (/\/(lib|examples|bench)\//.test(url)) return 'wsroutes'
  return 'other'
}

/** A short name for a frame: the function, its file and line. */
function frameName (functionName: string, url: string, lineNumber: number): string {
  const file = url === '' ? '' : url.split('/').slice(-2).join('/')
  return `${functionName === '' ? '(anonymous)' : functionName}${file === '' ? '' : ` ${file}:${lineNumber + 1}`}`
}

export function summarize (profile: CpuProfile, topCount = 25, window: SampleWindow = {}): ProfileSummary {
  const nodes = new Map(profile.nodes.map(node => [node.id, node]))
  const selfMicros = new Map<number, number>()
  const fromMicros = (window.fromMs ?? 0) * 1000
  const toMicros = (window.toMs ?? Infinity) * 1000
  // The first time delta counts from the profile's start, each next one from
  // the sample before: a sample stands for the time just before it.
  let elapsed = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0
    elapsed += delta
    if (elapsed <= fromMicros || elapsed > toMicros) continue
    const id = profile.samples[i]
    selfMicros.set(id, (selfMicros.get(id) ?? 0) + delta)
  }
  const byOwner: Record<Owner, number> = { wsroutes: 0, node: 0, dependencies: 0, native: 0, 'garbage collector': 0, other: 0 }
  const byName = new Map<string, number>()
  let busyMicros = 0
  let idleMicros = 0
  for (const [id, micros] of selfMicros) {
    const node = nodes.get(id)
    if (node === undefined) continue
    const { functionName, url, lineNumber } = node.callFrame
    if (functionName === '(idle)') {
      idleMicros += micros
      continue
    }
    busyMicros += micros
    byOwner[ownerOf(functionName, url)] += micros
    const name = frameName(functionName, url, lineNumber)
    byName.set(name, (byName.get(name) ?? 0) + micros)
  }
  const top = [...byName].sort((a, b) => b[1] - a[1]).slice(0, topCount).map(([name, micros]) => ({ name, micros }))
  return { busyMicros, idleMicros, byOwner, top }
}

export function formatSummary (summary: ProfileSummary): string {
  const percent = (micros: number): string => summary.busyMicros === 0 ? '0.0' : (micros / summary.busyMicros * 100).toFixed(1)
  const lines = [
    `busy ${(summary.busyMicros / 1000).toFixed(0)} ms, idle ${(summary.idleMicros / 1000).toFixed(0)} ms`,
    '(under load, "idle" is mostly libuv outside JavaScript: epoll and the read system calls of direct reads, left out below)',
    '',
    'by owner (share of busy time):',
  ]
  for (const [owner, micros] of Object.entries(summary.byOwner).sort((a, b) => b[1] - a[1])) {
    lines.push(`  ${percent(micros).padStart(5)} %  ${owner}`)
  }
  lines.push('', 'self time:')
  for (const { name, micros } of summary.top) lines.push(`  ${percent(micros).padStart(5)} %  ${name}`)
  return lines.join('\n')
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { 'from-ms': { type: 'string' }, 'to-ms': { type: 'string' } },
  })
  const [file, top] = positionals
  const fromMs = values['from-ms'] === undefined ? undefined : Number(values['from-ms'])
  const toMs = values['to-ms'] === undefined ? undefined : Number(values['to-ms'])
  if (file === undefined || Number.isNaN(fromMs) || Number.isNaN(toMs)) {
    console.error('usage: node dist/bench/profile-summary.js PROFILE.cpuprofile [TOP] [--from-ms N] [--to-ms M]')
    process.exit(2)
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  console.log(formatSummary(summarize(profile, top === undefined ? 25 : Number(top), { fromMs, toMs })))
}

/**
 * A slow consumer against the server's memory: a Fastify route sends
 * TOTAL MiB in MESSAGE KiB text messages to a raw TCP client that completes
 * the handshake and then never reads. Each mode runs in its own process so
 * their RSS figures do not mix:
 *
 *   drop       maxBackpressure LIMIT KiB, backpressurePolicy 'drop': what
 *              the kernel does not take is dropped, the queue stays at the
 *              limit and RSS stays flat;
 *   unlimited  the defaults (no maxBackpressure): every message is queued
 *              in the process, and RSS grows with what was sent.
 *
 * The route sends at RATE MiB/s; RSS, the socket's queue (`bufferedAmount`),
 * what send() accepted (SENT or BUFFERED: in the kernel or queued) and what
 * it dropped are printed every second and at the end.
 *
 *   npx tsx bench/slow-consumer.ts [TOTAL=100] [MESSAGE=64] [LIMIT=1024] [RATE=20]
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import net, { type AddressInfo } from 'node:net'
import Fastify from 'fastify'
import wsroutes, { SendStatus, type WebSocket } from '../lib/index.js'

type Mode = 'drop' | 'unlimited'

interface Settings { totalMiB: number, messageKiB: number, limitKiB: number, rateMiB: number }

interface Sample { seconds: number, rss: number, arrayBuffers: number, queued: number, sentMiB: number, dropped: number }

interface Report { mode: Mode, baseline: number, samples: Sample[], final: Sample, peakQueued: number }

const MiB = 1024 * 1024
const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`

// ------------------------------------------------------------------ one mode, in a child

async function runMode (mode: Mode, settings: Settings): Promise<Report> {
  const app = Fastify({ logger: false })
  await app.register(wsroutes, mode === 'drop'
    ? { maxBackpressure: settings.limitKiB * 1024, backpressurePolicy: 'drop' }
    : {})
  let opened: (socket: WebSocket) => void
  const socketOpened = new Promise<WebSocket>(resolve => { opened = resolve })
  app.ws('/feed', { open (socket) { opened(socket) } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port

  // The client: the handshake, then not one more byte read.
  const client = net.connect(port, '127.0.0.1')
  await once(client, 'connect')
  client.write('GET /feed HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
  await once(client, 'data')
  client.pause()
  const socket = await socketOpened

  global.gc?.()
  const baseline = process.memoryUsage().rss
  // One string; every send() frames it into a fresh buffer, as real messages are.
  const message = 'x'.repeat(settings.messageKiB * 1024)
  const totalMessages = Math.ceil(settings.totalMiB * MiB / message.length)
  const perTick = Math.max(1, Math.round(settings.rateMiB * MiB / message.length / 10))
  let sent = 0
  let dropped = 0
  let peakQueued = 0
  const started = performance.now()
  const samples: Sample[] = []
  const sample = (): Sample => {
    const memory = process.memoryUsage()
    return {
      seconds: (performance.now() - started) / 1000,
      rss: memory.rss,
      arrayBuffers: memory.arrayBuffers,
      queued: socket.bufferedAmount,
      sentMiB: sent * message.length / MiB,
      dropped,
    }
  }
  const print = (s: Sample): void => {
    console.log(`  [${mode.padEnd(9)}] t=${s.seconds.toFixed(1).padStart(4)} s  rss ${mib(s.rss).padStart(10)}` +
      `  arrayBuffers ${mib(s.arrayBuffers).padStart(10)}  queued ${mib(s.queued).padStart(10)}` +
      `  accepted ${s.sentMiB.toFixed(0).padStart(4)} MiB  dropped ${String(s.dropped).padStart(5)}`)
  }
  const ticker = setInterval(() => {
    const s = sample()
    samples.push(s)
    print(s)
  }, 1000)

  // RATE MiB/s: a tenth of it every 100 ms.
  while (sent + dropped < totalMessages) {
    for (let i = 0; i < perTick && sent + dropped < totalMessages; i++) {
      if (socket.send(message) === SendStatus.DROPPED) dropped++
      else sent++
      peakQueued = Math.max(peakQueued, socket.bufferedAmount)
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  await new Promise(resolve => setTimeout(resolve, 1000))
  clearInterval(ticker)
  global.gc?.()
  const final = sample()
  print(final)
  client.destroy()
  await app.close()
  return { mode, baseline, samples, final, peakQueued }
}

// ------------------------------------------------------------------ main

if (process.argv[2] === '--mode') {
  const mode = process.argv[3] as Mode
  const settings = JSON.parse(process.argv[4]) as Settings
  const report = await runMode(mode, settings)
  process.send!(report)
  process.disconnect()
} else {
  const [totalMiB = 100, messageKiB = 64, limitKiB = 1024, rateMiB = 20] = process.argv.slice(2).map(Number)
  const settings: Settings = { totalMiB, messageKiB, limitKiB, rateMiB }
  console.log(`slow consumer: ${totalMiB} MiB in ${messageKiB} KiB messages at ${rateMiB} MiB/s to a client that never reads`)
  console.log(`node ${process.version}, ${process.platform}/${process.arch}\n`)
  const reports: Report[] = []
  for (const mode of ['drop', 'unlimited'] as const) {
    console.log(mode === 'drop' ? `maxBackpressure ${limitKiB} KiB, backpressurePolicy 'drop':` : 'no maxBackpressure (the default):')
    const child = fork(new URL(import.meta.url).pathname, ['--mode', mode, JSON.stringify(settings)], {
      execArgv: [...process.execArgv, '--expose-gc'],
    })
    const [report] = await once(child, 'message') as [Report]
    await once(child, 'exit')
    reports.push(report)
    console.log()
  }
  console.log('| mode | RSS before | peak RSS | growth | RSS at the end | peak queue | accepted by send() | dropped |')
  console.log('|---|---|---|---|---|---|---|---|')
  for (const r of reports) {
    const peak = Math.max(r.final.rss, ...r.samples.map(s => s.rss))
    const label = r.mode === 'drop' ? `drop, maxBackpressure ${limitKiB} KiB` : 'unlimited'
    console.log(`| ${label} | ${mib(r.baseline)} | ${mib(peak)} | +${mib(peak - r.baseline)} | ${mib(r.final.rss)} | ${mib(r.peakQueued)} | ${r.final.sentMiB.toFixed(1)} MiB | ${r.final.dropped} |`)
  }
}

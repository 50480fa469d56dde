/**
 * What JSON-schema messages cost: one Fastify server, two echo routes for
 * the same 1 KiB JSON message,
 *
 *   /validated  schema.message + schema.send: secure-json-parse, Ajv on the
 *               way in, Ajv + fast-json-stringify on the way out;
 *   /plain      no schemas: JSON.parse and JSON.stringify in the handler;
 *
 * loaded by a `ws` client in a child process that keeps WINDOW messages in
 * flight on each of CONNECTIONS connections until COUNT echoes came back.
 * Rounds alternate between the routes after a warm-up; the table shows the
 * median round. Throughput depends on everything else the machine runs, so
 * the server's CPU time per message is shown too (process.cpuUsage() of the
 * server process over the round): it is the steadier measure of the cost.
 *
 *   npx tsx bench/messages.ts [COUNT=200000] [CONNECTIONS=8] [WINDOW=32] [ROUNDS=5]
 */
import { fork } from 'node:child_process'
import type { AddressInfo } from 'node:net'
import { Type } from '@fastify/type-provider-typebox'
import Fastify from 'fastify'
import WebSocket from 'ws'
import wsroutes from '../lib/index.js'

interface Load { url: string, count: number, connections: number, window: number, message: string }
interface Result { seconds: number, received: number, serverCpu?: number }

// ------------------------------------------------------------------ message

const Message = Type.Object({
  type: Type.Literal('say'),
  id: Type.Integer({ minimum: 0 }),
  room: Type.String({ maxLength: 64 }),
  user: Type.Object({
    id: Type.String({ maxLength: 64 }),
    name: Type.String({ maxLength: 64 }),
    roles: Type.Array(Type.String({ maxLength: 32 }), { maxItems: 8 }),
  }, { additionalProperties: false }),
  tags: Type.Array(Type.String({ maxLength: 32 }), { maxItems: 16 }),
  sent: Type.Number(),
  text: Type.String({ maxLength: 2000 }),
}, { additionalProperties: false })

function oneKiB (): string {
  const base = {
    type: 'say',
    id: 123456,
    room: 'lobby',
    user: { id: 'u-42', name: 'Ada Lovelace', roles: ['member', 'moderator'] },
    tags: ['greeting', 'english', 'short'],
    sent: 1_700_000_000_000,
    text: '',
  }
  const empty = JSON.stringify(base).length
  const words = 'the quick brown fox jumps over the lazy dog '
  base.text = words.repeat(Math.ceil((1024 - empty) / words.length)).slice(0, 1024 - empty)
  const text = JSON.stringify(base)
  if (text.length !== 1024) throw new Error(`message is ${text.length} bytes`)
  return text
}

// ------------------------------------------------------------------- client

async function runLoad ({ url, count, connections, window, message }: Load): Promise<Result> {
  const sockets = await Promise.all(Array.from({ length: connections }, async () => {
    const ws = new WebSocket(url, { perMessageDeflate: false })
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    return ws
  }))
  const quota = Math.ceil(count / connections)
  const started = process.hrtime.bigint()
  let received = 0
  await Promise.all(sockets.map(ws => new Promise<void>((resolve, reject) => {
    let sent = 0
    let got = 0
    ws.on('message', () => {
      got++
      received++
      if (sent < quota) {
        sent++
        ws.send(message)
      }
      if (got === quota) resolve()
    })
    ws.once('close', code => reject(new Error(`closed with ${code} after ${got} echoes`)))
    for (; sent < Math.min(window, quota); sent++) ws.send(message)
  })))
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  for (const ws of sockets) {
    ws.removeAllListeners('close')
    ws.close()
  }
  return { seconds, received }
}

if (process.argv[2] === '--client') {
  process.on('message', (load: Load) => {
    runLoad(load).then(result => process.send!(result), (error: Error) => {
      console.error(error)
      process.exit(1)
    })
  })
} else {
  await main()
}

// ------------------------------------------------------------------- server

async function main (): Promise<void> {
  const [count = 200_000, connections = 8, window = 32, rounds = 5] = process.argv.slice(2).map(Number)
  const message = oneKiB()

  const app = Fastify({ logger: false })
  await app.register(wsroutes)
  app.ws('/validated', {
    schema: { message: Message, send: Message },
    message (socket, msg) { socket.send(msg) },
  })
  app.ws('/plain', {
    message (socket, data) { socket.send(JSON.stringify(JSON.parse(data as string))) },
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const base = `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  // The client runs in its own process, with this process's loader (tsx).
  const child = fork(new URL(import.meta.url).pathname, ['--client'], { execArgv: process.execArgv })
  const load = async (path: string, n: number): Promise<Result> => {
    const cpu = process.cpuUsage()
    child.send({ url: base + path, count: n, connections, window, message } satisfies Load)
    const result = await new Promise<Result>((resolve, reject) => {
      const exited = (code: number | null): void => reject(new Error(`client exited with ${code}`))
      child.once('exit', exited)
      child.once('message', result => {
        child.off('exit', exited)
        resolve(result as Result)
      })
    })
    const used = process.cpuUsage(cpu)
    return { ...result, serverCpu: (used.user + used.system) / 1e6 }
  }

  const routes = ['/validated', '/plain']
  for (const path of routes) await load(path, Math.min(count, 50_000)) // warm-up: JIT, schema compilation
  const results: Record<string, Result[]> = { '/validated': [], '/plain': [] }
  for (let round = 0; round < rounds; round++) {
    for (const path of round % 2 === 0 ? routes : [...routes].reverse()) results[path]!.push(await load(path, count))
  }
  child.kill()
  await app.close()

  const median = (list: Result[]): Result => [...list].sort((a, b) => a.seconds - b.seconds)[Math.floor(list.length / 2)]!
  const rate = (r: Result): number => r.received / r.seconds
  const cpuPerMessage = (list: Result[]): number => {
    const perMessage = list.map(r => r.serverCpu! / r.received * 1e6).sort((a, b) => a - b)
    return perMessage[Math.floor(perMessage.length / 2)]!
  }
  console.log(`${count} echoes of a ${message.length}-byte JSON message, ${connections} connections x ${window} in flight, median of ${rounds} rounds (node ${process.version})\n`)
  console.log('route        messages/s   MiB/s in   seconds   server CPU µs/msg   all rounds (msg/s)')
  for (const path of routes) {
    const m = median(results[path]!)
    const all = results[path]!.map(r => Math.round(rate(r)).toLocaleString('en-US')).join(', ')
    console.log(`${path.padEnd(12)} ${Math.round(rate(m)).toLocaleString('en-US').padStart(10)}   ${(rate(m) * message.length / 2 ** 20).toFixed(1).padStart(8)}   ${m.seconds.toFixed(2).padStart(7)}   ${cpuPerMessage(results[path]!).toFixed(1).padStart(17)}   ${all}`)
  }
  const validated = rate(median(results['/validated']!))
  const plain = rate(median(results['/plain']!))
  const cpuValidated = cpuPerMessage(results['/validated']!)
  const cpuPlain = cpuPerMessage(results['/plain']!)
  console.log(`\nvalidation overhead: ${((1 - validated / plain) * 100).toFixed(1)}% fewer messages/s, ${((cpuValidated / cpuPlain - 1) * 100).toFixed(1)}% more server CPU per message (+${(cpuValidated - cpuPlain).toFixed(1)} µs) than JSON.parse/JSON.stringify`)
}

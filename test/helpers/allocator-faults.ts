/**
 * Child process for the allocator test in direct-read.test.ts: it first
 * reads one loopback socket directly (which primes glibc's thresholds),
 * then it allocates, fills and drops 1 MiB buffers the way an
 * echo of 1 MiB messages does, one per turn of the event loop, and prints
 * the page faults per buffer after a warm-up, as JSON on stdout.
 */
import { readFileSync } from 'node:fs'
import net from 'node:net'
import { once } from 'node:events'
import { isAllocatorPrimed, readDirectly } from '../../lib/engine/direct-read.js'

const MESSAGE = 1 << 20
const WARM_UP = 200
const MEASURED = 1000

/** Minor page faults of this process so far (field 10 of /proc/self/stat). */
function minorFaults (): number {
  const stat = readFileSync('/proc/self/stat', 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7])
}

async function primeThroughADirectRead (): Promise<void> {
  const listener = net.createServer()
  listener.listen(0, '127.0.0.1')
  await once(listener, 'listening')
  const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1')
  const [server] = await once(listener, 'connection') as [net.Socket]
  readDirectly(server, () => true)
  client.destroy()
  server.destroy()
  await new Promise(resolve => listener.close(resolve))
}

await primeThroughADirectRead()

let count = 0
let faultsAtStart = 0
await new Promise<void>(resolve => {
  const step = (): void => {
    Buffer.allocUnsafe(MESSAGE).fill(count & 0xff)
    count++
    if (count === WARM_UP) faultsAtStart = minorFaults()
    if (count === WARM_UP + MEASURED) resolve()
    else setImmediate(step)
  }
  step()
})
const perBuffer = (minorFaults() - faultsAtStart) / MEASURED
process.stdout.write(JSON.stringify({ primed: isAllocatorPrimed(), faultsPerBuffer: perBuffer }) + '\n')

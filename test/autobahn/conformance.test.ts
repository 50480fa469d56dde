/**
 * The engine's proof: the Autobahn-equivalent suite, sections 1-10 with
 * their full sizes, against our own echo server (examples/echo.ts), with
 * direct reads and borrowed binary messages (as `npm run bench` measures
 * it), and with 'data' events and binary messages of its own. Every
 * case must be OK, except the three Autobahn itself grades INFORMATIONAL
 * (7.1.6, 7.13.1, 7.13.2). The same holds for the Express adapter's echo
 * server (examples/express-echo.ts), with direct reads and binary messages of
 * its own. Reports go to a temporary folder; the
 * one committed in reports/autobahn comes from `npm run autobahn`.
 */
import { mkdtempSync, rmSync, readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { once } from 'node:events'
import { buildEchoServer } from '../../examples/echo.js'
import { buildExpressEchoServer } from '../../examples/express-echo.js'
import { runSuite } from './run.js'

const INFORMATIONAL_BY_DESIGN = ['7.1.6', '7.13.1', '7.13.2']

async function expectAllOk (t: Test, url: string, agent: string): Promise<void> {
  const reportDir = mkdtempSync(join(tmpdir(), 'wsroutes-autobahn-'))
  t.teardown(() => rmSync(reportDir, { recursive: true, force: true }))

  const suite = await runSuite({ url, agent, reportDir })
  t.comment(suite.summary)

  t.equal(suite.results.length, 301, 'all 301 cases of sections 1-10 ran')
  const notOk = suite.results.filter(r => r.behavior !== 'OK' && !INFORMATIONAL_BY_DESIGN.includes(r.id))
  t.same(notOk.map(r => `${r.id}: ${r.behavior}`), [], 'every case but the informational ones is OK')
  const badClose = suite.results.filter(r => r.behaviorClose !== 'OK' && r.behaviorClose !== 'INFORMATIONAL')
  t.same(badClose.map(r => `${r.id}: ${r.behaviorClose}`), [], 'every closing handshake is OK')
  for (const id of INFORMATIONAL_BY_DESIGN) {
    t.equal(suite.results.find(r => r.id === id)?.behavior, 'INFORMATIONAL', `${id} is informational by design`)
  }
  t.ok(suite.passed, 'the run passes the gate (no FAILED, no unlisted NON-STRICT, no UNIMPLEMENTED)')

  const index = JSON.parse(readFileSync(join(reportDir, 'index.json'), 'utf8'))
  t.equal(Object.keys(index[agent]).length, 301, 'index.json lists every case under the agent')
}

for (const directReads of [false, true]) {
  const name = directReads ? 'wsroutes on Fastify with directReads, borrowed binary messages' : 'wsroutes on Fastify'
  t.test(`${name} passes Autobahn 1-10, every case OK`, { timeout: 600_000 }, async t => {
    // Explicit either way, so DIRECT_READS or BINARY_MESSAGES in the environment does not change what runs.
    const app = await buildEchoServer({ directReads, binaryMessages: directReads ? 'borrow' : 'own' })
    await app.listen({ host: '127.0.0.1', port: 0 })
    t.teardown(() => app.close())
    const { port } = app.server.address() as AddressInfo
    await expectAllOk(t, `ws://127.0.0.1:${port}/`, directReads ? 'wsroutes-direct-reads' : 'wsroutes')
  })
}

t.test('wsroutes on Express passes Autobahn 1-10, every case OK', { timeout: 600_000 }, async t => {
  const { server, ws } = buildExpressEchoServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    await ws.close()
    await new Promise(resolve => server.close(resolve))
  })
  const { port } = server.address() as AddressInfo
  await expectAllOk(t, `ws://127.0.0.1:${port}/`, 'wsroutes-express')
})

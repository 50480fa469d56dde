/**
 * The published types: what an application gets from `dist/`, not from the
 * sources. The type tests in `types/` import `lib/` directly, where every
 * module is part of the program; an application sees only the declaration
 * files, which leave out imports used for their values alone. A module
 * augmentation reached only through such an import (`app.injectWS` was one)
 * then silently disappears. This test emits the declarations as `npm run
 * build` does, into a package of their own named `wsroutes`, and compiles an
 * application against them through the package's `exports`.
 */
import { execFile } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

const run = promisify(execFile)
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
// Inside the repository, so that fastify, express and @types/node resolve
// from its node_modules as they would from an application's.
const packageDir = join(root, 'node_modules', '.cache', `wsroutes-declarations-${process.pid}`)

/** An application written against the package: every line must compile, and each `@ts-expect-error` must be needed. */
const APPLICATION = `
import Fastify from 'fastify'
import express from 'express'
import { createServer } from 'node:http'
import wsroutes, { CloseCodes, SendStatus, type InjectedSocket, type WebSocket } from 'wsroutes'
import { wsExpress } from 'wsroutes/express'
import { acceptKey, Connection, giveBack } from 'wsroutes/engine'

const app = Fastify()
await app.register(wsroutes, { maxPayload: 1024 * 1024 })

app.ws<{ Params: { room: string } }>('/chat/:room', {
  open (socket, request) {
    const room: string = request.params.room
    socket.send(room)
  },
  message (socket, data, isBinary) {
    const status: SendStatus = socket.send(data, { binary: isBinary })
    if (status === SendStatus.DROPPED) socket.close(CloseCodes.TRY_AGAIN_LATER, 'busy')
  },
  close (socket, code, reason) {
    const text: string = reason
    socket.request.log.info({ code, text }, 'left')
  },
})

app.route({ method: 'GET', url: '/feed', handler: async () => ({ hint: 'ws' }), ws: { message () {} } })

const client: InjectedSocket = await app.injectWS('/chat/lobby', { headers: { authorization: 'x' } })
client.send('hi')

function closeWith (socket: WebSocket): void {
  socket.close(1000, 'done')
  socket.close(4000)
  // @ts-expect-error 1005 is reserved: no endpoint may send it
  socket.close(1005)
  // @ts-expect-error 999 is no close code
  socket.close(999)
}

const expressApp = express()
const ws = wsExpress(expressApp, createServer(expressApp))
expressApp.ws('/echo', { message (socket, data) { socket.send(data) } })
const expressClient = await ws.injectWS('/echo')

const key: string = acceptKey('dGhlIHNhbXBsZSBub25jZQ==')
export { closeWith, Connection, giveBack, key, expressClient }
`

/**
 * An older CommonJS application: `moduleResolution: node` knows no
 * `exports`, and finds the subpaths through `typesVersions`.
 */
const COMMONJS_APPLICATION = `
import Fastify from 'fastify'
import express from 'express'
import { createServer } from 'node:http'
import wsroutes, { CloseCodes, type WebSocket } from 'wsroutes'
import { wsExpress } from 'wsroutes/express'
import { acceptKey } from 'wsroutes/engine'

export async function main (): Promise<void> {
  const app = Fastify()
  await app.register(wsroutes)
  app.ws('/echo', { message (socket, data) { socket.send(data) } })
  const expressApp = express()
  wsExpress(expressApp, createServer(expressApp))
  expressApp.ws('/echo', { open (socket: WebSocket) { socket.close(CloseCodes.NORMAL) } })
  acceptKey('dGhlIHNhbXBsZSBub25jZQ==')
}
`

t.test('an application compiles against the declarations in dist/', async t => {
  t.teardown(() => rmSync(packageDir, { recursive: true, force: true }))
  mkdirSync(join(packageDir, 'app'), { recursive: true })
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string, exports: unknown }
  const { types, typesVersions } = manifest as unknown as Record<string, unknown>
  writeFileSync(join(packageDir, 'package.json'), JSON.stringify({ name: manifest.name, type: 'module', types, typesVersions, exports: manifest.exports }))
  // The library's declarations, laid out as the build lays them out (dist/lib/…).
  writeFileSync(join(packageDir, 'tsconfig.lib.json'), JSON.stringify({
    extends: join(root, 'tsconfig.json'),
    compilerOptions: { noEmit: false, emitDeclarationOnly: true, sourceMap: false, rootDir: root, outDir: join(packageDir, 'dist') },
    include: [join(root, 'lib')],
  }))
  await run(process.execPath, [tsc, '-p', join(packageDir, 'tsconfig.lib.json')], { cwd: root })
  const indexTypes = readFileSync(join(packageDir, 'dist', 'lib', 'index.d.ts'), 'utf8')
  t.match(indexTypes, /export default wsroutes/, 'the declarations were emitted where exports points')

  writeFileSync(join(packageDir, 'app', 'app.ts'), APPLICATION)
  writeFileSync(join(packageDir, 'tsconfig.app.json'), JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, types: ['node'] },
    files: [join(packageDir, 'app', 'app.ts')],
  }))
  const result = await run(process.execPath, [tsc, '-p', join(packageDir, 'tsconfig.app.json')], { cwd: packageDir })
    .then(() => ({ ok: true, output: '' }), (error: { stdout?: string }) => ({ ok: false, output: error.stdout ?? String(error) }))
  t.ok(result.ok, `the application compiles against the published types${result.ok ? '' : `:\n${result.output}`}`)

  // No self-reference by name without `exports`: installed, as an application has it.
  mkdirSync(join(packageDir, 'app', 'node_modules'))
  symlinkSync(packageDir, join(packageDir, 'app', 'node_modules', 'wsroutes'), 'dir')
  writeFileSync(join(packageDir, 'app', 'commonjs.ts'), COMMONJS_APPLICATION)
  writeFileSync(join(packageDir, 'tsconfig.commonjs.json'), JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'CommonJS', moduleResolution: 'node10', esModuleInterop: true, strict: true, noEmit: true, skipLibCheck: true, types: ['node'] },
    files: [join(packageDir, 'app', 'commonjs.ts')],
  }))
  const commonjs = await run(process.execPath, [tsc, '-p', join(packageDir, 'tsconfig.commonjs.json')], { cwd: packageDir })
    .then(() => ({ ok: true, output: '' }), (error: { stdout?: string }) => ({ ok: false, output: error.stdout ?? String(error) }))
  t.ok(commonjs.ok, `a CommonJS application with moduleResolution node compiles too${commonjs.ok ? '' : `:\n${commonjs.output}`}`)
})

/**
 * bench/node-with-flags.sh, which `NODE_FLAGS=… npm run bench` puts first on
 * PATH so that every Node server of the run gets the same flags: the node it
 * writes must run the real node with those flags ahead of the caller's
 * arguments, and pass the caller's arguments through unchanged.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import type { TestContext } from '../helpers/tap.js'

const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'node-with-flags.sh')

function shimDir (t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'wsroutes-node-flags-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('a server started as `node` gets the flags, and its own arguments as given', async t => {
  const dir = shimDir(t)
  execFileSync('bash', [script, dir, '--no-concurrent-array-buffer-sweeping', '--stack-size=900'])
  const output = execFileSync('node', ['-e', 'console.log(JSON.stringify([process.execArgv, process.argv.slice(1)]))', 'plain', 'with space', '$HOME'], {
    env: { ...process.env, PATH: `${dir}${delimiter}${process.env.PATH ?? ''}` },
    encoding: 'utf8',
  })
  const [execArgv, argv] = JSON.parse(output) as [string[], string[]]
  t.same(execArgv.slice(0, 2), ['--no-concurrent-array-buffer-sweeping', '--stack-size=900'], 'the flags come first')
  t.same(argv, ['plain', 'with space', '$HOME'], 'the arguments arrive unsplit and unexpanded')
})

t.test('without flags it refuses, and writes nothing', async t => {
  const dir = shimDir(t)
  const result = spawnSync('bash', [script, dir], { encoding: 'utf8' })
  t.equal(result.status, 2)
  t.match(result.stderr, /no flags given/)
  t.equal(spawnSync('test', ['-e', join(dir, 'node')]).status, 1, 'no node was written')
})

/**
 * The documentation's links: every relative link in the Markdown files of
 * the repository points at a file that exists, and every `#anchor` at a
 * heading of its target (GitHub's slugs: lower case, punctuation dropped,
 * spaces to hyphens). The README and bench/README.md link into each other's
 * sections, and a renamed heading would otherwise break them silently.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const SKIPPED_DIRECTORIES = new Set(['node_modules', 'dist', '.git', 'reports', 'profiles'])

function markdownFiles (directory: string): string[] {
  const files: string[] = []
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      if (!SKIPPED_DIRECTORIES.has(entry.name) && !entry.name.startsWith('.')) files.push(...markdownFiles(join(directory, entry.name)))
    } else if (entry.name.endsWith('.md')) {
      files.push(join(directory, entry.name))
    }
  }
  return files
}

/** GitHub's anchor for a heading. */
function slugOf (heading: string): string {
  return heading.trim().toLowerCase()
    .replace(/`/g, '')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-')
}

function anchorsOf (markdown: string): Set<string> {
  const anchors = new Set<string>()
  const seen = new Map<string, number>()
  let inFence = false
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) inFence = !inFence
    const heading = inFence ? null : /^#{1,6}\s+(.*)$/.exec(line)
    if (heading === null) continue
    const slug = slugOf(heading[1])
    const count = seen.get(slug) ?? 0
    seen.set(slug, count + 1)
    anchors.add(count === 0 ? slug : `${slug}-${count}`)
  }
  return anchors
}

/** Links outside code: `[text](target)`, the target without a title. */
function linksOf (markdown: string): string[] {
  const prose = markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '``')
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map(match => match[1])
}

t.test('slugs follow GitHub', async t => {
  t.equal(slugOf('What limits the unmet targets'), 'what-limits-the-unmet-targets')
  t.equal(slugOf('Large messages: one V8 flag'), 'large-messages-one-v8-flag')
  t.equal(slugOf('`app.ws(path, options)` and the `ws` route option'), 'appwspath-options-and-the-ws-route-option')
  t.equal(slugOf('One connection × 1 MiB'), 'one-connection--1-mib')
})

/** The links into the repository (no scheme: not `https:`, `mailto:`, …). */
function relativeLinksOf (markdown: string): string[] {
  return linksOf(markdown).filter(link => !/^[a-z]+:/i.test(link))
}

const linked = new Map<string, string[]>()
for (const file of markdownFiles(root)) linked.set(relative(root, file), relativeLinksOf(readFileSync(file, 'utf8')))

t.test('the documents that link into each other have relative links to check', async t => {
  // Otherwise a broken link extraction would leave every file below without a test, and the suite green.
  for (const name of ['README.md', join('bench', 'README.md')]) {
    t.ok((linked.get(name)?.length ?? 0) > 0, `${name} has relative links`)
  }
})

for (const [name, links] of linked) {
  // A file without relative links (a bench result) has nothing to check here.
  if (links.length === 0) continue
  const file = join(root, name)
  t.test(`the links of ${name} resolve`, async t => {
    for (const link of links) {
      const [path, anchor] = link.split('#') as [string, string | undefined]
      const target = path === '' ? file : join(dirname(file), decodeURIComponent(path))
      t.ok(existsSync(target), `${link}: ${relative(root, target)} exists`)
      if (anchor !== undefined && anchor !== '' && target.endsWith('.md') && existsSync(target)) {
        t.ok(anchorsOf(readFileSync(target, 'utf8')).has(anchor), `${link}: #${anchor} is a heading of ${relative(root, target)}`)
      }
    }
  })
}

/**
 * The chat page (examples/chat.html) in a real browser: Debian's Chromium,
 * driven by playwright-core. Two pages join the same room; what one says the
 * other shows. CI installs Chromium (.ci/setup-services.sh); without it this
 * test fails rather than skips.
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { chromium, type Browser, type Page } from 'playwright-core'
import { buildChatServer } from '../../examples/chat.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const WAIT = 15_000

async function join (page: Page, url: string, room: string, name: string): Promise<void> {
  await page.goto(url)
  await page.getByLabel('Room', { exact: true }).fill(room)
  await page.getByLabel('Name', { exact: true }).fill(name)
  await page.getByRole('button', { name: 'Join' }).click()
  await page.getByRole('status').filter({ hasText: `In room ${room} as ${name}.` }).waitFor({ timeout: WAIT })
}

t.test('two pages in one room chat through the page', { timeout: 120_000 }, async t => {
  if (!existsSync(CHROMIUM)) {
    t.fail(`Chromium is missing at ${CHROMIUM}: install it (bash .ci/setup-services.sh, or apt-get install chromium) or set CHROMIUM_PATH`)
    return
  }

  const app = await buildChatServer()
  let browser: Browser | undefined
  // The browser first, so its pages close their sockets before the server goes.
  t.teardown(async () => {
    await browser?.close()
    await app.close()
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/`

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  })

  const ann = await browser.newPage()
  const bob = await browser.newPage()
  const errors: string[] = []
  for (const page of [ann, bob]) {
    page.on('pageerror', error => errors.push(error.message))
    page.on('console', message => { if (message.type() === 'error') errors.push(message.text()) })
  }
  const log = (page: Page) => page.getByRole('list', { name: 'Messages' })

  await join(ann, url, 'garden', 'Ann')
  await log(ann).getByText('Ann joined').waitFor({ timeout: WAIT })
  await join(bob, url, 'garden', 'Bob')
  await log(bob).getByText('Bob joined').waitFor({ timeout: WAIT })
  await log(ann).getByText('Bob joined').waitFor({ timeout: WAIT })
  t.pass('both pages show the join notices')

  // A name someone in the room has: the page says so and offers the form again.
  const copycat = await browser.newPage()
  copycat.on('pageerror', error => errors.push(error.message))
  await copycat.goto(url)
  await copycat.getByLabel('Room', { exact: true }).fill('garden')
  await copycat.getByLabel('Name', { exact: true }).fill('bob')
  await copycat.getByRole('button', { name: 'Join' }).click()
  await copycat.getByRole('status').filter({ hasText: 'Someone in garden is already called bob: pick another name.' }).waitFor({ timeout: WAIT })
  t.ok(await copycat.getByRole('button', { name: 'Join' }).isEnabled(), 'the join form is back')
  t.equal(await log(ann).getByText('bob joined', { exact: true }).count(), 0, 'the room saw no join')
  await copycat.close()

  // Markup in a message is shown as text, not parsed.
  const text = 'hello <b>Ann</b> 🌱'
  await bob.getByRole('textbox', { name: 'Message' }).fill(text)
  await bob.getByRole('button', { name: 'Send' }).click()
  const said = log(ann).locator('li.said', { hasText: text })
  await said.waitFor({ timeout: WAIT })
  t.equal(await said.innerText(), `Bob: ${text}`, 'Ann sees what Bob said, from Bob')
  t.equal(await said.locator('b').count(), 0, 'no markup came through as HTML')
  await log(bob).locator('li.said', { hasText: text }).waitFor({ timeout: WAIT })
  t.pass('Bob sees his own message')
  t.equal(await bob.getByRole('textbox', { name: 'Message' }).inputValue(), '', 'the input is cleared after sending')

  await bob.getByRole('button', { name: 'Leave' }).click()
  await log(ann).getByText('Bob left').waitFor({ timeout: WAIT })
  await bob.getByRole('status').filter({ hasText: 'Disconnected (code 1000' }).waitFor({ timeout: WAIT })
  t.pass('leaving shows a left notice to the other page')

  t.same(errors, [], 'no script errors on either page')
})

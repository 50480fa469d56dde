/**
 * The chat example (examples/chat.ts) with real `ws` clients: rooms,
 * broadcasts, notices, the error envelope of invalid messages, and the page.
 */
import t from 'tap'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { buildChatServer } from '../../examples/chat.js'
import type { TestContext } from '../helpers/tap.js'
import { refusedWs } from '../interop/helpers.js'

async function start (t: TestContext): Promise<{ app: FastifyInstance, http: string, ws: string }> {
  const app = await buildChatServer()
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as AddressInfo
  return { app, http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}` }
}

const envelope = (code: string, message: string): unknown => ({ type: 'error', error: { code, message } })

/** A chat client whose messages queue up for `next()`. */
class Client {
  private readonly queue: unknown[] = []
  private readonly waiters: Array<() => void> = []
  readonly closed: Promise<{ code: number, reason: string }>

  private constructor (readonly ws: WebSocket) {
    ws.on('message', data => {
      this.queue.push(JSON.parse(data.toString()))
      this.waiters.shift()?.()
    })
    this.closed = new Promise(resolve => ws.once('close', (code, reason) => {
      resolve({ code, reason: reason.toString() })
      for (const wake of this.waiters.splice(0)) wake()
    }))
  }

  static async open (t: TestContext, url: string): Promise<Client> {
    const ws = new WebSocket(url)
    t.teardown(() => { if (ws.readyState !== WebSocket.CLOSED) ws.terminate() })
    const client = new Client(ws)
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    return client
  }

  /** Opens a client in `room` and joins as `name`, consuming its own `joined` notice. */
  static async join (t: TestContext, base: string, room: string, name: string): Promise<Client> {
    const client = await Client.open(t, `${base}/chat/${room}`)
    client.send({ type: 'join', name })
    const notice = await client.next()
    if (JSON.stringify(notice) !== JSON.stringify({ type: 'joined', name })) throw new Error(`expected my own joined notice, got ${JSON.stringify(notice)}`)
    return client
  }

  send (data: unknown): void {
    this.ws.send(typeof data === 'string' ? data : JSON.stringify(data))
  }

  /** The next message, parsed; fails after `ms`. */
  async next (ms = 5000): Promise<unknown> {
    const deadline = Date.now() + ms
    while (this.queue.length === 0) {
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error('closed before the next message')
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no message within ${ms} ms`)
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
    return this.queue.shift()
  }

  /**
   * Everything that arrived and was not read yet, after a round trip through
   * the server (a bad message, answered by an error envelope), so nothing
   * sent earlier can still be in flight.
   */
  async rest (): Promise<unknown[]> {
    this.send('round trip')
    const marker = JSON.stringify(envelope('WS_ERR_INVALID_JSON', 'message is not valid JSON'))
    const seen: unknown[] = []
    for (;;) {
      const message = await this.next()
      if (JSON.stringify(message) === marker) return seen
      seen.push(message)
    }
  }
}

t.test('join notices and says go to the room, and only to the room', async t => {
  const { ws } = await start(t)
  const ann = await Client.join(t, ws, 'A', 'ann')
  const bob = await Client.join(t, ws, 'A', 'bob')
  t.same(await ann.next(), { type: 'joined', name: 'bob' }, 'ann hears bob join')
  const cy = await Client.join(t, ws, 'B', 'cy')

  bob.send({ type: 'say', text: 'hello A' })
  t.same(await ann.next(), { type: 'said', from: 'bob', text: 'hello A' })
  t.same(await bob.next(), { type: 'said', from: 'bob', text: 'hello A' }, 'the sender gets its own message back')

  cy.send({ type: 'say', text: 'hello B' })
  t.same(await cy.next(), { type: 'said', from: 'cy', text: 'hello B' })

  t.same(await ann.rest(), [], 'room A heard nothing from room B')
  t.same(await bob.rest(), [])
  t.same(await cy.rest(), [], 'room B heard nothing from room A, not even the joins')
})

t.test('the text of a message is sent as it was said', async t => {
  const { ws } = await start(t)
  const ann = await Client.join(t, ws, 'room_1', 'Ann <b>')
  const text = '<script>alert(1)</script> "quotes" \\ é 🎉 ' + 'x'.repeat(400)
  ann.send({ type: 'say', text })
  t.same(await ann.next(), { type: 'said', from: 'Ann <b>', text })
})

t.test('invalid messages get the error envelope and the connection stays open', async t => {
  const { ws } = await start(t)
  const ann = await Client.join(t, ws, 'A', 'ann')
  const bob = await Client.join(t, ws, 'A', 'bob')
  await ann.next()

  bob.send({ type: 'join', name: 'n'.repeat(33) })
  t.same(await bob.next(), envelope('WS_ERR_INVALID_MESSAGE', 'message does not match the schema'), 'name over 32 characters')
  bob.send({ type: 'join', name: '   ' })
  t.same(await bob.next(), envelope('WS_ERR_INVALID_MESSAGE', 'message does not match the schema'), 'a name of spaces only')
  bob.send({ type: 'say', text: 't'.repeat(501) })
  t.same(await bob.next(), envelope('WS_ERR_INVALID_MESSAGE', 'message does not match the schema'), 'text over 500 characters')
  bob.send({ type: 'say' })
  t.same(await bob.next(), envelope('WS_ERR_INVALID_MESSAGE', 'message does not match the schema'), 'text missing')
  bob.send({ type: 'dance' })
  t.same(await bob.next(), envelope('WS_ERR_UNKNOWN_MESSAGE_TYPE', 'unknown message type'), 'unknown type')
  bob.send({ text: 'no type' })
  t.same(await bob.next(), envelope('WS_ERR_UNKNOWN_MESSAGE_TYPE', 'unknown message type'), 'no type')
  bob.send('{"type": "say", ')
  t.same(await bob.next(), envelope('WS_ERR_INVALID_JSON', 'message is not valid JSON'), 'bad JSON')
  bob.ws.send(Buffer.from(JSON.stringify({ type: 'say', text: 'binary' })))
  t.same(await bob.next(), envelope('WS_ERR_BINARY_NOT_ALLOWED', 'binary messages are not accepted'), 'binary')

  t.equal(bob.ws.readyState, WebSocket.OPEN, 'still open')
  bob.send({ type: 'say', text: 'still here' })
  t.same(await bob.next(), { type: 'said', from: 'bob', text: 'still here' })
  t.same(await ann.next(), { type: 'said', from: 'bob', text: 'still here' })
  t.same(await ann.rest(), [], 'the others saw none of the errors')
})

t.test('saying before joining, or joining twice, gets an envelope with a chat code', async t => {
  const { ws } = await start(t)
  const ann = await Client.open(t, `${ws}/chat/A`)
  ann.send({ type: 'say', text: 'anyone?' })
  t.same(await ann.next(), envelope('CHAT_NOT_JOINED', 'join the room first'))
  ann.send({ type: 'join', name: 'ann' })
  t.same(await ann.next(), { type: 'joined', name: 'ann' })
  ann.send({ type: 'join', name: 'ann again' })
  t.same(await ann.next(), envelope('CHAT_ALREADY_JOINED', 'already joined'))
  ann.send({ type: 'say', text: 'now' })
  t.same(await ann.next(), { type: 'said', from: 'ann', text: 'now' })
})

t.test('a name someone in the room has is refused, compared trimmed and case-insensitively', async t => {
  const { ws } = await start(t)
  const ann = await Client.join(t, ws, 'A', 'Ann')
  const other = await Client.open(t, `${ws}/chat/A`)
  for (const name of ['Ann', 'ann', '  ANN ']) {
    other.send({ type: 'join', name })
    t.same(await other.next(), envelope('CHAT_NAME_TAKEN', 'someone in this room has that name'), JSON.stringify(name))
  }
  t.same(await ann.rest(), [], 'the room heard nothing of it')
  other.send({ type: 'say', text: 'hi' })
  t.same(await other.next(), envelope('CHAT_NOT_JOINED', 'join the room first'), 'a refused join leaves the socket outside the room')

  const elsewhere = await Client.join(t, ws, 'B', 'ann')
  t.ok(elsewhere, 'the same name is free in another room')

  ann.ws.close(1000)
  await ann.closed
  other.send({ type: 'join', name: 'ANN' })
  t.same(await other.next(), { type: 'joined', name: 'ANN' }, 'and free again once its owner left')
})

t.test('a socket that has not joined hears nothing', async t => {
  const { ws } = await start(t)
  const lurker = await Client.open(t, `${ws}/chat/A`)
  const ann = await Client.join(t, ws, 'A', 'ann')
  ann.send({ type: 'say', text: 'hi' })
  await ann.next()
  t.same(await lurker.rest(), [])
})

t.test('leaving sends left to the rest of the room', async t => {
  const { ws } = await start(t)
  const ann = await Client.join(t, ws, 'A', 'ann')
  const bob = await Client.join(t, ws, 'A', 'bob')
  await ann.next()
  bob.ws.close(1000, 'bye')
  t.equal((await bob.closed).code, 1000)
  t.same(await ann.next(), { type: 'left', name: 'bob' })

  const cy = await Client.join(t, ws, 'A', 'cy')
  t.same(await ann.next(), { type: 'joined', name: 'cy' })
  cy.ws.terminate()
  t.same(await ann.next(), { type: 'left', name: 'cy' }, 'also when the connection just drops')

  ann.send({ type: 'say', text: 'alone' })
  t.same(await ann.next(), { type: 'said', from: 'ann', text: 'alone' }, 'the ones who left are not sent to')
})

t.test('a room name outside [A-Za-z0-9_-]{1,32} is refused with 400 before the upgrade', async t => {
  const { ws } = await start(t)
  for (const room of ['a%20b', 'x'.repeat(33), '%C3%A9']) {
    const { status } = await refusedWs(`${ws}/chat/${room}`)
    t.equal(status, 400, room)
  }
})

t.test('app.close() sends 1001 to the clients', async t => {
  const app = await buildChatServer()
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const ann = await Client.join(t, `ws://127.0.0.1:${port}`, 'A', 'ann')
  await app.close()
  t.same(await ann.closed, { code: 1001, reason: 'server shutting down' })
})

t.test('GET / serves the page', async t => {
  const { http, app } = await start(t)
  const response = await fetch(`${http}/`)
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type'), /^text\/html; charset=utf-8/)
  const html = await response.text()
  t.match(html, /<title>wsroutes chat<\/title>/)
  t.match(html, /new WebSocket\(/)
  t.notMatch(html, /(src|href)="(https?:)?\/\//, 'no external resources')

  const plain = await app.inject({ method: 'GET', url: '/chat/A' })
  t.equal(plain.statusCode, 426, 'a plain GET to the chat route asks for an upgrade')
})

/**
 * Interop with undici's WebSocket (the WHATWG client Node ships): messages
 * of every length encoding, server ping, close codes both ways,
 * subprotocols, maxPayload and terminate.
 */
import t from 'tap'
import { WebSocket, type CloseEvent, type MessageEvent } from 'undici'
import { unique, type Teardown } from './helpers.js'
import { SIZES, SMALL_LIMIT, pattern, startInteropServer, text, type InteropServer } from './server.js'

let server: InteropServer
t.before(async () => { server = await startInteropServer() })
t.teardown(() => server.app.close())

/** An undici client with its messages queued from the start, and its close event. */
interface Client {
  ws: WebSocket
  next (): Promise<string | ArrayBuffer>
  closed: Promise<CloseEvent>
}

function connect (t: Teardown, path: string, protocols?: string | string[]): { client: Client, opened: Promise<void> } {
  const ws = new WebSocket(server.url + path, protocols)
  ws.binaryType = 'arraybuffer'
  const messages: Array<string | ArrayBuffer> = []
  const waiters: Array<(data: string | ArrayBuffer) => void> = []
  ws.addEventListener('message', (event: MessageEvent) => {
    const waiter = waiters.shift()
    if (waiter !== undefined) waiter(event.data as string | ArrayBuffer)
    else messages.push(event.data as string | ArrayBuffer)
  })
  const closed = new Promise<CloseEvent>(resolve => ws.addEventListener('close', resolve))
  const opened = new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve())
    ws.addEventListener('error', () => reject(new Error('the connection failed')))
  })
  opened.catch(() => {})
  t.teardown(() => {
    if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close()
    return closed
  })
  const next = (): Promise<string | ArrayBuffer> => {
    const message = messages.shift()
    if (message !== undefined) return Promise.resolve(message)
    return new Promise(resolve => waiters.push(resolve))
  }
  return { client: { ws, next, closed }, opened }
}

async function client (t: Teardown, path: string, protocols?: string | string[]): Promise<Client> {
  const { client, opened } = connect(t, path, protocols)
  await opened
  return client
}

t.test('text and binary messages of every length encoding echo byte for byte', async t => {
  const { ws, next } = await client(t, '/echo')
  for (const size of SIZES) {
    const bytes = pattern(size, size + 3)
    ws.send(bytes)
    const binary = await next()
    t.type(binary, ArrayBuffer, `${size} B binary stays binary`)
    t.ok(Buffer.from(binary as ArrayBuffer).equals(bytes), `${size} B binary is echoed exactly`)

    const str = text(size)
    ws.send(str)
    const reply = await next()
    t.type(reply, 'string', `${size} B text stays text`)
    t.equal(reply, str, `${size} B text is echoed exactly`)
  }
  const unicode = 'ünïcödé € 😀'
  ws.send(unicode)
  t.equal(await next(), unicode)
})

t.test('a server ping is answered and the pong reaches the route', async t => {
  const path = unique('/ping')
  const { ws } = await client(t, path)
  ws.send('undici?')
  const [data] = await server.next('pong', path)
  t.equal((data as Buffer).toString(), 'undici?')
})

t.test('client close codes reach the close handler and are echoed', async t => {
  for (const [code, reason] of [[1000, 'bye'], [4000, 'four thousand']] as const) {
    const path = unique('/echo')
    const { ws, closed } = await client(t, path)
    ws.close(code, reason)
    const [serverCode, serverReason] = await server.next('close', path)
    t.equal(serverCode, code, `the server sees ${code}`)
    t.equal(serverReason, reason)
    const event = await closed
    t.equal(event.code, code, 'the client sees the code echoed')
    t.equal(event.wasClean, true)
  }
})

t.test('socket.close(4001, "bye") reaches the client', async t => {
  const path = unique('/server-close')
  const { ws, closed } = await client(t, path)
  ws.send('4001 bye')
  const event = await closed
  t.equal(event.code, 4001)
  t.equal(event.reason, 'bye')
  t.equal(event.wasClean, true)
  const [code] = await server.next('close', path)
  t.equal(code, 4001)
})

t.test('subprotocols', async t => {
  t.test('offering none', async t => {
    const path = unique('/protocols')
    const { ws, next } = await client(t, path)
    t.equal(ws.protocol, '')
    t.equal(await next(), 'protocol:')
  })
  t.test('matching', async t => {
    const path = unique('/protocols')
    const { ws, next } = await client(t, path, ['superchat', 'chat'])
    t.equal(ws.protocol, 'chat')
    t.equal(await next(), 'protocol:chat')
    const [protocol] = await server.next('open', path)
    t.equal(protocol, 'chat')
  })
  t.test('a selector function', async t => {
    const path = unique('/protocol-fn')
    const { ws, next } = await client(t, path, ['v2', 'v3'])
    t.equal(ws.protocol, 'v3')
    t.equal(await next(), 'protocol:v3')
  })
  t.test('non-matching: the 101 names none, which a WHATWG client refuses', async t => {
    const path = unique('/protocols')
    const { client: c, opened } = connect(t, path, ['mqtt'])
    await t.rejects(opened, 'the client fails the connection')
    t.equal((await c.closed).wasClean, false)
    const [protocol] = await server.next('open', path)
    t.equal(protocol, '', 'the server opened without a protocol')
    // undici aborts its fetch but leaves the TCP connection open, so the
    // server is not told; the socket is closed with the app.
  })
})

t.test('a message over maxPayload closes with 1009', async t => {
  const path = unique('/small')
  const { ws, next, closed } = await client(t, path)
  ws.send(pattern(SMALL_LIMIT))
  t.equal((await next() as ArrayBuffer).byteLength, SMALL_LIMIT)
  ws.send(text(SMALL_LIMIT + 1))
  t.equal((await closed).code, 1009)
  const [error] = await server.next('failure', path)
  t.equal((error as { code: string }).code, 'WS_ERR_MAX_PAYLOAD')
})

t.test('socket.terminate(): the client sees 1006', async t => {
  const path = unique('/terminate')
  const { ws, closed } = await client(t, path)
  ws.send('go')
  const event = await closed
  t.equal(event.code, 1006)
  t.equal(event.wasClean, false)
  const [code] = await server.next('close', path)
  t.equal(code, 1006)
})

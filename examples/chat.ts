/**
 * Chat rooms: a page at `/` and the WebSocket route `/chat/:room`.
 *
 *   npm run example              # http://127.0.0.1:3000/
 *   PORT=8080 HOST=0.0.0.0 npm run example
 *
 * Messages are JSON, validated with TypeBox schemas and routed by `type`:
 *
 *   in   { type: 'join', name }        name: 1–32 characters, not only spaces, once per connection,
 *                                      not taken in the room (compared trimmed, case-insensitively)
 *        { type: 'say', text }         text: 1–500 characters, after joining
 *   out  { type: 'joined', name }      someone (you too) joined the room
 *        { type: 'left', name }        someone left the room
 *        { type: 'said', from, text }  someone (you too) said something
 *        { type: 'error', error: { code, message } }
 *
 * An invalid message (not JSON, an unknown type, a too-long name, …) gets
 * the library's error envelope (`invalidMessage: 'reply'`) and the
 * connection stays open; saying before joining, joining twice, or a name
 * someone in the room has, gets the same envelope with a `CHAT_*` code. Everything goes to the sender's room
 * only.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { Type, type Static, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { pathToFileURL } from 'node:url'
import wsroutes, { type WebSocket } from '../lib/index.js'

// A name shows who speaks: at least one character that is not white space.
const Join = Type.Object({ type: Type.Literal('join'), name: Type.String({ minLength: 1, maxLength: 32, pattern: '\\S' }) })
const Say = Type.Object({ type: Type.Literal('say'), text: Type.String({ minLength: 1, maxLength: 500 }) })

const Joined = Type.Object({ type: Type.Literal('joined'), name: Type.String() })
const Left = Type.Object({ type: Type.Literal('left'), name: Type.String() })
const Said = Type.Object({ type: Type.Literal('said'), from: Type.String(), text: Type.String() })
const ErrorEnvelope = Type.Object({ type: Type.Literal('error'), error: Type.Object({ code: Type.String(), message: Type.String() }) })
const Outbound = Type.Union([Joined, Left, Said, ErrorEnvelope])
type Outbound = Static<typeof Outbound>

/** A room name: the `:room` of the URL. Anything else is refused with 400 before the upgrade. */
const Params = Type.Object({ room: Type.String({ pattern: '^[A-Za-z0-9_-]{1,32}$' }) })

type ChatSocket = WebSocket<Outbound>

export async function buildChatServer (options: { logger?: boolean } = {}): Promise<FastifyInstance> {
  const page = await readFile(new URL('./chat.html', import.meta.url), 'utf8')
  const app = Fastify({ logger: options.logger ?? false }).withTypeProvider<TypeBoxTypeProvider>()
  await app.register(wsroutes)

  /** Who is in each room (their sockets, and their names as compared), and who each joined socket is. */
  const rooms = new Map<string, { sockets: Set<ChatSocket>, names: Set<string> }>()
  const members = new Map<ChatSocket, { room: string, name: string }>()

  /** Two names are the same person's if they differ only in case or surrounding spaces. */
  const sameName = (name: string): string => name.trim().toLowerCase()

  /** Serializes once and sends the same text to everyone in the room. */
  function broadcast (room: string, message: Outbound): void {
    const text = JSON.stringify(message)
    for (const socket of rooms.get(room)?.sockets ?? []) socket.sendRaw(text)
  }

  app.get('/', async (_request, reply) => {
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(page)
  })

  app.ws('/chat/:room', {
    schema: { params: Params, send: Outbound },
    invalidMessage: 'reply',
    messages: {
      join: {
        schema: Join,
        handler (socket, msg) {
          if (members.has(socket)) {
            socket.send({ type: 'error', error: { code: 'CHAT_ALREADY_JOINED', message: 'already joined' } })
            return
          }
          const room = socket.request.params.room
          let inRoom = rooms.get(room)
          if (inRoom?.names.has(sameName(msg.name)) === true) {
            socket.send({ type: 'error', error: { code: 'CHAT_NAME_TAKEN', message: 'someone in this room has that name' } })
            return
          }
          if (inRoom === undefined) rooms.set(room, inRoom = { sockets: new Set(), names: new Set() })
          inRoom.sockets.add(socket)
          inRoom.names.add(sameName(msg.name))
          members.set(socket, { room, name: msg.name })
          broadcast(room, { type: 'joined', name: msg.name })
        },
      },
      say: {
        schema: Say,
        handler (socket, msg) {
          const member = members.get(socket)
          if (member === undefined) {
            socket.send({ type: 'error', error: { code: 'CHAT_NOT_JOINED', message: 'join the room first' } })
            return
          }
          broadcast(member.room, { type: 'said', from: member.name, text: msg.text })
        },
      },
    },
    close (socket) {
      const member = members.get(socket)
      if (member === undefined) return
      members.delete(socket)
      const inRoom = rooms.get(member.room)
      if (inRoom === undefined) return
      inRoom.sockets.delete(socket)
      inRoom.names.delete(sameName(member.name))
      if (inRoom.sockets.size === 0) rooms.delete(member.room)
      else broadcast(member.room, { type: 'left', name: member.name })
    },
  })

  return app
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const app = await buildChatServer({ logger: process.env.LOG === '1' })
  const host = process.env.HOST ?? '127.0.0.1'
  const port = Number(process.env.PORT ?? 3000)
  await app.listen({ host, port })
  const bound = (app.server.address() as AddressInfo).port
  console.log(`chat on http://${host.includes(':') ? `[${host}]` : host}:${bound}/  (Ctrl-C to stop)`)
  const shutdown = (signal: string): void => {
    console.log(`${signal}: closing (clients get 1001)`)
    app.close().then(() => process.exit(0), (error: unknown) => {
      console.error(error)
      process.exit(1)
    })
  }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
}

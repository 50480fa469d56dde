import { expect, test } from 'tstyche'
import type { CloseCode, WebSocket } from '../lib/index.js'

declare const socket: WebSocket

test('close() accepts the codes an endpoint may send', () => {
  expect(socket.close).type.toBeCallableWith()
  expect(socket.close).type.toBeCallableWith(1000)
  expect(socket.close).type.toBeCallableWith(1001, 'going away')
  expect(socket.close).type.toBeCallableWith(1003)
  expect(socket.close).type.toBeCallableWith(1007)
  expect(socket.close).type.toBeCallableWith(1011, 'internal error')
  expect(socket.close).type.toBeCallableWith(1014)
  expect(socket.close).type.toBeCallableWith(3000)
  expect(socket.close).type.toBeCallableWith(4000, 'bye')
  expect(socket.close).type.toBeCallableWith(4999)
})

test('close() rejects reserved, received-only and out-of-range codes at compile time', () => {
  expect(socket.close).type.not.toBeCallableWith(999)
  expect(socket.close).type.not.toBeCallableWith(1004)
  expect(socket.close).type.not.toBeCallableWith(1005)
  expect(socket.close).type.not.toBeCallableWith(1006)
  expect(socket.close).type.not.toBeCallableWith(1015)
  expect(socket.close).type.not.toBeCallableWith(1016)
  expect(socket.close).type.not.toBeCallableWith(2000)
  expect(socket.close).type.not.toBeCallableWith(2999)
  expect(socket.close).type.not.toBeCallableWith(5000)
  expect(socket.close).type.not.toBeCallableWith(0)
  expect(socket.close).type.not.toBeCallableWith(-1)
  expect(socket.close).type.not.toBeCallableWith(3000.5)
})

test('a computed number must be narrowed before it is a CloseCode', () => {
  const computed: number = 4000
  expect(socket.close).type.not.toBeCallableWith(computed)
  expect<4000>().type.toBeAssignableTo<CloseCode>()
  expect<number>().type.not.toBeAssignableTo<CloseCode>()
})

test('the reason is a string', () => {
  expect(socket.close).type.not.toBeCallableWith(1000, Buffer.from('x'))
})

/**
 * The framework-free RFC 6455 engine: handshake, frames, UTF-8, close codes
 * and the connection. Nothing here knows about Fastify or Express.
 */
export * from './close-codes.js'
export * from './errors.js'
export * from './handshake.js'
export * from './connection.js'
export { FrameParser, Opcode, type FrameHandler, type ParserOptions } from './parser.js'
export { FrameWriter, MaskingFrameWriter } from './writer.js'
export { Utf8Validator, isValidUtf8 } from './utf8.js'
export { applyMask } from './mask.js'
export { giveBack } from './loans.js'

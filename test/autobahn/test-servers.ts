/**
 * Test servers for proving the fuzzing client honest: a ws-based reference
 * echo server and a small raw node:net WebSocket echo server whose
 * conformance can be switched off piece by piece.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

import { WebSocketServer, type ServerOptions } from 'ws';

import { isCompleteUtf8 } from './utf8.js';

export interface TestServer {
  url: string;
  close(): Promise<void>;
}

/** The `ws` package as an echo server (text as text, binary as binary). */
export async function startWsEcho(options: Partial<ServerOptions> = {}): Promise<TestServer> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 64 * 1024 * 1024, ...options });
  wss.on('connection', (ws) => {
    ws.on('error', () => {}); // protocol errors: ws closes the connection itself
    ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
  });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const { port } = wss.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
}

export interface RawServerOptions {
  /** Fail text messages that are not valid UTF-8 with 1007 (checked when the message is complete). */
  validateUtf8?: boolean;
  /**
   * How a close frame from the client is answered:
   *  - 'validate': 1002 for a bad close payload (length 1, reserved code), 1007 for a non-UTF-8 reason,
   *    else the code is echoed;
   *  - 'echo-any': the close payload is echoed back verbatim, whatever it holds.
   */
  closeReply?: 'validate' | 'echo-any';
  /** Answer pings with pongs. */
  answerPings?: boolean;
  /** Answer the upgrade request with this HTTP status instead of 101. */
  refuseHandshake?: number;
}

const WS_MAGIC = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const ALLOWED_CODES = new Set([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011]);

function frame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  let head: Buffer;
  if (len <= 125) {
    head = Buffer.from([0x80 | opcode, len]);
  } else if (len <= 0xffff) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | opcode;
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([head, payload]);
}

function closePayload(code: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return b;
}

/** Minimal RFC 6455 echo server on raw TCP, with switchable non-conformance. */
export async function startRawServer(options: RawServerOptions = {}): Promise<TestServer> {
  const validateUtf8 = options.validateUtf8 ?? true;
  const closeReply = options.closeReply ?? 'validate';
  const answerPings = options.answerPings ?? true;
  const sockets = new Set<net.Socket>();

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.setNoDelay(true);

    let buf: Buffer = Buffer.alloc(0);
    let open = false;
    let done = false;
    let message: Buffer[] | null = null;
    let messageOpcode = 0;

    const fail = (code: number): void => {
      if (done) return;
      done = true;
      socket.end(frame(8, closePayload(code)));
    };

    const handleFrame = (fin: boolean, rsv: number, opcode: number, payload: Buffer): void => {
      if (rsv !== 0) return fail(1002);
      if (opcode >= 8) {
        if (!fin || payload.length > 125 || opcode > 10) return fail(1002);
        if (opcode === 9) {
          if (answerPings) socket.write(frame(10, payload));
        } else if (opcode === 8) {
          done = true;
          if (closeReply === 'echo-any') {
            socket.end(frame(8, payload));
            return;
          }
          if (payload.length === 1) return void socket.end(frame(8, closePayload(1002)));
          if (payload.length === 0) return void socket.end(frame(8, Buffer.alloc(0)));
          const code = payload.readUInt16BE(0);
          const codeOk = ALLOWED_CODES.has(code) || (code >= 3000 && code <= 4999);
          if (!codeOk) return void socket.end(frame(8, closePayload(1002)));
          if (!isCompleteUtf8(payload.subarray(2))) return void socket.end(frame(8, closePayload(1007)));
          socket.end(frame(8, closePayload(code)));
        }
        return;
      }
      if (opcode > 2) return fail(1002);
      if (opcode === 0 && message === null) return fail(1002);
      if (opcode !== 0 && message !== null) return fail(1002);
      if (opcode !== 0) {
        message = [];
        messageOpcode = opcode;
      }
      message!.push(payload);
      if (fin) {
        const data = Buffer.concat(message!);
        message = null;
        if (messageOpcode === 1 && validateUtf8 && !isCompleteUtf8(data)) return fail(1007);
        socket.write(frame(messageOpcode, data));
      }
    };

    const parse = (): void => {
      while (!done) {
        if (buf.length < 2) return;
        const b0 = buf[0]!;
        const b1 = buf[1]!;
        const masked = (b1 & 0x80) !== 0;
        let len = b1 & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        if (!masked) return fail(1002);
        if (buf.length < off + 4 + len) return;
        const mask = buf.subarray(off, off + 4);
        const payload = Buffer.from(buf.subarray(off + 4, off + 4 + len));
        for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
        buf = buf.subarray(off + 4 + len);
        handleFrame((b0 & 0x80) !== 0, (b0 & 0x70) >> 4, b0 & 0x0f, payload);
      }
    };

    socket.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      if (!open) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        buf = buf.subarray(end + 4);
        if (options.refuseHandshake !== undefined) {
          done = true;
          socket.end(`HTTP/1.1 ${options.refuseHandshake} Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
          return;
        }
        const key = /^sec-websocket-key:\s*(\S+)\s*$/im.exec(head)?.[1] ?? '';
        const accept = crypto.createHash('sha1').update(key + WS_MAGIC).digest('base64');
        socket.write(
          'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            `Sec-WebSocket-Accept: ${accept}\r\nServer: raw-test-server\r\n\r\n`,
        );
        open = true;
      }
      if (!done) parse();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * The fuzzing client protocol: a raw-TCP WebSocket client that can send
 * arbitrary (also invalid) frames, chopped and timed at will, and records
 * everything that happens on the wire.
 *
 * This is a port of the behaviour Autobahn TestSuite's fuzzing client gets
 * from `FuzzingProtocol` (autobahntestsuite/fuzzing.py) together with the
 * RFC 6455 client machinery of autobahn-python 0.10.9 that it runs on
 * (`WebSocketProtocol` / `WebSocketClientProtocol`), configured like the
 * fuzzing client configures it: `failByDrop = false`, masked client frames,
 * incoming UTF-8 validation, close-handshake timeout 1 s, server connection
 * drop timeout 1 s, opening-handshake timeout 5 s, and close replies with
 * code 1000 (`echoCloseCodeReason = false`).
 *
 * The closing-handshake bookkeeping (closedByMe, failedByMe, droppedByMe,
 * wasClean, wasNotCleanReason, remote/local close code/reason, timeouts) is
 * maintained exactly as in autobahn-python, because the verdicts are
 * computed from it.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';

import type { Case } from './case.js';
import { Utf8Validator, type Utf8Result } from './utf8.js';

export const State = {
  CLOSED: 0,
  CONNECTING: 1,
  CLOSING: 2,
  OPEN: 3,
} as const;
export type State = (typeof State)[keyof typeof State];

export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  MANDATORY_EXTENSION: 1010,
  INTERNAL_ERROR: 1011,
} as const;

/** Close codes an endpoint may send in 1000-2999 (others there are reserved). */
const CLOSE_CODES_ALLOWED: readonly number[] = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011];

const WS_MAGIC = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const EMPTY = Buffer.alloc(0);

/** Max octets shown of a payload in the wire log (Autobahn: 64). */
export const WIRELOG_PREVIEW = 64;

// ---------------------------------------------------------------------------
// wire log

export type WireLogEntry =
  /** octets received */
  | { t: number; type: 'RO'; length: number; data: string }
  /** octets transmitted (sync: written in its own reactor turn) */
  | { t: number; type: 'TO'; length: number; data: string; sync: boolean }
  /** frame received */
  | {
      t: number;
      type: 'RF';
      length: number;
      payload: string;
      opcode: number;
      fin: boolean;
      rsv: number;
      masked: boolean;
      mask: string | null;
    }
  /** frame transmitted */
  | {
      t: number;
      type: 'TF';
      length: number;
      payload: string;
      opcode: number;
      fin: boolean;
      rsv: number;
      mask: string | null;
      repeatLength: number | null;
      chopsize: number | null;
      sync: boolean;
    }
  /** continueLater scheduled / executed */
  | { t: number; type: 'CT'; delay: number; tag: string | null }
  | { t: number; type: 'CTE'; tag: string | null }
  /** killAfter scheduled / executed (fail the connection) */
  | { t: number; type: 'KL'; delay: number }
  | { t: number; type: 'KLE' }
  /** closeAfter scheduled / executed (start the closing handshake) */
  | { t: number; type: 'TI'; delay: number }
  | { t: number; type: 'TIE' }
  /** wire log switched on/off */
  | { t: number; type: 'WLM'; enabled: boolean };

/** Hex preview of octets, like Autobahn's binLogData. */
export function hexPreview(data: Uint8Array, maxlen = WIRELOG_PREVIEW): string {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const ellipses = ' ...';
  if (b.length > maxlen - ellipses.length) return b.subarray(0, maxlen).toString('hex') + ellipses;
  return b.toString('hex');
}

/** Text preview of octets (UTF-8 if valid, else 0x + hex), like Autobahn's asciiLogData. */
export function textPreview(data: Uint8Array, maxlen = WIRELOG_PREVIEW): string {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const ellipses = ' ...';
  const cut = b.length > maxlen - ellipses.length;
  const head = cut ? b.subarray(0, maxlen) : b;
  try {
    const s = new TextDecoder('utf-8', { fatal: true }).decode(head);
    return cut ? s + ellipses : s;
  } catch {
    return '0x' + hexPreview(b, maxlen);
  }
}

// ---------------------------------------------------------------------------
// helpers

export interface ParsedWsUrl {
  secure: boolean;
  host: string;
  port: number;
  /** path plus query, as sent in the request line */
  resource: string;
}

export function parseWsUrl(url: string): ParsedWsUrl {
  const u = new URL(url);
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
    throw new Error(`invalid WebSocket URL: bogus protocol scheme '${u.protocol}'`);
  }
  if (u.hostname === '') throw new Error('invalid WebSocket URL: missing hostname');
  if (u.hash !== '') throw new Error(`invalid WebSocket URL: non-empty fragment '${u.hash}'`);
  const secure = u.protocol === 'wss:';
  const port = u.port === '' ? (secure ? 443 : 80) : Number(u.port);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const resource = (u.pathname === '' ? '/' : u.pathname) + u.search;
  return { secure, host, port, resource };
}

/** Repeat `pattern` to exactly `length` octets (Autobahn's payload_len). */
export function repeatPayload(pattern: Uint8Array, length: number): Buffer {
  if (pattern.length < 1) {
    throw new Error(`cannot construct repeated payload with length ${length} from payload of length ${pattern.length}`);
  }
  return Buffer.alloc(length, pattern);
}

/** XOR `data` with `mask`, starting at mask offset `offset`. Returns a new buffer. */
function applyMask(data: Uint8Array, mask: Uint8Array, offset: number): Buffer {
  const out = Buffer.allocUnsafe(data.length);
  const m0 = mask[0]!, m1 = mask[1]!, m2 = mask[2]!, m3 = mask[3]!;
  const m = [m0, m1, m2, m3];
  let i = 0;
  const n = data.length;
  // align to a multiple of 4 in mask space
  while (i < n && ((offset + i) & 3) !== 0) {
    out[i] = data[i]! ^ m[(offset + i) & 3]!;
    i++;
  }
  for (; i + 3 < n; i += 4) {
    out[i] = data[i]! ^ m0;
    out[i + 1] = data[i + 1]! ^ m1;
    out[i + 2] = data[i + 2]! ^ m2;
    out[i + 3] = data[i + 3]! ^ m3;
  }
  for (; i < n; i++) out[i] = data[i]! ^ m[(offset + i) & 3]!;
  return out;
}

let maskPool = Buffer.alloc(0);
let maskPoolPos = 0;
function randomMask(): Buffer {
  if (maskPoolPos + 4 > maskPool.length) {
    maskPool = crypto.randomBytes(4096);
    maskPoolPos = 0;
  }
  const m = Buffer.from(maskPool.subarray(maskPoolPos, maskPoolPos + 4));
  maskPoolPos += 4;
  return m;
}

function bump(stats: Record<number, number>, key: number): void {
  stats[key] = (stats[key] ?? 0) + 1;
}

/** A FIFO of received octets that avoids re-copying large payloads. */
class ByteQueue {
  private chunks: Buffer[] = [];
  length = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }

  /** First n octets as one buffer, without consuming (n <= length). */
  peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    for (const c of this.chunks) {
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (off === n) break;
    }
    return out;
  }

  /** Remove up to n octets, returned as zero-copy slices. */
  take(n: number): Buffer[] {
    const out: Buffer[] = [];
    let want = Math.min(n, this.length);
    while (want > 0) {
      const c = this.chunks[0]!;
      if (c.length <= want) {
        out.push(c);
        this.chunks.shift();
        want -= c.length;
        this.length -= c.length;
      } else {
        out.push(c.subarray(0, want));
        this.chunks[0] = c.subarray(want);
        this.length -= want;
        want = 0;
      }
    }
    return out;
  }

  clear(): void {
    this.chunks = [];
    this.length = 0;
  }
}

interface FrameHeader {
  opcode: number;
  fin: boolean;
  rsv: number;
  length: number;
  mask: Buffer | null;
}

export interface SendFrameOptions {
  opcode: number;
  payload?: Uint8Array;
  fin?: boolean;
  rsv?: number;
  /** Explicit 4-octet mask; by default a random mask (client frames are masked). */
  mask?: Uint8Array | null;
  /** Repeat `payload` until the frame payload has this many octets. */
  payloadLen?: number | null;
  /** Write the frame octets in chops of this size, each in its own event-loop turn. */
  chopsize?: number | null;
  /** Write the frame in its own event-loop turn. */
  sync?: boolean;
}

export interface FuzzingOptions {
  url: string;
  /** Agent name for the reports; default: the Server response header, else "UnknownServer". */
  agent?: string;
  userAgent?: string;
  openHandshakeTimeout?: number;
  closeHandshakeTimeout?: number;
  serverConnectionDropTimeout?: number;
  /**
   * Safety net beyond Autobahn: after we replied to a close started by the
   * server, drop TCP if the server has not done so after this many seconds
   * (Autobahn would wait forever in that situation).
   */
  replyCloseWatchdog?: number;
}

export const USER_AGENT = 'wsroutes-autobahn (port of AutobahnTestSuite fuzzingclient)';

/**
 * One fuzzing connection: one TCP connection per case, like Autobahn.
 * Create it, attach the case with `setCase`, then `run()`; the returned
 * promise settles after the TCP connection is gone and the case computed
 * its verdicts.
 */
export class FuzzingProtocol {
  // --- configuration (autobahn-python defaults as set by the fuzzing client)
  readonly url: ParsedWsUrl;
  readonly maskClientFrames = true;
  readonly acceptMaskedServerFrames = false;
  readonly utf8validateIncoming = true;
  readonly echoCloseCodeReason = false;
  openHandshakeTimeout: number;
  closeHandshakeTimeout: number;
  serverConnectionDropTimeout: number;
  replyCloseWatchdog: number;
  /** Split outgoing messages (sendMessage) into frames of this size; 0 = off. */
  autoFragmentSize = 0;
  readonly CLOSE = CloseCode;

  // --- protocol state
  state: State = State.CONNECTING;
  connectionWasOpen = false;

  // --- closing handshake bookkeeping (same names/semantics as Autobahn)
  /** I started the closing handshake (sent close first). */
  closedByMe = false;
  /** I failed the WebSocket connection (protocol error, kill timer, ...). */
  failedByMe = false;
  /** I dropped the TCP connection. */
  droppedByMe = false;
  /** Close frames were exchanged and the server dropped TCP. */
  wasClean = false;
  wasNotCleanReason: string | null = null;
  wasServerConnectionDropTimeout = false;
  wasOpenHandshakeTimeout = false;
  wasCloseHandshakeTimeout = false;
  /** Always false for a client; kept for report parity with Autobahn. */
  readonly wasServingFlashSocketPolicyFile = false;
  localCloseCode: number | null = null;
  localCloseReason: Buffer | null = null;
  remoteCloseCode: number | null = null;
  remoteCloseReason: string | null = null;

  // --- recording
  createWirelog = true;
  wirelog: WireLogEntry[] = [];
  readonly createStats = true;
  rxOctetStats: Record<number, number> = {};
  rxFrameStats: Record<number, number> = {};
  txOctetStats: Record<number, number> = {};
  txFrameStats: Record<number, number> = {};
  httpRequest = '?';
  httpResponse = '?';
  agent: string;
  readonly agentGiven: boolean;
  /** ISO time the TCP connection was requested. */
  started = '';
  /** ms timestamps (performance.now) */
  connectStart = 0;
  caseStart = 0;
  caseEnd = 0;
  /** Socket-level error (connect refused, reset, ...), if any. */
  socketError: string | null = null;
  /** Exception thrown by a case hook (a harness bug), if any. */
  caseError: string | null = null;

  // --- internals
  private case: Case | null = null;
  private readonly userAgent: string;
  private socket: net.Socket | null = null;
  private tcpConnected = false;
  private handshakeData: Buffer = EMPTY;
  private websocketKey = '';
  private rx = new ByteQueue();
  private timers = new Set<NodeJS.Timeout>();
  private openHandshakeTimer: NodeJS.Timeout | null = null;
  private closeHandshakeTimer: NodeJS.Timeout | null = null;
  private serverDropTimer: NodeJS.Timeout | null = null;
  private watchdogTimer: NodeJS.Timeout | null = null;
  private sendQueue: Array<{ data: Buffer; sync: boolean }> = [];
  private triggered = false;
  private sendImmediate: NodeJS.Immediate | null = null;
  private finished = false;
  private resolveDone: (() => void) | null = null;

  // receiving
  private insideMessage = false;
  private currentFrame: FrameHeader | null = null;
  private framePointer = 0;
  private controlFrameData: Buffer[] = [];
  private frameData: Buffer[] | null = null;
  private messageData: Buffer[] | null = null;
  private messageIsBinary = false;
  private utf8validator = new Utf8Validator();
  private utf8validateCurrent = false;
  private utf8Last: Utf8Result = { valid: true, endsOnCodePoint: true, currentIndex: 0, totalIndex: 0 };

  // streaming send API (beginMessage / beginMessageFrame / ...)
  private sendState: 'ground' | 'message_begin' | 'inside_message' | 'inside_message_frame' = 'ground';
  private sendMessageOpcode = 1;
  private sendFrameLength = 0;
  private sendFramePointer = 0;
  private sendFrameMask: Buffer | null = null;

  constructor(options: FuzzingOptions) {
    this.url = parseWsUrl(options.url);
    this.agentGiven = options.agent !== undefined && options.agent !== '';
    this.agent = this.agentGiven ? options.agent! : 'UnknownServer';
    this.userAgent = options.userAgent ?? USER_AGENT;
    this.openHandshakeTimeout = options.openHandshakeTimeout ?? 5;
    this.closeHandshakeTimeout = options.closeHandshakeTimeout ?? 1;
    this.serverConnectionDropTimeout = options.serverConnectionDropTimeout ?? 1;
    this.replyCloseWatchdog = options.replyCloseWatchdog ?? 10;
  }

  setCase(c: Case): void {
    this.case = c;
  }

  /** ms since the TCP connection was requested, for the wire log. */
  private now(): number {
    return Math.round((performance.now() - this.connectStart) * 1000) / 1000;
  }

  // -------------------------------------------------------------------------
  // connection lifecycle

  run(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.resolveDone = resolve;
      this.started = new Date().toISOString();
      this.connectStart = performance.now();
      const onConnect = (): void => this.connectionMade();
      const sock = this.url.secure
        ? tls.connect({ host: this.url.host, port: this.url.port, servername: this.url.host }, onConnect)
        : net.connect({ host: this.url.host, port: this.url.port }, onConnect);
      this.socket = sock;
      sock.on('data', (d: Buffer) => this.dataReceived(d));
      sock.on('error', (err: Error) => {
        this.socketError ??= err.message;
      });
      sock.on('close', () => this.connectionLost());
      // Twisted's default TCP connect timeout
      this.schedule(30, () => {
        if (!this.tcpConnected) {
          this.socketError ??= 'TCP connect timed out after 30 s';
          sock.destroy();
        }
      });
    });
  }

  private connectionMade(): void {
    this.tcpConnected = true;
    this.socket!.setNoDelay(true);
    if (this.openHandshakeTimeout > 0) {
      this.openHandshakeTimer = this.schedule(this.openHandshakeTimeout, () => this.onOpenHandshakeTimeout());
    }
    this.startHandshake();
  }

  private connectionLost(): void {
    if (this.finished) return;
    this.finished = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (this.sendImmediate !== null) clearImmediate(this.sendImmediate);
    this.sendQueue = [];
    this.rx.clear();

    if (this.state !== State.CLOSED) this.state = State.CLOSED;

    if (!this.tcpConnected && this.wasNotCleanReason === null) {
      this.wasNotCleanReason = `TCP connection could not be established (${this.socketError ?? 'unknown error'})`;
    }
    if (!this.wasClean) {
      if (!this.droppedByMe && this.wasNotCleanReason === null) {
        this.wasNotCleanReason = 'peer dropped the TCP connection without previous WebSocket closing handshake';
      }
      this.callCase((c) => c.onClose(false, 1006, `connection was closed uncleanly (${this.wasNotCleanReason})`));
    } else {
      this.callCase((c) => c.onClose(true, this.remoteCloseCode, this.remoteCloseReason));
    }

    this.caseEnd = performance.now();
    if (this.case !== null) {
      try {
        this.case.onConnectionLost(this.failedByMe);
      } catch (err) {
        this.caseError ??= String(err instanceof Error ? err.stack ?? err.message : err);
        this.case.behavior = 'FAILED';
        this.case.result = `harness error: ${this.caseError}`;
      }
    }
    const done = this.resolveDone;
    this.resolveDone = null;
    done?.();
  }

  /** Run a case hook; an exception there is a harness bug: record it and drop. */
  private callCase(fn: (c: Case) => void): void {
    if (this.case === null) return;
    try {
      fn(this.case);
    } catch (err) {
      this.caseError ??= String(err instanceof Error ? err.stack ?? err.message : err);
      this.dropConnection(true);
    }
  }

  private schedule(seconds: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, seconds * 1000);
    this.timers.add(t);
    return t;
  }

  private cancel(t: NodeJS.Timeout | null): void {
    if (t === null) return;
    clearTimeout(t);
    this.timers.delete(t);
  }

  // -------------------------------------------------------------------------
  // opening handshake

  private startHandshake(): void {
    this.websocketKey = crypto.randomBytes(16).toString('base64');
    const u = this.url;
    const hostHeader = u.host.includes(':') ? `[${u.host}]:${u.port}` : `${u.host}:${u.port}`;
    let request = `GET ${u.resource} HTTP/1.1\r\n`;
    request += `User-Agent: ${this.userAgent}\r\n`;
    request += `Host: ${hostHeader}\r\n`;
    request += 'Upgrade: WebSocket\r\n';
    request += 'Connection: Upgrade\r\n';
    request += 'Pragma: no-cache\r\n';
    request += 'Cache-Control: no-cache\r\n';
    request += `Sec-WebSocket-Key: ${this.websocketKey}\r\n`;
    request += 'Sec-WebSocket-Version: 13\r\n';
    request += '\r\n';
    this.httpRequest = request;
    this.sendData(Buffer.from(request, 'utf8'));
  }

  private processHandshake(): void {
    const end = this.handshakeData.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.handshakeData.subarray(0, end + 4);
    const rest = this.handshakeData.subarray(end + 4);
    this.handshakeData = EMPTY;
    this.httpResponse = head.toString('utf8');

    const lines = this.httpResponse.split(/\r\n|\n/);
    const statusLine = (lines[0] ?? '').trim();
    const headers = new Map<string, string>();
    const counts = new Map<string, number>();
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      if (i <= 0) continue;
      const key = line.slice(0, i).trim().toLowerCase();
      const value = line.slice(i + 1).trim();
      const prev = headers.get(key);
      headers.set(key, prev === undefined ? value : `${prev}, ${value}`);
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }

    const sl = statusLine.split(/\s+/);
    if (sl.length < 2) return this.failHandshake(`Bad HTTP response status line '${statusLine}'`);
    if (sl[0] !== 'HTTP/1.1') return this.failHandshake(`Unsupported HTTP version ('${sl[0]}')`);
    const status = Number(sl[1]);
    if (!Number.isInteger(status)) return this.failHandshake(`Bad HTTP status code ('${sl[1]}')`);
    if (status !== 101) {
      const reason = sl.length > 2 ? ` - ${sl.slice(2).join(' ')}` : '';
      return this.failHandshake(`WebSocket connection upgrade failed (${status}${reason})`);
    }
    const upgrade = headers.get('upgrade');
    if (upgrade === undefined) return this.failHandshake('HTTP Upgrade header missing');
    if (upgrade.trim().toLowerCase() !== 'websocket') {
      return this.failHandshake(`HTTP Upgrade header different from 'websocket' (case-insensitive) : ${upgrade}`);
    }
    const connection = headers.get('connection');
    if (connection === undefined) return this.failHandshake('HTTP Connection header missing');
    if (!connection.split(',').some((c) => c.trim().toLowerCase() === 'upgrade')) {
      return this.failHandshake(
        `HTTP Connection header does not include 'upgrade' value (case-insensitive) : ${connection}`,
      );
    }
    const accept = headers.get('sec-websocket-accept');
    if (accept === undefined) return this.failHandshake('HTTP Sec-WebSocket-Accept header missing in opening handshake reply');
    if ((counts.get('sec-websocket-accept') ?? 0) > 1) {
      return this.failHandshake('HTTP Sec-WebSocket-Accept header appears more than once in opening handshake reply');
    }
    const expectedAccept = crypto
      .createHash('sha1')
      .update(this.websocketKey + WS_MAGIC)
      .digest('base64');
    if (accept.trim() !== expectedAccept) {
      return this.failHandshake(`HTTP Sec-WebSocket-Accept bogus value : expected ${expectedAccept} / got ${accept.trim()}`);
    }
    const extensions = headers.get('sec-websocket-extensions');
    if (extensions !== undefined) {
      if ((counts.get('sec-websocket-extensions') ?? 0) > 1) {
        return this.failHandshake('HTTP Sec-WebSocket-Extensions header appears more than once in opening handshake reply');
      }
      // we offer no extensions (permessage-deflate cases 12.x/13.x are not ported yet)
      const first = extensions.split(',')[0]!.split(';')[0]!.trim();
      if (first !== '') {
        return this.failHandshake(
          `server wants to use extension '${first}' we did not request, haven't implemented or did not enable`,
        );
      }
    }
    const subprotocol = headers.get('sec-websocket-protocol');
    if (subprotocol !== undefined) {
      if ((counts.get('sec-websocket-protocol') ?? 0) > 1) {
        return this.failHandshake('HTTP Sec-WebSocket-Protocol header appears more than once in opening handshake reply');
      }
      if (subprotocol.trim() !== '') {
        return this.failHandshake(
          `subprotocol selected by server (${subprotocol.trim()}) not in subprotocol list requested by client ([])`,
        );
      }
    }

    // opening handshake complete
    this.state = State.OPEN;
    this.cancel(this.openHandshakeTimer);
    this.openHandshakeTimer = null;
    this.insideMessage = false;
    this.currentFrame = null;

    if (!this.agentGiven) {
      const server = headers.get('server');
      this.agent = server !== undefined && server !== '' ? server : 'UnknownServer';
    }

    this.connectionWasOpen = true;
    this.caseStart = performance.now();
    this.callCase((c) => c.onOpen());

    if (rest.length > 0 && (this.state === State.OPEN || this.state === State.CLOSING)) {
      this.rx.push(Buffer.from(rest));
      this.consumeData();
    }
  }

  private failHandshake(reason: string): void {
    this.wasNotCleanReason = reason;
    this.dropConnection(true);
  }

  private onOpenHandshakeTimeout(): void {
    this.openHandshakeTimer = null;
    if (this.state === State.CONNECTING) {
      this.wasClean = false;
      this.wasNotCleanReason = 'peer did not finish (in time) the opening handshake';
      this.wasOpenHandshakeTimeout = true;
      this.dropConnection(true);
    }
  }

  // -------------------------------------------------------------------------
  // receiving

  private dataReceived(data: Buffer): void {
    if (this.createStats) bump(this.rxOctetStats, data.length);
    if (this.createWirelog) {
      this.wirelog.push({ t: this.now(), type: 'RO', length: data.length, data: hexPreview(data) });
    }
    if (this.state === State.CONNECTING) {
      this.handshakeData = this.handshakeData.length === 0 ? data : Buffer.concat([this.handshakeData, data]);
      this.processHandshake();
    } else if (this.state === State.OPEN || this.state === State.CLOSING) {
      this.rx.push(data);
      this.consumeData();
    }
    // STATE_CLOSED: data after we failed/dropped the connection is ignored
  }

  private consumeData(): void {
    while ((this.state === State.OPEN || this.state === State.CLOSING) && this.processData()) {
      // keep going while complete frames / frame parts are buffered
    }
  }

  /** One step of incoming frame processing; true when it should be called again. */
  private processData(): boolean {
    if (this.currentFrame === null) {
      if (this.rx.length < 2) return false;
      const h = this.rx.peek(2);
      const b0 = h[0]!;
      const b1 = h[1]!;
      const fin = (b0 & 0x80) !== 0;
      const rsv = (b0 & 0x70) >> 4;
      const opcode = b0 & 0x0f;
      const masked = (b1 & 0x80) !== 0;
      const len1 = b1 & 0x7f;

      // Like autobahn with failByDrop = false: a violation starts the closing
      // handshake (or drops TCP when already closing), then parsing continues.
      if (rsv !== 0) this.protocolViolation(`RSV = ${rsv} and no extension negotiated`);
      if (!this.acceptMaskedServerFrames && masked) this.protocolViolation('masked server-to-client frame');
      if (opcode > 7) {
        if (!fin) this.protocolViolation('fragmented control frame');
        if (len1 > 125) this.protocolViolation('control frame with payload length > 125 octets');
        if (opcode !== 8 && opcode !== 9 && opcode !== 10) {
          this.protocolViolation(`control frame using reserved opcode ${opcode}`);
        }
        if (opcode === 8 && len1 === 1) this.protocolViolation('received close control frame with payload len 1');
      } else {
        if (opcode !== 0 && opcode !== 1 && opcode !== 2) {
          this.protocolViolation(`data frame using reserved opcode ${opcode}`);
        }
        if (!this.insideMessage && opcode === 0) {
          this.protocolViolation('received continuation data frame outside fragmented message');
        }
        if (this.insideMessage && opcode !== 0) {
          this.protocolViolation('received non-continuation data frame while inside fragmented message');
        }
      }

      const maskLen = masked ? 4 : 0;
      const headerLen = len1 < 126 ? 2 + maskLen : len1 === 126 ? 4 + maskLen : 10 + maskLen;
      if (this.rx.length < headerLen) return false;
      const hdr = this.rx.peek(headerLen);
      let i = 2;
      let length: number;
      if (len1 === 126) {
        length = hdr.readUInt16BE(2);
        if (length < 126) this.protocolViolation('invalid data frame length (not using minimal length encoding)');
        i += 2;
      } else if (len1 === 127) {
        const big = hdr.readBigUInt64BE(2);
        if (big > 0x7fffffffffffffffn) this.protocolViolation('invalid data frame length (>2^63)');
        if (big < 65536n) this.protocolViolation('invalid data frame length (not using minimal length encoding)');
        length = Number(big);
        i += 8;
      } else {
        length = len1;
      }
      const mask = masked ? Buffer.from(hdr.subarray(i, i + 4)) : null;
      this.rx.take(headerLen);

      this.currentFrame = { opcode, fin, rsv, length, mask };
      this.framePointer = 0;
      this.onFrameBegin();
      return length === 0 || this.rx.length > 0;
    }

    const frame = this.currentFrame;
    const rest = frame.length - this.framePointer;
    const parts = this.rx.take(rest);
    if (parts.length === 0) parts.push(EMPTY);
    for (const part of parts) {
      const payload = frame.mask !== null && part.length > 0 ? applyMask(part, frame.mask, this.framePointer) : part;
      this.framePointer += part.length;
      if (this.onFrameData(payload) === false) return false;
    }
    if (this.framePointer === frame.length) {
      if (this.onFrameEnd() === false) return false;
    }
    return this.rx.length > 0;
  }

  private onFrameBegin(): void {
    const frame = this.currentFrame!;
    if (frame.opcode > 7) {
      this.controlFrameData = [];
      return;
    }
    if (!this.insideMessage) {
      this.insideMessage = true;
      if (frame.opcode === 1 && this.utf8validateIncoming) {
        this.utf8validator.reset();
        this.utf8validateCurrent = true;
        this.utf8Last = { valid: true, endsOnCodePoint: true, currentIndex: 0, totalIndex: 0 };
      } else {
        this.utf8validateCurrent = false;
      }
      // onMessageBegin
      this.messageIsBinary = frame.opcode === 2;
      this.messageData = [];
    }
    // onMessageFrameBegin
    this.frameData = [];
  }

  private onFrameData(payload: Buffer): boolean | void {
    const frame = this.currentFrame!;
    if (frame.opcode > 7) {
      this.controlFrameData.push(payload);
      return;
    }
    if (this.utf8validateCurrent) {
      this.utf8Last = this.utf8validator.validate(payload);
      if (!this.utf8Last.valid) {
        this.invalidPayload(
          `encountered invalid UTF-8 while processing text message at payload octet index ${this.utf8Last.totalIndex}`,
        );
      }
    }
    // onMessageFrameData
    if (!this.failedByMe && this.frameData !== null) this.frameData.push(payload);
  }

  private onFrameEnd(): boolean | void {
    const frame = this.currentFrame!;
    if (frame.opcode > 7) {
      this.logRxFrame(frame, this.controlFrameData);
      this.processControlFrame();
    } else {
      this.logRxFrame(frame, this.frameData ?? []);
      // onMessageFrameEnd
      if (!this.failedByMe && this.messageData !== null && this.frameData !== null) {
        for (const d of this.frameData) this.messageData.push(d);
      }
      this.frameData = null;
      if (frame.fin) {
        if (this.utf8validateCurrent && !this.utf8Last.endsOnCodePoint) {
          this.invalidPayload(
            `UTF-8 text message payload ended within Unicode code point at payload octet index ${this.utf8Last.totalIndex}`,
          );
        }
        // onMessageEnd
        if (!this.failedByMe && this.messageData !== null) {
          const payload = this.messageData.length === 1 ? this.messageData[0]! : Buffer.concat(this.messageData);
          const binary = this.messageIsBinary;
          this.callCase((c) => c.onMessage(payload, binary));
        }
        this.messageData = null;
        this.insideMessage = false;
      }
    }
    this.currentFrame = null;
  }

  private processControlFrame(): void {
    const frame = this.currentFrame!;
    const payload = this.controlFrameData.length === 1 ? this.controlFrameData[0]! : Buffer.concat(this.controlFrameData);
    this.controlFrameData = [];
    if (frame.opcode === 8) {
      let code: number | null = null;
      let reasonRaw: Buffer | null = null;
      if (payload.length > 1) {
        code = payload.readUInt16BE(0);
        if (payload.length > 2) reasonRaw = payload.subarray(2);
      }
      this.onCloseFrame(code, reasonRaw);
    } else if (frame.opcode === 9) {
      // Autobahn's fuzzing client answers pings itself; cases never see them
      if (this.state === State.OPEN) this.sendPong(payload);
    } else if (frame.opcode === 10) {
      this.callCase((c) => c.onPong(payload));
    }
    // other opcodes: a protocol violation was already flagged; ignore
  }

  private onCloseFrame(code: number | null, reasonRaw: Buffer | null): void {
    this.remoteCloseCode = code;

    // reserved close codes: 0-999, 1004-1006, 1012-2999 (except allowed ones), >= 5000
    if (code !== null && (code < 1000 || (code <= 2999 && !CLOSE_CODES_ALLOWED.includes(code)) || code >= 5000)) {
      this.protocolViolation(`invalid close code ${code}`);
    }

    if (reasonRaw === null) {
      this.remoteCloseReason = null;
    } else {
      const v = new Utf8Validator().validate(reasonRaw);
      if (!v.valid) this.invalidPayload('invalid close reason (non-UTF-8 payload)');
      this.remoteCloseReason = reasonRaw.toString('utf8');
    }

    if (this.state === State.CLOSING) {
      // the peer's reply to our close (or the peer's own close crossing ours)
      this.cancel(this.closeHandshakeTimer);
      this.closeHandshakeTimer = null;
      this.wasClean = true;
      // we are the client: the server should drop TCP now, else we do
      if (this.serverConnectionDropTimeout > 0) {
        this.serverDropTimer = this.schedule(this.serverConnectionDropTimeout, () => this.onServerConnectionDropTimeout());
      }
    } else if (this.state === State.OPEN) {
      // the peer starts the closing handshake: reply (code 1000, no reason)
      this.wasClean = true;
      if (this.echoCloseCodeReason) {
        this.sendCloseFrame(code, reasonRaw, true);
      } else {
        this.sendCloseFrame(CloseCode.NORMAL, null, true);
      }
      // the server must drop TCP now; Autobahn has no timer here (it would
      // wait forever unless a case timer fires), we add a generous watchdog
      if (this.replyCloseWatchdog > 0) {
        this.watchdogTimer = this.schedule(this.replyCloseWatchdog, () => {
          this.watchdogTimer = null;
          if (this.state !== State.CLOSED) {
            this.wasClean = false;
            this.wasNotCleanReason = `server did not drop TCP connection within ${this.replyCloseWatchdog} s after the closing handshake (harness watchdog)`;
            this.dropConnection(true);
          }
        });
      }
    } else if (this.state === State.CLOSED) {
      // the peer started a closing handshake but we already dropped TCP
      this.wasClean = false;
    }
  }

  private onServerConnectionDropTimeout(): void {
    this.serverDropTimer = null;
    if (this.state !== State.CLOSED) {
      this.wasClean = false;
      this.wasNotCleanReason = 'server did not drop TCP connection (in time)';
      this.wasServerConnectionDropTimeout = true;
      this.dropConnection(true);
    }
  }

  private onCloseHandshakeTimeout(): void {
    this.closeHandshakeTimer = null;
    if (this.state !== State.CLOSED) {
      this.wasClean = false;
      this.wasNotCleanReason = 'peer did not respond (in time) in closing handshake';
      this.wasCloseHandshakeTimeout = true;
      this.dropConnection(true);
    }
  }

  private logRxFrame(frame: FrameHeader, payload: Buffer[]): void {
    if (this.createStats) bump(this.rxFrameStats, frame.opcode);
    if (this.createWirelog) {
      const p = payload.length === 1 ? payload[0]! : Buffer.concat(payload);
      this.wirelog.push({
        t: this.now(),
        type: 'RF',
        length: p.length,
        payload: textPreview(p),
        opcode: frame.opcode,
        fin: frame.fin,
        rsv: frame.rsv,
        masked: frame.mask !== null,
        mask: frame.mask !== null ? frame.mask.toString('hex') : null,
      });
    }
  }

  // -------------------------------------------------------------------------
  // failing / closing

  /** Drop the TCP connection (abort: immediately; else after flushing writes). */
  dropConnection(abort = false): void {
    if (this.state === State.CLOSED) return;
    this.droppedByMe = true;
    this.state = State.CLOSED;
    const sock = this.socket;
    if (sock === null) return;
    if (abort) {
      sock.destroy();
    } else {
      sock.end(() => sock.destroy());
    }
  }

  /**
   * Fail the WebSocket connection: start the closing handshake with `code`
   * (failByDrop = false), or drop TCP when a closing handshake is running.
   */
  failConnection(code: number = CloseCode.GOING_AWAY, reason = 'Going Away'): void {
    if (this.state === State.CLOSED) return;
    this.failedByMe = true;
    if (this.state !== State.CLOSING) {
      this.sendCloseFrame(code, Buffer.from(reason, 'utf8').subarray(0, 125 - 2), false);
    } else {
      this.dropConnection(false);
    }
  }

  protocolViolation(reason: string): void {
    this.firstViolation ??= reason;
    this.failConnection(CloseCode.PROTOCOL_ERROR, reason);
  }

  invalidPayload(reason: string): void {
    this.firstViolation ??= reason;
    this.failConnection(CloseCode.INVALID_PAYLOAD, reason);
  }

  /** The first protocol violation (by the server) that made us fail the connection. */
  firstViolation: string | null = null;

  /**
   * Send a close frame and move to CLOSING. Deliberately allows invalid
   * codes/reasons (this is a fuzzer). Ignored unless OPEN.
   */
  sendCloseFrame(code: number | null = null, reasonUtf8: Uint8Array | null = null, isReply = false): void {
    if (this.state !== State.OPEN) {
      if (this.state === State.CONNECTING) throw new Error('cannot close a connection not yet connected');
      return; // CLOSING or CLOSED: ignore
    }
    const parts: Buffer[] = [];
    if (code !== null) {
      const c = Buffer.alloc(2);
      c.writeUInt16BE(code & 0xffff);
      parts.push(c);
    }
    if (reasonUtf8 !== null) parts.push(Buffer.from(reasonUtf8));
    this.sendFrame({ opcode: 8, payload: Buffer.concat(parts) });

    this.state = State.CLOSING;
    this.closedByMe = !isReply;
    this.localCloseCode = code;
    this.localCloseReason = reasonUtf8 !== null ? Buffer.from(reasonUtf8) : null;
    if (this.closedByMe && this.closeHandshakeTimeout > 0) {
      this.closeHandshakeTimer = this.schedule(this.closeHandshakeTimeout, () => this.onCloseHandshakeTimeout());
    }
  }

  /** Start a regular closing handshake (validates code and reason like Autobahn). */
  sendClose(code: number | null = null, reason: string | null = null): void {
    if (code !== null && code !== 1000 && !(code >= 3000 && code <= 4999)) {
      throw new Error(`invalid close code ${code}`);
    }
    let reasonUtf8: Buffer | null = null;
    if (reason !== null) {
      if (code === null) throw new Error('close reason without close code');
      reasonUtf8 = Buffer.from(reason, 'utf8');
      if (reasonUtf8.length + 2 > 125) {
        reasonUtf8 = Buffer.concat([reasonUtf8.subarray(0, 120), Buffer.from('...')]);
      }
    }
    this.sendCloseFrame(code, reasonUtf8, false);
  }

  sendPong(payload: Buffer = EMPTY): void {
    if (this.state !== State.OPEN) return;
    if (payload.length > 125) throw new Error(`invalid payload for PONG (payload length must be <= 125, was ${payload.length})`);
    this.sendFrame({ opcode: 10, payload });
  }

  // -------------------------------------------------------------------------
  // case timers

  /** Fail the connection (close 1001) after `seconds` unless it is gone. */
  killAfter(seconds: number): void {
    this.wirelog.push({ t: this.now(), type: 'KL', delay: seconds });
    this.schedule(seconds, () => {
      if (this.state !== State.CLOSED) {
        this.wirelog.push({ t: this.now(), type: 'KLE' });
        this.failConnection();
      }
    });
  }

  /** Start the closing handshake (no code) after `seconds` unless the connection is gone. */
  closeAfter(seconds: number): void {
    this.wirelog.push({ t: this.now(), type: 'TI', delay: seconds });
    this.schedule(seconds, () => {
      if (this.state !== State.CLOSED) {
        this.wirelog.push({ t: this.now(), type: 'TIE' });
        this.sendClose();
      }
    });
  }

  /** Run `fn` after `seconds` unless the connection is gone. */
  continueLater(seconds: number, fn: () => void, tag: string | null = null): void {
    this.wirelog.push({ t: this.now(), type: 'CT', delay: seconds, tag });
    this.schedule(seconds, () => {
      if (this.state !== State.CLOSED) {
        this.wirelog.push({ t: this.now(), type: 'CTE', tag });
        this.callCase(() => fn());
      }
    });
  }

  enableWirelog(enable: boolean): void {
    if (enable !== this.createWirelog) {
      this.createWirelog = enable;
      this.wirelog.push({ t: this.now(), type: 'WLM', enabled: enable });
    }
  }

  // -------------------------------------------------------------------------
  // sending

  /**
   * Write octets: directly, or through the ordered queue when `sync`, when
   * chopped, or when earlier queued octets are still pending. Every queued
   * entry is written in its own event-loop turn so that it leaves as its own
   * TCP segment (TCP_NODELAY is on).
   */
  sendData(data: Buffer, sync = false, chopsize: number | null = null): void {
    if (chopsize !== null && chopsize > 0) {
      for (let i = 0; i < data.length || i === 0; i += chopsize) {
        this.sendQueue.push({ data: data.subarray(i, Math.min(i + chopsize, data.length)), sync: true });
        if (data.length === 0) break;
      }
      this.trigger();
    } else if (sync || this.sendQueue.length > 0) {
      this.sendQueue.push({ data, sync });
      this.trigger();
    } else {
      this.write(data, false);
    }
  }

  private trigger(): void {
    if (!this.triggered) {
      this.triggered = true;
      this.sendNext();
    }
  }

  private sendNext(): void {
    this.sendImmediate = null;
    const e = this.sendQueue.shift();
    if (e === undefined) {
      this.triggered = false;
      return;
    }
    if (this.state !== State.CLOSED) this.write(e.data, e.sync);
    this.sendImmediate = setImmediate(() => this.sendNext());
  }

  private write(data: Buffer, sync: boolean): void {
    const sock = this.socket;
    if (sock === null || sock.destroyed || sock.writableEnded) return;
    sock.write(data);
    if (this.createStats) bump(this.txOctetStats, data.length);
    if (this.createWirelog) {
      this.wirelog.push({ t: this.now(), type: 'TO', length: data.length, data: hexPreview(data), sync });
    }
  }

  /**
   * Send one frame exactly as specified, valid or not (like Autobahn's
   * sendFrame): any opcode, RSV bits, FIN, a repeated payload of
   * `payloadLen` octets, chopped writes or a write in its own turn.
   */
  sendFrame(options: SendFrameOptions): void {
    const opcode = options.opcode;
    const payload = options.payload !== undefined ? Buffer.from(options.payload) : EMPTY;
    const fin = options.fin ?? true;
    const rsv = options.rsv ?? 0;
    const payloadLen = options.payloadLen ?? null;
    const chopsize = options.chopsize ?? null;
    const sync = options.sync ?? false;

    const pl = payloadLen !== null ? repeatPayload(payload, payloadLen) : payload;
    const l = pl.length;

    const b0 = (fin ? 0x80 : 0) | ((rsv % 8) << 4) | (opcode % 128);
    let b1 = 0;
    let mask: Buffer | null = null;
    if ((options.mask !== undefined && options.mask !== null) || this.maskClientFrames) {
      b1 |= 0x80;
      mask = options.mask !== undefined && options.mask !== null ? Buffer.from(options.mask) : randomMask();
    }
    let ext: Buffer = EMPTY;
    if (l <= 125) {
      b1 |= l;
    } else if (l <= 0xffff) {
      b1 |= 126;
      ext = Buffer.alloc(2);
      ext.writeUInt16BE(l);
    } else {
      b1 |= 127;
      ext = Buffer.alloc(8);
      ext.writeBigUInt64BE(BigInt(l));
    }
    const body = mask !== null && l > 0 ? applyMask(pl, mask, 0) : pl;
    const raw = Buffer.concat([Buffer.from([b0, b1]), ext, mask ?? EMPTY, body]);

    if (this.createStats) bump(this.txFrameStats, opcode);
    if (this.createWirelog) {
      this.wirelog.push({
        t: this.now(),
        type: 'TF',
        length: l,
        payload: textPreview(pl),
        opcode,
        fin,
        rsv,
        mask: mask !== null ? mask.toString('hex') : null,
        repeatLength: payloadLen,
        chopsize,
        sync,
      });
    }
    this.sendData(raw, sync, chopsize);
  }

  /**
   * Send a data message, fragmented into frames of `fragmentSize` (or
   * `autoFragmentSize`) octets. Like Autobahn, a payload that is an exact
   * multiple of the fragment size ends with an empty final fragment.
   */
  sendMessage(payload: Uint8Array, isBinary = false, fragmentSize: number | null = null, sync = false): void {
    if (this.state !== State.OPEN) return;
    const data = Buffer.from(payload);
    const opcode = isBinary ? 2 : 1;
    const pfs = fragmentSize !== null ? fragmentSize : this.autoFragmentSize > 0 ? this.autoFragmentSize : null;
    if (pfs === null || data.length <= pfs) {
      this.sendFrame({ opcode, payload: data, sync });
      return;
    }
    if (pfs < 1) throw new Error(`payload fragment size must be at least 1 (was ${pfs})`);
    const n = data.length;
    let i = 0;
    let done = false;
    let first = true;
    while (!done) {
      let j = i + pfs;
      if (j > n) {
        done = true;
        j = n;
      }
      this.sendFrame({ opcode: first ? opcode : 0, payload: data.subarray(i, j), fin: done, sync });
      first = false;
      i += pfs;
    }
  }

  // streaming API, used by the fail-fast UTF-8 cases 6.4.3 / 6.4.4

  beginMessage(isBinary = false): void {
    if (this.state !== State.OPEN) return;
    if (this.sendState !== 'ground') throw new Error('beginMessage invalid in current sending state');
    this.sendMessageOpcode = isBinary ? 2 : 1;
    this.sendState = 'message_begin';
  }

  beginMessageFrame(length: number): void {
    if (this.state !== State.OPEN) return;
    if (this.sendState !== 'message_begin' && this.sendState !== 'inside_message') {
      throw new Error(`beginMessageFrame invalid in current sending state [${this.sendState}]`);
    }
    if (!Number.isInteger(length) || length < 0) throw new Error('invalid value for message frame length');
    this.sendFrameLength = length;
    this.sendFramePointer = 0;
    this.sendFrameMask = this.maskClientFrames ? randomMask() : null;
    // FIN = 0: with streaming we do not know where the message ends
    let b0 = 0;
    if (this.sendState === 'message_begin') {
      b0 |= this.sendMessageOpcode;
      this.sendState = 'inside_message';
    }
    let b1 = this.sendFrameMask !== null ? 0x80 : 0;
    let ext: Buffer = EMPTY;
    if (length <= 125) {
      b1 |= length;
    } else if (length <= 0xffff) {
      b1 |= 126;
      ext = Buffer.alloc(2);
      ext.writeUInt16BE(length);
    } else {
      b1 |= 127;
      ext = Buffer.alloc(8);
      ext.writeBigUInt64BE(BigInt(length));
    }
    this.sendData(Buffer.concat([Buffer.from([b0, b1]), ext, this.sendFrameMask ?? EMPTY]));
    this.sendState = 'inside_message_frame';
  }

  /** Send (part of) the payload of the frame begun with beginMessageFrame. */
  sendMessageFrameData(payload: Uint8Array, sync = false): number | undefined {
    if (this.state !== State.OPEN) return undefined;
    if (this.sendState !== 'inside_message_frame') throw new Error('sendMessageFrameData invalid in current sending state');
    const rl = payload.length;
    let pl: Buffer;
    let rest: number;
    if (this.sendFramePointer + rl > this.sendFrameLength) {
      const l = this.sendFrameLength - this.sendFramePointer;
      rest = -(rl - l);
      pl = Buffer.from(payload).subarray(0, l);
    } else {
      rest = this.sendFrameLength - this.sendFramePointer - rl;
      pl = Buffer.from(payload);
    }
    const plm = this.sendFrameMask !== null && pl.length > 0 ? applyMask(pl, this.sendFrameMask, this.sendFramePointer) : pl;
    this.sendFramePointer += pl.length;
    this.sendData(plm, sync);
    if (this.sendFramePointer >= this.sendFrameLength) this.sendState = 'inside_message';
    return rest;
  }

  /** End a streamed message with an empty final continuation frame. */
  endMessage(): void {
    if (this.state !== State.OPEN) return;
    this.sendFrame({ opcode: 0, payload: EMPTY, fin: true });
    this.sendState = 'ground';
  }
}

/**
 * 9.x Limits/Performance: big messages, many fragments, tiny TCP chops and
 * round trips. As in Autobahn these are time-bounded: a case fails when the
 * echo has not arrived before its `closeAfter(WAITSECS)` timer starts the
 * closing handshake. Like Autobahn only type and length of the echo are
 * judged; a content mismatch is noted in the result text.
 */
import { Case, defineCase, Verdict, type CaseDef } from '../case.js';
import { CloseCode, repeatPayload } from '../fuzzing.js';
import { hex, text, utf8 } from './util.js';

const KiB = 1024;
const MiB = 1024 * 1024;
const TEXT_PATTERN = utf8('BAsd7&jh23');
const BINARY_PATTERN = hex('00fe23faf0');

interface BigMessage {
  binary: boolean;
  dataLen: number;
  waitSecs: number;
  /** what goes out, built lazily (up to 16 MiB) */
  payload: () => Buffer;
  send: (c: BigMessageCase, payload: Buffer) => void;
}

/** 9.1 .. 9.6: one big message, judged when its echo arrives. */
class BigMessageCase extends Case {
  spec!: BigMessage;
  private sent: Buffer | null = null;

  override init(): void {
    this.reportTime = true;
  }

  override onOpen(): void {
    const s = this.spec;
    this.p.createWirelog = false;
    this.behavior = Verdict.FAILED;
    this.expectedClose = { closedByMe: true, closeCode: [CloseCode.NORMAL], requireClean: true };
    this.result = `Did not receive message within ${s.waitSecs} seconds.`;
    this.sent = s.payload();
    s.send(this, this.sent);
    this.p.closeAfter(s.waitSecs);
  }

  override onMessage(payload: Buffer, binary: boolean): void {
    const s = this.spec;
    const kind = s.binary ? 'binary' : 'text';
    if (binary !== s.binary) {
      this.result = s.binary
        ? 'Expected binary message with payload, but got text.'
        : 'Expected text message with payload, but got binary.';
    } else if (payload.length !== s.dataLen) {
      this.result = `Expected ${kind} message with payload of length ${s.dataLen}, but got ${payload.length}.`;
    } else {
      this.behavior = Verdict.OK;
      this.result = `Received ${kind} message of length ${payload.length}.`;
      if (this.sent !== null && !payload.equals(this.sent)) {
        this.result += ' (Note: the echoed payload content differs from what was sent; Autobahn judges length only.)';
      }
    }
    this.sent = null;
    this.p.createWirelog = true;
    this.p.sendClose(CloseCode.NORMAL);
  }
}

function bigMessage(id: string, spec: BigMessage): CaseDef {
  const [description, expectation] = text(id);
  return {
    id,
    description,
    expectation,
    create: (p) => {
      const c = new BigMessageCase(p, { id, description, expectation });
      c.spec = spec;
      return c;
    },
  };
}

/** 9.1 / 9.2: one frame of `dataLen` octets (a repeated pattern). */
function singleFrame(id: string, binary: boolean, dataLen: number, waitSecs: number, chopsize: number | null = null): CaseDef {
  const pattern = binary ? BINARY_PATTERN : TEXT_PATTERN;
  return bigMessage(id, {
    binary,
    dataLen,
    waitSecs,
    payload: () => repeatPayload(pattern, dataLen),
    send: (c) => c.p.sendFrame({ opcode: binary ? 2 : 1, payload: pattern, payloadLen: dataLen, chopsize }),
  });
}

/** 9.3 / 9.4: a 4 MiB message in fragments of `fragSize`. */
function fragmented(id: string, binary: boolean, fragSize: number, octet: number): CaseDef {
  const dataLen = 4 * MiB;
  return bigMessage(id, {
    binary,
    dataLen,
    waitSecs: 100,
    payload: () => Buffer.alloc(dataLen, octet),
    send: (c, payload) => c.p.sendMessage(payload, binary, fragSize),
  });
}

const STAR = 0x2a;

const CASES_9_1: CaseDef[] = [
  singleFrame('9.1.1', false, 64 * KiB, 10),
  singleFrame('9.1.2', false, 256 * KiB, 10),
  singleFrame('9.1.3', false, 1 * MiB, 100),
  singleFrame('9.1.4', false, 4 * MiB, 100),
  singleFrame('9.1.5', false, 8 * MiB, 100),
  singleFrame('9.1.6', false, 16 * MiB, 100),
];

const CASES_9_2: CaseDef[] = [
  singleFrame('9.2.1', true, 64 * KiB, 10),
  singleFrame('9.2.2', true, 256 * KiB, 10),
  singleFrame('9.2.3', true, 1 * MiB, 10),
  singleFrame('9.2.4', true, 4 * MiB, 10),
  singleFrame('9.2.5', true, 8 * MiB, 100),
  singleFrame('9.2.6', true, 16 * MiB, 100),
];

const FRAG_SIZES = [64, 256, 1 * KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB];

const CASES_9_3: CaseDef[] = FRAG_SIZES.map((f, i) => fragmented(`9.3.${i + 1}`, false, f, STAR));
// 9.4.1 sends 0xfe octets, 9.4.2 .. 9.4.9 send "*" octets (as in the original)
const CASES_9_4: CaseDef[] = FRAG_SIZES.map((f, i) => fragmented(`9.4.${i + 1}`, true, f, i === 0 ? 0xfe : STAR));

const CHOP_SIZES = [64, 128, 256, 512, 1024, 2048];

const CASES_9_5: CaseDef[] = CHOP_SIZES.map((chop, i) => singleFrame(`9.5.${i + 1}`, false, 1 * MiB, 1000, chop));
const CASES_9_6: CaseDef[] = CHOP_SIZES.map((chop, i) => singleFrame(`9.6.${i + 1}`, true, 1 * MiB, 1000, chop));

// 9.7 / 9.8: 1000 messages, one at a time, each sent when the previous echo arrived

const RTT_TESTS: ReadonlyArray<readonly [len: number, count: number, waitSecs: number]> = [
  [0, 1000, 60],
  [16, 1000, 60],
  [64, 1000, 60],
  [256, 1000, 120],
  [1024, 1000, 240],
  [4096, 1000, 480],
];

function roundTrips(id: string, binary: boolean, len: number, count: number, waitSecs: number): CaseDef {
  class RoundTrips extends Case {
    private sentCount = 0;

    override init(): void {
      this.reportTime = true;
    }

    override onOpen(): void {
      this.p.enableWirelog(false);
      this.behavior = Verdict.FAILED;
      this.expectedClose = { closedByMe: true, closeCode: [CloseCode.NORMAL], requireClean: true };
      this.result = `Case did not finish within ${waitSecs} seconds.`;
      this.p.closeAfter(waitSecs);
      this.sentCount = 0;
      this.sendOne();
    }

    sendOne(): void {
      if (binary) {
        this.p.sendFrame({ opcode: 2, payload: Buffer.from([0xfe]), payloadLen: len });
      } else {
        this.p.sendFrame({ opcode: 1, payload: utf8('*'), payloadLen: len });
      }
      this.sentCount += 1;
    }

    override onMessage(payload: Buffer, isBinary: boolean): void {
      const pyBool = (b: boolean): string => (b ? 'True' : 'False');
      if (isBinary !== binary || payload.length !== len) {
        this.behavior = Verdict.FAILED;
        this.result = `Echo'ed message type or length differs from what I sent (got binary = ${pyBool(isBinary)}, payload length = ${payload.length}).`;
        this.p.enableWirelog(true);
        this.p.sendClose(CloseCode.NORMAL);
      } else if (this.sentCount < count) {
        this.sendOne();
      } else {
        this.behavior = Verdict.OK;
        this.result = 'Ok, received all echo\'ed messages in time.';
        this.p.enableWirelog(true);
        this.p.sendClose(CloseCode.NORMAL);
      }
    }
  }
  const mt = binary ? 'binary' : 'text';
  return defineCase(
    id,
    `Send ${count} ${mt} messages of payload size ${len} to measure implementation/network RTT (round trip time) / latency.`,
    `Receive echo'ed ${mt} messages (with payload as sent). Timeout case after ${waitSecs} secs.`,
    RoundTrips,
  );
}

const CASES_9_7: CaseDef[] = RTT_TESTS.map(([len, count, wait], i) => roundTrips(`9.7.${i + 1}`, false, len, count, wait));
const CASES_9_8: CaseDef[] = RTT_TESTS.map(([len, count, wait], i) => roundTrips(`9.8.${i + 1}`, true, len, count, wait));

export const CASES_9: CaseDef[] = [
  ...CASES_9_1,
  ...CASES_9_2,
  ...CASES_9_3,
  ...CASES_9_4,
  ...CASES_9_5,
  ...CASES_9_6,
  ...CASES_9_7,
  ...CASES_9_8,
];

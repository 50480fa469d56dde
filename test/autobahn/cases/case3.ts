/** 3.x Reserved bits: any RSV bit set without a negotiated extension must fail the connection. */
import type { CaseDef } from '../case.js';
import type { SendFrameOptions } from '../fuzzing.js';
import { FAIL_1002_BY_PEER, Verdict, hex, scripted, utf8 } from './util.js';

const HELLO = utf8('Hello, world!');

/** One frame with RSV set; the peer must fail the connection. */
function single(id: string, frame: SendFrameOptions): CaseDef {
  return scripted(id, (c, p) => {
    c.expected.set(Verdict.OK, []);
    c.expectedClose = FAIL_1002_BY_PEER();
    p.sendFrame(frame);
    p.killAfter(1);
  });
}

/**
 * A valid text message, the same with RSV set, then a ping. The echo of the
 * first message is expected (or nothing: non-strict), never the pong.
 */
function sequence(id: string, rsv: number, wire: { sync?: boolean; chopsize?: number }): CaseDef {
  return scripted(id, (c, p) => {
    c.expected.set(Verdict.OK, [['message', HELLO, false]]);
    c.expected.set(Verdict.NON_STRICT, []);
    c.expectedClose = FAIL_1002_BY_PEER();
    p.sendFrame({ opcode: 1, payload: HELLO, ...wire });
    p.sendFrame({ opcode: 1, payload: HELLO, rsv, ...wire });
    p.sendFrame({ opcode: 9, ...wire });
    p.killAfter(1);
  });
}

export const CASES_3: CaseDef[] = [
  single('3.1', { opcode: 1, payload: HELLO, rsv: 1 }),
  sequence('3.2', 2, {}),
  sequence('3.3', 3, { sync: true }),
  sequence('3.4', 4, { chopsize: 1 }),
  single('3.5', { opcode: 2, payload: hex('00fffefdfcfb00ff'), rsv: 5 }),
  // described as "Ping with RSV = 6", but Autobahn sends a binary frame
  single('3.6', { opcode: 2, payload: HELLO, rsv: 6 }),
  single('3.7', { opcode: 8, rsv: 7 }),
];

/** 4.x Opcodes: reserved non-control (3-7) and control (11-15) opcodes must fail the connection. */
import type { CaseDef } from '../case.js';
import { FAIL_1002_BY_PEER, Verdict, scripted, utf8 } from './util.js';

const HELLO = utf8('Hello, world!');
const RESERVED_PAYLOAD = utf8('reserved opcode payload');

/** One frame with a reserved opcode (optionally with payload). */
function single(id: string, opcode: number, withPayload: boolean): CaseDef {
  return scripted(id, (c, p) => {
    c.expected.set(Verdict.OK, []);
    c.expectedClose = FAIL_1002_BY_PEER();
    p.sendFrame({ opcode, ...(withPayload ? { payload: RESERVED_PAYLOAD } : {}) });
    p.killAfter(1);
  });
}

/** Text message, reserved-opcode frame, ping: echo expected (or nothing), no pong. */
function sequence(id: string, opcode: number, withPayload: boolean, chopsize: number | null): CaseDef {
  return scripted(id, (c, p) => {
    c.expected.set(Verdict.OK, [['message', HELLO, false]]);
    c.expected.set(Verdict.NON_STRICT, []);
    c.expectedClose = FAIL_1002_BY_PEER();
    p.sendFrame({ opcode: 1, payload: HELLO, chopsize });
    p.sendFrame({ opcode, ...(withPayload ? { payload: HELLO } : {}), chopsize });
    p.sendFrame({ opcode: 9, chopsize });
    p.killAfter(1);
  });
}

export const CASES_4: CaseDef[] = [
  single('4.1.1', 3, false),
  single('4.1.2', 4, true),
  sequence('4.1.3', 5, false, null),
  sequence('4.1.4', 6, true, null),
  sequence('4.1.5', 7, true, 1),
  single('4.2.1', 11, false),
  single('4.2.2', 12, true),
  sequence('4.2.3', 13, false, null),
  sequence('4.2.4', 14, true, null),
  sequence('4.2.5', 15, true, 1),
];

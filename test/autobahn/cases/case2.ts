/** 2.x Pings/Pongs. */
import type { CaseDef, Observed } from '../case.js';
import { CLOSE_NORMAL_BY_ME, FAIL_1002_BY_PEER, Verdict, fill, hex, scripted, utf8 } from './util.js';

/** Send one ping, expect its pong, close after `closeAfter` seconds at the latest. */
function pingPong(id: string, payload: Buffer | null, closeAfter: number, chopsize: number | null = null): CaseDef {
  return scripted(id, (c, p) => {
    c.expected.set(Verdict.OK, [['pong', payload ?? Buffer.alloc(0)]]);
    c.expectedClose = CLOSE_NORMAL_BY_ME();
    p.sendFrame({ opcode: 9, ...(payload !== null ? { payload } : {}), chopsize });
    p.closeAfter(closeAfter);
  });
}

/** Ten pings with payloads, expect ten pongs in order. */
function tenPings(id: string, chopsize: number | null): CaseDef {
  return scripted(id, (c, p) => {
    const expected: Observed[] = [];
    c.expected.set(Verdict.OK, expected);
    for (let i = 0; i < 10; i++) {
      const payload = utf8(`payload-${i}`);
      expected.push(['pong', payload]);
      p.sendFrame({ opcode: 9, payload, chopsize });
    }
    c.expectedClose = CLOSE_NORMAL_BY_ME();
    p.closeAfter(3);
  });
}

export const CASES_2: CaseDef[] = [
  pingPong('2.1', null, 1),
  pingPong('2.2', utf8('Hello, world!'), 1),
  pingPong('2.3', hex('00fffefdfcfb00ff'), 1),
  pingPong('2.4', fill(125, 0xfe), 1),
  scripted('2.5', (c, p) => {
    c.expected.set(Verdict.OK, []);
    c.expectedClose = FAIL_1002_BY_PEER();
    p.sendFrame({ opcode: 9, payload: fill(126, 0xfe) });
    p.killAfter(1);
  }),
  pingPong('2.6', fill(125, 0xfe), 2, 1),
  scripted('2.7', (c, p) => {
    c.expected.set(Verdict.OK, []);
    c.expectedClose = CLOSE_NORMAL_BY_ME();
    p.sendFrame({ opcode: 10 });
    p.sendClose(p.CLOSE.NORMAL);
    p.closeAfter(1);
  }),
  scripted('2.8', (c, p) => {
    c.expected.set(Verdict.OK, []);
    c.expectedClose = CLOSE_NORMAL_BY_ME();
    p.sendFrame({ opcode: 10, payload: utf8('unsolicited pong payload') });
    p.sendClose(p.CLOSE.NORMAL);
    p.closeAfter(1);
  }),
  scripted('2.9', (c, p) => {
    const payload = utf8('ping payload');
    c.expected.set(Verdict.OK, [['pong', payload]]);
    c.expectedClose = CLOSE_NORMAL_BY_ME();
    p.sendFrame({ opcode: 10, payload: utf8('unsolicited pong payload') });
    p.sendFrame({ opcode: 9, payload });
    p.closeAfter(1);
  }),
  tenPings('2.10', null),
  tenPings('2.11', 1),
];

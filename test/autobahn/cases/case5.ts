/** 5.x Fragmentation. */
import { Case, defineCase, type CaseDef } from '../case.js';
import type { SendFrameOptions } from '../fuzzing.js';
import { CLOSE_NORMAL_BY_ME, FAIL_1002_BY_PEER, Verdict, scripted, text, utf8 } from './util.js';

const HELLO = utf8('Hello, world!');
const NON_CONT = utf8('non-continuation payload');
const F = [1, 2, 3, 4, 5].map((i) => utf8(`fragment${i}`)) as [Buffer, Buffer, Buffer, Buffer, Buffer];

/** A sequence of frames the peer must reject with 1002. */
function rejected(id: string, frames: SendFrameOptions[]): CaseDef {
  return scripted(id, (c, p) => {
    c.expected.set(Verdict.OK, []);
    c.expectedClose = FAIL_1002_BY_PEER();
    for (const f of frames) p.sendFrame(f);
    p.killAfter(1);
  });
}

/** A text message in two fragments, optionally with a ping in between. */
function twoFragments(id: string, wire: { sync?: boolean; chopsize?: number }, ping: boolean): CaseDef {
  return scripted(id, (c, p) => {
    const pingPayload = utf8('ping payload');
    const message = Buffer.concat([F[0], F[1]]);
    c.expected.set(Verdict.OK, ping ? [['pong', pingPayload], ['message', message, false]] : [['message', message, false]]);
    c.expectedClose = CLOSE_NORMAL_BY_ME();
    p.sendFrame({ opcode: 1, fin: false, payload: F[0], ...wire });
    if (ping) p.sendFrame({ opcode: 9, fin: true, payload: pingPayload, ...wire });
    p.sendFrame({ opcode: 0, fin: true, payload: F[1], ...wire });
    p.closeAfter(1);
  });
}

/** 5.19 / 5.20: fragmented message with pings in between and a pause of 1 s. */
function interleaved(id: string, sync: boolean): CaseDef {
  const pings = [utf8('pongme 1!'), utf8('pongme 2!')] as const;
  class Interleaved extends Case {
    override onOpen(): void {
      this.expected.set(Verdict.OK, [
        ['pong', pings[0]],
        ['pong', pings[1]],
        ['message', Buffer.concat(F), false],
      ]);
      this.expectedClose = CLOSE_NORMAL_BY_ME();
      this.p.sendFrame({ opcode: 1, fin: false, payload: F[0], sync });
      this.p.sendFrame({ opcode: 0, fin: false, payload: F[1], sync });
      this.p.sendFrame({ opcode: 9, fin: true, payload: pings[0], sync });
      this.p.continueLater(1, () => this.part2());
    }

    part2(): void {
      this.p.sendFrame({ opcode: 0, fin: false, payload: F[2], sync });
      this.p.sendFrame({ opcode: 0, fin: false, payload: F[3], sync });
      this.p.sendFrame({ opcode: 9, fin: true, payload: pings[1], sync });
      this.p.sendFrame({ opcode: 0, fin: true, payload: F[4], sync });
      this.p.closeAfter(1);
    }
  }
  const [description, expectation] = text(id);
  return defineCase(id, description, expectation, Interleaved);
}

export const CASES_5: CaseDef[] = [
  rejected('5.1', [
    { opcode: 9, fin: false, payload: F[0] },
    { opcode: 0, fin: true, payload: F[1] },
  ]),
  rejected('5.2', [
    { opcode: 10, fin: false, payload: F[0] },
    { opcode: 0, fin: true, payload: F[1] },
  ]),
  twoFragments('5.3', {}, false),
  twoFragments('5.4', { sync: true }, false),
  twoFragments('5.5', { chopsize: 1 }, false),
  twoFragments('5.6', {}, true),
  twoFragments('5.7', { sync: true }, true),
  twoFragments('5.8', { chopsize: 1 }, true),
  rejected('5.9', [
    { opcode: 0, fin: true, payload: NON_CONT },
    { opcode: 1, fin: true, payload: HELLO },
  ]),
  rejected('5.10', [
    { opcode: 0, fin: true, payload: NON_CONT, sync: true },
    { opcode: 1, fin: true, payload: HELLO, sync: true },
  ]),
  rejected('5.11', [
    { opcode: 0, fin: true, payload: NON_CONT, chopsize: 1 },
    { opcode: 1, fin: true, payload: HELLO, chopsize: 1 },
  ]),
  rejected('5.12', [
    { opcode: 0, fin: false, payload: NON_CONT },
    { opcode: 1, fin: true, payload: HELLO },
  ]),
  rejected('5.13', [
    { opcode: 0, fin: false, payload: NON_CONT, sync: true },
    { opcode: 1, fin: true, payload: HELLO, sync: true },
  ]),
  rejected('5.14', [
    { opcode: 0, fin: false, payload: NON_CONT, chopsize: 1 },
    { opcode: 1, fin: true, payload: HELLO, chopsize: 1 },
  ]),
  scripted('5.15', (c, p) => {
    c.expected.set(Verdict.OK, [['message', Buffer.concat([F[0], F[1]]), false]]);
    c.expected.set(Verdict.NON_STRICT, []);
    c.expectedClose = FAIL_1002_BY_PEER();
    p.sendFrame({ opcode: 1, fin: false, payload: F[0] });
    p.sendFrame({ opcode: 0, fin: true, payload: F[1] });
    p.sendFrame({ opcode: 0, fin: false, payload: F[2] });
    p.sendFrame({ opcode: 1, fin: true, payload: F[3] });
    p.killAfter(1);
  }),
  rejected('5.16', [
    { opcode: 0, fin: false, payload: F[0] },
    { opcode: 1, fin: false, payload: F[1] },
    { opcode: 0, fin: true, payload: F[2] },
    { opcode: 0, fin: false, payload: F[0] },
    { opcode: 1, fin: false, payload: F[1] },
    { opcode: 0, fin: true, payload: F[2] },
  ]),
  rejected('5.17', [
    { opcode: 0, fin: true, payload: F[0] },
    { opcode: 1, fin: false, payload: F[1] },
    { opcode: 0, fin: true, payload: F[2] },
    { opcode: 0, fin: true, payload: F[0] },
    { opcode: 1, fin: false, payload: F[1] },
    { opcode: 0, fin: true, payload: F[2] },
  ]),
  rejected('5.18', [
    { opcode: 1, fin: false, payload: F[0] },
    { opcode: 1, fin: true, payload: F[1] },
  ]),
  interleaved('5.19', false),
  interleaved('5.20', true),
];

/** 1.x Framing: text (1.1.x) and binary (1.2.x) messages of increasing size, echoed. */
import type { CaseDef } from '../case.js';
import { CLOSE_NORMAL_BY_ME, Verdict, fill, scripted } from './util.js';

const SIZES = [0, 125, 126, 127, 128, 65535, 65536, 65536] as const;

function section(sub: 1 | 2, binary: boolean): CaseDef[] {
  return SIZES.map((size, k) => {
    const payload = fill(size, binary ? 0xfe : 0x2a /* "*" */);
    const chopsize = k === 7 ? 997 : null; // 1.x.8 sends its octets in chops of 997
    const kill = size > 128 ? 10 : 1;
    return scripted(`1.${sub}.${k + 1}`, (c, p) => {
      c.expected.set(Verdict.OK, [['message', payload, binary]]);
      c.expectedClose = CLOSE_NORMAL_BY_ME();
      p.sendFrame({ opcode: binary ? 2 : 1, payload, chopsize });
      p.killAfter(kill);
    });
  });
}

export const CASES_1: CaseDef[] = [...section(1, false), ...section(2, true)];

/**
 * 6.x UTF-8 handling: valid text in odd fragmentations (6.1, 6.2), invalid
 * text (6.3), fail-fast on invalid UTF-8 (6.4), and the decoder vectors
 * 6.5.1 .. 6.23.7 generated from `createUtf8TestSequences()`.
 */
import { Case, defineCase, type CaseDef } from '../case.js';
import { State } from '../fuzzing.js';
import { createUtf8TestSequences } from './utf8-sequences.js';
import {
  CLOSE_NORMAL_BY_ME,
  FAIL_1007_BY_PEER,
  Verdict,
  hex,
  scripted,
  text,
  utf8,
} from './util.js';

/** printf-style %s substitution for the description templates. */
function format(template: string, ...args: string[]): string {
  let i = 0;
  return template.replace(/%s/g, () => args[i++] ?? '');
}

const EXPECT_ECHO = "The message is echo'ed back to us.";
const EXPECT_FAIL = 'The connection is failed immediately, since the payload is not valid UTF-8.';

// 6.1 Valid UTF-8 with zero payload fragments

const CASES_6_1: CaseDef[] = [
  scripted('6.1.1', (c, p) => {
    c.expected.set(Verdict.OK, [['message', Buffer.alloc(0), false]]);
    c.expectedClose = CLOSE_NORMAL_BY_ME();
    p.sendFrame({ opcode: 1, payload: Buffer.alloc(0) });
    p.closeAfter(1);
  }),
  scripted('6.1.2', (c, p) => {
    c.expected.set(Verdict.OK, [['message', Buffer.alloc(0), false]]);
    c.expectedClose = CLOSE_NORMAL_BY_ME();
    p.sendFrame({ opcode: 1, fin: false });
    p.sendFrame({ opcode: 0, fin: false });
    p.sendFrame({ opcode: 0, fin: true });
    p.closeAfter(1);
  }),
  scripted('6.1.3', (c, p) => {
    const payload = utf8('middle frame payload');
    c.expected.set(Verdict.OK, [['message', payload, false]]);
    c.expectedClose = CLOSE_NORMAL_BY_ME();
    p.sendFrame({ opcode: 1, fin: false });
    p.sendFrame({ opcode: 0, fin: false, payload });
    p.sendFrame({ opcode: 0, fin: true });
    p.closeAfter(1);
  }),
];

// 6.2 Valid UTF-8 unfragmented, fragmented on code-points and within code-points

const HELLO_UTF8 = utf8('Hello-µ@ßöäüàá-UTF-8!!');
const HELLO_1 = utf8('Hello-µ@ßöä');
const HELLO_2 = utf8('üàá-UTF-8!!');
const KOSME = hex('cebae1bdb9cf83cebcceb5'); // "κόσμε"

function validMessage(id: string, payload: Buffer, fragmentSize: number | null): CaseDef {
  const template = text(id)[0];
  return scripted(
    id,
    (c, p) => {
      c.expected.set(Verdict.OK, [['message', payload, false]]);
      c.expectedClose = CLOSE_NORMAL_BY_ME();
      p.sendMessage(payload, false, fragmentSize);
      p.closeAfter(1);
    },
    [format(template, payload.toString('utf8'), payload.toString('hex')), EXPECT_ECHO],
  );
}

const CASES_6_2: CaseDef[] = [
  validMessage('6.2.1', HELLO_UTF8, null),
  scripted(
    '6.2.2',
    (c, p) => {
      c.expected.set(Verdict.OK, [['message', Buffer.concat([HELLO_1, HELLO_2]), false]]);
      c.expectedClose = CLOSE_NORMAL_BY_ME();
      p.sendFrame({ opcode: 1, fin: false, payload: HELLO_1 });
      p.sendFrame({ opcode: 0, fin: true, payload: HELLO_2 });
      p.closeAfter(1);
    },
    [
      format(text('6.2.2')[0], HELLO_1.toString('utf8'), HELLO_1.toString('hex'), HELLO_2.toString('utf8'), HELLO_2.toString('hex')),
      EXPECT_ECHO,
    ],
  ),
  validMessage('6.2.3', HELLO_UTF8, 1),
  validMessage('6.2.4', KOSME, 1),
];

// 6.3 Invalid UTF-8 differently fragmented (invalid exactly on octet 12: \xa0)

const INVALID = Buffer.concat([KOSME, hex('eda080'), hex('656469746564')]);

function invalidMessage(id: string, fragmentSize: number | null): CaseDef {
  return scripted(
    id,
    (c, p) => {
      c.expected.set(Verdict.OK, []);
      c.expectedClose = FAIL_1007_BY_PEER();
      p.sendMessage(INVALID, false, fragmentSize);
      p.killAfter(1);
    },
    [format(text(id)[0], INVALID.toString('hex')), EXPECT_FAIL],
  );
}

const CASES_6_3: CaseDef[] = [invalidMessage('6.3.1', null), invalidMessage('6.3.2', 1)];

// 6.4 Fail-fast on invalid UTF-8: three parts with a 1 s pause after each of
// the first two; a fail-fast peer closes right after the second part.

const PART1 = KOSME;
const PART2 = hex('f4908080'); // invalid exactly on octet 12 (\x90): 0x110000
const PART3 = hex('656469746564');
const PAYLOAD_6_4 = Buffer.concat([PART1, PART2, PART3]);

/** How the three parts go out: as three frames, or as three chops of one frame. */
type PartSender = (p: Case['p'], part: Buffer, index: 0 | 1 | 2) => void;

const asFrames: PartSender = (p, part, index) => {
  p.sendFrame({ opcode: index === 0 ? 1 : 0, fin: index === 2, payload: part });
};

const asChops: PartSender = (p, part, index) => {
  if (index === 0) {
    p.beginMessage();
    p.beginMessageFrame(PAYLOAD_6_4.length);
  }
  p.sendMessageFrameData(part);
  if (index === 2) p.endMessage();
};

function failFast(id: string, parts: readonly [Buffer, Buffer, Buffer], send: PartSender, partsText: readonly string[]): CaseDef {
  class FailFast extends Case {
    override onOpen(): void {
      this.expected.set(Verdict.OK, [['timeout', 'A']]);
      this.expected.set(Verdict.NON_STRICT, [
        ['timeout', 'A'],
        ['timeout', 'B'],
      ]);
      this.expectedClose = FAIL_1007_BY_PEER();
      send(this.p, parts[0], 0);
      this.p.continueLater(1, () => this.part2(), 'A');
    }

    part2(): void {
      if (this.p.state === State.OPEN) {
        this.received.push(['timeout', 'A']);
        send(this.p, parts[1], 1);
        this.p.continueLater(1, () => this.part3(), 'B');
      }
    }

    part3(): void {
      if (this.p.state === State.OPEN) {
        this.received.push(['timeout', 'B']);
        send(this.p, parts[2], 2);
        this.p.killAfter(1);
      }
    }
  }
  const [template, expectation] = text(id);
  return defineCase(id, format(template, ...partsText), expectation, FailFast);
}

const SPLIT_AT_12: readonly [Buffer, Buffer, Buffer] = [
  PAYLOAD_6_4.subarray(0, 12),
  PAYLOAD_6_4.subarray(12, 13),
  PAYLOAD_6_4.subarray(13),
];
const SPLIT_PARTS: readonly [Buffer, Buffer, Buffer] = [PART1, PART2, PART3];
const hexOf = (parts: readonly Buffer[]): string[] => parts.map((b) => b.toString('hex'));

const CASES_6_4: CaseDef[] = [
  failFast('6.4.1', SPLIT_PARTS, asFrames, hexOf(SPLIT_PARTS)),
  failFast('6.4.2', SPLIT_AT_12, asFrames, hexOf(SPLIT_AT_12)),
  failFast('6.4.3', SPLIT_PARTS, asChops, hexOf(SPLIT_PARTS)),
  // the original's description prints PART3[13:] (empty) for the third part
  failFast('6.4.4', SPLIT_AT_12, asChops, [...hexOf(SPLIT_AT_12.slice(0, 2)), '']),
];

// 6.5 .. 6.23: one text message per UTF-8 decoder vector

/** Names of the generated subsections 6.5 .. 6.23. */
export const CASE_6_SUBCATEGORIES: Record<string, string> = {};

function utf8VectorCases(): CaseDef[] {
  const out: CaseDef[] = [];
  createUtf8TestSequences().forEach((group, gi) => {
    const section = `6.${gi + 5}`;
    CASE_6_SUBCATEGORIES[section] = group.name;
    group.vectors.forEach((v, vi) => {
      const desc = v.valid
        ? 'Send a text message with payload which is valid UTF-8 in one fragment.'
        : 'Send a text message with payload which is not valid UTF-8 in one fragment.';
      const payload = v.payload;
      out.push(
        scripted(
          `${section}.${vi + 1}`,
          (c, p) => {
            if (v.valid) {
              c.expected.set(Verdict.OK, [['message', payload, false]]);
              c.expectedClose = CLOSE_NORMAL_BY_ME();
            } else {
              c.expected.set(Verdict.OK, []);
              c.expectedClose = FAIL_1007_BY_PEER();
            }
            p.sendMessage(payload, false);
            p.killAfter(0.5);
          },
          [`${desc}<br><br>Payload: 0x${payload.toString('hex')}`, v.valid ? EXPECT_ECHO : EXPECT_FAIL],
        ),
      );
    });
  });
  return out;
}

export const CASES_6: CaseDef[] = [...CASES_6_1, ...CASES_6_2, ...CASES_6_3, ...CASES_6_4, ...utf8VectorCases()];

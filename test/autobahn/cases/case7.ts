/** 7.x Close handling (all fuzzer initiated). */
import { Case, defineCase, Verdict, type CaseDef } from '../case.js';
import { CloseCode } from '../fuzzing.js';
import { hex, text, utf8 } from './util.js';

/**
 * Most 7.x cases: a wrong close code from the peer is a failure of the case
 * itself, not only of the closing behaviour.
 */
class CloseCase extends Case {
  override onConnectionLost(failedByMe: boolean): void {
    super.onConnectionLost(failedByMe);
    if (this.behaviorClose === Verdict.WRONG_CODE) {
      this.behavior = Verdict.FAILED;
      this.passed = false;
      this.result = this.resultClose;
    }
  }
}

type CloseScript = (c: Case) => void;

function closeCase(id: string, script: CloseScript, opts: { suppressClose?: boolean; texts?: readonly [string, string] } = {}): CaseDef {
  class Scripted extends CloseCase {
    override init(): void {
      if (opts.suppressClose === true) this.suppressClose = true;
    }
    override onOpen(): void {
      script(this);
    }
  }
  const [d, e] = opts.texts ?? text(id);
  return defineCase(id, d, e, Scripted);
}

const NORMAL_CLEAN_BY_ME = { closedByMe: true, closeCode: [CloseCode.NORMAL], requireClean: true };
const HELLO_WORLD = utf8('Hello World!');
const INVALID_UTF8 = hex('cebae1bdb9cf83cebcceb5eda080656469746564');

// 7.1 Basic close behavior

class Case7_1_6 extends Case {
  private readonly DATALEN = 256 * 1024;
  private readonly PAYLOAD = utf8('BAsd7&jh23');

  override init(): void {
    this.suppressClose = true;
  }

  override onOpen(): void {
    this.expected.set(Verdict.OK, [['message', HELLO_WORLD, false]]);
    this.expected.set(Verdict.NON_STRICT, []);
    this.expectedClose = { ...NORMAL_CLEAN_BY_ME };
    this.p.sendFrame({ opcode: 1, payload: this.PAYLOAD, payloadLen: this.DATALEN });
    this.p.sendFrame({ opcode: 1, payload: HELLO_WORLD });
    this.p.sendClose(CloseCode.NORMAL);
    this.p.sendFrame({ opcode: 9 });
    this.p.killAfter(1);
  }

  override onConnectionLost(failedByMe: boolean): void {
    super.onConnectionLost(failedByMe);
    this.passed = true;
    if (this.behavior === Verdict.OK) {
      this.result = 'Text message was processed before close.';
    } else if (this.behavior === Verdict.NON_STRICT) {
      this.result = 'Close was processed before text message could be returned.';
    }
    this.behavior = Verdict.INFORMATIONAL;
    this.behaviorClose = Verdict.INFORMATIONAL;
  }
}

const CASES_7_1: CaseDef[] = [
  closeCase('7.1.1', (c) => {
    c.expected.set(Verdict.OK, [['message', HELLO_WORLD, false]]);
    c.expectedClose = { ...NORMAL_CLEAN_BY_ME };
    c.p.sendFrame({ opcode: 1, payload: HELLO_WORLD });
    c.p.killAfter(1);
  }),
  closeCase(
    '7.1.2',
    (c) => {
      c.expected.set(Verdict.OK, []);
      c.expectedClose = { ...NORMAL_CLEAN_BY_ME };
      c.p.sendClose(CloseCode.NORMAL);
      c.p.sendFrame({ opcode: 8 });
      c.p.killAfter(1);
    },
    { suppressClose: true },
  ),
  closeCase(
    '7.1.3',
    (c) => {
      c.expected.set(Verdict.OK, []);
      c.expectedClose = { ...NORMAL_CLEAN_BY_ME };
      c.p.sendClose(CloseCode.NORMAL);
      c.p.sendFrame({ opcode: 9 });
      c.p.killAfter(1);
    },
    { suppressClose: true },
  ),
  closeCase(
    '7.1.4',
    (c) => {
      c.expected.set(Verdict.OK, []);
      c.expectedClose = { ...NORMAL_CLEAN_BY_ME };
      c.p.sendClose(CloseCode.NORMAL);
      c.p.sendFrame({ opcode: 1, payload: HELLO_WORLD });
      c.p.killAfter(1);
    },
    { suppressClose: true },
  ),
  closeCase(
    '7.1.5',
    (c) => {
      c.expected.set(Verdict.OK, []);
      c.expectedClose = { ...NORMAL_CLEAN_BY_ME };
      c.p.sendFrame({ opcode: 1, fin: false, payload: utf8('fragment1') });
      c.p.sendClose(CloseCode.NORMAL);
      c.p.sendFrame({ opcode: 0, fin: true, payload: utf8('fragment2') });
      c.p.killAfter(1);
    },
    { suppressClose: true },
  ),
  defineCase('7.1.6', ...text('7.1.6'), Case7_1_6),
];

// 7.3 Close frame structure: payload length

const PROTOCOL_ERROR_BY_ME = { closedByMe: true, closeCode: [CloseCode.PROTOCOL_ERROR], requireClean: false };

const CASES_7_3: CaseDef[] = [
  closeCase(
    '7.3.1',
    (c) => {
      c.expected.set(Verdict.OK, []);
      c.expectedClose = { ...NORMAL_CLEAN_BY_ME };
      c.p.sendCloseFrame();
      c.p.killAfter(1);
    },
    { suppressClose: true },
  ),
  closeCase(
    '7.3.2',
    (c) => {
      c.expected.set(Verdict.OK, []);
      c.expectedClose = { ...PROTOCOL_ERROR_BY_ME };
      c.p.sendCloseFrame(null, utf8('a'));
      c.p.killAfter(1);
    },
    { suppressClose: true },
  ),
  closeCase(
    '7.3.3',
    (c) => {
      c.expected.set(Verdict.OK, []);
      c.expectedClose = { ...NORMAL_CLEAN_BY_ME };
      c.p.sendClose(CloseCode.NORMAL);
      c.p.killAfter(1);
    },
    { suppressClose: true },
  ),
  closeCase(
    '7.3.4',
    (c) => {
      c.expected.set(Verdict.OK, []);
      c.expectedClose = { ...NORMAL_CLEAN_BY_ME };
      c.p.sendClose(CloseCode.NORMAL, 'Hello World!');
      c.p.killAfter(1);
    },
    { suppressClose: true },
  ),
  closeCase(
    '7.3.5',
    (c) => {
      c.expected.set(Verdict.OK, []);
      c.expectedClose = { ...NORMAL_CLEAN_BY_ME };
      c.p.sendClose(CloseCode.NORMAL, '*'.repeat(123));
      c.p.killAfter(1);
    },
    { suppressClose: true },
  ),
  closeCase(
    '7.3.6',
    (c) => {
      c.expected.set(Verdict.OK, []);
      c.expectedClose = { ...PROTOCOL_ERROR_BY_ME };
      // total close payload 126 octets: an invalid control frame
      c.p.sendCloseFrame(CloseCode.NORMAL, utf8('*'.repeat(124)));
      c.p.killAfter(1);
    },
    { suppressClose: true },
  ),
];

// 7.5 Close frame structure: payload value

class Case7_5_1 extends CloseCase {
  override init(): void {
    this.suppressClose = true;
  }

  override onOpen(): void {
    this.expected.set(Verdict.OK, []);
    this.expectedClose = {
      closedByMe: true,
      closeCode: [CloseCode.PROTOCOL_ERROR, CloseCode.INVALID_PAYLOAD],
      requireClean: false,
    };
    this.p.sendCloseFrame(CloseCode.NORMAL, INVALID_UTF8);
    this.p.killAfter(1);
  }
}

// 7.7 valid close codes (the peer echoes the code or answers 1000)

const VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999];

const CASES_7_7: CaseDef[] = VALID_CODES.map((code, i) =>
  closeCase(
    `7.7.${i + 1}`,
    (c) => {
      c.expected.set(Verdict.OK, []);
      c.expectedClose = { closedByMe: true, closeCode: [CloseCode.NORMAL, code], requireClean: true };
      c.p.sendCloseFrame(code);
      c.p.killAfter(1);
    },
    { texts: [`Send close with valid close code ${code}`, 'Clean close with normal or echoed code'] },
  ),
);

// 7.9 invalid close codes (the peer must answer 1002 or drop TCP)

const INVALID_CODES = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999];

const CASES_7_9: CaseDef[] = INVALID_CODES.map((code, i) =>
  closeCase(
    `7.9.${i + 1}`,
    (c) => {
      c.expected.set(Verdict.OK, []);
      c.expectedClose = { ...PROTOCOL_ERROR_BY_ME };
      c.p.sendCloseFrame(code);
      c.p.killAfter(1);
    },
    { texts: [`Send close with invalid close code ${code}`, 'Clean close with protocol error code or drop TCP'] },
  ),
);

// 7.13 Informational close information: behaviour undefined by the spec

function informationalClose(id: string, code: number): CaseDef {
  class Informational extends Case {
    override init(): void {
      this.suppressClose = true;
    }

    override onOpen(): void {
      this.expected.set(Verdict.OK, []);
      this.expectedClose = {
        closedByMe: true,
        closeCode: [CloseCode.NORMAL, code, CloseCode.PROTOCOL_ERROR],
        requireClean: false,
      };
      this.p.sendCloseFrame(code);
      this.p.killAfter(1);
    }

    override onConnectionLost(failedByMe: boolean): void {
      super.onConnectionLost(failedByMe);
      this.passed = true;
      this.behavior = Verdict.INFORMATIONAL;
      this.behaviorClose = Verdict.INFORMATIONAL;
      this.result = 'Actual events are undefined by the spec.';
    }
  }
  return defineCase(id, ...text(id), Informational);
}

export const CASES_7: CaseDef[] = [
  ...CASES_7_1,
  ...CASES_7_3,
  defineCase('7.5.1', ...text('7.5.1'), Case7_5_1),
  ...CASES_7_7,
  ...CASES_7_9,
  informationalClose('7.13.1', 5000),
  informationalClose('7.13.2', 65535),
];

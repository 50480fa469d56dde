/** 10.x Misc: auto-fragmentation of outgoing messages. */
import { Case, defineCase, Verdict, type CaseDef } from '../case.js';
import { CloseCode } from '../fuzzing.js';
import { text } from './util.js';

/**
 * 10.1.1 (as in Autobahn) checks the fuzzer's own auto-fragmentation: the
 * 64 KiB message must go out as 1 text frame plus 50 continuation frames of
 * at most 1300 octets, and the echo must come back intact.
 */
class Case10_1_1 extends Case {
  private readonly payload = Buffer.alloc(65536, 0x2a);

  override onOpen(): void {
    this.p.autoFragmentSize = 1300;
    this.expected.set(Verdict.OK, [['message', this.payload, false]]);
    this.expectedClose = { closedByMe: true, closeCode: [CloseCode.NORMAL], requireClean: true };
    this.p.sendMessage(this.payload);
    this.p.killAfter(10);
  }

  override onConnectionLost(failedByMe: boolean): void {
    super.onConnectionLost(failedByMe);
    if (this.p.connectionWasOpen) {
      const size = this.p.autoFragmentSize;
      const expected = { 0: Math.floor(this.payload.length / size), 1: this.payload.length % size > 0 ? 1 : 0 };
      const got = { 0: this.p.txFrameStats[0] ?? 0, 1: this.p.txFrameStats[1] ?? 0 };
      if (expected[0] !== got[0] || expected[1] !== got[1]) {
        this.behavior = Verdict.FAILED;
        this.result = `Frames transmitted ${JSON.stringify(got)} does not match what we expected ${JSON.stringify(expected)}.`;
      }
    } else {
      this.behavior = Verdict.FAILED;
      this.result = 'WebSocket connection was never open';
    }
  }
}

export const CASES_10: CaseDef[] = [defineCase('10.1.1', ...text('10.1.1'), Case10_1_1)];

/**
 * Base class of all fuzzing cases, a port of Autobahn TestSuite's `Case`
 * (autobahntestsuite/case/case.py).
 *
 * A case fills `expected` (verdict -> list of events it expects to observe)
 * and `expectedClose` in `onOpen()`, drives the connection through the
 * protocol object `p`, and the verdicts are computed in `onConnectionLost()`:
 *
 *  - `behavior`: the first verdict whose expected event list equals the
 *    observed `received` list exactly (otherwise FAILED);
 *  - `behaviorClose`: from the closing handshake bookkeeping of `p`
 *    (wrong endpoint closed -> FAILED, unclean when clean required ->
 *    UNCLEAN, peer close code not allowed -> WRONG CODE, the client had to
 *    drop TCP -> FAILED BY CLIENT, else OK).
 */
import type { FuzzingProtocol } from './fuzzing.js';

export const Verdict = {
  OK: 'OK',
  NON_STRICT: 'NON-STRICT',
  FAILED: 'FAILED',
  WRONG_CODE: 'WRONG CODE',
  UNCLEAN: 'UNCLEAN',
  FAILED_BY_CLIENT: 'FAILED BY CLIENT',
  INFORMATIONAL: 'INFORMATIONAL',
  UNIMPLEMENTED: 'UNIMPLEMENTED',
} as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

/** Events a case observes, shaped like Autobahn's `self.received` tuples. */
export type Observed =
  | readonly ['message', Buffer, boolean]
  | readonly ['ping', Buffer]
  | readonly ['pong', Buffer]
  | readonly ['timeout', string];

export interface ExpectedClose {
  /** True when the fuzzer (we) must be the one starting the closing handshake. */
  closedByMe: boolean;
  /** Close codes the peer may send; the first one is what we send when we close. */
  closeCode: number[];
  /** The closing handshake must be complete and the server must drop TCP. */
  requireClean: boolean;
  /** UTF-8 cases: the wrong endpoint closing means the peer never noticed the bad payload. */
  closedByWrongEndpointIsFatal?: boolean;
}

export interface CaseInfo {
  id: string;
  description: string;
  expectation: string;
}

/** Deep equality of observed-event lists (Autobahn compares pickles). */
export function sameEvents(a: readonly Observed[], b: readonly Observed[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.length !== y.length || x[0] !== y[0]) return false;
    for (let k = 1; k < x.length; k++) {
      const u = x[k as 1];
      const v = y[k as 1];
      if (Buffer.isBuffer(u) && Buffer.isBuffer(v)) {
        if (!u.equals(v)) return false;
      } else if (u !== v) {
        return false;
      }
    }
  }
  return true;
}

export class Case {
  readonly p: FuzzingProtocol;
  readonly info: CaseInfo;

  received: Observed[] = [];
  /** Expected event lists by verdict, in insertion order. */
  expected = new Map<Verdict, Observed[]>();
  expectedClose: ExpectedClose | null = null;

  behavior: Verdict = Verdict.FAILED;
  behaviorClose: Verdict = Verdict.FAILED;
  result = 'Actual events differ from any expected.';
  resultClose = 'TCP connection was dropped without close handshake';
  passed = false;
  /** Report the duration prominently (the 9.x performance cases). */
  reportTime = false;
  /** Suppress the automatic close in finishWhenDone (cases sending odd closes). */
  suppressClose = false;

  constructor(p: FuzzingProtocol, info: CaseInfo) {
    this.p = p;
    this.info = info;
  }

  /** Called by the runner right after construction (Autobahn's `init`). */
  init(): void {}

  onOpen(): void {}

  onMessage(payload: Buffer, binary: boolean): void {
    this.received.push(['message', payload, binary]);
    this.finishWhenDone();
  }

  /**
   * Kept for parity with Autobahn's Case; like Autobahn's fuzzing client the
   * protocol answers pings itself and never reports them to the case.
   */
  onPing(payload: Buffer): void {
    this.received.push(['ping', payload]);
    this.finishWhenDone();
  }

  onPong(payload: Buffer): void {
    this.received.push(['pong', payload]);
    this.finishWhenDone();
  }

  onClose(_wasClean: boolean, _code: number | null, _reason: string | null): void {}

  onConnectionLost(_failedByMe: boolean): void {
    for (const [verdict, events] of this.expected) {
      if (sameEvents(this.received, events)) {
        this.behavior = verdict;
        this.passed = true;
        this.result = 'Actual events match at least one expected.';
        break;
      }
    }

    const p = this.p;
    if (p.connectionWasOpen) {
      const ec = this.expectedClose;
      if (ec === null) {
        throw new Error(`case ${this.info.id} did not set expectedClose`);
      }
      if (ec.closedByMe !== p.closedByMe) {
        this.behaviorClose = Verdict.FAILED;
        this.resultClose = 'The connection was failed by the wrong endpoint';
      } else if (ec.requireClean && !p.wasClean) {
        this.behaviorClose = Verdict.UNCLEAN;
        this.resultClose = 'The spec requires the connection to be failed cleanly here';
      } else if (p.remoteCloseCode !== null && !ec.closeCode.includes(p.remoteCloseCode)) {
        this.behaviorClose = Verdict.WRONG_CODE;
        this.resultClose = `The close code should have been ${ec.closeCode.join(',')} or empty`;
      } else if (p.droppedByMe) {
        // we are always the client: the server should have closed TCP
        this.behaviorClose = Verdict.FAILED_BY_CLIENT;
        this.resultClose = 'It is preferred that the server close the TCP connection';
      } else {
        this.behaviorClose = Verdict.OK;
        this.resultClose = 'Connection was properly closed';
      }

      // UTF-8 cases: closing by the wrong endpoint means the peer did not
      // detect the invalid UTF-8 at all
      if (ec.closedByWrongEndpointIsFatal === true && ec.closedByMe !== p.closedByMe) {
        this.behavior = Verdict.FAILED;
      }
    } else {
      this.behaviorClose = Verdict.FAILED;
      this.resultClose = 'The WebSocket opening handshake was never completed!';
    }
  }

  /**
   * When the observed events match every expected list, start the closing
   * handshake if we are the side supposed to close.
   */
  finishWhenDone(): void {
    for (const events of this.expected.values()) {
      if (!sameEvents(this.received, events)) return;
    }
    const ec = this.expectedClose;
    if (ec !== null && ec.closedByMe && !this.suppressClose) {
      this.p.sendClose(ec.closeCode[0]!);
    }
  }
}

/** Constructor shape of case classes. */
export type CaseClass = new (p: FuzzingProtocol, info: CaseInfo) => Case;

/** A runnable case: its id, texts, and how to build it for a connection. */
export interface CaseDef extends CaseInfo {
  create(p: FuzzingProtocol): Case;
  /**
   * When set, the case cannot be reproduced faithfully by this port; the
   * runner reports it as UNIMPLEMENTED with this reason and never runs it.
   */
  unimplemented?: string;
}

export function defineCase(id: string, description: string, expectation: string, klass: CaseClass): CaseDef {
  const info: CaseInfo = { id, description, expectation };
  return { ...info, create: (p) => new klass(p, info) };
}

/** Small helpers shared by the case sections. */
import { Case, defineCase, type CaseDef, type ExpectedClose } from '../case.js';
import { CloseCode, type FuzzingProtocol } from '../fuzzing.js';
import { CASE_TEXT } from './text.js';

export { Verdict } from '../case.js';

/** UTF-8 octets of a string. */
export const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

/** Octets from hex ("cebae1bdb9"). */
export const hex = (h: string): Buffer => Buffer.from(h, 'hex');

/** `n` copies of one octet. */
export const fill = (n: number, octet: number): Buffer => Buffer.alloc(n, octet);

/** Description and expectation carried over from the Autobahn case file. */
export function text(id: string): readonly [string, string] {
  const t = CASE_TEXT[id];
  if (t === undefined) throw new Error(`no description for case ${id}`);
  return t;
}

/** Normal close by us: clean, code 1000 (most echo cases). */
export const CLOSE_NORMAL_BY_ME = (): ExpectedClose => ({
  closedByMe: true,
  closeCode: [CloseCode.NORMAL],
  requireClean: true,
});

/** The peer must fail the connection with 1002, cleanliness not required. */
export const FAIL_1002_BY_PEER = (): ExpectedClose => ({
  closedByMe: false,
  closeCode: [CloseCode.PROTOCOL_ERROR],
  requireClean: false,
});

/** The peer must fail the connection with 1007 (and must be the one to do so). */
export const FAIL_1007_BY_PEER = (): ExpectedClose => ({
  closedByMe: false,
  closeCode: [CloseCode.INVALID_PAYLOAD],
  requireClean: false,
  closedByWrongEndpointIsFatal: true,
});

export type Script = (c: Case, p: FuzzingProtocol) => void;

/** A case whose whole behaviour is its onOpen script (most of Autobahn's cases). */
export function scripted(id: string, script: Script, texts: readonly [string, string] = text(id)): CaseDef {
  class Scripted extends Case {
    override onOpen(): void {
      script(this, this.p);
    }
  }
  return defineCase(id, texts[0], texts[1], Scripted);
}

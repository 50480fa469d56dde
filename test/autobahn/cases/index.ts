/**
 * The case list, numbered exactly as in Autobahn TestSuite
 * (autobahntestsuite/case/__init__.py), and case pattern resolution.
 *
 * To add a section (e.g. 12.x / 13.x permessage-deflate later): write
 * `caseN.ts` exporting `CASES_N: CaseDef[]`, append it to ALL_CASES, and add
 * its (sub)category names below. A case that cannot be reproduced faithfully
 * is registered with `unimplemented: "<reason>"` and is reported as
 * UNIMPLEMENTED, never run.
 */
import type { CaseDef } from '../case.js';
import { CASES_1 } from './case1.js';
import { CASES_2 } from './case2.js';
import { CASES_3 } from './case3.js';
import { CASES_4 } from './case4.js';
import { CASES_5 } from './case5.js';
import { CASES_6, CASE_6_SUBCATEGORIES } from './case6.js';
import { CASES_7 } from './case7.js';
import { CASES_9 } from './case9.js';
import { CASES_10 } from './case10.js';

export const CASE_CATEGORIES: Readonly<Record<string, string>> = {
  '0': 'Handshake',
  '1': 'Framing',
  '2': 'Pings/Pongs',
  '3': 'Reserved Bits',
  '4': 'Opcodes',
  '5': 'Fragmentation',
  '6': 'UTF-8 Handling',
  '7': 'Close Handling',
  '8': 'Misc',
  '9': 'Limits/Performance',
  '10': 'Misc',
  '12': 'WebSocket Compression (different payloads)',
  '13': 'WebSocket Compression (different parameters)',
};

export const CASE_SUBCATEGORIES: Readonly<Record<string, string>> = {
  '1.1': 'Text Messages',
  '1.2': 'Binary Messages',
  '4.1': 'Non-control Opcodes',
  '4.2': 'Control Opcodes',
  '6.1': 'Valid UTF-8 with zero payload fragments',
  '6.2': 'Valid UTF-8 unfragmented, fragmented on code-points and within code-points',
  '6.3': 'Invalid UTF-8 differently fragmented',
  '6.4': 'Fail-fast on invalid UTF-8',
  ...CASE_6_SUBCATEGORIES,
  '7.1': 'Basic close behavior (fuzzer initiated)',
  '7.3': 'Close frame structure: payload length (fuzzer initiated)',
  '7.5': 'Close frame structure: payload value (fuzzer initiated)',
  '7.7': 'Close frame structure: valid close codes (fuzzer initiated)',
  '7.9': 'Close frame structure: invalid close codes (fuzzer initiated)',
  '7.13': 'Informational close information (fuzzer initiated)',
  '9.1': 'Text Message (increasing size)',
  '9.2': 'Binary Message (increasing size)',
  '9.3': 'Fragmented Text Message (fixed size, increasing fragment size)',
  '9.4': 'Fragmented Binary Message (fixed size, increasing fragment size)',
  '9.5': 'Text Message (fixed size, increasing chop size)',
  '9.6': 'Binary Text Message (fixed size, increasing chop size)',
  '9.7': 'Text Message Roundtrip Time (fixed number, increasing size)',
  '9.8': 'Binary Message Roundtrip Time (fixed number, increasing size)',
  '10.1': 'Auto-Fragmentation',
};

/** Every case, in Autobahn order. */
export const ALL_CASES: readonly CaseDef[] = [
  ...CASES_1,
  ...CASES_2,
  ...CASES_3,
  ...CASES_4,
  ...CASES_5,
  ...CASES_6,
  ...CASES_7,
  ...CASES_9,
  ...CASES_10,
];

const BY_ID = new Map<string, CaseDef>(ALL_CASES.map((c) => [c.id, c]));

export function getCase(id: string): CaseDef | undefined {
  return BY_ID.get(id);
}

/** '6.4.1' -> [6, 4, 1] */
export function idTuple(id: string): number[] {
  return id.split('.').map(Number);
}

export function compareIds(a: string, b: string): number {
  const x = idTuple(a);
  const y = idTuple(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? -1) - (y[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Resolve case patterns like Autobahn: a pattern with `*` is a prefix match
 * where `.` is literal and `*` matches anything (so `1.*` is 1.1.1 .. 1.2.8
 * but not 10.1.1, and `9.*` is all of 9.x); other patterns are exact ids.
 */
export function resolveCasePatterns(patterns: readonly string[]): string[] {
  const out: string[] = [];
  for (const raw of patterns) {
    const pattern = raw.trim();
    if (pattern === '') continue;
    if (pattern.includes('*')) {
      const re = new RegExp('^' + pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*'));
      out.push(...ALL_CASES.map((c) => c.id).filter((id) => re.test(id)).sort(compareIds));
    } else {
      if (!BY_ID.has(pattern)) throw new Error(`unknown Autobahn case id '${pattern}'`);
      out.push(pattern);
    }
  }
  return out;
}

/** Cases selected by `include` minus `exclude`, sorted and de-duplicated. */
export function selectCases(include: readonly string[], exclude: readonly string[] = []): CaseDef[] {
  const excluded = new Set(resolveCasePatterns(exclude));
  const ids = [...new Set(resolveCasePatterns(include))].filter((id) => !excluded.has(id)).sort(compareIds);
  return ids.map((id) => BY_ID.get(id)!);
}

/** Cases 1 .. 10 (everything implemented so far). */
export const DEFAULT_CASE_PATTERNS: readonly string[] = ['1.*', '2.*', '3.*', '4.*', '5.*', '6.*', '7.*', '9.*', '10.*'];

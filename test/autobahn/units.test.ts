/** Unit checks of the fuzzing client's building blocks (no network). */
import t from 'tap';

import { sameEvents, Verdict } from './case.js';
import { ALL_CASES, resolveCasePatterns, selectCases } from './cases/index.js';
import { createUtf8TestSequences } from './cases/utf8-sequences.js';
import { parseWsUrl, repeatPayload } from './fuzzing.js';
import { caseReportFilename, cleanForFilename, type CaseResult } from './report.js';
import { gate } from './run.js';
import { Utf8Validator, isCompleteUtf8 } from './utf8.js';
import { prng } from '../helpers/random.js';

const strictDecode = (b: Uint8Array): boolean => {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
};

t.test('case list: Autobahn numbering and counts', async (t) => {
  const perSection: Record<string, number> = {};
  for (const c of ALL_CASES) {
    const s = c.id.split('.')[0]!;
    perSection[s] = (perSection[s] ?? 0) + 1;
  }
  t.same(perSection, { 1: 16, 2: 11, 3: 7, 4: 10, 5: 20, 6: 145, 7: 37, 9: 54, 10: 1 });
  t.equal(new Set(ALL_CASES.map((c) => c.id)).size, 301, 'ids are unique');
  const has = (id: string): boolean => ALL_CASES.some((c) => c.id === id);
  for (const id of ['1.2.8', '2.11', '3.7', '4.2.5', '5.20', '6.4.4', '6.22.34', '6.23.7', '7.7.13', '7.9.9', '7.13.2', '9.6.6', '9.8.6', '10.1.1']) {
    t.ok(has(id), `${id} exists`);
  }
  t.notOk(has('6.23.8'));
  t.notOk(has('9.9.1'), '9.9.1 is disabled in Autobahn too');
  for (const c of ALL_CASES) {
    if (c.description === '' || c.expectation === '') t.fail(`${c.id} lacks texts`);
  }
});

t.test('case patterns resolve like Autobahn', async (t) => {
  t.equal(resolveCasePatterns(['1.*']).length, 16);
  t.notOk(resolveCasePatterns(['1.*']).includes('10.1.1'), '1.* does not match 10.1.1');
  t.same(resolveCasePatterns(['6.4.*']), ['6.4.1', '6.4.2', '6.4.3', '6.4.4']);
  t.same(resolveCasePatterns(['7.9.3']), ['7.9.3']);
  t.throws(() => resolveCasePatterns(['7.9.10']), /unknown Autobahn case id/);
  t.same(
    selectCases(['2.1', '1.1.2', '2.*'], ['2.1*']).map((c) => c.id),
    ['1.1.2', '2.2', '2.3', '2.4', '2.5', '2.6', '2.7', '2.8', '2.9'],
    'sorted numerically, de-duplicated, excludes applied',
  );
});

t.test('UTF-8 validator agrees with a strict decoder on every Autobahn vector', async (t) => {
  for (const group of createUtf8TestSequences()) {
    for (const v of group.vectors) {
      t.equal(isCompleteUtf8(v.payload), v.valid, `${group.name}: ${v.payload.toString('hex')}`);
      t.equal(strictDecode(v.payload), v.valid);
      // fed octet by octet, the verdict is the same
      const inc = new Utf8Validator();
      let r = inc.validate(new Uint8Array(0));
      for (const b of v.payload) {
        r = inc.validate(Uint8Array.of(b));
        if (!r.valid) break;
      }
      t.equal(r.valid && r.endsOnCodePoint, v.valid);
    }
  }
});

t.test('UTF-8 validator: incremental positions like Autobahn', async (t) => {
  const v = new Utf8Validator();
  t.same(v.validate(Buffer.from('656469746564', 'hex')), { valid: true, endsOnCodePoint: true, currentIndex: 6, totalIndex: 6 });
  t.same(v.validate(Buffer.from('eda080', 'hex')), { valid: false, endsOnCodePoint: false, currentIndex: 1, totalIndex: 7 });
  v.reset();
  t.same(v.validate(Buffer.from('656469746564ed', 'hex')), { valid: true, endsOnCodePoint: false, currentIndex: 7, totalIndex: 7 });
  t.same(v.validate(Buffer.from('a080', 'hex')), { valid: false, endsOnCodePoint: false, currentIndex: 0, totalIndex: 7 });
  // random data (seeded: the same inputs on every run): same verdict as the strict decoder
  const random = prng(0x75746638);
  const disagreements: string[] = [];
  let valid = 0;
  for (let i = 0; i < 2000; i++) {
    const len = 1 + Math.floor(random() * 8);
    const b = Buffer.alloc(len);
    for (let k = 0; k < len; k++) b[k] = random() < 0.5 ? 0x80 + Math.floor(random() * 0x80) : Math.floor(random() * 0x100);
    const verdict = strictDecode(b);
    if (verdict) valid++;
    if (isCompleteUtf8(b) !== verdict) disagreements.push(b.toString('hex'));
  }
  t.same(disagreements, [], 'the same verdict on 2000 random inputs');
  t.ok(valid > 0 && valid < 2000, `both verdicts among them (${valid} valid)`);
});

t.test('event comparison is exact (type, payload octets, binary flag)', async (t) => {
  const a = Buffer.from('abc');
  t.ok(sameEvents([['message', a, false]], [['message', Buffer.from('abc'), false]]));
  t.notOk(sameEvents([['message', a, false]], [['message', a, true]]));
  t.notOk(sameEvents([['message', a, false]], [['message', Buffer.from('abd'), false]]));
  t.notOk(sameEvents([['pong', a]], [['ping', a]]));
  t.notOk(sameEvents([['pong', a]], [['pong', a], ['pong', a]]));
  t.ok(sameEvents([['timeout', 'A']], [['timeout', 'A']]));
  t.ok(sameEvents([], []));
});

t.test('helpers', async (t) => {
  t.same(parseWsUrl('ws://127.0.0.1:9002'), { secure: false, host: '127.0.0.1', port: 9002, resource: '/' });
  t.same(parseWsUrl('wss://example.org/a/b?x=1'), { secure: true, host: 'example.org', port: 443, resource: '/a/b?x=1' });
  t.throws(() => parseWsUrl('http://x/'));
  t.equal(repeatPayload(Buffer.from('abc'), 7).toString(), 'abcabca');
  t.equal(cleanForFilename('AutobahnPython/0.10.9'), 'autobahnpython_0_10_9');
  t.equal(caseReportFilename('ws', '6.22.34'), 'ws_case_6_22_34.json');
});

t.test('gate: what fails a run', async (t) => {
  const r = (id: string, behavior: string, behaviorClose: string): CaseResult =>
    ({ id, behavior, behaviorClose, result: 'r', resultClose: 'rc' }) as CaseResult;
  const results = [
    r('1.1.1', Verdict.OK, Verdict.OK),
    r('6.4.1', Verdict.NON_STRICT, Verdict.OK),
    r('6.4.2', Verdict.NON_STRICT, Verdict.OK),
    r('7.1.6', Verdict.INFORMATIONAL, Verdict.INFORMATIONAL),
    r('2.1', Verdict.FAILED, Verdict.OK),
    r('7.9.1', Verdict.OK, Verdict.WRONG_CODE),
    r('7.3.2', Verdict.OK, Verdict.FAILED_BY_CLIENT),
    r('12.1.1', Verdict.UNIMPLEMENTED, Verdict.UNIMPLEMENTED),
  ];
  t.same([...gate(results).keys()], ['6.4.1', '6.4.2', '2.1', '7.9.1', '7.3.2', '12.1.1']);
  t.same([...gate(results, { '6.4.*': 'validates at message end', '7.3.2': 'drops late' }).keys()], ['2.1', '7.9.1', '12.1.1']);
  t.throws(() => gate(results, { '6.4.1': '' }), /needs a reason/);
});

/**
 * Proves the fuzzing client honest: a known-good server (the `ws` package)
 * gets the verdicts it is known to get from Autobahn, and deliberately broken
 * servers get exactly the FAILED verdicts their defects deserve.
 *
 * Every server listens on 127.0.0.1 port 0 and is closed in t.teardown.
 */
import fs from 'node:fs';
import path from 'node:path';

import t from 'tap';

import { ALL_CASES, resolveCasePatterns } from './cases/index.js';
import { createUtf8TestSequences } from './cases/utf8-sequences.js';
import type { CaseResult } from './report.js';
import { runSuite } from './run.js';
import { startRawServer, startWsEcho, type TestServer } from './test-servers.js';

/** "<behavior> / <behaviorClose>" per case id. */
function verdicts(results: readonly CaseResult[]): Record<string, string> {
  return Object.fromEntries(results.map((r) => [r.id, `${r.behavior} / ${r.behaviorClose}`]));
}

function ids(prefix: string): string[] {
  return ALL_CASES.map((c) => c.id).filter((id) => id.startsWith(prefix));
}

/**
 * Run each selected case on its own, all at the same time (each still on its
 * own connection). Only for cases whose verdict does not depend on timing
 * against other connections: it keeps the 1-3 s timer waits of 2.x and 6.4.x
 * from adding up.
 */
async function runEachConcurrently(url: string, patterns: string[]): Promise<CaseResult[]> {
  const suites = await Promise.all(resolveCasePatterns(patterns).map((id) => runSuite({ url, cases: [id] })));
  return suites.flatMap((s) => s.results);
}

/** Start a server and close it when the (sub)test ends. */
async function serve(t: { teardown(fn: () => unknown): void }, start: () => Promise<TestServer>): Promise<TestServer> {
  const server = await start();
  t.teardown(() => server.close());
  return server;
}

t.test('the ws package (a known Autobahn-clean server) gets its known verdicts', { timeout: 100_000 }, async (t) => {
  // ws (8.23 installed) limits a message to 16384 fragments by default; 9.3.1 / 9.4.1
  // send 65537 frames per message, so lift the limit (checked separately below).
  const server = await serve(t, () => startWsEcho({ maxFragments: 1 << 20 }));
  const reportDir = t.testdir();
  const suite = await runSuite({ url: server.url, agent: 'ws', reportDir });

  t.equal(suite.results.length, 301, 'runs all 301 cases of 1 .. 10');
  const expected: Record<string, string> = {};
  for (const c of ALL_CASES) expected[c.id] = 'OK / OK';
  // ws validates UTF-8 once a text message is complete, not fail-fast:
  // Autobahn rates that NON-STRICT (the connection is still failed with 1007).
  for (const id of ['6.4.1', '6.4.2', '6.4.3', '6.4.4']) expected[id] = 'NON-STRICT / OK';
  // behaviour left open by the spec
  for (const id of ['7.1.6', '7.13.1', '7.13.2']) expected[id] = 'INFORMATIONAL / INFORMATIONAL';
  t.same(verdicts(suite.results), expected);
  t.equal(suite.summary, 'autobahn: 294 OK, 4 NON-STRICT, 0 FAILED, 3 INFORMATIONAL, 0 UNIMPLEMENTED');
  t.same([...suite.problems.keys()], ['6.4.1', '6.4.2', '6.4.3', '6.4.4'], 'only the NON-STRICT cases break the gate');

  const byId = new Map(suite.results.map((r) => [r.id, r]));
  t.equal(byId.get('2.5')!.remoteCloseCode, 1002, '2.5: oversized ping failed with 1002');
  t.equal(byId.get('6.3.1')!.remoteCloseCode, 1007, '6.3.1: invalid UTF-8 failed with 1007');
  t.equal(byId.get('7.9.1')!.remoteCloseCode, 1002, '7.9.1: close code 0 answered with 1002');
  t.equal(byId.get('7.7.10')!.remoteCloseCode, 3000, '7.7.10: valid close code 3000 echoed');
  t.same(byId.get('6.4.1')!.received, [
    { type: 'timeout', tag: 'A' },
    { type: 'timeout', tag: 'B' },
  ]);

  // reports
  const index = JSON.parse(fs.readFileSync(path.join(reportDir, 'index.json'), 'utf8')) as Record<string, Record<string, Record<string, unknown>>>;
  t.same(Object.keys(index), ['ws']);
  t.equal(Object.keys(index.ws!).length, 301);
  t.same(index.ws!['1.1.1'], {
    behavior: 'OK',
    behaviorClose: 'OK',
    duration: byId.get('1.1.1')!.duration,
    remoteCloseCode: 1000,
    reportfile: 'ws_case_1_1_1.json',
  });
  const page = JSON.parse(fs.readFileSync(path.join(reportDir, 'ws_case_9_1_6.json'), 'utf8')) as CaseResult;
  t.equal(page.id, '9.1.6');
  t.match(page.httpRequest, /^GET \/ HTTP\/1\.1\r\n/);
  t.match(page.httpResponse, /^HTTP\/1\.1 101 /);
  t.equal(page.wasClean, true);
  t.ok(fs.statSync(path.join(reportDir, 'ws_case_9_1_6.json')).size < 200_000, 'huge payloads appear as previews only');
  const readme = fs.readFileSync(path.join(reportDir, 'README.md'), 'utf8');
  t.match(readme, /\| NON-STRICT \| 4 \|/);
  t.match(readme, /\| \[6\.4\.1\]\(ws_case_6_4_1\.json\) \| NON-STRICT/);
});

t.test('ws with its default fragment limit fails the many-fragment 9.x cases', { timeout: 60_000 }, async (t) => {
  const server = await serve(t, () => startWsEcho());
  const suite = await runSuite({ url: server.url, cases: ['9.3.1', '9.3.2', '9.3.3', '9.4.1', '9.4.2'] });
  t.same(verdicts(suite.results), {
    '9.3.1': 'FAILED / FAILED', // 65537 frames: ws closes with 1008 before the message completes
    '9.3.2': 'FAILED / FAILED', // 16385 frames
    '9.3.3': 'OK / OK', // 4097 frames
    '9.4.1': 'FAILED / FAILED',
    '9.4.2': 'FAILED / FAILED',
  });
  t.same(
    suite.results.map((r) => r.remoteCloseCode),
    [1008, 1008, 1000, 1008, 1008],
  );
});


t.test('the raw test server in conformant mode passes the cases used below', { timeout: 60_000 }, async (t) => {
  const server = await serve(t, () => startRawServer());
  // 6.4.x is left out to save 8 s: its fail-fast timing is covered by the ws run above
  const suite = await runSuite({ url: server.url, cases: ['2.*', '6.*', '7.*'], excludeCases: ['6.4.*'] });
  const expected: Record<string, string> = {};
  for (const id of [...ids('2.'), ...ids('6.'), ...ids('7.')]) expected[id] = 'OK / OK';
  for (const id of ids('6.4.')) delete expected[id];
  for (const id of ['7.1.6', '7.13.1', '7.13.2']) expected[id] = 'INFORMATIONAL / INFORMATIONAL';
  t.same(verdicts(suite.results), expected);
});

t.test('a server that does not validate UTF-8 fails every invalid-UTF-8 case', { timeout: 60_000 }, async (t) => {
  const server = await serve(t, () => startRawServer({ validateUtf8: false }));
  const suite = await runSuite({ url: server.url, cases: ['6.*'], excludeCases: ['6.4.*'] });
  const failFast = await runEachConcurrently(server.url, ['6.4.*']);
  const expected: Record<string, string> = {};
  for (const id of [...ids('6.1.'), ...ids('6.2.')]) expected[id] = 'OK / OK';
  // it echoes the invalid text back; we (the client) have to fail the
  // connection, i.e. the wrong endpoint closes: fatal for UTF-8 cases
  for (const id of [...ids('6.3.'), ...ids('6.4.')]) expected[id] = 'FAILED / FAILED';
  createUtf8TestSequences().forEach((group, gi) => {
    group.vectors.forEach((v, vi) => {
      expected[`6.${gi + 5}.${vi + 1}`] = v.valid ? 'OK / OK' : 'FAILED / FAILED';
    });
  });
  t.same(verdicts([...suite.results, ...failFast]), expected);
  t.equal(
    suite.counts.FAILED + failFast.length,
    Object.values(expected).filter((v) => v.startsWith('FAILED')).length,
  );
  t.equal(suite.counts.OK, 141 - suite.counts.FAILED, 'all valid-UTF-8 cases still OK');
});

t.test('a server that echoes any close code back (never answers 1002) fails 7.9.x', { timeout: 60_000 }, async (t) => {
  const server = await serve(t, () => startRawServer({ closeReply: 'echo-any' }));
  const suite = await runSuite({ url: server.url, cases: ['7.*'] });
  const expected: Record<string, string> = {};
  for (const id of ids('7.')) expected[id] = 'OK / OK';
  for (const id of ['7.1.6', '7.13.1', '7.13.2']) expected[id] = 'INFORMATIONAL / INFORMATIONAL';
  // the reserved code comes back instead of 1002
  for (const id of ids('7.9.')) expected[id] = 'FAILED / WRONG CODE';
  // the invalid UTF-8 close reason comes back with code 1000 instead of 1002/1007
  expected['7.5.1'] = 'FAILED / WRONG CODE';
  // a 1-octet close payload comes back: we must fail and drop TCP ourselves
  expected['7.3.2'] = 'OK / FAILED BY CLIENT';
  t.same(verdicts(suite.results), expected);
  t.same(
    suite.results.filter((r) => r.id.startsWith('7.9.')).map((r) => r.remoteCloseCode),
    [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999],
    'the reserved codes were echoed',
  );
});

t.test('a server that ignores pings fails the 2.x cases expecting pongs', { timeout: 60_000 }, async (t) => {
  const server = await serve(t, () => startRawServer({ answerPings: false }));
  const results = await runEachConcurrently(server.url, ['2.*']);
  t.same(verdicts(results), {
    '2.1': 'FAILED / OK',
    '2.2': 'FAILED / OK',
    '2.3': 'FAILED / OK',
    '2.4': 'FAILED / OK',
    '2.5': 'OK / OK', // oversized ping: still failed with 1002
    '2.6': 'FAILED / OK',
    '2.7': 'OK / OK', // unsolicited pongs only
    '2.8': 'OK / OK',
    '2.9': 'FAILED / OK',
    '2.10': 'FAILED / OK',
    '2.11': 'FAILED / OK',
  });
});

t.test('a server that refuses the upgrade fails with the handshake never completed', async (t) => {
  const server = await serve(t, () => startRawServer({ refuseHandshake: 400 }));
  const suite = await runSuite({ url: server.url, cases: ['1.1.1'] });
  const r = suite.results[0]!;
  t.equal(`${r.behavior} / ${r.behaviorClose}`, 'FAILED / FAILED');
  t.equal(r.resultClose, 'The WebSocket opening handshake was never completed!');
  t.equal(r.wasNotCleanReason, 'WebSocket connection upgrade failed (400 - Nope)');
  t.equal(suite.passed, false);
});

t.test('nobody listening: every case FAILED, none OK', async (t) => {
  const server = await startRawServer();
  const url = server.url;
  await server.close();
  const suite = await runSuite({ url, cases: ['1.1.1', '2.1'] });
  t.same(verdicts(suite.results), { '1.1.1': 'FAILED / FAILED', '2.1': 'FAILED / FAILED' });
  t.match(suite.results[0]!.wasNotCleanReason, /ECONNREFUSED/);
});

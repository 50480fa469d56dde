/**
 * Case results and the reports written from them:
 *
 *  - `index.json`: `{ "<agent>": { "<case id>": { behavior, behaviorClose,
 *    duration, remoteCloseCode, reportfile } } }` like Autobahn's;
 *  - one JSON page per case (`<agent>_case_<id>.json`): texts, verdicts,
 *    expected and observed events, opening handshake, closing behaviour,
 *    wire statistics and wire log (payloads as previews only);
 *  - `README.md`: counts per verdict, the cases needing attention, and one
 *    row per case grouped by section.
 */
import fs from 'node:fs';
import path from 'node:path';

import { Verdict, type Case, type ExpectedClose, type Observed } from './case.js';
import { CASE_CATEGORIES, CASE_SUBCATEGORIES, compareIds } from './cases/index.js';
import { textPreview, type FuzzingProtocol, type WireLogEntry } from './fuzzing.js';

/** Observed/expected event as shown in reports (payload as preview). */
export type ReportEvent =
  | { type: 'message'; binary: boolean; length: number; payload: string }
  | { type: 'ping' | 'pong'; length: number; payload: string }
  | { type: 'timeout'; tag: string };

export interface CaseResult {
  /** 1-based position in Autobahn's full case list */
  case: number;
  id: string;
  description: string;
  expectation: string;
  agent: string;
  started: string;
  /** case execution time in ms (from open to TCP close) */
  duration: number;
  reportTime: boolean;
  behavior: Verdict;
  behaviorClose: Verdict;
  expected: Record<string, ReportEvent[]>;
  expectedClose: ExpectedClose | null;
  received: ReportEvent[];
  result: string;
  resultClose: string;
  isServer: false;
  closedByMe: boolean;
  failedByMe: boolean;
  droppedByMe: boolean;
  wasClean: boolean;
  wasNotCleanReason: string | null;
  wasServerConnectionDropTimeout: boolean;
  wasOpenHandshakeTimeout: boolean;
  wasCloseHandshakeTimeout: boolean;
  wasServingFlashSocketPolicyFile: boolean;
  localCloseCode: number | null;
  localCloseReason: string | null;
  remoteCloseCode: number | null;
  remoteCloseReason: string | null;
  /** first protocol violation by the server that made us fail the connection */
  serverViolation: string | null;
  socketError: string | null;
  /** an exception in the harness itself (never expected) */
  harnessError: string | null;
  httpRequest: string;
  httpResponse: string;
  createStats: boolean;
  rxOctetStats: Record<number, number>;
  rxFrameStats: Record<number, number>;
  txOctetStats: Record<number, number>;
  txFrameStats: Record<number, number>;
  createWirelog: boolean;
  wirelog: WireLogEntry[];
  wirelogTruncated: number;
  trafficStats: null;
  reportfile: string;
}

/** Cap on wire log rows kept in a case report. */
export const MAX_WIRELOG_ROWS = 4000;

export function reportEvent(e: Observed): ReportEvent {
  switch (e[0]) {
    case 'message':
      return { type: 'message', binary: e[2], length: e[1].length, payload: textPreview(e[1]) };
    case 'ping':
    case 'pong':
      return { type: e[0], length: e[1].length, payload: textPreview(e[1]) };
    case 'timeout':
      return { type: 'timeout', tag: e[1] };
  }
}

/** Autobahn's cleanForFilename: lower case, [a-z0-9] kept, runs of others become "_". */
export function cleanForFilename(s: string): string {
  const s0 = [...s.trim().toLowerCase()].map((c) => (/[a-z0-9]/.test(c) ? c : ' ')).join('');
  return s0.trim().replace(/ /g, '_');
}

export function caseReportFilename(agent: string, id: string): string {
  return `${cleanForFilename(agent)}_case_${id.replace(/\./g, '_')}.json`;
}

function closeReasonText(b: Buffer | null): string | null {
  if (b === null) return null;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    return b.toString('hex'); // invalid UTF-8 reason (7.5.1): shown as hex, as Autobahn does
  }
}

/** Build the report record of a finished case. */
export function caseResult(index: number, c: Case, p: FuzzingProtocol): CaseResult {
  const expected: Record<string, ReportEvent[]> = {};
  for (const [verdict, events] of c.expected) expected[verdict] = events.map(reportEvent);
  const wirelog = p.wirelog.length > MAX_WIRELOG_ROWS ? p.wirelog.slice(0, MAX_WIRELOG_ROWS) : p.wirelog;
  const opened = p.caseStart > 0;
  return {
    case: index,
    id: c.info.id,
    description: c.info.description,
    expectation: c.info.expectation,
    agent: p.agent,
    started: p.started,
    duration: Math.round((opened ? p.caseEnd - p.caseStart : p.caseEnd - p.connectStart) || 0),
    reportTime: c.reportTime,
    behavior: c.behavior,
    behaviorClose: c.behaviorClose,
    expected,
    expectedClose: c.expectedClose,
    received: c.received.map(reportEvent),
    result: c.result,
    resultClose: c.resultClose,
    isServer: false,
    closedByMe: p.closedByMe,
    failedByMe: p.failedByMe,
    droppedByMe: p.droppedByMe,
    wasClean: p.wasClean,
    wasNotCleanReason: p.wasNotCleanReason,
    wasServerConnectionDropTimeout: p.wasServerConnectionDropTimeout,
    wasOpenHandshakeTimeout: p.wasOpenHandshakeTimeout,
    wasCloseHandshakeTimeout: p.wasCloseHandshakeTimeout,
    wasServingFlashSocketPolicyFile: p.wasServingFlashSocketPolicyFile,
    localCloseCode: p.localCloseCode,
    localCloseReason: closeReasonText(p.localCloseReason),
    remoteCloseCode: p.remoteCloseCode,
    remoteCloseReason: p.remoteCloseReason,
    serverViolation: p.firstViolation,
    socketError: p.socketError,
    harnessError: p.caseError,
    httpRequest: p.httpRequest,
    httpResponse: p.httpResponse,
    createStats: p.createStats,
    rxOctetStats: p.rxOctetStats,
    rxFrameStats: p.rxFrameStats,
    txOctetStats: p.txOctetStats,
    txFrameStats: p.txFrameStats,
    createWirelog: p.createWirelog,
    wirelog,
    wirelogTruncated: p.wirelog.length - wirelog.length,
    trafficStats: null,
    reportfile: caseReportFilename(p.agent, c.info.id),
  };
}

/** A result for a case that is registered as not reproducible by this port. */
export function unimplementedResult(
  index: number,
  info: { id: string; description: string; expectation: string },
  agent: string,
  reason: string,
): CaseResult {
  return {
    case: index,
    id: info.id,
    description: info.description,
    expectation: info.expectation,
    agent,
    started: new Date().toISOString(),
    duration: 0,
    reportTime: false,
    behavior: Verdict.UNIMPLEMENTED,
    behaviorClose: Verdict.UNIMPLEMENTED,
    expected: {},
    expectedClose: null,
    received: [],
    result: `Not implemented by this port: ${reason}`,
    resultClose: 'Case was not run.',
    isServer: false,
    closedByMe: false,
    failedByMe: false,
    droppedByMe: false,
    wasClean: false,
    wasNotCleanReason: null,
    wasServerConnectionDropTimeout: false,
    wasOpenHandshakeTimeout: false,
    wasCloseHandshakeTimeout: false,
    wasServingFlashSocketPolicyFile: false,
    localCloseCode: null,
    localCloseReason: null,
    remoteCloseCode: null,
    remoteCloseReason: null,
    serverViolation: null,
    socketError: null,
    harnessError: null,
    httpRequest: '?',
    httpResponse: '?',
    createStats: false,
    rxOctetStats: {},
    rxFrameStats: {},
    txOctetStats: {},
    txFrameStats: {},
    createWirelog: false,
    wirelog: [],
    wirelogTruncated: 0,
    trafficStats: null,
    reportfile: caseReportFilename(agent, info.id),
  };
}

// ---------------------------------------------------------------------------
// summary

/** The behaviours a case can end with (behaviorClose has more values). */
export const SUMMARY_VERDICTS = [
  Verdict.OK,
  Verdict.NON_STRICT,
  Verdict.FAILED,
  Verdict.INFORMATIONAL,
  Verdict.UNIMPLEMENTED,
] as const;

export function countVerdicts(results: readonly CaseResult[]): Record<(typeof SUMMARY_VERDICTS)[number], number> {
  const counts = { OK: 0, 'NON-STRICT': 0, FAILED: 0, INFORMATIONAL: 0, UNIMPLEMENTED: 0 };
  for (const r of results) {
    const b = r.behavior;
    if (b in counts) counts[b as keyof typeof counts] += 1;
    else counts.FAILED += 1; // any other value is a failure
  }
  return counts;
}

/** `autobahn: 298 OK, 0 NON-STRICT, 0 FAILED, 3 INFORMATIONAL, 0 UNIMPLEMENTED` */
export function summaryLine(results: readonly CaseResult[]): string {
  const c = countVerdicts(results);
  return `autobahn: ${SUMMARY_VERDICTS.map((v) => `${c[v]} ${v}`).join(', ')}`;
}

// ---------------------------------------------------------------------------
// writing

export interface ReportMeta {
  url: string;
  startedAt: string;
  durationMs: number;
  /** case id -> reason, for NON-STRICT / close verdicts accepted on purpose */
  allowList?: Readonly<Record<string, string>>;
  /** case id -> why it breaks the gate (see run.ts `gate`) */
  problems?: ReadonlyMap<string, string>;
}

function writeJson(file: string, data: unknown): void {
  fs.writeFileSync(file, JSON.stringify(data, null, 3) + '\n');
}

/** Write index.json, one JSON page per case and README.md into `dir`. */
export function writeReports(dir: string, results: readonly CaseResult[], meta: ReportMeta): void {
  fs.mkdirSync(dir, { recursive: true });
  const sorted = [...results].sort((a, b) => compareIds(a.id, b.id));

  // index.json describes this run only: drop case pages of earlier runs
  for (const f of fs.readdirSync(dir)) {
    if (/^[a-z0-9_]*_case_[0-9_]+\.json$/.test(f)) fs.rmSync(path.join(dir, f));
  }

  const index: Record<string, Record<string, unknown>> = {};
  for (const r of sorted) {
    index[r.agent] ??= {};
    index[r.agent]![r.id] = {
      behavior: r.behavior,
      behaviorClose: r.behaviorClose,
      duration: r.duration,
      remoteCloseCode: r.remoteCloseCode,
      reportfile: r.reportfile,
    };
    writeJson(path.join(dir, r.reportfile), r);
  }
  writeJson(path.join(dir, 'index.json'), index);
  fs.writeFileSync(path.join(dir, 'README.md'), renderMarkdown(sorted, meta));
}

function md(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\s+/g, ' ').trim();
}

/** Description without HTML, first sentence-ish, for the table. */
function shortDescription(d: string): string {
  const plain = d.split('<')[0]!.replace(/\s+/g, ' ').trim();
  return plain.length > 110 ? plain.slice(0, 107) + '...' : plain;
}

export function renderMarkdown(results: readonly CaseResult[], meta: ReportMeta): string {
  const counts = countVerdicts(results);
  const agents = [...new Set(results.map((r) => r.agent))];
  const lines: string[] = [];
  lines.push('# Autobahn TestSuite report (TypeScript port of the fuzzing client)');
  lines.push('');
  lines.push(`- Agent: **${agents.join(', ') || '-'}**`);
  lines.push(`- Server: \`${meta.url}\``);
  lines.push(`- Run: ${meta.startedAt}, ${results.length} cases in ${(meta.durationMs / 1000).toFixed(1)} s`);
  lines.push('');
  lines.push('| Verdict | Cases |');
  lines.push('| --- | ---: |');
  for (const v of SUMMARY_VERDICTS) lines.push(`| ${v} | ${counts[v]} |`);
  lines.push('');
  lines.push(
    '`Behavior` is the case verdict (observed events vs. expected), `Close` the verdict on the closing ' +
      'handshake (`OK`, `FAILED`, `UNCLEAN`, `WRONG CODE`, `FAILED BY CLIENT`, `INFORMATIONAL`), ' +
      '`Code` the close code the server sent. Each case links to its JSON page with the wire log.',
  );
  lines.push('');

  const problems = meta.problems ?? new Map<string, string>();
  const allow = meta.allowList ?? {};
  const attention = results.filter((r) => problems.has(r.id) || r.behavior !== Verdict.OK && r.behavior !== Verdict.INFORMATIONAL || allow[r.id] !== undefined);
  if (attention.length > 0) {
    lines.push('## Needs attention');
    lines.push('');
    lines.push('| Case | Behavior | Close | Why |');
    lines.push('| --- | --- | --- | --- |');
    for (const r of attention) {
      const why = problems.get(r.id) ?? (allow[r.id] !== undefined ? `allow-listed: ${allow[r.id]}` : r.result);
      lines.push(`| [${r.id}](${r.reportfile}) | ${r.behavior} | ${r.behaviorClose} | ${md(why)}; ${md(r.resultClose)} |`);
    }
    lines.push('');
  }

  lines.push('## Cases');
  let lastCat = '';
  let lastSub = '';
  for (const r of results) {
    const parts = r.id.split('.');
    const cat = parts[0]!;
    const sub = parts.slice(0, 2).join('.');
    if (cat !== lastCat) {
      lines.push('');
      lines.push(`### ${cat} ${CASE_CATEGORIES[cat] ?? 'Misc'}`);
      lastCat = cat;
      lastSub = '';
    }
    if (sub !== lastSub) {
      const subName = parts.length > 2 ? CASE_SUBCATEGORIES[sub] : undefined;
      lines.push('');
      if (subName !== undefined) lines.push(`**${sub} ${subName}**`, '');
      lines.push('| Case | Behavior | Close | Code | Time | Description |');
      lines.push('| --- | --- | --- | ---: | ---: | --- |');
      lastSub = sub;
    }
    const mark = allow[r.id] !== undefined ? ' (allowed)' : problems.has(r.id) ? ' ⚠' : '';
    lines.push(
      `| [${r.id}](${r.reportfile}) | ${r.behavior}${mark} | ${r.behaviorClose} | ${r.remoteCloseCode ?? '-'} | ${r.duration} ms | ${md(shortDescription(r.description))} |`,
    );
  }
  lines.push('');
  return lines.join('\n');
}

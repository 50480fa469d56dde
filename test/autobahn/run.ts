/**
 * Running the suite: one TCP connection per case, cases strictly one after
 * another (like Autobahn's fuzzing client), optional reports.
 *
 *   const { results, counts } = await runSuite({ url: 'ws://127.0.0.1:9002/', cases: ['1.*', '6.4.*'] })
 */
import fs from 'node:fs';

import { Verdict, type CaseDef } from './case.js';
import { ALL_CASES, DEFAULT_CASE_PATTERNS, resolveCasePatterns, selectCases } from './cases/index.js';
import { FuzzingProtocol, type FuzzingOptions } from './fuzzing.js';
import {
  caseResult,
  countVerdicts,
  summaryLine,
  unimplementedResult,
  writeReports,
  type CaseResult,
  type ReportEvent,
} from './report.js';

export interface RunSuiteOptions {
  /** ws:// (or wss://) URL of the server under test. */
  url: string;
  /** Case patterns as in Autobahn (`1.*`, `6.4.*`, `7.9.3`); default: all of 1 .. 10. */
  cases?: readonly string[];
  /** Patterns to leave out. */
  excludeCases?: readonly string[];
  /** Agent name in the reports; default: the server's `Server` header, else "UnknownServer". */
  agent?: string;
  /** Write index.json, per-case JSON pages and README.md here (nothing is written when unset). */
  reportDir?: string;
  /** Allow-list for the gate and the README (case id/pattern -> reason). */
  allowList?: Readonly<Record<string, string>>;
  /** Called after each case. */
  onCase?: (result: CaseResult, index: number, total: number) => void;
  /** Protocol timeouts (seconds); the defaults are Autobahn's. */
  timeouts?: Pick<FuzzingOptions, 'openHandshakeTimeout' | 'closeHandshakeTimeout' | 'serverConnectionDropTimeout' | 'replyCloseWatchdog'>;
}

export interface SuiteResult {
  url: string;
  agent: string;
  startedAt: string;
  durationMs: number;
  results: CaseResult[];
  counts: ReturnType<typeof countVerdicts>;
  /** e.g. "autobahn: 298 OK, 0 NON-STRICT, 0 FAILED, 3 INFORMATIONAL, 0 UNIMPLEMENTED" */
  summary: string;
  /** Cases that break the gate (see `gate`), id -> reason. */
  problems: Map<string, string>;
  /** True when there are no problems. */
  passed: boolean;
}

const CASE_NUMBER = new Map(ALL_CASES.map((c, i) => [c.id, i + 1]));

/** Run one case on its own connection. */
export async function runCase(def: CaseDef, options: Omit<RunSuiteOptions, 'cases' | 'excludeCases' | 'reportDir' | 'onCase' | 'allowList'>): Promise<CaseResult> {
  const index = CASE_NUMBER.get(def.id) ?? 0;
  if (def.unimplemented !== undefined) {
    return unimplementedResult(index, def, options.agent ?? 'UnknownServer', def.unimplemented);
  }
  const p = new FuzzingProtocol({
    url: options.url,
    ...(options.agent !== undefined ? { agent: options.agent } : {}),
    ...options.timeouts,
  });
  const c = def.create(p);
  c.init();
  p.setCase(c);
  await p.run();
  return caseResult(index, c, p);
}

/**
 * Which results make a run fail:
 *  - behavior FAILED or UNIMPLEMENTED (or any unknown value);
 *  - behavior NON-STRICT, unless allow-listed with a reason;
 *  - closing behaviour FAILED, UNCLEAN or WRONG CODE (non-conformant close),
 *    FAILED BY CLIENT (server did not drop TCP itself; a SHOULD), unless
 *    allow-listed with a reason.
 * INFORMATIONAL cases never fail the run.
 */
export function gate(results: readonly CaseResult[], allowList: Readonly<Record<string, string>> = {}): Map<string, string> {
  const allowed = expandAllowList(allowList);
  const problems = new Map<string, string>();
  for (const r of results) {
    const reason = allowed.get(r.id);
    const ok = (v: string): boolean => v === Verdict.OK || v === Verdict.INFORMATIONAL;
    if (r.behavior === Verdict.FAILED || r.behavior === Verdict.UNIMPLEMENTED || !(ok(r.behavior) || r.behavior === Verdict.NON_STRICT)) {
      problems.set(r.id, `behavior ${r.behavior}: ${r.result}`);
    } else if (r.behavior === Verdict.NON_STRICT && reason === undefined) {
      const strict = r.expected?.[Verdict.OK];
      problems.set(
        r.id,
        `behavior NON-STRICT (not allow-listed): observed [${describeEvents(r.received ?? [])}]` +
          (strict !== undefined ? `, strict expectation [${describeEvents(strict)}]` : ''),
      );
    } else if (!ok(r.behaviorClose) && reason === undefined) {
      problems.set(r.id, `close ${r.behaviorClose}: ${r.resultClose}`);
    }
  }
  return problems;
}

/** `timeout A, pong (9 octets), text message (13 octets)` */
export function describeEvents(events: readonly ReportEvent[]): string {
  return events
    .map((e) =>
      e.type === 'timeout'
        ? `timeout ${e.tag}`
        : e.type === 'message'
          ? `${e.binary ? 'binary' : 'text'} message (${e.length} octets)`
          : `${e.type} (${e.length} octets)`,
    )
    .join(', ');
}

export function expandAllowList(allowList: Readonly<Record<string, string>>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [pattern, reason] of Object.entries(allowList)) {
    if (typeof reason !== 'string' || reason.trim() === '') {
      throw new Error(`allow-list entry '${pattern}' needs a reason`);
    }
    for (const id of resolveCasePatterns([pattern])) out.set(id, reason);
  }
  return out;
}

/** Read an allow-list JSON file (`{ "<case id or pattern>": "<reason>" }`); missing file = empty. */
export function loadAllowList(file: string): Record<string, string> {
  if (!fs.existsSync(file)) return {};
  const data: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new Error(`${file}: expected an object of case id -> reason`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) {
    if (k.startsWith('//') || k.startsWith('$')) continue; // comments
    if (typeof v !== 'string' || v.trim() === '') throw new Error(`${file}: entry '${k}' needs a reason string`);
    out[k] = v;
  }
  return out;
}

/** Run the selected cases one after another against `url`. */
export async function runSuite(options: RunSuiteOptions): Promise<SuiteResult> {
  const defs = selectCases(options.cases ?? DEFAULT_CASE_PATTERNS, options.excludeCases ?? []);
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const results: CaseResult[] = [];
  for (const [i, def] of defs.entries()) {
    const r = await runCase(def, options);
    results.push(r);
    options.onCase?.(r, i, defs.length);
  }
  const durationMs = Math.round(performance.now() - t0);
  const allowList = options.allowList ?? {};
  const problems = gate(results, allowList);
  if (options.reportDir !== undefined) {
    writeReports(options.reportDir, results, {
      url: options.url,
      startedAt,
      durationMs,
      allowList: Object.fromEntries(expandAllowList(allowList)),
      problems,
    });
  }
  return {
    url: options.url,
    agent: options.agent ?? results.find((r) => r.agent !== 'UnknownServer')?.agent ?? 'UnknownServer',
    startedAt,
    durationMs,
    results,
    counts: countVerdicts(results),
    summary: summaryLine(results),
    problems,
    passed: problems.size === 0,
  };
}

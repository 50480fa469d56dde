/**
 * Command line runner.
 *
 *   npm run autobahn -- [--url ws://127.0.0.1:9002/] [--cases 1.*,6.4.*] [--exclude 9.*]
 *                       [--agent name] [--out reports/autobahn] [--allow-list file] [--quiet]
 *
 * Without --url it starts our own echo server (examples/echo.ts) in a child
 * process on a free port and stops it afterwards. Exits 1 when a case
 * breaks the gate (FAILED, UNIMPLEMENTED, or NON-STRICT / non-conformant
 * close without an allow-list entry), 2 on usage or startup errors.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { DEFAULT_CASE_PATTERNS } from './cases/index.js';
import { loadAllowList, runSuite } from './run.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');

interface CliArgs {
  url?: string;
  cases: string[];
  exclude: string[];
  agent?: string;
  out: string;
  allowList: string;
  quiet: boolean;
}

const USAGE = `usage: npm run autobahn -- [--url ws://host:port/path] [--cases 1.*,6.4.*] [--exclude 9.*]
                      [--agent name] [--out dir] [--allow-list file] [--quiet]`;

function parseArgs(argv: string[]): CliArgs {
  const args: CliArgs = {
    cases: [...DEFAULT_CASE_PATTERNS],
    exclude: [],
    out: path.join(root, 'reports/autobahn'),
    allowList: path.join(here, 'allow-list.json'),
    quiet: false,
  };
  const list = (v: string): string[] => v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--url': args.url = value(); break;
      case '--cases': args.cases = list(value()); break;
      case '--exclude': args.exclude = list(value()); break;
      case '--agent': args.agent = value(); break;
      case '--out': args.out = path.resolve(value()); break;
      case '--allow-list': args.allowList = path.resolve(value()); break;
      case '--quiet': args.quiet = true; break;
      case '-h':
      case '--help':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${a}`);
    }
  }
  return args;
}

/** A free TCP port on 127.0.0.1 (listen on port 0, read it, close). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

interface EchoServer {
  url: string;
  stop(): Promise<void>;
}

/** Start examples/echo.ts in a child process (tsx) on a free port; resolves once it accepts TCP. */
async function startEcho(): Promise<EchoServer> {
  const port = await freePort();
  const script = path.join(root, 'examples/echo.ts');
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: root,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  let exited: string | null = null;
  child.once('exit', (code, signal) => {
    exited = `echo server exited (code ${code}, signal ${signal})`;
  });
  const deadline = Date.now() + 30_000;
  while (!(await canConnect(port))) {
    if (exited !== null) throw new Error(exited);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('echo server did not start listening within 30 s');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: `ws://127.0.0.1:${port}/`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (exited !== null || child.exitCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

async function main(): Promise<number> {
  let args: CliArgs;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(String(err instanceof Error ? err.message : err));
    console.error(USAGE);
    return 2;
  }

  let echo: EchoServer | null = null;
  let url = args.url;
  if (url === undefined) {
    try {
      echo = await startEcho();
    } catch (err) {
      console.error(`autobahn: cannot start examples/echo.ts: ${err instanceof Error ? err.message : String(err)}`);
      return 2;
    }
    url = echo.url;
    args.agent ??= 'wsroutes'; // Fastify sends no Server header
    if (!args.quiet) console.log(`autobahn: started examples/echo.ts at ${url}`);
  }

  try {
    const allowList = loadAllowList(args.allowList);
    const suite = await runSuite({
      url,
      cases: args.cases,
      excludeCases: args.exclude,
      ...(args.agent !== undefined ? { agent: args.agent } : {}),
      reportDir: args.out,
      allowList,
      onCase: (r, i, n) => {
        if (args.quiet) return;
        const close = r.behaviorClose === r.behavior ? '' : ` / close ${r.behaviorClose}`;
        console.log(`[${String(i + 1).padStart(String(n).length)}/${n}] ${r.id.padEnd(8)} ${r.behavior}${close} (${r.duration} ms)`);
      },
    });
    console.log(suite.summary);
    for (const [id, why] of suite.problems) console.log(`  ${id}: ${why}`);
    console.log(`autobahn: reports in ${path.relative(process.cwd(), args.out) || '.'} (${(suite.durationMs / 1000).toFixed(1)} s)`);
    return suite.passed ? 0 : 1;
  } catch (err) {
    console.error(`autobahn: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    return 2;
  } finally {
    await echo?.stop();
  }
}

process.exitCode = await main();

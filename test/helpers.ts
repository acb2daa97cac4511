import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, type TestContext } from 'node:test';
import { NATS_INSTALL_HINT, NatsServer, natsServerAvailable } from './nats-server.js';
import { FifoTransport } from '../src/drivers/fifo/reply-transport.js';

/** The CLI as shipped (package.json "bin"): the CommonJS bundle built from dist/src by rollup.config.mjs. */
export const BIN = fileURLToPath(new URL('../bundle/cli/npipe.cjs', import.meta.url));
/** A preload (node -r) recording what a process loaded into NPIPE_RECORD_LOADS: read it with loadedModules(). */
export const RECORD_REQUIRES = fileURLToPath(new URL('./fixtures/record-requires.cjs', import.meta.url));

/**
 * What a process run with RECORD_REQUIRES loaded: the CLI bundle's chunks as the
 * modules of dist/src they hold (file URLs ending in /src/<module>.js, from the
 * bundle's modules.json), other files as recorded (koffi, node_modules), built-ins
 * as node:<name>.
 */
export function loadedModules(record: string): string[] {
  const manifest = JSON.parse(readFileSync(join(dirname(BIN), 'modules.json'), 'utf8')) as Record<string, string[]>;
  const src = pathToFileURL(join(dirname(BIN), '..', '..', 'src')).href;
  return readFileSync(record, 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((url) => {
      const chunk = /\/bundle\/cli\/([^/]+\.cjs)$/.exec(url)?.[1];
      const modules = chunk === undefined ? undefined : manifest[chunk];
      return modules ? modules.map((module) => `${src}/${module}`) : [url];
    });
}
export const EXAMPLES = fileURLToPath(new URL('../examples/', import.meta.url));

/** A fresh folder removed when the test ends. */
export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'npipe-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Running {
  child: ChildProcess;
  /** Settles when the process exits; rejects if it is still running after `hangMs` (it is then killed). */
  done: Promise<Result>;
  /** Resolves once stdout contains `text`; rejects if the process exits first. */
  waitForOutput(text: string): Promise<void>;
  /** The same for stderr. */
  waitForError(text: string): Promise<void>;
}

/** Starts a process, collecting its output; killed if it outlives `hangMs` (hang detection, not a speed check). */
export function start(command: string, args: string[], options: SpawnOptions & { input?: string | Buffer; hangMs?: number } = {}): Running {
  const { input, hangMs = 30_000, ...spawnOptions } = options;
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...spawnOptions });
  const output = { stdout: '', stderr: '' };
  const waiters: Array<{ stream: 'stdout' | 'stderr'; text: string; resolve(): void }> = [];
  const collect = (stream: 'stdout' | 'stderr') => (d: string) => {
    output[stream] += d;
    for (const w of waiters.splice(0)) {
      if (output[w.stream].includes(w.text)) w.resolve();
      else waiters.push(w);
    }
  };
  child.stdout!.setEncoding('utf8').on('data', collect('stdout'));
  child.stderr!.setEncoding('utf8').on('data', collect('stderr'));
  // A child that exits before reading all its input (on purpose, in some tests) is not an error here.
  child.stdin!.on('error', () => {});
  if (input !== undefined) child.stdin!.end(input);
  else child.stdin!.end();
  const done = new Promise<Result>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} still running after ${hangMs} ms\nstdout: ${output.stdout}\nstderr: ${output.stderr}`));
    }, hangMs);
    timer.unref();
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: output.stdout, stderr: output.stderr });
    });
  });
  const waitFor = (stream: 'stdout' | 'stderr', text: string): Promise<void> =>
    output[stream].includes(text)
      ? Promise.resolve()
      : new Promise((resolve, reject) => {
          waiters.push({ stream, text, resolve });
          // If it exits first, say so rather than wait for nothing.
          void done.then((r) => {
            if (!output[stream].includes(text)) {
              reject(new Error(`${command} exited (${r.code ?? r.signal}) without printing ${JSON.stringify(text)}\nstderr: ${r.stderr}`));
            }
          }, reject);
        });
  return {
    child,
    done,
    waitForOutput: (text) => waitFor('stdout', text),
    waitForError: (text) => waitFor('stderr', text),
  };
}

export function npipe(args: string[], options: Parameters<typeof start>[2] = {}): Running {
  return start(process.execPath, [BIN, ...args], options);
}

export function run(args: string[], options: Parameters<typeof start>[2] = {}): Promise<Result> {
  return npipe(args, options).done;
}

export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/**
 * True under CI: any non-empty CI other than 'false' or '0' (CI=true, CI=1, CI=yes...).
 * Checking only CI === 'true' let CI=1 turn every NATS, Python and root test into a green skip.
 */
export function isCI(env: NodeJS.ProcessEnv = process.env): boolean {
  const ci = env.CI?.trim().toLowerCase();
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0';
}

/** Skips when `what` is missing on a developer's machine; fails under CI, which must run every test. */
export function requireOrSkip(t: TestContext, available: boolean, what: string): boolean {
  if (available) return true;
  if (isCI()) throw new Error(`${what} is required in CI`);
  t.skip(`${what}; install it to run this test`);
  return false;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `done` until it holds; throws after `timeoutMs` (a hang check, not a speed check). */
export async function until(done: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !done(); await delay(5)) {
    if (Date.now() > deadline) throw new Error(`still waiting for ${what} after ${timeoutMs} ms`);
  }
}

/**
 * Resolves once some process has the FIFO at `path` open for reading: how a test
 * waits for a server it started (`npipe serve`), instead of a fixed delay that a
 * loaded machine outruns. The probe's own open and close is harmless: a reader
 * keeps a writer of its own, so a writer leaving is never an end of file.
 */
export function readerOn(path: string, timeoutMs = 30_000): Promise<void> {
  const hasReader = () => {
    try {
      closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK));
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENXIO' && code !== 'ENOENT') throw err;
      return false;
    }
  };
  return until(hasReader, `a reader of ${path}`, timeoutMs);
}

/**
 * One nats-server for a test file: started before its tests, removed after them.
 * `url(t, query)` gives each test a subject of its own, or skips the test (fails it
 * under CI) where nats-server is missing.
 */
export function sharedNatsServer(prefix: string) {
  const available = natsServerAvailable();
  let server: NatsServer | undefined;
  let subjects = 0;
  before(async () => {
    if (available) server = await NatsServer.start();
  });
  after(async () => {
    await server?.dispose();
  });
  return {
    available,
    url: (t: TestContext, query = ''): string | undefined =>
      requireOrSkip(t, available, NATS_INSTALL_HINT) ? server!.url(`${prefix}.s${++subjects}`, query) : undefined,
  };
}

/**
 * Resolves once process `pid` has `path` open (seen in /proc/PID/fd, Linux). Unlike
 * readerOn, it opens nothing: a probe's close would be an end of file for a reader
 * that does not keep the FIFO open (--once).
 */
export function waitForOpen(pid: number | undefined, path: string, timeoutMs = 10_000): Promise<void> {
  const has = () => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`) === path;
        } catch {
          return false;
        }
      });
    } catch {
      return false; // not started yet
    }
  };
  return until(has, `process ${pid} to open ${path}`, timeoutMs);
}

/**
 * Resolves once process `pid` waits in a blocking open() of a FIFO for the other end
 * (Linux: its /proc/PID/wchan is the kernel's wait_for_partner).
 */
export function waitForBlockedOpen(pid: number | undefined, timeoutMs = 10_000): Promise<void> {
  const blocked = () => {
    try {
      return readFileSync(`/proc/${pid}/wchan`, 'utf8') === 'wait_for_partner';
    } catch {
      return false;
    }
  };
  return until(blocked, `process ${pid} to wait in open() for the FIFO's other end`, timeoutMs);
}

/** Opens a write end (non-blocking) once a reader (the listener under test) has the FIFO open; its fd. */
export async function openWriter(path: string): Promise<number> {
  let fd = -1;
  await until(() => {
    try {
      fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
      return true;
    } catch (err) {
      if (!['ENXIO', 'ENOENT'].includes((err as NodeJS.ErrnoException).code!)) throw err;
      return false;
    }
  }, `a reader of ${path}`);
  return fd;
}

/**
 * For a test that runs a process as another user (uid 65534): that user must be
 * able to load this checkout's code, so every folder above the checkout must be
 * enterable by others and the built code readable. A clone inside a 0700 folder
 * (root's home) is not: outside CI the test skips saying how to open it; under CI
 * it fails (.ci/run opens the path before the tests).
 */
export function requireReachableByOthers(t: TestContext): boolean {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  let closed: string | undefined;
  for (let dir = root; ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) closed = dir;
    if (dirname(dir) === dir) break;
  }
  for (const file of ['dist/src/index.js', 'node_modules']) {
    if ((statSync(join(root, file)).mode & 0o004) === 0) closed ??= join(root, file);
  }
  if (closed === undefined) return true;
  const what = `another user cannot load this checkout: ${closed} is closed to others (chmod o+rx it, or clone elsewhere; .ci/run opens the path)`;
  if (isCI()) throw new Error(what);
  t.skip(what);
  return false;
}

/**
 * A client of the FIFO server at `path` driven by hand, frame by frame (for tests
 * that send raw protocol messages): its private reply endpoint and a sender to the
 * server, both closed when the test ends.
 */
export async function rawRpcClient(t: TestContext, path: string) {
  const transport = new FifoTransport();
  const endpoint = await transport.createReplyEndpoint();
  t.after(() => endpoint.close());
  const sender = await transport.connect(path);
  t.after(() => sender.close());
  return { endpoint, sender };
}

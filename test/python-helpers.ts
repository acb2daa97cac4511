/**
 * What the tests of the Python package (python/) share: the interpreter check,
 * and the peer fixture (test/fixtures/py_peer.py) run on the package.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { requireOrSkip, start, type Running } from './helpers.js';

export const hasPython = spawnSync('python3', ['-c', 'import sys; assert sys.version_info >= (3, 9)']).status === 0;
export const PYTHON_DIR = fileURLToPath(new URL('../../python/', import.meta.url));
export const PEER = fileURLToPath(new URL('../../test/fixtures/py_peer.py', import.meta.url));
export const ENV = { ...process.env, PYTHONPATH: PYTHON_DIR, PYTHONDONTWRITEBYTECODE: '1' };

/** Runs py_peer.py with `args` (killed after the test); undefined, the test skipped, where python3 is missing (never under CI). */
export function peer(t: TestContext, args: string[], input?: string, env: NodeJS.ProcessEnv = {}): Running | undefined {
  if (!requireOrSkip(t, hasPython, 'python3 (3.9 or later) is missing')) return undefined;
  const p = start('python3', [PEER, ...args], { env: { ...ENV, ...env }, input, hangMs: 60_000 });
  t.after(() => p.child.kill('SIGKILL'));
  return p;
}

/** py_peer.py's output of messages: one a line, in hex. */
export const parseHex = (stdout: string) =>
  stdout
    .split('\n')
    .slice(0, -1)
    .map((l) => Buffer.from(l, 'hex'));

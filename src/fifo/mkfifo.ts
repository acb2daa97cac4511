import { chmodSync, closeSync, constants, fchmodSync, fstatSync, lstatSync, openSync } from 'node:fs';
import { InvalidArgumentError, NotFifoError } from '../errors.js';
import { fromSystemError } from '../sys/errno.js';
import { errnoError, loadLibc } from '../sys/libc.js';

export interface MkfifoOptions {
  /** Permission bits, before the process umask is applied. Default 0o600: only the owner. */
  mode?: number;
}

export function checkMode(mode: unknown): number {
  if (typeof mode !== 'number' || !Number.isInteger(mode) || mode < 0 || mode > 0o777) {
    throw new InvalidArgumentError(`mode must be an integer from 0 to 0o777, got ${String(mode)}`);
  }
  return mode;
}

/**
 * Creates a FIFO at `path` with mkfifo(3), called through libc (no child process).
 * An existing FIFO is accepted as it is (its mode is left alone).
 *
 * @returns true when this call created the FIFO, false when one was already there.
 * @throws ERR_NPIPE_NOT_FIFO when something other than a FIFO (a file, a directory, a symlink) is at `path`.
 * @throws ERR_NPIPE_PERMISSION, ERR_NPIPE_NOT_FOUND (missing parent folder), ERR_NPIPE_SYSTEM.
 * @example
 * await mkfifo('/tmp/jobs', { mode: 0o600 });
 */
export async function mkfifo(path: string, options: MkfifoOptions = {}): Promise<boolean> {
  return mkfifoSync(path, options);
}

/** The synchronous form of {@link mkfifo}; mkfifo(2) never waits. */
export function mkfifoSync(path: string, { mode = 0o600 }: MkfifoOptions = {}): boolean {
  if (typeof path !== 'string' || path === '') throw new InvalidArgumentError('path must be a non-empty string');
  checkMode(mode);
  const libc = loadLibc();
  if (libc.mkfifo(path, mode) === 0) return true;
  let err = errnoError(libc.errno(), 'mkfifo', path);
  if (err.code !== 'EEXIST') {
    // errno may have been changed by Node before we read it: confirm by trying again.
    if (libc.mkfifo(path, mode) === 0) return true;
    err = errnoError(libc.errno(), 'mkfifo', path);
    if (err.code !== 'EEXIST') throw fromSystemError(err, path, 'creating the FIFO');
  }
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (st?.isFIFO()) return false;
  // Raced with an unlink: try once more rather than report a file that is gone.
  if (!st) return mkfifoSync(path, { mode });
  throw new NotFifoError(`${path} exists and is ${describeKind(st)}, not a FIFO; remove it or choose another path`, {
    cause: err,
  });
}

/** O_PATH (<asm-generic/fcntl.h>, Linux x64 and arm64): a descriptor that names a file without opening it; Node does not export it. */
const O_PATH = 0o10000000;

/**
 * mkfifoSync with exactly `mode` on a FIFO it creates, as `mkfifo -m` does: the
 * umask neither widens nor narrows it. A FIFO already there is left as it is.
 *
 * The mode is set without opening the FIFO: a read end opened only to fchmod it
 * was, for an instant, a reader, and a writer waiting for one (npipe send retrying
 * ENXIO) could open, write and close in that instant; closing that read end then
 * threw the bytes away, and the writer had exited 0 (a `listen --count` that
 * created the FIFO saw nothing: CI on 4407ad8). So: lstat first (the umask left
 * the mode as asked, the usual case: nothing to do); else, on Linux, chmod through
 * /proc/self/fd of an O_PATH|O_NOFOLLOW descriptor, which names the FIFO without
 * opening it (a path swapped meanwhile is never chmodded); elsewhere the old way.
 * @returns whether it created the FIFO.
 */
export function mkfifoExactSync(path: string, mode = 0o600): boolean {
  const created = mkfifoSync(path, { mode });
  if (!created) return false;
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (st?.isFIFO() && (st.mode & 0o7777) === mode) return true;
  if (process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64')) {
    const named = openSync(path, O_PATH | constants.O_NOFOLLOW);
    try {
      if (fstatSync(named).isFIFO()) chmodSync(`/proc/self/fd/${named}`, mode);
    } finally {
      closeSync(named);
    }
    return true;
  }
  // A read end opens at once (O_NONBLOCK), with no writer (the instant above remains here).
  const own = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  try {
    if (fstatSync(own).isFIFO()) fchmodSync(own, mode);
  } finally {
    closeSync(own);
  }
  return true;
}

export function describeKind(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean; isSocket(): boolean }): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  return 'a special file';
}

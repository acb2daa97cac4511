import { closeSync, constants, fchmodSync, fstatSync, lstatSync, openSync } from 'node:fs';
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

/**
 * mkfifoSync with exactly `mode` on a FIFO it creates, as `mkfifo -m` does: the
 * umask neither widens nor narrows it (fchmod on a descriptor opened with
 * O_NOFOLLOW, so a path swapped meanwhile is never chmodded). A FIFO already there
 * is left as it is. @returns whether it created the FIFO.
 */
export function mkfifoExactSync(path: string, mode = 0o600): boolean {
  const created = mkfifoSync(path, { mode });
  if (created) {
    // A read end opens at once (O_NONBLOCK), with no writer.
    const own = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    try {
      if (fstatSync(own).isFIFO()) fchmodSync(own, mode);
    } finally {
      closeSync(own);
    }
  }
  return created;
}

export function describeKind(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean; isSocket(): boolean }): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  return 'a special file';
}

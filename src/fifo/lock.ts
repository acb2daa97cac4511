/**
 * Writing to a FIFO, and an advisory lock on it, shared among npipe writers (flock(2) on the open
 * FIFO: every writer that opened it contends for the same lock). The `lines`,
 * `length` and `fixed:N` formats need it for messages over PIPE_BUF: the kernel
 * keeps a write whole only up to PIPE_BUF bytes, so a longer message goes out in
 * several writes, and without the lock another writer's bytes could land between.
 * Writers of whole small batches take the lock shared (they cannot tear each
 * other); a writer of a large message takes it exclusive.
 *
 * Writers that do not use npipe (echo, Python) do not take the lock: see docs.
 */
import { writeSync } from 'node:fs';
import { fromSystemError, isErrno } from '../sys/errno.js';
import { sleep } from '../util/abort.js';
import { errnoError, loadLibc, loadedLibc } from '../sys/libc.js';

const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const MAX_LOCK_POLL_MS = 20;
/** EAGAIN, which is also EWOULDBLOCK: 11 on Linux, 35 on macOS. */
const EAGAIN = process.platform === 'darwin' ? 35 : 11;
const ENOMEM = 12;
const EINTR = 4;

export type LockMode = 'shared' | 'exclusive';

/** Tries once; true when the lock was taken. */
export function tryLock(fd: number, mode: LockMode): boolean {
  const libc = loadLibc();
  const op = (mode === 'shared' ? LOCK_SH : LOCK_EX) | LOCK_NB;
  // Seen here under load: flock failing with ENOMEM (the kernel could not allocate
  // a lock record). That, EINTR and EWOULDBLOCK all mean "not now": lock() tries
  // again later. Anything else is confirmed by a second try before it is believed.
  for (let attempt = 0; ; attempt++) {
    if (libc.flock(fd, op) === 0) return true;
    const errno = libc.errno();
    if (errno === EAGAIN || errno === ENOMEM || errno === EINTR) return false;
    if (attempt === 1) throw fromSystemError(errnoError(errno, 'flock'), `fd ${fd}`, 'locking');
  }
}

/**
 * Takes the lock, retrying without blocking (flock's blocking form would park the
 * thread) until it is free or `signal` aborts.
 */
export async function lock(fd: number, mode: LockMode, signal?: AbortSignal): Promise<void> {
  for (let delay = 1; !tryLock(fd, mode); delay = Math.min(delay * 2, MAX_LOCK_POLL_MS)) {
    await sleep(delay, signal);
  }
}

export function unlock(fd: number): void {
  const libc = loadLibc();
  if (libc.flock(fd, LOCK_UN) !== 0) throw fromSystemError(errnoError(libc.errno(), 'flock'), `fd ${fd}`, 'unlocking');
}

/** A second descriptor of the same open file (shares its lock and its place in the pipe). */
export function dup(fd: number): number {
  const libc = loadLibc();
  const copy = libc.dup(fd);
  if (copy < 0) throw fromSystemError(errnoError(libc.errno(), 'dup'), `fd ${fd}`, 'duplicating');
  return copy;
}

/**
 * write(2) on a non-blocking fd: the bytes written, or -1 when the pipe is full
 * (EAGAIN). A write of at most PIPE_BUF bytes to a pipe is all or nothing.
 *
 * Straight into libc when something in the process has loaded it already (a
 * receiver has, for its aligned buffers; so has any writer that took the writers'
 * lock): 1.6 against 2.1 us per call to /dev/null on this VM, and no exception
 * when the pipe is full. Otherwise through fs.writeSync, so that a one-shot
 * `npipe send` never loads koffi for it (~15-25 ms of its start-up here, issue 18 #6).
 * @throws the OS error (EPIPE when the reader is gone) as a Node-style errno error.
 */
export function writeNow(fd: number, data: Uint8Array, offset = 0): number {
  const libc = loadedLibc();
  // As in tryLock: an errno other than "not now" is confirmed by a second try (a
  // write that failed wrote nothing, so trying again is safe).
  if (libc) {
    const rest = offset === 0 ? data : data.subarray(offset);
    for (let attempt = 0; ; attempt++) {
      const n = libc.write(fd, rest, rest.length);
      if (n >= 0) return n;
      const errno = libc.errno();
      // EINTR and ENOMEM (no page for the pipe) are passing: let libuv wait and retry.
      if (errno === EAGAIN || errno === EINTR || errno === ENOMEM) return -1;
      if (attempt === 1) throw errnoError(errno, 'write');
    }
  }
  for (let attempt = 0; ; attempt++) {
    try {
      return writeSync(fd, data, offset, data.length - offset);
    } catch (err) {
      if (isErrno(err, 'EAGAIN', 'EINTR', 'ENOMEM')) return -1;
      if (attempt === 1) throw err;
    }
  }
}

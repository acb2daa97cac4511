/**
 * splice(2): moves bytes between a pipe and a file, /dev/null or another pipe
 * inside the kernel, without copying them through this process. From a regular
 * file into a pipe the kernel hands over references to the file's page cache.
 * Linux only.
 */
import { constants as osConstants } from 'node:os';
import { SPLICE_F_MOVE, SPLICE_F_NONBLOCK, errnoError, loadLibc } from '../sys/libc.js';

const { EAGAIN, EINTR, ENOMEM } = osConstants.errno;

let libcSplice: NonNullable<ReturnType<typeof loadLibc>['splice']> | undefined;
let libcErrno: (() => number) | undefined;

/** Whether splice(2) can be called here (Linux, libc loaded through koffi). */
export function spliceAvailable(): boolean {
  if (process.platform !== 'linux') return false;
  try {
    return loadLibc().splice !== undefined;
  } catch {
    return false;
  }
}

/**
 * One non-blocking splice(2) of up to `length` bytes from `fdIn` to `fdOut` (one of
 * them a pipe), at the descriptors' own file positions. SPLICE_F_NONBLOCK makes the
 * pipe side never wait, whatever the descriptor's O_NONBLOCK flag.
 *
 * @returns the bytes moved; 0 at end of input (for a FIFO: no writer has it open);
 *   -1 when it would wait (EAGAIN: the pipe to read is empty, or the pipe to write is full;
 *   EINTR and ENOMEM: not now).
 * @throws the OS error as a Node-style errno error: EINVAL when these descriptors
 *   cannot be spliced (an O_APPEND file, a file system without splice; nothing was
 *   moved, the caller copies instead), EPIPE when the FIFO's reader is gone.
 */
export function spliceNow(fdIn: number, fdOut: number, length: number): number {
  if (!libcSplice) {
    const libc = loadLibc();
    if (!libc.splice) throw errnoError(38 /* ENOSYS */, 'splice');
    libcSplice = libc.splice;
    libcErrno = libc.errno;
  }
  // As writeNow: an errno other than "not now" is confirmed by a second try (a splice
  // that failed moved nothing).
  for (let attempt = 0; ; attempt++) {
    const n = libcSplice(fdIn, null, fdOut, null, length, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (n >= 0) return n;
    const errno = libcErrno!();
    if (errno === EAGAIN || errno === EINTR || errno === ENOMEM) return -1;
    if (attempt === 1) throw errnoError(errno, 'splice');
  }
}

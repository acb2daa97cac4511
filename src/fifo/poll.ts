/**
 * poll(2) on one descriptor, blocking this thread for at most a few milliseconds:
 * how the raw splice lane waits for a pipe to drain or fill without a round through
 * the event loop (epoll, a callback, a copy through a socket) per pipe-full. The
 * caller keeps the timeout short and goes back to the event loop between waits, so
 * that signals, timers and other I/O still run.
 */
import { constants as osConstants } from 'node:os';
import { errnoError, loadLibc } from '../sys/libc.js';

/** <poll.h>, the same on Linux and macOS. */
export const POLLIN = 0x1;
export const POLLOUT = 0x4;
const POLLERR = 0x8;
const POLLHUP = 0x10;
const POLLNVAL = 0x20;

const { EINTR, EAGAIN, ENOMEM } = osConstants.errno;

/** What a wait ended with: the descriptor is ready (or in error or hung up: the next call on it will say), the time ran out, or a signal came. */
export type PollResult = 'ready' | 'timeout' | 'interrupted';

// One struct pollfd, in the machine's own byte order (typed arrays use it).
const pollfd = new Uint8Array(8);
const fdField = new Int32Array(pollfd.buffer, 0, 1);
const shortFields = new Int16Array(pollfd.buffer, 4, 2); // events, revents

/**
 * Waits up to `timeoutMs` for `fd` to be ready for `events` (POLLIN, POLLOUT).
 * 'ready' also when the descriptor is in error or hung up (POLLERR, POLLHUP): the
 * read, write or splice that follows reports that itself.
 * @throws the OS error (EBADF as POLLNVAL, EINVAL) as a Node-style errno error.
 */
export function pollOne(fd: number, events: number, timeoutMs: number): PollResult {
  const revents = pollEvents(fd, events, timeoutMs);
  if (revents === undefined) return 'interrupted';
  if (revents & (events | POLLERR | POLLHUP)) return 'ready';
  return 'timeout';
}

/**
 * Whether the FIFO whose write end is `writeFd` has no reader left, asked without
 * writing and without waiting: poll(2) reports POLLERR on a FIFO's write end once
 * no process has it open for reading (Linux pipe_poll). Exact, where a pid could
 * have been reused. false when poll was interrupted (ask again later).
 */
export function readerGone(writeFd: number): boolean {
  const revents = pollEvents(writeFd, POLLOUT, 0);
  return revents !== undefined && (revents & POLLERR) !== 0;
}

/**
 * poll(2) of `fd` for `events`: its revents (0 when the time ran out), or
 * undefined when a signal or a shortage of memory interrupted it.
 * @throws the OS error (EBADF as POLLNVAL, EINVAL) as a Node-style errno error.
 */
function pollEvents(fd: number, events: number, timeoutMs: number): number | undefined {
  const libc = loadLibc();
  fdField[0] = fd;
  shortFields[0] = events;
  shortFields[1] = 0;
  const n = libc.poll(pollfd, 1, timeoutMs);
  if (n === 0) return 0;
  if (n < 0) {
    const errno = libc.errno();
    if (errno === EINTR || errno === EAGAIN || errno === ENOMEM) return undefined;
    throw errnoError(errno, 'poll');
  }
  const revents = shortFields[1]!;
  if (revents & POLLNVAL) throw errnoError(osConstants.errno.EBADF, 'poll');
  return revents;
}

/**
 * A FIFO's pipe seen from outside: its capacity and the bytes waiting in it,
 * without becoming one of its readers or writers (issue 19 #1). Opening the FIFO
 * would: a shell's `echo > fifo` blocked for a reader would be let through and
 * then, when the look is over, find no reader (SIGPIPE); a reader blocked for a
 * writer would wake and read end of file.
 *
 * So the pipe is borrowed from a process that already holds it: pidfd_getfd(2)
 * copies that process's descriptor (the same open file, no new open), which needs
 * the right to trace it (root, or the same user where Yama allows). Failing that,
 * when it has both a reader and a writer, an open for reading and writing at once
 * is as good (nobody waits in open(2) then, and closing it ends neither side).
 * A FIFO nobody holds has no pipe at all: nothing waits in it, and its capacity is
 * decided by whoever opens it next.
 */
import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { loadLibc } from '../sys/libc.js';
import { bytesInPipe, getPipeSize } from './capacity.js';
import type { FifoHolders } from './holders.js';

export interface PipeState {
  /** Bytes the pipe holds at most; null when it could not be seen (see `how`). */
  capacity: number | null;
  /** Bytes written and not yet read; null when it could not be seen. */
  buffered: number | null;
  /**
   * `borrowed`: through a holder's descriptor; `opened`: through an open of both
   * sides while both are held; `unopened`: nobody holds it (buffered 0, no
   * capacity yet); `hidden`: held, but by processes this one may not look into.
   */
  how: 'borrowed' | 'opened' | 'unopened' | 'hidden';
}

function measure(fd: number): { capacity: number; buffered: number } {
  return { capacity: getPipeSize(fd), buffered: bytesInPipe(fd) };
}

/** `holder`'s descriptor `fd`, copied into this process if it is still the FIFO (`dev`/`ino`), else undefined. */
function borrow(pid: number, fd: number, dev: number, ino: number): number | undefined {
  const libc = loadLibc();
  if (!libc.pidfdOpen || !libc.pidfdGetfd) return undefined;
  const pidfd = libc.pidfdOpen(pid);
  if (pidfd < 0) return undefined;
  try {
    const copy = libc.pidfdGetfd(pidfd, fd);
    if (copy < 0) return undefined;
    const st = fstatSync(copy);
    // The holder may have closed that descriptor and opened something else under its number since.
    if (st.dev === dev && st.ino === ino) return copy;
    closeSync(copy);
    return undefined;
  } finally {
    closeSync(pidfd);
  }
}

/**
 * The capacity and bytes waiting of the FIFO at `path` (device `dev`, inode `ino`),
 * whose holders are `holders` (fifoHolders()). Linux only.
 */
export function peekPipe(path: string, dev: number, ino: number, holders: FifoHolders): PipeState {
  if (holders.readers.length === 0 && holders.writers.length === 0) {
    return { capacity: null, buffered: holders.hidden > 0 ? null : 0, how: holders.hidden > 0 ? 'hidden' : 'unopened' };
  }
  for (const holder of [...holders.readers, ...holders.writers]) {
    let copy: number | undefined;
    try {
      copy = borrow(holder.pid, holder.fd!, dev, ino);
    } catch {
      copy = undefined;
    }
    if (copy === undefined) continue;
    try {
      return { ...measure(copy), how: 'borrowed' };
    } finally {
      closeSync(copy);
    }
  }
  if (holders.readers.length > 0 && holders.writers.length > 0) {
    let fd: number | undefined;
    try {
      fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK | constants.O_NOFOLLOW);
      const st = fstatSync(fd);
      if (st.dev === dev && st.ino === ino) return { ...measure(fd), how: 'opened' };
    } catch {
      // Not ours to open: hidden, below.
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
  return { capacity: null, buffered: null, how: 'hidden' };
}

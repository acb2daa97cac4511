/**
 * Writer liveness for a `frames` receiver: a writer that dies in the middle of a
 * message leaves its first packets in the reader's memory. A sweep drops such a
 * partial message once its writer is gone and the rest of what it wrote has been
 * read (`writer-died`), and one that got no packet for `partialTimeout` of reading
 * (`stalled`), so that neither can hold the memory for partial messages for ever.
 */
import { readdirSync, statSync } from 'node:fs';
import { fdInfo } from '../../fifo/holders.js';
import { isErrno } from '../../sys/errno.js';
import type { FifoEnd } from '../../fifo/index.js';
import type { FrameDecoder } from '../../framing/index.js';
import { orElse } from './ends.js';

/** How often a frames receiver checks whether writers with a message in progress are still alive. */
export const SWEEP_INTERVAL_MS = 500;

export interface SweepOptions {
  /** The milliseconds after which a message with no new packet is dropped as `stalled`. */
  partialTimeout: number;
  /** The receiver's `keepOpen` option: false means it holds no writer descriptor of its own. */
  keepOpen: boolean | undefined;
  /** Whether the receiver is paused (nobody is taking its messages): that time does not count against a writer. */
  paused(): boolean;
}

/**
 * Starts sweeping `decoder`'s partial messages (for formats whose decoder can:
 * `frames`); returns the timer for clearInterval, or undefined when there is
 * nothing to sweep. The timer does not keep the process alive.
 */
export function startSweeper(decoder: FrameDecoder, end: FifoEnd, options: SweepOptions): NodeJS.Timeout | undefined {
  if (!decoder.sweep) return undefined;
  const backlog = () => orElse(() => end.bytesInPipe(), 0);
  // On Linux the receiver's keep-open descriptor is a writer of this FIFO in this process (see writerAlive).
  const ownWriters = options.keepOpen === false || process.platform !== 'linux' ? 0 : 1;
  const isAlive = (pid: number) => writerAlive(pid, end, ownWriters);
  let last = Date.now();
  const sweeper = setInterval(
    () => {
      const now = Date.now();
      // Time spent paused (nobody taking messages) does not count against a writer's message.
      const elapsed = options.paused() ? 0 : now - last;
      last = now;
      decoder.sweep!(isAlive, backlog, elapsed);
    },
    Math.min(SWEEP_INTERVAL_MS, Math.max(10, options.partialTimeout / 4)),
  );
  sweeper.unref();
  return sweeper;
}

/**
 * Whether process `pid` is alive and still has the FIFO `end` open for writing.
 * A pid can be reused by an unrelated process; on Linux /proc tells whether it
 * holds our FIFO, and how. Descriptors opened read-only do not count, nor (for
 * our own pid) the receiver's own keep-open writer: a first packet claiming the
 * reader's pid, or a pid that only reads the FIFO, cannot be a writer's (issue 15
 * #9: such a claim pinned the partial-message memory for ever). Where that cannot
 * be seen (another user's process), it counts as alive; `partialTimeout` bounds it.
 */
function writerAlive(pid: number, end: FifoEnd, ownWriters: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (isErrno(err, 'ESRCH')) return false;
  }
  if (process.platform !== 'linux') return true;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch (err) {
    return !isErrno(err, 'ENOENT');
  }
  let writers = 0;
  for (const fd of fds) {
    let st;
    try {
      st = statSync(`/proc/${pid}/fd/${fd}`, { throwIfNoEntry: false });
    } catch {
      // Listed but not examinable (EACCES: e.g. pid 1 in a container, for root): the
      // claim can be neither proved nor refuted, as when the list is refused above;
      // partialTimeout bounds what it can hold (issue 15 #9; it crashed the reader).
      return true;
    }
    if (st && st.ino === end.ino && st.dev === end.dev && openForWriting(pid, fd)) writers++;
  }
  // Our own process: its keep-open descriptor (ownWriters counts it out) is no writer's.
  return pid === process.pid ? writers > ownWriters : writers > 0;
}

/** Whether descriptor `fd` of `pid` was opened for writing (O_WRONLY or O_RDWR); true when that cannot be read. */
function openForWriting(pid: number, fd: string): boolean {
  const mode = fdInfo(pid, Number(fd))?.mode;
  return mode === undefined || mode !== 0;
}

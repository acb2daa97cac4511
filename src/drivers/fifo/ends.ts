/**
 * Opening a FIFO end for a sender or a receiver, with the pipe capacity asked for
 * (F_SETPIPE_SZ, Linux): the sender, the receiver and the raw splice lane open
 * their ends here.
 */
import { openFifoReader, openFifoWriter, type FifoEnd } from '../../fifo/index.js';
import { DEFAULT_RECEIVER_PIPE_SIZE, type FifoReceiverOptions, type FifoSenderOptions } from './options.js';

/** Opens the write end (waiting for a reader as `options` say) with the pipe capacity asked for. */
export async function openWriterEnd(path: string, options: FifoSenderOptions): Promise<FifoEnd> {
  return withPipeSize(await openFifoWriter(path, options), options.pipeSize);
}

/** Applies the capacity asked for, closing the end if the kernel refuses. */
function withPipeSize(end: FifoEnd, pipeSize: number | undefined): FifoEnd {
  if (pipeSize === undefined) return end;
  try {
    end.setPipeSize(pipeSize);
  } catch (err) {
    end.close();
    throw err;
  }
  return end;
}

/** Opens the read end with the pipe capacity asked for, or the receivers' default (best effort). */
export async function openReaderEnd(path: string, options: FifoReceiverOptions): Promise<FifoEnd> {
  const end = await openFifoReader(path, options);
  if (options.pipeSize !== undefined) withPipeSize(end, options.pipeSize);
  else {
    // A larger pipe means fewer wake-ups on both sides. Best effort: the kernel may
    // refuse (a user over its pipe-user-pages limit), and its default still works.
    // Only ever grows: a pipe someone already made larger (a writer holding it with
    // 1 MiB, root with more than pipe-max-size) is left as it is.
    if (orElse(() => end.getPipeSize(), DEFAULT_RECEIVER_PIPE_SIZE) < DEFAULT_RECEIVER_PIPE_SIZE) {
      orElse(() => end.setPipeSize(DEFAULT_RECEIVER_PIPE_SIZE), 0);
    }
  }
  return end;
}

/**
 * `f()`, or `fallback` if it throws: for the pipe-size and FIONREAD calls, which
 * are Linux-only or may be refused, and whose absence only costs speed.
 */
export function orElse<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}

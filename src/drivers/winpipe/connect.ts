/**
 * Connecting to a Windows pipe server, waiting for one to appear. A client that
 * comes before the server gets ENOENT; one that comes while every instance of the
 * pipe is taken gets EBUSY (ERROR_PIPE_BUSY; libuv maps it so, some paths give
 * EAGAIN). Both are waited out with backoff, bounded by `timeout` and `signal`.
 */
import { connect, type Socket } from 'node:net';
import { NoReaderError } from '../../errors.js';
import { pipeError } from './failures.js';
import { deadline, sleep } from '../../util/abort.js';

/** First wait between attempts; it doubles up to MAX_BACKOFF_MS. */
export const FIRST_BACKOFF_MS = 10;
export const MAX_BACKOFF_MS = 250;

const NOT_YET = new Set(['ENOENT', 'EBUSY', 'EAGAIN']);

export interface PipeConnectOptions {
  /** Milliseconds to wait for a receiver; 0: do not wait. Undefined: wait until `signal` aborts. */
  timeout?: number;
  signal?: AbortSignal;
}

/** One attempt: the connected socket, or the OS error. */
function attempt(name: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(name);
    const onError = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/**
 * A socket connected to the receiver listening on `name` (normalised).
 * @throws ERR_NPIPE_NO_READER with `timeout: 0` and no receiver; ERR_NPIPE_TIMEOUT
 * after `timeout` ms with none; `signal.reason` when aborted; ERR_NPIPE_PERMISSION, ERR_NPIPE_SYSTEM for other OS errors.
 */
export async function connectPipe(name: string, options: PipeConnectOptions): Promise<Socket> {
  if (options.signal?.aborted) throw options.signal.reason;
  const wait = deadline(options, `no receiver listened on ${name}; start the receiver (npipe listen ${name}) or raise the timeout`);
  try {
    for (let backoff = FIRST_BACKOFF_MS; ; backoff = Math.min(backoff * 2, MAX_BACKOFF_MS)) {
      try {
        return await attempt(name);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (!NOT_YET.has(code)) throw pipeError(err, name, 'connecting to');
        if (options.timeout === 0) {
          throw new NoReaderError(`no receiver listens on ${name}; start the receiver first, or wait for it (a timeout above 0, or --wait)`, { cause: err });
        }
      }
      await sleep(backoff, wait.signal);
    }
  } finally {
    wait.dispose();
  }
}

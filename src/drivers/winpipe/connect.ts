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
import { ACK, PROOF_TIMEOUT_MS, readKeys } from './pipe-key.js';

/** First wait between attempts; it doubles up to MAX_BACKOFF_MS. */
export const FIRST_BACKOFF_MS = 10;
export const MAX_BACKOFF_MS = 250;

/**
 * Errors that mean "no receiver yet": no pipe, every instance taken, and (pipe
 * key) no key file yet, or a key the receiver refused (it restarted with a new
 * one since the file was read: read it again).
 */
const NOT_YET = new Set(['ENOENT', 'EBUSY', 'EAGAIN', 'NO_KEY', 'KEY_REFUSED']);

export interface PipeConnectOptions {
  /** Milliseconds to wait for a receiver; 0: do not wait. Undefined: wait until `signal` aborts. */
  timeout?: number;
  signal?: AbortSignal;
  /** Send the pipe's key first and wait for the receiver's ACK (pipe-key.ts). */
  pipeKey?: boolean;
  /** With pipeKey: also a receiver shared by another user (its key in the shared folder). */
  allowShared?: boolean;
}

const failure = (code: string, message: string) => Object.assign(new Error(message), { code });

/**
 * One attempt: the connected socket (with `key`: sent, and acknowledged), or the
 * error. The socket is handed over paused, nothing read past the ACK.
 */
function attempt(name: string, key: Buffer | undefined, signal: AbortSignal | undefined): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(name);
    let ackTimer: NodeJS.Timeout | undefined;
    const fail = (err: unknown) => {
      socket.destroy();
      clearTimeout(ackTimer);
      signal?.removeEventListener('abort', onAbort);
      reject(err);
    };
    const onAbort = () => fail(signal!.reason);
    let keySent = false;
    const refused = () => failure('KEY_REFUSED', `the receiver on ${name} refused this process's key`);
    // Once the key is sent, the connection breaking is the receiver refusing it (EPIPE, ECONNRESET or a plain end).
    const onError = (err: Error) => fail(keySent ? refused() : err);
    const onClose = () => fail(refused());
    const done = () => {
      socket.off('error', onError);
      socket.off('close', onClose);
      clearTimeout(ackTimer);
      signal?.removeEventListener('abort', onAbort);
      resolve(socket);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('error', onError);
    socket.once('connect', () => {
      if (!key) return done();
      socket.once('close', onClose);
      // Whatever listens there and never answers (not an npipe receiver) does not hold us past this.
      ackTimer = setTimeout(() => fail(failure('KEY_REFUSED', `the process listening on ${name} did not answer its key`)), PROOF_TIMEOUT_MS);
      keySent = true;
      socket.write(key);
      const onData = (chunk: Buffer) => {
        socket.off('data', onData);
        socket.pause();
        if (chunk[0] !== ACK) return fail(failure('KEY_REFUSED', `the process listening on ${name} is not an npipe receiver (no ACK)`));
        if (chunk.length > 1) socket.unshift(chunk.subarray(1));
        done();
      };
      socket.on('data', onData);
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
        // With timeout 0 the deadline has already passed: only the caller's signal stops the one attempt.
        const signal = options.timeout === 0 ? options.signal : wait.signal;
        if (options.pipeKey !== true) return await attempt(name, undefined, signal);
        // The user's key file, then the shared one: a stale file left by a receiver that was killed is refused, the next tried.
        const keys = readKeys(name, options.allowShared === true);
        if (keys.length === 0) throw failure('NO_KEY', `no key file for ${name}`);
        for (let i = 0; ; i++) {
          try {
            return await attempt(name, keys[i], signal);
          } catch (err) {
            if ((err as { code?: string }).code !== 'KEY_REFUSED' || i === keys.length - 1) throw err;
          }
        }
      } catch (err) {
        if (wait.signal?.aborted && options.timeout !== 0) throw wait.signal.reason;
        if (options.signal?.aborted) throw options.signal.reason;
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

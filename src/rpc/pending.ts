/**
 * What every client shares, whatever the medium: one request waiting for its
 * outcome, which comes from exactly one of a reply, a failure, its timeout or
 * its signal.
 */

import { longTimer, type Timer } from '../util/abort.js';

/** How a waiting request is settled by whoever gets its reply (or learns it failed). */
export interface Settle<T> {
  resolve(value: T): void;
  reject(err: unknown): void;
}

export interface AwaitReplyOptions<T> {
  /** Puts `settle` where replies find it (the client's pending map) and sends the request. */
  start(settle: Settle<T>): void;
  /** Takes the request out of the pending map; false when it was already settled. */
  forget(): boolean;
  /** After a timeout or an abort: tells the server, so that its handler's signal aborts. Best effort. */
  cancel(): void;
  timeout: number | undefined;
  /** Made by the caller, so that its stack points at the caller's line. */
  timeoutError: Error | undefined;
  signal: AbortSignal | undefined;
  /** Runs once the request is settled, however (e.g. clears a retry timer). */
  cleanup?(): void;
}

/** Waits for a request's outcome; leaves no timer or listener behind, whichever way it ends. */
export function awaitReply<T>(options: AwaitReplyOptions<T>): Promise<T> {
  const { signal } = options;
  return new Promise<T>((resolve, reject) => {
    let timer: Timer | undefined;
    const finish = () => {
      timer?.clear();
      signal?.removeEventListener('abort', onAbort);
      options.cleanup?.();
    };
    const giveUp = (err: unknown) => {
      if (!options.forget()) return;
      finish();
      // The cancel is queued before the caller hears of the timeout: a caller that
      // closes the client at once (npipe request) still has it written, since the
      // sender writes its queue in a microtask queued ahead of the caller's.
      options.cancel();
      reject(err);
    };
    const onAbort = () => giveUp(signal!.reason);
    // Timer and listener first: start() may settle at once (a send that fails synchronously).
    // longTimer: a timeout past 2^31-1 ms is honoured, not fired at once (issue 15 #10).
    if (options.timeoutError) timer = longTimer(options.timeout ?? 0, () => giveUp(options.timeoutError));
    signal?.addEventListener('abort', onAbort, { once: true });
    options.start({
      resolve: (value) => {
        finish();
        resolve(value);
      },
      reject: (err) => {
        finish();
        reject(err);
      },
    });
  });
}

/**
 * What every client shares, whatever the medium: one request waiting for its
 * outcome, which comes from exactly one of a reply, a failure, its timeout or
 * its signal.
 */

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
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      options.cleanup?.();
    };
    const giveUp = (err: unknown) => {
      if (!options.forget()) return;
      finish();
      reject(err);
      options.cancel();
    };
    const onAbort = () => giveUp(signal!.reason);
    // Timer and listener first: start() may settle at once (a send that fails synchronously).
    if (options.timeoutError) timer = setTimeout(() => giveUp(options.timeoutError), options.timeout);
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

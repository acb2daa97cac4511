import { InvalidArgumentError, TimeoutError } from '../errors.js';

/** Options taken by every npipe call that can wait. */
export interface WaitOptions {
  /** Aborts the wait; the call rejects with `signal.reason`. */
  signal?: AbortSignal;
  /**
   * Milliseconds without progress before the call rejects with `ERR_NPIPE_TIMEOUT`
   * (waiting for a reader, for the pipe to take a byte, for a message). Any finite
   * number >= 0, including values past setTimeout's 2^31-1 ms (about 24.8 days).
   */
  timeout?: number;
}

export interface Deadline {
  /** The caller's signal joined with the timeout; undefined when neither was given. */
  readonly signal: AbortSignal | undefined;
  /** Clears the timer and the listener on the caller's signal. Call it when the wait settles. */
  dispose(): void;
}

/** The longest delay setTimeout honours: longer ones fire at once, with a TimeoutOverflowWarning. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export function checkTimeout(timeout: unknown, name = 'timeout'): number | undefined {
  if (timeout === undefined) return undefined;
  if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout < 0) {
    throw new InvalidArgumentError(`${name} must be a finite number of milliseconds >= 0, got ${String(timeout)}`);
  }
  return timeout;
}

/** A timer that may be cleared. */
export interface Timer {
  clear(): void;
}

/**
 * setTimeout for any finite delay: a delay past 2^31-1 ms is waited in a chain
 * of timers, each within setTimeout's range (issue 15 #10: a longer delay fired
 * at once). `unref`: the timer does not keep the process alive.
 */
export function longTimer(ms: number, fire: () => void, unref = false): Timer {
  let timer: NodeJS.Timeout;
  const due = Date.now() + ms;
  const arm = (left: number) => {
    timer = setTimeout(() => {
      const rest = due - Date.now();
      if (rest > 0) arm(rest);
      else fire();
    }, Math.min(left, MAX_TIMER_MS));
    if (unref) timer.unref();
  };
  arm(ms);
  return { clear: () => clearTimeout(timer) };
}

/**
 * Joins `signal` with `timeout`. `whatTimedOut` says what did not happen and what to do.
 * The TimeoutError is created now, so that its
 * stack points at the caller's line rather than at a timer callback (as nats.js does).
 */
export function deadline(opts: WaitOptions, whatTimedOut: string): Deadline {
  const timeout = checkTimeout(opts.timeout);
  const parent = opts.signal;
  if (timeout === undefined) return { signal: parent, dispose() {} };
  const error = new TimeoutError(`${whatTimedOut} (timeout ${timeout} ms)`);
  const controller = new AbortController();
  const timer = longTimer(timeout, () => controller.abort(error));
  const onAbort = () => controller.abort(parent?.reason);
  if (parent?.aborted) controller.abort(parent.reason);
  else parent?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    dispose() {
      timer.clear();
      parent?.removeEventListener('abort', onAbort);
    },
  };
}

/** Waits `ms`, or rejects with `signal.reason` as soon as it aborts. Leaves no timer or listener behind. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      timer.clear();
      reject(signal!.reason);
    };
    const timer = longTimer(ms, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** How a pending wait is settled (resolve or reject once; later calls do nothing to the promise). */
export interface Settle<T> {
  resolve(value: T): void;
  reject(err: unknown): void;
}

/**
 * A wait that `signal` can abort: `park` gets the settle functions to keep (a
 * receiver's waiter) and starts whatever will call them. On abort, `forget` runs
 * (drop the kept functions) and the promise rejects with `signal.reason`; once
 * settled either way, the listener on `signal` is gone. A signal aborted already
 * rejects at once, and neither `park` nor `forget` runs.
 */
export function abortableWait<T>(signal: AbortSignal | undefined, forget: () => void, park: (settle: Settle<T>) => void): Promise<T> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      forget();
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    park({
      resolve: (value) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(value);
      },
      reject: (err) => {
        signal?.removeEventListener('abort', onAbort);
        reject(err);
      },
    });
  });
}

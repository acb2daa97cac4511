import { InvalidArgumentError, TimeoutError } from '../errors.js';

/** Options taken by every npipe call that can wait. */
export interface WaitOptions {
  /** Aborts the wait; the call rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Milliseconds before the call rejects with `ERR_NPIPE_TIMEOUT`. */
  timeout?: number;
}

export interface Deadline {
  /** The caller's signal joined with the timeout; undefined when neither was given. */
  readonly signal: AbortSignal | undefined;
  /** Clears the timer and the listener on the caller's signal. Call it when the wait settles. */
  dispose(): void;
}

export function checkTimeout(timeout: unknown, name = 'timeout'): number | undefined {
  if (timeout === undefined) return undefined;
  if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout < 0) {
    throw new InvalidArgumentError(`${name} must be a finite number of milliseconds >= 0, got ${String(timeout)}`);
  }
  return timeout;
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
  const timer = setTimeout(() => controller.abort(error), timeout);
  const onAbort = () => controller.abort(parent?.reason);
  if (parent?.aborted) controller.abort(parent.reason);
  else parent?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    dispose() {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onAbort);
    },
  };
}

/** Waits `ms`, or rejects with `signal.reason` as soon as it aborts. Leaves no timer or listener behind. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Busy polling: after a request or a reply, keep the event loop polling for I/O
 * for a few microseconds instead of letting the process sleep.
 *
 * Why: on a virtual machine, most of a round trip between two processes is the
 * cost of waking a CPU that went idle (the host must reschedule it). A process
 * that is still polling when the answer arrives sees it at its next poll, with no
 * wake-up at all. This is what Linux's SO_BUSY_POLL does for sockets, and the
 * option takes the same unit.
 *
 * How: a chain of setImmediate callbacks. Each turn of the chain is one full turn
 * of the event loop, whose I/O poll then has a timeout of 0: the loop never
 * blocks on anything, every callback and timer still runs, and the chain simply
 * stops at the deadline, after which the loop sleeps as usual. The cost is CPU:
 * up to `busyPoll` microseconds of one core after each activity. It pays when the
 * processes have cores to themselves; with more busy pollers than cores they take
 * turns on the CPU and latency gets worse, not better.
 */
import { InvalidArgumentError } from '../errors.js';

/** The largest busy poll accepted, in microseconds: beyond this the process would rather sleep. */
export const MAX_BUSY_POLL_US = 1_000_000;

/** Checks a `busyPoll` option: whole microseconds, 0 (off, the default) to MAX_BUSY_POLL_US. */
export function checkBusyPoll(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_BUSY_POLL_US) {
    throw new InvalidArgumentError(`busyPoll must be a whole number of microseconds from 0 to ${MAX_BUSY_POLL_US}, got ${String(value)}`);
  }
  return value;
}

/** One per process: every client and server in it extends the same deadline. */
let deadline = 0;
let polling = false;

function turn(): void {
  if (performance.now() < deadline) setImmediate(turn);
  else polling = false;
}

/** Keeps the event loop polling until at least `us` microseconds from now (no-op for 0). */
export function keepPolling(us: number): void {
  if (us === 0) return;
  const until = performance.now() + us / 1000;
  if (until > deadline) deadline = until;
  if (!polling) {
    polling = true;
    setImmediate(turn);
  }
}

/** Whether the event loop is being kept polling now (for tests and diagnostics). */
export function isBusyPolling(): boolean {
  return polling;
}

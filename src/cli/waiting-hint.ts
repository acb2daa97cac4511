/**
 * The waiting hint (issue 19 #3): a command that has waited a second for its peer
 * (send for a reader, request for a server's answer) says so once on stderr, with
 * what it waits for and how to stop, when stderr is a terminal. On a terminal a
 * silent wait looks hung; in a script or a pipe nothing is added to stderr.
 */
import type { CliIO } from './args.js';

/** How long a command waits before it says what it is waiting for. */
export const WAITING_HINT_MS = 1000;

/**
 * Arms the hint: after WAITING_HINT_MS, if not cancelled by then and stderr is a
 * terminal, writes `line` to it. @returns the cancel, to call once the wait is over.
 */
export function waitingHint(io: CliIO, line: string): () => void {
  // stderr is looked at only when the time comes: a one-shot call that never waits
  // does not pay for making process.stderr (issue 18 #6).
  const timer = setTimeout(() => {
    if ((io.stderr as NodeJS.WriteStream).isTTY === true) io.stderr.write(`${line}\n`);
  }, WAITING_HINT_MS);
  timer.unref();
  return () => clearTimeout(timer);
}

#!/usr/bin/env node
import os from 'node:os';
import { EXIT } from './args.js';
import { main, stdoutFailure, type StopReason } from './main.js';
import { spareStdioTheExitSync } from '../sys/exit-sync.js';

/**
 * One act can deliver a signal twice: timeout(1), and a shell's Ctrl-C, send it to
 * the command and then to its whole process group. A repeat of the same signal this
 * soon after the first is that one act, not a second request to stop at once (which
 * would cut the message being written: attack pass on issue 15 #4).
 */
const SAME_ACT_MS = 1000;
const controller = new AbortController();
let first: { signal: NodeJS.Signals; at: number } | undefined;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (first) {
      if (signal === first.signal && Date.now() - first.at < SAME_ACT_MS) return;
      // A second signal: stop now (send finishing a message for a reader that does not read).
      stderrStream().write(`npipe ${process.argv[2] ?? ''}: stopped at once by a second signal (${signal}); a message being written may be cut\n`);
      process.exit(128 + (os.constants.signals[signal] ?? 1));
    }
    first = { signal, at: Date.now() };
    const reason: StopReason = new Error(`stopped by ${signal}`);
    reason.signal = signal;
    controller.abort(reason);
  });
}
/**
 * process.stdout, with its error handler, made on first use: a one-shot send that
 * prints nothing never makes it (~8 ms of start-up here: issue 18 #6).
 */
let stdout: NodeJS.WriteStream | undefined;
function stdoutStream(): NodeJS.WriteStream {
  if (stdout) return stdout;
  stdout = process.stdout;
  stdout.on('error', (err: NodeJS.ErrnoException) => {
    // Whoever read our stdout went away (npipe listen | head -1): stop quietly, exit 0
    // (README "Exit codes"), as a Unix filter whose reader left ends its job.
    if (err.code === 'EPIPE') process.exit(EXIT.ok);
    // Any other write error (a full disk, > /dev/full, an I/O error): the usual one
    // line with a code, exit 1, never a stack (issue 15 #12).
    stderrStream().write(`${stdoutFailure(process.argv[2], err)}\n`);
    process.exit(EXIT.failure);
  });
  return stdout;
}

/** How long a finished command may wait for handles it left behind before the process ends anyway. */
const LINGER_MS = 250;

let stderr: NodeJS.WriteStream | undefined;
/**
 * process.stderr, made on first use too, with an error handler: stderr to /dev/full,
 * or a pipe whose reader went away, has nowhere to say so. Without the handler
 * the first failed write (a --progress line in the middle of a transfer) was an
 * uncaught 'error': a stack, exit 1 and the transfer cut. Now the lines are lost
 * and the command goes on, its exit code its own.
 */
function stderrStream(): NodeJS.WriteStream {
  if (stderr) return stderr;
  stderr = process.stderr;
  stderr.on('error', () => {});
  return stderr;
}
void main(process.argv.slice(2), {
  // Made on first use: a send whose messages are its arguments never touches stdin
  // (making process.stdin costs a one-shot call ~10 ms: issue 18 #6).
  get stdin() {
    return process.stdin;
  },
  get stdout() {
    return stdoutStream();
  },
  get stderr() {
    return stderrStream();
  },
  stop: controller.signal,
}).then((code) => {
  process.exitCode = code;
  // The last listener of 'exit' (registered after every other): nothing is written after it.
  process.once('exit', spareStdioTheExitSync);
  // The command is done. Something it gave up on may still hold the event loop: a
  // NATS connect abandoned at --timeout or SIGINT keeps its socket (nats.js's
  // connect cannot be cancelled) for up to 10 s. Not waited for: on Linux
  // everything written to stdout and stderr is already written (files, pipes and
  // terminals are written synchronously there), so the process may end now.
  if (process.platform === 'linux') setTimeout(() => process.exit(), LINGER_MS).unref();
});

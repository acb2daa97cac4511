#!/usr/bin/env node
import os from 'node:os';
import { EXIT } from './args.js';
import { main, stdoutFailure, type StopReason } from './main.js';

const controller = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    // A second signal: stop now (send finishing a message for a reader that does not read).
    if (controller.signal.aborted) process.exit(128 + (os.constants.signals[signal] ?? 1));
    const reason: StopReason = new Error(`stopped by ${signal}`);
    reason.signal = signal;
    controller.abort(reason);
  });
}
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  // Whoever read our stdout went away (npipe listen | head -1): stop quietly, exit 0
  // (README "Exit codes"), as a Unix filter whose reader left ends its job.
  if (err.code === 'EPIPE') process.exit(EXIT.ok);
  // Any other write error (a full disk, > /dev/full, an I/O error): the usual one
  // line with a code, exit 1, never a stack (issue 15 #12).
  process.stderr.write(`${stdoutFailure(process.argv[2], err)}\n`);
  process.exit(EXIT.failure);
});
process.exitCode = await main(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  stop: controller.signal,
});

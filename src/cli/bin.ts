#!/usr/bin/env node
import os from 'node:os';
import { EXIT } from './args.js';
import { main, type StopReason } from './main.js';

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
  // Whoever read our stdout went away (npipe listen | head -1): stop quietly, as cat does.
  if (err.code === 'EPIPE') process.exit(EXIT.ok);
  throw err;
});
process.exitCode = await main(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  stop: controller.signal,
});

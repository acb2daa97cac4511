#!/usr/bin/env node
import { EXIT } from './args.js';
import { main, type StopReason } from './main.js';

const controller = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (controller.signal.aborted) process.exit(EXIT.failure); // a second signal: stop now
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

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { mkfifo } from '../src/fifo-public.js';
import { BIN, npipe, start, tempDir } from './helpers.js';

const RUNS = 3;
const LINES = 20_000;

/**
 * A signal at a random moment while messages stream in: what listen printed is
 * the sent messages from the first, whole and in order; only with lines may the
 * last one be the start of a line (received without its newline: issue 15 #16).
 */
describe('attack (issue 15): SIGINT/SIGTERM to listen at random moments mid-stream: whole messages, in order, a prefix of what was sent', () => {
  const configs: Array<{ format: string; args: string[]; cutAllowed: boolean }> = [
    { format: 'lines', args: [], cutAllowed: true },
    // --count above what is sent: the listener can never be done (and exiting) when the signal comes.
    { format: 'lines', args: ['--count', String(2 * LINES)], cutAllowed: true },
    { format: 'length', args: ['--json'], cutAllowed: false },
    { format: 'length', args: ['--count', String(2 * LINES)], cutAllowed: false },
    { format: 'frames', args: [], cutAllowed: false },
  ];
  for (const { format, args, cutAllowed } of configs) {
    test(`${format} ${args.join(' ')}: ${RUNS} runs`, async (t) => {
      const dir = tempDir(t);
      const sent = Array.from({ length: LINES }, (_, i) => `message ${i} ${'x'.repeat(i % 61)}`);
      const input = join(dir, 'in');
      writeFileSync(input, `${sent.join('\n')}\n`);
      for (let run = 0; run < RUNS; run++) {
        const path = join(dir, `p${run}`);
        await mkfifo(path);
        const listener = npipe(['listen', path, '--format', format, ...args]);
        // The sender may end with ERR_NPIPE_NO_READER when the listener is gone: not what is checked here.
        const sender = start('sh', ['-c', `exec "$0" "$1" send "$2" --format "$3" --timeout 30000 < "$4"`, process.execPath, BIN, path, format, input]);
        await listener.waitForOutput('message 0');
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 100));
        const signal = run % 2 === 0 ? 'SIGINT' : 'SIGTERM';
        listener.child.kill(signal);
        const r = await listener.done;
        await sender.done;
        assert.equal(r.code, 0, `${signal}: ${r.stderr}`);
        let printed = r.stdout.split('\n');
        assert.equal(printed.pop(), '', 'every message printed ends with a newline');
        if (args.includes('--json')) printed = printed.map((l) => (JSON.parse(l) as { text: string }).text);
        assert.ok(printed.length > 0);
        for (let i = 0; i < printed.length - 1; i++) assert.equal(printed[i], sent[i], `message ${i} (${signal})`);
        const last = printed.length - 1;
        if (cutAllowed) assert.ok(sent[last]!.startsWith(printed[last]!), `the last line is the start of message ${last}: ${printed[last]}`);
        else assert.equal(printed[last], sent[last], `message ${last} whole (${signal})`);
      }
    });
  }
});

import assert from 'node:assert/strict';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { bytesInPipe } from '../src/fifo/index.js';
import { mkfifo } from '../src/fifo-public.js';
import { npipe, run, start, tempDir, until, openWriter } from './helpers.js';

/** Opens `path` read-write: the test's own descriptor keeps the pipe and what is in it alive between readers. */
function holdOpen(path: string): number {
  return openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
}

describe('#15.15 - listen --count N consumed more than N messages', () => {
  const formats: Array<{ format: string; messages: string[] }> = [
    { format: 'lines', messages: ['a', 'b', 'c'] },
    { format: 'lines', messages: ['x'.repeat(100_000), '', 'tail'] },
    { format: 'length', messages: ['a', 'bb', 'ccc'] },
    { format: 'length', messages: ['y'.repeat(100_000), '', 'zz'] },
    { format: 'fixed:3', messages: ['aaa', 'bbb', 'ccc'] },
    { format: 'frames', messages: ['a', 'bb', 'ccc'] },
    { format: 'frames', messages: ['f'.repeat(100_000), 'g'.repeat(9000), 'h'] },
  ];
  for (const { format, messages } of formats) {
    const sizes = messages.map((m) => m.length).join('/');
    test(`${format} (${sizes} bytes): --count 1 takes one message, a second --count 2 gets the other two, nothing is left or lost`, async (t) => {
      const path = join(tempDir(t), 'p');
      await mkfifo(path);
      const fd = holdOpen(path);
      t.after(() => closeSync(fd));
      // The sender may still be writing (messages over the pipe's size) while the first listener reads.
      const sender = npipe(['send', path, '--format', format, '--timeout', '10000', ...messages]);
      const first = await run(['listen', path, '--format', format, '--count', '1', '--json', '--timeout', '10000']);
      assert.equal(first.code, 0, first.stderr);
      assert.equal(first.stderr, '', 'nothing discarded, nothing to report');
      const second = await run(['listen', path, '--format', format, '--count', '2', '--json', '--timeout', '10000']);
      assert.equal(second.code, 0, second.stderr);
      assert.equal((await sender.done).code, 0);
      const texts = (out: string) => out.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { text: string }).text);
      assert.deepEqual(texts(first.stdout), messages.slice(0, 1));
      assert.deepEqual(texts(second.stdout), messages.slice(1));
      assert.equal(bytesInPipe(fd), 0, 'the second listener took exactly the rest');
    });
  }

  test('lines: a plain writer\'s burst of 1000 lines read by ten --count 100 listeners in turn, each line once, in order', async (t) => {
    const path = join(tempDir(t), 'p');
    await mkfifo(path);
    const fd = holdOpen(path);
    t.after(() => closeSync(fd));
    const lines = Array.from({ length: 1000 }, (_, i) => `line ${i} ${'.'.repeat(i % 37)}`);
    writeSync(fd, `${lines.join('\n')}\n`);
    let got: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await run(['listen', path, '--count', '100', '--timeout', '10000']);
      assert.equal(r.code, 0, r.stderr);
      got = got.concat(r.stdout.split('\n').slice(0, -1));
    }
    assert.deepEqual(got, lines);
    assert.equal(bytesInPipe(fd), 0);
  });

  test('--once: the stream ends before N: the last line without "\\n" is printed, exit 0', async (t) => {
    const path = join(tempDir(t), 'p');
    await mkfifo(path);
    const listener = npipe(['listen', path, '--count', '5', '--once']);
    const fd = await openWriter(path);
    writeSync(fd, 'one\nno newline');
    closeSync(fd);
    const r = await listener.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'one\nno newline\n');
  });

  test('--once: a length message cut by the end of the stream is ERR_NPIPE_BAD_FRAME after the whole ones', async (t) => {
    const path = join(tempDir(t), 'p');
    await mkfifo(path);
    const listener = npipe(['listen', path, '--count', '5', '--once', '--format', 'length']);
    const fd = await openWriter(path);
    writeSync(fd, Buffer.from([0, 0, 0, 2, 0x6f, 0x6b, 0, 0, 0, 5, 0x61]));
    closeSync(fd);
    const r = await listener.done;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_NPIPE_BAD_FRAME/);
    assert.equal(r.stdout, 'ok\n');
  });
});

describe('#15.16 - a signal to listen dropped a last line without "\\n"', () => {
  const cases: Array<{ args: string[]; expect: string }> = [
    { args: [], expect: 'first\nno newline\n' },
    { args: ['--json'], expect: '{"text":"first"}\n{"text":"no newline"}\n' },
    { args: ['--count', '5'], expect: 'first\nno newline\n' },
    { args: ['--count', '5', '--json'], expect: '{"text":"first"}\n{"text":"no newline"}\n' },
  ];
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    for (const { args, expect } of cases) {
      test(`${signal}, listen ${args.join(' ') || '(lines)'}: the line received so far is printed as the last message, exit 0`, async (t) => {
        const path = join(tempDir(t), 'p');
        await mkfifo(path);
        const listener = npipe(['listen', path, ...args]);
        const fd = await openWriter(path);
        t.after(() => closeSync(fd));
        writeSync(fd, 'first\nno newline');
        // The listener has read it all (nothing left in the pipe), and the writer is still there: no end of file.
        await until(() => bytesInPipe(fd) === 0, 'the listener to read the bytes');
        await listener.waitForOutput('first');
        listener.child.kill(signal);
        const r = await listener.done;
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, expect);
      });
    }
  }
});

describe('listen --count with frames: a writer that died mid-message', () => {
  test('its message is dropped and reported (writer-died), and the next message counts', async (t) => {
    const path = join(tempDir(t), 'p');
    await mkfifo(path);
    const listener = npipe(['listen', path, '--format', 'frames', '--count', '1']);
    const fd = await openWriter(path); // the listener is there
    closeSync(fd);
    const partial = start(process.execPath, [new URL('./fixtures/partial.js', import.meta.url).pathname, path, '7']);
    await partial.waitForOutput('half');
    partial.child.kill('SIGKILL');
    await partial.done;
    await listener.waitForError('writer-died');
    assert.equal((await run(['send', path, '--format', 'frames', 'after', '--timeout', '10000'])).code, 0);
    const r = await listener.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'after\n');
    assert.match(r.stderr, /^npipe listen: dropped a message from writer [0-9a-f]{8} \(pid \d+\): writer-died, \d+ bytes\n$/);
  });
});

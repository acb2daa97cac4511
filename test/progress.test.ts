/**
 * `--progress` on raw streams (issue 19 #2), through the real binary: bytes, rate
 * and, for a file on stdin, percentage and time left, on stderr; a line a second
 * when stderr is not a terminal, one line redrawn in place when it is; the total at
 * the end; and the splice lane kept (the bytes never pass through npipe).
 */
import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { mkfifo } from '../src/fifo-public.js';
import { BIN, run, start, tempDir, type Result } from './helpers.js';
import { formatSeconds } from '../src/cli/progress.js';

const MiB = 1024 * 1024;
const SIZE = 8 * MiB;
const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
const NPIPE = `${q(process.execPath)} ${q(BIN)}`;

/** A reader that takes 512 KiB every 100 ms: 8 MiB in about 1.6 s, long enough for a line a second. */
function slowReader(path: string) {
  const script = `const fs = require('fs'); const fd = fs.openSync(process.argv[1], 'r'); const b = Buffer.alloc(524288); let total = 0;
const t = setInterval(() => { const n = fs.readSync(fd, b); total += n; if (n === 0) { clearInterval(t); console.log(total); } }, 100);`;
  return start(process.execPath, ['-e', script, path], { hangMs: 60_000 });
}

/** Runs `command` in sh, then prints the shell's io counters (its children's included) on stderr. */
function counted(command: string) {
  return start('sh', ['-c', `${command}; s=$?; grep -E '^wchar' /proc/$$/io >&2; exit $s`], { hangMs: 60_000 });
}

function wchar(result: Result): number {
  const m = /^wchar: (\d+)$/m.exec(result.stderr);
  assert.ok(m, result.stderr);
  return Number(m[1]);
}

function progressLines(stderr: string, prefix: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith(`${prefix}: `));
}

/**
 * An 8 MiB input file and a FIFO with slowReader() on it. Not readerOn(): its
 * probe's close would be an end of file for this reader; the send waits for it anyway.
 */
async function fileToSlowReader(t: TestContext) {
  const dir = tempDir(t);
  const path = join(dir, 'p');
  const input = join(dir, 'in');
  writeFileSync(input, Buffer.alloc(SIZE, 1));
  await mkfifo(path);
  return { dir, path, input, reader: slowReader(path) };
}

const LINE = /^npipe send: [\d.]+ (B|KiB|MiB) of 8\.0 MiB \((\d+)%\) sent, [\d.]+ (B|KiB|MiB|GiB)\/s, (\d+s|\?) left$/;

describe('--progress (Linux: the splice lane)', { skip: process.platform !== 'linux' && 'the splice lane is Linux-only' }, () => {
  test('send < file: a line a second with bytes, percentage, rate and time left, then the exact total; still spliced', async (t) => {
    const { path, input, reader } = await fileToSlowReader(t);
    const sender = await counted(`${NPIPE} send ${q(path)} --format raw --progress --timeout 30s < ${q(input)}`).done;
    assert.equal(sender.code, 0, sender.stderr);
    assert.equal((await reader.done).stdout.trim(), String(SIZE));
    const lines = progressLines(sender.stderr, 'npipe send');
    const periodic = lines.slice(0, -1);
    assert.ok(periodic.length >= 1, sender.stderr);
    const percents = periodic.map((l) => {
      const m = LINE.exec(l);
      assert.ok(m, `not a progress line: ${JSON.stringify(l)}`);
      return Number(m[2]);
    });
    assert.deepEqual(percents, [...percents].sort((a, b) => a - b), 'the percentage only grows');
    assert.match(lines.at(-1)!, new RegExp(`^npipe send: ${SIZE} bytes \\(8\\.0 MiB\\) sent in [\\d.]+s, [\\d.]+ (B|KiB|MiB|GiB)/s$`));
    assert.doesNotMatch(sender.stderr, /\r/, 'no redrawing when stderr is not a terminal');
    // Spliced: what npipe wrote itself (its stderr included) is far less than the stream.
    assert.ok(wchar(sender) < SIZE / 4, `send wrote ${wchar(sender)} bytes itself`);
  });

  test('listen > /dev/null and into a file: a line a second, the exact total at the end; still off the event loop', async (t) => {
    const dir = tempDir(t);
    for (const out of ['/dev/null', join(dir, 'out')]) {
      const path = join(dir, `p${out === '/dev/null' ? 'n' : 'f'}`);
      await mkfifo(path);
      const listener = counted(`${NPIPE} listen ${q(path)} --format raw --once --progress > ${q(out)}`);
      // A writer that sends 512 KiB every 100 ms; its open waits for the listener (a readerOn() probe would end a --once listener).
      const writer = start(
        process.execPath,
        ['-e', `const fs = require('fs'); const fd = fs.openSync(process.argv[1], 'w'); const b = Buffer.alloc(524288, 2); let n = 0;
const t = setInterval(() => { fs.writeSync(fd, b); if (++n === 16) { clearInterval(t); fs.closeSync(fd); } }, 100);`, path],
        { hangMs: 60_000 },
      );
      assert.equal((await writer.done).code, 0);
      const l = await listener.done;
      assert.equal(l.code, 0, l.stderr);
      const lines = progressLines(l.stderr, 'npipe listen');
      assert.ok(lines.length >= 2, l.stderr);
      for (const line of lines.slice(0, -1)) assert.match(line, /^npipe listen: [\d.]+ (B|KiB|MiB) received, [\d.]+ (B|KiB|MiB|GiB)\/s$/);
      assert.match(lines.at(-1)!, new RegExp(`^npipe listen: ${SIZE} bytes \\(8\\.0 MiB\\) received in [\\d.]+s, `));
      if (out === '/dev/null') assert.ok(wchar(l) < SIZE / 4, `listen wrote ${wchar(l)} bytes itself: did it splice?`);
    }
  });

  test('on a terminal: one line redrawn in place (\\r), ending with the total and a newline', async (t) => {
    const { path, input, reader } = await fileToSlowReader(t);
    const r = await start(
      'python3',
      ['-c', 'import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))', 'sh', '-c', `exec "$0" "$1" send "$2" --format raw --progress < "$3"`, process.execPath, BIN, path, input],
      { hangMs: 60_000 },
    ).done;
    assert.equal(r.code, 0, r.stdout);
    assert.equal((await reader.done).stdout.trim(), String(SIZE));
    const draws = r.stdout.split('\r\x1b[K').slice(1);
    assert.ok(draws.length >= 3, JSON.stringify(r.stdout));
    for (const draw of draws.slice(0, -1)) assert.match(draw, /^npipe send: [\d.]+ (B|KiB|MiB) of 8\.0 MiB \(\d+%\) sent, .*left$/);
    assert.match(draws.at(-1)!, new RegExp(`^npipe send: ${SIZE} bytes \\(8\\.0 MiB\\) sent in [\\d.]+s, .*/s\\r?\\n$`));
  });

  test('stdin a pipe (no size known): bytes and rate without a percentage, the exact total at the end', async (t) => {
    const { path, input, reader } = await fileToSlowReader(t);
    const sender = await start('sh', ['-c', `cat ${q(input)} | ${NPIPE} send ${q(path)} --format raw --progress --timeout 30s`], { hangMs: 60_000 }).done;
    assert.equal(sender.code, 0, sender.stderr);
    assert.equal((await reader.done).stdout.trim(), String(SIZE));
    const lines = progressLines(sender.stderr, 'npipe send');
    assert.ok(lines.length >= 2, sender.stderr);
    for (const line of lines.slice(0, -1)) assert.match(line, /^npipe send: [\d.]+ (B|KiB|MiB) sent, [\d.]+ (B|KiB|MiB|GiB)\/s$/);
    assert.match(lines.at(-1)!, new RegExp(`^npipe send: ${SIZE} bytes \\(8\\.0 MiB\\) sent in `));
  });

  test('stderr to /dev/full or a closed pipe: the transfer goes on to the end, exit 0, no stack (attack on issue 19 #2)', async (t) => {
    const dir = tempDir(t);
    const input = join(dir, 'in');
    writeFileSync(input, Buffer.alloc(SIZE, 1));
    // fd 3: the test's stdout, for the exit code of a send whose stderr is a pipe nobody reads.
    for (const [name, redirect] of [['full', '2>/dev/full'], ['pipe', '2>&1 >/dev/null']]) {
      const path = join(dir, `p-${name}`);
      await mkfifo(path);
      // Slow: the progress lines fail in the middle of the transfer, not only at its end.
      const reader = slowReader(path);
      const send = `${NPIPE} send ${q(path)} --format raw --progress --timeout 30s < ${q(input)} ${redirect}; echo "exit $?" >&3`;
      const r = await start('sh', ['-c', `exec 3>&1; { ${send}; } ${name === 'pipe' ? '| true' : ''}`], { hangMs: 60_000 }).done;
      const stderr = redirect;
      assert.match(r.stdout, /^exit 0$/m, `${stderr}: ${r.stdout}${r.stderr}`);
      assert.equal((await reader.done).stdout.trim(), String(SIZE), stderr);
    }
  });

  test('a file that grows while it is sent: never over 100%, never a negative time left (attack on issue 19 #2)', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'p');
    const input = join(dir, 'in');
    writeFileSync(input, Buffer.alloc(4 * MiB, 1));
    await mkfifo(path);
    const reader = slowReader(path);
    const sender = counted(`${NPIPE} send ${q(path)} --format raw --progress --timeout 30s < ${q(input)}`);
    // 4 MiB more while the first 4 are sent (the slow reader takes 5 MiB a second).
    await new Promise((resolve) => setTimeout(resolve, 300));
    appendFileSync(input, Buffer.alloc(4 * MiB, 2));
    const s = await sender.done;
    assert.equal(s.code, 0, s.stderr);
    assert.equal((await reader.done).stdout.trim(), String(SIZE));
    const lines = progressLines(s.stderr, 'npipe send').slice(0, -1);
    assert.ok(lines.length >= 1, s.stderr);
    for (const line of lines) {
      const m = /\((\d+)%\).* (-?\d+s|\?) left$/.exec(line);
      assert.ok(m, line);
      assert.ok(Number(m[1]) <= 100, line);
      assert.doesNotMatch(m[2]!, /^-/, line);
    }
    assert.match(s.stderr, /of 8\.0 MiB/, 'the size is read again as the file grows');
  });

  test('time left: rounded once, so never "1m60s"', () => {
    assert.equal(formatSeconds(119.5), '2m00s');
    assert.equal(formatSeconds(59.2), '1m00s');
    assert.equal(formatSeconds(61), '1m01s');
    assert.equal(formatSeconds(3599.5), '1h00m');
    assert.equal(formatSeconds(-3), '0s');
    assert.equal(formatSeconds(Infinity), '?');
  });

  test('--progress without --format raw, with message arguments, or with --count: exit 2, nothing sent', async (t) => {
    const path = join(tempDir(t), 'p');
    const cases: Array<[string[], RegExp]> = [
      [['send', path, '--progress'], /--progress shows a raw byte stream: it goes with --format raw/],
      [['send', path, 'x', '--format', 'raw', '--progress'], /--progress shows the stream read from stdin; give no message arguments/],
      [['listen', path, '--progress'], /--progress shows a raw byte stream/],
      [['listen', path, '--format', 'raw', '--progress', '--count', '1'], /does not go with --count/],
    ];
    for (const [args, message] of cases) {
      const r = await run(args, { input: '' });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });
});

import assert from 'node:assert/strict';
import { closeSync, existsSync, lstatSync, mkdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { mkfifo } from '../src/fifo-public.js';
import { BIN, npipe, readerOn, run, start, tempDir, openWriter } from './helpers.js';

const NODE = JSON.stringify(process.execPath);
const NPIPE = `${NODE} ${JSON.stringify(BIN)}`;

/** One line, with a code, and no stack trace. */
function assertOneLine(stderr: string, code: RegExp): void {
  const lines = stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0]!, code);
  assert.doesNotMatch(stderr, /\n\s+at /);
  // The errno's code once, not twice ("failed: ENOSPC ENOSPC: no space left on device": attack pass on issue 18).
  assert.doesNotMatch(lines[0]!, /\b(E[A-Z]{2,}):? \1\b/);
}

describe('#15.12 - a write error on stdout printed a stack', () => {
  const cases: Array<{ name: string; args: string[]; bytes: Buffer }> = [
    { name: 'lines (pass-through)', args: [], bytes: Buffer.from('hello\n') },
    { name: 'lines --json', args: ['--json'], bytes: Buffer.from('hello\n') },
    { name: 'length (messages)', args: ['--format', 'length'], bytes: Buffer.from([0, 0, 0, 2, 0x68, 0x69]) },
    { name: 'lines --count', args: ['--count', '2'], bytes: Buffer.from('hello\n') },
    { name: 'raw (splice path)', args: ['--format', 'raw'], bytes: Buffer.from('raw bytes') },
    { name: 'raw --count', args: ['--format', 'raw', '--count', '1'], bytes: Buffer.from('raw bytes') },
  ];
  for (const { name, args, bytes } of cases) {
    test(`${name}: listen > /dev/full exits 1 with one ERR_NPIPE_SYSTEM line`, async (t) => {
      const path = join(tempDir(t), 'p');
      await mkfifo(path);
      const listener = start('sh', ['-c', `exec ${NPIPE} listen "$0" "$@" > /dev/full`, path, ...args]);
      const fd = await openWriter(path);
      t.after(() => closeSync(fd));
      writeSync(fd, bytes);
      const r = await listener.done;
      assert.equal(r.code, 1, r.stderr);
      assertOneLine(r.stderr, /^npipe listen: ERR_NPIPE_SYSTEM: /);
    });
  }
});

describe('#15.12 - stdout\'s reader goes away (| head -n 1): a quiet exit 0, as documented', () => {
  for (const args of [[], ['--count', '100000'], ['--format', 'length'], ['--format', 'length', '--count', '100000']]) {
    test(`listen ${args.join(' ') || '(lines)'} | head -n 1: exit 0, nothing on stderr`, async (t) => {
      const dir = tempDir(t);
      const path = join(dir, 'p');
      const code = join(dir, 'code');
      await mkfifo(path);
      writeFileSync(join(dir, 'in'), Array.from({ length: 100_000 }, (_, i) => `line ${i}`).join('\n'));
      const listener = start('sh', ['-c', `{ ${NPIPE} listen "$0" "$@"; echo $? > "${code}"; } | head -n 1`, path, ...args]);
      const format = args.includes('length') ? 'length' : 'lines';
      // The sender ends with ERR_NPIPE_NO_READER once the listener is gone.
      const sender = start('sh', ['-c', `exec ${NPIPE} send "$0" --format ${format} --timeout 30000 < "$1"`, path, join(dir, 'in')]);
      const r = await listener.done;
      await sender.done;
      assert.equal(r.stdout, 'line 0\n');
      assert.equal(r.stderr, '');
      assert.equal(readFileSync(code, 'utf8').trim(), '0');
    });
  }
});

describe('#15.18 - misleading errors', () => {
  test('lines into a length listener: ERR_NPIPE_FRAME_TOO_LARGE says the header looks like text', async (t) => {
    const path = join(tempDir(t), 'p');
    await mkfifo(path);
    const listener = npipe(['listen', path, '--format', 'length', '--once']);
    const sender = await run(['send', path, 'hello', '--timeout', '10000']);
    assert.equal(sender.code, 0, sender.stderr);
    const r = await listener.done;
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, /^npipe listen: ERR_NPIPE_FRAME_TOO_LARGE: .*looks like text/);
  });

  for (const command of [['listen'], ['send', 'x'], ['listen', '--count', '1']]) {
    test(`${command.join(' ')} with a missing parent folder: ERR_NPIPE_NOT_FOUND naming the folder, nothing created`, async (t) => {
      const dir = tempDir(t);
      const path = join(dir, 'missing', 'p');
      const r = await run([command[0]!, path, ...command.slice(1), '--timeout', '1000']);
      assert.equal(r.code, 1);
      assertOneLine(r.stderr, new RegExp(`ERR_NPIPE_NOT_FOUND: the folder ${join(dir, 'missing')} does not exist`));
      assert.equal(existsSync(join(dir, 'missing')), false);
    });
  }
});

describe('#15.19 - unsafe modes, directories', () => {
  for (const command of [['listen', '--count', '1'], ['listen'], ['send', 'x']]) {
    test(`umask 000, ${command[0]} --mode 666 without --allow-shared: exit 2, nothing created`, async (t) => {
      const path = join(tempDir(t), 'p');
      const r = await start('sh', ['-c', `umask 000; exec ${NPIPE} "$@"`, 'sh', command[0]!, path, ...command.slice(1), '--mode', '666', '--timeout', '1000']).done;
      assert.equal(r.code, 2, r.stderr);
      assertOneLine(r.stderr, /ERR_NPIPE_INVALID_ARG/);
      assert.equal(existsSync(path), false, 'no FIFO left behind');
    });
  }

  test('--mode 660 --allow-shared under umask 077 creates the FIFO with exactly 660 (as mkfifo -m)', async (t) => {
    const path = join(tempDir(t), 'p');
    const r = await start('sh', ['-c', `umask 077; exec ${NPIPE} listen "$0" --mode 660 --allow-shared --timeout 1`, path]).done;
    assert.equal(r.code, 3, r.stderr); // the timeout: nothing was sent
    assert.equal(lstatSync(path).mode & 0o777, 0o660);
    assert.ok(lstatSync(path).isFIFO());
  });

  test('a mode-666 FIFO is refused as writable by its group and others (exit 4, ERR_NPIPE_UNSAFE)', async (t) => {
    const path = join(tempDir(t), 'p');
    await mkfifo(path);
    const { chmodSync } = await import('node:fs');
    chmodSync(path, 0o666);
    const r = await run(['listen', path, '--timeout', '1000']);
    assert.equal(r.code, 4);
    assertOneLine(r.stderr, /ERR_NPIPE_UNSAFE: .*its group and others/);
  });

  for (const command of [['send', 'x'], ['listen'], ['listen', '--count', '1']]) {
    test(`${command[0]} to a directory: ERR_NPIPE_NOT_FIFO, exit 4`, async (t) => {
      const path = join(tempDir(t), 'd');
      mkdirSync(path);
      const r = await run([command[0]!, path, ...command.slice(1), '--timeout', '1000']);
      assert.equal(r.code, 4, r.stderr);
      assertOneLine(r.stderr, /ERR_NPIPE_NOT_FIFO/);
    });
  }
});

describe('#15.10 - a --timeout over 2^31-1 ms expired at once', () => {
  for (const command of [['listen', '--count', '1'], ['listen'], ['send', 'x'], ['request', 'x']]) {
    test(`${command[0]} --timeout 2147483648: a usage error (exit 2), no TimeoutOverflowWarning`, async (t) => {
      const path = join(tempDir(t), 'p');
      const r = await run([command[0]!, path, ...command.slice(1), '--timeout', '2147483648']);
      assert.equal(r.code, 2, r.stderr);
      assertOneLine(r.stderr, /ERR_NPIPE_INVALID_ARG/);
      assert.equal(existsSync(path), false, 'refused before anything was created');
    });
  }

  test('listen --timeout 2147483647 (the largest) keeps waiting and warns of nothing', async (t) => {
    const path = join(tempDir(t), 'p');
    const listener = npipe(['listen', path, '--count', '1', '--timeout', '2147483647']);
    const fd = await openWriter(path);
    // It is waiting on the FIFO: still there after a message-free moment, nothing on stderr.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(listener.child.exitCode, null, 'still running');
    writeSync(fd, 'done\n');
    closeSync(fd);
    const r = await listener.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'done\n');
    assert.equal(r.stderr, '');
  });
});

describe('issue 19 #4 - --timeout takes durations (250ms, 5s, 2m), a bare number staying milliseconds', () => {
  for (const command of [['listen', '--count', '1'], ['listen'], ['send', 'x'], ['request', 'x', '--wait']]) {
    test(`${command.join(' ')} --timeout 300ms: gives up after it, exit 3 ERR_NPIPE_TIMEOUT`, async (t) => {
      const path = join(tempDir(t), 'p');
      if (command[0] !== 'listen') await mkfifo(path);
      const r = await run([command[0]!, path, ...command.slice(1), '--timeout', '300ms']);
      assert.equal(r.code, 3, r.stderr);
      assertOneLine(r.stderr, /ERR_NPIPE_TIMEOUT/);
    });
  }

  test('listen --timeout 1.5s keeps waiting past a second; a message inside it ends the listen', async (t) => {
    const path = join(tempDir(t), 'p');
    const listener = npipe(['listen', path, '--count', '1', '--timeout', '1.5s']);
    const fd = await openWriter(path);
    t.after(() => closeSync(fd));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(listener.child.exitCode, null, 'still waiting after 1 s of a 1.5 s timeout');
    writeSync(fd, 'in time\n');
    const r = await listener.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'in time\n');
  });

  for (const bad of ['5x', '1.5', '-1s', '1.0001s', '25d']) {
    test(`--timeout ${bad}: a usage error (exit 2) naming the forms, nothing created`, async (t) => {
      const path = join(tempDir(t), 'p');
      const r = await run(['listen', path, `--timeout=${bad}`]);
      assert.equal(r.code, 2, r.stderr);
      assertOneLine(r.stderr, /ERR_NPIPE_INVALID_ARG.*250ms, 5s/);
      assert.equal(existsSync(path), false);
    });
  }
});

test('listen --json keeps a leading U+FEFF (byte order mark) in the text, as sent (attack pass on issue 15)', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'f');
  for (const format of ['lines', 'length']) {
    const listener = npipe(['listen', path, '--json', '--count', '1', '--format', format]);
    await readerOn(path);
    const sent = await run(['send', path, '--format', format, '\ufeffbom']);
    assert.equal(sent.code, 0, sent.stderr);
    const r = await listener.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { text: '\ufeffbom' }, format);
  }
});

test('--pipe-size no pipe can have (999999999999 bytes) is a usage error, exit 2, not ERR_NPIPE_SYSTEM (attack pass on issue 15)', async (t) => {
  const dir = tempDir(t);
  const r = await run(['listen', join(dir, 'f'), '--pipe-size', '999999999999', '--count', '1', '--timeout', '1000']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^npipe listen: ERR_NPIPE_INVALID_ARG: /);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
});

test('send with a directory as stdin: a usage error (exit 2), nothing sent (Node reads a directory as an empty stream; attack pass on issue 18)', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'p');
  await mkfifo(path);
  const reader = start('sh', ['-c', `exec ${NPIPE} listen "$0" --once --timeout 3000`, path]);
  await readerOn(path);
  const r = await start('sh', ['-c', `exec ${NPIPE} send "$0" < "$1"`, path, dir]).done;
  assert.equal(r.code, 2, r.stderr);
  assertOneLine(r.stderr, /stdin is a directory/);
  const l = await reader.done;
  assert.equal(l.stdout, '');
});

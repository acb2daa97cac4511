/**
 * Windows named pipes (issue 17) as seen from Linux: the address forms, and that
 * nothing here ever opens one. Linux Node would take `\\.\pipe\x` for a Unix
 * socket path and create a file of that name in the current folder; npipe refuses
 * first. The driver itself runs under Wine: test/windows.test.ts.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import { connect, openReceiver, openSender, serve } from '../src/index.js';
import { driverFor, driverName, driversElsewhere } from '../src/registry.js';
import { isWindowsPipe, normalizeWindowsPipe } from '../src/drivers/winpipe/address.js';
import { driver as winpipe } from '../src/drivers/winpipe/index.js';
import { createFraming } from '../src/framing/index.js';
import { EXIT } from '../src/cli/args.js';
import { run, tempDir } from './helpers.js';

const code = (code: string) => (err: unknown) => (err as { code?: string }).code === code;

describe('Windows pipe addresses', () => {
  test('both spellings, `pipe` in any case, are Windows pipes, normalised to \\\\.\\pipe\\<name>', () => {
    for (const [address, normal] of [
      ['\\\\.\\pipe\\jobs', '\\\\.\\pipe\\jobs'],
      ['//./pipe/jobs', '\\\\.\\pipe\\jobs'],
      ['\\\\.\\PIPE\\jobs', '\\\\.\\pipe\\jobs'],
      ['//./Pipe/my.jobs-1', '\\\\.\\pipe\\my.jobs-1'],
    ] as const) {
      assert.equal(isWindowsPipe(address), true, address);
      assert.equal(driverName(address), 'winpipe', address);
      assert.equal(normalizeWindowsPipe(address), normal);
    }
  });

  test('paths, nats:// URLs and remote pipes are not claimed as Windows pipes', () => {
    for (const address of ['/tmp/jobs', 'jobs', './pipe/x', '\\\\host\\pipe\\x', '//host/pipe/x', 'nats://localhost/x', '\\\\.\\pipex']) {
      assert.equal(isWindowsPipe(address), false, address);
      assert.notEqual(driverName(address), 'winpipe', address);
    }
  });

  test('a bad pipe name (empty, a further separator, over 256 characters) is ERR_NPIPE_INVALID_ARG, from the parser and from every entry point', async () => {
    const longest = '\\\\.\\pipe\\' + 'n'.repeat(256 - 9);
    assert.equal(normalizeWindowsPipe(longest).length, 256);
    const bad = ['\\\\.\\pipe\\', '//./pipe/', '\\\\.\\pipe\\a\\b', '//./pipe/a/b', '\\\\.\\pipe\\a/b', longest + 'n', '\\\\.\\pipe\\a\0b'];
    for (const address of bad) {
      assert.throws(() => normalizeWindowsPipe(address), code('ERR_NPIPE_INVALID_ARG'), address);
      await assert.rejects(driverFor(address), code('ERR_NPIPE_INVALID_ARG'), address);
      await assert.rejects(openSender(address), code('ERR_NPIPE_INVALID_ARG'), address);
      await assert.rejects(openReceiver(address), code('ERR_NPIPE_INVALID_ARG'), address);
    }
  });

  test('the CLI: a bad pipe name exits with the usage code', async () => {
    const result = await run(['send', '\\\\.\\pipe\\a\\b', 'hi']);
    assert.equal(result.code, EXIT.usage, result.stderr);
    assert.match(result.stderr, /ERR_NPIPE_INVALID_ARG/);
  });
});

describe('Windows pipes on Linux', () => {
  const address = '\\\\.\\pipe\\npipe-linux-test';

  test('the registry declares the driver Windows-only, and the FIFO driver POSIX-only', () => {
    assert.deepEqual(driversElsewhere('linux'), ['winpipe']);
    assert.deepEqual(driversElsewhere('win32'), ['fifo']);
  });

  test('openSender, openReceiver, serve and connect of a pipe name reject ERR_NPIPE_UNSUPPORTED and create no file in the current folder', async () => {
    const before = readdirSync(process.cwd()).sort();
    for (const spelling of [address, '//./pipe/npipe-linux-test']) {
      await assert.rejects(openSender(spelling, { timeout: 100 }), code('ERR_NPIPE_UNSUPPORTED'));
      await assert.rejects(openReceiver(spelling), code('ERR_NPIPE_UNSUPPORTED'));
      await assert.rejects(serve(spelling, () => 'x'), code('ERR_NPIPE_UNSUPPORTED'));
      await assert.rejects(connect(spelling), code('ERR_NPIPE_UNSUPPORTED'));
    }
    assert.deepEqual(readdirSync(process.cwd()).sort(), before);
  });

  test('the driver itself, loaded on Linux, refuses before touching the network (defence behind the registry)', async (t) => {
    const dir = tempDir(t);
    const cwd = process.cwd();
    process.chdir(dir);
    t.after(() => process.chdir(cwd));
    const framing = createFraming('frames');
    await assert.rejects(winpipe.openSender(address, framing, { timeout: 0 }), code('ERR_NPIPE_UNSUPPORTED'));
    await assert.rejects(winpipe.openReceiver(address, framing, {}), code('ERR_NPIPE_UNSUPPORTED'));
    await assert.rejects(winpipe.serve(address, () => 'x', {}), code('ERR_NPIPE_UNSUPPORTED'));
    await assert.rejects(winpipe.connect(address, {}), code('ERR_NPIPE_UNSUPPORTED'));
    await assert.rejects(winpipe.openSender('\\\\.\\pipe\\', framing, {}), code('ERR_NPIPE_INVALID_ARG'));
    assert.deepEqual(readdirSync(dir), []);
  });

  test('npipe send to a pipe name exits with the code for ERR_NPIPE_UNSUPPORTED, naming it, and creates nothing', async (t) => {
    const dir = tempDir(t);
    for (const spelling of [address, '//./pipe/npipe-linux-test']) {
      const result = await run(['send', spelling, 'hi'], { cwd: dir });
      assert.equal(result.code, EXIT.failure, result.stderr);
      assert.match(result.stderr, /ERR_NPIPE_UNSUPPORTED/);
    }
    assert.deepEqual(readdirSync(dir), []);
  });
});

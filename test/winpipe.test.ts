/**
 * Windows named pipes (issue 17) as seen from Linux: the address forms, and that
 * nothing here ever opens one. Linux Node would take `\\.\pipe\x` for a Unix
 * socket path and create a file of that name in the current folder; npipe refuses
 * first. The driver itself runs under Wine: test/windows.test.ts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { connect, openReceiver, openSender, serve } from '../src/index.js';
import { driverFor, driverName, driversElsewhere } from '../src/registry.js';
import { isWindowsPipe, normalizeWindowsPipe } from '../src/drivers/winpipe/address.js';
import { driver as winpipe } from '../src/drivers/winpipe/index.js';
import { createFraming } from '../src/framing/index.js';
import { openWinPipeFrameReceiver, RECEIVE_HIGH_WATER_BYTES } from '../src/drivers/winpipe/receiver.js';
import { openWinPipeFrameSender } from '../src/drivers/winpipe/sender.js';
import { EXIT } from '../src/cli/args.js';
import { delay, run, tempDir } from './helpers.js';

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
    // shared memory (shm://) is Linux-only too: not on Windows either.
    assert.deepEqual(driversElsewhere('win32'), ['shm', 'fifo']);
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

/**
 * The driver's receiver and sender are libuv streams over a pipe name; on Linux
 * the same code runs over a Unix socket path (what Node makes of a pipe name
 * here), so their logic is tested on every run. What only Windows pipes do
 * (ERROR_PIPE_BUSY, the name space, security) is for test/windows.test.ts.
 */
describe('the Windows pipe receiver and sender, over a Unix socket', () => {
  const pair = async (t: TestContext, format: string, options: { keepOpen?: boolean; waitForReader?: boolean } = {}) => {
    const path = join(tempDir(t), 'sock');
    const receiver = await openWinPipeFrameReceiver(path, createFraming(format), { keepOpen: options.keepOpen ?? true });
    t.after(() => receiver.close());
    const sender = await openWinPipeFrameSender(path, createFraming(format), { timeout: 5000, ...(options.waitForReader ? { waitForReader: true } : {}) });
    t.after(() => sender.close());
    return { path, receiver, sender };
  };

  for (const format of ['frames', 'length', 'lines']) {
    test(`${format}: 4 writers at once, large messages: every message whole, each writer's in order`, async (t) => {
      const { path, receiver, sender } = await pair(t, format);
      const writers = [sender, ...(await Promise.all([1, 2, 3].map(() => openWinPipeFrameSender(path, createFraming(format), { timeout: 5000 }))))];
      const size = format === 'lines' ? 10_000 : 300_000;
      const sent = writers.map((w, k) =>
        Promise.all(Array.from({ length: 20 }, (_, i) => w.send(Buffer.from(`${k}-${i}-`.padEnd(size, 'x'))))).then(() => w.close()),
      );
      const last = new Map<string, number>();
      for (let n = 0; n < 80; n++) {
        const m = (await receiver.receive())!;
        assert.equal(m.length, size);
        const [k, i] = m.subarray(0, 12).toString().split('-');
        assert.equal(Number(i), (last.get(k!) ?? -1) + 1, `writer ${k} in order`);
        last.set(k!, Number(i));
      }
      await Promise.all(sent);
      assert.deepEqual(receiver.dropped, { messages: 0, bytes: 0 });
    });
  }

  test('a sender started before the receiver waits for it; timeout 0 with none is ERR_NPIPE_NO_READER, a timeout ERR_NPIPE_TIMEOUT', async (t) => {
    const path = join(tempDir(t), 'sock');
    await assert.rejects(openWinPipeFrameSender(path, createFraming('frames'), { timeout: 0 }), code('ERR_NPIPE_NO_READER'));
    await assert.rejects(openWinPipeFrameSender(path, createFraming('frames'), { timeout: 100 }), code('ERR_NPIPE_TIMEOUT'));
    const early = openWinPipeFrameSender(path, createFraming('frames'), { timeout: 5000 });
    await delay(150);
    const receiver = await openWinPipeFrameReceiver(path, createFraming('frames'));
    t.after(() => receiver.close());
    const sender = await early;
    await sender.send(Buffer.from('early'));
    assert.equal((await receiver.receive())!.toString(), 'early');
    await sender.close();
  });

  test('the receiver gone: sends reject ERR_NPIPE_NO_READER; with waitForReader they go to the next receiver', async (t) => {
    const { receiver, sender } = await pair(t, 'frames');
    await sender.send(Buffer.from('one'));
    await receiver.receive();
    await receiver.close();
    await assert.rejects(sender.send(Buffer.from('two')), code('ERR_NPIPE_NO_READER'));
    await assert.rejects(sender.send(Buffer.from('three')), code('ERR_NPIPE_NO_READER'));
    await sender.close();
  });

  test('waitForReader: the sender carries on with the next receiver, nothing lost', async (t) => {
    const { path, receiver, sender } = await pair(t, 'length', { waitForReader: true });
    await sender.send(Buffer.from('a'));
    assert.equal((await receiver.receive())!.toString(), 'a');
    await receiver.close();
    const later = [sender.send(Buffer.from('b')), sender.send(Buffer.from('c'))];
    await delay(100);
    const next = await openWinPipeFrameReceiver(path, createFraming('length'));
    t.after(() => next.close());
    await Promise.all(later);
    assert.equal((await next.receive())!.toString(), 'b');
    assert.equal((await next.receive())!.toString(), 'c');
  });

  test('a writer that leaves mid-message: counted in dropped, the others arrive; keepOpen false ends after the last writer', async (t) => {
    const path = join(tempDir(t), 'sock');
    const drops: string[] = [];
    const receiver = await openWinPipeFrameReceiver(path, createFraming('length'), { keepOpen: false, onDrop: (d) => drops.push(d.reason) });
    t.after(() => receiver.close());
    const half = createConnection(path);
    await once(half, 'connect');
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1000);
    half.end(Buffer.concat([header, Buffer.alloc(300)]));
    const sender = await openWinPipeFrameSender(path, createFraming('length'), { timeout: 5000 });
    await sender.send(Buffer.from('whole'));
    await sender.close();
    assert.equal((await receiver.receive())!.toString(), 'whole');
    assert.equal(await receiver.receive(), undefined);
    assert.deepEqual(receiver.dropped, { messages: 1, bytes: 300 });
    assert.deepEqual(drops, ['writer-died']);
  });

  test('one receive at a time (ERR_NPIPE_BUSY); close() ends a pending one; raw receiveInto keeps the rest', async (t) => {
    const { receiver, sender } = await pair(t, 'raw');
    const pending = receiver.receive();
    await assert.rejects(receiver.receive(), code('ERR_NPIPE_BUSY'));
    await sender.send(Buffer.from('abcdefghij'));
    const first = (await pending)!;
    const rest = [first];
    while (Buffer.concat(rest).length < 10) rest.push((await receiver.receive())!);
    assert.equal(Buffer.concat(rest).toString(), 'abcdefghij');
    await sender.send(Buffer.from('0123456789'));
    const target = Buffer.alloc(4);
    assert.equal(await receiver.receiveInto(target), 4);
    assert.equal(target.toString(), '0123');
    assert.equal(await receiver.receiveInto(target), 4);
    assert.equal(target.toString(), '4567');
    assert.equal((await receiver.receive())!.toString(), '89');
    const last = receiver.receive();
    await receiver.close();
    await receiver.close();
    assert.equal(await last, undefined);
  });

  test('backpressure: a receiver nobody takes from holds about 1 MiB, then every message arrives in order', async (t) => {
    const { receiver, sender } = await pair(t, 'length');
    const sends = Array.from({ length: 128 }, (_, i) => sender.send(Buffer.alloc(64 * 1024, i)));
    await delay(500);
    const held = receiver.bufferedBytes ?? 0;
    assert.ok(held >= RECEIVE_HIGH_WATER_BYTES && held < 2 * RECEIVE_HIGH_WATER_BYTES, `held ${held}`);
    for (let i = 0; i < 128; i++) assert.equal((await receiver.receive())![0], i);
    await Promise.all(sends);
  });
});

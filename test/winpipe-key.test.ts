/**
 * The Windows pipe key (drivers/winpipe/pipe-key.ts): a receiver takes only
 * connections that first send the key it wrote to a file only this user (or,
 * with allowShared, only local users) can read, which a client on another
 * machine cannot. Run here over a Unix socket (what Node makes of a pipe name on
 * Linux), with the key folders in a folder of this run; under Wine:
 * test/winpipe-wine.test.ts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { createFraming } from '../src/framing/index.js';
import type { DropInfo } from '../src/framing/index.js';
import { openWinPipeFrameReceiver } from '../src/drivers/winpipe/receiver.js';
import { openWinPipeFrameSender } from '../src/drivers/winpipe/sender.js';
import { KEY_CHARS, keyPath, readKeys } from '../src/drivers/winpipe/pipe-key.js';
import { delay, tempDir, until } from './helpers.js';

const keys = mkdtempSync(join(tmpdir(), 'npipe-keys-'));
process.env.LOCALAPPDATA = join(keys, 'user');
process.env.ProgramData = join(keys, 'shared');
after(() => rmSync(keys, { recursive: true, force: true }));

const code = (code: string) => (err: unknown) => (err as { code?: string }).code === code;

async function keyed(t: TestContext, options: { allowShared?: boolean; keepOpen?: boolean } = {}) {
  const path = join(tempDir(t), 'sock');
  const drops: DropInfo[] = [];
  const receiver = await openWinPipeFrameReceiver(path, createFraming('lines'), { pipeKey: true, onDrop: (d) => drops.push(d), ...options });
  t.after(() => receiver.close());
  return { path, receiver, drops };
}

const sender = (path: string, options: { timeout?: number; waitForReader?: boolean; allowShared?: boolean } = {}) =>
  openWinPipeFrameSender(path, createFraming('lines'), { pipeKey: true, timeout: 5000, ...options });

describe('the Windows pipe key (over a Unix socket)', () => {
  test("the receiver writes its key to the user's folder (the shared one with allowShared) and removes it when it closes", async (t) => {
    const own = await keyed(t);
    const ownFile = keyPath(own.path, false);
    assert.equal(dirname(ownFile), join(keys, 'user', 'npipe', 'pipe-keys'));
    assert.match(readKeys(own.path, false)[0]!.toString('latin1'), new RegExp(`^[0-9a-f]{${KEY_CHARS}}$`));
    const shared = await keyed(t, { allowShared: true });
    assert.ok(existsSync(keyPath(shared.path, true)));
    assert.ok(!existsSync(keyPath(shared.path, false)));
    await own.receiver.close();
    await shared.receiver.close();
    assert.ok(!existsSync(ownFile) && !existsSync(keyPath(shared.path, true)), 'both key files removed');
  });

  test('allowShared lets every local user connect: the socket (on Windows, the DACL) is opened to others; without it, it is not', async (t) => {
    const own = await keyed(t);
    const shared = await keyed(t, { allowShared: true });
    // Connecting to a Unix socket takes write permission.
    assert.equal(statSync(own.path).mode & 0o002, 0, 'others may not connect');
    assert.equal(statSync(shared.path).mode & 0o006, 0o006, 'others may connect');
  });

  test('a sender with the key is taken; a connection without it is refused before any message, gets nothing, and is reported as refused', async (t) => {
    const { path, receiver, drops } = await keyed(t, { keepOpen: false });
    const stranger = createConnection(path);
    const heard: Buffer[] = [];
    stranger.on('data', (c: Buffer) => heard.push(c));
    stranger.on('error', () => {});
    await once(stranger, 'connect');
    stranger.write(`no key here, but a message that looks fine\n${'x'.repeat(KEY_CHARS)}\n`);
    await once(stranger, 'close');
    assert.deepEqual(heard, []);
    assert.deepEqual(drops.map((d) => d.reason), ['refused']);
    // The refused connection was no writer: keepOpen false still waits for the first one.
    const s = await sender(path);
    await s.send(Buffer.from('with the key'));
    await s.close();
    assert.equal((await receiver.receive())!.toString(), 'with the key');
    assert.equal(await receiver.receive(), undefined, 'ended after the last writer, the refused one not counted');
  });

  test('no key file yet is no receiver yet: timeout 0 is ERR_NPIPE_NO_READER, otherwise the sender waits for it', async (t) => {
    const path = join(tempDir(t), 'sock');
    await assert.rejects(sender(path, { timeout: 0 }), code('ERR_NPIPE_NO_READER'));
    await assert.rejects(sender(path, { timeout: 100 }), code('ERR_NPIPE_TIMEOUT'));
    const early = sender(path);
    const receiver = await openWinPipeFrameReceiver(path, createFraming('lines'), { pipeKey: true });
    t.after(() => receiver.close());
    const s = await early;
    await s.send(Buffer.from('late receiver'));
    assert.equal((await receiver.receive())!.toString(), 'late receiver');
    await s.close();
  });

  test("a key file left by a receiver that was killed is refused, and the sender goes on to the live receiver's key", async (t) => {
    const { path, receiver } = await keyed(t, { allowShared: true });
    // A stale key in the user's folder (read first) whose process id lives (reused since): the receiver refuses it.
    const stale = keyPath(path, false);
    mkdirSync(dirname(stale), { recursive: true });
    writeFileSync(stale, `${'f'.repeat(KEY_CHARS)}\n${process.pid}\n`);
    t.after(() => rmSync(stale, { force: true }));
    const s = await sender(path, { allowShared: true });
    await s.send(Buffer.from('past the stale key'));
    assert.equal((await receiver.receive())!.toString(), 'past the stale key');
    await s.close();
  });

  test("a key file whose receiver process is gone is not used: the sender does not hand its messages to whoever holds the name now", async (t) => {
    const path = join(tempDir(t), 'sock');
    // A squatter on the name: it answers any key with the ACK and keeps what it is sent.
    const stolen: Buffer[] = [];
    const squatter = createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => socket.write(Buffer.of(0x06)));
      socket.on('data', (chunk: Buffer) => stolen.push(chunk));
    });
    await new Promise<void>((resolve) => squatter.listen(path, resolve));
    t.after(() => squatter.close());
    // A receiver killed outright (no exit handler runs) leaves its key file behind.
    const receiverModule = new URL('../src/drivers/winpipe/receiver.js', import.meta.url).href;
    const framingModule = new URL('../src/framing/index.js', import.meta.url).href;
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { openWinPipeFrameReceiver } = await import(${JSON.stringify(receiverModule)});
         const { createFraming } = await import(${JSON.stringify(framingModule)});
         await openWinPipeFrameReceiver(${JSON.stringify(`${path}.dead`)}, createFraming('lines'), { pipeKey: true });
         console.log('ready');`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await once(child.stdout!, 'data');
    child.kill('SIGKILL');
    await once(child, 'exit');
    const left = keyPath(`${path}.dead`, false);
    assert.ok(existsSync(left), 'the killed receiver left its key file');
    // Its name is then taken by the squatter (here: the key file moved to the squatter's name, as if it were the same name).
    const file = keyPath(path, false);
    renameSync(left, file);
    t.after(() => rmSync(file, { force: true }));
    assert.deepEqual(readKeys(path, false), []);
    await assert.rejects(sender(path, { timeout: 0 }), code('ERR_NPIPE_NO_READER'));
    assert.deepEqual(stolen, [], 'the squatter got nothing');
  });

  test("without allowShared a sender takes only its own user's receiver: a shared receiver's key is not used (no receiver, as for a FIFO others may write); with it, it is", async (t) => {
    const { path, receiver } = await keyed(t, { allowShared: true });
    await assert.rejects(sender(path, { timeout: 0 }), code('ERR_NPIPE_NO_READER'));
    await assert.rejects(sender(path, { timeout: 200 }), code('ERR_NPIPE_TIMEOUT'));
    const s = await sender(path, { allowShared: true });
    await s.send(Buffer.from('shared, and meant to be'));
    assert.equal((await receiver.receive())!.toString(), 'shared, and meant to be');
    await s.close();
  });

  test('a receiver restarted on the same name writes a new key: a waitForReader sender reads it and carries on', async (t) => {
    const path = join(tempDir(t), 'sock');
    const first = await openWinPipeFrameReceiver(path, createFraming('lines'), { pipeKey: true });
    const s = await sender(path, { waitForReader: true, timeout: 10_000 });
    t.after(() => s.close());
    await s.send(Buffer.from('one'));
    assert.equal((await first.receive())!.toString(), 'one');
    const oldKey = readKeys(path, false)[0]!;
    await first.close();
    const second = await openWinPipeFrameReceiver(path, createFraming('lines'), { pipeKey: true });
    t.after(() => second.close());
    assert.notDeepEqual(readKeys(path, false)[0], oldKey);
    await s.send(Buffer.from('two'));
    assert.equal((await second.receive())!.toString(), 'two');
  });

  test("a writer in another language, following docs/FORMATS.md: the key file's name and content, the ACK, then the format (the key may come in pieces)", async (t) => {
    const { path, receiver } = await keyed(t);
    // The recipe: sha256 of the pipe name in lower case, its first 32 hex digits, ".key", in the user's folder.
    const file = join(process.env.LOCALAPPDATA!, 'npipe', 'pipe-keys', `${createHash('sha256').update(path.toLowerCase()).digest('hex').slice(0, 32)}.key`);
    const content = readFileSync(file, 'latin1');
    assert.equal(content, `${content.slice(0, 64)}\n${process.pid}\n`, 'the key, then the receiver process id');
    const key = Buffer.from(content.slice(0, 64), 'latin1');
    assert.match(key.toString('latin1'), /^[0-9a-f]{64}$/);
    const c = createConnection(path);
    c.on('error', () => {});
    const heard: Buffer[] = [];
    c.on('data', (chunk: Buffer) => heard.push(chunk));
    await once(c, 'connect');
    c.write(key.subarray(0, 10));
    await delay(50);
    assert.deepEqual(heard, [], 'no ACK before the whole key');
    c.write(key.subarray(10));
    await until(() => heard.length > 0, 'the ACK');
    assert.deepEqual(Buffer.concat(heard), Buffer.of(0x06));
    c.end('after the key\n');
    assert.equal((await receiver.receive())!.toString(), 'after the key');
  });
});

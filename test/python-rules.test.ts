/**
 * The frames rules of docs/PROTOCOL.md in the Python package (issue 21 #2),
 * against the Node implementation: a writer sends a message cut by the reader's
 * departure again from its first packet (both languages as the writer); the
 * Python reader drops a message in progress whose claimed writer holds no write
 * end of the FIFO (a live pid that only reads it, or none), and one stalled past
 * partial_timeout while its writer lives.
 */
import assert from 'node:assert/strict';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { openReceiver, type DropInfo } from '../src/index.js';
import { mkfifoSync } from '../src/fifo/index.js';
import { npipe, start, tempDir, waitForOpen } from './helpers.js';
import { ENV, parseHex, peer } from './python-helpers.js';

/**
 * A reader that takes only the start of what is written and leaves: it opens
 * `path`, waits for the pipe to fill (the writer is then in the middle of a
 * message far larger than the pipe), reads two packets (8,192 bytes: every packet of a message this large is 4,096 bytes, so it leaves none cut) and exits.
 */
function partialReader(t: TestContext, path: string) {
  const code = `
import fcntl, os, struct, sys, termios, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
print("READY", flush=True)
while struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\\0\\0\\0\\0"))[0] < 65536:
    time.sleep(0.005)
print(len(os.read(fd, 8192)), flush=True)
`;
  const p = start('python3', ['-c', code, path], { env: ENV });
  t.after(() => p.child.kill('SIGKILL'));
  return p;
}

const pattern = (size: number) => Buffer.from(Array.from({ length: size }, (_, i) => i % 251));

/** A first packet of docs/PROTOCOL.md: writer `writer`, a `total`-byte message claimed by `pid`, `payload` its start. */
function firstPacket(writer: number, total: number, pid: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(16);
  head[0] = 0xfe;
  head[1] = 0x01;
  head.writeUInt16BE(payload.length, 2);
  head.writeUInt32BE(writer, 4);
  head.writeUInt32BE(total, 8);
  head.writeUInt32BE(pid, 12);
  return Buffer.concat([head, payload]);
}

function singlePacket(writer: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head[0] = 0xfe;
  head[1] = 0x03;
  head.writeUInt16BE(payload.length, 2);
  head.writeUInt32BE(writer, 4);
  return Buffer.concat([head, payload]);
}

describe('writer rule 5: a message cut by the reader leaving is sent again from its first packet', () => {
  test('a Python writer (wait_for_reader=True): the next reader, Node, drops the cut copy and gets the message whole', async (t) => {
    const path = join(tempDir(t), 'pipe');
    mkfifoSync(path, { mode: 0o600 });
    const first = partialReader(t, path);
    await first.waitForOutput('READY');
    const writer = peer(t, ['resend', path, String(1 << 20)]);
    if (!writer) return;
    const r1 = await first.done;
    assert.equal(r1.stdout, 'READY\n8192\n', r1.stderr);
    const drops: DropInfo[] = [];
    const receiver = await openReceiver(path, { format: 'frames', codec: 'bytes', onDrop: (d) => drops.push(d) });
    t.after(() => receiver.close());
    const message = (await receiver.receive()) as Buffer;
    assert.equal(message.length, 1 << 20);
    assert.ok(message.equals(pattern(1 << 20)), 'the message arrived whole, byte for byte');
    const w = await writer.done;
    assert.equal(w.code, 0, w.stderr);
    assert.match(w.stdout, /RECONNECTS 1\n/);
    // What the first reader left of the cut copy was dropped, never delivered.
    assert.ok(drops.length > 0 && drops.every((d) => d.reason === 'orphan'), JSON.stringify(drops));
  });

  test('a Node writer (npipe send --wait): the next reader, Python, drops the cut copy and gets the message whole', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'pipe');
    mkfifoSync(path, { mode: 0o600 });
    const first = partialReader(t, path);
    await first.waitForOutput('READY');
    const writer = npipe(['send', path, '--format', 'frames', '--whole', '--wait', '--timeout', '30s'], { input: pattern(1 << 20) });
    t.after(() => writer.child.kill('SIGKILL'));
    const r1 = await first.done;
    assert.equal(r1.stdout, 'READY\n8192\n', r1.stderr);
    const reader = peer(t, ['recv', path, 'frames', '1']);
    if (!reader) return;
    const r = await reader.done;
    assert.equal(r.code, 0, r.stderr);
    const got = parseHex(r.stdout);
    assert.equal(got.length, 1);
    assert.ok(got[0]!.equals(pattern(1 << 20)), 'the message arrived whole, byte for byte');
    assert.match(r.stderr, /DROP orphan/);
    assert.doesNotMatch(r.stderr, /DROP (?!orphan)/);
    assert.equal((await writer.done).code, 0);
  });
});

describe('the Python reader: dead and stalled writers', () => {
  test('a first packet claiming a live pid that holds no write end of the FIFO (the Node test process, then the reader itself) is dropped as writer-died', async (t) => {
    const path = join(tempDir(t), 'pipe');
    mkfifoSync(path, { mode: 0o600 });
    // partial_timeout stays 30 s: only the holder check can drop these in time.
    const reader = peer(t, ['recv', path, 'frames', '1']);
    if (!reader) return;
    await reader.waitForError('READY');
    const fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    writeSync(fd, firstPacket(7, 100_000, process.pid, Buffer.alloc(4000, 1)));
    writeSync(fd, firstPacket(8, 100_000, reader.child.pid!, Buffer.alloc(4000, 2)));
    closeSync(fd); // the Node process lives on, but no longer holds the FIFO
    await reader.waitForError('DROP writer-died');
    await reader.waitForError('DROP writer-died 4000\nDROP writer-died 4000');
    const again = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    writeSync(again, singlePacket(9, Buffer.from('after')));
    closeSync(again);
    const r = await reader.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(parseHex(r.stdout).map(String), ['after']);
  });

  test('a writer that lives and holds the FIFO but stops mid-message is dropped as stalled after partial_timeout of reading; later messages arrive', async (t) => {
    const path = join(tempDir(t), 'pipe');
    mkfifoSync(path, { mode: 0o600 });
    const reader = peer(t, ['recv', path, 'frames', '1'], undefined, { PARTIAL_TIMEOUT: '0.5' });
    if (!reader) return;
    await reader.waitForError('READY');
    const hanging = peer(t, ['hang', path, '1000000'])!;
    await hanging.waitForOutput('PAUSED');
    await waitForOpen(hanging.child.pid, path);
    await reader.waitForError('DROP stalled');
    const sender = peer(t, ['send', path, 'frames'], Buffer.from('later').toString('hex') + '\n')!;
    assert.equal((await sender.done).code, 0);
    const r = await reader.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(parseHex(r.stdout).map(String), ['later']);
    assert.doesNotMatch(r.stderr, /writer-died/, 'the writer lives: only the stall could drop it');
  });
});

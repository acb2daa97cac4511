/**
 * The shared-memory lane (issue 22): real segments in /dev/shm, real processes.
 * The messaging contract runs over shm:// in test/contract.test.ts; here is what is
 * particular to it: many sender processes with checksums (with a small ring, so
 * that rings wrap and fill and both doorbells ring), senders and receivers killed,
 * a peer writing garbage over its ring, the folder and file checks, leftovers.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { constants, existsSync, ftruncateSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, symlinkSync, writeFileSync, writeSync, chmodSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { TimeoutError, openReceiver, openSender, type DropInfo } from '../src/index.js';
import { driverFor, driversElsewhere } from '../src/registry.js';
import { MAX_SENDERS, openShmFrameReceiver } from '../src/drivers/shm/receiver.js';
import { attachSegment, createSegment } from '../src/drivers/shm/segment.js';
import { ensureNameFolder, nameFolder, userFolder } from '../src/drivers/shm/folder.js';
import { mkfifoExactSync } from '../src/fifo/mkfifo.js';
import * as layout from '../src/drivers/shm/layout.js';
import { checkMessage } from './fixtures/message.js';
import { delay, npipe, requireOrSkip, start, until } from './helpers.js';

const PEER = fileURLToPath(new URL('./fixtures/shm-peer.js', import.meta.url));
const peer = (...args: (string | number)[]) => start(process.execPath, [PEER, ...args.map(String)], { hangMs: 60_000 });

function fresh(): { name: string; address: string } {
  const name = `test-${randomUUID()}`;
  return { name, address: `shm://${name}` };
}

/**
 * A receiver on `name` and what a hand-made sender needs to talk to it: its folder
 * and a write end of its control FIFO (for announcements); `drops` collects its drops.
 */
async function handMadePeerOf(name: string) {
  const drops: DropInfo[] = [];
  const receiver = await openShmFrameReceiver(name, { maxMessageSize: 1 << 20, splitInto: false, onDrop: (d) => drops.push(d) });
  const dir = nameFolder(name);
  const control = openSync(join(dir, 'control'), constants.O_WRONLY | constants.O_NONBLOCK);
  return { drops, receiver, dir, control };
}

/** What is left in a name's folder (nothing, once the folder is gone). */
function leftIn(name: string): string[] {
  const dir = nameFolder(name);
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/** A pid that no longer exists. */
function deadPid(): number {
  return Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }));
}

describe('shared memory: many senders', () => {
  test('8 sender processes x random sizes, checksummed, through 64 KiB rings: every message whole, each sender in order, no wake-up lost', { timeout: 120_000 }, async () => {
    const { name, address } = fresh();
    const receiver = await openShmFrameReceiver(name, { maxMessageSize: 1 << 20, splitInto: false });
    const senders = Array.from({ length: 8 }, (_, w) => peer('send', address, w, 300, 1000 + w, 200_000, 1 << 16));
    const next = new Array<number>(8).fill(0);
    for (let n = 0; n < 8 * 300; n++) {
      const message = await receiver.receive();
      assert.ok(message, `message ${n} arrived`);
      const m = checkMessage(message);
      assert.ok(m.ok, `message ${n} (writer ${m.writer}, seq ${m.seq}, ${m.size} B) is whole`);
      assert.equal(m.seq, next[m.writer], `writer ${m.writer} in order`);
      next[m.writer]!++;
    }
    for (const s of senders) assert.equal((await s.done).code, 0);
    assert.deepEqual(next, new Array(8).fill(300));
    assert.deepEqual(receiver.dropped, { messages: 0, bytes: 0 });
    // Every message came by a doorbell or while awake: the 500 ms safety check never found one waiting.
    assert.equal(receiver.lostWakeups, 0);
    await until(() => receiver.senders === 0, 'the closed senders\' rings to be let go');
    await receiver.close();
    assert.deepEqual(leftIn(name), []);
  });

  test('large records (streaming copy on x86-64 Linux): 2 sender processes x sizes up to 3 MiB through the default 8 MiB ring, checksummed, every message whole and in order; the senders did use the streaming copy', { timeout: 120_000 }, async () => {
    const { name, address } = fresh();
    const receiver = await openShmFrameReceiver(name, { maxMessageSize: 4 << 20, splitInto: false });
    const senders = [0, 1].map((w) => peer('send', address, w, 60, 7 + w, 3 << 20));
    const next = [0, 0];
    const target = Buffer.alloc(4 << 20);
    for (let n = 0; n < 2 * 60; n++) {
      // Every other message through receiveInto, which copies straight into the caller's buffer.
      const message = n % 2 === 0 ? await receiver.receive() : await receiver.receiveInto(target).then((got) => (got === undefined ? undefined : target.subarray(0, got)));
      assert.ok(message, `message ${n} arrived`);
      const m = checkMessage(message);
      assert.ok(m.ok, `message ${n} (writer ${m.writer}, seq ${m.seq}, ${m.size} B) is whole`);
      assert.equal(m.seq, next[m.writer], `writer ${m.writer} in order`);
      next[m.writer]!++;
    }
    const streamed = [];
    for (const s of senders) {
      const result = await s.done;
      assert.equal(result.code, 0, result.stderr);
      streamed.push(Number(/streamed (\d+)/.exec(result.stdout)?.[1]));
    }
    assert.deepEqual(next, [60, 60]);
    if (process.arch === 'x64' && process.env.NPIPE_STREAMING_COPY !== '0') {
      assert.ok(streamed.every((n) => n > 0), `both senders streamed records of 512 KiB or more (copies: ${streamed})`);
    }
    await receiver.close();
  });

  test('receiveInto of messages over half the ring (4 sender processes, 64 KiB rings, up to 200 KB, checksummed): each is assembled in the caller\'s buffer, and one ring\'s message in progress there is moved out before another\'s is copied in', { timeout: 120_000 }, async () => {
    const { name, address } = fresh();
    const receiver = await openShmFrameReceiver(name, { maxMessageSize: 1 << 20, splitInto: false });
    const senders = Array.from({ length: 4 }, (_, w) => peer('send', address, w, 150, 50 + w, 200_000, 1 << 16));
    const next = new Array<number>(4).fill(0);
    const target = Buffer.alloc(256 * 1024);
    for (let n = 0; n < 4 * 150; n++) {
      const got = await receiver.receiveInto(target);
      assert.ok(got !== undefined, `message ${n} arrived`);
      const m = checkMessage(target.subarray(0, got));
      assert.ok(m.ok, `message ${n} (writer ${m.writer}, seq ${m.seq}, ${m.size} B) is whole`);
      assert.equal(m.seq, next[m.writer], `writer ${m.writer} in order`);
      next[m.writer]!++;
    }
    for (const s of senders) assert.equal((await s.done).code, 0);
    assert.deepEqual(next, new Array(4).fill(150));
    assert.deepEqual(receiver.dropped, { messages: 0, bytes: 0 });
    await receiver.close();
  });

  test('a receiveInto() aborted while a message in pieces is being assembled in its buffer: the bytes so far move out at once, and the message arrives whole though the caller then overwrote that buffer', { timeout: 30_000 }, async () => {
    const { name, address } = fresh();
    const receiver = await openShmFrameReceiver(name, { maxMessageSize: 1 << 20, splitInto: false });
    const sender = await openSender<Uint8Array>(address, { codec: 'bytes', ringSize: 1 << 16, timeout: 10_000 });
    await until(() => receiver.senders === 1, 'the receiver to map the sender\'s ring');
    const message = Buffer.alloc(200_000);
    for (let i = 0; i < message.length; i++) message[i] = (i * 7 + (i >> 8)) & 0xff;
    // The first pieces (as many as the 64 KiB ring holds) are published before send() returns.
    const sent = sender.send(message);
    const target = Buffer.alloc(256 * 1024);
    const controller = new AbortController();
    const receiving = receiver.receiveInto(target, { signal: controller.signal });
    // Taken at once into the caller's buffer: the message is being assembled there.
    assert.ok(target.subarray(0, 30_000).equals(message.subarray(0, 30_000)), 'the first pieces are in the receiveInto() buffer');
    controller.abort();
    await assert.rejects(receiving, { name: 'AbortError' });
    target.fill(0); // the caller's buffer is the caller's again
    const whole = await receiver.receive();
    assert.ok(whole?.equals(message), 'the message arrives whole');
    await sent;
    await sender.close();
    await receiver.close();
  });

  test('busyPoll on both ends: everything arrives, in order, through a ring that fills', { timeout: 60_000 }, async () => {
    const { address } = fresh();
    const receiver = await openReceiver<Buffer>(address, { codec: 'bytes', busyPoll: 200 });
    const sender = await openSender<Uint8Array>(address, { codec: 'bytes', busyPoll: 200, ringSize: 1 << 16, timeout: 10_000 });
    const sent = Array.from({ length: 2000 }, (_, i) => Buffer.alloc(1 + (i % 9) * 1000, i % 251));
    const sending = Promise.all(sent.map((m) => sender.send(m)));
    for (const [i, expected] of sent.entries()) assert.ok((await receiver.receive())?.equals(expected), `message ${i}`);
    await sending;
    await sender.close();
    await receiver.close();
  });
});

describe('shared memory: processes killed', () => {
  test('a sender SIGKILLed mid-message: no torn message, the part it published is dropped and counted, its ring let go', { timeout: 60_000 }, async () => {
    const { name, address } = fresh();
    const drops: DropInfo[] = [];
    const receiver = await openReceiver<Buffer>(address, { codec: 'bytes', onDrop: (d) => drops.push(d), timeout: 5000 });
    const stuck = peer('stuck', address, 1 << 16);
    await stuck.waitForOutput('stuck');
    stuck.child.kill('SIGKILL');
    await stuck.done;
    for (let i = 0; i < 3; i++) {
      const m = checkMessage((await receiver.receive())!);
      assert.ok(m.ok && m.seq === i && m.size === 100, `small message ${i} whole`);
    }
    // The 1 MiB message was cut: its pieces are taken, then dropped once its sender is known gone.
    await assert.rejects(receiver.receive({ signal: AbortSignal.timeout(2000) }), (err: unknown) => (err as Error).name === 'TimeoutError');
    await until(() => drops.length === 1, 'the cut message to be dropped');
    assert.equal(drops[0]!.reason, 'writer-died');
    assert.equal(drops[0]!.pid, stuck.child.pid);
    assert.ok(drops[0]!.bytes > 0 && drops[0]!.bytes < 1 << 20);
    assert.deepEqual(leftIn(name), ['control', 'owner'], 'the dead sender\'s segment and doorbell are gone');
    await receiver.close();
  });

  test('the receiver SIGKILLed: a sender waiting for room, and the next send, get ERR_NPIPE_NO_READER, not a hang; the next receiver takes the name', { timeout: 60_000 }, async () => {
    const { name, address } = fresh();
    const receiver = peer('receive', address);
    await receiver.waitForOutput('ready');
    const sender = await openSender<Uint8Array>(address, { codec: 'bytes', ringSize: 1 << 16 });
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) sends.push(sender.send(Buffer.alloc(1000)).catch((e: unknown) => e));
    receiver.child.kill('SIGKILL');
    await receiver.done;
    const results = await Promise.all(sends);
    assert.ok(results.some((r) => (r as { code?: string })?.code === 'ERR_NPIPE_NO_READER'), 'the waiting sends fail');
    await assert.rejects(sender.send(Buffer.alloc(10)), { code: 'ERR_NPIPE_NO_READER' });
    await sender.close();
    const next = await openReceiver(address);
    assert.deepEqual(leftIn(name), ['control', 'owner'], 'the dead receiver\'s and the sender\'s files were reclaimed');
    await next.close();
    assert.deepEqual(leftIn(name), []);
  });
});

describe('shared memory: a hostile peer', () => {
  test('a peer scribbling random bytes over its ring (header words too): the receiver drops it as corrupt and goes on with the other sender', { timeout: 60_000 }, async () => {
    const { address } = fresh();
    const drops: DropInfo[] = [];
    const receiver = await openReceiver<Buffer>(address, { codec: 'bytes', onDrop: (d) => drops.push(d), maxMessageSize: 1 << 20 });
    const scribbler = peer('scribble', address, 2);
    await scribbler.waitForOutput('scribbling');
    const good = peer('send', address, 7, 500, 77, 50_000);
    let n = 0;
    for (; n < 500; ) {
      const message = await receiver.receive();
      assert.ok(message);
      const m = checkMessage(message);
      // The scribbler's ring may yield a few "messages" of garbage before a check catches it:
      // each within maxMessageSize (pieces it got past the checks may add up past its ring).
      if (m.writer === 7 && m.ok) {
        assert.equal(m.seq, n);
        n++;
      } else {
        assert.ok(message.length <= 1 << 20, 'nothing over maxMessageSize');
      }
    }
    assert.equal((await good.done).code, 0);
    await scribbler.waitForOutput('done');
    // A receive() waiting: the scribbler's last doorbell makes the receiver look at its ring.
    const waiting = receiver.receive({ signal: AbortSignal.timeout(5000) }).catch(() => undefined);
    await until(() => drops.some((d) => d.reason === 'corrupt'), 'the scribbler to be dropped as corrupt');
    scribbler.child.kill('SIGKILL');
    await scribbler.done;
    await receiver.close();
    await waiting;
  });

  test('property: any bytes and any TAIL in a ring give whole messages within the ring, or a drop as corrupt; never a throw or a hang', { timeout: 60_000 }, async () => {
    const { name } = fresh();
    const { drops, receiver, dir, control } = await handMadePeerOf(name);
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.uint8Array({ minLength: 16, maxLength: 4096 }),
          fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
          fc.boolean(),
          async (bytes, tail, plausible) => {
            const segment = createSegment(dir, 1 << 16);
            const view = Buffer.from(segment.mapping.data.buffer, segment.mapping.data.byteOffset, segment.mapping.data.byteLength);
            view.set(bytes);
            if (plausible) view.writeUInt32LE(Math.min(bytes.length, 65_000), 0); // a length that may fit
            Atomics.store(segment.mapping.i32, layout.I_TAIL, plausible ? (bytes.length + 7) & ~7 : tail);
            const before = drops.length;
            writeSync(control, `+${segment.base}\n`);
            await until(() => receiver.senders > 0 || drops.length > before, 'the segment to be attached', 5000);
            for (let i = 0; i < 10_000; i++) {
              const message = receiver.tryReceive();
              if (message === undefined) break;
              assert.ok(message.length <= 1 << 16);
            }
            Atomics.store(segment.mapping.i32, layout.I_CLOSED, 1);
            segment.mapping.unmap(); // the "sender" is gone: its ring is let go once read
            writeSync(control, '!');
            const dropsNow = drops.length;
            await until(() => receiver.senders === 0 || drops.length > dropsNow, 'the ring to be let go', 5000);
          },
        ),
        { numRuns: 60 },
      );
    } finally {
      closeSync(control);
      await receiver.close();
    }
  });
});

describe('shared memory: files and folders', () => {
  test('segments the receiver refuses: a symlink, a file open to others, a size that does not match: dropped as corrupt, nothing mapped', { timeout: 30_000 }, async () => {
    const { name } = fresh();
    const { drops, receiver, dir, control } = await handMadePeerOf(name);
    try {
      const good = createSegment(dir, 1 << 16);
      const target = join(dir, `${process.pid}-${'a'.repeat(16)}.ring`);
      symlinkSync(good.ringPath, target);
      writeSync(control, `+${process.pid}-${'a'.repeat(16)}\n`);
      const open = createSegment(dir, 1 << 16);
      chmodSync(open.ringPath, 0o644);
      writeSync(control, `+${open.base}\n`);
      const short = createSegment(dir, 1 << 16);
      writeFileSync(short.ringPath, Buffer.alloc(100), { flag: 'r+' });
      execFileSync('truncate', ['-s', String(4096 + 1000), short.ringPath]);
      writeSync(control, `+${short.base}\n`);
      await until(() => drops.length === 3, 'three refusals');
      assert.ok(drops.every((d) => d.reason === 'corrupt'));
      assert.equal(receiver.senders, 0);
      for (const s of [good, open, short]) {
        s.mapping.unmap();
        rmSync(s.ringPath, { force: true });
      }
    } finally {
      closeSync(control);
      await receiver.close();
    }
  });

  test('the user folder is 0700; a name folder that is a symlink or open to others is refused (ERR_NPIPE_UNSAFE); a second receiver is ERR_NPIPE_BUSY', { timeout: 30_000 }, async (t: TestContext) => {
    const { name, address } = fresh();
    const first = await openReceiver(address);
    t.after(() => first.close());
    const user = lstatSync(userFolder());
    assert.ok(user.isDirectory() && (user.mode & 0o777) === 0o700 && user.uid === process.geteuid!());
    assert.equal(lstatSync(nameFolder(name)).mode & 0o777, 0o700);
    await assert.rejects(openReceiver(address), { code: 'ERR_NPIPE_BUSY' });
    const linked = fresh();
    const elsewhere = join(userFolder(), `elsewhere-${randomUUID()}`);
    mkdirSync(elsewhere, { mode: 0o700 });
    t.after(() => rmSync(elsewhere, { recursive: true, force: true }));
    symlinkSync(elsewhere, nameFolder(linked.name));
    t.after(() => rmSync(nameFolder(linked.name), { force: true }));
    await assert.rejects(openReceiver(linked.address), { code: 'ERR_NPIPE_UNSAFE' });
    await assert.rejects(openSender(linked.address, { timeout: 0 }), { code: 'ERR_NPIPE_UNSAFE' });
    const open = fresh();
    mkdirSync(nameFolder(open.name), { mode: 0o700 });
    chmodSync(nameFolder(open.name), 0o755);
    t.after(() => rmSync(nameFolder(open.name), { recursive: true, force: true }));
    await assert.rejects(openReceiver(open.address), { code: 'ERR_NPIPE_UNSAFE' });
  });

  test('leftovers of processes that are gone are reclaimed: a dead sender\'s segment and doorbell, a dead receiver\'s name folder', { timeout: 30_000 }, async () => {
    const dead = deadPid();
    const { name, address } = fresh();
    const old = fresh();
    for (const n of [name, old.name]) mkdirSync(nameFolder(n), { recursive: true, mode: 0o700 });
    const segment = join(nameFolder(name), `${dead}-${'b'.repeat(16)}.ring`);
    writeFileSync(segment, Buffer.alloc(10), { mode: 0o600 });
    writeFileSync(join(nameFolder(name), `${dead}-${'b'.repeat(16)}.bell`), '', { mode: 0o600 });
    writeFileSync(join(nameFolder(old.name), 'owner'), `${dead}\n`, { mode: 0o600 });
    writeFileSync(join(nameFolder(old.name), `${dead}-${'c'.repeat(16)}.ring`), '', { mode: 0o600 });
    const receiver = await openReceiver(address);
    assert.deepEqual(leftIn(name), ['control', 'owner']);
    assert.equal(existsSync(nameFolder(old.name)), false, 'the dead receiver\'s folder is gone');
    await receiver.close();
    assert.equal(existsSync(nameFolder(name)), false);
  });

  test('a sender with no receiver: timeout 0 is ERR_NPIPE_NO_READER at once, a timeout is ERR_NPIPE_TIMEOUT; a receiver that comes is found', { timeout: 30_000 }, async () => {
    const { address } = fresh();
    await assert.rejects(openSender(address, { timeout: 0 }), { code: 'ERR_NPIPE_NO_READER' });
    await assert.rejects(openSender(address, { timeout: 100 }), TimeoutError);
    const opening = openSender(address, { timeout: 10_000 });
    await delay(100);
    const receiver = await openReceiver(address);
    const sender = await opening;
    await sender.send('late but there');
    assert.equal(await receiver.receive(), 'late but there');
    await sender.close();
    await receiver.close();
  });

  test('the layout diagram in layout.ts says what the constants are', () => {
    const source = readFileSync(new URL('../../src/drivers/shm/layout.ts', import.meta.url), 'utf8');
    const offset = (what: string) => Number(new RegExp(`^ \\*\\s+(\\d+)\\s+\\S+\\s+\\w+\\s+${what}`, 'm').exec(source)?.[1]);
    assert.equal(offset('TAIL') / 4, layout.I_TAIL);
    assert.equal(offset('HEAD') / 4, layout.I_HEAD);
    assert.equal(offset('RECEIVER_SLEEPING') / 4, layout.I_RECEIVER_SLEEPING);
    assert.equal(offset('SENDER_WAITING') / 4, layout.I_SENDER_WAITING);
    assert.equal(offset('CLOSED') / 4, layout.I_CLOSED);
    assert.equal(offset('ATTACHED') / 4, layout.I_ATTACHED);
    assert.equal(offset('the ring'), layout.HEADER_BYTES);
    assert.equal(layout.recordBytes(0), layout.RECORD_HEADER);
    assert.equal(layout.recordBytes(1), 24);
  });
});

describe('shared memory: addresses and the CLI', () => {
  test('shm:// is Linux-only in the registry; a malformed name is ERR_NPIPE_INVALID_ARG', async () => {
    assert.ok(driversElsewhere('darwin').includes('shm') && driversElsewhere('win32').includes('shm'));
    assert.ok(!driversElsewhere('linux').includes('shm'));
    for (const bad of ['shm://', 'shm://a/b', 'shm://..', `shm://${'x'.repeat(101)}`]) {
      await assert.rejects(driverFor(bad), { code: 'ERR_NPIPE_INVALID_ARG' }, bad);
    }
  });

  test('npipe listen --count and npipe send over shm://, lines and json', { timeout: 60_000 }, async () => {
    const { address } = fresh();
    const listener = npipe(['listen', address, '--count', '3', '--json']);
    await until(() => existsSync(join(nameFolder(address.slice(6)), 'control')), 'the listener');
    const sent = await npipe(['send', address], { input: 'one\ntwo\nthree\n' }).done;
    assert.equal(sent.code, 0, sent.stderr);
    const heard = await listener.done;
    assert.equal(heard.code, 0, heard.stderr);
    assert.deepEqual(heard.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown), [{ text: 'one' }, { text: 'two' }, { text: 'three' }]);
  });
});

describe('shared memory: attack pass', () => {
  test('a receiver writing HEAD outside the ring while its sender waits for room: the sender fails with ERR_NPIPE_NO_READER and lives (the doorbell handler threw, uncaught)', { timeout: 30_000 }, async () => {
    // A receiver of our own making: the name's folder and control FIFO, a ring mapped by hand.
    const { name, address } = fresh();
    const dir = ensureNameFolder(name);
    mkfifoExactSync(join(dir, 'control'), 0o600);
    const control = openSync(join(dir, 'control'), constants.O_RDWR | constants.O_NONBLOCK);
    const sender = peer('fill', address, 1 << 16, 200, 1000);
    let bell: number | undefined;
    let mapping: ReturnType<typeof attachSegment> | undefined;
    try {
      let heard = '';
      await until(() => {
        const chunk = Buffer.alloc(256);
        try {
          heard += chunk.toString('latin1', 0, readSync(control, chunk));
        } catch {
          // EAGAIN: nothing yet
        }
        return /\+\d+-[0-9a-f]{16}\n/.test(heard);
      }, 'the announcement');
      const base = /\+(\d+-[0-9a-f]{16})\n/.exec(heard)![1]!;
      const attached = attachSegment(join(dir, `${base}.ring`), sender.child.pid!);
      assert.ok(typeof attached !== 'string', String(attached));
      mapping = attached;
      bell = openSync(join(dir, `${base}.bell`), constants.O_WRONLY | constants.O_NONBLOCK);
      Atomics.store(attached.i32, layout.I_ATTACHED, process.pid);
      await until(() => Atomics.load(attached.i32, layout.I_SENDER_WAITING) === 1, 'the sender to wait for room');
      Atomics.store(attached.i32, layout.I_HEAD, 0x12345678);
      writeSync(bell, '!');
      const result = await sender.done;
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /failed ERR_NPIPE_NO_READER/);
    } finally {
      if (mapping && typeof mapping !== 'string') mapping.unmap();
      if (bell !== undefined) closeSync(bell);
      closeSync(control);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('thousands of small messages over the receiver\'s maxMessageSize, then one within it: the drops are skipped and it arrives, no safety-net wake-up needed (a batch of drops left the rest of the ring unread until the 500 ms check)', { timeout: 30_000 }, async () => {
    const { address } = fresh();
    const drops: DropInfo[] = [];
    const receiver = await openReceiver<Buffer>(address, { codec: 'bytes', maxMessageSize: 64, onDrop: (d) => drops.push(d) });
    const sender = peer('fill', address, 1 << 23, 3000, 1000, 'hello');
    try {
      await sender.waitForOutput('sent');
      // A hang bound: the message is in the ring already; before the fix it took 11 s here.
      const message = await receiver.receive({ signal: AbortSignal.timeout(5000) });
      assert.equal(message?.toString(), 'hello');
      assert.equal(drops.length, 3000);
      assert.ok(drops.every((d) => d.reason === 'too-large' && d.bytes === 1000));
      assert.equal((receiver as unknown as { lostWakeups?: number }).lostWakeups ?? 0, 0);
    } finally {
      await sender.done;
      await receiver.close();
    }
  });

  test('a sparse segment (pages never allocated) is refused as corrupt: in a full tmpfs its first read would be a SIGBUS in the receiver', { timeout: 30_000 }, async () => {
    const { name } = fresh();
    const { drops, receiver, dir, control } = await handMadePeerOf(name);
    const base = `${process.pid}-${'d'.repeat(16)}`;
    try {
      const header = Buffer.alloc(16);
      header.writeUInt32LE(layout.MAGIC, 0);
      header.writeUInt32LE(layout.VERSION, 4);
      header.writeUInt32LE(1 << 16, 8);
      header.writeInt32LE(process.pid, 12);
      const fd = openSync(join(dir, `${base}.ring`), constants.O_CREAT | constants.O_EXCL | constants.O_RDWR, 0o600);
      writeSync(fd, header, 0, 16, 0);
      ftruncateSync(fd, layout.HEADER_BYTES + (1 << 16));
      closeSync(fd);
      writeSync(control, `+${base}\n`);
      await until(() => drops.length === 1 || receiver.senders > 0, 'the segment to be refused, or mapped');
      assert.equal(receiver.senders, 0, 'nothing mapped');
      assert.equal(drops[0]?.reason, 'corrupt');
    } finally {
      rmSync(join(dir, `${base}.ring`), { force: true });
      closeSync(control);
      await receiver.close();
    }
  });

  test('a /dev/shm too full for the ring: the sender\'s open fails with ERR_NPIPE_SYSTEM (cause ENOSPC), no SIGBUS at its first write; a ring that fits still works; a receiver that cannot write its pid fails with ERR_NPIPE_SYSTEM and leaves nothing', { timeout: 30_000 }, async (t: TestContext) => {
    if (!requireOrSkip(t, process.geteuid?.() === 0, 'this test needs root (to mount a small tmpfs)')) return;
    const mount = mkdtempSync(join(tmpdir(), 'npipe-tiny-shm-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mount]);
    t.after(() => {
      execFileSync('umount', ['-l', mount]);
      rmSync(mount, { recursive: true, force: true });
    });
    const env = { ...process.env, NPIPE_SHM_DIR: mount };
    const { address } = fresh();
    const receiver = start(process.execPath, [PEER, 'receive', address], { env, hangMs: 30_000 });
    await receiver.waitForOutput('ready');
    try {
      // A default 8 MiB ring in 1 MiB: ftruncate alone succeeds, and the sends died of SIGBUS.
      const big = await start(process.execPath, [PEER, 'fill', address, String(1 << 23), '40', '100000'], { env }).done;
      assert.equal(big.signal, null, `the sender died of ${big.signal}`);
      assert.equal(big.code, 0, big.stderr);
      assert.match(big.stdout, /^failed ERR_NPIPE_SYSTEM ENOSPC$/m);
      const small = await start(process.execPath, [PEER, 'fill', address, String(1 << 16), '5', '1000'], { env }).done;
      assert.match(small.stdout, /^sent$/m, small.stderr);
    } finally {
      receiver.child.kill('SIGKILL');
      await receiver.done;
    }
    // Full to the last page: a receiver cannot even write its pid (it threw Node's bare ENOSPC, not an npipe code, and left its owner file).
    // (The killed receiver's folder is removed first: the next receiver would reclaim it, and its pages.)
    rmSync(join(mount, `npipe-${process.geteuid!()}`, address.slice('shm://'.length)), { recursive: true, force: true });
    try {
      writeFileSync(join(mount, 'filler'), Buffer.alloc(2 << 20));
    } catch {
      // ENOSPC: full, as wanted
    }
    const full = fresh();
    const opened = await start(process.execPath, [PEER, 'receive', full.address], { env }).done;
    assert.equal(opened.code, 1);
    assert.match(opened.stderr, /code: 'ERR_NPIPE_SYSTEM'/);
    assert.match(opened.stderr, /ENOSPC/);
    assert.equal(existsSync(join(mount, `npipe-${process.geteuid!()}`, full.name)), false, 'nothing of the name is left');
  });
  test('the sender past MAX_SENDERS (1024 held by live senders) is refused and told: it fails with ERR_NPIPE_NO_READER, not a wait for room forever (it was refused in silence)', { timeout: 60_000 }, async () => {
    const { name, address } = fresh();
    const { drops, receiver, dir, control } = await handMadePeerOf(name);
    // 1024 senders made here, each with a doorbell held open: alive to the receiver.
    const held: Array<{ segment: ReturnType<typeof createSegment>; bell: number }> = [];
    try {
      for (let i = 0; i < MAX_SENDERS; i++) {
        const segment = createSegment(dir, 1 << 16);
        mkfifoExactSync(segment.bellPath, 0o600);
        held.push({ segment, bell: openSync(segment.bellPath, constants.O_RDONLY | constants.O_NONBLOCK) });
        writeSync(control, `+${segment.base}\n`);
        if (i % 256 === 255) await until(() => receiver.senders === i + 1, `${i + 1} senders attached`);
      }
      await until(() => receiver.senders === MAX_SENDERS, 'every sender attached');
      const late = peer('fill', address, 1 << 16, 200, 1000);
      const result = await late.done;
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /failed ERR_NPIPE_NO_READER/);
      assert.deepEqual(drops.map((d) => [d.reason, d.pid]), [['refused', late.child.pid]]);
      assert.equal(receiver.senders, MAX_SENDERS);
    } finally {
      for (const { segment, bell } of held) {
        Atomics.store(segment.mapping.i32, layout.I_CLOSED, 1);
        segment.mapping.unmap();
        closeSync(bell);
      }
      closeSync(control);
      await receiver.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

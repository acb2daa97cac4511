/**
 * Issue 15: the FIFO sender and receiver under signals, stuck and slow readers,
 * hostile writers and odd timeouts. Real FIFOs, real processes.
 */
import { spawn } from 'node:child_process';
import { closeSync, constants, openSync, readSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createFraming, openReceiver, openSender, serve, type DropInfo } from '../src/index.js';
import { mkfifo } from '../src/fifo-public.js';
import { isErrno } from '../src/sys/errno.js';
import { BIN, delay, npipe, openFds, readerOn, requireOrSkip, start, tempDir, until } from './helpers.js';

const FORGER = fileURLToPath(new URL('./fixtures/forge-frames.js', import.meta.url));

/** The read end of a FIFO held by the test itself: it reads only when told to (a slow, or stuck, reader). */
class RawReader {
  readonly fd: number;
  readonly chunks: Buffer[] = [];
  bytes = 0;
  constructor(path: string) {
    this.fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  }
  /** Reads up to `max` bytes of what is in the pipe now; the count read (0: empty). */
  readNow(max = 1 << 20): number {
    const buffer = Buffer.allocUnsafe(max);
    let n: number;
    try {
      n = readSync(this.fd, buffer, 0, max, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return 0;
      throw err;
    }
    if (n > 0) {
      this.chunks.push(buffer.subarray(0, n));
      this.bytes += n;
    }
    return n;
  }
  /** Reads (`piece` bytes at a time, `every` ms apart) until `done()` holds and the pipe is empty. */
  async drainUntil(done: () => boolean, piece = 1 << 20, every = 2, hangMs = 20_000): Promise<void> {
    const limit = Date.now() + hangMs;
    for (;;) {
      const n = this.readNow(piece);
      if (n === 0 && done()) return;
      if (Date.now() > limit) throw new Error(`reader still draining after ${hangMs} ms (${this.bytes} bytes read)`);
      await delay(every);
    }
  }
  /** Everything read, decoded in `format`. */
  messages(format: string, maxMessageSize = 64 << 20): Buffer[] {
    const out: Buffer[] = [];
    const decoder = createFraming(format, { maxMessageSize }).createDecoder();
    for (const chunk of this.chunks) decoder.push(chunk, (m) => out.push(Buffer.from(m)));
    decoder.end((m) => out.push(Buffer.from(m)));
    return out;
  }
  close(): void {
    closeSync(this.fd);
  }
}

/** npipe with stdin from a regular file (the shell opens it; exec: signals reach npipe itself). */
function fromFile(input: string, args: string[]) {
  return start('sh', ['-c', 'f=$1; shift; exec "$@" < "$f"', 'sh', input, process.execPath, BIN, ...args], { hangMs: 15_000 });
}

function fifo(t: import('node:test').TestContext): string {
  const path = join(tempDir(t), 'f');
  mkfifo(path);
  return path;
}

/** `p`, or a rejection if it is still pending after `ms` (hang detection, not a speed check). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} still pending after ${ms} ms`)), ms);
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

function settled(p: Promise<unknown>): () => boolean {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  return () => done;
}

const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;

test('#15.4 - close({ signal }) aborted during a length write: no TypeError, the message is finished whole', async (t) => {
  const path = fifo(t);
  const reader = new RawReader(path);
  t.after(() => reader.close());
  const sender = await openSender<Uint8Array>(path, { format: 'length', codec: 'bytes' });
  const message = Buffer.alloc(1 << 20, 0x61);
  const sent = sender.send(message);
  await until(() => reader.readNow(4096) > 0, 'the first bytes of the message');
  const closed = sender.close({ signal: AbortSignal.abort() });
  await reader.drainUntil(settled(closed));
  await closed;
  await sent;
  const got = reader.messages('length');
  assert.equal(got.length, 1);
  assert.ok(got[0]!.equals(message));
});

for (const [format, size, count] of [
  ['frames', 100, 5000],
  ['raw', 64 * 1024, 40],
] as const) {
  test(`#15.4 - close({ signal }) aborted while ${format} writes wait for room: no TypeError, unsent messages reject with ERR_NPIPE_CLOSED`, async (t) => {
    const path = fifo(t);
    const reader = new RawReader(path);
    t.after(() => reader.close());
    const sender = await openSender<Uint8Array>(path, { format, codec: 'bytes' });
    const outcomes: Array<string | undefined> = [];
    const sends = Array.from({ length: count }, (_, i) =>
      sender.send(Buffer.alloc(size, 0x61 + (i % 26))).then(
        () => outcomes.push(undefined),
        (err: { code?: string }) => outcomes.push(err.code),
      ),
    );
    // The pipe is full and a write waits in libuv: the report's TypeError came from
    // that write's callback, run when close() destroyed the socket.
    await until(() => reader.readNow(4096) > 0, 'the first bytes');
    await sender.close({ signal: AbortSignal.abort() });
    await Promise.all(sends);
    await delay(20); // let any late callback run inside this test
    assert.equal(outcomes.length, count);
    assert.ok(outcomes.includes('ERR_NPIPE_CLOSED'), 'some messages were dropped by close');
    assert.deepEqual(new Set(outcomes.filter((c) => c !== undefined)), new Set(['ERR_NPIPE_CLOSED']));
  });
}

/**
 * `npipe send --format <format>` of one 3,000,000-byte message from a file into a
 * fresh FIFO, under way: its first bytes have reached `reader`, and the rest is
 * larger than the pipe.
 */
async function bigSendUnderway(t: TestContext, format: string) {
  const dir = tempDir(t);
  const path = join(dir, 'f');
  mkfifo(path);
  const input = join(dir, 'big.txt');
  const size = 3_000_000;
  writeFileSync(input, `${'a'.repeat(size)}\n`);
  const reader = new RawReader(path);
  t.after(() => reader.close());
  const first = fromFile(input, ['send', path, '--format', format]);
  await until(() => reader.readNow(64 * 1024) > 0, 'the first bytes');
  return { path, size, reader, first };
}

test('#15.4 - SIGTERM to send --format length mid-message: the message arrives whole, the next sender stays in step', async (t) => {
  // The message is being written: its first bytes are here and it is larger than the pipe.
  const { path, size, reader, first } = await bigSendUnderway(t, 'length');
  first.child.kill('SIGTERM');
  const second = npipe(['send', path, 'second', '--format', 'length']);
  let firstDone = false;
  let secondDone = false;
  void first.done.then(() => (firstDone = true));
  void second.done.then(() => (secondDone = true));
  // A slow reader: 64 KiB every 2 ms.
  await reader.drainUntil(() => firstDone && secondDone, 64 * 1024);
  const [r1, r2] = [await first.done, await second.done];
  assert.equal(r1.code, 143, r1.stderr);
  assert.equal(r2.code, 0, r2.stderr);
  assert.doesNotMatch(r1.stderr, /TypeError|ERR_NPIPE_INTERNAL/);
  const got = reader.messages('length');
  assert.deepEqual(
    got.map((m) => m.length),
    [size, 6],
  );
  assert.ok(got[0]!.equals(Buffer.alloc(size, 0x61)));
  assert.equal(got[1]!.toString(), 'second');
});

for (const [format, signal] of [
  ['lines', 'SIGINT'],
  ['length', 'SIGTERM'],
  ['fixed:300000', 'SIGHUP'],
  ['frames', 'SIGTERM'],
  ['raw', 'SIGINT'],
] as const) {
  const finishes = format !== 'frames' && format !== 'raw';
  test(`#15.4 - ${signal} to send --format ${format} while a write waits: exit ${SIGNAL_EXIT[signal]}, no crash${finishes ? ', the message finished whole' : ', stopped at once'}`, async (t) => {
    const path = fifo(t);
    const reader = new RawReader(path);
    t.after(() => reader.close());
    const body = 'a'.repeat(300_000);
    const running = npipe(['send', path, '--format', format], { input: `${body}\n`, hangMs: 15_000 });
    await until(() => reader.readNow(4096) > 0, 'the first bytes');
    running.child.kill(signal);
    let exited = false;
    void running.done.then(() => (exited = true));
    if (finishes) await reader.drainUntil(() => exited);
    const result = await running.done;
    assert.equal(result.code, SIGNAL_EXIT[signal], result.stderr);
    assert.equal(result.stderr, `npipe send: stopped by ${signal}\n`);
    if (finishes) {
      const got = reader.messages(format);
      assert.deepEqual(got.map((m) => m.length), [body.length]);
      assert.ok(got[0]!.equals(Buffer.from(body)), 'the message arrived as it was sent');
    }
  });
}

test('#15.4 - a second signal ends a send finishing a message for a reader that never reads (exit 128+n)', async (t) => {
  const path = fifo(t);
  const reader = new RawReader(path);
  t.after(() => reader.close());
  const running = npipe(['send', path, '--format', 'length'], { input: `${'a'.repeat(1_000_000)}\n`, hangMs: 15_000 });
  await until(() => reader.readNow(4096) > 0, 'the first bytes');
  running.child.kill('SIGTERM');
  running.child.kill('SIGINT');
  const result = await running.done;
  // Both may be pending at once; the kernel then delivers SIGINT first: 128+n of whichever came second.
  assert.ok(result.code === 130 || result.code === 143, `exit ${result.code}: ${result.stderr}`);
  reader.readNow();
  assert.ok(reader.bytes < 1_000_000, 'the message was not read whole: the second signal, not the reader, ended it');
});

test('#15.5 - send --format raw from a pipe whose reader goes away: one line ERR_NPIPE_NO_READER, exit 3', async (t) => {
  const path = fifo(t);
  // As in the report: a listener that takes one chunk and leaves, and a pipe on
  // stdin that never runs dry, so sends keep coming after the failure.
  const listener = npipe(['listen', path, '--format', 'raw', '--count', '1']);
  await readerOn(path);
  const running = start('sh', ['-c', 'head -c 50000000 /dev/zero | exec "$@"', 'sh', process.execPath, BIN, 'send', path, '--format', 'raw'], { hangMs: 20_000 });
  assert.equal((await listener.done).code, 0);
  const result = await running.done;
  assert.equal(result.code, 3, result.stderr);
  assert.match(result.stderr, /^npipe send: ERR_NPIPE_NO_READER: [^\n]*\n$/);
});

test('#15.10 - a wait with timeout 2**31 ms does not expire at once, and Node prints no TimeoutOverflowWarning', async (t) => {
  const path = fifo(t);
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const opening = openSender(path, { timeout: 2 ** 31 });
  const isSettled = settled(opening);
  // Observing a non-event: the open must still be waiting for a reader (the old
  // code's timer fired after 1 ms).
  await delay(300);
  assert.equal(isSettled(), false);
  const reader = new RawReader(path);
  t.after(() => reader.close());
  const sender = await opening;
  await sender.send('hi');
  await sender.close();
  assert.deepEqual(
    warnings.map((w) => w.name),
    [],
  );
});

test('#15.10 - a request with timeout 2**31 ms waits for its reply instead of timing out at once', async (t) => {
  const path = join(tempDir(t), 's');
  const server = await serve(path, async (request: string) => {
    await delay(300); // the reply comes late enough for a timer that fired at once to show
    return request.toUpperCase();
  });
  t.after(() => server.close());
  const client = await connect(path);
  t.after(() => client.close());
  assert.equal(await client.request('hi', { timeout: 2 ** 31 }), 'HI');
});

test('#15.14 - send --timeout bounds a write the reader never takes: ERR_NPIPE_TIMEOUT, exit 3', async (t) => {
  const path = fifo(t);
  const reader = new RawReader(path);
  t.after(() => reader.close());
  const running = npipe(['send', path, '--timeout', '1000', '--format', 'lines'], { input: `${'a'.repeat(1_000_000)}\n`, hangMs: 15_000 });
  const result = await running.done;
  assert.equal(result.code, 3, result.stderr);
  assert.match(result.stderr, /^npipe send: ERR_NPIPE_TIMEOUT: /);
  assert.ok(reader.readNow() > 0, 'the reader had opened the FIFO and the write had started');
});

test('#15.14 - send --format raw < file: --timeout bounds a write the reader never takes', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'f');
  mkfifo(path);
  const input = join(dir, 'data');
  writeFileSync(input, Buffer.alloc(4 << 20));
  const reader = new RawReader(path);
  t.after(() => reader.close());
  const running = fromFile(input, ['send', path, '--timeout', '1000', '--format', 'raw']);
  const result = await running.done;
  assert.equal(result.code, 3, result.stderr);
  assert.match(result.stderr, /^npipe send: ERR_NPIPE_TIMEOUT: /);
});

test('#15.14 - a library sender with timeout fails with ERR_NPIPE_TIMEOUT when the pipe takes nothing', async (t) => {
  const path = fifo(t);
  const reader = new RawReader(path);
  t.after(() => reader.close());
  const sender = await openSender<Uint8Array>(path, { format: 'frames', codec: 'bytes', timeout: 300 });
  await assert.rejects(within(sender.send(Buffer.alloc(1 << 20)), 5000, 'send()'), { code: 'ERR_NPIPE_TIMEOUT' });
  await sender.close();
});

test('#15.14 - a sender waiting for another writer\'s lock times out, and takes no lock afterwards', async (t) => {
  const path = fifo(t);
  const reader = new RawReader(path);
  t.after(() => reader.close());
  const a = await openSender<Uint8Array>(path, { format: 'length', codec: 'bytes' });
  const first = Buffer.alloc(1 << 20, 0x61);
  const sentA = a.send(first);
  await until(() => reader.readNow(4096) > 0, 'the first bytes of a large message (under the exclusive lock)');
  const b = await openSender<Uint8Array>(path, { format: 'length', codec: 'bytes', timeout: 300 });
  await assert.rejects(within(b.send(Buffer.alloc(100_000, 0x62)), 5000, 'the waiting send'), { code: 'ERR_NPIPE_TIMEOUT' });
  await reader.drainUntil(settled(sentA));
  await sentA;
  // b, failed but not closed, must not take the lock now that a has let it go.
  // Observing a non-event: a waiting sender retries the lock every 20 ms at most.
  await delay(200);
  const c = await openSender<Uint8Array>(path, { format: 'length', codec: 'bytes' });
  const third = Buffer.alloc(100_000, 0x63);
  const sentC = c.send(third);
  await reader.drainUntil(settled(sentC));
  await within(sentC, 5000, 'a later large message');
  await Promise.all([a.close(), b.close(), c.close()]);
  assert.deepEqual(
    reader.messages('length').map((m) => m[0]),
    [0x61, 0x63],
  );
});

test('#15.14 - timeout is no progress, not total time: a slow reader that keeps reading never times a sender out', async (t) => {
  const path = fifo(t);
  const reader = new RawReader(path);
  t.after(() => reader.close());
  const sender = await openSender<Uint8Array>(path, { format: 'length', codec: 'bytes', timeout: 500 });
  const message = Buffer.alloc(2 << 20, 0x62);
  const sent = sender.send(message);
  const startedAt = Date.now();
  // 16 KiB every 5 ms: the pipe always takes a little.
  await reader.drainUntil(settled(sent), 16 * 1024, 5);
  await sent;
  const tookMs = Date.now() - startedAt;
  await sender.close();
  assert.ok(tookMs > 500, `the write lasted longer than the timeout (${tookMs} ms), so only progress kept it alive`);
  const got = reader.messages('length');
  assert.equal(got.length, 1);
  assert.ok(got[0]!.equals(message));
});

test('#15.14 - openReceiver({ timeout }): receive() with no message for that long rejects ERR_NPIPE_TIMEOUT, and the receiver goes on', async (t) => {
  const path = fifo(t);
  const receiver = await openReceiver(path, { format: 'lines', timeout: 200 });
  t.after(() => receiver.close());
  await assert.rejects(within(receiver.receive(), 5000, 'receive()'), { code: 'ERR_NPIPE_TIMEOUT' });
  const sender = await openSender(path, { format: 'lines' });
  await sender.send('later');
  await sender.close();
  assert.equal(await receiver.receive(), 'later');
});

test('#15.17 - send --format fixed:5 abcde xy: exit 2 ERR_NPIPE_INVALID_ARG, nothing sent', async (t) => {
  const path = fifo(t);
  const reader = new RawReader(path);
  t.after(() => reader.close());
  const result = await npipe(['send', path, 'abcde', 'xy', '--format', 'fixed:5']).done;
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /^npipe send: ERR_NPIPE_INVALID_ARG: /);
  assert.equal(reader.readNow(), 0);
  // The reader is still in step: a good send arrives as it is.
  assert.equal((await npipe(['send', path, 'fghij', '--format', 'fixed:5']).done).code, 0);
  reader.readNow();
  assert.deepEqual(
    reader.messages('fixed:5').map(String),
    ['fghij'],
  );
});

/** Starts the hostile writer; it keeps the FIFO until `release()`. */
async function forge(path: string, pid: number | 'self', total: number, count: number, hold: 'read' | 'write' = 'write') {
  const child = spawn(process.execPath, [FORGER, path, String(pid), String(total), String(count), '--hold', hold], { stdio: ['pipe', 'pipe', 'inherit'] });
  const ids = await new Promise<number[]>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const line = /^ready (.*)\n/.exec(out);
      if (line) resolve(line[1]!.split(' ').map(Number));
    });
    child.on('exit', (code) => reject(new Error(`forger exited ${code}`)));
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return {
    ids,
    release: async () => {
      child.stdin.end();
      await exited;
    },
  };
}

test('#15.9 - FIRST packets claiming the listener own pid no longer pin the partial-message memory', async (t) => {
  const path = fifo(t);
  const drops: DropInfo[] = [];
  const receiver = await openReceiver<Buffer>(path, { format: 'frames', codec: 'bytes', onDrop: (d) => drops.push(d) });
  t.after(() => receiver.close());
  // 4 x 64 MiB: the default maxPartialBytes (256 MiB), all claimed by "the listener".
  const forger = await forge(path, process.pid, 64 << 20, 4);
  t.after(() => forger.release());
  await until(() => forger.ids.every((id) => drops.some((d) => d.writerId === id && d.reason === 'writer-died')), 'the forged messages dropped', 5000);
  const message = 'x'.repeat(100_000);
  const sent = await npipe(['send', path, '--format', 'frames'], { input: `${message}\n` }).done;
  assert.equal(sent.code, 0, sent.stderr);
  assert.equal(String(await receiver.receive()), message);
  assert.equal(drops.filter((d) => d.reason === 'memory').length, 0);
});

test('#15.9 - a FIRST packet claiming a pid that holds the FIFO only for reading is dropped', async (t) => {
  const path = fifo(t);
  const drops: DropInfo[] = [];
  const receiver = await openReceiver<Buffer>(path, { format: 'frames', codec: 'bytes', onDrop: (d) => drops.push(d) });
  t.after(() => receiver.close());
  const forger = await forge(path, 'self', 1 << 20, 1, 'read');
  t.after(() => forger.release());
  await until(() => drops.some((d) => d.writerId === forger.ids[0] && d.reason === 'writer-died'), 'the forged message dropped', 5000);
  assert.equal(receiver.bufferedBytes, 0);
});

test('#15.9 - a partial message with no new packet for partialTimeout is dropped as stalled, even from a live writer', async (t) => {
  const path = fifo(t);
  const drops: DropInfo[] = [];
  const receiver = await openReceiver<Buffer>(path, { format: 'frames', codec: 'bytes', partialTimeout: 500, onDrop: (d) => drops.push(d) });
  t.after(() => receiver.close());
  const forger = await forge(path, 'self', 64 << 20, 2, 'write');
  t.after(() => forger.release());
  await until(() => forger.ids.every((id) => drops.some((d) => d.writerId === id && d.reason === 'stalled')), 'the stalled messages dropped', 5000);
  assert.equal(receiver.bufferedBytes, 0);
  assert.equal(receiver.dropped.messages, 2);
  // A real message still arrives.
  const sender = await openSender(path, { format: 'frames' });
  await sender.send('y'.repeat(50_000));
  await sender.close();
  assert.equal(String(await receiver.receive()), 'y'.repeat(50_000));
});

test('#15.9 - partialTimeout does not drop a large message whose packets keep coming', async (t) => {
  const path = fifo(t);
  const drops: DropInfo[] = [];
  const receiver = await openReceiver<Buffer>(path, { format: 'frames', codec: 'bytes', partialTimeout: 200, onDrop: (d) => drops.push(d) });
  t.after(() => receiver.close());
  const message = Buffer.alloc(4 << 20, 0x63);
  const running = start(process.execPath, [BIN, 'send', path, '--format', 'frames'], {
    input: message.toString() + '\n',
  });
  // The receiver reads slowly: one message's worth of time well past partialTimeout.
  const got = await receiver.receive();
  assert.equal((await running.done).code, 0);
  assert.equal(got!.length, message.length);
  assert.deepEqual(drops, []);
});

test('#15.14 - a bad timeout or partialTimeout is ERR_NPIPE_INVALID_ARG, and opens nothing', async (t) => {
  const path = fifo(t);
  const fds = openFds();
  await assert.rejects(openReceiver(path, { timeout: -1 }), { code: 'ERR_NPIPE_INVALID_ARG' });
  await assert.rejects(openReceiver(path, { format: 'frames', partialTimeout: Number.NaN }), { code: 'ERR_NPIPE_INVALID_ARG' });
  await assert.rejects(openSender(path, { timeout: Infinity }), { code: 'ERR_NPIPE_INVALID_ARG' });
  assert.equal(openFds(), fds);
});

test('#15.9 - a FIRST packet naming a process whose descriptors cannot be examined (here pid 1) does not crash the reader: the claim is dropped as stalled', async (t) => {
  if (!requireOrSkip(t, process.platform === 'linux', 'the /proc check of writers is Linux-only')) return;
  // In this container root may list /proc/1/fd but not stat its entries (EACCES): the
  // check crashed the reader with a stack (attack pass on the merged tree, D1).
  let unexaminable = false;
  try {
    for (const fd of readdirSync('/proc/1/fd')) statSync(`/proc/1/fd/${fd}`);
  } catch (err) {
    unexaminable = isErrno(err, 'EACCES', 'EPERM');
  }
  t.diagnostic(`pid 1's descriptors ${unexaminable ? 'cannot' : 'can'} be examined here`);
  const path = fifo(t);
  const drops: DropInfo[] = [];
  const receiver = await openReceiver<Buffer>(path, { format: 'frames', codec: 'bytes', partialTimeout: 1500, onDrop: (d) => drops.push(d) });
  t.after(() => receiver.close());
  const forger = await forge(path, 1, 1 << 20, 1);
  t.after(() => forger.release());
  // The sweep (every 500 ms) examined pid 1 at least twice before the stall drop.
  await until(() => drops.some((d) => d.writerId === forger.ids[0]), 'the forged message dropped', 10_000);
  assert.ok(drops.every((d) => d.reason === 'stalled' || d.reason === 'writer-died'), JSON.stringify(drops));
  const sender = await openSender(path, { format: 'frames' });
  await sender.send('after');
  await sender.close();
  assert.equal(String(await receiver.receive()), 'after');
});

test('#15.4 - SIGTERM delivered twice within a moment (as timeout(1) does: to the command, then to its process group): the message being written still arrives whole', async (t) => {
  const { path, size, reader, first } = await bigSendUnderway(t, 'lines');
  first.child.kill('SIGTERM');
  await delay(50); // apart enough not to merge into one pending signal
  first.child.kill('SIGTERM');
  let firstDone = false;
  void first.done.then(() => (firstDone = true));
  await reader.drainUntil(() => firstDone, 64 * 1024);
  const second = npipe(['send', path, 'second', '--format', 'lines']);
  let secondDone = false;
  void second.done.then(() => (secondDone = true));
  await reader.drainUntil(() => secondDone, 64 * 1024);
  const [r1, r2] = [await first.done, await second.done];
  assert.equal(r1.code, 143, r1.stderr);
  assert.equal(r2.code, 0, r2.stderr);
  assert.doesNotMatch(r1.stderr, /stopped at once/);
  const got = reader.messages('lines');
  assert.deepEqual(got.map((m) => m.length), [size, 6]);
  assert.ok(got[0]!.equals(Buffer.alloc(size, 0x61)));
});

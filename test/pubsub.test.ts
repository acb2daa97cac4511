/**
 * Publish/subscribe over FIFOs (issue 20): every subscriber gets every message,
 * whole, in each publisher's order; subscribers come and go, die, and are let go.
 * Real FIFOs, real processes.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { openPublisher, openSender, subscribe, type Receiver } from '../src/index.js';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BIN, delay, npipe, run, sharedNatsServer, start, tempDir, until } from './helpers.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}.js`, import.meta.url));
const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
const NPIPE = `${q(process.execPath)} ${q(BIN)}`;

const subscriberFifos = (topic: string) => readdirSync(topic).filter((n) => n.startsWith('s-'));

describe('publish/subscribe over FIFOs', { skip: process.platform === 'win32' && 'FIFO topics are POSIX' }, () => {
  test('8 subscriber processes x 100,000 messages from 2 publishers: every subscriber gets every message, whole, in each publisher\'s order', async (t) => {
    const dir = tempDir(t);
    const topic = join(dir, 'topic');
    const N = 100_000;
    const subscribers = Array.from({ length: 8 }, (_, i) =>
      start('sh', ['-c', `exec ${NPIPE} subscribe ${q(topic)} --count ${2 * N} > ${q(join(dir, `out${i}`))}`], { hangMs: 240_000 }),
    );
    await until(() => existsSync(topic) && subscriberFifos(topic).length === 8, 'eight subscribers', 30_000);
    const publishers = ['A', 'B'].map((p) => start('sh', ['-c', `seq -f '${p} %g' ${N} | ${NPIPE} publish ${q(topic)}`], { hangMs: 240_000 }));
    for (const p of publishers) assert.equal((await p.done).code, 0);
    for (const [i, s] of subscribers.entries()) {
      const r = await s.done;
      assert.equal(r.code, 0, r.stderr);
      const lines = readFileSync(join(dir, `out${i}`), 'utf8').split('\n');
      assert.equal(lines.pop(), '');
      assert.equal(lines.length, 2 * N, `subscriber ${i}`);
      const next = { A: 1, B: 1 } as Record<string, number>;
      for (const line of lines) {
        const [p, n] = line.split(' ');
        assert.equal(Number(n), next[p!], `subscriber ${i}: ${JSON.stringify(line)} out of order or torn`);
        next[p!]!++;
      }
    }
    assert.deepEqual(subscriberFifos(topic), [], 'each subscriber removed its FIFO when it ended');
  });

  test('64 KiB messages (envelopes reused from a pool) arrive intact: 2 publishers, 3 subscribers, each byte checked', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const subscribers = await Promise.all([1, 2, 3].map(() => subscribe(topic, { codec: 'bytes' })));
    const publishers = await Promise.all([openPublisher(topic, { codec: 'bytes' }), openPublisher(topic, { codec: 'bytes' })]);
    const N = 300;
    // Message i of publisher k: 64 KiB (and a little, so sizes vary) of the byte (k * 101 + i) % 251, led by k and i.
    const body = (k: number, i: number) => {
      const b = Buffer.alloc(65536 + (i % 7) * 1000, (k * 101 + i) % 251);
      b.writeUInt32LE(k, 0);
      b.writeUInt32LE(i, 4);
      return b;
    };
    const received = subscribers.map(async (s) => {
      const next = [0, 0];
      for await (const m of s) {
        const [k, i] = [m.readUInt32LE(0), m.readUInt32LE(4)];
        assert.equal(i, next[k], `publisher ${k}: message ${i} where ${next[k]} was next`);
        assert.ok(m.equals(body(k, i)), `message ${i} of publisher ${k} arrived changed`);
        next[k]!++;
        if (next[0] === N && next[1] === N) break;
      }
    });
    await Promise.all(
      publishers.map(async (p, k) => {
        const pending: Promise<void>[] = [];
        for (let i = 0; i < N; i++) pending.push(p.publish(body(k, i)));
        await Promise.all(pending);
      }),
    );
    await Promise.all(received);
    for (const p of publishers) await p.close();
    for (const s of subscribers) await s.close();
  });

  test('a subscriber is a Receiver like openReceiver\'s: receiveInto into one reused buffer, a message too long for it is the error\'s payload and nothing is lost; a Windows pipe name is ERR_NPIPE_UNSUPPORTED here', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const s = await subscribe(topic, { codec: 'bytes' });
    const publisher = await openPublisher(topic);
    await publisher.publish('short');
    await publisher.publish('a message longer than eight bytes');
    await publisher.publish('next');
    const target = Buffer.alloc(8);
    assert.equal(await s.receiveInto(target), 5);
    assert.equal(target.toString('utf8', 0, 5), 'short');
    await assert.rejects(s.receiveInto(target), (err: { code?: string; payload?: Buffer }) => {
      assert.equal(err.code, 'ERR_NPIPE_BUFFER_TOO_SMALL');
      assert.equal(err.payload?.toString(), 'a message longer than eight bytes');
      return true;
    });
    assert.equal(await s.receiveInto(target), 4);
    assert.equal(target.toString('utf8', 0, 4), 'next');
    await publisher.close();
    await s.close();
    await assert.rejects(openPublisher('\\\\.\\pipe\\npipe-topic'), { code: 'ERR_NPIPE_UNSUPPORTED' });
    await assert.rejects(subscribe('\\\\.\\pipe\\npipe-topic'), { code: 'ERR_NPIPE_UNSUPPORTED' });
  });

  test('a forged envelope in a subscriber\'s FIFO (a number past 2^53, or one that goes back) is dropped and counted, never a gap of 10^19 or a count moved back (attack pass)', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const missed: number[] = [];
    const s = await subscribe(topic, { onMissed: ({ messages }) => missed.push(messages) });
    const publisher = await openPublisher(topic);
    await publisher.publish('one');
    await publisher.publish('two');
    // A same-user process writes envelopes of its own into the subscriber's FIFO, in frames.
    const forger = await openSender(join(topic, subscriberFifos(topic)[0]!), { codec: 'bytes', create: false });
    const forged = (seq: bigint, publisherId: Buffer) => {
      const b = Buffer.alloc(17 + 6);
      b[0] = 1;
      publisherId.copy(b, 1);
      b.writeBigUInt64LE(seq, 9);
      b.write('forged', 17);
      return b;
    };
    const id = Buffer.alloc(8, 7);
    await forger.send(forged(5n, id));
    await forger.send(forged(2n ** 64n - 1n, id));
    await forger.send(forged(3n, id));
    await forger.close();
    await publisher.publish('three');
    const got: string[] = [];
    for await (const m of s) if (got.push(m) === 4) break;
    // The forger's first envelope starts its own count; the next two are not numbers a publisher sends.
    assert.deepEqual(got, ['one', 'two', 'forged', 'three']);
    assert.deepEqual(missed, []);
    await publisher.close();
  });

  test('a subscriber that joins mid-stream gets every message published after subscribe() resolved, in order', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const publisher = await openPublisher(topic);
    const early = await subscribe(topic);
    for (let i = 0; i < 100; i++) await publisher.publish(`m${i}`);
    const late = await subscribe(topic);
    for (let i = 100; i < 200; i++) await publisher.publish(`m${i}`);
    await publisher.close();
    const take = async (r: Receiver<string>, n: number) => {
      const got: string[] = [];
      for await (const m of r) if (got.push(m) === n) break;
      return got;
    };
    assert.deepEqual(await take(early, 200), Array.from({ length: 200 }, (_, i) => `m${i}`));
    assert.deepEqual(await take(late, 100), Array.from({ length: 100 }, (_, i) => `m${i + 100}`));
    await early.close();
    await late.close();
  });

  test('a subscriber that joins in the same clock tick as a publisher read the folder, after it, gets the messages published later', async (t) => {
    // A coarse file-system clock (before Linux 6.13's fine-grained timestamps; ramfs
    // still) leaves the folder's time as it was for a join in the tick of a reading.
    // Put the time back as such a clock would: the publisher must read the folder again.
    const topic = join(tempDir(t), 'topic');
    const publisher = await openPublisher(topic);
    const early = await subscribe(topic);
    const tick = Date.now() / 1000;
    utimesSync(topic, tick, tick);
    await publisher.publish('first');
    const late = await subscribe(topic);
    utimesSync(topic, tick, tick);
    await delay(80);
    await publisher.publish('second');
    await publisher.close();
    assert.equal(await late.receive({ signal: AbortSignal.timeout(2000) }).catch(() => '(nothing)'), 'second');
    assert.deepEqual([await early.receive(), await early.receive()], ['first', 'second']);
    await early.close();
    await late.close();
  });

  test('a publish() called after subscribe() resolved reaches that subscriber while an earlier publish() is still reading the folder', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const publisher = await openPublisher(topic);
    for (let i = 0; i < 5; i++) {
      // A FIFO with no reader whose process is alive (a zombie, a reused pid): opening it takes a timer's tick.
      execFileSync('mkfifo', ['-m', '600', join(topic, `s-${process.pid}-${String(i).padStart(16, '0')}.fifo`)]);
      const first = publisher.publish(`${i}: before`);
      const late = await subscribe(topic);
      const second = publisher.publish(`${i}: after`);
      await Promise.all([first, second]);
      await publisher.publish(`${i}: later`);
      const got = [];
      for (let n = 0; n < 2; n++) got.push(await late.receive({ signal: AbortSignal.timeout(2000) }).catch(() => '(nothing)'));
      assert.deepEqual(got, [`${i}: after`, `${i}: later`]);
      await late.close();
    }
    await publisher.close();
  });

  test('a SIGKILLed subscriber is noticed and its FIFO removed; the publisher goes on and the others get everything', async (t) => {
    const dir = tempDir(t);
    const topic = join(dir, 'topic');
    const victim = start('sh', ['-c', `exec ${NPIPE} subscribe ${q(topic)} > /dev/null`], { hangMs: 60_000 });
    const survivor = await subscribe(topic);
    await until(() => subscriberFifos(topic).length === 2, 'two subscribers');
    const publisher = await openPublisher(topic);
    for (let i = 0; i < 10; i++) await publisher.publish(`before ${i}`);
    assert.equal(publisher.subscribers, 2);
    victim.child.kill('SIGKILL');
    await victim.done;
    // The next publishes find its FIFO without a reader (EPIPE): let go and removed, never waited for.
    for (let i = 0; i < 10; i++) await publisher.publish(`after ${i}`);
    assert.equal(publisher.subscribers, 1);
    assert.equal(subscriberFifos(topic).length, 1, 'the dead subscriber\'s FIFO is removed');
    const got: string[] = [];
    for await (const m of survivor) if (got.push(m) === 20) break;
    assert.deepEqual(got, [...Array.from({ length: 10 }, (_, i) => `before ${i}`), ...Array.from({ length: 10 }, (_, i) => `after ${i}`)]);
    await publisher.close();
    await survivor.close();
  });

  test('a FIFO left by a subscriber killed while no one published is removed by the next subscriber to join', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const victim = start('sh', ['-c', `exec ${NPIPE} subscribe ${q(topic)}`], { hangMs: 60_000 });
    await until(() => existsSync(topic) && subscriberFifos(topic).length === 1, 'the subscriber');
    victim.child.kill('SIGKILL');
    await victim.done;
    const next = await subscribe(topic);
    assert.equal(subscriberFifos(topic).length, 1, readdirSync(topic).join(' '));
    await next.close();
    assert.deepEqual(readdirSync(topic), []);
  });

  test('npipe subscribe | head -1 exits 0 quietly and removes its FIFO (not left for the next publisher to find)', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const pipeline = start('sh', ['-c', `${NPIPE} subscribe ${q(topic)} | head -1`], { hangMs: 30_000 });
    await until(() => existsSync(topic) && subscriberFifos(topic).length === 1, 'the subscriber');
    const publisher = await openPublisher(topic);
    let finished = false;
    void pipeline.done.then(() => (finished = true));
    for (let i = 0; !finished && i < 50; i++) {
      await publisher.publish(`line ${i}`);
      await Promise.race([pipeline.done, delay(200)]);
    }
    const r = await pipeline.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'line 0\n');
    assert.equal(r.stderr, '');
    assert.deepEqual(subscriberFifos(topic), []);
    await publisher.close();
  });

  test('a message over maxMessageSize is refused (ERR_NPIPE_FRAME_TOO_LARGE), the subscribers kept; the topic folder removed under npipe publish: one line, exit 1', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const s = await subscribe(topic, { maxMessageSize: 1000 });
    const publisher = await openPublisher(topic, { maxMessageSize: 1000 });
    await publisher.publish('before');
    await assert.rejects(publisher.publish('x'.repeat(1001)), { code: 'ERR_NPIPE_FRAME_TOO_LARGE' });
    assert.equal(publisher.subscribers, 1);
    await publisher.publish('after');
    assert.deepEqual([await s.receive(), await s.receive()], ['before', 'after']);
    await publisher.close();
    await s.close();
    const gone = join(tempDir(t), 'gone');
    mkdirSync(gone, { mode: 0o700 });
    // A subscriber sees the publisher's first message: it is running (a fixed delay was not
    // enough on a loaded machine: a publisher started after the removal makes the folder anew).
    const watcher = await subscribe(gone);
    const pub = start('sh', ['-c', `while :; do echo tick; sleep 0.02; done | ${NPIPE} publish ${q(gone)}`], { hangMs: 20_000 });
    assert.equal(await watcher.receive(), 'tick');
    await watcher.close();
    rmSync(gone, { recursive: true });
    const r = await pub.done;
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^npipe publish: ERR_NPIPE_NOT_FOUND: [^\n]*\n$/);
  });

  test('a subscriber that closes is let go; publishing with no subscriber goes nowhere and does not wait', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const publisher = await openPublisher(topic);
    await publisher.publish('to nobody');
    assert.equal(publisher.subscribers, 0);
    const s = await subscribe(topic);
    await publisher.publish('one');
    assert.equal(publisher.subscribers, 1);
    await s.close();
    assert.deepEqual(readdirSync(topic), []);
    await publisher.publish('two');
    assert.equal(publisher.subscribers, 0);
    await publisher.close();
    await assert.rejects(publisher.publish('three'), { code: 'ERR_NPIPE_CLOSED' });
  });

  test('the topic folder is made 0700; a symlink, a folder open to others or a file is refused (ERR_NPIPE_UNSAFE, CLI exit 4)', async (t) => {
    const dir = tempDir(t);
    const topic = join(dir, 'topic');
    const s = await subscribe(topic);
    assert.equal(lstatSync(topic).mode & 0o777, 0o700);
    await s.close();
    mkdirSync(join(dir, 'open'));
    chmodSync(join(dir, 'open'), 0o755);
    symlinkSync(topic, join(dir, 'link'));
    writeFileSync(join(dir, 'file'), '');
    for (const name of ['open', 'link', 'file']) {
      await assert.rejects(subscribe(join(dir, name)), { code: 'ERR_NPIPE_UNSAFE' }, name);
      await assert.rejects(openPublisher(join(dir, name)), { code: 'ERR_NPIPE_UNSAFE' }, name);
      const r = await run(['publish', join(dir, name), 'x']);
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /^npipe publish: ERR_NPIPE_UNSAFE: /);
    }
  });

  test('the CLI: subscribe --json, --count, --timeout (exit 3); publish from arguments and stdin; usage errors exit 2', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const sub = npipe(['subscribe', topic, '--json', '--count', '3']);
    await until(() => existsSync(topic) && subscriberFifos(topic).length === 1, 'the subscriber');
    assert.equal((await run(['publish', topic, 'a', 'b b'])).code, 0);
    assert.equal((await run(['publish', topic], { input: 'c\n' })).code, 0);
    const r = await sub.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown), [{ text: 'a' }, { text: 'b b' }, { text: 'c' }]);
    const idle = await run(['subscribe', topic, '--timeout', '300ms']);
    assert.equal(idle.code, 3, idle.stderr);
    assert.match(idle.stderr, /ERR_NPIPE_TIMEOUT/);
    for (const args of [['publish'], ['subscribe'], ['subscribe', topic, topic], ['subscribe', topic, '--count', '0']]) {
      assert.equal((await run(args)).code, 2, args.join(' '));
    }
  });
});

describe('slow subscribers: block, drop, disconnect (issue 20 #4)', { skip: process.platform === 'win32' && 'FIFO topics are POSIX' }, () => {
  const N = 3000;
  const message = (i: number) => Buffer.concat([Buffer.from(`${i} `), Buffer.alloc(4096, 0x61)]);
  const numberOf = (m: Buffer) => Number(m.toString('latin1', 0, m.indexOf(0x20)));

  test('drop: a subscriber that reads nothing does not hold the publisher back; the others get everything, and it counts exactly what it missed', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const fast = await subscribe(topic, { codec: 'bytes' });
    const missed: number[] = [];
    const slow = await subscribe(topic, { codec: 'bytes', slow: 'drop', onMissed: ({ messages }) => missed.push(messages) });
    const publisher = await openPublisher(topic, { codec: 'bytes', maxQueuedBytes: 64 * 1024 });
    const fastGot: number[] = [];
    const fastDone = (async () => {
      for await (const m of fast) if (fastGot.push(numberOf(m)) === N) break;
    })();
    // The slow subscriber reads nothing while all N are published: if publish() waited for it, this would never end.
    for (let i = 1; i <= N; i++) await publisher.publish(message(i));
    await fastDone;
    assert.deepEqual(fastGot, Array.from({ length: N }, (_, i) => i + 1));
    // Now it reads: what was queued for it, then the publisher's last number, sent when it closes.
    const slowGot: number[] = [];
    const closing = publisher.close();
    for (;;) {
      const m = await slow.receive({ signal: AbortSignal.timeout(3000) }).catch(() => undefined);
      if (m === undefined) break;
      slowGot.push(numberOf(m));
    }
    await closing;
    assert.ok(slowGot.length > 0 && slowGot.length < N, `it got ${slowGot.length}`);
    assert.ok(
      slowGot.every((n, i) => i === 0 || n > slowGot[i - 1]!),
      'what it got is in order',
    );
    // Every message it did not get is counted, once: as the next message came, or by the publisher's last number.
    assert.equal(slowGot.length + missed.reduce((a, b) => a + b, 0), N, `got ${slowGot.length}, missed ${missed.join('+')}`);
    await fast.close();
    await slow.close();
  });

  test('drop: a gap in mid-stream is reported when the next message arrives, with its exact size', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const missed: number[] = [];
    const slow = await subscribe(topic, { codec: 'bytes', slow: 'drop', onMissed: ({ messages }) => missed.push(messages) });
    const publisher = await openPublisher(topic, { codec: 'bytes', maxQueuedBytes: 64 * 1024 });
    for (let i = 1; i <= N; i++) await publisher.publish(message(i));
    // It catches up: what was queued and in its pipe.
    const got: number[] = [];
    for (;;) {
      const m = await slow.receive({ signal: AbortSignal.timeout(500) }).catch(() => undefined);
      if (m === undefined) break;
      got.push(numberOf(m));
    }
    assert.deepEqual(missed, [], 'nothing told yet: no later message has come');
    await publisher.publish(message(N + 1));
    const next = await slow.receive();
    assert.equal(numberOf(next!), N + 1);
    assert.deepEqual(missed, [N - got.length]);
    await publisher.close();
    await slow.close();
  });

  test('disconnect: a subscriber that falls behind is let go (its FIFO removed), gets what came before in order, then ERR_NPIPE_SLOW_CONSUMER; the publisher goes on', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const slow = await subscribe(topic, { codec: 'bytes', slow: 'disconnect' });
    const other = await subscribe(topic, { codec: 'bytes' });
    const publisher = await openPublisher(topic, { codec: 'bytes', maxQueuedBytes: 64 * 1024 });
    const otherGot: number[] = [];
    const otherDone = (async () => {
      for await (const m of other) if (otherGot.push(numberOf(m)) === N) break;
    })();
    for (let i = 1; i <= N; i++) await publisher.publish(message(i));
    await otherDone;
    assert.equal(otherGot.length, N);
    assert.equal(publisher.subscribers, 1, 'the slow one was let go');
    assert.deepEqual(
      subscriberFifos(topic).filter((n) => n.endsWith('-disconnect.fifo')),
      [],
      'its FIFO was removed',
    );
    const got: number[] = [];
    await assert.rejects(
      (async () => {
        for (;;) got.push(numberOf((await slow.receive())!));
      })(),
      { code: 'ERR_NPIPE_SLOW_CONSUMER' },
    );
    assert.ok(got.length > 0 && got.length < N, `it got ${got.length}`);
    assert.deepEqual(got, Array.from({ length: got.length }, (_, i) => i + 1), 'a disconnect subscriber never skips: it gets a prefix');
    await publisher.close();
    await other.close();
    await slow.close();
  });

  test('memory stays bounded with a subscriber that never reads: 400 MiB published past a drop and a disconnect subscriber', async () => {
    for (const policy of ['drop', 'disconnect']) {
      const r = await start(process.execPath, [fixture('topic-flood'), policy], { hangMs: 120_000 }).done;
      assert.equal(r.code, 0, r.stderr);
      const { published, peakRss, missed, ended } = JSON.parse(r.stdout) as { published: number; peakRss: number; missed: number; ended: string };
      assert.equal(published, 400 * 1024 * 1024);
      if (policy === 'drop') assert.ok(missed > 0, 'the subscriber that never read counts what it missed');
      else assert.equal(ended, 'ERR_NPIPE_SLOW_CONSUMER', 'the subscriber that never read was let go and told');
      assert.ok(peakRss < 250 * 1024 * 1024, `${policy}: peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB`);
    }
  });

  test('the CLI: subscribe --slow disconnect exits 1 with ERR_NPIPE_SLOW_CONSUMER once it reads up to where it was let go; --slow takes only its three words', async (t) => {
    const dir = tempDir(t);
    const topic = join(dir, 'topic');
    const sub = spawn(process.execPath, [BIN, 'subscribe', topic, '--slow', 'disconnect'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    sub.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    sub.stdout.pause(); // its stdout fills, so it stops reading its FIFO
    await until(() => existsSync(topic) && subscriberFifos(topic).length === 1, 'the subscriber');
    const lines = Array.from({ length: 20_000 }, (_, i) => `${i + 1} ${'x'.repeat(1000)}`).join('\n');
    const pub = await run(['publish', topic, '--max-queued', '65536'], { input: `${lines}\n` });
    assert.equal(pub.code, 0, pub.stderr);
    assert.deepEqual(subscriberFifos(topic), [], 'let go: its FIFO is removed');
    sub.stdout.resume();
    sub.stdout.on('data', () => {});
    const code = await new Promise<number | null>((resolve) => sub.on('exit', resolve));
    assert.equal(code, 1, stderr);
    assert.match(stderr, /^npipe subscribe: ERR_NPIPE_SLOW_CONSUMER: /m);
    const bad = await run(['subscribe', topic, '--slow', 'fast']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--slow is block, drop or disconnect/);
  });

  test('disconnect, the subscriber stopped (SIGSTOP) past the grace: it still prints what its pipe holds, in order, then exits 1; also one that named no policy and took the publisher\'s', async (t) => {
    const topic = join(tempDir(t), 'topic');
    const own = start(process.execPath, [BIN, 'subscribe', topic, '--slow', 'disconnect'], { hangMs: 60_000 });
    await until(() => existsSync(topic) && subscriberFifos(topic).length === 1, 'the first subscriber');
    const taken = start(process.execPath, [BIN, 'subscribe', topic], { hangMs: 60_000 });
    await until(() => subscriberFifos(topic).length === 2, 'the second subscriber');
    own.child.kill('SIGSTOP');
    taken.child.kill('SIGSTOP');
    try {
      const publisher = await openPublisher(topic, { slow: 'disconnect', maxQueuedBytes: 64 * 1024 });
      for (let i = 1; i <= 3000; i++) await publisher.publish(`${i} ${'x'.repeat(1000)}`);
      assert.deepEqual(subscriberFifos(topic), [], 'both let go: their FIFOs are removed');
      await publisher.close();
      await delay(1500); // past the publisher's grace for its last word, and a check of the FIFO
    } finally {
      own.child.kill('SIGCONT');
      taken.child.kill('SIGCONT');
    }
    for (const r of [await own.done, await taken.done]) {
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^npipe subscribe: ERR_NPIPE_SLOW_CONSUMER: /m);
      const got = r.stdout.split('\n').filter(Boolean).map((line) => Number(line.split(' ')[0]));
      assert.ok(got.length > 0, 'what was in its pipe is printed before it ends');
      assert.deepEqual(got, Array.from({ length: got.length }, (_, i) => i + 1));
    }
  });
});

describe('publish/subscribe over NATS: the same API, a plain subscription (issue 20 #1)', () => {
  const nats = sharedNatsServer('pubsub-test');

  test('3 subscribers each get every message of 2 publishers, in each publisher\'s order; block and disconnect are refused, not pretended', async (t) => {
    const topic = nats.url(t);
    if (topic === undefined) return;
    const subscribers = await Promise.all([1, 2, 3].map(() => subscribe(topic)));
    const publishers = await Promise.all([openPublisher(topic), openPublisher(topic)]);
    assert.equal(publishers[0]!.subscribers, undefined, 'over NATS the server alone knows its subscribers');
    const N = 500;
    const received = subscribers.map(async (s) => {
      const got: string[] = [];
      for await (const m of s) if (got.push(m) === 2 * N) break;
      return got;
    });
    await Promise.all(publishers.map(async (p, k) => {
      for (let i = 0; i < N; i++) await p.publish(`${k}:${i}`);
    }));
    for (const got of await Promise.all(received)) {
      for (const k of [0, 1]) assert.deepEqual(got.filter((m) => m.startsWith(`${k}:`)), Array.from({ length: N }, (_, i) => `${k}:${i}`));
    }
    for (const p of publishers) await p.close();
    for (const s of subscribers) await s.close();
    for (const slow of ['block', 'disconnect'] as const) {
      await assert.rejects(subscribe(topic, { slow }), { code: 'ERR_NPIPE_UNSUPPORTED' });
      await assert.rejects(openPublisher(topic, { slow }), { code: 'ERR_NPIPE_UNSUPPORTED' });
    }
    await assert.rejects(subscribe(`${topic}?delivery=jetstream`), { code: 'ERR_NPIPE_UNSUPPORTED' });
  });

  test('the CLI: two npipe subscribe on a nats:// URL both print every message npipe publish sends', async (t) => {
    const topic = nats.url(t);
    if (topic === undefined) return;
    const subs = [npipe(['subscribe', topic]), npipe(['subscribe', topic, '--json'])];
    // A subscriber gets what is published once it has subscribed: "ready" until both print it.
    let ready = false;
    const readied = Promise.all([subs[0]!.waitForOutput('ready\n'), subs[1]!.waitForOutput('{"text":"ready"}\n')]).then(() => (ready = true));
    for (let round = 0; !ready && round < 100; round++) {
      assert.equal((await run(['publish', topic, 'ready'])).code, 0);
      await Promise.race([readied, delay(100)]);
    }
    await readied;
    const r = await run(['publish', topic, 'a', 'b', 'c']);
    assert.equal(r.code, 0, r.stderr);
    await Promise.all([subs[0]!.waitForOutput('a\nb\nc\n'), subs[1]!.waitForOutput('{"text":"c"}\n')]);
    for (const s of subs) s.child.kill('SIGTERM');
    const [plain, json] = await Promise.all(subs.map((s) => s.done));
    assert.equal(plain!.code, 0, plain!.stderr);
    assert.match(plain!.stdout, /^(ready\n)+a\nb\nc\n$/);
    assert.match(json!.stdout, /^(\{"text":"ready"\}\n)+\{"text":"a"\}\n\{"text":"b"\}\n\{"text":"c"\}\n$/);
    const refused = await run(['subscribe', topic, '--slow', 'disconnect']);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /ERR_NPIPE_UNSUPPORTED/);
  });
});

/**
 * Many writers, one reader, through a real FIFO, with real processes: every
 * message whole, exactly once, in each writer's order, while writers are killed
 * mid-message and the reader is killed and restarted. Figures (messages, bytes,
 * drops, peak RSS) are printed as test diagnostics.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, type TestContext } from 'node:test';
import { readFileSync } from 'node:fs';
import { mkfifo, openFifoWriter } from '../src/fifo-public.js';
import { HEADER, logSize, rng } from './fixtures/message.js';
import { npipe, requireOrSkip, start, tempDir, until, type Running } from './helpers.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}.js`, import.meta.url));
const node = (name: string, args: string[], hangMs = 60_000): Running => start(process.execPath, [fixture(name), ...args], { hangMs });

interface Received {
  messages: Array<{ writer: number; seq: number; size: number; ok: boolean }>;
  drops: Array<{ reason: string; bytes: number }>;
  end?: { messages: number; bytes: number; dropped: number; maxRssKiB: number; maxBuffered: number };
}

function parseReader(stdout: string): Received {
  const r: Received = { messages: [], drops: [] };
  for (const line of stdout.split('\n')) {
    const [kind, ...f] = line.split(' ');
    if (kind === 'msg') r.messages.push({ writer: Number(f[0]), seq: Number(f[1]), size: Number(f[2]), ok: f[3] === 'ok' });
    else if (kind === 'drop') r.drops.push({ reason: f[0]!, bytes: Number(f[1]) });
    else if (kind === 'end') r.end = { messages: Number(f[0]), bytes: Number(f[1]), dropped: Number(f[2]), maxRssKiB: Number(f[3]), maxBuffered: Number(f[4]) };
  }
  return r;
}

function report(t: TestContext, figures: Record<string, number | string>): void {
  t.diagnostic(Object.entries(figures).map(([k, v]) => `${k}=${v}`).join(' '));
}

test('16 writers (1 B to 1 MiB, and 8 MiB), two killed mid-message: every message whole, once, in order', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'fifo');
  await mkfifo(path);
  const writers = 16;
  const perWriter = 40;
  const bigWriters = 3; // each also sends one 8 MiB message
  const expected = writers * perWriter + bigWriters;
  const reader = node('reader', [path, '--expect', String(expected), '--expect-drops', '2']);
  await reader.waitForOutput('ready');
  const partials = [100, 101].map((w) => node('partial', [path, String(w)]));
  const runs = Array.from({ length: writers }, (_, w) =>
    node('writer', [path, String(w), String(perWriter), String(1000 + w), ...(w < bigWriters ? ['--big', '1'] : [])]),
  );
  // Kill the two mid-message writers once their first half is in the pipe.
  await Promise.all(partials.map((p) => p.waitForOutput('half')));
  for (const p of partials) p.child.kill('SIGKILL');
  const done = await Promise.all(runs.map((r) => r.done));
  for (const d of done) assert.equal(d.code, 0, d.stderr);
  const result = await reader.done;
  assert.equal(result.code, 0, result.stderr);
  const r = parseReader(result.stdout);

  assert.equal(r.messages.filter((m) => !m.ok).length, 0, 'no torn or mixed message');
  assert.equal(r.messages.length, expected);
  for (let w = 0; w < writers; w++) {
    const seqs = r.messages.filter((m) => m.writer === w).map((m) => m.seq);
    const count = perWriter + (w < bigWriters ? 1 : 0);
    assert.deepEqual(seqs, Array.from({ length: count }, (_, i) => i), `writer ${w}: each message once, in order`);
  }
  assert.ok(!r.messages.some((m) => m.writer >= 100), 'nothing from the killed writers was delivered');
  assert.equal(r.drops.filter((d) => d.reason === 'writer-died').length, 2, 'both partial messages dropped and reported');
  const writerRss = Math.max(...done.map((d) => Number(d.stdout.trim().split(' ')[2])));
  report(t, {
    messages: r.messages.length,
    bytes: r.end!.bytes,
    partialsDropped: r.drops.length,
    droppedBytes: r.drops.reduce((n, d) => n + d.bytes, 0),
    readerPeakRssMiB: (r.end!.maxRssKiB / 1024).toFixed(1),
    writerPeakRssMiB: (writerRss / 1024).toFixed(1),
  });
});

/** Bytes a message of `n` bytes takes in the pipe as `frames` packets (docs/PROTOCOL.md, PIPE_BUF 4096). */
function framedSize(n: number): number {
  if (n <= 4096 - 8) return n + 8;
  return n + 16 + 8 * Math.ceil((n - (4096 - 16)) / (4096 - 8));
}

/** The bytes process `pid` has read (/proc/PID/io rchar: read(2) and the like, on any fd). */
function bytesRead(pid: number): number {
  return Number(/^rchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))![1]);
}

test('the reader killed and restarted mid-run: nothing torn or twice; only what the dead reader held is lost', async (t) => {
  if (!requireOrSkip(t, process.platform === 'linux', 'counting what the dead reader read needs Linux /proc/PID/io')) return;
  const dir = tempDir(t);
  const path = join(dir, 'fifo');
  await mkfifo(path);
  const writers = 8;
  const perWriter = 400;
  const first = node('reader', [path]);
  await first.waitForOutput('ready');
  const pid = first.child.pid!;
  // From here on the reader reads only the FIFO (its modules are loaded).
  const readBefore = bytesRead(pid);
  const runs = Array.from({ length: writers }, (_, w) => node('writer', [path, String(w), String(perWriter), String(2000 + w), '--wait']));
  // Every writer has started (its first message read) before the freeze: a writer that
  // started late would otherwise let the others finish first (seen once under load).
  for (let w = 0; w < writers; w++) await first.waitForOutput(`msg ${w} 0 `);
  // Freeze the reader, let the writers fill the pipe (each then waits in a write), and
  // count what the reader took out of the FIFO; then kill it.
  first.child.kill('SIGSTOP');
  const probe = await openFifoWriter(path, { timeout: 10_000 });
  t.after(() => probe.close());
  // (A pipe is full once its page slots are used: then it holds over half its size.)
  await until(() => probe.bytesInPipe() > probe.getPipeSize() / 2, 'the writers to fill the pipe');
  const taken = bytesRead(pid) - readBefore;
  assert.ok(runs.every((r) => r.child.exitCode === null), 'every writer is still sending: each is cut off by the reader\'s death');
  first.child.kill('SIGKILL');
  const a = parseReader((await first.done).stdout);
  // Each writer saw EPIPE in its pending write; with --wait it waits for the next reader.
  const second = node('reader', [path]);
  const done = await Promise.all(runs.map((r) => r.done));
  for (const d of done) assert.equal(d.code, 0, d.stderr);
  // Every writer has finished: its messages are in the pipe or read. Stop the reader once the pipe is empty.
  await until(() => probe.bytesInPipe() === 0, 'the second reader to empty the pipe', 30_000);
  second.child.kill('SIGTERM');
  const b = parseReader((await second.done).stdout);

  assert.ok(a.messages.length > 0 && b.messages.length > 0, `both readers got messages (${a.messages.length}, ${b.messages.length})`);
  const all = [...a.messages, ...b.messages];
  assert.equal(all.filter((m) => !m.ok).length, 0, 'no torn or mixed message');
  let lost = 0;
  let lostBytes = 0;
  let printedBytes = 0;
  /** Per writer with a loss: the size of its last lost message (the one the dead reader may have had in progress). */
  const lastLost: number[] = [];
  for (let w = 0; w < writers; w++) {
    const seqA = a.messages.filter((m) => m.writer === w).map((m) => m.seq);
    const seqB = b.messages.filter((m) => m.writer === w).map((m) => m.seq);
    const seqs = [...seqA, ...seqB];
    assert.equal(new Set(seqs).size, seqs.length, `writer ${w}: no message twice`);
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), `writer ${w}: in order`);
    // What is missing lies between the first reader's last message and the second's first.
    assert.deepEqual(seqA, seqA.map((_, i) => i), `writer ${w}: the first reader got a prefix`);
    const from = seqB[0] ?? perWriter;
    assert.deepEqual(seqB, Array.from({ length: perWriter - from }, (_, i) => from + i), `writer ${w}: the second reader got the rest`);
    // The writer's message sizes, as writer.js draws them.
    const random = rng(2000 + w);
    const sizes = Array.from({ length: perWriter }, () => HEADER + logSize(random, 1 << 20));
    for (let seq = 0; seq < seqA.length; seq++) printedBytes += framedSize(sizes[seq]!);
    for (let seq = seqA.length; seq < from; seq++) lostBytes += framedSize(sizes[seq]!);
    if (from > seqA.length) lastLost.push(framedSize(sizes[from - 1]!));
    lost += from - seqA.length;
  }
  report(t, {
    firstReader: a.messages.length,
    secondReader: b.messages.length,
    takenByTheDeadReader: taken,
    lostWithTheDeadReader: lost,
    lostBytes,
    printedBytes,
    orphansReported: b.drops.filter((d) => d.reason === 'orphan').length,
    dropsReported: b.drops.length,
    dropReasons: [...new Set(b.drops.map((d) => d.reason))].join('+') || 'none',
  });
  // Lost: only messages the dead reader had taken out of the pipe and not printed (its
  // buffer, its unflushed output), and messages it had in progress (docs/PROTOCOL.md,
  // "What can be lost"): one per writer at most, its last lost one, whose start it took
  // and whose tail, left in the pipe, the second reader dropped as an orphan. Those may
  // be partly outside what it took; every other lost message lies wholly inside it.
  const orphans = b.drops.filter((d) => d.reason === 'orphan').length;
  const inProgress = lastLost.sort((x, y) => y - x).slice(0, orphans).reduce((n, x) => n + x, 0);
  assert.ok(
    printedBytes + lostBytes - inProgress <= taken,
    `printed ${printedBytes} + lost ${lostBytes} bytes (${inProgress} of them in progress), but the dead reader took only ${taken}`,
  );
  // The reader's bound on what it holds: 1 MiB of whole messages, its output batch of
  // 64 messages (of at most 1 MiB each), one message in progress per writer.
  assert.ok(lost <= 64 + writers + Math.ceil((1 << 20) / HEADER), `${lost} messages lost`);
  // The second reader reports only the leftovers of messages cut by the first one's
  // death (sent again whole: abandoned or orphan) or in progress in it (orphan): at
  // most one per writer.
  assert.ok(b.drops.every((d) => d.reason === 'orphan' || d.reason === 'abandoned'), JSON.stringify(b.drops));
  assert.ok(b.drops.length <= writers, `${b.drops.length} drops`);
});

test('the reader killed and restarted mid-run, one-packet messages: exactly the bytes the dead reader took and did not print are lost, nothing else', async (t) => {
  if (!requireOrSkip(t, process.platform === 'linux', 'counting what the dead reader read needs Linux /proc/PID/io')) return;
  const dir = tempDir(t);
  const path = join(dir, 'fifo');
  await mkfifo(path);
  const writers = 4;
  const perWriter = 1500;
  // Messages of 45 B to 4 KiB: each one packet, written whole, so a reader takes whole
  // messages only (its reads take the whole pipe) and no writer has one in progress.
  const writerScript = (w: number) => `
    import { openSender } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
    const { makeMessage, logSize, rng } = await import(${JSON.stringify(new URL('./fixtures/message.js', import.meta.url).href)});
    const random = rng(${3000 + w});
    const sender = await openSender(${JSON.stringify(path)}, { codec: 'bytes', timeout: 30000, waitForReader: true });
    for (let seq = 0; seq < ${perWriter}; seq++) await sender.send(makeMessage(${w}, seq, logSize(random, 4000)));
    await sender.close();`;
  const sizesOf = (w: number) => {
    const random = rng(3000 + w);
    return Array.from({ length: perWriter }, () => HEADER + logSize(random, 4000));
  };
  const first = node('reader', [path]);
  await first.waitForOutput('ready');
  const pid = first.child.pid!;
  const readBefore = bytesRead(pid);
  const runs = Array.from({ length: writers }, (_, w) => start(process.execPath, ['--input-type=module', '-e', writerScript(w)], { hangMs: 60_000 }));
  await first.waitForOutput('msg 3 200 ');
  first.child.kill('SIGSTOP');
  const probe = await openFifoWriter(path, { timeout: 10_000 });
  t.after(() => probe.close());
  await until(() => probe.bytesInPipe() > probe.getPipeSize() / 2, 'the writers to fill the pipe');
  const taken = bytesRead(pid) - readBefore;
  assert.ok(runs.some((r) => r.child.exitCode === null), 'writers are still sending: the reader dies mid-run');
  first.child.kill('SIGKILL');
  const a = parseReader((await first.done).stdout);
  const second = node('reader', [path]);
  for (const d of await Promise.all(runs.map((r) => r.done))) assert.equal(d.code, 0, d.stderr);
  await until(() => probe.bytesInPipe() === 0, 'the second reader to empty the pipe', 30_000);
  second.child.kill('SIGTERM');
  const b = parseReader((await second.done).stdout);

  assert.equal([...a.messages, ...b.messages].filter((m) => !m.ok).length, 0, 'no torn or mixed message');
  assert.deepEqual(b.drops, [], 'nothing to drop: no message was cut');
  let printed = 0;
  let lost = 0;
  let lostMessages = 0;
  for (let w = 0; w < writers; w++) {
    const seqA = a.messages.filter((m) => m.writer === w).map((m) => m.seq);
    const seqB = b.messages.filter((m) => m.writer === w).map((m) => m.seq);
    assert.deepEqual(seqA, seqA.map((_, i) => i), `writer ${w}: the first reader got a prefix`);
    const from = seqB[0] ?? perWriter;
    assert.deepEqual(seqB, Array.from({ length: perWriter - from }, (_, i) => from + i), `writer ${w}: the second reader got all the rest`);
    const sizes = sizesOf(w);
    for (let seq = 0; seq < from; seq++) {
      if (seq < seqA.length) printed += sizes[seq]! + 8;
      else lost += sizes[seq]! + 8;
    }
    lostMessages += from - seqA.length;
  }
  report(t, { firstReader: a.messages.length, secondReader: b.messages.length, takenByTheDeadReader: taken, printedBytes: printed, lostMessages, lostBytes: lost });
  // What the dead reader took out of the pipe is exactly what it printed and what was
  // lost with it (its receiver's queue, its output not yet written): not a byte of the
  // lost messages was still in the pipe. (rchar also counts libuv's 8-byte eventfd
  // reads: a few of them, never a missing byte.)
  assert.ok(printed + lost <= taken, `printed ${printed} + lost ${lost} bytes, but the dead reader took only ${taken}: lost messages were still in the pipe`);
  assert.ok(taken - (printed + lost) <= 1024, `the dead reader took ${taken - printed - lost} bytes more than it printed and lost`);
  // And what it held is bounded: 1 MiB of messages not yet taken, one read (the pipe),
  // its output batch (64 messages of at most 4 KiB).
  assert.ok(lost <= (1 << 20) + (256 << 10) + 64 * 4096, `${lost} bytes lost`);
});

test('a writer pushing 1 GiB into a slow reader keeps both under 100 MiB of RSS', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'fifo');
  await mkfifo(path);
  const reader = node('reader', [path, '--expect', '1024', '--slow', '2'], 120_000);
  await reader.waitForOutput('ready');
  // 1024 messages of 1 MiB (with 44 bytes of checksum header each): 1 GiB.
  const script = `
    import { openSender } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
    const sender = await openSender(${JSON.stringify(path)}, { codec: 'bytes', timeout: 30000 });
    const { makeMessage } = await import(${JSON.stringify(new URL('./fixtures/message.js', import.meta.url).href)});
    const message = makeMessage(0, 0, (1 << 20) - 44);
    for (let i = 0; i < 1024; i++) await sender.send(message);
    await sender.close();
    console.log(process.resourceUsage().maxRSS);`;
  const writer = start(process.execPath, ['--input-type=module', '-e', script], { hangMs: 120_000 });
  const w = await writer.done;
  assert.equal(w.code, 0, w.stderr);
  const result = await reader.done;
  assert.equal(result.code, 0, result.stderr);
  const r = parseReader(result.stdout);
  assert.equal(r.messages.length, 1024);
  assert.ok(r.messages.every((m) => m.ok));
  const writerRss = Number(w.stdout.trim()) / 1024;
  const readerRss = r.end!.maxRssKiB / 1024;
  const buffered = r.end!.maxBuffered / 2 ** 20;
  report(t, { bytes: r.end!.bytes, writerPeakRssMiB: writerRss.toFixed(1), readerPeakRssMiB: readerRss.toFixed(1), readerMostBufferedMiB: buffered.toFixed(3) });
  assert.ok(writerRss < 100, `writer peak RSS ${writerRss} MiB`);
  // The reader's own bound, at the moment it takes a message: the message taken (1 MiB),
  // whole messages not yet taken (it stops reading once they reach 1 MiB, and each read
  // completes at most one of these 1 MiB messages, so none is left then), and one
  // message in progress (less than 1 MiB), which one read (the pipe, 64 KiB) tops up.
  assert.ok(buffered <= 2 + 1 / 16, `the reader held ${buffered} MiB`);
  // The README's promise: writer and reader peak RSS under 100 MiB.
  assert.ok(readerRss < 100, `reader peak RSS ${readerRss} MiB`);
});

test('npipe listen stays up while hundreds of short-lived npipe send processes come and go', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'fifo');
  const senders = 200;
  const listener = npipe(['listen', path, '--format', 'frames', '--count', String(senders)], { hangMs: 120_000 });
  await mkfifo(path);
  let next = 0;
  const failures: string[] = [];
  await Promise.all(
    Array.from({ length: 6 }, async () => {
      while (next < senders) {
        const i = next++;
        const r = await npipe(['send', path, '--format', 'frames', '--timeout', '20000', `sender ${i} says ${'x'.repeat(i * 50)}`], { hangMs: 60_000 }).done;
        if (r.code !== 0) failures.push(r.stderr);
      }
    }),
  );
  assert.deepEqual(failures, []);
  const result = await listener.done;
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.trim().split('\n');
  assert.equal(lines.length, senders);
  assert.deepEqual(
    lines.map((l) => Number(/^sender (\d+) says x*$/.exec(l)![1])).sort((x, y) => x - y),
    Array.from({ length: senders }, (_, i) => i),
  );
  assert.equal(result.stderr, '', 'nothing dropped');
});

test('many small messages go out in few write() calls, each within PIPE_BUF', async (t) => {
  if (!requireOrSkip(t, process.platform === 'linux', 'counting write() calls needs Linux /proc/self/io')) return;
  const dir = tempDir(t);
  const path = join(dir, 'fifo');
  await mkfifo(path);
  const count = 2000;
  // Not --count: that path reads packet by packet to leave the rest in the pipe (issue 15 #15),
  // and a reader that slow makes the sender's writes smaller; this test is about the sender.
  const listener = npipe(['listen', path, '--format', 'frames']);
  // The sender counts its own write system calls (/proc/self/io syscw) around the sends.
  const script = `
    import { readFileSync } from 'node:fs';
    import { openSender } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
    const syscw = () => Number(/syscw: (\\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))[1]);
    const sender = await openSender(${JSON.stringify(path)}, { timeout: 10000 });
    const before = syscw();
    const sends = [];
    for (let i = 0; i < ${count}; i++) sends.push(sender.send('m'.repeat(56) + String(i).padStart(8, '0')));
    await Promise.all(sends);
    const writes = syscw() - before;
    await sender.close();
    console.log(writes);`;
  const sender = await start(process.execPath, ['--input-type=module', '-e', script]).done;
  assert.equal(sender.code, 0, sender.stderr);
  await listener.waitForOutput(`${'m'.repeat(56)}${String(count - 1).padStart(8, '0')}\n`);
  listener.child.kill('SIGTERM');
  const result = await listener.done;
  assert.equal(result.stdout.split('\n').length - 1, count);
  const writes = Number(sender.stdout.trim());
  // 2000 packets of 72 bytes: 56 fit in one 4096-byte write, so 36 writes at best.
  const best = Math.ceil(count / Math.floor(4096 / 72));
  report(t, { messages: count, writeCalls: writes, fewestPossible: best });
  assert.ok(writes <= best * 2, `${writes} write() calls for ${count} messages`);
});

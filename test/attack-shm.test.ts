/**
 * Attack pass on shm:// receiveInto() lending its buffer (ring-reader.ts giveBack),
 * the streaming copy (sys/streaming-copy.ts) and malloc's thresholds: real segments,
 * real processes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { BufferTooSmallError, openSender, type DropInfo } from '../src/index.js';
import { openShmFrameReceiver } from '../src/drivers/shm/receiver.js';
import { streamingCopy } from '../src/sys/streaming-copy.js';
import { checkMessage, logSize, makeMessage, rng } from './fixtures/message.js';
import { delay, until } from './helpers.js';

function fresh(): { name: string; address: string } {
  const name = `test-${randomUUID()}`;
  return { name, address: `shm://${name}` };
}

function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7 + (i >> 8) + seed) & 0xff;
  return b;
}

describe('shm receiveInto: the lent buffer', () => {
  test('abort() gives the buffer back at once: the caller may overwrite it in the same tick, and the message still arrives whole', { timeout: 30_000 }, async () => {
    const { name, address } = fresh();
    const drops: DropInfo[] = [];
    const receiver = await openShmFrameReceiver(name, { maxMessageSize: 1 << 20, splitInto: false, onDrop: (d) => drops.push(d) });
    const sender = await openSender<Uint8Array>(address, { codec: 'bytes', ringSize: 1 << 16, timeout: 10_000 });
    try {
      await until(() => receiver.senders === 1, "the receiver to map the sender's ring");
      const message = pattern(200_000, 1);
      const sent = sender.send(message);
      const target = Buffer.alloc(256 * 1024);
      const controller = new AbortController();
      const receiving = receiver.receiveInto(target, { signal: controller.signal });
      assert.ok(target.subarray(0, 30_000).equals(message.subarray(0, 30_000)), 'the first pieces are in the receiveInto() buffer');
      controller.abort();
      // "Aborting (signal) gives it back at once" (messaging.ts): the caller's again, now.
      target.fill(0);
      await assert.rejects(receiving, { name: 'AbortError' });
      const whole = await receiver.receive();
      assert.ok(whole !== undefined);
      assert.equal(whole.length, message.length);
      let firstBad = -1;
      for (let i = 0; i < whole.length; i++) if (whole[i] !== message[i]) { firstBad = i; break; }
      assert.equal(firstBad, -1, `the message arrives whole (first wrong byte at ${firstBad})`);
      await sent;
      assert.deepEqual(drops, []);
    } finally {
      await sender.close();
      await receiver.close();
    }
  });
  test('receiveInto() with a signal aborted already rejects before it takes anything: its buffer is not written, the message arrives whole', { timeout: 30_000 }, async () => {
    const { name, address } = fresh();
    const drops: DropInfo[] = [];
    const receiver = await openShmFrameReceiver(name, { maxMessageSize: 1 << 20, splitInto: false, onDrop: (d) => drops.push(d) });
    const sender = await openSender<Uint8Array>(address, { codec: 'bytes', ringSize: 1 << 16, timeout: 10_000 });
    try {
      await until(() => receiver.senders === 1, "the receiver to map the sender's ring");
      const message = pattern(200_000, 2);
      const sent = sender.send(message);
      const target = Buffer.alloc(256 * 1024);
      const receiving = receiver.receiveInto(target, { signal: AbortSignal.abort() });
      assert.ok(target.every((b) => b === 0), 'nothing was copied into the buffer of a call that rejects at once');
      target.fill(1);
      await assert.rejects(receiving, { name: 'AbortError' });
      const whole = await receiver.receive();
      assert.ok(whole?.equals(message), 'the message arrives whole');
      await sent;
      assert.deepEqual(drops, []);
    } finally {
      await sender.close();
      await receiver.close();
    }
  });

  test('a lent buffer transferred away while the call waits: the message in it is dropped (memory) and counted, never delivered torn; the next one arrives', { timeout: 30_000 }, async () => {
    const { name, address } = fresh();
    const drops: DropInfo[] = [];
    const receiver = await openShmFrameReceiver(name, { maxMessageSize: 1 << 20, splitInto: false, onDrop: (d) => drops.push(d) });
    const sender = await openSender<Uint8Array>(address, { codec: 'bytes', ringSize: 1 << 16, timeout: 10_000 });
    try {
      await until(() => receiver.senders === 1, "the receiver to map the sender's ring");
      const cut = pattern(200_000, 3);
      const next = pattern(100, 4);
      const after = pattern(150_000, 5);
      const sent = Promise.all([sender.send(cut), sender.send(next), sender.send(after)]);
      const buffer = new ArrayBuffer(256 * 1024);
      const receiving = receiver.receiveInto(new Uint8Array(buffer));
      structuredClone(buffer, { transfer: [buffer] }); // (a misuse: the buffer is the receiver's until the call settles)
      // The call goes on, and fails on a message that cannot fit in an empty buffer: not the torn one.
      await assert.rejects(receiving, (err) => err instanceof BufferTooSmallError && err.payload.equals(next));
      assert.deepEqual(drops.map((d) => [d.reason, d.bytes]), [['memory', 200_000]]);
      const last = await receiver.receive();
      assert.ok(last?.equals(after), 'the message after it arrives whole');
      await sent;
    } finally {
      await sender.close();
      await receiver.close();
    }
  });

  test('two in-process senders, messages up to 300 KB through 64 KiB rings, receiveInto() aborted at random moments (the buffer overwritten right after abort()), receive() and tryReceive() mixed: every message whole and in order, none dropped, no buffer written after its call settled', { timeout: 110_000 }, async () => {
    const { name, address } = fresh();
    const drops: DropInfo[] = [];
    const receiver = await openShmFrameReceiver(name, { maxMessageSize: 1 << 20, splitInto: false, onDrop: (d) => drops.push(d) });
    const COUNT = 300;
    const random = rng(12345);
    const senders = await Promise.all([0, 1].map(() => openSender<Uint8Array>(address, { codec: 'bytes', ringSize: 1 << 16, timeout: 20_000 })));
    const sending = senders.map(async (s, w) => {
      const r = rng(500 + w);
      for (let i = 0; i < COUNT; i++) await s.send(makeMessage(w, i, r() < 0.5 ? 40_000 + Math.floor(r() * 260_000) : logSize(r, 300_000)));
    });
    const next = [0, 0];
    const pool = Array.from({ length: 3 }, () => ({ buf: Buffer.alloc(320 * 1024), sentinel: 0 }));
    const idleUntouched = () => {
      for (const p of pool) assert.equal(p.buf.findIndex((b) => b !== p.sentinel), -1, 'a buffer no call holds was written');
    };
    const take = (m: Buffer) => {
      const c = checkMessage(m);
      assert.ok(c.ok, `whole: writer ${c.writer} seq ${c.seq} size ${c.size} (${m.length} bytes)`);
      assert.equal(c.seq, next[c.writer], `writer ${c.writer} in order`);
      next[c.writer]!++;
    };
    let aborted = 0;
    try {
      while (next[0]! + next[1]! < 2 * COUNT) {
        idleUntouched();
        const r = random();
        if (r < 0.8) {
          const p = pool[Math.floor(random() * pool.length)]!;
          const controller = new AbortController();
          const when = Math.floor(random() * 4);
          let settled = false;
          const receiving = receiver.receiveInto(p.buf, { signal: controller.signal });
          const abort = () => {
            if (settled) return;
            controller.abort();
            // Not settled by a later turn: the call rejects, and the buffer is the caller's now.
            if (when >= 2) p.buf.fill((p.sentinel = Math.floor(random() * 256)));
          };
          if (when === 0) controller.abort();
          else if (when === 1) queueMicrotask(abort);
          else if (when === 2) setImmediate(abort);
          else setTimeout(abort, random() * 2);
          let got: number | undefined | 'aborted';
          try {
            got = await receiving;
          } catch (err) {
            assert.equal((err as Error).name, 'AbortError');
            got = 'aborted';
            aborted++;
          }
          settled = true;
          if (typeof got === 'number') take(p.buf.subarray(0, got));
          p.buf.fill((p.sentinel = Math.floor(random() * 256)));
        } else if (r < 0.9) {
          const m = await receiver.receive();
          assert.ok(m);
          take(m);
        } else {
          const m = receiver.tryReceive();
          if (m) take(m);
          else await delay(0);
        }
      }
      await Promise.all(sending);
      assert.ok(aborted > 50, `calls aborted: ${aborted}`);
      assert.deepEqual(drops, []);
      idleUntouched();
    } finally {
      for (const s of senders) await s.close();
      await receiver.close();
    }
  });
});

describe('the streaming copy: a source that overlaps its target', () => {
  test('copies as set() does (memmove), whichever way they overlap', (t) => {
    const copy = streamingCopy();
    if (!copy) {
      t.skip('no streaming copy on this machine');
      return;
    }
    for (const [to, from, length] of [[64, 0, 4096], [128, 0, 4096], [200, 0, 4096], [1, 0, 4096], [0, 64, 4096], [0, 1, 4096], [4096, 0, 4096]] as const) {
      const memory = Buffer.alloc(16384);
      for (let i = 0; i < memory.length; i++) memory[i] = (i * 7 + (i >> 8)) & 0xff;
      const expected = Buffer.from(memory);
      expected.set(expected.subarray(from, from + length), to);
      copy(memory, to, memory.subarray(from, from + length));
      assert.ok(memory.equals(expected), `target at ${to}, source at ${from}, ${length} bytes`);
    }
  });
});

/**
 * Attack pass on shm:// receiveInto() lending its buffer (ring-reader.ts giveBack),
 * the streaming copy (sys/streaming-copy.ts) and malloc's thresholds: real segments,
 * real processes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { openSender, type DropInfo } from '../src/index.js';
import { openShmFrameReceiver } from '../src/drivers/shm/receiver.js';
import { until } from './helpers.js';

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
});

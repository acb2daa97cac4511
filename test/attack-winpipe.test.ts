/**
 * Hostile peers against the Windows pipe driver (drivers/winpipe), run over a
 * Unix socket (what Node makes of a pipe name on Linux: the same libuv stream
 * code), with the key folders in a folder of this run. Each test is an attack
 * that once broke a promise: a peer with the pipe's key (this user, or with
 * allowShared any local user) making the receiver hold memory without bound.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { createFraming, type DropInfo } from '../src/framing/index.js';
import { FLAG_FIRST, FLAG_LAST, FRAMES_MAGIC } from '../src/framing/frames.js';
import { openWinPipeFrameReceiver, partialBudget } from '../src/drivers/winpipe/receiver.js';
import { openWinPipeFrameSender } from '../src/drivers/winpipe/sender.js';
import { readKeys } from '../src/drivers/winpipe/pipe-key.js';
import { tempDir, until } from './helpers.js';

const keys = mkdtempSync(join(tmpdir(), 'npipe-keys-'));
process.env.LOCALAPPDATA = join(keys, 'user');
process.env.ProgramData = join(keys, 'shared');
after(() => rmSync(keys, { recursive: true, force: true }));

const MiB = 1024 * 1024;

/** The first packet of a frames message of several packets: it announces `total` bytes, and carries one. */
function firstPacket(writerId: number, total: number): Buffer {
  const p = Buffer.alloc(17, 0x41);
  p[0] = FRAMES_MAGIC;
  p[1] = FLAG_FIRST;
  p.writeUInt16BE(1, 2);
  p.writeUInt32BE(writerId, 4);
  p.writeUInt32BE(total, 8);
  p.writeUInt32BE(0, 12);
  return p;
}

/** A whole message in one packet. */
function wholePacket(writerId: number, text: string): Buffer {
  const body = Buffer.from(text);
  const p = Buffer.alloc(8 + body.length);
  p[0] = FRAMES_MAGIC;
  p[1] = FLAG_FIRST | FLAG_LAST;
  p.writeUInt16BE(body.length, 2);
  p.writeUInt32BE(writerId, 4);
  body.copy(p, 8);
  return p;
}

/** A connection that sends the pipe's key, as an npipe writer does, then whatever the attack sends. */
async function keyed(t: TestContext, path: string): Promise<Socket> {
  const socket = createConnection(path);
  socket.on('error', () => {});
  t.after(() => socket.destroy());
  await once(socket, 'connect');
  socket.write(readKeys(path)[0]!);
  return socket;
}

async function frameReceiver(t: TestContext, maxMessageSize: number) {
  const path = join(tempDir(t), 'sock');
  const drops: DropInfo[] = [];
  const receiver = await openWinPipeFrameReceiver(path, createFraming('frames', { maxMessageSize }), { pipeKey: true, onDrop: (d) => drops.push(d) });
  t.after(() => receiver.close());
  return { path, receiver, drops };
}

describe('attacks on the Windows pipe receiver (over a Unix socket)', () => {
  test('one connection holds at most one message in progress: frames packets of 300 writer ids, each announcing 1 MiB, are dropped as memory, not kept', async (t) => {
    const { path, receiver, drops } = await frameReceiver(t, MiB);
    const socket = await keyed(t, path);
    // 300 packets of 17 bytes: before, the receiver kept 1 MiB for each writer id, up to 256 MiB for this one connection.
    socket.write(Buffer.concat([...Array.from({ length: 300 }, (_, i) => firstPacket(i + 1, MiB)), wholePacket(999, 'marker')]));
    assert.equal((await receiver.receive())!.toString(), 'marker');
    assert.ok((receiver.bufferedBytes ?? 0) <= MiB, `the receiver holds ${receiver.bufferedBytes} bytes for one connection`);
    assert.ok(drops.filter((d) => d.reason === 'memory').length >= 299, JSON.stringify(drops.slice(0, 3)));
  });

  test('all connections together hold at most max(4 x maxMessageSize, 256 MiB) of messages in progress: the connection past it is dropped as memory, a writer with whole messages is still served', async (t) => {
    const { path, receiver, drops } = await frameReceiver(t, MiB);
    const budget = partialBudget(MiB);
    assert.equal(budget, 256 * MiB);
    const count = budget / MiB + 44;
    const sockets: Socket[] = [];
    for (let i = 0; i < count; i++) {
      const socket = await keyed(t, path);
      socket.write(firstPacket(1, MiB));
      sockets.push(socket);
    }
    // Before, every connection kept its 1 MiB: 300 connections held 300 MiB, and nothing stopped 3,000.
    await until(() => drops.filter((d) => d.reason === 'memory').length >= 44, 'the connections past the budget dropped as memory');
    assert.ok((receiver.bufferedBytes ?? 0) <= budget, `the receiver holds ${receiver.bufferedBytes} bytes of incomplete messages`);
    const honest = await openWinPipeFrameSender(path, createFraming('frames', { maxMessageSize: MiB }), { pipeKey: true, timeout: 5000 });
    t.after(() => honest.close());
    await honest.send(Buffer.from('still served'));
    assert.equal((await receiver.receive())!.toString(), 'still served');
    // The hostile connections leave: their memory is given back, and a new one may start a message again.
    for (const s of sockets) s.destroy();
    await until(() => (receiver.bufferedBytes ?? 0) === 0, 'the departed connections forgotten');
  });
});

/**
 * Hostile peers against the Windows pipe driver (drivers/winpipe), run over a
 * Unix socket (what Node makes of a pipe name on Linux: the same libuv stream
 * code), with the key folders in a folder of this run. Each test is an attack
 * that once broke a promise: a peer with the pipe's key (this user, or with
 * allowShared any local user) making the receiver hold memory without bound;
 * connections without the key held in any number; a sender or client that went on
 * connecting after it was closed; a client's requests left uncounted when it left;
 * a process squatting the pipe name making a client reserve 256 MiB.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test, type TestContext } from 'node:test';
import { createFraming, type DropInfo } from '../src/framing/index.js';
import { FLAG_FIRST, FLAG_LAST, FRAMES_MAGIC } from '../src/framing/frames.js';
import { MAX_PROVING, openWinPipeFrameReceiver, partialBudget } from '../src/drivers/winpipe/receiver.js';
import { openWinPipeFrameSender } from '../src/drivers/winpipe/sender.js';
import { keyPath, readKeys } from '../src/drivers/winpipe/pipe-key.js';
import { serveFrames } from '../src/rpc/frame-server.js';
import { connectFrames } from '../src/rpc/frame-client.js';
import { WinPipeTransport } from '../src/drivers/winpipe/rpc-transport.js';
import { delay, start, tempDir, until } from './helpers.js';

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
  socket.write(readKeys(path, false)[0]!);
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

describe('attacks on the pipe key (over a Unix socket)', () => {
  test('connections that never send the key are bounded: past the limit the oldest is refused at once, not after 10 s, and a sender with the key still gets in', async (t) => {
    const path = join(tempDir(t), 'sock');
    const drops: DropInfo[] = [];
    // The limit is MAX_PROVING (1024) by default; 8 here, so that the test needs few file descriptors.
    const receiver = await openWinPipeFrameReceiver(path, createFraming('lines'), { pipeKey: true, maxProving: 8, onDrop: (d) => drops.push(d) });
    t.after(() => receiver.close());
    assert.equal(MAX_PROVING, 1024);
    const silent: Array<{ socket: Socket; closed: boolean }> = [];
    for (let i = 0; i < 20; i++) {
      const socket = createConnection(path);
      socket.on('error', () => {});
      t.after(() => socket.destroy());
      await once(socket, 'connect');
      const entry = { socket, closed: false };
      socket.on('close', () => (entry.closed = true));
      socket.resume();
      silent.push(entry);
      await until(() => drops.length >= i - 7, 'the oldest refused once more than 8 wait', 5000);
    }
    // Before, all 20 were held for PROOF_TIMEOUT_MS (10 s), and nothing bounded how many.
    await until(() => silent.slice(0, 12).every((e) => e.closed), 'the 12 oldest closed', 5000);
    assert.ok(silent.slice(12).every((e) => !e.closed), 'the 8 newest still wait for their key');
    assert.deepEqual([...new Set(drops.map((d) => d.reason))], ['refused']);
    const sender = await openWinPipeFrameSender(path, createFraming('lines'), { pipeKey: true, timeout: 5000 });
    t.after(() => sender.close());
    await sender.send(Buffer.from('with the key'));
    assert.equal((await receiver.receive())!.toString(), 'with the key');
  });
});

describe('attacks on the Windows pipe sender and client (over a Unix socket)', () => {
  test('a sender closed while it waits for the next receiver (waitForReader) stops waiting: it never connects to a receiver started later', async (t) => {
    const path = join(tempDir(t), 'sock');
    const first = await openWinPipeFrameReceiver(path, createFraming('frames'));
    const sender = await openWinPipeFrameSender(path, createFraming('frames'), { waitForReader: true, timeout: 60_000 });
    await sender.send(Buffer.from('one'));
    assert.equal((await first.receive())!.toString(), 'one');
    await first.close();
    await delay(100); // the sender has seen its receiver go and waits for the next
    await sender.close();
    let connections = 0;
    const next = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    next.listen(path);
    await once(next, 'listening');
    t.after(() => next.close());
    // The sender retried every 250 ms at most: a second is plenty for it to have come, had it still been waiting.
    await delay(1000);
    assert.equal(connections, 0, 'the closed sender connected to the next receiver');
  });

  test('a sender or a request/reply client closed while it waits for its server to come back lets its process exit', async (t) => {
    const dir = tempDir(t);
    const src = fileURLToPath(new URL('../src/', import.meta.url));
    const script = `
      const src = ${JSON.stringify(src)};
      const { createFraming } = await import(src + 'framing/index.js');
      const { openWinPipeFrameReceiver } = await import(src + 'drivers/winpipe/receiver.js');
      const { openWinPipeFrameSender } = await import(src + 'drivers/winpipe/sender.js');
      const { serveFrames } = await import(src + 'rpc/frame-server.js');
      const { connectFrames } = await import(src + 'rpc/frame-client.js');
      const { WinPipeTransport } = await import(src + 'drivers/winpipe/rpc-transport.js');
      const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
      const path = ${JSON.stringify(join(dir, 'sock'))};
      const receiver = await openWinPipeFrameReceiver(path, createFraming('frames'), { pipeKey: true });
      const sender = await openWinPipeFrameSender(path, createFraming('frames'), { pipeKey: true, waitForReader: true, timeout: 600000 });
      await receiver.close();
      await pause(100);
      await sender.close();
      const rpcPath = ${JSON.stringify(join(dir, 'rpc'))};
      const server = await serveFrames(new WinPipeTransport(), rpcPath, (request) => request, {});
      const client = await connectFrames(new WinPipeTransport(), rpcPath, { waitForServer: true });
      await client.request('a');
      await server.close();
      await pause(100);
      await client.close();
      console.log('all closed');
    `;
    // Before, the closed sender and client went on waiting (600 s, and 2^31-1 ms for waitForServer): the process never ended.
    const child = start(process.execPath, ['--input-type=module', '-e', script], { hangMs: 20_000 });
    const result = await child.done;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /all closed/);
  });
});

describe('attacks on request/reply over the Windows pipe transport (over a Unix socket)', () => {
  test('a client that leaves with 100 requests in flight is forgotten (server.clients back to 0), and each of its requests is counted as a reply dropped', async (t) => {
    const path = join(tempDir(t), 'pipe');
    let running = 0;
    const server = await serveFrames(new WinPipeTransport(), path, async (request) => {
      running++;
      await delay(300);
      running--;
      return request;
    }, {});
    t.after(() => server.close());
    const client = await connectFrames<string, string>(new WinPipeTransport(), path, {});
    const requests = Array.from({ length: 100 }, (_, i) => client.request(`r${i}`).catch((err: { code?: string }) => err.code));
    await until(() => running > 0, 'handlers running');
    await client.close();
    assert.deepEqual([...new Set(await Promise.all(requests))], ['ERR_NPIPE_CLOSED']);
    await until(() => server.clients === 0 && running === 0, 'the client forgotten, its handlers done');
    assert.equal(server.stats.requests, 100);
    // No reply reached the client (every request failed ERR_NPIPE_CLOSED): each is a reply dropped. Before, the
    // handlers stopped because their client had gone were counted nowhere: 37 dropped (one reply, 36 waiting).
    assert.equal(server.stats.repliesDropped, 100, JSON.stringify(server.stats));
  });

  test('a hostile process listening on the pipe name cannot make a client hold more than one reply in progress: 300 announced 1 MiB replies of distinct writer ids are not kept', async (t) => {
    const path = join(tempDir(t), 'pipe');
    // A squatter: it wrote the key file itself (as any process of this user, or with allowShared any local user, could on a free name).
    const file = keyPath(path, false);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${'b'.repeat(64)}\n${process.pid}\n`);
    t.after(() => rmSync(file, { force: true }));
    let attacked!: () => void;
    const sent = new Promise<void>((resolve) => (attacked = resolve));
    const squatter = createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => {
        socket.write(Buffer.of(0x06));
        socket.write(Buffer.concat(Array.from({ length: 300 }, (_, i) => firstPacket(i + 1, MiB))), () => attacked());
      });
    });
    squatter.listen(path);
    await once(squatter, 'listening');
    t.after(() => squatter.close());
    const before = process.memoryUsage().arrayBuffers;
    const client = await connectFrames<string, string>(new WinPipeTransport(), path, {});
    t.after(() => client.close());
    await sent;
    await delay(200);
    const grown = process.memoryUsage().arrayBuffers - before;
    // Before, the client's decoder reserved 1 MiB for each writer id: 256 MiB (the frames budget).
    assert.ok(grown < 32 * MiB, `the client reserved ${Math.round(grown / MiB)} MiB for the squatter's replies`);
  });
});


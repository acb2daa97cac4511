import assert from 'node:assert/strict';
import { closeSync, constants, existsSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, symlinkSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import {
  ClosedError,
  RemoteError,
  ServerGoneError,
  TimeoutError,
  connect,
  createFraming,
  openSender,
  serve,
  type ServerEvent,
} from '../src/index.js';
import { mkfifo } from '../src/fifo-public.js';
import { replyDirectories } from '../src/fifo/index.js';
import fc from 'fast-check';
import { CANCEL, decodeRpc, encodeRequest, REPLY, REQUEST } from '../src/rpc/protocol.js';
import { encodePackets } from '../src/framing/frames.js';
import { isBusyPolling } from '../src/util/busy-poll.js';
import { delay, npipe, openFds, rawRpcClient, readerOn, run, start, tempDir, until } from './helpers.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}.js`, import.meta.url));

function replyDir(): string {
  return replyDirectories().find((d) => {
    try {
      readdirSync(d);
      return true;
    } catch {
      return false;
    }
  })!;
}

/** Pids of processes whose arguments are exactly `argv`. */
function processesWith(argv: string): number[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).filter((n) => {
    try {
      return readFileSync(`/proc/${n}/cmdline`, 'utf8').replace(/\0$/, '').split('\0').join(' ') === argv;
    } catch {
      return false;
    }
  }).map(Number);
}

function replyFifosOf(pid: number): string[] {
  return readdirSync(replyDir()).filter((n) => n.startsWith(`c-${pid}-`));
}

describe('request/reply, in one process', () => {
  test('replies are matched to requests, many in flight; errors cross as RemoteError', async (t) => {
    const path = join(tempDir(t), 'srv');
    const server = await serve(path, async (req: string) => {
      if (req === 'fail') throw Object.assign(new Error('no such thing'), { code: 'E_NOTHING' });
      await delay(Math.random() * 20);
      return `re:${req}`;
    });
    t.after(() => server.close());
    const client = await connect(path);
    t.after(() => client.close());
    const asks = Array.from({ length: 200 }, (_, i) => `q${i}`);
    assert.deepEqual(await Promise.all(asks.map((q) => client.request(q))), asks.map((q) => `re:${q}`));
    const err = await client.request('fail').catch((e: unknown) => e);
    assert.ok(err instanceof RemoteError);
    assert.equal(err.code, 'ERR_NPIPE_REMOTE');
    assert.equal(err.remoteCode, 'E_NOTHING');
    assert.equal(err.message, 'no such thing');
  });

  test('a timeout or an abort cancels the request, and the handler sees its signal abort', async (t) => {
    const path = join(tempDir(t), 'srv');
    const cancelled: string[] = [];
    const server = await serve(path, (req: string, { signal }) =>
      new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => resolve('late'), 10_000);
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          cancelled.push(req);
          reject(signal.reason);
        });
      }),
    );
    t.after(() => server.close());
    const client = await connect(path);
    t.after(() => client.close());
    await assert.rejects(client.request('by-timeout', { timeout: 100 }), TimeoutError);
    const controller = new AbortController();
    const pending = client.request('by-abort', { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('user gave up')), 50);
    await assert.rejects(pending, { message: 'user gave up' });
    for (let i = 0; i < 100 && cancelled.length < 2; i++) await delay(20);
    assert.deepEqual(cancelled.sort(), ['by-abort', 'by-timeout']);
    assert.equal(server.stats.cancelled, 2);
  });

  test('no fd and no reply FIFO left behind after a client closes', async (t) => {
    const path = join(tempDir(t), 'srv');
    const server = await serve(path, (req: string) => req);
    t.after(() => server.close());
    const fds = openFds();
    for (let i = 0; i < 5; i++) {
      const client = await connect(path);
      assert.equal(await client.request('x'), 'x');
      await client.close();
      await assert.rejects(client.request('y'), ClosedError);
    }
    // The server closes a client's reply sender once it has been idle for a second.
    for (let i = 0; i < 150 && openFds() !== fds; i++) await delay(20);
    assert.equal(openFds(), fds);
    assert.deepEqual(replyFifosOf(process.pid), []);
  });

  test('no server: ERR_NPIPE_SERVER_GONE at once; with waitForServer, the request waits for one', async (t) => {
    const path = join(tempDir(t), 'srv');
    await assert.rejects(connect(path), ServerGoneError);
    let settled = false;
    const waiting = connect(path, { waitForServer: true })
      .then((c) => c.request('hi').finally(() => c.close()))
      .finally(() => (settled = true));
    // The waiting client makes the FIFO and waits on it for a reader: the path under test.
    await until(() => existsSync(path), 'the waiting client to make the FIFO');
    assert.equal(settled, false, 'it waits for a server');
    const server = await serve(path, (req: string) => `${req}!`);
    t.after(() => server.close());
    assert.equal(await waiting, 'hi!');
  });

  test('waitForServer with a timeout: connect gives up with ERR_NPIPE_TIMEOUT when no server comes in time (it waited for ever: attack on issue 19 #4)', async (t) => {
    const path = join(tempDir(t), 'srv');
    const started = Date.now();
    await assert.rejects(connect(path, { waitForServer: true, timeout: 300 }), (err: NodeJS.ErrnoException) => err.code === 'ERR_NPIPE_TIMEOUT');
    assert.ok(Date.now() - started < 10_000, 'gave up, not waited for ever');
    // A server that comes in time is found, and the timeout still bounds each request.
    const waiting = connect(path, { waitForServer: true, timeout: 5000 });
    await until(() => existsSync(path), 'the waiting client to make the FIFO');
    const server = await serve(path, (req: string) => `${req}!`);
    t.after(() => server.close());
    const client = await waiting;
    t.after(() => client.close());
    assert.equal(await client.request('hi'), 'hi!');
  });

  test('busyPoll keeps the event loop polling (never blocked) after a reply, on either side, then lets it sleep; bad values are refused', async (t) => {
    const path = join(tempDir(t), 'srv');
    const before = replyFifosOf(process.pid).length;
    for (const bad of [-1, 1.5, 2_000_000, Number.NaN, '100' as unknown as number]) {
      await assert.rejects(serve(path, (req: string) => req, { busyPoll: bad }), { code: 'ERR_NPIPE_INVALID_ARG' });
      await assert.rejects(connect(path, { busyPoll: bad }), { code: 'ERR_NPIPE_INVALID_ARG' });
    }
    assert.equal(replyFifosOf(process.pid).length, before, 'a refused connect() leaves no reply FIFO');
    const pollingStops = async () => {
      for (let i = 0; i < 250 && isBusyPolling(); i++) await delay(20);
      assert.equal(isBusyPolling(), false, 'busy polling ends at its deadline');
      assert.ok(!process.getActiveResourcesInfo().includes('Immediate'), 'nothing is left to keep the process awake');
    };
    // Off by default: the process sleeps between requests.
    const plainServer = await serve(path, (req: string) => req);
    t.after(() => plainServer.close());
    const plain = await connect(path);
    t.after(() => plain.close());
    assert.equal(await plain.request('a'), 'a');
    assert.equal(isBusyPolling(), false);
    await plain.close();
    // The client's busyPoll: the loop keeps polling after the reply, and timers still run meanwhile.
    const polled = await connect(path, { busyPoll: 500_000 });
    t.after(() => polled.close());
    assert.equal(await polled.request('b'), 'b');
    assert.ok(isBusyPolling());
    assert.ok(process.getActiveResourcesInfo().includes('Immediate'));
    const timerSawPolling = await new Promise<boolean>((resolve) => setTimeout(() => resolve(isBusyPolling()), 1));
    assert.ok(timerSawPolling, 'a timer fires while the loop busy-polls: it is never blocked');
    await polled.close();
    await pollingStops();
    await plainServer.close();
    // The server's busyPoll: after sending a reply it keeps polling for the next request.
    const server = await serve(path, (req: string) => req, { busyPoll: 300_000 });
    t.after(() => server.close());
    const client = await connect(path);
    t.after(() => client.close());
    assert.equal(await client.request('c'), 'c');
    assert.ok(isBusyPolling());
    await pollingStops();
  });

  test('the reply folder is private (0700, owned by the user, not a link)', () => {
    const st = lstatSync(replyDir());
    assert.ok(st.isDirectory() && !st.isSymbolicLink());
    assert.equal(st.mode & 0o777, 0o700);
    assert.equal(st.uid, process.geteuid!());
  });
});

describe('the round trip\'s shortcuts (issue 18 #3) keep the protocol\'s meaning', () => {
  test('decodeRpc reuses the last reply address only when the bytes are the same: an address of the same length is decoded afresh', () => {
    const addressOf = fc.stringMatching(/^\/tmp\/npipe-0\/c-[0-9a-z-]{1,40}$/);
    fc.assert(
      fc.property(addressOf, addressOf, fc.uint8Array({ maxLength: 64 }), (named, known, payload) => {
        const frame = encodeRequest(REQUEST, 9, named, payload);
        const message = decodeRpc(frame, { bytes: Buffer.from(known, 'utf8'), text: known });
        assert.ok('replyTo' in message);
        assert.equal(message.replyTo, named);
        assert.deepEqual([...message.payload], [...payload]);
      }),
      { numRuns: 2000 },
    );
    // Same length, one byte apart: the case a length check alone would get wrong.
    const frame = encodeRequest(REQUEST, 1, '/tmp/npipe-0/c-aaaa', Buffer.from('x'));
    const message = decodeRpc(frame, { bytes: Buffer.from('/tmp/npipe-0/c-aaab'), text: '/tmp/npipe-0/c-aaab' });
    assert.ok('replyTo' in message && message.replyTo === '/tmp/npipe-0/c-aaaa');
  });

  test('a request that reuses the id of one still running takes its place: the older handler\'s signal aborts, only the newer is answered, and no handler slot is lost', async (t) => {
    const path = join(tempDir(t), 'srv');
    const aborted: string[] = [];
    const started: string[] = [];
    // Handlers that end only on their signal (or 'fast', answered at once): a slot kept by one the server can
    // no longer abort would be kept for ever.
    const server = await serve<string, string>(
      path,
      (req, { signal }) => {
        if (req === 'fast') return 'now:fast'; // answered at once, no promise
        started.push(req);
        return new Promise<string>((_, reject) => {
          signal.addEventListener('abort', () => {
            aborted.push(req);
            reject(signal.reason);
          });
        });
      },
      { concurrency: 2 },
    );
    t.after(() => server.close());
    const { endpoint, sender } = await rawRpcClient(t, path);
    const send = (type: typeof REQUEST | typeof CANCEL, id: number, payload?: string) =>
      sender.send(encodeRequest(type, id, endpoint.address, payload === undefined ? undefined : Buffer.from(payload)));
    await send(REQUEST, 7, 'slow-1');
    await until(() => started.includes('slow-1'), 'slow-1 started');
    // Answered at once under id 7: slow-1 gives way.
    await send(REQUEST, 7, 'fast');
    const first = decodeRpc((await endpoint.receiver.receive({ signal: AbortSignal.timeout(10_000) }))!);
    assert.equal(first.type, REPLY);
    assert.equal(first.payload.toString(), 'now:fast');
    await until(() => aborted.includes('slow-1'), 'slow-1 aborted by the newer request under its id');
    // Two running under one id, one after the other: the newer takes the place, the CANCEL reaches it.
    await send(REQUEST, 8, 'slow-2');
    await until(() => started.includes('slow-2'), 'slow-2 started');
    await send(REQUEST, 8, 'slow-3');
    await until(() => aborted.includes('slow-2') && started.includes('slow-3'), 'slow-2 gave way to slow-3');
    await send(CANCEL, 8);
    await until(() => aborted.includes('slow-3'), 'the CANCEL of id 8 reached slow-3');
    assert.deepEqual(aborted, ['slow-1', 'slow-2', 'slow-3']);
    assert.equal(server.stats.cancelled, 3);
    assert.equal(server.stats.replies, 1);
    // Both slots are free again (concurrency 2): two more hold at once.
    await send(REQUEST, 9, 'slow-4');
    await send(REQUEST, 10, 'slow-5');
    await until(() => started.includes('slow-4') && started.includes('slow-5'), 'both slots free');
    await delay(200);
    assert.equal(endpoint.receiver.tryReceive?.(), undefined, 'no answer from a handler that gave way');
  });

  test('with the bytes codec, the handler\'s request and the client\'s reply are plain Buffers (equal to one under assert.deepStrictEqual), not views of the read', async (t) => {
    const path = join(tempDir(t), 'srv');
    const seen: Buffer[] = [];
    const server = await serve<Buffer, Buffer>(path, (req) => {
      seen.push(req);
      return Buffer.concat([Buffer.from('re:'), req]);
    }, { codec: 'bytes' });
    t.after(() => server.close());
    const client = await connect<Buffer, Buffer>(path, { codec: 'bytes', timeout: 10_000 });
    t.after(() => client.close());
    for (const payload of [Buffer.from('a'), Buffer.alloc(3000, 7), Buffer.alloc(70_000, 9)]) {
      const reply = await client.request(payload);
      assert.deepStrictEqual(reply, Buffer.concat([Buffer.from('re:'), payload]));
      assert.equal(Object.getPrototypeOf(reply), Buffer.prototype);
    }
    assert.equal(seen.length, 3);
    for (const req of seen) assert.equal(Object.getPrototypeOf(req), Buffer.prototype);
    assert.deepStrictEqual(seen[0], Buffer.from('a'));
  });

  test('with nothing waiting, a request starts at once; with the one handler busy, requests wait their turn in order', async (t) => {
    const path = join(tempDir(t), 'srv');
    const held: Array<() => void> = [];
    const server = await serve<string, string>(path, (req) => (req.startsWith('hold') ? new Promise<string>((resolve) => held.push(() => resolve(`re:${req}`))) : `re:${req}`), {
      concurrency: 1,
    });
    t.after(() => server.close());
    const client = await connect(path, { timeout: 10_000 });
    t.after(() => client.close());
    assert.equal(await client.request('a'), 're:a'); // nothing waits: started at once
    const holding = client.request('hold-1');
    await until(() => held.length === 1, 'hold-1 running');
    // concurrency 1 is taken: these wait in the queue, in order, and start as it frees.
    const queued = [client.request('b'), client.request('c')];
    await delay(100);
    assert.equal(held.length, 1, 'nothing else started while the one handler was busy');
    held.shift()!();
    assert.equal(await holding, 're:hold-1');
    assert.deepEqual(await Promise.all(queued), ['re:b', 're:c']);
    assert.equal(server.stats.requests, 4);
    assert.equal(server.stats.replies, 4);
  });
  test('a handler that keeps its request (bytes codec) keeps its bytes, not the read they came in: 1-byte requests padded to 56 KiB reads each hold at most a pool slab', async (t) => {
    const path = join(tempDir(t), 'srv');
    const kept: Buffer[] = [];
    const server = await serve<Buffer, string>(
      path,
      (req) => {
        kept.push(req); // a cache, a store: what it keeps is the application's, after the handler has answered
        return 'ok';
      },
      { codec: 'bytes' },
    );
    t.after(() => server.close());
    const { endpoint } = await rawRpcClient(t, path);
    // A hostile writer on the request FIFO: each round, 14 CANCELs for a client nobody knows (ignored, free to
    // send) and one request with a 1-byte payload, written before the server reads, so that all are one read.
    const fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    t.after(() => closeSync(fd));
    const padding = encodeRequest(CANCEL, 1, `/nowhere/${'p'.repeat(3900)}`);
    const rounds = 50;
    for (let round = 1; round <= rounds; round++) {
      for (let i = 0; i < 14; i++) for (const packet of encodePackets(padding, 0x5a5a0000 + round, process.pid, 4096)) writeSync(fd, packet);
      for (const packet of encodePackets(encodeRequest(REQUEST, round, endpoint.address, Buffer.from([round])), 0x5a5b0000 + round, process.pid, 4096)) writeSync(fd, packet);
      await until(() => kept.length === round, `request ${round} handled`);
    }
    assert.deepEqual(kept.map((b) => [...b]), Array.from({ length: rounds }, (_, i) => [i + 1]));
    const held = new Set(kept.map((b) => b.buffer));
    let heldBytes = 0;
    for (const memory of held) heldBytes += memory.byteLength;
    t.diagnostic(`${rounds} kept 1-byte requests hold ${held.size} ArrayBuffers, ${heldBytes} bytes`);
    // Node's own small Buffers share pool slabs of Buffer.poolSize: no more than a copy would hold.
    for (const b of kept) assert.ok(b.buffer.byteLength <= Buffer.poolSize, `a kept 1-byte request holds ${b.buffer.byteLength} bytes`);
  });
});

describe('a server nothing can stall', () => {
  test('reply addresses outside the private reply folder are refused and logged; nothing is written there', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'srv');
    const events: ServerEvent[] = [];
    const server = await serve(path, (req: string) => req, { onEvent: (e) => events.push(e) });
    t.after(() => server.close());
    // Targets an attacker would like the server to write into.
    const victimFile = join(dir, 'victim.txt');
    writeFileSync(victimFile, 'untouched');
    const victimFifo = join(dir, 'c-1-0123456789abcdef.fifo');
    await mkfifo(victimFifo);
    const ours = replyDir();
    const linkInOurs = join(ours, `c-${process.pid}-aaaaaaaaaaaaaaaa.fifo`);
    symlinkSync(victimFifo, linkInOurs);
    t.after(() => {
      try {
        unlinkSync(linkInOurs);
      } catch {
        // gone
      }
    });
    const fileInOurs = join(ours, `c-${process.pid}-bbbbbbbbbbbbbbbb.fifo`);
    writeFileSync(fileInOurs, 'plain file');
    t.after(() => unlinkSync(fileInOurs));
    const attacks = ['/etc/passwd', victimFile, victimFifo, `${ours}/../${ours.split('/').pop()}/c-1-0123456789abcdef.fifo`, linkInOurs, fileInOurs, 'relative/c-1-0123456789abcdef.fifo'];
    const sender = await openSender<Uint8Array>(path, { codec: 'bytes', timeout: 5000 });
    for (const [i, address] of attacks.entries()) await sender.send(encodeRequest(REQUEST, i + 1, address, Buffer.from('payload')));
    await sender.close();
    for (let i = 0; i < 100 && server.stats.refused + server.stats.repliesDropped < attacks.length; i++) await delay(20);
    assert.equal(server.stats.refused, attacks.length, JSON.stringify(events));
    assert.equal(events.filter((e) => e.kind === 'refused').length, attacks.length);
    assert.equal(readFileSync(victimFile, 'utf8'), 'untouched');
    assert.equal(readFileSync(fileInOurs, 'utf8'), 'plain file');
    // And the server still serves honest clients.
    const client = await connect(path);
    assert.equal(await client.request('still here'), 'still here');
    await client.close();
  });

  test('a client that never reads its replies does not stall the server or other clients', async (t) => {
    const path = join(tempDir(t), 'srv');
    const events: ServerEvent[] = [];
    const server = await serve(path, () => 'x'.repeat(60_000), { maxQueuedReplyBytes: 256 * 1024, stuckAfter: 2000, onEvent: (e) => events.push(e) });
    t.after(() => server.close());
    // A "client" whose reply FIFO exists and is open, but is never read.
    const dir = replyDir();
    const stuck = join(dir, `c-${process.pid}-cccccccccccccccc.fifo`);
    const { openFifoReader } = await import('../src/fifo-public.js');
    await mkfifo(stuck, { mode: 0o600 });
    const idle = await openFifoReader(stuck, { create: false });
    t.after(() => {
      idle.close();
      unlinkSync(stuck);
    });
    const sender = await openSender<Uint8Array>(path, { codec: 'bytes', timeout: 5000 });
    for (let i = 1; i <= 50; i++) await sender.send(encodeRequest(REQUEST, i, stuck, Buffer.from('q')));
    await sender.close();
    await until(() => server.stats.requests === 50, 'the stuck client\'s 50 requests taken');
    const client = await connect(path);
    t.after(() => client.close());
    const replies = await Promise.all(Array.from({ length: 20 }, () => client.request('q', { timeout: 20_000 }))); // hang detection only
    assert.equal(replies.length, 20);
    // Served while the stuck client still holds its replies: not thanks to its being dropped (a server that
    // stalled until then, stuckAfter later, fails here).
    assert.equal(server.stats.repliesDropped, 0, 'the stuck client was not dropped yet');
    assert.equal(server.clients, 2);
    // The stuck client reads nothing: after stuckAfter it is dropped, with its queued replies and waiting requests.
    await until(() => events.some((e) => e.kind === 'reply-dropped' && e.client === stuck), 'the stuck client dropped');
    // Every one of its 50 requests is either a whole reply in its FIFO or counted as dropped, exactly.
    const decoder = createFraming('frames', { maxMessageSize: 1 << 20 }).createDecoder();
    let delivered = 0;
    const chunk = Buffer.alloc(1 << 16);
    for (;;) {
      let n = 0;
      try {
        n = readSync(idle.fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break;
        throw err;
      }
      if (n === 0) break;
      decoder.push(chunk.subarray(0, n), () => delivered++);
    }
    assert.ok(delivered < 50, `delivered ${delivered}`);
    // Its handlers stopped once 256 KiB of its replies were queued: the rest of its 50 requests waited.
    const ran = server.stats.replies - 20;
    assert.ok(ran >= 5 && ran < 50, `${ran} of its handlers ran`);
    // Each reply that is not whole in the FIFO is counted as dropped. Not an exact count: a sender settles
    // the sends queued together as one, so a reply whole in the pipe may share the failure of the next one.
    await until(() => server.stats.repliesDropped >= 50 - delivered, `${50 - delivered} replies dropped (got ${server.stats.repliesDropped})`);
    assert.ok(server.stats.repliesDropped <= 50);
    assert.equal(await client.request('after'), 'x'.repeat(60_000));
  });

  test('a request over the server\'s size limit never reaches a handler, is reported, and fails with ERR_NPIPE_FRAME_TOO_LARGE', async (t) => {
    const path = join(tempDir(t), 'srv');
    const events: ServerEvent[] = [];
    let handled = 0;
    const server = await serve(path, (req: string) => {
      handled++;
      return req.length.toString();
    }, { maxMessageSize: 64 * 1024, onEvent: (e) => events.push(e) });
    t.after(() => server.close());
    const big = await connect(path, { maxMessageSize: 4 * 1024 * 1024 });
    t.after(() => big.close());
    await assert.rejects(big.request('x'.repeat(1024 * 1024)), { code: 'ERR_NPIPE_FRAME_TOO_LARGE' });
    assert.equal(handled, 0);
    // The SIZE before it was answered; the request itself follows it into the pipe and is dropped unread.
    await until(() => events.some((e) => e.kind === 'frame-dropped' && /too-large/.test(e.reason)), 'the frame-dropped event');
    // A client with the same limit is told before anything is sent.
    const small = await connect(path, { maxMessageSize: 64 * 1024 });
    t.after(() => small.close());
    await assert.rejects(small.request('x'.repeat(100 * 1024)), { code: 'ERR_NPIPE_FRAME_TOO_LARGE' });
    assert.equal(await small.request('ok'), '2');
  });

  test('a handler error too long for the client is cut to fit, never dropped by the client\'s reader: the request fails at once, not at its timeout', async (t) => {
    const path = join(tempDir(t), 'srv');
    const server = await serve(path, () => {
      throw Object.assign(new Error('e'.repeat(2_000_000)), { code: 'E_LONG' });
    });
    t.after(() => server.close());
    const client = await connect(path, { maxMessageSize: 64 * 1024 });
    t.after(() => client.close());
    await assert.rejects(client.request('x', { timeout: 60_000 }), (err: unknown) => {
      assert.ok(err instanceof RemoteError);
      assert.equal(err.remoteCode, 'E_LONG');
      assert.match(err.message, /^e+ \[cut\]$/);
      assert.ok(err.message.length < 64 * 1024);
      return true;
    });
  });

  test('the concurrency limit holds', async (t) => {
    const path = join(tempDir(t), 'srv');
    let running = 0;
    let most = 0;
    const server = await serve(path, async (req: string) => {
      most = Math.max(most, ++running);
      await delay(20);
      running--;
      return req;
    }, { concurrency: 3 });
    t.after(() => server.close());
    const client = await connect(path);
    t.after(() => client.close());
    await Promise.all(Array.from({ length: 30 }, (_, i) => client.request(String(i))));
    assert.equal(most, 3);
  });
});


describe('request/reply between processes', () => {
  test('64 client processes x 1000 requests: every reply matched to its request', async (t) => {
    const path = join(tempDir(t), 'srv');
    const server = npipe(['serve', path, '--echo', '--concurrency', '64'], { hangMs: 180_000 });
    await readerOn(path);
    const clients = 64;
    const perClient = 1000;
    const runs = Array.from({ length: clients }, (_, i) =>
      start(process.execPath, [fixture('rpc-client'), path, String(perClient), '8', String(i + 1)], { hangMs: 180_000 }),
    );
    const results = await Promise.all(runs.map((r) => r.done));
    const rss = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.child.pid}/status`, 'utf8'))?.[1];
    server.child.kill('SIGTERM');
    const served = await server.done;
    assert.equal(served.code, 0, served.stderr);
    let ok = 0;
    let wrong = 0;
    const latencies: number[] = [];
    for (const r of results) {
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { ok: number; wrong: number; latencies: number[] };
      ok += out.ok;
      wrong += out.wrong;
      latencies.push(...out.latencies);
    }
    latencies.sort((a, b) => a - b);
    t.diagnostic(
      `requests=${ok + wrong} wrong=${wrong} p50=${latencies[Math.floor(latencies.length / 2)]!.toFixed(0)}us ` +
        `p99=${latencies[Math.floor(latencies.length * 0.99)]!.toFixed(0)}us serverPeakRssMiB=${(Number(rss) / 1024).toFixed(1)}`,
    );
    assert.equal(wrong, 0);
    assert.equal(ok, clients * perClient);
    for (const r of runs) assert.deepEqual(replyFifosOf(r.child.pid!), [], 'each client removed its reply FIFO');
  });

  test('a client killed mid-request: the server carries on, and its leftover reply FIFO is removed by the next client', async (t) => {
    const path = join(tempDir(t), 'srv');
    const events: ServerEvent[] = [];
    const server = await serve(path, async (req: string, { signal }) => {
      if (req === 'slow') await new Promise((resolve) => { const timer = setTimeout(resolve, 500); signal.addEventListener('abort', () => { clearTimeout(timer); resolve(undefined); }); });
      return req;
    }, { onEvent: (e) => events.push(e) });
    t.after(() => server.close());
    const victim = start(process.execPath, [fixture('rpc-client'), path, '0', '1', '1', '--slow']);
    await victim.waitForOutput('sent');
    const pid = victim.child.pid!;
    assert.equal(replyFifosOf(pid).length, 1);
    victim.child.kill('SIGKILL');
    await victim.done;
    assert.equal(replyFifosOf(pid).length, 1, 'SIGKILL left it behind');
    const client = await connect(path); // cleans up what dead clients left
    assert.deepEqual(replyFifosOf(pid), []);
    assert.equal(await client.request('next'), 'next');
    await client.close();
    for (let i = 0; i < 100 && server.stats.repliesDropped === 0; i++) await delay(20);
    assert.equal(server.stats.repliesDropped, 1, 'the reply to the dead client was dropped and counted');
    const second = start(process.execPath, [fixture('rpc-client'), path, '0', '1', '1', '--slow']);
    await second.waitForOutput('sent');
    second.child.kill('SIGKILL');
    await second.done;
    // No new client this time: the server, finding the client gone when it replies, removes the leftover.
    for (let i = 0; i < 100 && replyFifosOf(second.child.pid!).length > 0; i++) await delay(20);
    assert.deepEqual(replyFifosOf(second.child.pid!), []);
  });

  test('the server killed: pending requests fail with ERR_NPIPE_SERVER_GONE; a restarted server serves new ones', async (t) => {
    const path = join(tempDir(t), 'srv');
    await mkfifo(path);
    const first = npipe(['serve', path, '--exec', 'sleep 10.347']);
    await readerOn(path);
    const client = await connect(path, { waitForServer: true });
    t.after(() => client.close());
    const pending = client.request('never answered');
    // The request reached the server: its command runs (it outlives a server killed with SIGKILL: ended below).
    let running: number[] = [];
    await until(() => (running = processesWith('sleep 10.347')).length === 1, 'the server running the request');
    t.after(() => running.forEach((pid) => process.kill(pid, 'SIGKILL')));
    first.child.kill('SIGKILL');
    await first.done;
    await assert.rejects(pending, ServerGoneError);
    const second = npipe(['serve', path, '--echo']);
    t.after(() => second.child.kill('SIGTERM'));
    assert.equal(await client.request('again', { timeout: 20_000 }), 'again');
  });
});

describe('npipe serve / npipe request', () => {
  test('--exec runs the command per request; nonzero exit is ERR_NPIPE_REMOTE; --concurrency holds', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'srv');
    const marks = join(dir, 'running');
    mkdirSync(marks);
    const script = `read x; touch ${marks}/$$; n=$(ls ${marks} | wc -l); sleep 0.2; rm ${marks}/$$; case "$x" in fail*) echo "bad input: $x" >&2; exit 3;; esac; echo "$n $x" | tr a-z A-Z`;
    const server = npipe(['serve', path, '--exec', script, '--concurrency', '2']);
    await readerOn(path);
    const replies = await Promise.all(Array.from({ length: 6 }, (_, i) => run(['request', path, `hello${i}`, '--timeout', '20000'])));
    for (const r of replies) assert.equal(r.code, 0, r.stderr);
    const running = replies.map((r) => Number(r.stdout.split(' ')[0]));
    assert.ok(running.every((n) => n >= 1 && n <= 2), `at most 2 at once: ${running}`);
    assert.ok(running.includes(2), 'two did run at once');
    assert.deepEqual(replies.map((r) => r.stdout.split(' ')[1]).sort(), Array.from({ length: 6 }, (_, i) => `HELLO${i}\n`));
    const failed = await run(['request', path, 'fail me', '--timeout', '20000']);
    assert.equal(failed.code, 1);
    assert.equal(failed.stderr.match(/ERR_NPIPE_REMOTE/g)?.length, 1, failed.stderr);
    assert.match(failed.stderr, /status 3: bad input: fail me/);
    server.child.kill('SIGTERM');
    assert.equal((await server.done).code, 0);
  });

  test('--echo answers with the request; no server is exit 3; a timeout is exit 3', async (t) => {
    const path = join(tempDir(t), 'srv');
    assert.equal((await run(['request', path, 'anyone?'])).code, 3);
    const server = npipe(['serve', path, '--echo', '--busy-poll', '200']);
    await readerOn(path);
    const r = await run(['request', path, 'ping']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'ping\n');
    server.child.kill('SIGTERM');
    assert.equal((await server.done).code, 0);
    const slow = npipe(['serve', path, '--exec', 'sleep 5']);
    await readerOn(path);
    const timedOut = await run(['request', path, 'x', '--timeout', '200']);
    assert.equal(timedOut.code, 3);
    assert.match(timedOut.stderr, /ERR_NPIPE_TIMEOUT/);
    slow.child.kill('SIGTERM');
    await slow.done;
  });

  test('usage errors exit 2', async () => {
    assert.equal((await run(['serve', '/tmp/x'])).code, 2);
    assert.equal((await run(['serve', '/tmp/x', '--echo', '--exec', 'cat'])).code, 2);
    assert.equal((await run(['request'])).code, 2);
    assert.equal((await run(['serve', '/tmp/x', '--echo', '--busy-poll', 'fast'])).code, 2);
    const tooLong = await run(['serve', '/tmp/x', '--echo', '--busy-poll', '5000000']);
    assert.equal(tooLong.code, 2);
    assert.match(tooLong.stderr, /busyPoll must be a whole number of microseconds from 0 to 1000000/);
  });
});

/**
 * Request/reply under hostile clients and faults (issue 15 #1, #2, #7, #8, #13, #20).
 * Real FIFOs, real `npipe` processes; exact counts where the bounds make them knowable.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, constants as fsConstants, existsSync, openSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { FrameTooLargeError, connect, serve, type ServerEvent } from '../src/index.js';
import { mkfifo } from '../src/fifo-public.js';
import { replyDirectories } from '../src/fifo/index.js';
import { FifoTransport } from '../src/drivers/fifo/reply-transport.js';
import { REQUEST_COST } from '../src/rpc/limits.js';
import { CANCEL, ERROR, LIMITED_REQUEST, REQUEST, decodeError, decodeRpc, encodeRequest } from '../src/rpc/protocol.js';
import type { ReplyEndpoint } from '../src/transport/types.js';
import { npipe, rawRpcClient, readerOn, requireReachableByOthers, run, start, tempDir, until } from './helpers.js';

/** A handler that holds every request until the test lets it go (or the request is cancelled). */
function gate() {
  const handled: string[] = [];
  const waiting: Array<() => void> = [];
  return {
    handled,
    handler: (req: string, { signal }: { signal: AbortSignal }) =>
      new Promise<string>((resolve, reject) => {
        handled.push(req);
        const release = () => resolve(`re:${req}`);
        waiting.push(release);
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      }),
    /** Lets the oldest held request finish. */
    release: () => waiting.shift()?.(),
    get held() {
      return waiting.length;
    },
  };
}

/** Reads `count` frames from a reply endpoint and returns the error codes of those that are ERRORs (and REPLY ids as 'reply'). */
async function readReplies(endpoint: ReplyEndpoint, count: number): Promise<Array<{ id: number; code: string }>> {
  const out: Array<{ id: number; code: string }> = [];
  while (out.length < count) {
    const frame = await endpoint.receiver.receive({ signal: AbortSignal.timeout(20_000) });
    assert.ok(frame, 'the reply stream ended early');
    const m = decodeRpc(frame);
    out.push({ id: m.id, code: m.type === ERROR ? decodeError(m.payload).code : 'reply' });
  }
  return out;
}

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

/** Pids of processes whose arguments are exactly `argv` (e.g. "sleep 20.158"; not the shells whose script mentions it). */
function processesWith(argv: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0$/, '').split('\0').join(' ') === argv) pids.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

describe('#15.1 - a bounded, fair server', () => {
  test('#15.1 - empty requests count: past maxWaitingBytes each one gets ERR_NPIPE_BUSY, exact counts', async (t) => {
    const path = join(tempDir(t), 'srv');
    const g = gate();
    const server = await serve(path, g.handler, { concurrency: 1, maxWaitingBytes: 100 * REQUEST_COST });
    t.after(() => server.close());
    const { endpoint, sender } = await rawRpcClient(t, path);
    for (let id = 1; id <= 1000; id++) void sender.send(encodeRequest(REQUEST, id, endpoint.address));
    // One runs, 100 wait (100 x REQUEST_COST), the other 899 are told ERR_NPIPE_BUSY, in order.
    const replies = await readReplies(endpoint, 899);
    assert.deepEqual(replies, Array.from({ length: 899 }, (_, i) => ({ id: 102 + i, code: 'ERR_NPIPE_BUSY' })));
    assert.equal(server.stats.requests, 1000);
    assert.equal(server.stats.errors, 899);
    assert.equal(g.handled.length, 1);
  });

  test('#15.1 - the total bound holds across reply addresses: maxTotalWaitingBytes', async (t) => {
    const path = join(tempDir(t), 'srv');
    const g = gate();
    const server = await serve(path, g.handler, { concurrency: 1, maxTotalWaitingBytes: 50 * REQUEST_COST });
    t.after(() => server.close());
    const transport = new FifoTransport();
    const endpoints = await Promise.all(Array.from({ length: 10 }, () => transport.createReplyEndpoint()));
    t.after(() => Promise.all(endpoints.map((e) => e.close())));
    const sender = await transport.connect(path);
    t.after(() => sender.close());
    for (let id = 1; id <= 20; id++) for (const e of endpoints) void sender.send(encodeRequest(REQUEST, id, e.address));
    await sender.close();
    // 200 requests: 1 running, 50 waiting, 149 refused with ERR_NPIPE_BUSY, whatever address they named.
    await until(() => server.stats.requests === 200, 'all 200 requests taken');
    assert.equal(server.stats.errors, 149);
    let busy = 0;
    for (const e of endpoints) {
      for (let f = e.receiver.tryReceive?.(); f; f = e.receiver.tryReceive?.()) if (decodeError(decodeRpc(f).payload).code === 'ERR_NPIPE_BUSY') busy++;
    }
    await until(() => {
      for (const e of endpoints) for (let f = e.receiver.tryReceive?.(); f; f = e.receiver.tryReceive?.()) busy++;
      return busy === 149;
    }, '149 ERR_NPIPE_BUSY replies');
    assert.equal(g.handled.length, 1);
  });

  test('#15.1 - a reply address is checked before its request is queued: invented ones never reach a handler', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'srv');
    const g = gate();
    const events: ServerEvent[] = [];
    const server = await serve(path, g.handler, { concurrency: 1, onEvent: (e) => events.push(e) });
    t.after(() => server.close());
    const ours = replyDirectories().find((d) => existsSync(d))!;
    const noReader = join(ours, `c-${process.pid}-dddddddddddddddd.fifo`);
    await mkfifo(noReader, { mode: 0o600 });
    t.after(() => rmSync(noReader, { force: true }));
    const elsewhere = join(dir, 'c-1-0123456789abcdef.fifo');
    await mkfifo(elsewhere);
    const invented = [
      ...Array.from({ length: 500 }, (_, i) => join(ours, `c-${process.pid}-${i.toString(16).padStart(16, '0')}.fifo`)), // no such FIFO
      noReader, // a FIFO nobody reads
      elsewhere, // outside the reply folders
      '/etc/passwd',
      'relative/c-1-0123456789abcdef.fifo',
    ];
    const transport = new FifoTransport();
    const sender = await transport.connect(path);
    for (const [i, address] of invented.entries()) void sender.send(encodeRequest(REQUEST, i + 1, address, Buffer.from('x')));
    await sender.close();
    await until(() => server.stats.refused + server.stats.repliesDropped === invented.length, 'every invented address dropped');
    assert.equal(server.stats.refused, 3, 'outside the folders, not a FIFO, not a path');
    assert.equal(server.stats.repliesDropped, 501, 'no FIFO, or nobody reading it: a client that is gone');
    assert.equal(server.stats.requests, 1, 'only the one whose FIFO exists got as far as the queue (and was dropped when no reader was found)');
    assert.deepEqual(g.handled, [], 'no handler ran for an invented address');
    assert.equal(server.clients, 0, 'nothing is kept for them');
    assert.ok(events.length <= 3 * 21, 'events are rate-limited');
    // An honest client is served at once.
    const client = await connect(path);
    t.after(() => client.close());
    const reply = client.request('honest');
    await until(() => g.handled.length === 1, 'the honest request reaches its handler');
    g.release();
    assert.equal(await reply, 're:honest');
  });

  test('#15.1 - round-robin across clients: a client with many waiting requests does not delay another by more than one turn', async (t) => {
    const path = join(tempDir(t), 'srv');
    const g = gate();
    const server = await serve(path, g.handler, { concurrency: 1 });
    t.after(() => server.close());
    const a = await connect(path);
    const b = await connect(path);
    t.after(() => Promise.all([a.close(), b.close()]));
    const aReplies = Array.from({ length: 6 }, (_, i) => a.request(`a${i}`));
    await until(() => g.handled.length === 1 && server.stats.requests === 6, 'a0 running, a1-a5 waiting');
    const bReply = b.request('b0');
    await until(() => server.stats.requests === 7, 'b0 waiting');
    for (let i = 0; i < 7; i++) {
      await until(() => g.held === 1, 'one handler holding');
      g.release();
    }
    await Promise.all([...aReplies, bReply]);
    // a0 was running and a1 first in line when b0 came: b0 is next after a1, before a2.
    assert.deepEqual(g.handled, ['a0', 'a1', 'b0', 'a2', 'a3', 'a4', 'a5']);
  });

  test('#15.1 - a request cancelled before its handler starts leaves the queue: its handler never runs', async (t) => {
    const path = join(tempDir(t), 'srv');
    const g = gate();
    const server = await serve(path, g.handler, { concurrency: 1 });
    t.after(() => server.close());
    const client = await connect(path);
    t.after(() => client.close());
    const first = client.request('first');
    await until(() => g.handled.length === 1, 'first running');
    await assert.rejects(client.request('second', { timeout: 100 }), { code: 'ERR_NPIPE_TIMEOUT' });
    await until(() => server.stats.cancelled === 1, 'the cancel taken');
    const third = client.request('third');
    await until(() => server.stats.requests === 3, 'third waiting');
    g.release();
    assert.equal(await first, 're:first');
    await until(() => g.held === 1, 'third running');
    g.release();
    assert.equal(await third, 're:third');
    assert.deepEqual(g.handled, ['first', 'third']);
  });

  test('#15.1 - 600,000 empty requests to npipe serve --exec "sleep 30" -c 1: ERR_NPIPE_BUSY, memory bounded', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'srv');
    const server = npipe(['serve', path, '--exec', 'sleep 30', '-c', '1', '--max-size', '2000'], { hangMs: 120_000 });
    t.after(() => server.child.kill('SIGTERM'));
    await readerOn(path);
    const before = rssKiB(server.child.pid!);
    const transport = new FifoTransport();
    const flood = await transport.createReplyEndpoint();
    const marker = await transport.createReplyEndpoint();
    t.after(() => Promise.all([flood.close(), marker.close()]));
    const sender = await transport.connect(path);
    let busy = 0;
    const reader = (async () => {
      for (;;) {
        const f = await flood.receiver.receive();
        if (!f) return;
        if (decodeError(decodeRpc(f).payload).code === 'ERR_NPIPE_BUSY') busy++;
      }
    })();
    let peak = before;
    const n = 600_000;
    for (let id = 1; id <= n; id++) {
      const sent = sender.send(encodeRequest(REQUEST, id, flood.address));
      if (id % 20_000 === 0) {
        await sent;
        peak = Math.max(peak, rssKiB(server.child.pid!));
      }
    }
    // Last, from the same writer (so taken after all the others): a request over --max-size, answered at once.
    await sender.send(encodeRequest(REQUEST, 1, marker.address, Buffer.alloc(3000)));
    await sender.close();
    // RSS sampled until the marker's answer comes: every request before it has been taken by then.
    let answer: Buffer | undefined;
    const answered = marker.receiver.receive().then((f) => (answer = f));
    await until(() => {
      peak = Math.max(peak, rssKiB(server.child.pid!));
      return answer !== undefined;
    }, 'the marker request\'s answer', 60_000);
    await answered;
    assert.equal(decodeError(decodeRpc(answer!).payload).code, 'ERR_NPIPE_FRAME_TOO_LARGE');
    const after = rssKiB(server.child.pid!);
    t.diagnostic(`server RSS before ${(before / 1024).toFixed(1)} MiB, peak ${(peak / 1024).toFixed(1)} MiB, after ${(after / 1024).toFixed(1)} MiB; ERR_NPIPE_BUSY replies read so far: ${busy}`);
    assert.ok(busy > 0, 'ERR_NPIPE_BUSY replies');
    assert.ok(peak - before < 64 * 1024, `RSS grew by ${((peak - before) / 1024).toFixed(1)} MiB`);
    server.child.kill('SIGTERM');
    assert.equal((await server.done).code, 0);
    await flood.close();
    await reader;
  });
});

describe('#15.2 - size limits over FIFOs fail, never hang', () => {
  test('#15.2 - a reply over the client\'s limit is ERR_NPIPE_FRAME_TOO_LARGE on the client', async (t) => {
    const path = join(tempDir(t), 'srv');
    const server = await serve(path, () => 'x'.repeat(2_000_000), { maxMessageSize: 4_000_000 });
    t.after(() => server.close());
    const client = await connect(path); // 1 MiB
    t.after(() => client.close());
    const err = await client.request('hi', { timeout: 10_000 }).catch((e: unknown) => e);
    assert.ok(err instanceof FrameTooLargeError, String(err));
    assert.equal(err.code, 'ERR_NPIPE_FRAME_TOO_LARGE');
    assert.equal(err.limit, 1024 * 1024);
  });

  test('#15.2 - a reply over the server\'s own limit is ERR_NPIPE_FRAME_TOO_LARGE on the client', async (t) => {
    const path = join(tempDir(t), 'srv');
    const server = await serve(path, () => 'x'.repeat(5000), { maxMessageSize: 1000 });
    t.after(() => server.close());
    const client = await connect(path);
    t.after(() => client.close());
    await assert.rejects(client.request('hi', { timeout: 10_000 }), { code: 'ERR_NPIPE_FRAME_TOO_LARGE' });
  });

  test('#15.2 - a request over the server\'s limit is ERR_NPIPE_FRAME_TOO_LARGE: several packets, one packet, and an old REQUEST', async (t) => {
    const path = join(tempDir(t), 'srv');
    let handled = 0;
    const server = await serve(path, (r: string) => {
      handled++;
      return r;
    }, { maxMessageSize: 1000 });
    t.after(() => server.close());
    const client = await connect(path);
    t.after(() => client.close());
    for (const size of [5000, 2000, 990]) {
      const err = await client.request('x'.repeat(size), { timeout: 10_000 }).catch((e: unknown) => e);
      assert.ok(err instanceof FrameTooLargeError, `${size}: ${String(err)}`);
    }
    // A client that sends no SIZE (type 01): the frame arrived whole, so its id is known.
    const { endpoint, sender } = await rawRpcClient(t, path);
    await sender.send(encodeRequest(REQUEST, 7, endpoint.address, Buffer.alloc(2000)));
    assert.deepEqual(await readReplies(endpoint, 1), [{ id: 7, code: 'ERR_NPIPE_FRAME_TOO_LARGE' }]);
    assert.equal(handled, 0);
    assert.equal(await client.request('ok'), 'ok');
  });

  test('#15.2 - npipe request: reply or request over a limit exits 1 with ERR_NPIPE_FRAME_TOO_LARGE', async (t) => {
    const dir = tempDir(t);
    const big = join(dir, 'b');
    const bigServer = npipe(['serve', big, '--exec', 'head -c 2000000 /dev/zero', '--max-size', '4000000']);
    t.after(() => bigServer.child.kill('SIGTERM'));
    const small = join(dir, 's');
    const smallServer = npipe(['serve', small, '--echo', '--max-size', '1000']);
    t.after(() => smallServer.child.kill('SIGTERM'));
    await Promise.all([readerOn(big), readerOn(small)]);
    const r1 = await run(['request', big, 'hi', '--timeout', '10000']);
    assert.equal(r1.code, 1, r1.stderr);
    assert.match(r1.stderr, /^npipe request: ERR_NPIPE_FRAME_TOO_LARGE: /);
    const r2 = await run(['request', small, '--timeout', '10000'], { input: Buffer.alloc(5000) });
    assert.equal(r2.code, 1, r2.stderr);
    assert.match(r2.stderr, /^npipe request: ERR_NPIPE_FRAME_TOO_LARGE: /);
  });
});

describe('#15.7 - a reply folder taken by another user', () => {
  test('#15.7 - <tmpdir>/npipe-<uid> owned by someone else: request/reply still works, through a private folder of its own', async (t) => {
    if (process.geteuid?.() !== 0) return t.skip('needs root to make a folder owned by another user');
    const dir = tempDir(t);
    chmodSync(dir, 0o755);
    const uid = process.geteuid();
    const planted = join(dir, `npipe-${uid}`);
    mkdirSync(planted, { mode: 0o700 });
    chownSync(planted, 65534, 65534);
    assert.ok(!existsSync(`/run/user/${uid}`), 'this test needs a user without /run/user/<uid>');
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: dir };
    delete env.XDG_RUNTIME_DIR;
    const path = join(dir, 'srv');
    const server = npipe(['serve', path, '--echo'], { env });
    t.after(() => server.child.kill('SIGTERM'));
    await readerOn(path);
    const r = await run(['request', path, 'hello', '--timeout', '10000'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello\n');
    const fallback = readdirSync(dir).filter((n) => new RegExp(`^npipe-${uid}-[A-Za-z0-9]{6}$`).test(n));
    assert.equal(fallback.length, 1, 'the private folder it used instead');
    const st = lstatSync(join(dir, fallback[0]!));
    assert.equal(st.mode & 0o777, 0o700);
    assert.equal(st.uid, uid);
    // The next client reuses it; the planted folder was never written into.
    const again = await run(['request', path, 'again', '--timeout', '10000'], { env });
    assert.equal(again.stdout, 'again\n', again.stderr);
    assert.equal(readdirSync(dir).filter((n) => n.startsWith(`npipe-${uid}-`)).length, 1);
    assert.deepEqual(readdirSync(planted), []);
  });

  test('#15.7 - a reply folder that is not private (wrong mode) or not the user\'s is refused, fallback-named or not', async (t) => {
    if (process.geteuid?.() !== 0) return t.skip('needs root to make a folder owned by another user');
    const dir = tempDir(t);
    chmodSync(dir, 0o755);
    const uid = process.geteuid();
    // The server checks against <tmpdir>: this test's folder, for this process, while the test runs.
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = dir;
    t.after(() => {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    });
    const events: ServerEvent[] = [];
    const g = gate();
    const server = await serve(join(dir, 'srv'), g.handler, { onEvent: (e) => events.push(e) });
    t.after(() => server.close());
    const transport = new FifoTransport();
    const sender = await transport.connect(join(dir, 'srv'));
    t.after(() => sender.close());
    const { openFifoReader } = await import('../src/fifo-public.js');
    /** A reply FIFO with a reader, in `folder` (made 0700, then given `mode` and `owner`). */
    const replyFifo = async (folder: string, mode: number, owner: number) => {
      mkdirSync(folder, { mode: 0o700 });
      const fifo = join(folder, `c-${process.pid}-${'e'.repeat(16)}.fifo`);
      await mkfifo(fifo, { mode: 0o600 });
      const reader = await openFifoReader(fifo, { create: false });
      t.after(() => reader.close());
      chownSync(fifo, owner, owner);
      chownSync(folder, owner, owner);
      chmodSync(folder, mode);
      return fifo;
    };
    const addresses = [
      await replyFifo(join(dir, `npipe-${uid}`), 0o755, uid), // the usual folder, open to others
      await replyFifo(join(dir, `npipe-${uid}-AAAAAA`), 0o755, uid), // a fallback folder, open to others
      await replyFifo(join(dir, `npipe-${uid}-BBBBBB`), 0o700, 65534), // named as root's fallback, owned by 65534
    ];
    for (const [i, address] of addresses.entries()) await sender.send(encodeRequest(REQUEST, i + 1, address, Buffer.from('x')));
    await until(() => server.stats.refused === 3, 'three refusals');
    assert.deepEqual(events.map((e) => [e.kind, e.code, e.client]), addresses.map((a) => ['refused', 'ERR_NPIPE_UNSAFE', a]));
    assert.deepEqual(g.handled, []);
    // And the client: its own folder with the wrong mode is an error to fix (ERR_NPIPE_UNSAFE, exit 4), not a reason to go elsewhere.
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: dir };
    delete env.XDG_RUNTIME_DIR;
    const r = await run(['request', join(dir, 'srv'), 'x', '--timeout', '10000'], { env });
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /^npipe request: ERR_NPIPE_UNSAFE: /);
  });
});

describe('#15.8 - cancelling an --exec request ends its whole process group', () => {
  test('#15.8 - a cancelled request frees its slot: its command\'s children are killed', async (t) => {
    const path = join(tempDir(t), 's2');
    const marker = 'sleep 20.158';
    const server = npipe(['serve', path, '-c', '1', '--exec', `read x; if [ "$x" = slow ]; then ${marker}; fi; echo "got $x"`]);
    t.after(() => server.child.kill('SIGTERM'));
    await readerOn(path);
    const slow = await run(['request', path, 'slow', '--timeout', '500']);
    assert.equal(slow.code, 3, slow.stderr);
    const fast = await run(['request', path, 'fast', '--timeout', '5000']);
    assert.equal(fast.code, 0, fast.stderr);
    assert.equal(fast.stdout, 'got fast\n');
    assert.deepEqual(processesWith(marker), [], 'the cancelled command\'s sleep is gone');
    server.child.kill('SIGTERM');
    assert.equal((await server.done).code, 0);
  });

  test('#15.8 - npipe serve stopped with a command running: no child outlives it', async (t) => {
    const path = join(tempDir(t), 's3');
    // Longer than the hang check on `server` (30 s): a server that waits for its command to end fails.
    const marker = 'sleep 120.159';
    // The command ignores SIGTERM in its children too: the SIGKILL after the grace must end them.
    const server = npipe(['serve', path, '-c', '2', '--exec', `trap '' TERM; ${marker}; echo done`]);
    await readerOn(path);
    const client = await connect(path);
    t.after(() => client.close());
    const pending = client.request('x').catch((e: unknown) => e);
    await until(() => processesWith(marker).length === 1, 'the command running');
    server.child.kill('SIGTERM');
    assert.equal((await server.done).code, 0);
    assert.deepEqual(processesWith(marker), [], 'no child outlives the server');
    assert.equal(((await pending) as { code?: string }).code, 'ERR_NPIPE_SERVER_GONE');
  });
});

describe('#15.13 - log injection', () => {
  test('#15.13 - npipe serve escapes what a peer sent (reply address) in its log lines', async (t) => {
    const path = join(tempDir(t), 'srv');
    const server = npipe(['serve', path, '--echo']);
    t.after(() => server.child.kill('SIGTERM'));
    await readerOn(path);
    const transport = new FifoTransport();
    const sender = await transport.connect(path);
    const forged = '/tmp/x\nnpipe serve: all good \x1b[2J\x1b[31m\u202e\r';
    await sender.send(encodeRequest(REQUEST, 1, forged, Buffer.from('x')));
    await sender.send(encodeRequest(LIMITED_REQUEST, 2, `/tmp/c-1-${'\x07'.repeat(16)}.fifo`, Buffer.from('x'), 100));
    await sender.close();
    await server.waitForError('\\x07');
    server.child.kill('SIGTERM');
    const { stderr } = await server.done;
    const lines = stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 2, stderr);
    for (const line of lines) {
      assert.match(line, /^npipe serve: refused \(/);
      assert.ok(!/[\x00-\x1f\x7f-\x9f\u202e]/.test(line), JSON.stringify(line));
    }
    assert.ok(lines[0]!.includes('\\x0a') && lines[0]!.includes('\\x1b') && lines[0]!.includes('\\u{202e}'), lines[0]);
  });

  test('#15.13 - npipe request escapes the server\'s error message', async (t) => {
    const path = join(tempDir(t), 'srv');
    const server = await serve(path, () => {
      throw Object.assign(new Error('bad\nnpipe request: forged line \x1b[2J'), { code: 'E_\x1b[31mX' });
    });
    t.after(() => server.close());
    const r = await run(['request', path, 'x', '--timeout', '10000']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.split('\n').filter((l) => l !== '').length, 1, r.stderr);
    assert.ok(!/\x1b/.test(r.stderr), JSON.stringify(r.stderr));
  });
});

describe('#15.20 - a failing --exec', () => {
  test('#15.20 - the error says ERR_NPIPE_REMOTE once, and the command\'s exit status', async (t) => {
    const path = join(tempDir(t), 'srv');
    const server = npipe(['serve', path, '--exec', 'echo oops >&2; exit 3']);
    t.after(() => server.child.kill('SIGTERM'));
    await readerOn(path);
    const r = await run(['request', path, 'x', '--timeout', '10000']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.match(/ERR_NPIPE_REMOTE/g)?.length, 1, r.stderr);
    assert.match(r.stderr, /status 3\b/);
    assert.match(r.stderr, /oops/);
    // In the library: RemoteError, its remoteCode ERR_NPIPE_REMOTE, the status in its message.
    const client = await connect(path);
    t.after(() => client.close());
    const err = (await client.request('x', { timeout: 10_000 }).catch((e: unknown) => e)) as { code: string; remoteCode: string; message: string };
    assert.equal(err.code, 'ERR_NPIPE_REMOTE');
    assert.equal(err.remoteCode, 'ERR_NPIPE_REMOTE');
    assert.match(err.message, /status 3/);
  });
});


describe('hostile writers on the request FIFO', () => {
  test('bytes that are not frames do not stop the server: it reports them, reads afresh, and serves on', async (t) => {
    const path = join(tempDir(t), 'srv');
    const events: ServerEvent[] = [];
    const server = await serve(path, (r: string) => `re:${r}`, { onEvent: (e) => events.push(e) });
    t.after(() => server.close());
    const client = await connect(path);
    t.after(() => client.close());
    for (let i = 0; i < 20; i++) {
      const garbage = randomBytes(100 + i * 50);
      garbage[0] = 0x41; // never the frames magic: certainly out of format
      writeFileSync(path, garbage);
      await until(() => events.filter((e) => e.code === 'ERR_NPIPE_BAD_FRAME').length === i + 1, `garbage ${i + 1} seen`);
      assert.equal(await client.request(`q${i}`, { timeout: 10_000 }), `re:q${i}`);
    }
    let ended = false;
    void server.done.finally(() => (ended = true));
    assert.equal(ended, false);
  });

  test('well-formed frames that are not requests, and requests with odd fields, are dropped and reported', async (t) => {
    const path = join(tempDir(t), 'srv');
    const events: ServerEvent[] = [];
    let handled = 0;
    const server = await serve(path, (r: string) => {
      handled++;
      return r;
    }, { onEvent: (e) => events.push(e) });
    t.after(() => server.close());
    const transport = new FifoTransport();
    const sender = await transport.connect(path);
    t.after(() => sender.close());
    const frames = [
      Buffer.alloc(0), // empty
      Buffer.from([1, 0, 0]), // too short
      Buffer.from([9, 0, 0, 0, 1, 0, 0]), // unknown type
      Buffer.from([3, 0, 0, 0, 1, 0, 0, 0, 1]), // a REPLY sent to the server
      Buffer.from([1, 0, 0, 0, 1, 0xff, 0xff, 0x41]), // address length past the end
      Buffer.from([5, 0, 0, 0, 1, 0, 1, 0x2f]), // REQUEST+ without its u32
      encodeRequest(CANCEL, 1, '/nowhere/c-1-0123456789abcdef.fifo'), // cancel for an unknown client: ignored
      encodeRequest(REQUEST, 1, 'x'.repeat(5000)), // a long relative address: refused
    ];
    for (const f of frames) await sender.send(f);
    await until(() => events.filter((e) => e.kind === 'bad-message').length === 6 && server.stats.refused === 1, 'six bad messages and one refusal');
    assert.equal(handled, 0);
    assert.equal(server.clients, 0);
    const client = await connect(path);
    t.after(() => client.close());
    assert.equal(await client.request('fine'), 'fine');
  });
});

describe('#15.1 - fairness across users', () => {
  test('#15.1 - a root server shares its handlers across the users owning the reply folders first: one user\'s many addresses do not push another user back', async (t) => {
    if (process.geteuid?.() !== 0) return t.skip('needs root, to run a client as another user');
    if (!requireReachableByOthers(t)) return;
    const dir = tempDir(t);
    chmodSync(dir, 0o1777); // uid 65534 makes its reply folder here (its <tmpdir>)
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = dir; // this process's clients and the server's checks use <dir> too
    t.after(() => {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    });
    const path = join(dir, 'srv');
    await mkfifo(path);
    chmodSync(path, 0o622);
    const g = gate();
    const server = await serve(path, g.handler, { concurrency: 1, allowShared: true });
    t.after(() => server.close());
    // Root: 6 clients (reply addresses), 2 requests each.
    const clients = await Promise.all(Array.from({ length: 6 }, () => connect(path, { allowShared: true })));
    t.after(() => Promise.all(clients.map((c) => c.close())));
    const rootReplies = clients.flatMap((c, i) => [c.request(`root${i}a`), c.request(`root${i}b`)]);
    await until(() => server.stats.requests === 12 && g.handled.length === 1, 'root\'s 12 requests taken, one running');
    // Another user: one request.
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, TMPDIR: dir };
    const fixture = fileURLToPath(new URL('./fixtures/rpc-request-shared.js', import.meta.url));
    const other = start(process.execPath, [fixture, path, 'nobody'], { uid: 65534, gid: 65534, env });
    await until(() => server.stats.requests === 13, 'the other user\'s request taken');
    // Its reply sender open (so it may start): the server holds its reply FIFO open.
    await until(() => readdirSync('/proc/self/fd').some((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).startsWith(join(dir, 'npipe-65534'));
      } catch {
        return false;
      }
    }), 'the other user\'s reply FIFO opened');
    for (let i = 0; i < 13; i++) {
      await until(() => g.held === 1, 'one handler holding');
      g.release();
    }
    await Promise.all(rootReplies);
    const r = await other.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 're:nobody\n');
    // root0a was running; root's next turn came, then the other user's: third, not behind root's 6 addresses.
    assert.equal(g.handled.indexOf('nobody'), 2, g.handled.join(' '));
  });
});

test('serve --allow-shared and request --allow-shared use a request FIFO group and others may write to; without the flag each is exit 4 (attack pass on issue 15)', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'shared');
  await mkfifo(path, { mode: 0o600 });
  chmodSync(path, 0o622);
  const refused = await run(['serve', path, '--echo']);
  assert.equal(refused.code, 4, refused.stderr);
  assert.match(refused.stderr, /ERR_NPIPE_UNSAFE/);
  const server = npipe(['serve', path, '--echo', '--allow-shared']);
  t.after(() => server.child.kill('SIGKILL'));
  await readerOn(path);
  const plain = await run(['request', path, 'hi', '--timeout', '5000']);
  assert.equal(plain.code, 4, plain.stderr);
  const shared = await run(['request', path, 'hi', '--timeout', '5000', '--allow-shared']);
  assert.equal(shared.code, 0, shared.stderr);
  assert.equal(shared.stdout, 'hi\n');
  server.child.kill('SIGTERM');
  assert.equal((await server.done).code, 0);
});

describe('#15.1 - memory bounded across many reply addresses that read nothing', () => {
  test('#15.1 - 200 real reply FIFOs whose readers never read, flooded with empty requests: server RSS grows < 128 MiB, an honest client gets an answer or ERR_NPIPE_BUSY', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'srv');
    const server = npipe(['serve', path, '--exec', 'cat', '-c', '1'], { hangMs: 120_000 });
    t.after(() => server.child.kill('SIGTERM'));
    await readerOn(path);
    const before = rssKiB(server.child.pid!);
    // Real reply FIFOs in the user's reply folder, each held open by a reader that never reads.
    const transport = new FifoTransport();
    const probe = await transport.createReplyEndpoint();
    const folder = dirname(probe.address);
    await probe.close();
    const addresses: string[] = [];
    const readers: number[] = [];
    t.after(() => {
      for (const fd of readers) closeSync(fd);
      for (const a of addresses) rmSync(a, { force: true });
    });
    for (let i = 0; i < 200; i++) {
      const address = join(folder, `c-${process.pid}-${randomBytes(8).toString('hex')}.fifo`);
      await mkfifo(address, { mode: 0o600 });
      addresses.push(address);
      readers.push(openSync(address, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK));
    }
    const sender = await transport.connect(path);
    let peak = before;
    const started = Date.now();
    let id = 0;
    // Bounded flood (about 8 s), round-robin over the 200 addresses.
    while (Date.now() - started < 8000) {
      let sent: Promise<void> | undefined;
      for (let k = 0; k < 10_000; k++) sent = sender.send(encodeRequest(REQUEST, ++id, addresses[id % addresses.length]!));
      await sent;
      peak = Math.max(peak, rssKiB(server.child.pid!));
    }
    await sender.close();
    // An honest client, reading its own reply FIFO: an answer or ERR_NPIPE_BUSY, not a hang.
    const client = await connect(path);
    t.after(() => client.close());
    let outcome = '';
    const asked = client.request('honest', { timeout: 15_000 }).then(
      (r) => (outcome = `reply:${r}`),
      (err: { code?: string; remoteCode?: string }) => (outcome = err.remoteCode ?? err.code ?? 'no code'),
    );
    await until(() => {
      peak = Math.max(peak, rssKiB(server.child.pid!));
      return outcome !== '';
    }, 'the honest request settles', 20_000);
    await asked;
    t.diagnostic(`${id} requests; server RSS before ${(before / 1024).toFixed(1)} MiB, peak ${(peak / 1024).toFixed(1)} MiB; honest client: ${outcome}`);
    assert.ok(outcome === 'reply:honest' || outcome === 'ERR_NPIPE_BUSY', `honest client got ${outcome}`);
    assert.ok(peak - before < 128 * 1024, `RSS grew by ${((peak - before) / 1024).toFixed(1)} MiB`);
  });
});

test('#15.2 - a reply an --exec command makes over the server\'s --max-size is ERR_NPIPE_FRAME_TOO_LARGE on the client (FrameTooLargeError), not ERR_NPIPE_REMOTE (attack pass)', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'srv');
  const server = npipe(['serve', path, '--max-size', '100000', '--exec', 'head -c 200000 /dev/zero']);
  t.after(() => server.child.kill('SIGKILL'));
  await readerOn(path);
  const client = await connect<Buffer, Buffer>(path, { codec: 'bytes' });
  t.after(() => client.close());
  const err = await client.request(Buffer.from('hi'), { timeout: 10_000 }).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof FrameTooLargeError, String(err));
  const r = await run(['request', path, 'hi', '--timeout', '10000']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^npipe request: ERR_NPIPE_FRAME_TOO_LARGE: /);
});

describe('a client whose reply FIFO gets bytes that are not frames', () => {
  test("its requests fail with ERR_NPIPE_CLOSED (the reply endpoint is broken), never wait for ever, and later ones fail at once", async (t) => {
    const path = join(tempDir(t), 'srv');
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const server = await serve(path, async (request: string) => {
      if (request === 'slow') await released;
      return request;
    });
    t.after(() => server.close());
    const client = await connect(path);
    t.after(() => client.close());
    assert.equal(await client.request('first'), 'first');
    const pending = client.request('slow', { timeout: 20_000 });
    await until(() => server.stats.requests === 2, 'the slow request taken');
    // Someone with the client's uid writes garbage into its private reply FIFO.
    const fd = openSync((client as unknown as { replyAddress: string }).replyAddress, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
    writeFileSync(fd, Buffer.alloc(64, 0xff));
    closeSync(fd);
    await assert.rejects(pending, (err: { code?: string }) => err.code === 'ERR_NPIPE_CLOSED');
    release();
    await assert.rejects(client.request('after', { timeout: 20_000 }), (err: { code?: string }) => err.code === 'ERR_NPIPE_CLOSED');
  });
});

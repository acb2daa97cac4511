/**
 * npipe.serve, the Python package's request/reply server (issue 21), against
 * Node's clients (connect() and `npipe request`) and hostile peers: the same
 * rules as the Node server (docs/RPC.md) from the other language.
 */
import assert from 'node:assert/strict';
import { closeSync, constants, openSync, readFileSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { connect, RemoteError, type Client } from '../src/index.js';
import { ensureReplyDirectory, mkfifoSync } from '../src/fifo/index.js';
import { npipe, rawRpcClient, readerOn, start, tempDir, until } from './helpers.js';
import { ENV, peer } from './python-helpers.js';
import type { Running } from './helpers.js';

/** A Python server (py_peer.py serve) on a new FIFO; undefined where python3 is missing. */
async function pythonServer(t: TestContext, concurrency = 4, limit = 1 << 20, env: NodeJS.ProcessEnv = {}): Promise<{ path: string; server: Running } | undefined> {
  const path = join(tempDir(t), 'server');
  const server = peer(t, ['serve', path, String(concurrency), String(limit)], undefined, env);
  if (!server) return undefined;
  await server.waitForOutput('SERVING');
  await readerOn(path);
  return { path, server };
}

async function nodeClient(t: TestContext, path: string, options: Parameters<typeof connect>[1] = {}): Promise<Client<Buffer, Buffer>> {
  const client = (await connect(path, { codec: 'bytes', ...options })) as Client<Buffer, Buffer>;
  t.after(() => client.close());
  return client;
}

/** A REQUEST of docs/RPC.md naming any reply address: what a hostile or a home-made client sends. */
function request(address: string | Buffer, payload: string, id = 7): Buffer {
  const a = Buffer.from(address);
  const head = Buffer.alloc(7);
  head[0] = 1;
  head.writeUInt32BE(id, 1);
  head.writeUInt16BE(a.length, 5);
  return Buffer.concat([head, a, Buffer.from(payload)]);
}

/** Asks the Python server (SIGUSR2) how many requests wait, until `n` do. */
async function waiting(server: Running, n: number): Promise<void> {
  const ask = setInterval(() => server.child.kill('SIGUSR2'), 50);
  try {
    await server.waitForOutput(`WAITING ${n}\n`);
  } finally {
    clearInterval(ask);
  }
}

/** Stops the Python server with SIGTERM (its stop()) and returns its output. */
async function stoppedOutput(server: Running): Promise<string> {
  server.child.kill('SIGTERM');
  const r = await server.done;
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** Stops the Python server with SIGTERM (its stop()) and returns its stats. */
async function stopped(server: Running): Promise<Record<string, number>> {
  server.child.kill('SIGTERM');
  const r = await server.done;
  assert.equal(r.code, 0, r.stderr);
  const line = r.stdout.split('\n').find((l) => l.startsWith('STATS '));
  assert.ok(line, `no STATS line in ${r.stdout}`);
  return JSON.parse(line.slice(6)) as Record<string, number>;
}

describe('request/reply: a Node client and a Python server (npipe.serve)', () => {
  test('replies byte for byte (small, over PIPE_BUF both ways, binary), from several Node clients at once, matched by id', async (t) => {
    const s = await pythonServer(t);
    if (!s) return;
    const clients = await Promise.all([1, 2, 3].map(() => nodeClient(t, s.path)));
    const big = Buffer.alloc(200_000, 'q');
    const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    assert.deepEqual(await clients[0]!.request(Buffer.from('hello')), Buffer.from('reply:hello'));
    assert.deepEqual(await clients[0]!.request(binary), Buffer.concat([Buffer.from('reply:'), binary]));
    assert.deepEqual(await clients[1]!.request(big), Buffer.concat([Buffer.from('reply:'), big]));
    assert.deepEqual(await clients[2]!.request(Buffer.from('big::')), Buffer.alloc(300_000, 'r'));
    // 3 clients x 50 requests in flight at once: each reply reaches its own request.
    const all = await Promise.all(
      clients.flatMap((client, c) => Array.from({ length: 50 }, (_, i) => client.request(Buffer.from(`c${c}-${i}`)).then(String))),
    );
    assert.deepEqual(all, clients.flatMap((_, c) => Array.from({ length: 50 }, (_, i) => `reply:c${c}-${i}`)));
    // The handler's context names each client's own reply address.
    const who = await Promise.all(clients.map((client) => client.request(Buffer.from('whoami')).then(String)));
    assert.equal(new Set(who).size, 3);
    for (const address of who) assert.match(address, /\/c-\d+-[0-9a-f]{16}\.fifo$/);
    const stats = await stopped(s.server);
    assert.equal(stats.requests, 157);
    assert.equal(stats.replies, 157);
  });

  test('a handler error crosses the wire as RemoteError with its code; a timeout and an abort each cancel the running handler (its context.cancelled is set)', async (t) => {
    const s = await pythonServer(t);
    if (!s) return;
    const client = await nodeClient(t, s.path);
    await assert.rejects(client.request(Buffer.from('fail:now')), (err: unknown) => {
      assert.ok(err instanceof RemoteError);
      assert.equal(err.code, 'ERR_NPIPE_REMOTE');
      assert.equal(err.remoteCode, 'E_HANDLER');
      assert.equal(err.message, 'the handler failed on now');
      return true;
    });
    await assert.rejects(client.request(Buffer.from('slow:20'), { timeout: 300 }), { code: 'ERR_NPIPE_TIMEOUT' });
    await s.server.waitForOutput('CANCELLED slow:20');
    const controller = new AbortController();
    const aborted = client.request(Buffer.from('slow:21'), { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('the caller gave up')), 200);
    await assert.rejects(aborted, /the caller gave up/);
    await s.server.waitForOutput('CANCELLED slow:21');
    // The client goes on: the late replies ("too late") were not delivered to later requests.
    assert.deepEqual(await client.request(Buffer.from('after')), Buffer.from('reply:after'));
    const stats = await stopped(s.server);
    assert.equal(stats.cancelled, 2);
    assert.equal(stats.errors, 1);
  });

  test('a handler that returns an int or a dict, raises SystemExit, raises an error with a 2 MB message, or raises an exception whose str() raises: the client gets RemoteError and the handler slot is freed', async (t) => {
    const s = await pythonServer(t, 1);
    if (!s) return;
    const client = await nodeClient(t, s.path);
    const remote = async (payload: string) => {
      const err = await client.request(Buffer.from(payload), { timeout: 5000 }).then(
        (reply) => assert.fail(`${payload}: a reply, ${reply.toString('hex')}`),
        (e: unknown) => e,
      );
      assert.ok(err instanceof RemoteError, `${payload}: ${String(err)}`);
      return err;
    };
    assert.match((await remote('int')).message, /int/);
    assert.match((await remote('dict')).message, /dict/);
    assert.equal((await remote('exit')).message, '3');
    // A 2 MB error text made an ERROR over the client's limit: its reader dropped it and the request waited for ever.
    const huge = await remote('hugefail');
    assert.equal((huge as RemoteError).remoteCode, 'E_HUGE');
    assert.ok(huge.message.length < 1 << 20 && huge.message.startsWith('xxxx'), `${huge.message.length}`);
    // Its str() raised inside the server's except: the outcome never reached the loop, the one slot stayed taken.
    assert.match((await remote('badstr')).message, /Unprintable/);
    assert.deepEqual(await client.request(Buffer.from('after'), { timeout: 5000 }), Buffer.from('reply:after'));
    const stats = await stopped(s.server);
    assert.equal(stats.errors, 5);
  });

  test('the CLI: npipe request to a Python server, exit codes 0, 1 (handler error, with its code) and 3 (timeout); Ctrl-C stops the server cleanly', async (t) => {
    const s = await pythonServer(t);
    if (!s) return;
    const ok = await npipe(['request', s.path, 'from the CLI']).done;
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'reply:from the CLI\n');
    const failed = await npipe(['request', s.path, 'fail:cli']).done;
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /ERR_NPIPE_REMOTE: E_HANDLER: the handler failed on cli/);
    const late = await npipe(['request', s.path, 'slow:20', '--timeout', '300ms']).done;
    assert.equal(late.code, 3, late.stderr);
    await s.server.waitForOutput('CANCELLED slow:20');
    // Ctrl-C (KeyboardInterrupt) stops npipe.serve cleanly: it returns, with its stats.
    s.server.child.kill('SIGINT');
    const r = await s.server.done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /STATS \{"requests": 3, "replies": 1, "errors": 1, "cancelled": 1,/);
  });

  test('size limits never leave a Node client waiting: a request over the Python server limit (after its SIZE) and a reply over the client limit are ERR_NPIPE_FRAME_TOO_LARGE; the server serves on', async (t) => {
    const s = await pythonServer(t, 4, 100_000);
    if (!s) return;
    const client = await nodeClient(t, s.path, { maxMessageSize: 4 << 20 });
    await assert.rejects(client.request(Buffer.alloc(150_000, 1)), (err: unknown) => {
      assert.equal((err as { code?: string }).code, 'ERR_NPIPE_FRAME_TOO_LARGE');
      assert.equal((err as { what?: string }).what, 'request');
      return true;
    });
    // A single-packet request over a tiny limit is answered from the request itself.
    const small = await nodeClient(t, s.path, { maxMessageSize: 1000 });
    await assert.rejects(small.request(Buffer.from('big::')), (err: unknown) => {
      assert.equal((err as { code?: string }).code, 'ERR_NPIPE_FRAME_TOO_LARGE');
      assert.equal((err as { what?: string }).what, 'reply');
      return true;
    });
    assert.deepEqual(await client.request(Buffer.from('still here')), Buffer.from('reply:still here'));
  });

  test('a Python client (npipe.connect) and a Python server: replies, a handler error with its code, a timeout that cancels', async (t) => {
    const s = await pythonServer(t);
    if (!s) return;
    const steps = [{ req: Buffer.from('py').toString('hex') }, { req: Buffer.from('fail:py').toString('hex') }, { req: Buffer.from('slow:20').toString('hex'), timeout: 0.3 }, { req: '6869' }];
    const client = peer(t, ['rpc', s.path], JSON.stringify(steps))!;
    const r = await client.done;
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { ok?: string; error?: string; remote_code?: string });
    assert.equal(Buffer.from(out[0]!.ok!, 'hex').toString(), 'reply:py');
    assert.equal(out[1]!.error, 'ERR_NPIPE_REMOTE');
    assert.equal(out[1]!.remote_code, 'E_HANDLER');
    assert.equal(out[2]!.error, 'ERR_NPIPE_TIMEOUT');
    assert.equal(Buffer.from(out[3]!.ok!, 'hex').toString(), 'reply:hi');
    await s.server.waitForOutput('CANCELLED slow:20');
  });
});

describe('npipe.serve under attack: the Node server rules, in Python', () => {
  test('reply addresses outside the reply folders (a file, a symlink, a FIFO elsewhere, a relative path) are refused and never written; bytes that are not frames do not stop it', async (t) => {
    const s = await pythonServer(t);
    if (!s) return;
    const dir = tempDir(t);
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'untouched');
    const replyDir = ensureReplyDirectory();
    const link = join(replyDir, `c-${process.pid}-${'a'.repeat(16)}.fifo`);
    symlinkSync(victim, link);
    t.after(() => rmSync(link, { force: true }));
    const { sender } = await rawRpcClient(t, s.path);
    for (const address of [victim, link, join(dir, `c-1-${'b'.repeat(16)}.fifo`), `c-1-${'c'.repeat(16)}.fifo`, '/etc/passwd', `${replyDir}/../${'x'}`]) {
      await sender.send(request(address, 'write me'));
    }
    // All six read before the bytes below: requests read with them may be lost (docs/RPC.md).
    await s.server.waitForOutput(`EVENT refused ${replyDir}/../x `);
    // Bytes that are not frames, straight into the server's FIFO: it reads afresh and serves on.
    const fd = openSync(s.path, constants.O_WRONLY | constants.O_NONBLOCK);
    writeSync(fd, Buffer.from('this is not a frame\n'));
    closeSync(fd);
    await s.server.waitForOutput('EVENT bad-message');
    const client = await nodeClient(t, s.path);
    assert.deepEqual(await client.request(Buffer.from('after')), Buffer.from('reply:after'));
    assert.equal(readFileSync(victim, 'utf8'), 'untouched');
    const stats = await stopped(s.server);
    assert.equal(stats.refused, 6);
  });

  test('reply addresses with a NUL byte, bytes that are not UTF-8, or 60,000 bytes are refused; the server serves on', async (t) => {
    const s = await pythonServer(t);
    if (!s) return;
    const replyDir = ensureReplyDirectory();
    const name = `c-${process.pid}-${'e'.repeat(16)}.fifo`;
    const { sender } = await rawRpcClient(t, s.path);
    const addresses = [
      `${replyDir}\0/${name}`, // os.lstat raised ValueError (embedded null byte): the server died
      `${replyDir}/${name}\0`,
      Buffer.concat([Buffer.from(`${replyDir}/`), Buffer.from([0xff, 0xfe]), Buffer.from(`/${name}`)]),
      `/${'a'.repeat(60_000)}/${name}`,
    ];
    for (const address of addresses) await sender.send(request(address, 'write me'));
    await s.server.waitForOutput('EVENT refused');
    const client = await nodeClient(t, s.path);
    assert.deepEqual(await client.request(Buffer.from('after')), Buffer.from('reply:after'));
    const stats = await stopped(s.server);
    assert.equal(stats.refused, 4);
  });

  test('a flood of requests is bounded: beyond 4 MiB waiting per client the rest get ERR_NPIPE_BUSY at once, the server RSS stays bounded, and the waiting ones are served', async (t) => {
    const s = await pythonServer(t, 1);
    if (!s) return;
    const client = await nodeClient(t, s.path);
    const blocked = client.request(Buffer.from('block'));
    await s.server.waitForOutput('BLOCKED');
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${s.server.child.pid}/status`, 'utf8'))![1]) * 1024;
    const before = rss();
    let busy = 0;
    const flood = Array.from({ length: 6000 }, (_, i) =>
      client.request(Buffer.alloc(1024, i)).then(
        (reply) => (reply.length === 1030 ? 'served' : 'wrong reply'),
        (err: unknown) => {
          const code = (err as { remoteCode?: string; code?: string }).remoteCode ?? (err as { code?: string }).code;
          if (code === 'ERR_NPIPE_BUSY') busy++;
          return String(code);
        },
      ),
    );
    // Each waiting request costs 1024 + 512 bytes: 2,730 fit in 4 MiB, the other 3,270 are refused at once.
    await until(() => busy === 3270, 'the requests beyond the bound to be refused', 30_000);
    const grown = rss() - before;
    assert.ok(grown < 64 << 20, `the server RSS grew by ${grown} bytes`);
    s.server.child.kill('SIGUSR1');
    assert.deepEqual(await blocked, Buffer.from('released'));
    const outcomes = await Promise.all(flood);
    assert.equal(outcomes.filter((o) => o === 'served').length, 2730);
    assert.equal(outcomes.filter((o) => o === 'ERR_NPIPE_BUSY').length, 3270);
    const stats = await stopped(s.server);
    assert.equal(stats.errors, 3270);
    assert.equal(stats.replies, 2731);
  });

  test('a flood that never lets the request FIFO go empty does not starve other clients: their requests are answered while it goes on', async (t) => {
    const s = await pythonServer(t, 2);
    if (!s) return;
    // Writers of refused requests (a reply address outside the reply folders) as fast as the pipe takes them:
    // _read_requests read until the pipe was empty, so it never returned, and no handler started.
    const code = `
import os, struct, sys
from npipe import formats
from npipe.protocol import encode_request
fd = os.open(sys.argv[1], os.O_WRONLY)
packet = formats.encode_frames(encode_request(1, 1, b"/etc/c-1-0123456789abcdef.fifo", b""), 4242)[0]
batch = packet * (4096 // len(packet))
print("FLOODING", flush=True)
while True:
    os.write(fd, batch)
`;
    for (let i = 0; i < 2; i++) {
      const flooder = start('python3', ['-c', code, s.path], { env: ENV });
      t.after(() => flooder.child.kill('SIGKILL'));
      await flooder.waitForOutput('FLOODING');
    }
    await s.server.waitForOutput('EVENT refused /etc/');
    const client = await nodeClient(t, s.path);
    assert.deepEqual(await client.request(Buffer.from('during the flood'), { timeout: 8000 }), Buffer.from('reply:during the flood'));
  });

  test('a forged first packet that claims no pid (0) and never goes on is dropped as stalled after partial_timeout: the server is always reading, so wall time counts', async (t) => {
    const s = await pythonServer(t, 2, 1 << 20, { PARTIAL_TIMEOUT: '0.5' });
    if (!s) return;
    // The server called receive(timeout=0) between polls, and only the time inside it counted: the partial
    // message (up to 1 MiB each, 256 MiB for all writers) was held for ever.
    const head = Buffer.alloc(16);
    head[0] = 0xfe;
    head[1] = 0x01;
    head.writeUInt16BE(4000, 2);
    head.writeUInt32BE(0x5eed, 4);
    head.writeUInt32BE(1 << 20, 8);
    head.writeUInt32BE(0, 12);
    const fd = openSync(s.path, constants.O_WRONLY | constants.O_NONBLOCK);
    t.after(() => closeSync(fd));
    writeSync(fd, Buffer.concat([head, Buffer.alloc(4000, 1)]));
    await s.server.waitForOutput('EVENT frame-dropped  stalled');
    const client = await nodeClient(t, s.path);
    assert.deepEqual(await client.request(Buffer.from('after')), Buffer.from('reply:after'));
  });

  test('requests are taken round-robin across clients: one client with 20 waiting does not hold back another one', async (t) => {
    const s = await pythonServer(t, 1);
    if (!s) return;
    const [a, b] = await Promise.all([nodeClient(t, s.path), nodeClient(t, s.path)]);
    const blocked = a.request(Buffer.from('block'));
    await s.server.waitForOutput('BLOCKED');
    const fromA = Array.from({ length: 20 }, (_, i) => a.request(Buffer.from(`rr:a${i}`)));
    await waiting(s.server, 20);
    const fromB = b.request(Buffer.from('rr:b0'));
    await waiting(s.server, 21);
    s.server.child.kill('SIGUSR1');
    await Promise.all([blocked, ...fromA, fromB]);
    const handled = [...(await stoppedOutput(s.server)).matchAll(/^HANDLED (rr:\w+)$/gm)].map((m) => m[1]);
    assert.equal(handled.length, 21);
    // a0 was first in line; b0 next, not after a1..a19.
    assert.deepEqual(handled.slice(0, 3), ['rr:a0', 'rr:b0', 'rr:a1']);
  });

  test('a client that reads none of its replies is dropped after stuck_after, and no more of its handlers start once 4 MiB of replies wait for it', async (t) => {
    const s = await pythonServer(t, 1, 1 << 20, { STUCK_AFTER: '1' });
    if (!s) return;
    // A reply FIFO whose reader never reads: the replies fill its pipe, then wait in the server.
    const replyDir = ensureReplyDirectory();
    const address = join(replyDir, `c-${process.pid}-${'d'.repeat(16)}.fifo`);
    mkfifoSync(address, { mode: 0o600 });
    const reader = openSync(address, constants.O_RDONLY | constants.O_NONBLOCK);
    t.after(() => {
      closeSync(reader);
      rmSync(address, { force: true });
    });
    const { sender } = await rawRpcClient(t, s.path);
    for (let id = 1; id <= 20; id++) await sender.send(request(address, 'big::', id));
    await s.server.waitForOutput(`EVENT reply-dropped ${address}`);
    const stats = await stopped(s.server);
    // 300,009-byte replies, each costing 512 more: the 14th takes the client past 4 MiB; the other 6 never ran.
    assert.equal(stats.replies, 14);
    assert.equal(stats.replies_dropped, 20);
  });
});

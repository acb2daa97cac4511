/**
 * Promises the docs made that no test checked (docs/PROMISES.md, "Not yet tested",
 * the lines with no owner): each one here, with real FIFOs, processes and
 * nats-server.
 */
import assert from 'node:assert/strict';
import { chownSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect, type Socket } from 'node:net';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test, type TestContext } from 'node:test';
import { connect as natsConnect } from '@nats-io/transport-node';
import { jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { connect, type DropInfo, openReceiver, openSender, serve } from '../src/index.js';
import { mkfifo } from '../src/fifo-public.js';
import { REQUEST_COST } from '../src/rpc/limits.js';
import { ERROR, REQUEST, decodeError, decodeRpc, encodeRequest } from '../src/rpc/protocol.js';
import { parseNatsUrl, streamNameFor } from '../src/drivers/nats/url.js';
import { BIN, npipe, rawRpcClient, readerOn, requireOrSkip, requireReachableByOthers, run, sharedNatsServer, start, tempDir, until } from './helpers.js';
import { NATS_INSTALL_HINT, NatsServer, natsServerAvailable } from './nats-server.js';

const FORGER = fileURLToPath(new URL('./fixtures/forge-frames.js', import.meta.url));
const INDEX = new URL('../src/index.js', import.meta.url).href;
const NOBODY = 65534;

/** Runs a module snippet as uid/gid 65534 (root is never refused by the kernel). */
function asNobody(code: string, dir: string) {
  return start(process.execPath, ['--input-type=module', '-e', code], { uid: NOBODY, gid: NOBODY, cwd: dir, env: { PATH: process.env.PATH, TMPDIR: dir }, hangMs: 20_000 });
}

/**
 * Waits until the command a server runs has written its process group to
 * `started`, and ends that group when the test ends (a server killed with SIGKILL
 * cannot end it itself).
 */
async function commandGroup(t: TestContext, started: string, what: string): Promise<void> {
  let group = 0;
  await until(() => {
    try {
      group = Number(readFileSync(started, 'utf8'));
    } catch {
      return false;
    }
    return group > 0;
  }, what);
  t.after(() => {
    try {
      process.kill(-group, 'SIGKILL');
    } catch {
      // already gone
    }
  });
}

describe('TUNING.md, "Pipe capacity"', () => {
  test('an explicit pipeSize the kernel refuses (over pipe-max-size, asked by a user other than root) is ERR_NPIPE_PERMISSION, library and --pipe-size', async (t) => {
    if (process.platform !== 'linux') return t.skip('F_SETPIPE_SZ is Linux-only');
    if (process.geteuid?.() !== 0) return t.skip('needs root, to run the asker as another user');
    if (!requireReachableByOthers(t)) return;
    const max = Number(readFileSync('/proc/sys/fs/pipe-max-size', 'utf8'));
    const dir = tempDir(t);
    chownSync(dir, NOBODY, NOBODY);
    const path = join(dir, 'p');
    const ask = (size: number) =>
      asNobody(
        `import { openReceiver } from ${JSON.stringify(INDEX)};
         try { const r = await openReceiver(${JSON.stringify(path)}, { pipeSize: ${size} }); console.log('ok', r.pipeSize ?? ''); await r.close(); }
         catch (err) { console.log(err.code); }`,
        dir,
      ).done;
    // Within the limit the same user gets it: the refusal below is the kernel's, for the size.
    const within = await ask(max);
    assert.equal(within.code, 0, within.stderr);
    assert.match(within.stdout, /^ok/, within.stderr);
    const over = await ask(max * 2);
    assert.equal(over.code, 0, over.stderr);
    assert.equal(over.stdout.trim(), 'ERR_NPIPE_PERMISSION', over.stderr);
    // The CLI: one coded line.
    const cli = await start(process.execPath, [BIN, 'listen', path, '--pipe-size', String(max * 2), '--count', '1', '--timeout', '2000'], {
      uid: NOBODY,
      gid: NOBODY,
      cwd: dir,
      env: { PATH: process.env.PATH },
    }).done;
    assert.notEqual(cli.code, 0);
    assert.match(cli.stderr, /^npipe listen: ERR_NPIPE_PERMISSION: [^\n]*\n$/, cli.stderr);
  });
});

describe('PROTOCOL.md, "Reader rules": partialTimeout', () => {
  test('time a frames receiver spends paused (its program taking no messages) does not count toward partialTimeout; reading again, it does', async (t) => {
    const path = join(tempDir(t), 'p');
    const PARTIAL_TIMEOUT = 1500;
    const drops: DropInfo[] = [];
    const receiver = await openReceiver<Buffer>(path, { format: 'frames', codec: 'bytes', partialTimeout: PARTIAL_TIMEOUT, onDrop: (d) => drops.push(d) });
    t.after(() => receiver.close());
    // A live writer that starts a message and sends no more of it (docs/PROTOCOL.md alone: test/fixtures/forge-frames.ts).
    const forger = spawn(process.execPath, [FORGER, path, 'self', String(1 << 20), '1'], { stdio: ['pipe', 'pipe', 'inherit'] });
    t.after(() => forger.stdin.end());
    await new Promise<void>((resolve) => forger.stdout.on('data', (d: Buffer) => String(d).startsWith('ready') && resolve()));
    await until(() => receiver.bufferedBytes > 0, 'the partial message read');
    // Then 1.5 MiB of whole messages nobody takes: the receiver stops reading at 1 MiB held (paused).
    const sender = await openSender(path, { format: 'frames' });
    t.after(() => sender.close({ signal: AbortSignal.abort() }).catch(() => {}));
    const message = 'm'.repeat(1024);
    const sends = Array.from({ length: 1536 }, () => sender.send(message));
    await until(() => receiver.bufferedBytes >= 1 << 20, 'the receiver holding 1 MiB');
    // Paused for three times partialTimeout (the duration under test, not a wait for an event).
    await new Promise((r) => setTimeout(r, 3 * PARTIAL_TIMEOUT));
    assert.equal(drops.length, 0, 'nothing dropped while paused');
    // Taking the messages lets it read again: the stalled message is then dropped, as it should be.
    for (let i = 0; i < 1536; i++) assert.equal(String(await receiver.receive()), message);
    await Promise.all(sends);
    await until(() => drops.some((d) => d.reason === 'stalled'), 'the stalled message dropped once reading resumed', 20_000);
    assert.equal(drops.length, 1);
  });
});

describe('RPC.md, "The server going away"', () => {
  test('a server killed with a request in flight: the request fails with ERR_NPIPE_SERVER_GONE long before its own 60 s timeout', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'srv');
    const started = join(dir, 'started');
    await mkfifo(path);
    // The command records its process group, so that the test can end it (a server killed with SIGKILL cannot).
    const server = npipe(['serve', path, '--exec', `echo $$ > ${started}.tmp; mv ${started}.tmp ${started}; exec sleep 30`]);
    await readerOn(path);
    const client = await connect(path);
    t.after(() => client.close());
    const pending = client.request('never answered', { timeout: 60_000 });
    pending.catch(() => {});
    await commandGroup(t, started, 'the request running on the server');
    server.child.kill('SIGKILL');
    await server.done;
    // A hang limit, not a speed check: far below the request's timeout.
    const hang = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the request still pending 10 s after its server died')), 10_000).unref());
    await assert.rejects(Promise.race([pending, hang]), { code: 'ERR_NPIPE_SERVER_GONE' });
  });
});

describe('RPC.md, "Nothing can stall the server"', () => {
  test('error replies the server makes up (ERR_NPIPE_BUSY) for a client that takes none are dropped and counted once 256 KiB of them wait in the server: the rest arrive, none counted twice', async (t) => {
    const path = join(tempDir(t), 'srv');
    let release = () => {};
    const server = await serve(path, () => new Promise<string>((resolve) => (release = () => resolve('done'))), { concurrency: 1, maxWaitingBytes: REQUEST_COST, stuckAfter: 60_000 });
    t.after(() => server.close());
    const { endpoint, sender } = await rawRpcClient(t, path);
    // One runs, one waits, every other one is ERR_NPIPE_BUSY: about 9 MB of error replies for a client that reads none of them yet.
    const N = 60_000;
    for (let id = 1; id <= N; id++) void sender.send(encodeRequest(REQUEST, id, endpoint.address));
    await until(() => server.stats.requests === N, 'every request taken', 60_000);
    assert.equal(server.stats.errors, N - 2);
    const dropped = server.stats.repliesDropped;
    assert.ok(dropped > 0, 'error replies past the bound are dropped and counted');
    // What was not dropped arrives, in order; nothing is counted both ways.
    const delivered = N - 2 - dropped;
    let bytes = 0;
    let last = 0;
    for (let i = 0; i < delivered; i++) {
      const frame = await endpoint.receiver.receive({ signal: AbortSignal.timeout(20_000) });
      assert.ok(frame);
      const m = decodeRpc(frame);
      assert.equal(m.type, ERROR);
      assert.equal(decodeError(m.payload).code, 'ERR_NPIPE_BUSY');
      assert.ok(m.id > last);
      last = m.id;
      bytes += frame.length;
    }
    t.diagnostic(`${dropped} dropped, ${delivered} delivered (${bytes} bytes)`);
    // Kept for it: what its receiver took (it stops reading at 1 MiB held), what its pipe holds (at most 1 MiB), and 256 KiB in the server.
    assert.ok(bytes <= (1 << 20) + (1 << 20) + (256 << 10) + 64 * 1024, `${bytes} bytes of error replies kept for a client that took none`);
    release();
  });
});

/** Whether process `pid` has `path` open for reading (/proc: an fd to it whose access mode is O_RDONLY). */
function readsFifo(pid: number, path: string): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === path && (parseInt(/flags:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))![1]!, 8) & 3) === 0;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

describe('RPC.md, "The server going away": replaced', () => {
  test('a server that answered, killed while another server already reads the same FIFO: the request in flight to it fails with ERR_NPIPE_SERVER_GONE (its pid is gone), not at its 60 s timeout', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'srv');
    const started = join(dir, 'started');
    await mkfifo(path);
    const script = `read x; if [ "$x" = slow ]; then echo $$ > ${started}.tmp; mv ${started}.tmp ${started}; exec sleep 30; fi; echo "A $x"`;
    const first = npipe(['serve', path, '--exec', script, '-c', '1']);
    t.after(() => first.child.kill('SIGKILL'));
    await readerOn(path);
    const client = await connect(path);
    t.after(() => client.close());
    assert.equal(await client.request('fast', { timeout: 20_000 }), 'A fast\n'); // the client now knows this server's pid
    const pending = client.request('slow', { timeout: 60_000 });
    pending.catch(() => {});
    await commandGroup(t, started, 'the request running on the first server');
    // A second server on the same FIFO: the FIFO keeps a reader throughout.
    const second = npipe(['serve', path, '--echo']);
    t.after(() => second.child.kill('SIGTERM'));
    await until(() => readsFifo(second.child.pid!, path), 'the second server reading the FIFO');
    first.child.kill('SIGKILL');
    await first.done.catch(() => {});
    const hang = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the request still pending 10 s after its server died')), 10_000).unref());
    await assert.rejects(Promise.race([pending, hang]), { code: 'ERR_NPIPE_SERVER_GONE' });
  });
});

const nats = sharedNatsServer('promises-gaps');

describe('NATS.md, "JetStream" and "Core NATS"', () => {
  test('a JetStream stream made by hand, with a config npipe would not choose, is used as it is: its config unchanged, messages stored and delivered', { timeout: 60_000 }, async (t) => {
    const base = nats.url(t);
    if (!base) return;
    const { server, subject } = parseNatsUrl(base);
    const nc = await natsConnect({ servers: server });
    t.after(() => nc.close());
    const jsm = await jetstreamManager(nc);
    const name = `HANDMADE_${process.pid}`;
    await jsm.streams.add({ name, subjects: [subject], retention: RetentionPolicy.Limits, storage: StorageType.Memory, max_msgs: 7, duplicate_window: 60_000_000_000 });
    t.after(() => jsm.streams.delete(name).catch(() => {}));
    const before = (await jsm.streams.info(name)).config;
    const url = `${base}?delivery=jetstream&stream=${name}`;
    const sender = await openSender(url);
    for (const m of ['a', 'b', 'c']) await sender.send(m);
    await sender.close();
    const receiver = await openReceiver(url);
    const got = [await receiver.receive(), await receiver.receive(), await receiver.receive()];
    await receiver.close();
    assert.deepEqual(got, ['a', 'b', 'c']);
    const info = await jsm.streams.info(name);
    assert.equal(info.state.messages, 3, 'stored in that stream (limits retention: kept after acknowledgement)');
    assert.deepEqual(info.config, before, 'its config as it was made');
    assert.equal(info.config.max_msgs, 7);
    assert.equal(info.config.retention, RetentionPolicy.Limits);
    assert.equal(info.config.storage, StorageType.Memory);
    assert.equal((await jsm.streams.list().next()).filter((s) => s.config.subjects?.includes(subject)).length, 1, 'no stream of npipe\'s own beside it');
  });

  test('JetStream: messages a receiver holds but never handed out are given back when it closes: the next receiver gets them long before ack-wait (60 s)', { timeout: 60_000 }, async (t) => {
    const base = nats.url(t);
    if (!base) return;
    const { server, subject } = parseNatsUrl(base);
    const url = `${base}?delivery=jetstream&ack-wait=60000`;
    const sender = await openSender(url);
    for (const m of ['a', 'b', 'c']) await sender.send(m);
    await sender.close();
    const nc = await natsConnect({ servers: server });
    t.after(() => nc.close());
    const jsm = await jetstreamManager(nc);
    const first = await openReceiver(url);
    assert.equal(await first.receive(), 'a');
    // The server pushed all three to this receiver: none is left for another one until they come back.
    const stream = streamNameFor(subject);
    for (const deadline = Date.now() + 10_000; (await jsm.consumers.info(stream, 'npipe')).num_ack_pending !== 3; await new Promise((r) => setTimeout(r, 20))) {
      if (Date.now() > deadline) throw new Error('the server never pushed the three messages');
    }
    await first.close(); // 'a' acknowledged (handed out), 'b' and 'c' given back
    const second = await openReceiver(url);
    t.after(() => second.close());
    const hang = (what: string) => new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} not back within 20 s`)), 20_000).unref());
    assert.equal(await Promise.race([second.receive(), hang('b')]), 'b');
    assert.equal(await Promise.race([second.receive(), hang('c')]), 'c');
    await second.close();
    assert.equal((await jsm.streams.info(stream)).state.messages, 0, 'all three acknowledged once (work queue: deleted)');
  });

  test('JetStream: an existing durable consumer is reused with only its ack-wait changed to the URL\'s', { timeout: 60_000 }, async (t) => {
    const base = nats.url(t);
    if (!base) return;
    const { server, subject } = parseNatsUrl(base);
    const nc = await natsConnect({ servers: server });
    t.after(() => nc.close());
    const jsm = await jetstreamManager(nc);
    const stream = streamNameFor(subject);
    const first = await openReceiver(`${base}?delivery=jetstream&ack-wait=1000`);
    await first.close();
    const before = (await jsm.consumers.info(stream, 'npipe')).config;
    assert.equal(before.ack_wait, 1000 * 1e6);
    const second = await openReceiver(`${base}?delivery=jetstream&ack-wait=5000`);
    t.after(() => second.close());
    const after = (await jsm.consumers.info(stream, 'npipe')).config;
    assert.equal(after.ack_wait, 5000 * 1e6);
    assert.deepEqual({ ...after, ack_wait: before.ack_wait }, before, 'nothing else changed');
    const sender = await openSender(`${base}?delivery=jetstream`);
    await sender.send('still delivered');
    await sender.close();
    assert.equal(await second.receive(), 'still delivered');
  });

  test('core NATS: a send that brings what is not yet flushed to 1 MiB waits until the server has everything (PONG); the ones before resolve at once', { timeout: 60_000 }, async (t) => {
    const base = nats.url(t);
    if (!base) return;
    const { server, subject } = parseNatsUrl(base);
    const [host, port] = server.replace(/^nats:\/\//, '').split(':');
    // A relay between the sender and nats-server whose server-to-client direction can be held:
    // while held, the sender's PING gets no PONG.
    let held = false;
    const backlog: Buffer[] = [];
    let toClient: Socket | undefined;
    const sockets: Socket[] = [];
    const relay = createServer((client) => {
      const upstream = tcpConnect(Number(port), host);
      sockets.push(client, upstream);
      toClient = client;
      client.on('data', (d) => upstream.write(d));
      upstream.on('data', (d) => (held ? backlog.push(d) : client.write(d)));
      client.on('error', () => {});
      upstream.on('error', () => {});
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      for (const s of sockets) s.destroy();
      relay.close();
    });
    const relayPort = (relay.address() as { port: number }).port;
    const nc = await natsConnect({ servers: server });
    t.after(() => nc.close());
    const sub = nc.subscribe(subject);
    let received = 0;
    void (async () => {
      for await (const _ of sub) received++;
    })();
    await nc.flush();
    const sender = await openSender<Buffer>(`nats://127.0.0.1:${relayPort}/${subject}`, { codec: 'bytes' });
    t.after(() => sender.close());
    held = true;
    const message = Buffer.alloc(64 * 1024, 0x61);
    const perMiB = (1 << 20) / message.length; // 16
    const settled: boolean[] = [];
    const sends = Array.from({ length: perMiB + 2 }, (_, i) => {
      const p = sender.send(message);
      settled[i] = false;
      void p.then(() => (settled[i] = true), () => {});
      return p;
    });
    // The first 15 resolve at once (under 1 MiB not yet flushed); the 16th makes 1 MiB and waits, as do the ones after it.
    await Promise.all(sends.slice(0, perMiB - 1));
    await until(() => received === perMiB + 2, 'nats-server to have every message (client to server is not held)');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(settled.slice(perMiB - 1), [false, false, false], 'the sends from the 1 MiB mark wait for the PONG');
    // The server's PONG let through: they resolve.
    held = false;
    for (const d of backlog.splice(0)) toClient!.write(d);
    await Promise.all(sends);
    assert.ok(settled.every(Boolean));
  });
});

describe('NATS.md, "JetStream": no answer', () => {
  test('no answer from JetStream (an account without it on the server: nobody answers its API) is ERR_NPIPE_UNREACHABLE, exit 3, for send and listen', { timeout: 60_000 }, async (t) => {
    if (!requireOrSkip(t, natsServerAvailable(), NATS_INSTALL_HINT)) return;
    const dir = tempDir(t);
    const conf = join(dir, 'accounts.conf');
    writeFileSync(conf, 'accounts {\n  NOJS: { users: [{ user: nojs, password: nojs }] }\n  JS: { jetstream: enabled, users: [{ user: js, password: js }] }\n}\n');
    const server = await NatsServer.start(['-c', conf]);
    t.after(() => server.dispose());
    const url = (user: string) => server.url('nojs.s').replace('nats://', `nats://${user}:${user}@`);
    const sent = await run(['send', url('nojs'), 'x', '--jetstream'], { hangMs: 30_000 });
    assert.equal(sent.code, 3, sent.stderr);
    assert.match(sent.stderr, /^npipe send: ERR_NPIPE_UNREACHABLE: [^\n]*\n$/);
    const listened = await run(['listen', url('nojs'), '--jetstream', '--count', '1'], { hangMs: 30_000 });
    assert.equal(listened.code, 3, listened.stderr);
    assert.match(listened.stderr, /^npipe listen: ERR_NPIPE_UNREACHABLE: [^\n]*\n$/);
    await assert.rejects(openSender(`${url('nojs')}?delivery=jetstream`), { code: 'ERR_NPIPE_UNREACHABLE' });
    // The same server answers for an account with JetStream: the refusal above is the missing answer.
    const ok = await run(['send', url('js'), 'x', '--jetstream'], { hangMs: 30_000 });
    assert.equal(ok.code, 0, ok.stderr);
  });
});

describe('NATS.md, "JetStream": a silent answer', () => {
  test('a JetStream API request taken by a peer that never answers (a timeout, not "no responders") is ERR_NPIPE_UNREACHABLE, exit 3', { timeout: 90_000 }, async (t) => {
    if (!requireOrSkip(t, natsServerAvailable(), NATS_INSTALL_HINT)) return;
    const dir = tempDir(t);
    const conf = join(dir, 'accounts.conf');
    writeFileSync(conf, 'accounts {\n  NOJS: { users: [{ user: nojs, password: nojs }] }\n}\n');
    const server = await NatsServer.start(['-c', conf]);
    t.after(() => server.dispose());
    const url = server.url('silent.s').replace('nats://', 'nats://nojs:nojs@');
    // A real peer in the account takes every JetStream API request and never answers.
    const peer = await natsConnect({ servers: new URL(server.url('x')).host, user: 'nojs', pass: 'nojs' });
    t.after(() => peer.close());
    let taken = 0;
    peer.subscribe('$JS.API.>', { callback: () => void taken++ });
    await peer.flush();
    const sent = await run(['send', url, 'x', '--jetstream'], { hangMs: 60_000 });
    assert.equal(sent.code, 3, sent.stderr);
    assert.match(sent.stderr, /^npipe send: ERR_NPIPE_UNREACHABLE: [^\n]*\n$/);
    assert.ok(taken > 0, 'the silent peer took the request: it was a timeout, not "no responders"');
  });
});

/**
 * What only NATS has: JetStream's durability (a receiver that was away, one
 * killed before acknowledging, a server restart mid-stream), the FIFO<->NATS
 * bridge, the CLI's URL handling, and talking to plain NATS clients.
 * Needs nats-server: skipped with a message without it, failed under CI=true.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Socket } from 'node:net';
import { getEventListeners } from 'node:events';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { connect as natsConnect, headers } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, openReceiver, openSender, RemoteError, serve } from '../src/index.js';
import { parseNatsUrl, streamNameFor } from '../src/drivers/nats/url.js';
import { isBusyPolling } from '../src/util/busy-poll.js';
import { BIN, delay, npipe, requireOrSkip, run, sharedNatsServer, start, tempDir, until } from './helpers.js';
import { NATS_INSTALL_HINT, NatsServer } from './nats-server.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}.js`, import.meta.url));
const nats = sharedNatsServer('nats-test');
const natsUrl = nats.url;

/** Its own server, for tests that stop or restart it. */
async function ownServer(t: TestContext): Promise<NatsServer | undefined> {
  if (!requireOrSkip(t, nats.available, NATS_INSTALL_HINT)) return undefined;
  const own = await NatsServer.start();
  t.after(() => own.dispose());
  return own;
}

describe('nats:// URLs', () => {
  test('parsed into server, subject and delivery options; mistakes are ERR_NPIPE_INVALID_ARG', () => {
    assert.deepEqual(parseNatsUrl('nats://10.0.0.5/jobs'), {
      server: '10.0.0.5:4222',
      subject: 'jobs',
      delivery: 'core',
      stream: streamNameFor('jobs'),
      durable: 'npipe',
      ackWait: 30_000,
      group: 'npipe',
    });
    const full = parseNatsUrl('nats://me:secret@host:4333/a.b?delivery=jetstream&stream=S1&durable=d-2&ack-wait=500&group=g');
    assert.equal(full.server, 'host:4333');
    assert.equal(full.user, 'me');
    assert.equal(full.pass, 'secret');
    assert.equal(full.stream, 'S1');
    assert.equal(full.durable, 'd-2');
    assert.equal(full.ackWait, 500);
    assert.equal(full.group, 'g');
    assert.match(parseNatsUrl('nats://h/a.b').stream, /^NPIPE_a_b_[0-9a-f]{24}$/);
    // ack-wait is a duration as --timeout is (issue 19 #4): a bare number stays milliseconds.
    for (const [text, ms] of [['30s', 30_000], ['1.5s', 1500], ['2m', 120_000], ['250ms', 250], ['750', 750]] as const) {
      assert.equal(parseNatsUrl(`nats://h/x?ack-wait=${text}`).ackWait, ms, text);
    }
    for (const bad of ['nats://h/', 'nats://h/a b', 'nats://h/a.*', 'nats://h/a..b', 'nats://h/x?delivery=maybe', 'nats://h/x?ackwait=1', 'nats://h/x?ack-wait=-1', 'nats://h/x?ack-wait=0.5', 'nats://h/x?ack-wait=5us', 'nats://h/x?ack-wait=0s', 'nats://h/x?stream=a.b']) {
      assert.throws(() => parseNatsUrl(bad), { code: 'ERR_NPIPE_INVALID_ARG' }, bad);
    }
  });

  test('CLI: usage mistakes exit 2, an unreachable server exits 3 with ERR_NPIPE_UNREACHABLE', async () => {
    const unreachable = await run(['send', 'nats://127.0.0.1:1/jobs', 'hi']);
    assert.equal(unreachable.code, 3);
    assert.match(unreachable.stderr, /^npipe send: ERR_NPIPE_UNREACHABLE: /);
    const fifoOption = await run(['listen', 'nats://127.0.0.1:1/jobs', '--pipe-size', '65536']);
    assert.equal(fifoOption.code, 2);
    assert.match(fifoOption.stderr, /^npipe listen: ERR_NPIPE_INVALID_ARG: /);
    const badUrl = await run(['send', 'nats://127.0.0.1/a b', 'x']);
    assert.equal(badUrl.code, 2);
    assert.match(badUrl.stderr, /^npipe send: ERR_NPIPE_INVALID_ARG: /);
    const jsOnFifo = await run(['send', '/tmp/npipe-never-created', 'x', '--jetstream']);
    assert.equal(jsOnFifo.code, 2);
    const bridgeTwoFifos = await run(['bridge', '/tmp/a', '/tmp/b']);
    assert.equal(bridgeTwoFifos.code, 2);
    assert.match(bridgeTwoFifos.stderr, /^npipe bridge: ERR_NPIPE_INVALID_ARG: /);
  });
});

describe('JetStream delivery', () => {
  test('messages sent while no receiver runs are delivered when one comes', { timeout: 60_000 }, async (t) => {
    const url = natsUrl(t, 'delivery=jetstream');
    if (!url) return;
    const sent = await run(['send', url, 'one', 'two', 'three']);
    assert.equal(sent.code, 0, sent.stderr);
    const listened = await run(['listen', url, '--count', '3', '--timeout', '10000']);
    assert.equal(listened.code, 0, listened.stderr);
    assert.equal(listened.stdout, 'one\ntwo\nthree\n');
  });

  test('pull-consumer regression - listeners that take a few messages each, one after another, get every message once and in order', { timeout: 60_000 }, async (t) => {
    const url = natsUrl(t, 'delivery=jetstream');
    if (!url) return;
    const sent = await run(['send', url, ...Array.from({ length: 10 }, (_, i) => String(i + 1))]);
    assert.equal(sent.code, 0, sent.stderr);
    const got: string[] = [];
    for (const count of [3, 3, 4]) {
      // Each takes more than it prints (it asks the server for a batch); what it did not print goes back.
      const listened = await run(['listen', url, '--count', String(count), '--timeout', '10000']);
      assert.equal(listened.code, 0, listened.stderr);
      got.push(...listened.stdout.trimEnd().split('\n'));
    }
    assert.deepEqual(got, ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
  });

  test('a message the stream refuses fails its send (ERR_NPIPE_BAD_FRAME) instead of being retried for ever', { timeout: 60_000 }, async (t) => {
    const url = natsUrl(t, 'delivery=jetstream&stream=SMALL');
    if (!url) return;
    const address = parseNatsUrl(url);
    const nc = await natsConnect({ servers: address.server });
    t.after(() => nc.close());
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'SMALL', subjects: [address.subject], max_msg_size: 100 });
    const sender = await openSender<Buffer>(url, { codec: 'bytes' });
    t.after(() => sender.close());
    await assert.rejects(sender.send(Buffer.alloc(200)), { code: 'ERR_NPIPE_BAD_FRAME' });
    await sender.send(Buffer.alloc(50)); // the sender carries on
  });

  test('a sender whose stream is deleted fails its sends with ERR_NPIPE_NOT_FOUND instead of retrying for ever', { timeout: 60_000 }, async (t) => {
    const url = natsUrl(t, 'delivery=jetstream&stream=GONE');
    if (!url) return;
    const address = parseNatsUrl(url);
    const sender = await openSender(url);
    await sender.send('stored');
    const nc = await natsConnect({ servers: address.server });
    t.after(() => nc.close());
    await (await jetstreamManager(nc)).streams.delete('GONE');
    await assert.rejects(sender.send('not stored'), { code: 'ERR_NPIPE_NOT_FOUND', message: /GONE no longer exists/ });
    await sender.close(); // nothing left to retry
  });

  test('close({ signal }) waits for the stored acknowledgements and leaves no listener on the signal', async (t) => {
    const url = natsUrl(t, 'delivery=jetstream');
    if (!url) return;
    const sender = await openSender(url);
    let stored = 0;
    const sends = Array.from({ length: 500 }, (_, i) => sender.send(String(i)).then(() => void stored++));
    const signal = new AbortController().signal;
    await sender.close({ signal });
    assert.equal(stored, 500, 'every send was stored before close() resolved');
    await Promise.all(sends);
    assert.equal(getEventListeners(signal, 'abort').length, 0);
  });

  test('a receiver killed before acknowledging: the message is delivered again', { timeout: 60_000 }, async (t) => {
    const url = natsUrl(t, 'delivery=jetstream&ack-wait=1000');
    if (!url) return;
    const sender = await openSender(url);
    await sender.send('precious');
    await sender.send('next');
    await sender.close();
    const first = start(process.execPath, [fixture('take-one'), url]);
    await first.waitForOutput('precious\n');
    first.child.kill('SIGKILL');
    await first.done;
    // The new receiver gets it again (after ack-wait), then the one after it.
    const receiver = await openReceiver(url);
    t.after(() => receiver.close());
    const got = [await receiver.receive(), await receiver.receive()];
    assert.deepEqual(got.sort(), ['next', 'precious']);
  });

  test('nats-server killed and restarted in the middle of a stream: nothing is lost', { timeout: 120_000 }, async (t) => {
    const own = await ownServer(t);
    if (!own) return;
    const url = own.url('restart.jobs', 'delivery=jetstream&ack-wait=2000');
    const total = 3000;
    const receiver = await openReceiver(url);
    t.after(() => receiver.close());
    const sender = await openSender(url);
    const seen = new Map<number, number>();
    const receiving = (async () => {
      while (seen.size < total) {
        const m = await receiver.receive();
        assert.ok(m !== undefined, 'the receiver ended early');
        const n = Number(m);
        seen.set(n, (seen.get(n) ?? 0) + 1);
      }
    })();
    const sends: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      sends.push(sender.send(String(i)));
      if (i === 1000) await own.restart('SIGKILL', 500);
      if (i % 50 === 0) await delay(5);
    }
    await Promise.all(sends);
    await sender.close();
    await receiving;
    for (let i = 0; i < total; i++) assert.ok(seen.has(i), `message ${i} arrived`);
    const duplicates = [...seen.values()].filter((n) => n > 1).length;
    t.diagnostic(`${total} messages across a nats-server SIGKILL + restart; ${duplicates} delivered twice (at least once)`);
  });
});

describe('core NATS delivery', () => {
  test('receivers on one subject share its messages (a queue group), none lost between them', async (t) => {
    const url = natsUrl(t);
    if (!url) return;
    const a = await openReceiver(url);
    const b = await openReceiver(url);
    t.after(() => Promise.all([a.close(), b.close()]));
    const sender = await openSender(url);
    for (let i = 0; i < 400; i++) void sender.send(String(i));
    await sender.close();
    const got: string[] = [];
    const drain = async (r: typeof a, who: string[]) => {
      for (;;) {
        const m = await r.receive({ signal: AbortSignal.timeout(1000) }).catch(() => undefined);
        if (m === undefined) return;
        who.push(m);
      }
    };
    const fromA: string[] = [];
    const fromB: string[] = [];
    await Promise.all([drain(a, fromA), drain(b, fromB)]);
    got.push(...fromA, ...fromB);
    assert.equal(got.length, 400);
    assert.equal(new Set(got).size, 400);
    assert.ok(fromA.length > 0 && fromB.length > 0, `both receivers got some (${fromA.length}/${fromB.length})`);
  });
});

describe('core NATS: a receiver that is not read', () => {
  test('holds at most maxQueuedBytes; the rest is dropped, counted and reported as slow-consumer', async (t) => {
    const url = natsUrl(t);
    if (!url) return;
    const drops: string[] = [];
    const receiver = await openReceiver<Buffer>(url, { codec: 'bytes', maxQueuedBytes: 10_000, onDrop: (d) => drops.push(d.reason) });
    t.after(() => receiver.close());
    const sender = await openSender<Buffer>(url, { codec: 'bytes' });
    for (let i = 0; i < 100; i++) void sender.send(Buffer.alloc(1000, i));
    await sender.close();
    for (let i = 0; i < 200 && receiver.dropped.messages + receiver.bufferedBytes / 1000 < 100; i++) await delay(10);
    assert.equal(receiver.bufferedBytes, 10_000);
    assert.deepEqual(receiver.dropped, { messages: 90, bytes: 90_000 });
    assert.deepEqual(new Set(drops), new Set(['slow-consumer']));
    for (let i = 0; i < 10; i++) assert.equal((await receiver.receive())?.[0], i, 'the first ten, in order');
  });
});

describe('npipe bridge', () => {
  test('an unchanged shell script echoing into a FIFO reaches a NATS listener', { timeout: 60_000 }, async (t) => {
    const url = natsUrl(t);
    if (!url) return;
    const fifo = join(tempDir(t), 'jobs');
    const listener = await openReceiver(url);
    t.after(() => listener.close());
    const bridge = npipe(['bridge', fifo, url]);
    t.after(() => bridge.child.kill('SIGKILL'));
    await bridge.waitForError(`${fifo} -> ${url}`);
    const script = await new Promise<number | null>((resolve) => {
      start('/bin/sh', ['-c', `echo hello > "$1"; echo world > "$1"; printf 'a\\nb\\n' > "$1"`, 'sh', fifo]).done.then((r) => resolve(r.code));
    });
    assert.equal(script, 0);
    const got = [];
    for (let i = 0; i < 4; i++) got.push(await listener.receive());
    assert.deepEqual(got, ['hello', 'world', 'a', 'b']);
    bridge.child.kill('SIGTERM');
    const stopped = await bridge.done;
    assert.equal(stopped.code, 0, stopped.stderr);
  });

  test('NATS to a FIFO: a plain reader of the FIFO gets the lines', { timeout: 60_000 }, async (t) => {
    const url = natsUrl(t, 'delivery=jetstream');
    if (!url) return;
    const fifo = join(tempDir(t), 'out');
    const bridge = npipe(['bridge', url, fifo]);
    t.after(() => bridge.child.kill('SIGKILL'));
    // The reader waits for the bridge to have made the FIFO, then reads it like any file.
    const reader = start('/bin/sh', ['-c', 'while [ ! -p "$1" ]; do sleep 0.05; done; head -n 3 < "$1"', 'sh', fifo]);
    const sent = await run(['send', url, 'x', 'y', 'z']);
    assert.equal(sent.code, 0, sent.stderr);
    const read = await reader.done;
    assert.equal(read.stdout, 'x\ny\nz\n');
  });

  test('the bridge survives a nats-server restart; with JetStream nothing is lost', { timeout: 120_000 }, async (t) => {
    const own = await ownServer(t);
    if (!own) return;
    const url = own.url('bridge.jobs', 'delivery=jetstream');
    const fifo = join(tempDir(t), 'jobs');
    const bridge = npipe(['bridge', fifo, url]);
    t.after(() => bridge.child.kill('SIGKILL'));
    await bridge.waitForError(`${fifo} -> ${url}`);
    const writeLines = (from: number, to: number) =>
      start('/bin/sh', ['-c', `i=${from}; while [ $i -lt ${to} ]; do echo "line $i"; i=$((i+1)); done > "$1"`, 'sh', fifo]).done;
    assert.equal((await writeLines(0, 200)).code, 0);
    await own.restart('SIGKILL', 300);
    assert.equal((await writeLines(200, 400)).code, 0);
    // At least once: every line arrives; one may arrive twice (a publish or an ack lost with the server).
    const receiver = await openReceiver(url);
    t.after(() => receiver.close());
    const seen = new Map<string, number>();
    while (seen.size < 400) {
      const line = await receiver.receive({ signal: AbortSignal.timeout(20_000) });
      assert.ok(line !== undefined);
      seen.set(line, (seen.get(line) ?? 0) + 1);
    }
    assert.deepEqual(new Set(seen.keys()), new Set(Array.from({ length: 400 }, (_, i) => `line ${i}`)));
    t.diagnostic(`400 lines through the bridge across a nats-server SIGKILL + restart; ${[...seen.values()].filter((n) => n > 1).length} delivered twice`);
  });
});

describe('plain NATS clients', () => {
  test('a plain nats.js request reaches an npipe server; errors come in NATS micro headers', async (t) => {
    const url = natsUrl(t);
    if (!url) return;
    const address = parseNatsUrl(url);
    const srv = await serve(url, (req: string) => {
      if (req === 'bad') throw Object.assign(new Error('bad input'), { code: 'E_INPUT' });
      return req.split('').reverse().join('');
    });
    t.after(() => srv.close());
    const nc = await natsConnect({ servers: address.server });
    t.after(() => nc.close());
    const reply = await nc.request(address.subject, 'abc', { timeout: 5000 });
    assert.equal(reply.string(), 'cba');
    const failed = await nc.request(address.subject, 'bad', { timeout: 5000 });
    assert.equal(failed.headers?.get('Nats-Service-Error'), 'bad input');
    assert.equal(failed.headers?.get('Nats-Service-Error-Code'), '500');
    assert.equal(failed.headers?.get('Npipe-Error-Code'), 'E_INPUT');
  });

  test('busyPoll over NATS: replies as without it, and the client keeps polling after the reply', async (t) => {
    const url = natsUrl(t);
    if (!url) return;
    const srv = await serve(url, (req: string) => req.toUpperCase(), { busyPoll: 200 });
    t.after(() => srv.close());
    const client = await connect(url, { busyPoll: 500_000 });
    t.after(() => client.close());
    for (let i = 0; i < 50; i++) assert.equal(await client.request(`r${i}`), `R${i}`);
    assert.ok(isBusyPolling());
    await assert.rejects(connect(url, { busyPoll: -5 }), { code: 'ERR_NPIPE_INVALID_ARG' });
  });

  test('a handler error too long for a NATS message is cut to fit: the request fails at once with its code, not at its timeout', async (t) => {
    const url = natsUrl(t);
    if (!url) return;
    const srv = await serve(url, () => {
      throw Object.assign(new Error('e'.repeat(2_000_000)), { code: 'E_LONG' });
    });
    t.after(() => srv.close());
    const client = await connect(url);
    t.after(() => client.close());
    await assert.rejects(client.request('x', { timeout: 60_000 }), (err: unknown) => {
      assert.ok(err instanceof RemoteError, String(err));
      assert.equal(err.remoteCode, 'E_LONG');
      assert.match(err.message, /^e+ \[cut\]$/);
      return true;
    });
  });

  test('an npipe client calls a plain NATS responder; its micro-style error is a RemoteError', async (t) => {
    const url = natsUrl(t);
    if (!url) return;
    const address = parseNatsUrl(url);
    const nc = await natsConnect({ servers: address.server });
    t.after(() => nc.close());
    nc.subscribe(address.subject, {
      callback: (_err, msg) => {
        if (msg.string() === 'oops') {
          const h = headers();
          h.set('Nats-Service-Error', 'it broke');
          h.set('Nats-Service-Error-Code', '503');
          msg.respond('', { headers: h });
        } else msg.respond(msg.string().toUpperCase());
      },
    });
    await nc.flush();
    const client = await connect(url);
    t.after(() => client.close());
    assert.equal(await client.request('shout', { timeout: 5000 }), 'SHOUT');
    const err = await client.request('oops', { timeout: 5000 }).catch((e: unknown) => e);
    assert.ok(err instanceof RemoteError, String(err));
    assert.equal(err.remoteCode, 'ERR_NPIPE_REMOTE');
    assert.equal(err.message, 'it broke');
  });

  test('the NATS wire protocol typed by hand (what a C program or nc would send) gets an npipe server\'s reply', async (t) => {
    const url = natsUrl(t);
    if (!url) return;
    const address = parseNatsUrl(url);
    const srv = await serve(url, (req: string) => req.toUpperCase());
    t.after(() => srv.close());
    const [host, port] = address.server.split(':') as [string, string];
    const socket = new Socket();
    t.after(() => socket.destroy());
    let text = '';
    const reply = new Promise<string>((resolve) => {
      socket.setEncoding('utf8').on('data', (d: string) => {
        text += d;
        const m = /MSG _INBOX\.byhand 1 (\d+)\r\n/.exec(text);
        if (m && text.length >= m.index + m[0].length + Number(m[1])) resolve(text.slice(m.index + m[0].length, m.index + m[0].length + Number(m[1])));
      });
    });
    socket.connect(Number(port), host);
    socket.write(`CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.byhand 1\r\nPUB ${address.subject} _INBOX.byhand 5\r\nhello\r\n`);
    assert.equal(await reply, 'HELLO');
  });
});

describe('raw byte streams over NATS', () => {
  test('npipe send --format raw < file into npipe listen --format raw > file: the same bytes (no splice path for a URL)', { timeout: 60_000 }, async (t) => {
    const url = natsUrl(t, 'delivery=jetstream');
    if (!url) return;
    const dir = tempDir(t);
    const input = join(dir, 'in.bin');
    const output = join(dir, 'out.bin');
    const data = randomBytes(3 * 1024 * 1024 + 123);
    writeFileSync(input, data);
    const sent = await start('/bin/sh', ['-c', `"$1" "$2" send "$3" --format raw < "$4"`, 'sh', process.execPath, BIN, url, input]).done;
    assert.equal(sent.code, 0, sent.stderr);
    const listened = await start('/bin/sh', ['-c', `"$1" "$2" listen "$3" --format raw --timeout 2000 > "$4"`, 'sh', process.execPath, BIN, url, output]).done;
    assert.equal(listened.code, 3, listened.stderr); // ended by --timeout once everything had come
    assert.ok(readFileSync(output).equals(data));
  });
});

describe('the test and bench nats-server', () => {
  // As `npm run bench | head` does (the process dies, here by a throw, while its
  // server runs), and as `node --test` does to a test file past its timeout (SIGTERM).
  for (const [how, ending] of [
    ['throws', "throw new Error('crash');"],
    ['is sent SIGTERM', 'setInterval(() => {}, 1000);'],
  ] as const) {
    test(`does not outlive a process that ${how} without dispose(): the server is killed and the store removed`, async (t) => {
      if (!requireOrSkip(t, nats.available, NATS_INSTALL_HINT)) return;
      const module = new URL('./nats-server.js', import.meta.url).href;
      const script = `import { NatsServer } from ${JSON.stringify(module)};
        const s = await NatsServer.start();
        console.log(JSON.stringify({ pid: s.pid, store: s.store }));
        ${ending}`;
      const child = start(process.execPath, ['--input-type=module', '-e', script]);
      await child.waitForOutput('}');
      if (how === 'is sent SIGTERM') child.child.kill('SIGTERM');
      const r = await child.done;
      assert.equal(r.code, how === 'throws' ? 1 : 143, r.stderr);
      const { pid, store } = JSON.parse(r.stdout) as { pid: number; store: string };
      // Killed: gone (undefined), or a zombie ('Z') until init reaps it.
      const state = () => {
        try {
          return /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
        } catch {
          return undefined;
        }
      };
      await until(() => state() === undefined || state() === 'Z', `nats-server ${pid} to end`, 2000);
      assert.equal(existsSync(store), false);
    });
  }
});

describe('promises that had no test (issue 15, "A green run must mean the promises hold")', () => {
  test('the NATS connection lost with a request in flight: the request fails with ERR_NPIPE_UNREACHABLE', { timeout: 60_000 }, async (t) => {
    const own = await ownServer(t);
    if (!own) return;
    const url = own.url('lost.rpc');
    const started = join(tempDir(t), 'started');
    // The server in its own process, its handler busy until long after the request's own timeout.
    const server = npipe(['serve', url, '--exec', `touch "${started}"; sleep 30`]);
    t.after(() => server.child.kill('SIGKILL'));
    const client = await connect(url, { waitForServer: true, timeout: 20_000 });
    t.after(() => client.close());
    const outcome = client.request('hello').then(
      () => 'replied',
      (err: { code?: string }) => err.code,
    );
    await until(() => existsSync(started), 'the handler to start');
    await own.stop('SIGKILL');
    assert.equal(await outcome, 'ERR_NPIPE_UNREACHABLE');
  });

  test('receiver.giveBack() over JetStream: the message is delivered again at once, not after ack-wait', { timeout: 60_000 }, async (t) => {
    const url = natsUrl(t, 'delivery=jetstream&ack-wait=60000');
    if (!url) return;
    const sender = await openSender(url);
    await sender.send('again');
    await sender.send('after');
    await sender.close();
    const receiver = await openReceiver(url);
    t.after(() => receiver.close());
    assert.equal(await receiver.receive(), 'again');
    receiver.giveBack();
    // Not acknowledged (that would lose it) nor left to ack-wait (60 s): back well within 20 s.
    const next = [await receiver.receive({ signal: AbortSignal.timeout(20_000) }), await receiver.receive({ signal: AbortSignal.timeout(20_000) })];
    assert.deepEqual(next.sort(), ['after', 'again']);
  });

  test('FIFO-only CLI options with a nats:// URL are refused with ERR_NPIPE_INVALID_ARG (exit 2) before connecting', { timeout: 60_000 }, async () => {
    const url = 'nats://127.0.0.1:1/jobs';
    // Without them, each command tries to connect and finds nothing (exit 3): the option is what is refused.
    assert.equal((await run(['send', url, 'x'])).code, 3);
    assert.equal((await run(['listen', url])).code, 3);
    assert.equal((await run(['serve', url, '--echo'])).code, 3);
    const cases = [
      ['send', url, 'x', '--mode', '600'],
      ['send', url, 'x', '--pipe-size', '65536'],
      ['send', url, 'x', '--allow-shared'],
      ['send', url, 'x', '--no-create'],
      ['listen', url, '--mode', '600'],
      ['listen', url, '--pipe-size', '65536'],
      ['listen', url, '--allow-shared'],
      ['listen', url, '--no-create'],
      ['listen', url, '--once'],
      ['listen', url, '--max-partial', '1000'],
      ['serve', url, '--echo', '--allow-shared'],
    ];
    for (const args of cases) {
      const r = await run(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^npipe ${args[0]}: ERR_NPIPE_INVALID_ARG: [^\\n]*\\n$`));
    }
  });

  test('a message over the server\'s max_payload is refused with ERR_NPIPE_FRAME_TOO_LARGE before sending (core, JetStream, request); the sender carries on', { timeout: 60_000 }, async (t) => {
    if (!requireOrSkip(t, nats.available, NATS_INSTALL_HINT)) return;
    const conf = join(tempDir(t), 'small.conf');
    writeFileSync(conf, 'max_payload: 4096\n');
    const own = await NatsServer.start(['-c', conf]);
    t.after(() => own.dispose());
    const nc = await natsConnect({ servers: `127.0.0.1:${own.port}` });
    t.after(() => nc.close());
    const seen: number[] = [];
    nc.subscribe('small.>', {
      callback: (_err, msg) => {
        seen.push(msg.data.byteLength);
      },
    });
    await nc.flush();
    const core = await openSender<Buffer>(own.url('small.core'), { codec: 'bytes' });
    await assert.rejects(core.send(Buffer.alloc(4097)), { code: 'ERR_NPIPE_FRAME_TOO_LARGE' });
    await core.send(Buffer.alloc(4096)); // max_payload itself fits
    await core.close();
    const js = await openSender<Buffer>(own.url('small.js', 'delivery=jetstream'), { codec: 'bytes' });
    await assert.rejects(js.send(Buffer.alloc(4096)), { code: 'ERR_NPIPE_FRAME_TOO_LARGE' }); // room kept for JetStream's headers
    await js.send(Buffer.alloc(100));
    await js.close();
    const client = await connect(own.url('small.rpc'), { timeout: 5000 });
    await assert.rejects(client.request('x'.repeat(4097)), { code: 'ERR_NPIPE_FRAME_TOO_LARGE' });
    await client.close(); // here, not after the server is gone
    await nc.flush();
    await until(() => seen.length >= 2, 'the two messages that fit');
    await nc.flush();
    assert.deepEqual(seen, [4096, 100]);
  });
});

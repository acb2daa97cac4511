/**
 * Issue 15, the NATS findings: JetStream names that collided (#3), URLs that
 * crashed or let control characters through (#11), a bridge that hung or died
 * (#6, #5), a client that took replies over its limit (#19) and a server whose
 * waiting bound ignored empty requests (#1). Real nats-server, real processes.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { connect as natsConnect, headers, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstreamManager } from '@nats-io/jetstream';
import { connect, openReceiver, openSender, serve } from '../src/index.js';
import { WAITING_REQUEST_OVERHEAD } from '../src/drivers/nats/rpc-server.js';
import { MAX_SUBJECT_BYTES, parseNatsUrl, streamNameFor, subjectProblem } from '../src/drivers/nats/url.js';
import { npipe, run, sharedNatsServer, start, tempDir, until } from './helpers.js';

const nats = sharedNatsServer('attack-nats');

/** A base URL of the test's own (nats://127.0.0.1:P/attack-nats.sN), and a plain connection to its server. */
async function setup(t: TestContext): Promise<{ base: string; server: string; nc: NatsConnection } | undefined> {
  const base = nats.url(t);
  if (!base) return undefined;
  const server = parseNatsUrl(base).server;
  const nc = await natsConnect({ servers: server });
  t.after(() => nc.close());
  return { base, server, nc };
}

/** The one line npipe prints for an error: `npipe <cmd>: <CODE>: ...`, nothing else (no stack). */
function oneErrorLine(stderr: string, command: string, code: string): void {
  assert.match(stderr, new RegExp(`^npipe ${command}: ${code}: [^\\n]*\\n$`), stderr);
}

/** until() for a condition that needs a round trip. */
async function untilAsync(done: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await done()); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() > deadline) throw new Error(`still waiting for ${what} after ${timeoutMs} ms`);
  }
}

let names = 0;
const uniqueName = (prefix: string) => `${prefix}_${process.pid}_${++names}`;

describe('#15.3 JetStream streams and consumers', () => {
  test('#15.3 - coll.eu and coll_eu get streams of their own: a listener on one never takes (and acknowledges) the other\'s message', { timeout: 60_000 }, async (t) => {
    const s = await setup(t);
    if (!s) return;
    const dot = `${s.base}.coll.eu`;
    const under = `${s.base}.coll_eu`;
    assert.notEqual(parseNatsUrl(dot).stream, parseNatsUrl(under).stream);
    // As in the report: a listener on coll.eu (its stream and durable), a message for it, then a listener on coll_eu.
    const first = await run(['listen', dot, '--jetstream', '--count', '1', '--timeout', '300']);
    assert.equal(first.code, 3, first.stderr);
    const secret = await run(['send', dot, 'secret', '--jetstream']);
    assert.equal(secret.code, 0, secret.stderr);
    const stranger = await run(['listen', under, '--jetstream', '--count', '1', '--timeout', '1000']);
    assert.equal(stranger.stdout, '', 'the coll_eu listener got coll.eu\'s message');
    assert.equal(stranger.code, 3, stranger.stderr);
    // A send to coll_eu is stored (it used to be retried for ever: its stream did not capture it).
    const mine = await run(['send', under, 'mine', '--jetstream'], { hangMs: 15_000 });
    assert.equal(mine.code, 0, mine.stderr);
    const underGot = await run(['listen', under, '--jetstream', '--count', '1', '--timeout', '5000']);
    assert.equal(underGot.stdout, 'mine\n', underGot.stderr);
    const dotGot = await run(['listen', dot, '--jetstream', '--count', '1', '--timeout', '5000']);
    assert.equal(dotGot.stdout, 'secret\n', dotGot.stderr);
  });

  test('#15.3 - default stream names: distinct subjects (. against _, non-ASCII, alike for 64 characters) never share one; each is a valid NATS name', () => {
    const alike = 'x'.repeat(70);
    const subjects = ['coll.eu', 'coll_eu', 'coll-eu', 'café', 'cafe', 'caf_', 'cafè', '東京', '大阪', `${alike}.a`, `${alike}.b`, `${alike}a`, 'a.b.c', 'a_b.c', 'a.b_c'];
    const streams = subjects.map(streamNameFor);
    assert.equal(new Set(streams).size, subjects.length, streams.join(' '));
    for (const name of streams) assert.match(name, /^[A-Za-z0-9_-]{1,64}$/);
    // Near-collisions: subjects from a few characters that the old mapping folded together.
    const subject = fc
      .string({ unit: fc.constantFrom('a', 'b', '.', '_', '-', 'é', 'è', '東', '1'), minLength: 1, maxLength: 90 })
      .filter((x) => subjectProblem(x) === undefined);
    fc.assert(
      fc.property(subject, subject, (a, b) => {
        assert.match(streamNameFor(a), /^[A-Za-z0-9_-]{1,64}$/);
        assert.equal(parseNatsUrl(`nats://h/${encodeURIComponent(a)}`).stream, streamNameFor(a));
        return a === b || streamNameFor(a) !== streamNameFor(b);
      }),
      { numRuns: 2000 },
    );
  });

  test('#15.3 - docs/NATS.md\'s stream name example and its shell recipe for the hash are right', async () => {
    assert.equal(streamNameFor('jobs'), 'NPIPE_jobs_5d9a17cb70b9733aadc073a4');
    const recipe = await start('/bin/sh', ['-c', "printf %s 'coll.eu' | sha256sum | cut -c1-24"]).done;
    assert.equal(streamNameFor('coll.eu'), `NPIPE_coll_eu_${recipe.stdout.trim()}`);
  });

  test('#15.3 - two subjects alike for their first 64 characters each get their own messages', { timeout: 60_000 }, async (t) => {
    const s = await setup(t);
    if (!s) return;
    const alike = `${s.base}.${'y'.repeat(64)}`;
    for (const [suffix, text] of [['one', 'first'], ['two', 'second']]) {
      const sent = await run(['send', `${alike}.${suffix}`, text!, '--jetstream'], { hangMs: 15_000 });
      assert.equal(sent.code, 0, sent.stderr);
    }
    for (const [suffix, text] of [['two', 'second'], ['one', 'first']]) {
      const got = await run(['listen', `${alike}.${suffix}`, '--jetstream', '--count', '1', '--timeout', '5000']);
      assert.equal(got.stdout, `${text}\n`, got.stderr);
    }
  });

  test('#15.3 - a durable consumer that delivers another subject, or a pull consumer, is refused with ERR_NPIPE_INVALID_ARG, never reused', { timeout: 60_000 }, async (t) => {
    const s = await setup(t);
    if (!s) return;
    const stream = uniqueName('SHARED');
    const subject = parseNatsUrl(s.base).subject;
    const jsm = await jetstreamManager(s.nc);
    await jsm.streams.add({ name: stream, subjects: [`${subject}.>`] });
    t.after(() => jsm.streams.delete(stream).catch(() => {}));
    const one = `${s.base}.one?delivery=jetstream&stream=${stream}`;
    const two = `${s.base}.two?delivery=jetstream&stream=${stream}`;
    const receiverOne = await openReceiver(one); // makes the durable npipe, filtered on .one
    t.after(() => receiverOne.close());
    const sender = await openSender(one);
    await sender.send('for one');
    await sender.close();
    // The same durable name for .two: it would hand out .one's messages. Refused.
    await assert.rejects(openReceiver(two), { code: 'ERR_NPIPE_INVALID_ARG' });
    const cli = await run(['listen', two, '--count', '1', '--timeout', '2000']);
    assert.equal(cli.code, 2, cli.stderr);
    assert.equal(cli.stdout, '');
    oneErrorLine(cli.stderr, 'listen', 'ERR_NPIPE_INVALID_ARG');
    assert.equal(await receiverOne.receive({ signal: AbortSignal.timeout(10_000) }), 'for one');
    // A pull consumer (made by hand, or by an older npipe) on the right subject: not ours either.
    await jsm.consumers.add(stream, { durable_name: 'pulled', ack_policy: AckPolicy.Explicit, filter_subject: `${subject}.three` });
    await assert.rejects(openReceiver(`${s.base}.three?delivery=jetstream&stream=${stream}&durable=pulled`), { code: 'ERR_NPIPE_INVALID_ARG' });
  });

  test('#15.3 - a stream that does not capture the subject is refused (ERR_NPIPE_INVALID_ARG, exit 2) instead of sent into for ever', { timeout: 60_000 }, async (t) => {
    const s = await setup(t);
    if (!s) return;
    const stream = uniqueName('ONLYONE');
    const jsm = await jetstreamManager(s.nc);
    await jsm.streams.add({ name: stream, subjects: [`${parseNatsUrl(s.base).subject}.one`] });
    t.after(() => jsm.streams.delete(stream).catch(() => {}));
    const other = `${s.base}.two?delivery=jetstream&stream=${stream}`;
    const sent = await run(['send', other, 'lost?'], { hangMs: 15_000 });
    assert.equal(sent.code, 2, sent.stderr);
    oneErrorLine(sent.stderr, 'send', 'ERR_NPIPE_INVALID_ARG');
    await assert.rejects(openReceiver(other), { code: 'ERR_NPIPE_INVALID_ARG' });
  });

  test('#15.3 - a stream whose subjects are changed while a sender runs: its sends fail with ERR_NPIPE_NOT_FOUND instead of being retried for ever', { timeout: 60_000 }, async (t) => {
    const s = await setup(t);
    if (!s) return;
    const stream = uniqueName('MOVED');
    const subject = `${parseNatsUrl(s.base).subject}.moved`;
    const jsm = await jetstreamManager(s.nc);
    await jsm.streams.add({ name: stream, subjects: [subject] });
    t.after(() => jsm.streams.delete(stream).catch(() => {}));
    const sender = await openSender(`${s.base}.moved?delivery=jetstream&stream=${stream}`);
    await sender.send('stored');
    await jsm.streams.update(stream, { subjects: [`${subject}.elsewhere`] });
    await assert.rejects(sender.send('not stored'), { code: 'ERR_NPIPE_NOT_FOUND' });
    await sender.close();
  });

  test('#15.3 - a consumer the server will not create is one coded line, exit 2, not ERR_NPIPE_INTERNAL with a stack', { timeout: 60_000 }, async (t) => {
    const s = await setup(t);
    if (!s) return;
    const stream = uniqueName('FULL');
    const subject = parseNatsUrl(s.base).subject;
    const jsm = await jetstreamManager(s.nc);
    // One consumer at most, and it is taken: adding npipe's is a JetStream API error.
    await jsm.streams.add({ name: stream, subjects: [`${subject}.>`], max_consumers: 1 });
    t.after(() => jsm.streams.delete(stream).catch(() => {}));
    await jsm.consumers.add(stream, { durable_name: 'other', ack_policy: AckPolicy.Explicit });
    const listened = await run(['listen', `${s.base}.x?stream=${stream}`, '--jetstream', '--count', '1', '--timeout', '2000']);
    assert.equal(listened.code, 2, listened.stderr);
    oneErrorLine(listened.stderr, 'listen', 'ERR_NPIPE_INVALID_ARG');
  });

  test('#15.3 - a stream made earlier under another name that captures the subject (an older npipe\'s NPIPE_<subject>) is used', { timeout: 60_000 }, async (t) => {
    const s = await setup(t);
    if (!s) return;
    const legacy = uniqueName('NPIPE_legacy');
    const url = `${s.base}.legacy`;
    const jsm = await jetstreamManager(s.nc);
    await jsm.streams.add({ name: legacy, subjects: [parseNatsUrl(url).subject] });
    t.after(() => jsm.streams.delete(legacy).catch(() => {}));
    const sent = await run(['send', url, 'kept', '--jetstream']);
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal((await jsm.streams.info(legacy)).state.messages, 1);
    const got = await run(['listen', url, '--jetstream', '--count', '1', '--timeout', '5000']);
    assert.equal(got.stdout, 'kept\n', got.stderr);
  });
});

describe('#15.11 NATS URLs', () => {
  const bad = [
    'nats://h/%zz',
    'nats://h/a%',
    'nats://h/%E2%82',
    'nats://%zz:pw@h/s',
    'nats://me:%zz@h/s',
    'nats://h/a%00b',
    'nats://h/a%7Fb',
    'nats://h/a%0Ab',
    'nats://h/a%0Db',
    'nats://h/a%09b',
    'nats://h/a%C2%85b',
    'nats://h/a%E2%80%A8b',
    'nats://h/a\tb',
    'nats://h/a\nb',
    'nats://h/a%20b',
    'nats://me%00:pw@h/s',
    'nats://h/a..b',
    'nats://h/.a',
    'nats://h/a.',
    'nats://h/a.*',
    'nats://h/a.>',
    'nats://h/a%2A',
    'nats://h/a/../b',
    'nats://h/./b',
    'nats://h/x#frag',
    'nats://h/x?delivery=core&delivery=jetstream',
    'nats://h/x?ack-wait=1e3',
    'nats://h/x?ack-wait=99999999999999',
    `nats://h/${'s'.repeat(MAX_SUBJECT_BYTES + 1)}`,
    'nats://%41/x',
    'nats://h%00st/x',
    'nats://h:99999/x',
    'nats://caf\u00e9.example/x',
  ];

  test('#15.11 - malformed %-escapes, control characters, whitespace, empty tokens, wildcards and other mistakes are ERR_NPIPE_INVALID_ARG', () => {
    for (const url of bad) assert.throws(() => parseNatsUrl(url), { name: 'InvalidArgumentError', code: 'ERR_NPIPE_INVALID_ARG' }, JSON.stringify(url));
    // What NATS allows still works.
    assert.equal(parseNatsUrl('nats://h/caf%C3%A9.%E6%9D%B1').subject, 'café.東');
    assert.equal(parseNatsUrl('nats://h/a%25b').subject, 'a%b');
    assert.equal(parseNatsUrl('nats://h/$SRV.PING').subject, '$SRV.PING');
    assert.equal(parseNatsUrl(`nats://h/${'s'.repeat(MAX_SUBJECT_BYTES)}`).subject.length, MAX_SUBJECT_BYTES);
    assert.equal(parseNatsUrl('nats://m%40e:p%3Aw@h/s').user, 'm@e');
    assert.equal(parseNatsUrl('nats://m%40e:p%3Aw@h/s').pass, 'p:w');
    assert.equal(parseNatsUrl('nats://[::1]:4333/s').server, '[::1]:4333');
    assert.equal(parseNatsUrl('nats://nats-1.example.com/s').server, 'nats-1.example.com:4222');
  });

  test('#15.11 - any text after nats://h/ is a subject that follows NATS\'s rules, or ERR_NPIPE_INVALID_ARG; nothing else is thrown', () => {
    const check = (raw: string) => {
      let subject: string;
      try {
        subject = parseNatsUrl(`nats://h/${raw}`).subject;
      } catch (err) {
        assert.equal((err as { code?: string }).code, 'ERR_NPIPE_INVALID_ARG', String(err));
        return;
      }
      assert.doesNotMatch(subject, /[\u0000-\u0020\u007f-\u009f*>\s]/u, JSON.stringify(subject));
      assert.ok(!subject.split('.').includes(''), JSON.stringify(subject));
      assert.ok(Buffer.byteLength(subject) <= MAX_SUBJECT_BYTES);
    };
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 40 }), check), { numRuns: 3000 });
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => check(encodeURIComponent(s.replace(/[\uD800-\uDFFF]/g, '')))), { numRuns: 3000 });
    const escapes = fc.string({ unit: fc.constantFrom('%', '0', '7', 'F', 'z', 'C', '2', '.', 'a', '*', '>', '/', '#', '?'), maxLength: 20 });
    fc.assert(fc.property(escapes, check), { numRuns: 3000 });
  });

  test('#15.11 - the CLI: a malformed %-escape or a control character in a NATS URL is one ERR_NPIPE_INVALID_ARG line, exit 2', { timeout: 60_000 }, async (t) => {
    const dir = tempDir(t);
    // 127.0.0.1:1 answers nothing: exit 2 proves the URL was refused before any connecting (that would be exit 3).
    const cases: Array<[string, string[]]> = [
      ['send', ['send', 'nats://127.0.0.1:1/%zz', 'x']],
      ['listen', ['listen', 'nats://%zz:pw@127.0.0.1:1/s']],
      ['send', ['send', 'nats://127.0.0.1:1/a%00b', 'x']],
      ['listen', ['listen', 'nats://127.0.0.1:1/a%7Fb']],
      ['request', ['request', 'nats://127.0.0.1:1/a%0Ab', 'x']],
      ['serve', ['serve', 'nats://127.0.0.1:1/%zz', '--echo']],
      ['bridge', ['bridge', join(dir, 'f'), 'nats://127.0.0.1:1/a%00b']],
      ['bridge', ['bridge', 'nats://me:%zz@127.0.0.1:1/x', join(dir, 'g')]],
    ];
    for (const [command, args] of cases) {
      const r = await run(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      oneErrorLine(r.stderr, command, 'ERR_NPIPE_INVALID_ARG');
    }
  });
});

describe('#15.6 #15.5 the bridge', () => {
  for (const jetstream of [false, true]) {
    test(`#15.6 - bridge FIFO -> unreachable NATS${jetstream ? ' (--jetstream)' : ''} exits 3 with ERR_NPIPE_UNREACHABLE instead of waiting for ever`, { timeout: 30_000 }, async (t) => {
      const fifo = join(tempDir(t), 'f');
      const r = await run(['bridge', fifo, 'nats://127.0.0.1:1/x', ...(jetstream ? ['--jetstream'] : [])], { hangMs: 15_000 });
      assert.equal(r.code, 3, r.stderr);
      oneErrorLine(r.stderr, 'bridge', 'ERR_NPIPE_UNREACHABLE');
    });
  }

  test('#15.6 - bridge unreachable NATS -> FIFO exits 3 with ERR_NPIPE_UNREACHABLE too', { timeout: 30_000 }, async (t) => {
    const r = await run(['bridge', 'nats://127.0.0.1:1/x', join(tempDir(t), 'f')], { hangMs: 15_000 });
    assert.equal(r.code, 3, r.stderr);
    oneErrorLine(r.stderr, 'bridge', 'ERR_NPIPE_UNREACHABLE');
  });

  test('#15.5 - bridge FIFO -> NATS: a line over the limit between two good lines is reported (one coded line) and skipped; both good lines and later ones arrive', { timeout: 60_000 }, async (t) => {
    const url = nats.url(t);
    if (!url) return;
    const fifo = join(tempDir(t), 'jobs');
    const listener = await openReceiver(url);
    t.after(() => listener.close());
    const bridge = npipe(['bridge', fifo, url]);
    t.after(() => bridge.child.kill('SIGKILL'));
    await bridge.waitForError(`${fifo} -> ${url}`);
    // 2,000,000 bytes: over the NATS server's max_payload (1 MiB).
    const script = `{ echo good1; head -c 2000000 /dev/zero | tr '\\0' A; echo; echo good2; } > "$1"`;
    assert.equal((await start('/bin/sh', ['-c', script, 'sh', fifo]).done).code, 0);
    assert.equal(await listener.receive({ signal: AbortSignal.timeout(10_000) }), 'good1');
    assert.equal(await listener.receive({ signal: AbortSignal.timeout(10_000) }), 'good2');
    await bridge.waitForError('ERR_NPIPE_FRAME_TOO_LARGE');
    // Still running, still carrying.
    assert.equal((await start('/bin/sh', ['-c', 'echo good3 > "$1"', 'sh', fifo]).done).code, 0);
    assert.equal(await listener.receive({ signal: AbortSignal.timeout(10_000) }), 'good3');
    assert.equal(bridge.child.exitCode, null);
    bridge.child.kill('SIGTERM');
    const stopped = await bridge.done;
    assert.equal(stopped.code, 0, stopped.stderr);
    const lines = stopped.stderr.trimEnd().split('\n');
    assert.equal(lines.filter((l) => l.includes('ERR_NPIPE')).length, 1, stopped.stderr);
    assert.match(lines.find((l) => l.includes('ERR_NPIPE'))!, /^npipe bridge: skipped a message of 2000000 bytes from .*: ERR_NPIPE_FRAME_TOO_LARGE: /);
    assert.doesNotMatch(stopped.stderr, /\n\s+at /, 'no stack');
  });

  test('#15.5 - bridge NATS -> FIFO: a message the FIFO\'s format cannot carry (a newline in lines) is reported and skipped, not retried for ever; the next one arrives', { timeout: 60_000 }, async (t) => {
    const url = nats.url(t, 'delivery=jetstream');
    if (!url) return;
    const fifo = join(tempDir(t), 'out');
    const sender = await openSender(url);
    await sender.send('one');
    await sender.send('two\nlines');
    await sender.send('three');
    await sender.close();
    const bridge = npipe(['bridge', url, fifo]);
    t.after(() => bridge.child.kill('SIGKILL'));
    const reader = start('/bin/sh', ['-c', 'while [ ! -p "$1" ]; do sleep 0.05; done; head -n 2 < "$1"', 'sh', fifo]);
    const read = await reader.done;
    assert.equal(read.stdout, 'one\nthree\n');
    await bridge.waitForError('ERR_NPIPE_BAD_FRAME');
    assert.equal(bridge.child.exitCode, null);
    bridge.child.kill('SIGTERM');
    assert.equal((await bridge.done).code, 0);
  });
});

describe('#15.19 #15.1 request/reply over NATS', () => {
  test('#15.19 - a reply above the client\'s maxMessageSize is ERR_NPIPE_FRAME_TOO_LARGE; the client carries on', async (t) => {
    const url = nats.url(t);
    if (!url) return;
    const srv = await serve(url, (req: string) => (req === 'big' ? 'x'.repeat(5000) : 'small'));
    t.after(() => srv.close());
    const client = await connect(url, { maxMessageSize: 1000, timeout: 10_000 });
    t.after(() => client.close());
    await assert.rejects(client.request('big'), { code: 'ERR_NPIPE_FRAME_TOO_LARGE' });
    assert.equal(await client.request('tiny'), 'small');
    // The CLI's --max-size is the same limit.
    const cli = await run(['request', url, 'big', '--max-size', '1000', '--timeout', '10000']);
    assert.equal(cli.code, 1, cli.stderr);
    oneErrorLine(cli.stderr, 'request', 'ERR_NPIPE_FRAME_TOO_LARGE');
  });

  test('#15.1 - a flood of empty requests is bounded: exactly those past maxWaitingBytes (payload + overhead each) get ERR_NPIPE_BUSY', { timeout: 60_000 }, async (t) => {
    const s = await setup(t);
    if (!s) return;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const srv = await serve(s.base, async (req: string) => {
      await released;
      return req;
    }, { concurrency: 1 });
    t.after(() => {
      release(); // a failed assertion must not leave close() waiting for the handlers
      return srv.close();
    });
    const subject = parseNatsUrl(s.base).subject;
    const total = 20_000;
    const waiting = Math.floor((4 * 1024 * 1024) / WAITING_REQUEST_OVERHEAD); // the default maxWaitingBytes
    let busy = 0;
    let answered = 0;
    const inbox = `_INBOX.flood.${process.pid}`;
    s.nc.subscribe(`${inbox}.*`, {
      callback: (_err, msg: Msg) => {
        if (msg.headers?.get('Npipe-Error-Code') === 'ERR_NPIPE_BUSY') busy++;
        else answered++;
      },
    });
    await s.nc.flush();
    for (let i = 0; i < total; i++) {
      s.nc.publish(subject, new Uint8Array(0), { reply: `${inbox}.${i}` });
      if (i % 1000 === 999) await s.nc.flush();
    }
    await s.nc.flush();
    await until(() => srv.stats.requests === total, `the server to take ${total} requests`, 30_000);
    await until(() => busy >= total - 1 - waiting, 'the BUSY replies', 30_000);
    release();
    await until(() => busy + answered === total, 'every reply', 30_000);
    assert.equal(busy, total - 1 - waiting, 'one running, the rest of what fits waits, the others are refused');
    assert.equal(answered, 1 + waiting);
  });

  test('#15.1 - room for three waiting empty requests: with one running and three waiting, the fifth empty request is ERR_NPIPE_BUSY', async (t) => {
    const s = await setup(t);
    if (!s) return;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    // Room for 3 empty requests.
    const srv = await serve(s.base, async (req: string) => {
      await released;
      return req;
    }, { concurrency: 1, maxWaitingBytes: 3 * WAITING_REQUEST_OVERHEAD });
    t.after(() => {
      release();
      return srv.close();
    });
    const client = await connect(s.base, { timeout: 20_000 });
    t.after(() => client.close());
    const outcomes = ['', '', '', '', ''].map((req) =>
      client.request(req).then(
        () => 'ok',
        (err: { code?: string; remoteCode?: string }) => err.remoteCode ?? err.code ?? String(err),
      ),
    );
    await until(() => srv.stats.requests === 5, 'five requests taken');
    release();
    assert.deepEqual(await Promise.all(outcomes), ['ok', 'ok', 'ok', 'ok', 'ERR_NPIPE_BUSY']);
  });
});

describe('hostile NATS peers', () => {
  test('a responder naming a foreign subject as its control subject ($JS.API...) gets no cancel or liveness request sent there', { timeout: 30_000 }, async (t) => {
    const s = await setup(t);
    if (!s) return;
    const subject = parseNatsUrl(s.base).subject;
    const victim = `$JS.API.STREAM.DELETE.${uniqueName('VICTIM')}`;
    // The rogue says it took the request, names the victim subject, and never answers.
    s.nc.subscribe(subject, {
      callback: (_err, msg) => {
        const h = headers();
        h.set('Npipe-Status', 'accepted');
        h.set('Npipe-Server', victim);
        msg.respond(new Uint8Array(0), { headers: h });
      },
    });
    const landed: string[] = [];
    const observer = await natsConnect({ servers: s.server });
    t.after(() => observer.close());
    observer.subscribe(victim, { callback: (_err, msg) => void landed.push(msg.subject) });
    await Promise.all([s.nc.flush(), observer.flush()]);
    const client = await connect(s.base);
    t.after(() => client.close());
    // 1.5 s: several of the 250 ms liveness checks, then a cancel at the timeout, would have gone out.
    await assert.rejects(client.request('hi', { timeout: 1500 }), { code: 'ERR_NPIPE_TIMEOUT' });
    await client.close();
    await observer.flush();
    assert.deepEqual(landed, []);
  });
});

describe('hostile NATS requesters', () => {
  test('a request whose reply subject is a system subject ($JS.API.STREAM.DELETE...) is not answered: the stream survives', { timeout: 30_000 }, async (t) => {
    const s = await setup(t);
    if (!s) return;
    const stream = uniqueName('TARGET');
    const jsm = await jetstreamManager(s.nc);
    await jsm.streams.add({ name: stream, subjects: [`${parseNatsUrl(s.base).subject}.target`] });
    t.after(() => jsm.streams.delete(stream).catch(() => {}));
    const events: string[] = [];
    const srv = await serve(s.base, (req: string) => req, { onEvent: (e) => events.push(e.kind) });
    t.after(() => srv.close());
    s.nc.publish(parseNatsUrl(s.base).subject, new Uint8Array(0), { reply: `$JS.API.STREAM.DELETE.${stream}` });
    s.nc.publish(parseNatsUrl(s.base).subject, new TextEncoder().encode('{}'), { reply: `$JS.API.STREAM.DELETE.${stream}` });
    await s.nc.flush();
    await until(() => srv.stats.refused === 2, 'both refused');
    assert.deepEqual(events, ['bad-message', 'bad-message']);
    assert.equal(srv.stats.replies, 0);
    assert.equal((await jsm.streams.info(stream)).config.name, stream);
  });
});

describe('hostile NATS publishers', () => {
  test('a message published on a JetStream receiver\'s deliver subject by a peer is not delivered, and not acknowledged to the reply it names', { timeout: 30_000 }, async (t) => {
    const s = await setup(t);
    if (!s) return;
    const target = uniqueName('TARGET');
    const jsm = await jetstreamManager(s.nc);
    await jsm.streams.add({ name: target, subjects: [`${parseNatsUrl(s.base).subject}.target`] });
    t.after(() => jsm.streams.delete(target).catch(() => {}));
    const url = `${s.base}.jobs?delivery=jetstream`;
    const address = parseNatsUrl(url);
    const receiver = await openReceiver(url);
    t.after(() => receiver.close());
    const deliver = `_NPIPE.deliver.${address.stream}.${address.durable}`;
    s.nc.publish(deliver, new TextEncoder().encode('forged'), { reply: `$JS.API.STREAM.DELETE.${target}` });
    await s.nc.flush();
    const sender = await openSender(url);
    await sender.send('real');
    await sender.close();
    assert.equal(await receiver.receive({ signal: AbortSignal.timeout(10_000) }), 'real');
    await receiver.receive({ signal: AbortSignal.timeout(1) }).catch(() => {}); // acknowledges 'real'
    assert.equal((await jsm.streams.info(target)).config.name, target);
  });
});

describe('JetStream under a slow user', () => {
  test('messages a receiver holds and has not handed out yet are not delivered twice when they wait longer than ack-wait', { timeout: 30_000 }, async (t) => {
    const s = await setup(t);
    if (!s) return;
    const url = `${s.base}.slow?delivery=jetstream&ack-wait=500`;
    const address = parseNatsUrl(url);
    const sender = await openSender(url);
    for (const m of ['a', 'b', 'c']) await sender.send(m);
    await sender.close();
    const receiver = await openReceiver(url);
    t.after(() => receiver.close());
    const jsm = await jetstreamManager(s.nc);
    // All three pushed to the receiver, and four ack-waits pass while none is taken.
    await untilAsync(async () => (await jsm.consumers.info(address.stream, address.durable)).delivered.stream_seq === 3, 'all three pushed');
    const since = Date.now();
    let redelivered = 0;
    await untilAsync(async () => {
      redelivered = (await jsm.consumers.info(address.stream, address.durable)).num_redelivered;
      return redelivered > 0 || Date.now() - since > 2000;
    }, 'four ack-waits');
    assert.equal(redelivered, 0);
    const got = [await receiver.receive(), await receiver.receive(), await receiver.receive()];
    assert.deepEqual(got, ['a', 'b', 'c']);
    await assert.rejects(receiver.receive({ signal: AbortSignal.timeout(700) }), { name: 'TimeoutError' });
  });
});

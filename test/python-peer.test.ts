/**
 * The Python package in python/ (issue 21) against the Node implementation, both
 * ways, in every format; its own unittest suite (PROTOCOL.md's test vectors, the
 * reader rules, the FIFO checks) run from here so that CI runs it too.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openReceiver, openSender, serve, type DropInfo, type FormatName } from '../src/index.js';
import { cpSync, existsSync } from 'node:fs';
import { EXAMPLES, npipe, requireOrSkip, start, tempDir, until, waitForOpen, type Running } from './helpers.js';
import { ENV, PYTHON_DIR, hasPython, parseHex, peer } from './python-helpers.js';

const hexLines = (messages: Buffer[]) => messages.map((m) => (m.length ? m.toString('hex') : '') + '\n').join('');

/** Messages each format can carry; a large one where the format allows it, crossing PIPE_BUF. */
function messagesFor(format: string): Buffer[] {
  const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  if (format === 'lines') return [Buffer.from('hello'), Buffer.alloc(0), Buffer.from('caf\xe9 \r', 'latin1'), Buffer.alloc(100_000, 'L')];
  if (format.startsWith('fixed:')) return [Buffer.from('01234567'), Buffer.from([0, 1, 2, 3, 255, 10, 13, 0]), Buffer.from('abcdefgh')];
  if (format === 'raw') return [Buffer.concat([binary, Buffer.alloc(70_000, 7)])];
  return [Buffer.from('hello'), Buffer.alloc(0), binary, Buffer.alloc(200_000, 'F'), Buffer.alloc(4088, 1), Buffer.alloc(4089, 2)];
}

const FORMATS = ['lines', 'length', 'fixed:8', 'raw', 'frames'] as FormatName[];

describe('the Python package: its own tests', () => {
  test('python -m unittest: PROTOCOL.md test vectors, reader rules, formats, FIFO checks', (t) => {
    if (!requireOrSkip(t, hasPython, 'python3 (3.9 or later) is missing')) return;
    const r = spawnSync('python3', ['-m', 'unittest', 'discover', '-s', 'tests', '-t', '.'], { cwd: PYTHON_DIR, env: ENV, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /Ran \d+ tests/);
    assert.match(r.stderr, /\nOK/);
  });
});

describe('the Python package: installing it', () => {
  test('pip install of a copy of python/ into a fresh venv: import npipe works from anywhere and talks to Node', async (t) => {
    if (!requireOrSkip(t, hasPython, 'python3 (3.9 or later) is missing')) return;
    const dir = tempDir(t);
    // A copy, as a fresh clone has it (no build/ or egg-info left from an earlier install).
    cpSync(PYTHON_DIR, join(dir, 'src'), { recursive: true, filter: (f) => !/(__pycache__|\.egg-info|\/build)$/.test(f) });
    const venv = spawnSync('python3', ['-m', 'venv', join(dir, 'venv')], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(venv.status, 0, venv.stderr);
    // pip's own configuration decides where setuptools comes from (PyPI, or a local index offline).
    const pip = spawnSync(join(dir, 'venv', 'bin', 'pip'), ['install', join(dir, 'src')], { encoding: 'utf8', timeout: 170_000 });
    assert.equal(pip.status, 0, pip.stdout + pip.stderr);
    const path = join(dir, 'p');
    const receiver = await openReceiver(path, { format: 'frames', codec: 'bytes' });
    t.after(() => receiver.close());
    const code = 'import npipe, sys\nassert "/venv/" in npipe.__file__, npipe.__file__\nwith npipe.open_sender(sys.argv[1], timeout=10) as s: s.send(b"installed")';
    const py = start(join(dir, 'venv', 'bin', 'python'), ['-c', code, path], { cwd: dir, env: { ...process.env, PYTHONPATH: '' } });
    assert.deepEqual(Buffer.from((await receiver.receive({ signal: AbortSignal.timeout(20_000) })) as Buffer), Buffer.from('installed'));
    const r = await py.done;
    assert.equal(r.code, 0, r.stderr);
  });
});

describe('Python <-> Node, every format, byte for byte', () => {
  for (const format of FORMATS) {
    test(`Node openSender -> Python open_receiver: ${format}`, async (t) => {
      const path = join(tempDir(t), 'p');
      const messages = messagesFor(format);
      const total = format === 'raw' ? messages[0]!.length : messages.length;
      const reader = peer(t, ['recv', path, format, String(total)]);
      if (!reader) return;
      await reader.waitForError('READY');
      const sender = await openSender(path, { format, codec: 'bytes', timeout: 10_000 });
      for (const m of messages) await sender.send(m);
      await sender.close();
      const r = await reader.done;
      assert.equal(r.code, 0, r.stderr);
      const got = parseHex(r.stdout);
      if (format === 'raw') assert.deepEqual(Buffer.concat(got), messages[0]);
      else assert.deepEqual(got, messages);
    });

    test(`Python open_sender -> Node openReceiver: ${format}`, async (t) => {
      const path = join(tempDir(t), 'p');
      const messages = messagesFor(format);
      const receiver = await openReceiver(path, { format, codec: 'bytes' });
      t.after(() => receiver.close());
      const writer = peer(t, ['send', path, format], hexLines(messages));
      if (!writer) return;
      const got: Buffer[] = [];
      const want = format === 'raw' ? messages[0]!.length : messages.length;
      let have = 0;
      while (have < want) {
        const m = (await receiver.receive({ signal: AbortSignal.timeout(20_000) })) as Buffer;
        got.push(Buffer.from(m));
        have += format === 'raw' ? m.length : 1;
      }
      const w = await writer.done;
      assert.equal(w.code, 0, w.stderr);
      if (format === 'raw') assert.deepEqual(Buffer.concat(got), messages[0]);
      else assert.deepEqual(got, messages);
    });
  }

  test('the CLI: npipe send --format frames -> Python, and Python -> npipe listen --format frames --json', async (t) => {
    const dir = tempDir(t);
    const reader = peer(t, ['recv', join(dir, 'a'), 'frames', '2']);
    if (!reader) return;
    await reader.waitForError('READY');
    const sent = await npipe(['send', join(dir, 'a'), 'hello from npipe', 'second', '--format', 'frames', '--timeout', '10s']).done;
    assert.equal(sent.code, 0, sent.stderr);
    const r = await reader.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(parseHex(r.stdout).map(String), ['hello from npipe', 'second']);

    const listener = npipe(['listen', join(dir, 'b'), '--format', 'frames', '--count', '2', '--json']);
    t.after(() => listener.child.kill());
    const writer = peer(t, ['send', join(dir, 'b'), 'frames'], hexLines([Buffer.from('from python'), Buffer.alloc(10_000, 'y')]));
    const w = await writer!.done;
    assert.equal(w.code, 0, w.stderr);
    const l = await listener.done;
    assert.equal(l.code, 0, l.stderr);
    assert.deepEqual(
      l.stdout.trim().split('\n').map((line) => JSON.parse(line) as unknown),
      [{ text: 'from python' }, { text: 'y'.repeat(10_000) }],
    );
  });
});

/** Messages of writer `who`: numbered, some over PIPE_BUF so their packets interleave with the others'. */
function numbered(who: string, count: number, large = 30_000): Buffer[] {
  return Array.from({ length: count }, (_, i) => Buffer.concat([Buffer.from(`${who}:${i}:`), Buffer.alloc(i % 3 === 0 ? large + i : 100 + i, who)]));
}

function checkPerWriter(got: Buffer[], writers: Record<string, Buffer[]>) {
  for (const [who, sent] of Object.entries(writers)) {
    const mine = got.filter((m) => m.toString('latin1').startsWith(`${who}:`));
    assert.equal(mine.length, sent.length, `${who}: ${mine.length} of ${sent.length}`);
    mine.forEach((m, i) => assert.ok(m.equals(sent[i]!), `${who} message ${i} is not whole or out of order`));
  }
  assert.equal(got.length, Object.values(writers).reduce((n, s) => n + s.length, 0));
}

describe('Python and Node writers at once into one frames reader', () => {
  test('a Node reader: every message whole, each writer in order', async (t) => {
    const path = join(tempDir(t), 'p');
    const drops: DropInfo[] = [];
    const receiver = await openReceiver(path, { format: 'frames', codec: 'bytes', onDrop: (d) => drops.push(d) });
    t.after(() => receiver.close());
    const writers = { P: numbered('P', 60), Q: numbered('Q', 60), N: numbered('N', 60) };
    const py1 = peer(t, ['send', path, 'frames'], hexLines(writers.P));
    const py2 = peer(t, ['send', path, 'frames'], hexLines(writers.Q));
    if (!py1 || !py2) return;
    const node = (async () => {
      const s = await openSender(path, { format: 'frames', codec: 'bytes', timeout: 10_000 });
      for (const m of writers.N) await s.send(m);
      await s.close();
    })();
    const got: Buffer[] = [];
    while (got.length < 180) got.push(Buffer.from((await receiver.receive({ signal: AbortSignal.timeout(20_000) })) as Buffer));
    await node;
    for (const p of [py1, py2]) assert.equal((await p.done).code, 0);
    checkPerWriter(got, writers);
    assert.deepEqual(drops, []);
  });

  test('a Python reader: every message whole, each writer in order', async (t) => {
    const path = join(tempDir(t), 'p');
    const writers = { P: numbered('P', 60), N: numbered('N', 60), M: numbered('M', 60) };
    const reader = peer(t, ['recv', path, 'frames', '180']);
    if (!reader) return;
    await reader.waitForError('READY');
    const py = peer(t, ['send', path, 'frames'], hexLines(writers.P))!;
    const node = (who: 'N' | 'M') => async () => {
      const s = await openSender(path, { format: 'frames', codec: 'bytes', timeout: 10_000 });
      for (const m of writers[who]) await s.send(m);
      await s.close();
    };
    await Promise.all([node('N')(), node('M')()]);
    assert.equal((await py.done).code, 0);
    const r = await reader.done;
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /DROPPED/);
    checkPerWriter(parseHex(r.stdout), writers);
  });
});

describe('Python and Node writers at once, lines and length: the flock(2) every npipe writer takes', () => {
  for (const format of ['lines', 'length'] as FormatName[]) {
    test(`${format}: messages over PIPE_BUF from a Python and a Node writer reach a Node reader whole`, async (t) => {
      const path = join(tempDir(t), 'p');
      const receiver = await openReceiver(path, { format, codec: 'bytes' });
      t.after(() => receiver.close());
      // Messages larger than the pipe (even one npipe enlarged to 1 MiB) go out in several writes: only the lock keeps them apart.
      const writers = { P: numbered('P', 20, 3_000_000), N: numbered('N', 20, 3_000_000) };
      const py = peer(t, ['numbered', path, format, 'P', '20', '3000000']);
      if (!py) return;
      await py.waitForError('OPEN');
      const node = (async () => {
        const s = await openSender(path, { format, codec: 'bytes', timeout: 10_000 });
        for (const m of writers.N) await s.send(m);
        await s.close();
      })();
      const got: Buffer[] = [];
      while (got.length < 40) got.push(Buffer.from((await receiver.receive({ signal: AbortSignal.timeout(20_000) })) as Buffer));
      await node;
      assert.equal((await py.done).code, 0);
      checkPerWriter(got, writers);
    });
  }
});

describe('a writer killed mid-message', () => {
  test('a Python writer SIGKILLed between packets: the Node reader drops the partial, later messages arrive', async (t) => {
    const path = join(tempDir(t), 'p');
    const drops: DropInfo[] = [];
    const receiver = await openReceiver(path, { format: 'frames', codec: 'bytes', onDrop: (d) => drops.push(d) });
    t.after(() => receiver.close());
    const hanging = peer(t, ['hang', path, '1000000']);
    if (!hanging) return;
    await hanging.waitForOutput('PAUSED');
    hanging.child.kill('SIGKILL');
    await hanging.done;
    const after = peer(t, ['send', path, 'frames'], hexLines([Buffer.from('after'), Buffer.alloc(50_000, 'a')]))!;
    const got = [(await receiver.receive({ signal: AbortSignal.timeout(20_000) })) as Buffer, (await receiver.receive({ signal: AbortSignal.timeout(20_000) })) as Buffer];
    assert.equal((await after.done).code, 0);
    assert.deepEqual(got.map((m) => Buffer.from(m)), [Buffer.from('after'), Buffer.alloc(50_000, 'a')]);
    for (let i = 0; i < 200 && drops.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    assert.equal(drops.length, 1, JSON.stringify(drops));
    assert.equal(drops[0]!.reason, 'writer-died');
  });
});

describe("python/examples: the textbook's writer and reader with npipe demo's programs", () => {
  const PY_EXAMPLES = fileURLToPath(new URL('../../python/examples/', import.meta.url));
  const program = (lang: 'python' | 'node', role: 'write' | 'read', cwd: string) =>
    lang === 'python'
      ? start('python3', [join(PY_EXAMPLES, role === 'write' ? 'write_to_named_pipe.py' : 'read_from_named_pipe.py')], { cwd, env: ENV })
      : start(process.execPath, [join(EXAMPLES, role === 'write' ? 'write_to_named_pipe.js' : 'read_from_named_pipe.js')], { cwd });

  for (const [writerLang, readerLang] of [
    ['python', 'node'],
    ['node', 'python'],
    ['python', 'python'],
  ] as const) {
    for (const first of ['writer', 'reader'] as const) {
      test(`${writerLang} writer -> ${readerLang} reader, the ${first} started first: the whole line, the writer's pid`, async (t) => {
        if (!requireOrSkip(t, hasPython, 'python3 (3.9 or later) is missing')) return;
        const dir = tempDir(t);
        const path = join(dir, 'my_pipe');
        let writer: Running;
        let reader: Running;
        if (first === 'writer') {
          writer = program(writerLang, 'write', dir);
          // It has made my_pipe and waits for a reader.
          await until(() => existsSync(path), 'the writer to create my_pipe');
          reader = program(readerLang, 'read', dir);
        } else {
          reader = program(readerLang, 'read', dir);
          await waitForOpen(reader.child.pid, path);
          writer = program(writerLang, 'write', dir);
        }
        t.after(() => {
          writer.child.kill('SIGKILL');
          reader.child.kill('SIGKILL');
        });
        const [w, r] = await Promise.all([writer.done, reader.done]);
        assert.equal(w.code, 0, w.stderr);
        assert.equal(r.code, 0, r.stderr);
        const message = `Hello from pid [${writer.child.pid}]`;
        assert.equal(w.stdout, `I pid [${writer.child.pid}] sent a message => ${message}\n`);
        assert.equal(r.stdout, `I pid [${reader.child.pid}] received a message => ${message}\n`);
      });
    }
  }
});

describe('a writer killed mid-message, the reverse', () => {
  test('a Node writer SIGKILLed half way through an 8 MiB message: the Python reader drops the partial (writer-died), later messages arrive', async (t) => {
    const path = join(tempDir(t), 'p');
    const reader = peer(t, ['recv', path, 'frames', '2']);
    if (!reader) return;
    await reader.waitForError('READY');
    const partial = start(process.execPath, [fileURLToPath(new URL('./fixtures/partial.js', import.meta.url)), path, '1']);
    t.after(() => partial.child.kill('SIGKILL'));
    await partial.waitForOutput('half');
    partial.child.kill('SIGKILL');
    await partial.done;
    // The reader finds the dead writer's pid gone (it looks every 500 ms while a message is in progress).
    await reader.waitForError('DROP writer-died');
    const sender = await openSender(path, { format: 'frames', codec: 'bytes', timeout: 10_000 });
    await sender.send(Buffer.from('after'));
    await sender.send(Buffer.alloc(50_000, 'a'));
    await sender.close();
    const r = await reader.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(parseHex(r.stdout), [Buffer.from('after'), Buffer.alloc(50_000, 'a')]);
    assert.equal(r.stderr.match(/DROP /g)?.length, 1, r.stderr);
  });
});

describe('request/reply: a Python client (npipe.connect) and a Node server', () => {
  test('replies byte for byte (small and over PIPE_BUF both ways), a handler error crosses as RemoteError with its code, a timeout cancels the handler, the reply FIFO is removed', async (t) => {
    const path = join(tempDir(t), 'server');
    const cancelled: string[] = [];
    const server = await serve(
      path,
      async (request: Buffer, { signal }) => {
        const text = request.subarray(0, 5).toString();
        if (text === 'fail:') throw Object.assign(new Error('the handler failed'), { code: 'E_HANDLER' });
        if (text === 'slow:') {
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
          cancelled.push(request.toString());
          return Buffer.from('too late');
        }
        if (text === 'big::') return Buffer.alloc(300_000, 'r');
        return Buffer.concat([Buffer.from('reply:'), request]);
      },
      { codec: 'bytes' },
    );
    t.after(() => server.close());
    const big = Buffer.alloc(200_000, 'q');
    const steps = [
      { req: Buffer.from('hello').toString('hex') },
      { req: Buffer.from([0, 1, 2, 255]).toString('hex') },
      { req: big.toString('hex') },
      { req: Buffer.from('big::').toString('hex') },
      { req: Buffer.from('fail:').toString('hex') },
      { req: Buffer.from('slow:1').toString('hex'), timeout: 0.3 },
      { req: Buffer.from('after the timeout').toString('hex') },
    ];
    const client = peer(t, ['rpc', path], JSON.stringify(steps));
    if (!client) return;
    const r = await client.done;
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { ok?: string; error?: string; remote_code?: string; reply_path: string });
    const ok = (i: number) => Buffer.from(out[i]!.ok ?? 'no reply', 'hex');
    assert.deepEqual(ok(0), Buffer.from('reply:hello'));
    assert.deepEqual(ok(1), Buffer.concat([Buffer.from('reply:'), Buffer.from([0, 1, 2, 255])]));
    assert.deepEqual(ok(2), Buffer.concat([Buffer.from('reply:'), big]));
    assert.deepEqual(ok(3), Buffer.alloc(300_000, 'r'));
    assert.equal(out[4]!.error, 'ERR_NPIPE_REMOTE');
    assert.equal(out[4]!.remote_code, 'E_HANDLER');
    assert.equal(out[5]!.error, 'ERR_NPIPE_TIMEOUT');
    assert.deepEqual(ok(6), Buffer.from('reply:after the timeout'));
    // The CANCEL reached the server: the handler's signal aborted.
    await until(() => cancelled.length === 1, 'the slow handler to be cancelled');
    assert.deepEqual(cancelled, ['slow:1']);
    assert.equal(existsSync(out[0]!.reply_path), false, 'the reply FIFO is removed on close');
  });

  test('the server SIGKILLed while a request waits: the Python client raises ServerGoneError (ERR_NPIPE_SERVER_GONE), not a hang', async (t) => {
    const path = join(tempDir(t), 'server');
    const index = new URL('../src/index.js', import.meta.url).href;
    const code = `const { serve } = await import(${JSON.stringify(index)});
await serve(process.argv[1], () => { console.log('GOT'); return new Promise(() => {}); }, { codec: 'bytes' });
console.log('SERVING');`;
    const server = start(process.execPath, ['--input-type=module', '-e', code, path]);
    t.after(() => server.child.kill('SIGKILL'));
    await server.waitForOutput('SERVING');
    const client = peer(t, ['rpc', path], JSON.stringify([{ req: '6869' }]));
    if (!client) return;
    await server.waitForOutput('GOT');
    server.child.kill('SIGKILL');
    const r = await client.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { error: string }).error, 'ERR_NPIPE_SERVER_GONE');
  });

  test('no server: npipe.connect raises ServerGoneError (ERR_NPIPE_SERVER_GONE); a request over the server limit is FrameTooLargeError', async (t) => {
    const dir = tempDir(t);
    const none = peer(t, ['rpc', join(dir, 'nobody')], '[]');
    if (!none) return;
    const r = await none.done;
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ServerGoneError/);
    const path = join(dir, 'server');
    const server = await serve(path, (request: Buffer) => request, { codec: 'bytes', maxMessageSize: 10_000 });
    t.after(() => server.close());
    const client = peer(t, ['rpc', path], JSON.stringify([{ req: Buffer.alloc(20_000).toString('hex') }, { req: '6869' }]))!;
    const c = await client.done;
    assert.equal(c.code, 0, c.stderr);
    const out = c.stdout.trim().split('\n').map((l) => JSON.parse(l) as { ok?: string; error?: string });
    assert.equal(out[0]!.error, 'ERR_NPIPE_FRAME_TOO_LARGE');
    assert.equal(out[1]!.ok, '6869');
  });
});

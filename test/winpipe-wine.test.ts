/**
 * The Windows named-pipe driver on Windows (Wine, with the Windows Node; see
 * test/windows-harness.ts): the CLI over `\\.\pipe\...` in every format, four
 * writer processes at once into one listener, a sender with no receiver (exit 3),
 * a sender that waits for a receiver started later and for a restarted one, and a
 * bad pipe name (exit 2). Without Wine or node.exe these skip saying how to get
 * them; under CI they fail (.ci/run installs both).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { join } from 'node:path';
import { RECORD_REQUIRES, loadedModules, run, sharedNatsServer, tempDir } from './helpers.js';
import { requireWindows, runWindows, startWindows, toWindowsPath, windowsFixture } from './windows-harness.js';

const BIN = toWindowsPath(fileURLToPath(new URL('../bundle/cli/npipe.cjs', import.meta.url)));
const pipeName = () => `\\\\.\\pipe\\npipe-wine-${randomUUID()}`;
const npipe = (args: string[], timeoutMs = 60_000) => runWindows([BIN, ...args], { timeoutMs });
const nats = sharedNatsServer('wine');

describe('Windows named pipes under Wine (the winpipe driver)', () => {
  test('send and listen carry messages whole over \\\\.\\pipe\\ in every format', { timeout: 240_000 }, async (t) => {
    if (!requireWindows(t)) return;
    const cases: [string, string[]][] = [
      ['lines', ['one', '', 'three with spaces']],
      ['frames', ['alpha', 'x'.repeat(20_000), '']],
      ['length', ['a', 'bb', 'y'.repeat(9_000)]],
      ['fixed:4', ['abcd', 'efgh', 'ijkl']],
    ];
    await Promise.all(
      cases.map(async ([format, messages]) => {
        const pipe = pipeName();
        const listener = await startWindows(t, [BIN, 'listen', pipe, '--format', format, '--count', String(messages.length), '--json'], { hangMs: 120_000 });
        // The sender waits (up to -t) for the listener to create the pipe. Arguments:
        // a Windows command line holds at most 32767 characters.
        const sent = await npipe(['send', pipe, '--format', format, '-t', '60000', ...messages]);
        assert.equal(sent.code, 0, `${format}: ${sent.stderr}`);
        const heard = await listener.done;
        assert.equal(heard.code, 0, `${format}: ${heard.stderr}`);
        const got = heard.stdout.trim().split('\n').map((line) => (JSON.parse(line) as { text: string }).text);
        assert.deepEqual(got, messages, format);
      }),
    );
    // raw is a byte stream: the bytes arrive, in order (the listener runs until stopped).
    const pipe = pipeName();
    const listener = await startWindows(t, [BIN, 'listen', pipe, '--format', 'raw'], { hangMs: 120_000 });
    const sent = await npipe(['send', pipe, '--format', 'raw', '-t', '60000', 'raw-', 'bytes']);
    assert.equal(sent.code, 0, sent.stderr);
    await listener.waitForOutput('raw-bytes', 60_000);
    const heard = await listener.stop();
    assert.equal(heard.stdout, 'raw-bytes');
  });

  test('four writer processes at once into one listener: every message whole, each writer in its own order', { timeout: 240_000 }, async (t) => {
    if (!requireWindows(t)) return;
    const pipe = pipeName();
    const per = 100; // a Windows command line holds at most 32767 characters: the messages are its arguments
    const writers = ['a', 'b', 'c', 'd'];
    const listener = await startWindows(t, [BIN, 'listen', pipe, '--format', 'frames', '--count', String(per * writers.length)], { hangMs: 180_000 });
    const results = await Promise.all(
      writers.map((w) => npipe(['send', pipe, '--format', 'frames', '-t', '60000', ...Array.from({ length: per }, (_, i) => `${w}${i}:${w.repeat(50 + i)}`)], 120_000)),
    );
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const heard = await listener.done;
    assert.equal(heard.code, 0, heard.stderr);
    const lines = heard.stdout.trim().split('\n');
    assert.equal(lines.length, per * writers.length);
    for (const w of writers) {
      const mine = lines.filter((line) => line.startsWith(w));
      assert.deepEqual(
        mine,
        Array.from({ length: per }, (_, i) => `${w}${i}:${w.repeat(50 + i)}`),
        `writer ${w}: all ${per} messages, whole and in order`,
      );
    }
  });

  test('a sender with no receiver gives up: exit 3 (ERR_NPIPE_TIMEOUT after -t, ERR_NPIPE_NO_READER with -t 0)', { timeout: 120_000 }, async (t) => {
    if (!requireWindows(t)) return;
    const waited = await npipe(['send', pipeName(), '-t', '500', 'hello']);
    assert.equal(waited.code, 3, waited.stderr);
    assert.match(waited.stderr, /ERR_NPIPE_TIMEOUT/);
    const atOnce = await npipe(['send', pipeName(), '-t', '0', 'hello']);
    assert.equal(atOnce.code, 3, atOnce.stderr);
    assert.match(atOnce.stderr, /ERR_NPIPE_NO_READER/);
  });

  test('send --wait waits for a receiver started later, and for the next one after the first has gone', { timeout: 240_000 }, async (t) => {
    if (!requireWindows(t)) return;
    const pipe = pipeName();
    const early = await startWindows(t, [BIN, 'send', pipe, '--wait', 'first'], { hangMs: 120_000 });
    await new Promise((resolve) => setTimeout(resolve, 1500)); // the sender is waiting: no pipe yet
    const first = await npipe(['listen', pipe, '--count', '1']);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'first\n');
    assert.equal((await early.done).code, 0);
    // The first receiver is gone; a new sender waits for the restarted one.
    const again = await startWindows(t, [BIN, 'send', pipe, '--wait', 'second'], { hangMs: 120_000 });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const second = await npipe(['listen', pipe, '--count', '1']);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, 'second\n');
    assert.equal((await again.done).code, 0);
  });

  test('a bad pipe name is a usage error: exit 2, ERR_NPIPE_INVALID_ARG', { timeout: 120_000 }, async (t) => {
    if (!requireWindows(t)) return;
    const bad = await npipe(['send', '\\\\.\\pipe\\a\\b', 'hello']);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /ERR_NPIPE_INVALID_ARG/);
  });

  test('on Windows a FIFO path is ERR_NPIPE_UNSUPPORTED (exit 1)', { timeout: 120_000 }, async (t) => {
    if (!requireWindows(t)) return;
    const fifo = await npipe(['send', '/tmp/npipe-not-on-windows', '-t', '0', 'hello']);
    assert.equal(fifo.code, 1, fifo.stderr);
    assert.match(fifo.stderr, /ERR_NPIPE_UNSUPPORTED/);
  });

  test('request/reply through the API: 8 clients at once, hostile connections dropped, a server gone or restarted, a timeout that cancels', { timeout: 180_000 }, async (t) => {
    if (!requireWindows(t)) return;
    const result = await runWindows([windowsFixture('rpc-on-a-pipe.js'), pipeName()], { timeoutMs: 150_000 });
    assert.equal(result.code, 0, result.stderr);
    const cases = new Map(
      result.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { name: string } & Record<string, unknown>)
        .map((c) => [c.name, c]),
    );
    assert.deepEqual(cases.get('eight-clients'), { name: 'eight-clients', replies: 200, wrong: [], clientsSeen: 8, served: 200 });
    assert.deepEqual(cases.get('hostile'), { name: 'hostile', reply: 'still served', events: ['frame-dropped:corrupt', 'frame-dropped:corrupt', 'frame-dropped:refused'] });
    assert.equal(cases.get('server-gone')?.code, 'ERR_NPIPE_SERVER_GONE');
    assert.equal(cases.get('after-gone')?.code, 'ERR_NPIPE_SERVER_GONE');
    assert.deepEqual(cases.get('wait-for-server'), { name: 'wait-for-server', none: 'ERR_NPIPE_SERVER_GONE', reply: 'got:late' });
    assert.deepEqual(cases.get('timeout-cancels'), { name: 'timeout-cancels', code: 'ERR_NPIPE_TIMEOUT', cancelled: true });
    assert.deepEqual(cases.get('restart'), { name: 'restart', before: 'first:a', lost: 'ERR_NPIPE_SERVER_GONE', after: 'second:b' });
  });

  test('npipe serve and npipe request over a pipe: 8 request processes at once each get their own reply; --exec runs cmd.exe; no server is exit 3', { timeout: 240_000 }, async (t) => {
    if (!requireWindows(t)) return;
    const pipe = pipeName();
    const server = await startWindows(t, [BIN, 'serve', pipe, '--echo'], { hangMs: 200_000 });
    const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => npipe(['request', pipe, `question ${i}`, '--wait', '-t', '60000'], 120_000)));
    replies.forEach((r, i) => {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `question ${i}\n`);
    });
    const execPipe = pipeName();
    const exec = await startWindows(t, [BIN, 'serve', execPipe, '--exec', 'more'], { hangMs: 200_000 });
    const viaCmd = await npipe(['request', execPipe, 'through cmd', '--wait', '-t', '60000']);
    assert.equal(viaCmd.code, 0, viaCmd.stderr);
    assert.equal(viaCmd.stdout.replace(/\r/g, ''), 'through cmd\n');
    const none = await npipe(['request', pipeName(), 'anyone?']);
    assert.equal(none.code, 3, none.stderr);
    assert.match(none.stderr, /ERR_NPIPE_SERVER_GONE/);
    await exec.stop();
    const stopped = await server.stop();
    assert.equal(stopped.stderr, '', 'the server reported nothing');
  });

  test("the pipe key: the receiver writes it under %LOCALAPPDATA% (with allowShared under %ProgramData%), refuses a connection without it, and removes it when done", { timeout: 120_000 }, async (t) => {
    if (!requireWindows(t)) return;
    const result = await runWindows([windowsFixture('pipe-key.js'), pipeName()], { timeoutMs: 60_000 });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), {
      deadSkipped: true,
      liveUsed: true,
      inUserFolder: true,
      strangerHeard: 0,
      drops: ['refused'],
      received: 'with the key',
      removed: true,
      inSharedFolder: true,
      notShared: 'ERR_NPIPE_NO_READER',
      sharedReceived: 'shared',
      sharedRemoved: true,
    });
    // npipe listen says so on stderr, and goes on with the writers that have the key.
    const pipe = pipeName();
    const listener = await startWindows(t, [BIN, 'listen', pipe, '--count', '1'], { hangMs: 100_000 });
    const stranger = await runWindows([windowsFixture('pipe-key.js'), 'stranger', pipe], { timeoutMs: 60_000 });
    assert.equal(stranger.code, 0, stranger.stderr);
    const sent = await npipe(['send', pipe, '-t', '30000', 'welcome']);
    assert.equal(sent.code, 0, sent.stderr);
    const heard = await listener.done;
    assert.equal(heard.code, 0, heard.stderr);
    assert.equal(heard.stdout, 'welcome\n');
    assert.match(heard.stderr, /^npipe listen: refused a connection that did not send the pipe's key \(\d+ bytes read/);
  });

  test('npipe bridge between a Windows pipe and NATS, both ways: a Windows writer reaches a Linux listener, a Linux sender a Windows listener', { timeout: 240_000 }, async (t) => {
    if (!requireWindows(t)) return;
    const out = nats.url(t, 'delivery=jetstream');
    const back = nats.url(t, 'delivery=jetstream');
    if (!out || !back) return;
    // Windows pipe -> NATS -> Linux.
    const outPipe = pipeName();
    const outBridge = await startWindows(t, [BIN, 'bridge', outPipe, out], { hangMs: 200_000 });
    const wrote = await npipe(['send', outPipe, '--wait', '-t', '60000', 'from', 'windows']);
    assert.equal(wrote.code, 0, wrote.stderr);
    const heard = await run(['listen', out, '--count', '2', '--timeout', '60000']);
    assert.equal(heard.code, 0, heard.stderr);
    assert.equal(heard.stdout, 'from\nwindows\n');
    // Linux -> NATS -> Windows pipe.
    const backPipe = pipeName();
    const listener = await startWindows(t, [BIN, 'listen', backPipe, '--count', '2'], { hangMs: 200_000 });
    const backBridge = await startWindows(t, [BIN, 'bridge', back, backPipe], { hangMs: 200_000 });
    const sent = await run(['send', back, 'from', 'linux']);
    assert.equal(sent.code, 0, sent.stderr);
    const got = await listener.done;
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, 'from\nlinux\n');
    await Promise.all([outBridge.stop(), backBridge.stop()]);
  });

  test('a Windows process using a pipe never loads koffi or the FIFO layer: the API, and the CLI commands (npipe mkfifo says Windows has no FIFOs)', { timeout: 120_000 }, async (t) => {
    if (!requireWindows(t)) return;
    const hook = `file:///${toWindowsPath(fileURLToPath(new URL('./fixtures/record-loads.js', import.meta.url))).replace(/\\/g, '/')}`;
    /**
     * Runs node.exe with `preload` (the ES module hook for the API, the CommonJS one for
     * the CLI bundle), which records each module it loads in a file (Wine passes the
     * environment on); the record read as loadedModules() reads it.
     */
    const recorded = async (preload: string[], args: string[]) => {
      const record = join(tempDir(t), `loads-${randomUUID()}`);
      const saved = process.env.NPIPE_RECORD_LOADS;
      process.env.NPIPE_RECORD_LOADS = toWindowsPath(record);
      try {
        const result = await runWindows([...preload, ...args], { timeoutMs: 60_000 });
        return { result, loaded: loadedModules(record) };
      } finally {
        if (saved === undefined) delete process.env.NPIPE_RECORD_LOADS;
        else process.env.NPIPE_RECORD_LOADS = saved;
      }
    };
    // sys/libc.js itself may load (sys/aligned.ts asks it for addresses): on win32 it
    // refuses before it would require koffi, and aligned buffers fall back to plain ones.
    const linuxOnly = (loaded: string[]) => loaded.filter((url) => /koffi|\/src\/fifo\/|\/drivers\/fifo\//.test(url));
    const api = await recorded(['--import', hook], [windowsFixture('uses-a-pipe.js'), pipeName()]);
    assert.equal(api.result.code, 0, api.result.stderr);
    assert.equal(api.result.stdout, 'hello\nasked, answered\n');
    assert.ok(api.loaded.some((url) => url.includes('/drivers/winpipe/')), 'the record sees the pipe driver load');
    assert.deepEqual(linuxOnly(api.loaded), []);
    // The CLI loads the command it runs: each of these up to its failure (no peer, or mkfifo, the one about
    // FIFOs, refusing before it would load the layer), none loading what only Linux runs.
    const commands: [string[], number, RegExp][] = [
      [['send', pipeName(), '-t', '0', 'x'], 3, /ERR_NPIPE_NO_READER/],
      [['listen', pipeName(), '-t', '200'], 3, /ERR_NPIPE_TIMEOUT/],
      [['request', pipeName(), 'x'], 3, /ERR_NPIPE_SERVER_GONE/],
      [['mkfifo', pipeName()], 1, /ERR_NPIPE_UNSUPPORTED: Windows has no FIFOs/],
    ];
    // One after another: the record's file is named in this process's environment, which each run passes on.
    for (const [args, exit, said] of commands) {
      const cli = await recorded(['-r', toWindowsPath(RECORD_REQUIRES)], [BIN, ...args]);
      assert.equal(cli.result.code, exit, `${args[0]}: ${cli.result.stderr}`);
      assert.match(cli.result.stderr, said);
      assert.ok(cli.loaded.some((url) => url.includes(`/cli/${args[0]}.js`)), `the record sees npipe ${args[0]} load`);
      assert.deepEqual(linuxOnly(cli.loaded), [], `npipe ${args[0]}`);
    }
  });

  test("the seed's programs on Windows: npipe demo runs the writer and the reader over a named pipe, and the examples print the textbook's lines", { timeout: 120_000 }, async (t) => {
    if (!requireWindows(t)) return;
    const demo = await npipe(['demo']);
    assert.equal(demo.code, 0, demo.stderr);
    const sent = /\[writer\] I pid \[(\d+)\] sent a message => Hello from pid \[\1\]/.exec(demo.stdout);
    assert.ok(sent, demo.stdout);
    assert.match(demo.stdout, new RegExp(`\\[reader\\] I pid \\[\\d+\\] received a message => Hello from pid \\[${sent[1]}\\]`));
    // The examples by themselves, with their default pipe \\.\pipe\my_pipe: the reader first, then the writer.
    const examples = (name: string) => toWindowsPath(fileURLToPath(new URL(`../examples/${name}`, import.meta.url)));
    const reader = await startWindows(t, [examples('read_from_named_pipe.js')], { hangMs: 60_000 });
    const wrote = await runWindows([examples('write_to_named_pipe.js')], { timeoutMs: 60_000 });
    assert.equal(wrote.code, 0, wrote.stderr);
    const read = await reader.done;
    assert.equal(read.code, 0, read.stderr);
    assert.match(read.stdout, /^I pid \[\d+\] received a message => Hello from pid \[\d+\]\n$/);
  });
});

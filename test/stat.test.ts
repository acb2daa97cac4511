/**
 * `npipe stat` (issue 19 #1), through the real binary: what a FIFO is, who holds it
 * open or waits to, its capacity and the bytes waiting, seen without opening it;
 * and a NATS subject with its JetStream stream and consumer, seen without making them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { mkfifo } from '../src/fifo-public.js';
import { BIN, requireOrSkip, run, sharedNatsServer, start, tempDir, until, waitForBlockedOpen, waitForOpen, type Running } from './helpers.js';

interface Holder {
  pid: number;
  command: string;
  fd?: number;
}
interface FifoJson {
  type: string;
  path: string;
  mode: string;
  permissions: string;
  owner: { uid: number; user: string | null };
  capacity: number | null;
  buffered: number | null;
  seen: string;
  readers: Holder[];
  writers: Holder[];
  waiting: { readers: Holder[]; writers: Holder[] };
  hidden: number;
}

async function statJson(path: string, options: Parameters<typeof run>[1] = {}): Promise<FifoJson> {
  const result = await run(['stat', path, '--json'], options);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as FifoJson;
}

/** A shell that keeps running `script` until the test ends. */
function shell(t: TestContext, script: string): Running {
  const child = start('sh', ['-c', script], { hangMs: 120_000 });
  t.after(() => {
    child.child.kill('SIGKILL');
  });
  return child;
}

const wchan = (pid: number | undefined) => readFileSync(`/proc/${pid}/wchan`, 'utf8');

describe('npipe stat on a FIFO', { skip: process.platform !== 'linux' && 'npipe stat reads /proc: Linux only' }, () => {
  test('a FIFO nobody holds: its mode and owner, no pipe yet, nothing waiting, no holders', async (t) => {
    const path = join(tempDir(t), 'p');
    await mkfifo(path, { mode: 0o640 });
    chmodSync(path, 0o640);
    const s = await statJson(path);
    assert.equal(s.type, 'fifo');
    assert.equal(s.path, path);
    assert.equal(s.mode, '0640');
    assert.equal(s.permissions, 'rw-r-----');
    assert.equal(s.owner.uid, process.getuid!());
    assert.deepEqual([s.capacity, s.buffered, s.seen], [null, 0, 'unopened']);
    assert.deepEqual([s.readers, s.writers, s.waiting], [[], [], { readers: [], writers: [] }]);
    const human = await run(['stat', path]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /FIFO, rw-r----- \(0640\)/);
    assert.match(human.stdout, /capacity: +none yet/);
    assert.match(human.stdout, /readers: +none/);
  });

  test('a shell writer blocked in open() is shown waiting for a reader, and looking does not let it through', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'p');
    await mkfifo(path);
    const writer = shell(t, `echo hello > ${path}`);
    await waitForBlockedOpen(writer.child.pid);
    const s = await statJson(path);
    assert.deepEqual(s.waiting.writers.map((h) => h.pid), [writer.child.pid]);
    assert.match(s.waiting.writers[0]!.command, /echo hello/);
    assert.deepEqual([s.readers, s.writers, s.waiting.readers], [[], [], []]);
    const human = await run(['stat', path]);
    assert.match(human.stdout, /waiting to open for writing[^\n]*\n +\d+ sh -c echo hello/);
    assert.match(human.stdout, /A writer is blocked: no process has the FIFO open for reading/);
    // Looked at twice: still blocked, and its message still goes to the first real reader.
    assert.equal(wchan(writer.child.pid), 'wait_for_partner');
    assert.equal(readFileSync(path, 'utf8'), 'hello\n');
    assert.equal((await writer.done).code, 0);
  });

  test('a reader blocked in open() is shown waiting for a writer, and looking does not wake it', async (t) => {
    const path = join(tempDir(t), 'p');
    await mkfifo(path);
    const reader = shell(t, `exec cat ${path}`);
    await waitForBlockedOpen(reader.child.pid);
    const s = await statJson(path);
    assert.deepEqual(s.waiting.readers.map((h) => h.pid), [reader.child.pid]);
    assert.deepEqual(s.waiting.writers, []);
    assert.equal(wchan(reader.child.pid), 'wait_for_partner', 'the reader still waits (a look that opened the FIFO would have ended it with end of file)');
    writeFileSync(path, 'late\n');
    const done = await reader.done;
    assert.equal(done.stdout, 'late\n');
  });

  test('a writer blocked in open() in a thread other than the first (Node fs.promises.open) is shown waiting, and stays blocked (attack on issue 19 #1)', async (t) => {
    const path = join(tempDir(t), 'p');
    await mkfifo(path);
    // fs.promises.open waits in a libuv threadpool thread; the main thread sits in epoll.
    const writer = start(process.execPath, ['-e', `require('fs').promises.open(process.argv[1], 'w').then(() => console.log('opened'))`, path], { hangMs: 120_000 });
    t.after(() => void writer.child.kill('SIGKILL'));
    const pid = writer.child.pid;
    const blockedThread = () => {
      try {
        return readdirSync(`/proc/${pid}/task`).some((tid) => readFileSync(`/proc/${pid}/task/${tid}/wchan`, 'utf8') === 'wait_for_partner');
      } catch {
        return false;
      }
    };
    await until(blockedThread, 'a thread of the writer to wait in open()');
    const s = await statJson(path);
    assert.deepEqual(s.waiting.writers.map((h) => h.pid), [pid]);
    const human = await run(['stat', path]);
    assert.match(human.stdout, /A writer is blocked: no process has the FIFO open for reading/);
    assert.ok(blockedThread(), 'still blocked after the looks');
  });

  test('a writer blocked in open() inside a chroot, by its path there, is shown waiting (attack on issue 19 #1)', async (t) => {
    if (!requireOrSkip(t, process.getuid?.() === 0, 'chroot needs root')) return;
    if (!requireOrSkip(t, spawnSync('python3', ['--version']).status === 0, 'python3')) return;
    const root = join(tempDir(t), 'jail');
    mkdirSync(root);
    const path = join(root, 'p');
    await mkfifo(path);
    const writer = start('python3', ['-c', 'import os, sys; os.chroot(sys.argv[1]); os.open("/p", os.O_WRONLY)', root], { hangMs: 120_000 });
    t.after(() => void writer.child.kill('SIGKILL'));
    await waitForBlockedOpen(writer.child.pid);
    const s = await statJson(path);
    assert.deepEqual(s.waiting.writers.map((h) => h.pid), [writer.child.pid], 'found by "/p" inside its root, not by a "/p" here');
    assert.equal(wchan(writer.child.pid), 'wait_for_partner');
  });

  test('a command line with a newline and escape sequences cannot forge lines of the text output (attack on issue 19 #1)', async (t) => {
    const path = join(tempDir(t), 'p');
    await mkfifo(path);
    // An argument, so in its command line: a "\n", a forged line and a clear-screen.
    const forged = 'x\nwriters:   1 forged (fd 9)\x1b[2J';
    const reader = start(process.execPath, ['-e', `require('fs').openSync(process.argv[1], 'r+'); setInterval(() => {}, 1000)`, path, forged], { hangMs: 120_000 });
    t.after(() => void reader.child.kill('SIGKILL'));
    await waitForOpen(reader.child.pid, path);
    const s = await statJson(path);
    assert.ok(s.readers.some((h) => h.command.includes(forged)), 'the JSON keeps the command as it is');
    const human = await run(['stat', path]);
    assert.equal(human.code, 0, human.stderr);
    assert.doesNotMatch(human.stdout, /\x1b/);
    assert.doesNotMatch(human.stdout, /^writers: +1 forged/m);
    assert.match(human.stdout, /x\\x0awriters: {3}1 forged \(fd 9\)\\x1b\[2J \(fd \d+\)/);
  });

    test('holders for reading and for writing, with pid, command and fd; the bytes waiting and the capacity', async (t) => {
    const path = join(tempDir(t), 'p');
    await mkfifo(path);
    const reader = shell(t, `exec 3<${path}; exec sleep 600`);
    const writer = shell(t, `exec 4>${path}; printf abcdefg >&4; exec sleep 600`);
    await waitForOpen(reader.child.pid, path);
    await waitForOpen(writer.child.pid, path);
    const s = await statJson(path);
    assert.deepEqual(s.readers.map((h) => [h.pid, h.fd]), [[reader.child.pid, 3]]);
    assert.deepEqual(s.writers.map((h) => [h.pid, h.fd]), [[writer.child.pid, 4]]);
    assert.match(s.readers[0]!.command, /sleep 600/);
    // Once the printf has run, its bytes are in the pipe.
    await until(() => {
      const r = spawnSync(process.execPath, [BIN, 'stat', path, '--json'], { encoding: 'utf8' });
      return (JSON.parse(r.stdout) as FifoJson).buffered === 7;
    }, 'seven bytes in the pipe');
    const again = await statJson(path);
    assert.equal(again.capacity, 65536);
    assert.equal(again.buffered, 7);
    assert.ok(['borrowed', 'opened'].includes(again.seen), again.seen);
    // Looking took nothing out: the reader still gets every byte.
    const taken = spawnSync('sh', ['-c', `timeout 5 dd bs=7 count=1 status=none < /proc/${reader.child.pid}/fd/3`], { encoding: 'utf8' });
    assert.equal(taken.stdout, 'abcdefg');
  });

  test('a full pipe: buffered equals capacity, and stat says writers wait for room', async (t) => {
    const path = join(tempDir(t), 'p');
    await mkfifo(path);
    const reader = shell(t, `exec 3<${path}; exec sleep 600`);
    const writer = shell(t, `head -c 100000 /dev/zero > ${path}`);
    await waitForOpen(reader.child.pid, path);
    let s: FifoJson | undefined;
    await until(() => {
      const r = spawnSync(process.execPath, [BIN, 'stat', path, '--json'], { encoding: 'utf8' });
      s = JSON.parse(r.stdout) as FifoJson;
      return s.buffered === 65536;
    }, 'a full pipe');
    assert.equal(s!.capacity, 65536);
    assert.ok(s!.writers.some((h) => h.command.startsWith('head')), JSON.stringify(s!.writers));
    const human = await run(['stat', path]);
    assert.match(human.stdout, /The pipe is full: writers wait for room/);
    writer.child.kill('SIGKILL');
  });

  test('as another user: root\'s holders are hidden, and capacity and buffered unknown rather than guessed', async (t) => {
    if (!requireOrSkip(t, process.getuid?.() === 0, 'this test runs as root (to look as another user with setpriv)')) return;
    if (!requireOrSkip(t, spawnSync('setpriv', ['--version']).status === 0, 'setpriv (util-linux)')) return;
    const dir = tempDir(t);
    chmodSync(dir, 0o755);
    const path = join(dir, 'p');
    await mkfifo(path);
    const reader = shell(t, `exec 3<${path}; exec sleep 600`);
    const writer = shell(t, `exec 4>${path}; printf xy >&4; exec sleep 600`);
    await waitForOpen(reader.child.pid, path);
    await waitForOpen(writer.child.pid, path);
    // setpriv runs node as uid/gid 65534, which may not look into root's processes.
    const asNobody = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, 'stat', path, '--json'], { encoding: 'utf8' });
    assert.equal(asNobody.status, 0, asNobody.stderr);
    const s = JSON.parse(asNobody.stdout) as FifoJson;
    assert.ok(s.hidden > 0, 'root processes are counted as hidden');
    assert.deepEqual([s.readers, s.writers], [[], []]);
    assert.deepEqual([s.capacity, s.buffered, s.seen], [null, null, 'hidden']);
    const human = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, 'stat', path], { encoding: 'utf8' });
    assert.match(human.stdout, /hidden: +\d+ processes of other users could not be looked into \(run as root/);
    assert.match(human.stdout, /capacity: +unknown/);
  });

  test('not a FIFO, a symlink, missing, a wrong option: one line on stderr with its code, and the documented exit', async (t) => {
    const dir = tempDir(t);
    await mkfifo(join(dir, 'p'));
    symlinkSync(join(dir, 'p'), join(dir, 'link'));
    writeFileSync(join(dir, 'file'), 'x');
    const cases: Array<[string[], number, RegExp]> = [
      [['stat', join(dir, 'file')], 4, /ERR_NPIPE_NOT_FIFO: .*file is a regular file, not a FIFO/],
      [['stat', dir], 4, /ERR_NPIPE_NOT_FIFO: .* is a directory/],
      [['stat', join(dir, 'link')], 4, /ERR_NPIPE_NOT_FIFO: .*link is a symbolic link/],
      [['stat', join(dir, 'missing')], 1, /ERR_NPIPE_NOT_FOUND: .*missing does not exist/],
      [['stat', join(dir, 'p'), '--jetstream'], 2, /--jetstream does not apply to/],
      [['stat', join(dir, 'p'), '--timeout', '1s'], 2, /--timeout does not apply to/],
      [['stat'], 2, /npipe stat takes one address/],
      [['stat', ''], 2, /not an empty string/],
      [['stat', join(dir, 'p'), join(dir, 'p')], 2, /npipe stat takes one address/],
      [['stat', '--jsn', join(dir, 'p')], 2, /unknown option --jsn; did you mean --json\?/],
    ];
    for (const [args, code, message] of cases) {
      const result = await run(args);
      assert.equal(result.code, code, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
      assert.equal(result.stdout, '');
    }
  });
});

describe('npipe stat on a NATS address', () => {
  const nats = sharedNatsServer('stat-test');

  test('core: the server and subject; JetStream: the stream and consumer as the server counts them, and looking makes neither', async (t) => {
    const url = nats.url(t);
    if (url === undefined) return;
    const core = await run(['stat', url, '--json']);
    assert.equal(core.code, 0, core.stderr);
    const c = JSON.parse(core.stdout) as { type: string; subject: string; delivery: string; group: string; server: { jetstream: boolean; maxPayload: number } };
    assert.deepEqual([c.type, c.delivery, c.group, c.server.jetstream, c.server.maxPayload], ['nats', 'core', 'npipe', true, 1048576]);
    assert.equal(c.subject, new URL(url).pathname.slice(1));

    const before = await run(['stat', url, '--jetstream', '--json']);
    assert.equal(before.code, 0, before.stderr);
    assert.deepEqual((JSON.parse(before.stdout) as { stream: unknown; consumer: unknown }), { ...JSON.parse(before.stdout), stream: null, consumer: null });
    const again = await run(['stat', url, '--jetstream']);
    assert.match(again.stdout, /stream: +none yet/, 'the first look made no stream');

    const js = `${url}?delivery=jetstream`;
    assert.equal((await run(['send', js, 'a', 'b', 'c'])).code, 0);
    const stored = JSON.parse((await run(['stat', js, '--json'])).stdout) as { stream: { messages: number; subjects: string[]; consumers: number }; consumer: unknown };
    assert.equal(stored.stream.messages, 3);
    assert.deepEqual(stored.stream.subjects, [c.subject]);
    assert.equal(stored.consumer, null);

    const listened = await run(['listen', js, '--count', '3']);
    assert.equal(listened.stdout, 'a\nb\nc\n');
    let after: { stream: { messages: number }; consumer: { name: string; pending: number; ackPending: number; ackedSeq: number } } | undefined;
    await until(() => {
      const r = spawnSync(process.execPath, [BIN, 'stat', js, '--json'], { encoding: 'utf8' });
      after = JSON.parse(r.stdout) as typeof after;
      return after!.consumer.ackPending === 0;
    }, 'the acknowledgements to be counted');
    assert.deepEqual([after!.consumer.name, after!.consumer.pending, after!.consumer.ackedSeq, after!.stream.messages], ['npipe', 0, 3, 0]);
    const human = await run(['stat', js]);
    assert.match(human.stdout, /consumer: +npipe: 0 pending, 0 delivered and not acknowledged/);
  });

  test('a server that accepts and never answers: --timeout ends the wait at T (exit 3) and SIGINT at once (exit 130); the process does not linger on the abandoned connect (attack pass on issue 19)', async (t) => {
    // A TCP listener that takes connections and says nothing: nats.js waits for its INFO.
    const sockets: import('node:net').Socket[] = [];
    const silent = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      for (const socket of sockets) socket.destroy();
      silent.close();
    });
    const url = `nats://127.0.0.1:${(silent.address() as AddressInfo).port}/x`;
    // hangMs: the process must be gone well before nats.js's own 5 s attempt, let alone its 10 s linger.
    const timedOut = await start(process.execPath, [BIN, 'stat', url, '--timeout', '500ms'], { hangMs: 3500 }).done;
    assert.equal(timedOut.code, 3, timedOut.stderr);
    assert.match(timedOut.stderr, /ERR_NPIPE_TIMEOUT: no NATS server answered/);
    for (const command of [['stat', url], ['send', url, 'hi']]) {
      for (const socket of sockets) socket.destroy();
      sockets.length = 0;
      const running = start(process.execPath, [BIN, ...command], { hangMs: 4000 });
      await until(() => sockets.length > 0, 'the connection');
      running.child.kill('SIGINT');
      const stopped = await running.done;
      assert.equal(stopped.code, 130, `${command[0]}: ${stopped.stderr}`);
      assert.match(stopped.stderr, /stopped by SIGINT/);
    }
  });

  test('no server there: ERR_NPIPE_UNREACHABLE, exit 3, within --timeout', async () => {
    const result = await run(['stat', 'nats://127.0.0.1:1/x', '--timeout', '300ms']);
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /ERR_NPIPE_UNREACHABLE/);
  });
});

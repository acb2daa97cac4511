/**
 * Interoperability with Python 3, both ways: the textbook's plain os calls, and
 * multiprocessing.connection.Connection (the `length` format) around the FIFO's fd.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { npipe, requireOrSkip, run, start, tempDir, waitForBlockedOpen, waitForOpen } from './helpers.js';

const hasPython = spawnSync('python3', ['--version']).status === 0;

function python(t: TestContext, code: string, args: string[]) {
  if (!requireOrSkip(t, hasPython, 'python3 is missing')) return undefined;
  return start('python3', ['-c', code, ...args]);
}

const PY_WRITER = `
import os, sys
path = sys.argv[1]
if not os.path.exists(path):
    os.mkfifo(path)
fd = os.open(path, os.O_WRONLY)
os.write(fd, ("Hello from pid [%d]\\n" % os.getpid()).encode())
os.close(fd)
`;

const PY_READER = `
import os, sys
path = sys.argv[1]
if not os.path.exists(path):
    os.mkfifo(path)
fd = os.open(path, os.O_RDONLY)
data = b""
while True:
    chunk = os.read(fd, 65536)
    if not chunk:
        break
    data += chunk
os.close(fd)
sys.stdout.write(data.decode())
`;

const PY_CONN_WRITER = `
import os, sys
from multiprocessing.connection import Connection
path = sys.argv[1]
if not os.path.exists(path):
    os.mkfifo(path)
conn = Connection(os.open(path, os.O_WRONLY), readable=False, writable=True)
conn.send_bytes(b"small")
conn.send_bytes(b"x" * 100000)   # over 16 KiB: Python writes header and body separately
conn.send_bytes(b"")
conn.send_bytes(bytes(range(256)))
conn.close()
`;

const PY_CONN_READER = `
import os, sys, json
from multiprocessing.connection import Connection
path = sys.argv[1]
if not os.path.exists(path):
    os.mkfifo(path)
conn = Connection(os.open(path, os.O_RDONLY), readable=True, writable=False)
out = []
while True:
    try:
        out.append(conn.recv_bytes().decode())
    except EOFError:
        break
print(json.dumps(out))
`;

describe('Python 3, plain os.mkfifo / os.open / os.write / os.read', () => {
  test('a Python writer reaches npipe listen', async (t) => {
    const path = join(tempDir(t), 'my_pipe');
    const writer = python(t, PY_WRITER, [path]);
    if (!writer) return;
    // Python creates the FIFO and blocks in open() until we read: wait for that.
    await waitForBlockedOpen(writer.child.pid);
    const listened = await run(['listen', path, '--once']);
    const wrote = await writer.done;
    assert.equal(wrote.code, 0, wrote.stderr);
    assert.equal(listened.code, 0, listened.stderr);
    assert.equal(listened.stdout, `Hello from pid [${writer.child.pid}]\n`);
  });

  test('npipe send reaches a Python reader', async (t) => {
    const path = join(tempDir(t), 'my_pipe');
    const reader = python(t, PY_READER, [path]);
    if (!reader) return;
    const sent = await run(['send', path, 'hello from npipe', 'second', '--timeout', '10000']);
    assert.equal(sent.code, 0, sent.stderr);
    const read = await reader.done;
    assert.equal(read.code, 0, read.stderr);
    assert.equal(read.stdout, 'hello from npipe\nsecond\n');
  });
});

describe('Python 3, multiprocessing.connection.Connection around the FIFO fd (length format)', () => {
  test('Connection.send_bytes reaches npipe listen --format length', async (t) => {
    const path = join(tempDir(t), 'p');
    const listener = npipe(['listen', path, '--format', 'length', '--once', '--json']);
    t.after(() => listener.child.kill());
    // Python opens the FIFO without creating it: start it once the listener holds the FIFO.
    await waitForOpen(listener.child.pid, path);
    const writer = python(t, PY_CONN_WRITER, [path]);
    if (!writer) {
      listener.child.kill();
      return;
    }
    const wrote = await writer.done;
    assert.equal(wrote.code, 0, wrote.stderr);
    const result = await listener.done;
    assert.equal(result.code, 0, result.stderr);
    const records = result.stdout.trim().split('\n').map((l) => JSON.parse(l) as { text?: string; base64?: string });
    assert.equal(records.length, 4);
    assert.deepEqual(records[0], { text: 'small' });
    assert.deepEqual(records[1], { text: 'x'.repeat(100000) });
    assert.deepEqual(records[2], { text: '' });
    assert.deepEqual(Buffer.from(records[3]!.base64!, 'base64'), Buffer.from(Array.from({ length: 256 }, (_, i) => i)));
  });

  test('npipe send --format length reaches Connection.recv_bytes', async (t) => {
    const path = join(tempDir(t), 'p');
    const reader = python(t, PY_CONN_READER, [path]);
    if (!reader) return;
    const messages = ['one', '', 'y'.repeat(100000), 'é中'];
    const sent = await run(['send', path, '--format', 'length', '--timeout', '10000', ...messages]);
    assert.equal(sent.code, 0, sent.stderr);
    const read = await reader.done;
    assert.equal(read.code, 0, read.stderr);
    assert.deepEqual(JSON.parse(read.stdout), messages);
  });
});

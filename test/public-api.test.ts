/**
 * The package's public surface, as a user imports it: by the package's name,
 * resolved through package.json "exports" (Node resolves a package's own name
 * from inside it), not by a path into src. The lists are exact on purpose: a new
 * runtime export, or an internal helper leaking out, fails here until it is
 * added deliberately (issue 16 #4).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

/** Not string literals: tsc would resolve them against dist before dist is built. */
const ROOT: string = 'npipe';
const FIFO: string = 'npipe/fifo';

const ROOT_EXPORTS = [
  'AuthError',
  'BadFrameError',
  'BadPayloadError',
  'BufferTooSmallError',
  'BusyError',
  'Client',
  'ClosedError',
  'DEFAULT_FORMAT',
  'DEFAULT_MAX_MESSAGE_SIZE',
  'FifoNotFoundError',
  'FifoPermissionError',
  'FrameTooLargeError',
  'InvalidArgumentError',
  'NoReaderError',
  'NotFifoError',
  'NpipeError',
  'PIPE_BUF',
  'Publisher',
  'Receiver',
  'RemoteError',
  'Sender',
  'Server',
  'ServerGoneError',
  'SlowConsumerError',
  'SystemError',
  'TimeoutError',
  'UnreachableError',
  'UnsafeFifoError',
  'UnsupportedError',
  'allocAligned',
  'bytesCodec',
  'connect',
  'createFraming',
  'jsonCodec',
  'openPublisher',
  'openReceiver',
  'openSender',
  'serve',
  'subscribe',
  'textCodec',
];

const FIFO_EXPORTS = ['FifoEnd', 'getPipeSize', 'mkfifo', 'mkfifoSync', 'openFifoReader', 'openFifoWriter', 'setPipeSize'];

test('npipe and npipe/fifo resolve, by the package name, to the built entry files package.json names', () => {
  assert.equal(import.meta.resolve(ROOT), new URL('../src/index.js', import.meta.url).href);
  assert.equal(import.meta.resolve(FIFO), new URL('../src/fifo-public.js', import.meta.url).href);
});

test('the package root exports exactly the public names: messages, request/reply, codecs, formats, allocAligned, errors', async () => {
  const root = (await import(ROOT)) as Record<string, unknown>;
  assert.deepEqual(Object.keys(root).sort(), ROOT_EXPORTS);
});

test('npipe/fifo exports exactly the low-level FIFO layer', async () => {
  const fifo = (await import(FIFO)) as Record<string, unknown>;
  assert.deepEqual(Object.keys(fifo).sort(), FIFO_EXPORTS);
  // The same functions the library uses, not copies.
  const internal = await import('../src/fifo/index.js');
  assert.equal(fifo.mkfifo, internal.mkfifo);
  assert.equal(fifo.FifoEnd, internal.FifoEnd);
});

test('every error class in errors.ts is exported from the root', async () => {
  const root = (await import(ROOT)) as Record<string, unknown>;
  const errors = await import('../src/errors.js');
  const classes = Object.entries(errors).filter(([, value]) => typeof value === 'function');
  assert.ok(classes.length > 0);
  for (const [name, value] of classes) assert.equal(root[name], value, `${name} is exported`);
});

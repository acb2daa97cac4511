/**
 * Request/reply over the Windows pipe transport (drivers/winpipe/rpc-transport.ts):
 * a hello with a token opens each client's connection, replies come back on it.
 * Run here over a Unix socket, which is what Node makes of a pipe name on Linux
 * (the same libuv stream code), so the protocol and the attacks on it are tested on
 * every run; test/winpipe-wine.test.ts runs it over real Windows pipes under Wine.
 */
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { serveFrames } from '../src/rpc/frame-server.js';
import { connectFrames } from '../src/rpc/frame-client.js';
import { CANCEL, LIMITED_REQUEST, encodeRequest } from '../src/rpc/protocol.js';
import type { Handler } from '../src/rpc/handler.js';
import type { ServeOptions, ServerEvent } from '../src/rpc/types.js';
import { createFraming } from '../src/framing/index.js';
import { WinPipeTransport } from '../src/drivers/winpipe/rpc-transport.js';
import { readKeys } from '../src/drivers/winpipe/pipe-key.js';
import { delay, tempDir, until } from './helpers.js';

// The pipe key files (drivers/winpipe/pipe-key.ts) go where Windows keeps them; here, into a folder of this run.
const keys = mkdtempSync(join(tmpdir(), 'npipe-keys-'));
process.env.LOCALAPPDATA = join(keys, 'user');
process.env.ProgramData = join(keys, 'shared');
after(() => rmSync(keys, { recursive: true, force: true }));

const code = (code: string) => (err: unknown) => (err as { code?: string }).code === code;
const frames = createFraming('frames');
const frame = (payload: Buffer) => Buffer.concat([...frames.encode(payload)]);
const hello = (token: string) => frame(Buffer.from(`npipe-hello/1 ${token}`, 'latin1'));

async function server(t: TestContext, handler: Handler<unknown, unknown>, options: ServeOptions<unknown, unknown> = {}) {
  const path = join(tempDir(t), 'pipe');
  const events: ServerEvent[] = [];
  const s = await serveFrames(new WinPipeTransport(), path, handler, { onEvent: (e) => events.push(e), ...options });
  t.after(() => s.close());
  return { path, server: s, events };
}

async function client(t: TestContext, path: string, options: { waitForServer?: boolean; timeout?: number } = {}) {
  const c = await connectFrames<string, string>(new WinPipeTransport(), path, options);
  t.after(() => c.close());
  return c;
}

/** A raw connection to the server: what it receives, and whether it was closed on us. `key`: it first sends the pipe's key, as an npipe client does. */
function raw(t: TestContext, path: string, options: { key?: boolean } = {}) {
  const socket: Socket = netConnect(path);
  if (options.key) socket.write(readKeys(path, false)[0]!);
  const received: Buffer[] = [];
  let closed = false;
  socket.on('data', (chunk: Buffer) => received.push(chunk));
  socket.on('error', () => {});
  socket.on('close', () => (closed = true));
  t.after(() => socket.destroy());
  return { socket, received, closed: () => closed };
}

describe('request/reply over the Windows pipe transport (over a Unix socket)', () => {
  test('8 clients with 50 requests each in flight at once: every reply goes back on its own connection, to its own request', async (t) => {
    const { path, server: s } = await server(t, async (request) => {
      await delay(Math.random() * 3);
      return `echo:${request as string}`;
    });
    const clients = await Promise.all(Array.from({ length: 8 }, () => client(t, path, { timeout: 10_000 })));
    await Promise.all(
      clients.map((c, k) => Promise.all(Array.from({ length: 50 }, async (_, i) => assert.equal(await c.request(`${k}/${i}`), `echo:${k}/${i}`)))),
    );
    assert.equal(s.clients, 8);
    assert.equal(s.stats.replies, 400);
  });

  test("a connection without the pipe's key is refused; one with it that does not start with a hello, or repeats a live token, is dropped; the client it imitates is not disturbed", async (t) => {
    const { path, events } = await server(t, (request) => request);
    const honest = await client(t, path);
    assert.equal(await honest.request('first'), 'first');
    const stranger = raw(t, path);
    stranger.socket.write(`GET / HTTP/1.1\r\nHost: ${'x'.repeat(64)}\r\n\r\n`);
    const garbage = raw(t, path, { key: true });
    garbage.socket.write('GET / HTTP/1.1\r\n\r\n');
    // The honest client's token, which a hostile peer might have read in a server's log.
    const copy = raw(t, path, { key: true });
    copy.socket.write(Buffer.concat([hello(honest.replyAddress), frame(encodeRequest(LIMITED_REQUEST, 1, honest.replyAddress, Buffer.from('stolen'), 1000))]));
    await until(() => stranger.closed() && garbage.closed() && copy.closed(), 'the three hostile connections dropped');
    assert.deepEqual(stranger.received, [], 'the stranger got not even the ACK');
    assert.deepEqual(Buffer.concat(copy.received), Buffer.of(0x06), 'the copy received the ACK of its key, and no reply');
    assert.equal(await honest.request('second'), 'second');
    const dropped = events.filter((e) => e.kind === 'frame-dropped').map((e) => e.reason.split(',')[0]);
    assert.deepEqual(dropped.sort(), ['corrupt', 'corrupt', 'refused'], JSON.stringify(events));
  });

  test("a client naming another connection's token is dropped: it can neither take that client's replies nor cancel its requests", async (t) => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let aborted = 0;
    const { path, server: s } = await server(t, async (request, { signal }) => {
      signal.addEventListener('abort', () => aborted++);
      if (request === 'slow') await released;
      return request;
    });
    const victim = await client(t, path);
    const pending = victim.request('slow');
    await until(() => s.stats.requests === 1, 'the victim request running');
    const hostile = raw(t, path, { key: true });
    const mine = 'c'.repeat(32);
    hostile.socket.write(Buffer.concat([hello(mine), frame(encodeRequest(CANCEL, 1, victim.replyAddress))]));
    await until(() => hostile.closed(), 'the hostile connection dropped');
    release();
    assert.equal(await pending, 'slow');
    assert.equal(aborted, 0, 'the victim request was not cancelled');
    assert.equal(s.stats.cancelled, 0);
  });

  test('the server going away with a request in flight fails it at once with ERR_NPIPE_SERVER_GONE, not after its timeout', async (t) => {
    const { path, server: s } = await server(t, () => new Promise(() => {}));
    const c = await client(t, path);
    const pending = c.request('never', { timeout: 60_000 });
    await until(() => s.stats.requests === 1, 'the request taken');
    await s.close();
    await assert.rejects(pending, code('ERR_NPIPE_SERVER_GONE'));
    await assert.rejects(c.request('again'), code('ERR_NPIPE_SERVER_GONE'));
  });

  test('no server: connect fails with ERR_NPIPE_SERVER_GONE; waitForServer waits for one, and after a restart goes on with the next', async (t) => {
    const path = join(tempDir(t), 'pipe');
    await assert.rejects(connectFrames(new WinPipeTransport(), path, {}), code('ERR_NPIPE_SERVER_GONE'));
    const c = connectFrames<string, string>(new WinPipeTransport(), path, { waitForServer: true, timeout: 10_000 });
    await delay(100);
    const first = await serveFrames(new WinPipeTransport(), path, (r) => (r === 'hang' ? new Promise(() => {}) : `first:${r as string}`), {});
    const waiting = await c;
    t.after(() => waiting.close());
    assert.equal(await waiting.request('a'), 'first:a');
    const taken = waiting.request('hang');
    await until(() => first.stats.requests === 2, 'the hanging request taken');
    await first.close();
    await assert.rejects(taken, code('ERR_NPIPE_SERVER_GONE'));
    const next = waiting.request('b');
    await delay(100);
    const second = await serveFrames(new WinPipeTransport(), path, (r) => `second:${r as string}`, {});
    t.after(() => second.close());
    assert.equal(await next, 'second:b');
  });

  test("a client's connection that ends stops its running handlers at once, and the same token may connect again (a client reconnecting to the same server) and be answered", async (t) => {
    let abortedFor = '';
    const { path, server: s } = await server(t, (request, { signal }) => {
      if (request !== 'hang') return `ok:${request as string}`;
      signal.addEventListener('abort', () => (abortedFor = 'hang'), { once: true });
      return new Promise(() => {});
    });
    const token = 'e'.repeat(32);
    const first = raw(t, path, { key: true });
    first.socket.write(Buffer.concat([hello(token), frame(encodeRequest(LIMITED_REQUEST, 1, token, Buffer.from('hang'), 1 << 20))]));
    await until(() => s.stats.requests === 1, 'the hanging request taken');
    first.socket.destroy();
    await until(() => abortedFor === 'hang', "the handler of the departed connection's request aborted");
    await until(() => s.clients === 0, 'the departed client forgotten');
    const again = raw(t, path, { key: true });
    again.socket.write(Buffer.concat([hello(token), frame(encodeRequest(LIMITED_REQUEST, 2, token, Buffer.from('back'), 1 << 20))]));
    await until(() => Buffer.concat(again.received).includes('ok:back'), 'the reply on the new connection');
    assert.equal(again.closed(), false);
  });

  test('a server shared with allowShared is reached by a client only with allowShared too (else no server: ERR_NPIPE_SERVER_GONE)', async (t) => {
    const path = join(tempDir(t), 'pipe');
    const s = await serveFrames(new WinPipeTransport({ allowShared: true }), path, (r) => `shared:${r as string}`, {});
    t.after(() => s.close());
    await assert.rejects(connectFrames(new WinPipeTransport(), path, {}), code('ERR_NPIPE_SERVER_GONE'));
    const c = await connectFrames<string, string>(new WinPipeTransport({ allowShared: true }), path, {});
    t.after(() => c.close());
    assert.equal(await c.request('x'), 'shared:x');
  });

  test("a timeout cancels the request on the server (the handler's signal aborts)", async (t) => {
    let aborted!: () => void;
    const abortSeen = new Promise<void>((resolve) => (aborted = resolve));
    const { path } = await server(t, (_request, { signal }) => {
      signal.addEventListener('abort', () => aborted(), { once: true });
      return new Promise(() => {});
    });
    const c = await client(t, path);
    await assert.rejects(c.request('slow', { timeout: 100 }), code('ERR_NPIPE_TIMEOUT'));
    await abortSeen;
  });

  test('a client that never reads its replies is dropped once stuck, its queued replies bounded; other clients are served meanwhile', async (t) => {
    const big = 'x'.repeat(64 * 1024);
    const { path, server: s, events } = await server(t, () => big, { maxQueuedReplyBytes: 256 * 1024, stuckAfter: 300 });
    const reader = raw(t, path, { key: true });
    reader.socket.pause(); // reads nothing: the server's writes back up
    const token = 'd'.repeat(32);
    const requests = Array.from({ length: 400 }, (_, i) => frame(encodeRequest(LIMITED_REQUEST, i + 1, token, Buffer.from('q'), 1 << 20)));
    reader.socket.write(Buffer.concat([hello(token), ...requests]));
    const honest = await client(t, path);
    assert.equal(await honest.request('hi'), big);
    await until(() => events.some((e) => e.kind === 'reply-dropped' && /read none of its replies/.test(e.reason)), 'the stuck client dropped', 15_000);
    assert.ok(s.stats.replies < 400, `only what fit was answered (${s.stats.replies})`);
    assert.equal(await honest.request('still'), big);
  });
});

/**
 * One contract, every transport: the same tests run over FIFOs, core NATS,
 * JetStream and shared memory (messaging), and over FIFOs and NATS (request/reply;
 * shared memory refuses it, and a test here holds it to that refusal). What
 * differs between transports is only how an address is made.
 *
 * The NATS runs need nats-server (a real one, started here on a free loopback
 * port with a temporary store); without it they skip with a message, and under
 * CI=true they fail instead.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import {
  BufferTooSmallError,
  BusyError,
  ClosedError,
  RemoteError,
  ServerGoneError,
  TimeoutError,
  connect,
  openReceiver,
  openSender,
  serve,
  type Receiver,
  type ReceiverOptions,
  type Sender,
  type SenderOptions,
} from '../src/index.js';
import { driverName, driversElsewhere, registeredDrivers } from '../src/registry.js';
import { delay, npipe, sharedNatsServer, tempDir, until } from './helpers.js';

const nats = sharedNatsServer('contract');

interface Medium {
  name: string;
  /** An address of this medium's form (opened by nothing): which driver serves it. */
  example: string;
  /** A fresh address, or undefined (after skipping the test) when this medium cannot run here. */
  address(t: TestContext): string | undefined;
}

const fifo: Medium = { name: 'FIFO', example: '/tmp/npipe-contract', address: (t) => join(tempDir(t), 'pipe') };

function natsMedium(name: string, query: string): Medium {
  return {
    name,
    example: `nats://127.0.0.1:4222/contract${query ? `?${query}` : ''}`,
    address: (t) => nats.url(t, query),
  };
}

const shm: Medium = { name: 'shared memory', example: 'shm://npipe-contract', address: () => `shm://contract-${randomUUID()}` };

const messaging = [fifo, natsMedium('core NATS', ''), natsMedium('JetStream', 'delivery=jetstream&ack-wait=2000'), shm];
const rpc = [fifo, natsMedium('NATS', '')];

/**
 * Drivers that refuse request/reply (serve and connect reject ERR_NPIPE_UNSUPPORTED):
 * the test below holds each to that refusal, so none is left out of the rpc list silently.
 */
const refusesRequestReply = [shm];

/**
 * Drivers that declare (registry.ts) they do not run on this platform, each with
 * an address of its kind and the test file that runs it where it does: listed
 * here by hand, so that none is skipped silently.
 */
const runsElsewhere = [{ driver: 'winpipe', example: '\\\\.\\pipe\\npipe-example', coveredBy: 'test/winpipe-wine.test.ts' }];

test('every registered driver runs both contracts (adding a transport means adding its medium here)', () => {
  assert.deepEqual(runsElsewhere.map((e) => e.driver).sort(), driversElsewhere().sort(), 'runsElsewhere lists exactly the drivers that do not run here');
  for (const e of runsElsewhere) {
    assert.equal(driverName(e.example), e.driver, e.example);
    assert.ok(existsSync(new URL(`../../${e.coveredBy}`, import.meta.url)), `${e.coveredBy} covers ${e.driver} where it runs`);
  }
  const drivers = registeredDrivers()
    .filter((d) => !runsElsewhere.some((e) => e.driver === d))
    .sort();
  assert.deepEqual([...new Set(messaging.map((m) => driverName(m.example)))].sort(), drivers);
  assert.deepEqual([...new Set([...rpc, ...refusesRequestReply].map((m) => driverName(m.example)))].sort(), drivers);
});

for (const medium of refusesRequestReply) {
  test(`request/reply over ${medium.name} is refused: serve() and connect() reject ERR_NPIPE_UNSUPPORTED, and so does npipe serve`, async (t) => {
    const address = medium.address(t)!;
    await assert.rejects(serve(address, (req: string) => req), { code: 'ERR_NPIPE_UNSUPPORTED' });
    await assert.rejects(connect(address), { code: 'ERR_NPIPE_UNSUPPORTED' });
    const served = await npipe(['serve', address, '--echo']).done;
    assert.notEqual(served.code, 0);
    assert.match(served.stderr, /ERR_NPIPE_UNSUPPORTED/);
  });
}

/** Pids of a process's children (Linux /proc). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Opens the receiver first: core NATS delivers only to receivers already subscribed. */
async function pair<T = string>(address: string, options: ReceiverOptions & SenderOptions = {}) {
  const receiver = (await openReceiver(address, options)) as Receiver<T>;
  const sender = (await openSender(address, { ...options, timeout: 10_000 })) as Sender<T>;
  return { receiver, sender };
}

for (const medium of messaging) {
  describe(`messaging contract over ${medium.name}`, () => {
    test('messages arrive whole, in order, any bytes, empty ones too', { timeout: 30_000 }, async (t) => {
      const address = medium.address(t);
      if (!address) return;
      const { receiver, sender } = await pair<Buffer>(address, { codec: 'bytes' });
      t.after(() => receiver.close());
      const sizes = [0, 1, 100, 4096, 65_536, 500_000, 3, 0, 200_000];
      const messages = sizes.map((n) => randomBytes(n));
      await Promise.all(messages.map((m) => sender.send(m)));
      await sender.close();
      for (const [i, expected] of messages.entries()) {
        const got = await receiver.receive();
        assert.ok(got, `message ${i} arrived`);
        assert.ok(got.equals(expected), `message ${i} (${expected.length} bytes) is whole`);
      }
    });

    test('receiveInto: message after message in one buffer; one too long for it is the error\'s payload, and nothing is lost', { timeout: 30_000 }, async (t) => {
      const address = medium.address(t);
      if (!address) return;
      const { receiver, sender } = await pair<Buffer>(address, { codec: 'bytes' });
      t.after(() => receiver.close());
      const sizes = [0, 10, 70_000, 4096, 200_001, 5];
      const messages = sizes.map((n) => randomBytes(n));
      await Promise.all(messages.map((m) => sender.send(m)));
      await sender.close();
      const target = Buffer.alloc(200_000);
      for (const [i, expected] of messages.entries()) {
        if (expected.length > target.length) {
          await assert.rejects(receiver.receiveInto(target), (err: unknown) => {
            assert.ok(err instanceof BufferTooSmallError);
            assert.equal(err.capacity, target.length);
            assert.ok(err.payload.equals(expected), `message ${i} is the error's payload`);
            return true;
          });
          continue;
        }
        assert.equal(await receiver.receiveInto(target), expected.length, `message ${i}'s length`);
        assert.ok(target.subarray(0, expected.length).equals(expected), `message ${i} (${expected.length} bytes) is whole`);
      }
    });

    test('raw is a byte stream: receiveInto fills its buffer and keeps the rest, for the next call or for receive()', { timeout: 30_000 }, async (t) => {
      const address = medium.address(t);
      if (!address) return;
      const { receiver, sender } = await pair<Buffer>(address, { format: 'raw', codec: 'bytes' });
      t.after(() => receiver.close());
      const sent = [randomBytes(70_000), randomBytes(5), randomBytes(200_000)];
      for (const chunk of sent) await sender.send(chunk);
      await sender.close();
      const expected = Buffer.concat(sent);
      const target = Buffer.alloc(30_000);
      const got: Buffer[] = [];
      for (let total = 0; total < expected.length; ) {
        let piece: Buffer | undefined;
        if (got.length === 1) {
          piece = await receiver.receive(); // the rest of the first 30 000 bytes' message, or the next read
        } else {
          const n = await receiver.receiveInto(target);
          assert.ok(n !== undefined && n > 0 && n <= target.length, `piece ${got.length}: ${n} bytes, within the buffer`);
          piece = Buffer.from(target.subarray(0, n));
        }
        assert.ok(piece, `piece ${got.length} arrived`);
        got.push(piece);
        total += piece.length;
      }
      assert.ok(Buffer.concat(got).equals(expected), 'the bytes, in order, none lost or repeated');
    });

    test('several senders at once: every message arrives, each sender in its own order', { timeout: 30_000 }, async (t) => {
      const address = medium.address(t);
      if (!address) return;
      const receiver = await openReceiver<{ s: number; i: number }>(address, { codec: 'json' });
      t.after(() => receiver.close());
      const senders = await Promise.all(Array.from({ length: 4 }, () => openSender<{ s: number; i: number }>(address, { codec: 'json', timeout: 10_000 })));
      const perSender = 500;
      // Received while the senders send: over JetStream a message is acknowledged when the
      // next is asked for, and one held past ack-wait (2 s here) would come again.
      const receiving = (async () => {
        const next = [0, 0, 0, 0];
        for (let n = 0; n < 4 * perSender; n++) {
          const m = await receiver.receive();
          assert.ok(m);
          assert.equal(m.i, next[m.s], `sender ${m.s}'s messages in order`);
          next[m.s]!++;
        }
        return next;
      })();
      await Promise.all(
        senders.map(async (sender, s) => {
          const sends = [];
          for (let i = 0; i < perSender; i++) sends.push(sender.send({ s, i }));
          await Promise.all(sends);
          await sender.close();
        }),
      );
      assert.deepEqual(await receiving, [perSender, perSender, perSender, perSender]);
    });

    test('a message from another process (npipe send), read by the library', { timeout: 30_000 }, async (t) => {
      const address = medium.address(t);
      if (!address) return;
      const receiver = await openReceiver(address, { format: 'lines' });
      t.after(() => receiver.close());
      const sent = await npipe(['send', address, 'from a process', 'second line']).done;
      assert.equal(sent.code, 0, sent.stderr);
      assert.equal(await receiver.receive(), 'from a process');
      assert.equal(await receiver.receive(), 'second line');
    });

    test('receive: aborted by its signal, one at a time, ends after close; send after close fails', { timeout: 30_000 }, async (t) => {
      const address = medium.address(t);
      if (!address) return;
      const { receiver, sender } = await pair(address);
      const controller = new AbortController();
      const waiting = receiver.receive({ signal: controller.signal });
      await assert.rejects(receiver.receive(), BusyError);
      controller.abort(new Error('stop waiting'));
      await assert.rejects(waiting, /stop waiting/);
      await sender.send('after the abort');
      assert.equal(await receiver.receive(), 'after the abort');
      await sender.close();
      await assert.rejects(sender.send('late'), ClosedError);
      await receiver.close();
      assert.equal(await receiver.receive(), undefined);
    });

    test('a message over maxMessageSize is refused by the sender, before anything is sent', { timeout: 30_000 }, async (t) => {
      const address = medium.address(t);
      if (!address) return;
      const { receiver, sender } = await pair<Buffer>(address, { codec: 'bytes', maxMessageSize: 1000 });
      t.after(() => receiver.close());
      await assert.rejects(sender.send(Buffer.alloc(1001)), { code: 'ERR_NPIPE_FRAME_TOO_LARGE' });
      await sender.send(Buffer.alloc(1000, 7));
      await sender.close();
      const got = await receiver.receive();
      assert.equal(got?.length, 1000);
    });
  });
}

for (const medium of rpc) {
  describe(`request/reply contract over ${medium.name}`, () => {
    test('many requests in flight, each matched to its reply; a handler error is a RemoteError', { timeout: 30_000 }, async (t) => {
      const address = medium.address(t);
      if (!address) return;
      const server = await serve(address, async (req: string) => {
        if (req === 'fail') throw Object.assign(new Error('no such thing'), { code: 'E_NOTHING' });
        await delay(Math.random() * 10);
        return `re:${req}`;
      });
      t.after(() => server.close());
      const client = await connect(address);
      t.after(() => client.close());
      const asks = Array.from({ length: 300 }, (_, i) => `q${i}`);
      assert.deepEqual(await Promise.all(asks.map((q) => client.request(q))), asks.map((q) => `re:${q}`));
      const err = await client.request('fail').catch((e: unknown) => e);
      assert.ok(err instanceof RemoteError, String(err));
      assert.equal(err.remoteCode, 'E_NOTHING');
      assert.equal(err.message, 'no such thing');
      // Exactly: 301 requests, 300 answered, one handler error (a RemoteError, not a reply).
      assert.equal(server.stats.requests, 301);
      assert.equal(server.stats.replies, 300);
      assert.equal(server.stats.errors, 1);
    });

    test('timeout and abort: the caller gets TIMEOUT / the reason, the handler sees its signal abort', { timeout: 30_000 }, async (t) => {
      const address = medium.address(t);
      if (!address) return;
      const aborted: string[] = [];
      const server = await serve(address, (req: string, { signal }) => {
        return new Promise<string>((_resolve, reject) => {
          signal.addEventListener('abort', () => {
            aborted.push(req);
            reject(signal.reason);
          });
        });
      });
      t.after(() => server.close());
      const client = await connect(address);
      t.after(() => client.close());
      await assert.rejects(client.request('slow-1', { timeout: 150 }), TimeoutError);
      const controller = new AbortController();
      const asked = client.request('slow-2', { signal: controller.signal });
      setTimeout(() => controller.abort(new Error('changed my mind')), 150);
      await assert.rejects(asked, /changed my mind/);
      for (let i = 0; i < 100 && aborted.length < 2; i++) await delay(20);
      assert.deepEqual(aborted.sort(), ['slow-1', 'slow-2']);
    });

    test('no server: ERR_NPIPE_SERVER_GONE; with waitForServer the request waits for one', { timeout: 30_000 }, async (t) => {
      const address = medium.address(t);
      if (!address) return;
      const gone = await (async () => {
        const client = await connect(address);
        try {
          return await client.request('anyone?');
        } finally {
          await client.close();
        }
      })().catch((e: unknown) => e);
      assert.ok(gone instanceof ServerGoneError, String(gone));

      // Over FIFOs connect() itself waits for the server; over NATS the request does.
      let asked = false;
      let settled = false;
      const answer = connect(address, { waitForServer: true }).then(async (client) => {
        try {
          asked = true;
          return await client.request('hello', { timeout: 10_000 });
        } finally {
          settled = true;
          await client.close();
        }
      });
      // Start the server once the client waits for one: over FIFOs connect() has created
      // the server's FIFO and waits for its reader; over NATS the request went out (no
      // responders: it is sent again until a server answers).
      await until(() => asked || existsSync(address), 'the client to wait for a server');
      assert.equal(settled, false, 'the request waits: it neither failed nor was answered without a server');
      const server = await serve(address, (req: string) => req.toUpperCase());
      t.after(() => server.close());
      assert.equal(await answer, 'HELLO');
    });

    test('a server killed mid-request: ERR_NPIPE_SERVER_GONE, not a hang', { timeout: 30_000 }, async (t) => {
      const address = medium.address(t);
      if (!address) return;
      const server = npipe(['serve', address, '--exec', 'sleep 30']);
      t.after(() => server.child.kill('SIGKILL'));
      const client = await connect(address, { waitForServer: true });
      t.after(() => client.close());
      const asked = client.request('work');
      asked.catch(() => {}); // awaited below
      // Wait until the server runs the request's command (so it has taken it), then a little more.
      while (!childrenOf(server.child.pid!).length) await delay(50);
      await delay(300);
      server.child.kill('SIGKILL');
      const err = await asked.catch((e: unknown) => e);
      assert.ok(err instanceof ServerGoneError, String(err));
    });

    test('concurrency: never more handlers at once than asked for', { timeout: 30_000 }, async (t) => {
      const address = medium.address(t);
      if (!address) return;
      let running = 0;
      let most = 0;
      const server = await serve(
        address,
        async (req: string) => {
          running++;
          most = Math.max(most, running);
          await delay(5);
          running--;
          return req;
        },
        { concurrency: 3 },
      );
      t.after(() => server.close());
      const client = await connect(address);
      t.after(() => client.close());
      const asks = Array.from({ length: 60 }, (_, i) => String(i));
      assert.deepEqual(await Promise.all(asks.map((q) => client.request(q))), asks);
      assert.equal(most, 3);
    });
  });
}

describe('request/reply over NATS: no JetStream', () => {
  test('delivery=jetstream is refused for serve() and connect() with ERR_NPIPE_INVALID_ARG, before any connection', async () => {
    // Port 1: nothing listens there; the refusal must come first.
    const url = 'nats://127.0.0.1:1/x?delivery=jetstream';
    await assert.rejects(serve(url, (req: string) => req), { code: 'ERR_NPIPE_INVALID_ARG' });
    await assert.rejects(connect(url), { code: 'ERR_NPIPE_INVALID_ARG' });
  });
});

describe('argument checks are the same on every medium', () => {
  test('#16 - a bad timeout for connect() or a bad maxQueuedBytes is ERR_NPIPE_INVALID_ARG on every medium, before anything is opened', async (t) => {
    // Port 1: nothing listens there, so a check that came after connecting would be ERR_NPIPE_UNREACHABLE.
    const dir = tempDir(t);
    for (const address of [join(dir, 'pipe'), 'nats://127.0.0.1:1/npipe-args']) {
      for (const timeout of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
        await assert.rejects(connect(address, { timeout }), { code: 'ERR_NPIPE_INVALID_ARG' }, `${address} timeout ${timeout}`);
      }
      for (const maxQueuedBytes of [-1, 0, 2.5]) {
        await assert.rejects(openReceiver(address, { maxQueuedBytes }), { code: 'ERR_NPIPE_INVALID_ARG' }, `${address} maxQueuedBytes ${maxQueuedBytes}`);
      }
    }
    assert.equal(existsSync(join(dir, 'pipe')), false, 'no FIFO was created');
  });
});

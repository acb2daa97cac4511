/**
 * The processes `npm run bench` starts: one role each, as the first argument.
 * Receivers print "ready" once listening, then one JSON line of results.
 */
import { constants, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { percentile, timeRoundTrips } from './round-trips.js';
import { allocAligned, connect, openPublisher, openReceiver, openSender, serve, subscribe, type FormatName, type Receiver } from '../src/index.js';

const [role, ...args] = process.argv.slice(2) as [string, ...string[]];
const rss = () => process.resourceUsage().maxRSS * 1024;
const print = (result: object) => process.stdout.write(`${JSON.stringify({ ...result, rss: rss() })}\n`);

/**
 * What a reader prints: from its first message to its last (`seconds`, `count`,
 * `bytes`), and where its warm-up ended (`warm*`: the time and amounts at the first
 * tenth of what it expects). The bench rates the rest as the steady state; in a
 * Node process the first tenth runs before the JIT has compiled the hot path.
 */
function printReader(start: bigint, warmAt: bigint, count: number, bytes: number, warmCount: number, warmBytes: number) {
  const since = (t: bigint) => Number(t - start) / 1e9;
  print({ seconds: since(process.hrtime.bigint()), count, bytes, warmSeconds: since(warmAt), warmCount, warmBytes });
}

/**
 * Receives `count` messages, or for raw (where reads, not writes, make the chunks)
 * `count` bytes. `into`: with receiveInto() into one reused buffer of that many
 * bytes, as C's reader reads into one buffer; else with for-await.
 */
async function npipeRecv(path: string, count: number, format: FormatName, pipeSize?: number, into?: number) {
  // The library's default pipe, or (bulk rows) 1 MiB, as the C baseline uses.
  const receiver = await openReceiver<Buffer>(path, { format, codec: 'bytes', maxMessageSize: 64 << 20, ...(pipeSize ? { pipeSize } : {}) });
  await timeReceiver(receiver, count, format === 'raw', into);
}

/** Says "ready", then takes `count` messages (raw: bytes) from `receiver`, timed, and prints the reader's JSON. */
async function timeReceiver(receiver: Receiver<Buffer>, count: number, raw: boolean, into?: number) {
  console.log('ready');
  let n = 0;
  let bytes = 0;
  let start = 0n;
  let warmAt = 0n;
  let warmCount = 0;
  let warmBytes = 0;
  // Warm once n (or for raw, bytes) reaches this; a boolean is cheaper per message than comparing bigints.
  const warm = Math.max(1, Math.floor(count / 10));
  let warmed = false;
  if (into) {
    const target = allocAligned(into);
    for (let got = await receiver.receiveInto(target); got !== undefined; got = await receiver.receiveInto(target)) {
      if (n === 0) start = process.hrtime.bigint();
      bytes += got;
      ++n;
      if (!warmed && (raw ? bytes : n) >= warm) [warmed, warmAt, warmCount, warmBytes] = [true, process.hrtime.bigint(), n, bytes];
      if (raw ? bytes >= count : n === count) break;
    }
    await receiver.close();
  } else {
    for await (const message of receiver) {
      if (n === 0) start = process.hrtime.bigint();
      bytes += message.length;
      ++n;
      if (!warmed && (raw ? bytes : n) >= warm) [warmed, warmAt, warmCount, warmBytes] = [true, process.hrtime.bigint(), n, bytes];
      if (raw ? bytes >= count : n === count) break;
    }
  }
  printReader(start, warmAt, n, bytes, warmCount, warmBytes);
}

/**
 * A producer that respects backpressure: `count` calls of `send`, awaiting one in
 * every `every`, with at most 8 of those awaited ones outstanding.
 */
async function produce(count: number, every: number, send: () => Promise<void>): Promise<void> {
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const sent = send();
    if (i % every === every - 1) {
      inFlight.push(sent);
      if (inFlight.length > 8) await inFlight.shift();
    }
  }
  await Promise.all(inFlight);
}

async function npipeSend(path: string, count: number, size: number, format: FormatName, waitForGo: boolean) {
  const sender = await openSender<Uint8Array>(path, { format, codec: 'bytes', timeout: 30_000, maxMessageSize: 64 << 20 });
  if (waitForGo) {
    // Several writers start together, once all are up: process start-up is not measured.
    console.log('ready');
    await new Promise((resolve) => process.stdin.once('data', resolve));
    process.stdin.pause();
  }
  const message = Buffer.alloc(size, 120);
  // About 8 MiB (or 8 x 1024 messages) queued ahead of the pipe at most.
  await produce(count, Math.max(1, Math.min(1024, Math.floor((1 << 20) / size))), () => sender.send(message));
  await sender.close();
  print({});
}

/** A subscriber of `topic` that takes `count` messages (publish/subscribe rows, issue 20 #8), timed as npipeRecv's. */
async function npipeSubscribe(topic: string, count: number) {
  await timeReceiver(await subscribe(topic, { codec: 'bytes', maxMessageSize: 64 << 20 }), count, false);
}

/** Publishes `count` messages of `size` bytes to `topic`, with backpressure as npipeSend has it (scaled for 8 subscribers). */
async function npipePublish(topic: string, count: number, size: number) {
  const publisher = await openPublisher<Uint8Array>(topic, { codec: 'bytes', maxMessageSize: 64 << 20 });
  const message = Buffer.alloc(size, 120);
  // Each message is queued for every subscriber: an eighth of npipeSend's lead, about 1 MiB or 128 messages per subscriber.
  await produce(count, Math.max(1, Math.min(128, Math.floor((1 << 17) / size))), () => publisher.publish(message));
  const subscribers = publisher.subscribers;
  await publisher.close();
  print({ subscribers });
}

/** Plain Node: net.Socket over an O_NONBLOCK FIFO fd, no framing (counts bytes). */
async function nodeRecv(path: string, total: number) {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const socket = new Socket({ fd, readable: true, writable: false });
  console.log('ready');
  let got = 0;
  let start = 0n;
  let warmAt = 0n;
  let warmBytes = 0;
  const warm = Math.floor(total / 10);
  await new Promise<void>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      if (got === 0) start = process.hrtime.bigint();
      got += chunk.length;
      if (warmAt === 0n && got >= warm) [warmAt, warmBytes] = [process.hrtime.bigint(), got];
      if (got >= total) resolve();
    });
    socket.on('end', resolve);
  });
  printReader(start, warmAt, 0, got, 0, warmBytes);
  socket.destroy();
}

async function nodeSend(path: string, count: number, size: number) {
  const fd = await openWhenReader(path);
  const socket = new Socket({ fd, readable: false, writable: true });
  const message = Buffer.alloc(size, 120);
  for (let i = 0; i < count; ) {
    socket.cork();
    for (let j = 0; j < 1000 && i < count; j++, i++) socket.write(message);
    socket.uncork();
    if (socket.writableNeedDrain) await new Promise((resolve) => socket.once('drain', resolve));
  }
  await new Promise<void>((resolve) => socket.end(resolve));
  print({});
}

async function openWhenReader(path: string): Promise<number> {
  for (;;) {
    try {
      return openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw err;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

async function rpcServe(path: string, busyPoll: number) {
  const server = await serve<Buffer, Buffer>(path, (request) => request, { codec: 'bytes', concurrency: 64, busyPoll });
  console.log('ready');
  process.on('SIGTERM', () => void server.close());
  await server.done;
  print({});
}

async function rpcClient(path: string, iterations: number, size: number, busyPoll: number) {
  const client = await connect<Buffer, Buffer>(path, { codec: 'bytes', busyPoll });
  const payload = Buffer.alloc(size, 112);
  const latencies = await timeRoundTrips(iterations, () => client.request(payload));
  await client.close();
  print({ p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), latencies: latencies.filter((_, i) => i % 50 === 0) });
}

/**
 * A client of the cost curves (curves.ts): connects, prints "ready", waits for "go"
 * on stdin (so that every client of a point runs at once, process start-up not
 * measured), then sends requests back to back for `seconds`. Requests started in
 * the first fifth are its warm-up, not recorded. Prints every latency recorded
 * (microseconds, to 0.1), so that the bench can take percentiles over all clients.
 */
async function rpcClientTimed(path: string, seconds: number, size: number) {
  const client = await connect<Buffer, Buffer>(path, { codec: 'bytes' });
  console.log('ready');
  await new Promise((resolve) => process.stdin.once('data', resolve));
  process.stdin.pause();
  const payload = Buffer.alloc(size, 112);
  const latencies: number[] = [];
  const start = process.hrtime.bigint();
  const warmEnd = start + BigInt(Math.round(seconds * 0.2e9));
  const end = start + BigInt(Math.round(seconds * 1e9));
  for (;;) {
    const t = process.hrtime.bigint();
    if (t >= end) break;
    await client.request(payload);
    if (t >= warmEnd) latencies.push(Math.round(Number(process.hrtime.bigint() - t) / 100) / 10);
  }
  const measured = Number(process.hrtime.bigint() - warmEnd) / 1e9;
  await client.close();
  print({ count: latencies.length, seconds: measured, latencies });
}

/** Plain Node ping-pong over two FIFOs, no framing: the floor for a Node round trip. */
async function nodePong(req: string, rep: string, size: number) {
  const input = new Socket({ fd: openSync(req, constants.O_RDONLY | constants.O_NONBLOCK), readable: true, writable: false });
  console.log('ready');
  const out = new Socket({ fd: await openWhenReader(rep), readable: false, writable: true });
  let pending = 0;
  input.on('data', (chunk: Buffer) => {
    pending += chunk.length;
    while (pending >= size) {
      pending -= size;
      out.write(chunk.subarray(0, size));
    }
  });
  await new Promise((resolve) => input.on('end', resolve));
  out.destroy();
  print({});
}

async function nodePing(req: string, rep: string, size: number, iterations: number) {
  const out = new Socket({ fd: await openWhenReader(req), readable: false, writable: true });
  const input = new Socket({ fd: openSync(rep, constants.O_RDONLY | constants.O_NONBLOCK), readable: true, writable: false });
  const payload = Buffer.alloc(size, 112);
  let got = 0;
  let wake: (() => void) | undefined;
  input.on('data', (chunk: Buffer) => {
    got += chunk.length;
    if (got >= size) {
      got -= size;
      wake?.();
    }
  });
  const latencies = await timeRoundTrips(
    iterations,
    () =>
      new Promise<void>((resolve) => {
        wake = resolve;
        out.write(payload);
      }),
  );
  out.destroy();
  input.destroy();
  print({ p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) });
}

type Zmq = typeof import('zeromq');
async function zmq(): Promise<Zmq> {
  return (await import('zeromq')) as Zmq;
}

async function zmqPull(endpoint: string, count: number) {
  const z = await zmq();
  const sock = new z.Pull();
  await sock.bind(endpoint);
  console.log('ready');
  let n = 0;
  let start = 0n;
  let warmAt = 0n;
  const warm = Math.max(1, Math.floor(count / 10));
  for await (const [message] of sock) {
    void message;
    if (n === 0) start = process.hrtime.bigint();
    if (++n === warm) warmAt = process.hrtime.bigint();
    if (n === count) break;
  }
  printReader(start, warmAt, n, 0, warm, 0);
  sock.close();
}

async function zmqPush(endpoint: string, count: number, size: number) {
  const z = await zmq();
  const sock = new z.Push();
  sock.connect(endpoint);
  const message = Buffer.alloc(size, 120);
  for (let i = 0; i < count; i++) await sock.send(message);
  // send() resolves once queued; closing at once would drop what is still queued
  // (seen here). The puller measures from its first message to its last, so this
  // wait is not counted.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  sock.close();
  print({});
}

async function zmqRep(endpoint: string) {
  const z = await zmq();
  const sock = new z.Reply();
  await sock.bind(endpoint);
  console.log('ready');
  process.on('SIGTERM', () => sock.close());
  try {
    for await (const [message] of sock) await sock.send(message!);
  } catch {
    // closed
  }
  print({});
}

async function zmqReq(endpoint: string, iterations: number, size: number) {
  const z = await zmq();
  const sock = new z.Request();
  sock.connect(endpoint);
  const payload = Buffer.alloc(size, 112);
  const latencies = await timeRoundTrips(iterations, async () => {
    await sock.send(payload);
    await sock.receive();
  });
  sock.close();
  print({ p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) });
}

/**
 * A round trip over two shared-memory lanes (shm:// has no request/reply): `pong`
 * receives on `a` and sends each message back on `b`; `ping` sends on `a`, waits for
 * the echo on `b`, `iterations` times after a warm-up, and prints p50 and p99 (µs).
 * Every end busy-polls `busyPoll` µs.
 */
async function shmPong(a: string, b: string, busyPoll: number) {
  const receiver = await openReceiver<Buffer>(a, { codec: 'bytes', busyPoll });
  console.log('ready');
  const sender = await openSender<Uint8Array>(b, { codec: 'bytes', busyPoll, timeout: 30_000 });
  for await (const message of receiver) await sender.send(message);
  await sender.close();
  print({});
}

async function shmPing(a: string, b: string, size: number, iterations: number, busyPoll: number) {
  const receiver = await openReceiver<Buffer>(b, { codec: 'bytes', busyPoll });
  const sender = await openSender<Uint8Array>(a, { codec: 'bytes', busyPoll, timeout: 30_000 });
  const payload = Buffer.alloc(size, 112);
  const latencies = await timeRoundTrips(iterations, async () => {
    await sender.send(payload);
    await receiver.receive();
  });
  await sender.close();
  await receiver.close();
  print({ p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) });
}

const n = (i: number) => Number(args[i]);
switch (role) {
  case 'shm-pong':
    await shmPong(args[0]!, args[1]!, n(2));
    break;
  case 'shm-ping':
    await shmPing(args[0]!, args[1]!, n(2), n(3), n(4));
    break;
  case 'npipe-recv':
    await npipeRecv(args[0]!, n(1), args[2] as FormatName, args[3] ? n(3) : undefined, args[4] ? n(4) : undefined);
    break;
  case 'npipe-send':
    await npipeSend(args[0]!, n(1), n(2), args[3] as FormatName, args[4] === '--wait-go');
    break;
  case 'npipe-subscribe':
    await npipeSubscribe(args[0]!, n(1));
    break;
  case 'npipe-publish':
    await npipePublish(args[0]!, n(1), n(2));
    break;
  case 'node-recv':
    await nodeRecv(args[0]!, n(1));
    break;
  case 'node-send':
    await nodeSend(args[0]!, n(1), n(2));
    break;
  case 'rpc-serve':
    await rpcServe(args[0]!, args[1] ? n(1) : 0);
    break;
  case 'rpc-client':
    await rpcClient(args[0]!, n(1), n(2), args[3] ? n(3) : 0);
    break;
  case 'rpc-client-timed':
    await rpcClientTimed(args[0]!, n(1), n(2));
    break;
  case 'node-pong':
    await nodePong(args[0]!, args[1]!, n(2));
    break;
  case 'node-ping':
    await nodePing(args[0]!, args[1]!, n(2), n(3));
    break;
  case 'zmq-pull':
    await zmqPull(args[0]!, n(1));
    break;
  case 'zmq-push':
    await zmqPush(args[0]!, n(1), n(2));
    break;
  case 'zmq-rep':
    await zmqRep(args[0]!);
    break;
  case 'zmq-req':
    await zmqReq(args[0]!, n(1), n(2));
    break;
  default:
    console.error(`unknown role ${role}`);
    process.exit(2);
}

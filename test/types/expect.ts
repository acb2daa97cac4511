/**
 * Expected types of the public API (issue 16 #5), checked by test/types.test.ts
 * with tsc through the package names (tsc maps them to the sources). Each `Is<...>` must hold, and each line
 * under `@ts-expect-error` must fail to compile: an option that stops deciding a
 * type (a loosening) makes that directive unused, which is itself an error.
 */
import {
  bytesCodec,
  connect,
  jsonCodec,
  openReceiver,
  openSender,
  serve,
  textCodec,
  type Client,
  type ConnectOptions,
  type ServeOptions,
  type Codec,
  type FormatName,
  type Receiver,
  type Sender,
} from 'npipe';
import { mkfifo, openFifoReader, type FifoEnd } from 'npipe/fifo';
// @ts-expect-error the FIFO layer is npipe/fifo's, not the root's
import { mkfifo as rootMkfifo } from 'npipe';
// @ts-expect-error internal: how the NATS driver recognises its addresses
import { isNatsUrl } from 'npipe';
// @ts-expect-error internal: the writer's retry interval
import { MAX_READER_POLL_MS } from 'npipe/fifo';
// @ts-expect-error internal: reply folders belong to the FIFO driver
import { replyDirectories } from 'npipe/fifo';
// @ts-expect-error internal: the interface drivers implement, not a user's type
import type { FrameSender } from 'npipe';
// @ts-expect-error internal: the FIFO driver's request/reply transport
import { FifoTransport } from 'npipe';

/** Exact equality (not mere assignability): Receiver<string> is not Receiver<unknown>. */
type Equal<A, B> = (<G>() => G extends A ? 1 : 2) extends <G>() => G extends B ? 1 : 2 ? true : false;
declare function is<T extends true>(): void;

declare const path: string;
interface Job {
  id: number;
}
declare const jobCodec: Codec<Job>;
/** A codec whose two sides differ: it sends numbers and yields strings. */
declare const numberToText: Codec<string, number>;

export async function receivers(): Promise<void> {
  is<Equal<Awaited<ReturnType<typeof mkfifo>>, boolean>>();
  is<Equal<Awaited<ReturnType<typeof openFifoReader>>, FifoEnd>>();

  const plain = await openReceiver(path);
  is<Equal<typeof plain, Receiver<string>>>();
  const lines = await openReceiver(path, { format: 'lines' });
  is<Equal<typeof lines, Receiver<string>>>();
  const fixed = await openReceiver(path, { format: 'fixed:16' });
  is<Equal<typeof fixed, Receiver<string>>>();
  const json = await openReceiver(path, { codec: 'json' });
  is<Equal<typeof json, Receiver<unknown>>>();
  const jobs = await openReceiver<Job>(path, { codec: 'json' });
  is<Equal<typeof jobs, Receiver<Job>>>();
  const bytes = await openReceiver(path, { codec: 'bytes' });
  is<Equal<typeof bytes, Receiver<Buffer>>>();
  const raw = await openReceiver(path, { format: 'raw' });
  is<Equal<typeof raw, Receiver<Buffer>>>();
  const rawText = await openReceiver(path, { format: 'raw', codec: 'text' });
  is<Equal<typeof rawText, Receiver<string>>>();
  const byCodec = await openReceiver(path, { codec: jobCodec });
  is<Equal<typeof byCodec, Receiver<Job>>>();
  const bytesObject = await openReceiver(path, { codec: bytesCodec });
  is<Equal<typeof bytesObject, Receiver<Buffer>>>();
  const textObject = await openReceiver(path, { codec: textCodec });
  is<Equal<typeof textObject, Receiver<string>>>();
  const jsonObject = await openReceiver(path, { codec: jsonCodec });
  is<Equal<typeof jsonObject, Receiver<unknown>>>();
  const twoSided = await openReceiver(path, { codec: numberToText });
  is<Equal<typeof twoSided, Receiver<string>>>();
  // A type argument may widen what arrives, never change it.
  const wide = await openReceiver<Uint8Array>(path, { codec: 'bytes' });
  is<Equal<typeof wide, Receiver<Uint8Array>>>();
  // Options not known until run time: a message may be any codec's.
  const format = 'frames' as FormatName;
  const either = await openReceiver(path, { format });
  is<Equal<typeof either, Receiver<unknown>>>();

  for await (const message of plain) is<Equal<typeof message, string>>();
  is<Equal<Awaited<ReturnType<typeof bytes.receive>>, Buffer | undefined>>();

  // @ts-expect-error a format name that does not exist
  await openReceiver(path, { format: 'lnies' });
  // @ts-expect-error fixed needs its size
  await openReceiver(path, { format: 'fixed' });
  // @ts-expect-error a codec name that does not exist
  await openReceiver(path, { codec: 'utf8' });
  // @ts-expect-error bytes yields Buffers, not strings
  await openReceiver<string>(path, { codec: 'bytes' });
  // @ts-expect-error raw yields Buffers, not strings
  await openReceiver<string>(path, { format: 'raw' });
  // @ts-expect-error text yields strings
  await openReceiver<Buffer>(path, { format: 'lines' });
  // @ts-expect-error json yields unknown: a string must be checked first
  const parsed: string | undefined = await json.receive();
  void parsed;
}

export async function senders(): Promise<void> {
  const text = await openSender(path, { format: 'lines' });
  is<Equal<typeof text, Sender<string | Uint8Array>>>();
  is<Equal<typeof text, Sender>>();
  await text.send('hello');
  await text.send(new Uint8Array(3));
  // @ts-expect-error a text sender takes strings and bytes, not numbers
  await text.send(42);

  const bytes = await openSender(path, { codec: 'bytes' });
  is<Equal<typeof bytes, Sender<string | Uint8Array>>>();
  // A type argument may narrow what is sent.
  const onlyBytes = await openSender<Uint8Array>(path, { codec: 'bytes' });
  // @ts-expect-error narrowed to bytes
  await onlyBytes.send('text');

  const json = await openSender(path, { codec: 'json' });
  is<Equal<typeof json, Sender<unknown>>>();
  await json.send({ any: ['value'] });
  const jobs = await openSender<Job>(path, { codec: 'json' });
  // @ts-expect-error a Job sender sends Jobs
  await jobs.send({ name: 'x' });

  const byCodec = await openSender(path, { codec: jobCodec });
  is<Equal<typeof byCodec, Sender<Job>>>();
  const twoSided = await openSender(path, { codec: numberToText });
  is<Equal<typeof twoSided, Sender<number>>>();

  // @ts-expect-error a format name that does not exist
  await openSender(path, { format: 'lnies' });
  // @ts-expect-error text senders take strings and bytes
  await openSender<number>(path, { format: 'lines' });
}

export async function requestReply(): Promise<void> {
  await serve(path, (request) => {
    is<Equal<typeof request, string>>();
    return request.toUpperCase();
  });
  await serve(path, (request) => {
    is<Equal<typeof request, Buffer>>();
    return request;
  }, { codec: 'bytes' });
  await serve(path, (request) => {
    is<Equal<typeof request, unknown>>();
    return { echoed: request };
  }, { codec: 'json' });
  await serve<Job, Job>(path, (request) => request, { codec: 'json' });
  await serve(path, (request) => {
    is<Equal<typeof request, Job>>();
    return request;
  }, { codec: jobCodec });

  // @ts-expect-error a text server's requests are strings
  await serve(path, (request: Buffer) => request);
  // @ts-expect-error text and bytes replies are strings or bytes, not numbers
  await serve(path, () => 42);
  // @ts-expect-error bytes requests are Buffers
  await serve<string>(path, (request) => request, { codec: 'bytes' });

  const text = await connect(path);
  is<Equal<typeof text, Client<string | Uint8Array, string>>>();
  const bytes = await connect(path, { codec: 'bytes' });
  is<Equal<typeof bytes, Client<string | Uint8Array, Buffer>>>();
  const buffers = await connect<Buffer, Buffer>(path, { codec: 'bytes' });
  is<Equal<typeof buffers, Client<Buffer, Buffer>>>();
  const json = await connect(path, { codec: 'json' });
  is<Equal<typeof json, Client<unknown, unknown>>>();
  const jobs = await connect(path, { codec: jobCodec });
  is<Equal<typeof jobs, Client<Job, Job>>>();
  const twoSided = await connect(path, { codec: numberToText });
  is<Equal<typeof twoSided, Client<number, string>>>();
  is<Equal<Awaited<ReturnType<typeof text.request>>, string>>();

  // @ts-expect-error a text client sends strings or bytes
  await text.request(42);
  // @ts-expect-error text replies are strings
  await connect<string, Buffer>(path);

  // No option leads to internal types (#16 attack pass: `transport` reached Transport and FrameSender).
  is<Equal<Extract<keyof ServeOptions<string, string> | keyof ConnectOptions<string, string>, 'transport'>, never>>();
  // @ts-expect-error serve takes no frame transport: the FIFO driver makes its own
  await serve(path, (r: string) => r, { transport: undefined });
}

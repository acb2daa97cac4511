/**
 * The library's entry points: openSender, openReceiver, serve and connect. Each
 * resolves its address to a driver (registry.ts) and hands over; nothing here asks
 * which transport it is.
 */
import { InvalidArgumentError } from './errors.js';
import { resolveCodec, type Codec, type CodecName, type Sendable } from './codec.js';
import { createFraming, type FormatName } from './framing/index.js';
import type { DriverReceiverOptions, DriverSenderOptions, MediumOptions } from './drivers/types.js';
import { Receiver, Sender } from './messaging.js';
import { Publisher } from './publisher.js';
import { UnsupportedError } from './errors.js';
import type { PubSub } from './drivers/types.js';
import { SLOW_POLICIES, isSlowPolicy, type SlowPolicy } from './transport/types.js';
import { driverFor } from './registry.js';
import type { Client, ConnectOptions as RpcConnectOptions, Server, ServeOptions as RpcServeOptions } from './rpc/types.js';
import type { Handler } from './rpc/handler.js';
import { DEFAULT_CONCURRENCY } from './rpc/limits.js';
import type { Delivery } from './drivers/nats/url.js';
import { checkTimeout } from './util/abort.js';
import { checkBusyPoll } from './util/busy-poll.js';

/**
 * The library's default format: `frames` carries any bytes, and whole messages of
 * any size from any number of writers sharing the FIFO.
 */
export const DEFAULT_FORMAT: FormatName = 'frames';

interface MessageOptions {
  /** Wire format (default `frames`; the CLI's default is `lines`). A name not in FormatName does not compile. */
  format?: FormatName;
  /** Largest message accepted or sent, in bytes (default 64 MiB; over NATS, at most the server's max_payload). */
  maxMessageSize?: number;
  /**
   * For a `nats://` address: `core` (at most once, the default) or `jetstream`
   * (stored, acknowledged, at least once). Overrides the URL's `?delivery=`.
   */
  delivery?: Delivery;
}

/**
 * serve()'s options: request/reply's own (rpc/types.ts), and `nats` for a nats://
 * address (the server for `nats:///subject`, credentials, TLS; docs/NATS.md).
 */
export interface ServeOptions<Req, Res> extends RpcServeOptions<Req, Res>, MediumOptions {}

/** connect()'s options: request/reply's own, and `nats` for a nats:// address. */
export interface ConnectOptions<Req, Res> extends RpcConnectOptions<Req, Res>, MediumOptions {}

/** `T`: what `send` accepts when `codec` is a Codec object. */
export interface SenderOptions<T = unknown> extends DriverSenderOptions, MessageOptions {
  /**
   * Payload codec (default `text`, or `bytes` for the `raw` format). `text` and
   * `bytes` send a string or a Uint8Array, `json` any JSON value, a Codec object its
   * `In` type: openSender's Sender accepts that.
   */
  codec?: CodecName | Codec<unknown, T>;
}

/** `T`: what a message decodes to when `codec` is a Codec object. */
export interface ReceiverOptions<T = unknown> extends DriverReceiverOptions, MessageOptions {
  /**
   * Payload codec (default `text`, or `bytes` for the `raw` format). Messages are
   * strings with `text`, Buffers with `bytes`, parsed JSON with `json` (unknown,
   * or the type argument given), a Codec object's `T`: openReceiver's Receiver
   * yields that.
   */
  codec?: CodecName | Codec<T, never>;
  /**
   * Core NATS only: bytes of messages received and not yet taken before new ones
   * are dropped (counted in `dropped`, reported to `onDrop` as `slow-consumer`):
   * core NATS cannot slow a sender down (default 64 MiB, at most 524288 messages).
   */
  maxQueuedBytes?: number;
}

/*
 * How the message types follow the options (issue 16 #5). Each function has one
 * overload per codec: a Codec object gives its own types; `json` gives unknown, or
 * the type arguments the caller names (JSON.parse's bargain: not checked); `bytes`,
 * `text` and no codec give what the codec yields, and a type argument may only
 * widen what a receiver yields (`Buffer extends T`) or narrow what a sender accepts
 * (`T extends Sendable`): `openReceiver<string>(p, { codec: 'bytes' })` does not
 * compile. Where the options may be left out, they are a rest tuple that is
 * `[options: never]` for a bad type argument: an optional `never` would let
 * `openReceiver<Buffer>(p)` compile. A last overload takes options whose codec or
 * format is not a literal (a CodecName variable): what every codec could yield, or
 * accept.
 */

/** Options where no codec is named and the format is not `raw`: the `text` codec. */
type TextByDefault = { codec?: 'text' | undefined; format?: Exclude<FormatName, 'raw'> | undefined } | { codec: 'text' };
/** The `bytes` codec, named or the `raw` format's default. */
type BytesByDefault = { codec: 'bytes' } | { codec?: undefined; format: 'raw' };
type ServeBase = Omit<ServeOptions<unknown, unknown>, 'codec'>;
type ConnectBase = Omit<ConnectOptions<unknown, unknown>, 'codec'>;

function framingFor(options: MessageOptions & { maxPartialBytes?: number }) {
  const format = options.format ?? DEFAULT_FORMAT;
  return {
    framing: createFraming(format, {
      ...(options.maxMessageSize === undefined ? {} : { maxMessageSize: options.maxMessageSize }),
      ...(options.maxPartialBytes === undefined ? {} : { maxPartialBytes: options.maxPartialBytes }),
    }),
    defaultCodec: (format === 'raw' ? 'bytes' : 'text') as CodecName,
  };
}

/**
 * Opens `path` (a FIFO path or a nats:// URL) for sending. A FIFO is created if
 * missing (unless `create: false`), and the call waits for a reader (up to
 * `timeout`, or until `signal`); a nats:// URL connects to its server. Over a
 * FIFO, `timeout` means no progress for that long, for the sender's whole life:
 * no reader came, or the pipe took no byte of a message being written (a reader
 * that stopped reading): ERR_NPIPE_TIMEOUT. 0: fail at once when there is no
 * reader (writes are then not bounded). Values past 2^31-1 ms are honoured.
 *
 * The Sender's type is what `send` accepts under the codec: a string or a
 * Uint8Array (`text`, the default, and `bytes`), any value (`json`, or the type
 * argument given), a Codec object's `In`.
 *
 * @throws ERR_NPIPE_TIMEOUT, ERR_NPIPE_NOT_FIFO, ERR_NPIPE_UNSAFE, ERR_NPIPE_NOT_FOUND,
 *   ERR_NPIPE_PERMISSION, ERR_NPIPE_INVALID_ARG, ERR_NPIPE_UNREACHABLE (no NATS server).
 * @example
 * const sender = await openSender('/tmp/jobs', { format: 'lines', timeout: 5000 });
 * await sender.send('hello');
 * await sender.close();
 */
export function openSender<T>(path: string, options: SenderOptions<T> & { codec: Codec<unknown, T> }): Promise<Sender<T>>;
/** `json`: any value; a type argument names what this sender sends (not checked). */
export function openSender<T = unknown>(path: string, options: SenderOptions & { codec: 'json' }): Promise<Sender<T>>;
/** `text` (the default) or `bytes`: a string or a Uint8Array, or a narrower type argument. */
export function openSender<T extends Sendable = Sendable>(path: string, options?: SenderOptions & { codec?: 'text' | 'bytes' | undefined }): Promise<Sender<T>>;
/** A codec not known at compile time: what every codec accepts. */
export function openSender(path: string, options?: SenderOptions<Sendable>): Promise<Sender<Sendable>>;
export async function openSender(path: string, options: SenderOptions = {}): Promise<Sender<unknown>> {
  const { framing, defaultCodec } = framingFor(options);
  const codec = resolveCodec<unknown, unknown>(options.codec, defaultCodec);
  const frames = await (await driverFor(path)).openSender(path, framing, options);
  return new Sender(frames, codec);
}

/**
 * Opens `path` (a FIFO path or a nats:// URL) for receiving; never waits for a
 * writer. A FIFO is created if missing (unless `create: false`); by default the
 * receiver keeps listening while writers come and go, and `keepOpen: false` ends
 * it at the first end of file. A nats:// URL subscribes (core) or joins the
 * stream's consumer (JetStream). `timeout`: each `receive()`/`receiveInto()` (and iterator step) that
 * gets no message for that long rejects with ERR_NPIPE_TIMEOUT.
 *
 * The Receiver's type is what a message decodes to: a string (`text`, the
 * default), a Buffer (`bytes`, the default with format `raw`), unknown (`json`,
 * or the type argument given), a Codec object's `T`.
 *
 * @throws ERR_NPIPE_NOT_FIFO, ERR_NPIPE_UNSAFE, ERR_NPIPE_NOT_FOUND, ERR_NPIPE_PERMISSION, ERR_NPIPE_INVALID_ARG,
 *   ERR_NPIPE_UNREACHABLE (no NATS server).
 * @example
 * const receiver = await openReceiver('/tmp/jobs', { format: 'lines' });
 * for await (const message of receiver) console.log(message);
 */
export function openReceiver<T>(path: string, options: ReceiverOptions<T> & { codec: Codec<T, never> }): Promise<Receiver<T>>;
/** `json`: parsed values, unknown; a type argument names what the sender sends (not checked). */
export function openReceiver<T = unknown>(path: string, options: ReceiverOptions & { codec: 'json' }): Promise<Receiver<T>>;
/** `bytes`, or format `raw` with no codec: Buffers (a type argument may only widen that). */
export function openReceiver<T = Buffer>(path: string, options: Buffer extends T ? ReceiverOptions & BytesByDefault : never): Promise<Receiver<T>>;
/** `text`, or no codec with any format but `raw`: strings (a type argument may only widen that). */
export function openReceiver<T = string>(path: string, ...options: string extends T ? [options?: ReceiverOptions & TextByDefault] : [options: never]): Promise<Receiver<T>>;
/** A codec or format not known at compile time: a message may be any codec's. */
export function openReceiver(path: string, options?: ReceiverOptions): Promise<Receiver<unknown>>;
export async function openReceiver(path: string, options: ReceiverOptions = {}): Promise<Receiver<unknown>> {
  const { framing, defaultCodec } = framingFor(options);
  const codec = resolveCodec<unknown, never>(options.codec, defaultCodec);
  checkTimeout(options.timeout); // before anything is opened: a bad value leaves no fd behind
  checkMaxQueuedBytes(options.maxQueuedBytes);
  if (options.signal?.aborted) throw options.signal.reason;
  const frames = await (await driverFor(path)).openReceiver(path, framing, options);
  return new Receiver(frames, codec, options.timeout, path);
}

/**
 * Serves requests arriving on `path` (a FIFO path or a nats:// URL):
 * `handler(request, { signal })` returns the reply or throws (the client gets a
 * RemoteError with the error's code and message).
 *
 * Types follow the codec: requests are what it decodes to (string with `text`, the
 * default; Buffer with `bytes`; unknown or the type argument with `json`), replies
 * what it encodes (a string or a Uint8Array with `text` and `bytes`).
 *
 * Concurrency: up to `concurrency` handlers run at once, across all clients.
 * @throws ERR_NPIPE_INVALID_ARG (no handler, a bad option), ERR_NPIPE_NOT_FIFO, ERR_NPIPE_UNSAFE,
 *   ERR_NPIPE_PERMISSION (opening the request FIFO), ERR_NPIPE_UNREACHABLE (no NATS server).
 * @example
 * // Each request is a line of text; the reply is it in capitals. A request is
 * // input from another process: parse it, never run it (no eval).
 * const server = await serve('/tmp/upper', (req) => req.toUpperCase());
 */
export function serve<Req, Res>(path: string, handler: Handler<Req, Res>, options: ServeBase & { codec: Codec<Req, Res> }): Promise<Server>;
/** `json`: requests unknown, or the type argument (not checked); replies any JSON value. */
export function serve<Req = unknown, Res = unknown>(path: string, handler: Handler<Req, Res>, options: ServeBase & { codec: 'json' }): Promise<Server>;
/** `bytes`: requests are Buffers, replies strings or Uint8Arrays. */
export function serve<Req = Buffer, Res extends Sendable = Sendable>(
  path: string,
  handler: Handler<Req, Res>,
  options: Buffer extends Req ? ServeBase & { codec: 'bytes' } : never,
): Promise<Server>;
/** `text` (the default): requests are strings, replies strings or Uint8Arrays. */
export function serve<Req = string, Res extends Sendable = Sendable>(
  path: string,
  handler: Handler<Req, Res>,
  ...options: string extends Req ? [options?: ServeBase & { codec?: 'text' | undefined }] : [options: never]
): Promise<Server>;
/** A codec not known at compile time: requests may be any codec's, replies what every codec encodes. */
export function serve(path: string, handler: Handler<unknown, Sendable>, options?: ServeBase & { codec?: CodecName | Codec<unknown, Sendable> | undefined }): Promise<Server>;
export async function serve(path: string, handler: Handler<never, unknown>, options: ServeOptions<unknown, unknown> = {}): Promise<Server> {
  if (typeof handler !== 'function') throw new InvalidArgumentError('serve() needs a handler function');
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new InvalidArgumentError(`concurrency must be a whole number >= 1, got ${concurrency}`);
  if (options.signal?.aborted) throw options.signal.reason;
  checkBusyPoll(options.busyPoll);
  return (await driverFor(path)).serve(path, handler as Handler<unknown, unknown>, options);
}

/**
 * Connects to the server on `path` (a FIFO path or a nats:// URL).
 *
 * Types follow the codec: `request()` takes what it encodes (a string or a
 * Uint8Array with `text`, the default, and `bytes`; any value or the type
 * argument with `json`) and resolves with what it decodes (string, Buffer,
 * unknown or the type argument).
 *
 * @throws ERR_NPIPE_SERVER_GONE (no server, without waitForServer), ERR_NPIPE_UNSAFE
 *   (reply folder not private), ERR_NPIPE_NOT_FIFO, ERR_NPIPE_UNREACHABLE (no NATS server).
 */
export function connect<Req, Res>(path: string, options: ConnectBase & { codec: Codec<Res, Req> }): Promise<Client<Req, Res>>;
/** `json`: any request value, replies unknown, or the type arguments (not checked). */
export function connect<Req = unknown, Res = unknown>(path: string, options: ConnectBase & { codec: 'json' }): Promise<Client<Req, Res>>;
/** `bytes`: requests strings or Uint8Arrays, replies Buffers. */
export function connect<Req extends Sendable = Sendable, Res = Buffer>(
  path: string,
  options: Buffer extends Res ? ConnectBase & { codec: 'bytes' } : never,
): Promise<Client<Req, Res>>;
/** `text` (the default): requests strings or Uint8Arrays, replies strings. */
export function connect<Req extends Sendable = Sendable, Res = string>(
  path: string,
  ...options: string extends Res ? [options?: ConnectBase & { codec?: 'text' | undefined }] : [options: never]
): Promise<Client<Req, Res>>;
/** A codec not known at compile time: requests what every codec encodes, replies any codec's. */
export function connect(path: string, options?: ConnectBase & { codec?: CodecName | Codec<unknown, Sendable> | undefined }): Promise<Client<Sendable, unknown>>;
export async function connect(path: string, options: ConnectOptions<unknown, unknown> = {}): Promise<Client<unknown, unknown>> {
  if (typeof path !== 'string' || path === '') throw new InvalidArgumentError('path must be a non-empty string');
  checkBusyPoll(options.busyPoll);
  checkTimeout(options.timeout); // every medium alike, before anything is opened (a FIFO client once took -1 as no server)
  return (await driverFor(path)).connect(path, options);
}

/** Options of openPublisher(). */
export interface PublisherOptions<T = unknown> extends MediumOptions {
  /** Payload codec (default `text`), as openSender's. */
  codec?: CodecName | Codec<unknown, T>;
  /** Largest message, in bytes (default 64 MiB). */
  maxMessageSize?: number;
  /**
   * What to do with a subscriber that does not keep up, unless it named its own
   * policy: `block` (default: publish() waits for its pipe), `drop` (it misses
   * messages while it is more than `maxQueuedBytes` behind, and counts them) or
   * `disconnect` (it is let go and told, ERR_NPIPE_SLOW_CONSUMER).
   */
  slow?: SlowPolicy;
  /** Bytes queued for one `drop` or `disconnect` subscriber before it is skipped or let go (default 8 MiB). */
  maxQueuedBytes?: number;
}

/** Options of subscribe(). */
export interface SubscribeOptions<T = unknown> extends MediumOptions {
  /** Payload codec (default `text`), as openReceiver's. */
  codec?: CodecName | Codec<T, never>;
  maxMessageSize?: number;
  /** What publishers do when this subscriber does not keep up (see PublisherOptions.slow); default: each publisher's. */
  slow?: SlowPolicy;
  /** Each receive() (and iterator step) that gets no message for this long rejects with ERR_NPIPE_TIMEOUT. */
  timeout?: number;
  /** Messages that reached this subscriber torn (a publisher died mid-message) and were dropped. */
  onDrop?: (info: import('./framing/index.js').DropInfo) => void;
  /** Messages a publisher did not deliver to this subscriber, as they are noticed: how many, from which publisher. */
  onMissed?: (info: { publisher: string; messages: number }) => void;
}

/** `maxQueuedBytes` of a receiver or publisher: a whole number of bytes >= 1, or not given. @throws ERR_NPIPE_INVALID_ARG */
function checkMaxQueuedBytes(value: number | undefined): void {
  if (value !== undefined && !(Number.isSafeInteger(value) && value >= 1)) {
    throw new InvalidArgumentError(`maxQueuedBytes must be a whole number of bytes >= 1, got ${String(value)}`);
  }
}

function checkSlow(slow: unknown): void {
  if (slow !== undefined && !isSlowPolicy(slow)) {
    throw new InvalidArgumentError(`slow is one of ${SLOW_POLICIES.join(', ')}, got ${JSON.stringify(slow)}`);
  }
}

async function pubsubFor(topic: string): Promise<PubSub> {
  const driver = await driverFor(topic);
  if (!driver.capabilities.pubsub) throw new UnsupportedError(`publish/subscribe is not available for ${driver.noun} (${topic})`);
  return driver.capabilities.pubsub;
}

/**
 * Opens `topic` (a FIFO topic: a folder, made 0700 if missing) for publishing:
 * every message goes to every subscriber present, whole and in call order. A
 * subscriber that joins gets the messages published after its subscribe()
 * resolved; one that closes or dies is let go, never waited for.
 * @throws ERR_NPIPE_UNSAFE (the folder is a symlink, someone else's, open to others), ERR_NPIPE_UNSUPPORTED.
 * @example
 * const publisher = await openPublisher('/tmp/news');
 * await publisher.publish('hello, every subscriber');
 */
export function openPublisher<T>(topic: string, options: PublisherOptions<T> & { codec: Codec<unknown, T> }): Promise<Publisher<T>>;
export function openPublisher<T = unknown>(topic: string, options: PublisherOptions & { codec: 'json' }): Promise<Publisher<T>>;
export function openPublisher<T extends Sendable = Sendable>(topic: string, options?: PublisherOptions & { codec?: 'text' | 'bytes' | undefined }): Promise<Publisher<T>>;
export async function openPublisher(topic: string, options: PublisherOptions = {}): Promise<Publisher<unknown>> {
  const codec = resolveCodec<unknown, unknown>(options.codec, 'text');
  const framing = createFraming('frames', options.maxMessageSize === undefined ? {} : { maxMessageSize: options.maxMessageSize });
  checkSlow(options.slow);
  const { maxQueuedBytes } = options;
  checkMaxQueuedBytes(maxQueuedBytes);
  const frames = await (await pubsubFor(topic)).openPublisher(topic, framing, {
    ...(options.nats === undefined ? {} : { nats: options.nats }),
    ...(options.maxMessageSize === undefined ? {} : { maxMessageSize: options.maxMessageSize }),
    ...(options.slow === undefined ? {} : { slow: options.slow }),
    ...(maxQueuedBytes === undefined ? {} : { maxQueuedBytes }),
  });
  return new Publisher(frames, codec);
}

/**
 * Subscribes to `topic`: a Receiver of every message published from now on
 * (async iterator, receive(), receiveInto(), close()). Over FIFOs the subscriber
 * has a FIFO of its own in the topic folder, removed when it closes.
 * @throws ERR_NPIPE_UNSAFE, ERR_NPIPE_UNSUPPORTED.
 * @example
 * for await (const message of await subscribe('/tmp/news')) console.log(message);
 */
export function subscribe<T>(topic: string, options: SubscribeOptions<T> & { codec: Codec<T, never> }): Promise<Receiver<T>>;
export function subscribe<T = unknown>(topic: string, options: SubscribeOptions & { codec: 'json' }): Promise<Receiver<T>>;
export function subscribe<T = Buffer>(topic: string, options: Buffer extends T ? SubscribeOptions & { codec: 'bytes' } : never): Promise<Receiver<T>>;
export function subscribe<T = string>(topic: string, ...options: string extends T ? [options?: SubscribeOptions & { codec?: 'text' | undefined }] : [options: never]): Promise<Receiver<T>>;
export async function subscribe(topic: string, options: SubscribeOptions = {}): Promise<Receiver<unknown>> {
  const codec = resolveCodec<unknown, never>(options.codec, 'text');
  checkTimeout(options.timeout);
  checkSlow(options.slow);
  const framing = createFraming('frames', options.maxMessageSize === undefined ? {} : { maxMessageSize: options.maxMessageSize });
  const frames = await (await pubsubFor(topic)).subscribe(topic, framing, {
    ...(options.nats === undefined ? {} : { nats: options.nats }),
    ...(options.maxMessageSize === undefined ? {} : { maxMessageSize: options.maxMessageSize }),
    ...(options.onDrop ? { onDrop: options.onDrop } : {}),
    ...(options.onMissed ? { onMissed: options.onMissed } : {}),
    ...(options.slow === undefined ? {} : { slow: options.slow }),
  });
  return new Receiver(frames, codec, options.timeout, topic);
}
